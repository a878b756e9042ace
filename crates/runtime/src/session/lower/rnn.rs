//! LSTM and GRU on f32 with constant weights: the input projection of every time
//! step in one product, then per step the recurrence product and the gates with the
//! kernel table's vectorized sigmoid and tanh.

use slimnet_ir::ops::rnn::{Activation as RnnActivation, Direction, Recurrent};
use slimnet_ir::ops::RnnOp;
use slimnet_ir::{NodeId, ValueId};
use slimnet_kernels::{Activation, Bias, Epilogue, KernelTable, SgemmShape, Threads, Tier};

use super::{constant_f32, is_f32, Context, Lowered, Lowering};

/// Input projections over fewer rows than this run as row-by-matrix products
/// instead of an sgemm (which packs the whole weight matrix on every call).
const SGEMM_MIN_ROWS: usize = 4;

/// The recurrent cell a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Gates `i, o, f, c`.
    Lstm,
    /// Gates `z, r, h`.
    Gru { linear_before_reset: bool },
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
        }
    }
}

/// One direction's constant operands (`G` is gates times hidden size).
struct DirWeights {
    /// `W^T`: `[input, G]`.
    wt: Vec<f32>,
    /// `R^T`: `[hidden, G]` (LSTM); for GRU only the z and r gates,
    /// `[hidden, 2·hidden]`.
    rt: Vec<f32>,
    /// GRU: `Rh^T`, `[hidden, hidden]`; LSTM: empty.
    rh: Vec<f32>,
    /// Added to the input projection: `Wb + Rb`, except GRU's `Rbh` with
    /// linear_before_reset (which goes into `rb_h`).
    bias: Vec<f32>,
    /// GRU with linear_before_reset: `Rbh`; else empty.
    rb_h: Vec<f32>,
    reverse: bool,
}

/// An ONNX LSTM or GRU (layout 0, default activations, no peepholes, clip or coupled
/// gates, every sequence full length).
///
/// Contract of [`RnnStep::run`]: `x` is `[seq, batch, input]`; the initial states,
/// when given, are `[dirs, batch, hidden]` (GRU ignores `initial[1]`); the outputs,
/// when wanted, are `Y` `[seq, dirs, batch, hidden]`, `Y_h` and (LSTM) `Y_c`
/// `[dirs, batch, hidden]`; `scratch` holds at least [`RnnStep::scratch_len`]
/// elements.
pub(crate) struct RnnStep {
    cell: Cell,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: Vec<DirWeights>,
}

impl RnnStep {
    /// Scratch elements a run needs: the projections of one direction, the gates,
    /// the hidden and cell states and one row of temporaries.
    pub(crate) fn scratch_len(&self) -> usize {
        let g = self.cell.gates() * self.hidden;
        self.seq * self.batch * g + self.batch * g + 2 * self.batch * self.hidden + self.hidden
    }

    pub(crate) fn name(&self) -> &'static str {
        match self.cell {
            Cell::Lstm => "lstm",
            Cell::Gru { .. } => "gru",
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        table: &KernelTable,
        threads: &Threads,
        x: &[f32],
        initial: [Option<&[f32]>; 2],
        outputs: [Option<&mut [f32]>; 3],
        scratch: &mut [f32],
    ) -> Result<(), String> {
        let (seq, batch, input, hidden) = (self.seq, self.batch, self.input, self.hidden);
        let g = self.cell.gates() * hidden;
        let dirs = self.dirs.len();
        let state_len = dirs * batch * hidden;
        if x.len() != seq * batch * input {
            return Err(format!(
                "X holds {} values, planned {}",
                x.len(),
                seq * batch * input
            ));
        }
        for s in initial.iter().flatten() {
            if s.len() != state_len {
                return Err(format!(
                    "an initial state holds {} values, planned {state_len}",
                    s.len()
                ));
            }
        }
        let scratch = scratch
            .get_mut(..self.scratch_len())
            .ok_or("scratch too small")?;
        let (xw, rest) = scratch.split_at_mut(seq * batch * g);
        let (gates, rest) = rest.split_at_mut(batch * g);
        let (h, rest) = rest.split_at_mut(batch * hidden);
        let (c, tc) = rest.split_at_mut(batch * hidden);
        let [mut y, mut yh, mut yc] = outputs;
        for (d, w) in self.dirs.iter().enumerate() {
            project_inputs(table, threads, x, seq * batch, input, w, xw)?;
            let state = d * batch * hidden..(d + 1) * batch * hidden;
            match initial[0] {
                Some(h0) => h.copy_from_slice(&h0[state.clone()]),
                None => h.fill(0.0),
            }
            match initial[1] {
                Some(c0) => c.copy_from_slice(&c0[state.clone()]),
                None => c.fill(0.0),
            }
            for step in 0..seq {
                let t = if w.reverse { seq - 1 - step } else { step };
                gates.copy_from_slice(&xw[t * batch * g..(t + 1) * batch * g]);
                for b in 0..batch {
                    let gb = &mut gates[b * g..(b + 1) * g];
                    let hb = &mut h[b * hidden..(b + 1) * hidden];
                    let cb = &mut c[b * hidden..(b + 1) * hidden];
                    match self.cell {
                        Cell::Lstm => lstm_cell(table, w, gb, hb, cb, tc),
                        Cell::Gru {
                            linear_before_reset,
                        } => gru_cell(table, w, linear_before_reset, gb, hb, tc),
                    }
                }
                if let Some(y) = y.as_deref_mut() {
                    let row = (t * dirs + d) * batch * hidden;
                    y[row..row + batch * hidden].copy_from_slice(h);
                }
            }
            if let Some(yh) = yh.as_deref_mut() {
                yh[state.clone()].copy_from_slice(h);
            }
            if let Some(yc) = yc.as_deref_mut() {
                yc[state].copy_from_slice(c);
            }
        }
        Ok(())
    }
}

/// One LSTM step of one batch row: `gates` holds the input projection and becomes
/// scratch; `h` and `c` are updated in place; `tc` is scratch of `hidden` values.
fn lstm_cell(
    table: &KernelTable,
    w: &DirWeights,
    gates: &mut [f32],
    h: &mut [f32],
    c: &mut [f32],
    tc: &mut [f32],
) {
    let hidden = h.len();
    row_times_matrix(table.tier(), h, &w.rt, gates);
    table.activate(Activation::Sigmoid, &mut gates[..3 * hidden]);
    table.activate(Activation::Tanh, &mut gates[3 * hidden..]);
    let (i, rest) = gates.split_at(hidden);
    let (o, rest) = rest.split_at(hidden);
    let (f, cand) = rest.split_at(hidden);
    for j in 0..hidden {
        c[j] = f[j] * c[j] + i[j] * cand[j];
    }
    tc.copy_from_slice(c);
    table.activate(Activation::Tanh, tc);
    for j in 0..hidden {
        h[j] = o[j] * tc[j];
    }
}

/// One GRU step of one batch row: `gates` holds the input projection (biases
/// included, see [`DirWeights`]) and becomes scratch; `h` is updated in place; `tmp`
/// is scratch of `hidden` values.
fn gru_cell(
    table: &KernelTable,
    w: &DirWeights,
    linear_before_reset: bool,
    gates: &mut [f32],
    h: &mut [f32],
    tmp: &mut [f32],
) {
    let hidden = h.len();
    let tier = table.tier();
    let (zr, cand) = gates.split_at_mut(2 * hidden);
    row_times_matrix(tier, h, &w.rt, zr);
    table.activate(Activation::Sigmoid, zr);
    let r = &zr[hidden..];
    if linear_before_reset {
        // The candidate takes r ⊙ (h·Rh^T + Rbh).
        tmp.copy_from_slice(&w.rb_h);
        row_times_matrix(tier, h, &w.rh, tmp);
        for j in 0..hidden {
            cand[j] += r[j] * tmp[j];
        }
    } else {
        // The candidate takes (r ⊙ h)·Rh^T.
        for j in 0..hidden {
            tmp[j] = r[j] * h[j];
        }
        row_times_matrix(tier, tmp, &w.rh, cand);
    }
    table.activate(Activation::Tanh, &mut gates[2 * hidden..]);
    let (z, cand) = (&gates[..hidden], &gates[2 * hidden..]);
    for j in 0..hidden {
        h[j] = (1.0 - z[j]) * cand[j] + z[j] * h[j];
    }
}

/// `xw = x·W^T + bias` over `rows` rows of `x`.
fn project_inputs(
    table: &KernelTable,
    threads: &Threads,
    x: &[f32],
    rows: usize,
    input: usize,
    w: &DirWeights,
    xw: &mut [f32],
) -> Result<(), String> {
    let g = w.bias.len();
    if rows >= SGEMM_MIN_ROWS {
        let epilogue = Epilogue {
            bias: Bias::PerColumn(&w.bias),
            activation: Activation::Identity,
        };
        return table
            .sgemm_fused(
                &SgemmShape::dense(rows, g, input),
                x,
                &w.wt,
                xw,
                &epilogue,
                threads,
            )
            .map_err(|e| e.to_string());
    }
    for r in 0..rows {
        let out = &mut xw[r * g..(r + 1) * g];
        out.copy_from_slice(&w.bias);
        row_times_matrix(table.tier(), &x[r * input..(r + 1) * input], &w.wt, out);
    }
    Ok(())
}

/// `out += v·m` for a row `v` of `k` values and a row-major `[k, out.len()]` matrix
/// `m`, compiled for AVX2 where the table's tier has it. Every tier adds the products
/// in the same order, so results do not depend on the tier.
fn row_times_matrix(tier: Tier, v: &[f32], m: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if tier != Tier::Portable {
        // SAFETY: tables of the AVX2 and AVX-512 tiers exist only on CPUs with AVX2.
        unsafe { row_times_matrix_avx2(v, m, out) };
        return;
    }
    let _ = tier;
    row_times_matrix_portable(v, m, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_times_matrix_avx2(v: &[f32], m: &[f32], out: &mut [f32]) {
    row_times_matrix_portable(v, m, out)
}

#[inline(always)]
fn row_times_matrix_portable(v: &[f32], m: &[f32], out: &mut [f32]) {
    let n = out.len();
    for (k, &vk) in v.iter().enumerate() {
        let row = &m[k * n..(k + 1) * n];
        for (o, &x) in out.iter_mut().zip(row) {
            *o += vk * x;
        }
    }
}

/// The transpose of the row-major `[rows, cols]` matrix `m`.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

/// Lowers an LSTM or GRU whose weights are constant and whose options the fast step
/// supports (see [`RnnStep`]); `None` leaves it (and RNN) to the reference kernel.
pub(crate) fn lower_rnn(ctx: &Context, n: NodeId, op: &RnnOp) -> Result<Option<Lowering>, String> {
    let (cell, r, per_dir): (Cell, &Recurrent, &[RnnActivation]) = match op {
        RnnOp::Lstm(r) => (
            Cell::Lstm,
            r,
            &[
                RnnActivation::Sigmoid,
                RnnActivation::Tanh,
                RnnActivation::Tanh,
            ],
        ),
        RnnOp::Gru(r) => (
            Cell::Gru {
                linear_before_reset: r.linear_before_reset,
            },
            r,
            &[RnnActivation::Sigmoid, RnnActivation::Tanh],
        ),
        RnnOp::Rnn(_) => return Ok(None),
    };
    let node = &ctx.graph.nodes[n];
    let inp = |k: usize| node.inputs.get(k).copied().flatten();
    let (Some(x), Some(wv), Some(rv)) = (inp(0), inp(1), inp(2)) else {
        return Ok(None);
    };
    if r.layout != 0 || r.clip.is_some() || r.input_forget || node.inputs.len() > 8 {
        return Ok(None);
    }
    if !r.activations.chunks(per_dir.len()).all(|a| a == per_dir) {
        return Ok(None);
    }
    let dirs = r.direction.count();
    if r.activations.len() != per_dir.len() * dirs || !is_f32(ctx, x) {
        return Ok(None);
    }
    let (Some(xs), Some(w), Some(rw)) = (
        ctx.shapes[x].as_deref(),
        constant_f32(ctx, wv),
        constant_f32(ctx, rv),
    ) else {
        return Ok(None);
    };
    let &[seq, batch, input] = xs else {
        return Ok(None);
    };
    let hidden = match r.hidden_size {
        Some(h) if h > 0 => h as usize,
        Some(_) => return Ok(None),
        None => match ctx.shapes[rv].as_deref() {
            Some(&[_, _, h]) => h,
            _ => return Ok(None),
        },
    };
    let g = cell.gates() * hidden;
    if ctx.shapes[wv].as_deref() != Some(&[dirs, g, input][..])
        || ctx.shapes[rv].as_deref() != Some(&[dirs, g, hidden][..])
    {
        return Err("W or R does not match X and hidden_size".into());
    }
    let b = match inp(3) {
        None => None,
        Some(bv) => match constant_f32(ctx, bv) {
            Some(b) if b.len() == dirs * 2 * g => Some(b),
            _ => return Ok(None),
        },
    };
    if let Some(lens) = inp(4) {
        let full = ctx.graph.values[lens]
            .constant
            .as_ref()
            .and_then(|t| t.to_i64_vec().ok())
            .is_some_and(|v| v.len() == batch && v.iter().all(|&l| l == seq as i64));
        if !full {
            return Ok(None);
        }
    }
    let state_ok = |v: Option<ValueId>| {
        v.is_none_or(|v| {
            is_f32(ctx, v) && ctx.shapes[v].as_deref() == Some(&[dirs, batch, hidden][..])
        })
    };
    if !state_ok(inp(5)) || !state_ok(inp(6)) || inp(7).is_some() {
        return Ok(None);
    }
    let out = |k: usize| node.outputs.get(k).copied().flatten();
    let outputs_ok = [
        (out(0), vec![seq, dirs, batch, hidden]),
        (out(1), vec![dirs, batch, hidden]),
        (out(2), vec![dirs, batch, hidden]),
    ]
    .iter()
    .all(|(v, shape)| v.is_none_or(|v| is_f32(ctx, v) && ctx.shapes[v].as_ref() == Some(shape)));
    let max_outputs = if cell == Cell::Lstm { 3 } else { 2 };
    if !outputs_ok || node.outputs.len() > max_outputs || node.inputs.len() > 2 * max_outputs + 2 {
        return Ok(None);
    }
    let dirs_weights = (0..dirs)
        .map(|d| {
            let (wb, rb) = match b {
                Some(b) => (
                    b[d * 2 * g..d * 2 * g + g].to_vec(),
                    b[d * 2 * g + g..(d + 1) * 2 * g].to_vec(),
                ),
                None => (vec![0.0; g], vec![0.0; g]),
            };
            let mut bias: Vec<f32> = wb.iter().zip(&rb).map(|(a, b)| a + b).collect();
            let rt = transpose(&rw[d * g * hidden..(d + 1) * g * hidden], g, hidden);
            let (rt, rh, rb_h) = match cell {
                Cell::Lstm => (rt, Vec::new(), Vec::new()),
                Cell::Gru {
                    linear_before_reset,
                } => {
                    let (zr, h): (Vec<f32>, Vec<f32>) = (
                        rt.chunks(g)
                            .flat_map(|row| &row[..2 * hidden])
                            .copied()
                            .collect(),
                        rt.chunks(g)
                            .flat_map(|row| &row[2 * hidden..])
                            .copied()
                            .collect(),
                    );
                    let rb_h = if linear_before_reset {
                        bias[2 * hidden..].copy_from_slice(&wb[2 * hidden..]);
                        rb[2 * hidden..].to_vec()
                    } else {
                        Vec::new()
                    };
                    (zr, h, rb_h)
                }
            };
            DirWeights {
                wt: transpose(&w[d * g * input..(d + 1) * g * input], g, input),
                rt,
                rh,
                bias,
                rb_h,
                reverse: r.direction == Direction::Reverse || d == 1,
            }
        })
        .collect();
    let step = RnnStep {
        cell,
        seq,
        batch,
        input,
        hidden,
        dirs: dirs_weights,
    };
    Ok(Some(Lowering {
        scratch_len: step.scratch_len(),
        kernel: Lowered::Rnn(Box::new(step)),
        fused: Vec::new(),
    }))
}
