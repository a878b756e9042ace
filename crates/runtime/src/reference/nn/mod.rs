//! Reference kernels of the nn family.

pub(crate) mod conv;
mod einsum;
pub(crate) mod float;
pub mod gemm;
mod norm;
mod pad;
mod pool;
pub(crate) mod resize;

use slimnet_ir::ops::NnOp;
use slimnet_tensor::Tensor;

pub fn run(
    op: &NnOp,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    match op {
        NnOp::Conv(c) => conv::run_conv(c, inputs),
        NnOp::ConvTranspose(c) => conv::run_conv_transpose(c, inputs),
        NnOp::MaxPool(p) => pool::run_max_pool(&p.window, p.storage_order, inputs, num_outputs),
        NnOp::AveragePool(p) => pool::run_average_pool(&p.window, p.count_include_pad, inputs),
        NnOp::LpPool(p) => pool::run_lp_pool(&p.window, p.p, inputs),
        NnOp::GlobalAveragePool => pool::run_global_pool(false, inputs),
        NnOp::GlobalMaxPool => pool::run_global_pool(true, inputs),
        NnOp::Gemm(g) => gemm::run_gemm(g, inputs),
        NnOp::MatMul => gemm::run_matmul(inputs),
        NnOp::BatchNormalization(b) => norm::run_batch_norm(b, inputs, num_outputs),
        NnOp::InstanceNormalization { epsilon } => norm::run_instance_norm(*epsilon, inputs),
        NnOp::GroupNormalization(g) => norm::run_group_norm(g, inputs),
        NnOp::Lrn(l) => norm::run_lrn(l, inputs),
        NnOp::Resize(r) => resize::run_resize(r, inputs),
        NnOp::Upsample(u) => resize::run_upsample(u, inputs),
        NnOp::Pad(p) => pad::run_pad(p, inputs),
        NnOp::DepthToSpace { blocksize, crd } => {
            norm::run_depth_space(*blocksize, *crd, true, inputs)
        }
        NnOp::SpaceToDepth { blocksize, crd } => {
            norm::run_depth_space(*blocksize, *crd, false, inputs)
        }
        NnOp::Einsum { equation } => einsum::run_einsum(equation, inputs),
    }
}

#[cfg(test)]
mod robustness {
    //! Arbitrary shapes and attributes: every kernel answers `Ok` or `Err`, never panics.

    use super::*;
    use proptest::prelude::*;
    use slimnet_ir::ops::nn::{
        AutoPad, CoordinateMode, KeepAspectRatio, NearestMode, Pad, PadMode, Resize, ResizeMode,
        Window,
    };
    use slimnet_ir::ops::nn::{AveragePool, Conv, ConvTranspose, MaxPool};

    fn tensor(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            shape.to_vec(),
            (0..n).map(|i| (i % 7) as f32 - 3.0).collect(),
        )
        .unwrap()
    }

    fn shape(rank: std::ops::Range<usize>) -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0usize..5, rank)
    }

    fn window() -> impl Strategy<Value = Window> {
        (
            0usize..4,
            prop::collection::vec(-1i64..4, 0..4),
            prop::collection::vec(-1i64..4, 0..3),
            prop::collection::vec(-1i64..3, 0..3),
            prop::collection::vec(-2i64..3, 0..7),
            any::<bool>(),
        )
            .prop_map(
                |(ap, kernel_shape, strides, dilations, pads, ceil_mode)| Window {
                    auto_pad: [
                        AutoPad::NotSet,
                        AutoPad::SameUpper,
                        AutoPad::SameLower,
                        AutoPad::Valid,
                    ][ap],
                    kernel_shape,
                    strides,
                    dilations,
                    pads,
                    ceil_mode,
                },
            )
    }

    proptest! {
        #[test]
        fn window_kernels_never_panic(xs in shape(0..6), ws in shape(0..6), w in window(), group in -1i64..4,
                                      out_shape in prop::collection::vec(0i64..9, 0..3)) {
            let (x, wt) = (tensor(&xs), tensor(&ws));
            let ins = [Some(&x), Some(&wt)];
            let _ = run(&NnOp::Conv(Conv { window: w.clone(), group }), &ins, 1);
            let ct = ConvTranspose { window: w.clone(), group, output_padding: vec![], output_shape: out_shape };
            let _ = run(&NnOp::ConvTranspose(ct), &ins, 1);
            let _ = run(&NnOp::MaxPool(MaxPool { window: w.clone(), storage_order: 1 }), &ins[..1], 2);
            let _ = run(&NnOp::AveragePool(AveragePool { window: w, count_include_pad: true }), &ins[..1], 1);
            let _ = run(&NnOp::GlobalMaxPool, &ins[..1], 1);
            let _ = run(&NnOp::MatMul, &ins, 1);
            let _ = run(&NnOp::Einsum { equation: "ij,jk->ik".into() }, &ins, 1);
            let _ = run(&NnOp::Einsum { equation: "...i,...i".into() }, &ins, 1);
        }

        #[test]
        fn related_shapes_never_panic(n in 0usize..3, c in 1usize..5, h in 0usize..7, wd in 0usize..7,
                                      m in 0usize..5, kh in 0usize..4, kw in 1usize..4, w in window(), group in 1i64..3,
                                      lens in prop::collection::vec(0i32..5, 0..3)) {
            let g = group as usize;
            let x = tensor(&[n, c, h, wd]);
            let wt = tensor(&[m, c / g, kh, kw]);
            let wt_t = tensor(&[c, m, kh, kw]);
            let b = tensor(&[m]);
            let _ = run(&NnOp::Conv(Conv { window: w.clone(), group }), &[Some(&x), Some(&wt), Some(&b)], 1);
            let ct = ConvTranspose { window: w.clone(), group, output_padding: vec![], output_shape: vec![] };
            let _ = run(&NnOp::ConvTranspose(ct), &[Some(&x), Some(&wt_t), Some(&b)], 1);
            let _ = run(&NnOp::MaxPool(MaxPool { window: w, storage_order: 0 }), &[Some(&x)], 2);
            // A recurrent layer on [seq=h, batch=n, input=c] with hidden m.
            let xs = tensor(&[h, n, c]);
            let (wr, rr) = (tensor(&[1, 4 * m, c]), tensor(&[1, 4 * m, m]));
            let sl = Tensor::from_vec(vec![lens.len()], lens).unwrap();
            let lstm = slimnet_ir::ops::RnnOp::Lstm(slimnet_ir::ops::rnn::Recurrent {
                direction: slimnet_ir::ops::rnn::Direction::Forward,
                hidden_size: None,
                activations: vec![slimnet_ir::ops::rnn::Activation::Sigmoid; 3],
                clip: Some(1.0),
                layout: 0,
                input_forget: false,
                linear_before_reset: false,
            });
            let _ = crate::reference::rnn::run(&lstm, &[Some(&xs), Some(&wr), Some(&rr), None, Some(&sl)], 3);
        }

        #[test]
        fn resize_and_pad_never_panic(xs in shape(0..5), scales in prop::collection::vec(0.0f32..3.0, 0..5),
                                      sizes in prop::collection::vec(-1i64..6, 0..5),
                                      pads in prop::collection::vec(-4i64..4, 0..9), mode in 0usize..3, pm in 0usize..4) {
            let x = tensor(&xs);
            let s = Tensor::from_vec(vec![scales.len()], scales).unwrap();
            let z = Tensor::from_vec(vec![sizes.len()], sizes).unwrap();
            let r = Resize {
                mode: [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic][mode],
                coordinate_mode: CoordinateMode::TfCropAndResize,
                nearest_mode: NearestMode::RoundPreferFloor,
                cubic_coeff_a: -0.75,
                exclude_outside: true,
                extrapolation_value: 0.0,
                antialias: mode > 0,
                axes: vec![],
                keep_aspect_ratio: KeepAspectRatio::NotSmaller,
                opset: 19,
            };
            let _ = run(&NnOp::Resize(r.clone()), &[Some(&x), None, Some(&s)], 1);
            let _ = run(&NnOp::Resize(r), &[Some(&x), Some(&s), None, Some(&z)], 1);
            let p = Tensor::from_vec(vec![pads.len()], pads).unwrap();
            let mode = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap][pm];
            let _ = run(&NnOp::Pad(Pad { mode, pads: None, value: 0.0, opset: 19 }), &[Some(&x), Some(&p)], 1);
            let _ = run(&NnOp::DepthToSpace { blocksize: 2, crd: false }, &[Some(&x)], 1);
        }
    }
}
