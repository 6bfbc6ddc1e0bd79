/*
 * jsonconf.c - the reader of <prog>_config.json: {"Section": {"trait": value}}, as traitlets'
 * JSONFileConfigLoader reads it (a top-level "version": 1 is allowed).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

/*
 * The line of the key `key` of the object at `depth` (1: the top-level object) that lies inside
 * the value of the top-level key `within` (NULL for depth 1), found by scanning the text; 0 when
 * not found (a key written with escapes, for one).
 */
static int key_line(const char *s, size_t len, const char *within, const char *key, int depth)
{
    size_t wl = within ? strlen(within) : 0, kl = strlen(key);
    int line = 1, d = 0, inside = within == NULL;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '\n') {
            line++;
        } else if (c == '{' || c == '[') {
            d++;
        } else if (c == '}' || c == ']') {
            d--;
            if (within && d < 2)
                inside = 0;
        } else if (c == '"') {
            size_t start = ++i, j;

            while (i < len && s[i] != '"') {
                if (s[i] == '\\')
                    i++;
                else if (s[i] == '\n')
                    line++;
                i++;
            }
            for (j = i + 1;
                 j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n'); j++)
                ;
            if (j >= len || s[j] != ':')
                continue;
            if (within && d == 1)
                inside = i - start == wl && !memcmp(s + start, within, wl);
            if (d == depth && inside && i - start == kl && !memcmp(s + start, key, kl))
                return line;
        }
    }
    return 0;
}

static int json_fail(char *err, size_t errlen, const char *path, int line, const char *fmt,
                     const char *arg)
{
    char what[200];

    snprintf(what, sizeof what, fmt, arg);
    if (line > 0)
        snprintf(err, errlen, "%s:%d: %s", path, line, what);
    else
        snprintf(err, errlen, "%s: %s", path, what);
    return CPAR_ECONFIG;
}

int cpar_config_load_json(cpar_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    json_error_t jerr;
    json_t *root = NULL, *sect;
    const char *name;
    int rc;

    if (!cfg || !path)
        return CPAR_EINVAL;
    rc = cpar_cfg_read_file(path, &data, &len);
    if (rc == CPAR_ENOENT)
        return 0;
    if (rc == CPAR_ENOMEM) {
        snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    if (rc < 0)
        return json_fail(err, errlen, path, 0, "cannot read: %s", strerror(errno));
    root = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        rc = json_fail(err, errlen, path, jerr.line > 0 ? jerr.line : 1, "%s", jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = json_fail(err, errlen, path, 1, "%s",
                       "expected an object of sections {\"Section\": {\"trait\": value}}");
        goto out;
    }
    /* check everything first, so that a bad file sets nothing */
    json_object_foreach(root, name, sect)
    {
        if (!strcmp(name, "version")) {
            if (!json_is_integer(sect) || json_integer_value(sect) != 1) {
                rc = json_fail(err, errlen, path, key_line(data, len, NULL, name, 1), "%s",
                               "unsupported config file version (only 1)");
                goto out;
            }
            continue;
        }
        if (!*name || strchr(name, '.')) {
            rc = json_fail(err, errlen, path, key_line(data, len, NULL, name, 1),
                           "bad section name \"%s\"", name);
            goto out;
        }
        if (!json_is_object(sect)) {
            rc = json_fail(err, errlen, path, key_line(data, len, NULL, name, 1),
                           "section \"%s\" must be an object of traits", name);
            goto out;
        }
        if (json_object_get(sect, "")) {
            rc = json_fail(err, errlen, path, key_line(data, len, NULL, name, 1),
                           "empty trait name in section \"%s\"", name);
            goto out;
        }
    }
    json_object_foreach(root, name, sect)
    {
        const char *trait;
        json_t *v;

        if (!strcmp(name, "version"))
            continue;
        json_object_foreach(sect, trait, v)
        {
            char origin[512];
            int line = key_line(data, len, name, trait, 2);

            if (line > 0)
                snprintf(origin, sizeof origin, "%s:%d", path, line);
            else
                snprintf(origin, sizeof origin, "%s", path);
            rc = cpar_config_set(cfg, name, trait, json_incref(v), CPAR_SRC_JSON, origin);
            if (rc < 0) {
                snprintf(err, errlen, "%s: %s", path, cpar_strerror(rc));
                goto out;
            }
        }
    }
    rc = 0;
out:
    json_decref(root);
    free(data);
    return rc;
}
