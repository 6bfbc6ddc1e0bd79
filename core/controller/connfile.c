/*
 * connfile.c - the two connection files clients and engines read
 * (security/ipcontroller[-<cluster_id>]-{client,engine}.json), --reuse of earlier files, and the
 * engine state file log/engines<cluster_id>.json that --restore reads.
 */
#include "controller.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

static char *file_path(ctl_t *ctl, const char *dir, const char *fmt_noid, const char *fmt_id)
{
    char *p = NULL;
    int n;

    if (ctl->set.cluster_id[0])
        n = asprintf(&p, fmt_id, ctl->set.profile_dir, dir, ctl->set.cluster_id);
    else
        n = asprintf(&p, fmt_noid, ctl->set.profile_dir, dir);
    return n < 0 ? NULL : p;
}

static char *connfile_path(ctl_t *ctl, const char *side)
{
    char *p = NULL;

    if (ctl->set.cluster_id[0]) {
        if (asprintf(&p, "%s/security/ipcontroller-%s-%s.json", ctl->set.profile_dir,
                     ctl->set.cluster_id, side) < 0)
            return NULL;
    } else if (asprintf(&p, "%s/security/ipcontroller-%s.json", ctl->set.profile_dir, side) < 0) {
        return NULL;
    }
    return p;
}

/* Write `doc` to `path` atomically with mode 0600: temp file, fsync, rename. */
static int write_json_atomic(const char *path, json_t *doc)
{
    char *tmp = NULL, *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int fd = -1, rc = CPAR_EIO;
    size_t len, off = 0;

    if (!text || asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0) {
        free(text);
        return CPAR_ENOMEM;
    }
    len = strlen(text);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto out;
        off += (size_t)w;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (rc)
        cpar_error("cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(tmp);
    free(text);
    return rc;
}

static json_t *ports_array(const int *ports, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(ports[i]));
    return a;
}

json_t *ctl_engine_connection_info(ctl_t *ctl)
{
    char iface[300];

    snprintf(iface, sizeof iface, "%s://%s", ctl->set.transport, ctl->set.ip);
    return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o}", "interface", iface,
                     "registration", ctl->port[CHAN_QUERY], "control", ctl->port[CHAN_CTL_ENGINE],
                     "mux", ctl->port[CHAN_MUX_ENGINE], "task", ctl->port[CHAN_TASK_ENGINE],
                     "iopub", ctl->port[CHAN_IOPUB_ENGINE], "hb_ping", ctl->port[CHAN_HB_PING],
                     "hb_pong", ctl->port[CHAN_HB_PONG], "broadcast",
                     ports_array(ctl->bc_ports, ctl->nbc_ports));
}

/* The keys both files share, appended after the side's own ones (ipyparallel's order). */
static void add_common(ctl_t *ctl, json_t *doc)
{
    json_object_set_new(doc, "key", json_string(ctl->set.key));
    json_object_set_new(doc, "curve_serverkey", json_null());
    json_object_set_new(doc, "location", json_string(ctl->set.location));
    json_object_set_new(doc, "pack", json_string("json"));
    json_object_set_new(doc, "unpack", json_string("json"));
    json_object_set_new(doc, "signature_scheme", json_string(ctl->set.signature_scheme));
}

int ctl_connfiles_write(ctl_t *ctl)
{
    char iface[300];
    json_t *client, *engine, *info;
    int rc;

    ctl->client_file = connfile_path(ctl, "client");
    ctl->engine_file = connfile_path(ctl, "engine");
    if (!ctl->client_file || !ctl->engine_file)
        return CPAR_ENOMEM;
    if (ctl->set.reuse_files && ctl->files_written)
        return 0; /* ctl_connfiles_reuse found both and the sockets bound their ports */

    snprintf(iface, sizeof iface, "%s://%s", ctl->set.transport, ctl->set.ip);
    client = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:i, s:i, s:i, s:i}", "ssh",
                       ctl->set.ssh_server, "interface", iface, "registration",
                       ctl->port[CHAN_QUERY], "control", ctl->port[CHAN_CTL_CLIENT], "mux",
                       ctl->port[CHAN_MUX_CLIENT], "task_scheme", "leastload", "task",
                       ctl->port[CHAN_TASK_CLIENT], "iopub", ctl->port[CHAN_IOPUB_CLIENT],
                       "notification", ctl->port[CHAN_NOTIFY], "broadcast",
                       ctl->port[CHAN_BC_CLIENT]);
    engine = json_pack("{s:s}", "ssh", ctl->set.engine_ssh_server);
    info = ctl_engine_connection_info(ctl);
    if (!client || !engine || !info) {
        json_decref(client);
        json_decref(engine);
        json_decref(info);
        return CPAR_ENOMEM;
    }
    json_object_update(engine, info);
    json_decref(info);
    add_common(ctl, client);
    add_common(ctl, engine);
    rc = write_json_atomic(ctl->client_file, client);
    if (!rc)
        rc = write_json_atomic(ctl->engine_file, engine);
    json_decref(client);
    json_decref(engine);
    if (!rc) {
        ctl->files_written = 1;
        cpar_info("connection files: %s, %s", ctl->client_file, ctl->engine_file);
    }
    return rc;
}

void ctl_connfiles_remove(ctl_t *ctl)
{
    if (!ctl->files_written || ctl->set.reuse_files)
        return;
    if (ctl->client_file)
        unlink(ctl->client_file);
    if (ctl->engine_file)
        unlink(ctl->engine_file);
    ctl->files_written = 0;
}

static int64_t get_port(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);

    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/*
 * --reuse: when both files exist and agree on their common keys, take their key and ports
 * (bound in the same order as ctl_sockets_open takes them from the pool) and leave them as they
 * are. Anything else logs why and starts fresh.
 */
int ctl_connfiles_reuse(ctl_t *ctl)
{
    static const char *const common[] = {"key", "registration", "pack", "unpack",
                                         "signature_scheme"};
    static const char *const engine_keys[] = {"control", "mux", "task", "iopub", "hb_ping",
                                              "hb_pong"};
    static const char *const client_keys[] = {"control", "mux", "task", "iopub", "notification",
                                              "broadcast"};
    char *cpath = connfile_path(ctl, "client"), *epath = connfile_path(ctl, "engine");
    json_error_t jerr;
    json_t *c = NULL, *e = NULL, *bc;
    int ok = 0;
    size_t n = 0;

    if (!cpath || !epath)
        goto out;
    c = json_load_file(cpath, 0, &jerr);
    e = json_load_file(epath, 0, &jerr);
    if (!c || !e) {
        cpar_info("--reuse: no usable connection files yet, writing new ones");
        goto out;
    }
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        if (!json_equal(json_object_get(c, common[i]), json_object_get(e, common[i]))) {
            cpar_warn("--reuse: %s and %s disagree on '%s', writing new ones", cpath, epath,
                      common[i]);
            goto out;
        }
    }
    bc = json_object_get(e, "broadcast");
    if (!json_is_string(json_object_get(c, "key")) || !json_is_array(bc) ||
        json_array_size(bc) != ((size_t)1 << ctl->set.bcast_depth)) {
        cpar_warn("--reuse: %s does not match this controller's settings, writing new ones",
                  epath);
        goto out;
    }
    free(ctl->set.ports);
    ctl->set.ports = calloc(6 + json_array_size(bc) + 6, sizeof *ctl->set.ports);
    if (!ctl->set.ports)
        goto out;
    for (size_t i = 0; i < 6; i++)
        ctl->set.ports[n++] = get_port(e, engine_keys[i]);
    for (size_t i = 0; i < json_array_size(bc); i++)
        ctl->set.ports[n++] = json_integer_value(json_array_get(bc, i));
    for (size_t i = 0; i < 6; i++)
        ctl->set.ports[n++] = get_port(c, client_keys[i]);
    ctl->set.nports = n;
    ctl->set.next_port = 0;
    ctl->set.regport = get_port(c, "registration");
    free(ctl->set.key);
    ctl->set.key = strdup(json_string_value(json_object_get(c, "key")));
    ok = ctl->set.key != NULL;
    ctl->files_written = ok;
    if (ok)
        cpar_info("--reuse: reusing %s and %s", cpath, epath);
out:
    json_decref(c);
    json_decref(e);
    free(cpath);
    free(epath);
    return ok ? 0 : CPAR_ENOENT;
}

/* Write the engine state file now (see ctl_save_engine_state). */
void ctl_flush_engine_state(ctl_t *ctl)
{
    char *path = file_path(ctl, "log", "%s/%s/engines.json", "%s/%s/engines%s.json");
    json_t *engines = json_object(), *doc;
    const char *k;
    void *v;

    if (!path || !engines) {
        free(path);
        json_decref(engines);
        return;
    }
    for (size_t it = cpar_map_next(&ctl->by_uuid, 0, &k, NULL, &v); it;
         it = cpar_map_next(&ctl->by_uuid, it, &k, NULL, &v)) {
        ctl_engine_t *e = v;
        char id[24];

        if (!e->registered)
            continue;
        snprintf(id, sizeof id, "%d", e->id);
        json_object_set_new(engines, id, json_string(e->uuid));
    }
    doc = json_pack("{s:o, s:i}", "engines", engines, "next_id", ctl->next_id);
    if (doc)
        write_json_atomic(path, doc);
    json_decref(doc);
    free(path);
}

static void state_timer_fired(void *arg)
{
    ctl_t *ctl = arg;

    cpar_loop_timer_stop(ctl->loop, ctl->state_timer);
    ctl->state_timer = NULL;
    ctl_flush_engine_state(ctl);
}

/*
 * The engine state file changes with every (un)registration; a burst of a thousand engines
 * must not rewrite it a thousand times on the reactor thread, so writes are gathered for a
 * moment and the file is written once.
 */
void ctl_save_engine_state(ctl_t *ctl)
{
    if (ctl->state_timer)
        return;
    ctl->state_timer = cpar_loop_timer_start(ctl->loop, 200, 0, state_timer_fired, ctl);
    if (!ctl->state_timer)
        ctl_flush_engine_state(ctl);
}

int ctl_restore_engines(ctl_t *ctl)
{
    char *path = file_path(ctl, "log", "%s/%s/engines.json", "%s/%s/engines%s.json");
    json_error_t jerr;
    json_t *doc, *engines, *v;
    const char *k;
    int restored = 0;

    if (!path)
        return CPAR_ENOMEM;
    doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        cpar_warn("--restore: cannot read %s: %s", path, jerr.text);
        free(path);
        return CPAR_ENOENT;
    }
    engines = json_object_get(doc, "engines");
    json_object_foreach(engines, k, v)
    {
        ctl_engine_t *e;
        char *end;
        long id = strtol(k, &end, 10);

        if (*end || id < 0 || !json_is_string(v) ||
            ctl_engine_by_uuid(ctl, json_string_value(v), json_string_length(v)))
            continue;
        e = ctl_engine_new(ctl, (int)id, json_string_value(v), json_string_length(v));
        if (!e)
            break;
        ctl_finish_registration(ctl, e, 0);
        restored++;
    }
    if (json_is_integer(json_object_get(doc, "next_id")) &&
        json_integer_value(json_object_get(doc, "next_id")) > ctl->next_id)
        ctl->next_id = (int)json_integer_value(json_object_get(doc, "next_id"));
    cpar_info("--restore: %d engine(s) from %s", restored, path);
    json_decref(doc);
    free(path);
    return 0;
}
