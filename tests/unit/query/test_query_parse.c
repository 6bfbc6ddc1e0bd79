/*
 * test_query_parse.c - the hub's parser of clients' task-record queries (core/wire/query.c):
 * every operator into its tree, dates (aware and naive), lists, the errors with their texts,
 * the keys of a db_request, and the queries the hub makes itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <cparallel/query.h>

#include "wire/query.h"

/* 2021-10-01T00:00:00.123456Z */
#define T1 INT64_C(1633046400123456)
#define HOUR INT64_C(3600000000)

typedef Cpar__QueryTerm__Op op_t;

static cpar_query_t *parse_ok(const char *json)
{
    cpar_query_t *q = NULL;
    char err[512] = "unset";
    int rc = cpar_query_parse(json, strlen(json), &q, err, sizeof err);

    if (rc)
        fail_msg("refused %s: %s: %s", json, cpar_err_name(rc), err);
    assert_non_null(q);
    assert_string_equal(err, "");
    return q;
}

/* The parser refuses json with exactly the message `want`. */
static void parse_fails(const char *json, const char *want)
{
    cpar_query_t *q = (cpar_query_t *)(uintptr_t)1;
    char err[512];
    int rc = cpar_query_parse(json, strlen(json), &q, err, sizeof err);

    if (rc != CPAR_EINVAL)
        fail_msg("%s: %s, want CPAR_EINVAL", json, cpar_err_name(rc));
    assert_null(q);
    assert_null(strchr(err, '\n'));
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s: error \"%s\", want \"%s...\"", json, err, want);
}

/* The single term of a query of one key and one operator. */
static const cpar_query_term_t *only_term(const cpar_query_t *q, const char *key, op_t op,
                                          size_t nargs)
{
    assert_int_equal(q->n_terms, 1);
    assert_string_equal(q->terms[0]->key, key);
    assert_int_equal(q->terms[0]->op, op);
    assert_int_equal(q->terms[0]->n_args, nargs);
    return q->terms[0];
}

static void assert_text(const cpar_query_value_t *v, const char *text)
{
    assert_int_equal(v->kind_case, CPAR__QUERY_VALUE__KIND_TEXT);
    assert_string_equal(v->text, text);
}

static void assert_date(const cpar_query_value_t *v, int64_t us)
{
    assert_int_equal(v->kind_case, CPAR__QUERY_VALUE__KIND_DATE);
    if (v->date != us)
        fail_msg("date %lld, want %lld", (long long)v->date, (long long)us);
}

/* ---- operators and values ---------------------------------------------------------------- */

static void test_empty_query_has_no_terms(void **state)
{
    cpar_query_t *q = parse_ok("{}");

    (void)state;
    assert_int_equal(q->n_terms, 0);
    cpar_query_free(q);
    q = parse_ok("  { }  ");
    assert_int_equal(q->n_terms, 0);
    cpar_query_free(q);
}

static void test_plain_values_are_equality(void **state)
{
    cpar_query_t *q = parse_ok("{\"engine_uuid\": \"e1\", \"completed\": null, \"header.n\": 5,"
                               " \"header.r\": 2.5, \"header.flag\": true, \"metadata.targets\":"
                               " [0, 1], \"header.obj\": {\"$eq\": {\"b\": 1, \"a\": [2]}}}");

    (void)state;
    assert_int_equal(q->n_terms, 7);
    for (size_t i = 0; i < q->n_terms; i++) {
        assert_int_equal(q->terms[i]->op, CPAR__QUERY_TERM__OP__EQ);
        assert_int_equal(q->terms[i]->n_args, 1);
    }
    /* terms keep the query's order */
    assert_string_equal(q->terms[0]->key, "engine_uuid");
    assert_text(q->terms[0]->args[0], "e1");
    assert_string_equal(q->terms[1]->key, "completed");
    assert_int_equal(q->terms[1]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_NULL);
    assert_int_equal(q->terms[2]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_INTEGER);
    assert_int_equal(q->terms[2]->args[0]->integer, 5);
    assert_int_equal(q->terms[3]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_REAL);
    assert_true(q->terms[3]->args[0]->real == 2.5);
    assert_int_equal(q->terms[4]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_BOOLEAN);
    assert_true(q->terms[4]->args[0]->boolean);
    assert_int_equal(q->terms[5]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_JSON);
    assert_string_equal(q->terms[5]->args[0]->json, "[0,1]");
    assert_int_equal(q->terms[6]->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_JSON);
    assert_string_equal(q->terms[6]->args[0]->json, "{\"b\":1,\"a\":[2]}");
    cpar_query_free(q);
}

static void test_comparison_operators(void **state)
{
    static const struct {
        const char *name;
        op_t op;
    } ops[] = {
        {"$eq", CPAR__QUERY_TERM__OP__EQ},   {"$ne", CPAR__QUERY_TERM__OP__NE},
        {"$lt", CPAR__QUERY_TERM__OP__LT},   {"$gt", CPAR__QUERY_TERM__OP__GT},
        {"$lte", CPAR__QUERY_TERM__OP__LTE}, {"$gte", CPAR__QUERY_TERM__OP__GTE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char json[128];
        cpar_query_t *q;

        snprintf(json, sizeof json, "{\"stdout\": {\"%s\": \"x\"}}", ops[i].name);
        q = parse_ok(json);
        assert_text(only_term(q, "stdout", ops[i].op, 1)->args[0], "x");
        cpar_query_free(q);
        snprintf(json, sizeof json, "{\"completed\": {\"%s\": null}}", ops[i].name);
        q = parse_ok(json);
        assert_int_equal(only_term(q, "completed", ops[i].op, 1)->args[0]->kind_case,
                         CPAR__QUERY_VALUE__KIND_NULL);
        cpar_query_free(q);
    }
}

static void test_several_operators_of_one_key(void **state)
{
    cpar_query_t *q = parse_ok("{\"submitted\": {\"$gte\": \"2021-10-01T00:00:00.123456Z\", "
                               "\"$lt\": \"2021-10-01T01:00:00.123456Z\"}, \"queue\": \"task\"}");

    (void)state;
    assert_int_equal(q->n_terms, 3);
    assert_string_equal(q->terms[0]->key, "submitted");
    assert_int_equal(q->terms[0]->op, CPAR__QUERY_TERM__OP__GTE);
    assert_date(q->terms[0]->args[0], T1);
    assert_string_equal(q->terms[1]->key, "submitted");
    assert_int_equal(q->terms[1]->op, CPAR__QUERY_TERM__OP__LT);
    assert_date(q->terms[1]->args[0], T1 + HOUR);
    assert_string_equal(q->terms[2]->key, "queue");
    cpar_query_free(q);
}

static void test_in_nin_all_take_lists(void **state)
{
    cpar_query_t *q;

    (void)state;
    q = parse_ok("{\"msg_id\": {\"$in\": [\"a\", \"b\", null, 3, [1], "
                 "\"2021-10-01T00:00:00.123456Z\"]}}");
    {
        const cpar_query_term_t *t = only_term(q, "msg_id", CPAR__QUERY_TERM__OP__IN, 6);
        assert_text(t->args[0], "a");
        assert_text(t->args[1], "b");
        assert_int_equal(t->args[2]->kind_case, CPAR__QUERY_VALUE__KIND_NULL);
        assert_int_equal(t->args[3]->kind_case, CPAR__QUERY_VALUE__KIND_INTEGER);
        assert_int_equal(t->args[4]->kind_case, CPAR__QUERY_VALUE__KIND_JSON);
        assert_date(t->args[5], T1);
    }
    cpar_query_free(q);
    q = parse_ok("{\"msg_id\": {\"$in\": []}}");
    only_term(q, "msg_id", CPAR__QUERY_TERM__OP__IN, 0);
    cpar_query_free(q);
    q = parse_ok("{\"msg_id\": {\"$nin\": []}}");
    only_term(q, "msg_id", CPAR__QUERY_TERM__OP__NIN, 0);
    cpar_query_free(q);
    /* a single value is a list of it, as ipyparallel's SQLite took it */
    q = parse_ok("{\"engine_uuid\": {\"$nin\": \"e1\"}}");
    assert_text(only_term(q, "engine_uuid", CPAR__QUERY_TERM__OP__NIN, 1)->args[0], "e1");
    cpar_query_free(q);
    q = parse_ok("{\"header.tags\": {\"$all\": [\"a\", \"b\"]}}");
    assert_text(only_term(q, "header.tags", CPAR__QUERY_TERM__OP__ALL, 2)->args[1], "b");
    cpar_query_free(q);
    parse_fails("{\"msg_id\": {\"$in\": {\"a\": 1}}}", "$in needs a list for key 'msg_id'");
}

static void test_mod(void **state)
{
    cpar_query_t *q = parse_ok("{\"header.n\": {\"$mod\": [3, -2]}}");
    const cpar_query_term_t *t = only_term(q, "header.n", CPAR__QUERY_TERM__OP__MOD, 2);

    (void)state;
    assert_int_equal(t->args[0]->integer, 3);
    assert_int_equal(t->args[1]->integer, -2);
    cpar_query_free(q);
    parse_fails("{\"header.n\": {\"$mod\": [0, 1]}}", "$mod needs [divisor, remainder]");
    parse_fails("{\"header.n\": {\"$mod\": [2]}}", "$mod needs [divisor, remainder]");
    parse_fails("{\"header.n\": {\"$mod\": [2, 1, 0]}}", "$mod needs [divisor, remainder]");
    parse_fails("{\"header.n\": {\"$mod\": [2.0, 1]}}", "$mod needs [divisor, remainder]");
    parse_fails("{\"header.n\": {\"$mod\": [\"2\", 1]}}", "$mod needs [divisor, remainder]");
    parse_fails("{\"header.n\": {\"$mod\": 2}}",
                "$mod needs [divisor, remainder], integers with a non-zero divisor, for key "
                "'header.n'");
}

static void test_exists(void **state)
{
    cpar_query_t *q = parse_ok("{\"completed\": {\"$exists\": false}}");
    const cpar_query_term_t *t = only_term(q, "completed", CPAR__QUERY_TERM__OP__EXISTS, 1);

    (void)state;
    assert_int_equal(t->args[0]->kind_case, CPAR__QUERY_VALUE__KIND_BOOLEAN);
    assert_false(t->args[0]->boolean);
    cpar_query_free(q);
    parse_fails("{\"completed\": {\"$exists\": 1}}",
                "$exists needs true or false for key 'completed'");
    parse_fails("{\"completed\": {\"$exists\": null}}", "$exists needs true or false");
}

static void test_regex_and_glob_keep_their_text(void **state)
{
    cpar_query_t *q = parse_ok("{\"stdout\": {\"$regex\": \"^a(b|c)+$\"}}");

    (void)state;
    assert_text(only_term(q, "stdout", CPAR__QUERY_TERM__OP__REGEX, 1)->args[0], "^a(b|c)+$");
    cpar_query_free(q);
    /* a pattern that looks like a date stays a pattern */
    q = parse_ok("{\"label\": {\"$glob\": \"2021-10-01T00:00:00Z\"}}");
    assert_text(only_term(q, "label", CPAR__QUERY_TERM__OP__GLOB, 1)->args[0],
                "2021-10-01T00:00:00Z");
    cpar_query_free(q);
    parse_fails("{\"stdout\": {\"$regex\": \"(\"}}",
                "Bad regular expression '(' for key 'stdout': ");
    parse_fails("{\"stdout\": {\"$regex\": 5}}", "$regex needs a string for key 'stdout'");
    parse_fails("{\"label\": {\"$glob\": [\"*\"]}}", "$glob needs a string for key 'label'");
}

/* ---- dates --------------------------------------------------------------------------------- */

static void test_aware_dates(void **state)
{
    static const char *const same[] = {
        "2021-10-01T00:00:00.123456Z",      "2021-10-01T00:00:00.123456+00:00",
        "2021-10-01T02:00:00.123456+02:00", "2021-10-01T02:00:00.123456+0200",
        "2021-09-30T19:30:00.123456-04:30",
    };

    (void)state;
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char json[128];
        cpar_query_t *q;
        snprintf(json, sizeof json, "{\"submitted\": \"%s\"}", same[i]);
        q = parse_ok(json);
        assert_date(q->terms[0]->args[0], T1);
        cpar_query_free(q);
    }
    {
        cpar_query_t *q = parse_ok("{\"submitted\": {\"$lt\": \"2021-10-01T00:00:01.5Z\"}}");
        assert_date(q->terms[0]->args[0], T1 - 123456 + 1500000);
        cpar_query_free(q);
    }
}

/* A naive date is the controller's local time, as ipyparallel's hub took it. */
static void test_naive_dates_are_local_time(void **state)
{
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    cpar_query_t *q;

    (void)state;
    setenv("TZ", "UTC0", 1);
    tzset();
    q = parse_ok("{\"submitted\": \"2021-10-01T00:00:00.123456\"}");
    assert_date(q->terms[0]->args[0], T1);
    cpar_query_free(q);
    setenv("TZ", "EST5", 1);
    tzset();
    q = parse_ok("{\"submitted\": \"2021-10-01T00:00:00.123456\"}");
    assert_date(q->terms[0]->args[0], T1 + 5 * HOUR);
    cpar_query_free(q);
    /* aware dates do not depend on it */
    q = parse_ok("{\"submitted\": \"2021-10-01T00:00:00.123456Z\"}");
    assert_date(q->terms[0]->args[0], T1);
    cpar_query_free(q);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

static void test_strings_that_are_not_dates_stay_text(void **state)
{
    static const char *const texts[] = {
        "2021-10-01",                   "2021-10-01 00:00:00",       "2021-10-01T00:00",
        " 2021-10-01T00:00:00Z",        "2021-10-01T00:00:00.Z",     "2021-10-01T00:00:00.1234567",
        "2021-10-01T00:00:00+2",        "2021-10-01T00:00:00UTC",    "x2021-10-01T00:00:00",
    };

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char json[128];
        cpar_query_t *q;
        snprintf(json, sizeof json, "{\"stdout\": \"%s\"}", texts[i]);
        q = parse_ok(json);
        assert_text(q->terms[0]->args[0], texts[i]);
        cpar_query_free(q);
    }
}

static void test_impossible_dates_are_refused(void **state)
{
    (void)state;
    parse_fails("{\"submitted\": \"2021-13-01T00:00:00Z\"}",
                "Invalid date '2021-13-01T00:00:00Z' for key 'submitted'");
    parse_fails("{\"submitted\": {\"$in\": [\"2021-02-29T00:00:00\"]}}",
                "Invalid date '2021-02-29T00:00:00' for key 'submitted'");
    parse_fails("{\"started\": {\"$gt\": \"2021-10-01T24:00:00Z\"}}", "Invalid date");
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_unsupported_operators(void **state)
{
    (void)state;
    parse_fails("{\"engine_uuid\": {\"$where\": \"1\"}}",
                "Unsupported operator '$where' for key 'engine_uuid'");
    parse_fails("{\"completed\": {\"$ge\": null}}",
                "Unsupported operator '$ge' for key 'completed'");
    parse_fails("{\"completed\": {\"$le\": null}}", "Unsupported operator '$le' for key");
    parse_fails("{\"msg_id\": {\"$ne\": \"\", \"$not\": {\"$eq\": \"a\"}}}",
                "Unsupported operator '$not' for key 'msg_id'");
    parse_fails("{\"$or\": [{\"msg_id\": \"a\"}, {\"msg_id\": \"b\"}]}",
                "Unsupported operator '$or'");
    parse_fails("{\"$and\": []}", "Unsupported operator '$and'");
}

static void test_dict_values_must_be_operator_dicts(void **state)
{
    (void)state;
    parse_fails("{\"header\": {\"msg_type\": \"apply_request\"}}",
                "Unsupported operator 'msg_type' for key 'header'");
    parse_fails("{\"header\": {\"$eq\": 1, \"msg_type\": \"x\"}}",
                "Unsupported operator 'msg_type' for key 'header'");
    parse_fails("{\"completed\": {}}", "Empty test for key 'completed'");
}

static void test_illegal_keys(void **state)
{
    (void)state;
    parse_fails("{\"bogus\": 1}", "Illegal testing key 'bogus'");
    parse_fails("{\"msg_id\": \"a\", \"Header\": 1}", "Illegal testing key 'Header'");
    parse_fails("{\"stdout.x\": 1}", "Illegal testing key 'stdout.x'");
    parse_fails("{\"header.\": 1}", "Illegal testing key 'header.'");
    parse_fails("{\"header..x\": 1}", "Illegal testing key 'header..x'");
    parse_fails("{\"\": 1}", "Illegal testing key ''");
    parse_fails("{\"bogus\": {\"$where\": 1}}", "Illegal testing key 'bogus'");
}

/* Buffers are only tested against None. */
static void test_buffers_only_against_none(void **state)
{
    cpar_query_t *q;

    (void)state;
    q = parse_ok("{\"buffers\": null, \"result_buffers\": {\"$ne\": null, \"$exists\": true}}");
    assert_int_equal(q->n_terms, 3);
    cpar_query_free(q);
    parse_fails("{\"buffers\": \"x\"}",
                "Key 'buffers' can only be tested against None, or with $exists");
    parse_fails("{\"result_buffers\": {\"$in\": [null]}}", "Key 'result_buffers' can only be");
    parse_fails("{\"buffers\": {\"$gt\": null}}", "Key 'buffers' can only be");
}

static void test_not_a_dict(void **state)
{
    (void)state;
    parse_fails("[1]", "A query must be a dict, not list");
    parse_fails("null", "A query must be a dict, not NoneType");
    parse_fails("\"msg_id\"", "A query must be a dict, not str");
    parse_fails("{\"msg_id\": ", "Bad query: ");
    parse_fails("", "Bad query: ");
    /* the parser reads exactly len bytes */
    {
        cpar_query_t *q = NULL;
        char err[256];
        assert_int_equal(cpar_query_parse("{}xyz", 2, &q, err, sizeof err), 0);
        assert_int_equal(q->n_terms, 0);
        cpar_query_free(q);
    }
}

static void test_error_text_is_cut_to_its_buffer(void **state)
{
    cpar_query_t *q;
    char err[8];

    (void)state;
    assert_int_equal(cpar_query_parse("{\"bogus\": 1}", 12, &q, err, sizeof err), CPAR_EINVAL);
    assert_string_equal(err, "Illegal");
    assert_int_equal(cpar_query_parse("{\"bogus\": 1}", 12, &q, NULL, 0), CPAR_EINVAL);
}

/* ---- the tree ------------------------------------------------------------------------------ */

/* A parsed tree is a well-formed protobuf message: it packs, unpacks and frees cleanly. */
static void test_tree_packs_and_unpacks(void **state)
{
    cpar_query_t *q = parse_ok("{\"msg_id\": {\"$in\": [\"a\", \"b\"]}, \"completed\": {\"$ne\": "
                               "null}, \"header.n\": {\"$mod\": [2, 1]}, \"submitted\": {\"$lt\":"
                               " \"2021-10-01T00:00:00.123456Z\"}, \"metadata\": {\"$eq\": "
                               "{\"a\": [1.5, true]}}, \"label\": {\"$glob\": \"x*\"}}");
    size_t len = cpar__query__get_packed_size(q);
    uint8_t *buf = malloc(len);
    cpar_query_t *copy;

    (void)state;
    assert_non_null(buf);
    assert_int_equal(cpar__query__pack(q, buf), len);
    copy = cpar__query__unpack(NULL, len, buf);
    assert_non_null(copy);
    assert_int_equal(copy->n_terms, q->n_terms);
    assert_int_equal(cpar__query__get_packed_size(copy), len);
    assert_date(copy->terms[3]->args[0], T1);
    assert_string_equal(copy->terms[4]->args[0]->json, "{\"a\":[1.5,true]}");
    cpar__query__free_unpacked(copy, NULL);
    free(buf);
    cpar_query_free(q);
    cpar_query_free(NULL);
}

static void test_new_ids(void **state)
{
    static const char *const ids[] = {"a", "b", "a"};
    cpar_query_t *q;
    const cpar_query_term_t *t;

    (void)state;
    assert_int_equal(cpar_query_new_ids(ids, 3, &q), 0);
    t = only_term(q, "msg_id", CPAR__QUERY_TERM__OP__IN, 3);
    assert_text(t->args[0], "a");
    assert_text(t->args[1], "b");
    assert_text(t->args[2], "a");
    cpar_query_free(q);
    assert_int_equal(cpar_query_new_ids(NULL, 0, &q), 0);
    only_term(q, "msg_id", CPAR__QUERY_TERM__OP__IN, 0);
    cpar_query_free(q);
    assert_int_equal(cpar_query_new_ids(NULL, 1, &q), CPAR_EINVAL);
    {
        const char *const with_null[] = {"a", NULL};
        assert_int_equal(cpar_query_new_ids(with_null, 2, &q), CPAR_EINVAL);
    }
    assert_int_equal(cpar_query_new_ids(ids, 1, NULL), CPAR_EINVAL);
}

/* ---- keys ---------------------------------------------------------------------------------- */

#define DEFAULT_KEYS (CPAR_REC_ALL & ~(uint32_t)(CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS))

static uint32_t keys_ok(const char *json)
{
    uint32_t fields = 0xdeadbeef;
    char err[256];
    int rc = cpar_query_parse_keys(json, json ? strlen(json) : 0, &fields, err, sizeof err);

    if (rc)
        fail_msg("keys %s refused: %s", json ? json : "(NULL)", err);
    return fields;
}

static void keys_fail(const char *json, const char *want)
{
    uint32_t fields;
    char err[256];

    assert_int_equal(cpar_query_parse_keys(json, strlen(json), &fields, err, sizeof err),
                     CPAR_EINVAL);
    if (strcmp(err, want) != 0)
        fail_msg("keys %s: error \"%s\", want \"%s\"", json, err, want);
}

static void test_keys_default_is_all_but_buffers(void **state)
{
    (void)state;
    assert_int_equal(keys_ok(NULL), DEFAULT_KEYS);
    assert_int_equal(keys_ok("null"), DEFAULT_KEYS);
    assert_int_equal(keys_ok(" null "), DEFAULT_KEYS);
    /* ipyparallel answers keys=[] with whole records, still without buffers */
    assert_int_equal(keys_ok("[]"), DEFAULT_KEYS);
}

static void test_keys_lists_and_names(void **state)
{
    (void)state;
    assert_int_equal(keys_ok("[\"submitted\", \"completed\"]"),
                     CPAR_REC_SUBMITTED | CPAR_REC_COMPLETED);
    assert_int_equal(keys_ok("[\"msg_id\"]"), 0);
    assert_int_equal(keys_ok("[\"msg_id\", \"buffers\", \"header\", \"buffers\"]"),
                     CPAR_REC_BUFFERS | CPAR_REC_HEADER);
    assert_int_equal(keys_ok("\"stdout\""), CPAR_REC_STDOUT);
    assert_int_equal(keys_ok("[\"label\", \"result_buffers\", \"display_data\"]"),
                     CPAR_REC_LABEL | CPAR_REC_RESULT_BUFFERS | CPAR_REC_DISPLAY_DATA);
}

static void test_keys_errors(void **state)
{
    (void)state;
    keys_fail("[\"x\", \"submitted\", \"y\"]", "Bad record key(s): ['x', 'y']");
    keys_fail("\"bogus\"", "Bad record key(s): ['bogus']");
    keys_fail("[\"header.msg_type\"]", "Bad record key(s): ['header.msg_type']");
    keys_fail("[\"submitted\", 1]", "keys must be a list of record field names");
    keys_fail("5", "keys must be a list of record field names, not int");
    keys_fail("{\"a\": 1}", "keys must be a list of record field names, not dict");
    {
        uint32_t fields;
        char err[256];
        assert_int_equal(cpar_query_parse_keys("[", 1, &fields, err, sizeof err), CPAR_EINVAL);
        assert_int_equal(strncmp(err, "Bad keys: ", 10), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_query_has_no_terms),
        cmocka_unit_test(test_plain_values_are_equality),
        cmocka_unit_test(test_comparison_operators),
        cmocka_unit_test(test_several_operators_of_one_key),
        cmocka_unit_test(test_in_nin_all_take_lists),
        cmocka_unit_test(test_mod),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_regex_and_glob_keep_their_text),
        cmocka_unit_test(test_aware_dates),
        cmocka_unit_test(test_naive_dates_are_local_time),
        cmocka_unit_test(test_strings_that_are_not_dates_stay_text),
        cmocka_unit_test(test_impossible_dates_are_refused),
        cmocka_unit_test(test_unsupported_operators),
        cmocka_unit_test(test_dict_values_must_be_operator_dicts),
        cmocka_unit_test(test_illegal_keys),
        cmocka_unit_test(test_buffers_only_against_none),
        cmocka_unit_test(test_not_a_dict),
        cmocka_unit_test(test_error_text_is_cut_to_its_buffer),
        cmocka_unit_test(test_tree_packs_and_unpacks),
        cmocka_unit_test(test_new_ids),
        cmocka_unit_test(test_keys_default_is_all_but_buffers),
        cmocka_unit_test(test_keys_lists_and_names),
        cmocka_unit_test(test_keys_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
