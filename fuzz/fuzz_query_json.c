/* Fuzzes ec_query_decode_json: JSON Query (topic <root>/query). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_query, ec_query_decode_json, ec_query_encode_json, ec_query_clear, data,
                   size);
    return 0;
}
