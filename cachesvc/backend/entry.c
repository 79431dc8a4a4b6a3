/* entry.c - the layout of a cache entry in Redis (see entry.h). */
#include "entry.h"

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void cs_entry_write_header(const cs_entry *e, uint8_t out[CS_ENTRY_HDR])
{
	out[0] = CS_ENTRY_MAGIC;
	out[1] = CS_ENTRY_VERSION;
	out[2] = e->flags;
	out[3] = 0;
	put64(out + 4, e->lsn);
	put64(out + 12, (uint64_t)e->filled_ms);
	put64(out + 20, (uint64_t)e->expires_ms);
	out[28] = (uint8_t)(e->delta_ms >> 24);
	out[29] = (uint8_t)(e->delta_ms >> 16);
	out[30] = (uint8_t)(e->delta_ms >> 8);
	out[31] = (uint8_t)e->delta_ms;
}

bool cs_entry_parse(const uint8_t *buf, size_t len, cs_entry *out)
{
	if (len <= CS_ENTRY_HDR || buf[0] != CS_ENTRY_MAGIC || buf[1] != CS_ENTRY_VERSION)
		return false;
	out->flags = buf[2];
	out->lsn = get64(buf + 4);
	out->filled_ms = (int64_t)get64(buf + 12);
	out->expires_ms = (int64_t)get64(buf + 20);
	out->delta_ms = (uint32_t)buf[28] << 24 | (uint32_t)buf[29] << 16 | (uint32_t)buf[30] << 8 |
		buf[31];
	out->result = buf + CS_ENTRY_HDR;
	out->result_len = len - CS_ENTRY_HDR;
	return true;
}
