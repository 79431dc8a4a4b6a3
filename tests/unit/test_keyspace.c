/* test_keyspace.c - key names: a single Redis keeps its names byte for byte; on a cluster
 * every key of a query and its parameters, and every per-bucket copy, carries its bucket's
 * hash tag (backend/CLUSTER.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keyspace.h"

#define EQ(len, buf, want)                                                                       \
	do {                                                                                     \
		assert_int_equal((len), strlen(want));                                           \
		assert_string_equal((buf), (want));                                              \
	} while (0)

static void single_names_unchanged(void **state)
{
	(void)state;
	cs_keyspace ks;
	cs_ks_init(&ks, "cs");
	char b[CS_KEY_MAX];
	EQ(ks.horizon_len, ks.horizon, "cs:horizon");
	EQ(ks.pos_len, ks.pos, "cs:inv:pos");
	EQ(ks.epoch_len, ks.epoch, "cs:epoch");
	EQ(ks.deb_len, ks.deb, "cs:inv:deb");
	EQ(ks.channel_len, ks.channel, "cs:gen");
	EQ(ks.timeline_len, ks.timeline, "cs:inv:timeline");
	EQ(ks.fmax_len, ks.fmax, "cs:fmax");
	EQ(ks.evk_len, ks.evk, "cs:evk");
	EQ(cs_ks_entry(&ks, b, sizeof b, "q", 7, "i42", 3), b, "cs:e:q:7:i42");
	EQ(cs_ks_fence(&ks, b, sizeof b, "q", "i42", 3), b, "cs:f:q:i42");
	EQ(cs_ks_lease(&ks, b, sizeof b, "q", "i42", 3), b, "cs:l:q:i42");
	EQ(cs_ks_gen(&ks, b, sizeof b, "q"), b, "cs:g:q");
	EQ(cs_ks_qfence(&ks, b, sizeof b, "q"), b, "cs:qf:q");
	EQ(cs_ks_qdef(&ks, b, sizeof b, "q"), b, "cs:qd:q");
	EQ(cs_ks_gap(&ks, b, sizeof b, "s1"), b, "cs:inv:gap:s1");
	EQ(cs_ks_slotmark(&ks, b, sizeof b, "s1"), b, "cs:inv:slot:s1");
	EQ(cs_ks_entry_prefix(&ks, 0, b, sizeof b, "q", 7), b, "cs:e:q:7:");
	/* a single Redis has one bucket: every copy is the one name */
	assert_int_equal(cs_ks_bucket(&ks, "q", "i42", 3), 0);
	EQ(cs_ks_gen_in(&ks, 99, b, sizeof b, "q"), b, "cs:g:q");
	EQ(cs_ks_fixed_in(&ks, 99, CS_KS_HORIZON, b, sizeof b), b, "cs:horizon");
	/* canonical parameters may hold any byte */
	size_t n = cs_ks_entry(&ks, b, sizeof b, "q", 1, "a\0b", 3);
	assert_int_equal(n, strlen("cs:e:q:1:") + 3);
	assert_memory_equal(b, "cs:e:q:1:a\0b", n);
	/* too small a buffer: 0, never a truncated name */
	assert_int_equal(cs_ks_entry(&ks, b, 8, "q", 7, "i42", 3), 0);
	assert_int_equal(cs_ks_fence(&ks, b, 10, "q", "i42", 3), 0);
}

static void cluster_names(void **state)
{
	(void)state;
	cs_keyspace ks;
	assert_int_equal(cs_ks_init_cluster(&ks, "{app}"), -1); /* a brace would replace the tag */
	assert_int_equal(cs_ks_init_cluster(&ks, "app"), 0);
	char b[CS_KEY_MAX], want[CS_KEY_MAX];
	/* the bucket is FNV-1a-32 of "q\0p" mod 256, fixed by CLUSTER.md (values computed apart) */
	assert_int_equal(cs_ks_bucket(&ks, "user_profile", "i42", 3), 165);
	assert_int_equal(cs_ks_bucket(&ks, "q", "", 0), 212);
	assert_int_equal(cs_ks_bucket(&ks, "conv_messages", "i7", 2), 56);
	EQ(cs_ks_entry(&ks, b, sizeof b, "user_profile", 3, "i42", 3), b, "{app:165}:e:user_profile:3:i42");
	EQ(cs_ks_fence(&ks, b, sizeof b, "user_profile", "i42", 3), b, "{app:165}:f:user_profile:i42");
	EQ(cs_ks_lease(&ks, b, sizeof b, "user_profile", "i42", 3), b, "{app:165}:l:user_profile:i42");
	EQ(cs_ks_entry_prefix(&ks, 165, b, sizeof b, "user_profile", 3), b, "{app:165}:e:user_profile:3:");
	EQ(cs_ks_gen_in(&ks, 165, b, sizeof b, "user_profile"), b, "{app:165}:g:user_profile");
	EQ(cs_ks_qfence_in(&ks, 165, b, sizeof b, "user_profile"), b, "{app:165}:qf:user_profile");
	EQ(cs_ks_fixed_in(&ks, 165, CS_KS_HORIZON, b, sizeof b), b, "{app:165}:horizon");
	EQ(cs_ks_fixed_in(&ks, 165, CS_KS_POS, b, sizeof b), b, "{app:165}:inv:pos");
	EQ(cs_ks_fixed_in(&ks, 165, CS_KS_EPOCH, b, sizeof b), b, "{app:165}:epoch");
	EQ(cs_ks_fixed_in(&ks, 165, CS_KS_FMAX, b, sizeof b), b, "{app:165}:fmax");
	EQ(cs_ks_fixed_in(&ks, 165, CS_KS_EVK, b, sizeof b), b, "{app:165}:evk");
	/* bucket 0 is canonical: the plain builders and the fixed names */
	EQ(cs_ks_gen(&ks, b, sizeof b, "q"), b, "{app:0}:g:q");
	EQ(cs_ks_qfence(&ks, b, sizeof b, "q"), b, "{app:0}:qf:q");
	EQ(cs_ks_qdef(&ks, b, sizeof b, "q"), b, "{app:0}:qd:q");
	EQ(ks.horizon_len, ks.horizon, "{app:0}:horizon");
	EQ(ks.epoch_len, ks.epoch, "{app:0}:epoch");
	EQ(ks.deb_len, ks.deb, "{app:0}:inv:deb");
	EQ(ks.timeline_len, ks.timeline, "{app:0}:inv:timeline");
	EQ(cs_ks_gap(&ks, b, sizeof b, "s1"), b, "{app:0}:inv:gap:s1");
	EQ(cs_ks_slotmark(&ks, b, sizeof b, "s1"), b, "{app:0}:inv:slot:s1");
	/* the channel is not a key: PUBLISH reaches every node */
	EQ(ks.channel_len, ks.channel, "app:gen");
	/* the longest namespace and bucket still fit the bounds */
	cs_keyspace big;
	char ns[CS_NS_MAX + 1];
	memset(ns, 'n', CS_NS_MAX);
	ns[CS_NS_MAX] = '\0';
	assert_int_equal(cs_ks_init_cluster(&big, ns), 0);
	snprintf(want, sizeof want, "{%s:255}:inv:pos", ns);
	EQ(cs_ks_fixed_in(&big, 255, CS_KS_POS, b, sizeof b), b, want);
	assert_true(strlen(want) < CS_NAME_MAX);
}

/* The bucket depends on the query and the parameters, never on the generation: an entry of
 * any generation, its fence and its lease share one hash tag (one slot). */
static void cluster_key_shares_tag(void **state)
{
	(void)state;
	cs_keyspace ks;
	assert_int_equal(cs_ks_init_cluster(&ks, "cs"), 0);
	char e1[CS_KEY_MAX], e2[CS_KEY_MAX], f[CS_KEY_MAX], l[CS_KEY_MAX], p[16];
	for (int i = 0; i < 1000; i++) {
		int pl = snprintf(p, sizeof p, "i%d", i);
		assert_true(cs_ks_entry(&ks, e1, sizeof e1, "w1", 1, p, (size_t)pl) > 0);
		assert_true(cs_ks_entry(&ks, e2, sizeof e2, "w1", 9999, p, (size_t)pl) > 0);
		assert_true(cs_ks_fence(&ks, f, sizeof f, "w1", p, (size_t)pl) > 0);
		assert_true(cs_ks_lease(&ks, l, sizeof l, "w1", p, (size_t)pl) > 0);
		size_t t = strcspn(e1, "}") + 1;
		assert_int_equal(e1[0], '{');
		assert_memory_equal(e1, e2, t);
		assert_memory_equal(e1, f, t);
		assert_memory_equal(e1, l, t);
	}
}

/* 256 buckets spread keys evenly enough: 64k keys, every bucket within 25% of the mean. */
static void cluster_buckets_spread(void **state)
{
	(void)state;
	cs_keyspace ks;
	assert_int_equal(cs_ks_init_cluster(&ks, "cs"), 0);
	static int count[CS_KS_BUCKETS];
	char p[16];
	for (int i = 0; i < 65536; i++) {
		int pl = snprintf(p, sizeof p, "i%d", i);
		count[cs_ks_bucket(&ks, "user_profile", p, (size_t)pl)]++;
	}
	for (int b = 0; b < CS_KS_BUCKETS; b++) {
		assert_true(count[b] > 192);
		assert_true(count[b] < 320);
	}
}

/* Without shards (shard NULL or ""), cs_ks_init_shard is cs_ks_init / cs_ks_init_cluster to
 * the byte: every fixed name, and the same builders give the same keys (SHARDS.md 2). */
static void shard_none_is_unsharded(void **state)
{
	(void)state;
	cs_keyspace a, b, c;
	cs_ks_init(&a, "cs");
	assert_int_equal(cs_ks_init_shard(&b, "cs", NULL, false), 0);
	assert_int_equal(cs_ks_init_shard(&c, "cs", "", false), 0);
	assert_memory_equal(&a, &b, sizeof a);
	assert_memory_equal(&a, &c, sizeof a);
	assert_int_equal(cs_ks_init_cluster(&a, "app"), 0);
	assert_int_equal(cs_ks_init_shard(&b, "app", NULL, true), 0);
	assert_memory_equal(&a, &b, sizeof a);
	assert_string_equal(b.shard, "");
	/* the same refusal as cs_ks_init_cluster */
	assert_int_equal(cs_ks_init_shard(&b, "{app}", NULL, true), -1);
}

/* A shard's keyspace: "<ns>@<shard>" in place of "<ns>" in every key and the channel; the
 * names of two shards, and of a shard and the unsharded deployment, never meet. */
static void shard_names(void **state)
{
	(void)state;
	cs_keyspace ks;
	char b[CS_KEY_MAX];
	assert_int_equal(cs_ks_init_shard(&ks, "cs", "s1", false), 0);
	assert_string_equal(ks.shard, "s1");
	EQ(ks.nslen, ks.ns, "cs@s1");
	EQ(ks.horizon_len, ks.horizon, "cs@s1:horizon");
	EQ(ks.pos_len, ks.pos, "cs@s1:inv:pos");
	EQ(ks.epoch_len, ks.epoch, "cs@s1:epoch");
	EQ(ks.deb_len, ks.deb, "cs@s1:inv:deb");
	EQ(ks.channel_len, ks.channel, "cs@s1:gen");
	EQ(ks.timeline_len, ks.timeline, "cs@s1:inv:timeline");
	EQ(ks.fmax_len, ks.fmax, "cs@s1:fmax");
	EQ(ks.evk_len, ks.evk, "cs@s1:evk");
	EQ(cs_ks_entry(&ks, b, sizeof b, "q", 7, "i42", 3), b, "cs@s1:e:q:7:i42");
	EQ(cs_ks_entry_prefix(&ks, 0, b, sizeof b, "q", 7), b, "cs@s1:e:q:7:");
	EQ(cs_ks_fence(&ks, b, sizeof b, "q", "i42", 3), b, "cs@s1:f:q:i42");
	EQ(cs_ks_lease(&ks, b, sizeof b, "q", "i42", 3), b, "cs@s1:l:q:i42");
	EQ(cs_ks_gen(&ks, b, sizeof b, "q"), b, "cs@s1:g:q");
	EQ(cs_ks_qfence(&ks, b, sizeof b, "q"), b, "cs@s1:qf:q");
	EQ(cs_ks_qdef(&ks, b, sizeof b, "q"), b, "cs@s1:qd:q");
	EQ(cs_ks_gap(&ks, b, sizeof b, "slot"), b, "cs@s1:inv:gap:slot");
	EQ(cs_ks_slotmark(&ks, b, sizeof b, "slot"), b, "cs@s1:inv:slot:slot");
	assert_int_equal(cs_ks_bucket(&ks, "q", "i42", 3), 0);
	/* on a cluster: the shard is inside the tag; the bucket depends on q and p only */
	assert_int_equal(cs_ks_init_shard(&ks, "app", "s2", true), 0);
	assert_int_equal(cs_ks_bucket(&ks, "user_profile", "i42", 3), 165);
	EQ(cs_ks_entry(&ks, b, sizeof b, "user_profile", 3, "i42", 3), b,
	        "{app@s2:165}:e:user_profile:3:i42");
	EQ(cs_ks_fence(&ks, b, sizeof b, "user_profile", "i42", 3), b,
	        "{app@s2:165}:f:user_profile:i42");
	EQ(cs_ks_gen_in(&ks, 165, b, sizeof b, "user_profile"), b, "{app@s2:165}:g:user_profile");
	EQ(cs_ks_fixed_in(&ks, 7, CS_KS_POS, b, sizeof b), b, "{app@s2:7}:inv:pos");
	EQ(ks.epoch_len, ks.epoch, "{app@s2:0}:epoch");
	EQ(ks.channel_len, ks.channel, "app@s2:gen");
	/* bad shard names: '@', ':', braces, empty-ish or too long */
	assert_int_equal(cs_ks_init_shard(&ks, "cs", "a@b", false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, "cs", "a:b", false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, "cs", "{a}", true), -1);
	char name[CS_KS_SHARD_MAX + 2];
	memset(name, 's', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	assert_int_equal(cs_ks_init_shard(&ks, "cs", name, false), -1);
	/* the longest namespace, shard and bucket still fit every bound */
	name[CS_KS_SHARD_MAX] = '\0';
	char ns[CS_NS_MAX + 1], want[CS_KEY_MAX];
	memset(ns, 'n', CS_NS_MAX);
	ns[CS_NS_MAX] = '\0';
	assert_int_equal(cs_ks_init_shard(&ks, ns, name, true), 0);
	snprintf(want, sizeof want, "{%s@%s:0}:inv:slot:%s", ns, name, name);
	EQ(cs_ks_slotmark(&ks, b, sizeof b, name), b, want);
	assert_true(strlen(want) < CS_NAME_MAX);
}

/* A namespace that is not one (too long, empty, '@' or ':' in it) is refused, never cut to
 * fit: two long namespaces truncated to one prefix would share a shard's LSN keys
 * (SHARDS.md section 1). The keyspace is left as it was. */
static void shard_bad_namespace(void **state)
{
	(void)state;
	cs_keyspace ks, before;
	assert_int_equal(cs_ks_init_shard(&ks, "cs", "s1", false), 0);
	memcpy(&before, &ks, sizeof ks);
	char ns[CS_KS_NS_MAX + 8];
	memset(ns, 'n', sizeof ns - 1);
	ns[sizeof ns - 1] = '\0';
	/* longer than the buffer: would have been truncated */
	assert_int_equal(cs_ks_init_shard(&ks, ns, "s1", false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, ns, NULL, false), -1);
	/* one byte over CS_NS_MAX; exactly CS_NS_MAX is fine (shard_names) */
	ns[CS_NS_MAX + 1] = '\0';
	assert_int_equal(cs_ks_init_shard(&ks, ns, "s1", true), -1);
	ns[CS_NS_MAX] = '\0';
	assert_int_equal(cs_ks_init_shard(&ks, ns, "s1", false), 0);
	memcpy(&ks, &before, sizeof ks);
	assert_int_equal(cs_ks_init_shard(&ks, "", "s1", false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, "cs@s1", "s2", false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, "cs@s1", NULL, false), -1);
	assert_int_equal(cs_ks_init_shard(&ks, "a:b", "s1", false), -1);
	assert_memory_equal(&ks, &before, sizeof ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(single_names_unchanged),
	        cmocka_unit_test(cluster_names),
	        cmocka_unit_test(cluster_key_shares_tag),
	        cmocka_unit_test(cluster_buckets_spread),
	        cmocka_unit_test(shard_none_is_unsharded),
	        cmocka_unit_test(shard_names),
	        cmocka_unit_test(shard_bad_namespace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
