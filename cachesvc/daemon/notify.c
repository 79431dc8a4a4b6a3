/* notify.c - systemd notifications (READY/RELOADING/STOPPING/STATUS) through sd_notify(3);
 * a no-op without NOTIFY_SOCKET or without libsystemd (see notify.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "notify.h"

#ifdef CS_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

/* One datagram to the manager. sd_notify() returns 0 (nothing done) without NOTIFY_SOCKET.
 * unset_environment = 0: the variable stays, so every later notification reaches systemd
 * too (READY after each reload, STOPPING). The send is one sendmsg(2) of a few bytes on a
 * local datagram socket, done only at lifecycle events. */
static void send_state(const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		cs_debug("sd_notify(%.*s): %s", (int)strcspn(state, "\n"), state, strerror(-rc));
}
#else
static void send_state(const char *state)
{
	(void)state;
}
#endif

void cs_notify_ready(void)
{
	send_state("READY=1");
}

void cs_notify_reloading(void)
{
	/* systemd (>= 253, Type=notify-reload) wants the CLOCK_MONOTONIC time of the reload
	 * with RELOADING=1; older managers ignore the field. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[64];
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		(unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	send_state(msg);
}

void cs_notify_stopping(void)
{
	send_state("STOPPING=1");
}

void cs_notify_status(const char *fmt, ...)
{
	char msg[512] = "STATUS=";
	size_t off = strlen(msg);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof msg - off, fmt, ap);
	va_end(ap);
	for (char *p = msg + off; *p; p++) /* one assignment per line: keep it one line */
		if (*p == '\n')
			*p = ' ';
	send_state(msg);
}
