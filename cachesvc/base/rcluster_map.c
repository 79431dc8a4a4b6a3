/* rcluster_map.c - the pure part of Redis Cluster routing (rcluster.h): hash slots, slot
 * maps from CLUSTER SHARDS / CLUSTER SLOTS replies, MOVED / ASK redirects. No I/O. */
#include "rcluster.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* ==== Pure part ======================================================================== */

/* CRC16-XMODEM, four bits at a time (a 16-entry table: small, no initialisation). */
static const uint16_t crc16_nibble[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6,
        0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef};

uint16_t cs_rc_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned b = (unsigned char)buf[i];
		crc = (uint16_t)((crc << 4) ^ crc16_nibble[(crc >> 12) ^ (b >> 4)]);
		crc = (uint16_t)((crc << 4) ^ crc16_nibble[(crc >> 12) ^ (b & 0x0f)]);
	}
	return crc;
}

uint16_t cs_rc_keyslot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open != NULL) {
		size_t start = (size_t)(open - key) + 1;
		const char *close = memchr(key + start, '}', len - start);
		if (close != NULL && close > key + start)
			return cs_rc_crc16(key + start, (size_t)(close - key) - start) &
			       (CS_RC_SLOTS - 1);
	}
	return cs_rc_crc16(key, len) & (CS_RC_SLOTS - 1);
}

static bool parse_port(const char *s, size_t len, int *port)
{
	if (len == 0 || len > 5)
		return false;
	int v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

/* host:port with an empty host allowed (redirects). */
static int parse_hostport(const char *s, size_t len, cs_rc_endpoint *out)
{
	const char *hs = s, *he, *ps;
	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (rb == NULL || (size_t)(rb - s) + 1 >= len || rb[1] != ':')
			return -1;
		hs = s + 1;
		he = rb;
		ps = rb + 2;
	} else {
		const char *colon = NULL;
		for (size_t i = len; i > 0; i--)
			if (s[i - 1] == ':') {
				colon = s + i - 1;
				break;
			}
		if (colon == NULL)
			return -1;
		he = colon;
		ps = colon + 1;
	}
	size_t hl = (size_t)(he - hs);
	if (hl >= sizeof out->host || memchr(hs, ' ', hl) != NULL)
		return -1;
	if (!parse_port(ps, (size_t)(s + len - ps), &out->port))
		return -1;
	memcpy(out->host, hs, hl);
	out->host[hl] = '\0';
	return 0;
}

int cs_rc_parse_endpoint(const char *s, size_t len, cs_rc_endpoint *out)
{
	if (parse_hostport(s, len, out) != 0 || out->host[0] == '\0')
		return -1;
	return 0;
}

int cs_rc_parse_redirect(const char *str, size_t len, cs_rc_redirect *out)
{
	size_t skip;
	if (len > 6 && memcmp(str, "MOVED ", 6) == 0) {
		out->ask = false;
		skip = 6;
	} else if (len > 4 && memcmp(str, "ASK ", 4) == 0) {
		out->ask = true;
		skip = 4;
	} else {
		return -1;
	}
	const char *p = str + skip, *end = str + len;
	unsigned slot = 0;
	int digits = 0;
	while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
		slot = slot * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || slot >= CS_RC_SLOTS || p >= end || *p != ' ')
		return -1;
	p++;
	cs_rc_endpoint ep;
	if (parse_hostport(p, (size_t)(end - p), &ep) != 0)
		return -1;
	out->slot = (uint16_t)slot;
	memcpy(out->host, ep.host, sizeof out->host);
	out->port = ep.port;
	return 0;
}

/* ---- Slot maps ---- */

static void map_init(cs_rc_map *m)
{
	m->nnodes = 0;
	m->nfailed = 0;
	for (int s = 0; s < CS_RC_SLOTS; s++)
		m->owner[s] = -1;
}

/* The index of host:port in m, added when new; -1 when m is full. */
static int map_node(cs_rc_map *m, const char *host, size_t hl, int port)
{
	for (int i = 0; i < m->nnodes; i++)
		if (m->node[i].port == port && strlen(m->node[i].host) == hl &&
		        memcmp(m->node[i].host, host, hl) == 0)
			return i;
	if (m->nnodes == CS_RC_MAX_NODES || hl >= CS_RC_HOST_MAX)
		return -1;
	cs_rc_endpoint *e = &m->node[m->nnodes];
	memcpy(e->host, host, hl);
	e->host[hl] = '\0';
	e->port = port;
	return m->nnodes++;
}

static bool is_text(const redisReply *r)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool text_is(const redisReply *r, const char *s)
{
	return is_text(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* The value of `key` in a flat key/value array (RESP2 maps), or NULL. */
static const redisReply *kv_get(const redisReply *a, const char *key)
{
	if (a == NULL || a->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < a->elements; i += 2)
		if (text_is(a->element[i], key))
			return a->element[i + 1];
	return NULL;
}

static bool reply_int(const redisReply *r, long long *v)
{
	if (r == NULL)
		return false;
	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return true;
	}
	if (!is_text(r) || r->len == 0 || r->len > 18)
		return false;
	long long x = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9')
			return false;
		x = x * 10 + (r->str[i] - '0');
	}
	*v = x;
	return true;
}

/* A usable address: not empty, not "?" (unknown endpoint). */
static bool usable_host(const redisReply *r)
{
	return is_text(r) && r->len > 0 && !(r->len == 1 && r->str[0] == '?');
}

static int assign_range(cs_rc_map *m, long long lo, long long hi, int idx, char *err, size_t errlen)
{
	if (lo < 0 || hi >= CS_RC_SLOTS || lo > hi) {
		snprintf(err, errlen, "slot range %lld-%lld out of bounds", lo, hi);
		return -1;
	}
	for (long long s = lo; s <= hi; s++)
		m->owner[s] = (int16_t)idx;
	return 0;
}

/* A master the cluster marked failed (health "fail" on Redis 7.0, "failed" as the docs and
 * later versions spell it), by the address its slots' owner would have in a map
 * (endpoint, else ip, else the node asked); one without a usable port is left out. */
static void note_failed(cs_rc_map *m, const redisReply *nd, const char *asked_host)
{
	long long port;
	if (m->nfailed == CS_RC_MAX_NODES || !reply_int(kv_get(nd, "port"), &port) || port < 1 ||
	        port > 65535)
		return;
	const redisReply *h = kv_get(nd, "endpoint");
	if (!usable_host(h))
		h = kv_get(nd, "ip");
	const char *host = usable_host(h) ? h->str : asked_host;
	size_t hl = usable_host(h) ? h->len : strlen(asked_host);
	if (hl >= CS_RC_HOST_MAX)
		return;
	cs_rc_endpoint *ep = &m->failed[m->nfailed++];
	memcpy(ep->host, host, hl);
	ep->host[hl] = '\0';
	ep->port = (int)port;
}

static bool listed(const cs_rc_endpoint *list, int n, const cs_rc_endpoint *ep)
{
	for (int i = 0; i < n; i++)
		if (list[i].port == ep->port && strcmp(list[i].host, ep->host) == 0)
			return true;
	return false;
}

int cs_rc_map_from_shards(
        const redisReply *rep, const char *asked_host, cs_rc_map *m, char *err, size_t errlen)
{
	map_init(m);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "CLUSTER SHARDS: not an array");
		return -1;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *shard = rep->element[i];
		const redisReply *slots = kv_get(shard, "slots");
		const redisReply *nodes = kv_get(shard, "nodes");
		if (slots == NULL || nodes == NULL || slots->type != REDIS_REPLY_ARRAY ||
		        nodes->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0) {
			snprintf(err, errlen, "CLUSTER SHARDS: shard %zu malformed", i);
			return -1;
		}
		int idx = -1;
		for (size_t j = 0; j < nodes->elements && idx < 0; j++) {
			const redisReply *nd = nodes->element[j];
			if (!text_is(kv_get(nd, "role"), "master"))
				continue;
			const redisReply *health = kv_get(nd, "health");
			if (text_is(health, "fail") || text_is(health, "failed")) {
				note_failed(m, nd, asked_host);
				continue;
			}
			if (!text_is(kv_get(nd, "health"), "online"))
				continue;
			long long port;
			if (!reply_int(kv_get(nd, "port"), &port) || port < 1 || port > 65535) {
				snprintf(err, errlen,
				        "CLUSTER SHARDS: shard %zu: master without a port", i);
				return -1;
			}
			const redisReply *h = kv_get(nd, "endpoint");
			if (!usable_host(h))
				h = kv_get(nd, "ip");
			const char *host = usable_host(h) ? h->str : asked_host;
			size_t hl = usable_host(h) ? h->len : strlen(asked_host);
			idx = map_node(m, host, hl, (int)port);
			if (idx < 0) {
				snprintf(err, errlen, "CLUSTER SHARDS: more than %d masters",
				        CS_RC_MAX_NODES);
				return -1;
			}
		}
		if (idx < 0)
			continue; /* no online master: its slots stay unserved */
		for (size_t k = 0; k < slots->elements; k += 2) {
			long long lo, hi;
			if (!reply_int(slots->element[k], &lo) ||
			        !reply_int(slots->element[k + 1], &hi)) {
				snprintf(err, errlen, "CLUSTER SHARDS: shard %zu: bad slot range",
				        i);
				return -1;
			}
			if (assign_range(m, lo, hi, idx, err, errlen) != 0)
				return -1;
		}
	}
	return 0;
}

int cs_rc_map_from_slots(
        const redisReply *rep, const char *asked_host, cs_rc_map *m, char *err, size_t errlen)
{
	map_init(m);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "CLUSTER SLOTS: not an array");
		return -1;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		long long lo, hi, port;
		if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		        !reply_int(e->element[0], &lo) || !reply_int(e->element[1], &hi) ||
		        e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
		        !reply_int(e->element[2]->element[1], &port) || port < 1 || port > 65535) {
			snprintf(err, errlen, "CLUSTER SLOTS: entry %zu malformed", i);
			return -1;
		}
		const redisReply *h = e->element[2]->element[0];
		bool own = usable_host(h);
		int idx = map_node(
		        m, own ? h->str : asked_host, own ? h->len : strlen(asked_host), (int)port);
		if (idx < 0) {
			snprintf(err, errlen, "CLUSTER SLOTS: more than %d masters",
			        CS_RC_MAX_NODES);
			return -1;
		}
		if (assign_range(m, lo, hi, idx, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int cs_rc_map_covered(const cs_rc_map *m)
{
	int n = 0;
	for (int s = 0; s < CS_RC_SLOTS; s++)
		n += m->owner[s] >= 0;
	return n;
}

int cs_rc_map_keep_owners(cs_rc_map *m, const cs_rc_map *prev)
{
	int16_t idx[CS_RC_MAX_NODES]; /* prev's node index -> m's, -1: not looked up yet */
	int kept = 0;
	for (int i = 0; i < prev->nnodes; i++)
		idx[i] = -1;
	for (int s = 0; s < CS_RC_SLOTS; s++) {
		int16_t o = prev->owner[s];
		if (m->owner[s] >= 0 || o < 0 || o >= prev->nnodes)
			continue;
		if (idx[o] == -2)
			continue; /* failed: its slots stay unowned */
		if (idx[o] < 0) {
			const cs_rc_endpoint *ep = &prev->node[o];
			if (listed(m->failed, m->nfailed, ep)) {
				idx[o] = -2;
				continue;
			}
			int j;
			for (j = 0; j < m->nnodes; j++)
				if (m->node[j].port == ep->port &&
				        strcmp(m->node[j].host, ep->host) == 0)
					break;
			if (j == m->nnodes) {
				if (m->nnodes == CS_RC_MAX_NODES)
					continue; /* no room: the slot stays unowned */
				m->node[m->nnodes++] = *ep;
			}
			idx[o] = (int16_t)j;
		}
		m->owner[s] = idx[o];
		kept++;
	}
	return kept;
}

/* ---- CLUSTER NODES ---- */

/* The next space-separated field of [*p, end): its start and length; false when none. */
static bool next_field(const char **p, const char *end, const char **f, size_t *fl)
{
	while (*p < end && **p == ' ')
		(*p)++;
	if (*p >= end)
		return false;
	*f = *p;
	while (*p < end && **p != ' ')
		(*p)++;
	*fl = (size_t)(*p - *f);
	return true;
}

/* Does the comma-separated flag list [f, f + fl) hold flag? */
static bool has_flag(const char *f, size_t fl, const char *flag)
{
	size_t n = strlen(flag);
	for (const char *p = f, *end = f + fl; p < end;) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
		if (l == n && memcmp(p, flag, n) == 0)
			return true;
		p += l + 1;
	}
	return false;
}

int cs_rc_nodes_next(const char *text, size_t len, size_t *pos, cs_rc_node_line *out)
{
	while (*pos < len) {
		const char *line = text + *pos, *nl = memchr(line, '\n', len - *pos);
		const char *end = nl ? nl : text + len;
		*pos = (size_t)(end - text) + (nl != NULL);
		if (end > line && end[-1] == '\r')
			end--;
		const char *p = line, *f[8];
		size_t fl[8];
		int n = 0;
		while (n < 8 && next_field(&p, end, &f[n], &fl[n]))
			n++;
		if (n < 8 || fl[0] != CS_RC_ID_LEN)
			continue;
		memcpy(out->id, f[0], CS_RC_ID_LEN);
		out->id[CS_RC_ID_LEN] = '\0';
		out->myself = has_flag(f[2], fl[2], "myself");
		out->replica = has_flag(f[2], fl[2], "slave") || has_flag(f[2], fl[2], "replica");
		out->failed = has_flag(f[2], fl[2], "fail");
		out->master[0] = '\0';
		if (fl[3] == CS_RC_ID_LEN) {
			memcpy(out->master, f[3], CS_RC_ID_LEN);
			out->master[CS_RC_ID_LEN] = '\0';
		}
		out->slots = p;
		out->slots_len = (size_t)(end - p);
		return 1;
	}
	return 0;
}

int cs_rc_nodes_open_slots(const cs_rc_node_line *l, cs_rc_open_slot *out, int max)
{
	const char *p = l->slots, *end = l->slots + l->slots_len, *f;
	size_t fl;
	int n = 0;
	while (next_field(&p, end, &f, &fl)) {
		/* "[" digits ("->-" | "-<-") 40 characters "]" */
		if (fl < 2 || f[0] != '[' || f[fl - 1] != ']')
			continue;
		const char *q = f + 1, *qe = f + fl - 1;
		unsigned slot = 0;
		int digits = 0;
		while (q < qe && *q >= '0' && *q <= '9' && digits < 6) {
			slot = slot * 10 + (unsigned)(*q - '0');
			q++;
			digits++;
		}
		if (digits == 0 || slot >= CS_RC_SLOTS || qe - q != 3 + CS_RC_ID_LEN)
			continue;
		bool imp = memcmp(q, "-<-", 3) == 0;
		if (!imp && memcmp(q, "->-", 3) != 0)
			continue;
		if (n < max) {
			out[n].slot = (uint16_t)slot;
			out[n].importing = imp;
			memcpy(out[n].peer, q + 3, CS_RC_ID_LEN);
			out[n].peer[CS_RC_ID_LEN] = '\0';
		}
		n++;
	}
	return n;
}
