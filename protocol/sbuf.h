/* sbuf.h - a string buffer, the one the engine and the tools build text in: growable (on the
 * heap, NUL-terminated, for whole documents: metrics, JSON, tables) or bounded (over the
 * caller's memory, counting past its end like snprintf, for fixed-size keys). Pure: no I/O
 * but cs_sb_puts.
 *
 * Puts never fail loudly: a growable buffer that runs out of memory marks itself failed and
 * ignores every later put, so a caller checks once at the end (cs_sb_take). */
#ifndef CS_SBUF_H
#define CS_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct cs_sb {
	char *p;      /* the text; growable: NULL until the first put, then NUL-terminated */
	size_t len;   /* bytes put; bounded: may exceed cap (what did not fit is still counted) */
	size_t cap;   /* bytes p can hold (growable: not counting the NUL) */
	bool bounded; /* p is the caller's: never grown, freed or NUL-terminated here */
	bool failed;  /* growable: out of memory; every later put does nothing */
} cs_sb;

/* An empty growable buffer (or zero-initialise one: cs_sb s = {0}). */
#define CS_SB_INIT {0}

/* A bounded buffer over buf[0..cap): puts write what fits and count the rest in len; no NUL
 * is written (the caller terminates at min(len, cap)). buf may be NULL when cap is 0, to
 * measure only. */
static inline cs_sb cs_sb_bounded(char *buf, size_t cap)
{
	return (cs_sb){.p = buf, .cap = cap, .bounded = true};
}

/* The slow path of cs_sb_put: growing, or a bounded buffer's end. */
void cs_sb_put_slow(cs_sb *s, const void *p, size_t n);

/* Appends n bytes. Never allocates when they fit (the hit path's bounded keys never do). */
static inline void cs_sb_put(cs_sb *s, const void *p, size_t n)
{
	if (s->p != NULL && s->len <= s->cap && n <= s->cap - s->len) {
		if (n > 0)
			memcpy(s->p + s->len, p, n);
		s->len += n;
		if (!s->bounded)
			s->p[s->len] = '\0';
		return;
	}
	cs_sb_put_slow(s, p, n);
}

static inline void cs_sb_str(cs_sb *s, const char *str)
{
	cs_sb_put(s, str, strlen(str));
}

static inline void cs_sb_ch(cs_sb *s, char c)
{
	cs_sb_put(s, &c, 1);
}

/* Appends printf-formatted text, whole whatever its length. */
void cs_sb_printf(cs_sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable buffer's text, handed to the caller (free() it): "" when nothing was put, NULL
 * when the buffer failed (then its memory is freed). The buffer is empty after. */
char *cs_sb_take(cs_sb *s);

/* Writes a growable buffer's text and a newline to f (the one I/O here), then frees it: 0, or
 * -1 when the buffer had failed (nothing is written). */
int cs_sb_puts(cs_sb *s, FILE *f);

/* Frees a growable buffer's memory; it is empty and reusable after. */
void cs_sb_free(cs_sb *s);

#endif
