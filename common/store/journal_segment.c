/* The arrival journal's two segment files (see the top of journal.c):
 * reading them back, starting a new one, the lock that keeps a second router
 * out, and doctor's read-only look (ec_journal_peek). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgecascade/log.h"
#include "journal_file.h"
#include "journal_internal.h"
#include "store_internal.h"

void ec_jseg_name(char *out, size_t n, const char *base, const char *suffix)
{
    snprintf(out, n, "%s%s", base, suffix);
}

const char *const ec_jseg_suffix[2] = {"-0", "-1"};

ec_err ec_jseg_io_fail(ec_error *err, const char *what, const char *path)
{
    return ec_error_set(err, EC_ERR_IO, "journal: %s '%s': %s", what, path, strerror(errno));
}

uint8_t *ec_jseg_scratch(ec_journal *j, size_t n)
{
    if (n > j->buf_cap) {
        size_t cap = n < 4096 ? 4096 : n;
        uint8_t *b = realloc(j->buf, cap);
        if (!b)
            return NULL;
        j->buf = b;
        j->buf_cap = cap;
    }
    return j->buf;
}

ec_err ec_jseg_lock(ec_journal *j, ec_error *err)
{
    char path[4200];
    ec_jseg_name(path, sizeof(path), j->base, ".lock");
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->lock_fd < 0)
        return ec_jseg_io_fail(err, "cannot open", path);
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? ec_error_set(err, EC_ERR_BUSY,
                                  "journal: '%s' is held by another edgecascade-router (one "
                                  "router per decision log; give each its own store.path)",
                                  j->base)
                   : ec_jseg_io_fail(err, "cannot lock", path);
    return EC_OK;
}

/* Copies the undecided records, oldest first, into fd after a header of the
 * next generation; offs[i] is where all[i] went. Caller holds the lock. */
static ec_err copy_live(ec_journal *j, int fd, const char *path, ec_jlive **all, size_t n,
                        uint64_t *offs, uint64_t *size, ec_error *err)
{
    uint8_t head[EC_JF_HEADER];
    ec_jf_header(head, j->gen + 1);
    if (pwrite(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head))
        return ec_jseg_io_fail(err, "writing to", path);
    *size = EC_JF_HEADER;
    for (size_t i = 0; i < n; i++) {
        ec_jlive *e = all[i];
        uint8_t *b = ec_jseg_scratch(j, e->len);
        if (!b)
            return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory starting a segment");
        if (pread(j->fd[e->seg], b, e->len, (off_t)e->off) != (ssize_t)e->len ||
            pwrite(fd, b, e->len, (off_t)*size) != (ssize_t)e->len)
            return ec_jseg_io_fail(err, "copying an undecided query into", path);
        offs[i] = *size;
        *size += e->len;
    }
    return EC_OK;
}

/* Writes what is undecided into a new segment of the next generation
 * (<base>.tmp, fdatasync'ed when sync), renames it over the segment that is
 * not active and makes it the active one. The segment replaced must hold
 * nothing the active one lacks: the caller made the active one durable. */
ec_err ec_jseg_rotate(ec_journal *j, bool sync, ec_error *err)
{
    int other = !j->active;
    char tmp[4200], path[4200];
    ec_jseg_name(tmp, sizeof(tmp), j->base, ".tmp");
    ec_jseg_name(path, sizeof(path), j->base, ec_jseg_suffix[other]);
    size_t n = 0;
    ec_jlive **all = ec_jidx_in_order(j, &n);
    uint64_t *offs = n ? calloc(n, sizeof(*offs)) : NULL, size = 0;
    ec_err rc = EC_OK;
    int fd = -1;
    if (j->n && (!all || !offs || !n)) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory starting a segment");
        goto out;
    }
    if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = ec_jseg_io_fail(err, "cannot create", tmp);
        goto out;
    }
    if ((rc = copy_live(j, fd, tmp, all, n, offs, &size, err)))
        goto out;
    if ((sync && fdatasync(fd) != 0) || rename(tmp, path) != 0) {
        rc = ec_jseg_io_fail(err, "cannot start segment", path);
        goto out;
    }
    for (size_t i = 0; all && offs && i < n; i++) {
        all[i]->off = offs[i];
        all[i]->seg = (uint8_t)other;
    }
    for (int s = 0; s < 2; s++)
        if (j->fd[s] >= 0)
            close(j->fd[s]);
    j->fd[!other] = -1;
    j->fd[other] = fd;
    fd = -1;
    j->active = other;
    j->size = size;
    j->gen++;
    j->rotations++;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(offs);
    free(all);
    return rc;
}

/* ---- reading back ---- */

typedef struct loading {
    ec_journal *j;
    int seg;
} loading;

static void replay(void *ctx, const ec_jf_rec *r)
{
    loading *ld = ctx;
    ec_journal *j = ld->j;
    if (r->kind == EC_JF_DONE) {
        for (uint32_t i = 0; i < r->n; i++)
            ec_jidx_decide(j, ec_jf_done_id(r, i));
        return;
    }
    ec_jlive e = {.id = r->id,
                  .of_query = r->of_query,
                  .received_ms = r->received_ms,
                  .off = r->off,
                  .len = r->len,
                  .seg = (uint8_t)ld->seg};
    if (!ec_jidx_put(j, &e))
        ec_log_error("journal: out of memory reading back query %lld", (long long)r->id);
    if (r->id > j->next_id)
        j->next_id = r->id;
}

/* The whole of a segment file, for reading back; *len 0 for an empty one. */
static ec_err slurp(int fd, const char *path, uint8_t **out, size_t *len, ec_error *err)
{
    *out = NULL;
    *len = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return ec_jseg_io_fail(err, "cannot read", path);
    if (sb.st_size == 0)
        return EC_OK;
    uint8_t *b = malloc((size_t)sb.st_size);
    if (!b)
        return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory reading '%s'", path);
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        ssize_t r = pread(fd, b + got, (size_t)sb.st_size - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *out = b;
    *len = got;
    return EC_OK;
}

/* What the segments hold, into j (both left open); *gen of each (0: empty). */
ec_err ec_jseg_read(ec_journal *j, int flags, ec_error *err)
{
    uint8_t *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    uint64_t gen[2] = {0, 0};
    char path[4200];
    ec_err rc = EC_OK;
    for (int s = 0; s < 2 && !rc; s++) {
        ec_jseg_name(path, sizeof(path), j->base, ec_jseg_suffix[s]);
        j->fd[s] = open(path, flags | O_CLOEXEC, 0644);
        if (j->fd[s] < 0) {
            if (errno != ENOENT || !(flags & O_CREAT))
                rc = errno == ENOENT ? EC_OK : ec_jseg_io_fail(err, "cannot open", path);
            continue;
        }
        if ((rc = slurp(j->fd[s], path, &buf[s], &len[s], err)))
            break;
        ec_jf_kind k = ec_jf_read_header(buf[s], len[s], &gen[s]);
        if (k == EC_JF_FOREIGN)
            rc = ec_error_set(err, EC_ERR_DB,
                              "journal: '%s' is not an edgecascade arrival journal (move it away)",
                              path);
        else if (k == EC_JF_EMPTY)
            gen[s] = 0;
    }
    /* Oldest first: a newer segment's records (and decisions) come after. */
    int first = gen[0] <= gen[1] ? 0 : 1;
    for (int k = 0; !rc && k < 2; k++) {
        int s = k ? !first : first;
        if (!gen[s])
            continue;
        loading ld = {j, s};
        uint64_t end = ec_jf_scan(buf[s], len[s], replay, &ld);
        /* Only the newest can end so after a crash; the older one's cut
         * record, if any, was reported when it was the newest. */
        if (end < len[s] && k == 1)
            ec_log_warn("journal: %s%s ends with %llu bytes of a record cut short (a crash "
                        "while writing it; it was never acknowledged)",
                        j->base, ec_jseg_suffix[s], (unsigned long long)(len[s] - end));
    }
    j->gen = gen[0] > gen[1] ? gen[0] : gen[1];
    j->active = gen[0] >= gen[1] ? 0 : 1;
    free(buf[0]);
    free(buf[1]);
    return rc;
}

ec_err ec_journal_peek(const char *store_path, uint64_t *rows, uint64_t *oldest_ms, ec_error *err)
{
    *rows = 0;
    *oldest_ms = 0;
    char base[4096];
    if (!ec_journal_path(store_path, base, sizeof(base)))
        return ec_error_set(err, EC_ERR_INVAL, "journal: store path too long");
    if (strcmp(base, ":memory:") == 0)
        return EC_OK;
    /* Read-only, beside a router that may be writing: a record it is writing
     * right now reads as cut short and is not counted. */
    ec_journal *j = calloc(1, sizeof(*j));
    if (!j)
        return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
    j->base = base;
    j->fd[0] = j->fd[1] = -1;
    ec_err rc = ec_jseg_read(j, O_RDONLY, err);
    for (size_t i = 0; !rc && i < j->cap; i++) {
        if (!j->tab[i].id)
            continue;
        (*rows)++;
        if (!*oldest_ms || j->tab[i].received_ms < *oldest_ms)
            *oldest_ms = j->tab[i].received_ms;
    }
    for (int s = 0; s < 2; s++)
        if (j->fd[s] >= 0)
            close(j->fd[s]);
    free(j->tab);
    free(j);
    /* What an earlier build left, not yet moved by a router of this one. */
    char old[4200];
    uint64_t old_rows = 0, old_ms = 0;
    ec_jseg_name(old, sizeof(old), base, ".db");
    if (!rc && !(rc = ec_journal_legacy_peek(old, &old_rows, &old_ms, err)) && old_rows) {
        *rows += old_rows;
        if (!*oldest_ms || old_ms < *oldest_ms)
            *oldest_ms = old_ms;
    }
    return rc;
}
