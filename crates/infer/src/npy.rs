//! `.npy` reading and writing as f32 (for `--input x.npy`): C-order little-endian
//! float16/float32/float64 arrays. The file format is parsed by `netml_wire::npy`, shared
//! with netml-pktgen.

use std::path::Path;

use netml_wire::npy::{self, NpyDtype};

use crate::error::{Error, Result};
use crate::gpu::DType;

fn bad(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: format!("not a supported .npy file: {m}"),
    }
}

/// Reads a `.npy` array as f32 (float16/float64 are converted), returning its shape
/// and values in C order.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_f32(&bytes).map_err(|m| bad(path, m))
}

/// Parses `.npy` bytes (see [`read_f32`]).
pub fn parse_f32(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let h = npy::parse(bytes).map_err(|e| e.0)?;
    let data = &bytes[h.data_start..];
    let values = match h.dtype {
        NpyDtype::F32 => DType::F32.unpack(data),
        NpyDtype::F16 => DType::F16.unpack(data),
        NpyDtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        NpyDtype::U8 => {
            return Err("dtype '|u1': only float16/float32/float64 (normalise images first)".into())
        }
    };
    Ok((h.shape, values))
}

/// Encodes a float32 C-order array as `.npy` (version 1) bytes.
pub fn to_bytes_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    npy::to_bytes(NpyDtype::F32, shape, &DType::F32.pack(values))
}

/// Writes a float32 array as a `.npy` file.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], values: &[f32]) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes_f32(shape, values)).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b = to_bytes_f32(&[2, 3, 4], &v);
        assert_eq!(parse_f32(&b).unwrap(), (vec![2, 3, 4], v.clone()));
        let b = to_bytes_f32(&[24], &v);
        assert_eq!(parse_f32(&b).unwrap(), (vec![24], v));
        assert!(parse_f32(b"nope").is_err());
        let b = npy::to_bytes(NpyDtype::F16, &[2], &DType::F16.pack(&[1.5, -2.0]));
        assert_eq!(parse_f32(&b).unwrap(), (vec![2], vec![1.5, -2.0]));
        assert!(parse_f32(&npy::to_bytes(NpyDtype::U8, &[1], &[7])).is_err());
    }
}
