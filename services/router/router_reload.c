/* Reload (SIGHUP) for the router.
 *
 * Everything the cascade reads per query comes through two pointers, r->cfg
 * and r->gate, both atomic: a reload builds the new config (the service's
 * prepare step refuses keys that need a restart) and a new gate from it (the
 * calibration file is read again, so a bad file refuses the reload), asks the
 * modules' hooks, and then swaps the gate and the config, each in one store.
 * A worker in the middle of a query may read the old config for one field and
 * the new one for the next; that is harmless because nothing a reload may
 * change is an index or a size (tier names, order and count are restart
 * keys). The old gate and config stay allocated until the router is destroyed,
 * so no reader can ever see freed memory. */
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "router_internal.h"

ec_err ec_router_add_reload_hook(ec_router *r, const ec_router_reload_hook *h, ec_error *err)
{
    if (r->n_reload_hooks >= EC_ROUTER_MAX_RELOAD_HOOKS)
        return ec_error_set(err, EC_ERR_INVAL, "router: more than %d reload hooks",
                            EC_ROUTER_MAX_RELOAD_HOOKS);
    r->reload_hooks[r->n_reload_hooks++] = *h;
    return EC_OK;
}

static ec_err retire_gate(ec_router *r, ec_gate *old, ec_error *err)
{
    ec_gate **g = realloc(r->retired_gates, (r->n_retired_gates + 1) * sizeof(*g));
    if (!g)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    r->retired_gates = g;
    g[r->n_retired_gates++] = old;
    return EC_OK;
}

ec_err ec_router_reload(ec_router *r, ec_error *err)
{
    double t0 = ec_mono_ms();
    ec_config *next = NULL;
    ec_gate *gate = NULL;
    ec_err rc = ec_service_reload_prepare(r->svc, &next, err);
    if (rc)
        goto refuse;
    if ((rc = ec_gate_create(&gate, next, err)))
        goto refuse;
    for (size_t i = 0; i < r->n_reload_hooks; i++) {
        const ec_router_reload_hook *h = &r->reload_hooks[i];
        if (h->check && (rc = h->check(h->ctx, next, err))) {
            ec_error_prefix(err, "%s: ", h->name ? h->name : "module");
            goto refuse;
        }
    }
    /* Reserved before the swap so the swap itself cannot fail. */
    if ((rc = retire_gate(r, NULL, err)))
        goto refuse;
    for (size_t i = 0; i < r->n_reload_hooks; i++) {
        const ec_router_reload_hook *h = &r->reload_hooks[i];
        if (h->apply)
            h->apply(h->ctx, next);
    }
    r->retired_gates[r->n_retired_gates - 1] = atomic_exchange(&r->gate, gate);
    atomic_store(&r->cfg, next);
    ec_service_reload_commit(r->svc, next, ec_mono_ms() - t0);
    ec_log_info("in force: threshold %.2f (%s)%s%s, shadow rate %.2f, samples %d",
                next->min_confidence, next->gate_preset,
                next->gate_calibration && *next->gate_calibration ? ", calibration " : "",
                next->gate_calibration ? next->gate_calibration : "", next->shadow_rate,
                next->samples);
    ec_router_replay_wake(r); /* the queue's interval or TTL may have changed */
    return EC_OK;
refuse:
    ec_gate_destroy(gate);
    ec_service_reload_reject(r->svc, next, err->msg);
    return rc;
}

void ec_router_reload_clear(ec_router *r)
{
    for (size_t i = 0; i < r->n_retired_gates; i++)
        ec_gate_destroy(r->retired_gates[i]);
    free(r->retired_gates);
    r->retired_gates = NULL;
    r->n_retired_gates = 0;
}
