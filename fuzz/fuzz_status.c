/* Fuzzes ec_status_decode: msgpack Status (retained service status). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_ROUNDTRIP(ec_status, ec_status_decode, ec_status_encode, ec_status_clear, data, size);
    return 0;
}
