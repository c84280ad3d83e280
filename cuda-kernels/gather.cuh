// gather.cuh -- netml GPU ingest: the gather routine, the u8 HWC -> f32 CHW conversion and the
// doorbell ring protocol, written once for two targets:
//
//   * CUDA (NVRTC): compiled from gather.cu; blocks are CUDA blocks, lanes are warp lanes.
//   * host (g++/clang++, C++20): compiled from host_gather.cpp; every "block" is one host
//     thread with one lane (blockDim = 1, warp size = 1), fed by the same ring.
//
// Only the small portability layer below differs between the two. Keep this file NVRTC-friendly:
// no host headers on the CUDA side, no libcu++, only builtins (threadIdx, uint4, atomicAdd,
// __threadfence_system, __syncthreads).
//
// The protocol is documented in docs/gpu-ingest.md. The layout of netml_frag, netml_entry,
// netml_ring and netml_grid_ctl is mirrored in crates/gpu/src/ring.rs (checked by a test through
// netml_host_layout()).
#ifndef NETML_GATHER_CUH
#define NETML_GATHER_CUH

typedef unsigned char netml_u8;
typedef unsigned int netml_u32;
typedef unsigned long long netml_u64;

// ---------------------------------------------------------------------------------------------
// Portability layer
// ---------------------------------------------------------------------------------------------
#if defined(__CUDACC__)

#define NETML_FN __device__ __forceinline__
#define NETML_SHARED __shared__

NETML_FN netml_u32 netml_tid() { return threadIdx.x; }
NETML_FN netml_u32 netml_ntid() { return blockDim.x; }
NETML_FN netml_u32 netml_bid() { return blockIdx.x; }
NETML_FN netml_u32 netml_nblocks() { return gridDim.x; }
// Lanes of one warp; blockDim.x must be a multiple of 32.
NETML_FN netml_u32 netml_lane() { return threadIdx.x & 31u; }
NETML_FN netml_u32 netml_nlanes() { return 32u; }
NETML_FN netml_u32 netml_warp() { return blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); }
NETML_FN netml_u32 netml_nwarps() { return gridDim.x * (blockDim.x >> 5); }

NETML_FN void netml_sync_block() { __syncthreads(); }
// Lane `from`'s `v`, in every lane (the whole warp must call it: warp-uniform control flow).
NETML_FN netml_u32 netml_shfl(netml_u32 v, netml_u32 from) {
  return __shfl_sync(0xffffffffu, v, (int)from);
}
NETML_FN netml_u64 netml_shfl64(netml_u64 v, netml_u32 from) {
  return __shfl_sync(0xffffffffu, v, (int)from);
}
// Polled words are read with volatile loads (ld.volatile: never served from a stale L1 line).
NETML_FN netml_u32 netml_load(const netml_u32* p) { return *(const volatile netml_u32*)p; }
NETML_FN netml_u64 netml_load64(const netml_u64* p) { return *(const volatile netml_u64*)p; }
NETML_FN void netml_store(netml_u32* p, netml_u32 v) { *(volatile netml_u32*)p = v; }
NETML_FN netml_u32 netml_atomic_add(netml_u32* p, netml_u32 v) { return atomicAdd(p, v); }
// System scope: orders our accesses to mapped host memory against the host's.
NETML_FN void netml_fence_system() { __threadfence_system(); }
NETML_FN void netml_relax(netml_u32* spins) {
  ++*spins;
#if __CUDA_ARCH__ >= 700
  if (*spins > 64u) __nanosleep(200);
#endif
}
// 16-byte vector copy (ld.global.v4.u32 / st.global.v4.u32).
NETML_FN void netml_copy16(netml_u8* d, const netml_u8* s) {
  *(uint4*)d = *(const uint4*)s;
}
typedef uint4 netml_v16;
NETML_FN netml_v16 netml_load16(const netml_u8* s) { return *(const uint4*)s; }
NETML_FN void netml_store16(netml_u8* d, netml_v16 v) { *(uint4*)d = v; }
NETML_FN void netml_copy4(netml_u8* d, const netml_u8* s) {
  *(netml_u32*)d = *(const netml_u32*)s;
}
NETML_FN float netml_f32_from_bits(netml_u32 b) { return __int_as_float((int)b); }

#else  // host build -----------------------------------------------------------------------------

#include <atomic>
#include <cstring>
#include <sched.h>
#include <time.h>

#define NETML_FN static inline
#define NETML_SHARED /* one thread per host block: a local is block-shared */

// Set by the host entry points (host_gather.cpp) before entering the common code.
static thread_local netml_u32 netml_host_bid_ = 0;
static thread_local netml_u32 netml_host_nblocks_ = 1;

NETML_FN netml_u32 netml_tid() { return 0; }
NETML_FN netml_u32 netml_ntid() { return 1; }
NETML_FN netml_u32 netml_bid() { return netml_host_bid_; }
NETML_FN netml_u32 netml_nblocks() { return netml_host_nblocks_; }
NETML_FN netml_u32 netml_lane() { return 0; }
NETML_FN netml_u32 netml_nlanes() { return 1; }
NETML_FN netml_u32 netml_warp() { return netml_host_bid_; }
NETML_FN netml_u32 netml_nwarps() { return netml_host_nblocks_; }

NETML_FN void netml_sync_block() {}
// One lane per warp: lane 0's value is the value.
NETML_FN netml_u32 netml_shfl(netml_u32 v, netml_u32) { return v; }
NETML_FN netml_u64 netml_shfl64(netml_u64 v, netml_u32) { return v; }
NETML_FN netml_u32 netml_load(const netml_u32* p) {
  return std::atomic_ref<netml_u32>(*const_cast<netml_u32*>(p)).load(std::memory_order_relaxed);
}
NETML_FN netml_u64 netml_load64(const netml_u64* p) {
  return std::atomic_ref<netml_u64>(*const_cast<netml_u64*>(p)).load(std::memory_order_relaxed);
}
NETML_FN void netml_store(netml_u32* p, netml_u32 v) {
  std::atomic_ref<netml_u32>(*p).store(v, std::memory_order_relaxed);
}
NETML_FN netml_u32 netml_atomic_add(netml_u32* p, netml_u32 v) {
  return std::atomic_ref<netml_u32>(*p).fetch_add(v, std::memory_order_relaxed);
}
NETML_FN void netml_fence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// Host "blocks" share few cores with the producer: spin briefly, then yield, then sleep.
NETML_FN void netml_relax(netml_u32* spins) {
  ++*spins;
  if (*spins < 64u) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else if (*spins < 2048u) {
    sched_yield();
  } else {
    struct timespec ts = {0, 20000};  // 20 us
    nanosleep(&ts, nullptr);
  }
}
NETML_FN void netml_copy16(netml_u8* d, const netml_u8* s) { std::memcpy(d, s, 16); }
struct netml_v16 {
  netml_u8 b[16];
};
NETML_FN netml_v16 netml_load16(const netml_u8* s) {
  netml_v16 v;
  std::memcpy(v.b, s, 16);
  return v;
}
NETML_FN void netml_store16(netml_u8* d, netml_v16 v) { std::memcpy(d, v.b, 16); }
NETML_FN void netml_copy4(netml_u8* d, const netml_u8* s) { std::memcpy(d, s, 4); }
NETML_FN float netml_f32_from_bits(netml_u32 b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

#endif  // portability layer

// ---------------------------------------------------------------------------------------------
// Shared layout (host <-> kernel). Pointers travel as u64 (UVA: same value on host and device).
// ---------------------------------------------------------------------------------------------
#define NETML_STATE_FREE 0u
#define NETML_STATE_READY 1u
#define NETML_STATE_DONE 2u

#define NETML_FLAG_CONVERT 1u  // u8 HWC fragments -> f32 CHW slot, out = x * scale[c] + bias[c]
// `frags` holds `nfrags` netml_strided images (always out of line) instead of netml_frag
// descriptors: fragment i of an image is frag_size bytes at i * frag_size, the last one short.
#define NETML_FLAG_STRIDED 2u

#define NETML_INLINE_FRAGS 8u
#define NETML_MAX_CHANNELS 4u

struct netml_frag {  // 16 bytes
  netml_u64 src;     // source payload address
  netml_u32 len;     // bytes
  netml_u32 dst_off; // byte offset in the gathered (u8) image
};

// One image of a strided entry: contiguous, non-overlapping fragments (what the completeness
// verifier hands over), so the producer validates it in O(1) and sends one u64 per fragment.
struct netml_strided {  // 32 bytes
  netml_u64 srcs;       // address of the first of nfrags u64 source addresses
  netml_u32 dst_off;    // where the image starts, bytes from the entry's dst (0 when converting)
  netml_u32 len;        // image bytes: (nfrags - 1) * frag_size < len <= nfrags * frag_size
  netml_u32 nfrags;
  netml_u32 frag_size;
  netml_u32 first;      // fragments of the entry's earlier images (spreads images over warps)
  netml_u32 src_stride; // bytes from one source address to the next (8: an array; more: a field
                        // of the producer's per-fragment records, read in place)
};

struct netml_entry {  // 256 bytes; entries are 64-byte aligned
  netml_u32 state;    // FREE / READY / DONE (the only word both sides write)
  netml_u32 seq;      // sequence number published with READY (low 32 bits of the ticket)
  netml_u32 nfrags;
  netml_u32 flags;    // NETML_FLAG_*
  netml_u64 dst;      // slot address (u8 bytes, or f32 CHW when converting)
  netml_u64 frags;    // address of nfrags descriptors (0 -> inline_frags), or of nfrags
                      // netml_strided images with NETML_FLAG_STRIDED
  netml_u32 channels; // convert: C (<= NETML_MAX_CHANNELS)
  netml_u32 hw;       // convert: H * W
  float scale[NETML_MAX_CHANNELS];
  float bias[NETML_MAX_CHANNELS];
  netml_u64 dst_len;  // slot size in bytes (informational, checked by the producer)
  netml_u8 pad_[48];
  struct netml_frag inline_frags[NETML_INLINE_FRAGS];
};

// ring->quit values. DRAIN: stop once no READY entry is at the head (everything published is
// gathered first). ABORT: the host gave up waiting for a drain (a block that never reaches the
// grid handoff, e.g. not co-resident): the grid waits no longer for each other and exits, the
// entry in progress stays READY.
#define NETML_QUIT_DRAIN 1u
#define NETML_QUIT_ABORT 2u
// The grid waits read ring->quit (mapped host memory: a PCIe read on a GPU) only every this
// many spins, so the fast path of the handoff touches device memory alone.
#define NETML_ABORT_POLL 1024u

struct netml_ring {  // 64 bytes, in shared (mapped pinned) memory
  netml_u32 quit;      // NETML_QUIT_DRAIN or NETML_QUIT_ABORT, set by the host (0: run)
  netml_u32 nentries;
  netml_u64 entries;   // address of nentries netml_entry
  netml_u8 pad_[48];
};

// Consumer-private grid coordination (device memory on the GPU; zeroed before the launch).
struct netml_grid_ctl {  // 128 bytes
  netml_u32 gen;         // broadcast word: bumped by block 0 for each entry (and for stop)
  netml_u32 cur;         // index of the entry of generation `gen`
  netml_u32 stop;        // 1: blocks exit at the next generation
  netml_u32 done;        // per-block done counter: reaches gen * nblocks (mod 2^32)
  netml_u32 seq_errors;  // READY entries seen with an unexpected seq (must stay 0)
  netml_u32 pad0_;
  netml_u64 entries_done;
  netml_u8 pad_[32];
  // Words nfrags .. bias of the entry of generation `gen` (netml_entry_head), copied by block 0
  // before it bumps `gen`: the other blocks read them here, in device memory, not over PCIe.
  netml_u32 head[16];
};

// ---------------------------------------------------------------------------------------------
// Gather: one fragment is copied by one warp (lanes stride over its 16-byte words).
// Correct for any alignment: when src and dst agree modulo 16 we copy head bytes, a 16-byte body
// and tail bytes; modulo 4 the same with 4-byte words; otherwise bytes.
// ---------------------------------------------------------------------------------------------
NETML_FN void netml_copy_span(netml_u8* dst, const netml_u8* src, netml_u32 len, netml_u32 lane,
                              netml_u32 nlanes) {
  const netml_u64 s = (netml_u64)src, d = (netml_u64)dst;
  netml_u32 w = 1;
  if (((s ^ d) & 15u) == 0) w = 16;
  else if (((s ^ d) & 3u) == 0) w = 4;
  netml_u32 head = 0, body = 0;
  if (w > 1) {
    head = (netml_u32)((w - (s & (w - 1))) & (w - 1));
    if (head > len) head = len;
    body = (len - head) & ~(w - 1);
  }
  const netml_u32 tail_start = head + body;
  // Head and tail bytes (at most 2 * 15), spread over the lanes.
  for (netml_u32 i = lane; i < head; i += nlanes) dst[i] = src[i];
  for (netml_u32 i = tail_start + lane; i < len; i += nlanes) dst[i] = src[i];
  if (w == 16) {
    // Two loads per lane in flight before the stores (a source in host memory is a PCIe round
    // trip away; load, store, load... waits for each in turn). Two cover a 1 KiB payload (64
    // vectors, 32 lanes); more spill registers under the 64 that 4 blocks per SM allow.
    const netml_u32 n = body >> 4;
    const netml_u8* s16 = src + head;
    netml_u8* d16 = dst + head;
    for (netml_u32 i = lane; i < n; i += 2u * nlanes) {
      const netml_u32 j = i + nlanes;
      const netml_v16 a = netml_load16(s16 + 16u * i);
      netml_v16 b = a;
      if (j < n) b = netml_load16(s16 + 16u * j);
      netml_store16(d16 + 16u * i, a);
      if (j < n) netml_store16(d16 + 16u * j, b);
    }
  } else if (w == 4) {
    const netml_u32 n = body >> 2;
    for (netml_u32 i = lane; i < n; i += nlanes) netml_copy4(dst + head + 4u * i, src + head + 4u * i);
  } else {
    for (netml_u32 i = lane; i < len; i += nlanes) dst[i] = src[i];
  }
}

// u8 HWC bytes at image offset `off` -> f32 CHW: out[c][p] = x * scale[c] + bias[c],
// with p = pixel index (h * W + w) and c = channel.
NETML_FN void netml_convert_span(float* dst, const netml_u8* src, netml_u32 len, netml_u32 off,
                                 netml_u32 channels, netml_u32 hw, const float* scale,
                                 const float* bias, netml_u32 lane, netml_u32 nlanes) {
  for (netml_u32 i = lane; i < len; i += nlanes) {
    const netml_u32 o = off + i;
    const netml_u32 p = o / channels;
    const netml_u32 c = o - p * channels;
    dst[(netml_u64)c * hw + p] = (float)src[i] * scale[c] + bias[c];
  }
}

// Reads of the entry and its descriptors cross PCIe (mapped host memory, volatile: uncached), one
// round trip each however many threads ask for the same word. Every thread reading every field
// cost ~1 ms per entry on the H200 machine (32 blocks x 256 threads); so each word is read by one
// thread and shared: the entry's fields once per block (shared memory), descriptors by one lane
// each for 32 fragments at a time (warp shuffles).
struct netml_entry_head {
  netml_u32 nfrags;
  netml_u32 flags;
  netml_u64 dst;
  netml_u64 frags;
  netml_u32 channels;
  netml_u32 hw;
  float scale[NETML_MAX_CHANNELS];
  float bias[NETML_MAX_CHANNELS];
};
// Words 2..17 of netml_entry: nfrags .. bias.
#define NETML_HEAD_WORDS 16u

// The block's copy of `e`'s fields (threads 0..15 read one word each; with `also`, each also
// stores its word there and fences). Every thread of the block must call it; `h` is
// block-shared.
NETML_FN void netml_read_head_words(const netml_u32* in, netml_entry_head* h, netml_u32* also) {
  netml_u32* out = (netml_u32*)h;
  for (netml_u32 i = netml_tid(); i < NETML_HEAD_WORDS; i += netml_ntid()) {
    const netml_u32 w = netml_load(in + i);
    out[i] = w;
    if (also) {
      netml_store(also + i, w);
      netml_fence_system();  // the copy happens-before block 0's gen store (after the barrier)
    }
  }
  netml_sync_block();
}
NETML_FN void netml_read_head(const netml_entry* e, netml_entry_head* h) {
  netml_read_head_words((const netml_u32*)&e->nfrags, h, 0);
}

// Fragment `i` of a strided image: i * frag_size bytes in, frag_size long except the last.
// Converting entries (one image each) convert, the others copy, as in netml_process_entry.
NETML_FN void netml_process_strided(const netml_entry_head* h, netml_u8* dst,
                                    const netml_strided* im) {
  const netml_u32 lane = netml_lane(), nlanes = netml_nlanes();
  const netml_u32 warp = netml_warp(), nwarps = netml_nwarps();
  const netml_u32 convert = h->flags & NETML_FLAG_CONVERT;
  for (netml_u32 j = 0; j < h->nfrags; ++j) {
    // The image's 8 words, word w read by lane w (on the host: lane 0 reads them all).
    const netml_u32* rec = (const netml_u32*)&im[j];
    netml_u32 mine = 0;
    if (lane < 8u) mine = netml_load(rec + lane);
    netml_u32 w[8];
    for (netml_u32 k = 0; k < 8u; ++k) w[k] = nlanes == 1u ? netml_load(rec + k) : netml_shfl(mine, k);
    const netml_u8* srcs = (const netml_u8*)((netml_u64)w[0] | ((netml_u64)w[1] << 32));
    const netml_u32 at = w[2], len = w[3], n = w[4], fs = w[5], first = w[6], stride = w[7];
    // Entry-wide fragment first + i goes to warp (first + i) mod nwarps.
    const netml_u32 start = (warp + nwarps - first % nwarps) % nwarps;
    for (netml_u32 base = start; base < n; base += nlanes * nwarps) {
      // Lane l reads the source address of fragment base + l * nwarps.
      const netml_u32 own = base + lane * nwarps;
      netml_u64 own_src = 0;
      if (own < n) own_src = netml_load64((const netml_u64*)(srcs + (netml_u64)own * stride));
      for (netml_u32 k = 0; k < nlanes; ++k) {
        const netml_u32 i = base + k * nwarps;
        if (i >= n) break;
        const netml_u8* src = (const netml_u8*)netml_shfl64(own_src, k);
        const netml_u32 off = i * fs;  // < len: checked by the producer
        const netml_u32 rest = len - off;
        const netml_u32 l = rest < fs ? rest : fs;
        if (convert) {
          netml_convert_span((float*)dst, src, l, off, h->channels, h->hw, h->scale, h->bias,
                             lane, nlanes);
        } else {
          netml_copy_span(dst + at + off, src, l, lane, nlanes);
        }
      }
    }
  }
}

// All warps of all blocks cooperate on one entry whose fields are `h` (the block's copy):
// fragment f goes to warp f mod nwarps. Warp-uniform control flow throughout (shuffles).
NETML_FN void netml_process_entry_with(const netml_entry* e, const netml_entry_head* h) {
  netml_u8* const dst = (netml_u8*)h->dst;
  const netml_u32 lane = netml_lane(), nlanes = netml_nlanes();
  const netml_u32 nwarps = netml_nwarps();
  if (h->flags & NETML_FLAG_STRIDED) {
    netml_process_strided(h, dst, (const netml_strided*)h->frags);
    return;
  }
  const netml_frag* fr = h->frags ? (const netml_frag*)h->frags : e->inline_frags;
  const netml_u32 convert = h->flags & NETML_FLAG_CONVERT;
  for (netml_u32 base = netml_warp(); base < h->nfrags; base += nlanes * nwarps) {
    // Lane l reads the descriptor of fragment base + l * nwarps.
    const netml_u32 own = base + lane * nwarps;
    netml_u64 own_src = 0;
    netml_u32 own_len = 0, own_off = 0;
    if (own < h->nfrags) {
      own_src = netml_load64(&fr[own].src);
      own_len = netml_load(&fr[own].len);
      own_off = netml_load(&fr[own].dst_off);
    }
    for (netml_u32 k = 0; k < nlanes; ++k) {
      if (base + k * nwarps >= h->nfrags) break;
      const netml_u8* src = (const netml_u8*)netml_shfl64(own_src, k);
      const netml_u32 len = netml_shfl(own_len, k);
      const netml_u32 off = netml_shfl(own_off, k);
      if (convert) {
        netml_convert_span((float*)dst, src, len, off, h->channels, h->hw, h->scale, h->bias,
                           lane, nlanes);
      } else {
        netml_copy_span(dst + off, src, len, lane, nlanes);
      }
    }
  }
}

// The whole entry, its fields read by this block (the host build's launch-mode body). Every
// thread of the block must call it (it synchronises the block).
NETML_FN void netml_process_entry(const netml_entry* e) {
  NETML_SHARED netml_entry_head h;
  netml_read_head(e, &h);
  netml_process_entry_with(e, &h);
}

// ---------------------------------------------------------------------------------------------
// Resident consumer loop (the persistent kernel body; on the host, one thread per block).
//
// Block 0 thread 0 polls ring entry `head` until it is READY with the expected seq (or quit),
// then broadcasts it: ctl->cur = head, system fence, ctl->gen += 1. Thread 0 of every other block
// spins on ctl->gen, fences, reads ctl->cur (or ctl->stop). All blocks copy their share, then
// thread 0 of each block fences and increments ctl->done. Block 0 waits for done == gen * nblocks
// (wrapping arithmetic), fences at system scope and stores DONE into the entry. Block 0 only
// publishes generation g+1 after every block counted generation g, so no block misses one.
// All blocks must be co-resident (grid <= occupancy), as for any persistent kernel; if one is
// not, NETML_QUIT_ABORT still ends the waits of the blocks that run (see netml_ring).
// ---------------------------------------------------------------------------------------------
// Whether the host asked for an abort; reads the ring only every NETML_ABORT_POLL spins.
NETML_FN netml_u32 netml_abort_requested(const netml_ring* ring, netml_u32 spins) {
  return (spins % NETML_ABORT_POLL) == 0u && netml_load(&ring->quit) >= NETML_QUIT_ABORT;
}

NETML_FN void netml_resident_loop(const netml_ring* ring, netml_grid_ctl* ctl) {
  const netml_u32 nblocks = netml_nblocks();
  netml_entry* const entries = (netml_entry*)netml_load64(&ring->entries);
  const netml_u32 nentries = netml_load(&ring->nentries);
  NETML_SHARED netml_u32 s_stop;
  NETML_SHARED netml_u32 s_cur;
  NETML_SHARED netml_entry_head h;

  if (netml_bid() == 0) {
    // Only thread 0's copies are used. `aborted`: the last handoff was given up on ABORT, so
    // the next iteration stops the grid instead of polling the ring.
    netml_u32 head = 0, seq = 0, gen = 0, aborted = 0;
    for (;;) {
      if (netml_tid() == 0) {
        netml_u32 spins = 0;
        netml_u32 stop = aborted;
        while (!stop) {
          netml_entry* e = &entries[head];
          if (netml_load(&e->state) == NETML_STATE_READY) {
            netml_fence_system();  // acquire: descriptors written before READY are visible
            if (netml_load(&e->seq) == seq) break;
            netml_atomic_add(&ctl->seq_errors, 1);
          }
          if (netml_load(&ring->quit)) { stop = 1; break; }
          netml_relax(&spins);
        }
        s_stop = stop;
        s_cur = head;
      }
      netml_sync_block();
      // The entry's fields, read over PCIe once for the grid: for this block and into ctl.
      if (!s_stop) netml_read_head_words((const netml_u32*)&entries[s_cur].nfrags, &h, ctl->head);
      if (netml_tid() == 0) {
        if (s_stop) {
          netml_store(&ctl->stop, 1);
        } else {
          netml_store(&ctl->cur, s_cur);
        }
        netml_fence_system();
        ++gen;
        netml_store(&ctl->gen, gen);
      }
      if (s_stop) return;
      netml_process_entry_with(&entries[s_cur], &h);
      netml_sync_block();
      if (netml_tid() == 0) {
        netml_fence_system();
        netml_atomic_add(&ctl->done, 1);
        netml_u32 spins = 0;
        while (netml_load(&ctl->done) != gen * nblocks) {
          netml_relax(&spins);
          // A block that never counts (not co-resident, stuck) would hold block 0 here
          // forever, and with it the host's shutdown: on ABORT give the entry up.
          if (netml_abort_requested(ring, spins)) { aborted = 1; break; }
        }
        if (!aborted) {
          netml_fence_system();  // release: every block's copy happens-before DONE
          netml_store(&entries[head].state, NETML_STATE_DONE);
          ctl->entries_done += 1;
          head = (head + 1 == nentries) ? 0 : head + 1;
          ++seq;
        }
      }
    }
  } else {
    netml_u32 seen = 0;  // last generation handled (thread 0's copy)
    for (;;) {
      if (netml_tid() == 0) {
        netml_u32 spins = 0;
        netml_u32 g;
        netml_u32 stop = 0;
        // Block 0 may never run (not co-resident): on ABORT stop without its broadcast.
        while ((g = netml_load(&ctl->gen)) == seen) {
          netml_relax(&spins);
          if (netml_abort_requested(ring, spins)) { stop = 1; break; }
        }
        if (!stop) {
          seen = g;
          netml_fence_system();  // acquire: pairs with block 0's fence before the gen store
          stop = netml_load(&ctl->stop);
          s_cur = netml_load(&ctl->cur);
        }
        s_stop = stop;
      }
      netml_sync_block();
      if (s_stop) return;
      netml_read_head_words(ctl->head, &h, 0);
      netml_process_entry_with(&entries[s_cur], &h);
      netml_sync_block();
      if (netml_tid() == 0) {
        netml_fence_system();  // release: this block's copy happens-before the count
        netml_atomic_add(&ctl->done, 1);
      }
    }
  }
}

#endif  // NETML_GATHER_CUH
