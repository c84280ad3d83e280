/*
 * netml_shim_*: out-of-line wrappers for DPDK's static-inline functions and
 * macros, so Rust can call them through ordinary symbols. Compiled by build.rs
 * with pkg-config's cflags (-march=corei7 -include rte_config.h).
 */
#ifndef NETML_DPDK_SHIM_H
#define NETML_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* Values of DPDK macros that bindgen cannot evaluate (function-like or casts). */
extern const uint64_t netml_shim_rss_ip;        /* RTE_ETH_RSS_IP */
extern const uint64_t netml_shim_rss_udp;       /* RTE_ETH_RSS_UDP */
extern const uint64_t netml_shim_rss_tcp;       /* RTE_ETH_RSS_TCP */
extern const uint64_t netml_shim_bad_iova;      /* RTE_BAD_IOVA */
extern const unsigned netml_shim_lcore_id_any;  /* LCORE_ID_ANY */
extern const unsigned netml_shim_mempool_namesize; /* RTE_MEMPOOL_NAMESIZE */
extern const unsigned netml_shim_ring_namesize; /* RTE_RING_NAMESIZE */
extern const unsigned netml_shim_mbuf_default_buf_size; /* RTE_MBUF_DEFAULT_BUF_SIZE */

/* rte_errno (a per-thread variable) */
int netml_shim_errno(void);
void netml_shim_set_errno(int value);

/* lcores and time */
unsigned netml_shim_lcore_id(void);
uint64_t netml_shim_rdtsc(void);

/* ethdev fast path */
uint16_t netml_shim_rx_burst(uint16_t port_id, uint16_t queue_id,
			     struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t netml_shim_tx_burst(uint16_t port_id, uint16_t queue_id,
			     struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbufs */
struct rte_mbuf *netml_shim_pktmbuf_alloc(struct rte_mempool *mp);
int netml_shim_pktmbuf_alloc_bulk(struct rte_mempool *mp,
				  struct rte_mbuf **mbufs, unsigned count);
void netml_shim_pktmbuf_free(struct rte_mbuf *m);
void netml_shim_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
void netml_shim_pktmbuf_reset(struct rte_mbuf *m);
void netml_shim_pktmbuf_reset_headroom(struct rte_mbuf *m);
void *netml_shim_pktmbuf_mtod(struct rte_mbuf *m);
char *netml_shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *netml_shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *netml_shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int netml_shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t netml_shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t netml_shim_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t netml_shim_pktmbuf_data_room_size(struct rte_mempool *mp);
uint16_t netml_shim_mbuf_refcnt_read(const struct rte_mbuf *m);

/* mempools */
unsigned netml_shim_mempool_size(const struct rte_mempool *mp);
const char *netml_shim_mempool_name(const struct rte_mempool *mp);

/* rings */
unsigned netml_shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
				       unsigned n, unsigned *free_space);
unsigned netml_shim_ring_dequeue_burst(struct rte_ring *r, void **objs,
				       unsigned n, unsigned *available);
unsigned netml_shim_ring_count(const struct rte_ring *r);
unsigned netml_shim_ring_free_count(const struct rte_ring *r);
unsigned netml_shim_ring_get_capacity(const struct rte_ring *r);

#endif
