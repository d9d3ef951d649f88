/* Fuzzes ec_infer_request_decode: msgpack InferRequest (router -> tier). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_infer_request, ec_infer_request_decode, ec_infer_request_encode,
                   ec_infer_request_clear, data, size);
    return 0;
}
