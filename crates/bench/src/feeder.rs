//! The feeder thread, which keeps the rx ring full by recycling the mbufs of completed
//! images, and the threads the bench runs on.

use super::meter::FeedMeter;
use netml_dpdk::{rdtsc, register_thread, Mbuf, Ring};
use netml_pipeline::worker::Complete;
use netml_wire::fragment;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Offset of the image id in the fragment header (docs/protocol.md; checked at start-up).
const IMAGE_ID_OFFSET: usize = 4;

/// Writes image id `id` into a fragment frame whose UDP payload (the fragment header)
/// starts at `udp_off`, and recomputes the header checksum.
#[inline]
pub(super) fn set_image_id(frame: &mut [u8], udp_off: usize, id: u32) {
    let hdr = &mut frame[udp_off..];
    hdr[IMAGE_ID_OFFSET..IMAGE_ID_OFFSET + 4].copy_from_slice(&id.to_be_bytes());
    fragment::Packet::new_unchecked(hdr).fill_checksum();
}

/// Offset of the sender timestamp in fragment 0's UDP payload: after the header, at byte 28
/// of the descriptor (docs/protocol.md section 4.3; checked by a test).
const TIMESTAMP_OFFSET: usize = fragment::HEADER_LEN + 28;

/// Writes image id `id` and, into fragment 0's descriptor, sender timestamp `ts` (echoed in
/// the image's result), then recomputes the header checksum (which covers the descriptor).
#[inline]
pub(super) fn set_image_id_and_timestamp(frame: &mut [u8], udp_off: usize, id: u32, ts: u64) {
    let at = udp_off + TIMESTAMP_OFFSET;
    frame[at..at + 8].copy_from_slice(&ts.to_be_bytes());
    set_image_id(frame, udp_off, id);
}

/// The feeder's state.
pub(super) struct Feeder {
    pub(super) ring: Ring,
    /// Per flow: packets ready to send, in order, ids already rewritten.
    pub(super) queues: Vec<VecDeque<Mbuf>>,
    /// Per flow: the next image id.
    pub(super) next_id: Vec<u32>,
    /// Source port of flow 0 (flow f sends from `base_port + f`).
    pub(super) base_port: u16,
    pub(super) udp_off: usize,
    pub(super) burst: usize,
    pub(super) interleave: usize,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) meter: Arc<FeedMeter>,
}

/// Where the rx side gives the mbufs back to the feeder.
pub(super) enum Returns {
    /// The pipeline worker's dispatch queue (polled without blocking): complete images.
    Images(Box<dyn FnMut() -> Option<Complete> + Send>),
    /// The floor worker's return ring: packets in the order they were received.
    Packets(Ring),
}

impl Feeder {
    pub(super) fn run(mut self, mut returns: Returns) {
        let _ = register_thread();
        let flows = self.queues.len();
        let mut staged: Vec<Mbuf> = Vec::with_capacity(self.burst);
        let mut returned: Vec<Mbuf> = Vec::with_capacity(4 * self.burst);
        let (mut rr, mut in_chunk, mut back_rr) = (0usize, 0usize, 0usize);
        let (mut packets, mut busy, mut images, mut ring_full) = (0u64, 0u64, 0u64, 0u64);
        let mut iterations = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = rdtsc();
            let mut worked = false;
            match &mut returns {
                // Recycle completed images under fresh ids.
                Returns::Images(completed) => {
                    while let Some(done) = completed() {
                        // The bench's workers do not report evictions.
                        let Complete::Image(image) = done else {
                            continue;
                        };
                        let port = image.key.source.port();
                        let flow = usize::from(port.wrapping_sub(self.base_port)) % flows;
                        let id = self.next_id[flow];
                        self.next_id[flow] = id.wrapping_add(1);
                        let q = &mut self.queues[flow];
                        for held in image.fragments {
                            let mut m = held.mbuf;
                            set_image_id(m.data_mut(), self.udp_off, id);
                            q.push_back(m);
                        }
                        images += 1;
                        worked = true;
                    }
                }
                // Stamp every returned packet as a recycled image's (the same write per
                // packet), dealt to the flows in turn.
                Returns::Packets(ring) => {
                    if ring.dequeue_burst(&mut returned, 4 * self.burst) > 0 {
                        for mut m in returned.drain(..) {
                            let flow = back_rr;
                            back_rr = (back_rr + 1) % flows;
                            let id = self.next_id[flow];
                            self.next_id[flow] = id.wrapping_add(1);
                            set_image_id(m.data_mut(), self.udp_off, id);
                            self.queues[flow].push_back(m);
                        }
                        worked = true;
                    }
                }
            }
            // Top up the burst, `interleave` packets per flow in turn.
            let mut dry = 0;
            while staged.len() < self.burst && dry < flows {
                match self.queues[rr].pop_front() {
                    Some(m) => {
                        staged.push(m);
                        dry = 0;
                        in_chunk += 1;
                        if in_chunk >= self.interleave {
                            in_chunk = 0;
                            rr = (rr + 1) % flows;
                        }
                    }
                    None => {
                        dry += 1;
                        in_chunk = 0;
                        rr = (rr + 1) % flows;
                    }
                }
            }
            if !staged.is_empty() {
                let n = self.ring.enqueue_burst(&mut staged);
                if n > 0 {
                    packets += n as u64;
                    worked = true;
                } else {
                    ring_full += 1;
                }
            }
            if worked {
                busy += rdtsc().wrapping_sub(t0);
            } else {
                std::hint::spin_loop();
            }
            iterations = iterations.wrapping_add(1);
            if iterations & 0xff == 0 {
                self.publish(packets, busy, images, ring_full);
            }
        }
        self.publish(packets, busy, images, ring_full);
        // The staged packets and the queues are freed here (dropped).
    }

    fn publish(&self, packets: u64, busy: u64, images: u64, ring_full: u64) {
        let m = &self.meter;
        m.packets.store(packets, Ordering::Relaxed);
        m.busy.store(busy, Ordering::Relaxed);
        m.images.store(images, Ordering::Relaxed);
        m.ring_full.store(ring_full, Ordering::Relaxed);
    }
}

/// A thread started before `rte_eal_init`, waiting for its work. `rte_eal_init` pins the
/// calling thread to the main lcore's CPU and threads inherit the affinity of the thread
/// that creates them; threads made before it keep the process's CPU set, so the scheduler
/// can put the rx loop and the feeder on different cores.
pub(super) type Job = Box<dyn FnOnce() + Send>;

pub(super) fn prestarted(name: &str) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::channel::<Job>();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Ok(job) = rx.recv() {
                job()
            }
        })
        .map_err(|e| format!("spawning {name}: {e}"))?;
    Ok((tx, h))
}

/// The calling thread's `/proc/<pid>/task/<tid>` directory.
pub(super) fn thread_dir() -> Option<PathBuf> {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .map(|p| Path::new("/proc").join(p))
}

/// The calling thread's allowed CPUs, as the kernel lists them.
pub(super) fn thread_cpus() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::super::traffic::MODEL;
    use super::*;
    use netml_pktgen::flows::{FlowConfig, DEFAULT_DST, DEFAULT_SRC};
    use netml_pktgen::fragmenter::{self, Damage, FragmentId};
    use netml_pktgen::tensor;
    use netml_wire::fragment::Dtype;
    use netml_wire::frame::{self, Classified, Endpoints};

    /// A small f32 image of one flow, in 256-byte fragments.
    struct Sample {
        t: tensor::Tensor,
        ep: Endpoints,
        count: u16,
    }

    impl Sample {
        fn new() -> Sample {
            let t = tensor::synthetic(&[1, 3, 8, 8], Dtype::F32, 1, 1)
                .unwrap()
                .remove(0);
            let ep = FlowConfig::new(DEFAULT_SRC.parse().unwrap(), DEFAULT_DST.parse().unwrap())
                .endpoints()
                .unwrap()[0];
            let count = fragmenter::fragment_count(&t, 256).unwrap();
            Sample { t, ep, count }
        }

        /// Fragment `index` of image `image`, and the offset of its UDP payload.
        fn frame(&self, image: u32, index: u16) -> (Vec<u8>, usize) {
            let id = FragmentId {
                model: MODEL,
                image,
                index,
                count: self.count,
                frag_size: 256,
            };
            let f = fragmenter::build(&self.ep, &self.t, id, 1, Damage::None);
            let off = frame::parse_udp(&f).unwrap().unwrap().payload.start;
            (f, off)
        }
    }

    #[test]
    fn timestamp_rewrite_lands_in_the_descriptor() {
        let s = Sample::new();
        let (mut f, off) = s.frame(0, 0);
        set_image_id_and_timestamp(&mut f, off, 42, 0x0123_4567_89ab_cdef);
        match frame::classify(&f, |p| p == 9000) {
            Classified::Fragment { header, .. } => {
                assert_eq!(header.image, 42);
                let d = header.descriptor.expect("fragment 0 has a descriptor");
                assert_eq!(d.timestamp, 0x0123_4567_89ab_cdef);
                assert_eq!(d.crc32, s.t.crc32);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_id_rewrite_keeps_the_frame_valid() {
        let s = Sample::new();
        for index in [0, 1, s.count - 1] {
            let (mut f, off) = s.frame(7, index);
            set_image_id(&mut f, off, 0xdead_beef);
            match frame::classify(&f, |p| p == 9000) {
                Classified::Fragment { header, .. } => {
                    assert_eq!((header.image, header.index), (0xdead_beef, index));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
