/* clock.c - see clock.h. */
#include "clock.h"

#include <cparallel/errors.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

char *cpar_iso_format(int64_t us, char out[CPAR_ISO_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    snprintf(out, CPAR_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return out;
}

/* Read exactly n digits at *p into *v and advance. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

int cpar_iso_parse(const char *text, int naive_local, int64_t *us)
{
    const char *p = text;
    struct tm tm;
    int Y, M, D, h, m, s, frac = 0, off = 0, naive = 1;
    time_t secs;

    if (!text)
        return CPAR_EINVAL;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D) || *p++ != 'T' || digits(&p, 2, &h) || *p++ != ':' ||
        digits(&p, 2, &m) || *p++ != ':' || digits(&p, 2, &s))
        return CPAR_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60)
        return CPAR_EINVAL;
    if (*p == '.') {
        int n = 0;

        p++;
        while (isdigit((unsigned char)*p) && n < 6) {
            frac = frac * 10 + (*p++ - '0');
            n++;
        }
        if (n == 0 || isdigit((unsigned char)*p))
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

    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = s;
    if (naive && naive_local) {
        tm.tm_isdst = -1;
        secs = mktime(&tm);
    } else {
        secs = timegm(&tm) - off;
    }
    *us = (int64_t)secs * 1000000 + frac;
    return 0;
}
