/*
 * sqlitedb.c - cpar_dbbackend_sqlite.so: ipyparallel's SQLiteDB, the task records in an SQLite
 * file (section SQLiteDB: filename, location, table), kept across controller restarts.
 *
 * The file is opened in WAL mode with synchronous=NORMAL. Writes go into an open transaction
 * that is committed at the reactor's next turn once it holds a write that sets `completed` (a
 * 0 ms host timer: the completions of one turn share a commit), else SQLITEDB_COMMIT_MS after
 * its first write (a host timer), when it holds SQLITEDB_BATCH_WRITES writes or
 * SQLITEDB_BATCH_BYTES bytes, and in flush and fini; a commit writes the WAL without fsync. A
 * thread of the plugin with a connection of its own copies the WAL into the database file (a
 * passive checkpoint, with the fsyncs) so that the reactor never waits for the disk. Reads see
 * the open transaction: they use the same connection.
 *
 * The database is opened lazily: by a timer that fires once the reactor runs, or by the first
 * operation, so that loading the plugin (cpcontroller --list-plugins) creates no file or table.
 *
 * Memory inside the plugin comes from malloc; nothing the plugin allocates crosses to the core.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "sqlitedb.h"

#ifndef CPAR_SQLITEDB_VERSION
#define CPAR_SQLITEDB_VERSION "0"
#endif

#define SQLITEDB_DEFAULT_FILENAME "tasks.db"
#define SQLITEDB_DEFAULT_TABLE "ipython-tasks"
/* Give up looking for a free <table>_N after this many. */
#define SQLITEDB_MAX_SUFFIX 1000
#define SQLITEDB_MAX_COLS 64

_Static_assert(CPAR_REC_HEADER == 1u << (2 - 2) && CPAR_REC_LABEL == 1u << (24 - 2),
               "cpar_record_field_t bits follow record.proto field numbers");

/*
 * The record's fields by number (cols[0] is msg_id), one column each after `seq`; filled by the
 * first init from the constant descriptor.
 */
static const ProtobufCFieldDescriptor *sqlitedb_cols[SQLITEDB_MAX_COLS];
static size_t sqlitedb_ncols;

/* ---- strings ------------------------------------------------------------------------------ */

static int sqlitedb_str_reserve(sqlitedb_str_t *s, size_t more)
{
    size_t cap;
    char *p;

    if (s->oom)
        return 0;
    if (s->len + more + 1 <= s->cap)
        return 1;
    cap = s->cap ? s->cap : 128;
    while (cap < s->len + more + 1)
        cap *= 2;
    p = realloc(s->p, cap);
    if (!p) {
        s->oom = 1;
        return 0;
    }
    s->p = p;
    s->cap = cap;
    return 1;
}

void sqlitedb_str_add(sqlitedb_str_t *s, const char *text)
{
    size_t n = strlen(text);

    if (!sqlitedb_str_reserve(s, n))
        return;
    memcpy(s->p + s->len, text, n + 1);
    s->len += n;
}

void sqlitedb_str_addf(sqlitedb_str_t *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->oom = 1;
        return;
    }
    if (!sqlitedb_str_reserve(s, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void sqlitedb_str_ident(sqlitedb_str_t *s, const char *name)
{
    sqlitedb_str_add(s, "\"");
    for (const char *c = name; *c; c++)
        sqlitedb_str_add(s, *c == '"' ? "\"\"" : (char[]){*c, '\0'});
    sqlitedb_str_add(s, "\"");
}

void sqlitedb_str_free(sqlitedb_str_t *s)
{
    free(s->p);
    memset(s, 0, sizeof *s);
}

/* The string built, or NULL (and the string freed) when memory ran out. */
static char *sqlitedb_str_take(sqlitedb_str_t *s)
{
    char *p = s->p;

    if (s->oom) {
        sqlitedb_str_free(s);
        return NULL;
    }
    memset(s, 0, sizeof *s);
    return p;
}

/* ---- errors ------------------------------------------------------------------------------- */

int sqlitedb_fail(sqlitedb_t *db, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
    db->host->set_error(db->ctx, "%s", db->err);
    return code;
}

int sqlitedb_fail_sql(sqlitedb_t *db, const char *what)
{
    int code = db->conn && sqlite3_errcode(db->conn) == SQLITE_NOMEM ? CPAR_ENOMEM : CPAR_EIO;

    return sqlitedb_fail(db, code, "%s: %s (%s)", what,
                         db->conn ? sqlite3_errmsg(db->conn) : "not open", db->path);
}

/* ---- the statement cache ------------------------------------------------------------------ */

static uint64_t sqlitedb_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h;
}

sqlite3_stmt *sqlitedb_prepare(sqlitedb_t *db, const char *sql)
{
    uint64_t h = sqlitedb_hash(sql);
    sqlitedb_stmt_t *victim = NULL;
    sqlite3_stmt *stmt;
    char *copy;

    for (size_t i = 0; i < SQLITEDB_NSTMT; i++) {
        sqlitedb_stmt_t *s = &db->stmts[i];

        if (s->sql && s->hash == h && !s->busy && strcmp(s->sql, sql) == 0) {
            s->busy = 1;
            s->used = ++db->stmt_clock;
            return s->stmt;
        }
    }
    if (sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) !=
        SQLITE_OK) {
        sqlitedb_fail_sql(db, "cannot prepare a statement");
        return NULL;
    }
    for (size_t i = 0; i < SQLITEDB_NSTMT; i++) {
        sqlitedb_stmt_t *s = &db->stmts[i];

        if (s->busy)
            continue;
        if (!s->sql) {
            victim = s;
            break;
        }
        if (!victim || s->used < victim->used)
            victim = s;
    }
    copy = victim ? strdup(sql) : NULL;
    if (!copy)
        return stmt; /* every slot in use (callbacks re-entering): finalized on release */
    if (victim->sql) {
        sqlite3_finalize(victim->stmt);
        free(victim->sql);
    }
    victim->sql = copy;
    victim->hash = h;
    victim->stmt = stmt;
    victim->busy = 1;
    victim->used = ++db->stmt_clock;
    return stmt;
}

void sqlitedb_release(sqlitedb_t *db, sqlite3_stmt *stmt)
{
    if (!stmt)
        return;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (size_t i = 0; i < SQLITEDB_NSTMT; i++) {
        if (db->stmts[i].sql && db->stmts[i].stmt == stmt) {
            db->stmts[i].busy = 0;
            return;
        }
    }
    sqlite3_finalize(stmt);
}

static void sqlitedb_stmts_free(sqlitedb_t *db)
{
    for (size_t i = 0; i < SQLITEDB_NSTMT; i++) {
        sqlitedb_stmt_t *s = &db->stmts[i];

        if (s->sql) {
            sqlite3_finalize(s->stmt);
            free(s->sql);
        }
        memset(s, 0, sizeof *s);
    }
}

/* Run a statement without results. 0, or CPAR_EIO explained with `what`. */
static int sqlitedb_run(sqlitedb_t *db, const char *sql, const char *what)
{
    sqlite3_stmt *stmt = sqlitedb_prepare(db, sql);
    int rc;

    if (!stmt)
        return CPAR_EIO;
    rc = sqlite3_step(stmt);
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlitedb_fail_sql(db, what);
    sqlitedb_release(db, stmt);
    return rc;
}

/* ---- the checkpointer --------------------------------------------------------------------- */

static void *sqlitedb_ckpt_main(void *arg)
{
    sqlitedb_ckpt_t *c = arg;
    sqlite3 *conn = NULL;
    uint64_t seen = 0;

    if (sqlite3_open_v2(c->path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(conn);
        conn = NULL;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until;

        if (conn && c->commits != seen) {
            seen = c->commits;
            pthread_mutex_unlock(&c->mu);
            sqlite3_wal_checkpoint_v2(conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!conn)
            c->failed = 1;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(SQLITEDB_CHECKPOINT_MS % 1000) * 1000000L;
        until.tv_sec += SQLITEDB_CHECKPOINT_MS / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&c->cv, &c->mu, &until);
    }
    pthread_mutex_unlock(&c->mu);
    sqlite3_close(conn);
    return NULL;
}

/* Start the checkpointer; without it SQLite checkpoints on commit, on the reactor. */
static void sqlitedb_ckpt_start(sqlitedb_t *db)
{
    sqlitedb_ckpt_t *c = &db->ckpt;

    if (!sqlite3_threadsafe())
        return;
    c->path = db->path;
    c->stop = 0;
    c->failed = 0;
    c->commits = 0;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return;
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        return;
    }
    if (pthread_create(&c->thread, NULL, sqlitedb_ckpt_main, c) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        return;
    }
    c->running = 1;
    sqlite3_wal_autocheckpoint(db->conn, 0);
}

static void sqlitedb_ckpt_stop(sqlitedb_t *db)
{
    sqlitedb_ckpt_t *c = &db->ckpt;

    if (!c->running)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->running = 0;
}

/* A commit happened: the checkpointer has work at its next turn. */
static void sqlitedb_ckpt_note(sqlitedb_t *db)
{
    sqlitedb_ckpt_t *c = &db->ckpt;
    int failed;

    if (!c->running)
        return;
    pthread_mutex_lock(&c->mu);
    c->commits++;
    failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    if (failed) {
        db->host->log(db->ctx, CPAR_LOG_WARNING,
                      "the checkpointer cannot open %s; checkpoints run on commit instead",
                      db->path);
        sqlitedb_ckpt_stop(db);
        sqlite3_wal_autocheckpoint(db->conn, 1000);
    }
}

/* ---- transactions ------------------------------------------------------------------------- */

static void sqlitedb_commit_cb(void *arg);

static void sqlitedb_stop_commit_timer(sqlitedb_t *db)
{
    if (db->commit_timer) {
        db->host->timer_stop(db->ctx, db->commit_timer);
        db->commit_timer = NULL;
    }
    if (db->soon_timer) {
        db->host->timer_stop(db->ctx, db->soon_timer);
        db->soon_timer = NULL;
    }
}

static void sqlitedb_start_commit_timer(sqlitedb_t *db)
{
    int rc;

    if (db->no_timers || db->commit_timer)
        return;
    rc = db->host->timer_start(db->ctx, SQLITEDB_COMMIT_MS, 0, sqlitedb_commit_cb, db,
                               &db->commit_timer);
    if (rc) {
        db->commit_timer = NULL; /* commits by age on the next write instead */
        if (rc == CPAR_ENOTSUP)
            db->no_timers = 1;
    }
}

/*
 * The open transaction holds a completed record: commit it at the reactor's next turn, together
 * with whatever else that turn writes. Where no timer can do that, the 100 ms rule stays.
 */
static void sqlitedb_commit_soon(sqlitedb_t *db)
{
    if (db->no_timers || db->soon_timer || !db->in_txn)
        return;
    if (db->host->timer_start(db->ctx, 0, 0, sqlitedb_commit_cb, db, &db->soon_timer))
        db->soon_timer = NULL;
}

/*
 * A write failed: SQLite may have rolled the whole transaction back (a full disk, an I/O error).
 * Then the writes since the last commit are gone; say so.
 */
static void sqlitedb_check_rollback(sqlitedb_t *db)
{
    if (db->in_txn && sqlite3_get_autocommit(db->conn)) {
        db->host->log(db->ctx, CPAR_LOG_ERROR,
                      "the transaction was rolled back: the last %zu writes to %s are lost",
                      db->txn_writes, db->path);
        db->in_txn = 0;
        sqlitedb_stop_commit_timer(db);
    }
}

static int sqlitedb_begin(sqlitedb_t *db)
{
    if (db->in_txn)
        return 0;
    if (sqlitedb_run(db, "BEGIN IMMEDIATE", "cannot start a transaction"))
        return CPAR_EIO;
    db->in_txn = 1;
    db->txn_start_us = db->host->monotonic_us();
    db->txn_writes = 0;
    db->txn_bytes = 0;
    sqlitedb_start_commit_timer(db);
    return 0;
}

/* Commit the open transaction, if any. 0, or CPAR_EIO with the reason in db->err. */
static int sqlitedb_commit(sqlitedb_t *db)
{
    int rc;

    sqlitedb_stop_commit_timer(db);
    if (!db->in_txn)
        return 0;
    rc = sqlitedb_run(db, "COMMIT", "cannot commit");
    if (rc == 0) {
        db->in_txn = 0;
        sqlitedb_ckpt_note(db);
        return 0;
    }
    if (sqlite3_get_autocommit(db->conn)) {
        char why[sizeof db->err];

        db->in_txn = 0;
        snprintf(why, sizeof why, "%s", db->err);
        return sqlitedb_fail(db, CPAR_EIO, "%.900s; the last %zu writes are lost", why,
                             db->txn_writes);
    }
    sqlitedb_start_commit_timer(db); /* still open (locked by another process): retry */
    return rc;
}

static void sqlitedb_commit_cb(void *arg)
{
    sqlitedb_t *db = arg;

    if (sqlitedb_commit(db))
        db->host->log(db->ctx, CPAR_LOG_ERROR, "%s", db->err);
}

/*
 * A write went into the open transaction; `completes`: it set a record's `completed`. Commit when
 * the batch is full, or old enough where no timer does it; at the next reactor turn when it
 * completes a record. 0, or CPAR_EIO when that commit lost the batch (this write included).
 */
static int sqlitedb_wrote(sqlitedb_t *db, size_t writes, size_t bytes, int completes)
{
    db->txn_writes += writes;
    db->txn_bytes += bytes;
    if (db->txn_writes < SQLITEDB_BATCH_WRITES && db->txn_bytes < SQLITEDB_BATCH_BYTES &&
        (db->commit_timer ||
         db->host->monotonic_us() - db->txn_start_us < SQLITEDB_COMMIT_MS * INT64_C(1000))) {
        if (completes)
            sqlitedb_commit_soon(db);
        return 0;
    }
    if (sqlitedb_commit(db) == 0)
        return 0;
    db->host->log(db->ctx, CPAR_LOG_ERROR, "%s", db->err);
    return db->in_txn ? 0 : CPAR_EIO;
}

/* ---- opening: the file, the table, the statements ----------------------------------------- */

typedef enum sqlitedb_fit {
    SQLITEDB_ABSENT,
    SQLITEDB_OURS,
    SQLITEDB_OLDER, /* ours with fewer record fields: columns get added */
    SQLITEDB_OTHER
} sqlitedb_fit_t;

/* Column `i` of our schema: its name, declared type, whether it is the primary key. */
static void sqlitedb_col_def(size_t i, const char **name, const char **type, int *pk)
{
    *pk = i == 0;
    *name = i == 0 ? "seq" : sqlitedb_cols[i - 1]->name;
    *type = i == 0 ? "INTEGER" : sqlitedb_field_sqltype(sqlitedb_cols[i - 1]);
}

static const char *sqlitedb_text(sqlite3_stmt *stmt, int col)
{
    const char *s = (const char *)sqlite3_column_text(stmt, col);
    return s ? s : "";
}

/* How table `name` fits our schema; *have = its columns when SQLITEDB_OLDER. */
static int sqlitedb_table_fit(sqlitedb_t *db, const char *name, sqlitedb_fit_t *fit, size_t *have)
{
    sqlite3_stmt *stmt =
        sqlitedb_prepare(db, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE");
    int rc, same = 1;
    size_t n = 0;

    if (!stmt)
        return CPAR_EIO;
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        *fit = SQLITEDB_ABSENT;
    else if (rc == SQLITE_ROW)
        *fit = strcmp(sqlitedb_text(stmt, 0), "table") == 0 ? SQLITEDB_OURS : SQLITEDB_OTHER;
    else
        rc = sqlitedb_fail_sql(db, "cannot read the schema");
    sqlitedb_release(db, stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (*fit != SQLITEDB_OURS)
        return 0;

    stmt = sqlitedb_prepare(db, "SELECT name, type, pk FROM pragma_table_info(?1)");
    if (!stmt)
        return CPAR_EIO;
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *cname, *ctype;
        int pk;

        if (n >= sqlitedb_ncols + 1) {
            same = 0;
            continue;
        }
        sqlitedb_col_def(n, &cname, &ctype, &pk);
        if (strcmp(sqlitedb_text(stmt, 0), cname) != 0 ||
            strcasecmp(sqlitedb_text(stmt, 1), ctype) != 0 ||
            (sqlite3_column_int(stmt, 2) != 0) != pk)
            same = 0;
        n++;
    }
    if (rc != SQLITE_DONE)
        rc = sqlitedb_fail_sql(db, "cannot read the table's columns");
    else
        rc = 0;
    sqlitedb_release(db, stmt);
    if (rc)
        return rc;
    /* seq and msg_id at least: an older version of this schema */
    if (!same || n < 2)
        *fit = SQLITEDB_OTHER;
    else if (n < sqlitedb_ncols + 1)
        *fit = SQLITEDB_OLDER;
    *have = n;
    return 0;
}

static int sqlitedb_create(sqlitedb_t *db, const char *table)
{
    static const char *const indexed[] = {"submitted", "completed"};
    sqlitedb_str_t s = {0};
    char *sql;
    int rc;

    sqlitedb_str_add(&s, "CREATE TABLE ");
    sqlitedb_str_ident(&s, table);
    sqlitedb_str_add(&s, " (seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL UNIQUE");
    for (size_t i = 1; i < sqlitedb_ncols; i++)
        sqlitedb_str_addf(&s, ", \"%s\" %s", sqlitedb_cols[i]->name,
                          sqlitedb_field_sqltype(sqlitedb_cols[i]));
    sqlitedb_str_add(&s, ")");
    if (!(sql = sqlitedb_str_take(&s)))
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    free(sql);
    if (rc != SQLITE_OK)
        return sqlitedb_fail_sql(db, "cannot create the table");
    for (size_t i = 0; i < sizeof indexed / sizeof indexed[0]; i++) {
        char name[600];

        snprintf(name, sizeof name, "%s_%s", table, indexed[i]);
        sqlitedb_str_add(&s, "CREATE INDEX IF NOT EXISTS ");
        sqlitedb_str_ident(&s, name);
        sqlitedb_str_add(&s, " ON ");
        sqlitedb_str_ident(&s, table);
        sqlitedb_str_addf(&s, " (\"%s\")", indexed[i]);
        if (!(sql = sqlitedb_str_take(&s)))
            return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
        rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
        free(sql);
        if (rc != SQLITE_OK)
            return sqlitedb_fail_sql(db, "cannot create an index");
    }
    return 0;
}

/* Add the columns of record fields that a table of an older version lacks. */
static int sqlitedb_upgrade(sqlitedb_t *db, const char *table, size_t have)
{
    for (size_t i = have; i < sqlitedb_ncols + 1; i++) {
        sqlitedb_str_t s = {0};
        const char *name, *type;
        char *sql;
        int pk, rc;

        sqlitedb_col_def(i, &name, &type, &pk);
        sqlitedb_str_add(&s, "ALTER TABLE ");
        sqlitedb_str_ident(&s, table);
        sqlitedb_str_addf(&s, " ADD COLUMN \"%s\" %s", name, type);
        if (!(sql = sqlitedb_str_take(&s)))
            return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
        rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
        free(sql);
        if (rc != SQLITE_OK)
            return sqlitedb_fail_sql(db, "cannot add a column");
    }
    db->host->log(db->ctx, CPAR_LOG_INFO, "table '%s' in %s: added columns for %zu new fields",
                  table, db->path, sqlitedb_ncols + 1 - have);
    return 0;
}

/*
 * Use the table the settings name, or the first of <table>_1, <table>_2, ... that is ours or
 * free when it holds another schema (ipyparallel's Python SQLiteDB), as ipyparallel does. Runs
 * in one transaction, so two controllers starting together agree.
 */
static int sqlitedb_choose_table(sqlitedb_t *db)
{
    char name[512];
    int rc = 0;

    for (int k = 0; k <= SQLITEDB_MAX_SUFFIX; k++) {
        sqlitedb_fit_t fit = SQLITEDB_OTHER;
        size_t have = 0;

        if (k)
            snprintf(name, sizeof name, "%s_%d", db->asked, k);
        else
            snprintf(name, sizeof name, "%s", db->asked);
        if ((rc = sqlitedb_table_fit(db, name, &fit, &have)) != 0)
            return rc;
        if (fit == SQLITEDB_OTHER)
            continue;
        if (fit == SQLITEDB_ABSENT)
            rc = sqlitedb_create(db, name);
        else if (fit == SQLITEDB_OLDER)
            rc = sqlitedb_upgrade(db, name, have);
        if (rc)
            return rc;
        if (k)
            db->host->log(db->ctx, CPAR_LOG_WARNING,
                          "table '%s' in %s has a schema of another program (ipyparallel's "
                          "Python SQLiteDB?); using table '%s'",
                          db->asked, db->path, name);
        db->table = strdup(name);
        return db->table ? 0 : sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    }
    return sqlitedb_fail(db, CPAR_EIO, "tables '%s' to '%s_%d' in %s all hold other schemas",
                         db->asked, db->asked, SQLITEDB_MAX_SUFFIX, db->path);
}

/* The column list "msg_id", "header", ... of the fields in `mask` (msg_id always). */
static void sqlitedb_add_cols(sqlitedb_str_t *s, uint32_t mask, const char *prefix)
{
    for (size_t i = 0; i < sqlitedb_ncols; i++) {
        if (i && !(mask & sqlitedb_field_bit(sqlitedb_cols[i])))
            continue;
        sqlitedb_str_addf(s, "%s%s\"%s\"", i ? ", " : "", prefix, sqlitedb_cols[i]->name);
    }
}

static int sqlitedb_build_sql(sqlitedb_t *db)
{
    sqlitedb_str_t s = {0};

    sqlitedb_str_add(&s, "INSERT INTO ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " (");
    sqlitedb_add_cols(&s, CPAR_REC_ALL, "");
    sqlitedb_str_add(&s, ") VALUES (");
    for (size_t i = 0; i < sqlitedb_ncols; i++)
        sqlitedb_str_addf(&s, "%s?%u", i ? ", " : "", sqlitedb_cols[i]->id);
    sqlitedb_str_add(&s, ")");
    db->sql_insert = sqlitedb_str_take(&s);

    sqlitedb_str_add(&s, "SELECT ");
    sqlitedb_add_cols(&s, CPAR_REC_ALL, "");
    sqlitedb_str_add(&s, " FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " WHERE msg_id = ?1");
    db->sql_get = sqlitedb_str_take(&s);

    sqlitedb_str_add(&s, "DELETE FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " WHERE msg_id = ?1");
    db->sql_drop = sqlitedb_str_take(&s);

    sqlitedb_str_add(&s, "SELECT 1 FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " WHERE msg_id = ?1");
    db->sql_exists = sqlitedb_str_take(&s);

    sqlitedb_str_add(&s, "SELECT msg_id FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " WHERE submitted IS NOT NULL ORDER BY submitted, seq");
    db->sql_history = sqlitedb_str_take(&s);

    if (!db->sql_insert || !db->sql_get || !db->sql_drop || !db->sql_exists || !db->sql_history)
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    return 0;
}

static void sqlitedb_close(sqlitedb_t *db)
{
    sqlitedb_ckpt_stop(db);
    sqlitedb_stmts_free(db);
    if (db->conn)
        sqlite3_close_v2(db->conn);
    db->conn = NULL;
    db->in_txn = 0;
    free(db->table);
    free(db->sql_insert);
    free(db->sql_get);
    free(db->sql_drop);
    free(db->sql_exists);
    free(db->sql_history);
    for (size_t i = 0; i < SQLITEDB_NUPDATE; i++) {
        free(db->sql_update[i].sql);
        db->sql_update[i].sql = NULL;
    }
    db->table = db->sql_insert = db->sql_get = db->sql_drop = NULL;
    db->sql_exists = db->sql_history = NULL;
}

static int sqlitedb_open(sqlitedb_t *db)
{
    char mode[16] = "", pragma[64];
    sqlite3_stmt *stmt;
    int rc;

    rc = sqlite3_open_v2(db->path, &db->conn,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sqlitedb_fail(db, CPAR_EIO, "cannot open %s: %s", db->path,
                           db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        sqlitedb_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db->conn, 1);
    sqlite3_busy_timeout(db->conn, SQLITEDB_BUSY_MS);
    if (sqlitedb_functions_register(db->conn) != SQLITE_OK) {
        rc = sqlitedb_fail_sql(db, "cannot register SQL functions");
        goto fail;
    }
    /* The first statement reads the file: one that is no database fails here. */
    stmt = sqlitedb_prepare(db, "PRAGMA journal_mode=WAL");
    if (stmt && sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(stmt, 0));
    else
        rc = sqlitedb_fail(db, CPAR_EIO, "cannot use %s: %s", db->path, sqlite3_errmsg(db->conn));
    sqlitedb_release(db, stmt);
    if (rc)
        goto fail;
    if (strcasecmp(mode, "wal") != 0)
        db->host->log(db->ctx, CPAR_LOG_WARNING,
                      "%s cannot use a write-ahead log (journal mode %s): commits are slower",
                      db->path, mode);
    if ((rc = sqlitedb_run(db, "PRAGMA synchronous=NORMAL", "cannot set synchronous")) != 0)
        goto fail;
    snprintf(pragma, sizeof pragma, "PRAGMA journal_size_limit=%lld",
             (long long)SQLITEDB_WAL_LIMIT);
    sqlite3_exec(db->conn, pragma, NULL, NULL, NULL); /* only keeps the file small */

    if ((rc = sqlitedb_run(db, "BEGIN IMMEDIATE", "cannot start a transaction")) != 0)
        goto fail;
    rc = sqlitedb_choose_table(db);
    if (rc == 0)
        rc = sqlitedb_run(db, "COMMIT", "cannot commit the schema");
    if (rc) {
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    if ((rc = sqlitedb_build_sql(db)) != 0)
        goto fail;
    if (strcasecmp(mode, "wal") == 0)
        sqlitedb_ckpt_start(db);
    db->host->log(db->ctx, CPAR_LOG_INFO, "task records in %s, table '%s'", db->path, db->table);
    return 0;

fail:
    sqlitedb_close(db);
    return rc;
}

/* Open the database if it is not yet; every operation starts here. */
static int sqlitedb_ready(sqlitedb_t *db)
{
    int rc;

    if (db->conn)
        return 0;
    rc = sqlitedb_open(db);
    if (rc && !db->open_failed_logged) {
        db->host->log(db->ctx, CPAR_LOG_ERROR, "%s", db->err);
        db->open_failed_logged = 1;
    }
    if (rc == 0)
        db->open_failed_logged = 0;
    return rc;
}

static void sqlitedb_open_cb(void *arg)
{
    sqlitedb_t *db = arg;

    db->host->timer_stop(db->ctx, db->open_timer);
    db->open_timer = NULL;
    sqlitedb_ready(db);
}

/* ---- operations --------------------------------------------------------------------------- */

/* The current row as a record with the fields `mask` names, handed to cb. */
static int sqlitedb_emit(sqlitedb_t *db, sqlite3_stmt *stmt, uint32_t mask, cpar_record_cb cb,
                         void *arg)
{
    const ProtobufCFieldDescriptor *cols[SQLITEDB_MAX_COLS];
    sqlitedb_rowbufs_t rb;
    cpar_record_t rec;
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < sqlitedb_ncols; i++)
        if (!i || (mask & sqlitedb_field_bit(sqlitedb_cols[i])))
            cols[n++] = sqlitedb_cols[i];
    cpar_record_init(&rec);
    rc = sqlitedb_row_record(db, stmt, cols, n, &rec, &rb);
    if (rc)
        return rc;
    cb(arg, &rec);
    sqlitedb_rowbufs_free(&rb);
    return 0;
}

static int sqlitedb_add_record(void *state, const cpar_record_t *rec)
{
    sqlitedb_t *db = state;
    sqlite3_stmt *stmt;
    size_t bytes = 0;
    int rc;

    if (!rec || !rec->msg_id)
        return sqlitedb_fail(db, CPAR_EINVAL, "record without msg_id");
    if ((rc = sqlitedb_ready(db)) != 0 || (rc = sqlitedb_begin(db)) != 0)
        return rc;
    if (!(stmt = sqlitedb_prepare(db, db->sql_insert)))
        return CPAR_EIO;
    for (size_t i = 0; i < sqlitedb_ncols && !rc; i++)
        rc =
            sqlitedb_bind_field(db, stmt, (int)sqlitedb_cols[i]->id, rec, sqlitedb_cols[i], &bytes);
    if (!rc) {
        int step = sqlite3_step(stmt);

        if (step == SQLITE_DONE)
            rc = 0;
        else if (sqlite3_extended_errcode(db->conn) == SQLITE_CONSTRAINT_UNIQUE)
            rc = sqlitedb_fail(db, CPAR_EEXIST, "already have msg_id %s", rec->msg_id);
        else
            rc = sqlitedb_fail_sql(db, "cannot add a record");
    }
    sqlitedb_release(db, stmt);
    if (rc) {
        sqlitedb_check_rollback(db);
        return rc;
    }
    return sqlitedb_wrote(db, 1, bytes, rec->has_completed);
}

static int sqlitedb_exists(sqlitedb_t *db, const char *msg_id)
{
    sqlite3_stmt *stmt = sqlitedb_prepare(db, db->sql_exists);
    int rc;

    if (!stmt)
        return CPAR_EIO;
    sqlite3_bind_text(stmt, 1, msg_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        rc = 0;
    else if (rc == SQLITE_DONE)
        rc = sqlitedb_fail(db, CPAR_ENOENT, "no such msg_id %s", msg_id);
    else
        rc = sqlitedb_fail_sql(db, "cannot look up a record");
    sqlitedb_release(db, stmt);
    return rc;
}

/*
 * The text of the UPDATE that writes `fields`, built once per set of fields (the hub updates a
 * handful of sets again and again): UPDATE t SET "header" = ?2, "stdout" = ?21 WHERE msg_id = ?1,
 * parameters numbered by field. NULL when out of memory.
 */
static const char *sqlitedb_update_sql(sqlitedb_t *db, uint32_t fields)
{
    sqlitedb_str_t s = {0};
    unsigned slot;
    char *sql;
    int first = 1;

    for (size_t i = 0; i < SQLITEDB_NUPDATE; i++)
        if (db->sql_update[i].sql && db->sql_update[i].fields == fields)
            return db->sql_update[i].sql;
    sqlitedb_str_add(&s, "UPDATE ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, " SET ");
    for (size_t i = 1; i < sqlitedb_ncols; i++) {
        if (!(fields & sqlitedb_field_bit(sqlitedb_cols[i])))
            continue;
        sqlitedb_str_addf(&s, "%s\"%s\" = ?%u", first ? "" : ", ", sqlitedb_cols[i]->name,
                          sqlitedb_cols[i]->id);
        first = 0;
    }
    sqlitedb_str_add(&s, " WHERE msg_id = ?1");
    if (!(sql = sqlitedb_str_take(&s)))
        return NULL;
    slot = db->sql_update_next++ % SQLITEDB_NUPDATE;
    free(db->sql_update[slot].sql);
    db->sql_update[slot].fields = fields;
    db->sql_update[slot].sql = sql;
    return sql;
}

static int sqlitedb_update_record(void *state, const cpar_record_t *rec, uint32_t fields)
{
    sqlitedb_t *db = state;
    sqlite3_stmt *stmt;
    size_t bytes = 0;
    const char *sql;
    int rc;

    if (!rec || !rec->msg_id)
        return sqlitedb_fail(db, CPAR_EINVAL, "record without msg_id");
    if ((rc = sqlitedb_ready(db)) != 0)
        return rc;
    fields &= CPAR_REC_ALL;
    if (!fields)
        return sqlitedb_exists(db, rec->msg_id);

    if (!(sql = sqlitedb_update_sql(db, fields)))
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    if ((rc = sqlitedb_begin(db)) != 0)
        return rc;
    stmt = sqlitedb_prepare(db, sql);
    if (!stmt)
        return CPAR_EIO;
    for (size_t i = 0; i < sqlitedb_ncols && !rc; i++)
        if (!i || (fields & sqlitedb_field_bit(sqlitedb_cols[i])))
            rc = sqlitedb_bind_field(db, stmt, (int)sqlitedb_cols[i]->id, rec, sqlitedb_cols[i],
                                     &bytes);
    if (!rc) {
        if (sqlite3_step(stmt) != SQLITE_DONE)
            rc = sqlitedb_fail_sql(db, "cannot update a record");
        else if (sqlite3_changes(db->conn) == 0)
            rc = sqlitedb_fail(db, CPAR_ENOENT, "no such msg_id %s", rec->msg_id);
    }
    sqlitedb_release(db, stmt);
    if (rc) {
        sqlitedb_check_rollback(db);
        return rc;
    }
    return sqlitedb_wrote(db, 1, bytes, (fields & CPAR_REC_COMPLETED) && rec->has_completed);
}

static int sqlitedb_get_record(void *state, const char *msg_id, cpar_record_cb cb, void *arg)
{
    sqlitedb_t *db = state;
    sqlite3_stmt *stmt;
    int rc;

    if (!msg_id || !cb)
        return sqlitedb_fail(db, CPAR_EINVAL, "get_record needs a msg_id and a callback");
    if ((rc = sqlitedb_ready(db)) != 0)
        return rc;
    if (!(stmt = sqlitedb_prepare(db, db->sql_get)))
        return CPAR_EIO;
    sqlite3_bind_text(stmt, 1, msg_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        rc = sqlitedb_emit(db, stmt, CPAR_REC_ALL, cb, arg);
    else if (rc == SQLITE_DONE)
        rc = sqlitedb_fail(db, CPAR_ENOENT, "no such msg_id %s", msg_id);
    else
        rc = sqlitedb_fail_sql(db, "cannot read a record");
    sqlitedb_release(db, stmt);
    return rc;
}

static int sqlitedb_drop_record(void *state, const char *msg_id)
{
    sqlitedb_t *db = state;
    sqlite3_stmt *stmt;
    int rc;

    if (!msg_id)
        return sqlitedb_fail(db, CPAR_EINVAL, "drop_record needs a msg_id");
    if ((rc = sqlitedb_ready(db)) != 0 || (rc = sqlitedb_begin(db)) != 0)
        return rc;
    if (!(stmt = sqlitedb_prepare(db, db->sql_drop)))
        return CPAR_EIO;
    sqlite3_bind_text(stmt, 1, msg_id, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE)
        rc = sqlitedb_fail_sql(db, "cannot drop a record");
    else if (sqlite3_changes(db->conn) == 0)
        rc = sqlitedb_fail(db, CPAR_ENOENT, "no such msg_id %s", msg_id);
    sqlitedb_release(db, stmt);
    if (rc) {
        sqlitedb_check_rollback(db);
        return rc;
    }
    return sqlitedb_wrote(db, 1, 0, 0);
}

static int sqlitedb_get_history(void *state, cpar_msgid_cb cb, void *arg)
{
    sqlitedb_t *db = state;
    sqlite3_stmt *stmt;
    int rc;

    if (!cb)
        return sqlitedb_fail(db, CPAR_EINVAL, "get_history needs a callback");
    if ((rc = sqlitedb_ready(db)) != 0)
        return rc;
    if (!(stmt = sqlitedb_prepare(db, db->sql_history)))
        return CPAR_EIO;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        cb(arg, (const char *)sqlite3_column_text(stmt, 0));
    rc = rc == SQLITE_DONE ? 0 : sqlitedb_fail_sql(db, "cannot read the history");
    sqlitedb_release(db, stmt);
    return rc;
}

static int sqlitedb_flush(void *state)
{
    sqlitedb_t *db = state;
    int rc;

    if (!db->conn)
        return 0; /* nothing written */
    if ((rc = sqlitedb_commit(db)) != 0)
        return rc;
    /* Copy the WAL into the file now (its fsyncs included): durable against power loss too. */
    if (sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) !=
            SQLITE_OK &&
        sqlite3_errcode(db->conn) != SQLITE_BUSY)
        return sqlitedb_fail_sql(db, "cannot checkpoint");
    return 0;
}

static int sqlitedb_find_records(void *state, const cpar_query_t *q, uint32_t fields,
                                 cpar_record_cb cb, void *arg)
{
    sqlitedb_t *db = state;
    sqlitedb_where_t w;
    sqlitedb_str_t s = {0};
    sqlite3_stmt *stmt;
    char *sql;
    int rc;

    if (!cb)
        return sqlitedb_fail(db, CPAR_EINVAL, "find_records needs a callback");
    if ((rc = sqlitedb_ready(db)) != 0 || (rc = sqlitedb_where_build(db, q, &w)) != 0)
        return rc;
    sqlitedb_str_add(&s, "SELECT ");
    sqlitedb_add_cols(&s, fields, "");
    sqlitedb_str_add(&s, " FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, w.sql.p);
    if (!(sql = sqlitedb_str_take(&s))) {
        sqlitedb_where_free(&w);
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    }
    stmt = sqlitedb_prepare(db, sql);
    free(sql);
    if (!stmt) {
        sqlitedb_where_free(&w);
        return CPAR_EIO;
    }
    rc = sqlitedb_where_bind(db, stmt, &w);
    while (!rc && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        rc = sqlitedb_emit(db, stmt, fields, cb, arg);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = sqlitedb_fail_sql(db, "cannot query the records");
    sqlitedb_release(db, stmt);
    sqlitedb_where_free(&w);
    return rc;
}

static int sqlitedb_drop_matching(void *state, const cpar_query_t *q, size_t *dropped)
{
    sqlitedb_t *db = state;
    sqlitedb_where_t w;
    sqlitedb_str_t s = {0};
    sqlite3_stmt *stmt;
    size_t n = 0;
    char *sql;
    int rc;

    if (dropped)
        *dropped = 0;
    if ((rc = sqlitedb_ready(db)) != 0 || (rc = sqlitedb_where_build(db, q, &w)) != 0)
        return rc;
    sqlitedb_str_add(&s, "DELETE FROM ");
    sqlitedb_str_ident(&s, db->table);
    sqlitedb_str_add(&s, w.sql.p);
    sql = sqlitedb_str_take(&s);
    if (!sql)
        rc = sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    else
        rc = sqlitedb_begin(db);
    stmt = rc ? NULL : sqlitedb_prepare(db, sql);
    free(sql);
    if (!rc && !stmt)
        rc = CPAR_EIO;
    if (!rc)
        rc = sqlitedb_where_bind(db, stmt, &w);
    if (!rc) {
        if (sqlite3_step(stmt) == SQLITE_DONE)
            n = (size_t)sqlite3_changes64(db->conn);
        else
            rc = sqlitedb_fail_sql(db, "cannot drop the matching records");
    }
    sqlitedb_release(db, stmt);
    sqlitedb_where_free(&w);
    if (rc) {
        sqlitedb_check_rollback(db);
        return rc;
    }
    if (dropped)
        *dropped = n;
    return sqlitedb_wrote(db, n ? n : 1, 0, 0);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int sqlitedb_setting(sqlitedb_t *db, const char *key, const char *dflt, const char **out)
{
    int rc = db->host->config_string(db->ctx, SQLITEDB_SECTION, key, out);

    if (rc == CPAR_ENOENT) {
        *out = dflt;
        return 0;
    }
    if (rc)
        return sqlitedb_fail(db, CPAR_ECONFIG, SQLITEDB_SECTION ".%s must be a string", key);
    return 0;
}

/* Path and table from the settings, as ipyparallel's SQLiteDB makes them. */
static int sqlitedb_configure(sqlitedb_t *db)
{
    const char *filename, *location, *table;
    struct stat st;
    size_t n;
    int rc;

    if ((rc = sqlitedb_setting(db, "filename", SQLITEDB_DEFAULT_FILENAME, &filename)) != 0 ||
        (rc = sqlitedb_setting(db, "location", "", &location)) != 0 ||
        (rc = sqlitedb_setting(db, "table", SQLITEDB_DEFAULT_TABLE, &table)) != 0)
        return rc;
    if (!*filename)
        return sqlitedb_fail(db, CPAR_ECONFIG, SQLITEDB_SECTION ".filename is empty");
    if (!*location)
        location = db->host->context(db->ctx, CPAR_CTX_PROFILE_DIR);
    if (!*location)
        location = ".";
    if (stat(location, &st) != 0)
        return sqlitedb_fail(db, CPAR_ECONFIG, SQLITEDB_SECTION ".location %s: %s", location,
                             strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sqlitedb_fail(db, CPAR_ECONFIG, SQLITEDB_SECTION ".location %s: not a directory",
                             location);

    /* os.path.join(location, filename): an absolute filename stands alone */
    n = strlen(location);
    db->path = malloc(n + strlen(filename) + 2);
    if (!db->path)
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    if (filename[0] == '/')
        strcpy(db->path, filename);
    else
        sprintf(db->path, "%s%s%s", location, location[n - 1] == '/' ? "" : "/", filename);

    if (*table) {
        db->asked = strdup(table);
    } else {
        const char *session = db->host->context(db->ctx, CPAR_CTX_SESSION);

        db->asked = malloc(strlen(session) + 2);
        if (db->asked) {
            db->asked[0] = '_';
            strcpy(db->asked + 1, session);
            for (char *c = db->asked; *c; c++)
                if (*c == '-')
                    *c = '_';
        }
    }
    if (!db->asked)
        return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory");
    if (strncasecmp(db->asked, "sqlite_", 7) == 0)
        return sqlitedb_fail(db, CPAR_ECONFIG,
                             SQLITEDB_SECTION ".table '%s': names starting with sqlite_ are "
                                              "SQLite's own",
                             db->asked);
    if (strlen(db->asked) > 400)
        return sqlitedb_fail(db, CPAR_ECONFIG, SQLITEDB_SECTION ".table is longer than 400 bytes");
    return 0;
}

/* The record's fields sorted by number, once. */
static void sqlitedb_init_cols(void)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;

    if (sqlitedb_ncols)
        return;
    for (unsigned id = 1; sqlitedb_ncols < d->n_fields && id < 1024; id++) {
        const ProtobufCFieldDescriptor *f = sqlitedb_field(id);

        if (f && sqlitedb_ncols < SQLITEDB_MAX_COLS)
            sqlitedb_cols[sqlitedb_ncols++] = f;
    }
}

static void sqlitedb_fini(void *state)
{
    sqlitedb_t *db = state;

    if (!db)
        return;
    if (db->open_timer)
        db->host->timer_stop(db->ctx, db->open_timer);
    if (db->conn && sqlitedb_commit(db) != 0)
        db->host->log(db->ctx, CPAR_LOG_ERROR, "%s", db->err);
    sqlitedb_stop_commit_timer(db);
    sqlitedb_close(db);
    free(db->path);
    free(db->asked);
    free(db);
}

static int sqlitedb_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    sqlitedb_t *db = calloc(1, sizeof *db);
    int rc;

    if (!db) {
        host->set_error(ctx, "out of memory");
        return CPAR_ENOMEM;
    }
    db->host = host;
    db->ctx = ctx;
    sqlitedb_init_cols();
    if (sqlitedb_ncols < 2 || sqlitedb_cols[0]->id != 1) {
        rc = sqlitedb_fail(db, CPAR_EINTERNAL, "record.proto has no msg_id field 1");
        goto fail;
    }
    if ((rc = sqlitedb_configure(db)) != 0)
        goto fail;
    /* Open once the reactor runs; without one (or on failure), at the first operation. */
    rc = host->timer_start(ctx, 0, 0, sqlitedb_open_cb, db, &db->open_timer);
    if (rc) {
        db->open_timer = NULL;
        db->no_timers = rc == CPAR_ENOTSUP;
    }
    host->log(ctx, CPAR_LOG_DEBUG, "task records in %s, table '%s' (SQLite %s)", db->path,
              db->asked, sqlite3_libversion());
    *state = db;
    return 0;

fail:
    free(db->path);
    free(db->asked);
    free(db);
    return rc;
}

static const char *const sqlitedb_sections[] = {SQLITEDB_SECTION, NULL};

CPAR_PLUGIN_EXPORT const cpar_dbbackend_t cpar_dbbackend_sqlite_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_DBBACKEND, "sqlite"), .version = CPAR_SQLITEDB_VERSION,
             .description = "task records in an SQLite file (ipyparallel's SQLiteDB)",
             .config_sections = sqlitedb_sections, .init = sqlitedb_init, .fini = sqlitedb_fini},
    .add_record = sqlitedb_add_record,
    .update_record = sqlitedb_update_record,
    .get_record = sqlitedb_get_record,
    .drop_record = sqlitedb_drop_record,
    .get_history = sqlitedb_get_history,
    .flush = sqlitedb_flush,
    .find_records = sqlitedb_find_records,
    .drop_matching = sqlitedb_drop_matching,
};
