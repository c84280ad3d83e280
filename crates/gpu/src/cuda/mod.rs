//! The CUDA side of netml-gpu, through cudarc with dynamic loading: the binary builds and
//! starts without CUDA, and finds libcuda and libnvrtc at run time.
//!
//! - [`nvrtc`]: loading NVRTC, compiling the embedded kernels for the GPU found;
//! - [`device`]: discovery that answers "no GPU, and why" instead of panicking;
//! - [`memory`]: registered host memory and mapped pinned allocations (UVA addresses);
//! - [`green`]: green-context SM partitions and their streams;
//! - [`ingest`]: the GPU implementations of the `Ingest` modes.

pub mod device;
pub mod green;
pub mod ingest;
pub mod memory;
pub mod nvrtc;

pub use device::{discover, discover_logged, GpuInfo, NoGpu};
pub use green::{GreenPartition, GreenStream};
pub use ingest::open;
pub use memory::{MappedPinned, Registered};
pub use nvrtc::{compile, gather_ptx, NvrtcError, GATHER_ENTRIES};
