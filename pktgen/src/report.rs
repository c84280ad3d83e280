//! The receiver's report: answers matched to the manifest, losses and latency, as text or
//! JSON.

use crate::manifest::Entry;
use netml_wire::result::Status;
use std::fmt::Write as _;

/// One result matched to a manifest entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Index of the entry in the manifest.
    pub entry: usize,
    /// Status the pipeline reported.
    pub status: Status,
    /// Top-1 class and score, if the result carries any.
    pub top1: Option<(u32, f32)>,
    /// Whether the pipeline's CRC equals the manifest's.
    pub crc_match: bool,
    /// Arrival time minus echoed sender timestamp.
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

    /// Answers whose CRC differs from the manifest.
    pub fn crc_mismatches(&self) -> usize {
        self.answers.iter().filter(|a| !a.crc_match).count()
    }

    /// Answers for images the sender damaged on purpose (they should never complete).
    pub fn answered_damaged(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| !self.manifest[a.entry].intact)
            .count()
    }

    /// Latency over all answers.
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
        let answers: Vec<serde_json::Value> = self
            .answers
            .iter()
            .map(|a| {
                let e = &self.manifest[a.entry];
                serde_json::json!({
                    "model": e.model,
                    "image": e.image,
                    "src": e.src.to_string(),
                    "status": status_name(a.status),
                    "top1_class": a.top1.map(|t| t.0),
                    "top1_score": a.top1.map(|t| t.1),
                    "crc_match": a.crc_match,
                    "latency_ns": a.latency_ns,
                })
            })
            .collect();
        let lost: Vec<serde_json::Value> = self
            .lost()
            .into_iter()
            .map(|i| {
                let e = &self.manifest[i];
                serde_json::json!({"model": e.model, "image": e.image, "src": e.src.to_string()})
            })
            .collect();
        let latency = self.latency().map(|l| {
            serde_json::json!({"count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max})
        });
        serde_json::json!({
            "expected": self.expected(),
            "matched": self.answers.len(),
            "lost": lost.len(),
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "crc_mismatches": self.crc_mismatches(),
            "answered_damaged": self.answered_damaged(),
            "latency_ns": latency,
            "answers": answers,
            "lost_images": lost,
        })
        .to_string()
    }

    /// The report as text: one line per answer, one per lost image, then totals.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for a in &self.answers {
            let e = &self.manifest[a.entry];
            let top1 = match a.top1 {
                Some((c, p)) => format!("{c} ({p:.4})"),
                None => "-".to_string(),
            };
            let _ = writeln!(
                s,
                "image model={} id={} src={} status={} top1={top1} crc={} latency={:.1}us",
                e.model,
                e.image,
                e.src,
                status_name(a.status),
                if a.crc_match { "ok" } else { "MISMATCH" },
                a.latency_ns as f64 / 1e3
            );
        }
        for i in self.lost() {
            let e = &self.manifest[i];
            let _ = writeln!(s, "lost  model={} id={} src={}", e.model, e.image, e.src);
        }
        let _ = writeln!(
            s,
            "results: {} matched of {} expected, {} lost, {} unexpected, {} duplicate, {} malformed, \
             {} crc mismatches, {} for damaged images",
            self.answers.len(),
            self.expected(),
            self.lost().len(),
            self.unexpected,
            self.duplicates,
            self.malformed,
            self.crc_mismatches(),
            self.answered_damaged()
        );
        match self.latency() {
            Some(l) => {
                let ms = |v: i64| v as f64 / 1e6;
                let _ = writeln!(
                    s,
                    "latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  ({} samples)",
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    ms(l.max),
                    l.count
                );
            }
            None => s.push_str("latency: no results\n"),
        }
        s
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
}
