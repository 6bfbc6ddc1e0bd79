/*
 * heartbeat.c - pings every engine each period on hb_ping and collects the pongs on hb_pong.
 *
 * A pong carries the ping payload back. The first pong of a pending engine finishes its
 * registration at once (not at the next beat), so engines appear as soon as they are really up.
 * A registered engine that misses more than max_heartmonitor_misses consecutive pings is
 * unregistered; a pending one that never pongs is dropped after registration_timeout.
 */
#include "controller.h"

#include <stdio.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

static void hb_beat(void *arg)
{
    ctl_t *ctl = arg;
    int64_t now = cpar_loop_now_ms(ctl->loop);
    const char *k;
    void *v;
    size_t it;

    for (it = cpar_map_next(&ctl->by_uuid, 0, &k, NULL, &v); it;
         it = cpar_map_next(&ctl->by_uuid, it, &k, NULL, &v)) {
        ctl_engine_t *e = v;

        if (!e->registered) {
            if (now - e->reg_started_ms > ctl->set.registration_timeout_s * 1000)
                ctl_unregister_engine(ctl, e, "no heartbeat before registration_timeout");
            continue;
        }
        if (e->beat) {
            e->beat = 0;
            continue;
        }
        if (++e->misses > ctl->set.max_misses) {
            char why[64];

            snprintf(why, sizeof why, "heart failure (%d missed beats)", e->misses);
            ctl_unregister_engine(ctl, e, why);
        } else if (e->misses > 1) {
            cpar_debug("heartbeat::engine %d missed %d beats", e->id, e->misses);
        }
    }
    memcpy(ctl->ping_prev, ctl->ping_cur, sizeof ctl->ping_prev);
    snprintf(ctl->ping_cur, sizeof ctl->ping_cur, "%.6f",
             (double)(cpar_now_us() - ctl->hb_start_us) / 1e6);
    if (zmq_send(ctl->sock[CHAN_HB_PING], ctl->ping_cur, strlen(ctl->ping_cur), 0) < 0)
        cpar_warn("heartbeat::cannot send ping: %s", zmq_strerror(zmq_errno()));
}

int ctl_heartbeat_start(ctl_t *ctl)
{
    ctl->hb_start_us = cpar_now_us();
    ctl->ping_cur[0] = ctl->ping_prev[0] = '\0';
    ctl->hb_timer = cpar_loop_timer_start(ctl->loop, (uint64_t)ctl->set.hb_period_ms,
                                          (uint64_t)ctl->set.hb_period_ms, hb_beat, ctl);
    if (!ctl->hb_timer)
        return CPAR_ENOMEM;
    hb_beat(ctl);
    return 0;
}

/*
 * While an engine waits for its first pong, the current ping goes out again every
 * QUICK_PING_MS: its registration finishes as soon as its heart is up instead of up to a whole
 * period later (a repeat of the current ping is still the current ping for everyone else).
 */
#define QUICK_PING_MS 100

static void hb_quick(void *arg)
{
    ctl_t *ctl = arg;
    const char *k;
    void *v;
    int waiting = 0;

    for (size_t it = cpar_map_next(&ctl->by_uuid, 0, &k, NULL, &v); it && !waiting;
         it = cpar_map_next(&ctl->by_uuid, it, &k, NULL, &v))
        waiting = !((ctl_engine_t *)v)->registered;
    if (!waiting || !ctl->ping_cur[0]) {
        cpar_loop_timer_stop(ctl->loop, ctl->hb_quick);
        ctl->hb_quick = NULL;
        return;
    }
    if (zmq_send(ctl->sock[CHAN_HB_PING], ctl->ping_cur, strlen(ctl->ping_cur), 0) < 0)
        cpar_warn("heartbeat::cannot send ping: %s", zmq_strerror(zmq_errno()));
}

void ctl_heartbeat_hurry(ctl_t *ctl)
{
    if (!ctl->hb_quick && ctl->set.hb_period_ms > 2 * QUICK_PING_MS)
        ctl->hb_quick = cpar_loop_timer_start(ctl->loop, QUICK_PING_MS, QUICK_PING_MS, hb_quick, ctl);
}

void ctl_heartbeat_stop(ctl_t *ctl)
{
    cpar_loop_timer_stop(ctl->loop, ctl->hb_timer);
    cpar_loop_timer_stop(ctl->loop, ctl->hb_quick);
    ctl->hb_timer = ctl->hb_quick = NULL;
}

static int matches(const cpar_bytes_t *b, const char *ping)
{
    return ping[0] && b->len == strlen(ping) && memcmp(b->data, ping, b->len) == 0;
}

void ctl_on_pong(void *arg)
{
    ctl_t *ctl = arg;
    cpar_msg_t *m = &ctl->in;

    for (int budget = 0; budget < 1024; budget++) {
        cpar_bytes_t id, payload;
        ctl_engine_t *e;
        int rc = cpar_msg_recv(m, ctl->sock[CHAN_HB_PONG], 4096);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == CPAR_E2BIG) {
            cpar_warn("dropped message on hb_pong from (unread): too large");
            continue;
        }
        if (rc)
            break;
        if (m->n != 2) {
            ctl_drop(ctl, CHAN_HB_PONG, m, "malformed heartbeat");
            continue;
        }
        id = cpar_msg_frame(m, 0);
        payload = cpar_msg_frame(m, 1);
        e = ctl_engine_by_uuid(ctl, id.data, id.len);
        if (!matches(&payload, ctl->ping_cur) && !matches(&payload, ctl->ping_prev)) {
            /* A late beat of an engine we know (or knew) is no attack: say it quietly. */
            if (e || cpar_map_get(&ctl->dead, id.data, id.len))
                cpar_debug("heartbeat::late beat from %s", e ? e->uuid : "a departed engine");
            else
                ctl_drop(ctl, CHAN_HB_PONG, m, "stale or unknown heartbeat");
            continue;
        }
        if (!e)
            continue; /* a heart we do not (or no longer) know: ignore quietly */
        e->misses = 0;
        e->beat = 1;
        if (!e->registered)
            ctl_finish_registration(ctl, e, 1);
    }
    cpar_msg_clear(m);
}
