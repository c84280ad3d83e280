//! A record of what a [`Server`](crate::Server) was given and what it decided, so that a
//! live run can be replayed through the simulator: same arrivals, same completion times,
//! and the batch decisions compared one by one.

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
        assert!(Record::from_json("{\"offer\":1,\"arrival\":1,\"model\":300}").is_err());
    }
}
