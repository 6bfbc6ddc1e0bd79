/*
 * test_sqlite_durability.c - the SQLite backend across processes and restarts, through the real
 * plugin host: a child loading records is killed with SIGKILL and the database is intact and
 * holds every record the child had flushed; records written by one instance are found by the
 * next; a table of another schema makes it use <table>_1 (then _2); an older table of its own
 * gains the new columns; writes are committed by the host timer without a flush, and a write
 * that completes a record at the reactor's next turn; loading the plugin alone creates no file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "loop/loop.h"
#include "plugins/db.h"
#include "util/ids.h"
#include "util/log.h"
#include "wire/query.h"

#include "tmptree.h"

static char topdir[] = "/tmp/cpar-sqlite-XXXXXX";

typedef struct inst {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
} inst_t;

/* A fresh directory under topdir for one test. */
static void test_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", topdir, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void db_path(char *out, size_t len, const char *dir)
{
    snprintf(out, len, "%s/tasks.db", dir);
}

/*
 * Load the SQLite backend with location `dir` and `table` (NULL: the default), through a host
 * with `loop` (may be NULL). No cmocka asserts: a forked child uses it too. Returns the open code.
 */
static int inst_open(inst_t *in, const char *dir, const char *table, cpar_loop_t *loop)
{
    cpar_plughost_info_t info = {.program = "test_sqlite_durability", .cluster_id = ""};
    char err[1024];
    int rc;

    memset(in, 0, sizeof *in);
    cpar_new_id(in->session);
    info.session = in->session;
    info.profile_dir = dir;
    in->cfg = cpar_config_new();
    if (!in->cfg)
        return CPAR_ENOMEM;
    if (cpar_config_set(in->cfg, "SQLiteDB", "location", json_string(dir), CPAR_SRC_CLI, "t") ||
        (table &&
         cpar_config_set(in->cfg, "SQLiteDB", "table", json_string(table), CPAR_SRC_CLI, "t")))
        return CPAR_EINVAL;
    if ((rc = cpar_plughost_new(&in->host, in->cfg, loop, &info)) != 0)
        return rc;
    rc = cpar_db_open(in->host, "SQLiteDB", &in->db, err, sizeof err);
    if (rc)
        fprintf(stderr, "open sqlite: %s\n", err);
    return rc;
}

static void inst_close(inst_t *in)
{
    cpar_db_close(in->host, in->db);
    cpar_plughost_free(in->host);
    cpar_config_free(in->cfg);
    memset(in, 0, sizeof *in);
}

static void open_ok(inst_t *in, const char *dir, const char *table, cpar_loop_t *loop)
{
    assert_int_equal(inst_open(in, dir, table, loop), 0);
}

/* ---- the records the tests write ------------------------------------------------------------ */

#define T0 INT64_C(1633046400000000)

typedef struct recbuf {
    char id[32], out[64];
    uint8_t req[300], res[64];
    ProtobufCBinaryData bufs[2], rbufs[1];
} recbuf_t;

/* Record number i of series `series`, as added (complete = 0) or once finished (complete = 1). */
static void make_record(cpar_record_t *r, recbuf_t *b, const char *series, unsigned i, int complete)
{
    size_t nreq = (i * 37u) % sizeof b->req, nres = (i * 11u) % sizeof b->res;

    for (size_t j = 0; j < nreq; j++)
        b->req[j] = (uint8_t)(i + j);
    for (size_t j = 0; j < nres; j++)
        b->res[j] = (uint8_t)(i * 3 + j);
    snprintf(b->id, sizeof b->id, "%s-%06u", series, i);
    snprintf(b->out, sizeof b->out, "output of %u\n", i);
    b->bufs[0].data = b->req;
    b->bufs[0].len = nreq;
    b->bufs[1].data = NULL; /* an item of no bytes */
    b->bufs[1].len = 0;
    b->rbufs[0].data = b->res;
    b->rbufs[0].len = nres;

    cpar_record_init(r);
    r->msg_id = b->id;
    r->header = "{\"msg_type\":\"apply_request\",\"session\":\"s\"}";
    r->has_submitted = 1;
    r->submitted = T0 + i;
    r->n_buffers = 2;
    r->buffers = b->bufs;
    r->queue = "task";
    if (complete) {
        r->has_completed = 1;
        r->completed = T0 + i + 1000;
        r->engine_uuid = "engine-1";
        r->stdout = b->out;
        r->n_result_buffers = 1;
        r->result_buffers = b->rbufs;
    }
}

#define FINISHED                                                                                   \
    (CPAR_REC_COMPLETED | CPAR_REC_ENGINE_UUID | CPAR_REC_STDOUT | CPAR_REC_RESULT_BUFFERS)

/* Field-by-field equality of what matters here. */
static int record_matches(const cpar_record_t *want, const cpar_record_t *got)
{
    size_t lw = protobuf_c_message_get_packed_size(&want->base);
    size_t lg = protobuf_c_message_get_packed_size(&got->base);
    uint8_t *pw, *pg;
    int same;

    if (lw != lg)
        return 0;
    pw = malloc(lw + 1);
    pg = malloc(lg + 1);
    assert_non_null(pw);
    assert_non_null(pg);
    protobuf_c_message_pack(&want->base, pw);
    protobuf_c_message_pack(&got->base, pg);
    same = memcmp(pw, pg, lw) == 0; /* fields are packed in number order: equal iff equal */
    free(pw);
    free(pg);
    return same;
}

typedef struct check {
    const cpar_record_t *want;
    int calls, same;
} check_t;

static void check_cb(void *arg, const cpar_record_t *rec)
{
    check_t *c = arg;

    c->calls++;
    c->same = record_matches(c->want, rec);
}

static void assert_stored(inst_t *in, const cpar_record_t *want)
{
    check_t c = {.want = want};
    int rc = cpar_db_get(in->db, want->msg_id, check_cb, &c);

    if (rc)
        fail_msg("get %s: %s: %s", want->msg_id, cpar_err_name(rc), cpar_db_error(in->db));
    assert_int_equal(c.calls, 1);
    if (!c.same)
        fail_msg("record %s differs from what was written", want->msg_id);
}

/* ---- sqlite3 on the side ------------------------------------------------------------------- */

static sqlite3 *side_open(const char *path)
{
    sqlite3 *conn = NULL;

    assert_int_equal(sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return conn;
}

static void side_exec(sqlite3 *conn, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(conn, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
}

/* The single integer or text a query returns, as text. */
static void side_value(sqlite3 *conn, const char *sql, char *out, size_t len)
{
    sqlite3_stmt *stmt;

    assert_int_equal(sqlite3_prepare_v2(conn, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    else
        snprintf(out, len, "(none)");
    sqlite3_finalize(stmt);
}

static long side_count(sqlite3 *conn, const char *sql)
{
    char v[64];

    side_value(conn, sql, v, sizeof v);
    return strtol(v, NULL, 10);
}

/* ---- SIGKILL mid-load ------------------------------------------------------------------------ */

#define FLUSH_EVERY 25

/*
 * The child: add and finish records of `series` for ever, flushing every FLUSH_EVERY records
 * and then reporting how many are flushed through `fd`. Never returns.
 */
static void child_load(int fd, const char *dir, const char *series)
{
    inst_t in;

    if (inst_open(&in, dir, NULL, NULL) != 0)
        _exit(3);
    for (unsigned i = 0;; i++) {
        recbuf_t b;
        cpar_record_t r;
        uint32_t flushed;

        make_record(&r, &b, series, i, 0);
        if (cpar_db_add(in.db, &r) != 0)
            _exit(4);
        make_record(&r, &b, series, i, 1);
        if (cpar_db_update(in.db, &r, FINISHED) != 0)
            _exit(5);
        if ((i + 1) % FLUSH_EVERY)
            continue;
        if (cpar_db_flush(in.db) != 0)
            _exit(6);
        flushed = i + 1;
        if (write(fd, &flushed, sizeof flushed) != (ssize_t)sizeof flushed)
            _exit(7);
    }
}

/* Start a loading child, kill it after it reported `at_least` flushed records; how many it had. */
static uint32_t kill_mid_load(const char *dir, const char *series, uint32_t at_least,
                              useconds_t extra)
{
    uint32_t flushed = 0, n;
    int fds[2], status;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_load(fds[1], dir, series);
    }
    close(fds[1]);
    while (flushed < at_least) {
        ssize_t got = read(fds[0], &n, sizeof n);
        if (got != (ssize_t)sizeof n) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the child stopped after %u flushed records (status %d)", flushed, status);
        }
        flushed = n;
    }
    usleep(extra); /* land somewhere in the middle of the next batch, or of a flush */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* reports written before the kill still count */
    while (read(fds[0], &n, sizeof n) == (ssize_t)sizeof n)
        flushed = n;
    close(fds[0]);
    return flushed;
}

static void test_sigkill_mid_load(void **state)
{
    static const char *const series[] = {"k1", "k2", "k3", "k4"};
    static const useconds_t extra[] = {0, 3000, 17000, 41000};
    uint32_t flushed[4];
    char dir[512], path[600], ok[64];

    (void)state;
    test_dir(dir, sizeof dir, "kill");
    db_path(path, sizeof path, dir);
    for (size_t round = 0; round < 4; round++) {
        inst_t in;
        sqlite3 *side;

        flushed[round] =
            kill_mid_load(dir, series[round], 300 + 50 * (uint32_t)round, extra[round]);

        /* The file as SQLite sees it, before any plugin touches it again. */
        side = side_open(path);
        side_value(side, "PRAGMA integrity_check", ok, sizeof ok);
        assert_string_equal(ok, "ok");
        for (size_t r = 0; r <= round; r++) {
            char sql[200];

            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM \"ipython-tasks\" WHERE msg_id LIKE '%s-%%' AND "
                     "completed IS NOT NULL",
                     series[r]);
            assert_true(side_count(side, sql) >= (long)flushed[r]);
            if (r == round)
                print_message("killed after %u flushed records; %ld finished ones stored\n",
                              flushed[r], side_count(side, sql));
        }
        sqlite3_close(side);

        /* Every flushed record is there and complete, through the plugin. */
        open_ok(&in, dir, NULL, NULL);
        for (size_t r = 0; r <= round; r++) {
            for (unsigned i = 0; i < flushed[r]; i++) {
                recbuf_t b;
                cpar_record_t want;

                make_record(&want, &b, series[r], i, 1);
                assert_stored(&in, &want);
            }
        }
        inst_close(&in);
    }
}

/* ---- restart --------------------------------------------------------------------------------- */

typedef struct ids {
    size_t n;
    char id[16][32];
} ids_t;

static void collect_id(void *arg, const char *msg_id)
{
    ids_t *ids = arg;

    assert_true(ids->n < 16);
    snprintf(ids->id[ids->n++], sizeof ids->id[0], "%s", msg_id);
}

static void count_cb(void *arg, const cpar_record_t *rec)
{
    (void)rec;
    (*(int *)arg)++;
}

static int count_matching(inst_t *in, const char *json)
{
    cpar_query_t *q;
    char err[256];
    int n = 0;

    assert_int_equal(cpar_query_parse(json, strlen(json), &q, err, sizeof err), 0);
    assert_int_equal(cpar_db_find(in->db, q, CPAR_REC_ALL, count_cb, &n), 0);
    cpar_query_free(q);
    return n;
}

static void test_restart_keeps_records(void **state)
{
    char dir[512];
    recbuf_t b[5];
    cpar_record_t r[5];
    ids_t ids = {0};
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "restart");
    open_ok(&in, dir, NULL, NULL);
    for (unsigned i = 0; i < 5; i++) {
        make_record(&r[i], &b[i], "run1", 4 - i, 0); /* submitted in reverse order */
        assert_int_equal(cpar_db_add(in.db, &r[i]), 0);
    }
    make_record(&r[1], &b[1], "run1", 3, 1);
    assert_int_equal(cpar_db_update(in.db, &r[1], FINISHED), 0);
    assert_int_equal(cpar_db_drop(in.db, r[4].msg_id), 0);
    inst_close(&in); /* no explicit flush: closing commits */

    open_ok(&in, dir, NULL, NULL); /* a new controller: another session, same table */
    assert_int_equal(cpar_db_history(in.db, collect_id, &ids), 0);
    assert_int_equal(ids.n, 4);
    assert_string_equal(ids.id[0], "run1-000001");
    assert_string_equal(ids.id[3], "run1-000004");
    for (unsigned i = 0; i < 4; i++)
        assert_stored(&in, &r[i]);
    assert_int_equal(count_matching(&in, "{\"completed\": {\"$ne\": null}}"), 1);
    assert_int_equal(count_matching(&in, "{}"), 4);
    /* and it keeps writing to the same table */
    make_record(&r[4], &b[4], "run2", 0, 1);
    assert_int_equal(cpar_db_add(in.db, &r[4]), 0);
    assert_int_equal(cpar_db_add(in.db, &r[0]), CPAR_EEXIST);
    inst_close(&in);

    open_ok(&in, dir, NULL, NULL);
    assert_int_equal(count_matching(&in, "{}"), 5);
    inst_close(&in);
}

/* ---- tables of other schemas ---------------------------------------------------------------- */

/* ipyparallel 7.1's SQLiteDB table, exactly as it creates it. */
#define IPP_DDL(table)                                                                             \
    "CREATE TABLE IF NOT EXISTS '" table "' (msg_id text PRIMARY KEY, header dict text, "          \
    "metadata dict text, content dict text, buffers bufs blob, submitted timestamp, "              \
    "client_uuid text, engine_uuid text, started timestamp, completed timestamp, "                 \
    "resubmitted text, received timestamp, result_header dict text, result_metadata dict "         \
    "text, result_content dict text, result_buffers bufs blob, queue text, execute_input "         \
    "text, execute_result text, error text, stdout text, stderr text)"

/* Run fn with stderr (the core's log) going to a file; the log text into out. */
static void with_log(void (*fn)(void *), void *arg, char *out, size_t len)
{
    char path[600];
    int saved = dup(2), fd;
    ssize_t n;

    snprintf(path, sizeof path, "%s/log.txt", topdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

typedef struct foreign_run {
    const char *dir;
    inst_t in;
    recbuf_t b;
    cpar_record_t r;
} foreign_run_t;

static void foreign_add(void *arg)
{
    foreign_run_t *f = arg;

    open_ok(&f->in, f->dir, NULL, NULL);
    make_record(&f->r, &f->b, "mine", 1, 1);
    assert_int_equal(cpar_db_add(f->in.db, &f->r), 0); /* opens the file, picks the table */
    assert_stored(&f->in, &f->r);
    inst_close(&f->in);
}

static void test_foreign_schema_uses_next_table(void **state)
{
    char dir[512], path[600], log[8192], v[64];
    foreign_run_t f = {0};
    sqlite3 *side;

    (void)state;
    cpar_log_set_level(CPAR_LOG_INFO);
    test_dir(dir, sizeof dir, "foreign");
    db_path(path, sizeof path, dir);
    assert_int_equal(sqlite3_open(path, &side), SQLITE_OK);
    side_exec(side, IPP_DDL("ipython-tasks"));
    side_exec(side, "INSERT INTO 'ipython-tasks' (msg_id, submitted, stdout) VALUES "
                    "('py-1', '2021-10-01T00:00:00.123456+00:00', 'from python')");
    sqlite3_close(side);

    f.dir = dir;
    with_log(foreign_add, &f, log, sizeof log);
    if (!strstr(log, "using table 'ipython-tasks_1'"))
        fail_msg("no log line naming ipython-tasks_1 in: %s", log);

    side = side_open(path);
    assert_int_equal(side_count(side, "SELECT count(*) FROM \"ipython-tasks\""), 1);
    side_value(side, "SELECT stdout FROM \"ipython-tasks\"", v, sizeof v);
    assert_string_equal(v, "from python");
    side_value(side, "SELECT msg_id FROM \"ipython-tasks_1\"", v, sizeof v);
    assert_string_equal(v, "mine-000001");
    sqlite3_close(side);

    /* The next start finds its own table again (and says so again), and no third one appears. */
    cpar_log_set_level(CPAR_LOG_ERROR);
    open_ok(&f.in, dir, NULL, NULL);
    assert_stored(&f.in, &f.r);
    inst_close(&f.in);
    side = side_open(path);
    assert_int_equal(side_count(side, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"),
                     2);
    sqlite3_close(side);

    /* Two foreign tables: the third name is used. */
    test_dir(dir, sizeof dir, "foreign2");
    db_path(path, sizeof path, dir);
    assert_int_equal(sqlite3_open(path, &side), SQLITE_OK);
    side_exec(side, IPP_DDL("ipython-tasks"));
    side_exec(side, IPP_DDL("ipython-tasks_1"));
    sqlite3_close(side);
    cpar_log_set_level(CPAR_LOG_INFO);
    with_log(foreign_add, &f, log, sizeof log);
    if (!strstr(log, "using table 'ipython-tasks_2'"))
        fail_msg("no log line naming ipython-tasks_2 in: %s", log);
    side = side_open(path);
    assert_int_equal(side_count(side, "SELECT count(*) FROM \"ipython-tasks_2\""), 1);
    sqlite3_close(side);
    cpar_log_set_level(CPAR_LOG_WARNING);
}

/* A table of an older version of this backend (no label column) gains the column. */
static void test_older_own_table_gains_columns(void **state)
{
    char dir[512], path[600];
    recbuf_t b;
    cpar_record_t r;
    sqlite3 *side;
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "older");
    db_path(path, sizeof path, dir);
    assert_int_equal(sqlite3_open(path, &side), SQLITE_OK);
    side_exec(side,
              "CREATE TABLE \"ipython-tasks\" (seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL "
              "UNIQUE, header TEXT, metadata TEXT, content TEXT, buffers BLOB, submitted "
              "INTEGER, client_uuid TEXT, engine_uuid TEXT, started INTEGER, completed INTEGER, "
              "resubmitted TEXT, received INTEGER, result_header TEXT, result_metadata TEXT, "
              "result_content TEXT, result_buffers BLOB, queue TEXT, execute_input TEXT, "
              "execute_result TEXT, error TEXT, stdout TEXT, stderr TEXT, display_data TEXT)");
    side_exec(side, "INSERT INTO \"ipython-tasks\" (msg_id, submitted) VALUES ('old-1', 5)");
    sqlite3_close(side);

    open_ok(&in, dir, NULL, NULL);
    make_record(&r, &b, "new", 1, 1);
    r.label = "with a label";
    assert_int_equal(cpar_db_add(in.db, &r), 0);
    assert_stored(&in, &r);
    assert_int_equal(count_matching(&in, "{\"msg_id\": \"old-1\"}"), 1);
    inst_close(&in);

    side = side_open(path);
    assert_int_equal(side_count(side, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"),
                     1);
    sqlite3_close(side);
}

/* ---- settings and life cycle --------------------------------------------------------------- */

static void test_per_session_table(void **state)
{
    char dir[512], path[600], sql[200], table[64];
    recbuf_t b;
    cpar_record_t r;
    sqlite3 *side;
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "session");
    db_path(path, sizeof path, dir);
    open_ok(&in, dir, "", NULL);
    make_record(&r, &b, "s", 1, 0);
    assert_int_equal(cpar_db_add(in.db, &r), 0);
    snprintf(table, sizeof table, "_%s", in.session);
    for (char *c = table; *c; c++)
        if (*c == '-')
            *c = '_';
    inst_close(&in);
    side = side_open(path);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
    assert_int_equal(side_count(side, sql), 1);
    sqlite3_close(side);
}

/* Loading and unloading (cpcontroller --list-plugins) leaves no file behind. */
static void test_load_creates_nothing(void **state)
{
    char dir[512], path[600];
    struct stat st;
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "listing");
    db_path(path, sizeof path, dir);
    open_ok(&in, dir, NULL, NULL);
    inst_close(&in);
    assert_int_equal(stat(path, &st), -1);
}

static void test_bad_settings(void **state)
{
    char dir[512], path[600];
    inst_t in;
    int fd;

    (void)state;
    /* a location that is not there: refused at load */
    test_dir(dir, sizeof dir, "bad");
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(inst_open(&in, path, NULL, NULL), CPAR_ECONFIG);
    cpar_plughost_free(in.host);
    cpar_config_free(in.cfg);
    assert_int_equal(inst_open(&in, dir, "sqlite_master", NULL), CPAR_ECONFIG);
    cpar_plughost_free(in.host);
    cpar_config_free(in.cfg);

    /* a file that is no database: each operation fails with CPAR_EIO and says why */
    db_path(path, sizeof path, dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd,
                           "this is not a database, just text that is long enough......."
                           "...............................................",
                           106),
                     106);
    close(fd);
    cpar_log_set_level(CPAR_LOG_CRITICAL);
    open_ok(&in, dir, NULL, NULL);
    {
        recbuf_t b;
        cpar_record_t r;

        make_record(&r, &b, "x", 1, 0);
        assert_int_equal(cpar_db_add(in.db, &r), CPAR_EIO);
        if (!strstr(cpar_db_error(in.db), "not a database"))
            fail_msg("error text: %s", cpar_db_error(in.db));
    }
    inst_close(&in);
    cpar_log_set_level(CPAR_LOG_WARNING);
}

/* ---- commits by the host timer ------------------------------------------------------------- */

static void stop_loop(void *arg)
{
    cpar_loop_stop(arg);
}

static void run_loop(cpar_loop_t *loop, uint64_t ms)
{
    cpar_loop_timer_t *t = cpar_loop_timer_start(loop, ms, 0, stop_loop, loop);

    assert_non_null(t);
    assert_int_equal(cpar_loop_run(loop), 0);
    cpar_loop_timer_stop(loop, t);
}

static void test_timer_commits_without_flush(void **state)
{
    char dir[512], path[600], sql[200];
    struct stat st;
    cpar_loop_t *loop;
    recbuf_t b;
    cpar_record_t r;
    sqlite3 *side;
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "timer");
    db_path(path, sizeof path, dir);
    assert_int_equal(cpar_loop_new(&loop), 0);
    open_ok(&in, dir, NULL, loop);
    run_loop(loop, 20); /* the plugin opens the database once the reactor runs */
    assert_int_equal(stat(path, &st), 0);

    make_record(&r, &b, "timed", 1, 0);
    assert_int_equal(cpar_db_add(in.db, &r), 0);
    side = side_open(path);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"ipython-tasks\" WHERE msg_id = '%s'",
             r.msg_id);
    assert_int_equal(side_count(side, sql), 0); /* not committed yet */
    run_loop(loop, 300);
    assert_int_equal(side_count(side, sql), 1); /* the commit timer fired */
    sqlite3_close(side);
    inst_close(&in);
    cpar_loop_free(loop);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A write that completes a record is committed at the reactor's next turn, not 100 ms later; the
 * completions of one turn share that commit; a request alone still waits for the 100 ms timer.
 */
static void test_completed_commits_next_turn(void **state)
{
    char dir[512], path[600], sql[300];
    cpar_loop_t *loop;
    recbuf_t b[4];
    cpar_record_t r[4];
    sqlite3 *side;
    int64_t t0;
    inst_t in;

    (void)state;
    test_dir(dir, sizeof dir, "soon");
    db_path(path, sizeof path, dir);
    assert_int_equal(cpar_loop_new(&loop), 0);
    open_ok(&in, dir, NULL, loop);
    run_loop(loop, 20); /* the plugin opens the database once the reactor runs */
    side = side_open(path);
#define STORED "SELECT count(*) FROM \"ipython-tasks\" WHERE msg_id LIKE 'soon-%'"
#define DONE STORED " AND completed IS NOT NULL"

    /*
     * requests: not committed by a loop turn, only by the 100 ms timer (unless this process was
     * stalled for that long, when the timer is due in that turn too)
     */
    t0 = mono_ms();
    for (unsigned i = 0; i < 3; i++) {
        make_record(&r[i], &b[i], "soon", i, 0);
        assert_int_equal(cpar_db_add(in.db, &r[i]), 0);
    }
    run_loop(loop, 0);
    if (mono_ms() - t0 < 80)
        assert_int_equal(side_count(side, STORED), 0);
    run_loop(loop, 300);
    assert_int_equal(side_count(side, STORED), 3);

    /* three completions in one turn: none committed at once, all by the next turn */
    for (unsigned i = 0; i < 3; i++) {
        make_record(&r[i], &b[i], "soon", i, 1);
        assert_int_equal(cpar_db_update(in.db, &r[i], FINISHED), 0);
        assert_int_equal(side_count(side, DONE), 0);
    }
    run_loop(loop, 0);
    assert_int_equal(side_count(side, DONE), 3);

    /* an update that does not set completed keeps the 100 ms window */
    r[0].stdout = "more output\n";
    t0 = mono_ms();
    assert_int_equal(cpar_db_update(in.db, &r[0], CPAR_REC_STDOUT), 0);
    run_loop(loop, 0);
    snprintf(sql, sizeof sql, "%s AND stdout = 'more output\n'", STORED);
    if (mono_ms() - t0 < 80)
        assert_int_equal(side_count(side, sql), 0);
    run_loop(loop, 300);
    assert_int_equal(side_count(side, sql), 1);

    /* an add of a record that has completed: the next turn too */
    make_record(&r[3], &b[3], "soon", 3, 1);
    assert_int_equal(cpar_db_add(in.db, &r[3]), 0);
    run_loop(loop, 0);
    assert_int_equal(side_count(side, DONE), 4);
#undef DONE
#undef STORED
    sqlite3_close(side);
    inst_close(&in);
    cpar_loop_free(loop);
}

/* ---- runner ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    cpar_log_set_level(CPAR_LOG_WARNING);
    return mkdtemp(topdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return tmptree_remove(topdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_load),
        cmocka_unit_test(test_restart_keeps_records),
        cmocka_unit_test(test_foreign_schema_uses_next_table),
        cmocka_unit_test(test_older_own_table_gains_columns),
        cmocka_unit_test(test_per_session_table),
        cmocka_unit_test(test_load_creates_nothing),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_timer_commits_without_flush),
        cmocka_unit_test(test_completed_commits_next_turn),
    };

    return cmocka_run_group_tests_name("sqlite durability", tests, group_setup, group_teardown);
}
