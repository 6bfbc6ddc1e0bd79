/*
 * options.c - see options.h. The names follow ipcluster's base_aliases, base_flags and the
 * start/engines/stop/list/clean aliases of ipyparallel 7.1's cluster/app.py.
 */
#include "options.h"

#include <stddef.h>

/* short names for the table below (config/config.h) */
#define ALIAS CPAR_ALIAS
#define FLAG CPAR_FLAG
#define ACTION CPAR_ACTION

const cpar_option_t cpcluster_options[] = {
    CPAR_OPTS_IPYTHON_BASE,
    ALIAS("config", "BaseIPythonApplication.extra_config_file",
          "An extra config file (.py or .json) to load."),
    ALIAS("work-dir", "BaseParallelApplication.work_dir",
          "The working directory of started processes, where batch scripts are written."),
    {"log-to-file", CPAR_OPT_ALIAS, "BaseParallelApplication.log_to_file", "true", 0,
     "Log to <profile>/log/ipcluster-<cluster id>-<pid>.log instead of stderr."},
    ALIAS("clean-logs", "BaseParallelApplication.clean_logs", "Accepted; unused."),
    ALIAS("log-url", "BaseParallelApplication.log_url", "Accepted; unused."),
    ALIAS("cluster-id", "BaseParallelApplication.cluster_id",
          "The cluster id (default ''), part of the cluster and connection file names."),
    CPAR_OPTS_LOG_FLAGS,
    /* start / engines */
    ALIAS("n", "Cluster.n", "The number of engines to start (default: the number of CPUs)."),
    ALIAS("engines", "Cluster.engine_launcher_class",
          "The engine launcher: local, mpi, ssh, sshproxy, slurm, sge, pbs, lsf, htcondor, "
          "winhpc, an ipyparallel class name, or a plugin name."),
    ALIAS("controller", "Cluster.controller_launcher_class",
          "The controller launcher (as --engines)."),
    FLAG("daemonize", "IPClusterEngines.daemonize", "true",
         "Start the cluster, write the cluster file and return, leaving it running."),
    ALIAS("delay", "Cluster.delay", "Seconds between starting the controller and the engines."),
    ALIAS("early-shutdown", "IPClusterEngines.early_shutdown",
          "Engines that stop within this many seconds of starting are a failed start (30)."),
    ALIAS("ip", "Cluster.controller_ip", "The controller's --ip."),
    ALIAS("location", "Cluster.controller_location", "The controller's --location."),
    /* stop */
    ALIAS("signal", "IPClusterStop.signal", "Accepted for ipcluster's sake; unused."),
    ACTION("all", CL_ACT_ALL, "stop: every cluster of the profile; clean: every profile."),
    /* list */
    ALIAS("output", "IPClusterList.output_format", "list: text (default) or json."),
    ALIAS("o", "IPClusterList.output_format", "list: text (default) or json."),
    /* clean */
    ACTION("force", CL_ACT_FORCE, "clean: remove the files even of running clusters."),
    ACTION("help", CL_ACT_HELP, "Show this help and exit."),
    ACTION("h", CL_ACT_HELP, "Show this help and exit."),
    ACTION("version", CL_ACT_VERSION, "Print the version and exit."),
    ACTION("V", CL_ACT_VERSION, "Print the version and exit."),
    CPAR_OPT_END,
};

const char *const cpcluster_app_sections[] = {
    "IPClusterStart", "IPClusterEngines", "IPClusterStop", "IPClusterList", "IPClusterClean",
    "IPClusterApp", "IPCluster", "BaseParallelApplication", "BaseIPythonApplication",
    "Application", NULL,
};
