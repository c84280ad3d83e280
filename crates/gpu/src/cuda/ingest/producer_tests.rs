//! The resident producer (with the GPU's plan and entry pool) against the kernel's host build:
//! host threads run `netml_host_block_loop` over a pool in host memory, and the target-agnostic
//! self-check compares every slot with its oracle. Also the watchdog and the liveness probe.

use std::thread::JoinHandle;
use std::time::Instant;

use super::*;
use crate::cuda::ingest::plan::plan;
use crate::host::spawn_block;
use crate::ring::{RawGridCtl, RawRing};
use crate::selfcheck::{self, SelfCheckOptions};
use crate::{ImageJob, Ingest, IngestMode, Sources, Target};

/// The `netml` mode with host threads as the kernel (0 threads: a consumer that never answers).
struct HostResident {
    pool: EntryPool,
    producer: Producer,
    ring: *mut RawRing,
    ctl: *mut RawGridCtl,
    threads: Vec<JoinHandle<()>>,
    slots: Vec<*mut [u8]>,
    slot_bytes: usize,
    max_frags: usize,
    /// What the liveness probe answers.
    probe: Result<(), IngestError>,
}

// SAFETY: the raw allocations are owned; the consumer threads use them under the ring
// protocol and are joined before they are freed.
unsafe impl Send for HostResident {}

impl HostResident {
    fn start(blocks: u32, entries: usize, max_frags: usize, stall: Duration) -> Self {
        let pool = EntryPool::host(entries, max_frags);
        // SAFETY: all-zero RawRing / RawGridCtl are valid (integers, atomics).
        let ring = Box::into_raw(Box::new(unsafe { std::mem::zeroed::<RawRing>() }));
        let ctl = Box::into_raw(Box::new(unsafe { std::mem::zeroed::<RawGridCtl>() }));
        // SAFETY: fresh allocations; no consumer runs yet.
        unsafe {
            (*ring).nentries = entries as u32;
            (*ring).entries = pool.entries_device_ptr();
        }
        let slot_bytes = 96 * 1024;
        let slots = (0..4)
            .map(|_| Box::into_raw(vec![0u8; slot_bytes].into_boxed_slice()))
            .collect();
        fence(Ordering::SeqCst);
        let threads = (0..blocks)
            // SAFETY: HostResident joins its threads before freeing the ring and ctl.
            .map(|bid| unsafe { spawn_block(ring, ctl, bid, blocks) })
            .collect();
        Self {
            pool,
            producer: Producer::new(stall),
            ring,
            ctl,
            threads,
            slots,
            slot_bytes,
            max_frags,
            probe: Ok(()),
        }
    }
}

impl Ingest for HostResident {
    fn mode(&self) -> IngestMode {
        IngestMode::Netml
    }
    fn target(&self) -> Target {
        Target::Host
    }
    fn slots(&self) -> usize {
        self.slots.len()
    }
    fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }
    unsafe fn submit(&mut self, slot: usize, jobs: &[ImageJob<'_>]) -> Result<Ticket, IngestError> {
        let base = *self.slots.get(slot).ok_or(IngestError::NoSuchSlot(slot))? as *mut u8;
        let planned = plan(
            jobs,
            base as u64,
            self.slot_bytes,
            self.max_frags,
            Vec::new(),
        )?;
        let answer = self.probe.clone();
        self.producer
            .submit(&self.pool, &planned, &mut || answer.clone())
    }
    fn poll(&mut self, t: Ticket) -> Result<bool, IngestError> {
        let answer = self.probe.clone();
        self.producer.poll(&self.pool, t, &mut || answer.clone())
    }
    fn read_slot(&mut self, slot: usize, out: &mut [u8]) -> Result<(), IngestError> {
        let base = self.slots[slot] as *const u8;
        // SAFETY: the slot's last batch completed (the caller's contract); `out` fits a slot.
        unsafe { std::ptr::copy_nonoverlapping(base, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
    fn slot_device_ptr(&self, _slot: usize) -> Option<u64> {
        None
    }
    fn counters(&self) -> IngestCounters {
        self.producer.counters()
    }
}

impl Drop for HostResident {
    fn drop(&mut self) {
        // SAFETY: `ring` is live until freed below; `quit` is atomic.
        unsafe { &(*self.ring).quit }.store(crate::ring::QUIT_DRAIN, Ordering::Release);
        for t in self.threads.drain(..) {
            t.join().expect("consumer thread");
        }
        // SAFETY: made by Box::into_raw in `start`; every consumer has been joined.
        unsafe {
            drop(Box::from_raw(self.ring));
            drop(Box::from_raw(self.ctl));
            for s in &self.slots {
                drop(Box::from_raw(*s));
            }
        }
    }
}

#[test]
fn selfcheck_through_the_pool_and_the_kernel_loop() {
    // (blocks, ring entries, descriptors per entry, conversions, strided images): tiny pools
    // force batches to be cut into many entries, the ring to wrap and push back, inline and
    // out-of-line lists (strided images need room for their pointers: 700 cuts by images).
    for (blocks, entries, max_frags, convert, strided) in [
        (4, 3, 5, false, false),
        (1, 1, 3, false, false),
        (2, 3, 700, false, true),
        (3, 4, 4096, true, true),
    ] {
        let mut ing = HostResident::start(blocks, entries, max_frags, Duration::from_secs(30));
        let opts = SelfCheckOptions {
            rounds: 8,
            convert,
            strided,
            ..SelfCheckOptions::default()
        };
        let rep = selfcheck::run(&mut ing, &opts).expect("self-check ran");
        assert!(rep.passed(), "{blocks}/{entries}/{max_frags}: {rep}");
        let c = ing.counters();
        assert_eq!(c.batches_submitted, 2 * rep.cases as u64);
        assert_eq!(c.batches_completed, c.batches_submitted);
        if convert {
            assert!(rep.converted_images > 0, "{rep}");
        }
        assert_eq!(rep.strided_images > 0, strided, "{rep}");
        if entries < 4 {
            assert!(c.backpressure_waits > 0, "{c:?}");
        }
    }
}

fn one_batch(ing: &mut HostResident, data: &[u8]) -> Result<Ticket, IngestError> {
    let f = [crate::RawFragment {
        src: data.as_ptr(),
        len: data.len(),
        dst_offset: 0,
    }];
    let job = [ImageJob {
        slot_offset: 0,
        fragments: Sources::Listed(&f),
        convert: None,
    }];
    // SAFETY: `data` outlives the ingest's use of it (the consumer never runs, or the batch is
    // waited for by the caller).
    unsafe { ing.submit(0, &job) }
}

#[test]
fn a_consumer_that_never_answers_is_a_sticky_stall() {
    let mut ing = HostResident::start(0, 2, 8, Duration::from_millis(50));
    let data = [7u8; 64];
    let t = one_batch(&mut ing, &data).expect("published");
    let start = Instant::now();
    let err = loop {
        match ing.poll(t) {
            Ok(done) => assert!(!done, "nothing consumes the ring"),
            Err(e) => break e,
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(
        matches!(err, IngestError::Stalled { waited_ms } if waited_ms >= 50),
        "{err:?}"
    );
    assert_eq!(ing.poll(t), Err(err.clone()));
    assert_eq!(one_batch(&mut ing, &data).err(), Some(err));
}

#[test]
fn a_dead_consumer_is_reported_by_the_probe() {
    let mut ing = HostResident::start(0, 2, 8, Duration::from_secs(30));
    ing.probe = Err(IngestError::Device("kernel gone".into()));
    let data = [7u8; 64];
    let t = one_batch(&mut ing, &data).expect("published");
    let start = Instant::now();
    let err = loop {
        if let Err(e) = ing.poll(t) {
            break e;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "probe never ran");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(err, IngestError::Device("kernel gone".into()));
}

#[test]
fn an_idle_consumer_is_not_probed() {
    let mut ing = HostResident::start(2, 2, 8, Duration::from_secs(30));
    let data = [7u8; 64];
    let t = one_batch(&mut ing, &data).expect("published");
    while !ing.poll(t).expect("consumer alive") {}
    // Nothing pending: however long the ingest idles, the probe is not asked.
    ing.probe = Err(IngestError::Device("must not be asked".into()));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ing.poll(t), Ok(true));
    let mut out = [0u8; 64];
    ing.read_slot(0, &mut out).unwrap();
    assert_eq!(out, data);
}
