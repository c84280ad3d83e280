//! `netml gpu-check`: what a GPU machine can do for netml, in one run, needing no DPDK
//! hugepages and no source tree (`scripts/gpu-check` ships the binary and runs this).
//!
//! Discovery first (no GPU: one line with the reason, exit status 3), then the libraries in
//! this process, then every GPU section in a child process of its own with a time limit
//! ([`child`]): a kernel that hangs, or a context that waits on one, costs that section only,
//! and a section's rows reach stdout and `--out` (`gpu-check.csv`, `gpu-check.md`) as soon as
//! it finishes. Each section reports its elapsed time. `--dry-run` runs the CPU side of every
//! section on a machine without a GPU and estimates the GPU run ([`dry`]). Exit status 0 when
//! no check failed, 1 otherwise.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args as ClapArgs;
use cudarc::driver::CudaContext;
use netml_gpu::cuda::{self, GpuInfo};

mod child;
mod copy;
mod dry;
mod green;
mod infer;
mod ingest;
mod libraries;
mod models;
mod nvrtc;
mod sharing;
mod table;

pub use child::Rows;

/// Options of `netml gpu-check`.
#[derive(ClapArgs, Clone)]
pub struct Args {
    /// Directory for the result table (gpu-check.csv, gpu-check.md) and any files sections
    /// write.
    #[arg(long, default_value = "gpu-check-out")]
    out: PathBuf,
    /// GPU ordinal to check.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Every full-size seed model found (default: one per kind: resnet50 (residual),
    /// mobilenet_v2 (depthwise), alexnet (plain conv + large FC)).
    #[arg(long)]
    full: bool,
    /// No GPU needed: run the CPU side of every section here, print each one's time and an
    /// estimate of the whole run on the GPU machine.
    #[arg(long)]
    dry_run: bool,
    /// Seconds the command already spent before this binary started (scripts/gpu-check's
    /// model export and PyTorch baseline): counted in the budget and the estimate.
    #[arg(long, default_value_t = 0.0)]
    elapsed_before: f64,
    /// Seconds the whole command may take (the device tool allows 600 per command): the GPU
    /// sections' time limits are cut to what is left.
    #[arg(long, default_value_t = 570.0)]
    budget: f64,
    /// Print the existing folders netml loads CUDA libraries from (`:`-separated; run.sh
    /// puts them on LD_LIBRARY_PATH), then exit.
    #[arg(long, hide = true)]
    print_lib_dirs: bool,
    /// Internal: run this one section in this process (the parent runs each GPU section as a
    /// child process), its rows appended to `--rows`.
    #[arg(long, hide = true)]
    section: Option<String>,
    /// Internal: where a child appends its rows (JSON lines).
    #[arg(long, hide = true)]
    rows: Option<PathBuf>,
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

/// What a GPU section works with.
pub struct Env<'a> {
    pub ctx: &'a Arc<CudaContext>,
    pub gpu: &'a GpuInfo,
    /// The output directory (sections write their own CSV files there).
    pub out: &'a Path,
    /// `--full`: every full-size model, not one per kind.
    pub full: bool,
}

/// A GPU section: checks on one GPU, each row pushed as it is known.
type Section = fn(&Env, &mut Rows);

/// Every GPU section in order with its time limit in seconds (cut further to the budget
/// left): the basics (NVRTC, copies, green contexts), then the ingest modes (correctness,
/// bandwidth, latency) and inference (GPU executor against the reference). New sections are
/// added here and in [`dry`]'s estimate.
const SECTIONS: [(&str, Section, f64); 6] = [
    ("nvrtc", nvrtc::rows, 60.0),
    ("copy", copy::rows, 60.0),
    ("green", green::rows, 30.0),
    ("ingest", ingest::rows, 150.0),
    ("infer", infer::rows, 420.0),
    ("sharing", sharing::rows, 120.0),
];

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`; a panic in it becomes a failed row of `section` instead of ending the check.
fn guarded(section: &str, rows: &mut Rows, f: impl FnOnce(&mut Rows)) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| f(rows))) {
        rows.push(Row::failed(
            section,
            "section",
            format!("panicked: {}", panic_text(&*p)),
        ));
    }
}

/// `netml gpu-check`: the parent run, a child's one section, or the dry run.
pub fn run(a: Args) -> Result<ExitCode, String> {
    if a.print_lib_dirs {
        let dirs: Vec<PathBuf> = cuda::libs::search_dirs()
            .iter()
            .filter(|d| d.is_dir())
            .cloned()
            .collect();
        let joined = std::env::join_paths(dirs).map_err(|e| e.to_string())?;
        println!("{}", joined.to_string_lossy());
        return Ok(ExitCode::SUCCESS);
    }
    if a.dry_run {
        return dry::run(&a);
    }
    if let Some(name) = &a.section {
        return child::run_one(&a, name);
    }
    let t0 = Instant::now();
    let gpus = match cuda::discover() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gpu-check: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let gpu = gpus.get(a.gpu).cloned().ok_or_else(|| {
        let names: Vec<String> = gpus.iter().map(|g| g.name.clone()).collect();
        format!(
            "--gpu {}: only {} GPU(s) ({})",
            a.gpu,
            gpus.len(),
            names.join(", ")
        )
    })?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let writer = table::Writer::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut all = Vec::new();
    let finish = |rows: Vec<Row>, all: &mut Vec<Row>| {
        if let Err(e) = writer.append(&rows) {
            eprintln!("gpu-check: writing {}: {e}", a.out.display());
        }
        all.extend(rows);
    };
    for g in &gpus {
        println!("gpu-check: {g}");
    }
    let mut rows = Rows::printed("discovery");
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
        "H200: 132 SMs, 141 GB, cc 9.0",
    ));
    guarded("libraries", &mut rows, libraries::rows);
    finish(rows.into_rows(), &mut all);
    for (name, _, cap) in SECTIONS {
        let left = a.budget - a.elapsed_before - t0.elapsed().as_secs_f64();
        finish(child::run_section(&a, name, cap, left), &mut all);
    }
    println!();
    print!("{}", table::text(&all));
    println!(
        "gpu-check: table written to {} ({:.1} s in this binary, {:.1} s before it)",
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        a.elapsed_before
    );
    let failed = all.iter().filter(|r| r.ok == Some(false)).count();
    if failed > 0 {
        println!("gpu-check: {failed} check(s) FAILED");
        return Ok(ExitCode::from(1));
    }
    println!("gpu-check: all checks passed");
    Ok(ExitCode::SUCCESS)
}
