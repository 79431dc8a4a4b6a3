/* warm.c - cachesvc-warm: pre-fills the cache through a running cachesvc daemon, from a key
 * file / stdin or from a key-enumerating SQL query, at a bounded concurrency and rate on the
 * batch tier; resumable from a checkpoint; reports what it filled, skipped and failed.
 *
 * Every fill is the daemon's own read-through fill (a GET or a REFRESH over the client
 * library), so warm-up obeys the fence rule by construction: the daemon stores a result
 * only if it is not older than the key's last invalidation. The tool never writes Redis.
 *
 * Threads: the client library blocks in cs_client_recv() on one connection and has no way
 * to wait on several, so each connection gets a worker thread that keeps its share of the
 * in-flight window (-c) pipelined on it. cs_client_send() only queues; the bytes go out in
 * the next cs_client_recv() once no reply is already buffered, so a worker never sleeps
 * while it has requests outstanding: it calls cs_client_recv(), which writes them first.
 * The main thread only handles signals, draws progress and writes the checkpoint.
 *
 * Locks (always taken in this order): run.src_lock (the input: file or SQL cursor),
 * run.state_lock (done lines, counters), run.bucket_lock (the token bucket), run.print_lock. */
#include "cachesvc-client.h"
#include "json.h"
#include "textutil.h"
#include "warm_bucket.h"
#include "warm_ckpt.h"
#include "warm_line.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

/* Exit codes (documented in --help). */
enum {
	EXIT_OK = 0,
	EXIT_FAILURES = 1,    /* more failed + skipped lines than --max-failures allows */
	EXIT_USAGE = 2,       /* bad options, or could not start / had to stop (error printed) */
	EXIT_INTERRUPTED = 3, /* SIGINT/SIGTERM: stopped early; the checkpoint resumes it */
};

#define MAX_INFLIGHT      1024
#define MAX_CONNS         64
#define MAX_PRINTED       20    /* per-line problems printed; the rest are only counted */
#define RECONNECT_GIVE_UP 30000 /* ms of failed reconnects before the run is aborted */

/* ---- Options ----------------------------------------------------------------------------- */

/* --conninfo given more than once: the SQL runs on each (a sharded origin: one per shard, as
 * many as a config's [shard NAME] sections may be). */
#define WARM_MAX_SOURCES 64

typedef struct warm_opts {
	cs_client_options client;
	int inflight, conns;
	double rate, burst;
	bool refresh;
	const char *file;                       /* NULL or "-": stdin */
	const char *sql, *query;                /* --from-sql */
	const char *conninfo[WARM_MAX_SOURCES]; /* --conninfo, repeated: one per shard */
	int nconninfo;
	const char *checkpoint;
	int checkpoint_ms;
	int retries;
	uint64_t max_failures; /* absolute, or per mille of done lines when max_pct */
	double max_pct;
	bool pct;
	bool json, quiet;
	int progress_s;
} warm_opts;

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: cachesvc-warm [OPTIONS] [FILE]\n"
	        "       cachesvc-warm [OPTIONS] --from-sql SQL --conninfo CONNINFO... --query "
	        "NAME\n"
	        "\n"
	        "Pre-fills the cache of a running cachesvc daemon before traffic arrives. Every\n"
	        "request is an ordinary GET (or REFRESH with --refresh) on the batch tier, so the\n"
	        "daemon does every fill through its own fenced fill path: warming never writes\n"
	        "stale data, and the tool never touches Redis itself.\n"
	        "\n"
	        "Input: FILE (or stdin when FILE is absent or \"-\"), one request per line:\n"
	        "  QUERY PARAM PARAM ...      words separated by blanks; the word null is SQL "
	        "NULL\n"
	        "  user_profile 42\n"
	        "  search \"two words\" 'say \"hi\"' null \"null\"   (the last one is the text "
	        "null)\n"
	        "  # comment                  (a # that starts a word, also after other words)\n"
	        "\"double quotes\" know the escapes \\\" \\\\ \\n \\t \\r; 'single quotes' none.\n"
	        "Blank lines are ignored; a malformed line is reported with its number and\n"
	        "skipped. Or --from-sql: each row of SQL, run on CONNINFO (a replica), gives the\n"
	        "parameters of one request for query NAME (columns as text, NULL as NULL). The\n"
	        "rows are streamed (single-row mode); give the SQL a stable ORDER BY so that a\n"
	        "resumed run sees the rows in the same order.\n"
	        "Sharded origin ([shard NAME] sections): give --conninfo once per shard (a\n"
	        "replica of it, else its primary); the SQL runs on each in the order given, its\n"
	        "rows numbered on from the previous one's, and the daemon routes every key to its\n"
	        "shard. The tool reads no config: which server of a shard takes the batch query\n"
	        "is the operator's choice, as without shards. A resumed run needs the same\n"
	        "--conninfo list in the same order.\n"
	        "\n"
	        "Options:\n"
	        "  -h HOST              daemon address (numeric IP), default 127.0.0.1\n"
	        "  -p PORT              daemon port, default 6380\n"
	        "  -s SOCKET            daemon unix socket (overrides -h/-p)\n"
	        "  -t TIMEOUT_MS        connect and per-request timeout, default 10000\n"
	        "  --token TOKEN        HELLO auth token (or set CACHESVC_TOKEN)\n"
	        "  -c N                 requests in flight, 1..1024, default 16\n"
	        "  --connections N      connections they are spread over, default min(N, 4)\n"
	        "  --rate R             requests per second (token bucket), default 500; 0 = no\n"
	        "                       limit. N requests take at least N / R seconds\n"
	        "  --burst B            tokens the bucket holds, default R / 20 (at least 1)\n"
	        "  --refresh            REFRESH every key (re-read it) instead of GET (fill only\n"
	        "                       what is missing; a reply from the cache counts as\n"
	        "                       \"already cached\")\n"
	        "  --from-sql SQL       enumerate the keys with SQL (see above)\n"
	        "  --conninfo CONNINFO  libpq connection string for --from-sql (connect_timeout\n"
	        "                       defaults to 10 s); repeat it (up to 64) for a sharded\n"
	        "                       origin: the SQL runs on each in turn\n"
	        "  --query NAME         the configured query the rows of --from-sql are for\n"
	        "  --checkpoint FILE    resumable: progress is saved to FILE (atomically, every\n"
	        "                       --checkpoint-interval and at exit); a later run with the\n"
	        "                       same input continues where it stopped. Refused for\n"
	        "                       another input (path + size, or SQL + query, and mode)\n"
	        "  --checkpoint-interval MS  default 1000\n"
	        "  --retries N          retries of a request after overloaded / unavailable /\n"
	        "                       timeout / lost connection, with backoff; default 3\n"
	        "  --max-failures N|P%%  failed + skipped lines tolerated before the exit status\n"
	        "                       is 1: a count, or a percentage of the lines done; default "
	        "0\n"
	        "  --json               final report as one JSON object on stdout\n"
	        "  --quiet              no progress display\n"
	        "  --progress-interval S  seconds between progress lines when stderr is not a\n"
	        "                       terminal, default 5 (a terminal gets one redrawn line)\n"
	        "  --help               this text\n"
	        "\n"
	        "Report: every line is filled (read from the database and stored), refused (read\n"
	        "from the database, but the daemon's answer said stored=false: a fence, the\n"
	        "horizon or the epoch refused the fill, e.g. right after a write or while\n"
	        "replicas lag, or the result is not cached at all: too large, empty without\n"
	        "negative caching, read on the primary with fences on), already cached, skipped\n"
	        "(malformed) or failed. A refusal is not a failure: it does not count towards\n"
	        "--max-failures; a refused key fills on a later read.\n"
	        "\n"
	        "Exit status: 0 done, 1 more failures than --max-failures, 2 usage error or the\n"
	        "run could not start / had to stop (message on stderr), 3 interrupted by\n"
	        "SIGINT/SIGTERM (progress saved in the checkpoint, if any).\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

/* Returns -1 after printing the usage error, 0 to run, 1 when --help was shown. */
static int parse_opts(int argc, char **argv, warm_opts *o)
{
	enum {
		O_TOKEN = 256,
		O_CONNS,
		O_RATE,
		O_BURST,
		O_REFRESH,
		O_SQL,
		O_CONNINFO,
		O_QUERY,
		O_CKPT,
		O_CKPT_MS,
		O_RETRIES,
		O_MAXFAIL,
		O_JSON,
		O_QUIET,
		O_PROGRESS,
		O_HELP
	};
	static const struct option longopts[] = {
	        {"token", required_argument, NULL, O_TOKEN},
	        {"connections", required_argument, NULL, O_CONNS},
	        {"rate", required_argument, NULL, O_RATE},
	        {"burst", required_argument, NULL, O_BURST},
	        {"refresh", no_argument, NULL, O_REFRESH},
	        {"from-sql", required_argument, NULL, O_SQL},
	        {"conninfo", required_argument, NULL, O_CONNINFO},
	        {"query", required_argument, NULL, O_QUERY},
	        {"checkpoint", required_argument, NULL, O_CKPT},
	        {"checkpoint-interval", required_argument, NULL, O_CKPT_MS},
	        {"retries", required_argument, NULL, O_RETRIES},
	        {"max-failures", required_argument, NULL, O_MAXFAIL},
	        {"json", no_argument, NULL, O_JSON},
	        {"quiet", no_argument, NULL, O_QUIET},
	        {"progress-interval", required_argument, NULL, O_PROGRESS},
	        {"help", no_argument, NULL, O_HELP},
	        {NULL, 0, NULL, 0},
	};
	long v;
	double d;
	int ch;
	memset(o, 0, sizeof *o);
	o->client.client_name = "cachesvc-warm";
	o->client.token = getenv("CACHESVC_TOKEN");
	o->client.timeout_ms = 10000;
	o->client.connect_timeout_ms = 10000;
	o->inflight = 16;
	o->rate = 500;
	o->burst = -1;
	o->checkpoint_ms = 1000;
	o->retries = 3;
	o->progress_s = 5;
#define BAD(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "cachesvc-warm: " __VA_ARGS__);                                    \
		fputs("\n(cachesvc-warm --help shows the usage)\n", stderr);                       \
		return -1;                                                                         \
	} while (0)
	while ((ch = getopt_long(argc, argv, "h:p:s:t:c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			o->client.host = optarg;
			break;
		case 'p':
			if (parse_long(optarg, 1, 65535, &v) != 0)
				BAD("bad port \"%s\"", optarg);
			o->client.port = (uint16_t)v;
			break;
		case 's':
			o->client.unix_path = optarg;
			break;
		case 't':
			if (parse_long(optarg, 1, 3600000, &v) != 0)
				BAD("bad timeout \"%s\" (milliseconds, 1..3600000)", optarg);
			o->client.timeout_ms = o->client.connect_timeout_ms = (int)v;
			break;
		case 'c':
			if (parse_long(optarg, 1, MAX_INFLIGHT, &v) != 0)
				BAD("bad -c \"%s\" (1..%d)", optarg, MAX_INFLIGHT);
			o->inflight = (int)v;
			break;
		case O_TOKEN:
			o->client.token = optarg;
			break;
		case O_CONNS:
			if (parse_long(optarg, 1, MAX_CONNS, &v) != 0)
				BAD("bad --connections \"%s\" (1..%d)", optarg, MAX_CONNS);
			o->conns = (int)v;
			break;
		case O_RATE:
			if (parse_double(optarg, 0, 1e7, &d) != 0)
				BAD("bad --rate \"%s\" (requests per second, 0 = no limit)",
				        optarg);
			o->rate = d;
			break;
		case O_BURST:
			if (parse_double(optarg, 1, 1e7, &d) != 0)
				BAD("bad --burst \"%s\" (at least 1)", optarg);
			o->burst = d;
			break;
		case O_REFRESH:
			o->refresh = true;
			break;
		case O_SQL:
			o->sql = optarg;
			break;
		case O_CONNINFO:
			if (o->nconninfo == WARM_MAX_SOURCES)
				BAD("--conninfo at most %d times", WARM_MAX_SOURCES);
			o->conninfo[o->nconninfo++] = optarg;
			break;
		case O_QUERY:
			o->query = optarg;
			break;
		case O_CKPT:
			o->checkpoint = optarg;
			break;
		case O_CKPT_MS:
			if (parse_long(optarg, 50, 3600000, &v) != 0)
				BAD("bad --checkpoint-interval \"%s\" (milliseconds, 50..3600000)",
				        optarg);
			o->checkpoint_ms = (int)v;
			break;
		case O_RETRIES:
			if (parse_long(optarg, 0, 100, &v) != 0)
				BAD("bad --retries \"%s\" (0..100)", optarg);
			o->retries = (int)v;
			break;
		case O_MAXFAIL: {
			size_t n = strlen(optarg);
			if (n > 0 && optarg[n - 1] == '%') {
				char num[32];
				if (n > sizeof num)
					BAD("bad --max-failures \"%s\"", optarg);
				memcpy(num, optarg, n - 1);
				num[n - 1] = '\0';
				if (parse_double(num, 0, 100, &d) != 0)
					BAD("bad --max-failures \"%s\" (0%%..100%%)", optarg);
				o->pct = true;
				o->max_pct = d;
			} else {
				if (parse_long(optarg, 0, LONG_MAX, &v) != 0)
					BAD("bad --max-failures \"%s\" (a count or a percentage)",
					        optarg);
				o->pct = false;
				o->max_failures = (uint64_t)v;
			}
			break;
		}
		case O_JSON:
			o->json = true;
			break;
		case O_QUIET:
			o->quiet = true;
			break;
		case O_PROGRESS:
			if (parse_long(optarg, 1, 3600, &v) != 0)
				BAD("bad --progress-interval \"%s\" (seconds, 1..3600)", optarg);
			o->progress_s = (int)v;
			break;
		case O_HELP:
			usage(stdout);
			return 1;
		default:
			fputs("(cachesvc-warm --help shows the usage)\n", stderr);
			return -1;
		}
	}
	if (optind < argc)
		o->file = argv[optind++];
	if (optind < argc)
		BAD("one input FILE at most (got \"%s\" too)", argv[optind]);
	if (o->sql != NULL) {
		if (o->file != NULL)
			BAD("give FILE or --from-sql, not both");
		if (o->nconninfo == 0 || o->query == NULL)
			BAD("--from-sql needs --conninfo and --query");
		if (!cs_warm_query_name_ok(o->query))
			BAD("bad --query \"%s\" (1-64 characters of A-Z a-z 0-9 _ . -)", o->query);
	} else if (o->nconninfo > 0 || o->query != NULL) {
		BAD("--conninfo and --query go with --from-sql");
	}
	if (o->checkpoint != NULL && o->sql == NULL &&
	        (o->file == NULL || strcmp(o->file, "-") == 0))
		BAD("--checkpoint needs a FILE or --from-sql (stdin cannot be recognised again)");
	if (o->conns == 0)
		o->conns = o->inflight < 4 ? o->inflight : 4;
	if (o->conns > o->inflight)
		BAD("--connections %d is more than -c %d", o->conns, o->inflight);
	if (o->burst < 0)
		o->burst = o->rate / 20 > 1 ? o->rate / 20 : 1;
#undef BAD
	return 0;
}

/* ---- Shared run state -------------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The input. Guarded by run.src_lock. */
typedef struct source {
	FILE *f;                       /* file or stdin; NULL with SQL */
	PGconn *pg;                    /* --from-sql: the connection being read, pgs[cur] */
	PGconn *pgs[WARM_MAX_SOURCES]; /* one per --conninfo, all connected at the start */
	int npg, cur;
	const char *query;
	uint64_t line;  /* the last line (or row) number read */
	bool exhausted; /* every line has been read */
	char buf[CS_WARM_LINE_MAX + 2];
} source;

/* What source_next() returns. */
enum {
	SRC_FATAL = -1, /* cannot go on: run.fatal says why */
	SRC_END = 0,    /* no more lines */
	SRC_REQUEST = 1,
	SRC_WAIT = 2, /* the next line is too far ahead of the low-water mark: try later */
};

typedef struct warm_run {
	const warm_opts *o;
	source src;
	pthread_mutex_t src_lock, state_lock, bucket_lock, print_lock;
	cs_warm_ckpt ck;        /* done lines and counters (state_lock) */
	uint64_t done_at_start; /* lines done by earlier runs */
	uint64_t total;         /* request lines in the input; 0 = unknown */
	cs_warm_bucket bucket;
	atomic_bool stop;  /* SIGINT/SIGTERM: take no new lines, finish the in-flight ones */
	atomic_bool abort; /* fatal error: stop too, and exit 2 */
	atomic_int live;   /* workers still running */
	char fatal[512];   /* first fatal error (state_lock) */
	bool tty;          /* progress redrawn on one line */
	bool progress_shown;
	int printed; /* per-line problems printed (print_lock) */
} warm_run;

/* Prints a message on stderr, clearing the progress line first. */
static void say(warm_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(warm_run *run, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&run->print_lock);
	if (run->tty && run->progress_shown)
		fputs("\r\033[K", stderr);
	fputs("cachesvc-warm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&run->print_lock);
}

/* Prints a per-line problem, up to MAX_PRINTED of them. */
static void say_line(warm_run *run, uint64_t line, const char *text)
{
	pthread_mutex_lock(&run->print_lock);
	int n = run->printed++;
	pthread_mutex_unlock(&run->print_lock);
	if (n < MAX_PRINTED)
		say(run, "line %" PRIu64 ": %s", line, text);
	else if (n == MAX_PRINTED)
		say(run, "more problems: counted in the report, not printed");
}

/* Stops the run for good (first message wins). */
static void set_fatal(warm_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_fatal(warm_run *run, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&run->state_lock);
	if (run->fatal[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(run->fatal, sizeof run->fatal, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&run->state_lock);
	atomic_store(&run->abort, true);
}

/* Marks a line done with its outcome. outcome: 'f' filled, 'r' refused (answered by the
 * database, not stored), 'c' cached, 's' skipped (malformed), 'x' failed, 'e' nothing to do
 * (blank or comment). */
static void line_done(warm_run *run, uint64_t line, char outcome, int reason, const char *text)
{
	pthread_mutex_lock(&run->state_lock);
	cs_warm_counts *c = &run->ck.counts;
	if (cs_warm_done_mark(&run->ck.done, line) == 1) {
		/* Only the first completion counts: a line is handed out once per run, but a
		 * defensive check costs nothing. */
		switch (outcome) {
		case 'f':
			c->filled++;
			break;
		case 'r':
			c->refused++;
			break;
		case 'c':
			c->cached++;
			break;
		case 's':
		case 'x':
			cs_warm_counts_fail(c, outcome == 's', reason, line, text);
			break;
		default:
			break;
		}
	}
	pthread_mutex_unlock(&run->state_lock);
	if (outcome == 's' || outcome == 'x')
		say_line(run, line, text);
}

/* ---- Input ------------------------------------------------------------------------------- */

/* Reads one line of the file into buf (without its newline). Returns 1 (a line; *too_long
 * when it was longer than CS_WARM_LINE_MAX, the rest then skipped), 0 at the end, -1 on a
 * read error. Only one thread reads at a time (src_lock), hence the unlocked getc. */
static int read_line(source *s, size_t *len, bool *too_long)
{
	size_t n = 0;
	int ch;
	bool any = false;
	*too_long = false;
	while ((ch = getc_unlocked(s->f)) != EOF) {
		any = true;
		if (ch == '\n')
			break;
		if (n < CS_WARM_LINE_MAX)
			s->buf[n++] = (char)ch;
		else
			*too_long = true;
	}
	if (ch == EOF && ferror(s->f))
		return -1;
	*len = n;
	return any ? 1 : 0;
}

/* Sends the SQL on source i (single-row mode). False with the message in why. */
static bool send_sql(const warm_opts *o, source *s, int i, char *why, size_t whylen)
{
	s->cur = i;
	s->pg = s->pgs[i];
	if (PQsendQueryParams(s->pg, o->sql, 0, NULL, NULL, NULL, NULL, 0) &&
	        PQsetSingleRowMode(s->pg))
		return true;
	snprintf(why, whylen, "%s", PQerrorMessage(s->pg));
	size_t n = strlen(why);
	while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == '\r'))
		why[--n] = '\0';
	return false;
}

/* Reads the next row of the SQL into req: the current source's, then (at its end) the next
 * source's. Same returns as source_next. */
static int next_row(
        warm_run *run, source *s, cs_warm_req *req, bool *malformed, char *why, size_t whylen)
{
	PGresult *res;
	*malformed = false;
	for (;;) {
		res = PQgetResult(s->pg);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_COMMAND_OK;
		if (res != NULL && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
			break;
		/* the end of this source's rows; the NULL result follows */
		PQclear(res);
		while (res != NULL && (res = PQgetResult(s->pg)) != NULL)
			PQclear(res);
		if (s->cur + 1 >= s->npg)
			return SRC_END;
		if (!send_sql(run->o, s, s->cur + 1, why, whylen)) {
			set_fatal(run, "--from-sql on --conninfo #%d: %s", s->cur + 1, why);
			return SRC_FATAL;
		}
	}
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_SINGLE_TUPLE) {
		if (s->npg > 1)
			set_fatal(run,
			        "--from-sql failed on --conninfo #%d after %" PRIu64 " rows: %s",
			        s->cur + 1, s->line, PQresultErrorMessage(res));
		else
			set_fatal(run, "--from-sql failed after %" PRIu64 " rows: %s", s->line,
			        PQresultErrorMessage(res));
		PQclear(res);
		return SRC_FATAL;
	}
	int ncols = PQnfields(res);
	if (ncols > CS_WARM_MAX_PARAMS) {
		set_fatal(run,
		        "--from-sql returns %d columns; a request takes at most %d parameters",
		        ncols, CS_WARM_MAX_PARAMS);
		PQclear(res);
		return SRC_FATAL;
	}
	const char *values[CS_WARM_MAX_PARAMS];
	for (int i = 0; i < ncols; i++)
		values[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
	if (cs_warm_req_build(req, s->query, values, (uint32_t)ncols, why, whylen) != 0)
		*malformed = true;
	PQclear(res);
	return SRC_REQUEST;
}

/* Takes the next request of the input into *req and its line number into *line, marking
 * blank, comment, malformed and (on resume) already done lines on the way. Call with
 * src_lock held. Returns SRC_REQUEST, SRC_END, SRC_WAIT or SRC_FATAL. Blocks reading the
 * input (a file, stdin, or the next row from PostgreSQL). */
static int source_next(warm_run *run, cs_warm_req *req, uint64_t *line)
{
	source *s = &run->src;
	char why[200];
	while (!s->exhausted) {
		uint64_t n = s->line + 1;
		pthread_mutex_lock(&run->state_lock);
		bool fits = cs_warm_done_fits(&run->ck.done, n);
		bool was_done = cs_warm_done_has(&run->ck.done, n);
		pthread_mutex_unlock(&run->state_lock);
		if (!fits)
			return SRC_WAIT;
		int kind;
		if (s->pg != NULL) {
			bool bad;
			int rc = next_row(run, s, req, &bad, why, sizeof why);
			if (rc != SRC_REQUEST) {
				s->exhausted = true;
				return rc;
			}
			kind = bad ? CS_WARM_LINE_MALFORMED : CS_WARM_LINE_REQUEST;
		} else {
			size_t len;
			bool too_long;
			int rc = read_line(s, &len, &too_long);
			if (rc <= 0) {
				s->exhausted = true;
				if (rc == 0)
					return SRC_END;
				set_fatal(run, "reading the input: %s", strerror(errno));
				return SRC_FATAL;
			}
			if (too_long) {
				kind = CS_WARM_LINE_MALFORMED;
				snprintf(why, sizeof why, "line longer than %d bytes",
				        CS_WARM_LINE_MAX);
			} else {
				kind = cs_warm_line_parse(s->buf, len, req, why, sizeof why);
			}
		}
		s->line = n;
		if (was_done)
			continue; /* done by an earlier run: already counted in the checkpoint */
		if (kind == CS_WARM_LINE_REQUEST) {
			*line = n;
			return SRC_REQUEST;
		}
		if (kind == CS_WARM_LINE_EMPTY) {
			line_done(run, n, 'e', 0, NULL);
		} else {
			char text[CS_WARM_REASON_TEXT];
			snprintf(text, sizeof text, "malformed: %s", why);
			line_done(run, n, 's', CS_WARM_R_MALFORMED, text);
		}
	}
	return SRC_END;
}

/* Counts the lines of a file that are not blank or comment-only (the progress total), then
 * rewinds it. Returns 0 (unknown) when the file cannot be rewound. Blocks reading it. */
static uint64_t count_requests(FILE *f)
{
	uint64_t n = 0;
	int ch;
	bool start = true, counted = false;
	while ((ch = getc_unlocked(f)) != EOF) {
		if (ch == '\n') {
			start = true;
			counted = false;
			continue;
		}
		if (start && (ch == ' ' || ch == '\t' || ch == '\r'))
			continue;
		if (start && !counted && ch != '#')
			n++;
		start = false;
		counted = true;
	}
	if (ferror(f) || fseek(f, 0, SEEK_SET) != 0)
		return 0;
	clearerr(f);
	return n;
}

/* ---- Workers ----------------------------------------------------------------------------- */

/* One place in a worker's share of the in-flight window. */
enum slot_state {
	SLOT_FREE,  /* empty */
	SLOT_READY, /* holds a request not sent yet: waits for a token or its retry time */
	SLOT_SENT,  /* sent: waits for the reply to reqid */
};

typedef struct slot {
	int state;          /* enum slot_state */
	uint64_t line;      /* input line number */
	uint32_t reqid;     /* while SENT */
	int attempts;       /* sends so far */
	int64_t not_before; /* READY: monotonic ns before which it is not sent (retry backoff) */
	cs_warm_req req;
} slot;

typedef struct worker {
	warm_run *run;
	int window; /* slots */
	slot *slots;
	cs_client *c;
	pthread_t thread;
} worker;

/* Maps a client error code to a failure reason. */
static int reason_of(int code)
{
	switch (code) {
	case CS_CLIENT_E_UNKNOWN_QUERY:
		return CS_WARM_R_UNKNOWN_QUERY;
	case CS_CLIENT_E_BAD_PARAMS:
		return CS_WARM_R_BAD_PARAMS;
	case CS_CLIENT_E_OVERLOADED:
		return CS_WARM_R_OVERLOADED;
	case CS_CLIENT_E_UNAVAILABLE:
		return CS_WARM_R_UNAVAILABLE;
	case CS_CLIENT_E_TOO_LARGE:
		return CS_WARM_R_TOO_LARGE;
	case CS_CLIENT_E_AUTH:
		return CS_WARM_R_AUTH;
	case CS_CLIENT_E_SERVER_PROTOCOL:
		return CS_WARM_R_SERVER_PROTOCOL;
	case CS_CLIENT_E_INTERNAL:
		return CS_WARM_R_INTERNAL;
	case CS_CLIENT_E_SERVER_TIMEOUT:
		return CS_WARM_R_SERVER_TIMEOUT;
	case CS_CLIENT_E_SHUTTING_DOWN:
		return CS_WARM_R_SHUTTING_DOWN;
	case CS_CLIENT_E_IO:
		return CS_WARM_R_IO;
	case CS_CLIENT_E_TIMEOUT:
		return CS_WARM_R_TIMEOUT;
	case CS_CLIENT_E_CLOSED:
		return CS_WARM_R_CLOSED;
	case CS_CLIENT_E_PROTOCOL:
		return CS_WARM_R_BAD_REPLY;
	case CS_CLIENT_E_NOMEM:
		return CS_WARM_R_NOMEM;
	case CS_CLIENT_E_ARG:
		return CS_WARM_R_BAD_ARGUMENT;
	case CS_CLIENT_E_CONNECT:
		return CS_WARM_R_CONNECT;
	default:
		return CS_WARM_R_OTHER;
	}
}

/* Errors worth another try later: the daemon or a database is busy or briefly away. */
static bool transient(int code)
{
	return code == CS_CLIENT_E_OVERLOADED || code == CS_CLIENT_E_UNAVAILABLE ||
	       code == CS_CLIENT_E_SERVER_TIMEOUT || code == CS_CLIENT_E_SHUTTING_DOWN ||
	       code == CS_CLIENT_E_INTERNAL;
}

/* Backoff before retry number `attempt` (1, 2, ...): 200 ms doubling, at most 5 s. */
static int64_t backoff_ns(int attempt)
{
	int64_t ms = 200;
	for (int i = 1; i < attempt && ms < 5000; i++)
		ms *= 2;
	return (ms < 5000 ? ms : 5000) * 1000000;
}

/* The slot failed for good: counts it with the reason, frees it. */
static void slot_fail(worker *w, slot *sl, int code, const char *msg)
{
	char text[CS_WARM_REASON_TEXT], req[64];
	snprintf(text, sizeof text, "%s: %s [%s]", cs_client_strerror(code), msg,
	        cs_warm_req_format(&sl->req, req, sizeof req));
	line_done(w->run, sl->line, 'x', reason_of(code), text);
	sl->state = SLOT_FREE;
}

/* The request failed with `code`: retry it later if it may and has tries left. */
static void slot_retry_or_fail(worker *w, slot *sl, int code, const char *msg)
{
	if (sl->attempts <= w->run->o->retries) {
		sl->state = SLOT_READY;
		sl->not_before = now_ns() + backoff_ns(sl->attempts);
		return;
	}
	slot_fail(w, sl, code, msg);
}

/* The connection died (code, errstr): every request on it is retried or fails, and the
 * worker reconnects with backoff. Returns 0 when connected again, -1 when giving up (stop,
 * abort, or RECONNECT_GIVE_UP ms of failures: then the run is aborted). */
static int connection_lost(worker *w, int code)
{
	warm_run *run = w->run;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", cs_client_errstr(w->c));
	for (int i = 0; i < w->window; i++)
		if (w->slots[i].state == SLOT_SENT)
			slot_retry_or_fail(w, &w->slots[i], code, msg);
	cs_client_free(w->c);
	w->c = NULL;
	say(run, "connection lost (%s); reconnecting", msg);
	int64_t give_up = now_ns() + (int64_t)RECONNECT_GIVE_UP * 1000000;
	for (int attempt = 1;; attempt++) {
		if (atomic_load(&run->stop) || atomic_load(&run->abort))
			return -1;
		sleep_ns(backoff_ns(attempt));
		w->c = cs_client_connect(&run->o->client);
		if (w->c == NULL) {
			set_fatal(run, "out of memory");
			return -1;
		}
		if (cs_client_err(w->c) == 0)
			return 0;
		snprintf(msg, sizeof msg, "%s", cs_client_errstr(w->c));
		cs_client_free(w->c);
		w->c = NULL;
		if (now_ns() > give_up) {
			set_fatal(run, "cannot reconnect to the daemon: %s", msg);
			return -1;
		}
	}
}

/* Handles one reply. */
static void on_reply(worker *w, uint32_t reqid, cs_client_result *res)
{
	slot *sl = NULL;
	for (int i = 0; i < w->window; i++)
		if (w->slots[i].state == SLOT_SENT && w->slots[i].reqid == reqid)
			sl = &w->slots[i];
	if (sl == NULL) { /* the client library pairs replies with requests: cannot happen */
		cs_client_result_free(res);
		return;
	}
	const char *msg = NULL;
	int err = cs_client_result_err(res, &msg);
	if (err == 0) {
		/* From the database: the daemon says whether it stored the result (batch-tier
		 * answers and REFRESH wait for the fill). stored=false is a refusal (a fence,
		 * the horizon or the epoch refused the fill; or nothing to cache): counted as
		 * refused, not filled, and not a failure. Unsaid (an older daemon): filled. */
		char outcome = 'c';
		if (cs_client_result_source(res) != CS_CLIENT_SRC_CACHE)
			outcome = cs_client_result_stored(res) == 0 ? 'r' : 'f';
		line_done(w->run, sl->line, outcome, 0, NULL);
		sl->state = SLOT_FREE;
	} else if (transient(err)) {
		slot_retry_or_fail(w, sl, err, msg ? msg : "");
	} else {
		slot_fail(w, sl, err, msg ? msg : "");
	}
	cs_client_result_free(res);
}

/* Fills free slots from the input. Returns false once the input has no more lines. When
 * `may_wait` is false the input lock is only tried, so a worker with replies to read is not
 * held up by another one blocked reading the input. */
static bool fill_slots(worker *w, bool may_wait, bool *spread_wait)
{
	warm_run *run = w->run;
	bool more = true;
	*spread_wait = false;
	for (int i = 0; i < w->window; i++) {
		slot *sl = &w->slots[i];
		if (sl->state != SLOT_FREE)
			continue;
		if (may_wait)
			pthread_mutex_lock(&run->src_lock);
		else if (pthread_mutex_trylock(&run->src_lock) != 0)
			return true;
		int rc = source_next(run, &sl->req, &sl->line);
		pthread_mutex_unlock(&run->src_lock);
		if (rc == SRC_REQUEST) {
			sl->state = SLOT_READY;
			sl->attempts = 0;
			sl->not_before = 0;
			may_wait = false;
			continue;
		}
		if (rc == SRC_WAIT)
			*spread_wait = true;
		else
			more = false;
		break;
	}
	return more;
}

/* Sends READY slots while tokens last. Returns 0, or the fatal client error. *wait gets the
 * nanoseconds until the next slot could go (token or backoff), -1 when none waits. */
static int send_ready(worker *w, int64_t *wait)
{
	warm_run *run = w->run;
	int64_t now = now_ns();
	*wait = -1;
	for (int i = 0; i < w->window; i++) {
		slot *sl = &w->slots[i];
		if (sl->state != SLOT_READY)
			continue;
		if (sl->not_before > now) {
			int64_t left = sl->not_before - now;
			if (*wait < 0 || left < *wait)
				*wait = left;
			continue;
		}
		pthread_mutex_lock(&run->bucket_lock);
		int64_t t = cs_warm_bucket_take(&run->bucket, now);
		pthread_mutex_unlock(&run->bucket_lock);
		if (t > 0) {
			if (*wait < 0 || t < *wait)
				*wait = t;
			return 0;
		}
		cs_client_value params[CS_WARM_MAX_PARAMS];
		for (uint32_t k = 0; k < sl->req.nparams; k++)
			params[k] = sl->req.params[k] ? cs_client_text(sl->req.params[k])
			                              : cs_client_nil();
		cs_client_request rq = {sl->req.query, params, sl->req.nparams,
		        CS_CLIENT_TIER_BATCH, 0, false, NULL};
		sl->attempts++;
		int rc = cs_client_send(w->c, &rq, run->o->refresh, &sl->reqid);
		if (rc == 0) {
			sl->state = SLOT_SENT;
		} else if (rc == CS_CLIENT_E_TOO_LARGE || rc == CS_CLIENT_E_ARG) {
			slot_fail(w, sl, rc, cs_client_errstr(w->c)); /* nothing was sent */
		} else {
			sl->attempts--; /* never sent: the lost connection retries it for free */
			return rc;
		}
	}
	return 0;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	warm_run *run = w->run;
	bool more = true;
	while (!atomic_load(&run->abort)) {
		bool stopping = atomic_load(&run->stop);
		bool spread_wait = false;
		if (stopping) {
			/* Requests not sent yet stay undone: the checkpoint has them as not done.
			 */
			for (int i = 0; i < w->window; i++)
				if (w->slots[i].state == SLOT_READY)
					w->slots[i].state = SLOT_FREE;
		} else if (more) {
			more = fill_slots(w, cs_client_pending(w->c) == 0, &spread_wait);
		}
		int64_t wait = -1;
		int rc = stopping ? 0 : send_ready(w, &wait);
		if (rc == 0 && cs_client_pending(w->c) > 0) {
			/* Writes what was queued, then waits for a reply (at most timeout_ms). */
			uint32_t reqid;
			cs_client_result *res;
			rc = cs_client_recv(w->c, &reqid, &res);
			if (rc == 0) {
				on_reply(w, reqid, res);
				continue;
			}
		}
		if (rc != 0) {
			if (connection_lost(w, rc) != 0)
				break;
			continue;
		}
		bool ready = false;
		for (int i = 0; i < w->window && !ready; i++)
			ready = w->slots[i].state == SLOT_READY;
		if (!ready && (!more || stopping))
			break;
		/* Nothing in flight: wait for a token, a retry time, or the low-water mark. */
		if (wait < 0 || wait > 50000000)
			wait = spread_wait || wait < 0 ? 10000000 : 50000000;
		sleep_ns(wait);
	}
	atomic_fetch_sub(&run->live, 1);
	return NULL;
}

/* ---- Progress and report ----------------------------------------------------------------- */

static void fmt_duration(double s, char *buf, size_t len)
{
	if (s < 0 || !isfinite(s))
		snprintf(buf, len, "?");
	else if (s < 60)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void show_progress(warm_run *run, double elapsed)
{
	pthread_mutex_lock(&run->state_lock);
	cs_warm_counts c = run->ck.counts;
	pthread_mutex_unlock(&run->state_lock);
	uint64_t done = cs_warm_counts_done(&c);
	double rate = elapsed > 0 ? (double)(done - run->done_at_start) / elapsed : 0;
	char total[64] = "", eta[32] = "";
	if (run->total > 0) {
		char d[16];
		fmt_duration(
		        rate > 0 ? (double)(run->total - (done < run->total ? done : run->total)) /
		                           rate
		                 : -1,
		        d, sizeof d);
		snprintf(total, sizeof total, "/%" PRIu64 " (%.1f%%)", run->total,
		        100.0 * (double)done / (double)run->total);
		snprintf(eta, sizeof eta, "  ETA %s", d);
	}
	pthread_mutex_lock(&run->print_lock);
	fprintf(stderr,
	        "%s%s%" PRIu64 "%s  %.0f/s%s  filled %" PRIu64 " refused %" PRIu64
	        " cached %" PRIu64 " skipped %" PRIu64 " failed %" PRIu64 "%s",
	        run->tty ? "\r\033[K" : "", run->tty ? "warm " : "cachesvc-warm: ", done, total,
	        rate, eta, c.filled, c.refused, c.cached, c.skipped, c.failed,
	        run->tty ? "" : "\n");
	fflush(stderr);
	run->progress_shown = true;
	pthread_mutex_unlock(&run->print_lock);
}

typedef struct outcome {
	const char *status; /* "finished", "interrupted", "aborted", "incomplete" */
	int exit;
	double elapsed;
} outcome;

/* The final report as one JSON object on stdout (--json). */
static void report_json(warm_run *run, const cs_warm_counts *c, const outcome *oc, double rate)
{
	cs_sb s = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &s, false);
	cs_json_object(&j);
	cs_json_kv_str(&j, "status", oc->status);
	cs_json_kv_str(&j, "mode", run->o->refresh ? "refresh" : "get");
	cs_json_kv_str(&j, "input", run->ck.input);
	cs_json_kv_uint(&j, "done", cs_warm_counts_done(c));
	cs_json_key(&j, "total");
	if (run->total > 0)
		cs_json_uint(&j, run->total);
	else
		cs_json_null(&j);
	cs_json_kv_uint(&j, "filled", c->filled);
	cs_json_kv_uint(&j, "refused", c->refused);
	cs_json_kv_uint(&j, "already_cached", c->cached);
	cs_json_kv_uint(&j, "skipped", c->skipped);
	cs_json_kv_uint(&j, "failed", c->failed);
	cs_json_kv_uint(&j, "done_before", run->done_at_start);
	cs_json_kv_fixed(&j, "elapsed_s", oc->elapsed, 3);
	cs_json_kv_fixed(&j, "rate", rate, 1);
	cs_json_key(&j, "reasons");
	cs_json_object(&j);
	for (int r = 0; r < CS_WARM_NREASONS; r++) {
		if (c->reasons[r] == 0)
			continue;
		cs_json_kv_uint(&j, cs_warm_reason_name(r), c->reasons[r]);
	}
	cs_json_object_end(&j);
	cs_json_key(&j, "first_failures");
	cs_json_array(&j);
	for (uint32_t i = 0; i < c->nfailures; i++) {
		cs_json_object(&j);
		cs_json_kv_uint(&j, "line", c->failures[i].line);
		cs_json_kv_str(&j, "reason", c->failures[i].reason);
		cs_json_object_end(&j);
	}
	cs_json_array_end(&j);
	cs_json_kv_str(&j, "error", run->fatal[0] != '\0' ? run->fatal : NULL);
	cs_json_kv_int(&j, "exit", oc->exit);
	cs_json_object_end(&j);
	if (cs_sb_puts(&s, stdout) != 0)
		fputs("cachesvc-warm: out of memory writing the report\n", stderr);
	fflush(stdout);
}

static void report(warm_run *run, const cs_warm_counts *c, const outcome *oc)
{
	const warm_opts *o = run->o;
	uint64_t done = cs_warm_counts_done(c);
	double rate = oc->elapsed > 0 ? (double)(done - run->done_at_start) / oc->elapsed : 0;
	if (o->json) {
		report_json(run, c, oc, rate);
		return;
	}
	char d[16];
	fmt_duration(oc->elapsed, d, sizeof d);
	printf("cachesvc-warm: %s (%s): %" PRIu64 " lines done", oc->status,
	        o->refresh ? "refresh" : "fill missing", done);
	if (run->total > 0)
		printf(" of %" PRIu64, run->total);
	if (run->done_at_start > 0)
		printf(" (%" PRIu64 " by earlier runs)", run->done_at_start);
	printf(" in %s, %.0f/s\n", d, rate);
	printf("  filled          %" PRIu64 "\n  refused         %" PRIu64
	       "  (read from the database, not stored: see --help)"
	       "\n  already cached  %" PRIu64 "\n  skipped         %" PRIu64
	       "  (malformed lines)\n  failed          %" PRIu64 "\n",
	        c->filled, c->refused, c->cached, c->skipped, c->failed);
	bool any = false;
	for (int r = 0; r < CS_WARM_NREASONS; r++) {
		if (c->reasons[r] == 0)
			continue;
		printf("%s%s %" PRIu64, any ? ", " : "  by reason: ", cs_warm_reason_name(r),
		        c->reasons[r]);
		any = true;
	}
	if (any)
		putchar('\n');
	if (c->nfailures > 0)
		printf("  first problems:\n");
	for (uint32_t i = 0; i < c->nfailures; i++)
		printf("    line %" PRIu64 ": %s\n", c->failures[i].line, c->failures[i].reason);
	fflush(stdout);
}

/* ---- Setup ------------------------------------------------------------------------------- */

/* Opens the input and describes it: *id and run->ck.input. Returns 0 or -1 (printed). */
static int open_input(warm_run *run)
{
	const warm_opts *o = run->o;
	const char *mode = o->refresh ? "refresh" : "get";
	source *s = &run->src;
	if (o->sql != NULL) {
		/* every source connected before the first row: a wrong --conninfo fails the run
		 * at once, not after the earlier shards' rows */
		for (int i = 0; i < o->nconninfo; i++) {
			/* connect_timeout first, so a value in the conninfo (expanded later) wins
			 */
			const char *keys[] = {
			        "connect_timeout", "application_name", "dbname", NULL};
			const char *vals[] = {"10", "cachesvc-warm", o->conninfo[i], NULL};
			PGconn *c = PQconnectdbParams(keys, vals, 1);
			s->pgs[s->npg++] = c;
			if (c == NULL || PQstatus(c) != CONNECTION_OK) {
				char which[32] = "";
				if (o->nconninfo > 1)
					snprintf(which, sizeof which, " #%d", i + 1);
				fprintf(stderr, "cachesvc-warm: --conninfo%s: %s", which,
				        c ? PQerrorMessage(c) : "out of memory\n");
				return -1;
			}
		}
		char why[512];
		if (!send_sql(o, s, 0, why, sizeof why)) {
			fprintf(stderr, "cachesvc-warm: --from-sql: %s\n", why);
			return -1;
		}
		s->query = o->query;
		char ident[CS_WARM_INPUT_TEXT];
		snprintf(ident, sizeof ident, "%s\n%s", o->query, o->sql);
		/* rows of N sources in turn: another input than one's, and another for another
		 * list or order of sources (the ordinal of a row names a place in that sequence):
		 * the sources' conninfos, hashed in order, take the place of a file's size
		 * (review 31 R31-3: a count appended to the SQL was cut off with a long SQL, and
		 * a swapped list resumed at the wrong rows). One source: the id of before. */
		uint64_t srcs = 0;
		if (o->nconninfo > 1) {
			srcs = CS_FNV1A64_INIT;
			for (int i = 0; i < o->nconninfo; i++)
				srcs = cs_fnv1a64(srcs, o->conninfo[i], strlen(o->conninfo[i]) + 1);
		}
		run->ck.input_id = cs_warm_input_id("sql", ident, srcs, mode);
		snprintf(run->ck.input, sizeof run->ck.input, "sql query %s mode %s: %.300s",
		        o->query, mode, o->sql);
		return 0;
	}
	if (o->file == NULL || strcmp(o->file, "-") == 0) {
		s->f = stdin;
		snprintf(run->ck.input, sizeof run->ck.input, "stdin mode %s", mode);
		return 0;
	}
	s->f = fopen(o->file, "re");
	if (s->f == NULL) {
		fprintf(stderr, "cachesvc-warm: %s: %s\n", o->file, strerror(errno));
		return -1;
	}
	struct stat st;
	char path[PATH_MAX];
	if (fstat(fileno(s->f), &st) != 0 || realpath(o->file, path) == NULL) {
		fprintf(stderr, "cachesvc-warm: %s: %s\n", o->file, strerror(errno));
		return -1;
	}
	run->ck.input_id = cs_warm_input_id("file", path, (uint64_t)st.st_size, mode);
	snprintf(run->ck.input, sizeof run->ck.input, "file %s size %lld mode %s", path,
	        (long long)st.st_size, mode);
	if (S_ISREG(st.st_mode))
		run->total = count_requests(s->f);
	return 0;
}

/* Loads the checkpoint, if any, into run->ck. Returns 0 (fresh start or resume), 1 (the
 * checkpoint says the input is finished), -1 (error printed). */
static int load_checkpoint(warm_run *run)
{
	cs_warm_ckpt *ck = malloc(sizeof *ck);
	char err[512];
	if (ck == NULL) {
		fprintf(stderr, "cachesvc-warm: out of memory\n");
		return -1;
	}
	int rc = cs_warm_ckpt_load(ck, run->o->checkpoint, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "cachesvc-warm: checkpoint %s\n(remove it to start over)\n", err);
		free(ck);
		return -1;
	}
	if (rc == 0) {
		free(ck);
		return 0;
	}
	if (ck->input_id != run->ck.input_id) {
		fprintf(stderr,
		        "cachesvc-warm: checkpoint %s belongs to another input:\n"
		        "  checkpoint: %s\n  this run:   %s\n"
		        "(give another --checkpoint, or remove it to start this input over)\n",
		        run->o->checkpoint, ck->input, run->ck.input);
		free(ck);
		return -1;
	}
	run->ck.done = ck->done;
	run->ck.counts = ck->counts;
	run->ck.finished = ck->finished;
	run->done_at_start = cs_warm_counts_done(&ck->counts);
	free(ck);
	if (run->ck.finished)
		return 1;
	if (!run->o->quiet)
		fprintf(stderr,
		        "cachesvc-warm: resuming from %s: every line up to %" PRIu64 " and %" PRIu64
		        " after it done (%" PRIu64 " requests)\n",
		        run->o->checkpoint, run->ck.done.low, run->ck.done.nabove,
		        run->done_at_start);
	return 0;
}

/* Saves the checkpoint from a snapshot taken under the state lock. */
static int save_checkpoint(warm_run *run, bool finished)
{
	static cs_warm_ckpt snap; /* only the main thread saves */
	char err[512];
	if (run->o->checkpoint == NULL)
		return 0;
	pthread_mutex_lock(&run->state_lock);
	snap = run->ck;
	pthread_mutex_unlock(&run->state_lock);
	snap.finished = finished;
	if (cs_warm_ckpt_save(&snap, run->o->checkpoint, err, sizeof err) != 0) {
		say(run, "checkpoint: %s", err);
		return -1;
	}
	return 0;
}

static bool too_many_failures(const warm_opts *o, const cs_warm_counts *c)
{
	uint64_t bad = c->failed + c->skipped, done = cs_warm_counts_done(c);
	if (o->pct)
		return done > 0 && (double)bad * 100.0 > o->max_pct * (double)done;
	return bad > o->max_failures;
}

/* ---- Main -------------------------------------------------------------------------------- */

static warm_run the_run; /* large (the done bitmap): static, not on the stack */

/* Closes the input. */
static void close_input(warm_run *run)
{
	for (int i = 0; i < run->src.npg; i++)
		if (run->src.pgs[i] != NULL)
			PQfinish(run->src.pgs[i]);
	run->src.npg = 0;
	run->src.pg = NULL;
	if (run->src.f != NULL && run->src.f != stdin)
		fclose(run->src.f);
	run->src.f = NULL;
}

static void free_workers(worker *workers, int n)
{
	for (int i = 0; workers != NULL && i < n; i++) {
		cs_client_free(workers[i].c);
		free(workers[i].slots);
	}
	free(workers);
}

/* Allocates and connects the workers (not started). NULL after printing why. */
static worker *make_workers(warm_run *run)
{
	const warm_opts *o = run->o;
	worker *workers = calloc((size_t)o->conns, sizeof *workers);
	if (workers == NULL) {
		fprintf(stderr, "cachesvc-warm: out of memory\n");
		return NULL;
	}
	for (int i = 0; i < o->conns; i++) {
		worker *w = &workers[i];
		w->run = run;
		w->window = o->inflight / o->conns + (i < o->inflight % o->conns ? 1 : 0);
		w->slots = calloc((size_t)w->window, sizeof *w->slots);
		w->c = cs_client_connect(&o->client);
		if (w->slots == NULL || w->c == NULL) {
			fprintf(stderr, "cachesvc-warm: out of memory\n");
			free_workers(workers, o->conns);
			return NULL;
		}
		if (cs_client_err(w->c) != 0) {
			fprintf(stderr, "cachesvc-warm: cannot connect to the daemon: %s\n",
			        cs_client_errstr(w->c));
			free_workers(workers, o->conns);
			return NULL;
		}
	}
	return workers;
}

/* Runs the workers until the input is done, a signal or a fatal error; returns the exit
 * status after the report. */
static int run_workers(warm_run *run, worker *workers)
{
	const warm_opts *o = run->o;
	/* Signals go to the main thread only, which waits for them with a timeout. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	int64_t start = now_ns();
	cs_warm_bucket_init(&run->bucket, o->rate, o->burst, start);
	int started = 0;
	atomic_store(&run->live, o->conns);
	for (; started < o->conns; started++) {
		if (pthread_create(
		            &workers[started].thread, NULL, worker_main, &workers[started]) != 0) {
			set_fatal(run, "cannot start a thread");
			atomic_fetch_sub(&run->live, o->conns - started);
			break;
		}
	}

	int64_t next_ckpt = start + (int64_t)o->checkpoint_ms * 1000000;
	int64_t progress_every = run->tty ? 250000000 : (int64_t)o->progress_s * 1000000000;
	int64_t next_progress = start + progress_every;
	int64_t stop_deadline = 0;
	int signo = 0;
	bool detached = false;
	while (atomic_load(&run->live) > 0) {
		struct timespec tick = {0, 100000000};
		int sig = sigtimedwait(&sigs, NULL, &tick);
		int64_t now = now_ns();
		if (sig > 0) {
			if (atomic_load(&run->stop)) {
				say(run, "second signal: saving the checkpoint and exiting now");
				save_checkpoint(run, false);
				_exit(EXIT_INTERRUPTED);
			}
			signo = sig;
			say(run, "%s: finishing the requests in flight (again to quit at once)",
			        sig == SIGINT ? "interrupted" : "terminated");
			atomic_store(&run->stop, true);
			stop_deadline = now + ((int64_t)o->client.timeout_ms + 2000) * 1000000;
		}
		if (stop_deadline > 0 && now > stop_deadline) {
			/* A worker is stuck reading the input (stdin, or a silent database). */
			say(run, "workers did not stop in time; exiting");
			detached = true;
			break;
		}
		if (o->checkpoint != NULL && now >= next_ckpt) {
			save_checkpoint(run, false);
			next_ckpt = now + (int64_t)o->checkpoint_ms * 1000000;
		}
		if (!o->quiet && now >= next_progress) {
			show_progress(run, (double)(now - start) / 1e9);
			next_progress = now + progress_every;
		}
	}
	if (!detached)
		for (int i = 0; i < started; i++)
			pthread_join(workers[i].thread, NULL);
	double elapsed = (double)(now_ns() - start) / 1e9;
	if (run->tty && !detached)
		show_progress(run, elapsed); /* the last state on the redrawn line */
	if (run->tty && run->progress_shown)
		fputc('\n', stderr);

	pthread_mutex_lock(&run->state_lock);
	cs_warm_counts counts = run->ck.counts;
	bool all_done =
	        run->src.exhausted && run->ck.done.low == run->src.line && run->ck.done.nabove == 0;
	pthread_mutex_unlock(&run->state_lock);
	bool finished = all_done && !atomic_load(&run->abort) && !detached;
	int ck_rc = save_checkpoint(run, finished);

	outcome oc = {"finished", EXIT_OK, elapsed};
	if (atomic_load(&run->abort)) {
		oc.status = "aborted";
		oc.exit = EXIT_USAGE;
		say(run, "%s", run->fatal);
	} else if (!finished) {
		oc.status = signo != 0 ? "interrupted" : "incomplete";
		oc.exit = signo != 0 ? EXIT_INTERRUPTED : EXIT_USAGE;
	} else if (too_many_failures(o, &counts)) {
		oc.exit = EXIT_FAILURES;
	} else if (ck_rc != 0) {
		oc.exit = EXIT_USAGE;
	}
	if (!finished && o->checkpoint != NULL && ck_rc == 0)
		say(run, "progress saved in %s: run the same command again to resume",
		        o->checkpoint);
	report(run, &counts, &oc);
	if (detached)
		_exit(oc.exit); /* stuck threads: do not wait for them in exit() */
	return oc.exit;
}

int main(int argc, char **argv)
{
	warm_opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? EXIT_OK : EXIT_USAGE;
	warm_run *run = &the_run;
	run->o = &o;
	cs_warm_done_init(&run->ck.done);
	pthread_mutex_init(&run->src_lock, NULL);
	pthread_mutex_init(&run->state_lock, NULL);
	pthread_mutex_init(&run->bucket_lock, NULL);
	pthread_mutex_init(&run->print_lock, NULL);
	run->tty = !o.quiet && isatty(STDERR_FILENO);
	signal(SIGPIPE, SIG_IGN);

	int status = EXIT_USAGE;
	worker *workers = NULL;
	if (open_input(run) != 0)
		goto out;
	if (o.checkpoint != NULL) {
		rc = load_checkpoint(run);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			fprintf(stderr,
			        "cachesvc-warm: checkpoint %s says this input was warmed "
			        "completely; nothing to do (remove it to warm again)\n",
			        o.checkpoint);
			outcome oc = {"finished", EXIT_OK, 0};
			oc.exit = too_many_failures(&o, &run->ck.counts) ? EXIT_FAILURES : EXIT_OK;
			report(run, &run->ck.counts, &oc);
			status = oc.exit;
			goto out;
		}
	}
	/* Connect every worker before starting: a wrong address fails at once. */
	if ((workers = make_workers(run)) == NULL)
		goto out;
	status = run_workers(run, workers);
out:
	free_workers(workers, o.conns);
	close_input(run);
	return status;
}
