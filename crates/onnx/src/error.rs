use slimnet_ir::IrError;

/// Errors reading or writing ONNX files. Each names the file and, where it applies,
/// the tensor, node or field, with one line of reason.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not an ONNX model: {reason}")]
    NotOnnx { path: String, reason: String },
    #[error("{path}: {reason}")]
    Unsupported { path: String, reason: String },
    #[error("{path}: tensor '{tensor}': {reason}")]
    Tensor {
        path: String,
        tensor: String,
        reason: String,
    },
    #[error("{path}: {error}")]
    Graph { path: String, error: IrError },
    #[error("{path}: cannot write: {reason}")]
    Write { path: String, reason: String },
}

/// An import problem before the file name is attached.
#[derive(Debug)]
pub(crate) enum ImportError {
    Unsupported(String),
    Tensor { tensor: String, reason: String },
    Graph(IrError),
}

impl ImportError {
    pub(crate) fn in_file(self, path: &str) -> OnnxError {
        let path = path.to_string();
        match self {
            ImportError::Unsupported(reason) => OnnxError::Unsupported { path, reason },
            ImportError::Tensor { tensor, reason } => OnnxError::Tensor {
                path,
                tensor,
                reason,
            },
            ImportError::Graph(error) => OnnxError::Graph { path, error },
        }
    }
}

impl From<IrError> for ImportError {
    fn from(e: IrError) -> Self {
        ImportError::Graph(e)
    }
}
