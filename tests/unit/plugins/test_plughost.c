/*
 * test_plughost.c - the plugin host through the real loader: every fixture plugin accepted or
 * rejected with its exact message, search path precedence and shadowing, --list-plugins lines,
 * the host table (log prefix, config, context, set_error, timers) and the db front's names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "plugins/db.h"
#include "plugins/host.h"
#include "util/log.h"

#ifndef CPAR_TEST_FIXTURE_DIR
#error "the build defines CPAR_TEST_FIXTURE_DIR"
#endif
#ifndef CPAR_TEST_PLUGIN_DIR
#error "the build defines CPAR_TEST_PLUGIN_DIR"
#endif

static char fixtures[PATH_MAX]; /* the fixture plugin dir, resolved */
static char plugins[PATH_MAX];  /* the build tree's plugin dir, resolved */

/* ---- helpers ---------------------------------------------------------------------------- */

static int saved_stderr = -1;
static char capture_path[64];

static void capture_start(void)
{
    int fd;

    snprintf(capture_path, sizeof capture_path, "/tmp/cpar-plughost-log-XXXXXX");
    fflush(stderr);
    fd = mkstemp(capture_path);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Stop capturing stderr; returns what was written (caller frees). */
static char *capture_end(void)
{
    FILE *f;
    char *text;
    long n;

    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    f = fopen(capture_path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    unlink(capture_path);
    return text;
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("\"%s\" not found in:\n%s", part, text);
}

static void make_tmpdir(char dir[64])
{
    snprintf(dir, 64, "/tmp/cpar-plughost-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void copy_file(const char *from, const char *dir, const char *name)
{
    char to[PATH_MAX], buf[65536];
    FILE *in, *out;
    size_t n;

    snprintf(to, sizeof to, "%s/%s", dir, name);
    in = fopen(from, "rb");
    assert_non_null(in);
    out = fopen(to, "wb");
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static void remove_tree(const char *dir)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void use_path(const char *path)
{
    if (path)
        assert_int_equal(setenv("CPAR_PLUGIN_PATH", path, 1), 0);
    else
        assert_int_equal(unsetenv("CPAR_PLUGIN_PATH"), 0);
}

static cpar_plughost_t *host_new(const cpar_config_t *cfg, cpar_loop_t *loop)
{
    static const cpar_plughost_info_t info = {
        .program = "test_plughost",
        /* a directory that exists: real plugins on the search path (SQLiteDB) check it */
        .profile_dir = "/tmp",
        .cluster_id = "c1",
        .session = "s1",
    };
    cpar_plughost_t *h = NULL;

    assert_int_equal(cpar_plughost_new(&h, cfg, loop, &info), 0);
    assert_non_null(h);
    return h;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(cpar_kind_name(CPAR_KIND_SCHEDULER), "scheduler");
    assert_string_equal(cpar_kind_name(CPAR_KIND_DBBACKEND), "dbbackend");
    assert_string_equal(cpar_kind_name(CPAR_KIND_LAUNCHER), "launcher");
    assert_null(cpar_kind_name((cpar_kind_t)0));
    assert_null(cpar_kind_name((cpar_kind_t)9));
}

static void test_load_good_logs_and_unloads(void **state)
{
    cpar_plugin_inst_t *inst = NULL;
    char err[1024] = "", want[2 * PATH_MAX];
    cpar_plughost_t *h;
    char *log;

    (void)state;
    use_path(fixtures);
    h = host_new(NULL, NULL);
    capture_start();
    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "good", &inst, err, sizeof err), 0);
    log = capture_end();
    assert_string_equal(err, "");
    assert_non_null(inst);
    assert_string_equal(cpar_plugin_desc(inst)->name, "good");
    assert_string_equal(cpar_plugin_desc(inst)->version, "1.2.3");
    assert_non_null(cpar_plugin_state(inst));
    snprintf(want, sizeof want, "%s/cpar_dbbackend_good.so", fixtures);
    assert_string_equal(cpar_plugin_path(inst), want);
    /* The host prefixes plugin log lines; unset settings keep the plugin's defaults. */
    assert_contains(log, "[test_plughost] INFO dbbackend/good: init text=- count=-1 ratio=-1 "
                         "flag=-1 obj=- program=test_plughost profile=/tmp cluster=c1 "
                         "session=s1 clock=1");
    free(log);

    capture_start();
    cpar_plughost_unload(h, inst);
    log = capture_end();
    assert_contains(log, "dbbackend/good: fini");
    free(log);
    cpar_plughost_free(h);
}

static void test_config_reaches_plugin(void **state)
{
    cpar_config_t *cfg = cpar_config_new();
    cpar_plugin_inst_t *inst = NULL;
    char err[1024];
    cpar_plughost_t *h;
    char *log;

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(
        cpar_config_set(cfg, "Good", "text", json_string("hello"), CPAR_SRC_CLI, "--Good.text"), 0);
    assert_int_equal(
        cpar_config_set(cfg, "Good", "count", json_integer(7), CPAR_SRC_CLI, "--Good.count"), 0);
    assert_int_equal(
        cpar_config_set(cfg, "Good", "ratio", json_real(0.5), CPAR_SRC_CLI, "--Good.ratio"), 0);
    assert_int_equal(cpar_config_set(cfg, "Good", "flag", json_true(), CPAR_SRC_CLI, "--Good.flag"),
                     0);
    assert_int_equal(cpar_config_set(cfg, "Good", "obj", json_pack("{s:[i,s]}", "a", 1, "\xc3\xa9"),
                                     CPAR_SRC_CLI, "--Good.obj"),
                     0);
    use_path(fixtures);
    h = host_new(cfg, NULL);
    capture_start();
    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "good", &inst, err, sizeof err), 0);
    cpar_plughost_free(h); /* unloads what is still loaded, fini included */
    log = capture_end();
    assert_contains(log, "dbbackend/good: init text=hello count=7 ratio=0.5 flag=1 "
                         "obj={\"a\":[1,\"\xc3\xa9\"]} ");
    assert_contains(log, "dbbackend/good: fini");
    free(log);
    cpar_config_free(cfg);
}

typedef struct rejection {
    cpar_kind_t kind;
    const char *name;
    int rc;
    const char *reason;
} rejection_t;

static void test_fixtures_rejected(void **state)
{
    char minor[64];
    const rejection_t cases[] = {
        {CPAR_KIND_SCHEDULER, "major", CPAR_EABI, "ABI major 2, this core has 1"},
        {CPAR_KIND_SCHEDULER, "minor", CPAR_EABI, minor},
        {CPAR_KIND_SCHEDULER, "misnamed", CPAR_EABI,
         "descriptor names plugin 'other', file names 'misnamed'"},
        {CPAR_KIND_SCHEDULER, "nosym", CPAR_EABI, "no symbol cpar_scheduler_nosym_plugin"},
        {CPAR_KIND_SCHEDULER, "wrongkind", CPAR_EABI, "descriptor kind 2 is not scheduler"},
        {CPAR_KIND_DBBACKEND, "missingop", CPAR_EABI, "missing operation 'get_history'"},
        {CPAR_KIND_SCHEDULER, "nochoose", CPAR_EABI, "missing operation 'choose'"},
        {CPAR_KIND_DBBACKEND, "unresolved", CPAR_EIO,
         "cannot load: undefined symbol: cpar_fixture_nowhere"},
        {CPAR_KIND_DBBACKEND, "failinit", CPAR_EIO, "init failed: CPAR_EIO: cannot open its store"},
    };
    cpar_plughost_t *h;

    (void)state;
    snprintf(minor, sizeof minor, "needs ABI %d.%d, this core has %d.%d", CPAR_PLUGIN_ABI_MAJOR,
             CPAR_PLUGIN_ABI_MINOR + 1, CPAR_PLUGIN_ABI_MAJOR, CPAR_PLUGIN_ABI_MINOR);
    use_path(fixtures);
    h = host_new(NULL, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cpar_plugin_inst_t *inst = (cpar_plugin_inst_t *)&inst;
        char err[1024], want[2 * PATH_MAX];

        snprintf(want, sizeof want, "%s/cpar_%s_%s.so: rejected: %s", fixtures,
                 cpar_kind_name(cases[i].kind), cases[i].name, cases[i].reason);
        assert_int_equal(
            cpar_plughost_load(h, cases[i].kind, cases[i].name, &inst, err, sizeof err),
            cases[i].rc);
        assert_string_equal(err, want);
        assert_null(inst);
    }
    cpar_plughost_free(h);
}

static void test_garbage_rejected(void **state)
{
    cpar_plugin_inst_t *inst;
    char err[1024], want[2 * PATH_MAX];
    cpar_plughost_t *h;

    (void)state;
    use_path(fixtures);
    h = host_new(NULL, NULL);
    snprintf(want, sizeof want, "%s/cpar_dbbackend_garbage.so: rejected: cannot load: ", fixtures);
    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "garbage", &inst, err, sizeof err),
                     CPAR_EIO);
    assert_memory_equal(err, want, strlen(want));
    /* the loader's own reason, not a generic one */
    assert_null(strstr(err, "file not found"));
    assert_true(strlen(err) > strlen(want));
    cpar_plughost_free(h);
}

static void test_not_found_names_search_path(void **state)
{
    cpar_plugin_inst_t *inst;
    char err[4096], want[4096];
    cpar_plughost_t *h;

    (void)state;
    use_path(fixtures);
    h = host_new(NULL, NULL);
    assert_memory_equal(cpar_plughost_search_path(h), fixtures, strlen(fixtures));
    snprintf(want, sizeof want, "dbbackend plugin 'nosuch' not found (searched: %s)",
             cpar_plughost_search_path(h));
    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "nosuch", &inst, err, sizeof err),
                     CPAR_ENOENT);
    assert_string_equal(err, want);

    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "../x", &inst, err, sizeof err),
                     CPAR_EINVAL);
    assert_string_equal(err, "dbbackend plugin name '../x' is not valid (letters, digits and '_' "
                             "only)");
    cpar_plughost_free(h);
}

static void test_not_a_regular_file(void **state)
{
    cpar_plugin_inst_t *inst;
    char dir[64], sub[PATH_MAX + 64], err[1024], want[2 * PATH_MAX];
    cpar_plughost_t *h;

    (void)state;
    make_tmpdir(dir);
    snprintf(sub, sizeof sub, "%s/cpar_dbbackend_good.so", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    use_path(dir);
    h = host_new(NULL, NULL);
    /* found first, so it is this one that answers: nothing falls back to later dirs */
    snprintf(want, sizeof want, "%s: rejected: not a regular file", sub);
    assert_int_equal(cpar_plughost_load(h, CPAR_KIND_DBBACKEND, "good", &inst, err, sizeof err),
                     CPAR_EINVAL);
    assert_string_equal(err, want);
    cpar_plughost_free(h);
    remove_tree(dir);
}

/* ---- search path ------------------------------------------------------------------------ */

/* Load <kind>/<name> with env `env` and config plugin_path `cfgpath`; returns the file used. */
static char *loaded_from(const char *env, json_t *cfgpath, const char *name)
{
    cpar_config_t *cfg = cpar_config_new();
    cpar_plugin_inst_t *inst;
    char err[4096];
    cpar_plughost_t *h;
    char *path;
    int rc;

    assert_non_null(cfg);
    if (cfgpath)
        assert_int_equal(cpar_config_set(cfg, "CParallel", "plugin_path", cfgpath, CPAR_SRC_PY,
                                         "ipcontroller_config.py:1"),
                         0);
    use_path(env);
    h = host_new(cfg, NULL);
    rc = cpar_plughost_load(h, CPAR_KIND_DBBACKEND, name, &inst, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    path = strdup(cpar_plugin_path(inst));
    assert_non_null(path);
    cpar_plughost_free(h);
    cpar_config_free(cfg);
    return path;
}

static void assert_loaded_from(char *got, const char *dir, const char *file)
{
    char want[2 * PATH_MAX];

    snprintf(want, sizeof want, "%s/%s", dir, file);
    assert_string_equal(got, want);
    free(got);
}

static void test_search_precedence(void **state)
{
    char a[64], b[64], good[PATH_MAX + 64], dictdb[PATH_MAX + 64];
    cpar_plughost_t *h;
    cpar_config_t *cfg;
    char want[3 * PATH_MAX];

    (void)state;
    make_tmpdir(a);
    make_tmpdir(b);
    snprintf(good, sizeof good, "%s/cpar_dbbackend_good.so", fixtures);
    snprintf(dictdb, sizeof dictdb, "%s/cpar_dbbackend_dictdb.so", plugins);
    copy_file(good, a, "cpar_dbbackend_good.so");
    copy_file(good, b, "cpar_dbbackend_good.so");
    copy_file(dictdb, b, "cpar_dbbackend_dictdb.so");

    /* The compiled-in directory, relative to this program, is the build tree's plugin dir. */
    assert_loaded_from(loaded_from(NULL, NULL, "dictdb"), plugins, "cpar_dbbackend_dictdb.so");
    /* config plugin_path (a list, or a colon string) comes before it */
    assert_loaded_from(loaded_from(NULL, json_pack("[s]", b), "dictdb"), b,
                       "cpar_dbbackend_dictdb.so");
    assert_loaded_from(loaded_from(NULL, json_string(b), "good"), b, "cpar_dbbackend_good.so");
    /* CPAR_PLUGIN_PATH comes before the config */
    assert_loaded_from(loaded_from(a, json_pack("[s]", b), "good"), a, "cpar_dbbackend_good.so");
    /* within a list, the first directory wins */
    snprintf(want, sizeof want, "%s:%s", b, a);
    assert_loaded_from(loaded_from(want, NULL, "good"), b, "cpar_dbbackend_good.so");

    /* The whole path, in order, without repeats. */
    cfg = cpar_config_new();
    assert_non_null(cfg);
    snprintf(want, sizeof want, "%s:%s", b, a);
    assert_int_equal(
        cpar_config_set(cfg, "CParallel", "plugin_path", json_string(want), CPAR_SRC_PY, "x"), 0);
    use_path(a);
    h = host_new(cfg, NULL);
    snprintf(want, sizeof want, "%s:%s:%s:", a, b, plugins);
    assert_memory_equal(cpar_plughost_search_path(h), want, strlen(want));
    cpar_plughost_free(h);
    cpar_config_free(cfg);

    remove_tree(a);
    remove_tree(b);
}

/* ---- --list-plugins --------------------------------------------------------------------- */

static void test_list_plugins(void **state)
{
    char a[64], list[4 * PATH_MAX], line[2 * PATH_MAX], good[PATH_MAX + 64], odd[PATH_MAX + 64];
    cpar_plughost_t *h;
    char *out = NULL;
    size_t outlen = 0;
    FILE *f;
    int rejected;

    (void)state;
    make_tmpdir(a);
    snprintf(good, sizeof good, "%s/cpar_dbbackend_good.so", fixtures);
    copy_file(good, a, "cpar_dbbackend_good.so");
    snprintf(odd, sizeof odd, "%s/cpar_widget_x.so", a);
    copy_file(good, a, "cpar_widget_x.so");
    copy_file(good, a, "not_a_plugin.so");
    snprintf(list, sizeof list, "%s:%s", fixtures, a);
    use_path(list);
    h = host_new(NULL, NULL);
    f = open_memstream(&out, &outlen);
    assert_non_null(f);
    capture_start();
    rejected = cpar_plughost_list(h, f);
    free(capture_end());
    assert_int_equal(fclose(f), 0);

    /* nine broken fixtures and the file of an unknown kind */
    assert_int_equal(rejected, 11);
    snprintf(line, sizeof line, "dbbackend/good 1.2.3 loaded %s - well-formed test fixture\n",
             good);
    assert_contains(out, line);
    snprintf(line, sizeof line, "dbbackend/good shadowed %s/cpar_dbbackend_good.so (by %s)\n", a,
             good);
    assert_contains(out, line);
    snprintf(line, sizeof line,
             "scheduler/major rejected %s/cpar_scheduler_major.so: ABI major 2, this core has 1\n",
             fixtures);
    assert_contains(out, line);
    snprintf(line, sizeof line,
             "dbbackend/failinit rejected %s/cpar_dbbackend_failinit.so: init failed: CPAR_EIO: "
             "cannot open its store\n",
             fixtures);
    assert_contains(out, line);
    snprintf(line, sizeof line,
             "dbbackend/garbage rejected %s/cpar_dbbackend_garbage.so: cannot load: ", fixtures);
    assert_contains(out, line);
    snprintf(line, sizeof line, "widget/x rejected %s: unknown plugin kind 'widget'\n", odd);
    assert_contains(out, line);
    snprintf(line, sizeof line, "loaded %s/cpar_dbbackend_dictdb.so - ", plugins);
    assert_contains(out, line);
    assert_null(strstr(out, "not_a_plugin"));
    free(out);
    cpar_plughost_free(h);
    remove_tree(a);
}

/* ---- the db front and the host table ---------------------------------------------------- */

static void test_db_plugin_names(void **state)
{
    (void)state;
    assert_string_equal(cpar_db_plugin_name("DictDB"), "dictdb");
    assert_string_equal(cpar_db_plugin_name("dictdb"), "dictdb");
    assert_string_equal(cpar_db_plugin_name("ipyparallel.controller.dictdb.DictDB"), "dictdb");
    assert_string_equal(cpar_db_plugin_name("SQLiteDB"), "sqlite");
    assert_string_equal(cpar_db_plugin_name("sqlitedb"), "sqlite");
    assert_string_equal(cpar_db_plugin_name("ipyparallel.controller.sqlitedb.SQLiteDB"), "sqlite");
    assert_string_equal(cpar_db_plugin_name("IPython.parallel.controller.sqlitedb.SQLiteDB"),
                        "sqlite");
    assert_string_equal(cpar_db_plugin_name("MongoDB"), "mongodb");
    assert_string_equal(cpar_db_plugin_name("ipyparallel.controller.mongodb.MongoDB"), "mongodb");
    assert_string_equal(cpar_db_plugin_name("NoDB"), "nodb");
    assert_string_equal(cpar_db_plugin_name("NODB"), "nodb");
    assert_string_equal(cpar_db_plugin_name("ipyparallel.controller.dictdb.NoDB"), "nodb");
    assert_string_equal(cpar_db_plugin_name("sqlite"), "sqlite");
    assert_string_equal(cpar_db_plugin_name("my_backend"), "my_backend");
}

static void no_record(void *arg, const cpar_record_t *rec)
{
    (void)arg;
    (void)rec;
    fail_msg("the good fixture has no records");
}

static void test_set_error_reaches_front(void **state)
{
    cpar_plughost_t *h;
    cpar_db_t *db, *failed = NULL;
    cpar_record_t r;
    char err[1024];

    (void)state;
    use_path(fixtures);
    h = host_new(NULL, NULL);
    assert_int_equal(cpar_db_open(h, "good", &db, err, sizeof err), 0);
    assert_string_equal(cpar_db_name(db), "good");
    assert_string_equal(cpar_db_error(db), "");
    assert_int_equal(cpar_db_get(db, "m1", no_record, NULL), CPAR_ENOENT);
    assert_string_equal(cpar_db_error(db), "no record m1 in the good fixture");
    /* each call starts with a clean slate */
    cpar_record_init(&r);
    r.msg_id = "m1";
    assert_int_equal(cpar_db_add(db, &r), 0);
    assert_string_equal(cpar_db_error(db), "");
    assert_int_equal(cpar_db_flush(db), 0); /* no flush op: nothing to do */
    assert_int_equal(cpar_db_open(h, "failinit", &failed, err, sizeof err), CPAR_EIO);
    assert_null(failed);
    cpar_db_close(h, db);
    cpar_plughost_free(h);
}

static void test_timers(void **state)
{
    cpar_plughost_t *h;
    cpar_loop_t *loop;
    cpar_db_t *db;
    char err[1024];
    char *log;

    (void)state;
    use_path(fixtures);
    h = host_new(NULL, NULL);
    assert_int_equal(cpar_db_open(h, "good", &db, err, sizeof err), 0);
    assert_int_equal(cpar_db_drop(db, "start"), CPAR_ENOTSUP);
    cpar_db_close(h, db);
    cpar_plughost_free(h);

    assert_int_equal(cpar_loop_new(&loop), 0);
    h = host_new(NULL, loop);
    assert_int_equal(cpar_db_open(h, "good", &db, err, sizeof err), 0);
    assert_int_equal(cpar_db_drop(db, "start"), 0);
    assert_int_equal(cpar_db_drop(db, "stop"), 0);
    capture_start();
    cpar_db_close(h, db);
    log = capture_end();
    assert_null(strstr(log, "timer"));
    free(log);

    /* A timer left running after fini is reported and stopped. */
    assert_int_equal(cpar_db_open(h, "good", &db, err, sizeof err), 0);
    assert_int_equal(cpar_db_drop(db, "start"), 0);
    capture_start();
    cpar_db_close(h, db);
    log = capture_end();
    assert_contains(log, "WARNING dbbackend/good: 1 timer(s) still running after fini; stopped");
    free(log);
    cpar_plughost_free(h);
    cpar_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_load_good_logs_and_unloads),
        cmocka_unit_test(test_config_reaches_plugin),
        cmocka_unit_test(test_fixtures_rejected),
        cmocka_unit_test(test_garbage_rejected),
        cmocka_unit_test(test_not_found_names_search_path),
        cmocka_unit_test(test_not_a_regular_file),
        cmocka_unit_test(test_search_precedence),
        cmocka_unit_test(test_list_plugins),
        cmocka_unit_test(test_db_plugin_names),
        cmocka_unit_test(test_set_error_reaches_front),
        cmocka_unit_test(test_timers),
    };

    if (!realpath(CPAR_TEST_FIXTURE_DIR, fixtures) || !realpath(CPAR_TEST_PLUGIN_DIR, plugins)) {
        fprintf(stderr, "build the fixture plugins and the plugins first\n");
        return 1;
    }
    cpar_log_set_program("test_plughost");
    cpar_log_set_level(CPAR_LOG_INFO);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
