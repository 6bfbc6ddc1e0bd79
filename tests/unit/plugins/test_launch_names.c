/*
 * test_launch_names.c - ipyparallel's launcher names to plugin names (spec §2): short names in
 * any case, class names and dotted paths, the deprecated MPIExec* classes, and what 7.1 does not
 * register (WindowsHPC as a short name).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_names)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
