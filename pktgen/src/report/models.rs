//! Per-model figures: answers per status, latency of `ok` answers, SLO attainment and top-1
//! checks against the manifest's expected classes.

use super::{status_json, Latency, Report, StatusCounts};
use netml_wire::result::Status;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Top-1 mismatches listed per model.
pub const FIRST_MISMATCHES: usize = 5;

/// An `ok` answer whose top-1 class is not the expected one.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Index of the entry in the manifest.
    pub entry: usize,
    /// The manifest's expected class.
    pub expected: u32,
    /// The answer's top-1 class and score.
    pub got: (u32, f32),
}

/// Top-1 classes of `ok` answers checked against expected classes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Top1 {
    /// Top-1 class equal to the expected one.
    pub matches: usize,
    /// Top-1 class different from the expected one.
    pub mismatches: usize,
    /// `ok` answers that cannot be checked: no expected class, or no top-k entries.
    pub unchecked: usize,
    /// The first [`FIRST_MISMATCHES`] mismatches, in arrival order.
    pub first_mismatches: Vec<Mismatch>,
}

impl Top1 {
    /// Matches among checked answers; `None` when none was checked.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.matches, self.matches + self.mismatches)
    }
}

/// What the images of one model got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelStats {
    /// Model id.
    pub model: u8,
    /// Images sent (manifest entries, damaged ones included).
    pub sent: usize,
    /// Images sent intact.
    pub intact: usize,
    /// Images with a result.
    pub answered: usize,
    /// Intact images without a result.
    pub lost: usize,
    /// Answers per status.
    pub status: StatusCounts,
    /// Latency of `ok` answers.
    pub latency_ok: Option<Latency>,
    /// The model's SLO, if one was given.
    pub slo_ms: Option<f64>,
    /// `ok` answers with a latency within the SLO (0 without an SLO).
    pub within_slo: usize,
    /// Top-1 checks.
    pub top1: Top1,
}

fn ratio(n: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| n as f64 / of as f64)
}

impl ModelStats {
    /// Answers with status `s`.
    pub fn count(&self, s: Status) -> usize {
        self.status[s as usize]
    }

    /// SLO attainment: images answered `ok` within the SLO, as a share of the images sent;
    /// `None` without an SLO.
    pub fn attainment(&self) -> Option<f64> {
        self.slo_ms.and(ratio(self.within_slo, self.sent))
    }

    /// Images answered `ok` within the SLO, as a share of the `ok` answers; `None` without
    /// an SLO or without `ok` answers.
    pub fn attainment_ok(&self) -> Option<f64> {
        self.slo_ms
            .and(ratio(self.within_slo, self.count(Status::Ok)))
    }

    /// The model's JSON object (`report` resolves manifest indices).
    pub fn to_json(&self, report: &Report) -> Value {
        let mismatches: Vec<Value> = self
            .top1
            .first_mismatches
            .iter()
            .map(|m| {
                let e = &report.manifest[m.entry];
                json!({
                    "image": e.image,
                    "src": e.src.to_string(),
                    "expected": m.expected,
                    "class": m.got.0,
                    "score": m.got.1,
                })
            })
            .collect();
        json!({
            "model": self.model,
            "sent": self.sent,
            "intact": self.intact,
            "answered": self.answered,
            "lost": self.lost,
            "status": status_json(&self.status),
            "latency_ok_ns": Latency::json(self.latency_ok),
            "slo_ms": self.slo_ms,
            "within_slo": self.slo_ms.map(|_| self.within_slo),
            "slo_attainment": self.attainment(),
            "slo_attainment_ok": self.attainment_ok(),
            "top1": {
                "matches": self.top1.matches,
                "mismatches": self.top1.mismatches,
                "unchecked": self.top1.unchecked,
                "accuracy": self.top1.accuracy(),
                "first_mismatches": mismatches,
            },
        })
    }

    /// The model's lines of the text report.
    pub fn write_text(&self, report: &Report, s: &mut String) {
        let statuses: Vec<String> = Status::ALL
            .iter()
            .map(|st| format!("{} {}", st.name(), self.count(*st)))
            .collect();
        let _ = writeln!(
            s,
            "model {}: {} sent ({} intact), {} answered, {} lost; {}",
            self.model,
            self.sent,
            self.intact,
            self.answered,
            self.lost,
            statuses.join(", ")
        );
        let ms = |v: i64| v as f64 / 1e6;
        match self.latency_ok {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "  latency of ok answers (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  ({} samples)",
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    ms(l.max),
                    l.count
                );
            }
            None => s.push_str("  latency of ok answers: no ok answers\n"),
        }
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
        match self.slo_ms {
            Some(slo) => {
                let _ = writeln!(
                    s,
                    "  slo {slo} ms: {} ok within it = {} of {} sent, {} of {} ok",
                    self.within_slo,
                    pct(self.attainment()),
                    self.sent,
                    pct(self.attainment_ok()),
                    self.count(Status::Ok)
                );
            }
            None => s.push_str("  slo: none given (--slo-ms)\n"),
        }
        let t = &self.top1;
        let _ = writeln!(
            s,
            "  top-1: {} match, {} mismatch, {} unchecked (accuracy {} of {} checked)",
            t.matches,
            t.mismatches,
            t.unchecked,
            pct(t.accuracy()),
            t.matches + t.mismatches
        );
        for m in &t.first_mismatches {
            let e = &report.manifest[m.entry];
            let _ = writeln!(
                s,
                "    mismatch: id={} src={} expected {}, got {} ({:.4})",
                e.image, e.src, m.expected, m.got.0, m.got.1
            );
        }
    }
}

impl Report {
    /// Figures per model, by model id (every model of the manifest).
    pub fn models(&self) -> Vec<ModelStats> {
        let mut by: BTreeMap<u8, ModelStats> = BTreeMap::new();
        for e in &self.manifest {
            let m = by.entry(e.model).or_insert_with(|| ModelStats {
                model: e.model,
                slo_ms: self.slo.for_model(e.model),
                ..ModelStats::default()
            });
            m.sent += 1;
            m.intact += e.intact as usize;
        }
        for i in self.lost() {
            if let Some(m) = by.get_mut(&self.manifest[i].model) {
                m.lost += 1;
            }
        }
        let mut ok_latencies: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for a in &self.answers {
            let e = &self.manifest[a.entry];
            let Some(m) = by.get_mut(&e.model) else {
                continue;
            };
            m.answered += 1;
            m.status[a.status as usize] += 1;
            if a.status != Status::Ok {
                continue;
            }
            ok_latencies.entry(e.model).or_default().push(a.latency_ns);
            // Latency at most the SLO counts as within it.
            if m.slo_ms.is_some_and(|slo| a.latency_ns as f64 <= slo * 1e6) {
                m.within_slo += 1;
            }
            let t = &mut m.top1;
            match (e.expected_class, a.top1) {
                (Some(want), Some(got)) if got.0 == want => t.matches += 1,
                (Some(want), Some(got)) => {
                    t.mismatches += 1;
                    if t.first_mismatches.len() < FIRST_MISMATCHES {
                        t.first_mismatches.push(Mismatch {
                            entry: a.entry,
                            expected: want,
                            got,
                        });
                    }
                }
                _ => t.unchecked += 1,
            }
        }
        for (model, l) in ok_latencies {
            if let Some(m) = by.get_mut(&model) {
                m.latency_ok = Latency::of(&l);
            }
        }
        by.into_values().collect()
    }
}
