/* Fuzzes the arrival journal's reader (common/store/journal_file.c): a
 * segment file as a crash or a damaged disk may leave it. Every record the
 * reader accepts lies inside the input, and an accepted query record rebuilds
 * a message that encodes to the very same bytes (what the router re-runs
 * after a crash is what arrived). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/store/journal_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct walk {
    const uint8_t *data;
    size_t size;
    uint64_t next;
} walk;

static void check(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz contract broken: %s\n", what);
        abort();
    }
}

static void on_record(void *ctx, const ec_jf_rec *r)
{
    walk *w = ctx;
    check(r->off == w->next, "records follow one another");
    check(r->off + r->len <= w->size, "a record lies inside the segment");
    w->next = r->off + r->len;
    if (r->kind == EC_JF_DONE) {
        for (uint32_t i = 0; i < r->n; i++)
            (void)ec_jf_done_id(r, i);
        return;
    }
    ec_mqtt_msg *m = ec_jf_add_decode(w->data + r->off, r->len);
    check(m != NULL, "an accepted query record rebuilds");
    check(m->tag == r->id && m->tag_ms == r->received_ms && m->tag_of == r->of_query,
          "the record's ids");
    size_t n = ec_jf_add_size(m);
    check(n == r->len, "the message encodes to the record's size");
    uint8_t *again = malloc(n);
    check(again != NULL, "memory");
    ec_jf_add_encode(again, m, m->tag, m->tag_ms, m->tag_of);
    /* The length and the body; the check in between is not checked in the
     * fuzzing build (journal_file.c). */
    check(memcmp(again, w->data + r->off, 4) == 0 &&
              memcmp(again + EC_JF_FRAME, w->data + r->off + EC_JF_FRAME, n - EC_JF_FRAME) == 0,
          "the message encodes to the record's bytes");
    free(again);
    ec_mqtt_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t gen = 0;
    if (ec_jf_read_header(data, size, &gen) != EC_JF_OURS)
        return 0;
    walk w = {data, size, EC_JF_HEADER};
    uint64_t end = ec_jf_scan(data, size, on_record, &w);
    check(end == w.next && end <= size, "the scan ends after the last record");
    return 0;
}
