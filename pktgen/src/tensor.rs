//! Tensors as the sender ships them: element bytes (little-endian) plus dtype, layout and
//! shape, and the CRC-32 the descriptor carries.

use crate::rng::{self, Rng};
use crate::{bail, Result};
use netml_wire::checksum::tensor_crc32;
use netml_wire::fragment::{Dtype, Layout, MAX_RANK};

/// A tensor ready to be fragmented.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Where it came from (file name or "synthetic#k"), for messages.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimension order.
    pub layout: Layout,
    /// Dimensions.
    pub shape: Vec<u32>,
    /// Element bytes, little-endian, C order.
    pub data: Vec<u8>,
    /// CRC-32 (IEEE) of `data`.
    pub crc32: u32,
}

impl Tensor {
    /// Builds a tensor, checking that the shape describes `data` and fits the protocol
    /// (rank 1..=6, total bytes within u32, rank 4 for image layouts).
    pub fn new(
        name: impl Into<String>,
        dtype: Dtype,
        layout: Layout,
        shape: Vec<u32>,
        data: Vec<u8>,
    ) -> Result<Self> {
        let name = name.into();
        check_shape(&shape, layout)?;
        let expect = byte_len(&shape, dtype)?;
        if expect != data.len() as u64 {
            bail!(
                "{name}: shape {} of {} needs {expect} bytes, got {}",
                shape_string(&shape),
                dtype_name(dtype),
                data.len()
            );
        }
        let crc32 = tensor_crc32([data.as_slice()]);
        Ok(Tensor {
            name,
            dtype,
            layout,
            shape,
            data,
            crc32,
        })
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no bytes (never true for a valid tensor).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Checks rank and layout constraints of the protocol.
pub fn check_shape(shape: &[u32], layout: Layout) -> Result<()> {
    if shape.is_empty() || shape.len() > MAX_RANK {
        bail!("tensor rank must be 1..={MAX_RANK}, got {}", shape.len());
    }
    if shape.contains(&0) {
        bail!(
            "tensor dimensions must be non-zero: {}",
            shape_string(shape)
        );
    }
    if layout != Layout::Plain && shape.len() != 4 {
        bail!("layouts NCHW/NHWC need rank 4, got {}", shape_string(shape));
    }
    Ok(())
}

/// Bytes a tensor of `shape` occupies; an error if it exceeds the protocol's u32 limit.
pub fn byte_len(shape: &[u32], dtype: Dtype) -> Result<u64> {
    let n = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
    match n {
        Some(n) if n <= u32::MAX as u64 => Ok(n),
        _ => bail!(
            "tensor {} is larger than the protocol's 4 GiB limit",
            shape_string(shape)
        ),
    }
}

/// "1x3x224x224".
pub fn shape_string(shape: &[u32]) -> String {
    shape
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Parses "1x3x224x224" (also accepts ',' as separator).
pub fn parse_shape(s: &str) -> Result<Vec<u32>> {
    let dims: std::result::Result<Vec<u32>, _> = s
        .split(['x', 'X', ','])
        .map(|d| d.trim().parse::<u32>())
        .collect();
    match dims {
        Ok(d) if !d.is_empty() && !d.contains(&0) => Ok(d),
        _ => bail!("bad shape {s:?}: expected non-zero dimensions like 1x3x224x224"),
    }
}

/// Name of a dtype as the CLI spells it.
pub fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::U8 => "u8",
        Dtype::F16 => "f16",
        Dtype::F32 => "f32",
    }
}

/// Parses "f32", "f16" or "u8".
pub fn parse_dtype(s: &str) -> Result<Dtype> {
    Ok(match s {
        "f32" => Dtype::F32,
        "f16" => Dtype::F16,
        "u8" => Dtype::U8,
        _ => bail!("unknown dtype {s:?} (expected f32, f16 or u8)"),
    })
}

/// Converts to IEEE half precision (round to nearest even), for synthetic f16 tensors.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal half: shift the full mantissa (with its hidden bit) into place.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = rem > mid || (rem == mid && half & 1 == 1);
        return sign | (half + round as u32) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let round = rem > 0x1000 || (rem == 0x1000 && half & 1 == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (half + round as u32) as u16
}

/// `count` seeded random tensors of `shape`: values uniform in [-2, 2) for floats (about
/// the range of ImageNet-normalised pixels), uniform bytes for u8. Rank-4 shapes get the
/// NCHW layout, others Plain.
pub fn synthetic(shape: &[u32], dtype: Dtype, count: usize, seed: u64) -> Result<Vec<Tensor>> {
    let layout = if shape.len() == 4 {
        Layout::Nchw
    } else {
        Layout::Plain
    };
    check_shape(shape, layout)?;
    let bytes = byte_len(shape, dtype)? as usize;
    let mut rng = Rng::new(seed, rng::stream::SYNTHETIC);
    (0..count)
        .map(|k| {
            let mut data = Vec::with_capacity(bytes);
            match dtype {
                Dtype::U8 => {
                    while data.len() < bytes {
                        data.extend_from_slice(&rng.next_u64().to_le_bytes());
                    }
                    data.truncate(bytes);
                }
                Dtype::F16 => {
                    for _ in 0..bytes / 2 {
                        let v = (rng.unit() * 4.0 - 2.0) as f32;
                        data.extend_from_slice(&f32_to_f16(v).to_le_bytes());
                    }
                }
                Dtype::F32 => {
                    for _ in 0..bytes / 4 {
                        let v = (rng.unit() * 4.0 - 2.0) as f32;
                        data.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
            Tensor::new(
                format!("synthetic#{k}"),
                dtype,
                layout,
                shape.to_vec(),
                data,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_conversion() {
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(0.5), 0x3800);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(0.0), 0);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001);
        assert_eq!(f32_to_f16(0.333_333_34), 0x3555);
    }

    #[test]
    fn shapes() {
        assert_eq!(parse_shape("1x3x224x224").unwrap(), vec![1, 3, 224, 224]);
        assert!(parse_shape("1x0").is_err());
        assert!(parse_shape("abc").is_err());
        assert!(check_shape(&[3, 4], Layout::Nchw).is_err());
        assert!(byte_len(&[1 << 20, 1 << 20], Dtype::U8).is_err());
    }

    #[test]
    fn synthetic_is_seeded() {
        let a = synthetic(&[2, 3, 4, 5], Dtype::F32, 2, 9).unwrap();
        let b = synthetic(&[2, 3, 4, 5], Dtype::F32, 2, 9).unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0].data, a[1].data);
        assert_eq!(a[0].len(), 2 * 3 * 4 * 5 * 4);
        assert_eq!(a[0].layout, Layout::Nchw);
        let h = synthetic(&[7], Dtype::F16, 1, 9).unwrap();
        assert_eq!((h[0].len(), h[0].layout), (14, Layout::Plain));
        let u = synthetic(&[13], Dtype::U8, 1, 9).unwrap();
        assert_eq!(u[0].len(), 13);
    }
}
