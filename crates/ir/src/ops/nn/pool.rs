//! Pooling: MaxPool, AveragePool, LpPool and the global pools.

use super::conv::Window;
use crate::ops::util::input;
use crate::{Attr, AttrError, Attributes, Dim, InferInput, ValueInfo};

/// MaxPool, with the optional int64 Indices output.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool {
    pub window: Window,
    /// 0: indices in row-major order; 1: column-major over the spatial axes.
    pub storage_order: i64,
}

impl MaxPool {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        let storage_order = attrs.int("storage_order", 0)?;
        if !(0..=1).contains(&storage_order) {
            return Err(AttrError::new(
                "storage_order",
                format!("must be 0 or 1, got {storage_order}"),
            ));
        }
        Ok(MaxPool {
            window: Window::parse(attrs, true)?,
            storage_order,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        self.window.write(&mut v);
        if self.storage_order != 0 {
            v.push(("storage_order".into(), Attr::Int(self.storage_order)));
        }
        v
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        self.window.infer_pool(inputs, 2)
    }
}

/// AveragePool.
#[derive(Clone, Debug, PartialEq)]
pub struct AveragePool {
    pub window: Window,
    /// Count padded positions in the divisor.
    pub count_include_pad: bool,
}

impl AveragePool {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        Ok(AveragePool {
            window: Window::parse(attrs, true)?,
            count_include_pad: attrs.int("count_include_pad", 0)? != 0,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        self.window.write(&mut v);
        if self.count_include_pad {
            v.push(("count_include_pad".into(), Attr::Int(1)));
        }
        v
    }
}

/// LpPool: the p-norm over each window.
#[derive(Clone, Debug, PartialEq)]
pub struct LpPool {
    pub window: Window,
    pub p: i64,
}

impl LpPool {
    pub(crate) fn parse(attrs: &Attributes) -> Result<Self, AttrError> {
        let p = match attrs.get("p") {
            None => 2,
            Some(Attr::Int(p)) => *p,
            Some(Attr::Float(p)) => *p as i64,
            Some(_) => return Err(AttrError::new("p", "expected an int")),
        };
        if p <= 0 {
            return Err(AttrError::new("p", format!("must be positive, got {p}")));
        }
        Ok(LpPool {
            window: Window::parse(attrs, true)?,
            p,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        let mut v = Vec::new();
        self.window.write(&mut v);
        v.push(("p".into(), Attr::Int(self.p)));
        v
    }
}

/// GlobalAveragePool and GlobalMaxPool: `[N, C, 1, 1, ...]`.
pub(crate) fn infer_global_pool(inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
    let x = input(inputs, 0)?;
    let shape = match &x.info.shape {
        None => None,
        Some(s) if s.len() < 3 => {
            return Err(format!(
                "input must have rank 3 or more (N, C, spatial...), got rank {}",
                s.len()
            ));
        }
        Some(s) => {
            let mut out = vec![s[0].clone(), s[1].clone()];
            out.extend(std::iter::repeat_n(Dim::Known(1), s.len() - 2));
            Some(out)
        }
    };
    Ok(vec![ValueInfo {
        dtype: x.info.dtype,
        shape,
    }])
}
