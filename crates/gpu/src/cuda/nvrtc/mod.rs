//! NVRTC: finding the library at run time and compiling netml's CUDA sources.
//!
//! The binary carries its kernels (`include_str!`) and compiles them at start for the GPU it
//! finds, so it needs neither nvcc nor a source tree. The options are the ones
//! `scripts/check_kernels.py` uses in CI, and a warning is an error here as it is there.
//! Modules are loaded as SASS for the device's `sm_XY` ([`compile_cubin`]), never as PTX: the
//! driver rejects PTX from an NVRTC newer than itself (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`),
//! while a cubin needs no JIT (see [`crate::cuda::kernels`] for the version rule).

mod compile;

use std::ffi::c_int;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::sys;

use crate::cuda::{libs, loader};
pub use compile::{compile, compile_cubin, CudaSource, GATHER, GATHER_ENTRIES};

/// The soname cudarc's loader ends up asking for (`get_lib_name_candidates`).
const NVRTC_SONAME: &str = "libnvrtc.so.13";
/// NVRTC dlopens this by name on its first compile.
const BUILTINS_SONAME: &str = "libnvrtc-builtins.so.13.0";

/// A failure to load NVRTC or to compile: one message that includes the NVRTC log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvrtcError {
    message: String,
    log: String,
}

impl NvrtcError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            log: String::new(),
        }
    }

    /// The NVRTC program log (empty when the failure happened before compiling).
    pub fn log(&self) -> &str {
        &self.log
    }
}

impl fmt::Display for NvrtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.log.is_empty() {
            write!(f, "\n{}", self.log)?;
        }
        Ok(())
    }
}

impl std::error::Error for NvrtcError {}

fn find_and_open() -> Result<PathBuf, String> {
    if let Some(file) = std::env::var_os("NETML_NVRTC_LIB").filter(|v| !v.is_empty()) {
        let file = PathBuf::from(file);
        let mut dirs = Vec::new();
        dirs.extend(file.parent().map(Path::to_path_buf));
        if let Some(builtins) = loader::find_in(BUILTINS_SONAME, &dirs) {
            libs::open_global(&builtins)?;
        }
        libs::open_global(&file).map_err(|e| format!("NETML_NVRTC_LIB={}: {e}", file.display()))?;
        return Ok(file);
    }
    // The builtins first, by full path, so NVRTC's own dlopen of them by soname finds this
    // copy whatever LD_LIBRARY_PATH says.
    let bound_as = cudarc::get_lib_name_candidates("nvrtc");
    let found = libs::preload(&bound_as, NVRTC_SONAME, |name| name == BUILTINS_SONAME)
        .map_err(|e| format!("{e} (set NETML_NVRTC_LIB or CUDA_HOME)"))?;
    Ok(found.unwrap_or_else(|| PathBuf::from(NVRTC_SONAME)))
}

/// Finds and loads libnvrtc once and returns the path used: `$NETML_NVRTC_LIB` (the file
/// itself), else the first folder of [`libs::search_dirs`] holding `libnvrtc.so.13` (CUDA
/// toolkits, the executable's `lib/`, the Python environment's pip packages, the workspace's
/// `target/cuda-tools`), else the plain dlopen name.
///
/// libnvrtc-builtins is preloaded from the same directory. Both are opened with RTLD_GLOBAL
/// by full path before cudarc's own dlopen, which then resolves to the same library (glibc
/// matches the soname of loaded objects); this is checked by comparing one symbol.
pub fn load_library() -> Result<PathBuf, NvrtcError> {
    static LOADED: OnceLock<Result<PathBuf, NvrtcError>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = find_and_open().map_err(NvrtcError::new)?;
            check_same_library(&path)?;
            Ok(path)
        })
        .clone()
}

/// Makes sure cudarc's loader picked the copy loaded above (it tries `libnvrtc.so` first,
/// which could be another installation's).
fn check_same_library(path: &Path) -> Result<(), NvrtcError> {
    type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> sys::nvrtcResult;
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
    // SAFETY: the object is already loaded (above): this only takes another reference, which
    // is dropped at the end of the function.
    let ours = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
        .map_err(|e| NvrtcError::new(format!("{}: {e}", path.display())))?;
    // SAFETY: the symbol has this signature in every NVRTC; only its address is compared.
    let (a, b) = unsafe {
        let a = ours
            .get::<VersionFn>(b"nvrtcVersion\0")
            .map_err(|e| NvrtcError::new(e.to_string()))?;
        let b = sys::culib()
            .get::<VersionFn>(b"nvrtcVersion\0")
            .map_err(|e| NvrtcError::new(e.to_string()))?;
        (*a as usize, *b as usize)
    };
    if a != b {
        return Err(NvrtcError::new(format!(
            "cudarc loaded a different libnvrtc than {} (a libnvrtc.so earlier on the library path?)",
            path.display()
        )));
    }
    Ok(())
}

/// NVRTC version (major, minor).
pub fn version() -> Result<(i32, i32), NvrtcError> {
    load_library()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers; the library is loaded.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| NvrtcError::new(format!("nvrtcVersion: {e}")))?;
    Ok((major, minor))
}

/// The project's kernels (`gather.cu` with `gather.cuh`, embedded in the binary) as PTX for
/// `compute_{arch}` (what CI checks with ptxas; modules are loaded from
/// [`compile_cubin`]`(&GATHER, arch)`).
pub fn gather_ptx(arch: u32) -> Result<cudarc::nvrtc::Ptx, NvrtcError> {
    compile(GATHER.name, GATHER.source, GATHER.headers, arch)
}
