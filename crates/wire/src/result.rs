//! The result message the pipeline sends back to a sender for every image.

use crate::{be16, be32, be64, put16, put32, put64, Error, Result};

mod field {
    pub const MAGIC: usize = 0;
    pub const VER_FLAGS: usize = 2;
    pub const MODEL: usize = 3;
    pub const IMAGE: usize = 4;
    pub const STATUS: usize = 8;
    pub const K: usize = 9;
    pub const ARRIVED: usize = 10;
    pub const CRC: usize = 12;
    pub const TIMESTAMP: usize = 16;
    pub const STAGES: usize = 24;
    pub const TOP_K: usize = 72;
}

/// "NR": the first two bytes of every result message.
pub const MAGIC: u16 = 0x4e52;
/// Result message version.
pub const VERSION: u8 = 1;
/// Length of the fixed part, before the top-k entries.
pub const HEADER_LEN: usize = field::TOP_K;
/// Bytes per top-k entry (class id u32, score f32).
pub const ENTRY_LEN: usize = 8;
/// Most top-k entries a result carries.
pub const MAX_TOP_K: usize = 32;

/// Pipeline stages whose timestamps (ns, pipeline clock, 0 = not reached) a result carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// First fragment of the image received.
    RxFirst = 0,
    /// Last fragment received: the image is complete.
    RxComplete = 1,
    /// Image handed to its inference function's batch.
    Dispatched = 2,
    /// Image bytes in the (GPU or host) batch buffer.
    Ingested = 3,
    /// Inference finished.
    Inferred = 4,
    /// Result sent.
    Sent = 5,
}

/// Number of [`Stage`]s.
pub const STAGES: usize = 6;

/// What happened to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Inference ran; top-k holds its answer (or, on a receiver serving no inference
    /// function, the image was gathered and `crc32` is its CRC).
    Ok = 0,
    /// Admission control or backpressure dropped the image: it could not have finished inside
    /// its function's latency SLO.
    Overloaded = 1,
    /// No inference function serves the image's `model`.
    UnknownModel = 2,
    /// Its inference function failed (engine error, stalled or failed instance).
    Failed = 3,
    /// The tensor's dtype, layout or shape cannot feed the model (or it exceeds the batch
    /// slot's image size).
    ShapeMismatch = 4,
    /// The receiver gave up on the image before all its fragments arrived (timeout or table
    /// pressure); `arrived` says how many it had.
    Incomplete = 5,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::Overloaded,
        Status::UnknownModel,
        Status::Failed,
        Status::ShapeMismatch,
        Status::Incomplete,
    ];

    /// The status with code `v`, if there is one.
    pub fn from_u8(v: u8) -> Option<Status> {
        Status::ALL.get(v as usize).copied()
    }

    /// The name docs/protocol.md gives it (`ok`, `unknown_model`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Overloaded => "overloaded",
            Status::UnknownModel => "unknown_model",
            Status::Failed => "failed",
            Status::ShapeMismatch => "shape_mismatch",
            Status::Incomplete => "incomplete",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A read view of a result message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer (a UDP payload) without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Checks that the fixed part and the declared top-k entries fit.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < HEADER_LEN + ENTRY_LEN * b[field::K] as usize {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// Magic number.
    pub fn magic(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MAGIC)
    }
    /// Version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] >> 4
    }
    /// Model id.
    pub fn model(&self) -> u8 {
        self.buffer.as_ref()[field::MODEL]
    }
    /// Image id.
    pub fn image(&self) -> u32 {
        be32(self.buffer.as_ref(), field::IMAGE)
    }
    /// Raw status code.
    pub fn status(&self) -> u8 {
        self.buffer.as_ref()[field::STATUS]
    }
    /// Fragments the receiver had of an `incomplete` image (0 for every other status).
    pub fn arrived(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ARRIVED)
    }
    /// Number of top-k entries.
    pub fn k(&self) -> u8 {
        self.buffer.as_ref()[field::K]
    }
    /// CRC-32 of the tensor as the pipeline reassembled it.
    pub fn crc32(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CRC)
    }
    /// The sender timestamp, echoed.
    pub fn sender_timestamp(&self) -> u64 {
        be64(self.buffer.as_ref(), field::TIMESTAMP)
    }
    /// Timestamp of a stage.
    pub fn stage(&self, s: Stage) -> u64 {
        be64(self.buffer.as_ref(), field::STAGES + 8 * s as usize)
    }
    /// Top-k entry `i` as (class id, score).
    pub fn entry(&self, i: usize) -> (u32, f32) {
        let at = field::TOP_K + ENTRY_LEN * i;
        let b = self.buffer.as_ref();
        (be32(b, at), f32::from_bits(be32(b, at + 4)))
    }
}

/// The plain values of a result message.
#[derive(Debug, Clone, PartialEq)]
pub struct Repr {
    /// Model id.
    pub model: u8,
    /// Image id.
    pub image: u32,
    /// Outcome.
    pub status: Status,
    /// Fragments received of an `incomplete` image; 0 otherwise.
    pub arrived: u16,
    /// CRC-32 of the reassembled tensor.
    pub crc32: u32,
    /// Sender timestamp from the image's descriptor.
    pub sender_timestamp: u64,
    /// Per-stage timestamps, indexed by [`Stage`].
    pub stages: [u64; STAGES],
    /// Top-k (class id, score), best first; at most [`MAX_TOP_K`].
    pub top_k: Vec<(u32, f32)>,
}

impl Repr {
    /// Parses a result message.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.magic() != MAGIC || p.version() != VERSION {
            return Err(Error::Unrecognized);
        }
        p.check_len()?;
        let status = Status::from_u8(p.status()).ok_or(Error::Malformed)?;
        if p.k() as usize > MAX_TOP_K {
            return Err(Error::Malformed);
        }
        let mut stages = [0; STAGES];
        for (i, s) in stages.iter_mut().enumerate() {
            *s = be64(p.buffer.as_ref(), field::STAGES + 8 * i);
        }
        Ok(Repr {
            model: p.model(),
            image: p.image(),
            status,
            arrived: p.arrived(),
            crc32: p.crc32(),
            sender_timestamp: p.sender_timestamp(),
            stages,
            top_k: (0..p.k() as usize).map(|i| p.entry(i)).collect(),
        })
    }

    /// Bytes the message occupies.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + ENTRY_LEN * self.top_k.len().min(MAX_TOP_K)
    }

    /// Writes the message into `buf` (at least `buffer_len()` bytes); extra top-k entries
    /// beyond [`MAX_TOP_K`] are not sent.
    pub fn emit(&self, buf: &mut [u8]) {
        let k = self.top_k.len().min(MAX_TOP_K);
        put16(buf, field::MAGIC, MAGIC);
        buf[field::VER_FLAGS] = VERSION << 4;
        buf[field::MODEL] = self.model;
        put32(buf, field::IMAGE, self.image);
        buf[field::STATUS] = self.status as u8;
        buf[field::K] = k as u8;
        put16(buf, field::ARRIVED, self.arrived);
        put32(buf, field::CRC, self.crc32);
        put64(buf, field::TIMESTAMP, self.sender_timestamp);
        for (i, s) in self.stages.iter().enumerate() {
            put64(buf, field::STAGES + 8 * i, *s);
        }
        for (i, (class, score)) in self.top_k.iter().take(k).enumerate() {
            let at = field::TOP_K + ENTRY_LEN * i;
            put32(buf, at, *class);
            put32(buf, at + 4, score.to_bits());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal() -> Vec<u8> {
        let mut b = vec![
            0x4e, 0x52, 0x10, 0x03, 0, 0, 0, 42, 0, 1, 0, 0, 0xca, 0xfe, 0xba, 0xbe, //
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,
        ];
        for s in 1..=6u64 {
            b.extend_from_slice(&(s * 100).to_be_bytes());
        }
        b.extend_from_slice(&[0, 0, 0x01, 0x2c]);
        b.extend_from_slice(&0.5f32.to_bits().to_be_bytes());
        b
    }

    fn repr() -> Repr {
        Repr {
            model: 3,
            image: 42,
            status: Status::Ok,
            arrived: 0,
            crc32: 0xcafe_babe,
            sender_timestamp: 1000,
            stages: [100, 200, 300, 400, 500, 600],
            top_k: vec![(300, 0.5)],
        }
    }

    #[test]
    fn parse_literal() {
        let b = literal();
        let p = Packet::new_unchecked(&b[..]);
        assert_eq!(Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.stage(Stage::Sent), 600);
    }

    #[test]
    fn emit_matches_literal() {
        let r = repr();
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!(out, literal());
    }

    #[test]
    fn incomplete_carries_arrived() {
        let r = Repr {
            status: Status::Incomplete,
            arrived: 0x0102,
            top_k: Vec::new(),
            ..repr()
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!((out[8], out[10], out[11]), (5, 0x01, 0x02));
        assert_eq!(Repr::parse(&Packet::new_unchecked(&out[..])).unwrap(), r);
    }

    #[test]
    fn status_codes_and_names() {
        for (code, s) in Status::ALL.iter().enumerate() {
            assert_eq!(Status::from_u8(code as u8), Some(*s));
        }
        assert_eq!(Status::from_u8(6), None);
        assert_eq!(Status::ShapeMismatch.name(), "shape_mismatch");
    }

    #[test]
    fn rejections() {
        let b = literal();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..79])),
            Err(Error::Truncated)
        );
        let mut bad = b.clone();
        bad[1] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Unrecognized)
        );
        let mut bad = b.clone();
        bad[8] = 6;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
    }
}
