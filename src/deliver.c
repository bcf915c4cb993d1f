/* SPDX-License-Identifier: MIT */
/*
 * Publish and RPC: route, then hand each local target to the worker pool.
 *
 * Design notes
 * ------------
 * A publish copies the message once into a reference-counted nti_msg that
 * every target's task shares.  All local targets of one publish are pushed
 * as one chain onto the ordered queue chosen by hash(sender, object, id),
 * all or nothing: a full queue returns NT_EAGAIN and delivers to nobody,
 * and notifications with the same (sender, object, id) start in publish
 * order.
 *
 * An RPC creates a pending call with one slot per target, then pushes one
 * request task per local target onto the shared queue (all or nothing).  A
 * worker opens a reply handle bound to (call, slot) and runs the handler;
 * answering fills the slot from whatever thread answers.  The synchronous
 * caller sleeps on a waiter that the last filled slot wakes.
 */
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "node.h"

static void
reg_leave(nt_node *n, nti_reg *r)
{
    if (atomic_fetch_sub(&r->active, 1) == 1 && atomic_load(&r->removed)) {
        nti_node_reg_idle(n);
    }
}

/* Counts the caller in reg->active unless the registration was removed.
 * See node.c for the protocol.  Backing out must wake a remover too: it
 * may have seen our increment and be waiting for it to go away. */
static bool
reg_enter(nt_node *n, nti_reg *r)
{
    atomic_fetch_add(&r->active, 1);
    if (atomic_load(&r->removed)) {
        reg_leave(n, r);
        return false;
    }
    return true;
}

/* ---- Notifications --------------------------------------------------- */

typedef struct {
    nti_task task;
    nt_node *node;
    nti_reg *reg;
    nti_msg *msg;
    nti_slab *slab; /* task and msg live in this frame's slab (nti_notes) */
} notify_task;

static void
slab_rele(nti_slab *sl)
{
    if (atomic_fetch_sub_explicit(&sl->refs, 1, memory_order_acq_rel) == 1) {
        nti_bufcache_put(sl->cache, sl, sl->bytes);
    }
}

static void
notify_free(notify_task *t)
{
    nti_reg_rele(t->reg);
    if (t->slab != NULL) {
        slab_rele(t->slab);
        return;
    }
    nti_msg_rele(t->msg);
    free(t);
}

static void
notify_run(nti_task *task)
{
    notify_task *t = (notify_task *)task;
    nt_node *n = t->node;
    if (reg_enter(n, t->reg)) {
        nt_msg v;
        nti_msg_view(t->msg, &v);
        t->reg->nfn(t->reg->dest, &v);
        reg_leave(n, t->reg);
        atomic_fetch_add_explicit(&n->ctr.delivered, 1,
                                  memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&n->ctr.dropped_unreg, 1,
                                  memory_order_relaxed);
    }
    notify_free(t);
}

static void
notify_drop(nti_task *task)
{
    notify_task *t = (notify_task *)task;
    atomic_fetch_add_explicit(&t->node->ctr.dropped_closed, 1,
                              memory_order_relaxed);
    notify_free(t);
}

/* The part of an ordering key that depends on the strings. */
static uint64_t
order_base(const char *from, const char *object)
{
    return nti_hash_combine(nti_hash_str(0, from), nti_hash_str(1, object));
}

uint64_t
nti_order_key(const char *from, const char *object, uint64_t id)
{
    return nti_hash_combine(order_base(from, object), id);
}

static void
task_chain_free(nti_task *head, void (*fn)(nti_task *))
{
    while (head != NULL) {
        nti_task *next = head->next;
        fn(head);
        head = next;
    }
}

static void
notify_discard(nti_task *task)
{
    notify_free((notify_task *)task);
}

static void
notify_task_init(notify_task *nt, nt_node *n, nti_reg *reg, nti_msg *m,
                 nti_slab *slab)
{
    nt->task.next = NULL;
    nt->task.run = notify_run;
    nt->task.drop = notify_drop;
    nt->node = n;
    nt->reg = reg;
    nt->msg = m;
    nt->slab = slab;
}

/* One notification task per registration (each holding it and m), as a
 * chain: NT_OK or NT_ENOMEM (nothing built). */
static int
notify_chain(nt_node *n, nti_reg **regs, size_t k, nti_msg *m,
             nti_task **head)
{
    nti_task **tail = head;
    *head = NULL;
    for (size_t i = 0; i < k; i++) {
        notify_task *nt = malloc(sizeof(*nt));
        if (nt == NULL) {
            task_chain_free(*head, notify_discard);
            *head = NULL;
            return NT_ENOMEM;
        }
        nti_reg_hold(regs[i]);
        nti_msg_hold(m);
        notify_task_init(nt, n, regs[i], m, NULL);
        *tail = &nt->task;
        tail = &nt->task.next;
    }
    return NT_OK;
}

/* Builds one notification task per registration and pushes them as one
 * chain on the ordered queue for (from, object, id): all or nothing. */
static int
push_notify(nt_node *n, nti_reg **regs, size_t k, nti_msg *m)
{
    nti_task *head = NULL;
    int rv = notify_chain(n, regs, k, m, &head);
    if (rv == NT_OK && k > 0) {
        rv = nti_pool_push_chain(n->pool,
                                 nti_order_key(m->from, m->object, m->id),
                                 head, k);
    }
    if (rv != NT_OK) {
        task_chain_free(head, notify_discard);
        if (rv == NT_EAGAIN) {
            atomic_fetch_add_explicit(&n->ctr.rejected, 1,
                                      memory_order_relaxed);
        }
    }
    return rv;
}

/* ---- Notifications of one received frame ---- */

/* A slab entry: a notify_task, then its nti_msg. */
#define SLAB_ALIGN 16
#define SLAB_ENTRY(bytes) \
    ((sizeof(notify_task) + (bytes) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

void
nti_notes_init(nti_notes *b, nt_node *n, size_t count, size_t bytes)
{
    b->n = n;
    b->ng = 0;
    b->accepted = 0;
    b->unreg = 0;
    b->status = NT_OK;
    b->reserved = false;
    b->slab = NULL;
    /* An item's message needs at most its encoded size plus an nti_msg:
     * each string gains a NUL but loses a length byte. */
    b->slab_hint = count * SLAB_ENTRY(sizeof(nti_msg)) + bytes;
    b->last_from[0] = b->last_object[0] = '\0';
    b->last_hash = 0;
}

/* Room for one entry of msg_bytes in the frame's slab (a new slab when the
 * current one is full); NULL on out-of-memory.  The entry holds a
 * reference to its slab. */
static void *
slab_take(nti_notes *b, size_t msg_bytes, nti_slab **out)
{
    size_t need = SLAB_ENTRY(msg_bytes);
    nti_slab *sl = b->slab;
    if (sl == NULL || sl->used + need > sl->cap) {
        size_t want = b->slab_hint > need ? b->slab_hint : need, bytes = 0;
        nti_slab *ns =
            nti_bufcache_get(&b->n->slabs, sizeof(*ns) + want, &bytes);
        if (ns == NULL) {
            return NULL;
        }
        atomic_init(&ns->refs, 1); /* the notes' own */
        ns->cache = &b->n->slabs;
        ns->bytes = bytes;
        ns->cap = bytes - sizeof(*ns);
        ns->used = 0;
        if (sl != NULL) {
            slab_rele(sl);
        }
        b->slab = sl = ns;
    }
    void *p = sl->mem + sl->used;
    sl->used += need;
    atomic_fetch_add_explicit(&sl->refs, 1, memory_order_relaxed);
    *out = sl;
    return p;
}

/* The ordering key, remembered for a run of items from one sender and
 * object (nti_order_key's hashing is a visible cost at a million items
 * per second). */
static uint64_t
notes_key(nti_notes *b, const char *from, const char *object, uint64_t id)
{
    if (b->last_object[0] == '\0' || strcmp(from, b->last_from) != 0 ||
        strcmp(object, b->last_object) != 0) {
        size_t lf = strlen(from), lo = strlen(object);
        if (lf >= sizeof(b->last_from) || lo >= sizeof(b->last_object)) {
            return nti_order_key(from, object, id);
        }
        memcpy(b->last_from, from, lf + 1);
        memcpy(b->last_object, object, lo + 1);
        b->last_hash = order_base(from, object);
    }
    return nti_hash_combine(b->last_hash, id);
}

/* Queues the recorded groups in order; the first refused one and all after
 * it are freed and end the frame. */
static void
notes_flush(nti_notes *b)
{
    size_t done = 0;
    int rv = b->ng > 0 ? nti_pool_push_groups(b->n->pool, b->g, b->ng,
                                              b->reserved, &done)
                       : NT_OK;
    for (size_t i = 0; i < done; i++) {
        b->unreg += b->unreg_of[i];
    }
    b->accepted += done;
    if (rv != NT_OK) {
        for (size_t i = done; i < b->ng; i++) {
            task_chain_free(b->g[i].head, notify_discard);
        }
        if (rv == NT_EAGAIN) {
            atomic_fetch_add_explicit(&b->n->ctr.rejected, 1,
                                      memory_order_relaxed);
        }
        b->status = rv;
    }
    b->ng = 0;
}

int
nti_notes_add(nti_notes *b, nti_reg **regs, size_t k, size_t unreg,
              const char *object, uint64_t id, const char *cmd,
              const char *from, const void *data, size_t len)
{
    nt_node *n = b->n;
    nti_task *head = NULL;
    int rv = NT_OK;
    if (b->status != NT_OK) {
        rv = b->status;
    } else if (k == 1) {
        /* The usual case: task and message in the frame's slab, the
         * index's reference to the registration handed on. */
        nti_slab *sl = NULL;
        notify_task *nt =
            slab_take(b, nti_msg_bytes(object, cmd, from, len), &sl);
        if (nt == NULL) {
            rv = NT_ENOMEM;
        } else {
            nti_msg *m = nti_msg_init(nt + 1, object, id, cmd, from, data,
                                      len);
            notify_task_init(nt, n, regs[0], m, sl);
            regs[0] = NULL;
            head = &nt->task;
        }
    } else if (k > 1) {
        nti_msg *m = nti_msg_alloc(object, id, cmd, from, data, len);
        rv = m != NULL ? notify_chain(n, regs, k, m, &head) : NT_ENOMEM;
        if (m != NULL) {
            nti_msg_rele(m);
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (regs[i] != NULL) {
            nti_reg_rele(regs[i]);
        }
    }
    if (rv != NT_OK) {
        if (b->status == NT_OK) {
            notes_flush(b); /* what came before still goes */
            b->status = b->status == NT_OK ? rv : b->status;
        }
        return b->status;
    }
    nti_pool_group *g = &b->g[b->ng];
    g->key = k > 0 ? notes_key(b, from, object, id) : 0;
    g->head = head;
    g->n = k;
    b->unreg_of[b->ng] = (uint32_t)unreg;
    if (++b->ng == NTI_NOTES_MAX) {
        notes_flush(b);
    }
    return b->status;
}

int
nti_notes_end(nti_notes *b)
{
    if (b->status == NT_OK) {
        notes_flush(b);
    }
    if (b->unreg > 0) {
        atomic_fetch_add_explicit(&b->n->ctr.dropped_unreg, b->unreg,
                                  memory_order_relaxed);
    }
    if (b->slab != NULL) {
        slab_rele(b->slab);
        b->slab = NULL;
    }
    return b->status;
}

int
nti_deliver_notify(nt_node *n, const char *object, uint64_t id,
                   const char *cmd, const void *data, size_t len,
                   const char *from, nti_targets *t)
{
    /* Local targets come first in t (see nti_index_route). */
    size_t nlocal = 0;
    while (nlocal < t->n && t->v[nlocal]->owner->peer == NULL) {
        nlocal++;
    }
    bool remote = nlocal < t->n;
    int rv = NT_OK;
    if (nlocal == 0 && t->n > 0) {
        /* Remote only: the peers encode the message into their queues at
         * once, so a view of the caller's arguments does. */
        nti_msg view = { .id = id, .len = len, .object = object,
                         .cmd = cmd, .from = from, .data = data };
        if (t->v[0]->owner == t->v[t->n - 1]->owner) {
            return nti_remote_notify_single(n, t, &view); /* one member */
        }
        if ((rv = nti_remote_reserve(n, t)) == NT_OK) {
            nti_remote_notify(n, t, &view);
        }
        return rv;
    }
    if (remote && (rv = nti_remote_reserve(n, t)) != NT_OK) {
        return rv;
    }
    nti_msg *m = nti_msg_alloc(object, id, cmd, from, data, len);
    if (m == NULL) {
        rv = NT_ENOMEM;
    } else {
        rv = push_notify(n, t->v, nlocal, m);
    }
    if (rv != NT_OK) {
        if (remote) {
            nti_remote_unreserve(n, t);
        }
    } else if (remote) {
        nti_remote_notify(n, t, m);
    }
    if (m != NULL) {
        nti_msg_rele(m);
    }
    return rv;
}

static int
check_call(nt_node *n, const char *object, const char *cmd,
           const void *data, size_t len)
{
    if (!nti_name_ok(object) || !nti_name_ok(cmd) ||
        (data == NULL && len > 0)) {
        return NT_EINVAL;
    }
    if (n != NULL && len > n->max_payload) {
        return NT_EMSGSIZE;
    }
    return NT_OK;
}

int
nti_publish_from(nt_node *n, const char *object, uint64_t id,
                 const char *cmd, const void *data, size_t len,
                 const char *from)
{
    nti_targets t;
    nti_targets_init(&t);
    int rv = nti_index_route(n->index, NTI_NOTIFY, object, cmd, id, &n->rng,
                             &t);
    if (rv == NT_OK) {
        rv = nti_deliver_notify(n, object, id, cmd, data, len, from, &t);
    }
    nti_targets_fini(&t);
    return rv;
}

int
nt_publish(nt_node *n, const char *object, uint64_t id, const char *cmd,
           const void *data, size_t len)
{
    if (n == NULL) {
        return NT_EINVAL;
    }
    int rv = check_call(n, object, cmd, data, len);
    if (rv != NT_OK) {
        return rv;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    if (nti_is_publisher(n)) {
        rv = nti_pub_publish(n, object, id, cmd, data, len);
        if (rv == NT_OK) {
            atomic_fetch_add_explicit(&n->ctr.published, 1,
                                      memory_order_relaxed);
        }
        nti_node_leave(n);
        return rv;
    }
    rv = nti_publish_from(n, object, id, cmd, data, len, n->id);
    if (rv == NT_OK) {
        atomic_fetch_add_explicit(&n->ctr.published, 1,
                                  memory_order_relaxed);
    }
    nti_node_leave(n);
    return rv;
}

/* ---- RPC ------------------------------------------------------------- */

typedef struct {
    nti_task task;
    nt_node *node;
    nti_reg *reg;
    nti_msg *msg;
    nti_call *call;
    size_t slot;
} request_task;

typedef struct {
    nti_reply_s base;
    nti_call *call;
    size_t slot;
} local_reply;

static void
local_deliver(nti_reply_s *rs, int status, int code, const void *data,
              size_t len)
{
    local_reply *lr = (local_reply *)rs;
    nti_call_fill(lr->call, lr->slot, status, code, data, len);
    nti_call_rele(lr->call);
    free(lr);
}

static void
request_free(request_task *t)
{
    nti_reg_rele(t->reg);
    nti_msg_rele(t->msg);
    nti_call_rele(t->call);
    free(t);
}

static void
request_run(nti_task *task)
{
    request_task *t = (request_task *)task;
    nt_node *n = t->node;
    local_reply *lr = NULL;
    nt_reply *h = NULL;
    if (!reg_enter(n, t->reg)) {
        atomic_fetch_add_explicit(&n->ctr.dropped_unreg, 1,
                                  memory_order_relaxed);
        nti_call_fill(t->call, t->slot, NT_ENOTARGET, 0, NULL, 0);
        request_free(t);
        return;
    }
    if ((lr = calloc(1, sizeof(*lr))) == NULL) {
        goto nomem;
    }
    lr->base.deliver = local_deliver;
    lr->base.max_payload = n->max_payload;
    lr->call = t->call;
    lr->slot = t->slot;
    nti_call_hold(t->call);
    if (nti_reply_open(&n->replies, &lr->base, &h) != NT_OK) {
        nti_call_rele(t->call);
        free(lr);
        goto nomem;
    }
    nt_msg v;
    nti_msg_view(t->msg, &v);
    atomic_fetch_add_explicit(&n->ctr.rpc_served, 1, memory_order_relaxed);
    t->reg->rfn(t->reg->dest, &v, h);
    reg_leave(n, t->reg);
    request_free(t);
    return;

nomem:
    reg_leave(n, t->reg);
    nti_call_fill(t->call, t->slot, NT_ENOMEM, 0, NULL, 0);
    request_free(t);
}

static void
request_drop(nti_task *task)
{
    request_task *t = (request_task *)task;
    atomic_fetch_add_explicit(&t->node->ctr.dropped_closed, 1,
                              memory_order_relaxed);
    nti_call_fill(t->call, t->slot, NT_ECLOSED, 0, NULL, 0);
    request_free(t);
}

static void
request_discard(nti_task *task)
{
    request_free((request_task *)task);
}

/* One routed call in the making. */
typedef struct {
    nti_targets t;
    nti_call *call;
    bool started;
} pending;

/* Routes and creates the call (not started).  NT_OK or an error. */
static int
call_prepare(nt_node *n, const char *object, uint64_t id, const char *cmd,
             pending *p)
{
    nti_targets_init(&p->t);
    p->call = NULL;
    p->started = false;
    int rv = nti_index_route(n->index, NTI_RPC, object, cmd, id, &n->rng,
                             &p->t);
    if (rv != NT_OK) {
        return rv;
    }
    const char *ids_inl[8];
    uint64_t peers_inl[8];
    const char **ids = ids_inl;
    uint64_t *peers = peers_inl;
    if (p->t.n > 8) {
        ids = malloc(p->t.n * sizeof(*ids));
        peers = malloc(p->t.n * sizeof(*peers));
        if (ids == NULL || peers == NULL) {
            rv = NT_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < p->t.n; i++) {
        nti_member *mb = p->t.v[i]->owner->peer;
        ids[i] = p->t.v[i]->owner->node_id;
        peers[i] = 0;
        if (mb != NULL) {
            nti_mtx_lock(&mb->mtx);
            peers[i] = mb->gen;
            nti_mtx_unlock(&mb->mtx);
        }
    }
    rv = nti_call_alloc(n->rpc, p->t.n, ids, peers, &p->call);
out:
    if (ids != ids_inl) {
        free(ids);
        free(peers);
    }
    return rv;
}

int
nti_deliver_call_local(nt_node *n, nti_call *c, nti_reg **regs,
                       const size_t *slots, size_t k, nti_msg *m,
                       bool urgent)
{
    nti_task *head = NULL, **tail = &head;
    size_t count = 0;
    int rv = NT_OK;
    for (size_t i = 0; i < k; i++) {
        request_task *rt = malloc(sizeof(*rt));
        if (rt == NULL) {
            rv = NT_ENOMEM;
            break;
        }
        rt->task.next = NULL;
        rt->task.run = request_run;
        rt->task.drop = request_drop;
        rt->node = n;
        nti_reg_hold(regs[i]);
        rt->reg = regs[i];
        nti_msg_hold(m);
        rt->msg = m;
        nti_call_hold(c);
        rt->call = c;
        rt->slot = slots[i];
        *tail = &rt->task;
        tail = &rt->task.next;
        count++;
    }
    if (rv == NT_OK && count > 0) {
        rv = urgent ? nti_pool_push_urgent(n->pool, head, count)
                    : nti_pool_push_shared(n->pool, head, count, false);
    }
    if (rv != NT_OK) {
        task_chain_free(head, request_discard);
        if (rv == NT_EAGAIN) {
            atomic_fetch_add_explicit(&n->ctr.rejected, 1,
                                      memory_order_relaxed);
        }
    }
    return rv;
}

/* Starts the call, queues its local requests (all or nothing) and sends
 * its remote ones.  Returns NT_OK when the call will complete (waiter
 * woken or callback run), else an error and nothing of it will run. */
static int
call_launch(nt_node *n, pending *p, const char *object, uint64_t id,
            const char *cmd, const void *data, size_t len, uint64_t deadline,
            nti_waiter *w, nt_response_fn cb, void *arg, const char *from)
{
    nti_msg *m = nti_msg_alloc(object, id, cmd, from, data, len);
    if (m == NULL) {
        return NT_ENOMEM;
    }
    size_t nlocal = 0, slots_inl[8], *slots = slots_inl;
    while (nlocal < p->t.n && p->t.v[nlocal]->owner->peer == NULL) {
        nlocal++;
    }
    if (nlocal > 8 && (slots = malloc(nlocal * sizeof(*slots))) == NULL) {
        nti_msg_rele(m);
        return NT_ENOMEM;
    }
    for (size_t i = 0; i < nlocal; i++) {
        slots[i] = i;
    }
    /* A handler about to block on this call gets it served first. */
    bool nested = w != NULL && nti_pool_in_handler();
    int rv = nti_call_start(p->call, deadline, w, cb, arg);
    if (rv == NT_OK) {
        rv = nti_deliver_call_local(n, p->call, p->t.v, slots, nlocal, m,
                                    nested);
        if (rv != NT_OK && !nti_call_abort(p->call)) {
            rv = NT_OK; /* a concurrent close completed it */
        } else if (rv == NT_OK && nlocal < p->t.n) {
            nti_remote_call(n, &p->t, p->call, m, nested);
        }
    }
    if (slots != slots_inl) {
        free(slots);
    }
    nti_msg_rele(m);
    if (rv == NT_OK) {
        p->started = true;
    }
    return rv;
}

static void
pending_fini(pending *p)
{
    nti_targets_fini(&p->t);
    if (p->call != NULL) {
        nti_call_rele(p->call);
        p->call = NULL;
    }
}

int
nt_rpc(nt_node *n, const char *object, uint64_t id, const char *cmd,
       const void *data, size_t len, int timeout_ms, nt_results **out)
{
    if (out == NULL || n == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    int rv = check_call(n, object, cmd, data, len);
    if (rv != NT_OK) {
        return rv;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    if (nti_is_publisher(n)) {
        rv = nti_pub_call(n, object, id, cmd, data, len, timeout_ms, NULL,
                          NULL, NULL, out);
        nti_node_leave(n);
        return rv;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    pending p;
    nti_waiter w;
    nti_waiter_init(&w);
    rv = call_prepare(n, object, id, cmd, &p);
    if (rv == NT_OK) {
        rv = call_launch(n, &p, object, id, cmd, data, len, deadline, &w,
                         NULL, NULL, n->id);
    }
    if (rv == NT_OK) {
        atomic_fetch_add_explicit(&n->ctr.rpc_calls, 1,
                                  memory_order_relaxed);
        nti_rpctab_wait(n->rpc, &w);
        int st;
        nt_results *res = nti_call_take(p.call, &st);
        if (st == NT_OK) {
            *out = res;
        } else {
            nt_results_free(res);
            rv = st;
        }
    }
    pending_fini(&p);
    nti_waiter_fini(&w);
    nti_node_leave(n);
    return rv;
}

/* A results list of one item with the given status, for ids that could
 * not be called. */
nt_results *
nti_results_single(int status)
{
    nt_results *r = malloc(sizeof(*r) + sizeof(nt_result) + 1);
    if (r == NULL) {
        return NULL;
    }
    r->count = 1;
    r->items = (nt_result *)(r + 1);
    char *empty = (char *)(r->items + 1);
    empty[0] = '\0';
    r->items[0] = (nt_result){ .status = status, .node = empty };
    return r;
}

/* nt_rpcs on a publisher: every id is one ROUTE_CALL to the server, all
 * in flight at once. */
static int
rpcs_publisher(nt_node *n, const char *object, const uint64_t *ids,
               size_t nids, const char *cmd, const void *data, size_t len,
               int timeout_ms, nt_results *out[])
{
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    nti_waiter w;
    nti_waiter_init(&w);
    for (size_t i = 0; i < nids; i++) {
        int st = nti_pub_call(n, object, ids[i], cmd, data, len, timeout_ms,
                              &w, NULL, NULL, &out[i]);
        if (st != NT_OK) {
            out[i] = nti_results_single(st);
        }
    }
    nti_rpctab_wait(n->rpc, &w);
    nti_waiter_fini(&w);
    atomic_fetch_add_explicit(&n->ctr.rpc_calls, nids, memory_order_relaxed);
    nti_node_leave(n);
    /* As on a member: no id with a target at all is NT_ENOTARGET. */
    int rv = NT_ENOTARGET;
    for (size_t i = 0; i < nids && rv != NT_ENOMEM; i++) {
        if (out[i] == NULL) {
            rv = NT_ENOMEM;
        } else if (out[i]->count != 1 ||
                   out[i]->items[0].status != NT_ENOTARGET) {
            rv = NT_OK;
        }
    }
    if (rv != NT_OK) {
        for (size_t i = 0; i < nids; i++) {
            nt_results_free(out[i]);
            out[i] = NULL;
        }
    }
    return rv;
}

int
nt_rpcs(nt_node *n, const char *object, const uint64_t *ids, size_t nids,
        const char *cmd, const void *data, size_t len, int timeout_ms,
        nt_results *out[])
{
    if (n == NULL || out == NULL || (ids == NULL && nids > 0)) {
        return NT_EINVAL;
    }
    for (size_t i = 0; i < nids; i++) {
        out[i] = NULL;
    }
    int rv = check_call(n, object, cmd, data, len);
    if (rv != NT_OK) {
        return rv;
    }
    if (nids == 0) {
        return NT_ENOTARGET;
    }
    if (nti_is_publisher(n)) {
        return rpcs_publisher(n, object, ids, nids, cmd, data, len,
                              timeout_ms, out);
    }
    pending *ps = calloc(nids, sizeof(*ps));
    int *st = calloc(nids, sizeof(*st));
    if (ps == NULL || st == NULL) {
        free(ps);
        free(st);
        return NT_ENOMEM;
    }
    if (!nti_node_enter(n)) {
        free(ps);
        free(st);
        return NT_ECLOSED;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nti_waiter w;
    nti_waiter_init(&w);
    size_t launched = 0;
    for (size_t i = 0; i < nids; i++) {
        st[i] = call_prepare(n, object, ids[i], cmd, &ps[i]);
        if (st[i] == NT_OK) {
            st[i] = call_launch(n, &ps[i], object, ids[i], cmd, data, len,
                                deadline, &w, NULL, NULL, n->id);
        }
        launched += st[i] == NT_OK;
    }
    if (launched == 0) {
        rv = st[0];
        for (size_t i = 1; i < nids; i++) {
            if (st[i] != NT_ENOTARGET) {
                rv = st[i];
            }
        }
        goto out;
    }
    atomic_fetch_add_explicit(&n->ctr.rpc_calls, launched,
                              memory_order_relaxed);
    nti_rpctab_wait(n->rpc, &w);
    for (size_t i = 0; i < nids; i++) {
        int s = st[i];
        if (s == NT_OK) {
            out[i] = nti_call_take(ps[i].call, &s);
        } else {
            out[i] = nti_results_single(s);
            s = out[i] != NULL ? NT_OK : NT_ENOMEM;
        }
        if (s != NT_OK && rv == NT_OK) {
            rv = s;
        }
    }
    if (rv != NT_OK) {
        for (size_t i = 0; i < nids; i++) {
            nt_results_free(out[i]);
            out[i] = NULL;
        }
    }
out:
    for (size_t i = 0; i < nids; i++) {
        pending_fini(&ps[i]);
    }
    nti_waiter_fini(&w);
    nti_node_leave(n);
    free(ps);
    free(st);
    return rv;
}

int
nti_rpc_async_from(nt_node *n, const char *object, uint64_t id,
                   const char *cmd, const void *data, size_t len,
                   int timeout_ms, nt_response_fn fn, void *arg,
                   const char *from)
{
    pending p;
    int rv = call_prepare(n, object, id, cmd, &p);
    if (rv == NT_OK) {
        rv = call_launch(n, &p, object, id, cmd, data, len,
                         nti_deadline(timeout_ms), NULL, fn, arg, from);
    }
    if (rv == NT_OK) {
        atomic_fetch_add_explicit(&n->ctr.rpc_calls, 1,
                                  memory_order_relaxed);
    }
    pending_fini(&p);
    return rv;
}

int
nt_rpc_call(nt_node *n, const char *object, uint64_t id, const char *cmd,
            const void *data, size_t len, int timeout_ms, nt_response_fn fn,
            void *arg)
{
    if (n == NULL || fn == NULL) {
        return NT_EINVAL;
    }
    int rv = check_call(n, object, cmd, data, len);
    if (rv != NT_OK) {
        return rv;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    if (nti_is_publisher(n)) {
        rv = nti_pub_call(n, object, id, cmd, data, len, timeout_ms, NULL,
                          fn, arg, NULL);
    } else {
        rv = nti_rpc_async_from(n, object, id, cmd, data, len, timeout_ms,
                                fn, arg, n->id);
    }
    nti_node_leave(n);
    return rv;
}
