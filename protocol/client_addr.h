/* client_addr.h - the address a client connects to, shared by the blocking client (client.c)
 * and the asynchronous one (aclient.c). Internal: not installed. */
#ifndef CS_CLIENT_ADDR_H
#define CS_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cachesvc-client.h"

/* Fills *ss and *len from the options: the unix socket path when set, else a numeric IPv4 or
 * IPv6 host (default 127.0.0.1; no DNS lookups) and port (default CS_CLIENT_DEFAULT_PORT);
 * where (may be NULL) gets "PATH" or "HOST port N" for messages. Returns 0, or -1 with the
 * reason in why (the caller reports it as CS_CLIENT_E_ARG). Never blocks. */
int cs_client_addr(const cs_client_options *o, struct sockaddr_storage *ss, socklen_t *len,
        char *where, size_t wherelen, char *why, size_t whylen);

/* The shard of a request's read-your-writes token (req->shard, NULL or "" for none) into
 * g->shard/shard_len. Returns false when it breaks CS_CLIENT_SHARD_RULE (then the caller
 * fails the request with CS_CLIENT_E_ARG, the rule as its message). Shared by client.c and
 * aclient.c (defined in client.c). */
struct cs_get_req;
#define CS_CLIENT_SHARD_RULE                                                                       \
	"a token's shard is 1..64 bytes of A-Z a-z 0-9 _ . - and needs a nonzero min_lsn"
bool cs_client_shard_in(const cs_client_request *req, struct cs_get_req *g);

#endif
