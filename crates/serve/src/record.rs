//! A record of what a [`Server`](crate::Server) was given and what it decided, so that a
//! live run can be replayed through the simulator: same arrivals, same completion times,
//! and the batch decisions compared one by one.

use crate::function::FunctionSpec;
use crate::latency::LatencyModel;

/// One thing that happened to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// An image of `model` offered at `now` that arrived at `arrival`.
    Offer {
        /// Offer time, ns.
        now: u64,
        /// Arrival (SLO start), ns.
        arrival: u64,
        /// Model id.
        model: u8,
    },
    /// A batch dispatched at `now`.
    Batch {
        /// Dispatch time, ns.
        now: u64,
        /// Function index.
        function: usize,
        /// Instance index.
        instance: usize,
        /// Images in it.
        images: usize,
        /// Engine batch it ran as.
        engine: usize,
    },
    /// A poll at `now` that decided something (a batch or an expired image): when the live
    /// loop looked, which the replay follows instead of its own wake-up times.
    Poll {
        /// Poll time, ns.
        now: u64,
    },
    /// The batch on `instance` of `function` completed at `now`.
    Complete {
        /// Completion time, ns.
        now: u64,
        /// Function index.
        function: usize,
        /// Instance index.
        instance: usize,
    },
}

/// A batch decision: function, instance, images, engine batch.
pub type Decision = (usize, usize, usize, usize);

/// The batch decisions among `records`, in order (what a replay is compared on).
pub fn decisions(records: &[Record]) -> Vec<Decision> {
    records
        .iter()
        .filter_map(|r| match *r {
            Record::Batch {
                function,
                instance,
                images,
                engine,
                ..
            } => Some((function, instance, images, engine)),
            _ => None,
        })
        .collect()
}

impl Record {
    /// One JSON line (no dependency: the fields are numbers).
    pub fn to_json(&self) -> String {
        match *self {
            Record::Offer { now, arrival, model } => {
                format!("{{\"offer\":{now},\"arrival\":{arrival},\"model\":{model}}}")
            }
            Record::Batch { now, function, instance, images, engine } => format!(
                "{{\"batch\":{now},\"function\":{function},\"instance\":{instance},\"images\":{images},\"engine\":{engine}}}"
            ),
            Record::Complete { now, function, instance } => {
                format!("{{\"complete\":{now},\"function\":{function},\"instance\":{instance}}}")
            }
            Record::Poll { now } => format!("{{\"poll\":{now}}}"),
        }
    }

    /// Parses a line written by [`to_json`](Self::to_json).
    pub fn from_json(line: &str) -> Result<Record, String> {
        let field = |name: &str| -> Result<u64, String> {
            let key = format!("\"{name}\":");
            let at = line
                .find(&key)
                .ok_or_else(|| format!("no {name} in {line:?}"))?
                + key.len();
            let digits: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits
                .parse()
                .map_err(|_| format!("bad {name} in {line:?}"))
        };
        if line.contains("\"offer\"") {
            Ok(Record::Offer {
                now: field("offer")?,
                arrival: field("arrival")?,
                model: u8::try_from(field("model")?)
                    .map_err(|_| format!("bad model in {line:?}"))?,
            })
        } else if line.contains("\"batch\"") {
            Ok(Record::Batch {
                now: field("batch")?,
                function: field("function")? as usize,
                instance: field("instance")? as usize,
                images: field("images")? as usize,
                engine: field("engine")? as usize,
            })
        } else if line.contains("\"complete\"") {
            Ok(Record::Complete {
                now: field("complete")?,
                function: field("function")? as usize,
                instance: field("instance")? as usize,
            })
        } else if line.contains("\"poll\"") {
            Ok(Record::Poll {
                now: field("poll")?,
            })
        } else {
            Err(format!("not a server record: {line:?}"))
        }
    }
}

/// A decision record as written by `netml run --record`: the functions with their starting
/// latency models (one JSON line each), then the records.
#[derive(Debug, Clone)]
pub struct RecordFile {
    /// Each function's configuration and its instances' starting latency models.
    pub functions: Vec<(FunctionSpec, Vec<LatencyModel>)>,
    /// What happened, in order.
    pub records: Vec<Record>,
}

impl RecordFile {
    /// The header line of one function.
    pub fn header_line(spec: &FunctionSpec, seeds: &[Vec<(usize, u64)>], index: usize) -> String {
        serde_json::json!({
            "function": index, "name": spec.name, "model": spec.model, "slo_ns": spec.slo_ns,
            "batch_sizes": spec.batch_sizes, "policy": spec.policy.to_string(),
            "admission": spec.admission, "queue_limit": spec.queue_limit, "seeds": seeds,
        })
        .to_string()
    }

    /// Parses a record file's text.
    pub fn parse(text: &str) -> Result<RecordFile, String> {
        let mut functions = Vec::new();
        let mut records = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = |e: String| format!("line {}: {e}", n + 1);
            if line.contains("\"seeds\"") {
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
                functions.push(function_of(&v).map_err(at)?);
            } else {
                records.push(Record::from_json(line).map_err(at)?);
            }
        }
        if functions.is_empty() {
            return Err("no function lines: not a decision record of `netml run --record`".into());
        }
        Ok(RecordFile { functions, records })
    }
}

fn function_of(v: &serde_json::Value) -> Result<(FunctionSpec, Vec<LatencyModel>), String> {
    let num = |k: &str| v[k].as_u64().ok_or_else(|| format!("no {k}"));
    let sizes: Vec<usize> = v["batch_sizes"]
        .as_array()
        .ok_or("no batch_sizes")?
        .iter()
        .map(|b| b.as_u64().map(|b| b as usize).ok_or("bad batch size"))
        .collect::<Result<_, _>>()?;
    let spec = FunctionSpec {
        name: v["name"].as_str().ok_or("no name")?.to_string(),
        model: u8::try_from(num("model")?).map_err(|_| "bad model")?,
        slo_ns: num("slo_ns")?,
        batch_sizes: sizes.clone(),
        policy: v["policy"].as_str().ok_or("no policy")?.parse()?,
        admission: v["admission"].as_bool().ok_or("no admission")?,
        queue_limit: num("queue_limit")? as usize,
    };
    let seeds = v["seeds"]
        .as_array()
        .ok_or("no seeds")?
        .iter()
        .map(|inst| {
            let pts: Vec<(usize, f64)> = inst
                .as_array()
                .ok_or("bad seeds")?
                .iter()
                .map(|p| match (p[0].as_u64(), p[1].as_u64()) {
                    (Some(b), Some(ns)) => Ok((b as usize, ns as f64)),
                    _ => Err("bad seed point"),
                })
                .collect::<Result<_, _>>()?;
            Ok(LatencyModel::seeded(&sizes, &pts))
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok((spec, seeds))
}

/// Records, bounded: past `limit` entries recording stops (and says so).
#[derive(Debug, Default)]
pub struct Recorder {
    /// What was recorded.
    pub records: Vec<Record>,
    /// Most records kept.
    pub limit: usize,
    /// Records not kept because the limit was reached.
    pub dropped: u64,
}

impl Recorder {
    pub(crate) fn push(&mut self, r: Record) {
        if self.records.len() < self.limit {
            self.records.push(r);
        } else {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        for r in [
            Record::Offer {
                now: 5,
                arrival: 3,
                model: 200,
            },
            Record::Batch {
                now: 9,
                function: 1,
                instance: 2,
                images: 7,
                engine: 8,
            },
            Record::Complete {
                now: 12,
                function: 1,
                instance: 2,
            },
        ] {
            assert_eq!(Record::from_json(&r.to_json()).unwrap(), r);
        }
        assert!(Record::from_json("{}").is_err());
        let spec = FunctionSpec {
            name: "f".into(),
            model: 3,
            slo_ns: 50,
            batch_sizes: vec![1, 4],
            policy: crate::Policy::Slab,
            admission: true,
            queue_limit: 9,
        };
        let text = format!(
            "{}\n{}\n",
            RecordFile::header_line(&spec, &[vec![(1, 10), (4, 30)]], 0),
            Record::Poll { now: 4 }.to_json()
        );
        let f = RecordFile::parse(&text).unwrap();
        assert_eq!(f.functions[0].0, spec);
        assert_eq!(f.functions[0].1[0].predict(4), Some(30));
        assert_eq!(f.records, vec![Record::Poll { now: 4 }]);
        assert!(RecordFile::parse("{\"poll\":1}\n")
            .unwrap_err()
            .contains("no function"));
        assert!(Record::from_json("{\"offer\":1,\"arrival\":1,\"model\":300}").is_err());
    }
}
