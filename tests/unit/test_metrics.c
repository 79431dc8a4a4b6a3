/* test_metrics.c - the Prometheus text writer: one HELP/TYPE per family, samples grouped
 * whatever order they were added in, escaping, exact integers, states, histograms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static char *finish(cs_metrics *m)
{
	char *out = NULL;
	long n = cs_metrics_finish(m, &out);
	assert_true(n >= 0);
	assert_non_null(out);
	assert_int_equal((size_t)n, strlen(out));
	return out;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void grouped(void **state)
{
	cs_metrics *m = cs_metrics_new();
	/* Per-server samples interleaved, as a loop over servers writes them. */
	const char *servers[] = { "r1", "r2", "primary" };
	for (int i = 0; i < 3; i++) {
		cs_m(m, CS_M_GAUGE, "x_up", "Up", 1, "server", servers[i], NULL);
		cs_m(m, CS_M_COUNTER, "x_errors_total", "Errors", i, "server", servers[i], NULL);
	}
	cs_m(m, CS_M_GAUGE, "x_plain", "No labels", 2.5, NULL);
	assert_int_equal(cs_metrics_mismatches(m), 0);
	char *out = finish(m);
	assert_string_equal(out,
		"# HELP x_up Up\n# TYPE x_up gauge\n"
		"x_up{server=\"r1\"} 1\nx_up{server=\"r2\"} 1\nx_up{server=\"primary\"} 1\n"
		"# HELP x_errors_total Errors\n# TYPE x_errors_total counter\n"
		"x_errors_total{server=\"r1\"} 0\nx_errors_total{server=\"r2\"} 1\n"
		"x_errors_total{server=\"primary\"} 2\n"
		"# HELP x_plain No labels\n# TYPE x_plain gauge\nx_plain 2.5\n");
	free(out);
}

static void escaping_and_values(void **state)
{
	cs_metrics *m = cs_metrics_new();
	cs_m(m, CS_M_GAUGE, "x_q", "A \\ help\nline", 1, "query", "a\"b\\c\nd", "k", NULL, NULL);
	cs_m_u64(m, CS_M_COUNTER, "x_big_total", "Big", UINT64_C(18446744073709551615), NULL);
	cs_m(m, CS_M_GAUGE, "x_f", "Float", 0.1, NULL);
	cs_m(m, CS_M_GAUGE, "x_i", "Exact", 9007199254740991.0, NULL);
	cs_m(m, CS_M_GAUGE, "x_neg", "Negative", -3, NULL);
	char *out = finish(m);
	assert_non_null(strstr(out, "# HELP x_q A \\\\ help\\nline\n"));
	assert_non_null(strstr(out, "x_q{query=\"a\\\"b\\\\c\\nd\",k=\"\"} 1\n"));
	assert_non_null(strstr(out, "x_big_total 18446744073709551615\n"));
	assert_non_null(strstr(out, "x_f 0.10000000000000001\n"));
	assert_non_null(strstr(out, "x_i 9007199254740991\n"));
	assert_non_null(strstr(out, "x_neg -3\n"));
	free(out);
}

static void type_mismatch(void **state)
{
	cs_metrics *m = cs_metrics_new();
	cs_m(m, CS_M_GAUGE, "x_a", "A", 1, NULL);
	cs_m(m, CS_M_COUNTER, "x_a", "A", 2, NULL); /* dropped and counted */
	assert_int_equal(cs_metrics_mismatches(m), 1);
	char *out = finish(m);
	assert_int_equal(count(out, "\nx_a "), 1);
	assert_int_equal(count(out, "# TYPE x_a"), 1);
	free(out);
}

static void states_and_histograms(void **state)
{
	cs_metrics *m = cs_metrics_new();
	static const char *const st[] = { "starting", "streaming", "standby", NULL };
	cs_m_state(m, "x_state", "State", "state", st, "streaming", "slot", "s1", NULL);
	cs_hist h;
	cs_hist_init(&h);
	cs_hist_record(&h, 1500);
	cs_m_hist(m, "x_lat_seconds", "Latency", &h, "kind", "hit", NULL);
	cs_m_hist(m, "x_lat_seconds", "Latency", &h, "kind", "miss", NULL);
	char *out = finish(m);
	assert_non_null(strstr(out, "x_state{slot=\"s1\",state=\"starting\"} 0\n"
				    "x_state{slot=\"s1\",state=\"streaming\"} 1\n"
				    "x_state{slot=\"s1\",state=\"standby\"} 0\n"));
	assert_int_equal(count(out, "# TYPE x_lat_seconds histogram\n"), 1);
	assert_non_null(strstr(out, "x_lat_seconds_bucket{kind=\"hit\",le=\"+Inf\"} 1\n"));
	assert_non_null(strstr(out, "x_lat_seconds_count{kind=\"miss\"} 1\n"));
	assert_non_null(strstr(out, "x_lat_seconds_sum{kind=\"hit\"} 0.001500\n"));
	/* The two label sets stay in one group: every hit line comes before the miss lines. */
	assert_true(strstr(out, "kind=\"hit\"") < strstr(out, "kind=\"miss\""));
	assert_null(strstr(strstr(out, "kind=\"miss\""), "kind=\"hit\""));
	free(out);
}

static void process(void **state)
{
	cs_metrics *m = cs_metrics_new();
	cs_m_process(m);
	cs_m_build_info(m, "1.2.3");
	char *out = finish(m);
	assert_non_null(strstr(out, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
	assert_non_null(strstr(out, "# TYPE process_resident_memory_bytes gauge\n"));
	assert_non_null(strstr(out, "# TYPE process_open_fds gauge\nprocess_open_fds "));
	assert_non_null(strstr(out, "# TYPE process_max_fds gauge\n"));
	const char *st = strstr(out, "\nprocess_start_time_seconds ");
	assert_non_null(st);
	double start = strtod(st + 28, NULL);
	assert_true(start > 1.6e9 && start < 4.0e9); /* a plausible Unix time */
	const char *fds = strstr(out, "\nprocess_open_fds ");
	assert_true(atoi(fds + 18) >= 3); /* stdin, stdout, stderr at least */
	assert_non_null(strstr(out, "cachesvc_build_info{version=\"1.2.3\"} 1\n"));
	free(out);
}

static void summaries(void **state)
{
	cs_metrics *m = cs_metrics_new();
	cs_m_summary(m, "x_wait_seconds", "Wait", 1.5, 3, "server", "a", NULL);
	cs_m(m, CS_M_GAUGE, "x_other", "Other", 1, NULL);
	cs_m_summary(m, "x_wait_seconds", "Wait", 0, 0, "server", "b", NULL);
	cs_m_summary(m, "x_plain_seconds", "Plain", 0.25, 1, NULL);
	char *out = finish(m);
	assert_non_null(strstr(out, "# HELP x_wait_seconds Wait\n# TYPE x_wait_seconds summary\n"
				    "x_wait_seconds_sum{server=\"a\"} 1.5\n"
				    "x_wait_seconds_count{server=\"a\"} 3\n"
				    "x_wait_seconds_sum{server=\"b\"} 0\n"
				    "x_wait_seconds_count{server=\"b\"} 0\n"));
	assert_non_null(strstr(out, "# TYPE x_plain_seconds summary\n"
				    "x_plain_seconds_sum 0.25\nx_plain_seconds_count 1\n"));
	free(out);
}

/* cs_metrics_scope: a label before every sample's own, of every kind, until cleared; no scope,
 * the samples of before (an unsharded /metrics unchanged) */
static void scoped(void **state)
{
	(void)state;
	cs_metrics *m = cs_metrics_new();
	const char *const st[] = {"a", "b", NULL};
	cs_m(m, CS_M_GAUGE, "x_g", "G", 1, NULL);
	cs_metrics_scope(m, "shard", "s\"1");
	cs_m(m, CS_M_GAUGE, "x_g", "G", 2, NULL);
	cs_m_u64(m, CS_M_COUNTER, "x_c_total", "C", 3, "reason", "r", NULL);
	cs_m_state(m, "x_s", "S", "state", st, "b", NULL);
	cs_m_summary(m, "x_w_seconds", "W", 1, 1, NULL);
	cs_metrics_scope(m, NULL, NULL);
	cs_m(m, CS_M_GAUGE, "x_g", "G", 4, NULL);
	char *out = finish(m);
	assert_non_null(strstr(out, "x_g 1\nx_g{shard=\"s\\\"1\"} 2\nx_g 4\n"));
	assert_non_null(strstr(out, "x_c_total{shard=\"s\\\"1\",reason=\"r\"} 3\n"));
	assert_non_null(strstr(out, "x_s{shard=\"s\\\"1\",state=\"a\"} 0\n"));
	assert_non_null(strstr(out, "x_w_seconds_count{shard=\"s\\\"1\"} 1\n"));
	free(out);
}

static void empty(void **state)
{
	char *out = finish(cs_metrics_new());
	assert_string_equal(out, "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(grouped),
	        cmocka_unit_test(escaping_and_values),
	        cmocka_unit_test(type_mismatch),
	        cmocka_unit_test(states_and_histograms),
	        cmocka_unit_test(process),
	        cmocka_unit_test(summaries),
	        cmocka_unit_test(empty),
	        cmocka_unit_test(scoped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
