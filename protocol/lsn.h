/* lsn.h - PostgreSQL WAL positions (LSNs): parse and format "X/Y" text. Pure. */
#ifndef CS_LSN_H
#define CS_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An LSN as PostgreSQL prints it: two hex halves of a 64-bit byte position. */
typedef uint64_t cs_lsn_t;

#define CS_LSN_INVALID ((cs_lsn_t)0)
/* "FFFFFFFF/FFFFFFFF" plus NUL. */
#define CS_LSN_STRLEN 18

/* Parses "16/B374D848" (each half 1-8 hex digits, nothing else around it).
 * Returns true and stores the value in *out; false on any malformed input, and
 * *out is left untouched. `s` is NUL-terminated; it is only read. */
bool cs_lsn_parse(const char *s, cs_lsn_t *out);

/* Formats `lsn` as "X/Y" into buf (at least CS_LSN_STRLEN bytes). Returns buf. */
char *cs_lsn_format(cs_lsn_t lsn, char buf[CS_LSN_STRLEN]);

/* A read-your-writes token (backend/SHARDS.md section 5): "X/Y", or "NAME:X/Y" naming the
 * shard whose WAL the LSN is a position in ("s1:0/16B3748"). */
#define CS_TOKEN_MAX_SHARD 64 /* = CS_PROTO_MAX_SHARD */
/* "NAME:FFFFFFFF/FFFFFFFF" with a 64-byte name, plus NUL. */
#define CS_TOKEN_STRLEN (CS_TOKEN_MAX_SHARD + 1 + CS_LSN_STRLEN)
typedef struct cs_token {
	char shard[CS_TOKEN_MAX_SHARD + 1]; /* "" = a token without a shard */
	cs_lsn_t lsn;
} cs_token;

/* Parses a token: "X/Y" (as cs_lsn_parse; shard "") or "NAME:X/Y", NAME 1..64 bytes of
 * A-Z a-z 0-9 _ . - (the configuration's rule for shard names) and a nonzero LSN (a shard
 * names where a position is: 0/0 is none). Returns true and fills *out; false on anything
 * else (an empty or too long name, a bad LSN, a second ':'), and *out is left untouched. */
bool cs_token_parse(const char *s, cs_token *out);

/* Formats a token as "X/Y" or "NAME:X/Y" into buf (CS_TOKEN_STRLEN bytes). Returns buf. */
char *cs_token_format(const cs_token *t, char buf[CS_TOKEN_STRLEN]);

#endif
