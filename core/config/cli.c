/*
 * cli.c - the command line, the way traitlets' KVArgParseConfigLoader reads it: aliases, flags,
 * --Class.trait=value, values as Python literals or plain strings.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cparallel/errors.h>

json_t *cpar_cli_value(const char *text)
{
    char err[160];
    json_t *v;
    char *s;

    if (!text)
        return NULL;
    if (!cpar_cfg_utf8_ok(text, strlen(text)))
        return NULL;
    if (!*text)
        return json_string("");
    err[0] = '\0';
    v = cpar_py_expr(text, strlen(text), 0, err, sizeof err);
    if (v)
        return v;
    if (!strcmp(err, "out of memory"))
        return NULL;
    /* a plain string; traitlets expands a leading ~ in those (Unicode.from_string) */
    s = text[0] == '~' ? cpar_cfg_expanduser(text) : strdup(text);
    if (!s)
        return NULL;
    v = json_string(s);
    free(s);
    return v;
}

/* An argument that argparse would take for an option rather than a value. */
static int looks_like_option(const char *a)
{
    if (a[0] != '-' || a[1] == '\0')
        return 0;
    if (a[1] >= '0' && a[1] <= '9')
        return 0; /* a negative number */
    if (a[1] == '.' && a[2] >= '0' && a[2] <= '9')
        return 0;
    return 1;
}

/* Class.trait[.more]: a letter, then word characters, at least one dot between words. */
static int is_class_trait(const char *s, size_t n)
{
    int dots = 0;

    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];

        if (c == '.') {
            if (s[i - 1] == '.' || i + 1 == n)
                return 0;
            dots++;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_')) {
            return 0;
        }
    }
    return dots > 0;
}

static const cpar_option_t *lookup(const cpar_option_t *options, const char *name, size_t n)
{
    for (size_t i = 0; options && options[i].name; i++)
        if (strlen(options[i].name) == n && !memcmp(options[i].name, name, n))
            return &options[i];
    return NULL;
}

/* Set "Section.trait" to value (stolen) from the command line. */
static int set_trait(cpar_config_t *cfg, const char *dotted, json_t *value, const char *origin,
                     const char *raw)
{
    const char *dot = strrchr(dotted, '.');
    char section[256];

    if (!dot || dot == dotted || !dot[1] || (size_t)(dot - dotted) >= sizeof section) {
        json_decref(value);
        return CPAR_EINVAL;
    }
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = '\0';
    return cpar_config_set_raw(cfg, section, dot + 1, value, CPAR_SRC_CLI, origin, raw);
}

/* A flag's JSON value: one trait, or {"Section.trait": value, ...} when trait is NULL. */
static int apply_flag(cpar_config_t *cfg, const cpar_option_t *opt, const char *origin, char *err,
                      size_t errlen)
{
    json_t *v = json_loads(opt->value ? opt->value : "", JSON_DECODE_ANY, NULL);
    const char *key;
    json_t *item;
    int rc = 0;

    if (!v || (!opt->trait && !json_is_object(v))) {
        json_decref(v);
        snprintf(err, errlen, "option table: bad value for --%s", opt->name);
        return CPAR_EINVAL;
    }
    if (opt->trait) {
        rc = set_trait(cfg, opt->trait, v, origin, NULL);
        if (rc == CPAR_EINVAL)
            snprintf(err, errlen, "option table: bad trait for --%s", opt->name);
        return rc;
    }
    json_object_foreach(v, key, item)
    {
        rc = set_trait(cfg, key, json_incref(item), origin, NULL);
        if (rc < 0) {
            if (rc == CPAR_EINVAL)
                snprintf(err, errlen, "option table: bad trait '%s' for --%s", key, opt->name);
            break;
        }
    }
    json_decref(v);
    return rc;
}

static int set_alias(cpar_config_t *cfg, const char *dotted, const char *text, const char *arg,
                     const char *origin, char *err, size_t errlen)
{
    json_t *v;
    int rc;

    if (!cpar_cfg_utf8_ok(text, strlen(text))) {
        snprintf(err, errlen, "bad argument '%s': not valid UTF-8", arg);
        return CPAR_EINVAL;
    }
    if (!(v = cpar_cli_value(text)))
        return CPAR_ENOMEM;
    rc = set_trait(cfg, dotted, v, origin, text);
    if (rc == CPAR_EINVAL)
        snprintf(err, errlen, "bad option '%s'", arg);
    return rc;
}

/* Stable partition of argv[1..]: options first, then the positional arguments. */
static int move_positional_last(int argc, char **argv, const unsigned char *positional, int npos)
{
    char **tmp = malloc((size_t)argc * sizeof *tmp);
    int o = 1, p;

    if (!tmp)
        return CPAR_ENOMEM;
    p = argc - npos;
    for (int i = 1; i < argc; i++) {
        if (positional[i])
            tmp[p++] = argv[i];
        else
            tmp[o++] = argv[i];
    }
    memcpy(argv + 1, tmp + 1, (size_t)(argc - 1) * sizeof *argv);
    free(tmp);
    return 0;
}

int cpar_cli_parse(cpar_config_t *cfg, const cpar_option_t *options, int argc, char **argv,
                   cpar_cli_result_t *result, char *err, size_t errlen)
{
    cpar_cli_result_t res = {0};
    unsigned char *positional;
    int ended = 0, rc = 0;

    if (!cfg || argc < 0 || (argc > 0 && !argv))
        return CPAR_EINVAL;
    if (err && errlen)
        err[0] = '\0';
    positional = calloc((size_t)argc + 1, 1);
    if (!positional)
        return CPAR_ENOMEM;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *arg = argv[i], *name, *eq, *text = NULL;
        const cpar_option_t *opt;
        char origin[300];
        size_t n;

        if (ended || !looks_like_option(arg)) {
            positional[i] = 1;
            res.npositional++;
            continue;
        }
        if (!strcmp(arg, "--")) {
            ended = 1;
            continue;
        }
        name = arg + (arg[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        opt = lookup(options, name, n);
        if (!opt && !is_class_trait(name, n)) {
            snprintf(err, errlen, "unrecognized option '%s'", arg);
            rc = CPAR_EINVAL;
            break;
        }
        snprintf(origin, sizeof origin, "--%.*s", (int)n, name);
        if (opt && (opt->kind == CPAR_OPT_FLAG || opt->kind == CPAR_OPT_ACTION)) {
            if (eq) {
                snprintf(err, errlen, "option '--%s' takes no value ('%s')", opt->name, arg);
                rc = CPAR_EINVAL;
            } else if (opt->kind == CPAR_OPT_ACTION) {
                res.actions |= opt->action;
            } else {
                rc = apply_flag(cfg, opt, origin, err, errlen);
            }
            continue;
        }
        if (opt && opt->kind != CPAR_OPT_ALIAS) {
            snprintf(err, errlen, "option table: bad kind for --%s", opt->name);
            rc = CPAR_EINVAL;
            break;
        }
        if (eq)
            text = eq + 1;
        else if (i + 1 < argc && !looks_like_option(argv[i + 1]))
            text = argv[++i];
        if (!text && opt && opt->value) {
            /* an alias that is also a flag (--log-to-file): no value sets the flag's */
            rc = apply_flag(cfg,
                            &(cpar_option_t){.name = opt->name,
                                             .kind = CPAR_OPT_FLAG,
                                             .trait = opt->trait,
                                             .value = opt->value},
                            origin, err, errlen);
            continue;
        }
        if (!text) {
            snprintf(err, errlen, "option '%s' needs a value", origin);
            rc = CPAR_EINVAL;
            break;
        }
        if (opt) {
            rc = set_alias(cfg, opt->trait, text, arg, origin, err, errlen);
        } else {
            char dotted[256];

            if (n >= sizeof dotted) {
                snprintf(err, errlen, "option name too long: '%.60s...'", arg);
                rc = CPAR_EINVAL;
                break;
            }
            memcpy(dotted, name, n);
            dotted[n] = '\0';
            rc = set_alias(cfg, dotted, text, arg, origin, err, errlen);
        }
    }
    if (rc == CPAR_ENOMEM && err && errlen && !err[0])
        snprintf(err, errlen, "out of memory");
    if (rc == 0 && (rc = move_positional_last(argc, argv, positional, res.npositional)) < 0)
        snprintf(err, errlen, "out of memory");
    free(positional);
    if (rc < 0)
        return rc;
    res.positional = argc > 0 ? argv + (argc - res.npositional) : NULL;
    if (result)
        *result = res;
    return 0;
}

void cpar_cli_help(const cpar_option_t *options, const char *usage, void *out)
{
    FILE *f = out ? out : stdout;

    if (usage && *usage) {
        fputs(usage, f);
        if (usage[strlen(usage) - 1] != '\n')
            fputc('\n', f);
        fputc('\n', f);
    }
    fputs("Options:\n", f);
    for (size_t i = 0; options && options[i].name; i++) {
        const cpar_option_t *o = &options[i];
        const char *dashes = strlen(o->name) == 1 ? "-" : "--";

        if (o->kind == CPAR_OPT_ALIAS)
            fprintf(f, "  %s%s%s=<%s>%s\n", dashes, o->name, o->value ? "[" : "",
                    o->trait ? o->trait : "value", o->value ? "]" : "");
        else
            fprintf(f, "  %s%s\n", dashes, o->name);
        if (o->help && *o->help)
            fprintf(f, "      %s\n", o->help);
        if (o->kind == CPAR_OPT_ALIAS && o->trait)
            fprintf(f, "      Equivalent to: [--%s]\n", o->trait);
        else if (o->kind == CPAR_OPT_FLAG && o->trait)
            fprintf(f, "      Equivalent to: [--%s=%s]\n", o->trait, o->value ? o->value : "");
        else if (o->kind == CPAR_OPT_FLAG && o->value)
            fprintf(f, "      Equivalent to: %s\n", o->value);
    }
    fputs("  --<Class>.<trait>=<value>\n"
          "      Set any setting, as c.<Class>.<trait> = <value> would in a config file; the\n"
          "      value is read as a Python literal when it is one, else as a string.\n",
          f);
}
