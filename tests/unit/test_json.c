/* test_json.c - the string buffer (protocol/sbuf.c), the JSON writer (protocol/json.c) and
 * protocol/textutil.h, linked alone: escaping, commas, numbers, both buffer modes, chomp,
 * hex digits and FNV-1a. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "sbuf.h"
#include "textutil.h"

static void test_sb_growable(void **state)
{
	(void)state;
	cs_sb s = CS_SB_INIT;
	char *t = cs_sb_take(&s);
	assert_string_equal(t, ""); /* nothing put: "" */
	free(t);
	for (int i = 0; i < 1000; i++)
		cs_sb_str(&s, "0123456789");
	assert_int_equal(s.len, 10000);
	assert_int_equal(strlen(s.p), 10000);
	char big[300];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cs_sb_printf(&s, "<%s>", big); /* longer than printf's stack buffer: whole */
	assert_int_equal(s.len, 10000 + 301);
	assert_int_equal(s.p[s.len - 1], '>');
	t = cs_sb_take(&s);
	assert_non_null(t);
	assert_null(s.p);
	free(t);
}

static void test_sb_bounded(void **state)
{
	(void)state;
	char buf[8];
	memset(buf, '#', sizeof buf);
	cs_sb s = cs_sb_bounded(buf, 5);
	cs_sb_str(&s, "abc");
	cs_sb_printf(&s, "%d", 12345);
	assert_int_equal(s.len, 8); /* counted past the end */
	assert_memory_equal(buf, "abc12###", 8); /* nothing written past cap */
	cs_sb m = cs_sb_bounded(NULL, 0);       /* measuring only */
	cs_sb_str(&m, "hello");
	cs_sb_ch(&m, '!');
	assert_int_equal(m.len, 6);
}

static char *render(void (*build)(cs_json *), bool big)
{
	static char out[512];
	cs_sb s = CS_SB_INIT;
	cs_json j;
	cs_json_init(&j, &s, big);
	build(&j);
	char *t = cs_sb_take(&s);
	snprintf(out, sizeof out, "%s", t);
	free(t);
	return out;
}

static void build_nested(cs_json *j)
{
	cs_json_object(j);
	cs_json_key(j, "a");
	cs_json_array(j);
	cs_json_int(j, 1);
	cs_json_object(j);
	cs_json_object_end(j);
	cs_json_array(j);
	cs_json_array_end(j);
	cs_json_null(j);
	cs_json_array_end(j);
	cs_json_key(j, "b");
	cs_json_bool(j, true);
	cs_json_key(j, "c");
	cs_json_fixed(j, 2.5, 3);
	cs_json_key(j, "d");
	cs_json_str(j, NULL);
	cs_json_object_end(j);
}

static void test_json_structure(void **state)
{
	(void)state;
	assert_string_equal(render(build_nested, false),
	        "{\"a\":[1,{},[],null],\"b\":true,\"c\":2.500,\"d\":null}");
}

static void build_strings(cs_json *j)
{
	cs_json_array(j);
	cs_json_str(j, "q\"b\\s\b\f\n\r\t\x01\x1f");
	cs_json_str(j, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");   /* valid UTF-8: copied */
	cs_json_str(j, "a\xff" "b\xc3" "c\xed\xa0\x80" "d\xc0\xaf"); /* invalid: U+FFFD a byte */
	cs_json_strn(j, "n\0ul", 4);
	cs_json_array_end(j);
}

static void test_json_strings(void **state)
{
	(void)state;
	assert_string_equal(render(build_strings, false),
	        "[\"q\\\"b\\\\s\\b\\f\\n\\r\\t\\u0001\\u001f\","
	        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
	        "\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd\\ufffd\","
	        "\"n\\u0000ul\"]");
}

static void build_numbers(cs_json *j)
{
	cs_json_array(j);
	cs_json_int(j, INT64_C(9007199254740992));  /* 2^53: exact */
	cs_json_int(j, INT64_C(9007199254740993));  /* beyond */
	cs_json_int(j, -INT64_C(9007199254740993));
	cs_json_uint(j, UINT64_MAX);
	cs_json_double(j, 0.1);
	cs_json_double(j, 1e300 * 1e300);
	cs_json_double(j, NAN);
	cs_json_array_end(j);
}

static void test_json_numbers(void **state)
{
	(void)state;
	assert_string_equal(render(build_numbers, true),
	        "[9007199254740992,\"9007199254740993\",\"-9007199254740993\","
	        "18446744073709551615,0.1,\"Infinity\",\"NaN\"]");
	assert_string_equal(render(build_numbers, false),
	        "[9007199254740992,9007199254740993,-9007199254740993,"
	        "18446744073709551615,0.1,\"Infinity\",\"NaN\"]");
}

static void build_top(cs_json *j)
{
	cs_json_object(j);
	cs_json_object_end(j);
	cs_json_object(j); /* top-level values take no comma: the caller separates them */
	cs_json_key(j, "k");
	cs_json_uint(j, 1);
	cs_json_object_end(j);
}

static void test_json_top_level(void **state)
{
	(void)state;
	assert_string_equal(render(build_top, false), "{}{\"k\":1}");
}

static void build_kv(cs_json *j)
{
	cs_json_object(j);
	cs_json_kv_str(j, "s", "x");
	cs_json_kv_int(j, "i", -1);
	cs_json_kv_uint(j, "u", 2);
	cs_json_kv_bool(j, "b", false);
	cs_json_kv_fixed(j, "f", 0.25, 1);
	cs_json_object_end(j);
}

static void test_json_kv(void **state)
{
	(void)state;
	assert_string_equal(render(build_kv, false),
	        "{\"s\":\"x\",\"i\":-1,\"u\":2,\"b\":false,\"f\":0.2}");
}

static void test_sb_puts(void **state)
{
	(void)state;
	char out[64] = "";
	FILE *f = fmemopen(out, sizeof out, "w");
	assert_non_null(f);
	cs_sb s = CS_SB_INIT;
	cs_sb_str(&s, "line");
	assert_int_equal(cs_sb_puts(&s, f), 0);
	assert_null(s.p);
	cs_sb failed = CS_SB_INIT;
	failed.failed = true;
	assert_int_equal(cs_sb_puts(&failed, f), -1);
	fclose(f);
	assert_string_equal(out, "line\n");
}

static void test_textutil(void **state)
{
	(void)state;
	char s[] = "line one \n \n";
	cs_chomp(s);
	assert_string_equal(s, "line one");
	char e[] = "";
	cs_chomp(e);
	assert_string_equal(e, "");
	assert_int_equal(cs_hex_digit('7'), 7);
	assert_int_equal(cs_hex_digit('b'), 11);
	assert_int_equal(cs_hex_digit('F'), 15);
	assert_int_equal(cs_hex_digit('g'), -1);
	/* FNV-1a 64 reference values: "" and "a"; chained calls hash the concatenation */
	assert_true(cs_fnv1a64(CS_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
	assert_true(cs_fnv1a64(CS_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(cs_fnv1a64(cs_fnv1a64(CS_FNV1A64_INIT, "ab", 2), "c", 1) ==
	            cs_fnv1a64(CS_FNV1A64_INIT, "abc", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sb_growable),
	        cmocka_unit_test(test_sb_bounded),
	        cmocka_unit_test(test_json_structure),
	        cmocka_unit_test(test_json_strings),
	        cmocka_unit_test(test_json_numbers),
	        cmocka_unit_test(test_json_top_level),
	        cmocka_unit_test(test_json_kv),
	        cmocka_unit_test(test_sb_puts),
	        cmocka_unit_test(test_textutil),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
