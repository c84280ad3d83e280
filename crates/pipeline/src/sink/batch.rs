//! Admitting images, submitting batches to the ingest and retiring them in order.

use super::reply::Answer;
use super::{Sink, State};
use crate::worker::{Complete, Held};
use netml_gpu::{ImageJob, IngestError, Sources, Ticket};
use netml_verify::Image;
use netml_wire::checksum;
use netml_wire::result::Status;
use std::time::Instant;

/// An image on its way through the ingest.
pub(super) struct Admitted {
    /// Its packets, held until the ingest has read them.
    image: Image<Held>,
    /// Its answer, filled in as it goes.
    answer: Answer,
}

/// A submitted batch.
pub(super) struct InFlight {
    ticket: Ticket,
    slot: usize,
    images: Vec<Admitted>,
    /// The watchdog already reported this batch.
    stalled: bool,
}

impl Sink {
    /// Answers at once what will not be ingested; queues the rest for the batch.
    pub(super) fn admit(&mut self, st: &mut State, done: Complete, images: &mut Vec<Admitted>) {
        let mut answer = Answer::new(&done.image, self.clock.now_ns());
        let image = done.image;
        let counter = if !self.models.is_empty() && !self.models.contains(&image.key.model) {
            &mut st.c.rejected
        } else if image.total_bytes as usize > self.max_image_bytes {
            &mut st.c.oversize
        } else {
            images.push(Admitted { image, answer });
            return;
        };
        *counter += 1;
        drop(image);
        answer.status = Status::UnknownModel;
        self.reply(st, answer);
    }

    /// Submits `images` as one batch into the first free slot, each image in the strided
    /// form: the verifier proved its fragments contiguous (fragment `i` at `i * frag_size`,
    /// only the last one short), so the ingest validates it in O(1), and its source pointers
    /// are the payload addresses recorded at rx in the held packets, read in place: nothing is
    /// built per fragment here and no mbuf header is read again.
    pub(super) fn submit(&mut self, st: &mut State, images: Vec<Admitted>) {
        let slot = st.free.pop_front().expect("submit needs a free slot");
        let jobs: Vec<ImageJob<'_>> = images
            .iter()
            .enumerate()
            .map(|(i, a)| ImageJob {
                slot_offset: i * self.max_image_bytes,
                fragments: Sources::Strided {
                    srcs: Held::payload_ptrs(&a.image.fragments),
                    frag_size: usize::from(a.image.frag_size),
                    total: a.image.total_bytes as usize,
                },
                convert: None,
            })
            .collect();
        let t0 = Instant::now();
        // SAFETY: the payloads live in mbufs owned by `images`, and their addresses in the
        // `Held` vectors of `images` (heap buffers that stay put when `images` moves); both
        // move into the in-flight batch and are dropped (freed) only after `poll` reported the
        // ticket complete, or after the ingest failed for good; the slot came off the free
        // list, so no other batch uses it until this one is retired.
        let submitted = unsafe { self.ingest.submit(slot, &jobs) };
        st.c.gather_ns += t0.elapsed().as_nanos() as u64;
        drop(jobs);
        match submitted {
            Ok(ticket) => {
                st.c.batches += 1;
                st.in_flight.push_back(InFlight {
                    ticket,
                    slot,
                    images,
                    stalled: false,
                });
            }
            Err(e) => {
                tracing::error!("ingest refused a batch of {} images: {e}", images.len());
                st.free.push_back(slot);
                self.fail(st, images);
            }
        }
    }

    /// Retires completed batches, oldest first. True when at least one was retired.
    pub(super) fn retire(&mut self, st: &mut State) -> bool {
        let mut any = false;
        while let Some(head) = st.in_flight.front_mut() {
            match self.ingest.poll(head.ticket) {
                Ok(true) => {
                    let b = st.in_flight.pop_front().expect("head exists");
                    self.complete(st, b);
                    any = true;
                }
                Ok(false) => break,
                Err(IngestError::Stalled { waited_ms }) => {
                    // Its payloads may still be read: keep the mbufs and keep waiting.
                    if !head.stalled {
                        head.stalled = true;
                        st.c.ingest_stalls += 1;
                        tracing::error!(
                            "ingest: batch in slot {} without progress for {waited_ms} ms",
                            head.slot
                        );
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!("ingest failed: {e}");
                    let b = st.in_flight.pop_front().expect("head exists");
                    st.free.push_back(b.slot);
                    self.fail(st, b.images);
                    any = true;
                }
            }
        }
        any
    }

    /// A batch is in its slot: free its packets, check it, answer every image.
    fn complete(&mut self, st: &mut State, b: InFlight) {
        let ingested = self.clock.now_ns();
        let mut answers = Vec::with_capacity(b.images.len());
        let mut used = 0usize;
        for (i, a) in b.images.into_iter().enumerate() {
            st.c.images += 1;
            st.c.bytes += a.image.total_bytes as u64;
            used = i * self.max_image_bytes + a.image.total_bytes as usize;
            let mut answer = a.answer;
            answer.ingested = ingested;
            answer.len = a.image.total_bytes as usize;
            drop(a.image); // the mbufs go back to the pool now
            answers.push(answer);
        }
        if self.check_crc {
            let stride = self.max_image_bytes;
            let check = |bytes: &[u8], answers: &mut [Answer], mismatches: &mut u64| {
                for (i, answer) in answers.iter_mut().enumerate() {
                    let off = i * stride;
                    answer.crc32 = checksum::tensor_crc32([&bytes[off..off + answer.len]]);
                    if answer.crc32 != answer.sender_crc {
                        *mismatches += 1;
                    }
                }
            };
            // Host slots are read in place; a GPU slot is copied back first.
            let checked = match self.ingest.host_slot(b.slot) {
                Ok(Some(bytes)) => {
                    check(&bytes[..used], &mut answers, &mut st.c.crc_mismatch);
                    Ok(())
                }
                Ok(None) => {
                    st.readback.resize(used, 0);
                    self.ingest
                        .read_slot(b.slot, &mut st.readback)
                        .map(|()| check(&st.readback, &mut answers, &mut st.c.crc_mismatch))
                }
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                tracing::error!("reading slot {} back: {e}", b.slot);
            }
        }
        st.free.push_back(b.slot);
        for answer in answers {
            self.reply(st, answer);
        }
    }

    /// Answers the images of a batch the ingest lost.
    fn fail(&mut self, st: &mut State, images: Vec<Admitted>) {
        for a in images {
            st.c.ingest_failed += 1;
            drop(a.image);
            let mut answer = a.answer;
            answer.status = Status::Failed;
            self.reply(st, answer);
        }
    }
}
