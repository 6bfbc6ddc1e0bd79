/*
 * records.c - the hub's task records: created when a request passes, completed when its reply
 * passes, filled with iopub output, and failed with EngineError when their engine dies. The
 * records live in the dbbackend plugin; the hub keeps in memory only what is pending.
 */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"

void ctl_pending_free(void *p)
{
    ctl_pending_t *pd = p;

    if (!pd)
        return;
    free(pd->msg_id);
    free(pd);
}

/*
 * A NUL-terminated view of a frame for a protobuf string field, in one of the controller's
 * reusable scratch buffers (valid until the slot is used again): no allocation per message.
 */
static char *scratch_text(ctl_t *ctl, cpar_msg_t *m, int part, int slot)
{
    cpar_bytes_t b = cpar_msg_frame(m, m->delim + (size_t)part);

    if (b.len + 1 > ctl->scratch_cap[slot]) {
        size_t ncap = b.len + 1 < 256 ? 256 : b.len * 2;
        char *nb = realloc(ctl->scratch[slot], ncap);

        if (!nb)
            return NULL;
        ctl->scratch[slot] = nb;
        ctl->scratch_cap[slot] = ncap;
    }
    memcpy(ctl->scratch[slot], b.data, b.len);
    ctl->scratch[slot][b.len] = '\0';
    return ctl->scratch[slot];
}

/*
 * The message's buffers as protobuf byte fields pointing at the frames (no copy), in an array the
 * controller reuses: valid until the next call. NULL on allocation failure.
 */
static ProtobufCBinaryData *buffer_views(ctl_t *ctl, cpar_msg_t *m)
{
    size_t n = cpar_msg_nbuffers(m);

    if (n > ctl->nbufviews) {
        ProtobufCBinaryData *nv = realloc(ctl->bufviews, n * sizeof *nv);

        if (!nv)
            return NULL;
        ctl->bufviews = nv;
        ctl->nbufviews = n;
    }
    for (size_t i = 0; i < n; i++) {
        cpar_bytes_t b = cpar_msg_frame(m, m->delim + CPAR_PART_BUFFERS + i);

        ctl->bufviews[i].data = (uint8_t *)b.data;
        ctl->bufviews[i].len = b.len;
    }
    return ctl->bufviews;
}

/* A NUL-terminated copy of a frame, for a protobuf string field. */
static char *frame_text(cpar_msg_t *m, int part)
{
    cpar_bytes_t b = cpar_msg_frame(m, m->delim + (size_t)part);
    char *s = malloc(b.len + 1);

    if (s) {
        memcpy(s, b.data, b.len);
        s[b.len] = '\0';
    }
    return s;
}

static void db_log(ctl_t *ctl, const char *what, const char *msg_id, int rc)
{
    cpar_warn("db::%s %s failed: %s%s%s", what, msg_id, cpar_strerror(rc),
              *cpar_db_error(ctl->db) ? ": " : "", cpar_db_error(ctl->db));
}

/* A raw scanned value as a date in microseconds; 0 when absent or not a date. */
static int raw_date(cpar_bytes_t raw, int64_t *us)
{
    char text[64];

    return cpar_json_str(raw, text, sizeof text) == 0 && cpar_iso_parse(text, 1, us) == 0;
}

void ctl_record_request(ctl_t *ctl, cpar_msg_t *m, const char *msg_id, ctl_engine_t *e,
                        const char *queue)
{
    static const char *const header_keys[] = {"date", "session"};
    char session[256];
    cpar_bytes_t hv[2];
    size_t nbufs = cpar_msg_nbuffers(m);
    ctl_pending_t *pd;
    cpar_record_t rec;
    int rc;

    pd = calloc(1, sizeof *pd);
    if (!pd || !(pd->msg_id = strdup(msg_id))) {
        free(pd);
        return;
    }
    pd->engine = e;
    pd->assigned = e != NULL;
    pd->is_task = strcmp(queue, "task") == 0;
    if (cpar_map_puts(&ctl->pending, pd->msg_id, pd) != 0) {
        ctl_pending_free(pd);
        return;
    }
    if (e)
        cpar_map_puts(&e->queue, pd->msg_id, pd);
    else
        ctl->unassigned++;
    if (!ctl->db)
        return;

    cpar_record_init(&rec);
    rec.msg_id = (char *)msg_id;
    rec.header = scratch_text(ctl, m, CPAR_PART_HEADER, 0);
    rec.metadata = scratch_text(ctl, m, CPAR_PART_METADATA, 1);
    rec.content = scratch_text(ctl, m, CPAR_PART_CONTENT, 2);
    if (cpar_msg_scan_keys(m, CPAR_PART_HEADER, header_keys, 2, hv) != 0)
        hv[0] = hv[1] = (cpar_bytes_t){NULL, 0};
    rec.has_submitted = raw_date(hv[0], &rec.submitted);
    rec.client_uuid = cpar_json_str(hv[1], session, sizeof session) == 0 ? session : NULL;
    rec.engine_uuid = e ? e->uuid : NULL;
    rec.queue = (char *)queue;
    if (nbufs && (rec.buffers = buffer_views(ctl, m)))
        rec.n_buffers = nbufs;
    rec.stdout = (char *)"";
    rec.stderr = (char *)"";
    rc = cpar_db_add(ctl->db, &rec);
    if (rc == CPAR_EEXIST)
        rc = cpar_db_update(ctl->db, &rec,
                            CPAR_REC_HEADER | CPAR_REC_METADATA | CPAR_REC_CONTENT |
                                CPAR_REC_BUFFERS | CPAR_REC_SUBMITTED | CPAR_REC_CLIENT_UUID |
                                CPAR_REC_ENGINE_UUID | CPAR_REC_QUEUE);
    if (rc)
        db_log(ctl, "adding", msg_id, rc);
}

const char *const ctl_reply_md_keys[CTL_MD_NKEYS] = {
    [CTL_MD_STATUS] = "status",
    [CTL_MD_ENGINE] = "engine",
    [CTL_MD_STARTED] = "started",
    [CTL_MD_DEPS_MET] = "dependencies_met",
};

void ctl_record_reply(ctl_t *ctl, cpar_msg_t *m, const char *parent_id, ctl_engine_t *e,
                      const cpar_bytes_t *md)
{
    static const char *const date_key[] = {"date"};
    char scanned[512], status[32] = "", engine[256];
    const char *msg_id = parent_id;
    cpar_bytes_t mv[CTL_MD_NKEYS], date;
    size_t nbufs = cpar_msg_nbuffers(m);
    ctl_pending_t *pd;
    cpar_record_t rec;
    int rc, has_engine;

    if (!msg_id) {
        if (cpar_msg_scan_str(m, CPAR_PART_PARENT, "msg_id", scanned, sizeof scanned) != 0)
            return;
        msg_id = scanned;
    }
    pd = cpar_map_gets(&ctl->pending, msg_id);
    if (!pd) /* not a request the hub tracks, or already finished (late or duplicate) */
        return;
    if (!pd->assigned)
        ctl->unassigned--;
    else if (pd->engine)
        cpar_map_dels(pd->is_task ? &pd->engine->tasks : &pd->engine->queue, msg_id);
    if (!md) {
        if (cpar_msg_scan_keys(m, CPAR_PART_METADATA, ctl_reply_md_keys, CTL_MD_NKEYS, mv) != 0)
            memset(mv, 0, sizeof mv);
        md = mv;
    }
    cpar_json_str(md[CTL_MD_STATUS], status, sizeof status);
    if (e && strcmp(status, "aborted") != 0)
        e->completed++;
    has_engine = cpar_json_str(md[CTL_MD_ENGINE], engine, sizeof engine) == 0;

    if (ctl->db) {
        cpar_record_init(&rec);
        rec.msg_id = (char *)msg_id;
        rec.result_header = scratch_text(ctl, m, CPAR_PART_HEADER, 0);
        rec.result_metadata = scratch_text(ctl, m, CPAR_PART_METADATA, 1);
        rec.result_content = scratch_text(ctl, m, CPAR_PART_CONTENT, 2);
        rec.engine_uuid = e ? e->uuid : has_engine ? engine : (char *)"";
        rec.has_started = raw_date(md[CTL_MD_STARTED], &rec.started);
        rec.has_completed = cpar_msg_scan_keys(m, CPAR_PART_HEADER, date_key, 1, &date) == 0 &&
                            raw_date(date, &rec.completed);
        rec.has_received = 1;
        rec.received = cpar_now_us();
        if (!rec.has_completed) {
            rec.has_completed = 1;
            rec.completed = rec.received;
        }
        if (nbufs && (rec.result_buffers = buffer_views(ctl, m)))
            rec.n_result_buffers = nbufs;
        rc = cpar_db_update(ctl->db, &rec,
                            CPAR_REC_RESULT_HEADER | CPAR_REC_RESULT_METADATA |
                                CPAR_REC_RESULT_CONTENT | CPAR_REC_RESULT_BUFFERS |
                                CPAR_REC_ENGINE_UUID | CPAR_REC_STARTED | CPAR_REC_COMPLETED |
                                CPAR_REC_RECEIVED);
        if (rc)
            db_log(ctl, "completing", msg_id, rc);
    }
    cpar_map_dels(&ctl->pending, pd->msg_id);
    ctl_pending_free(pd);
}

void ctl_record_assignment(ctl_t *ctl, const char *msg_id, ctl_engine_t *e)
{
    ctl_pending_t *pd = cpar_map_gets(&ctl->pending, msg_id);

    if (!pd)
        return;
    if (!pd->assigned)
        ctl->unassigned--;
    else if (pd->engine)
        cpar_map_dels(&pd->engine->tasks, msg_id);
    pd->assigned = 1;
    pd->engine = e;
    /* The record learns its engine with the result (engine_uuid): one DB write per task less. */
    cpar_map_puts(&e->tasks, pd->msg_id, pd);
}

void ctl_record_unassign(ctl_t *ctl, const char *msg_id, ctl_engine_t *e)
{
    ctl_pending_t *pd = cpar_map_gets(&ctl->pending, msg_id);

    if (!pd || !pd->assigned)
        return;
    if (pd->engine)
        cpar_map_dels(&pd->engine->tasks, msg_id);
    (void)e;
    pd->engine = NULL;
    pd->assigned = 0;
    ctl->unassigned++;
}

/* ---- iopub ---- */

typedef struct stream_ctx {
    const char *name;
    char *text; /* copy of the current stdout/stderr */
    int found;
} stream_ctx_t;

static void stream_cb(void *arg, const cpar_record_t *r)
{
    stream_ctx_t *sc = arg;
    const char *cur = strcmp(sc->name, "stdout") == 0 ? r->stdout : r->stderr;

    sc->found = 1;
    sc->text = strdup(cur ? cur : "");
}

void ctl_record_iopub(ctl_t *ctl, cpar_msg_t *m)
{
    const char *type = ctl->in_type, *msg_id;
    cpar_record_t rec;
    uint32_t fields = 0;
    char *owned = NULL;
    int rc;

    if (!ctl->db)
        return;
    if (strcmp(type, "stream") != 0 && strcmp(type, "execute_input") != 0 &&
        strcmp(type, "execute_result") != 0 && strcmp(type, "error") != 0 &&
        strcmp(type, "display_data") != 0)
        return;
    if (cpar_msg_parse(m, CPAR_PARSE_PARENT | CPAR_PARSE_CONTENT) != 0)
        return;
    msg_id = cpar_msg_parent_id(m);
    if (!msg_id)
        return;
    cpar_record_init(&rec);
    rec.msg_id = (char *)msg_id;

    if (strcmp(type, "stream") == 0) {
        json_t *name = json_object_get(m->content, "name"), *text = json_object_get(m->content, "text");
        stream_ctx_t sc = {0};
        size_t a, b;

        if (!json_is_string(name) || !json_is_string(text))
            return;
        sc.name = strcmp(json_string_value(name), "stderr") == 0 ? "stderr" : "stdout";
        cpar_db_get(ctl->db, msg_id, stream_cb, &sc);
        a = sc.text ? strlen(sc.text) : 0;
        b = json_string_length(text);
        owned = malloc(a + b + 1);
        if (!owned) {
            free(sc.text);
            return;
        }
        if (a)
            memcpy(owned, sc.text, a);
        memcpy(owned + a, json_string_value(text), b);
        owned[a + b] = '\0';
        free(sc.text);
        if (sc.name[3] == 'o') {
            rec.stdout = owned;
            fields = CPAR_REC_STDOUT;
        } else {
            rec.stderr = owned;
            fields = CPAR_REC_STDERR;
        }
    } else if (strcmp(type, "execute_input") == 0) {
        json_t *code = json_object_get(m->content, "code");

        if (!json_is_string(code))
            return;
        rec.execute_input = (char *)json_string_value(code);
        fields = CPAR_REC_EXECUTE_INPUT;
    } else {
        owned = frame_text(m, CPAR_PART_CONTENT);
        if (!owned)
            return;
        if (strcmp(type, "execute_result") == 0) {
            rec.execute_result = owned;
            fields = CPAR_REC_EXECUTE_RESULT;
        } else if (strcmp(type, "error") == 0) {
            rec.error = owned;
            fields = CPAR_REC_ERROR;
        } else {
            rec.display_data = owned;
            fields = CPAR_REC_DISPLAY_DATA;
        }
    }
    rc = cpar_db_update(ctl->db, &rec, fields);
    if (rc == CPAR_ENOENT) {
        /* Output before (or without) its request: a stub that hub_history leaves out. */
        if (!rec.stdout)
            rec.stdout = (char *)"";
        if (!rec.stderr)
            rec.stderr = (char *)"";
        rc = cpar_db_add(ctl->db, &rec);
    }
    if (rc)
        db_log(ctl, "iopub update of", msg_id, rc);
    free(owned);
}

/* ---- engine death ---- */

typedef struct stranded {
    struct stranded *next; /* in ctl->stranded, until it fires */
    cpar_loop_timer_t *timer;
    ctl_t *ctl;
    char *uuid;
    int id;
    ctl_strlist_t ids;
} stranded_t;

typedef struct header_ctx {
    char reply_type[64];
} header_ctx_t;

static void header_cb(void *arg, const cpar_record_t *r)
{
    header_ctx_t *hc = arg;
    json_t *h = r->header ? json_loads(r->header, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(h, "msg_type"));
    size_t n = t ? strlen(t) : 0;

    if (n > 8 && n - 8 + 7 < sizeof hc->reply_type && strcmp(t + n - 8, "_request") == 0)
        snprintf(hc->reply_type, sizeof hc->reply_type, "%.*s_reply", (int)(n - 8), t);
    json_decref(h);
}

static void stranded_free(stranded_t *s)
{
    ctl_strlist_free(&s->ids);
    free(s->uuid);
    free(s);
}

void ctl_stranded_free_all(ctl_t *ctl)
{
    while (ctl->stranded) {
        stranded_t *s = ctl->stranded;

        ctl->stranded = s->next;
        cpar_loop_timer_stop(ctl->loop, s->timer);
        stranded_free(s);
    }
}

/* registration_timeout after the engine died: its direct requests get EngineError records. */
static void strand_fire(void *arg)
{
    stranded_t *s = arg;
    ctl_t *ctl = s->ctl;
    char now[CPAR_ISO_LEN], evalue[600];

    for (stranded_t **pp = &ctl->stranded; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    cpar_loop_timer_stop(ctl->loop, s->timer);

    for (size_t i = 0; i < s->ids.n; i++) {
        const char *msg_id = s->ids.v[i];
        ctl_pending_t *pd = cpar_map_dels(&ctl->pending, msg_id);
        header_ctx_t hc = {"apply_reply"};
        cpar_record_t rec;
        json_t *content, *rh, *rm;
        int64_t t = cpar_now_us();

        if (!pd)
            continue; /* answered after all */
        ctl_pending_free(pd);
        if (!ctl->db)
            continue;
        cpar_db_get(ctl->db, msg_id, header_cb, &hc);
        snprintf(evalue, sizeof evalue, "Engine %d died while running task '%s'", s->id, msg_id);
        content = cpar_error_content("EngineError", evalue);
        rh = json_pack("{s:s, s:s, s:s}", "msg_type", hc.reply_type, "engine", s->uuid, "date",
                       cpar_iso_format(t, now));
        rm = json_pack("{s:s, s:s}", "engine", s->uuid, "status", "error");
        cpar_record_init(&rec);
        rec.msg_id = (char *)msg_id;
        rec.result_content = cpar_json_dumps(content);
        rec.result_header = cpar_json_dumps(rh);
        rec.result_metadata = cpar_json_dumps(rm);
        rec.has_completed = rec.has_received = 1;
        rec.completed = rec.received = t;
        if (cpar_db_update(ctl->db, &rec,
                           CPAR_REC_RESULT_CONTENT | CPAR_REC_RESULT_HEADER |
                               CPAR_REC_RESULT_METADATA | CPAR_REC_RESULT_BUFFERS |
                               CPAR_REC_COMPLETED | CPAR_REC_RECEIVED) != 0)
            db_log(ctl, "failing", msg_id, CPAR_EIO);
        free(rec.result_content);
        free(rec.result_header);
        free(rec.result_metadata);
        json_decref(content);
        json_decref(rh);
        json_decref(rm);
    }
    if (s->ids.n)
        cpar_info("hub::%zu direct request(s) of dead engine %d failed with EngineError",
                  s->ids.n, s->id);
    stranded_free(s);
}

void ctl_strand_engine(ctl_t *ctl, ctl_engine_t *e)
{
    stranded_t *s;
    const char *k;
    void *v;

    for (size_t it = cpar_map_next(&e->tasks, 0, &k, NULL, &v); it;
         it = cpar_map_next(&e->tasks, it, &k, NULL, &v))
        ((ctl_pending_t *)v)->engine = NULL; /* the task scheduler settles these */
    if (e->queue.len == 0)
        return;
    s = calloc(1, sizeof *s);
    if (!s || !(s->uuid = strdup(e->uuid))) {
        free(s);
        return;
    }
    s->ctl = ctl;
    s->id = e->id;
    for (size_t it = cpar_map_next(&e->queue, 0, &k, NULL, &v); it;
         it = cpar_map_next(&e->queue, it, &k, NULL, &v)) {
        ctl_pending_t *pd = v;

        pd->engine = NULL;
        ctl_strlist_push(&s->ids, pd->msg_id);
    }
    s->timer = cpar_loop_timer_start(ctl->loop, (uint64_t)ctl->set.registration_timeout_s * 1000, 0,
                                     strand_fire, s);
    if (!s->timer) {
        strand_fire(s);
        return;
    }
    s->next = ctl->stranded;
    ctl->stranded = s;
}
