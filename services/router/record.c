/* Stage 5, record (record.h). */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

struct ec_record {
    ec_router_env *env;
    ec_store *store;
    ec_orphans *orphans;
};

ec_record *ec_record_create(ec_router_env *env, ec_store *store, ec_orphans *orphans)
{
    ec_record *rec = calloc(1, sizeof(*rec));
    if (!rec)
        return NULL;
    rec->env = env;
    rec->store = store;
    rec->orphans = orphans;
    return rec;
}

void ec_record_destroy(ec_record *rec)
{
    free(rec);
}

/* Paid replies kept for this query that its run did not use: extra
 * attempts of its decision, so every paid call is in the log once. */
static void add_orphans(ec_record *rec, ec_pending *p, ec_result *res)
{
    ec_orphan *x = ec_orphans_take_all(rec->orphans, p->query.id);
    while (x) {
        ec_orphan *next = x->next;
        ec_attempt *grown = realloc(res->attempts, (res->n_attempts + 1) * sizeof(*grown));
        if (grown) {
            res->attempts = grown;
            ec_orphan_attempt(x, &res->attempts[res->n_attempts++]);
            res->cost_usd += x->rep.cost_usd;
            p->left_device = true;
        } else {
            ec_log_error("out of memory: a paid reply for %s (%.6f USD) not recorded", p->query.id,
                         x->rep.cost_usd);
        }
        ec_orphan_free(x);
        x = next;
    }
}

ec_stage_rc ec_record_run(ec_record *rec, ec_pending *p)
{
    const ec_config *cfg = atomic_load(&rec->env->cfg);
    ec_result *res = &p->res;
    p->stage = EC_STAGE_DONE;
    p->ok = true;
    if (!rec->store)
        return EC_STAGE_NEXT;
    if (rec->orphans && !p->shadow && p->query.id)
        add_orphans(rec, p, res);
    ec_decision d = {
        .ts_ms = p->ts_ms,
        .result = *res,
        .policy = p->query.policy,
        .encoding = p->enc,
        .left_device = p->left_device,
        .n_details = p->n_attempts,
        .journal_id = p->journal_id,
        .append_only = p->shadow,
    };
    /* The drafts and the Result move into the decision; p no longer owns them. */
    memcpy(d.details, p->details, sizeof(d.details));
    memset(p->details, 0, sizeof(p->details));
    const ec_tier_cfg *top = &cfg->tiers[cfg->n_tiers - 1];
    if (!res->error.code)
        d.cost_top_usd = ec_tier_cost(top, res->tokens_in, res->tokens_out);
    memset(res, 0, sizeof(*res));
    p->has_result = false;
    ec_error err = {0};
    /* The writer's queue is full only when the disk cannot keep up; waiting
     * here slows intake rather than losing a decision (but never on Paho's thread). */
    for (int i = 0; i < (p->nowait ? 1 : 500); i++) {
        if (ec_store_record(rec->store, &d, &err) == EC_OK)
            return EC_STAGE_NEXT;
        if (!p->nowait)
            ec_sleep_ms(10);
    }
    ec_log_error("decision %s not recorded: %s", d.result.id, err.msg);
    ec_decision_clear(&d);
    return EC_STAGE_NEXT;
}
