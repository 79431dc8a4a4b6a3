/* notify_recv.c - a stand-in for systemd's notification socket in tests: binds a unix
 * datagram socket at PATH and writes each datagram it receives as one line on stdout
 * "USEC PAYLOAD": the CLOCK_MONOTONIC time of receipt in microseconds, then the datagram
 * with its newlines made spaces; flushed at once. Exits after SECONDS, or when
 * a datagram contains STOPPING=1 and a second one arrives or 1 s passes.
 * Usage: notify_recv PATH SECONDS */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long now_ms(void)
{
	return now_us() / 1000;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PATH SECONDS\n", argv[0]);
		return 2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof sa.sun_path) {
		fprintf(stderr, "notify_recv: path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("notify_recv: bind");
		return 1;
	}
	long long deadline = now_ms() + atol(argv[2]) * 1000;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		if (n < 0) {
			perror("notify_recv: poll");
			return 1;
		}
		if (n == 0)
			continue;
		char buf[4096];
		ssize_t len = recv(fd, buf, sizeof buf - 1, 0);
		if (len < 0) {
			perror("notify_recv: recv");
			return 1;
		}
		buf[len] = '\0';
		for (ssize_t i = 0; i < len; i++)
			if (buf[i] == '\n' || buf[i] == '\0')
				buf[i] = ' ';
		printf("%lld %s\n", now_us(), buf);
		fflush(stdout);
		if (strstr(buf, "STOPPING=1") && deadline > now_ms() + 1000)
			deadline = now_ms() + 1000;
	}
	unlink(argv[1]);
	return 0;
}
