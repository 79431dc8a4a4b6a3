/* mapping.c - from decoded row changes to the cache keys they affect (pure). */
#include "mapping.h"

#include <stdlib.h>
#include <string.h>

#include "params.h"

/* One invalidate_on clause of one query, copied out of the config. */
typedef struct rule {
	int query;
	int ncols;			   /* 0: whole table */
	char *param_col[CS_MAX_PARAMS];	   /* column bound to parameter p (keyed rules) */
	cs_param_type param_type[CS_MAX_PARAMS];
	int nparams;
	struct rule *next; /* next rule on the same table */
} rule;

typedef struct table {
	char *schema, *name;
	rule *rules;
	struct table *next; /* hash chain */
} table;

typedef struct qinfo {
	char name[CS_MAX_NAME + 1];
	int64_t min_lifetime_ms;
	bool depends;
} qinfo;

#define TABLE_BUCKETS 256

struct cs_inv_map {
	table *buckets[TABLE_BUCKETS];
	qinfo *queries;
	int nqueries;
};

static unsigned hash2(const char *a, const char *b)
{
	unsigned h = 2166136261u;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	h = (h ^ '.') * 16777619u;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 16777619u;
	return h % TABLE_BUCKETS;
}

static table *find_table(const cs_inv_map *m, const char *schema, const char *name)
{
	for (table *t = m->buckets[hash2(schema, name)]; t; t = t->next)
		if (strcmp(t->schema, schema) == 0 && strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

cs_inv_map *cs_inv_map_new(const cs_config *cfg)
{
	return cs_inv_map_new_shard(cfg, -1);
}

cs_inv_map *cs_inv_map_new_shard(const cs_config *cfg, int shard)
{
	cs_inv_map *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	m->nqueries = cfg->nqueries;
	m->queries = calloc((size_t)(cfg->nqueries ? cfg->nqueries : 1), sizeof *m->queries);
	if (m->queries == NULL)
		goto oom;
	for (int qi = 0; qi < cfg->nqueries; qi++) {
		const cs_query_def *q = &cfg->queries[qi];
		memcpy(m->queries[qi].name, q->name, sizeof q->name);
		m->queries[qi].min_lifetime_ms = q->min_lifetime_ms;
		/* pinned to another shard: that shard's invalidator maps it, not this one */
		int ninval = shard >= 0 && q->shard_index >= 0 && q->shard_index != shard
		                     ? 0
		                     : q->ninval;
		m->queries[qi].depends = ninval > 0;
		for (int ri = 0; ri < ninval; ri++) {
			const cs_inval_rule *ir = &q->inval[ri];
			table *t = find_table(m, ir->schema, ir->table);
			if (t == NULL) {
				t = calloc(1, sizeof *t);
				if (t == NULL)
					goto oom;
				t->schema = strdup(ir->schema);
				t->name = strdup(ir->table);
				unsigned h = hash2(ir->schema, ir->table);
				t->next = m->buckets[h];
				m->buckets[h] = t;
				if (t->schema == NULL || t->name == NULL)
					goto oom;
			}
			rule *r = calloc(1, sizeof *r);
			if (r == NULL)
				goto oom;
			r->query = qi;
			r->ncols = ir->ncols;
			r->nparams = q->nparams;
			r->next = t->rules;
			t->rules = r;
			for (int p = 0; p < q->nparams; p++)
				r->param_type[p] = q->params[p].type;
			/* config validation: a keyed rule binds every parameter exactly once */
			for (int c = 0; c < ir->ncols; c++) {
				int p = ir->param_index[c];
				if (p >= 0 && p < CS_MAX_PARAMS) {
					r->param_col[p] = strdup(ir->cols[c]);
					if (r->param_col[p] == NULL)
						goto oom;
				}
			}
		}
	}
	return m;
oom:
	cs_inv_map_free(m);
	return NULL;
}

void cs_inv_map_free(cs_inv_map *m)
{
	if (m == NULL)
		return;
	for (int b = 0; b < TABLE_BUCKETS; b++) {
		table *t = m->buckets[b];
		while (t) {
			table *tn = t->next;
			rule *r = t->rules;
			while (r) {
				rule *rn = r->next;
				for (int p = 0; p < CS_MAX_PARAMS; p++)
					free(r->param_col[p]);
				free(r);
				r = rn;
			}
			free(t->schema);
			free(t->name);
			free(t);
			t = tn;
		}
	}
	free(m->queries);
	free(m);
}

int cs_inv_map_nqueries(const cs_inv_map *m)
{
	return m->nqueries;
}

const char *cs_inv_map_query_name(const cs_inv_map *m, int query)
{
	return m->queries[query].name;
}

int64_t cs_inv_map_min_lifetime(const cs_inv_map *m, int query)
{
	return m->queries[query].min_lifetime_ms;
}

bool cs_inv_map_depends(const cs_inv_map *m, int query)
{
	return m->queries[query].depends;
}

bool cs_inv_map_has_table(const cs_inv_map *m, const char *schema, const char *name)
{
	return find_table(m, schema, name) != NULL;
}

/* ---- Keys from tuples ------------------------------------------------------------------- */

enum key_status { KEY_OK, KEY_UNKNOWN };

/* Where a tuple's column values come from: the tuple itself, with a fallback tuple for
 * unchanged-TOAST columns ('u' in the new row of an UPDATE: the value is in the old
 * full row when REPLICA IDENTITY FULL sent one). */
typedef struct row_view {
	const cs_pgo_relation *rel;
	const cs_pgo_tuple *tup;
	char kind;		      /* 'N' new row, 'K' old key, 'O' old full row */
	const cs_pgo_tuple *fallback; /* old 'O' row for 'u' columns, or NULL */
} row_view;

/* Builds the canonical parameters of rule r from a row. KEY_UNKNOWN: the key cannot be
 * built - a key column's value is not in the stream, is not text, does not parse as the
 * parameter's type, or gives a key longer than CS_CANON_MAX. The caller then drops the
 * whole query: an entry under a key we cannot name would otherwise keep stale data. */
static enum key_status row_key(const rule *r, const row_view *v, char *out, size_t outlen,
	size_t *len)
{
	*len = 0;
	out[0] = '\0';
	for (int p = 0; p < r->nparams; p++) {
		int c = cs_pgo_relation_column(v->rel, r->param_col[p]);
		if (c < 0 || c >= v->tup->ncols)
			return KEY_UNKNOWN; /* column dropped or not published */
		const cs_pgo_datum *dt = &v->tup->cols[c];
		if (v->kind == 'K' && !v->rel->cols[c].key)
			return KEY_UNKNOWN; /* an old-key tuple sends non-identity columns as 'n' */
		if (dt->kind == 'u') {
			if (v->fallback == NULL || c >= v->fallback->ncols ||
				v->fallback->cols[c].kind == 'u')
				return KEY_UNKNOWN;
			dt = &v->fallback->cols[c];
		}
		bool is_null = dt->kind == 'n';
		const char *text = NULL;
		size_t tlen = 0;
		if (!is_null) {
			if (dt->kind != 't')
				return KEY_UNKNOWN; /* binary: we ask for text; treat as unknown */
			/* parsed in place: the row text (a bytea's "\x" + 2 digits per byte) may be
			 * longer than its canonical form, so no copy into a key-sized buffer */
			text = (const char *)dt->data;
			tlen = dt->len;
		}
		int rc = cs_params_canon_append_text(r->param_type[p], is_null, text, tlen, p, out,
			outlen, len);
		if (rc != 0)
			return KEY_UNKNOWN; /* too long, or not of the type: never "no key" */
	}
	return KEY_OK;
}

static int emit_row(const rule *r, const row_view *v, const cs_inv_sink *sink, const char *skip,
	size_t skip_len)
{
	char canon[CS_CANON_MAX + 1];
	size_t len;
	switch (row_key(r, v, canon, sizeof canon, &len)) {
	case KEY_OK:
		if (skip && skip_len == len && memcmp(skip, canon, len) == 0)
			return 0; /* same key as the new row: already reported */
		sink->key(sink->priv, r->query, canon, len);
		return 1;
	case KEY_UNKNOWN:
	default:
		sink->query(sink->priv, r->query, CS_INV_UNKNOWN_KEY);
		return 1;
	}
}

static int change_rule(const rule *r, const cs_pgo_msg *msg, const cs_inv_sink *sink)
{
	if (r->ncols == 0) {
		sink->query(sink->priv, r->query, CS_INV_TABLE);
		return 1;
	}
	switch (msg->type) {
	case 'I': {
		row_view v = { msg->insert.rel, &msg->insert.newtup, 'N', NULL };
		return emit_row(r, &v, sink, NULL, 0);
	}
	case 'D': {
		row_view v = { msg->delete.rel, &msg->delete.oldtup, msg->delete.old_kind, NULL };
		return emit_row(r, &v, sink, NULL, 0);
	}
	case 'U': {
		const cs_pgo_update *u = &msg->update;
		const cs_pgo_tuple *full_old = u->old_kind == 'O' ? &u->oldtup : NULL;
		row_view nv = { u->rel, &u->newtup, 'N', full_old };
		char canon[CS_CANON_MAX + 1];
		size_t len = 0;
		enum key_status ns = row_key(r, &nv, canon, sizeof canon, &len);
		int n = 0;
		if (ns == KEY_OK) {
			sink->key(sink->priv, r->query, canon, len);
			n++;
		} else if (ns == KEY_UNKNOWN) {
			sink->query(sink->priv, r->query, CS_INV_UNKNOWN_KEY);
			return 1;
		}
		if (u->old_kind == 'K' || u->old_kind == 'O') {
			row_view ov = { u->rel, &u->oldtup, u->old_kind, NULL };
			n += emit_row(r, &ov, sink, ns == KEY_OK ? canon : NULL, ns == KEY_OK ? len : 0);
		} else {
			/* No old tuple: the replica identity did not change. That pins the old
			 * key only if every key column is part of the identity. */
			for (int p = 0; p < r->nparams; p++) {
				int c = cs_pgo_relation_column(u->rel, r->param_col[p]);
				if (c < 0 || !u->rel->cols[c].key) {
					sink->query(sink->priv, r->query, CS_INV_UNKNOWN_KEY);
					return n + 1;
				}
			}
		}
		return n;
	}
	default:
		return 0;
	}
}

#define DDL_IDENT_MAX 63 /* NAMEDATALEN - 1: the longest schema or table name */

/* Every query that depends on the stream. */
static int all_queries(const cs_inv_map *m, cs_inv_reason why, const cs_inv_sink *sink)
{
	int n = 0;
	for (int q = 0; q < m->nqueries; q++)
		if (m->queries[q].depends) {
			sink->query(sink->priv, q, why);
			n++;
		}
	return n;
}

/* A CS_DDL_PREFIX message: "*", or "<n>:<schema><table>". Anything else under the prefix
 * drops every query: it is ours, and a DDL command we cannot name is the worst case. */
static int ddl_message(const cs_inv_map *m, const cs_pgo_message *g, const cs_inv_sink *sink)
{
	if (!(g->flags & CS_PGO_MESSAGE_TRANSACTIONAL) || strcmp(g->prefix, CS_DDL_PREFIX) != 0)
		return 0; /* not ours; ours are transactional: their commit is the DDL's */
	const char *c = (const char *)g->content;
	size_t len = g->len, nl = 0, i = 0;
	while (i < len && i < 4 && c[i] >= '0' && c[i] <= '9')
		nl = nl * 10 + (size_t)(c[i++] - '0');
	char schema[DDL_IDENT_MAX + 1], name[DDL_IDENT_MAX + 1];
	if (i == 0 || i >= len || c[i] != ':' || nl == 0 || nl > DDL_IDENT_MAX ||
	        len - i - 1 <= nl || len - i - 1 - nl > DDL_IDENT_MAX)
		return all_queries(m, CS_INV_DDL, sink);
	memcpy(schema, c + i + 1, nl);
	schema[nl] = '\0';
	memcpy(name, c + i + 1 + nl, len - i - 1 - nl);
	name[len - i - 1 - nl] = '\0';
	if (strlen(schema) != nl || strlen(name) != len - i - 1 - nl)
		return all_queries(m, CS_INV_DDL, sink); /* a NUL inside */
	const table *t = find_table(m, schema, name);
	int n = 0;
	for (const rule *r = t ? t->rules : NULL; r; r = r->next, n++)
		sink->query(sink->priv, r->query, CS_INV_DDL);
	return n;
}

int cs_inv_map_change(const cs_inv_map *m, const cs_pgo_decoder *d, const cs_pgo_msg *msg,
	const cs_inv_sink *sink)
{
	const cs_pgo_relation *rel = NULL;
	switch (msg->type) {
	case 'I':
		rel = msg->insert.rel;
		break;
	case 'U':
		rel = msg->update.rel;
		break;
	case 'D':
		rel = msg->delete.rel;
		break;
	case 'M':
		return ddl_message(m, &msg->message, sink);
	case 'T': {
		int n = 0;
		for (uint32_t i = 0; i < msg->truncate.nrels; i++) {
			const cs_pgo_relation *tr = cs_pgo_relation_get(d, msg->truncate.relids[i]);
			if (tr == NULL) {
				/* a table we never saw described: it may be any of ours */
				for (int q = 0; q < m->nqueries; q++, n++)
					if (m->queries[q].depends)
						sink->query(sink->priv, q, CS_INV_TRUNCATE);
				continue;
			}
			const table *t = find_table(m, tr->nspname[0] ? tr->nspname : "pg_catalog", tr->relname);
			for (const rule *r = t ? t->rules : NULL; r; r = r->next, n++)
				sink->query(sink->priv, r->query, CS_INV_TRUNCATE);
		}
		return n;
	}
	default:
		return 0;
	}
	const table *t = find_table(m, rel->nspname[0] ? rel->nspname : "pg_catalog", rel->relname);
	int n = 0;
	for (const rule *r = t ? t->rules : NULL; r; r = r->next)
		n += change_rule(r, msg, sink);
	return n;
}
