/* warm_ckpt.h - cachesvc-warm's progress record: which input lines are done (a low-water
 * mark plus the done lines above it), the outcome counters, and the checkpoint file that
 * makes a run resumable.
 *
 * Requests complete out of order, so "done" is a low-water mark L (every line 1..L is done)
 * plus a bitmap of the done lines in (L, L + CS_WARM_SPREAD]. The tool never hands out a
 * line beyond L + CS_WARM_SPREAD, which bounds the memory (8 KiB) however the input is.
 *
 * Checkpoint file (text, mode 0600, written to a fresh temp file, fsync'ed and renamed over
 * the old one):
 *
 *   cachesvc-warm checkpoint 1
 *   input 9f3c1a2b4d5e6f70 file /srv/keys.txt size 1234567 mode get
 *   low 4711
 *   done 4713 4714 4790                 (0+ lines, at most 16 numbers each, ascending)
 *   count filled 4000                   (filled, cached, skipped, failed)
 *   reason bad_params 2                 (one line per non-zero failure reason)
 *   failure 17 bad_params: server: ...  (the first CS_WARM_FAILURES_KEPT failures)
 *   finished 0                          (1: the whole input was done)
 *   end
 *
 * `input` carries the id of the input (cs_warm_input_id: a hash of the file's path and
 * size, or of the SQL and query name, and of the mode) and, for people, its description;
 * a checkpoint is only used for the input with the same id. Pure, except the two
 * functions that read and write the file. */
#ifndef CS_WARM_CKPT_H
#define CS_WARM_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CS_WARM_SPREAD        65536 /* lines done out of order that are tracked, at most */
#define CS_WARM_FAILURES_KEPT 5     /* failing lines remembered for the report */
#define CS_WARM_REASON_TEXT   160   /* bytes of one remembered failure's reason */
#define CS_WARM_INPUT_TEXT    512   /* bytes of the input description */

/* The done lines. Line numbers start at 1. */
typedef struct cs_warm_done {
	uint64_t low;                       /* every line 1..low is done */
	uint64_t nabove;                    /* done lines above low */
	uint64_t bits[CS_WARM_SPREAD / 64]; /* line n in (low, low + SPREAD] is bit n % SPREAD */
} cs_warm_done;

/* Why a line failed (or was skipped). Names are those of cs_client_strerror(), plus
 * "malformed" for lines the parser rejected. */
enum cs_warm_reason {
	CS_WARM_R_UNKNOWN_QUERY,
	CS_WARM_R_BAD_PARAMS,
	CS_WARM_R_OVERLOADED,
	CS_WARM_R_UNAVAILABLE,
	CS_WARM_R_TOO_LARGE,
	CS_WARM_R_AUTH,
	CS_WARM_R_SERVER_PROTOCOL,
	CS_WARM_R_INTERNAL,
	CS_WARM_R_SERVER_TIMEOUT,
	CS_WARM_R_SHUTTING_DOWN,
	CS_WARM_R_IO,
	CS_WARM_R_TIMEOUT,
	CS_WARM_R_CLOSED,
	CS_WARM_R_BAD_REPLY,
	CS_WARM_R_NOMEM,
	CS_WARM_R_BAD_ARGUMENT,
	CS_WARM_R_CONNECT,
	CS_WARM_R_MALFORMED,
	CS_WARM_R_OTHER,
	CS_WARM_NREASONS
};

/* Static name of a reason ("bad_params"); "other" when out of range. */
const char *cs_warm_reason_name(int reason);
/* The reason with that name, or -1. */
int cs_warm_reason_by_name(const char *name);

/* One remembered failure. */
typedef struct cs_warm_failure {
	uint64_t line;
	char reason[CS_WARM_REASON_TEXT]; /* "bad_params: server: ..." */
} cs_warm_failure;

/* The outcome counters (cumulative over resumed runs). */
typedef struct cs_warm_counts {
	uint64_t filled;  /* answered by the database: the daemon filled the cache */
	uint64_t refused; /* answered by the database, but the daemon did not store it
	                   * (stored=false: a fence, the horizon or the epoch refused the
	                   * fill, or nothing was to be cached); not a failure */
	uint64_t cached;  /* answered from the cache: already warm */
	uint64_t skipped; /* malformed lines */
	uint64_t failed;  /* requests that failed (after retries) */
	uint64_t reasons[CS_WARM_NREASONS]; /* failed + skipped, by reason */
	uint32_t nfailures;
	cs_warm_failure failures[CS_WARM_FAILURES_KEPT];
} cs_warm_counts;

/* Everything a checkpoint holds. */
typedef struct cs_warm_ckpt {
	uint64_t input_id;
	char input[CS_WARM_INPUT_TEXT]; /* description, one line */
	cs_warm_done done;
	cs_warm_counts counts;
	bool finished;
} cs_warm_ckpt;

/* ---- Done lines -------------------------------------------------------------------------- */

void cs_warm_done_init(cs_warm_done *d);
/* True when `line` is done. */
bool cs_warm_done_has(const cs_warm_done *d, uint64_t line);
/* True when `line` may be tracked now: line <= low + CS_WARM_SPREAD. */
bool cs_warm_done_fits(const cs_warm_done *d, uint64_t line);
/* Marks `line` done and advances the low-water mark over every done line after it.
 * Returns 1 if it was newly marked, 0 if it was done already, -1 (nothing changed) if
 * line is 0 or beyond low + CS_WARM_SPREAD. */
int cs_warm_done_mark(cs_warm_done *d, uint64_t line) __attribute__((warn_unused_result));

/* ---- Counters ---------------------------------------------------------------------------- */

/* Records one failed (skipped = false) or malformed (skipped = true) line, keeping the first
 * CS_WARM_FAILURES_KEPT with their text (reason is copied, cut to fit). */
void cs_warm_counts_fail(
        cs_warm_counts *c, bool skipped, int reason, uint64_t line, const char *text);
/* filled + refused + cached + skipped + failed. */
uint64_t cs_warm_counts_done(const cs_warm_counts *c);

/* ---- Checkpoint -------------------------------------------------------------------------- */

/* The id of an input: FNV-1a 64 over kind, identity, size and mode, each NUL-separated. */
uint64_t cs_warm_input_id(const char *kind, const char *identity, uint64_t size, const char *mode);

/* Writes the checkpoint text to f. Returns 0, or -1 on a write error (errno set). */
int cs_warm_ckpt_write(const cs_warm_ckpt *ck, FILE *f) __attribute__((warn_unused_result));
/* Reads a checkpoint from f into *ck. Returns 0, or -1 with err (errlen bytes) saying what
 * is wrong ("line 3: ..."). Reads at most 64 MiB; every number is range-checked. */
int cs_warm_ckpt_read(cs_warm_ckpt *ck, FILE *f, char *err, size_t errlen)
        __attribute__((warn_unused_result));

/* Saves atomically: writes a new temp file next to PATH ("PATH.tmp.<random>", created with
 * O_EXCL | O_NOFOLLOW, mode 0600: a planted file or symlink is never opened), fsyncs it,
 * renames it over PATH (a symlink at PATH is replaced, not followed) and fsyncs the
 * directory. The checkpoint is mode 0600. Returns 0, or -1 with err set. Blocks on disk I/O. */
int cs_warm_ckpt_save(const cs_warm_ckpt *ck, const char *path, char *err, size_t errlen)
        __attribute__((warn_unused_result));
/* Loads PATH: 1 loaded, 0 no such file (*ck untouched), -1 error (err set), also when PATH
 * is a symbolic link or not a regular file (opened with O_NOFOLLOW). */
int cs_warm_ckpt_load(cs_warm_ckpt *ck, const char *path, char *err, size_t errlen)
        __attribute__((warn_unused_result));

#endif
