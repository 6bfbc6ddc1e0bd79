/* sign.c - HMAC signatures of messages, their verification, and the replay history. */
#include "internal.h"

#include <cparallel/errors.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdlib.h>
#include <string.h>

/* Largest replay history; table slots hold ring positions in 32 bits. */
#define REPLAY_MAX ((size_t)1 << 28)

/*
 * The keyed HMAC context is prepared once; each message re-initialises it with the same key
 * (EVP_MAC_init with a NULL key), which restarts from the stored inner/outer pad states.
 *
 * The replay history keeps the last `limit` raw digests in a ring (FIFO eviction) and indexes
 * them with an open-addressing table (linear probing, backward-shift deletion, load <= 1/2)
 * whose entries are ring positions + 1. Digests are HMAC outputs under the shared key, so
 * their first bytes serve as the hash.
 */
struct cpar_digests {
    EVP_MAC_CTX *mac; /* NULL for an unsigned session */
    size_t dlen;      /* raw digest bytes */
    size_t limit, count, head;
    unsigned char *ring;
    uint32_t *table;
    size_t mask;
    cpar_msg_t scratch;
};

static const char hex_digits[] = "0123456789abcdef";

int cpar_wire_digests_new(cpar_session_t *s)
{
    cpar_digests_t *d = calloc(1, sizeof *d);
    EVP_MAC *hmac = NULL;
    OSSL_PARAM params[2];
    int rc = CPAR_ENOMEM;

    if (!d)
        return CPAR_ENOMEM;
    cpar_msg_init(&d->scratch);
    d->dlen = (size_t)EVP_MD_get_size(s->md);
    if (s->keylen) {
        hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
        if (!hmac)
            goto fail;
        d->mac = EVP_MAC_CTX_new(hmac);
        if (!d->mac)
            goto fail;
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *)EVP_MD_get0_name(s->md), 0);
        params[1] = OSSL_PARAM_construct_end();
        if (!EVP_MAC_init(d->mac, s->key, s->keylen, params)) {
            rc = CPAR_EINVAL;
            goto fail;
        }
        EVP_MAC_free(hmac);
    }
    s->digests = d;
    return 0;

fail:
    EVP_MAC_free(hmac);
    cpar_wire_digests_free(d);
    return rc;
}

void cpar_wire_digests_free(cpar_digests_t *d)
{
    if (!d)
        return;
    EVP_MAC_CTX_free(d->mac);
    free(d->ring);
    free(d->table);
    cpar_msg_fini(&d->scratch);
    free(d);
}

cpar_msg_t *cpar_wire_scratch(cpar_session_t *s)
{
    return &s->digests->scratch;
}

/* HMAC over the four JSON frames of the split message m into out[d->dlen]. */
static int sign_digest(cpar_digests_t *d, const cpar_msg_t *m, unsigned char *out)
{
    size_t outl = 0;

    if (!EVP_MAC_init(d->mac, NULL, 0, NULL))
        return CPAR_EINTERNAL;
    for (int part = CPAR_PART_HEADER; part <= CPAR_PART_CONTENT; part++) {
        cpar_bytes_t b = cpar_msg_frame(m, m->delim + (size_t)part);

        if (!EVP_MAC_update(d->mac, b.data, b.len))
            return CPAR_EINTERNAL;
    }
    if (!EVP_MAC_final(d->mac, out, &outl, EVP_MAX_MD_SIZE) || outl != d->dlen)
        return CPAR_EINTERNAL;
    return 0;
}

static void sign_hex(const unsigned char *raw, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digits[raw[i] >> 4];
        out[2 * i + 1] = hex_digits[raw[i] & 15];
    }
}

int cpar_session_sign(cpar_session_t *s, cpar_msg_t *m)
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    zmq_msg_t frame, *sig;
    int rc;

    if (m->delim == CPAR_NO_DELIM)
        return CPAR_EINVAL;
    if (s->keylen) {
        rc = sign_digest(s->digests, m, raw);
        if (rc != 0)
            return rc;
    }
    if (zmq_msg_init_size(&frame, s->siglen) != 0)
        return CPAR_ENOMEM;
    sign_hex(raw, s->siglen / 2, zmq_msg_data(&frame));
    sig = cpar_msg_part(m, CPAR_PART_SIG);
    m->total = m->total - zmq_msg_size(sig) + s->siglen;
    zmq_msg_close(sig);
    *sig = frame;
    return 0;
}

/* ---- replay history ---------------------------------------------------------------------- */

static size_t replay_home(const cpar_digests_t *d, const unsigned char *digest)
{
    uint64_t h = 0;

    memcpy(&h, digest, d->dlen < sizeof h ? d->dlen : sizeof h);
    return (size_t)h & d->mask;
}

static const unsigned char *replay_entry(const cpar_digests_t *d, uint32_t slot)
{
    return d->ring + (size_t)(slot - 1) * d->dlen;
}

/* Table index holding `digest`, or SIZE_MAX. */
static size_t replay_find(const cpar_digests_t *d, const unsigned char *digest)
{
    for (size_t i = replay_home(d, digest); d->table[i]; i = (i + 1) & d->mask) {
        if (memcmp(replay_entry(d, d->table[i]), digest, d->dlen) == 0)
            return i;
    }
    return SIZE_MAX;
}

static void replay_remove(cpar_digests_t *d, size_t hole)
{
    size_t j = hole;

    for (;;) {
        size_t home;

        d->table[hole] = 0;
        for (;;) {
            j = (j + 1) & d->mask;
            if (!d->table[j])
                return;
            home = replay_home(d, replay_entry(d, d->table[j]));
            /* The entry at j may stay when its home lies cyclically in (hole, j]. */
            if (hole <= j ? (hole < home && home <= j) : (hole < home || home <= j))
                continue;
            break;
        }
        d->table[hole] = d->table[j];
        hole = j;
    }
}

static void replay_push(cpar_digests_t *d, const unsigned char *digest)
{
    size_t i;

    if (d->count == d->limit) {
        size_t victim = replay_find(d, d->ring + d->head * d->dlen);

        if (victim != SIZE_MAX)
            replay_remove(d, victim);
    } else {
        d->count++;
    }
    memcpy(d->ring + d->head * d->dlen, digest, d->dlen);
    for (i = replay_home(d, digest); d->table[i]; i = (i + 1) & d->mask)
        ;
    d->table[i] = (uint32_t)(d->head + 1);
    d->head = (d->head + 1) % d->limit;
}

/* Resize the history to `limit` entries, keeping the newest ones. */
static int replay_resize(cpar_digests_t *d, size_t limit)
{
    cpar_digests_t old = *d;
    size_t tsize = 16, keep;

    if (limit > REPLAY_MAX)
        limit = REPLAY_MAX;
    if (limit == d->limit)
        return 0;
    d->ring = NULL;
    d->table = NULL;
    d->limit = d->count = d->head = 0;
    d->mask = 0;
    if (limit) {
        while (tsize < 2 * limit)
            tsize *= 2;
        d->ring = malloc(limit * d->dlen);
        d->table = calloc(tsize, sizeof *d->table);
        if (!d->ring || !d->table) {
            free(d->ring);
            free(d->table);
            *d = old;
            return CPAR_ENOMEM;
        }
        d->limit = limit;
        d->mask = tsize - 1;
        keep = old.count < limit ? old.count : limit;
        for (size_t k = 0; k < keep; k++) {
            size_t pos = (old.head + old.limit - keep + k) % old.limit;

            replay_push(d, old.ring + pos * d->dlen);
        }
    }
    free(old.ring);
    free(old.table);
    return 0;
}

int cpar_session_verify(cpar_session_t *s, const cpar_msg_t *m, const char **why)
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE];
    cpar_digests_t *d = s->digests;
    const char *reason = NULL;
    cpar_bytes_t sig;
    int rc = CPAR_EPROTO;

    if (m->delim == CPAR_NO_DELIM) {
        reason = "malformed message";
        goto out;
    }
    if (!s->keylen)
        return 0;
    sig = cpar_msg_frame(m, m->delim + CPAR_PART_SIG);
    if (sig.len == 0) {
        reason = "unsigned message";
        goto out;
    }
    if (sig.len != s->siglen) {
        reason = "invalid signature";
        goto out;
    }
    rc = sign_digest(d, m, raw);
    if (rc != 0) {
        reason = "HMAC failure";
        goto out;
    }
    rc = CPAR_EPROTO;
    sign_hex(raw, d->dlen, hex);
    if (CRYPTO_memcmp(hex, sig.data, s->siglen) != 0) {
        reason = "invalid signature";
        goto out;
    }
    if (s->digest_limit != d->limit) {
        rc = replay_resize(d, s->digest_limit);
        if (rc != 0) {
            reason = "out of memory";
            goto out;
        }
    }
    if (d->limit) {
        if (replay_find(d, raw) != SIZE_MAX) {
            rc = CPAR_EPROTO;
            reason = "duplicate signature";
            goto out;
        }
        replay_push(d, raw);
    }
    return 0;

out:
    if (why)
        *why = reason;
    return rc;
}
