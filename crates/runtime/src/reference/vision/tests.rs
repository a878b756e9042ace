use slimnet_ir::ops::vision::{
    Col2Im, GridPadding, GridSample, GridSampleMode, MaxUnpool, RoiAlign,
};
use slimnet_tensor::{f16, DType};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn run1(op: &VisionOp, inputs: &[Option<&Tensor>]) -> Result<Tensor, String> {
    run(op, inputs, 1).map(|mut v| v.remove(0))
}

fn f64s(x: &Tensor) -> Vec<f64> {
    x.to_vec::<f64>().unwrap()
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

fn grid_op(mode: GridSampleMode, padding_mode: GridPadding, align_corners: bool) -> VisionOp {
    VisionOp::GridSample(GridSample {
        mode,
        padding_mode,
        align_corners,
        legacy: false,
    })
}

/// Samples the 2x2 image [[1, 2], [3, 4]] at the normalized points (x, y).
fn sample_2x2(op: &VisionOp, points: &[(f32, f32)]) -> Vec<f64> {
    let x = t(&[1, 1, 2, 2], vec![1f32, 2., 3., 4.]);
    let g: Vec<f32> = points.iter().flat_map(|&(a, b)| [a, b]).collect();
    let grid = t(&[1, 1, points.len(), 2], g);
    f64s(&run1(op, &[Some(&x), Some(&grid)]).unwrap())
}

#[test]
fn grid_sample_linear_nearest_and_padding() {
    use GridPadding::*;
    use GridSampleMode::*;
    // align_corners: -1 and 1 are the corner pixels' centers.
    let linear = grid_op(Linear, Zeros, true);
    close(
        &sample_2x2(
            &linear,
            &[(0.0, 0.0), (-1.0, -1.0), (1.0, -1.0), (0.0, 1.0)],
        ),
        &[2.5, 1.0, 2.0, 3.5],
    );
    // Without align_corners the corner centers are at -0.5 and 0.5; -1 is the outer
    // edge, halfway into the zero padding.
    let edges = grid_op(Linear, Zeros, false);
    close(
        &sample_2x2(&edges, &[(-0.5, -0.5), (-1.0, -0.5), (-1.0, -1.0)]),
        &[1.0, 0.5, 0.25],
    );
    let border = grid_op(Linear, Border, false);
    close(
        &sample_2x2(&border, &[(-1.0, -1.0), (3.0, 3.0)]),
        &[1.0, 4.0],
    );
    // Reflection at the outer edges (-0.5 and 1.5): x = 2.5 reflects to 0.5, the
    // middle of the row, and x = 3 to pixel 0.
    let reflection = grid_op(Linear, Reflection, false);
    close(
        &sample_2x2(&reflection, &[(2.0, -0.5), (2.5, -0.5)]),
        &[1.5, 1.0],
    );
    // Nearest rounds half to even: x = 0.5 pixel goes to pixel 0.
    let nearest = grid_op(Nearest, Zeros, true);
    close(
        &sample_2x2(&nearest, &[(0.0, -1.0), (0.2, 1.0), (2.0, 0.0)]),
        &[1.0, 4.0, 0.0],
    );
    // Cubic at pixel centers is exact.
    let cubic = grid_op(Cubic, Border, true);
    close(
        &sample_2x2(&cubic, &[(-1.0, -1.0), (1.0, 1.0), (-5.0, 7.0)]),
        &[1.0, 4.0, 3.0],
    );
    // NaN coordinates give NaN.
    assert!(sample_2x2(&linear, &[(f32::NAN, 0.0)])[0].is_nan());
}

#[test]
fn grid_sample_volumetric_and_dtypes() {
    // A 2x2x2 volume holding its own flat index; the center averages all eight.
    let x = t(&[1, 1, 2, 2, 2], (0..8).map(|v| v as f64).collect());
    let grid = t(&[1, 1, 1, 2, 3], vec![0f64, 0., 0., 1., -1., 1.]);
    let out = run1(
        &grid_op(GridSampleMode::Linear, GridPadding::Zeros, true),
        &[Some(&x), Some(&grid)],
    )
    .unwrap();
    assert_eq!(out.shape(), &[1, 1, 1, 1, 2]);
    assert_eq!(out.dtype(), DType::F64);
    // (x, y, z) = (1, -1, 1): z = 1, y = 0, x = 1 -> index 4 + 0 + 1.
    close(&f64s(&out), &[3.5, 5.0]);
    // Integer images are sampled through f64 and truncated back.
    let xi = t(&[1, 1, 1, 2], vec![10i32, 21]);
    let g = t(&[1, 1, 1, 2], vec![0f32, 0.]);
    let out = run1(
        &grid_op(GridSampleMode::Linear, GridPadding::Zeros, true),
        &[Some(&xi), Some(&g)],
    )
    .unwrap();
    assert_eq!(out.as_slice::<i32>().unwrap(), &[15]);
    // Legacy (opset 16) ops take 4-D input only; grids must be float.
    let legacy = VisionOp::GridSample(GridSample {
        mode: GridSampleMode::Linear,
        padding_mode: GridPadding::Zeros,
        align_corners: false,
        legacy: true,
    });
    assert!(run1(&legacy, &[Some(&x), Some(&grid)]).is_err());
    let int_grid = t(&[1, 1, 1, 2], vec![0i64, 0]);
    assert!(run1(&legacy, &[Some(&xi), Some(&int_grid)]).is_err());
}

#[test]
fn affine_grid_identity() {
    let theta = t(&[1, 2, 3], vec![1f32, 0., 0., 0., 1., 0.]);
    let size = t(&[4], vec![1i64, 1, 2, 2]);
    let aligned = run1(
        &VisionOp::AffineGrid {
            align_corners: true,
        },
        &[Some(&theta), Some(&size)],
    )
    .unwrap();
    assert_eq!(aligned.shape(), &[1, 2, 2, 2]);
    close(&f64s(&aligned), &[-1., -1., 1., -1., -1., 1., 1., 1.]);
    let centered = run1(
        &VisionOp::AffineGrid {
            align_corners: false,
        },
        &[Some(&theta), Some(&size)],
    )
    .unwrap();
    close(
        &f64s(&centered),
        &[-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0.5],
    );
    // 3-D: a translation by (0.25, 0, -1) of a single voxel at the center.
    let theta = t(
        &[1, 3, 4],
        vec![1f64, 0., 0., 0.25, 0., 1., 0., 0., 0., 0., 1., -1.],
    );
    let size = t(&[5], vec![1i64, 3, 1, 1, 1]);
    let out = run1(
        &VisionOp::AffineGrid {
            align_corners: true,
        },
        &[Some(&theta), Some(&size)],
    )
    .unwrap();
    assert_eq!(out.shape(), &[1, 1, 1, 1, 3]);
    close(&f64s(&out), &[0.25, 0., -1.]);
    let wrong = t(&[4], vec![2i64, 1, 2, 2]);
    assert!(run1(
        &VisionOp::AffineGrid {
            align_corners: true
        },
        &[Some(&theta), Some(&wrong)]
    )
    .is_err());
}

#[test]
fn col2im_sums_overlapping_blocks() {
    let op = VisionOp::Col2Im(Col2Im {
        dilations: vec![],
        pads: vec![],
        strides: vec![],
    });
    // Image 1x3 from two 1x2 blocks: [a, b + c, d].
    let x = t(&[1, 2, 2], vec![1f32, 10., 100., 1000.]);
    let image = t(&[2], vec![1i64, 3]);
    let block = t(&[2], vec![1i64, 2]);
    let out = run1(&op, &[Some(&x), Some(&image), Some(&block)]).unwrap();
    assert_eq!(out.shape(), &[1, 1, 1, 3]);
    close(&f64s(&out), &[1., 110., 1000.]);
    // Integer input wraps; padding drops what falls outside.
    let padded = VisionOp::Col2Im(Col2Im {
        dilations: vec![],
        pads: vec![0, 1, 0, 1],
        strides: vec![],
    });
    let x = t(&[1, 2, 4], vec![1i8, 2, 3, 4, 10, 20, 30, 40]);
    let out = run1(&padded, &[Some(&x), Some(&image), Some(&block)]).unwrap();
    assert_eq!(out.as_slice::<i8>().unwrap(), &[2 + 10, 3 + 20, 4 + 30]);
    let too_few = t(&[1, 2, 3], vec![0f32; 6]);
    assert!(run1(&op, &[Some(&too_few), Some(&image), Some(&block)]).is_err());
}

#[test]
fn roi_align_averages_bilinear_samples() {
    let op = |max: bool, half_pixel: bool| {
        VisionOp::RoiAlign(RoiAlign {
            max,
            output_height: 1,
            output_width: 2,
            sampling_ratio: 1,
            spatial_scale: 1.0,
            half_pixel,
            has_coordinate_mode: true,
        })
    };
    // A 1x4 ramp [0, 1, 2, 3] (two rows alike); the region x in [0, 4) split in two
    // bins samples their centers x = 1 and 3 (output_half_pixel) or 0.5 and 2.5.
    let x = t(&[1, 1, 2, 4], vec![0f32, 1., 2., 3., 0., 1., 2., 3.]);
    let rois = t(&[1, 4], vec![0f32, 0., 4., 1.]);
    let idx = t(&[1], vec![0i64]);
    let out = run1(&op(false, false), &[Some(&x), Some(&rois), Some(&idx)]).unwrap();
    assert_eq!(out.shape(), &[1, 1, 1, 2]);
    close(&f64s(&out), &[1., 3.]);
    let out = run1(&op(false, true), &[Some(&x), Some(&rois), Some(&idx)]).unwrap();
    close(&f64s(&out), &[0.5, 2.5]);
    // Max mode takes the largest weighted corner: at x = 2.5, 0.5 * 3.
    let out = run1(&op(true, true), &[Some(&x), Some(&rois), Some(&idx)]).unwrap();
    close(&f64s(&out), &[0.5, 1.5]);
    let bad = t(&[1], vec![1i64]);
    assert!(run1(&op(false, true), &[Some(&x), Some(&rois), Some(&bad)]).is_err());
}

#[test]
fn non_max_suppression_keeps_the_best_of_overlaps() {
    let op = |c| VisionOp::NonMaxSuppression {
        center_point_box: c,
    };
    // Box 1 overlaps box 0 (IoU 1/3); box 2 is apart.
    let boxes = t(
        &[1, 3, 4],
        vec![0f32, 0., 1., 1., 0., 0.5, 1., 1.5, 0., 10., 1., 11.],
    );
    let scores = t(&[1, 1, 3], vec![0.9f32, 0.95, 0.3]);
    let max = t(&[1], vec![10i64]);
    let iou = t(&[1], vec![0.3f32]);
    let run_nms = |op: &VisionOp, extra: &[Option<&Tensor>]| {
        let mut inputs = vec![Some(&boxes), Some(&scores)];
        inputs.extend_from_slice(extra);
        run1(op, &inputs).unwrap()
    };
    let out = run_nms(&op(false), &[Some(&max), Some(&iou)]);
    assert_eq!(out.shape(), &[2, 3]);
    assert_eq!(out.as_slice::<i64>().unwrap(), &[0, 0, 1, 0, 0, 2]);
    // IoU 1/3 does not exceed a threshold of 0.4: all kept; a limit of 1 keeps one.
    let loose = t(&[1], vec![0.4f32]);
    assert_eq!(
        run_nms(&op(false), &[Some(&max), Some(&loose)]).shape(),
        &[3, 3]
    );
    let one = t(&[1], vec![1i64]);
    assert_eq!(
        run_nms(&op(false), &[Some(&one), Some(&loose)])
            .as_slice::<i64>()
            .unwrap(),
        &[0, 0, 1]
    );
    // A score threshold drops box 2; no limit input means no boxes at all.
    let score = t(&[1], vec![0.5f32]);
    assert_eq!(
        run_nms(&op(false), &[Some(&max), Some(&iou), Some(&score)])
            .as_slice::<i64>()
            .unwrap(),
        &[0, 0, 1]
    );
    assert_eq!(run_nms(&op(false), &[]).shape(), &[0, 3]);
    // Center format: the same boxes as centers and sizes.
    let centers = t(
        &[1, 3, 4],
        vec![0.5f32, 0.5, 1., 1., 1., 0.5, 1., 1., 10.5, 0.5, 1., 1.],
    );
    let out = run1(
        &op(true),
        &[Some(&centers), Some(&scores), Some(&max), Some(&iou)],
    )
    .unwrap();
    assert_eq!(out.as_slice::<i64>().unwrap(), &[0, 0, 1, 0, 0, 2]);
}

#[test]
fn max_unpool_places_values_at_their_indices() {
    let op = VisionOp::MaxUnpool(MaxUnpool {
        kernel_shape: vec![2, 2],
        pads: vec![],
        strides: vec![2, 2],
    });
    let x = t(&[1, 1, 2, 2], vec![5f32, 6., 7., 8.]);
    let idx = t(&[1, 1, 2, 2], vec![5i64, 7, 13, 15]);
    let out = run1(&op, &[Some(&x), Some(&idx)]).unwrap();
    assert_eq!(out.shape(), &[1, 1, 4, 4]);
    close(
        &f64s(&out),
        &[
            0., 0., 0., 0., 0., 5., 0., 6., 0., 0., 0., 0., 0., 7., 0., 8.,
        ],
    );
    // A larger output shape pads after the unpooled values.
    let shape = t(&[4], vec![1i64, 1, 5, 5]);
    let out = run1(&op, &[Some(&x), Some(&idx), Some(&shape)]).unwrap();
    let mut want = vec![0.; 25];
    for (i, v) in [(6, 5.), (8, 6.), (16, 7.), (18, 8.)] {
        want[i] = v;
    }
    close(&f64s(&out), &want);
    let out_of_range = t(&[1, 1, 2, 2], vec![5i64, 7, 13, 16]);
    assert!(run1(&op, &[Some(&x), Some(&out_of_range)]).is_err());
    let small = t(&[4], vec![1i64, 1, 3, 5]);
    assert!(run1(&op, &[Some(&x), Some(&idx), Some(&small)]).is_err());
}

#[test]
fn center_crop_pad_centers() {
    let x = t(&[5], vec![1i64, 2, 3, 4, 5]);
    let all = VisionOp::CenterCropPad { axes: None };
    assert_eq!(
        run1(&all, &[Some(&x), Some(&t(&[1], vec![3i64]))])
            .unwrap()
            .as_slice::<i64>()
            .unwrap(),
        &[2, 3, 4]
    );
    // Odd differences put the extra element at the end.
    assert_eq!(
        run1(&all, &[Some(&x), Some(&t(&[1], vec![2i64]))])
            .unwrap()
            .as_slice::<i64>()
            .unwrap(),
        &[2, 3]
    );
    assert_eq!(
        run1(&all, &[Some(&x), Some(&t(&[1], vec![8i32]))])
            .unwrap()
            .as_slice::<i64>()
            .unwrap(),
        &[0, 1, 2, 3, 4, 5, 0, 0]
    );
    // Axes: crop rows, pad columns, of a string tensor.
    let s = Tensor::new(
        vec![3, 1],
        TensorData::String(vec!["a".into(), "b".into(), "c".into()]),
    )
    .unwrap();
    let op = VisionOp::CenterCropPad {
        axes: Some(vec![-1, 0]),
    };
    let out = run1(&op, &[Some(&s), Some(&t(&[2], vec![3i64, 1]))]).unwrap();
    assert_eq!(out.shape(), &[1, 3]);
    assert_eq!(
        out.data(),
        &TensorData::String(vec!["".into(), "b".into(), "".into()])
    );
    assert!(run1(&op, &[Some(&s), Some(&t(&[1], vec![3i64]))]).is_err());
    let huge = t(&[2], vec![1i64 << 20, 1 << 20]);
    let op = VisionOp::CenterCropPad {
        axes: Some(vec![0, 1]),
    };
    assert!(run1(&op, &[Some(&s), Some(&huge)]).is_err());
}

#[test]
fn cum_prod_directions() {
    let x = t(&[4], vec![1f32, 2., 3., 4.]);
    let axis = Tensor::scalar(0i64);
    let run_cp = |exclusive, reverse| {
        f64s(
            &run1(
                &VisionOp::CumProd { exclusive, reverse },
                &[Some(&x), Some(&axis)],
            )
            .unwrap(),
        )
    };
    close(&run_cp(false, false), &[1., 2., 6., 24.]);
    close(&run_cp(true, false), &[1., 1., 2., 6.]);
    close(&run_cp(false, true), &[24., 24., 12., 4.]);
    close(&run_cp(true, true), &[24., 12., 4., 1.]);
    // Integers along the last axis, wrapping on overflow.
    let m = t(&[2, 2], vec![3i32, 4, 1 << 20, 1 << 12]);
    let last = Tensor::scalar(-1i32);
    let out = run1(
        &VisionOp::CumProd {
            exclusive: false,
            reverse: false,
        },
        &[Some(&m), Some(&last)],
    )
    .unwrap();
    assert_eq!(out.as_slice::<i32>().unwrap(), &[3, 12, 1 << 20, 0]);
    let two = t(&[2], vec![0i64, 1]);
    assert!(run1(
        &VisionOp::CumProd {
            exclusive: false,
            reverse: false
        },
        &[Some(&x), Some(&two)]
    )
    .is_err());
}

#[test]
fn det_of_batches() {
    let x = t(&[2, 2, 2], vec![1f32, 2., 3., 4., 2., 0., 0., 3.]);
    let out = run1(&VisionOp::Det, &[Some(&x)]).unwrap();
    assert_eq!(out.shape(), &[2]);
    close(&f64s(&out), &[-2., 6.]);
    // A zero first pivot needs a row swap.
    let p = t(&[3, 3], vec![0f64, 1., 2., 1., 0., 3., 4., -3., 8.]);
    close(&f64s(&run1(&VisionOp::Det, &[Some(&p)]).unwrap()), &[-2.]);
    let h = t(
        &[2, 2],
        vec![
            f16::from_f32(2.),
            f16::from_f32(1.),
            f16::from_f32(1.),
            f16::from_f32(2.),
        ],
    );
    let out = run1(&VisionOp::Det, &[Some(&h)]).unwrap();
    assert_eq!(out.dtype(), DType::F16);
    close(&f64s(&out), &[3.]);
    assert!(run1(&VisionOp::Det, &[Some(&t(&[2, 3], vec![0f32; 6]))]).is_err());
    assert!(run1(&VisionOp::Det, &[Some(&t(&[2, 2], vec![0i32; 4]))]).is_err());
}

mod robustness {
    use proptest::prelude::*;
    use slimnet_ir::ops::vision::{
        Col2Im, GridPadding, GridSample, GridSampleMode, MaxUnpool, RoiAlign,
    };

    use super::*;

    fn ops() -> Vec<VisionOp> {
        let mut v = Vec::new();
        for mode in [
            GridSampleMode::Linear,
            GridSampleMode::Nearest,
            GridSampleMode::Cubic,
        ] {
            for padding_mode in [
                GridPadding::Zeros,
                GridPadding::Border,
                GridPadding::Reflection,
            ] {
                for align_corners in [false, true] {
                    v.push(VisionOp::GridSample(GridSample {
                        mode,
                        padding_mode,
                        align_corners,
                        legacy: false,
                    }));
                }
            }
        }
        v.push(VisionOp::AffineGrid {
            align_corners: true,
        });
        v.push(VisionOp::Col2Im(Col2Im {
            dilations: vec![],
            pads: vec![],
            strides: vec![],
        }));
        v.push(VisionOp::Col2Im(Col2Im {
            dilations: vec![2, 1],
            pads: vec![1, 0, 0, 1],
            strides: vec![1, 3],
        }));
        for max in [false, true] {
            v.push(VisionOp::RoiAlign(RoiAlign {
                max,
                output_height: 2,
                output_width: 3,
                sampling_ratio: 0,
                spatial_scale: 0.5,
                half_pixel: !max,
                has_coordinate_mode: true,
            }));
        }
        v.push(VisionOp::NonMaxSuppression {
            center_point_box: false,
        });
        v.push(VisionOp::NonMaxSuppression {
            center_point_box: true,
        });
        v.push(VisionOp::MaxUnpool(MaxUnpool {
            kernel_shape: vec![2, 2],
            pads: vec![],
            strides: vec![2, 2],
        }));
        v.push(VisionOp::MaxUnpool(MaxUnpool {
            kernel_shape: vec![3],
            pads: vec![1, 0],
            strides: vec![],
        }));
        v.push(VisionOp::CenterCropPad { axes: None });
        v.push(VisionOp::CenterCropPad {
            axes: Some(vec![0, -1]),
        });
        v.push(VisionOp::CumProd {
            exclusive: true,
            reverse: true,
        });
        v.push(VisionOp::Det);
        v
    }

    fn float() -> impl Strategy<Value = f32> {
        prop_oneof![8 => -3.0f32..3.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY), 1 => Just(-1e30f32)]
    }

    fn int() -> impl Strategy<Value = i64> {
        prop_oneof![8 => -2i64..8, 1 => Just(1i64 << 40), 1 => Just(i64::MIN)]
    }

    /// A pool of inputs: float and int tensors of small random shapes.
    fn pool() -> impl Strategy<Value = Vec<Tensor>> {
        let shape = prop::collection::vec(0usize..4, 0..6);
        let f = (shape.clone(), prop::collection::vec(float(), 1..64)).prop_map(|(s, v)| {
            let n: usize = s.iter().product();
            t(&s, (0..n).map(|i| v[i % v.len()]).collect())
        });
        let i = (prop::collection::vec(int(), 0..6), 0usize..2).prop_map(|(v, rank)| {
            match (rank, v.as_slice()) {
                (0, [x, ..]) => Tensor::scalar(*x),
                _ => t(&[v.len()], v),
            }
        });
        prop::collection::vec(prop_oneof![f, i], 5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Any inputs give outputs or a reason, never a panic.
        #[test]
        fn bad_inputs_never_panic(pool in pool(), picks in prop::collection::vec(0usize..5, 5), which in 0usize..64) {
            let ops = ops();
            let op = &ops[which % ops.len()];
            let inputs: Vec<Option<&Tensor>> = picks.iter().map(|&p| Some(&pool[p])).collect();
            for n in 1..=inputs.len() {
                let _ = run(op, &inputs[..n], 1);
            }
        }
    }

    fn filled(shape: &[usize], v: &[f32]) -> Tensor {
        let n: usize = shape.iter().product();
        t(shape, (0..n).map(|i| v[i % v.len()]).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Well-shaped inputs with extreme values: outputs or a reason, never a panic.
        #[test]
        fn extreme_values_never_panic(
            dims in prop::collection::vec(0usize..4, 6),
            v in prop::collection::vec(float(), 1..16),
            scale in prop_oneof![Just(1.0f32), Just(3.0), Just(1e30)],
            which in 0usize..64,
        ) {
            let v: Vec<f32> = v.iter().map(|x| x * scale).collect();
            let ops = ops();
            let op = &ops[which % ops.len()];
            let [n, c, h, w, oh, ow] = [dims[0], dims[1], dims[2] + 1, dims[3] + 1, dims[4], dims[5]];
            let x = filled(&[n.max(1), c, h, w], &v);
            let out = match op {
                VisionOp::GridSample(_) => {
                    let grid = filled(&[n.max(1), oh, ow, 2], &v);
                    run(op, &[Some(&x), Some(&grid)], 1)
                }
                VisionOp::RoiAlign(_) => {
                    let rois = filled(&[oh, 4], &v);
                    let idx = t(&[oh], vec![0i64; oh]);
                    run(op, &[Some(&x), Some(&rois), Some(&idx)], 1)
                }
                VisionOp::NonMaxSuppression { .. } => {
                    let boxes = filled(&[n, h, 4], &v);
                    let scores = filled(&[n, c, h], &v);
                    let max = t(&[1], vec![oh as i64]);
                    let iou = filled(&[1], &v);
                    run(op, &[Some(&boxes), Some(&scores), Some(&max), Some(&iou), Some(&iou)], 1)
                }
                VisionOp::AffineGrid { .. } => {
                    let theta = filled(&[n, 2, 3], &v);
                    let size = t(&[4], vec![n as i64, c as i64, oh as i64, ow as i64]);
                    run(op, &[Some(&theta), Some(&size)], 1)
                }
                _ => {
                    let a = t(&[2], vec![oh as i64, ow as i64]);
                    let b = t(&[2], vec![h as i64, w as i64]);
                    let _ = run(op, &[Some(&x), Some(&a), Some(&b)], 1);
                    run(op, &[Some(&x), Some(&Tensor::scalar(-1i64))], 1)
                }
            };
            if let Ok(out) = out {
                prop_assert_eq!(out.len(), 1);
            }
        }
    }
}
