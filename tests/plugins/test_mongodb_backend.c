/*
 * test_mongodb_backend.c - the MongoDB backend against a server, beyond the contract suite: what
 * its documents look like in the database (checked with a libmongoc client of its own), buffers
 * too large for a document, records written by ipyparallel's Python backend, the indexes, and
 * queries (patterns, and random ones) selecting exactly what the reference matcher selects.
 *
 * The server is named by CPAR_TEST_MONGODB_URI, which tests/support/mongo_standin.py sets (to its
 * stand-in, or to a real server). Each test uses a database of its own and drops it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cparallel/query.h>
#include <mongoc/mongoc.h>

#include "plugins/db.h"
#include "util/ids.h"
#include "wire/query.h"

#define T0 INT64_C(1633046400000000) /* 2021-10-01T00:00:00Z */

static const char *server_uri;
static mongoc_client_t *raw; /* our own view of the database */
static char profile_dir[] = "/tmp/cpar-mongodb-XXXXXX";

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
    mongoc_collection_t *records, *chunks;
} fixture_t;

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    cpar_plughost_info_t info = {
        .program = "test_mongodb_backend", .profile_dir = profile_dir, .cluster_id = ""};
    char err[1024];
    int rc;

    assert_non_null(fx);
    cpar_new_id(fx->session);
    info.session = fx->session;
    fx->cfg = cpar_config_new();
    assert_int_equal(
        cpar_config_set(fx->cfg, "MongoDB", "url", json_string(server_uri), CPAR_SRC_CLI, "test"),
        0);
    assert_int_equal(
        cpar_config_set(fx->cfg, "MongoDB", "database", json_string(""), CPAR_SRC_CLI, "test"), 0);
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, NULL, &info), 0);
    rc = cpar_db_open(fx->host, "mongodb", &fx->db, err, sizeof err);
    if (rc)
        fail_msg("open: %s", err);
    fx->records = mongoc_client_get_collection(raw, fx->session, "task_records");
    fx->chunks = mongoc_client_get_collection(raw, fx->session, "task_record_buffers");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    mongoc_database_t *d = mongoc_client_get_database(raw, fx->session);

    cpar_db_close(fx->host, fx->db);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    mongoc_collection_destroy(fx->records);
    mongoc_collection_destroy(fx->chunks);
    mongoc_database_drop(d, NULL);
    mongoc_database_destroy(d);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static ProtobufCBinaryData bin(const void *data, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)(uintptr_t)data};
    return b;
}

static void add_ok(fixture_t *fx, const cpar_record_t *r)
{
    int rc = cpar_db_add(fx->db, r);

    if (rc)
        fail_msg("add %s: %s: %s", r->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

static void update_ok(fixture_t *fx, const cpar_record_t *r, uint32_t fields)
{
    int rc = cpar_db_update(fx->db, r, fields);

    if (rc)
        fail_msg("update %s: %s: %s", r->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

static cpar_record_t *copy_record(const cpar_record_t *rec)
{
    size_t len = protobuf_c_message_get_packed_size(&rec->base);
    uint8_t *buf = malloc(len ? len : 1);
    cpar_record_t *copy;

    assert_non_null(buf);
    protobuf_c_message_pack(&rec->base, buf);
    copy = cpar__record__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(copy);
    return copy;
}

static void keep_record(void *arg, const cpar_record_t *rec)
{
    cpar_record_t **out = arg;

    assert_null(*out);
    *out = copy_record(rec);
}

static cpar_record_t *get_ok(fixture_t *fx, const char *id)
{
    cpar_record_t *got = NULL;
    int rc = cpar_db_get(fx->db, id, keep_record, &got);

    if (rc)
        fail_msg("get %s: %s: %s", id, cpar_err_name(rc), cpar_db_error(fx->db));
    return got;
}

/* Same fields, same values: their packed forms are the same bytes. */
static void assert_same_record(const cpar_record_t *want, const cpar_record_t *got)
{
    size_t lw = protobuf_c_message_get_packed_size(&want->base);
    size_t lg = protobuf_c_message_get_packed_size(&got->base);
    uint8_t *bw = malloc(lw + 1), *bg = malloc(lg + 1);
    int same;

    protobuf_c_message_pack(&want->base, bw);
    protobuf_c_message_pack(&got->base, bg);
    same = lw == lg && memcmp(bw, bg, lw) == 0;
    free(bw);
    free(bg);
    if (!same)
        fail_msg("record %s does not read back as written", want->msg_id);
}

/* The stored document of msg_id (a copy), or NULL. */
static bson_t *raw_doc(mongoc_collection_t *coll, const char *msg_id)
{
    bson_t *filter = BCON_NEW("msg_id", BCON_UTF8(msg_id));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_t *copy = NULL;

    if (mongoc_cursor_next(cur, &doc))
        copy = bson_copy(doc);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return copy;
}

static bson_type_t type_of(const bson_t *doc, const char *path)
{
    bson_iter_t it, found;

    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found))
        return BSON_TYPE_EOD;
    return bson_iter_type(&found);
}

static bson_iter_t at(const bson_t *doc, const char *path)
{
    bson_iter_t it, found;

    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found))
        fail_msg("the document has no %s", path);
    return found;
}

static int64_t count(mongoc_collection_t *coll, const char *field_or_null, const char *value)
{
    bson_t *filter = field_or_null ? BCON_NEW(field_or_null, BCON_UTF8(value)) : bson_new();
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &e);

    if (n < 0)
        fail_msg("count: %s", e.message);
    bson_destroy(filter);
    return n;
}

typedef struct idset {
    size_t n;
    char ids[512][16];
} idset_t;

static void collect(void *arg, const cpar_record_t *rec)
{
    idset_t *s = arg;

    assert_true(s->n < 512);
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", rec->msg_id);
}

static void collect_history(void *arg, const char *msg_id)
{
    idset_t *s = arg;

    assert_true(s->n < 512);
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", msg_id);
}

static int idset_has(const idset_t *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->ids[i], id) == 0)
            return 1;
    return 0;
}

static cpar_query_t *query_of(const char *json)
{
    char err[256];
    cpar_query_t *q = NULL;

    if (cpar_query_parse(json, strlen(json), &q, err, sizeof err) != 0)
        return NULL;
    return q;
}

/*
 * find_records of `json` selects exactly what cpar_query_match selects among recs[0..n-1].
 * Returns 0 when the hub's parser or the matcher refuses the query (nothing checked), else 1.
 */
static int check_query(fixture_t *fx, const char *json, cpar_record_t *const *recs, size_t n)
{
    cpar_query_t *q = query_of(json);
    idset_t got = {0};
    int rc;

    if (!q || cpar_query_match(q, recs[0]) < 0) {
        cpar_query_free(q);
        return 0;
    }
    rc = cpar_db_find(fx->db, q, 0, collect, &got);
    if (rc)
        fail_msg("find %s: %s: %s", json, cpar_err_name(rc), cpar_db_error(fx->db));
    for (size_t i = 0; i < n; i++) {
        int want = cpar_query_match(q, recs[i]) == 1;
        if (want != idset_has(&got, recs[i]->msg_id))
            fail_msg("find %s: %s %s, the reference matcher says it %s", json, recs[i]->msg_id,
                     want ? "missing" : "selected", want ? "matches" : "does not match");
    }
    cpar_query_free(q);
    return 1;
}

/* ---- documents ---------------------------------------------------------------------------- */

static void test_document_shape(void **state)
{
    fixture_t *fx = *state;
    static const char spaced[] = "{\"msg_id\": \"x\", \"date\": \"2021-10-01T00:00:00.123456Z\", "
                                 "\"n\": 1, \"f\": 0.5, \"l\": [1, \"a\", null, true, {}]}";
    static const char loose[] = "{\"a\":1.50,\"b\" : 2}";
    static const char dotted[] = "{\"data\":{\"text/plain\":\"x\",\"application/vnd.a+json\":{}}}";
    static const char dollar[] = "{\"$date\":\"2021-10-01T00:00:00Z\"}";
    ProtobufCBinaryData bufs[2] = {bin("a\0b", 3), bin("", 0)};
    cpar_record_t r, *got;
    bson_t *doc;
    bson_iter_t it;

    cpar_record_init(&r);
    r.msg_id = "shape";
    r.header = (char *)spaced;
    r.metadata = "{\"after\":[],\"targets\":[0,1]}";
    r.content = (char *)loose;
    r.result_content = (char *)dotted;
    r.error = (char *)dollar;
    r.has_submitted = 1;
    r.submitted = T0 + 123456;
    r.has_started = 1;
    r.started = -1;
    r.n_buffers = 2;
    r.buffers = bufs;
    r.stdout = "out";
    add_ok(fx, &r);

    doc = raw_doc(fx->records, "shape");
    assert_non_null(doc);
    /* dict fields: sub-documents, with how to write their text back when that is not compact */
    assert_int_equal(type_of(doc, "header"), BSON_TYPE_DOCUMENT);
    assert_int_equal(type_of(doc, "header.n"), BSON_TYPE_INT32);
    assert_int_equal(type_of(doc, "header.f"), BSON_TYPE_DOUBLE);
    assert_int_equal(type_of(doc, "header.l"), BSON_TYPE_ARRAY);
    it = at(doc, "_header_json");
    assert_int_equal(bson_iter_as_int64(&it), 1);
    assert_int_equal(type_of(doc, "metadata"), BSON_TYPE_DOCUMENT);
    assert_int_equal(type_of(doc, "_metadata_json"), BSON_TYPE_EOD);
    assert_int_equal(type_of(doc, "content"), BSON_TYPE_DOCUMENT);
    it = at(doc, "_content_json");
    assert_string_equal(bson_iter_utf8(&it, NULL), loose);
    /* keys MongoDB cannot hold as they are: the text as a string */
    assert_int_equal(type_of(doc, "result_content"), BSON_TYPE_UTF8);
    assert_int_equal(type_of(doc, "error"), BSON_TYPE_UTF8);
    /* datetimes: BSON datetimes (ms, rounded down) and the exact µs */
    it = at(doc, "submitted");
    assert_true(BSON_ITER_HOLDS_DATE_TIME(&it));
    assert_true(bson_iter_date_time(&it) == (T0 + 123456) / 1000);
    it = at(doc, "_submitted_us");
    assert_true(bson_iter_as_int64(&it) == T0 + 123456);
    it = at(doc, "started");
    assert_true(bson_iter_date_time(&it) == -1);
    /* buffers: binary */
    assert_int_equal(type_of(doc, "buffers"), BSON_TYPE_ARRAY);
    assert_int_equal(type_of(doc, "buffers.0"), BSON_TYPE_BINARY);
    assert_int_equal(type_of(doc, "buffers.1"), BSON_TYPE_BINARY);
    assert_int_equal(type_of(doc, "_seq"), BSON_TYPE_INT64);
    /* absent fields are left out */
    assert_int_equal(type_of(doc, "stderr"), BSON_TYPE_EOD);
    assert_int_equal(type_of(doc, "completed"), BSON_TYPE_EOD);
    assert_int_equal(type_of(doc, "result_buffers"), BSON_TYPE_EOD);
    bson_destroy(doc);

    got = get_ok(fx, "shape");
    assert_same_record(&r, got);
    cpar__record__free_unpacked(got, NULL);

    /* An update rewriting the text compactly drops the note beside it. */
    cpar_record_init(&r);
    r.msg_id = "shape";
    r.header = "{\"msg_id\":\"y\"}";
    update_ok(fx, &r, CPAR_REC_HEADER | CPAR_REC_STARTED);
    doc = raw_doc(fx->records, "shape");
    assert_int_equal(type_of(doc, "_header_json"), BSON_TYPE_EOD);
    assert_int_equal(type_of(doc, "started"), BSON_TYPE_EOD);
    assert_int_equal(type_of(doc, "_started_us"), BSON_TYPE_EOD);
    bson_destroy(doc);
    got = get_ok(fx, "shape");
    assert_string_equal(got->header, "{\"msg_id\":\"y\"}");
    assert_false(got->has_started);
    cpar__record__free_unpacked(got, NULL);
}

/* Buffer fields over 1 MiB live in task_record_buffers, and go when they are replaced or dropped.
 */
static void test_large_buffers_in_chunks(void **state)
{
    const size_t big = (size_t)9 << 20, mid = (size_t)3 << 19;
    fixture_t *fx = *state;
    uint8_t *data = malloc(big);
    ProtobufCBinaryData bufs[3], res[1];
    cpar_record_t r, *got;
    size_t dropped = 0;
    cpar_query_t *q;
    bson_t *doc;

    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 7);
    bufs[0] = bin(data, big);
    bufs[1] = bin("", 0);
    bufs[2] = bin("tail", 4);
    cpar_record_init(&r);
    r.msg_id = "big";
    r.n_buffers = 3;
    r.buffers = bufs;
    r.has_submitted = 1;
    r.submitted = T0;
    add_ok(fx, &r);

    doc = raw_doc(fx->records, "big");
    assert_int_equal(type_of(doc, "buffers"), BSON_TYPE_DOCUMENT);
    assert_int_equal(type_of(doc, "buffers.lens"), BSON_TYPE_ARRAY);
    assert_int_equal(type_of(doc, "_buffers_gen"), BSON_TYPE_OID);
    bson_destroy(doc);
    assert_int_equal(count(fx->chunks, "msg_id", "big"), 4); /* 4 + 4 + 1 MiB, and "tail" */
    got = get_ok(fx, "big");
    assert_same_record(&r, got);
    cpar__record__free_unpacked(got, NULL);

    /* A large result replaces nothing; a small request buffer replaces the chunked one. */
    res[0] = bin(data + 7, mid);
    cpar_record_init(&r);
    r.msg_id = "big";
    r.n_result_buffers = 1;
    r.result_buffers = res;
    update_ok(fx, &r, CPAR_REC_RESULT_BUFFERS);
    assert_int_equal(count(fx->chunks, "field", "result_buffers"), 1);
    assert_int_equal(count(fx->chunks, "field", "buffers"), 4);
    r.n_buffers = 1;
    r.buffers = bufs + 2;
    update_ok(fx, &r, CPAR_REC_BUFFERS);
    assert_int_equal(count(fx->chunks, "field", "buffers"), 0);
    doc = raw_doc(fx->records, "big");
    assert_int_equal(type_of(doc, "buffers"), BSON_TYPE_ARRAY);
    assert_int_equal(type_of(doc, "_buffers_gen"), BSON_TYPE_EOD);
    bson_destroy(doc);
    got = get_ok(fx, "big");
    assert_int_equal(got->n_buffers, 1);
    assert_int_equal(got->n_result_buffers, 1);
    assert_int_equal(got->result_buffers[0].len, mid);
    assert_memory_equal(got->result_buffers[0].data, data + 7, mid);
    cpar__record__free_unpacked(got, NULL);

    /* Replaced by another large one: only the new chunks remain. */
    res[0] = bin(data + 11, mid);
    update_ok(fx, &r, CPAR_REC_RESULT_BUFFERS);
    assert_int_equal(count(fx->chunks, "field", "result_buffers"), 1);
    got = get_ok(fx, "big");
    assert_memory_equal(got->result_buffers[0].data, data + 11, mid);
    cpar__record__free_unpacked(got, NULL);

    /* drop_record, and drop_matching, take the chunks along. */
    assert_int_equal(cpar_db_drop(fx->db, "big"), 0);
    assert_int_equal(count(fx->chunks, NULL, NULL), 0);
    cpar_record_init(&r);
    r.msg_id = "big2";
    r.n_buffers = 1;
    r.buffers = bufs;
    add_ok(fx, &r);
    r.msg_id = "big3";
    add_ok(fx, &r);
    assert_int_equal(count(fx->chunks, NULL, NULL), 6);
    q = query_of("{\"msg_id\": {\"$in\": [\"big2\"]}}");
    assert_int_equal(cpar_db_drop_matching(fx->db, q, &dropped), 0);
    assert_int_equal(dropped, 1);
    cpar_query_free(q);
    assert_int_equal(count(fx->chunks, NULL, NULL), 3);
    /* A duplicate leaves no chunks behind. */
    assert_int_equal(cpar_db_add(fx->db, &r), CPAR_EEXIST);
    assert_int_equal(count(fx->chunks, NULL, NULL), 3);
    free(data);
}

/* Records as ipyparallel's own MongoDB backend wrote them: no µs, None as null, no _seq. */
static void test_records_written_by_python(void **state)
{
    fixture_t *fx = *state;
    bson_t *doc =
        BCON_NEW("msg_id", BCON_UTF8("py1"), "header", "{", "msg_id", BCON_UTF8("py1"), "date",
                 BCON_DATE_TIME((T0 + 123456) / 1000), "session", BCON_UTF8("s"), "}", "metadata",
                 "{", "}", "content", "{", "}", "buffers", "[",
                 BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"abc", 3), "]", "submitted",
                 BCON_DATE_TIME((T0 + 123456) / 1000), "client_uuid", BCON_UTF8("s"), "engine_uuid",
                 BCON_NULL, "started", BCON_NULL, "completed", BCON_NULL, "queue",
                 BCON_UTF8("task"), "stdout", BCON_UTF8(""), "result_content", BCON_NULL);
    static const char *const order[] = {"first", "py1", "last"};
    cpar_record_t r, *got;
    idset_t hist = {0};
    bson_error_t e;

    cpar_record_init(&r);
    r.msg_id = "first";
    r.has_submitted = 1;
    r.submitted = T0;
    add_ok(fx, &r);
    if (!mongoc_collection_insert_one(fx->records, doc, NULL, NULL, &e))
        fail_msg("insert: %s", e.message);
    bson_destroy(doc);
    r.msg_id = "last";
    r.submitted = T0 + 123999;
    add_ok(fx, &r);

    got = get_ok(fx, "py1");
    assert_string_equal(got->header, "{\"msg_id\":\"py1\",\"date\":\"2021-10-01T00:00:00.123000Z\","
                                     "\"session\":\"s\"}");
    assert_string_equal(got->metadata, "{}");
    assert_true(got->has_submitted && got->submitted == T0 + 123000);
    assert_false(got->has_started);
    assert_null(got->engine_uuid);
    assert_null(got->result_content);
    assert_string_equal(got->stdout, "");
    assert_int_equal(got->n_buffers, 1);
    assert_memory_equal(got->buffers[0].data, "abc", 3);
    cpar__record__free_unpacked(got, NULL);

    assert_int_equal(cpar_db_history(fx->db, collect_history, &hist), 0);
    assert_int_equal(hist.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(hist.ids[i], order[i]);

    /* and it takes updates like any other */
    cpar_record_init(&r);
    r.msg_id = "py1";
    r.has_completed = 1;
    r.completed = T0 + 5;
    update_ok(fx, &r, CPAR_REC_COMPLETED);
    got = get_ok(fx, "py1");
    assert_true(got->has_completed && got->completed == T0 + 5);
    assert_true(check_query(fx, "{\"completed\": \"2021-10-01T00:00:00.000005Z\"}", &got, 1));
    assert_true(check_query(fx, "{\"header.session\": \"s\"}", &got, 1));
    cpar__record__free_unpacked(got, NULL);
}

static void test_indexes(void **state)
{
    static const char *const want[] = {"msg_id_1", "submitted_1__submitted_us_1__seq_1",
                                       "completed_1", "engine_uuid_1"};
    fixture_t *fx = *state;
    mongoc_cursor_t *cur;
    const bson_t *ix;
    int found[4] = {0}, unique = 0, chunk_ix = 0;
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "any";
    add_ok(fx, &r); /* the first operation makes them */
    cur = mongoc_collection_find_indexes_with_opts(fx->records, NULL);
    while (mongoc_cursor_next(cur, &ix)) {
        bson_iter_t it;
        const char *name;
        if (!bson_iter_init_find(&it, ix, "name"))
            continue;
        name = bson_iter_utf8(&it, NULL);
        for (size_t i = 0; i < 4; i++)
            if (strcmp(name, want[i]) == 0)
                found[i] = 1;
        if (strcmp(name, "msg_id_1") == 0 && bson_iter_init_find(&it, ix, "unique"))
            unique = bson_iter_as_bool(&it);
    }
    mongoc_cursor_destroy(cur);
    cur = mongoc_collection_find_indexes_with_opts(fx->chunks, NULL);
    while (mongoc_cursor_next(cur, &ix))
        chunk_ix++;
    mongoc_cursor_destroy(cur);
    for (size_t i = 0; i < 4; i++)
        if (!found[i])
            fail_msg("no index %s", want[i]);
    assert_true(unique);
    assert_int_equal(chunk_ix, 2); /* _id and (msg_id, field, gen, n) */
}

/* ---- queries against the reference matcher ------------------------------------------------ */

static const char *const texts[] = {
    "hello world\n",
    "h\xc3\xa9llo",
    "a.b",
    "a\xc3\xa9"
    "b",
    "ab",
    "a\nb",
    "[x]",
    "x$",
    "tab\tsep",
    "",
    "\xc3\xbf",
    "abc\n",
    "A-B",
    "train-12",
    "train-x",
    "\\back",
    "a*b",
    "aXXb",
};

static void test_patterns(void **state)
{
    static const char *const eres[] = {
        "^h",
        "o$",
        "a.b",
        "a..b",
        "^.$",
        "^..$",
        "[^a]b",
        "a[^x]b",
        "\xc3\xa9",
        "\\.",
        "a|b",
        "(ab)+",
        "b{1,2}",
        "^[[:alpha:]]+$",
        "\\<h",
        "x\\$",
        "\\[x\\]",
        "^$",
        "c$",
        "^train-[0-9]+$",
        "[]x]",
        "[\\]",
        "^a.*b$",
        "a.?b",
        "^[^[:space:]]*$",
        "A-B|ab",
        "(^|x)a",
        "b$|^t",
        ".",
        "^(a|b)*$",
        "[a-c]{2}",
        "\\*",
        "^\\\\",
        "X{2}",
    };
    static const char *const globs[] = {
        "h*",    "a?b",    "a??b",  "*[!a]*",       "[]x]*", "\\[x\\]", "*\n",
        "a*b",   "[a-c]*", "?",     "??",           "*",     "",        "train-[0-9]*",
        "[!t]*", "\\\\*",  "a\\*b", "[[:upper:]]*", "*\\$",  "x$",
    };
    fixture_t *fx = *state;
    cpar_record_t recs[sizeof texts / sizeof texts[0]], *ptrs[sizeof texts / sizeof texts[0]];
    char ids[sizeof texts / sizeof texts[0]][8];
    size_t n = sizeof texts / sizeof texts[0], checked = 0;

    for (size_t i = 0; i < n; i++) {
        cpar_record_init(&recs[i]);
        snprintf(ids[i], sizeof ids[i], "p%zu", i);
        recs[i].msg_id = ids[i];
        recs[i].stdout = (char *)texts[i];
        ptrs[i] = &recs[i];
        add_ok(fx, &recs[i]);
    }
    for (size_t i = 0; i < sizeof eres / sizeof eres[0]; i++) {
        json_t *q = json_pack("{s{ss}}", "stdout", "$regex", eres[i]);
        char *text = json_dumps(q, 0);
        checked += check_query(fx, text, ptrs, n);
        free(text);
        json_decref(q);
    }
    for (size_t i = 0; i < sizeof globs / sizeof globs[0]; i++) {
        json_t *q = json_pack("{s{ss}}", "stdout", "$glob", globs[i]);
        char *text = json_dumps(q, 0);
        checked += check_query(fx, text, ptrs, n);
        free(text);
        json_decref(q);
    }
    print_message("  %zu patterns checked\n", checked);
    assert_true(checked > 40);
}

/* A small deterministic generator: CPAR_TEST_SEED replays a run (the seed is printed). */
static uint32_t rng = 12345;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng % n;
}

#define PICK(arr) (arr)[rnd(sizeof(arr) / sizeof((arr)[0]))]

static const char *const r_headers[] = {
    "{\"msg_type\":\"apply_request\",\"n\":1,\"tags\":[\"a\",\"b\"],\"session\":\"s1\"}",
    "{\"msg_type\": \"apply_request\", \"n\": 2, \"tags\": [\"b\"], \"session\": \"s1\"}",
    "{\"msg_type\":\"execute_request\",\"n\":3,\"tags\":[],\"nested\":{\"deep\":1}}",
    "{\"msg_type\":\"apply_request\",\"n\":4.5,\"session\":\"s2\"}",
    "{\"msg_type\":\"apply_request\",\"n\":-5,\"flag\":true}",
    "{\"n\":true,\"tags\":[[\"a\",\"b\"],\"c\"],\"x.y\":1}",
    "{\"n\":1.0,\"tags\":\"a\",\"nested\":[{\"deep\":1}]}",
    "{\"n\":\"1\",\"tags\":[{\"a\":1}],\"nested\":{\"deep\":null}}",
    "not json",
};
static const char *const r_metadata[] = {
    "{\"targets\":[0,1],\"retries\":0}",
    "{\"retries\":0,\"targets\":[1,0]}",
    "{\"targets\":0}",
    "{}",
};
static const char *const r_status[] = {
    "{\"status\":\"ok\"}",
    "{\"status\":\"error\",\"ename\":\"ValueError\"}",
    "{\"status\":\"aborted\"}",
};
static const char *const r_engines[] = {"e1", "e2", ""};
static const char *const r_labels[] = {"train-1", "train-2", "eval", "\xc3\xa9val"};
static const char *const r_queues[] = {"task", "mux"};

static const struct {
    const char *key;
    const char *values[8]; /* JSON texts */
} q_keys[] = {
    {"msg_id", {"\"r1\"", "\"r7\"", "null", "1"}},
    {"engine_uuid", {"\"e1\"", "\"e2\"", "\"\"", "null", "1", "\"e\""}},
    {"queue", {"\"task\"", "\"mux\"", "null"}},
    {"stdout", {"\"hello world\\n\"", "\"\"", "null", "\"a.b\""}},
    {"label", {"\"train-1\"", "\"eval\"", "null"}},
    {"submitted",
     {"\"2021-10-01T00:00:01Z\"", "\"2021-10-01T00:00:02.123456Z\"", "null", "0",
      "\"2021-10-01T00:00:02.123Z\""}},
    {"completed", {"\"2021-10-01T00:00:03Z\"", "null", "\"zzz\""}},
    {"header", {"null", "{\"n\": 1}", "\"not json\""}},
    {"header.n", {"1", "2", "4.5", "-5", "1.0", "true", "\"1\"", "null"}},
    {"header.tags", {"\"a\"", "\"b\"", "[\"a\", \"b\"]", "[]", "[\"b\"]", "null", "\"c\""}},
    {"header.msg_type", {"\"apply_request\"", "\"execute_request\"", "null"}},
    {"header.nested.deep", {"1", "null"}},
    {"header.x.y", {"1", "null"}},
    {"header.flag", {"true", "1", "null"}},
    {"metadata", {"{\"retries\": 0, \"targets\": [0, 1]}", "{}", "null"}},
    {"metadata.targets", {"0", "1", "[0, 1]", "[1, 0]", "null"}},
    {"result_content.status", {"\"ok\"", "\"error\"", "null"}},
    {"buffers", {"null", "1"}},
};
static const char *const q_ops[] = {"",    "$eq",  "$ne",  "$lt",  "$gt",     "$lte",   "$gte",
                                    "$in", "$nin", "$all", "$mod", "$exists", "$regex", "$glob"};
static const char *const q_mods[] = {"[2, 0]", "[2, 1]", "[3, -2]", "[-2, 1]", "[1, 0]"};
static const char *const q_patterns[] = {
    "\"^a\"", "\"e\"", "\"^train-[0-9]+$\"", "\"o$\"", "\"a.b\"", "\"\"", "\"t*\"", "\"?val\""};

/* One random term, {"key": value-or-operator}, as JSON text. */
static void random_term(char *out, size_t len)
{
    size_t k = rnd(sizeof q_keys / sizeof q_keys[0]), nvals = 0;
    const char *op = PICK(q_ops);

    while (nvals < 8 && q_keys[k].values[nvals])
        nvals++;
#define VAL() q_keys[k].values[rnd((uint32_t)nvals)]
    if (!*op)
        snprintf(out, len, "\"%s\": %s", q_keys[k].key, VAL());
    else if (!strcmp(op, "$in") || !strcmp(op, "$nin") || !strcmp(op, "$all"))
        snprintf(out, len, "\"%s\": {\"%s\": [%s, %s]}", q_keys[k].key, op, VAL(), VAL());
    else if (!strcmp(op, "$mod"))
        snprintf(out, len, "\"%s\": {\"$mod\": %s}", q_keys[k].key, PICK(q_mods));
    else if (!strcmp(op, "$exists"))
        snprintf(out, len, "\"%s\": {\"$exists\": %s}", q_keys[k].key, rnd(2) ? "true" : "false");
    else if (!strcmp(op, "$regex") || !strcmp(op, "$glob"))
        snprintf(out, len, "\"%s\": {\"%s\": %s}", q_keys[k].key, op, PICK(q_patterns));
    else
        snprintf(out, len, "\"%s\": {\"%s\": %s}", q_keys[k].key, op, VAL());
#undef VAL
}

static void test_random_queries(void **state)
{
    enum { NREC = 40, NQUERY = 400 };
    static ProtobufCBinaryData one = {1, (uint8_t *)"x"};
    fixture_t *fx = *state;
    cpar_record_t recs[NREC], *ptrs[NREC];
    char ids[NREC][8];
    size_t checked = 0;
    const char *seed = getenv("CPAR_TEST_SEED");

    if (seed && *seed)
        rng = (uint32_t)strtoul(seed, NULL, 0) | 1u;
    print_message("  seed %u\n", (unsigned)rng);

    for (size_t i = 0; i < NREC; i++) {
        cpar_record_t *r = &recs[i];
        cpar_record_init(r);
        snprintf(ids[i], sizeof ids[i], "r%zu", i);
        r->msg_id = ids[i];
        if (rnd(4))
            r->header = (char *)PICK(r_headers);
        if (rnd(2))
            r->metadata = (char *)PICK(r_metadata);
        if (rnd(2))
            r->result_content = (char *)PICK(r_status);
        if (rnd(3))
            r->engine_uuid = (char *)PICK(r_engines);
        if (rnd(3))
            r->queue = (char *)PICK(r_queues);
        if (rnd(3))
            r->label = (char *)PICK(r_labels);
        if (rnd(2))
            r->stdout = (char *)PICK(texts);
        if (rnd(4)) {
            r->has_submitted = 1;
            r->submitted = T0 + (int64_t)rnd(5) * 500000 + (rnd(2) ? 123456 : 0);
        }
        if (rnd(2)) {
            r->has_completed = 1;
            r->completed = T0 + (int64_t)rnd(4) * 1000000;
        }
        if (!rnd(3)) {
            r->n_buffers = 1;
            r->buffers = &one;
        }
        ptrs[i] = r;
        add_ok(fx, r);
    }
    for (size_t i = 0; i < NQUERY; i++) {
        char t1[256], t2[256], json[600];
        random_term(t1, sizeof t1);
        if (rnd(3)) {
            snprintf(json, sizeof json, "{%s}", t1);
        } else {
            random_term(t2, sizeof t2);
            snprintf(json, sizeof json, "{%s, %s}", t1, t2);
        }
        checked += check_query(fx, json, ptrs, NREC);
    }
    print_message("  %zu random queries checked\n", checked);
    assert_true(checked > NQUERY / 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_document_shape),
        T(test_large_buffers_in_chunks),
        T(test_records_written_by_python),
        T(test_indexes),
        T(test_patterns),
        T(test_random_queries),
    };
#undef T
    mongoc_uri_t *uri;
    bson_error_t e;
    int rc;

    server_uri = getenv("CPAR_TEST_MONGODB_URI");
    if (!server_uri || !*server_uri) {
        fprintf(stderr, "CPAR_TEST_MONGODB_URI names no server (run me through "
                        "tests/support/mongo_standin.py)\n");
        return 2;
    }
    mongoc_init();
    uri = mongoc_uri_new_with_error(server_uri, &e);
    if (!uri) {
        fprintf(stderr, "%s: %s\n", server_uri, e.message);
        return 2;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    raw = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (!raw || !mkdtemp(profile_dir))
        return 2;
    rc = cmocka_run_group_tests_name("mongodb backend", tests, NULL, NULL);
    mongoc_client_destroy(raw);
    rmdir(profile_dir);
    mongoc_cleanup();
    return rc;
}
