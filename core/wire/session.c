/* session.c - a Jupyter session: keys and ids, fresh headers, building and sending messages. */
#include "internal.h"

#include <cparallel/errors.h>

#include "util/clock.h"
#include "util/ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The digest of "hmac-<hash>": OpenSSL's name, or Python's hashlib name (sha3_256). */
static const EVP_MD *session_digest(const char *scheme)
{
    char name[64];
    const EVP_MD *md;

    if (strncmp(scheme, "hmac-", 5) != 0 || strlen(scheme + 5) >= sizeof name)
        return NULL;
    strcpy(name, scheme + 5);
    md = EVP_get_digestbyname(name);
    if (!md) {
        for (char *p = name; *p; p++) {
            if (*p == '_')
                *p = '-';
        }
        md = EVP_get_digestbyname(name);
    }
    if (!md || EVP_MD_get_size(md) <= 0 || (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF))
        return NULL;
    return md;
}

/* Copy `text` into out[size] when it fits and is valid UTF-8. */
static int session_copy_name(char *out, size_t size, const char *text)
{
    json_t *check;
    size_t len = strlen(text);

    if (len >= size)
        return CPAR_EINVAL;
    check = json_stringn(text, len);
    if (!check)
        return CPAR_EINVAL;
    json_decref(check);
    memcpy(out, text, len + 1);
    return 0;
}

int cpar_session_init(cpar_session_t *s, const char *key, const char *scheme,
                      const char *session_id, const char *username)
{
    char id[CPAR_ID_LEN];
    const EVP_MD *md;
    int rc;

    memset(s, 0, sizeof *s);
    md = session_digest(scheme ? scheme : "hmac-sha256");
    if (!md)
        return CPAR_EINVAL;
    if (!session_id)
        session_id = cpar_new_id(id);
    if (session_copy_name(s->session, sizeof s->session, session_id) != 0 ||
        session_copy_name(s->username, sizeof s->username, username ? username : "username") != 0)
        goto invalid;
    s->md = md;
    s->keylen = key ? strlen(key) : 0;
    if (s->keylen) {
        s->key = malloc(s->keylen);
        if (!s->key) {
            memset(s, 0, sizeof *s);
            return CPAR_ENOMEM;
        }
        memcpy(s->key, key, s->keylen);
        s->siglen = 2 * (size_t)EVP_MD_get_size(md);
    }
    s->pid = (unsigned long)getpid();
    s->digest_limit = 65536;
    rc = cpar_wire_digests_new(s);
    if (rc != 0) {
        cpar_session_fini(s);
        return rc;
    }
    return 0;

invalid:
    memset(s, 0, sizeof *s);
    return CPAR_EINVAL;
}

void cpar_session_fini(cpar_session_t *s)
{
    cpar_wire_digests_free(s->digests);
    if (s->key) {
        OPENSSL_cleanse(s->key, s->keylen);
        free(s->key);
    }
    memset(s, 0, sizeof *s);
}

static int session_set(json_t *o, const char *k, json_t *v)
{
    return json_object_set_new_nocheck(o, k, v);
}

json_t *cpar_session_header(cpar_session_t *s, const char *msg_type)
{
    char id[sizeof s->session + 48], date[CPAR_ISO_LEN];
    json_t *h;

    if (!msg_type)
        return NULL;
    snprintf(id, sizeof id, "%s_%lu_%" PRIu64, s->session, s->pid, s->counter++);
    cpar_iso_format(cpar_now_us(), date);
    h = json_object();
    if (!h || session_set(h, "msg_id", json_string(id)) != 0 ||
        session_set(h, "msg_type", json_string(msg_type)) != 0 ||
        session_set(h, "username", json_string(s->username)) != 0 ||
        session_set(h, "session", json_string(s->session)) != 0 ||
        session_set(h, "date", json_string_nocheck(date)) != 0 ||
        session_set(h, "version", json_string_nocheck(CPAR_PROTOCOL_VERSION)) != 0) {
        json_decref(h);
        return NULL;
    }
    return h;
}

/* Append the JSON part `v` (NULL = {}) to out and keep a reference in *slot. */
static int session_add_part(cpar_msg_t *out, json_t **slot, json_t *v)
{
    int rc;

    v = v ? json_incref(v) : json_object();
    if (!v)
        return CPAR_ENOMEM;
    rc = cpar_wire_frame_json(&out->f[out->n], v);
    if (rc != 0) {
        json_decref(v);
        return rc;
    }
    out->total += zmq_msg_size(&out->f[out->n]);
    out->n++;
    *slot = v;
    return 0;
}

/* Build into the empty message out; on failure out holds partial frames. */
static int session_build_into(cpar_session_t *s, cpar_msg_t *out, const cpar_bytes_t *idents,
                              size_t nidents, const char *msg_type, json_t *parent,
                              json_t *metadata, json_t *content, const cpar_bytes_t *bufs,
                              size_t nbufs)
{
    json_t *header;
    int rc;

    if ((nidents && !idents) || (nbufs && !bufs) || (parent && !json_is_object(parent)) ||
        (metadata && !json_is_object(metadata)) || (content && !json_is_object(content)))
        return CPAR_EINVAL;
    if (cpar_wire_reserve(out, nidents + CPAR_PART_BUFFERS + nbufs) != 0)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < nidents; i++) {
        rc = cpar_msg_append(out, idents[i].data, idents[i].len);
        if (rc != 0)
            return rc;
    }
    rc = cpar_msg_append(out, CPAR_DELIM, CPAR_DELIM_LEN);
    if (rc == 0)
        rc = cpar_msg_append(out, NULL, 0);
    if (rc != 0)
        return rc;
    out->delim = nidents;

    header = cpar_session_header(s, msg_type);
    if (!header)
        return msg_type ? CPAR_ENOMEM : CPAR_EINVAL;
    rc = session_add_part(out, &out->header, header);
    json_decref(header);
    if (rc == 0)
        rc = session_add_part(out, &out->parent, parent);
    if (rc == 0)
        rc = session_add_part(out, &out->metadata, metadata);
    if (rc == 0)
        rc = session_add_part(out, &out->content, content);
    for (size_t i = 0; rc == 0 && i < nbufs; i++)
        rc = cpar_msg_append(out, bufs[i].data, bufs[i].len);
    if (rc == 0)
        rc = cpar_session_sign(s, out);
    return rc;
}

/* Messages are built in the session's scratch message, so that idents, buffers and JSON parts
 * may come from `out` itself (a reply built in place of its request). */
int cpar_session_build(cpar_session_t *s, cpar_msg_t *out, const cpar_bytes_t *idents,
                       size_t nidents, const char *msg_type, json_t *parent, json_t *metadata,
                       json_t *content, const cpar_bytes_t *bufs, size_t nbufs)
{
    cpar_msg_t *tmp = cpar_wire_scratch(s), old;
    int rc;

    rc = session_build_into(s, tmp, idents, nidents, msg_type, parent, metadata, content, bufs,
                            nbufs);
    if (rc != 0) {
        cpar_msg_clear(tmp);
        cpar_msg_clear(out);
        return rc;
    }
    old = *out;
    *out = *tmp;
    *tmp = old;
    cpar_msg_clear(tmp);
    return 0;
}

int cpar_session_send(cpar_session_t *s, void *sock, const cpar_bytes_t *idents, size_t nidents,
                      const char *msg_type, json_t *parent, json_t *metadata, json_t *content,
                      const cpar_bytes_t *bufs, size_t nbufs)
{
    cpar_msg_t *m = cpar_wire_scratch(s);
    int rc;

    rc =
        session_build_into(s, m, idents, nidents, msg_type, parent, metadata, content, bufs, nbufs);
    if (rc != 0) {
        cpar_msg_clear(m);
        return rc;
    }
    return cpar_msg_send(m, sock);
}
