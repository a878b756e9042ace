//! [`Dataset`]: samples for a model from `.npy`/`.npz` files, image folders or WAV folders.

use std::path::{Path, PathBuf};

use slimnet_tensor::{DType, Tensor};

use crate::arrays::{read_npy_file, read_npz_file, slice_axis0};
use crate::spec::filler;
use crate::wav::{frame_starts, read_wav};
use crate::{DataError, InputSpec, Preprocess};

/// How data is read; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// Image preprocessing (image folders); defaults as [`Preprocess`] documents.
    pub preprocess: Option<Preprocess>,
    /// WAV framing: samples per frame (default: from the audio input's last known dim).
    pub frame: Option<usize>,
    /// WAV hop (default = frame).
    pub hop: Option<usize>,
    /// Fixed values for inputs the data does not provide (e.g. silero's sr=16000). A
    /// scalar integer named `sr` or `sample_rate` also sets the expected WAV sample rate
    /// (default 16000 Hz).
    pub set: Vec<(String, Tensor)>,
    /// At most this many samples.
    pub limit: Option<usize>,
}

/// The longest WAV frame, in samples.
const MAX_FRAME: usize = 1 << 26;

/// The WAV sample rate expected when `set` does not give one.
pub const DEFAULT_SAMPLE_RATE: u32 = 16000;

enum Source {
    /// Arrays with a leading sample axis, each with the index of the input it feeds.
    Arrays {
        path: PathBuf,
        arrays: Vec<(usize, Tensor)>,
    },
    /// One `.npy` (feeding `input`) or `.npz` file per sample.
    Files { files: Vec<PathBuf>, input: usize },
    Images {
        files: Vec<PathBuf>,
        preprocess: Preprocess,
        input: usize,
    },
    Audio {
        signals: Vec<Vec<f32>>,
        /// `(signal, start)` of each frame.
        frames: Vec<(usize, usize)>,
        frame: usize,
        shape: Vec<usize>,
        input: usize,
    },
}

/// Samples for a model, read from a path that [`Dataset::open`] documents. Arrays and
/// audio are held in memory; per-file samples (`.npy`/`.npz` folders, images) are read
/// when asked for.
pub struct Dataset {
    inputs: Vec<InputSpec>,
    set: Vec<(String, Tensor)>,
    source: Source,
    len: usize,
    labels: Option<Vec<i64>>,
    description: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Npy,
    Npz,
    Image,
    Wav,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Some(Kind::Npy),
        "npz" => Some(Kind::Npz),
        "png" | "jpg" | "jpeg" => Some(Kind::Image),
        "wav" => Some(Kind::Wav),
        _ => None,
    }
}

/// Entries of a folder, sorted by file name, hidden ones left out.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::file(dir, e))? {
        let entry = entry.map_err(|e| DataError::file(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

impl Dataset {
    /// Opens data for a model with these `inputs` (see [`InputSpec::of_model`]); what
    /// `path` is decides how it is read:
    ///
    /// - a `.npy` file: axis 0 enumerates samples; it feeds the first input that
    ///   `options.set` does not fix.
    /// - a `.npz` file: arrays named after inputs, each with a leading sample axis of
    ///   the same length, and optionally `labels` (integers, one per sample).
    /// - a folder of `.npy` or `.npz` files: one sample per file, in file-name order
    ///   (a `labels` array of one element in each `.npz` gives the labels).
    /// - a folder of images (png, jpg, jpeg), in file-name order, preprocessed by
    ///   `options.preprocess`; or a folder of class folders of images, where each class
    ///   folder's name is its label when every name is an integer, else its index in
    ///   name order.
    /// - a folder of mono WAV files: each file is cut into frames of `frame` samples
    ///   every `hop` (a file shorter than a frame gives one zero-padded frame), and each
    ///   frame feeds the first float input that `options.set` does not fix.
    ///
    /// In folders, hidden files and files of other kinds are skipped; a folder that mixes
    /// kinds (images and WAV files, say) is an error.
    ///
    /// A sample of an array is `array[i]`; when its rank is one less than the input's
    /// it gets a leading dim of 1, so both `[N, 1, 28, 28]` (rank == the input's: each
    /// sample keeps a batch dim of 1) and `[N, 1, 1, 28, 28]` (rank == the input's + 1)
    /// feed a `[batch, 1, 28, 28]` input one sample at a time (see [`InputSpec::fit`]).
    /// Inputs the data does not provide come from `options.set`, else are zeros when
    /// they are float, else are an error. The first sample is read and fitted here, so
    /// shape and dtype errors show up at once.
    pub fn open(
        path: &Path,
        inputs: &[InputSpec],
        options: &DataOptions,
    ) -> Result<Dataset, DataError> {
        for (name, _) in &options.set {
            if !inputs.iter().any(|i| i.name == *name) {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(DataError::input(
                    name,
                    format!(
                        "the model has no such input (its inputs: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let meta = std::fs::metadata(path).map_err(|e| DataError::file(path, e))?;
        let mut ds =
            if meta.is_dir() {
                Self::open_dir(path, inputs, options)?
            } else {
                match kind_of(path) {
                    Some(Kind::Npy) => {
                        let input = free_input(inputs, options, false)?;
                        let array = read_npy_file(path)?;
                        let n = sample_count(path, &inputs[input].name, &array)?;
                        let description = format!(
                            "{n} samples from {} (input '{}')",
                            path.display(),
                            inputs[input].name
                        );
                        Self::new(
                            inputs,
                            options,
                            Source::Arrays {
                                path: path.into(),
                                arrays: vec![(input, array)],
                            },
                            n,
                            None,
                            description,
                        )
                    }
                    Some(Kind::Npz) => Self::open_npz(path, inputs, options)?,
                    _ => return Err(DataError::file(
                        path,
                        "not a .npy or .npz file, nor a folder of .npy, .npz, image or WAV files",
                    )),
                }
            };
        if let Some(limit) = options.limit {
            if limit < ds.len {
                ds.len = limit;
                if let Some(l) = &mut ds.labels {
                    l.truncate(limit);
                }
                ds.description = format!("{} (first {limit})", ds.description);
            }
        }
        if ds.len > 0 {
            ds.sample(0)?;
        }
        Ok(ds)
    }

    fn new(
        inputs: &[InputSpec],
        options: &DataOptions,
        source: Source,
        len: usize,
        labels: Option<Vec<i64>>,
        description: String,
    ) -> Dataset {
        Dataset {
            inputs: inputs.to_vec(),
            set: options.set.clone(),
            source,
            len,
            labels,
            description,
        }
    }

    fn open_npz(
        path: &Path,
        inputs: &[InputSpec],
        options: &DataOptions,
    ) -> Result<Dataset, DataError> {
        let mut arrays = Vec::new();
        let mut labels = None;
        let mut n = None;
        for (key, array) in read_npz_file(path)? {
            let count = sample_count(path, &key, &array)?;
            if *n.get_or_insert(count) != count {
                return Err(DataError::file(
                    path,
                    format!(
                        "array '{key}' has {count} samples, the ones before it {}",
                        n.unwrap_or(0)
                    ),
                ));
            }
            if key == "labels" {
                labels = Some(integer_labels(path, &array)?);
            } else if let Some(i) = inputs.iter().position(|s| s.name == key) {
                arrays.push((i, array));
            } else {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(DataError::file(
                    path,
                    format!(
                        "array '{key}' is not an input of the model (its inputs: {}; and 'labels')",
                        names.join(", ")
                    ),
                ));
            }
        }
        if arrays.is_empty() {
            return Err(DataError::file(path, "no array named after a model input"));
        }
        let n = n.unwrap_or(0);
        let names: Vec<&str> = arrays
            .iter()
            .map(|(i, _)| inputs[*i].name.as_str())
            .collect();
        let description = format!(
            "{n} samples from {} (inputs {}{})",
            path.display(),
            names.join(", "),
            if labels.is_some() {
                ", with labels"
            } else {
                ""
            }
        );
        Ok(Self::new(
            inputs,
            options,
            Source::Arrays {
                path: path.into(),
                arrays,
            },
            n,
            labels,
            description,
        ))
    }

    fn open_dir(
        dir: &Path,
        inputs: &[InputSpec],
        options: &DataOptions,
    ) -> Result<Dataset, DataError> {
        let entries = list_dir(dir)?;
        let files: Vec<(PathBuf, Kind)> = entries
            .iter()
            .filter(|p| p.is_file())
            .filter_map(|p| kind_of(p).map(|k| (p.clone(), k)))
            .collect();
        if files.is_empty() {
            let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
            if !classes.is_empty() {
                return Self::open_class_dirs(dir, &classes, inputs, options);
            }
            return Err(DataError::file(
                dir,
                "empty: no .npy, .npz, image (png, jpg) or WAV files, nor class folders of images",
            ));
        }
        let kind = files[0].1;
        let same = |a: Kind, b: Kind| {
            a == b || matches!((a, b), (Kind::Npy | Kind::Npz, Kind::Npy | Kind::Npz))
        };
        if let Some((other, _)) = files.iter().find(|(_, k)| !same(*k, kind)) {
            return Err(DataError::file(
                dir,
                format!(
                    "mixes kinds of files ({} and {}); keep one kind per folder",
                    files[0].0.display(),
                    other.display()
                ),
            ));
        }
        let paths: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
        let n = paths.len();
        match kind {
            Kind::Npy | Kind::Npz => {
                let input = free_input(inputs, options, false)?;
                let labels = npz_folder_labels(&paths)?;
                let description = format!(
                    "{n} samples from {n} .npy/.npz files in {}{}",
                    dir.display(),
                    if labels.is_some() {
                        " (with labels)"
                    } else {
                        ""
                    }
                );
                Ok(Self::new(
                    inputs,
                    options,
                    Source::Files {
                        files: paths,
                        input,
                    },
                    n,
                    labels,
                    description,
                ))
            }
            Kind::Image => {
                let input = free_input(inputs, options, false)?;
                let description = format!("{n} images from {}", dir.display());
                let preprocess = options.preprocess.clone().unwrap_or_default();
                Ok(Self::new(
                    inputs,
                    options,
                    Source::Images {
                        files: paths,
                        preprocess,
                        input,
                    },
                    n,
                    None,
                    description,
                ))
            }
            Kind::Wav => Self::open_wav(dir, &paths, inputs, options),
        }
    }

    fn open_class_dirs(
        dir: &Path,
        classes: &[&PathBuf],
        inputs: &[InputSpec],
        options: &DataOptions,
    ) -> Result<Dataset, DataError> {
        let names: Vec<String> = classes
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let numeric: Option<Vec<i64>> = names.iter().map(|n| n.parse::<i64>().ok()).collect();
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (i, class) in classes.iter().enumerate() {
            let label = numeric.as_ref().map_or(i as i64, |v| v[i]);
            for p in list_dir(class)? {
                match kind_of(&p) {
                    Some(Kind::Image) if p.is_file() => {
                        files.push(p);
                        labels.push(label);
                    }
                    _ => {}
                }
            }
        }
        if files.is_empty() {
            return Err(DataError::file(
                dir,
                "empty: its class folders hold no images (png, jpg)",
            ));
        }
        let input = free_input(inputs, options, false)?;
        let n = files.len();
        let description = format!(
            "{n} images in {} class folders of {}",
            classes.len(),
            dir.display()
        );
        let preprocess = options.preprocess.clone().unwrap_or_default();
        Ok(Self::new(
            inputs,
            options,
            Source::Images {
                files,
                preprocess,
                input,
            },
            n,
            Some(labels),
            description,
        ))
    }

    fn open_wav(
        dir: &Path,
        paths: &[PathBuf],
        inputs: &[InputSpec],
        options: &DataOptions,
    ) -> Result<Dataset, DataError> {
        let input = free_input(inputs, options, true)?;
        let spec = &inputs[input];
        let frame = match options.frame.or(spec.shape.last().copied().flatten()) {
            Some(f) if f > MAX_FRAME => {
                return Err(DataError::Spec(format!(
                    "a frame of {f} samples is more than the {MAX_FRAME} this reader takes"
                )))
            }
            Some(f) if f > 0 => f,
            _ => {
                return Err(DataError::input(
                    &spec.name,
                    format!(
                        "its length is not fixed ({}); give a frame size in samples (--frame N)",
                        spec.shape_text()
                    ),
                ))
            }
        };
        let hop = options.hop.unwrap_or(frame);
        if hop == 0 {
            return Err(DataError::Spec("the hop must be at least 1 sample".into()));
        }
        let mut shape = spec.default_shape();
        match shape.last_mut() {
            Some(last) => *last = frame,
            None => shape = vec![1, frame],
        }
        if shape.iter().product::<usize>() != frame {
            return Err(DataError::input(
                &spec.name,
                format!(
                    "a frame of {frame} samples cannot fill the declared shape {}",
                    spec.shape_text()
                ),
            ));
        }
        let rate = sample_rate(&options.set);
        let mut signals = Vec::new();
        let mut frames = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let s = read_wav(p, rate)?;
            frames.extend(
                frame_starts(s.len(), frame, hop)
                    .into_iter()
                    .map(|st| (i, st)),
            );
            signals.push(s);
        }
        let n = frames.len();
        let description = format!(
            "{n} samples from {} WAV files in {} (frames of {frame}, hop {hop}, {rate} Hz)",
            paths.len(),
            dir.display()
        );
        Ok(Self::new(
            inputs,
            options,
            Source::Audio {
                signals,
                frames,
                frame,
                shape,
                input,
            },
            n,
            None,
            description,
        ))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Class labels, one per sample, when the data carries them.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref()
    }

    /// Replaces the labels (e.g. from [`crate::read_labels`]); there must be one per
    /// sample (extra ones after the first `len()` are dropped when a limit cut the data).
    pub fn set_labels(&mut self, labels: Vec<i64>, source: &Path) -> Result<(), DataError> {
        if labels.len() < self.len {
            return Err(DataError::file(
                source,
                format!("{} labels for {} samples", labels.len(), self.len),
            ));
        }
        let mut labels = labels;
        labels.truncate(self.len);
        self.labels = Some(labels);
        Ok(())
    }

    /// What was read, e.g. "64 samples from 4 WAV files in speech (frames of 512, hop 512, 16000 Hz)".
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The model inputs samples are made for.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// One sample: a tensor per model input, in `inputs` order, with the input's dtype
    /// and a shape that fits it.
    pub fn sample(&self, index: usize) -> Result<Vec<Tensor>, DataError> {
        if index >= self.len {
            return Err(DataError::Spec(format!(
                "sample {index} is out of range ({} samples)",
                self.len
            )));
        }
        let mut given: Vec<Option<Tensor>> = vec![None; self.inputs.len()];
        match &self.source {
            Source::Arrays { path, arrays } => {
                for (i, array) in arrays {
                    let t = slice_axis0(array, index).map_err(|e| DataError::file(path, e))?;
                    given[*i] = Some(self.fit(*i, t, path, index)?);
                }
            }
            Source::Files { files, input } => {
                let path = &files[index];
                if kind_of(path) == Some(Kind::Npy) {
                    given[*input] = Some(self.fit(*input, read_npy_file(path)?, path, 0)?);
                } else {
                    for (key, t) in read_npz_file(path)? {
                        if key == "labels" {
                            continue;
                        }
                        let Some(i) = self.inputs.iter().position(|s| s.name == key) else {
                            return Err(DataError::file(
                                path,
                                format!("array '{key}' is not an input of the model"),
                            ));
                        };
                        given[i] = Some(self.fit(i, t, path, 0)?);
                    }
                }
            }
            Source::Images {
                files,
                preprocess,
                input,
            } => {
                let path = &files[index];
                let spec = &self.inputs[*input];
                let mut t = preprocess.image_tensor(path, spec)?;
                if spec.dtype.is_integer() {
                    t = t.cast(spec.dtype).map_err(|e| DataError::file(path, e))?;
                }
                given[*input] = Some(self.fit(*input, t, path, 0)?);
            }
            Source::Audio {
                signals,
                frames,
                frame,
                shape,
                input,
            } => {
                let (s, start) = frames[index];
                let signal = &signals[s];
                let mut v = vec![0f32; *frame];
                let end = (start + frame).min(signal.len());
                v[..end - start].copy_from_slice(&signal[start..end]);
                let t = Tensor::from_vec(shape.clone(), v)
                    .map_err(|e| DataError::input(&self.inputs[*input].name, e))?;
                let t = if self.inputs[*input].dtype == DType::F32 {
                    t
                } else {
                    t.cast(self.inputs[*input].dtype)
                        .map_err(|e| DataError::input(&self.inputs[*input].name, e))?
                };
                given[*input] = Some(t);
            }
        }
        self.inputs
            .iter()
            .zip(given)
            .map(|(spec, t)| match t {
                Some(t) => Ok(t),
                None => filler(spec, &self.set),
            })
            .collect()
    }

    /// [`Dataset::sample`] with each tensor named after its input, as
    /// `Session::run` takes them.
    pub fn named_sample(&self, index: usize) -> Result<Vec<(String, Tensor)>, DataError> {
        Ok(self
            .inputs
            .iter()
            .map(|s| s.name.clone())
            .zip(self.sample(index)?)
            .collect())
    }

    fn fit(&self, input: usize, t: Tensor, path: &Path, index: usize) -> Result<Tensor, DataError> {
        self.inputs[input]
            .fit(t, &format!("sample {index}"))
            .map_err(|e| DataError::file(path, e))
    }
}

/// The first input `set` does not fix (float only, when `float`).
fn free_input(
    inputs: &[InputSpec],
    options: &DataOptions,
    float: bool,
) -> Result<usize, DataError> {
    inputs
        .iter()
        .position(|s| {
            !options.set.iter().any(|(n, _)| *n == s.name) && (!float || s.dtype.is_float())
        })
        .ok_or_else(|| {
            DataError::Spec(format!(
                "the model has no {}input left for the data to feed (every one is set)",
                if float { "float " } else { "" }
            ))
        })
}

fn sample_count(path: &Path, key: &str, array: &Tensor) -> Result<usize, DataError> {
    array.shape().first().copied().ok_or_else(|| {
        DataError::file(
            path,
            format!("array '{key}' is a scalar; axis 0 must enumerate samples"),
        )
    })
}

fn integer_labels(path: &Path, array: &Tensor) -> Result<Vec<i64>, DataError> {
    if !array.dtype().is_integer() {
        return Err(DataError::file(
            path,
            format!("'labels' must be integers, found {}", array.dtype().name()),
        ));
    }
    array.to_i64_vec().map_err(|e| DataError::file(path, e))
}

/// Labels of a folder of `.npz` files, when its first file has a `labels` array (then
/// every file must have one with one element).
fn npz_folder_labels(paths: &[PathBuf]) -> Result<Option<Vec<i64>>, DataError> {
    let has = |p: &Path| -> Result<Option<Vec<i64>>, DataError> {
        if kind_of(p) != Some(Kind::Npz) {
            return Ok(None);
        }
        read_npz_file(p)?
            .into_iter()
            .find(|(k, _)| k == "labels")
            .map(|(_, t)| integer_labels(p, &t))
            .transpose()
    };
    if has(&paths[0])?.is_none() {
        return Ok(None);
    }
    let mut labels = Vec::with_capacity(paths.len());
    for p in paths {
        match has(p)?.as_deref() {
            Some(&[l]) => labels.push(l),
            _ => {
                return Err(DataError::file(
                    p,
                    "needs a 'labels' array of one integer, as the first file of the folder has",
                ))
            }
        }
    }
    Ok(Some(labels))
}

/// The expected WAV rate: a scalar integer `sr` or `sample_rate` in `set`, else 16 kHz.
fn sample_rate(set: &[(String, Tensor)]) -> u32 {
    set.iter()
        .filter(|(n, t)| {
            (n == "sr" || n == "sample_rate") && t.len() == 1 && t.dtype().is_integer()
        })
        .filter_map(|(_, t)| t.to_i64_vec().ok()?.first().copied())
        .filter_map(|r| u32::try_from(r).ok())
        .next()
        .unwrap_or(DEFAULT_SAMPLE_RATE)
}
