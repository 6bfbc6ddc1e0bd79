/*
 * twobin.c - cpar_scheduler_twobin.so: ipyparallel's `twobin` scheme.
 *
 * ipyparallel's twobin(loads) draws two indices uniformly and returns the smaller one, i.e. the
 * less recently assigned of two random engines, since the core offers them in least recently
 * assigned order: P(i) = (2(n-i)-1)/n^2. Loads are not looked at, and unlike what ipyparallel's
 * documentation says it never needed numpy. Random numbers and TaskScheduler.seed: see rng.h.
 */
#include <cparallel/scheduler.h>

#include "rng.h"

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

typedef struct twobin {
    const cpar_host_t *host;
    sched_rng_t rng;
} twobin_t;

static const char *const twobin_sections[] = {"TaskScheduler", NULL};

static int twobin_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    twobin_t *t = host->alloc(sizeof *t);
    int rc;

    if (!t)
        return CPAR_ENOMEM;
    t->host = host;
    rc = sched_rng_init(&t->rng, host, ctx, t);
    if (rc) {
        host->free(t);
        return rc;
    }
    *state = t;
    return 0;
}

static void twobin_fini(void *state)
{
    twobin_t *t = state;

    t->host->free(t);
}

static int twobin_choose(void *state, const cpar_sched_task_t *task,
                         cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    twobin_t *t = state;
    size_t a = sched_rng_below(&t->rng, n);
    size_t b = sched_rng_below(&t->rng, n);

    (void)task;
    (void)engines;
    *choice = a < b ? a : b;
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_twobin_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "twobin"), .version = CPAR_SCHEDULER_VERSION,
             .description = "the less recently assigned of two engines drawn at random "
                            "(ipyparallel's twobin)",
             .config_sections = twobin_sections, .init = twobin_init, .fini = twobin_fini},
    .choose = twobin_choose,
};
