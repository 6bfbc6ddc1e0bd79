/*
 * json.c - the record's JSON text fields as BSON documents and back.
 *
 * Records carry dict fields as JSON text; the MongoDB backend stores them as sub-documents, so
 * that dotted queries ("header.msg_type") run in the server. JSON text is parsed with jansson,
 * which keeps the order of keys, and built into BSON by hand rather than with
 * bson_new_from_json, which would read {"$date": ...} and friends as extended JSON. The way back
 * writes plain JSON (never extended JSON) in one of two styles: compact, as the hub writes, or
 * with Python's default separators (", " and ": "), as clients write.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mongodb.h"

/* ---- JSON text -> BSON ------------------------------------------------------------------- */

static int json_key_storable(const char *key, size_t len)
{
    return len > 0 && key[0] != '$' && !memchr(key, '.', len) && strlen(key) == len;
}

static int json_append_value(bson_t *b, const char *key, size_t klen, json_t *v);

static int json_append_members(bson_t *b, json_t *v)
{
    if (json_is_object(v)) {
        const char *key;
        json_t *member;
        json_object_foreach(v, key, member)
        {
            size_t klen = strlen(key);
            int rc;
            if (!json_key_storable(key, klen))
                return CPAR_EINVAL;
            if ((rc = json_append_value(b, key, klen, member)) != 0)
                return rc;
        }
        return 0;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        char buf[16];
        const char *key;
        size_t klen = bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
        int rc = json_append_value(b, key, klen, json_array_get(v, i));
        if (rc)
            return rc;
    }
    return 0;
}

static int json_append_value(bson_t *b, const char *key, size_t klen, json_t *v)
{
    int ok = 1, rc = 0;
    bson_t child;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        ok = json_is_object(v) ? bson_append_document_begin(b, key, (int)klen, &child)
                               : bson_append_array_begin(b, key, (int)klen, &child);
        if (!ok)
            return CPAR_E2BIG;
        rc = json_append_members(&child, v);
        ok = json_is_object(v) ? bson_append_document_end(b, &child)
                               : bson_append_array_end(b, &child);
        break;
    case JSON_STRING:
        ok = bson_append_utf8(b, key, (int)klen, json_string_value(v), (int)json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);
        if (n >= INT32_MIN && n <= INT32_MAX)
            ok = bson_append_int32(b, key, (int)klen, (int32_t)n);
        else
            ok = bson_append_int64(b, key, (int)klen, (int64_t)n);
        break;
    }
    case JSON_REAL:
        ok = bson_append_double(b, key, (int)klen, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        ok = bson_append_bool(b, key, (int)klen, json_is_true(v));
        break;
    case JSON_NULL:
        ok = bson_append_null(b, key, (int)klen);
        break;
    }
    if (rc)
        return rc;
    return ok ? 0 : CPAR_E2BIG;
}

static json_t *json_parse(const char *text, int any)
{
    return json_loads(text, JSON_ALLOW_NUL | (any ? JSON_DECODE_ANY : 0), NULL);
}

int mongodb_json_to_bson(const char *text, bson_t *out, int *style)
{
    json_t *v = json_parse(text, 0);
    int rc;

    *style = MONGODB_JSON_VERBATIM;
    if (!json_is_object(v)) {
        json_decref(v);
        return CPAR_EINVAL;
    }
    rc = json_append_members(out, v);
    json_decref(v);
    if (rc) {
        bson_reinit(out);
        return CPAR_EINVAL;
    }
    for (int spaced = 0; spaced <= 1; spaced++) {
        char *back = mongodb_json_from_bson(out, spaced);
        if (!back)
            return CPAR_ENOMEM;
        rc = strcmp(back, text);
        free(back);
        if (rc == 0) {
            *style = spaced ? MONGODB_JSON_SPACED : MONGODB_JSON_COMPACT;
            break;
        }
    }
    return 0;
}

int mongodb_json_append(bson_t *b, const char *key, const char *text)
{
    json_t *v = json_parse(text, 1);
    int rc;

    if (!v)
        return CPAR_EINVAL;
    rc = json_append_value(b, key, strlen(key), v);
    json_decref(v);
    return rc;
}

/* ---- BSON -> JSON text ------------------------------------------------------------------- */

typedef struct json_out {
    char *data;
    size_t len, cap;
    int failed;
    const char *comma, *colon; /* the separators of the style */
} json_out_t;

static void out_put(json_out_t *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t ncap = o->cap ? o->cap : 64;
        char *nd;
        while (ncap < o->len + n + 1)
            ncap *= 2;
        nd = realloc(o->data, ncap);
        if (!nd) {
            o->failed = 1;
            return;
        }
        o->data = nd;
        o->cap = ncap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
    o->data[o->len] = '\0';
}

static void out_str(json_out_t *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_quoted(json_out_t *o, const char *s, size_t n)
{
    size_t start = 0;

    out_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out_put(o, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"':
            out_put(o, "\\\"", 2);
            break;
        case '\\':
            out_put(o, "\\\\", 2);
            break;
        case '\b':
            out_put(o, "\\b", 2);
            break;
        case '\f':
            out_put(o, "\\f", 2);
            break;
        case '\n':
            out_put(o, "\\n", 2);
            break;
        case '\r':
            out_put(o, "\\r", 2);
            break;
        case '\t':
            out_put(o, "\\t", 2);
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            out_put(o, esc, 6);
        }
    }
    out_put(o, s + start, n - start);
    out_put(o, "\"", 1);
}

/* A double as Python's repr writes it: the shortest text that reads back as the same value. */
static void out_real(json_out_t *o, double v)
{
    char buf[64];
    int digits, exp10;

    if (!isfinite(v)) {
        out_str(o, "null"); /* JSON has no NaN or infinity */
        return;
    }
    for (digits = 1; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, v);
    exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 < -4 || exp10 >= 16) {
        out_str(o, buf); /* 1e+16, 1.5e-07: as C writes them */
        return;
    }
    snprintf(buf, sizeof buf, "%.*f", digits - 1 - exp10 > 0 ? digits - 1 - exp10 : 0, v);
    out_str(o, buf);
    if (!strchr(buf, '.'))
        out_str(o, ".0");
}

static void out_base64(json_out_t *o, const uint8_t *p, uint32_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    out_put(o, "\"", 1);
    for (uint32_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tab[w >> 18 & 63], tab[w >> 12 & 63], i + 1 < n ? tab[w >> 6 & 63] : '=',
                     i + 2 < n ? tab[w & 63] : '='};
        out_put(o, q, 4);
    }
    out_put(o, "\"", 1);
}

static void out_date(json_out_t *o, int64_t ms)
{
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    int64_t frac = ms - secs * 1000;
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t rem = secs - days * 86400;
    /* civil_from_days (Howard Hinnant) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    char buf[160];

    snprintf(buf, sizeof buf, "\"%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lld000Z\"",
             (long long)y, (long long)m, (long long)d, (long long)(rem / 3600),
             (long long)(rem / 60 % 60), (long long)(rem % 60), (long long)frac);
    out_str(o, buf);
}

static void out_value(json_out_t *o, const bson_iter_t *it);

static void out_members(json_out_t *o, bson_iter_t *child, int is_array)
{
    int first = 1;

    out_put(o, is_array ? "[" : "{", 1);
    while (bson_iter_next(child)) {
        if (!first)
            out_str(o, o->comma);
        first = 0;
        if (!is_array) {
            out_quoted(o, bson_iter_key(child), bson_iter_key_len(child));
            out_str(o, o->colon);
        }
        out_value(o, child);
    }
    out_put(o, is_array ? "]" : "}", 1);
}

static void out_value(json_out_t *o, const bson_iter_t *it)
{
    char buf[32];

    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
        bson_iter_t child;
        if (bson_iter_recurse(it, &child))
            out_members(o, &child, bson_iter_type(it) == BSON_TYPE_ARRAY);
        else
            out_str(o, "null");
        break;
    }
    case BSON_TYPE_UTF8: {
        uint32_t n;
        const char *s = bson_iter_utf8(it, &n);
        out_quoted(o, s, n);
        break;
    }
    case BSON_TYPE_INT32:
        snprintf(buf, sizeof buf, "%d", (int)bson_iter_int32(it));
        out_str(o, buf);
        break;
    case BSON_TYPE_INT64:
        snprintf(buf, sizeof buf, "%lld", (long long)bson_iter_int64(it));
        out_str(o, buf);
        break;
    case BSON_TYPE_DOUBLE:
        out_real(o, bson_iter_double(it));
        break;
    case BSON_TYPE_BOOL:
        out_str(o, bson_iter_bool(it) ? "true" : "false");
        break;
    case BSON_TYPE_DATE_TIME:
        out_date(o, bson_iter_date_time(it));
        break;
    case BSON_TYPE_OID: {
        char hex[25];
        bson_oid_to_string(bson_iter_oid(it), hex);
        out_quoted(o, hex, 24);
        break;
    }
    case BSON_TYPE_BINARY: {
        const uint8_t *p;
        uint32_t n;
        bson_subtype_t sub;
        bson_iter_binary(it, &sub, &n, &p);
        out_base64(o, p, n);
        break;
    }
    default:
        out_str(o, "null");
    }
}

static char *json_finish(json_out_t *o)
{
    if (o->failed) {
        free(o->data);
        return NULL;
    }
    return o->data;
}

char *mongodb_json_from_iter(const bson_iter_t *it, int spaced)
{
    json_out_t o = {.comma = spaced ? ", " : ",", .colon = spaced ? ": " : ":"};

    out_value(&o, it);
    return json_finish(&o);
}

char *mongodb_json_from_bson(const bson_t *doc, int spaced)
{
    json_out_t o = {.comma = spaced ? ", " : ",", .colon = spaced ? ": " : ":"};
    bson_iter_t it;

    if (!bson_iter_init(&it, doc))
        return NULL;
    out_members(&o, &it, 0);
    return json_finish(&o);
}
