// gather.cu -- CUDA entry points of the netml GPU ingest (compiled with NVRTC at start; in CI
// for sm_80 / sm_90 with NVRTC 13.0 + ptxas -v). Everything they run is in gather.cuh, which the
// host build (host_gather.cpp) compiles too. No includes besides gather.cuh (resolved by NVRTC
// include names), no host headers.
#include "gather.cuh"

// Resident ("netml" mode) kernel: launch once with all blocks co-resident (grid <= occupancy,
// blockDim a multiple of 32, e.g. 32 x 256), `ring` in mapped pinned memory, `ctl` zeroed device
// memory. Runs until the host sets ring->quit.
extern "C" __global__ void gather_resident(const netml_ring* ring, netml_grid_ctl* ctl) {
  netml_resident_loop(ring, ctl);
}

// One-shot ("launch" mode) kernel: one launch per batch entry; completion is seen by polling an
// event recorded after it on the stream (never a host callback). The entry's state is ignored.
extern "C" __global__ void gather_launch(const netml_entry* entry) {
  netml_process_entry(entry);
}
