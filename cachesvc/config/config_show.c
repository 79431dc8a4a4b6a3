/* config_show.c - "show config": every key with its value, defaults included and secrets
 * masked, walked from the key table (config_int.h); read back by config.c unchanged. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "log.h"

void cs_cfg_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{DAY_MS, "d"}, {HOUR_MS, "h"}, {MIN_MS, "m"}, {SEC_MS, "s"}};
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRId64 "ms", ms);
}

static void format_size(uint64_t b, char *buf, size_t len)
{
	static const struct {
		unsigned shift;
		const char *unit;
	} units[] = {{40, "TB"}, {30, "GB"}, {20, "MB"}, {10, "kB"}};
	for (size_t i = 0; b && i < sizeof(units) / sizeof(units[0]); i++) {
		if ((b & ((1ull << units[i].shift) - 1)) == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", b >> units[i].shift, units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, b);
}

/* Writes an identifier so that parse_ident() reads it back unchanged. */
static void write_ident(FILE *out, const char *id)
{
	bool plain = (islower((unsigned char)id[0]) || id[0] == '_');
	for (const char *p = id; plain && *p; p++)
		plain = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
		        *p == '$';
	if (plain) {
		fputs(id, out);
		return;
	}
	fputc('"', out);
	for (const char *p = id; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

/* Writes a possibly multi-line value; continuation lines are indented. */
static void write_multiline(FILE *out, const char *v)
{
	for (; *v; v++) {
		fputc(*v, out);
		if (*v == '\n')
			fputs("    ", out);
	}
}

static void show_value(FILE *out, const struct key_def *kd, const void *base)
{
	const void *field = cs_cfg_field_const(base, kd);
	char buf[1024];
	switch (kd->type) {
	case KT_STRING: {
		const char *s = *(char *const *)field;
		if (!s)
			return;
		if (kd->flags & KF_SECRET) {
			fputs("***", out);
		} else if (kd->flags & (KF_CONNINFO | KF_URL)) {
			/* masking adds at most 3 bytes per secret of at least 1 byte, plus " ***"
			 */
			size_t len = 4 * strlen(s) + 16;
			char *masked = malloc(len);
			if (!masked) {
				fputs("***", out);
				return;
			}
			if (kd->flags & KF_CONNINFO)
				cs_log_mask_conninfo(s, masked, len);
			else
				cs_log_mask_redis_url(s, masked, len);
			write_multiline(out, masked);
			free(masked);
		} else {
			write_multiline(out, s);
		}
		return;
	}
	case KT_INT:
		fprintf(out, "%d", *(const int *)field);
		return;
	case KT_PERCENT:
		fprintf(out, "%d%%", *(const int *)field);
		return;
	case KT_BOOL:
		fputs(*(const bool *)field ? "true" : "false", out);
		return;
	case KT_DURATION:
		cs_cfg_format_duration(*(const int64_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_SIZE32:
		format_size(*(const uint32_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_SIZE64:
		format_size(*(const uint64_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		return;
	case KT_DOUBLE: {
		double d = *(const double *)field;
		snprintf(buf, sizeof(buf), "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, sizeof(buf), "%.17g", d);
		fputs(buf, out);
		return;
	}
	case KT_KIND:
		fputs(cs_cfg_kind_names[*(const cs_query_kind *)field], out);
		return;
	case KT_TIERS: {
		unsigned set = *(const unsigned *)field;
		const char *sep = "";
		for (int t = 0; t < CS_TIER_COUNT; t++) {
			if (set & (1u << t)) {
				fprintf(out, "%s%s", sep, cs_tier_name((cs_tier)t));
				sep = ", ";
			}
		}
		return;
	}
	case KT_PARAMS: {
		const cs_query_def *q = base;
		for (int i = 0; i < q->nparams; i++)
			fprintf(out, "%s%s:%s", i ? ", " : "", q->params[i].name,
			        cs_param_type_name(q->params[i].type));
		return;
	}
	case KT_INVALIDATE: {
		const cs_query_def *q = base;
		for (int i = 0; i < q->ninval; i++) {
			const cs_inval_rule *r = &q->inval[i];
			if (i)
				fputs(", ", out);
			write_ident(out, r->schema);
			fputc('.', out);
			write_ident(out, r->table);
			if (r->ncols == 0)
				continue;
			fputc('(', out);
			for (int c = 0; c < r->ncols; c++) {
				if (c)
					fputs(", ", out);
				write_ident(out, r->cols[c]);
				fprintf(out, " = $%d", r->param_index[c] + 1);
			}
			fputc(')', out);
		}
		return;
	}
	}
}

/* Calls cb(priv, section, key, value) for every key of one section, values as
 * --show-config prints them (secrets masked). */
typedef void show_cb(void *priv, const char *section, const char *key, const char *value);

static void each_section(enum section_kind kind, const char *name, const void *base, bool sharded,
        show_cb *cb, void *priv)
{
	char sec[160];
	if (name)
		snprintf(sec, sizeof sec, "%s %s", cs_cfg_sections[kind].name, name);
	else
		snprintf(sec, sizeof sec, "%s", cs_cfg_sections[kind].name);
	for (size_t i = 0; i < cs_cfg_nkeys; i++) {
		const struct key_def *kd = &cs_cfg_keys[i];
		if (kd->section != kind || (!sharded && (kd->flags & KF_SHARDING)))
			continue;
		char *val = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&val, &len);
		if (!mem) {
			cb(priv, sec, kd->name, NULL);
			continue;
		}
		show_value(mem, kd, base);
		fclose(mem);
		cb(priv, sec, kd->name, val ? val : "");
		free(val);
	}
}

void cs_config_each(const cs_config *cfg, show_cb *cb, void *priv)
{
	bool sh = cfg->nshards > 0; /* without shards, what it always showed */
	each_section(SEC_SERVICE, NULL, cfg, sh, cb, priv);
	each_section(SEC_REDIS, NULL, cfg, sh, cb, priv);
	if (cfg->primary_conninfo)
		each_section(SEC_PRIMARY, NULL, cfg, sh, cb, priv);
	for (int i = 0; i < cfg->nshards; i++)
		each_section(SEC_SHARD, cfg->shards[i].name, &cfg->shards[i], sh, cb, priv);
	for (int i = 0; i < cfg->nreplicas; i++)
		each_section(SEC_REPLICA, cfg->replicas[i].name, &cfg->replicas[i], sh, cb, priv);
	each_section(SEC_INVALIDATOR, NULL, cfg, sh, cb, priv);
	for (int i = 0; i < cfg->nqueries; i++)
		each_section(SEC_QUERY, cfg->queries[i].name, &cfg->queries[i], sh, cb, priv);
}

struct show_file {
	FILE *out;
	char last[160];
};

static void show_line(void *priv, const char *section, const char *key, const char *value)
{
	struct show_file *sf = priv;
	if (strcmp(sf->last, section) != 0) {
		fprintf(sf->out, "\n[%s]\n", section);
		snprintf(sf->last, sizeof sf->last, "%s", section);
	}
	if (value == NULL)
		fprintf(sf->out, "; %s: out of memory\n", key);
	else if (*value)
		fprintf(sf->out, "%s = %s\n", key, value);
	else
		fprintf(sf->out, "%s =\n", key);
}

void cs_config_show(const cs_config *cfg, FILE *out)
{
	fprintf(out,
	        "; cachesvc configuration loaded from %s (defaults included, secrets masked)\n",
	        cfg->path ? cfg->path : "(none)");
	struct show_file sf = {.out = out};
	cs_config_each(cfg, show_line, &sf);
}
