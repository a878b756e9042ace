//! Gemm and MatMul on f32 as one sgemm call per matrix, with the bias and a following
//! activation fused.

use slimnet_ir::ops::nn::Gemm;
use slimnet_ir::NodeId;
use slimnet_kernels::gemm::PackedB;
use slimnet_kernels::{Activation, Bias, Epilogue, KernelTable, SgemmShape, Threads};

use super::{constant_f32, fusable_activation, is_f32, Context, Lowered, Lowering};

/// `C[b] = act(A[b]·B[b] + bias)` for `b` in `0..batch`, all row-major.
pub(crate) struct GemmStep {
    pub shape: SgemmShape,
    pub batch: usize,
    /// Elements between consecutive matrices of `A` (0 repeats the same one).
    pub a_stride: usize,
    /// `B` when it is constant (transposed and scaled by alpha at plan time) and not
    /// packed.
    pub b_const: Option<Vec<f32>>,
    /// A constant `B` packed once for the kernels (single products of more than two
    /// rows; thinner ones read `B` in place).
    pub b_packed: Option<PackedB>,
    pub b_stride: usize,
    /// One value per output column, or none.
    pub bias: Option<Vec<f32>>,
    pub activation: Activation,
}

impl GemmStep {
    /// One product of `shape`, with no activation.
    fn single(shape: SgemmShape, b_const: Option<Vec<f32>>, bias: Option<Vec<f32>>) -> GemmStep {
        GemmStep {
            shape,
            batch: 1,
            a_stride: 0,
            b_const,
            b_packed: None,
            b_stride: 0,
            bias,
            activation: Activation::Identity,
        }
    }

    /// Runs the products; `b` is ignored when `B` was packed at plan time.
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
    ) -> Result<(), String> {
        let s = self.shape;
        let epilogue = Epilogue {
            bias: self.bias.as_deref().map_or(Bias::None, Bias::PerColumn),
            activation: self.activation,
        };
        if let Some(packed) = &self.b_packed {
            return table
                .sgemm_packed_b(a, s.lda, s.m, packed, c, s.ldc, &epilogue, threads)
                .map_err(|e| e.to_string());
        }
        let c_stride = s.m * s.n;
        for i in 0..self.batch {
            table
                .sgemm_fused(
                    &s,
                    &a[i * self.a_stride..],
                    &b[i * self.b_stride..],
                    &mut c[i * c_stride..(i + 1) * c_stride],
                    &epilogue,
                    threads,
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn with_activation(ctx: &Context, out: usize, step: GemmStep) -> Lowering {
    let mut step = step;
    if step.batch == 1 && step.shape.m > 2 {
        if let Some(b) = &step.b_const {
            let s = step.shape;
            if let Ok(packed) = ctx.table.pack_b(s.k, s.n, b, s.ldb) {
                step.b_packed = Some(packed);
                step.b_const = None;
            }
        }
    }
    let mut fused = Vec::new();
    if let Some((nodes, act)) = fusable_activation(ctx, out) {
        step.activation = act;
        fused = nodes;
    }
    Lowering {
        kernel: Lowered::Gemm(Box::new(step)),
        fused,
        scratch_len: 0,
    }
}

/// Lowers a Gemm whose `A` is an f32 matrix, `B` a constant and `C` (if any) a
/// constant bias broadcast along rows.
pub(crate) fn lower_gemm(ctx: &Context, n: NodeId, g: &Gemm) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let (Some(Some(a)), Some(Some(b)), Some(Some(out))) = (
        node.inputs.first(),
        node.inputs.get(1),
        node.outputs.first(),
    ) else {
        return Ok(None);
    };
    if g.trans_a || !is_f32(ctx, *a) || !is_f32(ctx, *out) {
        return Ok(None);
    }
    let (Some(a_shape), Some(b_data), Some(b_shape)) = (
        ctx.shapes[*a].as_ref(),
        constant_f32(ctx, *b),
        ctx.shapes[*b].as_ref(),
    ) else {
        return Ok(None);
    };
    let (&[m, k], &[b0, b1]) = (&a_shape[..], &b_shape[..]) else {
        return Ok(None);
    };
    let (bk, n_cols) = if g.trans_b { (b1, b0) } else { (b0, b1) };
    if bk != k {
        return Err(format!("A is {m}x{k} but B has {bk} rows"));
    }
    let mut packed = vec![0f32; k * n_cols];
    for p in 0..k {
        for j in 0..n_cols {
            let v = if g.trans_b {
                b_data[j * k + p]
            } else {
                b_data[p * n_cols + j]
            };
            packed[p * n_cols + j] = g.alpha * v;
        }
    }
    let bias = match node.inputs.get(2).copied().flatten() {
        None => None,
        Some(c) => {
            let Some(c_data) = constant_f32(ctx, c) else {
                return Ok(None);
            };
            let c_shape = ctx.shapes[c].clone().unwrap_or_default();
            let per_column = match c_shape[..] {
                [] | [1] | [1, 1] => vec![c_data[0]; n_cols],
                [len] | [1, len] if len == n_cols => c_data.to_vec(),
                _ => return Ok(None),
            };
            Some(per_column.into_iter().map(|x| g.beta * x).collect())
        }
    };
    let step = GemmStep::single(SgemmShape::dense(m, n_cols, k), Some(packed), bias);
    Ok(Some(with_activation(ctx, *out, step)))
}

/// Lowers a MatMul of f32 operands: `[.., m, k] x [k, n]` as one tall sgemm, and
/// `[b.., m, k] x [b.., k, n]` with equal batch dimensions as one sgemm per matrix.
pub(crate) fn lower_matmul(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let (Some(Some(a)), Some(Some(b)), Some(Some(out))) = (
        node.inputs.first(),
        node.inputs.get(1),
        node.outputs.first(),
    ) else {
        return Ok(None);
    };
    if !is_f32(ctx, *a) || !is_f32(ctx, *b) || !is_f32(ctx, *out) {
        return Ok(None);
    }
    let (Some(sa), Some(sb)) = (ctx.shapes[*a].as_ref(), ctx.shapes[*b].as_ref()) else {
        return Ok(None);
    };
    if sa.len() < 2 || sb.len() < 2 {
        return Ok(None);
    }
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (bk, n_cols) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if bk != k {
        return Ok(None);
    }
    let a_batch: usize = sa[..sa.len() - 2].iter().product();
    let b_batch: usize = sb[..sb.len() - 2].iter().product();
    let b_const = constant_f32(ctx, *b).map(<[f32]>::to_vec);
    let same_batch = sa[..sa.len() - 2] == sb[..sb.len() - 2];
    // A 2-D `B`, or one `B` for every `A` matrix: one product over all rows of `A`.
    let step = if sb.len() == 2 || (!same_batch && b_batch == 1) {
        GemmStep::single(SgemmShape::dense(a_batch * m, n_cols, k), b_const, None)
    } else if same_batch {
        GemmStep {
            shape: SgemmShape::dense(m, n_cols, k),
            batch: a_batch,
            a_stride: m * k,
            b_const,
            b_packed: None,
            b_stride: k * n_cols,
            bias: None,
            activation: Activation::Identity,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(with_activation(ctx, *out, step)))
}
