//! Helpers shared by the integration tests: scratch paths, running the binary, and
//! reassembling a capture with `netml_wire::frame::classify`.
#![allow(dead_code)]

use netml_wire::checksum::tensor_crc32;
use netml_wire::fragment::DescriptorRepr;
use netml_wire::frame::{classify, Classified};
use netml_wire::pcap;
use netml_wire::Error as WireError;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pktgen-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary; panics with its stderr if it fails.
pub fn pktgen(args: &[&str]) -> Output {
    let out = pktgen_raw(args);
    assert!(
        out.status.success(),
        "netml-pktgen {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the binary, whatever its exit status.
pub fn pktgen_raw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netml-pktgen"))
        .args(args)
        .output()
        .unwrap()
}

/// A result message's bytes, as the pipeline would send it.
pub fn result_message(r: netml_wire::result::Repr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
}

/// Parses a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Reads every line of a manifest as JSON.
pub fn manifest(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A manifest line's image key, as in [`Capture::images`]: (src, model, image id).
pub fn manifest_key(e: &serde_json::Value) -> (SocketAddr, u8, u32) {
    (
        e["src"].as_str().unwrap().parse().unwrap(),
        e["model"].as_u64().unwrap() as u8,
        e["image"].as_u64().unwrap() as u32,
    )
}

/// One image as seen in a capture.
#[derive(Debug, Default)]
pub struct Seen {
    /// Payload per fragment index (every copy must be identical).
    pub pieces: BTreeMap<u16, Vec<u8>>,
    /// Fragment count from the headers.
    pub count: u16,
    /// Total bytes from the headers.
    pub total: u32,
    /// The descriptor, if fragment 0 arrived intact.
    pub descriptor: Option<DescriptorRepr>,
    /// pcap timestamp of the first intact copy of fragment 0.
    pub ts0: Option<u64>,
}

impl Seen {
    /// The reassembled tensor, if every fragment arrived.
    pub fn tensor(&self) -> Option<Vec<u8>> {
        if self.pieces.len() != self.count as usize {
            return None;
        }
        let mut out = Vec::with_capacity(self.total as usize);
        for p in self.pieces.values() {
            out.extend_from_slice(p);
        }
        Some(out)
    }

    /// CRC-32 of the reassembled tensor.
    pub fn crc32(&self) -> Option<u32> {
        self.tensor().map(|t| tensor_crc32([t.as_slice()]))
    }
}

/// What classifying every frame of a capture found.
#[derive(Debug, Default)]
pub struct Capture {
    /// Records in the file.
    pub records: u64,
    /// Frames classified as valid fragments.
    pub fragments: u64,
    /// Frames rejected as truncated.
    pub truncated: u64,
    /// Frames rejected for a bad header checksum.
    pub checksum: u64,
    /// Anything else (should stay zero).
    pub other: u64,
    /// Images by (src, model, image id).
    pub images: BTreeMap<(SocketAddr, u8, u32), Seen>,
    /// Timestamps of the records, in file order.
    pub timestamps: Vec<u64>,
}

/// Classifies and reassembles every frame of a pcap file.
pub fn read_capture(path: &Path, port: u16) -> Capture {
    let r = pcap::Reader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut c = Capture::default();
    for rec in r {
        let rec = rec.unwrap();
        c.records += 1;
        c.timestamps.push(rec.timestamp_ns);
        match classify(&rec.data, |p| p == port) {
            Classified::Fragment {
                source,
                header,
                payload,
            } => {
                c.fragments += 1;
                assert_eq!(Some(payload.len()), header.expected_payload_len());
                let seen = c
                    .images
                    .entry((source.into(), header.model, header.image))
                    .or_default();
                seen.count = header.count;
                seen.total = header.total_bytes;
                let bytes = rec.data[payload].to_vec();
                if let Some(prev) = seen.pieces.get(&header.index) {
                    assert_eq!(prev, &bytes, "duplicate copies differ");
                }
                seen.pieces.insert(header.index, bytes);
                if let Some(d) = header.descriptor {
                    if let Some(prev) = seen.descriptor {
                        assert_eq!(prev, d, "duplicate descriptors differ");
                    } else {
                        seen.descriptor = Some(d);
                        seen.ts0 = Some(rec.timestamp_ns);
                    }
                }
            }
            Classified::Invalid(WireError::Truncated) => c.truncated += 1,
            Classified::Invalid(WireError::Checksum) => c.checksum += 1,
            other => {
                eprintln!("unexpected classification: {other:?}");
                c.other += 1;
            }
        }
    }
    c
}
