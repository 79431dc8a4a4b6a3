/* log_mask.c - secrets out of what is logged or shown: passwords in libpq conninfo strings
 * and Redis URLs become ***, and libpq's error messages about a conninfo keep only what the
 * masked form shows. Pure string work; declared in log.h, beside the logger whose rule is
 * "never a secret in a line". */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A bounded string builder that truncates instead of overflowing. */
struct outbuf {
	char *p;
	size_t cap, len;
};

static void out_append(struct outbuf *o, const char *s, size_t n)
{
	if (o->cap == 0)
		return;
	size_t room = o->cap - 1 - o->len;
	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void out_str(struct outbuf *o, const char *s)
{
	out_append(o, s, strlen(s));
}

/* libpq's messages may quote fragments of the string; keep only those that are not
 * secret (they appear in the masked form). */
void cs_log_scrub_libpq_message(const char *msg, const char *masked, char *out, size_t outlen)
{
	struct outbuf o = {out, outlen, 0};
	if (outlen)
		out[0] = '\0';
	while (*msg) {
		if (*msg == '"') {
			const char *e = strchr(msg + 1, '"');
			if (e) {
				char frag[256];
				snprintf(frag, sizeof(frag), "%.*s", (int)(e - msg - 1), msg + 1);
				out_str(&o, "\"");
				out_str(&o, strstr(masked, frag) ? frag : "***");
				out_str(&o, "\"");
				msg = e + 1;
				continue;
			}
		}
		if (*msg != '\n')
			out_append(&o, msg, 1);
		msg++;
	}
}

static bool is_secret_option(const char *name, size_t n)
{
	return (n == 8 && strncmp(name, "password", 8) == 0) ||
	       (n == 11 && strncmp(name, "sslpassword", 11) == 0);
}

/* A URI query option's name as libpq reads it: percent-decoded ("pass%77ord" is
 * "password"). A name that does not decode, or is too long to be a secret option, is not
 * one. */
static bool is_secret_uri_option(const char *name, size_t n)
{
	char dec[16];
	size_t d = 0;
	for (size_t i = 0; i < n; i++) {
		if (d == sizeof dec)
			return false;
		if (name[i] == '%' && i + 2 < n && isxdigit((unsigned char)name[i + 1]) &&
			isxdigit((unsigned char)name[i + 2])) {
			char hex[3] = { name[i + 1], name[i + 2], 0 };
			dec[d++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			dec[d++] = name[i];
		}
	}
	return is_secret_option(dec, d);
}

/* scheme://[user[:password]@]...[?k=v&...]; a bare userinfo counts as a secret when
 * bare_is_secret (Redis: "redis://password@host"). Everything after the last '@' before
 * the query string is kept; the password and secret query options become ***. */
static void mask_uri(const char *s, bool bare_is_secret, struct outbuf *o)
{
	const char *rest = strstr(s, "://") + 3;
	out_append(o, s, (size_t)(rest - s));
	/* The last '@' anywhere: over-masking beats printing a password with a stray '/'. */
	const char *at = strrchr(rest, '@');
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		if (colon) {
			out_append(o, rest, (size_t)(colon - rest));
			out_str(o, ":***@");
		} else if (bare_is_secret) {
			out_str(o, "***@");
		} else {
			out_append(o, rest, (size_t)(at - rest) + 1);
		}
		rest = at + 1;
	}
	const char *q = strchr(rest, '?');
	if (!q) {
		out_str(o, rest);
		return;
	}
	out_append(o, rest, (size_t)(q - rest) + 1);
	const char *p = q + 1;
	while (*p) {
		size_t n = strcspn(p, "&");
		size_t kn = strcspn(p, "=&");
		if (p[kn] == '=' && is_secret_uri_option(p, kn)) {
			out_append(o, p, kn + 1);
			out_str(o, "***");
		} else {
			out_append(o, p, n);
		}
		p += n;
		if (*p == '&')
			out_append(o, p++, 1);
	}
}

/* A dbname that is itself a connection string (libpq expands one level: "dbname=
 * postgresql://u:pw@h/db" reaches the server, and its error messages, as a name). Masked
 * whole when it could hold a secret: a URI with userinfo or query, or key=value text. */
static bool nested_conninfo(const char *v, size_t n)
{
	char buf[512];
	size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
	memcpy(buf, v, k);
	buf[k] = '\0';
	return strstr(buf, "://") != NULL || strchr(buf, '=') != NULL || n >= sizeof buf - 1;
}

/* key = value ... as libpq reads it: values are bare words or '...' with \ escapes. */
static void mask_keyword_value(const char *s, struct outbuf *o)
{
	while (*s) {
		const char *ws = s;
		while (isspace((unsigned char)*s))
			s++;
		out_append(o, ws, (size_t)(s - ws));
		if (!*s)
			break;
		const char *key = s;
		while (*s && *s != '=' && !isspace((unsigned char)*s))
			s++;
		size_t klen = (size_t)(s - key);
		out_append(o, key, klen);
		ws = s;
		while (isspace((unsigned char)*s))
			s++;
		if (*s != '=') {
			/* malformed: whatever follows might be a secret */
			if (*s)
				out_str(o, " ***");
			return;
		}
		s++;
		while (isspace((unsigned char)*s))
			s++;
		out_append(o, ws, (size_t)(s - ws));
		const char *val = s;
		if (*s == '\'') {
			s++;
			while (*s && *s != '\'') {
				if (*s == '\\' && s[1])
					s++;
				s++;
			}
			if (*s)
				s++;
		} else {
			while (*s && !isspace((unsigned char)*s)) {
				if (*s == '\\' && s[1])
					s++;
				s++;
			}
		}
		if (is_secret_option(key, klen) || (klen == 6 && strncmp(key, "dbname", 6) == 0 &&
							  nested_conninfo(val, (size_t)(s - val))))
			out_str(o, "***");
		else
			out_append(o, val, (size_t)(s - val));
	}
}

void cs_log_mask_conninfo(const char *conninfo, char *buf, size_t buflen)
{
	struct outbuf o = {buf, buflen, 0};
	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (conninfo == NULL)
		return;
	if (strncmp(conninfo, "postgresql://", 13) == 0 ||
	        strncmp(conninfo, "postgres://", 11) == 0)
		mask_uri(conninfo, false, &o);
	else
		mask_keyword_value(conninfo, &o);
}

/* Copies a Redis URL into buf with its password replaced by ***. */
void cs_log_mask_redis_url(const char *url, char *buf, size_t buflen)
{
	struct outbuf o = {buf, buflen, 0};
	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (url == NULL)
		return;
	if (strstr(url, "://"))
		mask_uri(url, true, &o);
	else
		out_str(&o, strchr(url, '@') ? "***" : url);
}
