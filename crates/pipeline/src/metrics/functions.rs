//! The inference functions' metrics: `netml_function_*`, labelled `function`.

use super::families::{counters, family, gauges, seconds, ConstHistogram};
use crate::stats::FunctionSnapshot;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const LATENCY_BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 5.0,
];
/// Upper bounds of the batch size histogram's buckets (images).
const BATCH_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// An outcome of a function's images: its `status` label and its counter.
type Outcome = (&'static str, fn(&FunctionSnapshot) -> u64);

pub(super) fn functions(
    enc: &mut DescriptorEncoder<'_>,
    fs: &[FunctionSnapshot],
) -> std::fmt::Result {
    if fs.is_empty() {
        return Ok(());
    }
    let label = |f: &FunctionSnapshot| vec![("function", f.name.clone())];
    let mut info = family(
        enc,
        "function",
        "An inference function: its model id and batching policy.",
        MetricType::Info,
    )?;
    for f in fs {
        let labels = vec![("model", f.model.to_string()), ("policy", f.policy.clone())];
        info.info(label(f).into_iter().chain(labels).collect())?;
    }
    let each = |v: fn(&FunctionSnapshot) -> u64| fs.iter().map(move |f| (label(f), v(f)));
    let each_f = |v: fn(&FunctionSnapshot) -> f64| fs.iter().map(move |f| (label(f), v(f)));
    counters(
        enc,
        "function_offered",
        "Images offered to the function (their model id matched).",
        each(|f| f.stats.offered),
    )?;
    counters(
        enc,
        "function_admitted",
        "Images admitted into the function's queue.",
        each(|f| f.stats.admitted),
    )?;
    let outcomes: [Outcome; 5] = [
        ("answered", |f| f.stats.answered),
        ("shed_admission", |f| f.stats.shed_admission),
        ("shed_queue_full", |f| f.stats.shed_queue_full),
        ("shed_expired", |f| f.stats.shed_expired),
        ("failed", |f| f.stats.failed),
    ];
    counters(
        enc,
        "function_requests",
        "Images by outcome: answered after inference, shed (answered overloaded) on admission, on a full queue or expired in it, failed.",
        fs.iter().flat_map(|f| {
            outcomes.iter().map(move |(status, v)| {
                (vec![("function", f.name.clone()), ("status", status.to_string())], v(f))
            })
        }),
    )?;
    counters(
        enc,
        "function_within_slo",
        "Answered images that finished inside the SLO.",
        each(|f| f.stats.within_slo),
    )?;
    counters(
        enc,
        "function_batches",
        "Batches dispatched.",
        each(|f| f.stats.batches),
    )?;
    counters(
        enc,
        "function_completed_batches",
        "Batches completed (their latency measured).",
        each(|f| f.stats.completed_batches),
    )?;
    counters(
        enc,
        "function_batch_duration_seconds",
        "Measured batch latencies (gather + inference), summed.",
        each_f(|f| seconds(f.stats.measured_sum_ns)),
    )?;
    counters(
        enc,
        "function_instances_failed",
        "Instances taken out of rotation.",
        each(|f| f.stats.instances_failed),
    )?;
    let mut latency = family(enc, "function_latency_seconds", "Arrival to answer of answered images (a bucket counts the images known to be within its bound: the recorder resolves 1/32 of a value).", MetricType::Histogram)?;
    for f in fs {
        let h = &f.stats.latency;
        let bounds_ns: Vec<u64> = LATENCY_BOUNDS_S.iter().map(|s| (s * 1e9) as u64).collect();
        let hist = ConstHistogram::from_cumulative(
            &LATENCY_BOUNDS_S,
            |i| h.count_at_most(bounds_ns[i]),
            seconds(h.sum()),
            h.count(),
        );
        latency.histogram(&label(f), &hist)?;
    }
    let mut batch = family(
        enc,
        "function_batch_size",
        "Images per dispatched batch.",
        MetricType::Histogram,
    )?;
    for f in fs {
        let sizes = &f.stats.batch_sizes;
        let at_most = |b: u64| sizes.iter().take(b as usize + 1).sum::<u64>();
        let bounds: Vec<f64> = BATCH_BOUNDS.iter().map(|&b| b as f64).collect();
        let hist = ConstHistogram::from_cumulative(
            &bounds,
            |i| at_most(BATCH_BOUNDS[i]),
            f.stats.batched_images as f64,
            f.stats.batches,
        );
        batch.histogram(&label(f), &hist)?;
    }
    gauges(
        enc,
        "function_slo_attainment_ratio",
        "Share of answered images inside the SLO (1 before any answer).",
        each_f(|f| f.stats.attainment()),
    )?;
    gauges(
        enc,
        "function_slo_seconds",
        "The function's latency objective.",
        each_f(|f| seconds(f.slo_ns)),
    )?;
    gauges(
        enc,
        "function_latency_max_seconds",
        "Largest arrival-to-answer latency so far.",
        each_f(|f| seconds(f.stats.latency.max())),
    )?;
    gauges(
        enc,
        "function_queued_images",
        "Images queued now.",
        fs.iter().map(|f| (label(f), f.queued as u64)),
    )?;
    gauges(
        enc,
        "function_instances",
        "Instances in rotation.",
        fs.iter().map(|f| (label(f), f.instances as u64)),
    )?;
    gauges(
        enc,
        "function_prediction_error_ratio",
        "Mean relative error of the batch latency predictions.",
        each_f(|f| f.stats.mean_prediction_error()),
    )
}
