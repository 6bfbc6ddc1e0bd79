/*
 * cparallel/plugin.h - the plugin ABI every cparallel plugin is built against.
 *
 * A plugin is one shared object named cpar_<kind>_<name>.so that exports exactly one symbol,
 *
 *     const cpar_<kind>_t cpar_<kind>_<name>_plugin;
 *
 * a typed descriptor (cparallel/dbbackend.h, cparallel/scheduler.h, cparallel/launcher.h) whose
 * first member is the common cpar_plugin_t header below. Everything else in the plugin is static.
 *
 * Versioning. The core loads a plugin when plugin.abi_major == CPAR_PLUGIN_ABI_MAJOR of the core
 * and plugin.abi_minor <= CPAR_PLUGIN_ABI_MINOR of the core. Published structs only grow at their
 * end; a minor bump adds members, and the core never reads a member that a plugin's minor
 * predates. A major bump is an incompatible change.
 *
 * Ownership. Arguments handed to a plugin are borrowed for the duration of the call. Handles a
 * plugin creates (its state) are destroyed only by that plugin (fini). Memory that the core will
 * free must come from the host allocator (cpar_host_t.alloc). No third-party type crosses the ABI
 * except the protobuf-c messages generated from sdk/proto.
 *
 * Threads. The core calls a plugin only from its reactor thread. Host functions may only be called
 * from that thread, from inside a call the core made into the plugin or a timer callback, except
 * where a member says otherwise. A plugin may run threads of its own but must not call the host
 * from them.
 *
 * Errors. Functions return 0 or a negative CPAR_E* code (cparallel/errors.h). A plugin explains a
 * failure through host->set_error(); it never exits, aborts or writes to stdout/stderr.
 */
#ifndef CPARALLEL_PLUGIN_H
#define CPARALLEL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#include <cparallel/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CPAR_PLUGIN_ABI_MAJOR 1
#define CPAR_PLUGIN_ABI_MINOR 2

#if defined(__GNUC__)
#define CPAR_PLUGIN_EXPORT __attribute__((visibility("default")))
#define CPAR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CPAR_PLUGIN_EXPORT
#define CPAR_PRINTF(f, a)
#endif

/* What a plugin is for; also the <kind> in its file and symbol names. */
typedef enum cpar_kind {
    CPAR_KIND_SCHEDULER = 1, /* cpar_scheduler_<name>.so, cparallel/scheduler.h */
    CPAR_KIND_DBBACKEND = 2, /* cpar_dbbackend_<name>.so, cparallel/dbbackend.h */
    CPAR_KIND_LAUNCHER = 3   /* cpar_launcher_<name>.so, cparallel/launcher.h */
} cpar_kind_t;

/* Log levels, the same numbers as Python's logging. */
enum {
    CPAR_LOG_DEBUG = 10,
    CPAR_LOG_INFO = 20,
    CPAR_LOG_WARNING = 30,
    CPAR_LOG_ERROR = 40,
    CPAR_LOG_CRITICAL = 50
};

/* Facts about the program a plugin runs in, for cpar_host_t.context(). */
typedef enum cpar_context_key {
    CPAR_CTX_PROGRAM = 1,     /* "cpcontroller", "cpcluster" */
    CPAR_CTX_PROFILE_DIR = 2, /* absolute profile directory */
    CPAR_CTX_CLUSTER_ID = 3,  /* cluster id, "" when none */
    CPAR_CTX_SESSION = 4      /* the program's session id (the hub's, in cpcontroller) */
} cpar_context_key_t;

/* An exit code nobody can tell (a process that is not our child, a job the system forgot). */
#define CPAR_EXIT_UNKNOWN (-1000)

/* A template variable for cpar_host_t.render_template: text, or an integer usable in arithmetic. */
typedef struct cpar_tvar {
    const char *name;
    const char *text; /* NULL for an integer variable */
    int64_t integer;
} cpar_tvar_t;

/* The core's handle for one loaded plugin instance; opaque, passed back to every host call. */
typedef struct cpar_ctx cpar_ctx_t;
/* A timer started through the host; opaque. */
typedef struct cpar_timer cpar_timer_t;

/*
 * The table of core services a plugin may use: the only way a plugin reaches the core.
 * It lives as long as the program; members are never NULL.
 */
typedef struct cpar_host {
    uint16_t abi_major; /* the core's CPAR_PLUGIN_ABI_MAJOR */
    uint16_t abi_minor; /* the core's CPAR_PLUGIN_ABI_MINOR */

    /* Log one line at `level`; the core prefixes it with "<kind>/<name>: ". */
    void (*log)(cpar_ctx_t *ctx, int level, const char *fmt, ...) CPAR_PRINTF(3, 4);
    /* Set the detail text of the failure the plugin is about to return; replaces earlier text. */
    void (*set_error)(cpar_ctx_t *ctx, const char *fmt, ...) CPAR_PRINTF(2, 3);

    /*
     * Configuration, as the user wrote it for `section` (such as "SQLiteDB", "DictDB") in the
     * profile's config files or on the command line. Each returns 0 and sets *out, CPAR_ENOENT
     * when the key is unset (leave your default), or CPAR_EINVAL when the value has another type
     * (the core has logged where it came from). Strings are borrowed and live until fini.
     * config_json hands out any value as JSON text allocated with host->alloc; the caller frees it.
     */
    int (*config_string)(cpar_ctx_t *ctx, const char *section, const char *key, const char **out);
    int (*config_int)(cpar_ctx_t *ctx, const char *section, const char *key, int64_t *out);
    int (*config_double)(cpar_ctx_t *ctx, const char *section, const char *key, double *out);
    int (*config_bool)(cpar_ctx_t *ctx, const char *section, const char *key, int *out);
    int (*config_json)(cpar_ctx_t *ctx, const char *section, const char *key, char **out);

    /* A fact about the running program (cpar_context_key_t); borrowed, never NULL. */
    const char *(*context)(cpar_ctx_t *ctx, cpar_context_key_t key);

    /* The allocator for memory the core frees or the plugin frees after the core made it. */
    void *(*alloc)(size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);

    /* Wall clock in microseconds since the Unix epoch (UTC), and a monotonic clock in microseconds. */
    int64_t (*now_us)(void);
    int64_t (*monotonic_us)(void);

    /*
     * Run cb(arg) on the reactor thread after `after_ms`, then every `repeat_ms` if that is not 0.
     * The timer stays valid until timer_stop(), which a one-shot timer also needs after it fired.
     * Every timer of a plugin must be stopped before its fini returns.
     */
    int (*timer_start)(cpar_ctx_t *ctx, uint64_t after_ms, uint64_t repeat_ms,
                       void (*cb)(void *arg), void *arg, cpar_timer_t **out);
    void (*timer_stop)(cpar_ctx_t *ctx, cpar_timer_t *timer);

    /*
     * ---- ABI 1.2: processes and text, for launchers. ----
     * A program that starts no processes (cpcontroller) answers spawn, child_status and run
     * with CPAR_ENOTSUP.
     */

    /*
     * Start argv (argv[0] looked up in PATH) in a new session (setsid), stdin from /dev/null,
     * stdout and stderr appended to `output_file` (NULL: /dev/null), in `cwd` (NULL: the current
     * directory), with the program's environment plus `env` (NAME=value, NULL-terminated; NULL
     * for none). The host reaps it; child_status tells its fate. CPAR_ENOENT naming argv[0] when
     * it cannot be run (nothing was started).
     */
    int (*spawn)(cpar_ctx_t *ctx, const char *const *argv, const char *const *env,
                 const char *cwd, const char *output_file, int64_t *pid);
    /*
     * Whether process `pid` still runs (*running = 1). Once it ended, *exit_code is its exit
     * code, -signal when a signal ended it, or CPAR_EXIT_UNKNOWN (-1000) when it was not this
     * program's child (a process restored from a cluster file).
     */
    int (*child_status)(cpar_ctx_t *ctx, int64_t pid, int *running, int *exit_code);
    /*
     * Run argv to completion, stdin from `input` (NULL: /dev/null), for at most timeout_ms
     * (then it is killed and CPAR_ETIMEDOUT returned). *status: its exit code, or 128 + signal.
     * *out and *err (host->alloc'd, NUL-terminated; pass NULL to discard) what it printed.
     * CPAR_ENOENT naming argv[0] when it cannot be run. The reactor waits meanwhile.
     */
    int (*run)(cpar_ctx_t *ctx, const char *const *argv, const char *input, int timeout_ms,
               int *status, char **out, char **err);
    /*
     * Render a template as ipyparallel renders batch templates: {name}, {name:format} (Python
     * format specs for integers and text), {{ and }}, and integer expressions over integer
     * variables and literals with + - * // % and parentheses, and `a or b` ({n*2}, {n//4},
     * {queue or 'batch'}). An unknown variable or a malformed field is CPAR_EINVAL naming it
     * (one line). *out host->alloc'd.
     */
    int (*render_template)(cpar_ctx_t *ctx, const char *tmpl, const cpar_tvar_t *vars,
                           size_t nvars, char **out);
    /* Python shlex.join of argv (NULL-terminated) into *out (host->alloc'd). */
    int (*shell_join)(cpar_ctx_t *ctx, const char *const *argv, char **out);
    /*
     * Python re.search(pattern, text) with the usual subset of Python syntax (\d \w \s \W
     * \D \S, classes, groups, anchors; $ also before a final newline): *match (host->alloc'd)
     * is group `group` of the first match. CPAR_ENOENT when nothing matches, CPAR_EINVAL for a
     * pattern that does not compile.
     */
    int (*regex_search)(cpar_ctx_t *ctx, const char *pattern, const char *text, int group,
                        char **match);
} cpar_host_t;

/*
 * The header every descriptor starts with. Fill it with CPAR_PLUGIN_HEADER() so that the ABI
 * version is the one of the SDK the plugin was built with.
 */
typedef struct cpar_plugin {
    uint16_t abi_major;
    uint16_t abi_minor;
    cpar_kind_t kind;
    const char *name;        /* must equal <name> of cpar_<kind>_<name>.so */
    const char *version;     /* the plugin's own version, free form */
    const char *description; /* one line for --list-plugins */
    /* Config sections the plugin reads (NULL-terminated), so unknown-trait warnings skip them. */
    const char *const *config_sections;
    /*
     * Called once after loading, on the reactor thread. Store anything the plugin needs in *state;
     * the core passes it back to every operation and to fini. `host` and `ctx` stay valid until
     * fini returns. A negative return rejects the plugin (explain it with host->set_error); then
     * init has released what it made, fini is not called and the plugin is unloaded at once.
     * May be NULL.
     */
    int (*init)(const cpar_host_t *host, cpar_ctx_t *ctx, void **state);
    /* Release everything init and the operations created. Never fails. May be NULL. */
    void (*fini)(void *state);
} cpar_plugin_t;

#define CPAR_PLUGIN_HEADER(kind_, name_)                                                       \
    .abi_major = CPAR_PLUGIN_ABI_MAJOR, .abi_minor = CPAR_PLUGIN_ABI_MINOR, .kind = (kind_),   \
    .name = (name_)

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_PLUGIN_H */
