//! The GPU executor of a [`Plan`](crate::plan::Plan): cuDNN convolutions and pooling, cuBLAS
//! GEMMs and the small NVRTC kernels of `cuda-kernels/infer_ops.cu`, over one device arena
//! with the plan's offsets, recorded once into a CUDA graph and replayed per batch.
//!
//! Split so that as much as possible is checked without a GPU:
//! * [`translate`](translate::translate) (pure): the plan becomes a [`GpuPlan`], the list of
//!   library calls and kernel launches with every descriptor, stride, offset and launch
//!   configuration decided and bounds-checked against the arena;
//! * the device side (`device`, `dnn`, `pool`, `blas`, `kernels`, `prepare`, `exec`) turns
//!   each call into one cuDNN / cuBLAS / driver call through cudarc's dynamically loaded
//!   bindings, so the crate builds and runs (reporting "no CUDA driver") on machines without
//!   CUDA;
//! * [`host`] runs the kernels' unchanged source on the CPU, for the tests.

mod axis;
mod blas;
mod calls;
mod device;
mod dnn;
mod dnn_calls;
mod exec;
pub mod host;
mod kernels;
mod launch;
mod pool;
mod prepare;
mod translate;

pub use axis::{ConcatPart, SoftmaxParams};
pub use calls::{
    AlgoRule, Call, ConvCall, DType, FilterDesc, GemmCall, GpuPlan, KArg, KernelCall, PoolCall,
    PoolMode, StepCall, TensorDesc,
};
pub use device::libraries;
pub use exec::GpuEngine;
pub use kernels::{compile_ptx, INFER_OPS};
pub use launch::{act_range, grid_for, BLOCK, MAX_GRID};
pub use netml_gpu::cuda::libs::Library;
pub use translate::translate;

/// The CUDA source of the executor's kernels (`cuda-kernels/infer_ops.cu`).
pub const KERNELS_SOURCE: &str = include_str!("../../../../cuda-kernels/infer_ops.cu");
/// Its portability header (`cuda-kernels/infer_ops.cuh`), passed to NVRTC by include name.
pub const KERNELS_HEADER: &str = include_str!("../../../../cuda-kernels/infer_ops.cuh");
