/* keyspace.c - Redis key names (keyspace.h). */
#include "keyspace.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cs_ks_default_ns(int db, char out[CS_NS_MAX + 1])
{
	if (db == 0)
		snprintf(out, CS_NS_MAX + 1, "cs");
	else
		snprintf(out, CS_NS_MAX + 1, "cs%d", db);
}

int cs_ks_valid_ns(const char *ns, char *why, size_t whylen)
{
	size_t n = strlen(ns);
	if (n == 0 || n > CS_NS_MAX) {
		snprintf(why, whylen, "namespace must be 1..%d bytes", CS_NS_MAX);
		return 0;
	}
	for (const char *s = ns; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '_' || c == '.' || c == '-' || c == '{' || c == '}')) {
			snprintf(why, whylen, "namespace may hold only letters, digits and _ . - { }");
			return 0;
		}
	}
	return 1;
}

static size_t fixed(char *buf, size_t cap, const char *ns, const char *suffix)
{
	int n = snprintf(buf, cap, "%s:%s", ns, suffix);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void cs_ks_init(cs_keyspace *ks, const char *ns)
{
	memset(ks, 0, sizeof *ks);
	snprintf(ks->ns, sizeof ks->ns, "%s", ns);
	ks->nslen = strlen(ks->ns);
	ks->horizon_len = fixed(ks->horizon, sizeof ks->horizon, ks->ns, "horizon");
	ks->pos_len = fixed(ks->pos, sizeof ks->pos, ks->ns, "inv:pos");
	ks->epoch_len = fixed(ks->epoch, sizeof ks->epoch, ks->ns, "epoch");
	ks->deb_len = fixed(ks->deb, sizeof ks->deb, ks->ns, "inv:deb");
	ks->channel_len = fixed(ks->channel, sizeof ks->channel, ks->ns, "gen");
	ks->timeline_len = fixed(ks->timeline, sizeof ks->timeline, ks->ns, "inv:timeline");
	ks->fmax_len = fixed(ks->fmax, sizeof ks->fmax, ks->ns, "fmax");
	ks->evk_len = fixed(ks->evk, sizeof ks->evk, ks->ns, "evk");
}

static size_t fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

static size_t fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* "<prefix><p>": appends plen raw bytes (canonical parameters may hold any byte). */
static size_t with_params(char *buf, size_t cap, size_t n, const char *p, size_t plen)
{
	if (n == 0 || n + plen + 1 > cap)
		return 0;
	memcpy(buf + n, p, plen);
	buf[n + plen] = '\0';
	return n + plen;
}

size_t cs_ks_entry_prefix(const cs_keyspace *ks, char *buf, size_t cap, const char *q, uint64_t gen)
{
	return fmt(buf, cap, "%s:e:%s:%" PRIu64 ":", ks->ns, q, gen);
}

size_t cs_ks_entry(const cs_keyspace *ks, char *buf, size_t cap, const char *q, uint64_t gen,
	const char *p, size_t plen)
{
	return with_params(buf, cap, cs_ks_entry_prefix(ks, buf, cap, q, gen), p, plen);
}

size_t cs_ks_fence(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen)
{
	return with_params(buf, cap, fmt(buf, cap, "%s:f:%s:", ks->ns, q), p, plen);
}

size_t cs_ks_lease(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen)
{
	return with_params(buf, cap, fmt(buf, cap, "%s:l:%s:", ks->ns, q), p, plen);
}

size_t cs_ks_gen(const cs_keyspace *ks, char *buf, size_t cap, const char *q)
{
	return fmt(buf, cap, "%s:g:%s", ks->ns, q);
}

size_t cs_ks_qfence(const cs_keyspace *ks, char *buf, size_t cap, const char *q)
{
	return fmt(buf, cap, "%s:qf:%s", ks->ns, q);
}

size_t cs_ks_gap(const cs_keyspace *ks, char *buf, size_t cap, const char *slot)
{
	return fmt(buf, cap, "%s:inv:gap:%s", ks->ns, slot);
}

size_t cs_ks_slotmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot)
{
	return fmt(buf, cap, "%s:inv:slot:%s", ks->ns, slot);
}
