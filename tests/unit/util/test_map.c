/* test_map.c - the open-addressing hash map (map.c), checked against a plain array. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/map.h"

#define NKEYS 3000

static void test_put_get_replace_delete(void **state)
{
    cpar_map_t m;
    int a = 1, b = 2;
    void *old;

    (void)state;
    cpar_map_init(&m);
    assert_null(cpar_map_gets(&m, "x"));
    assert_null(cpar_map_dels(&m, "x"));
    assert_int_equal(cpar_map_put(&m, "x", 1, &a, &old), 0);
    assert_null(old);
    assert_int_equal(cpar_map_put(&m, "x", 1, &b, &old), 0);
    assert_ptr_equal(old, &a);
    assert_int_equal(m.len, 1);
    assert_ptr_equal(cpar_map_get(&m, "x", 1), &b);
    assert_null(cpar_map_get(&m, "x", 0)); /* a different (empty) key */
    assert_int_equal(cpar_map_put(&m, "", 0, &a, NULL), 0);
    assert_ptr_equal(cpar_map_get(&m, "", 0), &a);
    assert_ptr_equal(cpar_map_dels(&m, "x"), &b);
    assert_null(cpar_map_gets(&m, "x"));
    assert_int_equal(m.len, 1);
    cpar_map_fini(&m, NULL);
}

/* A fixed-seed generator, so that a failure is the same failure on every run. */
static uint32_t rnd(uint64_t *st)
{
    *st = *st * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*st >> 33);
}

static void check_all(const cpar_map_t *m, char *const *ref)
{
    size_t live = 0, seen = 0, it = 0, klen;
    const char *key;
    void *val;

    for (int k = 0; k < NKEYS; k++) {
        char name[16];

        snprintf(name, sizeof name, "key-%d", k);
        assert_ptr_equal(cpar_map_gets(m, name), ref[k]);
        live += ref[k] != NULL;
    }
    assert_int_equal(m->len, live);
    while ((it = cpar_map_next(m, it, &key, &klen, &val)) != 0) {
        char name[16] = "";
        int k = -1;

        assert_true(klen < sizeof name);
        memcpy(name, key, klen); /* keys are stored without a NUL */
        assert_int_equal(sscanf(name, "key-%d", &k), 1);
        assert_ptr_equal(val, ref[k]);
        seen++;
    }
    assert_int_equal(seen, live);
}

/*
 * Random puts, replacements and deletions over 3,000 keys, against an array: every lookup,
 * the count and an iteration agree after each phase, and live entries plus tombstones never
 * fill more than 5/8 of the table (what keeps a miss short).
 */
static void test_random_churn_matches_array(void **state)
{
    static char vals[NKEYS];
    char *ref[NKEYS] = {0};
    cpar_map_t m;
    uint64_t st = 7;

    (void)state;
    cpar_map_init(&m);
    for (int round = 0; round < 200000; round++) {
        int k = (int)(rnd(&st) % NKEYS), op = (int)(rnd(&st) % 3);
        char name[16];

        snprintf(name, sizeof name, "key-%d", k);
        if (op < 2) {
            void *old;

            assert_int_equal(cpar_map_puts(&m, name, &vals[k]), 0);
            ref[k] = &vals[k];
            assert_int_equal(cpar_map_put(&m, name, strlen(name), &vals[k], &old), 0);
            assert_ptr_equal(old, &vals[k]);
        } else {
            assert_ptr_equal(cpar_map_dels(&m, name), ref[k]);
            ref[k] = NULL;
        }
        assert_true(m.used * 8 <= m.cap * 5);
        assert_true(m.used >= m.len);
        if (round % 20000 == 0)
            check_all(&m, ref);
    }
    check_all(&m, ref);
    cpar_map_fini(&m, NULL);
}

/* Keys that come and go in order, a window of 64 live (tasks in flight): the table stays small
 * and every key is found while it is live and gone after. */
static void test_in_order_churn_stays_small(void **state)
{
    static char val;
    cpar_map_t m;

    (void)state;
    cpar_map_init(&m);
    for (int i = 0; i < 100000; i++) {
        char name[32];

        snprintf(name, sizeof name, "task-%d", i);
        assert_int_equal(cpar_map_puts(&m, name, &val), 0);
        if (i >= 64) {
            snprintf(name, sizeof name, "task-%d", i - 64);
            assert_ptr_equal(cpar_map_dels(&m, name), &val);
            assert_null(cpar_map_gets(&m, name));
            snprintf(name, sizeof name, "task-%d", i - 32); /* still in flight */
            assert_ptr_equal(cpar_map_gets(&m, name), &val);
        }
    }
    assert_int_equal(m.len, 64);
    assert_true(m.cap <= 256);
    cpar_map_fini(&m, NULL);
}

/* Deleting the entry an iteration is at is allowed, and every entry is still visited once. */
static void test_delete_while_iterating(void **state)
{
    static char val;
    cpar_map_t m;
    size_t it = 0, visited = 0, klen;
    const char *key;
    void *v;

    (void)state;
    cpar_map_init(&m);
    for (int i = 0; i < 500; i++) {
        char name[16];

        snprintf(name, sizeof name, "k%d", i);
        assert_int_equal(cpar_map_puts(&m, name, &val), 0);
    }
    while ((it = cpar_map_next(&m, it, &key, &klen, &v)) != 0) {
        char copy[16];

        memcpy(copy, key, klen);
        assert_ptr_equal(cpar_map_del(&m, copy, klen), &val);
        visited++;
    }
    assert_int_equal(visited, 500);
    assert_int_equal(m.len, 0);
    cpar_map_fini(&m, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_delete),
        cmocka_unit_test(test_random_churn_matches_array),
        cmocka_unit_test(test_in_order_churn_stays_small),
        cmocka_unit_test(test_delete_while_iterating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
