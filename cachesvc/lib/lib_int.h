/* lib_int.h - what lib.c (the asynchronous handle, results) shares with lib_sync.c (the
 * blocking handle): config loading with the startup checks, request conversion, results.
 * Internal to libcachesvc; nothing here is exported. */
#ifndef CS_LIB_INT_H
#define CS_LIB_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cachesvc.h"
#include "config.h"
#include "cs_proto.h"

/* A cachesvc_result is a cs_result: the public type is never defined, only converted. */
static inline cachesvc_result *cs_lib_pub(cs_result *r)
{
	return (cachesvc_result *)(void *)r;
}
static inline const cs_result *cs_lib_res(const cachesvc_result *r)
{
	return (const cs_result *)(const void *)r;
}

/* Fills *err (may be NULL) with code and a formatted message. Returns code. */
int cs_lib_error(cachesvc_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Loads config_path, applies its log level and, unless opt->flags has
 * CACHESVC_F_NO_STARTUP_CHECKS, runs the daemon's startup checks (they block, with
 * timeouts). Returns a new config (caller frees with cs_config_free) or NULL with
 * CACHESVC_E_ARG / _CONFIG / _CHECK in *err. */
cs_config *cs_lib_config_load(const char *config_path, const cachesvc_options *opt,
	cachesvc_error *err) __attribute__((warn_unused_result));

/* Checks a public request and fills *out with a view of it (strings borrowed from in and
 * token_shard) and *op with CS_OP_GET or CS_OP_REFRESH. token_shard (NULL or "" for none)
 * is the shard of the read-your-writes token in->min_lsn. Returns 0, CACHESVC_E_ARG (also a
 * token_shard that is no shard name, or without a min_lsn) or CACHESVC_E_TOO_LARGE
 * (parameter bytes over max_frame, the daemon's request frame limit). Never blocks. */
int cs_lib_req_view(const cachesvc_request *in, const char *token_shard, uint32_t max_frame,
        cs_get_req *out, uint8_t *op) __attribute__((warn_unused_result));

/* A token naming a shard on a deployment without [shard NAME] sections (sharded false): the
 * daemon's answer (server.c shard_token_refused), BAD_PARAMS with the message in msg; then
 * true. With shards the engine judges the token (key_route). Never blocks. */
bool cs_lib_shard_refused(const cs_get_req *g, bool sharded, char *msg, size_t msglen);

/* The same for an invalidation (has_params false: the whole query). */
int cs_lib_inval_view(const char *query, const cachesvc_value *params, uint32_t nparams,
	bool has_params, uint32_t max_frame, cs_inval_req *out) __attribute__((warn_unused_result));

/* Builds a result from what the engine hands to its callback: the [meta, result] body is
 * assembled in scratch (reused; caller-owned) and decoded into a new cs_result (caller
 * frees). Returns 0, or CACHESVC_E_NOMEM / CACHESVC_E_INTERNAL. Never blocks. */
int cs_lib_result_new(cs_buf *scratch, const cs_meta *meta, const uint8_t *result, size_t len,
	cs_result **out) __attribute__((warn_unused_result));

/* Largest [meta, result] body: a result the engine serves at all, plus the meta map. */
#define CS_LIB_MAX_BODY ((64u << 20) + 256u)

#endif
