//! The sender of `bench pipeline` and `bench serve`: whole images at an offered rate per
//! stream (one stream per model), every fragment copied from the pre-built frames into a
//! fresh mbuf of the pipeline's own pool (the sink frees the mbufs of every image it has
//! gathered, so nothing can be recycled without going around it), stamped with a new image
//! id and, in fragment 0, the send time.
//!
//! The sender is lossless: when the rx ring is full or the pool is empty (the pipeline holds
//! every mbuf) it waits, and counts the wait. So an offered rate the pipeline cannot take
//! shows as a sent rate below it, not as lost packets.

use super::super::feeder::{set_image_id, set_image_id_and_timestamp};
use super::super::traffic::Frames;
use netml_dpdk::{Mbuf, Mempool, Ring};
use netml_pipeline::stats::thread_cpu_ns;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the sender publishes (after every image).
#[derive(Default)]
pub(crate) struct FeedStats {
    /// Images wholly enqueued on the rx ring.
    pub(crate) images: AtomicU64,
    /// The same per stream, in the order of [`Feeder::streams`].
    pub(crate) by_stream: Vec<AtomicU64>,
    /// Allocations that found the pool empty, and enqueues that found the ring full.
    pub(crate) pool_waits: AtomicU64,
    pub(crate) ring_waits: AtomicU64,
    /// The sender thread's CPU time.
    pub(crate) cpu_ns: AtomicU64,
}

impl FeedStats {
    /// Zeroed counters for `streams` streams.
    pub(crate) fn new(streams: usize) -> FeedStats {
        FeedStats {
            by_stream: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            ..FeedStats::default()
        }
    }
}

/// Images of one model at one rate.
pub(crate) struct Stream {
    pub(crate) frames: Arc<Frames>,
    /// Images per second offered; 0: as fast as the sender can.
    pub(crate) rate: f64,
}

/// Nanoseconds since `epoch`: the clock of the sender timestamps and of the result reader.
pub(crate) fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Copies the frames of one image of `flow` into mbufs from `pool`, appending them to `out`;
/// none (and `out` unchanged) when the pool is empty.
pub(super) fn build_image(
    frames: &Frames,
    pool: &Mempool,
    flow: usize,
    id: u32,
    ts: u64,
    out: &mut Vec<Mbuf>,
) -> Option<()> {
    let start = out.len();
    for (i, bytes) in frames.templates[flow].iter().enumerate() {
        let Ok(mut m) = Mbuf::from_bytes(pool, bytes) else {
            out.truncate(start);
            return None;
        };
        if i == 0 {
            set_image_id_and_timestamp(m.data_mut(), frames.udp_off, id, ts);
        } else {
            set_image_id(m.data_mut(), frames.udp_off, id);
        }
        out.push(m);
    }
    Some(())
}

/// The sender thread's state.
pub(super) struct Feeder {
    /// What is sent, interleaved by due time.
    pub(super) streams: Vec<Stream>,
    pub(super) pool: Mempool,
    pub(super) ring: Ring,
    pub(super) epoch: Instant,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) stats: Arc<FeedStats>,
}

/// Packets per enqueue.
const BURST: usize = 32;

impl Feeder {
    /// Sends images until `stop`, image `k` of a stream due `k / rate` seconds after the
    /// start (images that fall behind go at once: no catching up by bursts beyond what is
    /// due); of several streams the one due first goes next.
    pub(super) fn run(self) {
        netml_pipeline::unpin_thread();
        let _ = netml_dpdk::register_thread();
        let mut image: Vec<Mbuf> = Vec::with_capacity(64);
        let mut burst: Vec<Mbuf> = Vec::with_capacity(BURST);
        let start = Instant::now();
        let mut sent = vec![0u64; self.streams.len()];
        let mut total = 0u64;
        let due = |s: &Stream, k: u64| {
            if s.rate > 0.0 {
                Duration::from_secs_f64(k as f64 / s.rate)
            } else {
                Duration::ZERO
            }
        };
        while !self.stop.load(Ordering::Relaxed) {
            let Some((i, at)) = (self.streams.iter().zip(&sent).enumerate())
                .map(|(i, (s, &k))| (i, due(s, k)))
                .min_by_key(|&(i, at)| (at, sent[i]))
            else {
                return;
            };
            if !self.wait_until(start + at) {
                break;
            }
            let (frames, k) = (&self.streams[i].frames, sent[i]);
            let flows = frames.templates.len() as u64;
            let (flow, id) = ((k % flows) as usize, (k / flows) as u32);
            let ts = since(self.epoch);
            // The whole image in mbufs first, so that the timestamp is when it starts to go.
            while build_image(frames, &self.pool, flow, id, ts, &mut image).is_none() {
                self.stats.pool_waits.fetch_add(1, Ordering::Relaxed);
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::yield_now();
            }
            while !image.is_empty() {
                let n = BURST.min(image.len());
                burst.extend(image.drain(..n));
                if !self.enqueue(&mut burst) {
                    Mbuf::free_bulk(&mut image);
                    return;
                }
            }
            sent[i] += 1;
            total += 1;
            if let Some(c) = self.stats.by_stream.get(i) {
                c.store(sent[i], Ordering::Relaxed);
            }
            self.stats.images.store(total, Ordering::Relaxed);
            if total.is_multiple_of(16) {
                self.stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
            }
        }
        self.stats.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }

    /// Enqueues all of `burst`, waiting while the ring is full; false (the rest freed) when
    /// told to stop meanwhile.
    fn enqueue(&self, burst: &mut Vec<Mbuf>) -> bool {
        loop {
            self.ring.enqueue_burst(burst);
            if burst.is_empty() {
                return true;
            }
            self.stats.ring_waits.fetch_add(1, Ordering::Relaxed);
            if self.stop.load(Ordering::Relaxed) {
                Mbuf::free_bulk(burst);
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Sleeps (then yields) until `due`; false when told to stop meanwhile.
    fn wait_until(&self, due: Instant) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            let left = due - now;
            // Sleeping gives the 2 vCPUs to the pipeline; the last stretch is yielded away
            // since a sleep overshoots by tens of microseconds.
            if left > Duration::from_micros(300) {
                std::thread::sleep(left - Duration::from_micros(200));
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The sender's own ceiling: images per second it builds into mbufs (and frees again)
/// with nothing else running, over `seconds`. The ring enqueue is not in it.
pub(super) fn ceiling(frames: &Frames, seconds: f64) -> Result<f64, String> {
    let pool = Mempool::pktmbuf(
        &format!("bp_cal_{}", std::process::id()),
        (frames.frags * 2).next_power_of_two() as u32 - 1,
        0,
        netml_dpdk::DEFAULT_DATA_ROOM,
    )
    .map_err(|e| format!("calibration mempool: {e}"))?;
    let epoch = Instant::now();
    let mut image = Vec::with_capacity(frames.frags);
    let mut k = 0u64;
    while epoch.elapsed().as_secs_f64() < seconds {
        let flow = (k % frames.templates.len() as u64) as usize;
        build_image(frames, &pool, flow, k as u32, since(epoch), &mut image)
            .ok_or("calibration: pool empty")?;
        Mbuf::free_bulk(&mut image);
        k += 1;
    }
    Ok(k as f64 / epoch.elapsed().as_secs_f64())
}
