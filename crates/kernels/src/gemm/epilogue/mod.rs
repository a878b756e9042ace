//! The fused epilogue of the blocked driver: bias and activation applied to one tile
//! of `C` right after its last block of `k` was accumulated, while it is in cache.

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use crate::epilogue::Activation;

/// The bias and activation for one tile, as raw pointers into the caller's slices.
///
/// `row_bias`, when not null, points at the bias of the tile's first row and holds one
/// value per row of the tile; `col_bias` likewise for columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpi {
    pub row_bias: *const f32,
    pub col_bias: *const f32,
    pub act: Activation,
}

impl TileEpi {
    /// Whether applying it changes nothing.
    pub(crate) fn is_noop(&self) -> bool {
        self.row_bias.is_null() && self.col_bias.is_null() && self.act == Activation::Identity
    }

    /// The same epilogue for the tile `rows` rows down and `cols` columns right.
    ///
    /// # Safety
    /// The offsets must stay inside the bias slices.
    pub(crate) unsafe fn offset(&self, rows: usize, cols: usize) -> TileEpi {
        // SAFETY: the caller keeps the offsets inside the slices.
        unsafe {
            TileEpi {
                row_bias: if self.row_bias.is_null() {
                    self.row_bias
                } else {
                    self.row_bias.add(rows)
                },
                col_bias: if self.col_bias.is_null() {
                    self.col_bias
                } else {
                    self.col_bias.add(cols)
                },
                act: self.act,
            }
        }
    }
}

/// Applies `epi` to the `rows×cols` tile at `c` (leading dimension `ldc`).
///
/// # Safety
/// The CPU must support the function's target features; `c` must be valid for reads
/// and writes over the tile and the biases for one value per row / column.
pub(crate) type EpiFn = unsafe fn(c: *mut f32, ldc: usize, rows: usize, cols: usize, epi: &TileEpi);

/// The activation on one value: the portable definition every tier is tested against.
#[inline]
pub(crate) fn act_scalar(x: f32, act: Activation) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }
        Activation::Clip { min, max } => x.max(min).min(max),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
        Activation::Tanh => x.tanh(),
    }
}

/// The portable [`EpiFn`].
///
/// # Safety
/// As [`EpiFn`].
pub(crate) unsafe fn apply_portable(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    epi: &TileEpi,
) {
    if epi.is_noop() {
        return;
    }
    for i in 0..rows {
        // SAFETY: the caller guarantees the tile and the biases are valid.
        unsafe {
            let rb = if epi.row_bias.is_null() {
                0.0
            } else {
                *epi.row_bias.add(i)
            };
            let row = std::slice::from_raw_parts_mut(c.add(i * ldc), cols);
            if epi.col_bias.is_null() {
                row.iter_mut()
                    .for_each(|x| *x = act_scalar(*x + rb, epi.act));
            } else {
                let cb = std::slice::from_raw_parts(epi.col_bias, cols);
                for (x, &b) in row.iter_mut().zip(cb) {
                    *x = act_scalar(*x + rb + b, epi.act);
                }
            }
        }
    }
}
