/*
 * hub.c - the query channel (the registration ROUTER): connection, registration, queue status,
 * results, history, the task-database requests (db_query, purge, resubmit), shutdown; and the
 * notification PUB.
 *
 * Replies go to the first routing identity of the request with the request's header as parent,
 * except registration_reply (all identities, no parent), as ipyparallel's hub does. Errors have
 * ipyparallel's wrap_exception shape, with the exception class and str() a Python hub would give.
 */
#include "controller.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "wire/query.h"

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

/*
 * Python's repr() of a str, as str(KeyError(text)) and "%r" show it: single quotes unless the text
 * holds a single quote and no double quote; backslashes, the quote and control characters escaped.
 * Truncated (still quoted) when out is too small.
 */
static void py_repr(const char *s, char *out, size_t outlen)
{
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    size_t o = 0;

    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    out[o++] = q;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n;

        if (c == '\\' || c == (unsigned char)q)
            n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            n = (size_t)snprintf(esc, sizeof esc, "\\n");
        else if (c == '\r')
            n = (size_t)snprintf(esc, sizeof esc, "\\r");
        else if (c == '\t')
            n = (size_t)snprintf(esc, sizeof esc, "\\t");
        else if (c < 0x20 || c == 0x7f)
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        else {
            esc[0] = (char)c;
            n = 1;
        }
        if (o + n + 2 > outlen)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = q;
    out[o] = '\0';
}

/* KeyError(text): its str() is the repr of the text. */
static void reply_key_error(ctl_t *ctl, cpar_msg_t *req, const char *msg_type, const char *text)
{
    char evalue[1200];

    py_repr(text, evalue, sizeof evalue);
    reply_error(ctl, req, msg_type, "KeyError", evalue);
}

/* ipyparallel's NoData (a KeyError whose str() is this, trailing blank included). */
#define NODATA_TEXT "NoDB backend doesn't store any data. "

/*
 * A failed task-database call, as the Python hub reports the backend's exception. `query_op`: the
 * call was find/drop_matching, where CPAR_ENOTSUP without a text of the backend's means it answers
 * no queries (NoDB), and with one that it cannot evaluate a term (ipyparallel's SQLite raises
 * KeyError "Unsupported operator" there).
 */
static void reply_db_error(ctl_t *ctl, cpar_msg_t *req, const char *msg_type, int rc,
                           int query_op)
{
    const char *text = ctl->db ? cpar_db_error(ctl->db) : "";

    if (rc == CPAR_ENOTSUP && (!query_op || !*text))
        reply_error(ctl, req, msg_type, "NoData", NODATA_TEXT);
    else if (rc == CPAR_ENOTSUP || rc == CPAR_EINVAL)
        reply_key_error(ctl, req, msg_type, *text ? text : cpar_strerror(rc));
    else
        reply_error(ctl, req, msg_type, "RuntimeError", *text ? text : cpar_strerror(rc));
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

/* ---- buffers copied out of borrowed records, to send as frames ---- */

typedef struct bufcoll {
    cpar_bytes_t *bufs;
    void **owned;
    size_t n, cap;
    int failed; /* out of memory: some buffer is missing */
} bufcoll_t;

static void bufcoll_push(bufcoll_t *bc, const void *data, size_t len)
{
    void *copy;

    if (bc->n == bc->cap) {
        size_t ncap = bc->cap ? bc->cap * 2 : 8;
        cpar_bytes_t *nb = realloc(bc->bufs, ncap * sizeof *nb);
        void **no;

        if (nb)
            bc->bufs = nb;
        no = nb ? realloc(bc->owned, ncap * sizeof *no) : NULL;
        if (no)
            bc->owned = no;
        if (!nb || !no) {
            bc->failed = 1;
            return;
        }
        bc->cap = ncap;
    }
    copy = malloc(len ? len : 1);
    if (!copy) {
        bc->failed = 1;
        return;
    }
    if (len)
        memcpy(copy, data, len);
    bc->owned[bc->n] = copy;
    bc->bufs[bc->n++] = (cpar_bytes_t){copy, len};
}

static void bufcoll_free(bufcoll_t *bc)
{
    for (size_t i = 0; i < bc->n; i++)
        free(bc->owned[i]);
    free(bc->owned);
    free(bc->bufs);
    memset(bc, 0, sizeof *bc);
}

static json_t *json_or_null(const char *text)
{
    json_t *v;

    if (!text)
        return json_null();
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

static json_t *date_or_null(int has, int64_t us)
{
    char iso[CPAR_ISO_LEN];

    return has ? json_string(cpar_iso_format(us, iso)) : json_null();
}

/* ---- result_request ---- */

typedef struct result_ctx {
    json_t *content; /* where completed records go */
    bufcoll_t bc;    /* their result buffers */
    int status_only;
    int found;
    int complete;
} result_ctx_t;

static void result_record_cb(void *arg, const cpar_record_t *r)
{
    result_ctx_t *rc = arg;
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
                      date_or_null(r->has_received, r->received), "io", io);
    json_object_set_new(rc->content, r->msg_id, entry);
    for (size_t i = 0; i < r->n_result_buffers; i++)
        bufcoll_push(&rc->bc, r->result_buffers[i].data, r->result_buffers[i].len);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The msg_ids of a request's list, sorted and without duplicates (ipyparallel's sorted(set()));
 * non-strings are left out. Borrowed from `ids`; the caller frees the array. NULL on ENOMEM.
 */
static const char **unique_ids(json_t *ids, size_t *n)
{
    const char **v = calloc(json_array_size(ids) + 1, sizeof *v);
    size_t i, k = 0;
    json_t *x;

    *n = 0;
    if (!v)
        return NULL;
    json_array_foreach(ids, i, x)
    {
        if (json_is_string(x))
            v[k++] = json_string_value(x);
    }
    qsort(v, k, sizeof *v, cmp_str);
    for (i = 0; i < k; i++)
        if (*n == 0 || strcmp(v[i], v[*n - 1]) != 0)
            v[(*n)++] = v[i];
    return v;
}

/*
 * Pending ids come from the hub's memory, everything else from the task database: tasks of this
 * run that finished, and ids this run never saw but the database has (an earlier run's, kept by
 * SQLite or MongoDB). Each id's own record decides whether it is complete (ipyparallel 7.1 tests
 * the last record it read instead, and fails with NameError when there is none).
 */
static void on_result_request(ctl_t *ctl, cpar_msg_t *m)
{
    result_ctx_t rc = {0};
    json_t *ids, *pending, *completed;
    const char **sorted;
    size_t n = 0, i;
    int ok = 1, get;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    ids = json_object_get(m->content, "msg_ids");
    if (!json_is_array(ids)) {
        reply_error(ctl, m, "result_reply", "TypeError", "msg_ids must be a list");
        return;
    }
    sorted = unique_ids(ids, &n);
    if (!sorted) {
        reply_error(ctl, m, "result_reply", "MemoryError", "");
        return;
    }
    rc.content = json_pack("{s:s}", "status", "ok");
    rc.status_only = json_is_true(json_object_get(m->content, "status_only"));
    pending = json_array();
    completed = json_array();
    for (i = 0; i < n; i++) {
        const char *id = sorted[i];
        char text[600], evalue[1300];

        if (cpar_map_gets(&ctl->pending, id)) {
            json_array_append_new(pending, json_string(id));
            continue;
        }
        rc.found = rc.complete = 0;
        get = ctl->db ? cpar_db_get(ctl->db, id, result_record_cb, &rc) : CPAR_ENOENT;
        if (get != 0 && get != CPAR_ENOENT) {
            reply_db_error(ctl, m, "result_reply", get, 0);
            goto out;
        }
        if (rc.found) {
            /* A record that never got its result while this hub ran (an earlier run's, or one
             * only iopub output made) is pending, as ipyparallel says. */
            json_array_append_new(rc.complete ? completed : pending, json_string(id));
            continue;
        }
        json_decref(rc.content);
        snprintf(text, sizeof text, "No such message: %s", id);
        py_repr(text, evalue, sizeof evalue);
        rc.content = cpar_error_content("KeyError", evalue);
        ok = 0;
        break;
    }
    if (ok && rc.bc.failed) {
        reply_error(ctl, m, "result_reply", "MemoryError", "out of memory copying buffers");
        goto out;
    }
    if (ok) {
        json_object_set(rc.content, "pending", pending);
        json_object_set(rc.content, "completed", completed);
    }
    ctl_reply(ctl, m, "result_reply", rc.content, rc.bc.bufs, rc.bc.n);
out:
    json_decref(pending);
    json_decref(completed);
    json_decref(rc.content);
    bufcoll_free(&rc.bc);
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
        reply_db_error(ctl, m, "history_reply", rc, 0);
        return;
    }
    content = json_pack("{s:s, s:o}", "status", "ok", "history", history);
    ctl_reply(ctl, m, "history_reply", content, NULL, 0);
    json_decref(content);
}

/* ---- db_request ---- */

enum { FK_JSON, FK_TEXT, FK_DATE };

/* The record fields a db_reply shows, in ipyparallel's TaskRecord order; buffers travel apart. */
static const struct rec_field {
    uint32_t bit;
    const char *name;
    int kind;
    size_t off;     /* char * (FK_JSON, FK_TEXT) or int64_t (FK_DATE) */
    size_t has_off; /* FK_DATE: its protobuf_c_boolean has_ flag */
} rec_fields[] = {
#define RF_STR(bit, f, kind) {bit, #f, kind, offsetof(cpar_record_t, f), 0}
#define RF_DATE(bit, f)                                                                            \
    {bit, #f, FK_DATE, offsetof(cpar_record_t, f), offsetof(cpar_record_t, has_##f)}
    RF_STR(CPAR_REC_HEADER, header, FK_JSON),
    RF_STR(CPAR_REC_CONTENT, content, FK_JSON),
    RF_STR(CPAR_REC_METADATA, metadata, FK_JSON),
    RF_DATE(CPAR_REC_SUBMITTED, submitted),
    RF_STR(CPAR_REC_CLIENT_UUID, client_uuid, FK_TEXT),
    RF_STR(CPAR_REC_ENGINE_UUID, engine_uuid, FK_TEXT),
    RF_DATE(CPAR_REC_STARTED, started),
    RF_DATE(CPAR_REC_COMPLETED, completed),
    RF_STR(CPAR_REC_RESUBMITTED, resubmitted, FK_TEXT),
    RF_DATE(CPAR_REC_RECEIVED, received),
    RF_STR(CPAR_REC_RESULT_HEADER, result_header, FK_JSON),
    RF_STR(CPAR_REC_RESULT_METADATA, result_metadata, FK_JSON),
    RF_STR(CPAR_REC_RESULT_CONTENT, result_content, FK_JSON),
    RF_STR(CPAR_REC_QUEUE, queue, FK_TEXT),
    RF_STR(CPAR_REC_EXECUTE_INPUT, execute_input, FK_TEXT),
    RF_STR(CPAR_REC_EXECUTE_RESULT, execute_result, FK_JSON),
    RF_STR(CPAR_REC_ERROR, error, FK_JSON),
    RF_STR(CPAR_REC_STDOUT, stdout, FK_TEXT),
    RF_STR(CPAR_REC_STDERR, stderr, FK_TEXT),
    RF_STR(CPAR_REC_DISPLAY_DATA, display_data, FK_JSON),
    RF_STR(CPAR_REC_LABEL, label, FK_TEXT),
#undef RF_STR
#undef RF_DATE
};

/* Fields of ipyparallel 7.1's TaskRecord that are not always there: shown only when set. */
#define REC_FIELDS_IF_SET (CPAR_REC_DISPLAY_DATA | CPAR_REC_LABEL)

typedef struct db_ctx {
    json_t *records;
    json_t *buffer_lens, *result_buffer_lens; /* NULL unless the keys ask for them */
    uint32_t always, if_set;                  /* fields shown (null when absent) / when set */
    bufcoll_t bc;
} db_ctx_t;

static void db_record_cb(void *arg, const cpar_record_t *r)
{
    db_ctx_t *dc = arg;
    json_t *rec = json_object();

    if (!rec)
        return;
    json_object_set_new(rec, "msg_id", json_string(r->msg_id));
    for (size_t i = 0; i < sizeof rec_fields / sizeof rec_fields[0]; i++) {
        const struct rec_field *f = &rec_fields[i];
        const char *base = (const char *)r;
        const char *text = f->kind == FK_DATE ? NULL : *(char *const *)(base + f->off);
        int set = f->kind == FK_DATE ? *(const protobuf_c_boolean *)(base + f->has_off) != 0
                                      : text != NULL;
        json_t *v;

        if (!(dc->always & f->bit) && !(set && (dc->if_set & f->bit)))
            continue;
        if (f->kind == FK_DATE)
            v = date_or_null(set, *(const int64_t *)(base + f->off));
        else if (f->kind == FK_JSON)
            v = json_or_null(text);
        else
            v = text ? json_string(text) : json_null();
        json_object_set_new(rec, f->name, v ? v : json_null());
    }
    json_array_append_new(dc->records, rec);
    if (dc->buffer_lens) {
        json_array_append_new(dc->buffer_lens, json_integer((json_int_t)r->n_buffers));
        for (size_t i = 0; i < r->n_buffers; i++)
            bufcoll_push(&dc->bc, r->buffers[i].data, r->buffers[i].len);
    }
    if (dc->result_buffer_lens) {
        json_array_append_new(dc->result_buffer_lens,
                              json_integer((json_int_t)r->n_result_buffers));
        for (size_t i = 0; i < r->n_result_buffers; i++)
            bufcoll_push(&dc->bc, r->result_buffers[i].data, r->result_buffers[i].len);
    }
}

/*
 * Parse a JSON value of the request as a query (absent: {}, matching everything). On a bad
 * query, replies KeyError with the parser's text and returns NULL.
 */
static cpar_query_t *parse_query(ctl_t *ctl, cpar_msg_t *m, const char *reply_type, json_t *v)
{
    char err[512] = "";
    char *text = v ? cpar_json_dumps(v) : NULL;
    cpar_query_t *q = NULL;
    int rc;

    if (v && !text)
        rc = CPAR_ENOMEM;
    else
        rc = cpar_query_parse(text ? text : "{}", text ? strlen(text) : 2, &q, err, sizeof err);
    free(text);
    if (rc == 0)
        return q;
    if (rc == CPAR_ENOMEM)
        reply_error(ctl, m, reply_type, "MemoryError", "");
    else
        reply_key_error(ctl, m, reply_type, *err ? err : "invalid query");
    return NULL;
}

/* ipyparallel's Hub.db_query: find_records(query, keys), buffers as frames when asked for. */
static void on_db_request(ctl_t *ctl, cpar_msg_t *m)
{
    db_ctx_t dc = {0};
    json_t *keys, *content;
    cpar_query_t *q;
    uint32_t fields = 0;
    char err[512] = "";
    char *keys_text = NULL;
    int rc, keys_given;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    keys = json_object_get(m->content, "keys");
    keys_given = keys && !json_is_null(keys);
    if (keys_given && !(keys_text = cpar_json_dumps(keys))) {
        reply_error(ctl, m, "db_reply", "MemoryError", "");
        return;
    }
    rc = cpar_query_parse_keys(keys_text, keys_text ? strlen(keys_text) : 0, &fields, err,
                               sizeof err);
    free(keys_text);
    if (rc) {
        reply_key_error(ctl, m, "db_reply", *err ? err : "Bad record key(s)");
        return;
    }
    q = parse_query(ctl, m, "db_reply", json_object_get(m->content, "query"));
    if (!q)
        return;
    dc.records = json_array();
    if (keys_given) {
        dc.always = fields & ~(uint32_t)(CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS);
        if (fields & CPAR_REC_BUFFERS)
            dc.buffer_lens = json_array();
        if (fields & CPAR_REC_RESULT_BUFFERS)
            dc.result_buffer_lens = json_array();
    } else {
        fields &= ~(uint32_t)(CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS);
        dc.always = fields & ~(uint32_t)REC_FIELDS_IF_SET;
        dc.if_set = fields & REC_FIELDS_IF_SET;
    }
    rc = ctl->db ? cpar_db_find(ctl->db, q, fields, db_record_cb, &dc) : CPAR_ENOTSUP;
    cpar_query_free(q);
    if (rc) {
        reply_db_error(ctl, m, "db_reply", rc, 1);
    } else if (dc.bc.failed) {
        reply_error(ctl, m, "db_reply", "MemoryError", "out of memory copying buffers");
    } else {
        content = json_pack("{s:s, s:O, s:O, s:O}", "status", "ok", "records", dc.records,
                            "buffer_lens", dc.buffer_lens ? dc.buffer_lens : json_null(),
                            "result_buffer_lens",
                            dc.result_buffer_lens ? dc.result_buffer_lens : json_null());
        ctl_reply(ctl, m, "db_reply", content, dc.bc.bufs, dc.bc.n);
        json_decref(content);
    }
    json_decref(dc.records);
    json_decref(dc.buffer_lens);
    json_decref(dc.result_buffer_lens);
    bufcoll_free(&dc.bc);
}

/* ---- purge_request ---- */

/* drop_matching that tells the client what failed; NoDB stores nothing, so dropping succeeds. */
static int purge_matching(ctl_t *ctl, cpar_msg_t *m, const cpar_query_t *q)
{
    size_t dropped = 0;
    int rc = ctl->db ? cpar_db_drop_matching(ctl->db, q, &dropped) : 0;

    if (rc == CPAR_ENOTSUP && !*cpar_db_error(ctl->db))
        rc = 0;
    if (rc) {
        reply_db_error(ctl, m, "purge_reply", rc, 1);
        return rc;
    }
    if (dropped)
        cpar_debug("hub::purged %zu record(s)", dropped);
    return 0;
}

/* ipyparallel's Hub.purge_results. Only the database forgets; the hub's counts are kept. */
static void on_purge_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *ids, *eids, *x, *ok;
    char text[700], evalue[600];
    size_t i;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    cpar_info("hub::dropping records (purge_request)");
    ids = json_object_get(m->content, "msg_ids");
    if (json_is_string(ids) && strcmp(json_string_value(ids), "all") == 0) {
        json_t *all = json_pack("{s:{s:n}}", "completed", "$ne");
        cpar_query_t *q = parse_query(ctl, m, "purge_reply", all);

        json_decref(all);
        if (!q || purge_matching(ctl, m, q) != 0) {
            cpar_query_free(q);
            return;
        }
        cpar_query_free(q);
    } else {
        const char **v;
        size_t n = 0;

        if (ids && !json_is_array(ids)) {
            reply_error(ctl, m, "purge_reply", "TypeError", "msg_ids must be a list or 'all'");
            return;
        }
        json_array_foreach(ids, i, x)
        {
            if (json_is_string(x) && cpar_map_gets(&ctl->pending, json_string_value(x))) {
                py_repr(json_string_value(x), evalue, sizeof evalue);
                snprintf(text, sizeof text, "msg pending: %s", evalue);
                reply_error(ctl, m, "purge_reply", "IndexError", text);
                return;
            }
        }
        v = unique_ids(ids, &n);
        if (!v) {
            reply_error(ctl, m, "purge_reply", "MemoryError", "");
            return;
        }
        if (n) {
            cpar_query_t *q = NULL;
            int rc = cpar_query_new_ids(v, n, &q);

            if (rc == 0)
                rc = purge_matching(ctl, m, q);
            else
                reply_error(ctl, m, "purge_reply", "MemoryError", "");
            cpar_query_free(q);
            if (rc) {
                free(v);
                return;
            }
        }
        free(v);
        eids = json_object_get(m->content, "engine_ids");
        json_array_foreach(eids, i, x)
        {
            ctl_engine_t *e = json_is_integer(x) && json_integer_value(x) >= 0 &&
                                      json_integer_value(x) <= 0x7fffffff
                                  ? ctl_engine_by_id(ctl, (int)json_integer_value(x))
                                  : NULL;
            json_t *qj;
            cpar_query_t *q;

            if (!e || !e->registered) {
                char *bad = json_dumps(x, JSON_ENCODE_ANY);

                snprintf(text, sizeof text, "No such engine: %s", bad ? bad : "?");
                free(bad);
                reply_error(ctl, m, "purge_reply", "IndexError", text);
                return;
            }
            qj = json_pack("{s:s, s:{s:n}}", "engine_uuid", e->uuid, "completed", "$ne");
            q = parse_query(ctl, m, "purge_reply", qj);
            json_decref(qj);
            if (!q || purge_matching(ctl, m, q) != 0) {
                cpar_query_free(q);
                return;
            }
            cpar_query_free(q);
        }
    }
    ok = json_pack("{s:s}", "status", "ok");
    ctl_reply(ctl, m, "purge_reply", ok, NULL, 0);
    json_decref(ok);
}

/* ---- resubmit_request ---- */

/* The routing identity of resubmitted tasks. ZeroMQ refuses identities that start with a zero
 * byte (they are its own generated ones, always 5 bytes long), so no peer has this one, and the
 * task socket drops the replies: as in ipyparallel, results reach clients through the hub. */
static const char resubmit_ident[] = "\0cpar-resubmit";
#define RESUBMIT_IDENT_LEN (sizeof resubmit_ident - 1)

typedef struct resub {
    char *header, *content;
    bufcoll_t bc;
    int found;
    int listed; /* named in the "No such msg(s)" list already */
} resub_t;

typedef struct resub_ctx {
    cpar_map_t by_id; /* requested msg_id -> resub_t */
    size_t matches;   /* records the backend found */
    size_t found;     /* distinct requested ids among them */
} resub_ctx_t;

static void resub_cb(void *arg, const cpar_record_t *r)
{
    resub_ctx_t *rc = arg;
    resub_t *x = cpar_map_gets(&rc->by_id, r->msg_id);

    rc->matches++;
    if (!x || x->found)
        return;
    x->found = 1;
    rc->found++;
    x->header = r->header ? strdup(r->header) : NULL;
    x->content = r->content ? strdup(r->content) : NULL;
    for (size_t i = 0; i < r->n_buffers; i++)
        bufcoll_push(&x->bc, r->buffers[i].data, r->buffers[i].len);
}

static void resub_free(void *p)
{
    resub_t *x = p;

    free(x->header);
    free(x->content);
    bufcoll_free(&x->bc);
    free(x);
}

/* The old header of a found record, if it can be resubmitted (an object with a msg_type). */
static json_t *resub_header(const resub_t *x)
{
    json_t *h = x->header ? json_loads(x->header, 0, NULL) : NULL;

    if (!json_is_string(json_object_get(h, "msg_type"))) {
        json_decref(h);
        return NULL;
    }
    return h;
}

/*
 * Build the new request for one record (ipyparallel's resubmit_task): the old header with a fresh
 * msg_id and date, the old header as parent, empty metadata (so after/follow/targets/retries/
 * timeout are gone), the old content and buffers; and hand it to the task scheduler. Returns the
 * new msg_id (malloc'd), or NULL when out of memory.
 */
static char *resubmit_one(ctl_t *ctl, const char *old_id, const resub_t *x)
{
    json_t *old = resub_header(x);
    json_t *content = x->content ? json_loads(x->content, 0, NULL) : NULL;
    json_t *fresh = NULL, *id, *date;
    cpar_bytes_t ident = {resubmit_ident, RESUBMIT_IDENT_LEN};
    cpar_msg_t out;
    char *new_id = NULL;

    cpar_msg_init(&out);
    if (!json_is_object(content)) {
        json_decref(content);
        content = json_object();
    }
    if (!old || !content ||
        cpar_session_build(&ctl->session, &out, &ident, 1,
                           json_string_value(json_object_get(old, "msg_type")), old, NULL, content,
                           x->bc.bufs, x->bc.n) != 0)
        goto done;
    id = json_object_get(out.header, "msg_id");
    date = json_object_get(out.header, "date");
    if (!(fresh = json_deep_copy(old)) || json_object_set(fresh, "msg_id", id) != 0 ||
        json_object_set(fresh, "date", date) != 0 ||
        cpar_msg_set_part(&out, CPAR_PART_HEADER, fresh) != 0 ||
        cpar_session_sign(&ctl->session, &out) != 0 ||
        !(new_id = strdup(json_string_value(id))))
        goto done;
    cpar_debug("hub::resubmitting %s as %s", old_id, new_id);
    ctl_tasks_submit(ctl, &out, new_id);
done:
    cpar_msg_fini(&out);
    json_decref(fresh);
    json_decref(old);
    json_decref(content);
    return new_id;
}

/* KeyError("No such msg(s): %r" % missing), listed in the client's order. */
static void reply_missing(ctl_t *ctl, cpar_msg_t *m, json_t *ids, resub_ctx_t *rc)
{
    char list[600] = "[", item[300], text[700];
    size_t len = 1, shown = 0, i;
    json_t *x;

    json_array_foreach(ids, i, x)
    {
        resub_t *r = json_is_string(x) ? cpar_map_gets(&rc->by_id, json_string_value(x)) : NULL;
        int wrote;

        if (!r || r->found || r->listed)
            continue;
        r->listed = 1;
        py_repr(json_string_value(x), item, sizeof item);
        wrote = snprintf(list + len, sizeof list - len, "%s%s", shown++ ? ", " : "", item);
        if (wrote < 0 || (size_t)wrote >= sizeof list - len - 1)
            break; /* it does not fit: the list is cut short */
        len += (size_t)wrote;
    }
    list[len] = ']';
    list[len + 1] = '\0';
    snprintf(text, sizeof text, "No such msg(s): %s", list);
    reply_key_error(ctl, m, "resubmit_reply", text);
}

/* ipyparallel's Hub.resubmit_task; pending (in-flight) ids may be resubmitted too. */
static void on_resubmit_request(ctl_t *ctl, cpar_msg_t *m)
{
    resub_ctx_t rc = {0};
    json_t *ids, *resubmitted = NULL, *reply;
    const char **v = NULL;
    cpar_query_t *q = NULL;
    size_t n = 0, i;
    char **new_ids = NULL;
    int err;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    ids = json_object_get(m->content, "msg_ids");
    if (!json_is_array(ids)) {
        reply_error(ctl, m, "resubmit_reply", "TypeError", "msg_ids must be a list");
        return;
    }
    cpar_map_init(&rc.by_id);
    v = unique_ids(ids, &n);
    err = !v || cpar_query_new_ids(v, n, &q) != 0;
    for (i = 0; !err && i < n; i++) {
        resub_t *x = calloc(1, sizeof *x);

        if (!x || cpar_map_puts(&rc.by_id, v[i], x) != 0) {
            free(x);
            err = 1;
        }
    }
    if (err) {
        reply_error(ctl, m, "resubmit_reply", "MemoryError", "");
        goto out;
    }
    err = ctl->db ? cpar_db_find(ctl->db, q, CPAR_REC_HEADER | CPAR_REC_CONTENT | CPAR_REC_BUFFERS,
                                 resub_cb, &rc)
                  : CPAR_ENOTSUP;
    if (err) {
        reply_db_error(ctl, m, "resubmit_reply", err, 1);
        goto out;
    }
    if (rc.matches > n) {
        reply_error(ctl, m, "resubmit_reply", "RuntimeError",
                    "DB appears to be in an inconsistent state.More matching records were found "
                    "than should exist");
        goto out;
    }
    if (rc.found < n) {
        reply_missing(ctl, m, ids, &rc);
        goto out;
    }
    for (i = 0; i < n; i++) {
        resub_t *x = cpar_map_gets(&rc.by_id, v[i]);
        json_t *h = resub_header(x);
        char text[700];

        json_decref(h);
        if (!h) { /* e.g. a record that only iopub output made: ipyparallel fails with TypeError */
            snprintf(text, sizeof text, "cannot resubmit %.600s: its record has no request header",
                     v[i]);
            reply_error(ctl, m, "resubmit_reply", "TypeError", text);
            goto out;
        }
        if (x->bc.failed) {
            reply_error(ctl, m, "resubmit_reply", "MemoryError", "out of memory copying buffers");
            goto out;
        }
    }
    new_ids = calloc(n + 1, sizeof *new_ids);
    resubmitted = json_object();
    for (i = 0; new_ids && resubmitted && i < n; i++) {
        new_ids[i] = resubmit_one(ctl, v[i], cpar_map_gets(&rc.by_id, v[i]));
        if (!new_ids[i])
            break;
        json_object_set_new(resubmitted, v[i], json_string(new_ids[i]));
    }
    if (i < n || !new_ids || !resubmitted) {
        reply_error(ctl, m, "resubmit_reply", "MemoryError", "out of memory resubmitting");
    } else {
        reply = json_pack("{s:s, s:O}", "status", "ok", "resubmitted", resubmitted);
        ctl_reply(ctl, m, "resubmit_reply", reply, NULL, 0);
        json_decref(reply);
    }
    /* Afterwards, as ipyparallel: each original record names its resubmission. */
    for (i = 0; new_ids && i < n && new_ids[i]; i++) {
        cpar_record_t rec;
        int urc;

        cpar_record_init(&rec);
        rec.msg_id = (char *)v[i];
        rec.resubmitted = new_ids[i];
        urc = cpar_db_update(ctl->db, &rec, CPAR_REC_RESUBMITTED);
        if (urc)
            cpar_warn("db::marking %s resubmitted failed: %s%s%s", v[i], cpar_strerror(urc),
                      *cpar_db_error(ctl->db) ? ": " : "", cpar_db_error(ctl->db));
    }
out:
    for (i = 0; new_ids && i < n; i++)
        free(new_ids[i]);
    free(new_ids);
    json_decref(resubmitted);
    cpar_query_free(q);
    cpar_map_fini(&rc.by_id, resub_free);
    free(v);
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
        on_db_request(ctl, m);
    else if (strcmp(t, "purge_request") == 0)
        on_purge_request(ctl, m);
    else if (strcmp(t, "resubmit_request") == 0)
        on_resubmit_request(ctl, m);
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
