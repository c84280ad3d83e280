//! Metric families from values already counted, on top of `prometheus-client`'s encoder:
//! the report is a snapshot, so every value is a constant of this scrape.

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

pub(super) type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor, then a value per label set.
pub(super) struct Family<'e> {
    out: MetricEncoder<'e>,
}

pub(super) fn family<'e>(
    enc: &'e mut DescriptorEncoder<'_>,
    name: &'e str,
    help: &str,
    kind: MetricType,
) -> Result<Family<'e>, std::fmt::Error> {
    Ok(Family {
        out: enc.encode_descriptor(name, help, None, kind)?,
    })
}

impl Family<'_> {
    pub(super) fn counter(
        &mut self,
        labels: &Labels,
        v: impl EncodeCounterValue,
    ) -> std::fmt::Result {
        ConstCounter::new(v).encode(self.out.encode_family(labels)?)
    }

    pub(super) fn gauge(&mut self, labels: &Labels, v: impl EncodeGaugeValue) -> std::fmt::Result {
        ConstGauge::new(v).encode(self.out.encode_family(labels)?)
    }

    pub(super) fn histogram(&mut self, labels: &Labels, h: &ConstHistogram) -> std::fmt::Result {
        h.encode(self.out.encode_family(labels)?)
    }

    /// An info metric: `labels`, value 1.
    pub(super) fn info(&mut self, labels: Labels) -> std::fmt::Result {
        ConstInfo(labels).encode(self.out.encode_family(&none())?)
    }
}

/// A counter family with one value per label set.
pub(super) fn counters<V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Counter)?;
    for (labels, v) in rows {
        f.counter(&labels, v)?;
    }
    Ok(())
}

/// A gauge family with one value per label set.
pub(super) fn gauges<V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    let mut f = family(enc, name, help, MetricType::Gauge)?;
    for (labels, v) in rows {
        f.gauge(&labels, v)?;
    }
    Ok(())
}

pub(super) fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub(super) fn none() -> Labels {
    Vec::new()
}

/// A single unlabelled value.
pub(super) fn one<V>(v: V) -> [(Labels, V); 1] {
    [(none(), v)]
}

/// A histogram from counts already made: per-bucket counts (not cumulative), sum, count.
#[derive(Debug)]
pub(super) struct ConstHistogram {
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl ConstHistogram {
    /// From cumulative counts at each bound.
    pub(super) fn from_cumulative(
        bounds: &[f64],
        at_most: impl Fn(usize) -> u64,
        sum: f64,
        count: u64,
    ) -> Self {
        let mut prev = 0;
        let buckets = bounds
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let c = at_most(i);
                let n = c - prev;
                prev = c;
                (b, n)
            })
            .collect();
        ConstHistogram {
            buckets,
            sum,
            count,
        }
    }
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// An info metric's labels (value 1).
#[derive(Debug)]
struct ConstInfo(Labels);

impl EncodeMetric for ConstInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_info(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
}
