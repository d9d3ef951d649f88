/* edgecascade-relay: answers InferRequests for cloud tiers (OpenAI, Anthropic).
 * Transient failures (timeouts, 429, 5xx) are retried with capped full-jitter
 * backoff, honouring Retry-After, within the request's deadline. */
#include "edgecascade/tierd.h"

int main(int argc, char **argv)
{
    ec_service svc;
    int rc = ec_service_init(&svc, "relay",
                             "Cloud relay: forwards escalated queries to the cloud model APIs "
                             "(OpenAI, Anthropic). API keys come from the environment or a key "
                             "file and are never logged.",
                             argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    ec_tierd_opts o = {.serve_local = false,
                       .workers = svc.cfg.relay_workers,
                       .max_retries = 2,
                       .backoff_ms = 200,
                       .backoff_max_ms = 4000};
    rc = ec_tierd_run(&svc, &o);
    ec_service_shutdown(&svc);
    return rc;
}
