//! Transformer building blocks: `Attention` (opsets 23 and 24, plus the
//! `left_window_size`/`right_window_size` attributes of later opsets),
//! `RMSNormalization` and `RotaryEmbedding` (opset 23).
//!
//! Semantics follow the ONNX function bodies of these operators: in `Attention`
//! the soft cap applies to the scaled `Q·Kᵀ` before the mask is added, and a query
//! row whose mask is `-inf` everywhere gets zero probabilities (so a zero output)
//! rather than NaN.

use slimnet_tensor::DType;

use crate::ops::util::{broadcast_dims, input, like, normalize_axis, optional, with_dtype};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum AttentionOp {
    /// Scaled dot-product attention over `Q`, `K`, `V` of rank 4
    /// (`[batch, heads, seq, head_size]`) or rank 3 (`[batch, seq, heads * head_size]`,
    /// which needs `q_num_heads` and `kv_num_heads`). Inputs: Q, K, V, attn_mask,
    /// past_key, past_value, nonpad_kv_seqlen; outputs: Y, present_key,
    /// present_value, qk_matmul_output.
    Attention {
        is_causal: bool,
        q_num_heads: Option<i64>,
        kv_num_heads: Option<i64>,
        /// What `qk_matmul_output` holds: 0 the scaled `Q·Kᵀ`, 1 after the soft cap,
        /// 2 after adding the mask, 3 after the softmax.
        qk_matmul_output_mode: i64,
        /// `None`: `1 / sqrt(head_size)`.
        scale: Option<f32>,
        /// `0` (or negative): no soft cap; otherwise `softcap * tanh(x / softcap)`.
        softcap: f32,
        /// ONNX dtype code the softmax is computed in (`None`: the input type).
        softmax_precision: Option<i64>,
        /// How many keys before (after) a query's position it may attend to;
        /// `-1` is unbounded.
        left_window_size: i64,
        right_window_size: i64,
    },
    /// `X / sqrt(mean(X², axes axis..rank) + epsilon) * scale`; `stash_type` is the
    /// ONNX dtype code of the computation.
    RmsNormalization {
        axis: i64,
        epsilon: f32,
        stash_type: i64,
    },
    /// Rotates pairs of the first `rotary_embedding_dim` features of each head
    /// (all of them when 0) by the angles whose cosines and sines are given;
    /// `num_heads` is needed for rank-3 input.
    RotaryEmbedding {
        interleaved: bool,
        num_heads: i64,
        rotary_embedding_dim: i64,
    },
}

fn flag(attrs: &Attributes, name: &str) -> Result<bool, AttrError> {
    match attrs.int(name, 0)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(AttrError::new(name, format!("must be 0 or 1, got {v}"))),
    }
}

fn float_code(attrs: &Attributes, name: &str) -> Result<Option<i64>, AttrError> {
    match attrs.int_opt(name)? {
        None => Ok(None),
        Some(code) => {
            float_dtype(code).map_err(|r| AttrError::new(name, r))?;
            Ok(Some(code))
        }
    }
}

/// The float dtype of an ONNX dtype code.
pub fn float_dtype(code: i64) -> Result<DType, String> {
    i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .filter(|d| d.is_float())
        .ok_or_else(|| format!("{code} is not a float type that is supported"))
}

fn positive(attrs: &Attributes, name: &str) -> Result<Option<i64>, AttrError> {
    match attrs.int_opt(name)? {
        Some(v) if v <= 0 => Err(AttrError::new(name, format!("must be positive, got {v}"))),
        v => Ok(v),
    }
}

fn window(attrs: &Attributes, name: &str) -> Result<i64, AttrError> {
    match attrs.int(name, -1)? {
        v if v < -1 => Err(AttrError::new(
            name,
            format!("must be -1 or at least 0, got {v}"),
        )),
        v => Ok(v),
    }
}

impl AttentionOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in from the spec;
    /// `None` when the op type is not in this family.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let op = (|| {
            Ok(Some(match ctx.op_type {
                "Attention" => {
                    let mode = attrs.int("qk_matmul_output_mode", 0)?;
                    if !(0..=3).contains(&mode) {
                        return Err(AttrError::new(
                            "qk_matmul_output_mode",
                            format!("must be 0 to 3, got {mode}"),
                        ));
                    }
                    AttentionOp::Attention {
                        is_causal: flag(attrs, "is_causal")?,
                        q_num_heads: positive(attrs, "q_num_heads")?,
                        kv_num_heads: positive(attrs, "kv_num_heads")?,
                        qk_matmul_output_mode: mode,
                        scale: attrs.float_opt("scale")?,
                        softcap: attrs.float("softcap", 0.0)?,
                        softmax_precision: float_code(attrs, "softmax_precision")?,
                        left_window_size: window(attrs, "left_window_size")?,
                        right_window_size: window(attrs, "right_window_size")?,
                    }
                }
                "RMSNormalization" => AttentionOp::RmsNormalization {
                    axis: attrs.int("axis", -1)?,
                    epsilon: attrs.float("epsilon", 1e-5)?,
                    stash_type: float_code(attrs, "stash_type")?.unwrap_or(1),
                },
                "RotaryEmbedding" => {
                    let num_heads = attrs.int("num_heads", 0)?;
                    if num_heads < 0 {
                        return Err(AttrError::new(
                            "num_heads",
                            format!("must not be negative, got {num_heads}"),
                        ));
                    }
                    let dim = attrs.int("rotary_embedding_dim", 0)?;
                    if dim < 0 || dim % 2 != 0 {
                        return Err(AttrError::new(
                            "rotary_embedding_dim",
                            format!("must be even and not negative, got {dim}"),
                        ));
                    }
                    AttentionOp::RotaryEmbedding {
                        interleaved: flag(attrs, "interleaved")?,
                        num_heads,
                        rotary_embedding_dim: dim,
                    }
                }
                _ => return Ok(None),
            }))
        })();
        op.transpose()
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            AttentionOp::Attention { .. } => "Attention",
            AttentionOp::RmsNormalization { .. } => "RMSNormalization",
            AttentionOp::RotaryEmbedding { .. } => "RotaryEmbedding",
        }
    }

    /// The attributes to write back on export (optional ones only when set, the
    /// window sizes only when bounded, RotaryEmbedding's sizes only when not 0).
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        let i = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        let f = |name: &str, v: f32| (name.to_string(), Attr::Float(v));
        match self {
            AttentionOp::Attention {
                is_causal,
                q_num_heads,
                kv_num_heads,
                qk_matmul_output_mode,
                scale,
                softcap,
                softmax_precision,
                left_window_size,
                right_window_size,
            } => {
                let mut v = vec![i("is_causal", *is_causal as i64)];
                if let Some(n) = q_num_heads {
                    v.push(i("q_num_heads", *n));
                }
                if let Some(n) = kv_num_heads {
                    v.push(i("kv_num_heads", *n));
                }
                v.push(i("qk_matmul_output_mode", *qk_matmul_output_mode));
                if let Some(s) = scale {
                    v.push(f("scale", *s));
                }
                v.push(f("softcap", *softcap));
                if let Some(p) = softmax_precision {
                    v.push(i("softmax_precision", *p));
                }
                if *left_window_size != -1 {
                    v.push(i("left_window_size", *left_window_size));
                }
                if *right_window_size != -1 {
                    v.push(i("right_window_size", *right_window_size));
                }
                v
            }
            AttentionOp::RmsNormalization {
                axis,
                epsilon,
                stash_type,
            } => {
                vec![
                    i("axis", *axis),
                    f("epsilon", *epsilon),
                    i("stash_type", *stash_type),
                ]
            }
            AttentionOp::RotaryEmbedding {
                interleaved,
                num_heads,
                rotary_embedding_dim,
            } => {
                let mut v = vec![i("interleaved", *interleaved as i64)];
                if *num_heads > 0 {
                    v.push(i("num_heads", *num_heads));
                }
                if *rotary_embedding_dim > 0 {
                    v.push(i("rotary_embedding_dim", *rotary_embedding_dim));
                }
                v
            }
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match self {
            AttentionOp::Attention {
                q_num_heads,
                kv_num_heads,
                ..
            } => infer_attention(inputs, *q_num_heads, *kv_num_heads),
            AttentionOp::RmsNormalization { axis, .. } => {
                let x = input(inputs, 0)?;
                let scale = input(inputs, 1)?;
                float_only("X", x)?;
                float_only("scale", scale)?;
                if let Some(s) = &x.info.shape {
                    normalize_axis(*axis, s.len())?;
                    if let Some(w) = &scale.info.shape {
                        let b = broadcast_dims(s, w)?;
                        let grows = |(o, d): (&Dim, &Dim)| matches!((o, d), (Dim::Known(o), Dim::Known(d)) if o != d);
                        if b.len() != s.len() || b.iter().zip(s).any(grows) {
                            return Err(format!(
                                "scale of rank {} does not broadcast to X of rank {}",
                                w.len(),
                                s.len()
                            ));
                        }
                    }
                }
                let dtype = scale.info.dtype.or(x.info.dtype);
                Ok(vec![ValueInfo {
                    dtype,
                    shape: x.info.shape.clone(),
                }])
            }
            AttentionOp::RotaryEmbedding {
                num_heads,
                rotary_embedding_dim,
                ..
            } => {
                let x = input(inputs, 0)?;
                float_only("input", x)?;
                if let Some(s) = &x.info.shape {
                    let head = match s.len() {
                        4 => s[3].known(),
                        3 if *num_heads == 0 => {
                            return Err("rank-3 input needs the num_heads attribute".into())
                        }
                        3 => match s[2].known() {
                            Some(h) if h % *num_heads as usize != 0 => {
                                return Err(format!(
                                    "hidden size {h} is not a multiple of num_heads {num_heads}"
                                ))
                            }
                            h => h.map(|h| h / *num_heads as usize),
                        },
                        r => return Err(format!("input must have rank 3 or 4, got {r}")),
                    };
                    if let Some(h) = head {
                        if *rotary_embedding_dim as usize > h {
                            return Err(format!(
                                "rotary_embedding_dim {rotary_embedding_dim} exceeds the head size {h}"
                            ));
                        }
                        if *rotary_embedding_dim == 0 && h % 2 != 0 {
                            return Err(format!("head size {h} is odd"));
                        }
                    }
                }
                Ok(vec![x.info.clone()])
            }
        }
    }
}

fn float_only(what: &str, x: &InferInput) -> Result<(), String> {
    match x.info.dtype {
        Some(d) if !d.is_float() => Err(format!("{what} must be a float tensor, got {d}")),
        _ => Ok(()),
    }
}

/// `d / n` when known and divisible; an error when known and not divisible.
fn div_dim(d: &Dim, n: Option<i64>, what: &str) -> Result<Dim, String> {
    match (d, n) {
        (_, Some(n)) if n <= 0 => Err(format!("{what} needs a positive head count, got {n}")),
        (Dim::Known(d), Some(n)) if d % n as usize != 0 => Err(format!(
            "{what} hidden size {d} is not a multiple of {n} heads"
        )),
        (Dim::Known(d), Some(n)) => Ok(Dim::Known(d / n as usize)),
        _ => Ok(Dim::Unknown),
    }
}

fn add_dims(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x + y),
        (Dim::Known(0), y) => y.clone(),
        (x, Dim::Known(0)) => x.clone(),
        _ => Dim::Unknown,
    }
}

/// Two dims that must be equal: the more specific one, or an error if both are known
/// and differ.
fn same_dim(a: &Dim, b: &Dim, what: &str) -> Result<Dim, String> {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => Err(format!("{what}: {x} vs {y}")),
        (Dim::Known(_), _) => Ok(a.clone()),
        (_, Dim::Known(_)) => Ok(b.clone()),
        (Dim::Symbol(_), _) => Ok(a.clone()),
        _ => Ok(b.clone()),
    }
}

/// Q, K, V as `[batch, heads, seq, head_size]` (rank-3 inputs split into heads).
struct Heads {
    batch: Dim,
    heads: Dim,
    seq: Dim,
    size: Dim,
}

fn heads_of(x: &InferInput, n: Option<i64>, what: &str) -> Result<Option<Heads>, String> {
    let Some(s) = &x.info.shape else {
        return Ok(None);
    };
    Ok(Some(match s.len() {
        4 => {
            if let (Some(n), Some(h)) = (n, s[1].known()) {
                if n as usize != h {
                    return Err(format!("{what} has {h} heads but the attribute says {n}"));
                }
            }
            Heads {
                batch: s[0].clone(),
                heads: s[1].clone(),
                seq: s[2].clone(),
                size: s[3].clone(),
            }
        }
        3 => {
            let Some(n) = n else {
                return Err(
                    "rank-3 inputs need the q_num_heads and kv_num_heads attributes".into(),
                );
            };
            Heads {
                batch: s[0].clone(),
                heads: Dim::Known(n as usize),
                seq: s[1].clone(),
                size: div_dim(&s[2], Some(n), what)?,
            }
        }
        r => return Err(format!("{what} must have rank 3 or 4, got {r}")),
    }))
}

fn infer_attention(
    inputs: &[Option<InferInput>],
    q_num_heads: Option<i64>,
    kv_num_heads: Option<i64>,
) -> Result<Vec<ValueInfo>, String> {
    let (q, k, v) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
    for (name, x) in [("Q", q), ("K", k), ("V", v)] {
        float_only(name, x)?;
    }
    if let Some(m) = optional(inputs, 3) {
        if matches!(m.info.dtype, Some(d) if !d.is_float() && d != DType::Bool) {
            return Err(format!(
                "attn_mask must be bool or float, got {}",
                m.info.dtype.unwrap()
            ));
        }
    }
    let ranks: Vec<usize> = [q, k, v].iter().filter_map(|x| x.info.rank()).collect();
    if ranks.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("Q, K and V must have the same rank, got {ranks:?}"));
    }
    let rank = ranks.first().copied();
    let qh = heads_of(q, q_num_heads, "Q")?;
    let kh = heads_of(k, kv_num_heads, "K")?;
    let vh = heads_of(v, kv_num_heads, "V")?;
    if let (Some(qh), Some(kh)) = (&qh, &kh) {
        same_dim(&qh.batch, &kh.batch, "Q and K batch sizes differ")?;
        same_dim(&qh.size, &kh.size, "Q and K head sizes differ")?;
        if let (Some(a), Some(b)) = (qh.heads.known(), kh.heads.known()) {
            if b == 0 || a % b != 0 {
                return Err(format!(
                    "{a} query heads are not a multiple of {b} key/value heads"
                ));
            }
        }
    }
    if let (Some(kh), Some(vh)) = (&kh, &vh) {
        same_dim(&kh.seq, &vh.seq, "K and V sequence lengths differ")?;
        same_dim(&kh.heads, &vh.heads, "K and V head counts differ")?;
    }
    let past = |i: usize| {
        optional(inputs, i).map(|p| {
            p.info
                .shape
                .as_ref()
                .map(|s| s.get(2).cloned().unwrap_or(Dim::Unknown))
        })
    };
    let past_len = match (past(4), past(5)) {
        (None, None) => Some(Dim::Known(0)),
        (Some(a), Some(b)) => match (a, b) {
            (Some(a), Some(b)) => Some(same_dim(&a, &b, "past_key and past_value lengths differ")?),
            (a, b) => a.or(b),
        },
        _ => return Err("past_key and past_value must be given together".into()),
    };
    let total = match (&kh, &vh, &past_len) {
        (Some(h), _, Some(p)) | (None, Some(h), Some(p)) => Some(add_dims(&h.seq, p)),
        _ => None,
    };
    let total = total.unwrap_or(Dim::Unknown);
    let mut batch = Dim::Unknown;
    for h in [&qh, &kh, &vh].into_iter().flatten() {
        batch = same_dim(&batch, &h.batch, "batch sizes differ")?;
    }
    let q_heads = qh.as_ref().map_or(Dim::Unknown, |h| h.heads.clone());
    let q_seq = qh.as_ref().map_or(Dim::Unknown, |h| h.seq.clone());
    let kv_heads = kh
        .as_ref()
        .or(vh.as_ref())
        .map_or(Dim::Unknown, |h| h.heads.clone());
    let k_size = kh
        .as_ref()
        .or(qh.as_ref())
        .map_or(Dim::Unknown, |h| h.size.clone());
    let v_size = vh.as_ref().map_or(Dim::Unknown, |h| h.size.clone());
    let y_shape = match rank {
        None => None,
        Some(3) => {
            let hidden = match (q_heads.known(), v_size.known()) {
                (Some(h), Some(d)) => Dim::Known(h * d),
                _ => Dim::Unknown,
            };
            Some(vec![batch.clone(), q_seq.clone(), hidden])
        }
        Some(_) => Some(vec![
            batch.clone(),
            q_heads.clone(),
            q_seq.clone(),
            v_size.clone(),
        ]),
    };
    let known_rank = rank.is_some();
    let shape = |dims: Vec<Dim>| if known_rank { Some(dims) } else { None };
    Ok(vec![
        like(q, y_shape),
        like(
            k,
            shape(vec![batch.clone(), kv_heads.clone(), total.clone(), k_size]),
        ),
        like(
            v,
            shape(vec![batch.clone(), kv_heads, total.clone(), v_size]),
        ),
        match q.info.dtype {
            Some(d) => with_dtype(d, shape(vec![batch, q_heads, q_seq, total])),
            None => ValueInfo {
                dtype: None,
                shape: shape(vec![batch, q_heads, q_seq, total]),
            },
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(op_type: &'static str, opset: i64) -> NodeContext<'static> {
        NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 3,
            num_outputs: 1,
        }
    }

    fn known(s: &[usize]) -> Vec<Dim> {
        s.iter().map(|&d| Dim::Known(d)).collect()
    }

    fn info(dtype: DType, s: &[usize]) -> ValueInfo {
        ValueInfo::new(dtype, known(s))
    }

    fn ins<'a>(infos: &[Option<&'a ValueInfo>]) -> Vec<Option<InferInput<'a>>> {
        infos
            .iter()
            .map(|i| i.map(|info| InferInput { info, value: None }))
            .collect()
    }

    #[test]
    fn parse_defaults_and_errors() {
        let none = Attributes::default();
        let a = AttentionOp::parse(&ctx("Attention", 23), &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            AttentionOp::Attention {
                is_causal: false,
                q_num_heads: None,
                kv_num_heads: None,
                qk_matmul_output_mode: 0,
                scale: None,
                softcap: 0.0,
                softmax_precision: None,
                left_window_size: -1,
                right_window_size: -1,
            }
        );
        assert_eq!(a.attributes().len(), 3);
        let r = AttentionOp::parse(&ctx("RMSNormalization", 23), &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            AttentionOp::RmsNormalization {
                axis: -1,
                epsilon: 1e-5,
                stash_type: 1
            }
        );
        let bad = Attributes::new(vec![("qk_matmul_output_mode".into(), Attr::Int(4))]);
        assert!(AttentionOp::parse(&ctx("Attention", 23), &bad)
            .unwrap()
            .is_err());
        let bad = Attributes::new(vec![("softmax_precision".into(), Attr::Int(7))]);
        assert!(AttentionOp::parse(&ctx("Attention", 23), &bad)
            .unwrap()
            .is_err());
        let bad = Attributes::new(vec![("rotary_embedding_dim".into(), Attr::Int(3))]);
        assert!(AttentionOp::parse(&ctx("RotaryEmbedding", 23), &bad)
            .unwrap()
            .is_err());
        assert!(AttentionOp::parse(&ctx("Relu", 23), &none).is_none());
    }

    #[test]
    fn attention_shapes_3d_with_past() {
        let op = AttentionOp::Attention {
            is_causal: false,
            q_num_heads: Some(9),
            kv_num_heads: Some(3),
            qk_matmul_output_mode: 0,
            scale: None,
            softcap: 0.0,
            softmax_precision: None,
            left_window_size: -1,
            right_window_size: -1,
        };
        let q = info(DType::F32, &[2, 4, 72]);
        let k = info(DType::F32, &[2, 6, 24]);
        let v = info(DType::F32, &[2, 6, 30]);
        let pk = info(DType::F32, &[2, 3, 12, 8]);
        let pv = info(DType::F32, &[2, 3, 12, 10]);
        let out = op
            .infer(&ins(&[
                Some(&q),
                Some(&k),
                Some(&v),
                None,
                Some(&pk),
                Some(&pv),
            ]))
            .unwrap();
        assert_eq!(out[0].shape, Some(known(&[2, 4, 90])));
        assert_eq!(out[1].shape, Some(known(&[2, 3, 18, 8])));
        assert_eq!(out[2].shape, Some(known(&[2, 3, 18, 10])));
        assert_eq!(out[3].shape, Some(known(&[2, 9, 4, 18])));
        let k_bad = info(DType::F32, &[2, 6, 25]);
        assert!(op.infer(&ins(&[Some(&q), Some(&k_bad), Some(&v)])).is_err());
    }

    #[test]
    fn attention_shapes_4d_symbolic() {
        let op = AttentionOp::parse(&ctx("Attention", 23), &Attributes::default())
            .unwrap()
            .unwrap();
        let b = Dim::Symbol("b".into());
        let q = ValueInfo::new(
            DType::F16,
            vec![
                b.clone(),
                Dim::Known(4),
                Dim::Symbol("s".into()),
                Dim::Known(8),
            ],
        );
        let k = ValueInfo::new(
            DType::F16,
            vec![b.clone(), Dim::Known(2), Dim::Known(6), Dim::Known(8)],
        );
        let out = op.infer(&ins(&[Some(&q), Some(&k), Some(&k)])).unwrap();
        assert_eq!(
            out[0],
            ValueInfo::new(
                DType::F16,
                vec![
                    b.clone(),
                    Dim::Known(4),
                    Dim::Symbol("s".into()),
                    Dim::Known(8)
                ]
            )
        );
        let k3 = ValueInfo::new(
            DType::F16,
            vec![b, Dim::Known(3), Dim::Known(6), Dim::Known(8)],
        );
        assert!(op.infer(&ins(&[Some(&q), Some(&k3), Some(&k3)])).is_err());
    }

    #[test]
    fn rms_and_rotary_shapes() {
        let rms = AttentionOp::RmsNormalization {
            axis: 1,
            epsilon: 1e-5,
            stash_type: 1,
        };
        let x = info(DType::F32, &[2, 3, 5]);
        let w = info(DType::F32, &[3, 5]);
        assert_eq!(rms.infer(&ins(&[Some(&x), Some(&w)])).unwrap()[0], x);
        let w_bad = info(DType::F32, &[2, 2, 3, 5]);
        assert!(rms.infer(&ins(&[Some(&x), Some(&w_bad)])).is_err());
        let rot = AttentionOp::RotaryEmbedding {
            interleaved: false,
            num_heads: 0,
            rotary_embedding_dim: 0,
        };
        let x3 = info(DType::F32, &[2, 3, 32]);
        assert!(rot.infer(&ins(&[Some(&x3), Some(&w), Some(&w)])).is_err());
        let rot = AttentionOp::RotaryEmbedding {
            interleaved: false,
            num_heads: 4,
            rotary_embedding_dim: 0,
        };
        assert_eq!(
            rot.infer(&ins(&[Some(&x3), Some(&w), Some(&w)])).unwrap()[0],
            x3
        );
    }
}
