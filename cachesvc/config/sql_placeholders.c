/* sql_placeholders.c - the $N parameters of a named query's SQL (config.c checks them
 * against its params). */
#include "sql_placeholders.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

static bool is_ident_char(int c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Scans sql for $N placeholders outside literals, quoted identifiers and comments.
 * Sets *highest and the bit (N-1) of *used for N <= 64. False on unterminated text. */
bool cs_sql_scan_placeholders(
        const char *sql, uint64_t *highest, uint64_t *used, char *why, size_t whylen)
{
	const char *s = sql;
	*highest = 0;
	*used = 0;
	while (*s) {
		unsigned char prev = s > sql ? (unsigned char)s[-1] : ' ';
		if (*s == '\'') {
			/* E'..' strings take backslash escapes; '' is a quote in both forms. */
			bool esc = s > sql && (prev == 'e' || prev == 'E') &&
			           !(s - 1 > sql && is_ident_char((unsigned char)s[-2]));
			s++;
			for (;;) {
				if (*s == '\0') {
					snprintf(why, whylen, "unterminated string literal");
					return false;
				}
				if (esc && *s == '\\' && s[1]) {
					s += 2;
					continue;
				}
				if (*s == '\'') {
					if (s[1] == '\'') {
						s += 2;
						continue;
					}
					break;
				}
				s++;
			}
			s++;
		} else if (*s == '"') {
			const char *e = strchr(s + 1, '"');
			while (e && e[1] == '"')
				e = strchr(e + 2, '"');
			if (!e) {
				snprintf(why, whylen, "unterminated quoted identifier");
				return false;
			}
			s = e + 1;
		} else if (s[0] == '-' && s[1] == '-') {
			s += strcspn(s, "\n");
		} else if (s[0] == '/' && s[1] == '*') {
			int depth = 1; /* PostgreSQL block comments nest */
			s += 2;
			while (depth > 0) {
				if (*s == '\0') {
					snprintf(why, whylen, "unterminated /* comment");
					return false;
				}
				if (s[0] == '/' && s[1] == '*') {
					depth++;
					s += 2;
				} else if (s[0] == '*' && s[1] == '/') {
					depth--;
					s += 2;
				} else {
					s++;
				}
			}
		} else if (*s == '$' && !is_ident_char(prev)) {
			if (isdigit((unsigned char)s[1])) {
				uint64_t n;
				s++;
				if (!cs_parse_digits(&s, &n))
					n = UINT64_MAX;
				if (n == 0) {
					snprintf(why, whylen, "$0 is not a parameter");
					return false;
				}
				if (n > *highest)
					*highest = n;
				if (n <= 64)
					*used |= 1ull << (n - 1);
				continue;
			}
			/* $tag$ ... $tag$ dollar quoting */
			const char *t = s + 1;
			while (*t && *t != '$' &&
			        (isalnum((unsigned char)*t) || *t == '_' ||
			                (unsigned char)*t >= 0x80))
				t++;
			if (*t != '$' || isdigit((unsigned char)s[1])) {
				s++;
				continue;
			}
			size_t taglen = (size_t)(t - s) + 1;
			const char *body = t + 1;
			const char *e = body;
			for (;;) {
				e = strchr(e, '$');
				if (!e) {
					snprintf(why, whylen, "unterminated dollar-quoted string");
					return false;
				}
				if (strncmp(e, s, taglen) == 0)
					break;
				e++;
			}
			s = e + taglen;
		} else {
			s++;
		}
	}
	return true;
}
