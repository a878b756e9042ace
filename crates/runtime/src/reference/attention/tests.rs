use slimnet_tensor::{f16, Element};

use super::*;

fn t<T: Element>(shape: &[usize], v: Vec<T>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v).unwrap()
}

fn f32s(x: &Tensor) -> Vec<f32> {
    x.to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

fn attention(f: impl FnOnce(&mut AttentionOp)) -> AttentionOp {
    let mut op = AttentionOp::Attention {
        is_causal: false,
        q_num_heads: None,
        kv_num_heads: None,
        qk_matmul_output_mode: 0,
        scale: None,
        softcap: 0.0,
        softmax_precision: None,
        left_window_size: -1,
        right_window_size: -1,
    };
    f(&mut op);
    op
}

fn set(op: &mut AttentionOp) -> &mut AttentionOp {
    op
}

/// An `Attention` op with the spec defaults except the given fields.
macro_rules! with {
    ($($field:ident = $value:expr),*) => {
        attention(|op| {
            if let AttentionOp::Attention { $($field,)* .. } = set(op) {
                $(*$field = $value;)*
            }
        })
    };
}

fn softmax2(a: f32, b: f32) -> (f32, f32) {
    let (ea, eb) = (a.exp(), b.exp());
    (ea / (ea + eb), eb / (ea + eb))
}

#[test]
fn single_query_two_keys() {
    // One head of size 1 (scale 1): scores [1, 0].
    let q = t(&[1, 1, 1, 1], vec![1f32]);
    let k = t(&[1, 1, 2, 1], vec![1f32, 0.]);
    let v = t(&[1, 1, 2, 1], vec![2f32, 4.]);
    let out = run(&with!(), &[Some(&q), Some(&k), Some(&v)], 4).unwrap();
    let (p0, p1) = softmax2(1., 0.);
    close(&f32s(&out[0]), &[2. * p0 + 4. * p1]);
    assert_eq!(out[1], k);
    assert_eq!(out[2], v);
    close(&f32s(&out[3]), &[1., 0.]);
    // A scale of 2 doubles the scores; mode 3 returns the probabilities.
    let out = run(
        &with!(scale = Some(2.0), qk_matmul_output_mode = 3),
        &[Some(&q), Some(&k), Some(&v)],
        4,
    )
    .unwrap();
    let (p0, p1) = softmax2(2., 0.);
    close(&f32s(&out[3]), &[p0, p1]);
}

#[test]
fn causal_window_and_fully_masked_rows() {
    let q = t(&[1, 1, 2, 1], vec![1f32, 1.]);
    let k = t(&[1, 1, 2, 1], vec![1f32, 0.]);
    let v = t(&[1, 1, 2, 1], vec![2f32, 4.]);
    let ins = [Some(&q), Some(&k), Some(&v)];
    let out = run(&with!(is_causal = true), &ins, 1).unwrap();
    let (p0, p1) = softmax2(1., 0.);
    close(&f32s(&out[0]), &[2., 2. * p0 + 4. * p1]);
    // Left window 0 hides earlier keys only; with causality each query sees itself.
    let out = run(&with!(left_window_size = 0), &ins, 1).unwrap();
    close(&f32s(&out[0]), &[2. * p0 + 4. * p1, 4.]);
    let out = run(&with!(left_window_size = 0, is_causal = true), &ins, 1).unwrap();
    close(&f32s(&out[0]), &[2., 4.]);
    // right window 0 without causality: the same as causal.
    let out = run(&with!(right_window_size = 0), &ins, 1).unwrap();
    close(&f32s(&out[0]), &[2., 2. * p0 + 4. * p1]);
    // A boolean mask that hides every key of row 0: zeros, not NaN.
    let mask = t(&[2, 2], vec![false, false, true, false]);
    let out = run(
        &with!(qk_matmul_output_mode = 3),
        &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        4,
    )
    .unwrap();
    close(&f32s(&out[0]), &[0., 2.]);
    close(&f32s(&out[3]), &[0., 0., 1., 0.]);
}

#[test]
fn short_mask_is_padded_and_nonpad_masks_tail() {
    let q = t(&[1, 1, 1, 1], vec![0f32]);
    let k = t(&[1, 1, 3, 1], vec![0f32, 0., 0.]);
    let v = t(&[1, 1, 3, 1], vec![1f32, 2., 6.]);
    let mask = t(&[1, 2], vec![0f32, 0.]);
    let out = run(
        &with!(qk_matmul_output_mode = 2),
        &[Some(&q), Some(&k), Some(&v), Some(&mask)],
        4,
    )
    .unwrap();
    close(&f32s(&out[0]), &[1.5]);
    assert_eq!(f32s(&out[3])[2], f32::NEG_INFINITY);
    let nonpad = t(&[1], vec![1i64]);
    let out = run(
        &with!(),
        &[
            Some(&q),
            Some(&k),
            Some(&v),
            None,
            None,
            None,
            Some(&nonpad),
        ],
        1,
    )
    .unwrap();
    close(&f32s(&out[0]), &[1.]);
    let bad = t(&[1], vec![4i64]);
    assert!(run(
        &with!(),
        &[Some(&q), Some(&k), Some(&v), None, None, None, Some(&bad)],
        1
    )
    .is_err());
    let wide = t(&[1, 4], vec![0f32; 4]);
    assert!(run(&with!(), &[Some(&q), Some(&k), Some(&v), Some(&wide)], 1).is_err());
    let mismatched = t(&[2, 1, 3], vec![0f32; 6]);
    assert!(run(
        &with!(),
        &[Some(&q), Some(&k), Some(&v), Some(&mismatched)],
        1
    )
    .is_err());
}

#[test]
fn softcap_applies_before_the_mask() {
    let q = t(&[1, 1, 1, 1], vec![3f32]);
    let k = t(&[1, 1, 2, 1], vec![1f32, -1.]);
    let v = t(&[1, 1, 2, 1], vec![1f32, 0.]);
    let mask = t(&[1, 2], vec![0f32, f32::NEG_INFINITY]);
    let op = with!(softcap = 2.0, qk_matmul_output_mode = 1);
    let out = run(&op, &[Some(&q), Some(&k), Some(&v), Some(&mask)], 4).unwrap();
    close(&f32s(&out[0]), &[1.]);
    let c = 2. * (1.5f32).tanh();
    close(&f32s(&out[3]), &[c, -c]);
}

#[test]
fn grouped_heads_3d_layout_and_cache() {
    // Two query heads of size 1 sharing one key/value head; rank-3 layout.
    let q = t(&[1, 1, 2], vec![1f32, -1.]);
    let k = t(&[1, 1, 1], vec![1f32]);
    let v = t(&[1, 1, 1], vec![3f32]);
    let past_k = t(&[1, 1, 1, 1], vec![0f32]);
    let past_v = t(&[1, 1, 1, 1], vec![1f32]);
    let op = with!(q_num_heads = Some(2), kv_num_heads = Some(1));
    let out = run(
        &op,
        &[
            Some(&q),
            Some(&k),
            Some(&v),
            None,
            Some(&past_k),
            Some(&past_v),
        ],
        3,
    )
    .unwrap();
    assert_eq!(out[0].shape(), &[1, 1, 2]);
    // Head 0 scores [0, 1], head 1 scores [0, -1] over keys [past, new].
    let (a0, a1) = softmax2(0., 1.);
    let (b0, b1) = softmax2(0., -1.);
    close(&f32s(&out[0]), &[a0 + 3. * a1, b0 + 3. * b1]);
    assert_eq!(out[1].shape(), &[1, 1, 2, 1]);
    close(&f32s(&out[1]), &[0., 1.]);
    close(&f32s(&out[2]), &[1., 3.]);
    assert!(run(&with!(), &[Some(&q), Some(&k), Some(&v)], 1).is_err());
    let odd = with!(q_num_heads = Some(2), kv_num_heads = Some(2));
    assert!(run(&odd, &[Some(&q), Some(&k), Some(&v)], 1).is_err());
    let three = with!(q_num_heads = Some(2), kv_num_heads = Some(1));
    let q3 = t(&[1, 1, 3], vec![0f32; 3]);
    assert!(run(&three, &[Some(&q3), Some(&k), Some(&v)], 1).is_err());
    assert!(run(&op, &[Some(&q), Some(&k), Some(&v), None, Some(&past_k)], 1).is_err());
    assert!(run(&op, &[Some(&q), Some(&k), Some(&v)], 5).is_err());
}

#[test]
fn half_precision_rounds_once() {
    let q = t(&[1, 1, 1, 1], vec![f16::from_f32(1.)]);
    let k = t(&[1, 1, 2, 1], vec![f16::from_f32(1.), f16::from_f32(0.)]);
    let v = t(&[1, 1, 2, 1], vec![f16::from_f32(2.), f16::from_f32(4.)]);
    let out = run(&with!(), &[Some(&q), Some(&k), Some(&v)], 1).unwrap();
    assert_eq!(out[0].dtype(), DType::F16);
    let (p0, p1) = softmax2(1., 0.);
    assert_eq!(
        out[0].as_slice::<f16>().unwrap(),
        &[f16::from_f64(2. * p0 as f64 + 4. * p1 as f64)]
    );
    let ints = t(&[1, 1, 1, 1], vec![1i32]);
    assert!(run(&with!(), &[Some(&ints), Some(&k), Some(&v)], 1).is_err());
}

#[test]
fn rms_normalization() {
    let op = AttentionOp::RmsNormalization {
        axis: -1,
        epsilon: 0.0,
        stash_type: 1,
    };
    let x = t(&[2, 2], vec![3f32, 4., 1., -1.]);
    let w = t(&[2], vec![1f32, 2.]);
    let out = run(&op, &[Some(&x), Some(&w)], 1).unwrap();
    let r = 12.5f32.sqrt();
    close(&f32s(&out[0]), &[3. / r, 8. / r, 1., -2.]);
    // axis 0 normalizes over everything; scale covers both axes.
    let op = AttentionOp::RmsNormalization {
        axis: 0,
        epsilon: 1.0,
        stash_type: 1,
    };
    let w = t(&[2, 2], vec![1f32, 1., 1., 2.]);
    let out = run(&op, &[Some(&x), Some(&w)], 1).unwrap();
    let r = (27f32 / 4. + 1.).sqrt();
    close(&f32s(&out[0]), &[3. / r, 4. / r, 1. / r, -2. / r]);
    let bad = t(&[3], vec![1f32; 3]);
    assert!(run(&op, &[Some(&x), Some(&bad)], 1).is_err());
    let op = AttentionOp::RmsNormalization {
        axis: 2,
        epsilon: 0.0,
        stash_type: 1,
    };
    assert!(run(&op, &[Some(&x), Some(&w)], 1).is_err());
}

#[test]
fn rotary_embedding() {
    let rotary = |interleaved, num_heads, dim| AttentionOp::RotaryEmbedding {
        interleaved,
        num_heads,
        rotary_embedding_dim: dim,
    };
    let x = t(&[1, 1, 1, 4], vec![1f32, 2., 3., 4.]);
    // Position 1 of the cache rotates by 90 degrees.
    let cos = t(&[2, 2], vec![1f32, 1., 0., 0.]);
    let sin = t(&[2, 2], vec![0f32, 0., 1., 1.]);
    let pos = t(&[1, 1], vec![1i64]);
    let ins = [Some(&x), Some(&cos), Some(&sin), Some(&pos)];
    close(
        &f32s(&run(&rotary(false, 0, 0), &ins, 1).unwrap()[0]),
        &[-3., -4., 1., 2.],
    );
    close(
        &f32s(&run(&rotary(true, 0, 0), &ins, 1).unwrap()[0]),
        &[-2., 1., -4., 3.],
    );
    close(
        &f32s(&run(&rotary(false, 0, 2), &ins, 1).unwrap()[0]),
        &[-2., 1., 3., 4.],
    );
    // Position 0 is the identity; rank 3 with two heads of size 2, caches per token.
    let x3 = t(&[1, 2, 4], vec![1f32, 2., 3., 4., 5., 6., 7., 8.]);
    let cos3 = t(&[1, 2, 1], vec![1f32, 0.]);
    let sin3 = t(&[1, 2, 1], vec![0f32, 1.]);
    let out = run(
        &rotary(false, 2, 0),
        &[Some(&x3), Some(&cos3), Some(&sin3)],
        1,
    )
    .unwrap();
    close(&f32s(&out[0]), &[1., 2., 3., 4., -6., 5., -8., 7.]);
    assert!(run(
        &rotary(false, 0, 0),
        &[Some(&x3), Some(&cos3), Some(&sin3)],
        1
    )
    .is_err());
    let far = t(&[1, 1], vec![2i64]);
    assert!(run(
        &rotary(false, 0, 0),
        &[Some(&x), Some(&cos), Some(&sin), Some(&far)],
        1
    )
    .is_err());
    let narrow = t(&[2, 1], vec![1f32, 0.]);
    assert!(run(
        &rotary(false, 0, 0),
        &[Some(&x), Some(&narrow), Some(&narrow), Some(&pos)],
        1
    )
    .is_err());
}
