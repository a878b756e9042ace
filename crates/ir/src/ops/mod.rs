//! Operators: one typed struct (or unit variant) per ONNX operator, grouped by
//! family. Each family enum offers the same four functions:
//!
//! - `parse(ctx, attrs) -> Option<Result<Self, AttrError>>`: `None` when the op type is
//!   not in this family; otherwise the typed op with every attribute default filled in
//!   from the ONNX spec for `ctx.opset`.
//! - `op_type() -> &'static str`: the ONNX op type.
//! - `attributes() -> Vec<(String, Attr)>`: the attributes to write back on export.
//! - `infer(inputs) -> Result<Vec<ValueInfo>, String>`: output dtypes and shapes from
//!   what is known of the inputs; unknown dims or ranks where they cannot be derived.

pub mod attention;
mod catalog;
pub mod control;
pub mod elementwise;
pub mod nn;
pub mod quant;
pub mod reduce;
pub mod rnn;
pub mod shape;
pub mod signal;
pub mod util;
pub mod vision;

use crate::{Attr, AttrError, Attributes, Graph, InferInput, IrError, ValueInfo};

pub use attention::AttentionOp;
pub use catalog::{supported_operators, ONNX_OPERATORS};
pub use control::ControlOp;
pub use elementwise::ElementwiseOp;
pub use nn::NnOp;
pub use quant::QuantOp;
pub use reduce::ReduceOp;
pub use rnn::RnnOp;
pub use shape::ShapeOp;
pub use signal::SignalOp;
pub use vision::VisionOp;

/// What a parser knows of the node being parsed.
#[derive(Clone, Copy, Debug)]
pub struct NodeContext<'a> {
    pub name: &'a str,
    pub op_type: &'a str,
    /// `""` for the default ONNX domain.
    pub domain: &'a str,
    /// Version of the operator set of the node's domain.
    pub opset: i64,
    /// Number of inputs as written (including trailing omitted ones).
    pub num_inputs: usize,
    pub num_outputs: usize,
}

/// An operator with its typed attributes.
#[derive(Clone, Debug)]
pub enum Op {
    Elementwise(ElementwiseOp),
    Reduce(ReduceOp),
    Nn(NnOp),
    Rnn(RnnOp),
    Shape(ShapeOp),
    Attention(AttentionOp),
    Signal(SignalOp),
    Vision(VisionOp),
    Quant(QuantOp),
    Control(ControlOp),
}

macro_rules! each_family {
    ($self:expr, $op:ident => $body:expr) => {
        match $self {
            Op::Elementwise($op) => $body,
            Op::Reduce($op) => $body,
            Op::Nn($op) => $body,
            Op::Rnn($op) => $body,
            Op::Shape($op) => $body,
            Op::Attention($op) => $body,
            Op::Signal($op) => $body,
            Op::Vision($op) => $body,
            Op::Quant($op) => $body,
            Op::Control($op) => $body,
        }
    };
}

impl Op {
    /// Parses a node's op type and attributes (subgraph attributes are moved out of
    /// `attrs`). Unknown operators and domains are [`IrError::UnsupportedOp`].
    pub fn parse(ctx: &NodeContext, attrs: &mut Attributes) -> Result<Op, IrError> {
        let wrap = |r: Result<Op, AttrError>| {
            r.map_err(|error| IrError::Attribute {
                node: ctx.name.to_string(),
                op_type: ctx.op_type.to_string(),
                error,
            })
        };
        if ctx.domain.is_empty() || ctx.domain == "ai.onnx" {
            if let Some(r) = ElementwiseOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Elementwise));
            }
            if let Some(r) = ReduceOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Reduce));
            }
            if let Some(r) = NnOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Nn));
            }
            if let Some(r) = RnnOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Rnn));
            }
            if let Some(r) = ShapeOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Shape));
            }
            if let Some(r) = AttentionOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Attention));
            }
            if let Some(r) = SignalOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Signal));
            }
            if let Some(r) = VisionOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Vision));
            }
            if let Some(r) = QuantOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Quant));
            }
            if let Some(r) = ControlOp::parse(ctx, attrs) {
                return wrap(r.map(Op::Control));
            }
        }
        Err(IrError::UnsupportedOp {
            node: ctx.name.to_string(),
            op_type: ctx.op_type.to_string(),
            domain: if ctx.domain.is_empty() {
                String::new()
            } else {
                format!("{}.", ctx.domain)
            },
            opset: ctx.opset,
        })
    }

    pub fn op_type(&self) -> &'static str {
        each_family!(self, op => op.op_type())
    }

    /// ONNX domain of the op (`""` for the default domain).
    pub fn domain(&self) -> &'static str {
        ""
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        each_family!(self, op => op.attributes())
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        each_family!(self, op => op.infer(inputs))
    }

    /// Subgraphs owned by this op (If branches, Loop body).
    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            Op::Control(c) => c.subgraphs(),
            _ => Vec::new(),
        }
    }

    pub fn subgraphs_mut(&mut self) -> Vec<&mut Graph> {
        match self {
            Op::Control(c) => c.subgraphs_mut(),
            _ => Vec::new(),
        }
    }
}
