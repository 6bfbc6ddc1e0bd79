/*
 * functions.c - the SQL functions compiled queries call, where SQLite's own differ from the
 * semantics of query.proto: POSIX extended regular expressions (SQLite has no REGEXP of its own),
 * fnmatch(3) globs (SQLite's GLOB has no backslash escapes and other bracket rules), and
 * equality of JSON lists and objects as the reference matcher has it (jansson's json_equal: key
 * order does not matter, 1 and 1.0 differ).
 *
 * The pattern and JSON arguments are bound parameters, so each is compiled or parsed once per
 * statement run and kept as SQLite auxiliary data.
 */
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sqlitedb.h"

/* ---- regexp(pattern, text) ---------------------------------------------------------------- */

static void sqlitedb_regex_free(void *p)
{
    regfree(p);
    free(p);
}

static void sqlitedb_fn_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *pattern = (const char *)sqlite3_value_text(argv[0]);
    regex_t *re = sqlite3_get_auxdata(ctx, 0);
    const char *text;

    (void)argc;
    if (!pattern || sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
        sqlite3_result_int(ctx, 0);
        return;
    }
    if (!re) {
        int rc;

        re = malloc(sizeof *re);
        if (!re) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
        rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char msg[256], full[512];

            regerror(rc, re, msg, sizeof msg);
            free(re);
            snprintf(full, sizeof full, "regular expression '%.200s': %s", pattern, msg);
            sqlite3_result_error(ctx, full, -1);
            return;
        }
        sqlite3_set_auxdata(ctx, 0, re, sqlitedb_regex_free);
        re = sqlite3_get_auxdata(ctx, 0);
        if (!re) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
    }
    text = (const char *)sqlite3_value_text(argv[1]);
    sqlite3_result_int(ctx, text && regexec(re, text, 0, NULL, 0) == 0);
}

/* ---- cpar_glob(pattern, text) ------------------------------------------------------------- */

static void sqlitedb_fn_glob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *pattern = (const char *)sqlite3_value_text(argv[0]);
    const char *text;

    (void)argc;
    if (!pattern || sqlite3_value_type(argv[1]) != SQLITE_TEXT) {
        sqlite3_result_int(ctx, 0);
        return;
    }
    text = (const char *)sqlite3_value_text(argv[1]);
    sqlite3_result_int(ctx, text && fnmatch(pattern, text, 0) == 0);
}

/* ---- cpar_json_eq(a, b) ------------------------------------------------------------------- */

static void sqlitedb_json_free(void *p)
{
    json_decref(p);
}

/* JSON text as a tree, as the reference matcher reads it (too large integers as reals). */
static json_t *sqlitedb_json_load(sqlite3_value *v)
{
    const char *text = (const char *)sqlite3_value_text(v);
    size_t len = (size_t)sqlite3_value_bytes(v);
    json_error_t err;
    json_t *j;

    if (sqlite3_value_type(v) != SQLITE_TEXT || !text)
        return NULL;
    j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j && json_error_code(&err) == json_error_numeric_overflow)
        j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    return j;
}

static void sqlitedb_fn_json_eq(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    json_t *b = sqlite3_get_auxdata(ctx, 1), *a;

    (void)argc;
    if (!b) {
        b = sqlitedb_json_load(argv[1]);
        if (!b) {
            sqlite3_result_int(ctx, 0);
            return;
        }
        sqlite3_set_auxdata(ctx, 1, b, sqlitedb_json_free);
        b = sqlite3_get_auxdata(ctx, 1);
        if (!b) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
    }
    a = sqlitedb_json_load(argv[0]);
    sqlite3_result_int(ctx, a && json_equal(a, b));
    json_decref(a);
}

int sqlitedb_functions_register(sqlite3 *conn)
{
    static const struct {
        const char *name;
        int nargs, flags;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"regexp", 2, SQLITE_DETERMINISTIC, sqlitedb_fn_regexp},
        {"cpar_glob", 2, SQLITE_DETERMINISTIC, sqlitedb_fn_glob},
        {"cpar_json_eq", 2, SQLITE_DETERMINISTIC, sqlitedb_fn_json_eq},
    };

    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        int rc = sqlite3_create_function_v2(conn, fns[i].name, fns[i].nargs,
                                            SQLITE_UTF8 | SQLITE_INNOCUOUS | fns[i].flags, NULL,
                                            fns[i].fn, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}
