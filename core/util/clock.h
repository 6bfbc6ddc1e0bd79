/*
 * clock.h - wall and monotonic clocks, and the ISO-8601 dates of the Jupyter protocol.
 */
#ifndef CPAR_UTIL_CLOCK_H
#define CPAR_UTIL_CLOCK_H

#include <stdint.h>

/* Microseconds since the Unix epoch, UTC. */
int64_t cpar_now_us(void);
/* Monotonic microseconds (CLOCK_MONOTONIC); only differences mean anything. */
int64_t cpar_monotonic_us(void);

/* Room for "YYYY-MM-DDTHH:MM:SS.ffffffZ" and its NUL. */
#define CPAR_ISO_LEN 28

/* Write `us` (UTC) as "YYYY-MM-DDTHH:MM:SS.ffffffZ"; returns `out`. Instants before year 1 or
 * after year 9999 (outside Python's datetime) are clamped to those years' first/last microsecond. */
char *cpar_iso_format(int64_t us, char out[CPAR_ISO_LEN]);

/*
 * Parse an ISO-8601 date as jupyter_client writes and accepts them:
 * YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|+HH:MM|+HHMM|-HH:MM|-HHMM]. A date without an offset is naive:
 * it is taken as local time when `naive_local` is non-zero (Python's rule for naive datetimes),
 * else as UTC. Fields must be in range as for Python's datetime (year 1..9999, a real day of the
 * month, no leap second, offsets below 24:00). Returns 0 and sets *us (negative before 1970), or
 * CPAR_EINVAL when `text` is not such a date.
 */
int cpar_iso_parse(const char *text, int naive_local, int64_t *us);

#endif
