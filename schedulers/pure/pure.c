/*
 * pure.c - cpar_scheduler_pure.so: ipyparallel's `pure` scheme, plain round robin.
 *
 * In ipyparallel, `--scheme=pure` replaces the Python task scheduler by a ZeroMQ device: client
 * requests come in on a ROUTER and leave on a DEALER that all engines connect to. libzmq's DEALER
 * load-balances by strict round robin over its connected pipes: a new pipe joins the end of the
 * rotation, each message goes to the pipe after the one that got the previous message, and a pipe
 * that cannot take a message right now (full) is skipped. Task durations, loads and completions
 * play no part, and there are no dependencies, targets, retries or timeouts (CPAR_SCHED_PLAIN
 * tells the core to refuse those).
 *
 * Here the rotation is a ring of the engines in engine_added order (a new engine joins at the
 * end), the pipes that can take a message are the engines the core offers, and the DEALER's
 * position is a cursor on the engine chosen last: choose takes the first offered engine after the
 * cursor. Removing the cursor's engine moves the cursor back to its predecessor, so the rotation
 * goes on where it was. Differences from the ZeroMQ device: the ring follows registration order,
 * whereas the DEALER follows the order in which engines' sockets connected (observed 0,2,1,3 with
 * four engines); an engine skipped for a while keeps its place, whereas libzmq moves a pipe that
 * was full to the end of the rotation; and the core, not the scheme, decides what happens to the
 * tasks of an engine that dies (with the device they were lost).
 *
 * Engines offered without engine_added having been called for them are outside the ring; if none
 * of the offered engines is in it, the first offered (least recently assigned) one is chosen.
 */
#include <cparallel/scheduler.h>

#ifndef CPAR_SCHEDULER_VERSION
#define CPAR_SCHEDULER_VERSION "0"
#endif

typedef struct pure pure_t;

/* One engine's place in the ring; the engine's plugin_data points to it. */
typedef struct pure_node {
    pure_t *owner;
    struct pure_node *prev, *next;
    uint64_t offered; /* number of the choose call that offered it last */
    size_t index;     /* its index in that call */
} pure_node_t;

struct pure {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    pure_node_t *head;   /* the engine added first; NULL when the ring is empty */
    pure_node_t *cursor; /* the engine chosen last; NULL: start at head */
    size_t count;
    uint64_t calls;
    int warned;
};

static const char *const pure_sections[] = {"TaskScheduler", NULL};

static int pure_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    pure_t *p = host->alloc(sizeof *p);

    if (!p)
        return CPAR_ENOMEM;
    *p = (pure_t){.host = host, .ctx = ctx};
    *state = p;
    return 0;
}

/* Engines still in the ring belong to the core, which may have freed them: only nodes go. */
static void pure_fini(void *state)
{
    pure_t *p = state;
    pure_node_t *node = p->head;

    for (size_t i = 0; i < p->count; i++) {
        pure_node_t *next = node->next;
        p->host->free(node);
        node = next;
    }
    p->host->free(p);
}

static pure_node_t *pure_node_of(pure_t *p, const cpar_sched_engine_t *engine)
{
    pure_node_t *node = engine->plugin_data;

    return node && node->owner == p ? node : NULL;
}

static void pure_engine_added(void *state, cpar_sched_engine_t *engine)
{
    pure_t *p = state;
    pure_node_t *node = p->host->alloc(sizeof *node);

    if (!node) {
        p->host->log(p->ctx, CPAR_LOG_ERROR,
                     "out of memory: engine %d (%s) left out of the round robin", engine->id,
                     engine->uuid);
        engine->plugin_data = NULL;
        return;
    }
    *node = (pure_node_t){.owner = p};
    if (p->head) {
        node->next = p->head;
        node->prev = p->head->prev;
        p->head->prev->next = node;
        p->head->prev = node;
    } else {
        node->next = node->prev = node;
        p->head = node;
    }
    p->count++;
    engine->plugin_data = node;
}

static void pure_engine_removed(void *state, cpar_sched_engine_t *engine)
{
    pure_t *p = state;
    pure_node_t *node = pure_node_of(p, engine);

    if (!node)
        return;
    if (node->next == node) {
        p->head = p->cursor = NULL;
    } else {
        if (p->cursor == node)
            p->cursor = node->prev;
        if (p->head == node)
            p->head = node->next;
        node->prev->next = node->next;
        node->next->prev = node->prev;
    }
    p->count--;
    engine->plugin_data = NULL;
    p->host->free(node);
}

static int pure_choose(void *state, const cpar_sched_task_t *task,
                       cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    pure_t *p = state;
    pure_node_t *node;
    uint64_t call = ++p->calls;

    (void)task;
    for (size_t i = 0; i < n; i++) {
        node = pure_node_of(p, engines[i]);
        if (node) {
            node->offered = call;
            node->index = i;
        }
    }
    node = p->cursor ? p->cursor->next : p->head;
    for (size_t i = 0; i < p->count; i++, node = node->next) {
        if (node->offered == call) {
            p->cursor = node;
            *choice = node->index;
            return 0;
        }
    }
    if (!p->warned) {
        p->host->log(p->ctx, CPAR_LOG_WARNING,
                     "offered engines it was not told about (engine_added); choosing the first");
        p->warned = 1;
    }
    *choice = 0;
    return 0;
}

CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_pure_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "pure"), .version = CPAR_SCHEDULER_VERSION,
             .description = "plain round robin without dependencies, targets, retries or "
                            "timeouts (ipyparallel's pure)",
             .config_sections = pure_sections, .init = pure_init, .fini = pure_fini},
    .flags = CPAR_SCHED_PLAIN,
    .choose = pure_choose,
    .engine_added = pure_engine_added,
    .engine_removed = pure_engine_removed,
};
