/* log.c - see log.h. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <sys/time.h>

static const char *log_program = "cparallel";
static int log_level = CPAR_LOG_INFO;

void cpar_log_set_program(const char *name)
{
    log_program = name;
}

void cpar_log_set_level(int level)
{
    log_level = level;
}

int cpar_log_get_level(void)
{
    return log_level;
}

int cpar_log_enabled(int level)
{
    return level >= log_level;
}

static const struct {
    const char *name;
    int level;
} level_names[] = {
    {"DEBUG", CPAR_LOG_DEBUG},     {"INFO", CPAR_LOG_INFO},   {"WARN", CPAR_LOG_WARNING},
    {"WARNING", CPAR_LOG_WARNING}, {"ERROR", CPAR_LOG_ERROR}, {"CRITICAL", CPAR_LOG_CRITICAL},
};

int cpar_log_parse_level(const char *text, int *level)
{
    char *end;
    long v;

    if (!text || !*text)
        return CPAR_EINVAL;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(text, level_names[i].name) == 0) {
            *level = level_names[i].level;
            return 0;
        }
    }
    v = strtol(text, &end, 10);
    if (*end || v < 0 || v > 100)
        return CPAR_EINVAL;
    *level = (int)v;
    return 0;
}

static const char *level_label(int level)
{
    if (level >= CPAR_LOG_CRITICAL)
        return "CRITICAL";
    if (level >= CPAR_LOG_ERROR)
        return "ERROR";
    if (level >= CPAR_LOG_WARNING)
        return "WARNING";
    if (level >= CPAR_LOG_INFO)
        return "INFO";
    return "DEBUG";
}

void cpar_vlog(int level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    int n;

    if (level < log_level)
        return;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03d [%s] %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), log_program, level_label(level));
    if (n < 0)
        return;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* One event, one line: fold any newline a message carries. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s\n", line);
}

void cpar_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cpar_vlog(level, fmt, ap);
    va_end(ap);
}
