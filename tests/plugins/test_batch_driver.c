/*
 * test_batch_driver.c - the host's batch driver (plugins/batch.c) through the front, with the
 * fakebatch fixture and commands replaced by settings: template choice and ipyparallel 7.1's
 * patching order, user templates left alone, the template variables and namespace, an unknown
 * variable (nothing submitted), a failing submit (the scheduler's message shown), a job id that
 * cannot be found, the saved state, and a delete that fails.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "config/config.h"
#include "plugins/host.h"
#include "plugins/launch.h"

#define SECTION "FakeBatchEngineSetLauncher"

static char bd_dir[] = "/tmp/cpar-batch-XXXXXX";

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_launcher_h *l;
    cpar_launch_spec_t spec;
} fixture_t;

static const char *const bd_program[] = {"/usr/bin/python3", "-m", "ipyparallel.engine", NULL};
static const char *const bd_args[] = {"--profile-dir", "/p d", "--cluster-id", "", NULL};
static const char *const bd_env[] = {NULL};

static void bd_set(fixture_t *fx, const char *key, const char *json)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);

    assert_non_null(v);
    assert_int_equal(cpar_config_set(fx->cfg, SECTION, key, v, CPAR_SRC_CLI, "test"), 0);
}

static int bd_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    cpar_plughost_info_t info = {.program = "cpcluster", .profile_dir = bd_dir};
    char err[1024];
    char marker[256];

    assert_non_null(fx);
    fx->cfg = cpar_config_new();
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, NULL, &info), 0);
    if (cpar_launcher_open(fx->host, "fakebatch", CPAR_ROLE_ENGINES, &fx->l, err, sizeof err))
        fail_msg("%s", err);
    fx->spec = (cpar_launch_spec_t){.role = CPAR_ROLE_ENGINES,
                                    .n = 2,
                                    .profile_dir = bd_dir,
                                    .cluster_id = "",
                                    .engine_set_id = "99",
                                    .work_dir = bd_dir,
                                    .identifier = "ipengine-99",
                                    .program = bd_program,
                                    .program_args = bd_args,
                                    .env = bd_env,
                                    .sections = cpar_launcher_sections(fx->l, CPAR_ROLE_ENGINES)};
    /* Harmless commands: submit prints an id, delete succeeds, poll says running. */
    bd_set(fx, "submit_command", "[\"echo\", \"Submitted batch job 77\"]");
    bd_set(fx, "delete_command", "[\"true\"]");
    bd_set(fx, "poll_command", "[\"echo\", \"RUNNING\"]");
    snprintf(marker, sizeof marker, "%s/fakebatch_engines", bd_dir);
    unlink(marker);
    *state = fx;
    return 0;
}

static int bd_teardown(void **state)
{
    fixture_t *fx = *state;

    cpar_launcher_close(fx->host, fx->l);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

static char *bd_read(const char *name)
{
    char path[256], *buf = calloc(1, 65536);
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", bd_dir, name);
    f = fopen(path, "r");
    if (!f) {
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static cpar_launch_job_t *bd_start_ok(fixture_t *fx)
{
    cpar_launch_job_t *job = NULL;
    char *sj = NULL;
    int rc = cpar_launch_start(fx->l, &fx->spec, &job, &sj);

    if (rc)
        fail_msg("start: %s: %s", cpar_err_name(rc), cpar_launcher_error(fx->l));
    assert_string_equal(sj, "{\"job_id\":\"77\"}");
    free(sj);
    return job;
}

/* The default template, patched in 7.1's order: the last insert ends up first. */
static void test_default_template_patched(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job;
    char *script, *saved = NULL;
    struct stat st;
    json_t *o;

    bd_set(fx, "queue", "\"q1\"");
    bd_set(fx, "account", "\"acct\"");
    job = bd_start_ok(fx);
    script = bd_read("fakebatch_engines");
    assert_non_null(script);
    assert_string_equal(script, "#!/bin/sh\n"
                                "#FAKE --array=1-2\n"
                                "#FAKE --account=acct\n"
                                "#FAKE --queue=q1\n"
                                "# fake engine job\n"
                                "i=0\n"
                                "while [ $i -lt 2 ]; do\n"
                                "    /usr/bin/python3 -m ipyparallel.engine --profile-dir '/p d' "
                                "--cluster-id '' &\n"
                                "    i=$((i + 1))\n"
                                "done\n"
                                "wait\n");
    free(script);
    {
        char path[256];
        snprintf(path, sizeof path, "%s/fakebatch_engines", bd_dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    o = json_loads(saved, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "job_id")), "77");
    assert_string_equal(json_string_value(json_object_get(o, "queue")), "q1");
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 2);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    /* the patched template, before rendering, as 7.1 stores it */
    assert_non_null(strstr(json_string_value(json_object_get(o, "batch_template")),
                           "#!/bin/sh\n#FAKE --array=1-{n}\n#FAKE --account={account}\n"));
    json_decref(o);
    free(saved);
    assert_int_equal(cpar_launch_stop(job, NULL), 0);
    cpar_launch_release(job);
}

/* A user's template is rendered as it is; namespace entries override built-in variables. */
static void test_user_template(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job;
    char *script;

    bd_set(fx, "queue", "\"q1\"");
    bd_set(fx, "batch_template",
           "\"#!/bin/sh\\n#X {n} {queue} {wall_time} {n//2} {program_args}\\n\"");
    bd_set(fx, "namespace", "{\"wall_time\": \"1:00\", \"queue\": \"over\"}");
    bd_set(fx, "batch_file_name", "\"my_job\"");
    job = bd_start_ok(fx);
    script = bd_read("my_job");
    assert_non_null(script);
    assert_string_equal(script,
                        "#!/bin/sh\n#X 2 over 1:00 1 --profile-dir '/p d' --cluster-id ''\n");
    free(script);
    cpar_launch_release(job);
}

/* An unknown variable: a one-line error naming it, nothing submitted. */
static void test_unknown_variable(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job = NULL;
    char marker[300], cmd[400];

    snprintf(marker, sizeof marker, "%s/submitted", bd_dir);
    unlink(marker);
    snprintf(cmd, sizeof cmd, "[\"sh\", \"-c\", \"touch %s; echo 5\", \"sh\"]", marker);
    bd_set(fx, "submit_command", cmd);
    bd_set(fx, "batch_template", "\"#!/bin/sh\\n#SBATCH --time={wall_time}\\n\"");
    assert_int_equal(cpar_launch_start(fx->l, &fx->spec, &job, NULL), CPAR_EINVAL);
    assert_null(job);
    assert_non_null(strstr(cpar_launcher_error(fx->l), "unknown template variable 'wall_time'"));
    assert_null(strchr(cpar_launcher_error(fx->l), '\n'));
    assert_int_not_equal(access(marker, F_OK), 0);
}

static void test_submit_fails(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job = NULL;

    bd_set(fx, "submit_command",
           "[\"sh\", \"-c\", \"echo 'sbatch: error: invalid partition' >&2; exit 1\", \"sh\"]");
    assert_int_equal(cpar_launch_start(fx->l, &fx->spec, &job, NULL), CPAR_EIO);
    assert_non_null(strstr(cpar_launcher_error(fx->l), "invalid partition"));

    bd_set(fx, "submit_command", "[\"sh\", \"-c\", \"echo nothing here\", \"sh\"]");
    assert_int_equal(cpar_launch_start(fx->l, &fx->spec, &job, NULL), CPAR_EIO);
    assert_non_null(
        strstr(cpar_launcher_error(fx->l), "Job id couldn't be determined: nothing here"));

    bd_set(fx, "submit_command", "[\"cpar-no-such-submit\"]");
    assert_int_equal(cpar_launch_start(fx->l, &fx->spec, &job, NULL), CPAR_ENOENT);
    assert_non_null(strstr(cpar_launcher_error(fx->l), "cpar-no-such-submit"));
    assert_null(job);
}

/* A job id in a group, and $ before the final newline (HTCondor's submit output). */
static void test_job_id_group(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job = NULL;
    char *sj = NULL;

    bd_set(fx, "submit_command",
           "[\"sh\", \"-c\", \"echo 'Submitting job(s).'; echo '1 job(s) submitted to cluster "
           "6923.'\", \"sh\"]");
    bd_set(fx, "job_id_regexp", "\"(\\\\d+)\\\\.$\"");
    bd_set(fx, "job_id_regexp_group", "1");
    assert_int_equal(cpar_launch_start(fx->l, &fx->spec, &job, &sj), 0);
    assert_string_equal(sj, "{\"job_id\":\"6923\"}");
    free(sj);
    cpar_launch_release(job);
}

/* A delete that fails while the job still runs is reported, not hidden. */
static void test_delete_fails(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_job_t *job;

    bd_set(fx, "delete_command",
           "[\"sh\", \"-c\", \"echo 'qdel: permission denied' >&2; exit 1\","
           " \"sh\"]");
    job = bd_start_ok(fx);
    assert_int_equal(cpar_launch_stop(job, NULL), CPAR_EIO);
    assert_non_null(strstr(cpar_launcher_error(fx->l), "permission denied"));
    cpar_launch_release(job);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_template_patched, bd_setup, bd_teardown),
        cmocka_unit_test_setup_teardown(test_user_template, bd_setup, bd_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_variable, bd_setup, bd_teardown),
        cmocka_unit_test_setup_teardown(test_submit_fails, bd_setup, bd_teardown),
        cmocka_unit_test_setup_teardown(test_job_id_group, bd_setup, bd_teardown),
        cmocka_unit_test_setup_teardown(test_delete_fails, bd_setup, bd_teardown),
    };
    char cmd[128];
    int failed;

    if (!mkdtemp(bd_dir)) {
        perror("mkdtemp");
        return 2;
    }
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bd_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bd_dir);
    return failed;
}
