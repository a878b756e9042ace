//! Rewriting a float graph into the ONNX QDQ form.
//!
//! For each quantized node, its activation input goes through
//! `QuantizeLinear → DequantizeLinear` (one pair per activation value, shared by all
//! the nodes that read it; `DynamicQuantizeLinear → DequantizeLinear` for dynamic
//! activations) and its weight becomes an int8 constant read through
//! `DequantizeLinear`. Per-channel weight scales use DequantizeLinear's `axis`
//! (opset 13+); on opsets 10 to 12, which lack it, the weight is dequantized with
//! scale 1 and multiplied by a per-channel scale constant, which is the same
//! arithmetic in plain ONNX. A corrected bias replaces the node's bias constant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use slimnet_ir::ops::{ElementwiseOp, QuantOp};
use slimnet_ir::{Graph, Model, Node, Op, Value, ValueId, ValueInfo};
use slimnet_runtime::ReferenceFolder;
use slimnet_tensor::{DType, Tensor};

use super::targets::{Target, TargetKind};
use super::weights::QuantizedWeight;
use crate::calibrate::QuantParams;
use crate::CompressError;

/// How one activation value is quantized.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ActQuant {
    /// Fixed scale and zero point from calibration.
    Static(QuantParams),
    /// Scale and zero point computed from each tensor at run time (uint8).
    Dynamic,
}

/// One node to quantize.
pub(crate) struct Quantized<'a> {
    pub target: &'a Target,
    pub act: ActQuant,
    pub weight: &'a QuantizedWeight,
    /// A replacement bias (one value per output channel), when bias correction
    /// changed it.
    pub bias: Option<Vec<f32>>,
}

/// Fresh value names for a graph.
struct Names(HashSet<String>);

impl Names {
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

struct Builder<'g> {
    graph: &'g mut Graph,
    names: Names,
    nodes: Vec<Node>,
    opset: i64,
}

impl Builder<'_> {
    fn constant(&mut self, base: &str, t: Tensor) -> ValueId {
        let mut v = Value::new(self.names.fresh(base));
        v.info = ValueInfo::of_tensor(&t);
        v.constant = Some(Arc::new(t));
        self.graph.add_value(v)
    }

    fn value(&mut self, base: &str, info: ValueInfo) -> ValueId {
        let mut v = Value::new(self.names.fresh(base));
        v.info = info;
        self.graph.add_value(v)
    }

    fn node(&mut self, name: &str, op: Op, inputs: Vec<Option<ValueId>>, outputs: Vec<ValueId>) {
        let name = self.names.fresh(name);
        self.nodes.push(Node {
            name,
            op,
            inputs,
            outputs: outputs.into_iter().map(Some).collect(),
        });
    }

    /// The dequantized copy of activation `act`.
    fn activation(&mut self, act: ValueId, q: ActQuant) -> ValueId {
        let base = self.graph.values[act].name.clone();
        let info = self.graph.values[act].info.clone();
        let with = |dtype| ValueInfo {
            dtype: Some(dtype),
            shape: info.shape.clone(),
        };
        let dq = self.value(&format!("{base}_dequantized"), info.clone());
        match q {
            ActQuant::Static(p) => {
                let scale = self.constant(&format!("{base}_scale"), Tensor::scalar(p.scale));
                let (zero, dtype) = if p.qmin < 0 {
                    let z = Tensor::scalar(p.zero_point as i8);
                    (self.constant(&format!("{base}_zero_point"), z), DType::I8)
                } else {
                    let z = Tensor::scalar(p.zero_point as u8);
                    (self.constant(&format!("{base}_zero_point"), z), DType::U8)
                };
                let quantized = self.value(&format!("{base}_quantized"), with(dtype));
                self.node(
                    &format!("{base}_QuantizeLinear"),
                    Op::Quant(QuantOp::Quantize {
                        axis: 1,
                        block_size: 0,
                        saturate: true,
                        output_dtype: None,
                        precision: None,
                    }),
                    vec![Some(act), Some(scale), Some(zero)],
                    vec![quantized],
                );
                self.dequantize(&base, quantized, scale, zero, None, dq);
            }
            ActQuant::Dynamic => {
                let quantized = self.value(&format!("{base}_quantized"), with(DType::U8));
                let scale = self.value(&format!("{base}_scale"), ValueInfo::known(DType::F32, &[]));
                let zero = self.value(
                    &format!("{base}_zero_point"),
                    ValueInfo::known(DType::U8, &[]),
                );
                self.node(
                    &format!("{base}_DynamicQuantizeLinear"),
                    Op::Quant(QuantOp::DynamicQuantize),
                    vec![Some(act)],
                    vec![quantized, scale, zero],
                );
                self.dequantize(&base, quantized, scale, zero, None, dq);
            }
        }
        dq
    }

    fn dequantize(
        &mut self,
        base: &str,
        x: ValueId,
        scale: ValueId,
        zero: ValueId,
        axis: Option<usize>,
        out: ValueId,
    ) {
        self.node(
            &format!("{base}_DequantizeLinear"),
            Op::Quant(QuantOp::Dequantize {
                axis: axis.map_or(1, |a| a as i64),
                block_size: 0,
                output_dtype: None,
            }),
            vec![Some(x), Some(scale), Some(zero)],
            vec![out],
        );
    }

    /// The dequantized weight of a target.
    fn weight(&mut self, target: &Target, w: &QuantizedWeight) -> Result<ValueId, CompressError> {
        let base = self.graph.values[target.weight].name.clone();
        let info = self.graph.values[target.weight].info.clone();
        let q = Tensor::from_vec(w.shape.clone(), w.values.clone()).map_err(internal)?;
        let q = self.constant(&format!("{base}_quantized"), q);
        let out = self.value(&format!("{base}_dequantized"), info.clone());
        let channels = w.scales.len();
        if channels == 1 {
            let s = self.constant(&format!("{base}_scale"), Tensor::scalar(w.scales[0]));
            let z = self.constant(&format!("{base}_zero_point"), Tensor::scalar(0i8));
            self.dequantize(&base, q, s, z, None, out);
        } else if self.opset >= 13 {
            let s = Tensor::from_vec(vec![channels], w.scales.clone()).map_err(internal)?;
            let s = self.constant(&format!("{base}_scale"), s);
            let z = Tensor::from_vec(vec![channels], vec![0i8; channels]).map_err(internal)?;
            let z = self.constant(&format!("{base}_zero_point"), z);
            self.dequantize(&base, q, s, z, Some(w.axis), out);
        } else {
            let one = self.constant(&format!("{base}_unit_scale"), Tensor::scalar(1.0f32));
            let z = self.constant(&format!("{base}_zero_point"), Tensor::scalar(0i8));
            let unscaled = self.value(&format!("{base}_unscaled"), info);
            self.dequantize(&base, q, one, z, None, unscaled);
            let mut shape = vec![1usize; w.shape.len()];
            shape[w.axis] = channels;
            let s = Tensor::from_vec(shape, w.scales.clone()).map_err(internal)?;
            let s = self.constant(&format!("{base}_channel_scale"), s);
            self.node(
                &format!("{base}_ChannelScale"),
                Op::Elementwise(ElementwiseOp::Mul),
                vec![Some(unscaled), Some(s)],
                vec![out],
            );
        }
        Ok(out)
    }
}

fn internal(e: impl std::fmt::Display) -> CompressError {
    CompressError::Unsupported(format!("internal error building the quantized graph: {e}"))
}

/// The model with `quantized` nodes rewritten into QDQ form; other nodes unchanged.
pub(crate) fn rewrite(model: &Model, quantized: &[Quantized]) -> Result<Model, CompressError> {
    let mut out = model.clone();
    let opset = out.opset();
    if opset < 10 {
        return Err(CompressError::Unsupported(format!(
            "the model's opset {opset} has no QuantizeLinear (needs 10 or later)"
        )));
    }
    let names = Names(out.graph.values.iter().map(|v| v.name.clone()).collect());
    let mut b = Builder {
        graph: &mut out.graph,
        names,
        nodes: Vec::new(),
        opset,
    };
    let mut dequantized: HashMap<ValueId, ValueId> = HashMap::new();
    let mut edits: Vec<(usize, usize, ValueId)> = Vec::new();
    for q in quantized {
        let t = q.target;
        let dq = match dequantized.get(&t.act) {
            Some(&v) => v,
            None => {
                let v = b.activation(t.act, q.act);
                dequantized.insert(t.act, v);
                v
            }
        };
        edits.push((t.node, 0, dq));
        let w = b.weight(t, q.weight)?;
        edits.push((t.node, 1, w));
        if let Some(bias) = &q.bias {
            let base = format!("{}_bias_corrected", t.name);
            let c = Tensor::from_vec(vec![bias.len()], bias.clone()).map_err(internal)?;
            let c = b.constant(&base, c);
            edits.push((t.node, 2, c));
        }
    }
    let added = std::mem::take(&mut b.nodes);
    let graph = &mut out.graph;
    for (node, slot, v) in edits {
        let inputs = &mut graph.nodes[node].inputs;
        if inputs.len() <= slot {
            inputs.resize(slot + 1, None);
        }
        inputs[slot] = Some(v);
    }
    graph.nodes.extend(added);
    graph.sort().map_err(internal)?;
    slimnet_ir::infer_shapes(graph, &ReferenceFolder).map_err(internal)?;
    Ok(out)
}

/// Whether a target reads a bias it can be corrected through (Conv's input 2, or
/// Gemm's 1-D `C`), or can take one (a Conv without bias).
pub(crate) fn bias_of(graph: &Graph, t: &Target) -> Option<Option<Vec<f32>>> {
    let node = &graph.nodes[t.node];
    let bias = node.inputs.get(2).copied().flatten();
    match (t.kind, bias) {
        (TargetKind::Conv { .. }, None) => Some(None),
        (TargetKind::Conv { .. } | TargetKind::Gemm { .. }, Some(b)) => {
            let c = graph.values[b].constant.as_deref()?;
            (c.rank() == 1 && c.dtype() == DType::F32)
                .then(|| c.as_slice::<f32>().ok().map(|s| s.to_vec()))
                .flatten()
                .map(Some)
        }
        _ => None,
    }
}
