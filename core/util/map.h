/*
 * map.h - a hash map from byte-string keys to pointers (open addressing, linear probing).
 *
 * Keys are copied into the map; values are borrowed pointers the caller owns. The hash is seeded
 * per process so that keys chosen by a remote peer (msg_ids, identities) cannot be crafted to
 * collide.
 */
#ifndef CPAR_UTIL_MAP_H
#define CPAR_UTIL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cpar_map_slot {
    char *key; /* NULL: empty; CPAR_MAP_TOMB: deleted */
    size_t klen;
    uint64_t hash;
    void *val;
} cpar_map_slot_t;

typedef struct cpar_map {
    cpar_map_slot_t *slots;
    size_t cap;  /* power of two, or 0 */
    size_t len;  /* live entries */
    size_t used; /* live + tombstones */
} cpar_map_t;

void cpar_map_init(cpar_map_t *m);
/* Free the map's memory; each value is passed to free_val when it is not NULL. */
void cpar_map_fini(cpar_map_t *m, void (*free_val)(void *));

void *cpar_map_get(const cpar_map_t *m, const void *key, size_t klen);
/* Insert or replace; the previous value (or NULL) is stored in *old when old is not NULL.
 * 0 or CPAR_ENOMEM. */
int cpar_map_put(cpar_map_t *m, const void *key, size_t klen, void *val, void **old);
/* Remove; returns the value, or NULL when absent. */
void *cpar_map_del(cpar_map_t *m, const void *key, size_t klen);

/* Iterate: start with it = 0; returns the next position, or 0 at the end. Do not insert while
 * iterating; deleting the current entry is allowed. */
size_t cpar_map_next(const cpar_map_t *m, size_t it, const char **key, size_t *klen, void **val);

/* NUL-terminated key helpers. */
void *cpar_map_gets(const cpar_map_t *m, const char *key);
int cpar_map_puts(cpar_map_t *m, const char *key, void *val);
void *cpar_map_dels(cpar_map_t *m, const char *key);

#endif
