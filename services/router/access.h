/* Who asked, and where the answer may go: the rules ingress applies to a
 * query's topic and its MQTT v5 Response Topic.
 *
 * The router is a deputy with wider broker rights than the clients that ask
 * it (it may write every PLC's reply topics and its own service topics), so
 * it must not publish wherever a query's Response Topic says: a PLC could
 * have its Result delivered into another PLC's answers, or into the cloud
 * relay's input. The asker's identity comes from the topic the broker let it
 * write (<root>/query/<user>, Mosquitto's `pattern write .../%u`), never from
 * the payload.
 *
 * Pure functions of the config and the strings given; no state. */
#ifndef EC_ROUTER_ACCESS_H
#define EC_ROUTER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "edgecascade/config.h"

/* What a topic is to the router's query subscription. */
typedef enum ec_query_topic {
    EC_QT_NONE = 0,  /* not a query topic */
    EC_QT_ANONYMOUS, /* the bare <root>/query: no identity */
    EC_QT_ASKER,     /* <root>/query/<user>: *asker, *asker_len name the user */
} ec_query_topic;

/* query_topic is "<root>/query". */
ec_query_topic ec_access_query_topic(const char *query_topic, const char *topic, const char **asker,
                                     size_t *asker_len);

/* Whether the Router may publish a Result to `topic` for a query of `asker`
 * (NULL: none). False with the reason in why (one sentence, for the error
 * Result and the log). root is cfg->topic_root. */
bool ec_access_reply_allowed(const ec_config *cfg, const char *asker, const char *topic, char *why,
                             size_t why_len);

/* MQTT topic filter matching (+ one level, # the rest, $-topics not matched
 * by a leading wildcard). */
bool ec_access_filter_matches(const char *filter, const char *topic);

#endif
