/*
 * test_scheduler_contract.c - what every scheduler plugin must do, checked through the real
 * plugin host and the core's front (cpar_sched_open), and the semantics of ipyparallel's schemes
 * (leastload, lru, plainrandom, twobin, weighted, pure) for the plugin of that name; the tests of
 * the other schemes are skipped.
 *
 * Usage: test_scheduler_contract <scheduler>   (or CPAR_SCHEDULER=<scheduler>)
 * Settings for the plugin: CPAR_CONTRACT_CONFIG='{"Section": {"trait": value, ...}, ...}'.
 * TaskScheduler.seed defaults to a fixed value, so a run is reproducible; the distribution
 * bounds are six standard deviations wide, so any seed passes.
 *
 * The tests play the core: engines live from engine_added until engine_removed returns (then
 * they are freed, so a plugin holding on to one shows up under ASan and valgrind), loads and
 * counters follow task_assigned and task_finished, and engines are offered in least recently
 * assigned order, a new engine first, restricted to those under the high-water mark.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plugins/sched.h"
#include "util/log.h"

#include "contractcfg.h"

#define CONTRACT_SEED 20240611
#define MAX_ENGINES 1000

static const char *scheduler;

typedef struct engine {
    cpar_sched_engine_t e; /* first, so that a cpar_sched_engine_t * is an engine_t * */
    char uuid[48];
} engine_t;

typedef struct fixture {
    cpar_config_t *cfg;
    cpar_plughost_t *host;
    cpar_sched_t *s;
    /* live engines in least recently assigned order */
    engine_t *lru[MAX_ENGINES];
    size_t nlive;
    /* live engines in engine_added order and the one chosen last: pure's expected ring */
    engine_t *ring[MAX_ENGINES];
    size_t nring;
    engine_t *cursor;
    int32_t next_id;
    uint64_t rand; /* the test's own random numbers (xorshift64) */
} fixture_t;

/* ---- helpers ---------------------------------------------------------------------------- */

static int is(const char *name)
{
    return strcmp(scheduler, name) == 0;
}

static int is_random_scheme(void)
{
    return is("plainrandom") || is("twobin") || is("weighted");
}

static uint64_t test_rand(fixture_t *fx)
{
    fx->rand ^= fx->rand << 13;
    fx->rand ^= fx->rand >> 7;
    fx->rand ^= fx->rand << 17;
    return fx->rand;
}

static size_t test_below(fixture_t *fx, size_t n)
{
    return (size_t)(test_rand(fx) % n);
}

/* A config with CPAR_CONTRACT_CONFIG and, unless `seed` is NULL, TaskScheduler.seed. */
static cpar_config_t *config_new(json_t *seed)
{
    cpar_config_t *cfg = cpar_config_new();

    assert_non_null(cfg);
    contract_load_config(cfg);
    if (seed)
        assert_int_equal(
            cpar_config_set(cfg, "TaskScheduler", "seed", seed, CPAR_SRC_DEFAULT, "test"), 0);
    return cfg;
}

static cpar_plughost_t *host_new(const cpar_config_t *cfg)
{
    cpar_plughost_info_t info = {.program = "test_scheduler_contract",
                                 .profile_dir = "/nonexistent",
                                 .cluster_id = "",
                                 .session = "s"};
    cpar_plughost_t *h = NULL;

    assert_int_equal(cpar_plughost_new(&h, cfg, NULL, &info), 0);
    return h;
}

static cpar_sched_t *open_ok(cpar_plughost_t *h)
{
    cpar_sched_t *s = NULL;
    char err[1024];
    int rc = cpar_sched_open(h, scheduler, &s, err, sizeof err);

    if (rc)
        fail_msg("cpar_sched_open(%s): %s: %s", scheduler, cpar_err_name(rc), err);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    fx->cfg = config_new(json_integer(CONTRACT_SEED));
    fx->host = host_new(fx->cfg);
    fx->s = open_ok(fx->host);
    fx->rand = UINT64_C(0x2545f4914f6cdd1d);
    *state = fx;
    return 0;
}

static void engine_remove(fixture_t *fx, size_t lru_index);

static int teardown(void **state)
{
    fixture_t *fx = *state;

    while (fx->nlive)
        engine_remove(fx, test_below(fx, fx->nlive));
    cpar_sched_close(fx->host, fx->s);
    cpar_plughost_free(fx->host);
    cpar_config_free(fx->cfg);
    free(fx);
    return 0;
}

static cpar_sched_task_t task_of(const char *msg_id)
{
    static const char md[] = "{\"after\": [], \"follow\": [], \"targets\": [], \"retries\": 0}";

    return (cpar_sched_task_t){
        .msg_id = msg_id, .metadata = md, .metadata_len = sizeof md - 1, .attempts = 0};
}

/* A new engine, announced, at the head of the LRU list and the end of the ring. */
static engine_t *engine_add(fixture_t *fx)
{
    engine_t *en = calloc(1, sizeof *en);

    assert_non_null(en);
    assert_true(fx->nlive < MAX_ENGINES);
    en->e.id = fx->next_id++;
    snprintf(en->uuid, sizeof en->uuid, "%08x-0000-engine-%d", (unsigned)en->e.id, en->e.id);
    en->e.uuid = en->uuid;
    cpar_sched_engine_added(fx->s, &en->e);
    memmove(&fx->lru[1], &fx->lru[0], fx->nlive * sizeof fx->lru[0]);
    fx->lru[0] = en;
    fx->nlive++;
    fx->ring[fx->nring++] = en;
    return en;
}

static size_t ring_index(const fixture_t *fx, const engine_t *en)
{
    for (size_t i = 0; i < fx->nring; i++)
        if (fx->ring[i] == en)
            return i;
    fail_msg("engine %d is not in the ring", en->e.id);
    return 0;
}

/* Remove lru[lru_index] (tasks in flight and all): the plugin is told, then it is freed. */
static void engine_remove(fixture_t *fx, size_t lru_index)
{
    engine_t *en = fx->lru[lru_index];
    size_t r = ring_index(fx, en);

    cpar_sched_engine_removed(fx->s, &en->e);
    if (fx->cursor == en)
        fx->cursor = fx->nring > 1 ? fx->ring[(r + fx->nring - 1) % fx->nring] : NULL;
    memmove(&fx->ring[r], &fx->ring[r + 1], (fx->nring - r - 1) * sizeof fx->ring[0]);
    fx->nring--;
    memmove(&fx->lru[lru_index], &fx->lru[lru_index + 1],
            (fx->nlive - lru_index - 1) * sizeof fx->lru[0]);
    fx->nlive--;
    memset(en, 0xa5, sizeof *en);
    free(en);
}

static size_t lru_index_of(const fixture_t *fx, const engine_t *en)
{
    for (size_t i = 0; i < fx->nlive; i++)
        if (fx->lru[i] == en)
            return i;
    fail_msg("engine %d is not live", en->e.id);
    return 0;
}

/* The core's side of sending a task to `en`: load up, move to the LRU tail, tell the plugin. */
static void assign(fixture_t *fx, engine_t *en, const cpar_sched_task_t *task)
{
    size_t i = lru_index_of(fx, en);

    en->e.load++;
    en->e.assigned++;
    memmove(&fx->lru[i], &fx->lru[i + 1], (fx->nlive - i - 1) * sizeof fx->lru[0]);
    fx->lru[fx->nlive - 1] = en;
    cpar_sched_task_assigned(fx->s, task, &en->e);
}

static void finish(fixture_t *fx, engine_t *en, const cpar_sched_task_t *task, int status)
{
    assert_true(en->e.load > 0);
    en->e.load--;
    en->e.finished++;
    cpar_sched_task_finished(fx->s, task, &en->e, status);
}

/* Live engines under `hwm` (0: no limit) in LRU order; returns how many. */
static size_t offer(const fixture_t *fx, uint32_t hwm, cpar_sched_engine_t **out)
{
    size_t n = 0;

    for (size_t i = 0; i < fx->nlive; i++)
        if (hwm == 0 || fx->lru[i]->e.load < hwm)
            out[n++] = &fx->lru[i]->e;
    return n;
}

/* What a deterministic scheme must pick among `offered`, or -1 for a random one. */
static long expected_choice(const fixture_t *fx, cpar_sched_engine_t *const *offered, size_t n)
{
    if (is("lru"))
        return 0;
    if (is("leastload")) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (offered[i]->load < offered[best]->load)
                best = i;
        return (long)best;
    }
    if (is("pure")) {
        size_t start = fx->cursor ? ring_index(fx, fx->cursor) + 1 : 0;
        for (size_t k = 0; k < fx->nring; k++) {
            const engine_t *en = fx->ring[(start + k) % fx->nring];
            for (size_t i = 0; i < n; i++)
                if (offered[i] == &en->e)
                    return (long)i;
        }
        fail_msg("no offered engine is in the ring");
    }
    return -1;
}

/* Choose through the front; checks the range and, for deterministic schemes, the pick. */
static size_t choose(fixture_t *fx, const cpar_sched_task_t *task,
                     cpar_sched_engine_t *const *offered, size_t n)
{
    long want = expected_choice(fx, offered, n);
    size_t choice = (size_t)-1;
    int rc = cpar_sched_choose(fx->s, task, offered, n, &choice);

    if (rc)
        fail_msg("choose among %zu: %s: %s", n, cpar_err_name(rc), cpar_sched_error(fx->s));
    if (choice >= n)
        fail_msg("choose among %zu picked %zu", n, choice);
    if (want >= 0 && choice != (size_t)want)
        fail_msg("%s among %zu engines picked %zu (engine %d), expected %ld (engine %d)", scheduler,
                 n, choice, offered[choice]->id, want, offered[want]->id);
    if (is("pure"))
        fx->cursor = (engine_t *)offered[choice];
    return choice;
}

/*
 * Engines with the given loads, offered in that order, for the distribution tests (they do not
 * assign, so loads stay as given). Returns the number of engines.
 */
static size_t engines_with_loads(fixture_t *fx, const uint32_t *loads, size_t n,
                                 cpar_sched_engine_t **offered)
{
    for (size_t i = 0; i < n; i++)
        engine_add(fx);
    for (size_t i = 0; i < n; i++) {
        offered[i] = &fx->lru[i]->e;
        offered[i]->load = loads[i];
    }
    return n;
}

/* Count the picks of `draws` choices among `offered`. */
static void draw(fixture_t *fx, cpar_sched_engine_t *const *offered, size_t n, size_t draws,
                 size_t *counts)
{
    cpar_sched_task_t t = task_of("draw");

    memset(counts, 0, n * sizeof *counts);
    for (size_t d = 0; d < draws; d++)
        counts[choose(fx, &t, offered, n)]++;
}

/*
 * Each counts[i] within six standard deviations (+1) of draws * num[i] / den, where the
 * probabilities num[i] / den are exact. Compared squared, in integers.
 */
static void assert_distribution(const size_t *counts, const uint64_t *num, uint64_t den, size_t n,
                                size_t draws)
{
    for (size_t i = 0; i < n; i++) {
        double expected = (double)draws * (double)num[i] / (double)den;
        double var = expected * (1.0 - (double)num[i] / (double)den);
        double diff = (double)counts[i] - expected;
        double bound = 6.0 * 6.0 * var;

        if (diff < 0)
            diff = -diff;
        if (diff > 1.0 && (diff - 1.0) * (diff - 1.0) > bound)
            fail_msg("%s: index %zu of %zu picked %zu times in %zu draws, expected %.1f", scheduler,
                     i, n, counts[i], draws, expected);
    }
}

/* ---- the contract: every scheduler ------------------------------------------------------ */

static void test_descriptor(void **state)
{
    fixture_t *fx = *state;
    cpar_plugin_inst_t *inst;
    const cpar_scheduler_t *d;
    char err[1024];
    int has_section = 0;

    assert_int_equal(
        cpar_plughost_load(fx->host, CPAR_KIND_SCHEDULER, scheduler, &inst, err, sizeof err), 0);
    d = (const cpar_scheduler_t *)cpar_plugin_desc(inst);
    assert_int_equal(d->base.kind, CPAR_KIND_SCHEDULER);
    assert_string_equal(d->base.name, scheduler);
    assert_non_null(d->base.version);
    assert_non_null(d->base.description);
    assert_true(d->base.description[0] != '\0');
    assert_null(strchr(d->base.description, '\n'));
    assert_non_null(d->choose);
    for (const char *const *s = d->base.config_sections; s && *s; s++)
        has_section |= strcmp(*s, "TaskScheduler") == 0;
    assert_true(has_section);
    cpar_plughost_unload(fx->host, inst);

    assert_string_equal(cpar_sched_name(fx->s), scheduler);
    if (is("pure"))
        assert_int_equal(cpar_sched_flags(fx->s), CPAR_SCHED_PLAIN);
    else if (is("leastload") || is("lru") || is_random_scheme())
        assert_int_equal(cpar_sched_flags(fx->s), 0);
}

/* Several instances at once, opened and closed in different orders, each with its own state. */
static void test_init_fini(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_t *s[3];
    engine_t *en[2];
    cpar_sched_engine_t *offered[2];
    cpar_sched_task_t t = task_of("t");
    size_t choice;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++)
            s[i] = open_ok(fx->host);
        for (int i = 0; i < 2; i++) {
            en[i] = calloc(1, sizeof *en[i]);
            assert_non_null(en[i]);
            en[i]->e.id = i;
            en[i]->e.uuid = en[i]->uuid;
            snprintf(en[i]->uuid, sizeof en[i]->uuid, "init-%d", i);
            offered[i] = &en[i]->e;
        }
        /* the same engine objects are not shared between instances: one instance at a time */
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 2; k++)
                cpar_sched_engine_added(s[i], &en[k]->e);
            assert_int_equal(cpar_sched_choose(s[i], &t, offered, 2, &choice), 0);
            assert_true(choice < 2);
            for (int k = 0; k < 2; k++)
                cpar_sched_engine_removed(s[i], &en[k]->e);
        }
        /* an instance closed while it still knows engines */
        for (int k = 0; k < 2; k++)
            cpar_sched_engine_added(s[round], &en[k]->e);
        cpar_sched_close(fx->host, s[(round + 1) % 3]);
        cpar_sched_close(fx->host, s[round]);
        cpar_sched_close(fx->host, s[(round + 2) % 3]);
        for (int i = 0; i < 2; i++)
            free(en[i]);
    }
}

static void test_single_engine(void **state)
{
    fixture_t *fx = *state;
    engine_t *en = engine_add(fx);
    cpar_sched_engine_t *offered[1] = {&en->e};
    cpar_sched_task_t t = task_of("one");

    for (uint32_t load = 0; load < 100; load++) {
        en->e.load = load == 99 ? UINT32_MAX : load;
        assert_int_equal(choose(fx, &t, offered, 1), 0);
    }
    en->e.load = 0;
}

/* Sizes 1..1000, random loads (also huge ones), random subsets in random order. */
static void test_choice_in_range(void **state)
{
    fixture_t *fx = *state;
    static cpar_sched_engine_t *offered[MAX_ENGINES];
    const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 16, 31, 64, 100, 257, 500, 999, 1000};
    cpar_sched_task_t t = task_of("range");

    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t size = sizes[si];

        while (fx->nlive < size)
            engine_add(fx);
        while (fx->nlive > size)
            engine_remove(fx, test_below(fx, fx->nlive));
        for (int round = 0; round < 20; round++) {
            size_t n = 0;
            uint32_t span = round % 4 == 0 ? 1 : round % 4 == 1 ? 3 : round % 4 == 2 ? 50 : 0;

            for (size_t i = 0; i < fx->nlive; i++) {
                cpar_sched_engine_t *e = &fx->lru[i]->e;
                e->load = span ? (uint32_t)test_below(fx, span) : (uint32_t)test_rand(fx);
                if (round < 10 || test_below(fx, 2))
                    offered[n++] = e;
            }
            if (n == 0)
                offered[n++] = &fx->lru[0]->e;
            for (size_t i = n; i > 1; i--) {
                size_t j = test_below(fx, i);
                cpar_sched_engine_t *tmp = offered[i - 1];
                offered[i - 1] = offered[j];
                offered[j] = tmp;
            }
            for (int k = 0; k < 5; k++)
                choose(fx, &t, offered, n);
        }
    }
    for (size_t i = 0; i < fx->nlive; i++)
        fx->lru[i]->e.load = 0;
}

/*
 * The core's life: 100 engines, tasks assigned under a changing hwm and finished at random,
 * half the engines removed in random order (with tasks in flight), more added, and so on.
 */
static void test_engine_churn(void **state)
{
    fixture_t *fx = *state;
    static cpar_sched_engine_t *offered[MAX_ENGINES];
    cpar_sched_task_t t = task_of("churn");
    const uint32_t hwms[] = {1, 0, 2, 1, 3};

    for (int i = 0; i < 100; i++)
        engine_add(fx);
    for (int phase = 0; phase < 10; phase++) {
        uint32_t hwm = hwms[phase % 5];

        for (int step = 0; step < 400; step++) {
            size_t n = offer(fx, hwm, offered);

            if (n > 0 && test_below(fx, 3) != 0) {
                size_t c = choose(fx, &t, offered, n);
                assign(fx, (engine_t *)offered[c], &t);
            } else {
                engine_t *en = fx->lru[test_below(fx, fx->nlive)];
                if (en->e.load > 0)
                    finish(fx, en, &t, (int)test_below(fx, 3));
            }
        }
        if (phase % 2 == 0) {
            size_t half = fx->nlive / 2;
            for (size_t i = 0; i < half; i++)
                engine_remove(fx, test_below(fx, fx->nlive));
        } else {
            size_t more = 30 + test_below(fx, 40);
            for (size_t i = 0; i < more && fx->nlive < MAX_ENGINES; i++)
                engine_add(fx);
        }
        if (fx->nlive == 0)
            engine_add(fx);
    }
    /* drain: finish everything, then every engine is offered */
    for (size_t i = 0; i < fx->nlive; i++)
        while (fx->lru[i]->e.load > 0)
            finish(fx, fx->lru[i], &t, 0);
    assert_int_equal(offer(fx, 1, offered), fx->nlive);
}

static void test_equal_loads(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[8];
    size_t counts[8];
    const uint32_t zeros[8] = {0}, threes[8] = {3, 3, 3, 3, 3, 3, 3, 3};
    uint64_t num[8];
    const size_t draws = 80000;

    for (int pass = 0; pass < 2; pass++) {
        while (fx->nlive)
            engine_remove(fx, 0);
        engines_with_loads(fx, pass ? threes : zeros, 8, offered);
        draw(fx, offered, 8, draws, counts);
        if (is("leastload") || is("lru")) {
            assert_int_equal(counts[0], draws);
        } else if (is("pure") || is("plainrandom") || is("weighted")) {
            for (size_t i = 0; i < 8; i++)
                num[i] = 1;
            assert_distribution(counts, num, 8, 8, draws);
        } else if (is("twobin")) {
            for (size_t i = 0; i < 8; i++)
                num[i] = 2 * (8 - i) - 1;
            assert_distribution(counts, num, 64, 8, draws);
        }
    }
}

static void test_empty_metadata(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[3];
    const cpar_sched_task_t tasks[] = {
        {.msg_id = "", .metadata = NULL, .metadata_len = 0},
        {.msg_id = "m", .metadata = "{}", .metadata_len = 2},
        {.msg_id = "r", .metadata = "{}x", .metadata_len = 2, .attempts = 7},
    };

    for (int i = 0; i < 3; i++)
        engine_add(fx);
    for (size_t k = 0; k < sizeof tasks / sizeof tasks[0]; k++) {
        size_t n = offer(fx, 0, offered);
        size_t c = choose(fx, &tasks[k], offered, n);
        engine_t *en = (engine_t *)offered[c];

        assign(fx, en, &tasks[k]);
        (void)cpar_sched_priority(fx->s, &tasks[k]);
        finish(fx, en, &tasks[k], (int)k);
    }
}

/* No engine to offer is the core's business: the front refuses it. */
static void test_no_engines(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[1] = {NULL};
    cpar_sched_task_t t = task_of("none");
    size_t choice = 42;

    assert_int_equal(cpar_sched_choose(fx->s, &t, offered, 0, &choice), CPAR_EINVAL);
    assert_int_equal(choice, 42);
    assert_string_equal(cpar_sched_error(fx->s), "choose: no engine offered");
}

/* 64 choices among `n` engines of a fresh instance of the plugin in host `h`. */
static void seed_picks(cpar_plughost_t *h, engine_t *engines, size_t n, size_t picks[64])
{
    static cpar_sched_engine_t *offered[MAX_ENGINES];
    cpar_sched_task_t t = task_of("seed");
    cpar_sched_t *s = open_ok(h);

    for (size_t i = 0; i < n; i++) {
        offered[i] = &engines[i].e;
        cpar_sched_engine_added(s, offered[i]);
    }
    for (size_t d = 0; d < 64; d++) {
        assert_int_equal(cpar_sched_choose(s, &t, offered, n, &picks[d]), 0);
        assert_true(picks[d] < n);
    }
    for (size_t i = 0; i < n; i++)
        cpar_sched_engine_removed(s, offered[i]);
    cpar_sched_close(h, s);
}

/* The same seed gives the same choices; unseeded instances differ (random schemes). */
static void test_seed(void **state)
{
    engine_t *engines = calloc(MAX_ENGINES, sizeof *engines);
    size_t picks[2][64];
    char err[1024];

    assert_non_null(engines);
    for (size_t i = 0; i < MAX_ENGINES; i++) {
        engines[i].e.id = (int32_t)i;
        engines[i].e.uuid = engines[i].uuid;
        snprintf(engines[i].uuid, sizeof engines[i].uuid, "seed-%zu", i);
    }
    for (int seeded = 1; seeded >= 0; seeded--) {
        cpar_config_t *cfg = config_new(seeded ? json_integer(7) : NULL);
        cpar_plughost_t *h = host_new(cfg);

        /* unless CPAR_CONTRACT_CONFIG seeds every instance */
        if (seeded || !cpar_config_get(cfg, "TaskScheduler", "seed")) {
            seed_picks(h, engines, MAX_ENGINES, picks[0]);
            seed_picks(h, engines, MAX_ENGINES, picks[1]);
            if (seeded || !is_random_scheme())
                assert_memory_equal(picks[0], picks[1], sizeof picks[0]);
            else
                assert_memory_not_equal(picks[0], picks[1], sizeof picks[0]);
        }
        cpar_plughost_free(h);
        cpar_config_free(cfg);
    }
    free(engines);

    if (is_random_scheme()) {
        cpar_config_t *cfg = cpar_config_new();
        cpar_plughost_t *h;
        cpar_sched_t *s = NULL;

        assert_non_null(cfg);
        assert_int_equal(cpar_config_set(cfg, "TaskScheduler", "seed", json_string("lucky"),
                                         CPAR_SRC_CLI, "--TaskScheduler.seed"),
                         0);
        h = host_new(cfg);
        assert_int_equal(cpar_sched_open(h, scheduler, &s, err, sizeof err), CPAR_ECONFIG);
        assert_null(s);
        assert_non_null(
            strstr(err, "init failed: CPAR_ECONFIG: TaskScheduler.seed must be an integer"));
        cpar_plughost_free(h);
        cpar_config_free(cfg);
    }
    (void)state;
}

/* ---- ipyparallel's schemes ------------------------------------------------------------- */

static void test_leastload_first_minimum(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        uint32_t loads[6];
        size_t n, want;
    } cases[] = {
        {{3, 1, 2, 1, 0, 0}, 6, 4},
        {{2, 2, 2}, 3, 0},
        {{5, 4, 3, 2, 1, 1}, 6, 4},
        {{0}, 1, 0},
        {{1, 0}, 2, 1},
        {{7, 7, 6, 7, 6, 9}, 6, 2},
        {{0, 0, 0, 0, 0, 0}, 6, 0},
        {{UINT32_MAX, 1, 1}, 3, 1},
    };
    cpar_sched_engine_t *offered[6];
    cpar_sched_task_t t = task_of("ll");
    size_t choice;

    for (int i = 0; i < 6; i++)
        engine_add(fx);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t i = 0; i < cases[c].n; i++) {
            offered[i] = &fx->lru[i]->e;
            offered[i]->load = cases[c].loads[i];
        }
        assert_int_equal(cpar_sched_choose(fx->s, &t, offered, cases[c].n, &choice), 0);
        assert_int_equal(choice, cases[c].want);
    }
    /* ipyparallel's trace (schedulers doc §3.4): hwm=0, 7 tasks on three engines rotate */
    while (fx->nlive)
        engine_remove(fx, 0);
    for (int i = 0; i < 3; i++)
        engine_add(fx);
    {
        const engine_t *e0 = fx->lru[2], *e1 = fx->lru[1], *e2 = fx->lru[0];
        const engine_t *want[7] = {e2, e1, e0, e2, e1, e0, e2};

        for (int k = 0; k < 7; k++) {
            size_t n = offer(fx, 0, offered);
            engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
            assert_ptr_equal(en, want[k]);
            assign(fx, en, &t);
        }
        assert_int_equal(e2->e.load, 3);
        assert_int_equal(e1->e.load, 2);
        assert_int_equal(e0->e.load, 2);
    }
}

static void test_lru_picks_head(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[50];
    cpar_sched_task_t t = task_of("lru");
    size_t choice;

    for (int i = 0; i < 50; i++)
        engine_add(fx);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + test_below(fx, 50);
        for (size_t i = 0; i < n; i++) {
            offered[i] = &fx->lru[i]->e;
            offered[i]->load = (uint32_t)test_below(fx, 5);
        }
        assert_int_equal(cpar_sched_choose(fx->s, &t, offered, n, &choice), 0);
        assert_int_equal(choice, 0);
    }
}

static void test_plainrandom_uniform(void **state)
{
    fixture_t *fx = *state;
    static cpar_sched_engine_t *offered[MAX_ENGINES];
    static size_t counts[MAX_ENGINES];
    uint64_t num[10];
    const uint32_t loads[10] = {9, 0, 0, 5, 1, 2, 3, 0, 7, 4};

    engines_with_loads(fx, loads, 10, offered);
    draw(fx, offered, 10, 100000, counts);
    for (size_t i = 0; i < 10; i++)
        num[i] = 1;
    assert_distribution(counts, num, 10, 10, 100000);
    /* every one of 1000 engines is reached (P(miss) per engine about e^-100) */
    while (fx->nlive < 1000)
        engine_add(fx);
    for (size_t i = 0; i < 1000; i++)
        offered[i] = &fx->lru[i]->e;
    draw(fx, offered, 1000, 100000, counts);
    for (size_t i = 0; i < 1000; i++)
        if (counts[i] == 0)
            fail_msg("index %zu of 1000 never picked in 100000 draws", i);
}

static void test_twobin_distribution(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[10];
    size_t counts[10];
    uint64_t num[10];
    const uint32_t loads[10] = {0, 5, 0, 1, 0, 0, 2, 0, 0, 9};
    const size_t sizes[] = {2, 3, 10};
    const size_t draws = 100000;

    engines_with_loads(fx, loads, 10, offered);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];

        draw(fx, offered, n, draws, counts);
        /* P(i) = (2(n-i)-1)/n^2; P(0) = (2n-1)/n^2 */
        for (size_t i = 0; i < n; i++)
            num[i] = 2 * (n - i) - 1;
        assert_distribution(counts, num, n * n, n, draws);
    }
}

static void test_weighted_prefers_idle(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[6];
    size_t counts[6];
    uint64_t num[6];
    const uint32_t busy_first[4] = {0, 1, 2, 4};
    const uint32_t mixed[6] = {3, 0, 5, 0, 0, 2};
    const uint32_t two[2] = {1, 2};
    const uint32_t ones[3] = {1, 1, 1};

    /* ipyparallel: loads [0,1,2,4] give index 0 in 20000 draws out of 20000 */
    engines_with_loads(fx, busy_first, 4, offered);
    draw(fx, offered, 4, 10000, counts);
    assert_int_equal(counts[0], 10000);

    /* only the idle ones, about equally */
    while (fx->nlive)
        engine_remove(fx, 0);
    engines_with_loads(fx, mixed, 6, offered);
    draw(fx, offered, 6, 30000, counts);
    assert_int_equal(counts[0] + counts[2] + counts[5], 0);
    num[0] = num[2] = num[5] = 0;
    num[1] = num[3] = num[4] = 1;
    assert_distribution(counts, num, 3, 6, 30000);

    /* weights 1 and 1/2: one draw would give index 1 a third of the time, the less loaded of
     * two draws only when both are 1: 1/9 */
    while (fx->nlive)
        engine_remove(fx, 0);
    engines_with_loads(fx, two, 2, offered);
    draw(fx, offered, 2, 90000, counts);
    num[0] = 8;
    num[1] = 1;
    assert_distribution(counts, num, 9, 2, 90000);

    /* equal weights keep the first draw: uniform */
    while (fx->nlive)
        engine_remove(fx, 0);
    engines_with_loads(fx, ones, 3, offered);
    draw(fx, offered, 3, 60000, counts);
    num[0] = num[1] = num[2] = 1;
    assert_distribution(counts, num, 3, 3, 60000);
}

static void test_pure_round_robin(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t *offered[16];
    engine_t *byid[16];
    cpar_sched_task_t t = task_of("rr");
    size_t choice;

    for (int i = 0; i < 10; i++)
        byid[i] = engine_add(fx);

    /* all offered, in LRU order that changes with every assignment: e0, e1, ..., e9, e0, ... */
    for (int k = 0; k < 30; k++) {
        size_t n = offer(fx, 0, offered);
        engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
        assert_ptr_equal(en, byid[k % 10]);
        assign(fx, en, &t);
    }
    /* only even engines can take tasks: the rotation skips the others */
    {
        const int want[] = {0, 2, 4, 6};
        size_t n = 0;

        for (int i = 0; i < 10; i += 2)
            offered[n++] = &byid[i]->e;
        for (int k = 0; k < 4; k++) {
            assert_int_equal(cpar_sched_choose(fx->s, &t, offered, n, &choice), 0);
            assert_ptr_equal(offered[choice], &byid[want[k]]->e);
        }
        fx->cursor = byid[6];
    }
    /* a new engine joins at the end of the rotation */
    byid[10] = engine_add(fx);
    {
        const int want[] = {7, 8, 9, 10, 0, 1};

        for (int k = 0; k < 6; k++) {
            size_t n = offer(fx, 0, offered);
            engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
            assert_ptr_equal(en, byid[want[k]]);
        }
    }
    /* removing the engine chosen last: the rotation goes on with the one after it */
    engine_remove(fx, lru_index_of(fx, byid[1]));
    {
        size_t n = offer(fx, 0, offered);
        engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
        assert_ptr_equal(en, byid[2]);
    }
    /* removing the first engine added: after e10 comes e2 */
    engine_remove(fx, lru_index_of(fx, byid[0]));
    {
        const int want[] = {3, 4, 5, 6, 7, 8, 9, 10, 2, 3};

        for (int k = 0; k < 10; k++) {
            size_t n = offer(fx, 0, offered);
            engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
            assert_ptr_equal(en, byid[want[k]]);
        }
    }
}

/* Engines the core never announced are outside the ring; with none announced, the first. */
static void test_pure_unknown_engines(void **state)
{
    fixture_t *fx = *state;
    cpar_sched_engine_t strangers[3] = {
        {.id = 100, .uuid = "s0"}, {.id = 101, .uuid = "s1"}, {.id = 102, .uuid = "s2"}};
    cpar_sched_engine_t *offered[4] = {&strangers[0], &strangers[1], &strangers[2]};
    cpar_sched_task_t t = task_of("unknown");
    engine_t *known;
    size_t choice;

    assert_int_equal(cpar_sched_choose(fx->s, &t, offered, 3, &choice), 0);
    assert_int_equal(choice, 0);
    known = engine_add(fx);
    offered[3] = &known->e;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cpar_sched_choose(fx->s, &t, offered, 4, &choice), 0);
        assert_int_equal(choice, 3);
    }
}

/* After churn, every live engine once per round when all are offered. */
static void test_pure_covers_all_after_churn(void **state)
{
    fixture_t *fx = *state;
    static cpar_sched_engine_t *offered[MAX_ENGINES];
    static int seen[MAX_ENGINES * 4];
    cpar_sched_task_t t = task_of("cover");

    for (int i = 0; i < 100; i++)
        engine_add(fx);
    for (int round = 0; round < 5; round++) {
        size_t half = fx->nlive / 2, more = 10 + test_below(fx, 40);

        for (size_t i = 0; i < half; i++)
            engine_remove(fx, test_below(fx, fx->nlive));
        for (size_t i = 0; i < more; i++)
            engine_add(fx);
        for (size_t k = 0; k < 7; k++) {
            size_t n = offer(fx, 0, offered);
            choose(fx, &t, offered, n);
        }
        memset(seen, 0, sizeof seen);
        for (size_t k = 0; k < fx->nlive; k++) {
            size_t n = offer(fx, 0, offered);
            engine_t *en = (engine_t *)offered[choose(fx, &t, offered, n)];
            assert_int_equal(seen[en->e.id], 0);
            seen[en->e.id] = 1;
        }
    }
}

int main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    /* The contract, then each scheme's own promises, registered only for that scheme. */
    static const struct {
        struct CMUnitTest test;
        const char *only;
    } all[] = {
        {T(test_descriptor), NULL},
        {T(test_init_fini), NULL},
        {T(test_single_engine), NULL},
        {T(test_choice_in_range), NULL},
        {T(test_engine_churn), NULL},
        {T(test_equal_loads), NULL},
        {T(test_empty_metadata), NULL},
        {T(test_no_engines), NULL},
        {T(test_seed), NULL},
        {T(test_leastload_first_minimum), "leastload"},
        {T(test_lru_picks_head), "lru"},
        {T(test_plainrandom_uniform), "plainrandom"},
        {T(test_twobin_distribution), "twobin"},
        {T(test_weighted_prefers_idle), "weighted"},
        {T(test_pure_round_robin), "pure"},
        {T(test_pure_unknown_engines), "pure"},
        {T(test_pure_covers_all_after_churn), "pure"},
    };
#undef T
    struct CMUnitTest tests[sizeof all / sizeof all[0]];
    size_t n = 0;
    char name[128];

    scheduler = argc > 1 ? argv[1] : getenv("CPAR_SCHEDULER");
    if (!scheduler || !*scheduler) {
        fprintf(stderr, "usage: %s <scheduler>   (or set CPAR_SCHEDULER)\n", argv[0]);
        return 2;
    }
    cpar_log_set_program("test_scheduler_contract");
    cpar_log_set_level(CPAR_LOG_WARNING);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!all[i].only || is(all[i].only))
            tests[n++] = all[i].test;
    snprintf(name, sizeof name, "scheduler contract: %s", scheduler);
    return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}
