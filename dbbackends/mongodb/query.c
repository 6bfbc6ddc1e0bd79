/*
 * query.c - a query tree (sdk/proto/query.proto) as a MongoDB filter.
 *
 * The filter runs in the server, so that the indexes serve the hub's queries (msg_id lists,
 * engine_uuid, completed, submitted ranges) and only candidates cross the wire. Where MongoDB's
 * semantics are query.proto's, a term becomes the same MongoDB condition and is exact: equality,
 * $in/$nin, order and $exists on the record's own text and date fields, null against absent
 * fields. Where they differ, the term becomes a condition that selects at least the records the
 * term does (a superset), or none at all, and the caller checks every candidate with the
 * reference matcher, cpar_query_match. The differences are in JSON values: MongoDB matches a
 * scalar against the elements of an array and walks into arrays on dotted paths, compares
 * sub-documents with their key order, and orders booleans; and in patterns, where PCRE over
 * UTF-8 characters is not POSIX over bytes.
 *
 * Record datetimes are stored as BSON datetimes (ms) plus the exact µs in "_<field>_us"; a date
 * term compares the BSON datetime first (so the indexes serve it) and the µs within the same
 * millisecond, which is exact.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/query.h>

#include "mongodb.h"

typedef struct qctx {
    char *err;
    size_t errlen;
} qctx_t;

static int q_fail(qctx_t *c, int rc, const char *fmt, ...) CPAR_PRINTF(3, 4);

static int q_fail(qctx_t *c, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

void mongodb_extra_name(char *out, const char *name, const char *suffix)
{
    snprintf(out, MONGODB_EXTRA_MAX, "_%s%s", name, suffix);
}

int mongodb_is_date_field(const char *name)
{
    int64_t bit = cpar_record_field_bit(name);

    return !strchr(name, '.') && bit > 0 && (bit & CPAR_REC_DATE_FIELDS);
}

/* ---- patterns ---------------------------------------------------------------------------- */

typedef struct rx {
    char *data;
    size_t len, cap;
    int failed;
} rx_t;

static void rx_put(rx_t *r, const char *s, size_t n)
{
    if (r->failed)
        return;
    if (r->len + n + 1 > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        char *nd;
        while (ncap < r->len + n + 1)
            ncap *= 2;
        nd = realloc(r->data, ncap);
        if (!nd) {
            r->failed = 1;
            return;
        }
        r->data = nd;
        r->cap = ncap;
    }
    memcpy(r->data + r->len, s, n);
    r->len += n;
    r->data[r->len] = '\0';
}

static void rx_str(rx_t *r, const char *s)
{
    rx_put(r, s, strlen(s));
}

/* One ASCII character as a literal, inside or outside a class. */
static void rx_literal(rx_t *r, char c)
{
    if (!isalnum((unsigned char)c))
        rx_put(r, "\\", 1);
    rx_put(r, &c, 1);
}

/* POSIX's "$": the very end (PCRE's and Python's "$" also match before a final newline). */
#define RX_END "(?!\\n)$"

static int rx_ascii(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p >= 0x80)
            return 0;
    return 1;
}

/*
 * Length of the bracket expression at p[0] == '[' (fnmatch's when `glob`, where '!' negates and a
 * backslash quotes), 0 when it is not closed; -1 when it holds a class, collating symbol or
 * equivalence class ([:alpha:], [.x.], [=x=]), which the translation leaves alone.
 */
static long rx_bracket_len(const char *p, int glob)
{
    size_t i = 1;

    if (p[i] == '^' || (glob && p[i] == '!'))
        i++;
    if (p[i] == ']')
        i++;
    for (; p[i] && p[i] != ']'; i++) {
        if (p[i] == '[' && (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '='))
            return -1;
        if (glob && p[i] == '\\' && p[i + 1])
            i++;
    }
    return p[i] == ']' ? (long)i + 1 : 0;
}

/*
 * The bracket expression p[0..len-1] as a PCRE class with the same ASCII members. A negated
 * class matches one byte in POSIX and one character in PCRE: unless a '*' or '+' follows, it is
 * made optional, which selects a superset.
 */
static void rx_bracket(rx_t *r, const char *p, size_t len, int glob, int repeated)
{
    size_t i = 1;
    int negated = p[i] == '^' || (glob && p[i] == '!');

    if (negated && !repeated)
        rx_str(r, "(?:");
    rx_put(r, "[", 1);
    if (negated) {
        rx_put(r, "^", 1);
        i++;
    }
    if (p[i] == ']') {
        rx_put(r, "\\]", 2);
        i++;
    }
    for (; i < len - 1; i++) {
        char c = p[i];
        if (glob && c == '\\' && i + 1 < len - 1)
            rx_literal(r, p[++i]);
        else if (c == '\\' || c == '[' || c == '^' || c == ']')
            rx_literal(r, c);
        else
            rx_put(r, &c, 1); /* '-' makes ranges, or is itself at either end: as in POSIX */
    }
    rx_put(r, "]", 1);
    if (negated && !repeated)
        rx_str(r, ")?");
}

static int rx_is_quant(char c)
{
    return c == '*' || c == '+' || c == '?' || c == '{';
}

/* An ERE interval "{m}", "{m,}" or "{m,n}" at p: its length, or 0. */
static size_t rx_interval(const char *p)
{
    size_t i = 1;

    if (!isdigit((unsigned char)p[i]))
        return 0;
    while (isdigit((unsigned char)p[i]))
        i++;
    if (p[i] == ',')
        for (i++; isdigit((unsigned char)p[i]);)
            i++;
    return p[i] == '}' ? i + 1 : 0;
}

char *mongodb_regex_from_ere(const char *ere)
{
    rx_t r = {0};
    int depth = 0, atom = 0; /* an atom precedes: a quantifier may follow */

    if (!rx_ascii(ere))
        return NULL;
    rx_put(&r, "", 0);
    for (size_t i = 0; ere[i] && !r.failed;) {
        char c = ere[i];
        int repeated = ere[i + 1] == '*' || ere[i + 1] == '+';
        long blen;
        size_t ilen;
        if (c == '\\') {
            if (!ere[i + 1] || isalnum((unsigned char)ere[i + 1]) || strchr("<>`'", ere[i + 1]))
                goto decline; /* GNU's word operators, or undefined */
            rx_literal(&r, ere[i + 1]);
            i += 2;
            atom = 1;
        } else if (c == '[') {
            if ((blen = rx_bracket_len(ere + i, 0)) <= 0)
                goto decline;
            repeated = ere[i + blen] == '*' || ere[i + blen] == '+';
            rx_bracket(&r, ere + i, (size_t)blen, 0, repeated);
            i += (size_t)blen;
            atom = 1;
        } else if (c == '.') {
            rx_str(&r, repeated ? "." : "(?:.?)"); /* a byte in POSIX, a character in PCRE */
            i++;
            atom = 1;
        } else if (c == '$') {
            rx_str(&r, RX_END);
            i++;
            atom = 0;
        } else if (rx_is_quant(c)) {
            if (!atom)
                goto decline; /* "a**", "(*": errors in PCRE */
            if (c == '{') {
                if (!(ilen = rx_interval(ere + i)))
                    goto decline;
                rx_put(&r, ere + i, ilen);
                i += ilen;
            } else {
                rx_put(&r, &c, 1);
                i++;
            }
            atom = 0;
        } else if (c == '(' || c == '|' || c == ')' || c == '^') {
            depth += c == '(' ? 1 : c == ')' ? -1 : 0;
            if (depth < 0)
                goto decline;
            rx_put(&r, &c, 1);
            i++;
            atom = c == ')';
        } else {
            rx_literal(&r, c);
            i++;
            atom = 1;
        }
    }
    if (depth == 0 && !r.failed)
        return r.data;
decline:
    free(r.data);
    return NULL;
}

char *mongodb_regex_from_glob(const char *glob)
{
    rx_t r = {0};

    if (!rx_ascii(glob))
        return NULL;
    rx_put(&r, "^", 1);
    for (size_t i = 0; glob[i];) {
        char c = glob[i];
        long blen;
        if (c == '*') {
            rx_put(&r, ".*", 2);
            i++;
        } else if (c == '?') {
            rx_str(&r, "(?:.?)"); /* a byte in fnmatch, a character in PCRE */
            i++;
        } else if (c == '[' && (blen = rx_bracket_len(glob + i, 1)) != 0) {
            if (blen < 0)
                goto decline;
            rx_bracket(&r, glob + i, (size_t)blen, 1, 0);
            i += (size_t)blen;
        } else if (c == '\\' && glob[i + 1]) {
            rx_literal(&r, glob[i + 1]);
            i += 2;
        } else {
            rx_literal(&r, c);
            i++;
        }
    }
    rx_str(&r, RX_END);
    if (!r.failed)
        return r.data;
decline:
    free(r.data);
    return NULL;
}

/* ---- values ------------------------------------------------------------------------------ */

static int q_value(qctx_t *c, bson_t *b, const char *key, const cpar_query_value_t *v)
{
    int ok = 1;

    switch (v->kind_case) {
    case CPAR__QUERY_VALUE__KIND_NULL:
        ok = BSON_APPEND_NULL(b, key);
        break;
    case CPAR__QUERY_VALUE__KIND_BOOLEAN:
        ok = BSON_APPEND_BOOL(b, key, v->boolean != 0);
        break;
    case CPAR__QUERY_VALUE__KIND_INTEGER:
        ok = BSON_APPEND_INT64(b, key, v->integer);
        break;
    case CPAR__QUERY_VALUE__KIND_REAL:
        ok = BSON_APPEND_DOUBLE(b, key, v->real);
        break;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        ok = bson_append_utf8(b, key, -1, v->text, (int)strlen(v->text));
        break;
    case CPAR__QUERY_VALUE__KIND_DATE:
        ok = BSON_APPEND_DATE_TIME(b, key, mongodb_us_to_ms(v->date));
        break;
    case CPAR__QUERY_VALUE__KIND_JSON:
        if (mongodb_json_append(b, key, v->json) != 0)
            ok = BSON_APPEND_MINKEY(b, key); /* not storable: equals nothing stored */
        break;
    default:
        return q_fail(c, CPAR_EINVAL, "query value without a kind");
    }
    return ok ? 0 : q_fail(c, CPAR_E2BIG, "query too large");
}

/*
 * An argument MongoDB compares as query.proto does, or with more matches: a scalar. (JSON
 * arguments are left to the matcher: MongoDB compares objects with their key order, and the
 * stand-in used in tests gets lists inside $in and $all wrong.)
 */
static int q_plain(const cpar_query_value_t *v)
{
    return v->kind_case != CPAR__QUERY_VALUE__KIND_NULL &&
           v->kind_case != CPAR__QUERY_VALUE__KIND_JSON;
}

static int q_all_args(const cpar_query_term_t *t, int (*pred)(const cpar_query_value_t *))
{
    for (size_t i = 0; i < t->n_args; i++)
        if (!pred(t->args[i]))
            return 0;
    return 1;
}

static int q_is_null(const cpar_query_value_t *v)
{
    return v->kind_case == CPAR__QUERY_VALUE__KIND_NULL;
}

/* ---- conditions -------------------------------------------------------------------------- */

/* {f: D, _f_us: us}: the date field equals the instant exactly. */
static void q_date_eq(bson_t *b, const char *f, int64_t us)
{
    char extra[MONGODB_EXTRA_MAX];

    mongodb_extra_name(extra, f, MONGODB_US_SUFFIX);
    BSON_APPEND_DATE_TIME(b, f, mongodb_us_to_ms(us));
    BSON_APPEND_INT64(b, extra, us);
}

/* {$or: [{f: {$lt: D}}, {f: D, _f_us: {$lte: us}}]} and the like. */
static void q_date_cmp(bson_t *t, const char *f, int64_t us, const char *strict, const char *op)
{
    char extra[MONGODB_EXTRA_MAX];
    bson_t arr, branch, cond;

    mongodb_extra_name(extra, f, MONGODB_US_SUFFIX);
    BSON_APPEND_ARRAY_BEGIN(t, "$or", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &branch);
    BSON_APPEND_DOCUMENT_BEGIN(&branch, f, &cond);
    BSON_APPEND_DATE_TIME(&cond, strict, mongodb_us_to_ms(us));
    bson_append_document_end(&branch, &cond);
    bson_append_document_end(&arr, &branch);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &branch);
    BSON_APPEND_DATE_TIME(&branch, f, mongodb_us_to_ms(us));
    BSON_APPEND_DOCUMENT_BEGIN(&branch, extra, &cond);
    BSON_APPEND_INT64(&cond, op, us);
    bson_append_document_end(&branch, &cond);
    bson_append_document_end(&arr, &branch);
    bson_append_array_end(t, &arr);
}

/* A condition no document meets (every document has an _id). */
static void q_nothing(bson_t *t)
{
    bson_t cond;

    BSON_APPEND_DOCUMENT_BEGIN(t, "_id", &cond);
    BSON_APPEND_BOOL(&cond, "$exists", false);
    bson_append_document_end(t, &cond);
}

/* {logic: [{key: eq(arg)}, ...]}: per-argument equality, with exact dates. */
static int q_branches(qctx_t *c, bson_t *t, const char *logic, const cpar_query_term_t *term)
{
    bson_t arr;
    int rc = 0;

    BSON_APPEND_ARRAY_BEGIN(t, logic, &arr);
    for (size_t i = 0; i < term->n_args && !rc; i++) {
        const cpar_query_value_t *v = term->args[i];
        char idx[16];
        const char *key;
        bson_t branch, cond;
        bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &branch);
        if (v->kind_case == CPAR__QUERY_VALUE__KIND_DATE) {
            q_date_eq(&branch, term->key, v->date);
        } else {
            BSON_APPEND_DOCUMENT_BEGIN(&branch, term->key, &cond);
            rc = q_value(c, &cond, "$eq", v);
            bson_append_document_end(&branch, &cond);
        }
        bson_append_document_end(&arr, &branch);
    }
    bson_append_array_end(t, &arr);
    return rc;
}

static const char *q_op_name(Cpar__QueryTerm__Op op)
{
    switch (op) {
    case CPAR__QUERY_TERM__OP__EQ:
        return "$eq";
    case CPAR__QUERY_TERM__OP__NE:
        return "$ne";
    case CPAR__QUERY_TERM__OP__LT:
        return "$lt";
    case CPAR__QUERY_TERM__OP__GT:
        return "$gt";
    case CPAR__QUERY_TERM__OP__LTE:
        return "$lte";
    case CPAR__QUERY_TERM__OP__GTE:
        return "$gte";
    case CPAR__QUERY_TERM__OP__IN:
        return "$in";
    case CPAR__QUERY_TERM__OP__NIN:
        return "$nin";
    case CPAR__QUERY_TERM__OP__ALL:
        return "$all";
    case CPAR__QUERY_TERM__OP__MOD:
        return "$mod";
    case CPAR__QUERY_TERM__OP__EXISTS:
        return "$exists";
    case CPAR__QUERY_TERM__OP__REGEX:
        return "$regex";
    case CPAR__QUERY_TERM__OP__GLOB:
        return "$glob";
    default:
        return NULL;
    }
}

static int q_is_order(Cpar__QueryTerm__Op op)
{
    return op == CPAR__QUERY_TERM__OP__LT || op == CPAR__QUERY_TERM__OP__GT ||
           op == CPAR__QUERY_TERM__OP__LTE || op == CPAR__QUERY_TERM__OP__GTE;
}

/* {key: {op: arg}} or {key: {op: [args...]}}, MongoDB's own operator. */
static int q_native(qctx_t *c, bson_t *t, const cpar_query_term_t *term)
{
    const char *op = q_op_name(term->op);
    bson_t cond, arr;
    int rc = 0;

    BSON_APPEND_DOCUMENT_BEGIN(t, term->key, &cond);
    switch (term->op) {
    case CPAR__QUERY_TERM__OP__IN:
    case CPAR__QUERY_TERM__OP__NIN:
    case CPAR__QUERY_TERM__OP__ALL:
        BSON_APPEND_ARRAY_BEGIN(&cond, op, &arr);
        for (size_t i = 0; i < term->n_args && !rc; i++) {
            char idx[16];
            const char *key;
            bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
            rc = q_value(c, &arr, key, term->args[i]);
        }
        bson_append_array_end(&cond, &arr);
        break;
    case CPAR__QUERY_TERM__OP__MOD:
        BSON_APPEND_ARRAY_BEGIN(&cond, op, &arr);
        BSON_APPEND_INT64(&arr, "0", term->args[0]->integer);
        BSON_APPEND_INT64(&arr, "1", term->args[1]->integer);
        bson_append_array_end(&cond, &arr);
        break;
    case CPAR__QUERY_TERM__OP__EXISTS: /* present means "not None" */
        if (term->args[0]->boolean) {
            BSON_APPEND_BOOL(&cond, "$exists", true);
            BSON_APPEND_NULL(&cond, "$ne");
        } else {
            BSON_APPEND_NULL(&cond, "$eq");
        }
        break;
    case CPAR__QUERY_TERM__OP__REGEX:
    case CPAR__QUERY_TERM__OP__GLOB: {
        const char *pattern = term->args[0]->text;
        char *rx = term->op == CPAR__QUERY_TERM__OP__GLOB ? mongodb_regex_from_glob(pattern)
                                                          : mongodb_regex_from_ere(pattern);
        if (rx) {
            BSON_APPEND_UTF8(&cond, "$regex", rx);
            BSON_APPEND_UTF8(&cond, "$options", "s");
            free(rx);
        } else { /* left to the matcher: text is all that can match */
            BSON_APPEND_UTF8(&cond, "$type", "string");
        }
        break;
    }
    default:
        rc = q_value(c, &cond, op, term->args[0]);
    }
    bson_append_document_end(t, &cond);
    return rc;
}

/*
 * The condition for one term into t (left empty when there is none to give), and whether it is
 * exact (0: it selects a superset of the records the term does).
 */
static int q_term(qctx_t *c, bson_t *t, const cpar_query_term_t *term, int *exact)
{
    int64_t bit = cpar_record_field_bit(term->key);
    int dotted = strchr(term->key, '.') != NULL;
    size_t flen = strcspn(term->key, ".");
    char field[MONGODB_EXTRA_MAX];
    bson_t branches, sub, cond;
    int rc;

    *exact = 1;
    if (bit < 0 || !q_op_name(term->op))
        return q_fail(c, CPAR_EINVAL, "bad query term on '%s'", term->key);
    if (flen >= sizeof field)
        return q_fail(c, CPAR_EINVAL, "bad query key '%s'", term->key);
    memcpy(field, term->key, flen);
    field[flen] = '\0';

    /* What never matches whatever the field holds: order with None, booleans or JSON values,
       an empty $all, an empty $in. */
    if (q_is_order(term->op) && term->n_args &&
        (term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_NULL ||
         term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_BOOLEAN ||
         term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_JSON ||
         (term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_DATE &&
          !(bit & CPAR_REC_DATE_FIELDS)))) {
        q_nothing(t);
        return 0;
    }
    if ((term->op == CPAR__QUERY_TERM__OP__ALL || term->op == CPAR__QUERY_TERM__OP__IN) &&
        !term->n_args) {
        q_nothing(t);
        return 0;
    }
    if (term->op == CPAR__QUERY_TERM__OP__NIN && !term->n_args)
        return 0; /* everything */

    /* The record's own text, date and buffer fields: MongoDB agrees, but for patterns. */
    if (!(bit & CPAR_REC_JSON_FIELDS)) {
        int dates = 0;
        for (size_t i = 0; i < term->n_args; i++)
            dates |= term->args[i]->kind_case == CPAR__QUERY_VALUE__KIND_DATE;
        if (dates && (bit & CPAR_REC_DATE_FIELDS)) {
            int64_t us = term->args[0]->date;
            switch (term->op) {
            case CPAR__QUERY_TERM__OP__EQ:
                if (term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_DATE) {
                    q_date_eq(t, term->key, us);
                    return 0;
                }
                break;
            case CPAR__QUERY_TERM__OP__NE:
                if (term->args[0]->kind_case == CPAR__QUERY_VALUE__KIND_DATE) {
                    BSON_APPEND_ARRAY_BEGIN(t, "$nor", &branches);
                    BSON_APPEND_DOCUMENT_BEGIN(&branches, "0", &sub);
                    q_date_eq(&sub, term->key, us);
                    bson_append_document_end(&branches, &sub);
                    bson_append_array_end(t, &branches);
                    return 0;
                }
                break;
            case CPAR__QUERY_TERM__OP__LT:
                q_date_cmp(t, term->key, us, "$lt", "$lt");
                return 0;
            case CPAR__QUERY_TERM__OP__LTE:
                q_date_cmp(t, term->key, us, "$lt", "$lte");
                return 0;
            case CPAR__QUERY_TERM__OP__GT:
                q_date_cmp(t, term->key, us, "$gt", "$gt");
                return 0;
            case CPAR__QUERY_TERM__OP__GTE:
                q_date_cmp(t, term->key, us, "$gt", "$gte");
                return 0;
            case CPAR__QUERY_TERM__OP__IN:
                return q_branches(c, t, "$or", term);
            case CPAR__QUERY_TERM__OP__NIN:
                return q_branches(c, t, "$nor", term);
            case CPAR__QUERY_TERM__OP__ALL: /* a datetime equals every one */
                return q_branches(c, t, "$and", term);
            default:
                break;
            }
        }
        if (term->op == CPAR__QUERY_TERM__OP__ALL) /* a scalar: it equals every one */
            return q_branches(c, t, "$and", term);
        if (term->op == CPAR__QUERY_TERM__OP__REGEX || term->op == CPAR__QUERY_TERM__OP__GLOB)
            *exact = 0;
        return q_native(c, t, term);
    }

    /* A whole JSON field: exact only against None. */
    if (!dotted) {
        if (term->op == CPAR__QUERY_TERM__OP__EXISTS ||
            ((term->op == CPAR__QUERY_TERM__OP__EQ || term->op == CPAR__QUERY_TERM__OP__NE ||
              term->op == CPAR__QUERY_TERM__OP__IN || term->op == CPAR__QUERY_TERM__OP__NIN) &&
             q_all_args(term, q_is_null)))
            return q_native(c, t, term);
        *exact = 0;
        return 0;
    }

    /* A path into a JSON field: a superset, or nothing for what only None satisfies. Records
       whose JSON could not be stored as a document (it is a string) are always candidates. */
    *exact = 0;
    switch (term->op) {
    case CPAR__QUERY_TERM__OP__EQ:
    case CPAR__QUERY_TERM__OP__LT:
    case CPAR__QUERY_TERM__OP__GT:
    case CPAR__QUERY_TERM__OP__LTE:
    case CPAR__QUERY_TERM__OP__GTE:
    case CPAR__QUERY_TERM__OP__IN:
    case CPAR__QUERY_TERM__OP__ALL:
        if (!q_all_args(term, q_plain))
            return 0;
        break;
    case CPAR__QUERY_TERM__OP__EXISTS:
        if (!term->args[0]->boolean)
            return 0;
        break;
    case CPAR__QUERY_TERM__OP__MOD:
    case CPAR__QUERY_TERM__OP__REGEX:
    case CPAR__QUERY_TERM__OP__GLOB:
        break;
    default: /* NE, NIN */
        return 0;
    }
    BSON_APPEND_ARRAY_BEGIN(t, "$or", &branches);
    BSON_APPEND_DOCUMENT_BEGIN(&branches, "0", &sub);
    rc = q_native(c, &sub, term);
    bson_append_document_end(&branches, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&branches, "1", &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&sub, field, &cond);
    BSON_APPEND_UTF8(&cond, "$type", "string");
    bson_append_document_end(&sub, &cond);
    bson_append_document_end(&branches, &sub);
    bson_append_array_end(t, &branches);
    return rc;
}

int mongodb_query_filter(const cpar_query_t *q, bson_t *filter, int *exact, uint32_t *tested,
                         char *err, size_t errlen)
{
    qctx_t c = {err, errlen};
    bson_t terms;
    uint32_t n = 0;
    int rc = 0;

    *exact = 1;
    *tested = 0;
    if (err && errlen)
        err[0] = '\0';
    if (!q || !q->n_terms)
        return 0;
    bson_init(&terms);
    for (size_t i = 0; i < q->n_terms && !rc; i++) {
        const cpar_query_term_t *term = q->terms[i];
        int64_t bit;
        int term_exact;
        bson_t t;
        if (!term || !term->key || (term->n_args && !term->args)) {
            rc = q_fail(&c, CPAR_EINVAL, "malformed query term");
            break;
        }
        bit = cpar_record_field_bit(term->key);
        if (bit > 0)
            *tested |= (uint32_t)bit;
        bson_init(&t);
        rc = q_term(&c, &t, term, &term_exact);
        *exact &= term_exact;
        if (!rc && !bson_empty(&t)) {
            char idx[16];
            const char *key;
            size_t klen = bson_uint32_to_string(n++, &key, idx, sizeof idx);
            bson_append_document(&terms, key, (int)klen, &t);
        }
        bson_destroy(&t);
    }
    if (!rc && n)
        BSON_APPEND_ARRAY(filter, "$and", &terms);
    bson_destroy(&terms);
    return rc;
}
