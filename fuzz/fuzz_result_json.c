/* Fuzzes ec_result_decode_json: JSON Result (the CLI decodes it with --json). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_result, ec_result_decode_json, ec_result_encode_json, ec_result_clear, data,
                   size);
    return 0;
}
