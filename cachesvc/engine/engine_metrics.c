/* engine_metrics.c - the engine's metrics (cs_engine_metrics). */
#include "engine_int.h"

/* ---- Metrics ---------------------------------------------------------------------------- */

uint32_t cs_engine_stats_list(const cs_engine *e, cs_stat *out, uint32_t max)
{
	const cs_engine_stats *s = &e->stats;
	struct {
		const char *name;
		uint64_t v;
	} items[] = {
		{ "requests", s->requests }, { "hits", s->hits }, { "stale_hits", s->stale_hits },
		{ "misses", s->misses }, { "coalesced", s->coalesced }, { "fills", s->fills },
		{ "fill_refused_fence", s->fill_refused_fence },
		{ "fill_refused_horizon", s->fill_refused_horizon },
		{ "fill_refused_query_fence", s->fill_refused_qfence },
		{ "fill_refused_eviction", s->fill_refused_eviction },
		{ "fill_refused_epoch", s->fill_refused_epoch },
		{ "fill_refused_generation", s->fill_refused_gen }, { "fill_errors", s->fill_errors },
		{ "not_cached_large", s->not_cached_large }, { "not_cached_primary", s->not_cached_primary },
		{ "bypass_redis", s->bypass_redis }, { "bypass_requested", s->bypass_requested },
		{ "bypass_paused", s->bypass_paused },
		{ "retries", s->retries }, { "primary_fallbacks", s->primary_fallbacks },
		{ "promoted_reads", s->promoted_reads },
		{ "ryw_cache", s->ryw_cache }, { "ryw_replica", s->ryw_replica },
		{ "ryw_primary", s->ryw_primary }, { "flights", s->flights },
		{ "ryw_token_checks", s->token_checks }, { "ryw_token_refused", s->token_refused },
		{ "lease_acquired", e->lease.acquired }, { "lease_waited", e->lease.waited },
		{ "lease_served", e->lease.served }, { "lease_gone", e->lease.gone },
		{ "lease_timeouts", e->lease.timeouts }, { "lease_unavailable", e->lease.unavailable },
		{ "hit_p50_us", cs_hist_quantile(&s->hit_us, 0.5) },
		{ "hit_p99_us", cs_hist_quantile(&s->hit_us, 0.99) },
		{ "miss_p50_us", cs_hist_quantile(&s->miss_us, 0.5) },
		{ "miss_p99_us", cs_hist_quantile(&s->miss_us, 0.99) },
	};
	uint32_t n = 0;
	for (size_t i = 0; i < CS_ARRAY_LEN(items) && n < max; i++, n++) {
		out[n] = (cs_stat){ .name = items[i].name, .name_len = (uint32_t)strlen(items[i].name),
			.i = (int64_t)items[i].v };
	}
	if (e->near == NULL)
		return n;
	const cs_near_stats *ns = cs_near_get_stats(e->near);
	struct {
		const char *name;
		uint64_t v;
	} near[] = {
		{ "near_hits", ns->hits }, { "near_misses", ns->misses }, { "near_entries", ns->entries },
		{ "near_bytes", ns->bytes }, { "near_evictions", ns->evictions },
		{ "near_flushes", ns->flushes },
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(near) && n < max; i++, n++) {
		out[n] = (cs_stat){ .name = near[i].name, .name_len = (uint32_t)strlen(near[i].name),
			.i = (int64_t)near[i].v };
	}
	return n;
}

/* The near cache (near.h, engine_near.c), when configured. */
static void near_metrics(const cs_engine *e, cs_metrics *m)
{
	if (e->near == NULL)
		return;
	const cs_near_stats *n = cs_near_get_stats(e->near);
#define C(name, help, v) cs_m_u64(m, CS_M_COUNTER, "cachesvc_near_" name, help, (uint64_t)(v), NULL)
	C("hits_total", "Requests answered from the near cache (no Redis round trip)", n->hits);
	C("misses_total", "Near cache lookups that went to Redis", n->misses);
	C("stores_total", "Values stored in the near cache (from tracked Redis reads)", n->stores);
	C("evictions_total", "Near entries dropped for near_cache_size (LRU)", n->evictions);
	C("invalidations_total", "Keys named by Redis tracking invalidation messages", n->invalidations);
	C("dropped_total", "Near entries dropped by an invalidation message", n->dropped);
	C("discarded_total", "Redis replies not stored: their key was invalidated while in flight", n->discarded);
	C("flushes_total", "Whole near cache drops (tracking lost, Redis lost data, FLUSHALL)", n->flushes);
	C("echo_lost_total", "Tracking heartbeats without an echo in time (near cache turned off)", e->stats.near_echo_lost);
	C("heartbeat_failed_total", "Tracking heartbeat writes Redis refused (coherence unproven that round)", e->stats.near_hb_failed);
	C("tracking_refused_total", "CLIENT TRACKING commands Redis refused", e->stats.near_track_refused);
#undef C
	if (e->sh[0].ks.cluster) {
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_near_resent_total",
		        "Watched reads on a cluster that had to be sent again (MOVED, ASK, "
		        "TRYAGAIN, LOADING): served, not stored (untracked)",
		        e->near_resent, NULL);
		for (int i = 0; i < e->npsn; i++) {
			const psnode *p = e->psn[i];
			cs_m_u64(m, CS_M_GAUGE, "cachesvc_near_node_proven", "1 while this master's tracking is proven by its heartbeat echo (cluster)", p->tracked && p->proven ? 1 : 0, "node", p->addr, NULL);
			cs_m_u64(m, CS_M_COUNTER, "cachesvc_near_node_echoes_total", "Tracking heartbeats of this master echoed (cluster)", p->echoes, "node", p->addr, NULL);
			cs_m_u64(m, CS_M_COUNTER, "cachesvc_near_node_echo_lost_total", "Tracking heartbeats of this master without an echo in time (cluster)", p->echo_lost, "node", p->addr, NULL);
		}
	}
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_near_bytes", "Bytes held by near entries (node, key, value)", n->bytes, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_near_entries", "Entries in the near cache", n->entries, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_near_garbage_entries",
		"Flushed near entries whose memory is still being freed (a budget per loop pass)",
		n->garbage, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_near_on", "1 while the near cache's coherence is proven (tracking on)", cs_near_on(e->near) ? 1 : 0, NULL);
	cs_m_hist(m, "cachesvc_near_staleness_seconds",
		"Commit on the primary to a held near entry dropped (keys this process's invalidator sent)",
		&e->near_stale_us, NULL);
	cs_m_quantiles(m, "cachesvc_near_staleness_quantile_seconds",
		"Near staleness at quantile q since the start, from the fine histogram",
		&e->near_stale_us);
}

void cs_engine_metrics_add(const cs_engine *e, cs_metrics *m)
{
	const cs_engine_stats *s = &e->stats;
#define C(name, help, v) cs_m_u64(m, CS_M_COUNTER, "cachesvc_" name, help, (uint64_t)(v), NULL)
	C("requests_total", "GET/REFRESH requests", s->requests);
	C("cache_hits_total", "Fresh cache hits", s->hits);
	C("cache_stale_hits_total", "Stale hits served while revalidating", s->stale_hits);
	C("cache_misses_total", "Cache misses", s->misses);
	C("coalesced_total", "Misses that joined a query already in flight", s->coalesced);
	C("fills_total", "Entries stored in Redis", s->fills);
	C("fill_refused_fence_total", "Fills refused by a newer invalidation fence", s->fill_refused_fence);
	C("fill_refused_horizon_total", "Fills refused: data older than the fence horizon", s->fill_refused_horizon);
	C("fill_refused_generation_total", "Fills refused: the query generation moved", s->fill_refused_gen);
	C("fill_refused_query_fence_total", "Fills refused: data older than the query's last generation bump", s->fill_refused_qfence);
	C("fill_refused_eviction_total", "Fills refused: Redis evicted keys (a fence may be gone) and the data is older than the newest fence", s->fill_refused_eviction);
	C("fill_refused_epoch_total", "Fills refused: Redis lost data or was resynchronised since the generations were read", s->fill_refused_epoch);
	C("redis_epoch_invalid_total", "Generation polls that found the namespace's epoch missing or from another Redis run", s->epoch_invalid);
	C("redis_gens_errors_total", "Generation polls Redis refused or answered malformed (the cache is bypassed until one succeeds)", s->gens_errors);
	C("redis_epoch_changes_total", "New epochs adopted (after a resynchronisation)", s->epoch_changes);
	C("fill_errors_total", "Fills that failed in Redis", s->fill_errors);
	C("not_cached_large_total", "Results served but too large to cache", s->not_cached_large);
	C("not_cached_primary_total", "Results read on the primary (no LSN bound), not cached", s->not_cached_primary);
	C("not_cached_key_total", "Requests whose parameters are too long for a key", s->not_cached_key);
	C("negative_fills_total", "Empty results cached (negative caching)", s->negative_fills);
	C("negative_skipped_total", "Empty results not cached: the negative entries' share (negative_share) was full", s->negative_skipped);
	C("bypass_redis_total", "Requests served from PostgreSQL because Redis was unavailable", s->bypass_redis);
	C("bypass_requested_total", "Requests that asked to bypass the cache", s->bypass_requested);
	C("bypass_paused_total", "Requests for a query paused by an admin, served from PostgreSQL",
		s->bypass_paused);
	C("retries_total", "Queries retried on another server", s->retries);
	C("primary_fallbacks_total", "Queries sent to the primary", s->primary_fallbacks);
	C("promoted_reads_total", "Answers from a [replica] found out of recovery (promoted): primary data, not cached with fences on", s->promoted_reads);
	C("server_reloads_total", "Servers added, removed or changed by reloads", s->server_reloads);
	C("ryw_cache_total", "Read-your-writes requests answered from cache", s->ryw_cache);
	C("ryw_replica_total", "Read-your-writes requests answered by a replica", s->ryw_replica);
	C("ryw_primary_total", "Read-your-writes requests answered by the primary", s->ryw_primary);
	C("ryw_waits_total", "Read-your-writes requests that waited for a replica", s->ryw_waits);
	C("ryw_token_checks_total", "Read-your-writes tokens beyond the primary's known position, checked against a fresh one", s->token_checks);
	C("ryw_token_refused_total", "Read-your-writes tokens refused: beyond the primary's current position (future_lsn)", s->token_refused);
	if (e->sharded) /* (SHARDS.md section 6: an unsharded /metrics is unchanged) */
		C("ryw_other_shard_total",
		        "Read-your-writes tokens of another shard than the key's, read on the "
		        "key's shard's primary",
		        s->ryw_other_shard);
	C("invalidations_total", "Keys deleted by admin INVALIDATE", s->invalidations);
	C("generation_bumps_total", "Whole-query invalidations", s->gen_bumps);
	C("definition_bumps_total", "Generation bumps that recorded this process's query definition in Redis (a query new, changed, or under another definition at a start or reload)", s->def_bumps);
	C("definition_foreign_total", "Generations polls that found a query under another process's definition in Redis (that query bypasses the cache here)", s->def_foreign);
	C("query_unmapped_total", "Generations polls that found the invalidator's leader mapping another definition of a query, or none (that query bypasses the cache here until it maps this one)", s->unmapped);
	C("query_map_covers_total", "Generation bumps that covered a leader's new record of its mapping of a query (entries of the query filled before it maps this definition retired)", s->map_covers);
	{
		uint64_t unmapped = 0, foreign = 0, pending = 0;
		for (int i = 0; i < e->qt->nq; i++)
			for (int k = 0; k < e->nsh; k++) {
				unmapped += e->qt->qs[i].sg[k].unmapped;
				foreign += e->qt->qs[i].sg[k].def_foreign;
				pending += e->qt->qs[i].sg[k].pending_bump;
			}
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_generation_bumps_pending",
		        "Generation bumps (per query and shard) not sent yet (Redis not ready, or "
		        "waiting for the primary's position): those queries bypass the cache",
		        pending, NULL);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_queries_unmapped",
		        "Queries (per shard) the invalidator's leader does not map with this "
		        "definition: bypassing the cache here",
		        unmapped, NULL);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_queries_foreign_definition",
		        "Queries (per shard) whose Redis generation answers another process's "
		        "definition: bypassing the cache here",
		        foreign, NULL);
	}
	C("refresh_early_total", "Early (XFetch) refreshes", s->refresh_early);
	C("refresh_expired_total", "Refreshes of expired entries", s->refresh_expired);
	C("refresh_revalidate_total", "Stale-while-revalidate refreshes", s->refresh_revalidate);
	C("refresh_forced_total", "REFRESH requests", s->refresh_forced);
	C("verify_checked_total", "Cached entries the sampler compared with the primary", e->smp.checked);
	C("verify_stale_total", "Cached entries the sampler found stale (mismatch with the primary)", e->smp.stale);
	C("verify_skipped_total", "Samples skipped (changed meanwhile, invalidator behind)", e->smp.skipped);
	/* by reason: a class of keys that never verifies (bad_key: its parameters do not
	 * round-trip) shows here instead of hiding in the total */
	static const char *const reasons[CS_VERIFY_SKIPS] = { "gone", "not_entry", "bad_key",
		"query", "inv_behind", "changed" };
	_Static_assert(CS_VERIFY_SKIPS == 6, "a name for every skip reason");
	for (int i = 0; i < CS_VERIFY_SKIPS; i++)
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_verify_skipped_by_reason_total",
			"Samples skipped, by reason", e->smp.skipped_by[i], "reason", reasons[i], NULL);
	C("lease_acquired_total", "Misses that took the cross-process miss lease and queried", e->lease.acquired);
	C("lease_waited_total", "Misses that found the miss lease taken by another process and waited for its fill", e->lease.waited);
	C("lease_served_total", "Lease waits served the holder's fill from the cache (no query)", e->lease.served);
	C("lease_gone_total", "Lease waits that saw the lease released without a usable entry (or the query's generation moved), then queried", e->lease.gone);
	C("lease_timeouts_total", "Lease waits that reached the bound ([redis] lease), then queried", e->lease.timeouts);
	C("lease_unavailable_total", "Misses that could not ask Redis for the lease (down, slow, full), then queried", e->lease.unavailable);
	C("stale_if_error_total", "Stale values served because the refresh failed (within max_stale)", s->stale_if_error);
#undef C
	for (int i = 1; i <= CS_ERR_MAX; i++)
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_errors_total", "Errors answered, by code",
			s->errors[i], "code", cs_err_name(i), NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_flights", "Misses in flight", s->flights, NULL);
	cs_m_hist(m, "cachesvc_hit_seconds", "Latency of cache hits", &s->hit_us, NULL);
	cs_m_hist(m, "cachesvc_miss_seconds", "Latency of misses", &s->miss_us, NULL);
	near_metrics(e, m);

	for (int i = 0; i < e->qt->nq; i++) {
		const qstate *q = &e->qt->qs[i];
		const char *n = q->def->name;
		static const char rq[] = "Per query outcomes";
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->hits, "query", n,
			"outcome", "hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->stale_hits,
			"query",
			n, "outcome", "stale_hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_requests_total", rq, q->misses, "query",
			n,
			"outcome", "miss", NULL);
	}
	for (int i = 0; i < e->qt->nq; i++) {
		const qstate *q = &e->qt->qs[i];
		const char *n = q->def->name;
		static const char rf[] = "Per query refreshes by cause";
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf, q->refresh_early,
			"query", n, "cause", "early", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf, q->refresh_expired,
			"query", n, "cause", "expired", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_refreshes_total", rf,
			q->refresh_revalidate,
			"query", n, "cause", "revalidate", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_query_fills_total",
			"Per query entries stored in Redis",
			q->fills, "query", n, NULL);
	}

	/* requests per shard, and every server's samples labelled with its shard="NAME",
	 * only when sharded (SHARDS.md section 6: an unsharded /metrics is unchanged) */
	for (int k = 0; e->sharded && k < e->nsh; k++) {
		const shard *sh = &e->sh[k];
		const char *n = sh->ks.shard;
		static const char rc[] = "Per shard cache outcomes (MGET items each)";
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_shard_requests_total",
		        "GET/REFRESH requests (MGET items each) routed to the shard", sh->requests,
		        "shard", n, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_shard_cache_requests_total", rc, sh->hits,
		        "shard", n, "outcome", "hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_shard_cache_requests_total", rc, sh->stale_hits,
		        "shard", n, "outcome", "stale_hit", NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_shard_cache_requests_total", rc, sh->misses,
		        "shard", n, "outcome", "miss", NULL);
	}
	static const char *const srv_states[] = { "unknown", "up", "down", NULL };
	for (int i = 0; i < e->nservers; i++) {
		cs_pgserver_info in;
		cs_pgserver_info_get(e->servers[i], &in);
		if (e->sharded)
			cs_metrics_scope(m, "shard", e->sh[e->srv_shard[i]].ks.shard);
		const char *role = in.primary ? "primary" : "replica";
		const char *sv = in.name;
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_up", "Server health (1 up)", in.state == CS_SRV_UP,
			"server", sv, "role", role, NULL);
		cs_m_state(m, "cachesvc_pg_state",
			"Server health as routing sees it: unknown (not checked yet), up, down "
			"(banned until its backoff expires)",
			"state", srv_states,
			in.state == CS_SRV_UP ? "up" : in.state == CS_SRV_DOWN ? "down" : "unknown",
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_lag_seconds",
			"Replay delay behind the primary (0 when caught up)",
			(double)in.lag_ms / 1000.0, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_promoted",
			"A replica found out of recovery (1): not routed to",
			in.promoted, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_old_timeline",
			"A replica on a timeline below the primary's (1): not routed to",
			in.old_timeline,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_timeline",
			"Timeline (primary: current; replica: received); 0 unknown", in.tli,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_promotions_total", "Promotions seen",
			in.promotions,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_GAUGE, "cachesvc_pg_lag_bytes",
			"Primary WAL position minus the replay position",
			in.lag_bytes, "server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_connections", "Open pool connections",
			in.conns,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_busy", "Pool connections running a query",
			in.busy,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_pool_size", "Configured pool size", in.pool_size,
			"server", sv, NULL);
		cs_m(m, CS_M_GAUGE, "cachesvc_pg_queue_waiting",
			"Queries waiting for a pool connection",
			in.queued, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_queries_total", "Queries run", in.queries,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_errors_total", "Queries that failed",
			in.errors,
			"server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_timeouts_total", "Queries that timed out",
			in.timeouts, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_overloaded_total",
			"Queries refused: the queue was full or the wait too long", in.overloaded,
			"server",
			sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_bans_total",
			"Times the server was banned (marked down)",
			in.bans, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_conn_errors_total",
			"Connections lost and statements canceled by a recovery conflict (not bans)",
			in.conn_errors, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_prepares_total", "Statements prepared",
			in.prepares, "server", sv, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_pg_lsn_prepares_total",
			"LSN statements prepared (one per connection, again after a reload)",
			in.lsn_prepares, "server", sv, NULL);
		cs_m_summary(m, "cachesvc_pg_queue_wait_seconds",
			"Time queries waited for a pool connection",
			(double)in.queue_wait_us_sum / 1e6, in.queue_waits, "server", sv, NULL);
		cs_metrics_scope(m, NULL, NULL);
	}
	/* one invalidator per shard, labelled shard="NAME" only when sharded (SHARDS.md 6) */
	for (int k = 0; k < e->nsh; k++) {
		if (e->sh[k].inv == NULL)
			continue;
		if (e->sharded)
			cs_metrics_scope(m, "shard", cs_inv_shard_name(e->sh[k].inv));
		cs_inv_metrics(e->sh[k].inv, m);
		cs_metrics_scope(m, NULL, NULL);
	}
	cs_resolver_stats ds;
	cs_resolver_stats_get(e->resolver, &ds);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_lookups_total",
		"Host name lookups on the event loop (PostgreSQL and Redis connects)", ds.lookups,
		NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_failures_total",
		"Host name lookups that failed (timeouts included)",
		ds.failures, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_dns_timeouts_total", "Host name lookups that timed out",
		ds.timeouts, NULL);
	cs_rc_metrics(e->redis, m, "cache"); /* cluster mode: per master (rcluster_metrics.c) */
	/* a cluster: the sum over its nodes */
	cs_redis_stats sum = {0};
	for (int i = 0; i < cs_rc_nnodes(e->redis); i++) {
		cs_redis *nd = cs_rc_node(e->redis, i);
		if (nd == NULL)
			continue;
		const cs_redis_stats *ns = cs_redis_get_stats(nd);
		sum.connects += ns->connects;
		sum.disconnects += ns->disconnects;
		sum.timeouts += ns->timeouts;
		sum.refused += ns->refused;
		sum.pending += ns->pending;
	}
	const cs_redis_stats *rs = &sum;
	cs_m(m, CS_M_GAUGE, "cachesvc_redis_up", "Redis connection ready", cs_rc_ready(e->redis),
	        NULL);
	if (e->sh[0].ks.cluster) {
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_repairs_total",
		        "Buckets whose generation copy was repaired from bucket 0 after a refused "
		        "fill",
		        e->cl.repairs, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_repair_errors_total",
		        "Bucket repairs that failed or were not sent", e->cl.repair_errors, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_fanouts_total",
		        "Generation bumps of this process fanned out to every bucket",
		        e->cl.fanouts, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_fanout_errors_total",
		        "Bucket GEN_SETs of those fan-outs that failed", e->cl.fanout_errors, NULL);
		cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_cluster_mget_parts_total",
		        "Redis MGETs sent for client MGETs (one per slot)", e->cl.mget_parts, NULL);
	}
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_connects_total",
		"Redis handshakes that succeeded",
		rs->connects, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_disconnects_total",
		"Ready Redis connections lost",
		rs->disconnects, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_timeouts_total", "Redis commands that timed out",
		rs->timeouts, NULL);
	cs_m_u64(m, CS_M_COUNTER, "cachesvc_redis_refused_total",
		"Redis commands refused: not ready or too many pending", rs->refused, NULL);
	cs_m_u64(m, CS_M_GAUGE, "cachesvc_redis_pending", "Redis commands in flight", rs->pending,
		NULL);
}

long cs_engine_metrics(const cs_engine *e, char **out)
{
	cs_metrics *m = cs_metrics_new();
	if (m == NULL)
		return -1;
	cs_engine_metrics_add(e, m);
	return cs_metrics_finish(m, out);
}
