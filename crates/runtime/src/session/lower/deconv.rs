//! ConvTranspose on f32 NCHW with constant weights (and bias), one group: per batch
//! item one packed GEMM `col = Wᵀ·x` (`Wᵀ` is `[Cout·kh·kw, Cin]`, `x` is
//! `[Cin, H·W]`) into scratch, then col2im adds each column into the output. When the
//! kernel equals the stride with no padding or dilation, the windows do not overlap:
//! the bias rides in the GEMM and col2im only places values.

use slimnet_ir::ops::nn::ConvTranspose;
use slimnet_ir::NodeId;
use slimnet_kernels::gemm::PackedA;
use slimnet_kernels::{Bias, Epilogue, KernelTable, Threads};

use super::movement::SharedMut;
use super::{constant_f32, is_f32, Context, Lowered, Lowering};

/// A 2-D transposed convolution ready to run.
pub(crate) struct DeconvStep {
    batch: usize,
    cin: usize,
    cout: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    dilation: (usize, usize),
    /// Padding removed at the top and left (negative adds).
    pad: (isize, isize),
    /// `Wᵀ`, packed.
    weights: PackedA,
    /// One value per output channel (zeros without a bias).
    bias: Vec<f32>,
    /// The bias per GEMM row, when windows do not overlap (the bias is added there).
    row_bias: Option<Vec<f32>>,
}

impl DeconvStep {
    /// Scratch (f32 elements) the step needs: one batch item's columns.
    fn scratch_len(&self) -> usize {
        self.cout * self.kh * self.kw * self.in_h * self.in_w
    }

    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        x: &[f32],
        y: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<(), String> {
        let (in_sp, out_sp) = (self.in_h * self.in_w, self.out_h * self.out_w);
        let (x_item, y_item) = (self.cin * in_sp, self.cout * out_sp);
        if x.len() != self.batch * x_item
            || y.len() != self.batch * y_item
            || scratch.len() < self.scratch_len()
        {
            return Err("ConvTranspose buffers do not match the plan".into());
        }
        let col = &mut scratch[..self.scratch_len()];
        let epilogue = Epilogue {
            bias: self.row_bias.as_deref().map_or(Bias::None, Bias::PerRow),
            ..Epilogue::default()
        };
        for b in 0..self.batch {
            let xb = &x[b * x_item..(b + 1) * x_item];
            let yb = &mut y[b * y_item..(b + 1) * y_item];
            if in_sp == 0 || self.cin == 0 {
                for (plane, &v) in yb.chunks_mut(out_sp.max(1)).zip(&self.bias) {
                    plane.fill(v);
                }
                continue;
            }
            table
                .sgemm_packed(
                    &self.weights,
                    xb,
                    in_sp,
                    in_sp,
                    col,
                    in_sp,
                    &epilogue,
                    threads,
                )
                .map_err(|e| e.to_string())?;
            let out = SharedMut(yb.as_mut_ptr());
            let col: &[f32] = col;
            let task = |co: usize| {
                // SAFETY: plane `co` lies inside `yb` and only this task writes it.
                let plane = unsafe { std::slice::from_raw_parts_mut(out.at(co * out_sp), out_sp) };
                let k = self.kh * self.kw;
                self.col2im(&col[co * k * in_sp..(co + 1) * k * in_sp], co, plane);
            };
            if self.cout * out_sp * self.kh * self.kw < (1 << 14) {
                (0..self.cout).for_each(task);
            } else {
                threads.for_each(self.cout, task);
            }
        }
        Ok(())
    }

    /// Writes output plane `co` from its `kh·kw` rows of columns.
    fn col2im(&self, col: &[f32], co: usize, plane: &mut [f32]) {
        let (in_sp, iw, ow) = (self.in_h * self.in_w, self.in_w, self.out_w);
        let (sh, sw) = self.stride;
        if self.row_bias.is_some() {
            // Windows tile the output exactly: every element is written once.
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let row = &col[(ky * self.kw + kx) * in_sp..][..in_sp];
                    for iy in 0..self.in_h {
                        let dst = &mut plane[(iy * sh + ky) * ow + kx..];
                        for (ix, &v) in row[iy * iw..(iy + 1) * iw].iter().enumerate() {
                            dst[ix * sw] = v;
                        }
                    }
                }
            }
            return;
        }
        plane.fill(self.bias[co]);
        let (dh, dw) = self.dilation;
        let (pt, pl) = self.pad;
        for ky in 0..self.kh {
            for kx in 0..self.kw {
                let row = &col[(ky * self.kw + kx) * in_sp..][..in_sp];
                // Input columns whose output column `ix·sw + kx·dw - pl` is in range.
                let off_x = (kx * dw) as isize - pl;
                let lo = if off_x >= 0 {
                    0
                } else {
                    ((-off_x) as usize).div_ceil(sw)
                };
                let hi_num = ow as isize - off_x;
                let hi = if hi_num <= 0 {
                    0
                } else {
                    ((hi_num as usize).div_ceil(sw)).min(iw)
                };
                for iy in 0..self.in_h {
                    let oy = (iy * sh + ky * dh) as isize - pt;
                    if oy < 0 || oy >= self.out_h as isize {
                        continue;
                    }
                    let dst = &mut plane[oy as usize * ow..(oy as usize + 1) * ow];
                    let src = &row[iy * iw..(iy + 1) * iw];
                    for ix in lo..hi {
                        dst[(ix as isize * sw as isize + off_x) as usize] += src[ix];
                    }
                }
            }
        }
    }
}

/// Lowers a 2-D ConvTranspose with one group whose weights (and bias) are constants
/// and whose input and output are f32 with known shapes.
pub(crate) fn lower_deconv(
    ctx: &Context,
    n: NodeId,
    op: &ConvTranspose,
) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let input = |i: usize| node.inputs.get(i).copied().flatten();
    let (Some(x), Some(w), Some(Some(y))) = (input(0), input(1), node.outputs.first().copied())
    else {
        return Ok(None);
    };
    if op.group != 1 || !is_f32(ctx, x) || !is_f32(ctx, y) {
        return Ok(None);
    }
    let (Some(xs), Some(ws), Some(ys), Some(weights)) = (
        ctx.shapes[x].as_ref(),
        ctx.shapes[w].as_ref(),
        ctx.shapes[y].as_ref(),
        constant_f32(ctx, w),
    ) else {
        return Ok(None);
    };
    if xs.len() != 4 || ws.len() != 4 || ys.len() != 4 || ws[0] != xs[1] {
        return Ok(None);
    }
    let (cin, cout) = (xs[1], ws[1]);
    let kernel = op.kernel(ws);
    if kernel != ws[2..] {
        return Ok(None);
    }
    let bias = match input(2) {
        None => vec![0.0; cout],
        Some(b) => match constant_f32(ctx, b) {
            Some(data) if data.len() == cout => data.to_vec(),
            _ => return Ok(None),
        },
    };
    let Ok(r) = op.resolve(&xs[2..], &kernel) else {
        return Ok(None);
    };
    if ys[..2] != [xs[0], cout] || r.output != ys[2..] {
        return Ok(None);
    }
    let (kh, kw) = (ws[2], ws[3]);
    let k = kh * kw;
    // Wᵀ: row (co·kh + ky)·kw + kx, column ci.
    let m = cout * k;
    let mut wt = vec![0f32; m * cin];
    for ci in 0..cin {
        for (r, &v) in weights[ci * m..(ci + 1) * m].iter().enumerate() {
            wt[r * cin + ci] = v;
        }
    }
    let packed = ctx
        .table
        .pack_a(m, cin, &wt, cin)
        .map_err(|e| e.to_string())?;
    let stride = (r.strides[0], r.strides[1]);
    let dilation = (r.dilations[0], r.dilations[1]);
    let tiles = stride == (kh, kw)
        && dilation == (1, 1)
        && r.pads_begin.iter().all(|&p| p == 0)
        && ys[2] == xs[2] * kh
        && ys[3] == xs[3] * kw;
    let row_bias = tiles.then(|| (0..m).map(|r| bias[r / k]).collect());
    let step = DeconvStep {
        batch: xs[0],
        cin,
        cout,
        in_h: xs[2],
        in_w: xs[3],
        out_h: ys[2],
        out_w: ys[3],
        kh,
        kw,
        stride,
        dilation,
        pad: (r.pads_begin[0] as isize, r.pads_begin[1] as isize),
        weights: packed,
        bias,
        row_bias,
    };
    let scratch_len = step.scratch_len();
    Ok(Some(Lowering {
        kernel: Lowered::Deconv(Box::new(step)),
        fused: Vec::new(),
        scratch_len,
    }))
}
