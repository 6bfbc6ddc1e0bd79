/*
 * dbcontract_testdb.c - the dbbackend contract, ipyparallel's own backend tests: the cases of
 * ipyparallel/tests/test_db.py (TaskDBTest, run there against DictDB, SQLite and MongoDB),
 * ported one by one. The DictDB-only culling tests live in test_dictdb_limits.c.
 *
 * As in test_db.py every test starts with 16 records made like the hub's init_record() from
 * an apply_request with a 100-byte random buffer. Their submitted times come from a clock that
 * moves 1.001 ms every second record, so that pairs tie (ties keep insertion order).
 */
#include "dbcontract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

/* 2021-10-01T00:00:00Z */
#define T0 INT64_C(1633046400000000)

/* ---- records like test_db.py's load_records -------------------------------------------- */

static uint32_t testdb_rng = 0x9e3779b9u;

static uint8_t testdb_byte(void)
{
    testdb_rng ^= testdb_rng << 13;
    testdb_rng ^= testdb_rng >> 17;
    testdb_rng ^= testdb_rng << 5;
    return (uint8_t)(testdb_rng >> 24);
}

/* Add n records with one random buffer of buffer_size bytes; their ids go to ids (may be NULL). */
static void load_records(fixture_t *fx, size_t n, size_t buffer_size, ids_t *ids)
{
    uint8_t *buf = malloc(buffer_size ? buffer_size : 1);

    assert_non_null(buf);
    if (ids)
        ids->n = 0;
    for (size_t i = 0; i < n; i++) {
        char id[CPAR_ID_LEN], header[512], iso[CPAR_ISO_LEN];
        int64_t submitted = T0 + (int64_t)(fx->loaded++ / 2) * 1001;
        ProtobufCBinaryData b = bin(buf, buffer_size);
        cpar_record_t r;

        for (size_t k = 0; k < buffer_size; k++)
            buf[k] = testdb_byte();
        cpar_new_id(id);
        snprintf(header, sizeof header,
                 "{\"msg_id\":\"%s\",\"msg_type\":\"apply_request\",\"username\":\"test\","
                 "\"session\":\"%s\",\"date\":\"%s\",\"version\":\"5.3\"}",
                 id, fx->session, cpar_iso_format(submitted, iso));
        cpar_record_init(&r);
        r.msg_id = id;
        r.header = header;
        r.content = "{\"a\":5}";
        r.metadata = "{}";
        r.n_buffers = 1;
        r.buffers = &b;
        set_time(&r, CPAR_REC_SUBMITTED, submitted);
        r.stdout = "";
        r.stderr = "";
        add_ok(fx, &r);
        if (ids)
            collect_id(ids, id);
    }
    free(buf);
}

/* test_db.py's setUp: a fresh database with 16 records. */
static int testdb_setup(void **state)
{
    int rc = dbc_setup(state);

    if (rc == 0)
        load_records(*state, 16, 100, NULL);
    return rc;
}

#define TESTDB_TEST(f) cmocka_unit_test_setup_teardown(f, testdb_setup, dbc_teardown)

/* {"msg_id": {"$in": [ids[first], ids[first + step], ...]}} (or $nin) */
static void ids_query(const char *op, const ids_t *ids, size_t first, size_t step, char *out,
                      size_t outlen)
{
    size_t used = (size_t)snprintf(out, outlen, "{\"msg_id\": {\"%s\": [", op);

    for (size_t i = first; i < ids->n && used < outlen; i += step)
        used += (size_t)snprintf(out + used, outlen - used, "%s\"%s\"", i > first ? ", " : "",
                                 ids->id[i]);
    if (used < outlen)
        snprintf(out + used, outlen - used, "]}}");
}

static int64_t submitted_of(fixture_t *fx, const char *id)
{
    got_t g = {0};
    int64_t t;

    get_ok(fx, id, &g);
    assert_true(g.rec->has_submitted);
    t = g.rec->submitted;
    got_free(&g);
    return t;
}

/* ---- the cases -------------------------------------------------------------------------- */

/* test_add_record: the history grows by the records added, the old history its prefix. */
static void test_db_add_record_extends_history(void **state)
{
    fixture_t *fx = *state;
    ids_t before, after, added;

    history_of(fx, &before);
    assert_int_equal(before.n, 16);
    load_records(fx, 5, 100, &added);
    history_of(fx, &after);
    assert_int_equal(after.n, before.n + 5);
    for (size_t i = 0; i < before.n; i++)
        assert_string_equal(after.id[i], before.id[i]);
    for (size_t i = 0; i < added.n; i++)
        assert_string_equal(after.id[before.n + i], added.id[i]);
    ids_free(&before);
    ids_free(&after);
    ids_free(&added);
}

/* test_drop_record: a dropped record is gone. */
static void test_db_drop_record_then_get_fails(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    ids_t ids;

    load_records(fx, 1, 100, &ids);
    get_ok(fx, ids.id[0], &g);
    got_free(&g);
    assert_int_equal(cpar_db_drop(fx->db, ids.id[0]), 0);
    assert_int_equal(cpar_db_get(fx->db, ids.id[0], got_record, &g), CPAR_ENOENT);
    assert_int_equal(g.calls, 0);
    ids_free(&ids);
}

/* test_update_record: the updated fields read back, and the rest of the record is unchanged. */
static void test_db_update_record_round_trip(void **state)
{
    fixture_t *fx = *state;
    int64_t now = cpar_now_us();
    got_t g1 = {0}, g2 = {0};
    char *old_stdout;
    cpar_record_t u;
    ids_t hist;

    history_of(fx, &hist);
    get_ok(fx, hist.id[hist.n - 1], &g1);
    cpar_record_init(&u);
    u.msg_id = hist.id[hist.n - 1];
    u.stdout = "hello there";
    set_time(&u, CPAR_REC_COMPLETED, now);
    update_ok(fx, &u, CPAR_REC_STDOUT | CPAR_REC_COMPLETED);
    get_ok(fx, hist.id[hist.n - 1], &g2);
    assert_string_equal(g2.rec->stdout, "hello there");
    assert_true(g2.rec->has_completed && g2.rec->completed == now);
    /* rec1.update(data) == rec2 */
    old_stdout = g1.rec->stdout;
    g1.rec->stdout = u.stdout;
    set_time(g1.rec, CPAR_REC_COMPLETED, now);
    assert_records_equal(g1.rec, g2.rec);
    g1.rec->stdout = old_stdout;
    got_free(&g1);
    got_free(&g2);
    ids_free(&hist);
}

/* test_find_records_dt: $lt and $gte of a submitted time split the history; equality finds it. */
static void test_db_find_records_dt_partition(void **state)
{
    fixture_t *fx = *state;
    char query[128], iso[CPAR_ISO_LEN];
    found_t before, after, same;
    int64_t tic;
    ids_t hist;

    history_of(fx, &hist);
    tic = submitted_of(fx, hist.id[hist.n / 2]);
    cpar_iso_format(tic, iso);
    snprintf(query, sizeof query, "{\"submitted\": {\"$lt\": \"%s\"}}", iso);
    find_ok(fx, query, CPAR_REC_SUBMITTED, &before);
    snprintf(query, sizeof query, "{\"submitted\": {\"$gte\": \"%s\"}}", iso);
    find_ok(fx, query, CPAR_REC_SUBMITTED, &after);
    assert_int_equal(before.n + after.n, hist.n);
    for (size_t i = 0; i < before.n; i++)
        assert_true(before.rec[i]->has_submitted && before.rec[i]->submitted < tic);
    for (size_t i = 0; i < after.n; i++)
        assert_true(after.rec[i]->has_submitted && after.rec[i]->submitted >= tic);
    snprintf(query, sizeof query, "{\"submitted\": \"%s\"}", iso);
    find_ok(fx, query, CPAR_REC_SUBMITTED, &same);
    assert_int_equal(same.n, 2); /* the records tie in pairs */
    for (size_t i = 0; i < same.n; i++)
        assert_true(same.rec[i]->has_submitted && same.rec[i]->submitted == tic);
    found_free(&before);
    found_free(&after);
    found_free(&same);
    ids_free(&hist);
}

/* test_find_records_keys: the fields asked for are there, with their stored values. */
static void test_db_find_records_keys(void **state)
{
    fixture_t *fx = *state;
    found_t f;

    find_ok(fx, "{\"msg_id\": {\"$ne\": \"\"}}", CPAR_REC_SUBMITTED | CPAR_REC_COMPLETED, &f);
    assert_int_equal(f.n, 16);
    for (size_t i = 0; i < f.n; i++) {
        assert_non_null(f.rec[i]->msg_id);
        assert_true(f.rec[i]->has_submitted);
        assert_true(f.rec[i]->submitted == submitted_of(fx, f.rec[i]->msg_id));
        assert_false(f.rec[i]->has_completed); /* None, as stored */
    }
    found_free(&f);
}

/* test_find_records_msg_id: msg_id is in every found record, whatever fields were asked for. */
static void test_db_find_records_msg_id_always_set(void **state)
{
    static const uint32_t asks[] = {CPAR_REC_SUBMITTED | CPAR_REC_COMPLETED, CPAR_REC_SUBMITTED,
                                    0};
    fixture_t *fx = *state;

    for (size_t k = 0; k < sizeof asks / sizeof asks[0]; k++) {
        found_t f;
        find_ok(fx, "{\"msg_id\": {\"$ne\": \"\"}}", asks[k], &f);
        assert_int_equal(f.n, 16);
        for (size_t i = 0; i < f.n; i++)
            assert_true(f.rec[i]->msg_id && f.rec[i]->msg_id[0]);
        found_free(&f);
    }
}

/* test_find_records_in: $in the even ids of the history finds them, $nin the odd ones. */
static void test_db_find_records_in_nin_even_odd(void **state)
{
    fixture_t *fx = *state;
    char query[4096], even[2048], odd[2048];
    size_t used_even = 0, used_odd = 0;
    ids_t hist;

    history_of(fx, &hist);
    even[0] = odd[0] = '\0';
    for (size_t i = 0; i < hist.n; i++) {
        if (i % 2 == 0)
            used_even += (size_t)snprintf(even + used_even, sizeof even - used_even, "%s ",
                                          hist.id[i]);
        else
            used_odd += (size_t)snprintf(odd + used_odd, sizeof odd - used_odd, "%s ",
                                         hist.id[i]);
    }
    ids_query("$in", &hist, 0, 2, query, sizeof query);
    expect_find(fx, query, even);
    ids_query("$nin", &hist, 0, 2, query, sizeof query);
    expect_find(fx, query, odd);
    ids_free(&hist);
}

/* test_get_history: submitted never decreases along the history; the newest record is last. */
static void test_db_get_history_sorted_newest_last(void **state)
{
    fixture_t *fx = *state;
    int64_t latest = INT64_MIN;
    ids_t hist, added;

    history_of(fx, &hist);
    for (size_t i = 0; i < hist.n; i++) {
        int64_t t = submitted_of(fx, hist.id[i]);
        assert_true(t >= latest);
        latest = t;
    }
    ids_free(&hist);
    load_records(fx, 1, 100, &added);
    history_of(fx, &hist);
    assert_string_equal(hist.id[hist.n - 1], added.id[0]);
    ids_free(&hist);
    ids_free(&added);
}

/* test_datetime: submitted is a datetime; completed set to now reads back as that datetime. */
static void test_db_datetime_round_trip(void **state)
{
    fixture_t *fx = *state;
    int64_t now = cpar_now_us();
    got_t g = {0};
    cpar_record_t u;
    ids_t hist;

    history_of(fx, &hist);
    get_ok(fx, hist.id[hist.n - 1], &g);
    assert_true(g.rec->has_submitted);
    cpar_record_init(&u);
    u.msg_id = hist.id[hist.n - 1];
    set_time(&u, CPAR_REC_COMPLETED, now);
    update_ok(fx, &u, CPAR_REC_COMPLETED);
    get_ok(fx, hist.id[hist.n - 1], &g);
    assert_true(g.rec->has_completed && g.rec->completed == now);
    got_free(&g);
    ids_free(&hist);
}

/* test_drop_matching: after drop_matching of a query, find of it is empty. */
static void test_db_drop_matching_then_find_empty(void **state)
{
    fixture_t *fx = *state;
    char query[4096];
    ids_t ids, hist;

    load_records(fx, 10, 100, &ids);
    ids_query("$in", &ids, 0, 1, query, sizeof query);
    assert_int_equal(drop_matching_ok(fx, query), 10);
    expect_find(fx, query, "");
    history_of(fx, &hist);
    assert_int_equal(hist.n, 16);
    ids_free(&hist);
    ids_free(&ids);
}

/* test_null: msg_id is never None. */
static void test_db_null_queries(void **state)
{
    fixture_t *fx = *state;
    found_t f;

    load_records(fx, 10, 100, NULL);
    find_ok(fx, "{\"msg_id\": null}", CPAR_REC_ALL, &f);
    assert_int_equal(f.n, 0);
    find_ok(fx, "{\"msg_id\": {\"$ne\": null}}", CPAR_REC_ALL, &f);
    assert_int_equal(f.n, 26);
    found_free(&f);
}

/*
 * test_pop_safe_*: changing what a read returned does not change the stored record. A callback
 * gets a const, borrowed record, so here the caller changes its own copy (a buffer's bytes and
 * the header's text) and reads again: the stored record is as it was.
 */
static void scribble(cpar_record_t *r)
{
    if (r->n_buffers && r->buffers[0].len)
        r->buffers[0].data[0] ^= 0xff;
    if (r->header && r->header[0])
        memset(r->header, 'x', strlen(r->header));
}

static void test_db_pop_safe_get(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0}, again = {0};
    cpar_record_t *stored;
    ids_t hist;

    history_of(fx, &hist);
    get_ok(fx, hist.id[hist.n - 1], &g);
    stored = record_copy(g.rec);
    scribble(g.rec);
    get_ok(fx, hist.id[hist.n - 1], &again);
    assert_records_equal(stored, again.rec);
    cpar__record__free_unpacked(stored, NULL);
    got_free(&g);
    got_free(&again);
    ids_free(&hist);
}

static void pop_safe_find(fixture_t *fx, uint32_t fields)
{
    char query[128];
    cpar_record_t *stored;
    found_t f, again;
    ids_t hist;

    history_of(fx, &hist);
    snprintf(query, sizeof query, "{\"msg_id\": \"%s\"}", hist.id[hist.n - 1]);
    find_ok(fx, query, fields, &f);
    assert_int_equal(f.n, 1);
    stored = record_copy(f.rec[0]);
    scribble(f.rec[0]);
    find_ok(fx, query, fields, &again);
    assert_int_equal(again.n, 1);
    assert_fields_equal(stored, again.rec[0], fields);
    assert_non_null(again.rec[0]->header);
    assert_non_null(strstr(again.rec[0]->header, hist.id[hist.n - 1]));
    assert_int_equal(again.rec[0]->n_buffers, 1);
    cpar__record__free_unpacked(stored, NULL);
    found_free(&f);
    found_free(&again);
    ids_free(&hist);
}

static void test_db_pop_safe_find(void **state)
{
    pop_safe_find(*state, CPAR_REC_ALL);
}

static void test_db_pop_safe_find_keys(void **state)
{
    pop_safe_find(*state, CPAR_REC_BUFFERS | CPAR_REC_HEADER);
}

int dbc_run_testdb(void)
{
    const struct CMUnitTest tests[] = {
        TESTDB_TEST(test_db_add_record_extends_history),
        TESTDB_TEST(test_db_drop_record_then_get_fails),
        TESTDB_TEST(test_db_update_record_round_trip),
        TESTDB_TEST(test_db_find_records_dt_partition),
        TESTDB_TEST(test_db_find_records_keys),
        TESTDB_TEST(test_db_find_records_msg_id_always_set),
        TESTDB_TEST(test_db_find_records_in_nin_even_odd),
        TESTDB_TEST(test_db_get_history_sorted_newest_last),
        TESTDB_TEST(test_db_datetime_round_trip),
        TESTDB_TEST(test_db_drop_matching_then_find_empty),
        TESTDB_TEST(test_db_null_queries),
        TESTDB_TEST(test_db_pop_safe_get),
        TESTDB_TEST(test_db_pop_safe_find),
        TESTDB_TEST(test_db_pop_safe_find_keys),
    };
    char name[128];

    snprintf(name, sizeof name, "dbbackend contract: %s: ipyparallel test_db.py", dbc_backend);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
