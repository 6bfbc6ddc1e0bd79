/*
 * client.c - the load generator's client, connecting like ipyparallel's Client.
 *
 * A DEALER to registration sends connection_request (as Client() does on start, and then again
 * while engines are still missing) and a SUB on notification counts (un)registrations. Once the
 * controller lists every fake engine, DEALERs to mux and task keep `window` apply_requests in
 * flight:
 *   direct: [engine uuid, DELIM, ...] on mux, round robin over the engines, metadata {};
 *   lb:     [DELIM, ...] on task, with LoadBalancedView's metadata.
 * Every reply is verified (signature, replay), matched to its request by parent msg_id, checked
 * for its type, its routing frame and metadata.engine, and timed from send to receipt.
 */
#include "loadgen.h"

#include <cparallel/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

#define CLI_BUDGET 512

/* What DirectView/LoadBalancedView.apply(f) sends for a no-op f: the canned function, its
 * args and its kwargs, pickled. Only the sizes matter here (144, 106 and 12 bytes, as seen in a
 * real client's apply_request); nobody unpickles them. */
static unsigned char cli_fn[144], cli_args[106], cli_kwargs[12];

/* LoadBalancedView's metadata for a plain apply (no dependencies, targets or retries). */
static const char cli_lb_md[] =
    "{\"after\":[],\"follow\":[],\"timeout\":0.0,\"targets\":[],\"retries\":0}";

static void *cli_socket(lg_t *lg, int type, const char *url)
{
    void *s = zmq_socket(lg->zctx, type);
    int zero = 0;

    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(s, url) != 0) {
        fprintf(stderr, "cpar_loadgen: connect %s: %s\n", url, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Receive and verify one message from a controller socket, and parse the JSON `parts`
 * (CPAR_PARSE_* bits; 0 for none); 0, CPAR_EAGAIN, or CPAR_EPROTO for a message that was
 * counted as bad and dropped. */
static int cli_recv(lg_t *lg, void *sock, unsigned parts)
{
    cpar_msg_t *m = &lg->in;
    const char *why = NULL;
    int rc = cpar_msg_recv(m, sock, 0);

    if (rc == CPAR_EAGAIN)
        return rc;
    if (rc == 0)
        rc = cpar_msg_split(m);
    if (rc == 0)
        rc = cpar_session_verify(&lg->client, m, &why);
    if (rc == 0 && parts)
        rc = cpar_msg_parse(m, parts);
    if (rc != 0) {
        if (lg->bad_sig++ < 5)
            fprintf(stderr, "cpar_loadgen: client dropped a message: %s\n",
                    why ? why : "malformed");
        return CPAR_EPROTO;
    }
    return 0;
}

/* ---- engines appearing -------------------------------------------------------------------- */

void lg_client_query(lg_t *lg)
{
    if (lg->conn_outstanding)
        return;
    if (cpar_session_send(&lg->client, lg->query, NULL, 0, "connection_request", NULL, NULL, NULL,
                          NULL, 0) != 0) {
        lg_fail(lg, "cannot send connection_request");
        return;
    }
    lg->conn_outstanding = 1;
}

static void cli_connection_reply(lg_t *lg, json_t *content)
{
    json_t *engines = json_object_get(content, "engines"), *uuid;
    const char *key;
    int n = 0;

    lg->conn_outstanding = 0;
    if (!json_is_object(engines)) {
        lg_fail(lg, "connection_reply without an engines dict");
        return;
    }
    json_object_foreach(engines, key, uuid)
    {
        lg_engine_t *e =
            json_is_string(uuid) ? cpar_map_gets(&lg->by_uuid, json_string_value(uuid)) : NULL;

        if (e && e->up && strtol(key, NULL, 10) == e->id) {
            e->announced = 1;
            n++;
        }
    }
    lg->n_announced = n;
    if (n == lg->opt.engines && lg->phase == PH_REGISTERING)
        lg_all_registered(lg);
}

static void cli_on_query(void *arg)
{
    lg_t *lg = arg;

    for (int budget = 0; budget < CLI_BUDGET; budget++) {
        const char *type;
        int rc = cli_recv(lg, lg->query, CPAR_PARSE_ALL);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc != 0)
            continue;
        type = cpar_msg_type(&lg->in);
        if (type && strcmp(type, "connection_reply") == 0)
            cli_connection_reply(lg, lg->in.content);
    }
    cpar_msg_clear(&lg->in);
}

static void cli_on_notification(void *arg)
{
    lg_t *lg = arg;

    for (int budget = 0; budget < CLI_BUDGET; budget++) {
        const char *type, *uuid;
        int rc = cli_recv(lg, lg->notif, CPAR_PARSE_ALL);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc != 0)
            continue;
        type = cpar_msg_type(&lg->in);
        uuid = json_string_value(json_object_get(lg->in.content, "uuid"));
        if (!type)
            continue;
        if (strcmp(type, "registration_notification") == 0) {
            lg->notified_reg++;
        } else if (strcmp(type, "unregistration_notification") == 0) {
            lg->notified_unreg++;
            if (uuid && cpar_map_gets(&lg->by_uuid, uuid)) {
                if (lg->unreg_ours++ == 0)
                    fprintf(stderr, "cpar_loadgen: controller unregistered engine %s\n", uuid);
            }
        } else if (strcmp(type, "shutdown_notification") == 0) {
            lg_fail(lg, "controller shut down");
        }
    }
    cpar_msg_clear(&lg->in);
    /* Every engine may be in now: ask at once rather than at the next poll. */
    if (lg->phase == PH_REGISTERING && lg->notified_reg >= (uint64_t)lg->opt.engines)
        lg_client_query(lg);
}

int lg_client_start(lg_t *lg)
{
    int rc = cpar_session_init(&lg->client, lg->conn.key, lg->conn.scheme, NULL, NULL);

    if (rc != 0)
        return rc;
    memset(cli_fn, 'f', sizeof cli_fn);
    memset(cli_args, 'a', sizeof cli_args);
    memset(cli_kwargs, 'k', sizeof cli_kwargs);
    lg->req_bufs[0] = (cpar_bytes_t){cli_fn, sizeof cli_fn};
    lg->req_bufs[1] = (cpar_bytes_t){cli_args, sizeof cli_args};
    lg->req_bufs[2] = (cpar_bytes_t){cli_kwargs, sizeof cli_kwargs};
    lg->query = cli_socket(lg, ZMQ_DEALER, lg->conn.c_registration);
    lg->notif = cli_socket(lg, ZMQ_SUB, lg->conn.c_notification);
    if (!lg->query || !lg->notif)
        return CPAR_EIO;
    rc = cpar_loop_add_socket(lg->loop, lg->query, cli_on_query, lg);
    if (rc == 0)
        rc = cpar_loop_add_socket(lg->loop, lg->notif, cli_on_notification, lg);
    if (rc == 0)
        lg_client_query(lg);
    return rc;
}

/* ---- requests ----------------------------------------------------------------------------- */

static int cli_may_send(const lg_t *lg)
{
    if (lg->phase != PH_RUNNING)
        return 0;
    return lg->opt.count == 0 || lg->sent < lg->warmup + lg->opt.count;
}

static int cli_send_one(lg_t *lg)
{
    lg_slot_t *slot = lg->free_slots;
    cpar_bytes_t target = {NULL, 0}, parts[4];
    void *sock = lg->opt.mode == LG_DIRECT ? lg->mux : lg->task;
    char header[512], *msg_id;
    size_t idlen;
    int hn, rc;

    if (!slot)
        return CPAR_EINTERNAL;
    slot->target = -1;
    if (lg->opt.mode == LG_DIRECT) {
        lg_engine_t *e = &lg->engines[lg->next_target];

        lg->next_target = (lg->next_target + 1) % lg->opt.engines;
        slot->target = e->idx;
        target = (cpar_bytes_t){e->uuid, strlen(e->uuid)};
    }
    hn = lg_header(&lg->client, "apply_request", header, sizeof header, &msg_id, &idlen);
    if (hn < 0)
        return hn;
    parts[0] = (cpar_bytes_t){header, (size_t)hn};
    parts[1] = (cpar_bytes_t){"{}", 2};
    parts[2] = lg->opt.mode == LG_LB ? (cpar_bytes_t){cli_lb_md, sizeof cli_lb_md - 1}
                                     : (cpar_bytes_t){"{}", 2};
    parts[3] = (cpar_bytes_t){"{}", 2};
    rc =
        lg_build(&lg->client, &lg->out, &target, slot->target >= 0 ? 1 : 0, parts, lg->req_bufs, 3);
    if (rc == 0)
        rc = cpar_map_put(&lg->inflight, msg_id, idlen, slot, NULL);
    if (rc != 0)
        return rc;
    lg->free_slots = slot->next_free;
    slot->sent_us = cpar_monotonic_us();
    lg->n_inflight++;
    lg->sent++;
    return cpar_msg_send(&lg->out, sock);
}

void lg_client_fill(lg_t *lg)
{
    while (lg->n_inflight < lg->opt.window && cli_may_send(lg)) {
        if (cli_send_one(lg) != 0) {
            lg_fail(lg, "cannot send a request");
            return;
        }
    }
    if (lg->phase == PH_RUNNING && !cli_may_send(lg))
        lg->phase = PH_DRAINING;
}

static void cli_latency(lg_t *lg, int64_t us)
{
    if (lg->nlat == lg->caplat) {
        size_t cap = lg->caplat ? 2 * lg->caplat : 65536;
        uint32_t *v = realloc(lg->lat, cap * sizeof *v);

        if (!v) {
            lg_fail(lg, "out of memory for latencies");
            return;
        }
        lg->lat = v;
        lg->caplat = cap;
    }
    lg->lat[lg->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Did the reply come from the engine it should, and say so (metadata's engine)? */
static int cli_routed_ok(lg_t *lg, const cpar_msg_t *m, const lg_slot_t *slot, const char *engine)
{
    cpar_bytes_t from = cpar_msg_frame(m, 0);
    lg_engine_t *e;

    if (cpar_msg_nidents(m) != 1 || !engine[0])
        return 0;
    e = slot->target >= 0 ? &lg->engines[slot->target] : cpar_map_gets(&lg->by_uuid, engine);
    return e && strcmp(engine, e->uuid) == 0 && from.len == strlen(e->uuid) &&
           memcmp(from.data, e->uuid, from.len) == 0;
}

static void cli_field(const cpar_msg_t *m, int part, const char *key, char *buf, size_t len)
{
    if (cpar_msg_scan_str(m, part, key, buf, len) != 0)
        buf[0] = '\0';
}

/*
 * A reply on the work socket. The few fields checked are read with the scanner, as the
 * controller does: parsing four JSON parts of every reply made the generator, which shares the
 * machine with the controller, the larger consumer of CPU.
 */
static void cli_reply(lg_t *lg, cpar_msg_t *m)
{
    char pid[128] = "", type[64] = "", status[32] = "", engine[CPAR_ID_LEN + 8] = "";
    int64_t now = cpar_monotonic_us();
    lg_slot_t *slot;
    int ok;

    /* An absent or unreadable field is "", which fails its check below. */
    cli_field(m, CPAR_PART_PARENT, "msg_id", pid, sizeof pid);
    cli_field(m, CPAR_PART_HEADER, "msg_type", type, sizeof type);
    cli_field(m, CPAR_PART_METADATA, "engine", engine, sizeof engine);
    cli_field(m, CPAR_PART_CONTENT, "status", status, sizeof status);
    slot = pid[0] ? cpar_map_dels(&lg->inflight, pid) : NULL;
    ok = strcmp(status, "ok") == 0;
    if (!slot) {
        lg->unknown++;
        return;
    }
    lg->n_inflight--;
    lg->replies++;
    if (strcmp(type, "apply_reply") != 0)
        lg->wrong_type++;
    /* Controller-made error replies carry no engine; every reply with status ok must. */
    if ((ok || cpar_msg_nidents(m) > 0) && !cli_routed_ok(lg, m, slot, engine))
        lg->misrouted++;
    if (ok) {
        lg->ok++;
    } else {
        lg->errors++;
        if (!lg->error_sample[0] && cpar_msg_parse(m, CPAR_PARSE_CONTENT) == 0)
            snprintf(lg->error_sample, sizeof lg->error_sample, "%s: %s",
                     json_string_value(json_object_get(m->content, "ename")),
                     json_string_value(json_object_get(m->content, "evalue")));
    }
    if (lg->measuring) {
        cli_latency(lg, now - slot->sent_us);
        lg->t_last_reply = now;
    }
    slot->next_free = lg->free_slots;
    lg->free_slots = slot;
    lg->t_progress = now;
    if (!lg->measuring && lg->replies >= lg->warmup)
        lg_measure_start(lg, now);
}

static void cli_on_work(lg_t *lg, void *sock)
{
    for (int budget = 0; budget < CLI_BUDGET; budget++) {
        int rc = cli_recv(lg, sock, 0);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0)
            cli_reply(lg, &lg->in);
    }
    cpar_msg_clear(&lg->in);
    lg_client_fill(lg);
    lg_reply_done(lg);
}

static void cli_on_mux(void *arg)
{
    lg_t *lg = arg;

    cli_on_work(lg, lg->mux);
}

static void cli_on_task(void *arg)
{
    lg_t *lg = arg;

    cli_on_work(lg, lg->task);
}

int lg_client_connect_work(lg_t *lg)
{
    int rc;

    lg->slots = calloc((size_t)lg->opt.window, sizeof *lg->slots);
    if (!lg->slots)
        return CPAR_ENOMEM;
    for (int i = 0; i < lg->opt.window; i++) {
        lg->slots[i].next_free = lg->free_slots;
        lg->free_slots = &lg->slots[i];
    }
    lg->mux = cli_socket(lg, ZMQ_DEALER, lg->conn.c_mux);
    lg->task = cli_socket(lg, ZMQ_DEALER, lg->conn.c_task);
    if (!lg->mux || !lg->task)
        return CPAR_EIO;
    rc = cpar_loop_add_socket(lg->loop, lg->mux, cli_on_mux, lg);
    if (rc == 0)
        rc = cpar_loop_add_socket(lg->loop, lg->task, cli_on_task, lg);
    return rc;
}

void lg_client_stop(lg_t *lg)
{
    void *socks[] = {lg->query, lg->notif, lg->mux, lg->task};

    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (socks[i])
            zmq_close(socks[i]);
    }
    cpar_session_fini(&lg->client);
    free(lg->slots);
    free(lg->lat);
}
