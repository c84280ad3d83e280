//! Minimal `.npy` reading and writing (for `--input x.npy`): C-order
//! little-endian float32/float64 arrays, format versions 1–3.

use std::path::Path;

use crate::error::{Error, Result};

fn bad(path: &Path, m: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: format!("not a supported .npy file: {m}"),
    }
}

/// Reads a `.npy` array as f32 (float64 is converted), returning its shape
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
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("format version {v}")),
    };
    let header = bytes.get(start..start + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = field("descr").ok_or("no descr")?;
    let elem = if descr.starts_with("'<f4'") || descr.starts_with("'float32'") {
        4
    } else if descr.starts_with("'<f8'") || descr.starts_with("'float64'") {
        8
    } else {
        return Err(format!(
            "dtype {descr:.8}; only little-endian float32/float64"
        ));
    };
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_txt = field("shape").ok_or("no shape")?;
    let close = shape_txt.find(')').ok_or("bad shape")?;
    let shape: Vec<usize> = shape_txt[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    if data.len() < n * elem {
        return Err(format!("{} data bytes for {n} values", data.len()));
    }
    let values = if elem == 4 {
        data[..n * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data[..n * 8]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect()
    };
    Ok((shape, values))
}

/// Encodes a float32 C-order array as `.npy` (version 1) bytes.
pub fn to_bytes_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that magic + 4 + header is a multiple of 64, ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
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
    }
}
