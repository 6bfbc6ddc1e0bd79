/*
 * dbcontract_query.c - the dbbackend contract, queries: find_records with every operator of
 * sdk/proto/query.proto, projections, and drop_matching.
 *
 * Most tests load the same six records (load_dataset) and check which of them each query
 * selects. The expected selections are written out by hand from query.proto's semantics, so
 * they check the backend and the reference matcher alike.
 */
#include "dbcontract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/query.h>

#include "util/clock.h"

/* 2021-10-01T00:00:00Z */
#define T0 INT64_C(1633046400000000)
#define SEC INT64_C(1000000)

/* ---- the dataset ------------------------------------------------------------------------- */

static ProtobufCBinaryData q1_bufs[1], q1_res[1];

/*
 *        engine  queue submitted        completed  header.n  header.tags  stdout        label
 *   q1   e1      task  T0+1s            T0+2s      1         [a, b]       hello world   train-1
 *   q2   e2      task  T0+2.123456s     T0+3s      2         [b]          ""            train-2
 *   q3   e1      mux   T0+3s            -          3         []           hello         eval
 *   q4   -       task  T0+4s            -          4.5       -            -             -
 *   q5   -       -     -                -          (no header)            early output  -
 *   q6   ""      task  T0+4s            T0+5s      -5        -            -             -
 */
static void load_dataset(fixture_t *fx)
{
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "q1";
    r.engine_uuid = "e1";
    r.queue = "task";
    set_time(&r, CPAR_REC_SUBMITTED, T0 + 1 * SEC);
    set_time(&r, CPAR_REC_STARTED, T0 + 1 * SEC + 500);
    set_time(&r, CPAR_REC_COMPLETED, T0 + 2 * SEC);
    r.header = "{\"msg_type\":\"apply_request\",\"n\":1,\"tags\":[\"a\",\"b\"],\"session\":\"s1\"}";
    r.metadata = "{\"targets\":[0,1],\"retries\":0}";
    r.result_content = "{\"status\":\"ok\"}";
    r.stdout = "hello world\n";
    r.label = "train-1";
    q1_bufs[0] = bin("x", 1);
    q1_res[0] = bin("\0", 1);
    r.n_buffers = 1;
    r.buffers = q1_bufs;
    r.n_result_buffers = 1;
    r.result_buffers = q1_res;
    add_ok(fx, &r);

    cpar_record_init(&r);
    r.msg_id = "q2";
    r.engine_uuid = "e2";
    r.queue = "task";
    set_time(&r, CPAR_REC_SUBMITTED, T0 + 2 * SEC + 123456);
    set_time(&r, CPAR_REC_COMPLETED, T0 + 3 * SEC);
    r.header = "{\"msg_type\":\"apply_request\",\"n\":2,\"tags\":[\"b\"],\"session\":\"s1\"}";
    r.metadata = "{\"retries\":0,\"targets\":[1,0]}";
    r.result_content = "{\"status\":\"error\",\"ename\":\"ValueError\"}";
    r.stdout = "";
    r.label = "train-2";
    add_ok(fx, &r);

    cpar_record_init(&r);
    r.msg_id = "q3";
    r.engine_uuid = "e1";
    r.queue = "mux";
    set_time(&r, CPAR_REC_SUBMITTED, T0 + 3 * SEC);
    r.header = "{\"msg_type\":\"execute_request\",\"n\":3,\"tags\":[],\"session\":\"s2\"}";
    r.stdout = "hello\n";
    r.label = "eval";
    add_ok(fx, &r);

    cpar_record_init(&r);
    r.msg_id = "q4";
    r.queue = "task";
    set_time(&r, CPAR_REC_SUBMITTED, T0 + 4 * SEC);
    r.header = "{\"msg_type\":\"apply_request\",\"n\":4.5,\"session\":\"s2\"}";
    add_ok(fx, &r);

    /* iopub output that came before its request: a stub without submitted */
    cpar_record_init(&r);
    r.msg_id = "q5";
    r.stdout = "early output";
    add_ok(fx, &r);

    cpar_record_init(&r);
    r.msg_id = "q6";
    r.engine_uuid = "";
    r.queue = "task";
    set_time(&r, CPAR_REC_SUBMITTED, T0 + 4 * SEC);
    set_time(&r, CPAR_REC_COMPLETED, T0 + 5 * SEC);
    r.header = "{\"msg_type\":\"apply_request\",\"n\":-5}";
    r.result_content = "{\"status\":\"aborted\"}";
    r.resubmitted = "q7";
    add_ok(fx, &r);
}

#define ALL_IDS "q1 q2 q3 q4 q5 q6"

/* One query and the ids it selects. */
typedef struct qcase {
    const char *query;
    const char *ids;
} qcase_t;

static void expect_cases(fixture_t *fx, const qcase_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_find(fx, cases[i].query, cases[i].ids);
}

/* Load the dataset and check each case of a table against it. */
#define EXPECT_CASES(state, ...)                                                                 \
    do {                                                                                         \
        static const qcase_t cases_[] = {__VA_ARGS__};                                           \
        fixture_t *fx_ = *(state);                                                               \
        load_dataset(fx_);                                                                       \
        expect_cases(fx_, cases_, sizeof cases_ / sizeof cases_[0]);                             \
    } while (0)

/* ---- operators --------------------------------------------------------------------------- */

static void test_find_empty_query_matches_all(void **state)
{
    EXPECT_CASES(state, {"{}", ALL_IDS});
}

static void test_find_eq(void **state)
{
    EXPECT_CASES(state,
                 {"{\"engine_uuid\": \"e1\"}", "q1 q3"},
                 {"{\"engine_uuid\": {\"$eq\": \"e2\"}}", "q2"},
                 {"{\"engine_uuid\": \"\"}", "q6"},
                 {"{\"queue\": \"mux\"}", "q3"},
                 {"{\"msg_id\": \"q2\"}", "q2"},
                 {"{\"msg_id\": \"nope\"}", ""},
                 {"{\"stdout\": \"\"}", "q2"});
}

static void test_find_null_matches_absent(void **state)
{
    EXPECT_CASES(state,
                 {"{\"engine_uuid\": null}", "q4 q5"},
                 {"{\"completed\": null}", "q3 q4 q5"},
                 {"{\"completed\": {\"$eq\": null}}", "q3 q4 q5"},
                 {"{\"header\": null}", "q5"},
                 {"{\"header.tags\": null}", "q4 q5 q6"},
                 {"{\"msg_id\": null}", ""},
                 {"{\"buffers\": null}", "q2 q3 q4 q5 q6"},
                 {"{\"result_buffers\": {\"$ne\": null}}", "q1"});
}

static void test_find_ne(void **state)
{
    EXPECT_CASES(state,
                 /* absent fields are not equal to a value */
                 {"{\"engine_uuid\": {\"$ne\": \"e1\"}}", "q2 q4 q5 q6"},
                 {"{\"completed\": {\"$ne\": null}}", "q1 q2 q6"},
                 {"{\"msg_id\": {\"$ne\": \"\"}}", ALL_IDS},
                 {"{\"resubmitted\": {\"$ne\": \"q7\"}}", "q1 q2 q3 q4 q5"});
}

/* ipyparallel 7.1's DictDB compared every plain-equality key with the last one's value. */
static void test_find_several_keys_each_with_its_value(void **state)
{
    EXPECT_CASES(state,
                 {"{\"engine_uuid\": \"e1\", \"queue\": \"task\"}", "q1"},
                 {"{\"engine_uuid\": \"e1\", \"queue\": \"mux\"}", "q3"},
                 {"{\"queue\": \"task\", \"engine_uuid\": \"e2\"}", "q2"},
                 {"{\"queue\": \"task\", \"engine_uuid\": \"task\"}", ""},
                 {"{\"engine_uuid\": \"e1\", \"completed\": {\"$ne\": null}, \"queue\": \"task\"}",
                  "q1"});
}

/* ipyparallel 7.1's DictDB ran $gt as $lt. */
static void test_find_gt_is_greater_than(void **state)
{
    EXPECT_CASES(state,
                 {"{\"submitted\": {\"$gt\": \"2021-10-01T00:00:02.123456Z\"}}", "q3 q4 q6"},
                 {"{\"submitted\": {\"$gt\": \"2021-10-01T00:00:04Z\"}}", ""},
                 {"{\"engine_uuid\": {\"$gt\": \"e1\"}}", "q2"},
                 {"{\"header.n\": {\"$gt\": 2}}", "q3 q4"});
}

static void test_find_lt_lte_gte(void **state)
{
    EXPECT_CASES(state,
                 {"{\"submitted\": {\"$lt\": \"2021-10-01T00:00:02.123456Z\"}}", "q1"},
                 {"{\"submitted\": {\"$lte\": \"2021-10-01T00:00:02.123456Z\"}}", "q1 q2"},
                 {"{\"submitted\": {\"$gte\": \"2021-10-01T00:00:02.123456Z\"}}", "q2 q3 q4 q6"},
                 /* absent fields never compare */
                 {"{\"completed\": {\"$lt\": \"2021-10-01T00:01:00Z\"}}", "q1 q2 q6"},
                 {"{\"engine_uuid\": {\"$lt\": \"e1\"}}", "q6"},
                 {"{\"engine_uuid\": {\"$gte\": \"e1\"}}", "q1 q2 q3"},
                 {"{\"header.n\": {\"$lte\": 1}}", "q1 q6"},
                 {"{\"header.n\": {\"$lt\": 4.5}}", "q1 q2 q3 q6"},
                 /* several operators on one key are ANDed */
                 {"{\"submitted\": {\"$gt\": \"2021-10-01T00:00:01Z\", "
                  "\"$lt\": \"2021-10-01T00:00:04Z\"}}",
                  "q2 q3"});
}

static void test_find_dates_exact_to_the_microsecond(void **state)
{
    EXPECT_CASES(state,
                 {"{\"submitted\": \"2021-10-01T00:00:02.123456Z\"}", "q2"},
                 {"{\"submitted\": \"2021-10-01T02:00:02.123456+02:00\"}", "q2"},
                 {"{\"submitted\": \"2021-09-30T19:00:02.123456-0500\"}", "q2"},
                 {"{\"submitted\": \"2021-10-01T00:00:02.123457Z\"}", ""},
                 {"{\"submitted\": {\"$gt\": \"2021-10-01T00:00:02.123455Z\", "
                  "\"$lt\": \"2021-10-01T00:00:02.123457Z\"}}",
                  "q2"},
                 {"{\"submitted\": {\"$in\": [\"2021-10-01T00:00:04Z\", "
                  "\"2021-10-01T00:00:01Z\"]}}",
                  "q1 q4 q6"},
                 {"{\"started\": \"2021-10-01T00:00:01.0005Z\"}", "q1"});
}

static void test_find_mismatched_types_never_match(void **state)
{
    EXPECT_CASES(state,
                 {"{\"engine_uuid\": {\"$gt\": 1}}", ""},
                 {"{\"engine_uuid\": 1}", ""},
                 {"{\"submitted\": {\"$lt\": \"zzz\"}}", ""},
                 {"{\"submitted\": {\"$gt\": 0}}", ""},
                 {"{\"header.n\": \"1\"}", ""},
                 {"{\"header.n\": true}", ""},
                 {"{\"header.tags\": {\"$gt\": 0}}", ""},
                 /* dates inside JSON fields are text; query dates are not */
                 {"{\"header.session\": {\"$gt\": \"2000-01-01T00:00:00Z\"}}", ""});
}

static void test_find_numbers_compare_across_int_and_real(void **state)
{
    EXPECT_CASES(state,
                 {"{\"header.n\": 1.0}", "q1"},
                 {"{\"header.n\": 4.5}", "q4"},
                 {"{\"header.n\": {\"$gte\": -5.0, \"$lt\": 1.5}}", "q1 q6"});
}

static void test_find_in_nin(void **state)
{
    EXPECT_CASES(state,
                 {"{\"msg_id\": {\"$in\": [\"q1\", \"q3\", \"nope\"]}}", "q1 q3"},
                 {"{\"msg_id\": {\"$in\": [\"q2\", \"q2\"]}}", "q2"},
                 {"{\"msg_id\": {\"$in\": \"q2\"}}", "q2"},
                 {"{\"engine_uuid\": {\"$in\": [\"e2\", null]}}", "q2 q4 q5"},
                 {"{\"header.msg_type\": {\"$in\": [\"execute_request\"]}}", "q3"},
                 {"{\"header.n\": {\"$in\": [2, 4.5]}}", "q2 q4"},
                 {"{\"engine_uuid\": {\"$nin\": [\"e1\", null]}}", "q2 q6"},
                 {"{\"msg_id\": {\"$nin\": [\"q1\", \"q2\", \"q3\"]}}", "q4 q5 q6"});
}

/* An empty $in matches nothing and an empty $nin everything, in every backend. */
static void test_find_empty_in_and_nin(void **state)
{
    EXPECT_CASES(state,
                 {"{\"msg_id\": {\"$in\": []}}", ""},
                 {"{\"queue\": \"task\", \"msg_id\": {\"$in\": []}}", ""},
                 {"{\"msg_id\": {\"$nin\": []}}", ALL_IDS},
                 {"{\"engine_uuid\": {\"$nin\": []}}", ALL_IDS});
}

/* MongoDB's $all, not ipyparallel 7.1's (the record value contained in each query element). */
static void test_find_all(void **state)
{
    EXPECT_CASES(state,
                 {"{\"header.tags\": {\"$all\": [\"a\", \"b\"]}}", "q1"},
                 {"{\"header.tags\": {\"$all\": [\"b\"]}}", "q1 q2"},
                 {"{\"header.tags\": {\"$all\": [\"b\", \"c\"]}}", ""},
                 {"{\"header.tags\": {\"$all\": []}}", ""},
                 {"{\"header.tags\": {\"$all\": [[\"a\", \"b\"]]}}", "q1"},
                 {"{\"engine_uuid\": {\"$all\": [\"e1\"]}}", "q1 q3"},
                 {"{\"engine_uuid\": {\"$all\": [\"e1x\", \"xe1\"]}}", ""});
}

/* $mod truncates as C and MongoDB do: -5 % 3 is -2 (Python would say 1). */
static void test_find_mod(void **state)
{
    EXPECT_CASES(state,
                 {"{\"header.n\": {\"$mod\": [2, 0]}}", "q2 q4"},
                 {"{\"header.n\": {\"$mod\": [2, 1]}}", "q1 q3"},
                 {"{\"header.n\": {\"$mod\": [5, 0]}}", "q6"},
                 {"{\"header.n\": {\"$mod\": [3, -2]}}", "q6"},
                 {"{\"header.n\": {\"$mod\": [-2, 1]}}", "q1 q3"},
                 {"{\"engine_uuid\": {\"$mod\": [2, 0]}}", ""});
}

static void test_find_exists(void **state)
{
    EXPECT_CASES(state,
                 {"{\"completed\": {\"$exists\": true}}", "q1 q2 q6"},
                 {"{\"completed\": {\"$exists\": false}}", "q3 q4 q5"},
                 {"{\"header.tags\": {\"$exists\": true}}", "q1 q2 q3"},
                 {"{\"label\": {\"$exists\": false}}", "q4 q5 q6"},
                 {"{\"buffers\": {\"$exists\": true}}", "q1"},
                 {"{\"result_buffers\": {\"$exists\": false}}", "q2 q3 q4 q5 q6"},
                 {"{\"stdout\": {\"$exists\": true}}", "q1 q2 q3 q5"});
}

static void test_find_regex(void **state)
{
    EXPECT_CASES(state,
                 {"{\"stdout\": {\"$regex\": \"^hello\"}}", "q1 q3"},
                 {"{\"stdout\": {\"$regex\": \"wor\"}}", "q1"},
                 {"{\"stdout\": {\"$regex\": \"o (w|x)o\"}}", "q1"},
                 {"{\"label\": {\"$regex\": \"^train-[0-9]+$\"}}", "q1 q2"},
                 {"{\"header.msg_type\": {\"$regex\": \"^exec\"}}", "q3"},
                 {"{\"submitted\": {\"$regex\": \"2021\"}}", ""},
                 {"{\"stdout\": {\"$regex\": \"\"}}", "q1 q2 q3 q5"});
}

static void test_find_glob(void **state)
{
    EXPECT_CASES(state,
                 {"{\"label\": {\"$glob\": \"train-*\"}}", "q1 q2"},
                 {"{\"label\": {\"$glob\": \"train\"}}", ""},
                 {"{\"label\": {\"$glob\": \"?val\"}}", "q3"},
                 {"{\"result_content.status\": {\"$glob\": \"[ae]*\"}}", "q2 q6"},
                 {"{\"stdout\": {\"$glob\": \"*world*\"}}", "q1"},
                 {"{\"completed\": {\"$glob\": \"*\"}}", ""});
}

static void test_find_dotted_keys(void **state)
{
    EXPECT_CASES(state,
                 {"{\"result_content.status\": \"ok\"}", "q1"},
                 {"{\"header.session\": \"s2\"}", "q3 q4"},
                 {"{\"header.msg_type\": \"apply_request\", \"header.session\": \"s1\"}",
                  "q1 q2"},
                 {"{\"header.nested.deep\": null}", ALL_IDS},
                 {"{\"header.msg_type.deeper\": {\"$exists\": true}}", ""},
                 {"{\"metadata.retries\": 0}", "q1 q2"});
}

/* Lists and dicts compare whole; dicts regardless of key order. */
static void test_find_dict_and_list_values(void **state)
{
    EXPECT_CASES(state,
                 {"{\"metadata\": {\"$eq\": {\"retries\": 0, \"targets\": [0, 1]}}}", "q1"},
                 {"{\"metadata\": {\"$eq\": {\"targets\": [1, 0], \"retries\": 0}}}", "q2"},
                 {"{\"metadata\": {\"$ne\": {\"targets\": [1, 0], \"retries\": 0}}}",
                  "q1 q3 q4 q5 q6"},
                 {"{\"header.tags\": [\"a\", \"b\"]}", "q1"},
                 {"{\"header.tags\": [\"b\", \"a\"]}", ""},
                 {"{\"header.tags\": []}", "q3"},
                 {"{\"metadata.targets\": 0}", ""},
                 {"{\"header.tags\": {\"$in\": [[\"b\"], []]}}", "q2 q3"});
}

/* ---- projection ------------------------------------------------------------------------- */

/* Every field a find asks for is there, with its stored value, and msg_id always. */
static void test_find_projection_each_field(void **state)
{
    fixture_t *fx = *state;
    cpar_record_t full;
    found_t f;

    full_record(&full, "full");
    add_ok(fx, &full);
    for (uint32_t bit = 1; bit & CPAR_REC_ALL; bit <<= 1) {
        find_ok(fx, "{\"msg_id\": \"full\"}", bit, &f);
        if (f.n != 1)
            fail_msg("find asking for %s: %zu records", cpar_record_field_name(bit), f.n);
        assert_string_equal(f.rec[0]->msg_id, "full");
        assert_fields_equal(&full, f.rec[0], bit);
        found_free(&f);
    }
    find_ok(fx, "{\"msg_id\": \"full\"}", 0, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.rec[0]->msg_id, "full");
    found_free(&f);
    find_ok(fx, "{}", CPAR_REC_ALL, &f);
    assert_int_equal(f.n, 1);
    assert_records_equal(&full, f.rec[0]);
    found_free(&f);
}

/* Asking for some fields, the query may still test others. */
static void test_find_projection_independent_of_tested_fields(void **state)
{
    fixture_t *fx = *state;
    found_t f;

    load_dataset(fx);
    find_ok(fx, "{\"header.tags\": {\"$all\": [\"a\"]}, \"stdout\": {\"$regex\": \"world\"}}",
            CPAR_REC_COMPLETED, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.rec[0]->msg_id, "q1");
    assert_true(f.rec[0]->has_completed);
    assert_true(f.rec[0]->completed == T0 + 2 * SEC);
    found_free(&f);
}

/* Buffers come back byte-exact through find: empty ones, NULs, 8 MiB. */
static void test_find_buffers_byte_exact(void **state)
{
    const size_t size = (size_t)8 << 20;
    fixture_t *fx = *state;
    uint8_t *data = malloc(size);
    ProtobufCBinaryData bufs[3];
    cpar_record_t r, full;
    found_t f;

    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 11);
    bufs[0] = bin("", 0);
    bufs[1] = bin(data, size);
    bufs[2] = bin("\0\xff\0", 3);
    cpar_record_init(&r);
    r.msg_id = "big";
    set_time(&r, CPAR_REC_SUBMITTED, T0);
    r.n_buffers = 3;
    r.buffers = bufs;
    r.n_result_buffers = 2;
    r.result_buffers = bufs + 1;
    add_ok(fx, &r);
    full_record(&full, "full");
    add_ok(fx, &full);

    find_ok(fx, "{\"msg_id\": {\"$in\": [\"big\", \"full\"]}}", CPAR_REC_BUFFER_FIELDS, &f);
    assert_int_equal(f.n, 2);
    for (size_t i = 0; i < f.n; i++)
        assert_fields_equal(strcmp(f.rec[i]->msg_id, "big") == 0 ? &r : &full, f.rec[i],
                            CPAR_REC_BUFFER_FIELDS);
    found_free(&f);
    assert_int_equal(drop_matching_ok(fx, "{\"buffers\": {\"$exists\": true}}"), 2);
    expect_find(fx, "{}", "");
    free(data);
}

/* Datetimes at the edges of what Python's datetime holds select exactly their record. */
static void test_find_datetimes_round_trip(void **state)
{
    const int64_t *times = dbc_edge_times;
    const size_t n = sizeof dbc_edge_times / sizeof dbc_edge_times[0];
    fixture_t *fx = *state;
    char query[128], iso[CPAR_ISO_LEN], id[16];

    for (size_t i = 0; i < n; i++) {
        cpar_record_t r;
        cpar_record_init(&r);
        snprintf(id, sizeof id, "t%zu", i);
        r.msg_id = id;
        set_time(&r, CPAR_REC_COMPLETED, times[i]);
        add_ok(fx, &r);
    }
    for (size_t i = 0; i < n; i++) {
        found_t f;
        snprintf(query, sizeof query, "{\"completed\": \"%s\"}", cpar_iso_format(times[i], iso));
        find_ok(fx, query, CPAR_REC_COMPLETED, &f);
        if (f.n != 1)
            fail_msg("%s selected %zu records", query, f.n);
        snprintf(id, sizeof id, "t%zu", i);
        assert_string_equal(f.rec[0]->msg_id, id);
        assert_true(f.rec[0]->has_completed && f.rec[0]->completed == times[i]);
        found_free(&f);
    }
    expect_find(fx, "{\"completed\": {\"$lt\": \"1970-01-01T00:00:00Z\"}}", "t2 t6");
    expect_find(fx, "{\"completed\": {\"$gte\": \"2000-02-29T00:00:00.999999Z\"}}", "t3 t4 t5");
}

/* A find callback may read the backend (get_record), and gets the record find passed it. */
typedef struct reentry {
    fixture_t *fx;
    size_t calls;
} reentry_t;

static void reentrant_get(void *arg, const cpar_record_t *rec)
{
    reentry_t *re = arg;
    cpar_record_t *seen = record_copy(rec);
    got_t g = {0};

    get_ok(re->fx, seen->msg_id, &g);
    assert_records_equal(seen, g.rec);
    got_free(&g);
    cpar__record__free_unpacked(seen, NULL);
    re->calls++;
}

static void test_find_callback_may_get_records(void **state)
{
    fixture_t *fx = *state;
    reentry_t re = {fx, 0};
    cpar_query_t *q = query_of("{\"queue\": \"task\"}");

    load_dataset(fx);
    assert_int_equal(cpar_db_find(fx->db, q, CPAR_REC_ALL, reentrant_get, &re), 0);
    assert_int_equal(re.calls, 4);
    cpar_query_free(q);
}

/* ---- drop_matching ---------------------------------------------------------------------- */

static void test_drop_matching_selected_records(void **state)
{
    static const char *const left[] = {"q3", "q4"};
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    load_dataset(fx);
    /* the hub's purge of everything finished */
    assert_int_equal(drop_matching_ok(fx, "{\"completed\": {\"$ne\": null}}"), 3);
    expect_find(fx, "{}", "q3 q4 q5");
    history_is(fx, left, 2);
    assert_int_equal(cpar_db_get(fx->db, "q1", got_record, &g), CPAR_ENOENT);
    assert_int_equal(cpar_db_drop(fx->db, "q2"), CPAR_ENOENT);
    /* a dropped id is free again */
    cpar_record_init(&r);
    r.msg_id = "q1";
    set_time(&r, CPAR_REC_SUBMITTED, T0);
    add_ok(fx, &r);
    get_ok(fx, "q1", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
    expect_find(fx, "{}", "q1 q3 q4 q5");
}

static void test_drop_matching_by_engine_and_ids(void **state)
{
    fixture_t *fx = *state;

    load_dataset(fx);
    /* the hub's purge of an engine's finished results */
    assert_int_equal(drop_matching_ok(fx, "{\"engine_uuid\": \"e1\", \"completed\": {\"$ne\": "
                                          "null}}"),
                     1);
    assert_int_equal(drop_matching_ok(fx, "{\"msg_id\": {\"$in\": [\"q2\", \"q5\", \"q2\", "
                                          "\"nope\"]}}"),
                     2);
    expect_find(fx, "{}", "q3 q4 q6");
    assert_int_equal(drop_matching_ok(fx, "{\"msg_id\": {\"$in\": [\"q2\"]}}"), 0);
}

static void test_drop_matching_empty_in_drops_nothing(void **state)
{
    fixture_t *fx = *state;

    load_dataset(fx);
    assert_int_equal(drop_matching_ok(fx, "{\"msg_id\": {\"$in\": []}}"), 0);
    assert_int_equal(drop_matching_ok(fx, "{\"label\": \"nothing like it\"}"), 0);
    expect_find(fx, "{}", ALL_IDS);
}

static void test_drop_matching_empty_query_drops_all(void **state)
{
    fixture_t *fx = *state;

    load_dataset(fx);
    assert_int_equal(drop_matching_ok(fx, "{}"), 6);
    expect_find(fx, "{}", "");
    history_is(fx, NULL, 0);
    assert_int_equal(drop_matching_ok(fx, "{}"), 0);
}

/* The hub's own queries: cpar_query_new_ids, as result, resubmit and purge requests make them. */
static void test_find_and_drop_by_id_list(void **state)
{
    static const char *const some[] = {"q6", "q1", "nope", "q1"};
    fixture_t *fx = *state;
    cpar_query_t *q;
    size_t dropped = 0;
    found_t f;

    load_dataset(fx);
    assert_int_equal(cpar_query_new_ids(some, 4, &q), 0);
    find_query_ok(fx, q, CPAR_REC_ALL, &f);
    assert_int_equal(f.n, 2); /* each record once */
    found_free(&f);
    assert_int_equal(cpar_db_drop_matching(fx->db, q, &dropped), 0);
    assert_int_equal(dropped, 2);
    cpar_query_free(q);

    assert_int_equal(cpar_query_new_ids(NULL, 0, &q), 0);
    find_query_ok(fx, q, CPAR_REC_ALL, &f);
    assert_int_equal(f.n, 0);
    assert_int_equal(cpar_db_drop_matching(fx->db, q, &dropped), 0);
    assert_int_equal(dropped, 0);
    cpar_query_free(q);
    expect_find(fx, "{}", "q2 q3 q4 q5");
}

int dbc_run_queries(void)
{
    const struct CMUnitTest tests[] = {
        DBC_TEST(test_find_empty_query_matches_all),
        DBC_TEST(test_find_eq),
        DBC_TEST(test_find_null_matches_absent),
        DBC_TEST(test_find_ne),
        DBC_TEST(test_find_several_keys_each_with_its_value),
        DBC_TEST(test_find_gt_is_greater_than),
        DBC_TEST(test_find_lt_lte_gte),
        DBC_TEST(test_find_dates_exact_to_the_microsecond),
        DBC_TEST(test_find_mismatched_types_never_match),
        DBC_TEST(test_find_numbers_compare_across_int_and_real),
        DBC_TEST(test_find_in_nin),
        DBC_TEST(test_find_empty_in_and_nin),
        DBC_TEST(test_find_all),
        DBC_TEST(test_find_mod),
        DBC_TEST(test_find_exists),
        DBC_TEST(test_find_regex),
        DBC_TEST(test_find_glob),
        DBC_TEST(test_find_dotted_keys),
        DBC_TEST(test_find_dict_and_list_values),
        DBC_TEST(test_find_projection_each_field),
        DBC_TEST(test_find_projection_independent_of_tested_fields),
        DBC_TEST(test_find_buffers_byte_exact),
        DBC_TEST(test_find_datetimes_round_trip),
        DBC_TEST(test_find_callback_may_get_records),
        DBC_TEST(test_drop_matching_selected_records),
        DBC_TEST(test_drop_matching_by_engine_and_ids),
        DBC_TEST(test_drop_matching_empty_in_drops_nothing),
        DBC_TEST(test_drop_matching_empty_query_drops_all),
        DBC_TEST(test_find_and_drop_by_id_list),
    };
    char name[128];

    snprintf(name, sizeof name, "dbbackend contract: %s: queries", dbc_backend);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
