/* test_fixtures.c - the wire layer against messages serialized by Python's jupyter_client. */
#include "wire_test.h"

#include "util/clock.h"

#include <stdlib.h>
#include <string.h>

#define FOR_EACH_MESSAGE(i, e)                                                                     \
    for (size_t i = 0;                                                                             \
         i < json_array_size(wt_messages()) && ((e) = json_array_get(wt_messages(), i)); i++)

static void fixture_session(cpar_session_t *s, const json_t *e)
{
    assert_int_equal(cpar_session_init(s, wt_key(), wt_str(e, "scheme"), NULL, NULL), 0);
}

static void load(const json_t *e, cpar_msg_t *m)
{
    wt_load(wt_str(e, "file"), m);
    assert_int_equal(cpar_msg_split(m), 0);
}

static void test_split(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        size_t nid = (size_t)json_integer_value(json_object_get(e, "nidents"));
        size_t nbuf = (size_t)json_integer_value(json_object_get(e, "nbuffers"));
        cpar_bytes_t d;

        load(e, &m);
        assert_int_equal(m.delim, nid);
        assert_int_equal(cpar_msg_nidents(&m), nid);
        assert_int_equal(cpar_msg_nbuffers(&m), nbuf);
        d = cpar_msg_frame(&m, m.delim);
        assert_int_equal(d.len, CPAR_DELIM_LEN);
        assert_memory_equal(d.data, CPAR_DELIM, CPAR_DELIM_LEN);
    }
    /* apply_request's last buffer is the delimiter itself: the first one wins. */
    wt_load("apply_request.frames", &m);
    assert_int_equal(cpar_msg_split(&m), 0);
    assert_int_equal(m.delim, 0);
    assert_true(wt_frame_equal(&m, m.n - 1, &m, 0));
    cpar_msg_fini(&m);
}

static void test_verify_genuine(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        cpar_session_t s;
        const char *why = "unset";

        fixture_session(&s, e);
        load(e, &m);
        assert_int_equal(cpar_session_verify(&s, &m, &why), 0);
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&m);
}

/* Flip one byte of frame i in place (the fixture's frames are private copies). */
static void flip(cpar_msg_t *m, size_t i, size_t at)
{
    unsigned char *p = zmq_msg_data(&m->f[i]);

    assert_true(at < zmq_msg_size(&m->f[i]));
    p[at] ^= 0x01;
}

static void test_verify_tampered(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        cpar_session_t s;

        fixture_session(&s, e);
        for (int part = CPAR_PART_SIG; part <= CPAR_PART_CONTENT; part++) {
            size_t len;

            load(e, &m);
            len = cpar_msg_frame(&m, m.delim + (size_t)part).len;
            for (size_t at = 0; at < len; at += len / 3 + 1) {
                const char *why = NULL;

                load(e, &m);
                flip(&m, m.delim + (size_t)part, at);
                assert_int_equal(cpar_session_verify(&s, &m, &why), CPAR_EPROTO);
                assert_string_equal(why, "invalid signature");
            }
        }
        /* A truncated or upper-case signature is not the signature either. */
        load(e, &m);
        {
            char *sig = wt_frame_dup(&m, m.delim + CPAR_PART_SIG);
            const char *why = NULL;
            cpar_msg_t t;

            cpar_msg_init(&t);
            for (int k = 0; k < 2; k++) {
                cpar_msg_clear(&t);
                for (size_t f = 0; f < m.n; f++) {
                    cpar_bytes_t b = cpar_msg_frame(&m, f);

                    if (f != m.delim + CPAR_PART_SIG) {
                        assert_int_equal(cpar_msg_append(&t, b.data, b.len), 0);
                    } else if (k == 0) {
                        assert_int_equal(cpar_msg_append(&t, sig, strlen(sig) - 1), 0);
                    } else {
                        for (char *p = sig; *p; p++)
                            *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
                        wt_append_str(&t, sig);
                    }
                }
                assert_int_equal(cpar_msg_split(&t), 0);
                assert_int_equal(cpar_session_verify(&s, &t, &why), CPAR_EPROTO);
                assert_string_equal(why, "invalid signature");
            }
            cpar_msg_fini(&t);
            free(sig);
        }
        /* Rejected messages never entered the history: the genuine one still passes. */
        load(e, &m);
        assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
        /* Buffers are not signed. */
        if (cpar_msg_nbuffers(&m) > 0) {
            cpar_session_t s2;

            fixture_session(&s2, e);
            flip(&m, m.delim + CPAR_PART_BUFFERS, 0);
            assert_int_equal(cpar_session_verify(&s2, &m, NULL), 0);
            cpar_session_fini(&s2);
        }
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&m);
}

static void test_verify_unsigned_message(void **state)
{
    cpar_msg_t m, t;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    cpar_msg_init(&t);
    FOR_EACH_MESSAGE(i, e)
    {
        cpar_session_t s;
        const char *why = NULL;

        fixture_session(&s, e);
        load(e, &m);
        cpar_msg_clear(&t);
        for (size_t f = 0; f < m.n; f++) {
            cpar_bytes_t b = cpar_msg_frame(&m, f);

            if (f == m.delim + CPAR_PART_SIG)
                b.len = 0;
            assert_int_equal(cpar_msg_append(&t, b.data, b.len), 0);
        }
        assert_int_equal(cpar_msg_split(&t), 0);
        assert_int_equal(cpar_session_verify(&s, &t, &why), CPAR_EPROTO);
        assert_string_equal(why, "unsigned message");
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&t);
    cpar_msg_fini(&m);
}

static void test_verify_duplicate(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        cpar_session_t s;
        const char *why = NULL;

        fixture_session(&s, e);
        load(e, &m);
        assert_int_equal(cpar_session_verify(&s, &m, &why), 0);
        assert_int_equal(cpar_session_verify(&s, &m, &why), CPAR_EPROTO);
        assert_string_equal(why, "duplicate signature");
        /* Also when the same frames arrive again with other routing identities. */
        assert_int_equal(cpar_msg_prepend_ident(&m, "other", 5), 0);
        why = NULL;
        assert_int_equal(cpar_session_verify(&s, &m, &why), CPAR_EPROTO);
        assert_string_equal(why, "duplicate signature");
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&m);
}

static void test_unsigned_session_accepts_all(void **state)
{
    cpar_msg_t m;
    json_t *e;
    cpar_session_t s;

    (void)state;
    cpar_msg_init(&m);
    assert_int_equal(cpar_session_init(&s, "", NULL, NULL, NULL), 0);
    assert_int_equal(s.keylen, 0);
    assert_int_equal(s.siglen, 0);
    FOR_EACH_MESSAGE(i, e)
    {
        load(e, &m);
        assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
        assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
        flip(&m, m.delim + CPAR_PART_CONTENT, 0);
        flip(&m, m.delim + CPAR_PART_SIG, 0);
        assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
    }
    cpar_session_fini(&s);
    assert_int_equal(cpar_session_init(&s, NULL, "hmac-sha512", NULL, NULL), 0);
    assert_int_equal(s.keylen, 0);
    load(json_array_get(wt_messages(), 0), &m);
    assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
    /* Signing for an unsigned session writes an empty signature. */
    assert_int_equal(cpar_session_sign(&s, &m), 0);
    assert_int_equal(cpar_msg_frame(&m, m.delim + CPAR_PART_SIG).len, 0);
    cpar_session_fini(&s);
    cpar_msg_fini(&m);
}

static void test_sign_matches_python(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        cpar_session_t s;
        const char *expect = wt_str(e, "signature");
        char *got;
        size_t total;

        fixture_session(&s, e);
        load(e, &m);
        assert_int_equal(s.siglen, strlen(expect));
        got = wt_frame_dup(&m, m.delim + CPAR_PART_SIG);
        assert_string_equal(got, expect);
        free(got);
        /* Spoil the signature, then recompute it. */
        flip(&m, m.delim + CPAR_PART_SIG, 3);
        total = m.total;
        assert_int_equal(cpar_session_sign(&s, &m), 0);
        got = wt_frame_dup(&m, m.delim + CPAR_PART_SIG);
        assert_string_equal(got, expect);
        free(got);
        assert_int_equal(m.total, total);
        assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&m);
}

static void test_parse(void **state)
{
    cpar_msg_t m;
    json_t *e;

    (void)state;
    cpar_msg_init(&m);
    FOR_EACH_MESSAGE(i, e)
    {
        json_t *parts = json_object_get(e, "parts"),
               *parent_id = json_object_get(e, "parent_msg_id");
        json_t **got[4];
        int64_t us = 0;

        load(e, &m);
        assert_null(cpar_msg_type(&m));
        assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), 0);
        assert_non_null(m.header);
        assert_null(m.parent);
        assert_null(m.content);
        assert_string_equal(cpar_msg_type(&m), wt_str(e, "msg_type"));
        assert_string_equal(cpar_msg_id(&m), wt_str(e, "msg_id"));
        assert_null(cpar_msg_parent_id(&m));
        assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
        if (json_is_null(parent_id))
            assert_null(cpar_msg_parent_id(&m));
        else
            assert_string_equal(cpar_msg_parent_id(&m), json_string_value(parent_id));
        got[0] = &m.header;
        got[1] = &m.parent;
        got[2] = &m.metadata;
        got[3] = &m.content;
        for (int p = 0; p < 4; p++) {
            if (!json_equal(*got[p], json_array_get(parts, (size_t)p))) {
                char *a = json_dumps(*got[p], 0),
                     *b = json_dumps(json_array_get(parts, (size_t)p), 0);

                fail_msg("%s part %d: %s != %s", wt_str(e, "name"), p, a, b);
            }
        }
        /* Dates as Python wrote them, with and without a fraction. */
        assert_string_equal(wt_str(m.header, "date"), wt_str(e, "date"));
        assert_int_equal(cpar_iso_parse(wt_str(m.header, "date"), 0, &us), 0);
        assert_true(us == json_integer_value(json_object_get(e, "date_us")));
    }
    cpar_msg_fini(&m);
}

static void test_non_ascii_and_big_int(void **state)
{
    cpar_msg_t m;
    const char *code;

    (void)state;
    cpar_msg_init(&m);
    wt_load("execute_request.frames", &m);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
    code = wt_str(m.content, "code");
    assert_string_equal(code,
                        "print('h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"
                        "\xe8\xaa\x9e \xf0\x9f\x98\x80')");
    wt_load("routed_reply.frames", &m);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_METADATA), 0);
    assert_true(json_is_integer(json_object_get(m.metadata, "big")));
    assert_true(json_integer_value(json_object_get(m.metadata, "big")) ==
                (json_int_t)((UINT64_C(1) << 62) + 1));
    cpar_msg_fini(&m);
}

/* The four JSON frames of a and b (split) hold the same bytes. */
static void assert_same_json(const cpar_msg_t *a, const cpar_msg_t *b)
{
    for (int p = CPAR_PART_SIG; p <= CPAR_PART_CONTENT; p++)
        assert_true(wt_frame_equal(a, a->delim + (size_t)p, b, b->delim + (size_t)p));
    assert_int_equal(cpar_msg_nbuffers(a), cpar_msg_nbuffers(b));
    for (size_t i = 0; i < cpar_msg_nbuffers(a); i++)
        assert_true(wt_frame_equal(a, a->delim + CPAR_PART_BUFFERS + i, b,
                                   b->delim + CPAR_PART_BUFFERS + i));
}

static void test_ident_surgery(void **state)
{
    cpar_msg_t orig, m;
    cpar_session_t s;
    json_t *e = NULL;
    size_t total;

    (void)state;
    cpar_msg_init(&orig);
    cpar_msg_init(&m);
    for (size_t i = 0; i < json_array_size(wt_messages()); i++) {
        if (strcmp(wt_str(json_array_get(wt_messages(), i), "name"), "routed_reply") == 0)
            e = json_array_get(wt_messages(), i);
    }
    assert_non_null(e);
    load(e, &orig);
    load(e, &m);
    assert_int_equal(m.delim, 2);

    assert_int_equal(cpar_msg_swap_idents(&m), 0);
    assert_true(wt_frame_equal(&m, 0, &orig, 1));
    assert_true(wt_frame_equal(&m, 1, &orig, 0));
    assert_int_equal(m.delim, 2);
    assert_same_json(&m, &orig);
    assert_int_equal(m.total, orig.total);

    total = m.total;
    assert_int_equal(cpar_msg_prepend_ident(&m, "\x00\x01\x02", 3), 0);
    assert_int_equal(m.delim, 3);
    assert_int_equal(cpar_msg_nidents(&m), 3);
    assert_int_equal(m.total, total + 3);
    assert_int_equal(cpar_msg_frame(&m, 0).len, 3);
    assert_memory_equal(cpar_msg_frame(&m, 0).data, "\x00\x01\x02", 3);
    assert_true(wt_frame_equal(&m, 1, &orig, 1));
    assert_same_json(&m, &orig);

    assert_int_equal(cpar_msg_drop_idents(&m, 2), 0);
    assert_int_equal(m.delim, 1);
    assert_true(wt_frame_equal(&m, 0, &orig, 0));
    assert_same_json(&m, &orig);
    assert_int_equal(m.total, orig.total - cpar_msg_frame(&orig, 1).len);

    assert_int_equal(cpar_msg_drop_idents(&m, 1), 0);
    assert_int_equal(m.delim, 0);
    assert_same_json(&m, &orig);

    /* Still Python's signature over the same bytes. */
    assert_int_equal(cpar_session_init(&s, wt_key(), NULL, NULL, NULL), 0);
    assert_int_equal(cpar_session_verify(&s, &m, NULL), 0);
    cpar_session_fini(&s);

    /* Out-of-range surgery is refused and changes nothing. */
    assert_int_equal(cpar_msg_swap_idents(&m), CPAR_EINVAL);
    assert_int_equal(cpar_msg_drop_idents(&m, 1), CPAR_EINVAL);
    assert_int_equal(cpar_msg_prepend_ident(&m, "a", 1), 0);
    assert_int_equal(cpar_msg_swap_idents(&m), CPAR_EINVAL);
    assert_int_equal(cpar_msg_drop_idents(&m, 2), CPAR_EINVAL);
    assert_int_equal(cpar_msg_drop_idents(&m, 0), 0);
    assert_int_equal(m.delim, 1);
    assert_same_json(&m, &orig);

    cpar_msg_fini(&m);
    cpar_msg_fini(&orig);
}

/* [ident, delim, "", the four known-answer parts set through cpar_msg_set_part()] */
static void known_message(cpar_msg_t *m, const json_t *parts)
{
    cpar_msg_clear(m);
    assert_int_equal(cpar_msg_append(m, "id", 2), 0);
    assert_int_equal(cpar_msg_append(m, CPAR_DELIM, CPAR_DELIM_LEN), 0);
    for (int p = 0; p < 5; p++)
        assert_int_equal(cpar_msg_append(m, "{}", 2), 0);
    assert_int_equal(cpar_msg_split(m), 0);
    for (int p = 0; p < 4; p++) {
        const char *text = json_string_value(json_array_get(parts, (size_t)p));
        json_t *v = json_loads(text, 0, NULL);
        char *enc;

        assert_non_null(v);
        assert_int_equal(cpar_msg_set_part(m, CPAR_PART_HEADER + p, v), 0);
        enc = wt_frame_dup(m, m->delim + CPAR_PART_HEADER + (size_t)p);
        /* jansson's compact encoding is byte for byte Python's with (",", ":"). */
        assert_string_equal(enc, text);
        free(enc);
        json_decref(v);
    }
}

static void test_known_answer(void **state)
{
    json_t *ka = json_object_get(wt_manifest(), "known_answer");
    json_t *parts = json_object_get(ka, "parts"), *sigs = json_object_get(ka, "signatures");
    cpar_msg_t m;

    (void)state;
    assert_int_equal(json_array_size(parts), 4);
    assert_true(json_array_size(sigs) >= 12);
    cpar_msg_init(&m);
    for (size_t i = 0; i < json_array_size(sigs); i++) {
        json_t *e = json_array_get(sigs, i);
        const char *scheme = wt_str(e, "scheme"), *key = wt_str(e, "key");
        cpar_session_t s, r;
        char *sig;

        if (cpar_session_init(&s, key, scheme, NULL, NULL) != 0)
            fail_msg("scheme %s refused", scheme);
        known_message(&m, parts);
        assert_int_equal(cpar_session_sign(&s, &m), 0);
        sig = wt_frame_dup(&m, m.delim + CPAR_PART_SIG);
        if (strcmp(sig, wt_str(e, "signature")) != 0)
            fail_msg("%s, key of %zu bytes: %s, Python %s", scheme, strlen(key), sig,
                     wt_str(e, "signature"));
        free(sig);
        assert_int_equal(cpar_session_init(&r, key, scheme, NULL, NULL), 0);
        assert_int_equal(cpar_session_verify(&r, &m, NULL), 0);
        cpar_session_fini(&r);
        cpar_session_fini(&s);
    }
    cpar_msg_fini(&m);
}

int wt_run_fixture_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_verify_genuine),
        cmocka_unit_test(test_verify_tampered),
        cmocka_unit_test(test_verify_unsigned_message),
        cmocka_unit_test(test_verify_duplicate),
        cmocka_unit_test(test_unsigned_session_accepts_all),
        cmocka_unit_test(test_sign_matches_python),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_non_ascii_and_big_int),
        cmocka_unit_test(test_ident_surgery),
        cmocka_unit_test(test_known_answer),
    };
    return cmocka_run_group_tests_name("wire_fixtures", tests, NULL, NULL);
}
