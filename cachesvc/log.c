/* log.c - leveled logging to stderr, one write(2) per line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static cs_log_level min_level = CS_LOG_INFO;

static const char *const level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR" };

void cs_log_set_level(cs_log_level level)
{
	min_level = level;
}

cs_log_level cs_log_get_level(void)
{
	return min_level;
}

bool cs_log_parse_level(const char *s, cs_log_level *out)
{
	static const char *const names[] = { "debug", "info", "warning", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (cs_log_level)i;
			return true;
		}
	}
	return false;
}

void cs_log(cs_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %s ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		(int)(tv.tv_usec / 1000), (int)getpid(), level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2; /* truncated: keep the newline */
	line[len++] = '\n';
	/* stderr is the operator's log; a short write is not worth more than one retry. */
	ssize_t w = write(STDERR_FILENO, line, len);
	if (w > 0 && (size_t)w < len)
		(void)!write(STDERR_FILENO, line + w, len - (size_t)w);
}
