/*
 * test_mongodb_unreachable.c - the MongoDB backend with no server at all: loading it does not
 * connect; the first operation against a closed port fails within seconds with one line naming
 * the server, and later ones fail at once; the settings (url, connection_args, connection_kwargs,
 * database) become the connection string that line names, and bad ones are refused at load time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "plugins/db.h"
#include "util/ids.h"

typedef struct env {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
    char err[1024];
} env_t;

static int port_fd = -1;
static int closed_port;
static char profile_dir[] = "/tmp/cpar-mongodb-XXXXXX";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A port bound on 127.0.0.1 but not listening: connecting is refused, and nobody takes it. */
static int group_setup(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;

    (void)state;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    port_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (port_fd < 0 || bind(port_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(port_fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    closed_port = ntohs(sa.sin_port);
    return mkdtemp(profile_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    close(port_fd);
    rmdir(profile_dir);
    return 0;
}

/* Load the backend with settings {"MongoDB": {...}} (printf format); returns cpar_db_open's code.
 */
static int open_db(env_t *e, const char *fmt, ...) CPAR_PRINTF(2, 3);

static int open_db(env_t *e, const char *fmt, ...)
{
    cpar_plughost_info_t info = {
        .program = "test_mongodb_unreachable", .profile_dir = profile_dir, .cluster_id = ""};
    char text[1024];
    json_t *section, *value;
    const char *key;
    va_list ap;

    memset(e, 0, sizeof *e);
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    section = json_loads(text, 0, NULL);
    assert_non_null(section);
    e->cfg = cpar_config_new();
    assert_non_null(e->cfg);
    json_object_foreach(section, key, value)
    {
        assert_int_equal(
            cpar_config_set(e->cfg, "MongoDB", key, json_incref(value), CPAR_SRC_CLI, "test"), 0);
    }
    json_decref(section);
    cpar_new_id(e->session);
    info.session = e->session;
    assert_int_equal(cpar_plughost_new(&e->host, e->cfg, NULL, &info), 0);
    return cpar_db_open(e->host, "mongodb", &e->db, e->err, sizeof e->err);
}

static void close_db(env_t *e)
{
    cpar_db_close(e->host, e->db);
    cpar_plughost_free(e->host);
    cpar_config_free(e->cfg);
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

/* The first operation fails with one line naming `uri`, within `limit` seconds. */
static void assert_unreachable(env_t *e, const char *uri, double limit)
{
    double t0 = now_s(), took;
    cpar_record_t r;
    const char *msg;

    cpar_record_init(&r);
    r.msg_id = "m1";
    assert_int_equal(cpar_db_add(e->db, &r), CPAR_EIO);
    took = now_s() - t0;
    msg = cpar_db_error(e->db);
    print_message("  first operation: %.2f s: %s\n", took, msg);
    if (took > limit)
        fail_msg("failing took %.2f s, more than %.1f s", took, limit);
    assert_contains(msg, uri);
    assert_null(strchr(msg, '\n'));
}

static void no_record(void *arg, const cpar_record_t *rec)
{
    (void)arg;
    (void)rec;
    fail_msg("no record can be found");
}

static void no_id(void *arg, const char *msg_id)
{
    (void)arg;
    (void)msg_id;
    fail_msg("no history can be read");
}

static void test_closed_port_fails_fast(void **state)
{
    char uri[64];
    env_t e;
    double t0;

    (void)state;
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/", closed_port);
    t0 = now_s();
    if (open_db(&e, "{\"url\": \"%s\"}", uri) != 0)
        fail_msg("open: %s", e.err);
    assert_true(now_s() - t0 < 1.0); /* loading does not connect */
    assert_unreachable(&e, uri, 5.0);
    assert_contains(cpar_db_error(e.db), "cannot reach MongoDB");

    /* Until the server answers again, operations fail at once. */
    t0 = now_s();
    assert_int_equal(cpar_db_get(e.db, "m1", no_record, NULL), CPAR_EIO);
    assert_int_equal(cpar_db_drop(e.db, "m1"), CPAR_EIO);
    assert_int_equal(cpar_db_history(e.db, no_id, NULL), CPAR_EIO);
    assert_contains(cpar_db_error(e.db), uri);
    if (now_s() - t0 > 0.5)
        fail_msg("later operations took %.2f s", now_s() - t0);
    close_db(&e);
}

static void test_kwargs_make_the_uri(void **state)
{
    char uri[64];
    env_t e;

    (void)state;
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/", closed_port);
    if (open_db(&e,
                "{\"connection_kwargs\": {\"host\": \"127.0.0.1\", \"port\": %d, "
                "\"serverSelectionTimeoutMS\": 300, \"tz_aware\": true}}",
                closed_port) != 0)
        fail_msg("open: %s", e.err);
    assert_unreachable(&e, uri, 2.0); /* the timeout given, not the default */
    close_db(&e);

    if (open_db(&e, "{\"connection_args\": [\"127.0.0.1\", %d]}", closed_port) != 0)
        fail_msg("open: %s", e.err);
    assert_unreachable(&e, uri, 5.0);
    close_db(&e);

    /* a URI as the host; url wins over both */
    if (open_db(&e,
                "{\"connection_kwargs\": {\"host\": \"mongodb://127.0.0.1:%d/\", "
                "\"serverSelectionTimeoutMS\": 300}}",
                closed_port) != 0)
        fail_msg("open: %s", e.err);
    assert_unreachable(&e, uri, 2.0);
    close_db(&e);
    if (open_db(&e,
                "{\"url\": \"mongodb://127.0.0.1:%d/?serverSelectionTimeoutMS=300\", "
                "\"connection_args\": [\"elsewhere.invalid\"]}",
                closed_port) != 0)
        fail_msg("open: %s", e.err);
    assert_unreachable(&e, "mongodb://127.0.0.1", 2.0);
    close_db(&e);
}

static void test_password_is_not_shown(void **state)
{
    char part[64];
    env_t e;

    (void)state;
    if (open_db(&e,
                "{\"connection_kwargs\": {\"host\": \"127.0.0.1:%d\", \"username\": \"me\", "
                "\"password\": \"s3cret\", \"serverSelectionTimeoutMS\": 300}}",
                closed_port) != 0)
        fail_msg("open: %s", e.err);
    snprintf(part, sizeof part, "mongodb://me:***@127.0.0.1:%d/", closed_port);
    assert_unreachable(&e, part, 2.0);
    assert_null(strstr(cpar_db_error(e.db), "s3cret"));
    close_db(&e);
}

static void test_bad_settings_are_refused(void **state)
{
    static const struct {
        const char *settings, *says;
    } bad[] = {
        {"{\"url\": \"http://127.0.0.1/\"}", "MongoDB.url must start with mongodb://"},
        {"{\"url\": \"mongodb://127.0.0.1/?bogusoption=1\"}", "bogusoption"},
        {"{\"connection_kwargs\": {\"bogusoption\": 1}}", "bogusoption"},
        {"{\"connection_kwargs\": {\"serverSelectionTimeoutMS\": \"soon\"}}",
         "serverselectiontimeoutms"},
        {"{\"connection_kwargs\": {\"port\": 70000}}", "port"},
        {"{\"connection_kwargs\": [\"127.0.0.1\"]}", "connection_kwargs must be a dict"},
        {"{\"connection_args\": {\"host\": \"127.0.0.1\"}}", "connection_args must be a list"},
        {"{\"database\": \"a/b\"}", "is no MongoDB database name"},
        {"{\"database\": [\"x\"]}", "MongoDB.database must be a string"},
    };
    env_t e;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = open_db(&e, "%s", bad[i].settings);
        print_message("  %s: %s\n", bad[i].settings, e.err);
        assert_int_not_equal(rc, 0);
        assert_contains(e.err, "CPAR_ECONFIG");
        assert_contains(e.err, bad[i].says);
        assert_null(e.db);
        cpar_plughost_free(e.host);
        cpar_config_free(e.cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_port_fails_fast),
        cmocka_unit_test(test_kwargs_make_the_uri),
        cmocka_unit_test(test_password_is_not_shown),
        cmocka_unit_test(test_bad_settings_are_refused),
    };

    return cmocka_run_group_tests_name("mongodb backend without a server", tests, group_setup,
                                       group_teardown);
}
