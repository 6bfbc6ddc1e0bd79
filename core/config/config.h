/*
 * config.h - configuration of the cparallel programs, the way ipyparallel users write it.
 *
 * Every setting is a traitlets-style "Section.trait" key (IPController.ip, HeartMonitor.period,
 * TaskScheduler.scheme_name, SQLiteDB.filename, ...) holding a JSON value (jansson json_t: string,
 * integer, real, true/false, null, array, object). Settings come from, highest precedence first:
 *
 *   1. the command line      --ip=127.0.0.1, --Class.trait=value, flags such as --dictdb
 *   2. the environment       IPYTHONDIR, IPP_PROFILE_DIR, IPP_CLUSTER_ID, IPP_SESSION_KEY
 *   3. <profile>/<prog>_config.json
 *   4. <profile>/<prog>_config.py   (the literal-assignment subset, see cpar_config_load_py)
 *   5. defaults, which the program applies itself when a key is unset
 *
 * A store remembers, for each key, the source and the origin ("ipcontroller_config.py:12",
 * "--ping", "IPP_SESSION_KEY") of the value it holds; a lower-precedence source never replaces a
 * higher one, so sources may be loaded in any order.
 *
 * Nothing here is thread-safe; the programs configure themselves before their reactor starts.
 */
#ifndef CPAR_CONFIG_CONFIG_H
#define CPAR_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef enum cpar_cfg_source {
    CPAR_SRC_DEFAULT = 0,
    CPAR_SRC_PY = 1,
    CPAR_SRC_JSON = 2,
    CPAR_SRC_ENV = 3,
    CPAR_SRC_CLI = 4
} cpar_cfg_source_t;

typedef struct cpar_config cpar_config_t;

cpar_config_t *cpar_config_new(void);
void cpar_config_free(cpar_config_t *cfg);

/*
 * Set section.key to `value` (reference stolen, also on failure) from `src`; `origin` is copied.
 * When the key already holds a value from a higher source, the new value is dropped and 0 is
 * returned. A value from the same source replaces the old one (the last assignment in a file
 * wins). Returns 0 or CPAR_ENOMEM/CPAR_EINVAL.
 */
int cpar_config_set(cpar_config_t *cfg, const char *section, const char *key, json_t *value,
                    cpar_cfg_source_t src, const char *origin);
/* Same with "Section.key" as one dotted string (split at the last dot). */
int cpar_config_set_dotted(cpar_config_t *cfg, const char *dotted, json_t *value,
                           cpar_cfg_source_t src, const char *origin);

/* The value of section.key, borrowed (valid until the key is set again or cfg is freed), or NULL. */
json_t *cpar_config_get(const cpar_config_t *cfg, const char *section, const char *key);
/*
 * Where the value came from, or NULL when unset: "--ping" (the command line), "IPP_SESSION_KEY"
 * (the environment), "<path>:<line>" (a config file, with the path as it was given to the
 * loader; the line of the key in a .json file, of the statement's start in a .py file).
 */
const char *cpar_config_origin(const cpar_config_t *cfg, const char *section, const char *key);
cpar_cfg_source_t cpar_config_source(const cpar_config_t *cfg, const char *section,
                                     const char *key);

/*
 * Of the sections `sections` (NULL-terminated: a class and its bases, most specific first, such
 * as {"IPController", "BaseParallelApplication", "BaseIPythonApplication", "Application", NULL}),
 * the one whose `key` traitlets would apply: the value from the highest source wins, and among
 * equal sources the most specific class. Returns that entry of `sections` (so a typed read can
 * follow), or NULL when none holds a non-null value.
 */
const char *cpar_config_pick_section(const cpar_config_t *cfg, const char *const *sections,
                                     const char *key);

/*
 * Typed reads. Each returns 0 and sets *out, CPAR_ENOENT when unset or None/null (and *out
 * untouched), or CPAR_EINVAL when the value has another type; then it logs one warning line
 * naming the key, the origin and the type expected. Conversions a traitlets user relies on are
 * accepted:
 *   - config_double: an integer;
 *   - config_bool: the integers 0 and 1 (traitlets' Bool accepts them);
 * and for values that come from the command line or the environment (text that cpar_cli_parse
 * turned into a literal when it was one, as traitlets' from_string would for the trait's type):
 *   - config_string: an integer, float or bool gives the text it was written as ("--profile=123"
 *     gives "123", "--cluster-id=1e3" gives "1e3"; a flag's value gives "10", "True");
 *   - config_int: a string of decimal digits, Python int() style (sign, blanks, '_');
 *   - config_double: a string strtod reads whole ("2.5", "1e3", "inf");
 *   - config_bool: the strings true/false (any case), 1 and 0.
 * config_string hands out a borrowed pointer with the lifetime of cpar_config_get.
 */
int cpar_config_string(const cpar_config_t *cfg, const char *section, const char *key,
                       const char **out);
int cpar_config_int(const cpar_config_t *cfg, const char *section, const char *key,
                    int64_t *out);
int cpar_config_double(const cpar_config_t *cfg, const char *section, const char *key,
                       double *out);
int cpar_config_bool(const cpar_config_t *cfg, const char *section, const char *key, int *out);

/* Visit every set key in insertion order; stop early when cb returns non-zero. */
typedef int (*cpar_config_visit_cb)(void *arg, const char *section, const char *key,
                                    json_t *value, cpar_cfg_source_t src, const char *origin);
int cpar_config_foreach(const cpar_config_t *cfg, cpar_config_visit_cb cb, void *arg);

/*
 * Load <path> (a JSON object of {"Section": {"trait": value}}; a top-level "version": 1, which
 * traitlets writes, is skipped). A missing file is not an error (returns 0). A file that is not
 * such an object is: returns CPAR_ECONFIG with a one-line message "<path>:<line>: <what>" in err
 * and sets nothing; a file that cannot be read gives "<path>: cannot read: <reason>".
 */
int cpar_config_load_json(cpar_config_t *cfg, const char *path, char *err, size_t errlen);

/*
 * Load <path> written in the subset of Python that real ipyparallel profiles use:
 *
 *   # comments, blank lines, `c = get_config()` (also `c = get_config()  # noqa`; any name bound
 *   this way may be used like `c`, which is predefined as in traitlets),
 *   `from traitlets.config import get_config` (ignored; any other import is an error),
 *   c.Section.trait = <literal>
 *   c.Section.trait += <literal>   (a list extends, a str or number adds to, the value set
 *                                   earlier in the same file; a list on a trait not set earlier
 *                                   is taken as the whole value, with a warning, since it would
 *                                   extend ipyparallel's default)
 *   statements separated by ';', lines joined by a trailing backslash
 *
 * where <literal> is a str ('..', "..", or triple-quoted, with Python's escapes; adjacent
 * literals concatenate; r-, u- and b-strings, the latter ASCII only; no f-strings), int (with _
 * separators, 0x/0o/0b, negative), float, True/False/None, a list [...], tuple (...) or bare
 * `a, b`, dict {...} with string keys, or set {...} of literals, possibly spanning lines inside
 * brackets, and arithmetic on them (* + - / // % ** on numbers, + on two strs or two lists, with
 * literals only, as in 4 * 1024**3). Tuples and sets become JSON arrays. Anything else is an
 * error: CPAR_ECONFIG with "<path>:<line>: <what>" in err, where <line> is the line the statement
 * starts on, e.g. "unsupported statement: os.environ['X'] = 'y'", "unterminated string",
 * "expected a literal after '='", "unclosed '['", "unexpected indent". Settings of the
 * statements before the error stay set. A missing file returns 0; an unreadable one gives
 * "<path>: cannot read: <reason>".
 */
int cpar_config_load_py(cpar_config_t *cfg, const char *path, char *err, size_t errlen);

/*
 * Read the environment variables of the ipyparallel apps into cfg with CPAR_SRC_ENV:
 *   IPYTHONDIR       -> BaseIPythonApplication.ipython_dir
 *   IPP_PROFILE_DIR  -> ProfileDir.location
 *   IPP_CLUSTER_ID   -> BaseParallelApplication.cluster_id
 *   IPP_SESSION_KEY  -> Session.key
 * `environ_` is a NULL-terminated "NAME=value" array (pass `environ`).
 */
int cpar_config_load_env(cpar_config_t *cfg, char *const *environ_);

/* ---- command line ---------------------------------------------------------------------- */

/*
 * How one command-line option maps onto the store.
 *   ALIAS  --name=value or --name value: sets `trait` to the parsed value. With a non-NULL
 *          `value` the option's value is optional, as for traitlets' names that are both an
 *          alias and a flag (--log-to-file): --name alone then acts as a FLAG with that value.
 *   FLAG   --name: sets `trait` to the JSON text `value`; with `trait` NULL, `value` is a JSON
 *          object {"Section.trait": value, ...} and sets each of them (--restore).
 *   ACTION --name: sets the `action` bit in the parse result.
 * A one-letter name is also accepted with one dash (-h).
 */
typedef enum cpar_opt_kind {
    CPAR_OPT_ALIAS = 1,
    CPAR_OPT_FLAG = 2,
    CPAR_OPT_ACTION = 3
} cpar_opt_kind_t;

typedef struct cpar_option {
    const char *name;  /* without the dashes: "profile-dir", "dictdb" */
    cpar_opt_kind_t kind;
    const char *trait; /* "ProfileDir.location", "IPController.db_class" */
    const char *value; /* FLAG: JSON text of the value to set, e.g. "\"DictDB\"" or "true";
                          ALIAS: the value when none is given, or NULL (see above) */
    unsigned action;   /* ACTION: bit set in cpar_cli_result_t.actions */
    const char *help;  /* one line for --help */
} cpar_option_t;

/* Table entries; a table ends with CPAR_OPT_END. */
#define CPAR_ALIAS(n, t, h) {n, CPAR_OPT_ALIAS, t, NULL, 0, h}
#define CPAR_FLAG(n, t, v, h) {n, CPAR_OPT_FLAG, t, v, 0, h}
#define CPAR_ACTION(n, a, h) {n, CPAR_OPT_ACTION, NULL, NULL, a, h}
#define CPAR_OPT_END {NULL, 0, NULL, NULL, 0, NULL}

/* IPython's base aliases every program has: profile, profile-dir, ipython-dir, log-level. */
#define CPAR_OPTS_IPYTHON_BASE                                                                    \
    CPAR_ALIAS("profile", "BaseIPythonApplication.profile", "The IPython profile to use."),        \
    CPAR_ALIAS("profile-dir", "ProfileDir.location",                                              \
               "The profile directory, instead of <ipython-dir>/profile_<profile>."),             \
    CPAR_ALIAS("ipython-dir", "BaseIPythonApplication.ipython_dir",                               \
               "The IPython directory (default: $IPYTHONDIR, else ~/.ipython)."),                 \
    CPAR_ALIAS("log-level", "Application.log_level",                                              \
               "Log level: 10, 20, 30, 40, 50 or DEBUG, INFO, WARN, ERROR, CRITICAL.")

/* The base flags --debug and --quiet. */
#define CPAR_OPTS_LOG_FLAGS                                                                       \
    CPAR_FLAG("debug", "Application.log_level", "10", "Log level DEBUG."),                         \
    CPAR_FLAG("quiet", "Application.log_level", "50", "Log level CRITICAL.")

typedef struct cpar_cli_result {
    unsigned actions;     /* OR of the action bits that were given */
    int npositional;      /* arguments that are not options, in order (subcommands) */
    char **positional;    /* points into argv: argv[argc - npositional .. argc - 1] */
} cpar_cli_result_t;

/*
 * Parse argv[1..argc-1] against `options` (terminated by an entry with name NULL) into cfg with
 * CPAR_SRC_CLI. Accepted forms: --name=value, --name value, -name=value (one dash, as traitlets
 * allows), --Section.trait=value and --Section.trait value for any section, and "--" to end
 * options. In the two-token form the next argument is the value unless it looks like an option
 * ("-x..."; "-5" and "" are values), as argparse does. A value is parsed as a Python literal
 * when it is one, as ast.literal_eval would (250, 2.5, True, None, [1,2], 'quoted'; no
 * arithmetic, so 10101-10120 stays a string), else taken as a plain string with a leading ~
 * expanded, the way traitlets does for the trait's type; an empty token is the empty string
 * (--cluster-id ''). Options apply in argv order (the last one wins). The origin recorded is
 * "--name". Arguments that are not options are positional: on success argv is reordered, like
 * GNU getopt does, so that they come last in their order, and result->positional points there.
 * `result` may be NULL.
 * Returns 0, or CPAR_EINVAL with a one-line message in err naming the argument ("unrecognized
 * option '--foo'" for an unknown option that is not Section.trait, "option '--profile' needs a
 * value", "option '--dictdb' takes no value ('--dictdb=1')"), or CPAR_ENOMEM. Options before
 * the bad one stay set.
 */
int cpar_cli_parse(cpar_config_t *cfg, const cpar_option_t *options, int argc, char **argv,
                   cpar_cli_result_t *result, char *err, size_t errlen);

/* Print a --help text for `options` to `out` (a FILE*), after `usage` lines. */
void cpar_cli_help(const cpar_option_t *options, const char *usage, void *out);

/*
 * Parse one value the way cpar_cli_parse does (Python literal, else plain string); a new
 * reference, or NULL on allocation failure or when text is not valid UTF-8.
 */
json_t *cpar_cli_value(const char *text);

/*
 * Set the log level (util/log.h) from the program's log_level setting: of `app_sections` (its
 * application classes, most specific first, NULL-terminated) the one cpar_config_pick_section
 * picks. Unset: the level stays. Returns 0, or CPAR_ECONFIG after logging an error naming the
 * bad value and where it came from.
 */
int cpar_config_apply_log_level(const cpar_config_t *cfg, const char *const *app_sections);

/* ---- profile directory ----------------------------------------------------------------- */

/*
 * The profile directory the settings name, as an absolute path the caller frees:
 * ProfileDir.location if set; else <ipython_dir>/profile_<BaseIPythonApplication.profile or
 * "default">, where ipython_dir is BaseIPythonApplication.ipython_dir, else $HOME/.ipython
 * (empty strings count as unset). A leading ~ is expanded and a relative path is taken from the
 * current directory, with "." and ".." folded (os.path.abspath); the directory need not exist.
 * Returns NULL on allocation failure or when the current directory cannot be found.
 */
char *cpar_profile_dir(const cpar_config_t *cfg);

/*
 * Create `dir` (and its parents) with its ipython subdirectories security/ (0700), log/,
 * pid/ (0700) and startup/ when missing; like IPython, an existing security/ or pid/ with
 * another mode is changed to 0700 (a warning when that fails). 0, or CPAR_EIO with a one-line
 * message in err (CPAR_EINVAL for an empty dir, CPAR_ENOMEM).
 */
int cpar_profile_create(const char *dir, char *err, size_t errlen);

/*
 * Load <dir>/<prog>_config.py then <dir>/<prog>_config.json into cfg (the json wins where both
 * set a key). Both are read even when the first has an error. 0, or CPAR_ECONFIG with the first
 * error's message in err (CPAR_ENOMEM).
 */
int cpar_config_load_profile(cpar_config_t *cfg, const char *dir, const char *prog, char *err,
                             size_t errlen);

/*
 * Warn (one line each, naming the key and its origin) about every key whose section is not in
 * `sections` (NULL-terminated), or whose section is in it but whose trait is not in `traits`
 * ("Section.trait", NULL-terminated) when the section is listed with a trailing "." in
 * `sections`, i.e. sections {"IPController.", "SQLiteDB", NULL} checks IPController traits one
 * by one and accepts any SQLiteDB trait. Each call warns once per such key (the store holds a
 * key once). Returns the number of warnings.
 */
int cpar_config_warn_unknown(const cpar_config_t *cfg, const char *const *sections,
                             const char *const *traits);

#endif /* CPAR_CONFIG_CONFIG_H */
