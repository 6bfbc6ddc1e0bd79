/*
 * nodb.c - cpar_dbbackend_nodb.so: ipyparallel's NoDB, a task database that stores nothing.
 *
 * Writes (add, update, drop, drop_matching) succeed and are forgotten; reads (get_record,
 * get_history, find_records) fail with CPAR_ENOTSUP, which the hub answers with ipyparallel's
 * NoData error. Selected by db_class 'NoDB' or --nodb: for controllers whose clients never ask the
 * hub for results, so that records cost no memory.
 */
#include <stddef.h>

#include <cparallel/dbbackend.h>

#ifndef CPAR_NODB_VERSION
#define CPAR_NODB_VERSION "0"
#endif

#define NODB_NO_DATA "NoDB backend doesn't store any data."

typedef struct nodb {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
} nodb_t;

static int nodb_no_data(nodb_t *db)
{
    db->host->set_error(db->ctx, NODB_NO_DATA);
    return CPAR_ENOTSUP;
}

static int nodb_add_record(void *state, const cpar_record_t *rec)
{
    (void)state;
    (void)rec;
    return 0;
}

static int nodb_update_record(void *state, const cpar_record_t *rec, uint32_t fields)
{
    (void)state;
    (void)rec;
    (void)fields;
    return 0;
}

static int nodb_drop_record(void *state, const char *msg_id)
{
    (void)state;
    (void)msg_id;
    return 0;
}

static int nodb_get_record(void *state, const char *msg_id, cpar_record_cb cb, void *arg)
{
    (void)msg_id;
    (void)cb;
    (void)arg;
    return nodb_no_data(state);
}

static int nodb_get_history(void *state, cpar_msgid_cb cb, void *arg)
{
    (void)cb;
    (void)arg;
    return nodb_no_data(state);
}

/*
 * CPAR_ENOTSUP without a text: the hub's sign for a backend that answers no queries, which it
 * reports to the client as ipyparallel's NoData (a text would make it a KeyError, the answer for
 * a query a backend cannot evaluate).
 */
static int nodb_find_records(void *state, const cpar_query_t *q, uint32_t fields,
                             cpar_record_cb cb, void *arg)
{
    (void)state;
    (void)q;
    (void)fields;
    (void)cb;
    (void)arg;
    return CPAR_ENOTSUP;
}

static int nodb_drop_matching(void *state, const cpar_query_t *q, size_t *dropped)
{
    (void)state;
    (void)q;
    if (dropped)
        *dropped = 0;
    return 0;
}

static int nodb_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    nodb_t *db = host->alloc(sizeof *db);

    if (!db) {
        host->set_error(ctx, "out of memory");
        return CPAR_ENOMEM;
    }
    db->host = host;
    db->ctx = ctx;
    *state = db;
    return 0;
}

static void nodb_fini(void *state)
{
    nodb_t *db = state;

    if (db)
        db->host->free(db);
}

CPAR_PLUGIN_EXPORT const cpar_dbbackend_t cpar_dbbackend_nodb_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_DBBACKEND, "nodb"), .version = CPAR_NODB_VERSION,
             .description = "stores no task records (ipyparallel's NoDB)",
             .init = nodb_init, .fini = nodb_fini},
    .add_record = nodb_add_record,
    .update_record = nodb_update_record,
    .get_record = nodb_get_record,
    .drop_record = nodb_drop_record,
    .get_history = nodb_get_history,
    .find_records = nodb_find_records,
    .drop_matching = nodb_drop_matching,
};
