/* cli.c - cachesvc-cli: run GET/MGET/REFRESH/INVALIDATE/STATS/PING from a shell. */
#include "cachesvc-client.h"
#include "json.h"
#include "sbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#ifndef CS_VERSION
#define CS_VERSION "unknown"
#endif

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
	        "Usage: cachesvc-cli [OPTIONS] [COMMAND [ARGS]]\n"
	        "\n"
	        "Commands (with no COMMAND on a terminal: an interactive prompt):\n"
	        "  get QUERY [PARAM ...]            read through the cache\n"
	        "  refresh QUERY [PARAM ...]        re-run the query and refill the cache\n"
	        "  mget QUERY [PARAM ...] [QUERY [PARAM ...]] ...\n"
	        "                                   several GETs in one request; a new item starts\n"
	        "                                   at \"--\" or at a word naming a query already\n"
	        "                                   given in this mget (escape such a PARAM as \\WORD)\n"
	        "  mget --each QUERY PARAM ...      one GET of QUERY per PARAM\n"
	        "  invalidate QUERY [PARAM ...]     drop one key; with no PARAM, the whole query\n"
	        "  stats                            server counters\n"
	        "  show [VIEW]                      a view: queries, servers, clients, invalidator,\n"
	        "                                   config, slots (a table, or with --json one object\n"
	        "                                   per row); with no VIEW, lists the views\n"
	        "  ping                             check the server answers\n"
	        "  pause QUERY                      admin: serve QUERY from PostgreSQL, caching\n"
	        "                                   nothing, until resume (this server only)\n"
	        "  resume QUERY                     admin: serve QUERY from the cache again\n"
	        "  claim QUERY                      admin: this server's definition of QUERY takes\n"
	        "                                   its cache over from another's (a new generation)\n"
	        "  reload                           admin: reload the config file (checked as on\n"
	        "                                   SIGHUP); exit status 1 when refused\n"
	        "\n"
	        "PARAMs are sent as text and converted by the server to the query's declared\n"
	        "types; the word null sends SQL NULL (write \\null for the text \"null\"; one\n"
	        "leading backslash is always removed, so \\\\x sends \\x and \\-- sends --).\n"
	        "Table output shows control characters in text escaped (\\n, \\x01).\n"
	        "\n"
	        "Options (before COMMAND):\n"
	        "  -h HOST          host name or address, default 127.0.0.1 (every address the\n"
	        "                   name resolves to is tried in turn)\n"
	        "  -p PORT          default 6380\n"
	        "  -s SOCKET        unix socket path (overrides -h/-p)\n"
	        "  -u URL           cachesvc://[TOKEN@]HOST[:PORT] or unix://[TOKEN@]/PATH\n"
	        "  -t TIMEOUT_MS    connect and request timeout, default 5000\n"
	        "  --json           one JSON object per result instead of a table; integers\n"
	        "                   beyond +-2^53 are written as strings (exact in every parser)\n"
	        "  --json-int MODE  string (default) or number: how --json writes such integers\n"
	        "  --tier T         critical | default | batch\n"
	        "  --lsn TOKEN      read-your-writes: data at least as new as this LSN: X/Y, or\n"
	        "                   SHARD:X/Y for a shard's (a sharded origin; s1:0/16B3748)\n"
	        "  --bypass         skip the cache\n"
	        "  --token TOKEN    HELLO auth token (or set CACHESVC_TOKEN); the admin token for\n"
	        "                   invalidate, show, pause, resume, claim and reload when one\n"
	        "                   is set\n"
	        "  -r, --repeat N   run COMMAND N times (-1: until interrupted)\n"
	        "  -i, --interval S seconds between repeats (decimals allowed), default 0\n"
	        "  --latency        measure round trips (PING) until interrupted or --repeat N\n"
	        "                   samples; prints min/avg/max/p99 in ms\n"
	        "  --version        print the version\n"
	        "  --help           this text\n"
	        "\n"
	        "Exit status: 0 ok, 1 the server returned an error (for mget: any item),\n"
	        "2 usage error, 3 connection failed or lost, 4 timeout, 5 bad reply or other\n"
	        "client error. Errors are printed on stderr. With --repeat, the worst status.\n");
}

typedef struct cli {
	bool json;
	bool json_int_number; /* --json-int number: big integers as bare numbers */
	int tier;
	uint64_t lsn;
	char shard[CS_CLIENT_SHARD_MAX + 1]; /* of the --lsn token; "" = none */
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
	if (code <= -1 && code >= CS_CLIENT_E_NO_SHARD)
		return EXIT_SERVER_ERROR;
	return EXIT_BAD_REPLY;
}

/* ---- Value formatting -------------------------------------------------------------------- */

/* The text of s, or exit: out of memory. */
static char *sb_text(cs_sb *s)
{
	char *t = cs_sb_take(s);
	if (t == NULL) {
		fputs("cachesvc-cli: out of memory\n", stderr);
		exit(EXIT_BAD_REPLY);
	}
	return t;
}

/* Prints s and a newline, or exits: out of memory. */
static void sb_puts(cs_sb *s)
{
	if (cs_sb_puts(s, stdout) != 0) {
		fputs("cachesvc-cli: out of memory\n", stderr);
		exit(EXIT_BAD_REPLY);
	}
}

/* ISO-8601 UTC: "2024-01-02T03:04:05.123456Z" (json) or "2024-01-02 03:04:05.123456". */
static void fmt_ts(cs_sb *s, int64_t sec, uint32_t nsec, bool json, bool tz)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if ((int64_t)t != sec || gmtime_r(&t, &tm) == NULL) {
		cs_sb_printf(s, json ? "\"@%" PRId64 ".%09u\"" : "@%" PRId64 ".%09u", sec, nsec);
		return;
	}
	char frac[16] = "";
	if (nsec % 1000 == 0 && nsec != 0)
		snprintf(frac, sizeof frac, ".%06u", nsec / 1000);
	else if (nsec != 0)
		snprintf(frac, sizeof frac, ".%09u", nsec);
	cs_sb_printf(s, "%s%04d-%02d-%02d%c%02d:%02d:%02d%s%s%s", json ? "\"" : "", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, json ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec, frac,
	        json ? "Z"
	        : tz ? "+00"
	             : "",
	        json ? "\"" : "");
}

/* Text for the table: control characters escaped so every row stays on one line. */
static void table_str(cs_sb *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\n')
			cs_sb_put(s, "\\n", 2);
		else if (ch == '\t')
			cs_sb_put(s, "\\t", 2);
		else if (ch == '\r')
			cs_sb_put(s, "\\r", 2);
		else if (ch < 0x20 || ch == 0x7f)
			cs_sb_printf(s, "\\x%02x", ch);
		else
			cs_sb_put(s, p + i, 1);
	}
}

static bool json_int_number; /* --json-int number */

/* A value as table text. */
static void fmt_value(cs_sb *s, const cs_client_value *v, int coltype)
{
	switch (v->type) {
	case CS_CLIENT_V_NIL:
		break;
	case CS_CLIENT_V_BOOL:
		cs_sb_put(s, v->u.b ? "t" : "f", 1);
		break;
	case CS_CLIENT_V_INT:
		cs_sb_printf(s, "%" PRId64, v->u.i);
		break;
	case CS_CLIENT_V_FLOAT:
		cs_fmt_double(s, v->u.f);
		break;
	case CS_CLIENT_V_STR:
		table_str(s, v->u.s.p, v->u.s.len);
		break;
	case CS_CLIENT_V_BIN:
		cs_sb_put(s, "\\x", 2);
		for (uint32_t i = 0; i < v->u.s.len; i++)
			cs_sb_printf(s, "%02x", (unsigned char)v->u.s.p[i]);
		break;
	case CS_CLIENT_V_TS:
		fmt_ts(s, v->u.ts.sec, v->u.ts.nsec, false, coltype != CS_CLIENT_COL_TIMESTAMP);
		break;
	default:
		cs_sb_put(s, "?", 1);
		break;
	}
}

/* A value as JSON: bytea as a hex string, timestamps as ISO-8601 strings. */
static void json_value(cs_json *j, const cs_client_value *v)
{
	switch (v->type) {
	case CS_CLIENT_V_BOOL:
		cs_json_bool(j, v->u.b);
		break;
	case CS_CLIENT_V_INT:
		cs_json_int(j, v->u.i);
		break;
	case CS_CLIENT_V_FLOAT:
		cs_json_double(j, v->u.f);
		break;
	case CS_CLIENT_V_STR:
		cs_json_strn(j, v->u.s.p, v->u.s.len);
		break;
	case CS_CLIENT_V_BIN:
		cs_json_value(j);
		cs_sb_put(j->sb, "\"", 1);
		for (uint32_t i = 0; i < v->u.s.len; i++)
			cs_sb_printf(j->sb, "%02x", (unsigned char)v->u.s.p[i]);
		cs_sb_put(j->sb, "\"", 1);
		break;
	case CS_CLIENT_V_TS:
		cs_json_value(j);
		fmt_ts(j->sb, v->u.ts.sec, v->u.ts.nsec, true, true);
		break;
	default: /* nil, and types this cli does not know */
		cs_json_null(j);
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
			cs_sb s = CS_SB_INIT;
			if (cs_client_result_value(r, i, c, &v) == 0)
				fmt_value(&s, &v, cs_client_result_col_type(r, c));
			cells[(size_t)i * nc + c] = sb_text(&s);
			size_t w = display_width(cells[(size_t)i * nc + c]);
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
	cs_sb s = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &s, !json_int_number);
	char lsn[CS_CLIENT_LSN_STRLEN];
	uint32_t nc = cs_client_result_ncols(r), nr = cs_client_result_nrows(r);
	cs_json_object(&j);
	cs_json_kv_str(&j, "source", source_name(cs_client_result_source(r)));
	cs_json_kv_str(&j, "lsn", cs_client_lsn_format(cs_client_result_lsn(r), lsn));
	cs_json_kv_uint(&j, "age_ms", cs_client_result_age_ms(r));
	cs_json_kv_bool(&j, "stale", cs_client_result_stale(r));
	int stored = cs_client_result_stored(r);
	if (stored >= 0) { /* only when the server said */
		cs_json_kv_bool(&j, "stored", stored);
	}
	cs_json_key(&j, "columns");
	cs_json_array(&j);
	for (uint32_t c = 0; c < nc; c++) {
		cs_json_object(&j);
		cs_json_kv_str(&j, "name", cs_client_result_col_name(r, c));
		cs_json_kv_str(&j, "type", coltype_name(cs_client_result_col_type(r, c)));
		cs_json_object_end(&j);
	}
	cs_json_array_end(&j);
	cs_json_key(&j, "rows");
	cs_json_array(&j);
	for (uint32_t i = 0; i < nr; i++) {
		cs_json_array(&j);
		for (uint32_t c = 0; c < nc; c++) {
			cs_client_value v;
			if (cs_client_result_value(r, i, c, &v) == 0)
				json_value(&j, &v);
			else
				cs_json_null(&j);
		}
		cs_json_array_end(&j);
	}
	cs_json_array_end(&j);
	cs_json_object_end(&j);
	sb_puts(&s);
}

/* Prints one result or item error; returns the exit code it warrants. */
static int print_result(const cli *o, const cs_client_result *r)
{
	const char *msg;
	int code = cs_client_result_err(r, &msg);
	if (code != 0) {
		fprintf(stderr, "cachesvc-cli: %s: %s\n", cs_client_strerror(code), msg);
		if (o->json) {
			cs_sb s = CS_SB_INIT;
			cs_json j;
			cs_json_init(&j, &s, false);
			cs_json_object(&j);
			cs_json_kv_str(&j, "error", cs_client_strerror(code));
			cs_json_kv_int(&j, "code", -code);
			cs_json_kv_str(&j, "message", msg);
			cs_json_object_end(&j);
			sb_puts(&s);
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
	req->shard = o->shard;
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

/* True when word names a query already given in this mget: it starts a new item. */
static bool names_query(const cs_client_request *reqs, uint32_t n, const char *word)
{
	for (uint32_t k = 0; k < n; k++)
		if (strcmp(reqs[k].query, word) == 0)
			return true;
	return false;
}

static int cmd_mget(cs_client *c, const cli *o, int argc, char **argv)
{
	static cs_client_request reqs[256];
	static cs_client_value params[256][16];
	cs_client_result *out[256];
	uint32_t n = 0;
	bool each = argc > 0 && strcmp(argv[0], "--each") == 0;
	if (each) {
		if (argc < 3) {
			fprintf(stderr, "cachesvc-cli: usage: mget --each QUERY PARAM ...\n");
			return EXIT_USAGE;
		}
		for (int i = 2; i < argc; i++) {
			if (n == 256) {
				fprintf(stderr, "cachesvc-cli: at most 256 queries per mget\n");
				return EXIT_USAGE;
			}
			char *one[2] = { argv[1], argv[i] };
			(void)build_request(o, 2, one, &reqs[n], params[n]);
			n++;
		}
	}
	int i = 0;
	while (!each && i < argc) {
		if (n == 256) {
			fprintf(stderr, "cachesvc-cli: at most 256 queries per mget\n");
			return EXIT_USAGE;
		}
		if (strcmp(argv[i], "--") == 0) {
			fprintf(stderr, "cachesvc-cli: empty query between \"--\"\n");
			return EXIT_USAGE;
		}
		/* The item's words: up to "--" or a word naming a query already given. */
		int end = i + 1;
		while (end < argc && strcmp(argv[end], "--") != 0 &&
		        !names_query(reqs, n, argv[end]) && strcmp(argv[end], argv[i]) != 0)
			end++;
		if (build_request(o, end - i, argv + i, &reqs[n], params[n]) != end - i)
			return EXIT_USAGE;
		n++;
		i = end;
		if (i < argc && strcmp(argv[i], "--") == 0)
			i++;
	}
	if (n == 0) {
		fprintf(stderr, "cachesvc-cli: usage: mget QUERY [PARAM ...] [QUERY ...]\n");
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
	if (o->json) {
		cs_sb s = CS_SB_INIT;
		cs_json j;
		cs_json_init(&j, &s, false);
		cs_json_object(&j);
		cs_json_kv_uint(&j, whole ? "generation" : "deleted", n);
		cs_json_object_end(&j);
		sb_puts(&s);
	} else
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
	cs_sb s = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &s, false); /* counters: bare numbers whatever their size */
	if (o->json)
		cs_json_object(&j);
	for (uint32_t i = 0; i < n; i++) {
		if (o->json) {
			cs_json_key(&j, st[i].name);
			if (st[i].is_float)
				cs_json_double(&j, st[i].f);
			else
				cs_json_int(&j, st[i].i);
			continue;
		}
		cs_sb_printf(&s, "%s ", st[i].name);
		if (st[i].is_float)
			cs_fmt_double(&s, st[i].f);
		else
			cs_sb_printf(&s, "%" PRId64, st[i].i);
		cs_sb_put(&s, "\n", 1);
	}
	if (o->json) {
		cs_json_object_end(&j);
		cs_sb_put(&s, "\n", 1);
	}
	char *t = sb_text(&s);
	fputs(t, stdout);
	free(t);
	cs_client_stats_free(st);
	return EXIT_OK;
}

static const char *const show_views[] = {
        "queries", "servers", "clients", "invalidator", "config", "slots", NULL};

static int print_rows(const cli *o, cs_client_row *rows, uint32_t n);

/* SHOW VIEW (printed by print_rows). */
static int cmd_show(cs_client *c, const cli *o, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "cachesvc-cli: usage: show [VIEW]\n");
		return EXIT_USAGE;
	}
	if (argc == 0) {
		for (int i = 0; show_views[i]; i++)
			puts(show_views[i]);
		return EXIT_OK;
	}
	cs_client_row *rows;
	uint32_t n;
	int rc = cs_client_show(c, argv[0], &rows, &n);
	if (rc != 0)
		return client_error(c, rc);
	return print_rows(o, rows, n);
}

/* pause QUERY, resume QUERY, claim QUERY, reload: one row saying what happened. A refused reload
 * exits EXIT_SERVER_ERROR. */
static int cmd_admin(cs_client *c, const cli *o, const char *op, int argc, char **argv)
{
	bool reload = strcmp(op, "reload") == 0;
	if (argc != (reload ? 0 : 1)) {
		fprintf(stderr, "cachesvc-cli: usage: %s\n", reload ? "reload" : op[0] == 'p' ?
			"pause QUERY" : op[0] == 'c' ? "claim QUERY" : "resume QUERY");
		return EXIT_USAGE;
	}
	cs_client_row *rows;
	uint32_t n;
	int rc = cs_client_admin(c, op, reload ? NULL : argv[0], &rows, &n);
	if (rc != 0)
		return client_error(c, rc);
	bool refused = false;
	for (uint32_t r = 0; r < n; r++)
		for (uint32_t i = 0; i < rows[r].ncells; i++) {
			const cs_client_cell *cell = &rows[r].cells[i];
			refused |= strcmp(cell->name, "reload") == 0 &&
				cell->value.type == CS_CLIENT_V_STR && cell->value.u.s.len == 7 &&
				memcmp(cell->value.u.s.p, "refused", 7) == 0;
		}
	rc = print_rows(o, rows, n);
	return rc == EXIT_OK && refused ? EXIT_SERVER_ERROR : rc;
}

/* Prints SHOW/ADMIN rows: a table whose columns are the union of the rows' keys in
 * first-seen order, or with --json one object per row. Frees rows. */
static int print_rows(const cli *o, cs_client_row *rows, uint32_t n)
{
	cs_sb s = CS_SB_INIT;
	if (o->json) {
		cs_json j;
		cs_json_init(&j, &s, !json_int_number);
		for (uint32_t r = 0; r < n; r++) {
			cs_json_object(&j);
			for (uint32_t i = 0; i < rows[r].ncells; i++) {
				cs_json_key(&j, rows[r].cells[i].name);
				json_value(&j, &rows[r].cells[i].value);
			}
			cs_json_object_end(&j);
			cs_sb_put(&s, "\n", 1);
		}
		char *t = sb_text(&s);
		fputs(t, stdout);
		free(t);
		cs_client_show_free(rows);
		return EXIT_OK;
	}
	/* Columns: every distinct name, first-seen order (at most `total`). */
	size_t total = 0, ncols = 0;
	for (uint32_t r = 0; r < n; r++)
		total += rows[r].ncells;
	const char **cols = calloc(total ? total : 1, sizeof *cols);
	if (cols == NULL)
		goto oom;
	for (uint32_t r = 0; r < n; r++)
		for (uint32_t i = 0; i < rows[r].ncells; i++) {
			const char *name = rows[r].cells[i].name;
			size_t k;
			for (k = 0; k < ncols && strcmp(cols[k], name) != 0; k++)
				;
			if (k == ncols)
				cols[ncols++] = name;
		}
	size_t ncells = (size_t)(n ? n : 1) * (ncols ? ncols : 1);
	size_t *width = calloc(ncols ? ncols : 1, sizeof *width);
	char **cellstr = calloc(ncells, sizeof *cellstr);
	if (width == NULL || cellstr == NULL) {
		free(width);
		free(cellstr);
		free(cols);
		goto oom;
	}
	for (size_t k = 0; k < ncols; k++)
		width[k] = display_width(cols[k]);
	for (uint32_t r = 0; r < n; r++) {
		for (uint32_t i = 0; i < rows[r].ncells; i++) {
			const cs_client_cell *cell = &rows[r].cells[i];
			size_t k;
			for (k = 0; k < ncols && strcmp(cols[k], cell->name) != 0; k++)
				;
			cs_sb v = CS_SB_INIT;
			fmt_value(&v, &cell->value, 0);
			char *txt = cs_sb_take(&v);
			free(cellstr[(size_t)r * ncols + k]);
			cellstr[(size_t)r * ncols + k] = txt;
			if (txt && display_width(txt) > width[k])
				width[k] = display_width(txt);
		}
	}
	for (size_t k = 0; k < ncols; k++) {
		cs_sb_put(&s, " | ", k ? 3 : 0);
		cs_sb_put(&s, cols[k], strlen(cols[k]));
		for (size_t w = display_width(cols[k]); w < width[k] && k + 1 < ncols; w++)
			cs_sb_put(&s, " ", 1);
	}
	cs_sb_put(&s, "\n", 1);
	for (size_t k = 0; k < ncols; k++) {
		cs_sb_put(&s, "-+-", k ? 3 : 0);
		for (size_t w = 0; w < width[k]; w++)
			cs_sb_put(&s, "-", 1);
	}
	cs_sb_put(&s, "\n", 1);
	for (uint32_t r = 0; r < n; r++) {
		for (size_t k = 0; k < ncols; k++) {
			const char *t = cellstr[(size_t)r * ncols + k];
			if (t == NULL)
				t = "";
			cs_sb_put(&s, " | ", k ? 3 : 0);
			cs_sb_put(&s, t, strlen(t));
			for (size_t w = display_width(t); w < width[k] && k + 1 < ncols; w++)
				cs_sb_put(&s, " ", 1);
		}
		cs_sb_put(&s, "\n", 1);
	}
	cs_sb_printf(&s, "(%u row%s)\n", n, n == 1 ? "" : "s");
	char *t = sb_text(&s);
	fputs(t, stdout);
	free(t);
	for (size_t i = 0; i < ncells; i++)
		free(cellstr[i]);
	free(cellstr);
	free(cols);
	free(width);
	cs_client_show_free(rows);
	return EXIT_OK;
oom:
	cs_client_show_free(rows);
	cs_sb_free(&s);
	fprintf(stderr, "cachesvc-cli: out of memory\n");
	return EXIT_BAD_REPLY;
}

static int cmd_ping(cs_client *c, const cli *o)
{
	int rc = cs_client_ping(c);
	if (rc != 0)
		return client_error(c, rc);
	puts(o->json ? "{\"ok\":true}" : "PONG");
	return EXIT_OK;
}

/* ---- Connecting ------------------------------------------------------------------------- */

/* Connects to opt's server. A host name is resolved here (a command-line tool may block;
 * the library only takes numeric addresses) and every address is tried in turn. Returns
 * NULL and prints why on failure; *status is the exit code then. */
static cs_client *connect_any(const cs_client_options *opt, int *status)
{
	cs_client_options o = *opt;
	char addrs[16][INET6_ADDRSTRLEN];
	int naddr = 0;
	if (o.unix_path == NULL && o.host != NULL) {
		unsigned char tmp[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, o.host, tmp) == 1 || inet_pton(AF_INET6, o.host, tmp) == 1) {
			snprintf(addrs[naddr++], sizeof addrs[0], "%s", o.host);
		} else {
			struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
			struct addrinfo *res = NULL;
			int rc = getaddrinfo(o.host, NULL, &hints, &res);
			if (rc != 0) {
				fprintf(stderr, "cachesvc-cli: cannot resolve \"%s\": %s\n", o.host,
				        gai_strerror(rc));
				*status = EXIT_CONNECT;
				return NULL;
			}
			for (struct addrinfo *ai = res; ai && naddr < 16; ai = ai->ai_next) {
				const void *src = ai->ai_family == AF_INET
				        ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
				        : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
				if (inet_ntop(ai->ai_family, src, addrs[naddr], sizeof addrs[0]))
					naddr++;
			}
			freeaddrinfo(res);
		}
	}
	for (int k = 0; k < (naddr ? naddr : 1); k++) {
		if (naddr)
			o.host = addrs[k];
		cs_client *c = cs_client_connect(&o);
		if (c == NULL) {
			fputs("cachesvc-cli: out of memory\n", stderr);
			*status = EXIT_BAD_REPLY;
			return NULL;
		}
		int rc = cs_client_err(c);
		if (rc == 0)
			return c;
		bool last = k + 1 >= naddr;
		if (last || rc != CS_CLIENT_E_CONNECT) {
			fprintf(stderr, "cachesvc-cli: %s\n", cs_client_errstr(c));
			cs_client_free(c);
			*status = rc == CS_CLIENT_E_ARG      ? EXIT_USAGE
			          : rc <= -1 && rc >= -10    ? EXIT_SERVER_ERROR
			          : rc == CS_CLIENT_E_TIMEOUT ? EXIT_TIMEOUT
			                                     : EXIT_CONNECT;
			return NULL;
		}
		cs_client_free(c); /* try the next address */
	}
	*status = EXIT_CONNECT;
	return NULL;
}

/* Parses cachesvc://[TOKEN@]HOST[:PORT] (HOST may be [v6]) or unix://[TOKEN@]/PATH into opt;
 * the strings live in url, which is modified. */
static int parse_url(char *url, cs_client_options *opt)
{
	bool unix_sock = strncmp(url, "unix://", 7) == 0;
	if (!unix_sock && strncmp(url, "cachesvc://", 11) != 0)
		return -1;
	char *p = url + (unix_sock ? 7 : 11);
	char *at = strrchr(p, '@');
	if (at) {
		*at = '\0';
		opt->token = p;
		p = at + 1;
	}
	if (unix_sock) {
		if (p[0] != '/')
			return -1;
		opt->unix_path = p;
		return 0;
	}
	char *port = NULL;
	if (p[0] == '[') {
		char *close = strchr(p, ']');
		if (close == NULL)
			return -1;
		*close = '\0';
		opt->host = p + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0' && strcmp(close + 1, "/") != 0)
			return -1;
	} else {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		char *colon = strchr(p, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
		if (p[0])
			opt->host = p;
	}
	if (port) {
		char *end;
		long v = strtol(port, &end, 10);
		if ((*end && strcmp(end, "/") != 0) || v < 1 || v > 65535)
			return -1;
		opt->port = (uint16_t)v;
	}
	return 0;
}

/* ---- Running commands -------------------------------------------------------------------- */

static const char *const commands[] = {
        "get", "refresh", "mget", "invalidate", "stats", "ping", "show", "pause", "resume",
        "reload", "claim", NULL};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Runs one command line on c; returns its exit status. */
static int run_command(cs_client *c, const cli *o, int argc, char **argv)
{
	int k;
	for (k = 0; commands[k] && strcmp(commands[k], argv[0]) != 0; k++)
		;
	if (commands[k] == NULL) {
		fprintf(stderr, "cachesvc-cli: unknown command \"%s\" (see --help)\n", argv[0]);
		return EXIT_USAGE;
	}
	int nargs = argc - 1;
	char **args = argv + 1;
	if (k == 6)
		return cmd_show(c, o, nargs, args);
	if (k >= 7)
		return cmd_admin(c, o, commands[k], nargs, args);
	if (k >= 4 && nargs != 0) {
		fprintf(stderr, "cachesvc-cli: %s takes no arguments\n", argv[0]);
		return EXIT_USAGE;
	}
	switch (k) {
	case 0:
	case 1:
		return cmd_get(c, o, nargs, args, k == 1);
	case 2:
		return cmd_mget(c, o, nargs, args);
	case 3:
		return cmd_invalidate(c, o, nargs, args);
	case 4:
		return cmd_stats(c, o);
	default:
		return cmd_ping(c, o);
	}
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
		;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* --latency: PING round trips until interrupted or `samples` taken (< 0: no bound). One
 * summary line, rewritten in place on a terminal, printed every second otherwise. */
static int run_latency(cs_client *c, const cli *o, long samples, double interval)
{
	enum { KEEP = 100000 }; /* kept for the percentile: a ring of the latest */
	uint64_t *keep = malloc(KEEP * sizeof *keep);
	if (keep == NULL) {
		fputs("cachesvc-cli: out of memory\n", stderr);
		return EXIT_BAD_REPLY;
	}
	bool tty = isatty(STDOUT_FILENO);
	uint64_t n = 0, min = UINT64_MAX, max = 0, sum = 0, last_print = now_us();
	if (interval <= 0)
		interval = 0.01; /* redis-cli's pace: 100 samples a second */
	int status = EXIT_OK;
	while (!interrupted && (samples < 0 || (long)n < samples)) {
		uint64_t t0 = now_us();
		int rc = cs_client_ping(c);
		if (rc != 0) {
			status = client_error(c, rc);
			break;
		}
		uint64_t us = now_us() - t0;
		keep[n % KEEP] = us;
		n++;
		sum += us;
		if (us < min)
			min = us;
		if (us > max)
			max = us;
		bool done = samples >= 0 && (long)n >= samples;
		if (tty || done || now_us() - last_print >= 1000000u) {
			size_t m = n < KEEP ? n : KEEP;
			uint64_t *sorted = malloc(m * sizeof *sorted);
			uint64_t p99 = max;
			if (sorted) {
				memcpy(sorted, keep, m * sizeof *sorted);
				qsort(sorted, m, sizeof *sorted, cmp_u64);
				p99 = sorted[(m * 99) / 100 < m ? (m * 99) / 100 : m - 1];
				free(sorted);
			}
			if (o->json)
				printf("{\"samples\":%" PRIu64 ",\"min_ms\":%.3f,\"avg_ms\":%.3f,"
				       "\"max_ms\":%.3f,\"p99_ms\":%.3f}\n",
				        n, min / 1000.0, (double)sum / n / 1000.0, max / 1000.0, p99 / 1000.0);
			else
				printf("%smin: %.3f, max: %.3f, avg: %.3f, p99: %.3f ms (%" PRIu64
				       " samples)%s",
				        tty ? "\r\033[K" : "", min / 1000.0, max / 1000.0,
				        (double)sum / n / 1000.0, p99 / 1000.0, n, tty ? "" : "\n");
			fflush(stdout);
			last_print = now_us();
		}
		sleep_s(interval);
	}
	if (tty && !o->json && n > 0)
		putchar('\n');
	free(keep);
	return status;
}

/* Splits line into words in place: whitespace separates, '...' and "..." quote (\" and \\
 * inside double quotes). Returns the count, or -1 on an unterminated quote. */
static int split_words(char *line, char **words, int max)
{
	int n = 0;
	char *r = line, *w = line;
	while (*r) {
		while (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r')
			r++;
		if (*r == '\0')
			break;
		if (n == max)
			return -1;
		words[n++] = w;
		while (*r && *r != ' ' && *r != '\t' && *r != '\n' && *r != '\r') {
			if (*r == '\'' || *r == '"') {
				char q = *r++;
				while (*r && *r != q) {
					if (q == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\'))
						r++;
					*w++ = *r++;
				}
				if (*r != q)
					return -1;
				r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w++ = '\0';
	}
	return n;
}

#ifdef HAVE_LIBEDIT
/* The prompt's connection, for completion; the server's query names, fetched with
 * `show queries` the first time a word is completed while the prompt is connected (it
 * connects at its first command; once per session: a failure is not retried; the call is
 * bounded by the client's timeout). */
static cs_client **complete_conn;
static char **complete_names;
static uint32_t complete_nnames;
static bool complete_fetched;

static void complete_fetch(void)
{
	if (complete_conn == NULL || *complete_conn == NULL)
		return; /* not connected yet: no names this time */
	complete_fetched = true;
	cs_client_row *rows;
	uint32_t n;
	if (cs_client_show(*complete_conn, "queries", &rows, &n) != 0)
		return;
	complete_names = calloc(n ? n : 1, sizeof *complete_names);
	for (uint32_t r = 0; complete_names && r < n; r++)
		for (uint32_t i = 0; i < rows[r].ncells; i++) {
			const cs_client_cell *cell = &rows[r].cells[i];
			if (strcmp(cell->name, "name") == 0 && cell->value.type == CS_CLIENT_V_STR) {
				char *q = strndup(cell->value.u.s.p, cell->value.u.s.len);
				if (q)
					complete_names[complete_nnames++] = q;
				break;
			}
		}
	cs_client_show_free(rows);
}

static void complete_free(void)
{
	for (uint32_t i = 0; i < complete_nnames; i++)
		free(complete_names[i]);
	free(complete_names);
	complete_names = NULL;
	complete_nnames = 0;
}

/* Completion: commands and SHOW views first, then the server's query names, then query
 * names seen in this session's history. */
static char *complete_word(const char *text, int state)
{
	static int k, v;
	static uint32_t qn;
	static int h;
	size_t len = strlen(text);
	if (state == 0) {
		k = 0;
		v = 0;
		qn = 0;
		h = 0;
		if (!complete_fetched)
			complete_fetch();
	}
	while (commands[k]) {
		const char *cmd = commands[k++];
		if (strncmp(cmd, text, len) == 0)
			return strdup(cmd);
	}
	while (show_views[v]) {
		const char *view = show_views[v++];
		if (strncmp(view, text, len) == 0)
			return strdup(view);
	}
	while (qn < complete_nnames) {
		const char *q = complete_names[qn++];
		if (strncmp(q, text, len) == 0)
			return strdup(q);
	}
	for (; h < history_length; h++) {
		HIST_ENTRY *e = history_get(history_base + h);
		if (e == NULL || e->line == NULL)
			continue;
		char buf[256], *words[3];
		snprintf(buf, sizeof buf, "%s", e->line);
		int n = split_words(buf, words, 3);
		if (n < 2 || strcmp(words[0], "stats") == 0 || strcmp(words[0], "ping") == 0)
			continue;
		const char *q = words[1];
		if (strcmp(q, "--each") == 0 && n >= 3)
			q = words[2];
		if (strncmp(q, text, len) == 0) {
			h++;
			return strdup(q);
		}
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	(void)start;
	(void)end;
	rl_attempted_completion_over = 1;
	return rl_completion_matches(text, complete_word);
}
#endif

/* Reads one line: libedit on a terminal when built with it, stdio otherwise. */
static char *read_line(const char *prompt)
{
#ifdef HAVE_LIBEDIT
	if (isatty(STDIN_FILENO))
		return readline(prompt);
#endif
	if (isatty(STDIN_FILENO)) {
		fputs(prompt, stdout);
		fflush(stdout);
	}
	size_t cap = 0;
	char *line = NULL;
	if (getline(&line, &cap, stdin) < 0) {
		free(line);
		return NULL;
	}
	return line;
}

/* The interactive prompt: one command per line on one connection (reconnected when lost).
 * Returns the last command's status. */
static int run_interactive(cs_client **cp, const cs_client_options *opt, const cli *o)
{
	char prompt[300];
	if (opt->unix_path)
		snprintf(prompt, sizeof prompt, "%s> ", opt->unix_path);
	else
		snprintf(prompt, sizeof prompt, "%s:%u> ", opt->host ? opt->host : "127.0.0.1",
		        opt->port ? opt->port : 6380);
	char hist[4096] = "";
	const char *home = getenv("HOME");
#ifdef HAVE_LIBEDIT
	if (home && *home && isatty(STDIN_FILENO)) { /* a terminal's history only */
		snprintf(hist, sizeof hist, "%s/.cachesvc_cli_history", home);
		read_history(hist);
	}
	rl_readline_name = "cachesvc-cli";
	rl_attempted_completion_function = complete;
	complete_conn = cp;
#else
	(void)home;
#endif
	int status = EXIT_OK;
	char *line;
	while ((line = read_line(prompt)) != NULL) {
#ifdef HAVE_LIBEDIT
		if (isatty(STDIN_FILENO) && line[strspn(line, " \t")] != '\0')
			add_history(line); /* before split_words cuts it into words */
#endif
		char *words[16 * 256 + 512];
		int n = split_words(line, words, (int)(sizeof words / sizeof words[0]));
		if (n < 0) {
			fputs("cachesvc-cli: unterminated quote\n", stderr);
			free(line);
			continue;
		}
		if (n == 0) {
			free(line);
			continue;
		}
		if (strcmp(words[0], "quit") == 0 || strcmp(words[0], "exit") == 0) {
			free(line);
			break;
		}
		if (strcmp(words[0], "help") == 0) {
			usage(stdout);
			free(line);
			continue;
		}
		if (*cp == NULL) {
			int st;
			*cp = connect_any(opt, &st);
			if (*cp == NULL) {
				status = st;
				free(line);
				continue;
			}
		}
		status = run_command(*cp, o, n, words);
		if (status == EXIT_CONNECT || status == EXIT_TIMEOUT) {
			cs_client_free(*cp); /* reconnect for the next command */
			*cp = NULL;
		}
		fflush(stdout); /* each answer as it comes, also into a pipe */
		free(line);
	}
#ifdef HAVE_LIBEDIT
	if (hist[0]) {
		/* it holds parameter values: the owner's alone, as psql's and redis-cli's */
		mode_t old = umask(077);
		write_history(hist);
		umask(old);
		(void)chmod(hist, 0600);
	}
#endif
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"json-int", required_argument, NULL, 'J'},
	        {"tier", required_argument, NULL, 'T'},
	        {"lsn", required_argument, NULL, 'L'},
	        {"bypass", no_argument, NULL, 'B'},
	        {"token", required_argument, NULL, 'K'},
	        {"repeat", required_argument, NULL, 'r'},
	        {"interval", required_argument, NULL, 'i'},
	        {"latency", no_argument, NULL, 'l'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	cs_client_options opt = {0};
	cli o = {.tier = CS_CLIENT_TIER_DEFAULT};
	opt.client_name = "cachesvc-cli";
	opt.token = getenv("CACHESVC_TOKEN");
	if (opt.token && opt.token[0] == '\0')
		opt.token = NULL; /* CACHESVC_TOKEN= : no token */
	long repeat = 1;
	bool repeat_set = false, latency = false;
	double interval = 0;
	int ch;
	char *end;
	long v;
	/* "+": stop at the command, so parameters such as -5 are not taken as options. */
	while ((ch = getopt_long(argc, argv, "+h:p:s:t:u:r:i:", longopts, NULL)) != -1) {
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
		case 'u':
			if (parse_url(optarg, &opt) != 0) {
				fprintf(stderr, "cachesvc-cli: bad URL (want cachesvc://[TOKEN@]HOST[:PORT]"
				                " or unix://[TOKEN@]/PATH)\n");
				return EXIT_USAGE;
			}
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 3600000) {
				fprintf(stderr, "cachesvc-cli: bad timeout \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			opt.timeout_ms = opt.connect_timeout_ms = (int)v;
			break;
		case 'r':
			repeat = strtol(optarg, &end, 10);
			if (*end || repeat < -1 || repeat == 0) {
				fprintf(stderr, "cachesvc-cli: bad repeat count \"%s\" (N >= 1, or -1)\n",
				        optarg);
				return EXIT_USAGE;
			}
			repeat_set = true;
			break;
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || !(interval >= 0) || interval > 86400) {
				fprintf(stderr, "cachesvc-cli: bad interval \"%s\" (seconds)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'l':
			latency = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'J':
			if (strcmp(optarg, "string") == 0 || strcmp(optarg, "number") == 0) {
				o.json_int_number = optarg[0] == 'n';
				json_int_number = o.json_int_number;
			} else {
				fprintf(stderr, "cachesvc-cli: --json-int must be string or number\n");
				return EXIT_USAGE;
			}
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
		case 'L': {
			cs_client_token t;
			if (cs_client_token_parse(optarg, &t) != 0) {
				fprintf(stderr,
				        "cachesvc-cli: bad LSN \"%s\" (want X/Y, hex, or "
				        "SHARD:X/Y, SHARD 1..64 of A-Z a-z 0-9 _ . -)\n",
				        optarg);
				return EXIT_USAGE;
			}
			o.lsn = t.lsn;
			memcpy(o.shard, t.shard, sizeof o.shard);
			break;
		}
		case 'B':
			o.bypass = true;
			break;
		case 'K':
			opt.token = optarg;
			break;
		case 'V':
			printf("cachesvc-cli %s\n", CS_VERSION);
			return EXIT_OK;
		case 'H':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	/* No command: a prompt on a terminal, or one command per line from stdin. */
	bool interactive = optind >= argc && !latency;
	if (latency && optind < argc) {
		fprintf(stderr, "cachesvc-cli: --latency takes no command\n");
		return EXIT_USAGE;
	}
	if (!interactive && !latency) {
		int k;
		for (k = 0; commands[k] && strcmp(commands[k], argv[optind]) != 0; k++)
			;
		if (commands[k] == NULL) {
			fprintf(stderr, "cachesvc-cli: unknown command \"%s\" (see --help)\n",
			        argv[optind]);
			return EXIT_USAGE;
		}
	}
	struct sigaction sa = { .sa_handler = on_sigint };
	sigemptyset(&sa.sa_mask);
	if (latency || repeat_set)
		sigaction(SIGINT, &sa, NULL); /* finish the current round, print, exit */
	int rc;
	cs_client *c = NULL;
	if (interactive) {
		rc = run_interactive(&c, &opt, &o);
#ifdef HAVE_LIBEDIT
		complete_conn = NULL;
		complete_free();
#endif
		cs_client_free(c);
		return rc;
	}
	c = connect_any(&opt, &rc);
	if (c == NULL)
		return rc;
	if (latency) {
		rc = run_latency(c, &o, repeat_set ? repeat : -1, interval);
	} else {
		int worst = EXIT_OK;
		for (long r = 0; !interrupted && (repeat < 0 || r < repeat); r++) {
			if (r > 0)
				sleep_s(interval);
			if (interrupted)
				break;
			rc = run_command(c, &o, argc - optind, argv + optind);
			fflush(stdout);
			if (rc > worst)
				worst = rc;
			if (rc == EXIT_CONNECT || rc == EXIT_USAGE)
				break; /* the connection is gone, or nothing will change */
		}
		rc = worst;
	}
	cs_client_free(c);
	return rc;
}
