/* The answer cache; see cache.h. A chained hash table (FNV-1a over the
 * normalised key) for the lookup, a doubly linked list for the LRU order,
 * both under one mutex. */
#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

#define MIN_BUCKETS 64
#define MAX_BUCKETS (1u << 20)

typedef struct entry {
    struct entry *chain;       /* bucket chain */
    struct entry *prev, *next; /* LRU: head is the most recent */
    uint64_t hash;
    char *key;
    size_t key_len;
    size_t bytes; /* what this entry counts against max_bytes */
    ec_cache_hit v;
} entry;

struct ec_cache {
    pthread_mutex_t lock;
    bool enabled;
    bool unset_temperature;
    uint64_t ttl_ms;
    size_t max_entries;
    size_t max_bytes;
    entry **buckets;
    size_t n_buckets; /* a power of two */
    entry *head, *tail;
    ec_cache_stats st;
};

static uint64_t fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static size_t buckets_for(size_t entries)
{
    size_t n = MIN_BUCKETS;
    while (n < entries && n < MAX_BUCKETS)
        n <<= 1;
    return n;
}

void ec_cache_hit_clear(ec_cache_hit *h)
{
    if (!h)
        return;
    free(h->answer);
    free(h->tier_name);
    free(h->model);
    memset(h, 0, sizeof(*h));
}

static ec_err hit_copy(ec_cache_hit *dst, const ec_cache_hit *src)
{
    *dst = *src;
    dst->answer = ec_strdup0(src->answer);
    dst->tier_name = ec_strdup0(src->tier_name);
    dst->model = ec_strdup0(src->model);
    if ((src->answer && !dst->answer) || (src->tier_name && !dst->tier_name) ||
        (src->model && !dst->model)) {
        ec_cache_hit_clear(dst);
        return EC_ERR_NOMEM;
    }
    return EC_OK;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* ---- list and table, under lock ---- */

static void lru_unlink(ec_cache *c, entry *e)
{
    if (c->head == e)
        c->head = e->next;
    else if (e->prev)
        e->prev->next = e->next;
    if (c->tail == e)
        c->tail = e->prev;
    else if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(ec_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    else
        c->tail = e; /* the list was empty */
    c->head = e;
}

static void remove_entry(ec_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp)
        *pp = e->chain;
    lru_unlink(c, e);
    c->st.entries--;
    c->st.bytes -= e->bytes;
    free(e->key);
    ec_cache_hit_clear(&e->v);
    free(e);
}

static entry *find(ec_cache *c, uint64_t h, const void *key, size_t len)
{
    for (entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void evict_to_limits(ec_cache *c)
{
    while (c->tail && (c->st.entries > c->max_entries || c->st.bytes > c->max_bytes)) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
}

/* Grows the table to suit max_entries; keeps the old one if memory is short. */
static void rehash(ec_cache *c, size_t n)
{
    if (n == c->n_buckets)
        return;
    entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (entry *e = c->head; e; e = e->next) {
        size_t i = e->hash & (n - 1);
        e->chain = b[i];
        b[i] = e;
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

static void apply_config(ec_cache *c, const ec_config *cfg)
{
    c->enabled = cfg->cache_enabled;
    c->unset_temperature = cfg->cache_unset_temperature;
    c->ttl_ms = (uint64_t)cfg->cache_ttl_s * 1000u;
    c->max_entries = cfg->cache_max_entries > 0 ? (size_t)cfg->cache_max_entries : 1;
    c->max_bytes = cfg->cache_max_bytes;
}

/* ---- public ---- */

ec_err ec_cache_create(ec_cache **out, const ec_config *cfg, ec_error *err)
{
    ec_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return ec_error_set(err, EC_ERR_NOMEM, "cache: out of memory");
    apply_config(c, cfg);
    c->n_buckets = buckets_for(c->max_entries);
    c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
    if (!c->buckets) {
        free(c);
        return ec_error_set(err, EC_ERR_NOMEM, "cache: out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return EC_OK;
}

static void clear_locked(ec_cache *c)
{
    while (c->head)
        remove_entry(c, c->head);
}

void ec_cache_configure(ec_cache *c, const ec_config *cfg)
{
    pthread_mutex_lock(&c->lock);
    apply_config(c, cfg);
    if (!c->enabled)
        clear_locked(c);
    evict_to_limits(c);
    rehash(c, buckets_for(c->max_entries));
    pthread_mutex_unlock(&c->lock);
}

void ec_cache_destroy(ec_cache *c)
{
    if (!c)
        return;
    clear_locked(c);
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void ec_cache_clear(ec_cache *c)
{
    pthread_mutex_lock(&c->lock);
    clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Appends s with every run of white space as one space, without the ends;
 * words go in whole, not byte by byte. */
static ec_err append_normalised(ec_buf *b, const char *s)
{
    const char *p = s ? s : "";
    bool first = true;
    while (*p) {
        while (is_space(*p))
            p++;
        const char *w = p;
        while (*p && !is_space(*p))
            p++;
        if (p == w)
            break;
        if ((!first && ec_buf_append(b, " ", 1)) || ec_buf_append(b, w, (size_t)(p - w)))
            return EC_ERR_TOOBIG;
        first = false;
    }
    return EC_OK;
}

bool ec_cache_key(ec_cache *c, const ec_query *q, ec_buf *key)
{
    pthread_mutex_lock(&c->lock);
    bool on = c->enabled;
    bool unset_ok = c->unset_temperature;
    pthread_mutex_unlock(&c->lock);
    if (!on)
        return false;
    if (q->has_temperature ? q->temperature != 0.0 : !unset_ok)
        return false;
    ec_buf_reset(key);
    /* The separators are control characters, which the white-space folding
     * never produces, so two different chats cannot make the same key. */
    if (ec_buf_printf(key,
                      "v1\x1d"
                      "max_tokens=%d\x1d"
                      "temperature=%s\x1d"
                      "policy=%s\x1d"
                      "consent=%d\x1d",
                      q->max_tokens, q->has_temperature ? "0" : "unset", ec_policy_name(q->policy),
                      q->consent ? 1 : 0))
        return false;
    if (q->n_messages == 0) {
        if (ec_buf_append(key, "user\x1f", 5) || append_normalised(key, q->prompt))
            return false;
    }
    for (size_t i = 0; i < q->n_messages; i++) {
        const ec_chat_msg *m = &q->messages[i];
        if (ec_buf_printf(key, "%s\x1f", m->role ? m->role : "") ||
            append_normalised(key, m->content) || ec_buf_append(key, "\x1e", 1))
            return false;
    }
    return true;
}

bool ec_cache_get(ec_cache *c, const void *key, size_t key_len, uint64_t now_ms, ec_cache_hit *out)
{
    uint64_t h = fnv1a(key, key_len);
    bool hit = false;
    pthread_mutex_lock(&c->lock);
    entry *e = c->enabled ? find(c, h, key, key_len) : NULL;
    if (e && now_ms - e->v.stored_ms >= c->ttl_ms) {
        remove_entry(c, e);
        c->st.evictions++;
        e = NULL;
    }
    if (e && hit_copy(out, &e->v) == EC_OK) {
        lru_unlink(c, e);
        lru_push_front(c, e);
        hit = true;
    }
    if (hit)
        c->st.hits++;
    else
        c->st.misses++;
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void ec_cache_put(ec_cache *c, const void *key, size_t key_len, const ec_cache_hit *v,
                  uint64_t now_ms)
{
    size_t bytes = sizeof(entry) + key_len + slen(v->answer) + slen(v->tier_name) + slen(v->model);
    entry *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->key = malloc(key_len ? key_len : 1);
    if (!e->key || hit_copy(&e->v, v) != EC_OK) {
        free(e->key);
        free(e);
        return;
    }
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->hash = fnv1a(key, key_len);
    e->bytes = bytes;
    e->v.stored_ms = now_ms;
    pthread_mutex_lock(&c->lock);
    if (!c->enabled || bytes > c->max_bytes) {
        pthread_mutex_unlock(&c->lock);
        free(e->key);
        ec_cache_hit_clear(&e->v);
        free(e);
        return;
    }
    entry *old = find(c, e->hash, key, key_len);
    if (old)
        remove_entry(c, old);
    size_t i = e->hash & (c->n_buckets - 1);
    e->chain = c->buckets[i];
    c->buckets[i] = e;
    lru_push_front(c, e);
    c->st.entries++;
    c->st.bytes += bytes;
    evict_to_limits(c);
    pthread_mutex_unlock(&c->lock);
}

void ec_cache_stats_get(ec_cache *c, ec_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}
