/* test_config_py.c - the reader of <prog>_config.py: good files, real profiles, exact errors. */
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
    tmp = NULL;
    return 0;
}

static char *data_path(const char *name)
{
    return cfgt_join(CPAR_CONFIG_TEST_DATA, name);
}

/* Load `content` written to a temporary file; returns the loader's code. */
static int load_text(cpar_config_t *cfg, const char *content, char **path, char *err, size_t errlen)
{
    *path = cfgt_write(tmp, "ipcontroller_config.py", content);
    err[0] = '\0';
    return cpar_config_load_py(cfg, *path, err, errlen);
}

static void test_good_literals(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path = data_path("good_literals.py"), *jpath = data_path("good_literals.expected.json");
    json_t *want = json_load_file(jpath, 0, NULL);
    const char *dotted;
    json_t *value;
    char err[512] = "";
    int n = 0;

    (void)state;
    assert_non_null(want);
    assert_int_equal(cpar_config_load_py(cfg, path, err, sizeof err), 0);
    assert_string_equal(err, "");
    json_object_foreach(want, dotted, value)
    {
        const char *dot = strchr(dotted, '.');
        char section[64];
        json_t *got;

        snprintf(section, sizeof section, "%.*s", (int)(dot - dotted), dotted);
        got = cpar_config_get(cfg, section, dot + 1);
        if (!got || !json_equal(got, value)) {
            char *a = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
            char *b = json_dumps(value, JSON_ENCODE_ANY);

            fail_msg("%s = %s, want %s", dotted, a ? a : "(unset)", b);
        }
        assert_int_equal(cpar_config_source(cfg, section, dot + 1), CPAR_SRC_PY);
        n++;
    }
    assert_int_equal(cfgt_nkeys(cfg), n);
    json_decref(want);
    free(jpath);
    free(path);
    cpar_config_free(cfg);
}

/* Origins name the file and the line the statement starts on. */
static void test_origins(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path, err[512], want[600];

    (void)state;
    assert_int_equal(load_text(cfg,
                               "c = get_config()\n"
                               "\n"
                               "c.A.one = 1\n"
                               "c.A.multi = {\n"
                               "    'k': [1,\n"
                               "          2],\n"
                               "}\n"
                               "c.A.cont = \\\n"
                               "    3\n"
                               "c.A.trip = '''x\n"
                               "y'''\n"
                               "c.A.after = 4\n",
                               &path, err, sizeof err),
                     0);
    snprintf(want, sizeof want, "%s:3", path);
    assert_string_equal(cpar_config_origin(cfg, "A", "one"), want);
    snprintf(want, sizeof want, "%s:4", path);
    assert_string_equal(cpar_config_origin(cfg, "A", "multi"), want);
    snprintf(want, sizeof want, "%s:8", path);
    assert_string_equal(cpar_config_origin(cfg, "A", "cont"), want);
    snprintf(want, sizeof want, "%s:10", path);
    assert_string_equal(cpar_config_origin(cfg, "A", "trip"), want);
    snprintf(want, sizeof want, "%s:12", path);
    assert_string_equal(cpar_config_origin(cfg, "A", "after"), want);
    free(path);
    cpar_config_free(cfg);
}

/* The profile `ipython profile create --parallel` writes: only comments and get_config(). */
static void test_generated_profile(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path = data_path("ipcontroller_config_generated.py");
    char err[512] = "";

    (void)state;
    assert_int_equal(cpar_config_load_py(cfg, path, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(cfgt_nkeys(cfg), 0);
    free(path);
    cpar_config_free(cfg);
}

/* The file the 7.1 test-suite writes (no final newline), and other small real forms. */
static void test_small_real_files(void **state)
{
    static const char *const texts[] = {
        "c.HeartMonitor.period = 200",
        "c = get_config()  #noqa\nc.HeartMonitor.period = 200\n",
        "from traitlets.config import get_config\nc = get_config()\n"
        "c.HeartMonitor.period = 200\n",
        "config = get_config()\nconfig.HeartMonitor.period = 200\n",
        "\xEF\xBB\xBF# -*- coding: utf-8 -*-\r\nc = get_config()\r\nc.HeartMonitor.period = "
        "200\r\n",
        "c.HeartMonitor.period = 100\n\n\n   \n# c.HeartMonitor.period = 5\nc.HeartMonitor.period "
        "= 200  # last wins\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cpar_config_t *cfg = cpar_config_new();
        char *path, err[512];
        int64_t v = 0;

        if (load_text(cfg, texts[i], &path, err, sizeof err) != 0)
            fail_msg("text %zu: %s", i, err);
        assert_int_equal(cpar_config_int(cfg, "HeartMonitor", "period", &v), 0);
        assert_int_equal(v, 200);
        assert_int_equal(cfgt_nkeys(cfg), 1);
        free(path);
        cpar_config_free(cfg);
    }
}

static void test_bad_files(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *what;
    } cases[] = {
        {"c = get_config()\n\nc.A.b = 1\n\n\n\nos.environ['X'] = 'y'\n", 7,
         "unsupported statement: os.environ['X'] = 'y'"},
        {"c = get_config()\n# x\nc.A.b = 'abc\n", 3, "unterminated string"},
        {"c.A.b = '''abc\n\nmore\n", 1, "unterminated string"},
        {"c.A.b = 1\n\n\n\n\n\n\n\nc.A.d = foo\n", 9, "expected a literal after '='"},
        {"c.A.b =\n", 1, "expected a literal after '='"},
        {"c.A.b = # nothing\n", 1, "expected a literal after '='"},
        {"c.A.b += os.sep\n", 1, "expected a literal after '+='"},
        {"c.A.b = c.A.d\n", 1, "expected a literal after '='"},
        {"c.A.b = 1\nc.A.x = [1,\n  2,\n  foo]\n", 2, "expected a literal, found 'foo'"},
        {"c.A.b = [1,\n 2\n\nc.A.d = 3\n", 1, "expected ',' or ']', found 'c'"},
        {"c.A.b = [1,\n 2,\n", 1, "unclosed '['"},
        {"c.A.b = {'a': 1\n", 1, "unclosed '{'"},
        {"c.A.b = (1, 2\n", 1, "unclosed '('"},
        {"c.A.b = 1 2\n", 1, "unexpected '2' after the value"},
        {"c.A.b = 'x'.upper()\n", 1, "unexpected '.' after the value"},
        {"c.A.b = 1)\n", 1, "unexpected ')' after the value"},
        {"c.A.b = 1\n  c.A.d = 2\n", 2, "unexpected indent"},
        {"import os\n", 1, "unsupported statement: import os"},
        {"from os import path\n", 1, "unsupported statement: from os import path"},
        {"from traitlets.config import get_config, Config\n", 1,
         "unsupported statement: from traitlets.config import get_config, Config"},
        {"load_subconfig('ipython_config.py')\n", 1,
         "unsupported statement: load_subconfig('ipython_config.py')"},
        {"c.A.b.c = 1\n", 1, "unsupported statement: c.A.b.c = 1"},
        {"c.A.b['k'] = 1\n", 1, "unsupported statement: c.A.b['k'] = 1"},
        {"x.A.b = 1\n", 1, "unsupported statement: x.A.b = 1"},
        {"c.A.b -= 1\n", 1, "unsupported statement: c.A.b -= 1"},
        {"if True:\n    c.A.b = 1\n", 1, "unsupported statement: if True:"},
        {"c.A.b.append(1)\n", 1, "unsupported statement: c.A.b.append(1)"},
        {"c.A.b = f'x{1}'\n", 1, "f-strings are not supported"},
        {"c.A.b = 1 / 0\n", 1, "division by zero"},
        {"c.A.b = 5 // 0\n", 1, "division by zero"},
        {"c.A.b = 2 ** 64\n", 1, "integer out of range in '**'"},
        {"c.A.b = 9223372036854775807 + 1\n", 1, "integer out of range in '+'"},
        {"c.A.b = 99999999999999999999\n", 1, "integer out of range: '99999999999999999999'"},
        {"c.A.b = 1e999\n", 1, "float out of range: '1e999'"},
        {"c.A.b = {1: 'x'}\n", 1, "dict keys must be strings"},
        {"c.A.b = 012\n", 1, "leading zeros in an integer are not allowed: '012'"},
        {"c.A.b = 1__0\n", 1, "invalid number '1__0'"},
        {"c.A.b = 12abc\n", 1, "invalid number '12abc'"},
        {"c.A.b = 0x\n", 1, "invalid number '0x'"},
        {"c.A.b = 1j\n", 1, "complex numbers are not supported"},
        {"c.A.b = 'a' + 1\n", 1, "unsupported operands for '+': str and int"},
        {"c.A.b = [1] * 2\n", 1, "unsupported operands for '*': list and int"},
        {"c.A.b = -'a'\n", 1, "unsupported operand for unary '-': str"},
        {"c.A.b += 5\n", 1, "'+=' on A.b, which is not set earlier in this file"},
        {"c.A.b = [1]\nc.A.b += 'x'\n", 2, "unsupported operands for '+=': list and str"},
        {"c.A.b = $\n", 1, "unexpected character '$'"},
        {"c.A.b = 1 \\ 2\n", 1, "unexpected character '\\'"},
        {"c.A.b = '\\N{DASH}'\n", 1, "unsupported escape \\N{...} in string"},
        {"c.A.b = '\\x4'\n", 1, "truncated \\x escape in string"},
        {"c.A.b = '\\ud800'\n", 1, "invalid \\u escape in string"},
        {"c.A.b = 'a\\0b'\n", 1, "NUL character in string"},
        {"c.A.b = b'\xc3\xa9'\n", 1, "non-ASCII byte in bytes literal"},
        {"c.A.b = '\xff'\n", 1, "invalid UTF-8 in string"},
        {"c.A.b = 1; x = 2\n", 1, "unsupported statement: x = 2"},
        {"print('hi')\n", 1, "unsupported statement: print('hi')"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cpar_config_t *cfg = cpar_config_new();
        char *path, err[512], want[700];
        int rc = load_text(cfg, cases[i].text, &path, err, sizeof err);

        snprintf(want, sizeof want, "%s:%d: %s", path, cases[i].line, cases[i].what);
        if (rc != CPAR_ECONFIG || strcmp(err, want) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, want);
        free(path);
        cpar_config_free(cfg);
    }
}

/* Statements before an error stay set; nothing after it is read. */
static void test_partial_load(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path, err[512];

    (void)state;
    assert_int_equal(
        load_text(cfg, "c.A.one = 1\nc.A.two = bad\nc.A.three = 3\n", &path, err, sizeof err),
        CPAR_ECONFIG);
    assert_non_null(cpar_config_get(cfg, "A", "one"));
    assert_null(cpar_config_get(cfg, "A", "three"));
    free(path);
    cpar_config_free(cfg);
}

/* += works on the file's own value, even where a higher source holds the key. */
static void test_augmented_under_cli(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path, err[512], *log;
    json_t *v;

    (void)state;
    assert_int_equal(cpar_config_set(cfg, "A", "l", json_string("cli"), CPAR_SRC_CLI, "--A.l"), 0);
    assert_int_equal(load_text(cfg, "c.A.l = [1]\nc.A.l += [2]\nc.A.m = [1]\nc.A.m += [2]\n", &path,
                               err, sizeof err),
                     0);
    assert_string_equal(cfgt_str(cfg, "A", "l"), "cli");
    v = cpar_config_get(cfg, "A", "m");
    assert_int_equal(json_array_size(v), 2);
    free(path);

    /* += of a list on a trait the file did not set: taken whole, with a warning */
    cfgt_stderr_begin();
    assert_int_equal(load_text(cfg, "c.B.args += ['--x']\n", &path, err, sizeof err), 0);
    log = cfgt_stderr_end();
    assert_int_equal(cfgt_count(log, ":1: B.args += [...] extends ipyparallel's default"), 1);
    free(log);
    v = cpar_config_get(cfg, "B", "args");
    assert_int_equal(json_array_size(v), 1);
    free(path);
    cpar_config_free(cfg);
}

static void test_missing_and_unreadable(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    char *path = cfgt_join(tmp, "nope_config.py"), err[512] = "", want[600];

    (void)state;
    assert_int_equal(cpar_config_load_py(cfg, path, err, sizeof err), 0);
    assert_int_equal(cfgt_nkeys(cfg), 0);
    /* a directory is not a file */
    assert_int_equal(cpar_config_load_py(cfg, tmp, err, sizeof err), CPAR_ECONFIG);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", tmp);
    assert_string_equal(err, want);
    free(path);
    cpar_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_literals),       cmocka_unit_test(test_origins),
        cmocka_unit_test(test_generated_profile),   cmocka_unit_test(test_small_real_files),
        cmocka_unit_test(test_bad_files),           cmocka_unit_test(test_partial_load),
        cmocka_unit_test(test_augmented_under_cli), cmocka_unit_test(test_missing_and_unreadable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
