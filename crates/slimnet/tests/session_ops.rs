//! The fast runtime's lowerings of data movement (Concat, Transpose, Slice, Split,
//! Pad, Gather), Resize/Upsample and ConvTranspose, each checked against the
//! reference interpreter on small hand-built graphs with odd shapes, at one and
//! three threads, and checked to have left the reference kernels.
//!
//! Tolerance: movement and nearest resizing must match exactly; linear and cubic
//! resizing within 1e-6 relative; ConvTranspose (a GEMM with another summation
//! order) within 1e-5 relative to the output's largest magnitude.

use std::sync::Arc;

use slimnet::ir::{Attr, Attributes, Graph, Model, Node, NodeContext, Op, Value, ValueInfo};
use slimnet::runtime::{run_model, Session, SessionOptions};
use slimnet::tensor::{DType, Tensor};

fn op(op_type: &str, opset: i64, inputs: usize, outputs: usize, attrs: Vec<(&str, Attr)>) -> Op {
    let ctx = NodeContext {
        name: op_type,
        op_type,
        domain: "",
        opset,
        num_inputs: inputs,
        num_outputs: outputs,
    };
    let mut a = Attributes::new(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect());
    Op::parse(&ctx, &mut a).expect("valid op")
}

/// A graph builder: one input per call, nodes with any number of outputs.
struct B {
    g: Graph,
    opset: i64,
    inputs: Vec<(String, Tensor)>,
}

impl B {
    fn new(opset: i64) -> B {
        B {
            g: Graph::default(),
            opset,
            inputs: Vec::new(),
        }
    }

    /// A graph input fed with a deterministic ramp of signed values.
    fn input(&mut self, name: &str, shape: &[usize]) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::known(DType::F32, shape);
        let id = self.g.add_value(v);
        self.g.inputs.push(id);
        self.inputs
            .push((name.into(), ramp(shape, self.inputs.len())));
        id
    }

    fn constant(&mut self, name: &str, t: Tensor) -> usize {
        let mut v = Value::new(name);
        v.info = ValueInfo::of_tensor(&t);
        v.constant = Some(Arc::new(t));
        self.g.add_value(v)
    }

    fn ints(&mut self, name: &str, v: &[i64]) -> usize {
        self.constant(name, Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap())
    }

    fn floats(&mut self, name: &str, v: &[f32]) -> usize {
        self.constant(name, Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap())
    }

    fn op(
        &mut self,
        out: &str,
        op_type: &str,
        inputs: &[Option<usize>],
        outputs: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<usize> {
        let o = op(op_type, self.opset, inputs.len(), outputs, attrs);
        let ids: Vec<usize> = (0..outputs)
            .map(|k| self.g.add_value(Value::new(format!("{out}{k}"))))
            .collect();
        self.g.nodes.push(Node {
            name: out.into(),
            op: o,
            inputs: inputs.to_vec(),
            outputs: ids.iter().map(|&i| Some(i)).collect(),
        });
        ids
    }

    fn one(
        &mut self,
        out: &str,
        op_type: &str,
        inputs: &[usize],
        attrs: Vec<(&str, Attr)>,
    ) -> usize {
        let ins: Vec<Option<usize>> = inputs.iter().map(|&i| Some(i)).collect();
        self.op(out, op_type, &ins, 1, attrs)[0]
    }

    /// Runs the graph with outputs `outs` on the reference interpreter and on
    /// sessions of 1 and 3 threads; asserts no step ran a reference kernel and every
    /// output agrees within `tol` relative to the output's largest magnitude.
    fn check(mut self, outs: &[usize], tol: f64) {
        self.g.outputs = outs.to_vec();
        let model = Model {
            graph: self.g,
            ir_version: 8,
            opsets: vec![(String::new(), self.opset)],
            ..Default::default()
        };
        let want = run_model(&model, self.inputs.clone()).expect("reference runs");
        for threads in [1, 3] {
            let mut s = Session::new(
                model.clone(),
                SessionOptions {
                    threads,
                    optimize: false,
                    profile: false,
                },
            )
            .unwrap();
            let refs: Vec<&Tensor> = self.inputs.iter().map(|(_, t)| t).collect();
            let summary = s.plan_summary(&refs).unwrap();
            assert_eq!(summary.reference_steps, 0, "a step stayed on the reference");
            let got = s.run(self.inputs.clone()).expect("session runs");
            for ((wn, w), (gn, g)) in want.iter().zip(&got) {
                assert_eq!(wn, gn);
                assert_eq!(w.shape(), g.shape(), "{wn}");
                let (w, g) = (w.to_vec::<f64>().unwrap(), g.to_vec::<f64>().unwrap());
                let scale = w.iter().fold(1e-30f64, |m, x| m.max(x.abs()));
                for (i, (a, b)) in w.iter().zip(&g).enumerate() {
                    assert!(
                        (a - b).abs() <= tol * scale,
                        "{wn}[{i}] at {threads} threads: want {a}, got {b}"
                    );
                }
            }
        }
    }
}

fn ramp(shape: &[usize], seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i * 7 + seed * 3) % 23) as f32 * 0.37 - 4.0 + (i as f32 * 0.001))
        .collect();
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

#[test]
fn concat_on_every_axis() {
    for axis in -4..4i64 {
        let mut b = B::new(13);
        let mut shapes = [[2usize, 3, 5, 7]; 3];
        let a = axis.rem_euclid(4) as usize;
        shapes[0][a] = 1;
        shapes[1][a] = 4;
        let x = b.input("x", &shapes[0]);
        let y = b.input("y", &shapes[1]);
        let z = b.input("z", &shapes[2]);
        let c = b.one(
            "c",
            "Concat",
            &[x, y, z, x],
            vec![("axis", Attr::Int(axis))],
        );
        b.check(&[c], 0.0);
    }
}

#[test]
fn transposes() {
    let perms: [&[i64]; 7] = [
        &[1, 0, 2, 3],
        &[0, 2, 3, 1],
        &[0, 3, 1, 2],
        &[3, 2, 1, 0],
        &[0, 1, 3, 2],
        &[2, 0, 3, 1],
        &[0, 1, 2, 3],
    ];
    for shape in [[2usize, 3, 5, 7], [1, 33, 19, 40], [3, 1, 17, 1]] {
        for perm in perms {
            let mut b = B::new(13);
            let x = b.input("x", &shape);
            let t = b.one("t", "Transpose", &[x], vec![("perm", ints(perm))]);
            b.check(&[t], 0.0);
        }
    }
    let mut b = B::new(13);
    let x = b.input("x", &[37, 45]);
    let t = b.one("t", "Transpose", &[x], vec![]);
    b.check(&[t], 0.0);
}

#[test]
fn slices_with_negative_steps_and_clamping() {
    /// Starts, ends, axes and steps.
    type Case<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a [i64]);
    let cases: [Case; 6] = [
        (&[0, 1], &[2, -1], &[0, 2], &[1, 1]),
        (&[-1], &[i64::MIN], &[3], &[-1]),
        (&[5, 10], &[0, -100], &[2, 3], &[-2, -3]),
        (&[1, 0, 2], &[100, 7, 5], &[1, 2, -1], &[2, 3, 1]),
        (&[3], &[3], &[1], &[1]),
        (&[-2], &[100], &[0], &[1]),
    ];
    for (starts, ends, axes, steps) in cases {
        let mut b = B::new(13);
        let x = b.input("x", &[2, 3, 9, 11]);
        let (s, e) = (b.ints("s", starts), b.ints("e", ends));
        let (a, st) = (b.ints("a", axes), b.ints("st", steps));
        let y = b.one("y", "Slice", &[x, s, e, a, st], vec![]);
        b.check(&[y], 0.0);
    }
    // The attribute form (opset 9).
    let mut b = B::new(9);
    let x = b.input("x", &[4, 6, 5]);
    let y = b.one(
        "y",
        "Slice",
        &[x],
        vec![
            ("starts", ints(&[1, -4])),
            ("ends", ints(&[3, 100])),
            ("axes", ints(&[0, 1])),
        ],
    );
    b.check(&[y], 0.0);
}

#[test]
fn splits_and_gathers() {
    let mut b = B::new(13);
    let x = b.input("x", &[2, 7, 3, 5]);
    let sizes = b.ints("sizes", &[2, 4, 1]);
    let parts = b.op(
        "p",
        "Split",
        &[Some(x), Some(sizes)],
        3,
        vec![("axis", Attr::Int(1))],
    );
    b.check(&parts, 0.0);

    let mut b = B::new(13);
    let x = b.input("x", &[3, 4, 10]);
    let parts = b.op("p", "Split", &[Some(x)], 2, vec![("axis", Attr::Int(-1))]);
    b.check(&parts, 0.0);

    for (axis, idx, shape) in [
        (1i64, vec![3i64, -1, 0, 3], vec![4usize]),
        (0, vec![2], vec![]),
        (2, vec![0, 4, 1, 2, 2, 3], vec![2, 3]),
    ] {
        let mut b = B::new(13);
        let x = b.input("x", &[3, 5, 6]);
        let i = b.constant("i", Tensor::from_vec(shape, idx).unwrap());
        let y = b.one("y", "Gather", &[x, i], vec![("axis", Attr::Int(axis))]);
        b.check(&[y], 0.0);
    }
}

#[test]
fn constant_pads() {
    let cases: [(&[i64], Option<f32>); 3] = [
        (&[0, 1, 2, 3, 0, 2, 1, 0], Some(1.5)),
        (&[0, 0, -1, 2, 0, 0, 3, -2], None),
        (&[1, 0, 0, 0, 0, 0, 0, 1], Some(-2.0)),
    ];
    for (pads, value) in cases {
        let mut b = B::new(13);
        let x = b.input("x", &[2, 3, 5, 6]);
        let p = b.ints("pads", pads);
        let mut ins = vec![x, p];
        if let Some(v) = value {
            ins.push(b.constant("v", Tensor::from_vec(vec![], vec![v]).unwrap()));
        }
        let y = b.one("y", "Pad", &ins, vec![]);
        b.check(&[y], 0.0);
    }
}

/// A Resize-13 node with constant scales (or sizes), checked at `tol`.
fn resize(
    shape: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
    attrs: Vec<(&str, Attr)>,
    roi: Option<&[f32]>,
    tol: f64,
) {
    let mut b = B::new(13);
    let x = b.input("x", shape);
    let r = roi.map(|r| b.floats("roi", r));
    let s = scales.map(|s| b.floats("scales", s));
    let z = sizes.map(|z| b.ints("sizes", z));
    let mut ins = vec![Some(x), r, s];
    if z.is_some() {
        ins.push(z);
    }
    let y = b.op("y", "Resize", &ins, 1, attrs)[0];
    b.check(&[y], tol);
}

fn s(v: &str) -> Attr {
    Attr::String(v.into())
}

#[test]
fn resize_nearest_modes() {
    let coords = [
        "half_pixel",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
        "tf_half_pixel_for_nn",
        "half_pixel_symmetric",
    ];
    let nearest = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"];
    for c in coords {
        for n in nearest {
            let attrs = || {
                vec![
                    ("mode", s("nearest")),
                    ("coordinate_transformation_mode", s(c)),
                    ("nearest_mode", s(n)),
                ]
            };
            resize(
                &[1, 3, 5, 7],
                Some(&[1.0, 1.0, 2.0, 3.0]),
                None,
                attrs(),
                None,
                0.0,
            );
            resize(
                &[2, 2, 9, 7],
                Some(&[1.0, 1.0, 0.5, 0.7]),
                None,
                attrs(),
                None,
                0.0,
            );
            resize(
                &[1, 2, 5, 6],
                None,
                Some(&[1, 2, 13, 4]),
                attrs(),
                None,
                0.0,
            );
        }
    }
    // tf_crop_and_resize with a region of interest reaching outside the input.
    resize(
        &[1, 2, 6, 5],
        None,
        Some(&[1, 2, 7, 8]),
        vec![
            ("mode", s("nearest")),
            ("coordinate_transformation_mode", s("tf_crop_and_resize")),
            ("extrapolation_value", Attr::Float(9.5)),
        ],
        Some(&[0.0, 0.0, -0.3, 0.2, 1.0, 1.0, 1.1, 0.9]),
        0.0,
    );
    // Upsample (opset 9) with scales as an input.
    let mut b = B::new(9);
    let x = b.input("x", &[1, 3, 4, 5]);
    let sc = b.floats("scales", &[1.0, 1.0, 2.0, 2.0]);
    let y = b.one("y", "Upsample", &[x, sc], vec![("mode", s("nearest"))]);
    b.check(&[y], 0.0);
}

#[test]
fn resize_linear_and_cubic() {
    let coords = [
        "half_pixel",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
        "half_pixel_symmetric",
    ];
    for mode in ["linear", "cubic"] {
        for c in coords {
            let attrs = || vec![("mode", s(mode)), ("coordinate_transformation_mode", s(c))];
            resize(
                &[1, 3, 5, 7],
                Some(&[1.0, 1.0, 2.0, 1.5]),
                None,
                attrs(),
                None,
                1e-6,
            );
            resize(
                &[2, 1, 9, 11],
                Some(&[1.0, 1.0, 0.6, 0.4]),
                None,
                attrs(),
                None,
                1e-6,
            );
            resize(
                &[1, 2, 1, 6],
                None,
                Some(&[1, 2, 3, 1]),
                attrs(),
                None,
                1e-6,
            );
        }
    }
    resize(
        &[1, 2, 6, 5],
        None,
        Some(&[1, 2, 7, 8]),
        vec![
            ("mode", s("linear")),
            ("coordinate_transformation_mode", s("tf_crop_and_resize")),
            ("extrapolation_value", Attr::Float(-1.25)),
        ],
        Some(&[0.0, 0.0, -0.3, 0.2, 1.0, 1.0, 1.1, 0.9]),
        1e-6,
    );
    resize(
        &[1, 2, 8, 9],
        Some(&[1.0, 1.0, 3.0, 2.0]),
        None,
        vec![("mode", s("cubic")), ("exclude_outside", Attr::Int(1))],
        None,
        1e-6,
    );
}

/// A ConvTranspose with constant weights `[cin, cout, kh, kw]` and bias.
fn deconv(xs: [usize; 4], cout: usize, k: [usize; 2], attrs: Vec<(&str, Attr)>, bias: bool) {
    let mut b = B::new(13);
    let x = b.input("x", &xs);
    let wn = xs[1] * cout * k[0] * k[1];
    let wt: Vec<f32> = (0..wn)
        .map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.05)
        .collect();
    let w = b.constant(
        "w",
        Tensor::from_vec(vec![xs[1], cout, k[0], k[1]], wt).unwrap(),
    );
    let mut ins = vec![x, w];
    if bias {
        let bv: Vec<f32> = (0..cout).map(|i| i as f32 * 0.3 - 0.4).collect();
        ins.push(b.floats("b", &bv));
    }
    let y = b.one("y", "ConvTranspose", &ins, attrs);
    b.check(&[y], 1e-5);
}

#[test]
fn conv_transposes() {
    // Kernel equal to the stride: windows tile the output.
    deconv(
        [2, 5, 7, 9],
        3,
        [2, 2],
        vec![("strides", ints(&[2, 2]))],
        true,
    );
    deconv(
        [1, 4, 5, 3],
        2,
        [3, 2],
        vec![("strides", ints(&[3, 2]))],
        false,
    );
    // Overlapping windows, padding, output padding, dilation.
    deconv([1, 3, 6, 5], 4, [3, 3], vec![], true);
    deconv(
        [2, 3, 5, 7],
        2,
        [3, 3],
        vec![
            ("strides", ints(&[2, 2])),
            ("pads", ints(&[1, 1, 1, 1])),
            ("output_padding", ints(&[1, 1])),
        ],
        true,
    );
    deconv(
        [1, 2, 4, 6],
        3,
        [4, 3],
        vec![
            ("strides", ints(&[3, 2])),
            ("pads", ints(&[2, 0, 1, 1])),
            ("dilations", ints(&[1, 2])),
        ],
        false,
    );
    deconv(
        [1, 6, 5, 5],
        2,
        [2, 2],
        vec![
            ("strides", ints(&[2, 2])),
            ("output_padding", ints(&[1, 0])),
        ],
        true,
    );
}

#[test]
fn large_enough_to_split_over_threads() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 64, 33, 17]);
    let t = b.one("t", "Transpose", &[x], vec![("perm", ints(&[0, 2, 3, 1]))]);
    let c = b.one("c", "Concat", &[x, x], vec![("axis", Attr::Int(1))]);
    let sc = b.floats("scales", &[1.0, 1.0, 2.0, 2.0]);
    let r = b.op(
        "r",
        "Resize",
        &[Some(x), None, Some(sc)],
        1,
        vec![("mode", s("linear"))],
    )[0];
    let wt: Vec<f32> = (0..64 * 8 * 4).map(|i| (i % 11) as f32 * 0.01).collect();
    let w = b.constant("w", Tensor::from_vec(vec![64, 8, 2, 2], wt).unwrap());
    let d = b.one(
        "d",
        "ConvTranspose",
        &[x, w],
        vec![("strides", ints(&[2, 2]))],
    );
    b.check(&[t, c, r, d], 1e-5);
}
