/* buf.c - the capped, growable output buffer that frames are encoded into. */
#include "cs_proto.h"

#include <stdlib.h>
#include <string.h>

void cs_buf_init(cs_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : (size_t)CS_PROTO_MAX_FRAME + CS_PROTO_HDR;
	b->failed = false;
}

int cs_buf_reserve(cs_buf *b, size_t n)
{
	if (b->failed)
		return -CS_ERR_TOO_LARGE;
	if (n > b->max - b->len) {
		b->failed = true;
		return -CS_ERR_TOO_LARGE;
	}
	size_t need = b->len + n;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max)
		cap = b->max;
	uint8_t *d = realloc(b->data, cap);
	if (d == NULL) {
		b->failed = true;
		return -CS_ERR_INTERNAL;
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

int cs_buf_append(cs_buf *b, const void *p, size_t n)
{
	int rc = cs_buf_reserve(b, n);
	if (rc != 0)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void cs_buf_truncate(cs_buf *b, size_t len)
{
	if (len < b->len)
		b->len = len;
	b->failed = false;
}

void cs_buf_reset(cs_buf *b)
{
	b->len = 0;
	b->failed = false;
}

void cs_buf_free(cs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

int cs_buf_msgpack_write(void *data, const char *buf, size_t len)
{
	return cs_buf_append(data, buf, len) == 0 ? 0 : -1;
}
