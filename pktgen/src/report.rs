//! The receiver's report: answers matched to the manifest, losses, statuses, latency, and
//! per model SLO attainment and top-1 checks (`models`), as text (`text`) or JSON.

mod models;
mod text;

pub use models::{Mismatch, ModelStats, Top1, FIRST_MISMATCHES};

use crate::manifest::Entry;
use crate::slo::Slo;
use netml_wire::result::Status;
use serde_json::{json, Value};

/// One result matched to a manifest entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Index of the entry in the manifest.
    pub entry: usize,
    /// Status the pipeline reported.
    pub status: Status,
    /// Fragments the pipeline had of an `incomplete` image (0 for other statuses).
    pub arrived: u16,
    /// Top-1 class and score, if the result carries any.
    pub top1: Option<(u32, f32)>,
    /// Whether the pipeline's CRC equals the manifest's; `None` when the pipeline sent 0,
    /// which means it did not compute one (docs/protocol.md §9).
    pub crc_match: Option<bool>,
    /// Arrival time minus the sender timestamp (the echoed one, or the manifest's when the
    /// result echoes 0, as `incomplete` results do when fragment 0 never arrived).
    pub latency_ns: i64,
}

/// Latency percentiles (nearest rank), in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: i64,
    /// 90th percentile.
    pub p90: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Maximum.
    pub max: i64,
}

impl Latency {
    /// Percentiles of `samples`; `None` when empty.
    pub fn of(samples: &[i64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(Latency {
            count: s.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: s[s.len() - 1],
        })
    }

    /// `{count, p50, p90, p99, max}`, or null without samples.
    pub fn json(l: Option<Latency>) -> Value {
        l.map_or(
            Value::Null,
            |l| json!({"count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max}),
        )
    }
}

/// Answers per status, indexed by status code (the order of [`Status::ALL`]).
pub type StatusCounts = [usize; Status::ALL.len()];

/// `{"ok": n, "overloaded": n, ...}`: every status, zeros included.
pub fn status_json(counts: &StatusCounts) -> Value {
    Value::Object(
        Status::ALL
            .iter()
            .map(|s| (s.name().to_string(), json!(counts[*s as usize])))
            .collect(),
    )
}

/// What the receiver saw, matched against the manifest.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Manifest entries.
    pub manifest: Vec<Entry>,
    /// Matched results, in arrival order.
    pub answers: Vec<Answer>,
    /// Results with no manifest entry.
    pub unexpected: u64,
    /// Second and later results for the same image.
    pub duplicates: u64,
    /// Datagrams that are not valid result messages.
    pub malformed: u64,
    /// Latency objectives for SLO attainment (none: not reported).
    pub slo: Slo,
}

impl Report {
    /// Manifest indices of intact images without a result.
    pub fn lost(&self) -> Vec<usize> {
        let mut answered = vec![false; self.manifest.len()];
        for a in &self.answers {
            answered[a.entry] = true;
        }
        (0..self.manifest.len())
            .filter(|&i| self.manifest[i].intact && !answered[i])
            .collect()
    }

    /// Answers whose CRC differs from the manifest (answers without a CRC are not counted).
    pub fn crc_mismatches(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| a.crc_match == Some(false))
            .count()
    }

    /// Answers other than `incomplete` for images damaged on purpose: such an image never
    /// completes, so the pipeline may only answer it `incomplete`.
    pub fn answered_damaged(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| !self.manifest[a.entry].intact && a.status != Status::Incomplete)
            .count()
    }

    /// Answers per status.
    pub fn status_counts(&self) -> StatusCounts {
        let mut c = StatusCounts::default();
        for a in &self.answers {
            c[a.status as usize] += 1;
        }
        c
    }

    /// Latency over all answers, whatever their status.
    pub fn latency(&self) -> Option<Latency> {
        Latency::of(
            &self
                .answers
                .iter()
                .map(|a| a.latency_ns)
                .collect::<Vec<_>>(),
        )
    }

    /// Intact images in the manifest.
    pub fn expected(&self) -> usize {
        self.manifest.iter().filter(|e| e.intact).count()
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let answers: Vec<Value> = self
            .answers
            .iter()
            .map(|a| {
                let e = &self.manifest[a.entry];
                json!({
                    "model": e.model,
                    "image": e.image,
                    "src": e.src.to_string(),
                    "status": a.status.name(),
                    "arrived": a.arrived,
                    "top1_class": a.top1.map(|t| t.0),
                    "top1_score": a.top1.map(|t| t.1),
                    "expected_class": e.expected_class,
                    "crc_match": a.crc_match,
                    "latency_ns": a.latency_ns,
                })
            })
            .collect();
        let lost: Vec<Value> = self
            .lost()
            .into_iter()
            .map(|i| {
                let e = &self.manifest[i];
                json!({"model": e.model, "image": e.image, "src": e.src.to_string()})
            })
            .collect();
        let models: Vec<Value> = self.models().iter().map(|m| m.to_json(self)).collect();
        json!({
            "expected": self.expected(),
            "matched": self.answers.len(),
            "lost": lost.len(),
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "crc_mismatches": self.crc_mismatches(),
            "answered_damaged": self.answered_damaged(),
            "status": status_json(&self.status_counts()),
            "latency_ns": Latency::json(self.latency()),
            "models": models,
            "answers": answers,
            "lost_images": lost,
        })
        .to_string()
    }
}

/// Lower-case status name (as docs/protocol.md spells it).
pub fn status_name(s: Status) -> &'static str {
    s.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        let l = Latency::of(&v).unwrap();
        assert_eq!(
            (l.p50, l.p90, l.p99, l.max, l.count),
            (50, 90, 99, 100, 100)
        );
        assert_eq!(Latency::of(&[7]).unwrap().p50, 7);
        assert!(Latency::of(&[]).is_none());
    }

    #[test]
    fn every_status_is_named_in_json() {
        let mut c = StatusCounts::default();
        c[Status::Incomplete as usize] = 2;
        let v = status_json(&c);
        assert_eq!(v.as_object().unwrap().len(), 6);
        assert_eq!(
            (v["incomplete"].as_u64(), v["ok"].as_u64()),
            (Some(2), Some(0))
        );
    }
}
