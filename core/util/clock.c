/* clock.c - see clock.h. */
#include "clock.h"

#include <cparallel/errors.h>

#include <string.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)
/* 0001-01-01T00:00:00.000000Z and 9999-12-31T23:59:59.999999Z, Python's datetime range. */
#define ISO_MIN_US (INT64_C(-62135596800) * US_PER_SEC)
#define ISO_MAX_US (INT64_C(253402300799) * US_PER_SEC + 999999)

int64_t cpar_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cpar_monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H. Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* Write v as exactly n decimal digits at p; returns the end. */
static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

char *cpar_iso_format(int64_t us, char out[CPAR_ISO_LEN])
{
    int64_t days, rem;
    int y, mo, d, secs;
    char *p = out;

    if (us < ISO_MIN_US)
        us = ISO_MIN_US;
    if (us > ISO_MAX_US)
        us = ISO_MAX_US;
    days = us / US_PER_DAY;
    rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    civil_from_days(days, &y, &mo, &d);
    secs = (int)(rem / US_PER_SEC);
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = put_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, secs % 60, 2);
    *p++ = '.';
    p = put_digits(p, (int)(rem % US_PER_SEC), 6);
    *p++ = 'Z';
    *p = '\0';
    return out;
}

/* Read exactly n digits at *p into *v and advance. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;

    for (int i = 0; i < n; i++) {
        char c = (*p)[i];

        if (c < '0' || c > '9')
            return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int cpar_iso_parse(const char *text, int naive_local, int64_t *us)
{
    const char *p = text;
    int Y, M, D, h, m, s, frac = 0, off = 0, naive = 1;
    int64_t secs;

    if (!text || !us)
        return CPAR_EINVAL;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D) ||
        *p++ != 'T' || digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' ||
        digits(&p, 2, &s))
        return CPAR_EINVAL;
    if (Y < 1 || M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 || m > 59 || s > 59)
        return CPAR_EINVAL;
    if (*p == '.') {
        int n = 0;

        p++;
        while (is_digit(*p) && n < 6) {
            frac = frac * 10 + (*p++ - '0');
            n++;
        }
        if (n == 0 || is_digit(*p))
            return CPAR_EINVAL;
        for (; n < 6; n++)
            frac *= 10;
    }
    if (*p == 'Z') {
        naive = 0;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;

        if (digits(&p, 2, &oh))
            return CPAR_EINVAL;
        if (*p == ':')
            p++;
        if (digits(&p, 2, &om) || oh > 23 || om > 59)
            return CPAR_EINVAL;
        off = sign * (oh * 3600 + om * 60);
        naive = 0;
    }
    if (*p)
        return CPAR_EINVAL;

    if (naive && naive_local) {
        struct tm tm;
        time_t t;

        memset(&tm, 0, sizeof tm);
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        tm.tm_wday = -1;
        t = mktime(&tm);
        if (tm.tm_wday == -1)
            return CPAR_EINVAL;
        secs = (int64_t)t;
    } else {
        secs = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + s - off;
    }
    *us = secs * US_PER_SEC + frac;
    return 0;
}
