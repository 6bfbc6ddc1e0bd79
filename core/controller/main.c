/*
 * main.c - cpcontroller: ipcontroller's command line and profile, then one reactor serving the
 * hub, the heartbeat and the relays until a signal or a hub shutdown_request.
 */
#include "controller.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "util/ids.h"
#include "util/log.h"

#ifndef CPAR_VERSION
#define CPAR_VERSION "0.0.0"
#endif

extern char **environ;

static const char usage[] =
    "cpcontroller - the cparallel controller, a drop-in replacement for ipcontroller\n"
    "\n"
    "Usage: cpcontroller [options]\n"
    "\n"
    "Starts the hub, heartbeat, relays and schedulers of an IPython Parallel cluster and writes\n"
    "the connection files that ipyparallel clients and engines read from the profile's security/\n"
    "directory. Settings come from the command line, IPP_* environment variables and the\n"
    "profile's ipcontroller_config.{json,py}, as for ipcontroller.\n";

static char *dup_or(const cpar_config_t *cfg, const char *section, const char *key,
                    const char *dflt)
{
    const char *v = NULL;

    if (cpar_config_string(cfg, section, key, &v) != 0 || !v)
        v = dflt;
    return strdup(v);
}

static int64_t int_or(const cpar_config_t *cfg, const char *section, const char *key,
                      int64_t dflt)
{
    int64_t v;

    return cpar_config_int(cfg, section, key, &v) == 0 ? v : dflt;
}

static int bool_or(const cpar_config_t *cfg, const char *section, const char *key, int dflt)
{
    int v;

    return cpar_config_bool(cfg, section, key, &v) == 0 ? v : dflt;
}

/* --ports: a list of ports, "A-B", or "A,B,C". */
static int read_ports(ctl_t *ctl)
{
    json_t *v = cpar_config_get(ctl->cfg, "IPController", "ports");
    const char *origin = cpar_config_origin(ctl->cfg, "IPController", "ports");
    size_t i;
    json_t *p;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        ctl->set.ports = calloc(json_array_size(v) + 1, sizeof *ctl->set.ports);
        if (!ctl->set.ports)
            return CPAR_ENOMEM;
        json_array_foreach(v, i, p)
        {
            if (!json_is_integer(p) || json_integer_value(p) <= 0 || json_integer_value(p) > 65535)
                goto bad;
            ctl->set.ports[ctl->set.nports++] = json_integer_value(p);
        }
        return 0;
    }
    if (json_is_integer(v)) {
        ctl->set.ports = calloc(1, sizeof *ctl->set.ports);
        if (!ctl->set.ports)
            return CPAR_ENOMEM;
        ctl->set.ports[ctl->set.nports++] = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        long a, b;
        char *end;

        a = strtol(s, &end, 10);
        if (*end == '-') {
            b = strtol(end + 1, &end, 10);
            if (*end || a <= 0 || b < a || b > 65535)
                goto bad;
            ctl->set.ports = calloc((size_t)(b - a + 1), sizeof *ctl->set.ports);
            if (!ctl->set.ports)
                return CPAR_ENOMEM;
            for (long port = a; port <= b; port++)
                ctl->set.ports[ctl->set.nports++] = port;
            return 0;
        }
        ctl->set.ports = calloc(strlen(s) / 2 + 2, sizeof *ctl->set.ports);
        if (!ctl->set.ports)
            return CPAR_ENOMEM;
        for (const char *q = s; *q;) {
            long port = strtol(q, &end, 10);

            if (end == q || port <= 0 || port > 65535 || (*end && *end != ','))
                goto bad;
            ctl->set.ports[ctl->set.nports++] = port;
            q = *end ? end + 1 : end;
        }
        return 0;
    }
bad:
    cpar_error("bad IPController.ports from %s: expected a list of ports or \"A-B\"",
               origin ? origin : "config");
    return CPAR_ECONFIG;
}

static int read_key(ctl_t *ctl)
{
    const char *key = NULL, *keyfile = NULL;
    int secure = 0;
    char fresh[CPAR_ID_LEN];

    if (cpar_config_string(ctl->cfg, "Session", "keyfile", &keyfile) == 0 && keyfile &&
        *keyfile) {
        FILE *f = fopen(keyfile, "r");
        char buf[1024];
        size_t n;

        if (!f) {
            cpar_error("cannot read Session.keyfile %s: %s", keyfile, strerror(errno));
            return CPAR_ECONFIG;
        }
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        ctl->set.key = strdup(buf);
        return ctl->set.key ? 0 : CPAR_ENOMEM;
    }
    if (cpar_config_bool(ctl->cfg, "Session", "secure", &secure) != 0)
        secure = 0;
    if (!secure && cpar_config_string(ctl->cfg, "Session", "key", &key) == 0 && key) {
        ctl->set.key = strdup(key);
        return ctl->set.key ? 0 : CPAR_ENOMEM;
    }
    /* ipyparallel's tests assert a non-empty key by default. */
    ctl->set.key = strdup(cpar_new_id(fresh));
    return ctl->set.key ? 0 : CPAR_ENOMEM;
}

/* Settings ipcontroller has that cpcontroller accepts but does not act on: say so, once each. */
static void warn_unsupported(const cpar_config_t *cfg)
{
    static const char *const unsupported[][2] = {
        {"IPController", "engine_ip"},       {"IPController", "client_ip"},
        {"IPController", "engine_transport"}, {"IPController", "client_transport"},
        {"IPController", "engine_ports"},    {"IPController", "client_ports"},
        {"IPController", "use_threads"},     {"BaseParallelApplication", "log_to_file"},
        {"BaseParallelApplication", "log_url"}, {"BaseParallelApplication", "clean_logs"},
        {"BaseParallelApplication", "work_dir"}, {"BaseIPythonApplication", "extra_config_file"},
    };

    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const char *origin = cpar_config_origin(cfg, unsupported[i][0], unsupported[i][1]);

        if (origin)
            cpar_warn("%s.%s (from %s) is not supported by cpcontroller and has no effect",
                      unsupported[i][0], unsupported[i][1], origin);
    }
}

static int read_settings(ctl_t *ctl)
{
    const cpar_config_t *cfg = ctl->cfg;
    ctl_settings_t *s = &ctl->set;
    char host[256];
    int rc;

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const char *id_section =
        cpar_config_pick_section(cfg, cpar_controller_app_sections, "cluster_id");
    int curve = 0;
    const char *env_curve = getenv("IPP_ENABLE_CURVE");

    if ((cpar_config_bool(cfg, "IPController", "enable_curve", &curve) == 0 && curve) ||
        (env_curve && strcmp(env_curve, "1") == 0)) {
        cpar_error("CURVE encryption (IPController.enable_curve / IPP_ENABLE_CURVE) is not "
                   "supported by cpcontroller; refusing to start without it");
        return CPAR_ECONFIG;
    }
    warn_unsupported(cfg);
    s->cluster_id = dup_or(cfg, id_section ? id_section : "BaseParallelApplication", "cluster_id",
                           "");
    s->ip = dup_or(cfg, "IPController", "ip", "127.0.0.1");
    s->location = dup_or(cfg, "IPController", "location", host);
    s->transport = dup_or(cfg, "IPController", "transport", "tcp");
    s->signature_scheme = dup_or(cfg, "Session", "signature_scheme", "hmac-sha256");
    s->db_class = dup_or(cfg, "IPController", "db_class", "DictDB");
    s->ssh_server = dup_or(cfg, "IPController", "ssh_server", "");
    s->engine_ssh_server = dup_or(cfg, "IPController", "engine_ssh_server", "");
    s->scheme_name = dup_or(cfg, "TaskScheduler", "scheme_name", "leastload");
    if (!s->cluster_id || !s->ip || !s->location || !s->transport || !s->signature_scheme ||
        !s->db_class || !s->ssh_server || !s->engine_ssh_server || !s->scheme_name)
        return CPAR_ENOMEM;
    s->hb_period_ms = int_or(cfg, "HeartMonitor", "period", 3000);
    s->max_misses = int_or(cfg, "HeartMonitor", "max_heartmonitor_misses", 10);
    s->registration_timeout_s = int_or(cfg, "IPController", "registration_timeout", 0);
    s->bcast_depth = int_or(cfg, "IPController", "broadcast_scheduler_depth", 1);
    s->hwm = int_or(cfg, "TaskScheduler", "hwm", 1);
    s->max_message_size = int_or(cfg, "IPController", "max_message_size", 0);
    s->regport = int_or(cfg, "IPController", "regport", 0);
    s->restore_engines = bool_or(cfg, "IPController", "restore_engines", 0);
    s->reuse_files = bool_or(cfg, "IPController", "reuse_files", 0) || s->restore_engines;
    if (s->hb_period_ms <= 0 || s->hb_period_ms > 3600 * 1000) {
        cpar_error("HeartMonitor.period must be between 1 and 3600000 ms (got %lld from %s)",
                   (long long)s->hb_period_ms,
                   cpar_config_origin(cfg, "HeartMonitor", "period"));
        return CPAR_ECONFIG;
    }
    if (s->bcast_depth < 0 || s->bcast_depth > 10) {
        cpar_error("IPController.broadcast_scheduler_depth must be between 0 and 10");
        return CPAR_ECONFIG;
    }
    if (s->registration_timeout_s <= 0) {
        s->registration_timeout_s = s->hb_period_ms / 100;
        if (s->registration_timeout_s < 30)
            s->registration_timeout_s = 30;
    }
    if (strcmp(s->transport, "tcp") != 0) {
        cpar_error("IPController.transport '%s' is not supported: only tcp", s->transport);
        return CPAR_ECONFIG;
    }
    if ((rc = read_ports(ctl)))
        return rc;
    return read_key(ctl);
}

/*
 * Once the plugins are loaded, everything neither the controller nor a plugin reads is a typo.
 * The controller's own sections come first, so their trait lists stay authoritative even when a
 * plugin also names them; a plugin's sections of its own are accepted whole.
 */
static void warn_unknown_settings(ctl_t *ctl)
{
    const char *sections[128];
    size_t n = 0;

    for (const char *const *s = cpar_controller_sections; *s && n < 64; s++)
        sections[n++] = *s;
    n += cpar_plughost_sections(ctl->plughost, sections + n, 127 - n);
    sections[n] = NULL;
    cpar_config_warn_unknown(ctl->cfg, sections, cpar_controller_traits);
}

static void on_stop_signal(void *arg, int signo)
{
    ctl_t *ctl = arg;

    cpar_info("received %s, shutting down", strsignal(signo));
    cpar_loop_stop(ctl->loop);
}

static void ctl_free(ctl_t *ctl)
{
    ctl_settings_t *s = &ctl->set;

    ctl_tasks_fini(ctl);
    ctl_bcast_fini(ctl);
    ctl_stranded_free_all(ctl);
    if (ctl->db)
        cpar_db_close(ctl->plughost, ctl->db);
    if (ctl->plughost)
        cpar_plughost_free(ctl->plughost);
    ctl_engines_free(ctl);
    cpar_map_fini(&ctl->pending, ctl_pending_free);
    cpar_msg_fini(&ctl->in);
    for (int i = 0; i < 3; i++)
        free(ctl->scratch[i]);
    free(ctl->bufviews);
    ctl_heartbeat_stop(ctl);
    ctl_sockets_close(ctl);
    cpar_loop_free(ctl->loop);
    cpar_session_fini(&ctl->session);
    free(ctl->client_file);
    free(ctl->engine_file);
    free(s->profile_dir);
    free(s->cluster_id);
    free(s->ip);
    free(s->location);
    free(s->transport);
    free(s->key);
    free(s->signature_scheme);
    free(s->db_class);
    free(s->ssh_server);
    free(s->engine_ssh_server);
    free(s->scheme_name);
    free(s->ports);
    cpar_config_free(ctl->cfg);
}

static int run(ctl_t *ctl, int list_plugins)
{
    cpar_plughost_info_t info;
    char err[1024];
    int rc;

    if (cpar_loop_new(&ctl->loop) != 0)
        return 1;
    if (ctl->set.reuse_files && !list_plugins)
        ctl_connfiles_reuse(ctl);
    if (cpar_session_init(&ctl->session, ctl->set.key, ctl->set.signature_scheme, NULL,
                          "cpcontroller") != 0) {
        cpar_error("unsupported Session.signature_scheme '%s' (from %s)",
                   ctl->set.signature_scheme,
                   cpar_config_origin(ctl->cfg, "Session", "signature_scheme"));
        return 2;
    }
    info = (cpar_plughost_info_t){"cpcontroller", ctl->set.profile_dir, ctl->set.cluster_id,
                                  ctl->session.session, 1};
    if (cpar_plughost_new(&ctl->plughost, ctl->cfg, ctl->loop, &info) != 0)
        return 1;
    if (list_plugins) {
        printf("plugin search path: %s\n", cpar_plughost_search_path(ctl->plughost));
        return cpar_plughost_list(ctl->plughost, stdout) == 0 ? 0 : 3;
    }
    if (cpar_db_open(ctl->plughost, ctl->set.db_class, &ctl->db, err, sizeof err) != 0) {
        cpar_error("cannot open the task database: %s", err);
        return 1;
    }
    if (ctl_tasks_init(ctl, err, sizeof err) != 0) {
        cpar_error("cannot set up the task scheduler: %s", err);
        return 1;
    }
    warn_unknown_settings(ctl);
    if ((rc = ctl_sockets_open(ctl)) != 0)
        return 1;
    if (ctl_connfiles_write(ctl) != 0)
        return 1;
    if (ctl->set.restore_engines)
        ctl_restore_engines(ctl);
    if (cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_QUERY], ctl_on_query, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_HB_PONG], ctl_on_pong, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_NOTIFY], ctl_on_notify_subscribe, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_MUX_CLIENT], ctl_on_mux_client, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_MUX_ENGINE], ctl_on_mux_engine, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_CTL_CLIENT], ctl_on_ctl_client, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_CTL_ENGINE], ctl_on_ctl_engine, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_IOPUB_ENGINE], ctl_on_iopub, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_TASK_CLIENT], ctl_on_task_client, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_TASK_ENGINE], ctl_on_task_engine, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_BC_CLIENT], ctl_on_bc_client, ctl) ||
        cpar_loop_add_socket(ctl->loop, ctl->sock[CHAN_BC_ENGINE], ctl_on_bc_engine, ctl) ||
        cpar_loop_add_signal(ctl->loop, SIGINT, on_stop_signal, ctl) ||
        cpar_loop_add_signal(ctl->loop, SIGTERM, on_stop_signal, ctl) ||
        cpar_loop_add_signal(ctl->loop, SIGABRT, on_stop_signal, ctl) ||
        ctl_heartbeat_start(ctl) != 0) {
        cpar_error("cannot set up the reactor");
        ctl_connfiles_remove(ctl);
        return 1;
    }
    cpar_info("cpcontroller %s ready: profile %s, heartbeat %lld ms, db %s", CPAR_VERSION,
              ctl->set.profile_dir, (long long)ctl->set.hb_period_ms, cpar_db_name(ctl->db));
    rc = cpar_loop_run(ctl->loop);
    if (ctl->state_timer) {
        cpar_loop_timer_stop(ctl->loop, ctl->state_timer);
        ctl->state_timer = NULL;
        ctl_flush_engine_state(ctl);
    }
    ctl_connfiles_remove(ctl);
    if (ctl->db)
        cpar_db_flush(ctl->db);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    ctl_t ctl;
    cpar_cli_result_t cli;
    char err[1024];
    int rc;

    memset(&ctl, 0, sizeof ctl);
    cpar_log_set_program("cpcontroller");
    signal(SIGPIPE, SIG_IGN);
    ctl.cfg = cpar_config_new();
    if (!ctl.cfg)
        return 1;
    cpar_config_load_env(ctl.cfg, environ);
    if (cpar_cli_parse(ctl.cfg, cpar_controller_options, argc, argv, &cli, err, sizeof err) != 0) {
        fprintf(stderr, "cpcontroller: %s (see --help)\n", err);
        cpar_config_free(ctl.cfg);
        return 2;
    }
    if (cli.npositional > 0) {
        fprintf(stderr, "cpcontroller: unexpected argument '%s' (see --help)\n", cli.positional[0]);
        cpar_config_free(ctl.cfg);
        return 2;
    }
    if (cli.actions & (CPAR_ACT_HELP | CPAR_ACT_HELP_ALL)) {
        cpar_cli_help(cpar_controller_options, usage, stdout);
        cpar_config_free(ctl.cfg);
        return 0;
    }
    if (cli.actions & CPAR_ACT_VERSION) {
        printf("%s\n", CPAR_VERSION);
        cpar_config_free(ctl.cfg);
        return 0;
    }
    if (cpar_config_apply_log_level(ctl.cfg, cpar_controller_app_sections) != 0) {
        cpar_config_free(ctl.cfg);
        return 2;
    }
    ctl.set.profile_dir = cpar_profile_dir(ctl.cfg);
    if (!ctl.set.profile_dir)
        return 1;
    if (cpar_profile_create(ctl.set.profile_dir, err, sizeof err) != 0) {
        cpar_error("%s", err);
        ctl_free(&ctl);
        return 1;
    }
    if (cpar_config_load_profile(ctl.cfg, ctl.set.profile_dir, "ipcontroller", err,
                                 sizeof err) != 0) {
        cpar_error("%s", err);
        ctl_free(&ctl);
        return 2;
    }
    if (cpar_config_apply_log_level(ctl.cfg, cpar_controller_app_sections) != 0) {
        ctl_free(&ctl);
        return 2;
    }
    if (read_settings(&ctl) != 0) {
        ctl_free(&ctl);
        return 2;
    }
    cpar_map_init(&ctl.pending);
    cpar_map_init(&ctl.by_uuid);
    cpar_map_init(&ctl.by_id);
    cpar_map_init(&ctl.dead);
    cpar_msg_init(&ctl.in);
    rc = run(&ctl, (cli.actions & CPAR_ACT_LIST_PLUGINS) != 0);
    ctl_free(&ctl);
    return rc;
}
