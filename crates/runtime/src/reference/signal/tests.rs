use slimnet_ir::ops::signal::WindowKind;
use slimnet_tensor::{f16, DType, Element};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn run1(op: &SignalOp, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    run(op, inputs, 1).map(|mut v| v.remove(0))
}

fn close(got: &Tensor, want: &[f64]) {
    let g = got.to_vec::<f64>().unwrap();
    assert_eq!(g.len(), want.len(), "{g:?} vs {want:?}");
    for (x, y) in g.iter().zip(want) {
        assert!(
            (x - y).abs() <= 1e-5 * y.abs().max(1.0),
            "{g:?} vs {want:?}"
        );
    }
}

fn dft17(axis: i64, inverse: bool, onesided: bool) -> SignalOp {
    SignalOp::Dft {
        axis: Some(axis),
        inverse,
        onesided,
    }
}

#[test]
fn dft_of_a_real_signal_by_hand() {
    let x = t(&[1, 4, 1], vec![1f32, 2., 3., 4.]);
    let y = run1(&dft17(1, false, false), &[Some(&x)]).unwrap();
    assert_eq!(y.shape(), &[1, 4, 2]);
    assert_eq!(y.dtype(), DType::F32);
    close(&y, &[10., 0., -2., 2., -2., 0., -2., -2.]);
    // The inverse brings the complex spectrum back to the signal.
    let back = run1(&dft17(1, true, false), &[Some(&y)]).unwrap();
    close(&back, &[1., 0., 2., 0., 3., 0., 4., 0.]);
    // One-sided: bins 0..=n/2.
    let half = run1(&dft17(1, false, true), &[Some(&x)]).unwrap();
    assert_eq!(half.shape(), &[1, 3, 2]);
    close(&half, &[10., 0., -2., 2., -2., 0.]);
}

#[test]
fn dft_pads_and_cuts_to_dft_length() {
    let x = t(&[1, 2, 1], vec![1f64, 2.]);
    let four = Tensor::scalar(4i64);
    let y = run1(&dft17(1, false, false), &[Some(&x), Some(&four)]).unwrap();
    assert_eq!(y.shape(), &[1, 4, 2]);
    close(&y, &[3., 0., 1., -2., -1., 0., 1., 2.]);
    let one = Tensor::scalar(1i32);
    let y = run1(&dft17(1, false, false), &[Some(&x), Some(&one)]).unwrap();
    close(&y, &[1., 0.]);
}

#[test]
fn dft_axis_input_and_inner_dims() {
    // [2, 2, 1]: transform along axis 0 for each of the 2 columns.
    let x = t(&[2, 2, 1], vec![1f32, 2., 3., 5.]);
    let op = SignalOp::Dft {
        axis: None,
        inverse: false,
        onesided: false,
    };
    let axis = Tensor::scalar(0i64);
    let y = run1(&op, &[Some(&x), None, Some(&axis)]).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2]);
    close(&y, &[4., 0., 7., 0., -2., 0., -3., 0.]);
    // Default axis -2 is the last signal axis: along the rows.
    let y = run1(&op, &[Some(&x)]).unwrap();
    close(&y, &[3., 0., -1., 0., 8., 0., -2., 0.]);
}

#[test]
fn inverse_real_fft_restores_real_signals() {
    for n in [4usize, 5] {
        let signal: Vec<f64> = (0..n).map(|i| (i * i) as f64 - 1.5).collect();
        let x = t(&[1, n, 1], signal.clone());
        let len = Tensor::scalar(n as i64);
        let spec = run1(&dft17(1, false, true), &[Some(&x)]).unwrap();
        assert_eq!(spec.shape(), &[1, n / 2 + 1, 2]);
        let back = run1(&dft17(1, true, true), &[Some(&spec), Some(&len)]).unwrap();
        assert_eq!(back.shape(), &[1, n, 1]);
        close(&back, &signal);
    }
    // Without dft_length the length is 2 * (bins - 1).
    let spec = t(&[1, 3, 2], vec![10f32, 0., -2., 2., -2., 0.]);
    let back = run1(&dft17(-2, true, true), &[Some(&spec)]).unwrap();
    assert_eq!(back.shape(), &[1, 4, 1]);
    close(&back, &[1., 2., 3., 4.]);
}

#[test]
fn dft_keeps_half_precision_and_refuses_bad_input() {
    let x = t(&[1, 2, 1], vec![f16::from_f32(1.0), f16::from_f32(3.0)]);
    let y = run1(&dft17(1, false, false), &[Some(&x)]).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    close(&y, &[4., 0., -2., 0.]);
    let three = t(&[1, 2, 3], vec![0f32; 6]);
    assert!(run1(&dft17(1, false, false), &[Some(&three)]).is_err());
    let x = t(&[1, 2, 1], vec![1f32, 2.]);
    assert!(run1(&dft17(-1, false, false), &[Some(&x)]).is_err());
    assert!(run1(&dft17(2, false, false), &[Some(&x)]).is_err());
    let zero = Tensor::scalar(0i64);
    assert!(run1(&dft17(1, false, false), &[Some(&x), Some(&zero)]).is_err());
    let huge = Tensor::scalar(1i64 << 40);
    assert!(run1(&dft17(1, false, false), &[Some(&x), Some(&huge)]).is_err());
    let ints = t(&[1, 2, 1], vec![1i32, 2]);
    assert!(run1(&dft17(1, false, false), &[Some(&ints)]).is_err());
    assert!(run1(&dft17(1, false, false), &[None]).is_err());
}

#[test]
fn stft_frames_with_and_without_window() {
    let x = t(&[1, 8, 1], (0..8).map(|v| v as f32).collect());
    let step = Tensor::scalar(4i64);
    let len = Tensor::scalar(4i64);
    let op = SignalOp::Stft { onesided: true };
    let y = run1(&op, &[Some(&x), Some(&step), None, Some(&len)]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 3, 2]);
    close(&y, &[6., 0., -2., 2., -2., 0., 22., 0., -2., 2., -2., 0.]);
    let w = t(&[4], vec![0f32, 1., 1., 0.]);
    let y = run1(&op, &[Some(&x), Some(&step), Some(&w)]).unwrap();
    close(&y, &[3., 0., -2., -1., 1., 0., 11., 0., -6., -5., 1., 0.]);
    let full = SignalOp::Stft { onesided: false };
    let y = run1(&full, &[Some(&x), Some(&step), Some(&w)]).unwrap();
    assert_eq!(y.shape(), &[1, 2, 4, 2]);
    // Mismatched window and frame_length, a frame longer than the signal, a zero step.
    let five = Tensor::scalar(5i64);
    assert!(run1(&op, &[Some(&x), Some(&step), Some(&w), Some(&five)]).is_err());
    let long = Tensor::scalar(9i64);
    assert!(run1(&op, &[Some(&x), Some(&step), None, Some(&long)]).is_err());
    let zero = Tensor::scalar(0i64);
    assert!(run1(&op, &[Some(&x), Some(&zero), None, Some(&len)]).is_err());
}

fn window_op(kind: WindowKind, periodic: bool, dtype: DType) -> SignalOp {
    SignalOp::Window {
        kind,
        periodic,
        output_datatype: dtype,
    }
}

#[test]
fn windows_by_hand() {
    let four = Tensor::scalar(4i64);
    let three = Tensor::scalar(3i32);
    let y = run1(
        &window_op(WindowKind::Hann, true, DType::F32),
        &[Some(&four)],
    )
    .unwrap();
    assert_eq!(y.dtype(), DType::F32);
    close(&y, &[0., 0.5, 1., 0.5]);
    let y = run1(
        &window_op(WindowKind::Hann, false, DType::F64),
        &[Some(&three)],
    )
    .unwrap();
    close(&y, &[0., 1., 0.]);
    let two = Tensor::scalar(2i64);
    let y = run1(
        &window_op(WindowKind::Hamming, true, DType::F32),
        &[Some(&two)],
    )
    .unwrap();
    close(&y, &[4. / 46., 1.]);
    let y = run1(
        &window_op(WindowKind::Blackman, false, DType::F32),
        &[Some(&three)],
    )
    .unwrap();
    close(&y, &[0., 1., 0.]);
    let y = run1(
        &window_op(WindowKind::Blackman, true, DType::F32),
        &[Some(&four)],
    )
    .unwrap();
    close(&y, &[0., 0.34, 1., 0.34]);
    let y = run1(
        &window_op(WindowKind::Hann, true, DType::I32),
        &[Some(&four)],
    )
    .unwrap();
    assert_eq!(y.as_slice::<i32>().unwrap(), &[0, 0, 1, 0]);
    let zero = Tensor::scalar(0i64);
    let y = run1(
        &window_op(WindowKind::Hann, true, DType::F32),
        &[Some(&zero)],
    )
    .unwrap();
    assert_eq!(y.shape(), &[0]);
    let negative = Tensor::scalar(-1i64);
    assert!(run1(
        &window_op(WindowKind::Hann, true, DType::F32),
        &[Some(&negative)]
    )
    .is_err());
    let huge = Tensor::scalar(1i64 << 40);
    assert!(run1(
        &window_op(WindowKind::Hann, true, DType::F32),
        &[Some(&huge)]
    )
    .is_err());
    let float = Tensor::scalar(4f32);
    assert!(run1(
        &window_op(WindowKind::Hann, true, DType::F32),
        &[Some(&float)]
    )
    .is_err());
}

#[test]
fn mel_weight_matrix_of_the_onnx_example() {
    let inputs = [
        Tensor::scalar(8i32),
        Tensor::scalar(16i32),
        Tensor::scalar(8192i32),
        Tensor::scalar(0f32),
        Tensor::scalar(4096f32),
    ];
    let op = SignalOp::MelWeightMatrix {
        output_datatype: DType::F32,
    };
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
    let y = run1(&op, &refs).unwrap();
    assert_eq!(y.shape(), &[9, 8]);
    let mut want = vec![0f64; 72];
    for (row, col) in [
        (0, 0),
        (0, 1),
        (1, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
        (5, 7),
    ] {
        want[row * 8 + col] = 1.0;
    }
    close(&y, &want);
    // An upper edge past the spectrogram's bins is an error, not a panic.
    let mut bad = inputs.clone();
    bad[4] = Tensor::scalar(20000f32);
    let refs: Vec<Option<&Tensor>> = bad.iter().map(Some).collect();
    assert!(run1(&op, &refs).is_err());
    let mut bad = inputs;
    bad[2] = Tensor::scalar(0i32);
    let refs: Vec<Option<&Tensor>> = bad.iter().map(Some).collect();
    assert!(run1(&op, &refs).is_err());
}
