/* The providers' JSON on cJSON (common/models/README.md says why not jansson).
 *
 * cJSON is laxer than JSON: it reads past the end of the value, takes
 * invalid UTF-8 and stores every number as a double. Two of those matter for
 * a model server's answer and are checked here; the rest (a leading zero, a
 * raw control character, a repeated key, where the first one wins) changes
 * nothing an answer can carry, so it is left to cJSON:
 * - text after the value is refused: an Ollama stream answered by mistake
 *   (NDJSON) must be a malformed response, not its first chunk's word;
 * - a string we take must be valid UTF-8, because it goes into a Result whose
 *   msgpack str fields must be (a model's broken byte is then a malformed
 *   response that the cascade retries or escalates, not an unsendable
 *   Result). */
#include "provider_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "edgecascade/proto.h"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

cJSON *ec_prov_json_parse(const char *text, size_t n, char *why, size_t whylen)
{
    const char *end = NULL;
    cJSON *root = n ? cJSON_ParseWithLengthOpts(text, n, &end, 0) : NULL;
    if (!root) {
        snprintf(why, whylen, "syntax error at byte %zu", end ? (size_t)(end - text) : (size_t)0);
        return NULL;
    }
    for (size_t at = (size_t)(end - text); at < n; at++) {
        if (!is_ws(text[at])) {
            snprintf(why, whylen, "text after the JSON value at byte %zu", at);
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

cJSON *ec_prov_json_get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

const char *ec_prov_json_str(const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring ||
        !ec_utf8_valid(v->valuestring, strlen(v->valuestring)))
        return NULL;
    return v->valuestring;
}

uint32_t ec_prov_count(double d)
{
    if (!(d >= 0) || d != floor(d))
        return 0;
    return d > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

uint32_t ec_prov_json_count(const cJSON *v)
{
    return cJSON_IsNumber(v) ? ec_prov_count(v->valuedouble) : 0;
}

cJSON *ec_prov_json_string(const char *s)
{
    if (!s || !ec_utf8_valid(s, strlen(s)))
        return NULL;
    return cJSON_CreateString(s);
}

cJSON *ec_prov_json_real(double d)
{
    return isfinite(d) ? cJSON_CreateNumber(d) : NULL;
}

int ec_prov_json_set(cJSON *obj, const char *key, cJSON *item)
{
    if (obj && item && cJSON_AddItemToObject(obj, key, item))
        return 0;
    cJSON_Delete(item);
    return -1;
}
