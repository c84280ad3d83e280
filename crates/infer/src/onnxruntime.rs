//! The `ort` backend: ONNX Runtime's CPU execution provider on the original ONNX graph,
//! through the `ort` crate with the library loaded at run time.
//!
//! Nothing is linked or downloaded at build time: [`runtime`] finds `libonnxruntime.so` once
//! per process (`$ORT_DYLIB_PATH`, else the copy the `onnxruntime` Python wheel ships, which
//! `scripts/install-deps` installs) and loads it. When it is missing, [`Backend::Cpu`]
//! falls back to tract (see [`crate::engine::open`]).
//!
//! Each engine owns a session with `threads` intra-op threads (ONNX Runtime's own pool;
//! 1 runs on the calling thread), sequential execution and every graph optimization, as
//! `onnxruntime.InferenceSession` does by default. The input's batch dimension stays
//! dynamic, so a short batch runs as it is, not padded.
//!
//! [`Backend::Cpu`]: crate::engine::Backend::Cpu

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::engine::{Engine, Output};
use crate::error::{Error, Result};
use crate::onnx::Model;
use crate::plan::Precision;

/// The loaded ONNX Runtime library: where it came from and its version.
#[derive(Clone)]
pub struct Runtime {
    /// The `libonnxruntime.so` file loaded.
    pub library: PathBuf,
    /// Its version, e.g. `1.31.1`.
    pub version: String,
    environment: ort::environment::Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("version", &self.version)
            .finish()
    }
}

/// ONNX Runtime, loaded on first use; `Err` says in one line why it is not available.
/// The result is kept for the life of the process (a library loads once).
pub fn runtime() -> std::result::Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(load_runtime)
        .as_ref()
        .map_err(Clone::clone)
}

fn load_runtime() -> std::result::Result<Runtime, String> {
    let library = library()?;
    let environment = ort::init_from(&library)
        .map_err(|e| format!("{}: {e}", library.display()))?
        .with_name("netml")
        .build()
        .map_err(|e| format!("{}: {e}", library.display()))?;
    let version = version_of(&library);
    Ok(Runtime {
        library,
        version,
        environment,
    })
}

/// The `libonnxruntime.so` to load: `$ORT_DYLIB_PATH` when set, else the one in the
/// `onnxruntime` Python package (`<package>/capi/libonnxruntime.so.<version>`), located by
/// asking `python3` (without importing the package).
pub fn library() -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ORT_DYLIB_PATH={}: no such file", p.display()))
        };
    }
    let script = "import importlib.util as u; s = u.find_spec('onnxruntime'); \
                  print(s.submodule_search_locations[0] if s else '')";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .map_err(|e| format!("no ORT_DYLIB_PATH and python3 could not run: {e}"))?;
    let package = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || package.is_empty() {
        return Err(
            "no ORT_DYLIB_PATH and no onnxruntime Python package (pip install onnxruntime)".into(),
        );
    }
    let capi = Path::new(&package).join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| format!("{}: {e}", capi.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    // The versioned name sorts last (`libonnxruntime.so` < `libonnxruntime.so.1.31.1`).
    found.sort();
    found
        .pop()
        .ok_or_else(|| format!("{}: no libonnxruntime.so", capi.display()))
}

/// The version in a `libonnxruntime.so.X.Y.Z` file name, or `"?"` for an unversioned one.
fn version_of(library: &Path) -> String {
    library
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("libonnxruntime.so."))
        .unwrap_or("?")
        .to_string()
}

/// ONNX Runtime engine (fp32) for batches of up to `batch`.
pub struct OnnxRuntime {
    session: Session,
    name: String,
    batch: usize,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

impl std::fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntime")
            .field("name", &self.name)
            .field("batch", &self.batch)
            .finish()
    }
}

fn oerr(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("onnxruntime: {e}"))
}

impl OnnxRuntime {
    /// Loads an ONNX file for batches of up to `batch`, computing on `threads` threads
    /// (at least 1).
    pub fn load(path: impl AsRef<Path>, batch: usize, threads: usize) -> Result<OnnxRuntime> {
        let runtime = runtime().map_err(|e| Error::Backend(format!("onnxruntime: {e}")))?;
        if batch == 0 {
            return Err(Error::BadInputShape {
                expected: "a batch size of at least 1".into(),
                got: "0".into(),
            });
        }
        let path = path.as_ref();
        let proto = crate::onnx::read_proto(path)?;
        let ir = Model::from_proto(&proto)?;
        if ir.inputs.len() != 1 {
            return Err(Error::InvalidModel(format!(
                "expected exactly one runtime input, found {}",
                ir.inputs.len()
            )));
        }
        let input_shape = ir.inputs[0].batched_shape(batch)?[1..].to_vec();
        let threads = threads.max(1);
        let session = Session::builder(&runtime.environment)
            .map_err(oerr)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(oerr)?
            .with_intra_threads(threads)
            .map_err(oerr)?
            .with_inter_threads(1)
            .map_err(oerr)?
            .with_parallel_execution(false)
            .map_err(oerr)?
            .commit_from_file(path)
            .map_err(oerr)?;
        let mut engine = OnnxRuntime {
            session,
            name: format!(
                "cpu (onnxruntime {} on {threads} thread{})",
                runtime.version,
                if threads == 1 { "" } else { "s" }
            ),
            batch,
            input_shape,
            output_shape: Vec::new(),
        };
        // One image through the graph gives the output shape whatever the model declares.
        let per: usize = engine.input_shape.iter().product();
        let probe = engine.run_raw(&vec![0f32; per], 1)?;
        if probe.shape.first() != Some(&1) {
            return Err(Error::InvalidModel(format!(
                "the output shape {:?} is not batch-first",
                probe.shape
            )));
        }
        engine.output_shape = probe.shape[1..].to_vec();
        Ok(engine)
    }

    /// Runs `batch` images without checking them against the output shape.
    fn run_raw(&mut self, input: &[f32], batch: usize) -> Result<Output> {
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.input_shape);
        let tensor = TensorRef::from_array_view((shape, input)).map_err(oerr)?;
        let outputs = self.session.run(ort::inputs![tensor]).map_err(oerr)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(oerr)?;
        let shape = out_shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| oerr(format!("output dimension {d}"))))
            .collect::<Result<Vec<usize>>>()?;
        Ok(Output {
            shape,
            data: data.to_vec(),
        })
    }
}

impl Engine for OnnxRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn precision(&self) -> Precision {
        Precision::Fp32
    }

    fn max_batch(&self) -> usize {
        self.batch
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn run(&mut self, input: &[f32], batch: usize) -> Result<Output> {
        crate::engine::check_input(self, input, batch)?;
        let out = self.run_raw(input, batch)?;
        let mut expected = vec![batch];
        expected.extend_from_slice(&self.output_shape);
        if out.shape != expected {
            return Err(oerr(format!(
                "output shape {:?}, expected {expected:?}",
                out.shape
            )));
        }
        Ok(out)
    }
}
