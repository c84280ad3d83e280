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

/// [`sum`] from 0 over a fixed-size header, as 16-bit words the compiler unrolls (`N` is
/// even for every header this is used on; an odd last byte is padded as in [`sum`]).
#[inline]
pub fn sum_words<const N: usize>(data: &[u8; N]) -> u32 {
    let mut wide = 0u32;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        wide += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        wide += u32::from(*last) << 8;
    }
    // At most 43 words of 0xffff for any header here: no overflow; fold to 17 bits.
    wide = (wide & 0xffff) + (wide >> 16);
    (wide & 0xffff) + (wide >> 16)
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
    fn fixed_size_sums_fold_like_the_general_sum() {
        let mut x = 0x9e37_79b9u32;
        for _ in 0..200 {
            let mut a = [0u8; 86];
            for b in a.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = if x & 7 == 0 { 0xff } else { x as u8 };
            }
            let h: &[u8; 22] = a.first_chunk().unwrap();
            assert_eq!(fold(sum_words(h)), internet(h));
            assert_eq!(fold(sum_words(&a)), internet(&a));
            let odd: &[u8; 21] = a.first_chunk().unwrap();
            assert_eq!(fold(sum_words(odd)), internet(odd));
        }
        assert_eq!(fold(sum_words(&[0xffu8; 86])), internet(&[0xff; 86]));
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
