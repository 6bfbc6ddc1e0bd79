/*
 * batch.h - the host's batch driver: the operations of a batch launcher (cpar_launcher_t.batch)
 * that the plugin leaves NULL. It renders the template with ipyparallel's rules, writes and
 * submits the script, parses the job id, polls, deletes and signals the job, and saves and
 * restores it. Errors go through host->set_error on the plugin's context, like the plugin's own.
 */
#ifndef CPAR_PLUGINS_BATCH_H
#define CPAR_PLUGINS_BATCH_H

#include <cparallel/launcher.h>

typedef struct cpar_batch_job cpar_batch_job_t;

/* Who the driver acts for: the plugin's host table, context and batch system. Borrowed. */
typedef struct cpar_batch_ctx {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    const char *name; /* the plugin's name, for messages */
    const cpar_batch_system_t *sys;
} cpar_batch_ctx_t;

/* Render, write and submit; *start_json (malloc'd) is {"job_id": ...}. */
int cpar_batch_start(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                     cpar_batch_job_t **job, char **start_json);
/*
 * A job whose start the plugin did itself (it overrides start): the driver takes the settings
 * from `spec` and the job id from the "job_id" member of the plugin's start JSON.
 */
int cpar_batch_adopt(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                     const char *start_json, cpar_batch_job_t **job);
int cpar_batch_restore(const cpar_batch_ctx_t *bc, const cpar_launch_spec_t *spec,
                       const char *state_json, cpar_batch_job_t **job);
int cpar_batch_stop(cpar_batch_job_t *job, char **stop_json);
int cpar_batch_signal(cpar_batch_job_t *job, int signum);
int cpar_batch_poll(cpar_batch_job_t *job, cpar_job_state_t *st, int *exit_code, char **detail);
int cpar_batch_save(cpar_batch_job_t *job, char **state_json);
int cpar_batch_output(cpar_batch_job_t *job, int remove, char **text);
void cpar_batch_release(cpar_batch_job_t *job);

#endif /* CPAR_PLUGINS_BATCH_H */
