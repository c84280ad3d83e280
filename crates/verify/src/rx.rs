//! The step before the verifier: classifying received frames, counting every frame that
//! does not become a fragment in exactly one counter.

use crate::table::Placed;
use crate::{Fragment, Push, Verifier};
use core::ops::Range;
use netml_wire::frame::{self, NotFragment};
use netml_wire::Error;

/// Frame-level counters of one receive path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounters {
    /// Frames seen.
    pub frames: u64,
    /// Valid fragments handed to the verifier.
    pub fragments: u64,
    /// Not ours (other ports, other protocols): left to the NF chain.
    pub other: u64,
    /// Cut short: a header or a declared length does not fit.
    pub truncated: u64,
    /// Bad magic, version, flags or IP version.
    pub unrecognized: u64,
    /// Fields that contradict each other.
    pub malformed: u64,
    /// IPv4 or fragment header checksum failed.
    pub bad_checksum: u64,
}

impl RxCounters {
    /// Frames dropped as invalid.
    pub fn invalid(&self) -> u64 {
        self.truncated + self.unrecognized + self.malformed + self.bad_checksum
    }

    /// Adds another path's counters.
    pub fn add(&mut self, o: &RxCounters) {
        self.frames += o.frames;
        self.fragments += o.fragments;
        self.other += o.other;
        self.truncated += o.truncated;
        self.unrecognized += o.unrecognized;
        self.malformed += o.malformed;
        self.bad_checksum += o.bad_checksum;
    }

    /// Name/value pairs in a fixed order, for tables and JSON.
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("frames", self.frames),
            ("fragments", self.fragments),
            ("other", self.other),
            ("truncated", self.truncated),
            ("unrecognized", self.unrecognized),
            ("malformed", self.malformed),
            ("bad_checksum", self.bad_checksum),
        ]
    }
}

/// What became of a received frame.
#[derive(Debug)]
pub enum Rx<H> {
    /// A fragment for the verifier; `payload` is the tensor bytes' range within the frame.
    Fragment(Fragment<H>, Range<usize>),
    /// Somebody else's traffic; the handle comes back for the NF chain.
    Other(H),
    /// Invalid and counted; the handle was dropped.
    Invalid(Error),
}

/// Classifies `bytes` (the frame held by `handle`), counting the outcome.
#[inline]
pub fn receive<H>(
    counters: &mut RxCounters,
    bytes: &[u8],
    handle: H,
    is_our_port: impl Fn(u16) -> bool,
) -> Rx<H> {
    counters.frames += 1;
    let verdict = frame::classify_into(bytes, is_our_port, |source, header, payload| {
        (source, header, payload)
    });
    *match &verdict {
        Ok(_) => &mut counters.fragments,
        Err(NotFragment::Other) => &mut counters.other,
        Err(NotFragment::Invalid(Error::Truncated)) => &mut counters.truncated,
        Err(NotFragment::Invalid(Error::Unrecognized)) => &mut counters.unrecognized,
        Err(NotFragment::Invalid(Error::Malformed)) => &mut counters.malformed,
        Err(NotFragment::Invalid(Error::Checksum)) => &mut counters.bad_checksum,
    } += 1;
    match verdict {
        Ok((source, header, payload)) => {
            let f = Fragment {
                source,
                header,
                payload_len: payload.len(),
                handle,
            };
            Rx::Fragment(f, payload)
        }
        Err(NotFragment::Other) => Rx::Other(handle),
        Err(NotFragment::Invalid(e)) => Rx::Invalid(e),
    }
}

/// A frame the fast path ([`receive_plain`]) matched to a fragment the verifier accepts;
/// nothing is counted until [`Plain::accept`].
pub struct Plain<'v, H> {
    verifier: &'v mut Verifier<H>,
    placed: Placed,
}

impl<H> Plain<'_, H> {
    /// The tensor bytes' range within the frame.
    pub fn payload(&self) -> Range<usize> {
        self.placed.payload.clone()
    }

    /// Counts the frame and the fragment and holds `handle` (the packet of the frame):
    /// what [`receive`] and [`Verifier::push`] do with the same frame.
    #[inline(always)]
    pub fn accept(self, counters: &mut RxCounters, handle: H, now: u64) -> Push<H> {
        counters.frames += 1;
        counters.fragments += 1;
        let p = self.placed;
        if p.in_turn {
            self.verifier.place_in_turn(p.slot, handle, now)
        } else {
            self.verifier.place(p.slot, p.index, handle, None, now)
        }
    }
}

/// The per-packet fast path of [`receive`] followed by [`Verifier::push`], for the common
/// case: a fragment other than fragment 0 ([`frame::classify_plain`]) of an image in
/// flight, with that image's sizes, the expected payload length, and not held yet. Counts
/// and holds nothing (it may keep the frame's header line as its image's template, which
/// changes no outcome); `None` for every other frame, which the caller gives to `receive`
/// and `push`. For every frame it accepts, [`Plain::accept`] has the outcome and
/// the counts that `receive` and `push` would have had.
#[inline(always)]
pub fn receive_plain<'v, H>(
    verifier: &'v mut Verifier<H>,
    frame: &[u8],
    is_our_port: impl Fn(u16) -> bool,
) -> Option<Plain<'v, H>> {
    if let Some(placed) = verifier.template_slot(frame, &is_our_port) {
        return Some(Plain { verifier, placed });
    }
    let (source, header, payload) = frame::classify_plain(frame, &is_our_port)?;
    let slot = verifier.accepting_slot(source, &header, payload.len())?;
    verifier.learn_template(slot, frame, &is_our_port);
    Some(Plain {
        verifier,
        placed: Placed {
            slot,
            index: header.index,
            in_turn: false,
            payload,
        },
    })
}
