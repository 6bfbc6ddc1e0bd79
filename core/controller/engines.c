/*
 * engines.c - the engine table: registration (id assignment, reply, pending until the first
 * heartbeat), finishing registration, and unregistration from any trigger (request, nanny,
 * heart failure, iopub shutdown_reply), each announced once (and a recent registration again to
 * a subscriber that has just arrived).
 */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

ctl_engine_t *ctl_engine_by_uuid(ctl_t *ctl, const void *uuid, size_t len)
{
    return cpar_map_get(&ctl->by_uuid, uuid, len);
}

ctl_engine_t *ctl_engine_by_id(ctl_t *ctl, int id)
{
    char key[24];

    snprintf(key, sizeof key, "%d", id);
    return cpar_map_gets(&ctl->by_id, key);
}

ctl_engine_t *ctl_engine_new(ctl_t *ctl, int id, const char *uuid, size_t len)
{
    ctl_engine_t *e = calloc(1, sizeof *e);
    char key[24];

    if (!e || !(e->uuid = malloc(len + 1))) {
        free(e);
        return NULL;
    }
    memcpy(e->uuid, uuid, len);
    e->uuid[len] = '\0';
    e->uuidlen = len;
    e->id = id;
    e->reg_started_ms = cpar_loop_now_ms(ctl->loop);
    cpar_map_init(&e->queue);
    cpar_map_init(&e->tasks);
    snprintf(key, sizeof key, "%d", id);
    if (cpar_map_put(&ctl->by_uuid, uuid, len, e, NULL) || cpar_map_puts(&ctl->by_id, key, e)) {
        cpar_map_del(&ctl->by_uuid, uuid, len);
        free(e->uuid);
        free(e);
        return NULL;
    }
    cpar_map_del(&ctl->dead, uuid, len);
    return e;
}

static void engine_free(ctl_engine_t *e)
{
    cpar_map_fini(&e->queue, NULL);
    cpar_map_fini(&e->tasks, NULL);
    free(e->uuid);
    free(e);
}

static void engine_forget(ctl_t *ctl, ctl_engine_t *e)
{
    char key[24];

    snprintf(key, sizeof key, "%d", e->id);
    cpar_map_del(&ctl->by_uuid, e->uuid, e->uuidlen);
    cpar_map_del(&ctl->by_id, key, strlen(key));
    cpar_map_put(&ctl->dead, e->uuid, e->uuidlen, (void *)1, NULL);
    engine_free(e);
}

void ctl_engines_free(ctl_t *ctl)
{
    const char *k;
    void *v;

    for (size_t it = cpar_map_next(&ctl->by_uuid, 0, &k, NULL, &v); it;
         it = cpar_map_next(&ctl->by_uuid, it, &k, NULL, &v))
        engine_free(v);
    cpar_map_fini(&ctl->by_uuid, NULL);
    cpar_map_fini(&ctl->by_id, NULL);
    cpar_map_fini(&ctl->dead, NULL);
}

/* ipyparallel's id rule: a requested id that is free is granted; otherwise the counter. */
static int new_engine_id(ctl_t *ctl, json_t *requested)
{
    if (json_is_integer(requested)) {
        json_int_t want = json_integer_value(requested);

        if (want >= 0 && want < 1000000000 && !ctl_engine_by_id(ctl, (int)want)) {
            if (want >= ctl->next_id)
                ctl->next_id = (int)want + 1;
            return (int)want;
        }
    }
    return ctl->next_id++;
}

void ctl_handle_registration(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *uuid, *reply, *info;
    ctl_engine_t *e;
    const char *u;
    size_t ulen;
    char evalue[200];

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    uuid = json_object_get(m->content, "uuid");
    if (!json_is_string(uuid) || json_string_length(uuid) == 0 ||
        json_string_length(uuid) > 255) {
        /* ipyparallel sends nothing here either; the engine gives up after its timeout. */
        ctl_drop(ctl, CHAN_QUERY, m, "registration_request without a uuid");
        return;
    }
    u = json_string_value(uuid);
    ulen = json_string_length(uuid);
    e = ctl_engine_by_uuid(ctl, u, ulen);
    if (e) {
        snprintf(evalue, sizeof evalue, "\"%s '%s' in use\"", e->registered ? "uuid" : "heart_id",
                 u);
        cpar_warn("registration of engine %s refused: uuid in use", u);
        reply = cpar_error_content("KeyError", evalue);
        ctl_reply(ctl, m, "registration_reply", reply, NULL, 0);
        json_decref(reply);
        return;
    }
    e = ctl_engine_new(ctl, new_engine_id(ctl, json_object_get(m->content, "id")), u, ulen);
    if (!e) {
        cpar_error("out of memory registering engine %s", u);
        return;
    }
    info = ctl_engine_connection_info(ctl);
    reply = json_pack("{s:i, s:s, s:I, s:o}", "id", e->id, "status", "ok", "hb_period",
                      (json_int_t)ctl->set.hb_period_ms, "connection_info",
                      info ? info : json_object());
    ctl_reply(ctl, m, "registration_reply", reply, NULL, 0);
    json_decref(reply);
    ctl_heartbeat_hurry(ctl);
    cpar_info("registration::engine %d (%s) waiting for its first heartbeat", e->id, e->uuid);
}

/* The first pong of a pending engine: it is now registered and announced. */
void ctl_finish_registration(ctl_t *ctl, ctl_engine_t *e, int notify)
{
    json_t *content;

    e->registered = 1;
    e->registered_ms = cpar_loop_now_ms(ctl->loop);
    e->misses = 0;
    e->beat = 1;
    if (notify) {
        content = json_pack("{s:i, s:s}", "id", e->id, "uuid", e->uuid);
        ctl_notify(ctl, "registration_notification", content, NULL);
        json_decref(content);
    }
    cpar_info("registration::finished registering engine %d (%s)", e->id, e->uuid);
    ctl_tasks_engine_added(ctl, e);
    ctl_save_engine_state(ctl);
}

/* How far back a new subscriber is told of registrations it may have missed. */
#define NOTIFY_REPLAY_MS 10000

/*
 * A client asks for the engine list (connection_request) and only then subscribes to the
 * notifications, so an engine whose registration completes in between is announced to nobody
 * that client hears, and its wait_for_engines() never counts it. New subscribers are told again
 * of the engines still registered that were announced in the last NOTIFY_REPLAY_MS (once for
 * all the subscriptions read in one turn); a client that already knows one ignores the repeat.
 */
void ctl_on_notify_subscribe(void *arg)
{
    ctl_t *ctl = arg;
    int64_t since = cpar_loop_now_ms(ctl->loop) - NOTIFY_REPLAY_MS;
    int arrived = 0;
    ctl_engine_t **v;
    size_t ne;

    for (int budget = 0; budget < 512; budget++) {
        unsigned char first = 0;
        int n = zmq_recv(ctl->sock[CHAN_NOTIFY], &first, 1, ZMQ_DONTWAIT);

        if (n < 0)
            break;
        arrived |= n > 0 && first == 1; /* else an unsubscription */
    }
    if (!arrived || !(v = ctl_engines_sorted(ctl, &ne)))
        return;
    for (size_t i = 0; i < ne; i++) {
        json_t *content;

        if (!v[i]->registered || v[i]->registered_ms < since)
            continue;
        content = json_pack("{s:i, s:s}", "id", v[i]->id, "uuid", v[i]->uuid);
        ctl_notify(ctl, "registration_notification", content, NULL);
        json_decref(content);
    }
    free(v);
}

void ctl_unregister_engine(ctl_t *ctl, ctl_engine_t *e, const char *why)
{
    json_t *content;

    if (!e->registered) {
        cpar_info("registration::cancelled pending registration of %s (%s)", e->uuid, why);
        engine_forget(ctl, e);
        return;
    }
    cpar_info("registration::unregister engine %d (%s): %s", e->id, e->uuid, why);
    content = json_pack("{s:i, s:s}", "id", e->id, "uuid", e->uuid);
    ctl_notify(ctl, "unregistration_notification", content, NULL);
    json_decref(content);
    ctl_tasks_engine_removed(ctl, e);
    ctl_bcast_engine_removed(ctl, e);
    ctl_strand_engine(ctl, e);
    engine_forget(ctl, e);
    ctl_save_engine_state(ctl);
}

void ctl_handle_unregistration(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *id;
    ctl_engine_t *e;

    if (cpar_msg_parse(m, CPAR_PARSE_CONTENT) != 0) {
        ctl_drop(ctl, CHAN_QUERY, m, "malformed content");
        return;
    }
    id = json_object_get(m->content, "id");
    e = json_is_integer(id) ? ctl_engine_by_id(ctl, (int)json_integer_value(id)) : NULL;
    if (!e) {
        cpar_info("registration::unregistration_request for unknown or departed engine");
        return;
    }
    ctl_unregister_engine(ctl, e, "unregistration_request");
}

static int cmp_engine_id(const void *a, const void *b)
{
    const ctl_engine_t *x = *(ctl_engine_t *const *)a, *y = *(ctl_engine_t *const *)b;

    return (x->id > y->id) - (x->id < y->id);
}

ctl_engine_t **ctl_engines_sorted(ctl_t *ctl, size_t *n)
{
    ctl_engine_t **v = malloc((ctl->by_uuid.len + 1) * sizeof *v);
    const char *k;
    void *val;

    *n = 0;
    if (!v)
        return NULL;
    for (size_t it = cpar_map_next(&ctl->by_uuid, 0, &k, NULL, &val); it;
         it = cpar_map_next(&ctl->by_uuid, it, &k, NULL, &val)) {
        ctl_engine_t *e = val;

        if (e->registered)
            v[(*n)++] = e;
    }
    qsort(v, *n, sizeof *v, cmp_engine_id);
    return v;
}

int ctl_strlist_push(ctl_strlist_t *l, const char *s)
{
    char *copy;

    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, ncap * sizeof *nv);

        if (!nv)
            return CPAR_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    copy = strdup(s);
    if (!copy)
        return CPAR_ENOMEM;
    l->v[l->n++] = copy;
    return 0;
}

void ctl_strlist_free(ctl_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
