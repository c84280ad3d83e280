//! The result of a run: the headline per-core figures, the text report and the CSV row.

use super::Args as RxArgs;
use crate::meter::{Quiet, Rates};
use crate::output::append_csv;
use netml_pipeline::stats::WorkerCounters;
use std::fmt::Write as _;
use std::path::Path;

/// 100 GbE budget per 1 KiB-payload frame (1102 B on the wire incl. preamble and IFG).
const BUDGET_NS: f64 = 88.0;
/// The same budget as a packet rate.
const BUDGET_MPPS: f64 = 11.34;
/// What one rx core should sustain.
const TARGET_MPPS: f64 = 20.0;
/// The most the pipeline's rx core may cost per packet, as a multiple of the floor's.
pub(super) const TARGET_VS_FLOOR: f64 = 1.5;

/// The per-core figures a run reports (and writes to the CSV file).
pub(super) struct Headline {
    mpps: f64,
    pub(super) ns_per_packet: f64,
    images_per_s: f64,
    /// Where they come from.
    source: String,
}

impl Headline {
    /// The undisturbed intervals when they cover at least a quarter of the window (on a
    /// quiet machine: all of it), else the whole window.
    pub(super) fn choose(r: &Rates, q: &Quiet, hz: f64, frags_per_image: f64) -> Headline {
        match q.figures(hz) {
            Some((mpps, ns)) if q.coverage() >= 0.25 => Headline {
                mpps,
                ns_per_packet: ns,
                images_per_s: mpps * 1e6 / frags_per_image,
                source: format!(
                    "over the {:.0}% of the window in which the rx thread never waited for a CPU",
                    q.coverage() * 100.0
                ),
            },
            _ => Headline {
                mpps: r.mpps,
                ns_per_packet: r.ns_per_packet,
                images_per_s: r.images_per_s,
                source: format!(
                    "over the whole window (undisturbed intervals cover only {:.0}% of it)",
                    q.coverage() * 100.0
                ),
            },
        }
    }
}

pub(super) fn report(
    a: &RxArgs,
    r: &Rates,
    h: &Headline,
    w: &WorkerCounters,
    leaked: u32,
    frags: usize,
    interrupted: bool,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "result ({:.2} s measured after {:.1} s warm-up{}; memory {}):",
        r.wall_s,
        a.warmup,
        if interrupted { ", interrupted" } else { "" },
        if a.huge {
            "hugepages"
        } else {
            "no-huge (4 KiB pages)"
        }
    );
    let _ = writeln!(
        s,
        "  rx core (rx_burst + classify + verify, Worker loop): {:.2} Mpps, {:.1} ns/packet, {:.0} images/s  [{}]",
        h.mpps, h.ns_per_packet, h.images_per_s, h.source
    );
    window_lines(&mut s, r);
    let _ = writeln!(
        s,
        "  100 GbE budget {BUDGET_NS:.0} ns/packet ({BUDGET_MPPS} Mpps): {}",
        if h.ns_per_packet > 0.0 {
            format!(
                "{:.0}% of it used, {:.2}x the line rate per core",
                h.ns_per_packet / BUDGET_NS * 100.0,
                h.mpps / BUDGET_MPPS
            )
        } else {
            "n/a".into()
        }
    );
    let _ = writeln!(
        s,
        "  target >= {TARGET_MPPS:.0} Mpps per core: {}",
        if h.mpps >= TARGET_MPPS {
            "met".to_string()
        } else {
            format!(
                "NOT met ({:.2} Mpps, {:.0}% of it)",
                h.mpps,
                h.mpps / TARGET_MPPS * 100.0
            )
        }
    );
    let _ = writeln!(
        s,
        "  delivered (wall clock): {:.2} Mpps, {:.0} images/s",
        r.wall_mpps, r.wall_images_per_s
    );
    feeder_line(&mut s, r);
    let v = &w.verifier;
    let _ = writeln!(
        s,
        "  checks (whole run): frames {} fragments {} other {} invalid {}; verifier accepted {} dropped {} (dup {} late {} inconsistent {} out-of-range {}); images {} ({} fragments each), evicted under pressure {}, at stop {}; backpressure {}; mbufs leaked {leaked}",
        w.rx.frames,
        w.rx.fragments,
        w.rx.other,
        w.rx.invalid(),
        v.accepted,
        v.dropped(),
        v.duplicate,
        v.late,
        v.inconsistent,
        v.out_of_range,
        v.images_completed,
        frags,
        v.evicted_pressure,
        v.evicted_timeout,
        w.backpressure_images,
    );
    s
}

/// The whole window's rx figures and the thread's share of the CPU (and a warning when
/// other processes took it).
fn window_lines(s: &mut String, r: &Rates) {
    let _ = writeln!(
        s,
        "    whole window: {:.2} Mpps, {:.1} ns/packet; rx thread {:.1}% in busy polls, on a CPU {:.1}%, waiting for one {:.1}%; {:.1} packets/poll; {} preempted polls ({} packets) left out",
        r.mpps, r.ns_per_packet, r.rx_busy * 100.0, r.rx_oncpu * 100.0, r.rx_wait * 100.0, r.pkts_per_poll, r.rx_preempted, r.rx_preempted_packets
    );
    if r.rx_wait > 0.02 {
        let _ = writeln!(
            s,
            "  WARNING: other processes kept the rx thread off a CPU {:.1}% of the time (and shared the caches); rerun on a quiet machine",
            r.rx_wait * 100.0
        );
    }
}

/// The feeder's figures and what bounded the run.
fn feeder_line(s: &mut String, r: &Rates) {
    let bound = if r.rx_wait > 0.02 {
        "disturbed: other processes took CPU time from the bench threads, the delivered rate says little"
    } else if r.rx_busy >= 0.9 && r.feed_busy < 0.8 {
        "rx-bound: the rx core was busy nearly all the time, the source was not the bottleneck"
    } else if r.rx_busy >= 0.9 {
        "both near their limits: the rx core was busy nearly all the time and so was the feeder"
    } else {
        "feeder-bound: the rx core idled part of the time (empty polls are excluded from its figure)"
    };
    let _ = writeln!(
        s,
        "  feeder: {:.2} Mpps delivered, {:.1} ns/packet busy ({:.0}% busy, on a CPU {:.0}%), ring {:.0}% full on average, found full {} times -> {bound}",
        r.feed_mpps,
        r.feed_ns_per_packet,
        r.feed_busy * 100.0,
        r.feed_oncpu * 100.0,
        r.ring_fill * 100.0,
        r.feed_ring_full,
    );
}

/// The floor's run (see `bench::floor`): its per-core figures, window and feeder.
pub(super) fn report_floor(
    a: &RxArgs,
    r: &Rates,
    h: &Headline,
    leaked: u32,
    interrupted: bool,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "floor ({:.2} s measured after {:.1} s warm-up{}; same feeder, ring and traffic):",
        r.wall_s,
        a.warmup,
        if interrupted { ", interrupted" } else { "" },
    );
    let _ = writeln!(
        s,
        "  floor core (rx_burst + prefetch + read 64 B per packet + give back): {:.2} Mpps, {:.1} ns/packet  [{}]",
        h.mpps, h.ns_per_packet, h.source
    );
    window_lines(&mut s, r);
    feeder_line(&mut s, r);
    let _ = writeln!(s, "  checks (whole run): mbufs leaked {leaked}");
    s
}

/// The pipeline's rx core against the floor, measured in the same run.
#[derive(Clone, Copy)]
pub(super) struct Ratio {
    netml_ns: f64,
    floor_ns: f64,
}

impl Ratio {
    pub(super) fn of(netml: &Headline, floor: &Headline) -> Ratio {
        Ratio {
            netml_ns: netml.ns_per_packet,
            floor_ns: floor.ns_per_packet,
        }
    }

    /// netml's ns/packet over the floor's (NaN when either measured nothing: a receiver
    /// that handled no packet does not meet the target).
    pub(super) fn value(&self) -> f64 {
        if self.floor_ns > 0.0 && self.netml_ns > 0.0 {
            self.netml_ns / self.floor_ns
        } else {
            f64::NAN
        }
    }

    /// The round whose ratio is the median of `ratios` (the lower middle one of an even
    /// number), so that the ns/packet figures printed with it were measured together.
    pub(super) fn median(ratios: &[Ratio]) -> Option<Ratio> {
        let mut sorted = ratios.to_vec();
        sorted.sort_by(|a, b| a.value().total_cmp(&b.value()));
        sorted.get(sorted.len().saturating_sub(1) / 2).copied()
    }

    /// The verdict line; `rounds` > 1 says this is the median round of that many.
    pub(super) fn report(&self, rounds: usize) -> String {
        let v = self.value();
        let of = if rounds > 1 {
            format!(" (median of {rounds} rounds)")
        } else {
            String::new()
        };
        format!(
            "netml vs floor{of}: {:.1} ns/packet vs {:.1} ns/packet = {v:.2}x the floor, {:.1} ns/packet above it; target <= {TARGET_VS_FLOOR}x: {}\n",
            self.netml_ns,
            self.floor_ns,
            self.netml_ns - self.floor_ns,
            if v <= TARGET_VS_FLOOR { "met" } else { "NOT met" }
        )
    }
}

const CSV_HEADER: &str =
    "mode,mpps,ns_per_packet,images_per_s,budget_ns,target_mpps,vs_floor,target_vs_floor";

/// Appends a receiver's row to the CSV file at `path` (header first when the file is new or
/// empty), with its ratio to the floor when it has one; the error names the file.
pub(super) fn write_csv(
    path: &Path,
    mode: &str,
    r: &Headline,
    vs_floor: Option<&Ratio>,
) -> Result<(), String> {
    let ratio = vs_floor.map_or(String::new(), |v| format!("{:.3}", v.value()));
    let row = format!(
        "{mode},{:.3},{:.2},{:.0},{BUDGET_NS},{TARGET_MPPS},{ratio},{TARGET_VS_FLOOR}\n",
        r.mpps, r.ns_per_packet, r.images_per_s
    );
    append_csv(path, CSV_HEADER, &row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_header_and_a_row_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        let r = Headline {
            mpps: 20.5,
            ns_per_packet: 48.78,
            images_per_s: 34_864.0,
            source: String::new(),
        };
        let floor = Headline {
            mpps: 41.0,
            ns_per_packet: 24.39,
            images_per_s: 69_728.0,
            source: String::new(),
        };
        let ratio = Ratio::of(&r, &floor);
        write_csv(&p, "rx-no-huge", &r, Some(&ratio)).unwrap();
        write_csv(&p, "floor-no-huge", &floor, None).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "rx-no-huge,20.500,48.78,34864,88,20,2.000,1.5");
        assert_eq!(lines[2], "floor-no-huge,41.000,24.39,69728,88,20,,1.5");
        assert_eq!(lines.len(), 3);
        assert!(
            ratio
                .report(1)
                .contains("netml vs floor: 48.8 ns/packet vs 24.4 ns/packet = 2.00x the floor"),
            "{}",
            ratio.report(1)
        );
        assert!(ratio.report(1).contains("NOT met"), "{}", ratio.report(1));
    }

    #[test]
    fn a_receiver_that_measured_nothing_does_not_meet_the_target() {
        let idle = Ratio {
            netml_ns: 0.0,
            floor_ns: 9.0,
        };
        assert!(idle.value().is_nan());
        assert!(idle.report(1).ends_with("NOT met\n"), "{}", idle.report(1));
        let no_floor = Ratio {
            netml_ns: 9.0,
            floor_ns: 0.0,
        };
        assert!(no_floor.report(3).ends_with("NOT met\n"));
    }

    #[test]
    fn the_median_round_is_reported_with_its_own_figures() {
        let r = |netml_ns, floor_ns| Ratio { netml_ns, floor_ns };
        let rounds = [r(60.0, 20.0), r(50.0, 40.0), r(45.0, 20.0)];
        let m = Ratio::median(&rounds).unwrap();
        assert_eq!((m.netml_ns, m.floor_ns), (45.0, 20.0));
        assert!(
            m.report(3).contains("(median of 3 rounds)"),
            "{}",
            m.report(3)
        );
        let even = Ratio::median(&rounds[..2]).unwrap();
        assert_eq!((even.netml_ns, even.floor_ns), (50.0, 40.0));
        assert!(Ratio::median(&[]).is_none());
    }
}
