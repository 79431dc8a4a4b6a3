/* fuzz_pgoutput.c - libFuzzer harness for the pgoutput decoder and CopyBoth framing.
 *
 * Input: one mode byte, then records of [2-byte big-endian length][bytes] (a short
 * last record takes what is left). All records go, in order, to ONE decoder so that
 * the relation cache and the stream state carry over between messages.
 * Mode bit 0: each record is a CopyData payload: cs_pgo_parse_copydata() first, and
 * an XLogData's payload is decoded. Otherwise each record is a pgoutput message.
 * Every record is copied to an exact-size heap block so ASan sees any over-read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t sink;

/* Reads every byte a successful decode points at. */
static void touch_tuple(const cs_pgo_relation *rel, const cs_pgo_tuple *t)
{
	char buf[32];
	if (t->ncols != rel->ncols)
		abort(); /* the decoder promises equal counts */
	for (int i = 0; i < t->ncols; i++) {
		const cs_pgo_datum *c = &t->cols[i];
		for (uint32_t j = 0; j < c->len; j++)
			sink += c->data[j];
		int n = cs_pgo_datum_text(c, buf, sizeof buf);
		if (n >= 0 && strlen(buf) != (size_t)n)
			abort();
		sink += (uint32_t)strlen(rel->cols[i].name);
	}
}

static void touch(const cs_pgo_decoder *d, const cs_pgo_msg *m)
{
	switch (m->type) {
	case 'R': {
		const cs_pgo_relation *r = m->relation.rel;
		sink += (uint32_t)strlen(r->nspname) + (uint32_t)strlen(r->relname);
		for (int i = 0; i < r->ncols; i++)
			if (cs_pgo_relation_column(r, r->cols[i].name) < 0)
				abort();
		if (!m->streamed && cs_pgo_relation_get(d, r->oid) != r)
			abort();
		break;
	}
	case 'Y':
		sink += (uint32_t)strlen(m->pgtype.nspname) + (uint32_t)strlen(m->pgtype.typname);
		break;
	case 'O':
		sink += (uint32_t)strlen(m->origin.name);
		break;
	case 'I':
		touch_tuple(m->insert.rel, &m->insert.newtup);
		break;
	case 'U':
		if (m->update.old_kind)
			touch_tuple(m->update.rel, &m->update.oldtup);
		touch_tuple(m->update.rel, &m->update.newtup);
		break;
	case 'D':
		touch_tuple(m->delete.rel, &m->delete.oldtup);
		break;
	case 'T':
		for (uint32_t i = 0; i < m->truncate.nrels; i++)
			sink += m->truncate.relids[i];
		break;
	case 'M':
		sink += (uint32_t)strlen(m->message.prefix);
		for (uint32_t i = 0; i < m->message.len; i++)
			sink += m->message.content[i];
		break;
	default:
		break;
	}
}

static void feed(cs_pgo_decoder *d, const uint8_t *rec, size_t len, int copydata)
{
	cs_pgo_msg m;
	if (copydata) {
		char kind;
		cs_pgo_xlogdata w;
		cs_pgo_keepalive k;
		if (cs_pgo_parse_copydata(rec, len, &kind, &w, &k) != 0)
			return;
		if (kind == 'k') {
			uint8_t st[CS_PGO_STATUS_LEN];
			cs_pgo_build_status(st, k.wal_end, k.wal_end, 0,
				cs_pgo_time_to_unix_us(k.send_time), k.reply_requested);
			sink += st[33];
			return;
		}
		rec = w.payload;
		len = w.len;
	}
	if (cs_pgo_decode(d, rec, len, &m) == 0) {
		touch(d, &m);
	} else {
		if (cs_pgo_errstr(d)[0] == '\0' || m.type != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int copydata = data[0] & 1;
	data++;
	size--;
	cs_pgo_decoder *d = cs_pgo_decoder_new();
	if (d == NULL)
		return 0;
	while (size > 0) {
		size_t len = size >= 2 ? (size_t)data[0] << 8 | data[1] : 0;
		size_t hdr = size >= 2 ? 2 : size;
		data += hdr;
		size -= hdr;
		if (len > size)
			len = size;
		uint8_t *rec = malloc(len ? len : 1);
		if (rec == NULL)
			break;
		if (len)
			memcpy(rec, data, len);
		feed(d, rec, len, copydata);
		free(rec);
		data += len;
		size -= len;
	}
	cs_pgo_decoder_free(d);
	return 0;
}
