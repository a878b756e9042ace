//! Vision and miscellaneous tensor ops: GridSample, AffineGrid, Col2Im, RoiAlign, NonMaxSuppression, MaxUnpool, CenterCropPad, CumProd, Det.

use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// See the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub enum VisionOp {}

impl VisionOp {
    pub fn parse(_ctx: &NodeContext, _attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        None
    }

    pub fn op_type(&self) -> &'static str {
        match *self {}
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match *self {}
    }

    pub fn infer(&self, _inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        match *self {}
    }
}
