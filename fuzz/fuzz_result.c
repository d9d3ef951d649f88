/* Fuzzes ec_result_decode: msgpack Result (router -> client; the CLI decodes it). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_result, ec_result_decode, ec_result_encode, ec_result_clear, data, size);
    return 0;
}
