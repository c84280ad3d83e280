//! The functions of one receiver behind one routing table: what the live pipeline and the
//! simulator both drive, event by event.

use crate::function::{Batch, Function, Queued, Refusal, Refused};
use crate::record::{Record, Recorder};

/// What [`Server::poll`] decided.
#[derive(Debug)]
pub enum Event<T> {
    /// Run this batch of function `function` now.
    Batch {
        /// Function index.
        function: usize,
        /// What to run.
        batch: Batch<T>,
    },
    /// This queued image of `function` can no longer finish in time: answer `overloaded`.
    Expired {
        /// Function index.
        function: usize,
        /// The image.
        image: Queued<T>,
    },
}

/// Inference functions by model id.
#[derive(Debug)]
pub struct Server<T> {
    functions: Vec<Function<T>>,
    by_model: [Option<u16>; 256],
    expired: Vec<Queued<T>>,
    recorder: Option<Recorder>,
}

impl<T> Server<T> {
    /// Routes each function's model id to it; two functions cannot serve one model.
    pub fn new(functions: Vec<Function<T>>) -> Result<Server<T>, String> {
        let mut by_model = [None; 256];
        for (i, f) in functions.iter().enumerate() {
            let m = f.spec().model as usize;
            if let Some(j) = by_model[m] {
                return Err(format!(
                    "functions {:?} and {:?} both serve model {m}",
                    functions[j as usize].spec().name,
                    f.spec().name
                ));
            }
            by_model[m] = Some(i as u16);
        }
        Ok(Server {
            functions,
            by_model,
            expired: Vec::new(),
            recorder: None,
        })
    }

    /// One function that takes every model (a receiver that gathers without inference).
    pub fn catch_all(function: Function<T>) -> Server<T> {
        Server {
            functions: vec![function],
            by_model: [Some(0); 256],
            expired: Vec::new(),
            recorder: None,
        }
    }

    /// Records every offer, batch and completion from now on (at most `limit` of them),
    /// for [`sim::replay`](crate::sim::replay).
    pub fn record(&mut self, limit: usize) {
        self.recorder = Some(Recorder {
            limit,
            ..Recorder::default()
        });
    }

    /// What was recorded, if recording.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    /// The functions, in configuration order.
    pub fn functions(&self) -> &[Function<T>] {
        &self.functions
    }

    /// Function `i`.
    pub fn function_mut(&mut self, i: usize) -> &mut Function<T> {
        &mut self.functions[i]
    }

    /// The function serving `model`.
    pub fn route(&self, model: u8) -> Option<usize> {
        self.by_model[model as usize].map(usize::from)
    }

    /// Offers an image of `model` that arrived at `now`; returns its function's index.
    pub fn offer(&mut self, now: u64, model: u8, item: T) -> Result<usize, Refused<T>> {
        self.offer_arrived(now, now, model, item)
    }

    /// Offers at `now` an image of `model` that arrived at `arrival`.
    pub fn offer_arrived(
        &mut self,
        now: u64,
        arrival: u64,
        model: u8,
        item: T,
    ) -> Result<usize, Refused<T>> {
        if let Some(r) = self.recorder.as_mut() {
            r.push(Record::Offer {
                now,
                arrival,
                model,
            });
        }
        let Some(f) = self.route(model) else {
            return Err(Refused {
                reason: Refusal::UnknownModel,
                item,
            });
        };
        self.functions[f]
            .offer_arrived(now, arrival, item)
            .map(|()| f)
    }

    /// Everything due at `now`: expired images first, then every batch that the policies
    /// dispatch to free instances.
    pub fn poll(&mut self, now: u64, out: &mut Vec<Event<T>>) {
        let before = out.len();
        let recorded = self.recorder.as_ref().map(|r| r.records.len());
        for (function, f) in self.functions.iter_mut().enumerate() {
            f.expire(now, &mut self.expired);
            out.extend(
                self.expired
                    .drain(..)
                    .map(|image| Event::Expired { function, image }),
            );
            while let Some(batch) = f.dispatch(now) {
                if let Some(r) = self.recorder.as_mut() {
                    r.push(Record::Batch {
                        now,
                        function,
                        instance: batch.instance,
                        images: batch.items.len(),
                        engine: batch.engine_batch,
                    });
                }
                out.push(Event::Batch { function, batch });
            }
            // Images a dispatch dropped as too late.
            f.expire(now, &mut self.expired);
            out.extend(
                self.expired
                    .drain(..)
                    .map(|image| Event::Expired { function, image }),
            );
        }
        if let (Some(r), Some(at)) = (self.recorder.as_mut(), recorded) {
            if out.len() > before && at <= r.records.len() && r.records.len() < r.limit {
                r.records.insert(at, Record::Poll { now });
            }
        }
    }

    /// The earliest time any function wants to be polled without a new event.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.functions.iter().filter_map(Function::wakeup).min()
    }

    /// The batch of `function` on `instance` finished at `now`; returns its measured latency.
    pub fn complete(&mut self, now: u64, function: usize, instance: usize) -> u64 {
        if let Some(r) = self.recorder.as_mut() {
            r.push(Record::Complete {
                now,
                function,
                instance,
            });
        }
        self.functions[function].complete(now, instance)
    }

    /// Every function is idle: nothing queued, no batch running.
    pub fn idle(&self) -> bool {
        self.functions.iter().all(Function::idle)
    }
}
