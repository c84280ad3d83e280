//! Batching policies an inference function can be configured with.

use std::fmt;
use std::str::FromStr;

/// How a function forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Self-learning adaptive batching (GSLICE's SLAB, extended): the largest batch whose
    /// predicted completion keeps the oldest queued image inside its SLO, waiting for more
    /// images only when the arrival rate needs a larger batch to keep up, and never past the
    /// oldest image's slack.
    Slab,
    /// Batches of exactly `N` images; a partial batch leaves when its oldest image has waited
    /// a whole SLO (so nothing waits forever).
    Fixed(usize),
    /// Triton's dynamic batcher: up to `max` images, leaving when `max` are queued or the
    /// oldest has waited `delay_ns`.
    MaxDelay {
        /// Largest batch.
        max: usize,
        /// Longest queueing delay of the oldest image, ns.
        delay_ns: u64,
    },
}

impl Policy {
    /// Whether admission control and the shedding of expired images are on by default: for
    /// SLAB yes; the two baselines run as the systems they stand for do (no admission).
    pub fn admission_by_default(self) -> bool {
        matches!(self, Policy::Slab)
    }

    /// The batch size the policy needs an engine plan for, beyond the function's list.
    pub fn required_batch(self) -> Option<usize> {
        match self {
            Policy::Slab => None,
            Policy::Fixed(n) => Some(n),
            Policy::MaxDelay { max, .. } => Some(max),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Slab => f.write_str("slab"),
            Policy::Fixed(n) => write!(f, "fixed:{n}"),
            Policy::MaxDelay { max, delay_ns } => write!(f, "max_delay:{max},{}", delay_ns / 1000),
        }
    }
}

impl FromStr for Policy {
    type Err = String;
    /// `slab`, `fixed:N` or `max_delay:N,D_us`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("unknown batching policy {s:?} (expected slab, fixed:N or max_delay:N,D_us)")
        };
        let positive = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
        match s.trim().split_once(':') {
            None if s.trim() == "slab" => Ok(Policy::Slab),
            Some(("fixed", n)) => positive(n).map(Policy::Fixed).ok_or_else(bad),
            Some(("max_delay", rest)) => {
                let (n, d) = rest.split_once(',').ok_or_else(bad)?;
                let max = positive(n).ok_or_else(bad)?;
                let us: u64 = d.trim().parse().map_err(|_| bad())?;
                Ok(Policy::MaxDelay {
                    max,
                    delay_ns: us * 1000,
                })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_policy() {
        for s in ["slab", "fixed:32", "max_delay:32,5000"] {
            assert_eq!(s.parse::<Policy>().unwrap().to_string(), s);
        }
        assert_eq!(
            "max_delay:8,250".parse::<Policy>().unwrap(),
            Policy::MaxDelay {
                max: 8,
                delay_ns: 250_000
            }
        );
        for bad in [
            "",
            "fixed",
            "fixed:0",
            "fixed:x",
            "max_delay:8",
            "max_delay:0,5",
            "lifo",
        ] {
            assert!(bad.parse::<Policy>().is_err(), "{bad}");
        }
    }
}
