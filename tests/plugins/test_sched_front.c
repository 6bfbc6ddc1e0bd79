/*
 * test_sched_front.c - the core's scheduler front (plugins/sched.h) through the real host: scheme
 * names, what it refuses before calling the plugin, how it turns a misbehaving plugin's answers
 * into errors, and that notifications and priorities reach the plugin. The probe fixture
 * (tests/plugins/fixtures/probe.c) counts what it sees and misbehaves on request.
 *
 * Run with CPAR_PLUGIN_PATH naming the fixture plugin directory and the build's plugin directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plugins/sched.h"
#include "util/log.h"

typedef struct fixture {
    cpar_plughost_t *host;
    cpar_sched_t *probe;
    cpar_sched_engine_t engines[3];
    cpar_sched_engine_t *offered[3];
} fixture_t;

static int setup(void **state)
{
    cpar_plughost_info_t info = {.program = "test_sched_front", .session = "s"};
    fixture_t *fx = calloc(1, sizeof *fx);
    char err[1024];
    int rc;

    assert_non_null(fx);
    assert_int_equal(cpar_plughost_new(&fx->host, NULL, NULL, &info), 0);
    rc = cpar_sched_open(fx->host, "probe", &fx->probe, err, sizeof err);
    if (rc)
        fail_msg("cpar_sched_open(probe): %s: %s", cpar_err_name(rc), err);
    for (int i = 0; i < 3; i++) {
        fx->engines[i].id = i;
        fx->engines[i].uuid = "e";
        fx->offered[i] = &fx->engines[i];
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    cpar_sched_close(fx->host, fx->probe);
    cpar_plughost_free(fx->host);
    free(fx);
    return 0;
}

static cpar_sched_task_t task_of(const char *msg_id)
{
    return (cpar_sched_task_t){.msg_id = msg_id, .metadata = "{}", .metadata_len = 2};
}

/* What the probe counted, through its priority op. */
static int64_t probe_count(cpar_sched_t *s, const char *what)
{
    cpar_sched_task_t t = task_of(what);

    return cpar_sched_priority(s, &t);
}

static void test_scheme_names(void **state)
{
    static const char *const cases[][2] = {
        {"leastload", "leastload"},
        {"LeastLoad", "leastload"},
        {"LRU", "lru"},
        {"PlainRandom", "plainrandom"},
        {"TWOBIN", "twobin"},
        {"Weighted", "weighted"},
        {"Pure", "pure"},
        {"probe", "probe"},
        {"MyScheme", "MyScheme"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(cpar_sched_plugin_name(cases[i][0]), cases[i][1]);
    assert_string_equal(cpar_sched_plugin_name(NULL), "leastload");
}

static void test_open_by_scheme_name(void **state)
{
    static const struct {
        const char *scheme, *plugin;
        uint32_t flags;
    } cases[] = {
        {NULL, "leastload", 0},
        {"LeastLoad", "leastload", 0},
        {"lru", "lru", 0},
        {"PLAINRANDOM", "plainrandom", 0},
        {"TwoBin", "twobin", 0},
        {"weighted", "weighted", 0},
        {"PURE", "pure", CPAR_SCHED_PLAIN},
    };
    fixture_t *fx = *state;
    char err[1024], want[1024];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cpar_sched_t *s = NULL;
        int rc = cpar_sched_open(fx->host, cases[i].scheme, &s, err, sizeof err);

        if (rc)
            fail_msg("open %s: %s: %s", cases[i].scheme, cpar_err_name(rc), err);
        assert_string_equal(cpar_sched_name(s), cases[i].plugin);
        assert_int_equal(cpar_sched_flags(s), cases[i].flags);
        cpar_sched_close(fx->host, s);
    }

    {
        cpar_sched_t *s = (cpar_sched_t *)&s;

        assert_int_equal(cpar_sched_open(fx->host, "bogus", &s, err, sizeof err), CPAR_ENOENT);
        assert_null(s);
        snprintf(want, sizeof want, "scheduler plugin 'bogus' not found (searched: %s)",
                 cpar_plughost_search_path(fx->host));
        assert_string_equal(err, want);

        assert_int_equal(cpar_sched_open(fx->host, "nochoose", &s, err, sizeof err), CPAR_EABI);
        assert_null(s);
        assert_non_null(
            strstr(err, "/cpar_scheduler_nochoose.so: rejected: missing operation 'choose'"));
    }
}

static void test_refused_before_the_plugin(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_task_t t = task_of("t");
    size_t choice = 99;

    /* no engine to choose from is the core's business */
    assert_int_equal(cpar_sched_choose(fx->probe, &t, fx->offered, 0, &choice), CPAR_EINVAL);
    assert_string_equal(cpar_sched_error(fx->probe), "choose: no engine offered");
    assert_int_equal(cpar_sched_choose(fx->probe, NULL, fx->offered, 3, &choice), CPAR_EINVAL);
    assert_int_equal(cpar_sched_choose(fx->probe, &t, NULL, 3, &choice), CPAR_EINVAL);
    assert_int_equal(cpar_sched_choose(fx->probe, &t, fx->offered, 3, NULL), CPAR_EINVAL);
    assert_int_equal(cpar_sched_choose(NULL, &t, fx->offered, 3, &choice), CPAR_EINVAL);
    assert_int_equal(choice, 99);
    assert_int_equal(probe_count(fx->probe, "calls"), 0);

    assert_int_equal(cpar_sched_choose(fx->probe, &t, fx->offered, 3, &choice), 0);
    assert_int_equal(choice, 2);
    assert_string_equal(cpar_sched_error(fx->probe), "");
    assert_int_equal(probe_count(fx->probe, "calls"), 1);
}

static void test_bad_answers(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_task_t range = task_of("range"), positive = task_of("positive");
    cpar_sched_task_t fail = task_of("fail"), ok = task_of("ok");
    size_t choice = 99;

    assert_int_equal(cpar_sched_choose(fx->probe, &range, fx->offered, 3, &choice), CPAR_EINTERNAL);
    assert_string_equal(cpar_sched_error(fx->probe), "choose picked index 3 of 3 engines");
    assert_int_equal(choice, 99);

    assert_int_equal(cpar_sched_choose(fx->probe, &positive, fx->offered, 3, &choice),
                     CPAR_EINTERNAL);
    assert_string_equal(cpar_sched_error(fx->probe),
                        "choose returned 1, not 0 or a negative CPAR_E* code");
    assert_int_equal(choice, 99);

    /* the plugin's own code and text pass through */
    assert_int_equal(cpar_sched_choose(fx->probe, &fail, fx->offered, 3, &choice), CPAR_EAGAIN);
    assert_string_equal(cpar_sched_error(fx->probe), "probe refuses fail");
    assert_int_equal(choice, 99);

    /* each call starts with a clean slate */
    assert_int_equal(cpar_sched_choose(fx->probe, &ok, fx->offered, 1, &choice), 0);
    assert_int_equal(choice, 0);
    assert_string_equal(cpar_sched_error(fx->probe), "");
    assert_int_equal(probe_count(fx->probe, "calls"), 4);
}

static void test_notifications_and_priority(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_task_t t = {.msg_id = "m", .metadata = "{\"a\": 1}", .metadata_len = 8};
    cpar_sched_t *lru;
    char err[1024];

    assert_true(cpar_sched_has_priority(fx->probe));
    assert_int_equal(cpar_sched_priority(fx->probe, &t), 8);
    assert_int_equal(probe_count(fx->probe, "status"), -1);
    for (int i = 0; i < 3; i++)
        cpar_sched_engine_added(fx->probe, &fx->engines[i]);
    cpar_sched_task_assigned(fx->probe, &t, &fx->engines[1]);
    cpar_sched_task_assigned(fx->probe, &t, &fx->engines[2]);
    cpar_sched_task_finished(fx->probe, &t, &fx->engines[2], 2);
    cpar_sched_engine_removed(fx->probe, &fx->engines[0]);
    assert_int_equal(probe_count(fx->probe, "added"), 3);
    assert_int_equal(probe_count(fx->probe, "assigned"), 2);
    assert_int_equal(probe_count(fx->probe, "finished"), 1);
    assert_int_equal(probe_count(fx->probe, "status"), 2);
    assert_int_equal(probe_count(fx->probe, "removed"), 1);

    /* a plugin without the optional operations: no-ops, and FIFO */
    assert_int_equal(cpar_sched_open(fx->host, "lru", &lru, err, sizeof err), 0);
    assert_false(cpar_sched_has_priority(lru));
    assert_int_equal(cpar_sched_priority(lru, &t), 0);
    cpar_sched_engine_added(lru, &fx->engines[0]);
    cpar_sched_task_assigned(lru, &t, &fx->engines[0]);
    cpar_sched_task_finished(lru, &t, &fx->engines[0], 0);
    cpar_sched_engine_removed(lru, &fx->engines[0]);
    cpar_sched_close(fx->host, lru);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_scheme_names), T(test_open_by_scheme_name),        T(test_refused_before_the_plugin),
        T(test_bad_answers),  T(test_notifications_and_priority),
    };
#undef T

    cpar_log_set_program("test_sched_front");
    cpar_log_set_level(CPAR_LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
