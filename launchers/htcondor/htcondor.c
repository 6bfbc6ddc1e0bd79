/*
 * htcondor.c - the HTCondor batch launcher (cpar_launcher_htcondor.so), ipyparallel's
 * HTCondorLauncher.
 *
 * A batch launcher: the host's batch driver renders the submit description, appends
 * "queue {n}" to a default one, submits it with condor_submit and removes it with condor_rm.
 * HTCondor has no command that signals a job here, like in ipyparallel.
 *
 * The submit description starts executables named ipengine / ipcontroller, found in PATH on the
 * execute node, since HTCondor does not keep the submitting interpreter's environment. Unlike
 * ipyparallel 7.1, the controller's arguments are quoted like the engines' (HTCondor's quoted
 * syntax, in which '' is an empty argument; unquoted, an empty cluster id would become the two
 * characters '').
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/launcher.h>

static const char *const htcondor_submit[] = {"condor_submit", NULL};
static const char *const htcondor_delete[] = {"condor_rm", NULL};
/*
 * condor_q knows jobs while they are in the queue; condor_history afterwards. The job id is
 * appended, so it is $1 of this little script.
 */
static const char *const htcondor_poll[] = {
    "sh", "-c",
    "out=$(condor_q \"$1\" -af JobStatus ExitCode) || exit $?; "
    "if [ -n \"$out\" ]; then printf '%s\\n' \"$out\"; "
    "else condor_history \"$1\" -af JobStatus ExitCode; fi",
    "condor_poll", NULL};

static const char htcondor_controller_template[] = "\n"
                                                   "universe        = vanilla\n"
                                                   "executable      = ipcontroller\n"
                                                   "# by default we expect a shared file system\n"
                                                   "transfer_executable = False\n"
                                                   "arguments       = \"{program_args}\"\n";
static const char htcondor_engine_template[] = "\n"
                                               "universe        = vanilla\n"
                                               "executable      = ipengine\n"
                                               "# by default we expect a shared file system\n"
                                               "transfer_executable = False\n"
                                               "arguments       = \"{program_args}\"\n";

static const cpar_batch_option_t htcondor_array = {NULL, "queue {n}", "queue\\W+\\$"};

/*
 * Lines of "<JobStatus> <ExitCode>", one per process of the cluster: 1 idle, 2 running,
 * 3 removed, 4 completed, 5 held, 6 transferring output, 7 suspended. No line at all: neither
 * the queue nor the history knows the job any more.
 */
static cpar_job_state_t htcondor_parse_state(const char *out, int status, const char *job_id,
                                             int *exit_code)
{
    int pending = 0, running = 0, ended = 0, code = CPAR_EXIT_UNKNOWN;
    (void)job_id;
    *exit_code = CPAR_EXIT_UNKNOWN;
    if (status != 0)
        return CPAR_JOB_UNKNOWN;
    const char *line;
    size_t len;
    for (const char *cur = out; cpar_launch_next_line(&cur, &line, &len);) {
        char text[64], *end;
        long st;
        /* a NUL-terminated copy, so that strtol never reads on into the next line */
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        st = strtol(text, &end, 10);
        if (end != text) {
            switch (st) {
            case 1:
            case 5:
                pending++;
                break;
            case 2:
            case 6:
            case 7:
                running++;
                break;
            case 3:
                ended++;
                break;
            case 4: {
                char *e2;
                long c = strtol(end, &e2, 10);
                if (e2 != end && (ended == 0 || code == (int)c))
                    code = (int)c;
                else
                    code = CPAR_EXIT_UNKNOWN;
                ended++;
                break;
            }
            default:
                return CPAR_JOB_UNKNOWN;
            }
        }
    }
    if (running)
        return CPAR_JOB_RUNNING;
    if (pending)
        return CPAR_JOB_PENDING;
    if (ended)
        *exit_code = code;
    return CPAR_JOB_DONE; /* also for no line: forgotten */
}

static const cpar_batch_system_t htcondor_batch = {
    .submit_command = htcondor_submit,
    .delete_command = htcondor_delete,
    .signal_command = NULL,
    .poll_command = htcondor_poll,
    .job_id_regexp = "(\\d+)\\.$",
    .job_id_group = 1,
    .controller_template = htcondor_controller_template,
    .engine_template = htcondor_engine_template,
    .controller_file = "htcondor_controller",
    .engine_file = "htcondor_engines",
    .options = NULL,
    .n_options = 0,
    .array = &htcondor_array,
    .array_at_end = 1,
    .parse_state = htcondor_parse_state,
};

static const char *const htcondor_names[] = {"HTCondor", "HTCondorLauncher",
                                             "HTCondorControllerLauncher",
                                             "HTCondorEngineSetLauncher", NULL};
static const char *const htcondor_controller_sections[] = {"HTCondorControllerLauncher",
                                                           "HTCondorLauncher",
                                                           "BatchControllerLauncher",
                                                           "BatchSystemLauncher",
                                                           "ControllerLauncher",
                                                           "BaseLauncher",
                                                           NULL};
static const char *const htcondor_engine_sections[] = {"HTCondorEngineSetLauncher",
                                                       "HTCondorLauncher",
                                                       "BatchEngineSetLauncher",
                                                       "BatchSystemLauncher",
                                                       "EngineLauncher",
                                                       "BaseLauncher",
                                                       NULL};
static const char *const htcondor_all_sections[] = {
    "HTCondorControllerLauncher", "HTCondorEngineSetLauncher", "HTCondorLauncher", NULL};

CPAR_PLUGIN_EXPORT const cpar_launcher_t cpar_launcher_htcondor_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_LAUNCHER, "htcondor"), .version = CPAR_LAUNCHER_VERSION,
             .description = "HTCondor jobs (condor_submit, condor_rm, condor_q)",
             .config_sections = htcondor_all_sections},
    .roles = CPAR_ROLE_CONTROLLER | CPAR_ROLE_ENGINES,
    .names = htcondor_names,
    .controller_sections = htcondor_controller_sections,
    .engine_sections = htcondor_engine_sections,
    .batch = &htcondor_batch,
};
