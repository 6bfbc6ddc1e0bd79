/*
 * launch.c - the core's front for launcher plugins (see launch.h): ipyparallel's launcher names,
 * loading and checking, and the operations, run by the plugin or by the batch driver (batch.c)
 * for a batch launcher's NULL operations.
 */
#include "launch.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "batch.h"

struct cpar_launcher_h {
    cpar_plughost_t *host;
    cpar_plugin_inst_t *inst;
    const cpar_launcher_t *desc;
    cpar_batch_ctx_t bc;
    char err[2048];
};

struct cpar_launch_job {
    cpar_launcher_h *l;
    void *pjob;             /* the plugin's handle, when its start or restore made one */
    cpar_batch_job_t *bjob; /* the driver's, for a batch launcher */
};

/* ---- names -------------------------------------------------------------------------------- */

/* ipyparallel 7.1's registered short names (entry points), which are also the plugin names. */
static const char *const launch_short[] = {"local", "mpi", "ssh",      "sshproxy", "pbs",   "sge",
                                           "slurm", "lsf", "htcondor", "winhpc",   "batch", NULL};

/* Class-name stems (the class name without its role suffix) and their plugin. */
static const struct {
    const char *stem, *plugin;
} launch_stems[] = {
    {"Local", "local"},       {"MPI", "mpi"},           {"MPIExec", "mpi"},
    {"SSH", "ssh"},           {"SSHProxy", "sshproxy"}, {"PBS", "pbs"},
    {"SGE", "sge"},           {"Slurm", "slurm"},       {"LSF", "lsf"},
    {"HTCondor", "htcondor"}, {"WindowsHPC", "winhpc"}, {"Batch", "batch"},
    {"BatchSystem", "batch"},
};

/* Role suffixes of ipyparallel's class names, longest first. */
static const char *const launch_suffixes[] = {"ControllerLauncher", "EngineSetLauncher",
                                              "EngineLauncher",     "ProcessLauncher",
                                              "Launcher",           NULL};

static const char *launch_basename(const char *cls)
{
    const char *dot = strrchr(cls, '.');
    return dot ? dot + 1 : cls;
}

const char *cpar_launch_plugin_name(const char *cls)
{
    const char *base;
    size_t len;

    if (!cls)
        return "";
    for (size_t i = 0; launch_short[i]; i++)
        if (strcasecmp(cls, launch_short[i]) == 0)
            return launch_short[i];
    base = launch_basename(cls);
    len = strlen(base);
    for (size_t s = 0; launch_suffixes[s]; s++) {
        size_t sl = strlen(launch_suffixes[s]);
        if (len <= sl || strcasecmp(base + len - sl, launch_suffixes[s]) != 0)
            continue;
        for (size_t i = 0; i < sizeof launch_stems / sizeof launch_stems[0]; i++)
            if (strlen(launch_stems[i].stem) == len - sl &&
                strncasecmp(base, launch_stems[i].stem, len - sl) == 0)
                return launch_stems[i].plugin;
        break;
    }
    return cls;
}

/* Whether `cls` (any case, with or without a module path) is one of the plugin's names. */
static int launch_names_match(const cpar_launcher_t *d, const char *cls)
{
    const char *base = launch_basename(cls);

    if (strcasecmp(cls, d->base.name) == 0)
        return 1;
    for (const char *const *n = d->names; n && *n; n++)
        if (strcasecmp(cls, *n) == 0 || strcasecmp(base, launch_basename(*n)) == 0)
            return 1;
    return 0;
}

/* ---- open and close ----------------------------------------------------------------------- */

static const char *launch_role_name(cpar_launch_role_t role)
{
    return role == CPAR_ROLE_CONTROLLER ? "a controller" : "engines";
}

/* Look through every launcher plugin of the search path for one whose names include `cls`. */
static int launch_scan(cpar_plughost_t *host, const char *cls, cpar_plugin_inst_t **out)
{
    char *path = strdup(cpar_plughost_search_path(host));
    char *save = NULL;

    if (!path)
        return CPAR_ENOMEM;
    for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
            continue;
        while ((de = readdir(d)) != NULL) {
            size_t n = strlen(de->d_name);
            char name[128], err[256];
            cpar_plugin_inst_t *inst;

            if (n <= 17 || strncmp(de->d_name, "cpar_launcher_", 14) != 0 ||
                strcmp(de->d_name + n - 3, ".so") != 0 || n - 17 >= sizeof name)
                continue;
            memcpy(name, de->d_name + 14, n - 17);
            name[n - 17] = '\0';
            if (cpar_plughost_load(host, CPAR_KIND_LAUNCHER, name, &inst, err, sizeof err) != 0)
                continue;
            if (launch_names_match((const cpar_launcher_t *)cpar_plugin_desc(inst), cls)) {
                closedir(d);
                free(path);
                *out = inst;
                return 0;
            }
            cpar_plughost_unload(host, inst);
        }
        closedir(d);
    }
    free(path);
    return CPAR_ENOENT;
}

int cpar_launcher_open(cpar_plughost_t *host, const char *cls, cpar_launch_role_t role,
                       cpar_launcher_h **out, char *err, size_t errlen)
{
    const char *name = cpar_launch_plugin_name(cls);
    cpar_plugin_inst_t *inst = NULL;
    const cpar_launcher_t *d;
    cpar_launcher_h *l;
    int rc;

    if (!host || !cls || !*cls || !out) {
        snprintf(err, errlen, "no launcher named");
        return CPAR_EINVAL;
    }
    *out = NULL;
    rc = cpar_plughost_load(host, CPAR_KIND_LAUNCHER, name, &inst, err, errlen);
    if ((rc == CPAR_ENOENT || rc == CPAR_EINVAL) && launch_scan(host, cls, &inst) == 0)
        rc = 0;
    if (rc) {
        if (rc == CPAR_EINVAL && errlen) {
            /* A class path that no plugin claims: say it the way a missing plugin is said. */
            snprintf(err, errlen,
                     "launcher '%s' not found: no launcher plugin has that name "
                     "or class name (searched: %s)",
                     cls, cpar_plughost_search_path(host));
            rc = CPAR_ENOENT;
        }
        return rc;
    }
    d = (const cpar_launcher_t *)cpar_plugin_desc(inst);
    if (!(d->roles & (unsigned)role)) {
        snprintf(err, errlen, "launcher '%s' (%s) cannot start %s", cls, d->base.name,
                 launch_role_name(role));
        cpar_plughost_unload(host, inst);
        return CPAR_ENOTSUP;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "%s", cpar_strerror(CPAR_ENOMEM));
        cpar_plughost_unload(host, inst);
        return CPAR_ENOMEM;
    }
    l->host = host;
    l->inst = inst;
    l->desc = d;
    l->bc.host = cpar_plughost_table();
    l->bc.ctx = cpar_plugin_ctx(inst);
    l->bc.name = d->base.name;
    l->bc.sys = d->batch;
    *out = l;
    return 0;
}

void cpar_launcher_close(cpar_plughost_t *host, cpar_launcher_h *l)
{
    if (!l)
        return;
    cpar_plughost_unload(host ? host : l->host, l->inst);
    free(l);
}

const char *cpar_launcher_name(const cpar_launcher_h *l)
{
    return l ? l->desc->base.name : "";
}

const char *const *cpar_launcher_sections(const cpar_launcher_h *l, cpar_launch_role_t role)
{
    static const char *const none[] = {NULL};

    if (!l)
        return none;
    if (role == CPAR_ROLE_CONTROLLER)
        return l->desc->controller_sections ? l->desc->controller_sections : none;
    return l->desc->engine_sections ? l->desc->engine_sections : none;
}

const char *cpar_launcher_error(const cpar_launcher_h *l)
{
    return l ? l->err : "";
}

/* ---- operations --------------------------------------------------------------------------- */

static void launch_begin(cpar_launcher_h *l)
{
    l->err[0] = '\0';
    cpar_plugin_clear_error(l->inst);
}

/* Record the failure text of `rc` from operation `op`. */
static int launch_end(cpar_launcher_h *l, const char *op, int rc)
{
    if (rc < 0) {
        const char *detail = cpar_plugin_error(l->inst);
        snprintf(l->err, sizeof l->err, "launcher %s: %s: %s", l->desc->base.name, op,
                 detail[0] ? detail : cpar_strerror(rc));
    }
    return rc;
}

static int launch_notsup(cpar_launcher_h *l, const char *op)
{
    snprintf(l->err, sizeof l->err, "launcher %s: %s: not supported", l->desc->base.name, op);
    return CPAR_ENOTSUP;
}

static void *launch_state(const cpar_launcher_h *l)
{
    return cpar_plugin_state(l->inst);
}

static void launch_job_free(cpar_launch_job_t *j)
{
    if (j->pjob && j->l->desc->release)
        j->l->desc->release(launch_state(j->l), j->pjob);
    if (j->bjob)
        cpar_batch_release(j->bjob);
    free(j);
}

int cpar_launch_start(cpar_launcher_h *l, const cpar_launch_spec_t *spec, cpar_launch_job_t **job,
                      char **start_json)
{
    const cpar_launcher_t *d;
    cpar_launch_job_t *j;
    char *sj = NULL;
    int rc;

    if (!l || !spec || !job)
        return CPAR_EINVAL;
    d = l->desc;
    *job = NULL;
    if (start_json)
        *start_json = NULL;
    launch_begin(l);
    if (!(d->roles & (unsigned)spec->role)) {
        snprintf(l->err, sizeof l->err, "launcher %s cannot start %s", d->base.name,
                 launch_role_name(spec->role));
        return CPAR_ENOTSUP;
    }
    j = calloc(1, sizeof *j);
    if (!j)
        return launch_end(l, "start", CPAR_ENOMEM);
    j->l = l;
    if (d->start) {
        rc = d->start(launch_state(l), spec, &j->pjob, &sj);
        if (rc == 0 && d->batch)
            rc = cpar_batch_adopt(&l->bc, spec, sj, &j->bjob);
    } else {
        rc = cpar_batch_start(&l->bc, spec, &j->bjob, &sj);
    }
    if (rc) {
        free(sj);
        launch_job_free(j);
        return launch_end(l, "start", rc);
    }
    if (start_json)
        *start_json = sj;
    else
        free(sj);
    *job = j;
    return 0;
}

int cpar_launch_restore(cpar_launcher_h *l, const cpar_launch_spec_t *spec, const char *state_json,
                        cpar_launch_job_t **job)
{
    const cpar_launcher_t *d;
    cpar_launch_job_t *j;
    int rc = 0;

    if (!l || !spec || !state_json || !job)
        return CPAR_EINVAL;
    d = l->desc;
    *job = NULL;
    launch_begin(l);
    j = calloc(1, sizeof *j);
    if (!j)
        return launch_end(l, "restore", CPAR_ENOMEM);
    j->l = l;
    if (d->batch)
        rc = cpar_batch_restore(&l->bc, spec, state_json, &j->bjob);
    if (rc == 0 && d->restore)
        rc = d->restore(launch_state(l), spec, state_json, &j->pjob);
    if (rc) {
        launch_job_free(j);
        return launch_end(l, "restore", rc);
    }
    *job = j;
    return 0;
}

int cpar_launch_stop(cpar_launch_job_t *j, char **stop_json)
{
    char *sj = NULL;
    int rc;

    if (!j)
        return CPAR_EINVAL;
    if (stop_json)
        *stop_json = NULL;
    launch_begin(j->l);
    if (j->l->desc->stop)
        rc = j->l->desc->stop(launch_state(j->l), j->pjob, &sj);
    else
        rc = cpar_batch_stop(j->bjob, &sj);
    if (stop_json)
        *stop_json = sj;
    else
        free(sj);
    return launch_end(j->l, "stop", rc);
}

int cpar_launch_signal(cpar_launch_job_t *j, int signum)
{
    int rc;

    if (!j)
        return CPAR_EINVAL;
    launch_begin(j->l);
    if (j->l->desc->signal)
        rc = j->l->desc->signal(launch_state(j->l), j->pjob, signum);
    else if (j->bjob)
        rc = cpar_batch_signal(j->bjob, signum);
    else
        return launch_notsup(j->l, "signal");
    return launch_end(j->l, "signal", rc);
}

int cpar_launch_poll(cpar_launch_job_t *j, cpar_job_state_t *st, int *exit_code, char **detail)
{
    int code = CPAR_EXIT_UNKNOWN, rc;
    char *dt = NULL;

    if (!j || !st)
        return CPAR_EINVAL;
    if (detail)
        *detail = NULL;
    launch_begin(j->l);
    if (j->l->desc->poll)
        rc = j->l->desc->poll(launch_state(j->l), j->pjob, st, &code, &dt);
    else
        rc = cpar_batch_poll(j->bjob, st, &code, &dt);
    if (exit_code)
        *exit_code = code;
    if (detail)
        *detail = dt;
    else
        free(dt);
    return launch_end(j->l, "poll", rc);
}

int cpar_launch_save(cpar_launch_job_t *j, char **state_json)
{
    int rc;

    if (!j || !state_json)
        return CPAR_EINVAL;
    *state_json = NULL;
    launch_begin(j->l);
    if (j->l->desc->save)
        rc = j->l->desc->save(launch_state(j->l), j->pjob, state_json);
    else
        rc = cpar_batch_save(j->bjob, state_json);
    return launch_end(j->l, "save", rc);
}

int cpar_launch_output(cpar_launch_job_t *j, int remove, char **text)
{
    int rc;

    if (!j || !text)
        return CPAR_EINVAL;
    *text = NULL;
    launch_begin(j->l);
    if (j->l->desc->output)
        rc = j->l->desc->output(launch_state(j->l), j->pjob, remove, text);
    else if (j->bjob)
        rc = cpar_batch_output(j->bjob, remove, text);
    else
        return launch_notsup(j->l, "output");
    return launch_end(j->l, "output", rc);
}

void cpar_launch_release(cpar_launch_job_t *j)
{
    if (!j)
        return;
    launch_job_free(j);
}
