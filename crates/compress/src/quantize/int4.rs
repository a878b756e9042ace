//! Int4 weight-only quantization of MatMul and Gemm (`weight_bits == 4`).
//!
//! Every MatMul/Gemm with a constant 2-D f32 weight (not excluded) gets its weight
//! `[K, N]` (a Gemm with `transB` is rewritten to `transB = 0` with the weight
//! transposed) quantized in blocks of `block_size` rows along K: one f32 scale per
//! (block, column), symmetric, values in `[-8, 7]`. The scale is `c·max|w| / 7` with
//! the clip factor `c` searched per (block, column) for the least squared error.
//! The weight becomes an INT4 initializer read through an opset-21
//! `DequantizeLinear` (`axis` 0, `block_size`, no zero point); activations stay
//! float, and convolutions are left in float in this mode. The model's opset is
//! raised to 21 (see [`super::opset`]). Fidelity is measured against the float
//! model like the int8 path's; layers are kept in float only to meet a target the
//! all-int4 model misses.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use slimnet_ir::ops::nn::Gemm;
use slimnet_ir::ops::{NnOp, QuantOp};
use slimnet_ir::{Model, Node, Op, Value, ValueInfo};
use slimnet_runtime::{optimize, OptimizeOptions, ReferenceFolder};
use slimnet_tensor::{DType, Tensor, TensorData};

use super::measure::{Fidelity, Oracle};
use super::targets::{find_targets, Target, TargetKind};
use super::{LayerReport, LayerStatus, QuantizeOptions, QuantizeReport, QuantizedModel, Stage};
use crate::CompressError;

/// The opset of blocked DequantizeLinear with int4.
const OPSET: i64 = 21;

/// Clip factors tried for each (block, column).
const CLIPS: [f32; 8] = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65];

/// Int4 values and scales of one weight.
pub(crate) struct Int4Weight {
    /// `[K, N]` row-major, each in `[-8, 7]`.
    pub values: Vec<i8>,
    /// `[ceil(K / block), N]` row-major.
    pub scales: Vec<f32>,
}

/// Quantizes `w` (`k×n`, row-major) in blocks of `block` rows along k.
pub(crate) fn quantize_blocked(w: &[f32], k: usize, n: usize, block: usize) -> Int4Weight {
    let blocks = k.div_ceil(block);
    let mut values = vec![0i8; k * n];
    let mut scales = vec![0f32; blocks * n];
    for b in 0..blocks {
        let rows = b * block..((b + 1) * block).min(k);
        for j in 0..n {
            let amax = rows
                .clone()
                .map(|p| w[p * n + j].abs())
                .fold(0f32, f32::max);
            if amax == 0.0 || !amax.is_finite() {
                scales[b * n + j] = if amax == 0.0 { 1.0 } else { f32::MAX / 8.0 };
                continue;
            }
            let q = |s: f32, x: f32| (x / s).round_ties_even().clamp(-8.0, 7.0);
            let mut best = (f64::INFINITY, amax / 7.0);
            for c in CLIPS {
                let s = c * amax / 7.0;
                let err: f64 = rows
                    .clone()
                    .map(|p| {
                        let x = w[p * n + j];
                        let d = (q(s, x) * s - x) as f64;
                        d * d
                    })
                    .sum();
                if err < best.0 {
                    best = (err, s);
                }
            }
            let s = best.1;
            scales[b * n + j] = s;
            for p in rows.clone() {
                values[p * n + j] = q(s, w[p * n + j]) as i8;
            }
        }
    }
    Int4Weight { values, scales }
}

fn internal(e: impl std::fmt::Display) -> CompressError {
    CompressError::Unsupported(format!("internal error building the int4 graph: {e}"))
}

/// Checks the options of int4 mode.
pub(crate) fn check_options(options: &QuantizeOptions) -> Result<(), CompressError> {
    let b = options.block_size;
    if b < 16 || !b.is_power_of_two() {
        return Err(CompressError::Option {
            name: "block-size".into(),
            reason: format!("must be a power of two from 16 on, got {b}"),
        });
    }
    Ok(())
}

/// One MatMul/Gemm prepared for int4: its layer index in the report, the target,
/// and its weight as `[K, N]` int4.
struct Prepared {
    layer: usize,
    target: Target,
    k: usize,
    n: usize,
    weight: Int4Weight,
}

/// `float` with the prepared layers for which `keep(layer)` holds rewritten to int4
/// (opset raised to 21 when any is).
fn build(
    float: &Model,
    prepared: &[Prepared],
    block: usize,
    keep: impl Fn(usize) -> bool,
) -> Result<Model, CompressError> {
    let mut out = float.clone();
    let mut names: HashSet<String> = out.graph.values.iter().map(|v| v.name.clone()).collect();
    let mut fresh = |base: String| {
        let mut name = base.clone();
        let mut k = 1;
        while names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        names.insert(name.clone());
        name
    };
    let mut added = Vec::new();
    for p in prepared.iter().filter(|p| keep(p.layer)) {
        let (k, n, t) = (p.k, p.n, &p.target);
        let base = out.graph.values[t.weight].name.clone();
        let g = &mut out.graph;
        let mut add = |name: String, t: Option<Tensor>, info: ValueInfo| {
            let mut v = Value::new(name);
            v.info = info;
            v.constant = t.map(Arc::new);
            g.add_value(v)
        };
        let values = TensorData::i4(p.weight.values.clone()).map_err(internal)?;
        let wq = Tensor::new(vec![k, n], values).map_err(internal)?;
        let ws = Tensor::from_vec(vec![k.div_ceil(block), n], p.weight.scales.clone())
            .map_err(internal)?;
        let (wq_info, ws_info) = (ValueInfo::of_tensor(&wq), ValueInfo::of_tensor(&ws));
        let wq_v = add(fresh(format!("{base}_int4")), Some(wq), wq_info);
        let ws_v = add(fresh(format!("{base}_scale")), Some(ws), ws_info);
        let info = ValueInfo::known(DType::F32, &[k, n]);
        let dq_v = add(fresh(format!("{base}_dequantized")), None, info);
        added.push(Node {
            name: fresh(format!("{base}_DequantizeLinear")),
            op: Op::Quant(QuantOp::Dequantize {
                axis: 0,
                block_size: block as i64,
                output_dtype: None,
            }),
            inputs: vec![Some(wq_v), Some(ws_v)],
            outputs: vec![Some(dq_v)],
        });
        let node = &mut out.graph.nodes[t.node];
        node.inputs[1] = Some(dq_v);
        if let Op::Nn(NnOp::Gemm(gm)) = &node.op {
            node.op = Op::Nn(NnOp::Gemm(Gemm {
                trans_b: false,
                ..gm.clone()
            }));
        }
    }
    if added.is_empty() {
        return Ok(out);
    }
    out.graph.nodes.extend(added);
    out.graph.sort().map_err(internal)?;
    super::opset::upgrade(&mut out, OPSET)?;
    slimnet_ir::infer_shapes(&mut out.graph, &ReferenceFolder).map_err(internal)?;
    Ok(out)
}

/// Int4 weight-only quantization; see the module documentation. With a fidelity
/// target that the all-int4 model misses, each layer is measured alone in int4 and
/// the worst are kept in float, one more at a time, until the target is met.
pub(crate) fn quantize_int4(
    model: &Model,
    samples: Vec<Vec<(String, Tensor)>>,
    options: &QuantizeOptions,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<QuantizedModel, CompressError> {
    check_options(options)?;
    let started = Instant::now();
    let mut float = model.clone();
    optimize(&mut float, &OptimizeOptions::default())?;
    let block = options.block_size;
    let mut layers = Vec::new();
    let mut prepared = Vec::new();
    for t in find_targets(&float.graph) {
        let excluded = options
            .exclude
            .iter()
            .any(|e| *e == t.name || e == t.op_type);
        let reason = if excluded {
            Some("excluded by the user".to_string())
        } else if matches!(t.kind, TargetKind::Conv { .. }) {
            Some("convolution: int4 mode quantizes MatMul/Gemm weights only".to_string())
        } else {
            None
        };
        layers.push(LayerReport {
            node: t.name.clone(),
            op_type: t.op_type.to_string(),
            status: reason.clone().map_or(LayerStatus::Int4, LayerStatus::Float),
            local_sqnr_db: None,
            activation_range: None,
        });
        if reason.is_some() {
            continue;
        }
        let w = float.graph.values[t.weight]
            .constant
            .as_deref()
            .expect("targets have constant weights");
        let wv = w.as_slice::<f32>().map_err(internal)?;
        let (r, c) = (w.shape()[0], w.shape()[1]);
        // The weight as [K, N].
        let (k, n, kn): (usize, usize, Vec<f32>) = match t.kind {
            TargetKind::Gemm { trans_b: true } => {
                let mut tr = vec![0f32; r * c];
                for i in 0..r {
                    for j in 0..c {
                        tr[j * r + i] = wv[i * c + j];
                    }
                }
                (c, r, tr)
            }
            _ => (r, c, wv.to_vec()),
        };
        prepared.push(Prepared {
            layer: layers.len() - 1,
            target: t,
            k,
            n,
            weight: quantize_blocked(&kn, k, n, block),
        });
    }
    let calibration_time = started.elapsed();
    let search_started = Instant::now();
    let take = options.search_samples.max(1).min(samples.len());
    let measure: Vec<_> = samples.into_iter().take(take).collect();
    let oracle = Oracle::new(&float, measure, options.threads)?;
    let meets = |f: &Fidelity| {
        options
            .min_cosine
            .is_none_or(|c| f.meets(c, options.min_agreement))
    };
    let mut evaluations = 1;
    progress(Stage::Searching, 0, 1);
    let mut out = build(&float, &prepared, block, |_| true)?;
    let mut fidelity = oracle.fidelity(&out)?;
    if !meets(&fidelity) && !prepared.is_empty() {
        // Each layer alone in int4, worst first.
        let total = 2 * prepared.len();
        let mut alone = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.iter().enumerate() {
            progress(Stage::Measuring, i, total);
            let m = build(&float, &prepared, block, |l| l == p.layer)?;
            alone.push((p.layer, oracle.fidelity(&m)?.score()));
            evaluations += 1;
        }
        alone.sort_by(|a, b| a.1.total_cmp(&b.1));
        for kept in 1..=alone.len() {
            progress(Stage::Searching, kept, alone.len());
            let float_set: Vec<usize> = alone[..kept].iter().map(|a| a.0).collect();
            out = build(&float, &prepared, block, |l| !float_set.contains(&l))?;
            fidelity = oracle.fidelity(&out)?;
            evaluations += 1;
            if meets(&fidelity) || kept == alone.len() {
                for &(l, score) in &alone[..kept] {
                    layers[l].status = LayerStatus::Float(format!(
                        "kept in float for the fidelity target (alone in int4: cosine {score:.5})"
                    ));
                }
                break;
            }
        }
    }
    progress(Stage::Searching, 1, 1);
    let met = meets(&fidelity);
    let outputs = float
        .graph
        .outputs
        .iter()
        .map(|&v| float.graph.values[v].name.clone())
        .collect();
    Ok(QuantizedModel {
        model: out,
        report: QuantizeReport {
            method: options.method,
            samples: take,
            search_samples: take,
            outputs,
            layers,
            fidelity_all_int8: None,
            fidelity: Some(fidelity),
            target: options.min_cosine,
            target_agreement: options.min_cosine.and(options.min_agreement),
            met,
            evaluations,
            equalized_pairs: 0,
            calibration_time,
            search_time: search_started.elapsed(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_int4_is_close_and_in_range() {
        let (k, n, block) = (70, 5, 32);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1 + i % 3) as f32)
            .collect();
        let q = quantize_blocked(&w, k, n, block);
        assert_eq!(q.scales.len(), 3 * n);
        assert!(q.values.iter().all(|v| (-8..=7).contains(v)));
        for p in 0..k {
            for j in 0..n {
                let s = q.scales[(p / block) * n + j];
                let back = q.values[p * n + j] as f32 * s;
                // The clipped error is bounded by the clip factor's cut.
                assert!((back - w[p * n + j]).abs() <= 0.4 * s * 8.0, "{p},{j}");
            }
        }
        let zero = quantize_blocked(&[0.0; 4], 2, 2, 16);
        assert!(zero.values.iter().all(|&v| v == 0));
    }
}
