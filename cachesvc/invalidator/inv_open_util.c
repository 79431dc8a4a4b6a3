/* inv_open_util.c - the pure parts of the open-slot watch (see inv_open_util.h). */
#include "inv_open_util.h"

#define DAY_MS (24u * 3600u * 1000u) /* inputs are clamped there: no overflow below */

static uint64_t clamp_day(uint64_t ms)
{
	return ms < DAY_MS ? ms : DAY_MS;
}

uint64_t inv_open_hold_bound_ms(
        uint64_t hook_ms, uint64_t node_timeout_ms, uint64_t status_ms, unsigned backoff)
{
	uint64_t base = hook_ms ? clamp_day(hook_ms) : INV_HOLD_MIN_MS;
	if (!hook_ms && 4 * clamp_day(node_timeout_ms) > base)
		base = 4 * clamp_day(node_timeout_ms);
	if (10 * clamp_day(status_ms) > base)
		base = 10 * clamp_day(status_ms);
	uint64_t bound = base << (backoff < INV_HOLD_BACKOFF_MAX ? backoff : INV_HOLD_BACKOFF_MAX);
	uint64_t cap = base > INV_HOLD_CAP_MS ? base : INV_HOLD_CAP_MS;
	return bound < cap ? bound : cap;
}
