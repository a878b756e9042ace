//! slimnet: make trained neural networks light enough for edge devices, and run them
//! there.
//!
//! This crate gathers the layers (`tensor`, `kernels`, `ir`, `onnx`, `runtime`,
//! `compress`) and adds the
//! model analysis that `slimnet inspect` reports.

pub mod analysis;

pub use slimnet_compress as compress;
pub use slimnet_ir as ir;
pub use slimnet_kernels as kernels;
pub use slimnet_onnx as onnx;
pub use slimnet_runtime as runtime;
pub use slimnet_tensor as tensor;
