/// A problem with one attribute of one node, before the node's name is known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("attribute '{attribute}': {reason}")]
pub struct AttrError {
    pub attribute: String,
    pub reason: String,
}

impl AttrError {
    pub fn new(attribute: impl Into<String>, reason: impl Into<String>) -> Self {
        AttrError {
            attribute: attribute.into(),
            reason: reason.into(),
        }
    }
}

/// Errors of the IR layer; each names the node (or value) it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrError {
    #[error("node '{node}': unsupported operator {domain}{op_type} (opset {opset})")]
    UnsupportedOp {
        node: String,
        op_type: String,
        domain: String,
        opset: i64,
    },
    #[error("node '{node}' ({op_type}): {error}")]
    Attribute {
        node: String,
        op_type: String,
        error: AttrError,
    },
    #[error("node '{node}' ({op_type}): {reason}")]
    Node {
        node: String,
        op_type: String,
        reason: String,
    },
    #[error("{0}")]
    Graph(String),
}
