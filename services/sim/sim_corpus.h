/* Corpus mode (--replay-dir DIR): serve the model APIs' own published bodies
 * verbatim, for contract tests.
 *
 * DIR holds tests/data/providers/<api>/<case>.json files
 * ({"endpoint", "status", "headers", "body" | "body_text", ...}; see
 * tests/data/providers/README.md). A test queues cases with
 *
 *   POST /sim/serve {"file": "ollama/chat_logprobs.json", "times": 1,
 *                    "path": "/api/chat"}
 *
 * ("times" 0 = every request from now on; "path" defaults to the file's
 * endpoint). A request to that path is answered by the first queued case
 * for it, with the file's status, headers and body and nothing else (only
 * X-Simulated is added); a path with nothing queued falls through to the
 * script as usual. Every model API request (not /sim/...) is recorded, with
 * its method, path, the headers that matter and its body, for
 * GET /sim/received; DELETE /sim/received forgets them and the queue. */
#ifndef SIM_CORPUS_H
#define SIM_CORPUS_H

#include <microhttpd.h>
#include <stdbool.h>

#include "edgecascade/err.h"

typedef struct sim_corpus sim_corpus;
struct sim_req;

ec_err sim_corpus_create(const char *dir, sim_corpus **out, ec_error *err);
void sim_corpus_free(sim_corpus *c);

/* For a model API request: records it, and answers it when a case is queued
 * for its path (true, with *res set); false to route it as usual. */
bool sim_corpus_answer(struct sim_req *r, enum MHD_Result *res);

enum MHD_Result sim_corpus_serve(struct sim_req *r);
enum MHD_Result sim_corpus_received(struct sim_req *r);
enum MHD_Result sim_corpus_forget(struct sim_req *r);

#endif
