/*
 * launch.h - the core's typed front for launcher plugins (cpar_launch_*), used by cpcluster.
 *
 * It resolves ipyparallel's launcher names to plugins, runs the plugin's operations or, for a
 * batch launcher's NULL operations, the host's batch driver (batch.c), and keeps the error text
 * of the last failure so that callers can print one line naming what failed and why.
 */
#ifndef CPAR_PLUGINS_LAUNCH_H
#define CPAR_PLUGINS_LAUNCH_H

#include <cparallel/launcher.h>

#include "host.h"

typedef struct cpar_launcher_h cpar_launcher_h;   /* a loaded launcher plugin */
typedef struct cpar_launch_job cpar_launch_job_t; /* one started controller or engine set */

/*
 * The plugin name for a launcher class setting (--engines=, --controller=,
 * Cluster.engine_launcher_class): ipyparallel's short names in any case ("Slurm", "mpi",
 * "SSHProxy"), its class names and dotted paths ("SlurmEngineSetLauncher",
 * "ipyparallel.cluster.launcher.SlurmEngineSetLauncher", the deprecated "MPIExec..." ones) give
 * the plugin's name ("slurm"); any other text is taken as a plugin name. Class names of plugins
 * outside the shipped set are matched against their descriptors' `names` when loaded. Returns a
 * pointer into a static table or into `cls`.
 */
const char *cpar_launch_plugin_name(const char *cls);

/*
 * Load the launcher for `cls` and check it can start `role`; err (one line) names the plugin,
 * the reason and, when not found, the directories searched.
 */
int cpar_launcher_open(cpar_plughost_t *host, const char *cls, cpar_launch_role_t role,
                       cpar_launcher_h **out, char *err, size_t errlen);
void cpar_launcher_close(cpar_plughost_t *host, cpar_launcher_h *l);

const char *cpar_launcher_name(const cpar_launcher_h *l);
/* Config sections for `role`, most specific first (for cpar_launch_spec_t.sections). */
const char *const *cpar_launcher_sections(const cpar_launcher_h *l, cpar_launch_role_t role);
/* The detail text of the last failure of any operation on this launcher or its jobs, or "". */
const char *cpar_launcher_error(const cpar_launcher_h *l);

/* The operations of cparallel/launcher.h; *_json results are malloc'd (free()). */
int cpar_launch_start(cpar_launcher_h *l, const cpar_launch_spec_t *spec,
                      cpar_launch_job_t **job, char **start_json);
int cpar_launch_restore(cpar_launcher_h *l, const cpar_launch_spec_t *spec,
                        const char *state_json, cpar_launch_job_t **job);
int cpar_launch_stop(cpar_launch_job_t *job, char **stop_json);
int cpar_launch_signal(cpar_launch_job_t *job, int signum);
int cpar_launch_poll(cpar_launch_job_t *job, cpar_job_state_t *st, int *exit_code,
                     char **detail);
int cpar_launch_save(cpar_launch_job_t *job, char **state_json);
int cpar_launch_output(cpar_launch_job_t *job, int remove, char **text);
/* Forget the job (nothing is stopped). NULL is ignored. */
void cpar_launch_release(cpar_launch_job_t *job);

#endif /* CPAR_PLUGINS_LAUNCH_H */
