/*
 * engines.c - fake engines: each registers like ipengine, answers the heartbeat, and answers
 * every shell request at once with a correctly signed reply.
 *
 * Per engine, with identity = its uuid on every socket (as ipengine does):
 *   - a DEALER to registration: registration_request {"uuid"}; then kept for unregistration;
 *   - after the reply: one shell ROUTER connected to mux, task and broadcast[id % n];
 *   - a moment later (so the shell connections are up before the controller can announce the
 *     engine, which happens at its first pong): a heart SUB on hb_ping and a DEALER on hb_pong
 *     that echoes every ping unchanged.
 * Replies copy what ipengine puts in them: parent = the request header; metadata with started,
 * dependencies_met, engine, is_broadcast, is_coalescing, original_msg_id (copied from the
 * request) and status; content {"status":"ok"} and one small result buffer for apply_request,
 * the standard execute_reply content for execute_request.
 */
#include "loadgen.h"

#include <cparallel/errors.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util/clock.h"

/* Messages per engine callback before it yields to the others (and reschedules itself). */
#define ENG_BUDGET 1024
/* Delay between connecting the shell and starting the heart. */
#define ENG_HEART_DELAY_MS 20

/* pickle.dumps(None, 4): what a no-op function's result looks like, serialized. */
static const char eng_result[] = "\x80\x04N.";

static void *eng_socket(lg_t *lg, lg_engine_t *e, int type)
{
    void *s = zmq_socket(lg->zctx, type);
    int zero = 0;

    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (type != ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, e->uuid, strlen(e->uuid));
    return s;
}

static int eng_connect(void *s, const char *url)
{
    if (zmq_connect(s, url) != 0) {
        fprintf(stderr, "cpar_loadgen: connect %s: %s\n", url, zmq_strerror(zmq_errno()));
        return CPAR_EIO;
    }
    return 0;
}

/* ---- polling ------------------------------------------------------------------------------
 *
 * A thousand engines mean three thousand sockets; zmq_poll() over all of them on every turn of
 * the loop would cost the generator more than the controller under test. Engine sockets are
 * therefore watched through their ZMQ_FD in one epoll set, which is itself one fd in the
 * reactor. ZMQ_FD only says that the socket's state may have changed, so a callback must read
 * until EAGAIN (or reschedule itself), and a socket is checked once when it is added. Engine
 * sockets are only sent on from their own callbacks (before they read to EAGAIN) or on sockets
 * that are never read (hb_dealer), so no signal is lost between two reads.
 */

static int eng_watch(lg_t *lg, lg_watch_t *w, void *sock, cpar_io_cb cb, void *arg)
{
    struct epoll_event ev = {.events = EPOLLIN};
    size_t len = sizeof w->fd;

    w->sock = sock;
    w->cb = cb;
    w->arg = arg;
    ev.data.ptr = w;
    if (zmq_getsockopt(sock, ZMQ_FD, &w->fd, &len) != 0 ||
        epoll_ctl(lg->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
        return CPAR_EIO;
    w->active = 1;
    cb(arg);
    return 0;
}

static void eng_unwatch(lg_t *lg, lg_watch_t *w)
{
    if (w->active)
        epoll_ctl(lg->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->active = 0;
}

static void eng_on_epoll(void *arg)
{
    lg_t *lg = arg;
    struct epoll_event ev[256];
    int n = epoll_wait(lg->epfd, ev, 256, 0);

    for (int i = 0; i < n; i++) {
        lg_watch_t *w = ev[i].data.ptr;

        /* An earlier callback of this batch may have unwatched it. */
        if (w->active)
            w->cb(w->arg);
    }
}

/* A callback that stopped at its budget runs again on the next turn of the loop. */
static void eng_again(lg_t *lg, cpar_io_cb cb, void *arg)
{
    if (cpar_loop_timer_once(lg->loop, 0, cb, arg) != 0)
        lg_fail(lg, "out of memory");
}

/* ---- heartbeat ---------------------------------------------------------------------------- */

/* A beat is missed when pings are further apart than 1.5 periods; each whole period beyond the
 * first counts once. */
static void eng_note_gap(lg_engine_t *e, int64_t gap_us)
{
    int64_t period_us = e->lg->hb_period_ms * 1000;

    if (gap_us > e->max_gap_us) {
        e->max_gap_us = gap_us;
        e->max_gap_end_us = cpar_monotonic_us();
    }
    if (period_us > 0 && 2 * gap_us > 3 * period_us)
        e->missed += (uint64_t)((gap_us + period_us / 2) / period_us - 1);
}

static void eng_on_ping(void *arg)
{
    lg_engine_t *e = arg;

    for (int budget = 0;; budget++) {
        zmq_msg_t f;
        int more;

        if (budget == ENG_BUDGET) {
            eng_again(e->lg, eng_on_ping, e);
            break;
        }
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, e->hb_sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            break;
        }
        more = zmq_msg_more(&f);
        if (!e->in_ping) {
            int64_t now = cpar_monotonic_us();

            if (e->last_ping_us)
                eng_note_gap(e, now - e->last_ping_us);
            e->last_ping_us = now;
            e->pings++;
        }
        e->in_ping = more;
        if (zmq_msg_send(&f, e->hb_dealer, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            zmq_msg_close(&f);
    }
}

void lg_engines_finish_beats(lg_t *lg, int64_t now_us)
{
    for (int i = 0; i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        if (e->last_ping_us)
            eng_note_gap(e, now_us - e->last_ping_us);
        e->last_ping_us = 0;
    }
}

static void eng_start_heart(void *arg)
{
    lg_engine_t *e = arg;
    lg_t *lg = e->lg;

    e->hb_sub = eng_socket(lg, e, ZMQ_SUB);
    e->hb_dealer = eng_socket(lg, e, ZMQ_DEALER);
    if (!e->hb_sub || !e->hb_dealer || zmq_setsockopt(e->hb_sub, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        eng_connect(e->hb_sub, lg->conn.e_hb_ping) != 0 ||
        eng_connect(e->hb_dealer, lg->conn.e_hb_pong) != 0 ||
        eng_watch(lg, &e->w_ping, e->hb_sub, eng_on_ping, e) != 0) {
        lg_fail(lg, "cannot set up an engine's heart sockets");
        return;
    }
}

/* ---- shell -------------------------------------------------------------------------------- */

/* Reply metadata as ipengine makes it. The broadcast keys are copied from the request; a request
 * without them (every direct and load-balanced one) gets the defaults without a JSON parse. */
static int eng_metadata(lg_engine_t *e, cpar_msg_t *m, char *out, size_t size)
{
    static const char *const copied[] = {"is_broadcast", "is_coalescing", "original_msg_id"};
    cpar_bytes_t req = cpar_msg_frame(m, m->delim + CPAR_PART_METADATA);
    char date[CPAR_ISO_LEN];
    json_t *req_md, *md;
    char *text;
    int n;

    cpar_iso_format(cpar_now_us(), date);
    if (!memmem(req.data, req.len, "is_", 3) && !memmem(req.data, req.len, "original_msg_id", 15)) {
        n = snprintf(out, size,
                     "{\"started\":\"%s\",\"dependencies_met\":true,\"engine\":\"%s\","
                     "\"is_broadcast\":false,\"is_coalescing\":false,\"original_msg_id\":\"\","
                     "\"status\":\"ok\"}",
                     date, e->uuid);
        return n > 0 && (size_t)n < size ? n : CPAR_E2BIG;
    }
    if (cpar_msg_parse(m, CPAR_PARSE_METADATA) != 0)
        return CPAR_EPROTO;
    req_md = m->metadata;
    md = json_pack("{sssbssso*so*so*ss}", "started", date, "dependencies_met", 1, "engine", e->uuid,
                   copied[0], json_incref(json_object_get(req_md, copied[0])), copied[1],
                   json_incref(json_object_get(req_md, copied[1])), copied[2],
                   json_incref(json_object_get(req_md, copied[2])), "status", "ok");
    if (!md)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        if (!json_object_get(md, copied[i]))
            json_object_set_new(md, copied[i], i < 2 ? json_false() : json_string(""));
    }
    text = cpar_json_dumps(md);
    json_decref(md);
    n = text ? snprintf(out, size, "%s", text) : CPAR_ENOMEM;
    free(text);
    return n >= 0 && (size_t)n >= size ? CPAR_E2BIG : n;
}

static void eng_reply(lg_engine_t *e, cpar_msg_t *m)
{
    lg_t *lg = e->lg;
    char type[128];
    size_t tlen, nid = cpar_msg_nidents(m);
    cpar_bytes_t idents[8], parts[4], result = {eng_result, sizeof eng_result - 1};
    char reply_type[128], header[512], md[1024], content[160];
    int is_apply, hn, mn, cn, rc;

    /* The scanner, not a parse: the generator must cost the machine less than the controller. */
    if (cpar_msg_scan_str(m, CPAR_PART_HEADER, "msg_type", type, sizeof type) != 0)
        type[0] = '\0';
    tlen = strlen(type);
    if (tlen < 9 || tlen >= sizeof reply_type || strcmp(type + tlen - 8, "_request") != 0 ||
        nid == 0 || nid > 8) {
        lg->eng_unexpected++;
        return;
    }
    snprintf(reply_type, sizeof reply_type, "%.*s_reply", (int)(tlen - 8), type);
    for (size_t i = 0; i < nid; i++)
        idents[i] = cpar_msg_frame(m, i);
    is_apply = strcmp(type, "apply_request") == 0;
    if (strcmp(type, "execute_request") == 0)
        cn = snprintf(content, sizeof content,
                      "{\"status\":\"ok\",\"execution_count\":%" PRId64
                      ",\"user_expressions\":{},\"payload\":[]}",
                      ++e->exec_count);
    else
        cn = snprintf(content, sizeof content, "{\"status\":\"ok\"}");
    hn = lg_header(&e->session, reply_type, header, sizeof header, NULL, NULL);
    mn = eng_metadata(e, m, md, sizeof md);
    if (hn < 0 || mn < 0) {
        lg->eng_unexpected++;
        return;
    }
    parts[0] = (cpar_bytes_t){header, (size_t)hn};
    parts[1] = cpar_msg_frame(m, m->delim + CPAR_PART_HEADER); /* parent = request header */
    parts[2] = (cpar_bytes_t){md, (size_t)mn};
    parts[3] = (cpar_bytes_t){content, (size_t)cn};
    rc = lg_build(&e->session, &lg->eout, idents, nid, parts, &result, is_apply ? 1 : 0);
    if (rc == 0)
        rc = cpar_msg_send(&lg->eout, e->shell);
    if (rc != 0)
        lg_fail(lg, "an engine could not send its reply");
}

static void eng_on_shell(void *arg)
{
    lg_engine_t *e = arg;
    lg_t *lg = e->lg;
    cpar_msg_t *m = &lg->in;

    for (int budget = 0;; budget++) {
        int rc;

        if (budget == ENG_BUDGET) {
            eng_again(lg, eng_on_shell, e);
            break;
        }
        rc = cpar_msg_recv(m, e->shell, 0);
        if (rc == CPAR_EAGAIN)
            break;
        if (rc != 0)
            continue;
        if (cpar_msg_split(m) != 0 || cpar_session_verify(&lg->eng_verify, m, NULL) != 0) {
            lg->eng_bad++;
            continue;
        }
        eng_reply(e, m);
    }
    cpar_msg_clear(m);
}

/* ---- registration ------------------------------------------------------------------------- */

static void eng_registered(lg_engine_t *e, json_t *content)
{
    lg_t *lg = e->lg;
    json_t *id = json_object_get(content, "id"), *period = json_object_get(content, "hb_period");
    const char *bc;

    if (!json_is_integer(id) || json_integer_value(id) < 0) {
        lg_fail(lg, "registration_reply without an integer id");
        return;
    }
    /* ipengine needs an integer hb_period (a float makes it exit). */
    if (!json_is_integer(period))
        lg->reg_bad_period++;
    else if (!lg->hb_period_ms)
        lg->hb_period_ms = json_integer_value(period);
    e->id = (int)json_integer_value(id);
    bc = lg->conn.e_broadcast[(size_t)e->id % lg->conn.n_broadcast];
    e->shell = eng_socket(lg, e, ZMQ_ROUTER);
    if (!e->shell || eng_connect(e->shell, lg->conn.e_mux) != 0 ||
        eng_connect(e->shell, lg->conn.e_task) != 0 || eng_connect(e->shell, bc) != 0 ||
        eng_watch(lg, &e->w_shell, e->shell, eng_on_shell, e) != 0 ||
        cpar_loop_timer_once(lg->loop, ENG_HEART_DELAY_MS, eng_start_heart, e) != 0) {
        lg_fail(lg, "cannot set up an engine's shell socket");
        return;
    }
    e->up = 1;
    if (++lg->n_up + lg->n_failed == lg->opt.engines)
        lg->t_reg_replies = cpar_monotonic_us();
}

/* One registration reply; 0 when it was one, CPAR_EPROTO when the message was not. */
static int eng_reg_reply(lg_engine_t *e, cpar_msg_t *m)
{
    lg_t *lg = e->lg;
    const char *why = NULL, *status, *type;

    if (cpar_msg_split(m) != 0 || cpar_session_verify(&lg->eng_verify, m, &why) != 0 ||
        cpar_msg_parse(m, CPAR_PARSE_HEADER | CPAR_PARSE_CONTENT) != 0) {
        lg->eng_bad++;
        fprintf(stderr, "cpar_loadgen: engine %s: bad registration reply (%s)\n", e->uuid,
                why ? why : "malformed");
        return CPAR_EPROTO;
    }
    type = cpar_msg_type(m);
    if (!type || strcmp(type, "registration_reply") != 0) {
        lg->eng_unexpected++;
        return CPAR_EPROTO;
    }
    e->reg_reply_us = cpar_monotonic_us();
    status = json_string_value(json_object_get(m->content, "status"));
    /* Done with this socket until unregistration: stop watching it. */
    eng_unwatch(lg, &e->w_reg);
    if (status && strcmp(status, "ok") == 0) {
        eng_registered(e, m->content);
        return 0;
    }
    e->failed = 1;
    if (!lg->reg_error[0])
        snprintf(lg->reg_error, sizeof lg->reg_error, "%s: %s",
                 json_string_value(json_object_get(m->content, "ename")),
                 json_string_value(json_object_get(m->content, "evalue")));
    if (lg->n_up + ++lg->n_failed == lg->opt.engines)
        lg->t_reg_replies = cpar_monotonic_us();
    return 0;
}

static void eng_on_reg(void *arg)
{
    lg_engine_t *e = arg;
    cpar_msg_t *m = &e->lg->in;

    for (int budget = 0; budget < ENG_BUDGET && e->w_reg.active; budget++) {
        int rc = cpar_msg_recv(m, e->reg, 0);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0)
            eng_reg_reply(e, m);
    }
    cpar_msg_clear(m);
}

int lg_engines_start(lg_t *lg)
{
    json_t *content;
    int rc;

    lg->engines = calloc((size_t)lg->opt.engines, sizeof *lg->engines);
    if (!lg->engines)
        return CPAR_ENOMEM;
    lg->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (lg->epfd < 0 || cpar_loop_add_fd(lg->loop, lg->epfd, eng_on_epoll, lg) != 0)
        return CPAR_EIO;
    rc = cpar_session_init(&lg->eng_verify, lg->conn.key, lg->conn.scheme, NULL, NULL);
    if (rc != 0)
        return rc;
    /* Create and connect every registration socket first, so that sending the requests is one
     * quick burst: registration time is measured from the first request. */
    for (int i = 0; i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        e->lg = lg;
        e->idx = i;
        e->id = -1;
        cpar_new_id(e->uuid);
        rc = cpar_session_init(&e->session, lg->conn.key, lg->conn.scheme, e->uuid, NULL);
        if (rc != 0)
            return rc;
        if (cpar_map_puts(&lg->by_uuid, e->uuid, e) != 0)
            return CPAR_ENOMEM;
        e->reg = eng_socket(lg, e, ZMQ_DEALER);
        if (!e->reg)
            return CPAR_EIO;
        rc = eng_connect(e->reg, lg->conn.e_registration);
        if (rc != 0)
            return rc;
    }
    lg->t_reg0 = cpar_monotonic_us();
    for (int i = 0; i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        content = json_pack("{ss}", "uuid", e->uuid);
        e->reg_sent_us = cpar_monotonic_us();
        rc = content ? cpar_session_send(&e->session, e->reg, NULL, 0, "registration_request", NULL,
                                         NULL, content, NULL, 0)
                     : CPAR_ENOMEM;
        json_decref(content);
        if (rc != 0)
            return rc;
    }
    for (int i = 0; i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        if (!e->up && !e->failed && eng_watch(lg, &e->w_reg, e->reg, eng_on_reg, e) != 0)
            return CPAR_EIO;
    }
    return 0;
}

void lg_engines_stop(lg_t *lg)
{
    int linger = 1000;

    if (!lg->engines)
        return;
    for (int i = 0; i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        /* What the nanny does when an engine exits: tell the hub at once. */
        if (lg->opt.unregister && e->up && e->reg) {
            json_t *content = json_pack("{si}", "id", e->id);

            zmq_setsockopt(e->reg, ZMQ_LINGER, &linger, sizeof linger);
            if (content)
                cpar_session_send(&e->session, e->reg, NULL, 0, "unregistration_request", NULL,
                                  NULL, content, NULL, 0);
            json_decref(content);
        }
        if (e->reg)
            zmq_close(e->reg);
        if (e->shell)
            zmq_close(e->shell);
        if (e->hb_sub)
            zmq_close(e->hb_sub);
        if (e->hb_dealer)
            zmq_close(e->hb_dealer);
        cpar_session_fini(&e->session);
    }
    cpar_session_fini(&lg->eng_verify);
    if (lg->epfd > 0) {
        cpar_loop_remove_fd(lg->loop, lg->epfd);
        close(lg->epfd);
    }
    free(lg->engines);
    lg->engines = NULL;
}
