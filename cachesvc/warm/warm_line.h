/* warm_line.h - the line syntax of cachesvc-warm's key files: one request per line.
 *
 * Pure: no I/O, no allocation. The syntax (also in README.md, "Warm-up"):
 *   - A line is `QUERY PARAM PARAM ...`, words separated by spaces or tabs.
 *   - QUERY is a bare word of 1-64 characters from A-Z a-z 0-9 _ . - (as in the config).
 *   - A bare PARAM is taken as it is, except the word `null`, which is SQL NULL.
 *   - "double quotes" hold spaces and escapes: \" \\ \n \t \r ("null" is the text null);
 *     'single quotes' hold anything but a single quote, with no escapes.
 *     A quoted word ends at its closing quote, which must be followed by a blank or the
 *     end of the line; a bare word cannot contain a quote character.
 *   - `#` at the start of a word (outside quotes) begins a comment to the end of the line.
 *   - Blank lines and comment-only lines are ignored. A trailing \r (CRLF) is dropped.
 *   - At most CS_WARM_MAX_PARAMS parameters; a line is at most CS_WARM_LINE_MAX bytes.
 * Parameters are sent as text; the daemon converts them to the query's declared types. */
#ifndef CS_WARM_LINE_H
#define CS_WARM_LINE_H

#include <stddef.h>
#include <stdint.h>

#define CS_WARM_MAX_PARAMS 16   /* the protocol's limit per request */
#define CS_WARM_LINE_MAX   8192 /* bytes per line (or per SQL row), newline excluded */
#define CS_WARM_QUERY_MAX  64   /* bytes of a query name */

/* One parsed request. Every string points into `text`, so a request can be copied by value
 * (memcpy) only together with a fix-up: use cs_warm_req_copy. */
typedef struct cs_warm_req {
	const char *query;                      /* NUL-terminated, into text */
	uint32_t nparams;                       /* 0..CS_WARM_MAX_PARAMS */
	const char *params[CS_WARM_MAX_PARAMS]; /* NUL-terminated, into text; NULL = SQL NULL */
	char text[CS_WARM_LINE_MAX + CS_WARM_MAX_PARAMS + 2]; /* the decoded words */
} cs_warm_req;

/* What cs_warm_line_parse found. */
enum cs_warm_line_kind {
	CS_WARM_LINE_MALFORMED = -1, /* not a request: err says why (and at which column) */
	CS_WARM_LINE_EMPTY = 0,      /* blank or comment only: nothing to do */
	CS_WARM_LINE_REQUEST = 1,    /* *req holds a request */
};

/* Parses one line of `len` bytes (no newline; may contain anything, NUL included) into
 * *req. Returns an enum cs_warm_line_kind. On CS_WARM_LINE_MALFORMED, err (errlen bytes,
 * NUL-terminated) says why, with the 1-based column; *req is then unspecified. Borrows
 * `line` only during the call. */
int cs_warm_line_parse(const char *line, size_t len, cs_warm_req *req, char *err, size_t errlen)
        __attribute__((warn_unused_result));

/* Builds a request from a query name and nparams values (NULL = SQL NULL), e.g. a row of
 * the key-enumerating SQL. Returns 0, or -1 with err set when the name is invalid, there
 * are too many values or they do not fit in req->text. Borrows its arguments. */
int cs_warm_req_build(cs_warm_req *req, const char *query, const char *const *values,
        uint32_t nvalues, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Copies *src into *dst (pointers re-aimed into dst->text). */
void cs_warm_req_copy(cs_warm_req *dst, const cs_warm_req *src);

/* Writes the request back in the line syntax into buf (always NUL-terminated; cut short
 * with "..." when it does not fit). Returns buf. For messages. */
char *cs_warm_req_format(const cs_warm_req *req, char *buf, size_t buflen);

/* True when `name` is a valid query name (1-64 characters from A-Z a-z 0-9 _ . -). */
int cs_warm_query_name_ok(const char *name);

#endif
