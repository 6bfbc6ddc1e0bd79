/*
 * test_sqlite_query.c - the SQLite backend's compiled queries against the reference matcher
 * (cpar_query_match): random records whose fields take awkward values (absent, empty, JSON that
 * is a scalar or no JSON at all, numbers of both kinds, dates inside JSON text, lists, nested
 * objects) and random queries with every operator and arguments of every kind, parsed by the
 * hub's parser; find_records and drop_matching must select exactly the records the reference
 * does.
 *
 * CPAR_QUERY_SEED=<n> repeats a run; CPAR_QUERY_ROUNDS=<n> changes the number of queries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <jansson.h>

#include <cparallel/query.h>

#include "plugins/db.h"
#include "util/ids.h"
#include "util/log.h"
#include "wire/query.h"

#include "tmptree.h"

#define NRECS 80
#define T0 INT64_C(1633046400000000)
#define SEC INT64_C(1000000)

static char topdir[] = "/tmp/cpar-sqlq-XXXXXX";
static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

#define PICK(a) ((a)[rnd(sizeof(a) / sizeof((a)[0]))])

/* ---- records -------------------------------------------------------------------------------- */

/* clang-format off */
static const char *const texts[] = {NULL, NULL, "", "e1", "e2", "E1", "e1\xc3\xa9", "a*b", "[x]",
                                    "hello world\n", "hello", "2021-10-01T00:00:00Z", "a\"b'c"};

/* JSON member values: every JSON type, and text that looks like a date. */
static const char *const jvalues[] = {
    "0", "1", "-1", "2", "5", "-5", "3", "1.5", "2.0", "-0.0", "1e20", "9007199254740993",
    "\"a\"", "\"b\"", "\"\"", "\"hello\"", "\"e1\"", "\"2021-10-01T00:00:00Z\"", "true",
    "false", "null", "[]", "[1,2]", "[\"a\",\"b\"]", "[1,\"a\",null,true,[1]]", "[2.0,1]",
    "{\"x\":1}", "{\"x\":{\"y\":\"a\"}}", "{}"};
static const char *const members[] = {"n", "s", "b", "t", "o"};
/* Whole JSON fields that are not objects. */
static const char *const odd_docs[] = {"not json", "5", "\"str\"", "null", "[1,2]", "\"e1\"",
                                       "{\"n\":1", ""};
/* clang-format on */

typedef struct rec {
    cpar_record_t r;
    char id[16];
    char *header, *metadata; /* owned */
    ProtobufCBinaryData bufs[2];
} rec_t;

static rec_t recs[NRECS];

static char *make_doc(void)
{
    char *doc;

    if (rnd(6) == 0)
        return rnd(3) ? strdup(PICK(odd_docs)) : NULL;
    doc = malloc(4096);
    assert_non_null(doc);
    strcpy(doc, "{");
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        if (rnd(3) == 0)
            continue;
        sprintf(doc + strlen(doc), "%s\"%s\":%s", strlen(doc) > 1 ? "," : "", members[i],
                PICK(jvalues));
    }
    strcat(doc, "}");
    return doc;
}

static int64_t make_date(int *has)
{
    static const int64_t offsets[] = {-2 * SEC, 0, 1, SEC, 2 * SEC, 3 * SEC, 5 * SEC};

    *has = rnd(4) != 0;
    return *has ? T0 + PICK(offsets) : 0;
}

static void make_records(void)
{
    for (unsigned i = 0; i < NRECS; i++) {
        rec_t *x = &recs[i];
        cpar_record_t *r = &x->r;
        int has;

        cpar_record_init(r);
        snprintf(x->id, sizeof x->id, "r%03u", i);
        r->msg_id = x->id;
        r->engine_uuid = (char *)PICK(texts);
        r->stdout = (char *)PICK(texts);
        r->label = (char *)PICK(texts);
        r->queue = rnd(2) ? "task" : NULL;
        r->submitted = make_date(&has);
        r->has_submitted = has;
        r->completed = make_date(&has);
        r->has_completed = has;
        x->header = make_doc();
        x->metadata = make_doc();
        r->header = x->header;
        r->metadata = x->metadata;
        r->result_content =
            rnd(3) ? (rnd(2) ? "{\"status\":\"ok\"}" : "{\"status\":\"error\"}") : NULL;
        if (rnd(2)) {
            x->bufs[0].data = (uint8_t *)"x";
            x->bufs[0].len = rnd(2);
            r->n_buffers = 1;
            r->buffers = x->bufs;
        }
    }
}

static void free_records(void)
{
    for (unsigned i = 0; i < NRECS; i++) {
        free(recs[i].header);
        free(recs[i].metadata);
    }
}

/* ---- queries -------------------------------------------------------------------------------- */

/* clang-format off */
static const char *const keys[] = {
    "msg_id", "engine_uuid", "stdout", "label", "queue", "submitted", "completed", "buffers",
    "header", "metadata", "result_content", "execute_result", "header.n", "header.s",
    "header.b", "header.t", "header.o", "header.o.x", "header.o.x.y", "header.missing",
    "metadata.n", "metadata.t", "result_content.status"};

/* Query argument values, as JSON text (ISO strings become dates in the hub's parser). */
static const char *const args[] = {
    "null", "true", "false", "0", "1", "-1", "2", "5", "1.5", "2.0", "-0.0", "1e20",
    "\"a\"", "\"e1\"", "\"E1\"", "\"\"", "\"hello\"", "\"task\"", "\"ok\"", "\"r001\"",
    "\"2021-10-01T00:00:00Z\"", "\"2021-10-01T00:00:01Z\"", "\"2021-10-01T00:00:03.000000Z\"",
    "\"2021-09-30T23:59:58Z\"", "[1,2]", "[\"a\",\"b\"]", "{\"x\":1}", "[]", "{}", "[2.0,1]"};
static const char *const regexes[] = {"^e", "l+o", "^$", "[0-9]", "e1$", ".*", "(a|b)",
                                      "^2021-", "\\*", "o w"};
static const char *const globs[] = {"e*", "*o*", "?1", "[ab]*", "\\*", "*", "", "hello",
                                    "r00?", "*\n"};
static const char *const ops[] = {"$eq", "$ne", "$lt", "$gt", "$lte", "$gte", "$in",
                                  "$nin", "$all", "$mod", "$exists", "$regex", "$glob", "="};
/* clang-format on */

static void add_list(char *q, size_t n)
{
    strcat(q, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(q, ",");
        strcat(q, PICK(args));
    }
    strcat(q, "]");
}

/* One random query as JSON text into q. */
static void make_query(char *q)
{
    unsigned nterms = rnd(4);
    const char *chosen[4];

    strcpy(q, "{");
    for (unsigned t = 0; t < nterms; t++) {
        const char *op = PICK(ops);
        char arg[512] = "";

        if (strcmp(op, "$in") == 0 || strcmp(op, "$nin") == 0 || strcmp(op, "$all") == 0)
            add_list(arg, rnd(4));
        else if (strcmp(op, "$mod") == 0)
            sprintf(arg, "[%d, %d]", (int)PICK(((const int[]){1, 2, 3, -2, -1})), (int)rnd(3) - 1);
        else if (strcmp(op, "$exists") == 0)
            strcpy(arg, rnd(2) ? "true" : "false");
        else if (strcmp(op, "$regex") == 0 || strcmp(op, "$glob") == 0) {
            json_t *s = json_string(strcmp(op, "$regex") == 0 ? PICK(regexes) : PICK(globs));
            char *text = json_dumps(s, JSON_ENCODE_ANY);

            strcpy(arg, text);
            free(text);
            json_decref(s);
        } else
            strcpy(arg, PICK(args));
        /* a key appears once per object: a repeated one is skipped */
        chosen[t] = PICK(keys);
        for (unsigned u = 0; u < t; u++)
            if (chosen[u] == chosen[t])
                chosen[t] = NULL;
        if (!chosen[t])
            continue;
        sprintf(q + strlen(q), "%s\"%s\": ", strlen(q) > 1 ? ", " : "", chosen[t]);
        if (strcmp(op, "=") == 0)
            strcat(q, arg);
        else
            sprintf(q + strlen(q), "{\"%s\": %s}", op, arg);
    }
    strcat(q, "}");
}

/* ---- the comparison ------------------------------------------------------------------------- */

typedef struct hits {
    int seen[NRECS];
    int calls;
} hits_t;

static void hit_cb(void *arg, const cpar_record_t *rec)
{
    hits_t *h = arg;
    unsigned i = (unsigned)strtoul(rec->msg_id + 1, NULL, 10);

    assert_true(i < NRECS);
    h->seen[i]++;
    h->calls++;
}

typedef struct fx {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
} fx_t;

static void fx_open(fx_t *fx)
{
    cpar_plughost_info_t info = {
        .program = "test_sqlite_query", .profile_dir = topdir, .cluster_id = ""};
    char err[1024];

    memset(fx, 0, sizeof *fx);
    cpar_new_id(fx->session);
    info.session = fx->session;
    fx->cfg = cpar_config_new();
    assert_non_null(fx->cfg);
    assert_int_equal(
        cpar_config_set(fx->cfg, "SQLiteDB", "table", json_string(""), CPAR_SRC_CLI, "t"), 0);
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, NULL, &info), 0);
    if (cpar_db_open(fx->host, "SQLiteDB", &fx->db, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void fx_close(fx_t *fx)
{
    cpar_db_close(fx->host, fx->db);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
}

static void describe(const char *json, unsigned i, int want, int got)
{
    const cpar_record_t *r = &recs[i].r;

    fail_msg("query %s: record %s: reference %s, sqlite %s\n  header=%s\n  metadata=%s\n"
             "  engine_uuid=%s stdout=%s label=%s submitted=%s%lld completed=%s%lld nbufs=%zu",
             json, r->msg_id, want ? "matches" : "does not match", got ? "selects it" : "does not",
             r->header ? r->header : "(absent)", r->metadata ? r->metadata : "(absent)",
             r->engine_uuid ? r->engine_uuid : "(absent)", r->stdout ? r->stdout : "(absent)",
             r->label ? r->label : "(absent)", r->has_submitted ? "" : "absent ",
             (long long)r->submitted, r->has_completed ? "" : "absent ", (long long)r->completed,
             r->n_buffers);
}

static void test_queries_match_reference(void **state)
{
    const char *env = getenv("CPAR_QUERY_ROUNDS");
    unsigned rounds = env ? (unsigned)strtoul(env, NULL, 10) : 4000, parsed = 0, nonempty = 0;
    fx_t fx;

    (void)state;
    make_records();
    fx_open(&fx);
    for (unsigned i = 0; i < NRECS; i++)
        if (cpar_db_add(fx.db, &recs[i].r) != 0)
            fail_msg("add %s: %s", recs[i].id, cpar_db_error(fx.db));

    for (unsigned round = 0; round < rounds; round++) {
        char json[4096], err[512];
        cpar_query_t *q;
        hits_t h = {{0}, 0};
        int rc, drop = round % 40 == 0;

        make_query(json);
        if (cpar_query_parse(json, strlen(json), &q, err, sizeof err) != 0)
            continue; /* the hub refuses it: no backend sees it */
        parsed++;
        if (drop) {
            size_t dropped = 0, want = 0;

            for (unsigned i = 0; i < NRECS; i++)
                want += cpar_query_match(q, &recs[i].r) == 1;
            rc = cpar_db_drop_matching(fx.db, q, &dropped);
            if (rc)
                fail_msg("drop %s: %s: %s", json, cpar_err_name(rc), cpar_db_error(fx.db));
            if (dropped != want)
                fail_msg("drop %s: dropped %zu, reference matches %zu", json, dropped, want);
            for (unsigned i = 0; i < NRECS; i++) {
                if (cpar_query_match(q, &recs[i].r) != 1)
                    continue;
                if (cpar_db_add(fx.db, &recs[i].r) != 0)
                    fail_msg("re-add %s: %s", recs[i].id, cpar_db_error(fx.db));
            }
            cpar_query_free(q);
            continue;
        }
        rc = cpar_db_find(fx.db, q, rnd(2) ? CPAR_REC_ALL : 0, hit_cb, &h);
        if (rc)
            fail_msg("find %s: %s: %s", json, cpar_err_name(rc), cpar_db_error(fx.db));
        for (unsigned i = 0; i < NRECS; i++) {
            int want = cpar_query_match(q, &recs[i].r);

            assert_true(want == 0 || want == 1);
            if (want != h.seen[i])
                describe(json, i, want, h.seen[i]);
        }
        nonempty += h.calls > 0 && h.calls < NRECS;
        cpar_query_free(q);
    }
    print_message("%u queries the hub accepts, %u of them selecting some but not all records\n",
                  parsed, nonempty);
    assert_true(parsed > rounds / 2);
    fx_close(&fx);
    free_records();
}

/* Long IN lists go to SQLite as one JSON array: values with quotes, escapes and controls. */
static void test_long_in_lists(void **state)
{
    /* as JSON string contents */
    static const char *const odd[] = {"a\\\"b'c",
                                      "back\\\\slash",
                                      "tab\\tnew\\nline",
                                      "\\u0001x",
                                      "e1\\u00e9",
                                      "hello world\\n",
                                      "[x]",
                                      "a*b"};
    fx_t fx;

    (void)state;
    rng = 12345;
    make_records();
    fx_open(&fx);
    for (unsigned i = 0; i < NRECS; i++)
        assert_int_equal(cpar_db_add(fx.db, &recs[i].r), 0);
    for (int variant = 0; variant < 8; variant++) {
        const char *key = variant & 1 ? "engine_uuid" : variant & 2 ? "stdout" : "msg_id";
        json_t *list = json_array(), *query;
        char *json, err[512];
        cpar_query_t *q;

        for (unsigned i = 0; i < 300; i++) {
            char id[32];

            if (i % 3 == 0) {
                snprintf(id, sizeof id, "r%03u", (i * 7) % (NRECS + 20));
                json_array_append_new(list, json_string(id));
            } else if (i % 3 == 1) {
                char text[64];

                snprintf(text, sizeof text, "\"%s\"", PICK(odd)); /* JSON-escaped already */
                json_array_append_new(list, json_loads(text, JSON_DECODE_ANY, NULL));
            } else {
                json_array_append_new(list, json_string(PICK(texts) ? PICK(texts) : "e2"));
            }
        }
        if (variant & 4) {
            json_array_append_new(list, json_null());
            json_array_append_new(list, json_integer(5));
            json_array_append_new(list, json_string("2021-10-01T00:00:00Z")); /* a date */
        }
        for (int nin = 0; nin < 2; nin++) {
            hits_t h = {{0}, 0};

            query = json_pack("{s:{s:O}}", key, nin ? "$nin" : "$in", list);
            json = json_dumps(query, JSON_COMPACT);
            assert_int_equal(cpar_query_parse(json, strlen(json), &q, err, sizeof err), 0);
            if (cpar_db_find(fx.db, q, 0, hit_cb, &h) != 0)
                fail_msg("find %s: %s", json, cpar_db_error(fx.db));
            for (unsigned i = 0; i < NRECS; i++) {
                int want = cpar_query_match(q, &recs[i].r);

                if (want != h.seen[i])
                    describe(json, i, want, h.seen[i]);
            }
            cpar_query_free(q);
            free(json);
            json_decref(query);
        }
        json_decref(list);
    }
    fx_close(&fx);
    free_records();
}

/* ---- runner ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    const char *seed = getenv("CPAR_QUERY_SEED");

    (void)state;
    if (seed)
        rng = strtoull(seed, NULL, 10) * 0x9e3779b97f4a7c15u + 1;
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
        cmocka_unit_test(test_queries_match_reference),
        cmocka_unit_test(test_long_in_lists),
    };

    return cmocka_run_group_tests_name("sqlite queries vs the reference matcher", tests,
                                       group_setup, group_teardown);
}
