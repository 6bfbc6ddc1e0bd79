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

/*
 * One relay direction on mux or control: [C, E, DELIM, ...] from a client becomes
 * [E, C, DELIM, ...] to the engine, and back. With `track` (mux), requests and replies of
 * registered engines go into the hub's records on the way.
 */
static void relay(ctl_t *ctl, ctl_chan_t from, ctl_chan_t to, int to_engine, int track)
{
    for (int budget = 0; budget < RELAY_BUDGET; budget++) {
        cpar_msg_t *m = &ctl->in;
        int rc = ctl_recv(ctl, from);
        cpar_bytes_t id;
        ctl_engine_t *e;

        if (rc == CPAR_EAGAIN)
            break;
        if (rc)
            continue;
        if (cpar_msg_nidents(m) < 2) {
            ctl_drop(ctl, from, m, to_engine ? "no engine identity" : "no client identity");
            continue;
        }
        if (track) {
            id = cpar_msg_frame(m, to_engine ? 1 : 0);
            e = ctl_engine_by_uuid(ctl, id.data, id.len);
            if (!e || !e->registered)
                cpar_debug("relay::%s for or from an engine that is not registered",
                           ctl->in_type);
            else if (!to_engine)
                ctl_record_reply(ctl, m, NULL, e, NULL);
            else if (is_request(ctl->in_type))
                ctl_record_request(ctl, m, ctl->in_id, e, "mux");
        }
        cpar_msg_swap_idents(m);
        forward(ctl, to, m);
    }
    cpar_msg_clear(&ctl->in);
}

void ctl_on_mux_client(void *arg)
{
    relay(arg, CHAN_MUX_CLIENT, CHAN_MUX_ENGINE, 1, 1);
}

void ctl_on_mux_engine(void *arg)
{
    relay(arg, CHAN_MUX_ENGINE, CHAN_MUX_CLIENT, 0, 1);
}

void ctl_on_ctl_client(void *arg)
{
    relay(arg, CHAN_CTL_CLIENT, CHAN_CTL_ENGINE, 1, 0);
}

void ctl_on_ctl_engine(void *arg)
{
    relay(arg, CHAN_CTL_ENGINE, CHAN_CTL_CLIENT, 0, 0);
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
