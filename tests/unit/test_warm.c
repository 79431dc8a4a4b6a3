/* test_warm.c - unit tests of cachesvc-warm's pure parts: the line parser, the done-line
 * tracker and checkpoint file (write, read, resume), and the token bucket arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "warm_bucket.h"
#include "warm_ckpt.h"
#include "warm_line.h"

/* ---- Line parser ------------------------------------------------------------------------- */

static cs_warm_req req; /* large: not on the stack */
static char err[256];

static int parse(const char *line)
{
	return cs_warm_line_parse(line, strlen(line), &req, err, sizeof err);
}

static void test_line_plain(void **state)
{
	assert_int_equal(parse("user_profile 42"), CS_WARM_LINE_REQUEST);
	assert_string_equal(req.query, "user_profile");
	assert_int_equal(req.nparams, 1);
	assert_string_equal(req.params[0], "42");

	assert_int_equal(parse("  \tq.v-1   a\tb  c  "), CS_WARM_LINE_REQUEST);
	assert_string_equal(req.query, "q.v-1");
	assert_int_equal(req.nparams, 3);
	assert_string_equal(req.params[0], "a");
	assert_string_equal(req.params[1], "b");
	assert_string_equal(req.params[2], "c");

	assert_int_equal(parse("no_params"), CS_WARM_LINE_REQUEST);
	assert_int_equal(req.nparams, 0);

	assert_int_equal(parse("q 1\r"), CS_WARM_LINE_REQUEST); /* CRLF */
	assert_string_equal(req.params[0], "1");
}

static void test_line_empty_and_comments(void **state)
{
	assert_int_equal(parse(""), CS_WARM_LINE_EMPTY);
	assert_int_equal(parse("   \t "), CS_WARM_LINE_EMPTY);
	assert_int_equal(parse("# a comment"), CS_WARM_LINE_EMPTY);
	assert_int_equal(parse("   # indented"), CS_WARM_LINE_EMPTY);
	assert_int_equal(parse("\r"), CS_WARM_LINE_EMPTY);
	/* a comment after words */
	assert_int_equal(parse("q 1 # the rest"), CS_WARM_LINE_REQUEST);
	assert_int_equal(req.nparams, 1);
	/* # inside a word is not a comment */
	assert_int_equal(parse("q a#b"), CS_WARM_LINE_REQUEST);
	assert_string_equal(req.params[0], "a#b");
	/* quoted # is text */
	assert_int_equal(parse("q \"#x\""), CS_WARM_LINE_REQUEST);
	assert_string_equal(req.params[0], "#x");
}

static void test_line_null_and_quotes(void **state)
{
	assert_int_equal(parse("q null \"null\" 'null' NULL"), CS_WARM_LINE_REQUEST);
	assert_int_equal(req.nparams, 4);
	assert_null(req.params[0]);
	assert_string_equal(req.params[1], "null");
	assert_string_equal(req.params[2], "null");
	assert_string_equal(req.params[3], "NULL"); /* only lower-case null is NULL */

	assert_int_equal(parse("q \"two words\" 'it\\s raw' \"\""), CS_WARM_LINE_REQUEST);
	assert_int_equal(req.nparams, 3);
	assert_string_equal(req.params[0], "two words");
	assert_string_equal(req.params[1], "it\\s raw");
	assert_string_equal(req.params[2], "");

	assert_int_equal(parse("q \"a\\\"b\\\\c\\n\\t\\r\" 'say \"hi\"'"), CS_WARM_LINE_REQUEST);
	assert_string_equal(req.params[0], "a\"b\\c\n\t\r");
	assert_string_equal(req.params[1], "say \"hi\"");
}

static void test_line_malformed(void **state)
{
	assert_int_equal(parse("q \"open"), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "unterminated quote"));
	assert_non_null(strstr(err, "column 3"));
	assert_int_equal(parse("q 'open"), CS_WARM_LINE_MALFORMED);
	assert_int_equal(parse("q \"a\"b"), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "after a closing quote"));
	assert_int_equal(parse("q a\"b"), CS_WARM_LINE_MALFORMED);
	assert_int_equal(parse("q \"\\x\""), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "escape"));
	assert_int_equal(parse("\"q\" 1"), CS_WARM_LINE_MALFORMED); /* query must be bare */
	assert_int_equal(parse("bad/name 1"), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "query name"));
	char longname[80];
	memset(longname, 'a', 65);
	longname[65] = '\0';
	assert_int_equal(parse(longname), CS_WARM_LINE_MALFORMED);
	longname[64] = '\0';
	assert_int_equal(parse(longname), CS_WARM_LINE_REQUEST);
	/* NUL byte in the middle */
	assert_int_equal(
	        cs_warm_line_parse("q a\0b", 5, &req, err, sizeof err), CS_WARM_LINE_MALFORMED);
}

static void test_line_limits(void **state)
{
	char line[CS_WARM_LINE_MAX + 100];
	/* 16 params fit, 17 do not */
	strcpy(line, "q");
	for (int i = 0; i < 16; i++)
		strcat(line, " p");
	assert_int_equal(parse(line), CS_WARM_LINE_REQUEST);
	assert_int_equal(req.nparams, 16);
	strcat(line, " p");
	assert_int_equal(parse(line), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "too many parameters"));
	assert_non_null(strstr(err, "column 35"));
	/* the longest line */
	memset(line, 'x', sizeof line);
	line[0] = 'q';
	line[1] = ' ';
	line[CS_WARM_LINE_MAX] = '\0';
	assert_int_equal(parse(line), CS_WARM_LINE_REQUEST);
	assert_int_equal(strlen(req.params[0]), CS_WARM_LINE_MAX - 2);
	line[CS_WARM_LINE_MAX] = 'x';
	line[CS_WARM_LINE_MAX + 1] = '\0';
	assert_int_equal(parse(line), CS_WARM_LINE_MALFORMED);
	assert_non_null(strstr(err, "too long"));
}

static void test_line_format_roundtrip(void **state)
{
	static cs_warm_req again;
	char buf[512];
	const char *lines[] = {
	        "q 1 two",
	        "q null \"null\" \"\"",
	        "q \"a b\" \"x\\\"y\" \"#c\" \"t\\tn\\n\"",
	        "q0",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		assert_int_equal(parse(lines[i]), CS_WARM_LINE_REQUEST);
		cs_warm_req_format(&req, buf, sizeof buf);
		assert_string_equal(buf, lines[i]);
		assert_int_equal(cs_warm_line_parse(buf, strlen(buf), &again, err, sizeof err),
		        CS_WARM_LINE_REQUEST);
		assert_int_equal(again.nparams, req.nparams);
	}
	/* a small buffer cuts with "..." and stays terminated */
	assert_int_equal(parse("query_name aaaaaaaaaa bbbbbbbbbb"), CS_WARM_LINE_REQUEST);
	cs_warm_req_format(&req, buf, 16);
	assert_true(strlen(buf) < 16);
	assert_non_null(strstr(buf, "..."));
}

static void test_req_build_and_copy(void **state)
{
	static cs_warm_req copy;
	const char *vals[] = {"7", NULL, "x y"};
	assert_int_equal(cs_warm_req_build(&req, "users", vals, 3, err, sizeof err), 0);
	assert_string_equal(req.query, "users");
	assert_string_equal(req.params[0], "7");
	assert_null(req.params[1]);
	assert_string_equal(req.params[2], "x y");
	cs_warm_req_copy(&copy, &req);
	memset(&req, 0, sizeof req);
	assert_string_equal(copy.query, "users");
	assert_string_equal(copy.params[2], "x y");
	assert_true(copy.params[2] >= copy.text && copy.params[2] < copy.text + sizeof copy.text);

	const char *many[17];
	for (int i = 0; i < 17; i++)
		many[i] = "1";
	assert_int_equal(cs_warm_req_build(&req, "users", many, 17, err, sizeof err), -1);
	assert_int_equal(cs_warm_req_build(&req, "bad name", vals, 1, err, sizeof err), -1);
	static char big[CS_WARM_LINE_MAX + 10];
	memset(big, 'b', sizeof big - 1);
	const char *bigv[] = {big};
	assert_int_equal(cs_warm_req_build(&req, "users", bigv, 1, err, sizeof err), -1);
}

/* ---- Done lines -------------------------------------------------------------------------- */

static cs_warm_done done;

static void test_done_in_order(void **state)
{
	cs_warm_done_init(&done);
	for (uint64_t i = 1; i <= 1000; i++)
		assert_int_equal(cs_warm_done_mark(&done, i), 1);
	assert_int_equal(done.low, 1000);
	assert_int_equal(done.nabove, 0);
	assert_int_equal(cs_warm_done_mark(&done, 7), 0);
	assert_int_equal(cs_warm_done_mark(&done, 0), -1);
}

static void test_done_out_of_order(void **state)
{
	cs_warm_done_init(&done);
	assert_int_equal(cs_warm_done_mark(&done, 3), 1);
	assert_int_equal(cs_warm_done_mark(&done, 5), 1);
	assert_int_equal(cs_warm_done_mark(&done, 3), 0);
	assert_int_equal(done.low, 0);
	assert_int_equal(done.nabove, 2);
	assert_true(cs_warm_done_has(&done, 3));
	assert_false(cs_warm_done_has(&done, 4));
	assert_int_equal(cs_warm_done_mark(&done, 1), 1);
	assert_int_equal(done.low, 1);
	assert_int_equal(cs_warm_done_mark(&done, 2), 1);
	assert_int_equal(done.low, 3); /* swept over 3 */
	assert_int_equal(done.nabove, 1);
	assert_int_equal(cs_warm_done_mark(&done, 4), 1);
	assert_int_equal(done.low, 5);
	assert_int_equal(done.nabove, 0);
	/* the window: at most SPREAD beyond low */
	assert_true(cs_warm_done_fits(&done, 5 + CS_WARM_SPREAD));
	assert_false(cs_warm_done_fits(&done, 6 + CS_WARM_SPREAD));
	assert_int_equal(cs_warm_done_mark(&done, 6 + CS_WARM_SPREAD), -1);
	assert_int_equal(cs_warm_done_mark(&done, 5 + CS_WARM_SPREAD), 1);
	assert_false(cs_warm_done_has(&done, 5 + 2 * CS_WARM_SPREAD)); /* aliasing bit */
}

/* Random completion order over a sliding window, as the tool produces: the low-water mark
 * and the set always agree with a plain array. */
static void test_done_random_window(void **state)
{
	enum { N = 300000, W = 1000 };
	unsigned char *ref = calloc(N + 2, 1);
	uint64_t pending[W];
	int npend = 0;
	uint64_t next = 1, low = 0;
	srand(42);
	cs_warm_done_init(&done);
	while (next <= N || npend > 0) {
		while (npend < W && next <= N && cs_warm_done_fits(&done, next))
			pending[npend++] = next++;
		int k = rand() % npend;
		uint64_t line = pending[k];
		pending[k] = pending[--npend];
		assert_int_equal(cs_warm_done_mark(&done, line), 1);
		ref[line] = 1;
		while (low + 1 <= N && ref[low + 1])
			low++;
		assert_int_equal(done.low, low);
		if ((line & 1023) == 0)
			for (uint64_t i = low + 1; i < next; i++)
				assert_int_equal(cs_warm_done_has(&done, i), ref[i] != 0);
	}
	assert_int_equal(done.low, N);
	assert_int_equal(done.nabove, 0);
	free(ref);
}

/* ---- Checkpoint -------------------------------------------------------------------------- */

static cs_warm_ckpt ck, back;

static void fill_ckpt(void)
{
	memset(&ck, 0, sizeof ck);
	ck.input_id = cs_warm_input_id("file", "/srv/keys.txt", 1234, "get");
	snprintf(ck.input, sizeof ck.input, "file /srv/keys.txt size 1234 mode get");
	cs_warm_done_init(&ck.done);
	for (uint64_t i = 1; i <= 100; i++)
		assert_int_equal(cs_warm_done_mark(&ck.done, i), 1);
	for (uint64_t i = 102; i <= 140; i += 2) /* 20 done lines above the mark */
		assert_int_equal(cs_warm_done_mark(&ck.done, i), 1);
	ck.counts.filled = 86;
	ck.counts.refused = 4;
	ck.counts.cached = 25;
	cs_warm_counts_fail(&ck.counts, true, CS_WARM_R_MALFORMED, 7, "malformed: x\ny");
	cs_warm_counts_fail(&ck.counts, false, CS_WARM_R_BAD_PARAMS, 9, "bad_params: nope");
	cs_warm_counts_fail(&ck.counts, false, CS_WARM_R_BAD_PARAMS, 11, "bad_params: nope");
	cs_warm_counts_fail(&ck.counts, false, CS_WARM_R_UNKNOWN_QUERY, 12, "unknown_query");
}

static FILE *text_file(const char *text)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	fputs(text, f);
	rewind(f);
	return f;
}

static void test_ckpt_roundtrip(void **state)
{
	fill_ckpt();
	FILE *f = tmpfile();
	assert_non_null(f);
	assert_int_equal(cs_warm_ckpt_write(&ck, f), 0);
	rewind(f);
	assert_int_equal(cs_warm_ckpt_read(&back, f, err, sizeof err), 0);
	fclose(f);
	assert_int_equal(back.input_id, ck.input_id);
	assert_string_equal(back.input, ck.input);
	assert_int_equal(back.done.low, 100);
	assert_int_equal(back.done.nabove, 20);
	for (uint64_t i = 101; i <= 200; i++)
		assert_int_equal(cs_warm_done_has(&back.done, i), i <= 140 && i % 2 == 0);
	assert_int_equal(back.counts.filled, 86);
	assert_int_equal(back.counts.refused, 4);
	assert_int_equal(back.counts.cached, 25);
	assert_int_equal(back.counts.skipped, 1);
	assert_int_equal(back.counts.failed, 3);
	assert_int_equal(back.counts.reasons[CS_WARM_R_BAD_PARAMS], 2);
	assert_int_equal(back.counts.reasons[CS_WARM_R_MALFORMED], 1);
	assert_int_equal(back.counts.nfailures, 4);
	assert_int_equal(back.counts.failures[0].line, 7);
	assert_string_equal(back.counts.failures[0].reason, "malformed: x y"); /* one line */
	assert_false(back.finished);
	assert_int_equal(cs_warm_counts_done(&back.counts), 119);
}

/* Resuming: the lines a new run must do are exactly those not in the checkpoint, and
 * marking them all brings the mark to the end. */
static void test_ckpt_resume(void **state)
{
	fill_ckpt();
	FILE *f = tmpfile();
	assert_int_equal(cs_warm_ckpt_write(&ck, f), 0);
	rewind(f);
	assert_int_equal(cs_warm_ckpt_read(&back, f, err, sizeof err), 0);
	fclose(f);
	int todo = 0;
	for (uint64_t i = 1; i <= 200; i++) {
		if (cs_warm_done_has(&back.done, i))
			continue;
		todo++;
		assert_int_equal(cs_warm_done_mark(&back.done, i), 1);
	}
	assert_int_equal(todo, 200 - 100 - 20);
	assert_int_equal(back.done.low, 200);
	assert_int_equal(back.done.nabove, 0);
}

static void test_ckpt_many_above(void **state)
{
	/* a full window of done lines above the mark survives the round trip */
	memset(&ck, 0, sizeof ck);
	cs_warm_done_init(&ck.done);
	for (uint64_t i = 2; i <= CS_WARM_SPREAD; i++)
		assert_int_equal(cs_warm_done_mark(&ck.done, i), 1);
	FILE *f = tmpfile();
	assert_int_equal(cs_warm_ckpt_write(&ck, f), 0);
	rewind(f);
	assert_int_equal(cs_warm_ckpt_read(&back, f, err, sizeof err), 0);
	fclose(f);
	assert_int_equal(back.done.low, 0);
	assert_int_equal(back.done.nabove, CS_WARM_SPREAD - 1);
	assert_int_equal(cs_warm_done_mark(&back.done, 1), 1);
	assert_int_equal(back.done.low, CS_WARM_SPREAD);
}

static void test_ckpt_rejects(void **state)
{
	const char *bad[] = {
	        "", "something else\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\n", /* no end */
	        "cachesvc-warm checkpoint 1\nlow 5\nend\n",                      /* no input */
	        "cachesvc-warm checkpoint 1\ninput 0123 x\nlow 5\nend\n",        /* short id */
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow x\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\ndone 5\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\ndone 7 7\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\ndone 9999999\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\ndone 9\nlow 5\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow "
	        "99999999999999999999\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\ncount bogus 1\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\nreason bogus "
	        "1\nend\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\nend\nlow 6\n",
	        "cachesvc-warm checkpoint 1\ninput 0123456789abcdef x\nlow 5\nend", /* no newline */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		FILE *f = text_file(bad[i]);
		int rc = cs_warm_ckpt_read(&back, f, err, sizeof err);
		fclose(f);
		if (rc != -1)
			fail_msg("accepted bad checkpoint #%zu", i);
		assert_non_null(strstr(err, "line"));
	}
	FILE *f = text_file("cachesvc-warm checkpoint 1\ninput 0123456789abcdef some input\n"
	                    "low 5\ndone 7 9\nfinished 1\nend\n");
	assert_int_equal(cs_warm_ckpt_read(&back, f, err, sizeof err), 0);
	fclose(f);
	assert_int_equal(back.input_id, 0x0123456789abcdefULL);
	assert_string_equal(back.input, "some input");
	assert_true(back.finished);
	assert_true(cs_warm_done_has(&back.done, 9));
	assert_false(cs_warm_done_has(&back.done, 8));
}

static void test_ckpt_save_load(void **state)
{
	char dir[] = "/tmp/test_warm.XXXXXX", path[64], tmp[80];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/ck", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), 0); /* none yet */
	fill_ckpt();
	assert_int_equal(cs_warm_ckpt_save(&ck, path, err, sizeof err), 0);
	assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */
	ck.counts.filled = 91;
	assert_int_equal(cs_warm_ckpt_save(&ck, path, err, sizeof err), 0);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), 1);
	assert_int_equal(back.counts.filled, 91);
	FILE *f = fopen(path, "w");
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), -1);
	assert_non_null(strstr(err, path));
	unlink(path);
	snprintf(path, sizeof path, "%s/no/such/dir/ck", dir);
	assert_int_equal(cs_warm_ckpt_save(&ck, path, err, sizeof err), -1);
	rmdir(dir);
}

/* Reads a whole small file into buf (NUL-terminated); returns its length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Item 14 of issue 14: the save never opens a name someone else prepared. A symlink planted at
 * the old temp name "PATH.tmp" (pointing at a 0600 file of someone else's) is neither followed
 * nor removed; the checkpoint is mode 0600 even under umask 022; a symlink at the checkpoint
 * path itself is replaced by the file (its target untouched) and refused by the load; nothing
 * but the checkpoint is left in the directory. */
static void test_ckpt_save_no_follow(void **state)
{
	char dir[] = "/tmp/test_warm.XXXXXX", path[64], tmp[80], victim[80], buf[256];
	struct stat st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/ck", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	FILE *f = fopen(victim, "w");
	assert_non_null(f);
	fputs("secret\n", f);
	fclose(f);
	assert_int_equal(chmod(victim, 0600), 0);
	assert_int_equal(symlink(victim, tmp), 0);
	mode_t old_umask = umask(022);
	fill_ckpt();
	assert_int_equal(cs_warm_ckpt_save(&ck, path, err, sizeof err), 0);
	umask(old_umask);
	assert_int_equal(slurp(victim, buf, sizeof buf), 7);
	assert_string_equal(buf, "secret\n"); /* the planted link was not followed */
	assert_int_equal(lstat(tmp, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* and is still there, untouched */
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), 1);
	assert_int_equal(back.counts.filled, ck.counts.filled);

	/* a symlink at the checkpoint path: the load refuses it, the save replaces the link */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(cs_warm_ckpt_save(&ck, path, err, sizeof err), 0);
	assert_int_equal(slurp(victim, buf, sizeof buf), 7);
	assert_string_equal(buf, "secret\n");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), 1);

	/* a FIFO at the checkpoint path is refused without blocking */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(cs_warm_ckpt_load(&back, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(unlink(path), 0);

	/* no temp file left behind: only the planted link and the victim remain */
	DIR *d = opendir(dir);
	assert_non_null(d);
	int entries = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			assert_true(strcmp(e->d_name, "ck.tmp") == 0 || strcmp(e->d_name, "victim") == 0);
			entries++;
		}
	closedir(d);
	assert_int_equal(entries, 2);
	unlink(tmp);
	unlink(victim);
	rmdir(dir);
}

static void test_input_id(void **state)
{
	uint64_t a = cs_warm_input_id("file", "/a", 10, "get");
	assert_int_equal(a, cs_warm_input_id("file", "/a", 10, "get"));
	assert_int_not_equal(a, cs_warm_input_id("file", "/a", 11, "get"));
	assert_int_not_equal(a, cs_warm_input_id("file", "/b", 10, "get"));
	assert_int_not_equal(a, cs_warm_input_id("file", "/a", 10, "refresh"));
	assert_int_not_equal(a, cs_warm_input_id("sql", "/a", 10, "get"));
	/* the separators matter: "ab"+"c" differs from "a"+"bc" */
	assert_int_not_equal(
	        cs_warm_input_id("ab", "c", 0, "get"), cs_warm_input_id("a", "bc", 0, "get"));
	/* pinned (FNV-1a 64 of "file\0/srv/keys.txt\01234\0get\0"): checkpoints written by
	 * earlier versions keep matching their input */
	assert_true(cs_warm_input_id("file", "/srv/keys.txt", 1234, "get") == 0x25e7c222359c7076ULL);
}

static void test_counts_keep_first(void **state)
{
	cs_warm_counts c;
	memset(&c, 0, sizeof c);
	for (int i = 1; i <= 10; i++)
		cs_warm_counts_fail(&c, false, CS_WARM_R_TIMEOUT, (uint64_t)i, "timeout");
	cs_warm_counts_fail(&c, false, 999, 11, "weird");
	assert_int_equal(c.failed, 11);
	assert_int_equal(c.nfailures, CS_WARM_FAILURES_KEPT);
	assert_int_equal(c.failures[CS_WARM_FAILURES_KEPT - 1].line, CS_WARM_FAILURES_KEPT);
	assert_int_equal(c.reasons[CS_WARM_R_TIMEOUT], 10);
	assert_int_equal(c.reasons[CS_WARM_R_OTHER], 1);
	assert_string_equal(cs_warm_reason_name(CS_WARM_R_BAD_PARAMS), "bad_params");
	assert_int_equal(cs_warm_reason_by_name("malformed"), CS_WARM_R_MALFORMED);
	assert_int_equal(cs_warm_reason_by_name("nope"), -1);
}

/* ---- Token bucket ------------------------------------------------------------------------ */

#define SEC 1000000000LL

static void test_bucket_starts_empty(void **state)
{
	cs_warm_bucket b;
	cs_warm_bucket_init(&b, 100, 5, 0);
	int64_t w = cs_warm_bucket_take(&b, 0);
	assert_true(w > 0);
	assert_true(w <= SEC / 100 + 1);
	assert_int_equal(cs_warm_bucket_take(&b, SEC / 100), 0);
	assert_true(cs_warm_bucket_take(&b, SEC / 100) > 0);
}

static void test_bucket_burst_cap(void **state)
{
	cs_warm_bucket b;
	cs_warm_bucket_init(&b, 100, 5, 0);
	/* idle for 10 s: only `burst` tokens pile up */
	int got = 0;
	while (cs_warm_bucket_take(&b, 10 * SEC) == 0)
		got++;
	assert_int_equal(got, 5);
	cs_warm_bucket_init(&b, 100, 0.2, 0); /* burst below 1 is 1 */
	assert_int_equal(cs_warm_bucket_take(&b, 10 * SEC), 0);
	assert_true(cs_warm_bucket_take(&b, 10 * SEC) > 0);
}

/* The rate: a caller that sleeps exactly as told takes N tokens in N / rate seconds, never
 * less. */
static void test_bucket_rate(void **state)
{
	const double rates[] = {1, 7, 100, 2500, 1e6};
	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
		cs_warm_bucket b;
		cs_warm_bucket_init(&b, rates[r], rates[r] / 20, 0);
		int64_t now = 0;
		const int n = 2000;
		for (int i = 0; i < n; i++) {
			int64_t w;
			while ((w = cs_warm_bucket_take(&b, now)) > 0)
				now += w;
		}
		double want = n / rates[r];
		double got = (double)now / SEC;
		if (got < want * (1 - 1e-6) || got > want * 1.01 + 1e-6)
			fail_msg("rate %g: %d tokens took %.6f s, want %.6f", rates[r], n, got,
			        want);
	}
	/* time going backwards grants nothing */
	cs_warm_bucket b;
	cs_warm_bucket_init(&b, 10, 1, 5 * SEC);
	assert_true(cs_warm_bucket_take(&b, 1 * SEC) > 0);
}

static void test_bucket_unlimited(void **state)
{
	cs_warm_bucket b;
	cs_warm_bucket_init(&b, 0, 1, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(cs_warm_bucket_take(&b, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_line_plain),
	        cmocka_unit_test(test_line_empty_and_comments),
	        cmocka_unit_test(test_line_null_and_quotes),
	        cmocka_unit_test(test_line_malformed),
	        cmocka_unit_test(test_line_limits),
	        cmocka_unit_test(test_line_format_roundtrip),
	        cmocka_unit_test(test_req_build_and_copy),
	        cmocka_unit_test(test_done_in_order),
	        cmocka_unit_test(test_done_out_of_order),
	        cmocka_unit_test(test_done_random_window),
	        cmocka_unit_test(test_ckpt_roundtrip),
	        cmocka_unit_test(test_ckpt_resume),
	        cmocka_unit_test(test_ckpt_many_above),
	        cmocka_unit_test(test_ckpt_rejects),
	        cmocka_unit_test(test_ckpt_save_load),
        cmocka_unit_test(test_ckpt_save_no_follow),
	        cmocka_unit_test(test_input_id),
	        cmocka_unit_test(test_counts_keep_first),
	        cmocka_unit_test(test_bucket_starts_empty),
	        cmocka_unit_test(test_bucket_burst_cap),
	        cmocka_unit_test(test_bucket_rate),
	        cmocka_unit_test(test_bucket_unlimited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
