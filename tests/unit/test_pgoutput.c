/* test_pgoutput.c - unit tests for invalidation/pgoutput.c and copyframe.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

/* ------------------------------------------------------------------------- */
/* Captures: "LSN HEX" lines written by data/pgoutput/capture.sh             */
/* ------------------------------------------------------------------------- */

typedef struct capmsg {
	uint64_t lsn; /* the lsn column of pg_logical_slot_peek_binary_changes */
	uint8_t *data;
	size_t len;
} capmsg;

typedef struct capture {
	capmsg *msgs;
	size_t n;
	char **expected; /* lines of NAME.expected (written by expected.py) */
	size_t nexpected;
} capture;

static char *data_path(const char *name, const char *ext)
{
	const char *dir = getenv("CS_PGO_DATA");
	assert_non_null(dir);
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s%s", dir, name, ext) > 0);
	return p;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char **read_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char **lines = NULL;
	size_t cap = 0;
	*n = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			lines = realloc(lines, cap * sizeof *lines);
			assert_non_null(lines);
		}
		lines[(*n)++] = strdup(line);
	}
	free(line);
	fclose(f);
	return lines;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static capture *load_capture(const char *name)
{
	capture *c = calloc(1, sizeof *c);
	assert_non_null(c);
	char *path = data_path(name, ".hex");
	size_t nlines;
	char **lines = read_lines(path, &nlines);
	free(path);
	c->msgs = calloc(nlines, sizeof *c->msgs);
	assert_non_null(c->msgs);
	for (size_t i = 0; i < nlines; i++) {
		unsigned hi, lo;
		int off = 0;
		assert_int_equal(sscanf(lines[i], "%X/%X %n", &hi, &lo, &off), 2);
		const char *hex = lines[i] + off;
		size_t hl = strlen(hex);
		assert_true(hl > 0 && hl % 2 == 0);
		capmsg *m = &c->msgs[c->n++];
		m->lsn = (uint64_t)hi << 32 | lo;
		m->len = hl / 2;
		m->data = malloc(m->len); /* exact size: ASan catches over-reads */
		assert_non_null(m->data);
		for (size_t j = 0; j < m->len; j++) {
			int a = hexval(hex[2 * j]), b = hexval(hex[2 * j + 1]);
			assert_true(a >= 0 && b >= 0);
			m->data[j] = (uint8_t)(a << 4 | b);
		}
	}
	free_lines(lines, nlines);
	path = data_path(name, ".expected");
	c->expected = read_lines(path, &c->nexpected);
	free(path);
	assert_int_equal(c->nexpected, c->n);
	return c;
}

static void free_capture(capture *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i].data);
	free(c->msgs);
	free_lines(c->expected, c->nexpected);
	free(c);
}

/* ------------------------------------------------------------------------- */
/* Renderer: the same text as expected.py (an independent decoder)           */
/* ------------------------------------------------------------------------- */

static void put_lsn(FILE *f, uint64_t v)
{
	fprintf(f, "%X/%X", (unsigned)(v >> 32), (unsigned)v);
}

static void put_text(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
	fputc('"', f);
}

static void put_tuple(FILE *f, const cs_pgo_tuple *t)
{
	fputc('(', f);
	for (int i = 0; i < t->ncols; i++) {
		const cs_pgo_datum *c = &t->cols[i];
		if (i)
			fputc(',', f);
		if (c->kind == 't') {
			fputc('t', f);
			put_text(f, c->data, c->len);
		} else if (c->kind == 'b') {
			fputs("b:", f);
			for (uint32_t j = 0; j < c->len; j++)
				fprintf(f, "%02x", c->data[j]);
		} else {
			fputc(c->kind, f);
		}
	}
	fputc(')', f);
}

/* Returns a malloc'd line. */
static char *render(const cs_pgo_msg *m)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	assert_non_null(f);
	fputc(m->type, f);
	if (m->streamed)
		fprintf(f, " xid=%u", m->xid);
	switch (m->type) {
	case 'B':
		fputs(" final=", f);
		put_lsn(f, m->begin.final_lsn);
		fprintf(f, " ts=%lld xid=%u", (long long)m->begin.commit_ts, m->begin.xid);
		break;
	case 'C':
		fprintf(f, " flags=%u commit=", m->commit.flags);
		put_lsn(f, m->commit.commit_lsn);
		fputs(" end=", f);
		put_lsn(f, m->commit.end_lsn);
		fprintf(f, " ts=%lld", (long long)m->commit.commit_ts);
		break;
	case 'O':
		fputs(" lsn=", f);
		put_lsn(f, m->origin.lsn);
		fprintf(f, " name=%s", m->origin.name);
		break;
	case 'R': {
		const cs_pgo_relation *r = m->relation.rel;
		fprintf(f, " oid=%u %s.%s ident=%c cols=[", r->oid, r->nspname, r->relname,
			r->replident);
		for (int i = 0; i < r->ncols; i++)
			fprintf(f, "%s%s:%u:%d%s", i ? "," : "", r->cols[i].name,
				r->cols[i].type_oid, r->cols[i].typmod,
				r->cols[i].key ? ":key" : "");
		fputc(']', f);
		break;
	}
	case 'Y':
		fprintf(f, " oid=%u %s.%s", m->pgtype.oid, m->pgtype.nspname, m->pgtype.typname);
		break;
	case 'I':
		fprintf(f, " rel=%u N", m->insert.rel->oid);
		put_tuple(f, &m->insert.newtup);
		break;
	case 'U':
		fprintf(f, " rel=%u", m->update.rel->oid);
		if (m->update.old_kind) {
			fprintf(f, " %c", m->update.old_kind);
			put_tuple(f, &m->update.oldtup);
		}
		fputs(" N", f);
		put_tuple(f, &m->update.newtup);
		break;
	case 'D':
		fprintf(f, " rel=%u %c", m->delete.rel->oid, m->delete.old_kind);
		put_tuple(f, &m->delete.oldtup);
		break;
	case 'T':
		fprintf(f, " flags=%u rels=[", m->truncate.flags);
		for (uint32_t i = 0; i < m->truncate.nrels; i++)
			fprintf(f, "%s%u", i ? "," : "", m->truncate.relids[i]);
		fputc(']', f);
		break;
	case 'M':
		fprintf(f, " flags=%u lsn=", m->message.flags);
		put_lsn(f, m->message.lsn);
		fprintf(f, " prefix=%s content=", m->message.prefix);
		put_text(f, m->message.content, m->message.len);
		break;
	case 'S':
		fprintf(f, " xid=%u first=%u", m->stream_start.xid, m->stream_start.first_segment);
		break;
	case 'E':
		break;
	case 'c':
		fprintf(f, " xid=%u flags=%u commit=", m->stream_commit.xid, m->stream_commit.flags);
		put_lsn(f, m->stream_commit.commit_lsn);
		fputs(" end=", f);
		put_lsn(f, m->stream_commit.end_lsn);
		fprintf(f, " ts=%lld", (long long)m->stream_commit.commit_ts);
		break;
	case 'A':
		fprintf(f, " xid=%u subxid=%u", m->stream_abort.xid, m->stream_abort.subxid);
		break;
	default:
		fail_msg("unexpected type %c", m->type);
	}
	fclose(f);
	return s;
}

/* Decodes message i of c with d: every strict prefix first (each must fail cleanly
 * and change nothing), then the whole message, which must render as expected. */
static void decode_checked(cs_pgo_decoder *d, const capture *c, size_t i, cs_pgo_msg *m)
{
	const capmsg *cm = &c->msgs[i];
	for (size_t cut = 0; cut < cm->len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		assert_non_null(p);
		memcpy(p, cm->data, cut);
		int rc = cs_pgo_decode(d, p, cut, m);
		free(p);
		if (rc >= 0)
			fail_msg("message %zu cut at %zu/%zu decoded", i, cut, cm->len);
		assert_true(rc == CS_PGO_ETRUNC || rc == CS_PGO_EPROTO);
		assert_true(cs_pgo_errstr(d)[0] != '\0');
		assert_int_equal(m->type, 0);
	}
	int rc = cs_pgo_decode(d, cm->data, cm->len, m);
	if (rc != 0)
		fail_msg("message %zu: %s", i, cs_pgo_errstr(d));
	char *s = render(m);
	if (strcmp(s, c->expected[i]) != 0)
		fail_msg("message %zu:\n got  %.300s\n want %.300s", i, s, c->expected[i]);
	free(s);
}

/* Whole capture against expected.py, plus LSN relations that hold by construction. */
static void golden(const char *name)
{
	capture *c = load_capture(name);
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	uint64_t begin_final = 0;
	for (size_t i = 0; i < c->n; i++) {
		cs_pgo_msg m;
		decode_checked(d, c, i, &m);
		if (m.type == 'B')
			begin_final = m.begin.final_lsn;
		if (m.type == 'C') {
			/* Begin announces the commit record; the SQL interface reports the
			 * commit at its end LSN, which is what a consumer confirms. */
			assert_int_equal(m.commit.commit_lsn, begin_final);
			assert_int_equal(m.commit.end_lsn, c->msgs[i].lsn);
			assert_true(m.commit.end_lsn > m.commit.commit_lsn);
		}
		if (m.type == 'c')
			assert_int_equal(m.stream_commit.end_lsn, c->msgs[i].lsn);
	}
	assert_false(cs_pgo_in_stream(d, NULL));
	cs_pgo_decoder_free(d);
	free_capture(c);
}

static void golden_proto1(void **state)
{
	golden("proto1");
}

static void golden_proto1_binary(void **state)
{
	golden("proto1_binary");
}

static void golden_proto2_stream(void **state)
{
	golden("proto2_stream");
}

/* ------------------------------------------------------------------------- */
/* Captured streams: explicit semantic checks                                */
/* ------------------------------------------------------------------------- */

static void assert_text(const cs_pgo_datum *dt, const char *want)
{
	char buf[64];
	int n = cs_pgo_datum_text(dt, buf, sizeof buf);
	assert_int_equal(n, (int)strlen(want));
	assert_string_equal(buf, want);
}

static void assert_sql_null(const cs_pgo_datum *dt)
{
	char buf[8];
	assert_int_equal(dt->kind, 'n');
	assert_int_equal(cs_pgo_datum_text(dt, buf, sizeof buf), CS_PGO_ENULL);
	assert_string_equal(buf, "");
}

static void captured_proto1(void **state)
{
	capture *c = load_capture("proto1");
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	size_t i = 0;
#define NEXT(t)                                                                            \
	do {                                                                               \
		assert_true(i < c->n);                                                     \
		if (cs_pgo_decode(d, c->msgs[i].data, c->msgs[i].len, &m) != 0)            \
			fail_msg("message %zu: %s", i, cs_pgo_errstr(d));                  \
		i++;                                                                       \
		assert_int_equal(m.type, (t));                                             \
		assert_false(m.streamed);                                                  \
	} while (0)

	/* INSERT (1, 'one', NULL, 'ok') */
	NEXT('B');
	assert_int_equal(m.begin.final_lsn, 0x15443D8);
	assert_int_equal(m.begin.xid, 730);
	/* 2026-11-21 04:34 UTC in PG epoch microseconds: a sane, recent time. */
	assert_int_equal(m.begin.commit_ts, 848550893421608);
	NEXT('Y');
	assert_int_equal(m.pgtype.oid, 16385);
	assert_string_equal(m.pgtype.nspname, "public");
	assert_string_equal(m.pgtype.typname, "mood");
	NEXT('R');
	const cs_pgo_relation *rd = m.relation.rel;
	assert_ptr_equal(rd, cs_pgo_relation_get(d, 16391));
	assert_int_equal(rd->oid, 16391);
	assert_string_equal(rd->nspname, "public");
	assert_string_equal(rd->relname, "t_default");
	assert_int_equal(rd->replident, 'd');
	assert_int_equal(rd->ncols, 4);
	const char *names[] = {"id", "name", "big", "m"};
	const uint32_t types[] = {23, 25, 25, 16385};
	for (int k = 0; k < 4; k++) {
		assert_string_equal(rd->cols[k].name, names[k]);
		assert_int_equal(rd->cols[k].type_oid, types[k]);
		assert_int_equal(rd->cols[k].typmod, -1);
		assert_int_equal(rd->cols[k].key, k == 0);
		assert_int_equal(cs_pgo_relation_column(rd, names[k]), k);
	}
	assert_int_equal(cs_pgo_relation_column(rd, "ID"), -1);
	NEXT('I');
	assert_ptr_equal(m.insert.rel, rd);
	assert_int_equal(m.insert.newtup.ncols, 4);
	assert_text(&m.insert.newtup.cols[0], "1");
	assert_text(&m.insert.newtup.cols[1], "one");
	assert_sql_null(&m.insert.newtup.cols[2]);
	assert_text(&m.insert.newtup.cols[3], "ok");
	NEXT('C');
	assert_int_equal(m.commit.flags, 0);
	assert_int_equal(m.commit.commit_lsn, 0x15443D8);
	assert_int_equal(m.commit.end_lsn, 0x1544408);
	assert_int_equal(m.commit.commit_ts, 848550893421608);

	/* Multi-row INSERT with NULLs: two I in one transaction. */
	NEXT('B');
	assert_int_equal(m.begin.xid, 731);
	NEXT('I');
	assert_text(&m.insert.newtup.cols[0], "2");
	assert_text(&m.insert.newtup.cols[2], "x");
	assert_sql_null(&m.insert.newtup.cols[3]);
	NEXT('I');
	assert_text(&m.insert.newtup.cols[0], "3");
	assert_sql_null(&m.insert.newtup.cols[1]);
	assert_text(&m.insert.newtup.cols[3], "sad");
	NEXT('C');

	/* UPDATE, key unchanged: no old tuple, the key is in N. */
	NEXT('B');
	NEXT('U');
	assert_int_equal(m.update.old_kind, 0);
	assert_int_equal(m.update.oldtup.ncols, 0);
	assert_text(&m.update.newtup.cols[0], "1");
	assert_text(&m.update.newtup.cols[1], "uno");
	NEXT('C');

	/* UPDATE, key changed: 'K' carries the old key, other columns 'n'. */
	NEXT('B');
	NEXT('U');
	assert_int_equal(m.update.old_kind, 'K');
	assert_int_equal(m.update.oldtup.ncols, 4);
	assert_text(&m.update.oldtup.cols[0], "2");
	for (int k = 1; k < 4; k++)
		assert_sql_null(&m.update.oldtup.cols[k]);
	assert_text(&m.update.newtup.cols[0], "20");
	assert_text(&m.update.newtup.cols[1], "two");
	NEXT('C');

	/* DELETE on REPLICA IDENTITY DEFAULT: 'K'. */
	NEXT('B');
	NEXT('D');
	assert_int_equal(m.delete.old_kind, 'K');
	assert_text(&m.delete.oldtup.cols[0], "3");
	assert_sql_null(&m.delete.oldtup.cols[1]);
	NEXT('C');

	/* REPLICA IDENTITY FULL: every column is key; 'O' old rows. */
	NEXT('B');
	NEXT('R');
	const cs_pgo_relation *rf = m.relation.rel;
	assert_string_equal(rf->relname, "t_full");
	assert_int_equal(rf->replident, 'f');
	assert_int_equal(rf->ncols, 2);
	assert_true(rf->cols[0].key && rf->cols[1].key);
	NEXT('I');
	assert_ptr_equal(m.insert.rel, rf);
	NEXT('I');
	assert_sql_null(&m.insert.newtup.cols[1]);
	NEXT('C');
	NEXT('B');
	NEXT('U');
	assert_int_equal(m.update.old_kind, 'O');
	assert_text(&m.update.oldtup.cols[1], "a");
	assert_text(&m.update.newtup.cols[1], "b");
	NEXT('C');
	NEXT('B');
	NEXT('D');
	assert_int_equal(m.delete.old_kind, 'O');
	assert_text(&m.delete.oldtup.cols[0], "2");
	assert_sql_null(&m.delete.oldtup.cols[1]);
	NEXT('C');

	/* A 10000-byte external TOAST value, then an UPDATE not touching it: 'u'. */
	NEXT('B');
	NEXT('I');
	assert_int_equal(m.insert.newtup.cols[2].kind, 't');
	assert_int_equal(m.insert.newtup.cols[2].len, 10000);
	assert_memory_equal(m.insert.newtup.cols[2].data, "0123456789", 10);
	char small[16];
	assert_int_equal(cs_pgo_datum_text(&m.insert.newtup.cols[2], small, sizeof small),
		CS_PGO_ETOOLONG);
	NEXT('C');
	NEXT('B');
	NEXT('U');
	assert_int_equal(m.update.old_kind, 0);
	assert_text(&m.update.newtup.cols[1], "bigger");
	assert_int_equal(m.update.newtup.cols[2].kind, 'u');
	assert_int_equal(cs_pgo_datum_text(&m.update.newtup.cols[2], small, sizeof small),
		CS_PGO_EUNCHANGED);
	assert_text(&m.update.newtup.cols[3], "happy");
	NEXT('C');

	/* The rolled-back transaction (id 5) is absent; a transactional message and
	 * the row of the same transaction come next, then a non-transactional one
	 * outside any Begin/Commit. */
	NEXT('B');
	assert_int_equal(m.begin.xid, 741);
	NEXT('M');
	assert_int_equal(m.message.flags, CS_PGO_MESSAGE_TRANSACTIONAL);
	assert_int_equal(m.message.lsn, 0x15475D0);
	assert_string_equal(m.message.prefix, "cs");
	assert_int_equal(m.message.len, 13);
	assert_memory_equal(m.message.content, "transactional", 13);
	NEXT('I');
	assert_text(&m.insert.newtup.cols[0], "6");
	NEXT('C');
	NEXT('M');
	assert_int_equal(m.message.flags, 0);
	assert_int_equal(m.message.len, 17);
	assert_memory_equal(m.message.content, "not transactional", 17);

	/* ALTER TABLE ADD COLUMN: a new R with 5 columns replaces the cached one. */
	NEXT('B');
	NEXT('Y');
	NEXT('R');
	rd = m.relation.rel;
	assert_ptr_equal(rd, cs_pgo_relation_get(d, 16391));
	assert_int_equal(rd->ncols, 5);
	assert_int_equal(cs_pgo_relation_column(rd, "extra"), 4);
	NEXT('I');
	assert_int_equal(m.insert.newtup.ncols, 5);
	assert_text(&m.insert.newtup.cols[4], "77");
	NEXT('C');

	/* DROP COLUMN name: 4 columns again, "name" gone, "big" now index 1. */
	NEXT('B');
	NEXT('Y');
	NEXT('R');
	rd = m.relation.rel;
	assert_int_equal(rd->ncols, 4);
	assert_int_equal(cs_pgo_relation_column(rd, "name"), -1);
	assert_int_equal(cs_pgo_relation_column(rd, "big"), 1);
	assert_int_equal(cs_pgo_relation_column(rd, "extra"), 3);
	NEXT('I');
	assert_text(&m.insert.newtup.cols[0], "8");
	assert_text(&m.insert.newtup.cols[3], "88");
	NEXT('C');

	/* TRUNCATE t_full; then TRUNCATE both RESTART IDENTITY CASCADE. */
	NEXT('B');
	NEXT('R');
	NEXT('T');
	assert_int_equal(m.truncate.nrels, 1);
	assert_int_equal(m.truncate.flags, 0);
	assert_int_equal(m.truncate.relids[0], 16398);
	NEXT('C');
	NEXT('B');
	NEXT('Y');
	NEXT('R');
	NEXT('R');
	NEXT('T');
	assert_int_equal(m.truncate.nrels, 2);
	assert_int_equal(m.truncate.flags,
		CS_PGO_TRUNCATE_CASCADE | CS_PGO_TRUNCATE_RESTART_IDENTITY);
	assert_int_equal(m.truncate.relids[0], 16391);
	assert_int_equal(m.truncate.relids[1], 16398);
	NEXT('C');
	assert_int_equal(i, c->n);
#undef NEXT
	cs_pgo_decoder_free(d);
	free_capture(c);
}

static void captured_binary(void **state)
{
	capture *c = load_capture("proto1_binary");
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(cs_pgo_decode(d, c->msgs[i].data, c->msgs[i].len, &m), 0);
	assert_int_equal(m.type, 'I');
	/* int4 1 in send format; text "one"; enum sent as its label. */
	const cs_pgo_datum *col = m.insert.newtup.cols;
	assert_int_equal(col[0].kind, 'b');
	assert_int_equal(col[0].len, 4);
	assert_memory_equal(col[0].data, "\0\0\0\1", 4);
	assert_int_equal(col[1].kind, 'b');
	assert_memory_equal(col[1].data, "one", 3);
	char buf[8];
	assert_int_equal(cs_pgo_datum_text(&col[1], buf, sizeof buf), CS_PGO_EBINARY);
	assert_int_equal(col[2].kind, 'n');
	cs_pgo_decoder_free(d);
	free_capture(c);
}

static void captured_stream(void **state)
{
	capture *c = load_capture("proto2_stream");
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	const cs_pgo_relation *committed = NULL, *streamed = NULL;
	int starts = 0, stops = 0, commits = 0, aborts = 0, inserts = 0;
	uint32_t sx = 0;
	for (size_t i = 0; i < c->n; i++) {
		bool was_in = cs_pgo_in_stream(d, &sx);
		if (cs_pgo_decode(d, c->msgs[i].data, c->msgs[i].len, &m) != 0)
			fail_msg("message %zu: %s", i, cs_pgo_errstr(d));
		assert_int_equal(m.streamed, was_in && m.type != 'E');
		switch (m.type) {
		case 'S':
			assert_false(was_in);
			assert_int_equal(m.stream_start.first_segment,
				starts == 0 || starts == 2 || starts == 3);
			starts++;
			break;
		case 'E':
			assert_true(was_in);
			assert_false(cs_pgo_in_stream(d, NULL));
			stops++;
			break;
		case 'R':
			if (!m.streamed) {
				committed = m.relation.rel;
				break;
			}
			/* A streamed R does not touch the committed view until 'c'. */
			streamed = m.relation.rel;
			assert_ptr_not_equal(streamed, committed);
			assert_ptr_equal(cs_pgo_relation_get(d, 16417), committed);
			break;
		case 'I':
			inserts++;
			assert_ptr_equal(m.insert.rel, m.streamed ? streamed : committed);
			break;
		case 'c':
			commits++;
			/* The streamed schema became the committed one. */
			assert_ptr_equal(cs_pgo_relation_get(d, 16417), streamed);
			committed = streamed;
			break;
		case 'A':
			aborts++;
			if (m.stream_abort.xid == m.stream_abort.subxid)
				assert_ptr_equal(cs_pgo_relation_get(d, 16417), committed);
			assert_false(m.stream_abort.has_abort_info);
			break;
		}
	}
	/* xid 751: 2 blocks + commit; 752: 1 block + abort; 753: subxact 754 aborted
	 * in block 1, block 2 + commit. Of the aborted 500-row inserts only what was
	 * streamed before the abort record arrives (408 and 407 rows). */
	assert_int_equal(starts, 5);
	assert_int_equal(stops, 5);
	assert_int_equal(commits, 2);
	assert_int_equal(aborts, 2);
	assert_int_equal(inserts, 1 + 500 + 408 + 1 + 407 + 1);
	cs_pgo_decoder_free(d);
	free_capture(c);
}

/* ------------------------------------------------------------------------- */
/* Hand-made messages                                                        */
/* ------------------------------------------------------------------------- */

typedef struct mb {
	uint8_t buf[65536];
	size_t len;
} mb;

static mb *mb_new(char type)
{
	mb *b = calloc(1, sizeof *b);
	assert_non_null(b);
	b->buf[b->len++] = (uint8_t)type;
	return b;
}

static void mb_be(mb *b, uint64_t v, int n)
{
	assert_true(n >= 1 && n <= 8 && b->len + (size_t)n <= sizeof b->buf);
	for (int i = n - 1; i >= 0; i--)
		b->buf[b->len++] = (uint8_t)(v >> (8 * i));
}

static void mb_str(mb *b, const char *s)
{
	size_t n = strlen(s) + 1;
	assert_true(b->len + n <= sizeof b->buf);
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

static void mb_bytes(mb *b, const void *p, size_t n)
{
	assert_true(b->len + n <= sizeof b->buf);
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

/* Decodes b from an exact-size copy; returns the code. */
static int dec(cs_pgo_decoder *d, const mb *b, cs_pgo_msg *m)
{
	uint8_t *p = malloc(b->len ? b->len : 1);
	assert_non_null(p);
	memcpy(p, b->buf, b->len);
	int rc = cs_pgo_decode(d, p, b->len, m);
	free(p); /* borrowed pointers in *m die here: callers only check scalars */
	return rc;
}

/* Every strict prefix of b fails cleanly (no state change checked by the caller). */
static void all_prefixes_fail(cs_pgo_decoder *d, const mb *b)
{
	cs_pgo_msg m;
	for (size_t cut = 0; cut < b->len; cut++) {
		mb *t = mb_new(0);
		t->len = 0;
		mb_bytes(t, b->buf, cut);
		int rc = dec(d, t, &m);
		free(t);
		if (rc >= 0)
			fail_msg("'%c' cut at %zu/%zu decoded", b->buf[0], cut, b->len);
		assert_true(cs_pgo_errstr(d)[0] != '\0');
	}
}

/* Relation oid with ncols int4 columns named c0.. (column 0 is the key). */
static mb *mk_relation(uint32_t oid, int ncols, const uint32_t *xid)
{
	mb *b = mb_new('R');
	if (xid)
		mb_be(b, *xid, 4);
	mb_be(b, oid, 4);
	mb_str(b, "s");
	mb_str(b, "r");
	mb_be(b, 'd', 1);
	mb_be(b, (uint64_t)ncols, 2);
	for (int i = 0; i < ncols; i++) {
		char name[16];
		snprintf(name, sizeof name, "c%d", i);
		mb_be(b, i == 0, 1);
		mb_str(b, name);
		mb_be(b, 23, 4);
		mb_be(b, 0xffffffff, 4);
	}
	return b;
}

/* Insert into oid with ncols text columns "v0".. */
static mb *mk_insert(uint32_t oid, int ncols, const uint32_t *xid)
{
	mb *b = mb_new('I');
	if (xid)
		mb_be(b, *xid, 4);
	mb_be(b, oid, 4);
	mb_be(b, 'N', 1);
	mb_be(b, (uint64_t)ncols, 2);
	for (int i = 0; i < ncols; i++) {
		char v[16];
		int n = snprintf(v, sizeof v, "v%d", i);
		mb_be(b, 't', 1);
		mb_be(b, (uint64_t)n, 4);
		mb_bytes(b, v, (size_t)n);
	}
	return b;
}

static int dec_free(cs_pgo_decoder *d, mb *b, cs_pgo_msg *m)
{
	int rc = dec(d, b, m);
	free(b);
	return rc;
}

static void expect_error(cs_pgo_decoder *d, mb *b, int code, const char *needle)
{
	cs_pgo_msg m;
	int rc = dec_free(d, b, &m);
	if (rc != code)
		fail_msg("got %d (%s), want %d", rc, cs_pgo_errstr(d), code);
	if (strstr(cs_pgo_errstr(d), needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", cs_pgo_errstr(d), needle);
	assert_int_equal(m.type, 0);
}

static void handmade_prefixes(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	uint32_t xid = 900;
	mb *r = mk_relation(7, 3, NULL);
	all_prefixes_fail(d, r);
	assert_null(cs_pgo_relation_get(d, 7)); /* failed R left nothing behind */
	assert_int_equal(dec_free(d, r, &m), 0);

	mb *msgs[16];
	int n = 0;
	msgs[n] = mb_new('B');
	mb_be(msgs[n], 0x100, 8);
	mb_be(msgs[n], 5, 8);
	mb_be(msgs[n++], 9, 4);
	msgs[n] = mb_new('C');
	mb_be(msgs[n], 0, 1);
	mb_be(msgs[n], 1, 8);
	mb_be(msgs[n], 2, 8);
	mb_be(msgs[n++], 3, 8);
	msgs[n] = mb_new('O');
	mb_be(msgs[n], 0x42, 8);
	mb_str(msgs[n++], "origin");
	msgs[n] = mb_new('Y');
	mb_be(msgs[n], 99, 4);
	mb_str(msgs[n], "ns");
	mb_str(msgs[n++], "t");
	msgs[n++] = mk_insert(7, 3, NULL);
	msgs[n] = mb_new('U');
	mb_be(msgs[n], 7, 4);
	mb_bytes(msgs[n], "O\0\3nut\0\0\0\1x", 11);
	mb_bytes(msgs[n++], "N\0\3ub\0\0\0\0t\0\0\0\2yz", 16);
	msgs[n] = mb_new('D');
	mb_be(msgs[n], 7, 4);
	mb_bytes(msgs[n++], "K\0\3t\0\0\0\1knn", 11);
	msgs[n] = mb_new('T');
	mb_be(msgs[n], 2, 4);
	mb_be(msgs[n], 1, 1);
	mb_be(msgs[n], 7, 4);
	mb_be(msgs[n++], 8, 4);
	msgs[n] = mb_new('M');
	mb_be(msgs[n], 1, 1);
	mb_be(msgs[n], 0x55, 8);
	mb_str(msgs[n], "p");
	mb_be(msgs[n], 3, 4);
	mb_bytes(msgs[n++], "a\0b", 3);
	msgs[n] = mb_new('c');
	mb_be(msgs[n], 5, 4);
	mb_be(msgs[n], 0, 1);
	mb_be(msgs[n], 1, 8);
	mb_be(msgs[n], 2, 8);
	mb_be(msgs[n++], 3, 8);
	msgs[n] = mb_new('A');
	mb_be(msgs[n], 5, 4);
	mb_be(msgs[n++], 6, 4);
	msgs[n] = mb_new('S');
	mb_be(msgs[n], xid, 4);
	mb_be(msgs[n++], 1, 1);
	for (int i = 0; i < n; i++) {
		all_prefixes_fail(d, msgs[i]);
		/* One byte too many is an error too ('A' reads it as proto 4 abort info). */
		mb_be(msgs[i], 0, 1);
		assert_int_equal(dec(d, msgs[i], &m),
			msgs[i]->buf[0] == 'A' ? CS_PGO_ETRUNC : CS_PGO_EPROTO);
		msgs[i]->len--;
		if (dec(d, msgs[i], &m) != 0)
			fail_msg("'%c': %s", msgs[i]->buf[0], cs_pgo_errstr(d));
		free(msgs[i]);
	}
	/* Inside the stream now: the [xid] prefix is expected everywhere. */
	assert_true(cs_pgo_in_stream(d, &xid));
	assert_int_equal(xid, 900);
	mb *sr = mk_relation(7, 2, &xid);
	all_prefixes_fail(d, sr);
	assert_int_equal(dec_free(d, sr, &m), 0);
	assert_true(m.streamed);
	assert_int_equal(m.xid, 900);
	mb *si = mk_insert(7, 2, &xid);
	all_prefixes_fail(d, si);
	assert_int_equal(dec_free(d, si, &m), 0);
	assert_int_equal(m.insert.newtup.ncols, 2);
	mb *e = mb_new('E');
	assert_int_equal(dec_free(d, e, &m), 0);
	assert_false(cs_pgo_in_stream(d, NULL));
	cs_pgo_decoder_free(d);
}

static void datum_kinds(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	assert_int_equal(dec_free(d, mk_relation(1, 5, NULL), &m), 0);
	mb *b = mb_new('I');
	mb_be(b, 1, 4);
	mb_bytes(b, "N\0\5nut\0\0\0\3abct\0\0\0\0b\0\0\0\2\0\1", 25);
	uint8_t *p = malloc(b->len);
	assert_non_null(p);
	memcpy(p, b->buf, b->len);
	assert_int_equal(cs_pgo_decode(d, p, b->len, &m), 0);
	const cs_pgo_datum *c = m.insert.newtup.cols;
	assert_int_equal(c[0].kind, 'n');
	assert_null(c[0].data);
	assert_int_equal(c[1].kind, 'u');
	assert_int_equal(c[1].len, 0);
	assert_int_equal(c[2].kind, 't');
	assert_ptr_equal(c[2].data, p + 15); /* borrowed from the buffer */
	assert_int_equal(c[3].kind, 't');
	assert_int_equal(c[3].len, 0);
	assert_int_equal(c[4].kind, 'b');
	assert_int_equal(c[4].len, 2);
	assert_memory_equal(c[4].data, "\0\1", 2);

	char buf[4] = "zzz";
	assert_int_equal(cs_pgo_datum_text(&c[0], buf, sizeof buf), CS_PGO_ENULL);
	assert_int_equal(cs_pgo_datum_text(&c[1], buf, sizeof buf), CS_PGO_EUNCHANGED);
	assert_int_equal(cs_pgo_datum_text(&c[4], buf, sizeof buf), CS_PGO_EBINARY);
	assert_int_equal(cs_pgo_datum_text(&c[2], buf, 3), CS_PGO_ETOOLONG); /* needs 4 */
	assert_string_equal(buf, "");
	assert_int_equal(cs_pgo_datum_text(&c[2], buf, 4), 3);
	assert_string_equal(buf, "abc");
	assert_int_equal(cs_pgo_datum_text(&c[3], buf, 1), 0);
	assert_string_equal(buf, "");
	assert_int_equal(cs_pgo_datum_text(&c[2], NULL, 0), CS_PGO_ETOOLONG);
	cs_pgo_datum nul = {'t', (const uint8_t *)"a\0b", 3};
	assert_int_equal(cs_pgo_datum_text(&nul, buf, sizeof buf), CS_PGO_EPROTO);
	cs_pgo_datum odd = {'x', NULL, 0};
	assert_int_equal(cs_pgo_datum_text(&odd, buf, sizeof buf), CS_PGO_EPROTO);
	free(p);
	free(b);
	cs_pgo_decoder_free(d);
}

static void malformed(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	mb *b;

	expect_error(d, mb_new('Z'), CS_PGO_EUNKNOWN, "unknown message type 'Z'");
	expect_error(d, mb_new(1), CS_PGO_EUNKNOWN, "unknown message type 0x01");
	expect_error(d, mb_new('P'), CS_PGO_EUNKNOWN, "'P'"); /* two-phase: not requested */
	assert_int_equal(cs_pgo_decode(d, (const uint8_t *)"", 0, &m), CS_PGO_ETRUNC);

	/* Changes before their Relation: the stream is broken. */
	expect_error(d, mk_insert(42, 1, NULL), CS_PGO_ESTATE, "relation 42 was never described");
	b = mb_new('D');
	mb_be(b, 42, 4);
	mb_bytes(b, "K\0\0", 3);
	expect_error(d, b, CS_PGO_ESTATE, "never described");

	/* Counts. */
	b = mk_relation(1, 0, NULL);
	b->len -= 2;
	mb_be(b, 1665, 2);
	expect_error(d, b, CS_PGO_EPROTO, "1665 columns (max 1664)");
	b = mk_relation(1, 0, NULL);
	b->len -= 2;
	mb_be(b, 0xffff, 2);
	expect_error(d, b, CS_PGO_EPROTO, "65535 columns");
	b = mk_relation(1, 0, NULL);
	b->len -= 2;
	mb_be(b, 1000, 2);
	expect_error(d, b, CS_PGO_ETRUNC, "1000 columns cannot fit");
	assert_null(cs_pgo_relation_get(d, 1));

	/* A relation with no columns exists (CREATE TABLE t()). */
	assert_int_equal(dec_free(d, mk_relation(1, 0, NULL), &m), 0);
	assert_int_equal(m.relation.rel->ncols, 0);
	assert_null(m.relation.rel->cols);
	assert_int_equal(dec_free(d, mk_insert(1, 0, NULL), &m), 0);
	assert_int_equal(m.insert.newtup.ncols, 0);
	b = mk_insert(1, 0, NULL);
	b->len -= 2;
	mb_be(b, 1665, 2);
	expect_error(d, b, CS_PGO_EPROTO, "1665 columns");

	/* Missing NUL: the name runs to the end. */
	b = mb_new('R');
	mb_be(b, 3, 4);
	mb_bytes(b, "public", 6);
	expect_error(d, b, CS_PGO_EPROTO, "namespace is not NUL-terminated");
	b = mb_new('O');
	mb_be(b, 3, 8);
	mb_bytes(b, "x", 1);
	expect_error(d, b, CS_PGO_EPROTO, "origin name");

	/* Datum kinds and lengths. */
	assert_int_equal(dec_free(d, mk_relation(2, 1, NULL), &m), 0);
	b = mb_new('I');
	mb_be(b, 2, 4);
	mb_bytes(b, "N\0\1x", 4);
	expect_error(d, b, CS_PGO_EPROTO, "unknown datum kind 0x78");
	b = mb_new('I');
	mb_be(b, 2, 4);
	mb_bytes(b, "N\0\1t\xff\xff\xff\xff" "abc", 11);
	expect_error(d, b, CS_PGO_ETRUNC, "datum length 4294967295 exceeds the 3 bytes left");
	b = mb_new('I');
	mb_be(b, 2, 4);
	mb_bytes(b, "K\0\1n", 4);
	expect_error(d, b, CS_PGO_EPROTO, "expected new tuple 'N'");
	b = mb_new('U');
	mb_be(b, 2, 4);
	mb_bytes(b, "K\0\1nK\0\1n", 8);
	expect_error(d, b, CS_PGO_EPROTO, "Update: expected new tuple 'N', got 0x4b");
	b = mb_new('D');
	mb_be(b, 2, 4);
	mb_bytes(b, "N\0\1n", 4);
	expect_error(d, b, CS_PGO_EPROTO, "Delete: expected old tuple");
	b = mb_new('U');
	mb_be(b, 2, 4);
	mb_bytes(b, "O\0\2nnN\0\1n", 9);
	expect_error(d, b, CS_PGO_ESTATE, "tuple has 2 columns but relation 2 (s.r) has 1");

	/* Truncate counts. */
	b = mb_new('T');
	mb_be(b, 0, 4);
	mb_be(b, 0, 1);
	expect_error(d, b, CS_PGO_EPROTO, "0 relations");
	b = mb_new('T');
	mb_be(b, 0xffffffff, 4);
	mb_be(b, 0, 1);
	mb_be(b, 1, 4);
	expect_error(d, b, CS_PGO_ETRUNC, "4294967295 relations but 4 bytes");

	/* Message content length must match the rest exactly. */
	b = mb_new('M');
	mb_be(b, 0, 1);
	mb_be(b, 0, 8);
	mb_str(b, "p");
	mb_be(b, 0xfffffff0, 4);
	mb_bytes(b, "abc", 3);
	expect_error(d, b, CS_PGO_ETRUNC, "content length 4294967280 but 3 bytes left");

	/* Stream framing. */
	expect_error(d, mb_new('E'), CS_PGO_ESTATE, "Stream Stop without Stream Start");
	b = mb_new('S');
	mb_be(b, 0, 4);
	mb_be(b, 1, 1);
	expect_error(d, b, CS_PGO_EPROTO, "invalid xid 0");
	b = mb_new('S');
	mb_be(b, 77, 4);
	mb_be(b, 1, 1);
	assert_int_equal(dec_free(d, b, &m), 0);
	b = mb_new('S');
	mb_be(b, 78, 4);
	mb_be(b, 0, 1);
	expect_error(d, b, CS_PGO_ESTATE, "Stream Start inside a streamed block (Stream Start xid 77)");
	b = mb_new('B');
	mb_be(b, 0, 8);
	mb_be(b, 0, 8);
	mb_be(b, 0, 4);
	expect_error(d, b, CS_PGO_ESTATE, "Begin inside a streamed block");
	/* Inside a stream the committed relation 2 is not visible: pgoutput always
	 * resends R in each streamed transaction. */
	uint32_t xid = 77;
	expect_error(d, mk_insert(2, 1, &xid), CS_PGO_ESTATE, "(in this streamed transaction)");
	/* Without the [xid] prefix the OID is read as xid and the tuple bytes as OID. */
	expect_error(d, mk_insert(2, 1, NULL), CS_PGO_ESTATE, "never described");
	assert_true(cs_pgo_in_stream(d, NULL)); /* errors changed no state */
	cs_pgo_decoder_free(d);
}

static void relation_replaced(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	assert_int_equal(dec_free(d, mk_relation(10, 2, NULL), &m), 0);
	assert_int_equal(dec_free(d, mk_insert(10, 2, NULL), &m), 0);

	/* New schema: x, y, z with z the key; text types; different names. */
	mb *b = mb_new('R');
	mb_be(b, 10, 4);
	mb_str(b, "");
	mb_str(b, "renamed");
	mb_be(b, 'i', 1);
	mb_be(b, 3, 2);
	const char *names[] = {"x", "y", "z"};
	for (int i = 0; i < 3; i++) {
		mb_be(b, i == 2, 1);
		mb_str(b, names[i]);
		mb_be(b, 25, 4);
		mb_be(b, (uint64_t)(uint32_t)(i - 1), 4);
	}
	assert_int_equal(dec_free(d, b, &m), 0);
	const cs_pgo_relation *r = cs_pgo_relation_get(d, 10);
	assert_ptr_equal(r, m.relation.rel);
	assert_string_equal(r->nspname, "");
	assert_string_equal(r->relname, "renamed");
	assert_int_equal(r->replident, 'i');
	assert_int_equal(r->ncols, 3);
	assert_int_equal(cs_pgo_relation_column(r, "c0"), -1);
	assert_int_equal(cs_pgo_relation_column(r, "z"), 2);
	assert_true(r->cols[2].key && !r->cols[0].key);
	assert_int_equal(r->cols[0].typmod, -1);
	assert_int_equal(r->cols[2].typmod, 1);
	expect_error(d, mk_insert(10, 2, NULL), CS_PGO_ESTATE,
		"tuple has 2 columns but relation 10 (.renamed) has 3: schema changed");
	assert_int_equal(dec_free(d, mk_insert(10, 3, NULL), &m), 0);
	assert_ptr_equal(m.insert.rel, r);

	/* Many relations: the table grows and keeps every entry. */
	for (uint32_t oid = 1000; oid < 3000; oid++)
		assert_int_equal(dec_free(d, mk_relation(oid, (int)(oid % 5), NULL), &m), 0);
	for (uint32_t oid = 1000; oid < 3000; oid++) {
		r = cs_pgo_relation_get(d, oid);
		assert_non_null(r);
		assert_int_equal(r->oid, oid);
		assert_int_equal(r->ncols, (int)(oid % 5));
	}
	assert_int_equal(cs_pgo_relation_get(d, 10)->ncols, 3);
	assert_null(cs_pgo_relation_get(d, 3000));
	cs_pgo_decoder_free(d);
	cs_pgo_decoder_free(NULL);
}

static void stream_relations(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	mb *b;
	uint32_t x1 = 100, x2 = 101, sub = 102;
	assert_int_equal(dec_free(d, mk_relation(5, 2, NULL), &m), 0);
	const cs_pgo_relation *committed = m.relation.rel;

	/* Streamed transaction 100 changes the schema to 3 columns, then commits. */
	b = mb_new('S');
	mb_be(b, x1, 4);
	mb_be(b, 1, 1);
	assert_int_equal(dec_free(d, b, &m), 0);
	assert_int_equal(m.stream_start.xid, 100);
	assert_true(m.stream_start.first_segment);
	assert_int_equal(dec_free(d, mk_relation(5, 3, &sub), &m), 0);
	assert_int_equal(m.xid, 102); /* the subtransaction's xid in the prefix */
	assert_int_equal(dec_free(d, mk_insert(5, 3, &sub), &m), 0);
	assert_int_equal(dec_free(d, mb_new('E'), &m), 0);
	assert_ptr_equal(cs_pgo_relation_get(d, 5), committed);
	assert_int_equal(dec_free(d, mk_insert(5, 2, NULL), &m), 0); /* concurrent txn */
	/* A subtransaction abort does not end the streamed transaction. */
	b = mb_new('A');
	mb_be(b, x1, 4);
	mb_be(b, sub, 4);
	assert_int_equal(dec_free(d, b, &m), 0);
	b = mb_new('c');
	mb_be(b, x1, 4);
	mb_be(b, 0, 1);
	mb_be(b, 0x10, 8);
	mb_be(b, 0x20, 8);
	mb_be(b, 7, 8);
	assert_int_equal(dec_free(d, b, &m), 0);
	assert_int_equal(m.stream_commit.xid, 100);
	assert_int_equal(m.stream_commit.commit_lsn, 0x10);
	assert_int_equal(m.stream_commit.end_lsn, 0x20);
	assert_int_equal(m.stream_commit.commit_ts, 7);
	const cs_pgo_relation *r = cs_pgo_relation_get(d, 5);
	assert_int_equal(r->ncols, 3);
	expect_error(d, mk_insert(5, 2, NULL), CS_PGO_ESTATE, "schema changed");
	assert_int_equal(dec_free(d, mk_insert(5, 3, NULL), &m), 0);

	/* Streamed transaction 101 changes it again but aborts: no effect. */
	b = mb_new('S');
	mb_be(b, x2, 4);
	mb_be(b, 1, 1);
	assert_int_equal(dec_free(d, b, &m), 0);
	assert_int_equal(dec_free(d, mk_relation(5, 4, &x2), &m), 0);
	assert_int_equal(dec_free(d, mk_relation(6, 1, &x2), &m), 0);
	assert_int_equal(dec_free(d, mb_new('E'), &m), 0);
	b = mb_new('A');
	mb_be(b, x2, 4);
	mb_be(b, x2, 4);
	mb_be(b, 0x30, 8); /* proto 4 abort_lsn / abort_ts */
	mb_be(b, 9, 8);
	assert_int_equal(dec_free(d, b, &m), 0);
	assert_true(m.stream_abort.has_abort_info);
	assert_int_equal(m.stream_abort.abort_lsn, 0x30);
	assert_int_equal(m.stream_abort.abort_ts, 9);
	assert_ptr_equal(cs_pgo_relation_get(d, 5), r);
	assert_null(cs_pgo_relation_get(d, 6));
	/* A Stream Commit for xid 0 (never streamed) leaves the committed view alone. */
	b = mb_new('c');
	mb_be(b, 0, 4);
	mb_be(b, 0, 1);
	mb_be(b, 0, 8);
	mb_be(b, 0, 8);
	mb_be(b, 0, 8);
	assert_int_equal(dec_free(d, b, &m), 0);
	assert_ptr_equal(cs_pgo_relation_get(d, 5), r);
	b = mb_new('A');
	mb_be(b, x2, 4);
	mb_be(b, x2, 4);
	mb_be(b, 0x30, 4);
	expect_error(d, b, CS_PGO_ETRUNC, "abort LSN");
	cs_pgo_decoder_free(d);
}

static void truncate_many(void **state)
{
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	assert_non_null(d);
	cs_pgo_msg m;
	uint32_t counts[] = {10000, 3, 16000};
	for (int k = 0; k < 3; k++) {
		mb *b = mb_new('T');
		mb_be(b, counts[k], 4);
		mb_be(b, 2, 1);
		for (uint32_t i = 0; i < counts[k]; i++)
			mb_be(b, 0x80000000u + i * 7, 4);
		assert_int_equal(dec_free(d, b, &m), 0);
		assert_int_equal(m.truncate.nrels, counts[k]);
		assert_int_equal(m.truncate.flags, CS_PGO_TRUNCATE_RESTART_IDENTITY);
		for (uint32_t i = 0; i < counts[k]; i++)
			assert_int_equal(m.truncate.relids[i], 0x80000000u + i * 7);
	}
	cs_pgo_decoder_free(d);
}

/* ------------------------------------------------------------------------- */
/* CopyBoth framing                                                          */
/* ------------------------------------------------------------------------- */

static void copydata(void **state)
{
	char kind;
	cs_pgo_xlogdata w;
	cs_pgo_keepalive k;
	uint8_t wbuf[28] = {'w', 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0x01,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 'E', 'x', 'y'};
	assert_int_equal(cs_pgo_parse_copydata(wbuf, 25, &kind, &w, NULL), 0);
	assert_int_equal(kind, 'w');
	assert_int_equal(w.data_start, UINT64_C(0x0000000100000002));
	assert_int_equal(w.wal_end, UINT64_C(0xABCDEF01));
	assert_int_equal(w.send_time, -2);
	assert_int_equal(w.len, 0);
	assert_int_equal(cs_pgo_parse_copydata(wbuf, sizeof wbuf, &kind, &w, NULL), 0);
	assert_ptr_equal(w.payload, wbuf + 25);
	assert_int_equal(w.len, 3);
	for (size_t n = 0; n < 25; n++) {
		uint8_t *p = malloc(n ? n : 1);
		assert_non_null(p);
		memcpy(p, wbuf, n);
		assert_int_equal(cs_pgo_parse_copydata(p, n, &kind, &w, &k), CS_PGO_ETRUNC);
		assert_int_equal(kind, n ? 'w' : 0);
		free(p);
	}

	uint8_t kbuf[19] = {'k', 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0};
	memset(&k, 0, sizeof k);
	assert_int_equal(cs_pgo_parse_copydata(kbuf, 18, &kind, NULL, &k), 0);
	assert_int_equal(kind, 'k');
	assert_int_equal(k.wal_end, 0x12345678);
	assert_int_equal(k.send_time, 9);
	assert_true(k.reply_requested);
	kbuf[17] = 0;
	assert_int_equal(cs_pgo_parse_copydata(kbuf, 18, &kind, NULL, &k), 0);
	assert_false(k.reply_requested);
	assert_int_equal(cs_pgo_parse_copydata(kbuf, 17, &kind, NULL, &k), CS_PGO_ETRUNC);
	assert_int_equal(cs_pgo_parse_copydata(kbuf, 19, &kind, NULL, &k), CS_PGO_EPROTO);
	assert_int_equal(cs_pgo_parse_copydata((const uint8_t *)"r", 1, &kind, &w, &k),
		CS_PGO_EUNKNOWN);
	assert_int_equal(kind, 'r');
	/* The caller may pass NULL for what it does not care about. */
	assert_int_equal(cs_pgo_parse_copydata(kbuf, 18, &kind, NULL, NULL), 0);
	assert_int_equal(kind, 'k');
	assert_int_equal(cs_pgo_parse_copydata(wbuf, 25, &kind, NULL, NULL), 0);
	assert_int_equal(kind, 'w');
	for (int code = 0; code >= CS_PGO_ETOOLONG; code--)
		assert_string_not_equal(cs_pgo_strerror(code), "unknown error");
	assert_string_equal(cs_pgo_strerror(CS_PGO_EUNKNOWN), "unknown message type");
	assert_string_equal(cs_pgo_strerror(12345), "unknown error");
}

static void status_bytes(void **state)
{
	uint8_t out[CS_PGO_STATUS_LEN + 1];
	memset(out, 0xEE, sizeof out);
	cs_pgo_build_status(out, UINT64_C(0x0102030405060708), UINT64_C(0x1112131415161718),
		0, -1, true);
	const uint8_t want[CS_PGO_STATUS_LEN] = {'r', 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13,
		0x14, 0x15, 0x16, 0x17, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 1};
	assert_memory_equal(out, want, sizeof want);
	assert_int_equal(out[CS_PGO_STATUS_LEN], 0xEE); /* nothing past 34 bytes */
	cs_pgo_build_status(out, 0, 0x16B374D848, 0, 0, false);
	assert_int_equal(out[33], 0);
	assert_memory_equal(out + 9, "\0\0\0\x16\xB3\x74\xD8\x48", 8);
}

static void time_conversion(void **state)
{
	/* 2000-01-01 00:00:00 UTC is 946684800 Unix seconds. */
	assert_int_equal(cs_pgo_time_from_unix_us(INT64_C(946684800000000)), 0);
	assert_int_equal(cs_pgo_time_to_unix_us(0), INT64_C(946684800000000));
	assert_int_equal(cs_pgo_time_from_unix_us(0), -INT64_C(946684800000000));
	/* The captured commit time maps to a plausible Unix time (2026-11). */
	int64_t u = cs_pgo_time_to_unix_us(848550893421608);
	assert_int_equal(u, INT64_C(1795235693421608));
	assert_int_equal(cs_pgo_time_from_unix_us(u), 848550893421608);
	assert_int_equal(cs_pgo_time_from_unix_us(INT64_MIN), INT64_MIN);
	assert_int_equal(cs_pgo_time_to_unix_us(INT64_MAX), INT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(golden_proto1),
		cmocka_unit_test(golden_proto1_binary),
		cmocka_unit_test(golden_proto2_stream),
		cmocka_unit_test(captured_proto1),
		cmocka_unit_test(captured_binary),
		cmocka_unit_test(captured_stream),
		cmocka_unit_test(handmade_prefixes),
		cmocka_unit_test(datum_kinds),
		cmocka_unit_test(malformed),
		cmocka_unit_test(relation_replaced),
		cmocka_unit_test(stream_relations),
		cmocka_unit_test(truncate_many),
		cmocka_unit_test(copydata),
		cmocka_unit_test(status_bytes),
		cmocka_unit_test(time_conversion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
