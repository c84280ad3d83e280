//! The CSV rows and the SVG plot of `bench serve`.

use super::super::output::csv_field;
use super::report::{total_goodput, Report, SERVE_LIMIT_US};
use std::fmt::Write as _;

impl Report {
    pub(super) fn csv_rows(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            for (f, n) in r.functions.iter().zip(&self.functions) {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.4},{:.2},{:.3},{:.3},{},{:.3},{:.2},{:.3},{:.0},{:.2},{},{:.2},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{},{},{},{},{},{},{:.3}",
                    csv_field(&r.policy),
                    n.name,
                    n.model,
                    if self.by_load { format!("{}", self.steps[r.step]) } else { String::new() },
                    f.offered,
                    f.sent,
                    f.ok,
                    f.goodput,
                    f.shed,
                    f.failed,
                    f.attainment,
                    f.mean_batch,
                    f.p50_ms,
                    f.p99_ms,
                    self.slo_ms,
                    f.engine_ms,
                    f.engine_batch,
                    f.alone_ms,
                    n.capacity,
                    r.serve_us,
                    SERVE_LIMIT_US,
                    r.crc_us,
                    r.sink_share,
                    r.rx_share,
                    r.engine_share,
                    r.sender_share,
                    r.sink_wait_share,
                    f.total_sent,
                    f.total_ok,
                    f.total_overloaded,
                    f.total_failed,
                    f.total_other,
                    f.total_sent
                        .saturating_sub(f.total_ok + f.total_overloaded + f.total_failed + f.total_other),
                    r.results_dropped,
                    r.leaked,
                    r.wall_s
                );
            }
        }
        out
    }

    /// Goodput vs offered (both summed over the functions), one line per policy, and the
    /// line y = x (everything offered answered in time).
    pub(super) fn svg(&self) -> String {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        let mut xmax: f64 = 0.0;
        for r in &self.rows {
            let x: f64 = self.rates[r.step].iter().sum();
            xmax = xmax.max(x);
            let point = (x, total_goodput(r));
            match series.iter_mut().find(|(n, _)| *n == r.policy) {
                Some((_, v)) => v.push(point),
                None => series.push((r.policy.clone(), vec![point])),
            }
        }
        for (_, v) in series.iter_mut() {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        series.push(("offered".into(), vec![(0.0, 0.0), (xmax, xmax)]));
        let names: Vec<&str> = self.functions.iter().map(|f| f.name.as_str()).collect();
        crate::plot::line_chart(
            &format!(
                "Goodput, live {}: {} (SLO {} ms)",
                self.place,
                names.join(" + "),
                self.slo_ms
            ),
            "offered images/s (all functions)",
            "goodput: images/s answered inside the SLO",
            false,
            &series,
        )
    }
}
