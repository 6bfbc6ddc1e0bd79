/*
 * tagged.c - cpar_scheduler_tagged.so: an example scheduler plugin, built out of tree against the
 * installed cparallel SDK alone.
 *
 * Policy. The site gives engines tags in the controller's config,
 *
 *     c.TaskScheduler.scheme_name = "tagged"
 *     c.TaggedScheduler.tags = {"0": "gpu", "1": "cpu"}    # engine id -> tag
 *
 * and a client puts "tag": "<word>" into a task's request metadata (README.md shows how). Then:
 *
 *   - a tagged task goes to the least loaded engine carrying its tag among the engines the core
 *     offers (the first, i.e. the least recently assigned, among equals);
 *   - when engines carry the tag but none is offered because they are all busy (at the
 *     high-water mark), the task waits for one of them instead of spilling onto another engine;
 *   - a task without a tag, or whose tag no connected engine can take, goes to the least loaded
 *     engine of all, as with ipyparallel's default scheme `leastload`.
 *
 * What the core does for us (see cparallel/scheduler.h): it keeps the queue, dependencies,
 * `targets`, retries and the high-water mark, and offers choose() only engines that may take the
 * task now. The plugin only picks among them, using the notifications to remember which engine
 * carries which tag.
 *
 * The plugin links its own JSON library (jansson) to read the task's metadata and the tags
 * setting; no jansson type crosses the plugin ABI. Everything but the descriptor is static.
 */
#include <cparallel/scheduler.h>

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#ifndef TAGGED_VERSION
#define TAGGED_VERSION "1.0.0"
#endif

/* The config section this plugin reads: c.TaggedScheduler.<trait>. */
#define TAGGED_SECTION "TaggedScheduler"

/* One entry of c.TaggedScheduler.tags, and the engine that has that id now, if any. */
typedef struct tagged_entry {
    int32_t engine_id;
    char *tag;                   /* from the host allocator */
    cpar_sched_engine_t *engine; /* connected engine with this id, NULL when none; owned by the
                                    core, valid from engine_added until engine_removed */
} tagged_entry_t;

/* The plugin's state: made by init, passed back to every operation, freed by fini. */
typedef struct tagged {
    const cpar_host_t *host;
    cpar_ctx_t *ctx;
    tagged_entry_t *entries; /* from the host allocator; nentries of them */
    size_t nentries;
} tagged_t;

/* Config sections we read, so that the core does not warn about c.TaggedScheduler.* traits. */
static const char *const tagged_sections[] = {TAGGED_SECTION, NULL};

/* ---- state ---------------------------------------------------------------------------- */

static void tagged_fini(void *state)
{
    tagged_t *t = state;

    if (!t)
        return;
    for (size_t i = 0; i < t->nentries; i++)
        t->host->free(t->entries[i].tag);
    t->host->free(t->entries);
    t->host->free(t);
}

/* "0", "17": a non-negative engine id in decimal, nothing else. Returns 0 or CPAR_EINVAL. */
static int tagged_parse_id(const char *text, int32_t *out)
{
    int64_t v = 0;

    if (!*text)
        return CPAR_EINVAL;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return CPAR_EINVAL;
        v = v * 10 + (*p - '0');
        if (v > INT32_MAX)
            return CPAR_EINVAL;
    }
    *out = (int32_t)v;
    return 0;
}

/* A copy of `s` in host memory, or NULL when out of memory. */
static char *tagged_strdup(const cpar_host_t *host, const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = host->alloc(n);

    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/*
 * Fill t->entries from c.TaggedScheduler.tags, a dict of engine id (a string, as Python config
 * dict keys must be) to a non-empty tag string. An unset setting is fine: every task is then
 * scheduled by load alone. A malformed one rejects the plugin, naming what is wrong, so that a
 * typo does not silently turn tagging off.
 */
static int tagged_read_tags(tagged_t *t)
{
    const char *key;
    char *text = NULL;
    json_t *tags, *value;
    int rc;

    rc = t->host->config_json(t->ctx, TAGGED_SECTION, "tags", &text);
    if (rc == CPAR_ENOENT) {
        t->host->log(t->ctx, CPAR_LOG_INFO,
                     TAGGED_SECTION ".tags is not set: tasks go to the least loaded engine");
        return 0;
    }
    if (rc != 0) {
        t->host->set_error(t->ctx, "cannot read " TAGGED_SECTION ".tags: %s", cpar_strerror(rc));
        return rc;
    }
    /* config_json's text came from the host allocator: we free it with host->free. */
    tags = json_loads(text, JSON_DECODE_ANY, NULL);
    t->host->free(text);
    if (!json_is_object(tags)) {
        t->host->set_error(t->ctx, TAGGED_SECTION ".tags must be a dict of engine id to tag, "
                                                  "such as {\"0\": \"gpu\", \"1\": \"cpu\"}");
        json_decref(tags);
        return CPAR_ECONFIG;
    }

    t->entries = t->host->alloc((json_object_size(tags) + 1) * sizeof *t->entries);
    if (!t->entries) {
        json_decref(tags);
        return CPAR_ENOMEM;
    }
    json_object_foreach(tags, key, value)
    {
        tagged_entry_t *e = &t->entries[t->nentries];
        const char *tag = json_string_value(value);

        if (tagged_parse_id(key, &e->engine_id) != 0) {
            t->host->set_error(t->ctx, TAGGED_SECTION ".tags: key '%s' is not an engine id", key);
            rc = CPAR_ECONFIG;
            break;
        }
        if (!tag || !*tag) {
            t->host->set_error(t->ctx, TAGGED_SECTION ".tags: engine %s has no tag string", key);
            rc = CPAR_ECONFIG;
            break;
        }
        if (!(e->tag = tagged_strdup(t->host, tag))) {
            rc = CPAR_ENOMEM;
            break;
        }
        e->engine = NULL;
        t->nentries++;
        t->host->log(t->ctx, CPAR_LOG_INFO, "engine %" PRId32 " has tag '%s'", e->engine_id,
                     e->tag);
    }
    json_decref(tags);
    return rc;
}

static int tagged_init(const cpar_host_t *host, cpar_ctx_t *ctx, void **state)
{
    tagged_t *t = host->alloc(sizeof *t);
    int rc;

    if (!t)
        return CPAR_ENOMEM;
    *t = (tagged_t){.host = host, .ctx = ctx};
    if ((rc = tagged_read_tags(t)) != 0) {
        /* A failing init releases what it made; fini will not be called. */
        tagged_fini(t);
        return rc;
    }
    *state = t;
    return 0;
}

/* ---- engines come and go ---------------------------------------------------------------- */

/*
 * Remember a tagged engine: its plugin_data points to its entry (so choose() reads an offered
 * engine's tag without a lookup), and the entry points back to it (so choose() can see whether
 * an engine with a tag is connected but busy).
 */
static void tagged_engine_added(void *state, cpar_sched_engine_t *engine)
{
    tagged_t *t = state;

    for (size_t i = 0; i < t->nentries; i++) {
        tagged_entry_t *e = &t->entries[i];

        if (e->engine_id == engine->id && !e->engine) {
            e->engine = engine;
            engine->plugin_data = e;
            return;
        }
    }
}

/* Forget an engine: the core frees it once this returns. */
static void tagged_engine_removed(void *state, cpar_sched_engine_t *engine)
{
    tagged_entry_t *e = engine->plugin_data;

    (void)state;
    if (e && e->engine == engine)
        e->engine = NULL;
    engine->plugin_data = NULL;
}

/* ---- choosing an engine ------------------------------------------------------------------ */

/* The tag an engine carries, or NULL. */
static const char *tagged_engine_tag(const cpar_sched_engine_t *engine)
{
    const tagged_entry_t *e = engine->plugin_data;

    return e ? e->tag : NULL;
}

/*
 * The least loaded of engines[0..n-1] that carry `tag` (any engine when `tag` is NULL), the first
 * among equals. Returns 1 and sets *choice, or 0 when no engine qualifies.
 */
static int tagged_least_loaded(cpar_sched_engine_t *const *engines, size_t n, const char *tag,
                               size_t *choice)
{
    size_t best = n;

    for (size_t i = 0; i < n; i++) {
        const char *etag = tagged_engine_tag(engines[i]);

        if (tag && (!etag || strcmp(etag, tag) != 0))
            continue;
        if (best == n || engines[i]->load < engines[best]->load)
            best = i;
    }
    if (best == n)
        return 0;
    *choice = best;
    return 1;
}

/*
 * Whether a connected engine carrying `tag` is busy, i.e. worth waiting for. The core did not
 * offer it, and an engine with tasks outstanding is left out because it is at the high-water mark
 * and will be offered again when one finishes. An idle engine that is not offered is left out for
 * good reasons of the task's own (`targets`, an earlier failure there, `follow`): waiting for it
 * could last forever, so we do not.
 */
static int tagged_busy(const tagged_t *t, const char *tag)
{
    for (size_t i = 0; i < t->nentries; i++) {
        const tagged_entry_t *e = &t->entries[i];

        if (e->engine && e->engine->load > 0 && strcmp(e->tag, tag) == 0)
            return 1;
    }
    return 0;
}

static int tagged_choose(void *state, const cpar_sched_task_t *task,
                         cpar_sched_engine_t *const *engines, size_t n, size_t *choice)
{
    tagged_t *t = state;
    json_t *metadata = NULL, *tag_value;
    const char *tag = NULL;
    int rc = 0;

    /* The metadata is borrowed JSON text, not NUL-terminated: parse exactly metadata_len bytes. */
    if (task->metadata && task->metadata_len)
        metadata = json_loadb(task->metadata, task->metadata_len, 0, NULL);
    tag_value = json_object_get(metadata, "tag"); /* NULL when no object or no "tag" */
    if (tag_value && !(tag = json_string_value(tag_value)))
        t->host->log(t->ctx, CPAR_LOG_WARNING,
                     "task %s: metadata \"tag\" is not a string; scheduling it by load",
                     task->msg_id);

    if (tag && tagged_least_loaded(engines, n, tag, choice))
        goto done;
    if (tag && tagged_busy(t, tag)) {
        /* CPAR_EAGAIN leaves the task waiting, quietly: it is offered again later. */
        rc = CPAR_EAGAIN;
        goto done;
    }
    if (tag)
        t->host->log(t->ctx, CPAR_LOG_DEBUG,
                     "task %s: no engine tagged '%s' can take it; scheduling it by load",
                     task->msg_id, tag);
    tagged_least_loaded(engines, n, NULL, choice); /* n >= 1: always finds one */

done:
    json_decref(metadata); /* also frees the `tag` string it owns */
    return rc;
}

/* The one exported symbol; its name must be cpar_scheduler_<name>_plugin for the file
 * cpar_scheduler_<name>.so, and .name must be that same <name>. */
CPAR_PLUGIN_EXPORT const cpar_scheduler_t cpar_scheduler_tagged_plugin = {
    .base = {CPAR_PLUGIN_HEADER(CPAR_KIND_SCHEDULER, "tagged"), .version = TAGGED_VERSION,
             .description = "the least loaded engine whose tag (c.TaggedScheduler.tags) matches "
                            "the task's metadata \"tag\"; the least loaded of all otherwise",
             .config_sections = tagged_sections, .init = tagged_init, .fini = tagged_fini},
    .choose = tagged_choose,
    .engine_added = tagged_engine_added,
    .engine_removed = tagged_engine_removed,
};
