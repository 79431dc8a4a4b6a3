/* log.c - leveled logging to stderr, one write(2) per line, never blocking the caller.
 *
 * A full stderr pipe (a log shipper that stalls, `cachesvc 2>&1 | less` left open) must not
 * stop the event loop, so no write here ever waits:
 *
 * - The sink. stderr's open file description is shared with whoever handed it to us (the
 *   shell, a supervisor, and our own stdout after 2>&1); O_NONBLOCK set on it would also
 *   change their reads and writes. So the flag is never set on fd 2 itself:
 *     pipe, FIFO, tty: /proc/self/fd/2 is opened again with O_NONBLOCK, which makes a new
 *         file description of the same pipe or terminal that only we use;
 *     socket (journald's stream): send(MSG_DONTWAIT | MSG_NOSIGNAL) on fd 2, per call;
 *     regular file, block device: write(2) on fd 2 (the shared offset or O_APPEND of `>`
 *         and `>>` is kept; a file does not fill like a pipe);
 *     anything else, or no /proc: poll(fd 2, POLLOUT, 0) before each write (best effort:
 *         another writer can fill the pipe between the poll and the write).
 * - The backlog. A line that finds the sink full goes to a bounded in-memory queue (LOG_RING
 *   bytes), whole lines only, in order; every later line queues behind it, so the order of
 *   the lines that are written is the order of the calls. A line that does not fit is
 *   dropped and counted (cs_log_dropped); when the queue has room again a WARNING line says
 *   how many were dropped, at the place they were dropped. The queue is written out at the
 *   next call, and, once cs_log_attach gave it an event loop, as soon as the sink is
 *   writable again; at exit it gets up to LOG_EXIT_FLUSH_MS.
 * - The normal case is unchanged: an empty queue, one write(2) per line. Backlog writes are
 *   at most PIPE_BUF bytes cut at line ends, so a pipe takes each line whole (atomic) and
 *   lines from several processes sharing the pipe do not interleave.
 *
 * Threads: library mode can log from several threads; one mutex guards the queue and the
 * sink (uncontended in the daemon: one thread). */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define LOG_LINE          2048         /* bytes of one line, newline included */
#define LOG_RING          (256 * 1024) /* bytes of lines waiting for a full sink */
#define LOG_EXIT_FLUSH_MS 500          /* what the queue gets at exit, at most */
#define LOG_RETRY_MS      1000         /* a writable-wait's timeout: then the queue is retried */

static cs_log_level min_level = CS_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

/* How lines reach stderr (see the file comment). */
typedef enum sink_kind {
	SINK_UNSET = 0, /* not looked at yet: the first line does */
	SINK_FILE,      /* write(2) on fd 2: a regular file or block device */
	SINK_OWN,       /* write(2) on our own O_NONBLOCK description of the pipe or tty */
	SINK_SOCKET,    /* send(MSG_DONTWAIT) on fd 2 */
	SINK_POLL,      /* poll(POLLOUT, 0) then write(2) on fd 2 */
} sink_kind;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Journal format: "<N>LEVEL msg" with the syslog priority N that journald (and syslog
 * daemons reading a stream) take as the line's level, no timestamp or pid (the journal
 * records both). CS_LOG_FORMAT_AUTO: when stderr is the journal's stream (systemd.exec(5):
 * JOURNAL_STREAM names its device and inode). */
static cs_log_format format = CS_LOG_FORMAT_AUTO;
static bool journal;
static sink_kind sink = SINK_UNSET;
static int sink_fd = STDERR_FILENO;
static char ring[LOG_RING]; /* queued lines: ring[ring_off .. ring_off + ring_len) */
static size_t ring_off, ring_len;
static uint64_t dropped;        /* lines dropped since the start (cs_log_dropped) */
static uint64_t dropped_unsaid; /* dropped lines no WARNING line has reported yet */
static bool sink_broken;        /* the last write failed for good (EPIPE, EBADF): no notes */
static struct event *flush_ev;  /* cs_log_attach: fires when the sink is writable */
static pthread_t flush_thread;  /* the thread that runs flush_ev's loop */

void cs_log_set_level(cs_log_level level)
{
	min_level = level;
}

cs_log_level cs_log_get_level(void)
{
	return min_level;
}

static bool journal_stream(const struct stat *st);

void cs_log_set_format(cs_log_format f)
{
	pthread_mutex_lock(&lock);
	format = f;
	struct stat st;
	if (f != CS_LOG_FORMAT_AUTO)
		journal = f == CS_LOG_FORMAT_JOURNAL;
	else
		journal = fstat(STDERR_FILENO, &st) == 0 && journal_stream(&st);
	pthread_mutex_unlock(&lock);
}

bool cs_log_parse_level(const char *s, cs_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (cs_log_level)i;
			return true;
		}
	}
	return false;
}

/* ---- Sink -------------------------------------------------------------------------------- */

static void flush_at_exit(void);

/* True when st (fd 2's) is the journal's stream: JOURNAL_STREAM is "<device>:<inode>" of
 * the stream systemd connected (systemd.exec(5)); a child's redirected stderr differs. */
static bool journal_stream(const struct stat *st)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       dev == (unsigned long long)st->st_dev && ino == (unsigned long long)st->st_ino;
}

/* Looks at fd 2 once and picks the sink. Called with the lock held. */
static void sink_open(void)
{
	struct stat st;
	sink = SINK_POLL;
	sink_fd = STDERR_FILENO;
	if (fstat(STDERR_FILENO, &st) != 0)
		return; /* closed: every write fails with EBADF and is counted */
	if (format == CS_LOG_FORMAT_AUTO)
		journal = journal_stream(&st);
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		sink = SINK_FILE;
	} else if (S_ISSOCK(st.st_mode)) {
		sink = SINK_SOCKET;
	} else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		/* a new open file description of the same pipe or terminal: its O_NONBLOCK is ours
		 */
		int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		struct stat own;
		if (fd >= 0 && fstat(fd, &own) == 0 && own.st_dev == st.st_dev &&
		        own.st_ino == st.st_ino && own.st_rdev == st.st_rdev) {
			sink = SINK_OWN;
			sink_fd = fd;
		} else if (fd >= 0) {
			close(fd);
		}
	}
	atexit(flush_at_exit);
}

/* Writes up to len bytes without waiting. Returns the bytes written (0 when the sink is
 * full), or -1 on an error that more tries will not cure (errno set: EPIPE, EBADF, ENOSPC). */
static ssize_t sink_write(const char *p, size_t len)
{
	for (int tries = 0; tries < 3; tries++) {
		ssize_t w;
		if (sink == SINK_SOCKET) {
			w = send(sink_fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w < 0 && errno == ENOTSOCK) {
				sink = SINK_POLL;
				continue;
			}
		} else {
			if (sink == SINK_POLL) {
				struct pollfd pfd = {.fd = sink_fd, .events = POLLOUT};
				int n = poll(&pfd, 1, 0);
				if (n == 0)
					return 0;
				if (n < 0)
					continue; /* EINTR */
			}
			w = write(sink_fd, p, len);
		}
		if (w >= 0)
			return w;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* ---- Queue ------------------------------------------------------------------------------- */

static size_t count_lines(const char *p, size_t len)
{
	size_t n = 0;
	for (const char *e = p + len; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
		n++;
	return n;
}

static void ring_append(const char *p, size_t len)
{
	if (ring_off + ring_len + len > sizeof ring) {
		memmove(ring, ring + ring_off, ring_len);
		ring_off = 0;
	}
	memcpy(ring + ring_off + ring_len, p, len);
	ring_len += len;
}

/* Writes queued lines until the queue is empty or the sink full; each write is at most
 * PIPE_BUF bytes and ends at a line end (the head may be the rest of a line a tty or socket
 * took in part). Returns true when the queue is empty. Called with the lock held. */
static bool ring_flush(void)
{
	while (ring_len > 0) {
		const char *head = ring + ring_off;
		size_t n = ring_len < PIPE_BUF ? ring_len : PIPE_BUF;
		const char *nl = memrchr(head, '\n', n);
		if (nl != NULL)
			n = (size_t)(nl - head) + 1;
		ssize_t w = sink_write(head, n);
		if (w == 0)
			return false;
		if (w < 0) {
			/* the sink is gone (EPIPE, EBADF): what is queued can never be written */
			size_t lost = count_lines(head, ring_len);
			sink_broken = true;
			dropped += lost;
			dropped_unsaid += lost;
			ring_off = ring_len = 0;
			return true;
		}
		ring_off += (size_t)w;
		ring_len -= (size_t)w;
	}
	ring_off = 0;
	return true;
}

/* Asks the loop to call back when the sink is writable (or after LOG_RETRY_MS). Only from
 * the loop's own thread: another thread's lines wait for the next line or the retry. */
static void ring_arm(void)
{
	if (flush_ev == NULL || ring_len == 0 || sink == SINK_FILE ||
	        !pthread_equal(pthread_self(), flush_thread) ||
	        event_pending(flush_ev, EV_WRITE | EV_TIMEOUT, NULL))
		return;
	struct timeval tv = {LOG_RETRY_MS / 1000, (LOG_RETRY_MS % 1000) * 1000};
	event_add(flush_ev, &tv);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pthread_mutex_lock(&lock);
	ring_flush();
	ring_arm();
	pthread_mutex_unlock(&lock);
}

/* Formats one line stamped tv into line (cap bytes); returns its length, newline included. */
static size_t format_line(char *line, size_t cap, const struct timeval *tv, cs_log_level level,
        const char *fmt, va_list ap)
{
	int n;
	if (journal) {
		static const int prio[] = { 7, 6, 4, 3 }; /* debug, info, warning, err */
		n = snprintf(line, cap, "<%d>%s ", prio[level], level_names[level]);
	} else {
		struct tm tm;
		gmtime_r(&tv->tv_sec, &tm);
		n = snprintf(line, cap, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %s ",
		        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		        tm.tm_sec, (int)(tv->tv_usec / 1000), (int)getpid(), level_names[level]);
	}
	int m = vsnprintf(line + n, cap - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > cap - 2)
		len = cap - 2; /* truncated: keep the newline */
	line[len++] = '\n';
	return len;
}

static size_t format_note(char *line, size_t cap, const struct timeval *tv, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static size_t format_note(char *line, size_t cap, const struct timeval *tv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t len = format_line(line, cap, tv, CS_LOG_WARNING, fmt, ap);
	va_end(ap);
	return len;
}

/* Hands one formatted line (stamped tv) to the sink, or queues it, or drops it. Lock held. */
static void emit(const struct timeval *tv, const char *line, size_t len)
{
	if (sink == SINK_UNSET)
		sink_open();
	bool empty = ring_flush();
	/* A broken sink gets each line tried once, without notes (nobody would read them); the
	 * first line it takes again ends that, and the next line brings the note. */
	if (empty && (dropped_unsaid == 0 || sink_broken)) {
		ssize_t w = sink_write(line, len); /* the normal case: one write per line */
		if (w < 0) {
			sink_broken = true;
			dropped++;
			dropped_unsaid++;
			return;
		}
		sink_broken = false;
		if (w == (ssize_t)len)
			return;
		ring_append(line + w, len - (size_t)w); /* the queue is empty: it fits */
		ring_arm();
		return;
	}
	if (dropped_unsaid > 0) {
		char note[200];
		/* stamped like the line it precedes: the times in the log never go back */
		size_t nlen = format_note(note, sizeof note, tv,
		        "log: %llu lines dropped: stderr was not writable "
		        "(cachesvc_log_dropped_total counts them)",
		        (unsigned long long)dropped_unsaid);
		if (sizeof ring - ring_len >= nlen + len) {
			ring_append(note, nlen);
			dropped_unsaid = 0;
		}
	}
	if (dropped_unsaid == 0 && sizeof ring - ring_len >= len) {
		ring_append(line, len);
	} else {
		dropped++;
		dropped_unsaid++;
	}
	ring_flush();
	ring_arm();
}

void cs_log(cs_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char line[LOG_LINE];
	struct timeval tv;
	va_list ap;
	gettimeofday(&tv, NULL);
	va_start(ap, fmt);
	size_t len = format_line(line, sizeof line, &tv, level, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	emit(&tv, line, len);
	pthread_mutex_unlock(&lock);
}

uint64_t cs_log_dropped(void)
{
	pthread_mutex_lock(&lock);
	uint64_t n = dropped;
	pthread_mutex_unlock(&lock);
	return n;
}

size_t cs_log_queued(void)
{
	pthread_mutex_lock(&lock);
	size_t n = ring_len;
	pthread_mutex_unlock(&lock);
	return n;
}

int cs_log_attach(struct event_base *base)
{
	pthread_mutex_lock(&lock);
	if (sink == SINK_UNSET)
		sink_open();
	int rc = 0;
	if (flush_ev == NULL) {
		flush_ev = event_new(base, sink_fd, EV_WRITE, on_writable, NULL);
		if (flush_ev == NULL)
			rc = -1;
		flush_thread = pthread_self();
		ring_arm();
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void cs_log_detach(void)
{
	pthread_mutex_lock(&lock);
	if (flush_ev != NULL) {
		event_free(flush_ev);
		flush_ev = NULL;
	}
	pthread_mutex_unlock(&lock);
}

/* At exit: what is queued gets LOG_EXIT_FLUSH_MS to reach a slow reader, then is lost. */
static void flush_at_exit(void)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&lock);
	while (!ring_flush()) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = LOG_EXIT_FLUSH_MS -
		            ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = sink_fd, .events = POLLOUT};
		(void)poll(&pfd, 1, (int)left);
	}
	pthread_mutex_unlock(&lock);
}

void cs_log_pg_notice(void *name, const char *message)
{
	size_t n = strlen(message);
	while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
		n--;
	/* libpq's text starts with the severity: "WARNING:  ...", "NOTICE:  ...", "INFO:  ..." */
	cs_log_level level = strncmp(message, "WARNING:", 8) == 0 ? CS_LOG_WARNING
			     : strncmp(message, "DEBUG", 5) == 0   ? CS_LOG_DEBUG
								   : CS_LOG_INFO;
	/* one line: embedded newlines (DETAIL, HINT) become " | " */
	char buf[1024];
	size_t o = 0;
	for (size_t i = 0; i < n && o + 4 < sizeof buf; i++) {
		if (message[i] == '\n') {
			memcpy(buf + o, " | ", 3);
			o += 3;
		} else {
			buf[o++] = message[i];
		}
	}
	buf[o] = '\0';
	cs_log(level, "postgres %s: %s", name ? (const char *)name : "?", buf);
}
