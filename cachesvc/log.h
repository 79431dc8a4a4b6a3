/* log.h - leveled logging to stderr, one line per call, never a secret in it. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdbool.h>

typedef enum cs_log_level {
	CS_LOG_DEBUG = 0, /* per-request detail: off in production */
	CS_LOG_INFO,	  /* lifecycle: start, connect, reload, slot events */
	CS_LOG_WARNING,	  /* degraded but serving: a replica banned, Redis down */
	CS_LOG_ERROR,	  /* an operation failed and was given up */
} cs_log_level;

void cs_log_set_level(cs_log_level level);
cs_log_level cs_log_get_level(void);
/* Parses "debug" | "info" | "warning" | "error". */
bool cs_log_parse_level(const char *s, cs_log_level *out);

/* Formats one line ("2026-11-21 04:40:00.123 [pid] WARNING msg") and writes it with a
 * single write(2), so lines from several processes do not interleave. Callers never pass
 * passwords: conninfo strings go through cs_config_mask_conninfo first. */
void cs_log(cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cs_debug(...)                                                                      \
	do {                                                                               \
		if (cs_log_get_level() <= CS_LOG_DEBUG)                                    \
			cs_log(CS_LOG_DEBUG, __VA_ARGS__);                                 \
	} while (0)
#define cs_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_warn(...)  cs_log(CS_LOG_WARNING, __VA_ARGS__)
#define cs_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)

#endif
