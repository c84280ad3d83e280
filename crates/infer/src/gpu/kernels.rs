//! The executor's NVRTC kernels (`cuda-kernels/infer_ops.cu`): compiled once per process for
//! the GPU's architecture (SASS, loaded eagerly: see `netml_gpu::cuda::kernels`), launched
//! from [`KernelCall`]s with raw driver launches (their parameters are copied at launch, so a
//! captured graph keeps them).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule};
use netml_gpu::cuda::CudaSource;

use super::calls::{KArg, KernelCall};
use super::device::err;
use super::{KERNELS_HEADER, KERNELS_SOURCE};
use crate::error::{Error, Result};

/// `infer_ops.cu` with its header, as netml-gpu's NVRTC layer takes a source.
pub const INFER_OPS: CudaSource = CudaSource {
    name: "infer_ops.cu",
    source: KERNELS_SOURCE,
    headers: &[("infer_ops.cuh", KERNELS_HEADER)],
};

/// Compiles `infer_ops.cu` to PTX for `compute_{arch}` through netml-gpu's NVRTC loader (CI's
/// options; any warning is an error): what the tests and CI's ptxas check read.
pub fn compile_ptx(arch: u32) -> Result<cudarc::nvrtc::Ptx> {
    netml_gpu::cuda::compile(INFER_OPS.name, INFER_OPS.source, INFER_OPS.headers, arch)
        .map_err(|e| Error::Backend(format!("gpu: NVRTC: {e}")))
}

/// Device addresses the kernel arguments resolve to.
#[derive(Debug, Clone)]
pub(crate) struct Ptrs {
    pub(crate) arena: u64,
    pub(crate) weights: Vec<u64>,
    pub(crate) scratch: u64,
    pub(crate) input: u64,
    pub(crate) output: u64,
}

/// The loaded module and the entry points the plan uses.
pub(crate) struct Kernels {
    fns: HashMap<String, CudaFunction>,
    _module: Arc<CudaModule>,
}

impl Kernels {
    /// Compiles (once per process) and loads the module, and loads every entry in `names`
    /// eagerly.
    pub(crate) fn load<'a>(
        ctx: &Arc<CudaContext>,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<Kernels> {
        let mut names: Vec<&str> = names.collect();
        names.sort_unstable();
        names.dedup();
        let loaded = netml_gpu::cuda::kernels::load(ctx, &INFER_OPS, &names)
            .map_err(|e| Error::Backend(format!("gpu: {e}")))?;
        let fns = names
            .iter()
            .map(|n| n.to_string())
            .zip(loaded.functions)
            .collect();
        Ok(Kernels {
            fns,
            _module: loaded.module,
        })
    }

    /// Launches `call` on `stream`.
    ///
    /// # Safety
    /// `ptrs` must hold live device memory large enough for what the call addresses (the
    /// [`GpuPlan`](super::GpuPlan) was bounds-checked against the same sizes).
    pub(crate) unsafe fn launch(
        &self,
        call: &KernelCall,
        ptrs: &Ptrs,
        stream: sys::CUstream,
    ) -> Result<()> {
        let f = self
            .fns
            .get(&call.name)
            .ok_or_else(|| Error::Internal(format!("gpu: kernel {} was not loaded", call.name)))?;
        // Each argument in its own 8-byte slot: pointers fill it, 4-byte scalars sit in its
        // low bytes (little-endian), which is where cuLaunchKernel reads a 4-byte parameter.
        let mut slots: Vec<u64> = call
            .args
            .iter()
            .map(|a| match *a {
                KArg::Arena(off) => ptrs.arena + off as u64,
                KArg::Weight(w) => ptrs.weights[w.0],
                KArg::Null => 0,
                KArg::Scratch => ptrs.scratch,
                KArg::Input => ptrs.input,
                KArg::Output => ptrs.output,
                KArg::U32(v) => u64::from(v),
                KArg::I32(v) => u64::from(v as u32),
                KArg::F32(v) => u64::from(v.to_bits()),
            })
            .collect();
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect();
        result::launch_kernel(
            f.cu_function(),
            (call.grid, 1, 1),
            (call.block, 1, 1),
            0,
            stream,
            &mut params,
        )
        .map_err(err("cuLaunchKernel"))
    }
}
