//! The simulated functions: `--function` and `--policies` parsed, each function's profile
//! points and capacity, and the [`SimFunction`]s of one run.

use netml_serve::sim::{Service, SimFunction};
use netml_serve::{FunctionSpec, LatencyModel, Policy, Profile};

/// Default engine batch sizes of a simulated function.
const BATCH_SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Default latency objective, ms.
const SLO_MS: f64 = 50.0;
/// The policies compared when neither `--policies` nor a function's `policy=` says otherwise.
pub(super) const DEFAULT_POLICIES: &str = "slab,fixed:1,fixed:32,max_delay:32,5000";

/// One `--function` as given.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FunctionArg {
    /// The profile's model name.
    pub name: String,
    /// Model id in the fragment header (default: its place in the list, from 1).
    pub model: Option<u8>,
    pub slo_ms: f64,
    /// Its own policy (`None`: the run's).
    pub policy: Option<Policy>,
    pub precision: String,
    pub instances: usize,
    pub batch_sizes: Vec<usize>,
    /// Admission control (`None`: the policy's default).
    pub admission: Option<bool>,
    pub queue_limit: usize,
}

impl FunctionArg {
    /// A function with every default.
    pub fn named(name: &str) -> FunctionArg {
        FunctionArg {
            name: name.to_string(),
            model: None,
            slo_ms: SLO_MS,
            policy: None,
            precision: "fp32".into(),
            instances: 1,
            batch_sizes: BATCH_SIZES.to_vec(),
            admission: None,
            // What `netml run` queues per function, so that a baseline without admission
            // sheds where the live pipeline would.
            queue_limit: netml_pipeline::config::FunctionConfig::default().queue_limit,
        }
    }

    /// Parses `NAME[,key=value...]`; keys `model`, `slo_ms`, `policy`, `precision`,
    /// `instances`, `batch_sizes`, `admission` (`on`/`off`), `queue_limit`.
    pub fn parse(arg: &str) -> Result<FunctionArg, String> {
        let bad = |why: String| format!("--function {arg:?}: {why}");
        let mut parts = split_list(arg).into_iter();
        let name = parts.next().filter(|n| !n.is_empty() && !n.contains('='));
        let mut f =
            FunctionArg::named(&name.ok_or_else(|| bad("starts with the model name".into()))?);
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
            let count = |v: &str| v.parse::<usize>().ok().filter(|&n| n > 0);
            let not = |what: &str| bad(format!("{k}={v}: {what}"));
            match k {
                "model" => f.model = Some(v.parse().map_err(|_| not("not 0..=255"))?),
                "slo_ms" => {
                    f.slo_ms = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| not("not a positive number"))?
                }
                "policy" => f.policy = Some(v.parse().map_err(|e: String| bad(e))?),
                "precision" => f.precision = v.to_string(),
                "instances" => f.instances = count(v).ok_or_else(|| not("not a count"))?,
                "queue_limit" => f.queue_limit = count(v).ok_or_else(|| not("not a count"))?,
                "batch_sizes" => {
                    let sizes: Option<Vec<usize>> = v.split(',').map(count).collect();
                    f.batch_sizes = sizes.ok_or_else(|| not("not a list of counts"))?;
                    f.batch_sizes.sort_unstable();
                    f.batch_sizes.dedup();
                }
                "admission" => {
                    f.admission = Some(match v {
                        "on" => true,
                        "off" => false,
                        _ => return Err(not("expected on or off")),
                    })
                }
                _ => return Err(bad(format!("unknown key {k:?}"))),
            }
        }
        Ok(f)
    }
}

/// Splits a comma-separated list in which a value may hold commas itself (`batch_sizes=1,2`,
/// `max_delay:32,5000`): a part that does not start a new item (no `=` where items are
/// `key=value`, or a bare number) continues the one before.
pub(super) fn split_list(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(',').map(str::trim) {
        let continues = !out.is_empty()
            && (out.last().is_some_and(|l| l.contains('=')) && !part.contains('=')
                || part.parse::<f64>().is_ok());
        match out.last_mut() {
            Some(last) if continues => {
                last.push(',');
                last.push_str(part);
            }
            _ => out.push(part.to_string()),
        }
    }
    out
}

/// The runs of one load: a label and the policy every function uses (`None`: each its own).
pub(super) type RunPolicy = (String, Option<Policy>);

/// The policies to compare: `--policies`, or each function's own when one sets `policy=`
/// (both at once is refused: which would win is not obvious), or [`DEFAULT_POLICIES`].
pub(super) fn policies(arg: Option<&str>, fns: &[FunctionArg]) -> Result<Vec<RunPolicy>, String> {
    let own = fns.iter().any(|f| f.policy.is_some());
    match arg {
        Some(_) if own => {
            Err("--policies and a --function's policy= both set the policy: give one".into())
        }
        None if own => Ok(vec![("configured".into(), None)]),
        _ => split_list(arg.unwrap_or(DEFAULT_POLICIES))
            .iter()
            .map(|p| {
                let policy: Policy = p.parse().map_err(|e| format!("--policies: {e}"))?;
                Ok((policy.to_string(), Some(policy)))
            })
            .collect(),
    }
}

/// A function ready to simulate: its arguments, its profile points and its capacity.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    pub arg: FunctionArg,
    /// Its model id.
    pub model: u8,
    /// `(batch, ns)` from the profile.
    pub points: Vec<(usize, f64)>,
    /// Best images/s inside the SLO: max over batch sizes whose latency fits the SLO of
    /// batch / latency, times instances.
    pub capacity: f64,
}

impl Setup {
    /// Looks the function up in the profile.
    pub fn new(arg: FunctionArg, index: usize, profile: &Profile) -> Result<Setup, String> {
        let points = profile.points(&arg.name, &arg.precision);
        if points.is_empty() {
            return Err(format!(
                "the profile has no {} rows for {:?} (its models: {})",
                arg.precision,
                arg.name,
                profile.models().join(", ")
            ));
        }
        let model = match arg.model {
            Some(m) => m,
            None => u8::try_from(index + 1).map_err(|_| "more than 255 functions".to_string())?,
        };
        let slo_ns = arg.slo_ms * 1e6;
        let m = LatencyModel::seeded(&arg.batch_sizes, &points);
        let best = arg
            .batch_sizes
            .iter()
            .filter_map(|&b| Some((b, m.predict(b)? as f64)))
            .filter(|&(_, l)| l <= slo_ns)
            .map(|(b, l)| b as f64 * 1e9 / l.max(1.0))
            .fold(0.0, f64::max);
        if best == 0.0 {
            return Err(format!(
                "{}: no batch size fits the {} ms SLO in the profile",
                arg.name, arg.slo_ms
            ));
        }
        Ok(Setup {
            capacity: best * arg.instances as f64,
            model,
            points,
            arg,
        })
    }

    /// The function as one run simulates it, under `policy` (`None`: its own, else SLAB).
    /// The scheduler starts from the profile; the executor's truth is the same profile with
    /// `jitter`.
    pub fn sim(&self, policy: Option<Policy>, jitter: f64) -> SimFunction {
        let a = &self.arg;
        let policy = policy.or(a.policy).unwrap_or(Policy::Slab);
        let mut sizes = a.batch_sizes.clone();
        sizes.extend(policy.required_batch());
        let truth = LatencyModel::seeded(&sizes, &self.points);
        SimFunction {
            spec: FunctionSpec {
                name: a.name.clone(),
                model: self.model,
                slo_ns: (a.slo_ms * 1e6) as u64,
                batch_sizes: a.batch_sizes.clone(),
                policy,
                admission: a.admission.unwrap_or(policy.admission_by_default()),
                queue_limit: a.queue_limit,
            },
            seed: vec![LatencyModel::seeded(&a.batch_sizes, &self.points); a.instances],
            service: Service::Profile {
                truth: vec![truth; a.instances],
                jitter,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_commas_inside_values() {
        assert_eq!(
            split_list("slab,fixed:1,max_delay:32,5000,fixed:32"),
            vec!["slab", "fixed:1", "max_delay:32,5000", "fixed:32"]
        );
        let f = FunctionArg::parse(
            "resnet50,batch_sizes=1,8,4,policy=max_delay:8,250,admission=on,model=7,slo_ms=20",
        )
        .unwrap();
        assert_eq!(f.batch_sizes, vec![1, 4, 8]);
        assert_eq!(f.policy, Some("max_delay:8,250".parse().unwrap()));
        assert_eq!(
            (f.admission, f.model, f.slo_ms),
            (Some(true), Some(7), 20.0)
        );
        for bad in [
            "",
            "model=1",
            "x,slo_ms=0",
            "x,instances=0",
            "x,admission=yes",
            "x,k=1",
        ] {
            assert!(FunctionArg::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacity_is_the_best_batch_inside_the_slo() {
        let p = Profile::parse("model,precision,batch,ms\nm,fp32,1,1\nm,fp32,8,8\nm,fp32,32,16\n")
            .unwrap();
        let s = Setup::new(FunctionArg::named("m"), 2, &p).unwrap();
        assert_eq!(s.model, 3);
        assert!((s.capacity - 2000.0).abs() < 1e-6, "{}", s.capacity);
        // Under a 12 ms SLO batch 32 (16 ms) is out: batch 16 (10.67 ms) gives 1500/s.
        let mut tight = FunctionArg::named("m");
        tight.slo_ms = 12.0;
        tight.instances = 2;
        let s = Setup::new(tight, 0, &p).unwrap();
        assert!((s.capacity - 3000.0).abs() < 1.0, "{}", s.capacity);
        assert!(Setup::new(FunctionArg::named("x"), 0, &p).is_err());
        let own = [FunctionArg::parse("m,policy=fixed:4").unwrap()];
        assert_eq!(
            policies(None, &own).unwrap(),
            vec![("configured".into(), None)]
        );
        assert!(policies(Some("slab"), &own).is_err());
        assert_eq!(policies(None, &[]).unwrap().len(), 4);
    }
}
