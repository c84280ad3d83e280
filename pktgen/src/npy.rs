//! Reading NumPy `.npy` files: C-order little-endian `<f4`, `<f2` and `|u1` arrays.
//!
//! A tiny parser of the header dict is enough for files `numpy.save` writes, and avoids a
//! dependency for three dtypes.

use crate::error::Context;
use crate::tensor::Tensor;
use crate::{bail, Result};
use netml_wire::fragment::{Dtype, Layout};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Loads an `.npy` file: the shape comes from the file, the layout is NCHW for rank 4 and
/// Plain otherwise.
pub fn load(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).context(path.display())?;
    parse(&path.display().to_string(), bytes).map_err(|e| e.context(path.display()))
}

/// Parses the bytes of an `.npy` file.
pub fn parse(name: &str, mut bytes: Vec<u8>) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("not an .npy file (bad magic)");
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("truncated .npy header");
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => bail!("unsupported .npy version {v}"),
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        bail!("truncated .npy header");
    }
    let header = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| crate::Error::new("header is not text"))?;
    let h = Header::parse(header)?;
    let layout = if h.shape.len() == 4 {
        Layout::Nchw
    } else {
        Layout::Plain
    };
    let data = bytes.split_off(data_start);
    Tensor::new(name, h.dtype, layout, h.shape, data)
}

#[derive(Debug, PartialEq)]
struct Header {
    dtype: Dtype,
    shape: Vec<u32>,
}

impl Header {
    fn parse(h: &str) -> Result<Header> {
        let descr = value_after(h, "descr")?;
        let descr = descr
            .strip_prefix('\'')
            .or_else(|| descr.strip_prefix('"'))
            .and_then(|d| d.split(['\'', '"']).next())
            .ok_or_else(|| crate::Error::new("bad descr in .npy header"))?;
        let dtype = match descr {
            "<f4" => Dtype::F32,
            "<f2" => Dtype::F16,
            "|u1" | "<u1" | "u1" => Dtype::U8,
            d => bail!("unsupported dtype {d:?} (supported: '<f4', '<f2', '|u1')"),
        };
        let fortran = value_after(h, "fortran_order")?;
        if fortran.starts_with("True") {
            bail!("Fortran-order arrays are not supported (save with np.ascontiguousarray)");
        } else if !fortran.starts_with("False") {
            bail!("bad fortran_order in .npy header");
        }
        let shape = value_after(h, "shape")?;
        let inner = shape
            .strip_prefix('(')
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| crate::Error::new("bad shape in .npy header"))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.trim_end_matches('L').parse::<u32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| crate::Error::new(format!("bad shape ({inner}) in .npy header")))?;
        if shape.is_empty() {
            bail!("0-d arrays are not supported");
        }
        Ok(Header { dtype, shape })
    }
}

/// The text after `'key':` in the header dict, leading blanks removed.
fn value_after<'a>(h: &'a str, key: &str) -> Result<&'a str> {
    for quote in ['\'', '"'] {
        let pat = format!("{quote}{key}{quote}");
        if let Some(at) = h.find(&pat) {
            let rest = h[at + pat.len()..].trim_start();
            if let Some(rest) = rest.strip_prefix(':') {
                return Ok(rest.trim_start());
            }
        }
    }
    bail!("no {key:?} in .npy header")
}

/// Serialises a tensor as a version-1 `.npy` file (used by tests and handy for tooling).
pub fn to_bytes(dtype: Dtype, shape: &[u32], data: &[u8]) -> Vec<u8> {
    let descr = match dtype {
        Dtype::F32 => "<f4",
        Dtype::F16 => "<f2",
        Dtype::U8 => "|u1",
    };
    let dims: Vec<String> = shape.iter().map(u32::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces so that data starts 64-byte aligned, ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_style_headers() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 4), }";
        assert_eq!(
            Header::parse(h).unwrap(),
            Header {
                dtype: Dtype::F32,
                shape: vec![1, 3, 4, 4]
            }
        );
        let h = "{'descr': '|u1', 'fortran_order': False, 'shape': (10,), }";
        assert_eq!(Header::parse(h).unwrap().shape, vec![10]);
        assert!(Header::parse("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}").is_err());
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}").is_err());
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").is_err());
        assert!(Header::parse("{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}").is_err());
    }

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
    fn rejects_short_data_and_garbage() {
        let mut b = to_bytes(Dtype::F32, &[4], &[0; 16]);
        b.pop();
        assert!(parse("x", b).is_err());
        assert!(parse("x", b"hello world".to_vec()).is_err());
        assert!(parse("x", Vec::new()).is_err());
    }
}
