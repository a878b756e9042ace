use slimnet_tensor::Tensor;

use crate::{AttrError, Graph};

/// An attribute value, as ONNX defines them.
#[derive(Clone, Debug)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(Tensor),
    Graph(Box<Graph>),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
    Tensors(Vec<Tensor>),
    Graphs(Vec<Graph>),
}

/// The attributes of one node, with typed getters that fill in defaults and report
/// a wrong type as an [`AttrError`] naming the attribute.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    entries: Vec<(String, Attr)>,
}

impl Attributes {
    pub fn new(entries: Vec<(String, Attr)>) -> Self {
        Attributes { entries }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Removes and returns an attribute (used to move subgraphs out).
    pub fn take(&mut self, name: &str) -> Option<Attr> {
        let pos = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(pos).1)
    }

    fn wrong(name: &str, want: &str) -> AttrError {
        AttrError::new(name, format!("expected {want}"))
    }

    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(_) => Err(Self::wrong(name, "an int")),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, AttrError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub fn int_required(&self, name: &str) -> Result<i64, AttrError> {
        self.int_opt(name)?
            .ok_or_else(|| AttrError::new(name, "required but missing"))
    }

    pub fn float_opt(&self, name: &str) -> Result<Option<f32>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(Attr::Int(v)) => Ok(Some(*v as f32)),
            Some(_) => Err(Self::wrong(name, "a float")),
        }
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32, AttrError> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }

    pub fn string_opt(&self, name: &str) -> Result<Option<String>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::String(v)) => Ok(Some(v.clone())),
            Some(_) => Err(Self::wrong(name, "a string")),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String, AttrError> {
        Ok(self
            .string_opt(name)?
            .unwrap_or_else(|| default.to_string()))
    }

    pub fn ints_opt(&self, name: &str) -> Result<Option<Vec<i64>>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(v)) => Ok(Some(vec![*v])),
            Some(_) => Err(Self::wrong(name, "a list of ints")),
        }
    }

    pub fn ints(&self, name: &str, default: &[i64]) -> Result<Vec<i64>, AttrError> {
        Ok(self.ints_opt(name)?.unwrap_or_else(|| default.to_vec()))
    }

    pub fn floats_opt(&self, name: &str) -> Result<Option<Vec<f32>>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(Attr::Float(v)) => Ok(Some(vec![*v])),
            Some(_) => Err(Self::wrong(name, "a list of floats")),
        }
    }

    pub fn strings_opt(&self, name: &str) -> Result<Option<Vec<String>>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Strings(v)) => Ok(Some(v.clone())),
            Some(_) => Err(Self::wrong(name, "a list of strings")),
        }
    }

    pub fn tensor_opt(&self, name: &str) -> Result<Option<Tensor>, AttrError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t.clone())),
            Some(_) => Err(Self::wrong(name, "a tensor")),
        }
    }

    /// Moves a graph attribute out (subgraphs are owned by the op that runs them).
    pub fn take_graph(&mut self, name: &str) -> Result<Graph, AttrError> {
        match self.take(name) {
            Some(Attr::Graph(g)) => Ok(*g),
            Some(_) => Err(Self::wrong(name, "a graph")),
            None => Err(AttrError::new(name, "required but missing")),
        }
    }
}
