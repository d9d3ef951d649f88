/* The topic rules (access.h). */
#include "access.h"

#include <stdio.h>
#include <string.h>

ec_query_topic ec_access_query_topic(const char *query_topic, const char *topic, const char **asker,
                                     size_t *asker_len)
{
    size_t n = strlen(query_topic);
    if (strncmp(topic, query_topic, n) != 0)
        return EC_QT_NONE;
    if (!topic[n])
        return EC_QT_ANONYMOUS;
    if (topic[n] != '/' || !topic[n + 1] || strchr(topic + n + 1, '/'))
        return EC_QT_NONE; /* not a topic we subscribe to (query/+ is one level) */
    *asker = topic + n + 1;
    *asker_len = strlen(*asker);
    return EC_QT_ASKER;
}

bool ec_access_filter_matches(const char *filter, const char *topic)
{
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false; /* MQTT 4.7.2: wildcards at the start never match $-topics */
    const char *f = filter, *t = topic;
    while (*f) {
        if (f[0] == '#')
            return true; /* the rest, including the parent level itself */
        const char *fe = strchr(f, '/');
        size_t fl = fe ? (size_t)(fe - f) : strlen(f);
        const char *te = strchr(t, '/');
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        if (!fe) /* the filter's last level: the topic must end here too */
            return !te;
        if (!te) /* the topic ended: only a trailing "/#" matches (the parent) */
            return strcmp(fe, "/#") == 0;
        f = fe + 1;
        t = te + 1;
    }
    return !*t;
}

/* The subtrees of <root>/ the services read or write: a Result there would
 * be taken as a query, a reply, a status or a command. */
static const char *const service_levels[] = {"query",  "result", "infer", "reply",
                                             "status", "cmd",    "stats", NULL};

static bool under_root(const char *root, const char *topic, const char **rest)
{
    size_t n = strlen(root);
    if (strncmp(topic, root, n) != 0 || (topic[n] != '/' && topic[n]))
        return false;
    *rest = topic[n] ? topic + n + 1 : topic + n;
    return true;
}

/* filter with {asker} and {root} replaced; false when it names an asker and
 * there is none, or it does not fit. */
static bool expand(const char *filter, const char *root, const char *asker, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = filter; *p;) {
        const char *with = NULL;
        size_t skip = 1;
        if (strncmp(p, "{asker}", 7) == 0) {
            if (!asker)
                return false;
            with = asker;
            skip = 7;
        } else if (strncmp(p, "{root}", 6) == 0) {
            with = root;
            skip = 6;
        }
        size_t wl = with ? strlen(with) : 1;
        if (o + wl + 1 > n)
            return false;
        memcpy(out + o, with ? with : p, wl);
        o += wl;
        p += skip;
    }
    out[o] = '\0';
    return true;
}

bool ec_access_reply_allowed(const ec_config *cfg, const char *asker, const char *topic, char *why,
                             size_t why_len)
{
    const char *root = cfg->topic_root;
    const char *rest = NULL;
    if (!*topic || strpbrk(topic, "+#")) {
        snprintf(why, why_len, "Response Topic '%s' is not a topic name (empty, or a wildcard)",
                 topic);
        return false;
    }
    if (topic[0] == '$') {
        snprintf(why, why_len, "Response Topic '%s' is a $-topic (the broker's own)", topic);
        return false;
    }
    bool inside = under_root(root, topic, &rest);
    if (inside) {
        size_t l = strcspn(rest, "/");
        bool service = l == 0; /* <root> itself */
        for (size_t i = 0; service_levels[i] && !service; i++)
            service = strlen(service_levels[i]) == l && strncmp(rest, service_levels[i], l) == 0;
        if (service) {
            snprintf(why, why_len,
                     "Response Topic '%s' is one of edgecascade's own topics (%s/%.*s); the "
                     "router never answers there",
                     topic, root, (int)l, rest);
            return false;
        }
    }
    if (cfg->n_reply_topics == 0) {
        if (!inside || strncmp(rest, "replies/", 8) == 0)
            return true;
        snprintf(why, why_len,
                 "Response Topic '%s' is under %s/ (router.response_topics not set: any topic "
                 "outside %s/, or %s/replies/...)",
                 topic, root, root, root);
        return false;
    }
    char f[600];
    for (size_t i = 0; i < cfg->n_reply_topics; i++)
        if (expand(cfg->reply_topics[i].filter, root, asker, f, sizeof(f)) &&
            ec_access_filter_matches(f, topic))
            return true;
    size_t o = (size_t)snprintf(why, why_len, "Response Topic '%s' is not one the %s may use (",
                                topic, asker ? "asker" : "query without identity");
    for (size_t i = 0; i < cfg->n_reply_topics && o < why_len; i++) {
        const char *shown = expand(cfg->reply_topics[i].filter, root, asker, f, sizeof(f))
                                ? f
                                : cfg->reply_topics[i].filter;
        o += (size_t)snprintf(why + o, why_len - o, "%s%s", i ? ", " : "", shown);
    }
    if (o < why_len)
        snprintf(why + o, why_len - o, "; router.response_topics)");
    return false;
}
