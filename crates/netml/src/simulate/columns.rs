//! The columns of a row (one function in one run), shared by the table, the CSV and the
//! JSON so that the three cannot drift apart.

use super::{FnResult, Run};
use netml_bench::output::csv_field;
use netml_serve::FunctionStats;
use serde_json::{json, Value};

/// One value of a row.
pub(super) enum Cell {
    Text(String),
    Count(u64),
    /// A number and its decimals.
    Num(f64, usize),
    /// A share, 0..=1 (a percentage in the table).
    Share(f64),
    /// A latency in ms that an empty histogram lacks.
    Ms(Option<f64>),
}

impl Cell {
    pub(super) fn table(&self, width: usize) -> String {
        match self {
            Cell::Text(s) => format!("{s:<width$}"),
            Cell::Count(n) => format!("{n:>width$}"),
            Cell::Num(v, d) => format!("{v:>width$.d$}"),
            Cell::Share(v) => format!("{:>width$}", format!("{:.2}%", v * 100.0)),
            Cell::Ms(v) => match v {
                Some(v) => format!("{v:>width$.2}"),
                None => format!("{:>width$}", "-"),
            },
        }
    }

    pub(super) fn csv(&self) -> String {
        match self {
            Cell::Text(s) => csv_field(s),
            Cell::Count(n) => n.to_string(),
            Cell::Num(v, d) => format!("{v:.d$}"),
            Cell::Share(v) => format!("{v:.6}"),
            Cell::Ms(v) => v.map_or(String::new(), |v| format!("{v:.4}")),
        }
    }

    pub(super) fn json(&self) -> Value {
        match self {
            Cell::Text(s) => json!(s),
            Cell::Count(n) => json!(n),
            Cell::Num(v, _) | Cell::Share(v) => json!(v),
            Cell::Ms(v) => json!(v),
        }
    }
}

/// A column: its CSV and JSON name, its table header and width (0: not in the table).
pub(super) type Column = (&'static str, &'static str, usize);

pub(super) const COLUMNS: [Column; 23] = [
    ("load", "load", 5),
    ("policy", "policy", 17),
    ("function", "function", 13),
    ("offered_per_s", "offered/s", 10),
    ("admitted", "admitted", 9),
    ("answered", "answered", 9),
    ("shed", "shed", 8),
    ("throughput_per_s", "throughput/s", 12),
    ("goodput_per_s", "goodput/s", 10),
    ("p50_ms", "p50 ms", 8),
    ("p99_ms", "p99 ms", 9),
    ("attainment", "attainment", 10),
    ("violations", "violations", 10),
    ("model", "", 0),
    ("slo_ms", "", 0),
    ("rate_per_s", "", 0),
    ("capacity_per_s", "", 0),
    ("offered", "", 0),
    ("within_slo", "", 0),
    ("shed_admission", "", 0),
    ("shed_queue_full", "", 0),
    ("shed_expired", "", 0),
    ("mean_batch", "", 0),
];

/// Latency quantile `q` of `s` in ms.
pub(super) fn ms(s: &FunctionStats, q: f64) -> Option<f64> {
    s.latency.quantile(q).map(|ns| ns as f64 / 1e6)
}

/// Answered images that missed their SLO: late answers among the admitted.
pub(super) fn violations(s: &FunctionStats) -> u64 {
    s.answered - s.within_slo
}

/// The cells of one function's row, in [`COLUMNS`] order.
pub(super) fn cells(run: &Run, f: &FnResult) -> [Cell; 23] {
    let s = &f.stats;
    let per_s = |n: u64, seconds: f64| Cell::Num(n as f64 / seconds, 1);
    [
        Cell::Num(f.rate / f.capacity, 3),
        Cell::Text(run.policy.clone()),
        Cell::Text(f.spec.name.clone()),
        per_s(s.offered, run.duration_s),
        Cell::Count(s.admitted),
        Cell::Count(s.answered),
        Cell::Count(s.shed()),
        per_s(s.answered, run.span_s),
        per_s(s.within_slo, run.duration_s),
        Cell::Ms(ms(s, 0.5)),
        Cell::Ms(ms(s, 0.99)),
        Cell::Share(s.attainment()),
        Cell::Count(violations(s)),
        Cell::Count(f.spec.model as u64),
        Cell::Num(f.spec.slo_ns as f64 / 1e6, 3),
        Cell::Num(f.rate, 1),
        Cell::Num(f.capacity, 1),
        Cell::Count(s.offered),
        Cell::Count(s.within_slo),
        Cell::Count(s.shed_admission),
        Cell::Count(s.shed_queue_full),
        Cell::Count(s.shed_expired),
        Cell::Num(s.mean_batch(), 2),
    ]
}
