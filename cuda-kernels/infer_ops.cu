// infer_ops.cu -- the small kernels of the netml-infer GPU executor (crates/infer/src/gpu):
// every plan step that is not a cuDNN convolution / pooling or a cuBLAS GEMM. Compiled with
// NVRTC at engine load; in CI for sm_80 / sm_90 with NVRTC 13.0 + ptxas -v (scripts/check-kernels).
//
// Each kernel exists once per storage type: `_f32` (fp32 plans) and `_f16` (fp16 plans, IEEE
// half stored as unsigned short so no cuda_fp16.h is needed). Everything target-specific is in
// infer_ops.cuh; the host build (crates/infer/src/gpu/host_ops.cpp) compiles this same file. Arithmetic is always f32 and a
// stored f16 is rounded to nearest-even once, like the reference executor (half::f16::from_f32).
// Activations arrive as a clamp range [lo, hi]: identity (-inf, inf), ReLU (0, inf), Clip
// (min, max); fminf/fmaxf map NaN to the bound as Rust's f32::max/min do in the reference.
// Element loops are grid-stride, so any grid size is correct; the executor picks the grid.

#include "infer_ops.cuh"

INFER_FN float clampf(float v, float lo, float hi) {
  return fminf(fmaxf(v, lo), hi);
}

#define GRID_STRIDE(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// Physical index of the element with logical row-major index i. NHWC and the flattened NHWC
// view share the formula: per image of c*hw values, logical (ci, p) sits at p*c + ci.
INFER_FN unsigned phys(unsigned i, int nhwc, unsigned c, unsigned hw) {
  if (!nhwc) return i;
  unsigned img = c * hw, n = i / img, rest = i - n * img, ci = rest / hw, p = rest - ci * hw;
  return n * img + p * c + ci;
}

template <typename T>
INFER_FN void act(const T* x, T* y, unsigned n, float lo, float hi) {
  GRID_STRIDE(i, n) st(y, i, clampf(ld(x, i), lo, hi));
}

// y = act(x*scale[c] + shift[c]); c = (i / inner) % channels (inner = 1 for channels-last).
template <typename T>
INFER_FN void scale_shift(const T* x, T* y, const T* scale, const T* shift, unsigned n,
                            unsigned channels, unsigned inner, float lo, float hi) {
  GRID_STRIDE(i, n) {
    unsigned c = (i / inner) % channels;
    st(y, i, clampf(ld(x, i) * ld(scale, c) + ld(shift, c), lo, hi));
  }
}

template <typename T>
INFER_FN void add(const T* a, const T* b, T* y, unsigned n, float lo, float hi) {
  GRID_STRIDE(i, n) st(y, i, clampf(ld(a, i) + ld(b, i), lo, hi));
}

// GEMM epilogue: acc is cuBLAS's f32 [m, cols] row-major result; y = act(acc + bias[col]),
// rounded once to T. bias may be null.
template <typename T>
INFER_FN void bias_act(const float* acc, const T* bias, T* y, unsigned n, unsigned cols,
                         float lo, float hi) {
  GRID_STRIDE(i, n) {
    float v = acc[i];
    if (bias) v += ld(bias, i % cols);
    st(y, i, clampf(v, lo, hi));
  }
}

// Epilogue of an unfused convolution (cudnnConvolutionForward already wrote y), used only
// where cuDNN refuses the fused call: y = act(y + bias[c] + z), in place; bias and z may be
// null. c = (i / inner) % channels as in scale_shift.
template <typename T>
INFER_FN void bias_res_act(T* y, const T* bias, const T* z, unsigned n, unsigned channels,
                             unsigned inner, float lo, float hi) {
  GRID_STRIDE(i, n) {
    float v = ld(y, i);
    if (bias) v += ld(bias, (i / inner) % channels);
    if (z) v += ld(z, i);
    st(y, i, clampf(v, lo, hi));
  }
}

// Explicit padding for the asymmetric pads cuDNN cannot express: y (the input grown by
// top/left/bottom/right, same layout as x) gets x's values and `fill` around them (0 before a
// convolution or an average pool counting padding, -inf before a max pool); the cuDNN call
// then runs with zero padding on y. n = y's element count.
template <typename T>
INFER_FN void pad(const T* x, T* y, unsigned n, int nhwc, unsigned C, unsigned H, unsigned W,
                    unsigned OH, unsigned OW, unsigned top, unsigned left, float fill) {
  GRID_STRIDE(i, n) {
    unsigned b, c, oh, ow, r;
    if (nhwc) {
      c = i % C; r = i / C; ow = r % OW; r /= OW; oh = r % OH; b = r / OH;
    } else {
      ow = i % OW; r = i / OW; oh = r % OH; r /= OH; c = r % C; b = r / C;
    }
    int h = (int)oh - (int)top, w = (int)ow - (int)left;
    float v = fill;
    if (h >= 0 && h < (int)H && w >= 0 && w < (int)W)
      v = ld(x, nhwc ? ((b * H + h) * W + w) * C + c : ((b * C + c) * H + h) * W + w);
    st(y, i, v);
  }
}

// One input of a concatenation in physical order: `outer` rows of `in_row` values land at
// column `col` of the output's rows of `out_row` values. A pure copy, no rounding.
template <typename T>
INFER_FN void concat_copy(const T* x, T* y, unsigned outer, unsigned in_row, unsigned out_row,
                            unsigned col) {
  GRID_STRIDE(i, outer * in_row) {
    unsigned o = i / in_row;
    y[o * out_row + col + (i - o * in_row)] = x[i];
  }
}

// Same logical content from one layout/type to another (Reorder steps, the f32 NCHW input into
// the arena, the arena output into the f32 logical output).
template <typename Tin, typename Tout>
INFER_FN void convert(const Tin* x, Tout* y, unsigned n, int x_nhwc, unsigned xc, unsigned xhw,
                        int y_nhwc, unsigned yc, unsigned yhw) {
  GRID_STRIDE(i, n) st(y, phys(i, y_nhwc, yc, yhw), ld(x, phys(i, x_nhwc, xc, xhw)));
}

INFER_FN float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, shfl_xor(v, o));
  return v;
}
INFER_FN float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += shfl_xor(v, o);
  return v;
}

// Softmax, one warp per row: row r = (o, i) with o = r / inner, i = r % inner; its `len`
// elements sit at o*so + i*si + j*sj. Max-subtracted, f32 throughout, like the reference.
// blockDim.x must be a multiple of 32.
template <typename T>
INFER_FN void softmax(const T* x, T* y, unsigned rows, unsigned len, unsigned inner,
                        unsigned so, unsigned sj, unsigned si) {
  unsigned lane = threadIdx.x & 31u, warps = blockDim.x >> 5;
  for (unsigned r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
    unsigned o = r / inner, base = o * so + (r - o * inner) * si;
    float m = neg_inf();
    for (unsigned j = lane; j < len; j += 32) m = fmaxf(m, ld(x, base + j * sj));
    m = warp_max(m);
    float s = 0.0f;
    for (unsigned j = lane; j < len; j += 32) s += expf(ld(x, base + j * sj) - m);
    s = warp_sum(s);
    float inv = 1.0f / s;
    for (unsigned j = lane; j < len; j += 32)
      st(y, base + j * sj, expf(ld(x, base + j * sj) - m) * inv);
  }
}

#define INFER_TYPED(SUF, T)                                                                      \
  extern "C" __global__ void infer_act_##SUF(const T* x, T* y, unsigned n, float lo, float hi) { \
    act(x, y, n, lo, hi);                                                                        \
  }                                                                                              \
  extern "C" __global__ void infer_scale_shift_##SUF(const T* x, T* y, const T* s, const T* t,  \
                                                     unsigned n, unsigned c, unsigned inner,    \
                                                     float lo, float hi) {                      \
    scale_shift(x, y, s, t, n, c, inner, lo, hi);                                                \
  }                                                                                              \
  extern "C" __global__ void infer_add_##SUF(const T* a, const T* b, T* y, unsigned n, float lo, \
                                             float hi) {                                         \
    add(a, b, y, n, lo, hi);                                                                     \
  }                                                                                              \
  extern "C" __global__ void infer_bias_act_##SUF(const float* acc, const T* bias, T* y,         \
                                                  unsigned n, unsigned cols, float lo,           \
                                                  float hi) {                                    \
    bias_act(acc, bias, y, n, cols, lo, hi);                                                     \
  }                                                                                              \
  extern "C" __global__ void infer_bias_res_act_##SUF(T* y, const T* bias, const T* z,          \
                                                     unsigned n, unsigned c, unsigned inner,    \
                                                     float lo, float hi) {                      \
    bias_res_act(y, bias, z, n, c, inner, lo, hi);                                               \
  }                                                                                              \
  extern "C" __global__ void infer_pad_##SUF(const T* x, T* y, unsigned n, int nhwc, unsigned c,  \
                                             unsigned h, unsigned w, unsigned oh, unsigned ow,  \
                                             unsigned top, unsigned left, float fill) {          \
    pad(x, y, n, nhwc, c, h, w, oh, ow, top, left, fill);                                        \
  }                                                                                              \
  extern "C" __global__ void infer_concat_copy_##SUF(const T* x, T* y, unsigned outer,          \
                                                     unsigned in_row, unsigned out_row,         \
                                                     unsigned col) {                            \
    concat_copy(x, y, outer, in_row, out_row, col);                                              \
  }                                                                                              \
  extern "C" __global__ void infer_softmax_##SUF(const T* x, T* y, unsigned rows, unsigned len, \
                                                 unsigned inner, unsigned so, unsigned sj,      \
                                                 unsigned si) {                                  \
    softmax(x, y, rows, len, inner, so, sj, si);                                                 \
  }

INFER_TYPED(f32, float)
INFER_TYPED(f16, f16_t)

#define INFER_CONVERT(SUF, TIN, TOUT)                                                            \
  extern "C" __global__ void infer_convert_##SUF(const TIN* x, TOUT* y, unsigned n, int x_nhwc, \
                                                 unsigned xc, unsigned xhw, int y_nhwc,          \
                                                 unsigned yc, unsigned yhw) {                    \
    convert(x, y, n, x_nhwc, xc, xhw, y_nhwc, yc, yhw);                                          \
  }

INFER_CONVERT(f32_f32, float, float)
INFER_CONVERT(f16_f16, f16_t, f16_t)
INFER_CONVERT(f32_f16, float, f16_t)
INFER_CONVERT(f16_f32, f16_t, float)
