/* test_scan.c - single-field JSON scanning (scan.c), checked against jansson on the same text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <cparallel/errors.h>

#include "wire/wire.h"

static void test_finds_top_level_only(void **state)
{
    const char *s = "{\"parent\": {\"msg_id\": \"inner\"}, \"list\": [\"msg_id\", {\"a\": \"}\"}],"
                    " \"msg_id\" : \"outer\" }";
    char buf[64];

    (void)state;
    assert_int_equal(cpar_json_scan_str(s, strlen(s), "msg_id", buf, sizeof buf), 0);
    assert_string_equal(buf, "outer");
}

static void test_raw_values(void **state)
{
    const char *s = "{\"after\":[],\"timeout\":0.0,\"retries\":0,\"met\":false,\"x\":null,"
                    "\"d\":{\"dependencies\":[\"a\"],\"all\":true}}";
    const char *v;
    size_t n;

    (void)state;
    assert_int_equal(cpar_json_scan(s, strlen(s), "after", &v, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "[]", 2);
    assert_int_equal(cpar_json_scan(s, strlen(s), "timeout", &v, &n), 0);
    assert_memory_equal(v, "0.0", 3);
    assert_int_equal(cpar_json_scan(s, strlen(s), "met", &v, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(cpar_json_scan(s, strlen(s), "d", &v, &n), 0);
    assert_memory_equal(v, "{\"dependencies\":[\"a\"],\"all\":true}", n);
    assert_int_equal(cpar_json_scan(s, strlen(s), "nope", &v, &n), CPAR_ENOENT);
}

/* Escapes decode exactly as jansson decodes them. */
static void test_escapes_match_jansson(void **state)
{
    const char *s = "{\"k\": \"q\\\"b\\\\s\\/n\\n\\u00e9\\u20ac\\ud83d\\ude00 caf\xc3\xa9\"}";
    json_t *j = json_loads(s, 0, NULL);
    char buf[128];

    (void)state;
    assert_non_null(j);
    assert_int_equal(cpar_json_scan_str(s, strlen(s), "k", buf, sizeof buf), 0);
    assert_string_equal(buf, json_string_value(json_object_get(j, "k")));
    json_decref(j);
}

static void test_refuses_what_is_not_an_object(void **state)
{
    static const char *const bad[] = {
        "", "[]", "\"s\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x",
        "{\"a\":\"unterminated}", "{\"a\":[1,2}", "{a:1}", "{\"a\":\"\x01\"}",
    };
    const char *v;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cpar_json_scan(bad[i], strlen(bad[i]), "a", &v, &n), CPAR_EPROTO);
    assert_int_equal(cpar_json_scan("{}", 2, "a", &v, &n), CPAR_ENOENT);
}

static void test_string_errors(void **state)
{
    const char *num = "{\"a\": 12}", *nul = "{\"a\": \"x\\u0000y\"}", *lone = "{\"a\": \"\\udc00\"}",
               *longv = "{\"a\": \"0123456789\"}";
    char buf[8];

    (void)state;
    assert_int_equal(cpar_json_scan_str(num, strlen(num), "a", buf, sizeof buf), CPAR_EINVAL);
    assert_int_equal(cpar_json_scan_str(nul, strlen(nul), "a", buf, sizeof buf), CPAR_EINVAL);
    assert_int_equal(cpar_json_scan_str(lone, strlen(lone), "a", buf, sizeof buf), CPAR_EPROTO);
    assert_int_equal(cpar_json_scan_str(longv, strlen(longv), "a", buf, sizeof buf), CPAR_E2BIG);
}

/* A real header as jupyter_client writes it (with spaces after separators). */
static void test_jupyter_header(void **state)
{
    const char *h = "{\"msg_id\": \"c9ba71fe-209a54a992e0052016421289_14906_1\", \"msg_type\": "
                    "\"apply_request\", \"username\": \"username\", \"session\": "
                    "\"c9ba71fe-209a54a992e0052016421289\", \"date\": "
                    "\"2026-11-26T11:50:34.070194Z\", \"version\": \"5.3\"}";
    char buf[128];

    (void)state;
    assert_int_equal(cpar_json_scan_str(h, strlen(h), "msg_type", buf, sizeof buf), 0);
    assert_string_equal(buf, "apply_request");
    assert_int_equal(cpar_json_scan_str(h, strlen(h), "date", buf, sizeof buf), 0);
    assert_string_equal(buf, "2026-11-26T11:50:34.070194Z");
}

/* Several keys in one walk; absent keys come back empty; the first occurrence wins. */
static void test_many_keys(void **state)
{
    const char *s = "{\"status\": \"ok\", \"nested\": {\"engine\": \"no\"}, \"engine\": \"e1\","
                    " \"status\": \"later\"}";
    const char *const keys[] = {"engine", "missing", "status"};
    cpar_bytes_t v[3];
    char buf[16];

    (void)state;
    assert_int_equal(cpar_json_scan_keys(s, strlen(s), keys, 3, v), 0);
    assert_int_equal(cpar_json_str(v[0], buf, sizeof buf), 0);
    assert_string_equal(buf, "e1");
    assert_null(v[1].data);
    assert_int_equal(cpar_json_str(v[1], buf, sizeof buf), CPAR_ENOENT);
    assert_int_equal(cpar_json_str(v[2], buf, sizeof buf), 0);
    assert_string_equal(buf, "ok");
    assert_int_equal(cpar_json_scan_keys("{\"a\": [", 7, keys, 3, v), CPAR_EPROTO);
}

/* A small fixed-seed generator, so that a failure is the same failure on every run. */
static uint32_t rnd(uint64_t *st)
{
    *st = *st * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*st >> 33);
}

/* A string value's JSON text: plain bytes, escapes, UTF-8, and (when `bad`) one raw control. */
static size_t random_string(uint64_t *st, char *o, int bad)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         "0",
                                         "-",
                                         " ",
                                         ":",
                                         "{",
                                         "]",
                                         ",",
                                         "\\\"",
                                         "\\\\",
                                         "\\/",
                                         "\\n",
                                         "\\t",
                                         "\\u00e9",
                                         "\\u20ac",
                                         "\\ud83d\\ude00",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\x7f"};
    size_t n = 0, len = rnd(st) % 40, badat = bad ? rnd(st) % (len + 1) : (size_t)-1;

    o[n++] = '"';
    for (size_t i = 0; i <= len; i++) {
        const char *pc = pieces[rnd(st) % (sizeof pieces / sizeof pieces[0])];

        if (i == badat)
            o[n++] = (char)(1 + rnd(st) % 0x1f);
        if (i < len) {
            memcpy(o + n, pc, strlen(pc));
            n += strlen(pc);
        }
    }
    o[n++] = '"';
    return n;
}

/*
 * Strings are crossed eight bytes at a time, so every stop byte (quote, backslash, control) is
 * put at every position of a block, at every alignment of the text: the scanner must agree
 * with jansson on each value, and refuse exactly the texts jansson refuses.
 */
static void test_random_strings_match_jansson(void **state)
{
    static const char *const keys[] = {"k0", "k1", "k2", "k3"};
    uint64_t st = 42;
    char text[1024], shifted[1024 + 8], buf[512];

    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t n = 0, shift = (size_t)round % 8;
        int bad = round % 5 == 0;
        json_t *j;
        cpar_bytes_t v[4];
        int rc;

        text[n++] = '{';
        for (int k = 0; k < 4; k++) {
            n += (size_t)sprintf(text + n, "%s\"%s\": ", k ? ", " : "", keys[k]);
            n += random_string(&st, text + n, bad && k == round % 4);
        }
        text[n++] = '}';
        memcpy(shifted + shift, text, n);
        j = json_loadb(text, n, 0, NULL);
        rc = cpar_json_scan_keys(shifted + shift, n, keys, 4, v);
        if (bad) {
            assert_null(j);
            assert_int_equal(rc, CPAR_EPROTO);
            continue;
        }
        assert_non_null(j);
        assert_int_equal(rc, 0);
        for (int k = 0; k < 4; k++) {
            assert_int_equal(cpar_json_str(v[k], buf, sizeof buf), 0);
            assert_string_equal(buf, json_string_value(json_object_get(j, keys[k])));
        }
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_top_level_only),
        cmocka_unit_test(test_raw_values),
        cmocka_unit_test(test_escapes_match_jansson),
        cmocka_unit_test(test_refuses_what_is_not_an_object),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test(test_jupyter_header),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_random_strings_match_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
