/*
 * pbs.c - the PBS / Torque batch launcher (cpar_launcher_pbs.so), ipyparallel's PBSLauncher.
 *
 * A batch launcher: it only describes the system (commands, job id, default scripts, the lines
 * inserted into them, and how to read `qstat`), and the host's batch driver does the rest.
 * The default scripts use Torque's `#PBS -t 1-{n}` arrays; PBS Professional / OpenPBS want
 * `-J 1-{n}` and need a user template (docs/launchers.md).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/launcher.h>

static const char *const pbs_submit[] = {"qsub", NULL};
static const char *const pbs_delete[] = {"qdel", NULL};
static const char *const pbs_signal[] = {"qsig", "-s", NULL};
/*
 * The default scripts submit job arrays, which Torque and PBS Pro name "<id>[]": ask for that
 * first, then for the plain id (a script of your own without an array). The id is $1.
 */
static const char *const pbs_poll[] = {
    "sh", "-c", "qstat -f \"$1[]\" 2>/dev/null || exec qstat -f \"$1\"", "pbs_poll", NULL};

static const char pbs_controller_template[] = "#!/bin/sh\n"
                                              "#PBS -V\n"
                                              "#PBS -N ipcontroller\n"
                                              "{program_and_args}\n";
static const char pbs_engine_template[] = "#!/bin/sh\n"
                                          "#PBS -V\n"
                                          "#PBS -N ipengine\n"
                                          "{program_and_args}\n";

static const cpar_batch_option_t pbs_options[] = {
    {"queue", "#PBS -q {queue}", "#PBS\\W+-q\\W+\\$?\\w+"},
};
static const cpar_batch_option_t pbs_array = {NULL, "#PBS -t 1-{n}",
                                              "#PBS\\W+-t\\W+[\\w\\d\\-\\$]+"};

/*
 * The job_state letter from `qstat -f <id>` ("    job_state = R"), or from the short listing of
 * `qstat <id>` (the fifth column of the line that starts with the id) for a poll_command set to
 * plain qstat. Torque: Q queued, H held, W waiting, T moving, R running, E exiting, C completed;
 * PBS Pro adds B (array begun), F finished, X expired subjob, S/U suspended.
 */
static cpar_job_state_t pbs_parse_state(const char *out, int status, const char *job_id,
                                        int *exit_code)
{
    char val[64];
    char state = 0;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (out && cpar_launch_field(out, "job_state", '=', 1, val, sizeof val) == 0) {
        state = val[0];
    } else if (out) {
        size_t idlen = strlen(job_id), len;
        const char *line;
        for (const char *cur = out; cpar_launch_next_line(&cur, &line, &len);) {
            if (len > idlen && strncmp(line, job_id, idlen) == 0 &&
                (line[idlen] == '.' || line[idlen] == '[' || line[idlen] == ' ')) {
                /* Job id, Name, User, Time Use, S, Queue */
                const char *p = line, *end = line + len;
                for (int col = 0; col < 4 && p < end; col++) {
                    while (p < end && !isspace((unsigned char)*p))
                        p++;
                    while (p < end && (*p == ' ' || *p == '\t'))
                        p++;
                }
                if (p + 1 < end && (p[1] == ' ' || p[1] == '\t'))
                    state = *p;
                break;
            }
        }
    }
    if (!state) {
        /*
         * The server no longer knows it: "qstat: Unknown Job Id 12.server" (on stderr) with
         * exit status 153 (PBSE_UNKJOBID 15001, as the low byte), or for PBS Pro a finished job
         * that only `qstat -x` would show, 35 (PBSE_HISTJOBID 15139).
         */
        if ((out && strstr(out, "Unknown Job Id")) || status == 153 || status == 35)
            return CPAR_JOB_DONE;
        return CPAR_JOB_UNKNOWN;
    }
    switch (state) {
    case 'Q':
    case 'H':
    case 'W':
    case 'T':
    case 'U':
    case 'S':
        return CPAR_JOB_PENDING;
    case 'R':
    case 'E':
    case 'B':
        return CPAR_JOB_RUNNING;
    case 'C':
    case 'F':
    case 'X':
        if (cpar_launch_field(out, "exit_status", '=', 1, val, sizeof val) == 0 && val[0]) {
            char *end;
            long code = strtol(val, &end, 10);
            if (end != val)
                *exit_code = (int)code;
        }
        return CPAR_JOB_DONE;
    default:
        return CPAR_JOB_UNKNOWN;
    }
}

static const cpar_batch_system_t pbs_batch = {
    .submit_command = pbs_submit,
    .delete_command = pbs_delete,
    .signal_command = pbs_signal,
    .poll_command = pbs_poll,
    .job_id_regexp = "\\d+",
    .job_id_group = 0,
    .controller_template = pbs_controller_template,
    .engine_template = pbs_engine_template,
    .controller_file = "pbs_controller",
    .engine_file = "pbs_engines",
    .options = pbs_options,
    .n_options = sizeof pbs_options / sizeof pbs_options[0],
    .array = &pbs_array,
    .array_at_end = 0,
    .parse_state = pbs_parse_state,
};

static const char *const pbs_names[] = {"PBS", "PBSLauncher", "PBSControllerLauncher",
                                        "PBSEngineSetLauncher", NULL};
static const char *const pbs_controller_sections[] = {"PBSControllerLauncher",
                                                      "PBSLauncher",
                                                      "BatchControllerLauncher",
                                                      "BatchSystemLauncher",
                                                      "ControllerLauncher",
                                                      "BaseLauncher",
                                                      NULL};
static const char *const pbs_engine_sections[] = {"PBSEngineSetLauncher",
                                                  "PBSLauncher",
                                                  "BatchEngineSetLauncher",
                                                  "BatchSystemLauncher",
                                                  "EngineLauncher",
                                                  "BaseLauncher",
                                                  NULL};
static const char *const pbs_all_sections[] = {"PBSControllerLauncher", "PBSEngineSetLauncher",
                                               "PBSLauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_pbs_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "pbs"), .version = CPAR_LAUNCHER_VERSION,
             .description = "PBS / Torque batch jobs (qsub, qdel, qsig, qstat)",
             .config_sections = pbs_all_sections},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = pbs_names,
    .controller_sections = pbs_controller_sections,
    .engine_sections = pbs_engine_sections,
    .batch = &pbs_batch,
};
