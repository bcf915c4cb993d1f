/* SPDX-License-Identifier: MIT */
/*
 * Registration index: object -> cmd -> distinct masks -> value -> targets,
 * for local handlers and remote nodes' registrations alike.  A lookup costs
 * one hash probe per distinct mask registered under (object, cmd), however
 * many registrations there are.  Target selection (every full registration
 * plus one weighted-random slice) happens inside the lookup, under the
 * index's read lock, and returns held references.
 *
 * Thread safety: every function may be called from any thread; the index
 * has its own reader-writer lock and never calls out while holding it.
 */
#ifndef NTI_INDEX_H
#define NTI_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "htab.h"
#include "notifier/notifier.h"
#include "rng.h"

typedef enum { NTI_NOTIFY = 0, NTI_RPC = 1 } nti_kind;

typedef struct nti_reg nti_reg;
typedef struct nti_index nti_index;

/* Who owns registrations: the local node (peer == NULL) or one remote
 * member.  The index links each owner's registrations together so that a
 * departed member's are removed in one call.  Embedded by its user;
 * guarded by the index lock. */
typedef struct nti_owner {
    nti_reg *head;
    size_t count;
    void *peer;   /* NULL = local */
    const char *node_id; /* hex id shown in results; owned by the user */
} nti_owner;

struct nti_reg {
    nti_hnode byid;             /* index: by (owner, id) */
    nti_reg *bnext;             /* index: bucket chain, insertion order */
    nti_reg *onext, *oprev;     /* index: owner list */
    nti_reg *rnext;             /* chain returned by removals */
    struct nti_bucket *bucket;
    nti_owner *owner;
    uint64_t id;                /* unique per owner */
    nt_match match;
    double weight;
    nti_kind kind;
    bool slice;
    nt_notify_fn nfn;           /* local only */
    nt_rpc_fn rfn;              /* local only */
    void *dest;                 /* local only */
    _Atomic unsigned refs;
    _Atomic unsigned active;    /* handler calls in progress */
    _Atomic bool removed;
    char *object, *cmd;         /* point into strs */
    char strs[];
};

typedef struct {
    nti_kind kind;
    const char *object, *cmd;
    nt_match match;
    bool slice;
    double weight;
    nt_notify_fn nfn;
    nt_rpc_fn rfn;
    void *dest;
    uint64_t id;
} nti_reg_spec;

/* A list of held targets with inline room for the common case. */
typedef struct {
    nti_reg **v;
    size_t n, cap;
    nti_reg *inl[8];
} nti_targets;

void nti_targets_init(nti_targets *t);
void nti_targets_fini(nti_targets *t); /* releases every held target */

int nti_index_alloc(nti_index **out, uint64_t seed);
/* Frees the index and drops its reference to every remaining
 * registration. */
void nti_index_free(nti_index *ix);

/* Checks object/cmd length, match and weight.  NT_OK or NT_EINVAL. */
int nti_reg_spec_check(const nti_reg_spec *s);

/* Adds a registration.  For the local owner a registration with the same
 * (kind, object, match, cmd, dest) is a duplicate; for a remote owner the
 * same id is.  Either gives NT_EEXIST.  Other errors: NT_EINVAL,
 * NT_ENOMEM. */
int nti_index_add(nti_index *ix, nti_owner *o, const nti_reg_spec *s);

/* For remote owners: adds the registration with this id, or replaces the
 * one held under it, in one step (routing never sees neither).  Unchanged:
 * nothing happens.  NT_OK, NT_EINVAL, NT_ENOMEM (the old one stays). */
int nti_index_upsert(nti_index *ix, nti_owner *o, const nti_reg_spec *s);

/* Removals unlink registrations, mark them removed and hand the index's
 * reference to the caller, which must nti_reg_rele() each one.  They
 * return NT_ENOENT when nothing matched. */
int nti_index_remove(nti_index *ix, nti_owner *o, nti_kind kind,
                     const char *object, nt_match match, const char *cmd,
                     void *dest, nti_reg **out);
/* Chain linked by rnext. */
int nti_index_remove_dest(nti_index *ix, nti_owner *o, nti_kind kind,
                          void *dest, nti_reg **chain);
int nti_index_remove_id(nti_index *ix, nti_owner *o, uint64_t id,
                        nti_reg **out);
/* Every registration of o; returns the chain (may be NULL). */
nti_reg *nti_index_remove_owner(nti_index *ix, nti_owner *o);

/* Finds the held registration of o with this id, or NULL. */
nti_reg *nti_index_get(nti_index *ix, nti_owner *o, uint64_t id);

/* Target selection by SPEC §1: appends every matching full registration
 * and one slice drawn with probability proportional to its weight, each
 * held.  Local targets come first in registration order.  NT_OK,
 * NT_ENOTARGET (t left empty) or NT_ENOMEM. */
int nti_index_route(nti_index *ix, nti_kind kind, const char *object,
                    const char *cmd, uint64_t id, nti_rng *rng,
                    nti_targets *t);

/* Calls fn for every registration under the read lock; fn must not call
 * back into the index.  Stops early when fn returns non-zero. */
void nti_index_foreach(nti_index *ix, int (*fn)(void *, const nti_reg *),
                       void *arg);
size_t nti_index_count(nti_index *ix);

static inline void
nti_reg_hold(nti_reg *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}
void nti_reg_rele(nti_reg *r);

#endif
