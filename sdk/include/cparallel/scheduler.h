/*
 * cparallel/scheduler.h - load-balancing policy plugins (cpar_scheduler_<name>.so).
 *
 * The controller's task scheduler owns everything that makes load balancing correct: the queue
 * of waiting tasks, `after`/`follow` dependencies, `targets`, the high-water mark (hwm), retries
 * and their blacklists, timeouts, engine death. A scheduler plugin only decides policy:
 *
 *   - which engine, among the ones that may take a task right now, gets it (choose);
 *   - optionally, which ready task goes first (priority).
 *
 * It is told when engines come and go and when tasks are assigned and finish, so it can keep
 * statistics of its own. ipyparallel's schemes (leastload, lru, plainrandom, twobin, weighted)
 * are plugins of this kind; `pure` is one that declares CPAR_SCHED_PLAIN.
 *
 * All calls happen on the controller's reactor thread, once per task decision: keep them cheap.
 */
#ifndef CPARALLEL_SCHEDULER_H
#define CPARALLEL_SCHEDULER_H

#include <cparallel/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One engine as the scheduler core sees it. Owned by the core; valid from engine_added until
 * engine_removed returns. */
typedef struct cpar_sched_engine {
    const char *uuid;   /* the engine's identity (ipyparallel's engine uuid) */
    int32_t id;         /* the hub's integer engine id */
    uint32_t load;      /* tasks assigned to it and not answered yet */
    uint64_t assigned;  /* tasks ever assigned to it */
    uint64_t finished;  /* tasks it answered */
    void *plugin_data;  /* free for the plugin; the core never reads or writes it */
} cpar_sched_engine_t;

/* One task. Borrowed for the duration of a call. */
typedef struct cpar_sched_task {
    const char *msg_id;
    const char *metadata;  /* the request's metadata, JSON object text (not NUL-terminated) */
    size_t metadata_len;
    uint32_t attempts;     /* engines it was already sent to and that gave it back (retries,
                              UnmetDependency) */
} cpar_sched_task_t;

/* cpar_scheduler_t.flags */
enum {
    /*
     * ipyparallel's `pure` scheme: plain round robin with no dependencies, targets, retries or
     * timeouts, and no high-water mark. The core answers a task that asks for any of these with
     * an error reply instead of ignoring it.
     */
    CPAR_SCHED_PLAIN = 1u << 0
};

typedef struct cpar_scheduler {
    cpar_plugin_t base; /* kind CPAR_KIND_SCHEDULER */
    uint32_t flags;

    /*
     * Required. Pick one of engines[0..n-1] (n >= 1) for `task` and store its index in *choice.
     * Every engine offered may take the task now (under hwm, not blacklisted, in targets,
     * `follow` met); they come in least-recently-assigned order (a newly registered engine
     * first), which is what ipyparallel's schemes are defined on. Return 0; CPAR_EAGAIN to
     * leave the task waiting, quietly (it is offered again when an engine frees up or a task
     * finishes); or another negative CPAR_E* code, which also leaves it waiting but is logged as
     * a warning with the plugin's error text.
     */
    int (*choose)(void *state, const cpar_sched_task_t *task, cpar_sched_engine_t *const *engines,
                  size_t n, size_t *choice);

    /* Optional notifications; each may be NULL. */
    void (*engine_added)(void *state, cpar_sched_engine_t *engine);
    void (*engine_removed)(void *state, cpar_sched_engine_t *engine);
    void (*task_assigned)(void *state, const cpar_sched_task_t *task, cpar_sched_engine_t *engine);
    /* `status` is 0 for success, 1 for an error, 2 for aborted. */
    void (*task_finished)(void *state, const cpar_sched_task_t *task, cpar_sched_engine_t *engine,
                          int status);

    /*
     * Optional: the priority of a task that became ready (its `after` dependencies met); ready
     * tasks run highest priority first, FIFO among equals. NULL means FIFO for all. Called once
     * per task when it enters the ready queue.
     */
    int64_t (*priority)(void *state, const cpar_sched_task_t *task);
} cpar_scheduler_t;

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_SCHEDULER_H */
