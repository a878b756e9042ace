use slimnet_runtime::RuntimeError;

/// Why a compression pass failed. Messages name the node, value or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The calibration data does not fit the model.
    #[error("calibration data: {0}")]
    Data(String),
    /// The model cannot be compressed as asked (with the reason).
    #[error("{0}")]
    Unsupported(String),
    /// An option is out of its range.
    #[error("option {name}: {reason}")]
    Option { name: String, reason: String },
    /// Running the model (for calibration or for measuring fidelity) failed.
    #[error("running the model: {0}")]
    Runtime(#[from] RuntimeError),
}
