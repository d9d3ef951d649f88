/* ec_pending: one query on its way through the router, the one struct that
 * moves from stage to stage (stage.h). Its owner at any time is the stage
 * holding it, or the table or queue a stage handed it to while it waits; the
 * fields are grouped by the stage that writes them.
 *
 * ec_pending_table: the queries waiting for a tier's reply, keyed by the
 * correlation key of their current hop. Taking an entry removes it, so a
 * reply and the timeout sweep can race without both acting on one query. */
#ifndef EC_PENDING_H
#define EC_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/proto.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/store.h"
#include "gate.h"
#include "stage.h"

/* What the stage that decided wants the Result to say (egress builds it). */
typedef struct ec_outcome {
    int answer_attempt; /* the attempt whose draft is served, -1: none */
    bool degraded;      /* a better tier failed; a lower tier's draft stands in */
    char *reason;
    char *err_code; /* NULL: no error */
    char *err_msg;
} ec_outcome;

typedef struct ec_pending ec_pending;
/* Called instead of freeing p when it reaches EC_STAGE_DONE (the offline
 * queue's replays): ok says whether p was answered and recorded. The callback
 * owns p from then on. */
typedef void (*ec_pending_done_fn)(void *ctx, ec_pending *p, bool ok);

struct ec_pending {
    struct ec_pending *next; /* table and waiting-list chain */
    uint64_t key;            /* correlation key of the current hop */
    ec_stage stage;          /* where it is (stage.h) */

    /* pipeline: how the flight ends, and a flight it started */
    ec_pending_done_fn on_done;
    void *on_done_ctx;
    bool ok;           /* answered and recorded (for on_done) */
    bool notice;       /* a notice about an earlier answer (an expiry): published only */
    ec_pending *spawn; /* started when this one moves on (a shadow call) */

    /* ingress */
    ec_mqtt_msg *msg; /* the query as it arrived, during EC_STAGE_INGRESS only (not owned) */
    bool overflowed;  /* queued past a full inbound queue */

    ec_query query;
    ec_encoding enc;
    char *response_topic; /* the client's, or NULL */
    void *corr;
    size_t corr_len;
    ec_mqtt_userprop *user_props; /* the query's MQTT v5 User Properties, echoed */
    size_t n_user_props;
    char *asker; /* the broker-verified user of <root>/query/<user>, or NULL (access.h) */

    /* admission */
    bool admitted; /* holds one of its asker's places (fair.h), given back at DONE */
    int weight;    /* the asker's turns per round at the local model (router.asker_weights) */

    uint64_t ts_ms;      /* arrival, epoch ms */
    double t0_ms;        /* arrival, monotonic ms */
    double hop_start_ms; /* current hop published */
    double hop_deadline_ms;
    double busy_ms; /* time spent inside router code */

    int tier;         /* current tier index */
    ec_gate_query gq; /* the gate's view of the query */
    ec_attempt attempts[EC_MAX_ATTEMPTS];
    ec_attempt_detail details[EC_MAX_ATTEMPTS]; /* drafts and signals, per attempt */
    size_t n_attempts;
    int best; /* attempt index of the most confident draft, -1 if none */
    bool left_device;
    bool nowait;    /* answered from Paho's thread: publish and record without waiting */
    bool windowed;  /* holds a slot of the local window (window.h) */
    double held_ms; /* monotonic: began waiting for a local slot */
    double slot_ms; /* monotonic: got its local slot */

    double deadline_ms;    /* monotonic: the whole query must be answered by then */
    uint32_t expiry_s;     /* MQTT Message Expiry of the query, 0 if none */
    int64_t journal_id;    /* row in the arrival journal, 0 if none */
    int64_t outbox_id;     /* a replayed escalation: its outbox row, else 0 */
    uint32_t revision;     /* 1, or 2 for a replayed escalation */
    double prior_cost_usd; /* spent before a replay (revision 1's attempts) */
    uint64_t arrived_ms;   /* epoch ms of the first arrival (replays: the original) */
    bool shadow;           /* a shadow call: recorded beside the decision, never published */
    bool replayed;         /* run again from the journal after a restart */
    bool spend_counted;    /* the reply being judged was counted against the budget already */

    /* controls (router_controls.c) */
    ec_chat_msg *masked; /* the messages as a cloud tier gets them (privacy.*), or NULL */
    size_t n_masked;
    bool mask_done;  /* masked was worked out (it stays NULL when nothing matched) */
    bool redacted;   /* something was masked before the query left the device */
    bool withheld;   /* policy consent without consent kept a draft on the device */
    char *cache_key; /* the query's cache key; NULL when not cacheable */
    size_t cache_key_len;
    struct ec_cache_hit *cached; /* answered from the cache */

    /* cascade -> egress -> record */
    ec_infer_reply reply; /* a tier's reply (or error) waiting to be judged */
    bool has_reply;
    ec_outcome out;
    bool has_result; /* res is built (egress, or a shadow or expiry built it) */
    ec_result res;
};

typedef struct ec_pending_table ec_pending_table;

ec_pending_table *ec_pending_table_create(size_t buckets);
/* Frees the table and every entry still in it. */
void ec_pending_table_destroy(ec_pending_table *t);
void ec_pending_put(ec_pending_table *t, ec_pending *p);
ec_pending *ec_pending_take(ec_pending_table *t, uint64_t key);
/* Looks without taking: the tier and journal id of the query waiting on key. */
bool ec_pending_peek(ec_pending_table *t, uint64_t key, int *tier, int64_t *journal_id);
/* Removes and returns (chained through next) entries whose hop deadline passed. */
ec_pending *ec_pending_take_expired(ec_pending_table *t, double now_ms);
size_t ec_pending_count(ec_pending_table *t);

/* A new flight at EC_STAGE_INGRESS (best -1, revision 1), or NULL. */
ec_pending *ec_pending_new(void);
void ec_pending_free(ec_pending *p);

/* The deciding stage's last word: egress builds the Result from it. Moves p
 * to EC_STAGE_EGRESS. */
void ec_pending_conclude(ec_pending *p, int answer_attempt, bool degraded, const char *reason,
                         const char *err_code, const char *err_msg);
/* An error Result: reason "not answered: <code>". */
void ec_pending_fail(ec_pending *p, const char *code, const char *msg);

/* A deep copy of an attempt (strings duplicated). */
void ec_pending_copy_attempt(ec_attempt *dst, const ec_attempt *src);

/* Attaches an error reply for the cascade to judge (a timeout, a refused
 * hop); p must hold none. */
void ec_pending_set_error(ec_pending *p, const char *code, const char *msg);

#endif
