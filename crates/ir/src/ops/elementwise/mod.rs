//! Elementwise operators: unary math and activations, broadcasting binary
//! arithmetic, comparisons and logic, `Where`, `Cast`, `Clip`.
//!
//! Binary and variadic operators broadcast their inputs the numpy way
//! (multidirectional broadcasting). Attributes that exist only in some opsets are
//! stored as `Option`s or flags, so [`ElementwiseOp::attributes`] writes back exactly
//! what the opset the op was parsed at accepts.

mod infer;

use slimnet_tensor::DType;

use crate::{Attr, AttrError, Attributes, InferInput, NodeContext, ValueInfo};

/// `Gelu`'s approximation of the Gaussian CDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluApproximation {
    /// `0.5 * x * (1 + erf(x / sqrt(2)))`.
    None,
    /// `0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`.
    Tanh,
}

/// `BitShift`'s direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftDirection {
    Left,
    Right,
}

/// Elementwise operators.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementwiseOp {
    // Unary math (float types unless noted).
    /// All numeric types.
    Abs,
    /// Signed integers and floats.
    Neg,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Floor,
    Ceil,
    /// Rounds half to even.
    Round,
    /// All numeric types.
    Sign,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Tanh,
    Erf,

    // Activations.
    Sigmoid,
    /// Floats and integers.
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    /// `x < 0 ? slope * x : x`, with `slope` (input 1) broadcast to `x`.
    PRelu,
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Softplus,
    Softsign,
    Mish,
    Gelu {
        approximate: GeluApproximation,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    /// `x * sigmoid(alpha * x)` (opset 24).
    Swish {
        alpha: f32,
    },
    /// `x < -lambd ? x + bias : x > lambd ? x - bias : 0`.
    Shrink {
        bias: f32,
        lambd: f32,
    },
    /// Bounds given as attributes (before opset 11); `None` when the bound comes
    /// from input 1 (`min`) or 2 (`max`), or is absent.
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },

    // Binary arithmetic (numpy broadcasting; integer overflow wraps).
    Add,
    Sub,
    Mul,
    /// Integer division truncates toward zero.
    Div,
    /// Exponent (input 1) may have another numeric dtype; the output has the base's.
    Pow,
    /// `fmod == false`: the result takes the divisor's sign (Python `%`);
    /// `fmod == true`: the dividend's (C `fmod`).
    Mod {
        fmod: bool,
    },

    // Variadic (one or more inputs, broadcast together).
    Max,
    Min,
    Sum,
    Mean,

    // Comparisons (output bool).
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,

    // Logic on bool tensors.
    And,
    Or,
    Xor,
    Not,

    // Bitwise on integer tensors.
    BitShift {
        direction: ShiftDirection,
    },
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    BitwiseNot,

    // Tests on floats (output bool).
    IsNaN,
    IsInf {
        detect_negative: bool,
        detect_positive: bool,
    },

    // Selection, types and pass-through.
    /// `condition ? x : y`, all three broadcast together.
    Where,
    /// `saturate` is `Some` only when the node carried it (opset 19+); it matters for
    /// float8 targets only.
    Cast {
        to: DType,
        saturate: Option<bool>,
    },
    /// Casts input 0 to the dtype of input 1.
    CastLike {
        saturate: Option<bool>,
    },
    Identity,
    /// Inference-mode dropout: output 0 is the input, output 1 a mask of ones.
    /// `ratio` is the attribute of opsets before 12 (input 1 afterwards); `seed`
    /// the attribute of opset 12+; `bool_mask` is false before opset 10, where the
    /// mask has the input's dtype.
    Dropout {
        ratio: Option<f32>,
        seed: Option<i64>,
        bool_mask: bool,
    },
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_GAMMA: f32 = 1.050_701;

fn flag(attrs: &Attributes, name: &str, default: bool) -> Result<bool, AttrError> {
    Ok(attrs.int(name, default as i64)? != 0)
}

fn saturate(attrs: &Attributes) -> Result<Option<bool>, AttrError> {
    Ok(attrs.int_opt("saturate")?.map(|v| v != 0))
}

fn cast_target(attrs: &Attributes) -> Result<DType, AttrError> {
    let code = attrs.int_required("to")?;
    i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .ok_or_else(|| AttrError::new("to", format!("element type code {code} is not supported (float8, int4 and complex types are not held)")))
}

/// Broadcasting arithmetic before opset 7 could align the second input at an axis;
/// numpy broadcasting covers only its default (suffix) alignment.
fn check_legacy_broadcast(ctx: &NodeContext, attrs: &Attributes) -> Result<(), AttrError> {
    if ctx.opset < 7 && attrs.int("broadcast", 0)? != 0 && attrs.contains("axis") {
        return Err(AttrError::new(
            "axis",
            "broadcasting along an axis (opset < 7) is not supported",
        ));
    }
    Ok(())
}

impl ElementwiseOp {
    /// Parses `ctx.op_type` with its attributes, defaults filled in for `ctx.opset`;
    /// `None` when the op type is not elementwise.
    pub fn parse(ctx: &NodeContext, attrs: &Attributes) -> Option<Result<Self, AttrError>> {
        use ElementwiseOp as E;
        let simple = match ctx.op_type {
            "Abs" => Some(E::Abs),
            "Neg" => Some(E::Neg),
            "Exp" => Some(E::Exp),
            "Log" => Some(E::Log),
            "Sqrt" => Some(E::Sqrt),
            "Reciprocal" => Some(E::Reciprocal),
            "Floor" => Some(E::Floor),
            "Ceil" => Some(E::Ceil),
            "Round" => Some(E::Round),
            "Sign" => Some(E::Sign),
            "Sin" => Some(E::Sin),
            "Cos" => Some(E::Cos),
            "Tan" => Some(E::Tan),
            "Asin" => Some(E::Asin),
            "Acos" => Some(E::Acos),
            "Atan" => Some(E::Atan),
            "Sinh" => Some(E::Sinh),
            "Cosh" => Some(E::Cosh),
            "Asinh" => Some(E::Asinh),
            "Acosh" => Some(E::Acosh),
            "Atanh" => Some(E::Atanh),
            "Tanh" => Some(E::Tanh),
            "Erf" => Some(E::Erf),
            "Sigmoid" => Some(E::Sigmoid),
            "Relu" => Some(E::Relu),
            "PRelu" => Some(E::PRelu),
            "HardSwish" => Some(E::HardSwish),
            "Softplus" => Some(E::Softplus),
            "Softsign" => Some(E::Softsign),
            "Mish" => Some(E::Mish),
            "Max" => Some(E::Max),
            "Min" => Some(E::Min),
            "Sum" => Some(E::Sum),
            "Mean" => Some(E::Mean),
            "Equal" => Some(E::Equal),
            "Less" => Some(E::Less),
            "LessOrEqual" => Some(E::LessOrEqual),
            "Greater" => Some(E::Greater),
            "GreaterOrEqual" => Some(E::GreaterOrEqual),
            "And" => Some(E::And),
            "Or" => Some(E::Or),
            "Xor" => Some(E::Xor),
            "Not" => Some(E::Not),
            "BitwiseAnd" => Some(E::BitwiseAnd),
            "BitwiseOr" => Some(E::BitwiseOr),
            "BitwiseXor" => Some(E::BitwiseXor),
            "BitwiseNot" => Some(E::BitwiseNot),
            "IsNaN" => Some(E::IsNaN),
            "Where" => Some(E::Where),
            "Identity" => Some(E::Identity),
            _ => None,
        };
        if let Some(op) = simple {
            let legacy = match op {
                E::Equal | E::Less | E::Greater | E::And | E::Or | E::Xor | E::PRelu => {
                    check_legacy_broadcast(ctx, attrs)
                }
                _ => Ok(()),
            };
            return Some(legacy.map(|()| op));
        }
        let op = match ctx.op_type {
            "Add" | "Sub" | "Mul" | "Div" | "Pow" => {
                check_legacy_broadcast(ctx, attrs).map(|()| match ctx.op_type {
                    "Add" => E::Add,
                    "Sub" => E::Sub,
                    "Mul" => E::Mul,
                    "Div" => E::Div,
                    _ => E::Pow,
                })
            }
            "Mod" => flag(attrs, "fmod", false).map(|fmod| E::Mod { fmod }),
            "LeakyRelu" => attrs
                .float("alpha", 0.01)
                .map(|alpha| E::LeakyRelu { alpha }),
            "Elu" => attrs.float("alpha", 1.0).map(|alpha| E::Elu { alpha }),
            "Selu" => (|| {
                Ok(E::Selu {
                    alpha: attrs.float("alpha", SELU_ALPHA)?,
                    gamma: attrs.float("gamma", SELU_GAMMA)?,
                })
            })(),
            "Celu" => attrs.float("alpha", 1.0).map(|alpha| E::Celu { alpha }),
            "HardSigmoid" => (|| {
                Ok(E::HardSigmoid {
                    alpha: attrs.float("alpha", 0.2)?,
                    beta: attrs.float("beta", 0.5)?,
                })
            })(),
            "ThresholdedRelu" => attrs
                .float("alpha", 1.0)
                .map(|alpha| E::ThresholdedRelu { alpha }),
            "Swish" => attrs.float("alpha", 1.0).map(|alpha| E::Swish { alpha }),
            "Shrink" => (|| {
                Ok(E::Shrink {
                    bias: attrs.float("bias", 0.0)?,
                    lambd: attrs.float("lambd", 0.5)?,
                })
            })(),
            "Gelu" => attrs
                .string("approximate", "none")
                .and_then(|a| match a.as_str() {
                    "none" => Ok(E::Gelu {
                        approximate: GeluApproximation::None,
                    }),
                    "tanh" => Ok(E::Gelu {
                        approximate: GeluApproximation::Tanh,
                    }),
                    other => Err(AttrError::new(
                        "approximate",
                        format!("expected \"none\" or \"tanh\", got {other:?}"),
                    )),
                }),
            "Clip" if ctx.opset < 11 => (|| {
                Ok(E::Clip {
                    min: Some(attrs.float("min", f32::MIN)?),
                    max: Some(attrs.float("max", f32::MAX)?),
                })
            })(),
            "Clip" => Ok(E::Clip {
                min: None,
                max: None,
            }),
            "BitShift" => attrs
                .string_opt("direction")
                .and_then(|d| match d.as_deref() {
                    Some("LEFT") => Ok(E::BitShift {
                        direction: ShiftDirection::Left,
                    }),
                    Some("RIGHT") => Ok(E::BitShift {
                        direction: ShiftDirection::Right,
                    }),
                    Some(other) => Err(AttrError::new(
                        "direction",
                        format!("expected \"LEFT\" or \"RIGHT\", got {other:?}"),
                    )),
                    None => Err(AttrError::new("direction", "required but missing")),
                }),
            "IsInf" => (|| {
                Ok(E::IsInf {
                    detect_negative: flag(attrs, "detect_negative", true)?,
                    detect_positive: flag(attrs, "detect_positive", true)?,
                })
            })(),
            "Cast" => (|| {
                Ok(E::Cast {
                    to: cast_target(attrs)?,
                    saturate: saturate(attrs)?,
                })
            })(),
            "CastLike" => saturate(attrs).map(|saturate| E::CastLike { saturate }),
            "Dropout" => (|| {
                let ratio = if ctx.opset < 12 {
                    Some(attrs.float("ratio", 0.5)?)
                } else {
                    None
                };
                Ok(E::Dropout {
                    ratio,
                    seed: attrs.int_opt("seed")?,
                    bool_mask: ctx.opset >= 10,
                })
            })(),
            _ => return None,
        };
        Some(op)
    }

    /// The ONNX op type.
    pub fn op_type(&self) -> &'static str {
        use ElementwiseOp as E;
        match self {
            E::Abs => "Abs",
            E::Neg => "Neg",
            E::Exp => "Exp",
            E::Log => "Log",
            E::Sqrt => "Sqrt",
            E::Reciprocal => "Reciprocal",
            E::Floor => "Floor",
            E::Ceil => "Ceil",
            E::Round => "Round",
            E::Sign => "Sign",
            E::Sin => "Sin",
            E::Cos => "Cos",
            E::Tan => "Tan",
            E::Asin => "Asin",
            E::Acos => "Acos",
            E::Atan => "Atan",
            E::Sinh => "Sinh",
            E::Cosh => "Cosh",
            E::Asinh => "Asinh",
            E::Acosh => "Acosh",
            E::Atanh => "Atanh",
            E::Tanh => "Tanh",
            E::Erf => "Erf",
            E::Sigmoid => "Sigmoid",
            E::Relu => "Relu",
            E::LeakyRelu { .. } => "LeakyRelu",
            E::PRelu => "PRelu",
            E::Elu { .. } => "Elu",
            E::Selu { .. } => "Selu",
            E::Celu { .. } => "Celu",
            E::HardSigmoid { .. } => "HardSigmoid",
            E::HardSwish => "HardSwish",
            E::Softplus => "Softplus",
            E::Softsign => "Softsign",
            E::Mish => "Mish",
            E::Gelu { .. } => "Gelu",
            E::ThresholdedRelu { .. } => "ThresholdedRelu",
            E::Swish { .. } => "Swish",
            E::Shrink { .. } => "Shrink",
            E::Clip { .. } => "Clip",
            E::Add => "Add",
            E::Sub => "Sub",
            E::Mul => "Mul",
            E::Div => "Div",
            E::Pow => "Pow",
            E::Mod { .. } => "Mod",
            E::Max => "Max",
            E::Min => "Min",
            E::Sum => "Sum",
            E::Mean => "Mean",
            E::Equal => "Equal",
            E::Less => "Less",
            E::LessOrEqual => "LessOrEqual",
            E::Greater => "Greater",
            E::GreaterOrEqual => "GreaterOrEqual",
            E::And => "And",
            E::Or => "Or",
            E::Xor => "Xor",
            E::Not => "Not",
            E::BitShift { .. } => "BitShift",
            E::BitwiseAnd => "BitwiseAnd",
            E::BitwiseOr => "BitwiseOr",
            E::BitwiseXor => "BitwiseXor",
            E::BitwiseNot => "BitwiseNot",
            E::IsNaN => "IsNaN",
            E::IsInf { .. } => "IsInf",
            E::Where => "Where",
            E::Cast { .. } => "Cast",
            E::CastLike { .. } => "CastLike",
            E::Identity => "Identity",
            E::Dropout { .. } => "Dropout",
        }
    }

    /// The attributes to write back on export: every one that affects the semantics,
    /// and opset-specific ones only when they were present (or differ from their
    /// default) so the node stays valid at the opset it was parsed at.
    pub fn attributes(&self) -> Vec<(String, Attr)> {
        use ElementwiseOp as E;
        let f = |name: &str, v: f32| (name.to_string(), Attr::Float(v));
        let i = |name: &str, v: i64| (name.to_string(), Attr::Int(v));
        match self {
            E::LeakyRelu { alpha }
            | E::Elu { alpha }
            | E::Celu { alpha }
            | E::ThresholdedRelu { alpha }
            | E::Swish { alpha } => {
                vec![f("alpha", *alpha)]
            }
            E::Selu { alpha, gamma } => vec![f("alpha", *alpha), f("gamma", *gamma)],
            E::HardSigmoid { alpha, beta } => vec![f("alpha", *alpha), f("beta", *beta)],
            E::Shrink { bias, lambd } => vec![f("bias", *bias), f("lambd", *lambd)],
            E::Gelu { approximate } => {
                let s = match approximate {
                    GeluApproximation::None => "none",
                    GeluApproximation::Tanh => "tanh",
                };
                vec![("approximate".into(), Attr::String(s.into()))]
            }
            E::Clip { min, max } => {
                let mut v = Vec::new();
                if let Some(m) = min {
                    v.push(f("min", *m));
                }
                if let Some(m) = max {
                    v.push(f("max", *m));
                }
                v
            }
            E::Mod { fmod } => vec![i("fmod", *fmod as i64)],
            E::BitShift { direction } => {
                let s = match direction {
                    ShiftDirection::Left => "LEFT",
                    ShiftDirection::Right => "RIGHT",
                };
                vec![("direction".into(), Attr::String(s.into()))]
            }
            E::IsInf {
                detect_negative,
                detect_positive,
            } => {
                vec![
                    i("detect_negative", *detect_negative as i64),
                    i("detect_positive", *detect_positive as i64),
                ]
            }
            E::Cast { to, saturate } => {
                let mut v = vec![i("to", to.onnx_code() as i64)];
                if let Some(s) = saturate {
                    v.push(i("saturate", *s as i64));
                }
                v
            }
            E::CastLike { saturate } => saturate.iter().map(|s| i("saturate", *s as i64)).collect(),
            E::Dropout { ratio, seed, .. } => {
                let mut v = Vec::new();
                if let Some(r) = ratio {
                    v.push(f("ratio", *r));
                }
                if let Some(s) = seed {
                    v.push(i("seed", *s));
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// Output dtypes and shapes (see [`infer`]).
    pub fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        infer::infer(self, inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(op_type: &'static str, opset: i64) -> NodeContext<'static> {
        NodeContext {
            name: "n",
            op_type,
            domain: "",
            opset,
            num_inputs: 1,
            num_outputs: 1,
        }
    }

    fn parse<S: Into<String>>(
        op_type: &'static str,
        opset: i64,
        attrs: Vec<(S, Attr)>,
    ) -> Result<ElementwiseOp, AttrError> {
        let attrs = Attributes::new(attrs.into_iter().map(|(n, a)| (n.into(), a)).collect());
        ElementwiseOp::parse(&ctx(op_type, opset), &attrs).expect("elementwise op")
    }

    #[test]
    fn defaults_follow_the_opset() {
        let none: Vec<(&str, Attr)> = Vec::new();
        assert_eq!(
            parse("LeakyRelu", 16, none.clone()).unwrap(),
            ElementwiseOp::LeakyRelu { alpha: 0.01 }
        );
        assert_eq!(
            parse("Clip", 6, vec![("max", Attr::Float(6.0))]).unwrap(),
            ElementwiseOp::Clip {
                min: Some(f32::MIN),
                max: Some(6.0)
            }
        );
        assert_eq!(
            parse("Clip", 13, none.clone()).unwrap(),
            ElementwiseOp::Clip {
                min: None,
                max: None
            }
        );
        assert_eq!(
            parse("Dropout", 7, none.clone()).unwrap(),
            ElementwiseOp::Dropout {
                ratio: Some(0.5),
                seed: None,
                bool_mask: false
            }
        );
        assert_eq!(
            parse("Dropout", 13, none.clone()).unwrap(),
            ElementwiseOp::Dropout {
                ratio: None,
                seed: None,
                bool_mask: true
            }
        );
        assert_eq!(
            parse("Gelu", 20, none.clone()).unwrap(),
            ElementwiseOp::Gelu {
                approximate: GeluApproximation::None
            }
        );
        assert_eq!(
            parse("IsInf", 20, vec![("detect_negative", Attr::Int(0))]).unwrap(),
            ElementwiseOp::IsInf {
                detect_negative: false,
                detect_positive: true
            }
        );
        let selu = parse("Selu", 6, none).unwrap();
        assert_eq!(
            selu,
            ElementwiseOp::Selu {
                alpha: 1.673_263_2,
                gamma: 1.050_701
            }
        );
        assert!(ElementwiseOp::parse(&ctx("Conv", 11), &Attributes::default()).is_none());
    }

    #[test]
    fn bad_attributes_are_errors() {
        assert!(parse(
            "Gelu",
            20,
            vec![("approximate", Attr::String("fast".into()))]
        )
        .is_err());
        assert!(parse("BitShift", 11, Vec::<(&str, Attr)>::new()).is_err());
        assert!(parse(
            "BitShift",
            11,
            vec![("direction", Attr::String("UP".into()))]
        )
        .is_err());
        assert!(parse("Cast", 13, Vec::<(&str, Attr)>::new()).is_err());
        assert!(parse("Cast", 19, vec![("to", Attr::Int(17))]).is_err());
        assert!(parse("LeakyRelu", 16, vec![("alpha", Attr::String("x".into()))]).is_err());
        assert!(parse(
            "Add",
            6,
            vec![("broadcast", Attr::Int(1)), ("axis", Attr::Int(1))]
        )
        .is_err());
        assert!(parse("Add", 6, vec![("broadcast", Attr::Int(1))]).is_ok());
    }

    #[test]
    fn attributes_round_trip() {
        let ops = [
            (
                "Selu",
                22,
                vec![("alpha", Attr::Float(2.0)), ("gamma", Attr::Float(3.0))],
            ),
            (
                "Clip",
                6,
                vec![("min", Attr::Float(-1.0)), ("max", Attr::Float(1.0))],
            ),
            ("Mod", 13, vec![("fmod", Attr::Int(1))]),
            (
                "BitShift",
                11,
                vec![("direction", Attr::String("RIGHT".into()))],
            ),
            (
                "Cast",
                19,
                vec![("to", Attr::Int(10)), ("saturate", Attr::Int(0))],
            ),
            ("Dropout", 13, vec![("seed", Attr::Int(7))]),
            (
                "Gelu",
                20,
                vec![("approximate", Attr::String("tanh".into()))],
            ),
            (
                "Shrink",
                9,
                vec![("bias", Attr::Float(0.5)), ("lambd", Attr::Float(2.0))],
            ),
        ];
        for (op_type, opset, attrs) in ops {
            let op = parse(op_type, opset, attrs).unwrap();
            assert_eq!(op.op_type(), op_type);
            assert_eq!(
                parse(op_type, opset, op.attributes()).unwrap(),
                op,
                "{op_type}"
            );
        }
        // Opset-specific attributes are not invented.
        assert!(parse("Cast", 13, vec![("to", Attr::Int(1))])
            .unwrap()
            .attributes()
            .iter()
            .all(|(n, _)| n != "saturate"));
        assert!(parse("Dropout", 13, Vec::<(&str, Attr)>::new())
            .unwrap()
            .attributes()
            .is_empty());
    }
}
