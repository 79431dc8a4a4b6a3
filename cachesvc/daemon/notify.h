/* notify.h - the systemd service-manager notifications of the daemon (sd_notify(3)):
 * READY, RELOADING, STOPPING and STATUS for Type=notify units (dist/systemd/cachesvc.service).
 *
 * Every function is a no-op when NOTIFY_SOCKET is unset (not started by systemd) or when
 * the daemon was built without libsystemd (meson -Dsystemd=disabled, or libsystemd-dev
 * missing). They never fail visibly: a notification that cannot be sent is dropped (and
 * logged at debug level). Called only at lifecycle events (startup, SIGHUP, SIGTERM), never
 * on the request path. */
#ifndef CS_NOTIFY_H
#define CS_NOTIFY_H

/* READY=1: the daemon accepts clients (sent again after each reload). */
void cs_notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC=<now>: a reload (SIGHUP) has begun; cs_notify_ready()
 * ends it, whether the reload was applied or refused. */
void cs_notify_reloading(void);
/* STOPPING=1: the daemon drains and exits. */
void cs_notify_stopping(void);
/* STATUS=<text>: one line shown by `systemctl status` (newlines are replaced). */
void cs_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
