/* test_lsn.c - unit tests for protocol/lsn.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

/* Tokens (SHARDS.md section 5): "X/Y" or "NAME:X/Y". */
static void token_parse(void **state)
{
	cs_token t;
	assert_true(cs_token_parse("16/B374D848", &t));
	assert_string_equal(t.shard, "");
	assert_int_equal(t.lsn, ((uint64_t)0x16 << 32) | 0xB374D848u);
	assert_true(cs_token_parse("0/0", &t)); /* a bare 0/0 stays "no token" */
	assert_string_equal(t.shard, "");
	assert_int_equal(t.lsn, 0);
	assert_true(cs_token_parse("s1:0/16B3748", &t));
	assert_string_equal(t.shard, "s1");
	assert_int_equal(t.lsn, 0x16B3748u);
	assert_true(cs_token_parse("eu-West_2.a:FFFFFFFF/ffffffff", &t));
	assert_string_equal(t.shard, "eu-West_2.a");
	assert_int_equal(t.lsn, UINT64_MAX);
	char name64[80];
	memset(name64, 'n', 64);
	strcpy(name64 + 64, ":1/2");
	assert_true(cs_token_parse(name64, &t));
	assert_int_equal(strlen(t.shard), 64);
	assert_int_equal(t.lsn, ((uint64_t)1 << 32) | 2);
}

static void token_parse_invalid(void **state)
{
	char name65[80];
	memset(name65, 'n', 65);
	strcpy(name65 + 65, ":1/2");
	const char *bad[] = {"", ":", ":0/1", "s1:", "s1:x/1", "s1:1/", "s1:1//2", "s1:0/0",
	        "a:b:0/1", "s1:0/1:2", "s1::0/1", "s 1:0/1", "s/1:0/1", "\xc3\xa9:0/1", " s1:0/1",
	        "s1:0/1 ", "s1:123456789/0", "1/2:s1", name65, NULL};
	cs_token t = {"keep", 42};
	for (int i = 0; bad[i]; i++) {
		if (cs_token_parse(bad[i], &t))
			fail_msg("token \"%s\" parsed", bad[i]);
		assert_string_equal(t.shard, "keep"); /* untouched on failure */
		assert_int_equal(t.lsn, 42);
	}
	assert_false(cs_token_parse(NULL, &t));
}

static void token_format_roundtrip(void **state)
{
	char buf[CS_TOKEN_STRLEN];
	cs_token in[] = {{"", 0}, {"", ((uint64_t)0x16 << 32) | 0xB374D848u}, {"s1", 0x16B3748},
	        {"x", UINT64_MAX}, {"", 0}};
	memset(in[4].shard, 'z', CS_TOKEN_MAX_SHARD);
	in[4].shard[CS_TOKEN_MAX_SHARD] = '\0';
	in[4].lsn = UINT64_MAX;
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		cs_token back;
		assert_true(cs_token_parse(cs_token_format(&in[i], buf), &back));
		assert_string_equal(back.shard, in[i].shard);
		assert_int_equal(back.lsn, in[i].lsn);
	}
	assert_string_equal(cs_token_format(&in[2], buf), "s1:0/16B3748");
	assert_string_equal(cs_token_format(&in[1], buf), "16/B374D848");
	assert_int_equal(strlen(cs_token_format(&in[4], buf)), CS_TOKEN_STRLEN - 1); /* fits */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(parse_valid),
	        cmocka_unit_test(parse_invalid),
	        cmocka_unit_test(format_roundtrip),
	        cmocka_unit_test(token_parse),
	        cmocka_unit_test(token_parse_invalid),
	        cmocka_unit_test(token_format_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
