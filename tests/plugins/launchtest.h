/*
 * launchtest.h - helpers shared by the launcher tests that go through the real plugin host
 * (test_launcher_mpi_ssh.c, test_launcher_shims.c, test_batch_slurm_sge.c): reading files, fresh
 * directories, a launcher opened with settings, a start that must succeed, polling until a state.
 * They fail the running cmocka test on errors.
 */
#ifndef CPAR_TEST_LAUNCHTEST_H
#define CPAR_TEST_LAUNCHTEST_H

#include <stdarg.h>

#include <jansson.h>

#include "config/config.h"
#include "plugins/host.h"
#include "plugins/launch.h"

/* The run's temporary directory: main fills it in (mkdtemp) before the tests run. */
extern char lt_tmp[256];

/* The whole file, malloc'd, or NULL when it cannot be opened. */
char *lt_slurp(const char *path);
/* A new directory <lt_tmp>/<tag>-<n>, malloc'd. */
char *lt_fresh_dir(const char *tag);
void lt_sleep_ms(int ms);

typedef struct lt_launcher {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_launcher_h *l;
} lt_launcher_t;

/*
 * Load `plugin` for `role` through a new host (its program and profile dir as given, cluster id
 * "abc", session "s"), with settings from `ap`: "Section.key", JSON value pairs up to a NULL key.
 */
void lt_open(lt_launcher_t *lt, const char *program, const char *profile_dir, const char *plugin,
             cpar_launch_role_t role, va_list ap);
void lt_close(lt_launcher_t *lt);

/* Start `spec`, which must succeed; the job in *job and the start JSON, parsed. */
json_t *lt_start(cpar_launcher_h *l, const cpar_launch_spec_t *spec, cpar_launch_job_t **job);

/* Poll every `step_ms` until `want`, for at most `secs`; the last state (and its exit code). */
cpar_job_state_t lt_poll_until(cpar_launch_job_t *job, cpar_job_state_t want, int secs, int step_ms,
                               int *exit_code);

#endif
