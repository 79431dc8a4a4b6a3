/* warm_line.c - parser of cachesvc-warm's request lines (syntax in warm_line.h). Pure. */
#include "warm_line.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '.' || ch == '-';
}

int cs_warm_query_name_ok(const char *name)
{
	size_t n = 0;
	for (; name[n] != '\0'; n++)
		if (!name_char(name[n]))
			return 0;
	return n >= 1 && n <= CS_WARM_QUERY_MAX;
}

/* Parser state over one line: the input, the read position and the output cursor. The
 * decoded form of a word is never longer than its source, so out (sized line + one NUL per
 * word) cannot overflow: checked anyway, cheaply, before every byte written. */
typedef struct line_cursor {
	const char *in;
	size_t len, pos;
	char *out;
	size_t olen, opos;
	char *err;
	size_t errlen;
} line_cursor;

static int malformed(line_cursor *lc, size_t col, const char *why)
{
	snprintf(lc->err, lc->errlen, "%s (column %zu)", why, col + 1);
	return CS_WARM_LINE_MALFORMED;
}

static int put(line_cursor *lc, char ch)
{
	if (lc->opos >= lc->olen)
		return -1;
	lc->out[lc->opos++] = ch;
	return 0;
}

/* Reads the word starting at lc->pos into out. *quoted says whether it was quoted (so the
 * word null is NULL only when bare). Returns 0 or CS_WARM_LINE_MALFORMED. */
static int read_word(line_cursor *lc, bool *quoted)
{
	size_t start = lc->pos;
	char q = lc->in[lc->pos];
	*quoted = false;
	if (q == '"' || q == '\'') {
		*quoted = true;
		lc->pos++;
		for (;;) {
			if (lc->pos >= lc->len)
				return malformed(lc, start, "unterminated quote");
			char ch = lc->in[lc->pos++];
			if (ch == q)
				break;
			if (ch == '\0')
				return malformed(lc, lc->pos - 1, "NUL byte");
			if (ch == '\\' && q == '"') {
				if (lc->pos >= lc->len)
					return malformed(lc, start, "unterminated quote");
				char e = lc->in[lc->pos++];
				switch (e) {
				case '"':
				case '\\':
					ch = e;
					break;
				case 'n':
					ch = '\n';
					break;
				case 't':
					ch = '\t';
					break;
				case 'r':
					ch = '\r';
					break;
				default:
					return malformed(lc, lc->pos - 2,
					        "unknown escape (use \\\" \\\\ \\n \\t \\r)");
				}
			}
			if (put(lc, ch) != 0)
				return malformed(lc, lc->pos - 1, "line too long");
		}
		if (lc->pos < lc->len && !is_blank(lc->in[lc->pos]))
			return malformed(lc, lc->pos, "text right after a closing quote");
	} else {
		while (lc->pos < lc->len && !is_blank(lc->in[lc->pos])) {
			char ch = lc->in[lc->pos];
			if (ch == '"' || ch == '\'')
				return malformed(lc, lc->pos, "quote inside a bare word");
			if (ch == '\0')
				return malformed(lc, lc->pos, "NUL byte");
			if (put(lc, ch) != 0)
				return malformed(lc, lc->pos, "line too long");
			lc->pos++;
		}
	}
	if (put(lc, '\0') != 0)
		return malformed(lc, lc->pos, "line too long");
	return 0;
}

int cs_warm_line_parse(const char *line, size_t len, cs_warm_req *req, char *err, size_t errlen)
{
	line_cursor lc = {line, len, 0, req->text, sizeof req->text, 0, err, errlen};
	if (errlen > 0)
		err[0] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		lc.len = --len;
	if (len > CS_WARM_LINE_MAX)
		return malformed(&lc, CS_WARM_LINE_MAX, "line too long");
	req->query = NULL;
	req->nparams = 0;
	int nwords = 0;
	for (;;) {
		while (lc.pos < lc.len && is_blank(line[lc.pos]))
			lc.pos++;
		if (lc.pos >= lc.len || line[lc.pos] == '#')
			break;
		size_t start = lc.pos, ostart = lc.opos;
		bool quoted;
		int rc = read_word(&lc, &quoted);
		if (rc != 0)
			return rc;
		const char *word = lc.out + ostart;
		if (nwords == 0) {
			if (quoted || !cs_warm_query_name_ok(word))
				return malformed(&lc, start,
				        "bad query name (1-64 characters of A-Z a-z 0-9 _ . -)");
			req->query = word;
		} else {
			if (req->nparams == CS_WARM_MAX_PARAMS)
				return malformed(&lc, start, "too many parameters (at most 16)");
			req->params[req->nparams++] =
			        !quoted && strcmp(word, "null") == 0 ? NULL : word;
		}
		nwords++;
	}
	return nwords == 0 ? CS_WARM_LINE_EMPTY : CS_WARM_LINE_REQUEST;
}

int cs_warm_req_build(cs_warm_req *req, const char *query, const char *const *values,
        uint32_t nvalues, char *err, size_t errlen)
{
	if (!cs_warm_query_name_ok(query)) {
		snprintf(err, errlen, "bad query name \"%.64s\"", query);
		return -1;
	}
	if (nvalues > CS_WARM_MAX_PARAMS) {
		snprintf(err, errlen, "%u values: a request takes at most %d parameters", nvalues,
		        CS_WARM_MAX_PARAMS);
		return -1;
	}
	/* As for a line: at most CS_WARM_LINE_MAX bytes of words, plus one NUL per word. */
	size_t n = strlen(query) + 1, used = n, payload = n - 1;
	memcpy(req->text, query, n);
	req->query = req->text;
	req->nparams = nvalues;
	for (uint32_t i = 0; i < nvalues; i++) {
		if (values[i] == NULL) {
			req->params[i] = NULL;
			continue;
		}
		n = strlen(values[i]) + 1;
		payload += n - 1;
		if (payload > CS_WARM_LINE_MAX || n > sizeof req->text - used) {
			snprintf(err, errlen, "values longer than %d bytes in all",
			        CS_WARM_LINE_MAX);
			return -1;
		}
		memcpy(req->text + used, values[i], n);
		req->params[i] = req->text + used;
		used += n;
	}
	return 0;
}

void cs_warm_req_copy(cs_warm_req *dst, const cs_warm_req *src)
{
	memcpy(dst->text, src->text, sizeof dst->text);
	dst->query = src->query ? dst->text + (src->query - src->text) : NULL;
	dst->nparams = src->nparams;
	for (uint32_t i = 0; i < src->nparams; i++)
		dst->params[i] = src->params[i] ? dst->text + (src->params[i] - src->text) : NULL;
}

/* Appends s to buf at *pos; false once it no longer fits (buf then ends in "..."). */
static bool append(char *buf, size_t buflen, size_t *pos, const char *s, size_t n)
{
	if (*pos + n + 4 > buflen) {
		if (buflen >= 4) {
			size_t at = *pos + 3 < buflen ? *pos : buflen - 4;
			memcpy(buf + at, "...", 4);
		}
		*pos = buflen;
		return false;
	}
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
	return true;
}

/* A parameter needs quotes when it is empty, would read as null, a comment or a quoted
 * word, or holds a blank or a character the escapes cover. */
static bool needs_quotes(const char *p)
{
	if (*p == '\0' || *p == '#' || strcmp(p, "null") == 0)
		return true;
	for (; *p; p++)
		if (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'' || *p == '\\' ||
		        *p == '\n' || *p == '\r')
			return true;
	return false;
}

char *cs_warm_req_format(const cs_warm_req *req, char *buf, size_t buflen)
{
	size_t pos = 0;
	if (buflen == 0)
		return buf;
	buf[0] = '\0';
	if (req->query == NULL || !append(buf, buflen, &pos, req->query, strlen(req->query)))
		return buf;
	for (uint32_t i = 0; i < req->nparams; i++) {
		const char *p = req->params[i];
		if (!append(buf, buflen, &pos, " ", 1))
			return buf;
		if (p == NULL) {
			if (!append(buf, buflen, &pos, "null", 4))
				return buf;
			continue;
		}
		if (!needs_quotes(p)) {
			if (!append(buf, buflen, &pos, p, strlen(p)))
				return buf;
			continue;
		}
		if (!append(buf, buflen, &pos, "\"", 1))
			return buf;
		for (; *p; p++) {
			char esc[2] = {'\\', *p};
			const char *s = esc;
			size_t n = 2;
			if (*p == '\n')
				esc[1] = 'n';
			else if (*p == '\t')
				esc[1] = 't';
			else if (*p == '\r')
				esc[1] = 'r';
			else if (*p != '"' && *p != '\\') {
				s = p;
				n = 1;
			}
			if (!append(buf, buflen, &pos, s, n))
				return buf;
		}
		if (!append(buf, buflen, &pos, "\"", 1))
			return buf;
	}
	return buf;
}
