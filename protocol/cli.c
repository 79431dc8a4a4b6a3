/* cli.c - cachesvc-cli: run GET/MGET/REFRESH/INVALIDATE/STATS/PING from a shell. */
#include "cachesvc-client.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exit codes (documented in --help). */
enum {
	EXIT_OK = 0,
	EXIT_SERVER_ERROR = 1, /* the server rejected a request (or an MGET item) */
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3, /* could not connect, or the connection was lost */
	EXIT_TIMEOUT = 4,
	EXIT_BAD_REPLY = 5, /* malformed reply, out of memory, other client errors */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: cachesvc-cli [OPTIONS] COMMAND [ARGS]\n"
	        "\n"
	        "Commands:\n"
	        "  get QUERY [PARAM ...]            read through the cache\n"
	        "  refresh QUERY [PARAM ...]        re-run the query and refill the cache\n"
	        "  mget QUERY [PARAM ...] [-- QUERY [PARAM ...]] ...\n"
	        "                                   several GETs in one request; \"--\" separates "
	        "them\n"
	        "  invalidate QUERY [PARAM ...]     drop one key; with no PARAM, the whole query\n"
	        "  stats                            server counters\n"
	        "  ping                             check the server answers\n"
	        "\n"
	        "PARAMs are sent as text and converted by the server to the query's declared\n"
	        "types; the word null sends SQL NULL (write \\null for the text \"null\"; one\n"
	        "leading backslash is always removed, so \\\\x sends \\x and \\-- sends --).\n"
	        "Table output shows control characters in text escaped (\\n, \\x01).\n"
	        "\n"
	        "Options (before COMMAND):\n"
	        "  -h HOST          numeric IPv4/IPv6 address (no DNS lookups), default 127.0.0.1\n"
	        "  -p PORT          default 6380\n"
	        "  -s SOCKET        unix socket path (overrides -h/-p)\n"
	        "  -t TIMEOUT_MS    connect and request timeout, default 5000\n"
	        "  --json           one JSON object per result instead of a table\n"
	        "  --tier T         critical | default | batch\n"
	        "  --lsn X/Y        read-your-writes: data at least as new as this LSN\n"
	        "  --bypass         skip the cache\n"
	        "  --token TOKEN    HELLO auth token (or set CACHESVC_TOKEN)\n"
	        "  --help           this text\n"
	        "\n"
	        "Exit status: 0 ok, 1 the server returned an error (for mget: any item),\n"
	        "2 usage error, 3 connection failed or lost, 4 timeout, 5 bad reply or other\n"
	        "client error. Errors are printed on stderr.\n");
}

typedef struct cli {
	bool json;
	int tier;
	uint64_t lsn;
	bool bypass;
} cli;

static int exit_for(int code)
{
	if (code == CS_CLIENT_E_TIMEOUT)
		return EXIT_TIMEOUT;
	if (code == CS_CLIENT_E_CONNECT || code == CS_CLIENT_E_CLOSED || code == CS_CLIENT_E_IO)
		return EXIT_CONNECT;
	if (code == CS_CLIENT_E_ARG)
		return EXIT_USAGE;
	if (code <= -1 && code >= -10)
		return EXIT_SERVER_ERROR;
	return EXIT_BAD_REPLY;
}

/* ---- Value formatting -------------------------------------------------------------------- */

/* A growable string. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void sb_put(sbuf *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 64;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *np = realloc(s->p, cap);
		if (np == NULL) {
			fputs("cachesvc-cli: out of memory\n", stderr);
			exit(EXIT_BAD_REPLY);
		}
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void fmt_float(sbuf *s, double f, bool json)
{
	if (isnan(f) || isinf(f)) {
		const char *t = isnan(f) ? "NaN" : f > 0 ? "Infinity" : "-Infinity";
		sb_printf(s, json ? "\"%s\"" : "%s", t);
		return;
	}
	char tmp[40];
	snprintf(tmp, sizeof tmp, "%.15g", f);
	if (strtod(tmp, NULL) != f)
		snprintf(tmp, sizeof tmp, "%.17g", f);
	sb_put(s, tmp, strlen(tmp));
}

/* ISO-8601 UTC: "2024-01-02T03:04:05.123456Z" (json) or "2024-01-02 03:04:05.123456". */
static void fmt_ts(sbuf *s, int64_t sec, uint32_t nsec, bool json, bool tz)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if ((int64_t)t != sec || gmtime_r(&t, &tm) == NULL) {
		sb_printf(s, json ? "\"@%" PRId64 ".%09u\"" : "@%" PRId64 ".%09u", sec, nsec);
		return;
	}
	char frac[16] = "";
	if (nsec % 1000 == 0 && nsec != 0)
		snprintf(frac, sizeof frac, ".%06u", nsec / 1000);
	else if (nsec != 0)
		snprintf(frac, sizeof frac, ".%09u", nsec);
	sb_printf(s, "%s%04d-%02d-%02d%c%02d:%02d:%02d%s%s%s", json ? "\"" : "", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, json ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec, frac,
	        json ? "Z"
	        : tz ? "+00"
	             : "",
	        json ? "\"" : "");
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string literal; invalid UTF-8 becomes U+FFFD. */
static void json_str(sbuf *s, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	sb_put(s, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char ch = u[i];
		if (ch == '"' || ch == '\\') {
			char esc[2] = {'\\', (char)ch};
			sb_put(s, esc, 2);
			i++;
		} else if (ch < 0x20) {
			static const char *const named[] = {['\b'] = "\\b",
			        ['\f'] = "\\f",
			        ['\n'] = "\\n",
			        ['\r'] = "\\r",
			        ['\t'] = "\\t"};
			if (ch < sizeof named / sizeof named[0] && named[ch])
				sb_put(s, named[ch], 2);
			else
				sb_printf(s, "\\u%04x", ch);
			i++;
		} else {
			size_t l = utf8_len(u + i, n - i);
			if (l == 0) {
				sb_put(s, "\\ufffd", 6);
				i++;
			} else {
				sb_put(s, p + i, l);
				i += l;
			}
		}
	}
	sb_put(s, "\"", 1);
}

/* Text for the table: control characters escaped so every row stays on one line. */
static void table_str(sbuf *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\n')
			sb_put(s, "\\n", 2);
		else if (ch == '\t')
			sb_put(s, "\\t", 2);
		else if (ch == '\r')
			sb_put(s, "\\r", 2);
		else if (ch < 0x20 || ch == 0x7f)
			sb_printf(s, "\\x%02x", ch);
		else
			sb_put(s, p + i, 1);
	}
}

static void fmt_value(sbuf *s, const cs_client_value *v, int coltype, bool json)
{
	switch (v->type) {
	case CS_CLIENT_V_NIL:
		if (json)
			sb_put(s, "null", 4);
		break;
	case CS_CLIENT_V_BOOL:
		if (json)
			sb_printf(s, "%s", v->u.b ? "true" : "false");
		else
			sb_put(s, v->u.b ? "t" : "f", 1);
		break;
	case CS_CLIENT_V_INT:
		sb_printf(s, "%" PRId64, v->u.i);
		break;
	case CS_CLIENT_V_FLOAT:
		fmt_float(s, v->u.f, json);
		break;
	case CS_CLIENT_V_STR:
		if (json)
			json_str(s, v->u.s.p, v->u.s.len);
		else
			table_str(s, v->u.s.p, v->u.s.len);
		break;
	case CS_CLIENT_V_BIN:
		sb_put(s, json ? "\"" : "\\x", json ? 1 : 2);
		for (uint32_t i = 0; i < v->u.s.len; i++)
			sb_printf(s, "%02x", (unsigned char)v->u.s.p[i]);
		if (json)
			sb_put(s, "\"", 1);
		break;
	case CS_CLIENT_V_TS:
		fmt_ts(s, v->u.ts.sec, v->u.ts.nsec, json, coltype != CS_CLIENT_COL_TIMESTAMP);
		break;
	default:
		sb_put(s, json ? "null" : "?", json ? 4 : 1);
		break;
	}
}

static const char *coltype_name(int t)
{
	static const char *const names[] = {"unknown", "bool", "int", "float", "text", "bytea",
	        "timestamp", "timestamptz", "numeric", "json", "other"};
	return t >= 1 && t <= 10 ? names[t] : "other";
}

static const char *source_name(int src)
{
	return src == CS_CLIENT_SRC_CACHE     ? "cache"
	       : src == CS_CLIENT_SRC_REPLICA ? "replica"
	                                      : "primary";
}

/* ---- Result printing --------------------------------------------------------------------- */

static size_t display_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void pad(size_t n)
{
	for (size_t i = 0; i < n; i++)
		putchar(' ');
}

static void print_table(const cs_client_result *r)
{
	uint32_t nc = cs_client_result_ncols(r), nr = cs_client_result_nrows(r);
	size_t ncells = (size_t)nc * nr;
	char **cells = calloc(ncells ? ncells : 1, sizeof *cells);
	size_t *width = calloc(nc ? nc : 1, sizeof *width);
	if (cells == NULL || width == NULL) {
		fputs("cachesvc-cli: out of memory\n", stderr);
		exit(EXIT_BAD_REPLY);
	}
	for (uint32_t c = 0; c < nc; c++)
		width[c] = display_width(cs_client_result_col_name(r, c));
	for (uint32_t i = 0; i < nr; i++)
		for (uint32_t c = 0; c < nc; c++) {
			cs_client_value v;
			sbuf s = {0};
			sb_put(&s, "", 0);
			if (cs_client_result_value(r, i, c, &v) == 0)
				fmt_value(&s, &v, cs_client_result_col_type(r, c), false);
			cells[(size_t)i * nc + c] = s.p;
			size_t w = display_width(s.p);
			if (w > width[c])
				width[c] = w;
		}
	for (uint32_t c = 0; c < nc; c++) {
		const char *name = cs_client_result_col_name(r, c);
		size_t w = display_width(name), left = (width[c] - w) / 2;
		printf("%s", c ? "|" : "");
		pad(1 + left);
		printf("%s", name);
		pad(width[c] - w - left + 1);
	}
	putchar('\n');
	for (uint32_t c = 0; c < nc; c++) {
		printf("%s", c ? "+" : "");
		for (size_t k = 0; k < width[c] + 2; k++)
			putchar('-');
	}
	if (nc)
		putchar('\n');
	for (uint32_t i = 0; i < nr; i++) {
		for (uint32_t c = 0; c < nc; c++) {
			const char *cell = cells[(size_t)i * nc + c];
			int t = cs_client_result_col_type(r, c);
			bool right = t == CS_CLIENT_COL_INT || t == CS_CLIENT_COL_FLOAT ||
			             t == CS_CLIENT_COL_NUMERIC;
			size_t w = display_width(cell);
			printf("%s ", c ? "|" : "");
			if (right)
				pad(width[c] - w);
			printf("%s", cell);
			if (!right)
				pad(width[c] - w);
			putchar(' ');
		}
		putchar('\n');
	}
	printf("(%u row%s)\n", nr, nr == 1 ? "" : "s");
	char lsn[CS_CLIENT_LSN_STRLEN];
	int stored = cs_client_result_stored(r);
	const char *stored_note = ""; /* only when the server said */
	if (stored >= 0)
		stored_note = stored ? "  stored: yes" : "  stored: no";
	printf("source: %s  lsn: %s  age: %" PRIu64 " ms%s%s\n",
	        source_name(cs_client_result_source(r)),
	        cs_client_lsn_format(cs_client_result_lsn(r), lsn), cs_client_result_age_ms(r),
	        cs_client_result_stale(r) ? "  (stale)" : "", stored_note);
	for (size_t k = 0; k < ncells; k++)
		free(cells[k]);
	free(cells);
	free(width);
}

static void print_json(const cs_client_result *r)
{
	sbuf s = {0};
	char lsn[CS_CLIENT_LSN_STRLEN];
	uint32_t nc = cs_client_result_ncols(r), nr = cs_client_result_nrows(r);
	sb_printf(&s, "{\"source\":\"%s\",\"lsn\":\"%s\",\"age_ms\":%" PRIu64 ",\"stale\":%s,",
	        source_name(cs_client_result_source(r)),
	        cs_client_lsn_format(cs_client_result_lsn(r), lsn), cs_client_result_age_ms(r),
	        cs_client_result_stale(r) ? "true" : "false");
	int stored = cs_client_result_stored(r);
	if (stored >= 0) /* only when the server said */
		sb_printf(&s, "\"stored\":%s,", stored ? "true" : "false");
	sb_put(&s, "\"columns\":[", 11);
	for (uint32_t c = 0; c < nc; c++) {
		const char *name = cs_client_result_col_name(r, c);
		sb_put(&s, c ? ",{\"name\":" : "{\"name\":", c ? 9 : 8);
		json_str(&s, name, strlen(name));
		sb_printf(&s, ",\"type\":\"%s\"}", coltype_name(cs_client_result_col_type(r, c)));
	}
	sb_put(&s, "],\"rows\":[", 10);
	for (uint32_t i = 0; i < nr; i++) {
		sb_put(&s, i ? ",[" : "[", i ? 2 : 1);
		for (uint32_t c = 0; c < nc; c++) {
			cs_client_value v;
			if (c)
				sb_put(&s, ",", 1);
			if (cs_client_result_value(r, i, c, &v) == 0)
				fmt_value(&s, &v, cs_client_result_col_type(r, c), true);
		}
		sb_put(&s, "]", 1);
	}
	sb_put(&s, "]}", 2);
	puts(s.p);
	free(s.p);
}

/* Prints one result or item error; returns the exit code it warrants. */
static int print_result(const cli *o, const cs_client_result *r)
{
	const char *msg;
	int code = cs_client_result_err(r, &msg);
	if (code != 0) {
		fprintf(stderr, "cachesvc-cli: %s: %s\n", cs_client_strerror(code), msg);
		if (o->json) {
			sbuf s = {0};
			sb_printf(&s, "{\"error\":\"%s\",\"code\":%d,\"message\":",
			        cs_client_strerror(code), -code);
			json_str(&s, msg, strlen(msg));
			sb_put(&s, "}", 1);
			puts(s.p);
			free(s.p);
		}
		return EXIT_SERVER_ERROR;
	}
	if (o->json)
		print_json(r);
	else
		print_table(r);
	return EXIT_OK;
}

/* ---- Commands ---------------------------------------------------------------------------- */

static cs_client_value param(const char *arg)
{
	if (strcmp(arg, "null") == 0)
		return cs_client_nil();
	if (arg[0] == '\\')
		arg++;
	return cs_client_text(arg);
}

/* Fills a request from argv[0] (query) and the params up to "--" or the end; returns the
 * number of arguments consumed (not counting a trailing "--"). */
static int build_request(
        const cli *o, int argc, char **argv, cs_client_request *req, cs_client_value *params)
{
	int n = 1;
	memset(req, 0, sizeof *req);
	req->query = argv[0];
	req->tier = o->tier;
	req->min_lsn = o->lsn;
	req->bypass = o->bypass;
	req->params = params;
	while (n < argc && strcmp(argv[n], "--") != 0) {
		if (req->nparams == 16) {
			fprintf(stderr, "cachesvc-cli: at most 16 parameters per query\n");
			exit(EXIT_USAGE);
		}
		params[req->nparams++] = param(argv[n]);
		n++;
	}
	return n;
}

static int client_error(cs_client *c, int rc)
{
	fprintf(stderr, "cachesvc-cli: %s\n", cs_client_errstr(c));
	return exit_for(rc);
}

static int cmd_get(cs_client *c, const cli *o, int argc, char **argv, bool refresh)
{
	cs_client_request req;
	cs_client_value params[16];
	cs_client_result *r;
	if (argc < 1 || build_request(o, argc, argv, &req, params) != argc) {
		fprintf(stderr, "cachesvc-cli: usage: %s QUERY [PARAM ...]\n",
		        refresh ? "refresh" : "get");
		return EXIT_USAGE;
	}
	int rc = refresh ? cs_client_refresh(c, &req, &r) : cs_client_get(c, &req, &r);
	if (rc != 0)
		return client_error(c, rc);
	rc = print_result(o, r);
	cs_client_result_free(r);
	return rc;
}

static int cmd_mget(cs_client *c, const cli *o, int argc, char **argv)
{
	static cs_client_request reqs[256];
	static cs_client_value params[256][16];
	cs_client_result *out[256];
	uint32_t n = 0;
	int i = 0;
	while (i < argc) {
		if (n == 256) {
			fprintf(stderr, "cachesvc-cli: at most 256 queries per mget\n");
			return EXIT_USAGE;
		}
		if (strcmp(argv[i], "--") == 0) {
			fprintf(stderr, "cachesvc-cli: empty query between \"--\"\n");
			return EXIT_USAGE;
		}
		i += build_request(o, argc - i, argv + i, &reqs[n], params[n]);
		n++;
		if (i < argc) /* skip the "--" */
			i++;
	}
	if (n == 0) {
		fprintf(stderr, "cachesvc-cli: usage: mget QUERY [PARAM ...] [-- QUERY ...]\n");
		return EXIT_USAGE;
	}
	int rc = cs_client_mget(c, reqs, n, out);
	if (rc != 0)
		return client_error(c, rc);
	int status = EXIT_OK;
	for (uint32_t k = 0; k < n; k++) {
		if (!o->json && k > 0)
			putchar('\n');
		if (print_result(o, out[k]) != EXIT_OK)
			status = EXIT_SERVER_ERROR;
		cs_client_result_free(out[k]);
	}
	return status;
}

static int cmd_invalidate(cs_client *c, const cli *o, int argc, char **argv)
{
	cs_client_request req;
	cs_client_value params[16];
	if (argc < 1 || build_request(o, argc, argv, &req, params) != argc) {
		fprintf(stderr, "cachesvc-cli: usage: invalidate QUERY [PARAM ...]\n");
		return EXIT_USAGE;
	}
	uint64_t n;
	bool whole = req.nparams == 0;
	int rc = whole ? cs_client_invalidate_query(c, req.query, &n)
	               : cs_client_invalidate_key(c, req.query, req.params, req.nparams, &n);
	if (rc != 0)
		return client_error(c, rc);
	if (o->json)
		printf("{\"%s\":%" PRIu64 "}\n", whole ? "generation" : "deleted", n);
	else
		printf("%s: %" PRIu64 "\n", whole ? "generation" : "deleted", n);
	return EXIT_OK;
}

static int cmd_stats(cs_client *c, const cli *o)
{
	cs_client_stat *st;
	uint32_t n;
	int rc = cs_client_stats(c, &st, &n);
	if (rc != 0)
		return client_error(c, rc);
	sbuf s = {0};
	sb_put(&s, o->json ? "{" : "", o->json ? 1 : 0);
	for (uint32_t i = 0; i < n; i++) {
		if (o->json) {
			if (i)
				sb_put(&s, ",", 1);
			json_str(&s, st[i].name, strlen(st[i].name));
			sb_put(&s, ":", 1);
		} else {
			sb_printf(&s, "%s ", st[i].name);
		}
		if (st[i].is_float)
			fmt_float(&s, st[i].f, o->json);
		else
			sb_printf(&s, "%" PRId64, st[i].i);
		if (!o->json)
			sb_put(&s, "\n", 1);
	}
	if (o->json)
		sb_put(&s, "}\n", 2);
	fputs(s.p, stdout);
	free(s.p);
	cs_client_stats_free(st);
	return EXIT_OK;
}

static int cmd_ping(cs_client *c, const cli *o)
{
	int rc = cs_client_ping(c);
	if (rc != 0)
		return client_error(c, rc);
	puts(o->json ? "{\"ok\":true}" : "PONG");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"tier", required_argument, NULL, 'T'},
	        {"lsn", required_argument, NULL, 'L'},
	        {"bypass", no_argument, NULL, 'B'},
	        {"token", required_argument, NULL, 'K'},
	        {"help", no_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	cs_client_options opt = {0};
	cli o = {false, CS_CLIENT_TIER_DEFAULT, 0, false};
	opt.client_name = "cachesvc-cli";
	opt.token = getenv("CACHESVC_TOKEN");
	int ch;
	char *end;
	long v;
	/* "+": stop at the command, so parameters such as -5 are not taken as options. */
	while ((ch = getopt_long(argc, argv, "+h:p:s:t:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 65535) {
				fprintf(stderr, "cachesvc-cli: bad port \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			opt.port = (uint16_t)v;
			break;
		case 's':
			opt.unix_path = optarg;
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 3600000) {
				fprintf(stderr, "cachesvc-cli: bad timeout \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			opt.timeout_ms = opt.connect_timeout_ms = (int)v;
			break;
		case 'j':
			o.json = true;
			break;
		case 'T':
			if (strcmp(optarg, "critical") == 0)
				o.tier = CS_CLIENT_TIER_CRITICAL;
			else if (strcmp(optarg, "default") == 0)
				o.tier = CS_CLIENT_TIER_DEFAULT;
			else if (strcmp(optarg, "batch") == 0)
				o.tier = CS_CLIENT_TIER_BATCH;
			else {
				fprintf(stderr,
				        "cachesvc-cli: tier must be critical, default or batch\n");
				return EXIT_USAGE;
			}
			break;
		case 'L':
			if (cs_client_lsn_parse(optarg, &o.lsn) != 0) {
				fprintf(stderr, "cachesvc-cli: bad LSN \"%s\" (want X/Y, hex)\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case 'B':
			o.bypass = true;
			break;
		case 'K':
			opt.token = optarg;
			break;
		case 'H':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind];
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	static const char *const cmds[] = {
	        "get", "refresh", "mget", "invalidate", "stats", "ping", NULL};
	int k;
	for (k = 0; cmds[k] && strcmp(cmds[k], cmd) != 0; k++)
		;
	if (cmds[k] == NULL) {
		fprintf(stderr, "cachesvc-cli: unknown command \"%s\" (see --help)\n", cmd);
		return EXIT_USAGE;
	}
	if ((k >= 4 && nargs != 0)) {
		fprintf(stderr, "cachesvc-cli: %s takes no arguments\n", cmd);
		return EXIT_USAGE;
	}
	cs_client *c = cs_client_connect(&opt);
	if (c == NULL) {
		fputs("cachesvc-cli: out of memory\n", stderr);
		return EXIT_BAD_REPLY;
	}
	int rc = cs_client_err(c);
	if (rc != 0) {
		fprintf(stderr, "cachesvc-cli: %s\n", cs_client_errstr(c));
		cs_client_free(c);
		return rc == CS_CLIENT_E_ARG   ? EXIT_USAGE
		       : rc <= -1 && rc >= -10 ? EXIT_SERVER_ERROR
		                               : EXIT_CONNECT;
	}
	switch (k) {
	case 0:
	case 1:
		rc = cmd_get(c, &o, nargs, args, k == 1);
		break;
	case 2:
		rc = cmd_mget(c, &o, nargs, args);
		break;
	case 3:
		rc = cmd_invalidate(c, &o, nargs, args);
		break;
	case 4:
		rc = cmd_stats(c, &o);
		break;
	default:
		rc = cmd_ping(c, &o);
		break;
	}
	cs_client_free(c);
	return rc;
}
