//! ONNX import and export: protobuf messages (decoded with `prost`) to and from the
//! slimnet IR.

mod error;
mod export;
mod import;
pub mod proto;
mod tensor_proto;

pub use error::OnnxError;
pub use export::{encode_model, save_model};
pub use import::{
    decode_model, load_model, read_tensor_file, MAX_OPSET, MIN_IR_VERSION, MIN_OPSET,
};
pub use tensor_proto::{tensor_from_proto, tensor_to_proto, DataDir};
