/*
 * test_launcher_shims.c - the pbs, lsf, htcondor and winhpc launchers through the real loader
 * and the host's batch driver, against the command shims of tests/support/shims/ (no real PBS,
 * LSF, HTCondor or Windows HPC runs here).
 *
 * usage: test_launcher_shims <shims dir> <golden dir>
 *
 *   - golden: the default scripts for n=4, cluster id abc, profile /prof/profile_default, with
 *     and without a queue, byte for byte against tests/golden/launchers/ (written by
 *     tests/support/render_ipp_templates.py and render_ipp_winhpc.py from ipyparallel 7.1's own
 *     classes; where cparallel fixes 7.1, its rendering is there and 7.1's is in ipp-7.1/);
 *   - job ids from the submit outputs of the launcher spec's table, with Python's re.search
 *     rules, and the job states from each system's poll output;
 *   - a whole job through the shims: submit, the programs really run, poll, signal, save,
 *     restore, stop, poll again;
 *   - bad input: a user template with an unknown variable (one-line error naming it, nothing
 *     submitted), and a submit command that fails (its message shown).
 *
 * The shims run what is submitted: the PATH also holds tests/support/shims/programs, where
 * python3, ipengine and ipcontroller are stand-ins that sleep until they are killed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "plugins/host.h"
#include "plugins/launch.h"
#include "plugins/text.h"

#include "launchtest.h"

static const char *g_shims;
static const char *g_golden;

/* ---- helpers ------------------------------------------------------------------------------ */

/* The shims keep their jobs in CPAR_SHIM_STATE_DIR: one per case, under its work dir. */
static void use_state_dir(const char *work)
{
    char sd[600];
    snprintf(sd, sizeof sd, "%s/shim-state", work);
    setenv("CPAR_SHIM_STATE_DIR", sd, 1);
}

typedef struct fixture {
    lt_launcher_t lt;
    char *work;
} fixture_t;

/* Load `plugin` for `role` with settings "Section.key" = JSON value pairs (NULL-terminated). */
static void open_launcher(fixture_t *fx, const char *plugin, cpar_launch_role_t role, ...)
{
    memset(fx, 0, sizeof *fx);
    va_list ap;
    va_start(ap, role);
    lt_open(&fx->lt, "test_launcher_shims", "/prof/profile_default", plugin, role, ap);
    va_end(ap);
    fx->work = lt_fresh_dir(plugin);
    use_state_dir(fx->work);
}

static void close_launcher(fixture_t *fx)
{
    lt_close(&fx->lt);
    free(fx->work);
}

static const char *const engine_program[] = {"python3", "-m", "ipyparallel.engine", NULL};
static const char *const engine_args[] = {"--profile-dir", "/prof/profile_default", "--cluster-id",
                                          "abc",           "--log-level=20",        NULL};
static const char *const controller_program[] = {"python3", "-m", "ipyparallel.controller", NULL};
static const char *const controller_args[] = {"--profile-dir", "/prof/profile_default",
                                              "--cluster-id", "abc", NULL};
/* What ipyparallel 7.1's Windows HPC launchers pass: the cluster arguments only. */
static const char *const winhpc_args[] = {"--profile-dir", "/prof/profile_default", "--cluster-id",
                                          "abc", NULL};
static const char *const no_env[] = {NULL};

static cpar_launch_spec_t make_spec(const fixture_t *fx, cpar_launch_role_t role, int n)
{
    cpar_launch_spec_t s = {
        .role = role,
        .n = role == CPAR_ROLE_CONTROLLER ? 1 : n,
        .profile_dir = "/prof/profile_default",
        .cluster_id = "abc",
        .engine_set_id = role == CPAR_ROLE_CONTROLLER ? NULL : "1795693850",
        .work_dir = fx->work,
        .identifier = role == CPAR_ROLE_CONTROLLER ? "ipcontroller-abc-1" : "ipengine-abc-1",
        .program = role == CPAR_ROLE_CONTROLLER ? controller_program : engine_program,
        .program_args = role == CPAR_ROLE_CONTROLLER ? controller_args : engine_args,
        .env = no_env,
        .sections = cpar_launcher_sections(fx->lt.l, role),
    };
    return s;
}

static cpar_launch_job_t *start_ok(fixture_t *fx, const cpar_launch_spec_t *spec, char **id)
{
    cpar_launch_job_t *job = NULL;
    json_t *j = lt_start(fx->lt.l, spec, &job);
    const char *jid = json_string_value(json_object_get(j, "job_id"));
    if (!jid)
        fail_msg("start JSON without a job_id: %s", json_dumps(j, JSON_COMPACT));
    if (id) {
        *id = strdup(jid);
        assert_non_null(*id);
    }
    json_decref(j);
    return job;
}

/* Poll until `want`, for at most `secs`; returns the last state. */
static cpar_job_state_t poll_until(cpar_launch_job_t *job, cpar_job_state_t want, int secs,
                                   int *exit_code)
{
    return lt_poll_until(job, want, secs, 50, exit_code);
}

/* The output of task `task` of shim job `id` (what the started program printed). */
static char *task_output(const fixture_t *fx, const char *id, int task)
{
    char path[800];
    snprintf(path, sizeof path, "%s/shim-state/%s/task.%d.out", fx->work, id, task);
    for (int i = 0; i < 100; i++) {
        char *s = lt_slurp(path);
        if (s && *s)
            return s;
        free(s);
        lt_sleep_ms(50);
    }
    fail_msg("no output from task %d of job %s (%s)", task, id, path);
    return NULL;
}

/* How many jobs the shims were given (their counter starts at 100). */
static int jobs_submitted(const fixture_t *fx)
{
    char path[800];
    snprintf(path, sizeof path, "%s/shim-state/.counter", fx->work);
    char *s = lt_slurp(path);
    int n = s ? atoi(s) - 100 : 0;
    free(s);
    return n;
}

static void compare_golden(const char *golden_name, const char *got_path)
{
    char path[800];
    snprintf(path, sizeof path, "%s/%s", g_golden, golden_name);
    char *want = lt_slurp(path);
    if (!want)
        fail_msg("missing golden file %s", path);
    char *got = lt_slurp(got_path);
    if (!got)
        fail_msg("the launcher wrote no %s", got_path);
    if (strcmp(want, got) != 0) {
        print_error("---- want (%s)\n%s\n---- got (%s)\n%s\n----\n", path, want, got_path, got);
        fail_msg("%s differs from %s", got_path, golden_name);
    }
    free(want);
    free(got);
}

/* Replace every uuid (8-4-4-4-12 hex digits) with "UUID", in place. */
static void mask_uuids(char *s)
{
    static const int groups[] = {8, 4, 4, 4, 12};
    for (char *p = s; *p; p++) {
        char *q = p;
        int ok = 1;
        for (int g = 0; g < 5 && ok; g++) {
            for (int i = 0; i < groups[g]; i++, q++)
                if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f'))) {
                    ok = 0;
                    break;
                }
            if (ok && g < 4 && *q++ != '-')
                ok = 0;
        }
        if (ok) {
            memcpy(p, "UUID", 4);
            memmove(p + 4, q, strlen(q) + 1);
            p += 3;
        }
    }
}

/* Stop `job` (which must work), release it and close the launcher. */
static void stop_and_close(fixture_t *fx, cpar_launch_job_t *job)
{
    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    free(stop_json);
    cpar_launch_release(job);
    close_launcher(fx);
}

/* ---- golden scripts ----------------------------------------------------------------------- */

typedef struct golden_case {
    const char *plugin;
    cpar_launch_role_t role;
    int queue;
    const char *file;   /* what the launcher writes into the work dir */
    const char *golden; /* tests/golden/launchers/<golden> */
} golden_case_t;

static const golden_case_t golden_cases[] = {
    {"pbs", CPAR_ROLE_CONTROLLER, 0, "pbs_controller", "PBSControllerLauncher.txt"},
    {"pbs", CPAR_ROLE_CONTROLLER, 1, "pbs_controller", "PBSControllerLauncher-queue.txt"},
    {"pbs", CPAR_ROLE_ENGINES, 0, "pbs_engines", "PBSEngineSetLauncher.txt"},
    {"pbs", CPAR_ROLE_ENGINES, 1, "pbs_engines", "PBSEngineSetLauncher-queue.txt"},
    {"lsf", CPAR_ROLE_CONTROLLER, 0, "lsf_controller", "LSFControllerLauncher.txt"},
    {"lsf", CPAR_ROLE_CONTROLLER, 1, "lsf_controller", "LSFControllerLauncher-queue.txt"},
    {"lsf", CPAR_ROLE_ENGINES, 0, "lsf_engines", "LSFEngineSetLauncher.txt"},
    {"lsf", CPAR_ROLE_ENGINES, 1, "lsf_engines", "LSFEngineSetLauncher-queue.txt"},
    {"htcondor", CPAR_ROLE_CONTROLLER, 0, "htcondor_controller", "HTCondorControllerLauncher.txt"},
    {"htcondor", CPAR_ROLE_CONTROLLER, 1, "htcondor_controller",
     "HTCondorControllerLauncher-queue.txt"},
    {"htcondor", CPAR_ROLE_ENGINES, 0, "htcondor_engines", "HTCondorEngineSetLauncher.txt"},
    {"htcondor", CPAR_ROLE_ENGINES, 1, "htcondor_engines", "HTCondorEngineSetLauncher-queue.txt"},
};

static void test_golden_scripts(void **unused)
{
    (void)unused;
    for (size_t i = 0; i < sizeof golden_cases / sizeof golden_cases[0]; i++) {
        const golden_case_t *c = &golden_cases[i];
        fixture_t fx;
        if (c->queue)
            open_launcher(&fx, c->plugin, c->role, "BatchSystemLauncher.queue", "\"q1\"", NULL);
        else
            open_launcher(&fx, c->plugin, c->role, NULL);
        cpar_launch_spec_t spec = make_spec(&fx, c->role, 4);
        cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
        char path[800];
        snprintf(path, sizeof path, "%s/%s", fx.work, c->file);
        compare_golden(c->golden, path);
        stop_and_close(&fx, job);
    }
}

static void test_golden_winhpc(void **unused)
{
    (void)unused;
    unsetenv("USERNAME");
    unsetenv("USERDOMAIN");
    for (int ctl = 0; ctl < 2; ctl++) {
        cpar_launch_role_t role = ctl ? CPAR_ROLE_CONTROLLER : CPAR_ROLE_ENGINES;
        fixture_t fx;
        open_launcher(&fx, "winhpc", role, "WindowsHPCLauncher.scheduler", "\"headnode\"", NULL);
        cpar_launch_spec_t spec = make_spec(&fx, role, 4);
        spec.program_args = winhpc_args;
        cpar_launch_job_t *job = start_ok(&fx, &spec, NULL);
        char path[800], masked[820];
        snprintf(path, sizeof path, "%s/%s", fx.work,
                 ctl ? "ipcontroller_job.xml" : "ipengineset_job.xml");
        char *xml = lt_slurp(path);
        assert_non_null(xml);
        mask_uuids(xml);
        snprintf(masked, sizeof masked, "%s.masked", path);
        FILE *f = fopen(masked, "w");
        assert_non_null(f);
        fputs(xml, f);
        fclose(f);
        free(xml);
        compare_golden(ctl ? "WindowsHPCControllerLauncher.xml" : "WindowsHPCEngineSetLauncher.xml",
                       masked);
        stop_and_close(&fx, job);
    }
}

/* ---- job ids and states ------------------------------------------------------------------ */

/* A host without settings, for the launchers' descriptors. */
static cpar_plughost_t *bare_host(cpar_config_t **cfg)
{
    *cfg = cpar_config_new();
    cpar_plughost_info_t info = {
        .program = "t", .profile_dir = "/p", .cluster_id = "", .session = "s"};
    cpar_plughost_t *host = NULL;
    assert_int_equal(cpar_plughost_new(&host, *cfg, NULL, &info), 0);
    return host;
}

static void free_bare_host(cpar_plughost_t *host, cpar_config_t *cfg, cpar_plugin_inst_t *pbs,
                           cpar_plugin_inst_t *lsf, cpar_plugin_inst_t *condor)
{
    cpar_plughost_unload(host, pbs);
    cpar_plughost_unload(host, lsf);
    cpar_plughost_unload(host, condor);
    cpar_plughost_free(host);
    cpar_config_free(cfg);
}

static const cpar_batch_system_t *batch_of(cpar_plughost_t *host, const char *name,
                                           cpar_plugin_inst_t **inst)
{
    char err[1024];
    int rc = cpar_plughost_load(host, CPAR_KIND_LAUNCHER, name, inst, err, sizeof err);
    if (rc)
        fail_msg("load %s: %s", name, err);
    const cpar_launcher_t *d = (const cpar_launcher_t *)cpar_plugin_desc(*inst);
    assert_non_null(d->batch);
    return d->batch;
}

static void expect_id(const cpar_batch_system_t *b, const char *out, const char *want)
{
    char *m = NULL, why[256] = "";
    int rc = cpar_text_regex_search(b->job_id_regexp, out, b->job_id_group, &m, why, sizeof why);
    if (!want) {
        if (rc != CPAR_ENOENT)
            fail_msg("'%s' should give no job id, gave %s (%s)", out, m ? m : "?", why);
        return;
    }
    if (rc)
        fail_msg("no job id in '%s': %s %s", out, cpar_err_name(rc), why);
    if (strcmp(m, want))
        fail_msg("job id of '%s': want %s, got %s", out, want, m);
    free(m);
}

static void test_job_ids(void **unused)
{
    (void)unused;
    cpar_config_t *cfg = NULL;
    cpar_plughost_t *host = bare_host(&cfg);
    cpar_plugin_inst_t *pbs, *lsf, *condor;
    const cpar_batch_system_t *b;

    b = batch_of(host, "pbs", &pbs);
    expect_id(b, "12345.pbs-server\n", "12345");
    expect_id(b, "12345[].pbs-server\n", "12345");
    expect_id(b, "12\n", "12");

    b = batch_of(host, "lsf", &lsf);
    expect_id(b, "Job <12345> is submitted to default queue <normal>.\n", "12345");
    expect_id(b, "Job <77> is submitted to queue <q1>.\n", "77");

    cpar_plugin_inst_t *winhpc;
    b = batch_of(host, "winhpc", &winhpc);
    expect_id(b, "Job has been submitted. ID: 123.\n", "123");
    cpar_plughost_unload(host, winhpc);

    b = batch_of(host, "htcondor", &condor);
    expect_id(b, "Submitting job(s).\n1 job(s) submitted to cluster 6923.\n", "6923");
    expect_id(b, "Submitting job(s)....\n4 job(s) submitted to cluster 6923.", "6923");
    /* $ matches before a final newline only: not before two, not in the middle. */
    expect_id(b, "1 job(s) submitted to cluster 6923.\n\n", NULL);
    expect_id(b, "cluster 6923.\nWARNING: something\n", NULL);

    free_bare_host(host, cfg, pbs, lsf, condor);
}

static void expect_state(const cpar_batch_system_t *b, const char *out, int status,
                         cpar_job_state_t want, int want_code)
{
    int code = 12345;
    cpar_job_state_t st = b->parse_state(out, status, "12", &code);
    if (st != want || code != want_code)
        fail_msg("state of (%d) '%s': want %d/%d, got %d/%d", status, out, want, want_code, st,
                 code);
}

static void test_states(void **unused)
{
    (void)unused;
    cpar_config_t *cfg = NULL;
    cpar_plughost_t *host = bare_host(&cfg);
    cpar_plugin_inst_t *pbs, *lsf, *condor;
    const cpar_batch_system_t *b;
    const int U = CPAR_EXIT_UNKNOWN;

    b = batch_of(host, "pbs", &pbs);
    expect_state(b, "Job Id: 12.server\n    Job_Name = ipengine\n    job_state = Q\n", 0,
                 CPAR_JOB_PENDING, U);
    expect_state(b, "Job Id: 12.server\n    job_state = R\n    queue = batch\n", 0,
                 CPAR_JOB_RUNNING, U);
    expect_state(b, "Job Id: 12.server\n    job_state = C\n    exit_status = 3\n", 0, CPAR_JOB_DONE,
                 3);
    expect_state(b, "Job Id: 12.server\n    job_state = F\n    Exit_status = 0\n", 0, CPAR_JOB_DONE,
                 0);
    expect_state(b,
                 "Job ID                    Name             User            Time Use S Queue\n"
                 "------------------------- ---------------- --------------- -------- - -----\n"
                 "12.server                 ipengine         me              00:00:01 R batch\n",
                 0, CPAR_JOB_RUNNING, U);
    expect_state(b, "", 153, CPAR_JOB_DONE, U); /* Unknown Job Id (on stderr) */
    expect_state(b, "", 35, CPAR_JOB_DONE, U);  /* PBS Pro: finished, use -x */
    expect_state(b, "", 1, CPAR_JOB_UNKNOWN, U);

    b = batch_of(host, "lsf", &lsf);
    expect_state(b, "PEND\n", 0, CPAR_JOB_PENDING, U);
    expect_state(b, "RUN\nPEND\nDONE\n", 0, CPAR_JOB_RUNNING, U);
    expect_state(b, "DONE\nDONE\n", 0, CPAR_JOB_DONE, 0);
    expect_state(b, "DONE\nEXIT\n", 0, CPAR_JOB_DONE, U);
    expect_state(b, "Job <12> is not found\n", 255, CPAR_JOB_DONE, U);
    expect_state(b, "", 255, CPAR_JOB_UNKNOWN, U);

    b = batch_of(host, "htcondor", &condor);
    expect_state(b, "1 undefined\n1 undefined\n", 0, CPAR_JOB_PENDING, U);
    expect_state(b, "2 undefined\n1 undefined\n", 0, CPAR_JOB_RUNNING, U);
    expect_state(b, "5 undefined\n", 0, CPAR_JOB_PENDING, U);
    expect_state(b, "4 0\n4 0\n", 0, CPAR_JOB_DONE, 0);
    expect_state(b, "4 0\n4 2\n", 0, CPAR_JOB_DONE, U);
    expect_state(b, "3 undefined\n", 0, CPAR_JOB_DONE, U);
    expect_state(b, "", 0, CPAR_JOB_DONE, U);
    expect_state(b, "", 1, CPAR_JOB_UNKNOWN, U);

    free_bare_host(host, cfg, pbs, lsf, condor);
}

/* ---- whole jobs through the shims ---------------------------------------------------------- */

typedef struct life_case {
    const char *plugin;
    int can_signal;
    const char *ran; /* what the first task printed starts with this */
} life_case_t;

static void life_cycle(const life_case_t *c)
{
    fixture_t fx;
    open_launcher(&fx, c->plugin, CPAR_ROLE_ENGINES, NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2);
    if (!strcmp(c->plugin, "winhpc"))
        spec.program_args = winhpc_args;
    char *id = NULL;
    cpar_launch_job_t *job = start_ok(&fx, &spec, &id);

    int code = 0;
    cpar_job_state_t st = poll_until(job, CPAR_JOB_RUNNING, 5, &code);
    assert_int_equal(st, CPAR_JOB_RUNNING);
    for (int task = 1; task <= 2; task++) {
        char *out = task_output(&fx, id, task);
        if (strncmp(out, c->ran, strlen(c->ran)))
            fail_msg("%s task %d printed '%s', want '%s...'", c->plugin, task, out, c->ran);
        free(out);
    }

    int rc = cpar_launch_signal(job, SIGCONT);
    if (c->can_signal) {
        if (rc)
            fail_msg("signal: %s: %s", cpar_err_name(rc), cpar_launcher_error(fx.lt.l));
    } else {
        assert_int_not_equal(rc, 0);
        assert_true(strlen(cpar_launcher_error(fx.lt.l)) > 0);
    }

    char *saved = NULL;
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    json_t *j = json_loads(saved, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "job_id")), id);
    json_decref(j);

    char *stop_json = NULL;
    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    assert_non_null(stop_json);
    assert_non_null(strstr(stop_json, id));
    free(stop_json);
    st = poll_until(job, CPAR_JOB_DONE, 10, &code);
    assert_int_equal(st, CPAR_JOB_DONE);
    cpar_launch_release(job);

    /* Another process finds it again from the cluster file: gone. */
    cpar_launch_job_t *again = NULL;
    rc = cpar_launch_restore(fx.lt.l, &spec, saved, &again);
    if (rc == 0) {
        st = poll_until(again, CPAR_JOB_DONE, 2, &code);
        assert_int_equal(st, CPAR_JOB_DONE);
        cpar_launch_release(again);
    } else {
        assert_int_equal(rc, CPAR_ENOENT);
    }
    free(saved);
    free(id);
    close_launcher(&fx);
}

/* One test per case, named test_life_<plugin> (main's LIFE_TEST). */
static life_case_t life_pbs = {"pbs", 1,
                               "python3 -m ipyparallel.engine --profile-dir /prof/profile_default"};
static life_case_t life_lsf = {"lsf", 1,
                               "python3 -m ipyparallel.engine --profile-dir /prof/profile_default"};
static life_case_t life_htcondor = {"htcondor", 0, "ipengine --profile-dir /prof/profile_default"};
static life_case_t life_winhpc = {"winhpc", 0,
                                  "ipengine --log-level=40 --profile-dir /prof/profile_default"};

static void test_life(void **state)
{
    life_cycle(*state);
}

/* Windows HPC states from `job view`, through a `job` that prints the State line it is told. */
static void test_winhpc_states(void **unused)
{
    (void)unused;
    static const struct {
        const char *state;
        cpar_job_state_t want;
        int code;
    } cases[] = {
        {"Configuring", CPAR_JOB_PENDING, CPAR_EXIT_UNKNOWN},
        {"Queued", CPAR_JOB_PENDING, CPAR_EXIT_UNKNOWN},
        {"Running", CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN},
        {"Finishing", CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN},
        {"Finished", CPAR_JOB_DONE, 0},
        {"Failed", CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN},
        {"Canceled", CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN},
        {"Bogus", CPAR_JOB_UNKNOWN, CPAR_EXIT_UNKNOWN},
    };
    char *dir = lt_fresh_dir("winhpc-states");
    char script[600], statefile[600], setting[700];
    snprintf(script, sizeof script, "%s/job", dir);
    snprintf(statefile, sizeof statefile, "%s/state", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f,
            "#!/bin/sh\n"
            "case $1 in\n"
            "submit) echo 'Job has been submitted. ID: 77.' ;;\n"
            "view) echo 'Job ID                    : 77'; "
            "echo \"State                     : $(cat '%s')\" ;;\n"
            "cancel) echo 'Job 77 has been canceled.' ;;\n"
            "esac\n",
            statefile);
    fclose(f);
    assert_int_equal(chmod(script, 0755), 0);
    snprintf(setting, sizeof setting, "\"%s\"", script);

    fixture_t fx;
    open_launcher(&fx, "winhpc", CPAR_ROLE_ENGINES, "WindowsHPCLauncher.job_cmd", setting, NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 1);
    char *id = NULL;
    cpar_launch_job_t *job = start_ok(&fx, &spec, &id);
    assert_string_equal(id, "77");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = fopen(statefile, "w");
        assert_non_null(f);
        fprintf(f, "%s\n", cases[i].state);
        fclose(f);
        cpar_job_state_t st;
        int code = 12345;
        char *detail = NULL;
        assert_int_equal(cpar_launch_poll(job, &st, &code, &detail), 0);
        if (st != cases[i].want || code != cases[i].code)
            fail_msg("job view State %s: want %d/%d, got %d/%d (%s)", cases[i].state, cases[i].want,
                     cases[i].code, st, code, detail ? detail : "");
        free(detail);
    }
    assert_int_equal(cpar_launch_stop(job, NULL), 0);
    cpar_launch_release(job);
    free(id);
    free(dir);
    close_launcher(&fx);
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void test_unknown_variable(void **unused)
{
    (void)unused;
    static const char *const plugins[] = {"pbs", "lsf", "htcondor"};
    static const char *const sections[] = {"PBSEngineSetLauncher.batch_template",
                                           "LSFEngineSetLauncher.batch_template",
                                           "HTCondorEngineSetLauncher.batch_template"};
    for (int i = 0; i < 3; i++) {
        fixture_t fx;
        open_launcher(&fx, plugins[i], CPAR_ROLE_ENGINES, sections[i],
                      "\"#!/bin/sh\\n#X walltime={wall_time}\\n{program_and_args}\\n\"", NULL);
        cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2);
        cpar_launch_job_t *job = NULL;
        char *start_json = NULL;
        int rc = cpar_launch_start(fx.lt.l, &spec, &job, &start_json);
        assert_int_equal(rc, CPAR_EINVAL);
        assert_null(job);
        const char *err = cpar_launcher_error(fx.lt.l);
        if (!strstr(err, "wall_time") || strchr(err, '\n'))
            fail_msg("%s: want one line naming wall_time, got '%s'", plugins[i], err);
        assert_int_equal(jobs_submitted(&fx), 0);
        free(start_json);
        close_launcher(&fx);
    }
}

static void test_submit_fails(void **unused)
{
    (void)unused;
    static const char *const plugins[] = {"pbs", "lsf", "htcondor", "winhpc"};
    for (int i = 0; i < 4; i++) {
        fixture_t fx;
        open_launcher(&fx, plugins[i], CPAR_ROLE_ENGINES, NULL);
        setenv("CPAR_SHIM_FAIL", "shim: Job rejected by all possible destinations (queue q9)", 1);
        cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2);
        cpar_launch_job_t *job = NULL;
        char *start_json = NULL;
        int rc = cpar_launch_start(fx.lt.l, &spec, &job, &start_json);
        unsetenv("CPAR_SHIM_FAIL");
        assert_int_equal(rc, CPAR_EIO);
        assert_null(job);
        const char *err = cpar_launcher_error(fx.lt.l);
        if (!strstr(err, "Job rejected by all possible destinations (queue q9)"))
            fail_msg("%s: the submit command's message is not shown: '%s'", plugins[i], err);
        free(start_json);
        close_launcher(&fx);
    }
}

static void test_missing_command(void **unused)
{
    (void)unused;
    fixture_t fx;
    open_launcher(&fx, "pbs", CPAR_ROLE_ENGINES, "PBSLauncher.submit_command",
                  "[\"qsub-not-installed\"]", NULL);
    cpar_launch_spec_t spec = make_spec(&fx, CPAR_ROLE_ENGINES, 2);
    cpar_launch_job_t *job = NULL;
    char *start_json = NULL;
    int rc = cpar_launch_start(fx.lt.l, &spec, &job, &start_json);
    assert_int_equal(rc, CPAR_ENOENT);
    assert_non_null(strstr(cpar_launcher_error(fx.lt.l), "qsub-not-installed"));
    free(start_json);
    close_launcher(&fx);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* Kill what the shims started and a failed test left running: every task.<i>.pid's group. */
static void kill_leftovers(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        size_t len = strlen(e->d_name);
        if (!strncmp(e->d_name, "task.", 5) && len > 4 && !strcmp(e->d_name + len - 4, ".pid")) {
            char *pid = lt_slurp(sub), proc[64];
            int p = pid ? atoi(pid) : 0;
            free(pid);
            /* only our shim's task wrapper, whose command line names its task file */
            snprintf(proc, sizeof proc, "/proc/%d/cmdline", p);
            FILE *f = p > 1 ? fopen(proc, "rb") : NULL;
            char cmd[4096] = "";
            size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
            if (f)
                fclose(f);
            for (size_t i = 0; i < n; i++)
                if (!cmd[i])
                    cmd[i] = ' ';
            cmd[n] = '\0';
            if (n && strstr(cmd, lt_tmp))
                kill(-p, SIGKILL);
        } else if (depth < 4) {
            kill_leftovers(sub, depth + 1);
        }
    }
    closedir(d);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <shims dir> <golden dir>\n", argv[0]);
        return 2;
    }
    /* Absolute, since the shims run jobs in other directories with this PATH. */
    static char shims[4096], golden[4096];
    if (!realpath(argv[1], shims) || !realpath(argv[2], golden)) {
        perror(argv[1]);
        return 2;
    }
    g_shims = shims;
    g_golden = golden;
    /* Every system's shims and the stand-in programs, ahead of the real PATH. */
    const char *path = getenv("PATH");
    size_t n = strlen(g_shims) * 5 + (path ? strlen(path) : 0) + 128;
    char *newpath = malloc(n);
    snprintf(newpath, n, "%s/pbs:%s/lsf:%s/htcondor:%s/winhpc:%s/programs:%s", g_shims, g_shims,
             g_shims, g_shims, g_shims, path ? path : "/usr/bin:/bin");
    setenv("PATH", newpath, 1);
    free(newpath);
    unsetenv("CPAR_SHIM_FAIL");
    const char *tmp = getenv("TMPDIR");
    snprintf(lt_tmp, sizeof lt_tmp, "%s/cpar-launcher-shims-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(lt_tmp)) {
        perror("mkdtemp");
        return 2;
    }

    /* clang-format off */
#define LIFE_TEST(p) {"test_life_" #p, test_life, NULL, NULL, &life_##p}
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_ids),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_golden_scripts),
        cmocka_unit_test(test_golden_winhpc),
        LIFE_TEST(pbs),
        LIFE_TEST(lsf),
        LIFE_TEST(htcondor),
        LIFE_TEST(winhpc),
        cmocka_unit_test(test_winhpc_states),
        cmocka_unit_test(test_unknown_variable),
        cmocka_unit_test(test_submit_fails),
        cmocka_unit_test(test_missing_command),
    };
    /* clang-format on */
    int failed = cmocka_run_group_tests_name("launcher_shims", tests, NULL, NULL);
    kill_leftovers(lt_tmp, 0);
    if (!failed)
        remove_tree(lt_tmp);
    else
        fprintf(stderr, "work directories kept in %s\n", lt_tmp);
    return failed;
}
