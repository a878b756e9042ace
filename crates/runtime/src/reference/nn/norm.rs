//! BatchNormalization, InstanceNormalization, GroupNormalization, LRN, DepthToSpace
//! and SpaceToDepth. Statistics are computed in f64.

use slimnet_ir::ops::nn::{BatchNormalization, GroupNormalization, Lrn};
use slimnet_tensor::Tensor;

use super::float::{count, float_dtype, floats, to_tensor, with_float, Float};
use crate::reference::util::input;

/// Mean and population variance of `v`.
fn moments<T: Float>(v: impl Iterator<Item = T> + Clone) -> (f64, f64) {
    let (mut n, mut s) = (0usize, 0f64);
    for x in v.clone() {
        s += x.to_f64();
        n += 1;
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = s / n as f64;
    let var = v.map(|x| (x.to_f64() - mean).powi(2)).sum::<f64>() / n as f64;
    (mean, var)
}

fn channels(x: &Tensor) -> Result<(usize, usize, usize), String> {
    let s = x.shape();
    if s.len() < 2 {
        return Err(format!(
            "input must have rank 2 or more (N, C, ...), got shape {s:?}"
        ));
    }
    Ok((s[0], s[1], count(&s[2..])?))
}

fn per_channel<'a, T: Float>(
    t: &'a Tensor,
    what: &str,
    want: &[usize],
) -> Result<std::borrow::Cow<'a, [T]>, String> {
    if t.shape() != want {
        return Err(format!(
            "{what} has shape {:?}, expected {want:?}",
            t.shape()
        ));
    }
    floats::<T>(t, what)
}

pub fn run_batch_norm(
    op: &BatchNormalization,
    inputs: &[Option<&Tensor>],
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let d = float_dtype(x, "X")?;
    with_float!(d, "X", batch_norm_typed(op, inputs, outputs))
}

fn batch_norm_typed<T: Float>(
    op: &BatchNormalization,
    inputs: &[Option<&Tensor>],
    outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let (n, c, sp) = channels(x)?;
    let stat_shape: Vec<usize> = if op.spatial {
        vec![c]
    } else {
        x.shape()[1..].to_vec()
    };
    let per = if op.spatial { sp } else { 1 };
    let groups = count(&stat_shape)?;
    let scale = per_channel::<T>(input(inputs, 1)?, "scale", &stat_shape)?;
    let bias = per_channel::<T>(input(inputs, 2)?, "B", &stat_shape)?;
    let mean_in = per_channel::<T>(input(inputs, 3)?, "input_mean", &stat_shape)?;
    let var_in = per_channel::<T>(input(inputs, 4)?, "input_var", &stat_shape)?;
    let xv = floats::<T>(x, "X")?;
    let eps = op.epsilon as f64;
    let training = op.training_mode;
    if !training && outputs > 1 {
        return Err(
            "the training outputs of BatchNormalization before opset 14 are not supported".into(),
        );
    }
    let (mut mean, mut var): (Vec<f64>, Vec<f64>) = (
        mean_in.iter().map(|v| v.to_f64()).collect(),
        var_in.iter().map(|v| v.to_f64()).collect(),
    );
    if training {
        for ch in 0..groups {
            let it = (0..n).flat_map(|b| {
                xv[(b * groups + ch) * per..(b * groups + ch + 1) * per]
                    .iter()
                    .copied()
            });
            let (m, v) = moments(it);
            mean[ch] = m;
            var[ch] = v;
        }
    }
    let mut y = vec![T::ZERO; xv.len()];
    for b in 0..n {
        for ch in 0..groups {
            let (s, bb, m) = (scale[ch].to_f64(), bias[ch].to_f64(), mean[ch]);
            let denom = (var[ch] + eps).sqrt();
            let base = (b * groups + ch) * per;
            for (o, &v) in y[base..base + per].iter_mut().zip(&xv[base..base + per]) {
                *o = T::from_f64(s * (v.to_f64() - m) / denom + bb);
            }
        }
    }
    let mut out = vec![to_tensor(x.shape().to_vec(), y, x.dtype())?];
    if training {
        let mom = op.momentum as f64;
        let running = |inp: &[T], batch: &[f64]| -> Vec<T> {
            inp.iter()
                .zip(batch)
                .map(|(r, b)| T::from_f64(r.to_f64() * mom + b * (1.0 - mom)))
                .collect()
        };
        let dt = input(inputs, 3)?.dtype();
        out.push(to_tensor(stat_shape.clone(), running(&mean_in, &mean), dt)?);
        out.push(to_tensor(stat_shape, running(&var_in, &var), dt)?);
    }
    Ok(out)
}

pub fn run_instance_norm(epsilon: f32, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(
        float_dtype(x, "X")?,
        "X",
        instance_norm_typed(epsilon, inputs)
    )
}

fn instance_norm_typed<T: Float>(
    epsilon: f32,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let (n, c, sp) = channels(x)?;
    if x.rank() < 3 {
        return Err(format!(
            "input must have rank 3 or more, got shape {:?}",
            x.shape()
        ));
    }
    let scale = per_channel::<T>(input(inputs, 1)?, "scale", &[c])?;
    let bias = per_channel::<T>(input(inputs, 2)?, "B", &[c])?;
    let xv = floats::<T>(x, "X")?;
    let mut y = vec![T::ZERO; xv.len()];
    for b in 0..n {
        for ch in 0..c {
            let base = (b * c + ch) * sp;
            let seg = &xv[base..base + sp];
            let (m, v) = moments(seg.iter().copied());
            let denom = (v + epsilon as f64).sqrt();
            let (s, bb) = (scale[ch].to_f64(), bias[ch].to_f64());
            for (o, &x) in y[base..base + sp].iter_mut().zip(seg) {
                *o = T::from_f64(s * (x.to_f64() - m) / denom + bb);
            }
        }
    }
    Ok(vec![to_tensor(x.shape().to_vec(), y, x.dtype())?])
}

pub fn run_group_norm(
    op: &GroupNormalization,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(float_dtype(x, "X")?, "X", group_norm_typed(op, inputs))
}

fn group_norm_typed<T: Float>(
    op: &GroupNormalization,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let (n, c, sp) = channels(x)?;
    if op.num_groups <= 0 {
        return Err(format!(
            "num_groups must be positive, got {}",
            op.num_groups
        ));
    }
    let g = op.num_groups as usize;
    if c % g != 0 {
        return Err(format!("{c} channels are not divisible into {g} groups"));
    }
    let (scale_t, bias_t) = (input(inputs, 1)?, input(inputs, 2)?);
    // Opset 18 takes one scale per group, opset 21 one per channel.
    let per_group = scale_t.shape() == [g] && (op.opset < 21 || c == g);
    let want = if per_group { g } else { c };
    let scale = per_channel::<T>(scale_t, "scale", &[want])?;
    let bias = per_channel::<T>(bias_t, "bias", &[want])?;
    let xv = floats::<T>(x, "X")?;
    let cg = c / g;
    let mut y = vec![T::ZERO; xv.len()];
    for b in 0..n {
        for gi in 0..g {
            let base = (b * c + gi * cg) * sp;
            let seg = &xv[base..base + cg * sp];
            let (m, v) = moments(seg.iter().copied());
            let denom = (v + op.epsilon as f64).sqrt();
            for k in 0..cg {
                let ch = gi * cg + k;
                let idx = if per_group { gi } else { ch };
                let (s, bb) = (scale[idx].to_f64(), bias[idx].to_f64());
                let off = base + k * sp;
                for (o, &x) in y[off..off + sp].iter_mut().zip(&xv[off..off + sp]) {
                    *o = T::from_f64(s * (x.to_f64() - m) / denom + bb);
                }
            }
        }
    }
    Ok(vec![to_tensor(x.shape().to_vec(), y, x.dtype())?])
}

pub fn run_lrn(op: &Lrn, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    with_float!(float_dtype(x, "X")?, "X", lrn_typed(op, x))
}

fn lrn_typed<T: Float>(op: &Lrn, x: &Tensor) -> Result<Vec<Tensor>, String> {
    let (n, c, sp) = channels(x)?;
    if op.size <= 0 {
        return Err(format!("size must be positive, got {}", op.size));
    }
    let xv = floats::<T>(x, "X")?;
    let size = op.size as usize;
    let (lo, hi) = ((size - 1) / 2, size / 2);
    let (alpha, beta, bias) = (op.alpha as f64, op.beta as f64, op.bias as f64);
    let mut y = vec![T::ZERO; xv.len()];
    for b in 0..n {
        for ch in 0..c {
            let first = ch.saturating_sub(lo);
            let last = (ch + hi).min(c - 1);
            for s in 0..sp {
                let sq: f64 = (first..=last)
                    .map(|k| xv[(b * c + k) * sp + s].to_f64().powi(2))
                    .sum();
                let i = (b * c + ch) * sp + s;
                y[i] = T::from_f64(xv[i].to_f64() / (bias + alpha / size as f64 * sq).powf(beta));
            }
        }
    }
    Ok(vec![to_tensor(x.shape().to_vec(), y, x.dtype())?])
}

/// DepthToSpace (`to_space`) and SpaceToDepth, for any dtype.
pub fn run_depth_space(
    block: i64,
    crd: bool,
    to_space: bool,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(format!("input must have rank 4, got shape {s:?}"));
    }
    if block <= 0 {
        return Err(format!("blocksize must be positive, got {block}"));
    }
    let b = block as usize;
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let mut idx = Vec::with_capacity(x.len());
    let shape = if to_space {
        if c % (b * b) != 0 {
            return Err(format!(
                "{c} channels are not divisible by blocksize^2 = {}",
                b * b
            ));
        }
        let co = c / (b * b);
        for ni in 0..n {
            for ch in 0..co {
                for y in 0..h * b {
                    for xx in 0..w * b {
                        let (i, j) = (y % b, xx % b);
                        let src_c = if crd {
                            ch * b * b + i * b + j
                        } else {
                            (i * b + j) * co + ch
                        };
                        idx.push(((ni * c + src_c) * h + y / b) * w + xx / b);
                    }
                }
            }
        }
        vec![n, co, h * b, w * b]
    } else {
        if h % b != 0 || w % b != 0 {
            return Err(format!(
                "spatial dims {h}x{w} are not divisible by blocksize {b}"
            ));
        }
        let (ho, wo) = (h / b, w / b);
        let co = c * b * b;
        for ni in 0..n {
            for oc in 0..co {
                let (ch, i, j) = if crd {
                    (oc / (b * b), (oc / b) % b, oc % b)
                } else {
                    (oc % c, oc / c / b, (oc / c) % b)
                };
                for y in 0..ho {
                    for xx in 0..wo {
                        idx.push(((ni * c + ch) * h + y * b + i) * w + xx * b + j);
                    }
                }
            }
        }
        vec![n, co, ho, wo]
    };
    Tensor::new(shape, x.data().gather(idx.into_iter()))
        .map(|t| vec![t])
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_space_round_trip() {
        let x = Tensor::from_vec(vec![1, 8, 2, 3], (0..48).map(|v| v as i64).collect()).unwrap();
        for crd in [false, true] {
            let s = run_depth_space(2, crd, true, &[Some(&x)])
                .unwrap()
                .remove(0);
            assert_eq!(s.shape(), &[1, 2, 4, 6]);
            let back = run_depth_space(2, crd, false, &[Some(&s)])
                .unwrap()
                .remove(0);
            assert_eq!(back, x);
        }
        assert!(run_depth_space(3, false, true, &[Some(&x)]).is_err());
    }

    #[test]
    fn instance_norm_normalizes_each_plane() {
        let x = Tensor::from_vec(vec![1, 1, 4], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        let s = Tensor::from_vec(vec![1], vec![2f32]).unwrap();
        let b = Tensor::from_vec(vec![1], vec![1f32]).unwrap();
        let y = run_instance_norm(0.0, &[Some(&x), Some(&s), Some(&b)]).unwrap();
        let v = y[0].as_slice::<f32>().unwrap();
        let k = 2.0 / 1.25f32.sqrt();
        for (got, want) in
            v.iter()
                .zip([-1.5 * k + 1.0, -0.5 * k + 1.0, 0.5 * k + 1.0, 1.5 * k + 1.0])
        {
            assert!((got - want).abs() < 1e-6);
        }
        let wrong = Tensor::from_vec(vec![2], vec![1f32, 1.0]).unwrap();
        assert!(run_instance_norm(0.0, &[Some(&x), Some(&wrong), Some(&b)]).is_err());
    }
}
