// gather.cu -- CUDA entry points of the netml GPU ingest (compiled with NVRTC at start; in CI
// for sm_80 / sm_90 with NVRTC 13.0 + ptxas -v). Everything they run is in gather.cuh, which the
// host build (host_gather.cpp) compiles too. No includes besides gather.cuh (resolved by NVRTC
// include names), no host headers.
#include "gather.cuh"

// Resident ("netml" mode) kernel: launch once with all blocks co-resident (grid <= occupancy,
// blockDim a multiple of 32, e.g. 32 x 256), `ring` in mapped pinned memory, `ctl` zeroed device
// memory. Runs until the host sets ring->quit.
// 256 threads x 4 blocks per SM at most 64 registers: the default 32 blocks fit an 8-SM partition
// (gather_resident needs every block resident at once).
#define NETML_BOUNDS __launch_bounds__(256, 4)

extern "C" __global__ void NETML_BOUNDS gather_resident(const netml_ring* ring, netml_grid_ctl* ctl) {
  netml_resident_loop(ring, ctl);
}

// One-shot ("launch" mode) kernel: one launch per batch entry; completion is seen by polling an
// event recorded after it on the stream (never a host callback). The entry's state is ignored.
// `head` is words nfrags .. bias of `*entry`, passed by value so that no block reads them over
// PCIe.
extern "C" __global__ void NETML_BOUNDS gather_launch(const netml_entry* entry, netml_entry_head head) {
  __shared__ netml_entry_head h;
  if (threadIdx.x == 0) h = head;
  __syncthreads();
  netml_process_entry_with(entry, &h);
}
