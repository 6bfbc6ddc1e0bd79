/* test_config_cli.c - the command line against cpcontroller's option table. */
#include "cfgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

#include "controller/options.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    cpar_config_t *cfg;
    cpar_cli_result_t res;
    char err[256];
} parsed_t;

/* Parse argv (argv[0] included) into a fresh store; returns the parse's code. */
static int parse(parsed_t *p, int argc, char **argv)
{
    memset(p, 0, sizeof *p);
    p->cfg = cpar_config_new();
    assert_non_null(p->cfg);
    return cpar_cli_parse(p->cfg, cpar_controller_options, argc, argv, &p->res, p->err,
                          sizeof p->err);
}

static void assert_cli_int(const cpar_config_t *cfg, const char *section, const char *key,
                           int64_t want, const char *origin)
{
    json_t *v = cpar_config_get(cfg, section, key);

    assert_non_null(v);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
    assert_int_equal(cpar_config_source(cfg, section, key), CPAR_SRC_CLI);
    assert_string_equal(cpar_config_origin(cfg, section, key), origin);
}

static void assert_cli_str(const cpar_config_t *cfg, const char *section, const char *key,
                           const char *want, const char *origin)
{
    const char *s = cfgt_str(cfg, section, key);

    assert_non_null(s);
    assert_string_equal(s, want);
    assert_int_equal(cpar_config_source(cfg, section, key), CPAR_SRC_CLI);
    assert_string_equal(cpar_config_origin(cfg, section, key), origin);
}

/* tests/__init__.py setup() of the ipyparallel 7.1 test-suite */
static void test_testsuite_argv(void **state)
{
    char *argv[] = {"cpcontroller", "--profile=iptest", "--log-level=10", "--ping=250", "--dictdb"};
    parsed_t p;
    int64_t ping = 0;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_str(p.cfg, "BaseIPythonApplication", "profile", "iptest", "--profile");
    assert_cli_int(p.cfg, "Application", "log_level", 10, "--log-level");
    assert_cli_int(p.cfg, "HeartMonitor", "period", 250, "--ping");
    assert_cli_str(p.cfg, "IPController", "db_class", "DictDB", "--dictdb");
    assert_int_equal(cpar_config_int(p.cfg, "HeartMonitor", "period", &ping), 0);
    assert_int_equal(ping, 250);
    assert_int_equal(p.res.actions, 0);
    assert_int_equal(p.res.npositional, 0);
    assert_int_equal(cfgt_nkeys(p.cfg), 4);
    cpar_config_free(p.cfg);
}

/* ipp.Cluster's LocalControllerLauncher, with an empty cluster id */
static void test_cluster_argv_empty_id(void **state)
{
    char *argv[] = {"cpcontroller",   "--profile-dir",  "/abs/dir",  "--cluster-id", "",
                    "--log-level=10", "--ip=127.0.0.1", "--ping=250"};
    parsed_t p;
    const char *id = NULL;
    char *dir;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_str(p.cfg, "ProfileDir", "location", "/abs/dir", "--profile-dir");
    assert_cli_str(p.cfg, "BaseParallelApplication", "cluster_id", "", "--cluster-id");
    assert_int_equal(cpar_config_string(p.cfg, "BaseParallelApplication", "cluster_id", &id), 0);
    assert_string_equal(id, "");
    assert_cli_int(p.cfg, "Application", "log_level", 10, "--log-level");
    assert_cli_str(p.cfg, "IPController", "ip", "127.0.0.1", "--ip");
    assert_cli_int(p.cfg, "HeartMonitor", "period", 250, "--ping");
    assert_int_equal(p.res.npositional, 0);
    dir = cpar_profile_dir(p.cfg);
    assert_string_equal(dir, "/abs/dir");
    free(dir);
    cpar_config_free(p.cfg);
}

static void test_cluster_argv_id(void **state)
{
    char *argv[] = {"cpcontroller",    "--profile-dir",  "/abs",           "--cluster-id",
                    "1795694480-skxe", "--log-level=10", "--ip=127.0.0.1", "--ping=250"};
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_str(p.cfg, "ProfileDir", "location", "/abs", "--profile-dir");
    assert_cli_str(p.cfg, "BaseParallelApplication", "cluster_id", "1795694480-skxe",
                   "--cluster-id");
    assert_cli_int(p.cfg, "Application", "log_level", 10, "--log-level");
    assert_int_equal(cfgt_nkeys(p.cfg), 5);
    cpar_config_free(p.cfg);
}

static void test_value_forms(void **state)
{
    char *argv[] = {"cpcontroller",
                    "--cluster-id=",
                    "--hwm",
                    "0",
                    "--Session.key=abc",
                    "--x.y=True",
                    "--IPController.engine_ports=[1,2]",
                    "--A.quoted='quoted'",
                    "--A.real",
                    "2.5",
                    "--A.none=None",
                    "-A.onedash=5",
                    "--ports=10101-10120",
                    "--A.hex=0x10",
                    "--A.neg=-5",
                    "--A.neg2",
                    "-5",
                    "--A.tuple=1,2",
                    "--A.dict={'a': 1, 'b': [True, None]}",
                    "--A.arith=4*1024",
                    "--A.dq=\"x y\"",
                    "--A.words=hello world",
                    "--A.under=1_000",
                    "--A.eq=a=b",
                    "--A.bad='unterminated",
                    "--A.ver=7.1.0",
                    "--log-level=DEBUG",
                    "--scheme",
                    "lru"};
    parsed_t p;
    json_t *v;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_str(p.cfg, "BaseParallelApplication", "cluster_id", "", "--cluster-id");
    assert_cli_int(p.cfg, "TaskScheduler", "hwm", 0, "--hwm");
    assert_cli_str(p.cfg, "Session", "key", "abc", "--Session.key");
    assert_true(json_is_true(cpar_config_get(p.cfg, "x", "y")));
    assert_string_equal(cpar_config_origin(p.cfg, "x", "y"), "--x.y");
    v = cpar_config_get(p.cfg, "IPController", "engine_ports");
    assert_true(json_is_array(v) && json_array_size(v) == 2);
    assert_int_equal(json_integer_value(json_array_get(v, 1)), 2);
    assert_cli_str(p.cfg, "A", "quoted", "quoted", "--A.quoted");
    assert_true(json_real_value(cpar_config_get(p.cfg, "A", "real")) == 2.5);
    assert_true(json_is_null(cpar_config_get(p.cfg, "A", "none")));
    assert_cli_int(p.cfg, "A", "onedash", 5, "--A.onedash");
    /* not a literal for ast.literal_eval: a string, for the controller to read as a range */
    assert_cli_str(p.cfg, "IPController", "ports", "10101-10120", "--ports");
    assert_cli_int(p.cfg, "A", "hex", 16, "--A.hex");
    assert_cli_int(p.cfg, "A", "neg", -5, "--A.neg");
    assert_cli_int(p.cfg, "A", "neg2", -5, "--A.neg2");
    v = cpar_config_get(p.cfg, "A", "tuple");
    assert_true(json_is_array(v) && json_array_size(v) == 2);
    v = cpar_config_get(p.cfg, "A", "dict");
    assert_true(json_is_object(v));
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    assert_true(json_is_true(json_array_get(json_object_get(v, "b"), 0)));
    assert_cli_str(p.cfg, "A", "arith", "4*1024", "--A.arith");
    assert_cli_str(p.cfg, "A", "dq", "x y", "--A.dq");
    assert_cli_str(p.cfg, "A", "words", "hello world", "--A.words");
    assert_cli_int(p.cfg, "A", "under", 1000, "--A.under");
    assert_cli_str(p.cfg, "A", "eq", "a=b", "--A.eq");
    assert_cli_str(p.cfg, "A", "bad", "'unterminated", "--A.bad");
    assert_cli_str(p.cfg, "A", "ver", "7.1.0", "--A.ver");
    assert_cli_str(p.cfg, "Application", "log_level", "DEBUG", "--log-level");
    assert_cli_str(p.cfg, "TaskScheduler", "scheme_name", "lru", "--scheme");
    cpar_config_free(p.cfg);
}

static void test_tilde_expansion(void **state)
{
    char *argv[] = {"cpcontroller", "--profile-dir=~/prof", "--A.q='~/q'", "--ipython-dir", "~"};
    char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    parsed_t p;

    (void)state;
    assert_int_equal(setenv("HOME", "/home/someone", 1), 0);
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_str(p.cfg, "ProfileDir", "location", "/home/someone/prof", "--profile-dir");
    assert_cli_str(p.cfg, "A", "q", "~/q", "--A.q");
    assert_cli_str(p.cfg, "BaseIPythonApplication", "ipython_dir", "/home/someone",
                   "--ipython-dir");
    if (old)
        setenv("HOME", old, 1);
    else
        unsetenv("HOME");
    free(old);
    cpar_config_free(p.cfg);
}

static void test_flags(void **state)
{
    char *argv[] = {"cpcontroller", "--restore", "--usethreads",
                    "--debug",      "--secure",  "--log-to-file"};
    char *argv2[] = {"cpcontroller",        "--reuse",      "--nodb", "--quiet", "--no-secure",
                     "--log-to-file=False", "--clean-logs", "True"};
    char *argv3[] = {"cpcontroller", "--sqlitedb"};
    char *argv4[] = {"cpcontroller", "--mongodb", "--log-to-file", "--ip=1.2.3.4"};
    parsed_t p;
    const char *s;
    int b = -1;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_true(json_is_true(cpar_config_get(p.cfg, "IPController", "restore_engines")));
    assert_true(json_is_true(cpar_config_get(p.cfg, "IPController", "reuse_files")));
    assert_string_equal(cpar_config_origin(p.cfg, "IPController", "reuse_files"), "--restore");
    assert_true(json_is_true(cpar_config_get(p.cfg, "IPController", "use_threads")));
    assert_cli_int(p.cfg, "Application", "log_level", 10, "--debug");
    assert_int_equal(cpar_config_string(p.cfg, "Application", "log_level", &s), 0);
    assert_string_equal(s, "10");
    assert_true(json_is_true(cpar_config_get(p.cfg, "Session", "secure")));
    assert_cli_str(p.cfg, "Session", "keyfile", "", "--secure");
    assert_null(cpar_config_get(p.cfg, "Session", "key"));
    assert_true(json_is_true(cpar_config_get(p.cfg, "BaseParallelApplication", "log_to_file")));
    assert_string_equal(cpar_config_origin(p.cfg, "BaseParallelApplication", "log_to_file"),
                        "--log-to-file");
    cpar_config_free(p.cfg);

    assert_int_equal(parse(&p, ARGC(argv2), argv2), 0);
    assert_true(json_is_true(cpar_config_get(p.cfg, "IPController", "reuse_files")));
    assert_null(cpar_config_get(p.cfg, "IPController", "restore_engines"));
    assert_cli_str(p.cfg, "IPController", "db_class", "NoDB", "--nodb");
    assert_cli_int(p.cfg, "Application", "log_level", 50, "--quiet");
    assert_cli_str(p.cfg, "Session", "key", "", "--no-secure");
    assert_cli_str(p.cfg, "Session", "keyfile", "", "--no-secure");
    assert_true(json_is_false(cpar_config_get(p.cfg, "Session", "secure")));
    assert_int_equal(cpar_config_bool(p.cfg, "BaseParallelApplication", "log_to_file", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cpar_config_bool(p.cfg, "BaseParallelApplication", "clean_logs", &b), 0);
    assert_int_equal(b, 1);
    cpar_config_free(p.cfg);

    assert_int_equal(parse(&p, ARGC(argv3), argv3), 0);
    assert_cli_str(p.cfg, "IPController", "db_class", "SQLiteDB", "--sqlitedb");
    cpar_config_free(p.cfg);

    /* an optional value is not taken from a following option */
    assert_int_equal(parse(&p, ARGC(argv4), argv4), 0);
    assert_cli_str(p.cfg, "IPController", "db_class", "MongoDB", "--mongodb");
    assert_true(json_is_true(cpar_config_get(p.cfg, "BaseParallelApplication", "log_to_file")));
    assert_cli_str(p.cfg, "IPController", "ip", "1.2.3.4", "--ip");
    cpar_config_free(p.cfg);
}

static void test_actions(void **state)
{
    char *a1[] = {"cpcontroller", "--help"};
    char *a2[] = {"cpcontroller", "-h", "--version"};
    char *a3[] = {"cpcontroller", "--help-all", "-V", "--list-plugins"};
    char *a4[] = {"cpcontroller", "--list-plugins", "--ip=1.1.1.1"};
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, ARGC(a1), a1), 0);
    assert_int_equal(p.res.actions, CPAR_ACT_HELP);
    cpar_config_free(p.cfg);
    assert_int_equal(parse(&p, ARGC(a2), a2), 0);
    assert_int_equal(p.res.actions, CPAR_ACT_HELP | CPAR_ACT_VERSION);
    cpar_config_free(p.cfg);
    assert_int_equal(parse(&p, ARGC(a3), a3), 0);
    assert_int_equal(p.res.actions, CPAR_ACT_HELP_ALL | CPAR_ACT_VERSION | CPAR_ACT_LIST_PLUGINS);
    assert_int_equal(cfgt_nkeys(p.cfg), 0);
    cpar_config_free(p.cfg);
    assert_int_equal(parse(&p, ARGC(a4), a4), 0);
    assert_int_equal(p.res.actions, CPAR_ACT_LIST_PLUGINS);
    assert_cli_str(p.cfg, "IPController", "ip", "1.1.1.1", "--ip");
    cpar_config_free(p.cfg);
}

static void test_errors(void **state)
{
    static const struct {
        const char *args[3];
        const char *err;
    } cases[] = {
        {{"--foo"}, "unrecognized option '--foo'"},
        {{"--foo=bar"}, "unrecognized option '--foo=bar'"},
        {{"--ip=1.2.3.4", "--bogus-flag"}, "unrecognized option '--bogus-flag'"},
        {{"-x"}, "unrecognized option '-x'"},
        {{"---ip=1"}, "unrecognized option '---ip=1'"},
        {{"--A..b=1"}, "unrecognized option '--A..b=1'"},
        {{"--A.=1"}, "unrecognized option '--A.=1'"},
        {{"--1A.b=1"}, "unrecognized option '--1A.b=1'"},
        {{"--=x"}, "unrecognized option '--=x'"},
        {{"--profile"}, "option '--profile' needs a value"},
        {{"--cluster-id", "--log-level=10"}, "option '--cluster-id' needs a value"},
        {{"--IPController.ip"}, "option '--IPController.ip' needs a value"},
        {{"--dictdb=1"}, "option '--dictdb' takes no value ('--dictdb=1')"},
        {{"--help=yes"}, "option '--help' takes no value ('--help=yes')"},
        {{"--ip=\xff"}, "bad argument '--ip=\xff': not valid UTF-8"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[4] = {"cpcontroller"};
        int argc = 1;
        parsed_t p;

        for (int k = 0; k < 3 && cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        assert_int_equal(parse(&p, argc, argv), CPAR_EINVAL);
        assert_string_equal(p.err, cases[i].err);
        cpar_config_free(p.cfg);
    }
}

static void test_positional(void **state)
{
    char *argv[] = {"cpcontroller", "start", "--ip=1.2.3.4", "extra",           "--profile-dir",
                    "/p",           "-",     "--",           "--not-an-option", "x"};
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_int_equal(p.res.npositional, 5);
    assert_string_equal(p.res.positional[0], "start");
    assert_string_equal(p.res.positional[1], "extra");
    assert_string_equal(p.res.positional[2], "-");
    assert_string_equal(p.res.positional[3], "--not-an-option");
    assert_string_equal(p.res.positional[4], "x");
    assert_ptr_equal(p.res.positional, argv + ARGC(argv) - 5);
    /* the options stay in front, in their order */
    assert_string_equal(argv[1], "--ip=1.2.3.4");
    assert_string_equal(argv[2], "--profile-dir");
    assert_string_equal(argv[3], "/p");
    assert_string_equal(argv[4], "--");
    assert_null(cpar_config_get(p.cfg, "not-an-option", "x"));
    assert_cli_str(p.cfg, "ProfileDir", "location", "/p", "--profile-dir");
    cpar_config_free(p.cfg);
}

static void test_last_wins(void **state)
{
    char *argv[] = {"cpcontroller", "--ping=100", "--ping", "200", "--HeartMonitor.period=300"};
    char *argv2[] = {"cpcontroller", "--HeartMonitor.period=300", "--ping=250"};
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_cli_int(p.cfg, "HeartMonitor", "period", 300, "--HeartMonitor.period");
    cpar_config_free(p.cfg);
    assert_int_equal(parse(&p, ARGC(argv2), argv2), 0);
    assert_cli_int(p.cfg, "HeartMonitor", "period", 250, "--ping");
    cpar_config_free(p.cfg);
}

static void test_typed_reads_of_cli_values(void **state)
{
    char *argv[] = {"cpcontroller", "--profile=123", "--cluster-id=1e3", "--A.s='250'",
                    "--A.b=true",   "--A.i=2",       "--A.word=abc",     "--A.f='2.5'"};
    parsed_t p;
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    int b = 0;
    char *dir, *log;

    (void)state;
    assert_int_equal(parse(&p, ARGC(argv), argv), 0);
    assert_true(json_is_integer(cpar_config_get(p.cfg, "BaseIPythonApplication", "profile")));
    assert_int_equal(cpar_config_string(p.cfg, "BaseIPythonApplication", "profile", &s), 0);
    assert_string_equal(s, "123");
    assert_true(json_is_real(cpar_config_get(p.cfg, "BaseParallelApplication", "cluster_id")));
    assert_int_equal(cpar_config_string(p.cfg, "BaseParallelApplication", "cluster_id", &s), 0);
    assert_string_equal(s, "1e3");
    assert_int_equal(cpar_config_int(p.cfg, "A", "s", &i), 0);
    assert_int_equal(i, 250);
    assert_int_equal(cpar_config_bool(p.cfg, "A", "b", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cpar_config_double(p.cfg, "A", "i", &d), 0);
    assert_true(d == 2.0);
    assert_int_equal(cpar_config_double(p.cfg, "A", "f", &d), 0);
    assert_true(d == 2.5);
    cfgt_stderr_begin();
    assert_int_equal(cpar_config_int(p.cfg, "A", "word", &i), CPAR_EINVAL);
    log = cfgt_stderr_end();
    assert_int_equal(cfgt_count(log, "A.word = \"abc\" (from --A.word) is not an integer"), 1);
    free(log);
    assert_int_equal(setenv("HOME", "/h", 1), 0);
    dir = cpar_profile_dir(p.cfg);
    assert_string_equal(dir, "/h/.ipython/profile_123");
    free(dir);
    cpar_config_free(p.cfg);
}

static void test_cli_value(void **state)
{
    static const struct {
        const char *text;
        const char *json;
    } cases[] = {
        {"250", "250"},
        {"-2.5", "-2.5"},
        {"1e3", "1000.0"},
        {"True", "true"},
        {"False", "false"},
        {"None", "null"},
        {"[1, 'a', (2, 3)]", "[1, \"a\", [2, 3]]"},
        {"{'k': {1, 2}}", "{\"k\": [1, 2]}"},
        {"'a' 'b'", "\"ab\""},
        {"b'bytes'", "\"bytes\""},
        {"", "\"\""},
        {"   ", "\"   \""},
        {"true", "\"true\""},
        {"1+2", "\"1+2\""},
        {"2**8", "\"2**8\""},
        {"abc.def", "\"abc.def\""},
        {"127.0.0.1", "\"127.0.0.1\""},
        {"tcp://*:5555", "\"tcp://*:5555\""},
        {"# not a comment", "\"# not a comment\""},
        {"1\n2", "\"1\\n2\""},
        {"0777", "\"0777\""},
        {"1j", "\"1j\""},
        {"[1, foo]", "\"[1, foo]\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = cpar_cli_value(cases[i].text);
        json_t *want = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);

        assert_non_null(v);
        assert_non_null(want);
        if (!json_equal(v, want)) {
            char *got = json_dumps(v, JSON_ENCODE_ANY);

            fail_msg("cpar_cli_value(\"%s\") = %s, want %s", cases[i].text, got, cases[i].json);
        }
        json_decref(v);
        json_decref(want);
    }
    assert_null(cpar_cli_value("\xc3"));
    assert_null(cpar_cli_value(NULL));
}

static void test_help(void **state)
{
    FILE *f = tmpfile();
    char buf[16384];
    size_t n;

    (void)state;
    assert_non_null(f);
    cpar_cli_help(cpar_controller_options, "usage: cpcontroller [options]", f);
    rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_true(strncmp(buf, "usage: cpcontroller [options]\n\nOptions:\n", 40) == 0);
    assert_non_null(strstr(buf, "  --profile-dir=<ProfileDir.location>\n"));
    assert_non_null(strstr(buf, "      Equivalent to: [--HeartMonitor.period]\n"));
    assert_non_null(strstr(buf, "  --dictdb\n"));
    assert_non_null(strstr(buf, "      Equivalent to: [--IPController.db_class=\"DictDB\"]\n"));
    assert_non_null(strstr(buf, "  --log-to-file[=<BaseParallelApplication.log_to_file>]\n"));
    assert_non_null(strstr(buf, "  -h\n"));
    assert_non_null(strstr(buf, "  --list-plugins\n"));
    assert_non_null(strstr(buf, "  --<Class>.<trait>=<value>\n"));
}

/* Every option of protocol §13.3 and ipcontroller's table maps to the trait ipyparallel uses. */
static void test_option_table(void **state)
{
    static const struct {
        const char *name;
        cpar_opt_kind_t kind;
        const char *trait;
    } want[] = {
        {"profile", CPAR_OPT_ALIAS, "BaseIPythonApplication.profile"},
        {"profile-dir", CPAR_OPT_ALIAS, "ProfileDir.location"},
        {"ipython-dir", CPAR_OPT_ALIAS, "BaseIPythonApplication.ipython_dir"},
        {"cluster-id", CPAR_OPT_ALIAS, "BaseParallelApplication.cluster_id"},
        {"log-level", CPAR_OPT_ALIAS, "Application.log_level"},
        {"config", CPAR_OPT_ALIAS, "BaseIPythonApplication.extra_config_file"},
        {"work-dir", CPAR_OPT_ALIAS, "BaseParallelApplication.work_dir"},
        {"log-to-file", CPAR_OPT_ALIAS, "BaseParallelApplication.log_to_file"},
        {"clean-logs", CPAR_OPT_ALIAS, "BaseParallelApplication.clean_logs"},
        {"log-url", CPAR_OPT_ALIAS, "BaseParallelApplication.log_url"},
        {"ping", CPAR_OPT_ALIAS, "HeartMonitor.period"},
        {"ip", CPAR_OPT_ALIAS, "IPController.ip"},
        {"location", CPAR_OPT_ALIAS, "IPController.location"},
        {"transport", CPAR_OPT_ALIAS, "IPController.transport"},
        {"ports", CPAR_OPT_ALIAS, "IPController.ports"},
        {"port", CPAR_OPT_ALIAS, "IPController.regport"},
        {"ssh", CPAR_OPT_ALIAS, "IPController.ssh_server"},
        {"enginessh", CPAR_OPT_ALIAS, "IPController.engine_ssh_server"},
        {"scheme", CPAR_OPT_ALIAS, "TaskScheduler.scheme_name"},
        {"hwm", CPAR_OPT_ALIAS, "TaskScheduler.hwm"},
        {"ident", CPAR_OPT_ALIAS, "Session.session"},
        {"user", CPAR_OPT_ALIAS, "Session.username"},
        {"keyfile", CPAR_OPT_ALIAS, "Session.keyfile"},
        {"dictdb", CPAR_OPT_FLAG, "IPController.db_class"},
        {"nodb", CPAR_OPT_FLAG, "IPController.db_class"},
        {"sqlitedb", CPAR_OPT_FLAG, "IPController.db_class"},
        {"mongodb", CPAR_OPT_FLAG, "IPController.db_class"},
        {"reuse", CPAR_OPT_FLAG, "IPController.reuse_files"},
        {"usethreads", CPAR_OPT_FLAG, "IPController.use_threads"},
        {"debug", CPAR_OPT_FLAG, "Application.log_level"},
        {"quiet", CPAR_OPT_FLAG, "Application.log_level"},
        {"restore", CPAR_OPT_FLAG, NULL},
        {"secure", CPAR_OPT_FLAG, NULL},
        {"no-secure", CPAR_OPT_FLAG, NULL},
        {"help", CPAR_OPT_ACTION, NULL},
        {"help-all", CPAR_OPT_ACTION, NULL},
        {"version", CPAR_OPT_ACTION, NULL},
        {"list-plugins", CPAR_OPT_ACTION, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cpar_option_t *o = NULL;

        for (size_t k = 0; cpar_controller_options[k].name; k++)
            if (!strcmp(cpar_controller_options[k].name, want[i].name))
                o = &cpar_controller_options[k];
        if (!o)
            fail_msg("no option --%s", want[i].name);
        assert_int_equal(o->kind, want[i].kind);
        if (want[i].trait)
            assert_string_equal(o->trait, want[i].trait);
        else
            assert_null(o->trait);
        if (o->kind == CPAR_OPT_FLAG) {
            json_t *v = json_loads(o->value, JSON_DECODE_ANY, NULL);

            assert_non_null(v);
            json_decref(v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_testsuite_argv),
        cmocka_unit_test(test_cluster_argv_empty_id),
        cmocka_unit_test(test_cluster_argv_id),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_tilde_expansion),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_positional),
        cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_typed_reads_of_cli_values),
        cmocka_unit_test(test_cli_value),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_option_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
