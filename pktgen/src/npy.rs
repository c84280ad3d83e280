//! `.npy` files as tensors to send: `<f4`, `<f2` and `|u1` arrays (the fragment protocol's
//! dtypes). The file format itself is parsed by `netml_wire::npy`, shared with netml-infer.

use crate::error::Context;
use crate::tensor::Tensor;
use crate::{bail, Result};
use netml_wire::fragment::{Dtype, Layout};
use netml_wire::npy::{self as wire_npy, NpyDtype};
use std::path::Path;

/// Loads an `.npy` file: the shape comes from the file, the layout is NCHW for rank 4 and
/// Plain otherwise.
pub fn load(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).context(path.display())?;
    parse(&path.display().to_string(), bytes).map_err(|e| e.context(path.display()))
}

/// Parses the bytes of an `.npy` file.
pub fn parse(name: &str, mut bytes: Vec<u8>) -> Result<Tensor> {
    let h = wire_npy::parse(&bytes).map_err(|e| crate::Error::new(e.0))?;
    let dtype = match h.dtype {
        NpyDtype::F32 => Dtype::F32,
        NpyDtype::F16 => Dtype::F16,
        NpyDtype::U8 => Dtype::U8,
        d => bail!(
            "unsupported dtype {:?} (supported: '<f4', '<f2', '|u1')",
            d.descr()
        ),
    };
    if h.shape.is_empty() {
        bail!("0-d arrays are not supported");
    }
    let shape = h
        .shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<std::result::Result<Vec<u32>, _>>()
        .map_err(|_| crate::Error::new(format!("dimension of {:?} over 2^32", h.shape)))?;
    let layout = if shape.len() == 4 {
        Layout::Nchw
    } else {
        Layout::Plain
    };
    // The data is the rest of the file: split it off instead of copying.
    let data = bytes.split_off(h.data_start);
    Tensor::new(name, dtype, layout, shape, data)
}

/// Serialises a tensor as a version-1 `.npy` file (used by tests and handy for tooling).
pub fn to_bytes(dtype: Dtype, shape: &[u32], data: &[u8]) -> Vec<u8> {
    let dtype = match dtype {
        Dtype::F32 => NpyDtype::F32,
        Dtype::F16 => NpyDtype::F16,
        Dtype::U8 => NpyDtype::U8,
    };
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    wire_npy::to_bytes(dtype, &shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let b = to_bytes(Dtype::F16, &[3, 4], &data);
        assert_eq!((b.len() - data.len()) % 64, 0);
        let t = parse("x", b).unwrap();
        assert_eq!(
            (t.dtype, t.layout, &t.shape[..]),
            (Dtype::F16, Layout::Plain, &[3, 4][..])
        );
        assert_eq!(t.data, data);
        let b = to_bytes(Dtype::U8, &[1, 2, 2, 1], &[1, 2, 3, 4]);
        assert_eq!(parse("x", b).unwrap().layout, Layout::Nchw);
    }

    #[test]
    fn rejects_what_the_protocol_cannot_carry() {
        let f64s = wire_npy::to_bytes(NpyDtype::F64, &[2], &[0; 16]);
        assert!(parse("x", f64s).unwrap_err().to_string().contains("<f8"));
        let scalar = wire_npy::to_bytes(NpyDtype::F32, &[], &[0; 4]);
        assert!(parse("x", scalar).unwrap_err().to_string().contains("0-d"));
    }

    #[test]
    fn rejects_short_data_and_garbage() {
        let mut b = to_bytes(Dtype::F32, &[4], &[0; 16]);
        b.pop();
        assert!(parse("x", b).is_err());
        assert!(parse("x", b"hello world".to_vec()).is_err());
        assert!(parse("x", Vec::new()).is_err());
    }
}
