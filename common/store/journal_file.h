/* Private to the store: the arrival journal's file format (journal_file.c),
 * used by journal.c. Not a public API.
 *
 * A segment is a header and then records, appended and never rewritten:
 *
 *   header   "ECJ2" | u32 version (1) | u64 generation
 *   record   u32 body length | u64 check (FNV-1a 64 of the body) | body
 *   body     u8 kind, then
 *     ADD    i64 id | u64 received_ms | i64 of_query (0: a query) |
 *            u32 expiry_s | topic | payload | response_topic | corr
 *            (each: u32 length, 0xffffffff for none, then the bytes)
 *     DONE   u32 n | i64 id * n   (ids decided: each goes with the replies
 *            journaled for it)
 *
 * Integers are in the machine's byte order: the file never leaves the device
 * that wrote it. A record cut short or damaged (a crash in the middle of a
 * write, a power cut) ends the segment: everything before it is intact, since
 * nothing is ever written in front of the end. */
#ifndef EC_JOURNAL_FILE_H
#define EC_JOURNAL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/err.h"
#include "edgecascade/mqtt.h"

#define EC_JF_HEADER   16u
#define EC_JF_FRAME    12u /* length and check in front of each body */
#define EC_JF_MAX_BODY (64u * 1024u * 1024u)

enum { EC_JF_ADD = 1, EC_JF_DONE = 2 };

/* FNV-1a 64 over n bytes, continuing from h (start from EC_JF_FNV_SEED): the
 * records' check, and the journal's digest of a delivery. */
#define EC_JF_FNV_SEED 14695981039346656037ull
uint64_t ec_jf_fnv(uint64_t h, const void *p, size_t n);

/* The header of a segment of the given generation, into out[EC_JF_HEADER]. */
void ec_jf_header(uint8_t *out, uint64_t gen);

/* What the first bytes of a file say it is. */
typedef enum {
    EC_JF_EMPTY,   /* nothing yet, or a header a crash cut short: no records */
    EC_JF_OURS,    /* a segment: *gen set */
    EC_JF_FOREIGN, /* some other program's file: not to be written into */
} ec_jf_kind;
ec_jf_kind ec_jf_read_header(const uint8_t *buf, size_t len, uint64_t *gen);

/* Size of the framed ADD record for m. */
size_t ec_jf_add_size(const ec_mqtt_msg *m);
/* Writes the framed ADD record into out (ec_jf_add_size bytes). */
void ec_jf_add_encode(uint8_t *out, const ec_mqtt_msg *m, int64_t id, uint64_t received_ms,
                      int64_t of_query);
/* Writes the framed DONE record for ids into out (EC_JF_FRAME + 5 + 8 n bytes). */
size_t ec_jf_done_encode(uint8_t *out, const int64_t *ids, size_t n);

/* One intact record of a segment, as ec_jf_scan hands it over. The pointers
 * are into the scanned buffer. */
typedef struct ec_jf_rec {
    int kind;
    uint64_t off; /* where its frame starts in the segment */
    uint32_t len; /* frame and body */
    /* ADD */
    int64_t id;
    uint64_t received_ms;
    int64_t of_query;
    /* DONE */
    const uint8_t *ids; /* n unaligned i64 */
    uint32_t n;
} ec_jf_rec;

typedef void (*ec_jf_rec_fn)(void *ctx, const ec_jf_rec *r);

/* Walks the records of a whole segment in buf (header included), in order,
 * and returns the offset just past the last intact one. */
uint64_t ec_jf_scan(const uint8_t *buf, size_t len, ec_jf_rec_fn fn, void *ctx);

/* The i-th id of a DONE record. */
int64_t ec_jf_done_id(const ec_jf_rec *r, uint32_t i);

/* Rebuilds the message of a framed ADD record (frame and body, as written),
 * with tag, tag_ms and tag_of set. NULL when it is not one, or out of memory. */
ec_mqtt_msg *ec_jf_add_decode(const uint8_t *rec, size_t len);

#endif
