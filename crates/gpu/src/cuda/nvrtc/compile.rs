//! Compiling a CUDA source with NVRTC: PTX (what CI checks with ptxas) or SASS for one
//! `sm_XY` (what the binary loads). Cubins are cached per process: every ingest and engine of
//! a run compiles the same embedded sources, and one compile costs hundreds of milliseconds.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result, sys, Ptx};

use super::{load_library, NvrtcError};

/// A CUDA source the binary carries: program name, text and the headers it includes (include
/// name, contents).
#[derive(Clone, Copy, Debug)]
pub struct CudaSource {
    pub name: &'static str,
    pub source: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
}

/// The gather kernels (`gather.cu` with `gather.cuh`; the host build compiles the same header).
pub const GATHER: CudaSource = CudaSource {
    name: "gather.cu",
    source: include_str!("../../../../../cuda-kernels/gather.cu"),
    headers: &[(
        "gather.cuh",
        include_str!("../../../../../cuda-kernels/gather.cuh"),
    )],
};

/// Names of the entry points `gather.cu` defines.
pub const GATHER_ENTRIES: [&str; 2] = ["gather_resident", "gather_launch"];

/// What NVRTC produces: PTX for a virtual architecture, or SASS (a cubin) for a real one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Ptx,
    Cubin,
}

/// The NVRTC options of CI's `scripts/check_kernels.py` (for `compute_{arch}`); a cubin is
/// the same compile for `sm_{arch}` (NVRTC then runs ptxas itself, as CI does on the PTX).
fn options(arch: u32, out: Output) -> Vec<String> {
    let arch = match out {
        Output::Ptx => format!("--gpu-architecture=compute_{arch}"),
        Output::Cubin => format!("--gpu-architecture=sm_{arch}"),
    };
    vec![
        arch,
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

/// Creates and compiles the program; any NVRTC warning fails it too (the log is in the error).
fn build(
    name: &str,
    source: &str,
    headers: &[(&str, &str)],
    arch: u32,
    out: Output,
) -> Result<Program, NvrtcError> {
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
    let opts = options(arch, out);
    // SAFETY: `prog` is a live program; compile_program copies the options into C strings.
    let compiled = unsafe { result::compile_program(prog.0, &opts) };
    // SAFETY: `prog` is a live program; the log exists after a compile attempt.
    let log = unsafe { result::get_program_log(prog.0) }
        .map(|l| chars_to_string(&l))
        .unwrap_or_default();
    let context = format!(
        "{name} ({})",
        opts[0].trim_start_matches("--gpu-architecture=")
    );
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
    Ok(prog)
}

/// Compiles `source` (program name `name`) for `compute_{arch}` (e.g. 80, 90) with the given
/// headers (include name, contents) and CI's options (`--std=c++17 -default-device
/// --extra-device-vectorization --gpu-architecture=compute_{arch}`) and returns the PTX. Any
/// NVRTC warning fails the compile too; the log is in the error.
pub fn compile(
    name: &str,
    source: &str,
    headers: &[(&str, &str)],
    arch: u32,
) -> Result<Ptx, NvrtcError> {
    let prog = build(name, source, headers, arch, Output::Ptx)?;
    // SAFETY: `prog` compiled successfully, so it has PTX.
    let ptx = unsafe { result::get_ptx(prog.0) }
        .map_err(|e| NvrtcError::new(format!("{name}: nvrtcGetPTX: {e}")))?;
    Ok(Ptx::from_src(chars_to_string(&ptx)))
}

/// The same compile as [`compile`] for the real architecture `sm_{arch}`: SASS in a cubin,
/// which the driver loads without JIT (so without its PTX version limit). Cached per
/// process, per source and architecture.
pub fn compile_cubin(src: &CudaSource, arch: u32) -> Result<Arc<Vec<u8>>, NvrtcError> {
    type Cache = Mutex<HashMap<(u64, u32), Arc<Vec<u8>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut h = DefaultHasher::new();
    (src.name, src.source, src.headers).hash(&mut h);
    let key = (h.finish(), arch);
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let prog = build(src.name, src.source, src.headers, arch, Output::Cubin)?;
    let mut size = 0usize;
    // SAFETY: `prog` compiled for a real architecture, so it has a cubin; valid out-pointer.
    unsafe { sys::nvrtcGetCUBINSize(prog.0, &mut size) }
        .result()
        .map_err(|e| NvrtcError::new(format!("{}: nvrtcGetCUBINSize: {e}", src.name)))?;
    let mut cubin = vec![0u8; size];
    // SAFETY: the buffer holds the `size` bytes NVRTC reported.
    unsafe { sys::nvrtcGetCUBIN(prog.0, cubin.as_mut_ptr().cast()) }
        .result()
        .map_err(|e| NvrtcError::new(format!("{}: nvrtcGetCUBIN: {e}", src.name)))?;
    let cubin = Arc::new(cubin);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, cubin.clone());
    Ok(cubin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_match_ci() {
        let script = include_str!("../../../../../scripts/check_kernels.py");
        for opt in options(90, Output::Ptx) {
            let opt = opt.replace("90", "{arch}");
            assert!(
                script.contains(&format!("\"{opt}\"")) || script.contains(&format!("f\"{opt}\"")),
                "option {opt} not in scripts/check_kernels.py"
            );
        }
        // The cubin compile differs in the architecture only.
        let (ptx, cubin) = (options(90, Output::Ptx), options(90, Output::Cubin));
        assert_eq!(cubin[0], "--gpu-architecture=sm_90");
        assert_eq!(ptx[1..], cubin[1..]);
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
