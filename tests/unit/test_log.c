/* test_log.c - unit tests of log.c: with stderr on a pipe nobody reads, cs_log returns at
 * once (issue 14 item 10), queues what the pipe does not take, drops and counts the rest,
 * never sets O_NONBLOCK on the shared stderr, and, attached to an event loop, writes its
 * queue out as soon as the pipe is read again, in order, with a note of what it dropped;
 * a pipe without a reader costs one dropped line per line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "log.h"

#define LINES 5000 /* ~120 bytes each: far more than a pipe (64 KiB) and the queue hold */

static char got[4 << 20];
static size_t ngot;

/* Reads what the pipe holds now (its read end is non-blocking). */
static void drain(int fd)
{
	ssize_t r;
	while (ngot < sizeof got - 1 && (r = read(fd, got + ngot, sizeof got - 1 - ngot)) > 0)
		ngot += (size_t)r;
	got[ngot] = '\0';
}

static void test_full_pipe(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO); /* before the first line */
	close(p[1]);
	alarm(20); /* a blocked cs_log ends the test here: SIGALRM kills it */
	cs_log_set_level(CS_LOG_DEBUG);
	for (int i = 1; i <= LINES; i++)
		cs_info("line %06d of the test, padded to be about one hundred and twenty bytes "
		        "....",
		        i);
	alarm(0);
	uint64_t dropped = cs_log_dropped();
	assert_true(dropped > 0);
	assert_true(cs_log_queued() > 0);
	/* the shared description (our stderr, and whoever else holds it) stays blocking */
	assert_int_equal(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);

	/* read the pipe while the loop runs: the queue goes out without another cs_log call */
	struct event_base *base = event_base_new();
	assert_non_null(base);
	assert_int_equal(cs_log_attach(base), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	for (int i = 0; i < 1000 && cs_log_queued() > 0; i++) {
		drain(p[0]);
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(cs_log_queued(), 0);
	cs_info("after the drain"); /* reports the drops first, then itself */
	drain(p[0]);
	cs_log_detach();
	event_base_free(base);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);

	/* every line whole and in order; the missing ones are exactly those the note counts */
	int last = 0, written = 0;
	uint64_t noted = 0;
	bool note_seen = false;
	for (char *line = got, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		assert_non_null(strstr(line, " UTC ["));
		const char *m = strstr(line, "] INFO line ");
		unsigned long long n;
		if (m != NULL) {
			int i = atoi(m + 12);
			assert_true(i > last); /* in order */
			if (i != last + 1)
				assert_true(note_seen); /* a gap only after a note */
			last = i;
			written++;
		} else if (sscanf(line, "%*s %*s UTC [%*d] WARNING log: %llu lines dropped", &n) ==
		           1) {
			noted += n;
			note_seen = true;
		} else {
			assert_non_null(strstr(line, "] INFO after the drain"));
		}
	}
	assert_true(last > 0 && last <= LINES);
	assert_true(note_seen);
	assert_int_equal(noted, dropped);
	assert_int_equal((uint64_t)written + noted, LINES);
}

/* After test_full_pipe the pipe's reader is gone: every line fails with EPIPE and counts as
 * exactly one dropped line (no "lines dropped" notes piling up behind it). */
static void test_broken_pipe(void **state)
{
	(void)state;
	uint64_t before = cs_log_dropped();
	for (int i = 0; i < 10; i++)
		cs_info("into a pipe nobody will ever read");
	assert_int_equal(cs_log_dropped() - before, 10);
	assert_int_equal(cs_log_queued(), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_full_pipe),
	        cmocka_unit_test(test_broken_pipe), /* after test_full_pipe: its pipe */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
