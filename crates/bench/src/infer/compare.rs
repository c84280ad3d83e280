//! `--compare-ort`: the same case on ONNX Runtime as a user runs it (the `onnxruntime`
//! Python wheel, `scripts/models/ort_bench.py --serve`, embedded here), on the same input
//! tensor and thread count, **batch for batch**: after each of our runs (warm-up and timed)
//! the script runs one batch, so both engines see the same load on a shared machine; and the
//! side-by-side table of both.
//!
//! The script times its own batches (`time.perf_counter` around `InferenceSession.run`), so
//! neither side pays for the pipe; the outputs are compared too (relative L2 of ONNX
//! Runtime's last output against ours), which shows that both ran the same thing.

use super::measure::{Beside, Measured, Stats};
use super::report::Row;
use netml_infer::metrics::rel_l2;
use netml_infer::npy;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The script run for every case (`python3 -c`).
const SCRIPT: &str = include_str!("../../../../scripts/models/ort_bench.py");

/// ONNX Runtime's figures for one case.
#[derive(Debug, Clone)]
pub(super) struct OrtMeasured {
    /// The wheel's version, e.g. `1.31.1`.
    pub version: String,
    pub stats: Stats,
    /// Relative L2 distance of its output from ours.
    pub rel_l2: f64,
}

/// The script's process, loaded with one case's model, input and threads.
struct Script {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Script {
    fn start(model: &Path, input: &Path, threads: usize) -> Result<Script, String> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(model)
            .arg("--input")
            .arg(input)
            .args(["--threads", &threads.to_string(), "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("onnxruntime: python3: {e}"))?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let mut script = Script {
            stdin: stdin.expect("piped"),
            stdout: BufReader::new(stdout.expect("piped")),
            child,
            version: String::new(),
        };
        let hello: Value = serde_json::from_str(&script.line()?)
            .map_err(|e| format!("onnxruntime: unreadable script output: {e}"))?;
        script.version = hello["version"].as_str().unwrap_or("?").to_string();
        Ok(script)
    }

    /// Sends one command and returns the script's answer line.
    fn ask(&mut self, command: &str) -> Result<String, String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("onnxruntime: {e}"))?;
        self.line()
    }

    /// The next stdout line; at the end of it, the script's last stderr line (why it died).
    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.stdout.read_line(&mut l) {
            Ok(n) if n > 0 => Ok(l.trim().to_string()),
            _ => {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let last = err.lines().last().unwrap_or("no output").to_string();
                Err(format!("onnxruntime: {last} (pip install onnxruntime)"))
            }
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ONNX Runtime beside our engine for one case: the script started on the case's input,
/// one batch after each of ours; the first error ends its part of the case.
pub(super) struct OrtBeside<'a> {
    model: &'a Path,
    threads: usize,
    dir: PathBuf,
    script: Result<Option<Script>, String>,
    ms: Vec<f64>,
}

impl<'a> OrtBeside<'a> {
    /// ONNX Runtime on `model` with `threads` intra-op threads (started by `measure`).
    pub(super) fn new(model: &'a Path, threads: usize) -> OrtBeside<'a> {
        let dir = std::env::temp_dir().join(format!("netml-bench-ort-{}", std::process::id()));
        OrtBeside {
            model,
            threads,
            dir,
            script: Ok(None),
            ms: Vec::new(),
        }
    }

    /// Its figures once our case is measured: the runs after the first `warmup`, and its
    /// last output against ours.
    pub(super) fn finish(mut self, ours: &Measured, warmup: usize) -> Result<OrtMeasured, String> {
        let mut script =
            std::mem::replace(&mut self.script, Ok(None))?.ok_or("onnxruntime: not started")?;
        let timed = self.ms.get(warmup..).unwrap_or_default();
        if timed.is_empty() {
            return Err("onnxruntime: no timed run".into());
        }
        let output = self.dir.join("output.npy");
        script.ask(&format!("save {}", output.display()))?;
        let (shape, values) =
            npy::read_f32(&output).map_err(|e| format!("onnxruntime output: {e}"))?;
        if shape != ours.output.shape {
            return Err(format!(
                "onnxruntime output shape {shape:?}, ours {:?}",
                ours.output.shape
            ));
        }
        Ok(OrtMeasured {
            version: script.version.clone(),
            stats: Stats::of(timed),
            rel_l2: rel_l2(&values, &ours.output.data),
        })
    }
}

impl Beside for OrtBeside<'_> {
    fn start(&mut self, shape: &[usize], input: &[f32]) {
        let path = self.dir.join("input.npy");
        self.script = std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))
            .and_then(|()| {
                npy::write_f32(&path, shape, input).map_err(|e| format!("{}: {e}", path.display()))
            })
            .and_then(|()| Script::start(self.model, &path, self.threads))
            .map(Some);
    }

    fn step(&mut self) {
        let Ok(Some(script)) = &mut self.script else {
            return;
        };
        let ms = script.ask("run").and_then(|l| {
            l.parse::<f64>()
                .map_err(|_| format!("onnxruntime: unexpected answer {l:?}"))
        });
        match ms {
            Ok(ms) => self.ms.push(ms),
            Err(e) => self.script = Err(e),
        }
    }
}

impl Drop for OrtBeside<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
        "\nvs ONNX Runtime {version} (Python wheel, same input and threads, batches alternating with ours; images/s from the mean ms per batch and from the fastest run; target ours/ORT >= 1)"
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
