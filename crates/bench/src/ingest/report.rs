//! The text report, the CSV rows and the SVG plot of `netml bench ingest`.

use std::fmt::Write as _;

use netml_gpu::{IngestMode, Target};

use super::super::output::{loadavg, Files};
use super::measure::Point;
use super::source::Pool;
use super::{row_name, Args, Form};

/// The papers' claim: the GPU-pull path costs >= 150x less CPU per image than the CPU copy.
const TARGET_RATIO: f64 = 150.0;

const CSV_HEADER: &str = "target,mode,jobs,batch,frags_per_image,blocks,images,seconds,\
     cpu_us_per_image,cpu_mean_us_per_image,cpu_share,images_per_s,gb_per_s,latency_p50_us,\
     latency_p99_us,backpressure_waits,memcpy_us_per_image,memcpy_gb_per_s,cpu_copy_over_netml";

/// One core's memcpy of the same payloads: the floor of cpu-copy's CPU per image.
pub(super) struct Ceiling {
    pub us_per_image: f64,
    pub gb_per_s: f64,
}

/// Everything measured in one run.
pub(super) struct Report {
    target: Target,
    blocks: u32,
    what: String,
    /// Shape and element type, for the plot's title.
    short: String,
    files: Files,
    rows: Vec<(IngestMode, Form, Point)>,
    pub ceiling: Option<Ceiling>,
    load_start: String,
    frags_per_image: usize,
    clock_s: f64,
}

impl Report {
    pub(super) fn new(a: &Args, target: Target, blocks: u32, pool: &Pool, clock_s: f64) -> Report {
        let what = format!(
            "{} {} images of {} B in {} fragments of <= {} B",
            a.shape,
            if a.u8 { "u8 HWC -> f32 CHW" } else { "f32" },
            pool.wire_bytes,
            pool.frags_per_image(),
            a.frag_size
        );
        let short = format!("{} {}", a.shape, if a.u8 { "u8->f32" } else { "f32" });
        Report {
            short,
            target,
            blocks,
            what,
            files: Files {
                csv: a.csv.clone(),
                plot: a.plot.clone(),
            },
            rows: Vec::new(),
            ceiling: None,
            load_start: loadavg(),
            frags_per_image: pool.frags_per_image(),
            clock_s,
        }
    }

    pub(super) fn header(&self) {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "netml bench ingest: target {}, {} blocks, {}; {} CPUs, load {}",
            self.target, self.blocks, self.what, cpus, self.load_start
        );
        println!(
            "CPU = the submitting (pipeline) thread only: CLOCK_THREAD_CPUTIME_ID around each \
             submit, minus {:.2} us per reading (the clock's own cost); CPU us/img is the median \
             submit's, (mean) over all submits, CPU % = all submits / wall time.",
            self.clock_s * 1e6
        );
        match self.target {
            Target::Host => println!(
                "The host threads standing in for the GPU (gather blocks, copy engine) are NOT \
                 counted."
            ),
            Target::Gpu(_) => println!(
                "Limit of the copy: pinned H2D DMA 55 GB/s, zero-copy gather 48.4 GB/s \
                 (../shared/reference/h100-measurements.md, not measured by this run)."
            ),
        }
        println!(
            "{:<16} {:>5} {:>12} {:>10} {:>9} {:>10} {:>8} {:>10} {:>10} {:>8}",
            "mode",
            "batch",
            "CPU us/img",
            "(mean)",
            "CPU %",
            "images/s",
            "GB/s",
            "p50 us",
            "p99 us",
            "waits"
        );
    }

    pub(super) fn add(&mut self, mode: IngestMode, form: Form, p: Point) {
        println!(
            "{:<16} {:>5} {:>12.3} {:>10.3} {:>8.3}% {:>10.0} {:>8.2} {:>10.1} {:>10.1} {:>8}",
            row_name(mode, form),
            p.batch,
            p.cpu_us_per_image(),
            p.cpu_mean_us_per_image(),
            100.0 * p.cpu_share(),
            p.images_per_s(),
            p.gb_per_s(),
            p.latency(0.5),
            p.latency(0.99),
            p.backpressure_waits
        );
        self.rows.push((mode, form, p));
    }

    fn cpu_of(&self, mode: IngestMode, form: Form, batch: usize) -> Option<f64> {
        self.rows
            .iter()
            .find(|(m, f, p)| *m == mode && *f == form && p.batch == batch)
            .map(|(_, _, p)| p.cpu_us_per_image())
    }

    /// cpu-copy CPU per image over netml's at `batch`, both in `form`, when both were measured.
    fn ratio(&self, form: Form, batch: usize) -> Option<f64> {
        let copy = self.cpu_of(IngestMode::CpuCopy, form, batch)?;
        let netml = self.cpu_of(IngestMode::Netml, form, batch)?;
        Some(copy / netml)
    }

    pub(super) fn finish(&self) -> Result<(), String> {
        if let Some(c) = &self.ceiling {
            println!(
                "limit (same run): memcpy of the same payloads on one core: {:.1} us of CPU per \
                 image ({:.2} GB/s, {:.0} images/s per core) into a destination the size of cpu-copy's staging",
                c.us_per_image,
                c.gb_per_s,
                1e6 / c.us_per_image
            );
        }
        let mut batches: Vec<usize> = self.rows.iter().map(|(_, _, p)| p.batch).collect();
        batches.sort_unstable();
        batches.dedup();
        for form in [Form::Strided, Form::Listed] {
            for &b in &batches {
                if let Some(r) = self.ratio(form, b) {
                    let met = if r >= TARGET_RATIO { "met" } else { "NOT met" };
                    println!(
                        "{:<7} batch {b:>2}: cpu-copy / netml CPU per image = {r:.0}x (target >= \
                         {TARGET_RATIO:.0}x: {met}; ECML Table II: 0.12-0.21% vs 10.6-45.7% of a CPU)",
                        format!("{form:?}").to_lowercase()
                    );
                }
            }
        }
        println!(
            "load average at the end: {} (start: {})",
            loadavg(),
            self.load_start
        );
        self.files
            .write(CSV_HEADER, || self.csv_rows(), || self.svg())
    }

    fn csv_rows(&self) -> String {
        let mut out = String::new();
        let (mus, mgb) = self
            .ceiling
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |c| (c.us_per_image, c.gb_per_s));
        for (mode, form, p) in &self.rows {
            let ratio = self
                .ratio(*form, p.batch)
                .map_or(String::new(), |r| format!("{r:.2}"));
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{:.3},{:.4},{:.4},{:.6},{:.1},{:.3},{:.1},{:.1},{},{:.3},{:.3},{}",
                self.target,
                row_name(*mode, *form),
                format!("{form:?}").to_lowercase(),
                p.batch,
                self.frags_per_image,
                self.blocks,
                p.images,
                p.wall_s,
                p.cpu_us_per_image(),
                p.cpu_mean_us_per_image(),
                p.cpu_share(),
                p.images_per_s(),
                p.gb_per_s(),
                p.latency(0.5),
                p.latency(0.99),
                p.backpressure_waits,
                mus,
                mgb,
                ratio
            );
        }
        out
    }

    fn svg(&self) -> String {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (mode, form, p) in &self.rows {
            let pt = (p.batch as f64, p.cpu_us_per_image());
            let name = row_name(*mode, *form);
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(pt),
                None => series.push((name, vec![pt])),
            }
        }
        if let Some(c) = &self.ceiling {
            let xs: Vec<f64> = series
                .first()
                .map(|(_, v)| v.iter().map(|p| p.0).collect())
                .unwrap_or_default();
            let name = "memcpy, 1 core".to_string();
            series.push((name, xs.iter().map(|&x| (x, c.us_per_image)).collect()));
        }
        crate::plot::line_chart(
            &format!(
                "Pipeline-thread CPU per image ({}, {})",
                self.target, self.short
            ),
            "images per batch",
            "CPU us per image (log)",
            true,
            &series,
        )
    }
}
