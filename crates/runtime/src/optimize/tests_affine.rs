//! Scale folding, affine folding into the next Conv and affine chain composition on
//! small hand-built graphs, run before and after.

use slimnet_ir::Attr;

use super::tests::{check, check_x, op_types, ramp, B};
use super::OptimizeOptions;

fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
    v.sort();
    v
}

#[test]
fn conv_mul_add_fold_into_conv() {
    let mut b = B::new(12);
    let x = b.input("x", &[1, 2, 5, 5]);
    let w = b.f32s("w", &[3, 2, 3, 3], |i| (i as f32 * 0.37).sin());
    let bias = b.f32s("bias", &[3], |i| i as f32 * 0.1 - 0.2);
    let y = b.op("y", "Conv", &[x, w, bias], vec![]);
    let s = b.f32s("s", &[1, 3, 1, 1], |i| 0.5 + i as f32);
    let z = b.op("z", "Mul", &[s, y], vec![]);
    let c = b.f32s("c", &[1], |_| 0.75);
    let out = b.op("out", "Add", &[z, c], vec![]);
    let m = b.model(&[out]);
    // The scaled weights round once; outputs near zero after cancellation differ
    // in the last bits of the larger terms.
    let opt = check_x(&m, &[1, 2, 5, 5], 0.3, 1e-5);
    assert_eq!(op_types(&opt), ["Conv"]);
    assert_eq!(opt.graph.values[opt.graph.outputs[0]].name, "out");
}

#[test]
fn shared_weights_are_copied_not_scaled_in_place() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 2, 4, 4]);
    let w = b.f32s("w", &[2, 2, 1, 1], |i| i as f32 - 1.5);
    let y1 = b.op("y1", "Conv", &[x, w], vec![]);
    let y2 = b.op("y2", "Conv", &[x, w], vec![]);
    let s1 = b.f32s("s1", &[], |_| 3.0);
    let s2 = b.f32s("s2", &[2, 1, 1], |i| -1.0 - i as f32);
    let z1 = b.op("z1", "Mul", &[y1, s1], vec![]);
    let z2 = b.op("z2", "Mul", &[y2, s2], vec![]);
    let m = b.model(&[z1, z2]);
    let opt = check_x(&m, &[1, 2, 4, 4], 0.5, 1e-6);
    assert_eq!(op_types(&opt), ["Conv", "Conv"]);
    let w0 = m.graph.values[w].constant.as_deref().unwrap();
    let (n0, n1) = (&opt.graph.nodes[0], &opt.graph.nodes[1]);
    assert_ne!(n0.inputs[1], n1.inputs[1]);
    assert_eq!(w0.to_vec::<f32>().unwrap(), [-1.5, -0.5, 0.5, 1.5]);
}

#[test]
fn gemm_matmul_and_conv_transpose_take_the_scale() {
    let mut b = B::new(13);
    let a = b.input("a", &[2, 4]);
    let w = b.f32s("w", &[3, 4], |i| (i as f32 * 0.7).cos());
    let c = b.f32s("c", &[1, 3], |i| i as f32);
    let g = b.op(
        "g",
        "Gemm",
        &[a, w, c],
        vec![("transB", Attr::Int(1)), ("beta", Attr::Float(0.5))],
    );
    let s = b.f32s("s", &[3], |i| 2.0 - i as f32);
    let gs = b.op("gs", "Mul", &[g, s], vec![]);
    let a3 = b.input("a3", &[2, 3, 4]);
    let bm = b.f32s("bm", &[4, 5], |i| (i as f32 * 0.3).sin());
    let mm = b.op("mm", "MatMul", &[a3, bm], vec![]);
    let sm = b.f32s("sm", &[1, 1, 5], |i| 0.1 * i as f32 + 0.5);
    let ms = b.op("ms", "Mul", &[sm, mm], vec![]);
    let xt = b.input("xt", &[1, 4, 3, 3]);
    let wt = b.f32s("wt", &[4, 3, 2, 2], |i| (i as f32 * 0.11).sin());
    let bt = b.f32s("bt", &[6], |i| i as f32);
    let t = b.op(
        "t",
        "ConvTranspose",
        &[xt, wt, bt],
        vec![("group", Attr::Int(2)), ("strides", Attr::Ints(vec![2, 2]))],
    );
    let st = b.f32s("st", &[6, 1, 1], |i| 1.0 + 0.25 * i as f32);
    let ts = b.op("ts", "Mul", &[t, st], vec![]);
    let m = b.model(&[gs, ms, ts]);
    let inputs = [
        ("a", ramp(&[2, 4], 0.4)),
        ("a3", ramp(&[2, 3, 4], 0.2)),
        ("xt", ramp(&[1, 4, 3, 3], 0.3)),
    ];
    let opt = check(&m, &OptimizeOptions::default(), &inputs, 1e-6);
    assert_eq!(sorted(op_types(&opt)), ["ConvTranspose", "Gemm", "MatMul"]);
}

#[test]
fn scales_that_are_not_per_channel_or_shared_outputs_stay() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 2, 3, 3]);
    let w = b.f32s("w", &[2, 2, 1, 1], |i| i as f32 - 1.5);
    let y = b.op("y", "Conv", &[x, w], vec![]);
    // Varies along a spatial axis: not a per-channel factor.
    let s = b.f32s("s", &[3, 1], |i| 1.0 + i as f32);
    let z = b.op("z", "Mul", &[y, s], vec![]);
    let y2 = b.op("y2", "Conv", &[x, w], vec![]);
    let two = b.f32s("two", &[], |_| 2.0);
    // The conv's output is also a graph output.
    let z2 = b.op("z2", "Mul", &[y2, two], vec![]);
    let m = b.model(&[z, y2, z2]);
    let opt = check_x(&m, &[1, 2, 3, 3], 1.0, 0.0);
    assert_eq!(sorted(op_types(&opt)), ["Conv", "Conv", "Mul", "Mul"]);
}

#[test]
fn affine_folds_into_unpadded_and_grouped_convs() {
    for group in [1, 2] {
        let mut b = B::new(12);
        let x = b.input("x", &[1, 4, 5, 5]);
        let s = b.f32s("s", &[1, 4, 1, 1], |i| 0.5 + 0.3 * i as f32);
        let c = b.f32s("c", &[4, 1, 1], |i| i as f32 - 1.0);
        let xs = b.op("xs", "Mul", &[x, s], vec![]);
        let xb = b.op("xb", "Add", &[c, xs], vec![]);
        let w = b.f32s("w", &[6, 4 / group, 2, 2], |i| (i as f32 * 0.23).cos());
        let bias = b.f32s("bias", &[6], |i| 0.1 * i as f32);
        let y = b.op(
            "y",
            "Conv",
            &[xb, w, bias],
            vec![("group", Attr::Int(group as i64))],
        );
        let m = b.model(&[y]);
        let opt = check_x(&m, &[1, 4, 5, 5], 0.4, 1e-6);
        assert_eq!(op_types(&opt), ["Conv"], "group {group}");
    }
}

#[test]
fn padded_convs_take_a_scale_but_not_a_shift() {
    let build = |with_add: bool| {
        let mut b = B::new(12);
        let x = b.input("x", &[1, 2, 4, 4]);
        let s = b.f32s("s", &[2, 1, 1], |i| 2.0 - i as f32 * 0.5);
        let mut v = b.op("xs", "Mul", &[x, s], vec![]);
        if with_add {
            let c = b.f32s("c", &[1], |_| 0.5);
            v = b.op("xb", "Add", &[v, c], vec![]);
        }
        let w = b.f32s("w", &[2, 1, 3, 3], |i| (i as f32 * 0.4).sin());
        let attrs = vec![
            ("group", Attr::Int(2)),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ];
        let y = b.op("y", "Conv", &[v, w], attrs);
        b.model(&[y])
    };
    let inputs = [("x", ramp(&[1, 2, 4, 4], 0.5))];
    let opt = check(&build(false), &OptimizeOptions::default(), &inputs, 1e-6);
    assert_eq!(op_types(&opt), ["Conv"]);
    let opt = check(&build(true), &OptimizeOptions::default(), &inputs, 0.0);
    assert_eq!(op_types(&opt), ["Mul", "Add", "Conv"]);
}

#[test]
fn affine_chains_compose() {
    let mut b = B::new(13);
    let x = b.input("x", &[2, 3, 4]);
    let c1 = b.f32s("c1", &[4], |i| 1.0 + 0.5 * i as f32);
    let c2 = b.f32s("c2", &[], |_| 0.25);
    let c3 = b.f32s("c3", &[3, 1], |i| -1.0 + i as f32);
    let c4 = b.f32s("c4", &[1, 1, 4], |i| 0.1 * i as f32);
    let c5 = b.f32s("c5", &[1], |_| -2.0);
    let v1 = b.op("v1", "Mul", &[x, c1], vec![]);
    let v2 = b.op("v2", "Add", &[c2, v1], vec![]);
    let v3 = b.op("v3", "Mul", &[v2, c3], vec![]);
    let v4 = b.op("v4", "Add", &[v3, c4], vec![]);
    let v5 = b.op("v5", "Add", &[v4, c5], vec![]);
    // Two adds only, and two muls only.
    let a1 = b.op("a1", "Add", &[x, c5], vec![]);
    let a2 = b.op("a2", "Add", &[a1, c3], vec![]);
    let m1 = b.op("m1", "Mul", &[x, c3], vec![]);
    let m2 = b.op("m2", "Mul", &[c1, m1], vec![]);
    let m = b.model(&[v5, a2, m2]);
    let options = OptimizeOptions {
        fold_constants: false,
        ..OptimizeOptions::default()
    };
    let opt = check(&m, &options, &[("x", ramp(&[2, 3, 4], 0.7))], 1e-6);
    assert_eq!(sorted(op_types(&opt)), ["Add", "Add", "Mul", "Mul"]);
    let names: Vec<&str> = opt
        .graph
        .outputs
        .iter()
        .map(|&o| opt.graph.values[o].name.as_str())
        .collect();
    assert_eq!(names, ["v5", "a2", "m2"]);
}

#[test]
fn new_passes_can_be_turned_off() {
    let mut b = B::new(13);
    let x = b.input("x", &[1, 2, 3, 3]);
    let w = b.f32s("w", &[2, 2, 1, 1], |i| i as f32 - 1.5);
    let y = b.op("y", "Conv", &[x, w], vec![]);
    let s = b.f32s("s", &[], |_| 3.0);
    let z = b.op("z", "Mul", &[y, s], vec![]);
    let m = b.model(&[z]);
    let off = OptimizeOptions {
        fold_scale: false,
        ..OptimizeOptions::default()
    };
    let opt = check(&m, &off, &[("x", ramp(&[1, 2, 3, 3], 1.0))], 0.0);
    assert_eq!(op_types(&opt), ["Conv", "Mul"]);
}
