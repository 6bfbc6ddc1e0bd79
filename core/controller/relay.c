/*
 * relay.c - the direct (mux), control and iopub relays.
 *
 * Frames are forwarded as they came, signature included; only the two routing identities are
 * swapped between the client-side and the engine-side ROUTER. The hub's bookkeeping (task
 * records, per-engine queues) happens before a reply is forwarded, so a client that asks the
 * hub right after a reply finds it completed.
 */
#include "controller.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

#define RELAY_BUDGET 512

static int is_request(const char *type)
{
    size_t n = strlen(type);

    return n > 8 && strcmp(type + n - 8, "_request") == 0;
}

static void forward(ctl_t *ctl, ctl_chan_t to, cpar_msg_t *m)
{
    if (cpar_msg_send(m, ctl->sock[to]) != 0)
        cpar_warn("relay::cannot forward on %s: %s", ctl_chan_name(to),
                  zmq_strerror(zmq_errno()));
}

/* Client -> engine on mux or control: [C, E, DELIM, ...] becomes [E, C, DELIM, ...]. */
static void client_to_engine(ctl_t *ctl, ctl_chan_t from, ctl_chan_t to, int track)
{
    for (int budget = 0; budget < RELAY_BUDGET; budget++) {
        cpar_msg_t *m = &ctl->in;
        int rc = ctl_recv(ctl, from);
        cpar_bytes_t target;
        ctl_engine_t *e;

        if (rc == CPAR_EAGAIN)
            break;
        if (rc)
            continue;
        if (cpar_msg_nidents(m) < 2) {
            ctl_drop(ctl, from, m, "no engine identity");
            continue;
        }
        target = cpar_msg_frame(m, 1);
        e = ctl_engine_by_uuid(ctl, target.data, target.len);
        if (track) {
            if (e && e->registered && is_request(ctl->in_type))
                ctl_record_request(ctl, m, e, "mux");
            else if (!e || !e->registered)
                cpar_debug("relay::%s for an engine that is not registered", ctl->in_type);
        }
        cpar_msg_swap_idents(m);
        forward(ctl, to, m);
    }
    cpar_msg_clear(&ctl->in);
}

/* Engine -> client on mux or control: [E, C, DELIM, ...] becomes [C, E, DELIM, ...]. */
static void engine_to_client(ctl_t *ctl, ctl_chan_t from, ctl_chan_t to, int track)
{
    for (int budget = 0; budget < RELAY_BUDGET; budget++) {
        cpar_msg_t *m = &ctl->in;
        int rc = ctl_recv(ctl, from);
        cpar_bytes_t source;
        ctl_engine_t *e;

        if (rc == CPAR_EAGAIN)
            break;
        if (rc)
            continue;
        if (cpar_msg_nidents(m) < 2) {
            ctl_drop(ctl, from, m, "no client identity");
            continue;
        }
        if (track) {
            source = cpar_msg_frame(m, 0);
            e = ctl_engine_by_uuid(ctl, source.data, source.len);
            if (e && e->registered)
                ctl_record_reply(ctl, m, e);
        }
        cpar_msg_swap_idents(m);
        forward(ctl, to, m);
    }
    cpar_msg_clear(&ctl->in);
}

void ctl_on_mux_client(void *arg)
{
    client_to_engine(arg, CHAN_MUX_CLIENT, CHAN_MUX_ENGINE, 1);
}

void ctl_on_mux_engine(void *arg)
{
    engine_to_client(arg, CHAN_MUX_ENGINE, CHAN_MUX_CLIENT, 1);
}

void ctl_on_ctl_client(void *arg)
{
    client_to_engine(arg, CHAN_CTL_CLIENT, CHAN_CTL_ENGINE, 0);
}

void ctl_on_ctl_engine(void *arg)
{
    engine_to_client(arg, CHAN_CTL_ENGINE, CHAN_CTL_CLIENT, 0);
}

void ctl_on_iopub(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < RELAY_BUDGET; budget++) {
        cpar_msg_t *m = &ctl->in;
        int rc = ctl_recv(ctl, CHAN_IOPUB_ENGINE);
        const char *type;
        ctl_engine_t *gone = NULL;

        if (rc == CPAR_EAGAIN)
            break;
        if (rc)
            continue;
        type = ctl->in_type;
        if (strcmp(type, "shutdown_reply") == 0) {
            char session[256];

            if (cpar_msg_scan_str(m, CPAR_PART_HEADER, "session", session, sizeof session) == 0)
                gone = ctl_engine_by_uuid(ctl, session, strlen(session));
        } else if (strcmp(type, "status") != 0) {
            ctl_record_iopub(ctl, m);
        }
        forward(ctl, CHAN_IOPUB_CLIENT, m);
        if (gone && gone->registered)
            ctl_unregister_engine(ctl, gone, "engine shut down");
    }
    cpar_msg_clear(&ctl->in);
}
