/*
 * dbcontract_nodb.c - the dbbackend contract for a backend that stores nothing (ipyparallel's
 * NoDB), run instead of the storage groups with --stores-nothing.
 *
 * Writes succeed and leave nothing behind. Reads fail with CPAR_ENOTSUP and call back nothing:
 * get_record and get_history explain it with NoDB's text, and find_records without a text,
 * which the hub answers as ipyparallel's NoData (a text would say that the backend could not
 * evaluate that one query).
 */
#include "dbcontract.h"

#include <stdio.h>
#include <string.h>

#define NODB_NO_DATA "NoDB backend doesn't store any data."

static void never_record(void *arg, const cpar_record_t *rec)
{
    (void)arg;
    fail_msg("called back with record %s", rec->msg_id);
}

static void never_id(void *arg, const char *msg_id)
{
    (void)arg;
    fail_msg("called back with msg_id %s", msg_id);
}

static void assert_reads_fail(fixture_t *fx, const char *id)
{
    cpar_query_t *q = query_of("{}");

    assert_int_equal(cpar_db_get(fx->db, id, never_record, NULL), CPAR_ENOTSUP);
    assert_string_equal(cpar_db_error(fx->db), NODB_NO_DATA);
    assert_int_equal(cpar_db_history(fx->db, never_id, NULL), CPAR_ENOTSUP);
    assert_string_equal(cpar_db_error(fx->db), NODB_NO_DATA);
    assert_int_equal(cpar_db_find(fx->db, q, CPAR_REC_ALL, never_record, NULL), CPAR_ENOTSUP);
    assert_string_equal(cpar_db_error(fx->db), "");
    cpar_query_free(q);
}

static void test_nodb_writes_succeed(void **state)
{
    fixture_t *fx = *state;
    cpar_record_t r;

    full_record(&r, "w");
    add_ok(fx, &r);
    add_ok(fx, &r); /* nothing is stored, so nothing is a duplicate */
    update_ok(fx, &r, CPAR_REC_ALL);
    r.msg_id = "never-added";
    update_ok(fx, &r, CPAR_REC_STDOUT);
    assert_int_equal(cpar_db_drop(fx->db, "w"), 0);
    assert_int_equal(cpar_db_drop(fx->db, "never-added"), 0);
    assert_int_equal(cpar_db_flush(fx->db), 0);
}

static void test_nodb_reads_not_supported(void **state)
{
    fixture_t *fx = *state;
    cpar_record_t r;

    assert_reads_fail(fx, "nothing");
    full_record(&r, "added");
    add_ok(fx, &r);
    assert_reads_fail(fx, "added");
}

static void test_nodb_drop_matching_drops_nothing(void **state)
{
    static const char *const queries[] = {"{}", "{\"completed\": {\"$ne\": null}}",
                                          "{\"msg_id\": {\"$in\": [\"a\", \"b\"]}}"};
    fixture_t *fx = *state;
    cpar_record_t r;

    full_record(&r, "a");
    add_ok(fx, &r);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++)
        assert_int_equal(drop_matching_ok(fx, queries[i]), 0);
    assert_reads_fail(fx, "a");
}

int dbc_run_nodb(void)
{
    const struct CMUnitTest tests[] = {
        DBC_TEST(test_nodb_writes_succeed),
        DBC_TEST(test_nodb_reads_not_supported),
        DBC_TEST(test_nodb_drop_matching_drops_nothing),
    };
    char name[128];

    snprintf(name, sizeof name, "dbbackend contract: %s: stores nothing", dbc_backend);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
