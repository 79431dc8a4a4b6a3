/* textutil.h - small pure helpers on bytes and text that the engine, the invalidator, the
 * codec and the tools share: header-only (static inline), so any of them can use one without
 * a link dependency and the hit path pays no call. */
#ifndef CS_TEXTUTIL_H
#define CS_TEXTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Strips trailing newlines and spaces in place (libpq and hiredis messages end in "\n"). */
static inline void cs_chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* The value of a hex digit (either case), or -1. */
static inline int cs_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* FNV-1a, 64 bits: folds p[0..n) into h. Start from CS_FNV1A64_INIT (or a value derived
 * from it); chain calls to hash several pieces. Not for anything an attacker must not
 * collide. */
#define CS_FNV1A64_INIT 14695981039346656037ull
static inline uint64_t cs_fnv1a64(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#endif
