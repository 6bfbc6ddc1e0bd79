/*
 * test_config_profile.c - the environment, profile directories, the profile's config files, and
 * precedence across every source whatever the load order.
 */
#include "cfgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cparallel/errors.h>

#include "controller/options.h"

static char *tmp;

static int setup(void **state)
{
    (void)state;
    tmp = cfgt_mkdtemp();
    umask(022);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfgt_rmtree(tmp);
    free(tmp);
    return 0;
}

static void test_env(void **state)
{
    char *env[] = {"PATH=/bin",
                   "IPYTHONDIR=/ip/dir",
                   "IPP_PROFILE_DIR=/prof/dir",
                   "IPP_CLUSTER_ID=abc-123",
                   "IPP_SESSION_KEYS=not-this",
                   "XIPP_SESSION_KEY=nor-this",
                   "IPP_SESSION_KEY=s3cret",
                   "NOEQUALS",
                   NULL};
    char *env2[] = {"IPYTHONDIR=", "IPP_PROFILE_DIR=", "IPP_CLUSTER_ID=", "IPP_SESSION_KEY=", NULL};
    cpar_config_t *cfg = cpar_config_new();

    (void)state;
    assert_int_equal(cpar_config_load_env(cfg, env), 0);
    assert_string_equal(cfgt_str(cfg, "BaseIPythonApplication", "ipython_dir"), "/ip/dir");
    assert_string_equal(cfgt_str(cfg, "ProfileDir", "location"), "/prof/dir");
    assert_string_equal(cfgt_str(cfg, "BaseParallelApplication", "cluster_id"), "abc-123");
    assert_string_equal(cfgt_str(cfg, "Session", "key"), "s3cret");
    assert_string_equal(cpar_config_origin(cfg, "Session", "key"), "IPP_SESSION_KEY");
    assert_string_equal(cpar_config_origin(cfg, "ProfileDir", "location"), "IPP_PROFILE_DIR");
    assert_int_equal(cpar_config_source(cfg, "Session", "key"), CPAR_SRC_ENV);
    assert_int_equal(cfgt_nkeys(cfg), 4);
    cpar_config_free(cfg);

    /* empty paths mean unset; an empty id or key is a value (no id, unsigned messages) */
    cfg = cpar_config_new();
    assert_int_equal(cpar_config_load_env(cfg, env2), 0);
    assert_null(cpar_config_get(cfg, "BaseIPythonApplication", "ipython_dir"));
    assert_null(cpar_config_get(cfg, "ProfileDir", "location"));
    assert_string_equal(cfgt_str(cfg, "BaseParallelApplication", "cluster_id"), "");
    assert_string_equal(cfgt_str(cfg, "Session", "key"), "");
    assert_int_equal(cpar_config_load_env(cfg, NULL), 0);
    cpar_config_free(cfg);
}

/* Every order of loading the four sources gives the same result. */
static void test_precedence_all_orders(void **state)
{
    char *py = cfgt_write(tmp, "ipcontroller_config.py",
                          "c.Session.key = 'py'\n"
                          "c.IPController.ip = 'py'\n"
                          "c.IPController.location = 'py'\n"
                          "c.HeartMonitor.period = 100\n");
    char *js = cfgt_write(tmp, "ipcontroller_config.json",
                          "{\"Session\": {\"key\": \"json\"},\n"
                          " \"IPController\": {\"ip\": \"json\", \"location\": \"json\"}}\n");
    char *env[] = {"IPP_SESSION_KEY=env", "IPP_CLUSTER_ID=env", NULL};
    char *argv[] = {"cpcontroller", "--Session.key=cli", "--cluster-id", "cli", NULL};
    int perm[4], count = 0;

    (void)state;
    /* every order of {cli, env, json, py}: the 4-digit base-4 codes with distinct digits */
    for (int code = 0; code < 256; code++) {
        cpar_config_t *cfg;
        cpar_cli_result_t res;
        char err[512];
        int64_t period = 0;
        int seen = 0;

        for (int s = 0; s < 4; s++) {
            perm[s] = (code >> (2 * s)) & 3;
            seen |= 1 << perm[s];
        }
        if (seen != 15)
            continue;
        cfg = cpar_config_new();
        for (int s = 0; s < 4; s++) {
            switch (perm[s]) {
            case 0:
                assert_int_equal(
                    cpar_cli_parse(cfg, cpar_controller_options, 4, argv, &res, err, sizeof err),
                    0);
                break;
            case 1:
                assert_int_equal(cpar_config_load_env(cfg, env), 0);
                break;
            case 2:
                assert_int_equal(cpar_config_load_json(cfg, js, err, sizeof err), 0);
                break;
            default:
                assert_int_equal(cpar_config_load_py(cfg, py, err, sizeof err), 0);
                break;
            }
        }
        assert_string_equal(cfgt_str(cfg, "Session", "key"), "cli");
        assert_int_equal(cpar_config_source(cfg, "Session", "key"), CPAR_SRC_CLI);
        assert_string_equal(cfgt_str(cfg, "BaseParallelApplication", "cluster_id"), "cli");
        assert_string_equal(cfgt_str(cfg, "IPController", "ip"), "json");
        assert_string_equal(cfgt_str(cfg, "IPController", "location"), "json");
        assert_int_equal(cpar_config_source(cfg, "IPController", "ip"), CPAR_SRC_JSON);
        assert_int_equal(cpar_config_int(cfg, "HeartMonitor", "period", &period), 0);
        assert_int_equal(period, 100);
        assert_int_equal(cfgt_nkeys(cfg), 5);
        cpar_config_free(cfg);
        count++;
    }
    assert_int_equal(count, 24);

    /* without the command line, the environment wins */
    {
        cpar_config_t *cfg = cpar_config_new();
        char err[512];

        assert_int_equal(cpar_config_load_py(cfg, py, err, sizeof err), 0);
        assert_int_equal(cpar_config_load_env(cfg, env), 0);
        assert_int_equal(cpar_config_load_json(cfg, js, err, sizeof err), 0);
        assert_string_equal(cfgt_str(cfg, "Session", "key"), "env");
        cpar_config_free(cfg);
    }
    free(py);
    free(js);
}

static void check_dir(const cpar_config_t *cfg, const char *want)
{
    char *dir = cpar_profile_dir(cfg);

    assert_non_null(dir);
    assert_string_equal(dir, want);
    free(dir);
}

static void test_profile_dir(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *cwd, want[4096], *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *env[] = {"IPYTHONDIR=/from/env", NULL};

    (void)state;
    assert_int_equal(setenv("HOME", "/home/u/", 1), 0);
    check_dir(cfg, "/home/u/.ipython/profile_default");

    assert_int_equal(cpar_config_load_env(cfg, env), 0);
    check_dir(cfg, "/from/env/profile_default");
    assert_int_equal(cpar_config_set(cfg, "BaseIPythonApplication", "profile",
                                     json_string("iptest"), CPAR_SRC_CLI, "--profile"),
                     0);
    check_dir(cfg, "/from/env/profile_iptest");
    assert_int_equal(cpar_config_set(cfg, "BaseIPythonApplication", "ipython_dir",
                                     json_string("~/ipd/"), CPAR_SRC_CLI, "--ipython-dir"),
                     0);
    check_dir(cfg, "/home/u/ipd/profile_iptest");

    /* relative: against the current directory, folded; need not exist */
    assert_int_equal(chdir(tmp), 0);
    cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    assert_int_equal(cpar_config_set(cfg, "BaseIPythonApplication", "ipython_dir",
                                     json_string("rel/./ipd//x/.."), CPAR_SRC_CLI, "--ipython-dir"),
                     0);
    snprintf(want, sizeof want, "%s/rel/ipd/profile_iptest", cwd);
    check_dir(cfg, want);

    /* ProfileDir.location wins over the rest */
    assert_int_equal(cpar_config_set(cfg, "ProfileDir", "location", json_string("p/../q/./r/"),
                                     CPAR_SRC_ENV, "IPP_PROFILE_DIR"),
                     0);
    snprintf(want, sizeof want, "%s/q/r", cwd);
    check_dir(cfg, want);
    assert_int_equal(cpar_config_set(cfg, "ProfileDir", "location", json_string("/a/b/../../.."),
                                     CPAR_SRC_CLI, "--profile-dir"),
                     0);
    check_dir(cfg, "/");
    assert_int_equal(cpar_config_set(cfg, "ProfileDir", "location", json_string("~"), CPAR_SRC_CLI,
                                     "--profile-dir"),
                     0);
    check_dir(cfg, "/home/u");
    /* an empty location is unset */
    assert_int_equal(cpar_config_set(cfg, "ProfileDir", "location", json_string(""), CPAR_SRC_CLI,
                                     "--profile-dir"),
                     0);
    snprintf(want, sizeof want, "%s/rel/ipd/profile_iptest", cwd);
    check_dir(cfg, want);
    assert_int_equal(chdir("/"), 0);
    free(cwd);
    if (old)
        setenv("HOME", old, 1);
    else
        unsetenv("HOME");
    free(old);
    cpar_config_free(cfg);
}

static mode_t mode_of(const char *dir, const char *sub)
{
    char *path = cfgt_join(dir, sub);
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(path);
    return st.st_mode & 07777;
}

static void test_profile_create(void **state)
{
    char *dir = cfgt_join(tmp, "a/b/profile_x"), *sec = cfgt_join(dir, "security");
    char *file = cfgt_write(tmp, "plainfile", "x"), *under = cfgt_join(file, "profile");
    char err[512] = "", want[700];

    (void)state;
    assert_int_equal(cpar_profile_create(dir, err, sizeof err), 0);
    assert_int_equal(mode_of(dir, "."), 0755);
    assert_int_equal(mode_of(dir, "security"), 0700);
    assert_int_equal(mode_of(dir, "pid"), 0700);
    assert_int_equal(mode_of(dir, "log"), 0755);
    assert_int_equal(mode_of(dir, "startup"), 0755);

    /* again: fine, and a private directory with another mode is fixed */
    assert_int_equal(chmod(sec, 0755), 0);
    assert_int_equal(cpar_profile_create(dir, err, sizeof err), 0);
    assert_int_equal(mode_of(dir, "security"), 0700);

    assert_int_equal(cpar_profile_create(under, err, sizeof err), CPAR_EIO);
    snprintf(want, sizeof want, "cannot create directory %s: Not a directory", file);
    assert_string_equal(err, want);
    assert_int_equal(cpar_profile_create("", err, sizeof err), CPAR_EINVAL);
    free(dir);
    free(sec);
    free(file);
    free(under);
}

static void test_load_profile(void **state)
{
    char *dir = cfgt_join(tmp, "profile_load"), err[512] = "", want[700];
    cpar_config_t *cfg = cpar_config_new();
    char *py, *js;

    (void)state;
    assert_int_equal(cpar_profile_create(dir, err, sizeof err), 0);
    /* nothing there: fine */
    assert_int_equal(cpar_config_load_profile(cfg, dir, "ipcontroller", err, sizeof err), 0);
    assert_int_equal(cfgt_nkeys(cfg), 0);

    py = cfgt_write(dir, "ipcontroller_config.py",
                    "c = get_config()\nc.HeartMonitor.period = 200\nc.TaskScheduler.hwm = 5\n"
                    "c.IPController.bogus = 1\n");
    js = cfgt_write(dir, "ipcontroller_config.json", "{\"TaskScheduler\": {\"hwm\": 9}}");
    assert_int_equal(cpar_config_load_profile(cfg, dir, "ipcontroller", err, sizeof err), 0);
    assert_int_equal(json_integer_value(cpar_config_get(cfg, "HeartMonitor", "period")), 200);
    assert_int_equal(json_integer_value(cpar_config_get(cfg, "TaskScheduler", "hwm")), 9);
    {
        char *log;

        cfgt_stderr_begin();
        assert_int_equal(
            cpar_config_warn_unknown(cfg, cpar_controller_sections, cpar_controller_traits), 1);
        log = cfgt_stderr_end();
        snprintf(want, sizeof want, "IPController.bogus (from %s:4)", py);
        assert_int_equal(cfgt_count(log, want), 1);
        free(log);
    }
    cpar_config_free(cfg);
    free(py);
    free(js);

    /* an error in the .py is reported, and the .json is still read */
    cfg = cpar_config_new();
    py = cfgt_write(dir, "ipcontroller_config.py", "c.A.b = 1\nimport os\n");
    js = cfgt_write(dir, "ipcontroller_config.json", "{\"TaskScheduler\": {\"hwm\": 9}}");
    assert_int_equal(cpar_config_load_profile(cfg, dir, "ipcontroller", err, sizeof err),
                     CPAR_ECONFIG);
    snprintf(want, sizeof want, "%s:2: unsupported statement: import os", py);
    assert_string_equal(err, want);
    assert_int_equal(json_integer_value(cpar_config_get(cfg, "TaskScheduler", "hwm")), 9);
    cpar_config_free(cfg);
    free(js);

    /* a bad .json alone */
    cfg = cpar_config_new();
    assert_int_equal(unlink(py), 0);
    js = cfgt_write(dir, "ipcontroller_config.json", "{\"TaskScheduler\": 3}");
    assert_int_equal(cpar_config_load_profile(cfg, dir, "ipcontroller", err, sizeof err),
                     CPAR_ECONFIG);
    snprintf(want, sizeof want, "%s:1: section \"TaskScheduler\" must be an object of traits", js);
    assert_string_equal(err, want);
    cpar_config_free(cfg);
    free(py);
    free(js);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env),          cmocka_unit_test(test_precedence_all_orders),
        cmocka_unit_test(test_profile_dir),  cmocka_unit_test(test_profile_create),
        cmocka_unit_test(test_load_profile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
