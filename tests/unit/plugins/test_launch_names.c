/*
 * test_launch_names.c - ipyparallel's launcher names to plugin names (spec §2): short names in
 * any case, class names and dotted paths, the deprecated MPIExec* classes, and what 7.1 does not
 * register (WindowsHPC as a short name). Also the SDK's helpers for reading a batch system's
 * output (cpar_launch_next_line, cpar_launch_field).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <cparallel/launcher.h>

#include "plugins/launch.h"

static void test_names(void **state)
{
    static const char *const cases[][2] = {
        {"local", "local"},
        {"Local", "local"},
        {"SSH", "ssh"},
        {"Ssh", "ssh"},
        {"SSHProxy", "sshproxy"},
        {"mpi", "mpi"},
        {"Slurm", "slurm"},
        {"PBS", "pbs"},
        {"winhpc", "winhpc"},
        {"htcondor", "htcondor"},
        {"batch", "batch"},
        {"LocalEngineSetLauncher", "local"},
        {"LocalControllerLauncher", "local"},
        {"ipyparallel.cluster.launcher.SlurmEngineSetLauncher", "slurm"},
        {"ipyparallel.cluster.launcher.PBSEngineSetLauncher", "pbs"},
        {"ipyparallel.apps.launcher.SGEControllerLauncher", "sge"},
        {"MPIExecEngineSetLauncher", "mpi"},
        {"MPIExecLauncher", "mpi"},
        {"MPIControllerLauncher", "mpi"},
        {"SSHProxyEngineSetLauncher", "sshproxy"},
        {"SSHEngineLauncher", "ssh"},
        {"LSFEngineSetLauncher", "lsf"},
        {"HTCondorControllerLauncher", "htcondor"},
        {"WindowsHPCEngineSetLauncher", "winhpc"},
        {"BatchEngineSetLauncher", "batch"},
        /* not registered in 7.1: taken as plugin names, which do not exist */
        {"WindowsHPC", "WindowsHPC"},
        {"MPIExec", "MPIExec"},
        {"mypkg.MyEngineSetLauncher", "mypkg.MyEngineSetLauncher"},
        {"custom", "custom"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = cpar_launch_plugin_name(cases[i][0]);
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("%s -> %s, expected %s", cases[i][0], got, cases[i][1]);
    }
}

static void test_next_line(void **state)
{
    const char *want[] = {"RUNNING", "", "a  b", "last"};
    const char *cur = "  RUNNING\r\n\n\ta  b \nlast", *line;
    size_t len, n = 0;

    (void)state;
    while (cpar_launch_next_line(&cur, &line, &len)) {
        assert_true(n < 4);
        assert_int_equal(len, strlen(want[n]));
        assert_memory_equal(line, want[n], len);
        n++;
    }
    assert_int_equal(n, 4);
    cur = NULL;
    assert_false(cpar_launch_next_line(&cur, &line, &len));
}

static void test_field(void **state)
{
    const char *qstat = "Job Id: 12.server\n    job_state_x = Z\n    Job_State = R \r\n";
    char buf[8];

    (void)state;
    assert_int_equal(cpar_launch_field(qstat, "job_state", '=', 1, buf, sizeof buf), 0);
    assert_string_equal(buf, "R");
    /* case matters unless asked otherwise; the separator must follow the key */
    assert_int_equal(cpar_launch_field(qstat, "job_state", '=', 0, buf, sizeof buf), -1);
    assert_int_equal(cpar_launch_field(qstat, "Job", '=', 0, buf, sizeof buf), -1);
    assert_int_equal(cpar_launch_field("State : Finishing now", "State", ':', 0, buf, 6), 0);
    assert_string_equal(buf, "Finis"); /* cut to fit */
    assert_int_equal(cpar_launch_field("State :\n", "State", ':', 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_names),
                                       cmocka_unit_test(test_next_line),
                                       cmocka_unit_test(test_field)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
