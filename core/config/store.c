/*
 * store.c - the settings store: one entry per "Section.trait" with its value, source and origin,
 * the typed readers with traitlets' conversions, and the unknown-setting check.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cparallel/errors.h>

#include "util/log.h"

typedef struct cfg_entry {
    char *section;
    char *key;
    json_t *value;
    cpar_cfg_source_t src;
    char *origin;
    char *raw; /* the command-line/environment text of a scalar, or NULL */
} cfg_entry_t;

struct cpar_config {
    cfg_entry_t *v;
    size_t n, cap;
};

cpar_config_t *cpar_config_new(void)
{
    return calloc(1, sizeof(cpar_config_t));
}

static void entry_clear(cfg_entry_t *e)
{
    free(e->section);
    free(e->key);
    json_decref(e->value);
    free(e->origin);
    free(e->raw);
}

void cpar_config_free(cpar_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        entry_clear(&cfg->v[i]);
    free(cfg->v);
    free(cfg);
}

static cfg_entry_t *find(const cpar_config_t *cfg, const char *section, const char *key)
{
    if (!cfg || !section || !key)
        return NULL;
    for (size_t i = 0; i < cfg->n; i++)
        if (!strcmp(cfg->v[i].key, key) && !strcmp(cfg->v[i].section, section))
            return &cfg->v[i];
    return NULL;
}

static int is_text_source(cpar_cfg_source_t src)
{
    return src == CPAR_SRC_CLI || src == CPAR_SRC_ENV;
}

/* The text a number or bool was given as, for values without one (flags). */
static char *scalar_text(const json_t *v)
{
    char buf[64];

    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, sizeof buf, "True");
    else if (json_is_false(v))
        snprintf(buf, sizeof buf, "False");
    else
        return NULL;
    return strdup(buf);
}

int cpar_config_set_raw(cpar_config_t *cfg, const char *section, const char *key, json_t *value,
                        cpar_cfg_source_t src, const char *origin, const char *raw)
{
    cfg_entry_t *e, fresh = {0};

    if (!value)
        return CPAR_EINVAL;
    if (!cfg || !section || !*section || !key || !*key || src < CPAR_SRC_DEFAULT ||
        src > CPAR_SRC_CLI) {
        json_decref(value);
        return CPAR_EINVAL;
    }
    e = find(cfg, section, key);
    if (e && e->src > src) {
        json_decref(value);
        return 0;
    }
    fresh.value = value;
    fresh.src = src;
    fresh.origin = strdup(origin ? origin : "");
    if (is_text_source(src) && (json_is_number(value) || json_is_boolean(value)))
        fresh.raw = raw ? strdup(raw) : scalar_text(value);
    if (!fresh.origin ||
        (is_text_source(src) && (json_is_number(value) || json_is_boolean(value)) && !fresh.raw))
        goto nomem;
    if (e) {
        json_decref(e->value);
        free(e->origin);
        free(e->raw);
        e->value = fresh.value;
        e->src = fresh.src;
        e->origin = fresh.origin;
        e->raw = fresh.raw;
        return 0;
    }
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 32;
        cfg_entry_t *v = realloc(cfg->v, cap * sizeof *v);

        if (!v)
            goto nomem;
        cfg->v = v;
        cfg->cap = cap;
    }
    fresh.section = strdup(section);
    fresh.key = strdup(key);
    if (!fresh.section || !fresh.key)
        goto nomem;
    cfg->v[cfg->n++] = fresh;
    return 0;
nomem:
    entry_clear(&fresh);
    return CPAR_ENOMEM;
}

int cpar_config_set(cpar_config_t *cfg, const char *section, const char *key, json_t *value,
                    cpar_cfg_source_t src, const char *origin)
{
    return cpar_config_set_raw(cfg, section, key, value, src, origin, NULL);
}

int cpar_config_set_dotted(cpar_config_t *cfg, const char *dotted, json_t *value,
                           cpar_cfg_source_t src, const char *origin)
{
    const char *dot = dotted ? strrchr(dotted, '.') : NULL;
    char *section;
    int rc;

    if (!value)
        return CPAR_EINVAL;
    if (!dot || dot == dotted || !dot[1]) {
        json_decref(value);
        return CPAR_EINVAL;
    }
    section = strndup(dotted, (size_t)(dot - dotted));
    if (!section) {
        json_decref(value);
        return CPAR_ENOMEM;
    }
    rc = cpar_config_set(cfg, section, dot + 1, value, src, origin);
    free(section);
    return rc;
}

json_t *cpar_config_get(const cpar_config_t *cfg, const char *section, const char *key)
{
    cfg_entry_t *e = find(cfg, section, key);

    return e ? e->value : NULL;
}

const char *cpar_config_origin(const cpar_config_t *cfg, const char *section, const char *key)
{
    cfg_entry_t *e = find(cfg, section, key);

    return e ? e->origin : NULL;
}

cpar_cfg_source_t cpar_config_source(const cpar_config_t *cfg, const char *section, const char *key)
{
    cfg_entry_t *e = find(cfg, section, key);

    return e ? e->src : CPAR_SRC_DEFAULT;
}

const char *cpar_config_pick_section(const cpar_config_t *cfg, const char *const *sections,
                                     const char *key)
{
    const char *best = NULL;
    cpar_cfg_source_t best_src = CPAR_SRC_DEFAULT;

    for (size_t i = 0; sections && sections[i]; i++) {
        cfg_entry_t *e = find(cfg, sections[i], key);

        if (e && !json_is_null(e->value) && (!best || e->src > best_src)) {
            best = sections[i];
            best_src = e->src;
        }
    }
    return best;
}

/* ---- typed reads ----------------------------------------------------------------------- */

/* The entry to convert, or NULL with *rc set (CPAR_ENOENT when unset or None). */
static cfg_entry_t *typed_entry(const cpar_config_t *cfg, const char *section, const char *key,
                                int *rc)
{
    cfg_entry_t *e = find(cfg, section, key);

    if (!e || json_is_null(e->value)) {
        *rc = CPAR_ENOENT;
        return NULL;
    }
    *rc = 0;
    return e;
}

static int wrong_type(const cfg_entry_t *e, const char *expected)
{
    char *text = json_dumps(e->value, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = text ? strlen(text) : 0;

    cpar_warn("config: %s.%s = %.*s%s (from %s) is not %s; ignored", e->section, e->key,
              len > 60 ? 60 : (int)len, text ? text : "?", len > 60 ? "..." : "",
              e->origin[0] ? e->origin : "?", expected);
    free(text);
    return CPAR_EINVAL;
}

/* A text given on the command line or in the environment, for conversion. */
static const char *given_text(const cfg_entry_t *e)
{
    if (!is_text_source(e->src))
        return NULL;
    if (json_is_string(e->value))
        return json_string_value(e->value);
    return NULL;
}

int cpar_config_string(const cpar_config_t *cfg, const char *section, const char *key,
                       const char **out)
{
    int rc;
    cfg_entry_t *e = typed_entry(cfg, section, key, &rc);

    if (!e)
        return rc;
    if (json_is_string(e->value)) {
        *out = json_string_value(e->value);
        return 0;
    }
    if (e->raw) {
        *out = e->raw;
        return 0;
    }
    return wrong_type(e, "a string");
}

/* Python's int(): blanks around, a sign, decimal digits with single '_' between them. */
static int parse_int_text(const char *s, int64_t *out)
{
    char digits[32];
    size_t n = 0;
    int neg = 0;
    char *end;
    long long v;

    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s < '0' || *s > '9')
        return CPAR_EINVAL;
    if (neg)
        digits[n++] = '-';
    for (; (*s >= '0' && *s <= '9') || *s == '_'; s++) {
        if (*s == '_') {
            if (s[1] < '0' || s[1] > '9')
                return CPAR_EINVAL;
            continue;
        }
        if (n + 1 >= sizeof digits)
            return CPAR_EINVAL;
        digits[n++] = *s;
    }
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (*s)
        return CPAR_EINVAL;
    digits[n] = '\0';
    errno = 0;
    v = strtoll(digits, &end, 10);
    if (errno || *end)
        return CPAR_EINVAL;
    *out = v;
    return 0;
}

int cpar_config_int(const cpar_config_t *cfg, const char *section, const char *key, int64_t *out)
{
    int rc;
    cfg_entry_t *e = typed_entry(cfg, section, key, &rc);
    const char *text;
    int64_t v;

    if (!e)
        return rc;
    if (json_is_integer(e->value)) {
        *out = json_integer_value(e->value);
        return 0;
    }
    if ((text = given_text(e)) && parse_int_text(text, &v) == 0) {
        *out = v;
        return 0;
    }
    return wrong_type(e, "an integer");
}

int cpar_config_double(const cpar_config_t *cfg, const char *section, const char *key, double *out)
{
    int rc;
    cfg_entry_t *e = typed_entry(cfg, section, key, &rc);
    const char *text;

    if (!e)
        return rc;
    if (json_is_number(e->value)) {
        *out = json_number_value(e->value);
        return 0;
    }
    if ((text = given_text(e)) && *text && !strpbrk(text, "xX")) {
        char *end;
        double v;

        errno = 0;
        v = strtod(text, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n')
            end++;
        if (!*end && end != text && errno != ERANGE) {
            *out = v;
            return 0;
        }
    }
    return wrong_type(e, "a number");
}

int cpar_config_bool(const cpar_config_t *cfg, const char *section, const char *key, int *out)
{
    int rc;
    cfg_entry_t *e = typed_entry(cfg, section, key, &rc);
    const char *text;

    if (!e)
        return rc;
    if (json_is_boolean(e->value)) {
        *out = json_is_true(e->value);
        return 0;
    }
    if (json_is_integer(e->value) &&
        (json_integer_value(e->value) == 0 || json_integer_value(e->value) == 1)) {
        *out = json_integer_value(e->value) == 1;
        return 0;
    }
    if ((text = given_text(e))) {
        if (!strcasecmp(text, "true") || !strcmp(text, "1")) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(text, "false") || !strcmp(text, "0")) {
            *out = 0;
            return 0;
        }
    }
    return wrong_type(e, "a bool");
}

int cpar_config_foreach(const cpar_config_t *cfg, cpar_config_visit_cb cb, void *arg)
{
    if (!cfg || !cb)
        return CPAR_EINVAL;
    for (size_t i = 0; i < cfg->n; i++) {
        const cfg_entry_t *e = &cfg->v[i];
        int rc = cb(arg, e->section, e->key, e->value, e->src, e->origin);

        if (rc)
            return rc;
    }
    return 0;
}

/* ---- unknown settings ------------------------------------------------------------------ */

/* 0: section not listed; 1: any trait accepted; 2: traits checked one by one. */
/* The first listing of a section decides: 1 accepted whole, 2 trait by trait, 0 unknown. */
static int section_mode(const char *const *sections, const char *section)
{
    size_t len = strlen(section);

    for (size_t i = 0; sections && sections[i]; i++) {
        const char *s = sections[i];

        if (strncmp(s, section, len) != 0)
            continue;
        if (s[len] == '\0')
            return 1;
        if (s[len] == '.' && s[len + 1] == '\0')
            return 2;
    }
    return 0;
}

static int trait_listed(const char *const *traits, const char *section, const char *key)
{
    size_t len = strlen(section);

    for (size_t i = 0; traits && traits[i]; i++)
        if (!strncmp(traits[i], section, len) && traits[i][len] == '.' &&
            !strcmp(traits[i] + len + 1, key))
            return 1;
    return 0;
}

int cpar_config_warn_unknown(const cpar_config_t *cfg, const char *const *sections,
                             const char *const *traits)
{
    int count = 0;

    if (!cfg)
        return 0;
    for (size_t i = 0; i < cfg->n; i++) {
        const cfg_entry_t *e = &cfg->v[i];
        int mode = section_mode(sections, e->section);

        if (mode == 1 || (mode == 2 && trait_listed(traits, e->section, e->key)))
            continue;
        cpar_warn("config: ignoring unknown setting %s.%s (from %s)%s", e->section, e->key,
                  e->origin[0] ? e->origin : "?", mode ? "" : ": no such section");
        count++;
    }
    return count;
}

int cpar_config_apply_log_level(const cpar_config_t *cfg, const char *const *app_sections)
{
    const char *section = cpar_config_pick_section(cfg, app_sections, "log_level");
    const char *text = NULL;
    int level;

    if (!section)
        return 0;
    if (cpar_config_string(cfg, section, "log_level", &text) != 0 || !text ||
        cpar_log_parse_level(text, &level) != 0) {
        cpar_error("bad log level '%s' from %s: use 10-50 or DEBUG, INFO, WARN, ERROR, CRITICAL",
                   text ? text : "?", cpar_config_origin(cfg, section, "log_level"));
        return CPAR_ECONFIG;
    }
    cpar_log_set_level(level);
    return 0;
}
