/* edgecascade-relay: answers InferRequests for cloud tiers (OpenAI, Anthropic).
 * Transient failures (timeouts, 429, 5xx) are retried with capped full-jitter
 * backoff, honouring Retry-After, within the request's deadline; each tier has
 * a circuit breaker (relay.h), so a cloud outage fails fast instead of making
 * every query wait. */
#include "edgecascade/log.h"
#include "relay.h"

int main(int argc, char **argv)
{
    ec_service svc;
    ec_relay *relay = NULL;
    ec_error err = {0};
    int rc = ec_service_init(&svc, "relay",
                             "Cloud relay: forwards escalated queries to the cloud model APIs "
                             "(OpenAI, Anthropic). API keys come from the environment or a key "
                             "file and are never logged.",
                             argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (ec_relay_create(&relay, &svc, &err)) {
        ec_log_error("%s", err.msg);
        ec_service_shutdown(&svc);
        return 1;
    }
    ec_tierd_opts o = {.serve_local = false,
                       .workers = svc.cfg.relay_workers,
                       .max_retries = svc.cfg.relay_retries,
                       .backoff_ms = svc.cfg.backoff_ms,
                       .backoff_max_ms = svc.cfg.backoff_max_ms};
    ec_relay_hooks(relay, &o.hooks);
    rc = ec_tierd_run(&svc, &o);
    ec_service_shutdown(&svc);
    ec_relay_destroy(relay);
    return rc;
}
