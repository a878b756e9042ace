//! Elementwise operators: unary math and activations, broadcasting binary
//! arithmetic, comparisons and logic, `Where`, `Cast`, `Clip`.

use crate::ops::util::{broadcast_all, input, like};
use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// Elementwise operators.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementwiseOp {
    Relu,
    LeakyRelu { alpha: f32 },
    Add,
}

impl ElementwiseOp {
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        let op = match ctx.op_type {
            "Relu" => Ok(ElementwiseOp::Relu),
            "LeakyRelu" => attrs.float("alpha", 0.01).map(|alpha| ElementwiseOp::LeakyRelu { alpha }),
            "Add" => Ok(ElementwiseOp::Add),
            _ => return None,
        };
        Some(op)
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            ElementwiseOp::Relu => "Relu",
            ElementwiseOp::LeakyRelu { .. } => "LeakyRelu",
            ElementwiseOp::Add => "Add",
        }
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match self {
            ElementwiseOp::LeakyRelu { alpha } => vec![("alpha".into(), Attr::Float(*alpha))],
            _ => Vec::new(),
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        match self {
            ElementwiseOp::Add => {
                let b = input(inputs, 1)?;
                Ok(vec![like(x, broadcast_all(&[x.info, b.info])?)])
            }
            _ => Ok(vec![x.info.clone()]),
        }
    }
}
