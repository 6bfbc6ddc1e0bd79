/*
 * hub.c - the query channel (the registration ROUTER): connection, registration, queue status,
 * results, history, shutdown; and the notification PUB.
 *
 * Replies go to the first routing identity of the request with the request's header as parent,
 * except registration_reply (all identities, no parent), as ipyparallel's hub does.
 */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

void ctl_reply(ctl_t *ctl, cpar_msg_t *req, const char *msg_type, json_t *content,
               const cpar_bytes_t *bufs, size_t nbufs)
{
    cpar_bytes_t idents[8];
    size_t nid = cpar_msg_nidents(req);
    int registration = strcmp(msg_type, "registration_reply") == 0;
    json_t *parent = registration ? NULL : req->header;

    if (!registration && nid > 1)
        nid = 1;
    if (nid > 8)
        nid = 8;
    for (size_t i = 0; i < nid; i++)
        idents[i] = cpar_msg_frame(req, i);
    if (cpar_session_send(&ctl->session, ctl->sock[CHAN_QUERY], idents, nid, msg_type, parent,
                          NULL, content, bufs, nbufs) != 0)
        cpar_warn("hub::cannot send %s", msg_type);
}

void ctl_notify(ctl_t *ctl, const char *msg_type, json_t *content, json_t *parent)
{
    if (cpar_session_send(&ctl->session, ctl->sock[CHAN_NOTIFY], NULL, 0, msg_type, parent, NULL,
                          content, NULL, 0) != 0)
        cpar_warn("hub::cannot publish %s", msg_type);
}

static void reply_error(ctl_t *ctl, cpar_msg_t *req, const char *msg_type, const char *ename,
                        const char *evalue)
{
    json_t *content = cpar_error_content(ename, evalue);

    ctl_reply(ctl, req, msg_type, content, NULL, 0);
    json_decref(content);
}

static void on_connection_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *engines = json_object(), *content;
    size_t n;
    ctl_engine_t **v = ctl_engines_sorted(ctl, &n);

    for (size_t i = 0; v && i < n; i++) {
        char id[24];

        snprintf(id, sizeof id, "%d", v[i]->id);
        json_object_set_new(engines, id, json_string(v[i]->uuid));
    }
    free(v);
    content = json_pack("{s:s, s:o}", "status", "ok", "engines", engines);
    ctl_reply(ctl, m, "connection_reply", content, NULL, 0);
    json_decref(content);
}

/* Turn the targets of a queue_request into registered engines; NULL + error reply on failure. */
static ctl_engine_t **resolve_targets(ctl_t *ctl, cpar_msg_t *m, json_t *targets, size_t *n)
{
    ctl_engine_t **v;
    json_t *list = targets, *t;
    size_t i;
    char evalue[300];

    if (json_is_null(targets) || !targets)
        return ctl_engines_sorted(ctl, n);
    if (!json_is_array(targets)) {
        list = json_array();
        json_array_append(list, targets);
    } else {
        json_incref(list);
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        reply_error(ctl, m, "hub_error", "IndexError", "No Engines Registered");
        return NULL;
    }
    v = calloc(json_array_size(list), sizeof *v);
    *n = 0;
    json_array_foreach(list, i, t)
    {
        ctl_engine_t *e = NULL;

        if (json_is_integer(t))
            e = ctl_engine_by_id(ctl, (int)json_integer_value(t));
        else if (json_is_string(t))
            e = ctl_engine_by_uuid(ctl, json_string_value(t), json_string_length(t));
        if (!e || !e->registered) {
            char *bad = json_dumps(t, JSON_ENCODE_ANY);

            snprintf(evalue, sizeof evalue, "No Such Engine: [%s]", bad ? bad : "?");
            free(bad);
            free(v);
            json_decref(list);
            reply_error(ctl, m, "hub_error", "IndexError", evalue);
            return NULL;
        }
        if (v)
            v[(*n)++] = e;
    }
    json_decref(list);
    return v;
}

static json_t *id_list_or_count(cpar_map_t *map, int verbose)
{
    json_t *a;
    const char *k;
    size_t klen;

    if (!verbose)
        return json_integer((json_int_t)map->len);
    a = json_array();
    for (size_t it = cpar_map_next(map, 0, &k, &klen, NULL); it;
         it = cpar_map_next(map, it, &k, &klen, NULL))
        json_array_append_new(a, json_stringn(k, klen));
    return a;
}

typedef struct completed_ctx {
    ctl_t *ctl;
    const char *uuid;
    json_t *ids;
} completed_ctx_t;

static void completed_record_cb(void *arg, const cpar_record_t *r)
{
    completed_ctx_t *cc = arg;
    char status[32] = "";

    if (!r->has_completed || !r->engine_uuid || strcmp(r->engine_uuid, cc->uuid) != 0)
        return;
    if (r->result_metadata)
        cpar_json_scan_str(r->result_metadata, strlen(r->result_metadata), "status", status,
                           sizeof status);
    if (strcmp(status, "aborted") != 0)
        json_array_append_new(cc->ids, json_string(r->msg_id));
}

static void completed_history_cb(void *arg, const char *msg_id)
{
    completed_ctx_t *cc = arg;

    cpar_db_get(cc->ctl->db, msg_id, completed_record_cb, cc);
}

/*
 * The msg_ids an engine finished, for a verbose queue_status: read from the task database
 * (within its limits) instead of a list in memory that would grow with every task.
 */
static json_t *completed_ids(ctl_t *ctl, ctl_engine_t *e)
{
    completed_ctx_t cc = {ctl, e->uuid, json_array()};

    if (ctl->db)
        cpar_db_history(ctl->db, completed_history_cb, &cc);
    return cc.ids;
}

static void on_queue_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *content, *verbose_j;
    int verbose;
    size_t n;
    ctl_engine_t **v;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    verbose_j = json_object_get(m->content, "verbose");
    verbose = json_is_true(verbose_j);
    v = resolve_targets(ctl, m, json_object_get(m->content, "targets"), &n);
    if (!v)
        return;
    content = json_pack("{s:s}", "status", "ok");
    for (size_t i = 0; i < n; i++) {
        ctl_engine_t *e = v[i];
        json_t *completed;
        char id[24];

        completed = verbose ? completed_ids(ctl, e) : json_integer((json_int_t)e->completed);
        snprintf(id, sizeof id, "%d", e->id);
        json_object_set_new(content, id,
                            json_pack("{s:o, s:o, s:o}", "queue", id_list_or_count(&e->queue, verbose),
                                      "completed", completed, "tasks",
                                      id_list_or_count(&e->tasks, verbose)));
    }
    free(v);
    json_object_set_new(content, "unassigned", json_integer((json_int_t)ctl->unassigned));
    ctl_reply(ctl, m, "queue_reply", content, NULL, 0);
    json_decref(content);
}

/* ---- result_request ---- */

typedef struct result_ctx {
    json_t *content;        /* where completed records go */
    json_t *completed_ids;
    cpar_bytes_t *bufs;     /* result buffers, copied out of the borrowed record */
    void **owned;
    size_t nbufs, capbufs;
    int status_only;
    int found;
    int complete;
} result_ctx_t;

static json_t *json_or_null(const char *text)
{
    json_t *v;

    if (!text)
        return json_null();
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

static void push_buf(result_ctx_t *rc, const void *data, size_t len)
{
    void *copy;

    if (rc->nbufs == rc->capbufs) {
        size_t ncap = rc->capbufs ? rc->capbufs * 2 : 8;
        cpar_bytes_t *nb = realloc(rc->bufs, ncap * sizeof *nb);
        void **no = realloc(rc->owned, ncap * sizeof *no);

        if (nb)
            rc->bufs = nb;
        if (no)
            rc->owned = no;
        if (!nb || !no)
            return;
        rc->capbufs = ncap;
    }
    copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, data, len);
    rc->owned[rc->nbufs] = copy;
    rc->bufs[rc->nbufs++] = (cpar_bytes_t){copy, len};
}

static void result_record_cb(void *arg, const cpar_record_t *r)
{
    result_ctx_t *rc = arg;
    char received[CPAR_ISO_LEN];
    json_t *io, *entry;

    rc->found = 1;
    rc->complete = r->has_completed;
    if (!r->has_completed || rc->status_only)
        return;
    io = json_pack("{s:o, s:o, s:o, s:s, s:s}", "execute_input",
                   r->execute_input ? json_string(r->execute_input) : json_null(),
                   "execute_result", json_or_null(r->execute_result), "error",
                   json_or_null(r->error), "stdout", r->stdout ? r->stdout : "", "stderr",
                   r->stderr ? r->stderr : "");
    entry = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "header", json_or_null(r->header),
                      "metadata", json_or_null(r->metadata), "result_header",
                      json_or_null(r->result_header), "result_metadata",
                      json_or_null(r->result_metadata), "result_content",
                      json_or_null(r->result_content), "received",
                      r->has_received ? json_string(cpar_iso_format(r->received, received))
                                      : json_null(),
                      "io", io);
    json_object_set_new(rc->content, r->msg_id, entry);
    for (size_t i = 0; i < r->n_result_buffers; i++)
        push_buf(rc, r->result_buffers[i].data, r->result_buffers[i].len);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_result_request(ctl_t *ctl, cpar_msg_t *m)
{
    result_ctx_t rc = {0};
    json_t *ids, *pending, *completed, *v;
    const char **sorted;
    size_t n = 0, i;
    char evalue[400];

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    ids = json_object_get(m->content, "msg_ids");
    if (!json_is_array(ids)) {
        reply_error(ctl, m, "result_reply", "TypeError", "msg_ids must be a list");
        return;
    }
    sorted = calloc(json_array_size(ids) + 1, sizeof *sorted);
    if (!sorted)
        return;
    json_array_foreach(ids, i, v)
    {
        if (json_is_string(v))
            sorted[n++] = json_string_value(v);
    }
    qsort(sorted, n, sizeof *sorted, cmp_str);
    rc.content = json_pack("{s:s}", "status", "ok");
    rc.status_only = json_is_true(json_object_get(m->content, "status_only"));
    pending = json_array();
    completed = json_array();
    for (i = 0; i < n; i++) {
        const char *id = sorted[i];

        if (i > 0 && strcmp(id, sorted[i - 1]) == 0)
            continue;
        if (cpar_map_gets(&ctl->pending, id)) {
            json_array_append_new(pending, json_string(id));
            continue;
        }
        rc.found = rc.complete = 0;
        if (ctl->db)
            cpar_db_get(ctl->db, id, result_record_cb, &rc);
        if (!rc.found || !rc.complete) {
            json_decref(rc.content);
            snprintf(evalue, sizeof evalue, "'No such message: %s'", id);
            rc.content = cpar_error_content("KeyError", evalue);
            break;
        }
        json_array_append_new(completed, json_string(id));
    }
    if (json_is_string(json_object_get(rc.content, "status")) &&
        strcmp(json_string_value(json_object_get(rc.content, "status")), "ok") == 0) {
        json_object_set(rc.content, "pending", pending);
        json_object_set(rc.content, "completed", completed);
    }
    ctl_reply(ctl, m, "result_reply", rc.content, rc.bufs, rc.nbufs);
    json_decref(pending);
    json_decref(completed);
    json_decref(rc.content);
    for (i = 0; i < rc.nbufs; i++)
        free(rc.owned[i]);
    free(rc.owned);
    free(rc.bufs);
    free(sorted);
}

static void history_cb(void *arg, const char *msg_id)
{
    json_array_append_new(arg, json_string(msg_id));
}

static void on_history_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *history = json_array(), *content;
    int rc = ctl->db ? cpar_db_history(ctl->db, history_cb, history) : CPAR_ENOTSUP;

    if (rc) {
        json_decref(history);
        reply_error(ctl, m, "history_reply", rc == CPAR_ENOTSUP ? "NoData" : "RuntimeError",
                    ctl->db ? cpar_db_error(ctl->db) : "no task database");
        return;
    }
    content = json_pack("{s:s, s:o}", "status", "ok", "history", history);
    ctl_reply(ctl, m, "history_reply", content, NULL, 0);
    json_decref(content);
}

static void exit_now(void *arg)
{
    cpar_loop_stop(((ctl_t *)arg)->loop);
}

void ctl_shutdown(ctl_t *ctl)
{
    if (ctl->shutting_down)
        return;
    ctl->shutting_down = 1;
    /* Give the reply and the notification a moment to leave, as ipyparallel's hub does. */
    if (cpar_loop_timer_once(ctl->loop, 1000, exit_now, ctl) != 0)
        cpar_loop_stop(ctl->loop);
}

static void on_shutdown_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *ok = json_pack("{s:s}", "status", "ok");

    cpar_info("hub::shutdown requested by a client");
    ctl_reply(ctl, m, "shutdown_reply", ok, NULL, 0);
    ctl_notify(ctl, "shutdown_notification", ok, m->header);
    json_decref(ok);
    ctl_shutdown(ctl);
}

static void on_not_yet(ctl_t *ctl, cpar_msg_t *m, const char *reply_type)
{
    char evalue[200];

    snprintf(evalue, sizeof evalue, "%s is not available in this cpcontroller yet",
             cpar_msg_type(m));
    reply_error(ctl, m, reply_type, "NotImplementedError", evalue);
}

static void dispatch_query(ctl_t *ctl, cpar_msg_t *m)
{
    const char *t = cpar_msg_type(m);
    char evalue[300];

    cpar_debug("hub::query %s", t);
    if (strcmp(t, "connection_request") == 0)
        on_connection_request(ctl, m);
    else if (strcmp(t, "registration_request") == 0)
        ctl_handle_registration(ctl, m);
    else if (strcmp(t, "unregistration_request") == 0)
        ctl_handle_unregistration(ctl, m);
    else if (strcmp(t, "queue_request") == 0)
        on_queue_request(ctl, m);
    else if (strcmp(t, "result_request") == 0)
        on_result_request(ctl, m);
    else if (strcmp(t, "history_request") == 0)
        on_history_request(ctl, m);
    else if (strcmp(t, "shutdown_request") == 0)
        on_shutdown_request(ctl, m);
    else if (strcmp(t, "db_request") == 0)
        on_not_yet(ctl, m, "db_reply");
    else if (strcmp(t, "purge_request") == 0)
        on_not_yet(ctl, m, "purge_reply");
    else if (strcmp(t, "resubmit_request") == 0)
        on_not_yet(ctl, m, "resubmit_reply");
    else if (strcmp(t, "become_dask_request") == 0)
        on_not_yet(ctl, m, "become_dask_reply");
    else if (strcmp(t, "stop_distributed_request") == 0) {
        json_t *ok = json_pack("{s:s}", "status", "ok");

        ctl_reply(ctl, m, "stop_distributed_reply", ok, NULL, 0);
        json_decref(ok);
    } else {
        snprintf(evalue, sizeof evalue, "\"Bad Message Type: '%s'\"", t);
        reply_error(ctl, m, "hub_error", "KeyError", evalue);
    }
}

void ctl_on_query(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < 256; budget++) {
        int rc = ctl_recv(ctl, CHAN_QUERY);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0 && cpar_msg_parse(&ctl->in, CPAR_PARSE_HEADER) == 0)
            dispatch_query(ctl, &ctl->in);
        else if (rc == 0)
            ctl_drop(ctl, CHAN_QUERY, &ctl->in, "malformed header");
    }
    cpar_msg_clear(&ctl->in);
}
