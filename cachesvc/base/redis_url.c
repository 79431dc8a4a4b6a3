/* redis_url.c - parses the Redis URL (redis.h connects to it, config.c checks it). */
#include "redis_url.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out; false when it does not fit or is malformed. */
static bool percent_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int hi = hex_value((unsigned char)s[i + 1]);
			int lo = hi < 0 ? -1 : hex_value((unsigned char)s[i + 2]);
			if (lo < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= outlen || c == 0)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

/* The last '@' in [s, end), or NULL. */
static const char *last_at_sign(const char *s, const char *end)
{
	while (end > s) {
		if (*--end == '@')
			return end;
	}
	return NULL;
}

bool cs_redis_url_parse(const char *url, cs_redis_url *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	out->port = 6379;
	bool is_unix;
	const char *s;
	if (strncmp(url, "redis://", 8) == 0) {
		is_unix = false;
		s = url + 8;
	} else if (strncmp(url, "unix://", 7) == 0) {
		is_unix = true;
		s = url + 7;
	} else {
		snprintf(why, whylen, "must start with redis:// or unix://");
		return false;
	}
	/* userinfo: up to the last '@' before the path (a socket path may hold '@' itself) */
	const char *host_end =
	        is_unix ? (*s == '/' ? s : s + strcspn(s, "?")) : s + strcspn(s, "/?");
	const char *at = last_at_sign(s, host_end);
	if (is_unix && at == NULL && *s != '/') {
		snprintf(why, whylen, "unix:// needs an absolute socket path");
		return false;
	}
	if (at) {
		/* "redis://secret@host": a bare userinfo is the password (AUTH <password>). */
		const char *colon = memchr(s, ':', (size_t)(at - s));
		bool ok = colon ? percent_decode(s, (size_t)(colon - s), out->username,
		                          sizeof(out->username)) &&
		                          percent_decode(colon + 1, (size_t)(at - colon - 1),
		                                  out->password, sizeof(out->password))
		                : percent_decode(s, (size_t)(at - s), out->password,
		                          sizeof(out->password));
		if (!ok) {
			snprintf(why, whylen,
			        "bad user or password (percent-encode special characters)");
			return false;
		}
		s = at + 1;
	}
	const char *q;
	if (is_unix) {
		q = s + strcspn(s, "?");
		if (*s != '/' || (size_t)(q - s) >= sizeof(out->unix_path)) {
			snprintf(why, whylen,
			        "unix:// needs an absolute socket path of at most %zu bytes",
			        sizeof(out->unix_path) - 1);
			return false;
		}
		memcpy(out->unix_path, s, (size_t)(q - s));
		if (*q == '?') {
			const char *db = q + 1;
			uint64_t n;
			if (strncmp(db, "db=", 3) != 0 || (db += 3, !cs_parse_digits(&db, &n)) ||
			        *db != '\0' || n > 1000000) {
				snprintf(why, whylen, "only ?db=N may follow the socket path");
				return false;
			}
			out->db = (int)n;
		}
		return true;
	}
	const char *hs = s, *he;
	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he == s + 1) {
			snprintf(why, whylen, "bad [v6] host");
			return false;
		}
		hs = s + 1;
		s = he + 1;
	} else {
		s += strcspn(s, ":/?");
		he = s;
		if (he == hs) {
			snprintf(why, whylen, "host missing");
			return false;
		}
	}
	if ((size_t)(he - hs) >= sizeof(out->host)) {
		snprintf(why, whylen, "host name too long");
		return false;
	}
	memcpy(out->host, hs, (size_t)(he - hs));
	if (*s == ':') {
		char port[8];
		size_t n = strcspn(s + 1, "/?");
		if (n == 0 || n >= sizeof(port)) {
			snprintf(why, whylen, "port must be 1..65535");
			return false;
		}
		memcpy(port, s + 1, n);
		port[n] = '\0';
		if (!cs_parse_port(port, &out->port)) {
			snprintf(why, whylen, "port must be 1..65535");
			return false;
		}
		s += 1 + n;
	}
	if (*s == '/') {
		s++;
		if (*s != '\0') {
			uint64_t n;
			if (!cs_parse_digits(&s, &n) || *s != '\0' || n > 1000000) {
				snprintf(why, whylen,
				        "database must be a number (redis://host:port/N)");
				return false;
			}
			out->db = (int)n;
		}
	}
	if (*s != '\0') {
		snprintf(why, whylen, "unexpected text after the host");
		return false;
	}
	return true;
}
