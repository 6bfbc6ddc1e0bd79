/*
 * test_proc.c - the host's process services: spawn (session, output file, environment, cwd,
 * exec failure), child_status with and without a reactor, and run (stdin, stdout, stderr, exit
 * status, timeout, missing program).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cparallel/errors.h>
#include <cparallel/plugin.h>

#include "plugins/proc.h"

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (at most 5 s) until pid has ended; returns its exit code. */
static int wait_end(cpar_procs_t *p, int64_t pid)
{
    for (int i = 0; i < 500; i++) {
        int running = -1, code = 0;
        assert_int_equal(cpar_procs_status(p, pid, &running, &code, NULL, 0), 0);
        if (!running)
            return code;
        nap_ms(10);
    }
    fail_msg("process %lld did not end", (long long)pid);
    return 0;
}

static void spawn_cases(cpar_loop_t *loop)
{
    char dir[] = "/tmp/cpar-proc-XXXXXX", path[256], buf[256] = "";
    const char *sh[] = {
        "sh", "-c", "echo \"$CPAR_T_X $(pwd) $$ $(ps -o sid= -p $$ | tr -d ' ')\"; exit 3", NULL};
    const char *env[] = {"CPAR_T_X=hello", NULL};
    const char *missing[] = {"cpar-no-such-program", NULL};
    const char *sleeper[] = {"sleep", "30", NULL};
    cpar_procs_t *p;
    char why[256] = "";
    int64_t pid = 0;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/out.log", dir);
    assert_int_equal(cpar_procs_new(&p, loop), 0);
    assert_int_equal(cpar_procs_spawn(p, sh, env, dir, path, &pid, why, sizeof why), 0);
    assert_int_equal(wait_end(p, pid), 3);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    {
        char expect[512];
        /* its own session: the session id is its pid */
        snprintf(expect, sizeof expect, "hello %s %lld %lld\n", dir, (long long)pid,
                 (long long)pid);
        assert_string_equal(buf, expect);
    }

    assert_int_equal(cpar_procs_spawn(p, missing, NULL, NULL, NULL, &pid, why, sizeof why),
                     CPAR_ENOENT);
    assert_non_null(strstr(why, "cpar-no-such-program"));

    assert_int_equal(cpar_procs_spawn(p, sleeper, NULL, NULL, NULL, &pid, why, sizeof why), 0);
    {
        int running = 0, code = 0;
        assert_int_equal(cpar_procs_status(p, pid, &running, &code, NULL, 0), 0);
        assert_int_equal(running, 1);
    }
    kill((pid_t)pid, SIGTERM);
    assert_int_equal(wait_end(p, pid), -SIGTERM);
    cpar_procs_free(p);
    unlink(path);
    rmdir(dir);
}

static void test_spawn_without_loop(void **state)
{
    (void)state;
    spawn_cases(NULL);
}

static void test_spawn_with_loop(void **state)
{
    cpar_loop_t *loop;

    (void)state;
    assert_int_equal(cpar_loop_new(&loop), 0);
    spawn_cases(loop);
    cpar_loop_free(loop);
}

static void test_foreign_pid(void **state)
{
    cpar_procs_t *p;
    int running = 0, code = 0;

    (void)state;
    assert_int_equal(cpar_procs_new(&p, NULL), 0);
    /* ourselves: not a child, but running */
    assert_int_equal(cpar_procs_status(p, getpid(), &running, &code, NULL, 0), 0);
    assert_int_equal(running, 1);
    assert_int_equal(code, CPAR_EXIT_UNKNOWN);
    cpar_procs_free(p);
}

static void test_run(void **state)
{
    const char *cat[] = {"sh", "-c", "cat; echo oops >&2; exit 4", NULL};
    const char *sleeper[] = {"sleep", "10", NULL};
    const char *missing[] = {"cpar-no-such-program", NULL};
    char *out = NULL, *err = NULL, why[256] = "";
    int status = -1;

    (void)state;
    assert_int_equal(cpar_proc_run(cat, "line one\n", 5000, &status, &out, &err, why, sizeof why),
                     0);
    assert_int_equal(status, 4);
    assert_string_equal(out, "line one\n");
    assert_string_equal(err, "oops\n");
    free(out);
    free(err);
    assert_int_equal(cpar_proc_run(sleeper, NULL, 200, &status, NULL, NULL, why, sizeof why),
                     CPAR_ETIMEDOUT);
    assert_int_equal(cpar_proc_run(missing, NULL, 1000, &status, &out, &err, why, sizeof why),
                     CPAR_ENOENT);
    assert_non_null(strstr(why, "cpar-no-such-program"));
}

/* Descriptors the program has open do not reach the commands it runs. */
static void test_no_fd_leak(void **state)
{
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    char script[128], *out = NULL;
    const char *argv[] = {"sh", "-c", script, NULL};
    int status = -1;

    (void)state;
    assert_true(fd > 2);
    snprintf(script, sizeof script,
             "if [ -e /proc/self/fd/%d ]; then echo leaked; else echo clean; fi", fd);
    assert_int_equal(cpar_proc_run(argv, NULL, 5000, &status, &out, NULL, NULL, 0), 0);
    assert_string_equal(out, "clean\n");
    free(out);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_without_loop), cmocka_unit_test(test_spawn_with_loop),
        cmocka_unit_test(test_foreign_pid),        cmocka_unit_test(test_run),
        cmocka_unit_test(test_no_fd_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
