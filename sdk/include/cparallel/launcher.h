/*
 * cparallel/launcher.h - plugins that start controllers and engines (cpar_launcher_<name>.so).
 *
 * cpcluster starts a cluster the way ipcluster does: one controller and sets of n engines, each
 * through a launcher chosen by name (`--engines=slurm`, c.Cluster.engine_launcher_class). A
 * launcher starts what it is asked to start on its system (local processes, one mpiexec, ssh to
 * other hosts, a batch job), and can later stop, signal and poll it, and save what it needs to
 * find it again into the cluster file (security/cluster-<id>.json), from which another cpcluster
 * process (`cpcluster stop`, `cpcluster list`) restores it.
 *
 * Two shapes of plugin:
 *
 *   - A process launcher (local, mpi, ssh, sshproxy) fills in the operations (start, stop, ...)
 *     and uses the host's process services (cpar_host_t.spawn, .run, .child_status).
 *   - A batch launcher (slurm, sge, pbs, lsf, htcondor) describes its batch system in a
 *     cpar_batch_system_t and leaves the operations NULL: the host's batch driver renders the
 *     template with ipyparallel's rules, writes the script, submits it, parses the job id, polls
 *     the job's state, deletes and signals it. A plugin may still fill in any operation to
 *     override the driver's (winhpc, whose job file is XML, does so for start). The driver
 *     keeps its own record of the job for the operations left NULL: a batch plugin that
 *     overrides start must put the job id as "job_id" into *start_json, and the driver's
 *     restore runs before the plugin's.
 *
 * Operations run on cpcluster's reactor thread and may block for as long as the system's own
 * commands take (a submit, an ssh round trip); they must not wait for the started processes
 * to do anything. Every operation returns 0 or a negative CPAR_E* code explained with
 * host->set_error; a missing command is CPAR_ENOENT naming it, a command that failed is CPAR_EIO
 * with the command's own message.
 */
#ifndef CPARALLEL_LAUNCHER_H
#define CPARALLEL_LAUNCHER_H

#include <cparallel/plugin.h>

#include <ctype.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a launcher is asked to start. */
typedef enum cpar_launch_role {
    CPAR_ROLE_CONTROLLER = 1,
    CPAR_ROLE_ENGINES = 2
} cpar_launch_role_t;

/* What a poll found. */
typedef enum cpar_job_state {
    CPAR_JOB_PENDING = 1, /* submitted, waiting in a queue */
    CPAR_JOB_RUNNING = 2, /* running (for a set: at least one member still runs) */
    CPAR_JOB_DONE = 3,    /* ended, failed or was cancelled; exit_code says how when known */
    CPAR_JOB_UNKNOWN = 4  /* the system could not say (its command failed); try again later */
} cpar_job_state_t;

/*
 * One start request, built by cpcluster. Borrowed for the duration of start/restore; copy what
 * the job keeps.
 */
typedef struct cpar_launch_spec {
    cpar_launch_role_t role;
    int n;                     /* engines to start; 1 for a controller */
    const char *profile_dir;   /* absolute */
    const char *cluster_id;    /* "" when none */
    const char *engine_set_id; /* e.g. "1795693850"; NULL for a controller */
    const char *work_dir;      /* cwd of started processes and where batch scripts are written */
    /* ipcontroller[-<cluster_id>] or ipengine[-<cluster_id>][-<set id>], with the pid of the
     * cpcluster that started it: log files are <profile>/log/<identifier>[-<i>].log */
    const char *identifier;
    /* The program and its arguments, as ipyparallel's {program} and {program_args}: for
     * engines engine_cmd and cluster_args + engine_args, for a controller controller_cmd and
     * cluster_args + controller_args. NULL-terminated. */
    const char *const *program;
    const char *const *program_args;
    /* Extra environment for the started programs, NAME=value, NULL-terminated (may be empty). */
    const char *const *env;
    /*
     * The config sections this launcher reads its settings from, most specific first, such as
     * {"SlurmEngineSetLauncher", "SlurmLauncher", "BatchSystemLauncher", "BaseLauncher", NULL}
     * (from cpar_launcher_t's section lists, for the role). Use cpar_launch_config_string and
     * friends below, which look a key up in each in turn, like traitlets' class inheritance.
     */
    const char *const *sections;
} cpar_launch_spec_t;

/*
 * One directive line a batch launcher inserts into its *default* template when the template
 * does not already have it (ipyparallel's _insert_options_in_script); never into a user's.
 */
typedef struct cpar_batch_option {
    const char *setting; /* the config key that must be non-empty, e.g. "queue", "account" */
    const char *line;    /* the template line, e.g. "#SBATCH --partition={queue}" */
    const char *present; /* Python-style regex that finds it already there */
} cpar_batch_option_t;

/* A batch system, for the host's batch driver. */
typedef struct cpar_batch_system {
    /* Default commands (NULL-terminated argv prefixes); each is a setting too, e.g.
     * SlurmEngineSetLauncher.submit_command. */
    const char *const *submit_command;  /* the script path is appended */
    const char *const *delete_command;  /* the job id is appended */
    const char *const *signal_command;  /* the signal number and the job id are appended; NULL:
                                           this system cannot signal jobs */
    const char *const *poll_command;    /* the job id is appended; NULL: no polling */
    int submit_on_stdin;                /* LSF: the script goes to the submit command's stdin */

    /* Job id: Python re.search semantics ($ also before a final newline), group `group`. */
    const char *job_id_regexp;
    int job_id_group;

    /* Default templates and script file names, per role. */
    const char *controller_template, *engine_template;
    const char *controller_file, *engine_file;

    /* Lines inserted into a default template after its first line, in ipyparallel 7.1's order
     * (each insert goes right after the first line, so the last one ends up first). */
    const cpar_batch_option_t *options;
    size_t n_options;
    /* The job-array or task-count line (also inserted for a controller, with n = 1), and where:
     * after the first line, or appended at the end (HTCondor's "queue {n}"). NULL: none. */
    const cpar_batch_option_t *array;
    int array_at_end;

    /* Extra settings that become template variables (Slurm: account, qos, timelimit, options);
     * NULL-terminated. */
    const char *const *extra_settings;

    /*
     * The state of job `job_id` from the output of poll_command (exit status `status`). A job the
     * system no longer knows is CPAR_JOB_DONE. Required when poll_command is set.
     */
    cpar_job_state_t (*parse_state)(const char *out, int status, const char *job_id,
                                    int *exit_code);
} cpar_batch_system_t;

typedef struct cpar_launcher {
    cpar_plugin_t base; /* kind CPAR_KIND_LAUNCHER */

    unsigned roles; /* CPAR_ROLE_* bits it can start */
    /* ipyparallel's names for it, for --engines=/--controller= and class paths: the class
     * names ("SlurmEngineSetLauncher", "SlurmControllerLauncher") and aliases ("MPIExec...").
     * Matched case-insensitively, with or without a module path. NULL-terminated. */
    const char *const *names;
    /* Config sections per role, most specific first (see cpar_launch_spec_t.sections). */
    const char *const *controller_sections;
    const char *const *engine_sections;

    /* Set for batch launchers; then NULL operations are the host's batch driver's. */
    const cpar_batch_system_t *batch;

    /*
     * Start what `spec` asks for; set *job to the plugin's handle. *start_json (host->alloc'd
     * JSON, may be left NULL) is logged: the pid, the job id, the hosts.
     */
    int (*start)(void *state, const cpar_launch_spec_t *spec, void **job, char **start_json);
    /*
     * Stop it: process launchers signal, wait (at most their stop timeout) and escalate to
     * SIGKILL; batch launchers run the delete command. *stop_json as ipyparallel's stop_data.
     * A job that had already ended stops successfully.
     */
    int (*stop)(void *state, void *job, char **stop_json);
    /* Deliver signal `signum` to every process of the job. */
    int (*signal)(void *state, void *job, int signum);
    /* Ask whether it still runs. *exit_code is CPAR_EXIT_UNKNOWN unless DONE with a known code;
     * *detail (host->alloc'd, may be left NULL) is one line for the log and `cpcluster list`. */
    int (*poll)(void *state, void *job, cpar_job_state_t *st, int *exit_code, char **detail);
    /* The job as the JSON object stored under "state" in the cluster file (ipyparallel's
     * to_dict fields, so that ipyparallel's tools can read it), host->alloc'd. */
    int (*save)(void *state, void *job, char **state_json);
    /* Rebuild a job from what save wrote; CPAR_ENOENT when nothing of it runs any more. */
    int (*restore)(void *state, const cpar_launch_spec_t *spec, const char *state_json,
                   void **job);
    /* The captured output (stdout and stderr) so far, host->alloc'd; remove: delete it. */
    int (*output)(void *state, void *job, int remove, char **text);
    /* Forget the handle (nothing is stopped). */
    void (*release)(void *state, void *job);
} cpar_launcher_t;

/* ---- settings through the section chain ---------------------------------------------------- */

/* host->config_string over spec->sections: the first section that has `key` wins. */
static inline int cpar_launch_config_string(const cpar_host_t *host, cpar_ctx_t *ctx,
                                            const cpar_launch_spec_t *spec, const char *key,
                                            const char **out)
{
    for (const char *const *s = spec->sections; s && *s; s++) {
        int rc = host->config_string(ctx, *s, key, out);
        if (rc != CPAR_ENOENT)
            return rc;
    }
    return CPAR_ENOENT;
}

static inline int cpar_launch_config_int(const cpar_host_t *host, cpar_ctx_t *ctx,
                                         const cpar_launch_spec_t *spec, const char *key,
                                         int64_t *out)
{
    for (const char *const *s = spec->sections; s && *s; s++) {
        int rc = host->config_int(ctx, *s, key, out);
        if (rc != CPAR_ENOENT)
            return rc;
    }
    return CPAR_ENOENT;
}

static inline int cpar_launch_config_double(const cpar_host_t *host, cpar_ctx_t *ctx,
                                            const cpar_launch_spec_t *spec, const char *key,
                                            double *out)
{
    for (const char *const *s = spec->sections; s && *s; s++) {
        int rc = host->config_double(ctx, *s, key, out);
        if (rc != CPAR_ENOENT)
            return rc;
    }
    return CPAR_ENOENT;
}

/* Lists and dicts (ssh_args, engines, namespace) come as JSON text, host->alloc'd. */
static inline int cpar_launch_config_json(const cpar_host_t *host, cpar_ctx_t *ctx,
                                          const cpar_launch_spec_t *spec, const char *key,
                                          char **out)
{
    for (const char *const *s = spec->sections; s && *s; s++) {
        int rc = host->config_json(ctx, *s, key, out);
        if (rc != CPAR_ENOENT)
            return rc;
    }
    return CPAR_ENOENT;
}

/* ---- reading a system's command output (parse_state, poll) --------------------------------- */

/*
 * The next line of `*cursor`: *line and *len span it without its leading and trailing blanks
 * (space, tab, CR), and *cursor moves past its newline. 0 when no line is left. Start with
 * *cursor at the text (NULL reads as empty):
 *
 *     for (const char *cur = out, *line; cpar_launch_next_line(&cur, &line, &len);) ...
 */
static inline int cpar_launch_next_line(const char **cursor, const char **line, size_t *len)
{
    const char *p = *cursor, *end;

    if (!p || !*p)
        return 0;
    end = strchr(p, '\n');
    *cursor = end ? end + 1 : p + strlen(p);
    if (!end)
        end = *cursor;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *line = p;
    *len = (size_t)(end - p);
    return 1;
}

/*
 * The value of the first line of `text` that reads "<key> <sep> <value>" (blanks around `sep`
 * allowed; `key` compared regardless of case when `nocase`): the value, without its blanks, into
 * buf, cut to fit. 0 when found, -1 when no line has it.
 */
static inline int cpar_launch_field(const char *text, const char *key, char sep, int nocase,
                                    char *buf, size_t buflen)
{
    size_t klen = strlen(key), len, i;
    const char *line;

    for (const char *cur = text; cpar_launch_next_line(&cur, &line, &len);) {
        if (len <= klen)
            continue;
        for (i = 0; i < klen; i++)
            if (nocase ? tolower((unsigned char)line[i]) != tolower((unsigned char)key[i])
                       : line[i] != key[i])
                break;
        if (i < klen)
            continue;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len || line[i] != sep)
            continue;
        for (i++; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
            ;
        len -= i;
        if (buflen == 0)
            return 0;
        if (len >= buflen)
            len = buflen - 1;
        memcpy(buf, line + i, len);
        buf[len] = '\0';
        return 0;
    }
    return -1;
}

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_LAUNCHER_H */
