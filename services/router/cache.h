/* The router's answer cache: a repeated query gets the answer the cascade
 * accepted before, at once, without asking any tier.
 *
 * The key is exact: every message's role and content with runs of white
 * space collapsed to one space and the ends trimmed, plus max_tokens,
 * temperature, policy and consent. Only queries whose answer should not vary
 * are cached: temperature 0, or no temperature when cache.unset_temperature
 * is on (the default: a PLC that asks without one wants the answer, not a
 * sample). Only accepted answers are stored, never errors, degraded or
 * withheld drafts; the router decides that.
 *
 * LRU with a TTL (cache.ttl_s), capped in entries (cache.max_entries) and in
 * bytes of keys and answers (cache.max_bytes). One mutex; a lookup is a hash,
 * a bucket walk and a memcmp. ec_cache_configure applies new limits at
 * runtime (evicting down to them) and empties the cache when it is turned
 * off. */
#ifndef EC_ROUTER_CACHE_H
#define EC_ROUTER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/buf.h"
#include "edgecascade/config.h"
#include "edgecascade/proto.h"

typedef struct ec_cache ec_cache;

/* What a hit serves (owned strings). */
typedef struct ec_cache_hit {
    char *answer;
    char *tier_name; /* the tier that first answered */
    char *model;
    uint32_t tier_index;
    double confidence;
    double threshold;
    uint32_t tokens_in;
    uint32_t tokens_out;
    uint64_t stored_ms; /* when it was stored (epoch ms) */
} ec_cache_hit;

typedef struct ec_cache_stats {
    size_t entries;
    size_t bytes;
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions; /* for room or age */
} ec_cache_stats;

ec_err ec_cache_create(ec_cache **out, const ec_config *cfg, ec_error *err);
/* Applies cache.* from cfg; turning the cache off empties it. */
void ec_cache_configure(ec_cache *c, const ec_config *cfg);
void ec_cache_destroy(ec_cache *c);
/* Drops every entry (e.g. after the tiers changed). */
void ec_cache_clear(ec_cache *c);

/* Builds q's key into key (reset first). false when the cache is off or q is
 * not cacheable (temperature above 0, or unset and cache.unset_temperature
 * off). */
bool ec_cache_key(ec_cache *c, const ec_query *q, ec_buf *key);

/* Looks key up at now_ms; on a hit fills out (the caller clears it). An entry
 * older than the TTL is removed and counts as a miss. */
bool ec_cache_get(ec_cache *c, const void *key, size_t key_len, uint64_t now_ms, ec_cache_hit *out);
/* Stores a copy of v under key (replacing an older entry), evicting the least
 * recently used until the limits hold. An entry larger than max_bytes is not
 * stored. */
void ec_cache_put(ec_cache *c, const void *key, size_t key_len, const ec_cache_hit *v,
                  uint64_t now_ms);

void ec_cache_hit_clear(ec_cache_hit *h);
void ec_cache_stats_get(ec_cache *c, ec_cache_stats *out);

#endif
