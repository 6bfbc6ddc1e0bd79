/*
 * mongodb.h - what the files of cpar_dbbackend_mongodb.so share: the JSON <-> BSON conversions
 * (json.c), the connection settings (settings.c) and the translation of a query tree into a
 * MongoDB filter (query.c). Internal to the plugin; nothing here is exported.
 */
#ifndef CPAR_DBBACKEND_MONGODB_H
#define CPAR_DBBACKEND_MONGODB_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <cparallel/dbbackend.h>

/*
 * The bookkeeping fields beside a record field f: "_<f>_us" (a datetime's exact µs), "_<f>_json"
 * (how a dict's text comes back) and "_<f>_gen" (which chunks hold a large buffer field).
 */
#define MONGODB_US_SUFFIX "_us"
#define MONGODB_JSON_SUFFIX "_json"
#define MONGODB_GEN_SUFFIX "_gen"
#define MONGODB_EXTRA_MAX 64 /* room for "_" + the longest field name + suffix + NUL */

/* "_<name><suffix>" into out[MONGODB_EXTRA_MAX]. */
void mongodb_extra_name(char *out, const char *name, const char *suffix);

/* A record datetime (µs) as a BSON datetime (ms), rounded down so that order is kept. */
static inline int64_t mongodb_us_to_ms(int64_t us)
{
    return us / 1000 - (us % 1000 < 0);
}

/* 1 when the record field `name` (no dotted path) is a datetime: submitted, started, ... */
int mongodb_is_date_field(const char *name);

/* ---- json.c ------------------------------------------------------------------------------ */

/* How a JSON object's text comes back from its document (see mongodb_json_to_bson). */
enum {
    MONGODB_JSON_COMPACT = 0, /* mongodb_json_from_bson(doc, 0) gives the text back exactly */
    MONGODB_JSON_SPACED = 1,  /* mongodb_json_from_bson(doc, 1) does */
    MONGODB_JSON_VERBATIM = 2 /* neither: the text must be kept beside the document */
};

/*
 * Parse `text`, a JSON object, into the empty document `out` (bson_init'ed by the caller):
 * objects become documents, arrays arrays, integers int32 or int64, reals doubles. Sets *style
 * to the MONGODB_JSON_* style that gives `text` back byte for byte. CPAR_EINVAL (out left empty)
 * when the text is no JSON object, or when it cannot be stored as a document as it is: a key that
 * is empty, holds a '.' or a NUL, or starts with '$', or an integer beyond int64. CPAR_ENOMEM.
 */
int mongodb_json_to_bson(const char *text, bson_t *out, int *style);

/*
 * Append the JSON value `text` (a list or an object) as `key` to `b`. CPAR_EINVAL when it does not
 * parse or cannot be stored (as above).
 */
int mongodb_json_append(bson_t *b, const char *key, const char *text);

/*
 * The value at `it` (a document or an array, or any other BSON value) as JSON text: compact (the
 * hub's style) or `spaced` with ", " and ": " (Python's json.dumps default), UTF-8 kept as is,
 * control characters escaped, reals as Python's repr writes them. BSON types JSON has no place
 * for become: datetimes ISO-8601 text, ObjectIds hex text, binary base64 text, others null.
 * Returns malloc'ed text, or NULL when out of memory.
 */
char *mongodb_json_from_iter(const bson_iter_t *it, int spaced);

/* Same for a whole document. */
char *mongodb_json_from_bson(const bson_t *doc, int spaced);

/* ---- settings.c -------------------------------------------------------------------------- */

/*
 * The connection string for the MongoDB section: `url` when set (non-empty), else one built from
 * connection_args (JSON list, or NULL) and connection_kwargs (JSON dict, or NULL) as pymongo's
 * MongoClient(*args, **kwargs) reads them. 0 and a malloc'ed *uri_out, or CPAR_ECONFIG /
 * CPAR_ENOMEM with one line in err naming the setting.
 */
int mongodb_settings_uri(const char *url, const char *args_json, const char *kwargs_json,
                         char **uri_out, char *err, size_t errlen);

/* `uri` with its password, if any, replaced by "***", for messages. malloc'ed, or NULL. */
char *mongodb_settings_display(const char *uri);

/* ---- query.c ----------------------------------------------------------------------------- */

/*
 * Translate `q` into the MongoDB filter `filter` (bson_init'ed by the caller). Sets *exact to 1
 * when the filter selects exactly the records q does, to 0 when it selects a superset: then check
 * each candidate with cpar_query_match, reading at least the fields *tested names. 0, or
 * CPAR_EINVAL / CPAR_ENOMEM with one line in err.
 */
int mongodb_query_filter(const cpar_query_t *q, bson_t *filter, int *exact, uint32_t *tested,
                         char *err, size_t errlen);

/*
 * A POSIX extended regular expression as a MongoDB (PCRE, UTF-8) pattern, used with $options "s",
 * that matches at least the texts the expression matches over bytes: '$' only at the very end, a
 * backslash inside a bracket expression literal, a '.' or negated class matching one byte made
 * optional. Returns malloc'ed text, or NULL when it declines (non-ASCII patterns, classes such as
 * [:alpha:], GNU's backslash operators, ...) or runs out of memory.
 */
char *mongodb_regex_from_ere(const char *ere);

/* The same for an fnmatch(3) pattern (flags 0), anchored at both ends. */
char *mongodb_regex_from_glob(const char *glob);

#endif /* CPAR_DBBACKEND_MONGODB_H */
