//! Numpy-style (multidirectional) broadcasting of several inputs, walked as runs of
//! a contiguous inner loop so that same-shape, scalar and row/column broadcasts all
//! reduce to tight loops.

use slimnet_tensor::{broadcast_shapes, element_count};

/// How `N` input shapes broadcast to one output shape.
///
/// Dimensions of size 1 are dropped and adjacent dimensions that are contiguous in
/// every input are merged, so the innermost remaining dimension is as long as
/// possible; each input's stride along it is 0 (broadcast) or 1.
#[derive(Clone, Debug)]
pub struct Plan<const N: usize> {
    /// The broadcast output shape.
    pub shape: Vec<usize>,
    len: usize,
    dims: Vec<usize>,
    strides: Vec<[usize; N]>,
}

impl<const N: usize> Plan<N> {
    /// Plans the broadcast of `shapes`, or explains why they do not broadcast.
    pub fn new(shapes: [&[usize]; N]) -> Result<Self, String> {
        let mut shape: Vec<usize> = Vec::new();
        for s in shapes {
            shape = broadcast_shapes(&shape, s).map_err(|e| e.to_string())?;
        }
        let len = element_count(&shape).map_err(|e| e.to_string())?;
        let rank = shape.len();
        // Row-major strides of each input, padded to the output rank, 0 where broadcast.
        let mut full: Vec<[usize; N]> = vec![[0; N]; rank];
        for (k, s) in shapes.iter().enumerate() {
            let mut stride = 1usize;
            for i in (0..s.len()).rev() {
                let o = rank - s.len() + i;
                if s[i] != 1 {
                    full[o][k] = stride;
                }
                stride = stride.saturating_mul(s[i]);
            }
        }
        let mut dims: Vec<usize> = Vec::with_capacity(rank);
        let mut strides: Vec<[usize; N]> = Vec::with_capacity(rank);
        for o in 0..rank {
            if shape[o] == 1 {
                continue;
            }
            if let Some(prev) = strides.last() {
                // Merge with the previous (outer) dimension when it is contiguous with
                // this one in every input.
                if (0..N).all(|k| prev[k] == full[o][k] * shape[o]) {
                    let n = dims.len() - 1;
                    dims[n] *= shape[o];
                    strides[n] = full[o];
                    continue;
                }
            }
            dims.push(shape[o]);
            strides.push(full[o]);
        }
        Ok(Plan {
            shape,
            len,
            dims,
            strides,
        })
    }

    /// Number of output elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f(offsets, n, inner_strides)` for each run of `n` consecutive output
    /// elements, in row-major output order: element `j` of the run reads input `k`
    /// at `offsets[k] + j * inner_strides[k]`.
    pub fn for_each_run(&self, mut f: impl FnMut([usize; N], usize, [usize; N])) {
        if self.len == 0 {
            return;
        }
        let rank = self.dims.len();
        if rank == 0 {
            f([0; N], 1, [0; N]);
            return;
        }
        let n = self.dims[rank - 1];
        let inner = self.strides[rank - 1];
        let mut counter = vec![0usize; rank - 1];
        let mut offsets = [0usize; N];
        loop {
            f(offsets, n, inner);
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                counter[d] += 1;
                for (o, s) in offsets.iter_mut().zip(&self.strides[d]) {
                    *o += s;
                }
                if counter[d] < self.dims[d] {
                    break;
                }
                for (o, s) in offsets.iter_mut().zip(&self.strides[d]) {
                    *o -= s * counter[d];
                }
                counter[d] = 0;
            }
        }
    }
}

/// An empty vector with room for `n` elements, or an error when they do not fit in
/// memory (a broadcast can ask for far more than its inputs hold).
fn reserve<O>(n: usize) -> Result<Vec<O>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("the broadcast output of {n} elements does not fit in memory"))?;
    Ok(v)
}

/// `f` applied to every pair of broadcast elements of `a` (shape `sa`) and `b`
/// (shape `sb`); returns the output shape and values.
///
/// The slices must hold exactly the elements of their shapes.
pub fn binary<A, B, O>(
    a: &[A],
    sa: &[usize],
    b: &[B],
    sb: &[usize],
    f: impl Fn(&A, &B) -> O,
) -> Result<(Vec<usize>, Vec<O>), String> {
    if sa == sb {
        return Ok((sa.to_vec(), a.iter().zip(b).map(|(x, y)| f(x, y)).collect()));
    }
    let plan = Plan::new([sa, sb])?;
    let mut out = reserve(plan.len())?;
    plan.for_each_run(|[oa, ob], n, [ia, ib]| match (ia, ib) {
        (1, 1) => out.extend(
            a[oa..oa + n]
                .iter()
                .zip(&b[ob..ob + n])
                .map(|(x, y)| f(x, y)),
        ),
        (1, 0) => {
            let y = &b[ob];
            out.extend(a[oa..oa + n].iter().map(|x| f(x, y)));
        }
        (0, 1) => {
            let x = &a[oa];
            out.extend(b[ob..ob + n].iter().map(|y| f(x, y)));
        }
        _ => out.extend((0..n).map(|j| f(&a[oa + j * ia], &b[ob + j * ib]))),
    });
    Ok((plan.shape, out))
}

/// `f` applied to every triple of broadcast elements (`Where`).
pub fn ternary<A, B, C, O>(
    (a, sa): (&[A], &[usize]),
    (b, sb): (&[B], &[usize]),
    (c, sc): (&[C], &[usize]),
    f: impl Fn(&A, &B, &C) -> O,
) -> Result<(Vec<usize>, Vec<O>), String> {
    if sa == sb && sb == sc {
        let v = a
            .iter()
            .zip(b)
            .zip(c)
            .map(|((x, y), z)| f(x, y, z))
            .collect();
        return Ok((sa.to_vec(), v));
    }
    let plan = Plan::new([sa, sb, sc])?;
    let mut out = reserve(plan.len())?;
    plan.for_each_run(|[oa, ob, oc], n, [ia, ib, ic]| {
        out.extend((0..n).map(|j| f(&a[oa + j * ia], &b[ob + j * ib], &c[oc + j * ic])));
    });
    Ok((plan.shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimnet_tensor::BroadcastIndexer;

    fn naive(sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<(usize, usize)>) {
        let out = broadcast_shapes(sa, sb).unwrap();
        let ia: Vec<usize> = BroadcastIndexer::new(sa, &out).indices().collect();
        let ib: Vec<usize> = BroadcastIndexer::new(sb, &out).indices().collect();
        (out, ia.into_iter().zip(ib).collect())
    }

    fn check(sa: &[usize], sb: &[usize]) {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let a: Vec<usize> = (0..na).collect();
        let b: Vec<usize> = (0..nb).collect();
        let (shape, got) = binary(&a, sa, &b, sb, |&x, &y| (x, y)).unwrap();
        let (want_shape, want) = naive(sa, sb);
        assert_eq!(shape, want_shape, "{sa:?} {sb:?}");
        assert_eq!(got, want, "{sa:?} {sb:?}");
    }

    #[test]
    fn matches_the_naive_indexer() {
        check(&[2, 3, 4], &[2, 3, 4]);
        check(&[2, 3, 4], &[]);
        check(&[], &[5]);
        check(&[2, 3, 4], &[4]);
        check(&[2, 3, 4], &[3, 1]);
        check(&[2, 1, 4], &[3, 1]);
        check(&[1, 3, 1, 5], &[2, 1, 4, 1]);
        check(&[2, 1, 1, 3], &[1, 1]);
        check(&[0, 3], &[3]);
        check(&[1], &[1, 1, 1]);
        check(&[4, 1, 3, 2], &[4, 5, 1, 2]);
    }

    #[test]
    fn huge_broadcasts_are_errors() {
        let a = [0u8; 1];
        assert!(binary(&a, &[1, 1], &a, &[1, 1], |x, y| x + y).is_ok());
        let big = vec![0u8; 1 << 20];
        assert!(binary(
            &big,
            &[1 << 20, 1],
            &big,
            &[1, 1 << 20],
            |&x, &y| [x as u64 + y as u64; 32]
        )
        .is_err());
    }

    #[test]
    fn incompatible_shapes_are_errors() {
        assert!(binary(&[1, 2], &[2], &[1, 2, 3], &[3], |x, y| x + y).is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_broadcasts(dims in proptest::collection::vec((1usize..4, 0usize..3), 0..5), cut in 0usize..5) {
            // Each output dim is either kept or set to 1 in each input.
            let sa: Vec<usize> = dims.iter().map(|&(d, m)| if m == 1 { 1 } else { d }).collect();
            let sb: Vec<usize> = dims.iter().map(|&(d, m)| if m == 2 { 1 } else { d }).collect();
            let sb = sb[cut.min(sb.len())..].to_vec();
            check(&sa, &sb);
        }
    }
}
