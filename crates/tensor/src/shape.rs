use crate::TensorError;

/// Number of elements of a shape, or an error when it overflows `usize`.
pub fn element_count(shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::TooLarge(shape.to_vec()))
}

/// Row-major strides (in elements) of a shape.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// The multidirectional (numpy-style) broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, TensorError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(TensorError::Broadcast {
                    a: a.to_vec(),
                    b: b.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

/// Maps each flat index of a broadcast output shape to the flat index of an input
/// whose shape broadcasts to it.
///
/// Iterate with [`BroadcastIndexer::indices`]; the input's broadcast dimensions get
/// stride 0.
#[derive(Clone, Debug)]
pub struct BroadcastIndexer {
    out_shape: Vec<usize>,
    strides: Vec<usize>,
}

impl BroadcastIndexer {
    /// `input` must broadcast to `out_shape` (rank may be lower).
    pub fn new(input: &[usize], out_shape: &[usize]) -> Self {
        let rank = out_shape.len();
        let in_strides = strides_of(input);
        let mut strides = vec![0usize; rank];
        for i in 0..input.len() {
            let o = rank - input.len() + i;
            if input[i] != 1 {
                strides[o] = in_strides[i];
            }
        }
        Self {
            out_shape: out_shape.to_vec(),
            strides,
        }
    }

    /// True when the input is laid out exactly like the output (no broadcasting).
    pub fn is_identity(&self) -> bool {
        strides_of(&self.out_shape) == self.strides
    }

    /// The input flat index for every output position, in row-major order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let total: usize = self.out_shape.iter().product();
        let rank = self.out_shape.len();
        let mut counter = vec![0usize; rank];
        let mut offset = 0usize;
        (0..total).map(move |i| {
            if i > 0 {
                let mut d = rank;
                while d > 0 {
                    d -= 1;
                    counter[d] += 1;
                    offset += self.strides[d];
                    if counter[d] < self.out_shape[d] {
                        break;
                    }
                    offset -= self.strides[d] * counter[d];
                    counter[d] = 0;
                }
            }
            offset
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        assert_eq!(
            broadcast_shapes(&[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert_eq!(broadcast_shapes(&[], &[5]).unwrap(), vec![5]);
        assert!(broadcast_shapes(&[2], &[3]).is_err());
    }

    #[test]
    fn indexer_walks_broadcast_input() {
        let ix = BroadcastIndexer::new(&[3, 1], &[2, 3, 2]);
        let got: Vec<usize> = ix.indices().collect();
        assert_eq!(got, vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
    }
}
