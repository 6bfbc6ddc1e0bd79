/*
 * cparallel/dbbackend.h - task-record database plugins (cpar_dbbackend_<name>.so).
 *
 * The hub keeps one record per request it has seen (ipyparallel's TaskRecord) in the selected
 * backend: DictDB (memory), SQLite, MongoDB or NoDB. Records cross the ABI as the protobuf-c
 * message cpar_record_t (sdk/proto/record.proto): dict fields as JSON text, datetimes as
 * microseconds since the epoch, buffers as bytes.
 *
 * All operations run on the controller's reactor thread and must not block it for long: a backend
 * that does I/O batches it (transactions, bulk writes, a flush timer) or hands it to a worker
 * thread of its own. The hub keeps its own in-memory view of what is pending and completed, so a
 * backend only stores and answers.
 *
 * Every operation returns 0 or a negative CPAR_E* code and explains failures via host->set_error.
 */
#ifndef CPARALLEL_DBBACKEND_H
#define CPARALLEL_DBBACKEND_H

#include <cparallel/plugin.h>
#include <cparallel/record.pb-c.h>
#include <cparallel/query.pb-c.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef Cpar__Record cpar_record_t;
/* A parsed, validated query (sdk/proto/query.proto); see find_records. */
typedef Cpar__Query cpar_query_t;
typedef Cpar__QueryTerm cpar_query_term_t;
typedef Cpar__QueryValue cpar_query_value_t;

/* Initialise a record (all fields absent); msg_id must still be set. */
#define cpar_record_init cpar__record__init

/*
 * One bit per record field, for cpar_dbbackend_t.update_record: the field numbered n in
 * record.proto has bit n - 2 (msg_id, number 1, has none); new fields keep that rule.
 */
typedef enum cpar_record_field {
    CPAR_REC_HEADER = 1u << 0,
    CPAR_REC_METADATA = 1u << 1,
    CPAR_REC_CONTENT = 1u << 2,
    CPAR_REC_BUFFERS = 1u << 3,
    CPAR_REC_SUBMITTED = 1u << 4,
    CPAR_REC_CLIENT_UUID = 1u << 5,
    CPAR_REC_ENGINE_UUID = 1u << 6,
    CPAR_REC_STARTED = 1u << 7,
    CPAR_REC_COMPLETED = 1u << 8,
    CPAR_REC_RESUBMITTED = 1u << 9,
    CPAR_REC_RECEIVED = 1u << 10,
    CPAR_REC_RESULT_HEADER = 1u << 11,
    CPAR_REC_RESULT_METADATA = 1u << 12,
    CPAR_REC_RESULT_CONTENT = 1u << 13,
    CPAR_REC_RESULT_BUFFERS = 1u << 14,
    CPAR_REC_QUEUE = 1u << 15,
    CPAR_REC_EXECUTE_INPUT = 1u << 16,
    CPAR_REC_EXECUTE_RESULT = 1u << 17,
    CPAR_REC_ERROR = 1u << 18,
    CPAR_REC_STDOUT = 1u << 19,
    CPAR_REC_STDERR = 1u << 20,
    CPAR_REC_DISPLAY_DATA = 1u << 21,
    CPAR_REC_LABEL = 1u << 22,
    CPAR_REC_ALL = (1u << 23) - 1
} cpar_record_field_t;

/*
 * Called with a record the backend found. The record and everything it points to are borrowed
 * for the duration of the call only; copy what you keep. A callback may read from the backend
 * (get_record) but must not add, update or drop records.
 */
typedef void (*cpar_record_cb)(void *arg, const cpar_record_t *rec);
/* Called with one msg_id, borrowed for the duration of the call; the same rule applies. */
typedef void (*cpar_msgid_cb)(void *arg, const char *msg_id);

typedef struct cpar_dbbackend {
    cpar_plugin_t base; /* kind CPAR_KIND_DBBACKEND */

    /*
     * Store a new record. `rec` is borrowed; copy what you keep. A record whose msg_id is
     * already stored is refused with CPAR_EEXIST and changes nothing.
     */
    int (*add_record)(void *state, const cpar_record_t *rec);

    /*
     * Overwrite the fields of the stored record rec->msg_id that `fields` (cpar_record_field_t
     * bits) names, with the values in `rec`; a named field that is absent in `rec` becomes absent
     * (None). Other fields are untouched. CPAR_ENOENT when no such record is stored (any more).
     */
    int (*update_record)(void *state, const cpar_record_t *rec, uint32_t fields);

    /* Find one record and call cb(arg, rec) once. CPAR_ENOENT (cb not called) when missing. */
    int (*get_record)(void *state, const char *msg_id, cpar_record_cb cb, void *arg);

    /* Forget one record. CPAR_ENOENT when missing. */
    int (*drop_record)(void *state, const char *msg_id);

    /*
     * Call cb once per record whose `submitted` is set, in ascending `submitted` order (ties in
     * insertion order).
     */
    int (*get_history)(void *state, cpar_msgid_cb cb, void *arg);

    /*
     * Make everything written so far durable (called at shutdown and by tests). Memory-only
     * backends may leave it NULL.
     */
    int (*flush)(void *state);

    /* ---- ABI 1.1: queries. The core calls these only on plugins built for 1.1 or later. ---- */

    /*
     * Call cb once per stored record that matches `q` (every record when q has no terms), in
     * any order. `fields` (cpar_record_field_t bits) names the fields the caller will read: a
     * backend may leave the others absent in what it passes to cb (msg_id is always set).
     * The query's semantics are those written in query.proto; a backend that cannot evaluate a
     * term returns CPAR_ENOTSUP with an explanation and calls cb for nothing. May be NULL (the
     * backend answers no queries: the core tells the client so).
     */
    int (*find_records)(void *state, const cpar_query_t *q, uint32_t fields, cpar_record_cb cb,
                        void *arg);

    /*
     * Forget every record that matches `q`, as find_records would select them; set *dropped
     * (when not NULL) to how many went. May be NULL, like find_records.
     */
    int (*drop_matching)(void *state, const cpar_query_t *q, size_t *dropped);
} cpar_dbbackend_t;

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_DBBACKEND_H */
