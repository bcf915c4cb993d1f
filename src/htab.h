/* SPDX-License-Identifier: MIT */
/*
 * Intrusive chained hash table keyed by a 64-bit hash.  The caller embeds
 * an nti_hnode in its objects, computes the hash and compares keys itself
 * while walking a chain; the table only stores and finds nodes by hash.
 * No locking: the owner of the table guards it.
 */
#ifndef NTI_HTAB_H
#define NTI_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct nti_hnode {
    struct nti_hnode *next;
    uint64_t hash;
} nti_hnode;

typedef struct {
    nti_hnode **slots;
    size_t nslots; /* power of two, or 0 before the first insert */
    size_t count;
} nti_htab;

void nti_htab_init(nti_htab *h);
void nti_htab_fini(nti_htab *h); /* frees the slot array, not the nodes */

/* First node whose hash equals hash, or NULL; continue with
 * nti_htab_next(). */
nti_hnode *nti_htab_find(const nti_htab *h, uint64_t hash);
nti_hnode *nti_htab_next(const nti_hnode *n, uint64_t hash);

/* Inserts n (hash already set).  NT_OK, or NT_ENOMEM when the table had to
 * grow and could not (then n is not inserted). */
int nti_htab_insert(nti_htab *h, nti_hnode *n);
void nti_htab_remove(nti_htab *h, nti_hnode *n);

/* 64-bit mixers for building keys. */
static inline uint64_t
nti_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t
nti_hash_combine(uint64_t h, uint64_t v)
{
    return nti_mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

/* FNV-1a over a string, mixed: for table keys only (not wire ids). */
uint64_t nti_hash_str(uint64_t seed, const char *s);

#endif
