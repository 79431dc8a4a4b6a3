/* config_ini.c - the INI reader of the configuration: file text in, one call per section
 * header, key = value line and continuation line out, each with its physical line number.
 * Pure: no I/O, no globals (config.c reads the file and builds the config from the calls).
 *
 * Why our own reader rather than inih: the loader needs what inih does not give, the line
 * of every header, key and continuation (for "file:line: [section] key: ..." errors), whole
 * section names (inih 55 cuts them at 49 bytes) and a refusal of over-long lines (inih
 * splits them silently). Feeding inih one line at a time while classifying every line
 * again "as inih will" made two parsers that had to agree, and inih's options are process
 * globals, which made loading a config unsafe next to any other thread doing the same
 * (library mode: cachesvc_sync_open). The grammar is small; owning it removes both.
 *
 * The grammar is inih's as cachesvc used it (multi-line values, inline comments):
 *   - a line is cut at '\n'; leading and trailing whitespace (isspace) is ignored;
 *   - blank lines and lines starting with ';' or '#' are comments;
 *   - an indented line after a key line (and no header since) continues that key's value;
 *   - "[text]" is a header: text is what lies between '[' and the first ']';
 *   - "name = value" or "name: value" is a key line (the first '=' or ':');
 *   - a ';' after whitespace starts an inline comment in a header (before its ']') and in
 *     a key line (before its '=' or ':', and in the value); a continuation line is taken
 *     whole, ';' included (as Debian's inih 55 did: the configs written for it keep their
 *     meaning);
 *   - anything else is a syntax error. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* The first of `chars` in [s, end), or a ';' that follows whitespace (an inline comment);
 * end when neither occurs. */
static char *find_char_or_comment(char *s, const char *end, const char *chars)
{
	bool was_space = false;
	for (; s < end; s++) {
		if ((chars && strchr(chars, *s)) || (was_space && *s == ';'))
			return s;
		was_space = isspace((unsigned char)*s) != 0;
	}
	return s;
}

static char *lskip(char *s, const char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Cuts trailing whitespace of [s, end) with a NUL; returns s. */
static char *rstrip(char *s, char *end)
{
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* One physical line, copied to `line` (NUL-terminated, len bytes). */
static enum cs_ini_result parse_line(char *line, size_t len, int lineno, bool *after_key,
        const cs_ini_handler *h, void *priv)
{
	char *end = line + len;
	while (end > line && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	char *start = lskip(line, end);
	if (start == end || *start == ';' || *start == '#')
		return CS_INI_OK;
	if (*after_key && start > line) /* inline comments stay: see the grammar above */
		return h->continuation(priv, lineno, start) ? CS_INI_OK : CS_INI_STOPPED;
	if (*start == '[') {
		char *rb = find_char_or_comment(start + 1, end, "]");
		if (rb == end || *rb != ']')
			return CS_INI_SYNTAX;
		*after_key = false;
		return h->section(priv, lineno, start + 1, (size_t)(rb - start - 1)) ? CS_INI_OK
		                                                                       : CS_INI_STOPPED;
	}
	char *eq = find_char_or_comment(start, end, "=:");
	if (eq == end || (*eq != '=' && *eq != ':'))
		return CS_INI_SYNTAX;
	char *value = eq + 1;
	char *c = find_char_or_comment(value, end, NULL);
	value = lskip(value, c);
	rstrip(value, c);
	char *name = rstrip(start, eq);
	*after_key = *name != '\0';
	return h->key(priv, lineno, name, value) ? CS_INI_OK : CS_INI_STOPPED;
}

enum cs_ini_result cs_ini_parse(
        const char *text, size_t len, const cs_ini_handler *h, void *priv, int *err_line)
{
	char *line = NULL;
	size_t cap = 0;
	bool after_key = false; /* a key line since the last header: indented lines continue it */
	int lineno = 0;
	enum cs_ini_result r = CS_INI_OK;
	for (size_t pos = 0; pos < len && r == CS_INI_OK;) {
		const char *p = text + pos;
		const char *nl = memchr(p, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - p) : len - pos;
		pos += n + (nl != NULL);
		lineno++;
		if (n > CS_INI_MAX_LINE) {
			r = CS_INI_LONG_LINE;
			break;
		}
		if (n + 1 > cap) {
			size_t ncap = cap ? cap : 256;
			while (ncap < n + 1)
				ncap *= 2;
			char *b = realloc(line, ncap);
			if (!b) {
				r = CS_INI_NOMEM;
				break;
			}
			line = b;
			cap = ncap;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		r = parse_line(line, n, lineno, &after_key, h, priv);
	}
	free(line);
	*err_line = r == CS_INI_OK ? 0 : lineno;
	return r;
}
