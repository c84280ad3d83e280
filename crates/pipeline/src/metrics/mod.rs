//! The Prometheus endpoint of `netml run` (`--metrics ADDR:PORT`, `[metrics]`).
//!
//! ```text
//! run loop --publish (1/s, and the final report)--> latest sample <--read-- HTTP thread
//! ```
//! The data-plane threads never see the exporter: they publish their counters into
//! [`crate::stats::Shared`] as they always do, and the run loop copies a [`Report`] out of
//! it once a second, exactly as the live statistics line does. The HTTP thread only clones
//! the latest sample's `Arc` under a lock that is held for that clone and for the swap, and
//! renders it; a slow or hostile client delays nothing but other scrapes. After the run the
//! final report stays published (`netml_run_finished` 1) until the process exits, so that
//! a scrape during `linger_s` reads exactly what the JSON report says.

mod encode;
mod families;
mod functions;
mod http;
mod process;
#[cfg(test)]
mod tests;

use crate::report::Report;
use crate::Pipeline;
use serde::Deserialize;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds between the samples the run loop publishes: one per Prometheus scrape at the
/// usual 1 s..15 s intervals.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// `[metrics]`: where the Prometheus endpoint listens.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `ADDR:PORT` to serve `/metrics` on (e.g. `127.0.0.1:9464`, `0.0.0.0:9464`); none:
    /// no endpoint.
    pub listen: Option<String>,
    /// Seconds to keep serving the final report after the run has ended, before the
    /// process exits (a signal ends the wait early).
    pub linger_s: f64,
}

impl MetricsConfig {
    /// Checks the address and the linger time.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(a) = &self.listen {
            a.parse::<SocketAddr>()
                .map_err(|e| format!("metrics.listen {a:?}: {e} (expected ADDR:PORT)"))?;
        }
        if !(self.linger_s.is_finite() && self.linger_s >= 0.0) {
            return Err(format!(
                "metrics.linger_s must be >= 0, not {}",
                self.linger_s
            ));
        }
        Ok(())
    }
}

/// What one scrape reads: a report, and whether it is the final one.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The counters (live: `mempool_in_use_at_end` is the mbufs in use now).
    pub report: Report,
    /// The run has ended and this is its final report.
    pub finished: bool,
    /// Samples published so far, this one included.
    pub publishes: u64,
    /// Nanoseconds the run loop spent collecting and publishing them.
    pub publish_ns: u64,
}

type Latest = Arc<Mutex<Option<Arc<Sample>>>>;

/// The endpoint: the latest sample and the thread serving it.
pub struct Exporter {
    latest: Latest,
    addr: SocketAddr,
    linger: Duration,
    last_publish: Option<Instant>,
    publishes: u64,
    publish_ns: u64,
}

impl Exporter {
    /// Binds `cfg.listen` and starts the HTTP thread; `None` when no address is set.
    pub fn start(cfg: &MetricsConfig) -> Result<Option<Exporter>, String> {
        let Some(listen) = &cfg.listen else {
            return Ok(None);
        };
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("metrics endpoint {listen}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("metrics endpoint {listen}: {e}"))?;
        let latest: Latest = Arc::default();
        http::spawn(listener, latest.clone())
            .map_err(|e| format!("spawning the metrics endpoint: {e}"))?;
        tracing::info!("metrics: serving http://{addr}/metrics");
        Ok(Some(Exporter {
            latest,
            addr,
            linger: Duration::from_secs_f64(cfg.linger_s),
            last_publish: None,
            publishes: 0,
            publish_ns: 0,
        }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes the pipeline's counters when [`PUBLISH_INTERVAL`] has passed since the
    /// last time (call it from the run loop's every turn).
    pub fn tick(&mut self, pipeline: &Pipeline) {
        if self
            .last_publish
            .is_some_and(|t| t.elapsed() < PUBLISH_INTERVAL)
        {
            return;
        }
        let t0 = Instant::now();
        self.last_publish = Some(t0);
        let report = Report::collect(pipeline);
        self.publish(report, false, t0);
    }

    /// Publishes the final report; it is served from now on until the process exits.
    pub fn finish(&mut self, report: &Report) {
        self.publish(report.clone(), true, Instant::now());
    }

    fn publish(&mut self, report: Report, finished: bool, t0: Instant) {
        self.publishes += 1;
        // The cost of this publish is counted from the next one on (it is not known yet).
        let sample = Arc::new(Sample {
            report,
            finished,
            publishes: self.publishes,
            publish_ns: self.publish_ns,
        });
        // The old sample is dropped after the lock is released.
        let _old = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(sample);
        self.publish_ns += t0.elapsed().as_nanos() as u64;
    }

    /// Waits `linger_s` (or until `stop` is set) with the final report served.
    pub fn linger(&self, stop: &AtomicBool) {
        if self.linger.is_zero() {
            return;
        }
        tracing::info!(
            "metrics: serving the final report for {:.1} s",
            self.linger.as_secs_f64()
        );
        let t0 = Instant::now();
        while t0.elapsed() < self.linger && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
