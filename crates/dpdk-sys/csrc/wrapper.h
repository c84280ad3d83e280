/*
 * The DPDK headers netml binds. bindgen runs over this file with an allowlist
 * (build.rs), so only the items netml uses become Rust items.
 * rte_config.h is force-included by pkg-config's cflags (-include rte_config.h).
 */
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>
#include <rte_telemetry.h>
#include <rte_pdump.h>

#include "shim.h"
