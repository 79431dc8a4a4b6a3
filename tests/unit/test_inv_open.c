/* test_inv_open.c - the pure parts of the open-slot watch (cachesvc/invalidator/inv_open_util.c,
 * CLUSTER.md section 7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hold_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
