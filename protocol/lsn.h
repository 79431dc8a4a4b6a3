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

#endif
