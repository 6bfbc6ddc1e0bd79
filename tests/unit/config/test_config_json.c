/* test_config_json.c - the reader of <prog>_config.json. */
#include "cfgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = cfgt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfgt_rmtree(tmp);
    free(tmp);
    return 0;
}

static void test_good(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path = cfgt_join(CPAR_CONFIG_TEST_DATA, "good.json");
    char err[512] = "", want[600];
    json_t *v;
    int64_t i = 0;

    (void)state;
    assert_int_equal(cpar_config_load_json(cfg, path, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfgt_str(cfg, "IPController", "ip"), "0.0.0.0");
    v = cpar_config_get(cfg, "IPController", "ports");
    assert_int_equal(json_array_size(v), 2);
    assert_true(json_is_true(cpar_config_get(cfg, "IPController", "reuse_files")));
    assert_int_equal(cpar_config_int(cfg, "HeartMonitor", "period", &i), 0);
    assert_int_equal(i, 1500);
    assert_string_equal(cfgt_str(cfg, "SQLiteDB", "table"), "ipython-tasks");
    v = cpar_config_get(cfg, "MongoDB", "connection_kwargs");
    assert_int_equal(json_integer_value(json_object_get(v, "port")), 27017);
    assert_true(json_is_null(cpar_config_get(cfg, "Session", "key")));
    assert_null(cpar_config_get(cfg, "version", ""));
    assert_int_equal(cfgt_nkeys(cfg), 9);
    assert_int_equal(cpar_config_source(cfg, "IPController", "ip"), CPAR_SRC_JSON);
    snprintf(want, sizeof want, "%s:4", path);
    assert_string_equal(cpar_config_origin(cfg, "IPController", "ip"), want);
    snprintf(want, sizeof want, "%s:8", path);
    assert_string_equal(cpar_config_origin(cfg, "HeartMonitor", "period"), want);
    snprintf(want, sizeof want, "%s:11", path);
    assert_string_equal(cpar_config_origin(cfg, "SQLiteDB", "table"), want);
    free(path);
    cpar_config_free(cfg);
}

static void test_bad(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *what;
    } cases[] = {
        {"{\n  \"A\": {\"b\": 1,}\n}\n", 2, "string or '}' expected near '}'"},
        {"{\n\n  \"A\": {\"b\": 1}\n", 4, "'}' expected near end of file"},
        {"", 1, "unexpected token near end of file"},
        {"{\"A\": {\"b\": 1}} trailing", 1, "end of file expected near 'trailing'"},
        {"[1, 2]\n", 1, "expected an object of sections {\"Section\": {\"trait\": value}}"},
        {"\"text\"\n", 1, "expected an object of sections {\"Section\": {\"trait\": value}}"},
        {"{\n  \"A\": {\"b\": 1},\n  \"IPController\": \"oops\"\n}\n", 3,
         "section \"IPController\" must be an object of traits"},
        {"{\"version\": 2,\n \"A\": {}}\n", 1, "unsupported config file version (only 1)"},
        {"{\n\"A.B\": {\"c\": 1}}\n", 2, "bad section name \"A.B\""},
        {"{\n\"A\": {\"\": 1}}\n", 2, "empty trait name in section \"A\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cpar_config_t *cfg = cpar_config_new();
        char *path = cfgt_write(tmp, "ipcontroller_config.json", cases[i].text);
        char err[512] = "", want[700];
        int rc = cpar_config_load_json(cfg, path, err, sizeof err);

        snprintf(want, sizeof want, "%s:%d: %s", path, cases[i].line, cases[i].what);
        if (rc != CPAR_ECONFIG || strcmp(err, want) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, want);
        /* a bad file sets nothing */
        assert_int_equal(cfgt_nkeys(cfg), 0);
        free(path);
        cpar_config_free(cfg);
    }
}

static void test_missing_and_unreadable(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path = cfgt_join(tmp, "missing.json"), err[512] = "", want[600];

    (void)state;
    assert_int_equal(cpar_config_load_json(cfg, path, err, sizeof err), 0);
    assert_int_equal(cpar_config_load_json(cfg, tmp, err, sizeof err), CPAR_ECONFIG);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", tmp);
    assert_string_equal(err, want);
    free(path);
    cpar_config_free(cfg);
}

/* The json file beats the py file and loses to the environment and the command line. */
static void test_json_vs_others(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *jpath = cfgt_write(tmp, "x_config.json", "{\"S\": {\"a\": \"json\", \"b\": \"json\"}}");
    char *ppath = cfgt_write(tmp, "x_config.py", "c.S.a = 'py'\nc.S.b = 'py'\nc.S.c = 'py'\n");
    char err[512];

    (void)state;
    assert_int_equal(cpar_config_set(cfg, "S", "b", json_string("cli"), CPAR_SRC_CLI, "--S.b"), 0);
    assert_int_equal(cpar_config_load_json(cfg, jpath, err, sizeof err), 0);
    assert_int_equal(cpar_config_load_py(cfg, ppath, err, sizeof err), 0);
    assert_string_equal(cfgt_str(cfg, "S", "a"), "json");
    assert_string_equal(cfgt_str(cfg, "S", "b"), "cli");
    assert_string_equal(cfgt_str(cfg, "S", "c"), "py");
    free(jpath);
    free(ppath);
    cpar_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_missing_and_unreadable),
        cmocka_unit_test(test_json_vs_others),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
