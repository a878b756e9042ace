//! `RotaryEmbedding`.

use slimnet_tensor::Tensor;

use super::{floats, output};
use crate::reference::util::reason;

/// The cosines and sines for each `(batch, position)`, `half` of each.
struct Angles {
    cos: Vec<f64>,
    sin: Vec<f64>,
    /// Elements per row of the caches (at least `half`).
    width: usize,
    /// Row of the caches for each `batch * seq + position`.
    rows: Vec<usize>,
}

impl Angles {
    fn new(
        cos: &Tensor,
        sin: &Tensor,
        position_ids: Option<&Tensor>,
        batch: usize,
        seq: usize,
        half: usize,
    ) -> Result<Angles, String> {
        if cos.shape() != sin.shape() {
            return Err(format!(
                "cos_cache {:?} and sin_cache {:?} differ in shape",
                cos.shape(),
                sin.shape()
            ));
        }
        let shape = cos.shape();
        let width = *shape.last().unwrap_or(&0);
        if width < half {
            return Err(format!(
                "the caches hold {width} angles per position, {half} are needed"
            ));
        }
        let broadcast = |dims: &[usize], what: &str| -> Result<Vec<usize>, String> {
            let [db, ds] = *dims else {
                return Err(format!(
                    "{what} must have 2 leading dims [batch, seq], got {dims:?}"
                ));
            };
            if (db != 1 && db != batch) || (ds != 1 && ds != seq) {
                return Err(format!(
                    "{what} of dims {dims:?} does not match [batch, seq] = [{batch}, {seq}]"
                ));
            }
            Ok((0..batch * seq)
                .map(|k| {
                    let (b, s) = (k / seq, k % seq);
                    (if db == 1 { 0 } else { b }) * ds + if ds == 1 { 0 } else { s }
                })
                .collect())
        };
        let rows = match position_ids {
            Some(p) => {
                if !p.dtype().is_integer() {
                    return Err(format!(
                        "position_ids must be an integer tensor, got {}",
                        p.dtype()
                    ));
                }
                if shape.len() != 2 {
                    return Err(format!(
                        "with position_ids the caches must have rank 2, got {shape:?}"
                    ));
                }
                let ids = p.to_i64_vec().map_err(reason)?;
                let max = shape[0] as i64;
                broadcast(p.shape(), "position_ids")?
                    .into_iter()
                    .map(|k| {
                        let id = ids[k];
                        // Gather semantics: negative ids count from the end.
                        let row = if id < 0 { id + max } else { id };
                        if !(0..max).contains(&row) {
                            Err(format!(
                                "position id {id} is out of range for a cache of {max} positions"
                            ))
                        } else {
                            Ok(row as usize)
                        }
                    })
                    .collect::<Result<_, _>>()?
            }
            None => {
                if shape.len() != 3 {
                    return Err(format!(
                        "without position_ids the caches must have rank 3, got {shape:?}"
                    ));
                }
                broadcast(&shape[..2], "cos_cache")?
            }
        };
        Ok(Angles {
            cos: floats(cos, "cos_cache")?,
            sin: floats(sin, "sin_cache")?,
            width,
            rows,
        })
    }
}

/// Rotates the first `rotary_dim` features of each head (all when 0): pairs
/// `(x[k], x[k + rotary_dim / 2])`, or `(x[2k], x[2k + 1])` when `interleaved`, by
/// the angle `k` of the token's position.
pub fn rotary(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    position_ids: Option<&Tensor>,
    interleaved: bool,
    num_heads: i64,
    rotary_dim: i64,
) -> Result<Tensor, String> {
    let v = floats(x, "input")?;
    // Element (b, h, s, d) is at b * sb + h * sh + s * ss + d.
    let (batch, heads, seq, size, sb, sh, ss) = match *x.shape() {
        [b, h, s, d] => (b, h, s, d, h * s * d, s * d, d),
        [b, s, hidden] => {
            if num_heads <= 0 {
                return Err("rank-3 input needs the num_heads attribute".into());
            }
            let h = num_heads as usize;
            if hidden % h != 0 {
                return Err(format!(
                    "hidden size {hidden} is not a multiple of num_heads {h}"
                ));
            }
            let d = hidden / h;
            (b, h, s, d, s * hidden, d, hidden)
        }
        _ => {
            return Err(format!(
                "input must have rank 3 or 4, got shape {:?}",
                x.shape()
            ))
        }
    };
    let rot = if rotary_dim == 0 {
        size
    } else {
        rotary_dim as usize
    };
    if rot > size || rot % 2 != 0 {
        return Err(format!(
            "rotary dimension {rot} must be even and at most the head size {size}"
        ));
    }
    let half = rot / 2;
    let angles = Angles::new(cos, sin, position_ids, batch, seq, half)?;
    let mut y = v.clone();
    for b in 0..batch {
        for s in 0..seq {
            let row = angles.rows[b * seq + s] * angles.width;
            let (c, sn) = (&angles.cos[row..row + half], &angles.sin[row..row + half]);
            for h in 0..heads {
                let at = b * sb + h * sh + s * ss;
                for k in 0..half {
                    let (i1, i2) = if interleaved {
                        (at + 2 * k, at + 2 * k + 1)
                    } else {
                        (at + k, at + k + half)
                    };
                    let (x1, x2) = (v[i1], v[i2]);
                    y[i1] = c[k] * x1 - sn[k] * x2;
                    y[i2] = sn[k] * x1 + c[k] * x2;
                }
            }
        }
    }
    output(x.shape().to_vec(), y, x.dtype())
}
