/* What the arrival journal has not seen decided, and the digests of recent
 * arrivals (see journal_internal.h). Both are open-addressing tables with
 * backward-shift deletion, touched only under the journal's lock. */
#include <stdlib.h>
#include <string.h>

#include "journal_file.h"
#include "journal_internal.h"

static size_t home(const ec_journal *j, int64_t id)
{
    return (size_t)(((uint64_t)id * 11400714819323198485ull) >> 20) & (j->cap - 1);
}

ec_jlive *ec_jidx_find(ec_journal *j, int64_t id)
{
    if (!j->cap)
        return NULL;
    for (size_t i = home(j, id);; i = (i + 1) & (j->cap - 1)) {
        if (j->tab[i].id == id)
            return &j->tab[i];
        if (!j->tab[i].id)
            return NULL;
    }
}

/* Puts e in its slot (or over the entry of the same id), nothing else. */
static ec_jlive *place(ec_journal *j, const ec_jlive *e)
{
    size_t i = home(j, e->id);
    while (j->tab[i].id && j->tab[i].id != e->id)
        i = (i + 1) & (j->cap - 1);
    if (!j->tab[i].id) {
        j->n++;
        j->live_bytes += e->len;
    } else {
        j->live_bytes += (uint64_t)e->len - j->tab[i].len;
    }
    j->tab[i] = *e;
    return &j->tab[i];
}

static bool grow(ec_journal *j)
{
    size_t cap = j->cap ? 2 * j->cap : 256;
    ec_jlive *old = j->tab, *tab = calloc(cap, sizeof(*tab));
    if (!tab)
        return false;
    size_t old_cap = j->cap;
    j->tab = tab;
    j->cap = cap;
    j->n = 0;
    j->live_bytes = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id)
            place(j, &old[i]);
    free(old);
    return true;
}

bool ec_jidx_put(ec_journal *j, const ec_jlive *e)
{
    if (2 * (j->n + 1) > j->cap && !grow(j))
        return false;
    ec_jlive *was = ec_jidx_find(j, e->id);
    uint32_t replies = was ? was->replies : 0;
    ec_jlive *now = place(j, e);
    now->replies = replies;
    /* A paid reply is counted with its query, so deciding a query looks for
     * replies only when it has some. */
    ec_jlive *q = !was && e->of_query > 0 ? ec_jidx_find(j, e->of_query) : NULL;
    if (q)
        q->replies++;
    return true;
}

/* Removes the slot (backward-shift deletion keeps probe chains whole). */
static void remove_at(ec_journal *j, ec_jlive *e)
{
    size_t i = (size_t)(e - j->tab);
    int64_t of_query = e->of_query;
    j->n--;
    j->live_bytes -= e->len;
    j->tab[i].id = 0;
    for (size_t k = (i + 1) & (j->cap - 1); j->tab[k].id; k = (k + 1) & (j->cap - 1)) {
        size_t h = home(j, j->tab[k].id);
        bool stays = i <= k ? (h > i && h <= k) : (h > i || h <= k);
        if (!stays) {
            j->tab[i] = j->tab[k];
            j->tab[k].id = 0;
            i = k;
        }
    }
    ec_jlive *q = of_query > 0 ? ec_jidx_find(j, of_query) : NULL;
    if (q && q->replies)
        q->replies--;
}

bool ec_jidx_decide(ec_journal *j, int64_t id)
{
    ec_jlive *e = ec_jidx_find(j, id);
    if (!e)
        return false;
    uint32_t replies = e->replies;
    remove_at(j, e);
    /* Paid replies are few: the table is walked only for a query with some. */
    for (size_t i = 0; replies && i < j->cap; i++) {
        if (j->tab[i].id && j->tab[i].of_query == id) {
            remove_at(j, &j->tab[i]);
            replies--;
            i--; /* the shift may have moved another one here */
        }
    }
    return true;
}

/* ---- duplicates ---- */

uint64_t ec_jidx_digest(const ec_mqtt_msg *m)
{
    uint64_t h = ec_jf_fnv(EC_JF_FNV_SEED, m->payload, m->len);
    h = ec_jf_fnv(h, "|", 1);
    if (m->corr)
        h = ec_jf_fnv(h, m->corr, m->corr_len);
    h = ec_jf_fnv(h, "|", 1);
    if (m->response_topic)
        h = ec_jf_fnv(h, m->response_topic, strlen(m->response_topic));
    return h ? h : 1; /* 0 marks an empty slot */
}

static size_t slot_of(const ec_journal *j, uint64_t d)
{
    size_t i = (size_t)(d % EC_JOURNAL_RECENT_SLOTS);
    while (j->slots[i] && j->slots[i] != d)
        i = (i + 1) % EC_JOURNAL_RECENT_SLOTS;
    return i;
}

/* Removes d from the set (backward-shift deletion keeps probe chains whole). */
static void forget(ec_journal *j, uint64_t d)
{
    size_t i = slot_of(j, d);
    if (!j->slots[i])
        return;
    j->slots[i] = 0;
    for (size_t k = (i + 1) % EC_JOURNAL_RECENT_SLOTS; j->slots[k];
         k = (k + 1) % EC_JOURNAL_RECENT_SLOTS) {
        size_t h = (size_t)(j->slots[k] % EC_JOURNAL_RECENT_SLOTS);
        /* Move k back to i unless its home lies cyclically in (i, k]. */
        bool stays = i <= k ? (h > i && h <= k) : (h > i || h <= k);
        if (!stays) {
            j->slots[i] = j->slots[k];
            j->slots[k] = 0;
            i = k;
        }
    }
}

bool ec_jidx_seen_before(ec_journal *j, uint64_t d)
{
    size_t i = slot_of(j, d);
    if (j->slots[i])
        return true;
    uint64_t old = j->ring[j->ring_head];
    if (old)
        forget(j, old);
    j->slots[slot_of(j, d)] = d;
    j->ring[j->ring_head] = d;
    j->ring_head = (j->ring_head + 1) % EC_JOURNAL_RECENT_N;
    return false;
}

static int by_id(const void *a, const void *b)
{
    int64_t x = (*(ec_jlive *const *)a)->id, y = (*(ec_jlive *const *)b)->id;
    return (x > y) - (x < y);
}

ec_jlive **ec_jidx_in_order(ec_journal *j, size_t *n)
{
    *n = 0;
    ec_jlive **all = j->n ? malloc(j->n * sizeof(*all)) : NULL;
    for (size_t i = 0; all && i < j->cap; i++)
        if (j->tab[i].id)
            all[(*n)++] = &j->tab[i];
    if (all)
        qsort(all, *n, sizeof(*all), by_id);
    return all;
}
