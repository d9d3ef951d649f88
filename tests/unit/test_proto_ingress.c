/* How an incoming query payload is read (proto/src/proto_ingress.c): the
 * kind from the MQTT v5 Content Type and Payload Format Indicator or from the
 * first bytes, plain-text prompts, the id rescued from JSON that does not
 * decode; and a Result without an answering tier carries null for the numbers
 * that do not apply (tier_index, confidence, threshold). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "edgecascade/proto.h"

static void kind_follows_content_type_then_bytes(void **state)
{
    (void)state;
    /* The Content Type decides when present. */
    assert_int_equal(ec_payload_kind_of("hello", 5, "application/json", -1), EC_PAYLOAD_JSON);
    assert_int_equal(ec_payload_kind_of("{}", 2, "application/vnd.acme+json; charset=utf-8", -1),
                     EC_PAYLOAD_JSON);
    assert_int_equal(ec_payload_kind_of("{}", 2, "application/msgpack", -1), EC_PAYLOAD_MSGPACK);
    assert_int_equal(ec_payload_kind_of("{x", 2, "text/plain; charset=utf-8", -1), EC_PAYLOAD_TEXT);
    /* Without one, the bytes. */
    assert_int_equal(ec_payload_kind_of(" {\"prompt\":\"x\"}", 15, NULL, -1), EC_PAYLOAD_JSON);
    assert_int_equal(ec_payload_kind_of("[1,2]", 5, NULL, -1), EC_PAYLOAD_JSON);
    assert_int_equal(ec_payload_kind_of("\x81\xa1v\x01", 4, NULL, -1), EC_PAYLOAD_MSGPACK);
    assert_int_equal(ec_payload_kind_of("\xde\x00\x01", 3, NULL, -1), EC_PAYLOAD_MSGPACK);
    assert_int_equal(ec_payload_kind_of("Convert 150 psi to bar.", 23, NULL, -1), EC_PAYLOAD_TEXT);
    assert_int_equal(ec_payload_kind_of("Druck 3 bar \xc3\xbc"
                                        "ber Soll",
                                        21, NULL, 1),
                     EC_PAYLOAD_TEXT);
    assert_int_equal(ec_payload_kind_of("", 0, NULL, -1), EC_PAYLOAD_TEXT);
    assert_int_equal(ec_payload_kind_of(NULL, 0, NULL, -1), EC_PAYLOAD_TEXT);
    /* Not UTF-8 and not a map: left to the msgpack decoder to explain. */
    assert_int_equal(ec_payload_kind_of("\x91\xff\xfe", 3, NULL, -1), EC_PAYLOAD_MSGPACK);
}

static void plain_text_is_a_prompt_answered_in_json(void **state)
{
    (void)state;
    ec_query q = {0};
    ec_encoding enc = EC_ENC_MSGPACK;
    ec_error err = {0};
    const char *t = "  Convert 150 psi to bar.\n";
    assert_int_equal(ec_query_decode_payload(t, strlen(t), NULL, -1, &q, &enc, &err), EC_OK);
    assert_int_equal(enc, EC_ENC_JSON);
    assert_string_equal(q.prompt, "Convert 150 psi to bar.");
    assert_null(q.id);
    assert_int_equal(q.policy, EC_POLICY_AUTO);
    ec_query_clear(&q);

    /* Empty, or only blanks: an error, in JSON. */
    enc = EC_ENC_MSGPACK;
    assert_int_equal(ec_query_decode_payload(" \n", 2, NULL, -1, &q, &enc, &err), EC_ERR_PROTO);
    assert_int_equal(enc, EC_ENC_JSON);
    assert_non_null(strstr(err.msg, "empty payload"));
    ec_query_clear(&q);

    /* A top-level array is JSON, and not a query. */
    assert_int_equal(ec_query_decode_payload("[1,2]", 5, NULL, -1, &q, &enc, &err), EC_ERR_PROTO);
    assert_int_equal(enc, EC_ENC_JSON);
    ec_query_clear(&q);

    /* msgpack stays msgpack. */
    ec_query in = {.id = "m1", .prompt = "hi"};
    ec_buf b;
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&in, &b, &err), EC_OK);
    assert_int_equal(ec_query_decode_payload(b.data, b.len, NULL, -1, &q, &enc, &err), EC_OK);
    assert_int_equal(enc, EC_ENC_MSGPACK);
    assert_string_equal(q.id, "m1");
    ec_query_clear(&q);
    ec_buf_free(&b);
}

static void a_broken_json_query_keeps_its_id(void **state)
{
    (void)state;
    ec_query q = {0};
    ec_encoding enc;
    ec_error err = {0};
    const char *cut = "{\"id\":\"keep-me-7\", \"prompt\": \"x\"";
    assert_int_equal(ec_query_decode_payload(cut, strlen(cut), NULL, -1, &q, &enc, &err),
                     EC_ERR_PROTO);
    assert_string_equal(q.id, "keep-me-7");
    ec_query_clear(&q);

    const char *invalid = "{\"id\": \"e1\", \"prompt\": \"hi\", \"max_tokens\": -5}";
    assert_int_not_equal(
        ec_query_decode_payload(invalid, strlen(invalid), NULL, -1, &q, &enc, &err), EC_OK);
    assert_string_equal(q.id, "e1");
    ec_query_clear(&q);

    /* An id that could not name a topic is not rescued. */
    const char *bad = "{\"id\":\"a/b\", \"prompt\": ";
    assert_int_not_equal(ec_query_decode_payload(bad, strlen(bad), NULL, -1, &q, &enc, &err),
                         EC_OK);
    assert_null(q.id);
    ec_query_clear(&q);
}

static void an_error_result_has_null_where_nothing_applies(void **state)
{
    (void)state;
    ec_result r = {.id = "e1", .reason = "not answered: bad_request", .confidence = -1};
    ec_wire_error_set(&r.error, "bad_request", "query.max_tokens: out of range");
    ec_buf b;
    ec_buf_init(&b, 0);
    ec_error err = {0};
    assert_int_equal(ec_result_encode_json(&r, &b, &err), EC_OK);
    char *json = strndup(b.data, b.len);
    assert_non_null(strstr(json, "\"tier\":null"));
    assert_non_null(strstr(json, "\"tier_index\":null"));
    assert_non_null(strstr(json, "\"confidence\":null"));
    assert_non_null(strstr(json, "\"threshold\":null"));
    assert_non_null(strstr(json, "\"attempts\":null"));
    free(json);
    /* ...and it decodes back (msgpack too). */
    ec_buf_reset(&b);
    assert_int_equal(ec_result_encode(&r, &b, &err), EC_OK);
    ec_result back = {0};
    assert_int_equal(ec_result_decode(b.data, b.len, &back, &err), EC_OK);
    assert_null(back.tier);
    ec_result_clear(&back);

    /* An answer keeps its numbers. */
    r.tier = "local";
    r.tier_index = 0;
    r.confidence = 0.93;
    r.threshold = 0.7;
    ec_buf_reset(&b);
    assert_int_equal(ec_result_encode_json(&r, &b, &err), EC_OK);
    json = strndup(b.data, b.len);
    assert_non_null(strstr(json, "\"tier_index\":0"));
    assert_non_null(strstr(json, "\"confidence\":0.93"));
    free(json);
    ec_wire_error_clear(&r.error);
    ec_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kind_follows_content_type_then_bytes),
        cmocka_unit_test(plain_text_is_a_prompt_answered_in_json),
        cmocka_unit_test(a_broken_json_query_keeps_its_id),
        cmocka_unit_test(an_error_result_has_null_where_nothing_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
