/* decanon.h - the inverse of params.h's canonical parameter text: turns the <p> part of a
 * cache key back into wire values, so a tool (the verifier) can re-run the query a cached
 * entry was filled from. Pure: no I/O, no allocation. */
#ifndef CS_DECANON_H
#define CS_DECANON_H

#include <stddef.h>

#include "config.h"
#include "cs_proto.h"

/* Splits the canonical text canon[0..len) (not necessarily NUL-terminated) of query q into
 * q->nparams values out[0..q->nparams) such that cs_params_canon(q, out, ...) gives canon
 * back and cs_params_pg accepts them:
 *   "~"                 CS_V_NIL (any type)
 *   bool                CS_V_BOOL from "t" / "f"
 *   int2/int4/int8      CS_V_INT
 *   text                CS_V_STR, the %XX escapes decoded
 *   bytea               CS_V_BIN, the hex decoded
 *   timestamptz         CS_V_INT (microseconds), or CS_V_STR "infinity" / "-infinity"
 *   date                CS_V_STR "YYYY-MM-DD", "YYYY-MM-DD BC" (canonical "...BC"),
 *                       "infinity", "-infinity"
 *   float4/float8, numeric, uuid
 *                       CS_V_STR of the canonical text
 * String and binary values point into buf (which must hold at least len + q->nparams
 * bytes; that always suffices), never into canon: canon may be freed after the call; buf
 * must outlive `out`.
 * Returns 0; -CS_ERR_BAD_PARAMS with a message in err when the text is not canonical for
 * q's parameter types (wrong count, a character the form never contains, bad escapes); or
 * -CS_ERR_TOO_LARGE when buf is too small. Syntax is checked strictly; value ranges (an
 * int2 of 99999, a 31st of February) are left to cs_params_canon, which the caller runs
 * anyway: a key is only trusted when canon(decanon(key)) == key. Never blocks. */
int cs_params_decanon(const cs_query_def *q, const char *canon, size_t len, cs_value *out,
        char *buf, size_t buflen, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
