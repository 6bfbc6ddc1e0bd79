/*
 * weighted.c - cpar_scheduler_weighted.so: ipyparallel's `weighted` scheme, without numpy.
 *
 * ipyparallel's weighted(loads) gives engine i the weight w[i] = 1/(1e-6 + loads[i]), draws two
 * engines x and y with probability proportional to their weights (the first i whose cumulative
 * weight reaches random() * total) and keeps y only when w[y] > w[x], else x: of two
 * inverse-load-weighted draws, the less loaded, the first one among equals. An idle engine weighs
 * 10^6 times a loaded one, so it practically always wins. The cumulative sums are computed on the
 * fly in a second pass (the same additions in the same order, so the same values) instead of in
 * an array; random() comes from rng.h (see there for TaskScheduler.seed).
 */
#include <cparallel/scheduler.h>

#include "rng.h"

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

typedef struct weighted {
    const cpar_host_t *host;
    sched_rng_t rng;
} weighted_t;

static const char *const weighted_sections[] = {"TaskScheduler", NULL};

static int weighted_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    weighted_t *w = host->alloc(sizeof *w);
    int rc;

    if (!w)
        return CPAR_ENOMEM;
    w->host = host;
    rc = sched_rng_init(&w->rng, host, ctx, w);
    if (rc) {
        host->free(w);
        return rc;
    }
    *state = w;
    return 0;
}

static void weighted_fini(void *state)
{
    weighted_t *w = state;

    w->host->free(w);
}

static double weighted_weight(const cpar_sched_engine_t *engine)
{
    return 1.0 / (1e-6 + (double)engine->load);
}

static int weighted_choose(void *state, const cpar_sched_task_t *task,
                           cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    weighted_t *w = state;
    double total = 0.0, sum = 0.0, x, y;
    size_t ix = n, iy = n;

    (void)task;
    for (size_t i = 0; i < n; i++)
        total += weighted_weight(engines[i]);
    x = sched_rng_unit(&w->rng) * total;
    y = sched_rng_unit(&w->rng) * total;
    for (size_t i = 0; i < n && (ix == n || iy == n); i++) {
        sum += weighted_weight(engines[i]);
        if (ix == n && sum >= x)
            ix = i;
        if (iy == n && sum >= y)
            iy = i;
    }
    /* Only reachable if the second pass did not add up to `total` again. */
    if (ix == n)
        ix = n - 1;
    if (iy == n)
        iy = n - 1;
    *choice = weighted_weight(engines[iy]) > weighted_weight(engines[ix]) ? iy : ix;
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_weighted_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "weighted"), .version = CPAR_SCHEDULER_VERSION,
             .description = "the less loaded of two engines drawn with inverse-load weights "
                            "(ipyparallel's weighted)",
             .config_sections = weighted_sections, .init = weighted_init, .fini = weighted_fini},
    .choose = weighted_choose,
};
