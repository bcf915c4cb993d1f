/* SPDX-License-Identifier: MIT */
/*
 * Node lifecycle (open, close) and the registration calls.
 *
 * Design notes
 * ------------
 * Close protocol.  Every public call increments n->callers on entry and
 * fails with NT_ECLOSED if n->closing is set (nti_node_enter); it
 * decrements on exit.  Close sets closing (so new calls fail), drains the
 * worker queues within its timeout, settles every open reply handle and
 * pending call with NT_ECLOSED (this wakes callers blocked in nt_rpc),
 * shuts the pool down (dropping what is left), settles again whatever the
 * last handlers opened, and only then waits for callers to reach zero and
 * frees.  A call racing with close therefore either completes or returns
 * NT_ECLOSED; it never touches freed memory.
 *
 * Unregistration.  A removed registration is marked removed; a worker
 * checks the flag after counting itself in reg->active, and the remover
 * waits for reg->active to reach zero (both sides use sequentially
 * consistent atomics, so at least one sees the other).  A remover running
 * on one of the node's own workers does not wait: two handlers removing
 * each other's registrations would otherwise deadlock.
 */
#include "node.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key.h"

#define DEFAULT_QUEUE_DEPTH 16384
#define DEFAULT_MAX_PAYLOAD (1u << 20)
#define DEFAULT_MAX_REGS 65536
#define DEFAULT_MAX_INFLIGHT 4096
#define MIN_WORKERS 2

bool
nti_node_enter(nt_node *n)
{
    if (n == NULL) {
        return false;
    }
    atomic_fetch_add(&n->callers, 1);
    if (atomic_load(&n->closing)) {
        nti_node_leave(n);
        return false;
    }
    return true;
}

void
nti_node_leave(nt_node *n)
{
    if (atomic_fetch_sub(&n->callers, 1) == 1 && atomic_load(&n->closing)) {
        nti_mtx_lock(&n->close_mtx);
        nti_cv_broadcast(&n->close_cv);
        nti_mtx_unlock(&n->close_mtx);
    }
}

bool
nti_name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strnlen(s, 256) <= 255;
}

void
nti_node_reg_idle(nt_node *n)
{
    nti_mtx_lock(&n->reg_mtx);
    nti_cv_broadcast(&n->regs_cv);
    nti_mtx_unlock(&n->reg_mtx);
}

static void
strv_free(char **v)
{
    if (v != NULL) {
        for (char **p = v; *p != NULL; p++) {
            free(*p);
        }
        free(v);
    }
}

static int
strv_dup(const char *const *in, char ***out)
{
    size_t n = 0;
    while (in != NULL && in[n] != NULL) {
        n++;
    }
    char **v = calloc(n + 1, sizeof(*v));
    if (v == NULL) {
        return NT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if ((v[i] = strdup(in[i])) == NULL) {
            strv_free(v);
            return NT_ENOMEM;
        }
    }
    *out = v;
    return NT_OK;
}

/* Closed nodes' shells: kept so that a call racing with (or following)
 * close finds closing set and returns NT_ECLOSED instead of touching freed
 * memory.  Everything else a node owns is freed at close; a shell is a few
 * hundred bytes.  Process-wide like the reply table, for the same reason:
 * a handle must stay checkable after its node is gone. */
static struct {
    nti_mtx mtx; /* guards head */
    nt_node *head;
} graveyard = { NTI_MTX_INITIALIZER, NULL };

static void
node_bury(nt_node *n)
{
    nti_mtx_lock(&graveyard.mtx);
    n->next_dead = graveyard.head;
    graveyard.head = n;
    nti_mtx_unlock(&graveyard.mtx);
}

/* Frees everything the node owns.  With keep_shell the struct itself
 * stays (see graveyard) and its close handshake stays usable. */
static void
node_free(nt_node *n, bool keep_shell)
{
    nti_cluster_close(n);
    if (n->timer != NULL) {
        nti_timer_free(n->timer);
        n->timer = NULL;
    }
    if (n->pool != NULL) {
        nti_pool_free(n->pool);
    }
    nti_bufcache_fini(&n->slabs); /* no task holds a slab any more */
    nti_rpctab_free(n->rpc);
    nti_index_free(n->index);
    nti_cluster_free_members(n);
    nti_cv_fini(&n->regs_cv);
    nti_mtx_fini(&n->reg_mtx);
    for (size_t i = 0; i < NTI_NOTIFY_STRIPES; i++) {
        nti_cv_fini(&n->notify_order[i].cv);
        nti_mtx_fini(&n->notify_order[i].mtx);
    }
    free(n->listen);
    free(n->advertise);
    strv_free(n->smap);
    sodium_memzero(n->key, sizeof(n->key));
    sodium_memzero(n->extra_keys, sizeof(n->extra_keys));
    sodium_memzero(n->sk, sizeof(n->sk));
    if (keep_shell) {
        node_bury(n);
        return;
    }
    free(n->address);
    nti_cv_fini(&n->close_cv);
    nti_mtx_fini(&n->close_mtx);
    free(n);
}

static int
copy_config(nt_node *n, const nt_config *cfg)
{
    int rv;
    if (cfg->listen != NULL) {
        if ((rv = nti_addr_check(cfg->listen)) != NT_OK) {
            return rv;
        }
        if ((n->listen = strdup(cfg->listen)) == NULL) {
            return NT_ENOMEM;
        }
    }
    if (cfg->advertise != NULL) {
        if ((rv = nti_addr_check(cfg->advertise)) != NT_OK) {
            return rv;
        }
        if ((n->advertise = strdup(cfg->advertise)) == NULL) {
            return NT_ENOMEM;
        }
    }
    for (size_t i = 0; cfg->smap != NULL && cfg->smap[i] != NULL; i++) {
        if ((rv = nti_addr_check(cfg->smap[i])) != NT_OK) {
            return rv;
        }
    }
    if ((rv = strv_dup(cfg->smap, &n->smap)) != NT_OK) {
        return rv;
    }
    if (cfg->key != NULL) {
        memcpy(n->key, cfg->key, sizeof(n->key));
    } else if (cfg->key_file != NULL) {
        unsigned char keys[NTI_KEYS_MAX][32];
        size_t nk = 0;
        rv = nti_key_load_all(cfg->key_file, keys, NTI_KEYS_MAX, &nk);
        if (rv == NT_OK) {
            memcpy(n->key, keys[0], sizeof(n->key));
            n->nextra_keys = nk - 1;
            memcpy(n->extra_keys, keys[1], (nk - 1) * 32);
        }
        sodium_memzero(keys, sizeof(keys));
        if (rv != NT_OK) {
            return rv;
        }
    } else {
        /* No key: a random one, so this node forms a cluster only with
         * itself rather than talking unauthenticated. */
        randombytes_buf(n->key, sizeof(n->key));
    }
    n->workers = cfg->workers;
    if (n->workers == 0) {
        n->workers = nti_ncpu();
    }
    if (n->workers < MIN_WORKERS) {
        n->workers = MIN_WORKERS;
    }
    n->queue_depth = cfg->queue_depth ? cfg->queue_depth
                                      : DEFAULT_QUEUE_DEPTH;
    n->max_threads = cfg->max_threads ? cfg->max_threads : 4 * n->workers;
    n->max_payload = cfg->max_payload ? cfg->max_payload
                                      : DEFAULT_MAX_PAYLOAD;
    n->max_regs = cfg->max_registrations ? cfg->max_registrations
                                         : DEFAULT_MAX_REGS;
    n->max_inflight = cfg->max_inflight ? cfg->max_inflight
                                        : DEFAULT_MAX_INFLIGHT;
    n->publish_timeout_ms = cfg->publish_timeout_ms ? cfg->publish_timeout_ms
                                                    : 5000;
    n->max_conns = cfg->max_connections ? cfg->max_connections : 1024;
    n->max_peer_inflight = cfg->max_peer_inflight ? cfg->max_peer_inflight
                                                  : 256;
    if (n->max_peer_inflight > 4096) {
        n->max_peer_inflight = 4096;
    }
    n->gossip_interval_ms = cfg->gossip_interval_ms;
    n->gossip_fanout = cfg->gossip_fanout;
    n->probe_interval_ms = cfg->probe_interval_ms;
    n->log.fn = cfg->log_fn;
    n->log.arg = cfg->log_arg;
    n->log.level = cfg->log_level ? cfg->log_level : NT_LOG_WARN;
    n->log.json = cfg->log_json;
    return NT_OK;
}

static void
make_identity(nt_node *n)
{
    crypto_sign_keypair(n->pk, n->sk);
    gsp_id_from_pk(n->pk, n->id_bin, n->id);
}

int
nt_node_open(nt_node **out, const nt_config *cfg)
{
    if (out == NULL || cfg == NULL) {
        return NT_EINVAL;
    }
    if (sodium_init() < 0) {
        return NT_ENOMEM;
    }
    nt_node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return NT_ENOMEM;
    }
    nti_mtx_init(&n->close_mtx);
    nti_cv_init(&n->close_cv);
    nti_bufcache_init(&n->slabs);
    for (size_t i = 0; i < NTI_NOTIFY_STRIPES; i++) {
        nti_mtx_init(&n->notify_order[i].mtx);
        nti_cv_init(&n->notify_order[i].cv);
    }
    nti_mtx_init(&n->reg_mtx);
    nti_cv_init(&n->regs_cv);
    atomic_init(&n->closing, false);
    atomic_init(&n->callers, 0);
    atomic_init(&n->next_reg_id, 1);

    int rv = copy_config(n, cfg);
    if (rv != NT_OK) {
        goto fail;
    }
    make_identity(n);
    n->local.peer = NULL;
    n->local.node_id = n->id;
    uint64_t seed = cfg->seed;
    if (seed == 0) {
        randombytes_buf(&seed, sizeof(seed));
    }
    nti_rng_init(&n->rng, seed);
    uint64_t ixseed;
    randombytes_buf(&ixseed, sizeof(ixseed));
    if ((rv = nti_index_alloc(&n->index, ixseed)) != NT_OK ||
        (rv = nti_timer_alloc(&n->timer, "nt-timer")) != NT_OK ||
        (rv = nti_pool_alloc(&n->pool, n->workers, n->queue_depth,
                             n->max_threads, "nt")) != NT_OK ||
        (rv = nti_rpctab_alloc(&n->rpc, n->timer, n->pool)) != NT_OK ||
        (rv = nti_cluster_open(n)) != NT_OK) {
        goto fail;
    }
    *out = n;
    return NT_OK;

fail:
    atomic_store(&n->closing, true);
    if (n->pool != NULL) {
        nti_pool_shutdown(n->pool);
    }
    node_free(n, false);
    return rv;
}

int
nt_node_close(nt_node *n, int timeout_ms)
{
    if (n == NULL) {
        return NT_EINVAL;
    }
    if (nti_pool_is_mine(n->pool)) {
        return NT_EINVAL;
    }
    if (atomic_exchange(&n->closing, true)) {
        return NT_ECLOSED;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nti_cluster_leave(n, deadline);
    (void)nti_pool_drain(n->pool, deadline);
    /* Calls first, so that they are marked closed, then the handles. */
    nti_rpctab_close(n->rpc);
    nti_replies_close(&n->replies);
    nti_pool_shutdown(n->pool);
    /* Handlers that ran during shutdown may have opened handles or
     * calls; settle those too. */
    nti_rpctab_close(n->rpc);
    nti_replies_close(&n->replies);

    nti_mtx_lock(&n->close_mtx);
    while (atomic_load(&n->callers) > 0) {
        nti_cv_wait(&n->close_cv, &n->close_mtx);
    }
    nti_mtx_unlock(&n->close_mtx);

    node_free(n, true);
    return NT_OK;
}

int
nt_node_reload(nt_node *n, const char *const *smap)
{
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    int rv = NT_OK;
    for (size_t i = 0; smap != NULL && smap[i] != NULL; i++) {
        if ((rv = nti_addr_check(smap[i])) != NT_OK) {
            goto out;
        }
    }
    char **v;
    if ((rv = strv_dup(smap, &v)) == NT_OK) {
        nti_mtx_lock(&n->reg_mtx);
        char **old = n->smap;
        n->smap = v;
        rv = nti_cluster_reload(n, v);
        nti_mtx_unlock(&n->reg_mtx);
        strv_free(old);
    }
out:
    nti_node_leave(n);
    return rv;
}

const char *
nt_node_id(const nt_node *n)
{
    return n != NULL ? n->id : NULL;
}

const char *
nt_node_address(const nt_node *n)
{
    return n != NULL ? n->address : NULL;
}

/* ---- Registration ---------------------------------------------------- */

static int
reg_add(nt_node *n, nti_kind kind, const char *object, nt_match match,
        const char *cmd, nt_notify_fn nfn, nt_rpc_fn rfn, void *dest,
        bool slice, double weight)
{
    if ((kind == NTI_NOTIFY && nfn == NULL) ||
        (kind == NTI_RPC && rfn == NULL)) {
        return NT_EINVAL;
    }
    nti_reg_spec s = {
        .kind = kind,
        .object = object,
        .cmd = cmd,
        .match = match,
        .slice = slice,
        .weight = weight,
        .nfn = nfn,
        .rfn = rfn,
        .dest = dest,
    };
    int rv = nti_reg_spec_check(&s);
    if (rv != NT_OK) {
        return rv;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    if (n->listen == NULL) {
        rv = NT_ENOTSUP;
        goto out;
    }
    nti_mtx_lock(&n->reg_mtx);
    if (n->local.count >= n->max_regs) {
        rv = NT_ELIMIT;
    } else {
        s.id = atomic_fetch_add(&n->next_reg_id, 1);
        rv = nti_index_add(n->index, &n->local, &s);
        if (rv == NT_OK) {
            nti_cluster_reg_added(n, &s);
        }
    }
    nti_mtx_unlock(&n->reg_mtx);
out:
    nti_node_leave(n);
    return rv;
}

/* Waits until none of the chain's handlers is running (unless called from
 * one of our workers), then drops the references. */
static void
reg_settle(nt_node *n, nti_reg *chain)
{
    bool wait = !nti_pool_is_mine(n->pool);
    while (chain != NULL) {
        nti_reg *next = chain->rnext;
        if (wait) {
            nti_mtx_lock(&n->reg_mtx);
            while (atomic_load(&chain->active) > 0) {
                nti_cv_wait(&n->regs_cv, &n->reg_mtx);
            }
            nti_mtx_unlock(&n->reg_mtx);
        }
        nti_reg_rele(chain);
        chain = next;
    }
}

static int
reg_remove(nt_node *n, nti_kind kind, const char *object, nt_match match,
           const char *cmd, void *dest)
{
    if (!nti_name_ok(object) || !nti_name_ok(cmd)) {
        return NT_EINVAL;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    nti_reg *r = NULL;
    nti_mtx_lock(&n->reg_mtx);
    int rv = nti_index_remove(n->index, &n->local, kind, object, match, cmd,
                              dest, &r);
    if (rv == NT_OK) {
        nti_cluster_reg_removed(n, r->id);
    }
    nti_mtx_unlock(&n->reg_mtx);
    if (rv == NT_OK) {
        r->rnext = NULL;
        reg_settle(n, r);
    }
    nti_node_leave(n);
    return rv;
}

static int
reg_remove_all(nt_node *n, nti_kind kind, void *dest)
{
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    nti_reg *chain = NULL;
    nti_mtx_lock(&n->reg_mtx);
    int rv = nti_index_remove_dest(n->index, &n->local, kind, dest, &chain);
    for (nti_reg *r = chain; r != NULL; r = r->rnext) {
        nti_cluster_reg_removed(n, r->id);
    }
    nti_mtx_unlock(&n->reg_mtx);
    reg_settle(n, chain);
    nti_node_leave(n);
    return rv;
}

int
nt_subscribe(nt_node *n, const char *object, nt_match id, const char *cmd,
             nt_notify_fn fn, void *dest)
{
    return reg_add(n, NTI_NOTIFY, object, id, cmd, fn, NULL, dest, false,
                   1.0);
}

int
nt_slice(nt_node *n, const char *object, nt_match id, const char *cmd,
         nt_notify_fn fn, void *dest, double weight)
{
    return reg_add(n, NTI_NOTIFY, object, id, cmd, fn, NULL, dest, true,
                   weight);
}

int
nt_unsubscribe(nt_node *n, const char *object, nt_match id, const char *cmd,
               void *dest)
{
    return reg_remove(n, NTI_NOTIFY, object, id, cmd, dest);
}

int
nt_unsubscribe_all(nt_node *n, void *dest)
{
    return reg_remove_all(n, NTI_NOTIFY, dest);
}

int
nt_rpc_register(nt_node *n, const char *object, nt_match id,
                const char *cmd, nt_rpc_fn fn, void *dest)
{
    return reg_add(n, NTI_RPC, object, id, cmd, NULL, fn, dest, false, 1.0);
}

int
nt_rpc_slice(nt_node *n, const char *object, nt_match id, const char *cmd,
             nt_rpc_fn fn, void *dest, double weight)
{
    return reg_add(n, NTI_RPC, object, id, cmd, NULL, fn, dest, true,
                   weight);
}

int
nt_rpc_unregister(nt_node *n, const char *object, nt_match id,
                  const char *cmd, void *dest)
{
    return reg_remove(n, NTI_RPC, object, id, cmd, dest);
}

int
nt_rpc_unregister_all(nt_node *n, void *dest)
{
    return reg_remove_all(n, NTI_RPC, dest);
}
