/* The arrival journal (see journal.h).
 *
 * Why files of our own and not SQLite: ec_journal_add runs on Paho's receive
 * thread for every query, before the PUBACK. As one SQLite transaction it was
 * about eight system calls (locks, two WAL writes) and 15-25 µs; here it is
 * one pwrite of one record at the end of a file. The file only ever grows at
 * its end, so a crash can cut short at most the last record, which reading
 * back recognises (journal_file.h) and drops: it was never acknowledged.
 *
 * Two segments, <base>-0 and <base>-1, each starting with its generation. New
 * records go to the active one. Once it passes rotate_at bytes (4 MiB, and at
 * least twice what is still undecided), the decision writer's thread, in
 * ec_journal_done, first makes it durable (fdatasync), then writes the
 * undecided records alone into a new segment (<base>.tmp, renamed over the
 * other, older one) of the next generation, which becomes the active one. So
 * the older segment is replaced only when everything it held is safe in the
 * newer, and a crash at any moment leaves two readable segments whose union,
 * read oldest first, is the journal. Reading back at start does the same
 * rotation at once, with an fdatasync of the new segment before its rename.
 *
 * What is undecided is kept in memory (id -> where its record is), so
 * ec_journal_done, ec_journal_count and a rotation never read the files; only
 * ec_journal_each reads records back.
 *
 * Durability matches the SQLite file it replaced (WAL, synchronous=NORMAL): a
 * crash of the process loses nothing written; a power cut can lose what the
 * kernel had not yet written out, never what was durable before. */
#include "edgecascade/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "journal_file.h"
#include "journal_internal.h"
#include "store_internal.h"

bool ec_journal_path(const char *store_path, char *out, size_t n)
{
    if (!store_path || !*store_path || strcmp(store_path, ":memory:") == 0)
        return snprintf(out, n, ":memory:") < (int)n;
    size_t len = strlen(store_path);
    if (len > 3 && strcmp(store_path + len - 3, ".db") == 0)
        len -= 3;
    /* Room for the longest name made from it (".lock", ".tmp", ".db"). */
    return snprintf(out, n, "%.*s.arrivals", (int)len, store_path) + 5 < (int)n;
}

/* Appends n bytes to the active segment; a short write is taken back, so the
 * segment still ends with a whole record. Caller holds the lock. */
static ec_err append(ec_journal *j, const uint8_t *b, size_t n, ec_error *err)
{
    ssize_t w = pwrite(j->fd[j->active], b, n, (off_t)j->size);
    if (w == (ssize_t)n) {
        j->size += n;
        return EC_OK;
    }
    int e = w < 0 ? errno : ENOSPC;
    if (w > 0 && ftruncate(j->fd[j->active], (off_t)j->size) != 0)
        ec_log_warn("journal: cannot take back a short write: %s", strerror(errno));
    errno = e;
    char path[4200];
    ec_jseg_name(path, sizeof(path), j->base, ec_jseg_suffix[j->active]);
    return ec_jseg_io_fail(err, "writing to", path);
}

static ec_err add_at(ec_journal *j, ec_mqtt_msg *m, int64_t id, uint64_t ms, int64_t of_query,
                     ec_error *err)
{
    size_t n = j->memory ? 0 : ec_jf_add_size(m);
    ec_jlive e = {.id = id, .of_query = of_query, .received_ms = ms, .len = (uint32_t)n};
    if (!j->memory) {
        uint8_t *b = ec_jseg_scratch(j, n);
        if (!b)
            return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
        ec_jf_add_encode(b, m, id, ms, of_query);
        e.off = j->size;
        e.seg = (uint8_t)j->active;
        ec_err rc = append(j, b, n, err);
        if (rc)
            return rc;
    }
    if (!ec_jidx_put(j, &e))
        /* On disk, so not lost: a restart reads it back. */
        ec_log_warn("journal: out of memory tracking query %lld", (long long)id);
    if (id > j->next_id)
        j->next_id = id;
    m->tag = id;
    m->tag_ms = ms;
    return EC_OK;
}

static ec_err add(ec_journal *j, ec_mqtt_msg *m, int64_t of_query, ec_error *err)
{
    uint64_t now = ec_now_ms();
    uint64_t d = ec_jidx_digest(m);
    pthread_mutex_lock(&j->lock);
    ec_err rc = EC_OK;
    if (ec_jidx_seen_before(j, d) && m->dup) {
        m->tag = -1; /* the broker's redelivery of a query we already took */
        goto out;
    }
    /* Microseconds since the epoch, or one more than the last: unique across
     * restarts even when the journal was emptied. */
    int64_t id = (int64_t)(now * 1000u);
    if (id <= j->next_id)
        id = j->next_id + 1;
    rc = add_at(j, m, id, now, of_query, err);
out:
    pthread_mutex_unlock(&j->lock);
    return rc;
}

bool ec_journal_seen(ec_journal *j, const ec_mqtt_msg *m)
{
    uint64_t d = ec_jidx_digest(m);
    pthread_mutex_lock(&j->lock);
    bool seen = ec_jidx_seen_before(j, d) && m->dup;
    pthread_mutex_unlock(&j->lock);
    return seen;
}

ec_err ec_journal_add(ec_journal *j, ec_mqtt_msg *m, ec_error *err)
{
    return add(j, m, 0, err);
}

ec_err ec_journal_add_reply(ec_journal *j, ec_mqtt_msg *m, int64_t of_query, ec_error *err)
{
    return add(j, m, of_query, err);
}

/* Rows an earlier build left in its SQLite journal, journaled here with
 * their ids and arrival times (a decision names its query by both). */
static ec_err adopt_legacy(ec_journal *j, const char *old, size_t *adopted, ec_error *err)
{
    ec_mqtt_msg **all = NULL;
    size_t n = 0;
    ec_err rc = ec_journal_legacy_read(old, &all, &n, err);
    for (size_t i = 0; !rc && i < n; i++)
        rc = add_at(j, all[i], all[i]->tag, all[i]->tag_ms, all[i]->tag_of, err);
    for (size_t i = 0; i < n; i++)
        ec_mqtt_msg_free(all[i]);
    free(all);
    *adopted = n;
    return rc;
}

static ec_err load(ec_journal *j, ec_error *err)
{
    ec_err rc;
    if ((rc = ec_jseg_lock(j, err)) || (rc = ec_jseg_read(j, O_RDWR | O_CREAT, err)))
        return rc;
    /* A fresh, durable segment with only what is undecided (read from both):
     * what follows is appended to it, and a record a crash cut short is left
     * behind. */
    if ((rc = ec_jseg_rotate(j, true, err)))
        return rc;
    char old[4200];
    ec_jseg_name(old, sizeof(old), j->base, ".db");
    size_t adopted = 0;
    if ((rc = adopt_legacy(j, old, &adopted, err)))
        return rc;
    if (adopted && fdatasync(j->fd[j->active]) != 0)
        return ec_jseg_io_fail(err, "cannot sync", j->base);
    if (adopted)
        ec_log_info("journal: %zu undecided queries moved from %s", adopted, old);
    if (access(old, F_OK) == 0)
        ec_journal_legacy_remove(old);
    j->rotations = 0;
    return EC_OK;
}

ec_err ec_journal_open(ec_journal **out, const char *store_path, ec_error *err)
{
    char base[4096];
    if (!ec_journal_path(store_path, base, sizeof(base)))
        return ec_error_set(err, EC_ERR_INVAL, "journal: store path too long");
    ec_journal *j = calloc(1, sizeof(*j));
    if (!j || !(j->base = strdup(base))) {
        free(j);
        return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_mutex_init(&j->rotating, NULL);
    j->fd[0] = j->fd[1] = j->lock_fd = -1;
    j->rotate_at = EC_JOURNAL_ROTATE_MIN;
    j->memory = strcmp(base, ":memory:") == 0;
    ec_err rc = j->memory ? EC_OK : load(j, err);
    if (rc) {
        ec_error_prefix(err, "'%s': ", base);
        ec_journal_close(j);
        return rc;
    }
    *out = j;
    return EC_OK;
}

void ec_journal_close(ec_journal *j)
{
    if (!j)
        return;
    for (int s = 0; s < 2; s++) {
        if (j->fd[s] >= 0) {
            fdatasync(j->fd[s]);
            close(j->fd[s]);
        }
    }
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* and the flock with it */
    pthread_mutex_destroy(&j->lock);
    pthread_mutex_destroy(&j->rotating);
    free(j->tab);
    free(j->buf);
    free(j->base);
    free(j);
}

ec_err ec_journal_each(ec_journal *j, ec_journal_fn fn, void *ctx, size_t *count, ec_error *err)
{
    ec_err rc = EC_OK;
    size_t n = 0, got = 0;
    ec_mqtt_msg **msgs = NULL;
    /* Collected first, handed over after the lock is let go: fn may publish,
     * and a publish must not wait under our lock. */
    pthread_mutex_lock(&j->lock);
    ec_jlive **all = j->memory ? NULL : ec_jidx_in_order(j, &n);
    if ((j->n && !j->memory && !all) || (n && !(msgs = calloc(n, sizeof(*msgs)))))
        rc = ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory reading it");
    for (size_t i = 0; !rc && all && msgs && i < n; i++) {
        ec_jlive *e = all[i];
        uint8_t *b = ec_jseg_scratch(j, e->len);
        if (!b || pread(j->fd[e->seg], b, e->len, (off_t)e->off) != (ssize_t)e->len ||
            !(msgs[got] = ec_jf_add_decode(b, e->len))) {
            rc = ec_error_set(err, EC_ERR_IO, "journal: cannot read back query %lld of %s",
                              (long long)e->id, j->base);
            break;
        }
        /* A redelivery of it after the restart is a duplicate. */
        ec_jidx_seen_before(j, ec_jidx_digest(msgs[got++]));
    }
    pthread_mutex_unlock(&j->lock);
    free(all);
    ec_journal_rows_give(msgs, got, rc == EC_OK, fn, ctx);
    if (count)
        *count = got;
    return rc;
}

/* Starts a new segment when the active one is due (see the top). */
static ec_err rotate_if_due(ec_journal *j, ec_error *err)
{
    pthread_mutex_lock(&j->lock);
    bool due = !j->memory && j->size >= j->rotate_at && j->size >= 2 * j->live_bytes;
    int fd = j->fd[j->active];
    pthread_mutex_unlock(&j->lock);
    if (!due)
        return EC_OK;
    ec_err rc = EC_OK;
    pthread_mutex_lock(&j->rotating);
    /* Outside the lock: the receive thread keeps appending meanwhile. What it
     * appends after this is copied into the new segment as well. */
    if (fdatasync(fd) != 0)
        rc = ec_jseg_io_fail(err, "cannot sync", j->base);
    pthread_mutex_lock(&j->lock);
    if (!rc && fd == j->fd[j->active])
        rc = ec_jseg_rotate(j, false, err);
    pthread_mutex_unlock(&j->lock);
    pthread_mutex_unlock(&j->rotating);
    return rc;
}

ec_err ec_journal_done(ec_journal *j, const int64_t *ids, size_t n, ec_error *err)
{
    ec_err rc = EC_OK;
    pthread_mutex_lock(&j->lock);
    /* Only those still undecided are written down. */
    int64_t *gone = n && !j->memory ? malloc(n * sizeof(*gone)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ec_jidx_decide(j, ids[i]) && gone)
            gone[k++] = ids[i];
    if (n && !j->memory && !gone)
        rc = ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
    uint8_t *b = k ? ec_jseg_scratch(j, EC_JF_FRAME + 5 + 8 * k) : NULL;
    if (k && !b)
        rc = ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
    else if (k)
        rc = append(j, b, ec_jf_done_encode(b, gone, k), err);
    pthread_mutex_unlock(&j->lock);
    free(gone);
    /* Not written down: decided all the same; at start the decision log says
     * so (ec_store_decided) and the query is not run again. */
    ec_err rrc = rotate_if_due(j, rc ? NULL : err);
    return rc ? rc : rrc;
}

ec_err ec_journal_count(ec_journal *j, uint64_t *out, ec_error *err)
{
    (void)err;
    pthread_mutex_lock(&j->lock);
    *out = j->n;
    pthread_mutex_unlock(&j->lock);
    return EC_OK;
}

void ec_journal_test_rotate_at(ec_journal *j, uint64_t bytes)
{
    pthread_mutex_lock(&j->lock);
    j->rotate_at = bytes;
    pthread_mutex_unlock(&j->lock);
}

uint64_t ec_journal_test_rotations(ec_journal *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t n = j->rotations;
    pthread_mutex_unlock(&j->lock);
    return n;
}

ec_err ec_journal_test_add_at(ec_journal *j, ec_mqtt_msg *m, uint64_t received_ms, ec_error *err)
{
    pthread_mutex_lock(&j->lock);
    ec_err rc = add_at(j, m, j->next_id + 1, received_ms, 0, err);
    pthread_mutex_unlock(&j->lock);
    return rc;
}
