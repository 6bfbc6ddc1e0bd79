/*
 * sge.c - the Sun / Son of Grid Engine batch launcher (cpar_launcher_sge.so), ipyparallel's
 * SGELauncher (which derives from its PBSLauncher: qsub, qdel, the first run of digits as the
 * job id, and PBSLauncher's settings apply).
 *
 * A batch launcher: it describes Grid Engine and the host's batch driver does the rest. Engines
 * are a job array of n tasks ("#$ -t 1-{n}"), one engine per task; the controller a one-task
 * array, as 7.1 renders it.
 *
 * Not copied from 7.1: its signal command, `qsig -s`, which Grid Engine does not have (every
 * signal failed). There is no command that delivers an arbitrary signal to a Grid Engine job, so
 * this launcher has no default signal command; a site can still set signal_command.
 *
 * Polling goes beyond 7.1: `qstat -j <id>` exits 1 ("Following jobs do not exist") once the job
 * has left the system, and lists "usage <task>:" lines once a task has started.
 */
#include <string.h>

#include <cparallel/launcher.h>

static const char *const sge_submit[] = {"qsub", NULL};
static const char *const sge_delete[] = {"qdel", NULL};
/* Through sh, so that qstat's messages on stderr ("Following jobs do not exist", a commlib error)
 * reach parse_state, which the driver hands only stdout; the job id it appends is $1. */
static const char *const sge_poll[] = {"sh", "-c", "exec qstat -j \"$1\" 2>&1", "sh", NULL};

static const char sge_controller_template[] = "#$ -V\n"
                                              "#$ -S /bin/sh\n"
                                              "#$ -N ipcontroller\n"
                                              "{program_and_args}\n";
static const char sge_engine_template[] = "#$ -V\n"
                                          "#$ -S /bin/sh\n"
                                          "#$ -N ipengine\n"
                                          "{program_and_args}\n";

static const cpar_batch_option_t sge_options[] = {
    {"queue", "#$ -q {queue}", "#\\$\\W+-q\\W+\\$?\\w+"},
};
static const cpar_batch_option_t sge_array = {NULL, "#$ -t 1-{n}", "#\\$\\W+\\-t"};

/* Whether some line of `text` starts with `prefix` (after blanks). */
static int sge_has_line(const char *text, const char *prefix)
{
    size_t plen = strlen(prefix), len;
    const char *line;
    for (const char *cur = text; cpar_launch_next_line(&cur, &line, &len);)
        if (len >= plen && strncmp(line, prefix, plen) == 0)
            return 1;
    return 0;
}

/*
 * `qstat -j <id>`: exit 0 with the job's detail block while the qmaster knows the job, a
 * "usage <task>:" line for each task that runs; exit 1 with "Following jobs do not exist" once it
 * is gone (finished, deleted). A qmaster that cannot be reached also exits 1, with a commlib
 * error ("unable to contact qmaster"): that is UNKNOWN, not DONE. Grid Engine keeps no exit code
 * here (qacct has it), so a DONE job's exit code is unknown.
 */
static cpar_job_state_t sge_parse_state(const char *out, int status, const char *job_id,
                                        int *exit_code)
{
    (void)job_id;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (!out)
        out = "";
    if (status != 0) {
        if (strstr(out, "do not exist"))
            return CPAR_JOB_DONE;
        if (strstr(out, "unable to contact") || strstr(out, "commlib error") ||
            strstr(out, "error:") || status != 1)
            return CPAR_JOB_UNKNOWN;
        return CPAR_JOB_DONE; /* exit 1 and nothing said: the job is not known */
    }
    if (sge_has_line(out, "usage "))
        return CPAR_JOB_RUNNING;
    if (sge_has_line(out, "job_number:"))
        return CPAR_JOB_PENDING;
    return CPAR_JOB_UNKNOWN;
}

static const cpar_batch_system_t sge_batch = {
    .submit_command = sge_submit,
    .delete_command = sge_delete,
    .signal_command = NULL,
    .poll_command = sge_poll,
    .submit_on_stdin = 0,
    .job_id_regexp = "\\d+",
    .job_id_group = 0,
    .controller_template = sge_controller_template,
    .engine_template = sge_engine_template,
    .controller_file = "sge_controller",
    .engine_file = "sge_engines",
    .options = sge_options,
    .n_options = sizeof sge_options / sizeof sge_options[0],
    .array = &sge_array,
    .array_at_end = 0,
    .extra_settings = NULL,
    .parse_state = sge_parse_state,
};

/* ipyparallel's class order (the MRO), most specific first. */
static const char *const sge_controller_sections[] = {
    "SGEControllerLauncher", "SGELauncher",        "PBSLauncher",  "BatchControllerLauncher",
    "BatchSystemLauncher",   "ControllerLauncher", "BaseLauncher", NULL};
static const char *const sge_engine_sections[] = {
    "SGEEngineSetLauncher", "SGELauncher",    "PBSLauncher",  "BatchEngineSetLauncher",
    "BatchSystemLauncher",  "EngineLauncher", "BaseLauncher", NULL};
static const char *const sge_config_sections[] = {"SGEControllerLauncher", "SGEEngineSetLauncher",
                                                  "SGELauncher", NULL};
static const char *const sge_names[] = {"sge", "SGEEngineSetLauncher", "SGEControllerLauncher",
                                        "SGELauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_sge_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "sge"),
             .version = "1.0.0",
             .description = "Grid Engine: qsub job arrays (one engine per task)",
             .config_sections = sge_config_sections},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = sge_names,
    .controller_sections = sge_controller_sections,
    .engine_sections = sge_engine_sections,
    .batch = &sge_batch,
};
