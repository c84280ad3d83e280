//! The models the "infer" section checks and the PyTorch figures it compares with.
//!
//! Small seed models come with the package (`<exe>/../models`, or `NETML_MODELS_DIR`, or
//! `target/netml-infer-models/small` in a source tree); full-size ones are exported on the GPU
//! machine by scripts/gpu-check (`NETML_FULL_MODELS_DIR`, or `target/models`). By default one
//! full-size model of each kind the engine translates differently is checked
//! ([`DEFAULT_FULL`]); `--full` takes every one found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use netml_infer::fixtures::SEED_MODELS;
use netml_infer::Precision;

use super::Row;

/// Full-size models of the default run: residual bottlenecks, depthwise convolutions, plain
/// convolutions with large fully connected layers. (vgg19 is alexnet's kind at 2.3x the
/// weights and ~10 s per image in the CPU reference; resnext50 and densenet121 add grouped
/// convolutions and concats, which the small models cover.) scripts/gpu-check exports the
/// same list.
pub const DEFAULT_FULL: [&str; 3] = ["resnet50", "mobilenet_v2", "alexnet"];

/// A model file found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The file stem: `resnet50` or `resnet50_small`.
    pub name: String,
    pub path: PathBuf,
    /// Full size (224 x 224, 1000 classes) rather than a small CI variant.
    pub full: bool,
}

/// Every small seed model found, then the full-size ones (all with `full`, else those of
/// [`DEFAULT_FULL`]).
pub fn models(full: bool) -> Vec<Found> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let mut small_dirs: Vec<PathBuf> = std::env::var_os("NETML_MODELS_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    small_dirs.extend(exe_dir.map(|d| d.join("../models")));
    small_dirs.push(PathBuf::from("target/netml-infer-models/small"));
    let mut full_dirs: Vec<PathBuf> = std::env::var_os("NETML_FULL_MODELS_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    full_dirs.push(PathBuf::from("target/models"));
    let find =
        |dirs: &[PathBuf], file: &str| dirs.iter().map(|d| d.join(file)).find(|p| p.is_file());
    let mut found = Vec::new();
    for m in SEED_MODELS {
        if let Some(path) = find(&small_dirs, &format!("{m}_small.onnx")) {
            found.push(Found {
                name: format!("{m}_small"),
                path,
                full: false,
            });
        }
    }
    for m in SEED_MODELS
        .iter()
        .filter(|m| full || DEFAULT_FULL.contains(m))
    {
        if let Some(path) = find(&full_dirs, &format!("{m}.onnx")) {
            found.push(Found {
                name: m.to_string(),
                path,
                full: true,
            });
        }
    }
    found
}

/// The PyTorch eager figures the GPU executor is compared with.
pub enum Baseline {
    /// Measured in this run by `scripts/models/torch_baseline.py` (scripts/gpu-check's
    /// run.sh writes it and names it in `NETML_TORCH_BASELINE`): keyed by (model, batch,
    /// precision), model names as the .onnx stems (`resnet50`, `resnet50_small`); precision
    /// `fp32` is true fp32 (TF32 off), `tf32` the same with TF32 allowed, `fp16`.
    SameRun(HashMap<(String, usize, String), f64>),
    /// No measurement in this run: the reference table of ../shared/reference (full-size
    /// models only), labelled as such.
    Table,
}

impl Baseline {
    /// The baseline of this run, and a failed row when the file named cannot be read.
    pub fn load(section: &str) -> (Baseline, Option<Row>) {
        let Some(path) = std::env::var_os("NETML_TORCH_BASELINE").map(PathBuf::from) else {
            return (Baseline::Table, None);
        };
        match crate::infer::report::read_baseline(&path) {
            Ok(m) => (Baseline::SameRun(m), None),
            Err(e) => (
                Baseline::Table,
                Some(Row::failed(
                    section,
                    "PyTorch baseline (NETML_TORCH_BASELINE)",
                    e,
                )),
            ),
        }
    }

    /// PyTorch's ms per batch and where it comes from.
    pub fn ms(
        &self,
        model: &str,
        full: bool,
        batch: usize,
        p: Precision,
    ) -> Option<(f64, &'static str)> {
        match self {
            Baseline::SameRun(m) => m
                .get(&(model.to_string(), batch, p.to_string()))
                .map(|&ms| (ms, "this run")),
            Baseline::Table if full => table_ms(model, batch, p).map(|ms| (ms, "reference table")),
            Baseline::Table => None,
        }
    }

    /// PyTorch fp32 with TF32 allowed (measured only with `torch_baseline.py --precision
    /// ...,tf32`), for an fp32 row's note.
    pub fn tf32_ms(&self, model: &str, batch: usize) -> Option<f64> {
        match self {
            Baseline::SameRun(m) => m
                .get(&(model.to_string(), batch, "tf32".to_string()))
                .copied(),
            Baseline::Table => None,
        }
    }
}

/// PyTorch 2.11 eager on the H100 (../shared/reference/h100-measurements.md), ms per batch
/// for (model, batch, precision), for the full-size models it lists.
pub fn table_ms(model: &str, batch: usize, p: Precision) -> Option<f64> {
    // (fp32 b1 ms, fp32 b8 img/s, fp32 b32 img/s, fp16 b32 img/s)
    let (b1, b8, b32, h32) = match model {
        "alexnet" => (0.43, 15.5e3, 33.0e3, 54.7e3),
        "mobilenet_v2" => (2.65, 3.1e3, 10.7e3, 9.6e3),
        "resnet50" => (4.22, 2.3e3, 5.3e3, 7.3e3),
        "vgg19" => (1.20, 2.6e3, 3.1e3, 4.8e3),
        _ => return None,
    };
    match (batch, p) {
        (1, Precision::Fp32) => Some(b1),
        (8, Precision::Fp32) => Some(8e3 / b8),
        (32, Precision::Fp32) => Some(32e3 / b32),
        (32, Precision::Fp16) => Some(32e3 / h32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scripts/gpu-check exports exactly the full-size models the binary checks by default,
    /// and every one of them is a seed model.
    #[test]
    fn the_script_exports_the_default_full_size_models() {
        let script = include_str!("../../../../scripts/gpu-check");
        let line = format!("default_models=\"{}\"", DEFAULT_FULL.join(" "));
        assert!(script.contains(&line), "scripts/gpu-check lacks {line}");
        assert!(DEFAULT_FULL.iter().all(|m| SEED_MODELS.contains(m)));
    }
}
