//! Section "nvrtc": the NVRTC library the binary finds against the driver's version, the
//! embedded gather kernels compiled to SASS for this GPU and loaded (every function eagerly),
//! whether the driver would also take NVRTC's PTX (netml does not need it to), and the
//! resources of each entry point.

use std::time::Instant;

use cudarc::driver::{sys, CudaFunction, DriverError};
use netml_gpu::cuda::kernels::{self, VersionFit};
use netml_gpu::cuda::nvrtc::{self, GATHER, GATHER_ENTRIES};

use super::{Env, Row, Rows};

const S: &str = "nvrtc";

fn func_attribute(f: &CudaFunction, attr: sys::CUfunction_attribute) -> Result<i32, DriverError> {
    let mut v = 0;
    // SAFETY: valid out-pointer; the function handle is alive as long as `f` (it holds its
    // module).
    unsafe { sys::cuFuncGetAttribute(&mut v, attr, f.cu_function()) }.result()?;
    Ok(v)
}

fn ms(t: Instant) -> String {
    format!("{:.1} ms", t.elapsed().as_secs_f64() * 1e3)
}

/// Version and driver rule, compile, load, JIT acceptance of PTX, per-entry resources.
pub fn rows(env: &Env, rows: &mut Rows) {
    let path = match nvrtc::load_library() {
        Ok(p) => p,
        Err(e) => return rows.push(Row::failed(S, "load libnvrtc", e)),
    };
    let version = match nvrtc::version() {
        Ok(v) => v,
        Err(e) => return rows.push(Row::failed(S, "version", e)),
    };
    rows.push(Row::check(
        S,
        "version",
        version.0 >= 13,
        format!("{}.{} ({})", version.0, version.1, path.display()),
        ">= 13.0",
    ));
    match kernels::driver_version() {
        Ok(driver) => {
            let fit = kernels::nvrtc_fits_driver(version, driver);
            let figure = match &fit {
                VersionFit::Fits => "fits: PTX and SASS load".to_string(),
                VersionFit::CubinOnly => {
                    "NVRTC newer than the driver: SASS loads, PTX would not".to_string()
                }
                VersionFit::Refused(why) => why.clone(),
            };
            rows.push(Row::check(
                S,
                &format!("NVRTC vs driver {}.{}", driver / 1000, (driver % 1000) / 10),
                !matches!(fit, VersionFit::Refused(_)),
                figure,
                "NVRTC major <= driver major",
            ));
        }
        Err(e) => rows.push(Row::failed(S, "driver version", e)),
    }
    let arch = env.gpu.arch();
    let t = Instant::now();
    if let Err(e) = nvrtc::compile_cubin(&GATHER, arch) {
        return rows.push(Row::failed(S, &format!("compile gather.cu sm_{arch}"), e));
    }
    rows.push(Row::check(
        S,
        &format!("compile gather.cu to SASS sm_{arch}"),
        true,
        format!("{}, no warnings", ms(t)),
        "-",
    ));
    // The driver's JIT path, which netml does not use: reported so a PTX problem is visible.
    let ptx = nvrtc::gather_ptx(arch).map_err(|e| e.to_string());
    let jit = ptx.and_then(|p| env.ctx.load_module(p).map_err(|e| e.to_string()));
    rows.push(Row::figure(
        S,
        &format!("driver JIT of NVRTC's PTX (compute_{arch})"),
        match jit {
            Ok(_) => "accepted".into(),
            Err(e) => format!("rejected: {e}"),
        },
        "not needed: netml loads SASS",
    ));
    let t = Instant::now();
    let loaded = match kernels::load(env.ctx, &GATHER, &GATHER_ENTRIES) {
        Ok(l) => l,
        Err(e) => return rows.push(Row::failed(S, "load SASS, every function eagerly", e)),
    };
    rows.push(Row::check(
        S,
        "load SASS, every function eagerly",
        true,
        ms(t),
        "-",
    ));
    for (entry, f) in GATHER_ENTRIES.iter().zip(&loaded.functions) {
        use sys::CUfunction_attribute::*;
        let regs = func_attribute(f, CU_FUNC_ATTRIBUTE_NUM_REGS);
        let local = func_attribute(f, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES);
        let threads = func_attribute(f, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
        rows.push(match (regs, local, threads) {
            (Ok(r), Ok(l), Ok(t)) => Row::check(
                S,
                entry,
                t >= 256,
                format!("{r} registers, {l} B local, max {t} threads/block"),
                "CI sm_90: 56-64 registers (bound 64: 4 blocks x 256 per SM), 0 spills; >= 256 threads/block",
            ),
            (r, l, t) => {
                let err = [r.err(), l.err(), t.err()].into_iter().flatten().next();
                Row::failed(S, entry, format!("cuFuncGetAttribute: {err:?}"))
            }
        });
    }
}
