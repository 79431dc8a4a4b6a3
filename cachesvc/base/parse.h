/* parse.h - value grammars that know nothing of the configuration: decimal numbers, ports,
 * durations, sizes, booleans (parse.c); the configuration and the Redis URL use them. Pure:
 * no I/O, no allocation; each returns false on anything but a whole, in-range value. */
#ifndef CS_PARSE_H
#define CS_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Parses a run of decimal digits at *sp into *out and advances *sp past it; false (nothing
 * changed) on no digits or overflow. */
bool cs_parse_digits(const char **sp, uint64_t *out);
/* A whole string "1".."65535". */
bool cs_parse_port(const char *s, int *port);
/* Parses durations "250ms", "30s", "10m", "1h", "2d" (a bare number = seconds).
 * Returns false on anything else. */
bool cs_parse_duration(const char *s, int64_t *ms);
/* Parses sizes "512", "64kB", "1MB", "1GB" (binary multiples). */
bool cs_parse_size(const char *s, uint64_t *bytes);
/* true/yes/on/1, false/no/off/0 (any case). */
bool cs_parse_bool(const char *s, bool *out);
/* An optionally signed decimal integer. */
bool cs_parse_int64(const char *s, int64_t *out);
/* "10" or "10%" (no range check: the key table has it). */
bool cs_parse_percent(const char *s, int64_t *out);
/* A finite decimal number starting with a digit or '.'. */
bool cs_parse_double(const char *s, double *out);

#endif
