//! Loading netml's kernels into a context so that nothing about them can wait on the device
//! later: SASS for the device's own `sm_XY` (no PTX JIT), every function loaded at once (no
//! lazy loading on a first launch while a resident kernel runs), after a check that the NVRTC
//! in use can produce code this driver loads.

use std::sync::Arc;

use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, DriverError};
use cudarc::nvrtc::Ptx;

use super::nvrtc::{self, compile_cubin, CudaSource};

/// How NVRTC `nvrtc` (major, minor) and a driver reporting `driver` (`cuDriverGetVersion`:
/// 1000 × major + 10 × minor) go together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionFit {
    /// NVRTC is not newer than the driver: PTX and cubins load.
    Fits,
    /// NVRTC is a newer minor release of the driver's major: the driver rejects its PTX
    /// (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`), its cubins load (CUDA minor-version
    /// compatibility). netml loads cubins, so this works.
    CubinOnly,
    /// NVRTC of a newer major release than the driver: refused, with the one line to print.
    Refused(String),
}

/// The rule (see [`VersionFit`]).
pub fn nvrtc_fits_driver(nvrtc: (i32, i32), driver: i32) -> VersionFit {
    let (d_major, d_minor) = (driver / 1000, (driver % 1000) / 10);
    let (major, minor) = nvrtc;
    if major > d_major {
        VersionFit::Refused(format!(
            "NVRTC {major}.{minor} is newer than the CUDA driver ({d_major}.{d_minor}): the \
             driver cannot load what it compiles; use an NVRTC {d_major}.x (NETML_NVRTC_LIB, \
             NETML_CUDA_LIB_DIRS) or a newer driver"
        ))
    } else if major == d_major && minor > d_minor {
        VersionFit::CubinOnly
    } else {
        VersionFit::Fits
    }
}

/// `cuDriverGetVersion` (e.g. 13000 for CUDA 13.0); an error, not a panic, without libcuda.
pub fn driver_version() -> Result<i32, String> {
    // SAFETY: only tries to dlopen libcuda's candidate names (cudarc panics on a call into a
    // library it cannot load).
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver (libcuda.so.1 not found)".into());
    }
    let mut v = 0;
    // SAFETY: valid out-pointer; callable before cuInit.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(|e| format!("cuDriverGetVersion: {e}"))?;
    Ok(v)
}

/// The loaded module and its functions, in the order asked for (the module stays loaded as
/// long as any of them lives).
pub struct Loaded {
    pub module: Arc<CudaModule>,
    pub functions: Vec<CudaFunction>,
}

/// Compiles `src` to SASS for the device of `ctx` (cached per process), loads it and loads
/// every function of `entries` eagerly (`cuFuncLoad`). One line of error text on failure,
/// including the version rule's refusal.
pub fn load(ctx: &Arc<CudaContext>, src: &CudaSource, entries: &[&str]) -> Result<Loaded, String> {
    let nvrtc = nvrtc::version().map_err(|e| e.to_string())?;
    let driver = driver_version()?;
    if let VersionFit::Refused(why) = nvrtc_fits_driver(nvrtc, driver) {
        return Err(why);
    }
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| format!("reading the compute capability: {e}"))?;
    let arch = (major * 10 + minor) as u32;
    let cubin = compile_cubin(src, arch).map_err(|e| format!("compiling {}: {e}", src.name))?;
    let module = ctx
        .load_module(Ptx::from_binary(cubin.to_vec()))
        .map_err(|e| format!("loading {} (sm_{arch}): {e}", src.name))?;
    let functions = entries
        .iter()
        .map(|&name| load_function(&module, name).map_err(|e| format!("{name}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded { module, functions })
}

/// `name` from `module`, loaded now rather than on its first launch (lazy loading, the
/// default since CUDA 12.2, may wait on the device then, which never finishes while a
/// resident kernel runs).
pub fn load_function(module: &Arc<CudaModule>, name: &str) -> Result<CudaFunction, DriverError> {
    let f = module.load_function(name)?;
    // SAFETY: a live function handle of a loaded module; cuFuncLoad only loads its code.
    unsafe { sys::cuFuncLoad(f.cu_function()) }.result()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvrtc_newer_than_the_driver() {
        // The GPU machine: driver 13.0, NVRTC 13.0.88 from PyPI.
        assert_eq!(nvrtc_fits_driver((13, 0), 13000), VersionFit::Fits);
        assert_eq!(nvrtc_fits_driver((13, 0), 13010), VersionFit::Fits);
        assert_eq!(nvrtc_fits_driver((12, 9), 13000), VersionFit::Fits);
        // A newer minor: PTX would be rejected, the cubin loads.
        assert_eq!(nvrtc_fits_driver((13, 1), 13000), VersionFit::CubinOnly);
        assert_eq!(nvrtc_fits_driver((13, 2), 13010), VersionFit::CubinOnly);
        // A newer major: refused in one line naming both versions.
        let VersionFit::Refused(why) = nvrtc_fits_driver((14, 0), 13020) else {
            panic!("NVRTC 14 on a 13.2 driver must be refused");
        };
        assert!(
            why.contains("NVRTC 14.0") && why.contains("(13.2)"),
            "{why}"
        );
        assert!(!why.contains('\n'), "{why}");
    }
}
