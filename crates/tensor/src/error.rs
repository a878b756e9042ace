use crate::DType;

/// Errors raised while building, converting or reading tensors.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape:?} holds {expected} elements but {actual} were given")]
    LengthMismatch {
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("expected a {expected} tensor, found {actual}")]
    WrongDType { expected: DType, actual: DType },
    #[error("shapes {a:?} and {b:?} cannot be broadcast together")]
    Broadcast { a: Vec<usize>, b: Vec<usize> },
    #[error("shape {0:?} has more elements than this machine can address")]
    TooLarge(Vec<usize>),
    #[error("cannot reshape {from:?} into {to:?}")]
    Reshape { from: Vec<usize>, to: Vec<usize> },
    #[error("unsupported element type: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Npy(String),
}
