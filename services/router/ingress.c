/* Stage 1, ingress (ingress.h): decode, validate, journal. */
#include "ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/journal.h"
#include "edgecascade/log.h"
#include "edgecascade/util.h"

#include "access.h"

struct ec_ingress {
    ec_router_env *env;
    ec_store *store;
    ec_ledger *ledger;
    ec_journal *journal; /* NULL without a store */
    ec_orphans *orphans;
    char query_topic[300];
    /* queries found in the journal at start, re-run once connected */
    ec_mqtt_msg **recovered;
    size_t n_recovered;
};

#define CFG(in) atomic_load(&(in)->env->cfg)

bool ec_ingress_is_query(const ec_ingress *in, const char *topic)
{
    const char *asker;
    size_t n;
    return ec_access_query_topic(in->query_topic, topic, &asker, &n) != EC_QT_NONE;
}

/* Who asked and where the Result may go (access.h): the refusal's code, or
 * NULL. A Response Topic the asker may not use is dropped here, before any
 * Result exists, so not even an error is published there. */
static const char *check_access(ec_ingress *in, const ec_config *cfg, ec_pending *p,
                                const char *topic, char *why, size_t why_len)
{
    const char *asker = NULL;
    size_t n = 0;
    if (ec_access_query_topic(in->query_topic, topic, &asker, &n) == EC_QT_ASKER) {
        if (n > EC_MAX_ID) {
            /* no asker to check its Response Topic against: not used */
            free(p->response_topic);
            p->response_topic = NULL;
            snprintf(why, why_len, "the user name in the query topic is over %u bytes", EC_MAX_ID);
            return "bad_request";
        }
        p->asker = strndup(asker, n);
    }
    const char *code = NULL;
    if (p->response_topic &&
        !ec_access_reply_allowed(cfg, p->asker, p->response_topic, why, why_len)) {
        ec_log_warn("query on %s: %s; its Result goes to %s/result/<id> only", topic, why,
                    cfg->topic_root);
        free(p->response_topic);
        p->response_topic = NULL;
        code = "bad_response_topic";
    }
    if (cfg->require_identity && !p->asker) {
        int n_root = (int)strnlen(in->query_topic, 200);
        snprintf(why, why_len,
                 "queries must come on %.*s/<user name> (router.require_identity); %.*s carries "
                 "no identity",
                 n_root, in->query_topic, n_root, in->query_topic);
        return "identity_required";
    }
    return code;
}

ec_stage_rc ec_ingress_run(ec_ingress *in, ec_pending *p)
{
    ec_mqtt_msg *msg = p->msg;
    const ec_config *cfg = CFG(in);
    double t_in = ec_mono_ms();
    ec_error err = {0};
    p->msg = NULL;
    if (msg->tag < 0 && !p->nowait) { /* a duplicate delivery (ec_ingress_on_arrival) */
        p->stage = EC_STAGE_DONE;
        return EC_STAGE_NEXT;
    }
    /* A journaled query's decision carries the journal's arrival time: with
     * the journal id it names the row (ec_store_decided). */
    p->ts_ms = msg->tag > 0 && msg->tag_ms ? msg->tag_ms : ec_now_ms();
    p->arrived_ms = p->ts_ms;
    p->journal_id = msg->tag;
    p->expiry_s = msg->expiry_s;
    p->overflowed = msg->overflowed;
    p->t0_ms = (double)msg->received_us / 1000.0;
    p->deadline_ms = p->t0_ms + cfg->query_timeout_ms;
    p->response_topic = msg->response_topic;
    p->corr = msg->corr;
    p->corr_len = msg->corr_len;
    p->user_props = msg->user_props; /* echoed on the Result */
    p->n_user_props = msg->n_user_props;
    msg->response_topic = NULL;
    msg->corr = NULL;
    msg->user_props = NULL;
    msg->n_user_props = 0;
    char why[EC_MAX_REASON];
    const char *refused = check_access(in, cfg, p, msg->topic, why, sizeof(why));
    ec_payload_kind kind =
        ec_payload_kind_of(msg->payload, msg->len, msg->content_type, msg->format);
    p->enc = kind == EC_PAYLOAD_MSGPACK ? EC_ENC_MSGPACK : EC_ENC_JSON;

    ec_err rc;
    if (msg->len > EC_MAX_PAYLOAD)
        rc = ec_error_set(&err, EC_ERR_TOOBIG, "query: %zu bytes exceeds limit %u", msg->len,
                          EC_MAX_PAYLOAD);
    else
        rc = ec_query_decode_payload(msg->payload, msg->len, msg->content_type, msg->format,
                                     &p->query, &p->enc, &err);
    if (!p->query.id) {
        /* Absent, or the payload was too broken to read one: the error result
         * still needs an id for <root>/result/<id> and the decision log. */
        char id[27];
        ec_id_new(id);
        p->query.id = strdup(id);
    }
    p->busy_ms = ec_mono_ms() - t_in;
    if (refused) {
        ec_pending_fail(p, refused, why);
        return EC_STAGE_NEXT;
    }
    if (rc != EC_OK) {
        ec_log_warn("malformed query on %s answered with an error (id %s): %s", msg->topic,
                    p->query.id, err.msg);
        ec_pending_fail(p, rc == EC_ERR_TOOBIG ? "too_large" : "bad_request", err.msg);
        return EC_STAGE_NEXT;
    }
    /* The decoder already refused ids that cannot go into a topic name
     * (query.id: EC_FF_TOPIC), so p->query.id is safe for <root>/result/<id>. */
    p->stage = EC_STAGE_ADMISSION;
    return EC_STAGE_NEXT;
}

void ec_ingress_on_arrival(ec_ingress *in, ec_mqtt_msg *msg)
{
    if (!ec_ingress_is_query(in, msg->topic) || !CFG(in)->journal || !in->journal)
        return;
    ec_error err = {0};
    if (ec_journal_add(in->journal, msg, &err))
        ec_log_error("query on %s not journaled (a crash now would lose it): %s", msg->topic,
                     err.msg);
    else if (msg->tag < 0)
        ec_log_info("query on %s redelivered by the broker after we took it; not run twice",
                    msg->topic);
}

void ec_ingress_journal_reply(ec_ingress *in, ec_mqtt_msg *msg, int64_t of_query)
{
    if (!CFG(in)->journal || !in->journal)
        return;
    ec_error err = {0};
    if (ec_journal_add_reply(in->journal, msg, of_query, &err))
        ec_log_error("a paid reply for query row %lld not journaled (a crash now would lose "
                     "it): %s",
                     (long long)of_query, err.msg);
}

void ec_ingress_note_reply(ec_ingress *in, ec_mqtt_msg *msg)
{
    if (CFG(in)->journal && in->journal && ec_journal_seen(in->journal, msg))
        msg->tag = -1;
}

ec_overflow_action ec_ingress_overflow(ec_ingress *in, ec_mqtt_msg *msg)
{
    if (!ec_ingress_is_query(in, msg->topic))
        return EC_OVERFLOW_QUEUE; /* replies (bounded by max_pending), breaker status */
    if (msg->tag < 0) {           /* a duplicate delivery: already taken */
        ec_mqtt_msg_free(msg);
        return EC_OVERFLOW_DROP;
    }
    /* The broker is not keeping up with what we send either: a worker
     * refuses this one (admission), waiting for a slot as it may. */
    if (!ec_mqtt_can_publish_now(in->env->svc->mqtt))
        return EC_OVERFLOW_QUEUE;
    return EC_OVERFLOW_REFUSE;
}

ec_mqtt_msg **ec_ingress_recovered(ec_ingress *in, size_t *n)
{
    ec_mqtt_msg **m = in->recovered;
    *n = in->n_recovered;
    in->recovered = NULL;
    in->n_recovered = 0;
    return m;
}

/* ---- the journal at start ---- */

/* The decision writer's commit hook (its thread): those rows are done. */
static void on_decided(void *ctx, const int64_t *ids, size_t n)
{
    ec_ingress *in = ctx;
    ec_error err = {0};
    if (ec_journal_done(in->journal, ids, n, &err))
        ec_log_error("%zu decided queries stay in the journal (checked again at start): %s", n,
                     err.msg);
}

typedef struct load_ctx {
    ec_ingress *in;
    ec_mqtt_msg **replies; /* journaled paid replies, sorted out once all is read */
    size_t n_replies;
    int64_t *decided; /* rows whose decision is in the log: only the delete was lost */
    size_t n_decided;
    size_t n_adopted;
} load_ctx;

static void keep(void *ctx, ec_mqtt_msg *m)
{
    load_ctx *lc = ctx;
    ec_ingress *in = lc->in;
    bool found = false;
    if (m->tag_of > 0) {
        ec_mqtt_msg **r = realloc(lc->replies, (lc->n_replies + 1) * sizeof(*r));
        if (!r) {
            ec_mqtt_msg_free(m);
            return;
        }
        lc->replies = r;
        lc->replies[lc->n_replies++] = m;
        return;
    }
    ec_error err = {0};
    if (ec_store_decided(in->store, m->tag_ms, m->tag, &found, &err))
        ec_log_warn("journaled query %lld re-run: %s", (long long)m->tag, err.msg);
    if (found) {
        int64_t *grown = realloc(lc->decided, (lc->n_decided + 1) * sizeof(*grown));
        if (grown) {
            lc->decided = grown;
            lc->decided[lc->n_decided++] = m->tag;
        }
        ec_mqtt_msg_free(m);
        return;
    }
    ec_mqtt_msg **grown = realloc(in->recovered, (in->n_recovered + 1) * sizeof(*grown));
    if (!grown) {
        ec_log_error("out of memory: journaled query %lld not re-run", (long long)m->tag);
        ec_mqtt_msg_free(m);
        return;
    }
    in->recovered = grown;
    in->recovered[in->n_recovered++] = m;
}

/* A row an older build left in the decision log's file: journaled anew. */
static void adopt(void *ctx, ec_mqtt_msg *m)
{
    load_ctx *lc = ctx;
    ec_error err = {0};
    m->dup = false;
    if (ec_journal_add(lc->in->journal, m, &err))
        ec_log_error("query %lld from the old journal not kept: %s", (long long)m->tag, err.msg);
    else
        lc->n_adopted++;
    ec_mqtt_msg_free(m);
}

/* The paid replies journaled before the last stop: those of a query that
 * runs again are kept for it (its next run uses the answer instead of paying
 * again, or its decision records the cost); they stay journaled until that
 * decision is committed. Those whose query was decided go. */
static ec_err adopt_replies(ec_ingress *in, load_ctx *lc, ec_error *err)
{
    int64_t *gone = NULL;
    size_t n_gone = 0, kept = 0;
    for (size_t i = 0; i < lc->n_replies; i++) {
        ec_mqtt_msg *m = lc->replies[i];
        bool pending = false;
        for (size_t k = 0; k < in->n_recovered && !pending; k++)
            pending = in->recovered[k]->tag == m->tag_of;
        ec_infer_reply rep = {0};
        ec_error e = {0};
        if (pending && in->orphans &&
            ec_infer_reply_decode(m->payload, m->len, &rep, &e) == EC_OK && rep.id) {
            ec_orphans_put(in->orphans, &rep);
            kept++;
        } else {
            int64_t *g = realloc(gone, (n_gone + 1) * sizeof(*g));
            if (g) {
                gone = g;
                gone[n_gone++] = m->tag;
            }
        }
        ec_infer_reply_clear(&rep);
    }
    if (kept)
        ec_log_info("%zu paid replies journaled before the last stop are kept for their queries",
                    kept);
    ec_err rc = n_gone ? ec_journal_done(in->journal, gone, n_gone, err) : EC_OK;
    free(gone);
    return rc;
}

static ec_err journal_load(ec_ingress *in, ec_error *err)
{
    ec_err rc = ec_journal_open(&in->journal, CFG(in)->db_path, err);
    if (rc)
        return rc;
    load_ctx lc = {.in = in};
    if ((rc = ec_ledger_take_old_journal(in->ledger, adopt, &lc, NULL, err)))
        return rc;
    if (lc.n_adopted)
        ec_log_info("%zu queries moved from the old journal in the decision log", lc.n_adopted);
    /* Read before the broker connection exists: whatever arrives after that
     * is journaled anew and must not be run twice. */
    rc = ec_journal_each(in->journal, keep, &lc, NULL, err);
    if (rc == EC_OK && lc.n_decided) {
        ec_log_info("%zu journaled queries were already decided before the last stop",
                    lc.n_decided);
        rc = ec_journal_done(in->journal, lc.decided, lc.n_decided, err);
    }
    free(lc.decided);
    if (rc == EC_OK)
        rc = adopt_replies(in, &lc, err);
    for (size_t i = 0; i < lc.n_replies; i++)
        ec_mqtt_msg_free(lc.replies[i]);
    free(lc.replies);
    if (rc == EC_OK)
        ec_store_on_commit(in->store, on_decided, in);
    return rc;
}

ec_err ec_ingress_create(ec_ingress **out, ec_router_env *env, ec_store *store, ec_ledger *ledger,
                         ec_orphans *orphans, ec_error *err)
{
    ec_ingress *in = calloc(1, sizeof(*in));
    if (!in)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    in->env = env;
    in->store = store;
    in->ledger = ledger;
    in->orphans = orphans;
    ec_err rc = EC_OK;
    if (!ec_topic(CFG(in), in->query_topic, sizeof(in->query_topic), "query"))
        rc = ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    if (!rc && store && ledger)
        rc = journal_load(in, err);
    if (rc) {
        ec_ingress_destroy(in);
        return rc;
    }
    *out = in;
    return EC_OK;
}

void ec_ingress_destroy(ec_ingress *in)
{
    if (!in)
        return;
    if (in->store && in->journal) {
        /* What the workers decided reaches the journal; then it is let go. */
        ec_store_flush(in->store, 5000, NULL);
        ec_store_on_commit(in->store, NULL, NULL);
    }
    ec_journal_close(in->journal);
    for (size_t i = 0; i < in->n_recovered; i++)
        ec_mqtt_msg_free(in->recovered[i]);
    free(in->recovered);
    free(in);
}
