/* SPDX-License-Identifier: MIT */
/*
 * Registration index (see index.h).
 *
 * Design notes
 * ------------
 * Three hash tables, all keyed by 64-bit hashes with the key compared on
 * the chain:
 *   topics:  (kind, object, cmd)   -> topic, holding the distinct masks
 *                                     in use with a count for each;
 *   buckets: (topic, mask, value)  -> the registrations for exactly that
 *                                     match, in insertion order;
 *   byid:    (owner, id)           -> registration.
 * A lookup for id walks the topic's masks and probes (topic, m, id & m)
 * once per mask.  Topics and buckets disappear with their last
 * registration, so the structure never holds more than the registrations.
 *
 * A registration is reference counted: the index holds one reference while
 * it is linked, and every routed target holds one until its delivery is
 * done, so a removal never frees a registration a worker is about to use.
 * The removed flag tells workers not to start its handler any more.
 */
#include "index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"

#define MAX_NAME 255

typedef struct nti_topic {
    nti_hnode hn;
    nti_kind kind;
    size_t nregs;
    struct mask_ent {
        uint64_t mask;
        size_t n;
    } *masks;
    size_t nmasks, capmasks;
    char *object, *cmd;
    char strs[];
} nti_topic;

typedef struct nti_bucket {
    nti_hnode hn;
    nti_topic *topic;
    uint64_t mask, value;
    nti_reg *regs;
} nti_bucket;

struct nti_index {
    nti_rwlock lock; /* guards everything below and all nti_owner lists */
    uint64_t seed;
    nti_htab topics;
    nti_htab buckets;
    nti_htab byid;
    size_t count;
};

void
nti_targets_init(nti_targets *t)
{
    t->v = t->inl;
    t->n = 0;
    t->cap = sizeof(t->inl) / sizeof(t->inl[0]);
}

void
nti_targets_fini(nti_targets *t)
{
    for (size_t i = 0; i < t->n; i++) {
        nti_reg_rele(t->v[i]);
    }
    if (t->v != t->inl) {
        free(t->v);
    }
    nti_targets_init(t);
}

static int
targets_push(nti_targets *t, nti_reg *r)
{
    if (t->n == t->cap) {
        size_t nc = t->cap * 2;
        nti_reg **v = malloc(nc * sizeof(*v));
        if (v == NULL) {
            return NT_ENOMEM;
        }
        memcpy(v, t->v, t->n * sizeof(*v));
        if (t->v != t->inl) {
            free(t->v);
        }
        t->v = v;
        t->cap = nc;
    }
    nti_reg_hold(r);
    t->v[t->n++] = r;
    return NT_OK;
}

void
nti_reg_rele(nti_reg *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
        free(r);
    }
}

int
nti_index_alloc(nti_index **out, uint64_t seed)
{
    nti_index *ix = calloc(1, sizeof(*ix));
    if (ix == NULL) {
        return NT_ENOMEM;
    }
    nti_rwlock_init(&ix->lock);
    ix->seed = seed;
    nti_htab_init(&ix->topics);
    nti_htab_init(&ix->buckets);
    nti_htab_init(&ix->byid);
    *out = ix;
    return NT_OK;
}

static uint64_t
topic_hash(const nti_index *ix, nti_kind kind, const char *object,
           const char *cmd)
{
    uint64_t h = nti_hash_str(ix->seed + (uint64_t)kind, object);
    return nti_hash_combine(h, nti_hash_str(ix->seed, cmd));
}

static uint64_t
bucket_hash(const nti_topic *t, uint64_t mask, uint64_t value)
{
    uint64_t h = nti_hash_combine((uint64_t)(uintptr_t)t, mask);
    return nti_hash_combine(h, value);
}

static uint64_t
id_hash(const nti_owner *o, uint64_t id)
{
    return nti_hash_combine((uint64_t)(uintptr_t)o, id);
}

static nti_topic *
topic_find(const nti_index *ix, nti_kind kind, const char *object,
           const char *cmd)
{
    uint64_t h = topic_hash(ix, kind, object, cmd);
    for (nti_hnode *n = nti_htab_find(&ix->topics, h); n != NULL;
         n = nti_htab_next(n, h)) {
        nti_topic *t = (nti_topic *)n;
        if (t->kind == kind && strcmp(t->object, object) == 0 &&
            strcmp(t->cmd, cmd) == 0) {
            return t;
        }
    }
    return NULL;
}

static nti_bucket *
bucket_find(const nti_index *ix, const nti_topic *t, uint64_t mask,
            uint64_t value)
{
    uint64_t h = bucket_hash(t, mask, value);
    for (nti_hnode *n = nti_htab_find(&ix->buckets, h); n != NULL;
         n = nti_htab_next(n, h)) {
        nti_bucket *b = (nti_bucket *)n;
        if (b->topic == t && b->mask == mask && b->value == value) {
            return b;
        }
    }
    return NULL;
}

int
nti_reg_spec_check(const nti_reg_spec *s)
{
    if (s->object == NULL || s->cmd == NULL || s->object[0] == '\0' ||
        s->cmd[0] == '\0' || strlen(s->object) > MAX_NAME ||
        strlen(s->cmd) > MAX_NAME) {
        return NT_EINVAL;
    }
    if ((s->match.value & ~s->match.mask) != 0) {
        return NT_EINVAL;
    }
    if (s->slice && (!isfinite(s->weight) || !(s->weight > 0.0))) {
        return NT_EINVAL;
    }
    return NT_OK;
}

/* Adds a mask to the topic's list or bumps its count. */
static int
topic_mask_add(nti_topic *t, uint64_t mask)
{
    for (size_t i = 0; i < t->nmasks; i++) {
        if (t->masks[i].mask == mask) {
            t->masks[i].n++;
            return NT_OK;
        }
    }
    if (t->nmasks == t->capmasks) {
        size_t nc = t->capmasks ? t->capmasks * 2 : 4;
        struct mask_ent *m = realloc(t->masks, nc * sizeof(*m));
        if (m == NULL) {
            return NT_ENOMEM;
        }
        t->masks = m;
        t->capmasks = nc;
    }
    t->masks[t->nmasks].mask = mask;
    t->masks[t->nmasks].n = 1;
    t->nmasks++;
    return NT_OK;
}

static void
topic_mask_del(nti_topic *t, uint64_t mask)
{
    for (size_t i = 0; i < t->nmasks; i++) {
        if (t->masks[i].mask == mask) {
            if (--t->masks[i].n == 0) {
                memmove(&t->masks[i], &t->masks[i + 1],
                        (t->nmasks - i - 1) * sizeof(t->masks[0]));
                t->nmasks--;
            }
            return;
        }
    }
}

static void
topic_free(nti_topic *t)
{
    free(t->masks);
    free(t);
}

/* A new registration from a spec (not linked), or NULL. */
static nti_reg *
reg_new(nti_owner *o, const nti_reg_spec *s)
{
    size_t lo = strlen(s->object) + 1, lc = strlen(s->cmd) + 1;
    nti_reg *r = calloc(1, sizeof(*r) + lo + lc);
    if (r == NULL) {
        return NULL;
    }
    r->object = r->strs;
    r->cmd = r->strs + lo;
    memcpy(r->object, s->object, lo);
    memcpy(r->cmd, s->cmd, lc);
    r->owner = o;
    r->id = s->id;
    r->match = s->match;
    r->kind = s->kind;
    r->slice = s->slice;
    r->weight = s->slice ? s->weight : 1.0;
    r->nfn = s->nfn;
    r->rfn = s->rfn;
    r->dest = s->dest;
    atomic_init(&r->refs, 1);
    atomic_init(&r->active, 0);
    atomic_init(&r->removed, false);
    r->byid.hash = id_hash(o, s->id);
    return r;
}

/* Links r into the index.  Lock held for writing.  NT_OK, NT_EEXIST or
 * NT_ENOMEM (then nothing changed). */
static int
link_reg(nti_index *ix, nti_reg *r)
{
    nti_owner *o = r->owner;
    nti_topic *t = NULL, *newt = NULL;
    nti_bucket *b = NULL, *newb = NULL;
    int rv = NT_OK;
    size_t lo = strlen(r->object) + 1, lc = strlen(r->cmd) + 1;

    for (nti_hnode *n = nti_htab_find(&ix->byid, r->byid.hash); n != NULL;
         n = nti_htab_next(n, r->byid.hash)) {
        nti_reg *x = (nti_reg *)n;
        if (x->owner == o && x->id == r->id) {
            return NT_EEXIST;
        }
    }
    t = topic_find(ix, r->kind, r->object, r->cmd);
    if (t != NULL) {
        b = bucket_find(ix, t, r->match.mask, r->match.value);
    }
    if (b != NULL && o->peer == NULL) {
        for (nti_reg *x = b->regs; x != NULL; x = x->bnext) {
            if (x->owner == o && x->dest == r->dest) {
                return NT_EEXIST;
            }
        }
    }
    if (t == NULL) {
        newt = calloc(1, sizeof(*t) + lo + lc);
        if (newt == NULL) {
            return NT_ENOMEM;
        }
        newt->kind = r->kind;
        newt->object = newt->strs;
        newt->cmd = newt->strs + lo;
        memcpy(newt->object, r->object, lo);
        memcpy(newt->cmd, r->cmd, lc);
        newt->hn.hash = topic_hash(ix, r->kind, r->object, r->cmd);
        if ((rv = nti_htab_insert(&ix->topics, &newt->hn)) != NT_OK) {
            free(newt);
            return rv;
        }
        t = newt;
    }
    if (b == NULL) {
        newb = calloc(1, sizeof(*newb));
        if (newb == NULL) {
            rv = NT_ENOMEM;
            goto fail;
        }
        newb->topic = t;
        newb->mask = r->match.mask;
        newb->value = r->match.value;
        newb->hn.hash = bucket_hash(t, newb->mask, newb->value);
        if ((rv = nti_htab_insert(&ix->buckets, &newb->hn)) != NT_OK) {
            free(newb);
            newb = NULL;
            goto fail;
        }
        b = newb;
    }
    if ((rv = topic_mask_add(t, r->match.mask)) != NT_OK) {
        goto fail;
    }
    if ((rv = nti_htab_insert(&ix->byid, &r->byid)) != NT_OK) {
        topic_mask_del(t, r->match.mask);
        goto fail;
    }
    /* Append to the bucket to keep registration order. */
    nti_reg **pp = &b->regs;
    while (*pp != NULL) {
        pp = &(*pp)->bnext;
    }
    *pp = r;
    r->bucket = b;
    t->nregs++;
    r->onext = o->head;
    if (o->head != NULL) {
        o->head->oprev = r;
    }
    o->head = r;
    o->count++;
    ix->count++;
    return NT_OK;

fail:
    if (newb != NULL) {
        nti_htab_remove(&ix->buckets, &newb->hn);
        free(newb);
    }
    if (newt != NULL) {
        nti_htab_remove(&ix->topics, &newt->hn);
        topic_free(newt);
    }
    return rv;
}

int
nti_index_add(nti_index *ix, nti_owner *o, const nti_reg_spec *s)
{
    int rv = nti_reg_spec_check(s);
    if (rv != NT_OK) {
        return rv;
    }
    nti_reg *r = reg_new(o, s);
    if (r == NULL) {
        return NT_ENOMEM;
    }
    nti_rwlock_wrlock(&ix->lock);
    rv = link_reg(ix, r);
    nti_rwlock_unlock(&ix->lock);
    if (rv != NT_OK) {
        free(r);
    }
    return rv;
}

/* Unlinks r from every structure; the index's reference passes to the
 * caller.  Lock held for writing. */
static void
unlink_reg(nti_index *ix, nti_reg *r)
{
    nti_bucket *b = r->bucket;
    nti_topic *t = b->topic;
    nti_reg **pp = &b->regs;
    while (*pp != r) {
        pp = &(*pp)->bnext;
    }
    *pp = r->bnext;
    r->bnext = NULL;
    r->bucket = NULL;
    nti_htab_remove(&ix->byid, &r->byid);
    topic_mask_del(t, b->mask);
    if (b->regs == NULL) {
        nti_htab_remove(&ix->buckets, &b->hn);
        free(b);
    }
    if (--t->nregs == 0) {
        nti_htab_remove(&ix->topics, &t->hn);
        topic_free(t);
    }
    nti_owner *o = r->owner;
    if (r->oprev != NULL) {
        r->oprev->onext = r->onext;
    } else {
        o->head = r->onext;
    }
    if (r->onext != NULL) {
        r->onext->oprev = r->oprev;
    }
    r->onext = r->oprev = NULL;
    o->count--;
    ix->count--;
    atomic_store(&r->removed, true);
}

static bool
same_spec(const nti_reg *r, const nti_reg_spec *s)
{
    return r->kind == s->kind && r->slice == s->slice &&
           (!s->slice || r->weight == s->weight) &&
           r->match.mask == s->match.mask &&
           r->match.value == s->match.value &&
           strcmp(r->object, s->object) == 0 && strcmp(r->cmd, s->cmd) == 0;
}

int
nti_index_upsert(nti_index *ix, nti_owner *o, const nti_reg_spec *s)
{
    int rv = nti_reg_spec_check(s);
    if (rv != NT_OK) {
        return rv;
    }
    nti_reg *r = reg_new(o, s);
    if (r == NULL) {
        return NT_ENOMEM;
    }
    nti_reg *old = NULL;
    nti_rwlock_wrlock(&ix->lock);
    for (nti_hnode *n = nti_htab_find(&ix->byid, r->byid.hash); n != NULL;
         n = nti_htab_next(n, r->byid.hash)) {
        nti_reg *x = (nti_reg *)n;
        if (x->owner == o && x->id == s->id) {
            old = x;
            break;
        }
    }
    if (old != NULL && same_spec(old, s)) {
        nti_rwlock_unlock(&ix->lock);
        free(r);
        return NT_OK;
    }
    if (old != NULL) {
        unlink_reg(ix, old);
    }
    rv = link_reg(ix, r);
    if (rv != NT_OK && old != NULL) {
        /* Could not link the new one: keep serving the old. */
        atomic_store(&old->removed, false);
        if (link_reg(ix, old) == NT_OK) {
            old = NULL;
        }
    }
    nti_rwlock_unlock(&ix->lock);
    if (rv != NT_OK) {
        free(r);
    }
    if (old != NULL) {
        nti_reg_rele(old);
    }
    return rv;
}

int
nti_index_remove(nti_index *ix, nti_owner *o, nti_kind kind,
                 const char *object, nt_match match, const char *cmd,
                 void *dest, nti_reg **out)
{
    if (object == NULL || cmd == NULL) {
        return NT_EINVAL;
    }
    int rv = NT_ENOENT;
    nti_rwlock_wrlock(&ix->lock);
    nti_topic *t = topic_find(ix, kind, object, cmd);
    nti_bucket *b = t ? bucket_find(ix, t, match.mask, match.value) : NULL;
    for (nti_reg *x = b ? b->regs : NULL; x != NULL; x = x->bnext) {
        if (x->owner == o && x->dest == dest) {
            unlink_reg(ix, x);
            *out = x;
            rv = NT_OK;
            break;
        }
    }
    nti_rwlock_unlock(&ix->lock);
    return rv;
}

int
nti_index_remove_dest(nti_index *ix, nti_owner *o, nti_kind kind,
                      void *dest, nti_reg **chain)
{
    nti_reg *head = NULL;
    nti_rwlock_wrlock(&ix->lock);
    nti_reg *x = o->head;
    while (x != NULL) {
        nti_reg *next = x->onext;
        if (x->kind == kind && x->dest == dest) {
            unlink_reg(ix, x);
            x->rnext = head;
            head = x;
        }
        x = next;
    }
    nti_rwlock_unlock(&ix->lock);
    *chain = head;
    return head != NULL ? NT_OK : NT_ENOENT;
}

int
nti_index_remove_id(nti_index *ix, nti_owner *o, uint64_t id,
                    nti_reg **out)
{
    int rv = NT_ENOENT;
    uint64_t h = id_hash(o, id);
    nti_rwlock_wrlock(&ix->lock);
    for (nti_hnode *n = nti_htab_find(&ix->byid, h); n != NULL;
         n = nti_htab_next(n, h)) {
        nti_reg *x = (nti_reg *)n;
        if (x->owner == o && x->id == id) {
            unlink_reg(ix, x);
            *out = x;
            rv = NT_OK;
            break;
        }
    }
    nti_rwlock_unlock(&ix->lock);
    return rv;
}

nti_reg *
nti_index_remove_owner(nti_index *ix, nti_owner *o)
{
    nti_reg *head = NULL;
    nti_rwlock_wrlock(&ix->lock);
    while (o->head != NULL) {
        nti_reg *x = o->head;
        unlink_reg(ix, x);
        x->rnext = head;
        head = x;
    }
    nti_rwlock_unlock(&ix->lock);
    return head;
}

nti_reg *
nti_index_get(nti_index *ix, nti_owner *o, uint64_t id)
{
    nti_reg *r = NULL;
    uint64_t h = id_hash(o, id);
    nti_rwlock_rdlock(&ix->lock);
    for (nti_hnode *n = nti_htab_find(&ix->byid, h); n != NULL;
         n = nti_htab_next(n, h)) {
        nti_reg *x = (nti_reg *)n;
        if (x->owner == o && x->id == id) {
            nti_reg_hold(x);
            r = x;
            break;
        }
    }
    nti_rwlock_unlock(&ix->lock);
    return r;
}

static int
target_cmp(const void *a, const void *b)
{
    const nti_reg *x = *(nti_reg *const *)a, *y = *(nti_reg *const *)b;
    bool xl = x->owner->peer == NULL, yl = y->owner->peer == NULL;
    if (xl != yl) {
        return xl ? -1 : 1;
    }
    if (x->owner != y->owner) {
        int c = strcmp(x->owner->node_id ? x->owner->node_id : "",
                       y->owner->node_id ? y->owner->node_id : "");
        if (c != 0) {
            return c;
        }
        return (uintptr_t)x->owner < (uintptr_t)y->owner ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

int
nti_index_route(nti_index *ix, nti_kind kind, const char *object,
                const char *cmd, uint64_t id, nti_rng *rng, nti_targets *t)
{
    int rv = NT_OK;
    nti_reg *chosen = NULL;
    double total = 0.0;

    nti_rwlock_rdlock(&ix->lock);
    nti_topic *tp = topic_find(ix, kind, object, cmd);
    for (size_t i = 0; tp != NULL && i < tp->nmasks && rv == NT_OK; i++) {
        uint64_t m = tp->masks[i].mask;
        nti_bucket *b = bucket_find(ix, tp, m, id & m);
        for (nti_reg *r = b ? b->regs : NULL; r != NULL; r = r->bnext) {
            if (!r->slice) {
                if ((rv = targets_push(t, r)) != NT_OK) {
                    break;
                }
                continue;
            }
            /* Weighted reservoir of size one: after the pass, each slice
             * has been kept with probability weight / total. */
            total += r->weight;
            if (nti_rng_unit(rng) * total < r->weight) {
                chosen = r;
            }
        }
    }
    if (rv == NT_OK && chosen != NULL) {
        rv = targets_push(t, chosen);
    }
    nti_rwlock_unlock(&ix->lock);

    if (rv != NT_OK) {
        nti_targets_fini(t);
        return rv;
    }
    if (t->n == 0) {
        return NT_ENOTARGET;
    }
    if (t->n > 1) {
        qsort(t->v, t->n, sizeof(t->v[0]), target_cmp);
    }
    return NT_OK;
}

void
nti_index_foreach(nti_index *ix, int (*fn)(void *, const nti_reg *),
                  void *arg)
{
    nti_rwlock_rdlock(&ix->lock);
    for (size_t i = 0; i < ix->byid.nslots; i++) {
        for (nti_hnode *n = ix->byid.slots[i]; n != NULL; n = n->next) {
            if (fn(arg, (const nti_reg *)n) != 0) {
                goto out;
            }
        }
    }
out:
    nti_rwlock_unlock(&ix->lock);
}

size_t
nti_index_count(nti_index *ix)
{
    nti_rwlock_rdlock(&ix->lock);
    size_t n = ix->count;
    nti_rwlock_unlock(&ix->lock);
    return n;
}

void
nti_index_free(nti_index *ix)
{
    if (ix == NULL) {
        return;
    }
    /* Unlink everything through the owners' lists. */
    nti_rwlock_wrlock(&ix->lock);
    while (ix->byid.count > 0) {
        nti_reg *r = NULL;
        for (size_t i = 0; i < ix->byid.nslots && r == NULL; i++) {
            r = (nti_reg *)ix->byid.slots[i];
        }
        unlink_reg(ix, r);
        nti_reg_rele(r);
    }
    nti_rwlock_unlock(&ix->lock);
    nti_htab_fini(&ix->topics);
    nti_htab_fini(&ix->buckets);
    nti_htab_fini(&ix->byid);
    nti_rwlock_fini(&ix->lock);
    free(ix);
}
