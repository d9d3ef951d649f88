/* Fuzzes ec_infer_reply_decode: msgpack InferReply (tier -> router). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_infer_reply, ec_infer_reply_decode, ec_infer_reply_encode,
                   ec_infer_reply_clear, data, size);
    return 0;
}
