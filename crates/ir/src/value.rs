use std::fmt;
use std::sync::Arc;

use slimnet_tensor::{DType, Tensor};

/// Index of a value in its graph's value table.
pub type ValueId = usize;

/// One dimension of a shape: a known size, a named symbol (`batch`), or unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    Symbol(String),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(d) => Some(*d),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(d) => write!(f, "{d}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// What is known statically about a value: its element type and shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueInfo {
    pub dtype: Option<DType>,
    /// `None` when even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl ValueInfo {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Self {
        ValueInfo {
            dtype: Some(dtype),
            shape: Some(shape),
        }
    }

    /// Info of a concrete shape.
    pub fn known(dtype: DType, shape: &[usize]) -> Self {
        ValueInfo::new(dtype, shape.iter().map(|&d| Dim::Known(d)).collect())
    }

    pub fn of_tensor(t: &Tensor) -> Self {
        ValueInfo::known(t.dtype(), t.shape())
    }

    /// The shape if every dimension is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape.as_ref()?.iter().map(Dim::known).collect()
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// Shape as text: `1x3x?xbatch`, `scalar`, or `?`.
    pub fn shape_text(&self) -> String {
        match &self.shape {
            None => "?".into(),
            Some(s) if s.is_empty() => "scalar".into(),
            Some(s) => s
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        }
    }
}

/// A value of a graph: a graph input, a node output, a constant (initializer or
/// `Constant` node), or a capture of an enclosing graph's value (in subgraphs).
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub info: ValueInfo,
    /// Set for constants; shared so graphs can be cloned cheaply.
    pub constant: Option<Arc<Tensor>>,
    /// True for values a subgraph reads from its enclosing graph, by name.
    pub outer: bool,
}

impl Value {
    pub fn new(name: impl Into<String>) -> Self {
        Value {
            name: name.into(),
            info: ValueInfo::default(),
            constant: None,
            outer: false,
        }
    }
}
