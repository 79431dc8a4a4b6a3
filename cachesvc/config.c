/* config.c - the cachesvc configuration: one key table drives parsing, defaults, validation,
 * "show config" and the reload check. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ini.h>
#include <libpq-fe.h>

/* Longest physical line accepted. inih is fed by read_config_line(), which refuses longer
 * lines before inih sees them: inih would otherwise split them silently. */
#define MAX_LINE 65536
/* Largest config file read. */
#define MAX_FILE (16u << 20)
/* PostgreSQL identifiers (NAMEDATALEN - 1). */
#define MAX_PG_IDENT 63

#define SEC_MS  ((int64_t)1000)
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

/* ------------------------------------------------------------------------------------------
 * The key table
 * ---------------------------------------------------------------------------------------- */

enum section_kind {
	SEC_SERVICE,     /* [cachesvc] */
	SEC_REDIS,       /* [redis] */
	SEC_PRIMARY,     /* [primary] */
	SEC_REPLICA,     /* [replica NAME], many */
	SEC_QUERY,       /* [query NAME], many */
	SEC_INVALIDATOR, /* [invalidator] */
	SEC__COUNT
};

static const struct section_def {
	const char *name;
	bool named; /* "[replica NAME]": many instances, each named */
} section_defs[SEC__COUNT] = {
        [SEC_SERVICE] = {"cachesvc", false},
        [SEC_REDIS] = {"redis", false},
        [SEC_PRIMARY] = {"primary", false},
        [SEC_REPLICA] = {"replica", true},
        [SEC_QUERY] = {"query", true},
        [SEC_INVALIDATOR] = {"invalidator", false},
};

enum key_type {
	KT_STRING,     /* char *, strdup'ed */
	KT_INT,        /* int */
	KT_BOOL,       /* bool */
	KT_DURATION,   /* int64_t milliseconds */
	KT_SIZE32,     /* uint32_t bytes */
	KT_SIZE64,     /* uint64_t bytes */
	KT_PERCENT,    /* int 0..100 */
	KT_DOUBLE,     /* double */
	KT_KIND,       /* cs_query_kind */
	KT_TIERS,      /* unsigned tier bit set */
	KT_PARAMS,     /* cs_query_def.nparams + params[] */
	KT_INVALIDATE, /* cs_query_def.ninval + inval[]; parsed after params */
};

#define KF_RELOAD   0x01 /* may change on SIGHUP */
#define KF_REQUIRED 0x02 /* no default: the section must set it */
#define KF_NULLABLE 0x04 /* an empty value means "unset" (NULL) */
#define KF_SECRET   0x08 /* shown as *** */
#define KF_CONNINFO 0x10 /* libpq conninfo: checked with libpq, passwords masked when shown */
#define KF_URL      0x20 /* redis URL: passwords masked when shown */

/* Checks a string value beyond its type; writes the reason into why on failure. */
typedef bool (*value_check_fn)(const char *value, char *why, size_t whylen);

struct key_def {
	enum section_kind section;
	const char *name;
	enum key_type type;
	size_t offset;   /* into cs_config, cs_replica_def or cs_query_def (by section) */
	const char *def; /* default as text, parsed like a file value; NULL = unset */
	/* [query] keys whose default depends on kind; "$ttl" and "$ttl+swr" are derived */
	const char *kind_def[3];
	unsigned flags;
	int64_t min, max; /* range of int, duration, size, percent and double values */
	value_check_fn check;
	const char *doc;
};

static bool check_host_port(const char *v, char *why, size_t whylen);
static bool check_unix_path(const char *v, char *why, size_t whylen);
static bool check_log_level(const char *v, char *why, size_t whylen);
static bool check_log_format(const char *v, char *why, size_t whylen);
static bool check_redis_url(const char *v, char *why, size_t whylen);
static bool check_namespace(const char *v, char *why, size_t whylen);
static bool check_conninfo(const char *v, char *why, size_t whylen);
static bool check_slot_name(const char *v, char *why, size_t whylen);
static bool check_publication(const char *v, char *why, size_t whylen);
static bool check_sql(const char *v, char *why, size_t whylen);

#define CFG(f) offsetof(cs_config, f)
#define REP(f) offsetof(cs_replica_def, f)
#define QRY(f) offsetof(cs_query_def, f)
/* clang-format off */
#define NO_KIND_DEF {NULL, NULL, NULL}
/* clang-format on */

/* Every key of every section. CONFIG.md documents this table; test_config checks that every
 * key shown by cs_config_show() (which walks this table) appears there. */
static const struct key_def key_table[] = {
        /* [cachesvc] */
        {SEC_SERVICE, "listen", KT_STRING, CFG(listen), "127.0.0.1:6380", NO_KIND_DEF, KF_NULLABLE,
                0, 0, check_host_port,
                "TCP address for clients, host:port or [v6]:port; empty disables TCP"},
        {SEC_SERVICE, "unix_socket", KT_STRING, CFG(unix_socket), NULL, NO_KIND_DEF, KF_NULLABLE, 0,
                0, check_unix_path, "Unix socket path for clients; empty = none"},
        {SEC_SERVICE, "admin_listen", KT_STRING, CFG(admin_listen), "127.0.0.1:9180", NO_KIND_DEF,
                KF_NULLABLE, 0, 0, check_host_port,
                "HTTP address of /metrics and /healthz; empty disables it"},
        {SEC_SERVICE, "max_clients", KT_INT, CFG(max_clients), "10000", NO_KIND_DEF, KF_RELOAD, 1,
                1000000, NULL, "client connections accepted at once"},
        {SEC_SERVICE, "max_inflight", KT_INT, CFG(max_inflight), "128", NO_KIND_DEF, 0, 1, 65536,
                NULL, "pipelined requests in flight per client connection"},
        {SEC_SERVICE, "idle_timeout", KT_DURATION, CFG(idle_timeout_ms), "0", NO_KIND_DEF,
                KF_RELOAD, 0, 30 * DAY_MS, NULL,
                "close idle client connections after this; 0 = never"},
        {SEC_SERVICE, "frame_timeout", KT_DURATION, CFG(frame_timeout_ms), "10s", NO_KIND_DEF,
                KF_RELOAD, 0, HOUR_MS, NULL,
                "close a client whose request frame is not complete this long after its first byte; "
                "0 = never"},
        {SEC_SERVICE, "client_output_soft_limit", KT_SIZE64, CFG(client_output_soft), "4MB",
                NO_KIND_DEF, KF_RELOAD, 64 * 1024, INT64_MAX, NULL,
                "output queued for one client (replies unwritten, MGET items held) past which it is "
                "not read"},
        {SEC_SERVICE, "client_output_hard_limit", KT_SIZE64, CFG(client_output_hard), "128MB",
                NO_KIND_DEF, KF_RELOAD, 64 * 1024, INT64_MAX, NULL,
                "... past which it is disconnected; above max_reply and client_output_soft_limit"},
        {SEC_SERVICE, "request_timeout", KT_DURATION, CFG(request_timeout_ms), "5s", NO_KIND_DEF,
                KF_RELOAD, 1, HOUR_MS, NULL, "bound on one request, queueing included"},
        {SEC_SERVICE, "max_frame", KT_SIZE32, CFG(max_frame), "1MB", NO_KIND_DEF, 0, 1024,
                256 << 20, NULL, "largest request frame accepted"},
        {SEC_SERVICE, "max_result", KT_SIZE32, CFG(max_result), "1MB", NO_KIND_DEF, KF_RELOAD, 1024,
                512 << 20, NULL,
                "largest result stored in Redis; larger ones are served, not cached"},
        {SEC_SERVICE, "max_reply", KT_SIZE32, CFG(max_reply), "64MB", NO_KIND_DEF, KF_RELOAD, 1024,
                64 << 20, NULL,
                "largest result served at all; larger ones get a TOO_LARGE error"},
        {SEC_SERVICE, "queue_max", KT_INT, CFG(queue_max), "1024", NO_KIND_DEF, 0, 0, 1000000, NULL,
                "requests waiting per pool; past it, an overload error"},
        {SEC_SERVICE, "queue_timeout", KT_DURATION, CFG(queue_timeout_ms), "1s", NO_KIND_DEF,
                KF_RELOAD, 1, 10 * MIN_MS, NULL, "longest wait for a pooled connection"},
        {SEC_SERVICE, "max_replica_lag", KT_DURATION, CFG(max_replica_lag_ms), "5s", NO_KIND_DEF,
                KF_RELOAD, 1, DAY_MS, NULL, "replicas replaying further behind are not used"},
        {SEC_SERVICE, "max_replica_lag_bytes", KT_SIZE64, CFG(max_replica_lag_bytes), "0",
                NO_KIND_DEF, KF_RELOAD, 0, INT64_MAX, NULL,
                "replicas further behind in WAL bytes are not used; 0 = no byte bound"},
        {SEC_SERVICE, "primary_fallback", KT_BOOL, CFG(primary_fallback), "true", NO_KIND_DEF,
                KF_RELOAD, 0, 0, NULL, "read from the primary when no replica is fit"},
        {SEC_SERVICE, "health_interval", KT_DURATION, CFG(health_interval_ms), "1s", NO_KIND_DEF, 0,
                10, HOUR_MS, NULL, "replica health and lag check period"},
        {SEC_SERVICE, "dns_timeout", KT_DURATION, CFG(dns_timeout_ms), "2s", NO_KIND_DEF, 0, 10,
                MIN_MS, NULL,
                "bound on resolving a PostgreSQL or Redis host name on the event loop; a failed lookup is a failed connect"},
        {SEC_SERVICE, "resolv_conf", KT_STRING, CFG(resolv_conf), NULL, NO_KIND_DEF, KF_NULLABLE, 0,
                0, NULL, "name servers and options from this resolv.conf-format file; empty = /etc/resolv.conf"},
        {SEC_SERVICE, "verify_interval", KT_DURATION, CFG(verify_interval_ms), "10s", NO_KIND_DEF, 0,
                0, HOUR_MS, NULL,
                "period of the in-daemon verifier sampler (one cached entry checked against the primary); 0 = off"},
        {SEC_SERVICE, "ryw_wait", KT_DURATION, CFG(ryw_wait_ms), "200ms", NO_KIND_DEF, KF_RELOAD, 0,
                MIN_MS, NULL,
                "read-your-writes: longest wait for a replica to replay a token; then the primary"},
        {SEC_SERVICE, "auth_token", KT_STRING, CFG(auth_token), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SECRET, 0, 0, NULL,
                "token clients must send in HELLO; empty = no authentication"},
        {SEC_SERVICE, "admin_token", KT_STRING, CFG(admin_token), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_NULLABLE | KF_SECRET, 0, 0, NULL,
                "token for INVALIDATE, SHOW and ADMIN (sent in HELLO instead of auth_token); "
                "empty = the auth token suffices"},
        {SEC_SERVICE, "allow_unauthenticated", KT_BOOL, CFG(allow_unauthenticated), "false",
                NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "allow listen on a non-loopback address without auth_token"},
        {SEC_SERVICE, "stats_period", KT_DURATION, CFG(stats_period_ms), "60s", NO_KIND_DEF,
                KF_RELOAD, 0, 24 * 3600 * 1000LL, NULL,
                "period of the INFO \"stats:\" log line (rates, hit ratio, latencies); 0 = off"},
        {SEC_SERVICE, "so_reuseport", KT_BOOL, CFG(so_reuseport), "false", NO_KIND_DEF, 0, 0, 0,
                NULL, "share the listen port with other cachesvc processes (SO_REUSEPORT)"},
        {SEC_SERVICE, "fence", KT_BOOL, CFG(fence), "true", NO_KIND_DEF, 0, 0, 0, NULL,
                "LSN-fenced fills (invariant I1); off = TTL-only caching"},
        {SEC_SERVICE, "query_fence", KT_BOOL, CFG(query_fence), "true", NO_KIND_DEF, 0, 0, 0,
                NULL,
                "refuse fills older than the query's last generation bump; off only as a test's "
                "negative control"},
        {SEC_SERVICE, "eviction_check", KT_BOOL, CFG(eviction_check), "true", NO_KIND_DEF, 0, 0,
                0, NULL,
                "refuse fills older than the newest fence after Redis evicted keys; off only as a "
                "test's negative control"},
        {SEC_SERVICE, "negative_share", KT_SIZE64, CFG(negative_share), "16MB", NO_KIND_DEF,
                KF_RELOAD, 0, INT64_MAX, NULL,
                "bytes of negative (no rows) entries this process may have stored within the "
                "longest negative_ttl; beyond, empty results are not cached; 0 = no bound"},
        {SEC_SERVICE, "log_level", KT_STRING, CFG(log_level), "info", NO_KIND_DEF, KF_RELOAD, 0, 0,
                check_log_level, "debug, info, warning or error"},
        {SEC_SERVICE, "log_format", KT_STRING, CFG(log_format), "auto", NO_KIND_DEF, 0, 0, 0,
                check_log_format, "auto, text or journal"},

        /* [redis] */
        {SEC_REDIS, "url", KT_STRING, CFG(redis_url), "redis://127.0.0.1:6379/0", NO_KIND_DEF,
                KF_URL, 0, 0, check_redis_url,
                "redis://[[user]:password@]host[:port][/db] or "
                "unix://[[user]:password@]/path[?db=N]"},
        {SEC_REDIS, "timeout", KT_DURATION, CFG(redis_timeout_ms), "1s", NO_KIND_DEF, 0, 1, MIN_MS,
                NULL, "connect and command timeout"},
        {SEC_REDIS, "namespace", KT_STRING, CFG(redis_namespace), NULL, NO_KIND_DEF, KF_NULLABLE,
                0, 0, check_namespace,
                "prefix of every key, channel and script's key; empty = \"cs\" for db 0, "
                "\"cs<db>\" otherwise"},
        {SEC_REDIS, "lease", KT_DURATION, CFG(lease_ms), "0", NO_KIND_DEF, KF_RELOAD, 0, MIN_MS,
                NULL, "cross-process miss lease; 0 = off"},

        /* [primary] */
        {SEC_PRIMARY, "conninfo", KT_STRING, CFG(primary_conninfo), NULL, NO_KIND_DEF,
                KF_REQUIRED | KF_CONNINFO, 0, 0, check_conninfo,
                "libpq connection string or postgresql:// URI of the primary"},
        {SEC_PRIMARY, "pool_size", KT_INT, CFG(primary_pool_size), "4", NO_KIND_DEF, 0, 1, 256,
                NULL, "connections to the primary"},

        /* [replica NAME] */
        {SEC_REPLICA, "conninfo", KT_STRING, REP(conninfo), NULL, NO_KIND_DEF,
                KF_RELOAD | KF_REQUIRED | KF_CONNINFO, 0, 0, check_conninfo,
                "libpq connection string or postgresql:// URI of the replica"},
        {SEC_REPLICA, "tier", KT_TIERS, REP(tiers), "critical, default, batch", NO_KIND_DEF, KF_RELOAD, 0,
                0, NULL, "comma list of the tiers this replica serves: critical, default, batch"},
        {SEC_REPLICA, "pool_size", KT_INT, REP(pool_size), "4", NO_KIND_DEF, KF_RELOAD, 1, 256, NULL,
                "connections to this replica"},

        /* [query NAME]; the whole section is reloadable. Order matters: kind before the
         * policies whose defaults it picks, ttl before the keys derived from it, params
         * before invalidate_on. */
        {SEC_QUERY, "sql", KT_STRING, QRY(sql), NULL, NO_KIND_DEF, KF_RELOAD | KF_REQUIRED, 0, 0,
                check_sql, "the statement; parameters are $1..$N; may span lines"},
        {SEC_QUERY, "params", KT_PARAMS, QRY(nparams), "", NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "name:type, ... in $N order; types bool int2 int4 int8 float4 float8 text bytea "
                "uuid "
                "numeric date timestamptz"},
        {SEC_QUERY, "kind", KT_KIND, QRY(kind), "row", NO_KIND_DEF, KF_RELOAD, 0, 0, NULL,
                "row, list or aggregate; picks the policy defaults"},
        {SEC_QUERY, "ttl", KT_DURATION, QRY(ttl_ms), NULL, {"1h", "10m", "30s"}, KF_RELOAD, 1,
                365 * DAY_MS, NULL, "time an entry is fresh"},
        {SEC_QUERY, "ttl_jitter", KT_PERCENT, QRY(ttl_jitter_pct), NULL, {"0%", "5%", "10%"},
                KF_RELOAD, 0, 100, NULL, "random extra TTL, up to this share of ttl"},
        {SEC_QUERY, "stale_while_revalidate", KT_DURATION, QRY(stale_while_revalidate_ms), NULL,
                {"0", "0", "$ttl"}, KF_RELOAD, 0, 365 * DAY_MS, NULL,
                "after ttl, serve the old value this long while one refresh runs"},
        {SEC_QUERY, "max_stale", KT_DURATION, QRY(max_stale_ms), NULL,
                {"$ttl+swr", "$ttl+swr", "$ttl+swr"}, KF_RELOAD, 1, 730 * DAY_MS, NULL,
                "hard bound on an entry's age (Redis expiry); >= ttl + stale_while_revalidate"},
        {SEC_QUERY, "min_lifetime", KT_DURATION, QRY(min_lifetime_ms), NULL, {"0", "0", "5s"},
                KF_RELOAD, 0, DAY_MS, NULL,
                "at most one table-level invalidation per this period (debounce)"},
        {SEC_QUERY, "negative_ttl", KT_DURATION, QRY(negative_ttl_ms), NULL, {"60s", "60s", "0"},
                KF_RELOAD, 0, 365 * DAY_MS, NULL, "TTL of empty results; 0 = do not cache them"},
        {SEC_QUERY, "xfetch_beta", KT_DOUBLE, QRY(xfetch_beta), NULL, {"0", "0", "1"}, KF_RELOAD, 0,
                10, NULL, "early probabilistic refresh (XFetch) beta; 0 = off"},
        {SEC_QUERY, "invalidate_on", KT_INVALIDATE, QRY(ninval), "", NO_KIND_DEF, KF_RELOAD, 0, 0,
                NULL, "table(col = $N, ...) or table, comma separated; empty = TTL only"},

        /* [invalidator] */
        {SEC_INVALIDATOR, "enabled", KT_BOOL, CFG(inval_enabled), "false", NO_KIND_DEF, 0, 0, 0,
                NULL, "run the invalidator in this process (needs [primary])"},
        {SEC_INVALIDATOR, "slot", KT_STRING, CFG(inval_slot), "cachesvc", NO_KIND_DEF, 0, 0, 0,
                check_slot_name, "logical replication slot name"},
        {SEC_INVALIDATOR, "publication", KT_STRING, CFG(inval_publication), "cachesvc", NO_KIND_DEF,
                0, 0, 0, check_publication, "publication the slot streams"},
        {SEC_INVALIDATOR, "create_publication", KT_BOOL, CFG(inval_create_publication), "true",
                NO_KIND_DEF, 0, 0, 0, NULL,
                "create the publication for the invalidate_on tables when missing"},
        {SEC_INVALIDATOR, "fence_ttl", KT_DURATION, CFG(fence_ttl_ms), "60s", NO_KIND_DEF, 0,
                SEC_MS, DAY_MS, NULL, "lifetime of a per-key invalidation fence"},
        {SEC_INVALIDATOR, "status_interval", KT_DURATION, CFG(status_interval_ms), "1s",
                NO_KIND_DEF, KF_RELOAD, 10, HOUR_MS, NULL,
                "period of standby status (confirmed LSN) messages"},
        {SEC_INVALIDATOR, "receive_timeout", KT_DURATION, CFG(receive_timeout_ms), "30s",
                NO_KIND_DEF, KF_RELOAD, 0, HOUR_MS, NULL,
                "restart the replication stream when nothing arrives for this long (0 = never)"},
};

#define NKEYS (sizeof(key_table) / sizeof(key_table[0]))
_Static_assert(NKEYS <= 64, "keys are tracked in a 64-bit mask");

/* ------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------- */

static void *field_at(void *base, const struct key_def *kd)
{
	return (char *)base + kd->offset;
}

static const void *field_at_const(const void *base, const struct key_def *kd)
{
	return (const char *)base + kd->offset;
}

static bool streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *strndup_or_null(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* Grows *arr (of elements `size`) so that index `need - 1` exists; new space is zeroed. */
static bool grow_array(void **arr, int *cap, int need, size_t size)
{
	if (need <= *cap)
		return true;
	int ncap = *cap ? *cap : 4;
	while (ncap < need) {
		if (ncap > INT_MAX / 2)
			return false;
		ncap *= 2;
	}
	void *p = realloc(*arr, (size_t)ncap * size);
	if (!p)
		return false;
	memset((char *)p + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
	*arr = p;
	*cap = ncap;
	return true;
}

/* Writes `v` into out as a quoted, escaped, shortened literal for error messages. */
static const char *quote_value(const char *v, char *out, size_t outlen)
{
	size_t o = 0;
	const size_t shown = 60;
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (size_t i = 0; v[i] && o + 6 < outlen; i++) {
		unsigned char c = (unsigned char)v[i];
		if (i == shown) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static bool is_name_char(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

/* Query and replica names go into Redis keys and metrics labels. */
static bool check_object_name(const char *s, size_t len, char *why, size_t whylen)
{
	if (len == 0) {
		snprintf(why, whylen, "name missing");
		return false;
	}
	if (len > CS_MAX_NAME) {
		snprintf(why, whylen, "name longer than %d characters", CS_MAX_NAME);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_name_char((unsigned char)s[i])) {
			snprintf(why, whylen, "name may only contain A-Z a-z 0-9 _ . -");
			return false;
		}
	}
	return true;
}

/* A bounded string builder that truncates instead of overflowing. */
struct outbuf {
	char *p;
	size_t cap, len;
};

static void out_append(struct outbuf *o, const char *s, size_t n)
{
	if (o->cap == 0)
		return;
	size_t room = o->cap - 1 - o->len;
	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void out_str(struct outbuf *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/* ------------------------------------------------------------------------------------------
 * Value parsers
 * ---------------------------------------------------------------------------------------- */

/* Parses a run of decimal digits into *out; false on no digits or overflow. */
static bool parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*sp = s;
	*out = v;
	return true;
}

bool cs_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
	        {"ms", 1},
	        {"s", 1000},
	        {"m", 60000},
	        {"h", 3600000},
	        {"d", 86400000},
	        {"", 1000},
	};
	uint64_t n;
	if (s == NULL || !parse_digits(&s, &n))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (n > (uint64_t)INT64_MAX / units[i].mult)
			return false;
		*ms = (int64_t)(n * units[i].mult);
		return true;
	}
	return false;
}

bool cs_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {
	        {"", 0},
	        {"B", 0},
	        {"kB", 10},
	        {"KB", 10},
	        {"k", 10},
	        {"K", 10},
	        {"MB", 20},
	        {"M", 20},
	        {"GB", 30},
	        {"G", 30},
	        {"TB", 40},
	        {"T", 40},
	};
	uint64_t n;
	if (s == NULL || !parse_digits(&s, &n))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].unit) != 0)
			continue;
		if (n > (UINT64_MAX >> units[i].shift))
			return false;
		*bytes = n << units[i].shift;
		return true;
	}
	return false;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool parse_int64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	uint64_t v;
	if (neg || *s == '+')
		s++;
	if (!parse_digits(&s, &v) || *s != '\0' || v > (uint64_t)INT64_MAX)
		return false;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static bool parse_percent(const char *s, int64_t *out)
{
	uint64_t v;
	if (!parse_digits(&s, &v) || (strcmp(s, "%") != 0 && *s != '\0') || v > INT64_MAX)
		return false;
	*out = (int64_t)v;
	return true;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	if (!(isdigit((unsigned char)*s) || *s == '.'))
		return false;
	errno = 0;
	double d = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d))
		return false;
	*out = d;
	return true;
}

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

static const char *const kind_names[] = {"row", "list", "aggregate"};

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

static const char *skip_space(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

/* Copies s[0..n) into out (size outlen) with runs of whitespace collapsed and the ends
 * trimmed. Returns false when it does not fit. */
static bool copy_collapsed(const char *s, size_t n, char *out, size_t outlen)
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
static bool parse_params(const char *v, cs_query_def *q, char *why, size_t whylen)
{
	char qv[80];
	q->nparams = 0;
	const char *s = skip_space(v);
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
		if (!colon || !copy_collapsed(s, (size_t)(colon - s), name, sizeof(name)) ||
		        !copy_collapsed(colon + 1, (size_t)(end - colon - 1), type, sizeof(type))) {
			char tmp[128];
			snprintf(tmp, sizeof(tmp), "%.*s", (int)(end - item), item);
			snprintf(why, whylen, "expected name:type, got %s",
			        quote_value(tmp, qv, sizeof(qv)));
			return false;
		}
		if (name[0] == '\0' || strlen(name) > CS_MAX_NAME ||
		        !(isalpha((unsigned char)name[0]) || name[0] == '_') ||
		        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678"
		                     "9_") != strlen(name)) {
			snprintf(why, whylen,
			        "bad parameter name %s (letters, digits, _; at most %d)",
			        quote_value(name, qv, sizeof(qv)), CS_MAX_NAME);
			return false;
		}
		if (!param_type_parse(type, &p->type)) {
			snprintf(why, whylen,
			        "parameter %s: unknown type %s (bool int2 int4 int8 float4 float8 "
			        "text bytea uuid numeric date timestamptz)",
			        name, quote_value(type, qv, sizeof(qv)));
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
		s = skip_space(end + 1);
		if (*s == '\0') {
			snprintf(why, whylen, "trailing comma");
			return false;
		}
	}
}

/* ---- invalidate_on ------------------------------------------------------------------- */

/* Reads one identifier: "Quoted ""x""" kept as written, or unquoted folded to lower case
 * as PostgreSQL does. Returns a malloc'ed string or NULL (why set). */
static char *parse_ident(const char **sp, const char *what, char *why, size_t whylen)
{
	const char *s = skip_space(*sp);
	char buf[MAX_PG_IDENT + 1];
	size_t n = 0;
	char qv[80];
	if (*s == '"') {
		s++;
		for (;;) {
			if (*s == '\0') {
				snprintf(why, whylen, "unterminated quoted %s", what);
				return NULL;
			}
			if (*s == '"') {
				if (s[1] != '"')
					break;
				s++;
			}
			if (n == MAX_PG_IDENT) {
				snprintf(
				        why, whylen, "%s longer than %d bytes", what, MAX_PG_IDENT);
				return NULL;
			}
			buf[n++] = *s++;
		}
		s++;
		if (n == 0) {
			snprintf(why, whylen, "empty quoted %s", what);
			return NULL;
		}
	} else {
		if (!(isalpha((unsigned char)*s) || *s == '_')) {
			char tmp[40];
			snprintf(tmp, sizeof(tmp), "%s", s);
			snprintf(why, whylen, "expected a %s at %s", what,
			        *s ? quote_value(tmp, qv, sizeof(qv)) : "end of value");
			return NULL;
		}
		while (isalnum((unsigned char)*s) || *s == '_' || *s == '$') {
			if (n == MAX_PG_IDENT) {
				snprintf(
				        why, whylen, "%s longer than %d bytes", what, MAX_PG_IDENT);
				return NULL;
			}
			buf[n++] = (char)tolower((unsigned char)*s++);
		}
	}
	*sp = s;
	char *r = strndup_or_null(buf, n);
	if (!r)
		snprintf(why, whylen, "out of memory");
	return r;
}

static void inval_rule_free(cs_inval_rule *r)
{
	free(r->schema);
	free(r->table);
	for (int i = 0; i < r->ncols; i++)
		free(r->cols[i]);
	memset(r, 0, sizeof(*r));
}

static void query_inval_free(cs_query_def *q)
{
	for (int i = 0; i < q->ninval; i++)
		inval_rule_free(&q->inval[i]);
	q->ninval = 0;
}

/* One clause: [schema.]table [ "(" col = $N {, col = $N} ")" ]. */
static bool parse_inval_clause(
        const char **sp, cs_query_def *q, cs_inval_rule *r, char *why, size_t whylen)
{
	const char *s = *sp;
	char *first = parse_ident(&s, "table name", why, whylen);
	if (!first)
		return false;
	s = skip_space(s);
	if (*s == '.') {
		s++;
		r->schema = first;
		r->table = parse_ident(&s, "table name", why, whylen);
		if (!r->table)
			return false;
	} else {
		r->table = first;
		r->schema = strdup("public");
		if (!r->schema) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
	}
	s = skip_space(s);
	if (*s != '(') {
		*sp = s;
		return true;
	}
	s++;
	bool bound[CS_MAX_PARAMS] = {false};
	for (;;) {
		if (r->ncols == CS_MAX_KEYCOLS) {
			snprintf(why, whylen, "%s: more than %d key columns", r->table,
			        CS_MAX_KEYCOLS);
			return false;
		}
		char *col = parse_ident(&s, "column name", why, whylen);
		if (!col)
			return false;
		r->cols[r->ncols] = col;
		for (int i = 0; i < r->ncols; i++) {
			if (strcmp(r->cols[i], col) == 0) {
				snprintf(why, whylen, "%s: column %s listed twice", r->table, col);
				r->ncols++;
				return false;
			}
		}
		r->ncols++;
		s = skip_space(s);
		if (*s != '=') {
			snprintf(why, whylen, "%s: expected \"= $N\" after column %s", r->table,
			        col);
			return false;
		}
		s = skip_space(s + 1);
		uint64_t n;
		if (*s != '$' || (s++, !parse_digits(&s, &n))) {
			snprintf(why, whylen, "%s: column %s must be bound to a parameter $N",
			        r->table, col);
			return false;
		}
		if (n < 1 || n > (uint64_t)q->nparams) {
			snprintf(why, whylen, "%s(%s = $%" PRIu64 "): the query has %d parameter%s",
			        r->table, col, n, q->nparams, q->nparams == 1 ? "" : "s");
			return false;
		}
		if (bound[n - 1]) {
			snprintf(why, whylen, "%s: $%" PRIu64 " bound twice", r->table, n);
			return false;
		}
		bound[n - 1] = true;
		r->param_index[r->ncols - 1] = (int)n - 1;
		s = skip_space(s);
		if (*s == ',') {
			s++;
			continue;
		}
		if (*s == ')') {
			s++;
			break;
		}
		snprintf(why, whylen, "%s: expected ',' or ')' after $%" PRIu64, r->table, n);
		return false;
	}
	/* A row of the table must give the whole cache key, or the key is not computable. */
	for (int i = 0; i < q->nparams; i++) {
		if (!bound[i]) {
			snprintf(why, whylen,
			        "%s(...) does not bind $%d (%s): a %s row cannot give the whole "
			        "key; "
			        "bind every parameter, or invalidate on the whole table: %s",
			        r->table, i + 1, q->params[i].name, r->table, r->table);
			return false;
		}
	}
	*sp = s;
	return true;
}

static bool parse_invalidate_on(const char *v, cs_query_def *q, char *why, size_t whylen)
{
	query_inval_free(q);
	const char *s = skip_space(v);
	if (*s == '\0')
		return true;
	for (;;) {
		if (q->ninval == CS_MAX_INVALIDATE) {
			snprintf(why, whylen, "more than %d clauses", CS_MAX_INVALIDATE);
			return false;
		}
		cs_inval_rule *r = &q->inval[q->ninval++];
		if (!parse_inval_clause(&s, q, r, why, whylen))
			return false;
		s = skip_space(s);
		if (*s == '\0')
			return true;
		if (*s != ',') {
			char tmp[40], qv[80];
			snprintf(tmp, sizeof(tmp), "%s", s);
			snprintf(why, whylen, "expected ',' between clauses at %s",
			        quote_value(tmp, qv, sizeof(qv)));
			return false;
		}
		s = skip_space(s + 1);
	}
}

/* ---- SQL placeholders ---------------------------------------------------------------- */

static bool is_ident_char(int c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Scans sql for $N placeholders outside literals, quoted identifiers and comments.
 * Sets *highest and the bit (N-1) of *used for N <= 64. False on unterminated text. */
static bool scan_placeholders(
        const char *sql, uint64_t *highest, uint64_t *used, char *why, size_t whylen)
{
	const char *s = sql;
	*highest = 0;
	*used = 0;
	while (*s) {
		unsigned char prev = s > sql ? (unsigned char)s[-1] : ' ';
		if (*s == '\'') {
			/* E'..' strings take backslash escapes; '' is a quote in both forms. */
			bool esc = s > sql && (prev == 'e' || prev == 'E') &&
			           !(s - 1 > sql && is_ident_char((unsigned char)s[-2]));
			s++;
			for (;;) {
				if (*s == '\0') {
					snprintf(why, whylen, "unterminated string literal");
					return false;
				}
				if (esc && *s == '\\' && s[1]) {
					s += 2;
					continue;
				}
				if (*s == '\'') {
					if (s[1] == '\'') {
						s += 2;
						continue;
					}
					break;
				}
				s++;
			}
			s++;
		} else if (*s == '"') {
			const char *e = strchr(s + 1, '"');
			while (e && e[1] == '"')
				e = strchr(e + 2, '"');
			if (!e) {
				snprintf(why, whylen, "unterminated quoted identifier");
				return false;
			}
			s = e + 1;
		} else if (s[0] == '-' && s[1] == '-') {
			s += strcspn(s, "\n");
		} else if (s[0] == '/' && s[1] == '*') {
			int depth = 1; /* PostgreSQL block comments nest */
			s += 2;
			while (depth > 0) {
				if (*s == '\0') {
					snprintf(why, whylen, "unterminated /* comment");
					return false;
				}
				if (s[0] == '/' && s[1] == '*') {
					depth++;
					s += 2;
				} else if (s[0] == '*' && s[1] == '/') {
					depth--;
					s += 2;
				} else {
					s++;
				}
			}
		} else if (*s == '$' && !is_ident_char(prev)) {
			if (isdigit((unsigned char)s[1])) {
				uint64_t n;
				s++;
				if (!parse_digits(&s, &n))
					n = UINT64_MAX;
				if (n == 0) {
					snprintf(why, whylen, "$0 is not a parameter");
					return false;
				}
				if (n > *highest)
					*highest = n;
				if (n <= 64)
					*used |= 1ull << (n - 1);
				continue;
			}
			/* $tag$ ... $tag$ dollar quoting */
			const char *t = s + 1;
			while (*t && *t != '$' &&
			        (isalnum((unsigned char)*t) || *t == '_' ||
			                (unsigned char)*t >= 0x80))
				t++;
			if (*t != '$' || isdigit((unsigned char)s[1])) {
				s++;
				continue;
			}
			size_t taglen = (size_t)(t - s) + 1;
			const char *body = t + 1;
			const char *e = body;
			for (;;) {
				e = strchr(e, '$');
				if (!e) {
					snprintf(why, whylen, "unterminated dollar-quoted string");
					return false;
				}
				if (strncmp(e, s, taglen) == 0)
					break;
				e++;
			}
			s = e + taglen;
		} else {
			s++;
		}
	}
	return true;
}

/* ---- value checks -------------------------------------------------------------------- */

static bool parse_port(const char *s, int *port)
{
	uint64_t n;
	if (!parse_digits(&s, &n) || *s != '\0' || n < 1 || n > 65535)
		return false;
	*port = (int)n;
	return true;
}

static bool check_host_port(const char *v, char *why, size_t whylen)
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
	if (!parse_port(colon + 1, &port)) {
		snprintf(why, whylen, "port must be 1..65535");
		return false;
	}
	return true;
}

static bool check_unix_path(const char *v, char *why, size_t whylen)
{
	if (strlen(v) > 107) {
		snprintf(why, whylen, "socket path longer than 107 bytes");
		return false;
	}
	return true;
}

static bool check_log_level(const char *v, char *why, size_t whylen)
{
	static const char *const levels[] = {"debug", "info", "warning", "error"};
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, levels[i]) == 0)
			return true;
	}
	snprintf(why, whylen, "must be debug, info, warning or error");
	return false;
}

static bool check_log_format(const char *v, char *why, size_t whylen)
{
	if (strcmp(v, "auto") == 0 || strcmp(v, "text") == 0 || strcmp(v, "journal") == 0)
		return true;
	snprintf(why, whylen, "must be auto, text or journal");
	return false;
}

static bool check_pg_name(const char *v, const char *chars, char *why, size_t whylen)
{
	size_t n = strlen(v);
	if (n == 0 || n > MAX_PG_IDENT || strspn(v, chars) != n) {
		snprintf(why, whylen, "must be 1..%d characters of %s", MAX_PG_IDENT,
		        strchr(chars, 'A') ? "A-Z a-z 0-9 _" : "a-z 0-9 _");
		return false;
	}
	return true;
}

static bool check_slot_name(const char *v, char *why, size_t whylen)
{
	/* PostgreSQL allows only lower case letters, digits and _ in slot names. */
	return check_pg_name(v, "abcdefghijklmnopqrstuvwxyz0123456789_", why, whylen);
}

static bool check_publication(const char *v, char *why, size_t whylen)
{
	return check_pg_name(
	        v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", why, whylen);
}

static bool check_sql(const char *v, char *why, size_t whylen)
{
	uint64_t highest, used;
	return scan_placeholders(v, &highest, &used, why, whylen);
}

/* libpq's messages may quote fragments of the string; keep only those that are not
 * secret (they appear in the masked form). */
static void scrub_libpq_message(const char *msg, const char *masked, char *out, size_t outlen)
{
	struct outbuf o = {out, outlen, 0};
	if (outlen)
		out[0] = '\0';
	while (*msg) {
		if (*msg == '"') {
			const char *e = strchr(msg + 1, '"');
			if (e) {
				char frag[256];
				snprintf(frag, sizeof(frag), "%.*s", (int)(e - msg - 1), msg + 1);
				out_str(&o, "\"");
				out_str(&o, strstr(masked, frag) ? frag : "***");
				out_str(&o, "\"");
				msg = e + 1;
				continue;
			}
		}
		if (*msg != '\n')
			out_append(&o, msg, 1);
		msg++;
	}
}

static bool check_conninfo(const char *v, char *why, size_t whylen)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(v, &err);
	if (opts) {
		PQconninfoFree(opts);
		return true;
	}
	char masked[1024], msg[300];
	cs_config_mask_conninfo(v, masked, sizeof(masked));
	scrub_libpq_message(err ? err : "out of memory", masked, msg, sizeof(msg));
	snprintf(why, whylen, "bad conninfo: %s", msg);
	PQfreemem(err);
	return false;
}

/* ------------------------------------------------------------------------------------------
 * Redis URL
 * ---------------------------------------------------------------------------------------- */

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out; false when it does not fit or is malformed. */
static bool percent_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int hi = hex_value((unsigned char)s[i + 1]);
			int lo = hi < 0 ? -1 : hex_value((unsigned char)s[i + 2]);
			if (lo < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= outlen || c == 0)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

/* The last '@' in [s, end), or NULL. */
static const char *last_at_sign(const char *s, const char *end)
{
	while (end > s) {
		if (*--end == '@')
			return end;
	}
	return NULL;
}

bool cs_redis_url_parse(const char *url, cs_redis_url *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	out->port = 6379;
	bool is_unix;
	const char *s;
	if (strncmp(url, "redis://", 8) == 0) {
		is_unix = false;
		s = url + 8;
	} else if (strncmp(url, "unix://", 7) == 0) {
		is_unix = true;
		s = url + 7;
	} else {
		snprintf(why, whylen, "must start with redis:// or unix://");
		return false;
	}
	/* userinfo: up to the last '@' before the path (a socket path may hold '@' itself) */
	const char *host_end =
	        is_unix ? (*s == '/' ? s : s + strcspn(s, "?")) : s + strcspn(s, "/?");
	const char *at = last_at_sign(s, host_end);
	if (is_unix && at == NULL && *s != '/') {
		snprintf(why, whylen, "unix:// needs an absolute socket path");
		return false;
	}
	if (at) {
		/* "redis://secret@host": a bare userinfo is the password (AUTH <password>). */
		const char *colon = memchr(s, ':', (size_t)(at - s));
		bool ok = colon ? percent_decode(s, (size_t)(colon - s), out->username,
		                          sizeof(out->username)) &&
		                          percent_decode(colon + 1, (size_t)(at - colon - 1),
		                                  out->password, sizeof(out->password))
		                : percent_decode(s, (size_t)(at - s), out->password,
		                          sizeof(out->password));
		if (!ok) {
			snprintf(why, whylen,
			        "bad user or password (percent-encode special characters)");
			return false;
		}
		s = at + 1;
	}
	const char *q;
	if (is_unix) {
		q = s + strcspn(s, "?");
		if (*s != '/' || (size_t)(q - s) >= sizeof(out->unix_path)) {
			snprintf(why, whylen,
			        "unix:// needs an absolute socket path of at most %zu bytes",
			        sizeof(out->unix_path) - 1);
			return false;
		}
		memcpy(out->unix_path, s, (size_t)(q - s));
		if (*q == '?') {
			const char *db = q + 1;
			uint64_t n;
			if (strncmp(db, "db=", 3) != 0 || (db += 3, !parse_digits(&db, &n)) ||
			        *db != '\0' || n > 1000000) {
				snprintf(why, whylen, "only ?db=N may follow the socket path");
				return false;
			}
			out->db = (int)n;
		}
		return true;
	}
	const char *hs = s, *he;
	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he == s + 1) {
			snprintf(why, whylen, "bad [v6] host");
			return false;
		}
		hs = s + 1;
		s = he + 1;
	} else {
		s += strcspn(s, ":/?");
		he = s;
		if (he == hs) {
			snprintf(why, whylen, "host missing");
			return false;
		}
	}
	if ((size_t)(he - hs) >= sizeof(out->host)) {
		snprintf(why, whylen, "host name too long");
		return false;
	}
	memcpy(out->host, hs, (size_t)(he - hs));
	if (*s == ':') {
		char port[8];
		size_t n = strcspn(s + 1, "/?");
		if (n == 0 || n >= sizeof(port)) {
			snprintf(why, whylen, "port must be 1..65535");
			return false;
		}
		memcpy(port, s + 1, n);
		port[n] = '\0';
		if (!parse_port(port, &out->port)) {
			snprintf(why, whylen, "port must be 1..65535");
			return false;
		}
		s += 1 + n;
	}
	if (*s == '/') {
		s++;
		if (*s != '\0') {
			uint64_t n;
			if (!parse_digits(&s, &n) || *s != '\0' || n > 1000000) {
				snprintf(why, whylen,
				        "database must be a number (redis://host:port/N)");
				return false;
			}
			out->db = (int)n;
		}
	}
	if (*s != '\0') {
		snprintf(why, whylen, "unexpected text after the host");
		return false;
	}
	return true;
}

static bool check_namespace(const char *v, char *why, size_t whylen)
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

static bool check_redis_url(const char *v, char *why, size_t whylen)
{
	cs_redis_url u;
	bool ok = cs_redis_url_parse(v, &u, why, whylen);
	memset(&u, 0, sizeof(u)); /* holds a password */
	return ok;
}

/* ------------------------------------------------------------------------------------------
 * Masking secrets
 * ---------------------------------------------------------------------------------------- */

static bool is_secret_option(const char *name, size_t n)
{
	return (n == 8 && strncmp(name, "password", 8) == 0) ||
	       (n == 11 && strncmp(name, "sslpassword", 11) == 0);
}

/* scheme://[user[:password]@]...[?k=v&...]; a bare userinfo counts as a secret when
 * bare_is_secret (Redis: "redis://password@host"). Everything after the last '@' before
 * the query string is kept; the password and secret query options become ***. */
static void mask_uri(const char *s, bool bare_is_secret, struct outbuf *o)
{
	const char *rest = strstr(s, "://") + 3;
	out_append(o, s, (size_t)(rest - s));
	/* The last '@' anywhere: over-masking beats printing a password with a stray '/'. */
	const char *at = strrchr(rest, '@');
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		if (colon) {
			out_append(o, rest, (size_t)(colon - rest));
			out_str(o, ":***@");
		} else if (bare_is_secret) {
			out_str(o, "***@");
		} else {
			out_append(o, rest, (size_t)(at - rest) + 1);
		}
		rest = at + 1;
	}
	const char *q = strchr(rest, '?');
	if (!q) {
		out_str(o, rest);
		return;
	}
	out_append(o, rest, (size_t)(q - rest) + 1);
	const char *p = q + 1;
	while (*p) {
		size_t n = strcspn(p, "&");
		size_t kn = strcspn(p, "=&");
		if (p[kn] == '=' && is_secret_option(p, kn)) {
			out_append(o, p, kn + 1);
			out_str(o, "***");
		} else {
			out_append(o, p, n);
		}
		p += n;
		if (*p == '&')
			out_append(o, p++, 1);
	}
}

/* key = value ... as libpq reads it: values are bare words or '...' with \ escapes. */
static void mask_keyword_value(const char *s, struct outbuf *o)
{
	while (*s) {
		const char *ws = s;
		while (isspace((unsigned char)*s))
			s++;
		out_append(o, ws, (size_t)(s - ws));
		if (!*s)
			break;
		const char *key = s;
		while (*s && *s != '=' && !isspace((unsigned char)*s))
			s++;
		size_t klen = (size_t)(s - key);
		out_append(o, key, klen);
		ws = s;
		while (isspace((unsigned char)*s))
			s++;
		if (*s != '=') {
			/* malformed: whatever follows might be a secret */
			if (*s)
				out_str(o, " ***");
			return;
		}
		s++;
		while (isspace((unsigned char)*s))
			s++;
		out_append(o, ws, (size_t)(s - ws));
		const char *val = s;
		if (*s == '\'') {
			s++;
			while (*s && *s != '\'') {
				if (*s == '\\' && s[1])
					s++;
				s++;
			}
			if (*s)
				s++;
		} else {
			while (*s && !isspace((unsigned char)*s)) {
				if (*s == '\\' && s[1])
					s++;
				s++;
			}
		}
		if (is_secret_option(key, klen))
			out_str(o, "***");
		else
			out_append(o, val, (size_t)(s - val));
	}
}

void cs_config_mask_conninfo(const char *conninfo, char *buf, size_t buflen)
{
	struct outbuf o = {buf, buflen, 0};
	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (conninfo == NULL)
		return;
	if (strncmp(conninfo, "postgresql://", 13) == 0 ||
	        strncmp(conninfo, "postgres://", 11) == 0)
		mask_uri(conninfo, false, &o);
	else
		mask_keyword_value(conninfo, &o);
}

/* Copies a Redis URL into buf with its password replaced by ***. */
static void mask_redis_url(const char *url, char *buf, size_t buflen)
{
	struct outbuf o = {buf, buflen, 0};
	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (url == NULL)
		return;
	if (strstr(url, "://"))
		mask_uri(url, true, &o);
	else
		out_str(&o, strchr(url, '@') ? "***" : url);
}

/* ------------------------------------------------------------------------------------------
 * Reading the file: inih, fed line by line
 *
 * Debian's inih 55 has runtime options (ini_max_line, ...) but truncates section names to 49
 * bytes, silently splits lines longer than its buffer, and calls the handler only for
 * key = value lines. So read_config_line() hands it one physical line at a time, refuses
 * over-long lines and NUL bytes, and classifies every line exactly as inih will (header,
 * key, continuation) to track sections, line numbers and continuation lines itself.
 * ---------------------------------------------------------------------------------------- */

struct raw_entry {
	char *key;
	char *value; /* continuation lines joined with '\n' */
	int lineno;
};

struct raw_section {
	enum section_kind kind;
	char name[CS_MAX_NAME + 1];
	int lineno;
	struct raw_entry *entries;
	int nentries, cap;
};

enum line_kind {
	LINE_BLANK,        /* blank or comment */
	LINE_SECTION,      /* [header] */
	LINE_KEY,          /* key = value */
	LINE_CONTINUATION, /* indented line after a key: more of its value */
	LINE_BAD,          /* inih reports it as an error */
};

struct loader {
	const char *path;
	char *text;
	size_t len, pos;
	int lineno;      /* physical line being handed to inih */
	bool line_start; /* the next chunk starts a new physical line */
	bool prev_key;   /* mirrors inih's prev_name: a key line since the last header */
	enum line_kind line_kind;
	struct raw_section *secs;
	int nsecs, cap;
	int replicas_cap, queries_cap; /* capacity of cfg->replicas and cfg->queries */
	bool failed;
	int err_line; /* line of the first error, 0 = none given */
	char *err;    /* CS_CONFIG_ERRLEN */
};

static void fail_at(struct loader *ld, int lineno, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void fail_at(struct loader *ld, int lineno, const char *fmt, ...)
{
	if (ld->failed)
		return;
	ld->failed = true;
	ld->err_line = lineno;
	int n = lineno > 0 ? snprintf(ld->err, CS_CONFIG_ERRLEN, "%s:%d: ", ld->path, lineno)
	                   : snprintf(ld->err, CS_CONFIG_ERRLEN, "%s: ", ld->path);
	if (n < 0 || n >= CS_CONFIG_ERRLEN)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, CS_CONFIG_ERRLEN - (size_t)n, fmt, ap);
	va_end(ap);
}

static void section_label(const struct raw_section *sec, char *buf, size_t len)
{
	if (section_defs[sec->kind].named)
		snprintf(buf, len, "[%s %s]", section_defs[sec->kind].name, sec->name);
	else
		snprintf(buf, len, "[%s]", section_defs[sec->kind].name);
}

/* A "[kind name]" header: validates it and opens a new raw section. */
static void section_begin(struct loader *ld, const char *text, size_t len)
{
	char qv[80];
	const char *s = text, *end = text + len;
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	const char *kw = s;
	while (s < end && !isspace((unsigned char)*s))
		s++;
	size_t kwlen = (size_t)(s - kw);
	while (s < end && isspace((unsigned char)*s))
		s++;
	const char *name = s;
	size_t namelen = (size_t)(end - s);
	int k = -1;
	for (int i = 0; i < SEC__COUNT; i++) {
		if (strlen(section_defs[i].name) == kwlen &&
		        strncasecmp(section_defs[i].name, kw, kwlen) == 0)
			k = i;
	}
	if (k < 0) {
		char tmp[80];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)len, text);
		fail_at(ld, ld->lineno,
		        "unknown section [%s] (expected cachesvc, redis, primary, replica NAME, "
		        "query NAME or invalidator)",
		        quote_value(tmp, qv, sizeof(qv)));
		return;
	}
	const struct section_def *sd = &section_defs[k];
	char why[128];
	if (sd->named && !check_object_name(name, namelen, why, sizeof(why))) {
		char tmp[80];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)namelen, name);
		fail_at(ld, ld->lineno, "[%s %s]: %s", sd->name, quote_value(tmp, qv, sizeof(qv)),
		        why);
		return;
	}
	if (!sd->named && namelen > 0) {
		fail_at(ld, ld->lineno, "[%s] takes no name", sd->name);
		return;
	}
	for (int i = 0; i < ld->nsecs; i++) {
		const struct raw_section *o = &ld->secs[i];
		if (o->kind != (enum section_kind)k)
			continue;
		if (!sd->named) {
			fail_at(ld, ld->lineno, "duplicate section [%s] (first at line %d)",
			        sd->name, o->lineno);
			return;
		}
		if (strlen(o->name) == namelen && memcmp(o->name, name, namelen) == 0) {
			fail_at(ld, ld->lineno, "duplicate [%s %s] (first at line %d)", sd->name,
			        o->name, o->lineno);
			return;
		}
	}
	if (!grow_array((void **)&ld->secs, &ld->cap, ld->nsecs + 1, sizeof(*ld->secs))) {
		fail_at(ld, ld->lineno, "out of memory");
		return;
	}
	struct raw_section *sec = &ld->secs[ld->nsecs++];
	sec->kind = (enum section_kind)k;
	memcpy(sec->name, name, namelen);
	sec->name[namelen] = '\0';
	sec->lineno = ld->lineno;
}

/* Where inih's find_chars_or_comment() stops: the first of `chars`, or a ';' that follows
 * whitespace (an inline comment). */
static const char *find_char_or_comment(const char *s, const char *end, const char *chars)
{
	bool was_space = false;
	for (; s < end; s++) {
		if (strchr(chars, *s) || (was_space && *s == ';'))
			return s;
		was_space = isspace((unsigned char)*s) != 0;
	}
	return end;
}

/* Classifies the physical line at ld->pos as inih will; opens sections. False on error. */
static bool begin_line(struct loader *ld)
{
	const char *line = ld->text + ld->pos;
	const char *nl = memchr(line, '\n', ld->len - ld->pos);
	const char *end = nl ? nl : ld->text + ld->len;
	ld->lineno++;
	if (end - line > MAX_LINE - 3) {
		fail_at(ld, ld->lineno, "line longer than %d bytes", MAX_LINE - 3);
		return false;
	}
	while (end > line && isspace((unsigned char)end[-1]))
		end--;
	const char *start = line;
	while (start < end && isspace((unsigned char)*start))
		start++;
	if (start == end || *start == ';' || *start == '#') {
		ld->line_kind = LINE_BLANK;
	} else if (ld->prev_key && start > line) {
		ld->line_kind = LINE_CONTINUATION;
	} else if (*start == '[') {
		const char *rb = find_char_or_comment(start + 1, end, "]");
		if (rb < end && *rb == ']') {
			ld->line_kind = LINE_SECTION;
			ld->prev_key = false;
			section_begin(ld, start + 1, (size_t)(rb - start - 1));
		} else {
			ld->line_kind = LINE_BAD;
		}
	} else {
		const char *eq = find_char_or_comment(start, end, "=:");
		if (eq < end && (*eq == '=' || *eq == ':')) {
			ld->line_kind = LINE_KEY;
			ld->prev_key = eq > start;
		} else {
			ld->line_kind = LINE_BAD;
		}
	}
	return !ld->failed;
}

/* inih's reader, fgets() semantics over the file text. */
static char *read_config_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	if (ld->failed || ld->pos >= ld->len || num < 2)
		return NULL;
	if (ld->line_start) {
		if (!begin_line(ld))
			return NULL;
	}
	const char *p = ld->text + ld->pos;
	size_t rest = ld->len - ld->pos;
	const char *nl = memchr(p, '\n', rest);
	size_t n = nl ? (size_t)(nl - p) + 1 : rest;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, p, n);
	str[n] = '\0';
	ld->pos += n;
	ld->line_start = str[n - 1] == '\n';
	return str;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	(void)section; /* inih truncates section names; begin_line() tracks sections */
	if (ld->failed)
		return 1;
	if (ld->nsecs == 0) {
		fail_at(ld, ld->lineno, "%s: key outside any section", name);
		return 1;
	}
	struct raw_section *sec = &ld->secs[ld->nsecs - 1];
	if (ld->line_kind == LINE_CONTINUATION && sec->nentries > 0) {
		struct raw_entry *e = &sec->entries[sec->nentries - 1];
		size_t a = strlen(e->value), b = strlen(value);
		char *p = realloc(e->value, a + b + 2);
		if (!p) {
			fail_at(ld, ld->lineno, "out of memory");
			return 1;
		}
		p[a] = '\n';
		memcpy(p + a + 1, value, b + 1);
		e->value = p;
		return 1;
	}
	for (int i = 0; i < sec->nentries; i++) {
		if (strcasecmp(sec->entries[i].key, name) == 0) {
			char label[100];
			section_label(sec, label, sizeof(label));
			fail_at(ld, ld->lineno, "%s %s: set twice (first at line %d)", label, name,
			        sec->entries[i].lineno);
			return 1;
		}
	}
	if (!grow_array(
	            (void **)&sec->entries, &sec->cap, sec->nentries + 1, sizeof(*sec->entries))) {
		fail_at(ld, ld->lineno, "out of memory");
		return 1;
	}
	struct raw_entry *e = &sec->entries[sec->nentries];
	e->key = strdup(name);
	e->value = strdup(value);
	e->lineno = ld->lineno;
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		fail_at(ld, ld->lineno, "out of memory");
		return 1;
	}
	sec->nentries++;
	return 1;
}

/* Debian's inih keeps its options in globals; set them for our parse and restore them.
 * So cs_config_load() must not run concurrently with another inih parse in the process
 * (cachesvc is single-threaded; SIGHUP reloads run on the loop). */
struct ini_options {
	bool multiline, bom, inline_comments, use_stack, realloc_, stop_first, no_value;
	int max_line, initial_alloc;
	char *inline_prefixes, *start_prefixes;
};

static void ini_options_save(struct ini_options *o)
{
	o->multiline = ini_allow_multiline;
	o->bom = ini_allow_bom;
	o->inline_comments = ini_allow_inline_comments;
	o->use_stack = ini_use_stack;
	o->realloc_ = ini_allow_realloc;
	o->stop_first = ini_stop_on_first_error;
	o->no_value = ini_allow_no_value;
	o->max_line = ini_max_line;
	o->initial_alloc = ini_initial_alloc;
	o->inline_prefixes = ini_inline_comment_prefixes;
	o->start_prefixes = ini_start_comment_prefixes;
}

static void ini_options_restore(const struct ini_options *o)
{
	ini_allow_multiline = o->multiline;
	ini_allow_bom = o->bom;
	ini_allow_inline_comments = o->inline_comments;
	ini_use_stack = o->use_stack;
	ini_allow_realloc = o->realloc_;
	ini_stop_on_first_error = o->stop_first;
	ini_allow_no_value = o->no_value;
	ini_max_line = o->max_line;
	ini_initial_alloc = o->initial_alloc;
	ini_inline_comment_prefixes = o->inline_prefixes;
	ini_start_comment_prefixes = o->start_prefixes;
}

static void ini_options_set_ours(void)
{
	static char inline_prefixes[] = ";";
	static char start_prefixes[] = ";#";
	ini_allow_multiline = true;
	ini_allow_bom = false; /* load_file() strips it */
	ini_allow_inline_comments = true;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_stop_on_first_error = false;
	ini_allow_no_value = false;
	ini_max_line = MAX_LINE;
	ini_initial_alloc = 512;
	ini_inline_comment_prefixes = inline_prefixes;
	ini_start_comment_prefixes = start_prefixes;
}

static bool load_file(struct loader *ld)
{
	FILE *f = fopen(ld->path, "rb");
	if (!f) {
		fail_at(ld, 0, "cannot open: %s", strerror(errno));
		return false;
	}
	size_t cap = 0, len = 0;
	char *text = NULL;
	for (;;) {
		if (len == cap) {
			if (cap >= MAX_FILE) {
				fail_at(ld, 0, "larger than %u bytes", MAX_FILE);
				break;
			}
			cap = cap ? cap * 2 : 8192;
			char *p = realloc(text, cap + 1);
			if (!p) {
				fail_at(ld, 0, "out of memory");
				break;
			}
			text = p;
		}
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				fail_at(ld, 0, "read error: %s", strerror(errno));
			break;
		}
	}
	fclose(f);
	if (ld->failed) {
		free(text);
		return false;
	}
	if (!text) {
		text = malloc(1);
		if (!text) {
			fail_at(ld, 0, "out of memory");
			return false;
		}
	}
	text[len] = '\0';
	ld->text = text;
	ld->len = len;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		ld->pos = 3;
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		int line = 1;
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		fail_at(ld, line, "NUL byte (not a text file?)");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------------------------------
 * Applying values
 * ---------------------------------------------------------------------------------------- */

/* Parses `v` as kd's type into base + kd->offset. False with the reason in why. */
static bool parse_key_value(
        const struct key_def *kd, const char *v, void *base, char *why, size_t whylen)
{
	void *field = field_at(base, kd);
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
		if (!parse_int64(v, &i64)) {
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
		if (!parse_percent(v, &i64)) {
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
			snprintf(why, whylen, "%s out of range", quote_value(v, qv, sizeof(qv)));
			return false;
		}
		i64 = (int64_t)u64;
		goto range;
	case KT_DOUBLE:
		if (!parse_double(v, &d)) {
			what = "number";
			break;
		}
		if (d < (double)kd->min || d > (double)kd->max) {
			snprintf(why, whylen, "%s out of range %" PRId64 "..%" PRId64,
			        quote_value(v, qv, sizeof(qv)), kd->min, kd->max);
			return false;
		}
		*(double *)field = d;
		return true;
	case KT_BOOL:
		if (!parse_bool(v, field)) {
			what = "boolean";
			hint = " (true/false, yes/no, on/off, 1/0)";
			break;
		}
		return true;
	case KT_KIND:
		for (int i = 0; i < 3; i++) {
			if (strcasecmp(v, kind_names[i]) == 0) {
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
			if (!copy_collapsed(s, n, word, sizeof(word)) || !cs_tier_parse(word, &t)) {
				snprintf(why, whylen,
				        "bad tier list %s (comma list of critical, default, batch)",
				        quote_value(v, qv, sizeof(qv)));
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
		return parse_params(v, base, why, whylen);
	case KT_INVALIDATE:
		return parse_invalidate_on(v, base, why, whylen);
	}
	if (what) {
		snprintf(why, whylen, "bad %s %s%s", what, quote_value(v, qv, sizeof(qv)), hint);
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
		snprintf(why, whylen, "%s out of range %s..%s", quote_value(v, qv, sizeof(qv)), lo,
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

/* Applies the text defaults of every key of `kind` to base (the built-in table cannot fail
 * except for lack of memory). */
static bool apply_defaults(enum section_kind kind, void *base, char *why, size_t whylen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (kd->section != kind || kd->def == NULL)
			continue;
		if (!parse_key_value(kd, kd->def, base, why, whylen))
			return false;
	}
	return true;
}

static const struct key_def *find_key(enum section_kind kind, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (key_table[i].section == kind && strcasecmp(key_table[i].name, name) == 0)
			return &key_table[i];
	}
	return NULL;
}

static const struct raw_entry *find_entry(const struct raw_section *sec, const char *key)
{
	for (int i = 0; i < sec->nentries; i++) {
		if (strcasecmp(sec->entries[i].key, key) == 0)
			return &sec->entries[i];
	}
	return NULL;
}

static void format_duration(int64_t ms, char *buf, size_t len);

/* Fills the kind-dependent defaults of a query for the keys not set in the file. */
static bool apply_kind_defaults(cs_query_def *q, uint64_t set, char *why, size_t whylen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (kd->section != SEC_QUERY || !kd->kind_def[q->kind] || (set & (1ull << i)))
			continue;
		const char *def = kd->kind_def[q->kind];
		if (strcmp(def, "$ttl") == 0)
			*(int64_t *)field_at(q, kd) = q->ttl_ms;
		else if (strcmp(def, "$ttl+swr") == 0)
			*(int64_t *)field_at(q, kd) = q->ttl_ms + q->stale_while_revalidate_ms;
		else if (!parse_key_value(kd, def, q, why, whylen))
			return false;
	}
	return true;
}

static void query_free(cs_query_def *q)
{
	free(q->sql);
	query_inval_free(q);
}

static void replica_free(cs_replica_def *r)
{
	free(r->conninfo);
}

/* Checks what spans several keys of one query. */
static bool validate_query(struct loader *ld, const struct raw_section *sec, cs_query_def *q)
{
	char label[100], why[CS_CONFIG_ERRLEN];
	section_label(sec, label, sizeof(label));
	const struct raw_entry *e = find_entry(sec, "sql");
	uint64_t highest, used;
	if (!scan_placeholders(q->sql, &highest, &used, why, sizeof(why))) {
		fail_at(ld, e->lineno, "%s sql: %s", label, why);
		return false;
	}
	if (highest != (uint64_t)q->nparams) {
		const struct raw_entry *pe = find_entry(sec, "params");
		if (highest > (uint64_t)q->nparams)
			fail_at(ld, pe ? pe->lineno : e->lineno,
			        "%s params: sql uses $%" PRIu64
			        " but params declares %d parameter%s",
			        label, highest, q->nparams, q->nparams == 1 ? "" : "s");
		else
			fail_at(ld, pe ? pe->lineno : e->lineno,
			        "%s params: %d parameter%s declared but sql uses only up to "
			        "$%" PRIu64,
			        label, q->nparams, q->nparams == 1 ? "" : "s", highest);
		return false;
	}
	for (int i = 0; i < q->nparams; i++) {
		if (!(used & (1ull << i))) {
			fail_at(ld, e->lineno, "%s sql: $%d (%s) is never used", label, i + 1,
			        q->params[i].name);
			return false;
		}
	}
	if (q->max_stale_ms < q->ttl_ms + q->stale_while_revalidate_ms) {
		const struct raw_entry *me = find_entry(sec, "max_stale");
		char a[32], b[32];
		format_duration(q->max_stale_ms, a, sizeof(a));
		format_duration(q->ttl_ms + q->stale_while_revalidate_ms, b, sizeof(b));
		fail_at(ld, me ? me->lineno : sec->lineno,
		        "%s max_stale: %s is less than ttl + stale_while_revalidate (%s)", label, a,
		        b);
		return false;
	}
	return true;
}

/* Applies one raw section to cfg: creates the replica/query, sets every key in table order
 * (kind before policies, params before invalidate_on), fills defaults. */
static bool apply_section(struct loader *ld, cs_config *cfg, const struct raw_section *sec)
{
	char label[100], why[CS_CONFIG_ERRLEN];
	section_label(sec, label, sizeof(label));
	for (int i = 0; i < sec->nentries; i++) {
		const struct raw_entry *e = &sec->entries[i];
		if (find_key(sec->kind, e->key))
			continue;
		for (int k = 0; k < SEC__COUNT; k++) {
			if (find_key((enum section_kind)k, e->key)) {
				fail_at(ld, e->lineno,
				        "%s %s: unknown key here (it belongs in [%s%s])", label,
				        e->key, section_defs[k].name,
				        section_defs[k].named ? " NAME" : "");
				return false;
			}
		}
		fail_at(ld, e->lineno, "%s %s: unknown key", label, e->key);
		return false;
	}

	void *base = cfg;
	if (sec->kind == SEC_REPLICA) {
		if (cfg->nreplicas >= CS_MAX_REPLICAS) {
			fail_at(ld, sec->lineno, "[replica %s]: too many replicas (at most %d)", sec->name,
			        CS_MAX_REPLICAS);
			return false;
		}
		if (!grow_array((void **)&cfg->replicas, &ld->replicas_cap, cfg->nreplicas + 1,
		            sizeof(*cfg->replicas))) {
			fail_at(ld, sec->lineno, "out of memory");
			return false;
		}
		cs_replica_def *r = &cfg->replicas[cfg->nreplicas++];
		memcpy(r->name, sec->name, sizeof(r->name));
		base = r;
	} else if (sec->kind == SEC_QUERY) {
		if (!grow_array((void **)&cfg->queries, &ld->queries_cap, cfg->nqueries + 1,
		            sizeof(*cfg->queries))) {
			fail_at(ld, sec->lineno, "out of memory");
			return false;
		}
		cs_query_def *q = &cfg->queries[cfg->nqueries++];
		memcpy(q->name, sec->name, sizeof(q->name));
		base = q;
	}
	if (base != cfg && !apply_defaults(sec->kind, base, why, sizeof(why))) {
		fail_at(ld, sec->lineno, "%s: %s", label, why);
		return false;
	}

	uint64_t set = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (kd->section != sec->kind)
			continue;
		const struct raw_entry *e = find_entry(sec, kd->name);
		if (!e) {
			if (kd->flags & KF_REQUIRED) {
				fail_at(ld, sec->lineno, "%s %s: required key missing", label,
				        kd->name);
				return false;
			}
			continue;
		}
		set |= 1ull << i;
		if (!parse_key_value(kd, e->value, base, why, sizeof(why))) {
			fail_at(ld, e->lineno, "%s %s: %s", label, kd->name, why);
			return false;
		}
	}
	if (sec->kind == SEC_QUERY) {
		cs_query_def *q = base;
		if (!apply_kind_defaults(q, set, why, sizeof(why))) {
			fail_at(ld, sec->lineno, "%s: %s", label, why);
			return false;
		}
		return validate_query(ld, sec, q);
	}
	return true;
}

/* Whether the host of a listen address ("host:port", "[v6]:port") is a loopback address
 * (127.0.0.0/8, ::1, ::ffff:127.x.y.z) or "localhost". Anything else, including names
 * (which the listener refuses anyway), may be reachable from other machines. */
static bool listen_is_loopback(const char *addr)
{
	char host[128];
	const char *start = addr, *end;
	if (addr[0] == '[') {
		start = addr + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(addr, ':');
	}
	if (end == NULL || (size_t)(end - start) >= sizeof(host))
		return false;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return strcmp(host, "localhost") == 0;
}

/* Checks that span sections. */
static bool validate_config(struct loader *ld, cs_config *cfg)
{
	const struct raw_section *svc = NULL;
	for (int i = 0; i < ld->nsecs; i++) {
		if (ld->secs[i].kind == SEC_SERVICE)
			svc = &ld->secs[i];
	}
	/* Issue 14: a client port reachable from other machines without a token lets anyone
	 * there read every cached query and INVALIDATE. That takes an explicit opt-in (a
	 * trusted network, or a firewall in front). The unix socket is guarded by its file
	 * mode, the admin endpoint (aggregate counters and health, no data, no writes, and no
	 * token to check) is exempt: Prometheus usually scrapes it from another host. */
	if (cfg->listen && cfg->auth_token == NULL && !cfg->allow_unauthenticated &&
	    !listen_is_loopback(cfg->listen)) {
		const struct raw_entry *e = svc ? find_entry(svc, "listen") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[cachesvc] listen: %s is not a loopback address and auth_token is unset: anyone "
		        "who can reach it could read every cached query and invalidate; set auth_token, "
		        "or allow_unauthenticated = on if the network is trusted",
		        cfg->listen);
		return false;
	}
	if (cfg->admin_token && cfg->auth_token && strcmp(cfg->admin_token, cfg->auth_token) == 0) {
		const struct raw_entry *e = svc ? find_entry(svc, "admin_token") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[cachesvc] admin_token: equals auth_token, so every client could run admin "
		        "operations; give it a value of its own, or leave it unset");
		return false;
	}
	const struct raw_section *inv = NULL;
	for (int i = 0; i < ld->nsecs; i++) {
		if (ld->secs[i].kind == SEC_INVALIDATOR)
			inv = &ld->secs[i];
	}
	if (cfg->primary_conninfo == NULL && cfg->nreplicas == 0) {
		fail_at(ld, 0, "no [primary] and no [replica NAME] section: nothing to read from");
		return false;
	}
	if (cfg->client_output_hard < cfg->client_output_soft ||
	    cfg->client_output_hard <= cfg->max_reply) {
		fail_at(ld, 0,
		        "[cachesvc] client_output_hard_limit: must be at least client_output_soft_limit "
		        "and above max_reply (a client waiting for one largest reply is within it)");
		return false;
	}
	if (cfg->inval_enabled && cfg->primary_conninfo == NULL) {
		const struct raw_entry *e = inv ? find_entry(inv, "enabled") : NULL;
		fail_at(ld, e ? e->lineno : 0,
		        "[invalidator] enabled: needs a [primary] section (the slot lives there)");
		return false;
	}
	return true;
}

static void loader_free(struct loader *ld)
{
	for (int i = 0; i < ld->nsecs; i++) {
		for (int j = 0; j < ld->secs[i].nentries; j++) {
			free(ld->secs[i].entries[j].key);
			free(ld->secs[i].entries[j].value);
		}
		free(ld->secs[i].entries);
	}
	free(ld->secs);
	free(ld->text);
}

cs_config *cs_config_load(const char *path, char errbuf[CS_CONFIG_ERRLEN])
{
	struct loader ld = {.path = path ? path : "(null)", .err = errbuf, .line_start = true};
	char why[CS_CONFIG_ERRLEN];
	errbuf[0] = '\0';
	if (path == NULL) {
		fail_at(&ld, 0, "no config file");
		return NULL;
	}
	if (!load_file(&ld)) {
		loader_free(&ld);
		return NULL;
	}

	struct ini_options saved;
	ini_options_save(&saved);
	ini_options_set_ours();
	int rc = ini_parse_stream(read_config_line, &ld, on_ini_value, &ld);
	ini_options_restore(&saved);
	if (rc == -2 && !ld.failed)
		fail_at(&ld, 0, "out of memory");
	if (rc > 0 && (!ld.failed || ld.err_line == 0 || rc < ld.err_line)) {
		/* inih found a line that is neither [section], key = value nor a continuation */
		ld.failed = false;
		fail_at(&ld, rc,
		        "syntax error (expected [section], key = value, or an indented "
		        "continuation line)");
	}
	if (ld.failed) {
		loader_free(&ld);
		return NULL;
	}

	cs_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(path))) {
		free(cfg);
		fail_at(&ld, 0, "out of memory");
		loader_free(&ld);
		return NULL;
	}
	for (int k = 0; k < SEC__COUNT; k++) {
		if (!section_defs[k].named &&
		        !apply_defaults((enum section_kind)k, cfg, why, sizeof(why))) {
			fail_at(&ld, 0, "%s", why);
			goto fail;
		}
	}
	for (int i = 0; i < ld.nsecs; i++) {
		if (!apply_section(&ld, cfg, &ld.secs[i]))
			goto fail;
	}
	if (!validate_config(&ld, cfg))
		goto fail;
	loader_free(&ld);
	return cfg;
fail:
	loader_free(&ld);
	cs_config_free(cfg);
	return NULL;
}

void cs_config_free(cs_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (kd->type == KT_STRING && !section_defs[kd->section].named)
			free(*(char **)field_at(cfg, kd));
	}
	for (int i = 0; i < cfg->nreplicas; i++)
		replica_free(&cfg->replicas[i]);
	for (int i = 0; i < cfg->nqueries; i++)
		query_free(&cfg->queries[i]);
	free(cfg->replicas);
	free(cfg->queries);
	free(cfg->path);
	free(cfg);
}

const cs_query_def *cs_config_query(const cs_config *cfg, const char *name, size_t len)
{
	if (!cfg || !name || len > CS_MAX_NAME)
		return NULL;
	for (int i = 0; i < cfg->nqueries; i++) {
		const cs_query_def *q = &cfg->queries[i];
		if (strncmp(q->name, name, len) == 0 && q->name[len] == '\0')
			return q;
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Show
 * ---------------------------------------------------------------------------------------- */

static void format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{DAY_MS, "d"}, {HOUR_MS, "h"}, {MIN_MS, "m"}, {SEC_MS, "s"}};
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRId64 "ms", ms);
}

static void format_size(uint64_t b, char *buf, size_t len)
{
	static const struct {
		unsigned shift;
		const char *unit;
	} units[] = {{40, "TB"}, {30, "GB"}, {20, "MB"}, {10, "kB"}};
	for (size_t i = 0; b && i < sizeof(units) / sizeof(units[0]); i++) {
		if ((b & ((1ull << units[i].shift) - 1)) == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", b >> units[i].shift, units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, b);
}

/* Writes an identifier so that parse_ident() reads it back unchanged. */
static void write_ident(FILE *out, const char *id)
{
	bool plain = (islower((unsigned char)id[0]) || id[0] == '_');
	for (const char *p = id; plain && *p; p++)
		plain = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
		        *p == '$';
	if (plain) {
		fputs(id, out);
		return;
	}
	fputc('"', out);
	for (const char *p = id; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

/* Writes a possibly multi-line value; continuation lines are indented. */
static void write_multiline(FILE *out, const char *v)
{
	for (; *v; v++) {
		fputc(*v, out);
		if (*v == '\n')
			fputs("    ", out);
	}
}

static void show_value(FILE *out, const struct key_def *kd, const void *base)
{
	const void *field = field_at_const(base, kd);
	char buf[1024];
	switch (kd->type) {
	case KT_STRING: {
		const char *s = *(char *const *)field;
		if (!s)
			return;
		if (kd->flags & KF_SECRET) {
			fputs("***", out);
		} else if (kd->flags & (KF_CONNINFO | KF_URL)) {
			/* masking adds at most 3 bytes per secret of at least 1 byte, plus " ***"
			 */
			size_t len = 4 * strlen(s) + 16;
			char *masked = malloc(len);
			if (!masked) {
				fputs("***", out);
				return;
			}
			if (kd->flags & KF_CONNINFO)
				cs_config_mask_conninfo(s, masked, len);
			else
				mask_redis_url(s, masked, len);
			write_multiline(out, masked);
			free(masked);
		} else {
			write_multiline(out, s);
		}
		return;
	}
	case KT_INT:
		fprintf(out, "%d", *(const int *)field);
		return;
	case KT_PERCENT:
		fprintf(out, "%d%%", *(const int *)field);
		return;
	case KT_BOOL:
		fputs(*(const bool *)field ? "true" : "false", out);
		return;
	case KT_DURATION:
		format_duration(*(const int64_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_SIZE32:
		format_size(*(const uint32_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_SIZE64:
		format_size(*(const uint64_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_DOUBLE: {
		double d = *(const double *)field;
		snprintf(buf, sizeof(buf), "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, sizeof(buf), "%.17g", d);
		fputs(buf, out);
		return;
	}
	case KT_KIND:
		fputs(kind_names[*(const cs_query_kind *)field], out);
		return;
	case KT_TIERS: {
		unsigned set = *(const unsigned *)field;
		const char *sep = "";
		for (int t = 0; t < CS_TIER_COUNT; t++) {
			if (set & (1u << t)) {
				fprintf(out, "%s%s", sep, tier_names[t]);
				sep = ", ";
			}
		}
		return;
	}
	case KT_PARAMS: {
		const cs_query_def *q = base;
		for (int i = 0; i < q->nparams; i++)
			fprintf(out, "%s%s:%s", i ? ", " : "", q->params[i].name,
			        cs_param_type_name(q->params[i].type));
		return;
	}
	case KT_INVALIDATE: {
		const cs_query_def *q = base;
		for (int i = 0; i < q->ninval; i++) {
			const cs_inval_rule *r = &q->inval[i];
			if (i)
				fputs(", ", out);
			write_ident(out, r->schema);
			fputc('.', out);
			write_ident(out, r->table);
			if (r->ncols == 0)
				continue;
			fputc('(', out);
			for (int c = 0; c < r->ncols; c++) {
				if (c)
					fputs(", ", out);
				write_ident(out, r->cols[c]);
				fprintf(out, " = $%d", r->param_index[c] + 1);
			}
			fputc(')', out);
		}
		return;
	}
	}
}

/* Calls cb(priv, section, key, value) for every key of one section, values as
 * --show-config prints them (secrets masked). */
typedef void show_cb(void *priv, const char *section, const char *key, const char *value);

static void each_section(enum section_kind kind, const char *name, const void *base,
        show_cb *cb, void *priv)
{
	char sec[160];
	if (name)
		snprintf(sec, sizeof sec, "%s %s", section_defs[kind].name, name);
	else
		snprintf(sec, sizeof sec, "%s", section_defs[kind].name);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (kd->section != kind)
			continue;
		char *val = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&val, &len);
		if (!mem) {
			cb(priv, sec, kd->name, NULL);
			continue;
		}
		show_value(mem, kd, base);
		fclose(mem);
		cb(priv, sec, kd->name, val ? val : "");
		free(val);
	}
}

void cs_config_each(const cs_config *cfg, show_cb *cb, void *priv)
{
	each_section(SEC_SERVICE, NULL, cfg, cb, priv);
	each_section(SEC_REDIS, NULL, cfg, cb, priv);
	if (cfg->primary_conninfo)
		each_section(SEC_PRIMARY, NULL, cfg, cb, priv);
	for (int i = 0; i < cfg->nreplicas; i++)
		each_section(SEC_REPLICA, cfg->replicas[i].name, &cfg->replicas[i], cb, priv);
	each_section(SEC_INVALIDATOR, NULL, cfg, cb, priv);
	for (int i = 0; i < cfg->nqueries; i++)
		each_section(SEC_QUERY, cfg->queries[i].name, &cfg->queries[i], cb, priv);
}

struct show_file {
	FILE *out;
	char last[160];
};

static void show_line(void *priv, const char *section, const char *key, const char *value)
{
	struct show_file *sf = priv;
	if (strcmp(sf->last, section) != 0) {
		fprintf(sf->out, "\n[%s]\n", section);
		snprintf(sf->last, sizeof sf->last, "%s", section);
	}
	if (value == NULL)
		fprintf(sf->out, "; %s: out of memory\n", key);
	else if (*value)
		fprintf(sf->out, "%s = %s\n", key, value);
	else
		fprintf(sf->out, "%s =\n", key);
}

void cs_config_show(const cs_config *cfg, FILE *out)
{
	fprintf(out,
	        "; cachesvc configuration loaded from %s (defaults included, secrets masked)\n",
	        cfg->path ? cfg->path : "(none)");
	struct show_file sf = { .out = out };
	cs_config_each(cfg, show_line, &sf);
}

/* ------------------------------------------------------------------------------------------
 * Reload
 * ---------------------------------------------------------------------------------------- */

/* Equality of one scalar key (params and invalidate_on only exist in reloadable [query]). */
static bool key_equal(const struct key_def *kd, const void *a, const void *b)
{
	const void *fa = field_at_const(a, kd), *fb = field_at_const(b, kd);
	switch (kd->type) {
	case KT_STRING:
		return streq_null(*(char *const *)fa, *(char *const *)fb);
	case KT_INT:
	case KT_PERCENT:
		return *(const int *)fa == *(const int *)fb;
	case KT_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case KT_DURATION:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	case KT_SIZE32:
		return *(const uint32_t *)fa == *(const uint32_t *)fb;
	case KT_SIZE64:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case KT_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case KT_KIND:
		return *(const cs_query_kind *)fa == *(const cs_query_kind *)fb;
	case KT_TIERS:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case KT_PARAMS:
	case KT_INVALIDATE:
		return true;
	}
	return false;
}

bool cs_config_reloadable(
        const cs_config *cur, const cs_config *next, char errbuf[CS_CONFIG_ERRLEN])
{
	errbuf[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *kd = &key_table[i];
		if (section_defs[kd->section].named || (kd->flags & KF_RELOAD))
			continue;
		if (!key_equal(kd, cur, next)) {
			snprintf(errbuf, CS_CONFIG_ERRLEN,
			        "[%s] %s changed; it cannot be reloaded (restart to apply)",
			        section_defs[kd->section].name, kd->name);
			return false;
		}
	}
	/* [replica NAME] sections may be added, removed or changed (conninfo, tier,
	 * pool_size): the engine keeps the pools of unchanged ones and drains the others
	 * (engine.c servers_reload). [primary] stays restart-only (checked above). */
	return true;
}
