/* Shared by the libFuzzer harnesses (one executable per decoder).
 *
 * Beyond "no crash, no leak, no UB" (ASan/UBSan/LeakSanitizer do that part),
 * the harnesses check the contracts proto.h promises, so a silent contract
 * break is found as a crash too:
 *   - a failed decode leaves its output zeroed and says why;
 *   - whatever a decoder accepts, the matching encoder can write again (a
 *     service never relays a message it cannot publish), the result decodes,
 *     and encoding that once more gives the same bytes (the encoding is
 *     canonical). */
#ifndef EC_FUZZ_H
#define EC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/buf.h"
#include "edgecascade/err.h"
#include "edgecascade/proto.h"

#define FUZZ_CHECK(cond, msg)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz contract broken: %s (%s:%d): %s\n", #cond, __FILE__, __LINE__,   \
                    (msg));                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline int fuzz_all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* One harness body for a decoder/encoder pair of the same message type. */
#define FUZZ_ROUNDTRIP(type, decode, encode, clear, data, size)                                    \
    do {                                                                                           \
        type a_, b_;                                                                               \
        ec_error e_ = {0};                                                                         \
        memset(&a_, 0, sizeof(a_));                                                                \
        memset(&b_, 0, sizeof(b_));                                                                \
        if (decode((data), (size), &a_, &e_) != EC_OK) {                                           \
            FUZZ_CHECK(fuzz_all_zero(&a_, sizeof(a_)), "output not cleared after an error");       \
            FUZZ_CHECK(e_.msg[0] != '\0', "decode error without a message");                       \
            break;                                                                                 \
        }                                                                                          \
        ec_buf b1_, b2_;                                                                           \
        ec_buf_init(&b1_, 0);                                                                      \
        ec_buf_init(&b2_, 0);                                                                      \
        FUZZ_CHECK(encode(&a_, &b1_, &e_) == EC_OK, e_.msg);                                       \
        FUZZ_CHECK(decode(b1_.data, b1_.len, &b_, &e_) == EC_OK, e_.msg);                          \
        FUZZ_CHECK(encode(&b_, &b2_, &e_) == EC_OK, e_.msg);                                       \
        FUZZ_CHECK(b1_.len == b2_.len && memcmp(b1_.data, b2_.data, b1_.len) == 0,                 \
                   "re-encoding a decoded message changed its bytes");                             \
        clear(&a_);                                                                                \
        clear(&b_);                                                                                \
        ec_buf_free(&b1_);                                                                         \
        ec_buf_free(&b2_);                                                                         \
    } while (0)

#endif
