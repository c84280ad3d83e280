//! Finding the CUDA libraries netml loads at run time (libnvrtc here, libcublas and libcudnn in
//! netml-infer) wherever a machine keeps them: a CUDA toolkit, next to the binary, or the pip
//! packages of the Python environment (`nvidia/cu13/lib`, `nvidia/cudnn/lib`, `torch/lib`),
//! which is where a GPU image built around PyTorch has them and no loader path points.
//!
//! Each library is opened by full path with RTLD_GLOBAL, its companions first (NVRTC's
//! builtins, cuBLASLt, cuDNN's sub-libraries), and never closed: cudarc's later `dlopen` by
//! soname then resolves to the same object (glibc matches the soname of loaded objects), and
//! so do the libraries' own `dlopen`s of their companions.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::loader::{self, find_in, split_dirs};

/// Colon-separated directories searched first (scripts/gpu-check's run.sh sets it to the
/// folders it got from python3, which then need not be asked again).
pub const DIRS_ENV: &str = "NETML_CUDA_LIB_DIRS";

/// Python interpreter asked for its package folders (default `python3`; empty: do not ask).
pub const PYTHON_ENV: &str = "NETML_PYTHON";

/// Prints every folder Python imports packages from, one per line.
const PYTHON_ROOTS: &str = "import site, sys\n\
roots = list(sys.path)\n\
try:\n    roots += site.getsitepackages()\n\
except Exception:\n    pass\n\
try:\n    roots.append(site.getusersitepackages())\n\
except Exception:\n    pass\n\
print('\\n'.join(r for r in roots if r))\n";

/// The library folders inside Python package roots (site-packages and the like): every
/// `nvidia/*/lib` (the CUDA wheels: `cu13/lib` holds NVRTC and cuBLAS, `cudnn/lib` cuDNN) and
/// `torch/lib`, in the order of `roots`, each once.
pub fn pip_lib_dirs(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        if d.is_dir() && !out.contains(&d) {
            out.push(d);
        }
    };
    for root in roots {
        if let Ok(rd) = std::fs::read_dir(root.join("nvidia")) {
            let mut subs: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("lib")).collect();
            subs.sort();
            subs.into_iter().for_each(&mut push);
        }
        push(root.join("torch/lib"));
    }
    out
}

/// The package roots `python` reports (`sys.path`, `site.getsitepackages()`, the user site),
/// or nothing when it cannot be run.
pub fn python_roots(python: &OsStr) -> Vec<PathBuf> {
    let out = match Command::new(python).arg("-c").arg(PYTHON_ROOTS).output() {
        Ok(o) if o.status.success() => o.stdout,
        _ => return Vec::new(),
    };
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The pip library folders of the Python named by `$NETML_PYTHON` (default `python3`).
fn python_lib_dirs() -> Vec<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| "python3".into());
    if python.is_empty() {
        return Vec::new();
    }
    pip_lib_dirs(&python_roots(&python))
}

/// Every folder searched, in order (computed once per process):
///
/// 1. `$NETML_CUDA_LIB_DIRS` (colon-separated);
/// 2. `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64`, `/usr/local/cuda/lib64`,
///    `/usr/local/cuda-13.0/lib64`;
/// 3. next to the executable: `lib/`, `../lib/` (the gpu-check package), its own folder;
/// 4. the pip packages of `$NETML_PYTHON` / `python3` ([`pip_lib_dirs`]), asked only when
///    `$NETML_CUDA_LIB_DIRS` is not set;
/// 5. `<workspace>/target/cuda-tools/nvidia/cu13/lib` (where `scripts/check-kernels` puts NVRTC).
///
/// A library none of them holds is left to the dynamic loader's own search (`LD_LIBRARY_PATH`,
/// ld.so.cache).
pub fn search_dirs() -> &'static [PathBuf] {
    static DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let explicit = std::env::var_os(DIRS_ENV).filter(|v| !v.is_empty());
        if let Some(v) = &explicit {
            dirs.extend(split_dirs(v));
        }
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
            dirs.push(exe_dir.join("../lib"));
            dirs.push(exe_dir);
        }
        if explicit.is_none() {
            dirs.extend(python_lib_dirs());
        }
        dirs.push(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/cuda-tools/nvidia/cu13/lib"
        )));
        let mut unique = Vec::with_capacity(dirs.len());
        for d in dirs {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        unique
    })
}

/// dlopen with RTLD_NOW | RTLD_GLOBAL, kept loaded for the life of the process.
pub(crate) fn open_global(path: &Path) -> Result<(), String> {
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
    // SAFETY: loading a CUDA library runs only its ELF constructors, which have no
    // preconditions.
    let lib = unsafe { libloading::os::unix::Library::open(Some(path), flags) }
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Never unloaded: cudarc keeps function pointers into it for the life of the process.
    std::mem::forget(lib);
    Ok(())
}

/// Opens every file of `paths`, retrying those that fail while others still succeed: cuDNN's
/// sub-libraries need each other by soname, loaded first.
fn open_all(mut paths: Vec<PathBuf>) -> Result<(), String> {
    loop {
        let before = paths.len();
        let mut errors = Vec::new();
        paths.retain(|p| match open_global(p) {
            Ok(()) => false,
            Err(e) => {
                errors.push(e);
                true
            }
        });
        if paths.is_empty() {
            return Ok(());
        }
        if paths.len() == before {
            return Err(errors.join("; "));
        }
    }
}

/// Loads the library a binding will use, its companions first; returns the path loaded.
///
/// `bound_as` is the binding's own list of names, which it dlopens by bare name in order
/// (cudarc's `get_lib_name_candidates`). Where a name before `file` resolves
/// ([`loader::resolve`]: an unversioned `libcudnn.so` from a system -dev package, say), that
/// is the copy the binding will call whatever this process preloads; so that file is loaded,
/// after the companions of its own folder. Otherwise the binding's copy would load companions
/// of another installation by soname and refuse them (`CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH`,
/// seen on the H200 machine, where pip's cuDNN is on `LD_LIBRARY_PATH` and the system's is in
/// the loader's cache).
///
/// Else `file` is loaded from the first folder of [`search_dirs`] holding it, after its
/// companions. Without such a folder, `file` is dlopened by name (the loader's own search) and
/// `Ok(None)` says so; `Err` when that fails too, naming the folders searched, or when `file`
/// itself fails to load.
///
/// Companions are the files of the library's folder that `companion` accepts, loaded leaves
/// first, best effort (a warning each): a sub-library that cannot load (say, one of cuDNN's
/// engines missing a dependency) need not be one that is used, and the library reports it
/// itself when it does need it.
pub fn preload(
    bound_as: &[String],
    file: &str,
    companion: impl Fn(&str) -> bool,
) -> Result<Option<PathBuf>, String> {
    for name in bound_as.iter().take_while(|n| n.as_str() != file) {
        if let Some(path) = loader::resolve(name) {
            open_companions(&path, &companion);
            open_global(&path)?;
            return Ok(Some(path));
        }
    }
    preload_from(search_dirs(), file, companion)
}

/// [`preload`]'s search over the folders `dirs`.
fn preload_from(
    dirs: &[PathBuf],
    file: &str,
    companion: impl Fn(&str) -> bool,
) -> Result<Option<PathBuf>, String> {
    let Some(path) = find_in(file, dirs) else {
        return open_global(Path::new(file)).map(|()| None).map_err(|e| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "{file} not found (searched {}; dlopen: {e})",
                searched.join(", ")
            )
        });
    };
    open_companions(&path, &companion);
    open_global(&path)?;
    Ok(Some(path))
}

/// Loads the companions of the library at `path` ([`companions_of`]), leaves first
/// ([`loader::leaves_first`]: none then reaches another installation through the loader's search);
/// failures are warnings.
fn open_companions(path: &Path, companion: &impl Fn(&str) -> bool) {
    let ordered = loader::leaves_first(companions_of(path, companion), |p| {
        loader::needed(p).unwrap_or_default()
    });
    if let Err(e) = open_all(ordered) {
        tracing::warn!("loading the companions of {}: {e}", path.display());
    }
}

/// The files `companion` accepts in the folder that really holds `path` (links resolved:
/// `/usr/local/cuda/lib64` may hold only a link to a library installed elsewhere), sorted.
fn companions_of(path: &Path, companion: &impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = real.parent().unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(companion))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The file of a loaded library whose name starts with `prefix` (e.g. `libcuda.so`), from
/// `/proc/self/maps`: what the dynamic loader really picked.
pub fn loaded_path(prefix: &str) -> Option<PathBuf> {
    loaded_files(prefix).into_iter().next()
}

/// The folders of every loaded file whose name starts with `prefix` (`libcudnn`: the front
/// library and its sub-libraries), each once: more than one means two installations are mixed.
pub fn loaded_folders(prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in loaded_files(prefix).iter().filter_map(|p| p.parent()) {
        if !out.iter().any(|d| d == dir) {
            out.push(dir.to_path_buf());
        }
    }
    out
}

/// Every file mapped into this process (`/proc/self/maps`, in its order) whose name starts
/// with `prefix`.
fn loaded_files(prefix: &str) -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(Path::new)
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(Path::to_path_buf)
        .collect()
}

/// One library as this process loaded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// Its usual name (`libcuda`, `libnvrtc`, `libcublas`, `libcudnn`).
    pub name: &'static str,
    /// The file mapped ([`loaded_path`]), when it is loaded.
    pub path: Option<PathBuf>,
    /// Its version as the library reports it, or why there is none.
    pub version: Result<String, String>,
}

/// libcuda (`cuDriverGetVersion`) and libnvrtc (`nvrtcVersion`), loaded if they can be.
pub fn cuda_libraries() -> Vec<Library> {
    let driver = crate::cuda::kernels::driver_version()
        .map(|v| format!("CUDA {}.{} driver API", v / 1000, (v % 1000) / 10));
    let nvrtc = crate::cuda::nvrtc::version()
        .map(|(a, b)| format!("NVRTC {a}.{b}"))
        .map_err(|e| e.to_string());
    vec![
        Library {
            name: "libcuda",
            path: loaded_path("libcuda.so"),
            version: driver,
        },
        Library {
            name: "libnvrtc",
            path: loaded_path("libnvrtc.so"),
            version: nvrtc,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    /// A site-packages laid out like a PyTorch cu130 environment's.
    fn fake_site(root: &Path) -> PathBuf {
        let site = root.join("lib/python3.12/site-packages");
        touch(&site.join("nvidia/cu13/lib/libnvrtc.so.13"));
        touch(&site.join("nvidia/cu13/lib/libcublas.so.13"));
        touch(&site.join("nvidia/cudnn/lib/libcudnn.so.9"));
        touch(&site.join("nvidia/cudnn/include/cudnn.h"));
        touch(&site.join("torch/lib/libtorch_cuda.so"));
        std::fs::create_dir_all(site.join("numpy")).unwrap();
        site
    }

    #[test]
    fn pip_folders_of_a_fake_site_packages() {
        let tmp = tempdir();
        let site = fake_site(&tmp);
        let other = tmp.join("empty-root");
        let dirs = pip_lib_dirs(&[other, site.clone(), site.clone()]);
        assert_eq!(
            dirs,
            vec![
                site.join("nvidia/cu13/lib"),
                site.join("nvidia/cudnn/lib"),
                site.join("torch/lib")
            ]
        );
        assert_eq!(
            find_in("libcudnn.so.9", &dirs),
            Some(site.join("nvidia/cudnn/lib/libcudnn.so.9"))
        );
        assert_eq!(
            find_in("libcublas.so.13", &dirs),
            Some(site.join("nvidia/cu13/lib/libcublas.so.13"))
        );
        assert_eq!(find_in("libcudnn.so.8", &dirs), None);
    }

    /// The whole question to Python, with a stand-in interpreter that reports the fake
    /// site-packages the way `python3 -c` would.
    #[test]
    fn roots_come_from_the_interpreter() {
        let tmp = tempdir();
        let site = fake_site(&tmp);
        let python = tmp.join("python3");
        std::fs::write(
            &python,
            format!(
                "#!/bin/sh\n[ \"$1\" = -c ] || exit 2\necho '{}'\necho\necho /nonexistent\n",
                site.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        let roots = python_roots(python.as_os_str());
        assert_eq!(roots, vec![site.clone(), PathBuf::from("/nonexistent")]);
        let dirs = pip_lib_dirs(&roots);
        assert_eq!(dirs[0], site.join("nvidia/cu13/lib"));
        assert!(python_roots(tmp.join("no-such-python").as_os_str()).is_empty());
    }

    #[test]
    fn the_real_python_answers_with_folders_that_exist_or_nothing() {
        // Whatever python3 this machine has: never a panic, and pip folders only if present.
        for d in pip_lib_dirs(&python_roots(OsStr::new("python3"))) {
            assert!(d.is_dir(), "{}", d.display());
        }
    }

    #[test]
    fn loaded_libraries_are_found_in_the_process_maps() {
        let libc = loaded_path("libc.so").expect("libc is mapped in every process");
        assert!(libc.is_absolute() && libc.exists(), "{}", libc.display());
        assert_eq!(loaded_path("libnetml-no-such-library"), None);
    }

    /// Real libraries in a folder no loader path names: the companion first (the main one
    /// needs it by soname), a broken companion only warned about, and the file loaded is the
    /// folder's. libbsd needs libmd, and neither is linked into the test binary.
    #[test]
    fn a_library_is_loaded_from_its_folder_after_its_companions() {
        let system = Path::new("/lib/x86_64-linux-gnu");
        let (bsd, md) = (system.join("libbsd.so.0"), system.join("libmd.so.0"));
        if !bsd.is_file() || !md.is_file() || loaded_path("libbsd.so").is_some() {
            eprintln!(
                "skipped: needs libbsd.so.0 and libmd.so.0 in {}",
                system.display()
            );
            return;
        }
        let tmp = tempdir();
        let dir = tmp.join("nvidia/fake/lib");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&bsd, dir.join("libbsd.so.0")).unwrap();
        std::fs::copy(&md, dir.join("libmd.so.0")).unwrap();
        std::fs::write(dir.join("libmd_broken.so.0"), b"not an ELF file").unwrap();
        let dirs = vec![tmp.join("empty"), dir.clone()];
        let got = preload_from(&dirs, "libbsd.so.0", |n| n.starts_with("libmd")).unwrap();
        assert_eq!(got, Some(dir.join("libbsd.so.0")));
        assert_eq!(loaded_path("libbsd.so"), Some(dir.join("libbsd.so.0")));
        assert_eq!(loaded_path("libmd.so"), Some(dir.join("libmd.so.0")));
    }

    #[test]
    fn a_library_nowhere_is_an_error_naming_the_search() {
        let e = preload(
            &["libnetml-no-such-library.so".to_string()],
            "libnetml-no-such-library.so.1",
            |_| false,
        )
        .unwrap_err();
        assert!(e.contains("not found (searched "), "{e}");
        assert!(e.contains("/usr/local/cuda/lib64"), "{e}");
    }

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The H200 machine's failure: cudarc opens the unversioned name first, which a -dev
    /// package can point at another installation than the one the search finds; `preload`
    /// relies on these lists to load that copy and its companions instead.
    #[test]
    fn cudarc_tries_the_unversioned_name_before_the_soname() {
        for (lib, soname) in [
            ("cudnn", "libcudnn.so.9"),
            ("cublas", "libcublas.so.13"),
            ("nvrtc", "libnvrtc.so.13"),
        ] {
            let names = cudarc::get_lib_name_candidates(lib);
            assert_eq!(names[0], format!("lib{lib}.so"));
            assert!(names.iter().any(|n| n == soname), "{lib}: {names:?}");
        }
    }

    /// `/usr/local/cuda/lib64/libcudnn.so.9` may be a link into the real installation: its
    /// sub-libraries are the ones beside the file the link reaches.
    #[test]
    fn companions_come_from_the_folder_that_holds_the_file() {
        let tmp = tempdir();
        let real = tmp.join("real");
        let link = tmp.join("link");
        touch(&real.join("libcudnn.so.9.14.0"));
        touch(&real.join("libcudnn_graph.so.9"));
        touch(&real.join("libcudnn_ops.so.9"));
        touch(&link.join("libcudnn_graph.so.9"));
        std::os::unix::fs::symlink(real.join("libcudnn.so.9.14.0"), link.join("libcudnn.so"))
            .unwrap();
        let sub = |n: &str| n.starts_with("libcudnn_") && n.ends_with(".so.9");
        let real = std::fs::canonicalize(&real).unwrap();
        assert_eq!(
            companions_of(&link.join("libcudnn.so"), &sub),
            vec![
                real.join("libcudnn_graph.so.9"),
                real.join("libcudnn_ops.so.9")
            ]
        );
    }

    fn tempdir() -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "netml-libs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
