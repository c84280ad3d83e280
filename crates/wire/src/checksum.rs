//! Checksums: the Internet checksum (RFC 1071) for IPv4/UDP/fragment headers, and the
//! CRC-32 (IEEE 802.3, the zlib polynomial) of a tensor, which senders put in the tensor
//! descriptor and the pipeline echoes in results.

/// Adds `data` to a one's-complement running sum (not yet folded).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        // Fold early so that the accumulator never overflows on long inputs.
        if acc & 0x8000_0000 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add((*last as u32) << 8);
    }
    acc
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
