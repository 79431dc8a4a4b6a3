/* test_rcluster.c - the pure part of Redis Cluster routing (cachesvc/base/rcluster_map.c):
 * key slots (against values from a real Redis 7 CLUSTER KEYSLOT), redirects, slot maps from
 * CLUSTER SHARDS and CLUSTER SLOTS replies (built as RESP text and parsed by hiredis). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "rcluster.h"

static uint16_t slot_of(const char *k)
{
	return cs_rc_keyslot(k, strlen(k));
}

static void test_crc16(void **state)
{
	(void)state;
	assert_int_equal(cs_rc_crc16("123456789", 9), 0x31C3);
	assert_int_equal(cs_rc_crc16("", 0), 0);
}

/* Expected values: `redis-cli cluster keyslot KEY` on Redis 7.0. */
static void test_keyslot(void **state)
{
	(void)state;
	assert_int_equal(slot_of("foo"), 12182);
	assert_int_equal(slot_of("bar"), 5061);
	assert_int_equal(slot_of("hello"), 866);
	assert_int_equal(slot_of("123456789"), 12739);
	assert_int_equal(slot_of("{user1000}.following"), 3443);
	assert_int_equal(slot_of("user1000"), 3443);
	assert_int_equal(slot_of("foo{}{bar}"), 8363);    /* empty tag: the whole key */
	assert_int_equal(slot_of("foo{{bar}}zap"), 4015); /* tag "{bar" */
	assert_int_equal(slot_of("{bar"), 4015);
	assert_int_equal(slot_of("foo{bar}{zap}"), 5061); /* first tag only */
	assert_int_equal(slot_of(""), 0);
	assert_int_equal(slot_of("{"), 4092);
	assert_int_equal(slot_of("a{b"), 13340); /* no '}': the whole key */
	assert_int_equal(slot_of("}{x}"), 16287);
	/* bytes after a NUL count (binary keys) */
	assert_int_not_equal(cs_rc_keyslot("a\0b", 3), cs_rc_keyslot("a", 1));
}

static void test_redirect(void **state)
{
	(void)state;
	cs_rc_redirect r;
#define RD(s) cs_rc_parse_redirect(s, strlen(s), &r)
	assert_int_equal(RD("MOVED 3999 127.0.0.1:6381"), 0);
	assert_false(r.ask);
	assert_int_equal(r.slot, 3999);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 6381);
	assert_int_equal(RD("ASK 16383 redis-2.example:7000"), 0);
	assert_true(r.ask);
	assert_int_equal(r.slot, 16383);
	assert_string_equal(r.host, "redis-2.example");
	assert_int_equal(r.port, 7000);
	assert_int_equal(RD("MOVED 0 ::1:6380"), 0); /* IPv6 as Redis writes it */
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 6380);
	assert_int_equal(RD("ASK 12 [fe80::1:2]:6390"), 0);
	assert_string_equal(r.host, "fe80::1:2");
	assert_int_equal(r.port, 6390);
	assert_int_equal(RD("MOVED 3999 :6381"), 0); /* empty host: the node asked */
	assert_string_equal(r.host, "");
	assert_int_equal(r.port, 6381);
	/* not redirects, or malformed */
	assert_int_equal(RD("ERR unknown command"), -1);
	assert_int_equal(RD("TRYAGAIN Multiple keys request during rehashing of slot"), -1);
	assert_int_equal(RD("MOVED"), -1);
	assert_int_equal(RD("MOVED 16384 h:1"), -1);
	assert_int_equal(RD("MOVED x h:1"), -1);
	assert_int_equal(RD("MOVED 1 h:0"), -1);
	assert_int_equal(RD("MOVED 1 h:70000"), -1);
	assert_int_equal(RD("MOVED 1 h"), -1);
	assert_int_equal(RD("MOVED 1 h:12x"), -1);
	assert_int_equal(RD("MOVED 1 [::1:6379"), -1);
	assert_int_equal(RD("MOVEDX 1 h:1"), -1);
	assert_int_equal(RD("ASK  1 h:1"), -1);
	assert_int_equal(RD("MOVED 1234567 h:1"), -1);
#undef RD
	cs_rc_endpoint e;
	assert_int_equal(cs_rc_parse_endpoint("127.0.0.1:7001", 14, &e), 0);
	assert_string_equal(e.host, "127.0.0.1");
	assert_int_equal(e.port, 7001);
	assert_int_equal(cs_rc_parse_endpoint("[::1]:7001", 10, &e), 0);
	assert_string_equal(e.host, "::1");
	assert_int_equal(cs_rc_parse_endpoint(":7001", 5, &e), -1); /* a seed needs a host */
	assert_int_equal(cs_rc_parse_endpoint("host", 4, &e), -1);
}

/* ---- RESP builder: replies as Redis sends them, parsed by hiredis ---- */

typedef struct resp {
	char buf[16384];
	size_t n;
} resp;

static void put(resp *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(b->buf + b->n, sizeof b->buf - b->n, fmt, ap);
	va_end(ap);
	assert_true(k > 0 && (size_t)k < sizeof b->buf - b->n);
	b->n += (size_t)k;
}
static void arr(resp *b, int n)
{
	put(b, "*%d\r\n", n);
}
static void str(resp *b, const char *s)
{
	put(b, "$%zu\r\n%s\r\n", strlen(s), s);
}
static void num(resp *b, long long v)
{
	put(b, ":%lld\r\n", v);
}
static void nil(resp *b)
{
	put(b, "$-1\r\n");
}

static redisReply *parse(const resp *b)
{
	redisReader *rd = redisReaderCreate();
	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, b->buf, b->n), REDIS_OK);
	void *rep = NULL;
	assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
	assert_non_null(rep);
	redisReaderFree(rd);
	return rep;
}

/* One node of a CLUSTER SHARDS reply (the field order of Redis 7.0). */
static void shard_node(resp *b, const char *ip, const char *endpoint, int port, const char *role,
        const char *health)
{
	arr(b, 14);
	str(b, "id");
	str(b, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
	str(b, "port");
	num(b, port);
	str(b, "ip");
	str(b, ip);
	str(b, "endpoint");
	str(b, endpoint);
	str(b, "role");
	str(b, role);
	str(b, "replication-offset");
	num(b, 72156);
	str(b, "health");
	str(b, health);
}

static void test_map_shards(void **state)
{
	(void)state;
	resp b = {.n = 0};
	arr(&b, 5);
	/* shard 1: 0-5460, the replica listed first */
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 2);
	num(&b, 0);
	num(&b, 5460);
	str(&b, "nodes");
	arr(&b, 2);
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30004, "replica", "online");
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30001, "master", "online");
	/* shard 2: two ranges, endpoint unknown ("?"): the ip */
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 4);
	num(&b, 5461);
	num(&b, 10000);
	num(&b, 10500);
	num(&b, 10922);
	str(&b, "nodes");
	arr(&b, 1);
	shard_node(&b, "10.0.0.2", "?", 30002, "master", "online");
	/* shard 3: neither endpoint nor ip: the node asked */
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 2);
	num(&b, 10923);
	num(&b, 16383);
	str(&b, "nodes");
	arr(&b, 1);
	shard_node(&b, "", "", 30003, "master", "online");
	/* shard 4: 10001-10499, its master failed, the replica not promoted yet */
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 2);
	num(&b, 10001);
	num(&b, 10499);
	str(&b, "nodes");
	arr(&b, 2);
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30005, "master", "failed");
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30006, "replica", "online");
	/* shard 5: no slots, its master failed as Redis 7.0 spells it ("fail") */
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 0);
	str(&b, "nodes");
	arr(&b, 1);
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30007, "master", "fail");
	redisReply *rep = parse(&b);
	static cs_rc_map m;
	char err[256];
	assert_int_equal(cs_rc_map_from_shards(rep, "seed.example", &m, err, sizeof err), 0);
	assert_int_equal(m.nnodes, 3);
	assert_string_equal(m.node[0].host, "127.0.0.1");
	assert_int_equal(m.node[0].port, 30001);
	assert_string_equal(m.node[1].host, "10.0.0.2");
	assert_int_equal(m.node[1].port, 30002);
	assert_string_equal(m.node[2].host, "seed.example");
	assert_int_equal(m.node[2].port, 30003);
	assert_int_equal(m.owner[0], 0);
	assert_int_equal(m.owner[5460], 0);
	assert_int_equal(m.owner[5461], 1);
	assert_int_equal(m.owner[10000], 1);
	assert_int_equal(m.owner[10001], -1);
	assert_int_equal(m.owner[10499], -1);
	assert_int_equal(m.owner[10500], 1);
	assert_int_equal(m.owner[10922], 1);
	assert_int_equal(m.owner[10923], 2);
	assert_int_equal(m.owner[16383], 2);
	assert_int_equal(cs_rc_map_covered(&m), CS_RC_SLOTS - 499);
	/* the failed master is listed as such (review V4) */
	assert_int_equal(m.nfailed, 2);
	assert_string_equal(m.failed[0].host, "127.0.0.1");
	assert_int_equal(m.failed[0].port, 30005);
	assert_int_equal(m.failed[1].port, 30007);
	/* a previous map where 30005 served 10001-10499: its slots are not kept, the other
	 * gap of this map (none here) would be */
	static cs_rc_map prev;
	prev = m;
	prev.nnodes = 4;
	prev.node[3] = m.failed[0];
	for (int s = 10001; s <= 10499; s++)
		prev.owner[s] = 3;
	prev.owner[0] = 0;
	m.owner[0] = -1; /* a gap the map leaves on a master not marked failed: kept */
	assert_int_equal(cs_rc_map_keep_owners(&m, &prev), 1);
	assert_int_equal(m.owner[0], 0);
	assert_int_equal(m.owner[10001], -1);
	assert_int_equal(m.owner[10499], -1);
	assert_int_equal(m.nnodes, 3); /* the failed master is not added back */
	/* the negative control: the same map without the failed list keeps 30005's slots */
	m.nfailed = 0;
	assert_int_equal(cs_rc_map_keep_owners(&m, &prev), 499);
	assert_int_equal(m.owner[10001], 3);
	freeReplyObject(rep);

	/* malformed: a range past the last slot, an odd slot list, not an array */
	b.n = 0;
	arr(&b, 1);
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 2);
	num(&b, 0);
	num(&b, 16384);
	str(&b, "nodes");
	arr(&b, 1);
	shard_node(&b, "127.0.0.1", "127.0.0.1", 30001, "master", "online");
	rep = parse(&b);
	assert_int_equal(cs_rc_map_from_shards(rep, "h", &m, err, sizeof err), -1);
	freeReplyObject(rep);
	b.n = 0;
	arr(&b, 1);
	arr(&b, 4);
	str(&b, "slots");
	arr(&b, 1);
	num(&b, 0);
	str(&b, "nodes");
	arr(&b, 0);
	rep = parse(&b);
	assert_int_equal(cs_rc_map_from_shards(rep, "h", &m, err, sizeof err), -1);
	freeReplyObject(rep);
	b.n = 0;
	put(&b, "-ERR unknown subcommand 'SHARDS'\r\n");
	rep = parse(&b);
	assert_int_equal(cs_rc_map_from_shards(rep, "h", &m, err, sizeof err), -1);
	freeReplyObject(rep);
}

static void test_map_slots(void **state)
{
	(void)state;
	resp b = {.n = 0};
	arr(&b, 3);
	arr(&b, 4); /* 0-5460: master, one replica */
	num(&b, 0);
	num(&b, 5460);
	arr(&b, 3);
	str(&b, "127.0.0.1");
	num(&b, 30001);
	str(&b, "09dbe9720cda62f7865eabc5fd8857c5d2678366");
	arr(&b, 3);
	str(&b, "127.0.0.1");
	num(&b, 30004);
	str(&b, "821d8ca00d7ccf931ed3ffc7e3db0599d2271abf");
	arr(&b, 3); /* 5461-10922: unknown endpoint (NULL): the node asked */
	num(&b, 5461);
	num(&b, 10922);
	arr(&b, 3);
	nil(&b);
	num(&b, 30002);
	str(&b, "c9d93d9f2c0c524ff34cc11838c2003d8c29e013");
	arr(&b, 3); /* 10923-16383 on ::1 */
	num(&b, 10923);
	num(&b, 16383);
	arr(&b, 3);
	str(&b, "::1");
	num(&b, 30003);
	str(&b, "044ec91f325b7595e76dbcb18cc688b6a5b434a1");
	redisReply *rep = parse(&b);
	static cs_rc_map m;
	char err[256];
	assert_int_equal(cs_rc_map_from_slots(rep, "asked", &m, err, sizeof err), 0);
	assert_int_equal(m.nnodes, 3);
	assert_int_equal(m.node[0].port, 30001);
	assert_string_equal(m.node[1].host, "asked");
	assert_string_equal(m.node[2].host, "::1");
	assert_int_equal(m.owner[5460], 0);
	assert_int_equal(m.owner[5461], 1);
	assert_int_equal(m.owner[16383], 2);
	assert_int_equal(cs_rc_map_covered(&m), CS_RC_SLOTS);
	freeReplyObject(rep);

	b.n = 0;
	arr(&b, 1);
	arr(&b, 2); /* no node */
	num(&b, 0);
	num(&b, 10);
	rep = parse(&b);
	assert_int_equal(cs_rc_map_from_slots(rep, "asked", &m, err, sizeof err), -1);
	freeReplyObject(rep);
}

static void set_node(cs_rc_map *m, int i, const char *host, int port)
{
	snprintf(m->node[i].host, sizeof m->node[i].host, "%s", host);
	m->node[i].port = port;
}

/* A partial view keeps the owners it does not replace (review R1). */
static void test_keep_owners(void **state)
{
	(void)state;
	static cs_rc_map prev, m;
	prev.nnodes = 3;
	set_node(&prev, 0, "127.0.0.1", 30001);
	set_node(&prev, 1, "127.0.0.1", 30002);
	set_node(&prev, 2, "127.0.0.1", 30003);
	for (int s = 0; s < CS_RC_SLOTS; s++)
		prev.owner[s] = (int16_t)(s < 5461 ? 0 : s < 10923 ? 1 : 2);
	/* a restarted node's view: itself (30002) and a new owner of 0-99 (30009), the rest of
	 * its peers unknown */
	m.nnodes = 2;
	set_node(&m, 0, "127.0.0.1", 30009);
	set_node(&m, 1, "127.0.0.1", 30002);
	for (int s = 0; s < CS_RC_SLOTS; s++)
		m.owner[s] = (int16_t)(s < 100 ? 0 : s >= 5461 && s < 10923 ? 1 : -1);
	assert_int_equal(cs_rc_map_keep_owners(&m, &prev), (5461 - 100) + (CS_RC_SLOTS - 10923));
	assert_int_equal(cs_rc_map_covered(&m), CS_RC_SLOTS);
	assert_int_equal(m.nnodes, 4);
	assert_int_equal(m.owner[0], 0); /* reassigned by the new map: not taken back */
	assert_int_equal(m.owner[99], 0);
	assert_int_equal(m.owner[100], 2); /* 30001 appended for the slots it still serves */
	assert_int_equal(m.node[2].port, 30001);
	assert_int_equal(m.owner[5461], 1);
	assert_int_equal(m.owner[16383], 3);
	assert_int_equal(m.node[3].port, 30003);
	/* a whole map takes nothing from prev */
	assert_int_equal(cs_rc_map_keep_owners(&m, &prev), 0);
	/* a slot nobody owned stays unowned */
	prev.owner[7] = -1;
	m.owner[7] = -1;
	assert_int_equal(cs_rc_map_keep_owners(&m, &prev), 0);
	assert_int_equal(m.owner[7], -1);
}

/* CLUSTER NODES: lines, flags and the open slots of a line (review V9b). */
static void test_nodes_open(void **state)
{
	(void)state;
	const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	const char *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	char text[2048];
	snprintf(text, sizeof text,
	        "%s 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-100 "
	        "[5->-%s] [77-<-%s] [16384->-%s] [9->-short] 200\r\n"
	        "%s 127.0.0.1:30002@40002 master,fail - 0 0 2 connected\n"
	        "garbage line\n"
	        "cccccccccccccccccccccccccccccccccccccccc 127.0.0.1:30003@40003 slave,fail? %s 0 0 "
	        "3 connected",
	        a, b, b, b, b, a);
	size_t pos = 0, len = strlen(text);
	cs_rc_node_line l;
	assert_int_equal(cs_rc_nodes_next(text, len, &pos, &l), 1);
	assert_string_equal(l.id, a);
	assert_true(l.myself);
	assert_false(l.replica);
	assert_false(l.failed);
	assert_string_equal(l.master, ""); /* "-" */
	cs_rc_open_slot o[4];
	assert_int_equal(cs_rc_nodes_open_slots(&l, o, 4), 2);
	assert_int_equal(o[0].slot, 5);
	assert_false(o[0].importing);
	assert_string_equal(o[0].peer, b);
	assert_int_equal(o[1].slot, 77);
	assert_true(o[1].importing);
	assert_int_equal(cs_rc_nodes_open_slots(&l, o, 1), 2); /* counted past max */
	assert_int_equal(cs_rc_nodes_next(text, len, &pos, &l), 1);
	assert_string_equal(l.id, b);
	assert_false(l.myself);
	assert_true(l.failed);
	assert_int_equal(cs_rc_nodes_open_slots(&l, o, 4), 0);
	assert_int_equal(cs_rc_nodes_next(text, len, &pos, &l), 1); /* the garbage skipped */
	assert_true(l.replica);
	assert_string_equal(l.master, a); /* its master, for review R18-1b's drain */
	assert_false(l.failed); /* "fail?" is a suspicion */
	assert_int_equal(cs_rc_nodes_next(text, len, &pos, &l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crc16),
	        cmocka_unit_test(test_keyslot),
	        cmocka_unit_test(test_redirect),
	        cmocka_unit_test(test_map_shards),
	        cmocka_unit_test(test_map_slots),
	        cmocka_unit_test(test_keep_owners),
	        cmocka_unit_test(test_nodes_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
