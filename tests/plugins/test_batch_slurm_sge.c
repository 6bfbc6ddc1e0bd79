/*
 * test_batch_slurm_sge.c - the slurm and sge launcher descriptors through the real plugin host:
 *
 *   - job ids from the submit outputs recorded on real Slurm 22.05 and Grid Engine 8.1.9 (and the
 *     documented forms), parsed with each descriptor's regex by host->regex_search;
 *   - the "already there" regexes of the inserted #SBATCH / #$ lines;
 *   - parse_state on recorded squeue and qstat outputs;
 *   - the default scripts rendered by the host's batch driver (a start whose submit command only
 *     prints a job id), byte for byte against ipyparallel 7.1's own rendering in
 *     tests/golden/launchers (tests/support/render_ipp_templates.py).
 *
 * CPAR_PLUGIN_PATH must reach the launchers and the hostprobe fixture; CPAR_GOLDEN_DIR names the
 * golden files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <cparallel/launcher.h>

#include "config/config.h"
#include "plugins/host.h"
#include "plugins/launch.h"

#include "launchtest.h"

typedef struct probe_state {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} probe_state_t;

typedef struct fx {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_plugin_inst_t *probe, *slurm, *sge;
} fx_t;

static char profile_dir[] = "/tmp/cpar-batch-test-XXXXXX";

static cpar_plughost_t *new_host(cpar_config_t *cfg)
{
    cpar_plughost_info_t info = {.program = "cpcluster",
                                 .profile_dir = profile_dir,
                                 .cluster_id = "abc",
                                 .session = "test"};
    cpar_plughost_t *h = NULL;
    assert_int_equal(cpar_plughost_new(&h, cfg, NULL, &info), 0);
    return h;
}

static cpar_plugin_inst_t *load(cpar_plughost_t *h, const char *name)
{
    cpar_plugin_inst_t *inst = NULL;
    char err[1024];
    int rc = cpar_plughost_load(h, CPAR_KIND_LAUNCHER, name, &inst, err, sizeof err);
    if (rc)
        fail_msg("loading launcher %s: %s: %s", name, cpar_err_name(rc), err);
    return inst;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->cfg = cpar_config_new();
    assert_non_null(fx->cfg);
    fx->host = new_host(fx->cfg);
    fx->probe = load(fx->host, "hostprobe");
    fx->slurm = load(fx->host, "slurm");
    fx->sge = load(fx->host, "sge");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    cpar_plughost_unload(fx->host, fx->sge);
    cpar_plughost_unload(fx->host, fx->slurm);
    cpar_plughost_unload(fx->host, fx->probe);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

static const cpar_batch_system_t *batch_of(cpar_plugin_inst_t *inst)
{
    const cpar_launcher_t *l = (const cpar_launcher_t *)cpar_plugin_desc(inst);
    assert_non_null(l->batch);
    return l->batch;
}

/* host->regex_search(pattern, text) group `group`, or NULL when nothing matches. */
static char *search(fx_t *fx, const char *pattern, const char *text, int group)
{
    const probe_state_t *p = cpar_plugin_state(fx->probe);
    char *m = NULL;
    int rc = p->host->regex_search(p->ctx, pattern, text, group, &m);
    if (rc == CPAR_ENOENT)
        return NULL;
    if (rc)
        fail_msg("regex_search(%s): %s", pattern, cpar_err_name(rc));
    return m;
}

static void expect_id(fx_t *fx, cpar_plugin_inst_t *inst, const char *out, const char *id)
{
    const cpar_batch_system_t *b = batch_of(inst);
    const probe_state_t *p = cpar_plugin_state(fx->probe);
    char *m = search(fx, b->job_id_regexp, out, b->job_id_group);
    if (!id) {
        if (m)
            fail_msg("job id '%s' found in '%s', expected none", m, out);
        return;
    }
    if (!m)
        fail_msg("no job id in '%s', expected %s", out, id);
    assert_string_equal(m, id);
    p->host->free(m);
}

/* ---- descriptors --------------------------------------------------------------------------- */

static void test_descriptors(void **state)
{
    fx_t *fx = *state;
    const cpar_launcher_t *slurm = (const cpar_launcher_t *)cpar_plugin_desc(fx->slurm);
    const cpar_launcher_t *sge = (const cpar_launcher_t *)cpar_plugin_desc(fx->sge);

    assert_int_equal(slurm->base.kind, CPAR_KIND_LAUNCHER);
    assert_int_equal(slurm->roles, CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES);
    assert_int_equal(sge->roles, CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES);
    assert_string_equal(slurm->engine_sections[0], "SlurmEngineSetLauncher");
    assert_string_equal(slurm->controller_sections[0], "SlurmControllerLauncher");
    assert_string_equal(sge->engine_sections[0], "SGEEngineSetLauncher");
    /* SGE reads PBSLauncher's settings too, as SGELauncher derives from it in ipyparallel */
    assert_string_equal(sge->engine_sections[2], "PBSLauncher");
    assert_string_equal(batch_of(fx->slurm)->submit_command[0], "sbatch");
    assert_string_equal(batch_of(fx->slurm)->delete_command[0], "scancel");
    assert_string_equal(batch_of(fx->slurm)->signal_command[1], "-s");
    assert_string_equal(batch_of(fx->sge)->submit_command[0], "qsub");
    assert_string_equal(batch_of(fx->sge)->delete_command[0], "qdel");
    /* Grid Engine has no qsig: no default signal command (7.1's always failed) */
    assert_null(batch_of(fx->sge)->signal_command);
    assert_non_null(batch_of(fx->slurm)->parse_state);
    assert_non_null(batch_of(fx->sge)->parse_state);
    assert_string_equal(cpar_launch_plugin_name("SlurmEngineSetLauncher"), "slurm");
    assert_string_equal(cpar_launch_plugin_name("ipyparallel.cluster.launcher.SGEControllerLauncher"),
                        "sge");
}

/* ---- job ids (launchers.md section 13; the Slurm and SGE lines were recorded on real beds) ---- */

static void test_job_ids(void **state)
{
    fx_t *fx = *state;

    expect_id(fx, fx->slurm, "Submitted batch job 2\n", "2");
    expect_id(fx, fx->slurm, "Submitted batch job 1795\n", "1795");
    expect_id(fx, fx->slurm, "2\n", "2");             /* sbatch --parsable */
    expect_id(fx, fx->slurm, "2;ipptest\n", "2");     /* --parsable on a named cluster */
    expect_id(fx, fx->slurm, "", NULL);
    expect_id(fx, fx->slurm, "sbatch: error: Batch job submission failed: Invalid partition name "
                             "specified\n", NULL);

    expect_id(fx, fx->sge, "Your job-array 6.1-2:1 (\"ipengine\") has been submitted\n", "6");
    expect_id(fx, fx->sge, "Your job 7 (\"x\") has been submitted\n", "7");
    expect_id(fx, fx->sge, "5.1-2:1\n", "5"); /* qsub -terse */
    expect_id(fx, fx->sge, "", NULL);
}

/* ---- the regexes that keep a line from being inserted twice -------------------------------- */

static const cpar_batch_option_t *option(cpar_plugin_inst_t *inst, const char *setting)
{
    const cpar_batch_system_t *b = batch_of(inst);
    for (size_t i = 0; i < b->n_options; i++)
        if (strcmp(b->options[i].setting, setting) == 0)
            return &b->options[i];
    fail_msg("no option %s", setting);
    return NULL;
}

static void expect_present(fx_t *fx, const char *pattern, const char *text, int yes)
{
    const probe_state_t *p = cpar_plugin_state(fx->probe);
    char *m = search(fx, pattern, text, 0);
    if (yes && !m)
        fail_msg("'%s' does not find a line in:\n%s", pattern, text);
    if (!yes && m)
        fail_msg("'%s' finds '%s' in:\n%s", pattern, m, text);
    p->host->free(m);
}

static void test_present_regexes(void **state)
{
    fx_t *fx = *state;
    const cpar_batch_system_t *slurm = batch_of(fx->slurm), *sge = batch_of(fx->sge);

    /* Slurm: the order of insertion is ipyparallel 7.1's */
    assert_int_equal(slurm->n_options, 4);
    assert_string_equal(slurm->options[0].setting, "queue");
    assert_string_equal(slurm->options[3].setting, "timelimit");
    expect_present(fx, option(fx->slurm, "queue")->present, "#!/bin/sh\n#SBATCH --partition=debug\n", 1);
    expect_present(fx, option(fx->slurm, "queue")->present, "#!/bin/sh\n#SBATCH -p debug\n", 1);
    expect_present(fx, option(fx->slurm, "queue")->present, slurm->engine_template, 0);
    expect_present(fx, option(fx->slurm, "account")->present, "#SBATCH --account=a1\n", 1);
    expect_present(fx, option(fx->slurm, "account")->present, "#SBATCH -A a1\n", 1);
    expect_present(fx, option(fx->slurm, "qos")->present, "#SBATCH --qos=high\n", 1);
    expect_present(fx, option(fx->slurm, "timelimit")->present, "#SBATCH --time=10:00\n", 1);
    expect_present(fx, option(fx->slurm, "timelimit")->present, "#SBATCH -t 10\n", 1);
    /* the controller's --ntasks=1 matches through the -n branch: nothing is inserted there */
    expect_present(fx, slurm->array->present, slurm->controller_template, 1);
    expect_present(fx, slurm->array->present, slurm->engine_template, 0);
    expect_present(fx, slurm->array->present, "#SBATCH --ntasks=4\n", 1);
    expect_present(fx, slurm->array->present, "#SBATCH -n 4\n", 0); /* as 7.1: -n needs no blank */

    expect_present(fx, option(fx->sge, "queue")->present, "#$ -q all.q\n", 1);
    expect_present(fx, option(fx->sge, "queue")->present, sge->engine_template, 0);
    expect_present(fx, sge->array->present, "#$ -V\n#$ -t 1-4\n", 1);
    expect_present(fx, sge->array->present, sge->engine_template, 0);
    expect_present(fx, sge->array->present, sge->controller_template, 0);
}

/* ---- parse_state on recorded outputs ------------------------------------------------------- */

static void expect_state(cpar_plugin_inst_t *inst, const char *out, int status,
                         cpar_job_state_t want, int want_code)
{
    int code = 12345;
    cpar_job_state_t st = batch_of(inst)->parse_state(out, status, "3", &code);
    if (st != want)
        fail_msg("state %d for (status %d) '%s', expected %d", st, status, out, want);
    assert_int_equal(code, want_code);
}

/* `qstat -j 4` while both tasks of a held array wait (trimmed; SGE 8.1.9) */
static const char sge_pending[] =
    "==============================================================\n"
    "job_number:                 4\n"
    "exec_file:                  job_scripts/4\n"
    "owner:                      root\n"
    "job_name:                   s.sh\n"
    "job-array tasks:            1-2:1\n"
    "scheduling info:            Job is in hold state\n";
/* the same once both run */
static const char sge_running[] =
    "==============================================================\n"
    "job_number:                 4\n"
    "exec_file:                  job_scripts/4\n"
    "job-array tasks:            1-2:1\n"
    "usage         1:            cpu=00:00:00, mem=0.00000 GB s, io=0.00000 GB, vmem=N/A, "
    "maxvmem=N/A\n"
    "usage         2:            cpu=00:00:00, mem=0.00000 GB s, io=0.00004 GB, vmem=3.438M, "
    "maxvmem=3.438M\n"
    "scheduling info:            There are no messages available\n";

static void test_parse_state(void **state)
{
    fx_t *fx = *state;

    /* squeue -h -t all -o %T -j <id> 2>&1 (recorded on Slurm 22.05) */
    expect_state(fx->slurm, "PENDING\n", 0, CPAR_JOB_PENDING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "RUNNING\n", 0, CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "COMPLETING\n", 0, CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "COMPLETED\n", 0, CPAR_JOB_DONE, 0);
    expect_state(fx->slurm, "CANCELLED\n", 0, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "FAILED\n", 0, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "TIMEOUT\n", 0, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "", 0, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "COMPLETED\nRUNNING\n", 0, CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "CANCELLED+\n", 0, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    /* the poll command merges stderr: a warning line is not a state */
    expect_state(fx->slurm, "squeue: warning: something odd\nRUNNING\n", 0, CPAR_JOB_RUNNING,
                 CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm, "slurm_load_jobs error: Invalid job id specified\n", 1, CPAR_JOB_DONE,
                 CPAR_EXIT_UNKNOWN);
    expect_state(fx->slurm,
                 "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
                 1, CPAR_JOB_UNKNOWN, CPAR_EXIT_UNKNOWN);

    /* qstat -j <id> 2>&1 (recorded on Grid Engine 8.1.9) */
    expect_state(fx->sge, sge_pending, 0, CPAR_JOB_PENDING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->sge, sge_running, 0, CPAR_JOB_RUNNING, CPAR_EXIT_UNKNOWN);
    expect_state(fx->sge, "Following jobs do not exist: \n3\n", 1, CPAR_JOB_DONE,
                 CPAR_EXIT_UNKNOWN);
    expect_state(fx->sge, "", 1, CPAR_JOB_DONE, CPAR_EXIT_UNKNOWN);
    expect_state(fx->sge,
                 "error: commlib error: got select error (Connection refused)\n"
                 "unable to contact qmaster using port 6444 on host \"vm\"\n",
                 1, CPAR_JOB_UNKNOWN, CPAR_EXIT_UNKNOWN);
}

/* ---- the default scripts, rendered by the batch driver, against 7.1's rendering ------------ */

static void set_json(cpar_config_t *cfg, const char *section, const char *key, const char *json)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("bad JSON %s: %s", json, jerr.text);
    assert_int_equal(cpar_config_set(cfg, section, key, v, CPAR_SRC_CLI, "test"), 0);
}

/*
 * Start `plugin` for `role` with a submit command that only prints a job id and a delete
 * command that does nothing, in a fresh work directory; compare the script the driver wrote
 * with the golden file <golden>.txt (or -queue.txt with queue, account, qos and timelimit set).
 */
static void render_and_compare(const char *plugin, cpar_launch_role_t role, const char *golden,
                               int queue)
{
    const char *gdir = getenv("CPAR_GOLDEN_DIR");
    char work[] = "/tmp/cpar-batch-render-XXXXXX", path[4096], err[1024];
    cpar_config_t *cfg = cpar_config_new();
    cpar_launcher_h *l = NULL;
    cpar_launch_job_t *job = NULL;
    char *start_json = NULL, *saved = NULL, *stop_json = NULL;
    const char *section = strcmp(plugin, "slurm") == 0 ? "SlurmLauncher" : "SGELauncher";

    if (!gdir)
        fail_msg("CPAR_GOLDEN_DIR is not set");
    assert_non_null(mkdtemp(work));
    set_json(cfg, section, "submit_command", "[\"echo\", \"Submitted batch job 42\"]");
    set_json(cfg, section, "delete_command", "[\"true\"]");
    if (queue) {
        set_json(cfg, section, "queue", "\"q1\"");
        if (strcmp(plugin, "slurm") == 0) {
            set_json(cfg, section, "account", "\"a1\"");
            set_json(cfg, section, "qos", "\"qos1\"");
            set_json(cfg, section, "timelimit", "\"01:00:00\"");
        }
    }
    cpar_plughost_t *h = new_host(cfg);
    int rc = cpar_launcher_open(h, plugin, role, &l, err, sizeof err);
    if (rc)
        fail_msg("cpar_launcher_open(%s): %s: %s", plugin, cpar_err_name(rc), err);

    int engines = role == CPAR_ROLE_ENGINES;
    const char *const engine_cmd[] = {"python3", "-m", "ipyparallel.engine", NULL};
    const char *const controller_cmd[] = {"python3", "-m", "ipyparallel.controller", NULL};
    const char *const engine_args[] = {"--profile-dir", "/prof/profile_default", "--cluster-id",
                                       "abc", "--log-level=20", NULL};
    const char *const controller_args[] = {"--profile-dir", "/prof/profile_default",
                                           "--cluster-id", "abc", NULL};
    const char *const no_env[] = {NULL};
    cpar_launch_spec_t spec = {
        .role = role,
        .n = engines ? 4 : 1,
        .profile_dir = "/prof/profile_default",
        .cluster_id = "abc",
        .engine_set_id = engines ? "1795693850" : NULL,
        .work_dir = work,
        .identifier = engines ? "ipengine-abc-1795693850-1" : "ipcontroller-abc-1",
        .program = engines ? engine_cmd : controller_cmd,
        .program_args = engines ? engine_args : controller_args,
        .env = no_env,
        .sections = cpar_launcher_sections(l, role),
    };
    rc = cpar_launch_start(l, &spec, &job, &start_json);
    if (rc)
        fail_msg("start %s: %s: %s", golden, cpar_err_name(rc), cpar_launcher_error(l));

    snprintf(path, sizeof path, "%s/%s", work,
             strcmp(plugin, "slurm") == 0 ? (engines ? "slurm_engine.sbatch" : "slurm_controller.sbatch")
                                          : (engines ? "sge_engines" : "sge_controller"));
    char *got = lt_slurp(path);
    if (!got)
        fail_msg("the driver wrote no %s", path);
    char gpath[4096];
    snprintf(gpath, sizeof gpath, "%s/%s%s.txt", gdir, golden, queue ? "-queue" : "");
    char *want = lt_slurp(gpath);
    if (!want)
        fail_msg("no golden file %s", gpath);
    /* reported now, failed after the cleanup below, so that a difference leaks nothing */
    int differs = strcmp(got, want) != 0;
    if (differs)
        print_error("%s differs from %s\n---- rendered:\n%s---- golden:\n%s", path, gpath, got,
                    want);

    /* the job id was parsed from the submit output and is saved as ipyparallel's to_dict does */
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    json_error_t jerr;
    json_t *st = json_loads(saved, 0, &jerr);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "job_id")), "42");
    json_decref(st);

    assert_int_equal(cpar_launch_stop(job, &stop_json), 0);
    cpar_launch_release(job);
    free(start_json);
    free(saved);
    free(stop_json);
    free(got);
    free(want);
    unlink(path);
    rmdir(work);
    cpar_launcher_close(h, l);
    cpar_plughost_free(h);
    cpar_config_free(cfg);
    if (differs)
        fail_msg("%s%s.txt: the rendering differs (above)", golden, queue ? "-queue" : "");
}

static void test_golden_slurm(void **state)
{
    (void)state;
    for (int q = 0; q < 2; q++) {
        render_and_compare("slurm", CPAR_ROLE_ENGINES, "SlurmEngineSetLauncher", q);
        render_and_compare("slurm", CPAR_ROLE_CONTROLLER, "SlurmControllerLauncher", q);
    }
}

static void test_golden_sge(void **state)
{
    (void)state;
    for (int q = 0; q < 2; q++) {
        render_and_compare("sge", CPAR_ROLE_ENGINES, "SGEEngineSetLauncher", q);
        render_and_compare("sge", CPAR_ROLE_CONTROLLER, "SGEControllerLauncher", q);
    }
}

int main(void)
{
    if (!mkdtemp(profile_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_present_regexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_state, setup, teardown),
        cmocka_unit_test(test_golden_slurm),
        cmocka_unit_test(test_golden_sge),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(profile_dir);
    return rc;
}
