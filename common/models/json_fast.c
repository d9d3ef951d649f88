/* The strict tokenizer of json_fast.h. Every read checks the end of the
 * text first; the text need not be NUL-terminated. */
#include "json_fast.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH  64
#define MAX_NUMBER 63 /* cJSON reads a number through a 64-byte buffer */

typedef struct scan {
    ec_jdoc *d;
    const char *s;
    size_t n, at;
} scan;

static void skip_ws(scan *c)
{
    while (c->at < c->n && (c->s[c->at] == ' ' || c->s[c->at] == '\n' || c->s[c->at] == '\r' ||
                            c->s[c->at] == '\t'))
        c->at++;
}

static int new_tok(scan *c, ec_jtype type, size_t start)
{
    if (c->d->used >= c->d->cap)
        return -1;
    ec_jtok *t = &c->d->tok[c->d->used];
    t->type = (uint8_t)type;
    t->esc = false;
    t->start = (uint32_t)start;
    t->len = 0;
    t->child = t->next = -1;
    return (int)c->d->used++;
}

/* At the opening quote. No \u (cJSON's surrogate rules are its own) and no
 * raw control characters (JSON forbids them, cJSON would take them). */
static int scan_string(scan *c)
{
    size_t start = ++c->at;
    bool esc = false;
    for (;;) {
        if (c->at >= c->n)
            return -1;
        unsigned char ch = (unsigned char)c->s[c->at];
        if (ch == '"')
            break;
        if (ch < 0x20)
            return -1;
        if (ch == '\\') {
            if (c->at + 1 >= c->n || !strchr("\"\\/bfnrt", c->s[c->at + 1]) ||
                c->s[c->at + 1] == '\0')
                return -1;
            esc = true;
            c->at += 2;
            continue;
        }
        c->at++;
    }
    int i = new_tok(c, EC_JT_STR, start);
    if (i < 0)
        return -1;
    c->d->tok[i].len = (uint32_t)(c->at - start);
    c->d->tok[i].esc = esc;
    c->at++; /* the closing quote */
    return i;
}

static bool digit_at(const scan *c, size_t i)
{
    return i < c->n && c->s[i] >= '0' && c->s[i] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(scan *c)
{
    size_t i = c->at, start = c->at;
    if (i < c->n && c->s[i] == '-')
        i++;
    if (!digit_at(c, i))
        return -1;
    if (c->s[i] == '0')
        i++;
    else
        while (digit_at(c, i))
            i++;
    if (i < c->n && c->s[i] == '.') {
        if (!digit_at(c, ++i))
            return -1;
        while (digit_at(c, i))
            i++;
    }
    if (i < c->n && (c->s[i] == 'e' || c->s[i] == 'E')) {
        i++;
        if (i < c->n && (c->s[i] == '+' || c->s[i] == '-'))
            i++;
        if (!digit_at(c, i))
            return -1;
        while (digit_at(c, i))
            i++;
    }
    if (i - start > MAX_NUMBER)
        return -1;
    int t = new_tok(c, EC_JT_NUM, start);
    if (t < 0)
        return -1;
    c->d->tok[t].len = (uint32_t)(i - start);
    c->at = i;
    return t;
}

static int scan_word(scan *c, const char *w, ec_jtype type)
{
    size_t n = strlen(w);
    if (c->n - c->at < n || memcmp(c->s + c->at, w, n) != 0)
        return -1;
    int t = new_tok(c, type, c->at);
    c->at += n;
    return t;
}

static int scan_value(scan *c, int depth);

/* Links child i after *last (or as parent's first child). */
static void link_child(scan *c, int parent, int *last, int i)
{
    if (*last < 0)
        c->d->tok[parent].child = i;
    else
        c->d->tok[*last].next = i;
    *last = i;
}

static int scan_object(scan *c, int depth)
{
    int o = new_tok(c, EC_JT_OBJ, c->at);
    if (o < 0)
        return -1;
    c->at++;
    skip_ws(c);
    if (c->at < c->n && c->s[c->at] == '}') {
        c->at++;
        return o;
    }
    for (int last = -1;;) {
        skip_ws(c);
        if (c->at >= c->n || c->s[c->at] != '"')
            return -1;
        int k = scan_string(c);
        if (k < 0 || c->d->tok[k].esc) /* keys compare raw: no escapes */
            return -1;
        link_child(c, o, &last, k);
        skip_ws(c);
        if (c->at >= c->n || c->s[c->at] != ':')
            return -1;
        c->at++;
        if (scan_value(c, depth + 1) < 0)
            return -1;
        skip_ws(c);
        if (c->at >= c->n)
            return -1;
        if (c->s[c->at] == '}') {
            c->at++;
            return o;
        }
        if (c->s[c->at] != ',')
            return -1;
        c->at++;
    }
}

static int scan_array(scan *c, int depth)
{
    int a = new_tok(c, EC_JT_ARR, c->at);
    if (a < 0)
        return -1;
    c->at++;
    skip_ws(c);
    if (c->at < c->n && c->s[c->at] == ']') {
        c->at++;
        return a;
    }
    for (int last = -1;;) {
        int v = scan_value(c, depth + 1);
        if (v < 0)
            return -1;
        link_child(c, a, &last, v);
        skip_ws(c);
        if (c->at >= c->n)
            return -1;
        if (c->s[c->at] == ']') {
            c->at++;
            return a;
        }
        if (c->s[c->at] != ',')
            return -1;
        c->at++;
    }
}

static int scan_value(scan *c, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    skip_ws(c);
    if (c->at >= c->n)
        return -1;
    switch (c->s[c->at]) {
    case '{':
        return scan_object(c, depth);
    case '[':
        return scan_array(c, depth);
    case '"':
        return scan_string(c);
    case 't':
        return scan_word(c, "true", EC_JT_TRUE);
    case 'f':
        return scan_word(c, "false", EC_JT_FALSE);
    case 'n':
        return scan_word(c, "null", EC_JT_NULL);
    default:
        return scan_number(c);
    }
}

bool ec_jdoc_parse(ec_jdoc *d, const char *text, size_t n, ec_jtok *tok, size_t cap)
{
    d->text = text;
    d->tok = tok;
    d->cap = cap;
    d->used = 0;
    scan c = {d, text, n, 0};
    if (!text || n == 0 || n > UINT32_MAX || scan_value(&c, 0) != 0)
        return false;
    skip_ws(&c);
    return c.at == n;
}

bool ec_jdoc_is(const ec_jdoc *d, int i, ec_jtype t)
{
    return i >= 0 && d->tok[i].type == t;
}

int ec_jdoc_get(const ec_jdoc *d, int obj, const char *key)
{
    if (!ec_jdoc_is(d, obj, EC_JT_OBJ))
        return -1;
    size_t n = strlen(key);
    for (int k = d->tok[obj].child; k >= 0; k = d->tok[k].next) {
        const ec_jtok *t = &d->tok[k];
        if (t->len == n && memcmp(d->text + t->start, key, n) == 0)
            return k + 1;
    }
    return -1;
}

static char unescape(char c)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return c; /* " \ / */
    }
}

char *ec_jdoc_strdup(const ec_jdoc *d, int i, size_t *len)
{
    const ec_jtok *t = &d->tok[i];
    const char *s = d->text + t->start;
    char *out = malloc((size_t)t->len + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    if (!t->esc) {
        memcpy(out, s, t->len);
        k = t->len;
    } else {
        for (size_t j = 0; j < t->len; j++)
            out[k++] = s[j] == '\\' ? unescape(s[++j]) : s[j];
    }
    out[k] = '\0';
    *len = k;
    return out;
}

/* A JSON number with at most 15 significant digits and a decimal exponent
 * within +-22 (a logprob such as -0.0312): the digits and the power of ten
 * are then both exact doubles, so one multiplication or division rounds
 * once, exactly as strtod does (Clinger's fast path), in about a tenth of
 * strtod's instructions. false for anything else. The token is already a
 * valid JSON number (scan_number). */
static bool num_fast(const char *s, size_t n, double *out)
{
#if FLT_EVAL_METHOD != 0
    return false; /* excess precision (x87 without SSE) would round twice */
#endif
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = s[0] == '-';
    i += neg;
    uint64_t m = 0;
    int digits = 0, scale = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (m || s[i] != '0')
            digits++;
        m = m * 10 + (uint64_t)(s[i] - '0');
        if (digits > 15)
            return false;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (m || s[i] != '0')
                digits++;
            m = m * 10 + (uint64_t)(s[i] - '0');
            scale--;
            if (digits > 15)
                return false;
        }
    }
    if (i < n) { /* an exponent */
        i++;
        bool eneg = s[i] == '-';
        i += s[i] == '-' || s[i] == '+';
        int e = 0;
        for (; i < n; i++) {
            e = e * 10 + (s[i] - '0');
            if (e > 400)
                return false;
        }
        scale += eneg ? -e : e;
    }
    if (scale < -22 || scale > 22)
        return false;
    double v = (double)m;
    v = scale < 0 ? v / pow10[-scale] : v * pow10[scale];
    *out = neg ? -v : v;
    return true;
}

double ec_jdoc_num(const ec_jdoc *d, int i)
{
    const ec_jtok *t = &d->tok[i];
    double v;
    if (num_fast(d->text + t->start, t->len, &v))
        return v;
    char buf[MAX_NUMBER + 1];
    memcpy(buf, d->text + t->start, t->len);
    buf[t->len] = '\0';
    return strtod(buf, NULL);
}
