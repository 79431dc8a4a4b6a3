/* metrics.c - the Prometheus text writer (see metrics.h). */
#include "metrics.h"
#include "sbuf.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct family {
	char *name;
	const char *help; /* static strings: every caller passes a literal */
	cs_mtype type;
	cs_sb samples;
} family;

struct cs_metrics {
	family *fam;
	int n, cap;
	uint64_t mismatches;
	bool failed;
	const char *scope_k, *scope_v; /* cs_metrics_scope: a label before every sample's */
};

cs_metrics *cs_metrics_new(void)
{
	return calloc(1, sizeof(cs_metrics));
}

uint64_t cs_metrics_mismatches(const cs_metrics *m)
{
	return m->mismatches;
}

/* The family called name, declared now if new; NULL when the type disagrees or no memory. */
static family *family_of(cs_metrics *m, cs_mtype type, const char *name, const char *help)
{
	for (int i = m->n - 1; i >= 0; i--) { /* samples of one family usually come together */
		if (strcmp(m->fam[i].name, name) == 0) {
			if (m->fam[i].type != type) {
				m->mismatches++;
				return NULL;
			}
			return &m->fam[i];
		}
	}
	if (m->n == m->cap) {
		int cap = m->cap ? m->cap * 2 : 64;
		family *nf = realloc(m->fam, (size_t)cap * sizeof *nf);
		if (nf == NULL) {
			m->failed = true;
			return NULL;
		}
		m->fam = nf;
		m->cap = cap;
	}
	family *f = &m->fam[m->n];
	*f = (family){ .name = strdup(name), .help = help, .type = type };
	if (f->name == NULL) {
		m->failed = true;
		return NULL;
	}
	m->n++;
	return f;
}

/* Label value escaping of the text format: backslash, double quote and newline. */
static void put_label_value(cs_sb *s, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\')
			cs_sb_put(s, "\\\\", 2);
		else if (*p == '"')
			cs_sb_put(s, "\\\"", 2);
		else if (*p == '\n')
			cs_sb_put(s, "\\n", 2);
		else
			cs_sb_put(s, p, 1);
	}
}

void cs_metrics_scope(cs_metrics *m, const char *key, const char *value)
{
	m->scope_k = key;
	m->scope_v = key ? value : NULL;
}

/* Writes k1="v1",k2="v2" from m's scope label and the NULL-ended pairs in ap; true when there
 * was any. */
static bool put_labels(const cs_metrics *m, cs_sb *s, va_list ap)
{
	bool any = false;
	if (m->scope_k) {
		cs_sb_str(s, m->scope_k);
		cs_sb_put(s, "=\"", 2);
		put_label_value(s, m->scope_v ? m->scope_v : "");
		cs_sb_put(s, "\"", 1);
		any = true;
	}
	const char *k;
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		if (any)
			cs_sb_put(s, ",", 1);
		cs_sb_str(s, k);
		cs_sb_put(s, "=\"", 2);
		put_label_value(s, v ? v : "");
		cs_sb_put(s, "\"", 1);
		any = true;
	}
	return any;
}

/* Writes name, suffix and {labels} (no braces when there are no labels). */
static void put_series(cs_sb *s, const char *name, const char *suffix, const cs_sb *labels)
{
	cs_sb_str(s, name);
	cs_sb_str(s, suffix);
	if (labels->len > 0) {
		cs_sb_put(s, "{", 1);
		cs_sb_put(s, labels->p, labels->len);
		cs_sb_put(s, "}", 1);
	}
	if (labels->failed)
		s->failed = true;
}

static void sample_head(const cs_metrics *m, cs_sb *s, const char *name, va_list ap)
{
	cs_sb l = CS_SB_INIT;
	(void)put_labels(m, &l, ap);
	put_series(s, name, "", &l);
	cs_sb_free(&l);
}

/* Declares the sample's family and writes its name and labels (from ap): the family, or NULL
 * when it refused the sample (type mismatch, no memory). */
static family *sample_begin(cs_metrics *m, cs_mtype type, const char *name, const char *help,
	va_list ap)
{
	family *f = family_of(m, type, name, help);
	if (f != NULL)
		sample_head(m, &f->samples, name, ap);
	return f;
}

void cs_m(cs_metrics *m, cs_mtype type, const char *name, const char *help, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	family *f = sample_begin(m, type, name, help, ap);
	va_end(ap);
	if (f == NULL)
		return;
	if (v != v)
		cs_sb_str(&f->samples, " NaN\n");
	else if (v == (double)(int64_t)v && v < 9007199254740992.0 && v > -9007199254740992.0)
		cs_sb_printf(&f->samples, " %lld\n", (long long)v);
	else
		cs_sb_printf(&f->samples, " %.17g\n", v);
}

void cs_m_u64(cs_metrics *m, cs_mtype type, const char *name, const char *help, uint64_t v, ...)
{
	va_list ap;
	va_start(ap, v);
	family *f = sample_begin(m, type, name, help, ap);
	va_end(ap);
	if (f != NULL)
		cs_sb_printf(&f->samples, " %llu\n", (unsigned long long)v);
}

void cs_m_quantiles(cs_metrics *m, const char *name, const char *help, const cs_hist *h)
{
	static const char *const qn[] = { "0.5", "0.9", "0.99", "0.999" };
	static const double qv[] = { 0.5, 0.9, 0.99, 0.999 };
	for (size_t i = 0; i < sizeof qv / sizeof qv[0]; i++)
		cs_m(m, CS_M_GAUGE, name, help, (double)cs_hist_quantile(h, qv[i]) / 1e6, "q", qn[i],
			NULL);
}

void cs_m_hist(cs_metrics *m, const char *name, const char *help, const cs_hist *h, ...)
{
	family *f = family_of(m, CS_M_HISTOGRAM, name, help);
	if (f == NULL)
		return;
	cs_sb l = CS_SB_INIT;
	va_list ap;
	va_start(ap, h);
	(void)put_labels(m, &l, ap);
	va_end(ap);
	size_t need = 8192 + 40 * (l.len + 1);
	char *buf = malloc(need);
	if (buf == NULL || l.failed) {
		f->samples.failed = true;
	} else {
		size_t n = cs_hist_prometheus(h, name, l.p ? l.p : "", buf, need);
		if (n < need)
			cs_sb_put(&f->samples, buf, n);
		else
			f->samples.failed = true;
	}
	free(buf);
	cs_sb_free(&l);
}

void cs_m_summary(cs_metrics *m, const char *name, const char *help, double sum, uint64_t count,
	...)
{
	family *f = family_of(m, CS_M_SUMMARY, name, help);
	if (f == NULL)
		return;
	cs_sb l = CS_SB_INIT;
	va_list ap;
	va_start(ap, count);
	(void)put_labels(m, &l, ap);
	va_end(ap);
	put_series(&f->samples, name, "_sum", &l);
	cs_sb_printf(&f->samples, " %.17g\n", sum);
	put_series(&f->samples, name, "_count", &l);
	cs_sb_printf(&f->samples, " %llu\n", (unsigned long long)count);
	cs_sb_free(&l);
}

void cs_m_state(cs_metrics *m, const char *name, const char *help, const char *label,
	const char *const *states, const char *current, ...)
{
	family *f = family_of(m, CS_M_GAUGE, name, help);
	if (f == NULL)
		return;
	cs_sb l = CS_SB_INIT;
	va_list ap;
	va_start(ap, current);
	bool any = put_labels(m, &l, ap);
	va_end(ap);
	for (int i = 0; states[i]; i++) {
		cs_sb_str(&f->samples, name);
		cs_sb_put(&f->samples, "{", 1);
		if (any) {
			cs_sb_put(&f->samples, l.p, l.len);
			cs_sb_put(&f->samples, ",", 1);
		}
		cs_sb_str(&f->samples, label);
		cs_sb_put(&f->samples, "=\"", 2);
		put_label_value(&f->samples, states[i]);
		cs_sb_printf(&f->samples, "\"} %d\n", current && strcmp(states[i], current) == 0);
	}
	if (l.failed)
		f->samples.failed = true;
	cs_sb_free(&l);
}

/* Seconds since the epoch at which this process started: boot time + its start in ticks. */
static double process_start_time(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Field 22 (starttime); the command (field 2) may hold spaces: count after its ')'. */
	const char *p = strrchr(buf, ')');
	unsigned long long start = 0;
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return -1;
	f = fopen("/proc/stat", "r");
	if (f == NULL)
		return -1;
	unsigned long long btime = 0;
	char line[256];
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	return btime && hz > 0 ? (double)btime + (double)start / (double)hz : -1;
}

void cs_m_process(cs_metrics *m)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cs_m(m, CS_M_COUNTER, "process_cpu_seconds_total",
			"Total user and system CPU time spent in seconds.",
			(double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
				((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6,
			NULL);
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &rss) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			cs_m(m, CS_M_GAUGE, "process_virtual_memory_bytes",
				"Virtual memory size in bytes.", (double)size * page, NULL);
			cs_m(m, CS_M_GAUGE, "process_resident_memory_bytes",
				"Resident memory size in bytes.", (double)rss * page, NULL);
		}
		fclose(f);
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		int n = -1; /* the directory's own descriptor is listed too */
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		cs_m(m, CS_M_GAUGE, "process_open_fds", "Number of open file descriptors.", n, NULL);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		cs_m(m, CS_M_GAUGE, "process_max_fds", "Maximum number of open file descriptors.",
			rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur, NULL);
	double start = process_start_time();
	if (start > 0)
		cs_m(m, CS_M_GAUGE, "process_start_time_seconds",
			"Start time of the process since unix epoch in seconds.", start, NULL);
}

void cs_m_build_info(cs_metrics *m, const char *version)
{
	cs_m(m, CS_M_GAUGE, "cachesvc_build_info",
		"A metric with a constant 1 labelled by the version cachesvc was built from.", 1,
		"version", version, NULL);
}

/* HELP text escaping: backslash and newline. */
static void put_help(cs_sb *s, const char *h)
{
	for (const char *p = h; *p; p++) {
		if (*p == '\\')
			cs_sb_put(s, "\\\\", 2);
		else if (*p == '\n')
			cs_sb_put(s, "\\n", 2);
		else
			cs_sb_put(s, p, 1);
	}
}

long cs_metrics_finish(cs_metrics *m, char **out)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram", "summary" };
	cs_sb s = CS_SB_INIT;
	bool failed = m->failed;
	for (int i = 0; i < m->n; i++) {
		family *f = &m->fam[i];
		failed |= f->samples.failed;
		cs_sb_printf(&s, "# HELP %s ", f->name);
		put_help(&s, f->help ? f->help : "");
		cs_sb_printf(&s, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
		if (f->samples.p)
			cs_sb_put(&s, f->samples.p, f->samples.len);
		free(f->name);
		cs_sb_free(&f->samples);
	}
	free(m->fam);
	free(m);
	size_t len = s.len;
	if (failed)
		cs_sb_free(&s);
	*out = failed ? NULL : cs_sb_take(&s); /* "" when nothing was added */
	return *out ? (long)len : -1;
}
