// What a GPU round trip through mapped host memory costs on this machine, in isolation from
// netml: empty launches, a system fence, reads of mapped pinned memory, a host <-> persistent
// kernel ping-pong, and zero-copy read bandwidth against cudaMemcpy. Run where netml's ingest
// latencies look wrong (the H200 machine, 2026-12-04: ~1 ms per submit in netml and launch
// modes, 17% of pinned bandwidth), to tell the machine from our code.
//
//   nvcc -O2 -arch=sm_90 -o /tmp/hostmem scripts/gpu-probe/hostmem.cu && /tmp/hostmem
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                                 \
  do {                                                                           \
    cudaError_t e_ = (x);                                                        \
    if (e_ != cudaSuccess) {                                                     \
      std::printf("FAILED %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

using Clock = std::chrono::steady_clock;

static double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

static void report(const char* what, std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  std::printf("%-58s p50 %9.1f us  p99 %9.1f us  max %9.1f us  (n=%zu)\n", what,
              v[v.size() / 2], v[v.size() * 99 / 100], v.back(), v.size());
  std::fflush(stdout);
}

__global__ void empty_kernel() {}

__global__ void fence_kernel(unsigned* dev) {
  __threadfence_system();
  if (threadIdx.x == 0) dev[0] += 1;
}

__global__ void read_host_kernel(const volatile unsigned* host, unsigned* dev) {
  if (threadIdx.x == 0) dev[0] += host[0];
}

__global__ void write_host_kernel(volatile unsigned* host) {
  if (threadIdx.x == 0) {
    host[1] = host[0] + 1;
    __threadfence_system();
  }
}

// One thread: waits for flag[0] to change, answers flag[1] = flag[0]; stops on 0xffffffff.
__global__ void pingpong_kernel(volatile unsigned* flag, int sleep_after) {
  unsigned seen = 0;
  for (;;) {
    unsigned v;
    int spins = 0;
    while ((v = flag[0]) == seen) {
      if (sleep_after >= 0 && ++spins > sleep_after) __nanosleep(200);
    }
    if (v == 0xffffffffu) return;
    seen = v;
    __threadfence_system();
    flag[1] = v;
    __threadfence_system();
  }
}

__global__ void zero_copy_read(const uint4* src, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    uint4 v = src[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[0] = acc;
}

template <class Launch>
static void launch_latency(const char* what, cudaStream_t s, cudaEvent_t ev, Launch launch) {
  std::vector<double> v;
  for (int i = 0; i < 1010; ++i) {
    auto t = Clock::now();
    launch();
    CHECK(cudaEventRecord(ev, s));
    while (cudaEventQuery(ev) == cudaErrorNotReady) {
    }
    if (i >= 10) v.push_back(us_since(t));
  }
  report(what, v);
}

static void pingpong(const char* what, volatile unsigned* flag, int sleep_after) {
  flag[0] = 0;
  flag[1] = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  pingpong_kernel<<<1, 1, 0, s>>>(flag, sleep_after);
  CHECK(cudaGetLastError());
  std::vector<double> v;
  bool stuck = false;
  for (unsigned i = 1; i <= 2010 && !stuck; ++i) {
    auto t = Clock::now();
    flag[0] = i;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    while (flag[1] != i) {
      if (us_since(t) > 2e6) {
        stuck = true;
        break;
      }
    }
    if (i > 10 && !stuck) v.push_back(us_since(t));
  }
  flag[0] = 0xffffffffu;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  CHECK(cudaStreamSynchronize(s));
  CHECK(cudaStreamDestroy(s));
  if (stuck) {
    std::printf("%-58s FAILED: no answer within 2 s\n", what);
    return;
  }
  report(what, v);
}

static void bandwidth(const char* what, const void* host, size_t bytes, int blocks,
                      unsigned* sink) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  float best = 1e30f;
  for (int r = 0; r < 4; ++r) {
    CHECK(cudaEventRecord(a));
    zero_copy_read<<<blocks, 256>>>((const uint4*)host, bytes / 16, sink);
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    if (r > 0) best = std::min(best, ms);
  }
  std::printf("%-58s %7.1f GB/s (%d blocks x 256)\n", what, bytes / (best * 1e-3) / 1e9, blocks);
  std::fflush(stdout);
}

int main() {
  cudaDeviceProp p;
  CHECK(cudaGetDeviceProperties(&p, 0));
  std::printf("hostmem probe: %s, %d SMs\n", p.name, p.multiProcessorCount);
  CHECK(cudaSetDeviceFlags(cudaDeviceMapHost));
  unsigned* dev;
  CHECK(cudaMalloc(&dev, 64));
  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaEvent_t ev;
  CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));

  unsigned* mapped;  // cudaHostAlloc mapped, cached
  CHECK(cudaHostAlloc((void**)&mapped, 4096, cudaHostAllocMapped | cudaHostAllocPortable));
  unsigned* wc;  // write-combined
  CHECK(cudaHostAlloc((void**)&wc, 4096,
                      cudaHostAllocMapped | cudaHostAllocPortable | cudaHostAllocWriteCombined));
  unsigned* reg = (unsigned*)aligned_alloc(4096, 4096);  // malloc + cudaHostRegister
  CHECK(cudaHostRegister(reg, 4096, cudaHostRegisterMapped | cudaHostRegisterPortable));
  mapped[0] = wc[0] = reg[0] = 1;

  launch_latency("launch: empty kernel + event", s, ev, [&] { empty_kernel<<<1, 32, 0, s>>>(); });
  launch_latency("launch: __threadfence_system + event", s, ev,
                 [&] { fence_kernel<<<1, 32, 0, s>>>(dev); });
  launch_latency("launch: read 4 B of cudaHostAlloc memory + event", s, ev,
                 [&] { read_host_kernel<<<1, 32, 0, s>>>(mapped, dev); });
  launch_latency("launch: read 4 B of cudaHostRegister memory + event", s, ev,
                 [&] { read_host_kernel<<<1, 32, 0, s>>>(reg, dev); });
  launch_latency("launch: write 4 B of cudaHostAlloc memory + event", s, ev,
                 [&] { write_host_kernel<<<1, 32, 0, s>>>(mapped); });
  launch_latency("launch: cudaMemcpyAsync 4 B HtoD + event", s, ev,
                 [&] { CHECK(cudaMemcpyAsync(dev, mapped, 4, cudaMemcpyHostToDevice, s)); });

  pingpong("ping-pong, cudaHostAlloc, spin", mapped, -1);
  pingpong("ping-pong, cudaHostAlloc, nanosleep(200) after 64 spins", mapped, 64);
  pingpong("ping-pong, cudaHostRegister, spin", reg, -1);
  pingpong("ping-pong, write-combined, spin", wc, -1);

  const size_t bytes = 256u << 20;
  void* big;
  CHECK(cudaHostAlloc(&big, bytes, cudaHostAllocMapped | cudaHostAllocPortable));
  std::fill((char*)big, (char*)big + bytes, 7);
  void* dbig;
  CHECK(cudaMalloc(&dbig, bytes));
  {
    float best = 1e30f;
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    for (int r = 0; r < 4; ++r) {
      CHECK(cudaEventRecord(a));
      CHECK(cudaMemcpyAsync(dbig, big, bytes, cudaMemcpyHostToDevice));
      CHECK(cudaEventRecord(b));
      CHECK(cudaEventSynchronize(b));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, a, b));
      if (r > 0) best = std::min(best, ms);
    }
    std::printf("%-58s %7.1f GB/s\n", "cudaMemcpy HtoD 256 MiB pinned", bytes / (best * 1e-3) / 1e9);
  }
  for (int blocks : {8, 32, 132, 528, 1056})
    bandwidth("zero-copy read 256 MiB cudaHostAlloc", big, bytes, blocks, dev);
  CHECK(cudaDeviceSynchronize());
  std::printf("hostmem probe: done\n");
  return 0;
}
