//! Section "nvrtc": the NVRTC library the binary finds, the embedded gather kernels compiled
//! for this GPU's architecture, loaded by the driver (its JIT turns the PTX into SASS), and
//! the resources of each entry point.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{sys, CudaContext, CudaFunction, DriverError};
use netml_gpu::cuda::{nvrtc, GpuInfo};

use super::Row;

const S: &str = "nvrtc";

fn func_attribute(f: &CudaFunction, attr: sys::CUfunction_attribute) -> Result<i32, DriverError> {
    let mut v = 0;
    // SAFETY: valid out-pointer; the function handle is alive as long as `f` (it holds its
    // module).
    unsafe { sys::cuFuncGetAttribute(&mut v, attr, f.cu_function()) }.result()?;
    Ok(v)
}

/// Version, compile, module load and per-entry resources.
pub fn rows(ctx: &Arc<CudaContext>, gpu: &GpuInfo, _out: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let path = match nvrtc::load_library() {
        Ok(p) => p,
        Err(e) => return vec![Row::failed(S, "load libnvrtc", e)],
    };
    match nvrtc::version() {
        Ok((major, minor)) => rows.push(Row::check(
            S,
            "version",
            major >= 13,
            format!("{major}.{minor} ({})", path.display()),
            ">= 13.0",
        )),
        Err(e) => rows.push(Row::failed(S, "version", e)),
    }
    let arch = gpu.arch();
    let t = Instant::now();
    let ptx = match nvrtc::gather_ptx(arch) {
        Ok(p) => p,
        Err(e) => {
            rows.push(Row::failed(S, &format!("compile gather.cu sm_{arch}"), e));
            return rows;
        }
    };
    rows.push(Row::check(
        S,
        &format!("compile gather.cu sm_{arch}"),
        true,
        format!("{:.1} ms, no warnings", t.elapsed().as_secs_f64() * 1e3),
        "-",
    ));
    let t = Instant::now();
    let module = match ctx.load_module(ptx) {
        Ok(m) => m,
        Err(e) => {
            rows.push(Row::failed(S, "cuModuleLoadData", e));
            return rows;
        }
    };
    rows.push(Row::check(
        S,
        "cuModuleLoadData",
        true,
        format!("{:.1} ms", t.elapsed().as_secs_f64() * 1e3),
        "-",
    ));
    for entry in nvrtc::GATHER_ENTRIES {
        let f = match module.load_function(entry) {
            Ok(f) => f,
            Err(e) => {
                rows.push(Row::failed(S, entry, e));
                continue;
            }
        };
        use sys::CUfunction_attribute::*;
        let regs = func_attribute(&f, CU_FUNC_ATTRIBUTE_NUM_REGS);
        let local = func_attribute(&f, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES);
        let threads = func_attribute(&f, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
        match (regs, local, threads) {
            (Ok(r), Ok(l), Ok(t)) => rows.push(Row::check(
                S,
                entry,
                t >= 256,
                format!("{r} registers, {l} B local, max {t} threads/block"),
                "CI sm_80/90: 40-48 registers, 32 B stack, 0 spills; >= 256 threads/block",
            )),
            (r, l, t) => {
                let err = [r.err(), l.err(), t.err()].into_iter().flatten().next();
                rows.push(Row::failed(
                    S,
                    entry,
                    format!("cuFuncGetAttribute: {err:?}"),
                ));
            }
        }
    }
    rows
}
