//! One inference function's lane: its ingest (one batch slot per instance), what it accepts,
//! and its instances, each gathering a batch into its slot and then running it in place.

use super::instances::Executor;
use super::reply::{Answer, Replies};
use super::Admitted;
use crate::stats::SinkCounters;
use crate::worker::Held;
use netml_gpu::{ImageJob, Ingest, IngestError, Normalize, Sources, Ticket};
use netml_serve::exec::Input;
use netml_serve::{Batch, Server};
use netml_verify::Image;
use netml_wire::checksum;
use netml_wire::fragment::{Dtype, Layout};
use netml_wire::result::Status;
use std::time::{Duration, Instant};

/// The tensors a lane takes.
pub(crate) enum Accepts {
    /// Anything up to the slot stride (no inference: gathered and answered with its CRC).
    Any,
    /// f32 tensors of exactly the model's per-image shape (C, H, W).
    F32 { chw: [u32; 3] },
    /// u8 HWC pixels of the model's size, normalised into f32 CHW by the gather.
    U8 { normalize: Normalize },
}

impl Accepts {
    /// Whether `image` can feed the model.
    pub(crate) fn fits(&self, image: &Image<Held>, stride: usize) -> bool {
        let d = &image.descriptor;
        let dims = &d.dims[..d.rank as usize];
        // A leading batch dimension of 1 is the same image.
        let dims = match dims {
            [1, rest @ ..] if rest.len() == 3 => rest,
            _ => dims,
        };
        match self {
            Accepts::Any => image.total_bytes as usize <= stride,
            Accepts::F32 { chw } => {
                d.dtype == Dtype::F32
                    && matches!(d.layout, Layout::Nchw | Layout::Plain)
                    && dims == chw
                    && image.total_bytes as usize == stride
            }
            Accepts::U8 { normalize: n } => {
                d.dtype == Dtype::U8
                    && d.layout == Layout::Nhwc
                    && dims == [n.height, n.width, n.channels]
            }
        }
    }
}

/// What an instance is doing.
enum State {
    Idle,
    /// Its batch is being gathered into its slot.
    Gathering {
        ticket: Ticket,
        batch: Batch<Admitted>,
        stalled: bool,
    },
    /// Its engine runs the gathered batch.
    Inferring {
        answers: Vec<Answer>,
        since: Instant,
    },
    /// Out of rotation; its slot is never reused (a stalled engine may still read it).
    Lost,
}

/// One instance: its engine (none for a gather-only lane) and its batch slot (same index).
pub(crate) struct Instance {
    pub(crate) engine: Option<Executor>,
    state: State,
    /// Where a slot in GPU memory is copied for a CPU engine.
    staging: Vec<f32>,
    /// Images were queued for the function when its last batch completed (the next start's
    /// gap counts as a batch-boundary gap or a resize's downtime).
    queued_at_done: bool,
}

impl Instance {
    pub(crate) fn new(engine: Option<Executor>) -> Instance {
        Instance {
            engine,
            state: State::Idle,
            staging: Vec::new(),
            queued_at_done: false,
        }
    }
}

/// What a lane's steps act on beside the lane: the function's index, the loop turn's time,
/// the scheduler, the answers and the counters.
pub(crate) struct Turn<'a> {
    pub(crate) function: usize,
    pub(crate) now: u64,
    pub(crate) server: &'a mut Server<Admitted>,
    pub(crate) replies: &'a mut Replies,
    pub(crate) c: &'a mut SinkCounters,
}

/// A function's lane.
pub(crate) struct Lane {
    pub(crate) ingest: Box<dyn Ingest>,
    /// Bytes per image in a slot.
    pub(crate) stride: usize,
    pub(crate) accepts: Accepts,
    pub(crate) instances: Vec<Instance>,
    /// An engine running longer than this is taken out of rotation.
    pub(crate) stall_after: Duration,
    /// Read every batch back and check the images' CRC-32 (not for converted input).
    pub(crate) check_crc: bool,
}

impl Lane {
    /// Starts gathering `batch` into its instance's slot.
    pub(crate) fn start(&mut self, t: &mut Turn<'_>, mut batch: Batch<Admitted>) {
        let i = batch.instance;
        let convert = match &self.accepts {
            Accepts::U8 { normalize } => Some(*normalize),
            _ => None,
        };
        for q in &mut batch.items {
            q.item.answer.dispatched = t.now;
        }
        let jobs: Vec<ImageJob<'_>> = batch
            .items
            .iter()
            .enumerate()
            .map(|(k, q)| ImageJob {
                slot_offset: k * self.stride,
                fragments: Sources::Strided {
                    srcs: Held::payload_ptrs(&q.item.image.fragments),
                    frag_size: usize::from(q.item.image.frag_size),
                    total: q.item.image.total_bytes as usize,
                },
                convert,
            })
            .collect();
        let t0 = Instant::now();
        // SAFETY: the payloads live in mbufs owned by `batch`, and their addresses in the
        // `Held` vectors inside it (heap buffers that stay put when `batch` moves); both move
        // into the instance's state and are dropped (freed) only after `poll` reported the
        // ticket complete or the ingest failed for good; the slot belongs to this instance,
        // which the scheduler gives one batch at a time.
        let submitted = unsafe { self.ingest.submit(i, &jobs) };
        t.c.gather_ns += t0.elapsed().as_nanos() as u64;
        drop(jobs);
        match submitted {
            Ok(ticket) => {
                t.c.batches += 1;
                self.instances[i].state = State::Gathering {
                    ticket,
                    batch,
                    stalled: false,
                };
            }
            Err(e) => {
                tracing::error!(
                    "ingest refused a batch of {} images: {e}",
                    batch.items.len()
                );
                t.server.function_mut(t.function).abort(i);
                for q in batch.items {
                    t.c.ingest_failed += 1;
                    t.replies.reply(t.c, q.item.answer, Status::Failed);
                }
            }
        }
    }

    /// Moves every instance on: finished gathers start their engine (or are answered on a
    /// gather-only lane), finished engines are answered. True when anything moved.
    pub(crate) fn progress(&mut self, t: &mut Turn<'_>) -> bool {
        let mut moved = false;
        for i in 0..self.instances.len() {
            moved |= match self.instances[i].state {
                State::Gathering { .. } => self.gathered(t, i),
                State::Inferring { .. } => self.inferred(t, i),
                State::Idle | State::Lost => false,
            };
            // A batch boundary: the engine runs nothing (its slot may be filling).
            if matches!(
                self.instances[i].state,
                State::Idle | State::Gathering { .. }
            ) {
                let engine = self.instances[i].engine.as_mut();
                if let Some(r) = engine.and_then(|e| e.switch()) {
                    t.server
                        .function_mut(t.function)
                        .reshare(i, |b| r.factor(b));
                    moved = true;
                }
            }
        }
        moved
    }

    fn gathered(&mut self, t: &mut Turn<'_>, i: usize) -> bool {
        let State::Gathering {
            ticket, stalled, ..
        } = &mut self.instances[i].state
        else {
            return false;
        };
        match self.ingest.poll(*ticket) {
            Ok(false) => return false,
            Err(IngestError::Stalled { waited_ms }) => {
                // Its payloads may still be read: keep the mbufs and keep waiting.
                if !*stalled {
                    *stalled = true;
                    t.c.ingest_stalls += 1;
                    tracing::error!(
                        "ingest: batch in slot {i} without progress for {waited_ms} ms"
                    );
                }
                return false;
            }
            Err(e) => {
                tracing::error!("ingest failed: {e}");
                let State::Gathering { batch, .. } =
                    std::mem::replace(&mut self.instances[i].state, State::Idle)
                else {
                    unreachable!()
                };
                t.server.function_mut(t.function).abort(i);
                for q in batch.items {
                    t.c.ingest_failed += 1;
                    t.replies.reply(t.c, q.item.answer, Status::Failed);
                }
                return true;
            }
            Ok(true) => {}
        }
        let State::Gathering { batch, .. } =
            std::mem::replace(&mut self.instances[i].state, State::Idle)
        else {
            unreachable!()
        };
        let (engine_batch, images) = (batch.engine_batch, batch.items.len());
        let mut answers = Vec::with_capacity(images);
        for q in batch.items {
            t.c.images += 1;
            t.c.bytes += q.item.image.total_bytes as u64;
            let mut a = q.item.answer;
            a.ingested = t.now;
            drop(q.item.image); // the mbufs go back to the pool now
            answers.push(a);
        }
        let converted = matches!(self.accepts, Accepts::U8 { .. });
        if self.check_crc && !converted {
            self.crc(i, &mut answers, t.c);
        }
        let Some(engine) = self.instances[i].engine.as_ref() else {
            t.server.complete(t.now, t.function, i);
            for a in answers {
                t.replies.reply(t.c, a, Status::Ok);
            }
            return true;
        };
        let (per, on_gpu) = (engine.per_image(), engine.on_gpu());
        let ptr = self.input_of(i, images * per, on_gpu);
        let started = ptr.and_then(|ptr| {
            if !ptr.is_multiple_of(std::mem::align_of::<f32>() as u64) {
                return Err("batch slot is not f32-aligned".to_string());
            }
            let waiting = self.instances[i].queued_at_done;
            let engine = self.instances[i].engine.as_mut().expect("checked above");
            // SAFETY: the slot (or staging) holds `images * per` f32 values (device memory
            // for a GPU instance, host memory otherwise) and is neither written nor freed
            // until this instance's result is polled: the scheduler gives the instance (and
            // so the slot) no other batch while it is Inferring, and a Lost instance's slot
            // is never reused.
            unsafe {
                engine.start(
                    Input {
                        ptr,
                        images,
                        engine_batch,
                    },
                    waiting,
                )
            }
        });
        match started {
            Ok(()) => {
                self.instances[i].state = State::Inferring {
                    answers,
                    since: Instant::now(),
                };
            }
            Err(e) => {
                tracing::error!("function {} instance {i}: {e}", t.function);
                self.lose(t, i, answers);
            }
        }
        true
    }

    /// Where instance `i`'s engine reads its batch of `values` f32: the slot in place (device
    /// memory for a GPU engine, host memory for a CPU one), or, for a CPU engine on a GPU
    /// ingest, a host copy of the slot.
    fn input_of(&mut self, i: usize, values: usize, on_gpu: bool) -> Result<u64, String> {
        if on_gpu {
            return self
                .ingest
                .slot_device_ptr(i)
                .ok_or_else(|| "a GPU instance needs the ingest on its GPU".to_string());
        }
        match self.ingest.host_slot(i) {
            Ok(Some(bytes)) => Ok(bytes.as_ptr() as u64),
            Ok(None) => {
                let staging = &mut self.instances[i].staging;
                staging.resize(values, 0.0);
                // SAFETY: f32 has no invalid bit patterns; the byte view covers exactly the
                // staging vector, which nothing else borrows now.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(staging.as_mut_ptr() as *mut u8, values * 4)
                };
                self.ingest
                    .read_slot(i, bytes)
                    .map(|()| staging.as_ptr() as u64)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn inferred(&mut self, t: &mut Turn<'_>, i: usize) -> bool {
        let State::Inferring { since, .. } = &self.instances[i].state else {
            return false;
        };
        let since = *since;
        let engine = self.instances[i]
            .engine
            .as_mut()
            .expect("an inferring instance has an engine");
        let result = match engine.poll() {
            Some(r) => r,
            None if since.elapsed() > self.stall_after => {
                Err(format!("no result after {:?}", self.stall_after))
            }
            None => return false,
        };
        let State::Inferring { answers, .. } =
            std::mem::replace(&mut self.instances[i].state, State::Idle)
        else {
            unreachable!()
        };
        match result {
            Ok(tops) => {
                t.server.complete(t.now, t.function, i);
                self.instances[i].queued_at_done = t.server.functions()[t.function].queued() > 0;
                for (mut a, top) in answers.into_iter().zip(tops) {
                    a.inferred = t.now;
                    a.top_k = top;
                    t.replies.reply(t.c, a, Status::Ok);
                }
            }
            Err(e) => {
                tracing::error!(
                    "function {} instance {i}: engine failed: {e}; out of rotation",
                    t.function
                );
                self.lose(t, i, answers);
            }
        }
        true
    }

    /// Takes instance `i` out of rotation and answers its batch (and, if it was the last
    /// one, everything queued for the function) `failed`.
    fn lose(&mut self, t: &mut Turn<'_>, i: usize, answers: Vec<Answer>) {
        self.instances[i].state = State::Lost;
        t.c.instances_lost += 1;
        let queued = t.server.function_mut(t.function).fail_instance(i);
        for a in answers
            .into_iter()
            .chain(queued.into_iter().map(|q| q.item.answer))
        {
            t.replies.reply(t.c, a, Status::Failed);
        }
    }

    fn crc(&mut self, slot: usize, answers: &mut [Answer], c: &mut SinkCounters) {
        let t0 = Instant::now();
        self.crc_into(slot, answers, c);
        c.crc_ns += t0.elapsed().as_nanos() as u64;
    }

    fn crc_into(&mut self, slot: usize, answers: &mut [Answer], c: &mut SinkCounters) {
        let stride = self.stride;
        let used = answers
            .last()
            .map_or(0, |a| (answers.len() - 1) * stride + a.len);
        let check = |bytes: &[u8], answers: &mut [Answer], mismatches: &mut u64| {
            for (k, a) in answers.iter_mut().enumerate() {
                let off = k * stride;
                a.crc32 = checksum::tensor_crc32([&bytes[off..off + a.len]]);
                if a.crc32 != a.sender_crc {
                    *mismatches += 1;
                }
            }
        };
        // Host slots are read in place; a GPU slot is copied back first.
        let checked = match self.ingest.host_slot(slot) {
            Ok(Some(bytes)) => {
                check(&bytes[..used], answers, &mut c.crc_mismatch);
                Ok(())
            }
            Ok(None) => {
                let mut readback = vec![0u8; used];
                self.ingest
                    .read_slot(slot, &mut readback)
                    .map(|()| check(&readback, answers, &mut c.crc_mismatch))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            tracing::error!("reading slot {slot} back: {e}");
        }
    }

    /// No batch is being gathered or run.
    pub(crate) fn idle(&self) -> bool {
        self.instances
            .iter()
            .all(|i| matches!(i.state, State::Idle | State::Lost))
    }

    /// Abandons lost instances' workers instead of joining them (one may be stuck).
    pub(crate) fn forget_lost(&mut self) {
        for inst in &mut self.instances {
            if matches!(inst.state, State::Lost) {
                std::mem::forget(inst.engine.take());
            }
        }
    }
}
