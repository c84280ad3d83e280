//! Checksums: the Internet checksum (RFC 1071) for IPv4/UDP/fragment headers, and the
//! CRC-32 (IEEE 802.3, the zlib polynomial) of a tensor, which senders put in the tensor
//! descriptor and the pipeline echoes in results.

/// Adds `data` to a one's-complement running sum (not yet folded).
///
/// Words are summed eight bytes at a time: a 32-bit word `hi << 16 | lo` is congruent to
/// `hi + lo` modulo 0xffff, so summing 32-bit halves and folding at the end gives the same
/// one's-complement sum as summing 16-bit words.
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut wide = acc as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes(c.try_into().unwrap());
        wide += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        wide += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = rest.remainder() {
        wide += (*last as u64) << 8;
    }
    // Fold to at most 17 bits so callers can keep adding.
    while wide > 0xffff {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    wide as u32
}

/// Whether a fixed-size header whose checksum field is filled in verifies: its words sum to
/// 0xffff in one's complement.
///
/// The words are read in native byte order, four bytes at a time: the one's-complement sum
/// is independent of byte order (RFC 1071, 2.B) and 0xffff is its own byte swap, so the
/// verdict needs no swap, and 32-bit words are congruent to the sum of their halves.
#[inline]
pub fn verifies<const N: usize>(data: &[u8; N]) -> bool {
    let mut wide = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        wide += u64::from(u32::from_ne_bytes(w.try_into().expect("4 bytes")));
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        wide += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        wide += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    // Folding to 16 bits keeps the value modulo 0xffff (2^16 = 1) and gives 0 only for a
    // sum of 0: the folded sum is 0xffff exactly when this holds. The remainder by a
    // constant is a multiply and a shift, shorter than the chain of four folds.
    wide != 0 && wide.is_multiple_of(0xffff)
}

/// Folds a running sum into the final 16-bit one's-complement checksum.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data`.
pub fn internet(data: &[u8]) -> u16 {
    fold(sum(0, data))
}

/// CRC-32 (IEEE) over the concatenation of `parts`, as the tensor descriptor carries it.
pub fn tensor_crc32<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `verifies` says yes exactly when the general checksum over the bytes is 0, for
    /// random headers, headers made valid, and the all-zero and all-ones edge cases.
    #[test]
    fn verifies_agrees_with_the_general_checksum() {
        fn check<const N: usize>(a: &[u8; N]) {
            assert_eq!(verifies(a), internet(a) == 0, "{a:?}");
        }
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        for round in 0..2000 {
            let mut a20 = [0u8; 20];
            let mut a22 = [0u8; 22];
            let mut a86 = [0u8; 86];
            let mut a7 = [0u8; 7];
            a20.iter_mut().for_each(|b| *b = next());
            a22.iter_mut().for_each(|b| *b = next());
            a86.iter_mut().for_each(|b| *b = next());
            a7.iter_mut().for_each(|b| *b = next());
            if round % 2 == 0 {
                // Fill a checksum field so that the header verifies.
                for (a, at) in [(&mut a20[..], 10), (&mut a22[..], 18), (&mut a86[..], 18)] {
                    a[at..at + 2].fill(0);
                    let c = internet(a);
                    a[at..at + 2].copy_from_slice(&c.to_be_bytes());
                }
            }
            check(&a20);
            check(&a22);
            check(&a86);
            check(&a7);
        }
        check(&[0u8; 20]);
        check(&[0xffu8; 20]);
        check(&[0xffu8; 21]);
        let mut ones = [0u8; 22];
        ones[0] = 0xff;
        ones[1] = 0xff;
        check(&ones);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: the sum of these words is 0xddf2, checksum !0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet(&data), !0xddf2);
    }

    #[test]
    fn wide_sum_equals_word_by_word_sum() {
        let data: Vec<u8> = (0..1001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let mut acc = 0u32;
            for c in data[..len].chunks(2) {
                acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
            }
            assert_eq!(fold(sum(0, &data[..len])), fold(acc), "len {len}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            internet(&[0x12, 0x34, 0x56]),
            internet(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn crc32_matches_zlib_check_value() {
        assert_eq!(tensor_crc32([b"123456789".as_slice()]), 0xcbf4_3926);
        assert_eq!(
            tensor_crc32([b"1234".as_slice(), b"56789".as_slice()]),
            0xcbf4_3926
        );
    }
}
