/*
 * query.h - a client's Mongo-style task-record query, parsed into the tree backends receive.
 *
 * db_request, purge_request, resubmit_request and result_request carry queries as JSON; the hub
 * parses and validates them here once, so that every dbbackend gets the same shape
 * (sdk/proto/query.proto) and a bad query is refused before any backend runs it.
 */
#ifndef CPAR_WIRE_QUERY_H
#define CPAR_WIRE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <cparallel/dbbackend.h>

/*
 * Parse the JSON object `json` (len bytes) into a new query. On failure returns CPAR_EINVAL and
 * writes into err one line a client can read, shaped like ipyparallel's KeyError texts, such as
 * "Unsupported operator '$where' for key 'engine_uuid'" or "Illegal testing key 'bogus'".
 */
int cpar_query_parse(const char *json, size_t len, cpar_query_t **out, char *err, size_t errlen);

/* Free a query from cpar_query_parse or cpar_query_new_ids. NULL is ignored. */
void cpar_query_free(cpar_query_t *q);

/* A query {"msg_id": {"$in": ids}} (n may be 0: it matches nothing). */
int cpar_query_new_ids(const char *const *ids, size_t n, cpar_query_t **out);

/*
 * The `keys` of a db_request: a JSON array of field names, a single name, or null/absent
 * (json NULL or "null": every field but the buffers, as ipyparallel answers). Sets *fields to
 * their cpar_record_field_t bits. CPAR_EINVAL with "Bad record key(s): ..." in err for a name
 * that is no record field.
 */
int cpar_query_parse_keys(const char *json, size_t len, uint32_t *fields, char *err,
                          size_t errlen);

#endif /* CPAR_WIRE_QUERY_H */
