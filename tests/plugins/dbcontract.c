/* dbcontract.c - the fixture and helpers of the dbbackend contract suite (see dbcontract.h). */
#include "dbcontract.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/query.h>

#include "contractcfg.h"

const char *dbc_backend;
char dbc_profile_dir[] = "/tmp/cpar-contract-XXXXXX";

const int64_t dbc_edge_times[7] = {
    INT64_C(0),                  /* the epoch */
    INT64_C(1),                  /* one microsecond after it */
    INT64_C(-1),                 /* one before it */
    INT64_C(1633046400123456),   /* 2021-10-01T00:00:00.123456Z */
    INT64_C(951782400999999),    /* 2000-02-29T00:00:00.999999Z */
    INT64_C(253402300799999999), /* 9999-12-31T23:59:59.999999Z */
    INT64_C(-62135596800000000), /* 0001-01-01T00:00:00Z */
};

/* ---- fixture ------------------------------------------------------------------------------ */

int dbc_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    cpar_plughost_info_t info = {
        .program = "test_dbbackend_contract", .profile_dir = dbc_profile_dir, .cluster_id = ""};
    char err[1024];
    int rc;

    assert_non_null(fx);
    cpar_new_id(fx->session);
    info.session = fx->session;
    fx->cfg = cpar_config_new();
    assert_non_null(fx->cfg);
    contract_load_config(fx->cfg);
    assert_int_equal(cpar_plughost_new(&fx->host, fx->cfg, NULL, &info), 0);
    rc = cpar_db_open(fx->host, dbc_backend, &fx->db, err, sizeof err);
    if (rc)
        fail_msg("cpar_db_open(%s): %s: %s", dbc_backend, cpar_err_name(rc), err);
    *state = fx;
    return 0;
}

int dbc_teardown(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(cpar_db_flush(fx->db), 0);
    cpar_db_close(fx->host, fx->db);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

/* ---- records ------------------------------------------------------------------------------ */

cpar_record_t *record_copy(const cpar_record_t *rec)
{
    size_t len = protobuf_c_message_get_packed_size(&rec->base);
    uint8_t *buf = malloc(len ? len : 1);
    cpar_record_t *copy;

    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(&rec->base, buf), len);
    copy = cpar__record__unpack(NULL, len, buf);
    assert_non_null(copy);
    free(buf);
    return copy;
}

void got_record(void *arg, const cpar_record_t *rec)
{
    got_t *g = arg;

    if (g->rec)
        cpar__record__free_unpacked(g->rec, NULL);
    g->rec = record_copy(rec);
    g->calls++;
}

void got_free(got_t *g)
{
    if (g->rec)
        cpar__record__free_unpacked(g->rec, NULL);
    g->rec = NULL;
    g->calls = 0;
}

void get_ok(fixture_t *fx, const char *id, got_t *g)
{
    int rc;

    got_free(g);
    rc = cpar_db_get(fx->db, id, got_record, g);
    if (rc)
        fail_msg("get %s: %s: %s", id, cpar_err_name(rc), cpar_db_error(fx->db));
    assert_int_equal(g->calls, 1);
}

void add_ok(fixture_t *fx, const cpar_record_t *rec)
{
    int rc = cpar_db_add(fx->db, rec);

    if (rc)
        fail_msg("add %s: %s: %s", rec->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

void update_ok(fixture_t *fx, const cpar_record_t *rec, uint32_t fields)
{
    int rc = cpar_db_update(fx->db, rec, fields);

    if (rc)
        fail_msg("update %s: %s: %s", rec->msg_id, cpar_err_name(rc), cpar_db_error(fx->db));
}

#define AT(rec, off) ((const void *)((const char *)(rec) + (off)))

static void assert_bytes_field_equal(const cpar_record_t *want, const cpar_record_t *got,
                                     const ProtobufCFieldDescriptor *f)
{
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
}

static void assert_field_equal(const cpar_record_t *want, const cpar_record_t *got,
                               const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        assert_bytes_field_equal(want, got, f);
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

void assert_fields_equal(const cpar_record_t *want, const cpar_record_t *got, uint32_t fields)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->id == 1 || (fields & (1u << (f->id - 2))))
            assert_field_equal(want, got, f);
    }
}

void assert_records_equal(const cpar_record_t *want, const cpar_record_t *got)
{
    assert_fields_equal(want, got, CPAR_REC_ALL);
}

void set_time(cpar_record_t *r, cpar_record_field_t which, int64_t us)
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

ProtobufCBinaryData bin(const void *data, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)(uintptr_t)data};
    return b;
}

static ProtobufCBinaryData req_bufs[3];
static ProtobufCBinaryData res_bufs[2];

void full_record(cpar_record_t *r, const char *id)
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

/* ---- history -------------------------------------------------------------------------------- */

void collect_id(void *arg, const char *msg_id)
{
    ids_t *ids = arg;

    assert_true(ids->n < sizeof ids->id / sizeof ids->id[0]);
    ids->id[ids->n] = strdup(msg_id);
    assert_non_null(ids->id[ids->n]);
    ids->n++;
}

void ids_free(ids_t *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        free(ids->id[i]);
    ids->n = 0;
}

void history_of(fixture_t *fx, ids_t *ids)
{
    int rc;

    ids->n = 0;
    rc = cpar_db_history(fx->db, collect_id, ids);
    if (rc)
        fail_msg("history: %s: %s", cpar_err_name(rc), cpar_db_error(fx->db));
}

void history_is(fixture_t *fx, const char *const *want, size_t nwant)
{
    ids_t ids;

    history_of(fx, &ids);
    for (size_t i = 0; i < ids.n && i < nwant; i++)
        if (strcmp(ids.id[i], want[i]) != 0)
            fail_msg("history[%zu] is %s, want %s", i, ids.id[i], want[i]);
    if (ids.n != nwant)
        fail_msg("history has %zu ids, want %zu", ids.n, nwant);
    ids_free(&ids);
}

/* ---- queries -------------------------------------------------------------------------------- */

cpar_query_t *query_of(const char *json)
{
    cpar_query_t *q = NULL;
    char err[512];

    if (cpar_query_parse(json, strlen(json), &q, err, sizeof err) != 0)
        fail_msg("the parser refused %s: %s", json, err);
    return q;
}

static void found_record(void *arg, const cpar_record_t *rec)
{
    found_t *f = arg;

    assert_true(f->n < sizeof f->rec / sizeof f->rec[0]);
    assert_non_null(rec->msg_id);
    f->rec[f->n++] = record_copy(rec);
}

void find_query_ok(fixture_t *fx, const cpar_query_t *q, uint32_t fields, found_t *out)
{
    int rc;

    out->n = 0;
    rc = cpar_db_find(fx->db, q, fields, found_record, out);
    if (rc)
        fail_msg("find: %s: %s", cpar_err_name(rc), cpar_db_error(fx->db));
}

void find_ok(fixture_t *fx, const char *json, uint32_t fields, found_t *out)
{
    cpar_query_t *q = query_of(json);
    int rc;

    out->n = 0;
    rc = cpar_db_find(fx->db, q, fields, found_record, out);
    cpar_query_free(q);
    if (rc)
        fail_msg("find %s: %s: %s", json, cpar_err_name(rc), cpar_db_error(fx->db));
}

void found_free(found_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        cpar__record__free_unpacked(f->rec[i], NULL);
    f->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids as one sorted, space-separated string. */
static void ids_text(char **ids, size_t n, char *out, size_t outlen)
{
    size_t used = 0;

    qsort(ids, n, sizeof *ids, cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n && used < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? " " : "", ids[i]);
}

void expect_find(fixture_t *fx, const char *json, const char *want)
{
    char *got_ids[256], *want_ids[256], got[2048], wanted[2048], *copy = strdup(want), *save;
    size_t nwant = 0;
    found_t f;

    assert_non_null(copy);
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        want_ids[nwant++] = t;
    find_ok(fx, json, CPAR_REC_ALL, &f);
    for (size_t i = 0; i < f.n; i++)
        got_ids[i] = f.rec[i]->msg_id;
    ids_text(got_ids, f.n, got, sizeof got);
    ids_text(want_ids, nwant, wanted, sizeof wanted);
    if (strcmp(got, wanted) != 0)
        fail_msg("find %s selected [%s], want [%s]", json, got, wanted);
    found_free(&f);
    free(copy);
}

size_t drop_matching_ok(fixture_t *fx, const char *json)
{
    cpar_query_t *q = query_of(json);
    size_t dropped = 0;
    int rc = cpar_db_drop_matching(fx->db, q, &dropped);

    cpar_query_free(q);
    if (rc)
        fail_msg("drop_matching %s: %s: %s", json, cpar_err_name(rc), cpar_db_error(fx->db));
    return dropped;
}
