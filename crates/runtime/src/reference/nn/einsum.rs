//! Einsum: a direct loop over every output and contracted index (f64 for floats,
//! wrapping i64 for integers).

use slimnet_ir::ops::nn::einsum_plan;
use slimnet_tensor::{strides_of, DType, Tensor};

use super::float::{count, to_tensor};
use crate::reference::util::input;

trait Ring: Copy {
    const ZERO: Self;
    const ONE: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
}

impl Ring for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
}

impl Ring for i64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn mul(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
}

/// Advances a row-major counter over `dims`, keeping each operand's offset in step.
fn step(idx: &mut [usize], dims: &[usize], strides: &[Vec<usize>], offsets: &mut [usize]) {
    for j in (0..idx.len()).rev() {
        idx[j] += 1;
        for (o, s) in offsets.iter_mut().zip(strides) {
            *o += s[j];
        }
        if idx[j] < dims[j] {
            return;
        }
        for (o, s) in offsets.iter_mut().zip(strides) {
            *o -= s[j] * dims[j];
        }
        idx[j] = 0;
    }
}

fn contract<V: Ring>(
    vals: &[Vec<V>],
    out_dims: &[usize],
    sum_dims: &[usize],
    out_str: &[Vec<usize>],
    sum_str: &[Vec<usize>],
) -> Result<Vec<V>, String> {
    let total_out = count(out_dims)?;
    let total_sum = count(sum_dims)?;
    let mut out = Vec::with_capacity(total_out);
    let mut oidx = vec![0usize; out_dims.len()];
    let mut base = vec![0usize; vals.len()];
    let mut sidx = vec![0usize; sum_dims.len()];
    let mut off = vec![0usize; vals.len()];
    for _ in 0..total_out {
        let mut acc = V::ZERO;
        off.copy_from_slice(&base);
        sidx.fill(0);
        for _ in 0..total_sum {
            let mut p = V::ONE;
            for (v, &o) in vals.iter().zip(off.iter()) {
                p = p.mul(v[o]);
            }
            acc = acc.add(p);
            step(&mut sidx, sum_dims, sum_str, &mut off);
        }
        out.push(acc);
        step(&mut oidx, out_dims, out_str, &mut base);
    }
    Ok(out)
}

pub fn run_einsum(equation: &str, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let ops: Vec<&Tensor> = (0..inputs.len())
        .map(|i| input(inputs, i))
        .collect::<Result<_, _>>()?;
    let Some(first) = ops.first() else {
        return Err("Einsum needs at least one input".into());
    };
    let dtype = first.dtype();
    if let Some(o) = ops.iter().find(|t| t.dtype() != dtype) {
        return Err(format!(
            "inputs have different dtypes: {dtype} and {}",
            o.dtype()
        ));
    }
    if !(dtype.is_float() || dtype.is_integer()) {
        return Err(format!("Einsum does not support dtype {dtype}"));
    }
    let ranks: Vec<usize> = ops.iter().map(|t| t.rank()).collect();
    let plan = einsum_plan(equation, &ranks)?;
    let mut dims = vec![None::<usize>; plan.num_labels];
    for (labels, t) in plan.inputs.iter().zip(&ops) {
        for (&l, &d) in labels.iter().zip(t.shape()) {
            dims[l] = Some(match dims[l] {
                None => d,
                Some(x) if x == d => d,
                Some(1) if l < plan.ellipsis_rank => d,
                Some(x) if l < plan.ellipsis_rank && d == 1 => x,
                Some(x) => return Err(format!("einsum label dimensions disagree: {x} vs {d}")),
            });
        }
    }
    let used: Vec<usize> = (0..plan.num_labels)
        .filter(|&l| dims[l].is_some())
        .collect();
    let sum_labels: Vec<usize> = used
        .iter()
        .copied()
        .filter(|l| !plan.output.contains(l))
        .collect();
    let dim = |l: usize| dims[l].unwrap_or(1);
    let label_strides: Vec<Vec<usize>> = plan
        .inputs
        .iter()
        .zip(&ops)
        .map(|(labels, t)| {
            let mut s = vec![0usize; plan.num_labels];
            for ((&l, &d), st) in labels.iter().zip(t.shape()).zip(strides_of(t.shape())) {
                if d != 1 || dim(l) == 1 {
                    s[l] += st;
                }
            }
            s
        })
        .collect();
    let pick = |ls: &[usize]| -> Vec<Vec<usize>> {
        label_strides
            .iter()
            .map(|s| ls.iter().map(|&l| s[l]).collect())
            .collect()
    };
    let out_dims: Vec<usize> = plan.output.iter().map(|&l| dim(l)).collect();
    let sum_dims: Vec<usize> = sum_labels.iter().map(|&l| dim(l)).collect();
    let (out_str, sum_str) = (pick(&plan.output), pick(&sum_labels));
    if dtype.is_float() {
        let vals: Vec<Vec<f64>> = ops
            .iter()
            .map(|t| t.to_vec::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let out = contract(&vals, &out_dims, &sum_dims, &out_str, &sum_str)?;
        Ok(vec![to_tensor(out_dims, out, dtype)?])
    } else {
        let vals: Vec<Vec<i64>> = ops
            .iter()
            .map(|t| t.to_i64_vec())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let out = contract(&vals, &out_dims, &sum_dims, &out_str, &sum_str)?;
        let t = Tensor::from_vec(out_dims, out).map_err(|e| e.to_string())?;
        Ok(vec![if dtype == DType::I64 {
            t
        } else {
            t.cast(dtype).map_err(|e| e.to_string())?
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn matmul_trace_diagonal_and_implicit_output() {
        let a = t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = t(vec![2, 2], vec![5.0, 6.0, 7.0, 8.0]);
        let mm = run_einsum("ij,jk->ik", &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(mm[0].as_slice::<f32>().unwrap(), &[19.0, 22.0, 43.0, 50.0]);
        let tr = run_einsum("ii", &[Some(&a)]).unwrap();
        assert_eq!(tr[0].shape(), &[] as &[usize]);
        assert_eq!(tr[0].as_slice::<f32>().unwrap(), &[5.0]);
        let diag = run_einsum("ii->i", &[Some(&a)]).unwrap();
        assert_eq!(diag[0].as_slice::<f32>().unwrap(), &[1.0, 4.0]);
        let tr_implicit = run_einsum("ji", &[Some(&a)]).unwrap();
        assert_eq!(
            tr_implicit[0].as_slice::<f32>().unwrap(),
            &[1.0, 3.0, 2.0, 4.0]
        );
    }

    #[test]
    fn ellipsis_broadcasts() {
        let a = t(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = t(vec![3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let out = run_einsum("...j,...j->...", &[Some(&a), Some(&b)]).unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(
            out[0].as_slice::<f32>().unwrap(),
            &[1.0, 2.0, 3.0, 3.0, 4.0, 7.0]
        );
        assert!(run_einsum("ij,jk->ik", &[Some(&a), Some(&b)]).is_err());
    }
}
