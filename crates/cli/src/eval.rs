//! `slimnet eval`: accuracy, agreement with a reference, size and latency on real data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::Table;
use slimnet::onnx::load_model;
use slimnet::runtime::{Session, SessionOptions};
use slimnet::tensor::Tensor;
use slimnet_eval::metrics;
use slimnet_eval::{read_labels, Dataset, InputSpec};

use crate::data::DataArgs;

#[derive(Args)]
pub struct EvalArgs {
    /// The ONNX model to evaluate.
    pub model: PathBuf,
    /// The data: a .npy or .npz file, or a folder of .npy/.npz files, images (png, jpg;
    /// in class folders for labels) or 16 kHz mono WAV files.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Labels, one per sample: a .npy integer array or a text file of one integer per
    /// line (replaces labels the data carries).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// A reference model (e.g. the float32 original) to compare outputs with.
    #[arg(long, value_name = "FP32.onnx")]
    pub reference: Option<PathBuf>,
    #[command(flatten)]
    pub data_options: DataArgs,
    /// Threads for intra-op parallelism (0: one per available CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print JSON instead of tables (an infinite SQNR, for identical outputs, is null).
    #[arg(long)]
    pub json: bool,
}

/// One model being evaluated.
struct Evaluated {
    path: PathBuf,
    bytes: u64,
    session: Session,
    names: Vec<String>,
    times_ms: Vec<f64>,
    correct: usize,
}

impl Evaluated {
    fn new(path: &Path, threads: usize) -> Result<Evaluated> {
        let bytes = std::fs::metadata(path)
            .with_context(|| path.display().to_string())?
            .len();
        let model = load_model(path)?;
        let names = InputSpec::of_model(&model)
            .into_iter()
            .map(|s| s.name)
            .collect();
        let options = SessionOptions {
            threads,
            ..SessionOptions::default()
        };
        let session = Session::new(model, options).with_context(|| path.display().to_string())?;
        Ok(Evaluated {
            path: path.to_path_buf(),
            bytes,
            session,
            names,
            times_ms: Vec::new(),
            correct: 0,
        })
    }

    fn run(
        &mut self,
        sample: &[Tensor],
        index: usize,
        timed: bool,
    ) -> Result<Vec<(String, Tensor)>> {
        let inputs: Vec<(String, Tensor)> = self
            .names
            .iter()
            .cloned()
            .zip(sample.iter().cloned())
            .collect();
        let start = Instant::now();
        let out = self
            .session
            .run(inputs)
            .with_context(|| format!("{}: sample {index}", self.path.display()))?;
        if timed {
            self.times_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(out)
    }

    fn median_ms(&self) -> f64 {
        let mut t = self.times_ms.clone();
        t.sort_by(f64::total_cmp);
        match t.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => t[n / 2],
            n => (t[n / 2 - 1] + t[n / 2]) / 2.0,
        }
    }

    fn json(&self, samples: usize, labelled: bool) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "bytes": self.bytes,
            "median_latency_ms": self.median_ms(),
            "top1": labelled.then(|| self.correct as f64 / samples as f64),
        })
    }
}

/// Agreement of one output with the reference's, accumulated over samples.
struct OutputStats {
    name: String,
    cosine_sum: f64,
    cosine_min: f64,
    signal: f64,
    noise: f64,
    max_abs: f64,
    agree: usize,
    rows: usize,
    classes: usize,
    samples: usize,
}

impl OutputStats {
    fn new(name: &str) -> OutputStats {
        OutputStats {
            name: name.to_string(),
            cosine_sum: 0.0,
            cosine_min: f64::INFINITY,
            signal: 0.0,
            noise: 0.0,
            max_abs: 0.0,
            agree: 0,
            rows: 0,
            classes: 0,
            samples: 0,
        }
    }

    fn add(&mut self, test: &Tensor, reference: &Tensor, index: usize) -> Result<()> {
        if test.shape() != reference.shape() {
            bail!(
                "output '{}', sample {index}: shape {:?} but the reference's is {:?}",
                self.name,
                test.shape(),
                reference.shape()
            );
        }
        let t = test
            .to_vec::<f32>()
            .with_context(|| format!("output '{}'", self.name))?;
        let r = reference
            .to_vec::<f32>()
            .with_context(|| format!("output '{}'", self.name))?;
        let c = metrics::cosine(&r, &t);
        self.cosine_sum += c;
        self.cosine_min = self.cosine_min.min(c);
        let (s, n) = metrics::energies(&r, &t);
        self.signal += s;
        self.noise += n;
        self.max_abs = self.max_abs.max(metrics::max_abs_error(&r, &t));
        self.classes = test.shape().last().copied().unwrap_or(1);
        if self.classes > 1 {
            let (a, rows) = metrics::argmax_agreement_count(&r, &t, self.classes);
            self.agree += a;
            self.rows += rows;
        }
        self.samples += 1;
        Ok(())
    }

    fn cosine_mean(&self) -> f64 {
        self.cosine_sum / self.samples.max(1) as f64
    }

    fn sqnr_db(&self) -> f64 {
        metrics::sqnr_from_energies(self.signal, self.noise)
    }

    fn agreement(&self) -> Option<f64> {
        (self.classes > 1 && self.rows > 0).then(|| self.agree as f64 / self.rows as f64)
    }
}

/// The predicted class of one sample: the argmax of the first row of its first output.
fn predicted(outputs: &[(String, Tensor)]) -> Result<Option<usize>> {
    let Some((name, t)) = outputs.first() else {
        return Ok(None);
    };
    let classes = t.shape().last().copied().unwrap_or(1).max(1);
    let v = t
        .to_vec::<f32>()
        .with_context(|| format!("output '{name}'"))?;
    Ok((!v.is_empty()).then(|| metrics::argmax(&v[..classes.min(v.len())])))
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let mut model = Evaluated::new(&args.model, args.threads)?;
    let inputs = InputSpec::of_model(model.session.model());
    let mut reference = match &args.reference {
        Some(path) => {
            let r = Evaluated::new(path, args.threads)?;
            if r.names != model.names {
                bail!(
                    "{}: inputs ({}) differ from the model's ({})",
                    path.display(),
                    r.names.join(", "),
                    model.names.join(", ")
                );
            }
            Some(r)
        }
        None => None,
    };
    let options = args.data_options.options(&inputs)?;
    let mut data = Dataset::open(&args.data, &inputs, &options)?;
    if let Some(path) = &args.labels {
        data.set_labels(read_labels(path)?, path)?;
    }
    if data.is_empty() {
        bail!("{}: no samples", args.data.display());
    }
    let labels: Option<Vec<i64>> = data.labels().map(<[i64]>::to_vec);
    let mut stats: Vec<OutputStats> = Vec::new();
    // One untimed run first: it builds the plan for the first sample's shapes.
    let first = data.sample(0)?;
    model.run(&first, 0, false)?;
    if let Some(r) = &mut reference {
        r.run(&first, 0, false)?;
    }
    for index in 0..data.len() {
        let sample = data.sample(index)?;
        let out = model.run(&sample, index, true)?;
        let label = labels.as_ref().map(|l| l[index]);
        if let (Some(label), Some(p)) = (label, predicted(&out)?) {
            model.correct += usize::from(p as i64 == label);
        }
        if let Some(r) = &mut reference {
            let ref_out = r.run(&sample, index, true)?;
            if ref_out.len() != out.len() {
                bail!(
                    "{} has {} outputs but the reference has {}",
                    args.model.display(),
                    out.len(),
                    ref_out.len()
                );
            }
            if stats.is_empty() {
                stats = out.iter().map(|(n, _)| OutputStats::new(n)).collect();
            }
            for ((s, (_, t)), (_, rt)) in stats.iter_mut().zip(&out).zip(&ref_out) {
                s.add(t, rt, index)?;
            }
            if let (Some(label), Some(p)) = (label, predicted(&ref_out)?) {
                r.correct += usize::from(p as i64 == label);
            }
        }
    }
    let n = data.len();
    let labelled = labels.is_some();
    let threads = model.session.threads();
    if args.json {
        let outputs: Vec<serde_json::Value> = stats
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "cosine_mean": s.cosine_mean(),
                    "cosine_min": s.cosine_min,
                    "sqnr_db": s.sqnr_db(),
                    "max_abs_error": s.max_abs,
                    "argmax_agreement": s.agreement(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "data": data.describe(),
            "samples": n,
            "threads": threads,
            "model": model.json(n, labelled),
            "reference": reference.as_ref().map(|r| r.json(n, labelled)),
            "outputs": outputs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("data: {}", data.describe());
    let mut table = Table::new();
    let mut header = vec!["", "file", "bytes", "median latency (ms)"];
    if labelled {
        header.push("top-1");
    }
    table.set_header(header);
    for (role, e) in
        std::iter::once(("model", &model)).chain(reference.iter().map(|r| ("reference", r)))
    {
        let mut row = vec![
            role.to_string(),
            e.path.display().to_string(),
            e.bytes.to_string(),
            format!("{:.3}", e.median_ms()),
        ];
        if labelled {
            row.push(format!(
                "{:.4} ({}/{n})",
                e.correct as f64 / n as f64,
                e.correct
            ));
        }
        table.add_row(row);
    }
    println!("{table}");
    println!("{threads} threads, {n} samples");
    if !stats.is_empty() {
        let mut table = Table::new();
        table.set_header(vec![
            "output",
            "cosine mean",
            "cosine min",
            "SQNR (dB)",
            "max abs error",
            "argmax agreement",
        ]);
        for s in &stats {
            table.add_row(vec![
                s.name.clone(),
                format!("{:.6}", s.cosine_mean()),
                format!("{:.6}", s.cosine_min),
                format!("{:.2}", s.sqnr_db()),
                format!("{:.6}", s.max_abs),
                s.agreement().map_or("-".to_string(), |a| format!("{a:.4}")),
            ]);
        }
        println!("{table}");
    }
    Ok(())
}
