//! Softmax and log-softmax over the last axis, in place.

use super::check_matrix;
use super::math;
use super::simd::{simd_entries, Simd};
use crate::error::KernelError;
use crate::table::KernelTable;

/// The signature of the softmax slot: `rows` rows of `cols` values at `x`, in place;
/// `log` selects log-softmax.
pub(crate) type SoftmaxFn = unsafe fn(*mut f32, usize, usize, bool);

/// # Safety
/// `x` is valid for reading and writing `rows·cols` values.
#[inline(always)]
unsafe fn softmax_kernel<S: Simd>(x: *mut f32, rows: usize, cols: usize, log: bool) {
    let l = S::LANES;
    let full = cols - cols % l;
    for r in 0..rows {
        unsafe {
            let p = x.add(r * cols);
            let mut vmax = S::splat(f32::NEG_INFINITY);
            let mut i = 0;
            while i < full {
                vmax = S::max(vmax, S::load(p.add(i)));
                i += l;
            }
            let mut m = S::reduce_max(vmax);
            for j in full..cols {
                let v = *p.add(j);
                m = if v > m { v } else { m };
            }
            let mv = S::splat(m);
            let mut vsum = S::splat(0.0);
            i = 0;
            while i < full {
                let e = math::exp::<S>(S::sub(S::load(p.add(i)), mv));
                if !log {
                    S::store(p.add(i), e);
                }
                vsum = S::add(vsum, e);
                i += l;
            }
            let mut sum = S::reduce_add(vsum);
            if full < cols {
                let k = cols - full;
                let e = math::exp::<S>(S::sub(S::load_part(p.add(full), k), mv));
                let mut buf = [0f32; 16];
                S::store(buf.as_mut_ptr(), e);
                sum += buf[..k].iter().sum::<f32>();
                if !log {
                    S::store_part(p.add(full), k, e);
                }
            }
            if log {
                let ls = S::splat(sum.ln());
                i = 0;
                while i < full {
                    S::store(p.add(i), S::sub(S::sub(S::load(p.add(i)), mv), ls));
                    i += l;
                }
                if full < cols {
                    let k = cols - full;
                    let v = S::sub(S::sub(S::load_part(p.add(full), k), mv), ls);
                    S::store_part(p.add(full), k, v);
                }
            } else {
                let inv = S::splat(1.0 / sum);
                i = 0;
                while i < full {
                    S::store(p.add(i), S::mul(S::load(p.add(i)), inv));
                    i += l;
                }
                if full < cols {
                    let k = cols - full;
                    S::store_part(p.add(full), k, S::mul(S::load_part(p.add(full), k), inv));
                }
            }
        }
    }
}

simd_entries!(softmax_kernel(x: *mut f32, rows: usize, cols: usize, log: bool));

impl KernelTable {
    /// Softmax over the last axis of the `[rows, cols]` buffer `x`, in place:
    /// `e^(x - max) / sum(e^(x - max))` per row.
    ///
    /// Each result is within a relative `1e-6 + (cols + |x - max|)·6e-8` of the exact
    /// value (the last term is the rounding of `x - max`; the exponentials are
    /// [`UnaryOp::Exp`](super::UnaryOp::Exp)'s; the sum is accumulated
    /// in f32, one partial sum per vector lane). A row holding NaN or `+inf`, or only
    /// `-inf`, becomes NaN. Fails with [`KernelError::BadShape`] when
    /// `rows·cols != x.len()`.
    pub fn softmax(&self, x: &mut [f32], rows: usize, cols: usize) -> Result<(), KernelError> {
        check_matrix("softmax", x.len(), rows, cols)?;
        // SAFETY: `x` holds `rows·cols` values.
        unsafe { (self.eltwise.softmax)(x.as_mut_ptr(), rows, cols, false) }
        Ok(())
    }

    /// Log-softmax over the last axis of the `[rows, cols]` buffer `x`, in place:
    /// `x - max - ln(sum(e^(x - max)))` per row.
    ///
    /// Each result is within an absolute `(1 + |x - max|)·1e-6 + cols·6e-8` of the
    /// exact value; rows with NaN, `+inf` or only `-inf` become NaN as in
    /// [`KernelTable::softmax`]. Fails with [`KernelError::BadShape`] when
    /// `rows·cols != x.len()`.
    pub fn log_softmax(&self, x: &mut [f32], rows: usize, cols: usize) -> Result<(), KernelError> {
        check_matrix("log_softmax", x.len(), rows, cols)?;
        // SAFETY: `x` holds `rows·cols` values.
        unsafe { (self.eltwise.softmax)(x.as_mut_ptr(), rows, cols, true) }
        Ok(())
    }
}
