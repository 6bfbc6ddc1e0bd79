/*
 * test_dictdb_limits.c - DictDB's record_limit / size_limit / cull_fraction, through the real
 * host: ipyparallel's culling examples (with finished records), in-flight records that must
 * survive culling, culled ids, bad settings, and a long run that stays within the limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plugins/db.h"
#include "util/clock.h"
#include "util/log.h"
#include "wire/query.h"

#define UNSET (-1)

typedef struct lim {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    int64_t clock;
    unsigned next_id;
} lim_t;

static void set_cfg(cpar_config_t *cfg, const char *key, json_t *value)
{
    assert_int_equal(cpar_config_set(cfg, "DictDB", key, value, CPAR_SRC_CLI, "test"), 0);
}

/* Open dictdb with the given settings (UNSET leaves the default); returns the open code. */
static int lim_try_open(lim_t *l, int64_t record_limit, int64_t size_limit, double fraction,
                        char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->cfg = cpar_config_new();
    assert_non_null(l->cfg);
    if (record_limit != UNSET)
        set_cfg(l->cfg, "record_limit", json_integer(record_limit));
    if (size_limit != UNSET)
        set_cfg(l->cfg, "size_limit", json_integer(size_limit));
    if (fraction >= 0)
        set_cfg(l->cfg, "cull_fraction", json_real(fraction));
    assert_int_equal(cpar_plughost_new(&l->host, l->cfg, NULL, NULL), 0);
    l->clock = INT64_C(1633046400000000);
    return cpar_db_open(l->host, "DictDB", &l->db, err, errlen);
}

static void lim_open(lim_t *l, int64_t record_limit, int64_t size_limit, double fraction)
{
    char err[1024];
    int rc = lim_try_open(l, record_limit, size_limit, fraction, err, sizeof err);

    if (rc)
        fail_msg("open dictdb: %s", err);
}

static void lim_close(lim_t *l)
{
    cpar_db_close(l->host, l->db);
    cpar_plughost_free(l->host);
    cpar_config_free(l->cfg);
}

/*
 * Add a record with one buffer of `size` bytes, submitted after every earlier one (or without
 * submitted), finished or still in flight. Its id goes to `id` when that is not NULL.
 */
static void add_rec(lim_t *l, size_t size, int completed, int submitted, char id[32])
{
    static uint8_t zeros[1 << 16];
    ProtobufCBinaryData buf = {size, zeros};
    char own[32];
    cpar_record_t r;
    int rc;

    assert_true(size <= sizeof zeros);
    snprintf(id ? id : own, 32, "rec-%06u", l->next_id++);
    cpar_record_init(&r);
    r.msg_id = id ? id : own;
    if (submitted) {
        r.has_submitted = 1;
        r.submitted = l->clock++;
    }
    if (completed) {
        r.has_completed = 1;
        r.completed = l->clock;
    }
    r.n_buffers = 1;
    r.buffers = &buf;
    rc = cpar_db_add(l->db, &r);
    if (rc)
        fail_msg("add %s: %s: %s", r.msg_id, cpar_err_name(rc), cpar_db_error(l->db));
}

static void add_n(lim_t *l, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++)
        add_rec(l, size, 1, 1, NULL);
}

/* Mark a stored record finished, with `size` bytes of results. */
static void complete(lim_t *l, const char *id, size_t size)
{
    static uint8_t ones[1 << 12];
    ProtobufCBinaryData buf = {size, ones};
    cpar_record_t u;
    int rc;

    cpar_record_init(&u);
    u.msg_id = (char *)id;
    u.has_completed = 1;
    u.completed = l->clock;
    u.n_result_buffers = 1;
    u.result_buffers = &buf;
    rc = cpar_db_update(l->db, &u, CPAR_REC_COMPLETED | CPAR_REC_RESULT_BUFFERS);
    if (rc)
        fail_msg("complete %s: %s: %s", id, cpar_err_name(rc), cpar_db_error(l->db));
}

typedef struct walk {
    lim_t *l;
    size_t count;
    uint64_t bytes;
    int with_bytes;
} walk_t;

static void sum_record(void *arg, const cpar_record_t *rec)
{
    walk_t *w = arg;

    for (size_t i = 0; i < rec->n_buffers; i++)
        w->bytes += rec->buffers[i].len;
    for (size_t i = 0; i < rec->n_result_buffers; i++)
        w->bytes += rec->result_buffers[i].len;
}

static void count_id(void *arg, const char *msg_id)
{
    walk_t *w = arg;

    w->count++;
    if (w->with_bytes)
        assert_int_equal(cpar_db_get(w->l->db, msg_id, sum_record, w), 0);
}

static size_t history_len(lim_t *l)
{
    walk_t w = {l, 0, 0, 0};

    assert_int_equal(cpar_db_history(l->db, count_id, &w), 0);
    return w.count;
}

static uint64_t stored_bytes(lim_t *l)
{
    walk_t w = {l, 0, 0, 1};

    assert_int_equal(cpar_db_history(l->db, count_id, &w), 0);
    return w.bytes;
}

static void ignore_record(void *arg, const cpar_record_t *rec)
{
    (void)arg;
    (void)rec;
}

static int present(lim_t *l, const char *id)
{
    return cpar_db_get(l->db, id, ignore_record, NULL) == 0;
}

static void assert_culled(lim_t *l, const char *id)
{
    char want[128];
    cpar_record_t u;

    snprintf(want, sizeof want, "record %s has been culled for size", id);
    assert_int_equal(cpar_db_get(l->db, id, ignore_record, NULL), CPAR_ENOENT);
    assert_string_equal(cpar_db_error(l->db), want);
    cpar_record_init(&u);
    u.msg_id = (char *)id;
    assert_int_equal(cpar_db_update(l->db, &u, CPAR_REC_STDOUT), CPAR_ENOENT);
    assert_string_equal(cpar_db_error(l->db), want);
}

/* ---- ipyparallel's examples (test_db.py), with finished records --------------------------- */

static void test_cull_count(void **state)
{
    lim_t l;

    (void)state;
    lim_open(&l, 20, UNSET, 0.2);
    add_n(&l, 20, 100);
    assert_int_equal(history_len(&l), 20);
    add_n(&l, 1, 100);
    assert_int_equal(history_len(&l), 17); /* 0.2 * 20 = 4 culled */
    add_n(&l, 3, 100);
    assert_int_equal(history_len(&l), 20);
    add_n(&l, 1, 100);
    assert_int_equal(history_len(&l), 17);
    for (int i = 0; i < 25; i++) {
        add_n(&l, 1, 100);
        assert_in_range(history_len(&l), 17, 20);
    }
    /* The oldest went first. */
    assert_culled(&l, "rec-000000");
    assert_culled(&l, "rec-000003");
    assert_true(present(&l, "rec-000049"));
    lim_close(&l);
}

static void test_cull_count_small_fraction(void **state)
{
    lim_t l;

    (void)state;
    /* 0.1 * 5 truncates to 0: ipyparallel then never culled; the limit still holds here. */
    lim_open(&l, 5, UNSET, 0.1);
    add_n(&l, 50, 1);
    assert_int_equal(history_len(&l), 5);
    lim_close(&l);
}

static void test_cull_size(void **state)
{
    lim_t l;

    (void)state;
    lim_open(&l, UNSET, 1000, 0.2);
    add_n(&l, 100, 10);
    assert_int_equal(history_len(&l), 100);
    add_n(&l, 1, 0);
    assert_int_equal(history_len(&l), 101);
    add_n(&l, 1, 1);
    assert_int_equal(history_len(&l), 81);
    assert_int_equal(stored_bytes(&l), 791);
    lim_close(&l);
}

static void test_cull_size_drop(void **state)
{
    lim_t l;

    (void)state;
    lim_open(&l, UNSET, 1000, 0.2);
    add_n(&l, 100, 10);
    assert_int_equal(cpar_db_drop(l.db, "rec-000099"), 0);
    assert_int_equal(history_len(&l), 99);
    add_n(&l, 1, 5);
    assert_int_equal(history_len(&l), 100);
    add_n(&l, 1, 5);
    assert_int_equal(history_len(&l), 101);
    add_n(&l, 1, 1);
    assert_int_equal(history_len(&l), 81);
    /* A dropped id is not a culled one. */
    assert_int_equal(cpar_db_get(l.db, "rec-000099", ignore_record, NULL), CPAR_ENOENT);
    assert_string_equal(cpar_db_error(l.db), "no such msg_id rec-000099");
    lim_close(&l);
}

/* drop_matching keeps the byte count and the indexes culling uses, by id and by scan alike. */
static size_t drop_matching(lim_t *l, const char *json)
{
    cpar_query_t *q;
    size_t dropped = 0;
    char err[256];

    if (cpar_query_parse(json, strlen(json), &q, err, sizeof err) != 0)
        fail_msg("query %s: %s", json, err);
    assert_int_equal(cpar_db_drop_matching(l->db, q, &dropped), 0);
    cpar_query_free(q);
    return dropped;
}

static void test_cull_size_drop_matching(void **state)
{
    lim_t l;

    (void)state;
    lim_open(&l, UNSET, 1000, 0.2);
    add_n(&l, 100, 10);
    assert_int_equal(drop_matching(&l, "{\"msg_id\": {\"$regex\": \"^rec-00009\"}}"), 10);
    assert_int_equal(drop_matching(&l, "{\"msg_id\": {\"$in\": [\"rec-000000\", "
                                        "\"rec-000001\"]}}"),
                     2);
    assert_int_equal(history_len(&l), 88);
    assert_int_equal(stored_bytes(&l), 880);
    add_n(&l, 12, 10);
    assert_int_equal(history_len(&l), 100);
    add_n(&l, 1, 1);
    /* 1001 bytes: the oldest 21 ten-byte records go */
    assert_int_equal(history_len(&l), 80);
    assert_int_equal(stored_bytes(&l), 791);
    /* a dropped id is not a culled one */
    assert_int_equal(cpar_db_get(l.db, "rec-000095", ignore_record, NULL), CPAR_ENOENT);
    assert_string_equal(cpar_db_error(l.db), "no such msg_id rec-000095");
    lim_close(&l);
}

static void test_cull_count_drop_matching(void **state)
{
    lim_t l;

    (void)state;
    lim_open(&l, 20, UNSET, 0.2);
    add_n(&l, 20, 100);
    assert_int_equal(drop_matching(&l, "{\"msg_id\": {\"$glob\": \"rec-00001[5-9]\"}}"), 5);
    assert_int_equal(history_len(&l), 15);
    add_n(&l, 5, 100);
    assert_int_equal(history_len(&l), 20);
    add_n(&l, 1, 100);
    assert_int_equal(history_len(&l), 17);
    assert_int_equal(drop_matching(&l, "{}"), 17);
    assert_int_equal(history_len(&l), 0);
    assert_int_equal(stored_bytes(&l), 0);
    add_n(&l, 20, 100);
    assert_int_equal(history_len(&l), 20);
    lim_close(&l);
}

static void test_cull_size_update(void **state)
{
    static uint8_t bytes[11];
    ProtobufCBinaryData res;
    cpar_record_t u;
    lim_t l;

    (void)state;
    lim_open(&l, UNSET, 1000, 0.2);
    add_n(&l, 100, 10);
    cpar_record_init(&u);
    u.msg_id = "rec-000099";
    u.n_result_buffers = 1;
    u.result_buffers = &res;
    res.data = bytes;
    res.len = 10;
    assert_int_equal(cpar_db_update(l.db, &u, CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS), 0);
    assert_int_equal(history_len(&l), 100);
    res.len = 11;
    assert_int_equal(cpar_db_update(l.db, &u, CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS), 0);
    assert_int_equal(history_len(&l), 79);
    lim_close(&l);
}

/* ---- records in flight ------------------------------------------------------------------ */

static void test_in_flight_survive_count(void **state)
{
    char running[6][32], id[32];
    lim_t l;

    (void)state;
    lim_open(&l, 10, UNSET, 0.5);
    for (int i = 0; i < 6; i++)
        add_rec(&l, 10, 0, 1, running[i]);
    for (int i = 0; i < 10; i++)
        add_n(&l, 1, 10);
    /* Twice over the limit: each time the five oldest finished records went, never a running one.
     */
    assert_int_equal(history_len(&l), 6);
    for (int i = 0; i < 6; i++)
        assert_true(present(&l, running[i]));
    assert_culled(&l, "rec-000006");

    /* All in flight and over the limit: nothing can go, nothing breaks. */
    for (int i = 0; i < 5; i++)
        add_rec(&l, 10, 0, 1, NULL);
    assert_int_equal(history_len(&l), 11);

    /* A task that finishes becomes the oldest cullable record. */
    complete(&l, running[0], 10);
    assert_int_equal(history_len(&l), 10);
    assert_culled(&l, running[0]);
    add_rec(&l, 10, 1, 1, id);
    assert_int_equal(history_len(&l), 10);
    assert_culled(&l, id);
    for (int i = 1; i < 6; i++)
        assert_true(present(&l, running[i]));
    lim_close(&l);
}

static void test_in_flight_survive_size(void **state)
{
    char a[32], b[32], c[32];
    lim_t l;

    (void)state;
    lim_open(&l, UNSET, 100, 0.1);
    add_rec(&l, 60, 0, 1, a);
    add_rec(&l, 60, 0, 1, b);
    /* 120 bytes over a limit of 100, all in flight: kept (ipyparallel looped forever here). */
    assert_true(present(&l, a));
    assert_true(present(&l, b));
    assert_int_equal(stored_bytes(&l), 120);

    add_rec(&l, 10, 1, 1, c);
    assert_culled(&l, c);
    complete(&l, a, 0);
    assert_culled(&l, a);
    assert_true(present(&l, b));
    assert_int_equal(stored_bytes(&l), 60);
    lim_close(&l);
}

static void test_unsubmitted_never_culled(void **state)
{
    char loose[3][32];
    lim_t l;

    (void)state;
    lim_open(&l, 5, UNSET, 0.2);
    for (int i = 0; i < 3; i++)
        add_rec(&l, 1, 1, 0, loose[i]);
    add_n(&l, 5, 1);
    assert_int_equal(history_len(&l), 2);
    for (int i = 0; i < 3; i++)
        assert_true(present(&l, loose[i]));
    lim_close(&l);
}

static void test_culled_id_added_again(void **state)
{
    static uint8_t payload[4] = {1, 2, 3, 4};
    ProtobufCBinaryData buf = {sizeof payload, payload};
    cpar_record_t r;
    lim_t l;

    (void)state;
    lim_open(&l, 2, UNSET, 0.5);
    add_n(&l, 3, 1);
    assert_culled(&l, "rec-000000");
    cpar_record_init(&r);
    r.msg_id = "rec-000000";
    r.n_buffers = 1;
    r.buffers = &buf;
    assert_int_equal(cpar_db_add(l.db, &r), 0);
    assert_true(present(&l, "rec-000000"));
    lim_close(&l);
}

static void test_bad_settings(void **state)
{
    char err[1024];
    lim_t l;

    (void)state;
    assert_int_equal(lim_try_open(&l, 0, UNSET, -1, err, sizeof err), CPAR_ECONFIG);
    assert_non_null(strstr(err, "rejected: init failed: CPAR_ECONFIG: DictDB.record_limit must "
                                "be at least 1, not 0"));
    cpar_plughost_free(l.host);
    cpar_config_free(l.cfg);

    assert_int_equal(lim_try_open(&l, UNSET, -5, -1, err, sizeof err), CPAR_ECONFIG);
    assert_non_null(strstr(err, "DictDB.size_limit must be at least 0, not -5"));
    cpar_plughost_free(l.host);
    cpar_config_free(l.cfg);

    assert_int_equal(lim_try_open(&l, UNSET, UNSET, 1.5, err, sizeof err), CPAR_ECONFIG);
    assert_non_null(strstr(err, "DictDB.cull_fraction must be within 0..1, not 1.5"));
    cpar_plughost_free(l.host);
    cpar_config_free(l.cfg);

    l.cfg = cpar_config_new();
    assert_non_null(l.cfg);
    set_cfg(l.cfg, "record_limit", json_string("lots"));
    assert_int_equal(cpar_plughost_new(&l.host, l.cfg, NULL, NULL), 0);
    assert_int_equal(cpar_db_open(l.host, "dictdb", &l.db, err, sizeof err), CPAR_ECONFIG);
    assert_non_null(strstr(err, "DictDB.record_limit must be an integer"));
    cpar_plughost_free(l.host);
    cpar_config_free(l.cfg);
}

/* ---- a long run ------------------------------------------------------------------------- */

static void test_100k_adds_within_limits(void **state)
{
    const size_t record_limit = 1024, size_limit = 256 * 1024, total = 100000;
    char pending[64][32];
    size_t npending = 0;
    int64_t t0 = cpar_monotonic_us();
    lim_t l;

    (void)state;
    lim_open(&l, (int64_t)record_limit, (int64_t)size_limit, UNSET);
    for (size_t i = 0; i < total; i++) {
        size_t size = i % 100 == 7 ? 20000 : (i % 7) * 50;

        if (i % 100 == 50) {
            /* a task that runs while the next 30 are added */
            assert_true(npending < 64);
            add_rec(&l, size, 0, 1, pending[npending++]);
        } else {
            add_n(&l, 1, size);
        }
        if (i % 100 == 80 && npending) {
            assert_true(present(&l, pending[0]));
            complete(&l, pending[0], 100);
            memmove(pending[0], pending[1], --npending * sizeof pending[0]);
        }
        if (i % 100 == 99)
            assert_in_range(history_len(&l), 1, record_limit);
        if (i % 5000 == 4999)
            assert_in_range(stored_bytes(&l), 1, size_limit);
    }
    assert_in_range(history_len(&l), 1, record_limit);
    assert_in_range(stored_bytes(&l), 1, size_limit);
    print_message("%zu adds in %.2f s\n", total, (double)(cpar_monotonic_us() - t0) / 1e6);
    lim_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cull_count),
        cmocka_unit_test(test_cull_count_small_fraction),
        cmocka_unit_test(test_cull_size),
        cmocka_unit_test(test_cull_size_drop),
        cmocka_unit_test(test_cull_size_update),
        cmocka_unit_test(test_cull_size_drop_matching),
        cmocka_unit_test(test_cull_count_drop_matching),
        cmocka_unit_test(test_in_flight_survive_count),
        cmocka_unit_test(test_in_flight_survive_size),
        cmocka_unit_test(test_unsubmitted_never_culled),
        cmocka_unit_test(test_culled_id_added_again),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_100k_adds_within_limits),
    };

    cpar_log_set_level(CPAR_LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
