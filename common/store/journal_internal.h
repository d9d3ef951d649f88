/* Private to the arrival journal: the struct shared by journal.c (the API:
 * add, done, each), journal_index.c (what is undecided, and the digests of
 * recent arrivals) and journal_segment.c (the two segment files: reading
 * back, starting a new one). The design is at the top of journal.c; the file
 * format in journal_file.h. Not a public API. */
#ifndef EC_JOURNAL_INTERNAL_H
#define EC_JOURNAL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/journal.h"

#define EC_JOURNAL_ROTATE_MIN (4u * 1024u * 1024u)

/* Duplicates. The broker redelivers (DUP) only what it sent before a
 * connection ended without our PUBACK: the last messages before a drop, when
 * nothing new arrives until the reconnect, or before a crash, when they are
 * still in the journal at start (a PUBACK leaves right after the journal's
 * write, long before any decision clears the record). So the digests of the
 * last 4,096 arrivals, seeded from the records found at start, cover every
 * redelivery, in memory, with no write per query. The set is open
 * addressing, at most half full. */
#define EC_JOURNAL_RECENT_N     4096u
#define EC_JOURNAL_RECENT_SLOTS (2u * EC_JOURNAL_RECENT_N)

/* An undecided record: where it is. */
typedef struct ec_jlive {
    int64_t id; /* 0: an empty slot */
    int64_t of_query;
    uint64_t received_ms;
    uint64_t off;
    uint32_t len;
    uint32_t replies; /* of a query: its paid replies still undecided */
    uint8_t seg;      /* the segment (0, 1) it is in: both while reading back */
} ec_jlive;

struct ec_journal {
    char *base;               /* "x.arrivals": segments "x.arrivals-0" and "-1" */
    bool memory;              /* ":memory:": ids and duplicates, no files */
    int lock_fd;              /* <base>.lock, flock'ed: one router per journal */
    pthread_mutex_t lock;     /* around everything below */
    pthread_mutex_t rotating; /* one rotation at a time (outside lock: the fdatasync) */
    int fd[2];                /* the segments; only fd[active] is open while running */
    int active;
    uint64_t gen;  /* the active segment's */
    uint64_t size; /* bytes in the active segment */
    uint64_t rotate_at, rotations;
    /* the undecided records, open addressing by id */
    ec_jlive *tab;
    size_t cap, n;
    uint64_t live_bytes;
    int64_t next_id;
    uint8_t *buf; /* scratch for a record */
    size_t buf_cap;
    /* the ring of recent digests (0 = empty) and its hash set */
    uint64_t ring[EC_JOURNAL_RECENT_N];
    size_t ring_head;
    uint64_t slots[EC_JOURNAL_RECENT_SLOTS];
};

/* ---- journal_index.c: the undecided records and recent digests ----
 * All under j->lock. */

ec_jlive *ec_jidx_find(ec_journal *j, int64_t id);
/* Adds e, or replaces the record of the same id; false when out of memory. */
bool ec_jidx_put(ec_journal *j, const ec_jlive *e);
/* A decided query goes, and the replies journaled for it with it; whether
 * anything went. */
bool ec_jidx_decide(ec_journal *j, int64_t id);
/* The undecided records, oldest first (pointers into the table, valid until
 * it next changes); NULL with *n 0 when there are none or out of memory. */
ec_jlive **ec_jidx_in_order(ec_journal *j, size_t *n);
/* What makes a delivery the same message (payload, Correlation Data,
 * Response Topic), never 0. */
uint64_t ec_jidx_digest(const ec_mqtt_msg *m);
/* Whether d was among the recent arrivals; remembers it either way. */
bool ec_jidx_seen_before(ec_journal *j, uint64_t d);

/* ---- journal_segment.c: the files ---- */

extern const char *const ec_jseg_suffix[2];
/* base followed by suffix, into out. */
void ec_jseg_name(char *out, size_t n, const char *base, const char *suffix);
/* "journal: <what> '<path>': <strerror(errno)>" */
ec_err ec_jseg_io_fail(ec_error *err, const char *what, const char *path);
/* j's scratch buffer, at least n bytes; NULL when out of memory. */
uint8_t *ec_jseg_scratch(ec_journal *j, size_t n);
/* Takes <base>.lock: one router per journal. */
ec_err ec_jseg_lock(ec_journal *j, ec_error *err);
/* Opens both segments (open(2) flags) and reads what they hold into j's
 * table; the newest becomes the active one. */
ec_err ec_jseg_read(ec_journal *j, int flags, ec_error *err);
/* Starts a new segment holding only what is undecided (see journal.c). */
ec_err ec_jseg_rotate(ec_journal *j, bool sync, ec_error *err);

#endif
