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

static size_t fmt(char *buf, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));

static size_t fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t cs_ks_prefix(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap)
{
	if (!ks->cluster)
		return fmt(buf, cap, "%s", ks->ns);
	return fmt(buf, cap, "{%s:%" PRIu32 "}", ks->ns, b % CS_KS_BUCKETS);
}

static const char *const fixed_suffix[] = {
	[CS_KS_HORIZON] = "horizon",
	[CS_KS_POS] = "inv:pos",
	[CS_KS_EPOCH] = "epoch",
	[CS_KS_FMAX] = "fmax",
	[CS_KS_EVK] = "evk",
};

/* "<prefix of bucket b>:<suffix>" */
static size_t in_bucket(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *suffix)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	if (cs_ks_prefix(ks, b, pre, sizeof pre) == 0)
		return 0;
	return fmt(buf, cap, "%s:%s", pre, suffix);
}

size_t cs_ks_fixed_in(const cs_keyspace *ks, uint32_t b, cs_ks_fixed which, char *buf, size_t cap)
{
	return in_bucket(ks, b, buf, cap, fixed_suffix[which]);
}

static void init(cs_keyspace *ks, const char *ns, const char *shard, bool cluster)
{
	memset(ks, 0, sizeof *ks);
	if (shard && *shard) {
		snprintf(ks->ns, sizeof ks->ns, "%s@%s", ns, shard);
		snprintf(ks->shard, sizeof ks->shard, "%s", shard);
	} else {
		snprintf(ks->ns, sizeof ks->ns, "%s", ns);
	}
	ks->nslen = strlen(ks->ns);
	ks->cluster = cluster;
	ks->horizon_len = cs_ks_fixed_in(ks, 0, CS_KS_HORIZON, ks->horizon, sizeof ks->horizon);
	ks->pos_len = cs_ks_fixed_in(ks, 0, CS_KS_POS, ks->pos, sizeof ks->pos);
	ks->epoch_len = cs_ks_fixed_in(ks, 0, CS_KS_EPOCH, ks->epoch, sizeof ks->epoch);
	ks->fmax_len = cs_ks_fixed_in(ks, 0, CS_KS_FMAX, ks->fmax, sizeof ks->fmax);
	ks->evk_len = cs_ks_fixed_in(ks, 0, CS_KS_EVK, ks->evk, sizeof ks->evk);
	ks->deb_len = in_bucket(ks, 0, ks->deb, sizeof ks->deb, "inv:deb");
	ks->timeline_len = in_bucket(ks, 0, ks->timeline, sizeof ks->timeline, "inv:timeline");
	ks->qmap_len = in_bucket(ks, 0, ks->qmap, sizeof ks->qmap, "inv:qmap");
	/* PUBLISH reaches every node's subscribers: the channel needs no tag */
	ks->channel_len = fmt(ks->channel, sizeof ks->channel, "%s:gen", ks->ns);
}

void cs_ks_init(cs_keyspace *ks, const char *ns)
{
	init(ks, ns, NULL, false);
}

int cs_ks_init_cluster(cs_keyspace *ks, const char *ns)
{
	if (strpbrk(ns, "{}") != NULL)
		return -1;
	init(ks, ns, NULL, true);
	return 0;
}

int cs_ks_init_shard(cs_keyspace *ks, const char *ns, const char *shard, bool cluster)
{
	/* refuse, never truncate: two long namespaces cut to one prefix would share their LSNs
	 * (SHARDS.md section 1); this also keeps '@' out of ns */
	char why[80];
	if (!cs_ks_valid_ns(ns, why, sizeof why))
		return -1;
	if (shard && *shard) {
		size_t n = strspn(shard, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                         "0123456789_.-");
		if (shard[n] != '\0' || n > CS_KS_SHARD_MAX)
			return -1;
	}
	if (cluster && strpbrk(ns, "{}") != NULL)
		return -1;
	init(ks, ns, shard, cluster);
	return 0;
}

uint32_t cs_ks_bucket(const cs_keyspace *ks, const char *q, const char *p, size_t plen)
{
	if (!ks->cluster)
		return 0;
	uint32_t h = 2166136261u; /* FNV-1a-32: CLUSTER.md fixes it, never change it */
	for (const unsigned char *s = (const unsigned char *)q; *s; s++)
		h = (h ^ *s) * 16777619u;
	h = (h ^ 0u) * 16777619u;
	for (size_t i = 0; i < plen; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h % CS_KS_BUCKETS;
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

size_t cs_ks_entry_prefix(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *q,
	uint64_t gen)
{
	if (!ks->cluster) /* the hit path: one snprintf */
		return fmt(buf, cap, "%s:e:%s:%" PRIu64 ":", ks->ns, q, gen);
	return fmt(buf, cap, "{%s:%" PRIu32 "}:e:%s:%" PRIu64 ":", ks->ns, b % CS_KS_BUCKETS, q, gen);
}

size_t cs_ks_entry(const cs_keyspace *ks, char *buf, size_t cap, const char *q, uint64_t gen,
	const char *p, size_t plen)
{
	uint32_t b = cs_ks_bucket(ks, q, p, plen);
	return with_params(buf, cap, cs_ks_entry_prefix(ks, b, buf, cap, q, gen), p, plen);
}

static size_t keyed(const cs_keyspace *ks, char *buf, size_t cap, const char *kind, const char *q,
	const char *p, size_t plen)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	if (cs_ks_prefix(ks, cs_ks_bucket(ks, q, p, plen), pre, sizeof pre) == 0)
		return 0;
	return with_params(buf, cap, fmt(buf, cap, "%s:%s:%s:", pre, kind, q), p, plen);
}

size_t cs_ks_fence(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen)
{
	return keyed(ks, buf, cap, "f", q, p, plen);
}

size_t cs_ks_lease(const cs_keyspace *ks, char *buf, size_t cap, const char *q, const char *p,
	size_t plen)
{
	return keyed(ks, buf, cap, "l", q, p, plen);
}

size_t cs_ks_gen_in(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *q)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, b, pre, sizeof pre) ? fmt(buf, cap, "%s:g:%s", pre, q) : 0;
}

size_t cs_ks_qfence_in(const cs_keyspace *ks, uint32_t b, char *buf, size_t cap, const char *q)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, b, pre, sizeof pre) ? fmt(buf, cap, "%s:qf:%s", pre, q) : 0;
}

size_t cs_ks_gen(const cs_keyspace *ks, char *buf, size_t cap, const char *q)
{
	return cs_ks_gen_in(ks, 0, buf, cap, q);
}

size_t cs_ks_qfence(const cs_keyspace *ks, char *buf, size_t cap, const char *q)
{
	return cs_ks_qfence_in(ks, 0, buf, cap, q);
}

size_t cs_ks_qdef(const cs_keyspace *ks, char *buf, size_t cap, const char *q)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, 0, pre, sizeof pre) ? fmt(buf, cap, "%s:qd:%s", pre, q) : 0;
}

size_t cs_ks_gap(const cs_keyspace *ks, char *buf, size_t cap, const char *slot)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, 0, pre, sizeof pre) ? fmt(buf, cap, "%s:inv:gap:%s", pre, slot) : 0;
}

size_t cs_ks_slotmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, 0, pre, sizeof pre) ? fmt(buf, cap, "%s:inv:slot:%s", pre, slot) : 0;
}

size_t cs_ks_openmark(const cs_keyspace *ks, char *buf, size_t cap, const char *slot)
{
	char pre[CS_KS_PREFIX_MAX + 1];
	return cs_ks_prefix(ks, 0, pre, sizeof pre) ? fmt(buf, cap, "%s:inv:open:%s", pre, slot)
	                                            : 0;
}
