/*
 * host.c - the plugin host: search path, candidate checks, load/unload, --list-plugins, and the
 * cpar_host_t table every plugin receives (see host.h).
 */
#include "host.h"
#include "why.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cparallel/dbbackend.h>
#include <cparallel/launcher.h>
#include <cparallel/scheduler.h>

#include "dl.h"
#include "proc.h"
#include "text.h"
#include "util/clock.h"
#include "util/log.h"

#ifndef CPAR_PLUGIN_RELDIR
#error "the build defines CPAR_PLUGIN_RELDIR (plugin dir relative to the program's dir)"
#endif
#ifndef CPAR_PLUGIN_INSTALL_DIR
#error "the build defines CPAR_PLUGIN_INSTALL_DIR (the installed plugin dir)"
#endif

#define HOST_ENV_PATH "CPAR_PLUGIN_PATH"
#define HOST_CFG_SECTION "CParallel"
#define HOST_CFG_PATH "plugin_path"
#define HOST_NAME_MAX_LEN 64

struct cpar_ctx {
    cpar_plugin_inst_t *inst;
};

struct cpar_timer {
    cpar_plugin_inst_t *inst;
    cpar_loop_timer_t *lt;
    cpar_timer_t *prev, *next;
};

struct cpar_plugin_inst {
    struct cpar_ctx ctx; /* what the plugin gets as its cpar_ctx_t */
    cpar_plughost_t *host;
    cpar_dl_t *dl;
    const cpar_plugin_t *desc;
    void *state;
    char *path;
    char *label; /* "<kind>/<name>", the log prefix */
    char *error; /* last set_error text, or NULL */
    int error_oom;
    cpar_timer_t *timers;
    cpar_plugin_inst_t *prev, *next; /* loaded instances, newest first */
};

struct cpar_plughost {
    const cpar_config_t *cfg;
    cpar_loop_t *loop;
    char *program, *profile_dir, *cluster_id, *session;
    char **dirs;
    size_t ndirs;
    char *search_path;
    cpar_plugin_inst_t *insts;
    cpar_procs_t *procs; /* NULL when the program manages no processes */
};

static const char *const host_kind_names[] = {
    [CPAR_KIND_SCHEDULER] = "scheduler",
    [CPAR_KIND_DBBACKEND] = "dbbackend",
    [CPAR_KIND_LAUNCHER] = "launcher",
};

const char *cpar_kind_name(cpar_kind_t kind)
{
    if ((int)kind <= 0 || (size_t)kind >= sizeof host_kind_names / sizeof host_kind_names[0])
        return NULL;
    return host_kind_names[kind];
}

static cpar_kind_t host_kind_from_name(const char *text, size_t len)
{
    for (size_t k = 1; k < sizeof host_kind_names / sizeof host_kind_names[0]; k++)
        if (host_kind_names[k] && strlen(host_kind_names[k]) == len &&
            memcmp(host_kind_names[k], text, len) == 0)
            return (cpar_kind_t)k;
    return (cpar_kind_t)0;
}

/* Plugin names end up in file and symbol names: a C identifier's characters only. */
static int host_name_ok(const char *name)
{
    size_t n = 0;

    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++, n++) {
        int c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return n <= HOST_NAME_MAX_LEN;
}

static char *host_strdup(const char *s)
{
    return strdup(s ? s : "");
}

static char *host_vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    char *buf;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    buf = malloc((size_t)n + 1);
    if (!buf)
        return NULL;
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    return buf;
}

static char *host_format(const char *fmt, ...) CPAR_PRINTF(1, 2);
static char *host_format(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = host_vformat(fmt, ap);
    va_end(ap);
    return s;
}

/* ---- the cpar_host_t table -------------------------------------------------------------- */

static void host_log(cpar_ctx_t *ctx, int level, const char *fmt, ...) CPAR_PRINTF(3, 4);
static void host_log(cpar_ctx_t *ctx, int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (!ctx || !fmt || !cpar_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cpar_log(level, "%s: %s", ctx->inst->label, msg);
}

static void host_set_error(cpar_ctx_t *ctx, const char *fmt, ...) CPAR_PRINTF(2, 3);
static void host_set_error(cpar_ctx_t *ctx, const char *fmt, ...)
{
    cpar_plugin_inst_t *inst;
    va_list ap;

    if (!ctx || !fmt)
        return;
    inst = ctx->inst;
    free(inst->error);
    va_start(ap, fmt);
    inst->error = host_vformat(fmt, ap);
    va_end(ap);
    inst->error_oom = inst->error == NULL;
}

static const cpar_config_t *host_cfg(cpar_ctx_t *ctx)
{
    return ctx ? ctx->inst->host->cfg : NULL;
}

static int host_config_string(cpar_ctx_t *ctx, const char *section, const char *key,
                              const char **out)
{
    if (!ctx || !section || !key || !out)
        return CPAR_EINVAL;
    if (!host_cfg(ctx))
        return CPAR_ENOENT;
    return cpar_config_string(host_cfg(ctx), section, key, out);
}

static int host_config_int(cpar_ctx_t *ctx, const char *section, const char *key, int64_t *out)
{
    if (!ctx || !section || !key || !out)
        return CPAR_EINVAL;
    if (!host_cfg(ctx))
        return CPAR_ENOENT;
    return cpar_config_int(host_cfg(ctx), section, key, out);
}

static int host_config_double(cpar_ctx_t *ctx, const char *section, const char *key, double *out)
{
    if (!ctx || !section || !key || !out)
        return CPAR_EINVAL;
    if (!host_cfg(ctx))
        return CPAR_ENOENT;
    return cpar_config_double(host_cfg(ctx), section, key, out);
}

static int host_config_bool(cpar_ctx_t *ctx, const char *section, const char *key, int *out)
{
    if (!ctx || !section || !key || !out)
        return CPAR_EINVAL;
    if (!host_cfg(ctx))
        return CPAR_ENOENT;
    return cpar_config_bool(host_cfg(ctx), section, key, out);
}

static int host_config_json(cpar_ctx_t *ctx, const char *section, const char *key, char **out)
{
    const size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    json_t *value;
    size_t n;
    char *text;

    if (!ctx || !section || !key || !out)
        return CPAR_EINVAL;
    if (!host_cfg(ctx))
        return CPAR_ENOENT;
    value = cpar_config_get(host_cfg(ctx), section, key);
    if (!value)
        return CPAR_ENOENT;
    n = json_dumpb(value, NULL, 0, flags);
    if (n == 0)
        return CPAR_EINVAL;
    text = malloc(n + 1);
    if (!text)
        return CPAR_ENOMEM;
    if (json_dumpb(value, text, n, flags) != n) {
        free(text);
        return CPAR_EINTERNAL;
    }
    text[n] = '\0';
    *out = text;
    return 0;
}

static const char *host_context(cpar_ctx_t *ctx, cpar_context_key_t key)
{
    const cpar_plughost_t *h;

    if (!ctx)
        return "";
    h = ctx->inst->host;
    switch (key) {
    case CPAR_CTX_PROGRAM:
        return h->program;
    case CPAR_CTX_PROFILE_DIR:
        return h->profile_dir;
    case CPAR_CTX_CLUSTER_ID:
        return h->cluster_id;
    case CPAR_CTX_SESSION:
        return h->session;
    }
    return "";
}

static int host_timer_start(cpar_ctx_t *ctx, uint64_t after_ms, uint64_t repeat_ms,
                            void (*cb)(void *arg), void *arg, cpar_timer_t **out)
{
    cpar_plugin_inst_t *inst;
    cpar_timer_t *t;

    if (!ctx || !cb || !out)
        return CPAR_EINVAL;
    inst = ctx->inst;
    if (!inst->host->loop)
        return CPAR_ENOTSUP;
    t = calloc(1, sizeof *t);
    if (!t)
        return CPAR_ENOMEM;
    t->lt = cpar_loop_timer_start(inst->host->loop, after_ms, repeat_ms, cb, arg);
    if (!t->lt) {
        free(t);
        return CPAR_ENOMEM;
    }
    t->inst = inst;
    t->next = inst->timers;
    if (inst->timers)
        inst->timers->prev = t;
    inst->timers = t;
    *out = t;
    return 0;
}

static void host_timer_release(cpar_timer_t *t)
{
    cpar_plugin_inst_t *inst = t->inst;

    cpar_loop_timer_stop(inst->host->loop, t->lt);
    if (t->prev)
        t->prev->next = t->next;
    else
        inst->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

static void host_timer_stop(cpar_ctx_t *ctx, cpar_timer_t *t)
{
    if (!ctx || !t)
        return;
    if (t->inst != ctx->inst) {
        cpar_error("%s: timer_stop on a timer it did not start; ignored", ctx->inst->label);
        return;
    }
    host_timer_release(t);
}

/* ---- ABI 1.2: processes and text (proc.c, text.c) ------------------------------------- */

static int host_no_processes(cpar_ctx_t *ctx, const char *what)
{
    host_set_error(ctx, "%s: %s starts no processes", what, ctx->inst->host->program);
    return CPAR_ENOTSUP;
}

static int host_spawn(cpar_ctx_t *ctx, const char *const *argv, const char *const *env,
                      const char *cwd, const char *output_file, int64_t *pid)
{
    char why[1024];
    int rc;

    if (!ctx)
        return CPAR_EINVAL;
    if (!ctx->inst->host->procs)
        return host_no_processes(ctx, "spawn");
    rc =
        cpar_procs_spawn(ctx->inst->host->procs, argv, env, cwd, output_file, pid, why, sizeof why);
    if (rc)
        host_set_error(ctx, "%s", why);
    return rc;
}

static int host_child_status(cpar_ctx_t *ctx, int64_t pid, int *running, int *exit_code)
{
    char why[256];
    int rc;

    if (!ctx)
        return CPAR_EINVAL;
    if (!ctx->inst->host->procs)
        return host_no_processes(ctx, "child_status");
    rc = cpar_procs_status(ctx->inst->host->procs, pid, running, exit_code, why, sizeof why);
    if (rc)
        host_set_error(ctx, "%s", why);
    return rc;
}

static int host_run(cpar_ctx_t *ctx, const char *const *argv, const char *input, int timeout_ms,
                    int *status, char **out, char **err)
{
    char why[1024];
    int rc;

    if (!ctx)
        return CPAR_EINVAL;
    if (!ctx->inst->host->procs)
        return host_no_processes(ctx, "run");
    rc = cpar_proc_run(argv, input, timeout_ms, status, out, err, why, sizeof why);
    if (rc)
        host_set_error(ctx, "%s", why);
    return rc;
}

static int host_render_template(cpar_ctx_t *ctx, const char *tmpl, const cpar_tvar_t *vars,
                                size_t nvars, char **out)
{
    char why[512];
    int rc = cpar_text_render(tmpl, vars, nvars, out, why, sizeof why);

    if (rc && ctx)
        host_set_error(ctx, "%s", why);
    return rc;
}

static int host_shell_join(cpar_ctx_t *ctx, const char *const *argv, char **out)
{
    int rc = cpar_text_shell_join(argv, out);

    if (rc && ctx)
        host_set_error(ctx, "shell_join: %s", cpar_strerror(rc));
    return rc;
}

static int host_regex_search(cpar_ctx_t *ctx, const char *pattern, const char *text, int group,
                             char **match)
{
    char why[512];
    int rc = cpar_text_regex_search(pattern, text, group, match, why, sizeof why);

    if (rc && ctx)
        host_set_error(ctx, "%s", why);
    return rc;
}

static const cpar_host_t host_table = {
    .abi_major = CPAR_PLUGIN_ABI_MAJOR,
    .abi_minor = CPAR_PLUGIN_ABI_MINOR,
    .log = host_log,
    .set_error = host_set_error,
    .config_string = host_config_string,
    .config_int = host_config_int,
    .config_double = host_config_double,
    .config_bool = host_config_bool,
    .config_json = host_config_json,
    .context = host_context,
    .alloc = malloc,
    .realloc = realloc,
    .free = free,
    .now_us = cpar_now_us,
    .monotonic_us = cpar_monotonic_us,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .spawn = host_spawn,
    .child_status = host_child_status,
    .run = host_run,
    .render_template = host_render_template,
    .shell_join = host_shell_join,
    .regex_search = host_regex_search,
};

/* ---- search path ------------------------------------------------------------------------ */

/* Append `dir` unless the same directory (after resolving links) is listed already. */
static int path_add(cpar_plughost_t *h, const char *dir, size_t len)
{
    char *given, *resolved, **dirs;

    if (len == 0)
        return 0;
    given = strndup(dir, len);
    if (!given)
        return CPAR_ENOMEM;
    resolved = realpath(given, NULL);
    if (resolved) {
        free(given);
        given = resolved;
    }
    for (size_t i = 0; i < h->ndirs; i++) {
        if (strcmp(h->dirs[i], given) == 0) {
            free(given);
            return 0;
        }
    }
    dirs = realloc(h->dirs, (h->ndirs + 1) * sizeof *dirs);
    if (!dirs) {
        free(given);
        return CPAR_ENOMEM;
    }
    h->dirs = dirs;
    h->dirs[h->ndirs++] = given;
    return 0;
}

static int path_add_list(cpar_plughost_t *h, const char *list)
{
    const char *p = list;

    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        int rc = path_add(h, p, len);
        if (rc)
            return rc;
        p = colon ? colon + 1 : NULL;
    }
    return 0;
}

static int path_add_config(cpar_plughost_t *h)
{
    json_t *value, *item;
    const char *origin;
    size_t i;

    if (!h->cfg)
        return 0;
    value = cpar_config_get(h->cfg, HOST_CFG_SECTION, HOST_CFG_PATH);
    if (!value)
        return 0;
    origin = cpar_config_origin(h->cfg, HOST_CFG_SECTION, HOST_CFG_PATH);
    if (json_is_string(value))
        return path_add_list(h, json_string_value(value));
    if (!json_is_array(value)) {
        cpar_warn(HOST_CFG_SECTION "." HOST_CFG_PATH " (%s) is not a list of directories or a "
                                   "colon-separated string; ignored",
                  origin ? origin : "?");
        return 0;
    }
    json_array_foreach(value, i, item)
    {
        int rc;
        if (!json_is_string(item)) {
            cpar_warn(HOST_CFG_SECTION "." HOST_CFG_PATH " (%s): item %zu is not a string; "
                                       "ignored",
                      origin ? origin : "?", i);
            continue;
        }
        rc = path_add(h, json_string_value(item), strlen(json_string_value(item)));
        if (rc)
            return rc;
    }
    return 0;
}

/* <directory of the running program>/CPAR_PLUGIN_RELDIR */
static int path_add_program_relative(cpar_plughost_t *h)
{
    char exe[PATH_MAX];
    char *slash, *dir;
    ssize_t n;
    int rc;

    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        cpar_debug("plugin host: cannot read /proc/self/exe (%s); skipping the program-relative "
                   "plugin directory",
                   strerror(errno));
        return 0;
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    dir = host_format("%s/%s", exe, CPAR_PLUGIN_RELDIR);
    if (!dir)
        return CPAR_ENOMEM;
    rc = path_add(h, dir, strlen(dir));
    free(dir);
    return rc;
}

static int path_join(cpar_plughost_t *h)
{
    size_t len = 1;
    char *s;

    for (size_t i = 0; i < h->ndirs; i++)
        len += strlen(h->dirs[i]) + 1;
    s = malloc(len);
    if (!s)
        return CPAR_ENOMEM;
    s[0] = '\0';
    for (size_t i = 0; i < h->ndirs; i++) {
        if (i)
            strcat(s, ":");
        strcat(s, h->dirs[i]);
    }
    h->search_path = s;
    return 0;
}

static int path_build(cpar_plughost_t *h)
{
    int rc;

    if ((rc = path_add_list(h, getenv(HOST_ENV_PATH))) != 0)
        return rc;
    if ((rc = path_add_config(h)) != 0)
        return rc;
    if ((rc = path_add_program_relative(h)) != 0)
        return rc;
    if ((rc = path_add(h, CPAR_PLUGIN_INSTALL_DIR, strlen(CPAR_PLUGIN_INSTALL_DIR))) != 0)
        return rc;
    return path_join(h);
}

/* ---- host lifetime ---------------------------------------------------------------------- */

int cpar_plughost_new(cpar_plughost_t **out, const cpar_config_t *cfg, cpar_loop_t *loop,
                      const cpar_plughost_info_t *info)
{
    cpar_plughost_t *h;
    int rc;

    if (!out)
        return CPAR_EINVAL;
    *out = NULL;
    h = calloc(1, sizeof *h);
    if (!h)
        return CPAR_ENOMEM;
    h->cfg = cfg;
    h->loop = loop;
    h->program = host_strdup(info ? info->program : NULL);
    h->profile_dir = host_strdup(info ? info->profile_dir : NULL);
    h->cluster_id = host_strdup(info ? info->cluster_id : NULL);
    h->session = host_strdup(info ? info->session : NULL);
    if (!h->program || !h->profile_dir || !h->cluster_id || !h->session) {
        rc = CPAR_ENOMEM;
        goto fail;
    }
    if ((rc = path_build(h)) != 0)
        goto fail;
    if (!(info && info->no_processes) && (rc = cpar_procs_new(&h->procs, loop)) != 0)
        goto fail;
    if ((rc = cpar_dl_init()) != 0) {
        cpar_error("plugin host: cannot start the loader: %s", cpar_dl_error());
        goto fail;
    }
    *out = h;
    return 0;

fail:
    cpar_procs_free(h->procs);
    for (size_t i = 0; i < h->ndirs; i++)
        free(h->dirs[i]);
    free(h->dirs);
    free(h->search_path);
    free(h->program);
    free(h->profile_dir);
    free(h->cluster_id);
    free(h->session);
    free(h);
    return rc;
}

void cpar_plughost_free(cpar_plughost_t *h)
{
    if (!h)
        return;
    while (h->insts)
        cpar_plughost_unload(h, h->insts);
    cpar_dl_exit();
    cpar_procs_free(h->procs);
    for (size_t i = 0; i < h->ndirs; i++)
        free(h->dirs[i]);
    free(h->dirs);
    free(h->search_path);
    free(h->program);
    free(h->profile_dir);
    free(h->cluster_id);
    free(h->session);
    free(h);
}

const char *cpar_plughost_search_path(const cpar_plughost_t *h)
{
    return h && h->search_path ? h->search_path : "";
}

/* ---- loading ---------------------------------------------------------------------------- */

/* Release an instance whose fini (if any) has run: stop leaked timers, close the object. */
static void inst_release(cpar_plugin_inst_t *inst)
{
    size_t leaked = 0;

    while (inst->timers) {
        host_timer_release(inst->timers);
        leaked++;
    }
    if (leaked)
        cpar_warn("%s: %zu timer(s) still running after fini; stopped", inst->label, leaked);
    if (inst->dl && cpar_dl_close(inst->dl) != 0)
        cpar_warn("%s: unloading %s: %s", inst->label, inst->path, cpar_dl_error());
    free(inst->path);
    free(inst->label);
    free(inst->error);
    free(inst);
}

static int check_ops(const cpar_plugin_t *d, char *why, size_t whylen)
{
    if (d->kind == CPAR_KIND_DBBACKEND) {
        const cpar_dbbackend_t *db = (const cpar_dbbackend_t *)d;
        const char *missing = !db->add_record      ? "add_record"
                              : !db->update_record ? "update_record"
                              : !db->get_record    ? "get_record"
                              : !db->drop_record   ? "drop_record"
                              : !db->get_history   ? "get_history"
                                                   : NULL;
        if (missing) {
            cpar_why(why, whylen, "missing operation '%s'", missing);
            return CPAR_EABI;
        }
    }
    if (d->kind == CPAR_KIND_SCHEDULER && !((const cpar_scheduler_t *)d)->choose) {
        cpar_why(why, whylen, "missing operation 'choose'");
        return CPAR_EABI;
    }
    if (d->kind == CPAR_KIND_LAUNCHER) {
        const cpar_launcher_t *l = (const cpar_launcher_t *)d;
        const char *missing = NULL;

        if (l->batch) {
            const cpar_batch_system_t *b = l->batch;
            missing = !b->submit_command                     ? "batch.submit_command"
                      : !b->delete_command                   ? "batch.delete_command"
                      : !b->job_id_regexp                    ? "batch.job_id_regexp"
                      : (b->poll_command && !b->parse_state) ? "batch.parse_state"
                                                             : NULL;
        } else {
            missing = !l->start     ? "start"
                      : !l->stop    ? "stop"
                      : !l->poll    ? "poll"
                      : !l->save    ? "save"
                      : !l->restore ? "restore"
                      : !l->release ? "release"
                                    : NULL;
        }
        if (missing) {
            cpar_why(why, whylen, "missing operation '%s'", missing);
            return CPAR_EABI;
        }
        if (!l->roles || !l->names || !l->names[0]) {
            cpar_why(why, whylen, "launcher descriptor without roles or names");
            return CPAR_EABI;
        }
    }
    return 0;
}

static int check_desc(const cpar_plugin_t *d, cpar_kind_t kind, const char *name, char *why,
                      size_t whylen)
{
    if (d->abi_major != CPAR_PLUGIN_ABI_MAJOR) {
        cpar_why(why, whylen, "ABI major %u, this core has %u", (unsigned)d->abi_major,
                 (unsigned)CPAR_PLUGIN_ABI_MAJOR);
        return CPAR_EABI;
    }
    if (d->abi_minor > CPAR_PLUGIN_ABI_MINOR) {
        cpar_why(why, whylen, "needs ABI %u.%u, this core has %u.%u", (unsigned)d->abi_major,
                 (unsigned)d->abi_minor, (unsigned)CPAR_PLUGIN_ABI_MAJOR,
                 (unsigned)CPAR_PLUGIN_ABI_MINOR);
        return CPAR_EABI;
    }
    if (d->kind != kind) {
        cpar_why(why, whylen, "descriptor kind %d is not %s", (int)d->kind, cpar_kind_name(kind));
        return CPAR_EABI;
    }
    if (!d->name || strcmp(d->name, name) != 0) {
        cpar_why(why, whylen, "descriptor names plugin '%s', file names '%s'",
                 d->name ? d->name : "", name);
        return CPAR_EABI;
    }
    return check_ops(d, why, whylen);
}

/*
 * Check, open, validate and initialise the file at `path` as plugin <kind>/<name>. On failure
 * writes the reason (without the path) to `why`.
 */
static int load_file(cpar_plughost_t *h, const char *path, cpar_kind_t kind, const char *name,
                     cpar_plugin_inst_t **out, char *why, size_t whylen)
{
    cpar_plugin_inst_t *inst;
    struct stat st;
    char *symbol;
    int rc;

    if (stat(path, &st) != 0) {
        cpar_why(why, whylen, "cannot stat: %s", strerror(errno));
        return CPAR_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        cpar_why(why, whylen, "not a regular file");
        return CPAR_EINVAL;
    }
    inst = calloc(1, sizeof *inst);
    if (!inst) {
        cpar_why(why, whylen, "%s", cpar_strerror(CPAR_ENOMEM));
        return CPAR_ENOMEM;
    }
    inst->ctx.inst = inst;
    inst->host = h;
    inst->path = strdup(path);
    inst->label = host_format("%s/%s", cpar_kind_name(kind), name);
    symbol = host_format("cpar_%s_%s_plugin", cpar_kind_name(kind), name);
    if (!inst->path || !inst->label || !symbol) {
        cpar_why(why, whylen, "%s", cpar_strerror(CPAR_ENOMEM));
        rc = CPAR_ENOMEM;
        goto fail;
    }
    inst->dl = cpar_dl_open(path);
    if (!inst->dl) {
        cpar_why(why, whylen, "cannot load: %s", cpar_dl_error());
        rc = CPAR_EIO;
        goto fail;
    }
    inst->desc = cpar_dl_sym(inst->dl, symbol);
    if (!inst->desc) {
        cpar_why(why, whylen, "no symbol %s", symbol);
        rc = CPAR_EABI;
        goto fail;
    }
    if ((rc = check_desc(inst->desc, kind, name, why, whylen)) != 0)
        goto fail;
    if (inst->desc->init) {
        rc = inst->desc->init(&host_table, &inst->ctx, &inst->state);
        if (rc < 0) {
            cpar_why(why, whylen, "init failed: %s: %s", cpar_err_name(rc),
                     cpar_plugin_error(inst)[0] ? cpar_plugin_error(inst) : cpar_strerror(rc));
            goto fail;
        }
    }
    free(symbol);
    inst->next = h->insts;
    if (h->insts)
        h->insts->prev = inst;
    h->insts = inst;
    *out = inst;
    return 0;

fail:
    free(symbol);
    inst_release(inst);
    return rc;
}

int cpar_plughost_load(cpar_plughost_t *h, cpar_kind_t kind, const char *name,
                       cpar_plugin_inst_t **out, char *err, size_t errlen)
{
    const char *kname = cpar_kind_name(kind);
    char why[1024];

    if (!h || !out) {
        cpar_why(err, errlen, "%s", cpar_strerror(CPAR_EINVAL));
        return CPAR_EINVAL;
    }
    *out = NULL;
    if (!kname) {
        cpar_why(err, errlen, "unknown plugin kind %d", (int)kind);
        return CPAR_EINVAL;
    }
    if (!host_name_ok(name)) {
        cpar_why(err, errlen, "%s plugin name '%s' is not valid (letters, digits and '_' only)",
                 kname, name ? name : "");
        return CPAR_EINVAL;
    }
    for (size_t i = 0; i < h->ndirs; i++) {
        struct stat st;
        char *path = host_format("%s/cpar_%s_%s.so", h->dirs[i], kname, name);
        int rc;

        if (!path) {
            cpar_why(err, errlen, "%s", cpar_strerror(CPAR_ENOMEM));
            return CPAR_ENOMEM;
        }
        if (lstat(path, &st) != 0) {
            free(path);
            continue;
        }
        rc = load_file(h, path, kind, name, out, why, sizeof why);
        if (rc)
            cpar_why(err, errlen, "%s: rejected: %s", path, why);
        free(path);
        return rc;
    }
    cpar_why(err, errlen, "%s plugin '%s' not found (searched: %s)", kname, name, h->search_path);
    return CPAR_ENOENT;
}

void cpar_plughost_unload(cpar_plughost_t *h, cpar_plugin_inst_t *inst)
{
    if (!h || !inst)
        return;
    if (inst->prev)
        inst->prev->next = inst->next;
    else
        h->insts = inst->next;
    if (inst->next)
        inst->next->prev = inst->prev;
    if (inst->desc->fini)
        inst->desc->fini(inst->state);
    inst_release(inst);
}

const cpar_plugin_t *cpar_plugin_desc(const cpar_plugin_inst_t *inst)
{
    return inst ? inst->desc : NULL;
}

void *cpar_plugin_state(const cpar_plugin_inst_t *inst)
{
    return inst ? inst->state : NULL;
}

const char *cpar_plugin_path(const cpar_plugin_inst_t *inst)
{
    return inst ? inst->path : "";
}

const char *cpar_plugin_error(const cpar_plugin_inst_t *inst)
{
    if (!inst)
        return "";
    if (inst->error_oom)
        return "out of memory while recording the plugin's error text";
    return inst->error ? inst->error : "";
}

const cpar_host_t *cpar_plughost_table(void)
{
    return &host_table;
}

cpar_ctx_t *cpar_plugin_ctx(cpar_plugin_inst_t *inst)
{
    return inst ? &inst->ctx : NULL;
}

void cpar_plugin_clear_error(cpar_plugin_inst_t *inst)
{
    if (!inst)
        return;
    free(inst->error);
    inst->error = NULL;
    inst->error_oom = 0;
}

/* ---- --list-plugins --------------------------------------------------------------------- */

typedef struct list_seen {
    char *id; /* "<kind>/<name>" as the file name spells it */
    char *path;
} list_seen_t;

static int list_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "cpar_<kind>_<name>.so": any <kind>, any non-empty <name>. */
static int list_looks_like_plugin(const char *file)
{
    size_t n = strlen(file);

    return n > 8 && strncmp(file, "cpar_", 5) == 0 && strcmp(file + n - 3, ".so") == 0 &&
           strchr(file + 5, '_') && strchr(file + 5, '_') < file + n - 4;
}

/* The sorted plugin-like file names of `dir`; NULL with *n = 0 when there are none. */
static char **list_dir(const char *dir, size_t *n)
{
    struct dirent *de;
    char **names = NULL;
    DIR *d;

    *n = 0;
    d = opendir(dir);
    if (!d)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        char **grown;
        char *name;

        if (!list_looks_like_plugin(de->d_name))
            continue;
        name = strdup(de->d_name);
        grown = name ? realloc(names, (*n + 1) * sizeof *names) : NULL;
        if (!grown) {
            free(name);
            cpar_error("plugin host: out of memory listing %s", dir);
            break;
        }
        names = grown;
        names[(*n)++] = name;
    }
    closedir(d);
    if (*n)
        qsort(names, *n, sizeof *names, list_name_cmp);
    return names;
}

static const list_seen_t *list_find(const list_seen_t *seen, size_t nseen, const char *id)
{
    for (size_t i = 0; i < nseen; i++)
        if (strcmp(seen[i].id, id) == 0)
            return &seen[i];
    return NULL;
}

/* Print the line for one file; returns 1 when it is rejected. */
static int list_file(cpar_plughost_t *h, FILE *out, const char *path, const char *id,
                     const char *kind_text, size_t kind_len, const char *name)
{
    cpar_kind_t kind = host_kind_from_name(kind_text, kind_len);
    cpar_plugin_inst_t *inst = NULL;
    char why[1024];
    const cpar_plugin_t *d;

    if (!kind) {
        fprintf(out, "%s rejected %s: unknown plugin kind '%.*s'\n", id, path, (int)kind_len,
                kind_text);
        return 1;
    }
    if (!host_name_ok(name)) {
        fprintf(out, "%s rejected %s: plugin name '%s' is not valid\n", id, path, name);
        return 1;
    }
    if (load_file(h, path, kind, name, &inst, why, sizeof why) != 0) {
        fprintf(out, "%s rejected %s: %s\n", id, path, why);
        return 1;
    }
    d = inst->desc;
    fprintf(out, "%s %s loaded %s - %s\n", id, d->version ? d->version : "?", path,
            d->description ? d->description : "");
    cpar_plughost_unload(h, inst);
    return 0;
}

/* Handle one plugin-like file of a search directory; returns 1 when it is rejected. */
static int list_entry(cpar_plughost_t *h, FILE *out, const char *dir, const char *file,
                      list_seen_t **seen, size_t *nseen)
{
    const char *kind_text = file + 5;
    size_t kind_len = (size_t)(strchr(kind_text, '_') - kind_text);
    char *name = strndup(kind_text + kind_len + 1, strlen(kind_text) - kind_len - 4);
    char *id = host_format("%.*s/%s", (int)kind_len, kind_text, name ? name : "");
    char *path = host_format("%s/%s", dir, file);
    const list_seen_t *first;
    list_seen_t *grown;
    int rejected = 0;

    if (!name || !id || !path) {
        cpar_error("plugin host: out of memory listing %s", dir);
        goto done;
    }
    first = list_find(*seen, *nseen, id);
    if (first) {
        fprintf(out, "%s shadowed %s (by %s)\n", id, path, first->path);
        goto done;
    }
    rejected = list_file(h, out, path, id, kind_text, kind_len, name);
    grown = realloc(*seen, (*nseen + 1) * sizeof **seen);
    if (!grown) {
        cpar_error("plugin host: out of memory listing %s", dir);
        goto done;
    }
    *seen = grown;
    grown[*nseen].id = id;
    grown[*nseen].path = path;
    (*nseen)++;
    id = path = NULL;

done:
    free(name);
    free(id);
    free(path);
    return rejected;
}

int cpar_plughost_list(cpar_plughost_t *h, FILE *out)
{
    list_seen_t *seen = NULL;
    size_t nseen = 0;
    int rejected = 0;

    if (!h || !out)
        return 0;
    for (size_t i = 0; i < h->ndirs; i++) {
        size_t nfiles;
        char **files = list_dir(h->dirs[i], &nfiles);

        for (size_t f = 0; f < nfiles; f++) {
            rejected += list_entry(h, out, h->dirs[i], files[f], &seen, &nseen);
            free(files[f]);
        }
        free(files);
    }
    for (size_t i = 0; i < nseen; i++) {
        free(seen[i].id);
        free(seen[i].path);
    }
    free(seen);
    return rejected;
}

size_t cpar_plughost_sections(const cpar_plughost_t *host, const char **out, size_t max)
{
    size_t n = 0;

    for (const cpar_plugin_inst_t *i = host->insts; i; i = i->next)
        for (const char *const *s = i->desc->config_sections; s && *s && n < max; s++)
            out[n++] = *s;
    return n;
}
