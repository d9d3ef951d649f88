/* edgecascade-local: answers InferRequests for the tiers that run on the
 * device (vLLM, llama.cpp server, Ollama), asking for token logprobs so the
 * router's gate can judge each draft. No retries: when the local server fails,
 * the router hears it at once and can escalate. */
#include "edgecascade/tierd.h"

int main(int argc, char **argv)
{
    ec_service svc;
    int rc = ec_service_init(&svc, "local",
                             "Local inference service: calls the on-device model server "
                             "(OpenAI-compatible or Ollama API) for the router.",
                             argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    ec_tierd_opts o = {.serve_local = true, .workers = svc.cfg.local_workers, .max_retries = 0};
    rc = ec_tierd_run(&svc, &o);
    ec_service_shutdown(&svc);
    return rc;
}
