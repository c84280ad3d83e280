//! The backend-neutral inference interface the pipeline programs against.
//!
//! Backends: [`Backend::Cpu`] (the pipeline's no-GPU path: [`Backend::Ort`], ONNX
//! Runtime loaded at run time, when its library is found, else [`Backend::Tract`],
//! tract-onnx in pure Rust), [`Backend::Reference`] (the plan's CPU reference executor,
//! slow, for checking) and [`Backend::Gpu`] ([`GpuEngine`](crate::gpu::GpuEngine): the
//! same plan on cuDNN + cuBLAS, replayed as a CUDA graph). A new backend implements [`Engine`] and gets a variant in
//! [`Backend`] / [`open`]; the pipeline does not change.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::plan::Precision;

/// A loaded model ready to run batches of images.
///
/// Inputs are f32 in logical NCHW order (`batch × input_shape()` values);
/// engines convert to their own precision and layout internally.
pub trait Engine: Send {
    /// Backend name, e.g. `"reference"` or `"cpu (tract)"`.
    fn name(&self) -> &str;

    /// Precision the engine computes in.
    fn precision(&self) -> Precision;

    /// Largest batch one [`run`](Engine::run) accepts (the batch the engine
    /// was compiled for; smaller batches are padded).
    fn max_batch(&self) -> usize;

    /// Per-image input shape, e.g. `[3, 224, 224]`.
    fn input_shape(&self) -> &[usize];

    /// Per-image output shape, e.g. `[1000]`.
    fn output_shape(&self) -> &[usize];

    /// Runs `batch` images (`1..=max_batch()`), `input` holding
    /// `batch × input_shape()` values in NCHW order. Returns
    /// `[batch, output_shape()...]`.
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Output>;
}

/// The [`Engine`] methods of an executor of a compiled plan held in `self.plan` (the
/// reference and the GPU executor): precision, batch and shapes are the plan's.
macro_rules! plan_engine_accessors {
    () => {
        fn precision(&self) -> $crate::plan::Precision {
            self.plan.precision
        }

        fn max_batch(&self) -> usize {
            self.plan.batch
        }

        fn input_shape(&self) -> &[usize] {
            self.plan.input_shape()
        }

        fn output_shape(&self) -> &[usize] {
            self.plan.output_shape()
        }
    };
}
pub(crate) use plan_engine_accessors;

/// Validates `input`/`batch` against an engine's shape; the backends call
/// it at the top of [`Engine::run`].
pub fn check_input<E: Engine + ?Sized>(engine: &E, input: &[f32], batch: usize) -> Result<()> {
    let per: usize = engine.input_shape().iter().product();
    if batch == 0 || batch > engine.max_batch() {
        return Err(Error::BadInputShape {
            expected: format!("a batch of 1..={} images", engine.max_batch()),
            got: format!("batch {batch}"),
        });
    }
    if input.len() != batch * per {
        let mut expected = vec![batch];
        expected.extend_from_slice(engine.input_shape());
        return Err(Error::BadInputShape {
            expected: format!("{expected:?} = {} values", batch * per),
            got: format!("{} values", input.len()),
        });
    }
    Ok(())
}

/// `input` zero-padded to `len` values (borrowed when it has them already): the full batch
/// an engine compiled for `max_batch` runs when given fewer images.
pub(crate) fn pad_batch(input: &[f32], len: usize) -> Cow<'_, [f32]> {
    if input.len() == len {
        return Cow::Borrowed(input);
    }
    let mut padded = vec![0f32; len];
    padded[..input.len()].copy_from_slice(input);
    Cow::Owned(padded)
}

/// The result of a run: a dense f32 tensor, batch first.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// `[batch, ...]`.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

impl Output {
    /// Number of images.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// The values of image `i`.
    pub fn item(&self, i: usize) -> &[f32] {
        let per = self.data.len() / self.batch().max(1);
        &self.data[i * per..(i + 1) * per]
    }

    /// The `k` largest values of image `i` as `(class, value)`, best first
    /// (ties broken by the lower class index).
    pub fn top_k(&self, i: usize, k: usize) -> Vec<(usize, f32)> {
        top_k(self.item(i), k)
    }
}

/// The `k` largest values of `v` as `(index, value)`, best first; NaN
/// sorts last, ties go to the lower index.
pub fn top_k(v: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (v[a], v[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y
                .partial_cmp(&x)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b)),
        }
    });
    idx.into_iter().take(k).map(|i| (i, v[i])).collect()
}

/// Which engine implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The CPU backend: ONNX Runtime ([`Backend::Ort`]) when its library is found, else
    /// tract ([`Backend::Tract`]); [`cpu_choice`] says which and why.
    Cpu,
    /// ONNX Runtime's CPU provider on the original graph (fp32), loaded at run time.
    Ort,
    /// tract-onnx on the original graph (fp32; pure Rust, the fallback).
    Tract,
    /// The plan's CPU reference executor (fp32 or fp16).
    Reference,
    /// The plan on cuDNN + cuBLAS + NVRTC kernels, one CUDA graph per batch (fp32 or fp16).
    Gpu,
}

impl Backend {
    /// `"cpu"`, `"ort"`, `"tract"`, `"reference"` or `"gpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Ort => "ort",
            Backend::Tract => "tract",
            Backend::Reference => "reference",
            Backend::Gpu => "gpu",
        }
    }

    /// Whether the backend computes in fp32 only (the CPU backends on the original graph).
    pub fn fp32_only(self) -> bool {
        matches!(self, Backend::Cpu | Backend::Ort | Backend::Tract)
    }

    /// The backend that really runs: [`Backend::Cpu`] resolved by [`cpu_choice`], any
    /// other as it is.
    pub fn resolve(self) -> Backend {
        match self {
            Backend::Cpu => cpu_choice().0,
            b => b,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Backend::Cpu),
            "ort" | "onnxruntime" => Ok(Backend::Ort),
            "tract" => Ok(Backend::Tract),
            "reference" | "ref" => Ok(Backend::Reference),
            "gpu" | "cuda" => Ok(Backend::Gpu),
            _ => Err(format!(
                "unknown backend '{s}' (expected cpu, ort, tract, reference or gpu)"
            )),
        }
    }
}

/// What [`Backend::Cpu`] runs on: [`Backend::Ort`] when ONNX Runtime loads, else
/// [`Backend::Tract`]; with a one-line reason (the library and version, or why it is
/// missing). `NETML_CPU_BACKEND=ort|tract` forces one (for `netml run`, whose functions
/// name no backend). Decided once per process; the first call also prints that line on
/// stderr.
pub fn cpu_choice() -> &'static (Backend, String) {
    static CHOICE: OnceLock<(Backend, String)> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let forced = std::env::var("NETML_CPU_BACKEND").unwrap_or_default();
        let choice = match (forced.as_str(), crate::onnxruntime::runtime()) {
            ("tract", _) => (
                Backend::Tract,
                "cpu backend: tract (NETML_CPU_BACKEND=tract)".to_string(),
            ),
            ("ort", Err(why)) => (
                Backend::Ort,
                format!("cpu backend: ONNX Runtime (NETML_CPU_BACKEND=ort) but {why}"),
            ),
            (_, Ok(rt)) => (
                Backend::Ort,
                format!(
                    "cpu backend: ONNX Runtime {} ({})",
                    rt.version,
                    rt.library.display()
                ),
            ),
            (_, Err(why)) => (
                Backend::Tract,
                format!("cpu backend: tract (ONNX Runtime not available: {why})"),
            ),
        };
        eprintln!("{}", choice.1);
        choice
    })
}

/// Opens `path` with the chosen backend for batches of up to `batch`, on one thread
/// ([`open_threads`] with 1).
pub fn open(
    path: impl AsRef<Path>,
    backend: Backend,
    batch: usize,
    precision: Precision,
) -> Result<Box<dyn Engine>> {
    open_threads(path, backend, batch, precision, 1)
}

/// Opens `path` with the chosen backend for batches of up to `batch`; the CPU backends
/// compute on `threads` threads (at least 1; the reference executor and the GPU ignore it).
pub fn open_threads(
    path: impl AsRef<Path>,
    backend: Backend,
    batch: usize,
    precision: Precision,
    threads: usize,
) -> Result<Box<dyn Engine>> {
    // Checked before `cpu` is resolved, so that a refusal is the only line printed.
    if backend.fp32_only() && precision != Precision::Fp32 {
        return Err(Error::Backend(format!(
            "the {backend} backend runs fp32 only, not {precision}"
        )));
    }
    match backend.resolve() {
        Backend::Ort => Ok(Box::new(crate::onnxruntime::OnnxRuntime::load(
            path, batch, threads,
        )?)),
        Backend::Cpu | Backend::Tract => Ok(Box::new(crate::tract::Tract::load_threads(
            path, batch, threads,
        )?)),
        Backend::Reference => Ok(Box::new(crate::reference::Reference::load(
            path, batch, precision,
        )?)),
        // GPU 0; the pipeline, which owns a context already, uses GpuEngine::with_context.
        Backend::Gpu => Ok(Box::new(crate::gpu::GpuEngine::load(
            path, batch, precision, 0,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_values_and_puts_nan_last() {
        let v = [0.1, 0.7, f32::NAN, 0.7, -1.0];
        assert_eq!(top_k(&v, 3), vec![(1, 0.7), (3, 0.7), (0, 0.1)]);
        assert_eq!(top_k(&v, 9).len(), 5);
        assert!(top_k(&v, 5)[4].1.is_nan());
        let out = Output {
            shape: vec![2, 2],
            data: vec![1.0, 2.0, 4.0, 3.0],
        };
        assert_eq!(out.batch(), 2);
        assert_eq!(out.top_k(1, 1), vec![(0, 4.0)]);
    }
}
