/* cs_hostile.c - test tool: clients that misbehave on purpose, over raw sockets, so the
 * robustness tests (issue 14) can check what the daemon does to them. Prints one JSON line.
 *
 *   cs_hostile [-h host] -p port flood N HOLD_MS
 *       opens N connections one after another, sends a PING on each, waits up to 3 s for
 *       the answers and counts them: {"ok","overloaded","other","closed","noreply",
 *       "connfail"}; then holds the connections HOLD_MS and closes them.
 *   cs_hostile -p port slow N SECONDS INTERVAL_MS
 *       opens N connections that each send one byte of a 13-byte PING frame every
 *       INTERVAL_MS (so none completes a frame in time); after SECONDS prints how many the
 *       server closed: {"open","closed","first_close_ms","last_close_ms"}.
 *   cs_hostile -p port noread QUERY PARAM ITEMS COUNT SECONDS
 *   cs_hostile -p port noread_burst QUERY PARAM ITEMS COUNT SECONDS   (all frames in one write)
 *       one connection writes COUNT MGET frames of ITEMS GETs of QUERY(PARAM) and never reads;
 *       ends when the server closes it or after SECONDS: {"closed","frames_sent","ms"}.
 *   cs_hostile -p port lateread QUERY PARAM WAIT_MS
 *       one connection (64 kB receive buffer): a GET of QUERY(PARAM) read at once, then the
 *       same GET left unread for WAIT_MS (a reply larger than the socket buffers stays
 *       queued in the server),
 *       then read: {"prompt":BYTES,"late":BYTES,"same_result":0|1,"late_wait_ms":MS}; BYTES
 *       is the reply frame's size (-1 error frame or EOF, -2 timeout after 20 s), and
 *       same_result says the two replies end in the same bytes (all but their meta).
 *   cs_hostile -p port auth TOKEN N
 *       one connection: a PING before any HELLO, then N HELLOs with TOKEN, one at a time:
 *       {"ping": reply code, "hello": [codes], "closed": 0|1}; a reply code is 0 for a
 *       success, the error code for an error frame, -1 when the connection was closed.
 *
 * Exit 0 when the run completed (whatever the server did), 2 on a usage or local error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cs_proto.h"

static const char *host = "127.0.0.1";
static int port;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A non-blocking TCP connection, connected (bounded wait 2 s), or -1. rcvbuf > 0: its
 * receive buffer, set before connecting (fixes the window: no autotuning). */
static int dial_rcvbuf(int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (rcvbuf > 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t el = sizeof err;
	if (poll(&p, 1, 2000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
		close(fd);
		return -1;
	}
	return fd;
}

static int dial(void)
{
	return dial_rcvbuf(0);
}

/* Writes all of buf, waiting at most until deadline. 0, or -1 (closed, error, timeout). */
static int write_all(int fd, const uint8_t *buf, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		(void)poll(&p, 1, (int)left);
		if (p.revents & (POLLERR | POLLHUP))
			return -1;
	}
	return 0;
}

/* Reads one reply frame (waiting until deadline): 0 for a success reply, the error code of
 * an error frame, -1 on EOF or error, -2 on timeout. */
static int read_reply(int fd, long long deadline)
{
	uint8_t buf[4096];
	size_t have = 0, need = CS_PROTO_HDR;
	while (have < need) {
		ssize_t n = recv(fd, buf + have, need - have, 0);
		if (n == 0)
			return -1;
		if (n > 0) {
			have += (size_t)n;
			if (have == CS_PROTO_HDR) {
				uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
					       (uint32_t)buf[2] << 8 | buf[3];
				if (len > sizeof buf - CS_PROTO_HDR)
					return -1; /* no reply of ours is that long */
				need += len;
			}
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		long long left = deadline - now_ms();
		if (left <= 0)
			return -2;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		(void)poll(&p, 1, (int)left);
	}
	if (buf[5] != 0xff)
		return 0;
	/* {"code": n, ...}: map, "code", then a positive fixint or uint8 */
	const uint8_t *b = buf + CS_PROTO_HDR;
	if (need >= CS_PROTO_HDR + 7 && memcmp(b + 1, "\xa4" "code", 5) == 0)
		return b[6] < 0x80 ? b[6] : (b[6] == 0xcc ? b[7] : 255);
	return 255;
}

static void frame_ping(cs_buf *b, uint32_t id)
{
	cs_buf_reset(b);
	if (cs_proto_write_empty(b, id, CS_OP_PING) != 0)
		exit(2);
}

static int do_flood(int n, int hold_ms)
{
	int *fds = calloc((size_t)n, sizeof *fds);
	int *res = calloc((size_t)n, sizeof *res);
	if (fds == NULL || res == NULL)
		return 2;
	cs_buf b;
	cs_buf_init(&b, 1024);
	frame_ping(&b, 1);
	int connfail = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = dial();
		if (fds[i] < 0 || write_all(fds[i], b.data, b.len, now_ms() + 2000) != 0)
			connfail++;
	}
	long long deadline = now_ms() + 3000;
	int ok = 0, over = 0, other = 0, closed = 0, noreply = 0;
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		int r = read_reply(fds[i], deadline);
		if (r == 0)
			ok++;
		else if (r == CS_ERR_OVERLOADED)
			over++;
		else if (r == -1)
			closed++;
		else if (r == -2)
			noreply++;
		else
			other++;
	}
	printf("{\"ok\":%d,\"overloaded\":%d,\"other\":%d,\"closed\":%d,\"noreply\":%d,\"connfail\":%d}\n",
		ok, over, other, closed, noreply, connfail);
	fflush(stdout);
	usleep((useconds_t)hold_ms * 1000u);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	cs_buf_free(&b);
	free(fds);
	free(res);
	return 0;
}

static int do_slow(int n, int seconds, int interval_ms)
{
	int *fds = calloc((size_t)n, sizeof *fds);
	long long *closed_at = calloc((size_t)n, sizeof *closed_at);
	if (fds == NULL || closed_at == NULL)
		return 2;
	cs_buf b;
	cs_buf_init(&b, 1024);
	frame_ping(&b, 7);
	long long start = now_ms(), end = start + seconds * 1000LL;
	for (int i = 0; i < n; i++)
		fds[i] = dial();
	size_t sent = 0;
	long long next_byte = start;
	while (now_ms() < end) {
		long long t = now_ms();
		if (t >= next_byte && sent < b.len) {
			for (int i = 0; i < n; i++)
				if (fds[i] >= 0 && closed_at[i] == 0)
					(void)send(fds[i], b.data + sent, 1, MSG_NOSIGNAL);
			sent++;
			next_byte += interval_ms;
		}
		for (int i = 0; i < n; i++) {
			if (fds[i] < 0 || closed_at[i] != 0)
				continue;
			uint8_t tmp[256];
			ssize_t r = recv(fds[i], tmp, sizeof tmp, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				closed_at[i] = now_ms();
		}
		usleep(20000);
	}
	int open = 0, closed = 0;
	long long first = -1, last = -1;
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (closed_at[i] == 0) {
			open++;
		} else {
			closed++;
			long long ms = closed_at[i] - start;
			if (first < 0 || ms < first)
				first = ms;
			if (ms > last)
				last = ms;
		}
		close(fds[i]);
	}
	printf("{\"open\":%d,\"closed\":%d,\"first_close_ms\":%lld,\"last_close_ms\":%lld}\n", open,
		closed, first, last);
	cs_buf_free(&b);
	free(fds);
	free(closed_at);
	return 0;
}

static int do_noread(const char *query, const char *param, int items, int count, int seconds,
	bool burst)
{
	if (items < 1 || items > CS_PROTO_MAX_MGET)
		return 2;
	cs_get_req *reqs = calloc((size_t)items, sizeof *reqs);
	if (reqs == NULL)
		return 2;
	for (int i = 0; i < items; i++) {
		reqs[i].query = query;
		reqs[i].query_len = (uint32_t)strlen(query);
		reqs[i].nparams = 1;
		reqs[i].params[0].type = CS_V_STR;
		reqs[i].params[0].u.s.p = param;
		reqs[i].params[0].u.s.len = (uint32_t)strlen(param);
		reqs[i].tier = 1;
	}
	cs_buf b;
	cs_buf_init(&b, 1u << 20);
	if (cs_proto_write_mget(&b, 1, reqs, (uint32_t)items) != 0)
		return 2;
	int fd = dial();
	if (fd < 0)
		return 2;
	long long start = now_ms(), end = start + seconds * 1000LL;
	int sent = 0, closed = 0;
	if (burst) {
		/* every frame in one write: the server then handles most of them from its
		 * connection buffer, not from a fresh read */
		uint8_t *all = malloc(b.len * (size_t)count);
		if (all == NULL)
			return 2;
		for (int k = 0; k < count; k++) {
			memcpy(all + b.len * (size_t)k, b.data, b.len);
			uint32_t id = (uint32_t)k + 1;
			all[b.len * (size_t)k + 8] = (uint8_t)(id >> 24);
			all[b.len * (size_t)k + 9] = (uint8_t)(id >> 16);
			all[b.len * (size_t)k + 10] = (uint8_t)(id >> 8);
			all[b.len * (size_t)k + 11] = (uint8_t)id;
		}
		if (write_all(fd, all, b.len * (size_t)count, end) == 0)
			sent = count;
		else
			closed = now_ms() < end;
		free(all);
	}
	while (sent < count) {
		/* a distinct request id per frame: ids in flight together must differ */
		uint32_t id = (uint32_t)sent + 1;
		b.data[8] = (uint8_t)(id >> 24);
		b.data[9] = (uint8_t)(id >> 16);
		b.data[10] = (uint8_t)(id >> 8);
		b.data[11] = (uint8_t)id;
		if (write_all(fd, b.data, b.len, end) != 0) {
			closed = now_ms() < end;
			break;
		}
		sent++;
	}
	while (!closed && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };
		(void)poll(&p, 1, 100);
		if (p.revents & (POLLERR | POLLHUP | POLLRDHUP))
			closed = 1;
	}
	printf("{\"closed\":%d,\"frames_sent\":%d,\"ms\":%lld}\n", closed, sent, now_ms() - start);
	close(fd);
	cs_buf_free(&b);
	free(reqs);
	return 0;
}

/* Reads one whole reply frame of any size into *out (malloc'd, header included) by
 * deadline. Returns its size, -1 for an error frame or EOF, -2 on timeout. */
static long read_frame(int fd, uint8_t **out, long long deadline)
{
	uint8_t hdr[CS_PROTO_HDR];
	size_t have = 0, need = CS_PROTO_HDR;
	uint8_t *buf = hdr;
	*out = NULL;
	while (have < need) {
		ssize_t n = recv(fd, buf + have, need - have, 0);
		if (n == 0)
			break;
		if (n > 0) {
			have += (size_t)n;
			if (buf == hdr && have == CS_PROTO_HDR) {
				need += (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
					(uint32_t)hdr[2] << 8 | hdr[3];
				if ((buf = malloc(need)) == NULL)
					exit(2);
				memcpy(buf, hdr, CS_PROTO_HDR);
			}
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			break;
		long long left = deadline - now_ms();
		if (left <= 0) {
			if (buf != hdr)
				free(buf);
			return -2;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		(void)poll(&p, 1, (int)left);
	}
	if (have < need || buf[5] == 0xff) {
		if (buf != hdr)
			free(buf);
		return -1;
	}
	*out = buf;
	return (long)need;
}

static int do_lateread(const char *query, const char *param, int wait_ms)
{
	cs_get_req g = { .query = query, .query_len = (uint32_t)strlen(query), .nparams = 1,
		.tier = 1 };
	g.params[0].type = CS_V_STR;
	g.params[0].u.s.p = param;
	g.params[0].u.s.len = (uint32_t)strlen(param);
	cs_buf b;
	cs_buf_init(&b, 1u << 20);
	int fd = dial_rcvbuf(64 * 1024); /* a reply of a few MB cannot all fit in the socket */
	if (fd < 0)
		return 2;
	uint8_t *r1 = NULL, *r2 = NULL;
	long n1 = -1, n2 = -1;
	long long waited = 0;
	cs_buf_reset(&b);
	if (cs_proto_write_get(&b, 1, CS_OP_GET, &g) != 0)
		return 2;
	if (write_all(fd, b.data, b.len, now_ms() + 2000) == 0)
		n1 = read_frame(fd, &r1, now_ms() + 20000);
	cs_buf_reset(&b);
	if (n1 > 0 && cs_proto_write_get(&b, 2, CS_OP_GET, &g) == 0 &&
		write_all(fd, b.data, b.len, now_ms() + 2000) == 0) {
		long long t0 = now_ms();
		usleep((useconds_t)wait_ms * 1000u);
		waited = now_ms() - t0;
		n2 = read_frame(fd, &r2, now_ms() + 20000);
	}
	/* the replies differ in their meta (age) only: compare what follows it */
	long tail = (n1 < n2 ? n1 : n2) - CS_PROTO_HDR - 128;
	int same = n1 > 0 && n2 > 0 && tail > 0 && memcmp(r1 + n1 - tail, r2 + n2 - tail, (size_t)tail) == 0;
	printf("{\"prompt\":%ld,\"late\":%ld,\"same_result\":%d,\"late_wait_ms\":%lld}\n", n1, n2, same,
		waited);
	free(r1);
	free(r2);
	close(fd);
	cs_buf_free(&b);
	return 0;
}

static int do_auth(const char *token, int n)
{
	int fd = dial();
	if (fd < 0)
		return 2;
	cs_buf b;
	cs_buf_init(&b, 4096);
	frame_ping(&b, 1);
	int ping = -1;
	if (write_all(fd, b.data, b.len, now_ms() + 2000) == 0)
		ping = read_reply(fd, now_ms() + 3000);
	printf("{\"ping\":%d,\"hello\":[", ping);
	int closed = ping == -1;
	for (int i = 0; i < n && !closed; i++) {
		cs_hello_req h = { .version = 1, .client = "cs_hostile", .client_len = 10,
			.token = token, .token_len = (uint32_t)strlen(token) };
		cs_buf_reset(&b);
		if (cs_proto_write_hello(&b, (uint32_t)i + 2, &h) != 0)
			return 2;
		int r = -1;
		if (write_all(fd, b.data, b.len, now_ms() + 2000) == 0)
			r = read_reply(fd, now_ms() + 3000);
		printf("%s%d", i ? "," : "", r);
		if (r == -1)
			closed = 1;
	}
	if (!closed) { /* did the server close after the last answer? */
		uint8_t tmp[64];
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 1000) == 1 && recv(fd, tmp, sizeof tmp, MSG_DONTWAIT) == 0)
			closed = 1;
	}
	printf("],\"closed\":%d}\n", closed);
	close(fd);
	cs_buf_free(&b);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: cs_hostile [-h host] -p port flood N HOLD_MS | slow N SECONDS "
			"INTERVAL_MS | noread QUERY PARAM ITEMS COUNT SECONDS | lateread QUERY PARAM "
			"WAIT_MS | auth TOKEN N\n");
	return 2;
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "-h") == 0)
			host = argv[i + 1];
		else if (strcmp(argv[i], "-p") == 0)
			port = atoi(argv[i + 1]);
		else
			return usage();
	}
	if (port <= 0 || i >= argc)
		return usage();
	const char *mode = argv[i++];
	int left = argc - i;
	char **a = argv + i;
	if (strcmp(mode, "flood") == 0 && left == 2)
		return do_flood(atoi(a[0]), atoi(a[1]));
	if (strcmp(mode, "slow") == 0 && left == 3)
		return do_slow(atoi(a[0]), atoi(a[1]), atoi(a[2]));
	if (strcmp(mode, "noread") == 0 && left == 5)
		return do_noread(a[0], a[1], atoi(a[2]), atoi(a[3]), atoi(a[4]), false);
	if (strcmp(mode, "noread_burst") == 0 && left == 5)
		return do_noread(a[0], a[1], atoi(a[2]), atoi(a[3]), atoi(a[4]), true);
	if (strcmp(mode, "lateread") == 0 && left == 3)
		return do_lateread(a[0], a[1], atoi(a[2]));
	if (strcmp(mode, "auth") == 0 && left == 2)
		return do_auth(a[0], atoi(a[1]));
	return usage();
}
