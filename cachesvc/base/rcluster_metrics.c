/* rcluster_metrics.c - a cs_rc's routing state for operators: per-node Prometheus metrics and
 * the slot map as ranges (SHOW slots). Reads the client's counters; sends nothing. */
#include <stdio.h>

#include "metrics.h"
#include "rcluster.h"

int cs_rc_slot_ranges(cs_rc *rc, cs_rc_range_cb *cb, void *priv)
{
	int start = 0;
	int owner = cs_rc_slot_node(rc, 0);
	for (int s = 1; s <= CS_RC_SLOTS; s++) {
		int o = s < CS_RC_SLOTS ? cs_rc_slot_node(rc, (uint16_t)s) : -2;
		if (o == owner)
			continue;
		cs_redis *r = owner >= 0 ? cs_rc_node(rc, owner) : NULL;
		int rv = cb(priv, start, s - 1, owner >= 0 ? cs_rc_node_addr(rc, owner) : NULL,
		        r != NULL && cs_redis_ready(r));
		if (rv != 0)
			return rv;
		start = s;
		owner = o;
	}
	return 0;
}

void cs_rc_metrics(cs_rc *rc, cs_metrics *m, const char *client)
{
	if (!cs_rc_cluster(rc))
		return; /* one Redis: the cachesvc_redis_* families say it all */
	for (int i = 0; i < cs_rc_nnodes(rc); i++) {
		const char *node = cs_rc_node_addr(rc, i);
		cs_redis *r = cs_rc_node(rc, i);
		cs_rc_node_stats st;
		cs_rc_get_node_stats(rc, i, &st);
#define NODE_C(name, help, v)                                                                      \
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_node_" name, help, (v), "client",        \
	        client, "node", node, NULL)
		cs_m(m, CS_M_GAUGE, "cachesvc_redis_cluster_node_up",
		        "Connection to this cluster master ready", r != NULL && cs_redis_ready(r),
		        "client", client, "node", node, NULL);
		NODE_C("connects_total", "Handshakes with this master that succeeded", st.connects);
		NODE_C("disconnects_total", "Ready connections to this master lost",
		        st.disconnects);
		NODE_C("timeouts_total", "Commands to this master that timed out", st.timeouts);
		NODE_C("errors_total",
		        "Commands answered by this master that failed past redirects and retries",
		        st.errors);
		NODE_C("moved_total", "MOVED redirects from this master", st.moved);
		NODE_C("ask_total", "ASK redirects from this master", st.ask);
		NODE_C("tryagain_total",
		        "TRYAGAIN, CLUSTERDOWN and LOADING answers from this master (retried)",
		        st.tryagain);
		NODE_C("slot_map_refreshes_total", "Slot maps this master answered", st.refreshes);
#undef NODE_C
	}
	const cs_rc_stats *s = cs_rc_get_stats(rc);
#define RC_C(name, help, v)                                                                        \
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_" name, help, (v), "client", client, NULL)
	RC_C("slot_map_refreshes_total", "Slot maps applied", s->refreshes);
	RC_C("slot_map_refresh_errors_total", "Slot map refreshes that failed", s->refresh_errors);
	RC_C("partial_maps_total", "Slot maps that left served slots unowned (owners kept)",
	        s->partial_maps);
	RC_C("node_changes_total", "Times the set of masters changed", s->node_changes);
	RC_C("refused_total", "Commands refused at once: their slot had no ready master",
	        s->refused);
	RC_C("redirects_exhausted_total",
	        "Commands failed on a MOVED or ASK past the redirect limit or their deadline",
	        s->redirects_exhausted);
	RC_C("retry_timeouts_total",
	        "Commands still answered TRYAGAIN or CLUSTERDOWN at their deadline",
	        s->retry_timeouts);
#undef RC_C
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_redis_cluster_pending", "Cluster commands in flight",
	        s->pending, "client", client, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_redis_cluster_slots_covered",
	        "Hash slots with a master in the current map (16384 when whole)", s->slots_covered,
	        "client", client, NULL);
	cs_m(m, CS_M_GAUGE, "cachesvc_redis_cluster_masters", "Masters in the current map",
	        cs_rc_nnodes(rc), "client", client, NULL);
}
