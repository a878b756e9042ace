/// Errors while running a graph; each names the input or node concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
    #[error("node '{node}' ({op_type}): {reason}")]
    Node {
        node: String,
        op_type: String,
        reason: String,
    },
    #[error("{0}")]
    Graph(String),
    /// A graph optimization could not proceed (the graph is left valid but possibly
    /// partly optimized).
    #[error("optimization pass '{pass}': {reason}")]
    Optimize { pass: String, reason: String },
}
