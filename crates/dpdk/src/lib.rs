//! Safe DPDK layer (work in progress).
