//! NumPy `.npy` files (format versions 1-3): the header dict parsed, the data located, and
//! version-1 files written. C-order little-endian `<f2`, `<f4`, `<f8` and `u1` arrays.
//!
//! One parser for the whole workspace: netml-pktgen sends `.npy` tensors and netml-infer
//! reads `--input x.npy`. It lives here, in the dependency-free first crate of the data
//! flow, so that neither has to depend on the other. A small parser of the header dict is
//! enough for the files `numpy.save` writes. Like every parser in this crate it never panics,
//! whatever the input.

use core::fmt;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of an array, from the header's `descr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `<f2`, IEEE half.
    F16,
    /// `<f4`.
    F32,
    /// `<f8`.
    F64,
    /// `|u1`.
    U8,
}

impl NpyDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            NpyDtype::F16 => 2,
            NpyDtype::F32 => 4,
            NpyDtype::F64 => 8,
            NpyDtype::U8 => 1,
        }
    }

    /// The `descr` numpy writes for this type.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F16 => "<f2",
            NpyDtype::F32 => "<f4",
            NpyDtype::F64 => "<f8",
            NpyDtype::U8 => "|u1",
        }
    }

    fn from_descr(d: &str) -> Option<NpyDtype> {
        Some(match d {
            "<f2" | "float16" => NpyDtype::F16,
            "<f4" | "float32" => NpyDtype::F32,
            "<f8" | "float64" => NpyDtype::F64,
            "|u1" | "<u1" | "u1" | "uint8" => NpyDtype::U8,
            _ => return None,
        })
    }
}

/// Why bytes are not a supported `.npy` file; the message says what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(m: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(m.into()))
}

/// A parsed header: the array's type and shape (empty for a 0-d array) and where its data
/// starts in the file. The data is exactly `numel() * dtype.size()` bytes from `data_start`
/// to the end of the file (checked by [`parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub dtype: NpyDtype,
    /// Dimensions, C order.
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_start: usize,
}

impl Header {
    /// Number of elements (1 for a 0-d array).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Parses the header of `.npy` bytes and checks that the data that follows is exactly what
/// the shape and dtype need (what `numpy.save` writes: a shorter or longer file is corrupt).
pub fn parse(bytes: &[u8]) -> Result<Header, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return err("not an .npy file (bad magic)");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return err("truncated .npy header"),
        v => return err(format!("unsupported .npy version {v}")),
    };
    let data_start = start.saturating_add(header_len);
    let Some(header) = bytes.get(start..data_start) else {
        return err("truncated .npy header");
    };
    let Ok(h) = core::str::from_utf8(header) else {
        return err(".npy header is not text");
    };
    let descr = value_after(h, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .or_else(|| descr.strip_prefix('"'))
        .and_then(|d| d.split(['\'', '"']).next());
    let Some(descr) = descr else {
        return err("bad descr in .npy header");
    };
    let Some(dtype) = NpyDtype::from_descr(descr) else {
        return err(format!(
            "unsupported dtype {descr:?} (supported: '<f2', '<f4', '<f8', '|u1')"
        ));
    };
    let fortran = value_after(h, "fortran_order")?;
    if fortran.starts_with("True") {
        return err("Fortran-order arrays are not supported (save with np.ascontiguousarray)");
    } else if !fortran.starts_with("False") {
        return err("bad fortran_order in .npy header");
    }
    let shape_txt = value_after(h, "shape")?;
    let Some(inner) = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
    else {
        return err("bad shape in .npy header");
    };
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        // Python 2 wrote longs as `3L`.
        .map(|d| d.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| NpyError(format!("bad shape ({inner}) in .npy header")))?;
    let need = shape
        .iter()
        .try_fold(dtype.size(), |a, &d| a.checked_mul(d));
    let have = bytes.len() - data_start;
    match need {
        Some(n) if n == have => Ok(Header {
            dtype,
            shape,
            data_start,
        }),
        _ => err(format!(
            "shape ({inner}) of {} needs {} data bytes, the file has {have}",
            dtype.descr(),
            need.map_or("too many".to_string(), |n| n.to_string())
        )),
    }
}

/// The text after `'key':` in the header dict, leading blanks removed.
fn value_after<'a>(h: &'a str, key: &str) -> Result<&'a str, NpyError> {
    for quote in ['\'', '"'] {
        let pat = format!("{quote}{key}{quote}");
        if let Some(at) = h.find(&pat) {
            let rest = h[at + pat.len()..].trim_start();
            if let Some(rest) = rest.strip_prefix(':') {
                return Ok(rest.trim_start());
            }
        }
    }
    err(format!("no {key:?} in .npy header"))
}

/// A version-1 `.npy` file holding `data` (already in the dtype's little-endian bytes, C
/// order) as an array of `shape`.
pub fn to_bytes(dtype: NpyDtype, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        dtype.descr()
    );
    // numpy pads the header with spaces so that the data starts 64-byte aligned, after '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.resize(b.len() + data_len, 0);
        b
    }

    #[test]
    fn numpy_style_headers() {
        let h = parse(&file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 4), }",
            192,
        ))
        .unwrap();
        assert_eq!((h.dtype, &h.shape[..]), (NpyDtype::F32, &[1, 3, 4, 4][..]));
        let h = parse(&file(
            "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (10L,)}",
            10,
        ))
        .unwrap();
        assert_eq!((h.dtype, &h.shape[..]), (NpyDtype::U8, &[10][..]));
        let h = parse(&file(
            "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
            8,
        ));
        assert_eq!(h.unwrap().numel(), 1);
        for bad in [
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (x,)}",
            "{'descr': '<f4', 'shape': (1,)}",
        ] {
            assert!(parse(&file(bad, 4)).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_and_exact_data_length() {
        let data: Vec<u8> = (0..24).collect();
        let b = to_bytes(NpyDtype::F16, &[3, 4], &data);
        assert_eq!((b.len() - data.len()) % 64, 0);
        let h = parse(&b).unwrap();
        assert_eq!((h.dtype, &h.shape[..]), (NpyDtype::F16, &[3, 4][..]));
        assert_eq!(&b[h.data_start..], &data[..]);
        let mut short = b.clone();
        short.pop();
        assert!(parse(&short).unwrap_err().0.contains("needs 24"));
        let mut long = b;
        long.push(0);
        assert!(parse(&long).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_header_bytes_are_an_error_or_a_consistent_header(
            version in 0u8..5,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..160),
            edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..6),
        ) {
            let mut random = MAGIC.to_vec();
            random.extend([version, 0]);
            random.extend(tail);
            let mut edited = to_bytes(NpyDtype::F32, &[2, 3], &[0; 24]);
            for (at, v) in edits {
                let n = edited.len();
                edited[at % n] = v;
            }
            for b in [random, edited] {
                if let Ok(h) = parse(&b) {
                    proptest::prop_assert_eq!(b.len() - h.data_start, h.numel() * h.dtype.size());
                }
            }
        }
    }

    #[test]
    fn garbage_and_overflow_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(b"hello world").is_err());
        assert!(parse(b"\x93NUMPY\x02\x00\x01").is_err());
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999, 9999999)}";
        assert!(parse(&file(huge, 0)).is_err());
        for cut in 0..80 {
            let b = to_bytes(NpyDtype::F32, &[2, 2], &[0; 16]);
            let _ = parse(&b[..cut.min(b.len())]);
        }
    }
}
