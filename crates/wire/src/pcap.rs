//! Classic libpcap capture files (the format tcpdump, tshark and tcpreplay read).
//!
//! Reading accepts both byte orders and both microsecond and nanosecond timestamps;
//! writing produces little-endian microsecond files with link type Ethernet, which every
//! tool of that family replays.

use std::io::{self, Read, Write};

/// Link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Records longer than this are treated as a corrupt file rather than allocated.
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Length of the frame on the wire (may exceed `data.len()` if the capture was cut).
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads records from a capture file.
pub struct Reader<R: Read> {
    inner: R,
    swapped: bool,
    nanos: bool,
    /// Set after an error: the stream position is unknown, so nothing more is read.
    failed: bool,
    /// Link type declared in the file header.
    pub linktype: u32,
    /// Snapshot length declared in the file header.
    pub snaplen: u32,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the file header.
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut h = [0u8; FILE_HEADER_LEN];
        inner
            .read_exact(&mut h)
            .map_err(|_| bad("not a pcap file: shorter than its header"))?;
        let magic = u32::from_le_bytes(h[0..4].try_into().unwrap());
        let (swapped, nanos) = match magic {
            MAGIC_MICROS => (false, false),
            MAGIC_NANOS => (false, true),
            m if m.swap_bytes() == MAGIC_MICROS => (true, false),
            m if m.swap_bytes() == MAGIC_NANOS => (true, true),
            _ => return Err(bad(
                "not a classic pcap file (pcapng is not supported; convert with `editcap -F pcap`)",
            )),
        };
        let mut r = Reader {
            inner,
            swapped,
            nanos,
            failed: false,
            linktype: 0,
            snaplen: 0,
        };
        r.snaplen = r.u32_at(&h, 16);
        r.linktype = r.u32_at(&h, 20) & 0x0fff_ffff;
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    /// Reads the next record; `Ok(None)` at a clean end of file. A record cut short by the
    /// end of the file is an error, after which the reader returns `Ok(None)`.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.failed {
            return Ok(None);
        }
        let r = self.read_record();
        self.failed = r.is_err();
        r
    }

    fn read_record(&mut self) -> io::Result<Option<Record>> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.inner, &mut h)? {
            0 => return Ok(None),
            RECORD_HEADER_LEN => {}
            _ => return Err(bad("pcap file ends inside a record header")),
        }
        let (sec, frac) = (self.u32_at(&h, 0) as u64, self.u32_at(&h, 4) as u64);
        let (incl, orig) = (self.u32_at(&h, 8), self.u32_at(&h, 12));
        if incl > MAX_RECORD_LEN {
            return Err(bad("pcap record longer than 256 KiB: corrupt file"));
        }
        let mut data = vec![0u8; incl as usize];
        if read_full(&mut self.inner, &mut data)? != data.len() {
            return Err(bad("pcap file ends inside a record"));
        }
        let timestamp_ns = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(Some(Record {
            timestamp_ns,
            orig_len: orig,
            data,
        }))
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = io::Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes a capture file of Ethernet frames.
pub struct Writer<W: Write> {
    inner: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header (little-endian, microseconds, snaplen 65535, Ethernet).
    pub fn new(mut inner: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(FILE_HEADER_LEN);
        h.extend_from_slice(&MAGIC_MICROS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h)?;
        Ok(Writer { inner })
    }

    /// Appends one frame captured at `timestamp_ns` (rounded down to microseconds).
    pub fn write(&mut self, timestamp_ns: u64, frame: &[u8]) -> io::Result<()> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        let us = timestamp_ns / 1000;
        h[0..4].copy_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(frame)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_the_classic_ones() {
        let w = Writer::new(Vec::new()).unwrap().into_inner().unwrap();
        assert_eq!(
            w,
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn round_trip() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(1_500_000_123_456, &[1, 2, 3]).unwrap();
        w.write(1_500_000_999_999, &[4; 60]).unwrap();
        let bytes = w.into_inner().unwrap();
        let r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.linktype, LINKTYPE_ETHERNET);
        let recs: Vec<_> = r.map(Result::unwrap).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0],
            Record {
                timestamp_ns: 1_500_000_123_000,
                orig_len: 3,
                data: vec![1, 2, 3]
            }
        );
        assert_eq!(recs[1].data.len(), 60);
    }

    #[test]
    fn big_endian_nanosecond_files_are_read() {
        let mut f = vec![
            0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0,
            1,
        ];
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 2, 9, 9]);
        let rec = Reader::new(&f[..]).unwrap().next_record().unwrap().unwrap();
        assert_eq!(
            rec,
            Record {
                timestamp_ns: 1_000_000_005,
                orig_len: 2,
                data: vec![9, 9]
            }
        );
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        assert!(Reader::new(&[0u8; 10][..]).is_err());
        assert!(Reader::new(&[0x0a, 0x0d, 0x0d, 0x0a].repeat(6)[..]).is_err());
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(0, &[1, 2, 3]).unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = Reader::new(&bytes[..bytes.len() - 1]).unwrap();
        assert!(r.next_record().is_err());
        assert!(r.next_record().unwrap().is_none(), "a failed reader stops");
    }
}
