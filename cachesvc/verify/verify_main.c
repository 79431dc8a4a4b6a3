/* verify_main.c - cachesvc-verify: re-runs cached queries on the primary once the
 * invalidator has caught up, and reports the entries that are stale (DESIGN.md section 5,
 * "A verifier"). A blocking command-line tool: every network wait has a timeout.
 *
 * The check of one entry, and why an entry that compares different is stale, not merely
 * racing: verify.h (its steps are shared with the daemon's verifier sampler); this file
 * does their I/O, blocking, and the report. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "config.h"
#include "cs_proto.h"
#include "encode.h"
#include "entry.h"
#include "fence.h"
#include "json.h"
#include "lsn.h"
#include "params.h"
#include "textutil.h"
#include "util.h"
#include "keyspace.h"
#include "log.h"
#include "rcluster.h"
#include "redis_url.h"
#include "verify.h"
#include "verify_route.h"

/* Exit statuses. */
enum {
	EXIT_CLEAN = 0,       /* nothing stale */
	EXIT_STALE = 1,       /* at least one stale entry */
	EXIT_USAGE = 2,       /* bad arguments or config */
	EXIT_UNREACHABLE = 3, /* Redis or the primary cannot be reached (or went away) */
};

#define SCAN_COUNT        "1000"
#define STALE_KEEP        1000 /* stale entries remembered for the final report */
#define POLL_MS           50   /* cs:inv:pos polling interval */
#define STATEMENT_TIMEOUT "60s"
#define CONNECT_TIMEOUT   "5"
#define DIFF_LEN          512

/* Why an entry was not checked: the skip outcomes of verify.h (CS_VERIFY_GONE on), indexed
 * from 0 in the tally and the report. */
#define SKIP__COUNT   CS_VERIFY_SKIPS
#define SKIP_INDEX(o) ((int)(o) - (int)CS_VERIFY_GONE)

static const char *const skip_names[SKIP__COUNT] = {
        "gone",
        "not_an_entry",
        "bad_key",
        "query_failed",
        "invalidator_behind",
        "changed",
};
static const char *const skip_text[SKIP__COUNT] = {
        "gone before the first read",
        "not a cache entry",
        "key not canonical",
        "query failed on the primary",
        "invalidator behind",
        "changed while checking",
};
_Static_assert(CS_VERIFY_CHANGED - CS_VERIFY_GONE == SKIP__COUNT - 1, "skip names follow verify.h");

typedef struct tally {
	uint64_t checked, ok, stale;
	uint64_t skipped[SKIP__COUNT];
} tally;

typedef struct stale_rec {
	char *query, *key, *diff;
	int shard; /* index into cfg->shards; -1 unsharded */
	uint64_t lsn;
	int64_t age_ms;
} stale_rec;

typedef struct opts {
	const char *config;
	long sample;       /* 0 = every entry */
	const char *query; /* NULL = every query */
	int64_t wait_ms;
	bool json, verbose;
} opts;

typedef struct verifier {
	const cs_config *cfg;
	cs_keyspace ks;
	opts o;
	redisContext *redis; /* one Redis; on a cluster: NULL, the masters below */
	bool cluster;
	cs_rc_map *map;                      /* cluster: the slot map (CLUSTER SHARDS) */
	redisContext *node[CS_RC_MAX_NODES]; /* cluster: one connection per map->node */
	const char *err_node;                /* the node of the last command */
	char errstr[128];                    /* the last connection-level failure */
	unsigned map_ver;                    /* cluster: maps loaded */
	bool incomplete; /* cluster: a scan cut short by a new slot map (reshard, failover) */
	PGconn *pg;
	cs_buf fresh;         /* the primary's result, re-used per entry */
	uint64_t inv_stalled; /* cs:inv:pos when a wait last timed out (0: none) */
	bool fatal;           /* a server went away: stop, exit EXIT_UNREACHABLE */
	bool unreached;       /* a shard's primary could not be reached: its entries unchecked,
			       * the other shards' checked (review 31 R31-4), exit EXIT_UNREACHABLE */
	/* With [shard NAME] sections (SHARDS.md step 6) the run visits each shard in turn:
	 * ks, pg and inv_stalled above are then the current shard's, and every entry of
	 * ks's prefix is checked against that shard's primary. shard is -1 without shards. */
	int shard;
	tally shard_total[CS_MAX_SHARDS];
	uint64_t misrouted[CS_MAX_SHARDS]; /* entries whose key the map routes elsewhere */
	bool shard_done[CS_MAX_SHARDS];    /* the shard's scan ran to its end */
	tally total;
	stale_rec stale[STALE_KEEP];
	int nstale;
} verifier;

/* One query being verified. */
typedef struct qrun {
	const cs_query_def *q;
	int shard; /* -1 without shards */
	bool ordered;
	uint64_t gen;
	char prefix[CS_NAME_MAX + CS_MAX_NAME + 24]; /* "<ns>:e:<q>:<gen>:" */
	size_t prefix_len;
	tally t;
} qrun;

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: cachesvc-verify -c FILE [--sample N] [--query NAME] [--wait SECS] [--json] "
	        "[-v]\n"
	        "  -c, --config FILE  the daemon's configuration\n"
	        "      --sample N     check a random sample of N entries per query (default: all)\n"
	        "      --query NAME   check only this query\n"
	        "      --wait SECS    how long to wait for the invalidator per entry (default 10)\n"
	        "      --json         print one JSON object instead of text\n"
	        "  -v, --verbose      report every skipped entry on stderr\n"
	        "Exit status: 0 nothing stale, 1 stale entries found, 2 usage or config error,\n"
	        "3 Redis or the primary unreachable, or (a cluster) the slot map changed mid-run.\n"
	        "With [shard NAME] sections each shard's entries (keyspace <ns>@NAME) are checked\n"
	        "against that shard's primary and reported per shard (--json: \"shards\"); an\n"
	        "entry whose key the map routes to another shard is counted as misrouted.\n");
}

static void note(const verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const verifier *v, const char *fmt, ...)
{
	if (!v->o.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- Connections ------------------------------------------------------------------------ */

/* Connects to the Redis of cfg's url, or (host not NULL: a cluster node) to host:port with the
 * url's user and password (db 0). */
static redisContext *redis_connect(const cs_config *cfg, const char *host, int port)
{
	cs_redis_url u;
	char why[256];
	memset(&u, 0, sizeof u);
	if (cfg->redis_url && !cs_redis_url_parse(cfg->redis_url, &u, why, sizeof why)) {
		fprintf(stderr, "cachesvc-verify: [redis] url: %s\n", why);
		return NULL;
	}
	if (host) {
		snprintf(u.host, sizeof u.host, "%s", host);
		u.port = port;
		u.unix_path[0] = '\0';
		u.db = 0;
	}
	int64_t ms = cfg->redis_timeout_ms > 0 ? cfg->redis_timeout_ms : 2000;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	redisContext *c = u.unix_path[0] ? redisConnectUnixWithTimeout(u.unix_path, tv)
	                                 : redisConnectWithTimeout(u.host, u.port, tv);
	if (c == NULL || c->err) {
		if (u.unix_path[0])
			fprintf(stderr, "cachesvc-verify: cannot connect to Redis at %s: %s\n",
			        u.unix_path, c ? c->errstr : "out of memory");
		else
			fprintf(stderr, "cachesvc-verify: cannot connect to Redis at %s:%d: %s\n",
			        u.host, u.port, c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisReply *r = NULL;
	const char *what = NULL;
	if (u.password[0]) {
		r = u.username[0] ? redisCommand(c, "AUTH %s %s", u.username, u.password)
		                  : redisCommand(c, "AUTH %s", u.password);
		what = "AUTH";
	}
	if ((r == NULL || r->type != REDIS_REPLY_ERROR) && u.db != 0) {
		freeReplyObject(r);
		r = redisCommand(c, "SELECT %d", u.db);
		what = "SELECT";
	}
	if (what && (r == NULL || r->type == REDIS_REPLY_ERROR)) {
		fprintf(stderr, "cachesvc-verify: Redis %s failed: %s\n", what,
		        r ? r->str : c->errstr);
		freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static PGconn *pg_connect(const char *conninfo)
{
	/* Keywords before dbname are defaults the conninfo may override. */
	const char *kw[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *val[] = {CONNECT_TIMEOUT, "cachesvc-verify", conninfo, NULL};
	PGconn *c = PQconnectdbParams(kw, val, 1);
	char masked[512], msg[512];
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		cs_log_mask_conninfo(conninfo, masked, sizeof masked);
		snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
		cs_chomp(msg);
		fprintf(stderr, "cachesvc-verify: cannot connect to the primary (%s): %s\n", masked,
		        msg);
		PQfinish(c);
		return NULL;
	}
	/* The daemon's session settings (pgpool.c): the encoder relies on them, and equal
	 * settings give byte-equal text. */
	PGresult *r = PQexec(c, "SET DateStyle = ISO; SET TimeZone = 'UTC'; "
	                        "SET extra_float_digits = 3; SET bytea_output = hex; "
	                        "SET default_transaction_isolation = 'read committed'; "
	                        "SET statement_timeout = '" STATEMENT_TIMEOUT "'");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		cs_chomp(msg);
		fprintf(stderr, "cachesvc-verify: cannot set the session up on the primary: %s\n",
		        msg);
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

/* ---- Redis Cluster: the map and one connection per master (CLUSTER.md) -------------- */

static void drop_nodes(verifier *v)
{
	for (int i = 0; i < CS_RC_MAX_NODES; i++) {
		if (v->node[i])
			redisFree(v->node[i]);
		v->node[i] = NULL;
	}
}

/* Asks c for the slot map (CLUSTER SHARDS, CLUSTER SLOTS on a server before 7.0). */
static bool map_from(verifier *v, redisContext *c, const char *host)
{
	char err[256];
	redisReply *r = redisCommand(c, "CLUSTER SHARDS");
	int rc = -1;
	if (r && r->type == REDIS_REPLY_ERROR) {
		freeReplyObject(r);
		r = redisCommand(c, "CLUSTER SLOTS");
		if (r && r->type != REDIS_REPLY_ERROR)
			rc = cs_rc_map_from_slots(r, host, v->map, err, sizeof err);
	} else if (r) {
		rc = cs_rc_map_from_shards(r, host, v->map, err, sizeof err);
	}
	if (rc != 0)
		fprintf(stderr, "cachesvc-verify: no slot map from %s: %s\n", host,
		        r == NULL                      ? c->errstr
		        : r->type == REDIS_REPLY_ERROR ? r->str
		                                       : err);
	freeReplyObject(r);
	return rc == 0;
}

/* (Re)loads the slot map from a master already known, else from a seed of [redis] nodes,
 * and connects to every master of it. False (reported) when no node answers or a master of
 * the map cannot be reached. */
static bool load_map(verifier *v)
{
	bool have = false;
	for (int i = 0; i < v->map->nnodes && !have; i++)
		if (v->node[i] && !v->node[i]->err)
			have = map_from(v, v->node[i], v->map->node[i].host);
	if (!have) {
		char *buf = strdup(v->cfg->redis_nodes ? v->cfg->redis_nodes : "");
		char *seeds[CS_RC_MAX_NODES];
		int n = buf ? cs_split_list(buf, seeds, CS_RC_MAX_NODES) : 0;
		for (int i = 0; i < n && !have; i++) {
			cs_rc_endpoint ep;
			if (cs_rc_parse_endpoint(seeds[i], strlen(seeds[i]), &ep) != 0)
				continue;
			redisContext *c = redis_connect(v->cfg, ep.host, ep.port);
			if (c) {
				have = map_from(v, c, ep.host);
				redisFree(c);
			}
		}
		free(buf);
		if (!have) {
			fprintf(stderr,
			        "cachesvc-verify: no node of [redis] nodes gave a slot map\n");
			return false;
		}
	}
	drop_nodes(v);
	v->map_ver++;
	if (cs_rc_map_covered(v->map) < CS_RC_SLOTS)
		fprintf(stderr, "cachesvc-verify: warning: %d hash slots have no master\n",
		        CS_RC_SLOTS - cs_rc_map_covered(v->map));
	for (int i = 0; i < v->map->nnodes; i++)
		if ((v->node[i] = redis_connect(
		             v->cfg, v->map->node[i].host, v->map->node[i].port)) == NULL)
			return false;
	return true;
}

/* A command about `key`: to the one Redis, or to the master of the key's slot, following
 * MOVED (the map is reloaded) and ASK (ASKING first) a few times. NULL: a connection-level
 * failure (v->err_node says where). */
static redisReply *key_cmd(verifier *v, const char *key, size_t klen, const char *fmt, ...)
{
	va_list ap;
	if (!v->cluster) {
		va_start(ap, fmt);
		redisReply *r = redisvCommand(v->redis, fmt, ap);
		va_end(ap);
		v->err_node = "redis";
		if (r == NULL)
			snprintf(v->errstr, sizeof v->errstr, "%s", v->redis->errstr);
		return r;
	}
	uint16_t slot = cs_rc_keyslot(key, klen);
	redisContext *ask = NULL;
	for (int tries = 0; tries < 5; tries++) {
		redisContext *c = ask;
		if (c == NULL) {
			int o = v->map->owner[slot];
			if (o < 0) {
				fprintf(stderr, "cachesvc-verify: no master serves slot %u\n",
				        slot);
				return NULL;
			}
			c = v->node[o];
			v->err_node = v->map->node[o].host;
		} else {
			redisReply *a = redisCommand(c, "ASKING");
			freeReplyObject(a);
		}
		va_start(ap, fmt);
		redisReply *r = redisvCommand(c, fmt, ap);
		va_end(ap);
		if (r == NULL)
			snprintf(v->errstr, sizeof v->errstr, "%s", c->errstr);
		if (ask)
			redisFree(ask);
		ask = NULL;
		cs_rc_redirect rd;
		if (r == NULL || r->type != REDIS_REPLY_ERROR ||
		        cs_rc_parse_redirect(r->str, (size_t)r->len, &rd) != 0)
			return r;
		freeReplyObject(r);
		if (!rd.ask) {
			if (!load_map(v))
				return NULL;
			continue;
		}
		if ((ask = redis_connect(v->cfg, rd.host[0] ? rd.host : v->err_node, rd.port)) ==
		        NULL)
			return NULL;
	}
	fprintf(stderr, "cachesvc-verify: too many redirects for a key of slot %u\n", slot);
	return NULL;
}

/* A Redis command that failed at the connection level ends the run. */
static redisReply *cmd_ok(verifier *v, redisReply *r)
{
	if (r == NULL) {
		fprintf(stderr, "cachesvc-verify: Redis (%s): %s\n",
		        v->err_node ? v->err_node : "?", v->errstr[0] ? v->errstr : "no reply");
		v->fatal = true;
	}
	return r;
}

/* ---- The check of one entry -------------------------------------------------------------- */

/* Reads cs:inv:pos (missing or malformed: 0). False on a connection error. */
static bool inv_pos(verifier *v, uint64_t *pos)
{
	redisReply *r = cmd_ok(v, key_cmd(v, v->ks.pos, strlen(v->ks.pos), "GET %s", v->ks.pos));
	if (r == NULL)
		return false;
	*pos = 0;
	if (r->type == REDIS_REPLY_STRING && !cs_lsn_unhex(r->str, r->len, pos))
		*pos = 0;
	freeReplyObject(r);
	return true;
}

/* Waits (bounded by --wait) until the invalidator has passed lsn (cs_verify_wait_step: once
 * a wait timed out, later entries do not wait again until the position moves). */
static bool wait_invalidator(verifier *v, uint64_t lsn)
{
	uint64_t pos = 0, deadline = cs_now_us() + (uint64_t)v->o.wait_ms * 1000u;
	bool said = false;
	for (;;) {
		if (!inv_pos(v, &pos))
			return false;
		cs_verify_wait w =
		        cs_verify_wait_step(pos, lsn, cs_now_us(), deadline, &v->inv_stalled);
		if (w != CS_VERIFY_WAIT)
			return w == CS_VERIFY_PASSED;
		if (!said) {
			char a[CS_LSN_STRLEN], b[CS_LSN_STRLEN];
			note(v, "waiting for the invalidator to pass %s (at %s)",
			        cs_lsn_format(lsn, a), cs_lsn_format(pos, b));
			said = true;
		}
		sleep_ms(POLL_MS);
	}
}

static void skip(verifier *v, qrun *qr, const char *key, cs_verify_outcome why, const char *detail)
{
	qr->t.skipped[SKIP_INDEX(why)]++;
	note(v, "skipped %s: %s%s%s", key, skip_text[SKIP_INDEX(why)], detail ? ": " : "",
	        detail ? detail : "");
}

static void record_stale(
        verifier *v, qrun *qr, const char *key, const cs_entry *e, const char *diff)
{
	qr->t.stale++;
	int64_t age = cs_wall_ms() - e->filled_ms;
	if (!v->o.json) {
		char l[CS_LSN_STRLEN];
		/* sharded: "STALE shard s1 <key> ..." (the key's prefix names it too) */
		printf("STALE %s%s%s%s lsn %s age %.1fs: %s\n", v->shard >= 0 ? "shard " : "",
		        v->shard >= 0 ? v->cfg->shards[v->shard].name : "",
		        v->shard >= 0 ? " " : "", key, cs_lsn_format(e->lsn, l),
		        (double)age / 1000.0, diff);
		fflush(stdout);
	}
	if (v->nstale == STALE_KEEP)
		return;
	stale_rec *s = &v->stale[v->nstale];
	s->query = strdup(qr->q->name);
	s->key = strdup(key);
	s->diff = strdup(diff);
	s->lsn = e->lsn;
	s->age_ms = age;
	s->shard = v->shard;
	if (s->query && s->key && s->diff) {
		v->nstale++;
	} else {
		free(s->query);
		free(s->key);
		free(s->diff);
	}
}

/* Runs the query with the parameters of the key's canonical text on the primary into
 * v->fresh; then reads the primary's WAL position into *lsn. Returns 0, or a skip outcome
 * (message in err), or -1 when the connection is gone. */
static int run_on_primary(verifier *v, const qrun *qr, const char *canon, size_t clen,
        uint64_t *lsn, char *err, size_t errlen)
{
	const cs_query_def *q = qr->q;
	cs_pg_params *p = cs_verify_key_params(q, canon, clen, err, errlen);
	if (p == NULL)
		return CS_VERIFY_BAD_KEY;
	Oid types[CS_MAX_PARAMS];
	for (int i = 0; i < q->nparams; i++)
		types[i] = cs_param_type_oid(q->params[i].type);
	PGresult *res =
	        PQexecParams(v->pg, q->sql, p->n, types, p->values, p->lengths, p->formats, 0);
	free(p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(res));
		cs_chomp(err);
		PQclear(res);
		return PQstatus(v->pg) == CONNECTION_OK ? CS_VERIFY_QUERY : -1;
	}
	cs_buf_reset(&v->fresh);
	int rc = cs_encode_result(res, &v->fresh, err, errlen);
	PQclear(res);
	if (rc != 0) {
		if (rc == -CS_ERR_TOO_LARGE)
			snprintf(err, errlen, "result too large to compare");
		return CS_VERIFY_QUERY;
	}
	res = PQexec(v->pg, CS_VERIFY_LSN_SQL);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	          cs_lsn_parse(PQgetvalue(res, 0, 0), lsn);
	if (!ok) {
		snprintf(err, errlen, "pg_current_wal_lsn(): %s", PQresultErrorMessage(res));
		cs_chomp(err);
	}
	PQclear(res);
	if (!ok)
		return PQstatus(v->pg) == CONNECTION_OK ? CS_VERIFY_QUERY : -1;
	return 0;
}

/* The length of key's entry prefix when key is an entry of qr's query and generation (on a
 * cluster: "{<ns>:<b>}:e:<q>:<g>:", b the bucket of its parameters), else 0. */
static size_t entry_prefix_len(const verifier *v, const qrun *qr, const char *key, size_t keylen)
{
	if (!v->cluster)
		return keylen >= qr->prefix_len && memcmp(key, qr->prefix, qr->prefix_len) == 0
		               ? qr->prefix_len
		               : 0;
	size_t nl = strlen(v->ks.ns);
	if (keylen < nl + 3 || key[0] != '{' || memcmp(key + 1, v->ks.ns, nl) != 0 ||
	        key[nl + 1] != ':')
		return 0;
	uint32_t b = 0;
	size_t i = nl + 2;
	for (; i < keylen && i < nl + 6 && key[i] >= '0' && key[i] <= '9'; i++)
		b = b * 10 + (uint32_t)(key[i] - '0');
	if (i == nl + 2 || b >= CS_KS_BUCKETS)
		return 0;
	char pre[sizeof qr->prefix];
	size_t pl = cs_ks_entry_prefix(&v->ks, b, pre, sizeof pre, qr->q->name, qr->gen);
	if (pl == 0 || keylen < pl || memcmp(key, pre, pl) != 0 ||
	        cs_ks_bucket(&v->ks, qr->q->name, key + pl, keylen - pl) != b)
		return 0; /* another query or generation, or not in its parameters' bucket */
	return pl;
}

static void check_key(verifier *v, qrun *qr, const char *key, size_t keylen)
{
	char err[512];
	size_t pl = entry_prefix_len(v, qr, key, keylen);
	if (pl == 0)
		return; /* not this query's generation (SCAN MATCH already filters) */
	if (v->shard >= 0) {
		/* An entry under this shard's prefix was filled from this shard and is
		 * invalidated by its WAL alone (SHARDS.md section 2): it is checked against this
		 * shard's primary whatever the map says. One whose key the map sends elsewhere
		 * (or nowhere) is also counted: no read looks for it here. */
		int to = cs_verify_key_shard(v->cfg, qr->q, key + pl, keylen - pl, err, sizeof err);
		if (to == -CS_ERR_NO_SHARD || (to >= 0 && to != v->shard)) {
			v->misrouted[v->shard]++;
			note(v, "misrouted %s: the map routes its key to %s%s", key,
			        to >= 0 ? "shard " : "", to >= 0 ? v->cfg->shards[to].name : err);
		}
	}
	qr->t.checked++;
	redisReply *r1 = cmd_ok(v, key_cmd(v, key, keylen, "GET %b", key, keylen));
	if (r1 == NULL)
		return;
	cs_entry e;
	cs_verify_outcome o = cs_verify_first(r1->type != REDIS_REPLY_NIL,
	        r1->type == REDIS_REPLY_STRING, r1->str, (size_t)r1->len, &e);
	if (o != CS_VERIFY_OK) {
		skip(v, qr, key, o, NULL);
	} else {
		uint64_t lsn = 0;
		int rc = run_on_primary(v, qr, key + pl, keylen - pl, &lsn, err, sizeof err);
		if (rc < 0) {
			fprintf(stderr, "cachesvc-verify: lost the primary: %s\n", err);
			v->fatal = true;
		} else if (rc > 0) {
			skip(v, qr, key, (cs_verify_outcome)rc, err);
		} else if (!wait_invalidator(v, lsn)) {
			if (!v->fatal) {
				char l[CS_LSN_STRLEN];
				snprintf(err, sizeof err, "cs:inv:pos below %s",
				        cs_lsn_format(lsn, l));
				skip(v, qr, key, CS_VERIFY_INV_BEHIND, err);
			}
		} else {
			redisReply *r2 = cmd_ok(v, key_cmd(v, key, keylen, "GET %b", key, keylen));
			if (r2 == NULL) {
				/* fatal: reported */
			} else {
				char diff[DIFF_LEN];
				o = cs_verify_judge(r1->str, (size_t)r1->len,
				        r2->type != REDIS_REPLY_NIL, r2->type == REDIS_REPLY_STRING,
				        r2->str, (size_t)r2->len, v->fresh.data, v->fresh.len,
				        qr->ordered, &e, diff, sizeof diff);
				if (o == CS_VERIFY_OK)
					qr->t.ok++;
				else if (o == CS_VERIFY_STALE)
					record_stale(v, qr, key, &e, diff);
				else
					skip(v, qr, key, o, diff);
			}
			freeReplyObject(r2);
		}
	}
	freeReplyObject(r1);
	if (v->fatal)
		qr->t.checked--; /* not checked after all */
}

/* ---- Scanning ------------------------------------------------------------------------------ */

/* Bounded reservoir of keys (Algorithm R): every key scanned has the same chance n/seen. */
typedef struct reservoir {
	char **keys;
	size_t *lens;
	long n, cap;
	uint64_t seen;
} reservoir;

static uint64_t rand64(void)
{
	return (uint64_t)random() << 33 ^ (uint64_t)random() << 2 ^ (uint64_t)random();
}

static bool reservoir_add(reservoir *rs, const char *key, size_t len)
{
	rs->seen++;
	long slot;
	if (rs->n < rs->cap) {
		slot = rs->n;
	} else {
		uint64_t j = rand64() % rs->seen;
		if (j >= (uint64_t)rs->cap)
			return true;
		slot = (long)j;
	}
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return false;
	memcpy(copy, key, len);
	copy[len] = '\0';
	if (slot < rs->n)
		free(rs->keys[slot]);
	else
		rs->n++;
	rs->keys[slot] = copy;
	rs->lens[slot] = len;
	return true;
}

/* Reads the query's current generation (missing: 0, as the engine assumes). */
static bool read_gen(verifier *v, const cs_query_def *q, uint64_t *gen)
{
	char k[CS_NAME_MAX];
	size_t kl = cs_ks_gen(&v->ks, k, sizeof k, q->name); /* bucket 0's on a cluster */
	redisReply *r = cmd_ok(v, key_cmd(v, k, kl, "GET %b", k, kl));
	if (r == NULL)
		return false;
	*gen = r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
	freeReplyObject(r);
	return true;
}

/* Whether Redis records this config's definition of the query (keyspace.h <ns>:qd:<q>):
 * entries of another definition answer another SQL, and comparing them with this one's
 * would report them stale; none recorded: the daemons bump it before using any entry. */
static bool definition_ours(verifier *v, const cs_query_def *q)
{
	char k[CS_NAME_MAX + CS_MAX_NAME], fp[17];
	size_t kl = cs_ks_qdef(&v->ks, k, sizeof k, q->name);
	redisReply *r = cmd_ok(v, key_cmd(v, k, kl, "GET %b", k, kl));
	if (r == NULL)
		return false;
	cs_query_fingerprint(q, v->cfg, fp);
	bool ours = r->type == REDIS_REPLY_STRING && r->len == 16 && memcmp(r->str, fp, 16) == 0;
	if (!ours)
		fprintf(stderr, "cachesvc-verify: query %s: Redis records %s definition of it: its "
		        "entries are not this config's, not checked\n", q->name,
		        r->type == REDIS_REPLY_STRING ? "another" : "no");
	freeReplyObject(r);
	return ours;
}

/* Whether the invalidator's leader maps this config's definition of the query, and a bump
 * covered its record (keyspace.h <ns>:inv:qmap, review 36 R36-1): otherwise no process uses
 * the query's entries (their changes are not invalidated, or not yet fenced), so they are not
 * reported stale. No record at all ("@" unset: no leader of this version ran): checked.
 * A config with fences off checks every query, as its processes use every one. */
static bool mapping_ours(verifier *v, const cs_query_def *q)
{
	if (!v->cfg->fence || q->ninval == 0 ||
	        (v->shard >= 0 && q->shard_index >= 0 && q->shard_index != v->shard))
		return true; /* (with fences off the processes use it whatever the leader maps) */
	const char *k = v->ks.qmap;
	size_t kl = v->ks.qmap_len;
	redisReply *r = cmd_ok(v, key_cmd(v, k, kl, "HMGET %b @ %s %s/c", k, kl, q->name, q->name));
	if (r == NULL)
		return false;
	char mfp[17];
	cs_query_map_fingerprint(q, v->cfg, mfp);
	bool ours = true;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	        r->element[0]->type == REDIS_REPLY_STRING) {
		const redisReply *rec = r->element[1], *cov = r->element[2];
		ours = rec->type == REDIS_REPLY_STRING && rec->len == 33 &&
		       memcmp(rec->str, mfp, 16) == 0 && cov->type == REDIS_REPLY_STRING &&
		       cov->len == rec->len && memcmp(cov->str, rec->str, 33) == 0;
		if (!ours)
			fprintf(stderr, "cachesvc-verify: query %s: the invalidator's leader %s: its "
			        "entries are used by no process, not checked\n", q->name,
			        rec->type != REDIS_REPLY_STRING ? "maps no definition of it"
			        : memcmp(rec->str, mfp, 16) != 0 ? "maps another definition of it"
			                                         : "maps it, not covered by a bump yet");
	}
	freeReplyObject(r);
	return ours;
}

static void verify_query(verifier *v, qrun *qr)
{
	if (!read_gen(v, qr->q, &qr->gen) || !definition_ours(v, qr->q) ||
	        !mapping_ours(v, qr->q))
		return;
	qr->ordered = cs_verify_sql_ordered(qr->q->sql);
	qr->prefix_len =
	        cs_ks_entry_prefix(&v->ks, 0, qr->prefix, sizeof qr->prefix, qr->q->name, qr->gen);
	char pattern[sizeof qr->prefix + 8];
	/* names are [A-Za-z0-9_.-]; a cluster's bucket tag "{<ns>:<b>}" (ns without braces)
	 * matched as "{<ns>:*}" ('{' is no glob character) */
	if (v->cluster)
		snprintf(pattern, sizeof pattern, "{%s:*}:e:%s:%" PRIu64 ":*", v->ks.ns,
		        qr->q->name, qr->gen);
	else
		snprintf(pattern, sizeof pattern, "%s*", qr->prefix);

	reservoir rs = {0};
	if (v->o.sample > 0) {
		rs.cap = v->o.sample;
		rs.keys = calloc((size_t)rs.cap, sizeof *rs.keys);
		rs.lens = calloc((size_t)rs.cap, sizeof *rs.lens);
		if (rs.keys == NULL || rs.lens == NULL) {
			fprintf(stderr, "cachesvc-verify: out of memory for a sample of %ld\n",
			        rs.cap);
			v->fatal = true;
		}
	}
	/* every master's keyspace in turn (one Redis: itself) */
	int nnodes = v->cluster ? v->map->nnodes : 1;
	unsigned ver = v->map_ver;
	for (int node = 0; node < nnodes && !v->fatal; node++) {
		char cursor[32] = "0";
		do {
			if (v->fatal)
				break;
			if (v->map_ver != ver) {
				/* a MOVED reloaded the map (a reshard): this master's cursor is
				 * gone; the keys it had left are not checked in this run */
				v->incomplete = true;
				note(v, "the slot map changed: the scan of a master ends early");
				break;
			}
			redisContext *c = v->cluster ? v->node[node] : v->redis;
			v->err_node = v->cluster ? v->map->node[node].host : "redis";
			redisReply *r = redisCommand(
			        c, "SCAN %s MATCH %s COUNT " SCAN_COUNT, cursor, pattern);
			if (r == NULL)
				snprintf(v->errstr, sizeof v->errstr, "%s", c->errstr);
			r = cmd_ok(v, r);
			if (r == NULL)
				break;
			if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
			        r->element[0]->type != REDIS_REPLY_STRING ||
			        r->element[1]->type != REDIS_REPLY_ARRAY ||
			        r->element[0]->len >= sizeof cursor) {
				fprintf(stderr, "cachesvc-verify: unexpected SCAN reply%s%s\n",
				        r->type == REDIS_REPLY_ERROR ? ": " : "",
				        r->type == REDIS_REPLY_ERROR ? r->str : "");
				v->fatal = true;
				freeReplyObject(r);
				break;
			}
			memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
			redisReply *keys = r->element[1];
			for (size_t i = 0; i < keys->elements && !v->fatal; i++) {
				redisReply *k = keys->element[i];
				if (k->type != REDIS_REPLY_STRING)
					continue;
				if (rs.cap == 0) {
					check_key(v, qr, k->str, k->len);
				} else if (!reservoir_add(&rs, k->str, k->len)) {
					fprintf(stderr, "cachesvc-verify: out of memory\n");
					v->fatal = true;
				}
			}
			freeReplyObject(r);
		} while (strcmp(cursor, "0") != 0);
	}
	if (v->map_ver != ver)
		v->incomplete = true; /* a map reloaded during the last master's checks */

	for (long i = 0; i < rs.n; i++) {
		if (!v->fatal)
			check_key(v, qr, rs.keys[i], rs.lens[i]);
		free(rs.keys[i]);
	}
	free(rs.keys);
	free(rs.lens);
}

/* ---- Report --------------------------------------------------------------------------------- */

static uint64_t skipped_sum(const tally *t)
{
	uint64_t n = 0;
	for (int i = 0; i < SKIP__COUNT; i++)
		n += t->skipped[i];
	return n;
}

static void add_tally(tally *to, const tally *t)
{
	to->checked += t->checked;
	to->ok += t->ok;
	to->stale += t->stale;
	for (int i = 0; i < SKIP__COUNT; i++)
		to->skipped[i] += t->skipped[i];
}

static void print_tally_text(const char *label, const tally *t)
{
	printf("%s: checked %" PRIu64 ", ok %" PRIu64 ", stale %" PRIu64 ", skipped %" PRIu64,
	        label, t->checked, t->ok, t->stale, skipped_sum(t));
	const char *sep = " (";
	for (int i = 0; i < SKIP__COUNT; i++) {
		if (t->skipped[i] == 0)
			continue;
		printf("%s%" PRIu64 " %s", sep, t->skipped[i], skip_text[i]);
		sep = ", ";
	}
	printf("%s\n", sep[0] == ',' ? ")" : "");
}

/* A shard's line (sharded only): "shard s1: checked ..., misrouted N" when N > 0. */
static void print_shard_text(const verifier *v, int s)
{
	char label[CS_MAX_NAME + 16];
	snprintf(label, sizeof label, "shard %s", v->cfg->shards[s].name);
	print_tally_text(label, &v->shard_total[s]);
	if (v->misrouted[s] > 0)
		printf("shard %s: %" PRIu64 " entries misrouted (the map routes their keys to "
		       "another shard or none: no read finds them here; checked against this "
		       "shard's primary all the same)\n",
		        v->cfg->shards[s].name, v->misrouted[s]);
}

static void json_tally(cs_json *j, const tally *t)
{
	cs_json_kv_uint(j, "checked", t->checked);
	cs_json_kv_uint(j, "ok", t->ok);
	cs_json_kv_uint(j, "stale", t->stale);
	cs_json_kv_uint(j, "skipped", skipped_sum(t));
	cs_json_key(j, "skipped_reasons");
	cs_json_object(j);
	for (int i = 0; i < SKIP__COUNT; i++) {
		cs_json_kv_uint(j, skip_names[i], t->skipped[i]);
	}
	cs_json_object_end(j);
}

static void report_json(const verifier *v, const qrun *runs, int nruns)
{
	cs_sb s = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &s, false);
	cs_json_object(&j);
	json_tally(&j, &v->total);
	cs_json_key(&j, "queries");
	cs_json_object(&j);
	if (v->shard < 0) {
		for (int i = 0; i < nruns; i++) {
			cs_json_key(&j, runs[i].q->name);
			cs_json_object(&j);
			cs_json_kv_uint(&j, "generation", runs[i].gen);
			cs_json_kv_bool(&j, "ordered", runs[i].ordered);
			json_tally(&j, &runs[i].t);
			cs_json_object_end(&j);
		}
	} else {
		/* sharded: each query summed over the shards (a generation is per shard: in
		 * "shards" below) */
		for (int i = 0; i < v->cfg->nqueries; i++) {
			const cs_query_def *q = &v->cfg->queries[i];
			tally t = {0};
			bool any = false, ordered = false;
			for (int r = 0; r < nruns; r++)
				if (runs[r].q == q) {
					add_tally(&t, &runs[r].t);
					ordered = runs[r].ordered;
					any = true;
				}
			if (!any)
				continue;
			cs_json_key(&j, q->name);
			cs_json_object(&j);
			cs_json_kv_bool(&j, "ordered", ordered);
			json_tally(&j, &t);
			cs_json_object_end(&j);
		}
	}
	cs_json_object_end(&j);
	if (v->shard >= 0) {
		cs_json_key(&j, "shards");
		cs_json_object(&j);
		for (int k = 0; k < v->cfg->nshards; k++) {
			cs_json_key(&j, v->cfg->shards[k].name);
			cs_json_object(&j);
			json_tally(&j, &v->shard_total[k]);
			cs_json_kv_uint(&j, "misrouted", v->misrouted[k]);
			cs_json_kv_bool(&j, "complete", v->shard_done[k] && !v->incomplete);
			cs_json_key(&j, "queries");
			cs_json_object(&j);
			for (int r = 0; r < nruns; r++) {
				if (runs[r].shard != k)
					continue;
				cs_json_key(&j, runs[r].q->name);
				cs_json_object(&j);
				cs_json_kv_uint(&j, "generation", runs[r].gen);
				cs_json_kv_bool(&j, "ordered", runs[r].ordered);
				json_tally(&j, &runs[r].t);
				cs_json_object_end(&j);
			}
			cs_json_object_end(&j);
			cs_json_object_end(&j);
		}
		cs_json_object_end(&j);
	}
	cs_json_key(&j, "stale_keys");
	cs_json_array(&j);
	for (int i = 0; i < v->nstale; i++) {
		const stale_rec *st = &v->stale[i];
		char l[CS_LSN_STRLEN];
		cs_json_object(&j);
		if (st->shard >= 0)
			cs_json_kv_str(&j, "shard", v->cfg->shards[st->shard].name);
		cs_json_kv_str(&j, "query", st->query);
		cs_json_kv_str(&j, "key", st->key);
		cs_json_kv_str(&j, "lsn", cs_lsn_format(st->lsn, l));
		cs_json_kv_int(&j, "age_ms", st->age_ms);
		cs_json_kv_str(&j, "diff", st->diff);
		cs_json_object_end(&j);
	}
	cs_json_array_end(&j);
	cs_json_kv_bool(&j, "stale_keys_truncated", v->total.stale > (uint64_t)v->nstale);
	cs_json_kv_bool(&j, "complete", !v->fatal && !v->incomplete && !v->unreached);
	cs_json_object_end(&j);
	if (cs_sb_puts(&s, stdout) != 0)
		fputs("cachesvc-verify: out of memory writing the report\n", stderr);
}

/* ---- Main ----------------------------------------------------------------------------------- */

static bool parse_opts(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"sample", required_argument, NULL, 's'},
	        {"query", required_argument, NULL, 'q'},
	        {"wait", required_argument, NULL, 'w'},
	        {"json", no_argument, NULL, 'j'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	*o = (opts){.wait_ms = 10000};
	int ch;
	char *end;
	while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 's':
			errno = 0;
			o->sample = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || o->sample < 1 ||
			        o->sample > 10000000) {
				fprintf(stderr,
				        "cachesvc-verify: --sample wants 1..10000000, got \"%s\"\n",
				        optarg);
				return false;
			}
			break;
		case 'q':
			o->query = optarg;
			break;
		case 'w': {
			double s = strtod(optarg, &end);
			if (*end || end == optarg || !(s >= 0 && s <= 86400)) {
				fprintf(stderr,
				        "cachesvc-verify: --wait wants seconds (0..86400), got "
				        "\"%s\"\n",
				        optarg);
				return false;
			}
			o->wait_ms = (int64_t)llround(s * 1000);
			break;
		}
		case 'j':
			o->json = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_CLEAN);
		default:
			usage(stderr);
			return false;
		}
	}
	if (optind != argc || o->config == NULL) {
		usage(stderr);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	static verifier v; /* large (the stale list): not on the stack */
	if (!parse_opts(argc, argv, &v.o))
		return EXIT_USAGE;
	char errbuf[CS_CONFIG_ERRLEN];
	cs_config *cfg = cs_config_load(v.o.config, errbuf);
	if (cfg == NULL) {
		fprintf(stderr, "cachesvc-verify: %s\n", errbuf);
		return EXIT_USAGE;
	}
	v.cfg = cfg;
	v.shard = -1;
	int nsh = cfg->nshards > 0 ? cfg->nshards : 1;
	char ns[CS_NS_MAX + 1];
	cs_config_namespace(cfg, ns);
	v.cluster = cfg->redis_cluster;
	if (cfg->nshards > 0)
		; /* each shard's keyspace: in the loop below */
	else if (!v.cluster)
		cs_ks_init(&v.ks, ns);
	else if (cs_ks_init_cluster(&v.ks, ns) != 0) {
		fprintf(stderr,
		        "cachesvc-verify: [redis] namespace \"%s\" may not hold { or } on a "
		        "cluster\n",
		        ns);
		cs_config_free(cfg);
		return EXIT_USAGE;
	}
	int status = EXIT_USAGE;
	qrun *runs = NULL;
	int nruns = 0;
	const cs_query_def *only = NULL;
	if (v.o.query && (only = cs_config_query(cfg, v.o.query, strlen(v.o.query))) == NULL) {
		fprintf(stderr, "cachesvc-verify: no [query %s] in %s\n", v.o.query, v.o.config);
		goto out;
	}
	if ((cfg->nshards == 0 && cfg->primary_conninfo == NULL) ||
	        (v.cluster ? cfg->redis_nodes == NULL : cfg->redis_url == NULL)) {
		fprintf(stderr, "cachesvc-verify: %s needs %s conninfo and [redis] %s\n",
		        v.o.config, cfg->nshards > 0 ? "[shard NAME]" : "[primary]",
		        v.cluster ? "nodes" : "url");
		goto out;
	}
	runs = calloc((size_t)nsh * (only ? 1 : (size_t)(cfg->nqueries > 0 ? cfg->nqueries : 1)),
	        sizeof *runs);
	if (runs == NULL) {
		fprintf(stderr, "cachesvc-verify: out of memory\n");
		goto out;
	}
	status = EXIT_UNREACHABLE;
	if (v.cluster) {
		if ((v.map = malloc(sizeof *v.map)) == NULL) {
			fprintf(stderr, "cachesvc-verify: out of memory\n");
			goto out;
		}
		v.map->nnodes = 0;
		if (!load_map(&v))
			goto out;
	} else if ((v.redis = redis_connect(cfg, NULL, 0)) == NULL) {
		goto out;
	}
	if (cfg->nshards == 0 && (v.pg = pg_connect(cfg->primary_conninfo)) == NULL)
		goto out;
	srandom((unsigned)(cs_now_us() ^ (uint64_t)getpid()));
	cs_buf_init(&v.fresh, CS_PROTO_MAX_REPLY_FRAME);

	for (int s = 0; s < nsh && !v.fatal; s++) {
		if (cfg->nshards > 0) {
			/* shard s: its keyspace "<ns>@<s>" and its primary */
			const cs_shard_def *sd = &cfg->shards[s];
			v.shard = s;
			v.inv_stalled = 0;
			if (cs_ks_init_shard(&v.ks, ns, sd->name, v.cluster) != 0) {
				fprintf(stderr,
				        "cachesvc-verify: shard %s: no keyspace for namespace "
				        "\"%s\"\n",
				        sd->name, ns);
				status = EXIT_USAGE;
				goto out;
			}
			bool wanted = false; /* a query of the run reads this shard */
			for (int i = 0; i < cfg->nqueries && !wanted; i++)
				wanted = (!only || only == &cfg->queries[i]) &&
				         (cfg->queries[i].shard_index < 0 || cfg->queries[i].shard_index == s);
			if (!wanted) {
				v.shard_done[s] = true; /* nothing of the run's there */
				continue;
			}
			if (v.pg)
				PQfinish(v.pg);
			if ((v.pg = pg_connect(sd->conninfo)) == NULL) {
				fprintf(stderr,
				        "cachesvc-verify: shard %s: its primary is unreachable: its entries "
				        "are not checked\n",
				        sd->name);
				v.unreached = true;
				continue;
			}
		}
		for (int i = 0; i < cfg->nqueries && !v.fatal; i++) {
			const cs_query_def *q = &cfg->queries[i];
			if (only && only != q)
				continue;
			if (v.shard >= 0 && q->shard_index >= 0 && q->shard_index != v.shard)
				continue; /* pinned to another shard: never filled here */
			qrun *qr = &runs[nruns++];
			qr->q = q;
			qr->shard = v.shard;
			verify_query(&v, qr);
			add_tally(&v.total, &qr->t);
			if (v.shard >= 0)
				add_tally(&v.shard_total[v.shard], &qr->t);
			if (!v.o.json) {
				char label[2 * CS_MAX_NAME + 64];
				snprintf(label, sizeof label,
				        "%s%s%squery %s (generation %" PRIu64 ")",
				        v.shard >= 0 ? "shard " : "",
				        v.shard >= 0 ? cfg->shards[v.shard].name : "",
				        v.shard >= 0 ? ": " : "", qr->q->name, qr->gen);
				print_tally_text(label, &qr->t);
			}
		}
		if (v.shard >= 0) {
			v.shard_done[s] = !v.fatal;
			if (!v.o.json)
				print_shard_text(&v, s);
		}
	}
	if (v.o.json) {
		report_json(&v, runs, nruns);
	} else {
		print_tally_text("total", &v.total);
		if (v.fatal)
			printf("incomplete: a server went away during the run\n");
		else if (v.unreached)
			printf("incomplete: a shard's primary was unreachable: its entries were not "
			       "checked\n");
		else if (v.incomplete)
			printf("incomplete: the cluster's slot map changed during the run (reshard "
			       "or "
			       "failover): some entries were not scanned\n");
	}
	/* A stale entry is the finding: it outranks a run cut short. */
	status = v.total.stale > 0         ? EXIT_STALE
	         : v.fatal || v.incomplete || v.unreached ? EXIT_UNREACHABLE
	                                   : EXIT_CLEAN;
out:
	for (int i = 0; i < v.nstale; i++) {
		free(v.stale[i].query);
		free(v.stale[i].key);
		free(v.stale[i].diff);
	}
	cs_buf_free(&v.fresh);
	free(runs);
	if (v.pg)
		PQfinish(v.pg);
	if (v.redis)
		redisFree(v.redis);
	drop_nodes(&v);
	free(v.map);
	cs_config_free(cfg);
	return status;
}
