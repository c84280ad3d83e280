//! A handle that records when it is freed, and helpers that fragment tensors.
#![allow(dead_code)]

use netml_verify::Fragment;
use netml_wire::fragment::{self, DescriptorRepr, Dtype, Layout};
use netml_wire::source::Source;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

/// Which handles exist and which were freed; freeing one twice panics.
#[derive(Default)]
pub struct Ledger {
    pub created: u64,
    pub freed: HashSet<u64>,
}

pub type SharedLedger = Rc<RefCell<Ledger>>;

/// A packet stand-in that owns its payload and reports its drop to the ledger.
pub struct Tracked {
    pub id: u64,
    pub payload: Vec<u8>,
    ledger: SharedLedger,
}

impl Tracked {
    /// A new handle owning `payload`, counted as created in `ledger`.
    pub fn new(ledger: &SharedLedger, payload: Vec<u8>) -> Tracked {
        let id = {
            let mut l = ledger.borrow_mut();
            l.created += 1;
            l.created
        };
        Tracked {
            id,
            payload,
            ledger: ledger.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(
            self.ledger.borrow_mut().freed.insert(self.id),
            "handle {} freed twice",
            self.id
        );
    }
}

pub fn alive(l: &SharedLedger) -> u64 {
    let l = l.borrow();
    l.created - l.freed.len() as u64
}

pub fn source(port: u16) -> Source {
    Source::v4([10, 0, 0, 1], port)
}

pub fn tensor(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Cuts `data` into fragments of image `image` from `port`, each with a tracked handle.
pub fn fragments(
    ledger: &SharedLedger,
    port: u16,
    image: u32,
    data: &[u8],
    frag_size: u16,
) -> Vec<Fragment<Tracked>> {
    let count = fragment::fragment_count(data.len() as u64, frag_size) as u16;
    let desc = DescriptorRepr::new(
        Dtype::U8,
        Layout::Plain,
        &[data.len() as u32],
        1_000 + image as u64,
        netml_wire::checksum::tensor_crc32([data]),
    );
    (0..count)
        .map(|index| {
            let header = fragment::Repr {
                model: 1,
                image,
                index,
                count,
                frag_size,
                total_bytes: data.len() as u32,
                descriptor: (index == 0).then_some(desc),
            };
            let at = header.tensor_offset();
            let payload = data[at..at + header.expected_payload_len().unwrap()].to_vec();
            Fragment {
                source: source(port),
                header,
                payload_len: payload.len(),
                handle: Tracked::new(ledger, payload),
            }
        })
        .collect()
}

/// A copy of a fragment with a fresh handle (a duplicate on the wire).
pub fn duplicate(ledger: &SharedLedger, f: &Fragment<Tracked>) -> Fragment<Tracked> {
    Fragment {
        source: f.source,
        header: f.header,
        payload_len: f.payload_len,
        handle: Tracked::new(ledger, f.handle.payload.clone()),
    }
}

pub fn concat(img: &netml_verify::Image<Tracked>) -> Vec<u8> {
    img.fragments
        .iter()
        .flat_map(|t| t.payload.iter().copied())
        .collect()
}
