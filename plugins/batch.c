/*
 * batch.c - the batch driver (see batch.h): ipyparallel's BatchSystemLauncher, plus polling.
 *
 * Settings are read through the spec's section chain: submit_command, delete_command,
 * signal_command, poll_command, job_id_regexp, job_id_regexp_group, batch_template,
 * batch_template_file, batch_file_name, queue, namespace, and the system's extra_settings.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"

#define BATCH_TIMEOUT_MS 120000
#define BATCH_MAX_VARS 64

typedef struct batch_argv {
    char **v; /* NULL-terminated, malloc'd words */
    size_t n;
} batch_argv_t;

struct cpar_batch_job {
    cpar_batch_ctx_t bc;
    cpar_launch_role_t role;
    batch_argv_t submit, del, sig, poll;
    char *job_id, *cluster_id, *profile_dir, *queue, *batch_template, *batch_file_name, *work_dir;
    json_t *namespace_;        /* object */
    const char *job_id_regexp; /* a setting (borrowed from the config) or the system's */
    int job_id_group;
    int n;
    int stopped;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void batch_argv_free(batch_argv_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

static int batch_argv_push(batch_argv_t *a, const char *w)
{
    char **v = realloc(a->v, (a->n + 2) * sizeof *v);

    if (!v)
        return CPAR_ENOMEM;
    a->v = v;
    if (!(v[a->n] = strdup(w)))
        return CPAR_ENOMEM;
    v[++a->n] = NULL;
    return 0;
}

static int batch_fail(const cpar_batch_ctx_t *bc, int rc, const char *fmt, ...) CPAR_PRINTF(3, 4);
static int batch_fail(const cpar_batch_ctx_t *bc, int rc, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bc->host->set_error(bc->ctx, "%s", msg);
    return rc;
}

/* A string setting, or NULL when unset. */
static const char *batch_str(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                             const char *key)
{
    const char *v = NULL;

    if (cpar_launch_config_string(bc->host, bc->ctx, spec, key, &v) != 0)
        return NULL;
    return v;
}

/* A JSON setting parsed, or NULL when unset or not JSON. */
static json_t *batch_json(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                          const char *key)
{
    char *text = NULL;
    json_t *v;

    if (cpar_launch_config_json(bc->host, bc->ctx, spec, key, &text) != 0)
        return NULL;
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    bc->host->free(text);
    return v;
}

/* A command setting (a list of words, or one string split at blanks), else `dflt`. */
static int batch_command(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                         const char *key, const char *const *dflt, batch_argv_t *out)
{
    json_t *v = batch_json(bc, spec, key);
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (json_is_array(v)) {
        size_t i;
        json_t *w;
        json_array_foreach(v, i, w)
        {
            if (!json_is_string(w)) {
                json_decref(v);
                return batch_fail(bc, CPAR_ECONFIG, "%s must be a list of strings", key);
            }
            if (json_string_length(w) && (rc = batch_argv_push(out, json_string_value(w))))
                break;
        }
    } else if (json_is_string(v)) {
        char *copy = strdup(json_string_value(v)), *save = NULL;
        if (!copy)
            rc = CPAR_ENOMEM;
        for (char *w = copy ? strtok_r(copy, " \t", &save) : NULL; w && !rc;
             w = strtok_r(NULL, " \t", &save))
            rc = batch_argv_push(out, w);
        free(copy);
    } else if (v) {
        json_decref(v);
        return batch_fail(bc, CPAR_ECONFIG, "%s must be a list of strings", key);
    } else {
        for (const char *const *w = dflt; w && *w && !rc; w++)
            if (**w)
                rc = batch_argv_push(out, *w);
    }
    json_decref(v);
    return rc ? batch_fail(bc, rc, "out of memory") : 0;
}

static char *batch_join_words(const batch_argv_t *a)
{
    char *s = NULL;

    cpar_text_shell_join((const char *const *)a->v, &s);
    return s;
}

/* Run argv + extra words; 0 with *status and *out and *err, or the host's error. */
static int batch_run(cpar_batch_job_t *j, const batch_argv_t *cmd, const char *const *extra,
                     const char *input, int *status, char **out, char **err)
{
    batch_argv_t argv = {0};
    int rc = 0;

    for (size_t i = 0; i < cmd->n && !rc; i++)
        rc = batch_argv_push(&argv, cmd->v[i]);
    for (const char *const *w = extra; w && *w && !rc; w++)
        rc = batch_argv_push(&argv, *w);
    if (rc) {
        batch_argv_free(&argv);
        return batch_fail(&j->bc, rc, "out of memory");
    }
    rc = j->bc.host->run(j->bc.ctx, (const char *const *)argv.v, input, BATCH_TIMEOUT_MS, status,
                         out, err);
    batch_argv_free(&argv);
    return rc;
}

static void batch_detail(char **detail, const char *fmt, ...) CPAR_PRINTF(2, 3);
static void batch_detail(char **detail, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(detail, fmt, ap) < 0)
        *detail = NULL;
    va_end(ap);
}

/* Trim trailing blanks and newlines in place. */
static char *batch_trim(char *s)
{
    size_t n = s ? strlen(s) : 0;

    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s ? s : "";
}

static void batch_job_free(cpar_batch_job_t *j)
{
    if (!j)
        return;
    batch_argv_free(&j->submit);
    batch_argv_free(&j->del);
    batch_argv_free(&j->sig);
    batch_argv_free(&j->poll);
    free(j->job_id);
    free(j->cluster_id);
    free(j->profile_dir);
    free(j->queue);
    free(j->batch_template);
    free(j->batch_file_name);
    free(j->work_dir);
    json_decref(j->namespace_);
    free(j);
}

/* The job with settings and commands from `spec`. */
static int batch_job_new(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                         cpar_batch_job_t **out)
{
    const cpar_batch_system_t *sys = bc->sys;
    cpar_batch_job_t *j = calloc(1, sizeof *j);
    const char *queue = batch_str(bc, spec, "queue");
    const char *file = batch_str(bc, spec, "batch_file_name");
    int rc;

    if (!j)
        return batch_fail(bc, CPAR_ENOMEM, "out of memory");
    j->bc = *bc;
    j->role = spec->role;
    j->n = spec->role == CPAR_ROLE_CONTROLLER ? 1 : spec->n;
    if (!file || !*file)
        file = spec->role == CPAR_ROLE_CONTROLLER ? sys->controller_file : sys->engine_file;
    j->cluster_id = strdup(spec->cluster_id ? spec->cluster_id : "");
    j->profile_dir = strdup(spec->profile_dir ? spec->profile_dir : "");
    j->queue = strdup(queue ? queue : "");
    j->batch_file_name = strdup(file && *file ? file : "batch_script");
    j->work_dir = strdup(spec->work_dir && *spec->work_dir ? spec->work_dir : ".");
    j->job_id = strdup("");
    j->job_id_regexp = batch_str(bc, spec, "job_id_regexp");
    if (!j->job_id_regexp || !*j->job_id_regexp)
        j->job_id_regexp = sys->job_id_regexp;
    j->job_id_group = sys->job_id_group;
    {
        int64_t g;
        if (cpar_launch_config_int(bc->host, bc->ctx, spec, "job_id_regexp_group", &g) == 0)
            j->job_id_group = (int)g;
    }
    j->namespace_ = batch_json(bc, spec, "namespace");
    if (j->namespace_ && !json_is_object(j->namespace_)) {
        batch_job_free(j);
        return batch_fail(bc, CPAR_ECONFIG, "namespace must be a dict of template variables");
    }
    if (!j->namespace_)
        j->namespace_ = json_object();
    if (!j->cluster_id || !j->profile_dir || !j->queue || !j->batch_file_name || !j->work_dir ||
        !j->job_id || !j->namespace_) {
        batch_job_free(j);
        return batch_fail(bc, CPAR_ENOMEM, "out of memory");
    }
    if ((rc = batch_command(bc, spec, "submit_command", sys->submit_command, &j->submit)) ||
        (rc = batch_command(bc, spec, "delete_command", sys->delete_command, &j->del)) ||
        (rc = batch_command(bc, spec, "signal_command", sys->signal_command, &j->sig)) ||
        (rc = batch_command(bc, spec, "poll_command", sys->poll_command, &j->poll))) {
        batch_job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* ---- the template ------------------------------------------------------------------------- */

static int batch_read_file(const cpar_batch_ctx_t *bc, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, r;

    if (!f)
        return batch_fail(bc, CPAR_ENOENT, "cannot read batch_template_file '%s': %s", path,
                          strerror(errno));
    do {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return batch_fail(bc, CPAR_ENOMEM, "out of memory");
            }
            buf = nb;
            cap += 65536;
        }
        r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
    } while (r > 0);
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* Insert `line` after the first line of *tmpl (or append it when at_end). */
static int batch_insert(char **tmpl, const char *line, int at_end)
{
    const char *t = *tmpl;
    const char *nl = strchr(t, '\n');
    size_t tl = strlen(t), ll = strlen(line);
    char *s = malloc(tl + ll + 3);

    if (!s)
        return CPAR_ENOMEM;
    if (at_end) {
        int need_nl = tl && t[tl - 1] != '\n';
        sprintf(s, "%s%s%s\n", t, need_nl ? "\n" : "", line);
    } else if (nl) {
        size_t head = (size_t)(nl - t) + 1;
        memcpy(s, t, head);
        memcpy(s + head, line, ll);
        s[head + ll] = '\n';
        strcpy(s + head + ll + 1, nl + 1);
    } else {
        sprintf(s, "%s\n%s\n", t, line);
    }
    free(*tmpl);
    *tmpl = s;
    return 0;
}

/* Whether the regex `present` finds something in `tmpl`. */
static int batch_has(const char *present, const char *tmpl)
{
    char *m = NULL;

    if (!present || !*present)
        return 0;
    if (cpar_text_regex_search(present, tmpl, 0, &m, NULL, 0) == 0) {
        free(m);
        return 1;
    }
    return 0;
}

/* The value of setting `key` as template text ("" when unset), malloc'd. */
static char *batch_setting_text(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                                const char *key, int *is_int, int64_t *ival)
{
    json_t *v = batch_json(bc, spec, key);
    char *s;

    *is_int = 0;
    if (json_is_integer(v)) {
        *is_int = 1;
        *ival = json_integer_value(v);
        s = strdup("");
    } else if (json_is_string(v)) {
        s = strdup(json_string_value(v));
    } else if (!v || json_is_null(v)) {
        s = strdup("");
    } else {
        s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    }
    json_decref(v);
    return s;
}

/* Choose the template and patch a default one (§6.3); *out is malloc'd. */
static int batch_template(cpar_batch_job_t *j, const cpar_launch_spec_t *spec, char **out)
{
    const cpar_batch_system_t *sys = j->bc.sys;
    const char *t = batch_str(&j->bc, spec, "batch_template");
    const char *file = batch_str(&j->bc, spec, "batch_template_file");
    char *tmpl;
    int rc;

    if (t && *t)
        return (*out = strdup(t)) ? 0 : batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
    if (file && *file)
        return batch_read_file(&j->bc, file, out);
    t = spec->role == CPAR_ROLE_CONTROLLER ? sys->controller_template : sys->engine_template;
    if (!t || !*t)
        return batch_fail(&j->bc, CPAR_ECONFIG,
                          "no batch_template or batch_template_file is set, and %s has no "
                          "default template for %s",
                          j->bc.name,
                          spec->role == CPAR_ROLE_CONTROLLER ? "a controller" : "engines");
    if (!(tmpl = strdup(t)))
        return batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
    for (size_t i = 0; i < sys->n_options; i++) {
        const cpar_batch_option_t *o = &sys->options[i];
        int is_int = 0;
        int64_t iv = 0;
        char *val =
            o->setting ? batch_setting_text(&j->bc, spec, o->setting, &is_int, &iv) : strdup("x");
        int set = val && (is_int || *val);

        free(val);
        if (!set || batch_has(o->present, tmpl))
            continue;
        if ((rc = batch_insert(&tmpl, o->line, 0)) != 0) {
            free(tmpl);
            return batch_fail(&j->bc, rc, "out of memory");
        }
    }
    if (sys->array && !batch_has(sys->array->present, tmpl) &&
        (rc = batch_insert(&tmpl, sys->array->line, sys->array_at_end)) != 0) {
        free(tmpl);
        return batch_fail(&j->bc, rc, "out of memory");
    }
    *out = tmpl;
    return 0;
}

/* Render j->batch_template with the context of §6.2. */
static int batch_render(cpar_batch_job_t *j, const cpar_launch_spec_t *spec, char **script)
{
    cpar_tvar_t vars[BATCH_MAX_VARS];
    char *owned[BATCH_MAX_VARS];
    size_t nv = 0, no = 0;
    char *prog = NULL, *args = NULL, *both = NULL;
    batch_argv_t all = {0};
    const char *key;
    json_t *val;
    int rc = 0;

    cpar_text_shell_join(spec->program, &prog);
    cpar_text_shell_join(spec->program_args, &args);
    for (const char *const *w = spec->program; w && *w && !rc; w++)
        rc = batch_argv_push(&all, *w);
    for (const char *const *w = spec->program_args; w && *w && !rc; w++)
        rc = batch_argv_push(&all, *w);
    if (!rc)
        cpar_text_shell_join((const char *const *)all.v, &both);
    batch_argv_free(&all);
    if (!prog || !args || !both) {
        rc = batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
        goto done;
    }
    vars[nv++] = (cpar_tvar_t){.name = "n", .integer = j->n};
    vars[nv++] = (cpar_tvar_t){.name = "queue", .text = j->queue};
    vars[nv++] = (cpar_tvar_t){.name = "profile_dir", .text = j->profile_dir};
    vars[nv++] = (cpar_tvar_t){.name = "cluster_id", .text = j->cluster_id};
    vars[nv++] = (cpar_tvar_t){.name = "program", .text = prog};
    vars[nv++] = (cpar_tvar_t){.name = "program_args", .text = args};
    vars[nv++] = (cpar_tvar_t){.name = "program_and_args", .text = both};
    for (const char *const *e = j->bc.sys->extra_settings; e && *e && nv < BATCH_MAX_VARS; e++) {
        int is_int = 0;
        int64_t iv = 0;
        char *s = batch_setting_text(&j->bc, spec, *e, &is_int, &iv);
        if (!s) {
            rc = batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
            goto done;
        }
        owned[no++] = s;
        vars[nv++] = is_int ? (cpar_tvar_t){.name = *e, .integer = iv}
                            : (cpar_tvar_t){.name = *e, .text = s};
    }
    /* namespace last: its entries override the built-in ones */
    json_object_foreach(j->namespace_, key, val)
    {
        if (nv >= BATCH_MAX_VARS || no >= BATCH_MAX_VARS)
            break;
        if (json_is_integer(val)) {
            vars[nv++] = (cpar_tvar_t){.name = key, .integer = json_integer_value(val)};
        } else if (json_is_boolean(val)) {
            vars[nv++] = (cpar_tvar_t){.name = key, .integer = json_is_true(val)};
        } else {
            char *s = json_is_string(val) ? strdup(json_string_value(val))
                                          : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            if (!s) {
                rc = batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
                goto done;
            }
            owned[no++] = s;
            vars[nv++] = (cpar_tvar_t){.name = key, .text = s};
        }
    }
    rc = j->bc.host->render_template(j->bc.ctx, j->batch_template, vars, nv, script);
done:
    for (size_t i = 0; i < no; i++)
        free(owned[i]);
    free(prog);
    free(args);
    free(both);
    return rc;
}

static int batch_write(cpar_batch_job_t *j, const char *script, char **path)
{
    size_t len = strlen(script);
    ssize_t w;
    int fd;

    if (asprintf(path, "%s/%s", j->work_dir, j->batch_file_name) < 0)
        return batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
    fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
    if (fd < 0 || fchmod(fd, 0700) != 0 || (w = write(fd, script, len)) != (ssize_t)len) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return batch_fail(&j->bc, CPAR_EIO, "cannot write batch script '%s': %s", *path,
                          strerror(e));
    }
    if (close(fd) != 0)
        return batch_fail(&j->bc, CPAR_EIO, "cannot write batch script '%s': %s", *path,
                          strerror(errno));
    return 0;
}

/* ---- operations --------------------------------------------------------------------------- */

static int batch_submit(cpar_batch_job_t *j, const char *path, const char *script)
{
    const cpar_batch_system_t *sys = j->bc.sys;
    const char *extra[] = {path, NULL};
    char *out = NULL, *err = NULL, *id = NULL, *cmd;
    int status = 0, rc;

    if (j->submit.n == 0)
        return batch_fail(&j->bc, CPAR_ECONFIG, "submit_command is empty");
    rc = batch_run(j, &j->submit, sys->submit_on_stdin ? NULL : extra,
                   sys->submit_on_stdin ? script : NULL, &status, &out, &err);
    if (rc)
        return rc;
    if (status != 0) {
        cmd = batch_join_words(&j->submit);
        rc = batch_fail(&j->bc, CPAR_EIO, "%s failed (exit %d): %s", cmd ? cmd : "submit", status,
                        *batch_trim(err) ? err : batch_trim(out));
        free(cmd);
        goto done;
    }
    rc = j->bc.host->regex_search(j->bc.ctx, j->job_id_regexp, out, j->job_id_group, &id);
    if (rc) {
        rc = batch_fail(&j->bc, CPAR_EIO, "Job id couldn't be determined: %s%s%s", batch_trim(out),
                        *batch_trim(err) ? "; stderr: " : "", err);
        goto done;
    }
    free(j->job_id);
    j->job_id = strdup(id);
    j->bc.host->free(id);
    if (!j->job_id)
        rc = batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
done:
    j->bc.host->free(out);
    j->bc.host->free(err);
    return rc;
}

int cpar_batch_start(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                     cpar_batch_job_t **job, char **start_json)
{
    cpar_batch_job_t *j = NULL;
    char *script = NULL, *path = NULL;
    int rc;

    if (!bc || !bc->sys || !spec || !job)
        return CPAR_EINVAL;
    if ((rc = batch_job_new(bc, spec, &j)) != 0)
        return rc;
    if ((rc = batch_template(j, spec, &j->batch_template)) != 0)
        goto fail;
    if ((rc = batch_render(j, spec, &script)) != 0)
        goto fail;
    if ((rc = batch_write(j, script, &path)) != 0)
        goto fail;
    if ((rc = batch_submit(j, path, script)) != 0)
        goto fail;
    if (start_json) {
        json_t *o = json_pack("{s:s}", "job_id", j->job_id);
        *start_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    bc->host->log(bc->ctx, CPAR_LOG_INFO, "submitted %s as job %s", path, j->job_id);
    free(script);
    free(path);
    *job = j;
    return 0;
fail:
    bc->host->free(script);
    free(path);
    batch_job_free(j);
    return rc;
}

int cpar_batch_adopt(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                     const char *start_json, cpar_batch_job_t **job)
{
    json_t *o = start_json ? json_loads(start_json, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(o, "job_id"));
    cpar_batch_job_t *j = NULL;
    int rc;

    if (!id) {
        json_decref(o);
        return batch_fail(bc, CPAR_EINTERNAL,
                          "%s overrides start but its start JSON has no \"job_id\"", bc->name);
    }
    if ((rc = batch_job_new(bc, spec, &j)) == 0) {
        free(j->job_id);
        if (!(j->job_id = strdup(id))) {
            batch_job_free(j);
            rc = batch_fail(bc, CPAR_ENOMEM, "out of memory");
        }
    }
    json_decref(o);
    if (rc == 0)
        *job = j;
    return rc;
}

int cpar_batch_poll(cpar_batch_job_t *j, cpar_job_state_t *st, int *exit_code, char **detail)
{
    const char *extra[2];
    char *out = NULL, *err = NULL;
    int status = 0, rc;
    static const char *const names[] = {"?", "pending", "running", "done", "unknown"};

    if (!j || !st)
        return CPAR_EINVAL;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (j->stopped) {
        *st = CPAR_JOB_DONE;
        return 0;
    }
    if (j->poll.n == 0 || !j->bc.sys->parse_state) {
        /* Like ipyparallel: without a way to ask, a submitted job counts as running. */
        *st = CPAR_JOB_RUNNING;
        if (detail)
            batch_detail(detail, "job %s (not polled)", j->job_id);
        return 0;
    }
    extra[0] = j->job_id;
    extra[1] = NULL;
    rc = batch_run(j, &j->poll, extra, NULL, &status, &out, &err);
    if (rc) {
        *st = CPAR_JOB_UNKNOWN;
        if (detail)
            batch_detail(detail, "job %s: cannot poll", j->job_id);
        return 0;
    }
    *st = j->bc.sys->parse_state(out ? out : "", status, j->job_id, exit_code);
    if (*st < CPAR_JOB_PENDING || *st > CPAR_JOB_UNKNOWN)
        *st = CPAR_JOB_UNKNOWN;
    if (detail)
        batch_detail(detail, "job %s: %s", j->job_id, names[*st]);
    j->bc.host->free(out);
    j->bc.host->free(err);
    return 0;
}

int cpar_batch_stop(cpar_batch_job_t *j, char **stop_json)
{
    const char *extra[2];
    char *out = NULL, *err = NULL, *cmd;
    int status = 0, rc;

    if (!j)
        return CPAR_EINVAL;
    if (j->stopped || !*j->job_id) {
        j->stopped = 1;
        return 0;
    }
    if (j->del.n == 0)
        return batch_fail(&j->bc, CPAR_ECONFIG, "delete_command is empty");
    extra[0] = j->job_id;
    extra[1] = NULL;
    rc = batch_run(j, &j->del, extra, NULL, &status, &out, &err);
    if (rc == 0 && status != 0) {
        cpar_job_state_t st = CPAR_JOB_UNKNOWN;
        int code;
        char *why = strdup(*batch_trim(err) ? err : batch_trim(out));

        /* A job that had already ended stops successfully. */
        if (j->poll.n && j->bc.sys->parse_state && cpar_batch_poll(j, &st, &code, NULL) == 0 &&
            st == CPAR_JOB_DONE) {
            rc = 0;
        } else {
            cmd = batch_join_words(&j->del);
            rc = batch_fail(&j->bc, CPAR_EIO, "%s %s failed (exit %d): %s", cmd ? cmd : "delete",
                            j->job_id, status, why ? why : "");
            free(cmd);
        }
        free(why);
    }
    if (rc == 0) {
        j->stopped = 1;
        if (stop_json) {
            json_t *o = json_pack("{s:s,s:s}", "job_id", j->job_id, "output", out ? out : "");
            *stop_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
    }
    j->bc.host->free(out);
    j->bc.host->free(err);
    return rc;
}

int cpar_batch_signal(cpar_batch_job_t *j, int signum)
{
    char num[16], *out = NULL, *err = NULL, *cmd;
    const char *extra[3] = {num, NULL, NULL};
    int status = 0, rc;

    if (!j)
        return CPAR_EINVAL;
    if (j->sig.n == 0)
        return batch_fail(&j->bc, CPAR_ENOTSUP, "%s cannot signal jobs (no signal_command)",
                          j->bc.name);
    if (j->stopped)
        return batch_fail(&j->bc, CPAR_ESTATE, "job %s was stopped", j->job_id);
    snprintf(num, sizeof num, "%d", signum);
    extra[1] = j->job_id;
    rc = batch_run(j, &j->sig, extra, NULL, &status, &out, &err);
    if (rc == 0 && status != 0) {
        cmd = batch_join_words(&j->sig);
        rc = batch_fail(&j->bc, CPAR_EIO, "%s %s %s failed (exit %d): %s", cmd ? cmd : "signal",
                        num, j->job_id, status, *batch_trim(err) ? err : batch_trim(out));
        free(cmd);
    }
    j->bc.host->free(out);
    j->bc.host->free(err);
    return rc;
}

int cpar_batch_save(cpar_batch_job_t *j, char **state_json)
{
    json_t *o;

    if (!j || !state_json)
        return CPAR_EINVAL;
    o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:O,s:s,s:s,s:s}", "cluster_id", j->cluster_id,
                  "profile_dir", j->profile_dir, "state", j->stopped ? "after" : "running",
                  "job_id", j->job_id, "n", j->n, "queue", j->queue, "namespace", j->namespace_,
                  "batch_template", j->batch_template ? j->batch_template : "", "batch_file_name",
                  j->batch_file_name, "work_dir", j->work_dir);
    *state_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *state_json ? 0 : batch_fail(&j->bc, CPAR_ENOMEM, "out of memory");
}

int cpar_batch_restore(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                       const char *state_json, cpar_batch_job_t **job)
{
    json_error_t jerr;
    json_t *o = json_loads(state_json, 0, &jerr), *ns;
    const char *id, *state, *s;
    cpar_batch_job_t *j = NULL;
    cpar_job_state_t st;
    int code, rc;

    if (!json_is_object(o)) {
        json_decref(o);
        return batch_fail(bc, CPAR_EINVAL, "saved state is not a JSON object: %s", jerr.text);
    }
    id = json_string_value(json_object_get(o, "job_id"));
    state = json_string_value(json_object_get(o, "state"));
    if (!id || !*id || (state && strcmp(state, "after") == 0)) {
        json_decref(o);
        return batch_fail(bc, CPAR_ENOENT, "the saved %s job was never submitted or was stopped",
                          bc->name);
    }
    if ((rc = batch_job_new(bc, spec, &j)) != 0) {
        json_decref(o);
        return rc;
    }
#define BATCH_TAKE(field, key)                                                                     \
    if ((s = json_string_value(json_object_get(o, key))) != NULL) {                                \
        free(j->field);                                                                            \
        j->field = strdup(s);                                                                      \
        if (!j->field)                                                                             \
            rc = CPAR_ENOMEM;                                                                      \
    }
    BATCH_TAKE(job_id, "job_id")
    BATCH_TAKE(cluster_id, "cluster_id")
    BATCH_TAKE(profile_dir, "profile_dir")
    BATCH_TAKE(queue, "queue")
    BATCH_TAKE(batch_template, "batch_template")
    BATCH_TAKE(batch_file_name, "batch_file_name")
    BATCH_TAKE(work_dir, "work_dir")
#undef BATCH_TAKE
    if (json_is_integer(json_object_get(o, "n")))
        j->n = (int)json_integer_value(json_object_get(o, "n"));
    ns = json_object_get(o, "namespace");
    if (json_is_object(ns)) {
        json_decref(j->namespace_);
        j->namespace_ = json_incref(ns);
    }
    json_decref(o);
    if (rc) {
        batch_job_free(j);
        return batch_fail(bc, rc, "out of memory");
    }
    if (cpar_batch_poll(j, &st, &code, NULL) == 0 && st == CPAR_JOB_DONE) {
        rc = batch_fail(bc, CPAR_ENOENT, "job %s no longer runs", j->job_id);
        batch_job_free(j);
        return rc;
    }
    *job = j;
    return 0;
}

int cpar_batch_output(cpar_batch_job_t *j, int remove, char **text)
{
    (void)remove;
    if (!j || !text)
        return CPAR_EINVAL;
    /* The scheduler chooses where job output goes; the driver does not know the file. */
    *text = strdup("");
    return *text ? 0 : CPAR_ENOMEM;
}

void cpar_batch_release(cpar_batch_job_t *j)
{
    batch_job_free(j);
}
