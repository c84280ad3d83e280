//! `netml gpu-check`: what a GPU machine can do for netml, in one run, needing no DPDK
//! hugepages and no source tree (`scripts/gpu-check` ships the binary and runs this).
//!
//! Discovery first (no GPU: one line with the reason, exit status 3); then one section after
//! the other on a context of the chosen GPU. Each section returns rows (one per check or
//! figure), printed as they come and again as a table at the end, which is also written to
//! `--out` as CSV and markdown. Exit status 0 when no check failed, 1 otherwise.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args as ClapArgs;
use cudarc::driver::CudaContext;
use netml_gpu::cuda::{self, GpuInfo};

mod copy;
mod green;
mod infer;
mod ingest;
mod nvrtc;
mod table;

/// Options of `netml gpu-check`.
#[derive(ClapArgs)]
pub struct Args {
    /// Directory for the result table (gpu-check.csv, gpu-check.md) and any files sections
    /// write.
    #[arg(long, default_value = "gpu-check-out")]
    out: PathBuf,
    /// GPU ordinal to check.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
}

/// One line of the final table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Section name ("nvrtc", "copy", ...).
    pub section: String,
    /// What was checked or measured.
    pub check: String,
    /// Pass/fail; `None` for a figure that has no pass mark (a measurement).
    pub ok: Option<bool>,
    /// The result: a measurement, a count, or the error text.
    pub figure: String,
    /// What to compare with (a reference measurement, a bound), or "-".
    pub limit: String,
}

impl Row {
    /// A check with a pass mark.
    pub fn check(section: &str, check: &str, ok: bool, figure: String, limit: &str) -> Row {
        Row {
            section: section.into(),
            check: check.into(),
            ok: Some(ok),
            figure,
            limit: limit.into(),
        }
    }

    /// A measurement without a pass mark.
    pub fn figure(section: &str, check: &str, figure: String, limit: &str) -> Row {
        Row {
            section: section.into(),
            check: check.into(),
            ok: None,
            figure,
            limit: limit.into(),
        }
    }

    /// A failed check, with the error as its figure.
    pub fn failed(section: &str, check: &str, error: impl std::fmt::Display) -> Row {
        Row::check(section, check, false, error.to_string(), "-")
    }
}

/// A section: rows for one GPU, given a context on it and the output directory.
type Section = fn(&Arc<CudaContext>, &GpuInfo, &Path) -> Vec<Row>;

/// Every section, in order: the basics (NVRTC, copies, green contexts), then the ingest
/// modes (correctness, bandwidth, latency) and inference (GPU executor against the
/// reference). New sections are added here.
fn sections() -> Vec<(&'static str, Section)> {
    vec![
        ("nvrtc", nvrtc::rows),
        ("copy", copy::rows),
        ("green", green::rows),
        ("ingest", ingest::rows),
        ("infer", infer::rows),
    ]
}

/// Runs a section; a panic in it becomes a failed row instead of ending the whole check.
fn run_section(
    name: &str,
    section: Section,
    ctx: &Arc<CudaContext>,
    gpu: &GpuInfo,
    out: &Path,
) -> Vec<Row> {
    match panic::catch_unwind(AssertUnwindSafe(|| section(ctx, gpu, out))) {
        Ok(rows) => rows,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            vec![Row::failed(name, "section", format!("panicked: {msg}"))]
        }
    }
}

/// Runs every section on GPU `--gpu` and prints/writes the table.
pub fn run(a: Args) -> Result<ExitCode, String> {
    let gpus = match cuda::discover() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gpu-check: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let gpu = gpus.get(a.gpu).cloned().ok_or_else(|| {
        format!(
            "--gpu {}: only {} GPU(s) ({})",
            a.gpu,
            gpus.len(),
            gpus.iter()
                .map(|g| g.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut rows = Vec::new();
    for g in &gpus {
        println!("gpu-check: {g}");
    }
    rows.push(Row::check(
        "discovery",
        "device",
        true,
        format!(
            "{}, {} SMs, {:.1} GiB, cc {}.{}, {}",
            gpu.name,
            gpu.sm_count,
            gpu.total_mem as f64 / (1u64 << 30) as f64,
            gpu.cc_major,
            gpu.cc_minor,
            gpu.pci_bus_id
        ),
        "H100: 132 SMs, 80 GB, cc 9.0",
    ));
    match CudaContext::new(gpu.ordinal) {
        Ok(ctx) => {
            rows.push(Row::check(
                "discovery",
                "context",
                true,
                "primary context created".into(),
                "-",
            ));
            for (name, section) in sections() {
                for row in run_section(name, section, &ctx, &gpu, &a.out) {
                    table::print_row(&row);
                    rows.push(row);
                }
            }
        }
        Err(e) => rows.push(Row::failed("discovery", "context", e)),
    }
    println!();
    print!("{}", table::text(&rows));
    table::write(&a.out, &rows).map_err(|e| format!("{}: {e}", a.out.display()))?;
    println!("gpu-check: table written to {}", a.out.display());
    let failed = rows.iter().filter(|r| r.ok == Some(false)).count();
    if failed > 0 {
        println!("gpu-check: {failed} check(s) FAILED");
        return Ok(ExitCode::from(1));
    }
    println!("gpu-check: all checks passed");
    Ok(ExitCode::SUCCESS)
}
