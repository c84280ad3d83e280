//! What `netml bench infer` prints and writes: the machine line, the table, CSV rows, JSON,
//! the two SVG plots, and the `--baseline` file it compares against.

use super::super::output::{append_csv, csv_field};
use super::compare::{images_per_s, OrtMeasured};
use super::measure::Measured;
use crate::plot;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One row of the result: a measured case, or why it was not (`skipped: ...` for a
/// precision the backend lacks, `failed: ...` for a load or run error).
pub(super) struct Row {
    pub model: String,
    pub backend: String,
    pub precision: String,
    pub batch: usize,
    /// Threads the engine computed on.
    pub threads: usize,
    pub result: Result<Measured, String>,
    /// The baseline's ms per batch for this case (`--baseline`), when it has one.
    pub baseline_ms: Option<f64>,
    /// ONNX Runtime on the same input (`--compare-ort`), when asked for.
    pub ort: Option<Result<OrtMeasured, String>>,
}

impl Row {
    fn images_per_s(&self, m: &Measured) -> f64 {
        images_per_s(self.batch, m.stats.mean)
    }

    /// The timing columns of a measured case, in the order of the table and the CSV: ms per
    /// batch, images/s, p50, p99 and max ms per batch, p99/p50.
    fn timing(&self, m: &Measured) -> [f64; 6] {
        let st = &m.stats;
        let per_s = self.images_per_s(m);
        [st.mean, per_s, st.p50, st.p99, st.max, st.p99 / st.p50]
    }
}

/// The machine the figures belong to: on CPU there is no fixed ceiling to compare with, so
/// the cores and CPU model are the "limit" column.
pub(super) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::process::Command::new("lscpu")
        .env("LC_ALL", "C")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_string()))
        })
        .or_else(|| {
            std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name").map(str::to_string))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}

/// The text table, one line per case.
pub(super) fn table(rows: &[Row], machine: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "machine: {machine} (no fixed ceiling on CPU: the limit column is this machine)"
    );
    let with_baseline = rows.iter().any(|r| r.baseline_ms.is_some());
    let _ = writeln!(
        s,
        "{:<22} {:<14} {:<5} {:>5} {:>7} {:>6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7} {:>6} {:>9} {:>9}{}",
        "model",
        "backend",
        "prec",
        "batch",
        "threads",
        "runs",
        "ms/batch",
        "images/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p99/p50",
        "waited",
        "quiet p50",
        "quiet p99",
        if with_baseline {
            "  baseline ms  x baseline"
        } else {
            ""
        }
    );
    for r in rows {
        let engine = r
            .result
            .as_ref()
            .map_or(r.backend.as_str(), |m| m.engine.as_str());
        let head = format!(
            "{:<22} {:<14} {:<5} {:>5} {:>7}",
            r.model, engine, r.precision, r.batch, r.threads
        );
        match &r.result {
            Err(why) => {
                let _ = writeln!(s, "{head}  {why}");
            }
            Ok(m) => {
                let st = &m.stats;
                let _ = write!(s, "{head} {:>6}", st.runs);
                // (width, decimals) of each timing column.
                let formats = [(10, 3), (10, 1), (9, 3), (9, 3), (9, 3), (7, 2)];
                for (v, (w, p)) in r.timing(m).into_iter().zip(formats) {
                    let _ = write!(s, " {v:>w$.p$}");
                }
                let waited = m.waited.map_or("-".into(), |w| {
                    format!("{:.0}%", 100.0 * w as f64 / st.runs as f64)
                });
                let (q50, q99) = m.quiet.as_ref().map_or(("-".into(), "-".into()), |q| {
                    (format!("{:.3}", q.p50), format!("{:.3}", q.p99))
                });
                let _ = write!(s, " {waited:>6} {q50:>9} {q99:>9}");
                if let Some(b) = r.baseline_ms {
                    let _ = write!(s, "  {b:>11.3} {:>10.2}", st.p50 / b);
                } else if with_baseline {
                    let _ = write!(s, "  {:>11} {:>10}", "-", "-");
                }
                if m.capped {
                    let _ = write!(s, "  (capped by --seconds-per-case)");
                }
                let _ = writeln!(s);
            }
        }
    }
    s
}

const CSV_HEADER: &str = "model,backend,engine,precision,batch,threads,runs,ms_per_batch,images_per_s,p50_ms,p99_ms,max_ms,p99_over_p50,waited_runs,quiet_p50_ms,quiet_p99_ms,load_ms,baseline_ms,p50_over_baseline,ort_ms_per_batch,ort_images_per_s,ours_over_ort,ort_rel_l2,machine";

/// Appends one row per measured case to `path` (header first when the file is new or
/// empty); skipped cases have no figures and are left out.
pub(super) fn write_csv(path: &Path, rows: &[Row], machine: &str) -> Result<(), String> {
    let mut s = String::new();
    for r in rows {
        let Ok(m) = &r.result else { continue };
        let st = &m.stats;
        let (b, ratio) = match r.baseline_ms {
            Some(b) => (format!("{b}"), format!("{:.4}", st.p50 / b)),
            None => (String::new(), String::new()),
        };
        let waited = m.waited.map_or(String::new(), |w| w.to_string());
        let (q50, q99) = m
            .quiet
            .as_ref()
            .map_or((String::new(), String::new()), |q| {
                (format!("{:.4}", q.p50), format!("{:.4}", q.p99))
            });
        let timing: Vec<String> = (r.timing(m).into_iter().zip([4, 2, 4, 4, 4, 4]))
            .map(|(v, p)| format!("{v:.p$}"))
            .collect();
        let ort = match &r.ort {
            Some(Ok(o)) => {
                let theirs = images_per_s(r.batch, o.stats.mean);
                format!(
                    "{:.4},{theirs:.2},{:.4},{:.2e}",
                    o.stats.mean,
                    r.images_per_s(m) / theirs,
                    o.rel_l2
                )
            }
            _ => ",,,".into(),
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{waited},{q50},{q99},{:.1},{b},{ratio},{ort},{}",
            csv_field(&r.model),
            r.backend,
            csv_field(&m.engine),
            r.precision,
            r.batch,
            r.threads,
            st.runs,
            timing.join(","),
            m.load_ms,
            csv_field(machine)
        );
    }
    append_csv(path, CSV_HEADER, &s)
}

/// The whole result as one JSON document.
pub(super) fn json(rows: &[Row], machine: &str) -> Value {
    let cases: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = json!({
                "model": r.model, "backend": r.backend, "precision": r.precision, "batch": r.batch,
                "threads": r.threads,
            });
            match &r.result {
                Err(why) => v["not_measured"] = json!(why),
                Ok(m) => {
                    let st = &m.stats;
                    v["engine"] = json!(m.engine);
                    v["runs"] = json!(st.runs);
                    v["capped"] = json!(m.capped);
                    v["load_ms"] = json!(m.load_ms);
                    v["ms_per_batch"] = json!(st.mean);
                    v["images_per_s"] = json!(r.images_per_s(m));
                    v["p50_ms"] = json!(st.p50);
                    v["p99_ms"] = json!(st.p99);
                    v["max_ms"] = json!(st.max);
                    v["p99_over_p50"] = json!(st.p99 / st.p50);
                    v["waited_runs"] = json!(m.waited);
                    if let Some(q) = &m.quiet {
                        v["quiet_p50_ms"] = json!(q.p50);
                        v["quiet_p99_ms"] = json!(q.p99);
                    }
                    if let Some(b) = r.baseline_ms {
                        v["baseline_ms"] = json!(b);
                        v["p50_over_baseline"] = json!(st.p50 / b);
                    }
                    match &r.ort {
                        Some(Ok(o)) => {
                            let theirs = images_per_s(r.batch, o.stats.mean);
                            v["ort"] = json!({
                                "version": o.version, "runs": o.stats.runs,
                                "ms_per_batch": o.stats.mean, "p50_ms": o.stats.p50,
                                "images_per_s": theirs, "rel_l2": o.rel_l2,
                            });
                            v["ours_over_ort"] = json!(r.images_per_s(m) / theirs);
                        }
                        Some(Err(why)) => v["ort"] = json!({ "not_measured": why }),
                        None => {}
                    }
                }
            }
            v
        })
        .collect();
    json!({ "machine": machine, "cases": cases })
}

/// Where the latency plot goes beside `--plot FILE.svg`: `FILE-latency.svg`.
pub(super) fn latency_path(plot: &Path) -> PathBuf {
    super::super::output::beside(plot, "latency", "bench-infer")
}

/// The two plots: images/s per model grouped by batch (log y), and p50/p99 ms per batch.
pub(super) fn plots(rows: &[Row], backend: &str, machine: &str) -> (String, String) {
    let mut models: Vec<&str> = Vec::new();
    for r in rows {
        if !models.contains(&r.model.as_str()) {
            models.push(&r.model);
        }
    }
    let precisions: Vec<&str> = {
        let mut p: Vec<&str> = rows
            .iter()
            .filter(|r| r.result.is_ok())
            .map(|r| r.precision.as_str())
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let threads = {
        let mut t: Vec<usize> = rows.iter().map(|r| r.threads).collect();
        t.sort_unstable();
        t.dedup();
        t.len()
    };
    let tag = |r: &Row| {
        let mut t = format!("batch {}", r.batch);
        if precisions.len() > 1 {
            t += &format!(" {}", r.precision);
        }
        if threads > 1 {
            t += &format!(" {}t", r.threads);
        }
        t
    };
    let mut thr = Vec::new();
    let mut lat = Vec::new();
    for m in &models {
        let mut t = Vec::new();
        let mut l = Vec::new();
        for r in rows.iter().filter(|r| r.model == *m) {
            let Ok(x) = &r.result else { continue };
            t.push((tag(r), r.images_per_s(x)));
            if let Some(Ok(o)) = &r.ort {
                t.push((
                    format!("{} ORT", tag(r)),
                    images_per_s(r.batch, o.stats.mean),
                ));
            }
            l.push((format!("{} p50", tag(r)), x.stats.p50));
            l.push((format!("{} p99", tag(r)), x.stats.p99));
        }
        thr.push((m.to_string(), t));
        lat.push((m.to_string(), l));
    }
    (
        plot::bar_chart(
            &format!("netml bench infer: images/s ({backend}; {machine})"),
            "images/s",
            true,
            &thr,
        ),
        plot::bar_chart(
            &format!("netml bench infer: p50 and p99 ms per batch ({backend})"),
            "ms per batch",
            true,
            &lat,
        ),
    )
}

/// Reads a baseline CSV: rows `model,batch,precision,ms` (ms per batch; a header line and
/// extra columns are allowed, `#` lines are comments). Keyed by (model, batch, precision).
pub(crate) fn read_baseline(path: &Path) -> Result<HashMap<(String, usize, String), f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 && f.first() == Some(&"model") {
            continue;
        }
        let bad = || {
            format!(
                "{}:{}: expected model,batch,precision,ms: {line}",
                path.display(),
                i + 1
            )
        };
        let [model, batch, precision, ms, ..] = f[..] else {
            return Err(bad());
        };
        let batch: usize = batch.parse().map_err(|_| bad())?;
        let ms: f64 = ms.parse().map_err(|_| bad())?;
        if !(ms.is_finite() && ms > 0.0) {
            return Err(bad());
        }
        map.insert(
            (model.to_string(), batch, precision.to_ascii_lowercase()),
            ms,
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_file_parses_and_rejects_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        std::fs::write(&p, "model,batch,precision,ms,p99_ms\n# torch\nresnet50,8,FP16,3.5,4\n\nalexnet,1,fp32,0.43\n").unwrap();
        let m = read_baseline(&p).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[&("resnet50".into(), 8, "fp16".into())], 3.5);
        std::fs::write(&p, "alexnet,1,fp32,-1\n").unwrap();
        assert!(read_baseline(&p).unwrap_err().contains(":1:"));
        std::fs::write(&p, "alexnet,1\n").unwrap();
        assert!(read_baseline(&p).is_err());
        assert_eq!(
            latency_path(Path::new("d/x.svg")),
            Path::new("d/x-latency.svg")
        );
    }
}
