/* The soak's figures: what the client received, checked against what the
 * decision log recorded. */
#include <stdlib.h>
#include <string.h>

#include "soak.h"

/* A queued escalation is done when its revision 2 arrived, or when the
 * ledger says it will never come (dropped for room, rejected when full). An
 * expired item announces itself with a revision 2 too. */
static bool queue_done(const soak_slot *s, uint8_t q)
{
    return !(q & SOAK_Q_QUEUED) || s->rev2 > 0 || (q & (SOAK_Q_DROPPED | SOAK_Q_REJECTED));
}

bool soak_settled(const soak_slot *s, size_t n, const soak_audit *a)
{
    if (a->outbox_left != 0 || a->journal_left != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].sent)
            continue;
        if (s[i].rev1 + s[i].rev2 == 0 || a->rows[i] == 0 || !queue_done(&s[i], a->qflags[i]))
            return false;
    }
    return true;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static json_t *latency(const soak_slot *s, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        if (s[i].rev1_us && s[i].rev1_us > s[i].sched_us)
            v[k++] = (double)(s[i].rev1_us - s[i].sched_us) / 1000.0;
        else if (s[i].rev1_us)
            v[k++] = 0;
    }
    if (k)
        qsort(v, k, sizeof(*v), cmp_double);
    json_t *o =
        json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)k, "p50_ms", k ? v[k / 2] : 0.0,
                  "p99_ms", k ? v[(size_t)((double)(k - 1) * 0.99)] : 0.0, "p999_ms",
                  k ? v[(size_t)((double)(k - 1) * 0.999)] : 0.0, "max_ms", k ? v[k - 1] : 0.0);
    free(v);
    return o;
}

#define SET(key, v) json_object_set_new(o, key, json_integer((json_int_t)(v)))

json_t *soak_figures(const soak_slot *s, size_t n, const soak_audit *a)
{
    long sent = 0, hard = 0, answered = 0, any = 0, degraded = 0, rev1_cloud = 0, rev1_err = 0,
         busy = 0;
    long queued = 0, replayed = 0, expired = 0, dropped = 0, rejected = 0, rev2 = 0, rev2_cloud = 0,
         rev2_missing = 0, rev2_unqueued = 0, dup_results = 0, rows_missing = 0, rows_dup = 0,
         rows_rev2 = 0, hard_no_cloud = 0;
    for (size_t i = 0; i < n; i++) {
        const soak_slot *x = &s[i];
        uint8_t q = a->qflags[i];
        if (!x->sent)
            continue;
        sent++;
        hard += x->hard;
        answered += x->rev1 > 0;
        any += x->rev1 + x->rev2 > 0;
        degraded += x->rev1 > 0 && x->degraded;
        rev1_cloud += x->rev1 > 0 && x->rev1_cloud;
        rev1_err += x->rev1 > 0 && x->rev1_error;
        busy += x->rev1 > 0 && x->rev1_busy;
        queued += (q & SOAK_Q_QUEUED) != 0;
        replayed += (q & SOAK_Q_REPLAYED) != 0;
        expired += (q & SOAK_Q_EXPIRED) != 0;
        dropped += (q & SOAK_Q_DROPPED) != 0;
        rejected += (q & SOAK_Q_REJECTED) != 0;
        rev2 += x->rev2 > 0;
        rev2_cloud += x->rev2_cloud;
        rev2_missing += !queue_done(x, q);
        rev2_unqueued += x->rev2 > 0 && !(q & SOAK_Q_QUEUED);
        dup_results += (x->rev1 > 1 ? x->rev1 - 1 : 0) + (x->rev2 > 1 ? x->rev2 - 1 : 0);
        rows_missing += a->rows[i] == 0;
        rows_dup += a->rows[i] > 1;
        rows_rev2 += a->rev2row[i];
        hard_no_cloud += x->hard && !(x->rev1 > 0 && x->rev1_cloud) && !x->rev2_cloud;
    }
    json_t *o = json_object();
    SET("sent", sent);
    SET("answered", answered);
    SET("degraded", degraded);
    SET("queued", queued);
    SET("replayed", replayed);
    SET("lost", sent - any);
    SET("decision_rows_not_one", rows_missing + rows_dup);
    SET("decision_rows_missing", rows_missing);
    SET("decision_rows_duplicated", rows_dup);
    SET("decision_rows_revision2", rows_rev2);
    SET("foreign_decision_rows", a->foreign_rows);
    SET("hard", hard);
    SET("escalated_at_once", rev1_cloud);
    SET("error_results", rev1_err);
    SET("busy", busy);
    SET("revision2", rev2);
    SET("revision2_cloud", rev2_cloud);
    SET("revision2_missing", rev2_missing);
    SET("revision2_not_queued", rev2_unqueued);
    SET("hard_without_cloud_answer", hard_no_cloud);
    SET("expired", expired);
    SET("dropped", dropped);
    SET("rejected", rejected);
    json_t *ev = json_object();
    static const char *const names[5] = {"queued", "replayed", "expired", "dropped", "rejected"};
    for (int k = 0; k < 5; k++)
        json_object_set_new(ev, names[k], json_integer((json_int_t)a->queue_events[k]));
    json_object_set_new(o, "queue_events", ev);
    SET("duplicate_results", dup_results);
    SET("outbox_left", a->outbox_left);
    SET("journal_left", a->journal_left);
    SET("breaker_events", a->breaker_events);
    SET("breaker_opened", a->breaker_opened);
    json_object_set_new(o, "latency_rev1", latency(s, n));
    return o;
}

static long get(json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

bool soak_failed(json_t *f)
{
    return get(f, "lost") > 0 || get(f, "decision_rows_not_one") > 0 ||
           get(f, "revision2_missing") > 0;
}

void soak_print_table(json_t *f, FILE *out)
{
    static const struct {
        const char *key, *what;
    } rows[] = {
        {"sent", "queries published"},
        {"answered", "got at least revision 1"},
        {"degraded", "revision 1 was the local draft, marked degraded"},
        {"queued", "escalations queued (queue_events)"},
        {"replayed", "queued escalations replayed (queue_events)"},
        {"revision2", "revision 2 received"},
        {"escalated_at_once", "answered by the cloud at once"},
        {"error_results", "revision 1 carried an error code (counted in answered)"},
        {"busy", "of which busy: refused under backlog, not processed"},
        {"lost", "sent, but no result at all (must be 0)"},
        {"decision_rows_not_one", "ids without exactly one decision row (must be 0)"},
        {"revision2_missing", "queued, but no revision 2 (must be 0)"},
        {"duplicate_results", "results delivered more than once (at-least-once)"},
        {"breaker_opened", "breaker transitions to open"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        fprintf(out, "  %-22s %8ld  %s\n", rows[i].key, get(f, rows[i].key), rows[i].what);
    json_t *lat = json_object_get(f, "latency_rev1");
    fprintf(out, "  revision 1 latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
            json_real_value(json_object_get(lat, "p50_ms")),
            json_real_value(json_object_get(lat, "p99_ms")),
            json_real_value(json_object_get(lat, "max_ms")));
}
