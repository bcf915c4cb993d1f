/* SPDX-License-Identifier: MIT */
/*
 * Pending-call table (see rpc.h).
 *
 * Design notes
 * ------------
 * One mutex (tab->mtx) guards the pending list and every call's slots,
 * fill count, completion flag and waiters.  A slot is written once: the
 * first of reply, deadline, peer loss or close wins and the others are
 * ignored, which makes every racing completion path safe.
 *
 * References: the creator holds one; the pending list holds one while the
 * call is incomplete; the timer holds one while the deadline is scheduled;
 * every reply handle holds one.  The results block is allocated with the
 * call (items plus the responder ids, inline) and handed to the caller
 * whole.
 *
 * Completion of an asynchronous call pushes a forced task onto the pool's
 * shared queue, so the callback runs on a worker, never on the network or
 * timer thread, and never under this lock.  If the pool no longer accepts
 * work (shutdown), the callback runs inline on the completing thread after
 * the lock is dropped.
 */
#include "rpc.h"

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "timer.h"

#define NODE_ID_MAX 64

struct nti_rpctab {
    nti_mtx mtx; /* guards pending list, all call state and lat */
    nti_call *pending;
    size_t npending;
    nti_lat_hist lat;
    struct nti_timer *timer;
    struct nti_pool *pool;
    _Atomic size_t cbs_queued; /* callbacks queued, not started yet */
    void (*idle_fn)(void *);   /* after the last of them (set once) */
    void *idle_arg;
};

struct nti_call {
    _Atomic unsigned refs;
    nti_rpctab *tab;
    nti_call *prev, *next;
    size_t n, done;
    bool started, complete, closed;
    bool cb_queued; /* counted in tab->cbs_queued */
    bool unmeasured;
    bool inline_cb; /* internal callback: run where the call completes */
    uint64_t start_us;
    nt_results *res;
    nti_waiter *waiter;
    nt_response_fn cb;
    void *cbarg;
    nti_timer_ent tmr;
    nti_task cbtask;
    uint64_t peers[]; /* n: the peer each reply comes from (0: local) */
};

int
nti_rpctab_alloc(nti_rpctab **out, struct nti_timer *timer,
                 struct nti_pool *pool)
{
    nti_rpctab *tab = calloc(1, sizeof(*tab));
    if (tab == NULL) {
        return NT_ENOMEM;
    }
    nti_mtx_init(&tab->mtx);
    tab->timer = timer;
    tab->pool = pool;
    *out = tab;
    return NT_OK;
}

void
nti_rpctab_free(nti_rpctab *tab)
{
    if (tab == NULL) {
        return;
    }
    nti_mtx_fini(&tab->mtx);
    free(tab);
}

static void call_expire(void *arg);
static void unlink_pending(nti_rpctab *tab, nti_call *c);

int
nti_call_alloc(nti_rpctab *tab, size_t n, const char *const *node_ids,
               const uint64_t *peers, nti_call **out)
{
    nti_call *c = calloc(1, sizeof(*c) + n * sizeof(c->peers[0]));
    size_t blk = sizeof(nt_results) + n * sizeof(nt_result) +
                 n * (NODE_ID_MAX + 1);
    nt_results *res = malloc(blk);
    if (c == NULL || res == NULL) {
        free(c);
        free(res);
        return NT_ENOMEM;
    }
    res->count = n;
    res->items = (nt_result *)(res + 1);
    char *names = (char *)(res->items + n);
    for (size_t i = 0; i < n; i++) {
        nt_result *it = &res->items[i];
        char *nm = names + i * (NODE_ID_MAX + 1);
        const char *id = node_ids[i] ? node_ids[i] : "";
        size_t idlen = strnlen(id, NODE_ID_MAX);
        memcpy(nm, id, idlen); /* not snprintf: this is per call */
        nm[idlen] = '\0';
        it->status = 1; /* open */
        it->data = NULL;
        it->len = 0;
        it->node = nm;
        it->code = 0;
        c->peers[i] = peers ? peers[i] : 0;
    }
    atomic_init(&c->refs, 1);
    c->tab = tab;
    c->n = n;
    c->res = res;
    nti_timer_ent_init(&c->tmr, call_expire, c);
    *out = c;
    return NT_OK;
}

void
nti_call_hold(nti_call *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void
nti_call_rele(nti_call *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    nt_results_free(c->res);
    free(c);
}

static void
cb_run(nti_task *t)
{
    nti_call *c = (nti_call *)((char *)t - offsetof(nti_call, cbtask));
    nti_rpctab *tab = c->tab;
    bool last = false;
    if (c->cb_queued) {
        c->cb_queued = false;
        last = atomic_fetch_sub(&tab->cbs_queued, 1) == 1;
    }
    nt_results *res = c->res;
    c->res = NULL;
    c->cb(c->cbarg, c->closed ? NT_ECLOSED : NT_OK, res);
    nt_results_free(res);
    nti_call_rele(c);
    if (last && tab->idle_fn != NULL) {
        tab->idle_fn(tab->idle_arg);
    }
}

bool
nti_rpctab_cbs_queued(nti_rpctab *tab)
{
    return atomic_load(&tab->cbs_queued) > 0;
}

void
nti_rpctab_set_idle(nti_rpctab *tab, void (*fn)(void *), void *arg)
{
    tab->idle_fn = fn;
    tab->idle_arg = arg;
}

static void
unlink_pending(nti_rpctab *tab, nti_call *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        tab->pending = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    tab->npending--;
}

int
nti_call_start(nti_call *c, uint64_t deadline, nti_waiter *w,
               nt_response_fn cb, void *arg)
{
    nti_rpctab *tab = c->tab;
    c->waiter = w;
    c->cb = cb;
    c->cbarg = arg;
    c->cbtask.run = cb_run;
    c->cbtask.drop = cb_run;
    nti_call_hold(c); /* pending list */
    c->start_us = nti_clock_us();
    nti_mtx_lock(&tab->mtx);
    c->started = true;
    if (w != NULL) {
        w->remaining++;
    }
    c->next = tab->pending;
    if (tab->pending != NULL) {
        tab->pending->prev = c;
    }
    tab->pending = c;
    tab->npending++;
    nti_mtx_unlock(&tab->mtx);
    if (deadline != UINT64_MAX) {
        nti_call_hold(c); /* timer */
        if (nti_timer_schedule(tab->timer, &c->tmr, deadline) != NT_OK) {
            nti_call_rele(c);
            /* If close completed it meanwhile it completes normally. */
            return nti_call_abort(c) ? NT_ENOMEM : NT_OK;
        }
        /* A completion between linking and scheduling (close) found no
         * deadline to cancel; cancel it here so the timer's reference
         * does not outlive the timer. */
        nti_mtx_lock(&tab->mtx);
        bool done = c->complete;
        nti_mtx_unlock(&tab->mtx);
        if (done && nti_timer_cancel(tab->timer, &c->tmr)) {
            nti_call_rele(c);
        }
    }
    return NT_OK;
}

bool
nti_call_abort(nti_call *c)
{
    nti_rpctab *tab = c->tab;
    nti_mtx_lock(&tab->mtx);
    bool aborted = c->started && !c->complete;
    if (aborted) {
        unlink_pending(tab, c);
        c->complete = true;
        if (c->waiter != NULL) {
            c->waiter->remaining--;
        }
    }
    nti_mtx_unlock(&tab->mtx);
    if (aborted) {
        if (nti_timer_cancel(tab->timer, &c->tmr)) {
            nti_call_rele(c);
        }
        nti_call_rele(c);
    }
    return aborted;
}

const double nti_lat_bounds[NTI_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0,
};

/* Lock held. */
static void
record_latency(nti_rpctab *tab, uint64_t us)
{
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < NTI_LAT_BUCKETS && s > nti_lat_bounds[i]) {
        i++;
    }
    tab->lat.count[i]++;
    tab->lat.n++;
    tab->lat.sum += s;
}

void
nti_rpctab_latency(nti_rpctab *tab, nti_lat_hist *out)
{
    nti_mtx_lock(&tab->mtx);
    *out = tab->lat;
    nti_mtx_unlock(&tab->mtx);
}

void
nti_call_unmeasured(nti_call *c)
{
    c->unmeasured = true;
}

void
nti_call_inline_cb(nti_call *c)
{
    c->inline_cb = true;
}

bool
nti_call_is_complete(nti_call *c)
{
    nti_mtx_lock(&c->tab->mtx);
    bool done = c->complete;
    nti_mtx_unlock(&c->tab->mtx);
    return done;
}

/* Fills slot i.  Lock held.  Returns true when this completed the call
 * and an asynchronous callback must be dispatched by the caller (after
 * unlocking). */
static bool
fill_locked(nti_call *c, size_t i, int status, int code, void *data,
            size_t len)
{
    /* Once complete, the results may already belong to the caller. */
    if (c->complete || c->res->items[i].status != 1) {
        free(data);
        return false;
    }
    nt_result *it = &c->res->items[i];
    it->status = status;
    it->code = code;
    it->data = data;
    it->len = len;
    if (++c->done < c->n) {
        return false;
    }
    c->complete = true;
    unlink_pending(c->tab, c);
    if (!c->unmeasured) {
        record_latency(c->tab, nti_clock_us() - c->start_us);
    }
    if (c->waiter != NULL) {
        if (--c->waiter->remaining == 0) {
            nti_cv_broadcast(&c->waiter->cv);
        }
        return false;
    }
    return true;
}

/* After unlocking: cancel the deadline and run or queue the callback.
 * Consumes the pending list's reference. */
static void
finish(nti_call *c, bool dispatch)
{
    if (nti_timer_cancel(c->tab->timer, &c->tmr)) {
        nti_call_rele(c);
    }
    if (dispatch) {
        /* The pending reference moves to the callback task. */
        c->cbtask.next = NULL;
        if (!c->inline_cb) {
            c->cb_queued = true;
            atomic_fetch_add(&c->tab->cbs_queued, 1);
        }
        if (c->inline_cb ||
            nti_pool_push_shared(c->tab->pool, &c->cbtask, 1, true) !=
                NT_OK) {
            cb_run(&c->cbtask);
        }
        return;
    }
    nti_call_rele(c);
}

static void *
copy_payload(int status, const void *data, size_t len, size_t *outlen)
{
    /* Error texts keep a NUL so they print as C strings. */
    size_t extra = status == NT_OK ? 0 : 1;
    *outlen = len;
    if (len == 0 && extra == 0) {
        return NULL;
    }
    char *p = malloc(len + extra);
    if (p == NULL) {
        return NULL;
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    if (extra) {
        p[len] = '\0';
    }
    return p;
}

void
nti_call_fill(nti_call *c, size_t i, int status, int code,
              const void *data, size_t len)
{
    size_t clen = 0;
    void *copy = copy_payload(status, data, len, &clen);
    if (copy == NULL && (len > 0 || status != NT_OK)) {
        /* Out of memory: the caller still learns the outcome. */
        status = status == NT_OK ? NT_ENOMEM : status;
        clen = 0;
    }
    nti_rpctab *tab = c->tab;
    nti_mtx_lock(&tab->mtx);
    bool completed_before = c->complete;
    bool dispatch = fill_locked(c, i, status, code, copy, clen);
    bool completed = !completed_before && c->complete;
    nti_mtx_unlock(&tab->mtx);
    if (completed) {
        finish(c, dispatch);
    }
}

static void
call_expire(void *arg)
{
    nti_call *c = arg;
    nti_rpctab *tab = c->tab;
    bool completed = false, dispatch = false;
    nti_mtx_lock(&tab->mtx);
    for (size_t i = 0; i < c->n && !c->complete; i++) {
        dispatch = fill_locked(c, i, NT_ETIMEDOUT, 0, NULL, 0);
        completed = c->complete;
    }
    nti_mtx_unlock(&tab->mtx);
    if (completed) {
        finish(c, dispatch);
    }
    nti_call_rele(c); /* the timer's reference */
}

void
nti_waiter_init(nti_waiter *w)
{
    nti_cv_init(&w->cv);
    w->remaining = 0;
}

void
nti_waiter_fini(nti_waiter *w)
{
    nti_cv_fini(&w->cv);
}

void
nti_rpctab_wait(nti_rpctab *tab, nti_waiter *w)
{
    nti_pool_block_begin();
    nti_mtx_lock(&tab->mtx);
    while (w->remaining > 0) {
        nti_cv_wait(&w->cv, &tab->mtx);
    }
    nti_mtx_unlock(&tab->mtx);
    nti_pool_block_end();
}

void
nti_waiter_add(nti_rpctab *tab, nti_waiter *w)
{
    nti_mtx_lock(&tab->mtx);
    w->remaining++;
    nti_mtx_unlock(&tab->mtx);
}

void
nti_waiter_done(nti_rpctab *tab, nti_waiter *w)
{
    nti_mtx_lock(&tab->mtx);
    if (--w->remaining == 0) {
        nti_cv_broadcast(&w->cv);
    }
    nti_mtx_unlock(&tab->mtx);
}

nt_results *
nti_call_take(nti_call *c, int *status)
{
    nti_mtx_lock(&c->tab->mtx);
    nt_results *r = c->res;
    c->res = NULL;
    *status = c->closed ? NT_ECLOSED : NT_OK;
    nti_mtx_unlock(&c->tab->mtx);
    return r;
}

/* Fails the open slots selected by peer (or all, with all) and finishes
 * the calls this completes. */
static void
fail_slots(nti_rpctab *tab, bool all, uint64_t peer, int status)
{
    nti_call *done = NULL;
    nti_mtx_lock(&tab->mtx);
    nti_call *c = tab->pending;
    while (c != NULL) {
        nti_call *next = c->next;
        if (all) {
            c->closed = true;
        }
        bool dispatch = false;
        for (size_t i = 0; i < c->n && !c->complete; i++) {
            if (all || c->peers[i] == peer) {
                dispatch = fill_locked(c, i, status, 0, NULL, 0);
            }
        }
        if (c->complete) {
            /* Reuse prev as the completion chain; the flag rides in
             * cbtask.next, which is unused until dispatch. */
            c->cbtask.next = dispatch ? &c->cbtask : NULL;
            c->prev = done;
            done = c;
        }
        c = next;
    }
    nti_mtx_unlock(&tab->mtx);
    while (done != NULL) {
        nti_call *next = done->prev;
        bool dispatch = done->cbtask.next != NULL;
        done->prev = NULL;
        done->cbtask.next = NULL;
        finish(done, dispatch);
        done = next;
    }
}

void
nti_rpctab_peer_lost(nti_rpctab *tab, uint64_t peer)
{
    fail_slots(tab, false, peer, NT_EPEERLOST);
}

void
nti_rpctab_close(nti_rpctab *tab)
{
    fail_slots(tab, true, 0, NT_ECLOSED);
}

size_t
nti_rpctab_pending(nti_rpctab *tab)
{
    nti_mtx_lock(&tab->mtx);
    size_t n = tab->npending;
    nti_mtx_unlock(&tab->mtx);
    return n;
}
