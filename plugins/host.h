/*
 * host.h - the plugin host: finds, loads, validates, initialises and unloads plugins, and gives
 * them the cpar_host_t service table.
 *
 * Search path, first match wins: $CPAR_PLUGIN_PATH (colon list) > the config key
 * CParallel.plugin_path (a list of directories or a colon string) > the compiled-in directory,
 * which is <directory of the running program>/CPAR_PLUGIN_RELDIR (so build-tree programs find the
 * build-tree plugins and installed programs the installed ones) followed by the install
 * directory.
 *
 * A candidate file must be a regular file named cpar_<kind>_<name>.so that exports
 * cpar_<kind>_<name>_plugin, whose header has kind <kind>, name <name>, abi_major equal to the
 * core's and abi_minor not above the core's, and the ops its kind requires; then init must
 * succeed. Any failure rejects it with a one-line reason (see cpar_plughost_load), and a plugin a
 * user named that is missing or rejected is an error: nothing falls back silently.
 */
#ifndef CPAR_PLUGINS_HOST_H
#define CPAR_PLUGINS_HOST_H

#include <stdio.h>
#include <cparallel/plugin.h>

#include "config/config.h"
#include "loop/loop.h"

typedef struct cpar_plughost cpar_plughost_t;
/* One loaded and initialised plugin. */
typedef struct cpar_plugin_inst cpar_plugin_inst_t;

/* What the host tells plugins about the program (cpar_host_t.context). Strings are copied. */
typedef struct cpar_plughost_info {
    const char *program;
    const char *profile_dir;
    const char *cluster_id;
    const char *session;
    /* Nonzero in a program that manages no processes (cpcontroller): then the host's spawn,
     * child_status and run answer CPAR_ENOTSUP. */
    int no_processes;
} cpar_plughost_info_t;

/*
 * Create the host. `cfg` (plugin settings, CParallel.plugin_path) and `loop` (timers) are
 * borrowed and must outlive it; `loop` may be NULL for programs without a reactor (then
 * timer_start fails with CPAR_ENOTSUP). The search path is fixed here (the environment and
 * plugin_path as they are now). 0, CPAR_ENOMEM, or CPAR_EINTERNAL when the loader cannot start.
 */
int cpar_plughost_new(cpar_plughost_t **out, const cpar_config_t *cfg, cpar_loop_t *loop,
                      const cpar_plughost_info_t *info);
/* Unload every plugin still loaded (fini first), then free the host. */
void cpar_plughost_free(cpar_plughost_t *host);

/* The directories searched, in order, as one colon-separated string (borrowed). */
const char *cpar_plughost_search_path(const cpar_plughost_t *host);

/* Kind names as used in file names: "scheduler", "dbbackend", "launcher"; NULL if unknown. */
const char *cpar_kind_name(cpar_kind_t kind);

/*
 * Load plugin <kind>/<name> from the first directory of the search path that has its file, check
 * it and run its init. On failure returns a negative code and writes one line to err, for example
 *
 *   dbbackend plugin 'sqlite' not found (searched: /a:/b)
 *   /b/cpar_scheduler_x.so: rejected: ABI major 2, this core has 1
 *   /b/cpar_scheduler_x.so: rejected: needs ABI 1.7, this core has 1.0
 *   /b/cpar_scheduler_x.so: rejected: descriptor names plugin 'y', file names 'x'
 *   /b/cpar_scheduler_x.so: rejected: descriptor kind 2 is not scheduler
 *   /b/cpar_scheduler_x.so: rejected: no symbol cpar_scheduler_x_plugin
 *   /b/cpar_scheduler_x.so: rejected: cannot load: <dlerror text>
 *   /b/cpar_scheduler_x.so: rejected: missing operation 'choose'
 *   /b/cpar_scheduler_x.so: rejected: init failed: CPAR_EIO: <the plugin's set_error text>
 *
 *   /b/cpar_scheduler_x.so: rejected: not a regular file
 *
 * (the exact texts are the contract tested in tests/unit/plugins). The first directory that has
 * an entry of that name answers, even when the entry is rejected. Codes: CPAR_ENOENT (not found),
 * CPAR_EINVAL (bad kind or name, not a regular file), CPAR_EIO (cannot load), CPAR_EABI (symbol,
 * ABI version, kind, name or operations), init's own code, CPAR_ENOMEM. A plugin whose init
 * failed is closed at once without fini.
 */
int cpar_plughost_load(cpar_plughost_t *host, cpar_kind_t kind, const char *name,
                       cpar_plugin_inst_t **out, char *err, size_t errlen);

/*
 * Call fini and unload; NULL is ignored. Timers the plugin left running after fini are stopped
 * (before its code goes away) and reported with a warning.
 */
void cpar_plughost_unload(cpar_plughost_t *host, cpar_plugin_inst_t *inst);

/*
 * The config sections the loaded plugins declared (cpar_plugin_t.config_sections), up to `max`,
 * into out[]; returns how many. The strings belong to the plugins: valid until they unload.
 */
size_t cpar_plughost_sections(const cpar_plughost_t *host, const char **out, size_t max);

/* The descriptor (points into the loaded object; valid until unload), its state, its file. */
const cpar_plugin_t *cpar_plugin_desc(const cpar_plugin_inst_t *inst);
void *cpar_plugin_state(const cpar_plugin_inst_t *inst);
const char *cpar_plugin_path(const cpar_plugin_inst_t *inst);
/*
 * The detail text the plugin last gave through set_error, or "" when none; it is cleared by
 * cpar_plugin_clear_error(), which the typed fronts call before each operation.
 */
const char *cpar_plugin_error(const cpar_plugin_inst_t *inst);
void cpar_plugin_clear_error(cpar_plugin_inst_t *inst);
/* The service table and context the plugin was given, for core code that acts on its behalf
 * (the launcher front's batch driver): errors set through them become the plugin's error. */
const cpar_host_t *cpar_plughost_table(void);
cpar_ctx_t *cpar_plugin_ctx(cpar_plugin_inst_t *inst);

/*
 * For --list-plugins: look at every cpar_*_*.so in every search directory (also files that
 * merely look like plugins), try to load and init each (then unload it), and print one line per
 * file, in search path order and by file name within a directory:
 *
 *   <kind>/<name> <version> loaded <path> - <description>
 *   <kind>/<name> rejected <path>: <reason as for cpar_plughost_load>
 *   <kind>/<name> shadowed <path> (by <path>)      a later file of a name already found
 *
 * (<kind>/<name> as the file name spells them; a file of an unknown kind is rejected with
 * "unknown plugin kind '<kind>'"). Shadowed files are not opened. Returns the number of rejected
 * files.
 */
int cpar_plughost_list(cpar_plughost_t *host, FILE *out);

#endif /* CPAR_PLUGINS_HOST_H */
