//! The text form of the report: one line per answer and per lost image, totals, then the
//! figures of every model.

use super::Report;
use netml_wire::result::Status;
use std::fmt::Write as _;

impl Report {
    /// The report as text: one line per answer, one per lost image, then totals and the
    /// per-model figures.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for a in &self.answers {
            let e = &self.manifest[a.entry];
            let top1 = match a.top1 {
                Some((c, p)) => format!("{c} ({p:.4})"),
                None => "-".to_string(),
            };
            let expected = e
                .expected_class
                .map_or(String::new(), |c| format!(" expected={c}"));
            let arrived = if a.status == Status::Incomplete {
                format!(" arrived={}/{}", a.arrived, e.fragments)
            } else {
                String::new()
            };
            let crc = match a.crc_match {
                Some(true) => "ok",
                Some(false) => "MISMATCH",
                None => "-",
            };
            let _ = writeln!(
                s,
                "image model={} id={} src={} status={}{arrived} top1={top1}{expected} crc={crc} latency={:.1}us",
                e.model,
                e.image,
                e.src,
                a.status.name(),
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
        let counts = self.status_counts();
        let statuses: Vec<String> = Status::ALL
            .iter()
            .map(|st| format!("{} {}", st.name(), counts[*st as usize]))
            .collect();
        let _ = writeln!(s, "status: {}", statuses.join(", "));
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
        for m in self.models() {
            m.write_text(self, &mut s);
        }
        s
    }
}
