/* log.h - leveled logging to stderr, one line per call, never a secret in it, never blocking. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef enum cs_log_level {
	CS_LOG_DEBUG = 0, /* per-request detail: off in production */
	CS_LOG_INFO,	  /* lifecycle: start, connect, reload, slot events */
	CS_LOG_WARNING,	  /* degraded but serving: a replica banned, Redis down */
	CS_LOG_ERROR,	  /* an operation failed and was given up */
} cs_log_level;

void cs_log_set_level(cs_log_level level);
cs_log_level cs_log_get_level(void);
/* Line format: text ("2026-11-21 04:40:00.123 UTC [pid] LEVEL msg"), journal ("<N>LEVEL
 * msg": a syslog priority journald takes as the level, no timestamp: the journal has it), or
 * auto (journal when stderr is the journal's stream, per JOURNAL_STREAM; the default). */
typedef enum { CS_LOG_FORMAT_AUTO, CS_LOG_FORMAT_TEXT, CS_LOG_FORMAT_JOURNAL } cs_log_format;
void cs_log_set_format(cs_log_format f);

/* Parses "debug" | "info" | "warning" | "error". */
bool cs_log_parse_level(const char *s, cs_log_level *out);

/* Formats one line ("2026-11-21 04:40:00.123 UTC [pid] WARNING msg") and writes it with a
 * single write(2), so lines from several processes do not interleave. Callers never pass
 * passwords: conninfo strings go through cs_log_mask_conninfo first.
 * Never blocks (log.c): when stderr is a full pipe, the line waits in a bounded queue
 * behind the lines before it, or is dropped and counted (cs_log_dropped) when the queue is
 * full; a WARNING line later says how many were dropped. Thread-safe. */
void cs_log(cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Masking secrets (log_mask.c; pure, no I/O). Each writes at most buflen - 1 bytes and a
 * NUL, cut short when it does not fit; NULL input gives "". */
/* Copies `conninfo` (key=value or a postgres:// URI) into buf with any password value
 * replaced by "***". */
void cs_log_mask_conninfo(const char *conninfo, char *buf, size_t buflen);
/* Copies a Redis URL into buf with its password replaced by "***". */
void cs_log_mask_redis_url(const char *url, char *buf, size_t buflen);
/* Copies libpq's error message `msg` about a conninfo into out, on one line, with every
 * "quoted" fragment that does not appear in `masked` (the cs_log_mask_conninfo form of
 * that conninfo) replaced by "***": libpq may quote a password back. */
void cs_log_scrub_libpq_message(const char *msg, const char *masked, char *out, size_t outlen);

/* A libpq notice processor (PQsetNoticeProcessor(conn, cs_log_pg_notice, name)): a server
 * notice ("WARNING:  ...\n") becomes one log line "postgres NAME: WARNING: ...", at WARNING
 * for warnings and INFO otherwise, instead of libpq's raw, blocking write to stderr. name
 * must outlive the connection. */
void cs_log_pg_notice(void *name, const char *message);

/* Lines dropped since the start because stderr was full or gone (for
 * cachesvc_log_dropped_total). */
uint64_t cs_log_dropped(void);
/* Bytes of lines waiting for stderr to take them (0 in the normal case). */
size_t cs_log_queued(void);

/* Lets the queue be written out as soon as stderr is writable again, from base's loop
 * (without it, queued lines go out at the next cs_log call). Call from the thread that runs
 * base, once; cs_log_detach before freeing base. Returns 0, or -1 (out of memory). */
int cs_log_attach(struct event_base *base) __attribute__((warn_unused_result));
void cs_log_detach(void);

#define cs_debug(...)                                                                      \
	do {                                                                               \
		if (cs_log_get_level() <= CS_LOG_DEBUG)                                    \
			cs_log(CS_LOG_DEBUG, __VA_ARGS__);                                 \
	} while (0)
#define cs_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_warn(...)  cs_log(CS_LOG_WARNING, __VA_ARGS__)
#define cs_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)

#endif
