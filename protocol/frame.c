/* frame.c - frame headers, the feed-bytes/take-frames reader, and code/opcode names. */
#include "cs_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cs_err_name(int code)
{
	static const char *const names[CS_ERR_MAX + 1] = {
	        [CS_ERR_UNKNOWN_QUERY] = "unknown_query",
	        [CS_ERR_BAD_PARAMS] = "bad_params",
	        [CS_ERR_OVERLOADED] = "overloaded",
	        [CS_ERR_UNAVAILABLE] = "unavailable",
	        [CS_ERR_TOO_LARGE] = "too_large",
	        [CS_ERR_AUTH] = "auth",
	        [CS_ERR_PROTOCOL] = "protocol",
	        [CS_ERR_INTERNAL] = "internal",
	        [CS_ERR_TIMEOUT] = "timeout",
	        [CS_ERR_SHUTTING_DOWN] = "shutting_down",
	        [CS_ERR_FUTURE_LSN] = "future_lsn",
	        [CS_ERR_NO_SHARD] = "no_shard",
	};
	if (code < 0)
		code = -code;
	if (code < 1 || code > CS_ERR_MAX)
		return "unknown_error";
	return names[code];
}

bool cs_proto_shard_name_ok(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > CS_PROTO_MAX_SHARD)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		            c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

const char *cs_op_name(uint8_t op)
{
	static const char *const names[] = {
	        NULL, "hello", "ping", "get", "mget", "refresh", "invalidate", "stats", "show", "admin"};
	static const char *const replies[] = {NULL, "hello_reply", "ping_reply", "get_reply",
	        "mget_reply", "refresh_reply", "invalidate_reply", "stats_reply", "show_reply", "admin_reply"};
	if (op == CS_OP_ERROR)
		return "error";
	if (cs_op_is_request(op))
		return names[op];
	if ((op & CS_OP_REPLY_FLAG) && cs_op_is_request(op & ~CS_OP_REPLY_FLAG))
		return replies[op & ~CS_OP_REPLY_FLAG];
	return "unknown";
}

bool cs_op_is_request(uint8_t op)
{
	return op >= CS_OP_HELLO && op <= CS_OP_ADMIN;
}

int cs_proto_parse_header(const uint8_t hdr[CS_PROTO_HDR], uint32_t max_body, cs_frame *out)
{
	out->body_len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	                ((uint32_t)hdr[2] << 8) | hdr[3];
	out->version = hdr[4];
	out->opcode = hdr[5];
	out->flags = (uint16_t)((hdr[6] << 8) | hdr[7]);
	out->reqid = ((uint32_t)hdr[8] << 24) | ((uint32_t)hdr[9] << 16) |
	             ((uint32_t)hdr[10] << 8) | hdr[11];
	out->body = NULL;
	if (out->version != CS_PROTO_VERSION || out->flags != 0 || out->body_len > max_body)
		return -CS_ERR_PROTOCOL;
	return 0;
}

/* ---- Reader ------------------------------------------------------------------------------ */

struct cs_proto_reader {
	uint8_t *buf;
	size_t pos; /* first unconsumed byte */
	size_t len; /* bytes in buf */
	size_t cap;
	size_t limit; /* hard cap on unconsumed bytes */
	uint32_t max_body;
	int err; /* sticky negated cs_err, 0 if fine */
	char errstr[128];
};

cs_proto_reader *cs_proto_reader_new(uint32_t max_body)
{
	cs_proto_reader *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->max_body = max_body;
	r->limit = (size_t)CS_PROTO_HDR + max_body + CS_PROTO_READER_SLACK;
	return r;
}

void cs_proto_reader_free(cs_proto_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r);
}

static int reader_fail(cs_proto_reader *r, int code, const char *msg)
{
	r->err = code;
	snprintf(r->errstr, sizeof r->errstr, "%s", msg);
	return code;
}

int cs_proto_reader_feed(cs_proto_reader *r, const void *data, size_t len)
{
	if (r->err)
		return r->err;
	/* Earlier frames were handed out and are now invalid: compact. */
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (len > r->limit - r->len)
		return reader_fail(r, -CS_ERR_TOO_LARGE, "reader buffer limit exceeded");
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len)
			cap *= 2;
		if (cap > r->limit)
			cap = r->limit;
		uint8_t *nb = realloc(r->buf, cap);
		if (nb == NULL)
			return reader_fail(r, -CS_ERR_INTERNAL, "out of memory");
		r->buf = nb;
		r->cap = cap;
	}
	if (len > 0)
		memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

int cs_proto_reader_next(cs_proto_reader *r, cs_frame *out)
{
	if (r->err)
		return r->err;
	size_t avail = r->len - r->pos;
	if (avail < CS_PROTO_HDR)
		return 0;
	cs_frame f;
	if (cs_proto_parse_header(r->buf + r->pos, r->max_body, &f) != 0) {
		char msg[96];
		if (f.version != CS_PROTO_VERSION)
			snprintf(msg, sizeof msg, "unsupported protocol version %u", f.version);
		else if (f.flags != 0)
			snprintf(msg, sizeof msg, "reserved flags set (0x%04x)", f.flags);
		else
			snprintf(msg, sizeof msg, "frame body of %u bytes exceeds the limit of %u",
			        f.body_len, r->max_body);
		return reader_fail(r, -CS_ERR_PROTOCOL, msg);
	}
	if (avail - CS_PROTO_HDR < f.body_len)
		return 0;
	f.body = r->buf + r->pos + CS_PROTO_HDR;
	r->pos += CS_PROTO_HDR + (size_t)f.body_len;
	*out = f;
	return 1;
}

size_t cs_proto_reader_pending(const cs_proto_reader *r)
{
	return r->len - r->pos;
}

const char *cs_proto_reader_errstr(const cs_proto_reader *r)
{
	return r->errstr;
}
