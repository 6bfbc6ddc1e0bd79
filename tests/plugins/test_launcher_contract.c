/*
 * test_launcher_contract.c - the contract every launcher plugin passes, through the real loader
 * and the core's front (plugins/launch.h):
 *
 *   test_launcher_contract <launcher>
 *
 * descriptor sanity (names resolve to the plugin, sections for each role it supports); then, as
 * an engine set of 2 and as a controller where the role is supported: start a harmless program,
 * poll says running, save gives a JSON object with the cluster-file keys, restore in a fresh
 * handle polls running, signal, stop through the restored handle ends everything (both handles
 * poll done), stopping again is fine, and restoring after the stop is CPAR_ENOENT.
 *
 * Environment:
 *   CPAR_CONTRACT_CONFIG   settings, {"Section": {"trait": value}}
 *   CPAR_CONTRACT_PROGRAM  the program as a JSON list (default ["sleep", "30"])
 *   CPAR_CONTRACT_WAIT     seconds to wait for a job to run or to end (default 30)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "config/config.h"
#include "loop/loop.h"
#include "plugins/host.h"
#include "plugins/launch.h"

#include "contractcfg.h"

static const char *lc_name;
static char lc_dir[] = "/tmp/cpar-lcontract-XXXXXX";
static int lc_wait_s = 30;

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_loop_t *loop;
    cpar_plughost_t *host;
    const cpar_launcher_t *desc; /* of a separately loaded instance */
    cpar_plugin_inst_t *inst;
} fixture_t;

static int lc_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    cpar_plughost_info_t info = {.program = "cpcluster",
                                 .profile_dir = lc_dir,
                                 .cluster_id = "contract",
                                 .session = "contract-session"};
    char err[1024];
    int rc;

    assert_non_null(fx);
    fx->cfg = cpar_config_new();
    assert_non_null(fx->cfg);
    contract_load_config(fx->cfg);
    assert_int_equal(cpar_loop_new(&fx->loop), 0);
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, fx->loop, &info), 0);
    rc = cpar_plughost_load(fx->host, CPAR_KIND_LAUNCHER, lc_name, &fx->inst, err, sizeof err);
    if (rc)
        fail_msg("loading launcher %s: %s: %s", lc_name, cpar_err_name(rc), err);
    fx->desc = (const cpar_launcher_t *)cpar_plugin_desc(fx->inst);
    *state = fx;
    return 0;
}

static void lc_stop_loop(void *arg)
{
    cpar_loop_stop(arg);
}

/* Let the reactor run for `ms`, so that it reaps ended children. */
static void lc_spin(fixture_t *fx, int ms)
{
    cpar_loop_timer_t *t = cpar_loop_timer_start(fx->loop, (uint64_t)ms, 0, lc_stop_loop, fx->loop);

    assert_non_null(t);
    cpar_loop_run(fx->loop);
    cpar_loop_timer_stop(fx->loop, t);
}

static int lc_teardown(void **state)
{
    fixture_t *fx = *state;

    cpar_plughost_unload(fx->host, fx->inst);
    cpar_plughost_free(fx->host);
    cpar_loop_free(fx->loop);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

static void lc_nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- descriptor --------------------------------------------------------------------------- */

static void test_descriptor(void **state)
{
    fixture_t *fx = *state;
    const cpar_launcher_t *d = fx->desc;

    assert_string_equal(d->base.name, lc_name);
    assert_int_equal(d->base.kind, CPAR_KIND_LAUNCHER);
    assert_non_null(d->base.description);
    assert_true((d->roles & ~(unsigned)(CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES)) == 0);
    assert_true(d->roles != 0);
    assert_non_null(d->names);
    assert_non_null(d->names[0]);
    if (d->roles & CPAR_ROLE_CONTROLLER) {
        assert_non_null(d->controller_sections);
        assert_non_null(d->controller_sections[0]);
    }
    if (d->roles & CPAR_ROLE_ENGINES) {
        assert_non_null(d->engine_sections);
        assert_non_null(d->engine_sections[0]);
    }
    /* Every name the plugin answers to opens it, through the front, in any case. */
    for (const char *const *n = d->names; *n; n++) {
        cpar_launch_role_t role =
            (d->roles & CPAR_ROLE_ENGINES) ? CPAR_ROLE_ENGINES : CPAR_ROLE_CONTROLLER;
        cpar_launcher_h *l = NULL;
        char err[1024] = "", lower[128];
        int rc = cpar_launcher_open(fx->host, *n, role, &l, err, sizeof err);

        if (rc)
            fail_msg("cpar_launcher_open(\"%s\"): %s: %s", *n, cpar_err_name(rc), err);
        assert_string_equal(cpar_launcher_name(l), lc_name);
        assert_ptr_equal(cpar_launcher_sections(l, role),
                         role == CPAR_ROLE_ENGINES ? d->engine_sections : d->controller_sections);
        cpar_launcher_close(fx->host, l);

        snprintf(lower, sizeof lower, "%s", *n);
        for (char *p = lower; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        rc = cpar_launcher_open(fx->host, lower, role, &l, err, sizeof err);
        if (rc)
            fail_msg("cpar_launcher_open(\"%s\"): %s: %s", lower, cpar_err_name(rc), err);
        cpar_launcher_close(fx->host, l);
    }
    /* A role it cannot start is refused with a reason. */
    if (d->roles != (CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES)) {
        cpar_launch_role_t missing =
            (d->roles & CPAR_ROLE_ENGINES) ? CPAR_ROLE_CONTROLLER : CPAR_ROLE_ENGINES;
        cpar_launcher_h *l = NULL;
        char err[1024] = "";
        assert_int_equal(cpar_launcher_open(fx->host, lc_name, missing, &l, err, sizeof err),
                         CPAR_ENOTSUP);
        assert_non_null(strstr(err, "cannot start"));
    }
}

/* ---- life cycle --------------------------------------------------------------------------- */

typedef struct lc_spec {
    cpar_launch_spec_t spec;
    const char *program[16];
    char identifier[128];
    json_t *prog_json;
} lc_spec_t;

static const char *const lc_no_args[] = {NULL};
static const char *const lc_env[] = {"CPAR_CONTRACT_RUN=1", NULL};

static void lc_make_spec(lc_spec_t *s, cpar_launcher_h *l, cpar_launch_role_t role, int n)
{
    const char *text = getenv("CPAR_CONTRACT_PROGRAM");

    memset(s, 0, sizeof *s);
    s->program[0] = "sleep";
    s->program[1] = "30";
    if (text && *text) {
        size_t i;
        json_t *w;
        s->prog_json = json_loads(text, 0, NULL);
        if (!json_is_array(s->prog_json) || json_array_size(s->prog_json) >= 15)
            fail_msg("CPAR_CONTRACT_PROGRAM is not a short JSON list");
        json_array_foreach(s->prog_json, i, w) s->program[i] = json_string_value(w);
        s->program[json_array_size(s->prog_json)] = NULL;
    }
    snprintf(s->identifier, sizeof s->identifier, "%s-contract%s-%ld",
             role == CPAR_ROLE_CONTROLLER ? "ipcontroller" : "ipengine",
             role == CPAR_ROLE_CONTROLLER ? "" : "-4242", (long)getpid());
    s->spec.role = role;
    s->spec.n = n;
    s->spec.profile_dir = lc_dir;
    s->spec.cluster_id = "contract";
    s->spec.engine_set_id = role == CPAR_ROLE_CONTROLLER ? NULL : "4242";
    s->spec.work_dir = lc_dir;
    s->spec.identifier = s->identifier;
    s->spec.program = s->program;
    s->spec.program_args = lc_no_args;
    s->spec.env = lc_env;
    s->spec.sections = cpar_launcher_sections(l, role);
}

/* Poll until the job is in `want` (PENDING counts as on the way to RUNNING). */
static void lc_poll_until(cpar_launch_job_t *job, cpar_launcher_h *l, cpar_job_state_t want,
                          const char *what)
{
    cpar_job_state_t st = CPAR_JOB_UNKNOWN;
    int code;

    for (int i = 0; i < lc_wait_s * 10; i++) {
        char *detail = NULL;
        int rc = cpar_launch_poll(job, &st, &code, &detail);
        if (rc)
            fail_msg("%s: poll: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l));
        free(detail);
        if (st == want)
            return;
        if (want == CPAR_JOB_RUNNING && st == CPAR_JOB_DONE)
            fail_msg("%s: the job ended instead of running", what);
        lc_nap_ms(100);
    }
    fail_msg("%s: state %d after %d s, wanted %d", what, (int)st, lc_wait_s, (int)want);
}

static void lc_check_saved(const fixture_t *fx, const char *text, cpar_launch_role_t role, int n)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    static const char *const common[] = {"cluster_id", "profile_dir", "state", NULL};
    static const char *const batch[] = {"job_id",         "n", "queue", "namespace",
                                        "batch_template", NULL};

    if (!json_is_object(o))
        fail_msg("save gave no JSON object: %s: %s", jerr.text, text);
    for (const char *const *k = common; *k; k++)
        if (!json_object_get(o, *k))
            fail_msg("saved state lacks \"%s\": %s", *k, text);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(o, "cluster_id")), "contract");
    assert_string_equal(json_string_value(json_object_get(o, "profile_dir")), lc_dir);
    if (fx->desc->batch) {
        for (const char *const *k = batch; *k; k++)
            if (!json_object_get(o, *k))
                fail_msg("saved batch state lacks \"%s\": %s", *k, text);
        assert_true(json_string_length(json_object_get(o, "job_id")) > 0);
        assert_int_equal(json_integer_value(json_object_get(o, "n")),
                         role == CPAR_ROLE_CONTROLLER ? 1 : n);
    }
    if (strcmp(lc_name, "local") == 0) {
        if (role == CPAR_ROLE_CONTROLLER) {
            assert_true(json_integer_value(json_object_get(o, "pid")) > 0);
            assert_non_null(json_string_value(json_object_get(o, "output_file")));
        } else {
            json_t *e = json_object_get(o, "engines");
            assert_int_equal(json_integer_value(json_object_get(o, "pid")), -1);
            assert_true(json_is_object(e));
            assert_int_equal(json_object_size(e), (size_t)n);
            assert_true(json_integer_value(json_object_get(json_object_get(e, "0"), "pid")) > 0);
            assert_true(json_integer_value(json_object_get(json_object_get(e, "1"), "pid")) > 0);
        }
    }
    json_decref(o);
}

/* For the local launcher: every pid of the saved state is gone. */
static void lc_check_local_gone(fixture_t *fx, const char *text)
{
    json_t *o = json_loads(text, 0, NULL), *e = json_object_get(o, "engines"), *m;
    const char *key;

    lc_spin(fx, 100); /* reap our children */
    if (json_is_object(e)) {
        json_object_foreach(e, key, m)
        {
            pid_t pid = (pid_t)json_integer_value(json_object_get(m, "pid"));
            assert_int_not_equal(kill(pid, 0), 0);
        }
    } else {
        assert_int_not_equal(kill((pid_t)json_integer_value(json_object_get(o, "pid")), 0), 0);
    }
    json_decref(o);
}

static void lc_lifecycle(fixture_t *fx, cpar_launch_role_t role, int n)
{
    const char *what = role == CPAR_ROLE_CONTROLLER ? "controller" : "engine set";
    cpar_launcher_h *l1 = NULL, *l2 = NULL;
    cpar_launch_job_t *job = NULL, *job2 = NULL, *job3 = NULL;
    char err[1024] = "", *start_json = NULL, *saved = NULL, *stop_json = NULL, *out = NULL;
    lc_spec_t s1, s2;
    int rc;

    if (!(fx->desc->roles & (unsigned)role))
        skip();
    rc = cpar_launcher_open(fx->host, lc_name, role, &l1, err, sizeof err);
    if (rc)
        fail_msg("open: %s: %s", cpar_err_name(rc), err);
    lc_make_spec(&s1, l1, role, n);
    rc = cpar_launch_start(l1, &s1.spec, &job, &start_json);
    if (rc)
        fail_msg("%s: start: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l1));
    free(start_json);
    lc_poll_until(job, l1, CPAR_JOB_RUNNING, what);

    rc = cpar_launch_save(job, &saved);
    if (rc)
        fail_msg("%s: save: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l1));
    lc_check_saved(fx, saved, role, n);

    /* A fresh handle, as `cpcluster stop` has. */
    rc = cpar_launcher_open(fx->host, lc_name, role, &l2, err, sizeof err);
    if (rc)
        fail_msg("open again: %s: %s", cpar_err_name(rc), err);
    lc_make_spec(&s2, l2, role, n);
    rc = cpar_launch_restore(l2, &s2.spec, saved, &job2);
    if (rc)
        fail_msg("%s: restore: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l2));
    lc_poll_until(job2, l2, CPAR_JOB_RUNNING, what);

    rc = cpar_launch_signal(job2, SIGCONT);
    if (rc != 0 && rc != CPAR_ENOTSUP)
        fail_msg("%s: signal: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l2));
    lc_poll_until(job2, l2, CPAR_JOB_RUNNING, what);

    rc = cpar_launch_stop(job2, &stop_json);
    if (rc)
        fail_msg("%s: stop: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l2));
    free(stop_json);
    stop_json = NULL;
    lc_poll_until(job2, l2, CPAR_JOB_DONE, what);
    lc_poll_until(job, l1, CPAR_JOB_DONE, what);

    /* Stopping what has ended is fine, through either handle. */
    rc = cpar_launch_stop(job2, NULL);
    if (rc)
        fail_msg("%s: second stop: %s: %s", what, cpar_err_name(rc), cpar_launcher_error(l2));
    rc = cpar_launch_stop(job, &stop_json);
    if (rc)
        fail_msg("%s: stop of the ended job: %s: %s", what, cpar_err_name(rc),
                 cpar_launcher_error(l1));
    free(stop_json);

    rc = cpar_launch_output(job, 1, &out);
    assert_true(rc == 0 || rc == CPAR_ENOTSUP);
    free(out);

    /* Nothing of it runs any more: restoring says so. */
    assert_int_equal(cpar_launch_restore(l2, &s2.spec, saved, &job3), CPAR_ENOENT);
    assert_null(job3);
    assert_true(cpar_launcher_error(l2)[0] != '\0');
    if (strcmp(lc_name, "local") == 0)
        lc_check_local_gone(fx, saved);

    cpar_launch_release(job);
    cpar_launch_release(job2);
    cpar_launcher_close(fx->host, l1);
    cpar_launcher_close(fx->host, l2);
    free(saved);
    json_decref(s1.prog_json);
    json_decref(s2.prog_json);
}

static void test_engine_set(void **state)
{
    lc_lifecycle(*state, CPAR_ROLE_ENGINES, 2);
}

static void test_controller(void **state)
{
    lc_lifecycle(*state, CPAR_ROLE_CONTROLLER, 1);
}

/* A program that cannot be started is an error naming it, and leaves nothing behind. */
static void test_missing_program(void **state)
{
    fixture_t *fx = *state;
    cpar_launch_role_t role =
        (fx->desc->roles & CPAR_ROLE_ENGINES) ? CPAR_ROLE_ENGINES : CPAR_ROLE_CONTROLLER;
    static const char *const prog[] = {"cpar-contract-no-such-program", NULL};
    cpar_launcher_h *l = NULL;
    cpar_launch_job_t *job = NULL;
    char err[1024];
    lc_spec_t s;
    int rc;

    if (fx->desc->batch)
        skip(); /* a batch job fails later, inside the scheduler */
    assert_int_equal(cpar_launcher_open(fx->host, lc_name, role, &l, err, sizeof err), 0);
    lc_make_spec(&s, l, role, 1);
    s.spec.program = prog;
    rc = cpar_launch_start(l, &s.spec, &job, NULL);
    if (strcmp(lc_name, "local") == 0) {
        assert_int_equal(rc, CPAR_ENOENT);
        assert_non_null(strstr(cpar_launcher_error(l), "cpar-contract-no-such-program"));
        assert_null(job);
    } else if (rc == 0) {
        /* A remote launcher may only learn it later, on the other side: stop must still work. */
        rc = cpar_launch_stop(job, NULL);
        if (rc)
            fail_msg("stop after starting a missing program: %s: %s", cpar_err_name(rc),
                     cpar_launcher_error(l));
        cpar_launch_release(job);
    } else {
        assert_null(job);
        assert_true(cpar_launcher_error(l)[0] != '\0');
    }
    json_decref(s.prog_json);
    cpar_launcher_close(fx->host, l);
}

/* local: a process that ignores SIGTERM is SIGKILLed after stop_seconds_until_kill. */
static void test_local_kill_escalation(void **state)
{
    fixture_t *fx = *state;
    static const char *const prog[] = {"sh", "-c", "trap '' TERM; exec sleep 30", NULL};
    cpar_launcher_h *l = NULL;
    cpar_launch_job_t *job = NULL;
    char err[1024], *saved = NULL;
    int64_t t0;
    lc_spec_t s;

    assert_int_equal(cpar_config_set(fx->cfg, "LocalEngineSetLauncher", "stop_seconds_until_kill",
                                     json_real(0.3), CPAR_SRC_CLI, "test"),
                     0);
    assert_int_equal(cpar_launcher_open(fx->host, lc_name, CPAR_ROLE_ENGINES, &l, err, sizeof err),
                     0);
    lc_make_spec(&s, l, CPAR_ROLE_ENGINES, 1);
    s.spec.program = prog;
    assert_int_equal(cpar_launch_start(l, &s.spec, &job, NULL), 0);
    lc_poll_until(job, l, CPAR_JOB_RUNNING, "TERM-proof engine");
    lc_nap_ms(200); /* let the shell set its trap and exec */
    assert_int_equal(cpar_launch_save(job, &saved), 0);
    t0 = (int64_t)time(NULL);
    assert_int_equal(cpar_launch_stop(job, NULL), 0);
    assert_true((int64_t)time(NULL) - t0 <= 3);
    lc_poll_until(job, l, CPAR_JOB_DONE, "TERM-proof engine");
    lc_check_local_gone(fx, saved);
    free(saved);
    cpar_launch_release(job);
    cpar_launcher_close(fx->host, l);
    json_decref(s.prog_json);
}

/* local: the log files, the environment, and output joining them. */
static void test_local_output(void **state)
{
    fixture_t *fx = *state;
    static const char *const prog[] = {"sh", "-c", "echo hello-$CPAR_CONTRACT_RUN; exec sleep 30",
                                       NULL};
    cpar_launcher_h *l = NULL;
    cpar_launch_job_t *job = NULL;
    char err[1024], path[512], *out = NULL;
    lc_spec_t s;

    assert_int_equal(cpar_launcher_open(fx->host, lc_name, CPAR_ROLE_ENGINES, &l, err, sizeof err),
                     0);
    lc_make_spec(&s, l, CPAR_ROLE_ENGINES, 2);
    s.spec.program = prog;
    assert_int_equal(cpar_launch_start(l, &s.spec, &job, NULL), 0);
    snprintf(path, sizeof path, "%s/log/%s-1.log", lc_dir, s.identifier);
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen(path, "r");
        char line[64] = "";
        if (f) {
            char *got = fgets(line, sizeof line, f);
            fclose(f);
            if (got && strcmp(line, "hello-1\n") == 0)
                break;
        }
        lc_nap_ms(50);
    }
    assert_int_equal(cpar_launch_output(job, 0, &out), 0);
    assert_string_equal(out, "Output for engine 0:\n  hello-1\nOutput for engine 1:\n  hello-1\n");
    free(out);
    assert_int_equal(cpar_launch_stop(job, NULL), 0);
    assert_int_equal(cpar_launch_output(job, 1, &out), 0);
    free(out);
    assert_int_not_equal(access(path, F_OK), 0); /* removed */
    cpar_launch_release(job);
    cpar_launcher_close(fx->host, l);
    json_decref(s.prog_json);
}

int main(int argc, char **argv)
{
    /* The contract for every launcher, then local's own tests, registered for it only. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_descriptor, lc_setup, lc_teardown),
        cmocka_unit_test_setup_teardown(test_engine_set, lc_setup, lc_teardown),
        cmocka_unit_test_setup_teardown(test_controller, lc_setup, lc_teardown),
        cmocka_unit_test_setup_teardown(test_missing_program, lc_setup, lc_teardown),
        cmocka_unit_test_setup_teardown(test_local_kill_escalation, lc_setup, lc_teardown),
        cmocka_unit_test_setup_teardown(test_local_output, lc_setup, lc_teardown),
    };
    const size_t n_contract = 4;
    const char *w = getenv("CPAR_CONTRACT_WAIT");
    char cmd[256];
    int failed;

    if (argc < 2) {
        fprintf(stderr, "usage: %s <launcher>\n", argv[0]);
        return 2;
    }
    lc_name = argv[1];
    if (w && atoi(w) > 0)
        lc_wait_s = atoi(w);
    if (!mkdtemp(lc_dir)) {
        perror("mkdtemp");
        return 2;
    }
    failed = _cmocka_run_group_tests(
        lc_name, tests, strcmp(lc_name, "local") == 0 ? sizeof tests / sizeof *tests : n_contract,
        NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lc_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", lc_dir);
    return failed;
}
