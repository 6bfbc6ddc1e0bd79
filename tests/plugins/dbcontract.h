/*
 * dbcontract.h - the dbbackend contract suite (test_dbbackend_contract): its fixture, helpers and
 * groups of tests.
 *
 * Every test gets a fresh database through the real plugin host (cpar_db_open), with a fresh
 * session id, in a profile directory made for the run. Queries are written as the JSON a client
 * sends and parsed by the hub's parser (cpar_query_parse), so the backend sees exactly the trees
 * the hub hands it.
 */
#ifndef CPAR_TEST_DBCONTRACT_H
#define CPAR_TEST_DBCONTRACT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plugins/db.h"
#include "util/ids.h"
#include "wire/query.h"

/* The backend under test, and the profile directory of the run. */
extern const char *dbc_backend;
extern char dbc_profile_dir[];

/* Datetimes (microseconds since the epoch) at the edges of what Python's datetime holds. */
extern const int64_t dbc_edge_times[7];

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
    unsigned loaded; /* records made by load_records so far */
} fixture_t;

int dbc_setup(void **state);
int dbc_teardown(void **state);
#define DBC_TEST(f) cmocka_unit_test_setup_teardown(f, dbc_setup, dbc_teardown)

/* The groups; each returns its number of failed tests. */
int dbc_run_storage(void);
int dbc_run_queries(void);
int dbc_run_testdb(void);
int dbc_run_nodb(void);

/* ---- records ------------------------------------------------------------------------------ */

/* A record's owned copy, as the get or find callback saw it. */
typedef struct got {
    int calls;
    cpar_record_t *rec;
} got_t;

/* A deep copy (pack and unpack) of a borrowed record; free with cpar__record__free_unpacked. */
cpar_record_t *record_copy(const cpar_record_t *rec);
void got_record(void *arg, const cpar_record_t *rec);
void got_free(got_t *g);
/* Get `id`, which must exist, into g. */
void get_ok(fixture_t *fx, const char *id, got_t *g);
void add_ok(fixture_t *fx, const cpar_record_t *rec);
void update_ok(fixture_t *fx, const cpar_record_t *rec, uint32_t fields);

/* Field-by-field equality, naming the first field that differs. */
void assert_records_equal(const cpar_record_t *want, const cpar_record_t *got);
/* The same for the fields named by `fields` (cpar_record_field_t bits) and msg_id. */
void assert_fields_equal(const cpar_record_t *want, const cpar_record_t *got, uint32_t fields);

void set_time(cpar_record_t *r, cpar_record_field_t which, int64_t us);
ProtobufCBinaryData bin(const void *data, size_t len);
/* A record with every field set, as the hub makes them for a finished task (static storage). */
void full_record(cpar_record_t *r, const char *id);

/* ---- history -------------------------------------------------------------------------------- */

typedef struct ids {
    size_t n;
    char *id[256];
} ids_t;

void collect_id(void *arg, const char *msg_id);
void ids_free(ids_t *ids);
void history_of(fixture_t *fx, ids_t *ids);
void history_is(fixture_t *fx, const char *const *want, size_t nwant);

/* ---- queries -------------------------------------------------------------------------------- */

/* The hub's parse of a client's query; fails the test when the parser refuses it. */
cpar_query_t *query_of(const char *json);

typedef struct found {
    size_t n;
    cpar_record_t *rec[256]; /* copies */
} found_t;

/* find_records of `json` (or of a query tree) asking for `fields`; must succeed. */
void find_ok(fixture_t *fx, const char *json, uint32_t fields, found_t *out);
void find_query_ok(fixture_t *fx, const cpar_query_t *q, uint32_t fields, found_t *out);
void found_free(found_t *f);
/* find_records of `json` selects exactly the space-separated ids in `want` (any order). */
void expect_find(fixture_t *fx, const char *json, const char *want);
/* drop_matching of `json`; must succeed. Returns how many records it dropped. */
size_t drop_matching_ok(fixture_t *fx, const char *json);

#endif
