//! Raw DPDK bindings (work in progress).
