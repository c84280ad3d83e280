//! The executor's NVRTC kernels (`cuda-kernels/infer_ops.cu`): compiled once per engine for
//! the GPU's architecture, launched from [`KernelCall`]s with raw driver launches (their
//! parameters are copied at launch, so a captured graph keeps them).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule};

use super::calls::{KArg, KernelCall};
use super::device::err;
use super::{KERNELS_HEADER, KERNELS_SOURCE};
use crate::error::{Error, Result};

/// Compiles `infer_ops.cu` for `sm_{arch}` through netml-gpu's NVRTC loader (CI's options;
/// any warning is an error).
pub fn compile_ptx(arch: u32) -> Result<cudarc::nvrtc::Ptx> {
    netml_gpu::cuda::compile(
        "infer_ops.cu",
        KERNELS_SOURCE,
        &[("infer_ops.cuh", KERNELS_HEADER)],
        arch,
    )
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
    /// Compiles and loads the module and looks up every entry in `names`.
    pub(crate) fn load<'a>(
        ctx: &Arc<CudaContext>,
        arch: u32,
        names: impl Iterator<Item = &'a str>,
    ) -> Result<Kernels> {
        let module = ctx
            .load_module(compile_ptx(arch)?)
            .map_err(err("cuModuleLoadData"))?;
        let mut fns = HashMap::new();
        for name in names {
            if !fns.contains_key(name) {
                let f = module
                    .load_function(name)
                    .map_err(err("cuModuleGetFunction"))?;
                fns.insert(name.to_string(), f);
            }
        }
        Ok(Kernels {
            fns,
            _module: module,
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
