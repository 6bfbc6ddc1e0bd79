/*
 * test_dbbackend_contract.c - what every dbbackend plugin must do, checked through the real
 * plugin host (cpar_db_open) with a fresh database per test.
 *
 * Usage: test_dbbackend_contract <backend>   (or CPAR_DB_BACKEND=<backend>)
 * Settings for the backend: CPAR_CONTRACT_CONFIG='{"Section": {"trait": value, ...}, ...}'.
 * Each test gets a fresh session id and the run a fresh profile directory, so backends that
 * keep files or tables per session start empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <cmocka.h>

#include "plugins/db.h"
#include "util/ids.h"

static const char *backend;
static char profile_dir[] = "/tmp/cpar-contract-XXXXXX";

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_db_t *db;
    char session[CPAR_ID_LEN];
} fixture_t;

/* ---- helpers ---------------------------------------------------------------------------- */

static void load_contract_config(cpar_config_t *cfg)
{
    const char *text = getenv("CPAR_CONTRACT_CONFIG");
    json_error_t jerr;
    json_t *root, *section;
    const char *sname;

    if (!text || !*text)
        return;
    root = json_loads(text, 0, &jerr);
    if (!json_is_object(root))
        fail_msg("CPAR_CONTRACT_CONFIG is not a JSON object: %s", jerr.text);
    json_object_foreach(root, sname, section)
    {
        const char *key;
        json_t *value;
        if (!json_is_object(section))
            fail_msg("CPAR_CONTRACT_CONFIG: section %s is not an object", sname);
        json_object_foreach(section, key, value)
        {
            assert_int_equal(cpar_config_set(cfg, sname, key, json_incref(value), CPAR_SRC_CLI,
                                             "CPAR_CONTRACT_CONFIG"),
                             0);
        }
    }
    json_decref(root);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    cpar_plughost_info_t info = {
        .program = "test_dbbackend_contract", .profile_dir = profile_dir, .cluster_id = ""};
    char err[1024];
    int rc;

    assert_non_null(fx);
    cpar_new_id(fx->session);
    info.session = fx->session;
    fx->cfg = cpar_config_new();
    assert_non_null(fx->cfg);
    load_contract_config(fx->cfg);
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, NULL, &info), 0);
    rc = cpar_db_open(fx->host, backend, &fx->db, err, sizeof err);
    if (rc)
        fail_msg("cpar_db_open(%s): %s: %s", backend, cpar_err_name(rc), err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(cpar_db_flush(fx->db), 0);
    cpar_db_close(fx->host, fx->db);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

/* A record's owned copy, as the get callback saw it. */
typedef struct got {
    int calls;
    cpar_record_t *rec;
} got_t;

static void got_record(void *arg, const cpar_record_t *rec)
{
    got_t *g = arg;
    size_t len = protobuf_c_message_get_packed_size(&rec->base);
    uint8_t *buf = malloc(len ? len : 1);

    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(&rec->base, buf), len);
    if (g->rec)
        cpar__record__free_unpacked(g->rec, NULL);
    g->rec = cpar__record__unpack(NULL, len, buf);
    assert_non_null(g->rec);
    free(buf);
    g->calls++;
}

static void got_free(got_t *g)
{
    if (g->rec)
        cpar__record__free_unpacked(g->rec, NULL);
    g->rec = NULL;
    g->calls = 0;
}

/* Get `id`, which must exist, into g. */
static void get_ok(fixture_t *fx, const char *id, got_t *g)
{
    int rc;

    got_free(g);
    rc = cpar_db_get(fx->db, id, got_record, g);
    if (rc)
        fail_msg("get %s: %s: %s", id, cpar_err_name(rc), cpar_db_error(fx->db));
    assert_int_equal(g->calls, 1);
}

static void add_ok(fixture_t *fx, const cpar_record_t *rec)
{
    int rc = cpar_db_add(fx->db, rec);

    if (rc)
        fail_msg("add %s: %s: %s", rec->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

static void update_ok(fixture_t *fx, const cpar_record_t *rec, uint32_t fields)
{
    int rc = cpar_db_update(fx->db, rec, fields);

    if (rc)
        fail_msg("update %s: %s: %s", rec->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

#define AT(rec, off) ((const void *)((const char *)(rec) + (off)))

/* Field-by-field equality, naming the first field that differs. */
static void assert_records_equal(const cpar_record_t *want, const cpar_record_t *got)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t nw = *(const size_t *)AT(want, f->quantifier_offset);
            size_t ng = *(const size_t *)AT(got, f->quantifier_offset);
            const ProtobufCBinaryData *bw = *(ProtobufCBinaryData *const *)AT(want, f->offset);
            const ProtobufCBinaryData *bg = *(ProtobufCBinaryData *const *)AT(got, f->offset);
            if (nw != ng)
                fail_msg("%s: %zu items, want %zu", f->name, ng, nw);
            for (size_t j = 0; j < nw; j++) {
                if (bw[j].len != bg[j].len)
                    fail_msg("%s[%zu]: %zu bytes, want %zu", f->name, j, bg[j].len, bw[j].len);
                if (bw[j].len && memcmp(bw[j].data, bg[j].data, bw[j].len) != 0)
                    fail_msg("%s[%zu]: bytes differ", f->name, j);
            }
        } else if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *sw = *(char *const *)AT(want, f->offset);
            const char *sg = *(char *const *)AT(got, f->offset);
            if (!sw != !sg)
                fail_msg("%s: %s, want %s", f->name, sg ? "set" : "absent", sw ? "set" : "absent");
            if (sw && strcmp(sw, sg) != 0)
                fail_msg("%s: \"%s\", want \"%s\"", f->name, sg, sw);
        } else {
            protobuf_c_boolean hw = *(const protobuf_c_boolean *)AT(want, f->quantifier_offset);
            protobuf_c_boolean hg = *(const protobuf_c_boolean *)AT(got, f->quantifier_offset);
            int64_t vw = *(const int64_t *)AT(want, f->offset);
            int64_t vg = *(const int64_t *)AT(got, f->offset);
            if (!hw != !hg)
                fail_msg("%s: %s, want %s", f->name, hg ? "set" : "absent", hw ? "set" : "absent");
            if (hw && vw != vg)
                fail_msg("%s: %lld, want %lld", f->name, (long long)vg, (long long)vw);
        }
    }
}

static void set_time(cpar_record_t *r, cpar_record_field_t which, int64_t us)
{
    switch (which) {
    case CPAR_REC_SUBMITTED:
        r->has_submitted = 1, r->submitted = us;
        break;
    case CPAR_REC_STARTED:
        r->has_started = 1, r->started = us;
        break;
    case CPAR_REC_COMPLETED:
        r->has_completed = 1, r->completed = us;
        break;
    case CPAR_REC_RECEIVED:
        r->has_received = 1, r->received = us;
        break;
    default:
        fail_msg("not a time field");
    }
}

static ProtobufCBinaryData bin(const void *data, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)(uintptr_t)data};
    return b;
}

static ProtobufCBinaryData req_bufs[3];
static ProtobufCBinaryData res_bufs[2];

/* A record with every field set, as the hub makes them for a finished task. */
static void full_record(cpar_record_t *r, const char *id)
{
    cpar_record_init(r);
    r->msg_id = (char *)id;
    r->header = "{\"msg_id\":\"x\",\"msg_type\":\"apply_request\",\"date\":"
                "\"2021-10-01T00:00:00.123456Z\",\"session\":\"s\",\"username\":\"Zoë\"}";
    r->metadata = "{\"after\":[],\"follow\":[],\"targets\":[],\"retries\":0}";
    r->content = "{}";
    req_bufs[0] = bin("f\0u\0n\0c", 7);
    req_bufs[1] = bin("", 0);
    req_bufs[2] = bin("\0", 1);
    r->n_buffers = 3;
    r->buffers = req_bufs;
    set_time(r, CPAR_REC_SUBMITTED, INT64_C(1633046400123456));
    r->client_uuid = "a1b2c3d4-0000000000000000000000aa";
    r->engine_uuid = "e1e2e3e4-0000000000000000000000ee";
    set_time(r, CPAR_REC_STARTED, INT64_C(1633046400223456));
    set_time(r, CPAR_REC_COMPLETED, INT64_C(1633046401000001));
    r->resubmitted = "99999999-000000000000000000000099";
    set_time(r, CPAR_REC_RECEIVED, INT64_C(1633046401000999));
    r->result_header = "{\"msg_type\":\"apply_reply\"}";
    r->result_metadata = "{\"status\":\"ok\",\"engine\":\"e1e2e3e4\"}";
    r->result_content = "{\"status\":\"ok\"}";
    res_bufs[0] = bin("\x80\x04\x95\0\0", 5);
    res_bufs[1] = bin("r", 1);
    r->n_result_buffers = 2;
    r->result_buffers = res_bufs;
    r->queue = "task";
    r->execute_input = "print('hi')";
    r->execute_result = "{\"data\":{\"text/plain\":\"42\"}}";
    r->error = "{\"ename\":\"ValueError\"}";
    r->stdout = "hi\n";
    r->stderr = "warning\n";
    r->display_data = "{\"data\":{}}";
    r->label = "label";
}

/* ---- the contract ------------------------------------------------------------------------ */

static void test_add_get_full_record(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    full_record(&r, "full-1");
    add_ok(fx, &r);
    get_ok(fx, "full-1", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_add_get_minimal_record(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "minimal";
    add_ok(fx, &r);
    get_ok(fx, "minimal", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_add_duplicate(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r, dup;

    full_record(&r, "dup");
    add_ok(fx, &r);
    cpar_record_init(&dup);
    dup.msg_id = "dup";
    dup.stdout = "other";
    assert_int_equal(cpar_db_add(fx->db, &dup), CPAR_EEXIST);
    assert_string_not_equal(cpar_db_error(fx->db), "");
    get_ok(fx, "dup", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_record_is_copied(void **state)
{
    fixture_t *fx = *state;
    char id[] = "copied";
    char out[] = "before";
    uint8_t buf[] = {1, 2, 3};
    ProtobufCBinaryData b = bin(buf, sizeof buf);
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = id;
    r.stdout = out;
    r.n_buffers = 1;
    r.buffers = &b;
    add_ok(fx, &r);
    /* The caller's memory is its own again once add returned. */
    memcpy(out, "after!", sizeof out);
    buf[0] = 9;
    get_ok(fx, "copied", &g);
    assert_string_equal(g.rec->stdout, "before");
    assert_int_equal(g.rec->buffers[0].data[0], 1);
    got_free(&g);
}

static void test_update_selected_fields(void **state)
{
    fixture_t *fx = *state;
    uint8_t big[300];
    ProtobufCBinaryData newres[3];
    got_t g = {0};
    cpar_record_t r, u, want;

    full_record(&r, "upd");
    add_ok(fx, &r);

    memset(big, 0, sizeof big);
    big[299] = 0xff;
    newres[0] = bin("", 0);
    newres[1] = bin(big, sizeof big);
    newres[2] = bin("\0x\0", 3);
    cpar_record_init(&u);
    u.msg_id = "upd";
    u.engine_uuid = "ffffffff-000000000000000000000fff";
    /* started is named but absent: it becomes absent */
    u.stdout = "not named, so not written";
    u.n_result_buffers = 3;
    u.result_buffers = newres;
    u.stderr = NULL; /* named and absent */
    update_ok(fx, &u,
              CPAR_REC_ENGINE_UUID | CPAR_REC_STARTED | CPAR_REC_RESULT_BUFFERS | CPAR_REC_STDERR);

    full_record(&want, "upd");
    want.engine_uuid = u.engine_uuid;
    want.has_started = 0;
    want.started = 0;
    want.n_result_buffers = 3;
    want.result_buffers = newres;
    want.stderr = NULL;
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);

    /* Setting fields that were absent, and emptying a repeated field. */
    cpar_record_init(&u);
    u.msg_id = "upd";
    set_time(&u, CPAR_REC_STARTED, 5);
    u.stderr = "again";
    update_ok(fx, &u, CPAR_REC_STARTED | CPAR_REC_STDERR | CPAR_REC_BUFFERS);
    set_time(&want, CPAR_REC_STARTED, 5);
    want.stderr = "again";
    want.n_buffers = 0;
    want.buffers = NULL;
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);

    /* No field named: nothing changes. */
    cpar_record_init(&u);
    u.msg_id = "upd";
    update_ok(fx, &u, 0);
    get_ok(fx, "upd", &g);
    assert_records_equal(&want, g.rec);
    got_free(&g);
}

static void test_update_all_fields(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r, empty;

    cpar_record_init(&r);
    r.msg_id = "all";
    add_ok(fx, &r);
    full_record(&r, "all");
    update_ok(fx, &r, CPAR_REC_ALL);
    get_ok(fx, "all", &g);
    assert_records_equal(&r, g.rec);

    cpar_record_init(&empty);
    empty.msg_id = "all";
    update_ok(fx, &empty, CPAR_REC_ALL);
    get_ok(fx, "all", &g);
    assert_records_equal(&empty, g.rec);
    got_free(&g);
}

static void test_missing_ids(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t u;

    assert_int_equal(cpar_db_get(fx->db, "nope", got_record, &g), CPAR_ENOENT);
    assert_int_equal(g.calls, 0);
    cpar_record_init(&u);
    u.msg_id = "nope";
    u.stdout = "x";
    assert_int_equal(cpar_db_update(fx->db, &u, CPAR_REC_STDOUT), CPAR_ENOENT);
    assert_int_equal(cpar_db_drop(fx->db, "nope"), CPAR_ENOENT);
    assert_int_equal(cpar_db_get(fx->db, "nope", got_record, &g), CPAR_ENOENT);
    assert_int_equal(g.calls, 0);
}

typedef struct ids {
    size_t n;
    char *id[64];
} ids_t;

static void collect_id(void *arg, const char *msg_id)
{
    ids_t *ids = arg;

    assert_true(ids->n < 64);
    ids->id[ids->n] = strdup(msg_id);
    assert_non_null(ids->id[ids->n]);
    ids->n++;
}

static void history_is(fixture_t *fx, const char *const *want, size_t nwant)
{
    ids_t ids = {0};

    assert_int_equal(cpar_db_history(fx->db, collect_id, &ids), 0);
    for (size_t i = 0; i < ids.n && i < nwant; i++)
        if (strcmp(ids.id[i], want[i]) != 0)
            fail_msg("history[%zu] is %s, want %s", i, ids.id[i], want[i]);
    if (ids.n != nwant)
        fail_msg("history has %zu ids, want %zu", ids.n, nwant);
    for (size_t i = 0; i < ids.n; i++)
        free(ids.id[i]);
}

static void add_submitted(fixture_t *fx, const char *id, int has, int64_t submitted)
{
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = (char *)id;
    if (has)
        set_time(&r, CPAR_REC_SUBMITTED, submitted);
    add_ok(fx, &r);
}

static void test_drop(void **state)
{
    fixture_t *fx = *state;
    static const char *const left[] = {"keep"};
    got_t g = {0};
    cpar_record_t r;

    full_record(&r, "gone");
    add_ok(fx, &r);
    add_submitted(fx, "keep", 1, INT64_C(1633046400123457));
    assert_int_equal(cpar_db_drop(fx->db, "gone"), 0);
    assert_int_equal(cpar_db_get(fx->db, "gone", got_record, &g), CPAR_ENOENT);
    assert_int_equal(cpar_db_drop(fx->db, "gone"), CPAR_ENOENT);
    history_is(fx, left, 1);
    /* The id is free again. */
    add_ok(fx, &r);
    get_ok(fx, "gone", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_history_order(void **state)
{
    fixture_t *fx = *state;
    static const char *const order1[] = {"d", "a", "b1", "b2", "c"};
    static const char *const order2[] = {"d", "a", "c", "b1", "b2"};
    static const char *const order3[] = {"d", "a", "c", "b1", "b2", "none"};
    static const char *const order4[] = {"a", "c", "b1", "b2", "late"};
    cpar_record_t u;

    history_is(fx, NULL, 0);
    add_submitted(fx, "c", 1, 3000000);
    add_submitted(fx, "a", 1, 1000000);
    add_submitted(fx, "b1", 1, 2000000);
    add_submitted(fx, "none", 0, 0);
    add_submitted(fx, "b2", 1, 2000000);
    add_submitted(fx, "d", 1, -5);
    history_is(fx, order1, 5);

    /* An updated submitted moves the record; ties stay in insertion order (c came first). */
    cpar_record_init(&u);
    u.msg_id = "c";
    set_time(&u, CPAR_REC_SUBMITTED, 2000000);
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    history_is(fx, order2, 5);

    /* Gaining a submitted joins the history; losing it leaves. */
    cpar_record_init(&u);
    u.msg_id = "none";
    set_time(&u, CPAR_REC_SUBMITTED, 9000000);
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    history_is(fx, order3, 6);
    cpar_record_init(&u);
    u.msg_id = "d";
    update_ok(fx, &u, CPAR_REC_SUBMITTED);
    assert_int_equal(cpar_db_drop(fx->db, "none"), 0);
    add_submitted(fx, "late", 1, 9000000);
    history_is(fx, order4, 5);
}

static void test_datetimes(void **state)
{
    static const int64_t times[] = {
        INT64_C(0),                  /* the epoch */
        INT64_C(1),                  /* one microsecond after it */
        INT64_C(-1),                 /* one before it */
        INT64_C(1633046400123456),   /* 2021-10-01T00:00:00.123456Z */
        INT64_C(951782400999999),    /* 2000-02-29T00:00:00.999999Z */
        INT64_C(253402300799999999), /* 9999-12-31T23:59:59.999999Z */
        INT64_C(-62135596800000000), /* 0001-01-01T00:00:00Z */
    };
    fixture_t *fx = *state;
    got_t g = {0};

    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char id[32];
        cpar_record_t r;

        snprintf(id, sizeof id, "t%zu", i);
        cpar_record_init(&r);
        r.msg_id = id;
        set_time(&r, CPAR_REC_SUBMITTED, times[i]);
        set_time(&r, CPAR_REC_STARTED, times[i]);
        set_time(&r, CPAR_REC_COMPLETED, times[i]);
        set_time(&r, CPAR_REC_RECEIVED, times[i]);
        add_ok(fx, &r);
        get_ok(fx, id, &g);
        assert_records_equal(&r, g.rec);
    }
    got_free(&g);
}

static void test_non_ascii_text(void **state)
{
    fixture_t *fx = *state;
    got_t g = {0};
    cpar_record_t r;

    cpar_record_init(&r);
    r.msg_id = "text";
    r.header = "{\"username\":\"J\u00fcrgen\",\"note\":\"\u65e5\u672c\u8a9e \U0001F600\","
               "\"esc\":\"tab\\t quote\\\" nul\\u0000 backslash\\\\\"}";
    r.content = "{\"code\":\"print('\u03c0 \u2248 3.14')\"}";
    r.execute_input = "s = '\u00e9\u00e8\u00ea'\n\tprint(s)";
    r.stdout = "\u00e9\u00e8\u00ea\r\nline two\n";
    r.stderr = "";
    r.label = "\U0001F680 launch";
    add_ok(fx, &r);
    get_ok(fx, "text", &g);
    assert_records_equal(&r, g.rec);
    got_free(&g);
}

static void test_big_buffer(void **state)
{
    const size_t size = (size_t)8 << 20;
    fixture_t *fx = *state;
    ProtobufCBinaryData bufs[2];
    got_t g = {0};
    cpar_record_t r;
    uint8_t *data = malloc(size);

    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13); /* includes many zero bytes */
    data[0] = 0;
    data[size - 1] = 0;
    bufs[0] = bin(data, size);
    bufs[1] = bin("\0\0\0", 3);
    cpar_record_init(&r);
    r.msg_id = "big";
    set_time(&r, CPAR_REC_SUBMITTED, 1);
    r.n_buffers = 2;
    r.buffers = bufs;
    add_ok(fx, &r);
    get_ok(fx, "big", &g);
    assert_records_equal(&r, g.rec);

    cpar_record_init(&r);
    r.msg_id = "big";
    r.n_result_buffers = 1;
    r.result_buffers = bufs;
    update_ok(fx, &r, CPAR_REC_RESULT_BUFFERS);
    get_ok(fx, "big", &g);
    assert_int_equal(g.rec->n_result_buffers, 1);
    assert_int_equal(g.rec->result_buffers[0].len, size);
    assert_memory_equal(g.rec->result_buffers[0].data, data, size);
    assert_int_equal(g.rec->n_buffers, 2);
    assert_int_equal(g.rec->buffers[0].len, size);
    got_free(&g);
    free(data);
}

static void test_flush(void **state)
{
    fixture_t *fx = *state;
    cpar_record_t r;

    full_record(&r, "flushed");
    add_ok(fx, &r);
    assert_int_equal(cpar_db_flush(fx->db), 0);
}

/* ---- runner ----------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(profile_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(profile_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_add_get_full_record),
        T(test_add_get_minimal_record),
        T(test_add_duplicate),
        T(test_record_is_copied),
        T(test_update_selected_fields),
        T(test_update_all_fields),
        T(test_missing_ids),
        T(test_drop),
        T(test_history_order),
        T(test_datetimes),
        T(test_non_ascii_text),
        T(test_big_buffer),
        T(test_flush),
    };
#undef T
    char name[128];

    backend = argc > 1 ? argv[1] : getenv("CPAR_DB_BACKEND");
    if (!backend || !*backend) {
        fprintf(stderr, "usage: %s <backend>   (or set CPAR_DB_BACKEND)\n", argv[0]);
        return 2;
    }
    snprintf(name, sizeof name, "dbbackend contract: %s", backend);
    return cmocka_run_group_tests_name(name, tests, group_setup, group_teardown);
}
