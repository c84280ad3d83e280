//! The tensor fragment protocol (docs/protocol.md is the normative text).
//!
//! Every fragment carries a 22-byte header ([`Packet`], [`Repr`]) right after UDP, so that
//! for untagged IPv4 without options Ethernet (14) + IPv4 (20) + UDP (8) + header (22) is
//! exactly 64 bytes and the payload starts 64-byte aligned in a DPDK mbuf. Fragment 0
//! additionally carries a 64-byte [`Descriptor`] (shape, dtype, layout, sender timestamp,
//! tensor CRC) between the header and its payload, which keeps that alignment.

use crate::{be16, be32, be64, checksum, put16, put32, put64, Error, Result};

pub(crate) mod field {
    pub const MAGIC: usize = 0;
    pub const VER_FLAGS: usize = 2;
    pub const MODEL: usize = 3;
    pub const IMAGE: usize = 4;
    pub const INDEX: usize = 8;
    pub const COUNT: usize = 10;
    pub const FRAG_SIZE: usize = 12;
    pub const TOTAL: usize = 14;
    pub const CHECKSUM: usize = 18;
    pub const RESERVED: usize = 20;
    pub const END: usize = 22;

    /// Offsets inside the descriptor block.
    pub mod desc {
        use core::ops::Range;
        pub const DTYPE: usize = 0;
        pub const LAYOUT: usize = 1;
        pub const RANK: usize = 2;
        pub const DIMS: usize = 4;
        pub const TIMESTAMP: usize = 28;
        pub const CRC: usize = 36;
        pub const RESERVED: Range<usize> = 40..64;
        pub const END: usize = 64;
    }
}

/// "NM": the first two bytes of every fragment.
pub const MAGIC: u16 = 0x4e4d;
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the fragment header.
pub const HEADER_LEN: usize = field::END;
/// Length of the tensor descriptor block carried by fragment 0.
pub const DESCRIPTOR_LEN: usize = field::desc::END;
/// Most dimensions a tensor descriptor holds.
pub const MAX_RANK: usize = 6;

/// Flag bits (low nibble of byte 2).
pub mod flags {
    /// A [`super::Descriptor`] follows the header (set on fragment 0, and only there).
    pub const DESCRIPTOR: u8 = 0x1;
    /// Bits a version-1 receiver knows; any other bit makes the fragment unrecognized.
    pub const KNOWN: u8 = DESCRIPTOR;
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dtype {
    /// Unsigned 8-bit integers (e.g. raw image pixels).
    U8 = 1,
    /// IEEE half precision.
    F16 = 2,
    /// IEEE single precision.
    F32 = 3,
}

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
    fn from_u8(v: u8) -> Option<Dtype> {
        Some(match v {
            1 => Dtype::U8,
            2 => Dtype::F16,
            3 => Dtype::F32,
            _ => return None,
        })
    }
}

/// Order of a tensor's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layout {
    /// No image semantics: a flat tensor of any rank.
    Plain = 0,
    /// Batch, channels, height, width (rank 4).
    Nchw = 1,
    /// Batch, height, width, channels (rank 4).
    Nhwc = 2,
}

impl Layout {
    fn from_u8(v: u8) -> Option<Layout> {
        Some(match v {
            0 => Layout::Plain,
            1 => Layout::Nchw,
            2 => Layout::Nhwc,
            _ => return None,
        })
    }
}

/// A read/write view of a fragment (header, optional descriptor, payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer (a UDP payload) without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks that the header, and the descriptor if flagged, fit in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.payload_offset() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Magic number.
    pub fn magic(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MAGIC)
    }
    /// Protocol version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] >> 4
    }
    /// Flag bits.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] & 0x0f
    }
    /// Model (inference function) id.
    pub fn model(&self) -> u8 {
        self.buffer.as_ref()[field::MODEL]
    }
    /// Image id, unique per sender flow and model while the image is in flight.
    pub fn image(&self) -> u32 {
        be32(self.buffer.as_ref(), field::IMAGE)
    }
    /// Index of this fragment in the image.
    pub fn index(&self) -> u16 {
        be16(self.buffer.as_ref(), field::INDEX)
    }
    /// Number of fragments in the image.
    pub fn count(&self) -> u16 {
        be16(self.buffer.as_ref(), field::COUNT)
    }
    /// Nominal payload bytes per fragment (all but the last carry exactly this many).
    pub fn frag_size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAG_SIZE)
    }
    /// Total tensor bytes.
    pub fn total_bytes(&self) -> u32 {
        be32(self.buffer.as_ref(), field::TOTAL)
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Reserved field (zero when sent, ignored when received).
    pub fn reserved(&self) -> u16 {
        be16(self.buffer.as_ref(), field::RESERVED)
    }
    /// Whether a descriptor follows the header.
    pub fn has_descriptor(&self) -> bool {
        self.flags() & flags::DESCRIPTOR != 0
    }
    /// Offset of the payload within the buffer (22, or 86 with a descriptor).
    pub fn payload_offset(&self) -> usize {
        HEADER_LEN
            + if self.has_descriptor() {
                DESCRIPTOR_LEN
            } else {
                0
            }
    }
    /// Whether the checksum over header and descriptor verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(&self.buffer.as_ref()[..self.payload_offset()]) == 0
    }
    /// The descriptor block, if flagged.
    pub fn descriptor(&self) -> Option<Descriptor<&[u8]>> {
        self.has_descriptor().then(|| {
            Descriptor::new_unchecked(&self.buffer.as_ref()[HEADER_LEN..][..DESCRIPTOR_LEN])
        })
    }
    /// The tensor bytes this fragment carries.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_offset()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the checksum over header and descriptor.
    pub fn fill_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let end = self.payload_offset();
        let c = checksum::internet(&self.buffer.as_ref()[..end]);
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
    /// The tensor bytes, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.payload_offset();
        &mut self.buffer.as_mut()[at..]
    }
}

/// A read view of the 64-byte tensor descriptor.
#[derive(Debug, Clone)]
pub struct Descriptor<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Descriptor<T> {
    /// Wraps a buffer of at least [`DESCRIPTOR_LEN`] bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Descriptor { buffer }
    }
    /// Raw dtype code.
    pub fn dtype(&self) -> u8 {
        self.buffer.as_ref()[field::desc::DTYPE]
    }
    /// Raw layout code.
    pub fn layout(&self) -> u8 {
        self.buffer.as_ref()[field::desc::LAYOUT]
    }
    /// Number of dimensions.
    pub fn rank(&self) -> u8 {
        self.buffer.as_ref()[field::desc::RANK]
    }
    /// Dimension `i` (< [`MAX_RANK`]).
    pub fn dim(&self, i: usize) -> u32 {
        be32(self.buffer.as_ref(), field::desc::DIMS + 4 * i)
    }
    /// Sender timestamp in nanoseconds (sender's clock), echoed in results.
    pub fn timestamp(&self) -> u64 {
        be64(self.buffer.as_ref(), field::desc::TIMESTAMP)
    }
    /// CRC-32 of the whole tensor.
    pub fn crc32(&self) -> u32 {
        be32(self.buffer.as_ref(), field::desc::CRC)
    }
}

/// The plain values of a tensor descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DescriptorRepr {
    /// Element type.
    pub dtype: Dtype,
    /// Dimension order.
    pub layout: Layout,
    /// Number of dimensions used in `dims`.
    pub rank: u8,
    /// Dimensions; entries past `rank` are zero.
    pub dims: [u32; MAX_RANK],
    /// Sender timestamp (ns).
    pub timestamp: u64,
    /// CRC-32 (IEEE) of the tensor bytes.
    pub crc32: u32,
}

impl DescriptorRepr {
    /// Builds a descriptor for `shape` (at most [`MAX_RANK`] dims).
    pub fn new(dtype: Dtype, layout: Layout, shape: &[u32], timestamp: u64, crc32: u32) -> Self {
        assert!(
            !shape.is_empty() && shape.len() <= MAX_RANK,
            "tensor rank must be 1..=6"
        );
        let mut dims = [0; MAX_RANK];
        dims[..shape.len()].copy_from_slice(shape);
        DescriptorRepr {
            dtype,
            layout,
            rank: shape.len() as u8,
            dims,
            timestamp,
            crc32,
        }
    }

    /// The used dimensions.
    pub fn shape(&self) -> &[u32] {
        &self.dims[..self.rank as usize]
    }

    /// Bytes the tensor occupies (`None` if it overflows).
    pub fn byte_len(&self) -> Option<u64> {
        self.shape()
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            })
    }

    /// Parses a descriptor; the shape must describe exactly `total_bytes`.
    pub fn parse<T: AsRef<[u8]>>(d: &Descriptor<T>, total_bytes: u32) -> Result<Self> {
        let dtype = Dtype::from_u8(d.dtype()).ok_or(Error::Malformed)?;
        let layout = Layout::from_u8(d.layout()).ok_or(Error::Malformed)?;
        let rank = d.rank();
        if rank == 0 || rank as usize > MAX_RANK || (layout != Layout::Plain && rank != 4) {
            return Err(Error::Malformed);
        }
        let mut dims = [0; MAX_RANK];
        for (i, slot) in dims.iter_mut().enumerate().take(rank as usize) {
            *slot = d.dim(i);
        }
        let r = DescriptorRepr {
            dtype,
            layout,
            rank,
            dims,
            timestamp: d.timestamp(),
            crc32: d.crc32(),
        };
        if r.byte_len() != Some(total_bytes as u64) {
            return Err(Error::Malformed);
        }
        Ok(r)
    }

    fn emit(&self, b: &mut [u8]) {
        use field::desc;
        b[..DESCRIPTOR_LEN].fill(0);
        b[desc::DTYPE] = self.dtype as u8;
        b[desc::LAYOUT] = self.layout as u8;
        b[desc::RANK] = self.rank;
        for (i, &d) in self.dims.iter().enumerate() {
            put32(b, desc::DIMS + 4 * i, d);
        }
        put64(b, desc::TIMESTAMP, self.timestamp);
        put32(b, desc::CRC, self.crc32);
        debug_assert!(b[desc::RESERVED].iter().all(|&x| x == 0));
    }
}

/// The plain values of a fragment header (and fragment 0's descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Model (inference function) id.
    pub model: u8,
    /// Image id.
    pub image: u32,
    /// Fragment index.
    pub index: u16,
    /// Fragments in the image.
    pub count: u16,
    /// Nominal payload bytes per fragment.
    pub frag_size: u16,
    /// Total tensor bytes.
    pub total_bytes: u32,
    /// The descriptor: present on fragment 0 and only there.
    pub descriptor: Option<DescriptorRepr>,
}

/// The fixed header's fields as read, before any check.
struct Fixed {
    magic: u16,
    version: u8,
    flags: u8,
    model: u8,
    image: u32,
    index: u16,
    count: u16,
    frag_size: u16,
    total_bytes: u32,
}

impl Fixed {
    #[inline(always)]
    fn read(h: &[u8; HEADER_LEN]) -> Fixed {
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        Fixed {
            magic: be16(field::MAGIC),
            version: h[field::VER_FLAGS] >> 4,
            flags: h[field::VER_FLAGS] & 0x0f,
            model: h[field::MODEL],
            image: be32(field::IMAGE),
            index: be16(field::INDEX),
            count: be16(field::COUNT),
            frag_size: be16(field::FRAG_SIZE),
            total_bytes: be32(field::TOTAL),
        }
    }

    /// Our magic and version, and no flag this version does not know.
    #[inline(always)]
    fn recognized(&self) -> bool {
        self.magic == MAGIC && self.version == VERSION && self.flags & !flags::KNOWN == 0
    }
}

/// Number of fragments a tensor of `total_bytes` needs at `frag_size` bytes each.
pub fn fragment_count(total_bytes: u64, frag_size: u16) -> u64 {
    total_bytes.div_ceil(frag_size.max(1) as u64)
}

impl Repr {
    /// Parses a fragment: magic, version, flags, checksum, sizes and the descriptor.
    ///
    /// Checks everything one fragment can say about itself except the range of its index
    /// and its payload length, which are properties of the fragment within its image and
    /// are counted by the verifier (see [`Repr::expected_payload_len`]).
    // Always inlined: returned through memory, its fields cost store-forwarding stalls on
    // the per-packet path; inlined, the fields stay in registers.
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let b = p.buffer.as_ref();
        // Every field below is read from this fixed-size view: no bounds check per field.
        let Some(h) = b.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let f = Fixed::read(h);
        if !f.recognized() {
            return Err(Error::Unrecognized);
        }
        let with_descriptor = f.flags & flags::DESCRIPTOR != 0;
        let verifies = if with_descriptor {
            let Some(hd) = b.first_chunk::<{ HEADER_LEN + DESCRIPTOR_LEN }>() else {
                return Err(Error::Truncated);
            };
            checksum::verifies(hd)
        } else {
            checksum::verifies(h)
        };
        if !verifies {
            return Err(Error::Checksum);
        }
        let (count, frag_size, total) = (f.count, f.frag_size, f.total_bytes);
        if count == 0 || frag_size == 0 || total == 0 {
            return Err(Error::Malformed);
        }
        // count == ceil(total / frag_size), without a division on the per-packet path.
        let (n, size, total64) = (count as u64, frag_size as u64, total as u64);
        if (n - 1) * size >= total64 || n * size < total64 {
            return Err(Error::Malformed);
        }
        if with_descriptor != (f.index == 0) {
            return Err(Error::Malformed);
        }
        let descriptor = match p.descriptor() {
            Some(d) => Some(Self::parse_descriptor(&d, total)?),
            None => None,
        };
        Ok(Repr {
            model: f.model,
            image: f.image,
            index: f.index,
            count,
            frag_size,
            total_bytes: total,
            descriptor,
        })
    }

    /// The fast path's parse, for a caller that already holds this fragment's image with
    /// its sizes checked: the header of a fragment other than fragment 0 (no descriptor,
    /// no flag, index not 0) with a valid checksum, its fields as read. `None` for anything
    /// else, which the caller then gives to [`Repr::parse`] for the verdict.
    ///
    /// It does not check `count`, `frag_size` and `total_bytes` against each other: what it
    /// returns is a fragment that [`Repr::parse`] accepts (with the same fields) exactly
    /// when those three equal the sizes of a header that `Repr::parse` accepted.
    #[inline(always)]
    pub fn parse_plain(h: &[u8; HEADER_LEN]) -> Option<Repr> {
        let f = Fixed::read(h);
        if !f.recognized() || f.flags != 0 || f.index == 0 || !checksum::verifies(h) {
            return None;
        }
        Some(Repr {
            model: f.model,
            image: f.image,
            index: f.index,
            count: f.count,
            frag_size: f.frag_size,
            total_bytes: f.total_bytes,
            descriptor: None,
        })
    }

    /// Fragment 0's descriptor: once per image, kept out of line so that [`Repr::parse`]
    /// stays small enough to inline into the per-packet loop.
    #[cold]
    #[inline(never)]
    fn parse_descriptor(d: &Descriptor<&[u8]>, total: u32) -> Result<DescriptorRepr> {
        DescriptorRepr::parse(d, total)
    }

    /// Payload bytes fragment `index` must carry, or `None` if the index is out of range.
    pub fn expected_payload_len(&self) -> Option<usize> {
        let (i, n, size) = (self.index as u64, self.count as u64, self.frag_size as u64);
        if i >= n {
            None
        } else if i + 1 < n {
            Some(size as usize)
        } else {
            // A parsed header always has room for the last fragment; a hand-built one may not.
            (self.total_bytes as u64)
                .checked_sub(size * (n - 1))
                .map(|l| l as usize)
        }
    }

    /// Byte offset of this fragment's payload in the reassembled tensor.
    pub fn tensor_offset(&self) -> usize {
        self.index as usize * self.frag_size as usize
    }

    /// Header plus descriptor length.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
            + if self.descriptor.is_some() {
                DESCRIPTOR_LEN
            } else {
                0
            }
    }

    /// Writes header and descriptor (with checksum) at the start of `p`; the payload is the
    /// caller's to write after `header_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        put16(b, field::MAGIC, MAGIC);
        let fl = if self.descriptor.is_some() {
            flags::DESCRIPTOR
        } else {
            0
        };
        b[field::VER_FLAGS] = VERSION << 4 | fl;
        b[field::MODEL] = self.model;
        put32(b, field::IMAGE, self.image);
        put16(b, field::INDEX, self.index);
        put16(b, field::COUNT, self.count);
        put16(b, field::FRAG_SIZE, self.frag_size);
        put32(b, field::TOTAL, self.total_bytes);
        put16(b, field::RESERVED, 0);
        if let Some(d) = &self.descriptor {
            d.emit(&mut b[HEADER_LEN..]);
        }
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fragment 1 of 3 of image 0x01020304 for model 7: 16-byte fragments, 40 bytes total.
    static MIDDLE: [u8; 22 + 16] = [
        0x4e, 0x4d, 0x10, 0x07, 0x01, 0x02, 0x03, 0x04, 0x00, 0x01, 0x00, 0x03, 0x00, 0x10, 0x00,
        0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, //
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    ];

    fn middle() -> Vec<u8> {
        let mut b = MIDDLE.to_vec();
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    fn first() -> (Repr, Vec<u8>) {
        let d = DescriptorRepr::new(Dtype::U8, Layout::Nhwc, &[1, 2, 4, 5], 99, 0xdead_beef);
        let r = Repr {
            model: 7,
            image: 0x0102_0304,
            index: 0,
            count: 3,
            frag_size: 16,
            total_bytes: 40,
            descriptor: Some(d),
        };
        let mut b = vec![0u8; r.header_len() + 16];
        r.emit(&mut Packet::new_unchecked(&mut b[..]));
        (r, b)
    }

    #[test]
    fn literal_checksum() {
        // Words: 4e4d 1007 0102 0304 0001 0003 0010 0000 0028 -> sum 0x6296, checksum 0x9d69.
        assert_eq!(&middle()[18..20], &[0x9d, 0x69]);
    }

    #[test]
    fn parse_middle_fragment() {
        let b = middle();
        let p = Packet::new_unchecked(&b[..]);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                model: 7,
                image: 0x0102_0304,
                index: 1,
                count: 3,
                frag_size: 16,
                total_bytes: 40,
                descriptor: None
            }
        );
        assert_eq!(r.expected_payload_len(), Some(16));
        assert_eq!(r.tensor_offset(), 16);
        assert_eq!(p.payload(), &MIDDLE[22..]);
    }

    #[test]
    fn first_fragment_round_trips_with_descriptor() {
        let (r, b) = first();
        assert_eq!(b.len(), 22 + 64 + 16);
        assert_eq!(b[2], 0x11);
        let p = Packet::new_unchecked(&b[..]);
        assert_eq!(p.payload_offset(), 86);
        assert_eq!(Repr::parse(&p).unwrap(), r);
        let d = r.descriptor.unwrap();
        assert_eq!((d.shape(), d.byte_len()), (&[1, 2, 4, 5][..], Some(40)));
        // Descriptor bytes as the spec lays them out.
        assert_eq!(&b[22..30], &[1, 2, 4, 0, 0, 0, 0, 1]);
        assert_eq!(&b[50..58], &99u64.to_be_bytes());
        assert_eq!(&b[58..62], &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn last_fragment_length() {
        let mut b = middle();
        b[9] = 2;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let r = Repr::parse(&Packet::new_unchecked(&b[..])).unwrap();
        assert_eq!(r.expected_payload_len(), Some(8));
        let mut b = middle();
        b[9] = 3;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..]))
                .unwrap()
                .expected_payload_len(),
            None
        );
    }

    #[test]
    fn rejections() {
        let b = middle();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..21])),
            Err(Error::Truncated)
        );
        let mut bad = b.clone();
        bad[0] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Unrecognized)
        );
        let mut bad = b.clone();
        bad[2] = 0x20;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Unrecognized)
        );
        let mut bad = b.clone();
        bad[2] = 0x12;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Unrecognized)
        );
        let mut bad = b.clone();
        bad[7] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Checksum)
        );
        // count disagrees with total / frag_size
        let mut bad = b.clone();
        bad[11] = 4;
        Packet::new_unchecked(&mut bad[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
        // descriptor flag on a non-first fragment (and long enough to hold one)
        let mut bad = b.clone();
        bad.resize(22 + 64, 0);
        bad[2] = 0x11;
        Packet::new_unchecked(&mut bad[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bad[..])),
            Err(Error::Malformed)
        );
        // first fragment truncated inside its descriptor
        let (_, f) = first();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&f[..60])),
            Err(Error::Truncated)
        );
        // shape that does not describe total_bytes
        let (_, mut f) = first();
        f[22 + 7] = 2;
        Packet::new_unchecked(&mut f[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&f[..])),
            Err(Error::Malformed)
        );
    }
}
