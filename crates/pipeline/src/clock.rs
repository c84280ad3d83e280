//! The pipeline's clock: monotonic nanoseconds since the pipeline started, the time base of
//! the verifier's timeouts and of the stage timestamps in result messages.

use std::time::Instant;

/// Monotonic nanoseconds since a fixed start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the start (never 0, so that 0 can mean "not reached").
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
