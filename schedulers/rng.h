/*
 * rng.h - the random source of the random scheduler plugins (plainrandom, twobin, weighted).
 *
 * xoshiro256** (Blackman and Vigna), seeded through splitmix64. Header-only and static, so each
 * plugin has its own copy and each instance its own state; nothing here is shared or locked.
 *
 * Seeding, in init: the integer TaskScheduler.seed when the user set one (the same seed gives the
 * same choices for the same calls, for tests and reproducible runs), else 32 bytes of
 * getrandom(), else the host's clocks mixed with the address of the instance's state.
 */
#ifndef CPAR_SCHEDULERS_RNG_H
#define CPAR_SCHEDULERS_RNG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>

#include <cparallel/plugin.h>

#define SCHED_RNG_SECTION "TaskScheduler"
#define SCHED_RNG_SEED_KEY "seed"

typedef struct sched_rng {
    uint64_t s[4];
} sched_rng_t;

static inline uint64_t sched_rng_splitmix(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline void sched_rng_seed(sched_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = sched_rng_splitmix(&seed);
}

static inline uint64_t sched_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t sched_rng_next(sched_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = sched_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sched_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n >= 1, without modulo bias (draws below 2^64 mod n are redrawn). */
static inline size_t sched_rng_below(sched_rng_t *r, size_t n)
{
    uint64_t bound = n, threshold = (0 - bound) % bound, x;

    do
        x = sched_rng_next(r);
    while (x < threshold);
    return (size_t)(x % bound);
}

/* Uniform in [0, 1) with 53 random bits, like Python's random.random(). */
static inline double sched_rng_unit(sched_rng_t *r)
{
    return (double)(sched_rng_next(r) >> 11) * 0x1.0p-53;
}

/*
 * Seed `r` for a plugin instance (see the top of this file); `salt` is the instance's state.
 * 0, or CPAR_ECONFIG (with the error text set) when TaskScheduler.seed is not an integer.
 */
static inline int sched_rng_init(sched_rng_t *r, const cpar_host_t *host, cpar_ctx_t *ctx,
                                 const void *salt)
{
    int64_t seed;
    uint64_t mix;
    int rc = host->config_int(ctx, SCHED_RNG_SECTION, SCHED_RNG_SEED_KEY, &seed);

    if (rc == 0) {
        sched_rng_seed(r, (uint64_t)seed);
        host->log(ctx, CPAR_LOG_DEBUG, "seeded with %s.%s = %lld", SCHED_RNG_SECTION,
                  SCHED_RNG_SEED_KEY, (long long)seed);
        return 0;
    }
    if (rc != CPAR_ENOENT) {
        host->set_error(ctx, "%s.%s must be an integer", SCHED_RNG_SECTION, SCHED_RNG_SEED_KEY);
        return CPAR_ECONFIG;
    }
    if (getrandom(r->s, sizeof r->s, GRND_NONBLOCK) == (ssize_t)sizeof r->s &&
        (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0)
        return 0;
    mix = (uint64_t)host->now_us() ^ sched_rng_rotl((uint64_t)host->monotonic_us(), 32) ^
          (uint64_t)(uintptr_t)salt;
    sched_rng_seed(r, mix);
    return 0;
}

#endif /* CPAR_SCHEDULERS_RNG_H */
