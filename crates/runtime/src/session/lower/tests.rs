//! The LSTM, layer-norm and reduction lowerings on small hand-built graphs, each run
//! by a session (1 and 2 threads) and by the reference interpreter.

use std::sync::Arc;

use slimnet_ir::{Attr, Attributes, Graph, Model, Node, NodeContext, Op, Value, ValueInfo};
use slimnet_tensor::{DType, Tensor, TensorData};

use crate::{run_model, Session, SessionOptions};

/// Deterministic values in `[-scale, scale)`.
fn noise(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), noise(len, seed, scale)).unwrap()
}

/// A graph builder: values by name.
struct B {
    g: Graph,
    opset: i64,
}

impl B {
    fn new(opset: i64) -> B {
        B {
            g: Graph::default(),
            opset,
        }
    }
    fn input(&mut self, name: &str, shape: &[usize]) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::known(DType::F32, shape);
        let id = self.g.add_value(v);
        self.g.inputs.push(id);
        id
    }
    fn constant(&mut self, name: &str, t: Tensor) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::of_tensor(&t);
        v.constant = Some(Arc::new(t));
        self.g.add_value(v)
    }
    /// A node with the given (possibly omitted) inputs and outputs; returns the ids of
    /// the outputs it has.
    fn node(
        &mut self,
        op_type: &str,
        inputs: &[Option<usize>],
        outputs: &[Option<&str>],
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<usize> {
        let ctx = NodeContext {
            name: op_type,
            op_type,
            domain: "",
            opset: self.opset,
            num_inputs: inputs.len(),
            num_outputs: outputs.len(),
        };
        let mut a = Attributes::new(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect());
        let op = Op::parse(&ctx, &mut a).expect("valid op");
        let outs: Vec<Option<usize>> = outputs
            .iter()
            .map(|o| o.map(|name| self.g.add_value(Value::new(name))))
            .collect();
        self.g.nodes.push(Node {
            name: format!("{op_type}_{}", self.g.nodes.len()),
            op,
            inputs: inputs.to_vec(),
            outputs: outs.clone(),
        });
        outs.into_iter().flatten().collect()
    }
    fn op(
        &mut self,
        out: &str,
        op_type: &str,
        inputs: &[usize],
        attrs: Vec<(&str, Attr)>,
    ) -> usize {
        let ins: Vec<Option<usize>> = inputs.iter().map(|&i| Some(i)).collect();
        self.node(op_type, &ins, &[Some(out)], attrs)[0]
    }
    fn model(mut self, outputs: &[usize]) -> Model {
        self.g.outputs = outputs.to_vec();
        Model {
            graph: self.g,
            ir_version: 8,
            opsets: vec![(String::new(), self.opset)],
            ..Default::default()
        }
    }
}

/// Runs `model` with the interpreter and with sessions of 1 and 2 threads, checks the
/// outputs agree within `tol` (relative to magnitudes of at least 1), and returns the
/// kernel names of the session's steps with their op types.
fn check(model: &Model, inputs: &[(&str, Tensor)], tol: f64) -> Vec<(&'static str, String)> {
    let inputs: Vec<(String, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let want = run_model(model, inputs.clone()).unwrap();
    let mut kernels = Vec::new();
    for threads in [1, 2] {
        let options = SessionOptions {
            threads,
            optimize: true,
            profile: true,
        };
        let mut session = Session::new(model.clone(), options).unwrap();
        let got = session.run(inputs.clone()).unwrap();
        assert_eq!(want.len(), got.len());
        for ((wn, w), (gn, g)) in want.iter().zip(&got) {
            assert_eq!(wn, gn);
            assert_eq!(w.shape(), g.shape(), "{wn}");
            let (w, g) = (w.to_vec::<f64>().unwrap(), g.to_vec::<f64>().unwrap());
            for (i, (a, b)) in w.iter().zip(&g).enumerate() {
                assert!(
                    (a - b).abs() <= tol * a.abs().max(1.0),
                    "{wn}[{i}]: {a} vs {b}"
                );
            }
        }
        kernels = session
            .profile()
            .into_iter()
            .map(|p| (p.kernel, p.op_types))
            .collect();
    }
    kernels
}

#[derive(Clone, Copy)]
struct RecurrentCase {
    /// `LSTM`, or `GRU` (then `initial_c` and the third output must be off).
    op_type: &'static str,
    linear_before_reset: bool,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    direction: &'static str,
    bias: bool,
    initial_h: bool,
    initial_c: bool,
    /// Which of Y, Y_h, Y_c the node produces.
    outputs: [bool; 3],
}

impl RecurrentCase {
    /// A forward case of `op_type` with every input and output it supports.
    fn base(op_type: &'static str) -> RecurrentCase {
        let lstm = op_type == "LSTM";
        RecurrentCase {
            op_type,
            linear_before_reset: false,
            seq: 3,
            batch: 2,
            input: 5,
            hidden: 7,
            direction: "forward",
            bias: true,
            initial_h: true,
            initial_c: lstm,
            outputs: [true, true, lstm],
        }
    }
}

fn recurrent_case(c: &RecurrentCase) {
    let dirs = if c.direction == "bidirectional" { 2 } else { 1 };
    let lstm = c.op_type == "LSTM";
    let g = if lstm { 4 } else { 3 } * c.hidden;
    let mut b = B::new(14);
    let x = b.input("x", &[c.seq, c.batch, c.input]);
    let w = b.constant("w", tensor(&[dirs, g, c.input], 1, 0.5));
    let r = b.constant("r", tensor(&[dirs, g, c.hidden], 2, 0.5));
    let bias = c
        .bias
        .then(|| b.constant("b", tensor(&[dirs, 2 * g], 3, 0.5)));
    let state = [dirs, c.batch, c.hidden];
    let h0 = c.initial_h.then(|| b.input("h0", &state));
    let c0 = c.initial_c.then(|| b.input("c0", &state));
    let names = ["y", "y_h", "y_c"];
    let count = if lstm { 3 } else { 2 };
    let outs: Vec<Option<&str>> = (0..count)
        .map(|k| c.outputs[k].then_some(names[k]))
        .collect();
    let mut ins = vec![Some(x), Some(w), Some(r), bias, None, h0];
    if lstm {
        ins.push(c0);
    }
    let mut attrs = vec![
        ("hidden_size", Attr::Int(c.hidden as i64)),
        ("direction", Attr::String(c.direction.into())),
    ];
    if c.linear_before_reset {
        attrs.push(("linear_before_reset", Attr::Int(1)));
    }
    let produced = b.node(c.op_type, &ins, &outs, attrs);
    let model = b.model(&produced);
    let mut inputs = vec![("x", tensor(&[c.seq, c.batch, c.input], 4, 1.5))];
    if c.initial_h {
        inputs.push(("h0", tensor(&state, 5, 0.8)));
    }
    if c.initial_c {
        inputs.push(("c0", tensor(&state, 6, 0.8)));
    }
    let kernels = check(&model, &inputs, 1e-5);
    let kernel = if lstm { "lstm" } else { "gru" };
    assert_eq!(kernels, [(kernel, c.op_type.to_string())]);
}

#[test]
fn lstm_matches_the_reference() {
    let base = RecurrentCase::base("LSTM");
    recurrent_case(&base);
    recurrent_case(&RecurrentCase {
        seq: 2,
        batch: 1,
        hidden: 3,
        direction: "reverse",
        bias: false,
        initial_h: false,
        initial_c: false,
        outputs: [false, true, false],
        ..base
    });
    recurrent_case(&RecurrentCase {
        seq: 5,
        batch: 1,
        input: 4,
        hidden: 9,
        direction: "bidirectional",
        initial_c: false,
        outputs: [true, false, true],
        ..base
    });
    recurrent_case(&RecurrentCase {
        seq: 4,
        batch: 2,
        input: 1,
        hidden: 1,
        initial_h: false,
        outputs: [true, true, false],
        ..base
    });
    recurrent_case(&RecurrentCase {
        seq: 1,
        batch: 1,
        input: 16,
        hidden: 33,
        ..base
    });
}

#[test]
fn gru_matches_the_reference() {
    let base = RecurrentCase::base("GRU");
    for linear_before_reset in [false, true] {
        let base = RecurrentCase {
            linear_before_reset,
            ..base
        };
        recurrent_case(&base);
        recurrent_case(&RecurrentCase {
            seq: 5,
            batch: 1,
            hidden: 4,
            direction: "bidirectional",
            initial_h: false,
            outputs: [false, true, false],
            ..base
        });
        recurrent_case(&RecurrentCase {
            seq: 1,
            batch: 2,
            hidden: 11,
            direction: "reverse",
            bias: false,
            outputs: [true, false, false],
            ..base
        });
    }
}

#[test]
fn lstm_with_clip_falls_back() {
    let mut b = B::new(14);
    let x = b.input("x", &[2, 1, 3]);
    let w = b.constant("w", tensor(&[1, 8, 3], 1, 0.5));
    let r = b.constant("r", tensor(&[1, 8, 2], 2, 0.5));
    let y = b.node(
        "LSTM",
        &[Some(x), Some(w), Some(r)],
        &[Some("y")],
        vec![("hidden_size", Attr::Int(2)), ("clip", Attr::Float(0.5))],
    );
    let model = b.model(&y);
    let kernels = check(&model, &[("x", tensor(&[2, 1, 3], 4, 2.0))], 1e-5);
    assert_eq!(kernels[0].0, "reference");
}

/// The nine-node layer norm of opset-12 exporters over the last axis of `x`.
fn spelled_out_layer_norm(b: &mut B, x: usize, cols: usize) -> (usize, usize) {
    let axes = || vec![("axes", Attr::Ints(vec![-1]))];
    let mean = b.op("mean", "ReduceMean", &[x], axes());
    let d = b.op("d", "Sub", &[x, mean], vec![]);
    let two = b.constant("two", Tensor::scalar(2f32));
    let sq = b.op("sq", "Pow", &[d, two], vec![]);
    let var = b.op("var", "ReduceMean", &[sq], axes());
    let eps = b.constant("eps", Tensor::scalar(1e-5f32));
    let ve = b.op("ve", "Add", &[var, eps], vec![]);
    let sd = b.op("sd", "Sqrt", &[ve], vec![]);
    let n = b.op("n", "Div", &[d, sd], vec![]);
    let gamma = b.constant("gamma", tensor(&[cols], 7, 2.0));
    let scaled = b.op("scaled", "Mul", &[n, gamma], vec![]);
    let beta = b.constant("beta", tensor(&[cols], 8, 1.0));
    let y = b.op("y", "Add", &[beta, scaled], vec![]);
    (d, y)
}

#[test]
fn spelled_out_layer_norm_is_one_step() {
    let mut b = B::new(12);
    let x = b.input("x", &[2, 3, 13]);
    let (_, y) = spelled_out_layer_norm(&mut b, x, 13);
    let model = b.model(&[y]);
    let kernels = check(&model, &[("x", tensor(&[2, 3, 13], 9, 3.0))], 1e-5);
    assert_eq!(
        kernels,
        [(
            "layer_norm",
            "ReduceMean+Sub+Pow+ReduceMean+Add+Sqrt+Div+Mul+Add".to_string()
        )]
    );
}

#[test]
fn layer_norm_pattern_with_a_shared_intermediate_is_not_fused() {
    let mut b = B::new(12);
    let x = b.input("x", &[4, 6]);
    let (d, y) = spelled_out_layer_norm(&mut b, x, 6);
    let model = b.model(&[y, d]);
    let kernels = check(&model, &[("x", tensor(&[4, 6], 10, 3.0))], 1e-5);
    assert!(
        kernels.iter().all(|(k, _)| *k != "layer_norm"),
        "{kernels:?}"
    );
    assert_eq!(kernels[0], ("reduce_last", "ReduceMean".to_string()));
}

#[test]
fn layer_normalization_op_is_lowered() {
    let mut b = B::new(17);
    let x = b.input("x", &[3, 2, 5]);
    let scale = b.constant("scale", tensor(&[2, 5], 11, 2.0));
    let bias = b.constant("bias", tensor(&[2, 5], 12, 1.0));
    let y = b.node(
        "LayerNormalization",
        &[Some(x), Some(scale), Some(bias)],
        &[Some("y")],
        vec![("axis", Attr::Int(-2)), ("epsilon", Attr::Float(1e-3))],
    );
    let model = b.model(&y);
    let kernels = check(&model, &[("x", tensor(&[3, 2, 5], 13, 3.0))], 1e-5);
    assert_eq!(kernels, [("layer_norm", "LayerNormalization".to_string())]);
}

#[test]
fn reductions_over_the_last_axis() {
    for (op_type, keepdims) in [
        ("ReduceMean", 1),
        ("ReduceMean", 0),
        ("ReduceSum", 1),
        ("ReduceMax", 0),
        ("ReduceMax", 1),
    ] {
        let mut b = B::new(11);
        let x = b.input("x", &[3, 4, 19]);
        let y = b.op(
            "y",
            op_type,
            &[x],
            vec![
                ("axes", Attr::Ints(vec![2])),
                ("keepdims", Attr::Int(keepdims)),
            ],
        );
        let model = b.model(&[y]);
        let kernels = check(&model, &[("x", tensor(&[3, 4, 19], 14, 5.0))], 1e-5);
        assert_eq!(kernels, [("reduce_last", op_type.to_string())]);
    }
    // Another axis stays with the reference kernel.
    let mut b = B::new(11);
    let x = b.input("x", &[3, 4]);
    let y = b.op("y", "ReduceSum", &[x], vec![("axes", Attr::Ints(vec![0]))]);
    let kernels = check(&b.model(&[y]), &[("x", tensor(&[3, 4], 15, 1.0))], 1e-6);
    assert_eq!(kernels[0].0, "reference");
}

/// A branch graph reading `x` from the enclosing graph: `op(x · k)` with `k` its own
/// constant.
fn branch(op_type: &str, k: f32) -> Graph {
    let mut b = B::new(13);
    let mut x = Value::new("x");
    x.outer = true;
    let x = b.g.add_value(x);
    let k = b.constant("k", Tensor::scalar(k));
    let t = b.op(&format!("{op_type}_t"), "Mul", &[x, k], vec![]);
    let y = b.op(&format!("{op_type}_y"), op_type, &[t], vec![]);
    b.g.outputs = vec![y];
    b.g
}

#[test]
fn if_runs_planned_branches() {
    let mut b = B::new(13);
    let x = b.input("x", &[2, 3]);
    let sum = b.op("sum", "ReduceSum", &[x], vec![("keepdims", Attr::Int(0))]);
    let zero = b.constant("zero", Tensor::scalar(0f32));
    let cond = b.op("cond", "Greater", &[sum, zero], vec![]);
    let y = b.g.add_value(Value::new("y"));
    b.g.nodes.push(Node {
        name: "if".into(),
        op: Op::Control(slimnet_ir::ops::ControlOp::If {
            then_branch: Box::new(branch("Relu", 2.0)),
            else_branch: Box::new(branch("Tanh", -0.5)),
        }),
        inputs: vec![Some(cond)],
        outputs: vec![Some(y)],
    });
    let z = b.op("z", "Sigmoid", &[y], vec![]);
    let model = b.model(&[z]);
    // Each input and its negation: sums of both signs take both branches.
    for (seed, scale) in [(0, 1.0), (0, -1.0), (1, 2.0), (1, -2.0)] {
        let kernels = check(&model, &[("x", tensor(&[2, 3], seed, scale))], 1e-6);
        let step = kernels.iter().find(|(_, t)| t == "If").unwrap();
        assert_eq!(step.0, "branch_plan");
    }
}

/// One QDQ-quantized convolution case: input shape, weight shape, attributes.
struct QConvCase {
    x: [usize; 4],
    w: [usize; 4],
    strides: [i64; 2],
    pads: [i64; 4],
    group: i64,
    bias: bool,
    relu: bool,
}

/// Activations fused after a quantized convolution: op type and attributes.
fn activation_nodes() -> Vec<(&'static str, Vec<(&'static str, Attr)>)> {
    vec![
        ("HardSwish", vec![]),
        (
            "HardSigmoid",
            vec![("alpha", Attr::Float(0.2)), ("beta", Attr::Float(0.5))],
        ),
        ("Sigmoid", vec![]),
        ("Tanh", vec![]),
        ("LeakyRelu", vec![("alpha", Attr::Float(0.1))]),
    ]
}

/// `Relu?(Conv(DQ(Q(x)), DQ(w_int8, per-channel scales)) + b)` against the reference.
fn qconv_case(c: &QConvCase, seed: u64) {
    let mut b = B::new(14);
    let x = b.input("x", &c.x);
    let xs = b.constant("xs", Tensor::scalar(0.02f32));
    let xz = b.constant("xz", Tensor::scalar(131u8));
    let q = b.op("xq", "QuantizeLinear", &[x, xs, xz], vec![]);
    let dq = b.op("xdq", "DequantizeLinear", &[q, xs, xz], vec![]);
    let wlen: usize = c.w.iter().product();
    let wq: Vec<i8> = noise(wlen, seed, 127.0).iter().map(|v| *v as i8).collect();
    let wq = b.constant("wq", Tensor::from_vec(c.w.to_vec(), wq).unwrap());
    let scales: Vec<f32> = noise(c.w[0], seed + 1, 0.01)
        .iter()
        .map(|v| v.abs() + 0.001)
        .collect();
    let ws = b.constant("ws", Tensor::from_vec(vec![c.w[0]], scales).unwrap());
    let wz = b.constant(
        "wz",
        Tensor::from_vec(vec![c.w[0]], vec![0i8; c.w[0]]).unwrap(),
    );
    let w = b.op(
        "w",
        "DequantizeLinear",
        &[wq, ws, wz],
        vec![("axis", Attr::Int(0))],
    );
    let mut ins = vec![dq, w];
    if c.bias {
        ins.push(b.constant("b", tensor(&[c.w[0]], seed + 2, 1.0)));
    }
    let attrs = vec![
        ("strides", Attr::Ints(c.strides.to_vec())),
        ("pads", Attr::Ints(c.pads.to_vec())),
        ("group", Attr::Int(c.group)),
    ];
    let mut y = b.op("y", "Conv", &ins, attrs);
    if c.relu {
        y = b.op("r", "Relu", &[y], vec![]);
    }
    let act = activation_nodes()[seed as usize % 5].clone();
    let y2 = b.op("a", act.0, &[y], act.1);
    let model = b.model(&[y2]);
    let kernels = check(&model, &[("x", tensor(&c.x, seed + 3, 3.0))], 1e-4);
    assert!(
        kernels.iter().any(|(k, _)| *k == "qconv_int8"),
        "not fused: {kernels:?}"
    );
}

#[test]
fn quantized_convolutions_match_the_reference() {
    let cases = [
        // pointwise, 3x3 pad 1, stride 2, 1x3 and 3x1 windows, grouped, odd sizes
        QConvCase {
            x: [1, 8, 5, 7],
            w: [6, 8, 1, 1],
            strides: [1, 1],
            pads: [0; 4],
            group: 1,
            bias: true,
            relu: false,
        },
        QConvCase {
            x: [2, 3, 9, 8],
            w: [5, 3, 3, 3],
            strides: [1, 1],
            pads: [1; 4],
            group: 1,
            bias: true,
            relu: true,
        },
        QConvCase {
            x: [1, 4, 11, 10],
            w: [8, 4, 3, 3],
            strides: [2, 2],
            pads: [1; 4],
            group: 1,
            bias: false,
            relu: false,
        },
        QConvCase {
            x: [1, 16, 6, 20],
            w: [12, 16, 1, 3],
            strides: [1, 1],
            pads: [0, 1, 0, 1],
            group: 1,
            bias: true,
            relu: true,
        },
        QConvCase {
            x: [1, 16, 9, 5],
            w: [12, 16, 3, 1],
            strides: [1, 1],
            pads: [1, 0, 1, 0],
            group: 1,
            bias: true,
            relu: false,
        },
        QConvCase {
            x: [1, 8, 7, 7],
            w: [8, 4, 3, 3],
            strides: [1, 1],
            pads: [1; 4],
            group: 2,
            bias: true,
            relu: false,
        },
        QConvCase {
            x: [1, 64, 12, 40],
            w: [96, 64, 3, 3],
            strides: [2, 1],
            pads: [1; 4],
            group: 1,
            bias: true,
            relu: false,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        qconv_case(c, 100 + i as u64);
    }
}

#[test]
fn quantized_matmul_matches_the_reference() {
    for (m, k, n, rank3) in [(1, 64, 10, false), (7, 33, 17, false), (5, 120, 64, true)] {
        let mut b = B::new(13);
        let shape: Vec<usize> = if rank3 { vec![1, m, k] } else { vec![m, k] };
        let x = b.input("x", &shape);
        let xs = b.constant("xs", Tensor::scalar(0.03f32));
        let xz = b.constant("xz", Tensor::scalar(-3i8));
        let q = b.op("xq", "QuantizeLinear", &[x, xs, xz], vec![]);
        let dq = b.op("xdq", "DequantizeLinear", &[q, xs, xz], vec![]);
        let wq: Vec<i8> = noise(k * n, 7, 127.0).iter().map(|v| *v as i8).collect();
        let wq = b.constant("wq", Tensor::from_vec(vec![k, n], wq).unwrap());
        let scales: Vec<f32> = noise(n, 8, 0.01).iter().map(|v| v.abs() + 0.001).collect();
        let ws = b.constant("ws", Tensor::from_vec(vec![n], scales).unwrap());
        let w = b.op(
            "w",
            "DequantizeLinear",
            &[wq, ws],
            vec![("axis", Attr::Int(1))],
        );
        let y = b.op("y", "MatMul", &[dq, w], vec![]);
        let model = b.model(&[y]);
        let kernels = check(&model, &[("x", tensor(&shape, 9, 2.0))], 1e-4);
        assert!(
            kernels.iter().any(|(k, _)| *k == "qgemm_int8"),
            "not fused: {kernels:?}"
        );
    }
}

/// One weight-only int4 product case.
struct Q4Case {
    m: usize,
    k: usize,
    n: usize,
    block: usize,
    rank3: bool,
    /// Gemm with a bias (else MatMul).
    gemm: bool,
    /// uint4 weights (else int4).
    unsigned: bool,
    zero: bool,
    relu: bool,
}

fn q4_case(c: &Q4Case, seed: u64) {
    let mut b = B::new(21);
    let shape: Vec<usize> = if c.rank3 {
        vec![1, c.m, c.k]
    } else {
        vec![c.m, c.k]
    };
    let x = b.input("x", &shape);
    let blocks = c.k.div_ceil(c.block);
    let raw = noise(c.k * c.n, seed, 8.0);
    let zraw = noise(blocks * c.n, seed + 1, 3.0);
    let (wq, zq) = if c.unsigned {
        let w: Vec<u8> = raw
            .iter()
            .map(|v| (v + 8.0).clamp(0.0, 15.0) as u8)
            .collect();
        let z: Vec<u8> = zraw.iter().map(|v| (v + 8.0) as u8).collect();
        (
            Tensor::new(vec![c.k, c.n], TensorData::u4(w).unwrap()).unwrap(),
            Tensor::new(vec![blocks, c.n], TensorData::u4(z).unwrap()).unwrap(),
        )
    } else {
        let w: Vec<i8> = raw.iter().map(|v| v.clamp(-8.0, 7.0) as i8).collect();
        let z: Vec<i8> = zraw.iter().map(|v| *v as i8).collect();
        (
            Tensor::new(vec![c.k, c.n], TensorData::i4(w).unwrap()).unwrap(),
            Tensor::new(vec![blocks, c.n], TensorData::i4(z).unwrap()).unwrap(),
        )
    };
    let wq = b.constant("wq", wq);
    let scales: Vec<f32> = noise(blocks * c.n, seed + 2, 0.05)
        .iter()
        .map(|v| v.abs() + 0.001)
        .collect();
    let ws = b.constant("ws", Tensor::from_vec(vec![blocks, c.n], scales).unwrap());
    let mut dq_in = vec![wq, ws];
    if c.zero {
        dq_in.push(b.constant("wz", zq));
    }
    let attrs = vec![
        ("axis", Attr::Int(0)),
        ("block_size", Attr::Int(c.block as i64)),
    ];
    let w = b.op("w", "DequantizeLinear", &dq_in, attrs);
    let mut y = if c.gemm {
        let bias = b.constant("bias", tensor(&[c.n], seed + 3, 1.0));
        b.op("y", "Gemm", &[x, w, bias], vec![("beta", Attr::Float(0.5))])
    } else {
        b.op("y", "MatMul", &[x, w], vec![])
    };
    if c.relu {
        y = b.op("r", "Relu", &[y], vec![]);
    }
    let model = b.model(&[y]);
    let kernels = check(&model, &[("x", tensor(&shape, seed + 4, 2.0))], 1e-4);
    assert!(
        kernels.iter().any(|(k, _)| *k == "gemm_q4"),
        "not fused: {kernels:?}"
    );
    if c.relu {
        assert_eq!(kernels.len(), 1, "relu not fused: {kernels:?}");
    }
}

#[test]
fn weight_only_int4_matmul_matches_the_reference() {
    let base = Q4Case {
        m: 1,
        k: 64,
        n: 10,
        block: 32,
        rank3: false,
        gemm: false,
        unsigned: false,
        zero: false,
        relu: false,
    };
    let cases = [
        Q4Case { ..base },
        Q4Case {
            m: 7,
            k: 33,
            n: 17,
            block: 16,
            zero: true,
            relu: true,
            ..base
        },
        Q4Case {
            m: 5,
            k: 120,
            n: 64,
            block: 64,
            rank3: true,
            unsigned: true,
            zero: true,
            ..base
        },
        Q4Case {
            m: 40,
            k: 100,
            n: 37,
            block: 32,
            gemm: true,
            ..base
        },
        Q4Case {
            m: 3,
            k: 200,
            n: 33,
            block: 128,
            gemm: true,
            unsigned: true,
            relu: true,
            ..base
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        q4_case(c, 50 + 10 * i as u64);
    }
}
