/*
 * query.c - a client's Mongo-style task-record query parsed into the tree that dbbackends get
 * (sdk/proto/query.proto), refused with ipyparallel's error texts when it is not valid.
 *
 * The tree is built from malloc'd parts exactly as protobuf-c's unpacker would lay it out, so
 * that one cpar__query__free_unpacked() releases it whoever made it, also half-built on error.
 */
#include "query.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <cparallel/query.h>

#include "util/clock.h"

typedef Cpar__QueryTerm__Op query_op_t;

typedef struct qparse {
    char *err;
    size_t errlen;
    regex_t iso; /* jupyter_client's ISO8601_PAT, compiled on first use */
    int iso_ready;
} qparse_t;

static const struct {
    const char *name;
    query_op_t op;
} query_ops[] = {
    {"$eq", CPAR__QUERY_TERM__OP__EQ},         {"$ne", CPAR__QUERY_TERM__OP__NE},
    {"$lt", CPAR__QUERY_TERM__OP__LT},         {"$gt", CPAR__QUERY_TERM__OP__GT},
    {"$lte", CPAR__QUERY_TERM__OP__LTE},       {"$gte", CPAR__QUERY_TERM__OP__GTE},
    {"$in", CPAR__QUERY_TERM__OP__IN},         {"$nin", CPAR__QUERY_TERM__OP__NIN},
    {"$all", CPAR__QUERY_TERM__OP__ALL},       {"$mod", CPAR__QUERY_TERM__OP__MOD},
    {"$exists", CPAR__QUERY_TERM__OP__EXISTS}, {"$regex", CPAR__QUERY_TERM__OP__REGEX},
    {"$glob", CPAR__QUERY_TERM__OP__GLOB},
};

/* Every field but the buffers: what a db_request without keys answers with. */
#define QUERY_DEFAULT_KEYS (CPAR_REC_ALL & ~(uint32_t)CPAR_REC_BUFFER_FIELDS)

static int query_fail(char *err, size_t errlen, const char *fmt, ...) CPAR_PRINTF(3, 4);
static int query_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CPAR_EINVAL;
}

#define QP_FAIL(p, ...) query_fail((p)->err, (p)->errlen, __VA_ARGS__)

static char *query_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);

    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/* ---- building the tree ------------------------------------------------------------------ */

/* Append a term with room for `nargs` arguments; *out points to it. 0 or CPAR_ENOMEM. */
static int query_add_term(cpar_query_t *q, const char *key, query_op_t op, size_t nargs,
                          cpar_query_term_t **out)
{
    cpar_query_term_t **terms = realloc(q->terms, (q->n_terms + 1) * sizeof *terms);
    cpar_query_term_t *t;

    if (!terms)
        return CPAR_ENOMEM;
    q->terms = terms;
    t = malloc(sizeof *t);
    if (!t)
        return CPAR_ENOMEM;
    cpar__query_term__init(t);
    terms[q->n_terms++] = t;
    t->op = op;
    t->key = query_strdup(key);
    t->args = nargs ? calloc(nargs, sizeof *t->args) : NULL;
    if (!t->key || (nargs && !t->args))
        return CPAR_ENOMEM;
    *out = t;
    return 0;
}

/* Append an empty argument to a term made with room for it. */
static cpar_query_value_t *query_add_arg(cpar_query_term_t *t)
{
    cpar_query_value_t *v = malloc(sizeof *v);

    if (v) {
        cpar__query_value__init(v);
        t->args[t->n_args++] = v;
    }
    return v;
}

/* ---- values ------------------------------------------------------------------------------ */

/* A string that extract_dates would turn into a datetime. */
static int query_looks_like_date(qparse_t *p, const char *s)
{
    if (!p->iso_ready) {
        /* ^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,6})?(Z|([\+\-]\d{2}:?\d{2}))?$ */
        if (regcomp(&p->iso,
                    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                    "(\\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})?$",
                    REG_EXTENDED | REG_NOSUB) != 0)
            return 0;
        p->iso_ready = 1;
    }
    return regexec(&p->iso, s, 0, NULL, 0) == 0;
}

/* A list or dict as compact JSON text, in memory from malloc. */
static char *query_json_text(const json_t *j)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *text = n ? malloc(n + 1) : NULL;

    if (!text)
        return NULL;
    json_dumpb(j, text, n, JSON_COMPACT | JSON_PRESERVE_ORDER);
    text[n] = '\0';
    return text;
}

/* Set v from a string: a date when it looks like one (a naive one is local time), else text. */
static int query_set_string(qparse_t *p, const char *key, const char *s, cpar_query_value_t *v)
{
    int64_t us;

    if (query_looks_like_date(p, s)) {
        if (cpar_iso_parse(s, 1, &us) != 0)
            return QP_FAIL(p, "Invalid date '%s' for key '%s'", s, key);
        v->kind_case = CPAR__QUERY_VALUE__KIND_DATE;
        v->date = us;
        return 0;
    }
    v->kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    v->text = query_strdup(s);
    return v->text ? 0 : CPAR_ENOMEM;
}

/* Set v from a JSON value of the query; lists and dicts are kept as JSON text. */
static int query_set_value(qparse_t *p, const char *key, const json_t *j, cpar_query_value_t *v)
{
    switch (json_typeof(j)) {
    case JSON_STRING:
        return query_set_string(p, key, json_string_value(j), v);
    case JSON_INTEGER:
        v->kind_case = CPAR__QUERY_VALUE__KIND_INTEGER;
        v->integer = json_integer_value(j);
        return 0;
    case JSON_REAL:
        v->kind_case = CPAR__QUERY_VALUE__KIND_REAL;
        v->real = json_real_value(j);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind_case = CPAR__QUERY_VALUE__KIND_BOOLEAN;
        v->boolean = json_is_true(j);
        return 0;
    case JSON_NULL:
        v->kind_case = CPAR__QUERY_VALUE__KIND_NULL;
        v->null = 1;
        return 0;
    default:
        v->kind_case = CPAR__QUERY_VALUE__KIND_JSON;
        v->json = query_json_text(j);
        return v->json ? 0 : CPAR_ENOMEM;
    }
}

static int query_add_value(qparse_t *p, const char *key, cpar_query_term_t *t, const json_t *j)
{
    cpar_query_value_t *v = query_add_arg(t);

    return v ? query_set_value(p, key, j, v) : CPAR_ENOMEM;
}

/* ---- terms ------------------------------------------------------------------------------- */

/* One argument, the value as it is: $eq, $ne, $lt, $gt, $lte, $gte, and a plain value. */
static int query_term_one(qparse_t *p, cpar_query_t *q, const char *key, query_op_t op,
                          const json_t *arg)
{
    cpar_query_term_t *t;
    int rc = query_add_term(q, key, op, 1, &t);

    return rc ? rc : query_add_value(p, key, t, arg);
}

/* $in, $nin, $all: a list, or one value taken as a list of it (as ipyparallel's SQLite did). */
static int query_term_list(qparse_t *p, cpar_query_t *q, const char *key, const char *opname,
                           query_op_t op, const json_t *arg)
{
    size_t n = json_is_array(arg) ? json_array_size(arg) : 1;
    cpar_query_term_t *t;
    int rc;

    if (json_is_object(arg))
        return QP_FAIL(p, "%s needs a list for key '%s'", opname, key);
    rc = query_add_term(q, key, op, n, &t);
    if (rc || !json_is_array(arg))
        return rc ? rc : query_add_value(p, key, t, arg);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = query_add_value(p, key, t, json_array_get(arg, i));
    return rc;
}

static int query_term_mod(qparse_t *p, cpar_query_t *q, const char *key, const json_t *arg)
{
    const json_t *d = json_array_get(arg, 0), *r = json_array_get(arg, 1);
    cpar_query_term_t *t;
    int rc;

    if (json_array_size(arg) != 2 || !json_is_integer(d) || !json_is_integer(r) ||
        json_integer_value(d) == 0)
        return QP_FAIL(p, "$mod needs [divisor, remainder], integers with a non-zero divisor, "
                          "for key '%s'", key);
    rc = query_add_term(q, key, CPAR__QUERY_TERM__OP__MOD, 2, &t);
    if (rc == 0)
        rc = query_add_value(p, key, t, d);
    return rc ? rc : query_add_value(p, key, t, r);
}

static int query_term_exists(qparse_t *p, cpar_query_t *q, const char *key, const json_t *arg)
{
    if (!json_is_boolean(arg))
        return QP_FAIL(p, "$exists needs true or false for key '%s'", key);
    return query_term_one(p, q, key, CPAR__QUERY_TERM__OP__EXISTS, arg);
}

/* $regex and $glob: a pattern, kept as text even when it looks like a date. */
static int query_term_pattern(qparse_t *p, cpar_query_t *q, const char *key, const char *opname,
                              query_op_t op, const json_t *arg)
{
    const char *pattern = json_string_value(arg);
    cpar_query_value_t *v;
    cpar_query_term_t *t;
    int rc;

    if (!pattern)
        return QP_FAIL(p, "%s needs a string for key '%s'", opname, key);
    if (op == CPAR__QUERY_TERM__OP__REGEX) {
        regex_t re;
        char why[256];

        rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            regerror(rc, &re, why, sizeof why);
            return QP_FAIL(p, "Bad regular expression '%s' for key '%s': %s", pattern, key, why);
        }
        regfree(&re);
    }
    rc = query_add_term(q, key, op, 1, &t);
    if (rc)
        return rc;
    if (!(v = query_add_arg(t)))
        return CPAR_ENOMEM;
    v->kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    v->text = query_strdup(pattern);
    return v->text ? 0 : CPAR_ENOMEM;
}

/* Buffers are bytes no query compares: only None (absent or empty) and $exists test them. */
static int query_buffers_ok(qparse_t *p, const char *key, query_op_t op, const json_t *arg)
{
    if (op == CPAR__QUERY_TERM__OP__EXISTS ||
        ((op == CPAR__QUERY_TERM__OP__EQ || op == CPAR__QUERY_TERM__OP__NE) && json_is_null(arg)))
        return 0;
    return QP_FAIL(p, "Key '%s' can only be tested against None, or with $exists", key);
}

/* One operator of a key's operator dict. */
static int query_operator(qparse_t *p, cpar_query_t *q, const char *key, const char *opname,
                          const json_t *arg)
{
    size_t i, n = sizeof query_ops / sizeof query_ops[0];
    query_op_t op;
    int rc;

    if (opname[0] != '$')
        return QP_FAIL(p, "Unsupported operator '%s' for key '%s' (compare with a dict with "
                          "{'$eq': {...}})", opname, key);
    for (i = 0; i < n && strcmp(query_ops[i].name, opname) != 0; i++)
        ;
    if (i == n)
        return QP_FAIL(p, "Unsupported operator '%s' for key '%s'", opname, key);
    op = query_ops[i].op;
    if ((cpar_record_field_bit(key) & CPAR_REC_BUFFER_FIELDS) &&
        (rc = query_buffers_ok(p, key, op, arg)) != 0)
        return rc;
    switch (op) {
    case CPAR__QUERY_TERM__OP__IN:
    case CPAR__QUERY_TERM__OP__NIN:
    case CPAR__QUERY_TERM__OP__ALL:
        return query_term_list(p, q, key, opname, op, arg);
    case CPAR__QUERY_TERM__OP__MOD:
        return query_term_mod(p, q, key, arg);
    case CPAR__QUERY_TERM__OP__EXISTS:
        return query_term_exists(p, q, key, arg);
    case CPAR__QUERY_TERM__OP__REGEX:
    case CPAR__QUERY_TERM__OP__GLOB:
        return query_term_pattern(p, q, key, opname, op, arg);
    default:
        return query_term_one(p, q, key, op, arg);
    }
}

/* One top-level key: a plain value (equality) or an operator dict (its operators ANDed). */
static int query_key(qparse_t *p, cpar_query_t *q, const char *key, const json_t *value)
{
    const char *opname;
    json_t *arg;
    int rc = 0;

    if (key[0] == '$')
        return QP_FAIL(p, "Unsupported operator '%s'", key);
    if (cpar_record_field_bit(key) < 0)
        return QP_FAIL(p, "Illegal testing key '%s'", key);
    if (!json_is_object(value))
        return query_operator(p, q, key, "$eq", value);
    if (json_object_size(value) == 0)
        return QP_FAIL(p, "Empty test for key '%s' (compare with an empty dict with "
                          "{'$eq': {}})", key);
    json_object_foreach((json_t *)value, opname, arg)
    {
        if ((rc = query_operator(p, q, key, opname, arg)) != 0)
            break;
    }
    return rc;
}

static const char *query_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "str";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "NoneType";
    default:
        return "dict";
    }
}

/* ---- entry points ------------------------------------------------------------------------ */

int cpar_query_parse(const char *json, size_t len, cpar_query_t **out, char *err, size_t errlen)
{
    qparse_t p = {.err = err, .errlen = errlen};
    json_error_t jerr;
    json_t *root, *value;
    const char *key;
    cpar_query_t *q;
    int rc = 0;

    if (err && errlen)
        err[0] = '\0';
    if (!out || !json)
        return query_fail(err, errlen, "no query");
    *out = NULL;
    root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root)
        return query_fail(err, errlen, "Bad query: %s", jerr.text);
    if (!json_is_object(root)) {
        rc = query_fail(err, errlen, "A query must be a dict, not %s", query_type_name(root));
        json_decref(root);
        return rc;
    }
    q = malloc(sizeof *q);
    if (q)
        cpar__query__init(q);
    json_object_foreach(root, key, value)
    {
        if (!q || (rc = query_key(&p, q, key, value)) != 0)
            break;
    }
    if (!q)
        rc = CPAR_ENOMEM;
    if (rc == CPAR_ENOMEM)
        query_fail(err, errlen, "out of memory parsing a query");
    if (p.iso_ready)
        regfree(&p.iso);
    json_decref(root);
    if (rc) {
        cpar_query_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void cpar_query_free(cpar_query_t *q)
{
    if (q)
        cpar__query__free_unpacked(q, NULL);
}

int cpar_query_new_ids(const char *const *ids, size_t n, cpar_query_t **out)
{
    cpar_query_term_t *t;
    cpar_query_t *q;
    int rc;

    if (!out || (n && !ids))
        return CPAR_EINVAL;
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!ids[i])
            return CPAR_EINVAL;
    if (!(q = malloc(sizeof *q)))
        return CPAR_ENOMEM;
    cpar__query__init(q);
    rc = query_add_term(q, "msg_id", CPAR__QUERY_TERM__OP__IN, n, &t);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        cpar_query_value_t *v = query_add_arg(t);

        if (!v || !(v->text = query_strdup(ids[i]))) {
            rc = CPAR_ENOMEM;
            break;
        }
        v->kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    }
    if (rc) {
        cpar_query_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

/* A name of `keys`: its bit (0 for msg_id), or -1 when it names no field. */
static int64_t query_key_bit(const json_t *name)
{
    const char *s = json_string_value(name);

    return s && !strchr(s, '.') ? cpar_record_field_bit(s) : -1;
}

/* "Bad record key(s): ['x', 'y']", as ipyparallel's SQLite says it. */
static int query_bad_keys(const json_t *names, char *err, size_t errlen)
{
    size_t i, used, nbad = 0;
    json_t *name;

    query_fail(err, errlen, "Bad record key(s): [");
    json_array_foreach(names, i, name)
    {
        if (!json_is_string(name) || query_key_bit(name) >= 0 || !err || !errlen)
            continue;
        used = strlen(err);
        snprintf(err + used, errlen - used, "%s'%s'", nbad++ ? ", " : "", json_string_value(name));
    }
    if (err && errlen) {
        used = strlen(err);
        snprintf(err + used, errlen - used, "]");
    }
    return CPAR_EINVAL;
}

int cpar_query_parse_keys(const char *json, size_t len, uint32_t *fields, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *root, *names, *name;
    int rc = 0;
    size_t i;

    if (err && errlen)
        err[0] = '\0';
    if (!fields)
        return query_fail(err, errlen, "no fields to set");
    *fields = QUERY_DEFAULT_KEYS;
    if (!json)
        return 0;
    root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root)
        return query_fail(err, errlen, "Bad keys: %s", jerr.text);
    /* A single name is a list of it, as the client makes it. */
    names = json_is_string(root) ? json_pack("[O]", root) : json_incref(root);
    if (!names)
        rc = query_fail(err, errlen, "out of memory reading keys");
    else if (json_is_array(names) && json_array_size(names) > 0) {
        uint32_t bits = 0;

        json_array_foreach(names, i, name)
        {
            int64_t bit = query_key_bit(name);
            if (bit < 0) {
                rc = json_is_string(name) ? query_bad_keys(names, err, errlen)
                                          : query_fail(err, errlen, "keys must be a list of "
                                                                    "record field names");
                break;
            }
            bits |= (uint32_t)bit;
        }
        if (rc == 0)
            *fields = bits;
    } else if (!json_is_null(names) && !json_is_array(names)) {
        rc = query_fail(err, errlen, "keys must be a list of record field names, not %s",
                        query_type_name(root));
    }
    json_decref(names);
    json_decref(root);
    return rc;
}
