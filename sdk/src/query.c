/*
 * query.c - the reference matcher of task-record queries (sdk/proto/query.proto) and the record
 * field names, shipped in libcparallel-proto so that every backend can use them.
 *
 * A term reads one value out of the record and compares it with its arguments. Values are typed
 * (qv_t): None (an absent field, or JSON null), a boolean, an integer, a real, text, a date, a
 * JSON object or array, or buffers. A JSON field is parsed at most once per call, and only when a
 * term reads it; a dotted key walks the object members of its JSON field.
 *
 * Comparison rules (documented for users in docs/task-database.md):
 *   - integers and reals compare numerically with each other; text with text (bytewise); dates
 *     with dates; booleans, objects and arrays only for equality (objects: key order does not
 *     matter; numbers inside compare numerically too); buffers only with None;
 *   - values of different types are never equal, and never ordered: LT/GT/LTE/GTE of them, or of
 *     None, are false.
 */
#include <fnmatch.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <cparallel/query.h>

typedef enum qv_kind {
    QV_NULL, /* None: absent, or JSON null */
    QV_BOOL,
    QV_INT,
    QV_REAL,
    QV_TEXT,
    QV_DATE,
    QV_JSON, /* an object or an array */
    QV_BYTES /* buffers; also a value that equals nothing */
} qv_kind_t;

/* One value of a record or of a query; borrowed from where it was read. */
typedef struct qv {
    qv_kind_t kind;
    union {
        int boolean;
        int64_t integer; /* QV_INT, QV_DATE (microseconds, UTC) */
        double real;
        struct {
            const char *s; /* NUL-terminated; len counts bytes up to the end, NULs included */
            size_t len;
        } text;
        const json_t *json; /* QV_JSON: an object or an array */
    } u;
} qv_t;

/* Record field numbers run from 1 (msg_id) to this; update with record.proto. */
#define QUERY_MAX_FIELD 32

/* What one cpar_query_match call prepares and caches. */
typedef struct qctx {
    const cpar_query_t *q;
    const cpar_record_t *rec;
    json_t *doc[QUERY_MAX_FIELD + 1]; /* parsed JSON fields, by field number */
    uint64_t parsed;                  /* bit n: doc[n] was tried */
    regex_t *re;                      /* one per term; compiled for the REGEX terms */
    size_t ncompiled;                 /* terms [0, ncompiled) had their REGEX compiled */
} qctx_t;

#define QUERY_AT(base, off) ((const void *)((const char *)(base) + (off)))

/* ---- record fields by name -------------------------------------------------------------- */

static const ProtobufCFieldDescriptor *query_field(const char *name, size_t len)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *fname = d->fields[i].name;
        if (strncmp(fname, name, len) == 0 && fname[len] == '\0')
            return &d->fields[i];
    }
    return NULL;
}

static uint32_t query_field_bit(const ProtobufCFieldDescriptor *f)
{
    return f->id >= 2 && f->id < 2 + 32 ? 1u << (f->id - 2) : 0;
}

int64_t cpar_record_field_bit(const char *name)
{
    const ProtobufCFieldDescriptor *f;
    size_t len;

    if (!name)
        return -1;
    len = strcspn(name, ".");
    f = query_field(name, len);
    if (!f)
        return -1;
    if (name[len]) {
        if (!(query_field_bit(f) & CPAR_REC_JSON_FIELDS))
            return -1;
        for (const char *p = name + len; *p; p += len) {
            len = strcspn(++p, ".");
            if (len == 0)
                return -1;
        }
    }
    return query_field_bit(f);
}

const char *cpar_record_field_name(uint32_t bit)
{
    const ProtobufCFieldDescriptor *f;
    unsigned n = 0;

    if (!bit || (bit & (bit - 1)))
        return NULL;
    while (!(bit & 1u)) {
        bit >>= 1;
        n++;
    }
    f = protobuf_c_message_descriptor_get_field(&cpar__record__descriptor, n + 2);
    return f ? f->name : NULL;
}

/* ---- values ------------------------------------------------------------------------------ */

static void qv_text(qv_t *v, const char *s, size_t len)
{
    v->kind = QV_TEXT;
    v->u.text.s = s;
    v->u.text.len = len;
}

/* A JSON value as a qv_t borrowing from it. */
static void qv_from_json(const json_t *j, qv_t *v)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        v->kind = QV_JSON;
        v->u.json = j;
        break;
    case JSON_STRING:
        qv_text(v, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        v->kind = QV_INT;
        v->u.integer = json_integer_value(j);
        break;
    case JSON_REAL:
        v->kind = QV_REAL;
        v->u.real = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->kind = QV_BOOL;
        v->u.boolean = json_is_true(j);
        break;
    default:
        v->kind = QV_NULL;
        break;
    }
}

/* JSON text as a tree; integers beyond json_int_t are read as reals rather than fail it. */
static json_t *query_json_load(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);

    if (!j && json_error_code(&err) == json_error_numeric_overflow)
        j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    return j;
}

/*
 * A query argument as a value. A JSON argument is parsed into *own (release it with
 * json_decref); one that does not parse becomes a value that equals nothing (QV_BYTES).
 */
static void qv_from_arg(const cpar_query_value_t *a, qv_t *v, json_t **own)
{
    *own = NULL;
    switch (a->kind_case) {
    case CPAR__QUERY_VALUE__KIND_BOOLEAN:
        v->kind = QV_BOOL;
        v->u.boolean = a->boolean != 0;
        break;
    case CPAR__QUERY_VALUE__KIND_INTEGER:
        v->kind = QV_INT;
        v->u.integer = a->integer;
        break;
    case CPAR__QUERY_VALUE__KIND_REAL:
        v->kind = QV_REAL;
        v->u.real = a->real;
        break;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        qv_text(v, a->text, strlen(a->text));
        break;
    case CPAR__QUERY_VALUE__KIND_DATE:
        v->kind = QV_DATE;
        v->u.integer = a->date;
        break;
    case CPAR__QUERY_VALUE__KIND_JSON:
        *own = query_json_load(a->json);
        if (*own)
            qv_from_json(*own, v);
        else
            v->kind = QV_BYTES;
        break;
    default:
        v->kind = QV_NULL;
        break;
    }
}

static int qv_is_number(const qv_t *v)
{
    return v->kind == QV_INT || v->kind == QV_REAL;
}

/* 2 when a and b have no order: different types, None, NaN, JSON, buffers. */
#define QV_UNORDERED 2

static int qv_cmp_numbers(const qv_t *a, const qv_t *b)
{
    long double x, y;

    if (a->kind == QV_INT && b->kind == QV_INT)
        return (a->u.integer > b->u.integer) - (a->u.integer < b->u.integer);
    /* long double holds every int64_t exactly on the platforms we build for */
    x = a->kind == QV_INT ? (long double)a->u.integer : (long double)a->u.real;
    y = b->kind == QV_INT ? (long double)b->u.integer : (long double)b->u.real;
    if (isnan(x) || isnan(y))
        return QV_UNORDERED;
    return (x > y) - (x < y);
}

static int qv_cmp_text(const qv_t *a, const qv_t *b)
{
    size_t n = a->u.text.len < b->u.text.len ? a->u.text.len : b->u.text.len;
    int c = memcmp(a->u.text.s, b->u.text.s, n);

    if (c)
        return c < 0 ? -1 : 1;
    return (a->u.text.len > b->u.text.len) - (a->u.text.len < b->u.text.len);
}

/* -1, 0 or 1 as a is below, equal to or above b; QV_UNORDERED when they have no order. */
static int qv_cmp(const qv_t *a, const qv_t *b)
{
    if (qv_is_number(a) && qv_is_number(b))
        return qv_cmp_numbers(a, b);
    if (a->kind != b->kind)
        return QV_UNORDERED;
    if (a->kind == QV_TEXT)
        return qv_cmp_text(a, b);
    if (a->kind == QV_DATE)
        return (a->u.integer > b->u.integer) - (a->u.integer < b->u.integer);
    return QV_UNORDERED;
}

static int qv_equal(const qv_t *a, const qv_t *b);

/* Lists element by element, dicts key by key in any order, the rest as qv_equal compares. */
static int qv_json_equal(const json_t *a, const json_t *b)
{
    qv_t x, y;

    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!qv_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a) && json_is_object(b)) {
        const char *key;
        json_t *va;

        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, key, va)
        {
            const json_t *vb = json_object_get(b, key);
            if (!vb || !qv_json_equal(va, vb))
                return 0;
        }
        return 1;
    }
    qv_from_json(a, &x);
    qv_from_json(b, &y);
    return x.kind != QV_JSON && qv_equal(&x, &y);
}

/* Numbers numerically (1 == 1.0, also inside lists and dicts), everything else by type. */
static int qv_equal(const qv_t *a, const qv_t *b)
{
    if (a->kind != b->kind && !(qv_is_number(a) && qv_is_number(b)))
        return 0;
    switch (a->kind) {
    case QV_NULL:
        return 1;
    case QV_BOOL:
        return a->u.boolean == b->u.boolean;
    case QV_JSON:
        return qv_json_equal(a->u.json, b->u.json);
    case QV_BYTES:
        return 0;
    default:
        return qv_cmp(a, b) == 0;
    }
}

/* ---- reading the record ------------------------------------------------------------------- */

/* The parsed JSON of a string field, or NULL when it is absent or not JSON. */
static const json_t *qctx_doc(qctx_t *c, const ProtobufCFieldDescriptor *f, const char *text)
{
    uint64_t bit;

    if (f->id > QUERY_MAX_FIELD)
        return NULL;
    bit = UINT64_C(1) << f->id;
    if (!(c->parsed & bit)) {
        c->parsed |= bit;
        c->doc[f->id] = query_json_load(text);
    }
    return c->doc[f->id];
}

/* The member `name` (len bytes, not NUL-terminated) of a JSON object, or NULL. */
static const json_t *query_member(const json_t *obj, const char *name, size_t len)
{
    char small[128], *key = len < sizeof small ? small : malloc(len + 1);
    const json_t *v;

    if (!key)
        return NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    v = json_object_get(obj, key);
    if (key != small)
        free(key);
    return v;
}

/* A whole field: text fields as text, JSON fields as what their JSON holds (text if it is none). */
static void qctx_field(qctx_t *c, const ProtobufCFieldDescriptor *f, qv_t *v)
{
    v->kind = QV_NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (*(const size_t *)QUERY_AT(c->rec, f->quantifier_offset))
            v->kind = QV_BYTES;
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)QUERY_AT(c->rec, f->offset);
        const json_t *doc;

        if (!s)
            return;
        if ((query_field_bit(f) & CPAR_REC_JSON_FIELDS) && (doc = qctx_doc(c, f, s)) != NULL)
            qv_from_json(doc, v);
        else
            qv_text(v, s, strlen(s));
    } else if (*(const protobuf_c_boolean *)QUERY_AT(c->rec, f->quantifier_offset)) {
        v->kind = QV_DATE;
        v->u.integer = *(const int64_t *)QUERY_AT(c->rec, f->offset);
    }
}

/* The value a (valid) key names in the record: a field, or a member path into a JSON field. */
static void qctx_value(qctx_t *c, const char *key, qv_t *v)
{
    size_t len = strcspn(key, ".");
    const ProtobufCFieldDescriptor *f = query_field(key, len);
    const char *s;
    const json_t *j;

    if (!key[len]) {
        qctx_field(c, f, v);
        return;
    }
    v->kind = QV_NULL;
    s = *(char *const *)QUERY_AT(c->rec, f->offset);
    j = s ? qctx_doc(c, f, s) : NULL;
    for (const char *p = key + len; j && *p; p += len) {
        len = strcspn(++p, ".");
        j = json_is_object(j) ? query_member(j, p, len) : NULL;
    }
    if (j)
        qv_from_json(j, v);
}

/* ---- operators ---------------------------------------------------------------------------- */

static int query_eq(const qv_t *v, const cpar_query_value_t *arg)
{
    json_t *own;
    qv_t a;
    int eq;

    qv_from_arg(arg, &a, &own);
    eq = qv_equal(v, &a);
    json_decref(own);
    return eq;
}

static int query_order(const qv_t *v, const cpar_query_value_t *arg, Cpar__QueryTerm__Op op)
{
    json_t *own;
    qv_t a;
    int c;

    qv_from_arg(arg, &a, &own);
    c = qv_cmp(v, &a);
    json_decref(own);
    if (c == QV_UNORDERED)
        return 0;
    switch (op) {
    case CPAR__QUERY_TERM__OP__LT:
        return c < 0;
    case CPAR__QUERY_TERM__OP__GT:
        return c > 0;
    case CPAR__QUERY_TERM__OP__LTE:
        return c <= 0;
    default:
        return c >= 0;
    }
}

static int query_in(const qv_t *v, const cpar_query_term_t *t)
{
    for (size_t i = 0; i < t->n_args; i++)
        if (query_eq(v, t->args[i]))
            return 1;
    return 0;
}

/* $all, as MongoDB has it: every argument equals the value, or is an element of the list. */
static int query_all(const qv_t *v, const cpar_query_term_t *t)
{
    for (size_t i = 0; i < t->n_args; i++) {
        int found = query_eq(v, t->args[i]);

        if (!found && v->kind == QV_JSON && json_is_array(v->u.json)) {
            size_t k;
            json_t *e;
            json_array_foreach(v->u.json, k, e)
            {
                qv_t ev;
                qv_from_json(e, &ev);
                if ((found = query_eq(&ev, t->args[i])) != 0)
                    break;
            }
        }
        if (!found)
            return 0;
    }
    return t->n_args > 0; /* $all of nothing matches nothing, as in MongoDB */
}

/* $mod: integers, and reals truncated toward zero, as MongoDB does; C's truncating %. */
static int query_mod(const qv_t *v, const cpar_query_term_t *t)
{
    int64_t d = t->args[0]->integer, r = t->args[1]->integer, x;

    if (v->kind == QV_INT) {
        x = v->u.integer;
    } else if (v->kind == QV_REAL && v->u.real > -9.2e18 && v->u.real < 9.2e18) {
        x = (int64_t)v->u.real;
    } else {
        return 0;
    }
    if (d == -1 || d == 1) /* INT64_MIN % -1 overflows */
        return r == 0;
    return x % d == r;
}

static int query_term(qctx_t *c, size_t i)
{
    const cpar_query_term_t *t = c->q->terms[i];
    qv_t v;

    qctx_value(c, t->key, &v);
    switch (t->op) {
    case CPAR__QUERY_TERM__OP__EQ:
        return query_eq(&v, t->args[0]);
    case CPAR__QUERY_TERM__OP__NE:
        return !query_eq(&v, t->args[0]);
    case CPAR__QUERY_TERM__OP__IN:
        return query_in(&v, t);
    case CPAR__QUERY_TERM__OP__NIN:
        return !query_in(&v, t);
    case CPAR__QUERY_TERM__OP__ALL:
        return query_all(&v, t);
    case CPAR__QUERY_TERM__OP__MOD:
        return query_mod(&v, t);
    case CPAR__QUERY_TERM__OP__EXISTS:
        return (v.kind != QV_NULL) == (t->args[0]->boolean != 0);
    case CPAR__QUERY_TERM__OP__REGEX:
        return v.kind == QV_TEXT && regexec(&c->re[i], v.u.text.s, 0, NULL, 0) == 0;
    case CPAR__QUERY_TERM__OP__GLOB:
        return v.kind == QV_TEXT && fnmatch(t->args[0]->text, v.u.text.s, 0) == 0;
    default: /* LT, GT, LTE, GTE */
        return query_order(&v, t->args[0], t->op);
    }
}

/* ---- checking a query ------------------------------------------------------------------- */

static int query_arg_ok(const cpar_query_value_t *a)
{
    if (!a)
        return 0;
    switch (a->kind_case) {
    case CPAR__QUERY_VALUE__KIND_TEXT:
        return a->text != NULL;
    case CPAR__QUERY_VALUE__KIND_JSON:
        return a->json != NULL;
    default:
        return a->kind_case >= CPAR__QUERY_VALUE__KIND_NULL &&
               a->kind_case <= CPAR__QUERY_VALUE__KIND_DATE;
    }
}

static int query_arg_is(const cpar_query_term_t *t, size_t i, Cpar__QueryValue__KindCase kind)
{
    return t->args[i]->kind_case == kind;
}

/* The term's key and arguments fit its operator. */
static int query_term_ok(const cpar_query_term_t *t)
{
    if (!t || cpar_record_field_bit(t->key) < 0 || (t->n_args && !t->args))
        return 0;
    for (size_t i = 0; i < t->n_args; i++)
        if (!query_arg_ok(t->args[i]))
            return 0;
    switch (t->op) {
    case CPAR__QUERY_TERM__OP__EQ:
    case CPAR__QUERY_TERM__OP__NE:
    case CPAR__QUERY_TERM__OP__LT:
    case CPAR__QUERY_TERM__OP__GT:
    case CPAR__QUERY_TERM__OP__LTE:
    case CPAR__QUERY_TERM__OP__GTE:
        return t->n_args == 1;
    case CPAR__QUERY_TERM__OP__IN:
    case CPAR__QUERY_TERM__OP__NIN:
    case CPAR__QUERY_TERM__OP__ALL:
        return 1;
    case CPAR__QUERY_TERM__OP__MOD:
        return t->n_args == 2 && query_arg_is(t, 0, CPAR__QUERY_VALUE__KIND_INTEGER) &&
               query_arg_is(t, 1, CPAR__QUERY_VALUE__KIND_INTEGER) && t->args[0]->integer != 0;
    case CPAR__QUERY_TERM__OP__EXISTS:
        return t->n_args == 1 && query_arg_is(t, 0, CPAR__QUERY_VALUE__KIND_BOOLEAN);
    case CPAR__QUERY_TERM__OP__REGEX:
    case CPAR__QUERY_TERM__OP__GLOB:
        return t->n_args == 1 && query_arg_is(t, 0, CPAR__QUERY_VALUE__KIND_TEXT);
    default:
        return 0;
    }
}

/* Check every term and compile the regular expressions: 0, CPAR_EINVAL or CPAR_ENOMEM. */
static int qctx_prepare(qctx_t *c)
{
    const cpar_query_t *q = c->q;
    int regexes = 0;

    if (q->n_terms && !q->terms)
        return CPAR_EINVAL;
    for (size_t i = 0; i < q->n_terms; i++) {
        if (!query_term_ok(q->terms[i]))
            return CPAR_EINVAL;
        regexes |= q->terms[i]->op == CPAR__QUERY_TERM__OP__REGEX;
    }
    if (!regexes)
        return 0;
    c->re = calloc(q->n_terms, sizeof *c->re);
    if (!c->re)
        return CPAR_ENOMEM;
    for (; c->ncompiled < q->n_terms; c->ncompiled++) {
        const cpar_query_term_t *t = q->terms[c->ncompiled];
        int rc;

        if (t->op != CPAR__QUERY_TERM__OP__REGEX)
            continue;
        rc = regcomp(&c->re[c->ncompiled], t->args[0]->text, REG_EXTENDED | REG_NOSUB);
        if (rc)
            return rc == REG_ESPACE ? CPAR_ENOMEM : CPAR_EINVAL;
    }
    return 0;
}

static void qctx_release(qctx_t *c)
{
    for (size_t i = 0; i <= QUERY_MAX_FIELD; i++)
        json_decref(c->doc[i]);
    for (size_t i = 0; c->re && i < c->ncompiled; i++)
        if (c->q->terms[i]->op == CPAR__QUERY_TERM__OP__REGEX)
            regfree(&c->re[i]);
    free(c->re);
}

/* A term that reads a JSON field parses it: tested after the others, it is often not needed. */
static int query_term_costly(const cpar_query_term_t *t)
{
    return (cpar_record_field_bit(t->key) & CPAR_REC_JSON_FIELDS) != 0;
}

int cpar_query_match(const cpar_query_t *q, const cpar_record_t *rec)
{
    qctx_t c;
    int rc, match = 1;

    if (!q || !rec)
        return CPAR_EINVAL;
    memset(&c, 0, sizeof c);
    c.q = q;
    c.rec = rec;
    rc = qctx_prepare(&c);
    for (int costly = 0; rc == 0 && match && costly <= 1; costly++)
        for (size_t i = 0; match && i < q->n_terms; i++)
            if (query_term_costly(q->terms[i]) == costly)
                match = query_term(&c, i);
    qctx_release(&c);
    return rc ? rc : match;
}
