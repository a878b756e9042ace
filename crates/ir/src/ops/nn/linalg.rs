//! Gemm, MatMul and Einsum.

use crate::ops::util::{broadcast_dims, input, optional};
use crate::{Attr, AttrError, Attributes, Dim, InferInput, NodeContext, ValueInfo};

/// Gemm: `alpha * op(A) @ op(B) + beta * C`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Gemm {
    pub(crate) fn parse(_ctx: &NodeContext, attrs: &Attributes) -> Result<Self, AttrError> {
        Ok(Gemm {
            alpha: attrs.float("alpha", 1.0)?,
            beta: attrs.float("beta", 1.0)?,
            trans_a: attrs.int("transA", 0)? != 0,
            trans_b: attrs.int("transB", 0)? != 0,
        })
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Attr)> {
        vec![
            ("alpha".into(), Attr::Float(self.alpha)),
            ("beta".into(), Attr::Float(self.beta)),
            ("transA".into(), Attr::Int(self.trans_a as i64)),
            ("transB".into(), Attr::Int(self.trans_b as i64)),
        ]
    }

    pub(crate) fn infer(&self, inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
        let a = input(inputs, 0)?;
        let b = input(inputs, 1)?;
        let dtype = a.info.dtype.or(b.info.dtype);
        let (Some(sa), Some(sb)) = (&a.info.shape, &b.info.shape) else {
            return Ok(vec![ValueInfo {
                dtype,
                shape: Some(vec![Dim::Unknown, Dim::Unknown]),
            }]);
        };
        if sa.len() != 2 || sb.len() != 2 {
            return Err(format!(
                "A and B must be matrices, got ranks {} and {}",
                sa.len(),
                sb.len()
            ));
        }
        let (m, ka) = if self.trans_a {
            (&sa[1], &sa[0])
        } else {
            (&sa[0], &sa[1])
        };
        let (kb, n) = if self.trans_b {
            (&sb[1], &sb[0])
        } else {
            (&sb[0], &sb[1])
        };
        if let (Some(x), Some(y)) = (ka.known(), kb.known()) {
            if x != y {
                return Err(format!("inner dimensions differ: A gives {x}, B gives {y}"));
            }
        }
        let out = vec![m.clone(), n.clone()];
        if let Some(c) = optional(inputs, 2).and_then(|c| c.info.shape.as_ref()) {
            if c.len() > 2 {
                return Err(format!("C must have rank 2 or less, got {}", c.len()));
            }
            let merged = broadcast_dims(&out, c)?;
            for (o, m) in out.iter().zip(&merged) {
                if let (Some(x), Some(y)) = (o.known(), m.known()) {
                    if x != y {
                        return Err(format!(
                            "C cannot be broadcast to the output [{},{}]",
                            out[0], out[1]
                        ));
                    }
                }
            }
        }
        Ok(vec![ValueInfo {
            dtype,
            shape: Some(out),
        }])
    }
}

/// MatMul with numpy semantics: batch dims broadcast, 1-D operands promoted and the
/// promoted axis removed from the result.
pub(crate) fn infer_matmul(inputs: &[Option<InferInput>]) -> Result<Vec<ValueInfo>, String> {
    let a = input(inputs, 0)?;
    let b = input(inputs, 1)?;
    let dtype = a.info.dtype.or(b.info.dtype);
    let (Some(sa), Some(sb)) = (&a.info.shape, &b.info.shape) else {
        return Ok(vec![ValueInfo { dtype, shape: None }]);
    };
    if sa.is_empty() || sb.is_empty() {
        return Err("MatMul operands must have rank 1 or more".into());
    }
    let mut pa = sa.clone();
    if pa.len() == 1 {
        pa.insert(0, Dim::Known(1));
    }
    let mut pb = sb.clone();
    if pb.len() == 1 {
        pb.push(Dim::Known(1));
    }
    let (ka, kb) = (&pa[pa.len() - 1], &pb[pb.len() - 2]);
    if let (Some(x), Some(y)) = (ka.known(), kb.known()) {
        if x != y {
            return Err(format!("inner dimensions differ: {x} vs {y}"));
        }
    }
    let mut out = broadcast_dims(&pa[..pa.len() - 2], &pb[..pb.len() - 2])?;
    if sa.len() > 1 {
        out.push(pa[pa.len() - 2].clone());
    }
    if sb.len() > 1 {
        out.push(pb[pb.len() - 1].clone());
    }
    Ok(vec![ValueInfo {
        dtype,
        shape: Some(out),
    }])
}

/// An Einsum equation resolved against operand ranks. Labels are numbered: the
/// broadcast (ellipsis) axes first, `0..ellipsis_rank`, right-aligned per operand,
/// then one number per letter.
#[derive(Clone, Debug, PartialEq)]
pub struct EinsumPlan {
    /// For each operand, the label of each of its axes (repeated labels take a diagonal).
    pub inputs: Vec<Vec<usize>>,
    /// The label of each output axis.
    pub output: Vec<usize>,
    pub num_labels: usize,
    /// How many labels stand for ellipsis axes (`0..ellipsis_rank`).
    pub ellipsis_rank: usize,
}

fn letter_id(c: char) -> Result<usize, String> {
    match c {
        'a'..='z' => Ok(c as usize - 'a' as usize),
        'A'..='Z' => Ok(26 + c as usize - 'A' as usize),
        _ => Err(format!("'{c}' is not a valid einsum label")),
    }
}

/// Parses one term into letters (`None` for the ellipsis).
fn parse_term(term: &str) -> Result<Vec<Option<usize>>, String> {
    let mut out = Vec::new();
    let mut rest = term.trim();
    let mut seen_ellipsis = false;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if seen_ellipsis {
                return Err(format!("term '{term}' has more than one ellipsis"));
            }
            seen_ellipsis = true;
            out.push(None);
            rest = &rest[3..];
        } else if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
        } else {
            out.push(Some(letter_id(c)?));
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(out)
}

/// Resolves an Einsum `equation` for operands of the given ranks.
pub fn einsum_plan(equation: &str, ranks: &[usize]) -> Result<EinsumPlan, String> {
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (equation, None),
    };
    let terms: Vec<Vec<Option<usize>>> =
        lhs.split(',').map(parse_term).collect::<Result<_, _>>()?;
    if terms.len() != ranks.len() {
        return Err(format!(
            "equation '{equation}' has {} operands but {} inputs were given",
            terms.len(),
            ranks.len()
        ));
    }
    let mut ellipsis_rank = 0;
    let mut ell_of = Vec::with_capacity(terms.len());
    for (t, &rank) in terms.iter().zip(ranks) {
        let letters = t.iter().filter(|x| x.is_some()).count();
        let has_ell = t.len() != letters;
        if rank < letters || (!has_ell && rank != letters) {
            return Err(format!(
                "operand with rank {rank} does not match its term of {letters} labels"
            ));
        }
        let e = rank - letters;
        ellipsis_rank = ellipsis_rank.max(e);
        ell_of.push(e);
    }
    let base = ellipsis_rank;
    let mut inputs = Vec::with_capacity(terms.len());
    let mut counts = [0usize; 52];
    for (t, &e) in terms.iter().zip(&ell_of) {
        let mut labels = Vec::new();
        for item in t {
            match item {
                None => labels.extend(ellipsis_rank - e..ellipsis_rank),
                Some(l) => {
                    counts[*l] += 1;
                    labels.push(base + l);
                }
            }
        }
        inputs.push(labels);
    }
    let output = match rhs {
        Some(r) => {
            let mut out = Vec::new();
            for item in parse_term(r)? {
                match item {
                    None => out.extend(0..ellipsis_rank),
                    Some(l) => {
                        if counts[l] == 0 {
                            return Err(format!(
                                "output label '{}' does not appear in any input",
                                label_char(l)
                            ));
                        }
                        if out.contains(&(base + l)) {
                            return Err(format!("output label '{}' appears twice", label_char(l)));
                        }
                        out.push(base + l);
                    }
                }
            }
            out
        }
        None => {
            let mut out: Vec<usize> = (0..ellipsis_rank).collect();
            // Implicit output: letters seen exactly once, in alphabetical (ASCII) order.
            let mut letters: Vec<usize> = (0..52).filter(|&l| counts[l] == 1).collect();
            letters.sort_by_key(|&l| label_char(l));
            out.extend(letters.into_iter().map(|l| base + l));
            out
        }
    };
    Ok(EinsumPlan {
        inputs,
        output,
        num_labels: base + 52,
        ellipsis_rank,
    })
}

fn label_char(l: usize) -> char {
    if l < 26 {
        (b'a' + l as u8) as char
    } else {
        (b'A' + (l - 26) as u8) as char
    }
}

pub(crate) fn infer_einsum(
    equation: &str,
    inputs: &[Option<InferInput>],
) -> Result<Vec<ValueInfo>, String> {
    let mut infos = Vec::new();
    for i in 0..inputs.len() {
        infos.push(input(inputs, i)?);
    }
    let dtype = infos.iter().find_map(|x| x.info.dtype);
    let shapes: Option<Vec<&Vec<Dim>>> = infos.iter().map(|x| x.info.shape.as_ref()).collect();
    let Some(shapes) = shapes else {
        return Ok(vec![ValueInfo { dtype, shape: None }]);
    };
    let ranks: Vec<usize> = shapes.iter().map(|s| s.len()).collect();
    let plan = einsum_plan(equation, &ranks)?;
    let mut dims: Vec<Option<Dim>> = vec![None; plan.num_labels];
    for (labels, shape) in plan.inputs.iter().zip(&shapes) {
        for (&l, d) in labels.iter().zip(shape.iter()) {
            let merged = match (&dims[l], d) {
                (None, d) => d.clone(),
                (Some(Dim::Known(x)), Dim::Known(y)) if x == y => Dim::Known(*x),
                (Some(Dim::Known(1)), d) | (Some(d), Dim::Known(1)) if l < plan.ellipsis_rank => {
                    d.clone()
                }
                (Some(Dim::Known(x)), Dim::Known(y)) => {
                    return Err(format!("einsum label dimensions disagree: {x} vs {y}"));
                }
                (Some(Dim::Known(x)), _) | (Some(_), Dim::Known(x)) => Dim::Known(*x),
                (Some(a), b) if a == b => a.clone(),
                _ => Dim::Unknown,
            };
            dims[l] = Some(merged);
        }
    }
    let out = plan
        .output
        .iter()
        .map(|&l| dims[l].clone().unwrap_or(Dim::Known(1)))
        .collect();
    Ok(vec![ValueInfo {
        dtype,
        shape: Some(out),
    }])
}
