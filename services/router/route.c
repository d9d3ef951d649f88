/* The order of the tiers (route.h). */
#include "route.h"

#include <string.h>

bool ec_route_stays_local(const ec_pending *p)
{
    return p->query.policy == EC_POLICY_LOCAL_ONLY ||
           (p->query.policy == EC_POLICY_CONSENT && !p->query.consent);
}

int ec_route_next(const ec_config *cfg, const ec_pending *p, int after)
{
    for (size_t i = (size_t)(after + 1); i < cfg->n_tiers; i++) {
        if (ec_route_stays_local(p) && !cfg->tiers[i].local)
            continue;
        if (cfg->tiers[i].failover_of && *cfg->tiers[i].failover_of)
            continue;
        return (int)i;
    }
    return -1;
}

int ec_route_primary(const ec_config *cfg, int ti)
{
    const char *f = cfg->tiers[ti].failover_of;
    if (f && *f) {
        int j = ec_config_tier_index(cfg, f);
        if (j >= 0)
            return j;
    }
    return ti;
}

int ec_route_failover(const ec_config *cfg, const ec_pending *p, int ti)
{
    const char *primary = cfg->tiers[ec_route_primary(cfg, ti)].name;
    for (size_t i = (size_t)ti + 1; i < cfg->n_tiers; i++) {
        const ec_tier_cfg *t = &cfg->tiers[i];
        if (ec_route_stays_local(p) && !t->local)
            continue;
        if (t->failover_of && strcmp(t->failover_of, primary) == 0)
            return (int)i;
    }
    return -1;
}

bool ec_route_cloud_after(const ec_config *cfg, int ti)
{
    for (size_t i = (size_t)ti + 1; i < cfg->n_tiers; i++)
        if (!cfg->tiers[i].local && !(cfg->tiers[i].failover_of && *cfg->tiers[i].failover_of))
            return true;
    return false;
}
