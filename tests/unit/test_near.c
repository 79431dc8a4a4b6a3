/* test_near.c - the near cache's table (near.h): the race rule, sessions, the byte bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "near.h"
#include "textutil.h"

static uint64_t h(const char *k)
{
	return cs_fnv1a64(CS_FNV1A64_INIT, k, strlen(k));
}

/* watch + settle stores; get returns the value; invalidate drops it. */
static void fill(cs_near *n, const char *k, const char *v)
{
	cs_near_ticket t;
	assert_true(cs_near_watch(n, k, strlen(k), h(k), &t));
	cs_near_settle(n, k, strlen(k), h(k), &t, (const uint8_t *)v, strlen(v), false);
}

static const char *get(cs_near *n, const char *k, char *buf)
{
	size_t len = 0;
	const uint8_t *v = cs_near_get(n, k, strlen(k), h(k), &len);
	if (v == NULL)
		return NULL;
	memcpy(buf, v, len);
	buf[len] = '\0';
	return buf;
}

static void test_off_until_enabled(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1 << 20);
	cs_near_ticket t;
	assert_false(cs_near_on(n));
	assert_false(cs_near_watch(n, "k", 1, h("k"), &t));
	cs_near_enable(n);
	assert_true(cs_near_on(n));
	char buf[64];
	fill(n, "k", "v1");
	assert_string_equal(get(n, "k", buf), "v1");
	assert_true(cs_near_invalidate(n, "k", 1));
	assert_null(get(n, "k", buf));
	assert_false(cs_near_invalidate(n, "k", 1)); /* nothing held any more */
	assert_int_equal(cs_near_get_stats(n)->entries, 0);
	assert_int_equal(cs_near_get_stats(n)->bytes, 0);
	cs_near_free(n);
}

/* The race (near.h rule 2): an invalidation processed between a GET's send and its reply
 * voids that reply; a GET sent after the invalidation stores normally. */
static void test_invalidation_overtakes_reply(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1 << 20);
	cs_near_enable(n);
	cs_near_ticket t1, t2;
	char buf[64];
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t1));
	cs_near_invalidate(n, "k", 1);
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t2)); /* sent after the change */
	cs_near_settle(n, "k", 1, h("k"), &t1, (const uint8_t *)"old", 3, false);
	assert_null(get(n, "k", buf));
	assert_int_equal(cs_near_get_stats(n)->discarded, 1);
	cs_near_settle(n, "k", 1, h("k"), &t2, (const uint8_t *)"new", 3, false);
	assert_string_equal(get(n, "k", buf), "new");
	cs_near_free(n);
}

/* Two GETs in flight, the invalidation between the first reply and the second: the first
 * is stored and dropped, the second (sent before the change) is not stored. */
static void test_two_in_flight(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1 << 20);
	cs_near_enable(n);
	cs_near_ticket t1, t2;
	char buf[64];
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t1));
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t2));
	cs_near_settle(n, "k", 1, h("k"), &t1, (const uint8_t *)"a", 1, false);
	assert_string_equal(get(n, "k", buf), "a");
	assert_true(cs_near_invalidate(n, "k", 1));
	cs_near_settle(n, "k", 1, h("k"), &t2, (const uint8_t *)"a", 1, false);
	assert_null(get(n, "k", buf));
	cs_near_free(n);
}

/* Rule 3: a flush (or disable) voids every GET in flight; off stores nothing. */
static void test_sessions(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1 << 20);
	cs_near_enable(n);
	cs_near_ticket t;
	char buf[64];
	fill(n, "a", "1");
	assert_true(cs_near_watch(n, "b", 1, h("b"), &t));
	cs_near_flush(n);
	assert_true(cs_near_on(n));
	assert_null(get(n, "a", buf));
	cs_near_settle(n, "b", 1, h("b"), &t, (const uint8_t *)"2", 1, false);
	assert_null(get(n, "b", buf));

	assert_true(cs_near_watch(n, "b", 1, h("b"), &t));
	cs_near_disable(n);
	cs_near_enable(n); /* back on before the reply: still another session */
	cs_near_settle(n, "b", 1, h("b"), &t, (const uint8_t *)"2", 1, false);
	assert_null(get(n, "b", buf));
	assert_int_equal(cs_near_get_stats(n)->flushes, 2);
	cs_near_free(n);
}

/* Redis answering nil drops what is held (no value any more); no answer (an error, a send
 * that failed) keeps it: it may be being served. */
static void test_settle_null_drops(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1 << 20);
	cs_near_enable(n);
	char buf[64];
	cs_near_ticket t;
	fill(n, "k", "v");
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t));
	cs_near_settle(n, "k", 1, h("k"), &t, NULL, 0, false);
	assert_string_equal(get(n, "k", buf), "v");
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t));
	cs_near_settle(n, "k", 1, h("k"), &t, NULL, 0, true);
	assert_null(get(n, "k", buf));
	assert_int_equal(cs_near_get_stats(n)->entries, 0);
	cs_near_free(n);
}

/* The byte bound holds after every store; the least recently used go first. */
static void test_bound_lru(void **state)
{
	(void)state;
	const size_t max = 8192;
	cs_near *n = cs_near_new(max);
	cs_near_enable(n);
	char k[32], v[200], buf[256];
	memset(v, 'x', sizeof v - 1);
	v[sizeof v - 1] = '\0';
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof k, "key:%d", i);
		fill(n, k, v);
		assert_true(cs_near_get_stats(n)->bytes <= max);
		if (i >= 1)
			assert_non_null(get(n, "key:0", buf)); /* key:0 stays recently used */
	}
	assert_true(cs_near_get_stats(n)->evictions > 400);
	assert_non_null(get(n, "key:0", buf));
	assert_non_null(get(n, "key:499", buf));
	assert_null(get(n, "key:1", buf));
	/* a value larger than the whole bound is not stored */
	char big[9000];
	memset(big, 'y', sizeof big);
	cs_near_ticket t;
	assert_true(cs_near_watch(n, "big", 3, h("big"), &t));
	cs_near_settle(n, "big", 3, h("big"), &t, (const uint8_t *)big, sizeof big, false);
	assert_null(get(n, "big", buf));
	assert_true(cs_near_get_stats(n)->bytes <= max);
	/* shrinking the bound evicts at once */
	cs_near_set_max(n, 1024);
	assert_true(cs_near_get_stats(n)->bytes <= 1024);
	cs_near_free(n);
}

/* Many keys: the table grows and every key stays reachable. */
static void test_many_keys(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(64u << 20);
	cs_near_enable(n);
	char k[32], buf[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "k%d", i);
		fill(n, k, k);
	}
	for (int i = 0; i < 20000; i += 997) {
		snprintf(k, sizeof k, "k%d", i);
		assert_string_equal(get(n, k, buf), k);
	}
	assert_int_equal(cs_near_get_stats(n)->entries, 20000);
	cs_near_free(n);
}

/* Eviction and invalidation while a GET is in flight keep the node (and its stamp): the
 * reply of a GET sent before an invalidation is still refused after an eviction. */
static void test_pending_survives(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(600);
	cs_near_enable(n);
	char buf[256], v[200];
	memset(v, 'x', sizeof v - 1);
	v[sizeof v - 1] = '\0';
	fill(n, "k", v);
	cs_near_ticket t;
	assert_true(cs_near_watch(n, "k", 1, h("k"), &t));
	assert_true(cs_near_invalidate(n, "k", 1));
	fill(n, "a", v); /* pushes the bound */
	fill(n, "b", v);
	fill(n, "c", v);
	cs_near_settle(n, "k", 1, h("k"), &t, (const uint8_t *)"old", 3, false);
	assert_null(get(n, "k", buf));
	assert_true(cs_near_get_stats(n)->bytes <= 600);
	cs_near_free(n);
}

/* A flush empties the table at once and leaves the freeing to cs_near_reclaim, a budget at a
 * time (a flush of a large near cache must not hold the loop): nothing flushed is visible,
 * the table works meanwhile, a second flush queues behind the first, watches of the old
 * session settle without touching the flushed nodes, and ASan sees every node freed once. */
static void test_flush_reclaims_later(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(64u << 20);
	cs_near_enable(n);
	char k[32], buf[64];
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof k, "k%d", i);
		fill(n, k, k);
	}
	cs_near_ticket t;
	assert_true(cs_near_watch(n, "k7", 2, h("k7"), &t)); /* in flight across the flush */
	cs_near_flush(n);
	assert_int_equal(cs_near_get_stats(n)->entries, 0);
	assert_int_equal(cs_near_get_stats(n)->bytes, 0);
	assert_int_equal(cs_near_get_stats(n)->garbage, 10000);
	assert_null(get(n, "k1", buf));
	assert_null(get(n, "k9999", buf));
	/* the old session's reply is not stored and touches nothing flushed */
	cs_near_settle(n, "k7", 2, h("k7"), &t, (const uint8_t *)"old", 3, false);
	assert_null(get(n, "k7", buf));
	/* the table keeps working while the old one is freed */
	fill(n, "new", "v");
	assert_string_equal(get(n, "new", buf), "v");
	assert_true(cs_near_reclaim(n, 1000));
	/* at most the budget freed (empty buckets take some of it), and some */
	assert_true(cs_near_get_stats(n)->garbage >= 9000);
	assert_true(cs_near_get_stats(n)->garbage < 10000);
	/* a second flush queues its table behind */
	cs_near_flush(n);
	assert_null(get(n, "new", buf));
	uint64_t g = cs_near_get_stats(n)->garbage;
	int passes = 0;
	while (cs_near_reclaim(n, 1000)) {
		assert_true(cs_near_get_stats(n)->garbage <= g);
		g = cs_near_get_stats(n)->garbage;
		passes++;
	}
	assert_int_equal(cs_near_get_stats(n)->garbage, 0);
	assert_true(passes >= 9); /* a budget at a time, not all at once */
	assert_false(cs_near_reclaim(n, 1000));
	/* a flush with garbage still queued, then free: everything freed (ASan) */
	fill(n, "x", "y");
	cs_near_flush(n);
	assert_int_equal(cs_near_get_stats(n)->garbage, 1);
	cs_near_free(n);
}

/* A new byte bound (a reload) evicts down to it at once. */
static void test_set_max(void **state)
{
	(void)state;
	cs_near *n = cs_near_new(1u << 20);
	cs_near_enable(n);
	char k[32], v[200];
	memset(v, 'x', sizeof v - 1);
	v[sizeof v - 1] = '\0';
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof k, "k%d", i);
		fill(n, k, v);
	}
	assert_int_equal(cs_near_get_stats(n)->entries, 100);
	cs_near_set_max(n, 4096);
	assert_true(cs_near_get_stats(n)->bytes <= 4096);
	assert_true(cs_near_get_stats(n)->entries < 100);
	assert_true(cs_near_get_stats(n)->evictions > 0);
	char buf[256];
	assert_non_null(get(n, "k99", buf)); /* the most recent stay */
	cs_near_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_until_enabled),
		cmocka_unit_test(test_invalidation_overtakes_reply),
		cmocka_unit_test(test_two_in_flight),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_settle_null_drops),
		cmocka_unit_test(test_bound_lru),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_pending_survives),
		cmocka_unit_test(test_flush_reclaims_later),
		cmocka_unit_test(test_set_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
