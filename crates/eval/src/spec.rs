//! The real inputs of a model and how a tensor is fitted to one.

use slimnet_ir::{Dim, Model};
use slimnet_tensor::{DType, Tensor};

use crate::DataError;

/// A real input of a model (graph inputs that are not initializers), in graph order.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    /// Declared dims; `None` for a symbolic or unknown dim. Empty for a scalar, and
    /// also when the model does not declare the rank (then any shape is accepted).
    pub shape: Vec<Option<usize>>,
}

impl InputSpec {
    /// The model's real inputs, in graph order. An input without a declared dtype is
    /// taken as float32.
    pub fn of_model(model: &Model) -> Vec<InputSpec> {
        let g = &model.graph;
        g.inputs
            .iter()
            .map(|&v| &g.values[v])
            .filter(|v| v.constant.is_none())
            .map(|v| InputSpec {
                name: v.name.clone(),
                dtype: v.info.dtype.unwrap_or(DType::F32),
                shape: v
                    .info
                    .shape
                    .as_ref()
                    .map(|s| s.iter().map(Dim::known).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The declared shape with unknown dims set to 1.
    pub fn default_shape(&self) -> Vec<usize> {
        self.shape.iter().map(|d| d.unwrap_or(1)).collect()
    }

    /// Shape as text, `?` for unknown dims: `[?, 1, 28, 28]`.
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("?".to_string(), |k| k.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    }

    /// Whether a concrete shape fits the declared one. An empty declared shape (a
    /// scalar, or a rank the model does not declare) accepts any shape.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        self.shape.is_empty()
            || shape.len() == self.shape.len()
                && shape
                    .iter()
                    .zip(&self.shape)
                    .all(|(&s, d)| d.is_none_or(|k| k == s))
    }

    /// Fits one sample to this input: its dtype must be the input's (any float dtype is
    /// converted to a float input's, any integer dtype to an integer input's), and its
    /// shape must fit the declared one, after adding a leading dim of 1 when its rank is
    /// one less, or dropping a leading dim of 1 when it is one more. For an empty
    /// declared shape, a one-element tensor becomes a scalar and any other keeps its shape.
    pub fn fit(&self, tensor: Tensor, what: &str) -> Result<Tensor, DataError> {
        let from = tensor.dtype();
        let convertible = from == self.dtype
            || from.is_float() && self.dtype.is_float()
            || from.is_integer() && self.dtype.is_integer();
        if !convertible {
            return Err(DataError::input(
                &self.name,
                format!("{what} is {from} but the model wants {}", self.dtype.name()),
            ));
        }
        let shape = tensor.shape().to_vec();
        let target = if self.shape.is_empty() {
            // A scalar, or an undeclared rank: one element becomes a scalar.
            if tensor.len() == 1 {
                Vec::new()
            } else {
                shape.clone()
            }
        } else if self.accepts(&shape) {
            shape.clone()
        } else {
            let mut with_batch = vec![1];
            with_batch.extend_from_slice(&shape);
            if self.shape.len() == shape.len() + 1 && self.accepts(&with_batch) {
                with_batch
            } else if shape.first() == Some(&1) && self.accepts(&shape[1..]) {
                shape[1..].to_vec()
            } else {
                return Err(DataError::input(
                    &self.name,
                    format!(
                        "{what} of shape {shape:?} does not fit the declared shape {}",
                        self.shape_text()
                    ),
                ));
            }
        };
        let tensor = if from == self.dtype {
            tensor
        } else {
            tensor
                .cast(self.dtype)
                .map_err(|e| DataError::input(&self.name, e))?
        };
        tensor
            .reshape(target)
            .map_err(|e| DataError::input(&self.name, e))
    }
}

/// Parses the value of `--set NAME=VALUE` for `spec`: a number, which fills the input's
/// shape (unknown dims 1; a scalar for a scalar input), or a comma-separated list of
/// numbers, which must fill it exactly (a list with unknown dims becomes the last axis).
pub fn parse_set_value(spec: &InputSpec, value: &str) -> Result<Tensor, DataError> {
    let numbers: Vec<f64> = value
        .split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| {
                DataError::input(&spec.name, format!("'{value}' is not a number or list"))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut shape = spec.default_shape();
    let n: usize = shape.iter().product();
    // Elements per index of the last axis (the last dim is 1 when unknown).
    let rest = n.max(1);
    let data = if numbers.len() == 1 {
        vec![numbers[0]; n]
    } else if numbers.len() == n {
        numbers
    } else if spec.shape.last() == Some(&None) && numbers.len() / rest * rest == numbers.len() {
        *shape.last_mut().expect("non-empty") = numbers.len() / rest;
        numbers
    } else {
        return Err(DataError::input(
            &spec.name,
            format!(
                "{} values do not fill the declared shape {}",
                numbers.len(),
                spec.shape_text()
            ),
        ));
    };
    let t = Tensor::from_vec(shape, data).map_err(|e| DataError::input(&spec.name, e))?;
    t.cast(spec.dtype)
        .map_err(|e| DataError::input(&spec.name, e))
}

/// The value of an input that the data does not provide: from `set`, else zeros for a
/// float input (unknown dims 1), else an error naming the input.
pub(crate) fn filler(spec: &InputSpec, set: &[(String, Tensor)]) -> Result<Tensor, DataError> {
    if let Some((_, t)) = set.iter().find(|(n, _)| *n == spec.name) {
        return spec.fit(t.clone(), "the value set");
    }
    if spec.dtype.is_float() {
        return Tensor::zeros(spec.dtype, spec.default_shape())
            .map_err(|e| DataError::input(&spec.name, e));
    }
    Err(DataError::input(
        &spec.name,
        format!(
            "the data does not provide this {} {} input; give its value (--set {}=VALUE)",
            spec.dtype.name(),
            spec.shape_text(),
            spec.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: &[Option<usize>]) -> InputSpec {
        InputSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn fit_adds_or_drops_a_batch_dim() {
        let s = spec(&[None, Some(1), Some(2), Some(2)]);
        let t = Tensor::from_vec(vec![1, 2, 2], vec![0f32; 4]).unwrap();
        assert_eq!(s.fit(t, "x").unwrap().shape(), &[1, 1, 2, 2]);
        let t = Tensor::from_vec(vec![3, 1, 2, 2], vec![0f32; 12]).unwrap();
        assert_eq!(s.fit(t, "x").unwrap().shape(), &[3, 1, 2, 2]);
        let s3 = spec(&[Some(1), Some(2), Some(2)]);
        let t = Tensor::from_vec(vec![1, 1, 2, 2], vec![0f32; 4]).unwrap();
        assert_eq!(s3.fit(t, "x").unwrap().shape(), &[1, 2, 2]);
        let bad = Tensor::from_vec(vec![1, 3, 2], vec![0f32; 6]).unwrap();
        let e = s.fit(bad, "sample 0").unwrap_err().to_string();
        assert!(e.contains("'x'") && e.contains("[1, 3, 2]"), "{e}");
    }

    #[test]
    fn fit_converts_floats_and_rejects_ints_for_floats() {
        let s = spec(&[Some(2)]);
        let t = Tensor::from_vec(vec![2], vec![1f64, 2.0]).unwrap();
        assert_eq!(s.fit(t, "x").unwrap().dtype(), DType::F32);
        let t = Tensor::from_vec(vec![2], vec![1i64, 2]).unwrap();
        let e = s.fit(t, "x").unwrap_err().to_string();
        assert!(e.contains("int64") && e.contains("float32"), "{e}");
    }

    #[test]
    fn set_values() {
        let sr = InputSpec {
            name: "sr".into(),
            dtype: DType::I64,
            shape: vec![],
        };
        let t = parse_set_value(&sr, "16000").unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(t.to_i64_vec().unwrap(), vec![16000]);
        let st = spec(&[Some(2), None]);
        assert_eq!(parse_set_value(&st, "0").unwrap().shape(), &[2, 1]);
        assert_eq!(parse_set_value(&st, "1,2").unwrap().shape(), &[2, 1]);
        assert_eq!(parse_set_value(&st, "1,2,3,4").unwrap().shape(), &[2, 2]);
        assert!(parse_set_value(&st, "1,2,3").is_err());
        assert!(parse_set_value(&st, "abc").is_err());
        assert!(filler(&sr, &[])
            .unwrap_err()
            .to_string()
            .contains("--set sr="));
        assert_eq!(filler(&st, &[]).unwrap().shape(), &[2, 1]);
        let one = Tensor::from_vec(vec![1, 1], vec![8000i64]).unwrap();
        assert_eq!(sr.fit(one, "x").unwrap().shape(), &[] as &[usize]);
    }
}
