//! Binary ops with the broadcasting layouts that ONNX graphs need most: same shape,
//! a scalar on either side, and one operand repeated along the outer and inner axes.

use std::cell::Cell;

use super::simd::{simd_entries, Simd};
use super::{split_range, PAR_MIN_CHUNK};
use crate::error::KernelError;
use crate::parallel::Threads;
use crate::table::KernelTable;

/// A binary operation on f32 values, `a op b`.
///
/// Results are those of plain f32 arithmetic (correctly rounded). `Max` and `Min`
/// propagate NaN from either operand (numpy's `maximum`/`minimum`, which ONNX
/// follows); when the operands are `+0.0` and `-0.0` either may be returned. `Pow` is
/// `f32::powf` and runs one value at a time (except `x^2` with a scalar exponent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// The larger of `a` and `b`, NaN if either is NaN.
    Max,
    /// The smaller of `a` and `b`, NaN if either is NaN.
    Min,
    /// `a` to the power `b`.
    Pow,
}

impl BinaryOp {
    /// Every op, for tests and listings.
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
    ];

    /// `a op b` for one pair: the reference the kernels follow.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Min => a.min(b),
            BinaryOp::Pow => a.powf(b),
        }
    }
}

/// How the operands of a binary op map onto its output.
///
/// The `Mid` layouts view the output as `[outer, mid, inner]` (row-major): the full
/// operand has that shape, and the small one holds `mid` values, value `m` used for
/// every `out[o][m][i]`. Per-channel NCHW (`x · s[1,C,1,1]`) is
/// `MidB { outer: N, mid: C, inner: H·W }`; a bias on the last axis (`x + b[D]`) is
/// `MidB { outer: rows, mid: D, inner: 1 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryLayout {
    /// `a`, `b` and the output have the same length.
    Same,
    /// `a` is one value; `b` and the output have the same length.
    ScalarA,
    /// `b` is one value; `a` and the output have the same length.
    ScalarB,
    /// `a` holds `mid` values; `b` and the output hold `outer·mid·inner`.
    MidA {
        outer: usize,
        mid: usize,
        inner: usize,
    },
    /// `b` holds `mid` values; `a` and the output hold `outer·mid·inner`.
    MidB {
        outer: usize,
        mid: usize,
        inner: usize,
    },
}

impl BinaryLayout {
    /// Checks the operand and output lengths against the layout.
    pub fn check(&self, a_len: usize, b_len: usize, out_len: usize) -> Result<(), KernelError> {
        let bad = |what: String| {
            Err(KernelError::BadShape(format!(
                "binary {self:?}: {what} (a has {a_len} elements, b {b_len}, output {out_len})"
            )))
        };
        let (small, full, small_name) = match *self {
            BinaryLayout::Same if a_len == b_len && b_len == out_len => return Ok(()),
            BinaryLayout::Same => return bad("lengths differ".into()),
            BinaryLayout::ScalarA => (a_len, b_len, "a"),
            BinaryLayout::ScalarB => (b_len, a_len, "b"),
            BinaryLayout::MidA { .. } => (a_len, b_len, "a"),
            BinaryLayout::MidB { .. } => (b_len, a_len, "b"),
        };
        let (want_small, want_full) = match *self {
            BinaryLayout::MidA { outer, mid, inner } | BinaryLayout::MidB { outer, mid, inner } => {
                match outer.checked_mul(mid).and_then(|x| x.checked_mul(inner)) {
                    Some(total) => (mid, total),
                    None => return bad("outer·mid·inner overflows".into()),
                }
            }
            _ => (1, out_len),
        };
        if small != want_small {
            return bad(format!("{small_name} should hold {want_small} elements"));
        }
        if full != want_full || out_len != want_full {
            return bad(format!(
                "the full operand and the output should hold {want_full} elements"
            ));
        }
        Ok(())
    }
}

/// One binary op call, its lengths checked against its layout. `out` may equal the
/// full operand's pointer (in-place use), never overlap it otherwise.
pub(crate) struct BinJob {
    a: *const f32,
    b: *const f32,
    out: *mut f32,
    layout: BinaryLayout,
}

// SAFETY: tasks share a job to write disjoint output ranges; the operands are only read.
unsafe impl Sync for BinJob {}
unsafe impl Send for BinJob {}

/// The signature of the binary slot: computes output elements `start..end` of a job.
pub(crate) type BinaryFn = unsafe fn(BinaryOp, &BinJob, usize, usize);

trait Op {
    fn v<S: Simd>(a: S::V, b: S::V) -> S::V;
}

macro_rules! simple_op {
    ($name:ident, $f:ident) => {
        struct $name;
        impl Op for $name {
            #[inline(always)]
            fn v<S: Simd>(a: S::V, b: S::V) -> S::V {
                S::$f(a, b)
            }
        }
    };
}
simple_op!(AddOp, add);
simple_op!(SubOp, sub);
simple_op!(MulOp, mul);
simple_op!(DivOp, div);

struct MaxOp;
impl Op for MaxOp {
    #[inline(always)]
    fn v<S: Simd>(a: S::V, b: S::V) -> S::V {
        // `max` already returns `b` when `b` is NaN.
        S::select(S::is_nan(a), a, S::max(a, b))
    }
}

struct MinOp;
impl Op for MinOp {
    #[inline(always)]
    fn v<S: Simd>(a: S::V, b: S::V) -> S::V {
        S::select(S::is_nan(a), a, S::min(a, b))
    }
}

/// # Safety
/// The job's lengths were checked and `start <= end <= ` its output length.
#[inline(always)]
unsafe fn binary_kernel<S: Simd>(op: BinaryOp, job: &BinJob, start: usize, end: usize) {
    unsafe {
        match op {
            BinaryOp::Add => run::<S, AddOp>(job, start, end),
            BinaryOp::Sub => run::<S, SubOp>(job, start, end),
            BinaryOp::Mul => run::<S, MulOp>(job, start, end),
            BinaryOp::Div => run::<S, DivOp>(job, start, end),
            BinaryOp::Max => run::<S, MaxOp>(job, start, end),
            BinaryOp::Min => run::<S, MinOp>(job, start, end),
            BinaryOp::Pow => run_scalar(op, job, start, end),
        }
    }
}

simd_entries!(binary_kernel(op: BinaryOp, job: &BinJob, start: usize, end: usize));

/// `out[i] = a[i] op b[i]` for `n` values.
#[inline(always)]
unsafe fn vv<S: Simd, O: Op>(a: *const f32, b: *const f32, out: *mut f32, n: usize) {
    let mut i = 0;
    unsafe {
        while i + S::LANES <= n {
            let r = O::v::<S>(S::load(a.add(i)), S::load(b.add(i)));
            S::store(out.add(i), r);
            i += S::LANES;
        }
        if i < n {
            let k = n - i;
            let r = O::v::<S>(S::load_part(a.add(i), k), S::load_part(b.add(i), k));
            S::store_part(out.add(i), k, r);
        }
    }
}

/// `out[i] = a[i] op s` for `n` values.
#[inline(always)]
unsafe fn vs<S: Simd, O: Op>(a: *const f32, s: f32, out: *mut f32, n: usize) {
    let s = S::splat(s);
    let mut i = 0;
    unsafe {
        while i + S::LANES <= n {
            S::store(out.add(i), O::v::<S>(S::load(a.add(i)), s));
            i += S::LANES;
        }
        if i < n {
            let k = n - i;
            S::store_part(out.add(i), k, O::v::<S>(S::load_part(a.add(i), k), s));
        }
    }
}

/// `out[i] = s op b[i]` for `n` values.
#[inline(always)]
unsafe fn sv<S: Simd, O: Op>(s: f32, b: *const f32, out: *mut f32, n: usize) {
    let s = S::splat(s);
    let mut i = 0;
    unsafe {
        while i + S::LANES <= n {
            S::store(out.add(i), O::v::<S>(s, S::load(b.add(i))));
            i += S::LANES;
        }
        if i < n {
            let k = n - i;
            S::store_part(out.add(i), k, O::v::<S>(s, S::load_part(b.add(i), k)));
        }
    }
}

/// Output elements `start..end` of `job`, vectorized along runs that share one
/// broadcast pattern.
#[inline(always)]
unsafe fn run<S: Simd, O: Op>(job: &BinJob, start: usize, end: usize) {
    let (a, b, out, n) = (job.a, job.b, job.out, end - start);
    unsafe {
        match job.layout {
            BinaryLayout::Same => vv::<S, O>(a.add(start), b.add(start), out.add(start), n),
            BinaryLayout::ScalarA => sv::<S, O>(*a, b.add(start), out.add(start), n),
            BinaryLayout::ScalarB => vs::<S, O>(a.add(start), *b, out.add(start), n),
            BinaryLayout::MidA { mid, inner, .. } | BinaryLayout::MidB { mid, inner, .. } => {
                let small_is_a = matches!(job.layout, BinaryLayout::MidA { .. });
                let mut i = start;
                while i < end {
                    if inner == 1 {
                        let m = i % mid;
                        let len = (mid - m).min(end - i);
                        if small_is_a {
                            vv::<S, O>(a.add(m), b.add(i), out.add(i), len);
                        } else {
                            vv::<S, O>(a.add(i), b.add(m), out.add(i), len);
                        }
                        i += len;
                    } else {
                        let m = (i / inner) % mid;
                        let len = (inner - i % inner).min(end - i);
                        if small_is_a {
                            sv::<S, O>(*a.add(m), b.add(i), out.add(i), len);
                        } else {
                            vs::<S, O>(a.add(i), *b.add(m), out.add(i), len);
                        }
                        i += len;
                    }
                }
            }
        }
    }
}

/// Output elements `start..end` of `job`, one at a time with [`BinaryOp::apply`].
unsafe fn run_scalar(op: BinaryOp, job: &BinJob, start: usize, end: usize) {
    for i in start..end {
        let (ia, ib) = match job.layout {
            BinaryLayout::Same => (i, i),
            BinaryLayout::ScalarA => (0, i),
            BinaryLayout::ScalarB => (i, 0),
            BinaryLayout::MidA { mid, inner, .. } => ((i / inner) % mid, i),
            BinaryLayout::MidB { mid, inner, .. } => (i, (i / inner) % mid),
        };
        // SAFETY: the layout was checked against the lengths; `i` is below the output's.
        unsafe { *job.out.add(i) = op.apply(*job.a.add(ia), *job.b.add(ib)) }
    }
}

thread_local! {
    /// Storage for expanded small operands, reused by later calls on this thread.
    static EXPANDED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Below this many repeats, a small operand is expanded so the kernel can stream it.
const EXPAND_INNER: usize = 16;

impl KernelTable {
    /// `out[i] = a[..] op b[..]`, the operands mapped onto the output by `layout`
    /// (see [`BinaryLayout`] and, for the results, [`BinaryOp`]).
    ///
    /// Fails with [`KernelError::BadShape`] when the lengths do not fit the layout;
    /// nothing is written then.
    pub fn binary(
        &self,
        op: BinaryOp,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        layout: BinaryLayout,
    ) -> Result<(), KernelError> {
        self.binary_par_opt(op, a, b, out, layout, None)
    }

    /// [`KernelTable::binary`] split over `threads` when the output is long (at least
    /// 65,536 values per task).
    pub fn binary_par(
        &self,
        op: BinaryOp,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        layout: BinaryLayout,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        self.binary_par_opt(op, a, b, out, layout, Some(threads))
    }

    /// [`KernelTable::binary`] with the output written over one operand: `acc` is `a`
    /// when `acc_is_a`, else `b`, and `other` is the other operand. `acc` must be the
    /// full-size operand of `layout` (its length is the output's).
    pub fn binary_inplace(
        &self,
        op: BinaryOp,
        acc: &mut [f32],
        other: &[f32],
        layout: BinaryLayout,
        acc_is_a: bool,
    ) -> Result<(), KernelError> {
        self.binary_inplace_opt(op, acc, other, layout, acc_is_a, None)
    }

    /// [`KernelTable::binary_inplace`] split over `threads` as
    /// [`KernelTable::binary_par`] is.
    pub fn binary_inplace_par(
        &self,
        op: BinaryOp,
        acc: &mut [f32],
        other: &[f32],
        layout: BinaryLayout,
        acc_is_a: bool,
        threads: &Threads,
    ) -> Result<(), KernelError> {
        self.binary_inplace_opt(op, acc, other, layout, acc_is_a, Some(threads))
    }

    fn binary_par_opt(
        &self,
        op: BinaryOp,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        layout: BinaryLayout,
        threads: Option<&Threads>,
    ) -> Result<(), KernelError> {
        layout.check(a.len(), b.len(), out.len())?;
        // SAFETY: checked above; `out` is a distinct borrow, so no operand overlaps it.
        unsafe {
            self.binary_raw(
                op,
                a.as_ptr(),
                b.as_ptr(),
                out.as_mut_ptr(),
                out.len(),
                layout,
                threads,
            )
        };
        Ok(())
    }

    fn binary_inplace_opt(
        &self,
        op: BinaryOp,
        acc: &mut [f32],
        other: &[f32],
        layout: BinaryLayout,
        acc_is_a: bool,
        threads: Option<&Threads>,
    ) -> Result<(), KernelError> {
        let n = acc.len();
        let (a_len, b_len) = if acc_is_a {
            (n, other.len())
        } else {
            (other.len(), n)
        };
        layout.check(a_len, b_len, n)?;
        let p = acc.as_mut_ptr();
        let (a, b) = if acc_is_a {
            (p as *const f32, other.as_ptr())
        } else {
            (other.as_ptr(), p as *const f32)
        };
        // SAFETY: checked above. `acc` has the output's length, so it is either the full
        // operand (read at the index it is written) or a small operand that the layout
        // maps one-to-one onto the output (one element, or `outer·inner == 1`).
        unsafe { self.binary_raw(op, a, b, p, n, layout, threads) };
        Ok(())
    }

    /// # Safety
    /// `layout` was checked against the lengths behind the pointers; `out` holds `n`
    /// values and equals or is disjoint from each operand.
    #[allow(clippy::too_many_arguments)]
    unsafe fn binary_raw(
        &self,
        op: BinaryOp,
        a: *const f32,
        b: *const f32,
        out: *mut f32,
        n: usize,
        layout: BinaryLayout,
        threads: Option<&Threads>,
    ) {
        let mut job = BinJob { a, b, out, layout };
        let mut op = op;
        let mut expanded = EXPANDED.with(Cell::take);
        match layout {
            // SAFETY: a scalar `b` holds one value.
            BinaryLayout::ScalarB if op == BinaryOp::Pow && unsafe { *b } == 2.0 => {
                op = BinaryOp::Mul;
                job = BinJob {
                    a,
                    b: a,
                    out,
                    layout: BinaryLayout::Same,
                };
            }
            BinaryLayout::MidA { outer, mid, inner } | BinaryLayout::MidB { outer, mid, inner }
                if inner > 1 && inner < EXPAND_INNER =>
            {
                let small_is_a = matches!(layout, BinaryLayout::MidA { .. });
                let small = if small_is_a { a } else { b };
                // SAFETY: the small operand holds `mid` values.
                let small = unsafe { std::slice::from_raw_parts(small, mid) };
                expanded.clear();
                expanded.extend(small.iter().flat_map(|&v| std::iter::repeat_n(v, inner)));
                let wide = (outer, mid * inner, 1);
                job.layout = if small_is_a {
                    job.a = expanded.as_ptr();
                    BinaryLayout::MidA {
                        outer: wide.0,
                        mid: wide.1,
                        inner: wide.2,
                    }
                } else {
                    job.b = expanded.as_ptr();
                    BinaryLayout::MidB {
                        outer: wide.0,
                        mid: wide.1,
                        inner: wide.2,
                    }
                };
            }
            _ => {}
        }
        let f = self.eltwise.binary;
        let job = &job;
        // SAFETY: every task gets a disjoint output range within `0..n`.
        split_range(threads, n, PAR_MIN_CHUNK, 16, |s, e| unsafe {
            f(op, job, s, e)
        });
        EXPANDED.with(|cell| cell.set(expanded));
    }
}
