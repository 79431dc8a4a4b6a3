/* pgoutput.c - pure decoder of pgoutput logical replication messages (proto 1 and 2). */
#include "pgoutput.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Relation cache                                                            */
/* ------------------------------------------------------------------------- */

/*
 * Cached relations are keyed by (OID, context). Context 0 is the committed view,
 * used outside streamed blocks; a streamed transaction's Relation messages go to
 * context = its top-level xid, because pgoutput sends the schema once per streamed
 * transaction independently of what it sent outside (pgoutput.c
 * get_schema_sent_in_streamed_txn), and at Stream Commit counts it as sent for
 * everybody (cleanup_rel_sync_cache sets schema_sent). So: lookups inside a stream use
 * the stream's context; Stream Commit moves that context's entries to context 0
 * (replacing), Stream Abort of the top-level transaction drops them.
 *
 * Each entry is one allocation: the node, the column array, then all names.
 * Chained hash table, so entries never move and removal is simple.
 */
typedef struct relnode {
	struct relnode *next;
	uint32_t ctx; /* 0 or the streamed top-level xid */
	cs_pgo_relation rel;
} relnode;

struct cs_pgo_decoder {
	relnode **buckets;
	size_t nbuckets; /* power of two */
	size_t nrels;

	bool in_stream;
	uint32_t stream_xid;

	cs_pgo_datum oldcols[CS_PGO_MAX_COLUMNS];
	cs_pgo_datum newcols[CS_PGO_MAX_COLUMNS];
	uint32_t *relids; /* Truncate scratch */
	size_t relids_cap;

	char errstr[160];
};

static size_t rel_hash(uint32_t oid, uint32_t ctx, size_t nbuckets)
{
	uint64_t h = ((uint64_t)ctx << 32 | oid) * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 32) & (nbuckets - 1);
}

static relnode **rel_slot(const cs_pgo_decoder *d, uint32_t oid, uint32_t ctx)
{
	relnode **pp = &d->buckets[rel_hash(oid, ctx, d->nbuckets)];
	while (*pp != NULL && ((*pp)->rel.oid != oid || (*pp)->ctx != ctx))
		pp = &(*pp)->next;
	return pp;
}

static const cs_pgo_relation *rel_find(const cs_pgo_decoder *d, uint32_t oid, uint32_t ctx)
{
	relnode *n = *rel_slot(d, oid, ctx);
	return n != NULL ? &n->rel : NULL;
}

/* Doubles the table when it is full on average. Returns false on OOM (unchanged). */
static bool rel_grow(cs_pgo_decoder *d)
{
	if (d->nrels < d->nbuckets)
		return true;
	size_t nb = d->nbuckets * 2;
	relnode **b = calloc(nb, sizeof *b);
	if (b == NULL)
		return false;
	for (size_t i = 0; i < d->nbuckets; i++) {
		relnode *n = d->buckets[i];
		while (n != NULL) {
			relnode *next = n->next;
			size_t h = rel_hash(n->rel.oid, n->ctx, nb);
			n->next = b[h];
			b[h] = n;
			n = next;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = nb;
	return true;
}

/* Links n in, freeing any entry it replaces. The table has room (rel_grow). */
static void rel_put(cs_pgo_decoder *d, relnode *n)
{
	relnode **pp = rel_slot(d, n->rel.oid, n->ctx);
	if (*pp != NULL) {
		relnode *old = *pp;
		n->next = old->next;
		free(old);
	} else {
		n->next = NULL;
		d->nrels++;
	}
	*pp = n;
}

/* Ends streamed transaction xid: commit promotes its relations to context 0,
 * abort drops them. Never allocates. */
static void rel_end_stream(cs_pgo_decoder *d, uint32_t xid, bool commit)
{
	if (xid == 0)
		return; /* context 0 is the committed view itself */
	relnode *moved = NULL;
	for (size_t i = 0; i < d->nbuckets; i++) {
		relnode **pp = &d->buckets[i];
		while (*pp != NULL) {
			relnode *n = *pp;
			if (n->ctx != xid) {
				pp = &n->next;
				continue;
			}
			*pp = n->next;
			d->nrels--;
			if (commit) {
				n->next = moved;
				moved = n;
			} else {
				free(n);
			}
		}
	}
	while (moved != NULL) {
		relnode *n = moved;
		moved = n->next;
		n->ctx = 0;
		rel_put(d, n); /* replaces or reuses a slot just freed: no growth */
	}
}

/* ------------------------------------------------------------------------- */
/* Bounded reader                                                            */
/* ------------------------------------------------------------------------- */

typedef struct reader {
	cs_pgo_decoder *d;
	const char *msg; /* message name for errors */
	const uint8_t *p;
	size_t left;
} reader;

__attribute__((format(printf, 3, 4))) static int fail(cs_pgo_decoder *d, int code,
	const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->errstr, sizeof d->errstr, fmt, ap);
	va_end(ap);
	return code;
}

static int need(reader *r, size_t n, const char *what)
{
	if (r->left < n)
		return fail(r->d, CS_PGO_ETRUNC, "%s: truncated at %s (need %zu bytes, %zu left)",
			r->msg, what, n, r->left);
	return 0;
}

static int rd_u8(reader *r, uint8_t *v, const char *what)
{
	int rc = need(r, 1, what);
	if (rc < 0)
		return rc;
	*v = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

static int rd_be(reader *r, int n, uint64_t *v, const char *what)
{
	int rc = need(r, (size_t)n, what);
	if (rc < 0)
		return rc;
	uint64_t x = 0;
	for (int i = 0; i < n; i++)
		x = (x << 8) | r->p[i];
	r->p += n;
	r->left -= (size_t)n;
	*v = x;
	return 0;
}

static int rd_u16(reader *r, uint16_t *v, const char *what)
{
	uint64_t x;
	int rc = rd_be(r, 2, &x, what);
	if (rc == 0)
		*v = (uint16_t)x;
	return rc;
}

static int rd_u32(reader *r, uint32_t *v, const char *what)
{
	uint64_t x;
	int rc = rd_be(r, 4, &x, what);
	if (rc == 0)
		*v = (uint32_t)x;
	return rc;
}

static int rd_u64(reader *r, uint64_t *v, const char *what)
{
	return rd_be(r, 8, v, what);
}

static int rd_i64(reader *r, int64_t *v, const char *what)
{
	uint64_t x;
	int rc = rd_be(r, 8, &x, what);
	if (rc == 0)
		*v = (int64_t)x;
	return rc;
}

/* A NUL-terminated string inside the remaining bytes; *s borrows the buffer. */
static int rd_str(reader *r, const char **s, size_t *len, const char *what)
{
	const uint8_t *nul = r->left ? memchr(r->p, 0, r->left) : NULL;
	if (nul == NULL)
		return fail(r->d, CS_PGO_EPROTO, "%s: %s is not NUL-terminated within the message",
			r->msg, what);
	size_t n = (size_t)(nul - r->p);
	*s = (const char *)r->p;
	if (len != NULL)
		*len = n;
	r->p += n + 1;
	r->left -= n + 1;
	return 0;
}

static int rd_end(reader *r)
{
	if (r->left != 0)
		return fail(r->d, CS_PGO_EPROTO, "%s: %zu unexpected trailing bytes", r->msg,
			r->left);
	return 0;
}

/* The [xid] prefix that R/Y/I/U/D/T/M carry inside a streamed block. */
static int rd_stream_xid(reader *r, cs_pgo_msg *out)
{
	if (!r->d->in_stream)
		return 0;
	out->streamed = true;
	return rd_u32(r, &out->xid, "streamed xid");
}

#define TRY(expr)                                                                          \
	do {                                                                               \
		int rc_ = (expr);                                                          \
		if (rc_ < 0)                                                               \
			return rc_;                                                        \
	} while (0)

/* ------------------------------------------------------------------------- */
/* Messages                                                                  */
/* ------------------------------------------------------------------------- */

/* TupleData into cols[] (CS_PGO_MAX_COLUMNS entries); its column count must match rel. */
static int rd_tuple(reader *r, const cs_pgo_relation *rel, cs_pgo_datum *cols, cs_pgo_tuple *t)
{
	uint16_t n;
	TRY(rd_u16(r, &n, "tuple column count"));
	if (n > CS_PGO_MAX_COLUMNS)
		return fail(r->d, CS_PGO_EPROTO, "%s: tuple has %u columns (max %d)", r->msg, n,
			CS_PGO_MAX_COLUMNS);
	if (n != rel->ncols)
		return fail(r->d, CS_PGO_ESTATE,
			"%s: tuple has %u columns but relation %u (%s.%s) has %d: schema changed "
			"without a Relation message",
			r->msg, n, rel->oid, rel->nspname, rel->relname, rel->ncols);
	for (uint16_t i = 0; i < n; i++) {
		uint8_t kind;
		TRY(rd_u8(r, &kind, "datum kind"));
		cols[i].kind = (char)kind;
		cols[i].data = NULL;
		cols[i].len = 0;
		switch (kind) {
		case 'n':
		case 'u':
			break;
		case 't':
		case 'b': {
			uint32_t len;
			TRY(rd_u32(r, &len, "datum length"));
			if (len > r->left)
				return fail(r->d, CS_PGO_ETRUNC,
					"%s: column %u: datum length %u exceeds the %zu bytes left",
					r->msg, i, len, r->left);
			cols[i].data = r->p;
			cols[i].len = len;
			r->p += len;
			r->left -= len;
			break;
		}
		default:
			return fail(r->d, CS_PGO_EPROTO, "%s: column %u: unknown datum kind 0x%02x",
				r->msg, i, kind);
		}
	}
	t->ncols = n;
	t->cols = cols;
	return 0;
}

/* The relation an I/U/D refers to, in the current context. */
static int rd_relref(reader *r, const cs_pgo_relation **rel)
{
	uint32_t oid;
	TRY(rd_u32(r, &oid, "relation OID"));
	cs_pgo_decoder *d = r->d;
	*rel = rel_find(d, oid, d->in_stream ? d->stream_xid : 0);
	if (*rel == NULL)
		return fail(d, CS_PGO_ESTATE, "%s: relation %u%s was never described by a Relation "
			"message", r->msg, oid, d->in_stream ? " (in this streamed transaction)" : "");
	return 0;
}

static int decode_relation(reader *r, cs_pgo_msg *out)
{
	cs_pgo_decoder *d = r->d;
	/* Initialised only to quiet -O3 -Wmaybe-uninitialized: each is read after its rd_*
	 * call succeeded (TRY returns otherwise). */
	uint32_t oid = 0;
	const char *nsp = NULL, *relname = NULL;
	size_t nsplen = 0, rellen = 0;
	uint8_t replident = 0;
	uint16_t ncols = 0;

	TRY(rd_stream_xid(r, out));
	TRY(rd_u32(r, &oid, "relation OID"));
	TRY(rd_str(r, &nsp, &nsplen, "namespace"));
	TRY(rd_str(r, &relname, &rellen, "relation name"));
	TRY(rd_u8(r, &replident, "replica identity"));
	TRY(rd_u16(r, &ncols, "column count"));
	if (ncols > CS_PGO_MAX_COLUMNS)
		return fail(d, CS_PGO_EPROTO, "Relation %u: %u columns (max %d)", oid, ncols,
			CS_PGO_MAX_COLUMNS);
	/* flags + name NUL + type OID + typmod: at least 10 bytes per column. */
	if ((size_t)ncols * 10 > r->left)
		return fail(d, CS_PGO_ETRUNC, "Relation %u: %u columns cannot fit in %zu bytes",
			oid, ncols, r->left);

	/* Pass 1: validate and measure, allocating nothing. */
	reader cols = *r;
	size_t names = 0;
	for (uint16_t i = 0; i < ncols; i++) {
		uint8_t flags = 0;
		const char *name = NULL;
		size_t namelen = 0;
		uint64_t skip = 0;
		TRY(rd_u8(r, &flags, "column flags"));
		TRY(rd_str(r, &name, &namelen, "column name"));
		TRY(rd_be(r, 8, &skip, "column type"));
		names += namelen + 1;
	}
	TRY(rd_end(r));
	if (rel_find(d, oid, d->in_stream ? d->stream_xid : 0) == NULL &&
		d->nrels >= CS_PGO_MAX_RELATIONS)
		return fail(d, CS_PGO_ESTATE, "Relation %u: more than %d relations cached", oid,
			CS_PGO_MAX_RELATIONS);

	/* Pass 2: one block holding node, columns and names (all bounded by len). */
	size_t size = sizeof(relnode) + (size_t)ncols * sizeof(cs_pgo_column) + nsplen + 1 +
		      rellen + 1 + names;
	relnode *n = malloc(size);
	if (n == NULL || !rel_grow(d)) {
		free(n);
		return fail(d, CS_PGO_ENOMEM, "Relation %u: out of memory", oid);
	}
	cs_pgo_column *col = (cs_pgo_column *)(n + 1);
	char *str = (char *)(col + ncols);
	n->ctx = d->in_stream ? d->stream_xid : 0;
	n->rel.oid = oid;
	n->rel.replident = (char)replident;
	n->rel.ncols = ncols;
	n->rel.cols = ncols ? col : NULL;
	n->rel.nspname = memcpy(str, nsp, nsplen + 1);
	str += nsplen + 1;
	n->rel.relname = memcpy(str, relname, rellen + 1);
	str += rellen + 1;
	for (uint16_t i = 0; i < ncols; i++) {
		uint8_t flags = 0;
		const char *name = "";
		size_t namelen = 0;
		uint32_t typoid = 0, typmod = 0;
		/* Already validated: these cannot fail. */
		(void)rd_u8(&cols, &flags, "column flags");
		(void)rd_str(&cols, &name, &namelen, "column name");
		(void)rd_u32(&cols, &typoid, "column type");
		(void)rd_u32(&cols, &typmod, "column typmod");
		col[i].name = memcpy(str, name, namelen + 1);
		str += namelen + 1;
		col[i].type_oid = typoid;
		col[i].typmod = (int32_t)typmod;
		col[i].key = (flags & 1) != 0;
	}
	rel_put(d, n);
	out->relation.rel = &n->rel;
	return 0;
}

static int decode_update(reader *r, cs_pgo_msg *out)
{
	cs_pgo_update *u = &out->update;
	uint8_t kind;
	TRY(rd_stream_xid(r, out));
	TRY(rd_relref(r, &u->rel));
	TRY(rd_u8(r, &kind, "tuple kind"));
	if (kind == 'K' || kind == 'O') {
		u->old_kind = (char)kind;
		TRY(rd_tuple(r, u->rel, r->d->oldcols, &u->oldtup));
		TRY(rd_u8(r, &kind, "new tuple kind"));
	}
	if (kind != 'N')
		return fail(r->d, CS_PGO_EPROTO, "Update: expected new tuple 'N', got 0x%02x",
			kind);
	TRY(rd_tuple(r, u->rel, r->d->newcols, &u->newtup));
	return rd_end(r);
}

static int decode_delete(reader *r, cs_pgo_msg *out)
{
	cs_pgo_delete *del = &out->delete;
	uint8_t kind;
	TRY(rd_stream_xid(r, out));
	TRY(rd_relref(r, &del->rel));
	TRY(rd_u8(r, &kind, "tuple kind"));
	if (kind != 'K' && kind != 'O')
		return fail(r->d, CS_PGO_EPROTO, "Delete: expected old tuple 'K' or 'O', got 0x%02x",
			kind);
	del->old_kind = (char)kind;
	TRY(rd_tuple(r, del->rel, r->d->oldcols, &del->oldtup));
	return rd_end(r);
}

static int decode_truncate(reader *r, cs_pgo_msg *out)
{
	cs_pgo_decoder *d = r->d;
	cs_pgo_truncate *t = &out->truncate;
	uint32_t n;
	TRY(rd_stream_xid(r, out));
	TRY(rd_u32(r, &n, "relation count"));
	TRY(rd_u8(r, &t->flags, "flags"));
	/* nrels is bounded by the bytes left (4 per OID) before anything is allocated. */
	if (n == 0 || r->left % 4 != 0 || n != r->left / 4)
		return fail(d, n > r->left / 4 ? CS_PGO_ETRUNC : CS_PGO_EPROTO,
			"Truncate: %u relations but %zu bytes of OIDs", n, r->left);
	if (n > d->relids_cap) {
		uint32_t *p = realloc(d->relids, (size_t)n * sizeof *p);
		if (p == NULL)
			return fail(d, CS_PGO_ENOMEM, "Truncate: out of memory for %u OIDs", n);
		d->relids = p;
		d->relids_cap = n;
	}
	for (uint32_t i = 0; i < n; i++)
		(void)rd_u32(r, &d->relids[i], "relation OID"); /* length checked above */
	t->nrels = n;
	t->relids = d->relids;
	return 0;
}

static int decode_message(reader *r, cs_pgo_msg *out)
{
	cs_pgo_message *m = &out->message;
	TRY(rd_stream_xid(r, out));
	TRY(rd_u8(r, &m->flags, "flags"));
	TRY(rd_u64(r, &m->lsn, "LSN"));
	TRY(rd_str(r, &m->prefix, NULL, "prefix"));
	TRY(rd_u32(r, &m->len, "content length"));
	if (m->len != r->left)
		return fail(r->d, m->len > r->left ? CS_PGO_ETRUNC : CS_PGO_EPROTO,
			"Message: content length %u but %zu bytes left", m->len, r->left);
	m->content = r->p;
	r->p += m->len;
	r->left = 0;
	return 0;
}

static const char *msg_name(uint8_t type)
{
	switch (type) {
	case 'B':
		return "Begin";
	case 'C':
		return "Commit";
	case 'O':
		return "Origin";
	case 'R':
		return "Relation";
	case 'Y':
		return "Type";
	case 'I':
		return "Insert";
	case 'U':
		return "Update";
	case 'D':
		return "Delete";
	case 'T':
		return "Truncate";
	case 'M':
		return "Message";
	case 'S':
		return "Stream Start";
	case 'E':
		return "Stream Stop";
	case 'c':
		return "Stream Commit";
	case 'A':
		return "Stream Abort";
	default:
		return NULL;
	}
}

static int decode_one(cs_pgo_decoder *d, reader *r, uint8_t type, cs_pgo_msg *out)
{
	bool allowed_in_stream = type == 'E' || type == 'R' || type == 'Y' || type == 'I' ||
			  type == 'U' || type == 'D' || type == 'T' || type == 'M';
	/* Transaction framing messages never appear inside a streamed block. */
	if (d->in_stream && !allowed_in_stream)
		return fail(d, CS_PGO_ESTATE, "%s inside a streamed block (Stream Start xid %u)",
			r->msg, d->stream_xid);
	if (!d->in_stream && type == 'E')
		return fail(d, CS_PGO_ESTATE, "Stream Stop without Stream Start");

	switch (type) {
	case 'B':
		TRY(rd_u64(r, &out->begin.final_lsn, "final LSN"));
		TRY(rd_i64(r, &out->begin.commit_ts, "commit timestamp"));
		TRY(rd_u32(r, &out->begin.xid, "xid"));
		return rd_end(r);
	case 'C':
		TRY(rd_u8(r, &out->commit.flags, "flags"));
		TRY(rd_u64(r, &out->commit.commit_lsn, "commit LSN"));
		TRY(rd_u64(r, &out->commit.end_lsn, "end LSN"));
		TRY(rd_i64(r, &out->commit.commit_ts, "commit timestamp"));
		return rd_end(r);
	case 'O':
		TRY(rd_u64(r, &out->origin.lsn, "origin LSN"));
		TRY(rd_str(r, &out->origin.name, NULL, "origin name"));
		return rd_end(r);
	case 'R':
		return decode_relation(r, out);
	case 'Y':
		TRY(rd_stream_xid(r, out));
		TRY(rd_u32(r, &out->pgtype.oid, "type OID"));
		TRY(rd_str(r, &out->pgtype.nspname, NULL, "namespace"));
		TRY(rd_str(r, &out->pgtype.typname, NULL, "type name"));
		return rd_end(r);
	case 'I': {
		uint8_t kind;
		TRY(rd_stream_xid(r, out));
		TRY(rd_relref(r, &out->insert.rel));
		TRY(rd_u8(r, &kind, "tuple kind"));
		if (kind != 'N')
			return fail(d, CS_PGO_EPROTO, "Insert: expected new tuple 'N', got 0x%02x",
				kind);
		TRY(rd_tuple(r, out->insert.rel, d->newcols, &out->insert.newtup));
		return rd_end(r);
	}
	case 'U':
		return decode_update(r, out);
	case 'D':
		return decode_delete(r, out);
	case 'T':
		return decode_truncate(r, out);
	case 'M':
		return decode_message(r, out);
	case 'S': {
		uint8_t first;
		TRY(rd_u32(r, &out->stream_start.xid, "xid"));
		TRY(rd_u8(r, &first, "first segment"));
		TRY(rd_end(r));
		if (out->stream_start.xid == 0)
			return fail(d, CS_PGO_EPROTO, "Stream Start with invalid xid 0");
		out->stream_start.first_segment = first != 0;
		d->in_stream = true;
		d->stream_xid = out->stream_start.xid;
		return 0;
	}
	case 'E':
		TRY(rd_end(r));
		d->in_stream = false;
		d->stream_xid = 0;
		return 0;
	case 'c': {
		cs_pgo_stream_commit *c = &out->stream_commit;
		TRY(rd_u32(r, &c->xid, "xid"));
		TRY(rd_u8(r, &c->flags, "flags"));
		TRY(rd_u64(r, &c->commit_lsn, "commit LSN"));
		TRY(rd_u64(r, &c->end_lsn, "end LSN"));
		TRY(rd_i64(r, &c->commit_ts, "commit timestamp"));
		TRY(rd_end(r));
		rel_end_stream(d, c->xid, true);
		return 0;
	}
	case 'A': {
		cs_pgo_stream_abort *a = &out->stream_abort;
		TRY(rd_u32(r, &a->xid, "xid"));
		TRY(rd_u32(r, &a->subxid, "subxid"));
		if (r->left != 0) { /* proto 4, streaming = parallel */
			TRY(rd_u64(r, &a->abort_lsn, "abort LSN"));
			TRY(rd_i64(r, &a->abort_ts, "abort timestamp"));
			a->has_abort_info = true;
		}
		TRY(rd_end(r));
		if (a->subxid == a->xid)
			rel_end_stream(d, a->xid, false);
		return 0;
	}
	}
	return fail(d, CS_PGO_EUNKNOWN, "unknown message type 0x%02x", type); /* not reached */
}

/* ------------------------------------------------------------------------- */
/* Public API                                                                */
/* ------------------------------------------------------------------------- */

cs_pgo_decoder *cs_pgo_decoder_new(void)
{
	cs_pgo_decoder *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->nbuckets = 64;
	d->buckets = calloc(d->nbuckets, sizeof *d->buckets);
	if (d->buckets == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

void cs_pgo_decoder_free(cs_pgo_decoder *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		relnode *n = d->buckets[i];
		while (n != NULL) {
			relnode *next = n->next;
			free(n);
			n = next;
		}
	}
	free(d->buckets);
	free(d->relids);
	free(d);
}

int cs_pgo_decode(cs_pgo_decoder *d, const uint8_t *buf, size_t len, cs_pgo_msg *out)
{
	memset(out, 0, sizeof *out);
	d->errstr[0] = '\0';
	if (len == 0)
		return fail(d, CS_PGO_ETRUNC, "empty message");
	const char *name = msg_name(buf[0]);
	if (name == NULL) {
		if (buf[0] >= 0x21 && buf[0] < 0x7f)
			return fail(d, CS_PGO_EUNKNOWN, "unknown message type '%c' (0x%02x)",
				buf[0], buf[0]);
		return fail(d, CS_PGO_EUNKNOWN, "unknown message type 0x%02x", buf[0]);
	}
	reader r = {.d = d, .msg = name, .p = buf + 1, .left = len - 1};
	out->type = (char)buf[0];
	int rc = decode_one(d, &r, buf[0], out);
	if (rc < 0)
		memset(out, 0, sizeof *out);
	return rc;
}

const char *cs_pgo_errstr(const cs_pgo_decoder *d)
{
	return d->errstr;
}

const cs_pgo_relation *cs_pgo_relation_get(const cs_pgo_decoder *d, uint32_t oid)
{
	return rel_find(d, oid, 0);
}

int cs_pgo_relation_column(const cs_pgo_relation *rel, const char *name)
{
	for (int i = 0; i < rel->ncols; i++)
		if (strcmp(rel->cols[i].name, name) == 0)
			return i;
	return -1;
}

bool cs_pgo_in_stream(const cs_pgo_decoder *d, uint32_t *xid)
{
	if (xid != NULL)
		*xid = d->in_stream ? d->stream_xid : 0;
	return d->in_stream;
}

int cs_pgo_datum_text(const cs_pgo_datum *d, char *buf, size_t size)
{
	int rc;
	if (size > 0)
		buf[0] = '\0';
	switch (d->kind) {
	case 'n':
		return CS_PGO_ENULL;
	case 'u':
		return CS_PGO_EUNCHANGED;
	case 'b':
		return CS_PGO_EBINARY;
	case 't':
		break;
	default:
		return CS_PGO_EPROTO;
	}
	if ((size_t)d->len >= size || d->len > INT_MAX)
		return CS_PGO_ETOOLONG;
	if (d->len > 0 && memchr(d->data, 0, d->len) != NULL)
		return CS_PGO_EPROTO;
	if (d->len > 0)
		memcpy(buf, d->data, d->len);
	buf[d->len] = '\0';
	rc = (int)d->len;
	return rc;
}
