/*
 * test_query_match.c - the SDK's reference matcher (cpar_query_match) and the record field
 * names: every operator on text, date, JSON and buffer fields, dotted keys, None and absent
 * fields, mismatched types, empty lists, and malformed trees.
 *
 * Queries are written as the JSON clients send and parsed by the hub's parser, except where a
 * test needs a tree the parser would refuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cparallel/query.h>

#include "wire/query.h"

/* 2021-10-01T00:00:00.123456Z */
#define T1 INT64_C(1633046400123456)

static ProtobufCBinaryData one_buffer = {3, (uint8_t *)"a\0b"};

/* The record every test matches against, unless it makes its own. */
static void sample(cpar_record_t *r)
{
    cpar_record_init(r);
    r->msg_id = "m1";
    r->header = "{\"msg_id\":\"m1\",\"msg_type\":\"apply_request\","
                "\"date\":\"2021-10-01T00:00:00.123456Z\",\"n\":5,\"r\":2.5,\"neg\":-5,"
                "\"big\":9007199254740993,\"flag\":true,\"nothing\":null,"
                "\"list\":[1,\"a\",[2,3]],\"obj\":{\"b\":1,\"a\":{\"c\":\"deep\"}}}";
    r->metadata = "{\"targets\":[0,1],\"retries\":0}";
    r->result_content = "{\"status\":\"ok\"}";
    r->engine_uuid = "e1";
    r->queue = "task";
    r->stdout = "hello world\n";
    r->label = "train-12";
    r->has_submitted = 1;
    r->submitted = T1;
    r->n_buffers = 1;
    r->buffers = &one_buffer;
}

/* Match the sample record against a query written as JSON. */
static int matches_rec(const char *json, const cpar_record_t *r)
{
    cpar_query_t *q = NULL;
    char err[512];
    int m;

    if (cpar_query_parse(json, strlen(json), &q, err, sizeof err) != 0)
        fail_msg("parser refused %s: %s", json, err);
    m = cpar_query_match(q, r);
    cpar_query_free(q);
    if (m != 0 && m != 1)
        fail_msg("%s: %s", json, cpar_err_name(m));
    return m;
}

static int matches(const char *json)
{
    cpar_record_t r;

    sample(&r);
    return matches_rec(json, &r);
}

#define YES(json) assert_int_equal(matches(json), 1)
#define NO(json) assert_int_equal(matches(json), 0)

/* ---- field names ------------------------------------------------------------------------- */

static void test_field_bits_and_names(void **state)
{
    (void)state;
    assert_int_equal(cpar_record_field_bit("header"), CPAR_REC_HEADER);
    assert_int_equal(cpar_record_field_bit("label"), CPAR_REC_LABEL);
    assert_int_equal(cpar_record_field_bit("result_buffers"), CPAR_REC_RESULT_BUFFERS);
    assert_int_equal(cpar_record_field_bit("msg_id"), 0);
    assert_int_equal(cpar_record_field_bit("header.msg_type"), CPAR_REC_HEADER);
    assert_int_equal(cpar_record_field_bit("result_content.a.b.c"), CPAR_REC_RESULT_CONTENT);
    assert_int_equal(cpar_record_field_bit("bogus"), -1);
    assert_int_equal(cpar_record_field_bit("Header"), -1);
    assert_int_equal(cpar_record_field_bit("head"), -1);
    assert_int_equal(cpar_record_field_bit("headers"), -1);
    assert_int_equal(cpar_record_field_bit(""), -1);
    assert_int_equal(cpar_record_field_bit(NULL), -1);
    /* dotted paths go only into JSON fields, with no empty component */
    assert_int_equal(cpar_record_field_bit("stdout.x"), -1);
    assert_int_equal(cpar_record_field_bit("msg_id.x"), -1);
    assert_int_equal(cpar_record_field_bit("submitted.x"), -1);
    assert_int_equal(cpar_record_field_bit("header."), -1);
    assert_int_equal(cpar_record_field_bit("header..x"), -1);
    assert_int_equal(cpar_record_field_bit(".header"), -1);

    for (uint32_t bit = 1; bit & CPAR_REC_ALL; bit <<= 1) {
        const char *name = cpar_record_field_name(bit);
        assert_non_null(name);
        assert_int_equal(cpar_record_field_bit(name), bit);
    }
    assert_string_equal(cpar_record_field_name(CPAR_REC_STDOUT), "stdout");
    assert_null(cpar_record_field_name(0));
    assert_null(cpar_record_field_name(CPAR_REC_HEADER | CPAR_REC_METADATA));
    assert_null(cpar_record_field_name(CPAR_REC_LABEL << 1));
    assert_null(cpar_record_field_name(1u << 31));
}

static void test_field_classes(void **state)
{
    (void)state;
    assert_int_equal(CPAR_REC_JSON_FIELDS & CPAR_REC_DATE_FIELDS, 0);
    assert_int_equal(CPAR_REC_JSON_FIELDS & CPAR_REC_BUFFER_FIELDS, 0);
    assert_int_equal(CPAR_REC_DATE_FIELDS & CPAR_REC_BUFFER_FIELDS, 0);
    assert_int_equal((CPAR_REC_JSON_FIELDS | CPAR_REC_DATE_FIELDS | CPAR_REC_BUFFER_FIELDS) &
                         ~CPAR_REC_ALL,
                     0);
}

/* ---- equality ---------------------------------------------------------------------------- */

static void test_empty_query_matches_everything(void **state)
{
    cpar_record_t bare;

    (void)state;
    YES("{}");
    cpar_record_init(&bare);
    bare.msg_id = "bare";
    assert_int_equal(matches_rec("{}", &bare), 1);
}

static void test_eq_text(void **state)
{
    (void)state;
    YES("{\"engine_uuid\": \"e1\"}");
    YES("{\"engine_uuid\": {\"$eq\": \"e1\"}}");
    NO("{\"engine_uuid\": \"e2\"}");
    NO("{\"engine_uuid\": \"e\"}");
    NO("{\"engine_uuid\": \"e1 \"}");
    YES("{\"msg_id\": \"m1\"}");
    YES("{\"stdout\": \"hello world\\n\"}");
}

static void test_none_is_absent(void **state)
{
    (void)state;
    YES("{\"completed\": null}");
    YES("{\"resubmitted\": null}");
    YES("{\"result_buffers\": null}");
    YES("{\"header.nothing\": null}"); /* JSON null */
    YES("{\"header.missing\": null}");
    NO("{\"engine_uuid\": null}");
    NO("{\"submitted\": null}");
    NO("{\"buffers\": null}");
    /* test_db.py's test_null */
    NO("{\"msg_id\": null}");
    YES("{\"msg_id\": {\"$ne\": null}}");
    NO("{\"completed\": {\"$ne\": null}}");
    YES("{\"buffers\": {\"$ne\": null}}");
}

static void test_ne(void **state)
{
    (void)state;
    YES("{\"engine_uuid\": {\"$ne\": \"e2\"}}");
    NO("{\"engine_uuid\": {\"$ne\": \"e1\"}}");
    /* an absent field is not equal to any value */
    YES("{\"resubmitted\": {\"$ne\": \"x\"}}");
    YES("{\"header.n\": {\"$ne\": \"5\"}}");
}

/* ipyparallel 7.1's DictDB compared every key with the last key's value. */
static void test_several_keys_each_with_its_value(void **state)
{
    (void)state;
    YES("{\"engine_uuid\": \"e1\", \"queue\": \"task\"}");
    NO("{\"engine_uuid\": \"e1\", \"queue\": \"mux\"}");
    NO("{\"engine_uuid\": \"task\", \"queue\": \"task\"}");
    NO("{\"engine_uuid\": \"e1\", \"queue\": \"e1\"}");
}

/* ---- ordering ---------------------------------------------------------------------------- */

/* ipyparallel 7.1's DictDB ran $gt as $lt. */
static void test_gt_lt_dates(void **state)
{
    (void)state;
    YES("{\"submitted\": {\"$gt\": \"2021-10-01T00:00:00.123455Z\"}}");
    NO("{\"submitted\": {\"$gt\": \"2021-10-01T00:00:00.123456Z\"}}");
    NO("{\"submitted\": {\"$gt\": \"2021-10-01T00:00:00.123457Z\"}}");
    YES("{\"submitted\": {\"$lt\": \"2021-10-01T00:00:00.123457Z\"}}");
    NO("{\"submitted\": {\"$lt\": \"2021-10-01T00:00:00.123456Z\"}}");
    YES("{\"submitted\": {\"$lte\": \"2021-10-01T00:00:00.123456Z\"}}");
    YES("{\"submitted\": {\"$gte\": \"2021-10-01T00:00:00.123456Z\"}}");
    NO("{\"submitted\": {\"$gte\": \"2021-10-01T00:00:00.123457Z\"}}");
    YES("{\"submitted\": \"2021-10-01T02:00:00.123456+02:00\"}");
    YES("{\"submitted\": {\"$gt\": \"2021-10-01T00:00:00Z\", \"$lt\": \"2021-10-01T00:00:01Z\"}}");
    NO("{\"submitted\": {\"$gt\": \"2021-10-01T00:00:00.5Z\", \"$lt\": \"2021-10-01T00:00:01Z\"}}");
}

static void test_ordering_text_bytewise(void **state)
{
    (void)state;
    YES("{\"engine_uuid\": {\"$gt\": \"e0\"}}");
    YES("{\"engine_uuid\": {\"$gt\": \"e\"}}");
    YES("{\"engine_uuid\": {\"$lt\": \"e10\"}}");
    YES("{\"engine_uuid\": {\"$gt\": \"E9\"}}"); /* 'E' < 'e' */
    YES("{\"engine_uuid\": {\"$lte\": \"e1\", \"$gte\": \"e1\"}}");
    NO("{\"engine_uuid\": {\"$lt\": \"e1\"}}");
}

static void test_ordering_numbers(void **state)
{
    (void)state;
    YES("{\"header.n\": {\"$gt\": 4}}");
    YES("{\"header.n\": {\"$gt\": 4.99}}");
    NO("{\"header.n\": {\"$gt\": 5.0}}");
    YES("{\"header.n\": {\"$gte\": 5.0}}");
    YES("{\"header.r\": {\"$lt\": 3}}");
    YES("{\"header.r\": {\"$gt\": 2}}");
    YES("{\"header.neg\": {\"$lt\": 0}}");
    YES("{\"header.n\": 5.0}");
    YES("{\"header.r\": 2.5}");
    /* exact: 2**53 + 1 is no double */
    YES("{\"header.big\": 9007199254740993}");
    NO("{\"header.big\": 9007199254740992.0}");
    YES("{\"header.big\": {\"$gt\": 9007199254740992.0}}");
}

/* Different types are never equal and never ordered; nor is None, nor an absent field. */
static void test_mismatched_types(void **state)
{
    (void)state;
    NO("{\"engine_uuid\": 1}");
    NO("{\"engine_uuid\": {\"$gt\": 1}}");
    NO("{\"engine_uuid\": {\"$lt\": 1}}");
    NO("{\"submitted\": {\"$lt\": \"zzz\"}}");
    NO("{\"submitted\": {\"$gt\": \"\"}}");
    NO("{\"submitted\": {\"$gt\": 0}}");
    NO("{\"submitted\": 1633046400123456}");
    NO("{\"header.n\": \"5\"}");
    NO("{\"header.flag\": 1}");
    NO("{\"header.flag\": {\"$gt\": false}}"); /* booleans have no order */
    NO("{\"header.list\": {\"$gt\": 0}}");
    NO("{\"header.obj\": {\"$lt\": \"z\"}}");
    NO("{\"submitted\": {\"$lt\": null}}");
    NO("{\"completed\": {\"$lt\": \"2100-01-01T00:00:00Z\"}}");
    NO("{\"completed\": {\"$gte\": \"1900-01-01T00:00:00Z\"}}");
    NO("{\"header.missing\": {\"$lte\": 0}}");
    /* dates in JSON fields are text; query dates only meet the date fields */
    NO("{\"header.date\": \"2021-10-01T00:00:00.123456Z\"}");
    NO("{\"header.date\": {\"$gt\": \"2000-01-01T00:00:00Z\"}}");
}

/* ---- JSON fields --------------------------------------------------------------------------- */

static void test_dotted_keys(void **state)
{
    (void)state;
    YES("{\"header.msg_type\": \"apply_request\"}");
    YES("{\"result_content.status\": \"ok\"}");
    YES("{\"header.obj.a.c\": \"deep\"}");
    YES("{\"header.obj.b\": 1}");
    YES("{\"metadata.retries\": 0}");
    YES("{\"header.flag\": true}");
    NO("{\"header.flag\": false}");
    /* through a non-object, and into lists: nothing there */
    YES("{\"header.msg_type.x\": null}");
    YES("{\"header.list.0\": null}");
    NO("{\"header.list.0\": 1}");
    YES("{\"result_header.status\": null}"); /* the field is absent */
}

/* Dict fields compare whole as JSON values: key order does not matter, list order does. */
static void test_dicts_and_lists_whole(void **state)
{
    (void)state;
    YES("{\"metadata\": {\"$eq\": {\"retries\": 0, \"targets\": [0, 1]}}}");
    YES("{\"metadata\": {\"$eq\": {\"targets\": [0, 1], \"retries\": 0}}}");
    NO("{\"metadata\": {\"$eq\": {\"targets\": [1, 0], \"retries\": 0}}}");
    NO("{\"metadata\": {\"$eq\": {\"targets\": [0, 1]}}}");
    YES("{\"metadata\": {\"$ne\": {\"targets\": [0, 1]}}}");
    YES("{\"header.obj\": {\"$eq\": {\"a\": {\"c\": \"deep\"}, \"b\": 1}}}");
    YES("{\"header.list\": [1, \"a\", [2, 3]]}");
    YES("{\"header.list\": [1.0, \"a\", [2, 3]]}");
    NO("{\"header.list\": [1, \"a\"]}");
    /* equality does not look into lists; $all does */
    NO("{\"metadata.targets\": 0}");
    NO("{\"metadata\": \"{\\\"targets\\\":[0,1],\\\"retries\\\":0}\"}");
}

/* A JSON field whose text is no JSON is text. */
static void test_json_field_that_is_not_json(void **state)
{
    cpar_record_t r;

    (void)state;
    cpar_record_init(&r);
    r.msg_id = "odd";
    r.error = "not json";
    r.execute_result = "42";
    assert_int_equal(matches_rec("{\"error\": \"not json\"}", &r), 1);
    assert_int_equal(matches_rec("{\"error\": {\"$regex\": \"^not\"}}", &r), 1);
    assert_int_equal(matches_rec("{\"error.x\": null}", &r), 1);
    assert_int_equal(matches_rec("{\"execute_result\": 42}", &r), 1);
}

/* ---- lists ------------------------------------------------------------------------------- */

static void test_in_nin(void **state)
{
    (void)state;
    YES("{\"engine_uuid\": {\"$in\": [\"x\", \"e1\"]}}");
    NO("{\"engine_uuid\": {\"$in\": [\"x\", \"y\"]}}");
    YES("{\"engine_uuid\": {\"$in\": \"e1\"}}");
    YES("{\"completed\": {\"$in\": [null, \"2021-10-01T00:00:00Z\"]}}");
    YES("{\"submitted\": {\"$in\": [null, \"2021-10-01T00:00:00.123456Z\"]}}");
    YES("{\"header.n\": {\"$in\": [4, 5.0]}}");
    YES("{\"header.list\": {\"$in\": [[1, \"a\", [2, 3]]]}}");
    NO("{\"engine_uuid\": {\"$nin\": [\"x\", \"e1\"]}}");
    YES("{\"engine_uuid\": {\"$nin\": [\"x\", \"y\"]}}");
    YES("{\"resubmitted\": {\"$nin\": [\"x\"]}}");
    NO("{\"resubmitted\": {\"$nin\": [null]}}");
}

static void test_empty_in_matches_nothing_and_empty_nin_everything(void **state)
{
    cpar_record_t bare;

    (void)state;
    NO("{\"msg_id\": {\"$in\": []}}");
    NO("{\"completed\": {\"$in\": []}}");
    YES("{\"msg_id\": {\"$nin\": []}}");
    YES("{\"completed\": {\"$nin\": []}}");
    cpar_record_init(&bare);
    bare.msg_id = "bare";
    assert_int_equal(matches_rec("{\"engine_uuid\": {\"$in\": []}}", &bare), 0);
    assert_int_equal(matches_rec("{\"engine_uuid\": {\"$nin\": []}}", &bare), 1);
}

/* MongoDB's $all, not ipyparallel 7.1's (the value contained in each query element). */
static void test_all(void **state)
{
    (void)state;
    YES("{\"metadata.targets\": {\"$all\": [1, 0]}}");
    YES("{\"metadata.targets\": {\"$all\": [0]}}");
    YES("{\"metadata.targets\": {\"$all\": [0, 0.0]}}");
    NO("{\"metadata.targets\": {\"$all\": [0, 2]}}");
    NO("{\"metadata.targets\": {\"$all\": []}}");
    YES("{\"metadata.targets\": {\"$all\": [[0, 1]]}}");
    YES("{\"header.list\": {\"$all\": [[2, 3], \"a\"]}}");
    NO("{\"header.list\": {\"$all\": [2]}}");
    YES("{\"engine_uuid\": {\"$all\": [\"e1\"]}}");
    YES("{\"engine_uuid\": {\"$all\": [\"e1\", \"e1\"]}}");
    NO("{\"engine_uuid\": {\"$all\": [\"e1\", \"e2\"]}}");
    NO("{\"engine_uuid\": {\"$all\": [\"e1x\", \"xe1\"]}}");
    YES("{\"completed\": {\"$all\": [null]}}");
}

/* ---- the other operators ---------------------------------------------------------------- */

/* Integers, and reals truncated toward zero; the remainder has the dividend's sign, as in C. */
static void test_mod(void **state)
{
    (void)state;
    YES("{\"header.n\": {\"$mod\": [2, 1]}}");
    YES("{\"header.n\": {\"$mod\": [5, 0]}}");
    NO("{\"header.n\": {\"$mod\": [2, 0]}}");
    YES("{\"header.n\": {\"$mod\": [-2, 1]}}");
    YES("{\"header.r\": {\"$mod\": [2, 0]}}");
    YES("{\"header.neg\": {\"$mod\": [3, -2]}}");
    NO("{\"header.neg\": {\"$mod\": [3, 1]}}");
    YES("{\"header.neg\": {\"$mod\": [-1, 0]}}");
    YES("{\"header.neg\": {\"$mod\": [1, 0]}}");
    NO("{\"engine_uuid\": {\"$mod\": [2, 0]}}");
    NO("{\"submitted\": {\"$mod\": [2, 0]}}");
    NO("{\"header.flag\": {\"$mod\": [1, 0]}}");
    NO("{\"completed\": {\"$mod\": [1, 0]}}");
}

static void test_exists(void **state)
{
    (void)state;
    YES("{\"submitted\": {\"$exists\": true}}");
    NO("{\"submitted\": {\"$exists\": false}}");
    YES("{\"completed\": {\"$exists\": false}}");
    YES("{\"header.msg_type\": {\"$exists\": true}}");
    YES("{\"header.nothing\": {\"$exists\": false}}");
    YES("{\"header.missing\": {\"$exists\": false}}");
    YES("{\"buffers\": {\"$exists\": true}}");
    YES("{\"result_buffers\": {\"$exists\": false}}");
    YES("{\"msg_id\": {\"$exists\": true}}");
}

static void test_regex(void **state)
{
    (void)state;
    YES("{\"stdout\": {\"$regex\": \"wor\"}}");
    YES("{\"stdout\": {\"$regex\": \"^hel+o w\"}}");
    NO("{\"stdout\": {\"$regex\": \"^wor\"}}");
    YES("{\"label\": {\"$regex\": \"^train-[0-9]{2}$\"}}");
    NO("{\"label\": {\"$regex\": \"^train-[0-9]$\"}}");
    YES("{\"label\": {\"$regex\": \"(eval|train)\"}}");
    YES("{\"header.msg_type\": {\"$regex\": \"_request$\"}}");
    NO("{\"submitted\": {\"$regex\": \"2021\"}}");
    NO("{\"header.n\": {\"$regex\": \"5\"}}");
    NO("{\"completed\": {\"$regex\": \"\"}}");
    YES("{\"engine_uuid\": {\"$regex\": \"\"}}");
}

static void test_glob(void **state)
{
    (void)state;
    YES("{\"label\": {\"$glob\": \"train-*\"}}");
    YES("{\"label\": {\"$glob\": \"train-??\"}}");
    YES("{\"label\": {\"$glob\": \"*-[0-9][0-9]\"}}");
    NO("{\"label\": {\"$glob\": \"train\"}}");
    NO("{\"label\": {\"$glob\": \"rain-*\"}}");
    YES("{\"stdout\": {\"$glob\": \"*world*\"}}");
    YES("{\"result_content.status\": {\"$glob\": \"o?\"}}");
    NO("{\"resubmitted\": {\"$glob\": \"*\"}}");
    NO("{\"header.n\": {\"$glob\": \"*\"}}");
}

/* ---- malformed trees --------------------------------------------------------------------- */

/* A one-term tree the parser would not make. */
typedef struct bad {
    cpar_query_t q;
    cpar_query_term_t t, *terms[1];
    cpar_query_value_t v[2], *args[2];
} bad_t;

static void bad_init(bad_t *b, const char *key, Cpar__QueryTerm__Op op, size_t nargs)
{
    cpar__query__init(&b->q);
    cpar__query_term__init(&b->t);
    b->terms[0] = &b->t;
    b->q.n_terms = 1;
    b->q.terms = b->terms;
    b->t.key = (char *)key;
    b->t.op = op;
    b->t.n_args = nargs;
    b->t.args = b->args;
    for (size_t i = 0; i < 2; i++) {
        cpar__query_value__init(&b->v[i]);
        b->v[i].kind_case = CPAR__QUERY_VALUE__KIND_INTEGER;
        b->v[i].integer = 1;
        b->args[i] = &b->v[i];
    }
}

static void assert_malformed(bad_t *b)
{
    cpar_record_t r, bare;

    sample(&r);
    assert_int_equal(cpar_query_match(&b->q, &r), CPAR_EINVAL);
    /* whatever the record */
    cpar_record_init(&bare);
    bare.msg_id = "bare";
    assert_int_equal(cpar_query_match(&b->q, &bare), CPAR_EINVAL);
}

static void test_malformed_trees(void **state)
{
    bad_t b;

    (void)state;
    bad_init(&b, "bogus", CPAR__QUERY_TERM__OP__EQ, 1);
    assert_malformed(&b);
    bad_init(&b, "stdout.x", CPAR__QUERY_TERM__OP__EQ, 1);
    assert_malformed(&b);
    bad_init(&b, NULL, CPAR__QUERY_TERM__OP__EQ, 1);
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__EQ, 0);
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__LT, 2);
    assert_malformed(&b);
    bad_init(&b, "stdout", (Cpar__QueryTerm__Op)99, 1);
    assert_malformed(&b);
    bad_init(&b, "header.n", CPAR__QUERY_TERM__OP__MOD, 2);
    b.v[0].integer = 0;
    assert_malformed(&b);
    bad_init(&b, "header.n", CPAR__QUERY_TERM__OP__MOD, 1);
    assert_malformed(&b);
    bad_init(&b, "completed", CPAR__QUERY_TERM__OP__EXISTS, 1);
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__REGEX, 1);
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__REGEX, 1);
    b.v[0].kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    b.v[0].text = "(";
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__EQ, 1);
    b.v[0].kind_case = CPAR__QUERY_VALUE__KIND__NOT_SET;
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__EQ, 1);
    b.v[0].kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    b.v[0].text = NULL;
    assert_malformed(&b);
    bad_init(&b, "stdout", CPAR__QUERY_TERM__OP__IN, 2);
    b.args[1] = NULL;
    assert_malformed(&b);
    assert_int_equal(cpar_query_match(NULL, NULL), CPAR_EINVAL);
}

/* A term that cannot match does not hide a malformed term after it. */
static void test_malformed_term_after_a_failing_one(void **state)
{
    cpar_query_term_t t[2], *terms[2] = {&t[0], &t[1]};
    cpar_query_value_t v, *args[1] = {&v};
    cpar_query_t q;
    cpar_record_t r;

    (void)state;
    sample(&r);
    cpar__query__init(&q);
    q.n_terms = 2;
    q.terms = terms;
    cpar__query_term__init(&t[0]);
    t[0].key = "msg_id";
    t[0].op = CPAR__QUERY_TERM__OP__IN; /* of nothing */
    cpar__query_term__init(&t[1]);
    t[1].key = "nope";
    t[1].op = CPAR__QUERY_TERM__OP__EQ;
    t[1].n_args = 1;
    t[1].args = args;
    cpar__query_value__init(&v);
    v.kind_case = CPAR__QUERY_VALUE__KIND_NULL;
    v.null = 1;
    assert_int_equal(cpar_query_match(&q, &r), CPAR_EINVAL);
}

/* Buffers are bytes no query compares: a value (which the parser refuses) equals nothing. */
static void test_buffers_equal_no_value(void **state)
{
    bad_t b;
    cpar_record_t r;

    (void)state;
    sample(&r);
    bad_init(&b, "buffers", CPAR__QUERY_TERM__OP__EQ, 1);
    b.v[0].kind_case = CPAR__QUERY_VALUE__KIND_TEXT;
    b.v[0].text = "a";
    assert_int_equal(cpar_query_match(&b.q, &r), 0);
    b.t.op = CPAR__QUERY_TERM__OP__NE;
    assert_int_equal(cpar_query_match(&b.q, &r), 1);
    b.t.op = CPAR__QUERY_TERM__OP__GTE;
    assert_int_equal(cpar_query_match(&b.q, &r), 0);
}

/* A JSON argument that is no JSON equals nothing. */
static void test_json_argument_that_does_not_parse(void **state)
{
    bad_t b;
    cpar_record_t r;

    (void)state;
    sample(&r);
    bad_init(&b, "metadata", CPAR__QUERY_TERM__OP__EQ, 1);
    b.v[0].kind_case = CPAR__QUERY_VALUE__KIND_JSON;
    b.v[0].json = "{not json";
    assert_int_equal(cpar_query_match(&b.q, &r), 0);
    b.t.op = CPAR__QUERY_TERM__OP__NE;
    assert_int_equal(cpar_query_match(&b.q, &r), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_bits_and_names),
        cmocka_unit_test(test_field_classes),
        cmocka_unit_test(test_empty_query_matches_everything),
        cmocka_unit_test(test_eq_text),
        cmocka_unit_test(test_none_is_absent),
        cmocka_unit_test(test_ne),
        cmocka_unit_test(test_several_keys_each_with_its_value),
        cmocka_unit_test(test_gt_lt_dates),
        cmocka_unit_test(test_ordering_text_bytewise),
        cmocka_unit_test(test_ordering_numbers),
        cmocka_unit_test(test_mismatched_types),
        cmocka_unit_test(test_dotted_keys),
        cmocka_unit_test(test_dicts_and_lists_whole),
        cmocka_unit_test(test_json_field_that_is_not_json),
        cmocka_unit_test(test_in_nin),
        cmocka_unit_test(test_empty_in_matches_nothing_and_empty_nin_everything),
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_mod),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_malformed_trees),
        cmocka_unit_test(test_malformed_term_after_a_failing_one),
        cmocka_unit_test(test_buffers_equal_no_value),
        cmocka_unit_test(test_json_argument_that_does_not_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
