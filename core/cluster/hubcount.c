/*
 * hubcount.c - how many engines have registered, asked of the hub the way a client asks: a
 * signed queue_request on a DEALER connected to the client connection file's registration port.
 * The reply has one key per registered engine id (plus "status" and "unassigned").
 */
#include "cluster.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "util/log.h"
#include "wire/wire.h"

struct cl_hub {
    cpar_loop_t *loop;
    char *file;
    void *zctx, *sock;
    cpar_session_t sess;
    int have_session;
    int pending;
    int64_t sent_ms;
    int count;
    cpar_msg_t in;
};

cl_hub_t *cl_hub_new(cpar_loop_t *loop, const char *profile_dir, const char *cluster_id)
{
    cl_hub_t *h = calloc(1, sizeof *h);
    int rc;

    if (!h)
        return NULL;
    h->loop = loop;
    h->count = -1;
    rc = *cluster_id ? asprintf(&h->file, "%s/security/ipcontroller-%s-client.json", profile_dir,
                                cluster_id)
                     : asprintf(&h->file, "%s/security/ipcontroller-client.json", profile_dir);
    if (rc < 0) {
        free(h);
        return NULL;
    }
    cpar_msg_init(&h->in);
    return h;
}

static void disconnect(cl_hub_t *h)
{
    if (h->sock) {
        cpar_loop_remove_socket(h->loop, h->sock);
        zmq_close(h->sock);
        h->sock = NULL;
    }
    if (h->have_session) {
        cpar_session_fini(&h->sess);
        h->have_session = 0;
    }
    h->pending = 0;
}

void cl_hub_free(cl_hub_t *h)
{
    if (!h)
        return;
    disconnect(h);
    if (h->zctx)
        zmq_ctx_term(h->zctx);
    cpar_msg_fini(&h->in);
    free(h->file);
    free(h);
}

int cl_hub_count(const cl_hub_t *h)
{
    return h->count;
}

static void on_reply(void *arg)
{
    cl_hub_t *h = arg;
    const char *key;
    json_t *v;
    int n = 0;

    while (h->sock) {
        cpar_msg_clear(&h->in);
        if (cpar_msg_recv(&h->in, h->sock, 0) != 0)
            return;
        if (cpar_msg_split(&h->in) != 0 || cpar_session_verify(&h->sess, &h->in, NULL) != 0 ||
            cpar_msg_parse(&h->in, CPAR_PARSE_HEADER | CPAR_PARSE_CONTENT) != 0)
            continue;
        if (!cpar_msg_type(&h->in) || strcmp(cpar_msg_type(&h->in), "queue_reply") != 0)
            continue;
        n = 0;
        json_object_foreach (h->in.content, key, v) {
            const char *p = key;

            while (*p && isdigit((unsigned char)*p))
                p++;
            if (*key && !*p)
                n++;
        }
        h->count = n;
        h->pending = 0;
    }
}

static int connect_hub(cl_hub_t *h)
{
    json_t *cf = json_load_file(h->file, 0, NULL);
    const char *iface = json_string_value(json_object_get(cf, "interface"));
    const char *key = json_string_value(json_object_get(cf, "key"));
    const char *scheme = json_string_value(json_object_get(cf, "signature_scheme"));
    json_t *port = json_object_get(cf, "registration");
    char url[300], host[256];
    int linger = 0;

    if (!cf || !iface || !json_is_integer(port)) {
        json_decref(cf);
        return -1;
    }
    /* a wildcard bind is reached on the loopback interface */
    if (sscanf(iface, "tcp://%255s", host) != 1 || !strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
        snprintf(host, sizeof host, "127.0.0.1");
    snprintf(url, sizeof url, "tcp://%s:%lld", host, (long long)json_integer_value(port));
    if (!h->zctx && !(h->zctx = zmq_ctx_new())) {
        json_decref(cf);
        return -1;
    }
    if (cpar_session_init(&h->sess, key ? key : "", scheme, NULL, "cpcluster") != 0) {
        json_decref(cf);
        return -1;
    }
    h->have_session = 1;
    json_decref(cf);
    h->sock = zmq_socket(h->zctx, ZMQ_DEALER);
    if (!h->sock || zmq_setsockopt(h->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(h->sock, url) != 0 || cpar_loop_add_socket(h->loop, h->sock, on_reply, h) != 0) {
        if (h->sock)
            zmq_close(h->sock);
        h->sock = NULL;
        disconnect(h);
        return -1;
    }
    cpar_debug("asking the hub at %s for its engines", url);
    return 0;
}

void cl_hub_tick(cl_hub_t *h)
{
    int64_t now = cpar_loop_now_ms(h->loop);
    json_t *content;

    if (h->pending && now - h->sent_ms > 10000)
        disconnect(h); /* no answer: the controller restarted or the file changed */
    if (!h->sock && connect_hub(h) != 0)
        return;
    if (h->pending)
        return;
    content = json_pack("{s:n, s:b}", "targets", "verbose", 0);
    if (content && cpar_session_send(&h->sess, h->sock, NULL, 0, "queue_request", NULL, NULL,
                                     content, NULL, 0) == 0) {
        h->pending = 1;
        h->sent_ms = now;
    }
    json_decref(content);
}
