/* Places per asker (fair.h). */
#include "fair.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 256

typedef struct entry {
    struct entry *next;
    size_t held;
    char asker[]; /* "" for the queries without identity */
} entry;

struct ec_fair {
    pthread_mutex_t lock;
    entry *b[BUCKETS];
    size_t n_askers; /* entries, each holding at least one place */
};

static size_t bucket(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % BUCKETS;
}

static entry **find(ec_fair *f, const char *key)
{
    entry **e = &f->b[bucket(key)];
    while (*e && strcmp((*e)->asker, key) != 0)
        e = &(*e)->next;
    return e;
}

ec_fair *ec_fair_create(void)
{
    ec_fair *f = calloc(1, sizeof(*f));
    if (f)
        pthread_mutex_init(&f->lock, NULL);
    return f;
}

void ec_fair_destroy(ec_fair *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        for (entry *e = f->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

bool ec_fair_take(ec_fair *f, const char *asker, size_t cap, size_t held, size_t max_total,
                  char *why, size_t why_len)
{
    const char *key = asker ? asker : "";
    const char *shown = asker ? asker : "(no identity)";
    bool ok = false;
    pthread_mutex_lock(&f->lock);
    entry **slot = find(f, key);
    size_t mine = *slot ? (*slot)->held : 0;
    size_t askers = f->n_askers + (*slot ? 0 : 1);
    size_t share = max_total / askers ? max_total / askers : 1;
    if (cap && mine >= cap) {
        snprintf(why, why_len,
                 "%s has %zu queries not yet answered (router.asker_max_pending %zu); retry later",
                 shown, mine, cap);
    } else if (held >= 2 * max_total || (held >= max_total && mine >= share)) {
        snprintf(why, why_len,
                 "router holds %zu queries not yet answered (router.max_pending), %zu of them "
                 "%s's; retry later",
                 held, mine, shown);
    } else {
        entry *e = *slot;
        if (!e) {
            size_t n = strlen(key) + 1;
            if (!(e = calloc(1, sizeof(*e) + n))) {
                snprintf(why, why_len, "router: out of memory");
                goto out;
            }
            memcpy(e->asker, key, n);
            *slot = e;
            f->n_askers++;
        }
        e->held++;
        ok = true;
    }
out:
    pthread_mutex_unlock(&f->lock);
    return ok;
}

void ec_fair_give_back(ec_fair *f, const char *asker)
{
    pthread_mutex_lock(&f->lock);
    entry **slot = find(f, asker ? asker : "");
    entry *e = *slot;
    if (e && --e->held == 0) {
        *slot = e->next;
        free(e);
        f->n_askers--;
    }
    pthread_mutex_unlock(&f->lock);
}

size_t ec_fair_held(ec_fair *f, const char *asker)
{
    pthread_mutex_lock(&f->lock);
    entry *e = *find(f, asker ? asker : "");
    size_t n = e ? e->held : 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}
