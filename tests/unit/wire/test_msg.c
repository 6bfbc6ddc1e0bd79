/* test_msg.c - frames, splitting, JSON parts, copies and encodings, without sockets. */
#include "wire_test.h"

#include <stdlib.h>
#include <string.h>

/* [idents..., delim, sig, the given JSON parts...] */
static void make(cpar_msg_t *m, int nidents, const char *const *parts, int nparts)
{
    cpar_msg_clear(m);
    for (int i = 0; i < nidents; i++)
        assert_int_equal(cpar_msg_append(m, "ident", 5), 0);
    wt_append_str(m, CPAR_DELIM);
    wt_append_str(m, "");
    for (int i = 0; i < nparts; i++)
        wt_append_str(m, parts[i]);
}

static void test_init_clear_reuse(void **state)
{
    cpar_msg_t m;
    zmq_msg_t *array;
    size_t cap;

    (void)state;
    cpar_msg_init(&m);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.delim, CPAR_NO_DELIM);
    assert_int_equal(cpar_msg_nidents(&m), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cpar_msg_append(&m, "x", 1), 0);
    assert_int_equal(m.n, 100);
    assert_int_equal(m.total, 100);
    assert_true(m.cap >= 100);
    array = m.f;
    cap = m.cap;
    cpar_msg_clear(&m);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.total, 0);
    assert_int_equal(m.delim, CPAR_NO_DELIM);
    /* The array is kept for the next message. */
    assert_ptr_equal(m.f, array);
    assert_int_equal(m.cap, cap);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cpar_msg_append(&m, "yy", 2), 0);
    assert_ptr_equal(m.f, array);
    assert_int_equal(m.total, 200);
    assert_int_equal(cpar_msg_frame(&m, 99).len, 2);
    assert_null(cpar_msg_frame(&m, 100).data);
    assert_int_equal(cpar_msg_frame(&m, 100).len, 0);
    cpar_msg_fini(&m);
    assert_null(m.f);
    assert_int_equal(m.cap, 0);
    /* Clearing and finishing an empty message are no-ops. */
    cpar_msg_clear(&m);
    cpar_msg_fini(&m);
}

/* Copying one of m's own small frames while m's array grows. */
static void test_append_own_frame(void **state)
{
    cpar_msg_t m;

    (void)state;
    cpar_msg_init(&m);
    wt_append_str(&m, "abc");
    for (int i = 0; i < 40; i++) {
        cpar_bytes_t b = cpar_msg_frame(&m, m.n - 1);

        assert_int_equal(cpar_msg_append(&m, b.data, b.len), 0);
    }
    for (int i = 0; i < 40; i++) {
        cpar_bytes_t b = cpar_msg_frame(&m, m.n - 1);

        assert_int_equal(cpar_msg_prepend_ident(&m, b.data, b.len), 0);
    }
    assert_int_equal(m.n, 81);
    for (size_t i = 0; i < m.n; i++) {
        assert_int_equal(cpar_msg_frame(&m, i).len, 3);
        assert_memory_equal(cpar_msg_frame(&m, i).data, "abc", 3);
    }
    cpar_msg_fini(&m);
}

static void test_split_malformed(void **state)
{
    static const char *const four[] = {"{}", "{}", "{}", "{}"};
    static const char *const five[] = {"{}", "{}", "{}", "{}", "buf"};
    cpar_msg_t m;

    (void)state;
    cpar_msg_init(&m);
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);

    /* No delimiter at all. */
    wt_append_str(&m, "a");
    wt_append_str(&m, "b");
    for (int i = 0; i < 6; i++)
        wt_append_str(&m, "{}");
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);
    assert_int_equal(m.delim, CPAR_NO_DELIM);

    /* A near miss: same length, other bytes; a prefix of the delimiter. */
    cpar_msg_clear(&m);
    wt_append_str(&m, "<IDS|MSG]");
    wt_append_str(&m, "<IDS|MSG");
    for (int i = 0; i < 6; i++)
        wt_append_str(&m, "{}");
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);

    /* Signature and only three JSON parts after the delimiter. */
    make(&m, 2, four, 3);
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);
    assert_int_equal(m.delim, CPAR_NO_DELIM);
    assert_int_equal(cpar_msg_nidents(&m), 0);

    /* Exactly five frames after it is enough; the buffers may be none. */
    make(&m, 2, four, 4);
    assert_int_equal(cpar_msg_split(&m), 0);
    assert_int_equal(m.delim, 2);
    assert_int_equal(cpar_msg_nbuffers(&m), 0);
    make(&m, 0, five, 5);
    assert_int_equal(cpar_msg_split(&m), 0);
    assert_int_equal(m.delim, 0);
    assert_int_equal(cpar_msg_nbuffers(&m), 1);

    /* Parsing an unsplittable message fails the same way. */
    make(&m, 1, four, 3);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), CPAR_EPROTO);
    assert_null(m.header);
    cpar_msg_fini(&m);
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "[]",
        "[{}]",
        "1",
        "\"text\"",
        "null",
        "true",
        "",
        " ",
        "{",
        "{\"a\":}",
        "{} {}",
        "{\"a\":1}x",
        "{'a':1}",
        "{\"a\":NaN}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc3\"}",
    };
    cpar_msg_t m;

    (void)state;
    cpar_msg_init(&m);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int part = CPAR_PART_HEADER; part <= CPAR_PART_CONTENT; part++) {
            const char *parts[4] = {"{\"msg_type\":\"x\"}", "{}", "{}", "{}"};
            unsigned bit = 1u << (part - CPAR_PART_HEADER);
            json_t *got[4];

            parts[part - CPAR_PART_HEADER] = bad[i];
            make(&m, 0, parts, 4);
            assert_int_equal(cpar_msg_split(&m), 0);
            if (cpar_msg_parse(&m, bit) != CPAR_EPROTO)
                fail_msg("accepted \"%s\" as part %d", bad[i], part);
            got[0] = m.header;
            got[1] = m.parent;
            got[2] = m.metadata;
            got[3] = m.content;
            assert_null(got[part - CPAR_PART_HEADER]);
            assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), CPAR_EPROTO);
            /* The good parts before the bad one were still parsed. */
            if (part != CPAR_PART_HEADER)
                assert_non_null(m.header);
        }
    }
    cpar_msg_fini(&m);
}

static void test_parse_accepts(void **state)
{
    static const char *const parts[] = {
        "{\"msg_type\": \"apply_request\", \"msg_id\": \"a\\u00e9\", \"n\": 9223372036854775807}",
        "{\"msg_id\":\"p\",\"nul\":\"a\\u0000b\",\"esc\":\"\\ud83d\\ude00\"}",
        "  {\"huge\": 123456789012345678901234567890, \"small\": 3}  ",
        "{\"dup\": 1, \"dup\": 2, \"neg\": -9223372036854775808}",
    };
    cpar_msg_t m;
    json_t *nul;

    (void)state;
    cpar_msg_init(&m);
    make(&m, 1, parts, 4);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
    assert_string_equal(cpar_msg_type(&m), "apply_request");
    assert_string_equal(cpar_msg_id(&m), "a\xc3\xa9");
    assert_string_equal(cpar_msg_parent_id(&m), "p");
    assert_true(json_integer_value(json_object_get(m.header, "n")) == INT64_MAX);
    nul = json_object_get(m.parent, "nul");
    assert_int_equal(json_string_length(nul), 3);
    assert_memory_equal(json_string_value(nul), "a\0b", 3);
    assert_string_equal(json_string_value(json_object_get(m.parent, "esc")), "\xf0\x9f\x98\x80");
    /* Beyond 64 bits the part is kept, with numbers as reals. */
    assert_true(json_is_real(json_object_get(m.metadata, "huge")));
    assert_true(json_real_value(json_object_get(m.metadata, "huge")) > 1e29);
    assert_true(json_number_value(json_object_get(m.metadata, "small")) == 3.0);
    /* Duplicate keys: the last wins, as in Python. */
    assert_int_equal(json_integer_value(json_object_get(m.content, "dup")), 2);
    assert_true(json_integer_value(json_object_get(m.content, "neg")) == INT64_MIN);

    /* Parsing again keeps the parsed objects. */
    {
        json_t *h = m.header;

        assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
        assert_ptr_equal(m.header, h);
    }
    /* Field accessors on a header without them. */
    make(&m, 0, (const char *const[]){"{\"msg_type\":5}", "{\"msg_id\":null}", "{}", "{}"}, 4);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
    assert_null(cpar_msg_type(&m));
    assert_null(cpar_msg_id(&m));
    assert_null(cpar_msg_parent_id(&m));
    cpar_msg_fini(&m);
}

static void test_set_part(void **state)
{
    static const char *const parts[] = {"{\"msg_type\": \"a\"}", "{}", "{}", "{}"};
    cpar_msg_t m;
    json_t *v = json_pack("{s:s, s:i, s:[i,i]}", "z", "\xc3\xa9", "a", 1, "l", 1, 2);
    json_t *arr = json_array();
    char *text;
    size_t total;

    (void)state;
    cpar_msg_init(&m);
    make(&m, 1, parts, 4);
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_CONTENT, v), CPAR_EINVAL); /* not split */
    assert_int_equal(cpar_msg_split(&m), 0);
    total = m.total;
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_CONTENT, v), 0);
    assert_ptr_equal(m.content, v);
    assert_int_equal(v->refcount, 2);
    text = wt_frame_dup(&m, m.delim + CPAR_PART_CONTENT);
    assert_string_equal(text, "{\"z\":\"\xc3\xa9\",\"a\":1,\"l\":[1,2]}");
    assert_int_equal(m.total, total - 2 + strlen(text));
    free(text);
    /* Replacing a parsed part drops the old object. */
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), 0);
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_HEADER, v), 0);
    assert_ptr_equal(m.header, v);
    assert_int_equal(v->refcount, 3);

    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_SIG, v), CPAR_EINVAL);
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_BUFFERS, v), CPAR_EINVAL);
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_METADATA, arr), CPAR_EINVAL);
    assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_METADATA, NULL), CPAR_EINVAL);
    assert_null(m.metadata);

    /* A large object (beyond the encoder's stack buffer). */
    {
        json_t *big = json_object();
        char key[32];

        for (int i = 0; i < 2000; i++) {
            snprintf(key, sizeof key, "key%d", i);
            json_object_set_new(big, key, json_integer(i));
        }
        assert_int_equal(cpar_msg_set_part(&m, CPAR_PART_METADATA, big), 0);
        text = wt_frame_dup(&m, m.delim + CPAR_PART_METADATA);
        {
            char *expect = cpar_json_dumps(big);

            assert_string_equal(text, expect);
            free(expect);
        }
        free(text);
        json_decref(big);
    }
    cpar_msg_fini(&m);
    assert_int_equal(v->refcount, 1);
    json_decref(v);
    json_decref(arr);
}

static void test_copy(void **state)
{
    static const char *const parts[] = {"{\"msg_id\": \"m1\"}", "{}", "{}", "{\"k\": [1]}"};
    cpar_msg_t src, dst;
    json_t *h;
    char big[4096];

    (void)state;
    memset(big, 'b', sizeof big);
    cpar_msg_init(&src);
    cpar_msg_init(&dst);
    make(&src, 2, parts, 4);
    assert_int_equal(cpar_msg_append(&src, big, sizeof big), 0);
    assert_int_equal(cpar_msg_parse(&src, CPAR_PARSE_HEADER | CPAR_PARSE_CONTENT), 0);
    wt_append_str(&dst, "old");
    assert_int_equal(cpar_msg_copy(&dst, &src), 0);
    assert_int_equal(dst.n, src.n);
    assert_int_equal(dst.delim, src.delim);
    assert_int_equal(dst.total, src.total);
    for (size_t i = 0; i < src.n; i++)
        assert_true(wt_frame_equal(&dst, i, &src, i));
    /* Large frames share their data. */
    assert_ptr_equal(cpar_msg_frame(&dst, src.n - 1).data, cpar_msg_frame(&src, src.n - 1).data);
    /* Parsed parts are independent copies. */
    assert_non_null(dst.header);
    assert_true(dst.header != src.header && json_equal(dst.header, src.header));
    assert_null(dst.parent);
    json_array_append_new(json_object_get(dst.content, "k"), json_integer(2));
    assert_int_equal(json_array_size(json_object_get(src.content, "k")), 1);
    h = json_pack("{s:s}", "msg_id", "m2");
    assert_int_equal(cpar_msg_set_part(&dst, CPAR_PART_HEADER, h), 0);
    json_decref(h);
    assert_string_equal(cpar_msg_id(&src), "m1");
    assert_string_equal(cpar_msg_id(&dst), "m2");
    assert_false(
        wt_frame_equal(&dst, dst.delim + CPAR_PART_HEADER, &src, src.delim + CPAR_PART_HEADER));
    assert_int_equal(cpar_msg_copy(&src, &src), CPAR_EINVAL);
    cpar_msg_fini(&dst);
    /* The source outlives the copy's frames and vice versa. */
    assert_int_equal(cpar_msg_frame(&src, src.n - 1).len, sizeof big);
    cpar_msg_fini(&src);
}

static void test_append_move(void **state)
{
    cpar_msg_t m;
    zmq_msg_t f;
    const void *data;

    (void)state;
    cpar_msg_init(&m);
    assert_int_equal(zmq_msg_init_size(&f, 1000), 0);
    memset(zmq_msg_data(&f), 7, 1000);
    data = zmq_msg_data(&f);
    assert_int_equal(cpar_msg_append_move(&m, &f), 0);
    assert_int_equal(zmq_msg_size(&f), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.total, 1000);
    assert_ptr_equal(cpar_msg_frame(&m, 0).data, data);
    zmq_msg_close(&f);
    assert_int_equal(cpar_msg_append(&m, NULL, 0), 0);
    assert_int_equal(cpar_msg_append(&m, NULL, 1), CPAR_EINVAL);
    assert_int_equal(cpar_msg_prepend_ident(&m, NULL, 1), CPAR_EINVAL);
    assert_int_equal(m.n, 2);
    /* Prepending to an unsplit message works too. */
    assert_int_equal(cpar_msg_prepend_ident(&m, "p", 1), 0);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.delim, CPAR_NO_DELIM);
    assert_int_equal(cpar_msg_frame(&m, 1).len, 1000);
    cpar_msg_fini(&m);
}

static void test_json_dumps(void **state)
{
    json_t *v;
    char *s;

    (void)state;
    v = json_object();
    json_object_set_new(v, "zeta",
                        json_string("\xe6\x97\xa5\xe6\x9c\xac \xc3\xa9 \xf0\x9f\x98\x80"));
    json_object_set_new(v, "alpha", json_integer(INT64_MAX));
    json_object_set_new(v, "min", json_integer(INT64_MIN));
    json_object_set_new(v, "mid", json_pack("[s, n, b, {}]", "a/b\"\\\n", 0));
    s = cpar_json_dumps(v);
    assert_string_equal(s, "{\"zeta\":\"\xe6\x97\xa5\xe6\x9c\xac \xc3\xa9 \xf0\x9f\x98\x80\","
                           "\"alpha\":9223372036854775807,\"min\":-9223372036854775808,"
                           "\"mid\":[\"a/b\\\"\\\\\\n\",null,false,{}]}");
    free(s);
    json_decref(v);
    /* Any value, not only objects. */
    v = json_string("x");
    s = cpar_json_dumps(v);
    assert_string_equal(s, "\"x\"");
    free(s);
    json_decref(v);
    v = json_integer(-5);
    s = cpar_json_dumps(v);
    assert_string_equal(s, "-5");
    free(s);
    json_decref(v);
}

static void test_error_content(void **state)
{
    json_t *c = cpar_error_content("KeyError", "'No such message: nonexistent'");
    json_t *tb;
    char *s;

    (void)state;
    assert_non_null(c);
    s = cpar_json_dumps(c);
    assert_string_equal(s, "{\"status\":\"error\",\"ename\":\"KeyError\","
                           "\"evalue\":\"'No such message: nonexistent'\","
                           "\"traceback\":[\"KeyError: 'No such message: nonexistent'\"],"
                           "\"engine_info\":{}}");
    free(s);
    tb = json_object_get(c, "traceback");
    assert_true(json_is_array(tb));
    assert_true(json_is_string(json_array_get(tb, 0)));
    assert_int_equal(json_object_size(json_object_get(c, "engine_info")), 0);
    json_decref(c);

    c = cpar_error_content("EngineError", NULL);
    assert_string_equal(json_string_value(json_object_get(c, "evalue")), "");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "traceback"), 0)),
                        "EngineError: ");
    json_decref(c);
    c = cpar_error_content(NULL, "x \xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(c, "ename")), "Exception");
    json_decref(c);
    assert_null(cpar_error_content("E", "\xff"));
}

int wt_run_msg_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_clear_reuse),
        cmocka_unit_test(test_append_own_frame),
        cmocka_unit_test(test_split_malformed),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_set_part),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_append_move),
        cmocka_unit_test(test_json_dumps),
        cmocka_unit_test(test_error_content),
    };
    return cmocka_run_group_tests_name("wire_msg", tests, NULL, NULL);
}
