/* map.c - see map.h. */
#include "map.h"

#include <cparallel/errors.h>

#include <stdlib.h>
#include <string.h>

#include "ids.h"

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t map_seed;

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h;

    if (!map_seed) {
        uint64_t s = 0;

        if (cpar_random_bytes(&s, sizeof s) != 0 || !s)
            s = 0x9e3779b97f4a7c15ull;
        map_seed = s;
    }
    h = map_seed ^ (len * 0xff51afd7ed558ccdull);
    /* Eight bytes a step, then the tail; the final mix spreads every input bit. */
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    if (len) {
        uint64_t w = 0;

        memcpy(&w, p, len);
        h = (h ^ w ^ ((uint64_t)len << 56)) * 0x9e3779b97f4a7c15ull;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

void cpar_map_init(cpar_map_t *m)
{
    memset(m, 0, sizeof *m);
}

void cpar_map_fini(cpar_map_t *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        cpar_map_slot_t *s = &m->slots[i];

        if (s->key && s->key != TOMB) {
            if (free_val && s->val)
                free_val(s->val);
            free(s->key);
        }
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static cpar_map_slot_t *find(const cpar_map_t *m, const void *key, size_t klen, uint64_t h)
{
    size_t mask, i;

    if (!m->cap)
        return NULL;
    mask = m->cap - 1;
    for (i = h & mask;; i = (i + 1) & mask) {
        cpar_map_slot_t *s = &m->slots[i];

        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

static int resize(cpar_map_t *m, size_t ncap)
{
    cpar_map_slot_t *old = m->slots, *ns = calloc(ncap, sizeof *ns);
    size_t ocap = m->cap;

    if (!ns)
        return CPAR_ENOMEM;
    m->slots = ns;
    m->cap = ncap;
    m->used = m->len;
    for (size_t i = 0; i < ocap; i++) {
        cpar_map_slot_t *s = &old[i];
        size_t j;

        if (!s->key || s->key == TOMB)
            continue;
        for (j = s->hash & (ncap - 1); ns[j].key; j = (j + 1) & (ncap - 1))
            ;
        ns[j] = *s;
    }
    free(old);
    return 0;
}

void *cpar_map_get(const cpar_map_t *m, const void *key, size_t klen)
{
    cpar_map_slot_t *s = find(m, key, klen, hash_bytes(key, klen));

    return s ? s->val : NULL;
}

int cpar_map_put(cpar_map_t *m, const void *key, size_t klen, void *val, void **old)
{
    uint64_t h = hash_bytes(key, klen);
    cpar_map_slot_t *s = find(m, key, klen, h);
    size_t i, mask;
    char *k;

    if (old)
        *old = NULL;
    if (s) {
        if (old)
            *old = s->val;
        s->val = val;
        return 0;
    }
    /* Live entries and tombstones together stay under 5/8 of the slots, so that a miss (every
     * insertion starts with one) ends at an empty slot after a few probes. */
    if ((m->used + 1) * 8 > m->cap * 5) {
        size_t ncap = m->cap ? m->cap : 16;

        while ((m->len + 1) * 2 >= ncap)
            ncap *= 2;
        if (resize(m, ncap))
            return CPAR_ENOMEM;
    }
    k = malloc(klen ? klen : 1);
    if (!k)
        return CPAR_ENOMEM;
    memcpy(k, key, klen);
    mask = m->cap - 1;
    for (i = h & mask; m->slots[i].key && m->slots[i].key != TOMB; i = (i + 1) & mask)
        ;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i] = (cpar_map_slot_t){.key = k, .klen = klen, .hash = h, .val = val};
    m->len++;
    return 0;
}

/*
 * No probe sequence crosses an empty slot, so a tombstone just before one is needed by no key:
 * the tombstone at i and those before it become empty again. Keys that come and go in order (as
 * tasks do) would otherwise fill the table with tombstones and make every miss a long probe.
 */
static void clear_tombs(cpar_map_t *m, size_t i)
{
    size_t mask = m->cap - 1;

    if (m->slots[(i + 1) & mask].key)
        return;
    while (m->slots[i].key == TOMB) {
        m->slots[i].key = NULL;
        m->used--;
        i = (i - 1) & mask;
    }
}

void *cpar_map_del(cpar_map_t *m, const void *key, size_t klen)
{
    cpar_map_slot_t *s = find(m, key, klen, hash_bytes(key, klen));
    void *val;

    if (!s)
        return NULL;
    val = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->len--;
    clear_tombs(m, (size_t)(s - m->slots));
    return val;
}

size_t cpar_map_next(const cpar_map_t *m, size_t it, const char **key, size_t *klen, void **val)
{
    for (; it < m->cap; it++) {
        cpar_map_slot_t *s = &m->slots[it];

        if (s->key && s->key != TOMB) {
            if (key)
                *key = s->key;
            if (klen)
                *klen = s->klen;
            if (val)
                *val = s->val;
            return it + 1;
        }
    }
    return 0;
}

void *cpar_map_gets(const cpar_map_t *m, const char *key)
{
    return cpar_map_get(m, key, strlen(key));
}

int cpar_map_puts(cpar_map_t *m, const char *key, void *val)
{
    return cpar_map_put(m, key, strlen(key), val, NULL);
}

void *cpar_map_dels(cpar_map_t *m, const char *key)
{
    return cpar_map_del(m, key, strlen(key));
}
