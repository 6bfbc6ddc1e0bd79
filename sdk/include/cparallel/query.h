/*
 * cparallel/query.h - helpers for task-record queries, shipped in libcparallel-proto.
 *
 * A backend that keeps records in memory (or fetches candidates some other way) can decide
 * whether a record matches a query with cpar_query_match, which is the reference for the
 * semantics written in sdk/proto/query.proto: every backend must select the same records.
 */
#ifndef CPARALLEL_QUERY_H
#define CPARALLEL_QUERY_H

#include <stdint.h>

#include <cparallel/dbbackend.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The record fields by how queries see them (cpar_record_field_t bits). JSON fields hold a JSON
 * object as text, and a dotted key ("header.msg_type") looks into them. Date fields hold
 * microseconds and compare with query dates. Buffer fields compare only with None (EQ/NE null,
 * EXISTS). Every other field is text.
 */
#define CPAR_REC_JSON_FIELDS                                                                   \
    (CPAR_REC_HEADER | CPAR_REC_METADATA | CPAR_REC_CONTENT | CPAR_REC_RESULT_HEADER |        \
     CPAR_REC_RESULT_METADATA | CPAR_REC_RESULT_CONTENT | CPAR_REC_EXECUTE_RESULT |           \
     CPAR_REC_ERROR | CPAR_REC_DISPLAY_DATA)
#define CPAR_REC_DATE_FIELDS                                                                   \
    (CPAR_REC_SUBMITTED | CPAR_REC_STARTED | CPAR_REC_COMPLETED | CPAR_REC_RECEIVED)
#define CPAR_REC_BUFFER_FIELDS (CPAR_REC_BUFFERS | CPAR_REC_RESULT_BUFFERS)

/*
 * 1 when `rec` satisfies every term of `q` (a query without terms matches every record), 0 when
 * not, CPAR_EINVAL for a malformed query (an unknown field, a missing or mistyped argument, a
 * regular expression that does not compile), CPAR_ENOMEM. The whole query is checked before any
 * term is evaluated, so whether it is malformed does not depend on the record. Thread-safe.
 */
int cpar_query_match(const cpar_query_t *q, const cpar_record_t *rec);

/*
 * The record field named `name` (record.proto's names, e.g. "engine_uuid"): its
 * cpar_record_field_t bit, or 0 for msg_id, or -1 when there is no such field. A dotted path
 * ("header.msg_type") is looked up by its first component, which must be one of
 * CPAR_REC_JSON_FIELDS, and no component may be empty ("header..x", "stdout.x": -1). So a key
 * is valid in a query exactly when this is not -1.
 */
int64_t cpar_record_field_bit(const char *name);

/* The name of the field with cpar_record_field_t bit `bit` (one bit), or NULL. */
const char *cpar_record_field_name(uint32_t bit);

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_QUERY_H */
