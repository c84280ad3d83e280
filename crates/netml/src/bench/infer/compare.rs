//! `--compare-ort`: the same case on ONNX Runtime as a user runs it (the `onnxruntime`
//! Python wheel, `scripts/models/ort_bench.py`, embedded here), right after our engine, on
//! the same input tensor and thread count; and the side-by-side table of both.
//!
//! The timing is the script's own (`time.perf_counter` around `InferenceSession.run`), so
//! neither side pays for the other's process; the outputs are compared too (relative L2 of
//! ONNX Runtime's last output against ours), which shows that both ran the same thing.

use super::measure::{Measured, Stats};
use super::report::Row;
use netml_infer::metrics::rel_l2;
use netml_infer::npy;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The script run for every case (`python3 -c`).
const SCRIPT: &str = include_str!("../../../../../scripts/models/ort_bench.py");

/// ONNX Runtime's figures for one case.
#[derive(Debug, Clone)]
pub(super) struct OrtMeasured {
    /// The wheel's version, e.g. `1.31.1`.
    pub version: String,
    pub stats: Stats,
    /// Relative L2 distance of its output from ours.
    pub rel_l2: f64,
}

/// How ONNX Runtime is run: the same warm-up, runs and cap as our engine.
pub(super) struct OrtRun<'a> {
    pub model: &'a Path,
    pub threads: usize,
    pub warmup: usize,
    pub runs: usize,
    pub cap: Option<Duration>,
}

/// Runs `ours`'s input through ONNX Runtime and times it.
pub(super) fn measure_ort(r: &OrtRun, ours: &Measured) -> Result<OrtMeasured, String> {
    let dir = std::env::temp_dir().join(format!("netml-bench-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (input, output) = (dir.join("input.npy"), dir.join("output.npy"));
    npy::write_f32(&input, &ours.input_shape, &ours.input)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(r.model)
        .arg("--input")
        .arg(&input);
    cmd.arg("--output").arg(&output);
    for (flag, v) in [
        ("--threads", r.threads),
        ("--warmup", r.warmup),
        ("--runs", r.runs),
    ] {
        cmd.arg(flag).arg(v.to_string());
    }
    if let Some(c) = r.cap {
        cmd.arg("--seconds").arg(c.as_secs_f64().to_string());
    }
    let result = run_script(cmd, &output, ours);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_script(mut cmd: Command, output: &Path, ours: &Measured) -> Result<OrtMeasured, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("onnxruntime: python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("");
        return Err(format!(
            "onnxruntime ({}): {last} (pip install onnxruntime)",
            out.status
        ));
    }
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("onnxruntime: unreadable script output: {e}"))?;
    let ms: Vec<f64> = doc["ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if ms.is_empty() {
        return Err("onnxruntime: the script timed no run".into());
    }
    let (shape, values) = npy::read_f32(output).map_err(|e| format!("onnxruntime output: {e}"))?;
    if shape != ours.output.shape {
        return Err(format!(
            "onnxruntime output shape {shape:?}, ours {:?}",
            ours.output.shape
        ));
    }
    Ok(OrtMeasured {
        version: doc["version"].as_str().unwrap_or("?").to_string(),
        stats: Stats::of(&ms),
        rel_l2: rel_l2(&values, &ours.output.data),
    })
}

/// images/s of `batch` images taking `ms_per_batch` on average.
pub(super) fn images_per_s(batch: usize, ms_per_batch: f64) -> f64 {
    batch as f64 / (ms_per_batch / 1e3)
}

/// The side-by-side table: per model, batch and thread count, our images/s, ONNX Runtime's
/// and their ratio (>= 1: ours is at least as fast), from the mean time per batch and from
/// each side's fastest run (on a shared machine the mean carries the other processes' load,
/// the fastest run much less of it).
pub(super) fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let version = rows
        .iter()
        .find_map(|r| r.ort.as_ref()?.as_ref().ok().map(|o| o.version.clone()))
        .unwrap_or_else(|| "?".into());
    let _ = writeln!(
        s,
        "\nvs ONNX Runtime {version} (Python wheel, same input and threads; images/s from the mean ms per batch and from the fastest run; target ours/ORT >= 1)"
    );
    let _ = writeln!(
        s,
        "{:<22} {:<34} {:>5} {:>7} {:>13} {:>13} {:>8} {:>11} {:>11} {:>9} {:>9}",
        "model",
        "ours",
        "batch",
        "threads",
        "ours images/s",
        "ORT images/s",
        "ours/ORT",
        "ours best/s",
        "ORT best/s",
        "best o/O",
        "rel-L2"
    );
    for r in rows {
        let Some(ort) = &r.ort else { continue };
        let Ok(m) = &r.result else { continue };
        let head = format!(
            "{:<22} {:<34} {:>5} {:>7}",
            r.model, m.engine, r.batch, r.threads
        );
        let ours = images_per_s(r.batch, m.stats.mean);
        match ort {
            Ok(o) => {
                let theirs = images_per_s(r.batch, o.stats.mean);
                let best = images_per_s(r.batch, m.stats.min);
                let their_best = images_per_s(r.batch, o.stats.min);
                let _ = writeln!(
                    s,
                    "{head} {ours:>13.1} {theirs:>13.1} {:>8.2} {best:>11.1} {their_best:>11.1} {:>9.2} {:>9.1e}",
                    ours / theirs,
                    best / their_best,
                    o.rel_l2
                );
            }
            Err(why) => {
                let _ = writeln!(s, "{head} {ours:>13.1}  {why}");
            }
        }
    }
    s
}
