//! Compression passes over the slimnet IR.
//!
//! [`quantize`] is post-training quantization: it calibrates activation ranges on
//! real data ([`calibrate`]), rewrites the graph into the standard ONNX QDQ form
//! (QuantizeLinear/DequantizeLinear around each quantized Conv, MatMul and Gemm), and
//! keeps in float the layers whose quantization hurts the model's outputs most until
//! a fidelity target is met.

pub mod calibrate;
mod error;
pub mod quantize;

pub use error::CompressError;
pub use quantize::{quantize, LayerStatus, QuantizeOptions, QuantizeReport, QuantizedModel};
