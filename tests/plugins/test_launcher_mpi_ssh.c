/*
 * test_launcher_mpi_ssh.c - the mpi, ssh and sshproxy launchers through the real plugin host,
 * with real processes: small shell programs stand in for engines, so that each case takes a
 * second or two.
 *
 *   mpi: the argv (-n, mpi_args, --mpi and engine_mpi, n = 1 for a controller) seen by a stand-in
 *        mpiexec; a whole life (start, poll, save, restore from another handle, stop, output)
 *        under Open MPI's mpiexec and under MPICH's; stop escalating to SIGKILL; a missing
 *        mpiexec; restore of a process that is gone.
 *   ssh: against the private sshd of tests/support/testbeds/ssh.sh (127.0.0.1, port
 *        CPAR_SSHD_PORT or 2222, key in CPAR_SSHD_DIR or /var/lib/cparallel-sshd): engines from
 *        the engines dict with the connection files sent to a separate remote profile, the remote
 *        --profile-dir, poll, signal, save/restore, stop (also escalating to SIGKILL), output;
 *        a controller whose connection files are fetched by poll; an unreachable host; restore of
 *        a remote process that is gone.
 *   sshproxy: the remote `cpcluster engines` command line, and stop through the one remote pid.
 *
 * A bed that is missing fails the cases that need it, with the reason.
 * CPAR_PLUGIN_PATH must reach the launchers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "plugins/host.h"
#include "plugins/launch.h"

#include "launchtest.h"

static char g_sshd_dir[512];
static int g_sshd_port;

/* ---- helpers ------------------------------------------------------------------------------ */

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct fixture {
    lt_launcher_t lt;
    char *profile; /* local profile dir (with security/ and log/) */
    char *remote;  /* the remote profile dir for ssh */
} fixture_t;

/* Load `plugin` for `role` with settings "Section.key" = JSON value pairs (NULL-terminated). */
static void open_launcher(fixture_t *fx, const char *plugin, cpar_launch_role_t role, ...)
{
    char path[600];
    memset(fx, 0, sizeof *fx);
    fx->profile = lt_fresh_dir("profile");
    fx->remote = lt_fresh_dir("remote");
    snprintf(path, sizeof path, "%s/security", fx->profile);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/log", fx->profile);
    assert_int_equal(mkdir(path, 0700), 0);
    va_list ap;
    va_start(ap, role);
    lt_open(&fx->lt, "test_launcher_mpi_ssh", fx->profile, plugin, role, ap);
    va_end(ap);
}

static void close_launcher(fixture_t *fx)
{
    lt_close(&fx->lt);
    free(fx->profile);
    free(fx->remote);
}

static const char *const no_env[] = {NULL};
static const char *const no_args[] = {NULL};

static cpar_launch_spec_t make_spec(const fixture_t *fx, cpar_launch_role_t role, int n,
                                    const char *const *program, const char *const *args)
{
    cpar_launch_spec_t s = {
        .role = role,
        .n = role == CPAR_ROLE_CONTROLLER ? 1 : n,
        .profile_dir = fx->profile,
        .cluster_id = "abc",
        .engine_set_id = role == CPAR_ROLE_CONTROLLER ? NULL : "1795693850",
        .work_dir = fx->profile,
        .identifier = role == CPAR_ROLE_CONTROLLER ? "ipcontroller-abc-1" : "ipengine-abc-1",
        .program = program,
        .program_args = args ? args : no_args,
        .env = no_env,
        .sections = cpar_launcher_sections(fx->lt.l, role),
    };
    return s;
}

static cpar_launch_job_t *start_ok(fixture_t *fx, const cpar_launch_spec_t *spec, json_t **info)
{
    cpar_launch_job_t *job = NULL;
    json_t *j = lt_start(fx->lt.l, spec, &job);
    if (info)
        *info = j;
    else
        json_decref(j);
    return job;
}

/* Poll until `want`, for at most `secs`; returns the last state. */
static cpar_job_state_t poll_until(cpar_launch_job_t *job, cpar_job_state_t want, int secs,
                                   int *exit_code)
{
    return lt_poll_until(job, want, secs, 100, exit_code);
}

/* Not inlined: GCC 12 then mistakes the returned buffer for a pointer to the local `text`. */
__attribute__((noinline)) static char *output_of(cpar_launch_job_t *job, int remove)
{
    char *text = NULL;
    assert_int_equal(cpar_launch_output(job, remove, &text), 0);
    assert_non_null(text);
    return text;
}

static void expect_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' not found in:\n%s", needle, text);
}

/* Has the start JSON's argv the word `w`? */
static int argv_has(const json_t *info, const char *w)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(info, "argv"), i, e)
    {
        if (strcmp(json_string_value(e), w) == 0)
            return 1;
    }
    return 0;
}

/* Wait up to 5 s for the job's output to have `want`. */
static void expect_output(cpar_launch_job_t *job, const char *want)
{
    char *out = NULL;
    for (int i = 0; i < 50; i++) {
        free(out);
        out = output_of(job, 0);
        if (strstr(out, want))
            break;
        lt_sleep_ms(100);
    }
    expect_contains(out, want);
    free(out);
}

/* Restore `saved` in a new handle, as `cpcluster stop` does; it must succeed. */
static cpar_launch_job_t *restore_ok(fixture_t *fx, const cpar_launch_spec_t *spec,
                                     const char *saved)
{
    cpar_launch_job_t *again = NULL;
    int rc = cpar_launch_restore(fx->lt.l, spec, saved, &again);
    if (rc)
        fail_msg("restore: %s: %s", cpar_err_name(rc), cpar_launcher_error(fx->lt.l));
    return again;
}

static void stop_ok(fixture_t *fx, cpar_launch_job_t *job)
{
    char *stop_json = NULL;
    int rc = cpar_launch_stop(job, &stop_json);
    if (rc)
        fail_msg("stop: %s: %s", cpar_err_name(rc), cpar_launcher_error(fx->lt.l));
    free(stop_json);
}

/* ---- mpi ------------------------------------------------------------------------------------ */

/* A stand-in mpiexec that prints its arguments and exits: the argv the launcher built. */
static const char *const echo_prog[] = {"prog", NULL};
static const char *const echo_args[] = {"--profile-dir", "P", NULL};

static void mpi_argv_case(cpar_launch_role_t role, const char *engine_mpi, const char *want,
                          int want_mpi)
{
    fixture_t fx;
    if (engine_mpi)
        open_launcher(&fx, "mpi", role, "MPILauncher.mpi_cmd",
                      "[\"sh\", \"-c\", \"echo \\\"$*\\\"\", \"mpiexec\"]", "MPILauncher.mpi_args",
                      "[\"--oversubscribe\"]", "MPIEngineSetLauncher.engine_mpi", engine_mpi, NULL);
    else
        open_launcher(&fx, "mpi", role, "MPIExecLauncher.mpi_cmd",
                      "[\"sh\", \"-c\", \"echo \\\"$*\\\"\", \"mpiexec\"]", "MPILauncher.mpi_args",
                      "[\"--oversubscribe\"]", NULL);
    cpar_launch_spec_t spec = make_spec(&fx, role, 3, echo_prog, echo_args);
    json_t *info = NULL;
    cpar_launch_job_t *job = start_ok(&fx, &spec, &info);
    assert_true(json_integer_value(json_object_get(info, "pid")) > 0);
    assert_int_equal(argv_has(info, "--mpi"), want_mpi);
    json_decref(info);
    int code = -1;
    assert_int_equal(poll_until(job, CPAR_JOB_DONE, 20, &code), CPAR_JOB_DONE);
    assert_int_equal(code, 0);
    char *out = output_of(job, 1);
    expect_contains(out, want);
    free(out);
    /* The output file is gone after output(remove = 1). */
    out = output_of(job, 0);
    assert_string_equal(out, "");
    free(out);
    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0); /* already ended: fine */
    free(stop_json);
    cpar_launch_release(job);
    close_launcher(&fx);
}

static void test_mpi_argv(void **state)
{
    (void)state;
    /* Engines: -n N, mpi_args, the program, --mpi (7.1), the program's arguments. */
    mpi_argv_case(CPAR_ROLE_ENGINES, NULL, "-n 3 --oversubscribe prog --mpi --profile-dir P", 1);
    /* engine_mpi = False drops --mpi (an mpiexec other than mpi4py's MPI). */
    mpi_argv_case(CPAR_ROLE_ENGINES, "false", "-n 3 --oversubscribe prog --profile-dir P", 0);
    /* A controller is one rank and never gets --mpi (7.1's MPIControllerLauncher fails here). */
    mpi_argv_case(CPAR_ROLE_CONTROLLER, NULL, "-n 1 --oversubscribe prog --profile-dir P", 0);
}

static void require_program(const char *name, const char *bed)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    if (system(cmd) != 0)
        fail_msg("%s not found: run tests/support/testbeds/%s first", name, bed);
}

/* A whole life under a real mpiexec: ranks that print and sleep. */
static void mpi_life(const char *mpiexec, const char *mpi_args)
{
    static const char *const prog[] = {"sh", "-c", "echo rank-up; exec sleep 30", NULL};
    require_program(mpiexec, "mpi.sh");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "[\"%s\"]", mpiexec);
    fixture_t fx;
    open_launcher(&fx, "mpi", CPAR_ROLE_ENGINES, "MPIEngineSetLauncher.mpi_cmd", cmd,
                  "MPIEngineSetLauncher.mpi_args", mpi_args, "MPIEngineSetLauncher.engine_mpi",
                  "false", NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2, prog, NULL);
    cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
    assert_int_equal(poll_until(job, CPAR_JOB_RUNNING, 10, NULL), CPAR_JOB_RUNNING);
    /* Both ranks run. */
    char *out = NULL;
    for (int i = 0; i < 100; i++) {
        free(out);
        out = output_of(job, 0);
        char *second = strstr(out, "rank-up");
        if (second && strstr(second + 1, "rank-up"))
            break;
        lt_sleep_ms(100);
    }
    char *second = strstr(out, "rank-up");
    if (!second || !strstr(second + 1, "rank-up"))
        fail_msg("two ranks did not start under %s:\n%s", mpiexec, out);
    free(out);

    /* Saved and restored from another handle, as `cpcluster stop` does. */
    char *saved = NULL;
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    json_t *sj = json_loads(saved, 0, NULL);
    assert_non_null(sj);
    assert_true(json_integer_value(json_object_get(sj, "pid")) > 0);
    assert_string_equal(json_string_value(json_object_get(sj, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(sj, "n")), 2);
    json_decref(sj);
    cpar_launch_job_t *again = restore_ok(&fx, &spec, saved);
    assert_int_equal(poll_until(again, CPAR_JOB_RUNNING, 5, NULL), CPAR_JOB_RUNNING);
    stop_ok(&fx, again);
    assert_int_equal(poll_until(job, CPAR_JOB_DONE, 15, NULL), CPAR_JOB_DONE);
    /* Nothing of it runs any more: a second restore fails with ENOENT. */
    cpar_launch_job_t *gone = NULL;
    assert_int_equal(cpar_launch_restore(fx.lt.l, &spec, saved, &gone), CPAR_ENOENT);
    free(saved);
    cpar_launch_release(again);
    cpar_launch_release(job);
    close_launcher(&fx);
}

static void test_mpi_openmpi(void **state)
{
    (void)state;
    mpi_life("mpiexec.openmpi", "[\"--allow-run-as-root\", \"--oversubscribe\"]");
}

static void test_mpi_mpich(void **state)
{
    (void)state;
    mpi_life("mpiexec.mpich", "[]");
}

/* An mpiexec that ignores SIGTERM: stop sends SIGKILL after stop_seconds_until_kill. */
static void test_mpi_stop_escalates(void **state)
{
    (void)state;
    fixture_t fx;
    open_launcher(&fx, "mpi", CPAR_ROLE_ENGINES, "MPILauncher.mpi_cmd",
                  "[\"sh\", \"-c\", \"trap '' TERM; sleep 3; sleep 3\", \"mpiexec\"]",
                  "MPILauncher.stop_seconds_until_kill", "0.5", NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 1, echo_prog, NULL);
    cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
    lt_sleep_ms(200);
    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    json_t *sj = json_loads(stop_json, 0, NULL);
    assert_non_null(sj);
    assert_int_equal(json_integer_value(json_object_get(sj, "exit_code")), -SIGKILL);
    json_decref(sj);
    free(stop_json);
    cpar_launch_release(job);
    close_launcher(&fx);
}

static void test_mpi_missing_command(void **state)
{
    (void)state;
    fixture_t fx;
    open_launcher(&fx, "mpi", CPAR_ROLE_ENGINES, "MPILauncher.mpi_cmd", "[\"no-such-mpiexec-xyz\"]",
                  NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2, echo_prog, NULL);
    cpar_launch_job_t *job = NULL;
    char *start_json = NULL;
    assert_int_equal(cpar_launch_start(fx.lt.l, &spec, &job, &start_json), CPAR_ENOENT);
    expect_contains(cpar_launcher_error(fx.lt.l), "no-such-mpiexec-xyz");
    assert_null(job);
    /* A saved pid that no longer runs is not restored. */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    char saved[128];
    snprintf(saved, sizeof saved, "{\"pid\": %d, \"n\": 2}", (int)child);
    assert_int_equal(cpar_launch_restore(fx.lt.l, &spec, saved, &job), CPAR_ENOENT);
    assert_int_equal(cpar_launch_restore(fx.lt.l, &spec, "[1]", &job), CPAR_EINVAL);
    close_launcher(&fx);
}

/* ---- ssh --------------------------------------------------------------------------------------
 */

/* ssh_args / scp_args for the private sshd (without the port). */
static void ssh_key_args(char *buf, size_t len)
{
    snprintf(buf, len,
             "[\"-i\", \"%s/id_ed25519\", \"-o\", \"IdentitiesOnly=yes\", \"-o\", "
             "\"UserKnownHostsFile=/dev/null\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", "
             "\"LogLevel=ERROR\", \"-o\", \"BatchMode=yes\", \"-o\", \"ConnectTimeout=5\"]",
             g_sshd_dir);
}

static void require_sshd(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ssh -p %d -i %s/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null "
             "-o StrictHostKeyChecking=no -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=5 "
             "root@127.0.0.1 true >/dev/null 2>&1",
             g_sshd_port, g_sshd_dir);
    if (system(cmd) != 0)
        fail_msg("the private sshd on 127.0.0.1:%d does not answer (key %s/id_ed25519): run "
                 "tests/support/testbeds/ssh.sh first",
                 g_sshd_port, g_sshd_dir);
}

static void write_connection_files(const fixture_t *fx)
{
    char path[700];
    snprintf(path, sizeof path, "%s/security/ipcontroller-abc-client.json", fx->profile);
    put_file(path, "{\"client\": 1}\n");
    snprintf(path, sizeof path, "%s/security/ipcontroller-abc-engine.json", fx->profile);
    put_file(path, "{\"engine\": 1}\n");
}

/* Open the ssh-family launcher `plugin` with the key args, the remote profile and `extra`. */
static void open_ssh(fixture_t *fx, const char *plugin, cpar_launch_role_t role, const char *k1,
                     const char *v1, const char *k2, const char *v2)
{
    char args[1024], rpd[600], host[64];
    require_sshd();
    ssh_key_args(args, sizeof args);
    snprintf(host, sizeof host, "\"127.0.0.1\"");
    /* The remote profile dir is only known after open_launcher made it: a fixed name below. */
    static int seq;
    snprintf(rpd, sizeof rpd, "\"%s/rprof-%d\"", lt_tmp, ++seq);
    open_launcher(fx, plugin, role, "SSHLauncher.ssh_args", args, "SSHLauncher.scp_args", args,
                  "SSHLauncher.remote_profile_dir", rpd, "SSHLauncher.remote_python",
                  "\"/usr/bin/python3\"", "SSHLauncher.hostname", host, "SSHLauncher.user",
                  "\"root\"", "SSHLauncher.stop_seconds_until_kill", "1", k1, v1, k2, v2, NULL);
    free(fx->remote);
    fx->remote = malloc(600);
    assert_non_null(fx->remote);
    snprintf(fx->remote, 600, "%s/rprof-%d", lt_tmp, seq);
}

static void test_ssh_engines(void **state)
{
    (void)state;
    static const char *const prog[] = {"sh", "-c", "echo args: \"$@\"; exec sleep 30", "eng", NULL};
    char engines[128], path[700];
    fixture_t fx;
    snprintf(engines, sizeof engines, "{\"root@127.0.0.1:%d\": 2, \"root@127.0.0.1:1\": 5}",
             g_sshd_port);
    open_ssh(&fx, "ssh", CPAR_ROLE_ENGINES, "SSHEngineSetLauncher.engines", engines, NULL, NULL);
    write_connection_files(&fx);
    static const char *args[] = {"--profile-dir", NULL, "--cluster-id", "abc", NULL};
    args[1] = fx.profile;
    /* n = 2: the first host has room for both, so the unreachable second is never tried. */
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2, prog, args);
    json_t *info = NULL;
    cpar_launch_job_t *job = start_ok(&fx, &spec, &info);
    assert_int_equal(json_array_size(json_object_get(info, "engines")), 2);
    char key[64];
    snprintf(key, sizeof key, "root@127.0.0.1:%d/1", g_sshd_port);
    assert_string_equal(json_string_value(json_array_get(json_object_get(info, "engines"), 1)),
                        key);
    json_decref(info);
    /* The connection files went to the remote profile (same machine here). */
    snprintf(path, sizeof path, "%s/security/ipcontroller-abc-engine.json", fx.remote);
    char *copied = lt_slurp(path);
    if (!copied)
        fail_msg("connection file not sent to %s", path);
    assert_string_equal(copied, "{\"engine\": 1}\n");
    free(copied);
    assert_int_equal(poll_until(job, CPAR_JOB_RUNNING, 10, NULL), CPAR_JOB_RUNNING);
    assert_int_equal(cpar_launch_signal(job, SIGCONT), 0);

    /* The remote command line has the remote profile dir. */
    char want[700];
    snprintf(want, sizeof want, "args: --profile-dir %s --cluster-id abc", fx.remote);
    expect_output(job, want);

    char *saved = NULL;
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    json_t *sj = json_loads(saved, 0, NULL);
    assert_non_null(sj);
    json_t *e0 = json_object_get(json_object_get(sj, "engines"), "0");
    assert_non_null(e0);
    assert_string_equal(json_string_value(json_object_get(e0, "hostname")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(e0, "user")), "root");
    assert_string_equal(json_string_value(json_object_get(e0, "remote_profile_dir")), fx.remote);
    assert_true(json_integer_value(json_object_get(e0, "pid")) > 0);
    assert_non_null(json_object_get(e0, "ssh_args"));
    assert_non_null(json_object_get(e0, "remote_output_file"));
    json_decref(sj);

    cpar_launch_job_t *again = restore_ok(&fx, &spec, saved);
    stop_ok(&fx, again);
    assert_int_equal(poll_until(job, CPAR_JOB_DONE, 10, NULL), CPAR_JOB_DONE);
    cpar_launch_job_t *gone = NULL;
    assert_int_equal(cpar_launch_restore(fx.lt.l, &spec, saved, &gone), CPAR_ENOENT);
    free(saved);
    /* output(remove = 1) deletes the remote files. */
    char *out = output_of(again, 1);
    free(out);
    out = output_of(again, 0);
    assert_string_equal(out, "");
    free(out);
    cpar_launch_release(again);
    cpar_launch_release(job);
    close_launcher(&fx);
}

/* A remote process that ignores SIGTERM: stop kills it after stop_seconds_until_kill. */
static void test_ssh_stop_escalates(void **state)
{
    (void)state;
    static const char *const prog[] = {"sh", "-c", "trap '' TERM; sleep 20; sleep 20", NULL};
    char engines[64];
    fixture_t fx;
    snprintf(engines, sizeof engines, "{\"root@127.0.0.1:%d\": 1}", g_sshd_port);
    open_ssh(&fx, "ssh", CPAR_ROLE_ENGINES, "SSHEngineSetLauncher.engines", engines, NULL, NULL);
    write_connection_files(&fx);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 1, prog, NULL);
    cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
    lt_sleep_ms(300);
    int64_t t0 = (int64_t)time(NULL);
    stop_ok(&fx, job);
    assert_true((int64_t)time(NULL) - t0 < 15);
    assert_int_equal(poll_until(job, CPAR_JOB_DONE, 5, NULL), CPAR_JOB_DONE);
    cpar_launch_release(job);
    close_launcher(&fx);
}

/* A remote controller: its connection files are fetched by the poll that finds them. */
static void test_ssh_controller(void **state)
{
    (void)state;
    fixture_t fx;
    char script[1200], sa[1100], ca[1100], base[1024];
    /* A controller has no host spec: the port goes in ssh_args and scp_args. */
    ssh_key_args(base, sizeof base);
    base[strlen(base) - 1] = '\0';
    snprintf(sa, sizeof sa, "%s, \"-p\", \"%d\"]", base, g_sshd_port);
    snprintf(ca, sizeof ca, "%s, \"-P\", \"%d\"]", base, g_sshd_port);
    open_ssh(&fx, "ssh", CPAR_ROLE_CONTROLLER, "SSHControllerLauncher.ssh_args", sa,
             "SSHControllerLauncher.scp_args", ca);
    snprintf(script, sizeof script,
             "sleep 0.5; echo '{\"c\": 1}' > %s/security/ipcontroller-abc-client.json; "
             "echo '{\"e\": 1}' > %s/security/ipcontroller-abc-engine.json; exec sleep 30",
             fx.remote, fx.remote);
    const char *prog[] = {"sh", "-c", script, NULL};
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_CONTROLLER, 1, prog, NULL);
    cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
    char path[700];
    snprintf(path, sizeof path, "%s/security/ipcontroller-abc-engine.json", fx.profile);
    char *got = NULL;
    for (int i = 0; i < 50 && !got; i++) {
        assert_int_equal(poll_until(job, CPAR_JOB_RUNNING, 5, NULL), CPAR_JOB_RUNNING);
        got = lt_slurp(path);
        if (!got)
            lt_sleep_ms(100);
    }
    if (!got)
        fail_msg("the controller's connection file was not fetched to %s", path);
    assert_string_equal(got, "{\"e\": 1}\n");
    free(got);
    char *saved = NULL;
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    json_t *sj = json_loads(saved, 0, NULL);
    assert_non_null(sj);
    assert_true(json_integer_value(json_object_get(sj, "pid")) > 0); /* flat, as 7.1's */
    json_decref(sj);
    free(saved);
    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    free(stop_json);
    cpar_launch_release(job);
    close_launcher(&fx);
}

static void test_ssh_unreachable(void **state)
{
    (void)state;
    fixture_t fx;
    open_ssh(&fx, "ssh", CPAR_ROLE_ENGINES, "SSHEngineSetLauncher.engines",
             "{\"root@127.0.0.1:1\": 1}", NULL, NULL);
    write_connection_files(&fx);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 1, echo_prog, NULL);
    cpar_launch_job_t *job = NULL;
    char *start_json = NULL;
    assert_int_equal(cpar_launch_start(fx.lt.l, &spec, &job, &start_json), CPAR_EIO);
    expect_contains(cpar_launcher_error(fx.lt.l), "refused");
    /* A saved remote pid that is gone is not restored. */
    char saved[1200];
    snprintf(saved, sizeof saved,
             "{\"engines\": {\"0\": {\"hostname\": \"127.0.0.1\", \"user\": \"root\", \"pid\": "
             "4000000, \"ssh_args\": [\"-p\", \"%d\", \"-i\", \"%s/id_ed25519\", \"-o\", "
             "\"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\", \"-o\", "
             "\"BatchMode=yes\"]}}}",
             g_sshd_port, g_sshd_dir);
    assert_int_equal(cpar_launch_restore(fx.lt.l, &spec, saved, &job), CPAR_ENOENT);
    close_launcher(&fx);
}

/* sshproxy: one remote `cpcluster engines ...`; a stand-in prints its arguments and sleeps. */
static void test_sshproxy(void **state)
{
    (void)state;
    fixture_t fx;
    open_ssh(&fx, "sshproxy", CPAR_ROLE_ENGINES, "SSHProxyEngineSetLauncher.ipcluster_cmd",
             "[\"sh\", \"-c\", \"echo args: \\\"$*\\\"; exec sleep 30\", \"cpcluster\"]",
             "SSHProxyEngineSetLauncher.ipcluster_args", "[\"--engines=mpi\"]");
    char args[1024];
    ssh_key_args(args, sizeof args);
    write_connection_files(&fx);
    /* The port goes in ssh_args/scp_args for sshproxy: set through the section chain. */
    char port[64];
    snprintf(port, sizeof port, "%d", g_sshd_port);
    json_t *sa = json_loads(args, 0, NULL);
    json_t *ca = json_deep_copy(sa);
    json_array_append_new(sa, json_string("-p"));
    json_array_append_new(sa, json_string(port));
    json_array_append_new(ca, json_string("-P"));
    json_array_append_new(ca, json_string(port));
    assert_int_equal(cpar_config_set_dotted(fx.lt.cfg, "SSHProxyEngineSetLauncher.ssh_args", sa,
                                            CPAR_SRC_CLI, "test"),
                     0);
    assert_int_equal(cpar_config_set_dotted(fx.lt.cfg, "SSHProxyEngineSetLauncher.scp_args", ca,
                                            CPAR_SRC_CLI, "test"),
                     0);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 3, echo_prog, NULL);
    cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
    char want[800];
    snprintf(want, sizeof want,
             "args: engines -n 3 --profile-dir %s --cluster-id abc --engines=mpi", fx.remote);
    expect_output(job, want);
    assert_int_equal(poll_until(job, CPAR_JOB_RUNNING, 5, NULL), CPAR_JOB_RUNNING);
    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    free(stop_json);
    assert_int_equal(poll_until(job, CPAR_JOB_DONE, 5, NULL), CPAR_JOB_DONE);
    cpar_launch_release(job);
    close_launcher(&fx);
}

int main(void)
{
    const char *d = getenv("CPAR_SSHD_DIR");
    snprintf(g_sshd_dir, sizeof g_sshd_dir, "%s", d && *d ? d : "/var/lib/cparallel-sshd");
    const char *p = getenv("CPAR_SSHD_PORT");
    g_sshd_port = p && *p ? atoi(p) : 2222;
    snprintf(lt_tmp, sizeof lt_tmp, "/tmp/cpar-mpissh-XXXXXX");
    if (!mkdtemp(lt_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpi_argv),
        cmocka_unit_test(test_mpi_stop_escalates),
        cmocka_unit_test(test_mpi_missing_command),
        cmocka_unit_test(test_mpi_openmpi),
        cmocka_unit_test(test_mpi_mpich),
        cmocka_unit_test(test_ssh_engines),
        cmocka_unit_test(test_ssh_stop_escalates),
        cmocka_unit_test(test_ssh_controller),
        cmocka_unit_test(test_ssh_unreachable),
        cmocka_unit_test(test_sshproxy),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lt_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", lt_tmp);
    return failed;
}
