/* json.c - the JSON parts of a message: parsing on demand, replacing, encoding, error content. */
#include "internal.h"

#include <cparallel/errors.h>

#include <string.h>

/* Most headers and small contents fit, and are then encoded once instead of twice. */
#define JSON_STACK_BUF 1024

int cpar_wire_frame_json(zmq_msg_t *frame, const json_t *v)
{
    char buf[JSON_STACK_BUF];
    size_t len;

    if (!json_is_object(v))
        return CPAR_EINVAL;
    len = json_dumpb(v, buf, sizeof buf, CPAR_WIRE_JSON_FLAGS);
    if (len == 0)
        return CPAR_EINVAL;
    if (zmq_msg_init_size(frame, len) != 0)
        return CPAR_ENOMEM;
    if (len <= sizeof buf) {
        memcpy(zmq_msg_data(frame), buf, len);
    } else if (json_dumpb(v, zmq_msg_data(frame), len, CPAR_WIRE_JSON_FLAGS) != len) {
        zmq_msg_close(frame);
        return CPAR_EINTERNAL;
    }
    return 0;
}

static json_t **json_slot(cpar_msg_t *m, int part)
{
    switch (part) {
    case CPAR_PART_HEADER:
        return &m->header;
    case CPAR_PART_PARENT:
        return &m->parent;
    case CPAR_PART_METADATA:
        return &m->metadata;
    case CPAR_PART_CONTENT:
        return &m->content;
    default:
        return NULL;
    }
}

/* NUL escapes are kept (strings may then be longer than their C string); an integer beyond
 * json_int_t would fail the whole part, so such a part is read again with every integer as a
 * real rather than dropped. Invalid UTF-8 is rejected. */
static json_t *json_parse_object(zmq_msg_t *frame)
{
    const char *data = zmq_msg_data(frame);
    size_t len = zmq_msg_size(frame);
    json_error_t err;
    json_t *v;

    v = json_loadb(data, len, JSON_ALLOW_NUL, &err);
    if (!v && json_error_code(&err) == json_error_numeric_overflow)
        v = json_loadb(data, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

int cpar_msg_parse(cpar_msg_t *m, unsigned parts)
{
    if (m->delim == CPAR_NO_DELIM && cpar_msg_split(m) != 0)
        return CPAR_EPROTO;
    for (int part = CPAR_PART_HEADER; part <= CPAR_PART_CONTENT; part++) {
        json_t **slot = json_slot(m, part);

        if (!(parts & (1u << (part - CPAR_PART_HEADER))) || *slot)
            continue;
        *slot = json_parse_object(cpar_msg_part(m, part));
        if (!*slot)
            return CPAR_EPROTO;
    }
    return 0;
}

int cpar_msg_set_part(cpar_msg_t *m, int part, json_t *value)
{
    json_t **slot = json_slot(m, part);
    zmq_msg_t frame, *old;
    int rc;

    if (!slot || m->delim == CPAR_NO_DELIM)
        return CPAR_EINVAL;
    rc = cpar_wire_frame_json(&frame, value);
    if (rc != 0)
        return rc;
    old = cpar_msg_part(m, part);
    m->total = m->total - zmq_msg_size(old) + zmq_msg_size(&frame);
    zmq_msg_close(old);
    *old = frame;
    json_incref(value);
    json_decref(*slot);
    *slot = value;
    return 0;
}

const char *cpar_msg_type(const cpar_msg_t *m)
{
    return json_string_value(json_object_get(m->header, "msg_type"));
}

const char *cpar_msg_id(const cpar_msg_t *m)
{
    return json_string_value(json_object_get(m->header, "msg_id"));
}

const char *cpar_msg_parent_id(const cpar_msg_t *m)
{
    return json_string_value(json_object_get(m->parent, "msg_id"));
}

char *cpar_json_dumps(const json_t *value)
{
    return json_dumps(value, CPAR_WIRE_JSON_FLAGS | JSON_ENCODE_ANY);
}

json_t *cpar_error_content(const char *ename, const char *evalue)
{
    json_t *o = json_object();
    json_t *tb = json_array();

    if (!ename)
        ename = "Exception";
    if (!evalue)
        evalue = "";
    if (!o || !tb || json_object_set_new(o, "status", json_string("error")) != 0 ||
        json_object_set_new(o, "ename", json_string(ename)) != 0 ||
        json_object_set_new(o, "evalue", json_string(evalue)) != 0 ||
        json_array_append_new(tb, json_sprintf("%s: %s", ename, evalue)) != 0 ||
        json_object_set(o, "traceback", tb) != 0 ||
        json_object_set_new(o, "engine_info", json_object()) != 0) {
        json_decref(tb);
        json_decref(o);
        return NULL;
    }
    json_decref(tb);
    return o;
}
