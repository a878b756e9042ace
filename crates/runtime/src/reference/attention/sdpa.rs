//! `Attention`: scaled dot-product attention with grouped key/value heads, a
//! key/value cache, masks (boolean or additive, causal, sliding window, padding)
//! and a soft cap.

use slimnet_tensor::Tensor;

use super::{floats, output};
use crate::reference::util::reason;

/// The attributes of an `Attention` node (see `slimnet_ir::ops::AttentionOp`).
pub struct Params {
    pub is_causal: bool,
    pub q_num_heads: Option<i64>,
    pub kv_num_heads: Option<i64>,
    pub qk_matmul_output_mode: i64,
    pub scale: Option<f32>,
    pub softcap: f32,
    pub left_window_size: i64,
    pub right_window_size: i64,
}

/// The inputs of an `Attention` node.
pub struct Inputs<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub attn_mask: Option<&'a Tensor>,
    pub past_key: Option<&'a Tensor>,
    pub past_value: Option<&'a Tensor>,
    pub nonpad_kv_seqlen: Option<&'a Tensor>,
}

/// A tensor viewed as `[batch, heads, seq, size]` in `f64`.
struct Heads {
    data: Vec<f64>,
    batch: usize,
    heads: usize,
    seq: usize,
    size: usize,
}

impl Heads {
    /// Rank 4 as is; rank 3 (`[batch, seq, heads * size]`) split into `heads` heads.
    fn new(t: &Tensor, heads: Option<i64>, what: &str) -> Result<Heads, String> {
        let x = floats(t, what)?;
        match *t.shape() {
            [batch, h, seq, size] => {
                if let Some(n) = heads {
                    if n as usize != h {
                        return Err(format!("{what} has {h} heads but the attribute says {n}"));
                    }
                }
                Ok(Heads {
                    data: x,
                    batch,
                    heads: h,
                    seq,
                    size,
                })
            }
            [batch, seq, hidden] => {
                let n = heads
                    .filter(|&n| n > 0)
                    .ok_or("rank-3 inputs need positive q_num_heads and kv_num_heads attributes")?
                    as usize;
                if hidden % n != 0 {
                    return Err(format!(
                        "{what} hidden size {hidden} is not a multiple of {n} heads"
                    ));
                }
                let size = hidden / n;
                let mut data = Vec::with_capacity(x.len());
                for b in 0..batch {
                    for h in 0..n {
                        for s in 0..seq {
                            let at = (b * seq + s) * hidden + h * size;
                            data.extend_from_slice(&x[at..at + size]);
                        }
                    }
                }
                Ok(Heads {
                    data,
                    batch,
                    heads: n,
                    seq,
                    size,
                })
            }
            _ => Err(format!(
                "{what} must have rank 3 or 4, got shape {:?}",
                t.shape()
            )),
        }
    }

    fn row(&self, b: usize, h: usize, s: usize) -> &[f64] {
        let at = ((b * self.heads + h) * self.seq + s) * self.size;
        &self.data[at..at + self.size]
    }

    fn shape(&self) -> Vec<usize> {
        vec![self.batch, self.heads, self.seq, self.size]
    }

    /// `past` (rank 4) followed by `self` along the sequence axis.
    fn after_past(self, past: &Tensor, what: &str) -> Result<Heads, String> {
        let p = floats(past, what)?;
        let &[batch, heads, len, size] = past.shape() else {
            return Err(format!(
                "{what} must have rank 4, got shape {:?}",
                past.shape()
            ));
        };
        if (batch, heads, size) != (self.batch, self.heads, self.size) {
            return Err(format!(
                "{what} of shape {:?} does not match [batch, heads, _, size] = {:?}",
                past.shape(),
                self.shape()
            ));
        }
        let seq = len + self.seq;
        let mut data = Vec::with_capacity(batch * heads * seq * size);
        for bh in 0..batch * heads {
            data.extend_from_slice(&p[bh * len * size..(bh + 1) * len * size]);
            data.extend_from_slice(&self.data[bh * self.seq * size..(bh + 1) * self.seq * size]);
        }
        Ok(Heads {
            data,
            batch,
            heads,
            seq,
            size,
        })
    }
}

/// An attention mask as an additive bias, broadcast to `[batch, q_heads, q_seq, _]`;
/// keys past the mask's last dimension are masked out (`-inf`).
struct Mask {
    values: Vec<f64>,
    strides: [usize; 3],
    len: usize,
}

impl Mask {
    fn new(m: &Tensor, dims: [usize; 3], total: usize) -> Result<Mask, String> {
        let values: Vec<f64> = if m.dtype() == slimnet_tensor::DType::Bool {
            m.as_slice::<bool>()
                .map_err(reason)?
                .iter()
                .map(|&b| if b { 0.0 } else { f64::NEG_INFINITY })
                .collect()
        } else {
            floats(m, "attn_mask")?
        };
        let shape = m.shape();
        if shape.is_empty() || shape.len() > 4 {
            return Err(format!(
                "attn_mask must have rank 1 to 4, got shape {shape:?}"
            ));
        }
        let len = shape[shape.len() - 1];
        if len > total {
            return Err(format!("attn_mask covers {len} keys but there are {total}"));
        }
        let mut full = [1usize; 4];
        full[4 - shape.len()..].copy_from_slice(shape);
        let mut strides = [0usize; 3];
        let mut stride = len;
        for d in (0..3).rev() {
            if full[d] != 1 && full[d] != dims[d] {
                return Err(format!(
                    "attn_mask of shape {shape:?} does not broadcast to [batch, heads, q_seq, _] = {dims:?}"
                ));
            }
            if full[d] != 1 {
                strides[d] = stride;
            }
            stride *= full[d];
        }
        Ok(Mask {
            values,
            strides,
            len,
        })
    }

    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        if j < self.len {
            self.values[b * self.strides[0] + h * self.strides[1] + i * self.strides[2] + j]
        } else {
            f64::NEG_INFINITY
        }
    }
}

/// Largest element, NaN if any is NaN (`-inf` for none).
fn nan_max(x: &[f64]) -> f64 {
    x.iter().fold(f64::NEG_INFINITY, |m, &v| {
        if m.is_nan() || v.is_nan() {
            f64::NAN
        } else {
            m.max(v)
        }
    })
}

/// Runs `Attention`; returns the first `num_outputs` of Y, present_key,
/// present_value and qk_matmul_output.
pub fn attention(p: &Params, x: &Inputs, num_outputs: usize) -> Result<Vec<Tensor>, String> {
    if num_outputs > 4 {
        return Err(format!(
            "Attention has at most 4 outputs, the node has {num_outputs}"
        ));
    }
    let rank = x.q.rank();
    if x.k.rank() != rank || x.v.rank() != rank {
        return Err(format!(
            "Q, K and V must have the same rank, got {:?}, {:?} and {:?}",
            x.q.shape(),
            x.k.shape(),
            x.v.shape()
        ));
    }
    let q = Heads::new(x.q, p.q_num_heads, "Q")?;
    let mut k = Heads::new(x.k, p.kv_num_heads, "K")?;
    let mut v = Heads::new(x.v, p.kv_num_heads, "V")?;
    if k.batch != q.batch || v.batch != q.batch {
        return Err(format!(
            "batch sizes differ: Q {}, K {}, V {}",
            q.batch, k.batch, v.batch
        ));
    }
    if k.size != q.size {
        return Err(format!(
            "Q and K head sizes differ: {} vs {}",
            q.size, k.size
        ));
    }
    if k.heads != v.heads || k.seq != v.seq {
        return Err(format!(
            "K and V must have the same heads and sequence length: {:?} vs {:?}",
            k.shape(),
            v.shape()
        ));
    }
    if k.heads == 0 || q.heads % k.heads != 0 {
        return Err(format!(
            "{} query heads are not a multiple of {} key/value heads",
            q.heads, k.heads
        ));
    }
    let past_len = match (x.past_key, x.past_value) {
        (None, None) => None,
        (Some(pk), Some(pv)) => {
            if pk.dtype() != x.k.dtype() || pv.dtype() != x.v.dtype() {
                return Err("past_key and past_value must have the dtypes of K and V".into());
            }
            k = k.after_past(pk, "past_key")?;
            v = v.after_past(pv, "past_value")?;
            if k.seq != v.seq {
                return Err("past_key and past_value have different lengths".into());
            }
            Some(pk.shape()[2])
        }
        _ => return Err("past_key and past_value must be given together".into()),
    };
    let (batch, q_heads, q_seq, total) = (q.batch, q.heads, q.seq, k.seq);
    let group = q_heads / k.heads;
    let mask = x
        .attn_mask
        .map(|m| Mask::new(m, [batch, q_heads, q_seq], total))
        .transpose()?;
    let nonpad = match x.nonpad_kv_seqlen {
        None => None,
        Some(t) => {
            if !t.dtype().is_integer() || t.shape() != [batch] {
                return Err(format!(
                    "nonpad_kv_seqlen must be an integer tensor of shape [{batch}], got {} {:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
            let n = t.to_i64_vec().map_err(reason)?;
            if let Some(bad) = n.iter().find(|&&n| n < 0 || n as usize > total) {
                return Err(format!(
                    "nonpad_kv_seqlen {bad} is out of range for {total} keys"
                ));
            }
            Some(n)
        }
    };
    // Position of query 0 among the keys, per batch: after the cache, or so that the
    // last query sits at the last valid key of an external cache.
    let offsets: Vec<i64> = (0..batch)
        .map(|b| match (past_len, &nonpad) {
            (Some(p), _) => p as i64,
            (None, Some(n)) => n[b] - q_seq as i64,
            (None, None) => 0,
        })
        .collect();
    let bias = |b: usize, h: usize, i: usize, j: usize| {
        let mut v = mask.as_ref().map_or(0.0, |m| m.at(b, h, i, j));
        let pos = i as i64 + offsets[b];
        let j = j as i64;
        let masked = (p.is_causal && j > pos)
            || (p.left_window_size >= 0 && pos - j > p.left_window_size)
            || (p.right_window_size >= 0 && j - pos > p.right_window_size)
            || nonpad.as_ref().is_some_and(|n| j >= n[b]);
        if masked {
            v += f64::NEG_INFINITY;
        }
        v
    };
    let scale = p.scale.map_or(1.0 / (q.size as f64).sqrt(), f64::from);
    let root = scale.sqrt();
    let softcap = f64::from(p.softcap);
    let mut y = vec![0.0f64; batch * q_heads * q_seq * v.size];
    let mut qk_out = Vec::with_capacity(if num_outputs > 3 {
        batch * q_heads * q_seq * total
    } else {
        0
    });
    let (mut raw, mut capped, mut biased, mut row_bias) = (
        vec![0.0; total],
        vec![0.0; total],
        vec![0.0; total],
        vec![0.0; total],
    );
    let mut probs = vec![0.0f64; total];
    for b in 0..batch {
        for h in 0..q_heads {
            let kh = h / group;
            for i in 0..q_seq {
                let qr = q.row(b, h, i);
                for j in 0..total {
                    let dot: f64 = qr.iter().zip(k.row(b, kh, j)).map(|(a, c)| a * c).sum();
                    raw[j] = dot * root * root;
                    capped[j] = if softcap > 0.0 {
                        softcap * (raw[j] / softcap).tanh()
                    } else {
                        raw[j]
                    };
                    row_bias[j] = bias(b, h, i, j);
                    biased[j] = capped[j] + row_bias[j];
                }
                if nan_max(&row_bias) == f64::NEG_INFINITY {
                    probs.fill(0.0);
                } else {
                    let m = nan_max(&biased);
                    let mut sum = 0.0;
                    for (pj, &s) in probs.iter_mut().zip(&biased) {
                        *pj = (s - m).exp();
                        sum += *pj;
                    }
                    probs.iter_mut().for_each(|pj| *pj /= sum);
                }
                let out = &mut y[((b * q_heads + h) * q_seq + i) * v.size..][..v.size];
                for (j, &pj) in probs.iter().enumerate() {
                    for (o, &vv) in out.iter_mut().zip(v.row(b, kh, j)) {
                        *o += pj * vv;
                    }
                }
                if num_outputs > 3 {
                    qk_out.extend_from_slice(match p.qk_matmul_output_mode {
                        0 => &raw,
                        1 => &capped,
                        2 => &biased,
                        _ => &probs,
                    });
                }
            }
        }
    }
    let y = if rank == 3 {
        let mut t = Vec::with_capacity(y.len());
        for b in 0..batch {
            for i in 0..q_seq {
                for h in 0..q_heads {
                    let at = ((b * q_heads + h) * q_seq + i) * v.size;
                    t.extend_from_slice(&y[at..at + v.size]);
                }
            }
        }
        output(vec![batch, q_seq, q_heads * v.size], t, x.q.dtype())?
    } else {
        output(vec![batch, q_heads, q_seq, v.size], y, x.q.dtype())?
    };
    let mut outputs = vec![y];
    if num_outputs > 1 {
        outputs.push(output(k.shape(), k.data, x.k.dtype())?);
    }
    if num_outputs > 2 {
        outputs.push(output(v.shape(), v.data, x.v.dtype())?);
    }
    if num_outputs > 3 {
        outputs.push(output(
            vec![batch, q_heads, q_seq, total],
            qk_out,
            x.q.dtype(),
        )?);
    }
    Ok(outputs)
}
