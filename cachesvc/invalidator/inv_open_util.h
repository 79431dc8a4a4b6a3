/* inv_open_util.h - the pure parts of the open-slot watch (inv_open.c, CLUSTER.md section 7):
 * no I/O, no state beyond their arguments, unit-tested (tests/unit/test_inv_open.c). */
#ifndef CS_INV_OPEN_UTIL_H
#define CS_INV_OPEN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INV_HOLD_MIN_MS      60000u   /* the hold bound's floor without a test hook */
#define INV_HOLD_BACKOFF_MAX 4        /* the bound doubles after a hold, up to 16x ... */
#define INV_HOLD_CAP_MS      1800000u /* ... and up to 30 min (never below the base) */

/* review 22 R22-3: the hold bound (ms): no complete round of open slots for this long is a loss.
 * base: hook_ms when set (a test), else max(60 s, 4 x node_timeout_ms) (0: not known); at least
 * 10 status intervals. Then doubled `backoff` times (holds that ended in a loss since the last
 * complete round; at most INV_HOLD_BACKOFF_MAX), capped at max(base, 30 min). */
uint64_t inv_open_hold_bound_ms(
        uint64_t hook_ms, uint64_t node_timeout_ms, uint64_t status_ms, unsigned backoff);

#define INV_ID_LEN   40  /* a node id, a run_id: 40 hex characters */
#define INV_MARK_MAX 192 /* a mark's value, formatted, with its NUL (4 x 41 + 21 + 1 <= it) */

/* A mark's value (<ns>:inv:open:<slot>, field <bucket>): "<src> <srun> <dst> <drun> <wall_s>",
 * a run "-" when the end did not answer INFO when marked. wall_s (review 22 R22-1): the marking
 * round's start, the invalidator's wall clock (s), so an end not answered then can be vouched
 * for by its uptime after a restart too; 0: not recorded (a mark of an older version: 4 tokens,
 * a "-" in it stays a loss). */
typedef struct inv_mark {
	char src[INV_ID_LEN + 1], srun[INV_ID_LEN + 1];
	char dst[INV_ID_LEN + 1], drun[INV_ID_LEN + 1];
	uint64_t wall_s;
} inv_mark;

/* s[0..n) into *m: false when malformed (ids not 40 hex characters, runs neither "-" nor 40
 * hex characters, other than 4 or 5 tokens separated by one space, a 5th token not a decimal
 * number of at most 19 digits). */
bool inv_open_mark_parse(const char *s, size_t n, inv_mark *m);
/* *m into buf (INV_MARK_MAX bytes suffice): its length, or -1 when it does not fit. */
int inv_open_mark_format(char *buf, size_t len, const inv_mark *m);

/* review 24 R24-1: whether a mark read back (rd, at a stream start) keeps the monotonic marking
 * time of the one this process holds for its bucket (held: `on`, its seen_us): only when held
 * is on, was written by this process (seen_us != 0) and has the same content (ends, runs and
 * wall time). Anything else read back is judged by its wall time. */
bool inv_open_keeps_seen(bool on, uint64_t seen_us, const inv_mark *held, const inv_mark *rd);

/* review R18-2 / R22-1: an end that did not answer when marked is vouched for only when its
 * uptime (up_s, whole seconds; 0: unknown) covers the time since the marking round started:
 * seen_us/now_us on the monotonic clock when the mark was written by this process (seen_us 0:
 * read back from another), the elapsed time then the larger of the monotonic one and
 * wall_now_s - wall_s + 1 (this process's wall clock, which runs through a suspend: review 25
 * R25-1); else wall_s/wall_now_s (s) from the mark (wall_s 0: not recorded, not vouched
 * for). Redis's uptime may read up to 1 s more than the real one: the first rule asks for
 * 1 s more (review 24 R24-2); the wall rule compares clocks of up to three hosts and asks for
 * INV_WALL_MARGIN_S more (review 24 R24-1). */
#define INV_WALL_MARGIN_S 30
bool inv_open_vouched(
        uint64_t up_s, uint64_t seen_us, uint64_t now_us, uint64_t wall_s, uint64_t wall_now_s);

/* review R18-3 / R22-4: every node's flags over every master's CLUSTER NODES this round, by
 * id: open addressing (twice the entries' slots, linear probing). Full, an id is not kept and
 * the table is marked overflowed: that id's flags are unknown (no failed round). */
#define INV_SEEN_MAX   1024 /* ids kept (replicas and handshake ghosts too) */
#define INV_SEEN_SLOTS 2048 /* a power of two */
typedef struct inv_seen {
	struct {
		char id[INV_ID_LEN + 1];
		uint8_t fl;
	} e[INV_SEEN_MAX];
	uint16_t slot[INV_SEEN_SLOTS]; /* an entry's index + 1; 0: empty */
	int n;
	bool overflow; /* an id was not kept */
} inv_seen;

void inv_seen_reset(inv_seen *t);
/* ORs fl into id's flags (id: at most INV_ID_LEN characters; a longer one is cut). */
void inv_seen_add(inv_seen *t, const char *id, uint8_t fl);
/* id's flags: 0 when listed by none, -1 when not known (the table overflowed, id not kept). */
int inv_seen_get(const inv_seen *t, const char *id);

#endif
