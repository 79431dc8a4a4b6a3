/* inv_stream.c - the invalidator's stream side: row changes to the transaction's key set,
 * commits sent to Redis in pipelined scripts, the FIFO of commits and the confirmed position
 * (I4), the debounce, and the status messages to the walsender (see invalidator.c). */
#include "inv_int.h"

/* ---- Transaction key set ---------------------------------------------------------------- */

static uint64_t key_hash(int q, const char *p, size_t n)
{
	return cs_fnv1a64(CS_FNV1A64_INIT ^ (uint64_t)q, p, n);
}

void inv_txn_reset(cs_inv *inv)
{
	inv->arena_len = 0;
	if (inv->kset_n) {
		memset(inv->kset, 0, inv->kset_cap * sizeof *inv->kset);
		inv->kset_n = 0;
	}
	if (inv->nq) {
		memset(inv->qkeys, 0, (size_t)inv->nq * sizeof *inv->qkeys);
		memset(inv->qbump, 0, (size_t)inv->nq);
	}
}

static void sink_query(void *priv, int q, cs_inv_reason reason)
{
	cs_inv *inv = priv;
	if (q >= 0 && q < inv->nq)
		inv->qbump[q] |= (uint8_t)(1u << reason);
}

static int kset_grow(cs_inv *inv)
{
	size_t cap = inv->kset_cap ? inv->kset_cap * 2 : 1024;
	uint32_t *t = calloc(cap, sizeof *t);
	if (t == NULL)
		return -1;
	for (size_t i = 0; i < inv->kset_cap; i++) {
		if (!inv->kset[i])
			continue;
		keyrec *r = rec_at(inv, inv->kset[i] - 1);
		size_t s = key_hash(r->query, r->canon, r->len) & (cap - 1);
		while (t[s])
			s = (s + 1) & (cap - 1);
		t[s] = inv->kset[i];
	}
	free(inv->kset);
	inv->kset = t;
	inv->kset_cap = cap;
	return 0;
}

static void sink_key(void *priv, int q, const char *canon, size_t len)
{
	cs_inv *inv = priv;
	if (q < 0 || q >= inv->nq || inv->qbump[q])
		return; /* the whole query goes anyway */
	if (inv->qkeys[q] >= QUERY_KEYS_MAX) {
		/* A bulk change: dropping the query's generation is O(1) and, at this size,
		 * loses little that was not going anyway. */
		inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
		return;
	}
	if ((inv->kset_n + 1) * 2 > inv->kset_cap && kset_grow(inv) != 0) {
		inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
		return;
	}
	uint64_t h = key_hash(q, canon, len);
	size_t s = h & (inv->kset_cap - 1);
	while (inv->kset[s]) {
		keyrec *r = rec_at(inv, inv->kset[s] - 1);
		if (r->query == q && r->len == len && memcmp(r->canon, canon, len) == 0)
			return; /* already collected */
		s = (s + 1) & (inv->kset_cap - 1);
	}
	size_t need = (sizeof(keyrec) + len + 7) & ~(size_t)7;
	if (inv->arena_len + need > inv->arena_cap) {
		size_t cap = inv->arena_cap ? inv->arena_cap * 2 : 65536;
		while (cap < inv->arena_len + need)
			cap *= 2;
		char *a = cap <= TXN_ARENA_MAX ? realloc(inv->arena, cap) : NULL;
		if (a == NULL) {
			inv->qbump[q] |= 1u << CS_INV_UNKNOWN_KEY;
			return;
		}
		inv->arena = a;
		inv->arena_cap = cap;
	}
	keyrec *r = rec_at(inv, (uint32_t)inv->arena_len);
	r->query = q;
	r->len = (uint32_t)len;
	memcpy(r->canon, canon, len);
	inv->kset[s] = (uint32_t)inv->arena_len + 1;
	inv->arena_len += need;
	inv->kset_n++;
	inv->qkeys[q]++;
}

/* ---- Confirmation ----------------------------------------------------------------------- */

int inv_script(cs_inv *inv, uint32_t b, int script, cs_rc_cb *cb, void *priv, int nkeys,
	int argc, const char **argv, const size_t *lens)
{
	uint16_t slot = 0;
	if (inv->ks.cluster) {
		char pre[CS_KS_PREFIX_MAX + 1];
		slot = cs_rc_keyslot(pre, cs_ks_prefix(&inv->ks, b, pre, sizeof pre));
	}
	return cs_rc_script(inv->rc, slot, script, cb, priv, nkeys, argc, argv, lens);
}

bool inv_epoch_error(const redisReply *reply)
{
	return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "EPOCH", 5) == 0;
}

static void on_pos_reply(cs_rc *r, redisReply *reply, void *priv);

/* Publishes the confirmed position (read-your-writes) if it moved; one write in flight. */
void inv_publish_pos(cs_inv *inv)
{
	cs_lsn_t confirmed = cs_ledger_confirmed(inv->ledger);
	/* a cluster with the retry queue (review V2): one master down does not stop the
	 * others' copies (a copy that fails holds the flushed position back, V5) */
	if ((!cs_rc_ready(inv->rc) && !inv_rq_on(inv)) || inv->st != ST_STREAMING)
		return;
	if (inv->ks.cluster) {
		inv_c_publish_pos(inv, confirmed);
		return;
	}
	if (inv->pos_in_flight || confirmed <= inv->pos_sent || cs_now_us() < inv->pos_retry_us)
		return;
	char hex[17];
	cs_lsn_hex(confirmed, hex);
	/* with the run_id check: a position written to another Redis run (a failover the
	 * connection survived) would let SYNC take a loss for a clean inv_restart */
	const char *argv[] = { inv->ks.pos, inv->ks.epoch, hex, "0", inv->epoch_str, "1" };
	size_t lens[] = { inv->ks.pos_len, inv->ks.epoch_len, 16, 1, inv->epoch_len, 1 };
	posctx *c = malloc(sizeof *c);
	if (c == NULL)
		return;
	*c = (posctx){ .inv = inv, .epoch = inv->epoch, .lsn = confirmed };
	if (inv_script(inv, 0, CS_SCRIPT_RAISE, on_pos_reply, c, 2, 6, argv, lens) == 0)
		inv->pos_in_flight = true;
	else
		free(c);
}

void inv_pos_backoff(cs_inv *inv, bool ok, int *fails, uint64_t *retry_us)
{
	if (ok || !inv->pos_backoff) {
		*fails = 0;
		*retry_us = 0;
		return;
	}
	*retry_us = cs_now_us() +
		(uint64_t)cs_backoff_ms(*fails, POS_RETRY_BASE_MS, POS_RETRY_MAX_MS) * 1000u;
	if (*fails < 30)
		(*fails)++;
}

static void on_pos_reply(cs_rc *r, redisReply *reply, void *priv)
{
	posctx *c = priv;
	cs_inv *inv = c->inv;
	bool current = c->epoch == inv->epoch;
	bool ok = reply && reply->type == REDIS_REPLY_STRING;
	if (current)
		inv->pos_in_flight = false;
	if (current && ok && c->lsn > inv->pos_sent)
		inv->pos_sent = c->lsn;
	free(c);
	if (current && inv_epoch_error(reply)) {
		inv_restart(inv, reply->str, false);
		return;
	}
	if (!current)
		return;
	/* a newer position at once; after a failure (LOADING while a restarted Redis reads its
	 * data, an error reply), the tick's call after a backoff (review W3) */
	inv_pos_backoff(inv, ok, &inv->pos_fails, &inv->pos_retry_us);
	if (ok)
		inv_publish_pos(inv);
}

static void advance(cs_inv *inv)
{
	bool moved = false;
	int64_t now_unix = cs_wall_us(), commit_unix;
	while (cs_ledger_advance(inv->ledger, &commit_unix)) {
		/* one sample per commit; a clock step backwards counts as 0 */
		cs_hist_record(&inv->stats.lag_us,
			now_unix > commit_unix ? (uint64_t)(now_unix - commit_unix) : 0);
		moved = true;
	}
	if (!moved)
		return;
	inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
	inv_publish_pos(inv);
	inv_pause_update(inv);
}

void inv_pause_update(cs_inv *inv)
{
	bool limited = inv->ks.cluster && inv->cmds_limit > 0;
	if (!inv->paused) {
		if (inv->st != ST_STREAMING ||
			!(cs_ledger_should_pause(inv->ledger) || (limited && inv->cmds >= inv->cmds_limit)))
			return;
		/* Redis is far behind: stop reading the stream (the walsender waits). */
		inv->paused = true;
		inv->pause_fifo = cs_ledger_should_pause(inv->ledger);
		inv->stats.pauses++;
		if (inv->ev_added) {
			event_del(&inv->ev);
			inv->ev_added = false;
		}
		return;
	}
	if (!cs_ledger_may_resume(inv->ledger) || (limited && inv->cmds >= inv->cmds_limit / 2) ||
		inv->conn == NULL || inv->st != ST_STREAMING)
		return;
	inv->paused = false;
	inv->last_recv_us = cs_now_us(); /* silence while paused was ours */
	inv_conn_wait(inv, EV_READ);	 /* read the stream again */
	/* messages libpq had already read when reading stopped: the socket may stay quiet */
	event_active(&inv->ev, EV_READ, 0);
}

void inv_cmd_unreserve(cs_inv *inv, cmdctx *c)
{
	if (c->counted)
		inv->cmds -= c->reserve;
	c->reserve = 0;
}

void inv_cmd_sent(cs_inv *inv, cmdctx *c, int reserve)
{
	c->reserve = reserve;
	c->counted = true;
	inv->cmds += 1 + reserve;
	if (inv->cmds > 0 && (uint64_t)inv->cmds > inv->stats.cmds_max)
		inv->stats.cmds_max = (uint64_t)inv->cmds;
}

void inv_on_cmd_reply(cs_rc *r, redisReply *reply, void *priv)
{
	cmdctx *c = priv;
	cs_inv *inv = c->inv;
	bool ok = reply != NULL && reply->type != REDIS_REPLY_ERROR;
	if (c->counted) /* whatever its stream: it is no longer in flight */
		inv->cmds -= 1 + c->reserve;
	c->counted = false;
	if (c->epoch == inv->epoch) {
		uint64_t ep = c->epoch;
		if (!ok && inv_rq_failed(inv, c, reply)) {
			/* review V2: queued for a retry, its commit still held (or the queue was
			 * full: c freed, the stream restarted) */
			if (ep == inv->epoch) {
				inv_pause_update(inv);
				inv_tick_rearm(inv); /* its retry's deadline (issue 16) */
			}
			return;
		}
		if (!ok) {
			inv->stats.redis_failures++;
			inv_restart(inv, reply ? reply->str : "redis did not acknowledge an invalidation", false);
		} else {
			if (c->probe)
				inv_rq_ok(inv, c); /* its node takes commands again: the rest of its
				                    * queue goes now */
			if (c->seq != UINT64_MAX && c->epoch == inv->epoch) {
				inv_redis_ok(inv);
				cs_ledger_release(inv->ledger, c->seq);
				advance(inv);
			}
		}
		if (c->epoch == inv->epoch) {
			inv_pause_update(inv);
			/* a retry queue's probe answered, room in its drain window (issue 16: the
			 * tick is armed for deadlines, not polled, on a cluster too) */
			inv_tick_rearm(inv);
		}
	}
	free(c);
}

cmdctx *inv_cmd_new(cs_inv *inv, uint64_t seq)
{
	cmdctx *c = calloc(1, sizeof *c);
	if (c) {
		c->inv = inv;
		c->epoch = inv->epoch;
		c->seq = seq;
		c->query = -1;
	}
	return c;
}

/* Sends a generation bump for query q with its query-level fence at lsn (fence.c (e));
 * debounced: it also clears the owed bump it performs. Returns 0 when sent (c owned by the
 * callback). */
static int send_bump(cs_inv *inv, int q, cmdctx *c, cs_lsn_t lsn, bool debounced)
{
	const char *name = cs_inv_map_query_name(inv->map, q);
	char genkey[CS_NAME_MAX + CS_MAX_NAME], qfkey[CS_NAME_MAX + CS_MAX_NAME], hex[17];
	size_t gl = cs_ks_gen(&inv->ks, genkey, sizeof genkey, name);
	size_t fl = cs_ks_qfence(&inv->ks, qfkey, sizeof qfkey, name);
	cs_lsn_hex(lsn, hex);
	const char *argv[] = { genkey, qfkey, inv->ks.epoch, inv->ks.fmax, inv->ks.deb,
		inv->ks.channel, name, hex, inv->epoch_str };
	size_t lens[] = { gl, fl, inv->ks.epoch_len, inv->ks.fmax_len, inv->ks.deb_len,
		inv->ks.channel_len, strlen(name), 16, inv->epoch_len };
	c->query = q;
	if (debounced)
		return inv_script(inv, 0, CS_SCRIPT_GEN_BUMP, inv_on_cmd_reply, c, 5, 9, argv,
			lens);
	/* without the debounce hash: shift the arguments over its slot */
	const char *av[] = { argv[0], argv[1], argv[2], argv[3], argv[5], argv[6], argv[7], argv[8] };
	size_t al[] = { lens[0], lens[1], lens[2], lens[3], lens[5], lens[6], lens[7], lens[8] };
	return inv_script(inv, 0, CS_SCRIPT_GEN_BUMP, inv_on_cmd_reply, c, 4, 8, av, al);
}

/* Queues the finished transaction's invalidations and its FIFO entry. */
static void commit_txn(cs_inv *inv, cs_lsn_t end_lsn)
{
	uint64_t seq;
	if (cs_ledger_commit(inv->ledger, end_lsn, inv->txn_commit_unix_us, &seq) != 0) {
		/* not reached: reading pauses while cs_ledger_should_pause */
		inv_restart(inv, "commit FIFO full", false);
		return;
	}
	inv->stats.transactions++;
	bool sent_fences = false;
	uint64_t now = cs_now_us();

	/* Whole-query invalidations. */
	for (int q = 0; q < inv->nq; q++) {
		uint8_t b = inv->qbump[q];
		if (!b)
			continue;
		for (int reason = 0; reason < CS_INV_REASONS; reason++)
			if (b & (1u << reason))
				inv->stats.query_bumps[reason]++;
		bool table_only = b == (1u << CS_INV_TABLE);
		int64_t min_life = cs_inv_map_min_lifetime(inv->map, q);
		uint64_t window = table_only && min_life > 0 ? (uint64_t)min_life * 1000u : 0, due;
		if (cs_ledger_debounce(inv->ledger, q, now, window, end_lsn, &due)) {
			/* Debounced: one bump at the end of the window covers this commit too.
			 * The owed bump is recorded in Redis before the commit is confirmed, so
			 * the last change is never lost (a restarted leader performs it), and
			 * the confirmed position never waits for the window. */
			inv->stats.debounced++;
			char hex[17];
			cs_lsn_hex(end_lsn, hex);
			const char *name = cs_inv_map_query_name(inv->map, q);
			const char *argv[] = { inv->ks.deb, inv->ks.epoch, name, hex, inv->epoch_str };
			size_t lens[] = { inv->ks.deb_len, inv->ks.epoch_len, strlen(name), 16,
				inv->epoch_len };
			if (inv->ks.cluster) {
				/* kept for a retry (review V2) */
				cmdctx *c = inv_cmd_make(inv, seq, CS_SCRIPT_DEB_RECORD,
				        inv_bucket_slot(inv, 0), inv_on_cmd_reply, 2, 5, argv,
				        lens);
				if (c == NULL) {
					inv_restart(inv, "out of memory", false);
					return;
				}
				if (inv_cmd_go(inv, c, 0, "redis refused a debounce record") != 0)
					return;
				cs_ledger_hold(inv->ledger, seq);
				continue;
			}
			cmdctx *c = inv_cmd_new(inv, seq);
			if (c == NULL || inv_script(inv, 0, CS_SCRIPT_DEB_RECORD, inv_on_cmd_reply,
						 c, 2, 5, argv, lens) != 0) {
				free(c);
				inv_restart(inv, "redis refused a debounce record", false);
				return;
			}
			inv_cmd_sent(inv, c, 0);
			cs_ledger_hold(inv->ledger, seq);
			continue;
		}
		if (inv->ks.cluster) {
			/* + its GEN_SETs; kept for a retry (review V2) */
			if (inv_c_send_bump(inv, q, seq, end_lsn, false) != 0)
				return;
		} else {
			cmdctx *c = inv_cmd_new(inv, seq);
			if (c == NULL || send_bump(inv, q, c, end_lsn, false) != 0) {
				free(c);
				inv_restart(inv, "redis refused a generation bump", false);
				return;
			}
			inv_cmd_sent(inv, c, 0);
		}
		cs_ledger_bump_sent(inv->ledger, q, now);
		cs_ledger_hold(inv->ledger, seq);
	}

	/* Keys, in batches: DEL the entry, raise its fence to end_lsn. */
	char lsnhex[17], px[24];
	cs_lsn_hex(end_lsn, lsnhex);
	int pl = snprintf(px, sizeof px, "%lld", (long long)inv->fence_ttl_ms);
	size_t off = inv->ks.cluster ? inv->arena_len : 0; /* a cluster: per bucket, below */
	if (inv->ks.cluster && !inv_c_send_keys(inv, seq, end_lsn, &sent_fences))
		return;
	while (off < inv->arena_len) {
		const char *argv[4 * BATCH_KEYS + 6];
		size_t lens[4 * BATCH_KEYS + 6];
		char keybuf[BATCH_KEYS][CS_KEY_MAX];
		char genbuf[BATCH_KEYS][CS_NAME_MAX + CS_MAX_NAME];
		int n = 0;
		const char *args_q[BATCH_KEYS], *args_p[BATCH_KEYS];
		size_t len_q[BATCH_KEYS], len_p[BATCH_KEYS];
		while (off < inv->arena_len && n < BATCH_KEYS) {
			keyrec *r = rec_at(inv, (uint32_t)off);
			off += (sizeof(keyrec) + r->len + 7) & ~(size_t)7;
			if (inv->qbump[r->query])
				continue;
			const char *name = cs_inv_map_query_name(inv->map, r->query);
			size_t fl = cs_ks_fence(&inv->ks, keybuf[n], sizeof keybuf[n], name, r->canon, r->len);
			size_t gl = cs_ks_gen(&inv->ks, genbuf[n], sizeof genbuf[n], name);
			if (fl == 0 || gl == 0)
				continue; /* cannot happen: mapping bounds canon to CS_CANON_MAX */
			argv[2 * n] = keybuf[n];
			lens[2 * n] = (size_t)fl;
			argv[2 * n + 1] = genbuf[n];
			lens[2 * n + 1] = (size_t)gl;
			args_q[n] = name;
			len_q[n] = strlen(name);
			args_p[n] = r->canon;
			len_p[n] = r->len;
			if (inv->key_hook)
				inv->key_hook(inv->key_hook_priv, name, r->canon, r->len,
					inv->txn_commit_unix_us);
			n++;
		}
		if (n == 0)
			break;
		int k = 2 * n;
		argv[k] = inv->ks.epoch;
		lens[k++] = inv->ks.epoch_len;
		argv[k] = inv->ks.fmax;
		lens[k++] = inv->ks.fmax_len;
		int nkeys = k;
		argv[k] = lsnhex;
		lens[k++] = 16;
		argv[k] = px;
		lens[k++] = (size_t)pl;
		argv[k] = inv->ks.ns;
		lens[k++] = inv->ks.nslen;
		argv[k] = inv->epoch_str;
		lens[k++] = inv->epoch_len;
		for (int i = 0; i < n; i++) {
			argv[k] = args_q[i];
			lens[k++] = len_q[i];
			argv[k] = args_p[i];
			lens[k++] = len_p[i];
		}
		cmdctx *c = inv_cmd_new(inv, seq);
		if (c == NULL ||
			inv_script(inv, 0, CS_SCRIPT_INVAL, inv_on_cmd_reply, c, nkeys, k, argv,
				lens) != 0) {
			free(c);
			inv_restart(inv, "redis refused an invalidation", false);
			return;
		}
		inv_cmd_sent(inv, c, 0);
		inv->stats.keys += (uint64_t)n;
		cs_ledger_hold(inv->ledger, seq);
		sent_fences = true;
	}
	if (sent_fences)
		cs_ledger_sample(inv->ledger, cs_now_us(), end_lsn); /* for the horizon */
	inv_txn_reset(inv);
	advance(inv);
	inv_pause_update(inv);
}

/* Due debounced bumps: one generation bump releases every commit that waited for it. */
void inv_run_debounced(cs_inv *inv)
{
	uint64_t now = cs_now_us();
	cs_lsn_t lsn;
	for (int q = cs_ledger_next_due(inv->ledger, 0, now, &lsn); q >= 0;
		q = cs_ledger_next_due(inv->ledger, q + 1, now, &lsn)) {
		/* a cluster with the retry queue (review V2): one master down does not hold the
		 * bump back from the others (its GEN_SETs there wait in the queue) */
		if (!cs_rc_ready(inv->rc) && !inv_rq_on(inv))
			continue;
		if (inv->ks.cluster) {
			uint64_t ep = inv->epoch;
			if (inv_c_send_bump(inv, q, UINT64_MAX, lsn, true) != 0 || ep != inv->epoch)
				return; /* restarted */
			cs_ledger_due_sent(inv->ledger, q, now);
			continue;
		}
		cmdctx *c = inv_cmd_new(inv, UINT64_MAX);
		if (c == NULL)
			continue;
		if (send_bump(inv, q, c, lsn, true) != 0) {
			free(c);
			continue; /* retried next tick; the owed bump is in Redis meanwhile */
		}
		inv_cmd_sent(inv, c, 0);
		cs_ledger_due_sent(inv->ledger, q, now);
	}
}

/* ---- Stream messages -------------------------------------------------------------------- */

static void handle_xlogdata(cs_inv *inv, const cs_pgo_xlogdata *w)
{
	cs_pgo_msg m;
	if (w->wal_end > inv->received)
		inv->received = w->wal_end;
	if (cs_pgo_decode(inv->dec, w->payload, w->len, &m) != 0) {
		char why[300];
		snprintf(why, sizeof why, "undecodable pgoutput message: %s", cs_pgo_errstr(inv->dec));
		inv_restart(inv, why, false);
		return;
	}
	static const cs_inv_sink sink_tmpl = { sink_key, sink_query, NULL };
	cs_inv_sink sink = sink_tmpl;
	sink.priv = inv;
	switch (m.type) {
	case 'B':
		inv_txn_reset(inv);
		cs_ledger_begin(inv->ledger);
		inv->txn_commit_unix_us = cs_pgo_time_to_unix_us(m.begin.commit_ts);
		break;
	case 'I':
	case 'U':
	case 'D':
	case 'T':
		inv->stats.rows++;
		cs_inv_map_change(inv->map, inv->dec, &m, &sink);
		break;
	case 'C': {
		inv->txn_commit_unix_us = cs_pgo_time_to_unix_us(m.commit.commit_ts);
		if (m.commit.end_lsn > inv->lag_seen) {
			/* the XLogData's send time (both on the primary's clock): when the
			 * walsender built the message, which it does only once its socket has
			 * room, so a reader that falls behind shows here too (README.md) */
			inv->lag_seen = m.commit.end_lsn;
			cs_hist_record(&inv->stats.send_us, w->send_time > m.commit.commit_ts ?
					(uint64_t)(w->send_time - m.commit.commit_ts) : 0);
			int64_t now_unix = cs_wall_us();
			cs_hist_record(&inv->stats.recv_us, now_unix > inv->txn_commit_unix_us ?
					(uint64_t)(now_unix - inv->txn_commit_unix_us) : 0);
		}
		commit_txn(inv, m.commit.end_lsn);
		break;
	}
	case 'S':
	case 'E':
	case 'c':
	case 'A':
		inv_restart(inv, "streamed transaction message without streaming requested", false);
		break;
	default:
		break; /* R (cached by the decoder), Y, O, M: nothing to invalidate */
	}
}

static void handle_copydata(cs_inv *inv, const uint8_t *buf, size_t len)
{
	char kind;
	cs_pgo_xlogdata w;
	cs_pgo_keepalive k;
	if (cs_pgo_parse_copydata(buf, len, &kind, &w, &k) != 0) {
		inv_restart(inv, "malformed CopyData from the walsender", false);
		return;
	}
	if (kind == 'w') {
		handle_xlogdata(inv, &w);
		return;
	}
	if (k.wal_end > inv->received)
		inv->received = k.wal_end;
	/* Idle (nothing decoded and not yet acknowledged, not inside a transaction): the
	 * position may follow wal_end (ledger.h). */
	if (cs_ledger_keepalive(inv->ledger, k.wal_end)) {
		inv->stats.confirmed = cs_ledger_confirmed(inv->ledger);
		inv_publish_pos(inv);
	}
	if (k.reply_requested)
		inv_send_status(inv, false);
}

void inv_send_status(cs_inv *inv, bool reply)
{
	if (inv->st != ST_STREAMING || inv->conn == NULL)
		return;
	uint8_t msg[CS_PGO_STATUS_LEN];
	int64_t now = cs_pgo_time_from_unix_us(cs_wall_us());
	/* write = what we received; flush = what Redis acknowledged (the slot's
	 * confirmed_flush_lsn); apply unused for logical slots. */
	/* flush never passes the position Redis acknowledged (<ns>:inv:pos): the sync tells a
	 * inv_restart that kept everything (inv:pos >= the slot's confirmed) from a loss by it */
	cs_lsn_t confirmed = cs_ledger_confirmed(inv->ledger);
	cs_lsn_t flush = confirmed < inv->pos_sent ? confirmed : inv->pos_sent;
	/* review V9b: nor past what the last round of open slots vouched for (inv_open.c) */
	cs_lsn_t open_safe = inv_open_safe(inv);
	if (open_safe < flush)
		flush = open_safe;
	cs_pgo_build_status(msg, inv->received, flush, 0, now, reply);
	int rc = PQputCopyData(inv->conn, (const char *)msg, (int)sizeof msg);
	if (rc < 0) {
		inv_restart(inv, PQerrorMessage(inv->conn), false);
		return;
	}
	inv->status_pending = rc == 0;
	inv->last_status_us = cs_now_us();
	if (PQflush(inv->conn) < 0)
		inv_restart(inv, PQerrorMessage(inv->conn), false);
}

void inv_stream_read(cs_inv *inv)
{
	while (inv->conn && inv->st == ST_STREAMING && !inv->paused) {
		char *buf = NULL;
		int n = PQgetCopyData(inv->conn, &buf, 1);
		if (n > 0) {
			inv->last_recv_us = cs_now_us();
			handle_copydata(inv, (const uint8_t *)buf, (size_t)n);
			PQfreemem(buf);
			continue;
		}
		if (n == 0)
			return;
		char why[300];
		if (n == -1) {
			PGresult *r = PQgetResult(inv->conn);
			snprintf(why, sizeof why, "replication stream ended: %s",
				r ? PQresultErrorMessage(r) : "");
			PQclear(r);
		} else {
			snprintf(why, sizeof why, "%s", PQerrorMessage(inv->conn));
		}
		cs_chomp(why);
		inv_restart(inv, why, false);
		return;
	}
}
