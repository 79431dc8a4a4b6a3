/* verify.h - the steps of the cache verifier (DESIGN.md section 5), shared by the
 * cachesvc-verify tool (verify_main.c, blocking) and the daemon's verifier sampler
 * (engine_sampler.c, on the event loop): what to make of each read, the key's parameters
 * for the primary, the wait for the invalidator, the verdict on one entry; and comparing a
 * cached result with a fresh one. No I/O: the callers read Redis and run the queries.
 *
 * The check of one entry, and why an entry that compares different is stale, not merely
 * racing:
 *   a. GET the entry E1 (cs_verify_first).
 *   b. Run its query with the key's parameters (cs_verify_key_params) on the primary (read
 *      committed, its own statement), then read L = pg_current_wal_lsn() (CS_VERIFY_LSN_SQL).
 *      Every commit the query saw ends at or before L.
 *   c. Wait (bounded) until the invalidator's confirmed position cs:inv:pos >= L
 *      (cs_verify_wait_step): every change committed before L has by then been applied to
 *      Redis (deleted its entries).
 *   d. GET the entry E2 (cs_verify_judge). If E2 != E1 the entry was invalidated or refilled
 *      while we looked: skip it. If E2 == E1, the entry survived every invalidation up to L,
 *      so by I1 it must reflect a state at least as new as any commit before L; it then has
 *      to equal what the primary returned in (b), which saw exactly those commits. A
 *      difference is a stale entry. */
#ifndef CS_VERIFY_H
#define CS_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "entry.h"
#include "params.h"

/* Compares two result objects ([cols, rows], protocol/PROTOCOL.md "result"): a is the
 * cached one, b the one just read from the primary. They are equal when they have the same
 * columns (names and types, in order) and the same rows: in the same order when `ordered`,
 * else as multisets (a query without ORDER BY may return its rows in any order). Values
 * compare by type and value (floats bit for bit, except that every NaN equals every NaN).
 * Returns 0 when equal; 1 when different, with a one-line description of the first
 * difference in diff (e.g. `row 2 column "name": cache "bob", primary "alice"`); or a
 * negative CS_ERR_* code when either input is not a well-formed result object (message in
 * diff) or on OOM. diff may be NULL when difflen is 0. Allocates temporarily (O(alen + blen)),
 * frees everything before returning; never blocks. */
int cs_verify_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, bool ordered,
        char *diff, size_t difflen) __attribute__((warn_unused_result));

/* True when the SQL has an ORDER BY at the outer level (parenthesis depth 0, outside
 * string literals, quoted identifiers, dollar quotes and comments): then the result's row
 * order is significant. ORDER BY inside a subquery, a window or an aggregate does not order
 * the result and does not count. Never blocks. */
bool cs_verify_sql_ordered(const char *sql);

/* ---- The check of one entry ---------------------------------------------------------- */

/* The primary's WAL position after the query (step b), as text (cs_lsn_parse). */
#define CS_VERIFY_LSN_SQL "SELECT pg_current_wal_lsn()::text"

/* The outcome of the check of one entry: ok, stale, or skipped for a reason (from
 * CS_VERIFY_GONE on). */
typedef enum cs_verify_outcome {
	CS_VERIFY_OK = 0,     /* equal to the primary's answer (cs_verify_first: go on) */
	CS_VERIFY_STALE,      /* unchanged while the invalidator passed L, and different */
	CS_VERIFY_GONE,       /* skipped: deleted (or expired) before the first read */
	CS_VERIFY_NOT_ENTRY,  /* skipped: the value is not a cache entry of this format */
	CS_VERIFY_BAD_KEY,    /* skipped: the key's parameters do not decode to canonical values */
	CS_VERIFY_QUERY,      /* skipped: the query failed on the primary, or its result cannot
			       * be encoded */
	CS_VERIFY_INV_BEHIND, /* skipped: the invalidator did not pass the primary's LSN in time */
	CS_VERIFY_CHANGED,    /* skipped: invalidated or refilled while being checked */
	CS_VERIFY__COUNT
} cs_verify_outcome;

#define CS_VERIFY_SKIPS (CS_VERIFY__COUNT - CS_VERIFY_GONE) /* skip reasons */

/* True for the skip outcomes (not a check: neither ok nor stale). */
static inline bool cs_verify_skipped(cs_verify_outcome o)
{
	return o >= CS_VERIFY_GONE;
}

/* Step a: the first read of the key. exists: the key was there; is_string: as a string
 * value; val[0..len): that value. Returns CS_VERIFY_OK with *e parsed (pointing into val)
 * when it is an entry to check, else CS_VERIFY_GONE or CS_VERIFY_NOT_ENTRY. */
cs_verify_outcome cs_verify_first(bool exists, bool is_string, const void *val, size_t len,
	cs_entry *e);

/* Step b: the parameters of q to run it with, from the canonical text canon[0..clen) of
 * a key (the part after "<ns>:e:<q>:<gen>:"). The key is trusted only when it is exactly
 * what the daemon would have written: canon(decanon(canon)) == canon. Returns the
 * parameters (the caller frees them with free()), or NULL (CS_VERIFY_BAD_KEY) with the
 * reason in err. */
cs_pg_params *cs_verify_key_params(const cs_query_def *q, const char *canon, size_t clen,
	char *err, size_t errlen) __attribute__((warn_unused_result));

/* Step c, one poll of cs:inv:pos. */
typedef enum cs_verify_wait {
	CS_VERIFY_PASSED = 0, /* the invalidator has passed L: go on to step d */
	CS_VERIFY_WAIT,	      /* poll again later */
	CS_VERIFY_BEHIND,     /* give up: CS_VERIFY_INV_BEHIND */
} cs_verify_wait;

/* pos: cs:inv:pos just read (missing or malformed: 0); lsn: L; now_us and deadline_us: the
 * clock and the end of the bounded wait. stalled (NULL: not kept) remembers the position at
 * which a wait last timed out: while the position has not moved past it, later entries give
 * up at once (one stalled invalidator must not cost the whole wait per entry). */
cs_verify_wait cs_verify_wait_step(uint64_t pos, uint64_t lsn, uint64_t now_us,
	uint64_t deadline_us, uint64_t *stalled);

/* Step d: the verdict. first[0..first_len): E1 as read in step a; exists, is_string,
 * again[0..again_len): the second read; fresh[0..fresh_len): the primary's result object
 * (step b); ordered: cs_verify_sql_ordered of the query. Returns CS_VERIFY_CHANGED (diff:
 * "deleted" or "rewritten"), CS_VERIFY_OK, CS_VERIFY_STALE (diff: the first difference; *e:
 * E1 parsed, for the report) or CS_VERIFY_NOT_ENTRY (diff: why the results do not compare). */
cs_verify_outcome cs_verify_judge(const void *first, size_t first_len, bool exists, bool is_string,
	const void *again, size_t again_len, const uint8_t *fresh, size_t fresh_len, bool ordered,
	cs_entry *e, char *diff, size_t difflen);

#endif
