// infer_ops.cuh -- portability layer of infer_ops.cu, so that the same kernel source builds for
// the GPU (NVRTC, __CUDACC__) and for the host (crates/infer/src/gpu/host_ops.cpp, C++20), where
// the tests run every kernel on the CPU as the executor launches it. Only what differs lives
// here: f16 storage conversions, -inf, the warp shuffle, and the thread indices.
#pragma once

typedef unsigned short f16_t;  // IEEE half as stored in the arena

#ifdef __CUDACC__

#define INFER_FN __device__ __forceinline__

INFER_FN float ld(const f16_t* p, unsigned i) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
  return f;
}
// Round to nearest even, like half::f16::from_f32 in the reference executor.
INFER_FN void st(f16_t* p, unsigned i, float v) {
  f16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  p[i] = h;
}
INFER_FN float neg_inf() { return __int_as_float(0xff800000); }
INFER_FN float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }

#else  // host build

#include <cmath>
#include <cstring>

#define INFER_FN inline
#define __global__

// The launch emulation (host_ops.cpp) sets these per emulated thread.
struct infer_dim3 {
  unsigned x, y, z;
};
inline thread_local infer_dim3 blockIdx, threadIdx, blockDim, gridDim;

// _Float16 conversions are exact (to float) and round to nearest even (from float).
INFER_FN float ld(const f16_t* p, unsigned i) {
  _Float16 h;
  std::memcpy(&h, &p[i], sizeof h);
  return static_cast<float>(h);
}
INFER_FN void st(f16_t* p, unsigned i, float v) {
  _Float16 h = static_cast<_Float16>(v);
  std::memcpy(&p[i], &h, sizeof h);
}
INFER_FN float neg_inf() { return -INFINITY; }
// A warp's lanes run as threads that exchange through the emulation (host_ops.cpp).
float infer_host_shfl_xor(float v, int o);
INFER_FN float shfl_xor(float v, int o) { return infer_host_shfl_xor(v, o); }
// expf, fminf, fmaxf: the C library's, from <cmath> (math.h), as on the device.

#endif

INFER_FN float ld(const float* p, unsigned i) { return p[i]; }
INFER_FN void st(float* p, unsigned i, float v) { p[i] = v; }
