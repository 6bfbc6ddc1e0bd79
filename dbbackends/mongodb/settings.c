/*
 * settings.c - the MongoDB section as a connection string.
 *
 * ipyparallel's MongoDB backend hands c.MongoDB.connection_args and connection_kwargs to
 * pymongo.MongoClient(*args, **kwargs). Here they become one mongodb:// URI for libmongoc:
 * args[0] (or kwargs "host") is a host, a list of hosts, or a URI; args[1] (or "port") a port;
 * every other keyword is a URI option (serverSelectionTimeoutMS, replicaSet, w, tls, ...), with
 * pymongo's older names (ssl_ca_certs, ...) mapped and its Python-only ones (tz_aware,
 * document_class, connect, ...) ignored. c.MongoDB.url, our addition, is a URI that wins over both.
 * libmongoc itself judges the options when it parses the result (mongodb.c).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "mongodb.h"

typedef struct text {
    char *data;
    size_t len, cap;
    int failed;
} text_t;

static void text_put(text_t *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 128;
        char *nd;
        while (ncap < t->len + n + 1)
            ncap *= 2;
        nd = realloc(t->data, ncap);
        if (!nd) {
            t->failed = 1;
            return;
        }
        t->data = nd;
        t->cap = ncap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_str(text_t *t, const char *s)
{
    text_put(t, s, strlen(s));
}

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void text_escaped(text_t *t, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[4];
        if (isalnum(c) || strchr("-._~", c)) {
            text_put(t, (const char *)&c, 1);
        } else {
            snprintf(esc, sizeof esc, "%%%02X", c);
            text_put(t, esc, 3);
        }
    }
}

static int st_fail(char *err, size_t errlen, const char *fmt, ...) CPAR_PRINTF(3, 4);

static int st_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CPAR_ECONFIG;
}

static int st_is_uri(const char *s)
{
    return strncmp(s, "mongodb://", 10) == 0 || strncmp(s, "mongodb+srv://", 14) == 0;
}

/* Python-only MongoClient keywords that mean nothing to libmongoc. */
static const char *const st_ignored[] = {"tz_aware",
                                         "document_class",
                                         "connect",
                                         "type_registry",
                                         "uuidRepresentation",
                                         "unicode_decode_error_handler",
                                         "event_listeners",
                                         "driver",
                                         "tzinfo",
                                         "datetime_conversion",
                                         "server_api",
                                         NULL};

/* pymongo's older names of TLS options. */
static const struct {
    const char *pymongo, *uri;
} st_renamed[] = {
    {"ssl", "tls"},
    {"ssl_ca_certs", "tlsCAFile"},
    {"ssl_certfile", "tlsCertificateKeyFile"},
    {"ssl_pem_passphrase", "tlsCertificateKeyFilePassword"},
    {"tlsCertificateKeyFilePassword", "tlsCertificateKeyFilePassword"},
};

static int st_in(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcasecmp(*list, key) == 0)
            return 1;
    return 0;
}

/* A JSON scalar as URI option text (integral reals as integers). */
static int st_value(json_t *v, char *buf, size_t len, const char **out)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        *out = json_string_value(v);
        return 0;
    case JSON_INTEGER:
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, len, "%.0f", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
        break;
    default:
        return -1;
    }
    *out = buf;
    return 0;
}

/* Append one host to the list, with the default port when it names none. */
static void st_host(text_t *t, const char *host, long port)
{
    const char *colon = strrchr(host, ':');
    int v6 = strchr(host, ':') != colon || host[0] == '[';
    int has_port = colon && (!v6 || (host[0] == '[' && colon > strchr(host, ']')));
    char buf[32];

    if (t->len && t->data[t->len - 1] != '/')
        text_str(t, ",");
    if (v6 && host[0] != '[') {
        text_str(t, "[");
        text_str(t, host);
        text_str(t, "]");
        has_port = 0;
    } else {
        text_str(t, host);
    }
    if (!has_port) {
        snprintf(buf, sizeof buf, ":%ld", port);
        text_str(t, buf);
    }
}

/* The options of kwargs (all but host/port) appended as query parameters. */
static int st_options(text_t *t, json_t *kwargs, char sep, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(kwargs, key, v)
    {
        const char *name = key, *value;
        char buf[64];
        if (strcasecmp(key, "host") == 0 || strcasecmp(key, "port") == 0 ||
            strcasecmp(key, "username") == 0 || strcasecmp(key, "password") == 0 ||
            st_in(st_ignored, key))
            continue;
        for (size_t i = 0; i < sizeof st_renamed / sizeof st_renamed[0]; i++)
            if (strcasecmp(key, st_renamed[i].pymongo) == 0)
                name = st_renamed[i].uri;
        if (strcasecmp(key, "ssl_cert_reqs") == 0) { /* ssl.CERT_NONE is 0 */
            name = "tlsAllowInvalidCertificates";
            v = json_is_integer(v) && json_integer_value(v) == 0 ? json_true() : json_false();
        } else if (strcasecmp(key, "ssl_match_hostname") == 0) {
            name = "tlsAllowInvalidHostnames";
            v = json_is_false(v) ? json_true() : json_false();
        }
        if (st_value(v, buf, sizeof buf, &value) != 0)
            return st_fail(err, errlen,
                           "MongoDB.connection_kwargs: option '%s' must be a string, a number or "
                           "a bool",
                           key);
        text_put(t, &sep, 1);
        sep = '&';
        text_str(t, name);
        text_str(t, "=");
        text_escaped(t, value);
    }
    return 0;
}

/* The string a URI's options follow: '?' or '&', adding the '/' a bare host list needs. */
static char st_option_sep(text_t *t)
{
    const char *hosts = strstr(t->data, "://") + 3;
    const char *slash = strchr(hosts, '/');

    if (!slash) {
        text_str(t, "/");
        return '?';
    }
    return strchr(slash, '?') ? '&' : '?';
}

int mongodb_settings_uri(const char *url, const char *args_json, const char *kwargs_json,
                         char **uri_out, char *err, size_t errlen)
{
    json_t *args = NULL, *kwargs = NULL, *host = NULL, *port = NULL, *user, *pass;
    text_t t = {0};
    long portno = 27017;
    int rc = CPAR_ECONFIG;

    *uri_out = NULL;
    if (url && *url) {
        if (!st_is_uri(url))
            return st_fail(err, errlen,
                           "MongoDB.url must start with mongodb:// or "
                           "mongodb+srv://");
        text_str(&t, url);
        goto done;
    }
    if (args_json)
        args = json_loads(args_json, JSON_DECODE_ANY, NULL);
    if (args_json && !json_is_array(args)) {
        st_fail(err, errlen, "MongoDB.connection_args must be a list");
        goto out;
    }
    if (kwargs_json)
        kwargs = json_loads(kwargs_json, JSON_DECODE_ANY, NULL);
    if (kwargs_json && !json_is_object(kwargs)) {
        st_fail(err, errlen, "MongoDB.connection_kwargs must be a dict");
        goto out;
    }
    host = json_array_get(args, 0);
    port = json_array_get(args, 1);
    if (json_object_get(kwargs, "host"))
        host = json_object_get(kwargs, "host");
    if (json_object_get(kwargs, "port"))
        port = json_object_get(kwargs, "port");
    if (port) {
        if (!json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535) {
            st_fail(err, errlen, "MongoDB: the port must be an integer in 1..65535");
            goto out;
        }
        portno = (long)json_integer_value(port);
    }
    if (host && !json_is_string(host) && !json_is_array(host)) {
        st_fail(err, errlen, "MongoDB: the host must be a string or a list of strings");
        goto out;
    }

    if (json_is_string(host) && st_is_uri(json_string_value(host))) {
        text_str(&t, json_string_value(host));
    } else {
        text_str(&t, "mongodb://");
        if (!host) {
            st_host(&t, "localhost", portno);
        } else if (json_is_string(host)) {
            st_host(&t, json_string_value(host), portno);
        } else {
            for (size_t i = 0; i < json_array_size(host); i++) {
                json_t *h = json_array_get(host, i);
                if (!json_is_string(h) || st_is_uri(json_string_value(h))) {
                    st_fail(err, errlen, "MongoDB: a list of hosts must hold host names");
                    goto out;
                }
                st_host(&t, json_string_value(h), portno);
            }
        }
        text_str(&t, "/");
    }

    user = json_object_get(kwargs, "username");
    pass = json_object_get(kwargs, "password");
    if (user || pass) {
        const char *authority = strstr(t.data, "://") + 3;
        const char *slash = strchr(authority, '/');
        const char *at = strchr(authority, '@');
        text_t u = {0};
        if (at && (!slash || at < slash)) {
            st_fail(err, errlen, "MongoDB: username/password given twice (in the URI too)");
            goto out;
        }
        if ((user && !json_is_string(user)) || (pass && !json_is_string(pass))) {
            st_fail(err, errlen, "MongoDB: username and password must be strings");
            goto out;
        }
        text_put(&u, t.data, (size_t)(authority - t.data));
        text_escaped(&u, user ? json_string_value(user) : "");
        if (pass) {
            text_str(&u, ":");
            text_escaped(&u, json_string_value(pass));
        }
        text_str(&u, "@");
        text_str(&u, authority);
        free(t.data);
        t = u;
    }
    if (kwargs && !t.failed && (rc = st_options(&t, kwargs, st_option_sep(&t), err, errlen)))
        goto out;

done:
    if (t.failed) {
        rc = CPAR_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *uri_out = t.data;
    t.data = NULL;
    rc = 0;
out:
    free(t.data);
    json_decref(args);
    json_decref(kwargs);
    return rc;
}

char *mongodb_settings_display(const char *uri)
{
    const char *authority = strstr(uri, "://");
    const char *slash, *at, *colon;
    text_t t = {0};

    if (!authority)
        return strdup(uri);
    authority += 3;
    slash = strchr(authority, '/');
    at = strchr(authority, '@');
    if (!at || (slash && at > slash))
        return strdup(uri);
    colon = memchr(authority, ':', (size_t)(at - authority));
    if (!colon)
        return strdup(uri);
    text_put(&t, uri, (size_t)(colon - uri));
    text_str(&t, ":***");
    text_str(&t, at);
    return t.failed ? NULL : t.data;
}
