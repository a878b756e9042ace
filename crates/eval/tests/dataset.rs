//! `Dataset::open` on small fixtures of every kind, written to a temporary folder.

use std::path::Path;

use slimnet_eval::{write_npz_file, DataOptions, Dataset, InputSpec, Preprocess};
use slimnet_tensor::{npy, DType, Tensor};

fn spec(name: &str, dtype: DType, shape: &[Option<usize>]) -> InputSpec {
    InputSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

fn image_input() -> Vec<InputSpec> {
    vec![spec("x", DType::F32, &[None, Some(1), Some(2), Some(2)])]
}

fn write_npy(path: &Path, t: &Tensor) {
    npy::write_npy(t, std::fs::File::create(path).unwrap()).unwrap();
}

fn ramp(shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|i| i as f32).collect::<Vec<_>>()).unwrap()
}

fn err(r: Result<Dataset, slimnet_eval::DataError>) -> String {
    let e = r.err().expect("an error").to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn npy_with_and_without_a_batch_dim() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = image_input();
    let opts = DataOptions::default();
    // Rank == input rank (each sample keeps a leading 1), and rank == input rank + 1.
    for shape in [vec![3, 1, 2, 2], vec![3, 1, 1, 2, 2]] {
        let p = dir.path().join("x.npy");
        write_npy(&p, &ramp(shape));
        let ds = Dataset::open(&p, &inputs, &opts).unwrap();
        assert_eq!(ds.len(), 3);
        assert!(ds.labels().is_none());
        let s = ds.sample(2).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].shape(), &[1, 1, 2, 2]);
        assert_eq!(s[0].as_slice::<f32>().unwrap(), &[8., 9., 10., 11.]);
        assert!(ds.sample(3).is_err());
        assert!(ds.describe().contains("3 samples"), "{}", ds.describe());
    }
    // f64 data feeds a float32 input.
    let p = dir.path().join("d.npy");
    write_npy(
        &p,
        &ramp(vec![2, 4])
            .cast(DType::F64)
            .unwrap()
            .reshape(vec![2, 1, 2, 2])
            .unwrap(),
    );
    let ds = Dataset::open(&p, &inputs, &opts).unwrap();
    assert_eq!(ds.sample(0).unwrap()[0].dtype(), DType::F32);
    // Limit.
    let limited = DataOptions {
        limit: Some(1),
        ..DataOptions::default()
    };
    assert_eq!(Dataset::open(&p, &inputs, &limited).unwrap().len(), 1);
    // Shapes and dtypes that do not fit.
    write_npy(&p, &ramp(vec![2, 3, 2]));
    let e = err(Dataset::open(&p, &inputs, &opts));
    assert!(
        e.contains("d.npy") && e.contains("'x'") && e.contains("[?, 1, 2, 2]"),
        "{e}"
    );
    write_npy(&p, &Tensor::from_vec(vec![1, 4], vec![1i64; 4]).unwrap());
    let e = err(Dataset::open(&p, &inputs, &opts));
    assert!(e.contains("int64") && e.contains("float32"), "{e}");
    std::fs::write(&p, b"garbage").unwrap();
    assert!(err(Dataset::open(&p, &inputs, &opts)).contains("d.npy"));
    assert!(err(Dataset::open(&dir.path().join("none.npy"), &inputs, &opts)).contains("none.npy"));
    let txt = dir.path().join("a.txt");
    std::fs::write(&txt, b"1").unwrap();
    assert!(err(Dataset::open(&txt, &inputs, &opts)).contains("a.txt"));
}

#[test]
fn npz_with_labels_and_fillers() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = vec![
        spec("a", DType::F32, &[None, Some(2)]),
        spec("state", DType::F32, &[Some(2), None]),
        spec("n", DType::I64, &[]),
    ];
    let p = dir.path().join("d.npz");
    let labels = Tensor::from_vec(vec![3], vec![1i64, 0, 1]).unwrap();
    write_npz_file(
        &p,
        &[("a".into(), ramp(vec![3, 2])), ("labels".into(), labels)],
    )
    .unwrap();
    // `n` is an integer the data does not give.
    let e = err(Dataset::open(&p, &inputs, &DataOptions::default()));
    assert!(e.contains("'n'") && e.contains("--set n="), "{e}");
    let opts = DataOptions {
        set: vec![("n".into(), Tensor::scalar(7i64))],
        ..DataOptions::default()
    };
    let ds = Dataset::open(&p, &inputs, &opts).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels(), Some(&[1i64, 0, 1][..]));
    let s = ds.sample(1).unwrap();
    assert_eq!(s[0].shape(), &[1, 2]);
    assert_eq!(s[0].as_slice::<f32>().unwrap(), &[2., 3.]);
    assert_eq!(s[1].shape(), &[2, 1]);
    assert!(s[1].as_slice::<f32>().unwrap().iter().all(|&x| x == 0.0));
    assert_eq!(s[2].to_i64_vec().unwrap(), vec![7]);
    let named = ds.named_sample(1).unwrap();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "state", "n"]);
    // An array that is no input; sample counts that differ; a set name that is no input.
    write_npz_file(&p, &[("b".into(), ramp(vec![3, 2]))]).unwrap();
    let e = err(Dataset::open(&p, &inputs, &opts));
    assert!(e.contains("d.npz") && e.contains("'b'"), "{e}");
    write_npz_file(
        &p,
        &[
            ("a".into(), ramp(vec![3, 2])),
            (
                "labels".into(),
                Tensor::from_vec(vec![2], vec![1i64, 0]).unwrap(),
            ),
        ],
    )
    .unwrap();
    assert!(err(Dataset::open(&p, &inputs, &opts)).contains("labels"));
    let bad = DataOptions {
        set: vec![("zz".into(), Tensor::scalar(1f32))],
        ..DataOptions::default()
    };
    assert!(err(Dataset::open(&p, &inputs, &bad)).contains("'zz'"));
}

#[test]
fn folders_of_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = image_input();
    let opts = DataOptions::default();
    for i in 0..3 {
        let t = ramp(vec![1, 2, 2]);
        write_npz_file(
            &dir.path().join(format!("s{i}.npz")),
            &[
                ("x".into(), t),
                (
                    "labels".into(),
                    Tensor::from_vec(vec![1], vec![i as i64]).unwrap(),
                ),
            ],
        )
        .unwrap();
    }
    let ds = Dataset::open(dir.path(), &inputs, &opts).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels(), Some(&[0i64, 1, 2][..]));
    assert_eq!(ds.sample(2).unwrap()[0].shape(), &[1, 1, 2, 2]);

    let npys = tempfile::tempdir().unwrap();
    for i in 0..2 {
        write_npy(
            &npys.path().join(format!("{i}.npy")),
            &ramp(vec![1, 1, 2, 2]),
        );
    }
    let ds = Dataset::open(npys.path(), &inputs, &opts).unwrap();
    assert_eq!(ds.len(), 2);
    assert!(ds.labels().is_none());

    let empty = tempfile::tempdir().unwrap();
    let e = err(Dataset::open(empty.path(), &inputs, &opts));
    assert!(e.contains("empty"), "{e}");
}

fn write_png(path: &Path, w: u32, h: u32, value: u8) {
    image::GrayImage::from_pixel(w, h, image::Luma([value]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folders() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = image_input();
    write_png(&dir.path().join("b.png"), 4, 4, 255);
    write_png(&dir.path().join("a.png"), 6, 3, 51);
    let ds = Dataset::open(dir.path(), &inputs, &DataOptions::default()).unwrap();
    assert_eq!(ds.len(), 2);
    // Sorted by name; resized to the input's 2x2; scaled by 1/255.
    let s = ds.sample(0).unwrap();
    assert_eq!(s[0].shape(), &[1, 1, 2, 2]);
    assert!(s[0]
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .all(|&x| (x - 0.2).abs() < 1e-6));
    let opts = DataOptions {
        preprocess: Some(Preprocess::parse("scale=1,mean=1,std=2").unwrap()),
        ..DataOptions::default()
    };
    let ds = Dataset::open(dir.path(), &inputs, &opts).unwrap();
    assert_eq!(
        ds.sample(1).unwrap()[0].as_slice::<f32>().unwrap()[0],
        127.0
    );
    // A three-channel input reads color.
    let rgb = vec![spec("x", DType::F32, &[None, Some(3), Some(2), Some(2)])];
    assert_eq!(
        Dataset::open(dir.path(), &rgb, &DataOptions::default())
            .unwrap()
            .sample(0)
            .unwrap()[0]
            .shape(),
        &[1, 3, 2, 2]
    );
    // Class folders: names that are integers are the labels.
    let classes = tempfile::tempdir().unwrap();
    for (class, n) in [("3", 2), ("7", 1)] {
        let d = classes.path().join(class);
        std::fs::create_dir(&d).unwrap();
        for i in 0..n {
            write_png(&d.join(format!("{i}.png")), 2, 2, 0);
        }
    }
    let ds = Dataset::open(classes.path(), &inputs, &DataOptions::default()).unwrap();
    assert_eq!(ds.labels(), Some(&[3i64, 3, 7][..]));
    // An unreadable image.
    std::fs::write(dir.path().join("c.png"), b"not a png").unwrap();
    let ds = Dataset::open(dir.path(), &inputs, &DataOptions::default()).unwrap();
    let e = ds.sample(2).unwrap_err().to_string();
    assert!(e.contains("c.png"), "{e}");
}

fn write_wav(path: &Path, rate: u32, n: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..n {
        w.write_sample((i as i16) * 8).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn wav_folders() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("a.wav"), 16000, 10);
    write_wav(&dir.path().join("b.wav"), 16000, 3);
    // silero-like: input [?, ?], state [2, ?, 128], sr scalar int64.
    let inputs = vec![
        spec("input", DType::F32, &[None, None]),
        spec("state", DType::F32, &[Some(2), None, Some(128)]),
        spec("sr", DType::I64, &[]),
    ];
    let e = err(Dataset::open(dir.path(), &inputs, &DataOptions::default()));
    assert!(e.contains("'input'") && e.contains("--frame"), "{e}");
    let opts = DataOptions {
        frame: Some(4),
        set: vec![("sr".into(), Tensor::scalar(16000i64))],
        ..DataOptions::default()
    };
    let ds = Dataset::open(dir.path(), &inputs, &opts).unwrap();
    // a.wav: frames at 0 and 4; b.wav: one padded frame.
    assert_eq!(ds.len(), 3);
    let s = ds.sample(1).unwrap();
    assert_eq!(s[0].shape(), &[1, 4]);
    assert_eq!(s[0].as_slice::<f32>().unwrap()[0], 32.0 / 32768.0);
    assert_eq!(s[1].shape(), &[2, 1, 128]);
    assert_eq!(s[2].to_i64_vec().unwrap(), vec![16000]);
    let last = ds.sample(2).unwrap();
    assert_eq!(last[0].as_slice::<f32>().unwrap()[3], 0.0);
    assert!(ds.describe().contains("frames of 4"), "{}", ds.describe());
    let hop = DataOptions {
        hop: Some(2),
        ..opts.clone()
    };
    assert_eq!(Dataset::open(dir.path(), &inputs, &hop).unwrap().len(), 5);
    // The frame comes from a known last dim.
    let fixed = vec![spec("input", DType::F32, &[Some(1), Some(5)])];
    let ds = Dataset::open(dir.path(), &fixed, &DataOptions::default()).unwrap();
    assert_eq!(ds.len(), 3);
    // Another sample rate is an error naming the file.
    write_wav(&dir.path().join("c.wav"), 8000, 10);
    let e = err(Dataset::open(dir.path(), &inputs, &opts));
    assert!(e.contains("c.wav") && e.contains("8000"), "{e}");
    let at8k = DataOptions {
        set: vec![("sr".into(), Tensor::scalar(8000i64))],
        ..opts
    };
    let e = err(Dataset::open(dir.path(), &inputs, &at8k));
    assert!(e.contains("a.wav") && e.contains("16000"), "{e}");
}
