//! Data readers and metrics for evaluating models: [`Dataset`] turns `.npy`/`.npz`
//! files, image folders and WAV folders into model inputs; [`metrics`] compares outputs.

mod arrays;
mod dataset;
mod error;
mod labels;
pub mod metrics;
mod preprocess;
mod spec;
mod wav;

pub use arrays::{read_npy_file, read_npz_file, write_npz_file};
pub use dataset::{DataOptions, Dataset, DEFAULT_SAMPLE_RATE};
pub use error::DataError;
pub use labels::read_labels;
pub use preprocess::{ChannelOrder, Layout, Preprocess, Resize};
pub use spec::{parse_set_value, InputSpec};
pub use wav::{frame_starts, read_wav};
