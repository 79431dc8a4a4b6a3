/* config_invalidate_on.c - the invalidate_on grammar of a [query]: which row changes drop
 * which cache keys ("messages(conv_id = $1), users"), into cs_inval_rule (config.h).
 *
 * It lives here rather than beside the key mapping (cachesvc/invalidator/mapping.c, which reads the
 * rules) so that the configuration does not depend on invalidation/: the rules are config
 * types, and invalidation/ already depends on cachesvc/. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "parse.h"

static char *strndup_or_null(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* Reads one identifier: "Quoted ""x""" kept as written, or unquoted folded to lower case
 * as PostgreSQL does. Returns a malloc'ed string or NULL (why set). */
static char *parse_ident(const char **sp, const char *what, char *why, size_t whylen)
{
	const char *s = cs_cfg_skip_space(*sp);
	char buf[CS_CFG_MAX_PG_IDENT + 1];
	size_t n = 0;
	char qv[80];
	if (*s == '"') {
		s++;
		for (;;) {
			if (*s == '\0') {
				snprintf(why, whylen, "unterminated quoted %s", what);
				return NULL;
			}
			if (*s == '"') {
				if (s[1] != '"')
					break;
				s++;
			}
			if (n == CS_CFG_MAX_PG_IDENT) {
				snprintf(
				        why, whylen, "%s longer than %d bytes", what, CS_CFG_MAX_PG_IDENT);
				return NULL;
			}
			buf[n++] = *s++;
		}
		s++;
		if (n == 0) {
			snprintf(why, whylen, "empty quoted %s", what);
			return NULL;
		}
	} else {
		if (!(isalpha((unsigned char)*s) || *s == '_')) {
			char tmp[40];
			snprintf(tmp, sizeof(tmp), "%s", s);
			snprintf(why, whylen, "expected a %s at %s", what,
			        *s ? cs_cfg_quote(tmp, qv, sizeof(qv)) : "end of value");
			return NULL;
		}
		while (isalnum((unsigned char)*s) || *s == '_' || *s == '$') {
			if (n == CS_CFG_MAX_PG_IDENT) {
				snprintf(
				        why, whylen, "%s longer than %d bytes", what, CS_CFG_MAX_PG_IDENT);
				return NULL;
			}
			buf[n++] = (char)tolower((unsigned char)*s++);
		}
	}
	*sp = s;
	char *r = strndup_or_null(buf, n);
	if (!r)
		snprintf(why, whylen, "out of memory");
	return r;
}

static void inval_rule_free(cs_inval_rule *r)
{
	free(r->schema);
	free(r->table);
	for (int i = 0; i < r->ncols; i++)
		free(r->cols[i]);
	memset(r, 0, sizeof(*r));
}

void cs_cfg_inval_free(cs_query_def *q)
{
	for (int i = 0; i < q->ninval; i++)
		inval_rule_free(&q->inval[i]);
	q->ninval = 0;
}

/* One clause: [schema.]table [ "(" col = $N {, col = $N} ")" ]. */
static bool parse_inval_clause(
        const char **sp, cs_query_def *q, cs_inval_rule *r, char *why, size_t whylen)
{
	const char *s = *sp;
	char *first = parse_ident(&s, "table name", why, whylen);
	if (!first)
		return false;
	s = cs_cfg_skip_space(s);
	if (*s == '.') {
		s++;
		r->schema = first;
		r->table = parse_ident(&s, "table name", why, whylen);
		if (!r->table)
			return false;
	} else {
		r->table = first;
		r->schema = strdup("public");
		if (!r->schema) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
	}
	s = cs_cfg_skip_space(s);
	if (*s != '(') {
		*sp = s;
		return true;
	}
	s++;
	bool bound[CS_MAX_PARAMS] = {false};
	for (;;) {
		if (r->ncols == CS_MAX_KEYCOLS) {
			snprintf(why, whylen, "%s: more than %d key columns", r->table,
			        CS_MAX_KEYCOLS);
			return false;
		}
		char *col = parse_ident(&s, "column name", why, whylen);
		if (!col)
			return false;
		r->cols[r->ncols] = col;
		for (int i = 0; i < r->ncols; i++) {
			if (strcmp(r->cols[i], col) == 0) {
				snprintf(why, whylen, "%s: column %s listed twice", r->table, col);
				r->ncols++;
				return false;
			}
		}
		r->ncols++;
		s = cs_cfg_skip_space(s);
		if (*s != '=') {
			snprintf(why, whylen, "%s: expected \"= $N\" after column %s", r->table,
			        col);
			return false;
		}
		s = cs_cfg_skip_space(s + 1);
		uint64_t n;
		if (*s != '$' || (s++, !cs_parse_digits(&s, &n))) {
			snprintf(why, whylen, "%s: column %s must be bound to a parameter $N",
			        r->table, col);
			return false;
		}
		if (n < 1 || n > (uint64_t)q->nparams) {
			snprintf(why, whylen, "%s(%s = $%" PRIu64 "): the query has %d parameter%s",
			        r->table, col, n, q->nparams, q->nparams == 1 ? "" : "s");
			return false;
		}
		if (bound[n - 1]) {
			snprintf(why, whylen, "%s: $%" PRIu64 " bound twice", r->table, n);
			return false;
		}
		bound[n - 1] = true;
		r->param_index[r->ncols - 1] = (int)n - 1;
		s = cs_cfg_skip_space(s);
		if (*s == ',') {
			s++;
			continue;
		}
		if (*s == ')') {
			s++;
			break;
		}
		snprintf(why, whylen, "%s: expected ',' or ')' after $%" PRIu64, r->table, n);
		return false;
	}
	/* A row of the table must give the whole cache key, or the key is not computable. */
	for (int i = 0; i < q->nparams; i++) {
		if (!bound[i]) {
			snprintf(why, whylen,
			        "%s(...) does not bind $%d (%s): a %s row cannot give the whole "
			        "key; "
			        "bind every parameter, or invalidate on the whole table: %s",
			        r->table, i + 1, q->params[i].name, r->table, r->table);
			return false;
		}
	}
	*sp = s;
	return true;
}

bool cs_cfg_parse_invalidate_on(const char *v, cs_query_def *q, char *why, size_t whylen)
{
	cs_cfg_inval_free(q);
	const char *s = cs_cfg_skip_space(v);
	if (*s == '\0')
		return true;
	for (;;) {
		if (q->ninval == CS_MAX_INVALIDATE) {
			snprintf(why, whylen, "more than %d clauses", CS_MAX_INVALIDATE);
			return false;
		}
		cs_inval_rule *r = &q->inval[q->ninval++];
		if (!parse_inval_clause(&s, q, r, why, whylen))
			return false;
		s = cs_cfg_skip_space(s);
		if (*s == '\0')
			return true;
		if (*s != ',') {
			char tmp[40], qv[80];
			snprintf(tmp, sizeof(tmp), "%s", s);
			snprintf(why, whylen, "expected ',' between clauses at %s",
			        cs_cfg_quote(tmp, qv, sizeof(qv)));
			return false;
		}
		s = cs_cfg_skip_space(s + 1);
	}
}
