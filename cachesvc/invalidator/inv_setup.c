/* inv_setup.c - the invalidator's setup steps, in order (enum step in inv_int.h):
 * IDENTIFY_SYSTEM, the timeline record, the slot (query, drop a lost one, create),
 * START_REPLICATION, the slot's position read again once the stream holds it, then the Redis
 * synchronisation (epoch, gap flush or data-loss resync, owed bumps) and the stream's start
 * (see invalidator.c; reviews 48-50: start_read). */
#include "inv_int.h"

/* ---- Setup steps ------------------------------------------------------------------------ */

void inv_send_cmd(cs_inv *inv, step next, const char *sql)
{
	inv->st = next;
	inv_step_deadline(inv);
	if (!PQsendQuery(inv->conn, sql)) {
		inv_restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	int rc = PQflush(inv->conn);
	if (rc < 0) {
		inv_restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	inv_conn_wait(inv, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

/* ---- Redis steps of the setup ---------------------------------------------------------- */

typedef struct setupctx {
	cs_inv *inv;
	uint64_t epoch;
} setupctx;

static void on_setup_reply(cs_rc *r, redisReply *reply, void *priv);
static void start_replication(cs_inv *inv);

static void redis_step(cs_inv *inv, step st, int script, int nkeys, int argc, const char **argv,
	const size_t *lens)
{
	inv->st = st;
	inv_step_deadline(inv);
	setupctx *c = malloc(sizeof *c);
	if (c == NULL) {
		inv_restart(inv, "out of memory", false);
		return;
	}
	*c = (setupctx){ .inv = inv, .epoch = inv->epoch };
	if (inv_script(inv, 0, script, on_setup_reply, c, nkeys, argc, argv, lens) != 0) {
		free(c);
		inv_restart(inv, "redis is not ready for the invalidator's setup", false);
	}
}

/* After IDENTIFY_SYSTEM: record this primary's (system identifier, timeline) in Redis, raised
 * only; a server of the same system on a lower timeline than the newest recorded is an old
 * primary that came back (listed first in a multi-host conninfo, or restarted after a
 * failover): never streamed from. */
static void timeline_check(cs_inv *inv)
{
	char tli[16];
	snprintf(tli, sizeof tli, "%u", inv->tli);
	const char *argv[] = { inv->ks.timeline, inv->ks.pos, inv->sysid, tli };
	size_t lens[] = { inv->ks.timeline_len, inv->ks.pos_len, strlen(inv->sysid), strlen(tli) };
	redis_step(inv, ST_TIMELINE, CS_SCRIPT_TIMELINE, 2, 4, argv, lens);
}

static void timeline_done(cs_inv *inv, const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != REDIS_REPLY_INTEGER ||
		reply->element[1]->type != REDIS_REPLY_STRING) {
		inv_restart(inv, "unexpected reply to the timeline script", false);
		return;
	}
	long long status = reply->element[0]->integer;
	const redisReply *prev = reply->element[1];
	snprintf(inv->stale_recorded, sizeof inv->stale_recorded, "%.*s", (int)prev->len, prev->str);
	if (status == 0) {
		/* look at its slot first: an old primary still holding it should drop it */
		inv->stale_server = true;
	} else if (status == 2) {
		cs_warn("invalidator%s%s: %s:%s has system identifier %s, not the one recorded "
		        "(%s): another database cluster; recorded timeline %u",
		        INV_LOG_SHARD(inv), PQhost(inv->conn), PQport(inv->conn), inv->sysid,
		        inv->stale_recorded, inv->tli);
	}
	inv_setup_next(inv, ST_TIMELINE);
}

/* The server is an old primary (a timeline below the newest recorded for its system): loud
 * error, counted; its host is left out of the conninfo for a while and the connection is
 * retried with backoff. */
static void stale_refuse(cs_inv *inv)
{
	char host[300], why[700];
	snprintf(host, sizeof host, "%s:%s", PQhost(inv->conn), PQport(inv->conn));
	inv->stats.stale_primary++;
	const char *rec_tli = strchr(inv->stale_recorded, ':');
	cs_error("invalidator%s%s: %s is a STALE PRIMARY: system %s on timeline %u, but timeline "
	         "%s of that system was seen (a failover promoted another server; this one came "
	         "back without following it): never streaming from it%s",
	        INV_LOG_SHARD(inv), host, inv->sysid, inv->tli, rec_tli ? rec_tli + 1 : "?",
	        inv->slot_missing ? "" : "; it still holds the slot");
	if (!inv->slot_missing)
		cs_error("invalidator%s%s: drop slot \"%s\" on %s after rejoining it as a replica "
		         "(SELECT pg_drop_replication_slot('%s')): it holds WAL there",
		        INV_LOG_SHARD(inv), inv->slot, host, inv->slot);
	uint64_t now = cs_now_us();
	int k = 0;
	for (int i = 0; i < (int)CS_ARRAY_LEN(inv->skip); i++) {
		if (strcmp(inv->skip[i].hostport, host) == 0 || inv->skip[i].until_us < now) {
			k = i;
			break;
		}
		if (inv->skip[i].until_us < inv->skip[k].until_us)
			k = i;
	}
	snprintf(inv->skip[k].hostport, sizeof inv->skip[k].hostport, "%s", host);
	inv->skip[k].until_us = now + 60u * 1000000u;
	snprintf(why, sizeof why, "%s is a stale primary (timeline %u < %s); skipping it for 60 s",
		host, inv->tli, rec_tli ? rec_tli + 1 : "?");
	inv_restart(inv, why, false);
}

/* host, hostaddr and port lists of the conninfo without the servers being skipped, in
 * out_host/out_addr/out_port ("" when not given). False when nothing is skipped (or
 * everything would be: then libpq's own order is kept). */
bool inv_conninfo_without_skipped(cs_inv *inv, char *out_host, char *out_addr, char *out_port,
	size_t cap)
{
	uint64_t now = cs_now_us();
	bool any = false;
	for (int i = 0; i < (int)CS_ARRAY_LEN(inv->skip); i++)
		any = any || (inv->skip[i].hostport[0] && inv->skip[i].until_us > now);
	if (!any)
		return false;
	PQconninfoOption *opts = PQconninfoParse(inv->conninfo, NULL);
	if (opts == NULL)
		return false;
	char *host = NULL, *addr = NULL, *port = NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = strdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addr = strdup(o->val);
		else if (strcmp(o->keyword, "port") == 0)
			port = strdup(o->val);
	}
	PQconninfoFree(opts);
	char *hs[64], *as[64], *ps[64];
	int nh = cs_split_list(host, hs, 64), na = cs_split_list(addr, as, 64), np = cs_split_list(port, ps, 64);
	int n = nh > na ? nh : na;
	bool changed = false;
	size_t lh = 0, la = 0, lp = 0;
	out_host[0] = out_addr[0] = out_port[0] = '\0';
	int kept = 0;
	for (int i = 0; n > 1 && i < n; i++) {
		const char *h = i < nh && hs[i][0] ? hs[i] : i < na ? as[i] : "";
		const char *p = np == 1 ? ps[0] : i < np && ps[i][0] ? ps[i] : "5432";
		char hp[300];
		snprintf(hp, sizeof hp, "%s:%s", h, p);
		bool skip = false;
		for (int k = 0; k < (int)CS_ARRAY_LEN(inv->skip); k++)
			skip = skip || (inv->skip[k].until_us > now && strcmp(inv->skip[k].hostport, hp) == 0);
		if (skip) {
			changed = true;
			continue;
		}
		const char *sep = kept ? "," : "";
		if (nh)
			lh += (size_t)snprintf(out_host + lh, cap - CS_MIN(lh, cap), "%s%s", sep, i < nh ? hs[i] : "");
		if (na)
			la += (size_t)snprintf(out_addr + la, cap - CS_MIN(la, cap), "%s%s", sep, i < na ? as[i] : "");
		if (np)
			lp += (size_t)snprintf(out_port + lp, cap - CS_MIN(lp, cap), "%s%s", sep, np == 1 ? ps[0] : i < np ? ps[i] : "");
		kept++;
	}
	free(host);
	free(addr);
	free(port);
	return changed && kept > 0 && lh < cap && la < cap && lp < cap;
}

/* The slot is missing: owe a gap flush durably first, so a crash between CREATE and the
 * flush still flushes at the next start. */
static void pre_create(cs_inv *inv)
{
	char gap[CS_NAME_MAX], mark[CS_NAME_MAX];
	size_t gl = cs_ks_gap(&inv->ks, gap, sizeof gap, inv->slot);
	size_t ml = cs_ks_slotmark(&inv->ks, mark, sizeof mark, inv->slot);
	const char *argv[] = { gap, mark };
	size_t lens[] = { gl, ml };
	redis_step(inv, ST_PRE_CREATE, CS_SCRIPT_PRE_CREATE, 2, 2, argv, lens);
}

/* Once the stream holds the slot and its position is known (start_read), before reading
 * it: check the epoch (Redis lost data?), perform an owed gap flush, learn the owed
 * debounced bumps (CS_SCRIPT_SYNC). Nobody can move the slot meanwhile, so every verdict
 * rests on the position the stream starts at (review 49 R49-1: run before START, a verdict
 * at an older position, and the epoch it wrote, hid a loss from every later check; and a
 * standby's sync, every second, ran against the leader's Redis state). */
static void sync_state(cs_inv *inv)
{
	cs_lsn_t lsn = inv->xlogpos;
	if (inv->consistent > lsn)
		lsn = inv->consistent;
	/* positions of an earlier stream count only on the same timeline: after a failover the
	 * old primary's WAL past the switch point never happened on the new one */
	bool same_tli = inv->stream_tli == 0 || inv->stream_tli == inv->tli;
	if (!same_tli)
		inv->received = inv->lag_seen = 0;
	if (same_tli && inv->received > lsn)
		lsn = inv->received;
	if (same_tli && cs_ledger_confirmed(inv->ledger) > lsn)
		lsn = cs_ledger_confirmed(inv->ledger);
	if (inv->slot_confirmed > lsn)
		lsn = inv->slot_confirmed; /* a standby may see a new slot past its IDENTIFY */
	inv->sync_lsn = lsn;
	if (inv->ks.cluster) {
		inv->st = ST_SYNC;
		inv_step_deadline(inv);
		inv_c_sync(inv, lsn);
		return;
	}
	int n = inv->nq;
	size_t argc = 7 + 2 * (size_t)n + 6 + 2 * (size_t)n;
	const char **argv = calloc(argc, sizeof *argv);
	size_t *lens = calloc(argc, sizeof *lens);
	char (*keys)[CS_NAME_MAX + CS_MAX_NAME] = calloc(2 * (size_t)n + 1, sizeof *keys);
	char gap[CS_NAME_MAX], mark[CS_NAME_MAX], hex[17], px[24], rnd[17], whex[17] = "";
	if (argv == NULL || lens == NULL || keys == NULL) {
		free(argv);
		free(lens);
		free(keys);
		inv_restart(inv, "out of memory", false);
		return;
	}
	size_t k = 0;
	argv[k] = inv->ks.epoch;
	lens[k++] = inv->ks.epoch_len;
	argv[k] = inv->ks.horizon;
	lens[k++] = inv->ks.horizon_len;
	argv[k] = gap;
	lens[k++] = cs_ks_gap(&inv->ks, gap, sizeof gap, inv->slot);
	argv[k] = mark;
	lens[k++] = cs_ks_slotmark(&inv->ks, mark, sizeof mark, inv->slot);
	argv[k] = inv->ks.deb;
	lens[k++] = inv->ks.deb_len;
	argv[k] = inv->ks.pos;
	lens[k++] = inv->ks.pos_len;
	argv[k] = inv->ks.fmax;
	lens[k++] = inv->ks.fmax_len;
	for (int q = 0; q < n; q++) {
		const char *name = cs_inv_map_query_name(inv->map, q);
		argv[k] = keys[2 * q];
		lens[k++] = cs_ks_gen(&inv->ks, keys[2 * q], sizeof keys[0], name);
		argv[k] = keys[2 * q + 1];
		lens[k++] = cs_ks_qfence(&inv->ks, keys[2 * q + 1], sizeof keys[0], name);
	}
	int nkeys = (int)k;
	cs_lsn_hex(lsn, hex);
	snprintf(px, sizeof px, "%lld", (long long)inv->horizon_ttl_ms);
	snprintf(rnd, sizeof rnd, "%016llx", (unsigned long long)cs_rand64());
	if (inv->slot_confirmed)
		cs_lsn_hex(inv->slot_confirmed, whex);
	const char *fixed[] = { inv->ks.channel, whex, rnd, hex, px, inv->gap_owed ? "1" : "0" };
	for (int i = 0; i < 6; i++) {
		argv[k] = fixed[i];
		lens[k++] = strlen(fixed[i]);
	}
	for (int q = 0; q < n; q++) {
		argv[k] = cs_inv_map_query_name(inv->map, q);
		lens[k] = strlen(argv[k]);
		k++;
		argv[k] = cs_inv_map_depends(inv->map, q) ? "1" : "0";
		lens[k++] = 1;
	}
	redis_step(inv, ST_SYNC, CS_SCRIPT_SYNC, nkeys, (int)k, argv, lens);
	free(argv);
	free(lens);
	free(keys);
}

static void sync_done(cs_inv *inv, const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
		reply->element[0]->type != REDIS_REPLY_INTEGER ||
		reply->element[1]->type != REDIS_REPLY_STRING ||
		reply->element[1]->len >= (long)sizeof inv->epoch_str ||
		reply->element[3]->type != REDIS_REPLY_ARRAY) {
		inv_restart(inv, "unexpected reply to the resynchronisation script", false);
		return;
	}
	long long status = reply->element[0]->integer;
	memcpy(inv->epoch_str, reply->element[1]->str, (size_t)reply->element[1]->len);
	inv->epoch_str[reply->element[1]->len] = '\0';
	inv->epoch_len = (size_t)reply->element[1]->len;
	bool had_mark = reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[2]->integer == 1;
	inv_sync_finish(inv, status, had_mark, reply->element[3]);
}

void inv_sync_finish(cs_inv *inv, long long status, bool had_mark, const redisReply *deb)
{
	char a[CS_LSN_STRLEN];
	cs_lsn_format(inv->sync_lsn, a);
	if (status == 2) {
		inv->stats.redis_data_loss++;
		cs_error("invalidator%s%s: Redis LOST DATA (the namespace's epoch was written by "
		         "another Redis run: a inv_restart without the last writes, or a "
		         "failover): bumped every query's generation with a query-level fence at "
		         "%s and raised the horizon to it; caching resumes with data at least that "
		         "new",
		        INV_LOG_SHARD(inv), a);
	} else if (status == 3 && (inv->ever_synced || had_mark)) {
		inv->stats.redis_data_loss++;
		cs_error("invalidator%s%s: Redis LOST DATA (the namespace's epoch is gone: "
		         "FLUSHALL/FLUSHDB or a inv_restart without persistence): raised the "
		         "horizon to %s; caching resumes with data at least that new",
		        INV_LOG_SHARD(inv), a);
	} else if (status == 4) {
		cs_warn("invalidator%s%s: Redis restarted or failed over, and kept every "
		        "invalidation up to the slot's confirmed position: nothing lost; new epoch",
		        INV_LOG_SHARD(inv));
	} else if (status == 3) {
		cs_info("invalidator%s%s: no cache state in Redis for namespace \"%s\" (first "
		        "start): horizon %s",
		        INV_LOG_SHARD(inv), inv->ks.ns, a);
	}
	if (status == 1) {
		inv->stats.gap_flushes++;
		/* On a first start there is nothing cached to drop: worth a line, not a warning. */
		cs_log(inv->first_start ? CS_LOG_INFO : CS_LOG_WARNING,
			"invalidator: gap flushed%s: every dependent query's generation bumped with a "
			"query-level fence at %s", inv->first_start ? " (first start)" : "", a);
	}
	inv->first_start = false;
	/* The horizon: fences of earlier leaders above the slot's confirmed position are
	 * rewritten by the replay; after a flush or a loss, nothing below sync_lsn may fill. */
	inv->h_start = (status > 0 && status != 4) || inv->slot_confirmed == 0 ? inv->sync_lsn : inv->slot_confirmed;
	inv->gap_owed = false;
	inv->ever_synced = true;
	inv->pos_sent = 0; /* Redis may have lost inv:pos: publish it again (it never lowers) */
	inv->pos0_sent = inv->posr_sent = 0;
	inv->posr_last_us = 0; /* a cluster: every bucket's copy at once */
	inv->pos_fails = inv->posr_fails = 0;
	inv->pos_retry_us = inv->posr_retry_us = 0;
	uint64_t now = cs_now_us();
	for (size_t i = 0; i + 1 < deb->elements; i += 2) {
		const redisReply *nm = deb->element[i], *lv = deb->element[i + 1];
		uint64_t lsn;
		if (nm->type != REDIS_REPLY_STRING || lv->type != REDIS_REPLY_STRING ||
			!cs_lsn_unhex(lv->str, (size_t)lv->len, &lsn))
			continue;
		for (int q = 0; q < inv->nq; q++) {
			const char *name = cs_inv_map_query_name(inv->map, q);
			/* owed by an earlier leader: perform it at once */
			if (strlen(name) == (size_t)nm->len && memcmp(name, nm->str, (size_t)nm->len) == 0)
				cs_ledger_owe(inv->ledger, q, lsn, now);
		}
	}
	/* The stream restarts at the slot's confirmed position: confirm nothing past it that
	 * this stream has not had acknowledged itself. */
	cs_ledger_start_at(inv->ledger, inv->slot_confirmed ? inv->slot_confirmed : inv->consistent);
	inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
	if (inv->start_check)
		inv_streaming_begins(inv);
	else
		start_replication(inv);
}

static void on_setup_reply(cs_rc *r, redisReply *reply, void *priv)
{
	setupctx *c = priv;
	cs_inv *inv = c->inv;
	bool current = c->epoch == inv->epoch;
	free(c);
	if (!current)
		return;
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		inv->stats.redis_failures++;
		inv_restart(inv, reply ? reply->str : "redis did not answer the invalidator's setup", false);
		return;
	}
	if (inv->st == ST_PRE_CREATE) {
		bool had = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
		if (inv->slot_was_lost || had) {
			inv->stats.slot_lost++;
			cs_error("invalidator%s%s: slot \"%s\" was LOST (%s): changes may have "
			         "been missed; recreating it and dropping every dependent query's "
			         "cache entries (generation bump with a query-level fence)",
			        INV_LOG_SHARD(inv), inv->slot,
			        inv->slot_was_lost ? "invalidated, e.g. past max_slot_wal_keep_size"
			                           : "it streamed before and is gone: dropped, or "
			                             "a failover to a server without it");
		} else {
			inv->stats.slot_created++;
			inv->first_start = true;
			cs_info("invalidator%s%s: slot \"%s\" does not exist and never streamed "
			        "for this namespace (first start): creating it",
			        INV_LOG_SHARD(inv), inv->slot);
		}
		char sql[512];
		snprintf(sql, sizeof sql,
			"CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput (SNAPSHOT 'nothing')", inv->slot);
		inv_send_cmd(inv, ST_SLOT_CREATE, sql);
		return;
	}
	if (inv->st == ST_SYNC)
		sync_done(inv, reply);
	if (inv->st == ST_TIMELINE)
		timeline_done(inv, reply);
}

static void start_replication(cs_inv *inv)
{
	char sql[512];
	snprintf(sql, sizeof sql,
		"START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (\"proto_version\" '1', "
		"\"publication_names\" '\"%s\"', \"messages\" 'true')",
		inv->slot, inv->publication);
	inv_send_cmd(inv, ST_START, sql);
}

/* One setup command's result has arrived: record what it says. Returns false when the
 * connection was restarted (stop handling it). */
bool inv_setup_result(cs_inv *inv, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char msg[400];
	snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
	cs_chomp(msg);
	switch (inv->st) {
	case ST_IDENTIFY:
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4 ||
			PQgetisnull(res, 0, 3)) {
			inv_restart(inv, st == PGRES_TUPLES_OK ? "IDENTIFY_SYSTEM: not a database connection" : msg,
				false);
			return false;
		}
		(void)cs_lsn_parse(PQgetvalue(res, 0, 2), &inv->xlogpos);
		/* systemid, timeline: an old primary that came back has the system's id and a
		 * lower timeline than the newest recorded (timeline_check) */
		snprintf(inv->sysid, sizeof inv->sysid, "%s", PQgetvalue(res, 0, 0));
		inv->tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
		if (inv->sysid[0] == '\0' || strspn(inv->sysid, "0123456789") != strlen(inv->sysid) ||
			inv->tli == 0) {
			inv_restart(inv, "IDENTIFY_SYSTEM: no system identifier or timeline", false);
			return false;
		}
		return true;
	case ST_SLOT_QUERY:
		if (st != PGRES_TUPLES_OK) {
			inv_restart(inv, msg, false);
			return false;
		}
		inv->slot_missing = PQntuples(res) == 0;
		/* review 28 R28-1: a slot name is per server: a slot of this name in another
		 * database (another shard's, or another service's) is not ours to stand by for */
		if (PQntuples(res) == 1 && PQnfields(res) > 2 && !PQgetisnull(res, 0, 2) &&
			strcmp(PQgetvalue(res, 0, 2), "f") == 0) {
			char why[300];
			snprintf(why, sizeof why,
				"slot \"%s\" belongs to another database of this server (a slot name "
				"is per server: give each shard its own [shard] slot)",
				inv->slot);
			cs_error("invalidator%s%s: %s", INV_LOG_SHARD(inv), why);
			inv_restart(inv, why, false);
			return false;
		}
		inv->slot_lost = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
			strcmp(PQgetvalue(res, 0, 0), "lost") == 0;
		inv->slot_confirmed = 0;
		if (PQntuples(res) == 1 && PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
			(void)cs_lsn_parse(PQgetvalue(res, 0, 1), &inv->slot_confirmed);
		/* held by nobody when read (start_read): a handover cannot move it before START */
		inv->slot_free_at_read = PQntuples(res) == 1 && PQnfields(res) > 3 &&
		        !PQgetisnull(res, 0, 3) && strcmp(PQgetvalue(res, 0, 3), "f") == 0;
		return true;
	case ST_SLOT_DROP:
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			inv_restart(inv, msg, false);
			return false;
		}
		return true;
	case ST_SLOT_CREATE:
		if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
			inv_restart(inv, msg, false);
			return false;
		}
		/* slot_name, consistent_point, snapshot_name, output_plugin: changes committed
		 * before the consistent point are never decoded (fence.c, the gap) */
		inv->consistent = 0;
		if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) > 1 &&
			!PQgetisnull(res, 0, 1))
			(void)cs_lsn_parse(PQgetvalue(res, 0, 1), &inv->consistent);
		if (inv->consistent == 0) {
			inv_restart(inv, "CREATE_REPLICATION_SLOT returned no consistent point", false);
			return false;
		}
		return true;
	case ST_START:
		if (sqlstate && strcmp(sqlstate, "55006") == 0) {
			/* the slot is active elsewhere: another invalidator leads */
			inv_restart(inv, msg, true);
			return false;
		}
		if (sqlstate && strcmp(sqlstate, "55000") == 0 && strstr(msg, "can no longer get changes")) {
			inv->slot_lost = true; /* invalidated: drop, recreate, flush */
			return true;
		}
		inv_restart(inv, msg, false);
		return false;
	default:
		return true;
	}
}

/* The command of step `done` completed: send the next one. */
void inv_setup_next(cs_inv *inv, step done)
{
	char sql[512];
	switch (done) {
	case ST_IDENTIFY:
		timeline_check(inv);
		return;
	case ST_TIMELINE: /* also for a stale server: the slot it holds is reported */
		snprintf(sql, sizeof sql,
			"SELECT wal_status, confirmed_flush_lsn, database = current_database(), "
			"active FROM pg_replication_slots WHERE slot_name = '%s'", inv->slot);
		inv_send_cmd(inv, ST_SLOT_QUERY, sql);
		return;
	case ST_SLOT_QUERY:
	case ST_START: /* START_REPLICATION failed on a lost slot */
		if (inv->stale_server) {
			stale_refuse(inv);
		} else if (inv->slot_lost) {
			snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT \"%s\"", inv->slot);
			inv_send_cmd(inv, ST_SLOT_DROP, sql);
		} else if (inv->slot_missing) {
			pre_create(inv);
		} else if (done == ST_SLOT_QUERY) {
			if (inv->start_check)
				start_replication(inv);
			else
				sync_state(inv); /* the order before review 49: a test's control */
		} else {
			inv_restart(inv, "START_REPLICATION failed", false);
		}
		return;
	case ST_SLOT_DROP:
		inv->slot_lost = false;
		inv->slot_missing = true;
		inv->slot_was_lost = true;
		inv_setup_next(inv, ST_SLOT_QUERY);
		return;
	case ST_SLOT_CREATE:
		inv->slot_missing = false;
		inv->slot_was_lost = false;
		inv->slot_confirmed = 0;
		inv->slot_free_at_read = true; /* made by this connection: nobody held it */
		inv->gap_owed = true;
		if (inv->start_check)
			start_replication(inv);
		else
			sync_state(inv);
		return;
	default:
		return;
	}
}

/* The record acknowledged: the stream is read from now on. Nothing it carries is decoded,
 * invalidated or confirmed before Redis holds the mapping it is decoded with (review 41
 * R41-8: a query the leader stopped mapping was still recorded as mapped while the changes
 * decoded without it were confirmed). */
static void on_map_record(cs_rc *r, redisReply *reply, void *priv)
{
	cmdctx *c = priv;
	cs_inv *inv = c->inv;
	bool go = c->epoch == inv->epoch && reply && reply->type != REDIS_REPLY_ERROR;
	if (go && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		cs_info("invalidator%s%s: recorded its mapping of %lld quer%s (review 36 R36-1: "
			"processes cover a new record with a generation bump before using it)",
			INV_LOG_SHARD(inv), reply->integer, reply->integer == 1 ? "y" : "ies");
	inv_on_cmd_reply(r, reply, priv); /* a failure restarts the stream */
	if (go && inv->st == ST_STREAMING) {
		inv->map_pending = false;
		inv_conn_wait(inv, EV_READ);
		inv_stream_read(inv);
		inv_tick_rearm(inv);
	}
}

/* A re-assertion of the record answered: nothing waits on it; a failure is said at most once
 * a minute (the next status interval sends it again). */
typedef struct remap {
	cs_inv *inv;
	uint64_t epoch;
} remap;

static void on_map_again(cs_rc *r, redisReply *reply, void *priv)
{
	remap *m = priv;
	cs_inv *inv = m->inv;
	bool current = m->epoch == inv->epoch;
	free(m);
	if (!current || (reply && reply->type != REDIS_REPLY_ERROR))
		return;
	uint64_t now = cs_now_us();
	if (now - inv->remap_warned_us > 60u * 1000u * 1000u) {
		inv->remap_warned_us = now;
		cs_info("invalidator%s%s: the query mapping record could not be re-asserted (%s): "
			"sent again in a status interval", INV_LOG_SHARD(inv),
			reply ? reply->str : "redis unavailable");
	}
}

/* Review 36 R36-1, R36-2: records, at the stream's start, the mapping it decodes with from
 * h_start on (keyspace.h <ns>:inv:qmap): a process uses a query only while the leader maps
 * its definition, and covers a new record with a bump fenced at h_start or later. again:
 * the same once per status interval while streaming (review 41 R41-4: a record a deposed
 * leader's late write, a key deleted by hand or an older leader left is put right; an
 * unchanged record writes nothing); its failure restarts nothing. */
static void record_mapping(cs_inv *inv, bool again)
{
	int n = 0;
	for (int q = 0; q < inv->nq; q++)
		n += cs_inv_map_depends(inv->map, q);
	size_t argc = 3 + 2 * (size_t)n;
	const char **argv = calloc(argc, sizeof *argv);
	size_t *lens = calloc(argc, sizeof *lens);
	char hex[17];
	cs_lsn_hex(inv->h_start, hex);
	int sent = -1;
	if (argv && lens) {
		argv[0] = inv->ks.qmap;
		lens[0] = inv->ks.qmap_len;
		argv[1] = inv->ks.channel;
		lens[1] = inv->ks.channel_len;
		argv[2] = hex;
		lens[2] = 16;
		size_t a = 3;
		for (int q = 0; q < inv->nq; q++) {
			if (!cs_inv_map_depends(inv->map, q))
				continue;
			argv[a] = cs_inv_map_query_name(inv->map, q);
			lens[a] = strlen(argv[a]);
			argv[a + 1] = inv->mfp[q];
			lens[a + 1] = 16;
			a += 2;
		}
		if (again) {
			remap *m = malloc(sizeof *m);
			if (m) {
				*m = (remap){.inv = inv, .epoch = inv->epoch};
				sent = inv_script(inv, 0, CS_SCRIPT_MAP_RECORD, on_map_again, m, 1,
				        (int)argc, argv, lens);
				if (sent != 0)
					free(m);
			}
		} else {
			cmdctx *c = inv_cmd_new(inv, UINT64_MAX);
			if (c) {
				sent = inv_script(inv, 0, CS_SCRIPT_MAP_RECORD, on_map_record, c, 1,
				        (int)argc, argv, lens);
				if (sent == 0)
					inv_cmd_sent(inv, c, 0);
				else
					free(c);
			}
		}
	}
	free(argv);
	free(lens);
	if (sent != 0 && !again)
		inv_restart(inv, "the query mapping record could not be sent", false);
}

/* Once per status interval (the horizon's publication), while streaming: record_mapping's
 * re-assertion, once the start's record was acknowledged. */
void inv_map_reassert(cs_inv *inv)
{
	if (inv->st == ST_STREAMING && !inv->map_pending)
		record_mapping(inv, true);
}

/* Review 41 R41-2's residue, reviews 48 and 49. The slot's position W0 is read
 * (ST_SLOT_QUERY) before START_REPLICATION: a leader handing over in between confirms more,
 * then lets the slot go, and the stream starts at W1 > W0. Everything set up from the
 * position must rest on W1: the Redis synchronisation's verdicts (Redis kept everything up to
 * it: status 4; on a cluster the probe and stamp), the owed bumps it reads from
 * <ns>:inv:deb (the leader may have recorded more for changes this stream never sees:
 * R48-1), the ledger's start, the horizon's floor and (e3)'s mapping record. So the
 * synchronisation runs once the stream holds the slot (nobody else can move it then), after
 * the position was read again through the primary's pool. A read that cannot be made (the
 * pool down or full, a stale server in front of it: R48-3) leaves W0 when the slot was held by
 * nobody when read (only a whole other leader's start, stream and stop inside this setup
 * could have moved it, not a handover) and restarts the stream otherwise. */
/* The read could not be made (why): true when the position read before START stands (the
 * slot was held by nobody then), else the stream restarts and false. */
static bool read_failed_stands(cs_inv *inv, const char *why)
{
	if (!inv->slot_free_at_read) {
		inv_restart(inv, why, false);
		return false;
	}
	cs_info("invalidator%s%s: %s; the slot was free when read, so the position read stands",
	        INV_LOG_SHARD(inv), why);
	return true;
}

typedef struct startread {
	cs_pgjob job;
	cs_inv *inv;
	uint64_t epoch;
	char pid[16];
	const char *vals[2];
	int lens[2], fmts[2];
	cs_pg_params params;
} startread;

static void on_start_read(cs_pgjob *job, const PGresult *res, cs_lsn_t lsn, int err,
	const char *msg, bool retryable)
{
	(void)lsn, (void)retryable;
	startread *s = job->priv;
	cs_inv *inv = s->inv;
	bool current = s->epoch == inv->epoch && inv->st == ST_HELD && !inv->stopping;
	free(s);
	if (!current)
		return; /* the stream restarted meanwhile (its next start reads again), or stops */
	char why[400], a[CS_LSN_STRLEN], b[CS_LSN_STRLEN];
	cs_lsn_t used = inv->slot_confirmed ? inv->slot_confirmed : inv->consistent;
	cs_lsn_t w = 0;
	bool held = err == 0 && res != NULL && PQntuples(res) == 1 && PQnfields(res) == 2 &&
	            !PQgetisnull(res, 0, 0) && cs_lsn_parse(PQgetvalue(res, 0, 0), &w) &&
	            !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	if (held && w > used) {
		inv->stats.start_moved++;
		cs_info("invalidator%s%s: slot \"%s\" was confirmed to %s before this stream held it "
		        "(%s when read: an earlier leader confirmed more as it handed over): "
		        "synchronising from there (review 41 R41-2)", INV_LOG_SHARD(inv), inv->slot,
		        cs_lsn_format(w, a), cs_lsn_format(used, b));
		inv->slot_confirmed = w;
	} else if (held && w < used) {
		/* cannot happen while this connection holds the slot (review 52: only a primary
		 * crash moves it back, which ends the connection): said, and set up again */
		snprintf(why, sizeof why, "slot \"%s\" reads %s once held, below the %s read before "
		         "START_REPLICATION", inv->slot, cs_lsn_format(w, a), cs_lsn_format(used, b));
		cs_warn("invalidator%s%s: %s", INV_LOG_SHARD(inv), why);
		inv_restart(inv, why, false);
		return;
	} else if (!held) {
		if (err != 0)
			snprintf(why, sizeof why, "the slot's position could not be read again once the "
			         "stream held it: %s", msg ? msg : "failed");
		else
			snprintf(why, sizeof why, "slot \"%s\" is not held by this stream on the server "
			         "the primary's pool reaches (missing, or held by another connection)",
			         inv->slot);
		if (!read_failed_stands(inv, why))
			return;
	}
	sync_state(inv);
}

/* Sends start_read's query; false when there is none to wait for (no primary pool:
 * inv_drive, or a pool that takes no job while the slot was free when read),
 * true when the synchronisation waits for its answer or the stream was restarted. */
static bool start_read(cs_inv *inv)
{
	if (inv->primary == NULL || inv->conn == NULL)
		return false;
	startread *s = calloc(1, sizeof *s);
	if (s == NULL) {
		inv_restart(inv, "out of memory", false);
		return true;
	}
	s->inv = inv;
	s->epoch = inv->epoch;
	snprintf(s->pid, sizeof s->pid, "%d", PQbackendPID(inv->conn));
	s->vals[0] = inv->slot;
	s->lens[0] = (int)strlen(inv->slot);
	s->vals[1] = s->pid;
	s->lens[1] = (int)strlen(s->pid);
	s->fmts[0] = s->fmts[1] = 1; /* text parameters travel in binary: no escaping */
	s->params = (cs_pg_params){ .n = 2, .values = s->vals, .lengths = s->lens,
		.formats = s->fmts };
	s->job = (cs_pgjob){ .qindex = -1, .q = &inv->start_q, .params = &s->params,
		/* review 52 R52-1: half the step's time, so that a read the pool fails at its
		 * deadline reaches read_failed_stands before the step deadline restarts the stream
		 * (and the stream sits silent in CopyBoth for less: R50-4) */
		.deadline_us = cs_now_us() + (uint64_t)STEP_TIMEOUT_MS * 500u,
		.cb = on_start_read, .priv = s };
	if (cs_pgserver_submit(inv->primary, &s->job) == 0)
		return true;
	free(s);
	return !read_failed_stands(inv, "the slot's position could not be read again once the "
	                                "stream held it: the primary's pool took no job (down or "
	                                "overloaded)");
}

/* START_REPLICATION answered CopyBoth: the stream holds the slot. Nothing is read from it
 * until the synchronisation and the mapping record are done (inv_streaming_begins). */
void inv_stream_held(cs_inv *inv)
{
	if (!inv->start_check) { /* synchronised before START: a test's control */
		inv_streaming_begins(inv);
		return;
	}
	inv->st = ST_HELD;
	inv_step_deadline(inv);
	if (!start_read(inv))
		sync_state(inv);
}

void inv_streaming_begins(cs_inv *inv)
{
	char a[CS_LSN_STRLEN];
	inv->st = ST_STREAMING;
	inv->state = CS_INV_STREAMING;
	inv->stats.state = inv->state;
	inv->streaming_since_us = cs_now_us(); /* the backoff resets once this lasts */
	inv->last_recv_us = inv->streaming_since_us;
	inv->stream_tli = inv->tli;
	cs_ledger_set_floor(inv->ledger, inv->h_start);
	cs_info("invalidator%s%s: streaming from slot \"%s\" (publication \"%s\"), horizon %s",
	        INV_LOG_SHARD(inv), inv->slot, inv->publication, cs_lsn_format(inv->h_start, a));
	inv->last_horizon_us = 0; /* publish at the next tick */
	inv->map_pending = true;
	record_mapping(inv, false); /* reading starts once it is acknowledged (on_map_record) */
	inv_tick_rearm(inv);
}
