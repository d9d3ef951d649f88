/* What a reload (SIGHUP) may change in a running service.
 *
 * Most keys are read afresh on every use, so a new value simply applies. The
 * keys listed here are baked into something built once at start: the MQTT
 * connection (broker, login, TLS, client id, session), the topic names
 * (site, topic_root), the store's file and writer, thread counts, the pending
 * table's size, and the cascade's shape (tier names, order and where each is
 * served: a query in flight holds tier indices). A reload that changes any of
 * them is refused as a whole, so an operator never has to guess which half of
 * a file applied. The list is of key paths, looked up in the config table, so
 * a renamed key fails the unit test instead of silently slipping through. */
#include <stdio.h>
#include <string.h>

#include "config_map.h"
#include "edgecascade/config.h"

static const char *const restart_keys[] = {
    "site",
    "topic_root",
    "mqtt.broker",
    "mqtt.username",
    "mqtt.password",
    "mqtt.password_file",
    "mqtt.ca_file",
    "mqtt.cert_file",
    "mqtt.key_file",
    "mqtt.keepalive_s",
    "mqtt.max_inflight",
    "mqtt.queue_size",
    "mqtt.client_id",
    "mqtt.session_expiry_s",
    "mqtt.shared_subscriptions",
    "store.path",
    "store.batch_ms",
    "router.workers",
    "router.max_pending",
    "local.workers",
    "relay.workers",
    "http.port", /* the router's HTTP server binds once */
    "http.bind",
    NULL,
};

/* The entry for a dotted path ("mqtt.broker"), searching one section deep. */
static const ec_cm_entry *find_path(const char *path)
{
    const ec_cm_entry *root = ec_config_root_table();
    const char *dot = strchr(path, '.');
    if (!dot)
        return ec_cm_find(root, path);
    char section[64];
    size_t n = (size_t)(dot - path);
    if (n >= sizeof(section))
        return NULL;
    memcpy(section, path, n);
    section[n] = '\0';
    const ec_cm_entry *s = ec_cm_find(root, section);
    if (!s || s->type != EC_CM_SECTION)
        return NULL;
    return ec_cm_find(s->sub, dot + 1);
}

static bool str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

static bool field_differs(const ec_cm_entry *e, const ec_config *a, const ec_config *b)
{
    const char *pa = (const char *)a + e->offset, *pb = (const char *)b + e->offset;
    switch (e->type) {
    case EC_CM_STR:
    case EC_CM_SECRET:
        return str_differs(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb);
    case EC_CM_INT:
        return memcmp(pa, pb, sizeof(int)) != 0;
    case EC_CM_U32:
        return memcmp(pa, pb, sizeof(uint32_t)) != 0;
    case EC_CM_DOUBLE:
        return memcmp(pa, pb, sizeof(double)) != 0;
    case EC_CM_BOOL:
        return memcmp(pa, pb, sizeof(bool)) != 0;
    default:
        return false;
    }
}

bool ec_config_restart_key(const ec_config *old, const ec_config *next, char *key, size_t keylen)
{
    for (size_t i = 0; restart_keys[i]; i++) {
        const ec_cm_entry *e = find_path(restart_keys[i]);
        if (e && field_differs(e, old, next)) {
            snprintf(key, keylen, "%s", restart_keys[i]);
            return true;
        }
    }
    if (old->n_tiers != next->n_tiers) {
        snprintf(key, keylen, "tiers (%zu tiers, now %zu)", old->n_tiers, next->n_tiers);
        return true;
    }
    for (size_t i = 0; i < old->n_tiers; i++) {
        const ec_tier_cfg *a = &old->tiers[i], *b = &next->tiers[i];
        if (str_differs(a->name, b->name)) {
            snprintf(key, keylen, "tiers[%zu].name", i);
            return true;
        }
        if (a->local != b->local) {
            snprintf(key, keylen, "tiers[%zu].provider (local and cloud swapped)", i);
            return true;
        }
    }
    return false;
}

/* For the unit test: every listed path names a key in the table. */
const char *ec_config_restart_key_unknown(void);
const char *ec_config_restart_key_unknown(void)
{
    for (size_t i = 0; restart_keys[i]; i++)
        if (!find_path(restart_keys[i]))
            return restart_keys[i];
    return NULL;
}
