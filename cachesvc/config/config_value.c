/* config_value.c - the value grammars of the configuration's own types: tiers, parameter
 * types and lists, and the checks of string keys (host:port, names, conninfo, Redis URL,
 * SQL); numbers, durations, sizes and booleans are base/parse.c's. Pure except for libpq's
 * conninfo parser. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "config_int.h"
#include "log.h"
#include "redis_url.h"
#include "sql_placeholders.h"

static const char *const tier_names[CS_TIER_COUNT] = {"critical", "default", "batch"};

const char *cs_tier_name(cs_tier t)
{
	return (unsigned)t < CS_TIER_COUNT ? tier_names[t] : "?";
}

bool cs_tier_parse(const char *s, cs_tier *out)
{
	for (int i = 0; i < CS_TIER_COUNT; i++) {
		if (s && strcasecmp(s, tier_names[i]) == 0) {
			*out = (cs_tier)i;
			return true;
		}
	}
	return false;
}

const char *const cs_cfg_kind_names[3] = {"row", "list", "aggregate"};

static const struct param_type_info {
	const char *name;
	unsigned oid;
} param_types[CS_PT__COUNT] = {
        [CS_PT_BOOL] = {"bool", 16},
        [CS_PT_INT2] = {"int2", 21},
        [CS_PT_INT4] = {"int4", 23},
        [CS_PT_INT8] = {"int8", 20},
        [CS_PT_FLOAT4] = {"float4", 700},
        [CS_PT_FLOAT8] = {"float8", 701},
        [CS_PT_TEXT] = {"text", 25},
        [CS_PT_BYTEA] = {"bytea", 17},
        [CS_PT_UUID] = {"uuid", 2950},
        [CS_PT_NUMERIC] = {"numeric", 1700},
        [CS_PT_DATE] = {"date", 1082},
        [CS_PT_TIMESTAMPTZ] = {"timestamptz", 1184},
};

static const struct {
	const char *alias;
	cs_param_type type;
} param_type_aliases[] = {
        {"boolean", CS_PT_BOOL},
        {"smallint", CS_PT_INT2},
        {"integer", CS_PT_INT4},
        {"int", CS_PT_INT4},
        {"bigint", CS_PT_INT8},
        {"real", CS_PT_FLOAT4},
        {"double", CS_PT_FLOAT8},
        {"double precision", CS_PT_FLOAT8},
        {"varchar", CS_PT_TEXT},
        {"character varying", CS_PT_TEXT},
        {"decimal", CS_PT_NUMERIC},
        {"timestamp with time zone", CS_PT_TIMESTAMPTZ},
};

const char *cs_param_type_name(cs_param_type t)
{
	return (unsigned)t < CS_PT__COUNT ? param_types[t].name : "?";
}

cs_shard_family cs_shard_family_of(cs_param_type t)
{
	switch (t) {
	case CS_PT_INT2:
	case CS_PT_INT4:
	case CS_PT_INT8:
		return CS_SF_INTEGER;
	case CS_PT_TEXT:
		return CS_SF_TEXT;
	case CS_PT_BYTEA:
		return CS_SF_BYTEA;
	case CS_PT_UUID:
		return CS_SF_UUID;
	default:
		return CS_SF_NONE;
	}
}

const char *cs_shard_family_name(cs_shard_family f)
{
	switch (f) {
	case CS_SF_INTEGER:
		return "integer (int2, int4, int8)";
	case CS_SF_TEXT:
		return "text";
	case CS_SF_BYTEA:
		return "bytea";
	case CS_SF_UUID:
		return "uuid";
	default:
		return "none";
	}
}

unsigned cs_param_type_oid(cs_param_type t)
{
	return (unsigned)t < CS_PT__COUNT ? param_types[t].oid : 0;
}

static bool param_type_parse(const char *s, cs_param_type *out)
{
	for (int i = 0; i < CS_PT__COUNT; i++) {
		if (strcasecmp(s, param_types[i].name) == 0) {
			*out = (cs_param_type)i;
			return true;
		}
	}
	for (size_t i = 0; i < sizeof(param_type_aliases) / sizeof(param_type_aliases[0]); i++) {
		if (strcasecmp(s, param_type_aliases[i].alias) == 0) {
			*out = param_type_aliases[i].type;
			return true;
		}
	}
	return false;
}

/* Copies s[0..n) into out (size outlen) with runs of whitespace collapsed and the ends
 * trimmed. Returns false when it does not fit. */
bool cs_cfg_copy_collapsed(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	bool space = false;
	for (size_t i = 0; i < n; i++) {
		if (isspace((unsigned char)s[i])) {
			space = o > 0;
			continue;
		}
		if (o + (space ? 2 : 1) >= outlen)
			return false;
		if (space)
			out[o++] = ' ';
		space = false;
		out[o++] = s[i];
	}
	out[o] = '\0';
	return true;
}

/* "id:int8, name:text" -> q->params. */
bool cs_cfg_parse_params(const char *v, cs_query_def *q, char *why, size_t whylen)
{
	char qv[80];
	q->nparams = 0;
	const char *s = cs_cfg_skip_space(v);
	if (*s == '\0')
		return true;
	for (;;) {
		const char *item = s;
		const char *end = s + strcspn(s, ",");
		const char *colon = memchr(s, ':', (size_t)(end - s));
		if (q->nparams == CS_MAX_PARAMS) {
			snprintf(why, whylen, "more than %d parameters", CS_MAX_PARAMS);
			return false;
		}
		cs_param_def *p = &q->params[q->nparams];
		char name[CS_MAX_NAME + 2], type[40];
		if (!colon || !cs_cfg_copy_collapsed(s, (size_t)(colon - s), name, sizeof(name)) ||
		        !cs_cfg_copy_collapsed(
		                colon + 1, (size_t)(end - colon - 1), type, sizeof(type))) {
			char tmp[128];
			snprintf(tmp, sizeof(tmp), "%.*s", (int)(end - item), item);
			snprintf(why, whylen, "expected name:type, got %s",
			        cs_cfg_quote(tmp, qv, sizeof(qv)));
			return false;
		}
		if (name[0] == '\0' || strlen(name) > CS_MAX_NAME ||
		        !(isalpha((unsigned char)name[0]) || name[0] == '_') ||
		        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678"
		                     "9_") != strlen(name)) {
			snprintf(why, whylen,
			        "bad parameter name %s (letters, digits, _; at most %d)",
			        cs_cfg_quote(name, qv, sizeof(qv)), CS_MAX_NAME);
			return false;
		}
		if (!param_type_parse(type, &p->type)) {
			snprintf(why, whylen,
			        "parameter %s: unknown type %s (bool int2 int4 int8 float4 float8 "
			        "text bytea uuid numeric date timestamptz)",
			        name, cs_cfg_quote(type, qv, sizeof(qv)));
			return false;
		}
		for (int i = 0; i < q->nparams; i++) {
			if (strcmp(q->params[i].name, name) == 0) {
				snprintf(why, whylen, "parameter %s declared twice", name);
				return false;
			}
		}
		memcpy(p->name, name, strlen(name) + 1);
		q->nparams++;
		if (*end == '\0')
			return true;
		s = cs_cfg_skip_space(end + 1);
		if (*s == '\0') {
			snprintf(why, whylen, "trailing comma");
			return false;
		}
	}
}

bool cs_cfg_check_host_port(const char *v, char *why, size_t whylen)
{
	const char *colon;
	int port;
	if (v[0] == '[') {
		const char *rb = strchr(v, ']');
		if (!rb || rb == v + 1 || rb[1] != ':') {
			snprintf(why, whylen, "expected [v6addr]:port");
			return false;
		}
		colon = rb + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon || colon == v) {
			snprintf(why, whylen, "expected host:port");
			return false;
		}
		for (const char *p = v; p < colon; p++) {
			if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')) {
				snprintf(why, whylen, "bad host in host:port");
				return false;
			}
		}
	}
	if (!cs_parse_port(colon + 1, &port)) {
		snprintf(why, whylen, "port must be 1..65535");
		return false;
	}
	return true;
}

bool cs_cfg_check_unix_path(const char *v, char *why, size_t whylen)
{
	if (strlen(v) > 107) {
		snprintf(why, whylen, "socket path longer than 107 bytes");
		return false;
	}
	return true;
}

bool cs_cfg_check_log_level(const char *v, char *why, size_t whylen)
{
	static const char *const levels[] = {"debug", "info", "warning", "error"};
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, levels[i]) == 0)
			return true;
	}
	snprintf(why, whylen, "must be debug, info, warning or error");
	return false;
}

bool cs_cfg_check_log_format(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "auto") == 0 || strcmp(v, "text") == 0 || strcmp(v, "journal") == 0)
		return true;
	snprintf(why, whylen, "must be auto, text or journal");
	return false;
}

static bool check_pg_name(const char *v, const char *chars, char *why, size_t whylen)
{
	size_t n = strlen(v);
	if (n == 0 || n > CS_CFG_MAX_PG_IDENT || strspn(v, chars) != n) {
		snprintf(why, whylen, "must be 1..%d characters of %s", CS_CFG_MAX_PG_IDENT,
		        strchr(chars, 'A') ? "A-Z a-z 0-9 _" : "a-z 0-9 _");
		return false;
	}
	return true;
}

bool cs_cfg_check_slot_name(const char *v, char *why, size_t whylen)
{
	/* PostgreSQL allows only lower case letters, digits and _ in slot names. */
	return check_pg_name(v, "abcdefghijklmnopqrstuvwxyz0123456789_", why, whylen);
}

bool cs_cfg_check_publication(const char *v, char *why, size_t whylen)
{
	return check_pg_name(
	        v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", why, whylen);
}

bool cs_cfg_check_sql(const char *v, char *why, size_t whylen)
{
	uint64_t highest, used;
	return cs_sql_scan_placeholders(v, &highest, &used, why, whylen);
}

bool cs_cfg_check_shard_map(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "hash") == 0 || strcmp(v, "ranges") == 0)
		return true;
	snprintf(why, whylen, "must be hash or ranges");
	return false;
}

bool cs_cfg_check_conninfo(const char *v, char *why, size_t whylen)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(v, &err);
	if (opts) {
		PQconninfoFree(opts);
		return true;
	}
	char masked[1024], msg[300];
	cs_log_mask_conninfo(v, masked, sizeof(masked));
	cs_log_scrub_libpq_message(err ? err : "out of memory", masked, msg, sizeof(msg));
	snprintf(why, whylen, "bad conninfo: %s", msg);
	PQfreemem(err);
	return false;
}

bool cs_cfg_check_namespace(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);
	if (n == 0 || n > 32) {
		snprintf(why, whylen, "must be 1..32 bytes");
		return false;
	}
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && !strchr("_.-{}", *v)) {
			snprintf(why, whylen, "may hold only letters, digits and _ . - { }");
			return false;
		}
	return true;
}

void cs_config_namespace(const cs_config *cfg, char out[33])
{
	if (cfg->redis_namespace && cfg->redis_namespace[0]) {
		snprintf(out, 33, "%s", cfg->redis_namespace);
		return;
	}
	cs_redis_url u;
	char why[128];
	int db = cs_redis_url_parse(cfg->redis_url, &u, why, sizeof why) ? u.db : 0;
	memset(&u, 0, sizeof u);
	if (db == 0)
		snprintf(out, 33, "cs");
	else
		snprintf(out, 33, "cs%d", db);
}

bool cs_cfg_check_redis_nodes(const char *v, char *why, size_t whylen)
{
	int n = 0;
	for (const char *s = v; *s;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		const char *e = s;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		/* host:port, the last ':' ends the host (IPv6: [::1]:7000 or ::1:7000) */
		const char *c = e;
		while (c > s && c[-1] != ':')
			c--;
		long port = 0;
		bool ok = c - 1 > s && c < e;
		for (const char *d = c; ok && d < e; d++) {
			ok = *d >= '0' && *d <= '9' && (port = port * 10 + (*d - '0')) <= 65535;
		}
		if (!ok || port == 0) {
			snprintf(why, whylen, "'%.*s' is not host:port",
			        (int)(e - s > 64 ? 64 : e - s), s);
			return false;
		}
		if (++n > 128) { /* CS_RC_MAX_NODES */
			snprintf(why, whylen, "at most 128 nodes");
			return false;
		}
		s = e;
	}
	if (n == 0) {
		snprintf(why, whylen, "no host:port given");
		return false;
	}
	return true;
}

bool cs_cfg_check_redis_url(const char *v, char *why, size_t whylen)
{
	cs_redis_url u;
	bool ok = cs_redis_url_parse(v, &u, why, whylen);
	memset(&u, 0, sizeof(u)); /* holds a password */
	return ok;
}

/* ------------------------------------------------------------------------------------------
 * One value of the key table's types
 * ---------------------------------------------------------------------------------------- */

bool cs_cfg_parse_value(
        const struct key_def *kd, const char *v, void *base, char *why, size_t whylen)
{
	void *field = cs_cfg_field(base, kd);
	char qv[80];
	int64_t i64 = 0;
	uint64_t u64 = 0;
	double d = 0;
	const char *what = NULL, *hint = "";
	switch (kd->type) {
	case KT_STRING: {
		char **sp = field;
		if (*v == '\0') {
			if (!(kd->flags & KF_NULLABLE)) {
				snprintf(why, whylen, "must not be empty");
				return false;
			}
			free(*sp);
			*sp = NULL;
			return true;
		}
		if (kd->check && !kd->check(v, why, whylen))
			return false;
		char *copy = strdup(v);
		if (!copy) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
		free(*sp);
		*sp = copy;
		return true;
	}
	case KT_INT:
		if (!cs_parse_int64(v, &i64)) {
			what = "integer";
			break;
		}
		goto range;
	case KT_DURATION:
		if (!cs_parse_duration(v, &i64)) {
			what = "duration";
			hint = " (e.g. 250ms, 30s, 10m, 1h, 2d)";
			break;
		}
		goto range;
	case KT_PERCENT:
		if (!cs_parse_percent(v, &i64)) {
			what = "percentage";
			hint = " (e.g. 10%)";
			break;
		}
		goto range;
	case KT_SIZE32:
	case KT_SIZE64:
		if (!cs_parse_size(v, &u64)) {
			what = "size";
			hint = " (e.g. 512, 64kB, 1MB, 1GB)";
			break;
		}
		if (u64 > (uint64_t)INT64_MAX) {
			snprintf(why, whylen, "%s out of range", cs_cfg_quote(v, qv, sizeof(qv)));
			return false;
		}
		i64 = (int64_t)u64;
		goto range;
	case KT_DOUBLE:
		if (!cs_parse_double(v, &d)) {
			what = "number";
			break;
		}
		if (d < (double)kd->min || d > (double)kd->max) {
			snprintf(why, whylen, "%s out of range %" PRId64 "..%" PRId64,
			        cs_cfg_quote(v, qv, sizeof(qv)), kd->min, kd->max);
			return false;
		}
		*(double *)field = d;
		return true;
	case KT_BOOL:
		if (!cs_parse_bool(v, field)) {
			what = "boolean";
			hint = " (true/false, yes/no, on/off, 1/0)";
			break;
		}
		return true;
	case KT_KIND:
		for (int i = 0; i < 3; i++) {
			if (strcasecmp(v, cs_cfg_kind_names[i]) == 0) {
				*(cs_query_kind *)field = (cs_query_kind)i;
				return true;
			}
		}
		what = "kind";
		hint = " (row, list or aggregate)";
		break;
	case KT_TIERS: {
		unsigned set = 0;
		const char *s = v;
		for (;;) {
			char word[32];
			size_t n = strcspn(s, ",");
			cs_tier t;
			if (!cs_cfg_copy_collapsed(s, n, word, sizeof(word)) ||
			        !cs_tier_parse(word, &t)) {
				snprintf(why, whylen,
				        "bad tier list %s (comma list of critical, default, batch)",
				        cs_cfg_quote(v, qv, sizeof(qv)));
				return false;
			}
			set |= 1u << t;
			s += n;
			if (*s == '\0')
				break;
			s++;
		}
		*(unsigned *)field = set;
		return true;
	}
	case KT_PARAMS:
		return cs_cfg_parse_params(v, base, why, whylen);
	case KT_INVALIDATE:
		return cs_cfg_parse_invalidate_on(v, base, why, whylen);
	}
	if (what) {
		snprintf(why, whylen, "bad %s %s%s", what, cs_cfg_quote(v, qv, sizeof(qv)), hint);
		return false;
	}
range:
	if (i64 < kd->min || i64 > kd->max) {
		char lo[32], hi[32];
		if (kd->type == KT_DURATION) {
			snprintf(lo, sizeof(lo), "%" PRId64 "ms", kd->min);
			snprintf(hi, sizeof(hi), "%" PRId64 "ms", kd->max);
		} else {
			snprintf(lo, sizeof(lo), "%" PRId64, kd->min);
			snprintf(hi, sizeof(hi), "%" PRId64, kd->max);
		}
		snprintf(why, whylen, "%s out of range %s..%s", cs_cfg_quote(v, qv, sizeof(qv)), lo,
		        hi);
		return false;
	}
	switch (kd->type) {
	case KT_INT:
	case KT_PERCENT:
		*(int *)field = (int)i64;
		break;
	case KT_DURATION:
		*(int64_t *)field = i64;
		break;
	case KT_SIZE32:
		*(uint32_t *)field = (uint32_t)i64;
		break;
	case KT_SIZE64:
		*(uint64_t *)field = (uint64_t)i64;
		break;
	default:
		break;
	}
	return true;
}
