/* check.c - startup validation against the servers (blocking; before the event loop). */
#include "check.h"
#include "mapping.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "log.h"
#include "rcluster.h"
#include "redis_url.h"
#include "util.h"
#include "textutil.h"

#define CHECK_TIMEOUT "5"

static void append(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void append(char *err, size_t errlen, const char *fmt, ...)
{
	size_t n = strlen(err);
	if (n + 2 >= errlen)
		return;
	if (n > 0)
		err[n++] = '\n', err[n] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

static PGconn *connect_blocking(const char *conninfo)
{
	const char *kw[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *val[] = { conninfo, CHECK_TIMEOUT, "cachesvc-check", NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (c && PQstatus(c) != CONNECTION_OK) {
		char masked[512], msg[512];
		cs_log_mask_conninfo(conninfo, masked, sizeof masked);
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
		cs_chomp(msg);
		cs_warn("check: cannot connect to %s: %s", masked, msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* The primary of shard k ([primary] without [shard NAME] sections). */
static const char *primary_of(const cs_config *cfg, int k)
{
	return cfg->nshards > 0 ? cfg->shards[k].conninfo : cfg->primary_conninfo;
}

/* True when query q reads from shard k (a keyed query reads every shard; no shards: all). */
static bool reads_shard(const cs_query_def *q, int k)
{
	return q->shard_index < 0 || q->shard_index == k;
}

/* Prepares q on c and compares the parameter types: CS_CHECK_OK or CS_CHECK_INVALID (a line
 * in err). */
static int check_query(PGconn *c, const cs_query_def *q, char *err, size_t errlen)
{
	int rc = CS_CHECK_OK;
	/* 1. Let PostgreSQL infer the parameter types, and compare with the declared ones:
	 *    a declared int4 compared with a bigint column is a silent cast at best. */
	PGresult *r = PQprepare(c, "", q->sql, 0, NULL);
	if (PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		r = PQdescribePrepared(c, "");
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			if (PQnparams(r) != q->nparams) {
				append(err, errlen,
				        "[query %s] params: the SQL uses %d parameters, %d "
				        "declared",
				        q->name, PQnparams(r), q->nparams);
				rc = CS_CHECK_INVALID;
			}
			for (int p = 0; p < PQnparams(r) && p < q->nparams; p++) {
				unsigned want = cs_param_type_oid(q->params[p].type);
				unsigned got = PQparamtype(r, p);
				if (got != want && got != 705 /* unknown */ &&
				        got != 25 /* text literal */) {
					append(err, errlen,
					        "[query %s] params: $%d (%s) is declared %s but "
					        "PostgreSQL "
					        "infers type oid %u from the SQL",
					        q->name, p + 1, q->params[p].name,
					        cs_param_type_name(q->params[p].type), got);
					rc = CS_CHECK_INVALID;
				}
			}
		}
		PQclear(r);
		r = PQexec(c, "DEALLOCATE ALL");
		PQclear(r);
		return rc;
	}
	/* 2. Inference failed: the declared types must make it prepare. */
	PQclear(r);
	Oid types[CS_MAX_PARAMS];
	for (int p = 0; p < q->nparams; p++)
		types[p] = cs_param_type_oid(q->params[p].type);
	r = PQprepare(c, "", q->sql, q->nparams, types);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		cs_chomp(msg);
		append(err, errlen, "[query %s] sql: does not prepare: %s", q->name, msg);
		rc = CS_CHECK_INVALID;
	}
	PQclear(r);
	r = PQexec(c, "DEALLOCATE ALL");
	PQclear(r);
	return rc;
}

int cs_check_queries(const cs_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	int rc = CS_CHECK_OK;
	bool *bad = calloc((size_t)(cfg->nqueries ? cfg->nqueries : 1), sizeof *bad);
	if (bad == NULL) {
		append(err, errlen, "out of memory");
		return CS_CHECK_UNREACHABLE;
	}
	/* each shard's servers (SHARDS.md section 7 step 4): a replica of the shard, else its
	 * primary; the queries that read from it. A query found wrong is reported once. */
	for (int k = 0; k < (cfg->nshards > 0 ? cfg->nshards : 1); k++) {
		PGconn *c = NULL;
		for (int i = 0; i < cfg->nreplicas && c == NULL; i++)
			if (cfg->nshards == 0 || cfg->replicas[i].shard_index == k)
				c = connect_blocking(cfg->replicas[i].conninfo);
		if (c == NULL && primary_of(cfg, k))
			c = connect_blocking(primary_of(cfg, k));
		if (c == NULL) {
			if (cfg->nshards > 0)
				append(err, errlen,
				        "[shard %s]: no server reachable to check the queries "
				        "against",
				        cfg->shards[k].name);
			else
				append(err, errlen,
				        "no server reachable to check the queries against");
			if (rc == CS_CHECK_OK)
				rc = CS_CHECK_UNREACHABLE;
			continue;
		}
		for (int i = 0; i < cfg->nqueries; i++) {
			if (bad[i] || !reads_shard(&cfg->queries[i], k))
				continue;
			if (check_query(c, &cfg->queries[i], err, errlen) != CS_CHECK_OK) {
				bad[i] = true;
				rc = CS_CHECK_INVALID;
			}
		}
		PQfinish(c);
	}
	free(bad);
	return rc;
}

/* Connects to the configured Redis (2 s timeouts) and authenticates. NULL with a line in
 * err ("[redis] url: cannot ... what") when the URL is bad (*bad set) or Redis is not
 * reachable. */
/* Connects (2 s bounds) to the Redis of [redis] url, or, host not NULL, to host:port (a node
 * of a cluster) with the url's user and password. */
static redisContext *redis_connect_at(const cs_config *cfg, const char *host, int port,
	const char *what, bool *bad, char *err, size_t errlen)
{
	cs_redis_url u;
	char why[256];
	*bad = false;
	memset(&u, 0, sizeof u);
	if (cfg->redis_url && !cs_redis_url_parse(cfg->redis_url, &u, why, sizeof why)) {
		append(err, errlen, "[redis] url: %s", why);
		*bad = true;
		return NULL;
	}
	if (host) {
		snprintf(u.host, sizeof u.host, "%s", host);
		u.port = port;
		u.unix_path[0] = '\0';
	}
	struct timeval tv = { 2, 0 };
	redisContext *rc = u.unix_path[0] ? redisConnectUnixWithTimeout(u.unix_path, tv)
					  : redisConnectWithTimeout(u.host, u.port, tv);
	redisReply *r = NULL;
	if (rc && !rc->err) {
		redisSetTimeout(rc, tv);
		if (u.password[0]) {
			r = u.username[0] ? redisCommand(rc, "AUTH %s %s", u.username, u.password)
					  : redisCommand(rc, "AUTH %s", u.password);
		}
	}
	if (rc == NULL || rc->err || (r && r->type == REDIS_REPLY_ERROR)) {
		if (host)
			append(err, errlen, "[redis] node %s:%d: cannot %s: %s", host, port, what,
				rc == NULL ? "out of memory" : rc->err ? rc->errstr : r->str);
		else
			append(err, errlen, "[redis] url: cannot %s: %s", what,
				rc == NULL ? "out of memory" : rc->err ? rc->errstr : r->str);
		freeReplyObject(r);
		redisFree(rc);
		return NULL;
	}
	freeReplyObject(r);
	return rc;
}

static redisContext *redis_connect_checked(const cs_config *cfg, const char *what, bool *bad,
	char *err, size_t errlen)
{
	return redis_connect_at(cfg, NULL, 0, what, bad, err, errlen);
}

/* A cluster's nodes (cs_check_* on [redis] cluster = on): CLUSTER NODES asked of the first
 * seed of [redis] nodes that answers; each node's "host:port" into out (at most max; a node
 * that does not know its own address, ":port", gets the seed's host). *skipped counts the
 * nodes listed but not returned (flagged fail, fail?, noaddr or handshake, unparsable, past
 * max): the caller must not call the cluster checked when it is not 0. Returns the count, or
 * -1 (err says why; *bad when the configuration itself is wrong). */
static int cluster_nodes(const cs_config *cfg, cs_rc_endpoint *out, int max, int *skipped,
	bool *bad, char *err, size_t errlen)
{
	*skipped = 0;
	char *buf = strdup(cfg->redis_nodes ? cfg->redis_nodes : "");
	char *seeds[CS_RC_MAX_NODES];
	int nseeds = buf ? cs_split_list(buf, seeds, CS_RC_MAX_NODES) : 0;
	int n = -1;
	*bad = false;
	for (int i = 0; i < nseeds && n < 0 && !*bad; i++) {
		cs_rc_endpoint seed;
		if (cs_rc_parse_endpoint(seeds[i], strlen(seeds[i]), &seed) != 0) {
			append(err, errlen, "[redis] nodes: \"%s\" is not host:port", seeds[i]);
			*bad = true;
			break;
		}
		redisContext *c = redis_connect_at(cfg, seed.host, seed.port, "reach a cluster seed",
			bad, err, errlen);
		redisReply *r = c ? redisCommand(c, "CLUSTER NODES") : NULL;
		if (r && r->type == REDIS_REPLY_STRING) {
			n = 0;
			/* "<id> <ip:port@cport[,hostname]> <flags> ..." per line */
			for (char *line = r->str, *next; line && *line; line = next) {
				next = strchr(line, '\n');
				if (next)
					*next++ = '\0';
				char addr[CS_RC_HOST_MAX + 16], flags[128], full[2 * CS_RC_HOST_MAX + 16];
				/* the widths below are these sizes less one */
				_Static_assert(sizeof addr == 272 && sizeof flags == 128,
					"sscanf widths in check.c");
				if (line[0] == '\0')
					continue;
				if (sscanf(line, "%*s %271s %127s", addr, flags) != 2 ||
					strstr(flags, "fail") || strstr(flags, "noaddr") ||
					strstr(flags, "handshake")) {
					append(err, errlen, "[redis] cluster node not checked: %.200s", line);
					(*skipped)++;
					continue;
				}
				char *at = strchr(addr, '@');
				if (at)
					*at = '\0';
				/* ":port": the node does not know its own address: the seed's host */
				snprintf(full, sizeof full, "%s%s", addr[0] == ':' ? seed.host : "", addr);
				if (n == max || cs_rc_parse_endpoint(full, strlen(full), &out[n]) != 0) {
					append(err, errlen, "[redis] cluster node not checked: %.200s", line);
					(*skipped)++;
					continue;
				}
				n++;
			}
		} else if (c) {
			append(err, errlen, "[redis] node %s:%d: CLUSTER NODES: %s", seed.host,
				seed.port, r ? (r->type == REDIS_REPLY_ERROR ? r->str : "?") : c->errstr);
		}
		freeReplyObject(r);
		redisFree(c);
	}
	free(buf);
	if (n < 0 && !*bad && nseeds == 0) {
		append(err, errlen, "[redis] nodes: no seed");
		*bad = true;
	}
	return n;
}

/* The nodes a cluster check must reach (malloc'ed, *n of them; NULL when none) and the check's
 * verdict so far: CS_CHECK_INVALID (the configuration), CS_CHECK_UNREACHABLE (no seed gave the
 * list, it named no node, or a node listed cannot be checked: the cluster is not called
 * checked, review 10), else CS_CHECK_OK. */
static cs_rc_endpoint *nodes_to_check(const cs_config *cfg, int *n, int *verdict, char *err,
	size_t errlen)
{
	bool bad = false;
	int skipped = 0;
	cs_rc_endpoint *nodes = malloc(CS_RC_MAX_NODES * sizeof *nodes);
	*n = nodes ? cluster_nodes(cfg, nodes, CS_RC_MAX_NODES, &skipped, &bad, err, errlen) : -1;
	if (nodes == NULL)
		append(err, errlen, "[redis] nodes: out of memory");
	else if (*n == 0 && !bad)
		append(err, errlen, "[redis] nodes: the cluster listed no node to check");
	*verdict = bad ? CS_CHECK_INVALID
		       : *n <= 0 || skipped > 0 ? CS_CHECK_UNREACHABLE : CS_CHECK_OK;
	if (*n <= 0 || bad) {
		*n = 0;
		free(nodes);
		return NULL;
	}
	return nodes;
}

/* One Redis's maxmemory-policy against fence.c (i): CS_CHECK_INVALID (err names it) or OK. */
static int policy_of(redisContext *rc, const char *who, char *err, size_t errlen)
{
	int result = CS_CHECK_OK;
	redisReply *r = redisCommand(rc, "CONFIG GET maxmemory-policy");
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		r->element[1]->type == REDIS_REPLY_STRING) {
		if (!cs_check_policy_ok(r->element[1]->str)) {
			append(err, errlen,
				"[redis] %s%smaxmemory-policy is %s: with fence = on cachesvc needs "
				"noeviction or a volatile-* policy: use volatile-lru or volatile-lfu (every "
				"cachesvc entry has a TTL, so they evict entries as allkeys-lru/lfu would, "
				"while the consistency keys, which have none, are never evicted; fence.c "
				"(i)); or fence = off", who ? who : "", who ? ": " : "",
				r->element[1]->str);
			result = CS_CHECK_INVALID;
		}
	} else {
		cs_warn("check: %s%sCONFIG GET maxmemory-policy is not allowed (%s); make sure it is "
			"noeviction, volatile-lru or volatile-lfu (never allkeys-*)", who ? who : "",
			who ? ": " : "",
			r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
	}
	freeReplyObject(r);
	return result;
}

/* One server: connect and SELECT 1 within CHECK_TIMEOUT; a line naming it when it fails. */
static bool server_reachable(const char *what, const char *conninfo, char *err, size_t errlen)
{
	const char *kw[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *val[] = { conninfo, CHECK_TIMEOUT, "cachesvc-check", NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);
	char msg[512] = "";
	if (c == NULL) {
		snprintf(msg, sizeof msg, "out of memory");
	} else if (PQstatus(c) != CONNECTION_OK) {
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
	} else {
		PGresult *r = PQexec(c, "SELECT 1");
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	PQfinish(c);
	if (msg[0] == '\0')
		return true;
	cs_chomp(msg);
	char masked[512];
	cs_log_mask_conninfo(conninfo, masked, sizeof masked);
	append(err, errlen, "%s: cannot reach %s: %s", what, masked, msg);
	return false;
}

int cs_check_servers(const cs_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	int rc = CS_CHECK_OK;
	char what[CS_MAX_NAME + 16];
	if (cfg->primary_conninfo && !server_reachable("[primary]", cfg->primary_conninfo, err, errlen))
		rc = CS_CHECK_UNREACHABLE;
	for (int k = 0; k < cfg->nshards; k++) {
		snprintf(what, sizeof what, "[shard %s]", cfg->shards[k].name);
		if (!server_reachable(what, cfg->shards[k].conninfo, err, errlen))
			rc = CS_CHECK_UNREACHABLE;
	}
	for (int i = 0; i < cfg->nreplicas; i++) {
		snprintf(what, sizeof what, "[replica %s]", cfg->replicas[i].name);
		if (!server_reachable(what, cfg->replicas[i].conninfo, err, errlen))
			rc = CS_CHECK_UNREACHABLE;
	}
	bool bad = false;
	if (cfg->redis_cluster) {
		/* every node the cluster lists must answer a PING */
		int n, verdict;
		cs_rc_endpoint *nodes = nodes_to_check(cfg, &n, &verdict, err, errlen);
		if (verdict == CS_CHECK_INVALID)
			return CS_CHECK_INVALID;
		if (verdict != CS_CHECK_OK)
			rc = verdict;
		for (int i = 0; i < n; i++) {
			redisContext *c = redis_connect_at(cfg, nodes[i].host, nodes[i].port,
				"reach a cluster node", &bad, err, errlen);
			redisReply *r = c ? redisCommand(c, "PING") : NULL;
			if (c == NULL || r == NULL || r->type == REDIS_REPLY_ERROR) {
				if (c)
					append(err, errlen, "[redis] node %s:%d: cannot reach it: %s",
						nodes[i].host, nodes[i].port, r ? r->str : c->errstr);
				rc = CS_CHECK_UNREACHABLE;
			}
			freeReplyObject(r);
			redisFree(c);
		}
		free(nodes);
		return rc;
	}
	redisContext *rc2 = redis_connect_checked(cfg, "reach Redis", &bad, err, errlen);
	if (bad)
		return CS_CHECK_INVALID;
	redisReply *r = rc2 ? redisCommand(rc2, "PING") : NULL;
	if (rc2 && (r == NULL || r->type == REDIS_REPLY_ERROR)) {
		append(err, errlen, "[redis] url: cannot reach Redis: %s",
			r ? r->str : "no answer to PING");
		rc = CS_CHECK_UNREACHABLE;
	} else if (rc2 == NULL) {
		rc = CS_CHECK_UNREACHABLE;
	}
	freeReplyObject(r);
	redisFree(rc2);
	return rc;
}

bool cs_check_policy_ok(const char *policy)
{
	static const char *const ok[] = { "noeviction", "volatile-lru", "volatile-lfu",
		"volatile-random", "volatile-ttl" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(policy, ok[i]) == 0)
			return true;
	return false;
}

int cs_check_redis(const cs_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	if (!cfg->fence)
		return CS_CHECK_OK;
	bool bad = false;
	if (cfg->redis_cluster) {
		/* every node, masters and replicas: a replica promoted keeps its policy (review 9) */
		int n, result;
		cs_rc_endpoint *nodes = nodes_to_check(cfg, &n, &result, err, errlen);
		for (int i = 0; i < n && result != CS_CHECK_INVALID; i++) {
			char who[CS_RC_HOST_MAX + 24];
			snprintf(who, sizeof who, "node %s:%d", nodes[i].host, nodes[i].port);
			redisContext *c = redis_connect_at(cfg, nodes[i].host, nodes[i].port,
				"connect to check maxmemory-policy", &bad, err, errlen);
			if (c == NULL) {
				result = CS_CHECK_UNREACHABLE;
				continue;
			}
			if (policy_of(c, who, err, errlen) == CS_CHECK_INVALID)
				result = CS_CHECK_INVALID;
			redisFree(c);
		}
		free(nodes);
		return result;
	}
	redisContext *rc = redis_connect_checked(cfg, "connect to check maxmemory-policy", &bad, err,
		errlen);
	if (rc == NULL)
		return bad ? CS_CHECK_INVALID : CS_CHECK_UNREACHABLE;
	int result = policy_of(rc, NULL, err, errlen);
	redisFree(rc);
	return result;
}

/* Quotes an identifier for SQL (doubling embedded quotes). */
static void quote_ident(char *out, size_t len, const char *id)
{
	size_t j = 0;
	if (len < 3) {
		out[0] = '\0';
		return;
	}
	out[j++] = '"';
	for (; *id && j + 3 < len; id++) {
		if (*id == '"')
			out[j++] = '"';
		out[j++] = *id;
	}
	out[j++] = '"';
	out[j] = '\0';
}

/* The publication on shard k's primary (k 0 without shards) and the invalidate_on tables of
 * the queries that read from it. */
static int check_publication(const cs_config *cfg, int k, bool create, char *err, size_t errlen)
{
	PGconn *c = primary_of(cfg, k) ? connect_blocking(primary_of(cfg, k)) : NULL;
	if (c == NULL) {
		if (cfg->nshards > 0)
			append(err, errlen,
			        "[invalidator] cannot reach [shard %s]'s primary to check "
			        "the publication",
			        cfg->shards[k].name);
		else
			append(err, errlen,
			        "[invalidator] cannot reach the primary to check the "
			        "publication");
		return CS_CHECK_UNREACHABLE;
	}
	int rc = CS_CHECK_OK;
	const char *pub = cfg->inval_publication;
	const char *pv[1] = { pub };
	PGresult *r = PQexecParams(c, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, NULL, pv, NULL, NULL, 0);
	bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	if (!exists) {
		if (!cfg->inval_create_publication) {
			append(err, errlen, "[invalidator] publication: \"%s\" does not exist (create it, or set "
				"create_publication = true)", pub);
			PQfinish(c);
			return CS_CHECK_INVALID;
		}
		/* CREATE PUBLICATION name FOR TABLE every distinct invalidate_on table */
		char sql[8192], q1[300], q2[300];
		quote_ident(q1, sizeof q1, pub);
		size_t n = (size_t)snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR TABLE ", q1);
		int ntables = 0;
		for (int i = 0; i < cfg->nqueries; i++) {
			for (int j = 0;
			        reads_shard(&cfg->queries[i], k) && j < cfg->queries[i].ninval;
			        j++) {
				const cs_inval_rule *ru = &cfg->queries[i].inval[j];
				quote_ident(q1, sizeof q1, ru->schema);
				quote_ident(q2, sizeof q2, ru->table);
				char one[700];
				snprintf(one, sizeof one, "%s.%s", q1, q2);
				if (strstr(sql, one)) /* already listed */
					continue;
				n += (size_t)snprintf(sql + n, n < sizeof sql ? sizeof sql - n : 0, "%s%s",
					ntables++ ? ", " : "", one);
			}
		}
		if (ntables == 0 && cfg->nshards > 0) {
			/* No query with invalidate_on reads this shard (say all its queries are
			 * TTL-only, or pinned elsewhere): an empty publication, so that its
			 * invalidator still streams, keeps the shard's epoch and notices a lost
			 * slot (review 28 R28-3: this stopped the start). */
			quote_ident(q1, sizeof q1, pub); /* q1 held the tables' schemas since */
			n = (size_t)snprintf(sql, sizeof sql, "CREATE PUBLICATION %s", q1);
		} else if (ntables == 0 || n >= sizeof sql) { /* naming the shard: review 28 R28-3 */
			append(err, errlen, "[invalidator] publication: %s%s%s",
			        ntables == 0 ? "no invalidate_on table to publish"
			                     : "the invalidate_on tables do not fit one CREATE "
			                       "PUBLICATION (create it by hand)",
			        cfg->nshards > 0 ? " on shard " : "",
			        cfg->nshards > 0 ? cfg->shards[k].name : "");
			PQfinish(c);
			return CS_CHECK_INVALID;
		}
		if (!create) { /* --check: a gate reports, it changes nothing */
			printf("%s: would create publication \"%s\"%s%s for %d tables "
			       "(create_publication = true)\n",
			        cfg->path ? cfg->path : "config", pub,
			        cfg->nshards > 0 ? " on shard " : "",
			        cfg->nshards > 0 ? cfg->shards[k].name : "", ntables);
			PQfinish(c);
			return CS_CHECK_OK; /* the tables' own checks run when it exists */
		}
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			char msg[400];
			snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
			cs_chomp(msg);
			append(err, errlen, "[invalidator] publication: cannot create \"%s\": %s", pub, msg);
			rc = CS_CHECK_INVALID;
		} else {
			cs_info("created publication \"%s\"%s%s for %d tables", pub,
			        cfg->nshards > 0 ? " on shard " : "",
			        cfg->nshards > 0 ? cfg->shards[k].name : "", ntables);
		}
		PQclear(r);
	}
	/* every kind of change published: a publication without updates, deletes or truncates
	 * lists its tables all the same (review 34 R34-2) */
	if (rc != CS_CHECK_INVALID) {
		r = PQexecParams(c, "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate "
			"FROM pg_publication WHERE pubname = $1", 1, NULL, pv, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		        PQgetvalue(r, 0, 0)[0] != 't') {
			append(err, errlen, "[invalidator] publication \"%s\"%s%s does not publish every "
				"change; fix: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, "
				"truncate');", pub, cfg->nshards > 0 ? " on shard " : "",
				cfg->nshards > 0 ? cfg->shards[k].name : "", pub);
			rc = CS_CHECK_INVALID;
		}
		PQclear(r);
	}
	for (int i = 0; i < cfg->nqueries && rc != CS_CHECK_INVALID; i++) {
		const cs_query_def *q = &cfg->queries[i];
		for (int j = 0; reads_shard(q, k) && j < q->ninval; j++) {
			const cs_inval_rule *ru = &q->inval[j];
			const char *tv[3] = { pub, ru->schema, ru->table };
			r = PQexecParams(c,
				"SELECT c.relreplident, "
				" EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 "
				"   AND p.schemaname = $2 AND p.tablename = $3), "
				" EXISTS (SELECT 1 FROM pg_publication_tables p WHERE p.pubname = $1 "
				"   AND p.schemaname = $2 AND p.tablename = $3 AND p.rowfilter IS NOT NULL) "
				"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
				"WHERE n.nspname = $2 AND c.relname = $3",
				3, NULL, tv, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
				append(err, errlen, "[query %s] invalidate_on: table %s.%s does not exist", q->name,
					ru->schema, ru->table);
				rc = CS_CHECK_INVALID;
				PQclear(r);
				continue;
			}
			char ident = PQgetvalue(r, 0, 0)[0];
			bool published = PQgetvalue(r, 0, 1)[0] == 't';
			bool filtered = PQgetvalue(r, 0, 2)[0] == 't';
			PQclear(r);
			if (filtered) { /* changes of rows outside the filter never streamed: R34-2 */
				append(err, errlen, "[query %s] invalidate_on: table %s.%s is published by \"%s\" "
					"with a row filter, so changes outside it would never invalidate; fix: "
					"ALTER PUBLICATION %s SET TABLE ... without a WHERE for %s.%s;", q->name,
					ru->schema, ru->table, pub, pub, ru->schema, ru->table);
				rc = CS_CHECK_INVALID;
			}
			if (!published) {
				append(err, errlen, "[query %s] invalidate_on: table %s.%s is not in publication \"%s\"; "
					"fix: ALTER PUBLICATION %s ADD TABLE %s.%s;", q->name, ru->schema, ru->table,
					pub, pub, ru->schema, ru->table);
				rc = CS_CHECK_INVALID;
			}
			/* Every key column must exist (with REPLICA IDENTITY FULL too: an unknown
			 * column would make every change drop the whole query at run time). */
			bool missing = false;
			if (ru->ncols > 0) {
				PGresult *cr = PQexecParams(c,
					"SELECT a.attname FROM pg_attribute a "
					"JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
					"WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
					2, NULL, tv + 1, NULL, NULL, 0);
				for (int col = 0; col < ru->ncols; col++) {
					bool found = false;
					for (int row = 0; PQresultStatus(cr) == PGRES_TUPLES_OK && row < PQntuples(cr); row++)
						found = found || strcmp(PQgetvalue(cr, row, 0), ru->cols[col]) == 0;
					if (!found) {
						append(err, errlen, "[query %s] invalidate_on: column %s does not exist "
							"in table %s.%s", q->name, ru->cols[col], ru->schema, ru->table);
						rc = CS_CHECK_INVALID;
						missing = true;
					}
				}
				PQclear(cr);
			}
			if (ru->ncols == 0 || ident == 'f' || missing)
				continue; /* whole-table rule, or FULL: every old value is sent */
			/* The identity columns: the primary key (d) or the replica identity index (i). */
			r = PQexecParams(c,
				"SELECT a.attname FROM pg_index i "
				"JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
				"JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey) "
				"WHERE n.nspname = $1 AND c.relname = $2 AND "
				" (CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident "
				"  ELSE false END)",
				2, NULL, tv + 1, NULL, NULL, 0);
			for (int col = 0; col < ru->ncols; col++) {
				bool covered = false;
				for (int row = 0; PQresultStatus(r) == PGRES_TUPLES_OK && row < PQntuples(r); row++)
					covered = covered || strcmp(PQgetvalue(r, row, 0), ru->cols[col]) == 0;
				if (!covered) {
					append(err, errlen,
						"[query %s] invalidate_on: column %s of %s.%s is not in the table's "
						"replica identity, so an UPDATE or DELETE would not send its old value; "
						"fix: ALTER TABLE %s.%s REPLICA IDENTITY FULL;",
						q->name, ru->cols[col], ru->schema, ru->table, ru->schema, ru->table);
					rc = CS_CHECK_INVALID;
				}
			}
			PQclear(r);
		}
	}
	PQfinish(c);
	return rc;
}

/* The event triggers that put every DDL command into the replication stream as a row of
 * cachesvc.ddl_event (invalidator/mapping.h CS_DDL_TABLE), in the command's transaction:
 * data a DDL command rewrites is never decoded as row changes. The functions are SECURITY
 * DEFINER (owned by the installing superuser, search_path pinned): any role's DDL runs
 * them, and only they may write the table, so no other role can drop queries (review 37
 * R37-1, R37-3). A changed table is recorded with every table it is a partition or child of;
 * a dropped table (its parents are gone from the catalogs by then), a view, a function, a
 * type... as "*"; temporary objects and GRANT, REVOKE, COMMENT not at all; a materialized
 * view by its name (REFRESH: no query can invalidate on one, so nothing drops; R37-4).
 * A renamed or moved table (RENAME TO, SET SCHEMA) is recorded by its old name too (review 37
 * R37-6: ddl_command_end sees only the new one, and the queries on the old name kept serving
 * rows of a table that name no longer had). Table cachesvc.ddl_rel maps every table, foreign
 * table and materialized view's oid to its schema's oid and its name (seeded here, kept by
 * the triggers: written at its creation and at a command that renames or moves it, deleted
 * at its drop); ddl_end looks the relation up by its oid before it updates the row, and a name
 * that differs is the old one (its schema named as it is called now). The schema by oid: a
 * renamed schema writes no row (it is "*"), so it cannot deadlock with the renames of its
 * tables. A relation it does not know (created while the triggers were off) is "*" at any
 * command but its creation. Not chosen: at ddl_command_start a plpgsql trigger knows the
 * command tag only, not the target (the statement's text is no answer: dynamic SQL, several
 * statements in one string); "*" for every command that can rename is "*" for every ALTER
 * TABLE (the same tag as ADD COLUMN, and pg_ddl_command cannot be read in SQL), dropping
 * every query at any ALTER TABLE. A renamed schema, a renamed view or function are "*"
 * (anything but a table). A renamed column names its table (the query's SQL then fails
 * rather than its entries being served).
 * Versioned by the comment on ddl_end(): a start finding both triggers enabled under this
 * version, and every table in ddl_rel under its name, changes nothing; one finding a table
 * missing or misnamed there repairs the map in place (ddl_rel_repair_sql: never a DROP,
 * review 42 R42-1); another version (4: no ddl_rel) is replaced, ddl_rel created afresh.
 * Installed in one transaction (an advisory lock, bounded waits) that first drops the
 * triggers, so installing fires none of them. */
#define DDL_VERSION "cachesvc ddl triggers 5"
/* cachesvc.ddl_rel made to agree with pg_class in place, writing only the rows that differ:
 * deletes the rows of relations gone or no longer a table (or temporary), inserts or updates
 * the missing and wrong ones. First the table in SHARE ROW EXCLUSIVE mode, NOWAIT: it fails
 * at once while any open transaction wrote the map (a DDL command in progress), never
 * queues (no DROP-like stall: review 42 R42-1), and no DDL writes the map while it runs:
 * row by row, it deadlocked with an open migration's next DDL, which PostgreSQL then
 * cancelled (review 44 R44-1), and it overwrote a concurrent rename's newer row with the
 * name read before it (R44-2). A DDL command meanwhile waits for it (seconds at most). */
#define DDL_REL_SYNC \
	"LOCK TABLE cachesvc.ddl_rel IN SHARE ROW EXCLUSIVE MODE NOWAIT;\n" \
	"DELETE FROM cachesvc.ddl_rel m WHERE NOT EXISTS (SELECT FROM pg_class c\n" \
	"  WHERE c.oid = m.relid AND c.relkind IN ('r', 'p', 'f', 'm') AND c.relpersistence <> 't');\n" \
	"INSERT INTO cachesvc.ddl_rel SELECT c.oid, c.relnamespace, c.relname FROM pg_class c\n" \
	"  LEFT JOIN cachesvc.ddl_rel m ON m.relid = c.oid\n" \
	"  WHERE c.relkind IN ('r', 'p', 'f', 'm') AND c.relpersistence <> 't'\n" \
	"    AND (m.relid IS NULL OR m.nspid <> c.relnamespace OR m.rel <> c.relname)\n" \
	"  ON CONFLICT (relid) DO UPDATE SET nspid = excluded.nspid, rel = excluded.rel;\n"
/* The map repaired on its own (the triggers in place, the map disagreeing): a short
 * lock_timeout, the triggers left alone. */
static const char ddl_rel_repair_sql[] =
	"BEGIN;\n"
	"SET LOCAL client_min_messages = warning;\n"
	"SET LOCAL lock_timeout = '2s';\n"
	"SET LOCAL statement_timeout = '30s';\n"
	"SELECT pg_advisory_xact_lock(hashtext('" DDL_VERSION "'));\n"
	DDL_REL_SYNC
	"COMMIT;\n";
/* True when every table, foreign table and materialized view has its row in the map, with
 * its schema and name. Rows of relations that are gone or no longer tables are left out:
 * they cannot make a rename record a wrong old name (a new relation's creation updates the
 * row of its oid), and any table owner can leave one (CREATE RULE "_RETURN" turns a table
 * into a view: review 42 R42-3), so they must not make a start repair anything. */
#define DDL_REL_AGREES \
	"NOT EXISTS (SELECT FROM pg_class c LEFT JOIN cachesvc.ddl_rel m ON m.relid = c.oid " \
	"WHERE c.relkind IN ('r', 'p', 'f', 'm') AND c.relpersistence <> 't' AND (m.relid IS " \
	"NULL OR m.nspid <> c.relnamespace OR m.rel <> c.relname))"
static const char ddl_install_sql[] =
	"BEGIN;\n"
	"SET LOCAL client_min_messages = warning;\n"
	"SET LOCAL lock_timeout = '10s';\n"
	"SET LOCAL statement_timeout = '30s';\n"
	"SELECT pg_advisory_xact_lock(hashtext('" DDL_VERSION "'));\n"
	"DROP EVENT TRIGGER IF EXISTS cachesvc_ddl_end;\n"
	"DROP EVENT TRIGGER IF EXISTS cachesvc_ddl_drop;\n"
	"CREATE SCHEMA IF NOT EXISTS cachesvc;\n"
	"REVOKE ALL ON SCHEMA cachesvc FROM PUBLIC;\n"
	"CREATE TABLE IF NOT EXISTS cachesvc.ddl_event (id bigserial PRIMARY KEY,\n"
	"  at timestamptz NOT NULL DEFAULT now(), nsp text NOT NULL, rel text NOT NULL);\n"
	"REVOKE ALL ON cachesvc.ddl_event FROM PUBLIC;\n"
	"DELETE FROM cachesvc.ddl_event;\n" /* rows an older version left (review 40 R40-5) */
	/* relations by oid, for the old name of a renamed one (a rename while the triggers were
	 * off is not followed). Dropped and created afresh only over version 4 or older (whose
	 * functions never read it: nothing waits on it); over this version (the triggers
	 * disabled or dropped) kept and synced in place: a DROP TABLE's AccessExclusiveLock
	 * would queue behind any open DDL transaction (each reads the map) and every later DDL
	 * behind it (review 42 R42-1). */
	"SET LOCAL lock_timeout = '2s';\n"
	"DO $d$ BEGIN\n"
	"  IF coalesce((SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p\n"
	"      JOIN pg_namespace n ON n.oid = p.pronamespace\n"
	"      WHERE n.nspname = 'cachesvc' AND p.proname = 'ddl_end'), '') <> '" DDL_VERSION "'\n"
	"  THEN DROP TABLE IF EXISTS cachesvc.ddl_rel;\n"
	"  END IF;\n"
	"END $d$;\n"
	/* Logged, not UNLOGGED (review 42 R42-4). Unlogged, a FOR ALL TABLES publication would
	 * not carry it to native subscribers; but it would be empty after a crash and on a
	 * promoted standby (and a replica made by pg_basebackup), where a running cachesvc does
	 * not start again: every table unknown, the first DDL of each "*" (every query dropped)
	 * until a start repairs the map. And ddl_event must stay logged (its rows are the
	 * stream), so FOR ALL TABLES carries schema cachesvc anyway: CONFIG.md tells operators
	 * to leave it out of such publications. */
	"CREATE TABLE IF NOT EXISTS cachesvc.ddl_rel (relid oid PRIMARY KEY, nspid oid NOT NULL,\n"
	"  rel text NOT NULL);\n"
	"REVOKE ALL ON cachesvc.ddl_rel FROM PUBLIC;\n"
	DDL_REL_SYNC
	"DROP FUNCTION IF EXISTS cachesvc.ddl_note(text, text, text);\n"
	/* kind: the object's type; a table's schema, name and oid (a dropped one: no oid) */
	"CREATE OR REPLACE FUNCTION cachesvc.ddl_note(kind text, nsp text, rel text, relid oid)\n"
	"RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n"
	"AS $f$\n"
	"DECLARE ids bigint[];\n"
	"BEGIN\n"
	"  IF kind IN ('index', 'sequence', 'trigger', 'event trigger', 'statistics object',\n"
	"              'publication', 'publication relation', 'publication namespace',\n"
	"              'subscription') OR nsp LIKE 'pg\\_temp%' OR nsp LIKE 'pg\\_toast\\_temp%' THEN\n"
	"    RETURN;\n"
	"  END IF;\n"
	"  IF kind IN ('table', 'table column', 'foreign table', 'materialized view', 'rule',\n"
	"              'policy') AND nsp IS NOT NULL AND rel IS NOT NULL THEN\n"
	"    WITH RECURSIVE up(oid) AS (\n"
	"        SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = relid\n"
	"        UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid),\n"
	"      ins AS (INSERT INTO cachesvc.ddl_event (nsp, rel)\n"
	"        SELECT nsp, rel UNION ALL\n"
	"        SELECT n.nspname, c.relname FROM up JOIN pg_class c ON c.oid = up.oid\n"
	"        JOIN pg_namespace n ON n.oid = c.relnamespace RETURNING id)\n"
	"    SELECT array_agg(id) INTO ids FROM ins;\n"
	"  ELSE\n"
	"    WITH ins AS (INSERT INTO cachesvc.ddl_event (nsp, rel) VALUES ('*', '*') RETURNING id)\n"
	"    SELECT array_agg(id) INTO ids FROM ins;\n"
	"  END IF;\n"
	/* the rows did their work in the WAL: gone again in the same transaction, so the
	 * table stays empty and no DDL waits on another's rows (review 38 R38-2, R38-4) */
	"  DELETE FROM cachesvc.ddl_event WHERE id = ANY (ids);\n"
	"END\n"
	"$f$;\n"
	"REVOKE ALL ON FUNCTION cachesvc.ddl_note(text, text, text, oid) FROM PUBLIC;\n"
	"CREATE OR REPLACE FUNCTION cachesvc.ddl_end() RETURNS event_trigger\n"
	"LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$\n"
	"DECLARE r record; o record; known boolean;\n"
	"BEGIN\n"
	/* a table's own row, or the table of a rule or policy (review 40 R40-1) */
	"  FOR r IN SELECT d.object_type, d.command_tag, d.objid,\n"
	"                  coalesce(n.nspname::text, d.schema_name) AS nsp,\n"
	"                  c.relname::text AS rel, c.oid AS relid, c.relnamespace AS nspid,\n"
	"                  d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p', 'f', 'm')\n"
	"                  AND c.relpersistence <> 't' AS mapped,\n"
	"                  c.relkind NOT IN ('r', 'p', 'f', 'm') AND c.relpersistence <> 't'\n"
	"                  AS not_table\n"
	"           FROM pg_event_trigger_ddl_commands() d\n"
	"           LEFT JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND w.oid = d.objid\n"
	"           LEFT JOIN pg_policy y ON d.classid = 'pg_policy'::regclass AND y.oid = d.objid\n"
	"           LEFT JOIN pg_class c ON c.oid = CASE WHEN d.classid = 'pg_class'::regclass\n"
	"                THEN d.objid ELSE coalesce(w.ev_class, y.polrelid) END\n"
	"           LEFT JOIN pg_namespace n ON n.oid = c.relnamespace\n"
	"           WHERE d.command_tag NOT IN ('GRANT', 'REVOKE', 'COMMENT',\n"
	"                                       'ALTER DEFAULT PRIVILEGES', 'SECURITY LABEL') LOOP\n"
	"    PERFORM cachesvc.ddl_note(r.object_type, r.nsp, r.rel, r.relid);\n"
	/* a relation's old name (RENAME TO, SET SCHEMA), looked up before it is updated; one
	 * not known is "*", unless this command creates it */
	"    IF r.mapped THEN\n"
	"      SELECT m.nspid, n.nspname::text AS nsp, m.rel INTO o FROM cachesvc.ddl_rel m\n"
	"        LEFT JOIN pg_namespace n ON n.oid = m.nspid WHERE m.relid = r.relid;\n"
	"      known := FOUND;\n"
	"      IF NOT known AND NOT (r.command_tag LIKE 'CREATE %'\n"
	"                            OR r.command_tag IN ('SELECT INTO', 'IMPORT FOREIGN SCHEMA')) THEN\n"
	"        PERFORM cachesvc.ddl_note('relation of unknown name', NULL, NULL, NULL);\n"
	"      ELSIF known AND (o.nspid <> r.nspid OR o.rel <> r.rel) THEN\n"
	"        PERFORM cachesvc.ddl_note(r.object_type, o.nsp, o.rel, NULL);\n" /* no nsp: "*" */
	"      END IF;\n"
	"      IF NOT known OR o.nspid <> r.nspid OR o.rel <> r.rel THEN\n"
	"        INSERT INTO cachesvc.ddl_rel VALUES (r.relid, r.nspid, r.rel) ON CONFLICT (relid)\n"
	"          DO UPDATE SET nspid = excluded.nspid, rel = excluded.rel;\n"
	"      END IF;\n"
	"    END IF;\n"
	/* a table turned into a view (CREATE RULE \"_RETURN\": reported as the rule, c is the
	 * relation) leaves the map (review 42 R42-3) */
	"    IF r.not_table AND EXISTS (SELECT FROM cachesvc.ddl_rel WHERE relid = r.relid) THEN\n"
	"      DELETE FROM cachesvc.ddl_rel WHERE relid = r.relid;\n"
	"    END IF;\n"
	/* ALTER EXTENSION (SET SCHEMA moves its tables; reported as the extension only, so
	 * every query is dropped already: "*"): its member tables' rows follow, or their next
	 * rename would be recorded under a wrong old name (review 42 R42-3) */
	"    IF r.object_type = 'extension' THEN\n"
	"      INSERT INTO cachesvc.ddl_rel SELECT c.oid, c.relnamespace, c.relname\n"
	"        FROM pg_depend d JOIN pg_class c ON c.oid = d.objid\n"
	"        LEFT JOIN cachesvc.ddl_rel m ON m.relid = c.oid\n"
	"        WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0\n"
	"          AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = r.objid\n"
	"          AND d.deptype = 'e' AND c.relkind IN ('r', 'p', 'f', 'm')\n"
	"          AND c.relpersistence <> 't'\n"
	"          AND (m.relid IS NULL OR m.nspid <> c.relnamespace OR m.rel <> c.relname)\n"
	"        ON CONFLICT (relid) DO UPDATE SET nspid = excluded.nspid, rel = excluded.rel;\n"
	"    END IF;\n"
	"  END LOOP;\n"
	"END\n"
	"$f$;\n"
	"CREATE OR REPLACE FUNCTION cachesvc.ddl_drop() RETURNS event_trigger\n"
	"LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$\n"
	"DECLARE r record;\n"
	"BEGIN\n"
	/* the objects a DROP named (a table's columns come with its ALTER TABLE, reported by
	 * ddl_end); a dropped table as "*" (relid NULL): whose partition or child it was is gone */
	"  FOR r IN SELECT CASE WHEN object_type IN ('table', 'foreign table', 'materialized view')\n"
	"                  THEN 'dropped ' || object_type ELSE object_type END AS kind,\n"
	"                  coalesce(address_names[1], schema_name) AS nsp,\n"
	"                  CASE WHEN object_type IN ('rule', 'policy') THEN address_names[2]\n"
	"                  ELSE object_name END AS rel\n"
	"           FROM pg_event_trigger_dropped_objects()\n"
	"           WHERE original AND object_type <> 'table column' LOOP\n"
	"    PERFORM cachesvc.ddl_note(r.kind, r.nsp, r.rel, NULL);\n"
	"  END LOOP;\n"
	/* every dropped relation (cascades too; a dropped column is not its table's drop) */
	"  DELETE FROM cachesvc.ddl_rel WHERE relid IN (SELECT objid\n"
	"    FROM pg_event_trigger_dropped_objects()\n"
	"    WHERE classid = 'pg_class'::regclass AND objsubid = 0);\n"
	"END\n"
	"$f$;\n"
	"COMMENT ON FUNCTION cachesvc.ddl_end() IS '" DDL_VERSION "';\n"
	"CREATE EVENT TRIGGER cachesvc_ddl_end ON ddl_command_end\n"
	"  EXECUTE FUNCTION cachesvc.ddl_end();\n"
	"CREATE EVENT TRIGGER cachesvc_ddl_drop ON sql_drop\n"
	"  EXECUTE FUNCTION cachesvc.ddl_drop();\n"
	/* also under session_replication_role = replica (review 38 R38-6) */
	"ALTER EVENT TRIGGER cachesvc_ddl_end ENABLE ALWAYS;\n"
	"ALTER EVENT TRIGGER cachesvc_ddl_drop ENABLE ALWAYS;\n"
	"COMMIT;\n";

/* Installs (create) or checks the DDL event triggers on shard k's primary; true when they
 * are in place afterwards. Not installable (not a superuser, a read-only primary...) is a
 * warning, not a refusal: the service runs, and such DDL is the operator's to follow with an
 * admin INVALIDATE. */

/* Runs sql (a transaction of its own); on failure, its error in msg, a ROLLBACK, and then
 * recheck (a one-boolean SELECT): whether what sql would do is there anyway (another start
 * did it meanwhile: it held the advisory lock). True when sql succeeded or recheck holds;
 * *ran tells which. */
static bool exec_or_recheck(PGconn *c, const char *sql, const char *recheck, bool *ran, char *msg,
        size_t msglen)
{
	PGresult *r = PQexec(c, sql);
	*ran = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (*ran) {
		PQclear(r);
		return true;
	}
	snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
	cs_chomp(msg);
	PQclear(r);
	PQclear(PQexec(c, "ROLLBACK"));
	r = PQexec(c, recheck);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	          PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return ok;
}
static bool check_ddl_triggers(const cs_config *cfg, int k, bool create)
{
	const char *where = cfg->nshards > 0 ? cfg->shards[k].name : NULL;
	const char *on = where ? " on shard " : "", *shard = where ? where : "";
	PGconn *c = primary_of(cfg, k) ? connect_blocking(primary_of(cfg, k)) : NULL;
	if (c == NULL)
		return false; /* check_publication says so */
	/* the map's check reads all of pg_class: bounded like the rest (R42-5) */
	PQclear(PQexec(c, "SET statement_timeout = '30s'"));
	/* in place under this version; and whether this role may read and write the map (a start
	 * that is not a superuser's cannot: review 42 R42-5) */
	PGresult *r = PQexec(c,
		"SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname IN "
		"('cachesvc_ddl_end', 'cachesvc_ddl_drop') AND evtenabled <> 'D') = 2 AND "
		"coalesce((SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p "
		"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cachesvc' AND "
		"p.proname = 'ddl_end'), '') = '" DDL_VERSION "', "
		"coalesce((SELECT has_schema_privilege(n.oid, 'USAGE') AND "
		"has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT') AND "
		"has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE') "
		"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = 'cachesvc' AND c.relname = 'ddl_rel'), false), current_user, "
		"NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		"WHERE n.nspname = 'cachesvc' AND c.relname = 'ddl_rel')");
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	/* no map (dropped by hand): installed afresh */
	bool installed = ok && PQgetvalue(r, 0, 0)[0] == 't' && PQgetvalue(r, 0, 3)[0] != 't';
	bool may_map = ok && PQgetvalue(r, 0, 1)[0] == 't';
	char role[128];
	snprintf(role, sizeof role, "%s", ok ? PQgetvalue(r, 0, 2) : "?");
	PQclear(r);
	if (installed && !may_map) {
		/* in place, but the map cannot be checked: said once per start and primary, rather
		 * than a permission error in the server's log only */
		if (create)
			cs_warn("[invalidator] ddl_triggers: the DDL event triggers are in place%s%s, but "
			        "role %s cannot check or repair their map of relations (cachesvc.ddl_rel; "
			        "needs a superuser): if it disagrees with the catalogs (a restored dump, "
			        "DDL while the triggers were off), a rename is recorded under a wrong old "
			        "name until a superuser's start repairs it", on, shard, role);
		else
			printf("%s: cannot check the DDL event triggers' map of relations%s%s as role %s "
			       "(needs a superuser)\n", cfg->path ? cfg->path : "config", on, shard, role);
		PQfinish(c);
		return true;
	}
	if (installed) {
		/* the map has every table under its current name, or it is repaired in place (a
		 * restored dump brings another database's oids: a rename would name a wrong old
		 * name) */
		r = PQexec(c, "SELECT " DDL_REL_AGREES);
		bool checked = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
		bool agrees = checked && PQgetvalue(r, 0, 0)[0] == 't';
		char msg[400];
		snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		cs_chomp(msg);
		PQclear(r);
		if (!checked) {
			/* review 44 R44-4: a check that failed (a timeout, a cancel) is no
			 * disagreement: said as it is, nothing repaired */
			if (create)
				cs_warn("[invalidator] ddl_triggers: the DDL event triggers' map of "
				        "relations (cachesvc.ddl_rel)%s%s could not be checked (%s): "
				        "checked again at the next start", on, shard, msg);
			else
				printf("%s: could not check the DDL event triggers' map of relations%s%s "
				       "(%s)\n", cfg->path ? cfg->path : "config", on, shard, msg);
		} else if (!agrees && !create) {
			printf("%s: would repair the DDL event triggers' map of relations%s%s "
			       "(cachesvc.ddl_rel disagrees with the catalogs; needs a superuser)\n",
			       cfg->path ? cfg->path : "config", on, shard);
		} else if (!agrees) {
			bool ran;
			if (!exec_or_recheck(c, ddl_rel_repair_sql, "SELECT " DDL_REL_AGREES, &ran, msg,
			            sizeof msg))
				cs_warn("[invalidator] ddl_triggers: the DDL event triggers' map of relations "
				        "(cachesvc.ddl_rel)%s%s disagrees with the catalogs and could not be "
				        "repaired (%s): a rename of a table it names wrongly is recorded under "
				        "a wrong old name (the queries on the real one stay cached) until a "
				        "start repairs it", on, shard, msg);
			else if (ran)
				cs_info("repaired the DDL event triggers' map of relations%s%s", on, shard);
		}
		PQfinish(c);
		return true;
	}
	if (!create) {
		printf("%s: would install the DDL event triggers%s%s (ddl_triggers = true; "
		       "needs a superuser)\n", cfg->path ? cfg->path : "config", on, shard);
		PQfinish(c);
		return false;
	}
	char msg[400];
	bool ran;
	installed = exec_or_recheck(c, ddl_install_sql,
		"SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname IN "
		"('cachesvc_ddl_end', 'cachesvc_ddl_drop') AND evtenabled <> 'D') = 2 AND "
		"coalesce((SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p "
		"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cachesvc' AND "
		"p.proname = 'ddl_end'), '') = '" DDL_VERSION "'",
		&ran, msg, sizeof msg);
	/* (the recheck: another start installed them meanwhile: in place, enabled, under this
	 * version) */
	if (!installed) {
		cs_warn("[invalidator] ddl_triggers: cannot install the DDL event triggers%s%s "
		        "(%s): data a DDL command rewrites (ALTER COLUMN ... TYPE ... USING, a "
		        "table dropped and created again) stays cached until its TTL; install "
		        "them as a superuser (start once with such a role) or INVALIDATE the "
		        "queries by hand after DDL", on, shard, msg);
	} else if (!ran) {
		cs_warn("[invalidator] ddl_triggers: installing the DDL event triggers%s%s failed "
		        "(%s), but they are in place under this version (another start installed "
		        "them): their map of relations is checked again at the next start", on,
		        shard, msg);
	} else {
		cs_info("installed the DDL event triggers%s%s", on, shard);
	}
	PQfinish(c);
	return installed;
}

/* The triggers' table in shard k's publication: added when missing (create_publication),
 * else a warning: the DDL rows would never be streamed. */
static void ddl_table_published(const cs_config *cfg, int k, bool create)
{
	const char *where = cfg->nshards > 0 ? cfg->shards[k].name : NULL;
	PGconn *c = primary_of(cfg, k) ? connect_blocking(primary_of(cfg, k)) : NULL;
	if (c == NULL)
		return;
	const char *pv[1] = {cfg->inval_publication};
	PGresult *r = PQexecParams(c, "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND "
		"schemaname = '" CS_DDL_SCHEMA "' AND tablename = '" CS_DDL_TABLE "'", 1, NULL, pv,
		NULL, NULL, 0);
	bool published = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	if (!published && create && cfg->inval_create_publication) {
		char sql[400], q1[300];
		quote_ident(q1, sizeof q1, cfg->inval_publication);
		snprintf(sql, sizeof sql, "ALTER PUBLICATION %s ADD TABLE " CS_DDL_SCHEMA "." CS_DDL_TABLE,
		        q1);
		r = PQexec(c, sql);
		published = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!published) {
			char msg[400];
			snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
			cs_chomp(msg);
			cs_warn("[invalidator] ddl_triggers: cannot add " CS_DDL_SCHEMA "." CS_DDL_TABLE
			        " to publication \"%s\"%s%s (%s): DDL commands are not followed",
			        cfg->inval_publication, where ? " on shard " : "", where ? where : "", msg);
		}
		PQclear(r);
	} else if (!published) {
		cs_warn("[invalidator] ddl_triggers: " CS_DDL_SCHEMA "." CS_DDL_TABLE " is not in "
		        "publication \"%s\"%s%s: DDL commands are not followed; fix: ALTER "
		        "PUBLICATION %s ADD TABLE " CS_DDL_SCHEMA "." CS_DDL_TABLE ";",
		        cfg->inval_publication, where ? " on shard " : "", where ? where : "",
		        cfg->inval_publication);
	}
	PQfinish(c);
}

int cs_check_invalidation(const cs_config *cfg, bool create, char *err, size_t errlen)
{
	err[0] = '\0';
	if (!cfg->inval_enabled)
		return CS_CHECK_OK;
	/* one publication per shard's primary (SHARDS.md section 4); the worst verdict */
	int rc = CS_CHECK_OK;
	for (int k = 0; k < (cfg->nshards > 0 ? cfg->nshards : 1); k++) {
		int one = check_publication(cfg, k, create, err, errlen);
		if (one == CS_CHECK_OK && cfg->inval_ddl_triggers && check_ddl_triggers(cfg, k, create))
			ddl_table_published(cfg, k, create);
		if (one == CS_CHECK_INVALID || (one == CS_CHECK_UNREACHABLE && rc == CS_CHECK_OK))
			rc = one;
	}
	return rc;
}

/* Writes sql into out with every $N outside literals, quoted identifiers and comments
 * replaced by (NULL::<declared type>). False when it cannot be done safely (dollar
 * quoting, an unknown parameter, no room). */
static bool nullify_params(const cs_query_def *q, char *out, size_t cap)
{
	const char *s = q->sql;
	size_t n = 0;
	while (*s) {
		char ch = *s;
		const char *start = s;
		if (ch == '\'' || ch == '"') {
			for (s++; *s && *s != ch; s++)
				;
			if (*s)
				s++;
		} else if (ch == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (ch == '/' && s[1] == '*') {
			const char *e = strstr(s + 2, "*/");
			s = e ? e + 2 : s + strlen(s);
		} else if (ch == '$' && s[1] >= '0' && s[1] <= '9') {
			int idx = 0;
			for (s++; *s >= '0' && *s <= '9' && idx < 1000; s++)
				idx = idx * 10 + (*s - '0');
			if (idx < 1 || idx > q->nparams)
				return false;
			int w = snprintf(out + n, cap - n, "(NULL::%s)",
				cs_param_type_name(q->params[idx - 1].type));
			if (w < 0 || (size_t)w >= cap - n)
				return false;
			n += (size_t)w;
			continue;
		} else if (ch == '$') {
			return false; /* dollar quoting: not worth parsing here */
		} else {
			s++;
		}
		size_t len = (size_t)(s - start);
		if (n + len + 1 > cap)
			return false;
		memcpy(out + n, start, len);
		n += len;
	}
	out[n] = '\0';
	return true;
}

/* Whether every relation q's SQL reads, as the server c sees it, is a plain or partitioned
 * table of invalidate_on with no children, and it calls no user function (a token may then be
 * answered from the cache). *analysed: the SQL could be analysed at all. */
static bool reads_covered_on(PGconn *c, const cs_query_def *q, bool *analysed)
{
	bool covered = false;
	size_t cap = strlen(q->sql) * 2 + 64 * (size_t)(q->nparams + 1) + 64;
	char *sql = malloc(cap + 64);
	if (sql == NULL) {
		*analysed = false;
		return false;
	}
	strcpy(sql, "CREATE TEMP VIEW cs_check_reads AS ");
	size_t off = strlen(sql);
	bool ok = nullify_params(q, sql + off, cap + 64 - off);
	PGresult *r = PQexec(c, "BEGIN");
	PQclear(r);
	if (ok) {
		r = PQexec(c, sql);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (ok) {
		/* every relation the view's rule depends on */
		r = PQexec(c,
			"SELECT n.nspname, c.relname, c.relkind FROM pg_depend d "
			"JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid "
			"JOIN pg_class c ON c.oid = d.refobjid "
			"JOIN pg_namespace n ON n.oid = c.relnamespace "
			"WHERE w.ev_class = 'cs_check_reads'::regclass "
			" AND d.refclassid = 'pg_class'::regclass AND c.oid <> 'cs_check_reads'::regclass "
			"GROUP BY 1, 2, 3");
		covered = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
		for (int row = 0; covered && row < PQntuples(r); row++) {
			const char *kind = PQgetvalue(r, row, 2);
			bool named = false;
			for (int k = 0; k < q->ninval; k++)
				named = named || (strcmp(q->inval[k].schema, PQgetvalue(r, row, 0)) == 0 &&
							 strcmp(q->inval[k].table, PQgetvalue(r, row, 1)) == 0);
			covered = named && (kind[0] == 'r' || kind[0] == 'p');
		}
		PQclear(r);
		if (covered) {
			/* A function the SQL calls may read any table; a table with children
			 * (inheritance, partitions) changes under its children's names. */
			r = PQexec(c,
				"SELECT EXISTS (SELECT 1 FROM pg_depend d "
				"  JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid "
				"  WHERE w.ev_class = 'cs_check_reads'::regclass "
				"   AND d.refclassid = 'pg_proc'::regclass AND d.refobjid >= 16384) "
				"OR EXISTS (SELECT 1 FROM pg_depend d "
				"  JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid "
				"  JOIN pg_inherits i ON i.inhparent = d.refobjid "
				"  WHERE w.ev_class = 'cs_check_reads'::regclass "
				"   AND d.refclassid = 'pg_class'::regclass)");
			covered = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
				PQgetvalue(r, 0, 0)[0] == 'f';
			PQclear(r);
		}
	}
	r = PQexec(c, "ROLLBACK");
	PQclear(r);
	free(sql);
	*analysed = ok;
	return ok && covered;
}

int cs_check_ryw(cs_config *cfg)
{
	bool any = false;
	for (int i = 0; i < cfg->nqueries; i++) {
		cfg->queries[i].reads_covered = cfg->queries[i].ninval > 0;
		any = any || cfg->queries[i].ninval > 0;
	}
	if (!any)
		return CS_CHECK_OK;
	/* Each query on the primary of every shard it reads: a keyed query reads them all, and a
	 * schema that drifted on one shard (a table that is a view there, or has children) must
	 * not have that shard's tokens answered from the cache on another shard's verdict
	 * (review 28 R28-8). Covered only when covered on each. */
	bool *analysed = calloc((size_t)cfg->nqueries, sizeof *analysed);
	if (analysed == NULL) {
		for (int i = 0; i < cfg->nqueries; i++)
			cfg->queries[i].reads_covered = false;
		return CS_CHECK_OK; /* tokens then go to the database: slower, never stale */
	}
	for (int i = 0; i < cfg->nqueries; i++)
		analysed[i] = true; /* until a server could not analyse it */
	for (int k = 0; k < (cfg->nshards > 0 ? cfg->nshards : 1); k++) {
		bool needed = false;
		for (int i = 0; i < cfg->nqueries; i++)
			needed = needed ||
				 (cfg->queries[i].ninval > 0 && reads_shard(&cfg->queries[i], k));
		if (!needed)
			continue;
		PGconn *c = primary_of(cfg, k) ? connect_blocking(primary_of(cfg, k)) : NULL;
		if (c == NULL) {
			for (int i = 0; i < cfg->nqueries; i++)
				cfg->queries[i].reads_covered = false;
			free(analysed);
			return CS_CHECK_UNREACHABLE;
		}
		for (int i = 0; i < cfg->nqueries; i++) {
			cs_query_def *q = &cfg->queries[i];
			if (q->ninval == 0 || !reads_shard(q, k))
				continue;
			bool ok = false;
			if (!reads_covered_on(c, q, &ok))
				q->reads_covered = false;
			analysed[i] = analysed[i] && ok;
		}
		PQfinish(c);
	}
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (q->ninval > 0 && !q->reads_covered)
			cs_info("[query %s] read-your-writes tokens are answered from the database, not "
				"the cache: %s%s", q->name,
				analysed[i] ? "its SQL reads a table outside invalidate_on, a view, a "
					      "table with children, or calls a user function"
					    : "its SQL could not be analysed",
				cfg->nshards > 0 ? " (on at least one shard)" : "");
	}
	free(analysed);
	return CS_CHECK_OK;
}
