//! NVRTC: finding the library at run time and compiling netml's CUDA sources to PTX.
//!
//! The binary carries its kernels (`include_str!`) and compiles them at start for the GPU it
//! finds, so it needs neither nvcc nor a source tree. The options are the ones
//! `scripts/check_kernels.py` uses in CI, and a warning is an error here as it is there: the
//! PTX the binary runs is the PTX CI checked with ptxas.

use std::ffi::{c_char, c_int, CString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::{result, sys, Ptx};

/// The kernel entry points (`gather_resident`, `gather_launch`).
const GATHER_CU: &str = include_str!("../../../../cuda-kernels/gather.cu");
/// Everything the kernels run; the host build compiles the same file.
const GATHER_CUH: &str = include_str!("../../../../cuda-kernels/gather.cuh");

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

/// Directories searched for `libnvrtc.so.13`, in order (see [`load_library`]).
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(v).join("lib64"));
        }
    }
    dirs.push("/usr/local/cuda/lib64".into());
    dirs.push("/usr/local/cuda-13.0/lib64".into());
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("lib"));
        // The gpu-check package keeps the binary in bin/ and libraries in lib/.
        dirs.push(exe_dir.join("../lib"));
        dirs.push(exe_dir);
    }
    // Where scripts/check-kernels installs NVRTC from PyPI: tests and dev builds find it.
    dirs.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/cuda-tools/nvidia/cu13/lib"
    )));
    dirs
}

/// dlopen with RTLD_GLOBAL, kept loaded for the life of the process.
fn open_global(name: &Path) -> Result<(), String> {
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
    // SAFETY: loading NVRTC runs only its ELF constructors, which have no preconditions.
    let lib = unsafe { libloading::os::unix::Library::open(Some(name), flags) }
        .map_err(|e| e.to_string())?;
    // Never unloaded: cudarc keeps function pointers into it for the life of the process.
    std::mem::forget(lib);
    Ok(())
}

fn find_and_open() -> Result<PathBuf, String> {
    if let Some(file) = std::env::var_os("NETML_NVRTC_LIB").filter(|v| !v.is_empty()) {
        let file = PathBuf::from(file);
        if let Some(dir) = file.parent() {
            let builtins = dir.join(BUILTINS_SONAME);
            if builtins.is_file() {
                open_global(&builtins)?;
            }
        }
        open_global(&file).map_err(|e| format!("NETML_NVRTC_LIB={}: {e}", file.display()))?;
        return Ok(file);
    }
    let mut tried = Vec::new();
    for dir in candidate_dirs() {
        let lib = dir.join(NVRTC_SONAME);
        if !lib.is_file() {
            tried.push(dir.display().to_string());
            continue;
        }
        // Loaded first, by full path, so NVRTC's own dlopen of the builtins by soname finds
        // this copy whatever LD_LIBRARY_PATH says.
        let builtins = dir.join(BUILTINS_SONAME);
        if builtins.is_file() {
            open_global(&builtins).map_err(|e| format!("{}: {e}", builtins.display()))?;
        }
        open_global(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        return Ok(lib);
    }
    open_global(Path::new(NVRTC_SONAME)).map_err(|e| {
        format!(
            "{NVRTC_SONAME} not found (set NETML_NVRTC_LIB or CUDA_HOME; searched {}; dlopen: {e})",
            tried.join(", ")
        )
    })?;
    Ok(PathBuf::from(NVRTC_SONAME))
}

/// Finds and loads libnvrtc once (search: `$NETML_NVRTC_LIB` (a file), `$CUDA_HOME/lib64`,
/// `$CUDA_PATH/lib64`, `/usr/local/cuda/lib64`, `/usr/local/cuda-13.0/lib64`, the running
/// executable's `lib/`, `../lib/` and own directory, `<workspace>/target/cuda-tools/nvidia/
/// cu13/lib`, then the plain dlopen name) and returns the path used.
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

/// The NVRTC options of CI's `scripts/check_kernels.py`, for `compute_{arch}`.
fn options(arch: u32) -> Vec<String> {
    vec![
        format!("--gpu-architecture=compute_{arch}"),
        "--std=c++17".into(),
        "-default-device".into(),
        "--extra-device-vectorization".into(),
    ]
}

/// An NVRTC program, destroyed on every exit path.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by nvrtcCreateProgram and destroyed only here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn c_string(what: &str, s: &str) -> Result<CString, NvrtcError> {
    CString::new(s).map_err(|_| NvrtcError::new(format!("{what} contains a NUL byte")))
}

fn chars_to_string(chars: &[c_char]) -> String {
    // SAFETY: NVRTC returns NUL-terminated strings (log, PTX) in these buffers.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(chars.as_ptr().cast(), chars.len()) };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// Compiles `source` (program name `name`) for `sm_{arch}` (e.g. 80, 90) with the given
/// headers (include name, contents) and CI's options (`--std=c++17 -default-device
/// --extra-device-vectorization --gpu-architecture=compute_{arch}`). Any NVRTC warning fails
/// the compile too; the log is in the error.
pub fn compile(
    name: &str,
    source: &str,
    headers: &[(&str, &str)],
    arch: u32,
) -> Result<Ptx, NvrtcError> {
    load_library()?;
    let c_name = c_string("program name", name)?;
    let c_src = c_string(name, source)?;
    let h_names = headers
        .iter()
        .map(|(n, _)| c_string("header name", n))
        .collect::<Result<Vec<_>, _>>()?;
    let h_srcs = headers
        .iter()
        .map(|(n, s)| c_string(n, s))
        .collect::<Result<Vec<_>, _>>()?;
    let h_name_ptrs: Vec<*const c_char> = h_names.iter().map(|s| s.as_ptr()).collect();
    let h_src_ptrs: Vec<*const c_char> = h_srcs.iter().map(|s| s.as_ptr()).collect();
    let mut raw = std::ptr::null_mut();
    // SAFETY: every pointer is a NUL-terminated string alive for the call; the header arrays
    // both have `headers.len()` entries. NVRTC copies what it needs.
    unsafe {
        sys::nvrtcCreateProgram(
            &mut raw,
            c_src.as_ptr(),
            c_name.as_ptr(),
            headers.len() as c_int,
            h_src_ptrs.as_ptr(),
            h_name_ptrs.as_ptr(),
        )
    }
    .result()
    .map_err(|e| NvrtcError::new(format!("{name}: nvrtcCreateProgram: {e}")))?;
    let prog = Program(raw);
    let opts = options(arch);
    // SAFETY: `prog` is a live program; compile_program copies the options into C strings.
    let compiled = unsafe { result::compile_program(prog.0, &opts) };
    // SAFETY: `prog` is a live program; the log exists after a compile attempt.
    let log = unsafe { result::get_program_log(prog.0) }
        .map(|l| chars_to_string(&l))
        .unwrap_or_default();
    let context = format!("{name} (compute_{arch})");
    if let Err(e) = compiled {
        return Err(NvrtcError {
            message: format!("{context}: NVRTC error ({e})"),
            log,
        });
    }
    if log.to_ascii_lowercase().contains("warning") {
        return Err(NvrtcError {
            message: format!("{context}: NVRTC warnings (treated as errors)"),
            log,
        });
    }
    // SAFETY: `prog` compiled successfully, so it has PTX.
    let ptx = unsafe { result::get_ptx(prog.0) }
        .map_err(|e| NvrtcError::new(format!("{context}: nvrtcGetPTX: {e}")))?;
    Ok(Ptx::from_src(chars_to_string(&ptx)))
}

/// The project's kernels (`gather.cu` with `gather.cuh`, embedded in the binary) compiled for
/// `sm_{arch}`.
pub fn gather_ptx(arch: u32) -> Result<Ptx, NvrtcError> {
    compile("gather.cu", GATHER_CU, &[("gather.cuh", GATHER_CUH)], arch)
}

/// Names of the entry points `gather.cu` defines.
pub const GATHER_ENTRIES: [&str; 2] = ["gather_resident", "gather_launch"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_match_ci() {
        let script = include_str!("../../../../scripts/check_kernels.py");
        for opt in options(90) {
            let opt = opt.replace("90", "{arch}");
            assert!(
                script.contains(&format!("\"{opt}\"")) || script.contains(&format!("f\"{opt}\"")),
                "option {opt} not in scripts/check_kernels.py"
            );
        }
    }

    #[test]
    fn error_display_carries_log() {
        let e = NvrtcError {
            message: "x.cu (compute_80): NVRTC error".into(),
            log: "x.cu(3): error: identifier \"y\" is undefined".into(),
        };
        let s = e.to_string();
        assert!(
            s.contains("NVRTC error") && s.contains("is undefined"),
            "{s}"
        );
    }
}
