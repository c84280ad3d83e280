//! The text tables, CSV rows and SVG plot of `netml bench pipeline`.

use super::super::output::{loadavg, Files};
use super::super::traffic::Frames;
use super::case::Figures;
use super::Args;
use std::fmt::Write as _;

const CSV_HEADER: &str = "target,mode,offered_per_s,sent_per_s,answered_per_s,seconds,\
     sink_cpu_us_per_image,sink_submit_us_per_image,sink_cpu_share,rx_cpu_us_per_image,\
     rx_cpu_share,standin_cpu_share,sender_cpu_share,latency_p50_us,latency_p99_us,\
     inside_p50_us,inside_p99_us,bad_results,dropped_images,leaked_mbufs,pool_waits,\
     ring_waits,sender_ceiling_per_s,crc_checked";

/// Everything measured in one run.
pub(super) struct Report {
    what: String,
    /// Whether the sink checked CRCs (a CSV column).
    crc: bool,
    target: String,
    files: Files,
    rows: Vec<Figures>,
    /// Images/s the sender builds with nothing else running (same run).
    pub(super) sender_ceiling: f64,
    /// Cases that could not run.
    pub(super) failed: usize,
    load_start: String,
}

fn offered(rate: f64) -> String {
    if rate > 0.0 {
        format!("{rate:.0}")
    } else {
        "max".into()
    }
}

/// One line per case as it finishes.
pub(super) fn case_line(f: &Figures) -> String {
    format!(
        "{} offered {}: sent {:.0} answered {:.0} images/s; sink {:.2} us/img ({:.1}%), rx {:.2} us/img ({:.1}%); latency p50 {:.0} us p99 {:.0} us (inside the pipeline {:.0} / {:.0}); bad {} dropped {} leaked {}",
        f.mode,
        offered(f.rate),
        f.sent_per_s,
        f.answered_per_s,
        f.sink_us,
        f.sink_share * 100.0,
        f.rx_us,
        f.rx_share * 100.0,
        f.p50_us,
        f.p99_us,
        f.inside_p50_us,
        f.inside_p99_us,
        f.bad,
        f.dropped,
        f.leaked
    )
}

impl Report {
    pub(super) fn new(a: &Args, frames: &Frames) -> Report {
        Report {
            what: format!(
                "{} f32 images ({} B, {} fragments of <= {} B), {} flow(s), batches of <= {}, {} s per case after {} s warm-up; {}",
                a.shape, frames.tensor_bytes, frames.frags, a.frag_size, a.flows, a.max_batch,
                a.seconds, a.warmup,
                if a.no_crc {
                    "CRC not checked (--no-crc): results are checked for status Ok only"
                } else {
                    "the sink reads every batch back and checks each image's CRC-32 (its CPU includes that)"
                }
            ),
            crc: !a.no_crc,
            target: a.target.clone(),
            files: Files {
                csv: a.csv.clone(),
                plot: a.plot.clone(),
            },
            rows: Vec::new(),
            sender_ceiling: 0.0,
            failed: 0,
            load_start: loadavg(),
        }
    }

    pub(super) fn add(&mut self, f: Figures) {
        self.rows.push(f);
    }

    /// What runs, and the limit.
    pub(super) fn header(&self) -> String {
        let mut s = format!(
            "netml bench pipeline: {}; ingest target {}; {} CPU(s) online, load average {}\n",
            self.what,
            self.target,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.load_start
        );
        let _ = write!(
            s,
            "limit, same run: the sender builds {:.0} images/s into mbufs with nothing else running (copy + stamp + free from a small, cache-resident pool, no ring: an upper bound): no case can be offered more",
            self.sender_ceiling
        );
        if self.target == "host" {
            s.push_str(
                "\nnote: host target: host threads stand in for the GPU (gather blocks, copy engine); their CPU is not the pipeline's and is shown apart (\"stand-in\"), and they share the CPUs with the sender, the rx worker and the sink",
            );
        }
        s
    }

    /// One table per mode.
    pub(super) fn text(&self) -> String {
        let mut s = String::new();
        let mut modes: Vec<_> = self.rows.iter().map(|r| r.mode).collect();
        modes.dedup();
        for m in modes {
            let _ = writeln!(s, "\n{m} (ingest on {}):", self.rows[0].target);
            let _ = writeln!(
                s,
                "  {:>8} {:>9} {:>9} | {:>9} {:>9} {:>7} | {:>8} {:>7} | {:>8} {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>6}",
                "offered", "sent/s", "answer/s", "sink us", "submit us", "sink %", "rx us", "rx %",
                "stand-in", "sender", "p50 us", "p99 us", "in p99 us", "pool wait", "leak"
            );
            for r in self.rows.iter().filter(|r| r.mode == m) {
                let _ = writeln!(
                    s,
                    "  {:>8} {:>9.0} {:>9.0} | {:>9.2} {:>9.2} {:>6.1}% | {:>8.2} {:>6.1}% | {:>7.0}% {:>6.0}% | {:>9.0} {:>9.0} {:>9.0} | {:>9} {:>6}",
                    offered(r.rate),
                    r.sent_per_s,
                    r.answered_per_s,
                    r.sink_us,
                    r.submit_us,
                    r.sink_share * 100.0,
                    r.rx_us,
                    r.rx_share * 100.0,
                    r.standin_share * 100.0,
                    r.feeder_share * 100.0,
                    r.p50_us,
                    r.p99_us,
                    r.inside_p99_us,
                    r.pool_waits,
                    r.leaked
                );
            }
        }
        let _ = writeln!(
            s,
            "\nsink/rx us: the thread's CPU per answered image (CLOCK_THREAD_CPUTIME_ID), % of the wall time; submit us: the part in Ingest::submit; stand-in, sender: % of one CPU; latency: sender timestamp -> result read; in p99: its part inside the pipeline (stage timestamps, first fragment received -> result sent); pool wait: the sender found the pool empty (the pipeline held every mbuf)"
        );
        let bad: u64 = self.rows.iter().map(|r| r.bad).sum();
        let leaked: i64 = self.rows.iter().map(|r| r.leaked).sum();
        let _ = writeln!(
            s,
            "results not Ok or with a wrong CRC: {bad}; mbufs leaked: {leaked}; cases that failed to run: {}; load average at the end: {}",
            self.failed,
            loadavg()
        );
        s
    }

    /// Every case ran, answered something, answered it right and leaked nothing.
    pub(super) fn clean(&self) -> bool {
        self.failed == 0
            && !self.rows.is_empty()
            && self
                .rows
                .iter()
                .all(|r| r.bad == 0 && r.leaked == 0 && r.answered_per_s > 0.0)
    }

    pub(super) fn write_files(&self) -> Result<(), String> {
        self.files
            .write(CSV_HEADER, || self.csv_rows(), || self.svg())
    }

    fn csv_rows(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{:.0},{:.1},{:.1},{:.3},{:.3},{:.3},{:.4},{:.3},{:.4},{:.4},{:.4},{:.1},{:.1},{:.1},{:.1},{},{},{},{},{},{:.0},{}",
                r.target,
                r.mode,
                r.rate,
                r.sent_per_s,
                r.answered_per_s,
                r.wall_s,
                r.sink_us,
                r.submit_us,
                r.sink_share,
                r.rx_us,
                r.rx_share,
                r.standin_share,
                r.feeder_share,
                r.p50_us,
                r.p99_us,
                r.inside_p50_us,
                r.inside_p99_us,
                r.bad,
                r.dropped,
                r.leaked,
                r.pool_waits,
                r.ring_waits,
                self.sender_ceiling,
                self.crc
            );
        }
        out
    }

    /// Answered vs offered, one line per mode; an unpaced case (`max`) is placed at the rate
    /// it was actually sent at. The series "offered" is y = x.
    fn svg(&self) -> String {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut xmax: f64 = 0.0;
        for r in &self.rows {
            let x = if r.rate > 0.0 { r.rate } else { r.sent_per_s };
            xmax = xmax.max(x);
            let name = r.mode.to_string();
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push((x, r.answered_per_s)),
                None => series.push((name, vec![(x, r.answered_per_s)])),
            }
        }
        for (_, v) in series.iter_mut() {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        series.push(("offered".into(), vec![(0.0, 0.0), (xmax, xmax)]));
        crate::plot::line_chart(
            &format!(
                "Images/s answered vs offered, whole pipeline ({})",
                self.target
            ),
            "offered images/s (max: as sent)",
            "answered images/s",
            false,
            &series,
        )
    }
}
