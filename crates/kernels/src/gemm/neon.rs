//! The aarch64 NEON sgemm: the blocked driver with an 8×8 micro-kernel (16 q-register
//! accumulators; per step of `k`, two loads of `A`, two of `B`, and sixteen
//! multiply-adds by lane).
//!
//! The micro-kernel is written once over a four-lane vector type ([`Lanes4`]): on
//! aarch64 it is NEON's `float32x4_t`; everywhere it is also instantiated with
//! [`Emulated`], a plain-array twin with the same operation order, which `cargo test`
//! runs on any machine, so the algorithm is tested where NEON is not available.

use super::driver::{gemm_window, Blocking, Window};
#[cfg(target_arch = "aarch64")]
use super::driver::{pack_a_full, pack_b_full};
use super::epilogue::{apply_portable, TileEpi};
#[cfg(target_arch = "aarch64")]
use super::GemmImpl;
use super::SgemmShape;

/// The kernel's name, as `slimnet kernels` prints it.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) const NAME: &str = "sgemm_neon_8x8";

const MR: usize = 8;
const NR: usize = 8;
#[cfg(target_arch = "aarch64")]
const BLOCKING: Blocking = Blocking {
    mc: 16 * MR,
    kc: 256,
    nc: 256 * NR,
};

/// Four f32 lanes and the operations the micro-kernel needs.
pub(crate) trait Lanes4: Copy {
    fn zero() -> Self;
    /// # Safety
    /// `p` valid for four reads.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` valid for four writes.
    unsafe fn store(self, p: *mut f32);
    /// `acc + b * a[L]`.
    fn fma_lane<const L: i32>(acc: Self, b: Self, a: Self) -> Self;
    /// `acc + b * s`.
    fn fma_scalar(acc: Self, b: Self, s: f32) -> Self;
}

/// The portable twin of `float32x4_t`.
#[derive(Clone, Copy)]
pub(crate) struct Emulated([f32; 4]);

impl Lanes4 for Emulated {
    fn zero() -> Self {
        Emulated([0.0; 4])
    }
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees four readable values.
        Emulated(unsafe { [*p, *p.add(1), *p.add(2), *p.add(3)] })
    }
    unsafe fn store(self, p: *mut f32) {
        for (i, v) in self.0.into_iter().enumerate() {
            // SAFETY: the caller guarantees four writable values.
            unsafe { *p.add(i) = v };
        }
    }
    fn fma_lane<const L: i32>(acc: Self, b: Self, a: Self) -> Self {
        let s = a.0[L as usize];
        Emulated(std::array::from_fn(|i| b.0[i].mul_add(s, acc.0[i])))
    }
    fn fma_scalar(acc: Self, b: Self, s: f32) -> Self {
        Emulated(std::array::from_fn(|i| b.0[i].mul_add(s, acc.0[i])))
    }
}

#[cfg(target_arch = "aarch64")]
mod native {
    use std::arch::aarch64::*;

    use super::Lanes4;

    impl Lanes4 for float32x4_t {
        fn zero() -> Self {
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe { vdupq_n_f32(0.0) }
        }
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller guarantees four readable values.
            unsafe { vld1q_f32(p) }
        }
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller guarantees four writable values.
            unsafe { vst1q_f32(p, self) }
        }
        fn fma_lane<const L: i32>(acc: Self, b: Self, a: Self) -> Self {
            // SAFETY: NEON is part of the aarch64 baseline; `L` is below 4.
            unsafe { vfmaq_laneq_f32::<L>(acc, b, a) }
        }
        fn fma_scalar(acc: Self, b: Self, s: f32) -> Self {
            // SAFETY: NEON is part of the aarch64 baseline.
            unsafe { vfmaq_n_f32(acc, b, s) }
        }
    }
}

/// The 8×8 micro-kernel over `V`; see [`super::driver::MicroKernel`] for the contract.
///
/// # Safety
/// As [`super::driver::MicroKernel`].
#[inline(always)]
unsafe fn kernel_8x8<V: Lanes4>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    let mut acc = [[V::zero(); 2]; MR];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        // SAFETY: packed panels hold `kc*MR` and `kc*NR` values.
        let (a0, a1, b0, b1) = unsafe {
            (
                V::load(ap),
                V::load(ap.add(4)),
                V::load(bp),
                V::load(bp.add(4)),
            )
        };
        macro_rules! rows {
            ($($row:literal $src:ident $lane:literal),*) => {$(
                acc[$row][0] = V::fma_lane::<$lane>(acc[$row][0], b0, $src);
                acc[$row][1] = V::fma_lane::<$lane>(acc[$row][1], b1, $src);
            )*};
        }
        rows!(0 a0 0, 1 a0 1, 2 a0 2, 3 a0 3, 4 a1 0, 5 a1 1, 6 a1 2, 7 a1 3);
        // SAFETY: still inside the panels (advanced `kc` times in all).
        unsafe {
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: the tile is `MR×NR` inside `C` with leading dimension `ldc`.
        unsafe {
            let cp = c.add(i * ldc);
            for (h, &v) in row.iter().enumerate() {
                let p = cp.add(4 * h);
                let out = if beta == 0.0 {
                    v
                } else {
                    V::fma_scalar(v, V::load(p), beta)
                };
                out.store(p);
            }
        }
    }
    // SAFETY: forwarded; the tile was just written.
    if let Some(e) = unsafe { epi.as_ref() } {
        unsafe { apply_portable(c, ldc, MR, NR, e) };
    }
}

/// The micro-kernel on the portable twin (same operation order as NEON's).
///
/// # Safety
/// As [`super::driver::MicroKernel`].
unsafe fn kernel_emulated(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    // SAFETY: forwarded from the caller.
    unsafe { kernel_8x8::<Emulated>(kc, a, b, c, ldc, beta, epi) }
}

/// The micro-kernel on NEON.
///
/// # Safety
/// As [`super::driver::MicroKernel`].
#[cfg(target_arch = "aarch64")]
unsafe fn kernel_neon(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    beta: f32,
    epi: *const TileEpi,
) {
    // SAFETY: forwarded from the caller.
    unsafe { kernel_8x8::<std::arch::aarch64::float32x4_t>(kc, a, b, c, ldc, beta, epi) }
}

/// The blocked sgemm with the portable twin of the NEON micro-kernel and explicit
/// cache blocks; `shape` must have been checked against the slices.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn sgemm_emulated_with(
    shape: &SgemmShape,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
    blk: Blocking,
) {
    let w = Window::plain(shape, a, b, beta, c);
    // SAFETY: the twin needs no CPU feature; the caller checked the shape.
    unsafe { gemm_window::<MR, NR>(&w, blk, kernel_emulated, apply_portable) }
}

/// `C = A·B + beta·C` with the NEON micro-kernel; the contract is
/// [`crate::KernelTable::sgemm`]'s, and `shape` must have been checked.
#[cfg(target_arch = "aarch64")]
pub(crate) fn sgemm(shape: &SgemmShape, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let w = Window::plain(shape, a, b, beta, c);
    // SAFETY: NEON is part of the aarch64 baseline; the caller checked the shape.
    unsafe { run(&w, BLOCKING) }
}

/// The driver with the NEON micro-kernel.
///
/// # Safety
/// As [`gemm_window`].
#[cfg(target_arch = "aarch64")]
unsafe fn run(w: &Window, blk: Blocking) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_window::<MR, NR>(w, blk, kernel_neon, apply_portable) }
}

/// This tier's blocked sgemm.
#[cfg(target_arch = "aarch64")]
pub(crate) const IMPL: GemmImpl = GemmImpl {
    name: NAME,
    mr: MR,
    nr: NR,
    blocking: BLOCKING,
    run,
    pack_a: pack_a_full::<MR>,
    pack_b: pack_b_full::<NR>,
};
