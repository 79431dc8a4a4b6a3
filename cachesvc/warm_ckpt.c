/* warm_ckpt.c - cachesvc-warm's done-line tracker, outcome counters and checkpoint file
 * (format in warm_ckpt.h). */
#include "warm_ckpt.h"
#include "textutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- Reasons ----------------------------------------------------------------------------- */

static const char *const reason_names[CS_WARM_NREASONS] = {
        [CS_WARM_R_UNKNOWN_QUERY] = "unknown_query",
        [CS_WARM_R_BAD_PARAMS] = "bad_params",
        [CS_WARM_R_OVERLOADED] = "overloaded",
        [CS_WARM_R_UNAVAILABLE] = "unavailable",
        [CS_WARM_R_TOO_LARGE] = "too_large",
        [CS_WARM_R_AUTH] = "auth",
        [CS_WARM_R_SERVER_PROTOCOL] = "protocol",
        [CS_WARM_R_INTERNAL] = "internal",
        [CS_WARM_R_SERVER_TIMEOUT] = "server_timeout",
        [CS_WARM_R_SHUTTING_DOWN] = "shutting_down",
        [CS_WARM_R_IO] = "io",
        [CS_WARM_R_TIMEOUT] = "timeout",
        [CS_WARM_R_CLOSED] = "closed",
        [CS_WARM_R_BAD_REPLY] = "bad_reply",
        [CS_WARM_R_NOMEM] = "nomem",
        [CS_WARM_R_BAD_ARGUMENT] = "bad_argument",
        [CS_WARM_R_CONNECT] = "connect",
        [CS_WARM_R_MALFORMED] = "malformed",
        [CS_WARM_R_OTHER] = "other",
};

const char *cs_warm_reason_name(int reason)
{
	if (reason < 0 || reason >= CS_WARM_NREASONS)
		return "other";
	return reason_names[reason];
}

int cs_warm_reason_by_name(const char *name)
{
	for (int i = 0; i < CS_WARM_NREASONS; i++)
		if (strcmp(reason_names[i], name) == 0)
			return i;
	return -1;
}

/* ---- Done lines -------------------------------------------------------------------------- */

void cs_warm_done_init(cs_warm_done *d)
{
	memset(d, 0, sizeof *d);
}

static bool bit_get(const cs_warm_done *d, uint64_t line)
{
	uint64_t i = line % CS_WARM_SPREAD;
	return (d->bits[i / 64] >> (i % 64)) & 1;
}

static void bit_set(cs_warm_done *d, uint64_t line, bool on)
{
	uint64_t i = line % CS_WARM_SPREAD, m = (uint64_t)1 << (i % 64);
	if (on)
		d->bits[i / 64] |= m;
	else
		d->bits[i / 64] &= ~m;
}

bool cs_warm_done_fits(const cs_warm_done *d, uint64_t line)
{
	return line <= d->low + CS_WARM_SPREAD;
}

bool cs_warm_done_has(const cs_warm_done *d, uint64_t line)
{
	if (line <= d->low)
		return true;
	return cs_warm_done_fits(d, line) && bit_get(d, line);
}

/* The bit of line n (low < n <= low + SPREAD) is n % SPREAD: distinct for all n in that
 * window, and the bit of low + 1 is cleared as the mark passes it, so when the window
 * slides by one the bit reused for the new line low + SPREAD + 1 is already clear. */
int cs_warm_done_mark(cs_warm_done *d, uint64_t line)
{
	if (line == 0 || !cs_warm_done_fits(d, line))
		return -1;
	if (cs_warm_done_has(d, line))
		return 0;
	if (line == d->low + 1) {
		d->low++;
		while (d->nabove > 0 && bit_get(d, d->low + 1)) {
			bit_set(d, d->low + 1, false);
			d->low++;
			d->nabove--;
		}
	} else {
		bit_set(d, line, true);
		d->nabove++;
	}
	return 1;
}

/* ---- Counters ---------------------------------------------------------------------------- */

/* Copies text into a one-line buffer: control characters become spaces. */
static void copy_line(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;
	for (; src != NULL && src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
	dst[i] = '\0';
}

void cs_warm_counts_fail(
        cs_warm_counts *c, bool skipped, int reason, uint64_t line, const char *text)
{
	if (reason < 0 || reason >= CS_WARM_NREASONS)
		reason = CS_WARM_R_OTHER;
	if (skipped)
		c->skipped++;
	else
		c->failed++;
	c->reasons[reason]++;
	if (c->nfailures < CS_WARM_FAILURES_KEPT) {
		cs_warm_failure *f = &c->failures[c->nfailures++];
		f->line = line;
		copy_line(f->reason, sizeof f->reason, text);
	}
}

uint64_t cs_warm_counts_done(const cs_warm_counts *c)
{
	return c->filled + c->refused + c->cached + c->skipped + c->failed;
}

/* ---- Checkpoint text --------------------------------------------------------------------- */

uint64_t cs_warm_input_id(const char *kind, const char *identity, uint64_t size, const char *mode)
{
	char num[24];
	const char *parts[4] = {kind, identity, num, mode};
	uint64_t h = CS_FNV1A64_INIT;
	snprintf(num, sizeof num, "%" PRIu64, size);
	for (int p = 0; p < 4; p++)
		h = cs_fnv1a64(h, parts[p], strlen(parts[p]) + 1); /* each with its NUL: the separator */
	return h;
}

int cs_warm_ckpt_write(const cs_warm_ckpt *ck, FILE *f)
{
	char input[CS_WARM_INPUT_TEXT];
	const cs_warm_counts *c = &ck->counts;
	copy_line(input, sizeof input, ck->input);
	fprintf(f, "cachesvc-warm checkpoint 1\ninput %016" PRIx64 " %s\nlow %" PRIu64 "\n",
	        ck->input_id, input, ck->done.low);
	uint64_t left = ck->done.nabove, line = ck->done.low;
	while (left > 0) {
		fputs("done", f);
		for (int k = 0; k < 16 && left > 0;) {
			line++;
			if (cs_warm_done_has(&ck->done, line)) {
				fprintf(f, " %" PRIu64, line);
				k++;
				left--;
			}
		}
		fputc('\n', f);
	}
	fprintf(f,
	        "count filled %" PRIu64 "\ncount refused %" PRIu64 "\ncount cached %" PRIu64
	        "\ncount skipped %" PRIu64 "\ncount failed %" PRIu64 "\n",
	        c->filled, c->refused, c->cached, c->skipped, c->failed);
	for (int r = 0; r < CS_WARM_NREASONS; r++)
		if (c->reasons[r] > 0)
			fprintf(f, "reason %s %" PRIu64 "\n", reason_names[r], c->reasons[r]);
	for (uint32_t i = 0; i < c->nfailures && i < CS_WARM_FAILURES_KEPT; i++) {
		char text[CS_WARM_REASON_TEXT];
		copy_line(text, sizeof text, c->failures[i].reason);
		fprintf(f, "failure %" PRIu64 " %s\n", c->failures[i].line, text);
	}
	fprintf(f, "finished %d\nend\n", ck->finished ? 1 : 0);
	return ferror(f) ? -1 : 0;
}

/* Parses a decimal uint64 word at *p (advancing past it and one blank). */
static int take_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != '\0' && *s != ' ')
		return -1;
	if (*s == ' ')
		s++;
	*p = s;
	*out = v;
	return 0;
}

/* Parses "count NAME N" / "reason NAME N": the name (into name) and the number. */
static int take_named(const char *s, char *name, size_t namelen, uint64_t *v)
{
	const char *sp = strchr(s, ' ');
	if (sp == NULL || (size_t)(sp - s) >= namelen)
		return -1;
	memcpy(name, s, (size_t)(sp - s));
	name[sp - s] = '\0';
	s = sp + 1;
	return take_u64(&s, v) == 0 && *s == '\0' ? 0 : -1;
}

#define CKPT_MAX_LINES (CS_WARM_SPREAD / 16 + 64) /* done lines + everything else */

int cs_warm_ckpt_read(cs_warm_ckpt *ck, FILE *f, char *err, size_t errlen)
{
	char buf[1024];
	uint64_t lineno = 0;
	bool have_input = false, have_low = false, ended = false;
	memset(ck, 0, sizeof *ck);
	cs_warm_done_init(&ck->done);
#define BAD(...)                                                                                   \
	do {                                                                                       \
		char why_[200];                                                                    \
		snprintf(why_, sizeof why_, __VA_ARGS__);                                          \
		snprintf(err, errlen, "line %" PRIu64 ": %s", lineno, why_);                       \
		return -1;                                                                         \
	} while (0)
	while (fgets(buf, sizeof buf, f) != NULL) {
		lineno++;
		size_t n = strlen(buf);
		if (n == 0 || buf[n - 1] != '\n')
			BAD("line too long, or no newline at its end");
		buf[--n] = '\0';
		if (ended)
			BAD("text after \"end\"");
		if (lineno > CKPT_MAX_LINES)
			BAD("too many lines");
		if (lineno == 1) {
			if (strcmp(buf, "cachesvc-warm checkpoint 1") != 0)
				BAD("not a cachesvc-warm checkpoint (version 1)");
			continue;
		}
		const char *s;
		uint64_t v;
		char name[32];
		if (strncmp(buf, "input ", 6) == 0) {
			s = buf + 6;
			char *end;
			errno = 0;
			ck->input_id = strtoull(s, &end, 16);
			if (errno != 0 || end != s + 16 || (*end != ' ' && *end != '\0'))
				BAD("bad input id");
			copy_line(ck->input, sizeof ck->input, *end ? end + 1 : "");
			have_input = true;
		} else if (strncmp(buf, "low ", 4) == 0) {
			s = buf + 4;
			if (have_low || take_u64(&s, &v) != 0 || *s != '\0')
				BAD("bad low-water mark");
			ck->done.low = v;
			have_low = true;
		} else if (strncmp(buf, "done ", 5) == 0) {
			if (!have_low)
				BAD("done lines before the low-water mark");
			s = buf + 5;
			while (*s) {
				if (take_u64(&s, &v) != 0)
					BAD("bad line number");
				if (v <= ck->done.low || !cs_warm_done_fits(&ck->done, v))
					BAD("line %" PRIu64 " is outside the done window", v);
				if (cs_warm_done_mark(&ck->done, v) != 1)
					BAD("line %" PRIu64 " listed twice", v);
			}
		} else if (strncmp(buf, "count ", 6) == 0) {
			if (take_named(buf + 6, name, sizeof name, &v) != 0)
				BAD("bad count");
			if (strcmp(name, "filled") == 0)
				ck->counts.filled = v;
			else if (strcmp(name, "refused") == 0) /* absent before: 0 */
				ck->counts.refused = v;
			else if (strcmp(name, "cached") == 0)
				ck->counts.cached = v;
			else if (strcmp(name, "skipped") == 0)
				ck->counts.skipped = v;
			else if (strcmp(name, "failed") == 0)
				ck->counts.failed = v;
			else
				BAD("unknown count \"%s\"", name);
		} else if (strncmp(buf, "reason ", 7) == 0) {
			int r;
			if (take_named(buf + 7, name, sizeof name, &v) != 0 ||
			        (r = cs_warm_reason_by_name(name)) < 0)
				BAD("bad reason");
			ck->counts.reasons[r] = v;
		} else if (strncmp(buf, "failure ", 8) == 0) {
			s = buf + 8;
			if (take_u64(&s, &v) != 0)
				BAD("bad failure");
			if (ck->counts.nfailures < CS_WARM_FAILURES_KEPT) {
				cs_warm_failure *fl = &ck->counts.failures[ck->counts.nfailures++];
				fl->line = v;
				copy_line(fl->reason, sizeof fl->reason, s);
			}
		} else if (strncmp(buf, "finished ", 9) == 0) {
			if (strcmp(buf + 9, "0") != 0 && strcmp(buf + 9, "1") != 0)
				BAD("bad finished flag");
			ck->finished = buf[9] == '1';
		} else if (strcmp(buf, "end") == 0) {
			ended = true;
		} else {
			BAD("unknown line");
		}
	}
	if (ferror(f))
		BAD("read error: %s", strerror(errno));
	if (lineno == 0)
		BAD("empty file");
	if (!have_input || !have_low || !ended)
		BAD("incomplete checkpoint (no %s)", !have_input ? "input"
		                                     : !have_low ? "low"
		                                                 : "end");
#undef BAD
	return 0;
}

/* ---- Checkpoint file --------------------------------------------------------------------- */

/* Creates the temp file next to path: "PATH.tmp.<16 random hex>", O_EXCL | O_NOFOLLOW, mode
 * 0600. O_EXCL never opens an existing name (a symlink planted there included), and the
 * name is unpredictable, so nobody can prepare it in advance; a collision is retried with a
 * new name. Returns the fd, or -1 (errno set). */
static int create_temp(const char *path, char *tmp, size_t tmplen)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		uint64_t r;
		if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
			/* no entropy yet (early boot): time and pid, still checked by O_EXCL */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			    ((uint64_t)getpid() << 40) ^ (uint64_t)attempt;
		}
		if (snprintf(tmp, tmplen, "%s.tmp.%016" PRIx64, path, r) >= (int)tmplen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int cs_warm_ckpt_save(const cs_warm_ckpt *ck, const char *path, char *err, size_t errlen)
{
	char tmp[4096], dir[4096];
	int fd = create_temp(path, tmp, sizeof tmp);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create a temporary file next to it: %s", path,
		        strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	int rc = 0, saved = 0;
	/* 0600 whatever the umask left: the file names the input and its failures */
	if (fchmod(fd, 0600) != 0)
		rc = -1;
	if (rc == 0)
		rc = cs_warm_ckpt_write(ck, f);
	if (rc == 0 && fflush(f) != 0)
		rc = -1;
	if (rc == 0 && fsync(fd) != 0)
		rc = -1;
	saved = errno;
	if (fclose(f) != 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	/* rename() replaces the directory entry: a symlink at path is replaced by the file,
	 * never followed, so whatever it pointed at is left alone. */
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -1;
		saved = errno;
	}
	if (rc != 0) {
		snprintf(err, errlen, "writing %s: %s", tmp, strerror(saved));
		unlink(tmp);
		return -1;
	}
	/* The rename is durable once the directory is synced; a failure here only loses the
	 * newest checkpoint after a crash of the machine, and the older one is still valid. */
	snprintf(dir, sizeof dir, "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

int cs_warm_ckpt_load(cs_warm_ckpt *ck, const char *path, char *err, size_t errlen)
{
	/* O_NOFOLLOW: a symlink at path is refused, not read through (the save would replace
	 * it anyway); O_NONBLOCK: a FIFO planted there cannot block the open. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			snprintf(err, errlen,
			        "%s: is a symbolic link (refused: give the file itself)", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	char why[300];
	int rc = cs_warm_ckpt_read(ck, f, why, sizeof why);
	fclose(f);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	return 1;
}
