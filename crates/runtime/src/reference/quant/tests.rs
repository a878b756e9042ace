use slimnet_ir::ops::QuantOp;
use slimnet_tensor::{DType, Element, Tensor};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn quantize(axis: i64, block_size: i64) -> QuantOp {
    QuantOp::Quantize {
        axis,
        block_size,
        saturate: true,
        output_dtype: None,
        precision: None,
    }
}

fn run1(op: &QuantOp, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    run(op, inputs, 1).map(|mut v| v.remove(0))
}

#[test]
fn rounding_is_half_to_even() {
    let x = t(&[8], vec![0.5f32, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 2.4999]);
    let scale = Tensor::scalar(1f32);
    let zp = Tensor::scalar(0i8);
    let y = run1(&quantize(1, 0), &[Some(&x), Some(&scale), Some(&zp)]).unwrap();
    assert_eq!(y.dtype(), DType::I8);
    assert_eq!(y.as_slice::<i8>().unwrap(), &[0, 2, 2, 4, 0, -2, -2, 2]);
    assert_eq!(quantize_value(2.5, 0, 0, 255), 2);
    assert_eq!(quantize_value(3.5, 0, 0, 255), 4);
    assert_eq!(quantize_value(-3.5, 0, -128, 127), -4);
}

#[test]
fn saturates_to_the_type_range() {
    let x = t(
        &[6],
        vec![-1000f32, -1.0, 0.0, 300.0, f32::INFINITY, f32::NEG_INFINITY],
    );
    let scale = Tensor::scalar(1f32);
    // Default output: uint8.
    let y = run1(&quantize(1, 0), &[Some(&x), Some(&scale)]).unwrap();
    assert_eq!(y.as_slice::<u8>().unwrap(), &[0, 0, 0, 255, 255, 0]);
    let zp = Tensor::scalar(10i8);
    let y = run1(&quantize(1, 0), &[Some(&x), Some(&scale), Some(&zp)]).unwrap();
    assert_eq!(y.as_slice::<i8>().unwrap(), &[-128, 9, 10, 127, 127, -128]);
    let zp = Tensor::scalar(0i16);
    let y = run1(&quantize(1, 0), &[Some(&x), Some(&scale), Some(&zp)]).unwrap();
    assert_eq!(
        y.as_slice::<i16>().unwrap(),
        &[-1000, -1, 0, 300, 32767, -32768]
    );
    assert_eq!(saturate(70000.0, 0, 65535), 65535);
    assert_eq!(saturate(f64::NAN, -128, 127), -128);
}

#[test]
fn per_axis_and_blocked_scales() {
    let x = t(&[2, 4], vec![1f32, 2., 3., 4., 5., 6., 7., 8.]);
    // Per axis 0: one scale per row.
    let s = t(&[2], vec![1f32, 2.]);
    let y = run1(&quantize(0, 0), &[Some(&x), Some(&s)]).unwrap();
    assert_eq!(y.as_slice::<u8>().unwrap(), &[1, 2, 3, 4, 2, 3, 4, 4]);
    // Blocks of 3 along axis 1: two blocks per row, the last one short.
    let s = t(&[2, 2], vec![1f32, 2., 1., 4.]);
    let y = run1(&quantize(1, 3), &[Some(&x), Some(&s)]).unwrap();
    assert_eq!(y.as_slice::<u8>().unwrap(), &[1, 2, 3, 2, 5, 6, 7, 2]);
    let back = run1(
        &QuantOp::Dequantize {
            axis: 1,
            block_size: 3,
            output_dtype: None,
        },
        &[Some(&y), Some(&s)],
    )
    .unwrap();
    assert_eq!(
        back.as_slice::<f32>().unwrap(),
        &[1., 2., 3., 4., 5., 6., 7., 8.]
    );
    // A scale of the wrong shape is an error, not a panic.
    let bad = t(&[3], vec![1f32, 2., 3.]);
    assert!(run1(&quantize(0, 0), &[Some(&x), Some(&bad)]).is_err());
}

#[test]
fn matmul_integer_subtracts_zero_points_per_row_and_column() {
    let a = t(&[2, 2], vec![10u8, 11, 12, 13]);
    let b = t(&[2, 2], vec![1u8, 2, 3, 4]);
    let azp = t(&[2], vec![10u8, 12]);
    let bzp = t(&[2], vec![1u8, 0]);
    let y = run1(
        &QuantOp::MatMulInteger,
        &[Some(&a), Some(&b), Some(&azp), Some(&bzp)],
    )
    .unwrap();
    // A - zp = [[0, 1], [0, 1]], B - zp = [[0, 2], [2, 4]].
    assert_eq!(y.dtype(), DType::I32);
    assert_eq!(y.as_slice::<i32>().unwrap(), &[2, 4, 2, 4]);
}

#[test]
fn blocked_int4_round_trip_saturates_and_keeps_the_type() {
    use slimnet_tensor::TensorData;
    // x [3, 2], blocks of 2 rows along axis 0: scales [2, 2].
    let x = t(&[3, 2], vec![1.0f32, -20.0, 0.26, 3.0, 100.0, -0.1]);
    let scale = t(&[2, 2], vec![0.5f32, 2.0, 1.0, 0.1]);
    let zp = Tensor::new(vec![2, 2], TensorData::i4(vec![0, 0, 0, 0]).unwrap()).unwrap();
    let q = run1(&quantize(0, 2), &[Some(&x), Some(&scale), Some(&zp)]).unwrap();
    assert_eq!(q.dtype(), DType::I4);
    assert_eq!(q.to_i64_vec().unwrap(), vec![2, -8, 1, 2, 7, -1]);
    let dq = QuantOp::Dequantize {
        axis: 0,
        block_size: 2,
        output_dtype: None,
    };
    let y = run1(&dq, &[Some(&q), Some(&scale), Some(&zp)]).unwrap();
    let want = [1.0f32, -16.0, 0.5, 4.0, 7.0, -0.1];
    for (a, b) in y.as_slice::<f32>().unwrap().iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // uint4 with a zero point.
    let u = Tensor::new(vec![2], TensorData::u4(vec![0, 15]).unwrap()).unwrap();
    let uz = Tensor::new(vec![], TensorData::u4(vec![8]).unwrap()).unwrap();
    let s = Tensor::scalar(1f32);
    let y = run1(&dq, &[Some(&u), Some(&s), Some(&uz)]).unwrap();
    assert_eq!(y.as_slice::<f32>().unwrap(), &[-8.0, 7.0]);
}
