/* client_addr.c - see client_addr.h. */
#include "client_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int cs_client_addr(const cs_client_options *o, struct sockaddr_storage *ss, socklen_t *len,
        char *where, size_t wherelen, char *why, size_t whylen)
{
	memset(ss, 0, sizeof *ss);
	if (o->unix_path != NULL) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		size_t n = strlen(o->unix_path);
		if (n == 0 || n >= sizeof un->sun_path) {
			snprintf(why, whylen, "unix socket path too long or empty");
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, o->unix_path, n + 1);
		*len = (socklen_t)sizeof *un;
		if (where)
			snprintf(where, wherelen, "%s", o->unix_path);
		return 0;
	}
	const char *host = o->host ? o->host : "127.0.0.1";
	uint16_t port = o->port ? o->port : CS_CLIENT_DEFAULT_PORT;
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = (socklen_t)sizeof *in4;
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = (socklen_t)sizeof *in6;
	} else {
		snprintf(why, whylen, "host \"%s\" is not a numeric IP address (no DNS lookups)", host);
		return -1;
	}
	if (where)
		snprintf(where, wherelen, "%s port %u", host, port);
	return 0;
}
