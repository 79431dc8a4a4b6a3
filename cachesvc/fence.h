/* fence.h - the Lua scripts that make fills and invalidations atomic in Redis, and the
 * argument (fence.c) for why no stale entry survives a race (invariant I1).
 *
 * LSNs travel to and from the scripts as 16 upper-case hex digits, so Lua compares them
 * as strings (Lua numbers are doubles: 53 bits are not enough for an LSN). */
#ifndef CS_FENCE_H
#define CS_FENCE_H

#include <stddef.h>
#include <stdint.h>

enum cs_script {
	/* KEYS entry, fence, gen, horizon; ARGV value, px, data_lsn, gen, fence_on
	 * -> {status, current_gen}: 1 stored, 0 generation moved, -1 no live horizon,
	 *    -2 data older than the horizon, -3 a newer fence */
	CS_SCRIPT_FILL = 0,
	/* KEYS fence_1, gen_1, ..., fence_n, gen_n; ARGV lsn, fence_px, q_1, p_1, ..., q_n, p_n
	 * -> number of entries deleted. Deletes cs:e:<q>:<current gen>:<p> and raises each
	 * fence to lsn (never lowers it), refreshing its TTL. */
	CS_SCRIPT_INVAL,
	/* KEYS gen; ARGV channel, query -> the new generation (INCR + PUBLISH "<q> <g>") */
	CS_SCRIPT_GEN_BUMP,
	/* KEYS key; ARGV lsn, px: raises a monotonic LSN key (horizon, position) to lsn (never
	 * lowers it) and sets its TTL (px = 0: no TTL). -> the value now stored */
	CS_SCRIPT_RAISE,
	CS_SCRIPT_COUNT
};

extern const char *const cs_scripts[CS_SCRIPT_COUNT];

/* "0000001600B374D8": 16 upper-case hex digits and a NUL. */
void cs_lsn_hex(uint64_t lsn, char out[17]);
/* Parses 16 hex digits (as stored in Redis); false on anything else. */
int cs_lsn_unhex(const char *s, size_t len, uint64_t *out);

#endif
