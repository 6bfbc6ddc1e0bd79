/*
 * leastload.c - cpar_scheduler_leastload.so: ipyparallel's `leastload` scheme, its default.
 *
 * ipyparallel's leastload(loads) is loads.index(min(loads)): the engine with the fewest tasks
 * outstanding, and among equals the first one, which is the least recently assigned because the
 * core offers engines in least recently assigned order (as ipyparallel's list is kept).
 */
#include <cparallel/scheduler.h>

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

static const char *const leastload_sections[] = {"TaskScheduler", NULL};

static int leastload_choose(void *state, const cpar_sched_task_t *task,
                            cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    size_t best = 0;

    (void)state;
    (void)task;
    for (size_t i = 1; i < n; i++)
        if (engines[i]->load < engines[best]->load)
            best = i;
    *choice = best;
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_leastload_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "leastload"),
             .version = CPAR_SCHEDULER_VERSION,
             .description = "the least loaded engine, the least recently assigned among equals "
                            "(ipyparallel's leastload, the default)",
             .config_sections = leastload_sections},
    .choose = leastload_choose,
};
