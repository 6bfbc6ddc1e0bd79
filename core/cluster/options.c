/*
 * options.c - see options.h. The names follow ipcluster's base_aliases, base_flags and the
 * start/engines/stop/list/clean aliases of ipyparallel 7.1's cluster/app.py.
 */
#include "options.h"

#include <stddef.h>

#define ALIAS(n, t, h) {n, CPAR_OPT_ALIAS, t, NULL, 0, h}
#define FLAG(n, t, v, h) {n, CPAR_OPT_FLAG, t, v, 0, h}
#define ACTION(n, a, h) {n, CPAR_OPT_ACTION, NULL, NULL, a, h}

const cpar_option_t cpcluster_options[] = {
    ALIAS("profile", "BaseIPythonApplication.profile", "The IPython profile to use."),
    ALIAS("profile-dir", "ProfileDir.location",
          "The profile directory, instead of <ipython-dir>/profile_<profile>."),
    ALIAS("ipython-dir", "BaseIPythonApplication.ipython_dir",
          "The IPython directory (default: $IPYTHONDIR, else ~/.ipython)."),
    ALIAS("log-level", "Application.log_level",
          "Log level: 10, 20, 30, 40, 50 or DEBUG, INFO, WARN, ERROR, CRITICAL."),
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
    FLAG("debug", "Application.log_level", "10", "Log level DEBUG."),
    FLAG("quiet", "Application.log_level", "50", "Log level CRITICAL."),
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
    {NULL, 0, NULL, NULL, 0, NULL},
};

const char *const cpcluster_app_sections[] = {
    "IPClusterStart", "IPClusterEngines", "IPClusterStop", "IPClusterList", "IPClusterClean",
    "IPClusterApp", "IPCluster", "BaseParallelApplication", "BaseIPythonApplication",
    "Application", NULL,
};
