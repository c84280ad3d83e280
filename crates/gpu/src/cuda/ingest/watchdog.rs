//! Stall detection: a gather that stops completing work must surface as an error in `poll`,
//! not as a pipeline that silently stops (a resident kernel that hangs never returns an error
//! code of its own).

use std::time::{Duration, Instant};

use crate::IngestError;

/// How often a mode may ask the driver whether its stream died (a driver call per poll would
/// cost more than the poll itself).
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// Watches the oldest outstanding job: its clock starts when it becomes the oldest (submitted
/// into an idle ingest, or its predecessor completed) and [`check`](Self::check) fails once it
/// ran longer than the limit.
#[derive(Debug)]
pub(crate) struct Watchdog {
    limit: Duration,
    /// When the current oldest outstanding job became the oldest; None when nothing is pending.
    head_since: Option<Instant>,
    last_probe: Instant,
}

impl Watchdog {
    /// A watchdog that declares a stall after `limit` without progress.
    pub(crate) fn new(limit: Duration, now: Instant) -> Self {
        Self {
            limit,
            head_since: None,
            last_probe: now,
        }
    }

    /// Records the state after a poll or a submission: `progressed` when jobs completed since
    /// the last call, `outstanding` when jobs are still pending.
    pub(crate) fn observe(&mut self, now: Instant, progressed: bool, outstanding: bool) {
        if !outstanding {
            self.head_since = None;
        } else if progressed || self.head_since.is_none() {
            self.head_since = Some(now);
        }
    }

    /// Fails with [`IngestError::Stalled`] when the oldest outstanding job has waited too long.
    pub(crate) fn check(&self, now: Instant) -> Result<(), IngestError> {
        match self.head_since {
            Some(t) if now.saturating_duration_since(t) > self.limit => Err(IngestError::Stalled {
                waited_ms: now.saturating_duration_since(t).as_millis() as u64,
            }),
            _ => Ok(()),
        }
    }

    /// True at most every 10 ms while work is pending: time to ask the driver whether the
    /// stream that should be doing it is still alive.
    pub(crate) fn probe_due(&mut self, now: Instant) -> bool {
        if self.head_since.is_some()
            && now.saturating_duration_since(self.last_probe) >= PROBE_EVERY
        {
            self.last_probe = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn idle_never_stalls() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(100 * MS, t0);
        w.observe(t0, false, false);
        assert_eq!(w.check(t0 + 10_000 * MS), Ok(()));
        assert!(!w.probe_due(t0 + 10_000 * MS));
    }

    #[test]
    fn pending_without_progress_stalls_after_the_limit() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(100 * MS, t0);
        w.observe(t0, false, true);
        w.observe(t0 + 60 * MS, false, true);
        assert_eq!(w.check(t0 + 100 * MS), Ok(()));
        assert_eq!(
            w.check(t0 + 250 * MS),
            Err(IngestError::Stalled { waited_ms: 250 })
        );
    }

    #[test]
    fn progress_restarts_the_clock_and_idle_clears_it() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(100 * MS, t0);
        w.observe(t0, false, true);
        w.observe(t0 + 90 * MS, true, true);
        assert_eq!(w.check(t0 + 180 * MS), Ok(()));
        assert!(w.check(t0 + 191 * MS).is_err());
        w.observe(t0 + 200 * MS, true, false);
        assert_eq!(w.check(t0 + 1000 * MS), Ok(()));
        // A job submitted into the idle ingest starts a fresh clock.
        w.observe(t0 + 1000 * MS, false, true);
        assert_eq!(w.check(t0 + 1050 * MS), Ok(()));
    }

    #[test]
    fn probes_are_rate_limited() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(100 * MS, t0);
        w.observe(t0, false, true);
        assert!(w.probe_due(t0 + 10 * MS));
        assert!(!w.probe_due(t0 + 15 * MS));
        assert!(w.probe_due(t0 + 20 * MS));
    }
}
