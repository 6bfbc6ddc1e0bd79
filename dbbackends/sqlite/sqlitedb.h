/*
 * sqlitedb.h - what the files of cpar_dbbackend_sqlite.so share: the plugin state, the statement
 * cache, the record <-> row codec, the query compiler and the SQL functions it calls.
 *
 * Everything here runs on the reactor thread, except the checkpointer (sqlitedb.c), which has a
 * connection of its own and never touches this state but through its mutex-guarded part.
 */
#ifndef CPAR_SQLITEDB_H
#define CPAR_SQLITEDB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include <cparallel/dbbackend.h>

#define SQLITEDB_SECTION "SQLiteDB"

/*
 * A write transaction is committed this long after its first write at the latest; one that
 * holds a completed record, at the reactor's next turn (a 0 ms timer)...
 */
#define SQLITEDB_COMMIT_MS 100
/* ...or as soon as it holds this many writes or bytes of buffers. */
#define SQLITEDB_BATCH_WRITES 1000
#define SQLITEDB_BATCH_BYTES ((size_t)32 << 20)
/* How long a statement waits for another process's lock before it fails. */
#define SQLITEDB_BUSY_MS 100
/* The checkpointer's period, and the WAL size it leaves behind after a burst. */
#define SQLITEDB_CHECKPOINT_MS 500
#define SQLITEDB_WAL_LIMIT ((int64_t)64 << 20)
/* Prepared statements kept. */
#define SQLITEDB_NSTMT 64
#define SQLITEDB_NUPDATE 16

/* Record fields (cpar_record_field_t bits) holding a JSON object as text. */
#define SQLITEDB_JSON_FIELDS                                                                       \
    (CPAR_REC_HEADER | CPAR_REC_METADATA | CPAR_REC_CONTENT | CPAR_REC_RESULT_HEADER |             \
     CPAR_REC_RESULT_METADATA | CPAR_REC_RESULT_CONTENT | CPAR_REC_EXECUTE_RESULT |                \
     CPAR_REC_ERROR | CPAR_REC_DISPLAY_DATA)

/* ---- a growable string ------------------------------------------------------------------ */

typedef struct sqlitedb_str {
    char *p; /* NUL-terminated once anything was appended */
    size_t len, cap;
    int oom;
} sqlitedb_str_t;

void sqlitedb_str_add(sqlitedb_str_t *s, const char *text);
void sqlitedb_str_addf(sqlitedb_str_t *s, const char *fmt, ...) CPAR_PRINTF(2, 3);
/* Append `name` as a quoted SQL identifier ("a""b"). */
void sqlitedb_str_ident(sqlitedb_str_t *s, const char *name);
void sqlitedb_str_free(sqlitedb_str_t *s);

/* ---- the plugin state ------------------------------------------------------------------- */

typedef struct sqlitedb_stmt {
    char *sql; /* NULL: free slot */
    uint64_t hash;
    sqlite3_stmt *stmt;
    uint64_t used; /* for LRU eviction */
    int busy;      /* handed out and not released yet (a callback may re-enter) */
} sqlitedb_stmt_t;

/* The checkpointer thread: copies the WAL into the database file off the reactor. */
typedef struct sqlitedb_ckpt {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    int stop;         /* guarded by mu */
    int failed;       /* guarded by mu: the thread cannot open the file */
    uint64_t commits; /* guarded by mu: commits the reactor made */
    char *path;
} sqlitedb_ckpt_t;

typedef struct sqlitedb {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    char *path;  /* the database file */
    char *asked; /* the table the settings name */

    sqlite3 *conn; /* NULL until opened (lazily: see sqlitedb_ready) */
    char *table;   /* the table in use, once open */
    char *sql_insert, *sql_get, *sql_drop, *sql_history, *sql_exists;
    /* UPDATE statements' text by the set of fields they write (the hub uses a handful) */
    struct {
        uint32_t fields;
        char *sql;
    } sql_update[SQLITEDB_NUPDATE];
    unsigned sql_update_next;
    int open_failed_logged;

    sqlitedb_stmt_t stmts[SQLITEDB_NSTMT];
    uint64_t stmt_clock;

    int in_txn;
    int64_t txn_start_us; /* monotonic */
    size_t txn_writes, txn_bytes;
    cpar_timer_t *commit_timer, *open_timer;
    cpar_timer_t *soon_timer; /* 0 ms: the transaction holds a completed record */
    int no_timers;            /* a program without a reactor: commits by age on the next write */

    sqlitedb_ckpt_t ckpt;
    char err[1024]; /* the last failure's text, also given to set_error */
} sqlitedb_t;

/* Format the failure text into db->err and set_error; returns `code`. */
int sqlitedb_fail(sqlitedb_t *db, int code, const char *fmt, ...) CPAR_PRINTF(3, 4);
/* CPAR_EIO explaining the connection's last SQLite error: "<what>: <sqlite message>". */
int sqlitedb_fail_sql(sqlitedb_t *db, const char *what);

/*
 * A prepared statement for `sql` (copied), from the cache when it is there and not in use.
 * Release it with sqlitedb_release once done (reset, bindings cleared). NULL on failure, with
 * the reason in db->err.
 */
sqlite3_stmt *sqlitedb_prepare(sqlitedb_t *db, const char *sql);
void sqlitedb_release(sqlitedb_t *db, sqlite3_stmt *stmt);

/* ---- records <-> rows (codec.c) --------------------------------------------------------- */

/* The field of record.proto numbered `number` (1 = msg_id), or NULL. */
const ProtobufCFieldDescriptor *sqlitedb_field(unsigned number);
/* The field named `name`, or NULL. */
const ProtobufCFieldDescriptor *sqlitedb_field_named(const char *name);
/* The field's cpar_record_field_t bit (0 for msg_id). */
uint32_t sqlitedb_field_bit(const ProtobufCFieldDescriptor *f);
/* The column's declared SQL type: TEXT, INTEGER or BLOB. */
const char *sqlitedb_field_sqltype(const ProtobufCFieldDescriptor *f);

/*
 * Bind field f of rec to parameter `param` of stmt (NULL when absent); *bytes grows by the size
 * of what was bound. 0, or CPAR_ENOMEM / CPAR_EIO with db->err set.
 */
int sqlitedb_bind_field(sqlitedb_t *db, sqlite3_stmt *stmt, int param, const cpar_record_t *rec,
                        const ProtobufCFieldDescriptor *f, size_t *bytes);

/* Where a decoded row keeps its buffer lists; lives on the caller's stack. */
#define SQLITEDB_ROWLISTS 4 /* list fields a record may have */
typedef struct sqlitedb_rowbufs {
    ProtobufCBinaryData small[SQLITEDB_ROWLISTS][8];
    ProtobufCBinaryData *heap[SQLITEDB_ROWLISTS];
    size_t nused;
} sqlitedb_rowbufs_t;

/*
 * Fill rec (initialised by the caller) from the current row of stmt, whose column i holds
 * field cols[i]. Text and bytes point into the row: valid until the statement steps or resets.
 * Free with sqlitedb_rowbufs_free. 0, or CPAR_EIO (a buffers column that is not ours) /
 * CPAR_ENOMEM with db->err set.
 */
int sqlitedb_row_record(sqlitedb_t *db, sqlite3_stmt *stmt,
                        const ProtobufCFieldDescriptor *const *cols, size_t ncols,
                        cpar_record_t *rec, sqlitedb_rowbufs_t *rb);
void sqlitedb_rowbufs_free(sqlitedb_rowbufs_t *rb);

/* ---- queries (where.c) ------------------------------------------------------------------ */

typedef struct sqlitedb_param {
    enum { SQLITEDB_P_INT, SQLITEDB_P_REAL, SQLITEDB_P_TEXT } type;
    int64_t i;
    double d;
    const char *s; /* borrowed from the query or owned by the where */
} sqlitedb_param_t;

typedef struct sqlitedb_where {
    sqlitedb_str_t sql; /* " WHERE ..." or "" */
    sqlitedb_param_t *params;
    size_t nparams, capparams;
    char **owned; /* strings the where made (JSON paths and lists) */
    size_t nowned, capowned;
} sqlitedb_where_t;

/*
 * Compile q into w->sql (parameters ?1..?n, bound by sqlitedb_where_bind). 0; CPAR_EINVAL for
 * a malformed query, CPAR_ENOTSUP for a key this backend cannot address, CPAR_ENOMEM; the reason
 * in db->err. The where borrows q's strings: keep q alive while using it.
 */
int sqlitedb_where_build(sqlitedb_t *db, const cpar_query_t *q, sqlitedb_where_t *w);
int sqlitedb_where_bind(sqlitedb_t *db, sqlite3_stmt *stmt, const sqlitedb_where_t *w);
void sqlitedb_where_free(sqlitedb_where_t *w);

/* ---- SQL functions (functions.c) -------------------------------------------------------- */

/*
 * Register on conn: regexp(pattern, text) (POSIX ERE search, for "text REGEXP pattern"),
 * cpar_glob(pattern, text) (fnmatch(3) over the whole text), cpar_json_eq(a, b) (two JSON texts
 * denote equal values). SQLite's result code.
 */
int sqlitedb_functions_register(sqlite3 *conn);

#endif /* CPAR_SQLITEDB_H */
