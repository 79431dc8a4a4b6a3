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

#endif
