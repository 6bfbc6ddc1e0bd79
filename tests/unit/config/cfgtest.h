/*
 * cfgtest.h - helpers of the config unit tests: temporary directories and files, and capture of
 * the log lines written to stderr.
 */
#ifndef CPAR_TEST_CFGTEST_H
#define CPAR_TEST_CFGTEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"

/* A new directory under $TMPDIR (or /tmp); the caller frees the string and removes the tree. */
char *cfgt_mkdtemp(void);
/* rm -r */
void cfgt_rmtree(const char *path);
/* Write `content` to <dir>/<name>; returns the path (malloc'd). */
char *cfgt_write(const char *dir, const char *name, const char *content);
/* "<a>/<b>", malloc'd. */
char *cfgt_join(const char *a, const char *b);

/* Send stderr to a file until cfgt_stderr_end, which returns what was written (malloc'd). */
void cfgt_stderr_begin(void);
char *cfgt_stderr_end(void);
/* Occurrences of needle in hay. */
int cfgt_count(const char *hay, const char *needle);

/* The string value of section.key, or NULL when unset or not a string. */
const char *cfgt_str(const cpar_config_t *cfg, const char *section, const char *key);
/* Keys in the store. */
int cfgt_nkeys(const cpar_config_t *cfg);

#endif
