/* The relay's circuit breakers: one per cloud tier, driven by the tier
 * daemon's admit/report hooks. Every transition is published retained on
 * <root>/status/breaker/<tier> (JSON), where the router records it in the
 * decision log and `edgecascade status` shows it. Commands arrive on
 * <root>/cmd/breaker/<tier>: "force_open", "disable" or "auto". */
#ifndef EC_RELAY_H
#define EC_RELAY_H

#include "edgecascade/service.h"
#include "edgecascade/tierd.h"

typedef struct ec_relay ec_relay;

ec_err ec_relay_create(ec_relay **out, ec_service *svc, ec_error *err);
void ec_relay_destroy(ec_relay *r);
/* Fills the tier daemon's hooks with the breakers'. */
void ec_relay_hooks(ec_relay *r, ec_tierd_hooks *out);

#endif
