/*
 * loop.c - the reactor of every cparallel program (see loop.h).
 *
 * zmq_poll() over the watched sockets and fds; timers in a binary min-heap keyed by deadline;
 * signals through a signalfd that is itself a watched fd; children reaped on SIGCHLD.
 */
#include "loop.h"

#include <cparallel/errors.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "util/log.h"

typedef struct watcher {
    void *zsock; /* NULL for an fd watcher */
    int fd;
    cpar_io_cb cb;
    void *arg;
    int removed;
} watcher_t;

struct cpar_loop_timer {
    int64_t deadline; /* monotonic ms */
    uint64_t repeat_ms;
    cpar_timer_cb cb;
    void *arg;
    size_t slot;      /* index in the heap; SIZE_MAX when not armed */
    int once;         /* free after running */
    int running;      /* inside its callback */
    int stopped;      /* stopped inside its own callback */
};

typedef struct sigwatch {
    int signo;
    cpar_signal_cb cb;
    void *arg;
} sigwatch_t;

typedef struct childwatch {
    pid_t pid;
    cpar_child_cb cb;
    void *arg;
} childwatch_t;

struct cpar_loop {
    watcher_t *w;
    size_t nw, capw;
    zmq_pollitem_t *items;
    size_t capitems;
    int dirty; /* a watcher was removed: compact before the next poll */

    cpar_loop_timer_t **heap;
    size_t nheap, capheap;

    int sigfd;
    sigset_t sigmask;
    sigwatch_t *sigs;
    size_t nsigs;
    childwatch_t *children;
    size_t nchildren;

    int64_t now_ms;
    int stop;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *np;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*p, ncap * elem);
    if (!np)
        return CPAR_ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

int cpar_loop_new(cpar_loop_t **out)
{
    cpar_loop_t *loop = calloc(1, sizeof *loop);

    if (!loop)
        return CPAR_ENOMEM;
    loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    loop->now_ms = mono_ms();
    *out = loop;
    return 0;
}

void cpar_loop_free(cpar_loop_t *loop)
{
    if (!loop)
        return;
    for (size_t i = 0; i < loop->nheap; i++)
        free(loop->heap[i]);
    if (loop->sigfd >= 0) {
        close(loop->sigfd);
        sigprocmask(SIG_UNBLOCK, &loop->sigmask, NULL);
    }
    free(loop->heap);
    free(loop->w);
    free(loop->items);
    free(loop->sigs);
    free(loop->children);
    free(loop);
}

static int add_watcher(cpar_loop_t *loop, void *zsock, int fd, cpar_io_cb cb, void *arg)
{
    for (size_t i = 0; i < loop->nw; i++) {
        watcher_t *w = &loop->w[i];

        if (!w->removed && ((zsock && w->zsock == zsock) || (!zsock && !w->zsock && w->fd == fd)))
            return CPAR_EEXIST;
    }
    if (grow((void **)&loop->w, &loop->capw, loop->nw + 1, sizeof *loop->w))
        return CPAR_ENOMEM;
    loop->w[loop->nw++] = (watcher_t){.zsock = zsock, .fd = fd, .cb = cb, .arg = arg};
    return 0;
}

int cpar_loop_add_socket(cpar_loop_t *loop, void *zsock, cpar_io_cb cb, void *arg)
{
    return add_watcher(loop, zsock, -1, cb, arg);
}

int cpar_loop_add_fd(cpar_loop_t *loop, int fd, cpar_io_cb cb, void *arg)
{
    return add_watcher(loop, NULL, fd, cb, arg);
}

static void remove_watcher(cpar_loop_t *loop, void *zsock, int fd)
{
    for (size_t i = 0; i < loop->nw; i++) {
        watcher_t *w = &loop->w[i];

        if ((zsock && w->zsock == zsock) || (!zsock && !w->zsock && w->fd == fd)) {
            w->removed = 1;
            loop->dirty = 1;
        }
    }
}

void cpar_loop_remove_socket(cpar_loop_t *loop, void *zsock)
{
    remove_watcher(loop, zsock, -1);
}

void cpar_loop_remove_fd(cpar_loop_t *loop, int fd)
{
    remove_watcher(loop, NULL, fd);
}

/* ---- timers: a binary min-heap on deadline ---- */

static void heap_set(cpar_loop_t *loop, size_t i, cpar_loop_timer_t *t)
{
    loop->heap[i] = t;
    t->slot = i;
}

static void heap_up(cpar_loop_t *loop, size_t i)
{
    cpar_loop_timer_t *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (loop->heap[parent]->deadline <= t->deadline)
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(cpar_loop_t *loop, size_t i)
{
    cpar_loop_timer_t *t = loop->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t md = t->deadline;

        if (l < loop->nheap && loop->heap[l]->deadline < md) {
            m = l;
            md = loop->heap[l]->deadline;
        }
        if (r < loop->nheap && loop->heap[r]->deadline < md)
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, t);
}

static int heap_push(cpar_loop_t *loop, cpar_loop_timer_t *t)
{
    if (grow((void **)&loop->heap, &loop->capheap, loop->nheap + 1, sizeof *loop->heap))
        return CPAR_ENOMEM;
    loop->heap[loop->nheap++] = t;
    heap_up(loop, loop->nheap - 1);
    return 0;
}

static void heap_remove(cpar_loop_t *loop, cpar_loop_timer_t *t)
{
    size_t i = t->slot;
    cpar_loop_timer_t *last;

    if (i == SIZE_MAX)
        return;
    t->slot = SIZE_MAX;
    last = loop->heap[--loop->nheap];
    if (i == loop->nheap)
        return;
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->slot);
}

cpar_loop_timer_t *cpar_loop_timer_start(cpar_loop_t *loop, uint64_t after_ms, uint64_t repeat_ms,
                                         cpar_timer_cb cb, void *arg)
{
    cpar_loop_timer_t *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->deadline = mono_ms() + (int64_t)after_ms;
    t->repeat_ms = repeat_ms;
    t->cb = cb;
    t->arg = arg;
    t->slot = SIZE_MAX;
    if (heap_push(loop, t)) {
        free(t);
        return NULL;
    }
    return t;
}

int cpar_loop_timer_once(cpar_loop_t *loop, uint64_t after_ms, cpar_timer_cb cb, void *arg)
{
    cpar_loop_timer_t *t = cpar_loop_timer_start(loop, after_ms, 0, cb, arg);

    if (!t)
        return CPAR_ENOMEM;
    t->once = 1;
    return 0;
}

void cpar_loop_timer_stop(cpar_loop_t *loop, cpar_loop_timer_t *t)
{
    if (!t)
        return;
    heap_remove(loop, t);
    if (t->running)
        t->stopped = 1; /* freed by run_timers once the callback returns */
    else
        free(t);
}

static void run_timers(cpar_loop_t *loop)
{
    while (loop->nheap > 0 && loop->heap[0]->deadline <= loop->now_ms) {
        cpar_loop_timer_t *t = loop->heap[0];

        heap_remove(loop, t);
        if (t->repeat_ms) {
            /* Keep the rhythm, but never fire a backlog of missed periods in a burst. */
            t->deadline += (int64_t)t->repeat_ms;
            if (t->deadline <= loop->now_ms)
                t->deadline = loop->now_ms + (int64_t)t->repeat_ms;
            heap_push(loop, t);
        }
        t->running = 1;
        t->cb(t->arg);
        t->running = 0;
        if (t->stopped || t->once) {
            heap_remove(loop, t);
            free(t);
        }
    }
}

/* ---- signals and children ---- */

static void reap_children(cpar_loop_t *loop)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0)
            return;
        for (size_t i = 0; i < loop->nchildren; i++) {
            if (loop->children[i].pid == pid) {
                childwatch_t c = loop->children[i];

                loop->children[i] = loop->children[--loop->nchildren];
                c.cb(c.arg, pid, status);
                break;
            }
        }
    }
}

static void on_signalfd(void *arg)
{
    cpar_loop_t *loop = arg;
    struct signalfd_siginfo si;

    while (read(loop->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if ((int)si.ssi_signo == SIGCHLD && loop->nchildren)
            reap_children(loop);
        for (size_t i = 0; i < loop->nsigs; i++)
            if (loop->sigs[i].signo == (int)si.ssi_signo)
                loop->sigs[i].cb(loop->sigs[i].arg, (int)si.ssi_signo);
    }
}

static int watch_signal(cpar_loop_t *loop, int signo)
{
    int fd;

    if (sigismember(&loop->sigmask, signo) == 1)
        return 0;
    sigaddset(&loop->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) != 0)
        return CPAR_EIO;
    fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return CPAR_EIO;
    if (loop->sigfd < 0) {
        loop->sigfd = fd;
        return cpar_loop_add_fd(loop, fd, on_signalfd, loop);
    }
    return 0;
}

int cpar_loop_add_signal(cpar_loop_t *loop, int signo, cpar_signal_cb cb, void *arg)
{
    sigwatch_t *ns;
    int rc = watch_signal(loop, signo);

    if (rc)
        return rc;
    ns = realloc(loop->sigs, (loop->nsigs + 1) * sizeof *ns);
    if (!ns)
        return CPAR_ENOMEM;
    loop->sigs = ns;
    loop->sigs[loop->nsigs++] = (sigwatch_t){signo, cb, arg};
    return 0;
}

int cpar_loop_watch_child(cpar_loop_t *loop, pid_t pid, cpar_child_cb cb, void *arg)
{
    childwatch_t *nc;
    int rc = watch_signal(loop, SIGCHLD);

    if (rc)
        return rc;
    nc = realloc(loop->children, (loop->nchildren + 1) * sizeof *nc);
    if (!nc)
        return CPAR_ENOMEM;
    loop->children = nc;
    loop->children[loop->nchildren++] = (childwatch_t){pid, cb, arg};
    /* The child may have exited before we watched it. */
    reap_children(loop);
    return 0;
}

/* ---- the loop ---- */

static void compact(cpar_loop_t *loop)
{
    size_t j = 0;

    for (size_t i = 0; i < loop->nw; i++)
        if (!loop->w[i].removed)
            loop->w[j++] = loop->w[i];
    loop->nw = j;
    loop->dirty = 0;
}

int cpar_loop_run(cpar_loop_t *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        long timeout = -1;
        size_t n;
        int rc;

        if (loop->dirty)
            compact(loop);
        n = loop->nw;
        if (grow((void **)&loop->items, &loop->capitems, n ? n : 1, sizeof *loop->items))
            return CPAR_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            loop->items[i] = (zmq_pollitem_t){.socket = loop->w[i].zsock,
                                              .fd = loop->w[i].fd,
                                              .events = ZMQ_POLLIN};
        }
        loop->now_ms = mono_ms();
        if (loop->nheap) {
            int64_t d = loop->heap[0]->deadline - loop->now_ms;

            timeout = d < 0 ? 0 : (long)d;
        }
        rc = zmq_poll(loop->items, (int)n, timeout);
        if (rc < 0) {
            if (zmq_errno() == EINTR)
                continue;
            cpar_error("zmq_poll failed: %s", zmq_strerror(zmq_errno()));
            return CPAR_EIO;
        }
        loop->now_ms = mono_ms();
        /* Callbacks may add watchers (appended beyond n) or remove some (marked). */
        for (size_t i = 0; i < n && rc > 0 && !loop->stop; i++) {
            if (!(loop->items[i].revents & ZMQ_POLLIN))
                continue;
            rc--;
            if (!loop->w[i].removed)
                loop->w[i].cb(loop->w[i].arg);
        }
        if (!loop->stop)
            run_timers(loop);
    }
    return 0;
}

void cpar_loop_stop(cpar_loop_t *loop)
{
    loop->stop = 1;
}

int64_t cpar_loop_now_ms(const cpar_loop_t *loop)
{
    return loop->now_ms;
}
