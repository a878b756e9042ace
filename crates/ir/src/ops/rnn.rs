//! Recurrent layers: LSTM, GRU, RNN.

use crate::ops::util::input;
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// Recurrent operators. Each holds the attributes shared by the family.
#[derive(Clone, Debug, PartialEq)]
pub enum RnnOp {
    Lstm(Recurrent),
    Gru(Recurrent),
    Rnn(Recurrent),
}

/// Which way a recurrent layer runs over the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
}

/// A gate activation with its parameters resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    Affine { alpha: f32, beta: f32 },
    LeakyRelu { alpha: f32 },
    ThresholdedRelu { alpha: f32 },
    ScaledTanh { alpha: f32, beta: f32 },
    HardSigmoid { alpha: f32, beta: f32 },
    Elu { alpha: f32 },
    Softsign,
    Softplus,
}

impl Activation {
    /// Builds an activation from its ONNX name (case-insensitive), taking alpha and
    /// beta from the lists in order for the functions that use them.
    fn parse(
        name: &str,
        alphas: &mut impl Iterator<Item = f32>,
        betas: &mut impl Iterator<Item = f32>,
    ) -> Result<Self, AttrError> {
        let mut a = |d: f32| alphas.next().unwrap_or(d);
        Ok(match name.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "affine" => Activation::Affine {
                alpha: a(1.0),
                beta: betas.next().unwrap_or(0.0),
            },
            "leakyrelu" => Activation::LeakyRelu { alpha: a(0.01) },
            "thresholdedrelu" => Activation::ThresholdedRelu { alpha: a(1.0) },
            "scaledtanh" => Activation::ScaledTanh {
                alpha: a(1.0),
                beta: betas.next().unwrap_or(1.0),
            },
            "hardsigmoid" => Activation::HardSigmoid {
                alpha: a(0.2),
                beta: betas.next().unwrap_or(0.5),
            },
            "elu" => Activation::Elu { alpha: a(1.0) },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            other => {
                return Err(AttrError::new(
                    "activations",
                    format!("unknown activation '{other}'"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
            Activation::Affine { .. } => "Affine",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::ScaledTanh { .. } => "ScaledTanh",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::Elu { .. } => "Elu",
            Activation::Softsign => "Softsign",
            Activation::Softplus => "Softplus",
        }
    }

    fn params(self) -> (Option<f32>, Option<f32>) {
        match self {
            Activation::Affine { alpha, beta }
            | Activation::ScaledTanh { alpha, beta }
            | Activation::HardSigmoid { alpha, beta } => (Some(alpha), Some(beta)),
            Activation::LeakyRelu { alpha }
            | Activation::ThresholdedRelu { alpha }
            | Activation::Elu { alpha } => (Some(alpha), None),
            _ => (None, None),
        }
    }
}

/// Attributes shared by LSTM, GRU and RNN.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurrent {
    pub direction: Direction,
    /// `None` when not given (taken from the recurrence weights).
    pub hidden_size: Option<i64>,
    /// Gate activations of every direction, in order (LSTM: f, g, h per direction;
    /// GRU: f, g; RNN: f), with defaults filled in.
    pub activations: Vec<Activation>,
    /// Clip threshold applied to gate pre-activations.
    pub clip: Option<f32>,
    /// 0: `[seq, batch, ...]`; 1: `[batch, seq, ...]` (opset 14+).
    pub layout: i64,
    /// LSTM: couple the input and forget gates.
    pub input_forget: bool,
    /// GRU: apply the reset gate after the recurrence matmul.
    pub linear_before_reset: bool,
}

impl Recurrent {
    fn parse(attrs: &Attributes, defaults: &[Activation]) -> Result<Self, AttrError> {
        let direction = match attrs.string("direction", "forward")?.as_str() {
            "forward" => Direction::Forward,
            "reverse" => Direction::Reverse,
            "bidirectional" => Direction::Bidirectional,
            other => {
                return Err(AttrError::new(
                    "direction",
                    format!("unknown value '{other}'"),
                ))
            }
        };
        let per_dir = defaults.len();
        let want = per_dir * direction.count();
        let activations = match attrs.strings_opt("activations")? {
            None => defaults.iter().copied().cycle().take(want).collect(),
            Some(names) => {
                let alphas = attrs.floats_opt("activation_alpha")?.unwrap_or_default();
                let betas = attrs.floats_opt("activation_beta")?.unwrap_or_default();
                let (mut ai, mut bi) = (alphas.into_iter(), betas.into_iter());
                let mut acts: Vec<Activation> = names
                    .iter()
                    .map(|n| Activation::parse(n, &mut ai, &mut bi))
                    .collect::<Result<_, _>>()?;
                if acts.len() == per_dir && want == 2 * per_dir {
                    acts.extend_from_within(..);
                }
                if acts.len() != want {
                    return Err(AttrError::new(
                        "activations",
                        format!("expected {want} activation functions, got {}", acts.len()),
                    ));
                }
                acts
            }
        };
        let hidden_size = attrs.int_opt("hidden_size")?;
        if let Some(h) = hidden_size {
            if h <= 0 {
                return Err(AttrError::new(
                    "hidden_size",
                    format!("must be positive, got {h}"),
                ));
            }
        }
        let layout = attrs.int("layout", 0)?;
        if !(0..=1).contains(&layout) {
            return Err(AttrError::new(
                "layout",
                format!("must be 0 or 1, got {layout}"),
            ));
        }
        let clip = attrs.float_opt("clip")?;
        if let Some(c) = clip {
            if c.is_nan() || c <= 0.0 {
                return Err(AttrError::new("clip", format!("must be positive, got {c}")));
            }
        }
        Ok(Recurrent {
            direction,
            hidden_size,
            activations,
            clip,
            layout,
            input_forget: attrs.int("input_forget", 0)? != 0,
            linear_before_reset: attrs.int("linear_before_reset", 0)? != 0,
        })
    }

    fn attributes(&self, gates_attr: Option<(&str, bool)>) -> Vec<(String, Attr)> {
        let mut v = vec![
            (
                "direction".into(),
                Attr::String(self.direction.as_str().into()),
            ),
            (
                "activations".into(),
                Attr::Strings(
                    self.activations
                        .iter()
                        .map(|a| a.name().to_string())
                        .collect(),
                ),
            ),
        ];
        let alphas: Vec<f32> = self
            .activations
            .iter()
            .filter_map(|a| a.params().0)
            .collect();
        let betas: Vec<f32> = self
            .activations
            .iter()
            .filter_map(|a| a.params().1)
            .collect();
        if !alphas.is_empty() {
            v.push(("activation_alpha".into(), Attr::Floats(alphas)));
        }
        if !betas.is_empty() {
            v.push(("activation_beta".into(), Attr::Floats(betas)));
        }
        if let Some(h) = self.hidden_size {
            v.push(("hidden_size".into(), Attr::Int(h)));
        }
        if let Some(c) = self.clip {
            v.push(("clip".into(), Attr::Float(c)));
        }
        if self.layout != 0 {
            v.push(("layout".into(), Attr::Int(self.layout)));
        }
        if let Some((name, value)) = gates_attr {
            if value {
                v.push((name.into(), Attr::Int(1)));
            }
        }
        v
    }
}

impl RnnOp {
    pub fn parse(_ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        use Activation::{Sigmoid, Tanh};
        let op = match _ctx.op_type {
            "LSTM" => Recurrent::parse(attrs, &[Sigmoid, Tanh, Tanh]).map(RnnOp::Lstm),
            "GRU" => Recurrent::parse(attrs, &[Sigmoid, Tanh]).map(RnnOp::Gru),
            "RNN" => Recurrent::parse(attrs, &[Tanh]).map(RnnOp::Rnn),
            _ => return None,
        };
        Some(op)
    }

    pub fn op_type(&self) -> &'static str {
        match self {
            RnnOp::Lstm(_) => "LSTM",
            RnnOp::Gru(_) => "GRU",
            RnnOp::Rnn(_) => "RNN",
        }
    }

    /// The shared attributes.
    pub fn recurrent(&self) -> &Recurrent {
        match self {
            RnnOp::Lstm(r) | RnnOp::Gru(r) | RnnOp::Rnn(r) => r,
        }
    }

    /// Gates per direction: 4 (LSTM), 3 (GRU), 1 (RNN).
    pub fn gates(&self) -> usize {
        match self {
            RnnOp::Lstm(_) => 4,
            RnnOp::Gru(_) => 3,
            RnnOp::Rnn(_) => 1,
        }
    }

    pub fn attributes(&self) -> Vec<(String, Attr)> {
        match self {
            RnnOp::Lstm(r) => r.attributes(Some(("input_forget", r.input_forget))),
            RnnOp::Gru(r) => r.attributes(Some(("linear_before_reset", r.linear_before_reset))),
            RnnOp::Rnn(r) => r.attributes(None),
        }
    }

    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let r = self.recurrent();
        let x = input(inputs, 0)?;
        let w = input(inputs, 1)?;
        let rr = input(inputs, 2)?;
        let dirs = r.direction.count();
        for (name, info, rank) in [("X", x, 3), ("W", w, 3), ("R", rr, 3)] {
            if let Some(s) = &info.info.shape {
                if s.len() != rank {
                    return Err(format!(
                        "{name} must have rank {rank}, got rank {}",
                        s.len()
                    ));
                }
            }
        }
        let g = self.gates();
        let dim =
            |i: &InferInput, k: usize| i.info.shape.as_ref().map_or(Dim::Unknown, |s| s[k].clone());
        let hidden = match r.hidden_size {
            Some(h) => Dim::Known(h as usize),
            None => match (dim(rr, 2).known(), dim(w, 1).known()) {
                (Some(h), _) => Dim::Known(h),
                (None, Some(gh)) => Dim::Known(gh / g),
                _ => Dim::Unknown,
            },
        };
        if let Some(h) = hidden.known() {
            for (name, info) in [("W", w), ("R", rr)] {
                if let Some(d1) = dim(info, 1).known() {
                    if d1 != g * h {
                        return Err(format!(
                            "{name} has {d1} rows, expected {g} gates x hidden size {h}"
                        ));
                    }
                }
            }
        }
        if let Some(d) = dim(w, 0).known() {
            if d != dirs {
                return Err(format!("W holds {d} directions, expected {dirs}"));
            }
        }
        let (seq, batch) = if r.layout == 0 {
            (dim(x, 0), dim(x, 1))
        } else {
            (dim(x, 1), dim(x, 0))
        };
        let nd = Dim::Known(dirs);
        let (y, state) = if r.layout == 0 {
            (
                vec![seq, nd.clone(), batch.clone(), hidden.clone()],
                vec![nd, batch, hidden],
            )
        } else {
            (
                vec![batch.clone(), seq, nd.clone(), hidden.clone()],
                vec![batch, nd, hidden],
            )
        };
        let dtype = x.info.dtype;
        let mut out = vec![
            ValueInfo {
                dtype,
                shape: Some(y),
            },
            ValueInfo {
                dtype,
                shape: Some(state.clone()),
            },
        ];
        if let RnnOp::Lstm(_) = self {
            out.push(ValueInfo {
                dtype,
                shape: Some(state),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_tensor::DType;

    fn parse(op_type: &str, attrs: Vec<(&str, Attr)>) -> Result<RnnOp, AttrError> {
        let ctx = NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset: 14,
            num_inputs: 3,
            num_outputs: 3,
        };
        let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.to_string(), a)).collect());
        RnnOp::parse(&ctx, &attrs).expect("rnn op")
    }

    #[test]
    fn activations_default_duplicate_and_round_trip() {
        let op = parse(
            "LSTM",
            vec![("direction", Attr::String("bidirectional".into()))],
        )
        .unwrap();
        assert_eq!(op.recurrent().activations.len(), 6);
        let op = parse(
            "GRU",
            vec![
                ("direction", Attr::String("bidirectional".into())),
                (
                    "activations",
                    Attr::Strings(vec!["HardSigmoid".into(), "LeakyRelu".into()]),
                ),
                ("activation_alpha", Attr::Floats(vec![0.3, 0.1])),
                ("linear_before_reset", Attr::Int(1)),
            ],
        )
        .unwrap();
        let acts = &op.recurrent().activations;
        assert_eq!(
            acts[0],
            Activation::HardSigmoid {
                alpha: 0.3,
                beta: 0.5
            }
        );
        assert_eq!(acts[3], Activation::LeakyRelu { alpha: 0.1 });
        let attrs = Attributes::new(op.attributes());
        let ctx = NodeContext {
            name: "n",
            op_type: "GRU",
            domain: "",
            opset: 14,
            num_inputs: 3,
            num_outputs: 2,
        };
        assert_eq!(RnnOp::parse(&ctx, &attrs).unwrap().unwrap(), op);
        assert!(parse(
            "RNN",
            vec![("activations", Attr::Strings(vec!["Swish".into()]))]
        )
        .is_err());
        assert!(parse("RNN", vec![("direction", Attr::String("sideways".into()))]).is_err());
    }

    #[test]
    fn output_shapes_follow_layout() {
        let x = ValueInfo {
            dtype: Some(DType::F32),
            shape: Some(vec![Dim::Symbol("T".into()), Dim::Known(2), Dim::Known(3)]),
        };
        let w = ValueInfo::known(DType::F32, &[1, 20, 3]);
        let r = ValueInfo::known(DType::F32, &[1, 20, 5]);
        let inputs = [
            Some(InferInput {
                info: &x,
                value: None,
            }),
            Some(InferInput {
                info: &w,
                value: None,
            }),
            Some(InferInput {
                info: &r,
                value: None,
            }),
        ];
        let out = parse("LSTM", vec![]).unwrap().infer(&inputs).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].shape_text(), "Tx1x2x5");
        assert_eq!(out[2].shape_text(), "1x2x5");
        let out = parse("LSTM", vec![("layout", Attr::Int(1))])
            .unwrap()
            .infer(&inputs)
            .unwrap();
        assert_eq!(out[0].shape_text(), "Tx2x1x5");
        assert!(parse("GRU", vec![]).unwrap().infer(&inputs).is_err());
    }
}
