//! Axis arithmetic in physical (memory) order for the kernels that work along a logical axis:
//! Concat (strided row copies) and Softmax (one warp per normalised row). Pure.

use crate::error::{Error, Result};
use crate::plan::{Layout, TensorInfo};

/// One input of a Concat as `infer_concat_copy_*` copies it: `outer` rows of `in_row`
/// elements into output rows of `out_row` elements, starting at column `col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcatPart {
    /// Rows.
    pub outer: usize,
    /// Elements per input row.
    pub in_row: usize,
    /// Elements per output row.
    pub out_row: usize,
    /// Column of the first element in the output row.
    pub col: usize,
}

/// `infer_softmax_*` parameters: `rows = outer·inner` rows; row `(o, i)` holds `len` elements
/// at `o·so + i·si + j·sj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxParams {
    /// Rows (`outer · inner`).
    pub rows: usize,
    /// Elements per row.
    pub len: usize,
    /// Rows per outer index.
    pub inner: usize,
    /// Stride of the outer index.
    pub so: usize,
    /// Stride between a row's elements.
    pub sj: usize,
    /// Stride of the inner index.
    pub si: usize,
}

/// Memory-order dims of a tensor and where logical `axis` sits among them.
fn physical(t: &TensorInfo, axis: usize) -> Result<(Vec<usize>, usize)> {
    match t.layout {
        Layout::Nhwc => {
            let s = &t.shape;
            Ok((vec![s[0], s[2], s[3], s[1]], [0, 3, 1, 2][axis]))
        }
        Layout::Nchw | Layout::RowMajor => Ok((t.shape.clone(), axis)),
        Layout::FlatNhwc { .. } => Err(Error::Backend(format!(
            "'{}' is a flattened NHWC view (only GEMMs read those)",
            t.name
        ))),
    }
}

/// The row copies of a Concat of `inputs` into `y` along logical `axis`.
pub fn concat(inputs: &[&TensorInfo], y: &TensorInfo, axis: usize) -> Result<Vec<ConcatPart>> {
    let (ydims, pa) = physical(y, axis)?;
    let inner: usize = ydims[pa + 1..].iter().product();
    let outer: usize = ydims[..pa].iter().product();
    let mut col = 0;
    let mut parts = Vec::with_capacity(inputs.len());
    for x in inputs {
        if x.layout != y.layout || x.shape.len() != y.shape.len() {
            return Err(Error::Backend(format!(
                "concat input '{}' ({:?}) and output ({:?}) differ in layout",
                x.name, x.layout, y.layout
            )));
        }
        let (xdims, _) = physical(x, axis)?;
        let in_row = xdims[pa] * inner;
        parts.push(ConcatPart {
            outer,
            in_row,
            out_row: ydims[pa] * inner,
            col,
        });
        col += in_row;
    }
    if col != ydims[pa] * inner {
        return Err(Error::Internal(format!(
            "concat inputs fill {col} of {} elements per row",
            ydims[pa] * inner
        )));
    }
    Ok(parts)
}

/// Softmax rows of `x` for logical `axis` (`coerce_2d`: over all axes from `axis` on).
pub fn softmax(x: &TensorInfo, axis: usize, coerce_2d: bool) -> Result<SoftmaxParams> {
    let s = &x.shape;
    let numel = x.numel();
    // A row's elements as a set: contiguous whenever they are in memory order, since a
    // softmax does not care in which order it visits them.
    let contiguous = |len: usize| SoftmaxParams {
        rows: numel / len,
        len,
        inner: 1,
        so: len,
        sj: 1,
        si: 0,
    };
    if x.layout.is_logical_order(s) {
        if coerce_2d {
            return Ok(contiguous(s[axis..].iter().product()));
        }
        let (len, inner) = (s[axis], s[axis + 1..].iter().product::<usize>());
        let outer: usize = s[..axis].iter().product();
        return Ok(SoftmaxParams {
            rows: outer * inner,
            len,
            inner,
            so: len * inner,
            sj: inner,
            si: 1,
        });
    }
    if x.layout != Layout::Nhwc || s.len() != 4 {
        return Err(Error::Backend(format!(
            "softmax over '{}' in layout {:?}",
            x.name, x.layout
        )));
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    // NHWC memory: element (n, c, h, w) at ((n*H + h)*W + w)*C + c.
    match (x.layout, axis, coerce_2d) {
        // Every image (or the whole batch) is contiguous in NHWC too.
        (Layout::Nhwc, 0 | 1, true) => Ok(contiguous(s[axis..].iter().product())),
        (Layout::Nhwc, 0, false) => {
            let img = numel / n;
            Ok(SoftmaxParams {
                rows: img,
                len: n,
                inner: img,
                so: 0,
                sj: img,
                si: 1,
            })
        }
        // Over C: rows are pixels.
        (Layout::Nhwc, 1, false) => Ok(SoftmaxParams {
            rows: n * h * w,
            len: c,
            inner: h * w,
            so: h * w * c,
            sj: 1,
            si: c,
        }),
        // Over H: rows are (n, (w, c)), the (w, c) pairs contiguous.
        (Layout::Nhwc, 2, false) => Ok(SoftmaxParams {
            rows: n * w * c,
            len: h,
            inner: w * c,
            so: h * w * c,
            sj: w * c,
            si: 1,
        }),
        // Over H and W together (opset < 13): rows are (n, c).
        (Layout::Nhwc, 2, true) => Ok(SoftmaxParams {
            rows: n * c,
            len: h * w,
            inner: c,
            so: h * w * c,
            sj: c,
            si: 1,
        }),
        // Over W (the last axis, coerced or not): rows are ((n, h), c).
        (Layout::Nhwc, 3, _) => Ok(SoftmaxParams {
            rows: n * h * c,
            len: w,
            inner: c,
            so: w * c,
            sj: c,
            si: 1,
        }),
        _ => Err(Error::Backend(format!(
            "softmax over axis {axis} (coerce_2d {coerce_2d}) of '{}' in layout {:?}",
            x.name, x.layout
        ))),
    }
}
