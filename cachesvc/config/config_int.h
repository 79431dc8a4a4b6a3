/* config_int.h - what the config_*.c files share, private to them: the key table's types
 * and the table itself (config.c), and the helpers one file defines for another.
 *
 * The configuration is one concern split by grammar: config.c (the key table, loading,
 * defaults, cross-key checks, reload), config_ini.c (the INI reader), config_value.c (a
 * value of each key type, and the checks of string keys), config_invalidate_on.c (the
 * invalidate_on grammar),
 * config_show.c ("show config"). Pure helpers with users outside the configuration have
 * their own headers: parse.h (numbers, durations, sizes: base/), sql_placeholders.h,
 * redis_url.h, log.h (masking secrets). Not installed, not for other modules. */
#ifndef CS_CONFIG_INT_H
#define CS_CONFIG_INT_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* PostgreSQL identifiers (NAMEDATALEN - 1). */
#define CS_CFG_MAX_PG_IDENT 63

#define SEC_MS  ((int64_t)1000)
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

/* ------------------------------------------------------------------------------------------
 * The key table (config.c)
 * ---------------------------------------------------------------------------------------- */

enum section_kind {
	SEC_SERVICE,     /* [cachesvc] */
	SEC_REDIS,       /* [redis] */
	SEC_PRIMARY,     /* [primary] */
	SEC_REPLICA,     /* [replica NAME], many */
	SEC_QUERY,       /* [query NAME], many */
	SEC_INVALIDATOR, /* [invalidator] */
	SEC_SHARD,       /* [shard NAME], many (SHARDS.md) */
	SEC__COUNT
};

struct section_def {
	const char *name;
	bool named; /* "[replica NAME]": many instances, each named */
};
extern const struct section_def cs_cfg_sections[SEC__COUNT];

enum key_type {
	KT_STRING,     /* char *, strdup'ed */
	KT_INT,        /* int */
	KT_BOOL,       /* bool */
	KT_DURATION,   /* int64_t milliseconds */
	KT_SIZE32,     /* uint32_t bytes */
	KT_SIZE64,     /* uint64_t bytes */
	KT_PERCENT,    /* int 0..100 */
	KT_DOUBLE,     /* double */
	KT_KIND,       /* cs_query_kind */
	KT_TIERS,      /* unsigned tier bit set */
	KT_PARAMS,     /* cs_query_def.nparams + params[] */
	KT_INVALIDATE, /* cs_query_def.ninval + inval[]; parsed after params */
};

#define KF_RELOAD   0x01 /* may change on SIGHUP */
#define KF_REQUIRED 0x02 /* no default: the section must set it */
#define KF_NULLABLE 0x04 /* an empty value means "unset" (NULL) */
#define KF_SECRET   0x08 /* shown as *** */
#define KF_CONNINFO 0x10 /* libpq conninfo: checked with libpq, passwords masked when shown */
#define KF_URL      0x20 /* redis URL: passwords masked when shown */
#define KF_SHARDING 0x40 /* shown only when the config has [shard NAME] sections, so that
                          * "show config" of an unsharded config is what it always was */

/* Checks a string value beyond its type; writes the reason into why on failure. */
typedef bool (*value_check_fn)(const char *value, char *why, size_t whylen);

struct key_def {
	enum section_kind section;
	const char *name;
	enum key_type type;
	size_t offset;   /* into cs_config, cs_replica_def or cs_query_def (by section) */
	const char *def; /* default as text, parsed like a file value; NULL = unset */
	/* [query] keys whose default depends on kind; "$ttl" and "$ttl+swr" are derived */
	const char *kind_def[3];
	unsigned flags;
	int64_t min, max; /* range of int, duration, size, percent and double values */
	value_check_fn check;
	const char *doc;
};

/* Every key of every section, in the order they are parsed and shown. */
extern const struct key_def cs_cfg_keys[];
extern const size_t cs_cfg_nkeys;

/* "row", "list", "aggregate", indexed by cs_query_kind. */
extern const char *const cs_cfg_kind_names[3];

static inline void *cs_cfg_field(void *base, const struct key_def *kd)
{
	return (char *)base + kd->offset;
}

static inline const void *cs_cfg_field_const(const void *base, const struct key_def *kd)
{
	return (const char *)base + kd->offset;
}

/* Writes `v` into out as a quoted, escaped, shortened literal for error messages; returns
 * out (config.c). */
const char *cs_cfg_quote(const char *v, char *out, size_t outlen);

static inline const char *cs_cfg_skip_space(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

/* ------------------------------------------------------------------------------------------
 * The INI reader (config_ini.c; its opening comment gives the grammar)
 * ---------------------------------------------------------------------------------------- */

/* Longest line accepted, in bytes without its '\n'. */
#define CS_INI_MAX_LINE 65533

enum cs_ini_result {
	CS_INI_OK,        /* every line read */
	CS_INI_STOPPED,   /* a handler returned false */
	CS_INI_SYNTAX,    /* a line that is no header, key line, continuation or comment */
	CS_INI_LONG_LINE, /* a line longer than CS_INI_MAX_LINE */
	CS_INI_NOMEM,     /* out of memory */
};

/* The calls of one parse, in line order. Strings are NUL-terminated, trimmed as the
 * grammar says, and valid only during the call. Returning false stops the parse. */
typedef struct cs_ini_handler {
	/* "[text]": text is what lies between the brackets, untrimmed. */
	bool (*section)(void *priv, int lineno, const char *text, size_t len);
	/* "name = value": name may be empty ("= value"). */
	bool (*key)(void *priv, int lineno, const char *name, const char *value);
	/* An indented line after a key line: more of that key's value. */
	bool (*continuation)(void *priv, int lineno, const char *value);
} cs_ini_handler;

/* Parses text[0..len) (no NUL bytes in it). Returns CS_INI_OK, or stops at the first line
 * that is not and returns why, with that line in *err_line (1-based). */
enum cs_ini_result cs_ini_parse(
        const char *text, size_t len, const cs_ini_handler *h, void *priv, int *err_line);

/* ------------------------------------------------------------------------------------------
 * Value parsers and checks (config_value.c)
 * ---------------------------------------------------------------------------------------- */

/* Parses `v` as kd's type into base + kd->offset (base: the cs_config, cs_replica_def or
 * cs_query_def of kd's section), replacing what the field held. False with the reason in
 * why. */
bool cs_cfg_parse_value(
        const struct key_def *kd, const char *v, void *base, char *why, size_t whylen);
/* Copies s[0..n) into out (size outlen) with runs of whitespace collapsed and the ends
 * trimmed. Returns false when it does not fit. */
bool cs_cfg_copy_collapsed(const char *s, size_t n, char *out, size_t outlen);
/* "id:int8, name:text" -> q->params. False with the reason in why. */
bool cs_cfg_parse_params(const char *v, cs_query_def *q, char *why, size_t whylen);

/* The value_check_fn of the string keys (why: the reason on failure). */
bool cs_cfg_check_host_port(const char *v, char *why, size_t whylen);
bool cs_cfg_check_unix_path(const char *v, char *why, size_t whylen);
bool cs_cfg_check_log_level(const char *v, char *why, size_t whylen);
bool cs_cfg_check_log_format(const char *v, char *why, size_t whylen);
bool cs_cfg_check_redis_url(const char *v, char *why, size_t whylen);
bool cs_cfg_check_redis_nodes(const char *v, char *why, size_t whylen);
bool cs_cfg_check_namespace(const char *v, char *why, size_t whylen);
bool cs_cfg_check_conninfo(const char *v, char *why, size_t whylen);
bool cs_cfg_check_slot_name(const char *v, char *why, size_t whylen);
bool cs_cfg_check_publication(const char *v, char *why, size_t whylen);
bool cs_cfg_check_sql(const char *v, char *why, size_t whylen);
bool cs_cfg_check_shard_map(const char *v, char *why, size_t whylen);

/* ------------------------------------------------------------------------------------------
 * invalidate_on (config_invalidate_on.c)
 * ---------------------------------------------------------------------------------------- */

/* Parses the invalidate_on value into q->inval (after q->params: clauses bind $N). Replaces
 * what q held. False with the reason in why; q->inval may then hold a partial parse, which
 * cs_cfg_inval_free releases. */
bool cs_cfg_parse_invalidate_on(const char *v, cs_query_def *q, char *why, size_t whylen);
/* Frees q->inval[] and sets q->ninval = 0. */
void cs_cfg_inval_free(cs_query_def *q);

/* ------------------------------------------------------------------------------------------
 * Show (config_show.c)
 * ---------------------------------------------------------------------------------------- */

/* "0", "250ms", "30s", "10m", "1h", "2d": the largest unit that divides ms. */
void cs_cfg_format_duration(int64_t ms, char *buf, size_t len);

#endif
