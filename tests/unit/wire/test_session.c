/* test_session.c - sessions: schemes, headers, building and signing, the replay window. */
#include "wire_test.h"

#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "a-shared-key"

static void test_init_schemes(void **state)
{
    static const struct {
        const char *scheme;
        size_t siglen;
    } ok[] = {
        {NULL, 64},          {"hmac-sha256", 64},    {"hmac-sha512", 128}, {"hmac-sha1", 40},
        {"hmac-md5", 32},    {"hmac-sha224", 56},    {"hmac-sha384", 96},  {"hmac-sha3_256", 64},
        {"hmac-SHA256", 64}, {"hmac-sha3-512", 128},
    };
    static const char *const bad[] = {
        "",
        "sha256",
        "hmac-",
        "hmac-nope",
        "hmac_sha256",
        "HMAC-sha256",
        "hmac-shake128",
        "hmac-sha256 ",
    };
    cpar_session_t s;

    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (cpar_session_init(&s, KEY, ok[i].scheme, NULL, NULL) != 0)
            fail_msg("scheme %s refused", ok[i].scheme ? ok[i].scheme : "(null)");
        assert_int_equal(s.siglen, ok[i].siglen);
        assert_int_equal(s.keylen, strlen(KEY));
        assert_memory_equal(s.key, KEY, s.keylen);
        cpar_session_fini(&s);
        assert_null(s.digests);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cpar_session_init(&s, KEY, bad[i], NULL, NULL) != CPAR_EINVAL)
            fail_msg("scheme \"%s\" accepted", bad[i]);
        assert_null(s.digests);
        cpar_session_fini(&s);
    }
}

static void test_init_ids(void **state)
{
    cpar_session_t s;
    char longid[80];

    (void)state;
    assert_int_equal(cpar_session_init(&s, KEY, NULL, NULL, NULL), 0);
    /* A fresh id looks like ipyparallel's: 8 hex, '-', 24 hex. */
    assert_int_equal(strlen(s.session), 33);
    for (int i = 0; i < 33; i++) {
        if (i == 8)
            assert_int_equal(s.session[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", s.session[i]));
    }
    assert_string_equal(s.username, "username");
    assert_int_equal(s.pid, (unsigned long)getpid());
    assert_int_equal(s.counter, 0);
    assert_int_equal(s.digest_limit, 65536);
    {
        cpar_session_t t;

        assert_int_equal(cpar_session_init(&t, KEY, NULL, NULL, NULL), 0);
        assert_string_not_equal(s.session, t.session);
        cpar_session_fini(&t);
    }
    cpar_session_fini(&s);

    assert_int_equal(cpar_session_init(&s, KEY, NULL, "engine-\xc3\xa9", "alice"), 0);
    assert_string_equal(s.session, "engine-\xc3\xa9");
    assert_string_equal(s.username, "alice");
    cpar_session_fini(&s);

    memset(longid, 'a', 63);
    longid[63] = '\0';
    assert_int_equal(cpar_session_init(&s, KEY, NULL, longid, NULL), 0);
    cpar_session_fini(&s);
    longid[63] = 'a';
    longid[64] = '\0';
    assert_int_equal(cpar_session_init(&s, KEY, NULL, longid, NULL), CPAR_EINVAL);
    assert_int_equal(cpar_session_init(&s, KEY, NULL, NULL, longid), CPAR_EINVAL);
    assert_int_equal(cpar_session_init(&s, KEY, NULL, "bad\xff", NULL), CPAR_EINVAL);
    assert_int_equal(cpar_session_init(&s, KEY, NULL, NULL, "bad\xc3"), CPAR_EINVAL);
    cpar_session_fini(&s);
}

static void test_header(void **state)
{
    static const char *const order[] = {"msg_id",  "msg_type", "username",
                                        "session", "date",     "version"};
    cpar_session_t s;
    json_t *h;
    const char *key;
    json_t *value;
    size_t i = 0;
    char expect[128];
    int64_t before = cpar_now_us(), us = 0;

    (void)state;
    assert_int_equal(cpar_session_init(&s, KEY, NULL, "sess-1", "bob"), 0);
    h = cpar_session_header(&s, "db_request");
    assert_non_null(h);
    json_object_foreach(h, key, value)
    {
        assert_true(i < 6);
        assert_string_equal(key, order[i]);
        assert_true(json_is_string(value));
        i++;
    }
    assert_int_equal(i, 6);
    snprintf(expect, sizeof expect, "sess-1_%lu_0", (unsigned long)getpid());
    assert_string_equal(wt_str(h, "msg_id"), expect);
    assert_string_equal(wt_str(h, "msg_type"), "db_request");
    assert_string_equal(wt_str(h, "username"), "bob");
    assert_string_equal(wt_str(h, "session"), "sess-1");
    assert_string_equal(wt_str(h, "version"), "5.3");
    assert_int_equal(strlen(wt_str(h, "date")), CPAR_ISO_LEN - 1);
    assert_int_equal(wt_str(h, "date")[CPAR_ISO_LEN - 2], 'Z');
    assert_int_equal(cpar_iso_parse(wt_str(h, "date"), 0, &us), 0);
    assert_true(us >= before && us <= cpar_now_us());
    json_decref(h);

    h = cpar_session_header(&s, "db_request");
    snprintf(expect, sizeof expect, "sess-1_%lu_1", (unsigned long)getpid());
    assert_string_equal(wt_str(h, "msg_id"), expect);
    json_decref(h);
    assert_null(cpar_session_header(&s, NULL));
    assert_null(cpar_session_header(&s, "\xff"));
    cpar_session_fini(&s);
}

static void test_build_verify(void **state)
{
    cpar_session_t a, b, other;
    cpar_msg_t m;
    json_t *parent, *content, *meta;
    cpar_bytes_t idents[2] = {{"\x00\x80\x00\x00\x29", 5}, {"engine", 6}};
    char bigbuf[70000];
    cpar_bytes_t bufs[3] = {{"b0", 2}, {NULL, 0}, {bigbuf, sizeof bigbuf}};
    const char *why = NULL;
    size_t total = 0;

    (void)state;
    memset(bigbuf, 0xab, sizeof bigbuf);
    assert_int_equal(cpar_session_init(&a, KEY, NULL, "hub", NULL), 0);
    assert_int_equal(cpar_session_init(&b, KEY, NULL, "client", NULL), 0);
    assert_int_equal(cpar_session_init(&other, "another key", NULL, NULL, NULL), 0);
    cpar_msg_init(&m);
    parent = cpar_session_header(&b, "queue_request");
    content = json_pack("{s:s, s:s}", "status", "ok", "text", "\xe6\x97\xa5\xe6\x9c\xac");
    meta = json_object();
    wt_append_str(&m, "stale");
    assert_int_equal(
        cpar_session_build(&a, &m, idents, 2, "queue_reply", parent, meta, content, bufs, 3), 0);
    assert_int_equal(m.delim, 2);
    assert_int_equal(m.n, 2 + 6 + 3);
    for (size_t i = 0; i < m.n; i++)
        total += cpar_msg_frame(&m, i).len;
    assert_int_equal(m.total, total);
    assert_memory_equal(cpar_msg_frame(&m, 0).data, "\x00\x80\x00\x00\x29", 5);
    assert_memory_equal(cpar_msg_frame(&m, 2).data, CPAR_DELIM, CPAR_DELIM_LEN);
    assert_int_equal(cpar_msg_frame(&m, 3).len, 64);
    assert_int_equal(cpar_msg_frame(&m, m.delim + CPAR_PART_BUFFERS + 1).len, 0);
    assert_memory_equal(cpar_msg_frame(&m, m.n - 1).data, bigbuf, sizeof bigbuf);
    /* Parsed parts are set, and the frames say the same. */
    assert_string_equal(cpar_msg_type(&m), "queue_reply");
    assert_ptr_equal(m.parent, parent);
    assert_ptr_equal(m.content, content);
    assert_string_equal(cpar_msg_parent_id(&m), wt_str(parent, "msg_id"));
    {
        cpar_msg_t c;

        cpar_msg_init(&c);
        for (size_t i = 0; i < m.n; i++) {
            cpar_bytes_t f = cpar_msg_frame(&m, i);

            assert_int_equal(cpar_msg_append(&c, f.data, f.len), 0);
        }
        assert_int_equal(cpar_msg_parse(&c, CPAR_PARSE_ALL), 0);
        assert_true(json_equal(c.header, m.header));
        assert_true(json_equal(c.parent, parent));
        assert_true(json_equal(c.metadata, meta));
        assert_true(json_equal(c.content, content));
        /* Another process with the key accepts it once; another key does not. */
        assert_int_equal(cpar_session_verify(&other, &c, &why), CPAR_EPROTO);
        assert_string_equal(why, "invalid signature");
        assert_int_equal(cpar_session_verify(&b, &c, &why), 0);
        assert_int_equal(cpar_session_verify(&b, &m, &why), CPAR_EPROTO);
        assert_string_equal(why, "duplicate signature");
        cpar_msg_fini(&c);
    }

    /* Defaults: {} parts, no idents, no buffers; consecutive msg_ids. */
    assert_int_equal(cpar_session_build(&a, &m, NULL, 0, "ping", NULL, NULL, NULL, NULL, 0), 0);
    assert_int_equal(m.delim, 0);
    assert_int_equal(m.n, 6);
    for (int p = CPAR_PART_PARENT; p <= CPAR_PART_CONTENT; p++) {
        char *t = wt_frame_dup(&m, (size_t)p);

        assert_string_equal(t, "{}");
        free(t);
    }
    assert_true(json_is_object(m.parent) && json_object_size(m.parent) == 0);
    {
        char expect[64];

        snprintf(expect, sizeof expect, "hub_%lu_1", (unsigned long)getpid());
        assert_string_equal(cpar_msg_id(&m), expect);
    }
    assert_int_equal(cpar_session_verify(&b, &m, NULL), 0);

    /* Bad arguments leave the message empty. */
    {
        json_t *arr = json_array();

        assert_int_equal(cpar_session_build(&a, &m, NULL, 0, "x", NULL, arr, NULL, NULL, 0),
                         CPAR_EINVAL);
        json_decref(arr);
    }
    assert_int_equal(m.n, 0);
    assert_int_equal(cpar_session_build(&a, &m, NULL, 1, "x", NULL, NULL, NULL, NULL, 0),
                     CPAR_EINVAL);
    assert_int_equal(cpar_session_build(&a, &m, NULL, 0, NULL, NULL, NULL, NULL, NULL, 0),
                     CPAR_EINVAL);
    assert_int_equal(m.n, 0);

    cpar_msg_fini(&m);
    json_decref(parent);
    json_decref(content);
    json_decref(meta);
    cpar_session_fini(&a);
    cpar_session_fini(&b);
    cpar_session_fini(&other);
}

/* A reply built in place of its request, from the request's own identity and header. */
static void test_build_in_place(void **state)
{
    cpar_session_t hub, client;
    cpar_msg_t m;
    cpar_bytes_t id;
    json_t *req_header;

    (void)state;
    assert_int_equal(cpar_session_init(&hub, KEY, NULL, "hub", NULL), 0);
    assert_int_equal(cpar_session_init(&client, KEY, NULL, "client", NULL), 0);
    cpar_msg_init(&m);
    {
        cpar_bytes_t cid = {"\x00\x80\x00\x00\x29", 5};

        assert_int_equal(
            cpar_session_build(&client, &m, &cid, 1, "queue_request", NULL, NULL, NULL, NULL, 0),
            0);
    }
    req_header = json_deep_copy(m.header);
    for (int round = 0; round < 3; round++) {
        id = cpar_msg_frame(&m, 0);
        assert_int_equal(
            cpar_session_build(&hub, &m, &id, 1, "queue_reply", m.header, m.content, NULL, &id, 1),
            0);
        assert_int_equal(m.delim, 1);
        assert_memory_equal(cpar_msg_frame(&m, 0).data, "\x00\x80\x00\x00\x29", 5);
        assert_memory_equal(cpar_msg_frame(&m, m.n - 1).data, "\x00\x80\x00\x00\x29", 5);
        assert_string_equal(cpar_msg_type(&m), "queue_reply");
        if (round == 0)
            assert_true(json_equal(m.parent, req_header));
        assert_int_equal(cpar_session_verify(&client, &m, NULL), 0);
    }
    json_decref(req_header);
    cpar_msg_fini(&m);
    cpar_session_fini(&hub);
    cpar_session_fini(&client);
}

/* Build n distinct signed messages from `from`. */
static cpar_msg_t *make_messages(cpar_session_t *from, size_t n)
{
    cpar_msg_t *msgs = calloc(n, sizeof *msgs);

    assert_non_null(msgs);
    for (size_t i = 0; i < n; i++) {
        cpar_msg_init(&msgs[i]);
        assert_int_equal(
            cpar_session_build(from, &msgs[i], NULL, 0, "m", NULL, NULL, NULL, NULL, 0), 0);
    }
    return msgs;
}

static void free_messages(cpar_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cpar_msg_fini(&msgs[i]);
    free(msgs);
}

static void test_replay_eviction(void **state)
{
    cpar_session_t tx, rx;
    cpar_msg_t *msgs;
    const char *why = NULL;
    const size_t limit = 4;

    (void)state;
    assert_int_equal(cpar_session_init(&tx, KEY, NULL, NULL, NULL), 0);
    assert_int_equal(cpar_session_init(&rx, KEY, NULL, NULL, NULL), 0);
    rx.digest_limit = limit;
    msgs = make_messages(&tx, limit + 1);
    for (size_t i = 0; i < limit; i++)
        assert_int_equal(cpar_session_verify(&rx, &msgs[i], NULL), 0);
    /* Window full: all of them are still remembered. */
    for (size_t i = 0; i < limit; i++) {
        assert_int_equal(cpar_session_verify(&rx, &msgs[i], &why), CPAR_EPROTO);
        assert_string_equal(why, "duplicate signature");
    }
    /* One more evicts the oldest, which is then accepted again (and evicts the second). */
    assert_int_equal(cpar_session_verify(&rx, &msgs[limit], NULL), 0);
    assert_int_equal(cpar_session_verify(&rx, &msgs[0], NULL), 0);
    assert_int_equal(cpar_session_verify(&rx, &msgs[limit], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[2], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[1], NULL), 0);

    /* Shrinking keeps the newest: of [3, 4, 0, 1] only 0 and 1 stay remembered. */
    rx.digest_limit = 2;
    assert_int_equal(cpar_session_verify(&rx, &msgs[1], &why), CPAR_EPROTO);
    assert_string_equal(why, "duplicate signature");
    assert_int_equal(cpar_session_verify(&rx, &msgs[0], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[3], NULL), 0);
    assert_int_equal(cpar_session_verify(&rx, &msgs[1], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[limit], NULL), 0);
    assert_int_equal(cpar_session_verify(&rx, &msgs[3], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[1], NULL), 0);
    /* Growing keeps everything. */
    rx.digest_limit = 1000;
    assert_int_equal(cpar_session_verify(&rx, &msgs[1], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[limit], &why), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&rx, &msgs[0], NULL), 0);
    assert_int_equal(cpar_session_verify(&rx, &msgs[0], &why), CPAR_EPROTO);

    /* No history at all. */
    rx.digest_limit = 0;
    for (int k = 0; k < 3; k++)
        assert_int_equal(cpar_session_verify(&rx, &msgs[0], NULL), 0);
    free_messages(msgs, limit + 1);
    cpar_session_fini(&tx);
    cpar_session_fini(&rx);
}

/* xorshift64*, deterministic. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* The hash table against a plain FIFO model, with many evictions and repeats. */
static void test_replay_model(void **state)
{
    enum { POOL = 3000, LIMIT = 700, ROUNDS = 40000 };
    cpar_session_t tx, rx;
    cpar_msg_t *msgs;
    int *fifo = calloc(LIMIT, sizeof *fifo);
    size_t head = 0, count = 0;
    uint64_t seed = 42;

    (void)state;
    assert_non_null(fifo);
    assert_int_equal(cpar_session_init(&tx, KEY, NULL, NULL, NULL), 0);
    assert_int_equal(cpar_session_init(&rx, KEY, NULL, NULL, NULL), 0);
    rx.digest_limit = LIMIT;
    msgs = make_messages(&tx, POOL);
    for (int r = 0; r < ROUNDS; r++) {
        int k = (int)(rng_next(&seed) % POOL), seen = 0, rc;

        for (size_t i = 0; i < count && !seen; i++)
            seen = fifo[i] == k;
        rc = cpar_session_verify(&rx, &msgs[k], NULL);
        if (rc != (seen ? CPAR_EPROTO : 0))
            fail_msg("round %d message %d: got %d, model says %s", r, k, rc,
                     seen ? "duplicate" : "new");
        if (!seen) {
            fifo[head] = k;
            head = (head + 1) % LIMIT;
            if (count < LIMIT)
                count++;
        }
    }
    free_messages(msgs, POOL);
    free(fifo);
    cpar_session_fini(&tx);
    cpar_session_fini(&rx);
}

int wt_run_session_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_schemes),   cmocka_unit_test(test_init_ids),
        cmocka_unit_test(test_header),         cmocka_unit_test(test_build_verify),
        cmocka_unit_test(test_build_in_place), cmocka_unit_test(test_replay_eviction),
        cmocka_unit_test(test_replay_model),
    };
    return cmocka_run_group_tests_name("wire_session", tests, NULL, NULL);
}
