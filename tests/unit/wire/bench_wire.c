/* bench_wire.c - rough per-message costs of the wire layer (not a test; build bench_wire). */
#include "wire/wire.h"

#include <cparallel/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 200000

/* CPU time of the process, so that other load on the machine matters less than wall time. */
static int64_t cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(const char *what, int64_t t0, int n)
{
    double ns = (double)(cpu_ns() - t0) / n;

    printf("%-52s %7.0f ns CPU/msg  %8.0f msg/s\n", what, ns, 1e9 / ns);
}

static int check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, cpar_strerror(rc));
        exit(1);
    }
    return rc;
}

int main(void)
{
    cpar_session_t tx, rx;
    cpar_msg_t *msgs = calloc(N, sizeof *msgs), m;
    json_t *meta = json_pack("{s:[], s:[], s:n, s:[], s:i}", "after", "follow", "timeout",
                             "targets", "retries", 0);
    char buf[64] = "pickled-function-and-arguments-pickled-function-and-args";
    cpar_bytes_t bufs[2] = {{buf, sizeof buf}, {buf, 16}};
    int64_t t0;
    void *ctx, *a, *b;

    if (!msgs || !meta)
        return 1;
    check(cpar_session_init(&tx, "5e3d1a2b-7c4f4e0a9b8d6c5e4f3a2b1c", NULL, NULL, NULL), "init");
    check(cpar_session_init(&rx, "5e3d1a2b-7c4f4e0a9b8d6c5e4f3a2b1c", NULL, NULL, NULL), "init");

    t0 = cpu_ns();
    for (int i = 0; i < N; i++) {
        cpar_msg_init(&msgs[i]);
        check(
            cpar_session_build(&tx, &msgs[i], NULL, 0, "apply_request", NULL, meta, NULL, bufs, 2),
            "build");
    }
    report("build (header, 4 JSON parts, sign)", t0, N);

    t0 = cpu_ns();
    for (int i = 0; i < N; i++)
        check(cpar_session_sign(&tx, &msgs[i]), "sign");
    report("sign", t0, N);

    t0 = cpu_ns();
    for (int i = 0; i < N; i++)
        check(cpar_session_verify(&rx, &msgs[i], NULL), "verify");
    report("verify (+ replay history, 65536 window)", t0, N);

    t0 = cpu_ns();
    for (int i = 0; i < N; i++) {
        cpar_msg_t *x = &msgs[i];

        x->delim = CPAR_NO_DELIM;
        json_decref(x->header);
        x->header = NULL;
        check(cpar_msg_split(x), "split");
        check(cpar_msg_parse(x, CPAR_PARSE_HEADER), "parse");
    }
    report("split + parse header", t0, N);

    /* Relay path on inproc: DEALER -> ROUTER (recv, split, verify, parse header, swap) ->
     * DEALER; every side runs on this one thread, so this overstates one relay's cost. */
    ctx = zmq_ctx_new();
    a = zmq_socket(ctx, ZMQ_DEALER);
    b = zmq_socket(ctx, ZMQ_ROUTER);
    {
        int zero = 0;

        zmq_setsockopt(a, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(a, ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt(b, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(b, ZMQ_RCVHWM, &zero, sizeof zero);
    }
    zmq_bind(b, "inproc://bench");
    zmq_connect(a, "inproc://bench");
    cpar_session_fini(&rx);
    check(cpar_session_init(&rx, "5e3d1a2b-7c4f4e0a9b8d6c5e4f3a2b1c", NULL, NULL, NULL), "init");
    cpar_msg_init(&m);
    t0 = cpu_ns();
    for (int i = 0; i < N; i += 1000) {
        for (int k = i; k < i + 1000; k++)
            check(cpar_msg_send(&msgs[k], a), "send");
        for (int k = 0; k < 1000; k++) {
            zmq_pollitem_t it = {b, 0, ZMQ_POLLIN, 0};

            while (cpar_msg_recv(&m, b, 0) == CPAR_EAGAIN)
                zmq_poll(&it, 1, 1000);
            check(cpar_msg_split(&m), "split");
            check(cpar_session_verify(&rx, &m, NULL), "verify");
            check(cpar_msg_parse(&m, CPAR_PARSE_HEADER), "parse");
            check(cpar_msg_send(&m, b), "send back");
        }
        for (int k = 0; k < 1000; k++) {
            zmq_pollitem_t it = {a, 0, ZMQ_POLLIN, 0};

            while (cpar_msg_recv(&m, a, 0) == CPAR_EAGAIN)
                zmq_poll(&it, 1, 1000);
        }
    }
    report("send + relay (recv/split/verify/parse/send) + recv", t0, N);

    cpar_msg_fini(&m);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    for (int i = 0; i < N; i++)
        cpar_msg_fini(&msgs[i]);
    free(msgs);
    json_decref(meta);
    cpar_session_fini(&tx);
    cpar_session_fini(&rx);
    return 0;
}
