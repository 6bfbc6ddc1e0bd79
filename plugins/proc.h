/*
 * proc.h - the host's process services behind cpar_host_t.spawn, .child_status and .run: start
 * programs in their own session, keep track of the children started, run a command to
 * completion with its output captured.
 */
#ifndef CPAR_PLUGINS_PROC_H
#define CPAR_PLUGINS_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

/* The children one plugin host started. */
typedef struct cpar_procs cpar_procs_t;

/*
 * `loop` (borrowed, may be NULL) reaps children in the background when there is one; without it
 * children are reaped when their status is asked for. 0 or CPAR_ENOMEM.
 */
int cpar_procs_new(cpar_procs_t **out, cpar_loop_t *loop);
/* Forget the children (nothing is stopped). NULL is ignored. */
void cpar_procs_free(cpar_procs_t *p);

/*
 * Start argv as cpar_host_t.spawn says. On failure returns a negative code and writes one line
 * to `why` (CPAR_ENOENT: "cannot run '<prog>': <reason>").
 */
int cpar_procs_spawn(cpar_procs_t *p, const char *const *argv, const char *const *env,
                     const char *cwd, const char *output_file, int64_t *pid, char *why,
                     size_t whylen);
/* As cpar_host_t.child_status. */
int cpar_procs_status(cpar_procs_t *p, int64_t pid, int *running, int *exit_code, char *why,
                      size_t whylen);
/* As cpar_host_t.run; *out and *err are malloc'd. */
int cpar_proc_run(const char *const *argv, const char *input, int timeout_ms, int *status,
                  char **out, char **err, char *why, size_t whylen);

#endif /* CPAR_PLUGINS_PROC_H */
