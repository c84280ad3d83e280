// host_gather.cpp -- host build of gather.cuh: every host thread plays one block (one lane) of
// the resident gather kernel over the same ring protocol. Compiled by crates/gpu/build.rs.
#include "gather.cuh"

#include <cstddef>

static_assert(sizeof(netml_frag) == 16, "netml_frag layout");
static_assert(sizeof(netml_strided) == 32, "netml_strided layout");
static_assert(sizeof(netml_entry) == 256, "netml_entry layout");
static_assert(sizeof(netml_ring) == 64, "netml_ring layout");
static_assert(sizeof(netml_grid_ctl) == 128, "netml_grid_ctl layout");
static_assert(sizeof(netml_entry_head) == NETML_HEAD_WORDS * 4 &&
                  offsetof(netml_entry, bias) + sizeof(float) * NETML_MAX_CHANNELS -
                          offsetof(netml_entry, nfrags) ==
                      sizeof(netml_entry_head),
              "netml_entry_head mirrors netml_entry's words nfrags .. bias");

extern "C" {

// The persistent block loop: returns when ring->quit is seen with no READY entry at the head.
void netml_host_block_loop(const netml_ring* ring, netml_grid_ctl* ctl, netml_u32 bid,
                           netml_u32 nblocks) {
  netml_host_bid_ = bid;
  netml_host_nblocks_ = nblocks;
  netml_resident_loop(ring, ctl);
}

// One block's share of one entry (the "launch" mode's body), no ring state involved.
void netml_host_gather_block(const netml_entry* entry, netml_u32 bid, netml_u32 nblocks) {
  netml_host_bid_ = bid;
  netml_host_nblocks_ = nblocks;
  netml_process_entry(entry);
}

// Sizes and offsets, so that Rust can check its mirror of the layout.
size_t netml_host_layout(netml_u64* out, size_t cap) {
  const netml_u64 v[] = {
      sizeof(netml_frag),           offsetof(netml_frag, src),      offsetof(netml_frag, len),
      offsetof(netml_frag, dst_off), sizeof(netml_entry),           offsetof(netml_entry, state),
      offsetof(netml_entry, seq),   offsetof(netml_entry, nfrags),  offsetof(netml_entry, flags),
      offsetof(netml_entry, dst),   offsetof(netml_entry, frags),   offsetof(netml_entry, channels),
      offsetof(netml_entry, hw),    offsetof(netml_entry, scale),   offsetof(netml_entry, bias),
      offsetof(netml_entry, dst_len), offsetof(netml_entry, inline_frags), sizeof(netml_ring),
      offsetof(netml_ring, quit),   offsetof(netml_ring, nentries), offsetof(netml_ring, entries),
      sizeof(netml_grid_ctl),       offsetof(netml_grid_ctl, gen),  offsetof(netml_grid_ctl, done),
      offsetof(netml_grid_ctl, seq_errors), offsetof(netml_grid_ctl, entries_done),
      sizeof(netml_strided),        offsetof(netml_strided, srcs),  offsetof(netml_strided, dst_off),
      offsetof(netml_strided, len), offsetof(netml_strided, nfrags),
      offsetof(netml_strided, frag_size), offsetof(netml_strided, first),
      offsetof(netml_strided, src_stride),
      offsetof(netml_grid_ctl, head), sizeof(netml_entry_head), offsetof(netml_entry_head, bias),
  };
  const size_t n = sizeof(v) / sizeof(v[0]);
  for (size_t i = 0; i < n && i < cap; ++i) out[i] = v[i];
  return n;
}

}  // extern "C"
