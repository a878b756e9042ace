//! Model analysis: parameters, MACs, activation memory.
