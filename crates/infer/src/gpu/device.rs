//! Raw device allocations and error mapping for the executor. The executor works with byte
//! offsets into a few large allocations (arena, weights, workspace), so it owns raw
//! `CUdeviceptr`s rather than typed cudarc slices.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;

use cudarc::driver::{result, sys};

use crate::error::{Error, Result};

/// Maps a CUDA / cuDNN / cuBLAS error to [`Error::Backend`] naming the call.
pub(crate) fn err<E: Debug>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Backend(format!("gpu: {what}: {e:?}"))
}

/// One stream-ordered device allocation (`cuMemAllocAsync` / `cuMemFreeAsync` on the
/// engine's stream), freed on drop. Stream-ordered, because `cuMemFree` waits for the whole
/// device, which never finishes while the resident gather kernel runs. The owner keeps the
/// stream alive and its context current on the dropping thread (the engine binds it in its
/// own `Drop` and drops its stream after its buffers).
#[derive(Debug)]
pub(crate) struct DevBuf {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    stream: sys::CUstream,
}

impl DevBuf {
    /// Allocates `bytes` (at least 1) of device memory and zero-fills it on `stream`, so that
    /// nothing reads undefined bytes (padded batch slots, the arena before the first batch).
    /// The fill is ordered before later work on `stream`; the legacy default stream is never
    /// used, so loading an engine does not wait for (or block) kernels on other streams, such
    /// as the resident gather kernel.
    pub(crate) fn zeroed(bytes: usize, stream: sys::CUstream) -> Result<DevBuf> {
        let bytes = bytes.max(1);
        // SAFETY: allocation from the device's default pool, ordered on a live `stream`; the
        // pointer is owned by the returned value and freed exactly once in Drop.
        let ptr = unsafe { result::malloc_async(stream, bytes) }.map_err(err("cuMemAllocAsync"))?;
        let buf = DevBuf { ptr, bytes, stream };
        // SAFETY: the range is the allocation just made; `stream` is a live stream.
        unsafe { result::memset_d8_async(ptr, 0, bytes, stream) }
            .map_err(err("cuMemsetD8Async"))?;
        Ok(buf)
    }

    /// Allocates and fills with `data` on `stream`, waiting for that stream (load time only:
    /// `data` may be pageable and is released when this returns).
    pub(crate) fn from_bytes(data: &[u8], stream: sys::CUstream) -> Result<DevBuf> {
        let buf = DevBuf::zeroed(data.len(), stream)?;
        // SAFETY: the allocation holds at least data.len() bytes; `data` outlives the copy
        // because the stream is synchronised before returning.
        unsafe {
            result::memcpy_htod_async(buf.ptr, data, stream).map_err(err("cuMemcpyHtoDAsync"))?;
            result::stream::synchronize(stream).map_err(err("cuStreamSynchronize"))?;
        }
        Ok(buf)
    }

    /// The device address.
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by malloc_async in DevBuf::zeroed on `self.stream`, which is still
        // alive (see the type's doc), and freed only here, ordered after the stream's work
        // that uses it. An error (context already gone) cannot be handled in drop.
        let _ = unsafe { result::free_async(self.ptr, self.stream) };
    }
}

/// Loads cuBLAS (13) and cuBLASLt from the CUDA toolkit directories by full path, once, so
/// that cudarc's later `dlopen("libcublas.so.13")` finds them loaded even when the toolkit is
/// not on the library path (the GPU machine keeps it in /usr/local/cuda-13.0/lib64). cuDNN
/// lives in the system library directory and needs no help. Returns whether both cuDNN and
/// cuBLAS can now be loaded, or which is missing.
pub(crate) fn load_libraries() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut dirs: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
            .iter()
            .filter_map(|v| std::env::var_os(v).filter(|v| !v.is_empty()))
            .map(|v| PathBuf::from(v).join("lib64"))
            .collect();
        dirs.push("/usr/local/cuda/lib64".into());
        dirs.push("/usr/local/cuda-13.0/lib64".into());
        if let Some(exe) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from))
        {
            dirs.push(exe.join("../lib")); // the gpu-check package's lib/
        }
        for dir in &dirs {
            let (lt, blas) = (dir.join("libcublasLt.so.13"), dir.join("libcublas.so.13"));
            if lt.is_file() && blas.is_file() {
                for lib in [lt, blas] {
                    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
                    // SAFETY: loading runs the libraries' ELF constructors only.
                    match unsafe { libloading::os::unix::Library::open(Some(&lib), flags) } {
                        // Never unloaded: cudarc keeps function pointers into it.
                        Ok(l) => std::mem::forget(l),
                        Err(e) => return Err(format!("{}: {e}", lib.display())),
                    }
                }
                break;
            }
        }
        // SAFETY: dlopen probes only.
        let (dnn, blas) = unsafe {
            (
                cudarc::cudnn::sys::is_culib_present(),
                cudarc::cublas::sys::is_culib_present(),
            )
        };
        match (dnn, blas) {
            (true, true) => Ok(()),
            (false, _) => Err("cuDNN 9 (libcudnn.so.9) not found".into()),
            (true, false) => Err(format!(
                "cuBLAS (libcublas.so.13) not found (searched the library path and {})",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    })
    .clone()
    .map_err(|e| Error::Backend(format!("gpu: {e}")))
}
