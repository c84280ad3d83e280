//! cuBLAS side of the executor: one handle on the engine's stream with a fixed workspace (so
//! that nothing allocates while the graph is captured) and the GEMM of a [`GemmCall`].

use std::ffi::{c_int, c_void};

use cudarc::cublas::{result as br, sys as bs};

use super::calls::{DType, GemmCall};
use super::device::{err, DevBuf};
use crate::error::{Error, Result};

/// cuBLAS workspace: 32 MiB, what cuBLAS itself recommends for Hopper.
const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLAS handle bound to the engine's stream.
pub(crate) struct Blas {
    handle: bs::cublasHandle_t,
    // Kept alive as long as the handle uses it.
    _workspace: DevBuf,
}

impl Blas {
    /// Creates the handle on `stream` with its own workspace.
    pub(crate) fn new(stream: cudarc::driver::sys::CUstream) -> Result<Blas> {
        let handle = br::create_handle().map_err(err("cublasCreate"))?;
        let ws = DevBuf::zeroed(WORKSPACE_BYTES, stream);
        let blas = Blas {
            handle,
            _workspace: match ws {
                Ok(ws) => ws,
                Err(e) => {
                    // SAFETY: created above, not used anywhere else.
                    let _ = unsafe { br::destroy_handle(handle) };
                    return Err(e);
                }
            },
        };
        // SAFETY: a live stream of the current context; the handle is new, nothing in flight.
        unsafe { blas.set_stream(stream) }?;
        // SAFETY: a live handle and a workspace that outlives the handle.
        // Default math mode: CUBLAS_COMPUTE_32F stays true fp32 (no TF32) for fp32 plans.
        unsafe {
            bs::cublasSetWorkspace_v2(
                handle,
                blas._workspace.ptr() as *mut c_void,
                WORKSPACE_BYTES,
            )
            .result()
            .map_err(err("cublasSetWorkspace"))?;
        }
        Ok(blas)
    }

    /// Binds the handle to `stream` (a graph is recorded on another stream).
    ///
    /// # Safety
    /// `stream` is a live stream of the handle's device; no call of the handle is in flight.
    pub(crate) unsafe fn set_stream(&self, stream: cudarc::driver::sys::CUstream) -> Result<()> {
        // SAFETY: the caller's contract; the handle is live (owned).
        unsafe { br::set_stream(self.handle, stream as _) }.map_err(err("cublasSetStream"))
    }

    /// `acc[m, n] = x[m, k] · w[n, k]ᵀ` in f32 (CUBLAS_COMPUTE_32F), column-major as
    /// `accᵀ (n×m) = op_T(w) (n×k) · xᵀ (k×m)`.
    ///
    /// # Safety
    /// `x`, `w` and `acc` must hold `m·k`, `n·k` (in `dtype`) and `m·n` f32 values.
    pub(crate) unsafe fn gemm(
        &self,
        g: &GemmCall,
        dtype: DType,
        x: u64,
        w: u64,
        acc: u64,
    ) -> Result<()> {
        let ci = |v: usize| {
            c_int::try_from(v)
                .map_err(|_| Error::Backend(format!("gpu: {v} does not fit a cuBLAS int")))
        };
        let (m, n, k) = (ci(g.m)?, ci(g.n)?, ci(g.k)?);
        let ab = match dtype {
            DType::F32 => bs::cudaDataType::CUDA_R_32F,
            DType::F16 => bs::cudaDataType::CUDA_R_16F,
        };
        let (one, zero) = (1f32, 0f32);
        br::gemm_ex(
            self.handle,
            bs::cublasOperation_t::CUBLAS_OP_T,
            bs::cublasOperation_t::CUBLAS_OP_N,
            n,
            m,
            k,
            &one as *const f32 as *const c_void,
            w as *const c_void,
            ab,
            k,
            x as *const c_void,
            ab,
            k,
            &zero as *const f32 as *const c_void,
            acc as *mut c_void,
            bs::cudaDataType::CUDA_R_32F,
            n,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            bs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .map_err(err("cublasGemmEx"))
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created in Blas::new, destroyed once, before its workspace is freed
        // (fields drop after this body).
        let _ = unsafe { br::destroy_handle(self.handle) };
    }
}
