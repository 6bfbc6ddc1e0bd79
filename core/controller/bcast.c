/*
 * bcast.c - the broadcast scheduler behind BroadcastView.
 *
 * One client request names its target engines; each engine gets a re-signed copy whose msg_id is
 * "<original>_<engine uuid>" and whose metadata carries original_msg_id (the client's futures are
 * keyed by these). Replies go back one by one, or, for a coalescing request, as one message that
 * joins every engine's result buffers in the order of the request's targets, with
 * broadcast_targets saying whose is whose.
 *
 * ipyparallel relays through a tree of processes (IPController.broadcast_scheduler_depth); here
 * the tree collapses into one function call, and the depth only sets how many engine-side ports
 * are advertised. Unlike ipyparallel, results keep the request's target order at any depth, an
 * engine error in a coalesced reply is not lost, and a coalescing request whose engine died is
 * dropped instead of waiting forever (the client already failed it).
 */
#include "controller.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

typedef struct bc_target {
    char *uuid;
    json_int_t id;
    cpar_msg_t reply;
    int got;
} bc_target_t;

typedef struct bcast {
    char *orig;
    void *client; /* the client's routing identity on the broadcast socket */
    size_t clientlen;
    bc_target_t *t;
    size_t n, got;
} bcast_t;

static void bcast_free(void *p)
{
    bcast_t *b = p;

    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->t[i].uuid);
        cpar_msg_fini(&b->t[i].reply);
    }
    free(b->t);
    free(b->client);
    free(b->orig);
    free(b);
}

/* Send the engine its own copy of request `m`: new msg_id, original_msg_id, its target only. */
static int send_copy(ctl_t *ctl, cpar_msg_t *m, const char *orig, json_t *pair)
{
    const char *uuid = json_string_value(json_array_get(pair, 0));
    json_t *header = json_deep_copy(m->header), *md = json_deep_copy(m->metadata);
    char *msg_id = NULL;
    cpar_msg_t out;
    int rc = CPAR_ENOMEM;

    cpar_msg_init(&out);
    if (!header || !md || asprintf(&msg_id, "%s_%s", orig, uuid) < 0)
        goto out;
    json_object_set_new(header, "msg_id", json_string(msg_id));
    json_object_set_new(md, "original_msg_id", json_string(orig));
    json_object_set_new(md, "targets", json_pack("[O]", pair));
    if ((rc = cpar_msg_copy(&out, m)) || (rc = cpar_msg_set_part(&out, CPAR_PART_HEADER, header)) ||
        (rc = cpar_msg_set_part(&out, CPAR_PART_METADATA, md)) ||
        (rc = cpar_session_sign(&ctl->session, &out)) ||
        (rc = cpar_msg_prepend_ident(&out, uuid, strlen(uuid))))
        goto out;
    rc = cpar_msg_send(&out, ctl->sock[CHAN_BC_ENGINE]);
out:
    if (rc)
        cpar_warn("broadcast::cannot send %s to engine %s: %s", orig, uuid, cpar_strerror(rc));
    cpar_msg_fini(&out);
    json_decref(header);
    json_decref(md);
    free(msg_id);
    return rc;
}

static void on_request(ctl_t *ctl, cpar_msg_t *m)
{
    json_t *targets, *pair;
    const char *orig;
    bcast_t *b = NULL;
    size_t i;
    int coalescing;

    if (cpar_msg_nidents(m) != 1 ||
        cpar_msg_parse(m, CPAR_PARSE_HEADER | CPAR_PARSE_METADATA) != 0 ||
        !(orig = cpar_msg_id(m))) {
        ctl_drop(ctl, CHAN_BC_CLIENT, m, "malformed broadcast request");
        return;
    }
    targets = json_object_get(m->metadata, "targets");
    json_array_foreach(targets, i, pair)
    {
        if (!json_is_array(pair) || !json_is_string(json_array_get(pair, 0)) ||
            !json_is_integer(json_array_get(pair, 1))) {
            ctl_drop(ctl, CHAN_BC_CLIENT, m, "broadcast targets must be [uuid, id] pairs");
            return;
        }
    }
    if (!json_is_array(targets) || json_array_size(targets) == 0) {
        ctl_drop(ctl, CHAN_BC_CLIENT, m, "broadcast request without targets");
        return;
    }
    coalescing = json_is_true(json_object_get(m->metadata, "is_coalescing"));
    if (coalescing && !cpar_map_gets(&ctl->bcasts, orig)) {
        cpar_bytes_t c = cpar_msg_frame(m, 0);

        b = calloc(1, sizeof *b);
        if (!b || !(b->orig = strdup(orig)) || !(b->client = malloc(c.len ? c.len : 1)) ||
            !(b->t = calloc(json_array_size(targets), sizeof *b->t))) {
            bcast_free(b);
            return;
        }
        memcpy(b->client, c.data, c.len);
        b->clientlen = c.len;
        json_array_foreach(targets, i, pair)
        {
            b->t[i].uuid = strdup(json_string_value(json_array_get(pair, 0)));
            b->t[i].id = json_integer_value(json_array_get(pair, 1));
            cpar_msg_init(&b->t[i].reply);
            b->n++;
        }
        if (cpar_map_puts(&ctl->bcasts, b->orig, b) != 0) {
            bcast_free(b);
            return;
        }
    }
    json_array_foreach(targets, i, pair)
        send_copy(ctl, m, orig, pair);
}

void ctl_on_bc_client(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < 512; budget++) {
        int rc = ctl_recv(ctl, CHAN_BC_CLIENT);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0)
            on_request(ctl, &ctl->in);
    }
    cpar_msg_clear(&ctl->in);
}

/* Every engine answered: one message for the client, buffers in target order. */
static void send_coalesced(ctl_t *ctl, bcast_t *b)
{
    bc_target_t *base = &b->t[b->n - 1];
    json_t *md, *bt;
    cpar_msg_t out;
    int rc;

    /* An error from any engine is what the client must see. */
    for (size_t i = 0; i < b->n; i++) {
        json_t *st = json_object_get(b->t[i].reply.metadata, "status");

        if (!json_is_string(st) || strcmp(json_string_value(st), "ok") != 0) {
            base = &b->t[i];
            break;
        }
    }
    md = json_deep_copy(base->reply.metadata);
    bt = json_array();
    for (size_t i = 0; i < b->n; i++)
        json_array_append_new(bt, json_pack("[s, I]", b->t[i].uuid, b->t[i].id));
    json_object_set_new(md, "broadcast_targets", bt);

    cpar_msg_init(&out);
    rc = cpar_msg_append(&out, b->client, b->clientlen);
    for (int part = 0; !rc && part <= CPAR_PART_CONTENT; part++) {
        cpar_bytes_t f = cpar_msg_frame(&base->reply, base->reply.delim + (size_t)part);

        rc = cpar_msg_append(&out, f.data, f.len);
    }
    for (size_t i = 0; !rc && i < b->n; i++) {
        cpar_msg_t *r = &b->t[i].reply;

        for (size_t k = r->delim + CPAR_PART_BUFFERS; !rc && k < r->n; k++)
            rc = cpar_msg_append_move(&out, &r->f[k]);
    }
    if (!rc)
        rc = cpar_msg_split(&out);
    if (!rc)
        rc = cpar_msg_set_part(&out, CPAR_PART_METADATA, md);
    if (!rc)
        rc = cpar_session_sign(&ctl->session, &out);
    if (!rc)
        rc = cpar_msg_send(&out, ctl->sock[CHAN_BC_CLIENT]);
    if (rc)
        cpar_warn("broadcast::cannot send the coalesced reply of %s: %s", b->orig,
                  cpar_strerror(rc));
    cpar_msg_fini(&out);
    json_decref(md);
}

static void on_reply(ctl_t *ctl, cpar_msg_t *m)
{
    const char *orig;
    cpar_bytes_t src;
    bcast_t *b;

    if (cpar_msg_nidents(m) != 2 || cpar_msg_parse(m, CPAR_PARSE_METADATA) != 0) {
        ctl_drop(ctl, CHAN_BC_ENGINE, m, "malformed broadcast reply");
        return;
    }
    if (!json_is_true(json_object_get(m->metadata, "is_coalescing"))) {
        cpar_msg_drop_idents(m, 1);
        if (cpar_msg_send(m, ctl->sock[CHAN_BC_CLIENT]) != 0)
            cpar_warn("broadcast::cannot forward a reply");
        return;
    }
    orig = json_string_value(json_object_get(m->metadata, "original_msg_id"));
    b = orig ? cpar_map_gets(&ctl->bcasts, orig) : NULL;
    if (!b) {
        cpar_debug("broadcast::dropping a reply for %s that is already settled", orig ? orig : "?");
        return;
    }
    src = cpar_msg_frame(m, 0);
    for (size_t i = 0; i < b->n; i++) {
        bc_target_t *t = &b->t[i];

        if (t->got || strlen(t->uuid) != src.len || memcmp(t->uuid, src.data, src.len) != 0)
            continue;
        if (cpar_msg_copy(&t->reply, m) != 0)
            return;
        t->got = 1;
        if (++b->got == b->n) {
            cpar_map_dels(&ctl->bcasts, b->orig);
            send_coalesced(ctl, b);
            bcast_free(b);
        }
        return;
    }
}

void ctl_on_bc_engine(void *arg)
{
    ctl_t *ctl = arg;

    for (int budget = 0; budget < 512; budget++) {
        int rc = ctl_recv(ctl, CHAN_BC_ENGINE);

        if (rc == CPAR_EAGAIN)
            break;
        if (rc == 0)
            on_reply(ctl, &ctl->in);
    }
    cpar_msg_clear(&ctl->in);
}

/* An engine died: coalescing requests that still wait for it can never complete. */
void ctl_bcast_engine_removed(ctl_t *ctl, ctl_engine_t *e)
{
    const char *k;
    void *v;

    for (size_t it = cpar_map_next(&ctl->bcasts, 0, &k, NULL, &v); it;
         it = cpar_map_next(&ctl->bcasts, it, &k, NULL, &v)) {
        bcast_t *b = v;

        for (size_t i = 0; i < b->n; i++) {
            if (!b->t[i].got && strcmp(b->t[i].uuid, e->uuid) == 0) {
                cpar_info("broadcast::dropping %s: engine %d died before answering", b->orig,
                          e->id);
                cpar_map_dels(&ctl->bcasts, b->orig);
                bcast_free(b);
                break;
            }
        }
    }
}

void ctl_bcast_fini(ctl_t *ctl)
{
    cpar_map_fini(&ctl->bcasts, bcast_free);
}
