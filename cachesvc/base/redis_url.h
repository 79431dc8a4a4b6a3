/* redis_url.h - the [redis] url, parsed (redis_url.c): what the Redis client connects to.
 * Pure; no I/O. */
#ifndef CS_REDIS_URL_H
#define CS_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cs_redis_url {
	char host[256];                   /* "" for unix:// */
	int port;                         /* 6379 unless given */
	char unix_path[108];              /* "" for redis:// */
	int db;                           /* 0 unless given */
	char username[128];               /* "" = none (AUTH <password>) */
	char password[256];               /* "" = none; percent-decoded. Secret: never log */
} cs_redis_url;

/* Parses redis://[[user]:password@]host[:port][/db] or
 * unix://[[user]:password@]/path[?db=N] (a bare "secret@" is a password). Returns false
 * with a reason (never containing the password) in why. Clear *out after use: it holds the
 * password. */
bool cs_redis_url_parse(const char *url, cs_redis_url *out, char *why, size_t whylen);

#endif
