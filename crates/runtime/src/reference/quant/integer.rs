//! MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.
//!
//! Zero points are subtracted exactly in `i64`. Products of matrices are summed in
//! `i64`; convolutions run the float reference convolution in `f64`, which is
//! exact while partial sums stay below 2^53 (always the case for 8- and 16-bit
//! operands of realistic sizes). Results wrap to int32 as the ONNX reference's
//! `astype(int32)` does.

use slimnet_ir::ops::nn::Conv;
use slimnet_tensor::{broadcast_shapes, BroadcastIndexer, DType, Tensor};

use super::linear::quantize_value;
use super::{dtype_range, floats, in_dtype, int_tensor, ints};
use crate::reference::nn::conv::run_conv;
use crate::reference::nn::gemm::{matmul_shape, MatMulShape};
use crate::reference::util::reason;

/// `x - zero_point`: a one-element zero point for the whole tensor, a 1-D one of
/// `per_axis_len` elements along `per_axis` (rows of A, output channels of W),
/// anything else broadcast numpy-style against `x`.
fn minus_zero_point(
    x: &Tensor,
    zero_point: Option<&Tensor>,
    per_axis: Option<usize>,
    what: &str,
) -> Result<Vec<i64>, String> {
    let mut v = ints(x, what)?;
    let Some(z) = zero_point else {
        return Ok(v);
    };
    let zv = ints(z, &format!("{what}'s zero point"))?;
    let xs = x.shape();
    if zv.len() == 1 {
        v.iter_mut().for_each(|e| *e -= zv[0]);
        return Ok(v);
    }
    let mut zs = z.shape().to_vec();
    if let Some(a) = per_axis {
        if zs.len() == 1 && a < xs.len() && zs[0] == xs[a] {
            zs = vec![1; xs.len() - a];
            zs[0] = xs[a];
        }
    }
    let b = broadcast_shapes(&zs, xs).map_err(reason)?;
    if b != xs {
        return Err(format!(
            "{what}'s zero point of shape {:?} does not fit {what} {xs:?}",
            z.shape()
        ));
    }
    let idx = BroadcastIndexer::new(&zs, xs);
    for (e, k) in v.iter_mut().zip(idx.indices()) {
        *e -= zv[k];
    }
    Ok(v)
}

/// Integer batched matmul of A and B (already minus their zero points).
fn matmul_i64(a: &[i64], b: &[i64], g: &MatMulShape) -> Vec<i64> {
    let (m, k, n) = (g.m, g.k, g.n);
    let mut out = vec![0i64; g.pairs.len() * m * n];
    for (i, &(pa, pb)) in g.pairs.iter().enumerate() {
        for r in 0..m {
            let o = &mut out[(i * m + r) * n..(i * m + r + 1) * n];
            for p in 0..k {
                let x = a[(pa * m + r) * k + p];
                let brow = &b[(pb * k + p) * n..(pb * k + p + 1) * n];
                for (y, &bv) in o.iter_mut().zip(brow) {
                    *y = y.wrapping_add(x.wrapping_mul(bv));
                }
            }
        }
    }
    out
}

/// The row of A that a zero point per row applies to (`None` for rank-1 A).
fn rows_axis(x: &Tensor) -> Option<usize> {
    (x.rank() >= 2).then(|| x.rank() - 2)
}

pub(super) fn matmul_integer(
    a: &Tensor,
    b: &Tensor,
    a_zero_point: Option<&Tensor>,
    b_zero_point: Option<&Tensor>,
) -> Result<Tensor, String> {
    let g = matmul_shape(a.shape(), b.shape())?;
    let av = minus_zero_point(a, a_zero_point, rows_axis(a), "A")?;
    let bv = minus_zero_point(b, b_zero_point, None, "B")?;
    let out = matmul_i64(&av, &bv, &g);
    int_tensor(g.out, wrap_i32(out), DType::I32)
}

fn wrap_i32(v: Vec<i64>) -> Vec<i64> {
    v.into_iter().map(|x| x as i32 as i64).collect()
}

/// The integer convolution of x and w minus their zero points, plus an optional
/// int32 bias; returns the int32 result (as `i64`) and its shape.
fn conv_i64(
    op: &Conv,
    x: &Tensor,
    x_zero_point: Option<&Tensor>,
    w: &Tensor,
    w_zero_point: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<(Vec<i64>, Vec<usize>), String> {
    let xv = minus_zero_point(x, x_zero_point, None, "x")?;
    let wv = minus_zero_point(w, w_zero_point, Some(0), "w")?;
    let f = |shape: &[usize], v: Vec<i64>| {
        Tensor::from_vec(shape.to_vec(), v.into_iter().map(|e| e as f64).collect()).map_err(reason)
    };
    let xt = f(x.shape(), xv)?;
    let wt = f(w.shape(), wv)?;
    let bt = match bias {
        Some(b) if b.dtype() != DType::I32 => {
            return Err(format!("B must be an int32 tensor, got {}", b.dtype()))
        }
        Some(b) => Some(f(b.shape(), b.to_i64_vec().map_err(reason)?)?),
        None => None,
    };
    let y = run_conv(op, &[Some(&xt), Some(&wt), bt.as_ref()])?.remove(0);
    let shape = y.shape().to_vec();
    let v = y
        .as_slice::<f64>()
        .map_err(reason)?
        .iter()
        .map(|&e| e as i64 as i32 as i64)
        .collect();
    Ok((v, shape))
}

pub(super) fn conv_integer(
    op: &Conv,
    x: &Tensor,
    w: &Tensor,
    x_zero_point: Option<&Tensor>,
    w_zero_point: Option<&Tensor>,
) -> Result<Tensor, String> {
    let (v, shape) = conv_i64(op, x, x_zero_point, w, w_zero_point, None)?;
    int_tensor(shape, v, DType::I32)
}

/// A scale input: a single value, or one per index of some axis.
fn scale_values(s: &Tensor, len: usize, what: &str) -> Result<Vec<f64>, String> {
    let v = floats(s, what)?;
    if v.len() == 1 || (s.rank() == 1 && v.len() == len) {
        Ok(v)
    } else {
        Err(format!(
            "{what} of shape {:?} is neither a scalar nor {len} values",
            s.shape()
        ))
    }
}

fn pick(v: &[f64], i: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

/// The requantization multiplier `a_scale * b_scale / y_scale`, computed in the
/// scales' float type `d` as the reference does.
fn multiplier(d: DType, a: f64, b: f64, y: f64) -> f64 {
    in_dtype(d, in_dtype(d, a * b) / y)
}

/// Operand, scale and zero point of a quantized input.
type Quantized<'a> = [&'a Tensor; 3];

pub(super) fn qlinear_matmul(
    [a, a_scale, a_zp]: Quantized,
    [b, b_scale, b_zp]: Quantized,
    y_scale: &Tensor,
    y_zp: &Tensor,
) -> Result<Tensor, String> {
    let g = matmul_shape(a.shape(), b.shape())?;
    let av = minus_zero_point(a, Some(a_zp), rows_axis(a), "a")?;
    let bv = minus_zero_point(b, Some(b_zp), None, "b")?;
    let c = wrap_i32(matmul_i64(&av, &bv, &g));
    let (m, n) = (g.m, g.n);
    let sa = scale_values(a_scale, m, "a_scale")?;
    let sb = scale_values(b_scale, n, "b_scale")?;
    let sy = scale_values(y_scale, m, "y_scale")?;
    let zy = ints(y_zp, "y_zero_point")?;
    if zy.len() != sy.len() {
        return Err("y_zero_point and y_scale differ in size".into());
    }
    let (lo, hi) = dtype_range(y_zp.dtype())?;
    let d = a_scale.dtype();
    let out: Vec<i64> = c
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (r, col) = ((i / n) % m, i % n);
            let mult = multiplier(d, pick(&sa, r), pick(&sb, col), pick(&sy, r));
            let zp = if zy.len() == 1 { zy[0] } else { zy[r] };
            quantize_value(v as f64 * mult, zp, lo, hi)
        })
        .collect();
    int_tensor(g.out, out, y_zp.dtype())
}

pub(super) fn qlinear_conv(
    op: &Conv,
    [x, x_scale, x_zp]: Quantized,
    [w, w_scale, w_zp]: Quantized,
    y_scale: &Tensor,
    y_zp: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor, String> {
    let (res, shape) = conv_i64(op, x, Some(x_zp), w, Some(w_zp), bias)?;
    let m = shape[1];
    let plane: usize = shape[2..].iter().product();
    let sx = scale_values(x_scale, 1, "x_scale")?;
    let sw = scale_values(w_scale, m, "w_scale")?;
    let sy = scale_values(y_scale, 1, "y_scale")?;
    let zy = ints(y_zp, "y_zero_point")?;
    if zy.len() != 1 {
        return Err(format!(
            "y_zero_point must be a scalar, got shape {:?}",
            y_zp.shape()
        ));
    }
    let (lo, hi) = dtype_range(y_zp.dtype())?;
    let d = x_scale.dtype();
    let out: Vec<i64> = res
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / plane.max(1)) % m.max(1);
            let mult = multiplier(d, sx[0], pick(&sw, ch), sy[0]);
            quantize_value(v as f64 * mult, zy[0], lo, hi)
        })
        .collect();
    int_tensor(shape, out, y_zp.dtype())
}
