//! Normalizations (BatchNormalization, InstanceNormalization, GroupNormalization,
//! LRN) and the block rearrangements DepthToSpace and SpaceToDepth.

use crate::ops::util::input;
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// BatchNormalization. In inference mode the running statistics normalize; with
/// `training_mode` (opset 14+) the batch statistics do, and the updated running
/// statistics are the extra outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormalization {
    pub epsilon: f32,
    pub momentum: f32,
    pub training_mode: bool,
    /// Opsets before 9: `false` normalizes per activation (statistics of shape
    /// `[C, D1, ...]`) instead of per channel.
    pub spatial: bool,
    /// The opset the node was read at (decides which attributes and outputs exist).
    pub opset: i64,
}

impl BatchNormalization {
    pub(crate) fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        Ok(BatchNormalization {
            epsilon: attrs.float("epsilon", 1e-5)?,
            momentum: attrs.float("momentum", 0.9)?,
            training_mode: ctx.opset >= 14 && attrs.int("training_mode", 0)? != 0,
            spatial: ctx.opset >= 9 || attrs.int("spatial", 1)? != 0,
            opset: ctx.opset,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = vec![
            ("epsilon".into(), Attr::Float(self.epsilon)),
            ("momentum".into(), Attr::Float(self.momentum)),
        ];
        if self.training_mode {
            v.push(("training_mode".into(), Attr::Int(1)));
        }
        if !self.spatial {
            v.push(("spatial".into(), Attr::Int(0)));
        }
        v
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let x = input(inputs, 0)?;
        for i in 1..5 {
            input(inputs, i)?;
        }
        if let Some(s) = &x.info.shape {
            if s.len() < 2 {
                return Err(format!(
                    "input must have rank 2 or more (N, C, ...), got rank {}",
                    s.len()
                ));
            }
        }
        let mean = input(inputs, 3)?;
        let stats = ValueInfo {
            dtype: mean.info.dtype,
            shape: mean.info.shape.clone(),
        };
        let mut v = vec![x.info.clone()];
        if self.training_mode || self.opset < 14 {
            v.push(stats.clone());
            v.push(stats.clone());
        }
        if self.opset < 14 {
            v.push(stats.clone());
            v.push(stats);
        }
        Ok(v)
    }
}

/// GroupNormalization. Opset 18 takes one scale and bias per group; opset 21 one per
/// channel.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupNormalization {
    pub epsilon: f32,
    pub num_groups: i64,
    /// Element type of the statistics (ONNX dtype code; 1 = float32).
    pub stash_type: i64,
    /// The opset the node was read at.
    pub opset: i64,
}

impl GroupNormalization {
    pub(crate) fn parse(ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        let num_groups = attrs.int_required("num_groups")?;
        if num_groups <= 0 {
            return Err(AttrError::new(
                "num_groups",
                format!("must be positive, got {num_groups}"),
            ));
        }
        Ok(GroupNormalization {
            epsilon: attrs.float("epsilon", 1e-5)?,
            num_groups,
            stash_type: attrs.int("stash_type", 1)?,
            opset: ctx.opset,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = vec![
            ("epsilon".into(), Attr::Float(self.epsilon)),
            ("num_groups".into(), Attr::Int(self.num_groups)),
        ];
        if self.opset >= 21 && self.stash_type != 1 {
            v.push(("stash_type".into(), Attr::Int(self.stash_type)));
        }
        v
    }
}

/// LRN: local response normalization across channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Lrn {
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
    pub size: i64,
}

impl Lrn {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        let size = attrs.int_required("size")?;
        if size <= 0 {
            return Err(AttrError::new(
                "size",
                format!("must be positive, got {size}"),
            ));
        }
        Ok(Lrn {
            alpha: attrs.float("alpha", 1e-4)?,
            beta: attrs.float("beta", 0.75)?,
            bias: attrs.float("bias", 1.0)?,
            size,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        vec![
            ("alpha".into(), Attr::Float(self.alpha)),
            ("beta".into(), Attr::Float(self.beta)),
            ("bias".into(), Attr::Float(self.bias)),
            ("size".into(), Attr::Int(self.size)),
        ]
    }
}

/// One output shaped like input 0; `channels` requires rank 2 or more.
pub(crate) fn infer_same(
    inputs: &[Option<InferInput>],
    channels: bool,
) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    if let Some(s) = &x.info.shape {
        if channels && s.len() < 2 {
            return Err(format!(
                "input must have rank 2 or more (N, C, ...), got rank {}",
                s.len()
            ));
        }
    }
    Ok(vec![x.info.clone()])
}

fn scale_dim(d: &Dim, by: usize, up: bool) -> Result<Dim, String> {
    Ok(match d.known() {
        Some(v) if up => Dim::Known(v * by),
        Some(v) if v % by == 0 => Dim::Known(v / by),
        Some(v) => return Err(format!("dimension {v} is not divisible by {by}")),
        None => Dim::Unknown,
    })
}

/// DepthToSpace (`to_space`) and SpaceToDepth on `[N, C, H, W]`.
pub(crate) fn infer_depth_space(
    inputs: &[Option<InferInput>],
    block: i64,
    to_space: bool,
) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let b = block as usize;
    let shape = match &x.info.shape {
        None => Some(vec![Dim::Unknown; 4]),
        Some(s) if s.len() != 4 => {
            return Err(format!("input must have rank 4, got rank {}", s.len()))
        }
        Some(s) => Some(vec![
            s[0].clone(),
            scale_dim(&s[1], b * b, !to_space)?,
            scale_dim(&s[2], b, to_space)?,
            scale_dim(&s[3], b, to_space)?,
        ]),
    };
    Ok(vec![ValueInfo {
        dtype: x.info.dtype,
        shape,
    }])
}
