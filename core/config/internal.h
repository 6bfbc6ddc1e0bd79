/*
 * internal.h - what the files of cpar_config share with each other and nobody else.
 */
#ifndef CPAR_CONFIG_INTERNAL_H
#define CPAR_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

/*
 * cpar_config_set with the command-line text the value was parsed from (`raw`, copied, may be
 * NULL): the typed readers hand it out when a string is wanted and the value is a number or a
 * bool from the command line or the environment.
 */
int cpar_config_set_raw(cpar_config_t *cfg, const char *section, const char *key, json_t *value,
                        cpar_cfg_source_t src, const char *origin, const char *raw);

/* Parse flags for cpar_py_expr. */
enum {
    CPAR_PY_ARITH = 1 /* allow * + - / // % ** between literals (config files, not the CLI) */
};

/*
 * Parse `text` (len bytes) as one Python literal expression, the whole of it, the way
 * ast.literal_eval does (CPAR_PY_ARITH: also arithmetic, as a config file may). A new reference,
 * or NULL with the reason in err (CPAR_ENOMEM: "out of memory").
 */
json_t *cpar_py_expr(const char *text, size_t len, int flags, char *err, size_t errlen);

/* Read a whole file into a NUL-terminated malloc'd buffer. 0, CPAR_ENOENT, CPAR_EIO (errno set)
 * or CPAR_ENOMEM. */
int cpar_cfg_read_file(const char *path, char **data, size_t *len);

/* os.path.expanduser: "~" and "~user" prefixes; a new string or NULL (no memory). */
char *cpar_cfg_expanduser(const char *path);

/* os.path.abspath after expanduser: against the current directory, with "." and ".." and
 * repeated slashes folded. A new string, or NULL (no memory, or no current directory). */
char *cpar_cfg_abspath(const char *path);

/* 1 when s[0..len) is valid UTF-8 without NUL bytes. */
int cpar_cfg_utf8_ok(const char *s, size_t len);

/* Format "<a>/<b>" into a new string, or NULL. */
char *cpar_cfg_join(const char *a, const char *b);

#endif
