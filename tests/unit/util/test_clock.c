/* test_clock.c - ISO-8601 dates of the Jupyter protocol: parsing, formatting, time zones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <cparallel/errors.h>

#include "util/clock.h"

/* 2026-11-26T11:50:34.070194Z */
#define T0 INT64_C(1795693834070194)

static int64_t parse_ok(const char *text, int naive_local)
{
    int64_t us = 0;

    if (cpar_iso_parse(text, naive_local, &us) != 0)
        fail_msg("rejected: \"%s\"", text);
    return us;
}

static void test_utc_z(void **state)
{
    (void)state;
    assert_true(parse_ok("2026-11-26T11:50:34.070194Z", 0) == T0);
    assert_true(parse_ok("2026-11-26T11:50:34.070194Z", 1) == T0);
    assert_true(parse_ok("1970-01-01T00:00:00Z", 0) == 0);
}

static void test_offsets(void **state)
{
    (void)state;
    assert_true(parse_ok("2026-11-26T13:50:34.070194+02:00", 0) == T0);
    assert_true(parse_ok("2026-11-26T13:50:34.070194+0200", 1) == T0);
    assert_true(parse_ok("2026-11-26T06:20:34.070194-05:30", 0) == T0);
    assert_true(parse_ok("2026-11-26T06:20:34.070194-0530", 0) == T0);
    assert_true(parse_ok("2026-11-26T11:50:34.070194+00:00", 1) == T0);
    assert_true(parse_ok("2026-11-26T11:50:34.070194-00:00", 1) == T0);
    /* Across a day boundary. */
    assert_true(parse_ok("2026-11-27T00:50:34.070194+13:00", 0) == T0);
    assert_true(parse_ok("2026-11-25T23:50:34.070194-12:00", 0) == T0);
}

static void test_missing_fraction(void **state)
{
    (void)state;
    assert_true(parse_ok("2026-11-26T11:50:35Z", 0) == INT64_C(1795693835000000));
    assert_true(parse_ok("2026-11-26T13:50:35+02:00", 0) == INT64_C(1795693835000000));
    assert_true(parse_ok("2026-11-26T11:50:35", 0) == INT64_C(1795693835000000));
}

static void test_fraction_digits(void **state)
{
    static const struct {
        const char *text;
        int64_t frac;
    } cases[] = {
        {"2026-11-26T11:50:35.5Z", 500000},     {"2026-11-26T11:50:35.05Z", 50000},
        {"2026-11-26T11:50:35.123Z", 123000},   {"2026-11-26T11:50:35.1234Z", 123400},
        {"2026-11-26T11:50:35.12345Z", 123450}, {"2026-11-26T11:50:35.123456Z", 123456},
        {"2026-11-26T11:50:35.000001Z", 1},     {"2026-11-26T11:50:35.999999Z", 999999},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_true(parse_ok(cases[i].text, 0) == INT64_C(1795693835000000) + cases[i].frac);
}

/* Run with TZ set to `tz`, then restore the previous zone. */
static void with_tz(const char *tz, void (*fn)(void))
{
    const char *prev = getenv("TZ");
    char *saved = prev ? strdup(prev) : NULL;

    assert_int_equal(setenv("TZ", tz, 1), 0);
    tzset();
    fn();
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void check_india(void)
{
    /* Local = UTC+05:30 (POSIX offsets count west). */
    assert_true(parse_ok("2026-11-26T17:20:34.070194", 1) == T0);
    assert_true(parse_ok("2026-11-26T11:50:34.070194", 0) == T0);
    /* An explicit offset wins over the local zone. */
    assert_true(parse_ok("2026-11-26T11:50:34.070194Z", 1) == T0);
}

static void check_new_york(void)
{
    /* Summer: EDT (UTC-4); winter: EST (UTC-5). */
    assert_true(parse_ok("2026-07-01T08:00:00", 1) == INT64_C(1782907200000000));
    assert_true(parse_ok("2026-01-01T07:00:00.000000", 1) == INT64_C(1767268800000000));
    assert_true(parse_ok("2026-07-01T12:00:00", 0) == INT64_C(1782907200000000));
}

static void test_naive_local(void **state)
{
    (void)state;
    with_tz("IST-5:30", check_india);
    with_tz("EST5EDT,M3.2.0,M11.1.0", check_new_york);
}

static void test_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "x",
        "2026-11-26",
        "2026-11-26T11:50",
        "2026-11-26 11:50:34Z",
        "2026-11-26t11:50:34Z",
        "2026-11-26T11:50:34z",
        "2026/11/26T11:50:34Z",
        "2026-1-26T11:50:34Z",
        "26-11-26T11:50:34Z",
        "2026-11-26T11:50:34.Z",
        "2026-11-26T11:50:34.1234567Z",
        "2026-11-26T11:50:34.12a",
        "2026-11-26T11:50:34Zjunk",
        "2026-11-26T11:50:34Z ",
        " 2026-11-26T11:50:34Z",
        "2026-11-26T11:50:34+5",
        "2026-11-26T11:50:34+05",
        "2026-11-26T11:50:34+05:3",
        "2026-11-26T11:50:34+05:30:00",
        "2026-11-26T11:50:34+05::30",
        "2026-11-26T11:50:34 +05:30",
        "2026-11-26T11:50:34ZZ",
        "+2026-11-26T11:50:34Z",
        "-2026-11-26T11:50:34Z",
        "2026-11-26T11:50:34.070194Z\n",
        /* Out of range. */
        "0000-01-01T00:00:00Z",
        "2026-00-26T11:50:34Z",
        "2026-13-26T11:50:34Z",
        "2026-11-00T11:50:34Z",
        "2026-11-31T11:50:34Z",
        "2026-01-32T11:50:34Z",
        "2026-02-29T11:50:34Z",
        "1900-02-29T11:50:34Z",
        "2026-04-31T11:50:34Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T11:60:34Z",
        "2026-11-26T11:50:60Z",
        "2026-11-26T11:50:99Z",
        "2026-11-26T11:50:34+24:00",
        "2026-11-26T11:50:34+05:60",
        "2026-11-26T11:50:34-99:99",
    };
    int64_t us = 42;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cpar_iso_parse(bad[i], 0, &us) != CPAR_EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
        if (cpar_iso_parse(bad[i], 1, &us) != CPAR_EINVAL)
            fail_msg("accepted as local: \"%s\"", bad[i]);
    }
    assert_true(us == 42);
    assert_int_equal(cpar_iso_parse(NULL, 0, &us), CPAR_EINVAL);
    /* Leap days that exist. */
    assert_int_equal(cpar_iso_parse("2024-02-29T00:00:00Z", 0, &us), 0);
    assert_int_equal(cpar_iso_parse("2000-02-29T00:00:00Z", 0, &us), 0);
}

static void check_format(int64_t us, const char *expect)
{
    char buf[CPAR_ISO_LEN];

    assert_string_equal(cpar_iso_format(us, buf), expect);
    assert_true(parse_ok(expect, 0) == us);
}

static void test_format_known(void **state)
{
    (void)state;
    check_format(T0, "2026-11-26T11:50:34.070194Z");
    check_format(0, "1970-01-01T00:00:00.000000Z");
    check_format(1, "1970-01-01T00:00:00.000001Z");
    check_format(INT64_C(951825600000001), "2000-02-29T12:00:00.000001Z");
    check_format(INT64_C(-1), "1969-12-31T23:59:59.999999Z");
    check_format(INT64_C(-1000000), "1969-12-31T23:59:59.000000Z");
    check_format(INT64_C(-14182940000000), "1969-07-20T20:17:40.000000Z");
    check_format(INT64_C(-2203891200000000), "1900-03-01T00:00:00.000000Z");
    check_format(INT64_C(-62135596800000000), "0001-01-01T00:00:00.000000Z");
    check_format(INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z");
}

static void test_format_clamps(void **state)
{
    char buf[CPAR_ISO_LEN];

    (void)state;
    assert_string_equal(cpar_iso_format(INT64_MIN, buf), "0001-01-01T00:00:00.000000Z");
    assert_string_equal(cpar_iso_format(INT64_C(-62135596800000001), buf),
                        "0001-01-01T00:00:00.000000Z");
    assert_string_equal(cpar_iso_format(INT64_MAX, buf), "9999-12-31T23:59:59.999999Z");
    assert_string_equal(cpar_iso_format(INT64_C(253402300800000000), buf),
                        "9999-12-31T23:59:59.999999Z");
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void test_round_trip(void **state)
{
    const int64_t lo = INT64_C(-62135596800000000), hi = INT64_C(253402300799999999);
    uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
    char buf[CPAR_ISO_LEN];

    (void)state;
    for (int i = 0; i < 200000; i++) {
        int64_t us = lo + (int64_t)(rng_next(&seed) % (uint64_t)(hi - lo + 1));
        int64_t back = 0;

        cpar_iso_format(us, buf);
        assert_int_equal(strlen(buf), CPAR_ISO_LEN - 1);
        assert_int_equal(cpar_iso_parse(buf, 0, &back), 0);
        if (back != us)
            fail_msg("%lld -> %s -> %lld", (long long)us, buf, (long long)back);
    }
}

/* The calendar arithmetic agrees with the C library's gmtime_r. */
static void test_matches_gmtime(void **state)
{
    uint64_t seed = 12345;
    char buf[CPAR_ISO_LEN], ref[64];

    (void)state;
    for (int i = 0; i < 100000; i++) {
        /* 1901..2200 */
        int64_t secs = -INT64_C(2177452800) + (int64_t)(rng_next(&seed) % UINT64_C(9467280000));
        int frac = (int)(rng_next(&seed) % 1000000);
        time_t t = (time_t)secs;
        struct tm tm;

        assert_non_null(gmtime_r(&t, &tm));
        snprintf(ref, sizeof ref, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        assert_string_equal(cpar_iso_format(secs * 1000000 + frac, buf), ref);
    }
}

static void test_now(void **state)
{
    char buf[CPAR_ISO_LEN];
    int64_t now = cpar_now_us(), back = 0;
    int64_t m1 = cpar_monotonic_us(), m2 = cpar_monotonic_us();

    (void)state;
    /* After 2020 and before 2200. */
    assert_true(now > INT64_C(1577836800000000) && now < INT64_C(7258118400000000));
    assert_int_equal(cpar_iso_parse(cpar_iso_format(now, buf), 0, &back), 0);
    assert_true(back == now);
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utc_z),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_missing_fraction),
        cmocka_unit_test(test_fraction_digits),
        cmocka_unit_test(test_naive_local),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_format_known),
        cmocka_unit_test(test_format_clamps),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_matches_gmtime),
        cmocka_unit_test(test_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
