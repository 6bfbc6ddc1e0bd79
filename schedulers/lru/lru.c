/*
 * lru.c - cpar_scheduler_lru.so: ipyparallel's `lru` scheme, the least recently used engine.
 *
 * ipyparallel's lru(loads) returns 0: the head of its list of engines kept in least recently
 * assigned order, filtered to the engines that may take the task. The core offers engines in
 * exactly that order, so the choice is always the first one offered. Loads are not looked at.
 */
#include <cparallel/scheduler.h>

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

static const char *const lru_sections[] = {"TaskScheduler", NULL};

static int lru_choose(void *state, const cpar_sched_task_t *task,
                      cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    (void)state;
    (void)task;
    (void)engines;
    (void)n;
    *choice = 0;
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_lru_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "lru"), .version = CPAR_SCHEDULER_VERSION,
             .description = "the least recently assigned engine (ipyparallel's lru)",
             .config_sections = lru_sections},
    .choose = lru_choose,
};
