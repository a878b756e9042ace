//! Data movement on f32 values: Concat, Transpose, Slice, Split, Pad (constant mode)
//! and Gather with constant indices. Each node becomes, at plan time, a list of
//! strided block copies whose index arithmetic is fixed; running it only copies.

use slimnet_ir::ops::nn::{Pad, PadMode};
use slimnet_ir::ops::shape::slice_bounds;
use slimnet_ir::ops::{NnOp, ShapeOp};
use slimnet_ir::{NodeId, Op, ValueId};
use slimnet_kernels::Threads;

use super::{constant_f32, is_f32, Context, Lowered, Lowering};

/// Below this many elements a copy runs on the calling thread.
const MIN_SPLIT: usize = 1 << 14;

/// Side of the square tiles a transposing copy walks.
const TILE: usize = 16;

/// Most constant indices a Gather is lowered for (one copy each).
const MAX_GATHER_INDICES: usize = 1024;

/// An output pointer shared by the tasks of one step. Tasks write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub *mut f32);

impl SharedMut {
    /// The pointer `i` elements on (a method, so closures capture the whole wrapper).
    ///
    /// # Safety
    /// As [`pointer::add`]: the result must stay inside the buffer.
    pub(crate) unsafe fn at(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }
}

// SAFETY: the pointer is only dereferenced at elements that exactly one task writes,
// while the buffer it points into is borrowed mutably by the step.
unsafe impl Send for SharedMut {}
// SAFETY: as for `Send`.
unsafe impl Sync for SharedMut {}

/// One axis of a strided copy: extent and the element strides in source and
/// destination.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    extent: usize,
    src: isize,
    dst: isize,
}

/// A copy of a strided block: `rows` rows of `len` elements. Row `r`, decomposed over
/// `outer` (outermost first), starts at `src_offset + Σ i·src` in the source and
/// `dst_offset + Σ i·dst` in the destination; element `j` of a row is at
/// `+ j·src_step` in the source and `+ j` in the destination. Built only when every
/// element it touches lies inside buffers of the lengths it was built for.
#[derive(Debug)]
pub(crate) struct Strided {
    outer: Vec<Axis>,
    len: usize,
    src_step: isize,
    src_offset: isize,
    dst_offset: isize,
    rows: usize,
    src_len: usize,
    dst_len: usize,
}

impl Strided {
    /// The copy of the block of `extents` with the given strides and offsets, with
    /// unit axes dropped and axes that are contiguous in both buffers merged. `None`
    /// when it would touch an element outside `src_len` or `dst_len`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        extents: &[usize],
        src_strides: &[isize],
        dst_strides: &[isize],
        src_offset: isize,
        dst_offset: isize,
        src_len: usize,
        dst_len: usize,
    ) -> Option<Strided> {
        let empty = extents.contains(&0);
        let mut axes: Vec<Axis> = Vec::new();
        for ((&extent, &src), &dst) in extents.iter().zip(src_strides).zip(dst_strides) {
            if extent == 1 {
                continue;
            }
            match axes.last_mut() {
                Some(prev)
                    if prev.src == src * extent as isize && prev.dst == dst * extent as isize =>
                {
                    *prev = Axis {
                        extent: prev.extent * extent,
                        src,
                        dst,
                    }
                }
                _ => axes.push(Axis { extent, src, dst }),
            }
        }
        let (len, src_step) = match axes.last() {
            Some(a) if a.dst == 1 => {
                let a = axes.pop().expect("checked");
                (a.extent, a.src)
            }
            _ => (1, 1),
        };
        let rows = if empty {
            0
        } else {
            axes.iter().map(|a| a.extent).product()
        };
        let s = Strided {
            outer: axes,
            len: if empty { 0 } else { len },
            src_step,
            src_offset,
            dst_offset,
            rows,
            src_len,
            dst_len,
        };
        s.in_bounds().then_some(s)
    }

    /// Whether every element the copy touches lies inside both buffers.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.len == 0 {
            return true;
        }
        let span = |base: isize, parts: &mut dyn Iterator<Item = (usize, isize)>| {
            let (mut lo, mut hi) = (base, base);
            for (extent, stride) in parts {
                let reach = (extent as isize - 1) * stride;
                if reach < 0 {
                    lo += reach;
                } else {
                    hi += reach;
                }
            }
            (lo, hi)
        };
        let inner = [(self.len, self.src_step)];
        let (slo, shi) = span(
            self.src_offset,
            &mut self
                .outer
                .iter()
                .map(|a| (a.extent, a.src))
                .chain(inner.iter().copied()),
        );
        let inner = [(self.len, 1)];
        let (dlo, dhi) = span(
            self.dst_offset,
            &mut self
                .outer
                .iter()
                .map(|a| (a.extent, a.dst))
                .chain(inner.iter().copied()),
        );
        slo >= 0 && (shi as usize) < self.src_len && dlo >= 0 && (dhi as usize) < self.dst_len
    }

    /// Elements copied.
    fn elements(&self) -> usize {
        self.rows * self.len
    }

    /// Source and destination offsets of row `r`.
    fn row_start(&self, mut r: usize) -> (usize, usize) {
        let (mut s, mut d) = (self.src_offset, self.dst_offset);
        for a in self.outer.iter().rev() {
            let i = (r % a.extent) as isize;
            r /= a.extent;
            s += i * a.src;
            d += i * a.dst;
        }
        (s as usize, d as usize)
    }

    /// Whether rows gather with a stride while the innermost outer axis is contiguous
    /// in the source: a transpose, walked in tiles.
    fn tiled(&self) -> Option<Axis> {
        let last = *self.outer.last()?;
        (self.src_step != 1 && last.src == 1 && self.len >= TILE && last.extent >= TILE)
            .then_some(last)
    }

    /// Copies `src` into `dst`, split over `threads` when large.
    pub(crate) fn run(
        &self,
        threads: &Threads,
        src: &[f32],
        dst: &mut [f32],
    ) -> Result<(), String> {
        if src.len() != self.src_len || dst.len() != self.dst_len {
            return Err(format!(
                "copy planned for {} -> {} elements, got {} -> {}",
                self.src_len,
                self.dst_len,
                src.len(),
                dst.len()
            ));
        }
        let out = SharedMut(dst.as_mut_ptr());
        // Work units: rows, or for tiled copies (group, column block) pairs.
        let units = match self.tiled() {
            Some(last) => self.rows / last.extent * last.extent.div_ceil(TILE),
            None => self.rows,
        };
        let tasks = if self.elements() < MIN_SPLIT {
            1
        } else {
            threads.count().min(units).max(1)
        };
        let chunk = units.div_ceil(tasks.max(1)).max(1);
        let task = |t: usize| {
            let (u0, u1) = (t * chunk, ((t + 1) * chunk).min(units));
            // SAFETY: the bounds were checked at plan time against these lengths, and
            // distinct units write distinct destination elements.
            unsafe { self.copy_units(src, out, u0, u1) }
        };
        if tasks <= 1 {
            task(0);
        } else {
            threads.for_each(tasks, task);
        }
        Ok(())
    }

    /// Copies work units `u0..u1`.
    ///
    /// # Safety
    /// `src` and `dst` must hold `src_len` and `dst_len` elements, and no one else may
    /// touch the destination elements of these units meanwhile.
    unsafe fn copy_units(&self, src: &[f32], dst: SharedMut, u0: usize, u1: usize) {
        let len = self.len;
        if let Some(last) = self.tiled() {
            let blocks = last.extent.div_ceil(TILE);
            for u in u0..u1 {
                let (group, block) = (u / blocks, u % blocks);
                let c0 = block * TILE;
                let c1 = (c0 + TILE).min(last.extent);
                let (s0, d0) = self.row_start(group * last.extent);
                for j0 in (0..len).step_by(TILE) {
                    let j1 = (j0 + TILE).min(len);
                    for c in c0..c1 {
                        let d = dst.at(d0 + (c as isize * last.dst) as usize);
                        for j in j0..j1 {
                            let s = s0 as isize + c as isize + j as isize * self.src_step;
                            *d.add(j) = *src.get_unchecked(s as usize);
                        }
                    }
                }
            }
            return;
        }
        for r in u0..u1 {
            let (s, d) = self.row_start(r);
            let out = std::slice::from_raw_parts_mut(dst.at(d), len);
            if self.src_step == 1 {
                out.copy_from_slice(&src[s..s + len]);
            } else {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = *src.get_unchecked((s as isize + j as isize * self.src_step) as usize);
                }
            }
        }
    }
}

/// One copy of a movement step: from the step's input `input` to its output `output`.
pub(crate) struct Copy {
    input: usize,
    output: usize,
    block: Strided,
}

/// A data-movement step: optionally fill output 0, then run the copies in order.
pub(crate) struct MoveStep {
    name: &'static str,
    fill: Option<f32>,
    copies: Vec<Copy>,
}

impl MoveStep {
    /// Runs the step; `read(k)` and `write(k)` give the data of the step's input and
    /// output `k`.
    pub(crate) fn run<'a>(
        &self,
        threads: &Threads,
        read: impl Fn(usize) -> Result<&'a [f32], String>,
        write: impl Fn(usize) -> Result<&'a mut [f32], String>,
    ) -> Result<(), String> {
        if let Some(v) = self.fill {
            write(0)?.fill(v);
        }
        for c in &self.copies {
            c.block.run(threads, read(c.input)?, write(c.output)?)?;
        }
        Ok(())
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

fn count(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn axis_of(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

/// The integers of a constant value.
fn constant_ints(ctx: &Context, v: ValueId) -> Option<Vec<i64>> {
    let c = ctx.graph.values[v].constant.as_ref()?;
    (c.dtype().is_integer()).then(|| c.to_i64_vec().ok())?
}

/// Lowers a data-movement node whose data inputs and outputs are f32 with known
/// shapes and whose index operands (slice bounds, pads, gather indices) are
/// constants. Anything else stays on the reference kernel.
pub(crate) fn lower_movement(ctx: &Context, n: NodeId) -> Result<Option<Lowering>, String> {
    let node = &ctx.graph.nodes[n];
    let shape = |v: ValueId| ctx.shapes[v].clone().filter(|_| is_f32(ctx, v));
    let Some(Some(x)) = node.inputs.first().copied() else {
        return Ok(None);
    };
    let Some(xs) = shape(x) else {
        return Ok(None);
    };
    let step = match &node.op {
        Op::Shape(ShapeOp::Concat { axis }) => concat(ctx, n, *axis),
        Op::Shape(ShapeOp::Split { axis, .. }) => split(ctx, n, &xs, *axis),
        Op::Shape(ShapeOp::Transpose { perm }) => single(ctx, n, |ys| transpose(&xs, ys, perm)),
        Op::Shape(ShapeOp::Slice { attrs }) => {
            let (starts, ends, axes, steps) = match attrs {
                Some(a) => (
                    Some(a.starts.clone()),
                    Some(a.ends.clone()),
                    a.axes.clone(),
                    None,
                ),
                None => {
                    let at = |i: usize| -> Option<Option<Vec<i64>>> {
                        match node.inputs.get(i).copied().flatten() {
                            None => Some(None),
                            Some(v) => constant_ints(ctx, v).map(Some),
                        }
                    };
                    let (Some(s), Some(e), Some(a), Some(st)) = (at(1), at(2), at(3), at(4)) else {
                        return Ok(None);
                    };
                    (s, e, a, st)
                }
            };
            let (Some(starts), Some(ends)) = (starts, ends) else {
                return Ok(None);
            };
            single(ctx, n, |ys| {
                slice(&xs, ys, &starts, &ends, axes.as_deref(), steps.as_deref())
            })
        }
        Op::Nn(NnOp::Pad(p)) => pad(ctx, n, &xs, p),
        Op::Shape(ShapeOp::Gather { axis }) => gather(ctx, n, &xs, *axis),
        _ => None,
    };
    Ok(step.map(|s| Lowering {
        kernel: Lowered::Move(s),
        fused: Vec::new(),
        scratch_len: 0,
    }))
}

/// A step with one input and one output and a single copy made by `make` from the
/// output shape.
fn single(
    ctx: &Context,
    n: NodeId,
    make: impl FnOnce(&[usize]) -> Option<(&'static str, Strided)>,
) -> Option<MoveStep> {
    let node = &ctx.graph.nodes[n];
    let y = (*node.outputs.first()?)?;
    if node.outputs.len() != 1 || !is_f32(ctx, y) {
        return None;
    }
    let (name, block) = make(ctx.shapes[y].as_ref()?)?;
    Some(MoveStep {
        name,
        fill: None,
        copies: vec![Copy {
            input: 0,
            output: 0,
            block,
        }],
    })
}

fn transpose(
    xs: &[usize],
    ys: &[usize],
    perm: &Option<Vec<i64>>,
) -> Option<(&'static str, Strided)> {
    let rank = xs.len();
    let perm: Vec<usize> = match perm {
        None => (0..rank).rev().collect(),
        Some(p) => p.iter().map(|&a| axis_of(a, rank)).collect::<Option<_>>()?,
    };
    if perm.len() != rank || ys.len() != rank || perm.iter().zip(ys).any(|(&p, &y)| xs[p] != y) {
        return None;
    }
    let st = strides(xs);
    let src: Vec<isize> = perm.iter().map(|&p| st[p]).collect();
    let block = Strided::new(ys, &src, &strides(ys), 0, 0, count(xs), count(ys))?;
    Some(("transpose", block))
}

fn slice(
    xs: &[usize],
    ys: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Option<(&'static str, Strided)> {
    let rank = xs.len();
    let k = starts.len();
    let default_axes: Vec<i64> = (0..k as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    let ones = vec![1i64; k];
    let steps = steps.unwrap_or(&ones);
    if ends.len() != k || axes.len() != k || steps.len() != k || ys.len() != rank {
        return None;
    }
    let st = strides(xs);
    let mut src = st.clone();
    let mut offset = 0isize;
    let mut extents = xs.to_vec();
    let mut seen = vec![false; rank];
    for i in 0..k {
        let a = axis_of(axes[i], rank)?;
        if std::mem::replace(&mut seen[a], true) {
            return None;
        }
        let (start, len) = slice_bounds(starts[i], ends[i], steps[i], xs[a]).ok()?;
        extents[a] = len;
        if len > 0 {
            offset += start as isize * st[a];
        }
        src[a] = st[a] * steps[i] as isize;
    }
    if extents != ys {
        return None;
    }
    let block = Strided::new(ys, &src, &strides(ys), offset, 0, count(xs), count(ys))?;
    Some(("slice", block))
}

/// Concat: each input copied into its band of the output.
fn concat(ctx: &Context, n: NodeId, axis: i64) -> Option<MoveStep> {
    let node = &ctx.graph.nodes[n];
    let y = (*node.outputs.first()?)?;
    if !is_f32(ctx, y) {
        return None;
    }
    let ys = ctx.shapes[y].as_ref()?;
    let a = axis_of(axis, ys.len())?;
    let (outer, inner) = (count(&ys[..a]), count(&ys[a + 1..]));
    let band = ys[a] * inner;
    let mut copies = Vec::new();
    let mut offset = 0usize;
    for (k, v) in node.inputs.iter().enumerate() {
        let v = (*v)?;
        if !is_f32(ctx, v) {
            return None;
        }
        let xs = ctx.shapes[v].as_ref()?;
        if xs.len() != ys.len()
            || xs
                .iter()
                .zip(ys)
                .enumerate()
                .any(|(i, (x, y))| i != a && x != y)
        {
            return None;
        }
        let b = xs[a] * inner;
        let block = Strided::new(
            &[outer, b],
            &[b as isize, 1],
            &[band as isize, 1],
            0,
            offset as isize,
            count(xs),
            count(ys),
        )?;
        copies.push(Copy {
            input: k,
            output: 0,
            block,
        });
        offset += b;
    }
    (offset == band).then_some(MoveStep {
        name: "concat",
        fill: None,
        copies,
    })
}

/// Split: each present output copied from its band of the input.
fn split(ctx: &Context, n: NodeId, xs: &[usize], axis: i64) -> Option<MoveStep> {
    let node = &ctx.graph.nodes[n];
    let a = axis_of(axis, xs.len())?;
    let (outer, inner) = (count(&xs[..a]), count(&xs[a + 1..]));
    let band = xs[a] * inner;
    let mut copies = Vec::new();
    let mut offset = 0usize;
    for (k, y) in node.outputs.iter().enumerate() {
        let Some(y) = *y else {
            // An omitted output still takes its part: its size is unknown here.
            return None;
        };
        if !is_f32(ctx, y) {
            return None;
        }
        let ys = ctx.shapes[y].as_ref()?;
        if ys.len() != xs.len()
            || ys
                .iter()
                .zip(xs)
                .enumerate()
                .any(|(i, (y, x))| i != a && x != y)
        {
            return None;
        }
        let b = ys[a] * inner;
        let block = Strided::new(
            &[outer, b],
            &[band as isize, 1],
            &[b as isize, 1],
            offset as isize,
            0,
            count(xs),
            count(ys),
        )?;
        copies.push(Copy {
            input: 0,
            output: k,
            block,
        });
        offset += b;
    }
    (offset == band).then_some(MoveStep {
        name: "split",
        fill: None,
        copies,
    })
}

/// Pad in constant mode: fill, then copy the kept part of the input inside.
fn pad(ctx: &Context, n: NodeId, xs: &[usize], p: &Pad) -> Option<MoveStep> {
    if p.mode != PadMode::Constant {
        return None;
    }
    let node = &ctx.graph.nodes[n];
    let input = |i: usize| node.inputs.get(i).copied().flatten();
    let (pads, axes, value) = if p.pads.is_some() {
        (None, None, p.value)
    } else {
        let pads = constant_ints(ctx, input(1)?)?;
        let axes = match input(3) {
            None => None,
            Some(v) => Some(constant_ints(ctx, v)?),
        };
        let value = match input(2) {
            None => 0.0,
            Some(v) => match constant_f32(ctx, v)? {
                [] => 0.0,
                [x] => *x,
                _ => return None,
            },
        };
        (Some(pads), axes, value)
    };
    let per_axis = p
        .resolve_pads(xs.len(), pads.as_deref(), axes.as_deref())
        .ok()?;
    let y = (*node.outputs.first()?)?;
    if !is_f32(ctx, y) {
        return None;
    }
    let ys = ctx.shapes[y].as_ref()?;
    let (xst, yst) = (strides(xs), strides(ys));
    let mut extents = Vec::with_capacity(xs.len());
    let (mut so, mut d_o) = (0isize, 0isize);
    for (a, &(b, e)) in per_axis.iter().enumerate() {
        if xs[a] as i64 + b + e != ys[a] as i64 {
            return None;
        }
        let kept = (xs[a] as i64 + b.min(0) + e.min(0)).max(0) as usize;
        extents.push(kept);
        so += (-b).max(0) as isize * xst[a];
        d_o += b.max(0) as isize * yst[a];
    }
    let block = Strided::new(&extents, &xst, &yst, so, d_o, count(xs), count(ys))?;
    Some(MoveStep {
        name: "pad",
        fill: Some(value),
        copies: vec![Copy {
            input: 0,
            output: 0,
            block,
        }],
    })
}

/// Gather along an axis with constant indices: one band copy per index.
fn gather(ctx: &Context, n: NodeId, xs: &[usize], axis: i64) -> Option<MoveStep> {
    let node = &ctx.graph.nodes[n];
    let indices = constant_ints(ctx, (*node.inputs.get(1)?)?)?;
    let y = (*node.outputs.first()?)?;
    if !is_f32(ctx, y) || indices.len() > MAX_GATHER_INDICES {
        return None;
    }
    let ys = ctx.shapes[y].as_ref()?;
    let a = axis_of(axis, xs.len())?;
    let (outer, inner) = (count(&xs[..a]), count(&xs[a + 1..]));
    if count(ys) != outer * indices.len() * inner {
        return None;
    }
    let mut copies = Vec::with_capacity(indices.len());
    for (j, &i) in indices.iter().enumerate() {
        let i = axis_of(i, xs[a])?;
        let block = Strided::new(
            &[outer, inner],
            &[(xs[a] * inner) as isize, 1],
            &[(indices.len() * inner) as isize, 1],
            (i * inner) as isize,
            (j * inner) as isize,
            count(xs),
            count(ys),
        )?;
        copies.push(Copy {
            input: 0,
            output: 0,
            block,
        });
    }
    Some(MoveStep {
        name: "gather",
        fill: None,
        copies,
    })
}
