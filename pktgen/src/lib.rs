//! netml-pktgen (work in progress).
