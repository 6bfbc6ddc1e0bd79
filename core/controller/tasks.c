/*
 * tasks.c - the task scheduler core behind LoadBalancedView: the queue, dependencies, targets,
 * the high-water mark, retries, timeouts and engine death. Which engine a task goes to is the
 * scheduler plugin's choice (cparallel/scheduler.h); everything that makes it correct is here.
 *
 * A task is BLOCKED while its `after` dependencies are unmet (it is listed under each unfinished
 * dependency in ctl->dep_waiters), READY while it waits for an engine it may run on (in the
 * ready list, in submission order or by plugin priority), RUNNING on one engine, and gone once
 * its final reply (or the scheduler's own error) went to the client. Finished tasks are
 * remembered, up to TaskScheduler.dependency_window of them, with their outcome and engine, so
 * that later tasks can depend on them.
 *
 * Departures from ipyparallel 7.1, all fixing its defects: a task is never dispatched twice, the
 * ready queue keeps its order, a task whose targets have all died fails at once with
 * ImpossibleDependency, and memory does not grow with finished tasks beyond the window.
 */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

#define STRANDED_DELAY_MS 5000

typedef enum { T_BLOCKED, T_READY, T_RUNNING } task_state_t;

typedef struct dep {
    char **ids;
    size_t n;
    int all, success, failure;
    /* What is known of each dependency (DS_*) and where it ran: taken at submission and kept
     * up to date as they finish, so a waiting task never depends on the finished-task window. */
    int *st;
    char **where;
} dep_t;

typedef struct ctl_task {
    char *msg_id;
    cpar_msg_t msg;       /* the client's frames [C, DELIM, ...], kept for (re)dispatch */
    cpar_sched_task_t st; /* what the plugin sees */
    task_state_t state;
    dep_t after, follow;
    char **targets;       /* engine uuids; n_targets == 0: any engine */
    size_t n_targets;
    char **blacklist;     /* engines that gave it back */
    size_t n_blacklist;
    int64_t retries;
    int64_t timeout_ms;   /* 0: none */
    cpar_loop_timer_t *timer;
    ctl_engine_t *engine; /* RUNNING: where */
    char *engine_uuid;    /* RUNNING: copy, still valid after the engine died */
    int64_t prio;
    uint64_t seq;
    struct ctl_task *prev, *next; /* ready list */
    ctl_t *ctl;
} ctl_task_t;

typedef struct done {
    char *msg_id;
    char *engine; /* uuid, "" for the scheduler's own failures */
    int ok;
} done_t;

/* ---- finished tasks ---- */

static void done_free(done_t *d)
{
    if (!d)
        return;
    free(d->msg_id);
    free(d->engine);
    free(d);
}

static void done_add(ctl_t *ctl, const char *msg_id, const char *engine, int ok)
{
    done_t *d = calloc(1, sizeof *d), *old;

    if (!d || !(d->msg_id = strdup(msg_id)) || !(d->engine = strdup(engine ? engine : ""))) {
        done_free(d);
        return;
    }
    d->ok = ok;
    if (ctl->done_ring_n == ctl->done_ring_cap) {
        old = ctl->done_ring[ctl->done_ring_head];
        cpar_map_dels(&ctl->done, old->msg_id);
        done_free(old);
        ctl->done_ring[ctl->done_ring_head] = d;
        ctl->done_ring_head = (ctl->done_ring_head + 1) % ctl->done_ring_cap;
    } else {
        ctl->done_ring[(ctl->done_ring_head + ctl->done_ring_n++) % ctl->done_ring_cap] = d;
    }
    if (cpar_map_puts(&ctl->done, d->msg_id, d) != 0)
        cpar_warn("task::out of memory remembering %s", msg_id);
}

/* ---- dependencies (ipyparallel's Dependency.check / unreachable) ---- */

enum { DS_UNKNOWN, DS_PENDING, DS_OK, DS_FAIL };

static int dep_status(ctl_t *ctl, const char *id, const char **engine)
{
    done_t *d = cpar_map_gets(&ctl->done, id);

    if (d) {
        if (engine)
            *engine = d->engine;
        return d->ok ? DS_OK : DS_FAIL;
    }
    return cpar_map_gets(&ctl->tasks, id) ? DS_PENDING : DS_UNKNOWN;
}

/* Record what is known now of dependency i of d. */
static void dep_note(ctl_t *ctl, dep_t *d, size_t i)
{
    const char *where = "";

    d->st[i] = dep_status(ctl, d->ids[i], &where);
    free(d->where[i]);
    d->where[i] = strdup(where);
}

static int dep_snapshot(ctl_t *ctl, dep_t *d)
{
    if (d->n == 0)
        return 0;
    d->st = calloc(d->n, sizeof *d->st);
    d->where = calloc(d->n, sizeof *d->where);
    if (!d->st || !d->where)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < d->n; i++)
        dep_note(ctl, d, i);
    return 0;
}

/* `on`: only count deps that finished on this engine (follow); NULL: anywhere. */
static int dep_met(const dep_t *d, const char *on)
{
    size_t hits = 0;

    if (d->n == 0)
        return 1;
    for (size_t i = 0; i < d->n; i++) {
        int st = d->st[i];
        int in = (d->success && st == DS_OK) || (d->failure && st == DS_FAIL);

        if (in && on && (!d->where[i] || strcmp(d->where[i], on) != 0))
            in = 0;
        if (in)
            hits++;
        else if (d->all)
            return 0;
    }
    return d->all ? 1 : hits > 0;
}

static int dep_unreachable(const dep_t *d)
{
    size_t opposite = 0;

    if (d->n == 0)
        return 0;
    for (size_t i = 0; i < d->n; i++) {
        int st = d->st[i];
        int opp = (!d->success && st == DS_OK) || (!d->failure && st == DS_FAIL);

        if (opp) {
            if (d->all)
                return 1;
            opposite++;
        }
    }
    return !d->all && opposite == d->n;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A list of msg_id strings, or {"dependencies": [...], "all", "success", "failure"}. */
static int dep_parse(json_t *v, dep_t *d, const char **why)
{
    json_t *list = v, *x;
    size_t i;

    memset(d, 0, sizeof *d);
    d->all = d->success = 1;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_object(v)) {
        json_t *all = json_object_get(v, "all"), *succ = json_object_get(v, "success"),
               *fail = json_object_get(v, "failure");

        list = json_object_get(v, "dependencies");
        if (all)
            d->all = json_is_true(all);
        if (succ)
            d->success = json_is_true(succ);
        if (fail)
            d->failure = json_is_true(fail);
        if (!d->success && !d->failure) {
            *why = "a dependency must count success, failure or both";
            return CPAR_EINVAL;
        }
    }
    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list)) {
        *why = "dependencies must be a list of msg_ids";
        return CPAR_EINVAL;
    }
    d->ids = calloc(json_array_size(list) + 1, sizeof *d->ids);
    if (!d->ids)
        return CPAR_ENOMEM;
    json_array_foreach(list, i, x)
    {
        if (!json_is_string(x)) {
            *why = "dependencies must be msg_id strings";
            return CPAR_EINVAL;
        }
        if (!(d->ids[d->n] = strdup(json_string_value(x))))
            return CPAR_ENOMEM;
        d->n++;
    }
    return 0;
}

/* ---- engines: the LRU order and the engines that may take work ---- */

static int engine_free_for_work(const ctl_t *ctl, const ctl_engine_t *e)
{
    return ctl->task_hwm == 0 || e->se.load < (uint32_t)ctl->task_hwm;
}

/* Keep ctl->avail (engines under hwm) sorted by lru_seq, least recently assigned first. */
static void avail_remove(ctl_t *ctl, ctl_engine_t *e)
{
    if (!e->in_avail)
        return;
    for (size_t i = 0; i < ctl->navail; i++) {
        if (ctl->avail[i] == &e->se) {
            memmove(&ctl->avail[i], &ctl->avail[i + 1], (ctl->navail - i - 1) * sizeof *ctl->avail);
            ctl->navail--;
            break;
        }
    }
    e->in_avail = 0;
}

static ctl_engine_t *engine_of(cpar_sched_engine_t *se)
{
    return (ctl_engine_t *)((char *)se - offsetof(ctl_engine_t, se));
}

static void avail_insert(ctl_t *ctl, ctl_engine_t *e)
{
    size_t lo = 0, hi = ctl->navail;

    if (e->in_avail || !engine_free_for_work(ctl, e))
        return;
    if (ctl->navail == ctl->capavail) {
        size_t ncap = ctl->capavail ? ctl->capavail * 2 : 64;
        cpar_sched_engine_t **nv = realloc(ctl->avail, ncap * sizeof *nv);

        if (!nv)
            return;
        ctl->avail = nv;
        ctl->capavail = ncap;
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (engine_of(ctl->avail[mid])->lru_seq < e->lru_seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&ctl->avail[lo + 1], &ctl->avail[lo], (ctl->navail - lo) * sizeof *ctl->avail);
    ctl->avail[lo] = &e->se;
    ctl->navail++;
    e->in_avail = 1;
}

/* ---- replies the scheduler makes ---- */

static void record_failure(ctl_t *ctl, ctl_task_t *t, cpar_msg_t *reply)
{
    ctl_record_reply(ctl, reply, t->msg_id, NULL, NULL);
    done_add(ctl, t->msg_id, "", 0);
}

static void task_free(ctl_t *ctl, ctl_task_t *t)
{
    cpar_loop_timer_stop(ctl->loop, t->timer);
    cpar_msg_fini(&t->msg);
    strv_free(t->after.ids, t->after.n);
    strv_free(t->follow.ids, t->follow.n);
    strv_free(t->after.where, t->after.where ? t->after.n : 0);
    strv_free(t->follow.where, t->follow.where ? t->follow.n : 0);
    free(t->after.st);
    free(t->follow.st);
    strv_free(t->targets, t->n_targets);
    strv_free(t->blacklist, t->n_blacklist);
    free(t->engine_uuid);
    free(t->msg_id);
    free(t);
}

static void ready_unlink(ctl_t *ctl, ctl_task_t *t)
{
    if (t->state != T_READY)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        ctl->ready_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        ctl->ready_tail = t->prev;
    t->prev = t->next = NULL;
    ctl->nready--;
}

static void wake_dependents(ctl_t *ctl, const char *msg_id);

/* Fail a task that has not run with the scheduler's own error (ImpossibleDependency, ...). */
static void task_fail(ctl_t *ctl, ctl_task_t *t, const char *ename, const char *evalue)
{
    cpar_msg_t reply;
    cpar_bytes_t client = cpar_msg_frame(&t->msg, 0);
    json_t *content = cpar_error_content(ename, evalue);
    char *msg_id = t->msg_id;

    cpar_msg_init(&reply);
    cpar_debug("task::%s failed: %s", msg_id, ename);
    ready_unlink(ctl, t);
    cpar_map_dels(&ctl->tasks, msg_id);
    if (cpar_msg_parse(&t->msg, CPAR_PARSE_HEADER) == 0 &&
        cpar_session_build(&ctl->session, &reply, &client, 1, "apply_reply", t->msg.header, NULL,
                           content, NULL, 0) == 0) {
        record_failure(ctl, t, &reply);
        if (cpar_msg_send(&reply, ctl->sock[CHAN_TASK_CLIENT]) != 0)
            cpar_warn("task::cannot send %s for %s", ename, msg_id);
    }
    json_decref(content);
    cpar_msg_fini(&reply);
    t->msg_id = NULL;
    task_free(ctl, t);
    wake_dependents(ctl, msg_id);
    free(msg_id);
}

static void on_task_timeout(void *arg)
{
    ctl_task_t *t = arg;
    ctl_t *ctl = t->ctl;

    cpar_loop_timer_stop(ctl->loop, t->timer);
    t->timer = NULL;
    if (t->state != T_RUNNING)
        task_fail(ctl, t, "TaskTimeout", "");
}

/* The task has to wait (for dependencies or an engine): (re)arm its timeout from now. */
static void arm_timeout(ctl_t *ctl, ctl_task_t *t)
{
    if (t->timeout_ms <= 0)
        return;
    cpar_loop_timer_stop(ctl->loop, t->timer);
    t->timer = cpar_loop_timer_start(ctl->loop, (uint64_t)t->timeout_ms, 0, on_task_timeout, t);
}

/* ---- eligibility and dispatch ---- */

static int in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static int may_run_on(ctl_t *ctl, const ctl_task_t *t, const ctl_engine_t *e)
{
    if (t->n_blacklist && in_list(t->blacklist, t->n_blacklist, e->uuid))
        return 0;
    if (t->n_targets && !in_list(t->targets, t->n_targets, e->uuid))
        return 0;
    return t->follow.n == 0 || dep_met(&t->follow, e->uuid);
}

static void send_to_engine(ctl_t *ctl, ctl_task_t *t, ctl_engine_t *e)
{
    cpar_msg_t out;

    cpar_msg_init(&out);
    /* The kept frames are shared with the copy, not duplicated. */
    if (cpar_msg_copy_frames(&out, &t->msg) != 0 ||
        cpar_msg_prepend_ident(&out, e->uuid, e->uuidlen) != 0 ||
        cpar_msg_send(&out, ctl->sock[CHAN_TASK_ENGINE]) != 0)
        cpar_warn("task::cannot send %s to engine %d", t->msg_id, e->id);
    cpar_msg_fini(&out);
}

static void dispatch(ctl_t *ctl, ctl_task_t *t, ctl_engine_t *e)
{
    ready_unlink(ctl, t);
    cpar_loop_timer_stop(ctl->loop, t->timer);
    t->timer = NULL;
    t->state = T_RUNNING;
    t->engine = e;
    free(t->engine_uuid);
    t->engine_uuid = strdup(e->uuid);
    e->se.load++;
    e->se.assigned++;
    e->lru_seq = ++ctl->lru_back;
    avail_remove(ctl, e);
    avail_insert(ctl, e);
    ctl_record_assignment(ctl, t->msg_id, e);
    cpar_sched_task_assigned(ctl->sched, &t->st, &e->se);
    send_to_engine(ctl, t, e);
}

/*
 * Run `t` now if an engine may take it. Returns 1 when dispatched, 0 when it must wait, -1 when
 * it was failed (it is freed then).
 */
static int try_run(ctl_t *ctl, ctl_task_t *t)
{
    cpar_sched_engine_t **cand = ctl->avail, **buf = NULL;
    size_t n = ctl->navail, choice = 0;
    int rc;

    if (n == 0)
        return 0;
    if (t->n_targets || t->n_blacklist || t->follow.n) {
        buf = ctl->cand;
        n = 0;
        for (size_t i = 0; i < ctl->navail; i++)
            if (may_run_on(ctl, t, engine_of(ctl->avail[i])))
                buf[n++] = ctl->avail[i];
        cand = buf;
    }
    if (n == 0) {
        /* Can it ever run? ipyparallel's two checks, plus targets that all died. */
        if (t->follow.n && t->follow.all) {
            const char *first = NULL;

            for (size_t i = 0; i < t->follow.n; i++) {
                const char *where = t->follow.where[i] ? t->follow.where[i] : "";
                int st = t->follow.st[i];

                if (!((t->follow.success && st == DS_OK) || (t->follow.failure && st == DS_FAIL)))
                    continue;
                if (first && strcmp(first, where) != 0) {
                    task_fail(ctl, t, "ImpossibleDependency", "");
                    return -1;
                }
                first = where;
            }
        }
        if (t->n_targets) {
            size_t live = 0;

            for (size_t i = 0; i < t->n_targets; i++) {
                ctl_engine_t *e = ctl_engine_by_uuid(ctl, t->targets[i], strlen(t->targets[i]));

                if (e && e->registered &&
                    !(t->n_blacklist && in_list(t->blacklist, t->n_blacklist, e->uuid)))
                    live++;
            }
            if (live == 0) {
                task_fail(ctl, t, "ImpossibleDependency", "");
                return -1;
            }
        }
        return 0;
    }
    rc = cpar_sched_choose(ctl->sched, &t->st, cand, n, &choice);
    if (rc == CPAR_EAGAIN) /* the plugin wants it to wait */
        return 0;
    if (rc != 0) {
        cpar_warn("task::scheduler '%s' could not place %s: %s", cpar_sched_name(ctl->sched),
                  t->msg_id, cpar_sched_error(ctl->sched));
        return 0;
    }
    dispatch(ctl, t, engine_of(cand[choice]));
    return 1;
}

static void ready_push(ctl_t *ctl, ctl_task_t *t)
{
    ctl_task_t *at = NULL;

    t->state = T_READY;
    t->prev = t->next = NULL;
    if (cpar_sched_has_priority(ctl->sched)) {
        t->prio = cpar_sched_priority(ctl->sched, &t->st);
        /* After every task of higher or equal priority: FIFO among equals. */
        for (at = ctl->ready_tail; at && at->prio < t->prio; at = at->prev)
            ;
    } else {
        at = ctl->ready_tail;
    }
    t->prev = at;
    t->next = at ? at->next : ctl->ready_head;
    if (t->next)
        t->next->prev = t;
    else
        ctl->ready_tail = t;
    if (at)
        at->next = t;
    else
        ctl->ready_head = t;
    ctl->nready++;
}

/* A task whose `after` is met: run it, or queue it for an engine. */
static void make_ready(ctl_t *ctl, ctl_task_t *t)
{
    if (t->follow.n && dep_unreachable(&t->follow)) {
        task_fail(ctl, t, "ImpossibleDependency", "");
        return;
    }
    if (ctl->nready == 0 || cpar_sched_has_priority(ctl->sched)) {
        int rc = try_run(ctl, t);

        if (rc != 0)
            return;
    }
    ready_push(ctl, t);
    if (!t->timer) /* still counting from when it first had to wait, as ipyparallel does */
        arm_timeout(ctl, t);
    if (ctl->nready > 1 && ctl->navail)
        ctl_tasks_scan(ctl);
}

/*
 * Give free engines to waiting tasks, oldest (or highest priority) first. Failing a task can
 * fail its dependents in turn (anywhere in the list), so after a failure the walk restarts.
 */
void ctl_tasks_scan(ctl_t *ctl)
{
    if (ctl->scanning) {
        ctl->rescan = 1;
        return;
    }
    ctl->scanning = 1;
    do {
        ctl->rescan = 0;
        for (ctl_task_t *t = ctl->ready_head, *next; t && ctl->navail; t = next) {
            next = t->next;
            if (t->follow.n && dep_unreachable(&t->follow)) {
                task_fail(ctl, t, "ImpossibleDependency", "");
                ctl->rescan = 1;
                break;
            }
            if (try_run(ctl, t) < 0) {
                ctl->rescan = 1;
                break;
            }
        }
    } while (ctl->rescan && ctl->navail);
    ctl->scanning = 0;
}

/* ---- dependents ---- */

static void add_waiter(ctl_t *ctl, const char *dep, const char *waiter)
{
    ctl_strlist_t *l = cpar_map_gets(&ctl->dep_waiters, dep);

    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l || cpar_map_puts(&ctl->dep_waiters, dep, l) != 0) {
            free(l);
            return;
        }
    }
    ctl_strlist_push(l, waiter);
}

static void watch_deps(ctl_t *ctl, ctl_task_t *t)
{
    for (size_t i = 0; i < t->after.n; i++)
        if (t->after.st[i] == DS_PENDING)
            add_waiter(ctl, t->after.ids[i], t->msg_id);
    for (size_t i = 0; i < t->follow.n; i++)
        if (t->follow.st[i] == DS_PENDING)
            add_waiter(ctl, t->follow.ids[i], t->msg_id);
}

/* `msg_id` just finished: note its outcome in t's dependencies. */
static void note_finished(ctl_t *ctl, ctl_task_t *t, const char *msg_id)
{
    for (int k = 0; k < 2; k++) {
        dep_t *d = k ? &t->follow : &t->after;

        for (size_t i = 0; i < d->n; i++)
            if (strcmp(d->ids[i], msg_id) == 0)
                dep_note(ctl, d, i);
    }
}

/* `msg_id` finished: re-check every task that waits on it. */
static void wake_dependents(ctl_t *ctl, const char *msg_id)
{
    ctl_strlist_t *l = cpar_map_dels(&ctl->dep_waiters, msg_id);

    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        ctl_task_t *t = cpar_map_gets(&ctl->tasks, l->v[i]);

        if (!t || t->state == T_RUNNING)
            continue;
        note_finished(ctl, t, msg_id);
        if (dep_unreachable(&t->after) || dep_unreachable(&t->follow)) {
            task_fail(ctl, t, "ImpossibleDependency", "");
            continue;
        }
        if (t->state == T_BLOCKED && dep_met(&t->after, NULL))
            make_ready(ctl, t);
    }
    ctl_strlist_free(l);
    free(l);
    if (ctl->nready && ctl->navail)
        ctl_tasks_scan(ctl);
}

/* ---- submission ---- */

static int parse_targets(json_t *v, ctl_task_t *t, const char **why)
{
    json_t *x;
    size_t i;

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        *why = "targets must be a list of engine uuids";
        return CPAR_EINVAL;
    }
    if (json_array_size(v) == 0)
        return 0;
    t->targets = calloc(json_array_size(v), sizeof *t->targets);
    if (!t->targets)
        return CPAR_ENOMEM;
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x)) {
            *why = "targets must be engine uuid strings";
            return CPAR_EINVAL;
        }
        if (!(t->targets[t->n_targets] = strdup(json_string_value(x))))
            return CPAR_ENOMEM;
        t->n_targets++;
    }
    return 0;
}

static int parse_metadata(ctl_task_t *t, json_t *md, const char **why)
{
    json_t *timeout = json_object_get(md, "timeout"), *retries = json_object_get(md, "retries");
    int rc;

    if ((rc = dep_parse(json_object_get(md, "after"), &t->after, why)) ||
        (rc = dep_parse(json_object_get(md, "follow"), &t->follow, why)) ||
        (rc = parse_targets(json_object_get(md, "targets"), t, why)))
        return rc;
    if (json_is_number(timeout) && json_number_value(timeout) > 0)
        t->timeout_ms = (int64_t)(json_number_value(timeout) * 1000.0 + 0.5);
    else if (timeout && !json_is_null(timeout) && !json_is_number(timeout)) {
        *why = "timeout must be a number of seconds";
        return CPAR_EINVAL;
    }
    if (json_is_integer(retries) && json_integer_value(retries) > 0)
        t->retries = json_integer_value(retries);
    else if (retries && !json_is_null(retries) && !json_is_integer(retries)) {
        *why = "retries must be an integer";
        return CPAR_EINVAL;
    }
    return 0;
}

/* Whether a request asks for nothing special: after, follow, targets, retries and timeout are
 * each absent, null, [], 0 or 0.0 (one walk of the metadata). */
static int trivial(cpar_msg_t *m)
{
    static const char *const keys[] = {"after", "follow", "targets", "retries", "timeout"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    cpar_bytes_t v[NKEYS];

    if (cpar_msg_scan_keys(m, CPAR_PART_METADATA, keys, NKEYS, v) != 0)
        return 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *d = v[i].data;
        size_t n = v[i].len;

        if (d && !(n == 2 && memcmp(d, "[]", 2) == 0) && !(n == 4 && memcmp(d, "null", 4) == 0) &&
            !(n == 1 && d[0] == '0') && !(n == 3 && memcmp(d, "0.0", 3) == 0))
            return 0;
    }
    return 1;
}

/* A new request `m` with header msg_id `msg_id`: from a client on the task socket (verified,
 * header scanned), or a resubmission from the hub. */
void ctl_tasks_submit(ctl_t *ctl, cpar_msg_t *m, const char *msg_id)
{
    const char *why = NULL;
    cpar_bytes_t md;
    ctl_task_t *t;
    int rc = 0, plain;

    if (cpar_msg_nidents(m) != 1) {
        ctl_drop(ctl, CHAN_TASK_CLIENT, m, "malformed task request");
        return;
    }
    /* Most tasks ask for nothing special: then the metadata is never parsed. */
    plain = trivial(m);
    if (!plain && cpar_msg_parse(m, CPAR_PARSE_METADATA) != 0) {
        ctl_drop(ctl, CHAN_TASK_CLIENT, m, "malformed task metadata");
        return;
    }
    if (cpar_map_gets(&ctl->tasks, msg_id) || cpar_map_gets(&ctl->done, msg_id)) {
        ctl_drop(ctl, CHAN_TASK_CLIENT, m, "task msg_id already seen");
        return;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->msg_id = strdup(msg_id))) {
        free(t);
        return;
    }
    t->ctl = ctl;
    /* The task takes the received message over; the receive buffer starts afresh. */
    t->msg = *m;
    cpar_msg_init(m);
    md = cpar_msg_frame(&t->msg, t->msg.delim + CPAR_PART_METADATA);
    t->st.msg_id = t->msg_id;
    t->st.metadata = md.data;
    t->st.metadata_len = md.len;
    t->seq = ++ctl->task_seq;
    t->state = T_BLOCKED;
    if (cpar_map_puts(&ctl->tasks, t->msg_id, t) != 0) {
        task_free(ctl, t);
        return;
    }
    ctl_record_request(ctl, &t->msg, t->msg_id, NULL, "task");

    if (!plain)
        rc = parse_metadata(t, t->msg.metadata, &why);
    if (rc == CPAR_ENOMEM) {
        task_fail(ctl, t, "MemoryError", "out of memory");
        return;
    }
    if (rc) {
        task_fail(ctl, t, "InvalidDependency", why);
        return;
    }
    if ((cpar_sched_flags(ctl->sched) & CPAR_SCHED_PLAIN) &&
        (t->after.n || t->follow.n || t->n_targets || t->retries || t->timeout_ms)) {
        task_fail(ctl, t, "RuntimeError",
                  "the 'pure' scheme has no dependencies, targets, retries or timeouts; "
                  "choose another TaskScheduler.scheme_name to use them");
        return;
    }
    if (dep_snapshot(ctl, &t->after) != 0 || dep_snapshot(ctl, &t->follow) != 0) {
        task_fail(ctl, t, "MemoryError", "out of memory");
        return;
    }
    for (int k = 0; k < 2; k++) {
        const dep_t *d = k ? &t->follow : &t->after;

        for (size_t i = 0; i < d->n; i++) {
            if (strcmp(d->ids[i], t->msg_id) == 0 || d->st[i] == DS_UNKNOWN) {
                task_fail(ctl, t, "InvalidDependency", "");
                return;
            }
        }
        if (dep_unreachable(d)) {
            task_fail(ctl, t, "ImpossibleDependency", "");
            return;
        }
    }
    watch_deps(ctl, t);
    if (dep_met(&t->after, NULL))
        make_ready(ctl, t);
    else
        arm_timeout(ctl, t);
}

void ctl_on_task_client(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < 512; budget++) {
        int rc = ctl_recv(ctl, CHAN_TASK_CLIENT);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0)
            ctl_tasks_submit(ctl, &ctl->in, ctl->in_id);
    }
    cpar_msg_clear(&ctl->in);
}

/* ---- results ---- */

/* Give a task back to the queue after an engine returned it (retry, UnmetDependency, death). */
static void requeue(ctl_t *ctl, ctl_task_t *t, const char *engine_uuid)
{
    char **nb = realloc(t->blacklist, (t->n_blacklist + 1) * sizeof *nb);

    if (nb) {
        t->blacklist = nb;
        if ((t->blacklist[t->n_blacklist] = strdup(engine_uuid)))
            t->n_blacklist++;
    }
    t->st.attempts++;
    t->engine = NULL;
    t->state = T_BLOCKED;
    if (t->n_targets && t->n_blacklist >= t->n_targets) {
        size_t left = 0;

        for (size_t i = 0; i < t->n_targets; i++)
            left += !in_list(t->blacklist, t->n_blacklist, t->targets[i]);
        if (left == 0) {
            task_fail(ctl, t, "ImpossibleDependency", "");
            return;
        }
    }
    if (try_run(ctl, t) == 0) {
        ready_push(ctl, t);
        arm_timeout(ctl, t);
    }
}

/* The reply for a RUNNING task came back from `e` (NULL: its engine died). */
static void handle_result(ctl_t *ctl, ctl_task_t *t, cpar_msg_t *m, ctl_engine_t *e)
{
    char status[32] = "", *msg_id;
    cpar_bytes_t md[CTL_MD_NKEYS];
    int unmet, ok, aborted;

    /* One walk of the metadata for the scheduler and the record both. */
    if (cpar_msg_scan_keys(m, CPAR_PART_METADATA, ctl_reply_md_keys, CTL_MD_NKEYS, md) != 0)
        memset(md, 0, sizeof md);
    unmet = md[CTL_MD_DEPS_MET].len == 5 && memcmp(md[CTL_MD_DEPS_MET].data, "false", 5) == 0;
    cpar_json_str(md[CTL_MD_STATUS], status, sizeof status);
    ok = strcmp(status, "ok") == 0;
    aborted = strcmp(status, "aborted") == 0;

    if (e) {
        if (e->se.load)
            e->se.load--;
        e->se.finished++;
        avail_insert(ctl, e);
        cpar_sched_task_finished(ctl->sched, &t->st, &e->se, ok ? 0 : aborted ? 2 : 1);
    }
    if (unmet || (!ok && t->retries > 0)) {
        if (!unmet)
            t->retries--;
        ctl_record_unassign(ctl, t->msg_id, e);
        requeue(ctl, t, t->engine_uuid);
        if (e && ctl->nready)
            ctl_tasks_scan(ctl);
        return;
    }
    /* Final: the hub first (so a query right after the reply finds it), then the client. */
    ctl_record_reply(ctl, m, t->msg_id, e, md);
    cpar_map_dels(&ctl->tasks, t->msg_id);
    done_add(ctl, t->msg_id, t->engine_uuid, ok);
    cpar_msg_swap_idents(m);
    if (cpar_msg_send(m, ctl->sock[CHAN_TASK_CLIENT]) != 0)
        cpar_warn("task::cannot send the reply of %s", t->msg_id);
    msg_id = t->msg_id;
    t->msg_id = NULL;
    task_free(ctl, t);
    wake_dependents(ctl, msg_id);
    free(msg_id);
    if (ctl->nready && ctl->navail)
        ctl_tasks_scan(ctl);
}

void ctl_on_task_engine(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < 512; budget++) {
        cpar_msg_t *m = &ctl->in;
        int rc = ctl_recv(ctl, CHAN_TASK_ENGINE);
        cpar_bytes_t src;
        ctl_engine_t *e;
        ctl_task_t *t;
        char parent[512];

        if (rc == CPAR_EAGAIN)
            break;
        if (rc)
            continue;
        if (cpar_msg_nidents(m) != 2 ||
            cpar_msg_scan_str(m, CPAR_PART_PARENT, "msg_id", parent, sizeof parent) != 0) {
            ctl_drop(ctl, CHAN_TASK_ENGINE, m, "malformed task reply");
            continue;
        }
        src = cpar_msg_frame(m, 0);
        e = ctl_engine_by_uuid(ctl, src.data, src.len);
        t = cpar_map_gets(&ctl->tasks, parent);
        if (t && t->state == T_RUNNING && !t->engine && t->engine_uuid &&
            strlen(t->engine_uuid) == src.len && memcmp(t->engine_uuid, src.data, src.len) == 0) {
            /* Its engine was declared dead but the real answer came before the EngineError. */
            handle_result(ctl, t, m, NULL);
            continue;
        }
        if (!e || !e->registered || !t || t->state != T_RUNNING || t->engine != e) {
            /* A duplicate, or later than the EngineError that settled it. */
            cpar_debug("task::dropping a reply for %s that is already settled", parent);
            continue;
        }
        handle_result(ctl, t, m, e);
    }
    cpar_msg_clear(&ctl->in);
}

/* ---- engines ---- */

void ctl_tasks_engine_added(ctl_t *ctl, ctl_engine_t *e)
{
    e->se.uuid = e->uuid;
    e->se.id = e->id;
    e->se.load = 0;
    /* A new engine goes to the front of the LRU order, as in ipyparallel. */
    e->lru_seq = --ctl->lru_front;
    if (ctl->ncand_cap < ctl->by_uuid.len + 1) {
        size_t ncap = ctl->by_uuid.len * 2 + 16;
        cpar_sched_engine_t **nc = realloc(ctl->cand, ncap * sizeof *nc);

        if (nc) {
            ctl->cand = nc;
            ctl->ncand_cap = ncap;
        }
    }
    cpar_sched_engine_added(ctl->sched, &e->se);
    avail_insert(ctl, e);
    if (ctl->nready)
        ctl_tasks_scan(ctl);
}

typedef struct stranded_tasks {
    ctl_t *ctl;
    char *uuid;
    ctl_strlist_t ids;
    cpar_loop_timer_t *timer;
    struct stranded_tasks *next;
} stranded_tasks_t;

static void stranded_tasks_free(stranded_tasks_t *s)
{
    ctl_strlist_free(&s->ids);
    free(s->uuid);
    free(s);
}

/* STRANDED_DELAY_MS after an engine died: its tasks get EngineError (retries apply). */
static void strand_tasks_fire(void *arg)
{
    stranded_tasks_t *s = arg, **pp;
    ctl_t *ctl = s->ctl;

    for (pp = &ctl->stranded_tasks; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    cpar_loop_timer_stop(ctl->loop, s->timer);
    for (size_t i = 0; i < s->ids.n; i++) {
        ctl_task_t *t = cpar_map_gets(&ctl->tasks, s->ids.v[i]);
        cpar_bytes_t idents[2];
        char evalue[600], now[CPAR_ISO_LEN];
        json_t *content, *md;
        cpar_msg_t reply;

        if (!t || t->state != T_RUNNING || t->engine || strcmp(t->engine_uuid, s->uuid) != 0)
            continue;
        snprintf(evalue, sizeof evalue, "Engine b'%s' died while running task '%s'", s->uuid,
                 t->msg_id);
        content = cpar_error_content("EngineError", evalue);
        md = json_pack("{s:s, s:s, s:s}", "status", "error", "engine", s->uuid, "date",
                       cpar_iso_format(cpar_now_us(), now));
        idents[0] = (cpar_bytes_t){s->uuid, strlen(s->uuid)};
        idents[1] = cpar_msg_frame(&t->msg, 0);
        cpar_msg_init(&reply);
        if (cpar_msg_parse(&t->msg, CPAR_PARSE_HEADER) == 0 &&
            cpar_session_build(&ctl->session, &reply, idents, 2, "apply_reply", t->msg.header, md,
                               content, NULL, 0) == 0)
            handle_result(ctl, t, &reply, NULL);
        cpar_msg_fini(&reply);
        json_decref(content);
        json_decref(md);
    }
    stranded_tasks_free(s);
}

void ctl_tasks_engine_removed(ctl_t *ctl, ctl_engine_t *e)
{
    stranded_tasks_t *s = NULL;
    const char *k;
    void *v;

    avail_remove(ctl, e);
    cpar_sched_engine_removed(ctl->sched, &e->se);
    for (size_t it = cpar_map_next(&ctl->tasks, 0, &k, NULL, &v); it;
         it = cpar_map_next(&ctl->tasks, it, &k, NULL, &v)) {
        ctl_task_t *t = v;

        if (t->state != T_RUNNING || t->engine != e)
            continue;
        t->engine = NULL;
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s || !(s->uuid = strdup(e->uuid))) {
                free(s);
                s = NULL;
                continue;
            }
            s->ctl = ctl;
        }
        ctl_strlist_push(&s->ids, t->msg_id);
    }
    if (s) {
        s->timer = cpar_loop_timer_start(ctl->loop, STRANDED_DELAY_MS, 0, strand_tasks_fire, s);
        s->next = ctl->stranded_tasks;
        ctl->stranded_tasks = s;
    }
    /* Tasks that could only run there may now be impossible. */
    for (int again = 1; again;) {
        again = 0;
        for (ctl_task_t *t = ctl->ready_head; t; t = t->next) {
            size_t live = 0;

            if (!t->n_targets)
                continue;
            for (size_t i = 0; i < t->n_targets; i++) {
                ctl_engine_t *x = ctl_engine_by_uuid(ctl, t->targets[i], strlen(t->targets[i]));

                live += x && x != e && x->registered &&
                        !(t->n_blacklist && in_list(t->blacklist, t->n_blacklist, x->uuid));
            }
            if (live == 0) {
                task_fail(ctl, t, "ImpossibleDependency", "");
                again = 1;
                break;
            }
        }
    }
}

/* ---- set-up and tear-down ---- */

int ctl_tasks_init(ctl_t *ctl, char *err, size_t errlen)
{
    int64_t window = 1 << 20;

    cpar_map_init(&ctl->tasks);
    cpar_map_init(&ctl->done);
    cpar_map_init(&ctl->dep_waiters);
    if (cpar_config_int(ctl->cfg, "TaskScheduler", "dependency_window", &window) == 0 &&
        window < 1)
        window = 1;
    ctl->done_ring_cap = (size_t)window;
    ctl->done_ring = calloc(ctl->done_ring_cap, sizeof *ctl->done_ring);
    if (!ctl->done_ring) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    if (cpar_sched_open(ctl->plughost, ctl->set.scheme_name, &ctl->sched, err, errlen) != 0)
        return CPAR_ENOENT;
    ctl->task_hwm = (cpar_sched_flags(ctl->sched) & CPAR_SCHED_PLAIN) ? 0 : ctl->set.hwm;
    if (ctl->task_hwm < 0) {
        snprintf(err, errlen, "TaskScheduler.hwm must be 0 (no limit) or more, not %lld",
                 (long long)ctl->task_hwm);
        return CPAR_ECONFIG;
    }
    return 0;
}

static void free_waiters(void *p)
{
    ctl_strlist_free(p);
    free(p);
}

static void free_task(void *p)
{
    ctl_task_t *t = p;

    task_free(t->ctl, t);
}

void ctl_tasks_fini(ctl_t *ctl)
{
    while (ctl->stranded_tasks) {
        stranded_tasks_t *s = ctl->stranded_tasks;

        ctl->stranded_tasks = s->next;
        cpar_loop_timer_stop(ctl->loop, s->timer);
        stranded_tasks_free(s);
    }
    cpar_map_fini(&ctl->tasks, free_task);
    cpar_map_fini(&ctl->dep_waiters, free_waiters);
    cpar_map_fini(&ctl->done, NULL);
    for (size_t i = 0; i < ctl->done_ring_n; i++)
        done_free(ctl->done_ring[(ctl->done_ring_head + i) % ctl->done_ring_cap]);
    free(ctl->done_ring);
    free(ctl->avail);
    free(ctl->cand);
    if (ctl->sched)
        cpar_sched_close(ctl->plughost, ctl->sched);
}
