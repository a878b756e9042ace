//! slimnet's runtime. For now this is the reference interpreter: a direct, exact
//! implementation of every supported operator, used as the oracle for the faster
//! paths that come later, plus the graph optimizations run before execution.

mod error;
mod fold;
mod interpreter;
pub mod optimize;
pub mod reference;
mod session;

pub use error::RuntimeError;
pub use fold::ReferenceFolder;
pub use interpreter::{check_inputs, run_graph, run_model};
pub use optimize::{optimize, specialize, InputBinding, OptimizeOptions, OptimizeReport};
pub use session::{PlanSummary, Session, SessionOptions, StepProfile};
