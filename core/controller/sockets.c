/*
 * sockets.c - the controller's ZeroMQ sockets: creation, binding, and the checked receive every
 * handler goes through (size limit, framing, signature, replay), which logs one line per dropped
 * message and never lets a bad peer disturb the others.
 */
#include "controller.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static const struct {
    const char *name;
    int type;
    const char *identity; /* the routing identity engines see, or NULL */
    int engine_side;
} chan_info[CHAN_COUNT] = {
    [CHAN_QUERY] = {"registration", ZMQ_ROUTER, NULL, 0},
    [CHAN_MUX_CLIENT] = {"mux", ZMQ_ROUTER, "mux_in", 0},
    [CHAN_MUX_ENGINE] = {"mux", ZMQ_ROUTER, "mux_out", 1},
    [CHAN_CTL_CLIENT] = {"control", ZMQ_ROUTER, "control_in", 0},
    [CHAN_CTL_ENGINE] = {"control", ZMQ_ROUTER, "control_out", 1},
    [CHAN_TASK_CLIENT] = {"task", ZMQ_ROUTER, "task_in", 0},
    [CHAN_TASK_ENGINE] = {"task", ZMQ_ROUTER, "task_out", 1},
    [CHAN_BC_CLIENT] = {"broadcast", ZMQ_ROUTER, "sub_scheduler_0", 0},
    [CHAN_BC_ENGINE] = {"broadcast", ZMQ_ROUTER, "sub_scheduler_00", 1},
    [CHAN_IOPUB_ENGINE] = {"iopub", ZMQ_SUB, NULL, 1},
    [CHAN_IOPUB_CLIENT] = {"iopub", ZMQ_PUB, NULL, 0},
    [CHAN_NOTIFY] = {"notification", ZMQ_XPUB, NULL, 0},
    [CHAN_HB_PING] = {"hb_ping", ZMQ_PUB, NULL, 1},
    [CHAN_HB_PONG] = {"hb_pong", ZMQ_ROUTER, NULL, 1},
};

const char *ctl_chan_name(ctl_chan_t chan)
{
    return chan_info[chan].name;
}

/* The peer of a message for a log line: its first frame, as text when printable, else hex. */
static void peer_text(const cpar_msg_t *m, char *out, size_t outlen)
{
    cpar_bytes_t b;
    const unsigned char *p;
    size_t o = 0, printable = 1;

    if (m->n == 0 || (m->delim != CPAR_NO_DELIM && m->delim == 0)) {
        snprintf(out, outlen, "(no identity)");
        return;
    }
    b = cpar_msg_frame(m, 0);
    p = b.data;
    for (size_t i = 0; i < b.len; i++)
        if (!isprint(p[i]))
            printable = 0;
    if (printable && b.len > 0 && b.len < 80) {
        snprintf(out, outlen, "%.*s", (int)b.len, (const char *)p);
        return;
    }
    o = (size_t)snprintf(out, outlen, "0x");
    for (size_t i = 0; i < b.len && i < 32 && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", p[i]);
    if (b.len > 32 && o + 4 < outlen)
        snprintf(out + o, outlen - o, "...");
}

void ctl_drop(ctl_t *ctl, ctl_chan_t chan, const cpar_msg_t *m, const char *reason)
{
    char peer[96];

    (void)ctl;
    peer_text(m, peer, sizeof peer);
    cpar_warn("dropped message on %s from %s: %s", chan_info[chan].name, peer, reason);
}

int ctl_recv(ctl_t *ctl, ctl_chan_t chan)
{
    static const char *const keys[] = {"msg_type", "msg_id"};
    cpar_bytes_t v[2];
    cpar_msg_t *m = &ctl->in;
    const char *why = NULL;
    size_t limit = ctl->set.max_message_size > 0 ? (size_t)ctl->set.max_message_size : 0;
    int rc = cpar_msg_recv(m, ctl->sock[chan], limit);

    if (rc == CPAR_EAGAIN)
        return rc;
    if (rc == CPAR_E2BIG) {
        cpar_warn("dropped message on %s from (unread): too large (over %zu bytes)",
                  chan_info[chan].name, limit);
        return CPAR_EPROTO;
    }
    if (rc) {
        cpar_warn("receive on %s failed: %s", chan_info[chan].name, cpar_strerror(rc));
        return CPAR_EAGAIN;
    }
    if (cpar_msg_split(m) != 0) {
        ctl_drop(ctl, chan, m, "malformed message");
        return CPAR_EPROTO;
    }
    if (cpar_session_verify(&ctl->session, m, &why) != 0) {
        ctl_drop(ctl, chan, m, why);
        return CPAR_EPROTO;
    }
    /* Two fields in one scan: a full parse of every relayed header would cost more than all else. */
    if (cpar_msg_scan_keys(m, CPAR_PART_HEADER, keys, 2, v) ||
        cpar_json_str(v[0], ctl->in_type, sizeof ctl->in_type) ||
        cpar_json_str(v[1], ctl->in_id, sizeof ctl->in_id)) {
        ctl_drop(ctl, chan, m, "malformed header");
        return CPAR_EPROTO;
    }
    return 0;
}

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* Take the next port of the --ports pool, or 0 for a random one. */
static int64_t pool_port(ctl_t *ctl)
{
    if (ctl->set.next_port < ctl->set.nports)
        return ctl->set.ports[ctl->set.next_port++];
    return 0;
}

static int bind_port(ctl_t *ctl, void *s, int64_t want, int *got)
{
    char url[300], last[300];
    size_t len = sizeof last;
    const char *colon;

    if (want > 0)
        snprintf(url, sizeof url, "%s://%s:%lld", ctl->set.transport, ctl->set.ip, (long long)want);
    else
        snprintf(url, sizeof url, "%s://%s:*", ctl->set.transport, ctl->set.ip);
    if (zmq_bind(s, url) != 0) {
        cpar_error("cannot bind %s: %s", url, zmq_strerror(zmq_errno()));
        return CPAR_EIO;
    }
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &len) != 0)
        return CPAR_EIO;
    colon = strrchr(last, ':');
    *got = colon ? atoi(colon + 1) : 0;
    return 0;
}

static int make_socket(ctl_t *ctl, ctl_chan_t chan)
{
    void *s = zmq_socket(ctl->zctx, chan_info[chan].type);

    if (!s) {
        cpar_error("cannot create the %s socket: %s", chan_info[chan].name,
                   zmq_strerror(zmq_errno()));
        return CPAR_EIO;
    }
    ctl->sock[chan] = s;
    /* Relays and the hub never drop for HWM (ipyparallel sets 0 everywhere too). */
    set_int(s, ZMQ_SNDHWM, 0);
    set_int(s, ZMQ_RCVHWM, 0);
    set_int(s, ZMQ_LINGER, 0);
    if (chan_info[chan].identity)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, chan_info[chan].identity,
                       strlen(chan_info[chan].identity));
    if (chan_info[chan].type == ZMQ_ROUTER && chan_info[chan].engine_side)
        set_int(s, ZMQ_ROUTER_HANDOVER, 1); /* a restarted engine reusing its uuid takes over */
    if (chan_info[chan].type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (chan == CHAN_QUERY)
        set_int(s, ZMQ_ROUTER_HANDOVER, 1);
    if (chan_info[chan].type == ZMQ_XPUB)
        set_int(s, ZMQ_XPUB_VERBOSE, 1); /* every subscriber's arrival, not only the first */
    return 0;
}

int ctl_sockets_open(ctl_t *ctl)
{
    /* The order ipyparallel takes ports from the pool: registration, engine side, client side. */
    static const ctl_chan_t engine_order[] = {CHAN_CTL_ENGINE, CHAN_MUX_ENGINE, CHAN_TASK_ENGINE,
                                              CHAN_IOPUB_ENGINE, CHAN_HB_PING, CHAN_HB_PONG};
    static const ctl_chan_t client_order[] = {CHAN_CTL_CLIENT, CHAN_MUX_CLIENT, CHAN_TASK_CLIENT,
                                              CHAN_IOPUB_CLIENT, CHAN_NOTIFY, CHAN_BC_CLIENT};
    int rc;

    ctl->zctx = zmq_ctx_new();
    if (!ctl->zctx)
        return CPAR_EIO;
    for (int c = 0; c < CHAN_COUNT; c++)
        if ((rc = make_socket(ctl, (ctl_chan_t)c)))
            return rc;

    if ((rc = bind_port(ctl, ctl->sock[CHAN_QUERY], ctl->set.regport > 0 ? ctl->set.regport
                                                                          : pool_port(ctl),
                        &ctl->port[CHAN_QUERY])))
        return rc;
    for (size_t i = 0; i < sizeof engine_order / sizeof engine_order[0]; i++) {
        ctl_chan_t c = engine_order[i];

        if ((rc = bind_port(ctl, ctl->sock[c], pool_port(ctl), &ctl->port[c])))
            return rc;
    }
    ctl->nbc_ports = (size_t)1 << ctl->set.bcast_depth;
    ctl->bc_ports = calloc(ctl->nbc_ports, sizeof *ctl->bc_ports);
    if (!ctl->bc_ports)
        return CPAR_ENOMEM;
    /* One ROUTER serves every leaf port: each engine connects to exactly one of them. */
    for (size_t i = 0; i < ctl->nbc_ports; i++)
        if ((rc = bind_port(ctl, ctl->sock[CHAN_BC_ENGINE], pool_port(ctl), &ctl->bc_ports[i])))
            return rc;
    for (size_t i = 0; i < sizeof client_order / sizeof client_order[0]; i++) {
        ctl_chan_t c = client_order[i];

        if ((rc = bind_port(ctl, ctl->sock[c], pool_port(ctl), &ctl->port[c])))
            return rc;
    }
    return 0;
}

void ctl_sockets_close(ctl_t *ctl)
{
    for (int c = 0; c < CHAN_COUNT; c++) {
        if (ctl->sock[c])
            zmq_close(ctl->sock[c]);
        ctl->sock[c] = NULL;
    }
    if (ctl->zctx)
        zmq_ctx_term(ctl->zctx);
    ctl->zctx = NULL;
    free(ctl->bc_ports);
    ctl->bc_ports = NULL;
}
