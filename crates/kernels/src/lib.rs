//! Compute kernels for slimnet.
//!
//! Every kernel has a portable version; on x86-64, AVX2+FMA and AVX-512F versions
//! are overlaid at run time after CPU-feature detection (never by build flags, so one
//! binary runs on any x86-64), and on aarch64 a NEON sgemm. The [`KernelTable`] holds one function per slot; the
//! process-wide table ([`global`]) follows the `SLIMNET_KERNEL_TIER` environment
//! variable (`portable`, `neon`, `avx2` or `avx512`) when it is set, and otherwise picks the
//! best tier the CPU supports. Forcing a tier the CPU lacks is an error, never
//! undefined behaviour.
//!
//! Slots: `sgemm` (f32 matrix multiply, see [`KernelTable::sgemm`]), the convolution
//! kernels (`conv`), the elementwise kernels (`eltwise`) and the quantized kernels
//! (`qgemm`: quantization, int8 GEMM and convolution, int4 weight-only GEMM). Kernels that split work
//! over threads take a [`Threads`].

pub mod conv;
mod cpu;
pub mod eltwise;
mod epilogue;
mod error;
pub mod gemm;
mod parallel;
pub mod qgemm;
mod table;

pub use cpu::{CpuFeatures, Tier};
pub use epilogue::{Activation, Bias, Epilogue};
pub use error::KernelError;
pub use gemm::SgemmShape;
pub use parallel::{default_thread_count, Threads};
pub use table::{global, report, KernelReport, KernelTable, TIER_ENV};
