/* entry.h - the layout of a cache entry in Redis: a fixed 32-byte header followed by the
 * result object exactly as the protocol returns it, so a hit is passed through as is.
 *
 *   0  u8  magic 0xC5
 *   1  u8  format version (1)
 *   2  u8  flags: bit 0 = negative (the query returned no rows)
 *   3  u8  reserved (0)
 *   4  u64 lsn           the data is at least as new as this LSN (0: unknown)
 *   12 i64 filled_ms     wall clock (Unix ms) when the data was read from PostgreSQL
 *   20 i64 expires_ms    soft expiry: past it the entry is stale (served only within
 *                        stale_while_revalidate); Redis's own TTL is the hard limit
 *   28 u32 delta_ms      how long the query took to recompute (XFetch's delta)
 *   32 ...               result object
 * All integers big-endian. Pure. */
#ifndef CS_ENTRY_H
#define CS_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_ENTRY_HDR	  32
#define CS_ENTRY_MAGIC	  0xC5
#define CS_ENTRY_VERSION  1
#define CS_ENTRY_NEGATIVE 0x01

typedef struct cs_entry {
	uint8_t flags;
	uint64_t lsn;
	int64_t filled_ms;
	int64_t expires_ms;
	uint32_t delta_ms;
	const uint8_t *result; /* points into the parsed buffer */
	size_t result_len;
} cs_entry;

/* Writes the header for `e` (result fields ignored) into out. */
void cs_entry_write_header(const cs_entry *e, uint8_t out[CS_ENTRY_HDR]);

/* Parses buf; result points into buf. Returns false when the bytes are not an entry of
 * this format (foreign value, older format, truncated): the caller treats it as a miss. */
bool cs_entry_parse(const uint8_t *buf, size_t len, cs_entry *out);

#endif
