/*
 * slurm.c - the Slurm batch launcher (cpar_launcher_slurm.so), ipyparallel's SlurmLauncher.
 *
 * A batch launcher: it describes Slurm (sbatch, scancel, the job id in "Submitted batch job 42",
 * the default scripts and the #SBATCH lines inserted into them, how to read squeue) and the
 * host's batch driver does the rest. Engines are one job of n tasks, `srun` starting one engine
 * per task; the controller is a job of one task.
 *
 * Polling goes beyond ipyparallel 7.1, which never asks the scheduler: `squeue -h -t all -o %T
 * -j <id>` prints the job's state, also for a job that ended within slurmctld's MinJobAge
 * (COMPLETED, CANCELLED, ...). sacct is no help on sites without accounting storage.
 * squeue runs through `sh -c '... 2>&1'` because the driver hands parse_state only stdout, and
 * squeue says on stderr that it does not know a job.
 */
#include <string.h>

#include <cparallel/launcher.h>

static const char *const slurm_submit[] = {"sbatch", NULL};
static const char *const slurm_delete[] = {"scancel", NULL};
static const char *const slurm_signal[] = {"scancel", "-s", NULL};
/* Through sh, so that squeue's complaints on stderr ("Invalid job id specified") reach
 * parse_state with its output; the job id the driver appends is $1. */
static const char *const slurm_poll[] = {
    "sh", "-c", "exec squeue -h -t all -o %T -j \"$1\" 2>&1", "sh", NULL};

static const char slurm_controller_template[] = "#!/bin/sh\n"
                                                "#SBATCH --job-name=ipy-controller-{cluster_id}\n"
                                                "#SBATCH --ntasks=1\n"
                                                "{program_and_args}\n";
static const char slurm_engine_template[] = "#!/bin/sh\n"
                                            "#SBATCH --job-name=ipy-engine-{cluster_id}\n"
                                            "srun {program_and_args}\n";

/* In ipyparallel 7.1's order; each goes right after the first line, so --time ends up first. */
static const cpar_batch_option_t slurm_options[] = {
    {"queue", "#SBATCH --partition={queue}", "#SBATCH\\W+(?:--partition|-p)\\W+\\$?\\w+"},
    {"account", "#SBATCH --account={account}", "#SBATCH\\W+(?:--account|-A)\\W+\\$?\\w+"},
    {"qos", "#SBATCH --qos={qos}", "#SBATCH\\W+--qos\\W+\\$?\\w+"},
    {"timelimit", "#SBATCH --time={timelimit}", "#SBATCH\\W+(?:--time|-t)\\W+\\$?\\w+"},
};
/* The controller's "--ntasks=1" matches through the -n branch, so nothing is inserted there.
 * 7.1 writes the class [\w\d\-\$]; the same class is spelled here without the escapes. */
static const cpar_batch_option_t slurm_array = {NULL, "#SBATCH --ntasks={n}",
                                                "#SBATCH\\W+(?:--ntasks|-n)[\\w\\d$-]+"};

static const char *const slurm_extra[] = {"account", "qos", "timelimit", "options", NULL};

/* Job states (squeue's %T) of a job that still holds or will get resources. */
static const char *const slurm_pending_states[] = {
    "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", NULL};
static const char *const slurm_running_states[] = {
    "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING", NULL};

static int slurm_in(const char *word, size_t len, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == len && strncmp(word, *list, len) == 0)
            return 1;
    return 0;
}

/*
 * One state word per line (one line per job, or per array task of a user's array template).
 * Any running line makes the whole RUNNING, else any pending line PENDING; a job squeue lists
 * with only terminal states (COMPLETED, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, PREEMPTED,
 * OUT_OF_MEMORY, ...) or does not list at all is DONE. A failing squeue is DONE only when it
 * says the id is unknown (slurmctld forgot the job after MinJobAge); otherwise the controller may
 * just be unreachable, which is UNKNOWN.
 */
static cpar_job_state_t slurm_parse_state(const char *out, int status, const char *job_id,
                                          int *exit_code)
{
    (void)job_id;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (!out)
        out = "";
    if (status != 0)
        return strstr(out, "Invalid job id") ? CPAR_JOB_DONE : CPAR_JOB_UNKNOWN;

    int running = 0, pending = 0, done = 0, completed_only = 1;
    const char *w;
    size_t len;
    for (const char *cur = out; cpar_launch_next_line(&cur, &w, &len);) {
        /* a state is one upper-case word; anything else (a warning) is not about the job */
        size_t wl = 0;
        while (wl < len && ((w[wl] >= 'A' && w[wl] <= 'Z') || w[wl] == '_'))
            wl++;
        /* squeue may abbreviate with a trailing '+' (CANCELLED+): compare without it */
        if (wl && (wl == len || (wl + 1 == len && w[wl] == '+'))) {
            if (slurm_in(w, wl, slurm_running_states))
                running = 1;
            else if (slurm_in(w, wl, slurm_pending_states))
                pending = 1;
            else {
                done = 1;
                if (!(wl == 9 && strncmp(w, "COMPLETED", 9) == 0))
                    completed_only = 0;
            }
        }
    }
    if (running)
        return CPAR_JOB_RUNNING;
    if (pending)
        return CPAR_JOB_PENDING;
    if (done && completed_only)
        *exit_code = 0; /* COMPLETED: every task exited 0 */
    return CPAR_JOB_DONE;
}

static const cpar_batch_system_t slurm_batch = {
    .submit_command = slurm_submit,
    .delete_command = slurm_delete,
    .signal_command = slurm_signal,
    .poll_command = slurm_poll,
    .submit_on_stdin = 0,
    .job_id_regexp = "\\d+",
    .job_id_group = 0,
    .controller_template = slurm_controller_template,
    .engine_template = slurm_engine_template,
    .controller_file = "slurm_controller.sbatch",
    .engine_file = "slurm_engine.sbatch",
    .options = slurm_options,
    .n_options = sizeof slurm_options / sizeof slurm_options[0],
    .array = &slurm_array,
    .array_at_end = 0,
    .extra_settings = slurm_extra,
    .parse_state = slurm_parse_state,
};

/* ipyparallel's class order (the MRO), most specific first. */
static const char *const slurm_controller_sections[] = {
    "SlurmControllerLauncher", "SlurmLauncher",      "BatchControllerLauncher",
    "BatchSystemLauncher",     "ControllerLauncher", "BaseLauncher",
    NULL};
static const char *const slurm_engine_sections[] = {
    "SlurmEngineSetLauncher", "SlurmLauncher",  "BatchEngineSetLauncher",
    "BatchSystemLauncher",    "EngineLauncher", "BaseLauncher",
    NULL};
static const char *const slurm_config_sections[] = {
    "SlurmControllerLauncher", "SlurmEngineSetLauncher", "SlurmLauncher", NULL};
static const char *const slurm_names[] = {"slurm", "SlurmEngineSetLauncher",
                                          "SlurmControllerLauncher", "SlurmLauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_slurm_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "slurm"),
             .version = "1.0.0",
             .description = "Slurm: sbatch jobs (engines: one job of n srun tasks)",
             .config_sections = slurm_config_sections},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = slurm_names,
    .controller_sections = slurm_controller_sections,
    .engine_sections = slurm_engine_sections,
    .batch = &slurm_batch,
};
