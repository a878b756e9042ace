//! The one error type of this crate.

/// Why data could not be read or fitted to a model; each message is one line that names
/// the file or input and the reason.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or decoded.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// Data could not be fitted to a model input.
    #[error("input '{input}': {reason}")]
    Input { input: String, reason: String },
    /// A preprocessing spec or option is malformed.
    #[error("{0}")]
    Spec(String),
}

impl DataError {
    pub(crate) fn file(path: &std::path::Path, reason: impl std::fmt::Display) -> DataError {
        DataError::File {
            path: path.display().to_string(),
            reason: one_line(&reason.to_string()),
        }
    }

    pub(crate) fn input(input: &str, reason: impl std::fmt::Display) -> DataError {
        DataError::Input {
            input: input.to_string(),
            reason: one_line(&reason.to_string()),
        }
    }
}

/// Joins the lines of a message so every error prints as one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
