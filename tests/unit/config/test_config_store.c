/* test_config_store.c - the settings store: precedence, origins, typed reads, unknown keys. */
#include "cfgtest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

#include "config/internal.h"
#include "controller/options.h"

static void test_set_get_steal(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    json_t *v;

    (void)state;
    assert_non_null(cfg);
    assert_null(cpar_config_get(cfg, "IPController", "ip"));
    assert_null(cpar_config_origin(cfg, "IPController", "ip"));
    assert_int_equal(cpar_config_source(cfg, "IPController", "ip"), CPAR_SRC_DEFAULT);

    v = json_string("10.0.0.1");
    assert_int_equal(cpar_config_set(cfg, "IPController", "ip", v, CPAR_SRC_PY, "f.py:3"), 0);
    assert_ptr_equal(cpar_config_get(cfg, "IPController", "ip"), v);
    assert_string_equal(cpar_config_origin(cfg, "IPController", "ip"), "f.py:3");
    assert_int_equal(cpar_config_source(cfg, "IPController", "ip"), CPAR_SRC_PY);

    /* the reference is stolen also on failure */
    assert_int_equal(cpar_config_set(cfg, "", "ip", json_string("x"), CPAR_SRC_CLI, "--x"),
                     CPAR_EINVAL);
    assert_int_equal(cpar_config_set(cfg, "A", "", json_string("x"), CPAR_SRC_CLI, "--x"),
                     CPAR_EINVAL);
    assert_int_equal(cpar_config_set(cfg, "A", "b", NULL, CPAR_SRC_CLI, "--x"), CPAR_EINVAL);
    assert_int_equal(cpar_config_set_dotted(cfg, "nodot", json_true(), CPAR_SRC_CLI, "--x"),
                     CPAR_EINVAL);
    assert_int_equal(cpar_config_set_dotted(cfg, "A.", json_true(), CPAR_SRC_CLI, "--x"),
                     CPAR_EINVAL);
    assert_int_equal(cpar_config_set_dotted(cfg, ".b", json_true(), CPAR_SRC_CLI, "--x"),
                     CPAR_EINVAL);

    /* split at the last dot */
    assert_int_equal(cpar_config_set_dotted(cfg, "a.b.c", json_integer(1), CPAR_SRC_JSON, "j"), 0);
    assert_true(json_is_integer(cpar_config_get(cfg, "a.b", "c")));
    assert_int_equal(cfgt_nkeys(cfg), 2);
    cpar_config_free(cfg);
    cpar_config_free(NULL);
}

static void test_precedence_in_store(void **state)
{
    static const cpar_cfg_source_t orders[][4] = {
        {CPAR_SRC_PY, CPAR_SRC_JSON, CPAR_SRC_ENV, CPAR_SRC_CLI},
        {CPAR_SRC_CLI, CPAR_SRC_ENV, CPAR_SRC_JSON, CPAR_SRC_PY},
        {CPAR_SRC_ENV, CPAR_SRC_CLI, CPAR_SRC_PY, CPAR_SRC_JSON},
        {CPAR_SRC_JSON, CPAR_SRC_PY, CPAR_SRC_CLI, CPAR_SRC_ENV},
    };

    (void)state;
    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
        cpar_config_t *cfg = cpar_config_new();

        for (int i = 0; i < 4; i++) {
            char origin[16];

            snprintf(origin, sizeof origin, "src%d", (int)orders[o][i]);
            assert_int_equal(
                cpar_config_set(cfg, "S", "k", json_integer(orders[o][i]), orders[o][i], origin),
                0);
        }
        assert_int_equal(json_integer_value(cpar_config_get(cfg, "S", "k")), CPAR_SRC_CLI);
        assert_int_equal(cpar_config_source(cfg, "S", "k"), CPAR_SRC_CLI);
        assert_string_equal(cpar_config_origin(cfg, "S", "k"), "src4");
        cpar_config_free(cfg);
    }
}

static void test_same_source_last_wins(void **state)
{
    cpar_config_t *cfg = cpar_config_new();

    (void)state;
    assert_int_equal(cpar_config_set(cfg, "S", "k", json_integer(1), CPAR_SRC_PY, "f:1"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "k", json_integer(2), CPAR_SRC_PY, "f:2"), 0);
    assert_int_equal(json_integer_value(cpar_config_get(cfg, "S", "k")), 2);
    assert_string_equal(cpar_config_origin(cfg, "S", "k"), "f:2");
    /* a lower source is dropped, returning 0 */
    assert_int_equal(cpar_config_set(cfg, "S", "k", json_integer(3), CPAR_SRC_DEFAULT, "d"), 0);
    assert_int_equal(json_integer_value(cpar_config_get(cfg, "S", "k")), 2);
    cpar_config_free(cfg);
}

typedef struct {
    int n;
    char seen[8][32];
    int stop_at;
} visit_t;

static int visit(void *arg, const char *section, const char *key, json_t *value,
                 cpar_cfg_source_t src, const char *origin)
{
    visit_t *v = arg;

    (void)value;
    (void)src;
    (void)origin;
    snprintf(v->seen[v->n], sizeof v->seen[0], "%s.%s", section, key);
    v->n++;
    return v->n == v->stop_at ? 7 : 0;
}

static void test_foreach_order(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    visit_t v = {0};

    (void)state;
    assert_int_equal(cpar_config_set(cfg, "B", "x", json_true(), CPAR_SRC_PY, "1"), 0);
    assert_int_equal(cpar_config_set(cfg, "A", "y", json_true(), CPAR_SRC_PY, "2"), 0);
    assert_int_equal(cpar_config_set(cfg, "C", "z", json_true(), CPAR_SRC_PY, "3"), 0);
    /* replacing keeps the place */
    assert_int_equal(cpar_config_set(cfg, "B", "x", json_false(), CPAR_SRC_CLI, "4"), 0);
    assert_int_equal(cpar_config_foreach(cfg, visit, &v), 0);
    assert_int_equal(v.n, 3);
    assert_string_equal(v.seen[0], "B.x");
    assert_string_equal(v.seen[1], "A.y");
    assert_string_equal(v.seen[2], "C.z");
    memset(&v, 0, sizeof v);
    v.stop_at = 2;
    assert_int_equal(cpar_config_foreach(cfg, visit, &v), 7);
    assert_int_equal(v.n, 2);
    cpar_config_free(cfg);
}

static void test_typed_reads(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    const char *s = NULL;
    int64_t i = -1;
    double d = -1;
    int b = -1;
    char *log;

    (void)state;
    assert_int_equal(cpar_config_set(cfg, "S", "str", json_string("abc"), CPAR_SRC_PY, "f:1"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "int", json_integer(42), CPAR_SRC_PY, "f:2"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "real", json_real(2.5), CPAR_SRC_PY, "f:3"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "yes", json_true(), CPAR_SRC_PY, "f:4"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "one", json_integer(1), CPAR_SRC_PY, "f:5"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "none", json_null(), CPAR_SRC_PY, "f:6"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "digits", json_string("250"), CPAR_SRC_PY, "f:7"),
                     0);

    assert_int_equal(cpar_config_string(cfg, "S", "str", &s), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(cpar_config_int(cfg, "S", "int", &i), 0);
    assert_int_equal(i, 42);
    assert_int_equal(cpar_config_double(cfg, "S", "real", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(cpar_config_double(cfg, "S", "int", &d), 0);
    assert_true(d == 42.0);
    assert_int_equal(cpar_config_bool(cfg, "S", "yes", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cpar_config_bool(cfg, "S", "one", &b), 0);
    assert_int_equal(b, 1);

    /* unset and None: ENOENT, *out untouched */
    i = 77;
    assert_int_equal(cpar_config_int(cfg, "S", "missing", &i), CPAR_ENOENT);
    assert_int_equal(cpar_config_int(cfg, "S", "none", &i), CPAR_ENOENT);
    assert_int_equal(i, 77);

    /* wrong types: EINVAL and one warning naming key, origin and the type wanted */
    cfgt_stderr_begin();
    assert_int_equal(cpar_config_int(cfg, "S", "str", &i), CPAR_EINVAL);
    assert_int_equal(cpar_config_int(cfg, "S", "real", &i), CPAR_EINVAL);
    assert_int_equal(cpar_config_string(cfg, "S", "int", &s), CPAR_EINVAL);
    assert_int_equal(cpar_config_bool(cfg, "S", "int", &b), CPAR_EINVAL);
    /* a file's string of digits is a string, not a number */
    assert_int_equal(cpar_config_int(cfg, "S", "digits", &i), CPAR_EINVAL);
    log = cfgt_stderr_end();
    assert_int_equal(cfgt_count(log, "\n"), 5);
    assert_int_equal(cfgt_count(log, "S.str = \"abc\" (from f:1) is not an integer"), 1);
    assert_int_equal(cfgt_count(log, "S.real = 2.5 (from f:3) is not an integer"), 1);
    assert_int_equal(cfgt_count(log, "S.int = 42 (from f:2) is not a string"), 1);
    assert_int_equal(cfgt_count(log, "S.int = 42 (from f:2) is not a bool"), 1);
    free(log);
    assert_int_equal(i, 77);
    cpar_config_free(cfg);
}

static void test_text_sources_convert(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    int b = -1;

    (void)state;
    /* the command line gives numbers with their text, the environment strings */
    assert_int_equal(
        cpar_config_set_raw(cfg, "S", "n", json_real(1000.0), CPAR_SRC_CLI, "--n", "1e3"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "flag", json_integer(10), CPAR_SRC_CLI, "--f"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "t", json_true(), CPAR_SRC_CLI, "--t"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "e", json_string(" -1_000 "), CPAR_SRC_ENV, "E"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "f", json_string("2.5"), CPAR_SRC_CLI, "--f"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "bt", json_string("TRUE"), CPAR_SRC_CLI, "--b"), 0);
    assert_int_equal(cpar_config_set(cfg, "S", "bf", json_string("0"), CPAR_SRC_ENV, "B"), 0);

    assert_int_equal(cpar_config_string(cfg, "S", "n", &s), 0);
    assert_string_equal(s, "1e3");
    assert_int_equal(cpar_config_string(cfg, "S", "flag", &s), 0);
    assert_string_equal(s, "10");
    assert_int_equal(cpar_config_string(cfg, "S", "t", &s), 0);
    assert_string_equal(s, "True");
    assert_int_equal(cpar_config_int(cfg, "S", "e", &i), 0);
    assert_int_equal(i, -1000);
    assert_int_equal(cpar_config_double(cfg, "S", "f", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(cpar_config_bool(cfg, "S", "bt", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cpar_config_bool(cfg, "S", "bf", &b), 0);
    assert_int_equal(b, 0);
    cpar_config_free(cfg);
}

static void test_pick_section(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    const char *sec;

    (void)state;
    assert_null(cpar_config_pick_section(cfg, cpar_controller_app_sections, "log_level"));
    assert_int_equal(cpar_config_set(cfg, "Application", "log_level", json_integer(10),
                                     CPAR_SRC_CLI, "--log-level"),
                     0);
    assert_int_equal(
        cpar_config_set(cfg, "IPController", "log_level", json_integer(30), CPAR_SRC_PY, "f:1"), 0);
    sec = cpar_config_pick_section(cfg, cpar_controller_app_sections, "log_level");
    assert_non_null(sec);
    assert_string_equal(sec, "Application");
    /* equal sources: the most specific class */
    assert_int_equal(cpar_config_set(cfg, "BaseParallelApplication", "log_level", json_integer(20),
                                     CPAR_SRC_CLI, "--B"),
                     0);
    assert_string_equal(cpar_config_pick_section(cfg, cpar_controller_app_sections, "log_level"),
                        "BaseParallelApplication");
    cpar_config_free(cfg);
}

static void test_warn_unknown(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    static const char *const sections[] = {"IPController.", "SQLiteDB", NULL};
    static const char *const traits[] = {"IPController.ip", NULL};
    char *log;

    (void)state;
    assert_int_equal(
        cpar_config_set(cfg, "IPController", "ip", json_string("x"), CPAR_SRC_CLI, "--ip"), 0);
    assert_int_equal(cpar_config_set(cfg, "IPController", "bogus", json_true(), CPAR_SRC_PY,
                                     "ipcontroller_config.py:3"),
                     0);
    assert_int_equal(cpar_config_set(cfg, "SQLiteDB", "anything", json_true(), CPAR_SRC_PY,
                                     "ipcontroller_config.py:4"),
                     0);
    assert_int_equal(cpar_config_set(cfg, "Nope", "x", json_true(), CPAR_SRC_CLI, "--Nope.x"), 0);
    /* a section listed without "." does not make "IPControllerX" known */
    assert_int_equal(cpar_config_set(cfg, "SQLiteDBX", "y", json_true(), CPAR_SRC_JSON, "j:2"), 0);
    cfgt_stderr_begin();
    assert_int_equal(cpar_config_warn_unknown(cfg, sections, traits), 3);
    log = cfgt_stderr_end();
    assert_int_equal(cfgt_count(log, "\n"), 3);
    assert_int_equal(cfgt_count(log, "IPController.bogus (from ipcontroller_config.py:3)"), 1);
    assert_int_equal(cfgt_count(log, "Nope.x (from --Nope.x): no such section"), 1);
    assert_int_equal(cfgt_count(log, "SQLiteDBX.y (from j:2)"), 1);
    assert_int_equal(cfgt_count(log, "SQLiteDB.anything"), 0);
    assert_int_equal(cfgt_count(log, "IPController.ip "), 0);
    free(log);
    cpar_config_free(cfg);
}

static void test_controller_lists(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    static const char *const known[] = {
        "IPController.ip",
        "IPController.db_class",
        "IPController.max_message_size",
        "HeartMonitor.period",
        "HeartMonitor.max_heartmonitor_misses",
        "TaskScheduler.scheme_name",
        "Session.secure",
        "ProfileDir.location",
        "BaseIPythonApplication.profile",
        "BaseParallelApplication.cluster_id",
        "Application.log_level",
        "CParallel.plugin_path",
        "DictDB.record_limit",
        "SQLiteDB.filename",
        "MongoDB.connection_kwargs",
        "NoDB.x",
        "IPController.log_level",
    };
    static const char *const unknown[] = {"IPController.bogus", "HeartMonitor.x",
                                          "HubFactory.db_class", "Session.nope"};

    (void)state;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        assert_int_equal(cpar_config_set_dotted(cfg, known[i], json_true(), CPAR_SRC_PY, "k"), 0);
    assert_int_equal(
        cpar_config_warn_unknown(cfg, cpar_controller_sections, cpar_controller_traits), 0);
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(cpar_config_set_dotted(cfg, unknown[i], json_true(), CPAR_SRC_PY, "u"), 0);
    cfgt_stderr_begin();
    assert_int_equal(
        cpar_config_warn_unknown(cfg, cpar_controller_sections, cpar_controller_traits), 4);
    free(cfgt_stderr_end());
    /* every trait listed belongs to a section listed for checking */
    for (size_t i = 0; cpar_controller_traits[i]; i++) {
        const char *dot = strchr(cpar_controller_traits[i], '.');
        int found = 0;

        assert_non_null(dot);
        for (size_t j = 0; cpar_controller_sections[j]; j++)
            found |= !strncmp(cpar_controller_sections[j], cpar_controller_traits[i],
                              (size_t)(dot - cpar_controller_traits[i]) + 1) &&
                     cpar_controller_sections[j][dot - cpar_controller_traits[i] + 1] == '\0';
        assert_true(found);
    }
    cpar_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_steal),         cmocka_unit_test(test_precedence_in_store),
        cmocka_unit_test(test_same_source_last_wins), cmocka_unit_test(test_foreach_order),
        cmocka_unit_test(test_typed_reads),           cmocka_unit_test(test_text_sources_convert),
        cmocka_unit_test(test_pick_section),          cmocka_unit_test(test_warn_unknown),
        cmocka_unit_test(test_controller_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
