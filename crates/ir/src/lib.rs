//! The graph IR of slimnet: values with dtypes and shapes, nodes holding one typed
//! struct per operator, shape and dtype inference, topological order and patches
//! that let passes replace parts of a graph.
//!
//! The IR knows nothing of protobuf; the `slimnet-onnx` crate maps ONNX to and from it.

mod attr;
mod error;
mod graph;
mod infer;
pub mod ops;
mod patch;
mod value;

pub use attr::{Attr, Attributes};
pub use error::{AttrError, IrError};
pub use graph::{Graph, Model, Node, NodeId};
pub use infer::{infer_shapes, ConstantFolder, InferInput};
pub use ops::{NodeContext, Op};
pub use patch::Patch;
pub use value::{Dim, Value, ValueId, ValueInfo};
