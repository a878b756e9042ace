//! Conv and ConvTranspose: im2col (col2im) per batch item and group, chunked over
//! output rows to bound memory, then the shared matmul kernel.

use slimnet_ir::ops::nn::{Conv, ConvTranspose, ResolvedWindow};
use slimnet_tensor::Tensor;

use super::float::{count, float_dtype, floats, to_tensor, with_float, Float};
use super::gemm::{gemm_acc, transpose};
use crate::reference::util::{input, optional};

/// Elements of the im2col buffer built at once.
const CHUNK: usize = 1 << 20;

/// Window geometry over three spatial axes (fewer axes get leading unit axes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo3 {
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilations: [usize; 3],
    pub pads: [i64; 3],
}

fn lift<T: Copy>(v: &[T], fill: T) -> [T; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

impl Geo3 {
    pub(crate) fn new(input: &[usize], r: &ResolvedWindow) -> Result<Geo3, String> {
        if input.is_empty() || input.len() > 3 {
            return Err(format!(
                "{} spatial axes are not supported (1 to 3 are)",
                input.len()
            ));
        }
        Ok(Geo3 {
            input: lift(input, 1),
            output: lift(&r.output, 1),
            kernel: lift(&r.kernel, 1),
            strides: lift(&r.strides, 1),
            dilations: lift(&r.dilations, 1),
            pads: lift(&r.pads_begin, 0),
        })
    }

    /// Input coordinate along axis `ax` of output index `o` and kernel index `k`.
    #[inline]
    pub(crate) fn src(&self, ax: usize, o: usize, k: usize) -> i64 {
        (o * self.strides[ax]) as i64 - self.pads[ax] + (k * self.dilations[ax]) as i64
    }
}

/// Checks the operand dtypes of a convolution and returns the compute dtype.
fn check_dtypes(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<slimnet_tensor::DType, String> {
    let d = float_dtype(x, "X")?;
    if w.dtype() != d {
        return Err(format!("W has dtype {}, X has {d}", w.dtype()));
    }
    if let Some(b) = b {
        if b.dtype() != d {
            return Err(format!("B has dtype {}, X has {d}", b.dtype()));
        }
    }
    Ok(d)
}

pub fn run_conv(op: &Conv, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let w = input(inputs, 1)?;
    let b = optional(inputs, 2);
    let d = check_dtypes(x, w, b)?;
    with_float!(d, "X", conv_typed(op, x, w, b))
}

/// Builds the im2col rows for output rows `r0..r1` (a row is one position of the
/// two leading spatial axes) of `channels` input channels.
fn im2col<T: Float>(x: &[T], channels: usize, g: &Geo3, r0: usize, r1: usize, col: &mut Vec<T>) {
    let [id, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    let cols = (r1 - r0) * ow;
    col.clear();
    col.resize(channels * kd * kh * kw * cols, T::ZERO);
    let plane = id * ih * iw;
    let mut row = 0;
    for c in 0..channels {
        let xc = &x[c * plane..(c + 1) * plane];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let dst = &mut col[row * cols..(row + 1) * cols];
                    row += 1;
                    let x0 = (e * g.dilations[2]) as i64 - g.pads[2];
                    for rr in r0..r1 {
                        let iz = g.src(0, rr / oh, a);
                        let iy = g.src(1, rr % oh, b);
                        if iz < 0 || iz >= id as i64 || iy < 0 || iy >= ih as i64 {
                            continue;
                        }
                        let src = &xc[(iz as usize * ih + iy as usize) * iw..][..iw];
                        let seg = &mut dst[(rr - r0) * ow..(rr - r0 + 1) * ow];
                        if g.strides[2] == 1 {
                            let lo = (-x0).max(0) as usize;
                            let hi = (iw as i64 - x0).min(ow as i64).max(0) as usize;
                            if lo < hi {
                                let s0 = (x0 + lo as i64) as usize;
                                seg[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                            }
                        } else {
                            for (ox, v) in seg.iter_mut().enumerate() {
                                let ix = x0 + (ox * g.strides[2]) as i64;
                                if ix >= 0 && ix < iw as i64 {
                                    *v = src[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn conv_typed<T: Float>(
    op: &Conv,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Vec<Tensor>, String> {
    let (xs, ws) = (x.shape(), w.shape());
    let g = check_operands(xs, ws, op.group)?;
    let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    if c != cg * g {
        return Err(format!(
            "X has {c} channels but W {ws:?} expects {cg} per group x {g} groups"
        ));
    }
    if m % g != 0 {
        return Err(format!(
            "W has {m} output channels, not divisible by group {g}"
        ));
    }
    let kernel = op.kernel(ws);
    if kernel != ws[2..] {
        return Err(format!(
            "kernel_shape {kernel:?} does not match the weights {ws:?}"
        ));
    }
    let r = op.window.resolve(&xs[2..], &kernel)?;
    let geo = Geo3::new(&xs[2..], &r)?;
    let bias = match b {
        Some(b) if b.shape() != [m] => {
            return Err(format!("B has shape {:?}, expected [{m}]", b.shape()))
        }
        Some(b) => Some(floats::<T>(b, "B")?),
        None => None,
    };
    let in_sp = count(&xs[2..])?;
    let out_sp = count(&r.output)?;
    let kk = count(&kernel)?;
    let (mg, kdim) = (m / g, cg * kk);
    let mut shape = vec![n, m];
    shape.extend(&r.output);
    let mut out = vec![T::ZERO; count(&shape)?];
    if let Some(bias) = &bias {
        for (i, plane) in out.chunks_mut(out_sp.max(1)).enumerate() {
            plane.fill(bias[i % m]);
        }
    }
    if out.is_empty() || kdim == 0 {
        return Ok(vec![to_tensor(shape, out, x.dtype())?]);
    }
    let xv = floats::<T>(x, "X")?;
    let wv = floats::<T>(w, "W")?;
    let pointwise = kk == 1
        && r.strides.iter().all(|&s| s == 1)
        && r.pads_begin.iter().all(|&p| p == 0)
        && out_sp == in_sp;
    let ow = geo.output[2];
    let rows = geo.output[0] * geo.output[1];
    let per_chunk = (CHUNK / (kdim * ow).max(1)).max(1);
    let mut col = Vec::new();
    for ni in 0..n {
        for gi in 0..g {
            let xg = &xv[(ni * c + gi * cg) * in_sp..][..cg * in_sp];
            let wg = &wv[gi * mg * kdim..][..mg * kdim];
            let og = &mut out[(ni * m + gi * mg) * out_sp..][..mg * out_sp];
            if pointwise {
                gemm_acc(mg, out_sp, cg, wg, kdim, xg, in_sp, og, out_sp);
                continue;
            }
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + per_chunk).min(rows);
                im2col(xg, cg, &geo, r0, r1, &mut col);
                let cols = (r1 - r0) * ow;
                gemm_acc(
                    mg,
                    cols,
                    kdim,
                    wg,
                    kdim,
                    &col,
                    cols,
                    &mut og[r0 * ow..],
                    out_sp,
                );
                r0 = r1;
            }
        }
    }
    Ok(vec![to_tensor(shape, out, x.dtype())?])
}

pub fn run_conv_transpose(
    op: &ConvTranspose,
    inputs: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, String> {
    let x = input(inputs, 0)?;
    let w = input(inputs, 1)?;
    let b = optional(inputs, 2);
    let d = check_dtypes(x, w, b)?;
    with_float!(d, "X", conv_transpose_typed(op, x, w, b))
}

fn conv_transpose_typed<T: Float>(
    op: &ConvTranspose,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Vec<Tensor>, String> {
    let (xs, ws) = (x.shape(), w.shape());
    let g = check_operands(xs, ws, op.group)?;
    let (n, c, mg) = (xs[0], xs[1], ws[1]);
    if ws[0] != c {
        return Err(format!(
            "X has {c} channels but W {ws:?} has {} input channels",
            ws[0]
        ));
    }
    if c % g != 0 {
        return Err(format!("X has {c} channels, not divisible by group {g}"));
    }
    let kernel = op.kernel(ws);
    if kernel != ws[2..] {
        return Err(format!(
            "kernel_shape {kernel:?} does not match the weights {ws:?}"
        ));
    }
    let r = op.resolve(&xs[2..], &kernel)?;
    let geo = Geo3::new(&xs[2..], &r)?;
    let (cg, m) = (c / g, mg * g);
    let bias = match b {
        Some(b) if b.shape() != [m] => {
            return Err(format!("B has shape {:?}, expected [{m}]", b.shape()))
        }
        Some(b) => Some(floats::<T>(b, "B")?),
        None => None,
    };
    let in_sp = count(&xs[2..])?;
    let out_sp = count(&r.output)?;
    let kk = count(&kernel)?;
    let mut shape = vec![n, m];
    shape.extend(&r.output);
    let mut out = vec![T::ZERO; count(&shape)?];
    if let Some(bias) = &bias {
        for (i, plane) in out.chunks_mut(out_sp.max(1)).enumerate() {
            plane.fill(bias[i % m]);
        }
    }
    if out.is_empty() || in_sp == 0 || cg == 0 {
        return Ok(vec![to_tensor(shape, out, x.dtype())?]);
    }
    let xv = floats::<T>(x, "X")?;
    let wv = floats::<T>(w, "W")?;
    let rows_k = mg * kk;
    let iw = geo.input[2];
    let in_rows = geo.input[0] * geo.input[1];
    let per_chunk = (CHUNK / (rows_k * iw).max(1)).max(1);
    let mut col = Vec::new();
    for gi in 0..g {
        let wt = transpose(&wv[gi * cg * rows_k..][..cg * rows_k], cg, rows_k);
        for ni in 0..n {
            let xg = &xv[(ni * c + gi * cg) * in_sp..][..cg * in_sp];
            let og = &mut out[(ni * m + gi * mg) * out_sp..][..mg * out_sp];
            let mut r0 = 0;
            while r0 < in_rows {
                let r1 = (r0 + per_chunk).min(in_rows);
                let cols = (r1 - r0) * iw;
                col.clear();
                col.resize(rows_k * cols, T::ZERO);
                gemm_acc(
                    rows_k,
                    cols,
                    cg,
                    &wt,
                    cg,
                    &xg[r0 * iw..],
                    in_sp,
                    &mut col,
                    cols,
                );
                col2im(&col, mg, &geo, r0, r1, og);
                r0 = r1;
            }
        }
    }
    Ok(vec![to_tensor(shape, out, x.dtype())?])
}

/// Adds the column buffer of input rows `r0..r1` into the output planes of `channels`
/// output channels (the transpose of [`im2col`], with input and output swapped).
fn col2im<T: Float>(col: &[T], channels: usize, g: &Geo3, r0: usize, r1: usize, out: &mut [T]) {
    let [od, oh, ow] = g.output;
    let [_, ih, iw] = g.input;
    let [kd, kh, kw] = g.kernel;
    let cols = (r1 - r0) * iw;
    let plane = od * oh * ow;
    let mut row = 0;
    for c in 0..channels {
        let oc = &mut out[c * plane..(c + 1) * plane];
        for a in 0..kd {
            for b in 0..kh {
                for e in 0..kw {
                    let src = &col[row * cols..(row + 1) * cols];
                    row += 1;
                    for rr in r0..r1 {
                        let z = g.src(0, rr / ih, a);
                        let y = g.src(1, rr % ih, b);
                        if z < 0 || z >= od as i64 || y < 0 || y >= oh as i64 {
                            continue;
                        }
                        let dst = &mut oc[(z as usize * oh + y as usize) * ow..][..ow];
                        let seg = &src[(rr - r0) * iw..(rr - r0 + 1) * iw];
                        for (ix, &v) in seg.iter().enumerate() {
                            let xo = g.src(2, ix, e);
                            if xo >= 0 && xo < ow as i64 {
                                dst[xo as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Checks X and W of a convolution (rank >= 3, equal ranks) and the group count;
/// returns the group count.
fn check_operands(xs: &[usize], ws: &[usize], group: i64) -> Result<usize, String> {
    if xs.len() < 3 {
        return Err(format!(
            "X must have rank 3 or more (N, C, spatial...), got shape {xs:?}"
        ));
    }
    if ws.len() != xs.len() {
        return Err(format!(
            "W has shape {ws:?}, expected rank {} like X {xs:?}",
            xs.len()
        ));
    }
    if group <= 0 {
        return Err(format!("group must be positive, got {group}"));
    }
    Ok(group as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_ir::ops::nn::{AutoPad, Window};

    fn window(pads: Vec<i64>, strides: Vec<i64>) -> Window {
        Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: vec![],
            strides,
            dilations: vec![],
            pads,
            ceil_mode: false,
        }
    }

    /// Direct convolution, for comparison.
    fn naive(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        pad: usize,
        stride: usize,
        g: usize,
    ) -> Vec<f32> {
        let [n, c, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + 2 * pad - kh) / stride + 1;
        let ow = (wd + 2 * pad - kw) / stride + 1;
        let mg = m / g;
        let mut out = vec![0f32; n * m * oh * ow];
        for ni in 0..n {
            for mi in 0..m {
                let gi = mi / mg;
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut s = 0f32;
                        for ci in 0..cg {
                            for a in 0..kh {
                                for b in 0..kw {
                                    let iy = (y * stride + a) as i64 - pad as i64;
                                    let ix = (xx * stride + b) as i64 - pad as i64;
                                    if iy >= 0 && iy < h as i64 && ix >= 0 && ix < wd as i64 {
                                        let xi = ((ni * c + gi * cg + ci) * h + iy as usize) * wd
                                            + ix as usize;
                                        s += x[xi] * w[((mi * cg + ci) * kh + a) * kw + b];
                                    }
                                }
                            }
                        }
                        out[((ni * m + mi) * oh + y) * ow + xx] = s;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv_matches_direct_loops() {
        for (g, stride, pad) in [(1, 1, 1), (2, 2, 0), (4, 1, 2), (1, 3, 1)] {
            let xs = [2, 4, 7, 6];
            let ws = [4, 4 / g, 3, 2];
            let xv: Vec<f32> = (0..xs.iter().product())
                .map(|i| ((i * 7) % 11) as f32 - 5.0)
                .collect();
            let wv: Vec<f32> = (0..ws.iter().product())
                .map(|i| ((i * 5) % 7) as f32 - 3.0)
                .collect();
            let x = Tensor::from_vec(xs.to_vec(), xv.clone()).unwrap();
            let w = Tensor::from_vec(ws.to_vec(), wv.clone()).unwrap();
            let p = pad as i64;
            let op = Conv {
                window: window(vec![p, p, p, p], vec![stride as i64; 2]),
                group: g as i64,
            };
            let out = run_conv(&op, &[Some(&x), Some(&w)]).unwrap();
            assert_eq!(
                out[0].as_slice::<f32>().unwrap(),
                naive(&xv, xs, &wv, ws, pad, stride, g).as_slice()
            );
        }
    }

    #[test]
    fn conv_rejects_channel_mismatch_and_bad_bias() {
        let x = Tensor::zeros(slimnet_tensor::DType::F32, vec![1, 3, 4, 4]).unwrap();
        let w = Tensor::zeros(slimnet_tensor::DType::F32, vec![2, 2, 3, 3]).unwrap();
        let op = Conv {
            window: window(vec![], vec![]),
            group: 1,
        };
        assert!(run_conv(&op, &[Some(&x), Some(&w)]).is_err());
        let w = Tensor::zeros(slimnet_tensor::DType::F32, vec![2, 3, 3, 3]).unwrap();
        let b = Tensor::zeros(slimnet_tensor::DType::F32, vec![3]).unwrap();
        assert!(run_conv(&op, &[Some(&x), Some(&w), Some(&b)]).is_err());
        let big = Tensor::zeros(slimnet_tensor::DType::F32, vec![2, 3, 5, 5]).unwrap();
        assert!(run_conv(&op, &[Some(&x), Some(&big)]).is_err());
        let xi = Tensor::zeros(slimnet_tensor::DType::I64, vec![1, 3, 4, 4]).unwrap();
        assert!(run_conv(&op, &[Some(&xi), Some(&w)]).is_err());
    }

    #[test]
    fn conv_transpose_is_the_adjoint_of_conv() {
        // <conv(x), y> == <x, conv_transpose(y)> for the same weights.
        let xs = [1, 2, 5, 4];
        let ws = [3, 2, 3, 2];
        let xv: Vec<f32> = (0..40).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let wv: Vec<f32> = (0..36).map(|i| ((i * 5) % 9) as f32 - 4.0).collect();
        let x = Tensor::from_vec(xs.to_vec(), xv.clone()).unwrap();
        let w = Tensor::from_vec(ws.to_vec(), wv).unwrap();
        let op = Conv {
            window: window(vec![1, 0, 1, 0], vec![2, 1]),
            group: 1,
        };
        let y = run_conv(&op, &[Some(&x), Some(&w)]).unwrap().remove(0);
        let yv: Vec<f32> = (0..y.len()).map(|i| ((i * 11) % 5) as f32 - 2.0).collect();
        let yt = Tensor::from_vec(y.shape().to_vec(), yv.clone()).unwrap();
        let ct = ConvTranspose {
            window: window(vec![1, 0, 1, 0], vec![2, 1]),
            group: 1,
            output_padding: vec![],
            output_shape: vec![5, 4],
        };
        let back = run_conv_transpose(&ct, &[Some(&yt), Some(&w)])
            .unwrap()
            .remove(0);
        assert_eq!(back.shape(), &xs);
        let lhs: f32 = y
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .zip(&yv)
            .map(|(a, b)| a * b)
            .sum();
        let rhs: f32 = back
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .zip(&xv)
            .map(|(a, b)| a * b)
            .sum();
        assert_eq!(lhs, rhs);
    }
}
