/*
 * mpi.c - the MPI launcher (cpar_launcher_mpi.so), ipyparallel's MPIEngineSetLauncher and
 * MPIControllerLauncher (and the deprecated MPIExec* names).
 *
 * One mpiexec process runs the whole set:
 *
 *     mpi_cmd -n <n> mpi_args program [--mpi] program_args
 *
 * started in its own session with its output appended to <profile>/log/<identifier>.log. The
 * engines get `--mpi` (ipyparallel 7.1's behaviour: each engine takes its MPI rank as engine id)
 * unless engine_mpi is false, which mpiexec implementations other than the one mpi4py was built
 * against need. A controller is one rank (n = 1; 7.1's MPIControllerLauncher is broken there).
 * Signals and stop go to the mpiexec pid, which forwards them to its ranks; stop escalates to
 * SIGKILL after stop_seconds_until_kill. When mpiexec has ended, the MPI error block of its
 * output (MPICH's "=====" block, Open MPI's "-----" block) is logged as a warning.
 *
 * Settings (MPIEngineSetLauncher / MPIControllerLauncher, then MPILauncher and the deprecated
 * MPIExec* sections): mpi_cmd (["mpiexec"]), mpi_args ([]), engine_mpi (true),
 * stop_seconds_until_kill (5), stop_timeout (60).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../ssh/lutil.h"

typedef struct mpi_state {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} mpi_state_t;

typedef struct mpi_job {
    cpar_launch_role_t role;
    int n;
    int64_t pid;
    char *output_file;
    char *profile_dir;
    char *cluster_id;
    char *identifier;
    lu_strv_t mpi_cmd, mpi_args;
    int kill_after_ms, stop_timeout_ms;
    int ended, exit_code, scraped;
} mpi_job_t;

static int mpi_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    mpi_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return CPAR_ENOMEM;
    s->host = host;
    s->ctx = ctx;
    *state = s;
    return 0;
}

static void mpi_fini(void *state)
{
    free(state);
}

static void mpi_job_free(mpi_job_t *j)
{
    if (!j)
        return;
    free(j->output_file);
    free(j->profile_dir);
    free(j->cluster_id);
    free(j->identifier);
    lu_strv_free(&j->mpi_cmd);
    lu_strv_free(&j->mpi_args);
    free(j);
}

/* Settings shared by start and restore. */
static int mpi_job_settings(mpi_state_t *s, const cpar_launch_spec_t *spec, mpi_job_t *j)
{
    static const char *const dflt_cmd[] = {"mpiexec", NULL};
    int rc = lu_config_list(s->host, s->ctx, spec, "mpi_cmd", dflt_cmd, &j->mpi_cmd);
    if (rc == 0)
        rc = lu_config_list(s->host, s->ctx, spec, "mpi_args", NULL, &j->mpi_args);
    if (rc)
        return rc;
    if (j->mpi_cmd.n == 0) {
        s->host->set_error(s->ctx, "setting mpi_cmd is empty");
        return CPAR_ECONFIG;
    }
    j->kill_after_ms = lu_config_ms(s->host, s->ctx, spec, "stop_seconds_until_kill", 5000);
    j->stop_timeout_ms = lu_config_ms(s->host, s->ctx, spec, "stop_timeout", 60000);
    j->role = spec->role;
    j->profile_dir = strdup(spec->profile_dir ? spec->profile_dir : "");
    j->cluster_id = strdup(spec->cluster_id ? spec->cluster_id : "");
    j->identifier = strdup(spec->identifier ? spec->identifier : "ipengine");
    if (!j->profile_dir || !j->cluster_id || !j->identifier)
        return CPAR_ENOMEM;
    return 0;
}

/*
 * The MPI error block of mpiexec's output, malloc'd, or NULL: MPICH's block between two lines
 * starting with "=======" plus the 2 lines after it; otherwise Open MPI's, everything from the
 * first line starting with "-----".
 */
static char *mpi_error_block(const char *out)
{
    const char *first = NULL, *second = NULL, *dash = NULL;
    for (const char *line = out; line && *line;) {
        if (!first && strncmp(line, "=======", 7) == 0)
            first = line;
        else if (first && !second && strncmp(line, "=======", 7) == 0)
            second = line;
        if (!dash && strncmp(line, "-----", 5) == 0)
            dash = line;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    if (first && second) {
        const char *end = second;
        for (int i = 0; i < 3 && end; i++) {
            const char *nl = strchr(end, '\n');
            end = nl ? nl + 1 : NULL;
        }
        size_t len = end ? (size_t)(end - first) : strlen(first);
        return strndup(first, len);
    }
    return dash ? strdup(dash) : NULL;
}

/* Once mpiexec has ended: log its MPI error block, if any, line by line. */
static void mpi_scrape(mpi_state_t *s, mpi_job_t *j)
{
    if (j->scraped)
        return;
    j->scraped = 1;
    char *text = NULL;
    if (lu_read_file(s->host, j->output_file, &text) != 0)
        return;
    char *block = mpi_error_block(text);
    s->host->free(text);
    if (!block)
        return;
    s->host->log(s->ctx, CPAR_LOG_WARNING,
                 "%s: mpiexec %lld exited with an MPI error:", j->identifier, (long long)j->pid);
    char *save = NULL;
    for (char *line = strtok_r(block, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        s->host->log(s->ctx, CPAR_LOG_WARNING, "  %s", line);
    free(block);
}

/* Whether mpiexec still runs; records its exit code when it ended. */
static int mpi_check(mpi_state_t *s, mpi_job_t *j, int *running)
{
    if (j->ended) {
        *running = 0;
        return 0;
    }
    int code = CPAR_EXIT_UNKNOWN;
    int rc = s->host->child_status(s->ctx, j->pid, running, &code);
    if (rc)
        return rc;
    if (!*running) {
        j->ended = 1;
        j->exit_code = code;
        mpi_scrape(s, j);
    }
    return 0;
}

static int mpi_start(void *state, const cpar_launch_spec_t *spec, void **jobp, char **start_json)
{
    mpi_state_t *s = state;
    mpi_job_t *j = calloc(1, sizeof *j);
    lu_strv_t argv = {0};
    int rc;
    char path[4096];

    if (!j)
        return CPAR_ENOMEM;
    if (!spec->program || !spec->program[0]) {
        s->host->set_error(s->ctx, "no program to start");
        mpi_job_free(j);
        return CPAR_EINVAL;
    }
    rc = mpi_job_settings(s, spec, j);
    if (rc)
        goto fail;
    j->n = spec->role == CPAR_ROLE_CONTROLLER ? 1 : spec->n;
    if (j->n < 1) {
        s->host->set_error(s->ctx, "cannot start %d engines", j->n);
        rc = CPAR_EINVAL;
        goto fail;
    }
    snprintf(path, sizeof path, "%s/log/%s.log", j->profile_dir, j->identifier);
    j->output_file = strdup(path);
    if (!j->output_file) {
        rc = CPAR_ENOMEM;
        goto fail;
    }
    lu_mkdir_parent(j->output_file);

    lu_strv_addv(&argv, lu_strv_argv(&j->mpi_cmd));
    lu_strv_add(&argv, "-n");
    lu_strv_addf(&argv, "%lld", j->n);
    lu_strv_addv(&argv, lu_strv_argv(&j->mpi_args));
    lu_strv_addv(&argv, spec->program);
    if (spec->role == CPAR_ROLE_ENGINES && lu_config_bool(s->host, s->ctx, spec, "engine_mpi", 1))
        lu_strv_add(&argv, "--mpi");
    lu_strv_addv(&argv, spec->program_args);
    if (argv.oom) {
        rc = CPAR_ENOMEM;
        goto fail;
    }
    rc = s->host->spawn(s->ctx, lu_strv_argv(&argv), spec->env, spec->work_dir, j->output_file,
                        &j->pid);
    if (rc)
        goto fail; /* spawn explained it */
    s->host->log(s->ctx, CPAR_LOG_INFO, "%s: started mpiexec pid %lld for %d %s", j->identifier,
                 (long long)j->pid, j->n,
                 spec->role == CPAR_ROLE_CONTROLLER ? "controller" : "engines");
    if (start_json) {
        json_t *o = json_pack("{s:I,s:i,s:o,s:s}", "pid", (json_int_t)j->pid, "n", j->n, "argv",
                              lu_strv_to_json(&argv), "output_file", j->output_file);
        rc = lu_json_out(s->host, o, start_json);
        if (rc)
            goto fail_started;
    }
    lu_strv_free(&argv);
    *jobp = j;
    return 0;

fail_started:
    kill((pid_t)j->pid, SIGKILL);
fail:
    lu_strv_free(&argv);
    mpi_job_free(j);
    return rc;
}

/* Wait up to `ms` for mpiexec to end; 1 when it did. */
static int mpi_wait(mpi_state_t *s, mpi_job_t *j, int ms)
{
    int64_t deadline = s->host->monotonic_us() + (int64_t)ms * 1000;
    for (;;) {
        int running = 1;
        if (mpi_check(s, j, &running) != 0)
            return 0;
        if (!running)
            return 1;
        if (s->host->monotonic_us() >= deadline)
            return 0;
        lu_sleep_ms(50);
    }
}

static int mpi_stop(void *state, void *jobp, char **stop_json)
{
    mpi_state_t *s = state;
    mpi_job_t *j = jobp;
    int running = 0;
    int rc = mpi_check(s, j, &running);
    if (rc)
        return rc;
    if (running) {
        if (kill((pid_t)j->pid, SIGTERM) != 0 && errno != ESRCH) {
            s->host->set_error(s->ctx, "kill -TERM %lld: %s", (long long)j->pid, strerror(errno));
            return CPAR_EIO;
        }
        if (!mpi_wait(s, j, j->kill_after_ms)) {
            s->host->log(s->ctx, CPAR_LOG_WARNING,
                         "%s: mpiexec %lld still runs %d ms after SIGTERM; sending SIGKILL",
                         j->identifier, (long long)j->pid, j->kill_after_ms);
            kill((pid_t)j->pid, SIGKILL);
            if (!mpi_wait(s, j, j->stop_timeout_ms)) {
                s->host->set_error(s->ctx, "mpiexec %lld did not end after SIGKILL",
                                   (long long)j->pid);
                return CPAR_ETIMEDOUT;
            }
        }
    }
    if (stop_json) {
        json_t *code = j->exit_code == CPAR_EXIT_UNKNOWN ? json_null() : json_integer(j->exit_code);
        json_t *o = json_pack("{s:o,s:I,s:s}", "exit_code", code, "pid", (json_int_t)j->pid,
                              "identifier", j->identifier);
        return lu_json_out(s->host, o, stop_json);
    }
    return 0;
}

static int mpi_signal(void *state, void *jobp, int signum)
{
    mpi_state_t *s = state;
    mpi_job_t *j = jobp;
    int running = 0;
    if (mpi_check(s, j, &running) == 0 && !running) {
        s->host->set_error(s->ctx, "mpiexec %lld has ended", (long long)j->pid);
        return CPAR_ESTATE;
    }
    if (kill((pid_t)j->pid, signum) != 0) {
        s->host->set_error(s->ctx, "kill -%d %lld: %s", signum, (long long)j->pid, strerror(errno));
        return errno == ESRCH ? CPAR_ESTATE : CPAR_EIO;
    }
    return 0;
}

static int mpi_poll(void *state, void *jobp, cpar_job_state_t *st, int *exit_code, char **detail)
{
    mpi_state_t *s = state;
    mpi_job_t *j = jobp;
    int running = 0;
    int rc = mpi_check(s, j, &running);
    if (rc)
        return rc;
    *st = running ? CPAR_JOB_RUNNING : CPAR_JOB_DONE;
    *exit_code = running ? CPAR_EXIT_UNKNOWN : j->exit_code;
    if (detail) {
        char line[128];
        if (running)
            snprintf(line, sizeof line, "mpiexec pid %lld, %d ranks", (long long)j->pid, j->n);
        else if (j->exit_code == CPAR_EXIT_UNKNOWN)
            snprintf(line, sizeof line, "mpiexec pid %lld ended", (long long)j->pid);
        else
            snprintf(line, sizeof line, "mpiexec pid %lld ended with %d", (long long)j->pid,
                     j->exit_code);
        *detail = lu_host_strdup(s->host, line);
    }
    return 0;
}

static int mpi_save(void *state, void *jobp, char **state_json)
{
    mpi_state_t *s = state;
    mpi_job_t *j = jobp;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:o,s:o,s:s}", "cluster_id", j->cluster_id,
                          "profile_dir", j->profile_dir, "state", j->ended ? "after" : "running",
                          "pid", (json_int_t)j->pid, "n", j->n, "output_file", j->output_file,
                          "mpi_cmd", lu_strv_to_json(&j->mpi_cmd), "mpi_args",
                          lu_strv_to_json(&j->mpi_args), "identifier", j->identifier);
    return lu_json_out(s->host, o, state_json);
}

static int mpi_restore(void *state, const cpar_launch_spec_t *spec, const char *state_json,
                       void **jobp)
{
    mpi_state_t *s = state;
    json_error_t err;
    json_t *o = json_loads(state_json, 0, &err);
    mpi_job_t *j = NULL;
    int rc;

    if (!json_is_object(o)) {
        s->host->set_error(s->ctx, "saved state is not a JSON object: %s", err.text);
        json_decref(o);
        return CPAR_EINVAL;
    }
    json_int_t pid = json_integer_value(json_object_get(o, "pid"));
    if (pid <= 0) {
        s->host->set_error(s->ctx, "saved state has no pid");
        json_decref(o);
        return CPAR_EINVAL;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(o);
        return CPAR_ENOMEM;
    }
    rc = mpi_job_settings(s, spec, j);
    if (rc)
        goto done;
    j->pid = pid;
    j->n = (int)json_integer_value(json_object_get(o, "n"));
    if (j->n < 1)
        j->n = spec->n > 0 ? spec->n : 1;
    j->exit_code = CPAR_EXIT_UNKNOWN;
    j->scraped = 1; /* its output belongs to the cpcluster that started it */
    j->output_file = strdup(lu_json_str(o, "output_file", ""));
    const char *ident = lu_json_str(o, "identifier", NULL);
    if (ident) {
        free(j->identifier);
        j->identifier = strdup(ident);
    }
    const json_t *cmd = json_object_get(o, "mpi_cmd");
    if (json_is_array(cmd) && json_array_size(cmd) > 0) {
        lu_strv_free(&j->mpi_cmd);
        lu_strv_from_json(&j->mpi_cmd, cmd);
    }
    if (!j->output_file || !j->identifier) {
        rc = CPAR_ENOMEM;
        goto done;
    }
    int running = 0, code = 0;
    rc = s->host->child_status(s->ctx, j->pid, &running, &code);
    if (rc == 0 && !running) {
        s->host->set_error(s->ctx, "mpiexec %lld is no longer running", (long long)j->pid);
        rc = CPAR_ENOENT;
    }
done:
    json_decref(o);
    if (rc) {
        mpi_job_free(j);
        return rc;
    }
    *jobp = j;
    return 0;
}

static int mpi_output(void *state, void *jobp, int remove, char **text)
{
    mpi_state_t *s = state;
    mpi_job_t *j = jobp;
    int rc = lu_read_file(s->host, j->output_file, text);
    if (rc == 0 && remove && j->output_file[0])
        unlink(j->output_file);
    return rc;
}

static void mpi_release(void *state, void *jobp)
{
    (void)state;
    mpi_job_free(jobp);
}

static const char *const mpi_names[] = {
    "MPI",     "MPILauncher",     "MPIEngineSetLauncher",     "MPIControllerLauncher",
    "MPIExec", "MPIExecLauncher", "MPIExecEngineSetLauncher", "MPIExecControllerLauncher",
    NULL};
static const char *const mpi_controller_sections[] = {"MPIControllerLauncher",
                                                      "MPIExecControllerLauncher",
                                                      "MPILauncher",
                                                      "MPIExecLauncher",
                                                      "ControllerLauncher",
                                                      "BaseLauncher",
                                                      NULL};
static const char *const mpi_engine_sections[] = {"MPIEngineSetLauncher",
                                                  "MPIExecEngineSetLauncher",
                                                  "MPILauncher",
                                                  "MPIExecLauncher",
                                                  "EngineLauncher",
                                                  "BaseLauncher",
                                                  NULL};
static const char *const mpi_all_sections[] = {
    "MPIControllerLauncher",    "MPIEngineSetLauncher", "MPILauncher", "MPIExecControllerLauncher",
    "MPIExecEngineSetLauncher", "MPIExecLauncher",      NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_mpi_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "mpi"), .version = CPAR_LAUNCHER_VERSION,
             .description = "one mpiexec for the whole engine set (or the controller)",
             .config_sections = mpi_all_sections, .init = mpi_init, .fini = mpi_fini},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = mpi_names,
    .controller_sections = mpi_controller_sections,
    .engine_sections = mpi_engine_sections,
    .batch = NULL,
    .start = mpi_start,
    .stop = mpi_stop,
    .signal = mpi_signal,
    .poll = mpi_poll,
    .save = mpi_save,
    .restore = mpi_restore,
    .output = mpi_output,
    .release = mpi_release,
};
