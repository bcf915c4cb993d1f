/* SPDX-License-Identifier: MIT */
/*
 * Lock-free random numbers for routing: a counter-based SplitMix64.  Each
 * draw atomically advances the counter, so concurrent callers never share a
 * value, and a fixed seed gives a reproducible sequence to a single caller.
 * Not cryptographic; keys and nonces come from libsodium.
 */
#ifndef NTI_RNG_H
#define NTI_RNG_H

#include <stdatomic.h>
#include <stdint.h>

#include "htab.h"

typedef struct {
    _Atomic uint64_t ctr;
} nti_rng;

static inline void
nti_rng_init(nti_rng *r, uint64_t seed)
{
    atomic_init(&r->ctr, seed);
}

static inline uint64_t
nti_rng_u64(nti_rng *r)
{
    uint64_t c = atomic_fetch_add_explicit(&r->ctr, 0x9e3779b97f4a7c15ULL,
                                           memory_order_relaxed);
    return nti_mix64(c + 0x9e3779b97f4a7c15ULL);
}

/* Uniform in [0, 1). */
static inline double
nti_rng_unit(nti_rng *r)
{
    return (double)(nti_rng_u64(r) >> 11) * 0x1.0p-53;
}

#endif
