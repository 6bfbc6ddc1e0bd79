/*
 * dictdb.c - cpar_dbbackend_dictdb.so: ipyparallel's DictDB, the task records kept in memory.
 *
 * Each record is a deep copy of what the hub handed in. It sits in a hash table keyed by msg_id,
 * in a list in insertion order, and in up to two ordered indexes keyed by (submitted, insertion
 * order): `hist` holds every record that has `submitted` (the history), `done` those that also
 * have `completed`, i.e. the records culling may drop.
 *
 * Limits are DictDB's (section DictDB: record_limit, size_limit, cull_fraction) with one
 * difference: a record still in flight (no `completed`) is never culled. ipyparallel culled by
 * age alone, so the result of a long task could arrive for a record already gone
 * (ipython/ipyparallel#203); here the limits may be exceeded while the tasks that hold them run.
 * The ids of culled records are remembered (a bounded number of them) so that a late lookup says
 * so instead of "no such record".
 *
 * Queries (find_records, drop_matching) test records with the SDK's cpar_query_match, the
 * reference for what every backend selects.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cparallel/dbbackend.h>
#include <cparallel/query.h>

#define DICTDB_SECTION "DictDB"
#define DICTDB_RECORD_LIMIT 1024
#define DICTDB_SIZE_LIMIT (INT64_C(1) << 30)
#define DICTDB_CULL_FRACTION 0.1
/* Culled ids remembered: max(record_limit, this). */
#define DICTDB_TOMB_MIN 4096
#define DICTDB_BUCKETS_MIN 64

#ifndef CPAR_DICTDB_VERSION
#define CPAR_DICTDB_VERSION "0"
#endif

/* Update bit n - 2 names record field number n (cpar_record_field_t follows record.proto). */
_Static_assert(CPAR_REC_HEADER == 1u << (2 - 2) && CPAR_REC_LABEL == 1u << (24 - 2),
               "cpar_record_field_t bits follow record.proto field numbers");

/* Shared head of everything the hash tables hold. */
typedef struct dictdb_hent {
    const char *key;
    uint64_t hash;
    struct dictdb_hent *next;
} dictdb_hent_t;

typedef struct dictdb_table {
    dictdb_hent_t **buckets;
    size_t nbuckets; /* a power of two, or 0 */
    size_t count;
} dictdb_table_t;

typedef struct dictdb_node {
    struct dictdb_node *left, *right;
    uint32_t prio;
} dictdb_node_t;

typedef struct dictdb_tree {
    dictdb_node_t *root;
    size_t off; /* offset of the node in dictdb_rec_t */
} dictdb_tree_t;

typedef struct dictdb_rec {
    dictdb_hent_t h; /* key: rec.msg_id */
    struct dictdb_rec *prev, *next;
    uint64_t seq;
    uint64_t bytes;
    dictdb_node_t hist, done;
    int in_hist, in_done;
    struct dictdb_block *blocks; /* where rec's text and bytes live */
    size_t held, waste;          /* bytes of those blocks in use / no longer referenced */
    uint64_t pass;               /* the last query pass that selected it (dictdb_t.pass) */
    cpar_record_t rec;
} dictdb_rec_t;

typedef struct dictdb_tomb {
    dictdb_hent_t h;
    struct dictdb_tomb *older, *newer;
    char id[];
} dictdb_tomb_t;

typedef struct dictdb {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    int64_t record_limit;
    int64_t size_limit;
    double cull_fraction;
    uint64_t seed;
    uint32_t rng;

    dictdb_table_t records;
    dictdb_rec_t *first, *last;
    uint64_t next_seq;
    uint64_t bytes;
    uint64_t pass; /* counts the queries answered by msg_id lookups */
    dictdb_tree_t hist, done;
    int warned_count, warned_size;

    dictdb_table_t tombs;
    dictdb_tomb_t *oldest_tomb, *newest_tomb;
    size_t tomb_cap;
} dictdb_t;

/* ---- hash tables ------------------------------------------------------------------------ */

static uint64_t dictdb_hash(const dictdb_t *db, const char *key)
{
    uint64_t h = 0xcbf29ce484222325u ^ db->seed;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

static dictdb_hent_t *dictdb_table_find(const dictdb_table_t *t, const char *key, uint64_t hash)
{
    if (!t->nbuckets)
        return NULL;
    for (dictdb_hent_t *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == hash && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int dictdb_table_grow(dictdb_t *db, dictdb_table_t *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : DICTDB_BUCKETS_MIN;
    dictdb_hent_t **b = db->host->alloc(n * sizeof *b);

    if (!b)
        return CPAR_ENOMEM;
    memset(b, 0, n * sizeof *b);
    for (size_t i = 0; i < t->nbuckets; i++) {
        dictdb_hent_t *e = t->buckets[i];
        while (e) {
            dictdb_hent_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    db->host->free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
    return 0;
}

/* Insert an entry whose key is not in the table yet. */
static int dictdb_table_insert(dictdb_t *db, dictdb_table_t *t, dictdb_hent_t *e)
{
    dictdb_hent_t **slot;

    if (t->count >= t->nbuckets) {
        int rc = dictdb_table_grow(db, t);
        /* A full table still works, only slower; fail only when it has no buckets at all. */
        if (rc && !t->nbuckets)
            return rc;
    }
    slot = &t->buckets[e->hash & (t->nbuckets - 1)];
    e->next = *slot;
    *slot = e;
    t->count++;
    return 0;
}

static void dictdb_table_remove(dictdb_table_t *t, dictdb_hent_t *e)
{
    dictdb_hent_t **p = &t->buckets[e->hash & (t->nbuckets - 1)];

    while (*p && *p != e)
        p = &(*p)->next;
    if (*p) {
        *p = e->next;
        t->count--;
    }
}

/* ---- ordered indexes: treaps keyed by (submitted, seq) ---------------------------------- */

static dictdb_rec_t *dictdb_node_rec(const dictdb_tree_t *t, dictdb_node_t *n)
{
    return (dictdb_rec_t *)(void *)((char *)n - t->off);
}

static int dictdb_rec_before(const dictdb_rec_t *a, const dictdb_rec_t *b)
{
    if (a->rec.submitted != b->rec.submitted)
        return a->rec.submitted < b->rec.submitted;
    return a->seq < b->seq;
}

static dictdb_node_t *dictdb_tree_insert(dictdb_tree_t *t, dictdb_node_t *root, dictdb_node_t *n)
{
    dictdb_node_t *child;

    if (!root)
        return n;
    if (dictdb_rec_before(dictdb_node_rec(t, n), dictdb_node_rec(t, root))) {
        root->left = dictdb_tree_insert(t, root->left, n);
        if (root->left->prio > root->prio) {
            child = root->left;
            root->left = child->right;
            child->right = root;
            return child;
        }
    } else {
        root->right = dictdb_tree_insert(t, root->right, n);
        if (root->right->prio > root->prio) {
            child = root->right;
            root->right = child->left;
            child->left = root;
            return child;
        }
    }
    return root;
}

/* Join two treaps, every key of `a` before every key of `b`. */
static dictdb_node_t *dictdb_tree_join(dictdb_node_t *a, dictdb_node_t *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->prio > b->prio) {
        a->right = dictdb_tree_join(a->right, b);
        return a;
    }
    b->left = dictdb_tree_join(a, b->left);
    return b;
}

static dictdb_node_t *dictdb_tree_remove(dictdb_tree_t *t, dictdb_node_t *root, dictdb_node_t *n)
{
    if (!root)
        return NULL;
    if (root == n)
        return dictdb_tree_join(n->left, n->right);
    if (dictdb_rec_before(dictdb_node_rec(t, n), dictdb_node_rec(t, root)))
        root->left = dictdb_tree_remove(t, root->left, n);
    else
        root->right = dictdb_tree_remove(t, root->right, n);
    return root;
}

static dictdb_rec_t *dictdb_tree_first(const dictdb_tree_t *t)
{
    dictdb_node_t *n = t->root;

    if (!n)
        return NULL;
    while (n->left)
        n = n->left;
    return dictdb_node_rec(t, n);
}

static void dictdb_tree_walk(const dictdb_tree_t *t, dictdb_node_t *n, cpar_msgid_cb cb, void *arg)
{
    while (n) {
        dictdb_tree_walk(t, n->left, cb, arg);
        cb(arg, dictdb_node_rec(t, n)->rec.msg_id);
        n = n->right;
    }
}

static uint32_t dictdb_random(dictdb_t *db)
{
    uint32_t x = db->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return db->rng = x;
}

/* Both trees are ordered by submission (then arrival); `done` holds the completed records. */
static void dictdb_index_done(dictdb_t *db, dictdb_rec_t *r)
{
    if (!r->in_hist || !r->rec.has_completed)
        return;
    r->done.left = r->done.right = NULL;
    r->done.prio = dictdb_random(db);
    db->done.root = dictdb_tree_insert(&db->done, db->done.root, &r->done);
    r->in_done = 1;
}

static void dictdb_unindex_done(dictdb_t *db, dictdb_rec_t *r)
{
    if (r->in_done)
        db->done.root = dictdb_tree_remove(&db->done, db->done.root, &r->done);
    r->in_done = 0;
}

static void dictdb_index(dictdb_t *db, dictdb_rec_t *r)
{
    if (!r->rec.has_submitted)
        return;
    r->hist.left = r->hist.right = NULL;
    r->hist.prio = dictdb_random(db);
    db->hist.root = dictdb_tree_insert(&db->hist, db->hist.root, &r->hist);
    r->in_hist = 1;
    dictdb_index_done(db, r);
}

static void dictdb_unindex(dictdb_t *db, dictdb_rec_t *r)
{
    if (r->in_hist)
        db->hist.root = dictdb_tree_remove(&db->hist, db->hist.root, &r->hist);
    r->in_hist = 0;
    dictdb_unindex_done(db, r);
}

/* ---- record fields, driven by the protobuf-c descriptor --------------------------------- */

/*
 * The text and bytes of a record live in blocks: one allocation holds every field a copy brings
 * in (all of them on add, the updated ones on update), so storing a record costs one malloc and
 * one free instead of one per field. A block stays until its record is freed; the bytes of
 * fields an update replaced are counted as waste, and once a record wastes more than it holds it
 * is compacted into a single block (a task printing many lines updates stdout again and again).
 */
typedef struct dictdb_block {
    struct dictdb_block *next;
    size_t size;
} dictdb_block_t;

#define DICTDB_AT(rec, off) ((void *)((char *)(rec) + (off)))
#define DICTDB_ALIGN(n) (((n) + sizeof(void *) - 1) & ~(sizeof(void *) - 1))

static int dictdb_field_is_bytes(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_BYTES;
}

static int dictdb_field_is_text(const ProtobufCFieldDescriptor *f)
{
    return f->label != PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_STRING;
}

/* Bytes a field takes in a block. */
static size_t dictdb_field_size(const cpar_record_t *r, const ProtobufCFieldDescriptor *f)
{
    if (dictdb_field_is_bytes(f)) {
        size_t n = *(const size_t *)DICTDB_AT(r, f->quantifier_offset);
        const ProtobufCBinaryData *items = *(ProtobufCBinaryData *const *)DICTDB_AT(r, f->offset);
        size_t size = n * sizeof *items;

        for (size_t i = 0; i < n; i++)
            size += DICTDB_ALIGN(items[i].len);
        return size;
    }
    if (dictdb_field_is_text(f)) {
        const char *s = *(char *const *)DICTDB_AT(r, f->offset);
        return s ? DICTDB_ALIGN(strlen(s) + 1) : 0;
    }
    return 0;
}

static void dictdb_field_clear(cpar_record_t *r, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *(void **)DICTDB_AT(r, f->offset) = NULL;
        *(size_t *)DICTDB_AT(r, f->quantifier_offset) = 0;
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        *(char **)DICTDB_AT(r, f->offset) = NULL;
    } else {
        *(protobuf_c_boolean *)DICTDB_AT(r, f->quantifier_offset) = 0;
        *(int64_t *)DICTDB_AT(r, f->offset) = 0;
    }
}

/* Copy one field from src into dst, whose field is empty, taking space from *cursor. */
static void dictdb_field_copy(cpar_record_t *dst, const cpar_record_t *src,
                              const ProtobufCFieldDescriptor *f, char **cursor)
{
    if (dictdb_field_is_bytes(f)) {
        size_t n = *(const size_t *)DICTDB_AT(src, f->quantifier_offset);
        const ProtobufCBinaryData *from = *(ProtobufCBinaryData *const *)DICTDB_AT(src, f->offset);
        ProtobufCBinaryData *items;

        if (!n)
            return;
        items = (ProtobufCBinaryData *)*cursor;
        *cursor += n * sizeof *items;
        for (size_t i = 0; i < n; i++) {
            items[i].len = from[i].len;
            items[i].data = NULL;
            if (!from[i].len)
                continue;
            items[i].data = (uint8_t *)*cursor;
            memcpy(items[i].data, from[i].data, from[i].len);
            *cursor += DICTDB_ALIGN(from[i].len);
        }
        *(ProtobufCBinaryData **)DICTDB_AT(dst, f->offset) = items;
        *(size_t *)DICTDB_AT(dst, f->quantifier_offset) = n;
    } else if (dictdb_field_is_text(f)) {
        const char *s = *(char *const *)DICTDB_AT(src, f->offset);
        size_t len;

        if (!s)
            return;
        len = strlen(s) + 1;
        memcpy(*cursor, s, len);
        *(char **)DICTDB_AT(dst, f->offset) = *cursor;
        *cursor += DICTDB_ALIGN(len);
    } else {
        *(protobuf_c_boolean *)DICTDB_AT(dst, f->quantifier_offset) =
            *(const protobuf_c_boolean *)DICTDB_AT(src, f->quantifier_offset);
        *(int64_t *)DICTDB_AT(dst, f->offset) = *(const int64_t *)DICTDB_AT(src, f->offset);
    }
}

/* Move one field from src to dst (whose field is empty); src's becomes empty. */
static void dictdb_field_move(cpar_record_t *dst, cpar_record_t *src,
                              const ProtobufCFieldDescriptor *f)
{
    size_t size = f->label == PROTOBUF_C_LABEL_REPEATED ? sizeof(void *)
                  : f->type == PROTOBUF_C_TYPE_STRING   ? sizeof(char *)
                                                        : sizeof(int64_t);

    memcpy(DICTDB_AT(dst, f->offset), DICTDB_AT(src, f->offset), size);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        memcpy(DICTDB_AT(dst, f->quantifier_offset), DICTDB_AT(src, f->quantifier_offset),
               sizeof(size_t));
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING)
        memcpy(DICTDB_AT(dst, f->quantifier_offset), DICTDB_AT(src, f->quantifier_offset),
               sizeof(protobuf_c_boolean));
    dictdb_field_clear(src, f);
}

static uint32_t dictdb_field_bit(const ProtobufCFieldDescriptor *f)
{
    return f->id >= 2 && f->id < 2 + 32 ? 1u << (f->id - 2) : 0;
}

static int dictdb_field_selected(const ProtobufCFieldDescriptor *f, uint32_t mask, int with_id)
{
    return f->id == 1 ? with_id : (mask & dictdb_field_bit(f)) != 0;
}

static void dictdb_blocks_free(dictdb_t *db, dictdb_block_t *b)
{
    while (b) {
        dictdb_block_t *next = b->next;
        db->host->free(b);
        b = next;
    }
}

/*
 * Copy the fields `mask` names, and msg_id when `with_id`, from src into the empty dst, their
 * text and bytes into one new block (*block; NULL when they need no space).
 */
static int dictdb_record_copy(dictdb_t *db, cpar_record_t *dst, const cpar_record_t *src,
                              uint32_t mask, int with_id, dictdb_block_t **block)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;
    size_t size = 0;
    char *cursor = NULL;

    *block = NULL;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (dictdb_field_selected(&d->fields[i], mask, with_id))
            size += dictdb_field_size(src, &d->fields[i]);
    if (size) {
        *block = db->host->alloc(DICTDB_ALIGN(sizeof **block) + size);
        if (!*block)
            return CPAR_ENOMEM;
        (*block)->next = NULL;
        (*block)->size = size;
        cursor = (char *)*block + DICTDB_ALIGN(sizeof **block);
    }
    for (unsigned i = 0; i < d->n_fields; i++)
        if (dictdb_field_selected(&d->fields[i], mask, with_id))
            dictdb_field_copy(dst, src, &d->fields[i], &cursor);
    return 0;
}

static uint64_t dictdb_record_bytes(const cpar_record_t *r)
{
    uint64_t n = 0;

    for (size_t i = 0; i < r->n_buffers; i++)
        n += r->buffers[i].len;
    for (size_t i = 0; i < r->n_result_buffers; i++)
        n += r->result_buffers[i].len;
    return n;
}

/* ---- records and culled ids ------------------------------------------------------------- */

static dictdb_rec_t *dictdb_find(const dictdb_t *db, const char *id)
{
    return (dictdb_rec_t *)dictdb_table_find(&db->records, id, dictdb_hash(db, id));
}

static dictdb_tomb_t *dictdb_find_tomb(const dictdb_t *db, const char *id)
{
    return (dictdb_tomb_t *)dictdb_table_find(&db->tombs, id, dictdb_hash(db, id));
}

/* Explain a lookup of an id that is not stored; returns CPAR_ENOENT. */
static int dictdb_missing(dictdb_t *db, const char *id)
{
    if (dictdb_find_tomb(db, id))
        db->host->set_error(db->ctx, "record %s has been culled for size", id);
    else
        db->host->set_error(db->ctx, "no such msg_id %s", id);
    return CPAR_ENOENT;
}

static void dictdb_tomb_remove(dictdb_t *db, dictdb_tomb_t *t)
{
    dictdb_table_remove(&db->tombs, &t->h);
    if (t->older)
        t->older->newer = t->newer;
    else
        db->oldest_tomb = t->newer;
    if (t->newer)
        t->newer->older = t->older;
    else
        db->newest_tomb = t->older;
    db->host->free(t);
}

/* Remember that `id` was culled; forgets the oldest such id beyond tomb_cap. */
static void dictdb_tomb_add(dictdb_t *db, const char *id)
{
    size_t n = strlen(id) + 1;
    dictdb_tomb_t *t = db->host->alloc(sizeof *t + n);

    if (!t)
        return; /* only the wording of a later "not found" suffers */
    memcpy(t->id, id, n);
    t->h.key = t->id;
    t->h.hash = dictdb_hash(db, id);
    t->newer = NULL;
    t->older = db->newest_tomb;
    if (dictdb_table_insert(db, &db->tombs, &t->h) != 0) {
        db->host->free(t);
        return;
    }
    if (db->newest_tomb)
        db->newest_tomb->newer = t;
    else
        db->oldest_tomb = t;
    db->newest_tomb = t;
    while (db->tombs.count > db->tomb_cap)
        dictdb_tomb_remove(db, db->oldest_tomb);
}

static void dictdb_rec_free(dictdb_t *db, dictdb_rec_t *r)
{
    dictdb_blocks_free(db, r->blocks);
    db->host->free(r);
}

/* Give r a block of its own fields; its old blocks go (see dictdb_block_t). */
static void dictdb_compact(dictdb_t *db, dictdb_rec_t *r)
{
    cpar_record_t copy;
    dictdb_block_t *block;

    cpar_record_init(&copy);
    if (dictdb_record_copy(db, &copy, &r->rec, CPAR_REC_ALL, 1, &block) != 0)
        return; /* keep the wasteful but valid layout */
    dictdb_blocks_free(db, r->blocks);
    r->rec = copy;
    r->h.key = r->rec.msg_id;
    r->blocks = block;
    r->held = block ? block->size : 0;
    r->waste = 0;
}

/* Take a stored record out of every structure and free it. */
static void dictdb_remove(dictdb_t *db, dictdb_rec_t *r)
{
    dictdb_unindex(db, r);
    dictdb_table_remove(&db->records, &r->h);
    if (r->prev)
        r->prev->next = r->next;
    else
        db->first = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        db->last = r->prev;
    db->bytes -= r->bytes;
    dictdb_rec_free(db, r);
}

static void dictdb_cull(dictdb_t *db, dictdb_rec_t *r)
{
    db->host->log(db->ctx, CPAR_LOG_DEBUG, "culling record %s", r->rec.msg_id);
    dictdb_tomb_add(db, r->rec.msg_id);
    dictdb_remove(db, r);
}

static void dictdb_maybe_cull(dictdb_t *db)
{
    size_t count = db->records.count;

    if ((int64_t)count > db->record_limit) {
        size_t over = count - (size_t)db->record_limit;
        size_t want = (size_t)(db->cull_fraction * (double)db->record_limit);
        size_t culled = 0;
        dictdb_rec_t *r;

        if (want < over)
            want = over;
        while (culled < want && (r = dictdb_tree_first(&db->done)) != NULL) {
            dictdb_cull(db, r);
            culled++;
        }
        if (culled)
            db->host->log(db->ctx, CPAR_LOG_INFO,
                          "%zu records exceeds limit of %lld, culled oldest %zu", count,
                          (long long)db->record_limit, culled);
        if ((int64_t)db->records.count > db->record_limit && !db->warned_count)
            db->host->log(db->ctx, CPAR_LOG_WARNING,
                          "%zu records exceeds limit of %lld, and the others are still in "
                          "flight or were never submitted",
                          db->records.count, (long long)db->record_limit);
        db->warned_count = (int64_t)db->records.count > db->record_limit;
    } else {
        db->warned_count = 0;
    }

    if (db->bytes > (uint64_t)db->size_limit) {
        double target = (double)db->size_limit * (1.0 - db->cull_fraction);
        uint64_t before = db->bytes;
        size_t culled = 0;
        dictdb_rec_t *r;

        count = db->records.count;
        while ((double)db->bytes > target && (r = dictdb_tree_first(&db->done)) != NULL) {
            dictdb_cull(db, r);
            culled++;
        }
        if (culled)
            db->host->log(db->ctx, CPAR_LOG_INFO,
                          "%zu records with total buffer size %llu exceeds limit: %lld. "
                          "Culled oldest %zu records.",
                          count, (unsigned long long)before, (long long)db->size_limit, culled);
        if (db->bytes > (uint64_t)db->size_limit && !db->warned_size)
            db->host->log(db->ctx, CPAR_LOG_WARNING,
                          "buffers of %llu bytes exceed the limit of %lld, and the records "
                          "holding them are still in flight or were never submitted",
                          (unsigned long long)db->bytes, (long long)db->size_limit);
        db->warned_size = db->bytes > (uint64_t)db->size_limit;
    } else {
        db->warned_size = 0;
    }
}

/* ---- operations ------------------------------------------------------------------------- */

static int dictdb_add_record(void *state, const cpar_record_t *rec)
{
    dictdb_t *db = state;
    dictdb_tomb_t *tomb;
    dictdb_rec_t *r;
    int rc;

    if (!rec || !rec->msg_id) {
        db->host->set_error(db->ctx, "record without msg_id");
        return CPAR_EINVAL;
    }
    if (dictdb_find(db, rec->msg_id)) {
        db->host->set_error(db->ctx, "already have msg_id %s", rec->msg_id);
        return CPAR_EEXIST;
    }
    r = db->host->alloc(sizeof *r);
    if (!r) {
        db->host->set_error(db->ctx, "out of memory adding record %s", rec->msg_id);
        return CPAR_ENOMEM;
    }
    memset(r, 0, sizeof *r);
    cpar_record_init(&r->rec);
    rc = dictdb_record_copy(db, &r->rec, rec, CPAR_REC_ALL, 1, &r->blocks);
    r->held = r->blocks ? r->blocks->size : 0;
    if (rc == 0) {
        r->h.key = r->rec.msg_id;
        r->h.hash = dictdb_hash(db, r->rec.msg_id);
        rc = dictdb_table_insert(db, &db->records, &r->h);
    }
    if (rc) {
        db->host->set_error(db->ctx, "cannot copy record %s: %s", rec->msg_id, cpar_strerror(rc));
        dictdb_rec_free(db, r);
        return rc;
    }
    tomb = dictdb_find_tomb(db, rec->msg_id);
    if (tomb)
        dictdb_tomb_remove(db, tomb);
    r->seq = db->next_seq++;
    r->bytes = dictdb_record_bytes(&r->rec);
    r->prev = db->last;
    if (db->last)
        db->last->next = r;
    else
        db->first = r;
    db->last = r;
    db->bytes += r->bytes;
    dictdb_index(db, r);
    dictdb_maybe_cull(db);
    return 0;
}

static int dictdb_update_record(void *state, const cpar_record_t *rec, uint32_t fields)
{
    const ProtobufCMessageDescriptor *d = &cpar__record__descriptor;
    dictdb_t *db = state;
    cpar_record_t fresh;
    dictdb_block_t *block;
    dictdb_rec_t *r;
    int rc;

    if (!rec || !rec->msg_id) {
        db->host->set_error(db->ctx, "record without msg_id");
        return CPAR_EINVAL;
    }
    r = dictdb_find(db, rec->msg_id);
    if (!r)
        return dictdb_missing(db, rec->msg_id);
    /* Copy first, so that running out of memory leaves the record as it was. */
    cpar_record_init(&fresh);
    rc = dictdb_record_copy(db, &fresh, rec, fields, 0, &block);
    if (rc) {
        db->host->set_error(db->ctx, "cannot copy update of record %s: %s", rec->msg_id,
                            cpar_strerror(rc));
        return rc;
    }
    /* The trees' order is the submission date's: an update without one leaves the record
     * where it is, and at most joins or leaves the completed ones (a result usually). */
    if (fields & CPAR_REC_SUBMITTED)
        dictdb_unindex(db, r);
    else if (fields & CPAR_REC_COMPLETED)
        dictdb_unindex_done(db, r);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t old;

        if (!(fields & dictdb_field_bit(f)))
            continue;
        old = dictdb_field_size(&r->rec, f);
        r->held -= old;
        r->waste += old;
        dictdb_field_clear(&r->rec, f);
        dictdb_field_move(&r->rec, &fresh, f);
    }
    if (block) {
        block->next = r->blocks;
        r->blocks = block;
        r->held += block->size;
    }
    if (r->waste > r->held)
        dictdb_compact(db, r);
    db->bytes -= r->bytes;
    r->bytes = dictdb_record_bytes(&r->rec);
    db->bytes += r->bytes;
    if (fields & CPAR_REC_SUBMITTED)
        dictdb_index(db, r);
    else if (fields & CPAR_REC_COMPLETED)
        dictdb_index_done(db, r);
    dictdb_maybe_cull(db);
    return 0;
}

static int dictdb_get_record(void *state, const char *msg_id, cpar_record_cb cb, void *arg)
{
    dictdb_t *db = state;
    dictdb_rec_t *r;

    if (!msg_id || !cb) {
        db->host->set_error(db->ctx, "get_record needs a msg_id and a callback");
        return CPAR_EINVAL;
    }
    r = dictdb_find(db, msg_id);
    if (!r)
        return dictdb_missing(db, msg_id);
    cb(arg, &r->rec);
    return 0;
}

static int dictdb_drop_record(void *state, const char *msg_id)
{
    dictdb_t *db = state;
    dictdb_rec_t *r;

    if (!msg_id) {
        db->host->set_error(db->ctx, "drop_record needs a msg_id");
        return CPAR_EINVAL;
    }
    r = dictdb_find(db, msg_id);
    if (!r)
        return dictdb_missing(db, msg_id);
    dictdb_remove(db, r);
    return 0;
}

static int dictdb_get_history(void *state, cpar_msgid_cb cb, void *arg)
{
    dictdb_t *db = state;

    if (!cb) {
        db->host->set_error(db->ctx, "get_history needs a callback");
        return CPAR_EINVAL;
    }
    dictdb_tree_walk(&db->hist, db->hist.root, cb, arg);
    return 0;
}

/* ---- queries ---------------------------------------------------------------------------- */

/*
 * A query is matched record by record with the SDK's cpar_query_match. One that names its
 * records by msg_id (a term msg_id EQ or IN text, as the hub's result, resubmit and purge
 * requests are) is answered by looking those ids up instead of scanning every record.
 *
 * cpar_query_match checks the whole query before it tests anything, so a malformed query fails
 * at the first record it tests, before anything was passed on or dropped.
 */

typedef int (*dictdb_select_cb)(dictdb_t *db, dictdb_rec_t *r, void *arg);

/* The term that names the only records a query can select by msg_id, or NULL. */
static const cpar_query_term_t *dictdb_id_term(const cpar_query_t *q)
{
    for (size_t i = 0; q->terms && i < q->n_terms; i++) {
        const cpar_query_term_t *t = q->terms[i];
        int by_id = t && (t->op == CPAR__QUERY_TERM__OP__IN ||
                          (t->op == CPAR__QUERY_TERM__OP__EQ && t->n_args == 1));

        if (!by_id || !t->key || strcmp(t->key, "msg_id") != 0 || (t->n_args && !t->args))
            continue;
        for (size_t k = 0; k < t->n_args; k++)
            if (!t->args[k] || t->args[k]->kind_case != CPAR__QUERY_VALUE__KIND_TEXT ||
                !t->args[k]->text)
                by_id = 0;
        if (by_id)
            return t;
    }
    return NULL;
}

/* Test one record; pass it to `cb` when it matches. 0, or cpar_query_match's error. */
static int dictdb_select_one(dictdb_t *db, const cpar_query_t *q, dictdb_rec_t *r,
                             dictdb_select_cb cb, void *arg)
{
    int m = cpar_query_match(q, &r->rec);

    if (m < 0) {
        db->host->set_error(db->ctx, m == CPAR_ENOMEM ? "out of memory matching a query"
                                                      : "malformed query");
        return m;
    }
    return m ? cb(db, r, arg) : 0;
}

/* Call cb for every record that matches q, each once; cb may remove the record it is given. */
static int dictdb_select(dictdb_t *db, const cpar_query_t *q, dictdb_select_cb cb, void *arg)
{
    const cpar_query_term_t *ids = dictdb_id_term(q);
    dictdb_rec_t *r, *next;
    int rc = 0;

    if (ids) {
        uint64_t pass = ++db->pass;

        for (size_t k = 0; rc == 0 && k < ids->n_args; k++) {
            r = dictdb_find(db, ids->args[k]->text);
            if (!r || r->pass == pass) /* the same id twice */
                continue;
            r->pass = pass;
            rc = dictdb_select_one(db, q, r, cb, arg);
        }
        return rc;
    }
    for (r = db->first; r && rc == 0; r = next) {
        next = r->next;
        rc = dictdb_select_one(db, q, r, cb, arg);
    }
    return rc;
}

typedef struct dictdb_found {
    cpar_record_cb cb;
    void *arg;
} dictdb_found_t;

static int dictdb_found(dictdb_t *db, dictdb_rec_t *r, void *arg)
{
    dictdb_found_t *f = arg;

    (void)db;
    f->cb(f->arg, &r->rec);
    return 0;
}

/* Records are passed on whole, as stored: `fields` would only cost a copy. */
static int dictdb_find_records(void *state, const cpar_query_t *q, uint32_t fields,
                               cpar_record_cb cb, void *arg)
{
    dictdb_found_t found = {cb, arg};
    dictdb_t *db = state;

    (void)fields;
    if (!q || !cb) {
        db->host->set_error(db->ctx, "find_records needs a query and a callback");
        return CPAR_EINVAL;
    }
    return dictdb_select(db, q, dictdb_found, &found);
}

static int dictdb_dropped(dictdb_t *db, dictdb_rec_t *r, void *arg)
{
    (*(size_t *)arg)++;
    dictdb_remove(db, r);
    return 0;
}

/* Dropping keeps no tombstone: a later lookup of a dropped id says "no such msg_id". */
static int dictdb_drop_matching(void *state, const cpar_query_t *q, size_t *dropped)
{
    dictdb_t *db = state;
    size_t n = 0;
    int rc;

    if (!q) {
        db->host->set_error(db->ctx, "drop_matching needs a query");
        return CPAR_EINVAL;
    }
    rc = dictdb_select(db, q, dictdb_dropped, &n);
    if (dropped)
        *dropped = n;
    return rc;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static int dictdb_config_int(dictdb_t *db, const char *key, int64_t min, int64_t *value)
{
    int rc = db->host->config_int(db->ctx, DICTDB_SECTION, key, value);

    if (rc == CPAR_ENOENT)
        return 0;
    if (rc) {
        db->host->set_error(db->ctx, DICTDB_SECTION ".%s must be an integer", key);
        return CPAR_ECONFIG;
    }
    if (*value < min) {
        db->host->set_error(db->ctx, DICTDB_SECTION ".%s must be at least %lld, not %lld", key,
                            (long long)min, (long long)*value);
        return CPAR_ECONFIG;
    }
    return 0;
}

static int dictdb_configure(dictdb_t *db)
{
    int rc;

    db->record_limit = DICTDB_RECORD_LIMIT;
    db->size_limit = DICTDB_SIZE_LIMIT;
    db->cull_fraction = DICTDB_CULL_FRACTION;
    if ((rc = dictdb_config_int(db, "record_limit", 1, &db->record_limit)) != 0)
        return rc;
    if ((rc = dictdb_config_int(db, "size_limit", 0, &db->size_limit)) != 0)
        return rc;
    rc = db->host->config_double(db->ctx, DICTDB_SECTION, "cull_fraction", &db->cull_fraction);
    if (rc && rc != CPAR_ENOENT) {
        db->host->set_error(db->ctx, DICTDB_SECTION ".cull_fraction must be a number");
        return CPAR_ECONFIG;
    }
    if (!(db->cull_fraction >= 0.0 && db->cull_fraction <= 1.0)) {
        db->host->set_error(db->ctx, DICTDB_SECTION ".cull_fraction must be within 0..1, not %g",
                            db->cull_fraction);
        return CPAR_ECONFIG;
    }
    return 0;
}

static void dictdb_fini(void *state)
{
    dictdb_t *db = state;

    if (!db)
        return;
    while (db->first) {
        dictdb_rec_t *r = db->first;
        db->first = r->next;
        dictdb_rec_free(db, r);
    }
    while (db->oldest_tomb) {
        dictdb_tomb_t *t = db->oldest_tomb;
        db->oldest_tomb = t->newer;
        db->host->free(t);
    }
    db->host->free(db->records.buckets);
    db->host->free(db->tombs.buckets);
    db->host->free(db);
}

static int dictdb_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    dictdb_t *db = host->alloc(sizeof *db);
    int rc;

    if (!db) {
        host->set_error(ctx, "out of memory");
        return CPAR_ENOMEM;
    }
    memset(db, 0, sizeof *db);
    db->host = host;
    db->ctx = ctx;
    db->hist.off = offsetof(dictdb_rec_t, hist);
    db->done.off = offsetof(dictdb_rec_t, done);
    db->seed =
        (uint64_t)host->now_us() ^ ((uint64_t)host->monotonic_us() << 20) ^ (uint64_t)(uintptr_t)db;
    db->rng = (uint32_t)(db->seed ^ (db->seed >> 32)) | 1u;
    rc = dictdb_configure(db);
    if (rc) {
        host->free(db);
        return rc;
    }
    db->tomb_cap = db->record_limit > DICTDB_TOMB_MIN ? (size_t)db->record_limit : DICTDB_TOMB_MIN;
    host->log(ctx, CPAR_LOG_DEBUG, "record_limit %lld, size_limit %lld, cull_fraction %g",
              (long long)db->record_limit, (long long)db->size_limit, db->cull_fraction);
    *state = db;
    return 0;
}

static const char *const dictdb_sections[] = {DICTDB_SECTION, NULL};

CPAR_PLUGIN_EXPORT const cpar_dbbackend_t cpar_dbbackend_dictdb_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_DBBACKEND, "dictdb"), .version = CPAR_DICTDB_VERSION,
             .description = "task records in memory (ipyparallel's DictDB)",
             .config_sections = dictdb_sections, .init = dictdb_init, .fini = dictdb_fini},
    .add_record = dictdb_add_record,
    .update_record = dictdb_update_record,
    .get_record = dictdb_get_record,
    .drop_record = dictdb_drop_record,
    .get_history = dictdb_get_history,
    .find_records = dictdb_find_records,
    .drop_matching = dictdb_drop_matching,
};
