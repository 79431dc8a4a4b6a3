/* json.c - the JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- Text --------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;
	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void cs_json_quote(cs_sb *s, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	cs_sb_put(s, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char ch = u[i];
		if (ch == '"' || ch == '\\') {
			char esc[2] = {'\\', (char)ch};
			cs_sb_put(s, esc, 2);
			i++;
		} else if (ch < 0x20) {
			static const char *const named[] = {['\b'] = "\\b",
			        ['\f'] = "\\f",
			        ['\n'] = "\\n",
			        ['\r'] = "\\r",
			        ['\t'] = "\\t"};
			if (ch < sizeof named / sizeof named[0] && named[ch])
				cs_sb_put(s, named[ch], 2);
			else
				cs_sb_printf(s, "\\u%04x", ch);
			i++;
		} else {
			size_t l = utf8_len(u + i, n - i);
			if (l == 0) {
				cs_sb_put(s, "\\ufffd", 6);
				i++;
			} else {
				cs_sb_put(s, p + i, l);
				i += l;
			}
		}
	}
	cs_sb_put(s, "\"", 1);
}

void cs_fmt_double(cs_sb *s, double v)
{
	if (isnan(v) || isinf(v)) {
		cs_sb_str(s, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	char tmp[40];
	snprintf(tmp, sizeof tmp, "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof tmp, "%.17g", v);
	cs_sb_str(s, tmp);
}

/* ---- Structure ---------------------------------------------------------------------------- */

void cs_json_init(cs_json *j, cs_sb *sb, bool big_int_strings)
{
	*j = (cs_json){.sb = sb, .big_int_strings = big_int_strings};
}

void cs_json_value(cs_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0) /* top-level values: one after another, the caller separates them */
		return;
	int d = j->depth < CS_JSON_MAX_DEPTH ? j->depth : CS_JSON_MAX_DEPTH;
	if (j->more[d])
		cs_sb_put(j->sb, ",", 1);
	j->more[d] = true;
}

static void container_open(cs_json *j, char c)
{
	cs_json_value(j);
	cs_sb_ch(j->sb, c);
	j->depth++;
	if (j->depth <= CS_JSON_MAX_DEPTH)
		j->more[j->depth] = false;
}

static void container_close(cs_json *j, char c)
{
	cs_sb_ch(j->sb, c);
	if (j->depth > 0)
		j->depth--;
}

void cs_json_object(cs_json *j)
{
	container_open(j, '{');
}

void cs_json_object_end(cs_json *j)
{
	container_close(j, '}');
}

void cs_json_array(cs_json *j)
{
	container_open(j, '[');
}

void cs_json_array_end(cs_json *j)
{
	container_close(j, ']');
}

void cs_json_key(cs_json *j, const char *key)
{
	cs_json_value(j);
	cs_json_quote(j->sb, key, strlen(key));
	cs_sb_put(j->sb, ":", 1);
	j->after_key = true;
}

/* ---- Values ------------------------------------------------------------------------------- */

void cs_json_strn(cs_json *j, const char *p, size_t n)
{
	cs_json_value(j);
	cs_json_quote(j->sb, p, n);
}

void cs_json_str(cs_json *j, const char *s)
{
	if (s == NULL)
		cs_json_null(j);
	else
		cs_json_strn(j, s, strlen(s));
}

void cs_json_int(cs_json *j, int64_t v)
{
	cs_json_value(j);
	/* Beyond 2^53 a JSON number loses digits in JavaScript and most parsers. */
	if (j->big_int_strings && (v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53)))
		cs_sb_printf(j->sb, "\"%" PRId64 "\"", v);
	else
		cs_sb_printf(j->sb, "%" PRId64, v);
}

void cs_json_uint(cs_json *j, uint64_t v)
{
	cs_json_value(j);
	cs_sb_printf(j->sb, "%" PRIu64, v);
}

void cs_json_bool(cs_json *j, bool v)
{
	cs_json_value(j);
	cs_sb_str(j->sb, v ? "true" : "false");
}

void cs_json_null(cs_json *j)
{
	cs_json_value(j);
	cs_sb_put(j->sb, "null", 4);
}

void cs_json_fixed(cs_json *j, double v, int decimals)
{
	cs_json_value(j);
	cs_sb_printf(j->sb, "%.*f", decimals, v);
}

void cs_json_double(cs_json *j, double v)
{
	cs_json_value(j);
	if (isnan(v) || isinf(v)) {
		cs_sb_put(j->sb, "\"", 1);
		cs_fmt_double(j->sb, v);
		cs_sb_put(j->sb, "\"", 1);
	} else {
		cs_fmt_double(j->sb, v);
	}
}

/* ---- Key and value ------------------------------------------------------------------------ */

void cs_json_kv_str(cs_json *j, const char *key, const char *s)
{
	cs_json_key(j, key);
	cs_json_str(j, s);
}

void cs_json_kv_int(cs_json *j, const char *key, int64_t v)
{
	cs_json_key(j, key);
	cs_json_int(j, v);
}

void cs_json_kv_uint(cs_json *j, const char *key, uint64_t v)
{
	cs_json_key(j, key);
	cs_json_uint(j, v);
}

void cs_json_kv_bool(cs_json *j, const char *key, bool v)
{
	cs_json_key(j, key);
	cs_json_bool(j, v);
}

void cs_json_kv_fixed(cs_json *j, const char *key, double v, int decimals)
{
	cs_json_key(j, key);
	cs_json_fixed(j, v, decimals);
}
