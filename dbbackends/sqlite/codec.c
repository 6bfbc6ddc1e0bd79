/*
 * codec.c - task records to table rows and back.
 *
 * One column per field of record.proto, named after it, driven by the protobuf-c descriptor so
 * that a field added to the schema gets a column without code here:
 *
 *   string fields  TEXT     (JSON objects as their text, as the hub made it)
 *   sint64 fields  INTEGER  (datetimes: microseconds since the epoch, UTC)
 *   bytes lists    BLOB     NULL for no items; else each item as its length (unsigned LEB128
 *                           varint) followed by its bytes, so an item of 0 bytes is one 0x00
 *
 * An absent field is NULL.
 */
#include <stdlib.h>
#include <string.h>

#include "sqlitedb.h"

#define SQLITEDB_AT(rec, off) ((void *)((char *)(rec) + (off)))

const ProtobufCFieldDescriptor *sqlitedb_field(unsigned number)
{
    return protobuf_c_message_descriptor_get_field(&cpar__record__descriptor, number);
}

const ProtobufCFieldDescriptor *sqlitedb_field_named(const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(&cpar__record__descriptor, name);
}

uint32_t sqlitedb_field_bit(const ProtobufCFieldDescriptor *f)
{
    return f->id >= 2 && f->id <= 33 ? 1u << (f->id - 2) : 0;
}

static int sqlitedb_field_is_list(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_REPEATED;
}

const char *sqlitedb_field_sqltype(const ProtobufCFieldDescriptor *f)
{
    if (sqlitedb_field_is_list(f))
        return "BLOB";
    return f->type == PROTOBUF_C_TYPE_STRING ? "TEXT" : "INTEGER";
}

/* ---- the buffers framing ------------------------------------------------------------------ */

static size_t sqlitedb_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* 0 at the end of the data or on a malformed varint. */
static size_t sqlitedb_varint_get(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t x = 0;

    for (size_t i = 0; i < len && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

/* Count the items of a framed blob; -1 when it is not one. */
static long sqlitedb_frames_count(const uint8_t *p, size_t len)
{
    long n = 0;

    while (len) {
        uint64_t item;
        size_t h = sqlitedb_varint_get(p, len, &item);

        if (!h || item > len - h)
            return -1;
        p += h + item;
        len -= h + item;
        n++;
    }
    return n;
}

int sqlitedb_bind_field(sqlitedb_t *db, sqlite3_stmt *stmt, int param, const cpar_record_t *rec,
                        const ProtobufCFieldDescriptor *f, size_t *bytes)
{
    int rc;

    if (sqlitedb_field_is_list(f)) {
        size_t n = *(const size_t *)SQLITEDB_AT(rec, f->quantifier_offset);
        const ProtobufCBinaryData *items =
            *(ProtobufCBinaryData *const *)SQLITEDB_AT(rec, f->offset);
        size_t size = 0;
        uint8_t *blob, *p;

        if (!n) {
            rc = sqlite3_bind_null(stmt, param);
        } else {
            for (size_t i = 0; i < n; i++)
                size += 10 + items[i].len;
            blob = malloc(size);
            if (!blob)
                return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory framing %s of %s", f->name,
                                     rec->msg_id);
            p = blob;
            for (size_t i = 0; i < n; i++) {
                p += sqlitedb_varint_put(p, items[i].len);
                if (items[i].len)
                    memcpy(p, items[i].data, items[i].len);
                p += items[i].len;
            }
            *bytes += (size_t)(p - blob);
            /* SQLite owns the blob from here, also when binding fails. */
            rc = sqlite3_bind_blob64(stmt, param, blob, (sqlite3_uint64)(p - blob), free);
        }
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)SQLITEDB_AT(rec, f->offset);

        if (s) {
            size_t len = strlen(s);
            *bytes += len;
            rc = sqlite3_bind_text64(stmt, param, s, len, SQLITE_STATIC, SQLITE_UTF8);
        } else {
            rc = sqlite3_bind_null(stmt, param);
        }
    } else {
        protobuf_c_boolean has =
            *(const protobuf_c_boolean *)SQLITEDB_AT(rec, f->quantifier_offset);

        if (has)
            rc = sqlite3_bind_int64(stmt, param, *(const int64_t *)SQLITEDB_AT(rec, f->offset));
        else
            rc = sqlite3_bind_null(stmt, param);
    }
    if (rc != SQLITE_OK)
        return sqlitedb_fail(db, rc == SQLITE_NOMEM ? CPAR_ENOMEM : CPAR_EIO,
                             "cannot bind %s of %s: %s", f->name, rec->msg_id, sqlite3_errstr(rc));
    return 0;
}

static int sqlitedb_row_list(sqlitedb_t *db, sqlite3_stmt *stmt, int col, cpar_record_t *rec,
                             const ProtobufCFieldDescriptor *f, sqlitedb_rowbufs_t *rb)
{
    int type = sqlite3_column_type(stmt, col);
    size_t which = rb->nused;
    const uint8_t *p;
    size_t len;
    ProtobufCBinaryData *items;
    long n;

    if (type == SQLITE_NULL)
        return 0;
    p = sqlite3_column_blob(stmt, col);
    len = (size_t)sqlite3_column_bytes(stmt, col);
    n = type == SQLITE_BLOB ? sqlitedb_frames_count(p, len) : -1;
    if (n < 0)
        return sqlitedb_fail(db, CPAR_EIO, "record %s: column %s does not hold framed buffers",
                             rec->msg_id ? rec->msg_id : "?", f->name);
    if (n == 0)
        return 0;
    if (which >= SQLITEDB_ROWLISTS)
        return sqlitedb_fail(db, CPAR_EINTERNAL, "more list fields than SQLITEDB_ROWLISTS");
    rb->nused++;
    if ((size_t)n <= sizeof rb->small[which] / sizeof rb->small[which][0]) {
        items = rb->small[which];
    } else {
        items = malloc((size_t)n * sizeof *items);
        if (!items)
            return sqlitedb_fail(db, CPAR_ENOMEM, "out of memory reading %s", f->name);
        rb->heap[which] = items;
    }
    for (long i = 0; i < n; i++) {
        uint64_t item = 0;
        size_t h = sqlitedb_varint_get(p, len, &item);

        items[i].len = (size_t)item;
        items[i].data = item ? (uint8_t *)(uintptr_t)(p + h) : NULL;
        p += h + item;
        len -= h + item;
    }
    *(ProtobufCBinaryData **)SQLITEDB_AT(rec, f->offset) = items;
    *(size_t *)SQLITEDB_AT(rec, f->quantifier_offset) = (size_t)n;
    return 0;
}

int sqlitedb_row_record(sqlitedb_t *db, sqlite3_stmt *stmt,
                        const ProtobufCFieldDescriptor *const *cols, size_t ncols,
                        cpar_record_t *rec, sqlitedb_rowbufs_t *rb)
{
    memset(rb, 0, sizeof *rb);
    for (size_t i = 0; i < ncols; i++) {
        const ProtobufCFieldDescriptor *f = cols[i];
        int col = (int)i, type = sqlite3_column_type(stmt, col);

        if (sqlitedb_field_is_list(f)) {
            int rc = sqlitedb_row_list(db, stmt, col, rec, f, rb);
            if (rc) {
                sqlitedb_rowbufs_free(rb);
                return rc;
            }
        } else if (type == SQLITE_NULL) {
            continue;
        } else if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = (const char *)sqlite3_column_text(stmt, col);
            *(const char **)SQLITEDB_AT(rec, f->offset) = s ? s : "";
        } else {
            *(protobuf_c_boolean *)SQLITEDB_AT(rec, f->quantifier_offset) = 1;
            *(int64_t *)SQLITEDB_AT(rec, f->offset) = sqlite3_column_int64(stmt, col);
        }
    }
    return 0;
}

void sqlitedb_rowbufs_free(sqlitedb_rowbufs_t *rb)
{
    for (size_t i = 0; i < SQLITEDB_ROWLISTS; i++) {
        free(rb->heap[i]);
        rb->heap[i] = NULL;
    }
    rb->nused = 0;
}
