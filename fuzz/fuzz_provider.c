/* Fuzzes the response parsers of the provider EC_FUZZ_PROVIDER (one executable
 * per provider, see CMakeLists.txt): parse_chat on an HTTP 200 whose body is
 * the input, and parse_models on the same body. An accepted chat
 * answer must also make an InferReply (what the tier service publishes next):
 * encoding it may refuse the content, but must say why. */
#include "fuzz.h"

#include "edgecascade/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ec_provider *p = ec_provider_find(EC_FUZZ_PROVIDER);
    FUZZ_CHECK(p != NULL, "provider " EC_FUZZ_PROVIDER " not found");
    ec_tier_cfg t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)"fuzz";
    t.provider = (char *)EC_FUZZ_PROVIDER;
    t.model = (char *)"fuzz-model";
    t.base_url = (char *)"http://127.0.0.1:9/v1";
    t.input_per_1m = 0.15;
    t.output_per_1m = 0.60;
    t.timeout_ms = 1000;
    t.logprobs = true;
    t.min_confidence = -1;

    ec_http_response resp;
    ec_http_response_init(&resp);
    resp.status = 200;
    FUZZ_CHECK(ec_buf_append(&resp.body, data, size) == EC_OK || size > EC_HTTP_MAX_BODY,
               "cannot copy the input");

    ec_infer_reply rep;
    ec_error err = {0};
    memset(&rep, 0, sizeof(rep));
    ec_outcome oc = p->parse_chat(&t, &resp, &rep, &err);
    if (oc == EC_OUTCOME_OK) {
        ec_buf b;
        ec_buf_init(&b, 0);
        rep.id = strdup("fuzz-1");
        rep.tier = strdup("fuzz");
        if (ec_infer_reply_encode(&rep, &b, &err) != EC_OK)
            FUZZ_CHECK(err.msg[0] != '\0', "encode error without a message");
        ec_buf_free(&b);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0', "parse_chat refused without a message");
    }
    ec_infer_reply_clear(&rep);

    char **names = NULL;
    size_t n = 0;
    memset(&err, 0, sizeof(err));
    if (p->parse_models(&resp, &names, &n, &err) == EC_OK) {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(names[i] != NULL, "NULL model name");
        ec_models_free(names, n);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0', "parse_models refused without a message");
    }
    ec_http_response_free(&resp);
    return 0;
}
