//! The matrix-multiply kernel shared by Conv, ConvTranspose, Gemm and MatMul, and
//! the Gemm and MatMul operators.

use slimnet_ir::ops::nn::Gemm;
use slimnet_tensor::{broadcast_shapes, BroadcastIndexer, DType, Tensor};

use super::float::{count, float_dtype, floats, to_tensor, with_float, Float};
use crate::reference::util::{input, optional};

/// Columns of the output processed together, so that a block of B stays in cache.
const COLS: usize = 256;

/// `out[i*ldc + j] += Σ_p a[i*lda + p] * b[p*ldb + j]` for `i < m`, `j < n`, `p < k`.
///
/// Every row is contiguous; the inner loop runs over output columns so that it
/// vectorizes, four output rows at a time. Sums run in `p` order, in `T`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_acc<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    out: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let mut j0 = 0;
    while j0 < n {
        let w = COLS.min(n - j0);
        let mut i = 0;
        while i + 4 <= m {
            let base = i * ldc + j0;
            let rows = &mut out[base..base + 3 * ldc + w];
            let (r0, rest) = rows.split_at_mut(ldc);
            let (r1, rest) = rest.split_at_mut(ldc);
            let (r2, r3) = rest.split_at_mut(ldc);
            let (o0, o1, o2, o3) = (&mut r0[..w], &mut r1[..w], &mut r2[..w], &mut r3[..w]);
            for p in 0..k {
                let bp = &b[p * ldb + j0..p * ldb + j0 + w];
                let (x0, x1, x2, x3) = (
                    a[i * lda + p],
                    a[(i + 1) * lda + p],
                    a[(i + 2) * lda + p],
                    a[(i + 3) * lda + p],
                );
                for ((((y0, y1), y2), y3), &bv) in o0
                    .iter_mut()
                    .zip(o1.iter_mut())
                    .zip(o2.iter_mut())
                    .zip(o3.iter_mut())
                    .zip(bp)
                {
                    *y0 += x0 * bv;
                    *y1 += x1 * bv;
                    *y2 += x2 * bv;
                    *y3 += x3 * bv;
                }
            }
            i += 4;
        }
        while i < m {
            let o = &mut out[i * ldc + j0..i * ldc + j0 + w];
            for p in 0..k {
                let x = a[i * lda + p];
                let bp = &b[p * ldb + j0..p * ldb + j0 + w];
                for (y, &bv) in o.iter_mut().zip(bp) {
                    *y += x * bv;
                }
            }
            i += 1;
        }
        j0 += w;
    }
}

/// Row-major transpose of a `rows x cols` matrix.
pub fn transpose<T: Float>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}

fn same_dtype(a: &Tensor, b: &Tensor) -> Result<(), String> {
    if a.dtype() != b.dtype() {
        return Err(format!(
            "operands have different dtypes: {} and {}",
            a.dtype(),
            b.dtype()
        ));
    }
    Ok(())
}

pub fn run_gemm(op: &Gemm, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let a = input(inputs, 0)?;
    let b = input(inputs, 1)?;
    same_dtype(a, b)?;
    let dtype = float_dtype(a, "A")?;
    with_float!(dtype, "A", gemm_typed(op, a, b, optional(inputs, 2)))
}

fn gemm_typed<T: Float>(
    op: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
) -> Result<Vec<Tensor>, String> {
    if a.rank() != 2 || b.rank() != 2 {
        return Err(format!(
            "A and B must be matrices, got shapes {:?} and {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let (ar, ac) = (a.shape()[0], a.shape()[1]);
    let (br, bc) = (b.shape()[0], b.shape()[1]);
    let (m, k) = if op.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if op.trans_b { (bc, br) } else { (br, bc) };
    if k != kb {
        return Err(format!(
            "inner dimensions differ: A {:?} gives {k}, B {:?} gives {kb}",
            a.shape(),
            b.shape()
        ));
    }
    let av = floats::<T>(a, "A")?;
    let bv = floats::<T>(b, "B")?;
    let av = if op.trans_a {
        std::borrow::Cow::Owned(transpose(&av, ar, ac))
    } else {
        av
    };
    let bv = if op.trans_b {
        std::borrow::Cow::Owned(transpose(&bv, br, bc))
    } else {
        bv
    };
    let mut out = vec![T::ZERO; count(&[m, n])?];
    gemm_acc(m, n, k, &av, k, &bv, n, &mut out, n);
    let alpha = T::from_f32(op.alpha);
    if op.alpha != 1.0 {
        out.iter_mut().for_each(|x| *x = alpha * *x);
    }
    if let Some(c) = c {
        if c.rank() > 2 {
            return Err(format!(
                "C must have rank 2 or less, got shape {:?}",
                c.shape()
            ));
        }
        let bshape = broadcast_shapes(c.shape(), &[m, n]).map_err(|e| e.to_string())?;
        if bshape != [m, n] {
            return Err(format!(
                "C of shape {:?} cannot be broadcast to [{m}, {n}]",
                c.shape()
            ));
        }
        if c.dtype() != a.dtype() {
            return Err(format!("C has dtype {}, A has {}", c.dtype(), a.dtype()));
        }
        let cv = floats::<T>(c, "C")?;
        let beta = T::from_f32(op.beta);
        for (o, ci) in out
            .iter_mut()
            .zip(BroadcastIndexer::new(c.shape(), &[m, n]).indices())
        {
            *o += beta * cv[ci];
        }
    }
    Ok(vec![to_tensor(vec![m, n], out, a.dtype())?])
}

pub fn run_matmul(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, String> {
    let a = input(inputs, 0)?;
    let b = input(inputs, 1)?;
    same_dtype(a, b)?;
    match a.dtype() {
        d if d.is_float() => with_float!(d, "A", matmul_typed(a, b)),
        DType::I32 | DType::I64 | DType::U32 | DType::U64 => matmul_int(a, b),
        d => Err(format!("MatMul does not support dtype {d}")),
    }
}

/// The geometry of a numpy-style batched matmul.
pub(crate) struct MatMulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// For each output matrix, the matrices of A and B it multiplies.
    pub pairs: Vec<(usize, usize)>,
    pub out: Vec<usize>,
}

pub(crate) fn matmul_shape(a: &[usize], b: &[usize]) -> Result<MatMulShape, String> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul operands must have rank 1 or more".into());
    }
    let mut sa = a.to_vec();
    if sa.len() == 1 {
        sa.insert(0, 1);
    }
    let mut sb = b.to_vec();
    if sb.len() == 1 {
        sb.push(1);
    }
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (kb, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != kb {
        return Err(format!("inner dimensions differ: {a:?} x {b:?}"));
    }
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let batch = broadcast_shapes(ba, bb).map_err(|e| e.to_string())?;
    let ia = BroadcastIndexer::new(ba, &batch);
    let ib = BroadcastIndexer::new(bb, &batch);
    let pairs = ia.indices().zip(ib.indices()).collect();
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    count(&out)?;
    Ok(MatMulShape {
        m,
        k,
        n,
        pairs,
        out,
    })
}

fn matmul_typed<T: Float>(a: &Tensor, b: &Tensor) -> Result<Vec<Tensor>, String> {
    let MatMulShape {
        m,
        k,
        n,
        pairs,
        out: shape,
    } = matmul_shape(a.shape(), b.shape())?;
    let av = floats::<T>(a, "A")?;
    let bv = floats::<T>(b, "B")?;
    let mut out = vec![T::ZERO; pairs.len() * m * n];
    for (i, &(pa, pb)) in pairs.iter().enumerate() {
        let a_mat = &av[pa * m * k..(pa + 1) * m * k];
        let b_mat = &bv[pb * k * n..(pb + 1) * k * n];
        gemm_acc(
            m,
            n,
            k,
            a_mat,
            k,
            b_mat,
            n,
            &mut out[i * m * n..(i + 1) * m * n],
            n,
        );
    }
    Ok(vec![to_tensor(shape, out, a.dtype())?])
}

/// Integer MatMul, with wrapping 64-bit arithmetic.
fn matmul_int(a: &Tensor, b: &Tensor) -> Result<Vec<Tensor>, String> {
    let MatMulShape {
        m,
        k,
        n,
        pairs,
        out: shape,
    } = matmul_shape(a.shape(), b.shape())?;
    let av = a.to_i64_vec().map_err(|e| e.to_string())?;
    let bv = b.to_i64_vec().map_err(|e| e.to_string())?;
    let mut out = vec![0i64; pairs.len() * m * n];
    for (i, &(pa, pb)) in pairs.iter().enumerate() {
        for r in 0..m {
            let o = &mut out[(i * m + r) * n..(i * m + r + 1) * n];
            for p in 0..k {
                let x = av[(pa * m + r) * k + p];
                for (y, &bv) in o
                    .iter_mut()
                    .zip(&bv[(pb * k + p) * n..(pb * k + p + 1) * n])
                {
                    *y = y.wrapping_add(x.wrapping_mul(bv));
                }
            }
        }
    }
    let t = Tensor::from_vec(shape, out).map_err(|e| e.to_string())?;
    Ok(vec![if a.dtype() == DType::I64 {
        t
    } else {
        t.cast(a.dtype()).map_err(|e| e.to_string())?
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    proptest! {
        #[test]
        fn gemm_matches_naive(m in 0usize..9, n in 0usize..300, k in 0usize..7, seed in 0u64..1000) {
            let a: Vec<f64> = (0..m * k).map(|i| ((i as u64 * 31 + seed) % 17) as f64 - 8.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i as u64 * 7 + seed) % 13) as f64 - 6.0).collect();
            let mut out = vec![0.0; m * n];
            gemm_acc(m, n, k, &a, k, &b, n, &mut out, n);
            prop_assert_eq!(out, naive(m, n, k, &a, &b));
        }
    }

    #[test]
    fn matmul_broadcasts_batches_and_vectors() {
        let a = Tensor::from_vec(vec![2, 1, 2, 3], (0..12).map(|x| x as f32).collect()).unwrap();
        let b = Tensor::from_vec(vec![3], vec![1f32, 0.0, -1.0]).unwrap();
        let out = run_matmul(&[Some(&a), Some(&b)]).unwrap();
        assert_eq!(out[0].shape(), &[2, 1, 2]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[-2.0, -2.0, -2.0, -2.0]);
        let bad = Tensor::from_vec(vec![4], vec![0f32; 4]).unwrap();
        assert!(run_matmul(&[Some(&a), Some(&bad)]).is_err());
        let ai = Tensor::from_vec(vec![2, 2], vec![1i32, 2, 3, 4]).unwrap();
        let out = run_matmul(&[Some(&ai), Some(&ai)]).unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[7, 10, 15, 22]);
    }

    #[test]
    fn gemm_transposes_and_adds_bias() {
        let a = Tensor::from_vec(vec![2, 2], vec![1f32, 2.0, 3.0, 4.0]).unwrap();
        let b = Tensor::from_vec(vec![2, 2], vec![1f32, 0.0, 0.0, 1.0]).unwrap();
        let c = Tensor::from_vec(vec![2], vec![10f32, 20.0]).unwrap();
        let op = Gemm {
            alpha: 2.0,
            beta: 0.5,
            trans_a: true,
            trans_b: false,
        };
        let out = run_gemm(&op, &[Some(&a), Some(&b), Some(&c)]).unwrap();
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[7.0, 16.0, 9.0, 18.0]);
    }
}
