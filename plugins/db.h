/*
 * db.h - the core's typed front for dbbackend plugins (cpar_db_*).
 *
 * The hub calls these; each clears the plugin's error text, calls the op and returns its code,
 * so that on failure cpar_db_error() says why.
 */
#ifndef CPAR_PLUGINS_DB_H
#define CPAR_PLUGINS_DB_H

#include <cparallel/dbbackend.h>

#include "host.h"

typedef struct cpar_db cpar_db_t;

/*
 * The plugin name for an ipyparallel db_class setting: "DictDB", "dictdb" and
 * "ipyparallel.controller.dictdb.DictDB" give "dictdb"; likewise SQLiteDB -> "sqlite",
 * MongoDB -> "mongodb", NoDB -> "nodb" (any case, with or without the ipyparallel module path,
 * including the old ipyparallel.controller.sqlitedb/mongodb paths). Any other text is taken as a
 * plugin name as it is. Returns a pointer into a static table or into `db_class`.
 */
const char *cpar_db_plugin_name(const char *db_class);

/* Load the backend for `db_class` (see above); err as cpar_plughost_load. */
int cpar_db_open(cpar_plughost_t *host, const char *db_class, cpar_db_t **out, char *err,
                 size_t errlen);
/* Flush (when the backend can) and unload. NULL is ignored. */
void cpar_db_close(cpar_plughost_t *host, cpar_db_t *db);

const char *cpar_db_name(const cpar_db_t *db);
/* The backend's detail text for its last failure, or "". */
const char *cpar_db_error(const cpar_db_t *db);

int cpar_db_add(cpar_db_t *db, const cpar_record_t *rec);
int cpar_db_update(cpar_db_t *db, const cpar_record_t *rec, uint32_t fields);
int cpar_db_get(cpar_db_t *db, const char *msg_id, cpar_record_cb cb, void *arg);
int cpar_db_drop(cpar_db_t *db, const char *msg_id);
int cpar_db_history(cpar_db_t *db, cpar_msgid_cb cb, void *arg);
int cpar_db_flush(cpar_db_t *db);

/*
 * Queries (dbbackend ABI 1.1). CPAR_ENOTSUP, with no error text of the plugin's, when the backend
 * answers no queries (it predates 1.1 or leaves the op NULL).
 */
int cpar_db_find(cpar_db_t *db, const cpar_query_t *q, uint32_t fields, cpar_record_cb cb,
                 void *arg);
int cpar_db_drop_matching(cpar_db_t *db, const cpar_query_t *q, size_t *dropped);

#endif /* CPAR_PLUGINS_DB_H */
