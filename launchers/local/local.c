/*
 * local.c - the local launcher (cpar_launcher_local.so): ipyparallel's LocalControllerLauncher
 * and LocalEngineSetLauncher.
 *
 * A controller is one process, an engine set n processes started `delay` seconds apart, each in
 * its own session with stdout and stderr appended to <profile>/log/<identifier>.log (controller)
 * or <profile>/log/<identifier>-<i>.log (engine i), in the spec's work_dir. Stop sends SIGTERM,
 * waits stop_seconds_until_kill, then sends SIGKILL to what is left and waits up to stop_timeout
 * (ipyparallel 7.1 never gets to its SIGKILL step; this launcher does). Signals go to each pid.
 * The cluster file keeps ipyparallel's fields (pid, output_file, and per engine under "engines");
 * restoring drops members that have gone and fails with CPAR_ENOENT when none is left.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cparallel/launcher.h>

typedef struct local_state {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} local_state_t;

typedef struct local_member {
    int index; /* engine number, 0 for a controller */
    int64_t pid;
    char *output_file;
    int ended, exit_code;
} local_member_t;

typedef struct local_job {
    cpar_launch_role_t role;
    char *cluster_id, *profile_dir;
    local_member_t *m;
    size_t nm;
    double kill_after_s, stop_timeout_s;
    int stopped;
} local_job_t;

static const char *const local_names[] = {"local",
                                          "LocalControllerLauncher",
                                          "LocalEngineSetLauncher",
                                          "LocalEngineLauncher",
                                          "LocalProcessLauncher",
                                          NULL};
static const char *const local_controller_sections[] = {
    "LocalControllerLauncher", "LocalProcessLauncher", "ControllerLauncher", "BaseLauncher", NULL};
static const char *const local_engine_sections[] = {"LocalEngineSetLauncher", "LocalEngineLauncher",
                                                    "LocalProcessLauncher",   "EngineLauncher",
                                                    "BaseLauncher",           NULL};
static const char *const local_all_sections[] = {"LocalControllerLauncher",
                                                 "LocalEngineSetLauncher", "LocalEngineLauncher",
                                                 "LocalProcessLauncher", NULL};

static int local_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    local_state_t *s = calloc(1, sizeof *s);

    if (!s)
        return CPAR_ENOMEM;
    s->host = host;
    s->ctx = ctx;
    *state = s;
    return 0;
}

static void local_fini(void *state)
{
    free(state);
}

static void local_job_free(local_job_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nm; i++)
        free(j->m[i].output_file);
    free(j->m);
    free(j->cluster_id);
    free(j->profile_dir);
    free(j);
}

static void local_nap(double seconds)
{
    struct timespec ts;

    if (seconds <= 0)
        return;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A copy from the host allocator, for results the core frees. */
static char *local_hostdup(const cpar_host_t *h, const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = h->alloc(n);

    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

static char *local_dump(const cpar_host_t *h, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = text ? local_hostdup(h, text) : NULL;

    free(text);
    return out;
}

/* Settings with ipyparallel's defaults. */
static void local_settings(local_state_t *s, const cpar_launch_spec_t *spec, local_job_t *j,
                           double *delay)
{
    double v;

    *delay = 0.1;
    j->kill_after_s = 5;
    j->stop_timeout_s = 60;
    if (cpar_launch_config_double(s->host, s->ctx, spec, "delay", &v) == 0 && v >= 0)
        *delay = v;
    if (cpar_launch_config_double(s->host, s->ctx, spec, "stop_seconds_until_kill", &v) == 0 &&
        v >= 0)
        j->kill_after_s = v;
    if (cpar_launch_config_double(s->host, s->ctx, spec, "stop_timeout", &v) == 0 && v >= 0)
        j->stop_timeout_s = v;
}

static local_job_t *local_job_new(const cpar_launch_spec_t *spec, size_t n)
{
    local_job_t *j = calloc(1, sizeof *j);

    if (!j)
        return NULL;
    j->role = spec->role;
    j->cluster_id = strdup(spec->cluster_id ? spec->cluster_id : "");
    j->profile_dir = strdup(spec->profile_dir ? spec->profile_dir : "");
    j->m = calloc(n ? n : 1, sizeof *j->m);
    if (!j->cluster_id || !j->profile_dir || !j->m) {
        local_job_free(j);
        return NULL;
    }
    return j;
}

/* Refresh each member's fate; returns how many still run. */
static size_t local_refresh(local_state_t *s, local_job_t *j)
{
    size_t running = 0;

    for (size_t i = 0; i < j->nm; i++) {
        local_member_t *m = &j->m[i];
        int run = 0, code = CPAR_EXIT_UNKNOWN;

        if (m->ended)
            continue;
        if (s->host->child_status(s->ctx, m->pid, &run, &code) != 0)
            run = kill((pid_t)m->pid, 0) == 0;
        if (run) {
            running++;
        } else {
            m->ended = 1;
            m->exit_code = code;
        }
    }
    return running;
}

/* Wait up to `seconds` for every member to end; returns how many still run. */
static size_t local_wait(local_state_t *s, local_job_t *j, double seconds)
{
    int64_t until = s->host->monotonic_us() + (int64_t)(seconds * 1e6);
    size_t running;

    while ((running = local_refresh(s, j)) > 0 && s->host->monotonic_us() < until)
        local_nap(0.02);
    return running;
}

static void local_signal_all(local_job_t *j, int signum)
{
    for (size_t i = 0; i < j->nm; i++)
        if (!j->m[i].ended)
            kill((pid_t)j->m[i].pid, signum);
}

/* SIGTERM, wait, SIGKILL, wait; CPAR_ETIMEDOUT when something survives even that. */
static int local_terminate(local_state_t *s, local_job_t *j)
{
    size_t left;

    if (local_refresh(s, j) == 0)
        return 0;
    local_signal_all(j, SIGTERM);
    left = local_wait(s, j, j->kill_after_s);
    if (left == 0)
        return 0;
    s->host->log(s->ctx, CPAR_LOG_WARNING,
                 "%zu process(es) still running %.1f s after SIGTERM; sending SIGKILL", left,
                 j->kill_after_s);
    local_signal_all(j, SIGKILL);
    left = local_wait(s, j, j->stop_timeout_s);
    if (left > 0) {
        s->host->set_error(s->ctx, "%zu process(es) still running %.1f s after SIGKILL", left,
                           j->stop_timeout_s);
        return CPAR_ETIMEDOUT;
    }
    return 0;
}

static int local_start(void *state, const cpar_launch_spec_t *spec, void **job, char **start_json)
{
    local_state_t *s = state;
    size_t n = spec->role == CPAR_ROLE_CONTROLLER ? 1 : (size_t)(spec->n > 0 ? spec->n : 0);
    const char **argv;
    size_t argc = 0, k = 0;
    char logdir[4096];
    double delay;
    local_job_t *j;
    json_t *pids;
    int rc = 0;

    if (!spec->program || !spec->program[0]) {
        s->host->set_error(s->ctx, "no program to start");
        return CPAR_EINVAL;
    }
    if (n == 0) {
        s->host->set_error(s->ctx, "an engine set needs n >= 1 (got %d)", spec->n);
        return CPAR_EINVAL;
    }
    if (!spec->identifier || !*spec->identifier) {
        s->host->set_error(s->ctx, "no identifier for the log files");
        return CPAR_EINVAL;
    }
    j = local_job_new(spec, n);
    if (!j)
        return CPAR_ENOMEM;
    local_settings(s, spec, j, &delay);
    snprintf(logdir, sizeof logdir, "%s/log",
             spec->profile_dir && *spec->profile_dir ? spec->profile_dir : ".");
    if (mkdir(logdir, 0755) != 0 && errno != EEXIST) {
        s->host->set_error(s->ctx, "cannot create %s: %s", logdir, strerror(errno));
        local_job_free(j);
        return CPAR_EIO;
    }
    for (const char *const *a = spec->program; *a; a++)
        argc++;
    for (const char *const *a = spec->program_args; a && *a; a++)
        argc++;
    argv = calloc(argc + 1, sizeof *argv);
    if (!argv) {
        local_job_free(j);
        return CPAR_ENOMEM;
    }
    for (const char *const *a = spec->program; *a; a++)
        argv[k++] = *a;
    for (const char *const *a = spec->program_args; a && *a; a++)
        argv[k++] = *a;

    for (size_t i = 0; i < n; i++) {
        local_member_t *m = &j->m[i];
        char path[4200];

        if (i > 0)
            local_nap(delay);
        if (spec->role == CPAR_ROLE_CONTROLLER)
            snprintf(path, sizeof path, "%s/%s.log", logdir, spec->identifier);
        else
            snprintf(path, sizeof path, "%s/%s-%zu.log", logdir, spec->identifier, i);
        m->index = (int)i;
        m->output_file = strdup(path);
        if (!m->output_file) {
            rc = CPAR_ENOMEM;
            break;
        }
        rc = s->host->spawn(s->ctx, argv, spec->env, spec->work_dir, path, &m->pid);
        if (rc) {
            free(m->output_file);
            m->output_file = NULL;
            break;
        }
        j->nm++;
    }
    free(argv);
    if (rc) {
        /* Take back what did start; spawn's error text stays the one reported. */
        local_terminate(s, j);
        local_job_free(j);
        return rc;
    }
    pids = json_array();
    for (size_t i = 0; i < j->nm && pids; i++)
        json_array_append_new(pids, json_integer(j->m[i].pid));
    if (start_json)
        *start_json = local_dump(s->host, pids);
    json_decref(pids);
    s->host->log(s->ctx, CPAR_LOG_DEBUG, "started %zu process(es), first pid %lld", j->nm,
                 (long long)j->m[0].pid);
    *job = j;
    return 0;
}

static json_t *local_member_stop_data(const local_member_t *m, const char *identifier)
{
    json_t *code =
        m->exit_code == CPAR_EXIT_UNKNOWN ? json_string("unknown") : json_integer(m->exit_code);

    return json_pack("{s:o,s:I,s:s}", "exit_code", code, "pid", (json_int_t)m->pid, "identifier",
                     identifier);
}

static int local_stop(void *state, void *job, char **stop_json)
{
    local_state_t *s = state;
    local_job_t *j = job;
    json_t *data;
    int rc;

    if (!j)
        return CPAR_EINVAL;
    if ((rc = local_terminate(s, j)) != 0)
        return rc;
    j->stopped = 1;
    if (!stop_json)
        return 0;
    if (j->role == CPAR_ROLE_CONTROLLER) {
        data = local_member_stop_data(&j->m[0], "controller");
    } else {
        data = json_object();
        for (size_t i = 0; i < j->nm && data; i++) {
            char key[24];
            snprintf(key, sizeof key, "%d", j->m[i].index);
            json_object_set_new(data, key, local_member_stop_data(&j->m[i], key));
        }
    }
    *stop_json = local_dump(s->host, data);
    json_decref(data);
    return 0;
}

static int local_signal(void *state, void *job, int signum)
{
    local_state_t *s = state;
    local_job_t *j = job;
    int sent = 0;

    if (!j)
        return CPAR_EINVAL;
    local_refresh(s, j);
    for (size_t i = 0; i < j->nm; i++) {
        if (j->m[i].ended)
            continue;
        if (kill((pid_t)j->m[i].pid, signum) != 0 && errno != ESRCH) {
            s->host->set_error(s->ctx, "cannot send signal %d to pid %lld: %s", signum,
                               (long long)j->m[i].pid, strerror(errno));
            return CPAR_EIO;
        }
        sent++;
    }
    if (!sent) {
        s->host->set_error(s->ctx, "no process of the job is running");
        return CPAR_ESTATE;
    }
    return 0;
}

static int local_poll(void *state, void *job, cpar_job_state_t *st, int *exit_code, char **detail)
{
    local_state_t *s = state;
    local_job_t *j = job;
    size_t running;
    char buf[256];

    if (!j)
        return CPAR_EINVAL;
    running = local_refresh(s, j);
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (running) {
        *st = CPAR_JOB_RUNNING;
        snprintf(buf, sizeof buf, "%zu of %zu process(es) running (pid %lld%s)", running, j->nm,
                 (long long)j->m[0].pid, j->nm > 1 ? ", ..." : "");
    } else {
        int code = j->m[0].exit_code;
        /* A set's code: the first failure, else the common code. */
        for (size_t i = 0; i < j->nm; i++)
            if (j->m[i].exit_code != 0) {
                code = j->m[i].exit_code;
                break;
            }
        *st = CPAR_JOB_DONE;
        *exit_code = code;
        if (code == CPAR_EXIT_UNKNOWN)
            snprintf(buf, sizeof buf, "ended (exit code unknown)");
        else
            snprintf(buf, sizeof buf, "ended with exit code %d", code);
    }
    if (detail)
        *detail = local_hostdup(s->host, buf);
    return 0;
}

static json_t *local_member_json(const local_job_t *j, const local_member_t *m)
{
    return json_pack("{s:s,s:i,s:s,s:I,s:s,s:s}", "cluster_id", j->cluster_id, "n", 1,
                     "output_file", m->output_file ? m->output_file : "", "pid", (json_int_t)m->pid,
                     "profile_dir", j->profile_dir, "state", j->stopped ? "after" : "running");
}

static int local_save(void *state, void *job, char **state_json)
{
    local_state_t *s = state;
    local_job_t *j = job;
    json_t *o;

    if (!j)
        return CPAR_EINVAL;
    if (j->role == CPAR_ROLE_CONTROLLER) {
        o = local_member_json(j, &j->m[0]);
    } else {
        json_t *engines = json_object();
        o = json_pack("{s:s,s:i,s:i,s:s,s:s}", "cluster_id", j->cluster_id, "n", (int)j->nm, "pid",
                      -1, "profile_dir", j->profile_dir, "state", j->stopped ? "after" : "running");
        for (size_t i = 0; i < j->nm && engines; i++) {
            char key[24];
            snprintf(key, sizeof key, "%d", j->m[i].index);
            json_object_set_new(engines, key, local_member_json(j, &j->m[i]));
        }
        if (o && engines)
            json_object_set_new(o, "engines", engines);
        else
            json_decref(engines);
    }
    *state_json = local_dump(s->host, o);
    json_decref(o);
    return *state_json ? 0 : CPAR_ENOMEM;
}

/* Add the member saved as `m` (a JSON object) to the job if its process still runs. */
static int local_restore_member(local_state_t *s, local_job_t *j, int index, json_t *m)
{
    json_t *pid = json_object_get(m, "pid");
    const char *out = json_string_value(json_object_get(m, "output_file"));
    const char *st = json_string_value(json_object_get(m, "state"));
    local_member_t *dst = &j->m[j->nm];
    int running = 0, code;

    if (!json_is_integer(pid) || json_integer_value(pid) <= 0)
        return 0;
    if (st && strcmp(st, "after") == 0)
        return 0;
    dst->pid = json_integer_value(pid);
    if (s->host->child_status(s->ctx, dst->pid, &running, &code) != 0)
        running = kill((pid_t)dst->pid, 0) == 0 || errno == EPERM;
    if (!running) {
        s->host->log(s->ctx, CPAR_LOG_INFO, "process %lld (member %d) is gone", (long long)dst->pid,
                     index);
        return 0;
    }
    dst->index = index;
    dst->output_file = strdup(out ? out : "");
    if (!dst->output_file)
        return CPAR_ENOMEM;
    j->nm++;
    return 0;
}

static int local_restore(void *state, const cpar_launch_spec_t *spec, const char *state_json,
                         void **job)
{
    local_state_t *s = state;
    json_error_t err;
    json_t *o = json_loads(state_json, 0, &err), *engines;
    const char *cid, *pd;
    local_job_t *j;
    double delay;
    int rc = 0;

    if (!json_is_object(o)) {
        json_decref(o);
        s->host->set_error(s->ctx, "saved state is not a JSON object: %s", err.text);
        return CPAR_EINVAL;
    }
    engines = json_object_get(o, "engines");
    j = local_job_new(spec, json_is_object(engines) ? json_object_size(engines) + 1 : 1);
    if (!j) {
        json_decref(o);
        return CPAR_ENOMEM;
    }
    local_settings(s, spec, j, &delay);
    cid = json_string_value(json_object_get(o, "cluster_id"));
    pd = json_string_value(json_object_get(o, "profile_dir"));
    if (cid) {
        free(j->cluster_id);
        j->cluster_id = strdup(cid);
    }
    if (pd) {
        free(j->profile_dir);
        j->profile_dir = strdup(pd);
    }
    if (!j->cluster_id || !j->profile_dir)
        rc = CPAR_ENOMEM;
    if (!rc && json_is_object(engines)) {
        const char *key;
        json_t *m;
        json_object_foreach(engines, key, m)
        {
            if ((rc = local_restore_member(s, j, atoi(key), m)) != 0)
                break;
        }
    } else if (!rc) {
        rc = local_restore_member(s, j, 0, o);
    }
    json_decref(o);
    if (!rc && j->nm == 0) {
        s->host->set_error(s->ctx, "no process of the saved %s is running",
                           spec->role == CPAR_ROLE_CONTROLLER ? "controller" : "engine set");
        rc = CPAR_ENOENT;
    }
    if (rc) {
        local_job_free(j);
        return rc;
    }
    *job = j;
    return 0;
}

/* Append text to a malloc'd buffer; 0 or CPAR_ENOMEM. */
static int local_append(char **buf, size_t *len, const char *a, const char *b)
{
    size_t add = strlen(a) + strlen(b);
    char *nb = realloc(*buf, *len + add + 1);

    if (!nb)
        return CPAR_ENOMEM;
    *buf = nb;
    memcpy(*buf + *len, a, strlen(a));
    memcpy(*buf + *len + strlen(a), b, strlen(b) + 1);
    *len += add;
    return 0;
}

/* Append the file's text, each line prefixed with `indent`. */
static int local_append_file(char **buf, size_t *len, const char *path, const char *indent)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int rc = 0;

    if (!f)
        return 0;
    while (!rc && fgets(line, sizeof line, f))
        rc = local_append(buf, len, indent, line);
    fclose(f);
    return rc;
}

static int local_output(void *state, void *job, int remove, char **text)
{
    local_state_t *s = state;
    local_job_t *j = job;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (!j)
        return CPAR_EINVAL;
    rc = local_append(&buf, &len, "", "");
    for (size_t i = 0; i < j->nm && !rc; i++) {
        const char *path = j->m[i].output_file;
        if (!path || !*path)
            continue;
        if (j->role == CPAR_ROLE_CONTROLLER) {
            rc = local_append_file(&buf, &len, path, "");
        } else {
            char head[64];
            snprintf(head, sizeof head, "Output for engine %d:\n", j->m[i].index);
            rc = local_append(&buf, &len, head, "");
            if (!rc)
                rc = local_append_file(&buf, &len, path, "  ");
        }
        if (remove && !rc)
            unlink(path);
    }
    *text = rc ? NULL : local_hostdup(s->host, buf);
    free(buf);
    return *text ? 0 : CPAR_ENOMEM;
}

static void local_release(void *state, void *job)
{
    (void)state;
    local_job_free(job);
}

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_local_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "local"), .version = "1.0.0",
             .description = "local processes (LocalControllerLauncher, LocalEngineSetLauncher)",
             .config_sections = local_all_sections, .init = local_init, .fini = local_fini},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = local_names,
    .controller_sections = local_controller_sections,
    .engine_sections = local_engine_sections,
    .start = local_start,
    .stop = local_stop,
    .signal = local_signal,
    .poll = local_poll,
    .save = local_save,
    .restore = local_restore,
    .output = local_output,
    .release = local_release,
};
