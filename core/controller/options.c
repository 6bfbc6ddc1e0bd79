/*
 * options.c - see options.h. The db flags name the backends by their short names, which the
 * controller maps to plugins (ipyparallel itself writes the full class path).
 */
#include "options.h"

#include <stddef.h>

/* short names for the table below (config/config.h) */
#define ALIAS CPAR_ALIAS
#define FLAG CPAR_FLAG
#define ACTION CPAR_ACTION

const cpar_option_t cpar_controller_options[] = {
    /* IPython's base aliases */
    CPAR_OPTS_IPYTHON_BASE,
    ALIAS("config", "BaseIPythonApplication.extra_config_file",
          "An extra config file to load."),
    /* ipyparallel's base aliases and flags */
    ALIAS("work-dir", "BaseParallelApplication.work_dir", "The working directory."),
    {"log-to-file", CPAR_OPT_ALIAS, "BaseParallelApplication.log_to_file", "true", 0,
     "Log to a file in the profile's log/ directory."},
    ALIAS("clean-logs", "BaseParallelApplication.clean_logs",
          "Remove old log files before starting."),
    ALIAS("log-url", "BaseParallelApplication.log_url",
          "The ZMQ URL of an iplogger to send logs to."),
    ALIAS("cluster-id", "BaseParallelApplication.cluster_id",
          "The cluster id, added to the connection file names (may be empty)."),
    CPAR_OPTS_LOG_FLAGS,
    /* ipcontroller's aliases */
    ALIAS("ip", "IPController.ip", "The IP address to bind on (default 127.0.0.1)."),
    ALIAS("location", "IPController.location",
          "The host name or IP clients and engines reach the controller at."),
    ALIAS("transport", "IPController.transport", "The ZeroMQ transport (tcp)."),
    ALIAS("ports", "IPController.ports", "A pool of ports to bind: \"A-B\" or a list."),
    ALIAS("port", "IPController.regport", "The registration port (deprecated: use --ports)."),
    ALIAS("ssh", "IPController.ssh_server", "The ssh server clients should tunnel through."),
    ALIAS("enginessh", "IPController.engine_ssh_server",
          "The ssh server engines should tunnel through."),
    ALIAS("ping", "HeartMonitor.period", "The heartbeat period, in milliseconds."),
    ALIAS("scheme", "TaskScheduler.scheme_name",
          "The task scheduler: leastload, lru, plainrandom, weighted, twobin, pure, or a plugin name."),
    ALIAS("hwm", "TaskScheduler.hwm", "Outstanding tasks per engine (0: no limit)."),
    /* ipcontroller's flags */
    FLAG("usethreads", "IPController.use_threads", "true",
         "Run the schedulers as threads (accepted; cparallel has one reactor)."),
    FLAG("sqlitedb", "IPController.db_class", "\"SQLiteDB\"", "Use the SQLiteDB backend."),
    FLAG("mongodb", "IPController.db_class", "\"MongoDB\"", "Use the MongoDB backend."),
    FLAG("dictdb", "IPController.db_class", "\"DictDB\"", "Use the in-memory DictDB backend."),
    FLAG("nodb", "IPController.db_class", "\"NoDB\"",
         "Use the NoDB backend, which stores nothing."),
    FLAG("reuse", "IPController.reuse_files", "true",
         "Reuse existing connection files, and keep them at exit."),
    FLAG("restore", NULL,
         "{\"IPController.restore_engines\": true, \"IPController.reuse_files\": true}",
         "Reuse the connection files and restore the engines of a crashed controller."),
    /* jupyter_client's session aliases and flags */
    ALIAS("ident", "Session.session", "The session id."),
    ALIAS("user", "Session.username", "The user name of the session."),
    ALIAS("keyfile", "Session.keyfile", "A file holding the HMAC key of the messages."),
    FLAG("secure", NULL, "{\"Session.secure\": true, \"Session.keyfile\": \"\"}",
         "Sign messages with a new random key."),
    FLAG("no-secure", NULL,
         "{\"Session.key\": \"\", \"Session.keyfile\": \"\", \"Session.secure\": false}",
         "Do not sign messages."),
    /* actions */
    ACTION("help", CPAR_ACT_HELP, "Show this help and exit."),
    ACTION("h", CPAR_ACT_HELP, "Show this help and exit."),
    ACTION("help-all", CPAR_ACT_HELP_ALL, "Show all the settings and exit."),
    ACTION("version", CPAR_ACT_VERSION, "Print the version and exit."),
    ACTION("V", CPAR_ACT_VERSION, "Print the version and exit."),
    ACTION("list-plugins", CPAR_ACT_LIST_PLUGINS,
           "List the plugins found, loaded and rejected, and why, then exit."),
    CPAR_OPT_END,
};

const char *const cpar_controller_sections[] = {
    "IPController.", "HeartMonitor.", "TaskScheduler.", "Session.", "ProfileDir.",
    "BaseIPythonApplication.", "BaseParallelApplication.", "Application.", "CParallel.",
    /* plugin sections, taken whole */
    "DictDB", "SQLiteDB", "MongoDB", "NoDB",
    NULL,
};

const char *const cpar_controller_traits[] = {
    /* IPController's own */
    "IPController.ip", "IPController.location", "IPController.transport", "IPController.ports",
    "IPController.regport", "IPController.engine_ip", "IPController.client_ip",
    "IPController.engine_transport", "IPController.client_transport",
    "IPController.engine_ports", "IPController.client_ports", "IPController.reuse_files",
    "IPController.restore_engines", "IPController.db_class", "IPController.ssh_server",
    "IPController.engine_ssh_server", "IPController.registration_timeout",
    "IPController.broadcast_scheduler_depth", "IPController.use_threads",
    "IPController.enable_curve", "IPController.auto_create", "IPController.max_message_size",
    /* application traits IPController inherits */
    "IPController.profile", "IPController.ipython_dir", "IPController.log_level",
    "IPController.cluster_id", "IPController.work_dir", "IPController.log_to_file",
    "IPController.clean_logs", "IPController.log_url", "IPController.extra_config_file",
    "HeartMonitor.period", "HeartMonitor.max_heartmonitor_misses",
    "TaskScheduler.scheme_name", "TaskScheduler.hwm", "TaskScheduler.seed",
    "TaskScheduler.dependency_window",
    "Session.key", "Session.keyfile", "Session.signature_scheme", "Session.session",
    "Session.username", "Session.secure",
    "ProfileDir.location",
    "BaseIPythonApplication.profile", "BaseIPythonApplication.ipython_dir",
    "BaseIPythonApplication.log_level", "BaseIPythonApplication.extra_config_file",
    "BaseParallelApplication.cluster_id", "BaseParallelApplication.log_level",
    "BaseParallelApplication.work_dir", "BaseParallelApplication.log_to_file",
    "BaseParallelApplication.clean_logs", "BaseParallelApplication.log_url",
    "Application.log_level",
    "CParallel.plugin_path",
    NULL,
};

const char *const cpar_controller_app_sections[] = {
    "IPController", "BaseParallelApplication", "BaseIPythonApplication", "Application", NULL,
};
