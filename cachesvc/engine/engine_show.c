/* engine_show.c - the engine's SHOW views (PROTOCOL.md 3.8). */
#include "engine_int.h"

/* ---- SHOW views (PROTOCOL.md 3.8) -------------------------------------------------------- */

#define SV_STR(k, str) (cs_show_cell){ .key = (k), .v = { .type = CS_V_STR, .u.s = { (str), (uint32_t)strlen(str) } } }
#define SV_INT(k, num) (cs_show_cell){ .key = (k), .v = { .type = CS_V_INT, .u.i = (int64_t)(num) } }
#define SV_BOOL(k, x)  (cs_show_cell){ .key = (k), .v = { .type = CS_V_BOOL, .u.b = (x) } }
#define SV_NIL(k)      (cs_show_cell){ .key = (k), .v = { .type = CS_V_NIL } }

static void tiers_text(unsigned tiers, char *buf, size_t len)
{
	static const char *const names[] = { "critical", "default", "batch" };
	size_t off = 0;
	buf[0] = '\0';
	for (int t = 0; t < 3; t++)
		if (tiers & (1u << t))
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s",
				off ? "," : "", names[t]);
}

struct show_cfg {
	cs_engine_show_cb *cb;
	void *priv;
	int rc;
};

static void show_cfg_line(void *priv, const char *section, const char *key, const char *value)
{
	struct show_cfg *sc = priv;
	if (sc->rc != 0)
		return;
	cs_show_cell c[3] = { SV_STR("section", section), SV_STR("key", key),
		value ? SV_STR("value", value) : SV_NIL("value") };
	sc->rc = sc->cb(sc->priv, c, 3);
}

/* SHOW slots: one row per range of slots with one master (CLUSTER SLOTS' view, as routed) */
static int show_slot_range(void *priv, int first, int last, const char *node, bool ready)
{
	struct show_cfg *sc = priv;
	cs_show_cell c[] = { SV_INT("first", first), SV_INT("last", last),
		node ? SV_STR("node", node) : SV_NIL("node"), SV_BOOL("ready", ready) };
	return sc->cb(sc->priv, c, (uint32_t)CS_ARRAY_LEN(c));
}

int cs_engine_show(const cs_engine *e, const char *what, cs_engine_show_cb *cb, void *priv)
{
	int rc = 0;
	if (strcmp(what, "queries") == 0) {
		static const char *const kinds[] = { "row", "list", "aggregate" };
		for (int i = 0; i < e->qt->nq && rc == 0; i++) {
			const qstate *q = &e->qt->qs[i];
			const cs_query_def *d = q->def;
			char params[CS_MAX_PARAMS * (CS_MAX_NAME + 16)];
			size_t off = 0;
			params[0] = '\0';
			for (int p = 0; p < d->nparams && off < sizeof params; p++)
				off += (size_t)snprintf(params + off, sizeof params - off, "%s%s:%s",
					p ? "," : "", d->params[p].name, cs_param_type_name(d->params[p].type));
			cs_show_cell c[] = {SV_STR("name", d->name), SV_STR("params", params),
			        SV_INT("ttl_ms", d->ttl_ms),
			        SV_STR("kind", d->kind <= CS_KIND_AGGREGATE ? kinds[d->kind] : "?"),
			        /* the implicit shard's (a column per shard: SHARDS.md step 6) */
			        q->sg[0].gen_known ? SV_INT("generation", q->sg[0].gen)
			                           : SV_NIL("generation"),
			        SV_INT("hits", q->hits), SV_INT("stale_hits", q->stale_hits),
			        SV_INT("misses", q->misses), SV_INT("fills", q->fills),
			        SV_BOOL("pending_bump", q->sg[0].pending_bump),
			        SV_BOOL("paused", q->paused)};
			rc = cb(priv, c, (uint32_t)CS_ARRAY_LEN(c));
		}
		return rc;
	}
	if (strcmp(what, "servers") == 0) {
		static const char *const states[] = { "unknown", "up", "down" };
		for (int i = 0; i < e->nservers && rc == 0; i++) {
			cs_pgserver_info in;
			cs_pgserver_info_get(e->servers[i], &in);
			char tiers[64], lsn[CS_LSN_STRLEN];
			tiers_text(in.tiers, tiers, sizeof tiers);
			cs_lsn_format(in.lsn, lsn);
			bool up = in.state == CS_SRV_UP;
			/* sharded, a last column names the server's shard (SHARDS.md 6; PROTOCOL.md
			 * 3.8: new columns at the end, review 33 R33-3) */
			cs_show_cell c[] = {SV_STR("name", in.name),
			        SV_STR("role", in.primary ? "primary" : "replica"),
			        SV_STR("tiers", tiers),
			        SV_STR("state",
			                (unsigned)in.state < 3 ? states[in.state] : "unknown"),
			        SV_BOOL("in_recovery", in.in_recovery),
			        SV_BOOL("promoted", in.promoted),
			        /* measured only while up: a down server's old numbers would read as
			         * "caught up" (PROTOCOL.md 3.8: nil = not known) */
			        up ? SV_INT("lag_ms", in.lag_ms) : SV_NIL("lag_ms"),
			        up ? SV_INT("lag_bytes", in.lag_bytes) : SV_NIL("lag_bytes"),
			        up && in.lsn ? SV_STR("lsn", lsn) : SV_NIL("lsn"),
			        in.tli ? SV_INT("timeline", in.tli) : SV_NIL("timeline"),
			        SV_INT("pool_size", in.pool_size), SV_INT("conns", in.conns),
			        SV_INT("busy", in.busy), SV_INT("queued", in.queued),
			        SV_INT("queries", in.queries), SV_INT("errors", in.errors),
			        SV_INT("conn_errors", in.conn_errors), SV_INT("bans", in.bans),
			        SV_STR("shard", e->sh[e->srv_shard[i]].ks.shard)};
			uint32_t skip = e->sharded ? 0 : 1; /* unsharded: no shard column */
			rc = cb(priv, c, (uint32_t)CS_ARRAY_LEN(c) - skip);
		}
		return rc;
	}
	if (strcmp(what, "invalidator") == 0) {
		const cs_config *cfg = e->qt->cfg;
		if (e->sh[0].inv == NULL) { /* all of them or none */
			cs_show_cell c[] = { SV_BOOL("enabled", false) };
			return cb(priv, c, 1);
		}
		/* one row per shard's invalidator; sharded, a last column names the shard */
		static const char *const states[] = { "idle", "standby", "setup", "streaming" };
		for (int k = 0; k < e->nsh && rc == 0; k++) {
			const shard *sh = &e->sh[k];
			const cs_inv_stats *st = cs_inv_get_stats(sh->inv);
			char conf[CS_LSN_STRLEN], hor[CS_LSN_STRLEN];
			cs_lsn_format(st->confirmed, conf);
			cs_lsn_format(st->horizon, hor);
			cs_show_cell behind = SV_NIL("bytes_behind");
			if (sh->primary) {
				cs_pgserver_info in;
				cs_pgserver_info_get(sh->primary, &in);
				if (in.state == CS_SRV_UP && in.lsn != 0 && st->confirmed != 0)
					behind = SV_INT("bytes_behind",
					        in.lsn > st->confirmed ? in.lsn - st->confirmed
					                               : 0);
			}
			const char *slot = e->sharded        ? cs_inv_slot(sh->inv)
			                   : cfg->inval_slot ? cfg->inval_slot
			                                     : "";
			cs_show_cell c[] = {SV_BOOL("enabled", true),
			        SV_STR("state",
			                (unsigned)st->state < 4 ? states[st->state] : "idle"),
			        SV_STR("slot", slot),
			        SV_STR("publication",
			                cfg->inval_publication ? cfg->inval_publication : ""),
			        SV_STR("confirmed_lsn", conf), SV_STR("horizon_lsn", hor), behind,
			        SV_BOOL("leader", st->state == CS_INV_STREAMING),
			        SV_INT("reconnects", st->reconnects),
			        SV_STR("shard", cs_inv_shard_name(sh->inv))};
			uint32_t skip = e->sharded ? 0 : 1; /* unsharded: no shard column */
			rc = cb(priv, c, (uint32_t)CS_ARRAY_LEN(c) - skip);
		}
		return rc;
	}
	if (strcmp(what, "slots") == 0) {
		struct show_cfg sc = { cb, priv, 0 };
		return cs_rc_slot_ranges(e->redis, show_slot_range, &sc);
	}
	if (strcmp(what, "config") == 0) {
		struct show_cfg sc = { cb, priv, 0 };
		cs_config_each(e->qt->cfg, show_cfg_line, &sc);
		return sc.rc;
	}
	return -CS_ERR_BAD_PARAMS;
}
