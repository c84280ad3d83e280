//! The CUDA side of netml-gpu, through cudarc with dynamic loading: the binary builds and
//! starts without CUDA, and finds libcuda, libnvrtc (and, for netml-infer, libcublas and
//! libcudnn) at run time.
//!
//! - [`libs`]: where the libraries are looked for (toolkits, the binary's `lib/`, the Python
//!   environment's pip packages) and which file was loaded;
//! - [`nvrtc`]: loading NVRTC, compiling the embedded kernels;
//! - [`kernels`]: loading them as SASS for the device, eagerly, after the NVRTC/driver rule;
//! - [`device`]: discovery that answers "no GPU, and why" instead of panicking, and contexts
//!   with cudarc's event tracking off;
//! - [`memory`]: registered host memory and mapped pinned allocations (UVA addresses);
//! - [`green`]: green-context SM partitions and their streams;
//! - [`ingest`]: the GPU implementations of the `Ingest` modes.

pub mod device;
pub mod green;
pub mod ingest;
pub mod kernels;
pub mod libs;
pub mod loader;
pub mod memory;
pub mod nvrtc;

pub use device::{context, discover, discover_logged, untracked, GpuInfo, NoGpu};
pub use green::{GreenPartition, GreenStream};
pub use ingest::open;
pub use memory::{MappedPinned, Registered};
pub use nvrtc::{compile, compile_cubin, gather_ptx, CudaSource, NvrtcError, GATHER_ENTRIES};
