/*
 * test_text.c - the host's text services: batch-template rendering as ipyparallel's
 * EvalFormatter does it, shlex.join, and Python-style regex search (with the job-id table of the
 * batch systems). Expected values were produced with Python 3.11 and IPython's EvalFormatter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cparallel/errors.h>

#include "plugins/text.h"

static const cpar_tvar_t vars[] = {
    {.name = "n", .integer = 13},
    {.name = "queue", .text = "work"},
    {.name = "empty", .text = ""},
    {.name = "program", .text = "/usr/bin/python3 -m ipyparallel.engine"},
};
#define NVARS (sizeof vars / sizeof vars[0])

static char *render_ok(const char *tmpl)
{
    char why[256] = "", *out = NULL;
    int rc = cpar_text_render(tmpl, vars, NVARS, &out, why, sizeof why);

    if (rc != 0)
        fail_msg("render \"%s\": %d %s", tmpl, rc, why);
    return out;
}

#define RENDERS(tmpl, expect)                                                                      \
    do {                                                                                           \
        char *o_ = render_ok(tmpl);                                                                \
        assert_string_equal(o_, expect);                                                           \
        free(o_);                                                                                  \
    } while (0)

static void test_render_fields(void **state)
{
    (void)state;
    RENDERS("plain text, no fields\n% $HOME", "plain text, no fields\n% $HOME");
    RENDERS("{n:04d}|{queue:>8}|{queue:*^9}|{n*2}|{n//4}|{(n+1)%3}|{queue or \"batch\"}|"
            "{empty or \"batch\"}|{{x}}|{n:+d}|{n:x}|{-n:05d}|{queue:.2}|{queue!r}|{n:,}",
            "0013|    work|**work***|26|3|2|work|batch|{x}|+13|d|-0013|wo|'work'|13");
    RENDERS("#!/bin/sh\n#SBATCH --ntasks={n}\n{program} --x", "#!/bin/sh\n#SBATCH --ntasks=13\n"
                                                              "/usr/bin/python3 -m "
                                                              "ipyparallel.engine --x");
    RENDERS("{queue or 'batch'} {empty or 'batch'} {n - 20} {-7 // 2} {-7 % 3}",
            "work batch -7 -4 2");
    RENDERS("{n:>5}|{n:<5}|{n:^6}|{queue:8}|", "   13|13   |  13  |work    |");
    RENDERS("{ n }", "13");
}

static void expect_render_error(const char *tmpl, const char *needle)
{
    char why[256] = "", *out = NULL;

    assert_int_equal(cpar_text_render(tmpl, vars, NVARS, &out, why, sizeof why), CPAR_EINVAL);
    assert_null(out);
    if (!strstr(why, needle))
        fail_msg("error for \"%s\" is \"%s\", expected it to contain \"%s\"", tmpl, why, needle);
    assert_null(strchr(why, '\n'));
}

static void test_render_errors(void **state)
{
    (void)state;
    expect_render_error("#SBATCH --time={wall_time}\n", "unknown template variable 'wall_time'");
    expect_render_error("{n", "unclosed '{'");
    expect_render_error("a } b", "single '}'");
    expect_render_error("{}", "empty field");
    expect_render_error("{n:q}", "unknown format code 'q'");
    expect_render_error("{queue * 2}", "needs integers");
    expect_render_error("{n // 0}", "division by zero");
}

static void test_render_overrides(void **state)
{
    /* Later variables win: the batch driver puts the namespace last. */
    const cpar_tvar_t v[] = {{.name = "queue", .text = "a"}, {.name = "queue", .text = "b"}};
    char *out = NULL;

    (void)state;
    assert_int_equal(cpar_text_render("{queue}", v, 2, &out, NULL, 0), 0);
    assert_string_equal(out, "b");
    free(out);
}

static void test_shell_join(void **state)
{
    const char *argv[] = {"a b", "", "it's", "x=1,2:3@%+./_-", "$HOME", "t\tab", NULL};
    const char *none[] = {NULL};
    char *out = NULL;

    (void)state;
    assert_int_equal(cpar_text_shell_join(argv, &out), 0);
    assert_string_equal(out, "'a b' '' 'it'\"'\"'s' x=1,2:3@%+./_- '$HOME' 't\tab'");
    free(out);
    assert_int_equal(cpar_text_shell_join(none, &out), 0);
    assert_string_equal(out, "");
    free(out);
}

static void search_is(const char *re, const char *text, int group, const char *expect)
{
    char why[256] = "", *m = NULL;
    int rc = cpar_text_regex_search(re, text, group, &m, why, sizeof why);

    if (rc != 0)
        fail_msg("re.search(%s, %s): %d %s", re, text, rc, why);
    assert_string_equal(m, expect);
    free(m);
}

/* Spec §13: what each batch system prints when a job is submitted, and the id it gives. */
static void test_job_id_table(void **state)
{
    (void)state;
    search_is("\\d+", "Submitted batch job 2\n", 0, "2");
    search_is("\\d+", "2;cluster\n", 0, "2");
    search_is("\\d+", "Your job-array 6.1-2:1 (\"ipengine\") has been submitted\n", 0, "6");
    search_is("\\d+", "Your job 7 (\"x\") has been submitted\n", 0, "7");
    search_is("\\d+", "12345.pbs-server\n", 0, "12345");
    search_is("\\d+", "12345[].pbs-server\n", 0, "12345");
    search_is("\\d+", "12\n", 0, "12");
    search_is("\\d+", "Job <12345> is submitted to default queue <normal>.\n", 0, "12345");
    search_is("(\\d+)\\.$", "Submitting job(s).\n1 job(s) submitted to cluster 6923.\n", 1, "6923");
    search_is("\\d+", "Job has been submitted. ID: 123.\n", 0, "123");
}

static void test_regex_syntax(void **state)
{
    char *m = NULL;

    (void)state;
    search_is("[\\d]+", "ab 42 cd", 0, "42");
    search_is("\\w+", "  job_1-x", 0, "job_1");
    search_is("\\s(\\S+)\\s", "a bcd e", 1, "bcd");
    search_is("(?:x)(\\d)", "x1", 1, "1");
    search_is("\\D+", "12ab3", 0, "ab");
    search_is("a.c", "abc", 0, "abc");
    search_is("#SBATCH\\W+(?:--ntasks|-n)[\\w\\d\\-\\$]+", "#!/bin/sh\n#SBATCH --ntasks={n}\n", 0,
              "#SBATCH --ntasks");
    search_is("[\\]x\\-]+", "a]-x-b", 0, "]-x-");
    search_is("^x$", "x\n", 0, "x");
    /* Python's . does not match a newline; $ only before a *final* newline. */
    assert_int_equal(cpar_text_regex_search("a.c", "a\nc", 0, &m, NULL, 0), CPAR_ENOENT);
    assert_int_equal(cpar_text_regex_search("x$", "x\n\n", 0, &m, NULL, 0), CPAR_ENOENT);
    assert_int_equal(cpar_text_regex_search("\\d+", "none", 0, &m, NULL, 0), CPAR_ENOENT);
    assert_int_equal(cpar_text_regex_search("(", "x", 0, &m, NULL, 0), CPAR_EINVAL);
    assert_int_equal(cpar_text_regex_search("\\d", "1", 1, &m, NULL, 0), CPAR_EINVAL);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_fields),    cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_render_overrides), cmocka_unit_test(test_shell_join),
        cmocka_unit_test(test_job_id_table),     cmocka_unit_test(test_regex_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
