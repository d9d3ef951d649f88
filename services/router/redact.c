/* Redaction of personal data; see redact.h.
 *
 * Each rule is one compiled regex run over the whole text, leftmost match
 * first. POSIX regexes have no word boundaries or look-around, so a built-in
 * rule pairs a loose regex with a check in C (the span stands alone, IPv4
 * octets <= 255, inet_pton for IPv6, a phone number's digit count), and a
 * cheap prefilter skips the regex when the text cannot hold a match (no '@',
 * no ':'...), which is the common case for plant queries. Rules run one after
 * the other on the previous rule's output, e-mail first (an address holds
 * digits and dots the others would bite into), the operator's patterns
 * before the generic IP and phone rules so their labels win. */
#include "redact.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/buf.h"

#define MAX_RULES  (EC_MAX_REDACT_PATTERNS + 4)
#define MAX_LABEL  40
#define REDACT_MAX (16u * 1024u * 1024u) /* far above any prompt the wire allows */
#define IPV6_MAX   64

typedef bool (*prefilter_fn)(const char *text);
/* Accepts the span text[so, *eo) (and may shorten it); false rejects it. */
typedef bool (*accept_fn)(const char *text, size_t so, size_t *eo);

typedef struct rule {
    regex_t re;
    char label[MAX_LABEL]; /* "[EMAIL]" */
    prefilter_fn may_match;
    accept_fn accept;
} rule;

typedef struct rule_set {
    rule rules[MAX_RULES];
    size_t n;
} rule_set;

struct ec_redactor {
    pthread_rwlock_t lock;
    rule_set *set; /* NULL: redaction off */
};

/* ---- the built-ins ---- */

static const char re_email[] = "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}";
static const char re_ipv4[] = "[0-9]{1,3}(\\.[0-9]{1,3}){3}";
static const char re_ipv6[] = "[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(\\.[0-9]{1,3}){0,3}";
/* +country code and groups, or the 3-3-4 form (optionally "(555) 123-4567"). */
static const char re_phone[] = "\\+[1-9][0-9]{0,3}([-. ]?\\(?[0-9]{1,5}\\)?){1,6}"
                               "|\\(?[0-9]{3}\\)?[-. ]?[0-9]{3}[-. ][0-9]{4}";

static bool is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static bool has_char(const char *t, char c)
{
    return strchr(t, c) != NULL;
}

static bool pre_email(const char *t)
{
    return has_char(t, '@');
}

static bool pre_ipv4(const char *t)
{
    return has_char(t, '.');
}

/* A valid IPv6 address has "::" or exactly seven colons. */
static bool pre_ipv6(const char *t)
{
    if (strstr(t, "::"))
        return true;
    size_t colons = 0;
    for (; *t; t++)
        colons += *t == ':';
    return colons >= 7;
}

static bool pre_phone(const char *t)
{
    size_t digits = 0;
    for (; *t && digits < 7; t++)
        digits += isdigit((unsigned char)*t) != 0;
    return digits >= 7;
}

static bool accept_email(const char *t, size_t so, size_t *eo)
{
    (void)so;
    return !is_word(t[*eo]);
}

static bool accept_ipv4(const char *t, size_t so, size_t *eo)
{
    if (so > 0 && (is_word(t[so - 1]) || t[so - 1] == '.'))
        return false;
    if (is_word(t[*eo]) || (t[*eo] == '.' && isdigit((unsigned char)t[*eo + 1])))
        return false;
    const char *p = t + so;
    for (int i = 0; i < 4; i++) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (v > 255)
            return false;
        p = end + 1; /* past the dot */
    }
    return true;
}

static bool accept_ipv6(const char *t, size_t so, size_t *eo)
{
    if (so > 0 && (is_word(t[so - 1]) || t[so - 1] == ':' || t[so - 1] == '.'))
        return false;
    size_t end = *eo;
    /* "fe80::1:" at the end of a clause: the loose regex took the colon too. */
    while (end > so + 2 && t[end - 1] == ':' && t[end - 2] != ':')
        end--;
    if (is_word(t[end]) || end - so >= IPV6_MAX)
        return false;
    char buf[IPV6_MAX];
    memcpy(buf, t + so, end - so);
    buf[end - so] = '\0';
    unsigned char addr[16];
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return false;
    *eo = end;
    return true;
}

static bool accept_phone(const char *t, size_t so, size_t *eo)
{
    if (so > 0 && (is_word(t[so - 1]) || t[so - 1] == '+' || t[so - 1] == '.' || t[so - 1] == '-'))
        return false;
    size_t end = *eo;
    while (end > so && !isdigit((unsigned char)t[end - 1]))
        end--; /* a trailing separator or "(" */
    if (isalnum((unsigned char)t[end]) || (t[end] == '.' && isdigit((unsigned char)t[end + 1])))
        return false;
    size_t digits = 0;
    for (size_t i = so; i < end; i++)
        digits += isdigit((unsigned char)t[i]) != 0;
    /* E.164 allows at most 15 digits; fewer than 8 with a + is not a number to dial. */
    if (t[so] == '+' && (digits < 8 || digits > 15))
        return false;
    *eo = end;
    return true;
}

/* ---- building a set ---- */

static void set_free(rule_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        regfree(&s->rules[i].re);
    free(s);
}

static ec_err add_rule(rule_set *s, const char *re, const char *label, prefilter_fn pre,
                       accept_fn acc, ec_error *err)
{
    rule *r = &s->rules[s->n];
    int rc = regcomp(&r->re, re, REG_EXTENDED);
    if (rc != 0) {
        char msg[120];
        regerror(rc, &r->re, msg, sizeof(msg));
        return ec_error_set(err, EC_ERR_CONFIG, "privacy: pattern \"%.60s\": %s", re, msg);
    }
    snprintf(r->label, sizeof(r->label), "[%s]", label);
    r->may_match = pre;
    r->accept = acc;
    s->n++;
    return EC_OK;
}

static ec_err build(const ec_config *cfg, rule_set **out, ec_error *err)
{
    *out = NULL;
    if (!cfg->redact)
        return EC_OK;
    rule_set *s = calloc(1, sizeof(*s));
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "privacy: out of memory");
    ec_err rc = EC_OK;
    if (cfg->redact_email)
        rc = add_rule(s, re_email, "EMAIL", pre_email, accept_email, err);
    for (size_t i = 0; !rc && i < cfg->n_redact_patterns && i < EC_MAX_REDACT_PATTERNS; i++) {
        const ec_redact_pattern_cfg *p = &cfg->redact_patterns[i];
        rc = add_rule(s, p->regex ? p->regex : "", p->label ? p->label : "SERIAL", NULL, NULL, err);
    }
    if (!rc && cfg->redact_ip)
        rc = add_rule(s, re_ipv6, "IP", pre_ipv6, accept_ipv6, err);
    if (!rc && cfg->redact_ip)
        rc = add_rule(s, re_ipv4, "IP", pre_ipv4, accept_ipv4, err);
    if (!rc && cfg->redact_phone)
        rc = add_rule(s, re_phone, "PHONE", pre_phone, accept_phone, err);
    if (rc || s->n == 0) {
        set_free(s);
        return rc;
    }
    *out = s;
    return EC_OK;
}

ec_err ec_redactor_create(ec_redactor **out, const ec_config *cfg, ec_error *err)
{
    ec_redactor *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "privacy: out of memory");
    pthread_rwlock_init(&r->lock, NULL);
    ec_err rc = build(cfg, &r->set, err);
    if (rc) {
        ec_redactor_destroy(r);
        return rc;
    }
    *out = r;
    return EC_OK;
}

ec_err ec_redactor_configure(ec_redactor *r, const ec_config *cfg, ec_error *err)
{
    rule_set *fresh = NULL;
    ec_err rc = build(cfg, &fresh, err);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&r->lock);
    rule_set *old = r->set;
    r->set = fresh;
    pthread_rwlock_unlock(&r->lock);
    set_free(old);
    return EC_OK;
}

void ec_redactor_destroy(ec_redactor *r)
{
    if (!r)
        return;
    set_free(r->set);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

bool ec_redactor_active(ec_redactor *r)
{
    if (!r)
        return false;
    pthread_rwlock_rdlock(&r->lock);
    bool on = r->set != NULL;
    pthread_rwlock_unlock(&r->lock);
    return on;
}

/* ---- the pass ---- */

/* Runs one rule over in; returns the spans masked (out filled only then), -1 on ENOMEM. */
static int apply_rule(const rule *ru, const char *in, ec_buf *out)
{
    if (ru->may_match && !ru->may_match(in))
        return 0;
    size_t pos = 0, copied = 0;
    int found = 0;
    regmatch_t m;
    while (in[pos] && regexec(&ru->re, in + pos, 1, &m, pos ? REG_NOTBOL : 0) == 0) {
        size_t so = pos + (size_t)m.rm_so, eo = pos + (size_t)m.rm_eo;
        if (eo == so || (ru->accept && !ru->accept(in, so, &eo))) {
            if (!in[so])
                break;
            pos = so + 1; /* try again one byte further on */
            continue;
        }
        if (ec_buf_append(out, in + copied, so - copied) ||
            ec_buf_append(out, ru->label, strlen(ru->label)))
            return -1;
        found++;
        pos = copied = eo;
    }
    if (found && ec_buf_append(out, in + copied, strlen(in + copied) + 1))
        return -1; /* with the NUL, so an empty tail still leaves a string */
    return found;
}

int ec_redact(ec_redactor *r, const char *text, char **out)
{
    *out = NULL;
    if (!r || !text)
        return 0;
    int total = 0;
    char *cur = NULL; /* the text so far, when a rule changed it */
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; r->set && i < r->set->n; i++) {
        ec_buf b;
        ec_buf_init(&b, REDACT_MAX);
        int n = apply_rule(&r->set->rules[i], cur ? cur : text, &b);
        if (n < 0) {
            ec_buf_free(&b);
            free(cur);
            cur = NULL;
            total = -1;
            break;
        }
        if (n > 0) {
            free(cur);
            cur = ec_buf_take(&b, NULL);
            total += n;
        }
        ec_buf_free(&b);
    }
    pthread_rwlock_unlock(&r->lock);
    *out = cur;
    return total;
}
