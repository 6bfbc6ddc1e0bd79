/* sched.c - the typed front for scheduler plugins (see sched.h). */
#include "sched.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

struct cpar_sched {
    cpar_plughost_t *host;
    cpar_plugin_inst_t *inst;
    const cpar_scheduler_t *ops;
    void *state;
    char error[256]; /* the front's own text for the last failure, or "" */
};

/* ipyparallel's TaskScheduler.scheme_name values; the plugins carry the same names. */
static const char *const sched_schemes[] = {
    "leastload", "lru", "plainrandom", "twobin", "weighted", "pure",
};

const char *cpar_sched_plugin_name(const char *scheme_name)
{
    if (!scheme_name)
        return CPAR_SCHED_DEFAULT_SCHEME;
    for (size_t i = 0; i < sizeof sched_schemes / sizeof sched_schemes[0]; i++)
        if (strcasecmp(scheme_name, sched_schemes[i]) == 0)
            return sched_schemes[i];
    return scheme_name;
}

static void sched_fail(cpar_sched_t *s, const char *fmt, ...) CPAR_PRINTF(2, 3);
static void sched_fail(cpar_sched_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
}

static void sched_clear(cpar_sched_t *s)
{
    s->error[0] = '\0';
    cpar_plugin_clear_error(s->inst);
}

int cpar_sched_open(cpar_plughost_t *host, const char *scheme_name, cpar_sched_t **out, char *err,
                    size_t errlen)
{
    cpar_plugin_inst_t *inst;
    cpar_sched_t *s;
    int rc;

    if (!out)
        return CPAR_EINVAL;
    *out = NULL;
    rc = cpar_plughost_load(host, CPAR_KIND_SCHEDULER, cpar_sched_plugin_name(scheme_name), &inst,
                            err, errlen);
    if (rc)
        return rc;
    s = calloc(1, sizeof *s);
    if (!s) {
        cpar_plughost_unload(host, inst);
        if (err && errlen)
            snprintf(err, errlen, "%s", cpar_strerror(CPAR_ENOMEM));
        return CPAR_ENOMEM;
    }
    s->host = host;
    s->inst = inst;
    s->ops = (const cpar_scheduler_t *)cpar_plugin_desc(inst);
    s->state = cpar_plugin_state(inst);
    *out = s;
    return 0;
}

void cpar_sched_close(cpar_plughost_t *host, cpar_sched_t *s)
{
    if (!s)
        return;
    cpar_plughost_unload(host ? host : s->host, s->inst);
    free(s);
}

const char *cpar_sched_name(const cpar_sched_t *s)
{
    return s ? s->ops->base.name : "";
}

uint32_t cpar_sched_flags(const cpar_sched_t *s)
{
    return s ? s->ops->flags : 0;
}

const char *cpar_sched_error(const cpar_sched_t *s)
{
    if (!s)
        return "";
    return s->error[0] ? s->error : cpar_plugin_error(s->inst);
}

int cpar_sched_choose(cpar_sched_t *s, const cpar_sched_task_t *task,
                      cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    size_t picked = n;
    int rc;

    if (!s)
        return CPAR_EINVAL;
    sched_clear(s);
    if (!task || !engines || !choice) {
        sched_fail(s, "choose: %s", cpar_strerror(CPAR_EINVAL));
        return CPAR_EINVAL;
    }
    if (n == 0) {
        sched_fail(s, "choose: no engine offered");
        return CPAR_EINVAL;
    }
    rc = s->ops->choose(s->state, task, engines, n, &picked);
    if (rc < 0)
        return rc;
    if (rc > 0) {
        sched_fail(s, "choose returned %d, not 0 or a negative CPAR_E* code", rc);
        return CPAR_EINTERNAL;
    }
    if (picked >= n) {
        sched_fail(s, "choose picked index %zu of %zu engines", picked, n);
        return CPAR_EINTERNAL;
    }
    *choice = picked;
    return 0;
}

void cpar_sched_engine_added(cpar_sched_t *s, cpar_sched_engine_t *engine)
{
    if (s && engine && s->ops->engine_added)
        s->ops->engine_added(s->state, engine);
}

void cpar_sched_engine_removed(cpar_sched_t *s, cpar_sched_engine_t *engine)
{
    if (s && engine && s->ops->engine_removed)
        s->ops->engine_removed(s->state, engine);
}

void cpar_sched_task_assigned(cpar_sched_t *s, const cpar_sched_task_t *task,
                              cpar_sched_engine_t *engine)
{
    if (s && task && engine && s->ops->task_assigned)
        s->ops->task_assigned(s->state, task, engine);
}

void cpar_sched_task_finished(cpar_sched_t *s, const cpar_sched_task_t *task,
                              cpar_sched_engine_t *engine, int status)
{
    if (s && task && engine && s->ops->task_finished)
        s->ops->task_finished(s->state, task, engine, status);
}

int cpar_sched_has_priority(const cpar_sched_t *s)
{
    return s && s->ops->priority != NULL;
}

int64_t cpar_sched_priority(cpar_sched_t *s, const cpar_sched_task_t *task)
{
    if (!s || !task || !s->ops->priority)
        return 0;
    return s->ops->priority(s->state, task);
}
