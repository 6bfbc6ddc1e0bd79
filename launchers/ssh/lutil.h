/*
 * lutil.h - small helpers shared by the process launchers mpi, ssh and sshproxy: string vectors
 * from list settings, JSON text in and out (jansson, private to the plugin), waiting, files.
 * Header-only (static functions) so that each plugin stays one self-contained module.
 */
#ifndef CPAR_LAUNCHERS_LUTIL_H
#define CPAR_LAUNCHERS_LUTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include <cparallel/launcher.h>

/* ---- NULL-terminated string vectors (malloc'd) -------------------------------------------- */

typedef struct lu_strv {
    char **v;
    size_t n, cap;
    int oom;
} lu_strv_t;

static inline void lu_strv_add(lu_strv_t *s, const char *x)
{
    if (s->oom)
        return;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **p = realloc(s->v, cap * sizeof *p);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n] = strdup(x ? x : "");
    if (!s->v[s->n]) {
        s->oom = 1;
        return;
    }
    s->n++;
    s->v[s->n] = NULL;
}

static inline void lu_strv_addv(lu_strv_t *s, const char *const *xs)
{
    for (; xs && *xs; xs++)
        lu_strv_add(s, *xs);
}

static inline void lu_strv_addf(lu_strv_t *s, const char *fmt, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, fmt, v);
    lu_strv_add(s, buf);
}

static inline void lu_strv_free(lu_strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The vector as argv; an empty one is {NULL}. */
static inline const char *const *lu_strv_argv(const lu_strv_t *s)
{
    static const char *const empty[] = {NULL};
    return s->n ? (const char *const *)s->v : empty;
}

/* A JSON array of strings (or one string) into `s`; CPAR_EINVAL otherwise. */
static inline int lu_strv_from_json(lu_strv_t *s, const json_t *v)
{
    if (json_is_string(v)) {
        lu_strv_add(s, json_string_value(v));
        return s->oom ? CPAR_ENOMEM : 0;
    }
    if (!json_is_array(v))
        return CPAR_EINVAL;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (json_is_string(e))
            lu_strv_add(s, json_string_value(e));
        else if (json_is_integer(e))
            lu_strv_addf(s, "%lld", (long long)json_integer_value(e));
        else
            return CPAR_EINVAL;
    }
    return s->oom ? CPAR_ENOMEM : 0;
}

static inline json_t *lu_strv_to_json(const lu_strv_t *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->n; i++)
        json_array_append_new(a, json_string(s->v[i]));
    return a;
}

/*
 * A list setting (through spec->sections) into `s`, or `dflt` when unset. A value that is not a
 * list of strings is CPAR_ECONFIG naming the key.
 */
static inline int lu_config_list(const cpar_host_t *host, cpar_ctx_t *ctx,
                                 const cpar_launch_spec_t *spec, const char *key,
                                 const char *const *dflt, lu_strv_t *s)
{
    char *text = NULL;
    int rc = cpar_launch_config_json(host, ctx, spec, key, &text);
    if (rc == CPAR_ENOENT) {
        lu_strv_addv(s, dflt);
        return s->oom ? CPAR_ENOMEM : 0;
    }
    if (rc)
        return rc;
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    host->free(text);
    rc = v ? lu_strv_from_json(s, v) : CPAR_EINVAL;
    json_decref(v);
    if (rc == CPAR_EINVAL) {
        host->set_error(ctx, "setting %s must be a list of strings", key);
        return CPAR_ECONFIG;
    }
    return rc;
}

static inline int lu_config_bool(const cpar_host_t *host, cpar_ctx_t *ctx,
                                 const cpar_launch_spec_t *spec, const char *key, int dflt)
{
    for (const char *const *sec = spec->sections; sec && *sec; sec++) {
        int v = 0;
        int rc = host->config_bool(ctx, *sec, key, &v);
        if (rc == 0)
            return v;
        if (rc != CPAR_ENOENT)
            break;
    }
    return dflt;
}

/* A duration setting in seconds, as milliseconds. */
static inline int lu_config_ms(const cpar_host_t *host, cpar_ctx_t *ctx,
                               const cpar_launch_spec_t *spec, const char *key, int dflt_ms)
{
    double d = 0;
    if (cpar_launch_config_double(host, ctx, spec, key, &d) == 0 && d >= 0 && d < 86400)
        return (int)(d * 1000);
    int64_t i = 0;
    if (cpar_launch_config_int(host, ctx, spec, key, &i) == 0 && i >= 0 && i < 86400)
        return (int)(i * 1000);
    return dflt_ms;
}

static inline char *lu_config_str(const cpar_host_t *host, cpar_ctx_t *ctx,
                                  const cpar_launch_spec_t *spec, const char *key, const char *dflt)
{
    const char *v = NULL;
    if (cpar_launch_config_string(host, ctx, spec, key, &v) != 0 || !v)
        v = dflt;
    return v ? strdup(v) : NULL;
}

/* ---- JSON out through the host allocator ---------------------------------------------------- */

/* Dump `v` (stolen) into host->alloc'd text at *out; 0 or CPAR_ENOMEM. */
static inline int lu_json_out(const cpar_host_t *host, json_t *v, char **out)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    if (!s)
        return CPAR_ENOMEM;
    size_t n = strlen(s) + 1;
    *out = host->alloc(n);
    if (*out)
        memcpy(*out, s, n);
    free(s);
    return *out ? 0 : CPAR_ENOMEM;
}

static inline char *lu_host_strdup(const cpar_host_t *host, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = host->alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static inline const char *lu_json_str(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

/* ---- time and files ------------------------------------------------------------------------- */

static inline void lu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* mkdir -p of the directory part of `path`. */
static inline void lu_mkdir_parent(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

/* The whole file into host->alloc'd text ("" when missing). */
static inline int lu_read_file(const cpar_host_t *host, const char *path, char **text)
{
    FILE *f = fopen(path, "rb");
    size_t len = 0, cap = 4096;
    char *buf = host->alloc(cap);
    if (!buf) {
        if (f)
            fclose(f);
        return CPAR_ENOMEM;
    }
    if (f) {
        size_t got;
        while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
            len += got;
            if (cap - len - 1 == 0) {
                char *p = host->realloc(buf, cap * 2);
                if (!p) {
                    fclose(f);
                    host->free(buf);
                    return CPAR_ENOMEM;
                }
                buf = p;
                cap *= 2;
            }
        }
        fclose(f);
    }
    buf[len] = '\0';
    *text = buf;
    return 0;
}

#endif /* CPAR_LAUNCHERS_LUTIL_H */
