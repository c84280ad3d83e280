//! Feeds arbitrary bytes to the receive-side parsers of netml-wire.
//!
//! - `frame::classify` (as if every port were ours, and as if only 9000 were): for a
//!   fragment, its ranges must lie inside the input and agree with each other, and the
//!   header must re-parse from the bytes they point at;
//! - `frame::classify_plain` (the per-packet fast path): whatever it takes, `classify` takes
//!   as the same fragment, or finds malformed (the sizes, which it leaves to its caller);
//! - `template::Template::of` (the fast path's first try): a frame it makes a template of is
//!   one `classify_plain` takes, and the template matches it with its own index;
//! - `result::Repr::parse` over the same bytes (as a UDP payload);
//! - `pcap::Reader` over the same bytes (as a capture file).
//!
//! Any panic is a bug in netml-wire (parsing must never panic; see docs/protocol.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use netml_wire::frame::{self, Classified};
use netml_wire::template::Template;
use netml_wire::{fragment, pcap, result};

fn check_fragment(data: &[u8], c: &Classified) {
    let Classified::Fragment {
        source,
        header,
        payload,
    } = c
    else {
        return;
    };
    // A fragment is a UDP datagram the general parser locates too, from the same sender.
    let datagram = frame::parse_udp(data)
        .expect("a fragment parses as UDP")
        .expect("a fragment is UDP");
    assert_eq!(&datagram.src, source);
    let udp = datagram.payload.clone();
    assert!(
        udp.start <= udp.end && udp.end <= data.len(),
        "{udp:?} vs {}",
        data.len()
    );
    assert!(
        payload.start <= payload.end && payload.end <= data.len(),
        "{payload:?} vs {}",
        data.len()
    );
    assert_eq!(payload.start, udp.start + header.header_len());
    assert_eq!(payload.end, udp.end);
    let reparsed = fragment::Repr::parse(&fragment::Packet::new_unchecked(&data[udp]));
    assert_eq!(reparsed, Ok(*header));
    assert_eq!(header.descriptor.is_some(), header.index == 0);
    assert_eq!(
        fragment::fragment_count(header.total_bytes as u64, header.frag_size),
        header.count as u64
    );
    if let Some(d) = header.descriptor {
        assert_eq!(d.byte_len(), Some(header.total_bytes as u64));
    }
    if let Some(n) = header.expected_payload_len() {
        assert!(n >= 1 && n <= header.frag_size as usize);
        assert!(header.tensor_offset() + n <= header.total_bytes as usize);
    }
    // The payload slice itself is readable.
    let _ = data[payload.clone()].iter().fold(0u8, |a, &b| a ^ b);
}

fuzz_target!(|data: &[u8]| {
    let all = frame::classify(data, |_| true);
    check_fragment(data, &all);
    if let Some((source, header, payload)) = frame::classify_plain(data, |_| true) {
        match &all {
            Classified::Fragment {
                source: s,
                header: h,
                payload: p,
            } => assert_eq!((s, h, p), (&source, &header, &payload)),
            Classified::Invalid(netml_wire::Error::Malformed) => {}
            other => panic!("classify_plain took a frame that classify calls {other:?}"),
        }
    }
    if let Some(t) = Template::of(data, |_| true) {
        let (_, header, payload) = frame::classify_plain(data, |_| true).expect("plain");
        assert_eq!(t.matches(data, |_| true), Some(header.index));
        assert_eq!(t.payload(), payload);
    }
    let one = frame::classify(data, |p| p == 9000);
    check_fragment(data, &one);
    if let Ok(Some(d)) = frame::parse_udp(data) {
        assert!(d.payload.start <= d.payload.end && d.payload.end <= data.len());
    }

    if let Ok(r) = result::Repr::parse(&result::Packet::new_unchecked(data)) {
        assert!(r.top_k.len() <= result::MAX_TOP_K);
        assert!(result::HEADER_LEN + result::ENTRY_LEN * r.top_k.len() <= data.len());
    }

    if let Ok(reader) = pcap::Reader::new(data) {
        // Each item consumes at least a 16-byte record header, so this terminates; stop at
        // the first error like a careful caller.
        for rec in reader {
            match rec {
                Ok(rec) => assert!(rec.data.len() <= data.len()),
                Err(_) => break,
            }
        }
    }
});
