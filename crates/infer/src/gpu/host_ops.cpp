// Host build of cuda-kernels/infer_ops.cu: the very same kernel source, compiled as C++20 for the
// CPU through infer_ops.cuh's host branch, and launched the way cuLaunchKernel launches it (an
// entry name, a 1-D grid and block, and an array of pointers to the arguments). The tests run
// GpuPlans through it, so the kernels' index arithmetic is checked without a GPU.
//
// Emulation: blocks run one after the other. A kernel without warp shuffles runs its threads
// one after the other too (each thread's grid-stride loop is independent); a kernel with
// shuffles (softmax) runs each block's threads as real threads, a warp's 32 lanes meeting at a
// barrier for every exchange.
#include "infer_ops.cu"

#include <barrier>
#include <cstddef>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

struct Warp {
  explicit Warp() : bar(32) {}
  float vals[32];
  std::barrier<> bar;
};
thread_local Warp* current_warp = nullptr;

// Argument kinds as the Rust side sends them: 'p' pointer, 'u' unsigned, 'i' int, 'f' float.
template <typename P>
constexpr char kind() {
  using T = std::remove_cv_t<P>;
  if constexpr (std::is_pointer_v<T>) return 'p';
  else if constexpr (std::is_same_v<T, unsigned>) return 'u';
  else if constexpr (std::is_same_v<T, int>) return 'i';
  else if constexpr (std::is_same_v<T, float>) return 'f';
  else return '?';
}

template <typename... P, std::size_t... I>
void invoke(void (*f)(P...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

void set_thread(unsigned b, unsigned t, unsigned grid, unsigned block) {
  blockIdx = {b, 0, 0};
  threadIdx = {t, 0, 0};
  blockDim = {block, 1, 1};
  gridDim = {grid, 1, 1};
}

template <typename... P>
int launch(void (*f)(P...), const char* kinds, void** args, unsigned grid, unsigned block,
           bool warps) {
  constexpr char expect[] = {kind<P>()..., '\0'};
  if (std::strcmp(kinds, expect) != 0) return -2;  // signature mismatch
  auto call = [&] { invoke(f, args, std::index_sequence_for<P...>{}); };
  for (unsigned b = 0; b < grid; ++b) {
    if (!warps) {
      for (unsigned t = 0; t < block; ++t) {
        set_thread(b, t, grid, block);
        call();
      }
      continue;
    }
    if (block % 32 != 0) return -3;
    std::vector<std::unique_ptr<Warp>> ws;
    for (unsigned w = 0; w < block / 32; ++w) ws.push_back(std::make_unique<Warp>());
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t) {
      threads.emplace_back([&, t] {
        set_thread(b, t, grid, block);
        current_warp = ws[t / 32].get();
        call();
      });
    }
    for (auto& th : threads) th.join();
  }
  return 0;
}

struct Entry {
  const char* name;
  int (*run)(const char*, void**, unsigned, unsigned);
};

#define ENTRY(fn, warps)                                                   \
  Entry {                                                                  \
    #fn, [](const char* k, void** a, unsigned g, unsigned b) {             \
      return launch(fn, k, a, g, b, warps);                                \
    }                                                                      \
  }
#define TYPED(suf)                                                                      \
  ENTRY(infer_act_##suf, false), ENTRY(infer_scale_shift_##suf, false),                 \
      ENTRY(infer_add_##suf, false), ENTRY(infer_bias_act_##suf, false),                \
      ENTRY(infer_bias_res_act_##suf, false), ENTRY(infer_pad_##suf, false),            \
      ENTRY(infer_concat_copy_##suf, false), ENTRY(infer_softmax_##suf, true)

const Entry ENTRIES[] = {
    TYPED(f32),
    TYPED(f16),
    ENTRY(infer_convert_f32_f32, false),
    ENTRY(infer_convert_f16_f16, false),
    ENTRY(infer_convert_f32_f16, false),
    ENTRY(infer_convert_f16_f32, false),
};

}  // namespace

float infer_host_shfl_xor(float v, int o) {
  Warp& w = *current_warp;
  unsigned lane = threadIdx.x & 31u;
  w.vals[lane] = v;
  w.bar.arrive_and_wait();
  float r = w.vals[lane ^ static_cast<unsigned>(o)];
  w.bar.arrive_and_wait();
  return r;
}

// 0: ran; -1: no such entry; -2: `kinds` does not match the entry's parameter list; -3: a
// warp kernel launched with a block that is not a multiple of 32.
extern "C" int netml_infer_host_launch(const char* name, const char* kinds, unsigned grid,
                                       unsigned block, void** args) {
  for (const Entry& e : ENTRIES)
    if (std::strcmp(e.name, name) == 0) return e.run(kinds, args, grid, block);
  return -1;
}
