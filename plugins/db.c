/* db.c - the typed front for dbbackend plugins (see db.h). */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

struct cpar_db {
    cpar_plughost_t *host;
    cpar_plugin_inst_t *inst;
    const cpar_dbbackend_t *ops;
    void *state;
};

/* ipyparallel's db_class spellings: shortcut, class name and module paths (7.x and IPython's). */
static const struct {
    const char *spelling;
    const char *plugin;
} db_aliases[] = {
    {"dictdb", "dictdb"},
    {"ipyparallel.controller.dictdb.DictDB", "dictdb"},
    {"IPython.parallel.controller.dictdb.DictDB", "dictdb"},
    {"sqlitedb", "sqlite"},
    {"ipyparallel.controller.sqlitedb.SQLiteDB", "sqlite"},
    {"IPython.parallel.controller.sqlitedb.SQLiteDB", "sqlite"},
    {"mongodb", "mongodb"},
    {"ipyparallel.controller.mongodb.MongoDB", "mongodb"},
    {"IPython.parallel.controller.mongodb.MongoDB", "mongodb"},
    {"nodb", "nodb"},
    {"ipyparallel.controller.dictdb.NoDB", "nodb"},
    {"IPython.parallel.controller.dictdb.NoDB", "nodb"},
};

const char *cpar_db_plugin_name(const char *db_class)
{
    if (!db_class)
        return NULL;
    for (size_t i = 0; i < sizeof db_aliases / sizeof db_aliases[0]; i++)
        if (strcasecmp(db_class, db_aliases[i].spelling) == 0)
            return db_aliases[i].plugin;
    return db_class;
}

int cpar_db_open(cpar_plughost_t *host, const char *db_class, cpar_db_t **out, char *err,
                 size_t errlen)
{
    cpar_plugin_inst_t *inst;
    cpar_db_t *db;
    int rc;

    if (!out)
        return CPAR_EINVAL;
    *out = NULL;
    rc = cpar_plughost_load(host, CPAR_KIND_DBBACKEND, cpar_db_plugin_name(db_class), &inst, err,
                            errlen);
    if (rc)
        return rc;
    db = calloc(1, sizeof *db);
    if (!db) {
        cpar_plughost_unload(host, inst);
        if (err && errlen)
            snprintf(err, errlen, "%s", cpar_strerror(CPAR_ENOMEM));
        return CPAR_ENOMEM;
    }
    db->host = host;
    db->inst = inst;
    db->ops = (const cpar_dbbackend_t *)cpar_plugin_desc(inst);
    db->state = cpar_plugin_state(inst);
    *out = db;
    return 0;
}

void cpar_db_close(cpar_plughost_t *host, cpar_db_t *db)
{
    if (!db)
        return;
    if (db->ops->flush) {
        int rc;
        cpar_plugin_clear_error(db->inst);
        rc = db->ops->flush(db->state);
        if (rc)
            cpar_warn("dbbackend/%s: flush at close failed: %s: %s", cpar_db_name(db),
                      cpar_err_name(rc), cpar_db_error(db));
    }
    cpar_plughost_unload(host ? host : db->host, db->inst);
    free(db);
}

const char *cpar_db_name(const cpar_db_t *db)
{
    return db ? db->ops->base.name : "";
}

const char *cpar_db_error(const cpar_db_t *db)
{
    return db ? cpar_plugin_error(db->inst) : "";
}

int cpar_db_add(cpar_db_t *db, const cpar_record_t *rec)
{
    if (!db || !rec || !rec->msg_id)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    return db->ops->add_record(db->state, rec);
}

int cpar_db_update(cpar_db_t *db, const cpar_record_t *rec, uint32_t fields)
{
    if (!db || !rec || !rec->msg_id)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    return db->ops->update_record(db->state, rec, fields);
}

int cpar_db_get(cpar_db_t *db, const char *msg_id, cpar_record_cb cb, void *arg)
{
    if (!db || !msg_id || !cb)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    return db->ops->get_record(db->state, msg_id, cb, arg);
}

int cpar_db_drop(cpar_db_t *db, const char *msg_id)
{
    if (!db || !msg_id)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    return db->ops->drop_record(db->state, msg_id);
}

int cpar_db_history(cpar_db_t *db, cpar_msgid_cb cb, void *arg)
{
    if (!db || !cb)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    return db->ops->get_history(db->state, cb, arg);
}

int cpar_db_flush(cpar_db_t *db)
{
    if (!db)
        return CPAR_EINVAL;
    if (!db->ops->flush)
        return 0;
    cpar_plugin_clear_error(db->inst);
    return db->ops->flush(db->state);
}

/* The query ops arrived with ABI 1.1; a backend built for 1.0 has no such members. */
static int db_has_queries(const cpar_db_t *db)
{
    return db->ops->base.abi_minor >= 1;
}

int cpar_db_find(cpar_db_t *db, const cpar_query_t *q, uint32_t fields, cpar_record_cb cb,
                 void *arg)
{
    if (!db || !q || !cb)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    if (!db_has_queries(db) || !db->ops->find_records)
        return CPAR_ENOTSUP;
    return db->ops->find_records(db->state, q, fields, cb, arg);
}

int cpar_db_drop_matching(cpar_db_t *db, const cpar_query_t *q, size_t *dropped)
{
    if (dropped)
        *dropped = 0;
    if (!db || !q)
        return CPAR_EINVAL;
    cpar_plugin_clear_error(db->inst);
    if (!db_has_queries(db) || !db->ops->drop_matching)
        return CPAR_ENOTSUP;
    return db->ops->drop_matching(db->state, q, dropped);
}
