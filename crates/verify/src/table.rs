//! The image table: bounded slots, an index by image key, and an age list for eviction.

use crate::arrivals::Arrivals;
use crate::counters::{Counters, Drop};
use crate::hash::BuildFx;
use crate::recent::Recent;
use netml_wire::fragment::{self, DescriptorRepr};
use netml_wire::source::Source;
use netml_wire::template::{self, Template};
use std::collections::HashMap;
use std::ops::Range;

/// What identifies an image: who sent it, for which model, and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageKey {
    /// Source IP address and UDP port of the sender's flow.
    pub source: Source,
    /// Model (inference function) id.
    pub model: u8,
    /// Image id.
    pub image: u32,
}

/// Limits of one verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Most incomplete images held at once; a new image beyond this evicts the oldest.
    pub max_in_flight: usize,
    /// Most fragments one image may have (bounds the memory of a slot).
    pub max_fragments: u16,
    /// An image not complete this long after its first fragment is evicted by
    /// [`Verifier::expire`]. Also the late window: fragments of an image that finished
    /// (completed or was evicted) less than this long ago are `late`.
    pub timeout_ns: u64,
    /// Most finished images remembered for the late window: the whole window is held up to
    /// `max_finished / timeout` finished images per second; beyond that the oldest are
    /// forgotten early ([`Counters::forgotten_early`](crate::Counters::forgotten_early)).
    /// Allocated when the verifier is created: 80 bytes per image.
    pub max_finished: usize,
}

impl Config {
    /// The default `max_finished`: 131,072 images (10.5 MB), the whole 500 ms window up to
    /// 262k images/s on one rx queue, 8x what one rx core completes of 588-fragment images.
    pub const DEFAULT_MAX_FINISHED: usize = 1 << 17;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_in_flight: 256,
            max_fragments: 4096,
            timeout_ns: 500_000_000,
            max_finished: Self::DEFAULT_MAX_FINISHED,
        }
    }
}

/// A fragment as the verifier receives it: the parsed header plus an opaque handle that
/// owns the packet (dropping the handle frees it).
#[derive(Debug, Clone, Copy)]
pub struct Fragment<H> {
    /// Sender's address and port.
    pub source: Source,
    /// Parsed fragment header (with the descriptor on fragment 0).
    pub header: fragment::Repr,
    /// Tensor bytes this packet carries.
    pub payload_len: usize,
    /// The packet.
    pub handle: H,
}

impl<H> Fragment<H> {
    /// The same fragment with another handle (e.g. after classifying a borrowed frame, the
    /// packet that owns it).
    pub fn with_handle<G>(self, handle: G) -> Fragment<G> {
        Fragment {
            source: self.source,
            header: self.header,
            payload_len: self.payload_len,
            handle,
        }
    }
}

/// A complete image: all its packets, in fragment order.
#[derive(Debug)]
pub struct Image<H> {
    /// Identity.
    pub key: ImageKey,
    /// Nominal payload bytes per fragment.
    pub frag_size: u16,
    /// Total tensor bytes.
    pub total_bytes: u32,
    /// Shape, dtype, sender timestamp and CRC from fragment 0.
    pub descriptor: DescriptorRepr,
    /// One handle per fragment, index order.
    pub fragments: Vec<H>,
    /// When its first fragment arrived (caller's clock).
    pub first_arrival: u64,
    /// When its last fragment arrived.
    pub completed_at: u64,
}

/// An image evicted before it completed, as reported by
/// [`Verifier::report_evictions`]: enough to answer its sender.
#[derive(Debug)]
pub struct Evicted<H> {
    /// Identity.
    pub key: ImageKey,
    /// Distinct fragments it had.
    pub arrived: u16,
    /// Fragments it needed.
    pub count: u16,
    /// Sender timestamp, if fragment 0 arrived.
    pub sender_timestamp: Option<u64>,
    /// When its first fragment arrived.
    pub first_arrival: u64,
    /// One of its packets (the lowest index it had), kept for the reply addresses; the
    /// others are freed at eviction.
    pub handle: H,
}

/// What happened to a pushed fragment.
#[derive(Debug)]
pub enum Push<H> {
    /// Held; its image is still incomplete.
    Accepted,
    /// It completed its image.
    Complete(Image<H>),
    /// Dropped (and freed) for this reason.
    Dropped(Drop),
}

const NIL: u32 = u32::MAX;

/// Entries of the verifier's table of slots by image hash: 16 flows' images collide in it
/// rarely (a collision sends one of them to the keyed lookup).
const TEMPLATE_BUCKETS: usize = 256;

/// The bucket of an image hash.
#[inline(always)]
fn bucket(hash: u64) -> usize {
    (hash >> (64 - TEMPLATE_BUCKETS.trailing_zeros())) as usize
}

struct Slot<H> {
    key: ImageKey,
    count: u16,
    frag_size: u16,
    total_bytes: u32,
    /// Fragments held. Wider than the count it is compared with: the fast path bumps it
    /// a few fragments after the last bump, before that store has left the store buffer,
    /// and a 16-bit store cannot forward to the 32-bit load the compiler reads it with.
    received: u32,
    /// Empty while the slot is free; a completed image takes its vector (see
    /// `take_in_order`).
    frags: Arrivals<H>,
    /// The header line of one of this image's full fragments, once one came through the
    /// fast path (see `template_slot`); `None` while the slot is free.
    template: Option<Template>,
    descriptor: Option<DescriptorRepr>,
    first_arrival: u64,
    older: u32,
    newer: u32,
}

impl<H> Slot<H> {
    fn new() -> Self {
        Slot {
            key: ImageKey {
                source: Source::v4([0, 0, 0, 0], 0),
                model: 0,
                image: 0,
            },
            count: 0,
            frag_size: 0,
            total_bytes: 0,
            received: 0,
            frags: Arrivals::new(),
            template: None,
            descriptor: None,
            first_arrival: 0,
            older: NIL,
            newer: NIL,
        }
    }

    fn reset(&mut self, key: ImageKey, h: &fragment::Repr, now: u64) {
        let n = h.count as usize;
        self.key = key;
        self.count = h.count;
        self.frag_size = h.frag_size;
        self.total_bytes = h.total_bytes;
        self.received = 0;
        self.frags.prepare(n);
        self.template = None;
        self.descriptor = None;
        self.first_arrival = now;
    }

    /// Whether `h` gives this image's sizes (a header that does not is inconsistent).
    #[inline(always)]
    fn has_sizes_of(&self, h: &fragment::Repr) -> bool {
        h.count == self.count && h.frag_size == self.frag_size && h.total_bytes == self.total_bytes
    }

    /// Whether fragment `index` is held (`index` is below the image's count).
    #[inline(always)]
    fn holds(&self, index: u16) -> bool {
        self.frags.holds(index)
    }

    /// Drops every held handle.
    fn release_all(&mut self) {
        self.frags.clear();
        self.received = 0;
    }

    /// The held fragment of lowest index (`release_all` follows).
    fn take_first(&mut self) -> Option<H> {
        self.frags.take_first()
    }

    /// Every handle in index order. The slot's vector itself becomes the image's: the
    /// handles are not copied into memory that the image's last consumer, on another core,
    /// touched last; the slot reserves a new vector when it is next opened.
    fn take_in_order(&mut self) -> Vec<H> {
        self.received = 0;
        self.frags.take_in_order()
    }
}

/// Entries of [`LastSlots`]: as many flows as interleave packet by packet without a hash
/// lookup.
const LAST_SLOTS: usize = 8;

/// The slots of the images most recently looked up, replaced round robin.
#[derive(Default)]
struct LastSlots {
    entries: [Option<(ImageKey, u32)>; LAST_SLOTS],
    next: usize,
}

impl LastSlots {
    #[inline]
    fn find(&self, key: &ImageKey) -> Option<u32> {
        // The image id differs first between the images of one flow and usually between
        // flows: compare it before the address.
        self.entries.iter().find_map(|e| match e {
            Some((k, s))
                if k.image == key.image && k.model == key.model && k.source == key.source =>
            {
                Some(*s)
            }
            _ => None,
        })
    }

    fn insert(&mut self, key: ImageKey, slot: u32) {
        self.entries[self.next] = Some((key, slot));
        self.next = (self.next + 1) % LAST_SLOTS;
    }

    /// Drops the entry of `slot` (its image left the table).
    fn forget(&mut self, slot: u32) {
        for e in &mut self.entries {
            if e.is_some_and(|(_, s)| s == slot) {
                *e = None;
            }
        }
    }
}

/// The completeness verifier of one rx queue. See the crate docs.
pub struct Verifier<H> {
    cfg: Config,
    slots: Vec<Slot<H>>,
    free: Vec<u32>,
    index: HashMap<ImageKey, u32, BuildFx>,
    oldest: u32,
    newest: u32,
    /// The slots the latest images' fragments went to: a stream of a few flows interleaved
    /// packet by packet skips the hash lookup too (entries leave with their slot, in
    /// `retire`).
    last: LastSlots,
    /// Slots by [`template::image_hash`] (its top bits), set when a slot learns a template
    /// and never cleared: a stale or colliding entry points at a template that does not
    /// match, which `template_slot` checks anyway.
    by_hash: Box<[u32; TEMPLATE_BUCKETS]>,
    recent: Recent,
    counters: Counters,
    /// Evicted images waiting for [`Verifier::drain_evicted`] (`None`: not reported).
    evicted: Option<Vec<Evicted<H>>>,
}

/// Where the fast path places a fragment that a template matched.
pub(crate) struct Placed {
    pub(crate) slot: u32,
    pub(crate) index: u16,
    /// The fragment is the next of an image whose fragments all came in order so far:
    /// `index` is not held, and it is placed without looking at the others.
    pub(crate) in_turn: bool,
    /// The tensor bytes' range within the frame.
    pub(crate) payload: Range<usize>,
}

impl<H> Verifier<H> {
    /// A verifier with these limits (`max_in_flight` is at least 1).
    pub fn new(cfg: Config) -> Self {
        let cfg = Config {
            max_in_flight: cfg.max_in_flight.max(1),
            ..cfg
        };
        Verifier {
            slots: Vec::with_capacity(cfg.max_in_flight),
            free: Vec::with_capacity(cfg.max_in_flight),
            index: HashMap::with_capacity_and_hasher(cfg.max_in_flight, BuildFx::default()),
            oldest: NIL,
            newest: NIL,
            last: LastSlots::default(),
            by_hash: Box::new([NIL; TEMPLATE_BUCKETS]),
            recent: Recent::new(cfg.max_finished, cfg.timeout_ns),
            counters: Counters::default(),
            evicted: None,
            cfg,
        }
    }

    /// Keeps a report of every image evicted from now on (timeout, pressure, shutdown) until
    /// [`drain_evicted`](Self::drain_evicted) takes it, so that the sender can be told; the
    /// caller must drain it (it holds one packet per evicted image).
    pub fn report_evictions(&mut self) {
        self.evicted.get_or_insert_with(Vec::new);
    }

    /// Whether evicted images wait to be drained.
    #[inline]
    pub fn evictions_pending(&self) -> bool {
        self.evicted.as_ref().is_some_and(|v| !v.is_empty())
    }

    /// The evicted images reported since the last call.
    pub fn drain_evicted(&mut self) -> std::vec::Drain<'_, Evicted<H>> {
        self.evicted.get_or_insert_with(Vec::new).drain(..)
    }

    /// The limits in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Incomplete images held now.
    pub fn in_flight(&self) -> usize {
        self.index.len()
    }

    /// Fragments held now (in incomplete images).
    pub fn held_fragments(&self) -> u64 {
        // The counters' invariant; one counter less to bump per fragment.
        let c = &self.counters;
        c.accepted - c.fragments_completed - c.fragments_evicted
    }

    /// Takes one fragment at time `now` (any monotonic clock in ns, the same for
    /// [`Verifier::expire`]). Checks run in the order docs/protocol.md section 8.2 gives.
    // Always inlined into the caller's loop: a fragment's fields then stay in registers
    // (passed through memory, the sender's address alone costs store-forwarding stalls);
    // what is not per fragment (lookup, opening, completion) is out of line.
    #[inline(always)]
    pub fn push(&mut self, frag: Fragment<H>, now: u64) -> Push<H> {
        let h = &frag.header;
        let verdict = match h.expected_payload_len() {
            _ if h.count > self.cfg.max_fragments => Err(Drop::OutOfRange),
            None => Err(Drop::OutOfRange),
            // The wire parser guarantees this; a hand-made header might not.
            _ if h.descriptor.is_some() != (h.index == 0) => Err(Drop::Inconsistent),
            Some(len) if len != frag.payload_len => Err(Drop::Inconsistent),
            Some(_) => Ok(()),
        };
        if let Err(d) = verdict {
            return self.drop_fragment(d);
        }
        let key = ImageKey {
            source: frag.source,
            model: h.model,
            image: h.image,
        };
        let slot = match self.last.find(&key) {
            Some(s) => s,
            None => match self.find_or_open(key, h, now) {
                Some(s) => s,
                None => return self.drop_fragment(Drop::Late),
            },
        };
        self.add(slot, frag, now)
    }

    /// The slot of `key`'s image when it is not among the latest: from the index, or a new
    /// one; `None` when the fragment is late.
    #[inline(never)]
    fn find_or_open(&mut self, key: ImageKey, h: &fragment::Repr, now: u64) -> Option<u32> {
        let s = match self.index.get(&key) {
            Some(&s) => s,
            None => {
                // Not in flight: late if it finished recently, unless this is fragment 0 of
                // a new incarnation (another sender timestamp, docs/protocol.md §7).
                let ts = h.descriptor.as_ref().map(|d| d.timestamp);
                if self.recent.is_late(&key, now, ts) {
                    return None;
                }
                self.open(key, h, now)
            }
        };
        self.last.insert(key, s);
        Some(s)
    }

    fn drop_fragment(&mut self, d: Drop) -> Push<H> {
        self.counters.count_drop(d);
        Push::Dropped(d)
    }

    // Per fragment: always inlined into the caller's loop (see `push`).
    #[inline(always)]
    fn add(&mut self, slot: u32, frag: Fragment<H>, now: u64) -> Push<H> {
        let h = frag.header;
        let s = &self.slots[slot as usize];
        if !s.has_sizes_of(&h) {
            return self.drop_fragment(Drop::Inconsistent);
        }
        if s.holds(h.index) {
            return self.drop_fragment(Drop::Duplicate);
        }
        self.place(slot, h.index, frag.handle, h.descriptor, now)
    }

    /// The slot, index and payload range of `frame` if it matches the template of an image
    /// in flight ([`Template::matches`]) and its index is not held yet: a fragment that
    /// [`accepting_slot`](Self::accepting_slot) would accept, found without parsing it.
    /// The fast path's first try (see [`crate::receive_plain`]); changes nothing.
    #[inline(always)]
    pub(crate) fn template_slot(
        &self,
        frame: &[u8],
        is_our_port: impl Fn(u16) -> bool,
    ) -> Option<Placed> {
        let slot = self.by_hash[bucket(template::image_hash(frame)?)];
        if let Some(found) = self.try_template(slot, frame, &is_our_port) {
            return Some(found);
        }
        self.template_slot_by_key(frame, is_our_port)
    }

    /// [`template_slot`](Self::template_slot) when the table by hash did not point at the
    /// image (a collision, or more images in flight than it has buckets).
    #[inline(never)]
    fn template_slot_by_key(
        &self,
        frame: &[u8],
        is_our_port: impl Fn(u16) -> bool,
    ) -> Option<Placed> {
        let (source, model, image) = template::image_of(frame)?;
        let key = ImageKey {
            source,
            model,
            image,
        };
        self.try_template(self.slot_of(&key)?, frame, is_our_port)
    }

    /// `slot`'s template's verdict on `frame`, if the slot has a template that matches it
    /// and does not hold its index yet.
    #[inline(always)]
    fn try_template(
        &self,
        slot: u32,
        frame: &[u8],
        is_our_port: impl Fn(u16) -> bool,
    ) -> Option<Placed> {
        let s = self.slots.get(slot as usize)?;
        let t = s.template.as_ref()?;
        let index = t.matches(frame, is_our_port)?;
        let in_turn = usize::from(index) == s.frags.turn();
        if !in_turn && s.holds(index) {
            return None;
        }
        Some(Placed {
            slot,
            index,
            in_turn,
            payload: t.payload(),
        })
    }

    /// Keeps `frame`, a fragment that [`accepting_slot`](Self::accepting_slot) found in
    /// `slot`, as its image's template, if that image has none yet and the frame can be one
    /// ([`Template::of`]).
    #[inline]
    pub(crate) fn learn_template(
        &mut self,
        slot: u32,
        frame: &[u8],
        is_our_port: impl Fn(u16) -> bool,
    ) {
        let s = &mut self.slots[slot as usize];
        if s.template.is_none() {
            s.template = Template::of(frame, is_our_port);
            if let (Some(_), Some(hash)) = (&s.template, template::image_hash(frame)) {
                self.by_hash[bucket(hash)] = slot;
            }
        }
    }

    /// The slot where [`push`](Self::push) would accept this fragment without opening an
    /// image, checked as `push` checks it: its image in flight, the same sizes, a payload of
    /// the expected length, not yet held. `None` for anything else (to `push`).
    /// The fast path's lookup (see [`crate::receive_plain`]); changes nothing.
    #[inline(always)]
    pub(crate) fn accepting_slot(
        &self,
        source: Source,
        h: &fragment::Repr,
        payload_len: usize,
    ) -> Option<u32> {
        let key = ImageKey {
            source,
            model: h.model,
            image: h.image,
        };
        let slot = self.slot_of(&key)?;
        let s = &self.slots[slot as usize];
        let fits = h.expected_payload_len() == Some(payload_len);
        (s.has_sizes_of(h) && fits && h.descriptor.is_none() && !s.holds(h.index)).then_some(slot)
    }

    /// The slot of an image in flight, read-only: among the latest 8, else (more flows
    /// interleaved than that) in the index, a hash lookup that still costs less than the
    /// general path (where `push` would also refresh `last`, which changes no outcome).
    #[inline(always)]
    fn slot_of(&self, key: &ImageKey) -> Option<u32> {
        self.last.find(key).or_else(|| self.index.get(key).copied())
    }

    /// Holds fragment `index` of the image in `slot` (checked, not held yet), counts it
    /// accepted and completes the image if it was the last one missing.
    #[inline(always)]
    pub(crate) fn place(
        &mut self,
        slot: u32,
        index: u16,
        handle: H,
        descriptor: Option<DescriptorRepr>,
        now: u64,
    ) -> Push<H> {
        let s = &mut self.slots[slot as usize];
        s.frags.push(index, handle);
        if descriptor.is_some() {
            s.descriptor = descriptor;
        }
        self.count_placed(slot, now)
    }

    /// [`place`](Self::place) for the fast path's fragment in its turn (see
    /// [`Placed::in_turn`]), which carries no descriptor.
    #[inline(always)]
    pub(crate) fn place_in_turn(&mut self, slot: u32, handle: H, now: u64) -> Push<H> {
        self.slots[slot as usize].frags.push_in_turn(handle);
        self.count_placed(slot, now)
    }

    #[inline(always)]
    fn count_placed(&mut self, slot: u32, now: u64) -> Push<H> {
        let s = &mut self.slots[slot as usize];
        s.received += 1;
        self.counters.accepted += 1;
        if s.received < u32::from(s.count) {
            return Push::Accepted;
        }
        Push::Complete(self.complete(slot, now))
    }

    fn open(&mut self, key: ImageKey, h: &fragment::Repr, now: u64) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < self.cfg.max_in_flight => {
                self.slots.push(Slot::new());
                (self.slots.len() - 1) as u32
            }
            None => {
                let victim = self.oldest;
                self.counters.evicted_pressure += 1;
                self.evict(victim, now);
                self.free.pop().expect("eviction frees a slot")
            }
        };
        self.slots[slot as usize].reset(key, h, now);
        self.link_newest(slot);
        self.index.insert(key, slot);
        slot
    }

    #[inline(never)]
    fn complete(&mut self, slot: u32, now: u64) -> Image<H> {
        self.unlink(slot);
        let s = &mut self.slots[slot as usize];
        let fragments = s.take_in_order();
        let descriptor = s.descriptor.expect("fragment 0 carries the descriptor");
        let img = Image {
            key: s.key,
            frag_size: s.frag_size,
            total_bytes: s.total_bytes,
            descriptor,
            fragments,
            first_arrival: s.first_arrival,
            completed_at: now,
        };
        self.counters.images_completed += 1;
        self.counters.fragments_completed += img.fragments.len() as u64;
        self.retire(slot, now);
        img
    }

    fn evict(&mut self, slot: u32, now: u64) {
        self.unlink(slot);
        let s = &mut self.slots[slot as usize];
        let n = s.received as u64;
        if let Some(out) = self.evicted.as_mut() {
            if let Some(handle) = s.take_first() {
                out.push(Evicted {
                    key: s.key,
                    arrived: s.received as u16,
                    count: s.count,
                    sender_timestamp: s.descriptor.map(|d| d.timestamp),
                    first_arrival: s.first_arrival,
                    handle,
                });
            }
        }
        s.release_all();
        self.counters.fragments_evicted += n;
        self.retire(slot, now);
    }

    fn retire(&mut self, slot: u32, now: u64) {
        let s = &mut self.slots[slot as usize];
        // The table by hash may still point here: a free slot matches no frame.
        s.template = None;
        let key = s.key;
        if self
            .recent
            .insert(key, now, s.descriptor.map(|d| d.timestamp))
        {
            self.counters.forgotten_early += 1;
        }
        self.index.remove(&key);
        self.last.forget(slot);
        self.free.push(slot);
    }

    /// Evicts every image whose first fragment arrived `timeout_ns` or more before `now`.
    /// Returns how many were evicted. Call it every few bursts.
    pub fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        while self.oldest != NIL {
            let s = &self.slots[self.oldest as usize];
            if s.first_arrival.saturating_add(self.cfg.timeout_ns) > now {
                break;
            }
            self.counters.evicted_timeout += 1;
            self.evict(self.oldest, now);
            n += 1;
        }
        n
    }

    /// Evicts every incomplete image now, counted as timed out (end of input, shutdown).
    pub fn evict_all(&mut self, now: u64) -> usize {
        let mut n = 0;
        while self.oldest != NIL {
            self.counters.evicted_timeout += 1;
            self.evict(self.oldest, now);
            n += 1;
        }
        n
    }

    fn link_newest(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.older = self.newest;
        s.newer = NIL;
        if self.newest != NIL {
            self.slots[self.newest as usize].newer = slot;
        } else {
            self.oldest = slot;
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (older, newer) = {
            let s = &self.slots[slot as usize];
            (s.older, s.newer)
        };
        if older != NIL {
            self.slots[older as usize].newer = newer;
        } else {
            self.oldest = newer;
        }
        if newer != NIL {
            self.slots[newer as usize].older = older;
        } else {
            self.newest = older;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ImageKey {
        ImageKey {
            source: Source::v4([10, 0, 0, 1], 1),
            model: 0,
            image: 7,
        }
    }

    /// The header of fragment 0 of a `count`-fragment image (10 bytes each).
    fn header(count: u16) -> fragment::Repr {
        fragment::Repr {
            model: 0,
            image: 7,
            index: 0,
            count,
            frag_size: 10,
            total_bytes: 10 * u32::from(count),
            descriptor: None,
        }
    }

    /// Holds fragments `0..count` of the slot's image.
    fn fill(slot: &mut Slot<Box<u16>>, count: u16) {
        for i in 0..count {
            slot.frags.push(i, Box::new(i));
        }
    }

    /// A completed image's handles are the slot's own vector, not a copy.
    #[test]
    fn a_completed_image_takes_the_slots_vector() {
        let mut slot: Slot<Box<u16>> = Slot::new();
        slot.reset(key(), &header(3), 0);
        fill(&mut slot, 3);
        let held_at = slot.frags.as_ptr() as usize;
        let handles = slot.take_in_order();
        assert_eq!(handles.iter().map(|h| **h).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(handles.as_ptr() as usize, held_at);
        assert!(!slot.holds(0));
        // The slot opens its next image in a vector of its own.
        slot.reset(ImageKey { image: 8, ..key() }, &header(3), 1);
        assert_eq!(slot.frags.len(), 0);
        assert_ne!(slot.frags.as_ptr() as usize, held_at);
    }

    /// A vector left large by an evicted image is not what a small image takes with it.
    #[test]
    fn a_small_image_does_not_take_a_large_vector() {
        let mut slot: Slot<Box<u16>> = Slot::new();
        slot.reset(key(), &header(4096), 0);
        slot.frags.push(4000, Box::new(1));
        slot.release_all();
        slot.reset(key(), &header(3), 1);
        fill(&mut slot, 3);
        let handles = slot.take_in_order();
        assert_eq!(handles.len(), 3);
        assert!(handles.capacity() <= 128, "capacity {}", handles.capacity());
    }
}
