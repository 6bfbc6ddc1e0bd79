/*
 * floor.c - cpar_zmqfloor: what moving ipyparallel's messages through ZeroMQ costs by itself.
 *
 * A stand-in controller with every piece of controller logic taken out: it binds the sockets a
 * client and engines expect (and writes connection files saying where), answers registration
 * and connection requests so that cpar_loadgen can start, and then relays requests and replies
 * frame for frame. A load-balanced request goes to the next engine in turn; a direct request goes
 * where it is addressed. Nothing is verified, parsed, recorded or scheduled.
 *
 * --hwm N bounds the load-balanced requests an engine holds, as the controllers' --hwm does:
 * with the default 0 an engine's queue has no limit (engines get requests in batches, the
 * cheapest case); with 1 (ipyparallel's default) an engine gets its next request only once its
 * reply has passed, and requests wait in ZeroMQ's queue meanwhile (the client socket is not
 * read while every engine is full). The controllers must be compared with the floor at their
 * own hwm.
 *
 * Its CPU per request, measured with the same load as cpcontroller, is a floor no ZeroMQ
 * controller on that machine can go below (bench/README.md). It is not a controller: no
 * heartbeat, no unregistration, no signature checks. Do not point real engines at it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "loop/loop.h"
#include "util/ids.h"
#include "util/map.h"
#include "wire/wire.h"

enum { S_REG, S_MUX_C, S_MUX_E, S_TASK_C, S_TASK_E, S_BCAST_E, S_IOPUB_E, S_HB_PING, S_HB_PONG,
       S_NOTIFY, S_IOPUB_C, S_CONTROL_C, S_CONTROL_E, S_BCAST_C, S_COUNT };

static const struct {
    const char *name; /* its key in the connection files */
    int type;
    const char *identity;
} socks[S_COUNT] = {
    [S_REG] = {"registration", ZMQ_ROUTER, NULL},   [S_MUX_C] = {"mux", ZMQ_ROUTER, "mux_in"},
    [S_MUX_E] = {"mux", ZMQ_ROUTER, "mux_out"},     [S_TASK_C] = {"task", ZMQ_ROUTER, "task_in"},
    [S_TASK_E] = {"task", ZMQ_ROUTER, "task_out"},  [S_BCAST_E] = {"broadcast", ZMQ_ROUTER, NULL},
    [S_IOPUB_E] = {"iopub", ZMQ_SUB, NULL},         [S_HB_PING] = {"hb_ping", ZMQ_PUB, NULL},
    [S_HB_PONG] = {"hb_pong", ZMQ_ROUTER, NULL},    [S_NOTIFY] = {"notification", ZMQ_PUB, NULL},
    [S_IOPUB_C] = {"iopub", ZMQ_PUB, NULL},         [S_CONTROL_C] = {"control", ZMQ_ROUTER, NULL},
    [S_CONTROL_E] = {"control", ZMQ_ROUTER, NULL},  [S_BCAST_C] = {"broadcast", ZMQ_ROUTER, NULL},
};

typedef struct floor_state {
    void *zctx;
    void *sock[S_COUNT];
    int port[S_COUNT];
    cpar_loop_t *loop;
    cpar_session_t session;
    cpar_msg_t in;
    char (*uuids)[CPAR_ID_LEN]; /* engine id -> uuid */
    size_t nengines, capengines, next;
    /* --hwm: load-balanced requests each engine holds, engines under the limit, by uuid */
    long hwm;
    unsigned *held;
    cpar_map_t by_uuid; /* uuid -> engine id + 1 */
    size_t *open;       /* ids of engines under the limit, a FIFO ring of nengines slots */
    size_t open_head, nopen;
    int reading; /* whether the client task socket is in the reactor */
} floor_t;

static int bind_random(floor_t *f, int s, const char *ip)
{
    char url[128];
    size_t len = sizeof url;
    const char *colon;

    snprintf(url, sizeof url, "tcp://%s:*", ip);
    if (zmq_bind(f->sock[s], url) != 0 ||
        zmq_getsockopt(f->sock[s], ZMQ_LAST_ENDPOINT, url, &len) != 0)
        return -1;
    colon = strrchr(url, ':');
    f->port[s] = colon ? atoi(colon + 1) : 0;
    return 0;
}

static int open_sockets(floor_t *f, const char *ip)
{
    int zero = 0;

    if (!(f->zctx = zmq_ctx_new()))
        return -1;
    for (int s = 0; s < S_COUNT; s++) {
        if (!(f->sock[s] = zmq_socket(f->zctx, socks[s].type)))
            return -1;
        zmq_setsockopt(f->sock[s], ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(f->sock[s], ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt(f->sock[s], ZMQ_LINGER, &zero, sizeof zero);
        if (socks[s].identity)
            zmq_setsockopt(f->sock[s], ZMQ_ROUTING_ID, socks[s].identity,
                           strlen(socks[s].identity));
        if (socks[s].type == ZMQ_SUB)
            zmq_setsockopt(f->sock[s], ZMQ_SUBSCRIBE, "", 0);
        if (bind_random(f, s, ip) != 0)
            return -1;
    }
    return 0;
}

/* ipcontroller-{client,engine}.json with the ports of one side. */
static int write_file(floor_t *f, const char *dir, const char *which, const int *side, size_t n,
                      const char *ip, const char *key)
{
    char path[4096], iface[128];
    json_t *o = json_object();
    int rc;

    snprintf(iface, sizeof iface, "tcp://%s", ip);
    json_object_set_new(o, "interface", json_string(iface));
    json_object_set_new(o, "key", json_string(key));
    json_object_set_new(o, "signature_scheme", json_string("hmac-sha256"));
    json_object_set_new(o, "pack", json_string("json"));
    json_object_set_new(o, "unpack", json_string("json"));
    json_object_set_new(o, "location", json_string(ip));
    json_object_set_new(o, "task_scheme", json_string("leastload"));
    json_object_set_new(o, "ssh", json_string(""));
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, socks[side[i]].name, json_integer(f->port[side[i]]));
    if (side[0] == S_MUX_E) /* engines: one broadcast port per leaf */
        json_object_set_new(o, "broadcast", json_pack("[i]", f->port[S_BCAST_E]));
    snprintf(path, sizeof path, "%s/security/ipcontroller-%s.json", dir, which);
    rc = json_dump_file(o, path, JSON_INDENT(1));
    json_decref(o);
    return rc;
}

static int write_files(floor_t *f, const char *dir, const char *ip, const char *key)
{
    static const int client[] = {S_MUX_C, S_TASK_C, S_NOTIFY, S_IOPUB_C, S_CONTROL_C,
                                 S_BCAST_C, S_REG};
    static const int engine[] = {S_MUX_E, S_TASK_E, S_IOPUB_E, S_HB_PING, S_HB_PONG,
                                 S_CONTROL_E, S_REG};
    char sec[4096];

    snprintf(sec, sizeof sec, "%s/security", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    if (mkdir(sec, 0700) != 0 && errno != EEXIST)
        return -1;
    return write_file(f, dir, "client", client, sizeof client / sizeof *client, ip, key) ||
                   write_file(f, dir, "engine", engine, sizeof engine / sizeof *engine, ip, key)
               ? -1
               : 0;
}

/* ---- engines, and which of them may take a load-balanced request (--hwm) ---- */

/* Room for twice as many engines; the ring of open engines is laid out again from slot 0. */
static int grow_engines(floor_t *f)
{
    size_t ncap = f->capengines ? 2 * f->capengines : 64;
    char(*nu)[CPAR_ID_LEN] = malloc(ncap * sizeof *nu);
    unsigned *nh = malloc(ncap * sizeof *nh);
    size_t *no = malloc(ncap * sizeof *no);

    if (!nu || !nh || !no) {
        free(nu);
        free(nh);
        free(no);
        return -1;
    }
    if (f->nengines) {
        memcpy(nu, f->uuids, f->nengines * sizeof *nu);
        memcpy(nh, f->held, f->nengines * sizeof *nh);
    }
    for (size_t i = 0; i < f->nopen; i++)
        no[i] = f->open[(f->open_head + i) % f->capengines];
    free(f->uuids);
    free(f->held);
    free(f->open);
    f->uuids = nu;
    f->held = nh;
    f->open = no;
    f->open_head = 0;
    f->capengines = ncap;
    return 0;
}

/* An engine is in the ring exactly while it holds fewer than hwm requests. */
static void open_push(floor_t *f, size_t id)
{
    f->open[(f->open_head + f->nopen++) % f->capengines] = id;
}

static size_t open_pop(floor_t *f)
{
    size_t id = f->open[f->open_head];

    f->open_head = (f->open_head + 1) % f->capengines;
    f->nopen--;
    return id;
}

/* ---- the little a client and cpar_loadgen's engines need to start ---- */

static void on_registration(floor_t *f, cpar_msg_t *m)
{
    cpar_bytes_t ident = cpar_msg_frame(m, 0);
    const char *type = cpar_msg_type(m), *uuid;
    json_t *content, *engines;

    if (!type)
        return;
    if (strcmp(type, "registration_request") == 0) {
        uuid = json_string_value(json_object_get(m->content, "uuid"));
        if (!uuid || strlen(uuid) >= CPAR_ID_LEN)
            return;
        if (f->nengines == f->capengines && grow_engines(f) != 0)
            return;
        snprintf(f->uuids[f->nengines], CPAR_ID_LEN, "%s", uuid);
        if (cpar_map_puts(&f->by_uuid, f->uuids[f->nengines], (void *)(f->nengines + 1)) != 0)
            return;
        f->held[f->nengines] = 0;
        if (f->hwm > 0)
            open_push(f, f->nengines);
        content = json_pack("{s:i, s:s, s:i}", "id", (int)f->nengines, "status", "ok",
                            "hb_period", 3000);
        cpar_session_send(&f->session, f->sock[S_REG], &ident, 1, "registration_reply", NULL,
                          NULL, content, NULL, 0);
        json_decref(content);
        content = json_pack("{s:i, s:s}", "id", (int)f->nengines, "uuid", uuid);
        cpar_session_send(&f->session, f->sock[S_NOTIFY], NULL, 0, "registration_notification",
                          NULL, NULL, content, NULL, 0);
        json_decref(content);
        f->nengines++;
    } else if (strcmp(type, "connection_request") == 0) {
        engines = json_object();
        for (size_t i = 0; i < f->nengines; i++) {
            char id[24];

            snprintf(id, sizeof id, "%zu", i);
            json_object_set_new(engines, id, json_string(f->uuids[i]));
        }
        content = json_pack("{s:s, s:o}", "status", "ok", "engines", engines);
        cpar_session_send(&f->session, f->sock[S_REG], &ident, 1, "connection_reply", NULL, NULL,
                          content, NULL, 0);
        json_decref(content);
    }
}

static void on_reg(void *arg)
{
    floor_t *f = arg;

    while (cpar_msg_recv(&f->in, f->sock[S_REG], 0) == 0)
        if (cpar_msg_split(&f->in) == 0 &&
            cpar_msg_parse(&f->in, CPAR_PARSE_HEADER | CPAR_PARSE_CONTENT) == 0)
            on_registration(f, &f->in);
    cpar_msg_clear(&f->in);
}

/* ---- the relays: frames moved, only the routing frames touched ---- */

/* [engine, client, ...] from an engine, or [client, engine, ...] to one: swap and send. */
static void relay_swap(floor_t *f, int from, int to)
{
    for (int budget = 0; budget < 512; budget++) {
        if (cpar_msg_recv(&f->in, f->sock[from], 0) != 0)
            break;
        if (cpar_msg_split(&f->in) != 0 || cpar_msg_nidents(&f->in) < 2 ||
            cpar_msg_swap_idents(&f->in) != 0)
            continue;
        cpar_msg_send(&f->in, f->sock[to]);
    }
    cpar_msg_clear(&f->in);
}

static void on_mux_client(void *arg)
{
    relay_swap(arg, S_MUX_C, S_MUX_E);
}

static void on_mux_engine(void *arg)
{
    relay_swap(arg, S_MUX_E, S_MUX_C);
}

static void on_task_client(void *arg);

/* A reply [engine, client, ...]: the engine has room again under --hwm. */
static void on_task_engine(void *arg)
{
    floor_t *f = arg;

    for (int budget = 0; budget < 512; budget++) {
        cpar_bytes_t ident;
        size_t id;

        if (cpar_msg_recv(&f->in, f->sock[S_TASK_E], 0) != 0)
            break;
        if (cpar_msg_split(&f->in) != 0 || cpar_msg_nidents(&f->in) < 2)
            continue;
        if (f->hwm > 0) {
            ident = cpar_msg_frame(&f->in, 0);
            id = (size_t)cpar_map_get(&f->by_uuid, ident.data, ident.len);
            if (id && f->held[id - 1] > 0 && f->held[id - 1]-- == (unsigned)f->hwm)
                open_push(f, id - 1);
        }
        if (cpar_msg_swap_idents(&f->in) == 0)
            cpar_msg_send(&f->in, f->sock[S_TASK_C]);
    }
    cpar_msg_clear(&f->in);
    if (!f->reading && f->nopen > 0) {
        cpar_loop_add_socket(f->loop, f->sock[S_TASK_C], on_task_client, f);
        f->reading = 1;
    }
}

/* A load-balanced request: [client, ...] -> [next engine, client, ...]. */
static void on_task_client(void *arg)
{
    floor_t *f = arg;

    for (int budget = 0; budget < 512; budget++) {
        const char *uuid;
        size_t id;

        if (f->hwm > 0 && f->nopen == 0) { /* every engine is full: leave requests queued */
            cpar_loop_remove_socket(f->loop, f->sock[S_TASK_C]);
            f->reading = 0;
            break;
        }
        if (cpar_msg_recv(&f->in, f->sock[S_TASK_C], 0) != 0)
            break;
        if (f->nengines == 0 || cpar_msg_split(&f->in) != 0)
            continue;
        id = f->hwm > 0 ? open_pop(f) : f->next++ % f->nengines;
        uuid = f->uuids[id];
        if (cpar_msg_prepend_ident(&f->in, uuid, strlen(uuid)) != 0 ||
            cpar_msg_send(&f->in, f->sock[S_TASK_E]) != 0) {
            if (f->hwm > 0)
                open_push(f, id);
            continue;
        }
        if (f->hwm > 0 && ++f->held[id] < (unsigned)f->hwm)
            open_push(f, id);
    }
    cpar_msg_clear(&f->in);
}

/* Heartbeat pongs and engine iopub: read and dropped. */
static void on_discard(void *arg)
{
    void *sock = arg;
    zmq_msg_t frame;

    zmq_msg_init(&frame);
    while (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) >= 0)
        ;
    zmq_msg_close(&frame);
}

static void on_stop(void *arg, int signo)
{
    (void)signo;
    cpar_loop_stop(arg);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *ip = "127.0.0.1";
    char key[CPAR_ID_LEN];
    floor_t f = {0};
    int rc = 1;

    cpar_map_init(&f.by_uuid);
    for (int i = 1; i + 1 < argc; i += 2) {
        char *end;

        if (strcmp(argv[i], "--profile-dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--ip") == 0) {
            ip = argv[i + 1];
        } else if (strcmp(argv[i], "--hwm") == 0) {
            f.hwm = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || f.hwm < 0 || f.hwm > 1000000) {
                fprintf(stderr, "cpar_zmqfloor: --hwm %s: not a count from 0 to 1000000\n",
                        argv[i + 1]);
                return 1;
            }
        } else {
            dir = NULL;
            break;
        }
    }
    if (!dir || argc % 2 == 0) {
        fprintf(stderr, "usage: cpar_zmqfloor --profile-dir DIR [--ip ADDR] [--hwm N]\n"
                        "  A frame-relaying stand-in controller for measuring ZeroMQ's own cost;\n"
                        "  see bench/README.md. Runs until SIGINT or SIGTERM.\n");
        return 1;
    }
    cpar_new_id(key);
    cpar_msg_init(&f.in);
    if (cpar_session_init(&f.session, key, "hmac-sha256", NULL, NULL) != 0 ||
        open_sockets(&f, ip) != 0 || write_files(&f, dir, ip, key) != 0 ||
        cpar_loop_new(&f.loop) != 0) {
        fprintf(stderr, "cpar_zmqfloor: cannot set up in %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if (cpar_loop_add_socket(f.loop, f.sock[S_REG], on_reg, &f) ||
        cpar_loop_add_socket(f.loop, f.sock[S_MUX_C], on_mux_client, &f) ||
        cpar_loop_add_socket(f.loop, f.sock[S_MUX_E], on_mux_engine, &f) ||
        cpar_loop_add_socket(f.loop, f.sock[S_TASK_C], on_task_client, &f) ||
        cpar_loop_add_socket(f.loop, f.sock[S_TASK_E], on_task_engine, &f) ||
        cpar_loop_add_socket(f.loop, f.sock[S_HB_PONG], on_discard, f.sock[S_HB_PONG]) ||
        cpar_loop_add_socket(f.loop, f.sock[S_IOPUB_E], on_discard, f.sock[S_IOPUB_E]) ||
        cpar_loop_add_signal(f.loop, SIGINT, on_stop, f.loop) ||
        cpar_loop_add_signal(f.loop, SIGTERM, on_stop, f.loop)) {
        fprintf(stderr, "cpar_zmqfloor: cannot set up the reactor\n");
        goto out;
    }
    f.reading = 1;
    printf("cpar_zmqfloor ready: connection files in %s/security\n", dir);
    fflush(stdout);
    rc = cpar_loop_run(f.loop) == 0 ? 0 : 1;
out:
    if (f.loop)
        cpar_loop_free(f.loop);
    cpar_msg_fini(&f.in);
    cpar_session_fini(&f.session);
    for (int s = 0; s < S_COUNT; s++)
        if (f.sock[s])
            zmq_close(f.sock[s]);
    if (f.zctx)
        zmq_ctx_term(f.zctx);
    cpar_map_fini(&f.by_uuid, NULL);
    free(f.uuids);
    free(f.held);
    free(f.open);
    return rc;
}
