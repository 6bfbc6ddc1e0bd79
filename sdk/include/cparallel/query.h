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

/* 1 when `rec` satisfies every term of `q`, 0 when not, CPAR_EINVAL for a malformed query. */
int cpar_query_match(const cpar_query_t *q, const cpar_record_t *rec);

/*
 * The record field named `name` (record.proto's names, e.g. "engine_uuid"): its
 * cpar_record_field_t bit, or 0 for msg_id, or -1 when there is no such field. A dotted path
 * ("header.msg_type") is looked up by its first component.
 */
int64_t cpar_record_field_bit(const char *name);

/* The name of the field with cpar_record_field_t bit `bit` (one bit), or NULL. */
const char *cpar_record_field_name(uint32_t bit);

#ifdef __cplusplus
}
#endif
#endif /* CPARALLEL_QUERY_H */
