/* verify.h - the pure parts of the cache verifier (cachesvc-verify, DESIGN.md section 5):
 * comparing a cached result with a fresh one, and telling whether a query's row order is
 * significant. No I/O. */
#ifndef CS_VERIFY_H
#define CS_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
