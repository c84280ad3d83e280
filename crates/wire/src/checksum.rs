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
