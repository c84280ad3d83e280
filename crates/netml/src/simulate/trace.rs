//! Arrivals: `--trace` parsed, the load levels of a sweep, and a level's arrivals made with
//! `netml_serve::sim::trace` (or read from a capture, [`super::capture`]).

use netml_serve::sim::trace::{self, Arrival, Shape};
use std::path::PathBuf;

/// The shape of the arrivals (`--trace`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TraceSpec {
    /// Poisson at the level's rate.
    Poisson,
    /// `size` images at once every `period_ns`, plus a Poisson background that makes up the
    /// rest of the level's rate.
    Bursts { size: usize, period_ns: u64 },
    /// Poisson whose rate is the level's rate times a factor from each time on:
    /// `(from_ns, factor)`, ascending.
    Steps(Vec<(u64, f64)>),
    /// The fragment-0 arrivals of a capture.
    Pcap(PathBuf),
}

impl std::str::FromStr for TraceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<TraceSpec, String> {
        let bad = |why: &str| format!("--trace {s:?}: {why}");
        let number = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
        };
        match s.split_once(':') {
            None if s == "poisson" => Ok(TraceSpec::Poisson),
            Some(("bursts", rest)) => {
                let (size, period) = rest
                    .split_once(',')
                    .ok_or_else(|| bad("bursts:SIZE,PERIOD_MS"))?;
                let size = size.trim().parse().ok().filter(|&n: &usize| n > 0);
                let period = number(period).filter(|&p| p > 0.0);
                match (size, period) {
                    (Some(size), Some(ms)) => Ok(TraceSpec::Bursts {
                        size,
                        period_ns: (ms * 1e6) as u64,
                    }),
                    _ => Err(bad(
                        "bursts:SIZE,PERIOD_MS with SIZE >= 1 and PERIOD_MS > 0",
                    )),
                }
            }
            Some(("steps", rest)) => {
                let mut steps = Vec::new();
                for step in rest.split(',') {
                    let (t, f) = step
                        .split_once('=')
                        .ok_or_else(|| bad("steps:T0_S=FACTOR,..."))?;
                    let (t, f) = number(t)
                        .zip(number(f))
                        .ok_or_else(|| bad("T_S and FACTOR are numbers >= 0"))?;
                    steps.push(((t * 1e9) as u64, f));
                }
                if !steps.windows(2).all(|w| w[0].0 < w[1].0) {
                    return Err(bad("the step times must ascend"));
                }
                Ok(TraceSpec::Steps(steps))
            }
            Some(("pcap", file)) if !file.is_empty() => Ok(TraceSpec::Pcap(file.into())),
            _ => Err(bad(
                "expected poisson, bursts:SIZE,PERIOD_MS, steps:T0_S=FACTOR,... or pcap:FILE",
            )),
        }
    }
}

impl TraceSpec {
    /// The load shape of one function at `rate` images/s (mean, or base for steps); `None`
    /// for a capture.
    pub fn shape(&self, rate: f64) -> Option<Shape> {
        Some(match self {
            TraceSpec::Poisson => Shape::Poisson { rate },
            TraceSpec::Bursts { size, period_ns } => {
                let in_bursts = *size as f64 * 1e9 / *period_ns as f64;
                Shape::Bursts {
                    size: *size,
                    period_ns: *period_ns,
                    rate: (rate - in_bursts).max(0.0),
                }
            }
            TraceSpec::Steps(s) => Shape::Steps(s.iter().map(|&(t, f)| (t, f * rate)).collect()),
            TraceSpec::Pcap(_) => return None,
        })
    }
}

/// One point of the sweep: a fraction of each function's capacity (`--load`), an absolute
/// rate per function (`--rate`), or a capture as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Level {
    /// Fraction of capacity.
    Load(f64),
    /// Images/s per function.
    Rate(f64),
    /// The capture's own arrivals.
    Capture,
}

impl Level {
    /// Rate of a function of `capacity` at this level (`None` for a capture).
    pub fn rate(self, capacity: f64) -> Option<f64> {
        match self {
            Level::Load(f) => Some(f * capacity),
            Level::Rate(r) => Some(r),
            Level::Capture => None,
        }
    }

    /// The x value of plots (the load, or the rate).
    pub fn x(self) -> f64 {
        match self {
            Level::Load(v) | Level::Rate(v) => v,
            Level::Capture => 1.0,
        }
    }

    /// The label of the summary and the progress lines.
    pub fn label(self) -> String {
        match self {
            Level::Load(f) => format!("load {f}"),
            Level::Rate(r) => format!("rate {r}/s"),
            Level::Capture => "capture".into(),
        }
    }
}

/// The arrivals of every function `(model, rate)` at one level, in `[0, duration_ns)`;
/// `seed` makes them (the same for every policy, so that the policies see the same images).
pub(super) fn arrivals(
    spec: &TraceSpec,
    functions: &[(u8, f64)],
    duration_ns: u64,
    seed: u64,
) -> Vec<Arrival> {
    trace::merge(functions.iter().enumerate().map(|(i, &(model, rate))| {
        let shape = spec.shape(rate).expect("not a capture");
        (model, shape.times(duration_ns, seed.wrapping_add(i as u64)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_trace_and_keeps_the_mean_rate() {
        assert_eq!("poisson".parse(), Ok(TraceSpec::Poisson));
        let b: TraceSpec = "bursts:50,10".parse().unwrap();
        assert_eq!(
            b,
            TraceSpec::Bursts {
                size: 50,
                period_ns: 10_000_000
            }
        );
        // 5000/s come in bursts: the background makes up the other 1000/s.
        assert_eq!(
            b.shape(6000.0),
            Some(Shape::Bursts {
                size: 50,
                period_ns: 10_000_000,
                rate: 1000.0
            })
        );
        let s: TraceSpec = "steps:0=0.5,2.5=1.5".parse().unwrap();
        assert_eq!(
            s.shape(100.0),
            Some(Shape::Steps(vec![(0, 50.0), (2_500_000_000, 150.0)]))
        );
        assert_eq!("pcap:x.pcap".parse(), Ok(TraceSpec::Pcap("x.pcap".into())));
        for bad in [
            "",
            "lognormal",
            "bursts:0,1",
            "bursts:5",
            "steps:1=2,0=1",
            "steps:a=1",
            "pcap:",
        ] {
            assert!(bad.parse::<TraceSpec>().is_err(), "{bad}");
        }
        let a = arrivals(
            &TraceSpec::Poisson,
            &[(1, 1000.0), (3, 2000.0)],
            1_000_000_000,
            9,
        );
        let n = |m| a.iter().filter(|x| x.model == m).count();
        assert!(
            (900..1100).contains(&n(1)) && (1850..2150).contains(&n(3)),
            "{} {}",
            n(1),
            n(3)
        );
        assert_eq!(
            a,
            arrivals(
                &TraceSpec::Poisson,
                &[(1, 1000.0), (3, 2000.0)],
                1_000_000_000,
                9
            )
        );
    }
}
