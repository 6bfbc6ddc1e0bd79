/*
 * connfile.c - read a controller's two connection files (ipcontroller[-ID]-{client,engine}.json)
 * from <profile>/security/ and turn their ports into loopback endpoints.
 *
 * The load generator only ever talks to loopback: a wildcard interface (0.0.0.0, *) becomes
 * 127.0.0.1, and any other address is refused.
 */
#include "loadgen.h"

#include <cparallel/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"

/* "tcp://<host>" of the file, made loopback; 0 or CPAR_EINVAL. */
static int conn_interface(const json_t *file, const char *name, char *out, size_t size)
{
    const char *iface = json_string_value(json_object_get(file, "interface"));
    const char *host;

    if (!iface || strncmp(iface, "tcp://", 6) != 0) {
        fprintf(stderr, "cpar_loadgen: %s: interface is not tcp://...\n", name);
        return CPAR_EINVAL;
    }
    host = iface + 6;
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 || strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (strncmp(host, "127.", 4) != 0 || strlen(host) > 15) {
        fprintf(stderr, "cpar_loadgen: %s: interface %s is not a loopback address; refusing\n",
                name, iface);
        return CPAR_EINVAL;
    }
    snprintf(out, size, "tcp://%s", host);
    return 0;
}

/* "<iface>:<port>" from the JSON value `port`; `what` names it in the error message. */
static int conn_port(const json_t *port, const char *name, const char *what, const char *iface,
                     char out[LG_URL_LEN])
{
    if (!json_is_integer(port) || json_integer_value(port) <= 0 ||
        json_integer_value(port) > 65535) {
        fprintf(stderr, "cpar_loadgen: %s: \"%s\" is not a port number\n", name, what);
        return CPAR_EINVAL;
    }
    snprintf(out, LG_URL_LEN, "%s:%d", iface, (int)json_integer_value(port));
    return 0;
}

static int conn_url(const json_t *file, const char *name, const char *iface, const char *key,
                    char out[LG_URL_LEN])
{
    return conn_port(json_object_get(file, key), name, key, iface, out);
}

static json_t *conn_read(const char *path)
{
    json_error_t err;

    return json_load_file(path, 0, &err);
}

static int conn_parse(lg_t *lg, const json_t *cf, const char *cname, const json_t *ef,
                      const char *ename)
{
    lg_conn_t *c = &lg->conn;
    char ci[LG_URL_LEN], ei[LG_URL_LEN];
    const char *key = json_string_value(json_object_get(cf, "key"));
    const char *scheme = json_string_value(json_object_get(cf, "signature_scheme"));
    json_t *bc = json_object_get(ef, "broadcast");
    int rc;

    if (!key || strlen(key) >= sizeof c->key) {
        fprintf(stderr, "cpar_loadgen: %s: no usable \"key\"\n", cname);
        return CPAR_EINVAL;
    }
    snprintf(c->key, sizeof c->key, "%s", key);
    snprintf(c->scheme, sizeof c->scheme, "%s", scheme ? scheme : "hmac-sha256");
    rc = conn_interface(cf, cname, ci, sizeof ci);
    if (rc == 0)
        rc = conn_interface(ef, ename, ei, sizeof ei);
    if (rc == 0)
        rc = conn_url(cf, cname, ci, "registration", c->c_registration);
    if (rc == 0)
        rc = conn_url(cf, cname, ci, "mux", c->c_mux);
    if (rc == 0)
        rc = conn_url(cf, cname, ci, "task", c->c_task);
    if (rc == 0)
        rc = conn_url(cf, cname, ci, "notification", c->c_notification);
    if (rc == 0)
        rc = conn_url(ef, ename, ei, "registration", c->e_registration);
    if (rc == 0)
        rc = conn_url(ef, ename, ei, "mux", c->e_mux);
    if (rc == 0)
        rc = conn_url(ef, ename, ei, "task", c->e_task);
    if (rc == 0)
        rc = conn_url(ef, ename, ei, "hb_ping", c->e_hb_ping);
    if (rc == 0)
        rc = conn_url(ef, ename, ei, "hb_pong", c->e_hb_pong);
    if (rc != 0)
        return rc;
    if (!json_is_array(bc) || json_array_size(bc) == 0) {
        fprintf(stderr, "cpar_loadgen: %s: \"broadcast\" is not a list of ports\n", ename);
        return CPAR_EINVAL;
    }
    c->n_broadcast = json_array_size(bc);
    c->e_broadcast = calloc(c->n_broadcast, sizeof *c->e_broadcast);
    if (!c->e_broadcast)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < c->n_broadcast; i++) {
        rc = conn_port(json_array_get(bc, i), ename, "broadcast", ei, c->e_broadcast[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int lg_conn_load(lg_t *lg)
{
    const char *id = lg->opt.cluster_id;
    char cname[4096], ename[4096];
    int64_t deadline = cpar_monotonic_us() + (int64_t)(lg->opt.timeout * 1e6);
    int rc;

    snprintf(cname, sizeof cname, "%s/security/ipcontroller%s%s-client.json", lg->opt.profile_dir,
             id && *id ? "-" : "", id ? id : "");
    snprintf(ename, sizeof ename, "%s/security/ipcontroller%s%s-engine.json", lg->opt.profile_dir,
             id && *id ? "-" : "", id ? id : "");
    /* The files may not be there yet, or (a controller that does not write them atomically)
     * only half written: retry until both parse or the time is up. */
    for (;;) {
        json_t *cf = conn_read(cname), *ef = conn_read(ename);

        if (cf && ef) {
            rc = conn_parse(lg, cf, cname, ef, ename);
            json_decref(cf);
            json_decref(ef);
            return rc;
        }
        json_decref(cf);
        json_decref(ef);
        if (cpar_monotonic_us() > deadline) {
            fprintf(stderr, "cpar_loadgen: no readable connection files %s and %s after %.0f s\n",
                    cname, ename, lg->opt.timeout);
            return CPAR_ETIMEDOUT;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
}
