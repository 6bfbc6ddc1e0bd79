/*
 * mongodb.c - cpar_dbbackend_mongodb.so: ipyparallel's MongoDB backend, the task records in the
 * collection task_records of a MongoDB database, through libmongoc's pooled client.
 *
 * One document per record (docs/mongodb.md has the whole shape):
 *
 * - text fields as strings; absent fields are left out of the document;
 * - dict fields (header, metadata, ...) as sub-documents, so that dotted queries run in the
 *   server. When the JSON text would not come back byte for byte from the sub-document, a
 *   bookkeeping field "_<field>_json" says how: 1 for Python's spacing (", " and ": "), or the
 *   text itself. Text that cannot be a document (keys with '.' or a leading '$') is stored as a
 *   string;
 * - datetimes as BSON datetimes (milliseconds, rounded down) plus the exact microseconds in
 *   "_<field>_us"; queries compare both;
 * - buffers as arrays of BSON binary while a field holds at most MONGODB_INLINE_MAX bytes; larger
 *   ones go to the collection task_record_buffers in chunks (a document may not exceed 16 MiB),
 *   and the record holds {lens: [...]} and "_<field>_gen", the ObjectId its chunks carry;
 * - "_seq", the insertion order that breaks ties of `submitted` in the history.
 *
 * Queries run in the server as far as MongoDB means what query.proto means (query.c); where it
 * does not (mostly inside JSON values), the server selects candidates and cpar_query_match, the
 * SDK's reference matcher, decides.
 *
 * Every operation is a synchronous round trip on the reactor thread, bounded by short timeouts
 * (serverSelectionTimeoutMS 2000, connectTimeoutMS 2000, socketTimeoutMS 10000 unless the
 * settings say otherwise). Once the server could not be reached, operations fail at once until
 * libmongoc's background monitor sees it again, so that a dead server does not stall the hub.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/query.h>
#include <mongoc/mongoc.h>

#include "mongodb.h"

#define MONGODB_SECTION "MongoDB"
#define MONGODB_DEFAULT_DATABASE "ipython-tasks"
#define MONGODB_RECORDS "task_records"
#define MONGODB_CHUNKS "task_record_buffers"
/* A buffer field of up to this many bytes stays in the record's document. */
#define MONGODB_INLINE_MAX (UINT64_C(1) << 20)
/* Bytes per chunk of a larger one. */
#define MONGODB_CHUNK_MAX ((size_t)4 << 20)
#define MONGODB_SELECT_MS 2000
#define MONGODB_CONNECT_MS 2000
#define MONGODB_SOCKET_MS 10000
/* msg_ids per delete of drop_matching. */
#define MONGODB_DROP_BATCH 1000

#ifndef CPAR_MONGODB_VERSION
#define CPAR_MONGODB_VERSION "0"
#endif

_Static_assert(CPAR_REC_HEADER == 1u << (2 - 2) && CPAR_REC_LABEL == 1u << (24 - 2),
               "cpar_record_field_t bits follow record.proto field numbers");

typedef struct mongodb {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    char *display; /* the connection string without its password, for messages */
    char *database;
    int ready;       /* the indexes exist: the server answered once */
    int unreachable; /* the last attempt found no server: fail at once until one answers */
    char why[512];   /* what that attempt said */
    int64_t last_seq;
} mongodb_t;

/* One pooled client and the two collections, for the duration of an operation. */
typedef struct mongodb_conn {
    mongoc_client_t *client;
    mongoc_collection_t *records, *chunks;
} mongodb_conn_t;

typedef enum mongodb_kind { MF_ID, MF_TEXT, MF_JSON, MF_DATE, MF_BYTES } mongodb_kind_t;

#define MONGODB_AT(rec, off) ((void *)((char *)(rec) + (off)))

static uint32_t mongodb_field_bit(const ProtobufCFieldDescriptor *f)
{
    return f->id >= 2 && f->id < 2 + 32 ? 1u << (f->id - 2) : 0;
}

static mongodb_kind_t mongodb_kind(const ProtobufCFieldDescriptor *f)
{
    uint32_t bit = mongodb_field_bit(f);

    if (f->id == 1)
        return MF_ID;
    if (bit & CPAR_REC_BUFFER_FIELDS)
        return MF_BYTES;
    if (bit & CPAR_REC_DATE_FIELDS)
        return MF_DATE;
    return bit & CPAR_REC_JSON_FIELDS ? MF_JSON : MF_TEXT;
}

/* ---- errors and connections ------------------------------------------------------------- */

static void mongodb_one_line(char *dst, size_t len, const char *src)
{
    size_t i = 0;

    for (; src[i] && i + 1 < len; i++)
        dst[i] = src[i] == '\n' || src[i] == '\r' ? ' ' : src[i];
    dst[i] = '\0';
}

static int mongodb_too_big(const bson_error_t *e)
{
    return (e->domain == MONGOC_ERROR_BSON && e->code == MONGOC_ERROR_BSON_INVALID) ||
           (e->domain == MONGOC_ERROR_CLIENT && e->code == MONGOC_ERROR_CLIENT_TOO_BIG) ||
           e->code == 10334 /* BSONObjectTooLarge */ || e->code == 17419 /* update too large */;
}

static int mongodb_duplicate(const bson_error_t *e)
{
    return e->domain != MONGOC_ERROR_SERVER_SELECTION && e->domain != MONGOC_ERROR_STREAM &&
           (e->code == 11000 || e->code == 11001 || e->code == 12582);
}

/* Explain a libmongoc failure; returns the code. */
static int mongodb_fail(mongodb_t *db, const bson_error_t *e)
{
    char msg[sizeof e->message];

    mongodb_one_line(msg, sizeof msg, e->message);
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION) {
        db->unreachable = 1;
        mongodb_one_line(db->why, sizeof db->why, msg);
        db->host->set_error(db->ctx, "cannot reach MongoDB at %s: %s", db->display, msg);
        return CPAR_EIO;
    }
    db->host->set_error(db->ctx, "MongoDB at %s (database %s): %s", db->display, db->database, msg);
    return mongodb_too_big(e) ? CPAR_E2BIG : CPAR_EIO;
}

/* While the server is known to be unreachable: 1 once the monitor has seen it answer again. */
static int mongodb_reachable(mongodb_t *db, mongoc_client_t *client)
{
    mongoc_server_description_t **sds;
    size_t n = 0;
    int known = 0;

    if (!db->unreachable)
        return 1;
    sds = mongoc_client_get_server_descriptions(client, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(mongoc_server_description_type(sds[i]), "Unknown") != 0)
            known = 1;
    mongoc_server_descriptions_destroy_all(sds, n);
    if (known)
        db->unreachable = 0;
    return known;
}

static void mongodb_end(mongodb_t *db, mongodb_conn_t *c)
{
    mongoc_collection_destroy(c->records);
    mongoc_collection_destroy(c->chunks);
    if (c->client)
        mongoc_client_pool_push(db->pool, c->client);
    memset(c, 0, sizeof *c);
}

/* Create the indexes (once per instance): the first contact with the server. */
static int mongodb_prepare(mongodb_t *db, mongodb_conn_t *c)
{
    /* clang-format off */
    bson_t *records = BCON_NEW(
        "createIndexes", BCON_UTF8(MONGODB_RECORDS), "indexes", "[",
        "{", "key", "{", "msg_id", BCON_INT32(1), "}", "name", BCON_UTF8("msg_id_1"), "unique",
        BCON_BOOL(true), "}",
        "{", "key", "{", "submitted", BCON_INT32(1), "_submitted_us", BCON_INT32(1), "_seq",
        BCON_INT32(1), "}", "name", BCON_UTF8("submitted_1__submitted_us_1__seq_1"), "}",
        "{", "key", "{", "completed", BCON_INT32(1), "}", "name", BCON_UTF8("completed_1"), "}",
        "{", "key", "{", "engine_uuid", BCON_INT32(1), "}", "name", BCON_UTF8("engine_uuid_1"),
        "}", "]");
    bson_t *chunks = BCON_NEW(
        "createIndexes", BCON_UTF8(MONGODB_CHUNKS), "indexes", "[",
        "{", "key", "{", "msg_id", BCON_INT32(1), "field", BCON_INT32(1), "gen", BCON_INT32(1),
        "n", BCON_INT32(1), "}", "name", BCON_UTF8("msg_id_1_field_1_gen_1_n_1"), "}", "]");
    /* clang-format on */
    bson_error_t e;
    int rc = 0;

    if (!mongoc_collection_write_command_with_opts(c->records, records, NULL, NULL, &e) ||
        !mongoc_collection_write_command_with_opts(c->chunks, chunks, NULL, NULL, &e))
        rc = mongodb_fail(db, &e);
    bson_destroy(records);
    bson_destroy(chunks);
    if (rc == 0) {
        db->ready = 1;
        db->host->log(db->ctx, CPAR_LOG_INFO, "task records in MongoDB at %s, database %s",
                      db->display, db->database);
    }
    return rc;
}

static int mongodb_begin(mongodb_t *db, mongodb_conn_t *c)
{
    int rc;

    memset(c, 0, sizeof *c);
    c->client = mongoc_client_pool_pop(db->pool);
    if (!c->client) {
        db->host->set_error(db->ctx, "no MongoDB client available");
        return CPAR_EIO;
    }
    if (!mongodb_reachable(db, c->client)) {
        mongodb_end(db, c);
        db->host->set_error(db->ctx, "cannot reach MongoDB at %s: %s", db->display, db->why);
        return CPAR_EIO;
    }
    c->records = mongoc_client_get_collection(c->client, db->database, MONGODB_RECORDS);
    c->chunks = mongoc_client_get_collection(c->client, db->database, MONGODB_CHUNKS);
    if (!db->ready && (rc = mongodb_prepare(db, c)) != 0) {
        mongodb_end(db, c);
        return rc;
    }
    return 0;
}

/* mongodb_begin for writing `rec`, which must have a msg_id. */
static int mongodb_begin_write(mongodb_t *db, const cpar_record_t *rec, mongodb_conn_t *c)
{
    if (!rec || !rec->msg_id) {
        db->host->set_error(db->ctx, "record without msg_id");
        return CPAR_EINVAL;
    }
    return mongodb_begin(db, c);
}

/* ---- records -> documents --------------------------------------------------------------- */

/* A large buffer field on its way to the chunk collection. */
typedef struct mongodb_chunked {
    const char *field;
    bson_oid_t gen;
    const ProtobufCBinaryData *items;
    size_t n;
} mongodb_chunked_t;

/* What writing some fields of a record takes. */
typedef struct mongodb_put {
    bson_t *set;   /* the fields' new values */
    bson_t *unset; /* fields to remove (an update), or NULL (a new document) */
    mongodb_chunked_t chunked[2];
    size_t nchunked;
    int ok; /* 0 once an append failed: the document is too large */
} mongodb_put_t;

static void mongodb_unset(mongodb_put_t *p, const char *key)
{
    if (p->unset)
        p->ok &= BSON_APPEND_UTF8(p->unset, key, "");
}

static int mongodb_put_json(mongodb_put_t *p, const char *name, const char *text)
{
    char extra[MONGODB_EXTRA_MAX];
    bson_t sub;
    int style, rc;

    mongodb_extra_name(extra, name, MONGODB_JSON_SUFFIX);
    if (!text) {
        mongodb_unset(p, name);
        mongodb_unset(p, extra);
        return 0;
    }
    bson_init(&sub);
    rc = mongodb_json_to_bson(text, &sub, &style);
    if (rc == CPAR_ENOMEM) {
        bson_destroy(&sub);
        return rc;
    }
    if (rc == 0) {
        p->ok &= BSON_APPEND_DOCUMENT(p->set, name, &sub);
        if (style == MONGODB_JSON_COMPACT)
            mongodb_unset(p, extra);
        else if (style == MONGODB_JSON_SPACED)
            p->ok &= BSON_APPEND_INT32(p->set, extra, 1);
        else
            p->ok &= BSON_APPEND_UTF8(p->set, extra, text);
    } else {
        p->ok &= BSON_APPEND_UTF8(p->set, name, text); /* not storable as a document */
        mongodb_unset(p, extra);
    }
    bson_destroy(&sub);
    return 0;
}

static void mongodb_put_bytes(mongodb_put_t *p, const char *name, const ProtobufCBinaryData *items,
                              size_t n)
{
    static const uint8_t empty[1];
    char extra[MONGODB_EXTRA_MAX];
    mongodb_chunked_t *ch;
    uint64_t total = 0;
    bson_t arr, sub;

    mongodb_extra_name(extra, name, MONGODB_GEN_SUFFIX);
    for (size_t i = 0; i < n; i++)
        total += items[i].len;
    if (total <= MONGODB_INLINE_MAX) {
        mongodb_unset(p, extra);
        if (!n) {
            mongodb_unset(p, name);
            return;
        }
        p->ok &= BSON_APPEND_ARRAY_BEGIN(p->set, name, &arr);
        for (size_t i = 0; i < n && p->ok; i++) {
            char idx[16];
            const char *key;
            size_t klen = bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
            p->ok &=
                bson_append_binary(&arr, key, (int)klen, BSON_SUBTYPE_BINARY,
                                   items[i].len ? items[i].data : empty, (uint32_t)items[i].len);
        }
        p->ok &= bson_append_array_end(p->set, &arr);
        return;
    }
    ch = &p->chunked[p->nchunked++];
    ch->field = name;
    bson_oid_init(&ch->gen, NULL);
    ch->items = items;
    ch->n = n;
    p->ok &= BSON_APPEND_DOCUMENT_BEGIN(p->set, name, &sub);
    p->ok &= BSON_APPEND_ARRAY_BEGIN(&sub, "lens", &arr);
    for (size_t i = 0; i < n && p->ok; i++) {
        char idx[16];
        const char *key;
        size_t klen = bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
        p->ok &= bson_append_int64(&arr, key, (int)klen, (int64_t)items[i].len);
    }
    p->ok &= bson_append_array_end(&sub, &arr);
    p->ok &= bson_append_document_end(p->set, &sub);
    p->ok &= BSON_APPEND_OID(p->set, extra, &ch->gen);
}

/* Add the fields `mask` names (msg_id aside) to p->set, or to p->unset when absent. */
static int mongodb_put_fields(mongodb_put_t *p, const cpar_record_t *rec, uint32_t mask)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;

    p->ok = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *at = MONGODB_AT(rec, f->offset);
        char extra[MONGODB_EXTRA_MAX];
        int rc;
        if (!(mask & mongodb_field_bit(f)))
            continue;
        switch (mongodb_kind(f)) {
        case MF_ID:
            break;
        case MF_TEXT:
            if (*(char *const *)at)
                p->ok &= BSON_APPEND_UTF8(p->set, f->name, *(char *const *)at);
            else
                mongodb_unset(p, f->name);
            break;
        case MF_JSON:
            if ((rc = mongodb_put_json(p, f->name, *(char *const *)at)) != 0)
                return rc;
            break;
        case MF_DATE:
            mongodb_extra_name(extra, f->name, MONGODB_US_SUFFIX);
            if (*(const protobuf_c_boolean *)MONGODB_AT(rec, f->quantifier_offset)) {
                int64_t us = *(const int64_t *)at;
                p->ok &= BSON_APPEND_DATE_TIME(p->set, f->name, mongodb_us_to_ms(us));
                p->ok &= BSON_APPEND_INT64(p->set, extra, us);
            } else {
                mongodb_unset(p, f->name);
                mongodb_unset(p, extra);
            }
            break;
        case MF_BYTES:
            mongodb_put_bytes(p, f->name, *(ProtobufCBinaryData *const *)at,
                              *(const size_t *)MONGODB_AT(rec, f->quantifier_offset));
            break;
        }
    }
    return p->ok ? 0 : CPAR_E2BIG;
}

/* Remove the chunks of `msg_id` that the write `p` made (after a failed write). */
static void mongodb_drop_new_chunks(mongodb_conn_t *c, const char *msg_id, const mongodb_put_t *p)
{
    for (size_t i = 0; i < p->nchunked; i++) {
        bson_t *sel = BCON_NEW("msg_id", BCON_UTF8(msg_id), "field", BCON_UTF8(p->chunked[i].field),
                               "gen", BCON_OID(&p->chunked[i].gen));
        mongoc_collection_delete_many(c->chunks, sel, NULL, NULL, NULL);
        bson_destroy(sel);
    }
}

/* Write the chunks of the large buffer fields of `p`, one document per chunk. */
static int mongodb_put_chunks(mongodb_t *db, mongodb_conn_t *c, const char *msg_id,
                              const mongodb_put_t *p)
{
    static const uint8_t empty[1];

    for (size_t k = 0; k < p->nchunked; k++) {
        const mongodb_chunked_t *ch = &p->chunked[k];
        int32_t seq = 0;
        for (size_t i = 0; i < ch->n; i++) {
            for (size_t off = 0; off < ch->items[i].len; off += MONGODB_CHUNK_MAX) {
                size_t len = ch->items[i].len - off;
                bson_error_t e;
                bson_t doc;
                int ok;
                if (len > MONGODB_CHUNK_MAX)
                    len = MONGODB_CHUNK_MAX;
                bson_init(&doc);
                BSON_APPEND_UTF8(&doc, "msg_id", msg_id);
                BSON_APPEND_UTF8(&doc, "field", ch->field);
                BSON_APPEND_OID(&doc, "gen", &ch->gen);
                BSON_APPEND_INT32(&doc, "n", seq++);
                BSON_APPEND_BINARY(&doc, "data", BSON_SUBTYPE_BINARY,
                                   len ? ch->items[i].data + off : empty, (uint32_t)len);
                ok = mongoc_collection_insert_one(c->chunks, &doc, NULL, NULL, &e);
                bson_destroy(&doc);
                if (!ok)
                    return mongodb_fail(db, &e);
            }
        }
    }
    return 0;
}

/* ---- documents -> records --------------------------------------------------------------- */

/* A record read back: fields point into the document or into memory listed in `owned`. */
typedef struct mongodb_rec {
    cpar_record_t rec;
    void **owned;
    size_t nowned, capowned;
    uint32_t pending; /* chunked buffer fields whose bytes are still to be read */
} mongodb_rec_t;

static void mongodb_rec_init(mongodb_rec_t *r)
{
    memset(r, 0, sizeof *r);
    cpar_record_init(&r->rec);
}

static void mongodb_rec_clear(mongodb_rec_t *r)
{
    for (size_t i = 0; i < r->nowned; i++)
        free(r->owned[i]);
    free(r->owned);
    mongodb_rec_init(r);
}

/* Take `p` into r's keeping (frees it when that fails); NULL is out of memory. */
static void *mongodb_own(mongodb_rec_t *r, void *p)
{
    if (!p)
        return NULL;
    if (r->nowned == r->capowned) {
        size_t ncap = r->capowned ? r->capowned * 2 : 8;
        void **n = realloc(r->owned, ncap * sizeof *n);
        if (!n) {
            free(p);
            return NULL;
        }
        r->owned = n;
        r->capowned = ncap;
    }
    r->owned[r->nowned++] = p;
    return p;
}

static int mongodb_oom(mongodb_t *db, const char *what)
{
    db->host->set_error(db->ctx, "out of memory reading %s", what);
    return CPAR_ENOMEM;
}

/* The ObjectId in "_<field>_gen" of doc, or NULL. */
static const bson_oid_t *mongodb_chunk_gen(const bson_t *doc, const char *field)
{
    char extra[MONGODB_EXTRA_MAX];
    bson_iter_t it;

    mongodb_extra_name(extra, field, MONGODB_GEN_SUFFIX);
    if (bson_iter_init_find(&it, doc, extra) && BSON_ITER_HOLDS_OID(&it))
        return bson_iter_oid(&it);
    return NULL;
}

/* Read a chunked buffer field ({lens: [...]} at `value`) back from the chunk collection. */
static int mongodb_get_chunks(mongodb_t *db, mongodb_conn_t *c, mongodb_rec_t *r, const char *field,
                              const bson_t *doc, const bson_iter_t *value,
                              ProtobufCBinaryData **items_out, size_t *n_out)
{
    const char *msg_id = r->rec.msg_id;
    const bson_oid_t *gen = mongodb_chunk_gen(doc, field);
    bson_iter_t it, lens;
    ProtobufCBinaryData *items;
    uint64_t total = 0, got = 0;
    size_t n = 0;
    uint8_t *base;
    mongoc_cursor_t *cur;
    const bson_t *chunk;
    bson_t *filter, *opts;
    bson_error_t e;
    int rc = 0;

    if (!gen || !bson_iter_recurse(value, &it) || !bson_iter_find(&it, "lens") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &lens)) {
        db->host->set_error(db->ctx, "record %s: malformed %s in MongoDB", msg_id, field);
        return CPAR_EIO;
    }
    while (bson_iter_next(&lens)) {
        total += (uint64_t)bson_iter_as_int64(&lens);
        n++;
    }
    items = mongodb_own(r, calloc(n ? n : 1, sizeof *items));
    base = mongodb_own(r, malloc(total ? (size_t)total : 1));
    if (!items || !base)
        return mongodb_oom(db, msg_id);

    filter = BCON_NEW("msg_id", BCON_UTF8(msg_id), "field", BCON_UTF8(field), "gen", BCON_OID(gen));
    opts = BCON_NEW("sort", "{", "n", BCON_INT32(1), "}", "projection", "{", "data", BCON_INT32(1),
                    "_id", BCON_INT32(0), "}");
    cur = mongoc_collection_find_with_opts(c->chunks, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &chunk)) {
        const uint8_t *data;
        uint32_t len;
        bson_subtype_t sub;
        if (!bson_iter_init_find(&it, chunk, "data") || !BSON_ITER_HOLDS_BINARY(&it))
            continue;
        bson_iter_binary(&it, &sub, &len, &data);
        if (got + len > total)
            break;
        memcpy(base + got, data, len);
        got += len;
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mongodb_fail(db, &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    if (rc)
        return rc;
    if (got != total) {
        db->host->set_error(db->ctx, "record %s: %s holds %llu of its %llu bytes in MongoDB",
                            msg_id, field, (unsigned long long)got, (unsigned long long)total);
        return CPAR_EIO;
    }
    bson_iter_recurse(value, &it);
    bson_iter_find(&it, "lens");
    bson_iter_recurse(&it, &lens);
    got = 0;
    for (size_t i = 0; i < n && bson_iter_next(&lens); i++) {
        items[i].len = (size_t)bson_iter_as_int64(&lens);
        items[i].data = base + got;
        got += items[i].len;
    }
    *items_out = items;
    *n_out = n;
    return 0;
}

/* The lengths of a chunked buffer field {lens: [...]}, without its bytes (data NULL). */
static int mongodb_chunk_lens(mongodb_t *db, mongodb_rec_t *r, const bson_iter_t *value,
                              ProtobufCBinaryData **items_out, size_t *n_out)
{
    ProtobufCBinaryData *items;
    bson_iter_t it, lens;
    size_t n = 0;

    if (!bson_iter_recurse(value, &it) || !bson_iter_find(&it, "lens") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &lens))
        return 0;
    while (bson_iter_next(&lens))
        n++;
    items = mongodb_own(r, calloc(n ? n : 1, sizeof *items));
    if (!items)
        return mongodb_oom(db, r->rec.msg_id);
    bson_iter_recurse(&it, &lens);
    for (size_t i = 0; i < n && bson_iter_next(&lens); i++)
        items[i].len = (size_t)bson_iter_as_int64(&lens);
    *items_out = items;
    *n_out = n;
    return 0;
}

/* A buffer field: an array of binary, or chunks (read now when `fetch`, else left pending). */
static int mongodb_get_bytes(mongodb_t *db, mongodb_conn_t *c, mongodb_rec_t *r,
                             const ProtobufCFieldDescriptor *f, const bson_t *doc,
                             const bson_iter_t *value, int fetch)
{
    ProtobufCBinaryData **items_out = MONGODB_AT(&r->rec, f->offset), *items;
    size_t *n_out = MONGODB_AT(&r->rec, f->quantifier_offset);
    bson_iter_t it;
    size_t n = 0;

    if (BSON_ITER_HOLDS_DOCUMENT(value) && fetch)
        return mongodb_get_chunks(db, c, r, f->name, doc, value, items_out, n_out);
    if (BSON_ITER_HOLDS_DOCUMENT(value)) {
        r->pending |= mongodb_field_bit(f);
        return mongodb_chunk_lens(db, r, value, items_out, n_out);
    }
    if (!BSON_ITER_HOLDS_ARRAY(value) || !bson_iter_recurse(value, &it))
        return 0;
    while (bson_iter_next(&it))
        n++;
    if (!n)
        return 0;
    items = mongodb_own(r, calloc(n, sizeof *items));
    if (!items)
        return mongodb_oom(db, r->rec.msg_id);
    bson_iter_recurse(value, &it);
    for (size_t i = 0; i < n && bson_iter_next(&it); i++) {
        bson_subtype_t sub;
        uint32_t len = 0;
        const uint8_t *data = NULL;
        if (BSON_ITER_HOLDS_BINARY(&it))
            bson_iter_binary(&it, &sub, &len, &data);
        else if (BSON_ITER_HOLDS_UTF8(&it))
            data = (const uint8_t *)bson_iter_utf8(&it, &len);
        items[i].data = (uint8_t *)(uintptr_t)data;
        items[i].len = len;
    }
    *items_out = items;
    *n_out = n;
    return 0;
}

/* Read the bytes of the chunked fields that mongodb_decode left pending. */
static int mongodb_fetch_pending(mongodb_t *db, mongodb_conn_t *c, const bson_t *doc,
                                 mongodb_rec_t *r)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;
    bson_iter_t it;

    for (unsigned i = 0; r->pending && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int rc;
        if (!(r->pending & mongodb_field_bit(f)) || !bson_iter_init_find(&it, doc, f->name))
            continue;
        r->pending &= ~mongodb_field_bit(f);
        rc = mongodb_get_chunks(db, c, r, f->name, doc, &it, MONGODB_AT(&r->rec, f->offset),
                                MONGODB_AT(&r->rec, f->quantifier_offset));
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Decode a record document (as find returns it) into r; the bytes of chunked buffer fields are
 * read too when `fetch`, else left for mongodb_fetch_pending.
 */
static int mongodb_decode(mongodb_t *db, mongodb_conn_t *c, const bson_t *doc, mongodb_rec_t *r,
                          int fetch)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;
    bson_iter_t it, ex;

    if (!bson_iter_init_find(&it, doc, "msg_id") || !BSON_ITER_HOLDS_UTF8(&it)) {
        db->host->set_error(db->ctx, "a document in MongoDB has no msg_id");
        return CPAR_EIO;
    }
    r->rec.msg_id = (char *)(uintptr_t)bson_iter_utf8(&it, NULL);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        void *at = MONGODB_AT(&r->rec, f->offset);
        char extra[MONGODB_EXTRA_MAX];
        int rc;
        if (f->id == 1 || !bson_iter_init_find(&it, doc, f->name) || BSON_ITER_HOLDS_NULL(&it))
            continue;
        switch (mongodb_kind(f)) {
        case MF_ID:
            break;
        case MF_TEXT:
            if (BSON_ITER_HOLDS_UTF8(&it))
                *(char **)at = (char *)(uintptr_t)bson_iter_utf8(&it, NULL);
            break;
        case MF_JSON:
            mongodb_extra_name(extra, f->name, MONGODB_JSON_SUFFIX);
            if (bson_iter_init_find(&ex, doc, extra) && BSON_ITER_HOLDS_UTF8(&ex)) {
                *(char **)at = (char *)(uintptr_t)bson_iter_utf8(&ex, NULL);
            } else if (BSON_ITER_HOLDS_UTF8(&it)) {
                *(char **)at = (char *)(uintptr_t)bson_iter_utf8(&it, NULL);
            } else {
                int spaced = bson_iter_init_find(&ex, doc, extra) && BSON_ITER_HOLDS_INT(&ex) &&
                             bson_iter_as_int64(&ex) == 1;
                if (!(*(char **)at = mongodb_own(r, mongodb_json_from_iter(&it, spaced))))
                    return mongodb_oom(db, r->rec.msg_id);
            }
            break;
        case MF_DATE:
            if (BSON_ITER_HOLDS_DATE_TIME(&it)) {
                int64_t ms = bson_iter_date_time(&it), us = ms * 1000;
                mongodb_extra_name(extra, f->name, MONGODB_US_SUFFIX);
                /* the exact µs, unless someone else rewrote the datetime since */
                if (bson_iter_init_find(&ex, doc, extra) && BSON_ITER_HOLDS_NUMBER(&ex) &&
                    mongodb_us_to_ms(bson_iter_as_int64(&ex)) == ms)
                    us = bson_iter_as_int64(&ex);
                *(int64_t *)at = us;
                *(protobuf_c_boolean *)MONGODB_AT(&r->rec, f->quantifier_offset) = 1;
            }
            break;
        case MF_BYTES:
            if ((rc = mongodb_get_bytes(db, c, r, f, doc, &it, fetch)) != 0)
                return rc;
            break;
        }
    }
    return 0;
}

/*
 * The projection that reads msg_id and the fields `fields` names, with their bookkeeping fields;
 * with `gens`, also where every chunked buffer field's chunks are.
 */
static bson_t *mongodb_projection(uint32_t fields, int gens)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;
    bson_t *proj = bson_new();

    BSON_APPEND_INT32(proj, "_id", 0);
    BSON_APPEND_INT32(proj, "msg_id", 1);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int wanted = (fields & mongodb_field_bit(f)) != 0;
        char extra[MONGODB_EXTRA_MAX];
        if (!wanted && !(gens && mongodb_kind(f) == MF_BYTES))
            continue;
        if (wanted)
            BSON_APPEND_INT32(proj, f->name, 1);
        switch (mongodb_kind(f)) {
        case MF_DATE:
            mongodb_extra_name(extra, f->name, MONGODB_US_SUFFIX);
            break;
        case MF_JSON:
            mongodb_extra_name(extra, f->name, MONGODB_JSON_SUFFIX);
            break;
        case MF_BYTES:
            mongodb_extra_name(extra, f->name, MONGODB_GEN_SUFFIX);
            break;
        default:
            continue;
        }
        BSON_APPEND_INT32(proj, extra, 1);
    }
    return proj;
}

/*
 * Decode every document of `cur` and hand it to cb; with a query `q`, only those that match it
 * (the filter selected a superset).
 */
static int mongodb_each(mongodb_t *db, mongodb_conn_t *c, mongoc_cursor_t *cur,
                        const cpar_query_t *q, cpar_record_cb cb, void *arg, size_t *count)
{
    const bson_t *doc;
    bson_error_t e;
    int rc = 0;

    while (!rc && mongoc_cursor_next(cur, &doc)) {
        mongodb_rec_t r;
        int match = 1;
        mongodb_rec_init(&r);
        rc = mongodb_decode(db, c, doc, &r, q == NULL);
        if (rc == 0 && q && (match = cpar_query_match(q, &r.rec)) < 0) {
            db->host->set_error(db->ctx, "the query cannot be evaluated: %s", cpar_strerror(match));
            rc = match;
        }
        if (rc == 0 && match == 1)
            rc = mongodb_fetch_pending(db, c, doc, &r);
        if (rc == 0 && match == 1) {
            cb(arg, &r.rec);
            if (count)
                (*count)++;
        }
        mongodb_rec_clear(&r);
    }
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = mongodb_fail(db, &e);
    return rc;
}

/* ---- operations ------------------------------------------------------------------------- */

static int mongodb_add_record(void *state, const cpar_record_t *rec)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    mongodb_put_t p = {0};
    bson_error_t e;
    bson_t doc;
    int64_t seq;
    int rc;

    if ((rc = mongodb_begin_write(db, rec, &c)) != 0)
        return rc;
    seq = db->host->now_us();
    if (seq <= db->last_seq)
        seq = db->last_seq + 1;
    db->last_seq = seq;

    bson_init(&doc);
    p.set = &doc;
    BSON_APPEND_UTF8(&doc, "msg_id", rec->msg_id);
    BSON_APPEND_INT64(&doc, "_seq", seq);
    rc = mongodb_put_fields(&p, rec, CPAR_REC_ALL);
    if (rc == CPAR_E2BIG)
        db->host->set_error(db->ctx, "record %s is too large for a BSON document", rec->msg_id);
    else if (rc)
        db->host->set_error(db->ctx, "out of memory encoding record %s", rec->msg_id);
    if (rc == 0)
        rc = mongodb_put_chunks(db, &c, rec->msg_id, &p);
    if (rc == 0 && !mongoc_collection_insert_one(c.records, &doc, NULL, NULL, &e)) {
        if (mongodb_duplicate(&e)) {
            db->host->set_error(db->ctx, "already have msg_id %s", rec->msg_id);
            rc = CPAR_EEXIST;
        } else {
            rc = mongodb_fail(db, &e);
        }
    }
    if (rc && p.nchunked)
        mongodb_drop_new_chunks(&c, rec->msg_id, &p);
    bson_destroy(&doc);
    mongodb_end(db, &c);
    return rc;
}

/* 1 when a record msg_id is stored, 0 when not, or a negative code. */
static int mongodb_exists(mongodb_t *db, mongodb_conn_t *c, const char *msg_id)
{
    bson_t *filter = BCON_NEW("msg_id", BCON_UTF8(msg_id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c->records, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    int rc = mongoc_cursor_next(cur, &doc) ? 1 : 0;

    if (!rc && mongoc_cursor_error(cur, &e))
        rc = mongodb_fail(db, &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    return rc;
}

/* The projection of the chunk generations of a record, for findAndModify. */
static bson_t *mongodb_gens_projection(void)
{
    return BCON_NEW("_id", BCON_INT32(0), "msg_id", BCON_INT32(1), "_buffers" MONGODB_GEN_SUFFIX,
                    BCON_INT32(1), "_result_buffers" MONGODB_GEN_SUFFIX, BCON_INT32(1));
}

/*
 * Drop the chunks that the record `old` (as findAndModify returned it) had for the buffer fields
 * `fields` names. The record no longer refers to them: a failure only leaves garbage, and is
 * logged rather than returned.
 */
static void mongodb_drop_old_chunks(mongodb_t *db, mongodb_conn_t *c, const char *msg_id,
                                    const bson_t *old, uint32_t fields)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } buf_fields[] = {{CPAR_REC_BUFFERS, "buffers"}, {CPAR_REC_RESULT_BUFFERS, "result_buffers"}};
    bson_error_t e;

    for (size_t i = 0; i < 2; i++) {
        const bson_oid_t *gen;
        bson_t *sel;
        if (!(fields & buf_fields[i].bit) || !(gen = mongodb_chunk_gen(old, buf_fields[i].name)))
            continue;
        sel = BCON_NEW("msg_id", BCON_UTF8(msg_id), "field", BCON_UTF8(buf_fields[i].name), "gen",
                       BCON_OID(gen));
        if (!mongoc_collection_delete_many(c->chunks, sel, NULL, NULL, &e))
            db->host->log(db->ctx, CPAR_LOG_WARNING,
                          "record %s: the old chunks of its %s stay in " MONGODB_CHUNKS ": %s",
                          msg_id, buf_fields[i].name, e.message);
        bson_destroy(sel);
    }
}

/*
 * findAndModify on the record msg_id (`update`, or removing it when NULL), with *old set to what
 * it held in its chunk generations: 1 when it was found, 0 when not, or a negative code.
 */
static int mongodb_find_and_modify(mongodb_t *db, mongodb_conn_t *c, const char *msg_id,
                                   const bson_t *update, bson_t *old)
{
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t *sel = BCON_NEW("msg_id", BCON_UTF8(msg_id)), *proj = mongodb_gens_projection();
    bson_t reply;
    bson_error_t e;
    bson_iter_t it, n;
    int rc = 0;

    bson_init(old);
    mongoc_find_and_modify_opts_set_fields(opts, proj);
    if (update)
        mongoc_find_and_modify_opts_set_update(opts, update);
    else
        mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_REMOVE);
    if (!mongoc_collection_find_and_modify_with_opts(c->records, sel, opts, &reply, &e)) {
        rc = mongodb_fail(db, &e);
    } else {
        if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "lastErrorObject.n", &n))
            rc = bson_iter_as_int64(&n) > 0;
        if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t value;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&value, data, len))
                bson_concat(old, &value);
            rc = 1;
        }
    }
    bson_destroy(&reply);
    bson_destroy(sel);
    bson_destroy(proj);
    mongoc_find_and_modify_opts_destroy(opts);
    return rc;
}

static int mongodb_update_record(void *state, const cpar_record_t *rec, uint32_t fields)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    mongodb_put_t p = {0};
    bson_t set, unset, update, reply, *sel = NULL;
    bson_error_t e;
    bson_iter_t it;
    int rc;

    if ((rc = mongodb_begin_write(db, rec, &c)) != 0)
        return rc;
    bson_init(&set);
    bson_init(&unset);
    bson_init(&update);
    bson_init(&reply);
    p.set = &set;
    p.unset = &unset;
    if ((rc = mongodb_put_fields(&p, rec, fields)) != 0) {
        db->host->set_error(db->ctx,
                            rc == CPAR_E2BIG ? "update of %s is too large for BSON"
                                             : "out of memory encoding update of %s",
                            rec->msg_id);
        goto out;
    }
    if (bson_empty(&set) && bson_empty(&unset)) {
        rc = mongodb_exists(db, &c, rec->msg_id);
        rc = rc == 1 ? 0 : rc == 0 ? CPAR_ENOENT : rc;
        if (rc == CPAR_ENOENT)
            db->host->set_error(db->ctx, "no such msg_id %s", rec->msg_id);
        goto out;
    }
    if ((rc = mongodb_put_chunks(db, &c, rec->msg_id, &p)) != 0)
        goto out;
    if (!bson_empty(&set))
        BSON_APPEND_DOCUMENT(&update, "$set", &set);
    if (!bson_empty(&unset))
        BSON_APPEND_DOCUMENT(&update, "$unset", &unset);
    if (fields & CPAR_REC_BUFFER_FIELDS) {
        /* one round trip that also says which chunks the record had */
        bson_t old;
        rc = mongodb_find_and_modify(db, &c, rec->msg_id, &update, &old);
        if (rc == 1) {
            mongodb_drop_old_chunks(db, &c, rec->msg_id, &old, fields);
            rc = 0;
        } else if (rc == 0) {
            rc = CPAR_ENOENT;
        }
        bson_destroy(&old);
    } else {
        sel = BCON_NEW("msg_id", BCON_UTF8(rec->msg_id));
        if (!mongoc_collection_update_one(c.records, sel, &update, NULL, &reply, &e))
            rc = mongodb_fail(db, &e);
        else if (!bson_iter_init_find(&it, &reply, "matchedCount") || bson_iter_as_int64(&it) == 0)
            rc = CPAR_ENOENT;
    }
    if (rc == CPAR_ENOENT)
        db->host->set_error(db->ctx, "no such msg_id %s", rec->msg_id);
    if (rc && p.nchunked)
        mongodb_drop_new_chunks(&c, rec->msg_id, &p);
out:
    if (sel)
        bson_destroy(sel);
    bson_destroy(&set);
    bson_destroy(&unset);
    bson_destroy(&update);
    bson_destroy(&reply);
    mongodb_end(db, &c);
    return rc;
}

static int mongodb_get_record(void *state, const char *msg_id, cpar_record_cb cb, void *arg)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    mongoc_cursor_t *cur;
    bson_t *filter, *opts;
    size_t found = 0;
    int rc;

    if (!msg_id || !cb) {
        db->host->set_error(db->ctx, "get_record needs a msg_id and a callback");
        return CPAR_EINVAL;
    }
    if ((rc = mongodb_begin(db, &c)) != 0)
        return rc;
    filter = BCON_NEW("msg_id", BCON_UTF8(msg_id));
    opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(0), "}");
    cur = mongoc_collection_find_with_opts(c.records, filter, opts, NULL);
    rc = mongodb_each(db, &c, cur, NULL, cb, arg, &found);
    if (rc == 0 && !found) {
        db->host->set_error(db->ctx, "no such msg_id %s", msg_id);
        rc = CPAR_ENOENT;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    mongodb_end(db, &c);
    return rc;
}

static int mongodb_drop_record(void *state, const char *msg_id)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    bson_t old;
    int rc;

    if (!msg_id) {
        db->host->set_error(db->ctx, "drop_record needs a msg_id");
        return CPAR_EINVAL;
    }
    if ((rc = mongodb_begin(db, &c)) != 0)
        return rc;
    rc = mongodb_find_and_modify(db, &c, msg_id, NULL, &old);
    if (rc == 1) {
        mongodb_drop_old_chunks(db, &c, msg_id, &old, CPAR_REC_BUFFER_FIELDS);
        rc = 0;
    } else if (rc == 0) {
        db->host->set_error(db->ctx, "no such msg_id %s", msg_id);
        rc = CPAR_ENOENT;
    }
    bson_destroy(&old);
    mongodb_end(db, &c);
    return rc;
}

static int mongodb_get_history(void *state, cpar_msgid_cb cb, void *arg)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_t *filter, *opts;
    bson_error_t e;
    bson_iter_t it;
    int rc;

    if (!cb) {
        db->host->set_error(db->ctx, "get_history needs a callback");
        return CPAR_EINVAL;
    }
    if ((rc = mongodb_begin(db, &c)) != 0)
        return rc;
    filter = BCON_NEW("submitted", "{", "$ne", BCON_NULL, "}");
    opts = BCON_NEW("projection", "{", "msg_id", BCON_INT32(1), "_id", BCON_INT32(0), "}", "sort",
                    "{", "submitted", BCON_INT32(1), "_submitted_us", BCON_INT32(1), "_seq",
                    BCON_INT32(1), "}");
    cur = mongoc_collection_find_with_opts(c.records, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc))
        if (bson_iter_init_find(&it, doc, "msg_id") && BSON_ITER_HOLDS_UTF8(&it))
            cb(arg, bson_iter_utf8(&it, NULL));
    if (mongoc_cursor_error(cur, &e))
        rc = mongodb_fail(db, &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    bson_destroy(opts);
    mongodb_end(db, &c);
    return rc;
}

static int mongodb_flush(void *state)
{
    (void)state; /* every write is acknowledged by the server before it returns */
    return 0;
}

/* The filter for q; *check when candidates must still go through cpar_query_match. */
static int mongodb_filter(mongodb_t *db, const cpar_query_t *q, bson_t *filter, int *check,
                          uint32_t *tested)
{
    char err[256];
    int exact, rc;

    bson_init(filter);
    rc = mongodb_query_filter(q, filter, &exact, tested, err, sizeof err);
    if (rc)
        db->host->set_error(db->ctx, "%s", err);
    *check = !exact;
    return rc;
}

static int mongodb_find_records(void *state, const cpar_query_t *q, uint32_t fields,
                                cpar_record_cb cb, void *arg)
{
    mongodb_t *db = state;
    mongodb_conn_t c;
    mongoc_cursor_t *cur;
    bson_t filter, *opts, *proj;
    uint32_t tested;
    int check, rc;

    if (!cb) {
        db->host->set_error(db->ctx, "find_records needs a callback");
        return CPAR_EINVAL;
    }
    if ((rc = mongodb_filter(db, q, &filter, &check, &tested)) != 0 ||
        (rc = mongodb_begin(db, &c)) != 0) {
        bson_destroy(&filter);
        return rc;
    }
    proj = mongodb_projection(check ? fields | tested : fields, 0);
    opts = bson_new();
    BSON_APPEND_DOCUMENT(opts, "projection", proj);
    bson_destroy(proj);
    cur = mongoc_collection_find_with_opts(c.records, &filter, opts, NULL);
    rc = mongodb_each(db, &c, cur, check ? q : NULL, cb, arg, NULL);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    mongodb_end(db, &c);
    return rc;
}

/* Delete the documents of `coll` whose msg_id is one of ids[0..n-1]; adds to *count. */
static int mongodb_delete_ids(mongodb_t *db, mongoc_collection_t *coll, char **ids, size_t n,
                              size_t *count)
{
    bson_t sel, cond, arr, reply;
    bson_error_t e;
    bson_iter_t it;
    int rc = 0;

    bson_init(&sel);
    BSON_APPEND_DOCUMENT_BEGIN(&sel, "msg_id", &cond);
    BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
        char idx[16];
        const char *key;
        size_t klen = bson_uint32_to_string((uint32_t)i, &key, idx, sizeof idx);
        bson_append_utf8(&arr, key, (int)klen, ids[i], -1);
    }
    bson_append_array_end(&cond, &arr);
    bson_append_document_end(&sel, &cond);
    if (!mongoc_collection_delete_many(coll, &sel, NULL, &reply, &e))
        rc = mongodb_fail(db, &e);
    else if (count && bson_iter_init_find(&it, &reply, "deletedCount"))
        *count += (size_t)bson_iter_as_int64(&it);
    bson_destroy(&reply);
    bson_destroy(&sel);
    return rc;
}

/* A list of msg_ids. */
typedef struct mongodb_idlist {
    char **ids;
    size_t n, cap;
} mongodb_idlist_t;

static int mongodb_idlist_add(mongodb_idlist_t *l, const char *id)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        char **nids = realloc(l->ids, ncap * sizeof *nids);
        if (!nids)
            return CPAR_ENOMEM;
        l->ids = nids;
        l->cap = ncap;
    }
    if (!(l->ids[l->n] = strdup(id)))
        return CPAR_ENOMEM;
    l->n++;
    return 0;
}

static void mongodb_idlist_free(mongodb_idlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ids[i]);
    free(l->ids);
}

/* Delete, in batches, the documents of `coll` of every id in l; adds to *count. */
static int mongodb_delete_list(mongodb_t *db, mongoc_collection_t *coll, const mongodb_idlist_t *l,
                               size_t *count)
{
    int rc = 0;

    for (size_t i = 0; !rc && i < l->n; i += MONGODB_DROP_BATCH)
        rc = mongodb_delete_ids(db, coll, l->ids + i,
                                l->n - i < MONGODB_DROP_BATCH ? l->n - i : MONGODB_DROP_BATCH,
                                count);
    return rc;
}

static int mongodb_drop_matching(void *state, const cpar_query_t *q, size_t *dropped)
{
    mongodb_t *db = state;
    mongodb_idlist_t ids = {0}, chunked = {0};
    mongodb_conn_t c;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    bson_t filter, *opts, *proj;
    bson_error_t e;
    uint32_t tested;
    size_t count = 0;
    int check, rc;

    if ((rc = mongodb_filter(db, q, &filter, &check, &tested)) != 0 ||
        (rc = mongodb_begin(db, &c)) != 0) {
        bson_destroy(&filter);
        return rc;
    }
    /* The ids first, so that the chunks of exactly the records dropped go too. */
    proj = mongodb_projection(check ? tested : 0, 1);
    opts = bson_new();
    BSON_APPEND_DOCUMENT(opts, "projection", proj);
    bson_destroy(proj);
    cur = mongoc_collection_find_with_opts(c.records, &filter, opts, NULL);
    while (!rc && mongoc_cursor_next(cur, &doc)) {
        mongodb_rec_t r;
        int match = 1;
        mongodb_rec_init(&r);
        rc = mongodb_decode(db, &c, doc, &r, 0);
        if (rc == 0 && check && (match = cpar_query_match(q, &r.rec)) < 0) {
            db->host->set_error(db->ctx, "the query cannot be evaluated: %s", cpar_strerror(match));
            rc = match;
        }
        if (rc == 0 && match == 1) {
            rc = mongodb_idlist_add(&ids, r.rec.msg_id);
            if (rc == 0 &&
                (mongodb_chunk_gen(doc, "buffers") || mongodb_chunk_gen(doc, "result_buffers")))
                rc = mongodb_idlist_add(&chunked, r.rec.msg_id);
            if (rc == CPAR_ENOMEM)
                mongodb_oom(db, "the records to drop");
        }
        mongodb_rec_clear(&r);
    }
    if (!rc && mongoc_cursor_error(cur, &e))
        rc = mongodb_fail(db, &e);
    mongoc_cursor_destroy(cur);
    if (rc == 0)
        rc = mongodb_delete_list(db, c.records, &ids, &count);
    if (rc == 0)
        rc = mongodb_delete_list(db, c.chunks, &chunked, NULL);
    mongodb_idlist_free(&ids);
    mongodb_idlist_free(&chunked);
    bson_destroy(opts);
    bson_destroy(&filter);
    mongodb_end(db, &c);
    if (dropped)
        *dropped = count;
    return rc;
}

/* ---- life cycle ------------------------------------------------------------------------- */

/* libmongoc's verdict on options it does not know, which it only logs. */
static pthread_mutex_t mongodb_warn_lock = PTHREAD_MUTEX_INITIALIZER;
static char mongodb_warning[256];

static void mongodb_catch_warning(mongoc_log_level_t level, const char *domain, const char *message,
                                  void *data)
{
    (void)domain;
    (void)data;
    if (level > MONGOC_LOG_LEVEL_WARNING || !strstr(message, "URI option"))
        return;
    pthread_mutex_lock(&mongodb_warn_lock);
    if (!mongodb_warning[0])
        mongodb_one_line(mongodb_warning, sizeof mongodb_warning, message);
    pthread_mutex_unlock(&mongodb_warn_lock);
}

/* Parse the connection string; libmongoc's warnings about unknown options are errors here. */
static int mongodb_parse_uri(mongodb_t *db, const char *text)
{
    bson_error_t e;

    pthread_mutex_lock(&mongodb_warn_lock);
    mongodb_warning[0] = '\0';
    pthread_mutex_unlock(&mongodb_warn_lock);
    mongoc_log_set_handler(mongodb_catch_warning, NULL);
    db->uri = mongoc_uri_new_with_error(text, &e);
    mongoc_log_set_handler(NULL, NULL); /* a plugin never writes to stderr */
    if (!db->uri) {
        char msg[sizeof e.message];
        mongodb_one_line(msg, sizeof msg, e.message);
        db->host->set_error(db->ctx, "MongoDB: bad connection string %s: %s", db->display, msg);
        return CPAR_ECONFIG;
    }
    if (mongodb_warning[0]) {
        db->host->set_error(db->ctx, "MongoDB: connection string %s: %s", db->display,
                            mongodb_warning);
        return CPAR_ECONFIG;
    }
    if (!mongoc_uri_has_option(db->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(db->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       MONGODB_SELECT_MS);
    if (!mongoc_uri_has_option(db->uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(db->uri, MONGOC_URI_CONNECTTIMEOUTMS, MONGODB_CONNECT_MS);
    if (!mongoc_uri_has_option(db->uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(db->uri, MONGOC_URI_SOCKETTIMEOUTMS, MONGODB_SOCKET_MS);
    if (!mongoc_uri_get_appname(db->uri))
        mongoc_uri_set_appname(db->uri, "cparallel");
    return 0;
}

/* A setting as text, or NULL when unset; CPAR_ECONFIG for another type. */
static int mongodb_config_text(mongodb_t *db, const char *key, int json, char **out)
{
    const char *s;
    int rc;

    *out = NULL;
    if (json) {
        rc = db->host->config_json(db->ctx, MONGODB_SECTION, key, out);
    } else {
        rc = db->host->config_string(db->ctx, MONGODB_SECTION, key, &s);
        if (rc == 0 && !(*out = strdup(s)))
            rc = CPAR_ENOMEM;
    }
    if (rc == CPAR_ENOENT)
        return 0;
    if (rc == CPAR_ENOMEM) {
        db->host->set_error(db->ctx, "out of memory");
        return rc;
    }
    if (rc) {
        db->host->set_error(db->ctx, MONGODB_SECTION ".%s must be %s", key,
                            json ? "a list or a dict" : "a string");
        return CPAR_ECONFIG;
    }
    if (json) { /* from the host's allocator: keep a copy of our own */
        char *copy = strdup(*out);
        db->host->free(*out);
        *out = copy;
        if (!copy) {
            db->host->set_error(db->ctx, "out of memory");
            return CPAR_ENOMEM;
        }
    }
    return 0;
}

static int mongodb_database_name(mongodb_t *db)
{
    char *name = NULL;
    int rc = mongodb_config_text(db, "database", 0, &name);

    if (rc)
        return rc;
    if (!name)
        name = strdup(MONGODB_DEFAULT_DATABASE);
    else if (!*name) { /* one database per controller session, as ipyparallel does */
        free(name);
        name = strdup(db->host->context(db->ctx, CPAR_CTX_SESSION));
    }
    if (!name) {
        db->host->set_error(db->ctx, "out of memory");
        return CPAR_ENOMEM;
    }
    db->database = name;
    if (!*name || strlen(name) > 63 || strpbrk(name, "/\\. \"$*<>:|?")) {
        db->host->set_error(db->ctx,
                            MONGODB_SECTION ".database '%s' is no MongoDB database name (1 to 63 "
                                            "characters, none of /\\. \"$*<>:|?)",
                            name);
        return CPAR_ECONFIG;
    }
    return 0;
}

static int mongodb_configure(mongodb_t *db)
{
    char *url = NULL, *args = NULL, *kwargs = NULL, *text = NULL;
    char err[512];
    bson_error_t e;
    int rc;

    if ((rc = mongodb_config_text(db, "url", 0, &url)) != 0 ||
        (rc = mongodb_config_text(db, "connection_args", 1, &args)) != 0 ||
        (rc = mongodb_config_text(db, "connection_kwargs", 1, &kwargs)) != 0 ||
        (rc = mongodb_database_name(db)) != 0)
        goto out;
    if (url && *url && ((args && strcmp(args, "[]") != 0) || (kwargs && strcmp(kwargs, "{}") != 0)))
        db->host->log(db->ctx, CPAR_LOG_WARNING,
                      MONGODB_SECTION ".url is set: connection_args and connection_kwargs are "
                                      "ignored");
    rc = mongodb_settings_uri(url, args, kwargs, &text, err, sizeof err);
    if (rc) {
        db->host->set_error(db->ctx, "%s", err);
        goto out;
    }
    if (!(db->display = mongodb_settings_display(text))) {
        db->host->set_error(db->ctx, "out of memory");
        rc = CPAR_ENOMEM;
        goto out;
    }
    if ((rc = mongodb_parse_uri(db, text)) != 0)
        goto out;
    db->pool = mongoc_client_pool_new_with_error(db->uri, &e);
    if (!db->pool) {
        char msg[sizeof e.message];
        mongodb_one_line(msg, sizeof msg, e.message);
        db->host->set_error(db->ctx, "MongoDB: cannot use %s: %s", db->display, msg);
        rc = CPAR_ECONFIG;
        goto out;
    }
    mongoc_client_pool_set_error_api(db->pool, MONGOC_ERROR_API_VERSION_2);
out:
    free(url);
    free(args);
    free(kwargs);
    free(text);
    return rc;
}

static void mongodb_fini(void *state)
{
    mongodb_t *db = state;

    if (!db)
        return;
    if (db->pool)
        mongoc_client_pool_destroy(db->pool);
    mongoc_uri_destroy(db->uri);
    free(db->display);
    free(db->database);
    free(db);
}

static int mongodb_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    mongodb_t *db = calloc(1, sizeof *db);
    int rc;

    if (!db) {
        host->set_error(ctx, "out of memory");
        return CPAR_ENOMEM;
    }
    db->host = host;
    db->ctx = ctx;
    mongoc_init(); /* once per process; later calls do nothing */
    mongoc_log_set_handler(NULL, NULL);
    rc = mongodb_configure(db);
    if (rc) {
        mongodb_fini(db);
        return rc;
    }
    /* No connection yet: the first operation connects (and --list-plugins never does). */
    host->log(ctx, CPAR_LOG_DEBUG, "MongoDB at %s, database %s", db->display, db->database);
    *state = db;
    return 0;
}

static const char *const mongodb_sections[] = {MONGODB_SECTION, NULL};

CPAR_PLUGIN_EXPORT const cpar_dbbackend_t cpar_dbbackend_mongodb_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_DBBACKEND, "mongodb"), .version = CPAR_MONGODB_VERSION,
             .description = "task records in a MongoDB database (ipyparallel's MongoDB)",
             .config_sections = mongodb_sections, .init = mongodb_init, .fini = mongodb_fini},
    .add_record = mongodb_add_record,
    .update_record = mongodb_update_record,
    .get_record = mongodb_get_record,
    .drop_record = mongodb_drop_record,
    .get_history = mongodb_get_history,
    .flush = mongodb_flush,
    .find_records = mongodb_find_records,
    .drop_matching = mongodb_drop_matching,
};
