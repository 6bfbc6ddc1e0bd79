/*
 * plainrandom.c - cpar_scheduler_plainrandom.so: ipyparallel's `plainrandom` scheme.
 *
 * ipyparallel's plainrandom(loads) is randint(0, n-1): any engine that may take the task, with
 * equal probability, loads not looked at. Python's Mersenne Twister is replaced by rng.h; the
 * integer TaskScheduler.seed, when set, makes the choices reproducible (ipyparallel had no seed).
 */
#include <cparallel/scheduler.h>

#include "rng.h"

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

typedef struct plainrandom {
    const cpar_host_t *host;
    sched_rng_t rng;
} plainrandom_t;

static const char *const plainrandom_sections[] = {"TaskScheduler", NULL};

static int plainrandom_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    plainrandom_t *p = host->alloc(sizeof *p);
    int rc;

    if (!p)
        return CPAR_ENOMEM;
    p->host = host;
    rc = sched_rng_init(&p->rng, host, ctx, p);
    if (rc) {
        host->free(p);
        return rc;
    }
    *state = p;
    return 0;
}

static void plainrandom_fini(void *state)
{
    plainrandom_t *p = state;

    p->host->free(p);
}

static int plainrandom_choose(void *state, const cpar_sched_task_t *task,
                              cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    plainrandom_t *p = state;

    (void)task;
    (void)engines;
    *choice = sched_rng_below(&p->rng, n);
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_plainrandom_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "plainrandom"),
             .version = CPAR_SCHEDULER_VERSION,
             .description = "an engine drawn uniformly at random (ipyparallel's plainrandom)",
             .config_sections = plainrandom_sections, .init = plainrandom_init,
             .fini = plainrandom_fini},
    .choose = plainrandom_choose,
};
