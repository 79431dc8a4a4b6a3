/* check.c - startup validation against the servers (blocking; before the event loop). */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "log.h"

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

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

static PGconn *connect_blocking(const char *conninfo)
{
	const char *kw[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *val[] = { conninfo, CHECK_TIMEOUT, "cachesvc-check", NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);
	if (c && PQstatus(c) != CONNECTION_OK) {
		char masked[512], msg[512];
		cs_config_mask_conninfo(conninfo, masked, sizeof masked);
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
		chomp(msg);
		cs_warn("check: cannot connect to %s: %s", masked, msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

int cs_check_queries(const cs_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	PGconn *c = NULL;
	for (int i = 0; i < cfg->nreplicas && c == NULL; i++)
		c = connect_blocking(cfg->replicas[i].conninfo);
	if (c == NULL && cfg->primary_conninfo)
		c = connect_blocking(cfg->primary_conninfo);
	if (c == NULL) {
		append(err, errlen, "no server reachable to check the queries against");
		return CS_CHECK_UNREACHABLE;
	}
	int rc = CS_CHECK_OK;
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		/* 1. Let PostgreSQL infer the parameter types, and compare with the declared ones:
		 *    a declared int4 compared with a bigint column is a silent cast at best. */
		PGresult *r = PQprepare(c, "", q->sql, 0, NULL);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			r = PQdescribePrepared(c, "");
			if (PQresultStatus(r) == PGRES_COMMAND_OK) {
				if (PQnparams(r) != q->nparams) {
					append(err, errlen, "[query %s] params: the SQL uses %d parameters, %d declared",
						q->name, PQnparams(r), q->nparams);
					rc = CS_CHECK_INVALID;
				}
				for (int p = 0; p < PQnparams(r) && p < q->nparams; p++) {
					unsigned want = cs_param_type_oid(q->params[p].type);
					unsigned got = PQparamtype(r, p);
					if (got != want && got != 705 /* unknown */ && got != 25 /* text literal */) {
						append(err, errlen,
							"[query %s] params: $%d (%s) is declared %s but PostgreSQL "
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
			continue;
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
			chomp(msg);
			append(err, errlen, "[query %s] sql: does not prepare: %s", q->name, msg);
			rc = CS_CHECK_INVALID;
		}
		PQclear(r);
		r = PQexec(c, "DEALLOCATE ALL");
		PQclear(r);
	}
	PQfinish(c);
	return rc;
}

int cs_check_redis(const cs_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	if (!cfg->fence)
		return CS_CHECK_OK;
	cs_redis_url u;
	char why[256];
	if (!cs_redis_url_parse(cfg->redis_url, &u, why, sizeof why)) {
		append(err, errlen, "[redis] url: %s", why);
		return CS_CHECK_INVALID;
	}
	struct timeval tv = { 2, 0 };
	redisContext *rc = u.unix_path[0] ? redisConnectUnixWithTimeout(u.unix_path, tv)
					  : redisConnectWithTimeout(u.host, u.port, tv);
	if (rc == NULL || rc->err) {
		append(err, errlen, "[redis] url: cannot connect to check maxmemory-policy: %s",
			rc ? rc->errstr : "out of memory");
		redisFree(rc);
		return CS_CHECK_UNREACHABLE;
	}
	redisSetTimeout(rc, tv);
	redisReply *r;
	if (u.password[0]) {
		r = u.username[0] ? redisCommand(rc, "AUTH %s %s", u.username, u.password)
				  : redisCommand(rc, "AUTH %s", u.password);
		freeReplyObject(r);
	}
	int result = CS_CHECK_OK;
	r = redisCommand(rc, "CONFIG GET maxmemory-policy");
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		r->element[1]->type == REDIS_REPLY_STRING) {
		if (strcmp(r->element[1]->str, "noeviction") != 0) {
			append(err, errlen,
				"[redis] maxmemory-policy is %s: with fence = on cachesvc needs noeviction "
				"(an evicted fence would let a stale fill through); set it, or fence = off",
				r->element[1]->str);
			result = CS_CHECK_INVALID;
		}
	} else {
		cs_warn("check: CONFIG GET maxmemory-policy is not allowed (%s); make sure it is noeviction",
			r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
	}
	freeReplyObject(r);
	redisFree(rc);
	return result;
}
