//! Scale and zero point of an 8-bit quantization.

/// How real values map to 8-bit integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantScheme {
    /// uint8 with a zero point anywhere in 0..=255: the whole range is used.
    Asymmetric,
    /// int8 with zero point 0 and a range symmetric around 0.
    Symmetric,
}

/// `real = scale · (q - zero_point)`, with `q` in `qmin..=qmax`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
    pub qmin: i32,
    pub qmax: i32,
}

impl QuantParams {
    /// Parameters whose representable range covers `[lo, hi]` (extended to hold 0, so
    /// that zero is exact). A degenerate range gets scale 1.
    pub fn from_range(lo: f32, hi: f32, scheme: QuantScheme) -> QuantParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        match scheme {
            QuantScheme::Asymmetric => {
                let span = hi - lo;
                let scale = if span > 0.0 && span.is_finite() {
                    span / 255.0
                } else {
                    1.0
                };
                let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as i32;
                QuantParams {
                    scale,
                    zero_point,
                    qmin: 0,
                    qmax: 255,
                }
            }
            QuantScheme::Symmetric => {
                let t = (-lo).max(hi);
                let scale = if t > 0.0 && t.is_finite() {
                    t / 127.0
                } else {
                    1.0
                };
                QuantParams {
                    scale,
                    zero_point: 0,
                    qmin: -128,
                    qmax: 127,
                }
            }
        }
    }

    /// The real values of the smallest and largest integers.
    pub fn representable(&self) -> (f32, f32) {
        (
            self.scale * (self.qmin - self.zero_point) as f32,
            self.scale * (self.qmax - self.zero_point) as f32,
        )
    }

    /// `saturate(round_half_even(x / scale) + zero_point)`, as ONNX QuantizeLinear.
    pub fn quantize(&self, x: f32) -> i32 {
        let q = (x / self.scale).round_ties_even() + self.zero_point as f32;
        q.clamp(self.qmin as f32, self.qmax as f32) as i32
    }

    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}
