/*
 * test_dbbackend_contract.c - what every dbbackend plugin must do, checked through the real
 * plugin host (cpar_db_open) with a fresh database per test.
 *
 * Usage: test_dbbackend_contract <backend> [--stores-nothing]   (or CPAR_DB_BACKEND=<backend>)
 *
 * A backend that stores records passes three groups: storage (this file: add, update, get, drop,
 * history, datetimes, buffers), queries (dbcontract_query.c: find_records with every operator
 * and projection, drop_matching) and ipyparallel's own test_db.py, ported (dbcontract_testdb.c).
 * A backend that stores nothing, like NoDB, is registered with --stores-nothing and passes its
 * own contract instead (dbcontract_nodb.c): no group is skipped for a backend, so a storing
 * backend that fails to store fails.
 *
 * Settings for the backend: CPAR_CONTRACT_CONFIG='{"Section": {"trait": value, ...}, ...}'.
 * Each test gets a fresh session id and the run a fresh profile directory, so backends that
 * keep files or tables per session start empty.
 */
#include "dbcontract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>

/* ---- the contract ------------------------------------------------------------------------ */

static void test_add_get_full_record(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    full_record(&r, "full-1");
    add_ok(fx, &r);
    get_ok(fx, "full-1", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_add_get_minimal_record(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "minimal";
    add_ok(fx, &r);
    get_ok(fx, "minimal", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_add_duplicate(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r, dup;

    full_record(&r, "dup");
    add_ok(fx, &r);
    cpar_record_init(&dup);
    dup.msg_id = "dup";
    dup.stdout = "other";
    assert_int_equal(cpar_db_add(fx->db, &dup), CPAR_EEXIST);
    assert_string_not_equal(cpar_db_error(fx->db), "");
    get_ok(fx, "dup", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_record_is_copied(void **state)
{
    fixture_t *fx = *state;
    char id[] = "copied";
    char out[] = "before";
    uint8_t buf[] = {1, 2, 3};
    ProtobufCBinaryData b = bin(buf, sizeof buf);
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = id;
    r.stdout = out;
    r.n_buffers = 1;
    r.buffers = &b;
    add_ok(fx, &r);
    /* The caller's memory is its own again once add returned. */
    memcpy(out, "after!", sizeof out);
    buf[0] = 9;
    get_ok(fx, "copied", &g);
    assert_string_equal(g.rec->stdout, "before");
    assert_int_equal(g.rec->buffers[0].data[0], 1);
    got_free(&g);
}

static void test_update_selected_fields(void **state)
{
    fixture_t *fx = *state;
    uint8_t big[300];
    ProtobufCBinaryData newres[3];
    got_t g = {0};
    cpar_record_t r, u, want;

    full_record(&r, "upd");
    add_ok(fx, &r);

    memset(big, 0, sizeof big);
    big[299] = 0xff;
    newres[0] = bin("", 0);
    newres[1] = bin(big, sizeof big);
    newres[2] = bin("\0x\0", 3);
    cpar_record_init(&u);
    u.msg_id = "upd";
    u.engine_uuid = "ffffffff-000000000000000000000fff";
    /* started is named but absent: it becomes absent */
    u.stdout = "not named, so not written";
    u.n_result_buffers = 3;
    u.result_buffers = newres;
    u.stderr = NULL; /* named and absent */
    update_ok(fx, &u,
              CPAR_REC_ENGINE_UUID | CPAR_REC_STARTED | CPAR_REC_RESULT_BUFFERS | CPAR_REC_STDERR);

    full_record(&want, "upd");
    want.engine_uuid = u.engine_uuid;
    want.has_started = 0;
    want.started = 0;
    want.n_result_buffers = 3;
    want.result_buffers = newres;
    want.stderr = NULL;
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);

    /* Setting fields that were absent, and emptying a repeated field. */
    cpar_record_init(&u);
    u.msg_id = "upd";
    set_time(&u, CPAR_REC_STARTED, 5);
    u.stderr = "again";
    update_ok(fx, &u, CPAR_REC_STARTED | CPAR_REC_STDERR | CPAR_REC_BUFFERS);
    set_time(&want, CPAR_REC_STARTED, 5);
    want.stderr = "again";
    want.n_buffers = 0;
    want.buffers = NULL;
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);

    /* No field named: nothing changes. */
    cpar_record_init(&u);
    u.msg_id = "upd";
    update_ok(fx, &u, 0);
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);
    got_free(&g);
}

static void test_update_all_fields(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r, empty;

    cpar_record_init(&r);
    r.msg_id = "all";
    add_ok(fx, &r);
    full_record(&r, "all");
    update_ok(fx, &r, CPAR_REC_ALL);
    get_ok(fx, "all", &g);
    assert_records_equal(&r, g.rec);

    cpar_record_init(&empty);
    empty.msg_id = "all";
    update_ok(fx, &empty, CPAR_REC_ALL);
    get_ok(fx, "all", &g);
    assert_records_equal(&empty, g.rec);
    got_free(&g);
}

static void test_missing_ids(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t u;

    assert_int_equal(cpar_db_get(fx->db, "nope", got_record, &g), CPAR_ENOENT);
    assert_int_equal(g.calls, 0);
    cpar_record_init(&u);
    u.msg_id = "nope";
    u.stdout = "x";
    assert_int_equal(cpar_db_update(fx->db, &u, CPAR_REC_STDOUT), CPAR_ENOENT);
    assert_int_equal(cpar_db_drop(fx->db, "nope"), CPAR_ENOENT);
    assert_int_equal(cpar_db_get(fx->db, "nope", got_record, &g), CPAR_ENOENT);
    assert_int_equal(g.calls, 0);
}

static void add_submitted(fixture_t *fx, const char *id, int has, int64_t submitted)
{
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = (char *)id;
    if (has)
        set_time(&r, CPAR_REC_SUBMITTED, submitted);
    add_ok(fx, &r);
}

static void test_drop(void **state)
{
    fixture_t *fx = *state;
    static const char *const left[] = {"keep"};
    got_t g = {0};
    cpar_record_t r;

    full_record(&r, "gone");
    add_ok(fx, &r);
    add_submitted(fx, "keep", 1, INT64_C(1633046400123457));
    assert_int_equal(cpar_db_drop(fx->db, "gone"), 0);
    assert_int_equal(cpar_db_get(fx->db, "gone", got_record, &g), CPAR_ENOENT);
    assert_int_equal(cpar_db_drop(fx->db, "gone"), CPAR_ENOENT);
    history_is(fx, left, 1);
    /* The id is free again. */
    add_ok(fx, &r);
    get_ok(fx, "gone", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_history_order(void **state)
{
    fixture_t *fx = *state;
    static const char *const order1[] = {"d", "a", "b1", "b2", "c"};
    static const char *const order2[] = {"d", "a", "c", "b1", "b2"};
    static const char *const order3[] = {"d", "a", "c", "b1", "b2", "none"};
    static const char *const order4[] = {"a", "c", "b1", "b2", "late"};
    cpar_record_t u;

    history_is(fx, NULL, 0);
    add_submitted(fx, "c", 1, 3000000);
    add_submitted(fx, "a", 1, 1000000);
    add_submitted(fx, "b1", 1, 2000000);
    add_submitted(fx, "none", 0, 0);
    add_submitted(fx, "b2", 1, 2000000);
    add_submitted(fx, "d", 1, -5);
    history_is(fx, order1, 5);

    /* An updated submitted moves the record; ties stay in insertion order (c came first). */
    cpar_record_init(&u);
    u.msg_id = "c";
    set_time(&u, CPAR_REC_SUBMITTED, 2000000);
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    history_is(fx, order2, 5);

    /* Gaining a submitted joins the history; losing it leaves. */
    cpar_record_init(&u);
    u.msg_id = "none";
    set_time(&u, CPAR_REC_SUBMITTED, 9000000);
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    history_is(fx, order3, 6);
    cpar_record_init(&u);
    u.msg_id = "d";
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    assert_int_equal(cpar_db_drop(fx->db, "none"), 0);
    add_submitted(fx, "late", 1, 9000000);
    history_is(fx, order4, 5);
}

static void test_datetimes(void **state)
{
    const int64_t *times = dbc_edge_times;
    fixture_t *fx = *state;
    got_t g = {0};

    for (size_t i = 0; i < sizeof dbc_edge_times / sizeof dbc_edge_times[0]; i++) {
        char id[32];
        cpar_record_t r;

        snprintf(id, sizeof id, "t%zu", i);
        cpar_record_init(&r);
        r.msg_id = id;
        set_time(&r, CPAR_REC_SUBMITTED, times[i]);
        set_time(&r, CPAR_REC_STARTED, times[i]);
        set_time(&r, CPAR_REC_COMPLETED, times[i]);
        set_time(&r, CPAR_REC_RECEIVED, times[i]);
        add_ok(fx, &r);
        get_ok(fx, id, &g);
        assert_records_equal(&r, g.rec);
    }
    got_free(&g);
}

static void test_non_ascii_text(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "text";
    r.header = "{\"username\":\"J\u00fcrgen\",\"note\":\"\u65e5\u672c\u8a9e \U0001F600\","
               "\"esc\":\"tab\\t quote\\\" nul\\u0000 backslash\\\\\"}";
    r.content = "{\"code\":\"print('\u03c0 \u2248 3.14')\"}";
    r.execute_input = "s = '\u00e9\u00e8\u00ea'\n\tprint(s)";
    r.stdout = "\u00e9\u00e8\u00ea\r\nline two\n";
    r.stderr = "";
    r.label = "\U0001F680 launch";
    add_ok(fx, &r);
    get_ok(fx, "text", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_big_buffer(void **state)
{
    const size_t size = (size_t)8 << 20;
    fixture_t *fx = *state;
    ProtobufCBinaryData bufs[2];
    got_t g = {0};
    cpar_record_t r;
    uint8_t *data = malloc(size);

    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13); /* includes many zero bytes */
    data[0] = 0;
    data[size - 1] = 0;
    bufs[0] = bin(data, size);
    bufs[1] = bin("\0\0\0", 3);
    cpar_record_init(&r);
    r.msg_id = "big";
    set_time(&r, CPAR_REC_SUBMITTED, 1);
    r.n_buffers = 2;
    r.buffers = bufs;
    add_ok(fx, &r);
    get_ok(fx, "big", &g);
    assert_records_equal(&r, g.rec);

    cpar_record_init(&r);
    r.msg_id = "big";
    r.n_result_buffers = 1;
    r.result_buffers = bufs;
    update_ok(fx, &r, CPAR_REC_RESULT_BUFFERS);
    get_ok(fx, "big", &g);
    assert_int_equal(g.rec->n_result_buffers, 1);
    assert_int_equal(g.rec->result_buffers[0].len, size);
    assert_memory_equal(g.rec->result_buffers[0].data, data, size);
    assert_int_equal(g.rec->n_buffers, 2);
    assert_int_equal(g.rec->buffers[0].len, size);
    got_free(&g);
    free(data);
}

static void test_flush(void **state)
{
    fixture_t *fx = *state;
    cpar_record_t r;

    full_record(&r, "flushed");
    add_ok(fx, &r);
    assert_int_equal(cpar_db_flush(fx->db), 0);
}

/* ---- runner ----------------------------------------------------------------------------- */

int dbc_run_storage(void)
{
    const struct CMUnitTest tests[] = {
        DBC_TEST(test_add_get_full_record),
        DBC_TEST(test_add_get_minimal_record),
        DBC_TEST(test_add_duplicate),
        DBC_TEST(test_record_is_copied),
        DBC_TEST(test_update_selected_fields),
        DBC_TEST(test_update_all_fields),
        DBC_TEST(test_missing_ids),
        DBC_TEST(test_drop),
        DBC_TEST(test_history_order),
        DBC_TEST(test_datetimes),
        DBC_TEST(test_non_ascii_text),
        DBC_TEST(test_big_buffer),
        DBC_TEST(test_flush),
    };
    char name[128];

    snprintf(name, sizeof name, "dbbackend contract: %s: storage", dbc_backend);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    int stores_nothing = argc > 2 && strcmp(argv[2], "--stores-nothing") == 0;
    int failed;

    dbc_backend = argc > 1 ? argv[1] : getenv("CPAR_DB_BACKEND");
    if (!dbc_backend || !*dbc_backend || (argc > 2 && !stores_nothing) || argc > 3) {
        fprintf(stderr, "usage: %s <backend> [--stores-nothing]   (or set CPAR_DB_BACKEND)\n",
                argv[0]);
        return 2;
    }
    if (!mkdtemp(dbc_profile_dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (stores_nothing) {
        failed = dbc_run_nodb();
    } else {
        failed = dbc_run_storage();
        failed += dbc_run_queries();
        failed += dbc_run_testdb();
    }
    nftw(dbc_profile_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
