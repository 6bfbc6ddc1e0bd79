/*
 * winhpc.c - the Windows HPC Server 2008 launcher (cpar_launcher_winhpc.so), ipyparallel's
 * WindowsHPCLauncher.
 *
 * Not a batch-template system: it writes an XML job description (one task per engine, or one
 * for the controller) byte for byte as ipyparallel 7.1 writes it, and drives the scheduler with
 * `job submit /jobfile:<file> /scheduler:<host>`, `job cancel <id> /scheduler:<host>` and, beyond
 * ipyparallel, `job view <id> /scheduler:<host>` to poll. So it fills in every operation itself;
 * its batch descriptor only tells the host it is a batch system (the job id is kept alongside,
 * and a program that does not exist fails inside the scheduler, not at start).
 *
 * Settings (WindowsHPCControllerLauncher / WindowsHPCEngineSetLauncher, then WindowsHPCLauncher):
 * job_cmd ("job"), scheduler (""), job_file_name (ipcontroller_job.xml / ipengineset_job.xml),
 * job_id_regexp ("\d+", group 0), timeout (seconds a `job` command may take, 60).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/launcher.h>

typedef struct winhpc_state {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} winhpc_state_t;

typedef struct winhpc_job {
    cpar_launch_role_t role;
    int n;
    char *job_id;
    char *job_cmd;
    char *scheduler;
    char *job_file;
    char *profile_dir;
    char *cluster_id;
    int timeout_ms;
} winhpc_job_t;

/* ---- a growing string ------------------------------------------------------------------ */

typedef struct winhpc_buf {
    char *s;
    size_t len, cap;
    int oom;
} winhpc_buf_t;

static void winhpc_put(winhpc_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void winhpc_puts(winhpc_buf_t *b, const char *s)
{
    winhpc_put(b, s, strlen(s));
}

/* XML text as ElementTree escapes it: in attributes also " and line breaks and tabs. */
static void winhpc_put_xml(winhpc_buf_t *b, const char *s, int attribute)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            winhpc_puts(b, "&amp;");
            break;
        case '<':
            winhpc_puts(b, "&lt;");
            break;
        case '>':
            winhpc_puts(b, "&gt;");
            break;
        case '"':
            attribute ? winhpc_puts(b, "&quot;") : winhpc_put(b, s, 1);
            break;
        case '\n':
            attribute ? winhpc_puts(b, "&#10;") : winhpc_put(b, s, 1);
            break;
        case '\r':
            attribute ? winhpc_puts(b, "&#13;") : winhpc_put(b, s, 1);
            break;
        case '\t':
            attribute ? winhpc_puts(b, "&#09;") : winhpc_put(b, s, 1);
            break;
        default:
            winhpc_put(b, s, 1);
        }
    }
}

/* A JSON string literal. */
static void winhpc_put_json(winhpc_buf_t *b, const char *s)
{
    winhpc_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            winhpc_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            winhpc_puts(b, esc);
        } else {
            winhpc_put(b, s, 1);
        }
    }
    winhpc_puts(b, "\"");
}

/* Hand a buffer over as host->alloc'd text. */
static char *winhpc_host_copy(const cpar_host_t *host, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = host->alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static char *winhpc_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s ? s : "", n);
    return p;
}

/* ---- the job file ----------------------------------------------------------------------- */

static void winhpc_attr(winhpc_buf_t *b, const char *name, const char *value)
{
    if (!value || !*value)
        return; /* like ipyparallel: empty attributes are left out */
    winhpc_puts(b, " ");
    winhpc_puts(b, name);
    winhpc_puts(b, "=\"");
    winhpc_put_xml(b, value, 1);
    winhpc_puts(b, "\"");
}

/* One core, socket and node at least and at most, as the job and each task of 7.1's have. */
static void winhpc_one_each(winhpc_buf_t *b)
{
    static const char *const names[] = {"MinCores",   "MaxCores", "MinSockets",
                                        "MaxSockets", "MinNodes", "MaxNodes"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        winhpc_attr(b, names[i], "1");
}

/* A fresh "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" for the task's output file names. */
static void winhpc_uuid(const cpar_host_t *host, char out[37])
{
    unsigned char r[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(r, 1, sizeof r, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof r) {
        uint64_t x = (uint64_t)host->now_us() ^ ((uint64_t)host->monotonic_us() << 20);
        for (size_t i = 0; i < sizeof r; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

/*
 * The job description as ipyparallel 7.1's WinHPCJob.tostring() gives it: the prologue, <Job>
 * with its attributes in the scheduler's order, <Dependencies />, and in <Tasks> one <Task> per
 * engine, indented by two spaces, ending with a newline.
 */
static int winhpc_job_xml(const winhpc_state_t *s, const cpar_launch_spec_t *spec, int n,
                          char **out)
{
    const int ctl = spec->role == CPAR_ROLE_CONTROLLER;
    const char *domain = getenv("USERDOMAIN");
    const char *user = getenv("USERNAME");
    char username[512];
    if (domain)
        snprintf(username, sizeof username, "%s\\%s", domain, user ? user : "");
    else
        snprintf(username, sizeof username, "%s", user ? user : "");

    winhpc_buf_t b = {0};
    winhpc_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Job");
    winhpc_attr(&b, "Version", "2.000");
    winhpc_attr(&b, "Name", ctl ? "IPController" : "IPEngineSet");
    winhpc_attr(&b, "UnitType", "Core");
    winhpc_one_each(&b);
    winhpc_attr(&b, "RunUntilCanceled", "false");
    winhpc_attr(&b, "IsExclusive", "false");
    winhpc_attr(&b, "UserName", username);
    winhpc_attr(&b, "JobType", "Batch");
    winhpc_attr(&b, "Priority", "Highest");
    winhpc_attr(&b, "RequestedNodes", "");
    winhpc_attr(&b, "AutoCalculateMax", "true");
    winhpc_attr(&b, "AutoCalculateMin", "true");
    winhpc_attr(&b, "Project", "IPython");
    winhpc_attr(&b, "Owner", username);
    winhpc_attr(&b, "xmlns", "http://schemas.microsoft.com/HPCS2008/scheduler/");
    winhpc_puts(&b, ">\n  <Dependencies />\n  <Tasks>\n");

    /*
     * ipengine.exe --log-level=40 <args>, joined with single spaces, unquoted, as 7.1 does. The
     * task sets the log level, so a --log-level=<n> of the arguments is left out: the programs
     * take only one.
     */
    winhpc_buf_t cmd = {0};
    winhpc_puts(&cmd, ctl ? "ipcontroller.exe --log-level=40" : "ipengine.exe --log-level=40");
    for (const char *const *a = spec->program_args; a && *a; a++) {
        if (!strncmp(*a, "--log-level=", 12))
            continue;
        winhpc_puts(&cmd, " ");
        winhpc_puts(&cmd, *a);
    }
    const char *base = ctl ? "ipcontroller" : "ipengine";
    for (int i = 0; i < n; i++) {
        char uuid[37], outp[128], errp[128];
        winhpc_uuid(s->host, uuid);
        snprintf(outp, sizeof outp, "log/%s-%s.out", base, uuid);
        snprintf(errp, sizeof errp, "log/%s-%s.err", base, uuid);
        winhpc_puts(&b, "    <Task");
        winhpc_attr(&b, "Version", "2.000");
        winhpc_attr(&b, "Name", ctl ? "IPController" : "IPEngine");
        winhpc_one_each(&b);
        winhpc_attr(&b, "CommandLine", cmd.s ? cmd.s : "");
        winhpc_attr(&b, "WorkDirectory", spec->profile_dir);
        winhpc_attr(&b, "IsRerunnable", "true");
        winhpc_attr(&b, "StdOutFilePath", outp);
        winhpc_attr(&b, "StdErrFilePath", errp);
        winhpc_attr(&b, "IsParametric", "false");
        winhpc_attr(&b, "UnitType", "Core");
        winhpc_puts(&b, ">\n");
        if (!spec->env || !spec->env[0]) {
            winhpc_puts(&b, "      <EnvironmentVariables />\n");
        } else {
            winhpc_puts(&b, "      <EnvironmentVariables>\n");
            for (const char *const *e = spec->env; *e; e++) {
                const char *eq = strchr(*e, '=');
                size_t nlen = eq ? (size_t)(eq - *e) : strlen(*e);
                char *name = malloc(nlen + 1);
                if (!name) {
                    b.oom = 1;
                    break;
                }
                memcpy(name, *e, nlen);
                name[nlen] = '\0';
                winhpc_puts(&b, "        <Variable>\n          <Name>");
                winhpc_put_xml(&b, name, 0);
                winhpc_puts(&b, "</Name>\n          <Value>");
                winhpc_put_xml(&b, eq ? eq + 1 : "", 0);
                winhpc_puts(&b, "</Value>\n        </Variable>\n");
                free(name);
            }
            winhpc_puts(&b, "      </EnvironmentVariables>\n");
        }
        winhpc_puts(&b, "    </Task>\n");
    }
    winhpc_puts(&b, "  </Tasks>\n</Job>\n");
    int oom = b.oom || cmd.oom;
    free(cmd.s);
    if (oom) {
        free(b.s);
        return CPAR_ENOMEM;
    }
    *out = b.s;
    return 0;
}

/* ---- running `job` ------------------------------------------------------------------------ */

/*
 * Run job_cmd with `args`; *text (malloc'd) is stdout followed by stderr, like ipyparallel's
 * stderr=STDOUT. Returns the host's code (CPAR_ENOENT naming the command, CPAR_ETIMEDOUT).
 */
static int winhpc_job_run(const winhpc_state_t *s, const winhpc_job_t *job, const char *const *args,
                          int *status, char **text)
{
    const char *argv[8];
    size_t k = 0;
    argv[k++] = job->job_cmd;
    for (; *args && k < 7; args++)
        argv[k++] = *args;
    argv[k] = NULL;
    char *out = NULL, *err = NULL;
    int rc = s->host->run(s->ctx, argv, NULL, job->timeout_ms, status, &out, &err);
    if (rc < 0) {
        s->host->free(out);
        s->host->free(err);
        return rc;
    }
    winhpc_buf_t b = {0};
    winhpc_puts(&b, out ? out : "");
    winhpc_puts(&b, err ? err : "");
    s->host->free(out);
    s->host->free(err);
    if (b.oom || !b.s) {
        free(b.s);
        *text = winhpc_strdup("");
        return *text ? 0 : CPAR_ENOMEM;
    }
    *text = b.s;
    return 0;
}

/* The text on one line, without its trailing white space, for error messages. */
static void winhpc_one_line(char *t)
{
    for (char *p = t; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        t[--n] = '\0';
}

/* ---- operations --------------------------------------------------------------------------- */

static void winhpc_job_free(winhpc_job_t *job)
{
    if (!job)
        return;
    free(job->job_id);
    free(job->job_cmd);
    free(job->scheduler);
    free(job->job_file);
    free(job->profile_dir);
    free(job->cluster_id);
    free(job);
}

static int winhpc_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    if (host->abi_major != CPAR_PLUGIN_ABI_MAJOR || host->abi_minor < 2) {
        host->set_error(ctx, "needs a host with plugin ABI 1.2 (process services), got %u.%u",
                        (unsigned)host->abi_major, (unsigned)host->abi_minor);
        return CPAR_EABI;
    }
    winhpc_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return CPAR_ENOMEM;
    s->host = host;
    s->ctx = ctx;
    *state = s;
    return 0;
}

static void winhpc_fini(void *state)
{
    free(state);
}

/* A new handle with the settings for `spec`. */
static int winhpc_job_new(winhpc_state_t *s, const cpar_launch_spec_t *spec, winhpc_job_t **out)
{
    const char *job_cmd = "job", *scheduler = "";
    const char *v;
    int64_t timeout = 60;
    if (cpar_launch_config_string(s->host, s->ctx, spec, "job_cmd", &v) == 0 && *v)
        job_cmd = v;
    if (cpar_launch_config_string(s->host, s->ctx, spec, "scheduler", &v) == 0)
        scheduler = v;
    if (cpar_launch_config_int(s->host, s->ctx, spec, "timeout", &timeout) == 0 && timeout <= 0)
        timeout = 60;
    winhpc_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return CPAR_ENOMEM;
    job->role = spec->role;
    job->n = spec->role == CPAR_ROLE_CONTROLLER ? 1 : spec->n;
    job->timeout_ms = timeout > 86400 ? 86400000 : (int)timeout * 1000;
    job->job_cmd = winhpc_strdup(job_cmd);
    job->scheduler = winhpc_strdup(scheduler);
    job->profile_dir = winhpc_strdup(spec->profile_dir);
    job->cluster_id = winhpc_strdup(spec->cluster_id);
    if (!job->job_cmd || !job->scheduler || !job->profile_dir || !job->cluster_id) {
        winhpc_job_free(job);
        return CPAR_ENOMEM;
    }
    *out = job;
    return 0;
}

static int winhpc_start(void *state, const cpar_launch_spec_t *spec, void **jobp, char **start_json)
{
    winhpc_state_t *s = state;
    const cpar_host_t *h = s->host;
    winhpc_job_t *job;
    int rc = winhpc_job_new(s, spec, &job);
    if (rc < 0)
        return rc;

    const char *file_name =
        spec->role == CPAR_ROLE_CONTROLLER ? "ipcontroller_job.xml" : "ipengineset_job.xml";
    const char *v, *regexp = "\\d+";
    if (cpar_launch_config_string(h, s->ctx, spec, "job_file_name", &v) == 0 && *v)
        file_name = v;
    if (cpar_launch_config_string(h, s->ctx, spec, "job_id_regexp", &v) == 0 && *v)
        regexp = v;
    size_t plen = strlen(spec->work_dir) + strlen(file_name) + 2;
    job->job_file = malloc(plen);
    if (!job->job_file) {
        winhpc_job_free(job);
        return CPAR_ENOMEM;
    }
    if (file_name[0] == '/')
        snprintf(job->job_file, plen, "%s", file_name);
    else
        snprintf(job->job_file, plen, "%s/%s", spec->work_dir, file_name);

    char *xml = NULL;
    rc = winhpc_job_xml(s, spec, job->n, &xml);
    if (rc < 0) {
        winhpc_job_free(job);
        return rc;
    }
    FILE *f = fopen(job->job_file, "w");
    if (!f || fputs(xml, f) < 0 || fclose(f) != 0) {
        int e = errno;
        h->set_error(s->ctx, "cannot write the job file %s: %s", job->job_file, strerror(e));
        free(xml);
        winhpc_job_free(job);
        return CPAR_EIO;
    }
    free(xml);

    char jobfile_arg[4200], sched_arg[1100];
    snprintf(jobfile_arg, sizeof jobfile_arg, "/jobfile:%s", job->job_file);
    snprintf(sched_arg, sizeof sched_arg, "/scheduler:%s", job->scheduler);
    const char *args[] = {"submit", jobfile_arg, sched_arg, NULL};
    int status = 0;
    char *text = NULL;
    rc = winhpc_job_run(s, job, args, &status, &text);
    if (rc < 0) {
        winhpc_job_free(job); /* the host has explained it (the command it could not run) */
        return rc;
    }
    if (status != 0) {
        winhpc_one_line(text);
        h->set_error(s->ctx, "%s submit failed (exit status %d): %s", job->job_cmd, status,
                     *text ? text : "(no output)");
        free(text);
        winhpc_job_free(job);
        return CPAR_EIO;
    }
    char *id = NULL;
    rc = h->regex_search(s->ctx, regexp, text, 0, &id);
    if (rc < 0) {
        if (rc == CPAR_ENOENT) {
            winhpc_one_line(text);
            h->set_error(s->ctx, "Job id couldn't be determined: %s", text);
            rc = CPAR_EIO;
        }
        free(text);
        winhpc_job_free(job);
        return rc;
    }
    free(text);
    job->job_id = winhpc_strdup(id);
    h->free(id);
    if (!job->job_id) {
        winhpc_job_free(job);
        return CPAR_ENOMEM;
    }
    h->log(s->ctx, CPAR_LOG_INFO, "Job started with id: '%s'", job->job_id);
    if (start_json) {
        winhpc_buf_t b = {0};
        winhpc_puts(&b, "{\"job_id\": ");
        winhpc_put_json(&b, job->job_id);
        winhpc_puts(&b, "}");
        *start_json = b.oom ? NULL : winhpc_host_copy(h, b.s);
        free(b.s);
    }
    *jobp = job;
    return 0;
}

static int winhpc_stop(void *state, void *jobp, char **stop_json)
{
    winhpc_state_t *s = state;
    winhpc_job_t *job = jobp;
    char sched_arg[1100];
    snprintf(sched_arg, sizeof sched_arg, "/scheduler:%s", job->scheduler);
    const char *args[] = {"cancel", job->job_id, sched_arg, NULL};
    int status = 0;
    char *text = NULL;
    int rc = winhpc_job_run(s, job, args, &status, &text);
    if (rc == CPAR_ENOENT) /* no job command: nothing can be cancelled; say so */
        return rc;
    if (rc < 0 || status != 0) {
        free(text);
        size_t n = strlen(job->job_id) + 64;
        text = malloc(n);
        if (!text)
            return CPAR_ENOMEM;
        snprintf(text, n, "The job already appears to be stopped: '%s'", job->job_id);
    }
    if (stop_json) {
        winhpc_buf_t b = {0};
        winhpc_puts(&b, "{\"job_id\": ");
        winhpc_put_json(&b, job->job_id);
        winhpc_puts(&b, ", \"output\": ");
        winhpc_put_json(&b, text);
        winhpc_puts(&b, "}");
        *stop_json = b.oom ? NULL : winhpc_host_copy(s->host, b.s);
        free(b.s);
    }
    free(text);
    return 0;
}

static int winhpc_signal(void *state, void *jobp, int signum)
{
    winhpc_state_t *s = state;
    (void)jobp;
    s->host->set_error(s->ctx, "Windows HPC jobs cannot be sent signals (signal %d)", signum);
    return CPAR_ENOTSUP;
}

/* The value of the "State" line of `job view` ("State                : Running"): its first
 * word. */
static int winhpc_view_state(const char *text, char *buf, size_t len)
{
    if (cpar_launch_field(text, "State", ':', 0, buf, len) != 0)
        return -1;
    buf[strcspn(buf, " \t")] = '\0';
    return 0;
}

static int winhpc_poll(void *state, void *jobp, cpar_job_state_t *st, int *exit_code, char **detail)
{
    winhpc_state_t *s = state;
    winhpc_job_t *job = jobp;
    char sched_arg[1100], value[64];
    snprintf(sched_arg, sizeof sched_arg, "/scheduler:%s", job->scheduler);
    const char *args[] = {"view", job->job_id, sched_arg, NULL};
    int status = 0;
    char *text = NULL;
    *exit_code = CPAR_EXIT_UNKNOWN;
    int rc = winhpc_job_run(s, job, args, &status, &text);
    if (rc < 0)
        return rc;
    if (winhpc_view_state(text, value, sizeof value) != 0) {
        *st = CPAR_JOB_UNKNOWN;
        winhpc_one_line(text);
        if (detail) {
            char line[512];
            snprintf(line, sizeof line, "job %s: %s", job->job_id, *text ? text : "no state");
            *detail = winhpc_host_copy(s->host, line);
        }
        free(text);
        return 0;
    }
    free(text);
    if (!strcmp(value, "Running") || !strcmp(value, "Finishing") || !strcmp(value, "Canceling"))
        *st = CPAR_JOB_RUNNING;
    else if (!strcmp(value, "Finished")) {
        *st = CPAR_JOB_DONE;
        *exit_code = 0;
    } else if (!strcmp(value, "Failed") || !strcmp(value, "Canceled"))
        *st = CPAR_JOB_DONE;
    else if (!strcmp(value, "Configuring") || !strcmp(value, "Submitted") ||
             !strcmp(value, "Validating") || !strcmp(value, "ExternalValidation") ||
             !strcmp(value, "Queued"))
        *st = CPAR_JOB_PENDING;
    else
        *st = CPAR_JOB_UNKNOWN;
    if (detail) {
        char line[256];
        snprintf(line, sizeof line, "job %s %s", job->job_id, value);
        *detail = winhpc_host_copy(s->host, line);
    }
    return 0;
}

/*
 * ipyparallel's to_dict fields (profile_dir, cluster_id, state, n), the batch launchers' (job_id,
 * queue, namespace, batch_template), and what a later cpcluster needs to cancel the job:
 * scheduler, job_cmd and job_file.
 */
static int winhpc_save(void *state, void *jobp, char **state_json)
{
    winhpc_state_t *s = state;
    winhpc_job_t *job = jobp;
    winhpc_buf_t b = {0};
    char num[32];
    winhpc_puts(&b, "{\"profile_dir\": ");
    winhpc_put_json(&b, job->profile_dir);
    winhpc_puts(&b, ", \"cluster_id\": ");
    winhpc_put_json(&b, job->cluster_id);
    winhpc_puts(&b, ", \"state\": \"running\"");
    snprintf(num, sizeof num, "%d", job->n);
    winhpc_puts(&b, ", \"n\": ");
    winhpc_puts(&b, num);
    /* the batch launchers' keys, empty: no queue, no namespace, the job file is not a template */
    winhpc_puts(&b, ", \"queue\": \"\", \"namespace\": {}, \"batch_template\": \"\"");
    winhpc_puts(&b, ", \"job_id\": ");
    winhpc_put_json(&b, job->job_id);
    winhpc_puts(&b, ", \"scheduler\": ");
    winhpc_put_json(&b, job->scheduler);
    winhpc_puts(&b, ", \"job_cmd\": ");
    winhpc_put_json(&b, job->job_cmd);
    winhpc_puts(&b, ", \"job_file\": ");
    winhpc_put_json(&b, job->job_file ? job->job_file : "");
    winhpc_puts(&b, "}");
    if (b.oom) {
        free(b.s);
        return CPAR_ENOMEM;
    }
    *state_json = winhpc_host_copy(s->host, b.s);
    free(b.s);
    return *state_json ? 0 : CPAR_ENOMEM;
}

/*
 * The string value of top-level key `key` in a flat JSON object, malloc'd; NULL when absent or
 * not a string. Enough for what save writes, whatever white space a rewrite put around it.
 */
static char *winhpc_json_string(const char *json, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL;) {
        const char *k = p + 1;
        const char *kend = strchr(k, '"');
        if (!kend)
            return NULL;
        const char *q = kend + 1;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (*q != ':') { /* a value, not a key */
            p = kend + 1;
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if ((size_t)(kend - k) == klen && !strncmp(k, key, klen)) {
            if (*q != '"')
                return NULL;
            q++;
            winhpc_buf_t b = {0};
            winhpc_puts(&b, "");
            for (; *q && *q != '"'; q++) {
                if (*q == '\\' && q[1]) {
                    q++;
                    char c = *q;
                    if (c == 'n')
                        c = '\n';
                    else if (c == 't')
                        c = '\t';
                    else if (c == 'r')
                        c = '\r';
                    else if (c == 'u' && q[1] && q[2] && q[3] && q[4]) {
                        char hex[5] = {q[1], q[2], q[3], q[4], 0};
                        c = (char)strtol(hex, NULL, 16);
                        q += 4;
                    }
                    winhpc_put(&b, &c, 1);
                } else {
                    winhpc_put(&b, q, 1);
                }
            }
            if (b.oom) {
                free(b.s);
                return NULL;
            }
            return b.s;
        }
        /* skip this key's value if it is a string */
        if (*q == '"') {
            q++;
            while (*q && *q != '"') {
                if (*q == '\\' && q[1])
                    q++;
                q++;
            }
            if (!*q)
                return NULL;
            p = q + 1;
        } else {
            p = q;
        }
    }
    return NULL;
}

static int winhpc_restore(void *state, const cpar_launch_spec_t *spec, const char *state_json,
                          void **jobp)
{
    winhpc_state_t *s = state;
    winhpc_job_t *job;
    int rc = winhpc_job_new(s, spec, &job);
    if (rc < 0)
        return rc;
    job->job_id = winhpc_json_string(state_json, "job_id");
    if (!job->job_id || !*job->job_id) {
        s->host->set_error(s->ctx, "the saved Windows HPC job has no job_id");
        winhpc_job_free(job);
        return CPAR_EINVAL;
    }
    char *v;
    if ((v = winhpc_json_string(state_json, "scheduler")) != NULL) {
        free(job->scheduler);
        job->scheduler = v;
    }
    if ((v = winhpc_json_string(state_json, "job_cmd")) != NULL && *v) {
        free(job->job_cmd);
        job->job_cmd = v;
    } else {
        free(v);
    }
    job->job_file = winhpc_json_string(state_json, "job_file");

    /* Nothing of a job the scheduler reports ended runs any more. */
    cpar_job_state_t st = CPAR_JOB_UNKNOWN;
    int code;
    if (winhpc_poll(s, job, &st, &code, NULL) == 0 && st == CPAR_JOB_DONE) {
        s->host->set_error(s->ctx, "job %s no longer runs", job->job_id);
        winhpc_job_free(job);
        return CPAR_ENOENT;
    }
    *jobp = job;
    return 0;
}

/* The tasks write their output on the Windows side (log\ under the profile). */
static int winhpc_output(void *state, void *jobp, int remove, char **text)
{
    winhpc_state_t *s = state;
    (void)jobp;
    (void)remove;
    *text = winhpc_host_copy(s->host, "");
    return *text ? 0 : CPAR_ENOMEM;
}

static void winhpc_release(void *state, void *jobp)
{
    (void)state;
    winhpc_job_free(jobp);
}

/*
 * What the host's batch driver may know of this system: it keeps the job id beside the plugin's
 * own handle, like for the other batch launchers. Every operation is the plugin's own, because
 * `job` takes the job id before its /scheduler: option and the job file is XML.
 */
static const char *const winhpc_submit[] = {"job", "submit", NULL};
static const char *const winhpc_cancel[] = {"job", "cancel", NULL};
static const cpar_batch_system_t winhpc_batch = {
    .submit_command = winhpc_submit,
    .delete_command = winhpc_cancel,
    .job_id_regexp = "\\d+",
    .job_id_group = 0,
    .controller_file = "ipcontroller_job.xml",
    .engine_file = "ipengineset_job.xml",
};

static const char *const winhpc_names[] = {"WindowsHPC", "WindowsHPCLauncher",
                                           "WindowsHPCControllerLauncher",
                                           "WindowsHPCEngineSetLauncher", NULL};
static const char *const winhpc_controller_sections[] = {"WindowsHPCControllerLauncher",
                                                         "WindowsHPCLauncher", "ControllerLauncher",
                                                         "BaseLauncher", NULL};
static const char *const winhpc_engine_sections[] = {
    "WindowsHPCEngineSetLauncher", "WindowsHPCLauncher", "EngineLauncher", "BaseLauncher", NULL};
static const char *const winhpc_all_sections[] = {
    "WindowsHPCControllerLauncher", "WindowsHPCEngineSetLauncher", "WindowsHPCLauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_winhpc_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "winhpc"), .version = CPAR_LAUNCHER_VERSION,
             .description = "Windows HPC Server 2008 jobs (job submit, job cancel, job view)",
             .config_sections = winhpc_all_sections, .init = winhpc_init, .fini = winhpc_fini},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = winhpc_names,
    .controller_sections = winhpc_controller_sections,
    .engine_sections = winhpc_engine_sections,
    .batch = &winhpc_batch,
    .start = winhpc_start,
    .stop = winhpc_stop,
    .signal = winhpc_signal,
    .poll = winhpc_poll,
    .save = winhpc_save,
    .restore = winhpc_restore,
    .output = winhpc_output,
    .release = winhpc_release,
};
