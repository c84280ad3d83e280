//! The serving stage: complete images are routed to their inference function, admitted (or
//! answered at once), batched by the function's policy into its instances' ingest slots,
//! run in place by its engines, and answered.
//!
//! ```text
//! dispatch queue -> route (model) -> fits the model? -> Server::offer (admission)
//!   Server::poll -> batch for a free instance -> Ingest::submit(instance's slot)
//!   -> poll gather -> mbufs back to the pool -> engine reads the slot in place
//!   -> poll engine -> top-k -> result messages
//! ```
//!
//! A receiver that serves no function has one gather-only lane that takes every model:
//! batches of what is queued, answered with the CRC-32 of the tensor as gathered.

mod instances;
mod lane;
pub(crate) mod open;
mod reply;
mod shares;

use crate::clock::Clock;
use crate::stats::{FunctionSnapshot, Shared, SharesSnapshot, SinkCounters};
use crate::worker::{Complete, Held, Refused};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use lane::{Lane, Turn};
use netml_serve::{Event, Refusal, Server};
use netml_verify::Image;
use netml_wire::result::Status;
use reply::Answer;
pub(crate) use reply::Replies;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An image queued for its function: its packets (held until gathered) and its answer.
pub(crate) struct Admitted {
    image: Image<Held>,
    answer: Answer,
}

/// Images taken from the dispatch queue per loop turn at most (the rest wait a turn, so
/// that batches in flight keep being polled).
const RECEIVE_BURST: usize = 256;
/// How often the per-function statistics are published.
const FUNCTION_STATS_EVERY: Duration = Duration::from_millis(100);

/// The serving stage.
pub struct Sink {
    /// Complete images from the rx workers.
    pub(crate) input: Receiver<Complete>,
    /// Images the dispatch queue refused (full), to be answered `overloaded`.
    pub(crate) refused: Receiver<Refused>,
    pub(crate) replies: Replies,
    pub(crate) shared: Arc<Shared>,
    pub(crate) clock: Clock,
    pub(crate) server: Server<Admitted>,
    pub(crate) lanes: Vec<Lane>,
    /// Where to write the decision record at the end.
    pub(crate) record: Option<std::path::PathBuf>,
    /// An image received while waiting, offered at the next turn.
    pub(crate) waited: Option<Complete>,
    /// Inference functions are configured (without, the one gather-only lane is not
    /// reported as a function).
    pub(crate) serving: bool,
    /// The controller resizing the CPU functions' shares, when on.
    pub(crate) control: Option<shares::ShareControl>,
}

/// Most records a decision record keeps (about 40 B each in memory).
const RECORD_LIMIT: usize = 4_000_000;

/// The record's first lines: each function with its starting latency models.
fn record_header(server: &Server<Admitted>) -> Vec<String> {
    server
        .functions()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let seeds: Vec<Vec<(usize, u64)>> = (0..f.instances())
                .map(|k| {
                    let m = f.latency_model(k).expect("instance exists");
                    m.sizes()
                        .iter()
                        .filter_map(|&b| m.predict(b).map(|p| (b, p)))
                        .collect()
                })
                .collect();
            netml_serve::RecordFile::header_line(f.spec(), &seeds, i)
        })
        .collect()
}

fn write_record(
    path: &std::path::Path,
    header: &[String],
    server: &Server<Admitted>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for h in header {
        writeln!(w, "{h}")?;
    }
    if let Some(r) = server.recorder() {
        for rec in &r.records {
            writeln!(w, "{}", rec.to_json())?;
        }
        if r.dropped > 0 {
            tracing::warn!(
                "decision record: {} records beyond the limit not kept",
                r.dropped
            );
        }
    }
    w.flush()
}

impl Sink {
    /// Runs until every worker has exited, the queue is drained and every image answered.
    ///
    /// Each turn of the loop has one time: batches that finished are completed at it, the
    /// images that arrived are offered at it, and the scheduler decides at it, in that
    /// order, which is the order the simulator processes one instant in (so a recorded run
    /// replays to the same decisions).
    pub fn run(mut self) {
        let mut c = SinkCounters::default();
        let mut events = Vec::new();
        let mut disconnected = false;
        let mut idle_spins = 0u32;
        let mut published = Instant::now();
        let header = self.record.as_ref().map(|_| {
            self.server.record(RECORD_LIMIT);
            record_header(&self.server)
        });
        loop {
            let now = self.clock.now_ns();
            let turn_cpu = crate::stats::thread_cpu_ns();
            let (gather_before, crc_before) = (c.gather_ns, c.crc_ns);
            let mut worked = false;
            for (function, lane) in self.lanes.iter_mut().enumerate() {
                worked |= lane.progress(&mut Turn {
                    function,
                    now,
                    server: &mut self.server,
                    replies: &mut self.replies,
                    c: &mut c,
                });
            }
            worked |= self.receive(now, &mut c, &mut disconnected);
            if let Some(control) = self.control.as_mut() {
                control.step(now, &self.server, &mut self.lanes);
            }
            self.server.poll(now, &mut events);
            for e in events.drain(..) {
                worked = true;
                match e {
                    Event::Batch { function, batch } => self.lanes[function].start(
                        &mut Turn {
                            function,
                            now,
                            server: &mut self.server,
                            replies: &mut self.replies,
                            c: &mut c,
                        },
                        batch,
                    ),
                    Event::Expired { image, .. } => {
                        self.replies
                            .reply(&mut c, image.item.answer, Status::Overloaded)
                    }
                }
            }
            if worked {
                // CPU time, not wall time: a sink preempted by other threads is not slower.
                let spent = crate::stats::thread_cpu_ns().saturating_sub(turn_cpu);
                let elsewhere = (c.gather_ns - gather_before) + (c.crc_ns - crc_before);
                c.serve_ns += spent.saturating_sub(elsewhere);
            }
            let idle = self.server.idle() && self.lanes.iter().all(Lane::idle);
            if disconnected && idle {
                break;
            }
            if self.replies.out.len() >= reply::TX_BURST
                || (!worked && !self.replies.out.is_empty())
            {
                self.replies.flush(&mut c);
            }
            if published.elapsed() >= FUNCTION_STATS_EVERY {
                self.publish_functions();
                published = Instant::now();
            }
            if worked {
                idle_spins = 0;
                self.publish(&c);
            } else if idle && !disconnected {
                self.wait_for_images(&mut c, &mut disconnected);
            } else {
                // Batches in flight or a policy waiting: spin briefly, then let others run.
                idle_spins = idle_spins.saturating_add(1);
                if idle_spins < 256 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        self.replies.flush(&mut c);
        self.publish(&c);
        self.publish_functions();
        if let (Some(path), Some(header)) = (&self.record, header) {
            if let Err(e) = write_record(path, &header, &self.server) {
                tracing::error!("writing the decision record {}: {e}", path.display());
            }
        }
        for lane in &mut self.lanes {
            lane.forget_lost();
        }
    }

    /// Admits what is queued (up to a burst) at `now`. True when anything arrived.
    fn receive(&mut self, now: u64, c: &mut SinkCounters, disconnected: &mut bool) -> bool {
        let mut waited = self
            .waited
            .take()
            .map(|done| self.admit(now, c, done))
            .is_some();
        while let Ok(r) = self.refused.try_recv() {
            self.replies
                .reply(c, Answer::refused(&r), Status::Overloaded);
            waited = true;
        }
        for n in 0..RECEIVE_BURST {
            match self.input.try_recv() {
                Ok(done) => self.admit(now, c, done),
                Err(TryRecvError::Empty) => return waited || n > 0,
                Err(TryRecvError::Disconnected) => {
                    *disconnected = true;
                    return waited || n > 0;
                }
            }
        }
        true
    }

    /// Nothing to do: blocks for the next image (briefly, so statistics stay live). The image
    /// waits for the next turn, to be offered at that turn's time with whatever else came.
    fn wait_for_images(&mut self, c: &mut SinkCounters, disconnected: &mut bool) {
        self.publish(c);
        match self.input.recv_timeout(Duration::from_millis(20)) {
            Ok(done) => self.waited = Some(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => *disconnected = true,
        }
    }

    /// Routes one complete image (queued for its function, or answered at once); answers an
    /// evicted one `incomplete`.
    fn admit(&mut self, now: u64, c: &mut SinkCounters, done: Complete) {
        let image = match done {
            Complete::Image(image) => image,
            Complete::Evicted(e) => {
                let answer = Answer::evicted(&e);
                drop(e); // its last packet goes back to the pool
                return self.replies.reply(c, answer, Status::Incomplete);
            }
        };
        let answer = Answer::new(&image);
        let Some(f) = self.server.route(image.key.model) else {
            drop(image);
            return self.replies.reply(c, answer, Status::UnknownModel);
        };
        let lane = &self.lanes[f];
        if !lane.accepts.fits(&image, lane.stride) {
            drop(image);
            return self.replies.reply(c, answer, Status::ShapeMismatch);
        }
        let arrival = image.completed_at;
        if let Err(refused) =
            self.server
                .offer_arrived(now, arrival, image.key.model, Admitted { image, answer })
        {
            let status = match refused.reason {
                Refusal::Overloaded | Refusal::QueueFull => Status::Overloaded,
                Refusal::Unavailable => Status::Failed,
                Refusal::UnknownModel => Status::UnknownModel,
            };
            let Admitted { image, answer } = refused.item;
            drop(image);
            self.replies.reply(c, answer, status);
        }
    }

    fn publish(&self, c: &SinkCounters) {
        let mut c = *c;
        c.cpu_ns = crate::stats::thread_cpu_ns();
        *self.shared.sink.lock().expect("stats lock") = c;
    }

    fn publish_functions(&self) {
        if !self.serving {
            return;
        }
        let v: Vec<FunctionSnapshot> = self
            .server
            .functions()
            .iter()
            .zip(&self.lanes)
            .map(|(f, lane)| FunctionSnapshot {
                name: f.spec().name.clone(),
                model: f.spec().model,
                slo_ns: f.spec().slo_ns,
                policy: f.spec().policy.to_string(),
                queued: f.queued(),
                instances: f.healthy_instances(),
                stats: f.stats().clone(),
                shares: shares_of(lane),
            })
            .collect();
        *self.shared.functions.lock().expect("stats lock") = v;
    }
}

/// The CPU shares of a lane's instances and their resizes; `None` unless every instance is
/// a CPU instance.
fn shares_of(lane: &Lane) -> Option<SharesSnapshot> {
    let mut snap = SharesSnapshot::default();
    for (k, inst) in lane.instances.iter().enumerate() {
        let instances::Executor::Cpu(c) = inst.engine.as_ref()? else {
            return None;
        };
        let stats = c.shadow.stats();
        snap.threads.push(c.shadow.units());
        snap.resizes.extend(stats.resizes.iter().map(|r| (k, *r)));
        snap.gaps.count += stats.gaps.count;
        snap.gaps.sum_ns += stats.gaps.sum_ns;
        snap.gaps.max_ns = snap.gaps.max_ns.max(stats.gaps.max_ns);
    }
    Some(snap)
}
