/* See shim.h. Every function here is a one-line call of a DPDK inline. */
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>

#include "shim.h"

const uint64_t netml_shim_rss_ip = RTE_ETH_RSS_IP;
const uint64_t netml_shim_rss_udp = RTE_ETH_RSS_UDP;
const uint64_t netml_shim_rss_tcp = RTE_ETH_RSS_TCP;
const uint64_t netml_shim_bad_iova = RTE_BAD_IOVA;
const unsigned netml_shim_lcore_id_any = LCORE_ID_ANY;
const unsigned netml_shim_mempool_namesize = RTE_MEMPOOL_NAMESIZE;
const unsigned netml_shim_ring_namesize = RTE_RING_NAMESIZE;
const unsigned netml_shim_mbuf_default_buf_size = RTE_MBUF_DEFAULT_BUF_SIZE;

int netml_shim_errno(void) { return rte_errno; }
void netml_shim_set_errno(int value) { rte_errno = value; }

unsigned netml_shim_lcore_id(void) { return rte_lcore_id(); }
uint64_t netml_shim_rdtsc(void) { return rte_rdtsc(); }

uint16_t netml_shim_rx_burst(uint16_t port_id, uint16_t queue_id,
			     struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t netml_shim_tx_burst(uint16_t port_id, uint16_t queue_id,
			     struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *netml_shim_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int netml_shim_pktmbuf_alloc_bulk(struct rte_mempool *mp,
				  struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void netml_shim_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void netml_shim_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

void netml_shim_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

void netml_shim_pktmbuf_reset_headroom(struct rte_mbuf *m)
{
	rte_pktmbuf_reset_headroom(m);
}

void *netml_shim_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

char *netml_shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *netml_shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *netml_shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int netml_shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t netml_shim_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t netml_shim_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t netml_shim_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

uint16_t netml_shim_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

unsigned netml_shim_mempool_size(const struct rte_mempool *mp) { return mp->size; }
const char *netml_shim_mempool_name(const struct rte_mempool *mp) { return mp->name; }

unsigned netml_shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
				       unsigned n, unsigned *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}

unsigned netml_shim_ring_dequeue_burst(struct rte_ring *r, void **objs,
				       unsigned n, unsigned *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}

unsigned netml_shim_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned netml_shim_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }
unsigned netml_shim_ring_get_capacity(const struct rte_ring *r) { return rte_ring_get_capacity(r); }
