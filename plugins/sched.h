/*
 * sched.h - the core's typed front for scheduler plugins (cpar_sched_*).
 *
 * The controller's task scheduler calls these on its reactor thread. Operations that can fail
 * clear the error text first, so that on failure cpar_sched_error() says why; optional operations
 * the plugin does not have are no-ops.
 */
#ifndef CPAR_PLUGINS_SCHED_H
#define CPAR_PLUGINS_SCHED_H

#include <stdint.h>
#include <cparallel/scheduler.h>

#include "host.h"

typedef struct cpar_sched cpar_sched_t;

/* ipyparallel's default TaskScheduler.scheme_name. */
#define CPAR_SCHED_DEFAULT_SCHEME "leastload"

/*
 * The plugin name for a TaskScheduler.scheme_name setting: ipyparallel's schemes leastload, lru,
 * plainrandom, twobin, weighted and pure in any case give their lowercase names, NULL gives the
 * default (leastload), and any other text is taken as a plugin name as it is. Returns a pointer
 * into a static table or into `scheme_name`.
 */
const char *cpar_sched_plugin_name(const char *scheme_name);

/* Load the scheduler for `scheme_name` (see above); err as cpar_plughost_load. */
int cpar_sched_open(cpar_plughost_t *host, const char *scheme_name, cpar_sched_t **out, char *err,
                    size_t errlen);
/* Unload (the plugin's fini frees its state). NULL is ignored. */
void cpar_sched_close(cpar_plughost_t *host, cpar_sched_t *s);

/* The plugin's name ("leastload") and its CPAR_SCHED_* flags. */
const char *cpar_sched_name(const cpar_sched_t *s);
uint32_t cpar_sched_flags(const cpar_sched_t *s);
/* The detail text of the last failed cpar_sched_choose(), or "". */
const char *cpar_sched_error(const cpar_sched_t *s);

/*
 * Ask the plugin to pick one of engines[0..n-1] for `task`; on success *choice is its index.
 * Returns 0; CPAR_EINVAL for a NULL argument or n == 0 (the plugin is not called: deciding what
 * to do when no engine can take a task is the core's business); the plugin's negative code (leave
 * the task waiting); or CPAR_EINTERNAL when the plugin returned a positive code or an index not
 * below n. *choice is only written on success.
 */
int cpar_sched_choose(cpar_sched_t *s, const cpar_sched_task_t *task,
                      cpar_sched_engine_t *const *engines, size_t n, size_t *choice);

/*
 * Notifications, in this order for an engine: added once, then tasks assigned and finished,
 * then removed once. `engine` must stay valid (and at the same address) from engine_added until
 * engine_removed returns, and its plugin_data be NULL when engine_added is called. `status` of
 * task_finished: 0 success, 1 error, 2 aborted.
 */
void cpar_sched_engine_added(cpar_sched_t *s, cpar_sched_engine_t *engine);
void cpar_sched_engine_removed(cpar_sched_t *s, cpar_sched_engine_t *engine);
void cpar_sched_task_assigned(cpar_sched_t *s, const cpar_sched_task_t *task,
                              cpar_sched_engine_t *engine);
void cpar_sched_task_finished(cpar_sched_t *s, const cpar_sched_task_t *task,
                              cpar_sched_engine_t *engine, int status);

/*
 * Whether the plugin orders the ready queue; when it does not, cpar_sched_priority() is 0 for
 * every task (FIFO). Ready tasks run highest priority first, FIFO among equals.
 */
int cpar_sched_has_priority(const cpar_sched_t *s);
int64_t cpar_sched_priority(cpar_sched_t *s, const cpar_sched_task_t *task);

#endif /* CPAR_PLUGINS_SCHED_H */
