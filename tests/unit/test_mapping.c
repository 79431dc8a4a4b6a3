/* test_mapping.c - cachesvc/invalidator/mapping.c: row changes to the keys (or whole queries) they
 * invalidate. Configs, relations and tuples are built by hand; the sink records calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mapping.h"
#include "params.h"

/* ---- Recording sink --------------------------------------------------------------------- */

#define MAX_CALLS 16

typedef struct rec {
	int nkeys, nqueries;
	int key_q[MAX_CALLS];
	char key[MAX_CALLS][CS_CANON_MAX + 2];
	int query_q[MAX_CALLS];
	cs_inv_reason reason[MAX_CALLS];
} rec;

static void on_key(void *priv, int query, const char *canon, size_t len)
{
	rec *r = priv;
	assert_true(r->nkeys < MAX_CALLS);
	assert_true(len <= CS_CANON_MAX);
	assert_int_equal(strlen(canon), len); /* NUL-terminated at len */
	r->key_q[r->nkeys] = query;
	memcpy(r->key[r->nkeys], canon, len);
	r->key[r->nkeys][len] = '\0';
	r->nkeys++;
}

static void on_query(void *priv, int query, cs_inv_reason reason)
{
	rec *r = priv;
	assert_true(r->nqueries < MAX_CALLS);
	r->query_q[r->nqueries] = query;
	r->reason[r->nqueries] = reason;
	r->nqueries++;
}

static int run(const cs_inv_map *m, const cs_pgo_msg *msg, rec *r)
{
	memset(r, 0, sizeof *r);
	cs_inv_sink sink = { .key = on_key, .query = on_query, .priv = r };
	return cs_inv_map_change(m, NULL, msg, &sink);
}

/* ---- Config ------------------------------------------------------------------------------ */

/* Query 0 "by_id": items(id = $1), id int8.
 * Query 1 "by_pair": items(owner = $1, tag = $2), owner int8, tag text.
 * Query 2 "by_blob": blobs(k = $1), k bytea.
 * Query 3 "all_items": items (whole table).
 * Query 4 "no_rules": depends on nothing. */
static cs_config cfg;
static cs_query_def queries[5];
static cs_inv_map *map;

static void rule(cs_query_def *q, const char *table, int ncols, const char *const *cols)
{
	cs_inval_rule *r = &q->inval[q->ninval++];
	r->schema = strdup("public");
	r->table = strdup(table);
	r->ncols = ncols;
	for (int i = 0; i < ncols; i++) {
		r->cols[i] = strdup(cols[i]);
		r->param_index[i] = i;
	}
}

static void param(cs_query_def *q, const char *name, cs_param_type t)
{
	snprintf(q->params[q->nparams].name, sizeof q->params[0].name, "%s", name);
	q->params[q->nparams++].type = t;
}

static int setup(void **state)
{
	(void)state;
	memset(queries, 0, sizeof queries);
	snprintf(queries[0].name, sizeof queries[0].name, "by_id");
	param(&queries[0], "id", CS_PT_INT8);
	rule(&queries[0], "items", 1, (const char *const[]){ "id" });
	snprintf(queries[1].name, sizeof queries[1].name, "by_pair");
	param(&queries[1], "owner", CS_PT_INT8);
	param(&queries[1], "tag", CS_PT_TEXT);
	rule(&queries[1], "items", 2, (const char *const[]){ "owner", "tag" });
	snprintf(queries[2].name, sizeof queries[2].name, "by_blob");
	param(&queries[2], "k", CS_PT_BYTEA);
	rule(&queries[2], "blobs", 1, (const char *const[]){ "k" });
	snprintf(queries[3].name, sizeof queries[3].name, "all_items");
	queries[3].min_lifetime_ms = 250;
	rule(&queries[3], "items", 0, NULL);
	snprintf(queries[4].name, sizeof queries[4].name, "no_rules");
	cfg = (cs_config){ .nqueries = 5, .queries = queries };
	map = cs_inv_map_new(&cfg);
	return map == NULL;
}

static int teardown(void **state)
{
	(void)state;
	cs_inv_map_free(map);
	for (int q = 0; q < 5; q++) {
		for (int i = 0; i < queries[q].ninval; i++) {
			cs_inval_rule *r = &queries[q].inval[i];
			free(r->schema);
			free(r->table);
			for (int c = 0; c < r->ncols; c++)
				free(r->cols[c]);
		}
	}
	return 0;
}

/* ---- Relations and tuples ----------------------------------------------------------------- */

/* items(id int8, owner int8, tag text, body text); replica identity: id */
static cs_pgo_column items_cols[] = {
	{ .name = "id", .type_oid = 20, .typmod = -1, .key = true },
	{ .name = "owner", .type_oid = 20, .typmod = -1, .key = false },
	{ .name = "tag", .type_oid = 25, .typmod = -1, .key = false },
	{ .name = "body", .type_oid = 25, .typmod = -1, .key = false },
};
static cs_pgo_relation items = { .oid = 100, .nspname = "public", .relname = "items",
	.replident = 'd', .ncols = 4, .cols = items_cols };
/* blobs(k bytea, v text); replica identity: k */
static cs_pgo_column blobs_cols[] = {
	{ .name = "k", .type_oid = 17, .typmod = -1, .key = true },
	{ .name = "v", .type_oid = 25, .typmod = -1, .key = false },
};
static cs_pgo_relation blobs = { .oid = 101, .nspname = "public", .relname = "blobs",
	.replident = 'd', .ncols = 2, .cols = blobs_cols };
static cs_pgo_column other_cols[] = { { .name = "id", .type_oid = 20, .key = true } };
static cs_pgo_relation other = { .oid = 102, .nspname = "public", .relname = "other",
	.replident = 'd', .ncols = 1, .cols = other_cols };

static cs_pgo_datum T(const char *s)
{
	return (cs_pgo_datum){ .kind = 't', .data = (const uint8_t *)s, .len = (uint32_t)strlen(s) };
}
static const cs_pgo_datum NUL = { .kind = 'n' };
static const cs_pgo_datum UNCH = { .kind = 'u' };

static cs_pgo_msg insert(const cs_pgo_relation *rel, const cs_pgo_datum *cols)
{
	cs_pgo_msg m = { .type = 'I' };
	m.insert.rel = rel;
	m.insert.newtup = (cs_pgo_tuple){ .ncols = rel->ncols, .cols = cols };
	return m;
}

static cs_pgo_msg update(const cs_pgo_relation *rel, char old_kind, const cs_pgo_datum *oldc,
	const cs_pgo_datum *newc)
{
	cs_pgo_msg m = { .type = 'U' };
	m.update.rel = rel;
	m.update.old_kind = old_kind;
	m.update.oldtup = (cs_pgo_tuple){ .ncols = oldc ? rel->ncols : 0, .cols = oldc };
	m.update.newtup = (cs_pgo_tuple){ .ncols = rel->ncols, .cols = newc };
	return m;
}

static cs_pgo_msg delete(const cs_pgo_relation *rel, char old_kind, const cs_pgo_datum *oldc)
{
	cs_pgo_msg m = { .type = 'D' };
	m.delete.rel = rel;
	m.delete.old_kind = old_kind;
	m.delete.oldtup = (cs_pgo_tuple){ .ncols = rel->ncols, .cols = oldc };
	return m;
}

static bool has_key(const rec *r, int q, const char *canon)
{
	for (int i = 0; i < r->nkeys; i++)
		if (r->key_q[i] == q && strcmp(r->key[i], canon) == 0)
			return true;
	return false;
}

static bool has_query(const rec *r, int q, cs_inv_reason why)
{
	for (int i = 0; i < r->nqueries; i++)
		if (r->query_q[i] == q && r->reason[i] == why)
			return true;
	return false;
}

/* ---- Tests ------------------------------------------------------------------------------- */

static void test_insert_keys(void **state)
{
	(void)state;
	cs_pgo_datum row[] = { T("42"), T("7"), T("a b:c"), T("hello") };
	cs_pgo_msg m = insert(&items, row);
	rec r;
	int n = run(map, &m, &r);
	assert_int_equal(r.nkeys, 2);
	assert_true(has_key(&r, 0, "42"));
	/* text canonical form: bytes outside [A-Za-z0-9_.-] as %XX, parameters joined by ':' */
	assert_true(has_key(&r, 1, "7:a%20b%3Ac"));
	assert_int_equal(r.nqueries, 1);
	assert_true(has_query(&r, 3, CS_INV_TABLE));
	assert_int_equal(n, 3);
	assert_string_equal(cs_inv_map_query_name(map, 1), "by_pair");
	assert_int_equal(cs_inv_map_min_lifetime(map, 3), 250);
	assert_true(cs_inv_map_depends(map, 0));
	assert_false(cs_inv_map_depends(map, 4));
}

static void test_key_matches_read_path(void **state)
{
	(void)state;
	/* the invalidator's key is byte for byte the read path's (leading zeros, escapes) */
	cs_pgo_datum row[] = { T("5"), T("12"), T("x/y"), NUL };
	cs_pgo_msg m = insert(&items, row);
	rec r;
	run(map, &m, &r);
	cs_value in[2] = { { .type = CS_V_STR }, { .type = CS_V_STR } };
	in[0].u.s.p = "012";
	in[0].u.s.len = 3;
	in[1].u.s.p = "x/y";
	in[1].u.s.len = 3;
	char canon[CS_CANON_MAX + 1], err[128];
	size_t len = 0;
	assert_int_equal(cs_params_canon(&queries[1], in, 2, canon, sizeof canon, &len, err, sizeof err), 0);
	assert_true(has_key(&r, 1, canon));
}

static void test_null_key_column(void **state)
{
	(void)state;
	cs_pgo_datum row[] = { T("1"), NUL, NUL, T("b") };
	cs_pgo_msg m = insert(&items, row);
	rec r;
	run(map, &m, &r);
	assert_true(has_key(&r, 0, "1"));
	assert_true(has_key(&r, 1, "~:~")); /* NULL is "~" */
	assert_int_equal(r.nkeys, 2);
	assert_false(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
}

static void test_update_key_moves(void **state)
{
	(void)state;
	/* REPLICA IDENTITY FULL: the old row is sent; a changed key reports both */
	cs_pgo_datum oldr[] = { T("1"), T("7"), T("red"), T("b") };
	cs_pgo_datum newr[] = { T("1"), T("8"), T("red"), T("b") };
	cs_pgo_msg m = update(&items, 'O', oldr, newr);
	rec r;
	run(map, &m, &r);
	assert_true(has_key(&r, 1, "8:red"));
	assert_true(has_key(&r, 1, "7:red"));
	/* by_id: same key in old and new row: reported once */
	int ids = 0;
	for (int i = 0; i < r.nkeys; i++)
		ids += r.key_q[i] == 0;
	assert_int_equal(ids, 1);
	assert_int_equal(r.nqueries, 1); /* only the whole-table rule */
}

static void test_update_without_old_tuple(void **state)
{
	(void)state;
	/* default identity (id), no old tuple: id is pinned (new row's), but owner/tag are
	 * not in the identity, so the old key of by_pair is unknown: the query is dropped */
	cs_pgo_datum newr[] = { T("3"), T("9"), T("t"), T("b") };
	cs_pgo_msg m = update(&items, 0, NULL, newr);
	rec r;
	run(map, &m, &r);
	assert_true(has_key(&r, 0, "3"));
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
}

static void test_old_key_tuple_missing_values(void **state)
{
	(void)state;
	/* DELETE with an old-key ('K') tuple: non-identity columns come as 'n' and are not
	 * values: by_pair's key cannot be built, by_id's can */
	cs_pgo_datum oldr[] = { T("4"), NUL, NUL, NUL };
	cs_pgo_msg m = delete(&items, 'K', oldr);
	rec r;
	run(map, &m, &r);
	assert_true(has_key(&r, 0, "4"));
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
	assert_false(has_key(&r, 1, "~:~"));
}

static void test_toast_unchanged(void **state)
{
	(void)state;
	/* 'u' (unchanged TOAST) key column in the new row and no old row: unknown */
	cs_pgo_datum newr[] = { T("5"), T("1"), UNCH, T("b") };
	cs_pgo_msg m = update(&items, 0, NULL, newr);
	rec r;
	run(map, &m, &r);
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
	assert_int_equal(r.nkeys, 1); /* by_id only */

	/* with the full old row the value is taken from it */
	cs_pgo_datum oldr[] = { T("5"), T("1"), T("long"), T("b") };
	m = update(&items, 'O', oldr, newr);
	run(map, &m, &r);
	assert_true(has_key(&r, 1, "1:long"));
	assert_false(has_query(&r, 1, CS_INV_UNKNOWN_KEY));

	/* unchanged in the old row too: unknown */
	cs_pgo_datum oldu[] = { T("5"), T("1"), UNCH, T("b") };
	m = update(&items, 'O', oldu, newr);
	run(map, &m, &r);
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
}

static char *bytea_text(int nbytes, int byte) /* "\x" + hex, as pgoutput sends it */
{
	char *s = malloc((size_t)nbytes * 2 + 3);
	assert_non_null(s);
	s[0] = '\\';
	s[1] = 'x';
	for (int i = 0; i < nbytes; i++)
		snprintf(s + 2 + 2 * i, 3, "%02x", byte);
	return s;
}

static void test_big_bytea_key(void **state)
{
	(void)state;
	/* 512 bytes: row text of 1026 characters, canonical key of 1024 (cacheable on the
	 * read path): the exact key */
	char *k = bytea_text(512, 0xab);
	cs_pgo_datum row[] = { T(k), T("v") };
	cs_pgo_msg m = update(&blobs, 0, NULL, row);
	rec r;
	run(map, &m, &r);
	assert_int_equal(r.nkeys + r.nqueries, 1);
	assert_int_equal(r.nkeys, 1);
	assert_int_equal(strlen(r.key[0]), 1024);
	assert_memory_equal(r.key[0], k + 2, 1024);
	free(k);
}

static void test_oversized_drops_query(void **state)
{
	(void)state;
	rec r;
	/* a bytea whose canonical text is over CS_CANON_MAX: no key can be built */
	char *k = bytea_text(513, 0x01);
	cs_pgo_datum row[] = { T(k), T("v") };
	cs_pgo_msg m = insert(&blobs, row);
	run(map, &m, &r);
	assert_int_equal(r.nkeys, 0);
	assert_int_equal(r.nqueries, 1);
	assert_true(has_query(&r, 2, CS_INV_UNKNOWN_KEY));
	m = delete(&blobs, 'K', row);
	run(map, &m, &r);
	assert_true(has_query(&r, 2, CS_INV_UNKNOWN_KEY));
	free(k);

	/* a text key column far longer than any key (row text over every buffer) */
	char *big = malloc(5000);
	assert_non_null(big);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	cs_pgo_datum irow[] = { T("1"), T("2"), T(big), T("b") };
	m = insert(&items, irow);
	run(map, &m, &r);
	assert_true(has_key(&r, 0, "1"));
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));

	/* the old row's key too long, the new row's fine: old key unknown, query dropped */
	cs_pgo_datum small[] = { T("1"), T("2"), T("s"), T("b") };
	m = update(&items, 'O', irow, small);
	run(map, &m, &r);
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
	free(big);
}

static void test_value_not_of_type(void **state)
{
	(void)state;
	/* a key column whose text does not parse as the parameter type: dropped, not skipped */
	cs_pgo_datum row[] = { T("1"), T("not-a-number"), T("t"), T("b") };
	cs_pgo_msg m = insert(&items, row);
	rec r;
	run(map, &m, &r);
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
	/* binary datum: we ask for text, so unknown */
	cs_pgo_datum bin = { .kind = 'b', .data = (const uint8_t *)"\0\0\0\1", .len = 4 };
	cs_pgo_datum row2[] = { T("1"), bin, T("t"), T("b") };
	m = insert(&items, row2);
	run(map, &m, &r);
	assert_true(has_query(&r, 1, CS_INV_UNKNOWN_KEY));
}

static void test_other_table_and_truncate(void **state)
{
	(void)state;
	cs_pgo_datum row[] = { T("1") };
	cs_pgo_msg m = insert(&other, row);
	rec r;
	assert_int_equal(run(map, &m, &r), 0);
	assert_int_equal(r.nkeys + r.nqueries, 0);
	assert_false(cs_inv_map_has_table(map, "public", "other"));
	assert_true(cs_inv_map_has_table(map, "public", "blobs"));

	/* TRUNCATE of a relation the decoder never described: every dependent query */
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	uint32_t relids[] = { 555 };
	cs_pgo_msg t = { .type = 'T' };
	t.truncate.nrels = 1;
	t.truncate.relids = relids;
	cs_inv_sink sink = { .key = on_key, .query = on_query, .priv = &r };
	memset(&r, 0, sizeof r);
	cs_inv_map_change(map, d, &t, &sink);
	for (int q = 0; q < 4; q++)
		assert_true(has_query(&r, q, CS_INV_TRUNCATE));
	assert_false(has_query(&r, 4, CS_INV_TRUNCATE));
	cs_pgo_decoder_free(d);
}

/* A DDL event trigger's message (CS_DDL_PREFIX): a named table drops its queries, "*" and
 * anything unreadable under the prefix every query that depends on the stream; other
 * prefixes and non-transactional messages nothing. */
static cs_pgo_msg ddl_msg(const char *prefix, const char *content, size_t len, bool txn)
{
	cs_pgo_msg m = { .type = 'M' };
	m.message.flags = txn ? CS_PGO_MESSAGE_TRANSACTIONAL : 0;
	m.message.prefix = prefix;
	m.message.content = (const uint8_t *)content;
	m.message.len = (uint32_t)len;
	return m;
}

static void test_ddl_message(void **state)
{
	(void)state;
	rec r;
	cs_pgo_msg m = ddl_msg(CS_DDL_PREFIX, "6:publicitems", 13, true);
	assert_int_equal(run(map, &m, &r), 3); /* by_id, by_pair and all_items read items */
	assert_int_equal(r.nkeys, 0);
	assert_true(has_query(&r, 0, CS_INV_DDL) && has_query(&r, 1, CS_INV_DDL) &&
	            has_query(&r, 3, CS_INV_DDL));
	assert_false(has_query(&r, 2, CS_INV_DDL) || has_query(&r, 4, CS_INV_DDL));
	m = ddl_msg(CS_DDL_PREFIX, "6:publicblobs", 13, true);
	run(map, &m, &r);
	assert_true(r.nqueries == 1 && has_query(&r, 2, CS_INV_DDL));
	m = ddl_msg(CS_DDL_PREFIX, "6:publicother", 13, true); /* no query reads it */
	assert_int_equal(run(map, &m, &r), 0);
	m = ddl_msg(CS_DDL_PREFIX, "5:publicitems", 13, true); /* "publi"."citems" */
	assert_int_equal(run(map, &m, &r), 0);
	static const char *const bad[] = { "*", "", "x", "6:", "6:public", "0:items", "99:ab",
		"6:publ", "12345:public" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = ddl_msg(CS_DDL_PREFIX, bad[i], strlen(bad[i]), true);
		run(map, &m, &r);
		for (int q = 0; q < 4; q++)
			assert_true(has_query(&r, q, CS_INV_DDL));
		assert_false(has_query(&r, 4, CS_INV_DDL)); /* depends on nothing */
	}
	m = ddl_msg(CS_DDL_PREFIX, "6:pub\0icitems", 13, true); /* a NUL inside: all */
	run(map, &m, &r);
	assert_int_equal(r.nqueries, 4);
	m = ddl_msg("other.prefix", "*", 1, true);
	assert_int_equal(run(map, &m, &r), 0);
	m = ddl_msg(CS_DDL_PREFIX, "*", 1, false); /* ours are transactional */
	assert_int_equal(run(map, &m, &r), 0);
}

/* SHARDS.md section 4: shard k's invalidator maps the keyed queries and those pinned to k;
 * a query pinned to another shard has no rules there (its table's changes on k are not its
 * data). Unsharded (-1): every query, whatever its shard_index says. */
static void test_shard_map(void **state)
{
	(void)state;
	for (int q = 0; q < 5; q++)
		queries[q].shard_index = -1; /* keyed (shard_key) */
	queries[0].shard_index = 1;          /* by_id pinned to the second shard */
	queries[3].shard_index = 0;          /* all_items pinned to the first */
	cs_inv_map *m0 = cs_inv_map_new_shard(&cfg, 0), *m1 = cs_inv_map_new_shard(&cfg, 1);
	cs_inv_map *mu = cs_inv_map_new_shard(&cfg, -1);
	assert_non_null(m0);
	assert_non_null(m1);
	assert_non_null(mu);
	cs_pgo_datum row[] = {T("42"), T("7"), T("t"), T("hello")};
	cs_pgo_msg m = insert(&items, row);
	rec r;
	run(m0, &m, &r); /* shard 0: by_pair's key and all_items, not by_id's key */
	assert_int_equal(r.nkeys, 1);
	assert_true(has_key(&r, 1, "7:t"));
	assert_false(has_key(&r, 0, "42"));
	assert_true(has_query(&r, 3, CS_INV_TABLE));
	assert_false(cs_inv_map_depends(m0, 0));
	assert_true(cs_inv_map_depends(m0, 3));
	run(m1, &m, &r); /* shard 1: by_id's and by_pair's keys, not all_items */
	assert_int_equal(r.nkeys, 2);
	assert_true(has_key(&r, 0, "42"));
	assert_true(has_key(&r, 1, "7:t"));
	assert_int_equal(r.nqueries, 0);
	assert_true(cs_inv_map_depends(m1, 0));
	assert_false(cs_inv_map_depends(m1, 3));
	assert_string_equal(cs_inv_map_query_name(m1, 3), "all_items"); /* indexes kept */
	run(mu, &m, &r);                                                /* unsharded: all of them */
	assert_int_equal(r.nkeys, 2);
	assert_true(has_query(&r, 3, CS_INV_TABLE));
	cs_inv_map_free(m0);
	cs_inv_map_free(m1);
	cs_inv_map_free(mu);
	for (int q = 0; q < 5; q++)
		queries[q].shard_index = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_insert_keys),
	        cmocka_unit_test(test_key_matches_read_path),
	        cmocka_unit_test(test_null_key_column),
	        cmocka_unit_test(test_update_key_moves),
	        cmocka_unit_test(test_update_without_old_tuple),
	        cmocka_unit_test(test_old_key_tuple_missing_values),
	        cmocka_unit_test(test_toast_unchanged),
	        cmocka_unit_test(test_big_bytea_key),
	        cmocka_unit_test(test_oversized_drops_query),
	        cmocka_unit_test(test_value_not_of_type),
	        cmocka_unit_test(test_other_table_and_truncate),
	        cmocka_unit_test(test_ddl_message),
	        cmocka_unit_test(test_shard_map),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
