//! Each pass on small hand-built graphs, run before and after.

use std::sync::Arc;

use slimnet_ir::ops::ControlOp;
use slimnet_ir::{Attr, Attributes, Graph, Model, Node, NodeContext, Op, Value, ValueInfo};
use slimnet_tensor::{DType, Tensor};

use super::*;
use crate::run_model;

pub(super) fn op(op_type: &str, opset: i64, inputs: usize, attrs: Vec<(&str, Attr)>) -> Op {
    let ctx = NodeContext {
        name: op_type,
        op_type,
        domain: "",
        opset,
        num_inputs: inputs,
        num_outputs: 1,
    };
    let mut a = Attributes::new(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect());
    Op::parse(&ctx, &mut a).expect("valid op")
}

/// A graph builder: values by name, nodes with one output.
pub(super) struct B {
    pub(super) g: Graph,
    opset: i64,
}

impl B {
    pub(super) fn new(opset: i64) -> B {
        B {
            g: Graph::default(),
            opset,
        }
    }
    pub(super) fn input(&mut self, name: &str, shape: &[usize]) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::known(DType::F32, shape);
        let id = self.g.add_value(v);
        self.g.inputs.push(id);
        id
    }
    pub(super) fn constant(&mut self, name: &str, t: Tensor) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::of_tensor(&t);
        v.constant = Some(Arc::new(t));
        self.g.add_value(v)
    }
    pub(super) fn f32s(&mut self, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) -> usize {
        let n: usize = shape.iter().product();
        let t = Tensor::from_vec(shape.to_vec(), (0..n).map(f).collect()).unwrap();
        self.constant(name, t)
    }
    pub(super) fn node(&mut self, out: &str, o: Op, inputs: &[usize]) -> usize {
        let id = self.g.add_value(Value::new(out));
        self.g.nodes.push(Node {
            name: out.into(),
            op: o,
            inputs: inputs.iter().map(|&i| Some(i)).collect(),
            outputs: vec![Some(id)],
        });
        id
    }
    pub(super) fn op(
        &mut self,
        out: &str,
        op_type: &str,
        inputs: &[usize],
        attrs: Vec<(&str, Attr)>,
    ) -> usize {
        let o = op(op_type, self.opset, inputs.len(), attrs);
        self.node(out, o, inputs)
    }
    pub(super) fn model(mut self, outputs: &[usize]) -> Model {
        self.g.outputs = outputs.to_vec();
        Model {
            graph: self.g,
            ir_version: 8,
            opsets: vec![(String::new(), self.opset)],
            ..Default::default()
        }
    }
}

pub(super) fn ramp(shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
        .collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

/// Optimizes with the given options and checks outputs (names included) agree.
/// [`check`] with default options and one input `x`, a [`ramp`] of `shape`.
pub(super) fn check_x(model: &Model, shape: &[usize], step: f32, tol: f64) -> Model {
    check(
        model,
        &OptimizeOptions::default(),
        &[("x", ramp(shape, step))],
        tol,
    )
}

pub(super) fn check(
    model: &Model,
    options: &OptimizeOptions,
    inputs: &[(&str, Tensor)],
    tol: f64,
) -> Model {
    let inputs: Vec<(String, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let mut opt = model.clone();
    optimize(&mut opt, options).unwrap();
    let want = run_model(model, inputs.clone()).unwrap();
    let got = run_model(&opt, inputs).unwrap();
    assert_eq!(want.len(), got.len());
    for ((wn, w), (gn, g)) in want.iter().zip(&got) {
        assert_eq!(wn, gn);
        assert_eq!(w.shape(), g.shape());
        let (w, g) = (w.to_vec::<f64>().unwrap(), g.to_vec::<f64>().unwrap());
        for (a, b) in w.iter().zip(&g) {
            assert!((a - b).abs() <= tol * a.abs().max(1.0), "{a} vs {b}");
        }
    }
    opt
}

pub(super) fn op_types(m: &Model) -> Vec<&'static str> {
    m.graph.nodes.iter().map(|n| n.op.op_type()).collect()
}

#[test]
fn conv_batchnorm_folds_into_conv() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 2, 5, 5]);
    let w = b.f32s("w", &[3, 2, 3, 3], |i| (i as f32 * 0.37).sin());
    let bias = b.f32s("b", &[3], |i| i as f32 * 0.1);
    let y = b.op("y", "Conv", &[x, w, bias], vec![]);
    let s = b.f32s("s", &[3], |i| 1.0 + i as f32);
    let beta = b.f32s("beta", &[3], |i| 0.5 - i as f32);
    let mean = b.f32s("mean", &[3], |i| 0.2 * i as f32);
    let var = b.f32s("var", &[3], |i| 0.5 + i as f32);
    let z = b.op("z", "BatchNormalization", &[y, s, beta, mean, var], vec![]);
    let m = b.model(&[z]);
    let opt = check_x(&m, &[1, 2, 5, 5], 0.3, 1e-5);
    assert_eq!(op_types(&opt), ["Conv"]);
    assert_eq!(opt.graph.values[opt.graph.outputs[0]].name, "z");
}

#[test]
fn conv_then_add_takes_the_bias() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 2, 4, 4]);
    let w = b.f32s("w", &[3, 2, 1, 1], |i| i as f32 - 2.0);
    let y = b.op("y", "Conv", &[x, w], vec![]);
    let c = b.f32s("c", &[3, 1, 1], |i| i as f32 * 0.25);
    let z = b.op("z", "Add", &[c, y], vec![]);
    let m = b.model(&[z]);
    let opt = check_x(&m, &[1, 2, 4, 4], 0.5, 1e-6);
    assert_eq!(op_types(&opt), ["Conv"]);
}

#[test]
fn hardswish_patterns_become_one_op() {
    for opset in [13, 14] {
        let mut b = B::new(opset);
        let x = b.input("x", &[2, 8]);
        let three = b.constant("three", Tensor::scalar(3f32));
        let zero = b.constant("zero", Tensor::scalar(0f32));
        let six = b.constant("six", Tensor::scalar(6f32));
        let a = b.op("a", "Add", &[three, x], vec![]);
        let c = b.op("c", "Clip", &[a, zero, six], vec![]);
        let m = b.op("m", "Mul", &[x, c], vec![]);
        let y = b.op("y", "Div", &[m, six], vec![]);
        let model = b.model(&[y]);
        let inputs = [("x", ramp(&[2, 8], 0.8))];
        let opt = check(&model, &OptimizeOptions::default(), &inputs, 1e-6);
        if opset >= 14 {
            assert_eq!(op_types(&opt), ["HardSwish"]);
        } else {
            let mut t = op_types(&opt);
            t.sort();
            assert_eq!(t, ["HardSigmoid", "Mul"]);
        }
    }
}

#[test]
fn hardsigmoid_form_and_product_fuse() {
    let mut b = B::new(14);
    let x = b.input("x", &[4]);
    let three = b.constant("three", Tensor::scalar(3f32));
    let sixth = b.constant("sixth", Tensor::scalar(1f32 / 6.0));
    let a = b.op("a", "Add", &[x, three], vec![]);
    // Clip with bounds as attributes (the form before opset 11).
    let clip = op(
        "Clip",
        6,
        1,
        vec![("min", Attr::Float(0.0)), ("max", Attr::Float(6.0))],
    );
    let c = b.node("c", clip, &[a]);
    let h = b.op("h", "Mul", &[sixth, c], vec![]);
    let y = b.op("y", "Mul", &[h, x], vec![]);
    let model = b.model(&[y]);
    let opt = check_x(&model, &[4], 1.0, 1e-6);
    assert_eq!(op_types(&opt), ["HardSwish"]);
}

#[test]
fn constant_if_is_inlined_with_captures() {
    let mut b = B::new(13);
    b.input("x", &[3]);
    let k = b.constant("k", Tensor::scalar(true));
    // then: t = x + one; else: e = x * two.
    let mut then = Graph::default();
    let mut cx = Value::new("x");
    cx.outer = true;
    let cx = then.add_value(cx);
    let mut one = Value::new("one");
    one.constant = Some(Arc::new(Tensor::scalar(1f32)));
    let one = then.add_value(one);
    let t = then.add_value(Value::new("t"));
    then.nodes.push(Node {
        name: "then_add".into(),
        op: op("Add", 13, 2, vec![]),
        inputs: vec![Some(cx), Some(one)],
        outputs: vec![Some(t)],
    });
    then.outputs = vec![t];
    let mut other = then.clone();
    other.nodes[0].op = op("Mul", 13, 2, vec![]);
    other.values[t].name = "e".into();
    let ctl = Op::Control(ControlOp::If {
        then_branch: Box::new(then),
        else_branch: Box::new(other),
    });
    let y = b.node("y", ctl, &[k]);
    let z = b.op("z", "Neg", &[y], vec![]);
    let model = b.model(&[y, z]);
    let opt = check_x(&model, &[3], 1.0, 0.0);
    let mut t = op_types(&opt);
    t.sort();
    assert_eq!(t, ["Add", "Neg"]);
    let names: Vec<&str> = opt
        .graph
        .outputs
        .iter()
        .map(|&o| opt.graph.values[o].name.as_str())
        .collect();
    assert_eq!(names, ["y", "z"]);
}

#[test]
fn shape_chains_fold_once_shapes_are_bound() {
    let mut b = B::new(13);
    let x = b.input("x", &[2, 6]);
    b.g.values[x].info = ValueInfo {
        dtype: Some(DType::F32),
        shape: Some(vec![
            slimnet_ir::Dim::Symbol("n".into()),
            slimnet_ir::Dim::Known(6),
        ]),
    };
    let s = b.op("s", "Shape", &[x], vec![]);
    let i0 = b.constant("i0", Tensor::scalar(0i64));
    let n = b.op("n", "Gather", &[s, i0], vec![]);
    let ax = b.constant("ax", Tensor::from_vec(vec![1], vec![0i64]).unwrap());
    let n1 = b.op("n1", "Unsqueeze", &[n, ax], vec![]);
    let rest = b.constant("rest", Tensor::from_vec(vec![2], vec![3i64, 2]).unwrap());
    let shape = b.op("shape", "Concat", &[n1, rest], vec![("axis", Attr::Int(0))]);
    let r = b.op("r", "Reshape", &[x, shape], vec![]);
    let id = b.op("id", "Identity", &[r], vec![]);
    let model = b.model(&[id]);
    let mut bound = model.clone();
    specialize(
        &mut bound,
        &[InputBinding {
            name: "x".into(),
            shape: vec![2, 6],
            value: None,
        }],
    )
    .unwrap();
    let opt = check_x(&bound, &[2, 6], 1.0, 0.0);
    assert_eq!(op_types(&opt), ["Reshape"]);
    assert_eq!(opt.graph.values[opt.graph.outputs[0]].name, "id");
    let report = optimize(&mut bound, &OptimizeOptions::default()).unwrap();
    assert_eq!((report.nodes_before, report.nodes_after), (6, 1));
    assert_eq!(report.changed("fold_constants"), 4);
}

#[test]
fn specialize_binds_values_and_checks_shapes() {
    let mut b = B::new(13);
    let x = b.input("x", &[2]);
    let sr = b.input("sr", &[]);
    b.g.values[sr].info = ValueInfo::known(DType::I64, &[]);
    let f = b.op("f", "Cast", &[sr], vec![("to", Attr::Int(1))]);
    let y = b.op("y", "Mul", &[x, f], vec![]);
    let mut model = b.model(&[y]);
    let bad = InputBinding {
        name: "x".into(),
        shape: vec![3],
        value: None,
    };
    assert!(matches!(
        specialize(&mut model.clone(), &[bad]),
        Err(RuntimeError::Input { .. })
    ));
    let bind = InputBinding {
        name: "sr".into(),
        shape: vec![],
        value: Some(Tensor::scalar(16000i64)),
    };
    specialize(&mut model, &[bind]).unwrap();
    optimize(&mut model, &OptimizeOptions::default()).unwrap();
    assert_eq!(op_types(&model), ["Mul"]);
    assert_eq!(model.graph.inputs.len(), 2, "bound inputs stay declared");
    let out = run_model(
        &model,
        vec![
            (
                "x".into(),
                Tensor::from_vec(vec![2], vec![1f32, 2.0]).unwrap(),
            ),
            ("sr".into(), Tensor::scalar(8000i64)),
        ],
    )
    .unwrap();
    assert_eq!(out[0].1.to_vec::<f32>().unwrap(), [16000.0, 32000.0]);
}

#[test]
fn passes_can_be_turned_off() {
    let mut b = B::new(13);
    let x = b.input("x", &[2]);
    let i = b.op("i", "Identity", &[x], vec![]);
    let y = b.op("y", "Relu", &[i], vec![]);
    let model = b.model(&[y]);
    let off = OptimizeOptions {
        remove_noops: false,
        ..OptimizeOptions::default()
    };
    let opt = check(&model, &off, &[("x", ramp(&[2], 1.0))], 0.0);
    assert_eq!(op_types(&opt), ["Identity", "Relu"]);
    let opt = check_x(&model, &[2], 1.0, 0.0);
    assert_eq!(op_types(&opt), ["Relu"]);
}
