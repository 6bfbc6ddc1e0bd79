/*
 * where.c - a query (sdk/proto/query.proto) compiled into a parameterised SQL WHERE clause that
 * selects exactly the records the reference matcher (cpar_query_match, sdk/src/query.c) does.
 *
 * Values never enter the SQL text: every one, and every JSON path, is a numbered parameter; the
 * text holds only column names of record.proto and fixed SQL. A term compiles according to what
 * its key denotes:
 *
 *   text column   msg_id, engine_uuid, stdout, ...: equal to and ordered with text
 *   date column   submitted, started, completed, received (INTEGER microseconds): with dates
 *   list column   buffers, result_buffers (NULL when no items): compares only with null
 *   JSON value    a JSON column (header, metadata, ...) or a dotted key into one
 *                 ("header.msg_type"): json_type() gives the value's JSON type and json_extract()
 *                 the value, so each comparison checks the type first. A JSON column that does
 *                 not hold valid JSON is its text, as for the reference.
 *
 * Values of different types are never equal and never ordered (integers and reals compare with
 * each other; booleans, lists and objects only for equality): SQLite's own cross-type ordering
 * (numbers < text < blobs) never decides, because every comparison is guarded by the kind of the
 * column or by json_type(). null is an absent field (JSON null included). Expressions that may go
 * under NOT (NE, NIN, EXISTS false) are built never to be SQL NULL, so that NOT flips them
 * exactly.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlitedb.h"

/* Longer IN lists go in as one JSON array parameter (json_each) instead of one per value. */
#define SQLITEDB_IN_PARAMS 64

typedef Cpar__QueryValue value_t;

typedef enum sqlitedb_opd_kind {
    OPD_TEXT,
    OPD_DATE,
    OPD_LIST,
    OPD_JSON, /* a JSON column as a whole */
    OPD_PATH  /* a dotted key into a JSON column */
} sqlitedb_opd_kind_t;

typedef struct sqlitedb_opd {
    sqlitedb_opd_kind_t kind;
    const char *col; /* the column: a field name of record.proto */
    int path;        /* OPD_PATH: the parameter holding the JSON path */
} sqlitedb_opd_t;

static int sqlitedb_is_json(const sqlitedb_opd_t *o)
{
    return o->kind == OPD_JSON || o->kind == OPD_PATH;
}

typedef struct sqlitedb_wb {
    sqlitedb_t *db;
    sqlitedb_where_t *w;
    const char *key; /* of the term being compiled, for messages */
    int rc;
} sqlitedb_wb_t;

/* ---- parameters ------------------------------------------------------------------------- */

static int sqlitedb_param(sqlitedb_wb_t *b, sqlitedb_param_t p)
{
    sqlitedb_where_t *w = b->w;

    if (w->nparams == w->capparams) {
        size_t cap = w->capparams ? 2 * w->capparams : 16;
        sqlitedb_param_t *np = realloc(w->params, cap * sizeof *np);

        if (!np) {
            b->rc = CPAR_ENOMEM;
            return 0;
        }
        w->params = np;
        w->capparams = cap;
    }
    w->params[w->nparams++] = p;
    return (int)w->nparams;
}

static int sqlitedb_param_text(sqlitedb_wb_t *b, const char *s)
{
    sqlitedb_param_t p = {.type = SQLITEDB_P_TEXT, .s = s};
    return sqlitedb_param(b, p);
}

/* Keep a string the where made; it is freed with the where. NULL (and rc set) when out of memory.
 */
static char *sqlitedb_own(sqlitedb_wb_t *b, char *s)
{
    sqlitedb_where_t *w = b->w;

    if (!s) {
        b->rc = CPAR_ENOMEM;
        return NULL;
    }
    if (w->nowned == w->capowned) {
        size_t cap = w->capowned ? 2 * w->capowned : 8;
        char **no = realloc(w->owned, cap * sizeof *no);

        if (!no) {
            free(s);
            b->rc = CPAR_ENOMEM;
            return NULL;
        }
        w->owned = no;
        w->capowned = cap;
    }
    w->owned[w->nowned++] = s;
    return s;
}

/* ---- SQL text ----------------------------------------------------------------------------- */

static void sqlitedb_add(sqlitedb_wb_t *b, const char *text)
{
    sqlitedb_str_add(&b->w->sql, text);
}

static void sqlitedb_add_param(sqlitedb_wb_t *b, int param)
{
    sqlitedb_str_addf(&b->w->sql, "?%d", param);
}

static void sqlitedb_add_col(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    sqlitedb_str_ident(&b->w->sql, o->col);
}

/* The JSON column, or NULL when it does not hold valid JSON (so json_* never fail on it). */
static void sqlitedb_add_doc(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    sqlitedb_add(b, "CASE WHEN json_valid(");
    sqlitedb_add_col(b, o);
    sqlitedb_add(b, ") THEN ");
    sqlitedb_add_col(b, o);
    sqlitedb_add(b, " END");
}

/* The JSON path of a JSON value: its parameter, or the root. */
static void sqlitedb_add_path(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    if (o->kind == OPD_PATH)
        sqlitedb_add_param(b, o->path);
    else
        sqlitedb_add(b, "'$'");
}

/*
 * The JSON type name of a JSON value ('null', 'true', 'false', 'integer', 'real', 'text',
 * 'array', 'object'), or NULL when it is absent. A JSON column that is not JSON is 'text'.
 */
static void sqlitedb_add_jtype(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    if (o->kind == OPD_JSON) {
        sqlitedb_add(b, "CASE WHEN json_valid(");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, ") THEN json_type(");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, ") WHEN ");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, " IS NOT NULL THEN 'text' END");
        return;
    }
    sqlitedb_add(b, "json_type(");
    sqlitedb_add_doc(b, o);
    sqlitedb_add(b, ", ");
    sqlitedb_add_param(b, o->path);
    sqlitedb_add(b, ")");
}

/* The SQL value of a JSON value: text, a number, 1/0 for true/false, JSON text for the rest. */
static void sqlitedb_add_jval(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    if (o->kind == OPD_JSON) {
        sqlitedb_add(b, "CASE WHEN json_valid(");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, ") THEN json_extract(");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, ", '$') ELSE ");
        sqlitedb_add_col(b, o);
        sqlitedb_add(b, " END");
        return;
    }
    sqlitedb_add(b, "json_extract(");
    sqlitedb_add_doc(b, o);
    sqlitedb_add(b, ", ");
    sqlitedb_add_param(b, o->path);
    sqlitedb_add(b, ")");
}

/* The JSON value's type is one of `types` (a SQL list of names). Never NULL. */
static void sqlitedb_add_jtype_in(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const char *types)
{
    sqlitedb_add(b, "coalesce(");
    sqlitedb_add_jtype(b, o);
    sqlitedb_add(b, ", '') IN (");
    sqlitedb_add(b, types);
    sqlitedb_add(b, ")");
}

/* What a text search (REGEX, GLOB) reads: the text column, or the JSON value when it is text. */
static void sqlitedb_add_text(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    if (o->kind == OPD_TEXT)
        sqlitedb_add_col(b, o);
    else
        sqlitedb_add_jval(b, o);
}

/* ---- values ------------------------------------------------------------------------------- */

static int sqlitedb_bad(sqlitedb_wb_t *b, int code, const char *fmt, const char *detail)
{
    char msg[600];

    snprintf(msg, sizeof msg, fmt, detail);
    b->rc = sqlitedb_fail(b->db, code, "query key '%s': %s", b->key, msg);
    return b->rc;
}

/* The parameter for a number, text, date or JSON value. */
static int sqlitedb_value_param(sqlitedb_wb_t *b, const value_t *v)
{
    sqlitedb_param_t p = {.type = SQLITEDB_P_INT};

    switch (v->kind_case) {
    case CPAR__QUERY_VALUE__KIND_INTEGER:
        p.i = v->integer;
        break;
    case CPAR__QUERY_VALUE__KIND_DATE:
        p.i = v->date;
        break;
    case CPAR__QUERY_VALUE__KIND_REAL:
        p.type = SQLITEDB_P_REAL;
        p.d = v->real;
        break;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        p.type = SQLITEDB_P_TEXT;
        p.s = v->text;
        break;
    case CPAR__QUERY_VALUE__KIND_JSON:
        p.type = SQLITEDB_P_TEXT;
        p.s = v->json;
        break;
    default:
        p.i = v->boolean ? 1 : 0;
        break;
    }
    return sqlitedb_param(b, p);
}

static int sqlitedb_value_ok(sqlitedb_wb_t *b, const value_t *v)
{
    if (v && v->kind_case >= CPAR__QUERY_VALUE__KIND_NULL &&
        v->kind_case <= CPAR__QUERY_VALUE__KIND_JSON &&
        (v->kind_case != CPAR__QUERY_VALUE__KIND_TEXT || v->text) &&
        (v->kind_case != CPAR__QUERY_VALUE__KIND_JSON || v->json))
        return 1;
    sqlitedb_bad(b, CPAR_EINVAL, "%s", "a value without a kind");
    return 0;
}

/* ---- predicates --------------------------------------------------------------------------- */

/* The field is absent (None). Never NULL. */
static void sqlitedb_is_null(sqlitedb_wb_t *b, const sqlitedb_opd_t *o)
{
    if (sqlitedb_is_json(o)) {
        sqlitedb_add(b, "(coalesce(");
        sqlitedb_add_jtype(b, o);
        sqlitedb_add(b, ", 'null') = 'null')");
        return;
    }
    sqlitedb_add(b, "(");
    sqlitedb_add_col(b, o);
    sqlitedb_add(b, " IS NULL)");
}

/* "(<check> AND <jval> <op> ?p)" for a JSON value. */
static void sqlitedb_json_cmp(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const char *types,
                              const char *op, int param)
{
    sqlitedb_add(b, "(");
    sqlitedb_add_jtype_in(b, o, types);
    sqlitedb_add(b, " AND ");
    sqlitedb_add_jval(b, o);
    sqlitedb_str_addf(&b->w->sql, " %s ", op);
    sqlitedb_add_param(b, param);
    sqlitedb_add(b, ")");
}

/* "(<col> <op> ?p)" for a column. */
static void sqlitedb_col_cmp(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const char *op, int param)
{
    sqlitedb_add(b, "(");
    sqlitedb_add_col(b, o);
    sqlitedb_str_addf(&b->w->sql, " %s ", op);
    sqlitedb_add_param(b, param);
    sqlitedb_add(b, ")");
}

/* The field equals v (null: is absent). Never NULL: equality uses IS. */
static void sqlitedb_eq(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const value_t *v)
{
    switch (v->kind_case) {
    case CPAR__QUERY_VALUE__KIND_NULL:
        sqlitedb_is_null(b, o);
        return;
    case CPAR__QUERY_VALUE__KIND_BOOLEAN:
        if (!sqlitedb_is_json(o))
            break;
        sqlitedb_add(b, "(");
        sqlitedb_add_jtype(b, o);
        sqlitedb_add(b, v->boolean ? " IS 'true')" : " IS 'false')");
        return;
    case CPAR__QUERY_VALUE__KIND_INTEGER:
    case CPAR__QUERY_VALUE__KIND_REAL:
        if (!sqlitedb_is_json(o))
            break;
        sqlitedb_json_cmp(b, o, "'integer', 'real'", "IS", sqlitedb_value_param(b, v));
        return;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        if (o->kind == OPD_TEXT)
            sqlitedb_col_cmp(b, o, "IS", sqlitedb_value_param(b, v));
        else if (sqlitedb_is_json(o))
            sqlitedb_json_cmp(b, o, "'text'", "IS", sqlitedb_value_param(b, v));
        else
            break;
        return;
    case CPAR__QUERY_VALUE__KIND_DATE:
        if (o->kind != OPD_DATE)
            break; /* JSON has no dates: the hub's header.date is text there */
        sqlitedb_col_cmp(b, o, "IS", sqlitedb_value_param(b, v));
        return;
    case CPAR__QUERY_VALUE__KIND_JSON: {
        int p;

        if (!sqlitedb_is_json(o))
            break;
        p = sqlitedb_value_param(b, v);
        sqlitedb_add(b, "(");
        sqlitedb_add_jtype_in(b, o, "'array', 'object'");
        sqlitedb_add(b, " AND cpar_json_eq(");
        sqlitedb_add_jval(b, o);
        sqlitedb_add(b, ", ");
        sqlitedb_add_param(b, p);
        sqlitedb_add(b, "))");
        return;
    }
    default:
        break;
    }
    sqlitedb_add(b, "0"); /* a value of another type than the field's */
}

/* An element e (json_each) of a JSON list equals v. */
static void sqlitedb_elem_eq(sqlitedb_wb_t *b, const value_t *v)
{
    switch (v->kind_case) {
    case CPAR__QUERY_VALUE__KIND_NULL:
        sqlitedb_add(b, "e.type = 'null'");
        return;
    case CPAR__QUERY_VALUE__KIND_BOOLEAN:
        sqlitedb_add(b, v->boolean ? "e.type = 'true'" : "e.type = 'false'");
        return;
    case CPAR__QUERY_VALUE__KIND_INTEGER:
    case CPAR__QUERY_VALUE__KIND_REAL:
        sqlitedb_add(b, "e.type IN ('integer', 'real') AND e.value = ");
        sqlitedb_add_param(b, sqlitedb_value_param(b, v));
        return;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        sqlitedb_add(b, "e.type = 'text' AND e.value = ");
        sqlitedb_add_param(b, sqlitedb_value_param(b, v));
        return;
    case CPAR__QUERY_VALUE__KIND_JSON:
        sqlitedb_add(b, "e.type IN ('array', 'object') AND cpar_json_eq(e.value, ");
        sqlitedb_add_param(b, sqlitedb_value_param(b, v));
        sqlitedb_add(b, ")");
        return;
    default:
        sqlitedb_add(b, "0"); /* dates */
    }
}

/*
 * LT/GT/LTE/GTE: numbers with numbers, text with text, dates with dates; nothing else has an
 * order. May be NULL where it does not hold, so it never goes under NOT.
 */
static void sqlitedb_order(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const char *op,
                           const value_t *v)
{
    switch (v->kind_case) {
    case CPAR__QUERY_VALUE__KIND_INTEGER:
    case CPAR__QUERY_VALUE__KIND_REAL:
        if (!sqlitedb_is_json(o))
            break;
        sqlitedb_json_cmp(b, o, "'integer', 'real'", op, sqlitedb_value_param(b, v));
        return;
    case CPAR__QUERY_VALUE__KIND_TEXT:
        if (o->kind == OPD_TEXT)
            sqlitedb_col_cmp(b, o, op, sqlitedb_value_param(b, v));
        else if (sqlitedb_is_json(o))
            sqlitedb_json_cmp(b, o, "'text'", op, sqlitedb_value_param(b, v));
        else
            break;
        return;
    case CPAR__QUERY_VALUE__KIND_DATE:
        if (o->kind != OPD_DATE)
            break;
        sqlitedb_col_cmp(b, o, op, sqlitedb_value_param(b, v));
        return;
    default:
        break;
    }
    sqlitedb_add(b, "0");
}

/* A JSON array of the values of `kind` among args (text or integers), for json_each. */
static char *sqlitedb_json_list(const value_t *const *args, size_t n, int kind)
{
    sqlitedb_str_t s = {0};

    sqlitedb_str_add(&s, "[");
    for (size_t i = 0, first = 1; i < n; i++) {
        if ((int)args[i]->kind_case != kind)
            continue;
        if (!first)
            sqlitedb_str_add(&s, ",");
        first = 0;
        if (kind == CPAR__QUERY_VALUE__KIND_DATE) {
            sqlitedb_str_addf(&s, "%lld", (long long)args[i]->date);
            continue;
        }
        sqlitedb_str_add(&s, "\"");
        for (const unsigned char *c = (const unsigned char *)args[i]->text; *c; c++) {
            if (*c == '"' || *c == '\\')
                sqlitedb_str_addf(&s, "\\%c", *c);
            else if (*c < 0x20)
                sqlitedb_str_addf(&s, "\\u%04x", *c);
            else
                sqlitedb_str_addf(&s, "%c", *c);
        }
        sqlitedb_str_add(&s, "\"");
    }
    sqlitedb_str_add(&s, "]");
    if (s.oom) {
        sqlitedb_str_free(&s);
        return NULL;
    }
    return s.p;
}

/*
 * IN: the field equals one of args. `strict`: never NULL (for NIN's NOT). A text or date column
 * uses its index: "col IN (?, ...)", or json_each of one parameter for long lists.
 */
static void sqlitedb_in(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const value_t *const *args,
                        size_t n, int strict)
{
    int kind = o->kind == OPD_TEXT ? CPAR__QUERY_VALUE__KIND_TEXT : CPAR__QUERY_VALUE__KIND_DATE;
    size_t matching = 0;
    int null = 0, any = 0;

    if (o->kind != OPD_TEXT && o->kind != OPD_DATE) {
        sqlitedb_add(b, "(0");
        for (size_t i = 0; i < n; i++) {
            sqlitedb_add(b, " OR ");
            sqlitedb_eq(b, o, args[i]);
        }
        sqlitedb_add(b, ")");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((int)args[i]->kind_case == kind)
            matching++;
        null |= args[i]->kind_case == CPAR__QUERY_VALUE__KIND_NULL;
    }
    sqlitedb_add(b, "(");
    if (matching) {
        sqlitedb_add(b, strict ? "coalesce(" : "");
        sqlitedb_add_col(b, o);
        if (matching > SQLITEDB_IN_PARAMS) {
            char *list = sqlitedb_own(b, sqlitedb_json_list(args, n, kind));

            sqlitedb_add(b, " IN (SELECT value FROM json_each(");
            sqlitedb_add_param(b, list ? sqlitedb_param_text(b, list) : 0);
            sqlitedb_add(b, "))");
        } else {
            sqlitedb_add(b, " IN (");
            for (size_t i = 0, first = 1; i < n; i++) {
                if ((int)args[i]->kind_case != kind)
                    continue;
                if (!first)
                    sqlitedb_add(b, ", ");
                first = 0;
                sqlitedb_add_param(b, sqlitedb_value_param(b, args[i]));
            }
            sqlitedb_add(b, ")");
        }
        sqlitedb_add(b, strict ? ", 0)" : "");
        any = 1;
    }
    if (null) {
        sqlitedb_add(b, any ? " OR " : "");
        sqlitedb_is_null(b, o);
        any = 1;
    }
    sqlitedb_add(b, any ? ")" : "0)");
}

/*
 * ALL, as MongoDB has it: every argument equals the value or, when the value is a JSON list, is
 * one of its elements. No arguments match nothing.
 */
static void sqlitedb_all(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const value_t *const *args,
                         size_t n)
{
    sqlitedb_add(b, n ? "(1" : "(0");
    for (size_t i = 0; i < n; i++) {
        sqlitedb_add(b, " AND (");
        sqlitedb_eq(b, o, args[i]);
        if (sqlitedb_is_json(o)) {
            sqlitedb_add(b, " OR (");
            sqlitedb_add_jtype(b, o);
            sqlitedb_add(b, " IS 'array' AND EXISTS (SELECT 1 FROM json_each(");
            sqlitedb_add_doc(b, o);
            sqlitedb_add(b, ", ");
            sqlitedb_add_path(b, o);
            sqlitedb_add(b, ") AS e WHERE ");
            sqlitedb_elem_eq(b, args[i]);
            sqlitedb_add(b, "))");
        }
        sqlitedb_add(b, ")");
    }
    sqlitedb_add(b, ")");
}

/* MOD: integers, and reals truncated toward zero (within int64_t), with C's truncating %. */
static void sqlitedb_mod(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, const value_t *d,
                         const value_t *r)
{
    int pd, pr;

    if (!sqlitedb_is_json(o)) {
        sqlitedb_add(b, "0"); /* no column holds numbers */
        return;
    }
    pd = sqlitedb_value_param(b, d);
    pr = sqlitedb_value_param(b, r);
    sqlitedb_add(b, "(");
    sqlitedb_add_jtype_in(b, o, "'integer', 'real'");
    sqlitedb_add(b, " AND (typeof(");
    sqlitedb_add_jval(b, o);
    sqlitedb_add(b, ") = 'integer' OR abs(");
    sqlitedb_add_jval(b, o);
    sqlitedb_add(b, ") < 9.2e18) AND CAST(");
    sqlitedb_add_jval(b, o);
    sqlitedb_add(b, " AS INTEGER) % ");
    sqlitedb_add_param(b, pd);
    sqlitedb_add(b, " = ");
    sqlitedb_add_param(b, pr);
    sqlitedb_add(b, ")");
}

/* REGEX (POSIX ERE search) and GLOB (fnmatch(3)) over text. */
static void sqlitedb_search(sqlitedb_wb_t *b, const sqlitedb_opd_t *o, int regex, const value_t *v)
{
    int p;

    if (o->kind != OPD_TEXT && !sqlitedb_is_json(o)) {
        sqlitedb_add(b, "0");
        return;
    }
    p = sqlitedb_value_param(b, v);
    sqlitedb_add(b, "(");
    if (sqlitedb_is_json(o)) {
        sqlitedb_add_jtype(b, o);
        sqlitedb_add(b, " IS 'text' AND ");
    }
    if (regex) {
        sqlitedb_add_text(b, o);
        sqlitedb_add(b, " REGEXP ");
        sqlitedb_add_param(b, p);
    } else {
        sqlitedb_add(b, "cpar_glob(");
        sqlitedb_add_param(b, p);
        sqlitedb_add(b, ", ");
        sqlitedb_add_text(b, o);
        sqlitedb_add(b, ")");
    }
    sqlitedb_add(b, ")");
}

/* ---- terms -------------------------------------------------------------------------------- */

/* What a key denotes: a column, or a JSON path into one. */
static int sqlitedb_operand(sqlitedb_wb_t *b, const char *key, sqlitedb_opd_t *o)
{
    const char *dot = strchr(key, '.');
    size_t n = dot ? (size_t)(dot - key) : strlen(key);
    const ProtobufCFieldDescriptor *f = NULL;
    sqlitedb_str_t path = {0};
    char name[64];
    uint32_t bit;

    if (n < sizeof name) {
        memcpy(name, key, n);
        name[n] = '\0';
        f = sqlitedb_field_named(name);
    }
    if (!f)
        return sqlitedb_bad(b, CPAR_EINVAL, "%s", "no such record field");
    o->col = f->name;
    bit = sqlitedb_field_bit(f);
    if (!dot) {
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            o->kind = OPD_LIST;
        else if (f->type != PROTOBUF_C_TYPE_STRING)
            o->kind = OPD_DATE;
        else
            o->kind = bit & SQLITEDB_JSON_FIELDS ? OPD_JSON : OPD_TEXT;
        return 0;
    }
    if (!(bit & SQLITEDB_JSON_FIELDS))
        return sqlitedb_bad(b, CPAR_EINVAL, "%s", "only JSON fields have members");
    /* $."a"."b": SQLite's JSON paths have no escapes, so a name holding '"' is out of reach. */
    sqlitedb_str_add(&path, "$");
    for (const char *c = dot; c;) {
        const char *next = strchr(c + 1, '.');
        size_t len = next ? (size_t)(next - c - 1) : strlen(c + 1);

        if (len == 0 || memchr(c + 1, '"', len)) {
            sqlitedb_str_free(&path);
            if (len == 0)
                return sqlitedb_bad(b, CPAR_EINVAL, "%s", "an empty member name");
            return sqlitedb_bad(b, CPAR_ENOTSUP, "%s",
                                "the SQLite backend cannot look up a member name with '\"'");
        }
        sqlitedb_str_addf(&path, ".\"%.*s\"", (int)len, c + 1);
        c = next;
    }
    o->kind = OPD_PATH;
    if (path.oom) {
        sqlitedb_str_free(&path);
        b->rc = CPAR_ENOMEM;
        return b->rc;
    }
    if (!sqlitedb_own(b, path.p))
        return b->rc;
    o->path = sqlitedb_param_text(b, path.p);
    return b->rc;
}

/* The arguments fit the operator (the hub's parser has checked; a plugin checks again). */
static int sqlitedb_args_ok(sqlitedb_wb_t *b, const cpar_query_term_t *t)
{
    const value_t *const *args = (const value_t *const *)t->args;
    size_t n = t->n_args;

    if (n && !args)
        return sqlitedb_bad(b, CPAR_EINVAL, "%s", "arguments missing");
    for (size_t i = 0; i < n; i++)
        if (!sqlitedb_value_ok(b, args[i]))
            return b->rc;
    switch (t->op) {
    case CPAR__QUERY_TERM__OP__IN:
    case CPAR__QUERY_TERM__OP__NIN:
    case CPAR__QUERY_TERM__OP__ALL:
        return 0;
    case CPAR__QUERY_TERM__OP__MOD:
        if (n == 2 && args[0]->kind_case == CPAR__QUERY_VALUE__KIND_INTEGER &&
            args[1]->kind_case == CPAR__QUERY_VALUE__KIND_INTEGER && args[0]->integer != 0)
            return 0;
        return sqlitedb_bad(b, CPAR_EINVAL, "%s",
                            "MOD takes a non-zero integer divisor and an integer remainder");
    case CPAR__QUERY_TERM__OP__EXISTS:
        if (n == 1 && args[0]->kind_case == CPAR__QUERY_VALUE__KIND_BOOLEAN)
            return 0;
        return sqlitedb_bad(b, CPAR_EINVAL, "%s", "EXISTS takes one boolean");
    case CPAR__QUERY_TERM__OP__REGEX:
    case CPAR__QUERY_TERM__OP__GLOB:
        if (n == 1 && args[0]->kind_case == CPAR__QUERY_VALUE__KIND_TEXT)
            break;
        return sqlitedb_bad(b, CPAR_EINVAL, "%s", "REGEX and GLOB take one text");
    case CPAR__QUERY_TERM__OP__EQ:
    case CPAR__QUERY_TERM__OP__NE:
    case CPAR__QUERY_TERM__OP__LT:
    case CPAR__QUERY_TERM__OP__GT:
    case CPAR__QUERY_TERM__OP__LTE:
    case CPAR__QUERY_TERM__OP__GTE:
        return n == 1 ? 0 : sqlitedb_bad(b, CPAR_EINVAL, "%s", "the operator takes one value");
    default:
        return sqlitedb_bad(b, CPAR_ENOTSUP, "%s", "an operator this backend does not know");
    }
    if (t->op == CPAR__QUERY_TERM__OP__REGEX) {
        regex_t re;
        int rc = regcomp(&re, args[0]->text, REG_EXTENDED | REG_NOSUB);

        if (rc) {
            char msg[256];

            regerror(rc, &re, msg, sizeof msg);
            return sqlitedb_bad(b, CPAR_EINVAL, "bad regular expression: %s", msg);
        }
        regfree(&re);
    }
    return 0;
}

static int sqlitedb_term(sqlitedb_wb_t *b, const cpar_query_term_t *t)
{
    static const char *const order_ops[] = {"<", ">", "<=", ">="};
    const value_t *const *args = (const value_t *const *)t->args;
    size_t n = t->n_args;
    sqlitedb_opd_t o = {0};

    b->key = t->key ? t->key : "";
    if (sqlitedb_args_ok(b, t) || sqlitedb_operand(b, b->key, &o))
        return b->rc;
    switch (t->op) {
    case CPAR__QUERY_TERM__OP__EQ:
        sqlitedb_eq(b, &o, args[0]);
        break;
    case CPAR__QUERY_TERM__OP__NE:
        sqlitedb_add(b, "NOT ");
        sqlitedb_eq(b, &o, args[0]);
        break;
    case CPAR__QUERY_TERM__OP__LT:
    case CPAR__QUERY_TERM__OP__GT:
    case CPAR__QUERY_TERM__OP__LTE:
    case CPAR__QUERY_TERM__OP__GTE:
        sqlitedb_order(b, &o, order_ops[t->op - CPAR__QUERY_TERM__OP__LT], args[0]);
        break;
    case CPAR__QUERY_TERM__OP__IN:
        if (n)
            sqlitedb_in(b, &o, args, n, 0);
        else
            sqlitedb_add(b, "0");
        break;
    case CPAR__QUERY_TERM__OP__NIN:
        if (n) {
            sqlitedb_add(b, "NOT ");
            sqlitedb_in(b, &o, args, n, 1);
        } else {
            sqlitedb_add(b, "1");
        }
        break;
    case CPAR__QUERY_TERM__OP__ALL:
        sqlitedb_all(b, &o, args, n);
        break;
    case CPAR__QUERY_TERM__OP__MOD:
        sqlitedb_mod(b, &o, args[0], args[1]);
        break;
    case CPAR__QUERY_TERM__OP__EXISTS:
        sqlitedb_add(b, args[0]->boolean ? "NOT " : "");
        sqlitedb_is_null(b, &o);
        break;
    default: /* REGEX, GLOB */
        sqlitedb_search(b, &o, t->op == CPAR__QUERY_TERM__OP__REGEX, args[0]);
        break;
    }
    return b->rc;
}

int sqlitedb_where_build(sqlitedb_t *db, const cpar_query_t *q, sqlitedb_where_t *w)
{
    sqlitedb_wb_t b = {.db = db, .w = w, .key = "", .rc = 0};

    memset(w, 0, sizeof *w);
    sqlitedb_str_add(&w->sql, "");
    for (size_t i = 0; q && i < q->n_terms && !b.rc; i++) {
        sqlitedb_add(&b, i ? " AND " : " WHERE ");
        if (!q->terms[i])
            sqlitedb_bad(&b, CPAR_EINVAL, "%s", "an empty term");
        else
            sqlitedb_term(&b, q->terms[i]);
    }
    if (!b.rc && w->sql.oom)
        b.rc = CPAR_ENOMEM;
    if (b.rc == CPAR_ENOMEM)
        sqlitedb_fail(db, CPAR_ENOMEM, "out of memory compiling a query");
    if (b.rc)
        sqlitedb_where_free(w);
    return b.rc;
}

int sqlitedb_where_bind(sqlitedb_t *db, sqlite3_stmt *stmt, const sqlitedb_where_t *w)
{
    /* A term that compiled to a constant leaves its key's path parameter unused. */
    size_t used = (size_t)sqlite3_bind_parameter_count(stmt);

    for (size_t i = 0; i < w->nparams && i < used; i++) {
        const sqlitedb_param_t *p = &w->params[i];
        int idx = (int)i + 1, rc;

        if (p->type == SQLITEDB_P_INT)
            rc = sqlite3_bind_int64(stmt, idx, p->i);
        else if (p->type == SQLITEDB_P_REAL)
            rc = sqlite3_bind_double(stmt, idx, p->d);
        else
            rc = sqlite3_bind_text(stmt, idx, p->s, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
            return sqlitedb_fail(db, CPAR_EIO, "cannot bind query parameter %d: %s", idx,
                                 sqlite3_errstr(rc));
    }
    return 0;
}

void sqlitedb_where_free(sqlitedb_where_t *w)
{
    sqlitedb_str_free(&w->sql);
    free(w->params);
    for (size_t i = 0; i < w->nowned; i++)
        free(w->owned[i]);
    free(w->owned);
    memset(w, 0, sizeof *w);
}
