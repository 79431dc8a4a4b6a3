/* sbuf.c - the string buffer's slow paths: growing, a bounded buffer's end, printf. */
#include "sbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void cs_sb_put_slow(cs_sb *s, const void *p, size_t n)
{
	if (s->bounded) {
		if (s->len < s->cap)
			memcpy(s->p + s->len, p, s->cap - s->len < n ? s->cap - s->len : n);
		s->len += n;
		return;
	}
	if (s->failed)
		return;
	if (s->p == NULL || n > s->cap - s->len) {
		if (n > SIZE_MAX / 2 - s->len) {
			s->failed = true;
			return;
		}
		size_t cap = s->cap ? s->cap + 1 : 256; /* allocation size, the NUL included */
		while (cap < s->len + n + 1)
			cap *= 2;
		char *np = realloc(s->p, cap);
		if (np == NULL) {
			s->failed = true;
			return;
		}
		s->p = np;
		s->cap = cap - 1;
	}
	if (n > 0)
		memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

void cs_sb_printf(cs_sb *s, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n < sizeof tmp) {
		cs_sb_put(s, tmp, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1); /* rare: long text (never a bounded key's fields) */
	if (big == NULL) {
		if (s->bounded)
			s->len += (size_t)n;
		else
			s->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	cs_sb_put(s, big, (size_t)n);
	free(big);
}

char *cs_sb_take(cs_sb *s)
{
	char *p = s->p;
	if (s->failed) {
		free(p);
		p = NULL;
	} else if (p == NULL) {
		p = calloc(1, 1);
	}
	*s = (cs_sb)CS_SB_INIT;
	return p;
}

int cs_sb_puts(cs_sb *s, FILE *f)
{
	char *t = cs_sb_take(s);
	if (t == NULL)
		return -1;
	fputs(t, f);
	fputc('\n', f);
	free(t);
	return 0;
}

void cs_sb_free(cs_sb *s)
{
	if (!s->bounded)
		free(s->p);
	*s = (cs_sb)CS_SB_INIT;
}
