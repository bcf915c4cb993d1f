/* SPDX-License-Identifier: MIT */
/*
 * Intrusive chained hash table (see htab.h).  It doubles when the load
 * factor passes 1 and never shrinks below its high-water mark; the index
 * and the RPC table hold at most a few hundred thousand nodes.
 */
#include "htab.h"

#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"

void
nti_htab_init(nti_htab *h)
{
    h->slots = NULL;
    h->nslots = 0;
    h->count = 0;
}

void
nti_htab_fini(nti_htab *h)
{
    free(h->slots);
    nti_htab_init(h);
}

nti_hnode *
nti_htab_find(const nti_htab *h, uint64_t hash)
{
    if (h->nslots == 0) {
        return NULL;
    }
    nti_hnode *n = h->slots[hash & (h->nslots - 1)];
    while (n != NULL && n->hash != hash) {
        n = n->next;
    }
    return n;
}

nti_hnode *
nti_htab_next(const nti_hnode *n, uint64_t hash)
{
    nti_hnode *x = n->next;
    while (x != NULL && x->hash != hash) {
        x = x->next;
    }
    return x;
}

static int
grow(nti_htab *h)
{
    size_t ns = h->nslots ? h->nslots * 2 : 16;
    nti_hnode **s = calloc(ns, sizeof(*s));
    if (s == NULL) {
        return NT_ENOMEM;
    }
    for (size_t i = 0; i < h->nslots; i++) {
        nti_hnode *n = h->slots[i];
        while (n != NULL) {
            nti_hnode *next = n->next;
            size_t j = n->hash & (ns - 1);
            n->next = s[j];
            s[j] = n;
            n = next;
        }
    }
    free(h->slots);
    h->slots = s;
    h->nslots = ns;
    return NT_OK;
}

int
nti_htab_insert(nti_htab *h, nti_hnode *n)
{
    if (h->count >= h->nslots) {
        int rv = grow(h);
        if (rv != NT_OK) {
            return rv;
        }
    }
    size_t j = n->hash & (h->nslots - 1);
    n->next = h->slots[j];
    h->slots[j] = n;
    h->count++;
    return NT_OK;
}

void
nti_htab_remove(nti_htab *h, nti_hnode *n)
{
    nti_hnode **pp = &h->slots[n->hash & (h->nslots - 1)];
    while (*pp != n) {
        pp = &(*pp)->next;
    }
    *pp = n->next;
    n->next = NULL;
    h->count--;
}

/* Eight bytes a step (strings here are names and ids, tens of bytes),
 * then the remainder and the length; nti_mix64 finalises.  In-process
 * only: nothing hashed here leaves the process. */
uint64_t
nti_hash_str(uint64_t seed, const char *s)
{
    size_t n = strlen(s);
    uint64_t h = 0xcbf29ce484222325ULL ^ seed ^ n;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return nti_mix64(h);
}
