/*
 * loop.h - the reactor: one thread, zmq_poll over sockets and file descriptors, timers, signals
 * and child processes.
 *
 * Every callback runs on the thread that called cpar_loop_run(). Callbacks may add and remove
 * watchers and timers, including their own.
 */
#ifndef CPAR_LOOP_LOOP_H
#define CPAR_LOOP_LOOP_H

#include <stdint.h>
#include <sys/types.h>

typedef struct cpar_loop cpar_loop_t;
typedef struct cpar_loop_timer cpar_loop_timer_t;

/* A socket (or fd) is readable: read what is there; the loop calls again while more is. */
typedef void (*cpar_io_cb)(void *arg);
typedef void (*cpar_timer_cb)(void *arg);
typedef void (*cpar_signal_cb)(void *arg, int signo);
/* A watched child exited; `status` as from waitpid(). */
typedef void (*cpar_child_cb)(void *arg, pid_t pid, int status);

/* 0, or a negative CPAR_E* code. */
int cpar_loop_new(cpar_loop_t **out);
/* Frees timers still armed (without calling them); watchers must be removed or are dropped. */
void cpar_loop_free(cpar_loop_t *loop);

/* Watch a ZeroMQ socket / a file descriptor for input. 0, CPAR_EEXIST, CPAR_ENOMEM. */
int cpar_loop_add_socket(cpar_loop_t *loop, void *zsock, cpar_io_cb cb, void *arg);
int cpar_loop_add_fd(cpar_loop_t *loop, int fd, cpar_io_cb cb, void *arg);
void cpar_loop_remove_socket(cpar_loop_t *loop, void *zsock);
void cpar_loop_remove_fd(cpar_loop_t *loop, int fd);

/*
 * Run cb(arg) after `after_ms`, then every `repeat_ms` when that is not 0. The handle is valid
 * until cpar_loop_timer_stop(), which frees it; a one-shot timer that fired must still be stopped
 * by its owner unless it was started with cpar_loop_timer_once(). NULL on allocation failure.
 */
cpar_loop_timer_t *cpar_loop_timer_start(cpar_loop_t *loop, uint64_t after_ms, uint64_t repeat_ms,
                                         cpar_timer_cb cb, void *arg);
/* Stop (and free) a timer; NULL is ignored. Safe inside its own callback. */
void cpar_loop_timer_stop(cpar_loop_t *loop, cpar_loop_timer_t *t);
/* A one-shot timer that frees itself after it ran; 0 or CPAR_ENOMEM. */
int cpar_loop_timer_once(cpar_loop_t *loop, uint64_t after_ms, cpar_timer_cb cb, void *arg);

/*
 * Deliver `signo` through the loop (the signal is blocked and read from a signalfd). 0 or a
 * negative CPAR_E* code.
 */
int cpar_loop_add_signal(cpar_loop_t *loop, int signo, cpar_signal_cb cb, void *arg);

/* Call cb once when child `pid` exits (reaped by the loop). */
int cpar_loop_watch_child(cpar_loop_t *loop, pid_t pid, cpar_child_cb cb, void *arg);

/* Run until cpar_loop_stop(). 0, or CPAR_EIO when polling fails for good. */
int cpar_loop_run(cpar_loop_t *loop);
void cpar_loop_stop(cpar_loop_t *loop);

/* Monotonic milliseconds as the loop sees them (updated once per iteration). */
int64_t cpar_loop_now_ms(const cpar_loop_t *loop);

#endif /* CPAR_LOOP_LOOP_H */
