/* test_zmq.c - the wire layer on real ZeroMQ sockets (inproc and tcp on the loopback). */
#include "wire_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG (8u << 20)
#define KEY_FOR_TESTS "zmq-test-key"

typedef struct {
    void *ctx, *router, *dealer;
} pair_t;

static void set_int(void *sock, int opt, int v)
{
    assert_int_equal(zmq_setsockopt(sock, opt, &v, sizeof v), 0);
}

/* A ROUTER and a DEALER (identity "dealer-1") connected over `transport` ("inproc" or "tcp"). */
static void pair_open(pair_t *p, const char *transport)
{
    static int serial;
    char ep[256];
    size_t len = sizeof ep;

    p->ctx = zmq_ctx_new();
    assert_non_null(p->ctx);
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    assert_non_null(p->router);
    assert_non_null(p->dealer);
    set_int(p->router, ZMQ_LINGER, 0);
    set_int(p->dealer, ZMQ_LINGER, 0);
    set_int(p->router, ZMQ_SNDHWM, 0);
    set_int(p->router, ZMQ_RCVHWM, 0);
    assert_int_equal(zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, "dealer-1", 8), 0);
    if (strcmp(transport, "inproc") == 0) {
        snprintf(ep, sizeof ep, "inproc://wire-test-%d", serial++);
        assert_int_equal(zmq_bind(p->router, ep), 0);
    } else {
        assert_int_equal(zmq_bind(p->router, "tcp://127.0.0.1:*"), 0);
        assert_int_equal(zmq_getsockopt(p->router, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    }
    assert_int_equal(zmq_connect(p->dealer, ep), 0);
}

static void pair_close(pair_t *p)
{
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
}

/* Wait up to 10 s for input, then cpar_msg_recv(). */
static int recv_wait(cpar_msg_t *m, void *sock, size_t max_bytes)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};

    if (zmq_poll(&item, 1, 10000) != 1)
        fail_msg("nothing arrived");
    return cpar_msg_recv(m, sock, max_bytes);
}

/* Send raw frames given as C strings. */
static void send_strs(void *sock, const char *const *frames, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = strlen(frames[i]);

        assert_int_equal(zmq_send(sock, frames[i], len, i + 1 < n ? ZMQ_SNDMORE : 0), (int)len);
    }
}

static unsigned char *pattern(size_t len, unsigned seed)
{
    unsigned char *b = malloc(len);

    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)((i * 131 + seed) ^ (i >> 13));
    return b;
}

static void roundtrip(const char *transport)
{
    pair_t p;
    cpar_session_t tx, rx;
    cpar_msg_t out, in, back, orig;
    unsigned char *big = pattern(BIG, 7);
    cpar_bytes_t bufs[3] = {{big, BIG}, {"", 0}, {"tail", 4}};
    json_t *content = json_pack("{s:s}", "code", "x = '\xc3\xa9'");
    const void *relayed;

    pair_open(&p, transport);
    assert_int_equal(cpar_session_init(&tx, KEY_FOR_TESTS, NULL, NULL, NULL), 0);
    assert_int_equal(cpar_session_init(&rx, KEY_FOR_TESTS, NULL, NULL, NULL), 0);
    cpar_msg_init(&out);
    cpar_msg_init(&in);
    cpar_msg_init(&back);
    cpar_msg_init(&orig);

    assert_int_equal(
        cpar_session_build(&tx, &out, NULL, 0, "execute_request", NULL, NULL, content, bufs, 3), 0);
    assert_int_equal(cpar_msg_copy(&orig, &out), 0);
    assert_int_equal(cpar_msg_send(&out, p.dealer), 0);
    assert_int_equal(out.n, 0);
    assert_null(out.content);

    /* The ROUTER sees the dealer's identity in front, and every frame byte for byte. */
    assert_int_equal(recv_wait(&in, p.router, 0), 0);
    assert_int_equal(in.n, orig.n + 1);
    assert_int_equal(in.total, orig.total + 8);
    assert_int_equal(cpar_msg_frame(&in, 0).len, 8);
    assert_memory_equal(cpar_msg_frame(&in, 0).data, "dealer-1", 8);
    for (size_t i = 0; i < orig.n; i++)
        assert_true(wt_frame_equal(&in, i + 1, &orig, i));
    assert_int_equal(cpar_msg_split(&in), 0);
    assert_int_equal(cpar_msg_nidents(&in), 1);
    assert_int_equal(cpar_msg_nbuffers(&in), 3);
    assert_int_equal(cpar_session_verify(&rx, &in, NULL), 0);
    assert_int_equal(cpar_msg_parse(&in, CPAR_PARSE_HEADER | CPAR_PARSE_CONTENT), 0);
    assert_string_equal(cpar_msg_type(&in), "execute_request");
    assert_true(json_equal(in.content, content));

    /* Relay it back: the frames are moved, not copied (inproc hands over the same buffer). */
    relayed = cpar_msg_frame(&in, in.delim + CPAR_PART_BUFFERS).data;
    assert_int_equal(cpar_msg_send(&in, p.router), 0);
    assert_int_equal(in.n, 0);
    assert_int_equal(recv_wait(&back, p.dealer, 0), 0);
    assert_int_equal(back.n, orig.n);
    for (size_t i = 0; i < orig.n; i++)
        assert_true(wt_frame_equal(&back, i, &orig, i));
    if (strcmp(transport, "inproc") == 0)
        assert_ptr_equal(cpar_msg_frame(&back, CPAR_PART_BUFFERS).data, relayed);
    assert_memory_equal(cpar_msg_frame(&back, CPAR_PART_BUFFERS).data, big, BIG);

    /* Nothing else is waiting. */
    assert_int_equal(cpar_msg_recv(&back, p.dealer, 0), CPAR_EAGAIN);
    assert_int_equal(back.n, 0);
    assert_int_equal(cpar_msg_recv(&in, p.router, 0), CPAR_EAGAIN);

    cpar_msg_fini(&out);
    cpar_msg_fini(&in);
    cpar_msg_fini(&back);
    cpar_msg_fini(&orig);
    cpar_session_fini(&tx);
    cpar_session_fini(&rx);
    json_decref(content);
    free(big);
    pair_close(&p);
}

static void test_roundtrip_inproc(void **state)
{
    (void)state;
    roundtrip("inproc");
}

static void test_roundtrip_tcp(void **state)
{
    (void)state;
    roundtrip("tcp");
}

static void test_max_bytes(void **state)
{
    pair_t p;
    cpar_msg_t m;
    unsigned char *chunk = pattern(1 << 20, 3);
    static const char *const small[] = {CPAR_DELIM, "", "{}", "{}", "{}", "{\"n\":2}"};

    (void)state;
    pair_open(&p, "inproc");
    cpar_msg_init(&m);
    /* 3 MiB in five frames (the limit is crossed in the middle), then a small message. */
    assert_int_equal(zmq_send(p.dealer, CPAR_DELIM, CPAR_DELIM_LEN, ZMQ_SNDMORE), CPAR_DELIM_LEN);
    assert_int_equal(zmq_send(p.dealer, "", 0, ZMQ_SNDMORE), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(zmq_send(p.dealer, chunk, 1 << 20, ZMQ_SNDMORE), 1 << 20);
    assert_int_equal(zmq_send(p.dealer, "end", 3, 0), 3);
    send_strs(p.dealer, small, 6);

    assert_int_equal(recv_wait(&m, p.router, (1 << 20) + 100), CPAR_E2BIG);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.total, 0);
    /* The socket is at the start of the next message. */
    assert_int_equal(recv_wait(&m, p.router, (1 << 20) + 100), 0);
    assert_int_equal(m.n, 7);
    assert_memory_equal(cpar_msg_frame(&m, 0).data, "dealer-1", 8);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_CONTENT), 0);
    assert_int_equal(json_integer_value(json_object_get(m.content, "n")), 2);
    assert_int_equal(cpar_msg_recv(&m, p.router, 0), CPAR_EAGAIN);

    /* A message of exactly the limit passes; one byte more does not. */
    send_strs(p.dealer, small, 6);
    assert_int_equal(recv_wait(&m, p.router, 8 + 9 + 0 + 2 + 2 + 2 + 7), 0);
    send_strs(p.dealer, small, 6);
    assert_int_equal(recv_wait(&m, p.router, 8 + 9 + 0 + 2 + 2 + 2 + 6), CPAR_E2BIG);
    /* Over the limit in the very last frame: nothing to drain. */
    send_strs(p.dealer, small, 6);
    assert_int_equal(recv_wait(&m, p.router, 8 + 9 + 0 + 2 + 2 + 2), CPAR_E2BIG);
    send_strs(p.dealer, small, 6);
    assert_int_equal(recv_wait(&m, p.router, 0), 0);
    assert_int_equal(m.n, 7);

    cpar_msg_fini(&m);
    free(chunk);
    pair_close(&p);
}

static void test_malformed(void **state)
{
    static const char *const nodelim[] = {"a", "b", "{}", "{}", "{}", "{}", "{}"};
    static const char *const short5[] = {CPAR_DELIM, "sig", "{}", "{}", "{}"};
    static const char *const nonobj[] = {CPAR_DELIM, "", "{\"msg_type\":\"x\"}", "[]", "{}", "{}"};
    static const char *const garbage[] = {CPAR_DELIM, "", "{\"msg_type\":", "{}", "{}", "{}"};
    pair_t p;
    cpar_msg_t m;
    cpar_session_t s;
    const char *why = NULL;

    (void)state;
    pair_open(&p, "inproc");
    cpar_msg_init(&m);
    assert_int_equal(cpar_session_init(&s, KEY_FOR_TESTS, NULL, NULL, NULL), 0);

    send_strs(p.dealer, nodelim, 7);
    assert_int_equal(recv_wait(&m, p.router, 0), 0);
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);
    assert_int_equal(cpar_session_verify(&s, &m, &why), CPAR_EPROTO);
    assert_string_equal(why, "malformed message");

    send_strs(p.dealer, short5, 5);
    assert_int_equal(recv_wait(&m, p.router, 0), 0);
    assert_int_equal(m.n, 6);
    assert_int_equal(cpar_msg_split(&m), CPAR_EPROTO);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), CPAR_EPROTO);

    send_strs(p.dealer, nonobj, 6);
    assert_int_equal(recv_wait(&m, p.router, 0), 0);
    assert_int_equal(cpar_msg_split(&m), 0);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), 0);
    assert_string_equal(cpar_msg_type(&m), "x");
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_PARENT), CPAR_EPROTO);
    assert_null(m.parent);
    /* Unsigned, for a session with a key. */
    assert_int_equal(cpar_session_verify(&s, &m, &why), CPAR_EPROTO);
    assert_string_equal(why, "unsigned message");

    send_strs(p.dealer, garbage, 6);
    assert_int_equal(recv_wait(&m, p.router, 0), 0);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), CPAR_EPROTO);
    assert_null(m.header);

    cpar_session_fini(&s);
    cpar_msg_fini(&m);
    pair_close(&p);
}

static void test_session_send(void **state)
{
    pair_t p;
    cpar_msg_t m, req;
    cpar_session_t hub, client;
    cpar_bytes_t id;
    json_t *content = json_pack("{s:s}", "status", "ok");
    static const char *const q[] = {CPAR_DELIM, "", "{\"msg_id\":\"q1\"}", "{}", "{}", "{}"};

    (void)state;
    pair_open(&p, "tcp");
    cpar_msg_init(&m);
    cpar_msg_init(&req);
    assert_int_equal(cpar_session_init(&hub, KEY_FOR_TESTS, NULL, "hub", NULL), 0);
    assert_int_equal(cpar_session_init(&client, KEY_FOR_TESTS, NULL, NULL, NULL), 0);

    /* Reply to a request, routed by the identity it came with. */
    send_strs(p.dealer, q, 6);
    assert_int_equal(recv_wait(&req, p.router, 0), 0);
    assert_int_equal(cpar_msg_parse(&req, CPAR_PARSE_HEADER), 0);
    id = cpar_msg_frame(&req, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cpar_session_send(&hub, p.router, &id, 1, "queue_reply", req.header, NULL,
                                           content, NULL, 0),
                         0);
        assert_int_equal(recv_wait(&m, p.dealer, 0), 0);
        assert_int_equal(m.n, 6);
        assert_int_equal(cpar_msg_split(&m), 0);
        assert_int_equal(cpar_session_verify(&client, &m, NULL), 0);
        assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_ALL), 0);
        assert_string_equal(cpar_msg_type(&m), "queue_reply");
        assert_string_equal(cpar_msg_parent_id(&m), "q1");
        assert_true(json_equal(m.content, content));
    }
    {
        json_t *arr = json_array();

        assert_int_equal(cpar_session_send(&hub, p.router, &id, 1, "x", NULL, arr, NULL, NULL, 0),
                         CPAR_EINVAL);
        json_decref(arr);
    }

    /* Unroutable: dropped silently, or CPAR_ENOENT with ZMQ_ROUTER_MANDATORY. */
    id.data = "nobody";
    id.len = 6;
    assert_int_equal(
        cpar_session_send(&hub, p.router, &id, 1, "queue_reply", NULL, NULL, NULL, NULL, 0), 0);
    set_int(p.router, ZMQ_ROUTER_MANDATORY, 1);
    assert_int_equal(
        cpar_session_send(&hub, p.router, &id, 1, "queue_reply", NULL, NULL, NULL, NULL, 0),
        CPAR_ENOENT);
    /* The socket still works afterwards. */
    id = cpar_msg_frame(&req, 0);
    assert_int_equal(cpar_session_send(&hub, p.router, &id, 1, "last", NULL, NULL, NULL, NULL, 0),
                     0);
    assert_int_equal(recv_wait(&m, p.dealer, 0), 0);
    assert_int_equal(cpar_msg_parse(&m, CPAR_PARSE_HEADER), 0);
    assert_string_equal(cpar_msg_type(&m), "last");
    /* Sending nothing is refused. */
    cpar_msg_clear(&m);
    assert_int_equal(cpar_msg_send(&m, p.dealer), CPAR_EINVAL);

    json_decref(content);
    cpar_session_fini(&hub);
    cpar_session_fini(&client);
    cpar_msg_fini(&m);
    cpar_msg_fini(&req);
    pair_close(&p);
}

int wt_run_zmq_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_inproc), cmocka_unit_test(test_roundtrip_tcp),
        cmocka_unit_test(test_max_bytes),        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_session_send),
    };
    return cmocka_run_group_tests_name("wire_zmq", tests, NULL, NULL);
}
