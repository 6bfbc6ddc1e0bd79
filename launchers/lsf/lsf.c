/*
 * lsf.c - the IBM Spectrum LSF batch launcher (cpar_launcher_lsf.so), ipyparallel's LSFLauncher.
 *
 * A batch launcher: the host's batch driver renders, submits (on bsub's stdin, the only place
 * bsub reads #BSUB lines from), deletes, signals and polls.
 *
 * Unlike ipyparallel 7.1, the default scripts are not indented and name the output files with
 * LSF's %J (7.1 writes every line after the shebang with four leading spaces and a literal %%J),
 * and the controller is not given an engine array name (7.1's array check never matches, so its
 * controller job is renamed ipengine[1-1]). docs/launchers.md shows both renderings.
 */
#include <string.h>

#include <cparallel/launcher.h>

static const char *const lsf_submit[] = {"bsub", NULL};
static const char *const lsf_delete[] = {"bkill", NULL};
static const char *const lsf_signal[] = {"bkill", "-s", NULL};
/* bjobs says "Job <id> is not found" on stderr: the job id is $1, stderr joins stdout. */
static const char *const lsf_poll[] = {"sh", "-c", "exec bjobs -noheader -o stat \"$1\" 2>&1",
                                       "bjobs_poll", NULL};

static const char lsf_controller_template[] = "#!/bin/sh\n"
                                              "#BSUB -J ipcontroller\n"
                                              "#BSUB -oo ipcontroller.o.%J\n"
                                              "#BSUB -eo ipcontroller.e.%J\n"
                                              "{program_and_args}\n";
static const char lsf_engine_template[] = "#!/bin/sh\n"
                                          "#BSUB -oo ipengine.o.%J\n"
                                          "#BSUB -eo ipengine.e.%J\n"
                                          "{program_and_args}\n";

static const cpar_batch_option_t lsf_options[] = {
    {"queue", "#BSUB -q {queue}", "#BSUB[ \\t]+-q[ \\t]+\\w+"},
};
/* Any job name counts as present (7.1's `#BSUB[ \t]-J+\w+\[\d+-\d+\]` matches no name at all). */
static const cpar_batch_option_t lsf_array = {NULL, "#BSUB -J ipengine[1-{n}]",
                                              "#BSUB[ \\t]+-J[ \\t]*\\S+"};

/* Whether the line (p, len) starts with the word w. */
static int lsf_word(const char *p, size_t len, const char *w)
{
    size_t n = strlen(w);
    return len >= n && strncmp(p, w, n) == 0 && (len == n || p[n] == ' ' || p[n] == '\t');
}

/*
 * `bjobs -noheader -o stat <id>` prints one status per array element: PEND, PSUSP (pending),
 * RUN, USUSP, SSUSP, PROV, WAIT (started), DONE (exit 0), EXIT (non-zero exit or killed), ZOMBI,
 * UNKWN. A job LSF has forgotten gives "Job <id> is not found".
 */
static cpar_job_state_t lsf_parse_state(const char *out, int status, const char *job_id,
                                        int *exit_code)
{
    int pending = 0, running = 0, done = 0, failed = 0, other = 0;
    (void)job_id;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (out && strstr(out, "is not found"))
        return CPAR_JOB_DONE;
    const char *line;
    size_t n;
    for (const char *cur = out; cpar_launch_next_line(&cur, &line, &n);) {
        if (lsf_word(line, n, "PEND") || lsf_word(line, n, "PSUSP"))
            pending++;
        else if (lsf_word(line, n, "RUN") || lsf_word(line, n, "USUSP") ||
                 lsf_word(line, n, "SSUSP") || lsf_word(line, n, "PROV") ||
                 lsf_word(line, n, "WAIT"))
            running++;
        else if (lsf_word(line, n, "DONE"))
            done++;
        else if (lsf_word(line, n, "EXIT") || lsf_word(line, n, "ZOMBI"))
            failed++;
        else if (n)
            other++;
    }
    if (running)
        return CPAR_JOB_RUNNING;
    if (pending)
        return CPAR_JOB_PENDING;
    if ((done || failed) && !other && status == 0) {
        if (!failed)
            *exit_code = 0;
        return CPAR_JOB_DONE;
    }
    return CPAR_JOB_UNKNOWN;
}

static const cpar_batch_system_t lsf_batch = {
    .submit_command = lsf_submit,
    .delete_command = lsf_delete,
    .signal_command = lsf_signal,
    .poll_command = lsf_poll,
    .submit_on_stdin = 1,
    .job_id_regexp = "\\d+",
    .job_id_group = 0,
    .controller_template = lsf_controller_template,
    .engine_template = lsf_engine_template,
    .controller_file = "lsf_controller",
    .engine_file = "lsf_engines",
    .options = lsf_options,
    .n_options = sizeof lsf_options / sizeof lsf_options[0],
    .array = &lsf_array,
    .array_at_end = 0,
    .parse_state = lsf_parse_state,
};

static const char *const lsf_names[] = {"LSF", "LSFLauncher", "LSFControllerLauncher",
                                        "LSFEngineSetLauncher", NULL};
static const char *const lsf_controller_sections[] = {"LSFControllerLauncher",
                                                      "LSFLauncher",
                                                      "BatchControllerLauncher",
                                                      "BatchSystemLauncher",
                                                      "ControllerLauncher",
                                                      "BaseLauncher",
                                                      NULL};
static const char *const lsf_engine_sections[] = {"LSFEngineSetLauncher",
                                                  "LSFLauncher",
                                                  "BatchEngineSetLauncher",
                                                  "BatchSystemLauncher",
                                                  "EngineLauncher",
                                                  "BaseLauncher",
                                                  NULL};
static const char *const lsf_all_sections[] = {"LSFControllerLauncher", "LSFEngineSetLauncher",
                                               "LSFLauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_lsf_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "lsf"), .version = CPAR_LAUNCHER_VERSION,
             .description = "IBM Spectrum LSF batch jobs (bsub, bkill, bjobs)",
             .config_sections = lsf_all_sections},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = lsf_names,
    .controller_sections = lsf_controller_sections,
    .engine_sections = lsf_engine_sections,
    .batch = &lsf_batch,
};
