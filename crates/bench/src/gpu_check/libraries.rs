//! Section "libraries" (in the parent process: it runs nothing on the GPU): which file was
//! loaded for libcuda, libnvrtc, libcublas and libcudnn and the version each reports, where
//! the CUDA wheels of the Python environment are, whether NVRTC's code loads on this driver,
//! and the driver's module loading mode (EAGER keeps lazy loading from waiting on the device
//! behind a resident kernel).

use netml_gpu::cuda::kernels::{self, VersionFit};
use netml_gpu::cuda::libs::{self, Library};
use netml_gpu::cuda::nvrtc;

use super::{Row, Rows};

const S: &str = "libraries";

fn library_row(l: &Library) -> Row {
    let path = l
        .path
        .as_ref()
        .map_or("not loaded".to_string(), |p| p.display().to_string());
    match &l.version {
        Ok(v) => Row::check(S, l.name, true, format!("{v} ({path})"), "-"),
        Err(e) => Row::failed(S, l.name, e),
    }
}

/// The driver's module loading mode (`cuModuleGetLoadingMode`; fixed at cuInit from
/// `CUDA_MODULE_LOADING`).
fn loading_mode() -> Result<String, String> {
    use cudarc::driver::sys;
    kernels::driver_version()?;
    let mut mode = sys::CUmoduleLoadingMode::CU_MODULE_EAGER_LOADING;
    // SAFETY: valid out-pointer; libcuda is loaded (checked above) and initialised (discovery
    // ran cuInit; without it the call answers an error).
    unsafe { sys::cuModuleGetLoadingMode(&mut mode) }
        .result()
        .map_err(|e| format!("cuModuleGetLoadingMode: {e}"))?;
    Ok(match mode {
        sys::CUmoduleLoadingMode::CU_MODULE_EAGER_LOADING => "EAGER".into(),
        sys::CUmoduleLoadingMode::CU_MODULE_LAZY_LOADING => "LAZY".into(),
    })
}

/// The rows of the section (every library is loaded here if it can be).
pub fn rows(rows: &mut Rows) {
    let mut all = libs::cuda_libraries();
    all.extend(netml_infer::gpu::libraries());
    for l in &all {
        rows.push(library_row(l));
    }
    for prefix in ["libcudnn", "libcublas"] {
        let dirs = libs::loaded_folders(prefix);
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        rows.push(Row::check(
            S,
            &format!("{prefix}* files loaded from"),
            dirs.len() <= 1,
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            },
            "one folder (two: installations mixed, e.g. CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)",
        ));
    }
    let pip: Vec<String> = libs::search_dirs()
        .iter()
        .filter(|d| d.is_dir())
        .map(|d| d.display().to_string())
        .collect();
    rows.push(Row::figure(
        S,
        "library folders searched (existing)",
        pip.join(", "),
        "NETML_CUDA_LIB_DIRS, CUDA toolkits, <exe>/../lib, python3's nvidia/*/lib and torch/lib",
    ));
    if let (Ok(n), Ok(d)) = (nvrtc::version(), kernels::driver_version()) {
        let fit = kernels::nvrtc_fits_driver(n, d);
        rows.push(Row::check(
            S,
            "NVRTC vs driver",
            !matches!(fit, VersionFit::Refused(_)),
            match fit {
                VersionFit::Fits => format!("NVRTC {}.{} <= driver {}", n.0, n.1, d),
                VersionFit::CubinOnly => format!(
                    "NVRTC {}.{} newer than driver {d}: SASS loads (used), PTX would not",
                    n.0, n.1
                ),
                VersionFit::Refused(why) => why,
            },
            "NVRTC major <= driver major",
        ));
    }
    let env = std::env::var("CUDA_MODULE_LOADING").unwrap_or_else(|_| "unset".into());
    rows.push(match loading_mode() {
        Ok(mode) => Row::figure(
            S,
            "module loading",
            format!("{mode} (CUDA_MODULE_LOADING={env})"),
            "EAGER (run.sh sets it); netml also loads its own functions eagerly",
        ),
        Err(e) => Row::failed(S, "module loading", e),
    });
}
