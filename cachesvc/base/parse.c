/* parse.c - the value grammars that know nothing of the configuration: decimal numbers,
 * ports, durations, sizes, booleans, percentages, doubles (parse.h). Pure. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parses a run of decimal digits into *out; false on no digits or overflow. */
bool cs_parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*sp = s;
	*out = v;
	return true;
}

bool cs_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
	        {"ms", 1},
	        {"s", 1000},
	        {"m", 60000},
	        {"h", 3600000},
	        {"d", 86400000},
	        {"", 1000},
	};
	uint64_t n;
	if (s == NULL || !cs_parse_digits(&s, &n))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) != 0)
			continue;
		if (n > (uint64_t)INT64_MAX / units[i].mult)
			return false;
		*ms = (int64_t)(n * units[i].mult);
		return true;
	}
	return false;
}

bool cs_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {
	        {"", 0},
	        {"B", 0},
	        {"kB", 10},
	        {"KB", 10},
	        {"k", 10},
	        {"K", 10},
	        {"MB", 20},
	        {"M", 20},
	        {"GB", 30},
	        {"G", 30},
	        {"TB", 40},
	        {"T", 40},
	};
	uint64_t n;
	if (s == NULL || !cs_parse_digits(&s, &n))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].unit) != 0)
			continue;
		if (n > (UINT64_MAX >> units[i].shift))
			return false;
		*bytes = n << units[i].shift;
		return true;
	}
	return false;
}

bool cs_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool cs_parse_int64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	uint64_t v;
	if (neg || *s == '+')
		s++;
	if (!cs_parse_digits(&s, &v) || *s != '\0' || v > (uint64_t)INT64_MAX)
		return false;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

bool cs_parse_percent(const char *s, int64_t *out)
{
	uint64_t v;
	if (!cs_parse_digits(&s, &v) || (strcmp(s, "%") != 0 && *s != '\0') || v > INT64_MAX)
		return false;
	*out = (int64_t)v;
	return true;
}

bool cs_parse_double(const char *s, double *out)
{
	char *end;
	if (!(isdigit((unsigned char)*s) || *s == '.'))
		return false;
	errno = 0;
	double d = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d))
		return false;
	*out = d;
	return true;
}

bool cs_parse_port(const char *s, int *port)
{
	uint64_t n;
	if (!cs_parse_digits(&s, &n) || *s != '\0' || n < 1 || n > 65535)
		return false;
	*port = (int)n;
	return true;
}
