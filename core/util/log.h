/*
 * log.h - the core's logger: one line per event on stderr, with time, program and level.
 *
 * Levels are Python logging's numbers (CPAR_LOG_* in cparallel/plugin.h), so --log-level=10 and
 * --log-level=DEBUG mean the same as for ipcontroller.
 */
#ifndef CPAR_UTIL_LOG_H
#define CPAR_UTIL_LOG_H

#include <stdarg.h>
#include <cparallel/plugin.h>

/* The program name printed in each line ("cpcontroller"). Borrowed: pass a string literal. */
void cpar_log_set_program(const char *name);
void cpar_log_set_level(int level);
int cpar_log_get_level(void);
/* True when a line at `level` would be printed (to skip costly formatting). */
int cpar_log_enabled(int level);
/* Parse "10".."50" or "DEBUG".."CRITICAL" (any case); 0 or CPAR_EINVAL. */
int cpar_log_parse_level(const char *text, int *level);

void cpar_log(int level, const char *fmt, ...) CPAR_PRINTF(2, 3);
void cpar_vlog(int level, const char *fmt, va_list ap) CPAR_PRINTF(2, 0);

#define cpar_debug(...) \
    do { if (cpar_log_enabled(CPAR_LOG_DEBUG)) cpar_log(CPAR_LOG_DEBUG, __VA_ARGS__); } while (0)
#define cpar_info(...) cpar_log(CPAR_LOG_INFO, __VA_ARGS__)
#define cpar_warn(...) cpar_log(CPAR_LOG_WARNING, __VA_ARGS__)
#define cpar_error(...) cpar_log(CPAR_LOG_ERROR, __VA_ARGS__)

#endif
