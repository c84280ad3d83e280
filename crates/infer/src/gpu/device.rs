//! Raw device allocations and error mapping for the executor. The executor works with byte
//! offsets into a few large allocations (arena, weights, workspace), so it owns raw
//! `CUdeviceptr`s rather than typed cudarc slices.

use std::fmt::Debug;
use std::sync::OnceLock;

use cudarc::driver::{result, sys};
use netml_gpu::cuda::libs::{self, Library};

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

/// Loads cuBLAS 13 (after cuBLASLt) and cuDNN 9 (after its sub-libraries) once, by full path
/// from the first folder of `netml_gpu::cuda::libs::search_dirs` holding each (CUDA toolkits,
/// the gpu-check package's `lib/`, the Python environment's pip packages such as
/// `nvidia/cu13/lib` and `nvidia/cudnn/lib`), else by name through the loader's own search,
/// so that cudarc's later `dlopen` by soname finds them loaded. Returns whether both can now
/// be used, or which is missing.
pub(crate) fn load_libraries() -> Result<()> {
    load_cublas()
        .and_then(|()| load_cudnn())
        .map_err(|e| Error::Backend(format!("gpu: {e}")))
}

/// cuBLAS 13, after cuBLASLt from the same folder (once per process).
fn load_cublas() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        libs::preload(
            &cudarc::get_lib_name_candidates("cublas"),
            "libcublas.so.13",
            |n| n == "libcublasLt.so.13",
        )
        .map_err(|e| format!("cuBLAS: {e}"))?;
        // SAFETY: a dlopen probe only.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err("cuBLAS (libcublas.so.13) loaded but not usable by cudarc".into());
        }
        Ok(())
    })
    .clone()
}

/// cuDNN 9, after its sub-libraries from the same folder (once per process): its front
/// library dlopens them (graph, ops, cnn, engines, ...) by soname.
fn load_cudnn() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        libs::preload(
            &cudarc::get_lib_name_candidates("cudnn"),
            "libcudnn.so.9",
            |n| n.starts_with("libcudnn_") && n.ends_with(".so.9"),
        )
        .map_err(|e| format!("cuDNN: {e}"))?;
        // SAFETY: a dlopen probe only (it also loads what cudarc will call, if not yet loaded).
        if !unsafe { cudarc::cudnn::sys::is_culib_present() } {
            return Err("cuDNN 9 (libcudnn.so.9) loaded but not usable by cudarc".into());
        }
        // Two installations mixed fail later with CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH
        // at the first descriptor: say which, now.
        let folders = libs::loaded_folders("libcudnn");
        if folders.len() > 1 {
            let shown: Vec<String> = folders.iter().map(|d| d.display().to_string()).collect();
            return Err(format!(
                "cuDNN files of more than one installation are loaded ({}): keep one on \
                 NETML_CUDA_LIB_DIRS / LD_LIBRARY_PATH",
                shown.join(", ")
            ));
        }
        Ok(())
    })
    .clone()
}

/// cuBLAS and cuDNN as this process loads them: the file ([`load_libraries`]'s choice) and the
/// version each reports (`cublasGetProperty`, `cudnnGetVersion`).
pub fn libraries() -> Vec<Library> {
    let blas = load_cublas().and_then(|()| {
        use cudarc::cublas::sys::{cublasGetProperty, libraryPropertyType as P};
        let mut v = [0; 3];
        for (slot, what) in v
            .iter_mut()
            .zip([P::MAJOR_VERSION, P::MINOR_VERSION, P::PATCH_LEVEL])
        {
            // SAFETY: valid out-pointer; the library is loaded (checked above).
            let st = unsafe { cublasGetProperty(what, slot) };
            if st != cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return Err(format!("cublasGetProperty: {st:?}"));
            }
        }
        Ok(format!("cuBLAS {}.{}.{}", v[0], v[1], v[2]))
    });
    let dnn = load_cudnn().map(|()| {
        // SAFETY: takes no arguments; the library is loaded (checked first).
        let v = unsafe { cudarc::cudnn::sys::cudnnGetVersion() };
        format!("cuDNN {}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
    });
    vec![
        Library {
            name: "libcublas",
            path: libs::loaded_path("libcublas.so"),
            version: blas,
        },
        Library {
            name: "libcudnn",
            path: libs::loaded_path("libcudnn.so"),
            version: dnn,
        },
    ]
}
