/* client_addr.h - the address a client connects to, shared by the blocking client (client.c)
 * and the asynchronous one (aclient.c). Internal: not installed. */
#ifndef CS_CLIENT_ADDR_H
#define CS_CLIENT_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "cachesvc-client.h"

/* Fills *ss and *len from the options: the unix socket path when set, else a numeric IPv4 or
 * IPv6 host (default 127.0.0.1; no DNS lookups) and port (default CS_CLIENT_DEFAULT_PORT);
 * where (may be NULL) gets "PATH" or "HOST port N" for messages. Returns 0, or -1 with the
 * reason in why (the caller reports it as CS_CLIENT_E_ARG). Never blocks. */
int cs_client_addr(const cs_client_options *o, struct sockaddr_storage *ss, socklen_t *len,
        char *where, size_t wherelen, char *why, size_t whylen);

#endif
