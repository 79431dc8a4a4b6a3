/* copyframe.c - CopyBoth payloads of a logical replication connection ('w', 'k', 'r'). */
#include "copyframe.h"

/* 2000-01-01 minus 1970-01-01 in microseconds (10957 days). */
#define PG_EPOCH_OFFSET_US (INT64_C(946684800) * INT64_C(1000000))

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

const char *cs_pgo_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case CS_PGO_ETRUNC:
		return "message truncated";
	case CS_PGO_EPROTO:
		return "malformed message";
	case CS_PGO_EUNKNOWN:
		return "unknown message type";
	case CS_PGO_ESTATE:
		return "message inconsistent with the stream so far";
	case CS_PGO_ENOMEM:
		return "out of memory";
	case CS_PGO_ENULL:
		return "datum is NULL";
	case CS_PGO_EUNCHANGED:
		return "datum is an unchanged TOAST value";
	case CS_PGO_EBINARY:
		return "datum is binary";
	case CS_PGO_ETOOLONG:
		return "datum too long for the buffer";
	default:
		return "unknown error";
	}
}

int cs_pgo_parse_copydata(const uint8_t *buf, size_t len, char *kind, cs_pgo_xlogdata *w,
	cs_pgo_keepalive *k)
{
	if (len == 0) {
		*kind = 0;
		return CS_PGO_ETRUNC;
	}
	*kind = (char)buf[0];
	switch (buf[0]) {
	case 'w':
		if (len < CS_PGO_XLOGDATA_HDRLEN)
			return CS_PGO_ETRUNC;
		if (w == NULL)
			return 0;
		w->data_start = get_u64(buf + 1);
		w->wal_end = get_u64(buf + 9);
		w->send_time = (int64_t)get_u64(buf + 17);
		w->payload = buf + CS_PGO_XLOGDATA_HDRLEN;
		w->len = len - CS_PGO_XLOGDATA_HDRLEN;
		return 0;
	case 'k':
		if (len < CS_PGO_KEEPALIVE_LEN)
			return CS_PGO_ETRUNC;
		if (len > CS_PGO_KEEPALIVE_LEN)
			return CS_PGO_EPROTO;
		if (k == NULL)
			return 0;
		k->wal_end = get_u64(buf + 1);
		k->send_time = (int64_t)get_u64(buf + 9);
		k->reply_requested = buf[17] != 0;
		return 0;
	default:
		return CS_PGO_EUNKNOWN;
	}
}

void cs_pgo_build_status(uint8_t out[CS_PGO_STATUS_LEN], uint64_t write_lsn, uint64_t flush_lsn,
	uint64_t apply_lsn, int64_t send_time, bool reply_requested)
{
	out[0] = 'r';
	put_u64(out + 1, write_lsn);
	put_u64(out + 9, flush_lsn);
	put_u64(out + 17, apply_lsn);
	put_u64(out + 25, (uint64_t)send_time);
	out[33] = reply_requested ? 1 : 0;
}

int64_t cs_pgo_time_from_unix_us(int64_t unix_us)
{
	if (unix_us < INT64_MIN + PG_EPOCH_OFFSET_US)
		return INT64_MIN;
	return unix_us - PG_EPOCH_OFFSET_US;
}

int64_t cs_pgo_time_to_unix_us(int64_t pg_us)
{
	if (pg_us > INT64_MAX - PG_EPOCH_OFFSET_US)
		return INT64_MAX;
	return pg_us + PG_EPOCH_OFFSET_US;
}
