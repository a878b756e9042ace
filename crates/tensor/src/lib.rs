//! Tensors, element types and shapes: the bottom layer of slimnet.
//!
//! A [`Tensor`] owns its elements in a typed vector ([`TensorData`]) plus a shape.
//! Every other layer builds on these types; nothing here knows about graphs or ONNX.

mod dtype;
mod element;
mod error;
pub mod npy;
mod shape;
mod tensor;

pub use dtype::DType;
pub use element::Element;
pub use error::TensorError;
pub use half::{bf16, f16};
pub use shape::{broadcast_shapes, element_count, strides_of, BroadcastIndexer};
pub use tensor::{Tensor, TensorData};
