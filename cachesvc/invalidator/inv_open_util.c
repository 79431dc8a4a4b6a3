/* inv_open_util.c - the pure parts of the open-slot watch (see inv_open_util.h). */
#include "inv_open_util.h"

#include <stdio.h>
#include <string.h>

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

static bool hex40(const char *t, size_t n)
{
	if (n != INV_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

bool inv_open_mark_parse(const char *s, size_t n, inv_mark *m)
{
	const char *tok[6];
	size_t len[6];
	int k = 0;
	size_t i = 0;
	if (s == NULL || n >= INV_MARK_MAX)
		return false;
	while (i <= n) { /* tokens separated by exactly one space, none empty */
		size_t j = i;
		while (j < n && s[j] != ' ')
			j++;
		if (j == i || k == 6)
			return false;
		tok[k] = s + i, len[k++] = j - i;
		i = j + 1;
	}
	if (k != 4 && k != 5)
		return false;
	if (!hex40(tok[0], len[0]) || !hex40(tok[2], len[2]))
		return false;
	for (int r = 1; r <= 3; r += 2)
		if (!(len[r] == 1 && tok[r][0] == '-') && !hex40(tok[r], len[r]))
			return false;
	uint64_t w = 0;
	if (k == 5) {
		if (len[4] > 19)
			return false;
		for (size_t d = 0; d < len[4]; d++) {
			if (tok[4][d] < '0' || tok[4][d] > '9')
				return false;
			w = w * 10 + (uint64_t)(tok[4][d] - '0');
		}
	}
	memset(m, 0, sizeof *m);
	memcpy(m->src, tok[0], len[0]);
	memcpy(m->srun, tok[1], len[1]);
	memcpy(m->dst, tok[2], len[2]);
	memcpy(m->drun, tok[3], len[3]);
	m->wall_s = w;
	return true;
}

int inv_open_mark_format(char *buf, size_t len, const inv_mark *m)
{
	int n = snprintf(buf, len, "%s %s %s %s %llu", m->src, m->srun, m->dst, m->drun,
	        (unsigned long long)m->wall_s);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

bool inv_open_keeps_seen(bool on, uint64_t seen_us, const inv_mark *held, const inv_mark *rd)
{
	return on && seen_us != 0 && held->wall_s == rd->wall_s &&
	       strcmp(held->src, rd->src) == 0 && strcmp(held->srun, rd->srun) == 0 &&
	       strcmp(held->dst, rd->dst) == 0 && strcmp(held->drun, rd->drun) == 0;
}

bool inv_open_vouched(
        uint64_t up_s, uint64_t seen_us, uint64_t now_us, uint64_t wall_s, uint64_t wall_now_s)
{
	if (up_s == 0 || up_s > UINT64_MAX / 1000000u)
		return false; /* unknown, or not a real uptime */
	/* Redis's uptime_in_seconds is the difference of two whole-second clocks: up to 1 s
	 * more than the real uptime (review 24 R24-2) */
	if (seen_us != 0) {
		/* written by this process: elapsed on its own clocks. CLOCK_MONOTONIC stops while
		 * the host is suspended or the VM paused (what breaks a stream, so what an
		 * inherited mark has been through: review 25 R25-1); this process's wall clock,
		 * in whole seconds (up to 1 s more), does not. The larger of the two; a wall
		 * clock that went back is not used. */
		if (now_us < seen_us)
			return false;
		uint64_t el = now_us - seen_us;
		if (wall_s != 0 && wall_now_s >= wall_s &&
		        wall_now_s - wall_s < UINT64_MAX / 2000000u &&
		        (wall_now_s - wall_s + 1) * 1000000u > el)
			el = (wall_now_s - wall_s + 1) * 1000000u;
		return (up_s - 1) * 1000000u >= el;
	}
	if (wall_s == 0 || wall_now_s < wall_s)
		return false; /* not recorded, or the clock went back: cannot vouch */
	/* two hosts' wall clocks (the marking invalidator may have been a standby elsewhere,
	 * Redis's host a third), whole seconds on both sides: INV_WALL_MARGIN_S of error
	 * tolerated; an end restarted within it of the mark is a loss (review 24 R24-1) */
	return up_s >= INV_WALL_MARGIN_S && up_s - INV_WALL_MARGIN_S >= wall_now_s - wall_s;
}

void inv_seen_reset(inv_seen *t)
{
	memset(t->slot, 0, sizeof t->slot);
	t->n = 0;
	t->overflow = false;
}

/* FNV-1a over the id's characters, and the slot where it is or would go. */
static uint32_t seen_find(const inv_seen *t, const char *id, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)id[i]) * 16777619u;
	uint32_t s = h & (INV_SEEN_SLOTS - 1);
	/* at most INV_SEEN_MAX of INV_SEEN_SLOTS used: an empty slot always ends the probe */
	while (t->slot[s] != 0) {
		const char *e = t->e[t->slot[s] - 1].id;
		if (strncmp(e, id, n) == 0 && e[n] == '\0')
			break;
		s = (s + 1) & (INV_SEEN_SLOTS - 1);
	}
	return s;
}

void inv_seen_add(inv_seen *t, const char *id, uint8_t fl)
{
	size_t n = strnlen(id, INV_ID_LEN);
	uint32_t s = seen_find(t, id, n);
	if (t->slot[s] != 0) {
		t->e[t->slot[s] - 1].fl |= fl;
		return;
	}
	if (t->n >= INV_SEEN_MAX) {
		t->overflow = true; /* its flags unknown */
		return;
	}
	memcpy(t->e[t->n].id, id, n);
	t->e[t->n].id[n] = '\0';
	t->e[t->n].fl = fl;
	t->slot[s] = (uint16_t)++t->n;
}

int inv_seen_get(const inv_seen *t, const char *id)
{
	uint32_t s = seen_find(t, id, strnlen(id, INV_ID_LEN));
	if (t->slot[s] != 0)
		return t->e[t->slot[s] - 1].fl;
	return t->overflow ? -1 : 0;
}
