/* test_lsn.c - unit tests for protocol/lsn.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lsn.h"

static void parse_valid(void **state)
{
	cs_lsn_t v = 1;
	assert_true(cs_lsn_parse("0/0", &v));
	assert_int_equal(v, 0);
	assert_true(cs_lsn_parse("16/B374D848", &v));
	assert_int_equal(v, ((uint64_t)0x16 << 32) | 0xB374D848u);
	assert_true(cs_lsn_parse("ffffffff/FFFFFFFF", &v));
	assert_int_equal(v, UINT64_MAX);
}

static void parse_invalid(void **state)
{
	const char *bad[] = { "", "/", "1/", "/1", "1//2", "g/1", "1/2 ", " 1/2",
		"123456789/0", "0/123456789", "1-2", "12", NULL };
	cs_lsn_t v = 42;
	for (int i = 0; bad[i]; i++) {
		assert_false(cs_lsn_parse(bad[i], &v));
		assert_int_equal(v, 42); /* untouched on failure */
	}
	assert_false(cs_lsn_parse(NULL, &v));
}

static void format_roundtrip(void **state)
{
	char buf[CS_LSN_STRLEN];
	uint64_t samples[] = { 0, 1, 0x1000000, ((uint64_t)0x16 << 32) | 0xB374D848u, UINT64_MAX };
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		cs_lsn_t back = 0;
		assert_true(cs_lsn_parse(cs_lsn_format(samples[i], buf), &back));
		assert_int_equal(back, samples[i]);
	}
	assert_string_equal(cs_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
	assert_string_equal(cs_lsn_format(((uint64_t)1 << 32) | 0xA, buf), "1/A");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_valid),
		cmocka_unit_test(parse_invalid),
		cmocka_unit_test(format_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
