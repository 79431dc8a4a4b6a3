/* test_inv_open.c - the pure parts of the open-slot watch (cachesvc/invalidator/inv_open_util.c,
 * CLUSTER.md section 7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <stdbool.h>

#include "inv_open_util.h"

/* review 22 R22-3: the hold bound's base, its doubling, its cap */
static void test_hold_bound(void **state)
{
	(void)state;
	/* the default: 60 s; 4 x node timeout above it; 10 status intervals above both */
	assert_int_equal(inv_open_hold_bound_ms(0, 0, 1000, 0), 60000);
	assert_int_equal(inv_open_hold_bound_ms(0, 15000, 1000, 0), 60000);
	assert_int_equal(inv_open_hold_bound_ms(0, 30000, 1000, 0), 120000);
	assert_int_equal(inv_open_hold_bound_ms(0, 15000, 10000, 0), 100000);
	/* a test hook sets the base (the node timeout is not used), still >= 10 intervals */
	assert_int_equal(inv_open_hold_bound_ms(10000, 30000, 1000, 0), 10000);
	assert_int_equal(inv_open_hold_bound_ms(5000, 0, 1000, 0), 10000);
	/* doubling, up to 16x */
	assert_int_equal(inv_open_hold_bound_ms(10000, 0, 1000, 1), 20000);
	assert_int_equal(inv_open_hold_bound_ms(10000, 0, 1000, 2), 40000);
	assert_int_equal(inv_open_hold_bound_ms(10000, 0, 1000, 4), 160000);
	assert_int_equal(inv_open_hold_bound_ms(10000, 0, 1000, 5), 160000);
	assert_int_equal(inv_open_hold_bound_ms(10000, 0, 1000, 1000), 160000);
	/* ... and up to 30 min */
	assert_int_equal(inv_open_hold_bound_ms(0, 0, 1000, 4), 960000);
	assert_int_equal(inv_open_hold_bound_ms(0, 60000, 1000, 3), 1800000);
	/* a base above 30 min is kept, not doubled */
	assert_int_equal(inv_open_hold_bound_ms(0, 3600000, 1000, 0), 14400000);
	assert_int_equal(inv_open_hold_bound_ms(0, 3600000, 1000, 4), 14400000);
	/* hostile values: clamped to a day, no overflow, never below 60 s */
	assert_int_equal(inv_open_hold_bound_ms(0, UINT64_MAX, UINT64_MAX, 4), 10ull * 86400000);
	assert_true(inv_open_hold_bound_ms(UINT64_MAX, 0, 0, 4) >= 60000);
	for (unsigned b = 0; b < 8; b++)
		assert_true(
		        inv_open_hold_bound_ms(0, 0, 0, b) >= inv_open_hold_bound_ms(0, 0, 0, 0));
}

#define ID1 "0123456789abcdef0123456789abcdef01234567"
#define ID2 "fedcba9876543210fedcba9876543210fedcba98"
#define RN1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static bool parse(const char *s, inv_mark *m)
{
	return inv_open_mark_parse(s, strlen(s), m);
}

/* review 22 R22-1: the mark's value, old (4 tokens) and new (the marking time) */
static void test_mark_roundtrip(void **state)
{
	(void)state;
	inv_mark m, r;
	char buf[INV_MARK_MAX];
	assert_true(parse(ID1 " - " ID2 " " RN1 " 1764643200", &m));
	assert_string_equal(m.src, ID1);
	assert_string_equal(m.srun, "-");
	assert_string_equal(m.dst, ID2);
	assert_string_equal(m.drun, RN1);
	assert_int_equal(m.wall_s, 1764643200);
	int n = inv_open_mark_format(buf, sizeof buf, &m);
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, ID1 " - " ID2 " " RN1 " 1764643200");
	assert_true(inv_open_mark_parse(buf, (size_t)n, &r));
	assert_memory_equal(&m, &r, sizeof m);
	/* an older version's mark: 4 tokens, no time (a "-" in it stays a loss) */
	assert_true(parse(ID1 " " RN1 " " ID2 " -", &m));
	assert_int_equal(m.wall_s, 0);
	assert_string_equal(m.drun, "-");
	/* the longest value fits */
	inv_mark big = {.wall_s = UINT64_MAX};
	memcpy(big.src, ID1, 41), memcpy(big.srun, RN1, 41);
	memcpy(big.dst, ID2, 41), memcpy(big.drun, RN1, 41);
	assert_true(inv_open_mark_format(buf, sizeof buf, &big) > 0);
	assert_int_equal(inv_open_mark_format(buf, 10, &big), -1);
	/* 19 digits parse; 20 do not (no overflow) */
	assert_true(parse(ID1 " - " ID2 " - 9999999999999999999", &m));
	assert_int_equal(m.wall_s, 9999999999999999999ull);
}

static void test_mark_hostile(void **state)
{
	(void)state;
	inv_mark m;
	static const char *const bad[] = {
	        "", " ", ID1, ID1 " - " ID2, ID1 " - " ID2 " - 1 2",     /* 6 tokens */
	        ID1 "  - " ID2 " -",                                     /* two spaces */
	        " " ID1 " - " ID2 " -",                                  /* leading space */
	        ID1 " - " ID2 " - ",                                     /* trailing space */
	        ID1 "\t- " ID2 " -",                                     /* a tab */
	        "0123456789abcdef0123456789abcdef0123456 - " ID2 " -",   /* 39 */
	        "0123456789abcdef0123456789abcdef012345678 - " ID2 " -", /* 41 */
	        "0123456789ABCDEF0123456789abcdef01234567 - " ID2 " -",  /* upper case */
	        "0123456789abcdeg0123456789abcdef01234567 - " ID2 " -",  /* not hex */
	        ID1 " -- " ID2 " -", ID1 " abc " ID2 " -",               /* a short run */
	        ID1 " - " ID2 " - -1",                                   /* a sign */
	        ID1 " - " ID2 " - +1", ID1 " - " ID2 " - 1x", ID1 " - " ID2 " - 0x10",
	        ID1 " - " ID2 " - 18446744073709551616",       /* 20 digits */
	        ID1 " - " ID2 " - 99999999999999999999999999", /* overflow */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(parse(bad[i], &m));
	/* a NUL inside, a value longer than any mark, NULL */
	char nul[] = ID1 " - " ID2 " - 12";
	nul[50] = '\0';
	assert_false(inv_open_mark_parse(nul, sizeof nul - 1, &m));
	char lng[400];
	memset(lng, 'a', sizeof lng);
	assert_false(inv_open_mark_parse(lng, sizeof lng, &m));
	assert_false(inv_open_mark_parse(NULL, 0, &m));
	/* only the first n bytes count */
	const char *s = ID1 " - " ID2 " - 12 junk";
	assert_true(inv_open_mark_parse(s, strlen(s) - 5, &m));
	assert_int_equal(m.wall_s, 12);
}

/* R18-2 / R22-1: the uptime rule, in memory (monotonic) and read back (the mark's time) */
static void test_vouched(void **state)
{
	(void)state;
	/* in memory: up 10 s (whole seconds: maybe 9.01 s), marked 8.5 s ago: vouched; 9.5 s
	 * ago: not (review 24 R24-2: an end restarted 0.5 s after the mark); 10.5 s ago: not */
	assert_true(inv_open_vouched(10, 1000000, 9500000, 0, 0));
	assert_false(inv_open_vouched(10, 1000000, 10500000, 0, 0));
	assert_false(inv_open_vouched(10, 1000000, 11500000, 0, 0));
	assert_false(inv_open_vouched(1, 1000000, 1000001, 0, 0));
	assert_false(inv_open_vouched(0, 1000000, 1000001, 0, 0));  /* uptime unknown */
	assert_false(inv_open_vouched(10, 2000000, 1000000, 0, 0)); /* clock before the mark */
	assert_false(inv_open_vouched(UINT64_MAX, 1, 2, 0, 0));     /* not an uptime */
	/* read back: the mark's wall time, INV_WALL_MARGIN_S (30 s) of clock error tolerated */
	assert_true(inv_open_vouched(100, 0, 0, 1000, 1070));
	assert_false(inv_open_vouched(100, 0, 0, 1000, 1071));
	assert_false(inv_open_vouched(5, 0, 0, 1000, 1010));  /* restarted since the mark */
	assert_false(inv_open_vouched(100, 0, 0, 0, 1010));   /* no time (an older mark) */
	assert_false(inv_open_vouched(100, 0, 0, 1000, 999)); /* the clock went back */
	assert_false(inv_open_vouched(29, 0, 0, 1000, 1000));
	assert_true(inv_open_vouched(30, 0, 0, 1000, 1000));
	assert_false(inv_open_vouched(0, 0, 0, 1000, 1000));
	/* review 24 R24-1: marked at 1000 by one host, the end restarted at 1020, read back at
	 * 1050 by a host whose clock is 25 s behind (1025): up 30 s, not vouched for */
	assert_false(inv_open_vouched(30, 0, 0, 1000, 1025));
	/* review 25 R25-1: written by this process at wall 1000; the monotonic clock saw 2 s
	 * pass, its wall clock 60 s (a suspend, a paused VM): an end up 10 s restarted after
	 * the mark, not vouched for; up 62 s, vouched (60 + 1 whole-second error + 1) */
	assert_false(inv_open_vouched(10, 1000000, 3000000, 1000, 1060));
	assert_false(inv_open_vouched(61, 1000000, 3000000, 1000, 1060));
	assert_true(inv_open_vouched(62, 1000000, 3000000, 1000, 1060));
	/* the wall clock went back or was not recorded: the monotonic time alone */
	assert_true(inv_open_vouched(10, 1000000, 3000000, 1000, 900));
	assert_true(inv_open_vouched(10, 1000000, 3000000, 0, 1060));
	/* the wall clock agrees with the monotonic one: the whole-second error only */
	assert_true(inv_open_vouched(10, 1000000, 9500000, 1000, 1008));
	assert_false(inv_open_vouched(10, 1000000, 9500000, 1000, 1009));
}

/* review 25 R25-3: which read-back mark keeps the monotonic time of the one held (R24-1) */
static void test_keeps_seen(void **state)
{
	(void)state;
	inv_mark h, r;
	assert_true(parse(ID1 " - " ID2 " " RN1 " 1000", &h));
	assert_true(parse(ID1 " - " ID2 " " RN1 " 1000", &r));
	assert_true(inv_open_keeps_seen(true, 5, &h, &r));   /* what it wrote: kept */
	assert_false(inv_open_keeps_seen(false, 5, &h, &r)); /* held mark cleared */
	assert_false(inv_open_keeps_seen(true, 0, &h, &r));  /* held mark was read back */
	const char *other[] = {
	        ID1 " - " ID2 " " RN1 " 1001",       /* another marking time */
	        ID2 " - " ID2 " " RN1 " 1000",       /* another source */
	        ID1 " " RN1 " " ID2 " " RN1 " 1000", /* another source run */
	        ID1 " - " ID1 " " RN1 " 1000",       /* another target */
	        ID1 " - " ID2 " - 1000",             /* another target run */
	        ID1 " - " ID2 " " RN1,               /* no time (an older version) */
	};
	for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
		assert_true(parse(other[i], &r));
		assert_false(inv_open_keeps_seen(true, 5, &h, &r));
	}
}

/* review 22 R22-4: the node-flags table: a hash, more than 1,024 ids no failed round */
static void seen_id(char *id, unsigned i)
{
	/* ids sharing 32 of 40 characters: hashing must not rely on a prefix */
	snprintf(id, INV_ID_LEN + 1, "00000000000000000000000000000000%08x", i);
}

static void test_seen(void **state)
{
	(void)state;
	static inv_seen t; /* ~50 KB: not on the stack */
	char id[INV_ID_LEN + 1];
	inv_seen_reset(&t);
	assert_int_equal(inv_seen_get(&t, ID1), 0);
	inv_seen_add(&t, ID1, 1);
	inv_seen_add(&t, ID1, 4);
	assert_int_equal(inv_seen_get(&t, ID1), 5);
	assert_int_equal(inv_seen_get(&t, ID2), 0);
	/* 1,500 distinct ids (with ID1 already in): 1,024 kept, the rest unknown */
	for (unsigned i = 0; i < 1500; i++) {
		seen_id(id, i);
		inv_seen_add(&t, id, (uint8_t)(1u << (i % 5)));
	}
	assert_int_equal(t.n, INV_SEEN_MAX);
	assert_true(t.overflow);
	assert_int_equal(inv_seen_get(&t, ID1), 5);
	for (unsigned i = 0; i < 1500; i++) {
		seen_id(id, i);
		if (i < INV_SEEN_MAX - 1)
			assert_int_equal(inv_seen_get(&t, id), 1 << (i % 5));
		else
			assert_int_equal(inv_seen_get(&t, id), -1);
	}
	/* an id kept still takes flags after the overflow; one never seen is unknown now */
	seen_id(id, 7);
	inv_seen_add(&t, id, 16);
	assert_int_equal(inv_seen_get(&t, id), 16 | (1 << 2));
	assert_int_equal(inv_seen_get(&t, ID2), -1);
	/* a shorter or longer id is another id (a longer one cut at 40) */
	assert_int_equal(inv_seen_get(&t, "0000000000000000000000000000000000000007"), 16 | 4);
	assert_int_equal(inv_seen_get(&t, "000000000000000000000000000000000000000"), -1);
	assert_int_equal(inv_seen_get(&t, "0000000000000000000000000000000000000007ff"), 16 | 4);
	/* reset: empty again, no overflow */
	inv_seen_reset(&t);
	assert_int_equal(t.n, 0);
	assert_false(t.overflow);
	assert_int_equal(inv_seen_get(&t, ID1), 0);
	inv_seen_add(&t, "", 2);
	assert_int_equal(inv_seen_get(&t, ""), 2);
	assert_int_equal(inv_seen_get(&t, ID1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hold_bound),
	        cmocka_unit_test(test_mark_roundtrip),
	        cmocka_unit_test(test_mark_hostile),
	        cmocka_unit_test(test_vouched),
	        cmocka_unit_test(test_keeps_seen),
	        cmocka_unit_test(test_seen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
