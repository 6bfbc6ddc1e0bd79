/*
 * ssh.c - the SSH launchers: cpar_launcher_ssh.so (ipyparallel's SSHEngineSetLauncher and
 * SSHControllerLauncher) and, built again with CPAR_SSH_PROXY, cpar_launcher_sshproxy.so
 * (SSHProxyEngineSetLauncher).
 *
 * Every remote step is one `ssh_cmd ssh_args [user@]host '<command>'` run to completion through
 * host->run (scp likewise); nothing keeps a connection or a thread open:
 *
 *   1. first process on a host: `<remote_python> -m IPython profile create --profile-dir <rpd>`
 *      and `mkdir -p` of the remote security and log directories, in one round trip; then, for
 *      engines, the two connection files are sent with one scp (waiting up to 10 s for them);
 *   2. `nohup <argv> > <remote_output_file> 2>&1 </dev/null & echo __remote_pid=$!__`; the pid
 *      is parsed from the output;
 *   3. poll: one `kill -0` round trip per host with a short timeout (poll_timeout, 10 s) for all
 *      the pids there; an ssh that fails leaves the state UNKNOWN. A remote controller's
 *      connection files are fetched with scp by the first poll that finds them there;
 *   4. signal: `kill -<sig> <pids>`; stop: SIGTERM, a remote wait of stop_seconds_until_kill,
 *      then SIGKILL, all in one round trip per host;
 *   5. output: `cat <remote_output_file>` (and `rm -f` it when asked to remove it).
 *
 * The remote command line is spec.program + spec.program_args, with the remote profile
 * directory in place of --profile-dir's value and, for `python -m <module>` programs,
 * remote_python in place of the python.
 *
 * ssh engines come from the `engines` dict, {"[user@]host[:port]": n or {"n": n, <setting>:
 * value, ...}}, filled in order until spec.n engines run (with no dict: `hostname` gets them
 * all). sshproxy runs `cpcluster engines -n <n> --profile-dir <rpd> --cluster-id <id>` (setting
 * ipcluster_cmd, default ["cpcluster"], plus ipcluster_args) on `hostname`, which starts the
 * engines there and relays signals to them.
 *
 * Settings: ssh_cmd (["ssh"]), ssh_args ([]), scp_cmd (["scp"]), scp_args ([]), user (""),
 * hostname ("localhost"), remote_profile_dir (the local one without a leading $HOME/),
 * remote_python ("python3"), remote_output_file (<rpd>/log/<name>-<time>.out), ssh_timeout (60),
 * poll_timeout (10), stop_seconds_until_kill (5), engines ({}), send_connection_files (true;
 * false when the remote host shares the profile's filesystem), ipcluster_cmd and ipcluster_args
 * (sshproxy).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lutil.h"

#define SSH_UNUSED __attribute__((unused))

#ifdef CPAR_SSH_PROXY
#define SSH_PLUGIN_NAME "sshproxy"
#else
#define SSH_PLUGIN_NAME "ssh"
#endif

typedef struct ssh_state {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} ssh_state_t;

/* One remote process. */
typedef struct ssh_proc {
    char *key; /* "<host spec>/<i>" for engines, the location otherwise */
    lu_strv_t ssh_cmd, ssh_args, scp_cmd, scp_args;
    char *user, *hostname, *location;
    char *remote_profile_dir, *remote_python, *remote_output_file;
    int64_t pid;
    int ended;
} ssh_proc_t;

typedef struct ssh_job {
    cpar_launch_role_t role;
    int n;
    char *profile_dir, *cluster_id, *identifier;
    ssh_proc_t *procs;
    size_t nprocs;
    int timeout_ms, poll_timeout_ms, kill_after_ms;
    int fetch_pending; /* controller: connection files not fetched yet */
    char *fetch_local[2], *fetch_remote[2];
} ssh_job_t;

static int ssh_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    ssh_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return CPAR_ENOMEM;
    s->host = host;
    s->ctx = ctx;
    *state = s;
    return 0;
}

static void ssh_fini(void *state)
{
    free(state);
}

static void ssh_proc_clear(ssh_proc_t *p)
{
    free(p->key);
    lu_strv_free(&p->ssh_cmd);
    lu_strv_free(&p->ssh_args);
    lu_strv_free(&p->scp_cmd);
    lu_strv_free(&p->scp_args);
    free(p->user);
    free(p->hostname);
    free(p->location);
    free(p->remote_profile_dir);
    free(p->remote_python);
    free(p->remote_output_file);
    memset(p, 0, sizeof *p);
}

static void ssh_job_free(ssh_job_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nprocs; i++)
        ssh_proc_clear(&j->procs[i]);
    free(j->procs);
    free(j->profile_dir);
    free(j->cluster_id);
    free(j->identifier);
    for (int i = 0; i < 2; i++) {
        free(j->fetch_local[i]);
        free(j->fetch_remote[i]);
    }
    free(j);
}

/* The connection file `which` ("client"/"engine") of the cluster under `dir`, malloc'd. */
static char *ssh_conn_file(const char *dir, const char *cluster_id, const char *which)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/security/ipcontroller%s%s-%s.json", dir,
             cluster_id && *cluster_id ? "-" : "", cluster_id ? cluster_id : "", which);
    return strdup(buf);
}

static int ssh_strv_has(const lu_strv_t *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return 1;
    return 0;
}

/* A string-list setting from an override dict, or the section chain. */
static int ssh_list(ssh_state_t *s, const cpar_launch_spec_t *spec, const json_t *over,
                    const char *key, const char *const *dflt, lu_strv_t *out)
{
    const json_t *v = over ? json_object_get(over, key) : NULL;
    if (v) {
        if (lu_strv_from_json(out, v) != 0) {
            s->host->set_error(s->ctx, "engines: %s must be a list of strings", key);
            return CPAR_ECONFIG;
        }
        return 0;
    }
    return lu_config_list(s->host, s->ctx, spec, key, dflt, out);
}

static char *ssh_str(ssh_state_t *s, const cpar_launch_spec_t *spec, const json_t *over,
                     const char *key, const char *dflt)
{
    const char *v = over ? json_string_value(json_object_get(over, key)) : NULL;
    if (v)
        return strdup(v);
    return lu_config_str(s->host, s->ctx, spec, key, dflt);
}

/*
 * Fill `p` from the settings, the override dict `over` (may be NULL) and the host spec
 * "[user@]host[:port]" (NULL: the hostname and user settings).
 */
static int ssh_proc_configure(ssh_state_t *s, const cpar_launch_spec_t *spec, const json_t *over,
                              const char *hostspec, const char *name, ssh_proc_t *p)
{
    static const char *const dflt_ssh[] = {"ssh", NULL};
    static const char *const dflt_scp[] = {"scp", NULL};
    char buf[4096];
    int rc;

    if ((rc = ssh_list(s, spec, over, "ssh_cmd", dflt_ssh, &p->ssh_cmd)) ||
        (rc = ssh_list(s, spec, over, "ssh_args", NULL, &p->ssh_args)) ||
        (rc = ssh_list(s, spec, over, "scp_cmd", dflt_scp, &p->scp_cmd)) ||
        (rc = ssh_list(s, spec, over, "scp_args", NULL, &p->scp_args)))
        return rc;
    if (p->ssh_cmd.n == 0 || p->scp_cmd.n == 0) {
        s->host->set_error(s->ctx, "ssh_cmd and scp_cmd must not be empty");
        return CPAR_ECONFIG;
    }
    if (hostspec) {
        const char *at = strchr(hostspec, '@');
        const char *hs = at ? at + 1 : hostspec;
        const char *colon = strrchr(hs, ':');
        p->user =
            at ? strndup(hostspec, (size_t)(at - hostspec)) : ssh_str(s, spec, over, "user", "");
        p->hostname = colon ? strndup(hs, (size_t)(colon - hs)) : strdup(hs);
        if (colon && colon[1]) {
            if (!ssh_strv_has(&p->ssh_args, "-p")) {
                lu_strv_add(&p->ssh_args, "-p");
                lu_strv_add(&p->ssh_args, colon + 1);
            }
            if (!ssh_strv_has(&p->scp_args, "-P")) {
                lu_strv_add(&p->scp_args, "-P");
                lu_strv_add(&p->scp_args, colon + 1);
            }
        }
    } else {
        p->user = ssh_str(s, spec, over, "user", "");
        p->hostname = ssh_str(s, spec, over, "hostname", "localhost");
    }
    if (!p->user || !p->hostname)
        return CPAR_ENOMEM;
    if (!*p->hostname) {
        s->host->set_error(s->ctx, "no host to run on (setting hostname)");
        return CPAR_ECONFIG;
    }
    snprintf(buf, sizeof buf, "%s%s%s", p->user, *p->user ? "@" : "", p->hostname);
    p->location = strdup(buf);

    /* The local profile directory relative to the remote home when it is below $HOME. */
    const char *home = getenv("HOME");
    const char *pd = spec->profile_dir ? spec->profile_dir : "";
    size_t hl = home ? strlen(home) : 0;
    const char *rel = pd;
    if (hl > 1 && strncmp(pd, home, hl) == 0 && pd[hl] == '/')
        rel = pd + hl + 1;
    p->remote_profile_dir = ssh_str(s, spec, over, "remote_profile_dir", rel);
    p->remote_python = ssh_str(s, spec, over, "remote_python", "python3");
    snprintf(buf, sizeof buf, "%s/log/%s-%.4f.out",
             p->remote_profile_dir ? p->remote_profile_dir : "", name,
             (double)s->host->now_us() / 1e6);
    p->remote_output_file = ssh_str(s, spec, over, "remote_output_file", buf);
    if (!p->location || !p->remote_profile_dir || !p->remote_python || !p->remote_output_file ||
        p->ssh_args.oom || p->scp_args.oom)
        return CPAR_ENOMEM;
    return 0;
}

/* Run argv; a missing program or a failed run is explained. *out host->alloc'd. */
static int ssh_exec(ssh_state_t *s, const lu_strv_t *argv, int timeout_ms, int *status, char **out)
{
    char *err = NULL;
    int rc = s->host->run(s->ctx, lu_strv_argv(argv), NULL, timeout_ms, status, out, &err);
    if (rc == 0 && *status != 0) {
        /* Keep the command's own message (its last line) for the caller. */
        char *msg = err ? err : (out ? *out : NULL);
        size_t len = msg ? strlen(msg) : 0;
        while (len && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
            msg[--len] = '\0';
        s->host->set_error(s->ctx, "%s %s exited with %d: %s", argv->v[0],
                           argv->n > 1 ? argv->v[argv->n - 2] : "", *status,
                           len ? msg : "(no output)");
    }
    if (err)
        s->host->free(err);
    return rc;
}

/* ssh to p's host and run `cmd` there. */
static int ssh_remote(ssh_state_t *s, const ssh_proc_t *p, const char *cmd, int timeout_ms,
                      int *status, char **out)
{
    lu_strv_t argv = {0};
    lu_strv_addv(&argv, lu_strv_argv(&p->ssh_cmd));
    lu_strv_addv(&argv, lu_strv_argv(&p->ssh_args));
    lu_strv_add(&argv, p->location);
    lu_strv_add(&argv, cmd);
    int rc = argv.oom ? CPAR_ENOMEM : ssh_exec(s, &argv, timeout_ms, status, out);
    lu_strv_free(&argv);
    return rc;
}

/* ssh and require exit status 0. */
static int ssh_remote_ok(ssh_state_t *s, const ssh_proc_t *p, const char *cmd, int timeout_ms,
                         char **out)
{
    int status = 0;
    char *o = NULL;
    int rc = ssh_remote(s, p, cmd, timeout_ms, &status, &o);
    if (rc == 0 && status != 0)
        rc = CPAR_EIO;
    if (rc == 0 && out)
        *out = o;
    else if (o)
        s->host->free(o);
    return rc;
}

/* The shell-quoted words of argv joined with spaces, malloc'd. */
static char *ssh_join(ssh_state_t *s, const char *const *argv)
{
    char *q = NULL;
    if (s->host->shell_join(s->ctx, argv, &q) != 0)
        return NULL;
    char *r = strdup(q);
    s->host->free(q);
    return r;
}

/* A shell-quoted word, malloc'd. */
static char *ssh_quote(ssh_state_t *s, const char *word)
{
    const char *argv[] = {word, NULL};
    return ssh_join(s, argv);
}

static char *ssh_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* Create the remote profile and the directories the process needs, in one round trip. */
static int ssh_prepare(ssh_state_t *s, ssh_job_t *j, const ssh_proc_t *p)
{
    char *py = ssh_quote(s, p->remote_python);
    char *rpd = ssh_quote(s, p->remote_profile_dir);
    char *sec_raw = NULL, *log_raw = ssh_dirname(p->remote_output_file);
    char *sec = NULL, *logd = NULL, *cmd = NULL;
    int rc = CPAR_ENOMEM;
    size_t len;

    if (asprintf(&sec_raw, "%s/security", p->remote_profile_dir) < 0)
        sec_raw = NULL;
    if (!py || !rpd || !sec_raw || !log_raw)
        goto done;
    sec = ssh_quote(s, sec_raw);
    logd = ssh_quote(s, log_raw);
    if (!sec || !logd)
        goto done;
    len = strlen(py) + strlen(rpd) + strlen(sec) + strlen(logd) + 128;
    cmd = malloc(len);
    if (!cmd)
        goto done;
    snprintf(cmd, len,
             "%s -m IPython profile create --profile-dir %s >/dev/null 2>&1; "
             "mkdir -p %s %s",
             py, rpd, sec, logd);
    rc = ssh_remote_ok(s, p, cmd, j->timeout_ms, NULL);
done:
    free(py);
    free(rpd);
    free(sec_raw);
    free(log_raw);
    free(sec);
    free(logd);
    free(cmd);
    return rc;
}

/* Send the two connection files (waiting up to 10 s for them) into the remote security dir. */
static int ssh_send_connection_files(ssh_state_t *s, ssh_job_t *j, const ssh_proc_t *p)
{
    char *local[2] = {ssh_conn_file(j->profile_dir, j->cluster_id, "client"),
                      ssh_conn_file(j->profile_dir, j->cluster_id, "engine")};
    lu_strv_t argv = {0};
    char dest[4096];
    int rc = 0, status = 0;

    if (!local[0] || !local[1]) {
        rc = CPAR_ENOMEM;
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        struct stat st;
        int tries = 0;
        while (stat(local[i], &st) != 0 && tries++ < 100)
            lu_sleep_ms(100);
        if (stat(local[i], &st) != 0) {
            s->host->set_error(s->ctx, "connection file %s did not appear within 10 s", local[i]);
            rc = CPAR_ENOENT;
            goto done;
        }
    }
    snprintf(dest, sizeof dest, "%s:%s/security/", p->location, p->remote_profile_dir);
    lu_strv_addv(&argv, lu_strv_argv(&p->scp_cmd));
    lu_strv_addv(&argv, lu_strv_argv(&p->scp_args));
    lu_strv_add(&argv, local[0]);
    lu_strv_add(&argv, local[1]);
    lu_strv_add(&argv, dest);
    rc = argv.oom ? CPAR_ENOMEM : ssh_exec(s, &argv, j->timeout_ms, &status, NULL);
    if (rc == 0 && status != 0)
        rc = CPAR_EIO;
done:
    free(local[0]);
    free(local[1]);
    lu_strv_free(&argv);
    return rc;
}

/*
 * The remote argv: program + program_args with the remote profile dir for --profile-dir and
 * remote_python for a `python -m` program's interpreter.
 */
/* (The sshproxy build, which has no engines dict, does not use the next two.) */
SSH_UNUSED static void ssh_remote_argv(const ssh_proc_t *p, const cpar_launch_spec_t *spec,
                                       lu_strv_t *argv)
{
    const char *const *prog = spec->program;
    for (size_t i = 0; prog && prog[i]; i++) {
        if (i == 0 && prog[1] && strcmp(prog[1], "-m") == 0)
            lu_strv_add(argv, p->remote_python);
        else
            lu_strv_add(argv, prog[i]);
    }
    const char *const *a = spec->program_args;
    for (size_t i = 0; a && a[i]; i++) {
        if (strcmp(a[i], "--profile-dir") == 0 && a[i + 1]) {
            lu_strv_add(argv, a[i]);
            lu_strv_add(argv, p->remote_profile_dir);
            i++;
        } else if (strncmp(a[i], "--profile-dir=", 14) == 0) {
            char buf[4096];
            snprintf(buf, sizeof buf, "--profile-dir=%s", p->remote_profile_dir);
            lu_strv_add(argv, buf);
        } else {
            lu_strv_add(argv, a[i]);
        }
    }
}

/* Start argv detached on p's host; sets p->pid. */
static int ssh_launch(ssh_state_t *s, ssh_job_t *j, ssh_proc_t *p, const lu_strv_t *argv,
                      const char *const *env)
{
    lu_strv_t full = {0};
    char *joined = NULL, *outq = NULL, *cmd = NULL, *out = NULL, *m = NULL;
    int rc = CPAR_ENOMEM;

    if (env && env[0]) {
        lu_strv_add(&full, "env");
        lu_strv_addv(&full, env);
    }
    lu_strv_addv(&full, lu_strv_argv(argv));
    if (full.oom)
        goto done;
    joined = ssh_join(s, lu_strv_argv(&full));
    outq = ssh_quote(s, p->remote_output_file);
    if (!joined || !outq)
        goto done;
    if (asprintf(&cmd, "nohup %s > %s 2>&1 </dev/null & echo __remote_pid=$!__", joined, outq) <
        0) {
        cmd = NULL;
        goto done;
    }
    rc = ssh_remote_ok(s, p, cmd, j->timeout_ms, &out);
    if (rc)
        goto done;
    rc = s->host->regex_search(s->ctx, "__remote_pid=([0-9]+)__", out, 1, &m);
    if (rc) {
        s->host->set_error(s->ctx, "no remote pid in the output of ssh %s: %s", p->location, out);
        rc = CPAR_EIO;
        goto done;
    }
    p->pid = strtoll(m, NULL, 10);
    s->host->log(s->ctx, CPAR_LOG_INFO, "%s: started remote pid %lld on %s", p->key,
                 (long long)p->pid, p->location);
done:
    if (out)
        s->host->free(out);
    if (m)
        s->host->free(m);
    lu_strv_free(&full);
    free(joined);
    free(outq);
    free(cmd);
    return rc;
}

static ssh_proc_t *ssh_job_add(ssh_job_t *j)
{
    ssh_proc_t *p = realloc(j->procs, (j->nprocs + 1) * sizeof *p);
    if (!p)
        return NULL;
    j->procs = p;
    memset(&p[j->nprocs], 0, sizeof *p);
    return &p[j->nprocs++];
}

/* The one process of a controller or of sshproxy's engines, on the host of the hostname and
 * user settings, named `name` (as in ssh_proc_configure); its key is its location. */
static int ssh_add_single(ssh_state_t *s, const cpar_launch_spec_t *spec, ssh_job_t *j,
                          const char *name, ssh_proc_t **out)
{
    ssh_proc_t *p = ssh_job_add(j);
    int rc;
    if (!p)
        return CPAR_ENOMEM;
    if ((rc = ssh_proc_configure(s, spec, NULL, NULL, name, p)))
        return rc;
    p->key = strdup(p->location);
    if (!p->key)
        return CPAR_ENOMEM;
    *out = p;
    return 0;
}

static int ssh_job_common(ssh_state_t *s, const cpar_launch_spec_t *spec, ssh_job_t *j)
{
    j->role = spec->role;
    j->profile_dir = strdup(spec->profile_dir ? spec->profile_dir : "");
    j->cluster_id = strdup(spec->cluster_id ? spec->cluster_id : "");
    j->identifier = strdup(spec->identifier ? spec->identifier : SSH_PLUGIN_NAME);
    j->timeout_ms = lu_config_ms(s->host, s->ctx, spec, "ssh_timeout", 60000);
    j->poll_timeout_ms = lu_config_ms(s->host, s->ctx, spec, "poll_timeout", 10000);
    j->kill_after_ms = lu_config_ms(s->host, s->ctx, spec, "stop_seconds_until_kill", 5000);
    return j->profile_dir && j->cluster_id && j->identifier ? 0 : CPAR_ENOMEM;
}

/* Whether an earlier process of the job already runs on p's location (files sent there). */
SSH_UNUSED static int ssh_host_seen(const ssh_job_t *j, size_t upto, const ssh_proc_t *p)
{
    for (size_t i = 0; i < upto; i++)
        if (strcmp(j->procs[i].location, p->location) == 0 &&
            strcmp(j->procs[i].remote_profile_dir, p->remote_profile_dir) == 0)
            return 1;
    return 0;
}

/* Kill what a failed start already started (best effort). */
static void ssh_kill_all(ssh_state_t *s, ssh_job_t *j)
{
    for (size_t i = 0; i < j->nprocs; i++) {
        char cmd[64];
        int status;
        if (j->procs[i].pid <= 0)
            continue;
        snprintf(cmd, sizeof cmd, "kill -9 %lld", (long long)j->procs[i].pid);
        ssh_remote(s, &j->procs[i], cmd, j->poll_timeout_ms, &status, NULL);
    }
}

static json_t *ssh_proc_json(const ssh_job_t *j, const ssh_proc_t *p)
{
    return json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:o,s:o,s:o,s:s,s:s,s:s,s:I}", "cluster_id",
                     j->cluster_id, "profile_dir", j->profile_dir, "state",
                     p->ended ? "after" : "running", "n", 1, "hostname", p->hostname, "user",
                     p->user, "ssh_cmd", lu_strv_to_json(&p->ssh_cmd), "ssh_args",
                     lu_strv_to_json(&p->ssh_args), "scp_cmd", lu_strv_to_json(&p->scp_cmd),
                     "scp_args", lu_strv_to_json(&p->scp_args), "remote_profile_dir",
                     p->remote_profile_dir, "remote_output_file", p->remote_output_file,
                     "remote_python", p->remote_python, "pid", (json_int_t)p->pid);
}

#ifndef CPAR_SSH_PROXY
/* The engines to start: [(host spec, count, override dict or NULL)] from the `engines` dict. */
static int ssh_start_engines(ssh_state_t *s, const cpar_launch_spec_t *spec, ssh_job_t *j)
{
    char *text = NULL;
    json_t *engines = NULL;
    int rc = cpar_launch_config_json(s->host, s->ctx, spec, "engines", &text);
    if (rc == 0) {
        engines = json_loads(text, JSON_DECODE_ANY, NULL);
        s->host->free(text);
        if (!json_is_object(engines)) {
            json_decref(engines);
            s->host->set_error(s->ctx, "setting engines must be a dict of host: count");
            return CPAR_ECONFIG;
        }
    } else if (rc != CPAR_ENOENT) {
        return rc;
    }
    if (!engines || json_object_size(engines) == 0) {
        /* No dict: every engine on `hostname`. */
        json_decref(engines);
        engines = json_object();
        char *h = lu_config_str(s->host, s->ctx, spec, "hostname", "localhost");
        if (!engines || !h) {
            free(h);
            json_decref(engines);
            return CPAR_ENOMEM;
        }
        json_object_set_new(engines, h, json_integer(spec->n));
        free(h);
    }

    const char *hostspec;
    json_t *val;
    int started = 0;
    const int send = lu_config_bool(s->host, s->ctx, spec, "send_connection_files", 1);
    rc = 0;
    json_object_foreach(engines, hostspec, val)
    {
        const json_t *over = json_is_object(val) ? val : NULL;
        json_int_t count =
            over ? (json_object_get(over, "n") ? json_integer_value(json_object_get(over, "n")) : 1)
                 : json_integer_value(val);
        for (json_int_t i = 0; i < count && started < spec->n; i++) {
            ssh_proc_t *p = ssh_job_add(j);
            char key[1024];
            if (!p) {
                rc = CPAR_ENOMEM;
                goto done;
            }
            snprintf(key, sizeof key, "%s/%lld", hostspec, (long long)i);
            p->key = strdup(key);
            if (!p->key) {
                rc = CPAR_ENOMEM;
                goto done;
            }
            rc = ssh_proc_configure(s, spec, over, hostspec, "ipengine", p);
            if (rc)
                goto done;
            if (!ssh_host_seen(j, j->nprocs - 1, p)) {
                if ((rc = ssh_prepare(s, j, p)) ||
                    (send && (rc = ssh_send_connection_files(s, j, p))))
                    goto done;
            }
            lu_strv_t argv = {0};
            ssh_remote_argv(p, spec, &argv);
            rc = argv.oom ? CPAR_ENOMEM : ssh_launch(s, j, p, &argv, spec->env);
            lu_strv_free(&argv);
            if (rc)
                goto done;
            started++;
        }
    }
    if (started == 0) {
        s->host->set_error(s->ctx, "the engines dict names no engines to start");
        rc = CPAR_ECONFIG;
    }
done:
    json_decref(engines);
    return rc;
}
#endif

static int ssh_start(void *state, const cpar_launch_spec_t *spec, void **jobp, char **start_json)
{
    ssh_state_t *s = state;
    ssh_job_t *j = calloc(1, sizeof *j);
    int rc;

    if (!j)
        return CPAR_ENOMEM;
    if (!spec->program || !spec->program[0]) {
        s->host->set_error(s->ctx, "no program to start");
        free(j);
        return CPAR_EINVAL;
    }
    rc = ssh_job_common(s, spec, j);
    if (rc)
        goto fail;
    j->n = spec->role == CPAR_ROLE_CONTROLLER ? 1 : spec->n;
#ifdef CPAR_SSH_PROXY
    {
        static const char *const dflt_ipcluster[] = {"cpcluster", NULL};
        ssh_proc_t *p = NULL;
        lu_strv_t argv = {0};
        if ((rc = ssh_add_single(s, spec, j, "ipcluster", &p)))
            goto fail;
        if ((rc = lu_config_list(s->host, s->ctx, spec, "ipcluster_cmd", dflt_ipcluster, &argv)) ==
            0) {
            lu_strv_add(&argv, "engines");
            lu_strv_add(&argv, "-n");
            lu_strv_addf(&argv, "%lld", j->n);
            lu_strv_add(&argv, "--profile-dir");
            lu_strv_add(&argv, p->remote_profile_dir);
            lu_strv_add(&argv, "--cluster-id");
            lu_strv_add(&argv, j->cluster_id);
            rc = lu_config_list(s->host, s->ctx, spec, "ipcluster_args", NULL, &argv);
        }
        if (rc == 0)
            rc = ssh_prepare(s, j, p);
        if (rc == 0 && lu_config_bool(s->host, s->ctx, spec, "send_connection_files", 1))
            rc = ssh_send_connection_files(s, j, p);
        if (rc == 0)
            rc = argv.oom ? CPAR_ENOMEM : ssh_launch(s, j, p, &argv, spec->env);
        lu_strv_free(&argv);
        if (rc)
            goto fail;
    }
#else
    if (spec->role == CPAR_ROLE_CONTROLLER) {
        ssh_proc_t *p = NULL;
        lu_strv_t argv = {0};
        if ((rc = ssh_add_single(s, spec, j, "ipcontroller", &p)))
            goto fail;
        for (int i = 0; i < 2; i++) {
            const char *which = i ? "engine" : "client";
            j->fetch_local[i] = ssh_conn_file(j->profile_dir, j->cluster_id, which);
            j->fetch_remote[i] = ssh_conn_file(p->remote_profile_dir, j->cluster_id, which);
            if (!j->fetch_local[i] || !j->fetch_remote[i]) {
                rc = CPAR_ENOMEM;
                goto fail;
            }
        }
        j->fetch_pending = 1;
        if ((rc = ssh_prepare(s, j, p)))
            goto fail;
        ssh_remote_argv(p, spec, &argv);
        rc = argv.oom ? CPAR_ENOMEM : ssh_launch(s, j, p, &argv, spec->env);
        lu_strv_free(&argv);
        if (rc)
            goto fail;
    } else if ((rc = ssh_start_engines(s, spec, j))) {
        goto fail;
    }
#endif
    if (start_json) {
        json_t *keys = json_array();
        json_t *pids = json_array();
        for (size_t i = 0; keys && pids && i < j->nprocs; i++) {
            json_array_append_new(keys, json_string(j->procs[i].key));
            json_array_append_new(pids, json_integer(j->procs[i].pid));
        }
        rc =
            lu_json_out(s->host, json_pack("{s:o,s:o}", "engines", keys, "pids", pids), start_json);
        if (rc)
            goto fail;
    }
    *jobp = j;
    return 0;
fail:
    ssh_kill_all(s, j);
    ssh_job_free(j);
    return rc;
}

/*
 * A remote shell function: whether pid $1 lives. A zombie does not (a container's init may be
 * slow to reap the orphans our nohup leaves).
 */
#define SSH_ALIVE_FN                                                                               \
    "a(){ kill -0 \"$1\" 2>/dev/null || return 1; s=$(cat /proc/$1/stat 2>/dev/null) || "          \
    "return 0; case \"$s\" in *') Z '*|*') X '*) return 1;; esac; return 0; }; "

/* The pids of the job's live processes on location `loc`, as " p1 p2", into buf. */
static void ssh_pids_at(const ssh_job_t *j, const char *loc, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < j->nprocs; i++) {
        const ssh_proc_t *p = &j->procs[i];
        if (!p->ended && p->pid > 0 && strcmp(p->location, loc) == 0 && used + 24 < len)
            used += (size_t)snprintf(buf + used, len - used, " %lld", (long long)p->pid);
    }
}

/* Whether location of procs[i] appeared at an earlier index (to do each host once). */
static int ssh_first_at(const ssh_job_t *j, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(j->procs[k].location, j->procs[i].location) == 0)
            return 0;
    return 1;
}

/* For the first of the job's processes on each host (procs[i]), the live pids there into buf, as
 * ssh_pids_at: whether there is something to do on that host. */
static int ssh_host_pids(const ssh_job_t *j, size_t i, char *buf, size_t len)
{
    if (!ssh_first_at(j, i))
        return 0;
    ssh_pids_at(j, j->procs[i].location, buf, len);
    return buf[0] != '\0';
}

/* Fetch a remote controller's connection files once they exist there (one scp). */
static void ssh_try_fetch(ssh_state_t *s, ssh_job_t *j)
{
    ssh_proc_t *p = &j->procs[0];
    lu_strv_t argv = {0};
    char src[2][4096];
    int status = 0;
    for (int i = 0; i < 2; i++)
        snprintf(src[i], sizeof src[i], "%s:%s", p->location, j->fetch_remote[i]);
    char *dir = ssh_dirname(j->fetch_local[0]);
    if (!dir)
        return;
    lu_mkdir_parent(j->fetch_local[0]);
    lu_strv_addv(&argv, lu_strv_argv(&p->scp_cmd));
    lu_strv_addv(&argv, lu_strv_argv(&p->scp_args));
    lu_strv_add(&argv, src[0]);
    lu_strv_add(&argv, src[1]);
    lu_strv_add(&argv, dir);
    if (!argv.oom && ssh_exec(s, &argv, j->timeout_ms, &status, NULL) == 0 && status == 0) {
        j->fetch_pending = 0;
        s->host->log(s->ctx, CPAR_LOG_INFO, "fetched the connection files from %s", p->location);
    }
    free(dir);
    lu_strv_free(&argv);
}

static int ssh_poll(void *state, void *jobp, cpar_job_state_t *st, int *exit_code, char **detail)
{
    ssh_state_t *s = state;
    ssh_job_t *j = jobp;
    int unknown = 0, files_there = 0;
    char pids[2048], cmd[4096];

    for (size_t i = 0; i < j->nprocs; i++) {
        if (!ssh_host_pids(j, i, pids, sizeof pids))
            continue;
        int off = snprintf(cmd, sizeof cmd,
                           SSH_ALIVE_FN "for p in%s; do a $p && echo __alive_$p=1__; done", pids);
        if (j->fetch_pending && off > 0) {
            char *a = ssh_quote(s, j->fetch_remote[0]), *b = ssh_quote(s, j->fetch_remote[1]);
            if (a && b)
                snprintf(cmd + off, sizeof cmd - (size_t)off,
                         "; test -e %s && test -e %s && echo __files=1__", a, b);
            free(a);
            free(b);
        }
        int status = 0;
        char *out = NULL;
        int rc = ssh_remote(s, &j->procs[i], cmd, j->poll_timeout_ms, &status, &out);
        if (rc != 0 || status == 255 || !out) {
            unknown = 1;
            if (out)
                s->host->free(out);
            continue;
        }
        for (size_t k = i; k < j->nprocs; k++) {
            ssh_proc_t *p = &j->procs[k];
            char tag[64];
            if (p->ended || strcmp(p->location, j->procs[i].location) != 0)
                continue;
            snprintf(tag, sizeof tag, "__alive_%lld=1__", (long long)p->pid);
            if (!strstr(out, tag)) {
                p->ended = 1;
                s->host->log(s->ctx, CPAR_LOG_INFO, "%s: remote pid %lld on %s has ended", p->key,
                             (long long)p->pid, p->location);
            }
        }
        if (strstr(out, "__files=1__"))
            files_there = 1;
        s->host->free(out);
    }
    if (files_there)
        ssh_try_fetch(s, j);

    size_t alive = 0;
    for (size_t i = 0; i < j->nprocs; i++)
        alive += !j->procs[i].ended;
    *exit_code = CPAR_EXIT_UNKNOWN;
    *st = alive ? CPAR_JOB_RUNNING : CPAR_JOB_DONE;
    if (unknown && alive)
        *st = CPAR_JOB_UNKNOWN;
    if (detail) {
        char line[256];
        snprintf(line, sizeof line, "%zu of %zu remote processes running%s%s", alive, j->nprocs,
                 unknown ? " (a host did not answer)" : "", j->nprocs ? " on " : "");
        size_t used = strlen(line);
        for (size_t i = 0; i < j->nprocs && used + 2 < sizeof line; i++) {
            if (!ssh_first_at(j, i))
                continue;
            used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", i ? "," : "",
                                     j->procs[i].location);
        }
        *detail = lu_host_strdup(s->host, line);
    }
    return 0;
}

static int ssh_signal(void *state, void *jobp, int signum)
{
    ssh_state_t *s = state;
    ssh_job_t *j = jobp;
    char pids[2048], cmd[2200];
    int rc = 0;
    for (size_t i = 0; i < j->nprocs; i++) {
        if (!ssh_host_pids(j, i, pids, sizeof pids))
            continue;
        snprintf(cmd, sizeof cmd, "kill -%d%s", signum, pids);
        int status = 0;
        int r = ssh_remote(s, &j->procs[i], cmd, j->poll_timeout_ms, &status, NULL);
        if (r == 0 && status == 255)
            r = CPAR_EIO;
        if (r && !rc)
            rc = r;
    }
    return rc;
}

static int ssh_stop(void *state, void *jobp, char **stop_json)
{
    ssh_state_t *s = state;
    ssh_job_t *j = jobp;
    char pids[2048], cmd[4096];
    int rc = 0;
    int rounds = j->kill_after_ms / 100;

    for (size_t i = 0; i < j->nprocs; i++) {
        if (!ssh_host_pids(j, i, pids, sizeof pids))
            continue;
        /* TERM, wait, KILL: one round trip per host. */
        snprintf(cmd, sizeof cmd,
                 SSH_ALIVE_FN
                 "pids='%s'; kill -TERM $pids 2>/dev/null; i=0; while :; do alive=; "
                 "for p in $pids; do a $p && alive=\"$alive $p\"; done; "
                 "[ -z \"$alive\" ] && break; if [ $i -ge %d ]; then kill -KILL $alive; "
                 "echo __killed=1__; break; fi; sleep 0.1; i=$((i+1)); done; echo __stopped=1__",
                 pids, rounds);
        int status = 0;
        char *out = NULL;
        int r =
            ssh_remote(s, &j->procs[i], cmd, j->timeout_ms + j->kill_after_ms * 2, &status, &out);
        if (r == 0 && (!out || !strstr(out, "__stopped=1__")))
            r = CPAR_EIO;
        if (r == 0) {
            if (strstr(out, "__killed=1__"))
                s->host->log(s->ctx, CPAR_LOG_WARNING,
                             "remote processes on %s needed SIGKILL after %d ms",
                             j->procs[i].location, j->kill_after_ms);
            for (size_t k = i; k < j->nprocs; k++)
                if (strcmp(j->procs[k].location, j->procs[i].location) == 0)
                    j->procs[k].ended = 1;
        } else if (!rc) {
            rc = r;
        }
        if (out)
            s->host->free(out);
    }
    if (rc)
        return rc;
    if (stop_json) {
        json_t *engines = json_object();
        for (size_t i = 0; engines && i < j->nprocs; i++) {
            char idx[32];
            snprintf(idx, sizeof idx, "%zu", i);
            json_object_set_new(engines, idx,
                                json_pack("{s:n,s:I,s:s,s:s}", "exit_code", "pid",
                                          (json_int_t)j->procs[i].pid, "host", j->procs[i].location,
                                          "identifier", j->procs[i].key));
        }
        return lu_json_out(s->host, json_pack("{s:n,s:o}", "exit_code", "engines", engines),
                           stop_json);
    }
    return 0;
}

static int ssh_save(void *state, void *jobp, char **state_json)
{
    ssh_state_t *s = state;
    ssh_job_t *j = jobp;
    size_t alive = 0;
    for (size_t i = 0; i < j->nprocs; i++)
        alive += !j->procs[i].ended;
#ifdef CPAR_SSH_PROXY
    const int flat = 1;
#else
    const int flat = j->role == CPAR_ROLE_CONTROLLER;
#endif
    json_t *o;
    if (flat && j->nprocs == 1) {
        o = ssh_proc_json(j, &j->procs[0]);
        if (o) {
            json_object_set_new(o, "n", json_integer(j->n));
            json_object_set_new(o, "identifier", json_string(j->identifier));
            if (j->fetch_pending)
                json_object_set_new(o, "fetch_pending", json_true());
        }
    } else {
        json_t *engines = json_object();
        for (size_t i = 0; engines && i < j->nprocs; i++) {
            char idx[32];
            snprintf(idx, sizeof idx, "%zu", i);
            json_t *e = ssh_proc_json(j, &j->procs[i]);
            if (e)
                json_object_set_new(e, "identifier", json_string(j->procs[i].key));
            json_object_set_new(engines, idx, e);
        }
        o = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:o}", "cluster_id", j->cluster_id, "profile_dir",
                      j->profile_dir, "state", alive ? "running" : "after", "n", j->n, "pid", -1,
                      "identifier", j->identifier, "engines", engines);
    }
    return lu_json_out(s->host, o, state_json);
}

/* One process from its saved dict. */
static int ssh_proc_from_json(ssh_state_t *s, const json_t *e, const char *key, ssh_proc_t *p)
{
    const char *h = lu_json_str(e, "hostname", NULL);
    json_int_t pid = json_integer_value(json_object_get(e, "pid"));
    if (!h || pid <= 0) {
        s->host->set_error(s->ctx, "saved ssh state lacks hostname or pid");
        return CPAR_EINVAL;
    }
    static const char *const dflt_ssh[] = {"ssh", NULL};
    static const char *const dflt_scp[] = {"scp", NULL};
    const json_t *v;
    if ((v = json_object_get(e, "ssh_cmd")) == NULL || lu_strv_from_json(&p->ssh_cmd, v) != 0 ||
        !p->ssh_cmd.n) {
        lu_strv_free(&p->ssh_cmd);
        lu_strv_addv(&p->ssh_cmd, dflt_ssh);
    }
    if ((v = json_object_get(e, "scp_cmd")) == NULL || lu_strv_from_json(&p->scp_cmd, v) != 0 ||
        !p->scp_cmd.n) {
        lu_strv_free(&p->scp_cmd);
        lu_strv_addv(&p->scp_cmd, dflt_scp);
    }
    if ((v = json_object_get(e, "ssh_args")) != NULL)
        lu_strv_from_json(&p->ssh_args, v);
    if ((v = json_object_get(e, "scp_args")) != NULL)
        lu_strv_from_json(&p->scp_args, v);
    p->hostname = strdup(h);
    p->user = strdup(lu_json_str(e, "user", ""));
    p->remote_profile_dir = strdup(lu_json_str(e, "remote_profile_dir", ""));
    p->remote_python = strdup(lu_json_str(e, "remote_python", "python3"));
    p->remote_output_file = strdup(lu_json_str(e, "remote_output_file", ""));
    p->pid = pid;
    char loc[1024];
    if (p->user)
        snprintf(loc, sizeof loc, "%s%s%s", p->user, *p->user ? "@" : "", h);
    p->location = strdup(loc);
    p->key = strdup(key ? key : loc);
    if (!p->hostname || !p->user || !p->remote_profile_dir || !p->remote_python ||
        !p->remote_output_file || !p->location || !p->key)
        return CPAR_ENOMEM;
    return 0;
}

static int ssh_restore(void *state, const cpar_launch_spec_t *spec, const char *state_json,
                       void **jobp)
{
    ssh_state_t *s = state;
    json_error_t err;
    json_t *o = json_loads(state_json, 0, &err);
    ssh_job_t *j = NULL;
    int rc;

    if (!json_is_object(o)) {
        s->host->set_error(s->ctx, "saved state is not a JSON object: %s", err.text);
        json_decref(o);
        return CPAR_EINVAL;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        rc = CPAR_ENOMEM;
        goto done;
    }
    if ((rc = ssh_job_common(s, spec, j)))
        goto done;
    j->n = (int)json_integer_value(json_object_get(o, "n"));
    const json_t *engines = json_object_get(o, "engines");
    if (json_is_object(engines)) {
        const char *idx;
        json_t *e;
        json_object_foreach((json_t *)engines, idx, e)
        {
            ssh_proc_t *p = ssh_job_add(j);
            if (!p) {
                rc = CPAR_ENOMEM;
                goto done;
            }
            if ((rc = ssh_proc_from_json(s, e, lu_json_str(e, "identifier", idx), p)))
                goto done;
        }
    } else {
        ssh_proc_t *p = ssh_job_add(j);
        if (!p) {
            rc = CPAR_ENOMEM;
            goto done;
        }
        if ((rc = ssh_proc_from_json(s, o, NULL, p)))
            goto done;
    }
    /* Drop what no longer runs; nothing left is CPAR_ENOENT. */
    cpar_job_state_t st;
    int code;
    rc = ssh_poll(s, j, &st, &code, NULL);
    if (rc == 0 && st == CPAR_JOB_DONE) {
        s->host->set_error(s->ctx, "none of the %zu remote processes runs any more", j->nprocs);
        rc = CPAR_ENOENT;
    }
done:
    json_decref(o);
    if (rc) {
        ssh_job_free(j);
        return rc;
    }
    *jobp = j;
    return 0;
}

static int ssh_output(void *state, void *jobp, int remove, char **text)
{
    ssh_state_t *s = state;
    ssh_job_t *j = jobp;
    size_t cap = 1, len = 0;
    char *all = calloc(1, 1);
    int rc = all ? 0 : CPAR_ENOMEM;

    for (size_t i = 0; rc == 0 && i < j->nprocs; i++) {
        ssh_proc_t *p = &j->procs[i];
        char *q = ssh_quote(s, p->remote_output_file), *cmd = NULL, *out = NULL;
        int status = 0;
        if (!q || asprintf(&cmd, "cat %s 2>/dev/null%s%s", q, remove ? "; rm -f " : "",
                           remove ? q : "") < 0) {
            free(q);
            rc = CPAR_ENOMEM;
            break;
        }
        if (ssh_remote(s, p, cmd, j->timeout_ms, &status, &out) == 0 && out && *out) {
            size_t add = strlen(out) + strlen(p->key) + 32;
            char *n = realloc(all, cap + add);
            if (n) {
                all = n;
                cap += add;
                if (j->nprocs > 1)
                    len += (size_t)snprintf(all + len, cap - len, "Output for %s:\n", p->key);
                len += (size_t)snprintf(all + len, cap - len, "%s", out);
            } else {
                rc = CPAR_ENOMEM;
            }
        }
        if (out)
            s->host->free(out);
        free(q);
        free(cmd);
    }
    if (rc == 0) {
        *text = lu_host_strdup(s->host, all);
        rc = *text ? 0 : CPAR_ENOMEM;
    }
    free(all);
    return rc;
}

static void ssh_release(void *state, void *jobp)
{
    (void)state;
    ssh_job_free(jobp);
}

#ifdef CPAR_SSH_PROXY
static const char *const ssh_names[] = {"SSHProxy", "SSHProxyEngineSetLauncher", NULL};
static const char *const ssh_controller_sections[] = {NULL};
static const char *const ssh_engine_sections[] = {"SSHProxyEngineSetLauncher", "SSHLauncher",
                                                  "EngineLauncher", "BaseLauncher", NULL};
static const char *const ssh_all_sections[] = {"SSHProxyEngineSetLauncher", "SSHLauncher", NULL};
#define SSH_ROLES CPAR_ROLE_ENGINES
#define SSH_DESCRIPTION "engines started by `cpcluster engines` on a host reached by ssh"
#define SSH_DESCRIPTOR cpar_launcher_sshproxy_plugin
#else
static const char *const ssh_names[] = {
    "SSH", "SSHLauncher", "SSHEngineSetLauncher", "SSHControllerLauncher", "SSHEngineLauncher",
    NULL};
static const char *const ssh_controller_sections[] = {"SSHControllerLauncher", "SSHLauncher",
                                                      "ControllerLauncher", "BaseLauncher", NULL};
static const char *const ssh_engine_sections[] = {"SSHEngineSetLauncher", "SSHEngineLauncher",
                                                  "SSHLauncher",          "EngineLauncher",
                                                  "BaseLauncher",         NULL};
static const char *const ssh_all_sections[] = {"SSHControllerLauncher", "SSHEngineSetLauncher",
                                               "SSHEngineLauncher", "SSHLauncher", NULL};
#define SSH_ROLES (CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES)
#define SSH_DESCRIPTION "controller and engines on other hosts, started and watched over ssh"
#define SSH_DESCRIPTOR cpar_launcher_ssh_plugin
#endif

CPAR_PLUGIN_EXPORT const cpar_launcher_t SSH_DESCRIPTOR = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, SSH_PLUGIN_NAME),
             .version = CPAR_LAUNCHER_VERSION, .description = SSH_DESCRIPTION,
             .config_sections = ssh_all_sections, .init = ssh_init, .fini = ssh_fini},
    .roles = SSH_ROLES,
    .names = ssh_names,
    .controller_sections = ssh_controller_sections,
    .engine_sections = ssh_engine_sections,
    .batch = NULL,
    .start = ssh_start,
    .stop = ssh_stop,
    .signal = ssh_signal,
    .poll = ssh_poll,
    .save = ssh_save,
    .restore = ssh_restore,
    .output = ssh_output,
    .release = ssh_release,
};
