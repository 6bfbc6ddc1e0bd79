/*
 * main.c - cpcluster: ipcluster's start, engines, stop, list and clean, with the controller and
 * the engine sets started through launcher plugins and recorded in the cluster file.
 */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "options.h"
#include "util/log.h"

#ifndef CPAR_VERSION
#define CPAR_VERSION "0.0.0"
#endif

/* ipcluster's exit codes */
enum { EXIT_ALREADY_STARTED = 10, EXIT_ALREADY_STOPPED = 11 };

extern char **environ;

static const char usage[] =
    "cpcluster - start, stop and list IPython Parallel clusters (ipcluster's commands)\n"
    "\n"
    "Usage: cpcluster start   [-n N] [--engines=L] [--controller=L] [--daemonize] [options]\n"
    "                         [-- controller arguments]\n"
    "       cpcluster engines [-n N] [--engines=L] [--daemonize] [options]\n"
    "       cpcluster stop    [cluster ids] [--all] [options]\n"
    "       cpcluster list    [-o text|json] [options]\n"
    "       cpcluster clean   [--force] [--all] [options]\n"
    "\n"
    "Settings come from the command line, the IPP_* environment variables and the profile's\n"
    "ipcluster_config.{json,py} (c.Cluster.*, c.<Launcher class>.*), as for ipcluster.\n";

/* ---- the foreground state ------------------------------------------------------------------- */

typedef struct run {
    cl_app_t *app;
    cl_cluster_t *cl;
    cl_comp_t *only;    /* `engines`: the one set this process watches */
    cl_hub_t *hub;
    int signo;          /* a stop signal arrived */
    int exit_code;
    int64_t early_ms;
    int announced;      /* "engines appear to have started" said */
    int last_count;
} run_t;

static void on_stop_signal(void *arg, int signo)
{
    run_t *r = arg;

    r->signo = signo;
    cpar_loop_stop(r->app->loop);
}

static void relay_signal(run_t *r, int signo)
{
    cl_cluster_t *cl = r->cl;

    for (size_t i = 0; i < cl->nsets; i++)
        if (!r->only || cl->sets[i] == r->only) {
            int rc = cpar_launch_signal(cl->sets[i]->job, signo);

            if (rc != 0)
                cpar_warn("cannot send %s to engine set %s: %s", strsignal(signo),
                          cl->sets[i]->set_id, cpar_launcher_error(cl->sets[i]->l));
            else
                cpar_info("sent %s to engine set %s", strsignal(signo), cl->sets[i]->set_id);
        }
}

static void on_relay_signal(void *arg, int signo)
{
    relay_signal(arg, signo);
}

static void early_failure(run_t *r, cl_comp_t *c, const char *detail)
{
    char *text = NULL;

    fprintf(stderr,
            "cpcluster: engine set %s stopped %.1f s after it started%s%s.\n"
            "Engines shutdown early, they probably failed to connect.\n"
            "Check the engine log files for output.\n"
            "If your controller and engines are not on the same machine, you probably have to\n"
            "instruct the controller to listen on an interface other than localhost.\n"
            "You can set this by adding \"--ip='*'\" to your ControllerLauncher.controller_args.\n"
            "Be sure to read our security docs before instructing your controller to listen on\n"
            "a public interface.\n",
            c->set_id, (cpar_loop_now_ms(r->app->loop) - c->started_ms) / 1000.0,
            detail ? ": " : "", detail ? detail : "");
    if (cpar_launch_output(c->job, 0, &text) == 0 && text && *text)
        fprintf(stderr, "cpcluster: engine output:\n%s\n", text);
    free(text);
    r->exit_code = 1;
    cpar_loop_stop(r->app->loop);
}

static void on_tick(void *arg)
{
    run_t *r = arg;
    cl_cluster_t *cl = r->cl;
    int64_t now = cpar_loop_now_ms(r->app->loop);
    int code, changed = 0, total;
    char *detail;

    if (r->hub) {
        cl_hub_tick(r->hub);
        total = cl_cluster_engines_n(cl);
        if (cl_hub_count(r->hub) >= 0 && cl_hub_count(r->hub) != r->last_count) {
            r->last_count = cl_hub_count(r->hub);
            fprintf(stderr, "cpcluster: %d/%d engines registered\n", r->last_count, total);
        }
    }
    if (cl->ctl && cl_cluster_poll_comp(cl, cl->ctl, &code, &detail)) {
        cpar_error("Controller stopped%s%s. Shutting down.", detail ? ": " : "",
                   detail ? detail : "");
        free(detail);
        cl_cluster_drop(cl, cl->ctl);
        cl_cluster_save(cl);
        r->exit_code = 1;
        cpar_loop_stop(r->app->loop);
        return;
    }
    for (size_t i = 0; i < cl->nsets;) {
        cl_comp_t *c = cl->sets[i];

        if (r->only && c != r->only) {
            i++;
            continue;
        }
        if (!cl_cluster_poll_comp(cl, c, &code, &detail)) {
            i++;
            continue;
        }
        if (c->started_ms && now - c->started_ms < r->early_ms) {
            early_failure(r, c, detail);
            free(detail);
            return;
        }
        cpar_warn("engine set %s stopped%s%s", c->set_id, detail ? ": " : "",
                  detail ? detail : "");
        free(detail);
        if (c == r->only)
            r->only = NULL;
        cl_cluster_drop(cl, c);
        changed = 1;
    }
    if (changed)
        cl_cluster_save(cl);
    if (!r->announced && cl->nsets > 0) {
        int young = 0;

        for (size_t i = 0; i < cl->nsets; i++)
            if (cl->sets[i]->started_ms && now - cl->sets[i]->started_ms < r->early_ms)
                young = 1;
        if (!young) {
            cpar_info("Engines appear to have started successfully");
            r->announced = 1;
        }
    }
    /* `engines`: the loop ends when its set is gone (`start` ends with the controller) */
    if (!r->hub && !r->only)
        cpar_loop_stop(r->app->loop);
}

/* Run the reactor for `ms` (or until a stop signal). */
static void stop_loop(void *arg)
{
    cpar_loop_stop(arg);
}

static void run_for(cl_app_t *app, uint64_t ms)
{
    cpar_loop_timer_t *t = cpar_loop_timer_start(app->loop, ms, 0, stop_loop, app->loop);

    if (!t)
        return;
    cpar_loop_run(app->loop);
    cpar_loop_timer_stop(app->loop, t);
}

/*
 * SIGINT and SIGTERM stop what this process started (`engines`: its engine set; ipcluster
 * relays them to the engines instead, which idle Python engines ignore for SIGINT), SIGUSR1 and
 * SIGUSR2 go to the engines.
 */
static int add_signals(run_t *r)
{
    cpar_loop_t *loop = r->app->loop;

    return cpar_loop_add_signal(loop, SIGINT, on_stop_signal, r) ||
           cpar_loop_add_signal(loop, SIGTERM, on_stop_signal, r) ||
           cpar_loop_add_signal(loop, SIGUSR1, on_relay_signal, r) ||
           cpar_loop_add_signal(loop, SIGUSR2, on_relay_signal, r);
}

static int64_t early_shutdown_ms(const cl_app_t *app)
{
    static const char *const secs[] = {"IPClusterStart", "IPClusterEngines", NULL};
    const char *s = cpar_config_pick_section(app->cfg, secs, "early_shutdown");
    double v = 30;

    if (s)
        cpar_config_double(app->cfg, s, "early_shutdown", &v);
    return (int64_t)(v * 1000);
}

static int daemonize(const cl_app_t *app)
{
    static const char *const secs[] = {"IPClusterStart", "IPClusterEngines", NULL};
    const char *s = cpar_config_pick_section(app->cfg, secs, "daemonize");
    int v = 0;

    if (s)
        cpar_config_bool(app->cfg, s, "daemonize", &v);
    return v;
}

/* Watch the cluster in the foreground until it ends or a signal says stop. */
static int foreground(run_t *r)
{
    cpar_loop_timer_t *t;

    r->early_ms = early_shutdown_ms(r->app);
    t = cpar_loop_timer_start(r->app->loop, 500, 2000, on_tick, r);
    if (!t)
        return 1;
    if (!r->signo)
        cpar_loop_run(r->app->loop);
    cpar_loop_timer_stop(r->app->loop, t);
    if (r->signo)
        cpar_info("received %s: stopping the %s", strsignal(r->signo),
                  r->hub ? "cluster" : "engine set");
    if (r->hub)
        cl_cluster_adopt(r->cl);
    cl_cluster_stop_all(r->cl);
    cl_cluster_save(r->cl);
    return r->exit_code;
}

/* ---- subcommands ---------------------------------------------------------------------------- */

static int cmd_start(cl_app_t *app)
{
    char *file = cl_cluster_file(app->profile_dir, app->cluster_id);
    cl_cluster_t *old = NULL, *cl = NULL;
    run_t r = {.app = app, .last_count = -1};
    char err[1024];
    int rc, code;
    char *detail;
    double delay;

    if (!file)
        return 1;
    if (cl_cluster_load(app, file, 1, &old, err, sizeof err) != 0) {
        cpar_error("%s (remove it with `cpcluster clean --force` once nothing of it runs)", err);
        free(file);
        return 1;
    }
    if (old) {
        if (cl_cluster_refresh(old) > 0 || old->ctl_dropped || json_array_size(old->dropped))
            cl_cluster_save(old);
        if (cl_cluster_running(old)) {
            cpar_log(CPAR_LOG_CRITICAL,
                     "Cluster is already running at %s; use `cpcluster stop` to stop it", file);
            cl_cluster_free(old);
            free(file);
            return EXIT_ALREADY_STARTED;
        }
        cpar_warn("removed the stale cluster file %s", file);
        cl_cluster_free(old);
    }
    free(file);
    cl = cl_cluster_new(app);
    if (!cl)
        return 1;
    r.cl = cl;
    if (!daemonize(app) && add_signals(&r) != 0) {
        cpar_error("cannot set up the signal handlers");
        cl_cluster_free(cl);
        return 1;
    }
    if ((rc = cl_cluster_open_launchers(cl, 1, err, sizeof err)) != 0 ||
        (rc = cl_cluster_start_controller(cl, err, sizeof err)) != 0) {
        cpar_error("%s", err);
        cl_cluster_free(cl);
        return 1;
    }
    cl_cluster_save(cl);
    delay = json_number_value(json_object_get(cl->info, "delay"));
    run_for(app, delay > 0 ? (uint64_t)(delay * 1000) : 1);
    if (cl->ctl && cl_cluster_poll_comp(cl, cl->ctl, &code, &detail)) {
        char *text = NULL;

        cpar_error("the controller stopped right after it started%s%s", detail ? ": " : "",
                   detail ? detail : "");
        if (cpar_launch_output(cl->ctl->job, 0, &text) == 0 && text && *text)
            fprintf(stderr, "cpcluster: controller output:\n%s\n", text);
        free(text);
        free(detail);
        cl_cluster_stop_all(cl);
        cl_cluster_save(cl);
        cl_cluster_free(cl);
        return 1;
    }
    if (r.signo) {
        rc = foreground(&r);
        cl_cluster_free(cl);
        return rc;
    }
    if (cl_cluster_start_engines(cl, 0, NULL, err, sizeof err) != 0) {
        cpar_error("%s", err);
        cl_cluster_stop_all(cl);
        cl_cluster_save(cl);
        cl_cluster_free(cl);
        return 1;
    }
    cl_cluster_save(cl);
    if (daemonize(app)) {
        fprintf(stderr, "Leaving cluster running: %s\n", cl->file);
        cl_cluster_free(cl);
        return 0;
    }
    r.hub = cl_hub_new(app->loop, cl->profile_dir, cl->cluster_id);
    rc = foreground(&r);
    cl_hub_free(r.hub);
    cl_cluster_free(cl);
    return rc;
}

static int cmd_engines(cl_app_t *app)
{
    char *file = cl_cluster_file(app->profile_dir, app->cluster_id);
    cl_cluster_t *cl = NULL;
    run_t r = {.app = app, .last_count = -1};
    const char *want = NULL;
    char err[1024];
    int64_t n;
    int rc;

    if (!file)
        return 1;
    rc = cl_cluster_load(app, file, 0, &cl, err, sizeof err);
    if (rc != 0) {
        cpar_error("%s", err);
        free(file);
        return 1;
    }
    free(file);
    cpar_config_string(app->cfg, "Cluster", "engine_launcher_class", &want);
    if (!cl) {
        cl = cl_cluster_new(app);
        if (!cl)
            return 1;
        cpar_info("no cluster file %s: starting engines for a controller started elsewhere",
                  cl->file);
    } else if (want && *want) {
        json_t *disk = json_load_file(cl->file, 0, NULL);
        size_t nsets = json_object_size(json_object_get(json_object_get(disk, "engines"), "sets"));
        const char *name = cpar_launch_plugin_name(want);

        json_decref(disk);
        if (nsets > 0 && strcmp(name, cl->eng_class) != 0) {
            cpar_error("cluster '%s' runs engines of launcher '%s', and a cluster file holds "
                       "engine sets of one launcher: cannot add '%s' engines",
                       cl->cluster_id, cl->eng_class, name);
            cl_cluster_free(cl);
            return 1;
        }
        free(cl->eng_class);
        cl->eng_class = strdup(want);
        if (!cl->eng_class) {
            cl_cluster_free(cl);
            return 1;
        }
    }
    r.cl = cl;
    if (!daemonize(app) && add_signals(&r) != 0) {
        cl_cluster_free(cl);
        return 1;
    }
    if (cpar_config_int(app->cfg, "Cluster", "n", &n) != 0)
        n = 0; /* the cluster's n, else the CPU count */
    if (cl_cluster_start_engines(cl, (int)n, &r.only, err, sizeof err) != 0) {
        cpar_error("Engine start failed: %s", err);
        cl_cluster_free(cl);
        return 1;
    }
    cl_cluster_save(cl);
    if (daemonize(app)) {
        fprintf(stderr, "Leaving engines running: %s\n", cl->file);
        cl_cluster_free(cl);
        return 0;
    }
    rc = foreground(&r);
    cl_cluster_free(cl);
    return rc;
}

static int stop_file(cl_app_t *app, const char *file)
{
    cl_cluster_t *cl = NULL;
    char err[1024];

    if (access(file, F_OK) != 0) {
        cpar_log(CPAR_LOG_CRITICAL, "Could not find cluster file %s: %s", file, strerror(errno));
        return EXIT_ALREADY_STOPPED;
    }
    if (cl_cluster_load(app, file, 1, &cl, err, sizeof err) != 0 || !cl) {
        cpar_error("%s", err);
        return 1;
    }
    cl_cluster_stop_all(cl);
    cl_cluster_save(cl);
    cpar_info("stopped cluster '%s' (%s)", cl->cluster_id, file);
    cl_cluster_free(cl);
    return 0;
}

static int cmd_stop(cl_app_t *app, char **ids, int nids, int all)
{
    int rc = 0, r;

    if (all) {
        glob_t g;
        char *pat = NULL;

        if (asprintf(&pat, "%s/security/cluster-*.json", app->profile_dir) < 0)
            return 1;
        if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
            cpar_info("No clusters to stop");
            free(pat);
            return 0;
        }
        for (size_t i = 0; i < g.gl_pathc; i++)
            if ((r = stop_file(app, g.gl_pathv[i])) != 0)
                rc = r;
        globfree(&g);
        free(pat);
        return rc;
    }
    if (nids == 0) {
        char *file = cl_cluster_file(app->profile_dir, app->cluster_id);

        rc = file ? stop_file(app, file) : 1;
        free(file);
        return rc;
    }
    for (int i = 0; i < nids; i++) {
        char *file = cl_cluster_file(app->profile_dir, ids[i]);

        if ((r = file ? stop_file(app, file) : 1) != 0)
            rc = r;
        free(file);
    }
    return rc;
}

/* The profile directories to look at: the one named, or every profile_* under ipython_dir. */
static char **profile_dirs(cl_app_t *app, int all, size_t *count)
{
    const char *profile = NULL;
    char **out = NULL;
    size_t n = 0;
    DIR *d;
    struct dirent *e;

    cpar_config_string(app->cfg, "BaseIPythonApplication", "profile", &profile);
    if (!all && (cpar_config_get(app->cfg, "ProfileDir", "location") ||
                 (profile && strcmp(profile, "default") != 0))) {
        out = calloc(1, sizeof *out);
        if (out && (out[0] = strdup(app->profile_dir)))
            n = 1;
        *count = n;
        return out;
    }
    d = opendir(app->ipython_dir);
    while (d && (e = readdir(d))) {
        char *p = NULL, **grown;
        struct stat st;

        if (strncmp(e->d_name, "profile_", 8) != 0)
            continue;
        if (asprintf(&p, "%s/%s", app->ipython_dir, e->d_name) < 0)
            break;
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode) || !(grown = realloc(out, (n + 1) * sizeof *out))) {
            free(p);
            continue;
        }
        out = grown;
        out[n++] = p;
    }
    if (d)
        closedir(d);
    for (size_t i = 1; i < n; i++) /* sorted, as ipcluster sorts by profile_dir */
        for (size_t j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0; j--) {
            char *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    *count = n;
    return out;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static const char *launcher_title(const char *name)
{
    static const char *const map[][2] = {
        {"local", "Local"}, {"mpi", "MPI"}, {"ssh", "SSH"}, {"sshproxy", "SSHProxy"},
        {"slurm", "Slurm"}, {"sge", "SGE"}, {"pbs", "PBS"}, {"lsf", "LSF"},
        {"htcondor", "HTCondor"}, {"winhpc", "WindowsHPC"},
    };

    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i][0], name) == 0)
            return map[i][1];
    return name;
}

static int cmd_list(cl_app_t *app)
{
    const char *fmt = "text";
    size_t nprof;
    char **profs = profile_dirs(app, 0, &nprof);
    json_t *all = json_array();
    int as_json, rc = 0;

    if (cpar_config_string(app->cfg, "IPClusterList", "output_format", &fmt) != 0 || !fmt)
        fmt = "text";
    if (strcasecmp(fmt, "json") != 0 && strcasecmp(fmt, "text") != 0) {
        cpar_error("unknown output format '%s': use text or json", fmt);
        free_strs(profs, nprof);
        json_decref(all);
        return 2;
    }
    as_json = strcasecmp(fmt, "json") == 0;
    if (!as_json)
        printf("%-16s %-32s %-7s %-7s %s\n", "PROFILE", "CLUSTER ID", "RUNNING", "ENGINES",
               "LAUNCHER");
    for (size_t p = 0; p < nprof; p++) {
        glob_t g;
        char *pat = NULL;

        if (asprintf(&pat, "%s/security/cluster-*.json", profs[p]) < 0)
            break;
        if (glob(pat, 0, NULL, &g) != 0) {
            free(pat);
            continue;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            cl_cluster_t *cl = NULL;
            char err[1024];

            if (cl_cluster_load(app, g.gl_pathv[i], 1, &cl, err, sizeof err) != 0 || !cl) {
                cpar_error("%s", err);
                rc = 1;
                continue;
            }
            if (cl_cluster_refresh(cl) > 0 || cl->ctl_dropped || json_array_size(cl->dropped))
                cl_cluster_save(cl);
            if (as_json) {
                json_array_append_new(all, cl_cluster_to_dict(cl));
            } else {
                const char *pd = cl->profile_dir, *base = strrchr(pd, '/');
                char profile[PATH_MAX];
                size_t dl = base ? (size_t)(base - pd) : 0;

                if (base && strncmp(base + 1, "profile_", 8) == 0 &&
                    strlen(app->ipython_dir) == dl && strncmp(pd, app->ipython_dir, dl) == 0)
                    snprintf(profile, sizeof profile, "%s", base + 9);
                else
                    snprintf(profile, sizeof profile, "%s", pd);
                printf("%-16s %-32s %-7s %7d %s\n", profile,
                       *cl->cluster_id ? cl->cluster_id : "''", cl->ctl ? "True" : "False",
                       cl_cluster_engines_n(cl), launcher_title(cl->eng_class));
            }
            cl_cluster_free(cl);
        }
        globfree(&g);
        free(pat);
    }
    if (as_json) {
        char *text = json_dumps(all, JSON_COMPACT);

        if (text)
            printf("%s\n", text);
        free(text);
    }
    fflush(stdout);
    json_decref(all);
    free_strs(profs, nprof);
    return rc;
}

static void remove_matching(const char *pattern)
{
    glob_t g;

    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat st;

        if (lstat(g.gl_pathv[i], &st) == 0 && !S_ISDIR(st.st_mode) && unlink(g.gl_pathv[i]) != 0)
            cpar_warn("cannot remove %s: %s", g.gl_pathv[i], strerror(errno));
    }
    globfree(&g);
}

static int cmd_clean(cl_app_t *app, int force, int all)
{
    size_t nprof;
    char **profs = profile_dirs(app, all, &nprof);
    int rc = 0;

    for (size_t p = 0; p < nprof && rc == 0; p++) {
        glob_t g;
        char *pat = NULL;

        if (asprintf(&pat, "%s/security/cluster-*.json", profs[p]) < 0)
            break;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) {
                cl_cluster_t *cl = NULL;
                char err[1024];

                if (cl_cluster_load(app, g.gl_pathv[i], 1, &cl, err, sizeof err) != 0) {
                    if (!force) {
                        cpar_error("%s (use --force to remove it)", err);
                        rc = 1;
                        break;
                    }
                    cpar_warn("%s: removing it", err);
                } else if (cl) {
                    cl_cluster_refresh(cl);
                    if (cl_cluster_running(cl) && !force) {
                        cpar_error("cluster '%s' in %s is running: stop it with `cpcluster stop` "
                                   "or use --force", cl->cluster_id, g.gl_pathv[i]);
                        cl_cluster_free(cl);
                        rc = 1;
                        break;
                    }
                    cl_cluster_free(cl);
                }
                if (unlink(g.gl_pathv[i]) != 0 && errno != ENOENT)
                    cpar_warn("cannot remove %s: %s", g.gl_pathv[i], strerror(errno));
            }
            globfree(&g);
        }
        free(pat);
        if (rc != 0)
            break;
        if (asprintf(&pat, "%s/log/*", profs[p]) > 0) {
            remove_matching(pat);
            free(pat);
        }
        if (asprintf(&pat, "%s/security/ipcontroller-*.json", profs[p]) > 0) {
            remove_matching(pat);
            free(pat);
        }
    }
    free_strs(profs, nprof);
    return rc;
}

/* ---- settings ------------------------------------------------------------------------------- */

/* c.IPClusterStart.X / c.IPClusterEngines.X are 7.1's deprecated names for c.Cluster.X. */
static void copy_deprecated(cpar_config_t *cfg)
{
    static const char *const keys[] = {"delay", "engine_launcher_class",
                                       "controller_launcher_class", "controller_ip",
                                       "controller_location", "n", NULL};
    static const char *const secs[] = {"IPClusterEngines", "IPClusterStart", NULL};

    for (const char *const *s = secs; *s; s++)
        for (const char *const *k = keys; *k; k++) {
            json_t *v = cpar_config_get(cfg, *s, *k);
            cpar_cfg_source_t src;

            if (!v)
                continue;
            src = cpar_config_source(cfg, *s, *k);
            cpar_warn("%s.%s (from %s) is deprecated: use Cluster.%s", *s, *k,
                      cpar_config_origin(cfg, *s, *k), *k);
            if (!cpar_config_get(cfg, "Cluster", *k) || cpar_config_source(cfg, "Cluster", *k) < src)
                cpar_config_set(cfg, "Cluster", *k, json_incref(v), src,
                                cpar_config_origin(cfg, *s, *k));
        }
}

static const char *app_string(const cpar_config_t *cfg, const char *key)
{
    const char *section = cpar_config_pick_section(cfg, cpcluster_app_sections, key);
    const char *v = NULL;

    if (section)
        cpar_config_string(cfg, section, key, &v);
    return v;
}

static int load_extra_config(cpar_config_t *cfg)
{
    const char *path = app_string(cfg, "extra_config_file");
    char err[1024];
    size_t len;
    int rc;

    if (!path || !*path)
        return 0;
    len = strlen(path);
    if (access(path, R_OK) != 0) {
        cpar_error("cannot read the config file %s: %s", path, strerror(errno));
        return CPAR_ECONFIG;
    }
    rc = len > 5 && strcmp(path + len - 5, ".json") == 0
             ? cpar_config_load_json(cfg, path, err, sizeof err)
             : cpar_config_load_py(cfg, path, err, sizeof err);
    if (rc != 0)
        cpar_error("%s", err);
    return rc;
}

static char *self_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);

    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return strdup(dirname(buf));
}

static int setup_app(cl_app_t *app, const char *cmd)
{
    char err[1024], cwd[PATH_MAX];
    const char *v;
    int creates = !strcmp(cmd, "start") || !strcmp(cmd, "engines");
    int to_file = 0;

    app->profile_dir = cpar_profile_dir(app->cfg);
    if (!app->profile_dir)
        return 1;
    if (creates && cpar_profile_create(app->profile_dir, err, sizeof err) != 0) {
        cpar_error("%s", err);
        return 1;
    }
    if (cpar_config_load_profile(app->cfg, app->profile_dir, "ipcluster", err, sizeof err) != 0) {
        cpar_error("%s", err);
        return 2;
    }
    if (load_extra_config(app->cfg) != 0)
        return 2;
    copy_deprecated(app->cfg);
    if (cpar_config_apply_log_level(app->cfg, cpcluster_app_sections) != 0)
        return 2;
    v = app_string(app->cfg, "cluster_id");
    app->cluster_id = strdup(v ? v : "");
    v = app_string(app->cfg, "ipython_dir");
    if (v && *v) {
        app->ipython_dir = realpath(v, NULL);
        if (!app->ipython_dir)
            app->ipython_dir = strdup(v);
    } else {
        const char *home = getenv("HOME");
        if (asprintf(&app->ipython_dir, "%s/.ipython", home ? home : ".") < 0)
            app->ipython_dir = NULL;
    }
    v = app_string(app->cfg, "work_dir");
    if (v && *v && chdir(v) != 0) {
        cpar_error("cannot change to the work directory %s: %s", v, strerror(errno));
        return 1;
    }
    if (!getcwd(cwd, sizeof cwd) || !(app->work_dir = strdup(cwd)) || !app->cluster_id ||
        !app->ipython_dir)
        return 1;
    app->self_dir = self_dir();
    {
        const char *section = cpar_config_pick_section(app->cfg, cpcluster_app_sections,
                                                       "log_to_file");
        if (section)
            cpar_config_bool(app->cfg, section, "log_to_file", &to_file);
    }
    if (to_file && creates) {
        char *path = NULL;
        int rc = *app->cluster_id
                     ? asprintf(&path, "%s/log/ipcluster-%s-%d.log", app->profile_dir,
                                app->cluster_id, (int)getpid())
                     : asprintf(&path, "%s/log/ipcluster-%d.log", app->profile_dir, (int)getpid());

        if (rc < 0)
            return 1;
        if (!freopen(path, "a", stderr)) {
            fprintf(stdout, "cpcluster: cannot open the log file %s\n", path);
            free(path);
            return 1;
        }
        setvbuf(stderr, NULL, _IOLBF, 0);
        free(path);
    }
    return 0;
}

static void app_fini(cl_app_t *app)
{
    if (app->ph)
        cpar_plughost_free(app->ph);
    if (app->loop)
        cpar_loop_free(app->loop);
    cpar_config_free(app->cfg);
    free(app->profile_dir);
    free(app->cluster_id);
    free(app->ipython_dir);
    free(app->work_dir);
    free(app->self_dir);
}

int main(int argc, char **argv)
{
    cl_app_t app;
    cpar_cli_result_t cli;
    cpar_plughost_info_t info;
    char err[1024];
    const char *cmd;
    int nargs = argc, rc = 0;

    memset(&app, 0, sizeof app);
    cpar_log_set_program("cpcluster");
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            nargs = i;
            app.extra_args = argv + i + 1;
            app.nextra = argc - i - 1;
            break;
        }
    app.cfg = cpar_config_new();
    if (!app.cfg)
        return 1;
    cpar_config_load_env(app.cfg, environ);
    if (cpar_cli_parse(app.cfg, cpcluster_options, nargs, argv, &cli, err, sizeof err) != 0) {
        fprintf(stderr, "cpcluster: %s (see --help)\n", err);
        app_fini(&app);
        return 2;
    }
    if (cli.actions & CL_ACT_HELP) {
        cpar_cli_help(cpcluster_options, usage, stdout);
        app_fini(&app);
        return 0;
    }
    if (cli.actions & CL_ACT_VERSION) {
        printf("%s\n", CPAR_VERSION);
        app_fini(&app);
        return 0;
    }
    if (cli.npositional == 0) {
        fprintf(stderr, "%s\ncpcluster: no subcommand given (start, engines, stop, list, clean)\n",
                usage);
        app_fini(&app);
        return 1;
    }
    cmd = cli.positional[0];
    if (strcmp(cmd, "start") && strcmp(cmd, "engines") && strcmp(cmd, "stop") &&
        strcmp(cmd, "list") && strcmp(cmd, "clean")) {
        fprintf(stderr, "cpcluster: unknown subcommand '%s' (start, engines, stop, list, clean)\n",
                cmd);
        app_fini(&app);
        return 1;
    }
    if (strcmp(cmd, "stop") != 0 && cli.npositional > 1) {
        fprintf(stderr, "cpcluster: unexpected argument '%s' (see --help)\n", cli.positional[1]);
        app_fini(&app);
        return 2;
    }
    if (app.nextra > 0 && strcmp(cmd, "start") != 0) {
        fprintf(stderr, "cpcluster: arguments after '--' are controller arguments, for start\n");
        app_fini(&app);
        return 2;
    }
    if (cpar_config_apply_log_level(app.cfg, cpcluster_app_sections) != 0 || (rc = setup_app(&app, cmd)) != 0) {
        app_fini(&app);
        return rc ? rc : 2;
    }
    if (cpar_loop_new(&app.loop) != 0) {
        app_fini(&app);
        return 1;
    }
    info = (cpar_plughost_info_t){"cpcluster", app.profile_dir, app.cluster_id, "", 0};
    if (cpar_plughost_new(&app.ph, app.cfg, app.loop, &info) != 0) {
        cpar_error("cannot start the plugin host");
        app_fini(&app);
        return 1;
    }
    if (!strcmp(cmd, "start"))
        rc = cmd_start(&app);
    else if (!strcmp(cmd, "engines"))
        rc = cmd_engines(&app);
    else if (!strcmp(cmd, "stop"))
        rc = cmd_stop(&app, cli.positional + 1, cli.npositional - 1,
                      (cli.actions & CL_ACT_ALL) != 0);
    else if (!strcmp(cmd, "list"))
        rc = cmd_list(&app);
    else
        rc = cmd_clean(&app, (cli.actions & CL_ACT_FORCE) != 0, (cli.actions & CL_ACT_ALL) != 0);
    app_fini(&app);
    return rc;
}
