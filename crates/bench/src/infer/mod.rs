//! `netml bench infer`: inference time per batch and latency percentiles for every
//! model x batch x precision x thread count, on one backend; with `--compare-ort`, ONNX
//! Runtime (the Python wheel) on the same inputs right after each case, side by side.
//!
//! Each case opens the model with the same code as `netml infer`
//! ([`crate::engines::open_engine`]), runs `--warmup` untimed batches of seeded random input,
//! then times `--runs` batches one by one (wall clock around `Engine::run`, which returns
//! only when the output is on the host). The per-batch mean gives ms/batch and images/s;
//! p50/p99/max come from the individual runs (the target: p99 within 10% of p50).
//!
//! On a small shared machine the tail is mostly other processes taking the CPU away, so
//! each run also samples the thread's wait-for-CPU counter (`/proc/thread-self/schedstat`):
//! the table gives the share of runs that waited and the percentiles of those that did not
//! ("quiet"; biased towards short runs, since a long run is more likely to be interrupted).
//!
//! The code: `measure` (one case), [`compare`] (ONNX Runtime's run of the same case and
//! the side-by-side table), [`report`] (table, CSV, JSON, plots, baseline file).

mod compare;
mod measure;
pub(crate) mod report;

use clap::Args as ClapArgs;
use compare::OrtBeside;
use measure::{measure, Plan};
use netml_infer::engine::Backend;
use netml_infer::plan::Precision;
use report::Row;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Options of `netml bench infer`.
#[derive(ClapArgs)]
pub struct Args {
    /// Models (ONNX). Default: every `.onnx` in --models, or in the small seed models
    /// directory (`target/netml-infer-models/small`, written by `scripts/models/export.py`).
    models: Vec<PathBuf>,
    /// Directory whose `.onnx` files are benchmarked (in name order).
    #[arg(long = "models", value_name = "DIR", conflicts_with = "models")]
    models_dir: Option<PathBuf>,
    /// Backend: cpu (ONNX Runtime when its library is found, else tract), ort, tract,
    /// reference (the plan's CPU executor), gpu.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Thread counts the CPU backends compute on, comma-separated; `all`: every core. These
    /// are a CPU instance's shares: the CSV's `threads` column makes it a share profile for
    /// `netml simulate --sharing` (GPU share profiles: `gpu-check`'s sharing section).
    #[arg(long, visible_alias = "shares", value_delimiter = ',', default_value = "1", value_parser = crate::engines::parse_threads)]
    threads: Vec<usize>,
    /// Also run ONNX Runtime as a user would (the `onnxruntime` Python wheel through
    /// python3) on each case's input with the same threads, one batch after each of ours,
    /// and print ours vs ORT images/s and their ratio (fp32 cases only).
    #[arg(long)]
    compare_ort: bool,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    /// Precisions, comma-separated; one the backend does not support is reported and skipped.
    #[arg(long, value_delimiter = ',', default_value = "fp32,fp16")]
    precision: Vec<String>,
    /// Timed batches per case.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Untimed batches run first in each case.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Stop a case's timed runs after this many seconds (a cap for slow models; the row
    /// says so and gives the runs actually taken).
    #[arg(long)]
    seconds_per_case: Option<f64>,
    /// Append one CSV row per measured case to this file (header written when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write images/s per model grouped by batch (log y) to this SVG, and p50/p99 ms per
    /// batch to `<name>-latency.svg` beside it.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Compare with a baseline CSV of `model,batch,precision,ms` rows (ms per batch, e.g.
    /// PyTorch eager p50 from `scripts/models/torch_baseline.py`); prints p50 / baseline.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Seed of the random input.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

/// A model's name in tables and plots: its file stem (`resnet50_small`).
fn model_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Runs `netml bench infer`.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let backend: Backend = a.backend.parse().map_err(|e| format!("--backend: {e}"))?;
    let precisions = a
        .precision
        .iter()
        .map(|p| {
            p.parse::<Precision>()
                .map_err(|e| format!("--precision: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if a.batches.is_empty() || a.batches.contains(&0) {
        return Err("--batches: every batch must be at least 1".into());
    }
    if a.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let cap = match a.seconds_per_case {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err("--seconds-per-case must be a positive number".into())
        }
        s => s.map(Duration::from_secs_f64),
    };
    let models = models(&a)?;
    let baseline = a
        .baseline
        .as_deref()
        .map(report::read_baseline)
        .transpose()?;
    let machine = report::machine();

    if a.threads.is_empty() {
        return Err("--threads: give at least one thread count".into());
    }
    let cases = cases(&models, &a.batches, &precisions, &a.threads);
    let n = cases.len();
    let mut rows = Vec::with_capacity(n);
    let mut failed = 0;
    for (model, batch, precision, threads) in cases {
        let name = model_name(model);
        let mut ort =
            (a.compare_ort && precision == Precision::Fp32).then(|| OrtBeside::new(model, threads));
        let result = if backend.fp32_only() && precision != Precision::Fp32 {
            Err(format!(
                "skipped: {precision} not supported by the {backend} backend (fp32 only)"
            ))
        } else {
            let plan = Plan {
                model,
                backend,
                batch,
                precision,
                threads,
                warmup: a.warmup,
                runs: a.runs,
                cap,
                seed: a.seed,
                index: (rows.len() + 1, n),
            };
            let beside = ort.as_mut().map(|o| o as &mut dyn measure::Beside);
            measure(&plan, beside).map_err(|e| {
                failed += 1;
                format!("failed: {e}")
            })
        };
        log_case(rows.len() + 1, n, &name, batch, precision, threads, &result);
        let ort = match (ort, &result) {
            (Some(o), Ok(m)) => {
                let r = o.finish(m, a.warmup);
                log_ort(&r);
                Some(r)
            }
            _ => None,
        };
        let baseline_ms = baseline.as_ref().and_then(|b| {
            b.get(&(name.clone(), batch, precision.to_string()))
                .copied()
        });
        rows.push(Row {
            model: name,
            backend: backend.to_string(),
            precision: precision.to_string(),
            batch,
            threads,
            result,
            baseline_ms,
            ort,
        });
    }

    if a.json {
        let doc = report::json(&rows, &machine);
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        print!("{}", report::table(&rows, &machine));
        if a.compare_ort {
            print!("{}", compare::table(&rows));
        }
    }
    if let Some(path) = &a.csv {
        report::write_csv(path, &rows, &machine)?;
    }
    if let Some(path) = &a.plot {
        let (thr, lat) = report::plots(&rows, backend.as_str(), &machine);
        let lat_path = report::latency_path(path);
        super::output::write_file(path, &thr)?;
        super::output::write_file(&lat_path, &lat)?;
    }
    // Unsupported precisions are expected; a case that failed to load or run is not.
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every (model, batch, precision, threads) case, in that nesting order.
fn cases<'a>(
    models: &'a [PathBuf],
    batches: &[usize],
    precisions: &[Precision],
    threads: &[usize],
) -> Vec<(&'a Path, usize, Precision, usize)> {
    let mut v = Vec::new();
    for model in models {
        for &batch in batches {
            for &precision in precisions {
                for &t in threads {
                    v.push((model.as_path(), batch, precision, t));
                }
            }
        }
    }
    v
}

/// One stderr line per finished case, so a long run's log shows where it is.
fn log_case(
    i: usize,
    n: usize,
    name: &str,
    batch: usize,
    precision: Precision,
    threads: usize,
    r: &Result<measure::Measured, String>,
) {
    let case = format!("case {i}/{n}: {name} batch {batch} {precision} {threads} threads");
    match r {
        Ok(m) => eprintln!(
            "{case}: {} runs, p50 {:.3} ms, p99 {:.3} ms",
            m.stats.runs, m.stats.p50, m.stats.p99
        ),
        Err(e) => eprintln!("{case}: {e}"),
    }
}

/// The stderr line of ONNX Runtime's run of the case just logged.
fn log_ort(r: &Result<compare::OrtMeasured, String>) {
    match r {
        Ok(o) => eprintln!(
            "  onnxruntime {}: {} runs, p50 {:.3} ms, rel-L2 vs ours {:.1e}",
            o.version, o.stats.runs, o.stats.p50, o.rel_l2
        ),
        Err(e) => eprintln!("  {e}"),
    }
}

/// The model files to run: the arguments, `--models DIR`, or the default seed directory.
fn models(a: &Args) -> Result<Vec<PathBuf>, String> {
    if !a.models.is_empty() {
        return Ok(a.models.clone());
    }
    let dir = match &a.models_dir {
        Some(d) => d.clone(),
        None => default_models_dir().ok_or(
            "no models given and no target/netml-infer-models/small: pass MODEL.onnx or \
             --models DIR, or write the seed models with \
             `python3 scripts/models/export.py --small target/netml-infer-models/small`",
        )?,
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!("{}: no .onnx files", dir.display()));
    }
    Ok(found)
}

/// `netml-infer-models/small` under `$CARGO_TARGET_DIR`, `./target`, or the target directory
/// of the workspace this binary was built from: the first that exists.
fn default_models_dir() -> Option<PathBuf> {
    let sub = Path::new("netml-infer-models/small");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("target"), built])
        .map(|t| t.join(sub))
        .find(|d| d.is_dir())
}
