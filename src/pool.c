/* SPDX-License-Identifier: MIT */
/*
 * Worker pool (see pool.h).
 *
 * Design notes
 * ------------
 * One mutex (mtx) guards the whole pool: the queues, the thread records
 * and the counters.  Tasks run with it released.  Every thread has its own
 * condition variable; a pusher wakes exactly the thread it chose (the
 * queue's worker, or any idle thread for the shared queue), marking it busy
 * first so two pushers never count on the same sleeper.
 *
 * Ordering: ordered work for one key always lands on the same worker's
 * FIFO, and only that worker pops it, so tasks with one key start in push
 * order and never overlap.  Spare threads serve only the shared queue,
 * never a worker's FIFO, so a worker blocked in a nested call holds back
 * its own ordered work but nothing else.
 *
 * Nested calls: a handler that makes a synchronous RPC marks its thread
 * blocked (nti_pool_block_begin).  If shared work is then waiting and every
 * thread of the pool is blocked, a spare thread starts (up to max_spares),
 * so the RPC it waits for can run.  Spares leave after a second idle.
 *
 * Shutdown: drain stops non-forced pushes and waits for the queues to
 * empty; shutdown then drops what is left (each task's drop() settles it)
 * and joins the threads.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"
#include "platform/platform.h"

#define SPARE_IDLE_MS 1000

typedef struct {
    nti_task *head, *tail;
    size_t n;
} tqueue;

typedef struct pthr {
    nti_pool *pool;
    nti_thr thr;
    nti_cv cv;
    int index;          /* worker index, or -1 for a spare */
    bool idle;          /* waiting and not yet chosen by a pusher */
    bool blocked;
    bool exited;        /* spare: its loop has finished */
    bool prefer_shared; /* alternates queues for fairness */
    struct pthr *next;  /* spares list */
} pthr;

/* Workers a pusher chose under the lock, to signal after unlocking. */
#define WAKE_LATER_MAX 16
typedef struct {
    pthr *t[WAKE_LATER_MAX];
    size_t n;
} wake_list;

struct nti_pool {
    nti_mtx mtx; /* guards everything below */
    nti_cv drain_cv;
    unsigned nworkers, depth, max_spares;
    pthr *workers;
    tqueue *wq;
    tqueue shared;
    pthr *spares;
    unsigned nspares; /* spares alive */
    size_t queued, running, blocked, nidle, alive;
    size_t reserved; /* nti_pool_reserve */
    bool draining, stopping;
    uint64_t rejected, dropped, spares_started;
    char name[12];
};

static _Thread_local pthr *cur_thread;

static void
tq_push(tqueue *q, nti_task *t)
{
    t->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = t;
    } else {
        q->head = t;
    }
    q->tail = t;
    q->n++;
}

static nti_task *
tq_pop(tqueue *q)
{
    nti_task *t = q->head;
    if (t != NULL) {
        q->head = t->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->n--;
        t->next = NULL;
    }
    return t;
}

/* Chooses an idle thread for new work (lock held).  A fixed worker is
 * signalled only after the pusher unlocks (wake_flush), so that it does
 * not wake straight into the pool's mutex; workers live as long as the
 * pool, so the late signal is safe.  A spare may leave and be freed once
 * the lock is dropped, so it is signalled at once. */
static void
wake(pthr *t, wake_list *later)
{
    if (t->idle) {
        t->idle = false;
        t->pool->nidle--;
        if (t->index >= 0 && later != NULL && later->n < WAKE_LATER_MAX) {
            later->t[later->n++] = t;
        } else {
            nti_cv_signal(&t->cv);
        }
    }
}

/* Signals the workers chosen under the lock (lock not held). */
static void
wake_flush(const wake_list *later)
{
    for (size_t i = 0; i < later->n; i++) {
        nti_cv_signal(&later->t[i]->cv);
    }
}

static void
wake_any(nti_pool *p, wake_list *later)
{
    if (p->nidle == 0) {
        return;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->workers[i].idle) {
            wake(&p->workers[i], later);
            return;
        }
    }
    for (pthr *s = p->spares; s != NULL; s = s->next) {
        if (s->idle) {
            wake(s, later);
            return;
        }
    }
}

static nti_task *
take(nti_pool *p, pthr *self)
{
    nti_task *t = NULL;
    if (self->index < 0) {
        t = tq_pop(&p->shared);
    } else {
        tqueue *mine = &p->wq[self->index];
        if (self->prefer_shared) {
            t = tq_pop(&p->shared);
        }
        if (t == NULL) {
            t = tq_pop(mine);
        }
        if (t == NULL) {
            t = tq_pop(&p->shared);
        }
        self->prefer_shared = !self->prefer_shared;
    }
    if (t != NULL) {
        p->queued--;
    }
    return t;
}

static void
thread_main(void *arg)
{
    pthr *self = arg;
    nti_pool *p = self->pool;
    char name[32];
    if (self->index >= 0) {
        snprintf(name, sizeof(name), "%s-w%d", p->name, self->index);
    } else {
        snprintf(name, sizeof(name), "%s-sp", p->name);
    }
    nti_thr_setname(name);
    cur_thread = self;

    nti_mtx_lock(&p->mtx);
    for (;;) {
        if (p->stopping) {
            break;
        }
        nti_task *t = take(p, self);
        if (t != NULL) {
            p->running++;
            nti_mtx_unlock(&p->mtx);
            t->run(t);
            nti_mtx_lock(&p->mtx);
            p->running--;
            if (p->draining && p->queued == 0 && p->running == 0) {
                nti_cv_broadcast(&p->drain_cv);
            }
            continue;
        }
        if (!self->idle) {
            self->idle = true;
            p->nidle++;
        }
        if (self->index >= 0) {
            nti_cv_wait(&self->cv, &p->mtx);
        } else if (!nti_cv_wait_until(&self->cv, &p->mtx,
                                      nti_clock_ms() + SPARE_IDLE_MS) &&
                   p->shared.n == 0) {
            break; /* idle spare leaves */
        }
    }
    if (self->idle) {
        self->idle = false;
        p->nidle--;
    }
    if (self->index < 0) {
        self->exited = true;
        p->nspares--;
    }
    p->alive--;
    nti_cv_broadcast(&p->drain_cv);
    nti_mtx_unlock(&p->mtx);
    cur_thread = NULL;
}

/* Joins and frees spares that have exited.  Lock held; the joins are
 * short since those threads only have to return. */
static void
reap_spares(nti_pool *p)
{
    pthr **pp = &p->spares;
    while (*pp != NULL) {
        pthr *s = *pp;
        if (s->exited) {
            *pp = s->next;
            nti_thr_join(&s->thr);
            nti_cv_fini(&s->cv);
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

/* Starts a spare when shared work waits and no thread can take it.  Lock
 * held. */
static void
maybe_spawn(nti_pool *p)
{
    if (p->stopping || p->shared.n == 0 || p->nidle > 0 ||
        p->alive > p->blocked || p->nspares >= p->max_spares) {
        return;
    }
    reap_spares(p);
    pthr *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return;
    }
    s->pool = p;
    s->index = -1;
    nti_cv_init(&s->cv);
    if (nti_thr_create(&s->thr, thread_main, s) != NT_OK) {
        nti_cv_fini(&s->cv);
        free(s);
        return;
    }
    s->next = p->spares;
    p->spares = s;
    p->nspares++;
    p->alive++;
    p->spares_started++;
}

int
nti_pool_alloc(nti_pool **out, unsigned nworkers, unsigned depth,
               unsigned max_spares, const char *name)
{
    if (nworkers == 0 || depth == 0) {
        return NT_EINVAL;
    }
    nti_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NT_ENOMEM;
    }
    p->workers = calloc(nworkers, sizeof(*p->workers));
    p->wq = calloc(nworkers, sizeof(*p->wq));
    if (p->workers == NULL || p->wq == NULL) {
        free(p->workers);
        free(p->wq);
        free(p);
        return NT_ENOMEM;
    }
    nti_mtx_init(&p->mtx);
    nti_cv_init(&p->drain_cv);
    p->depth = depth;
    p->max_spares = max_spares;
    snprintf(p->name, sizeof(p->name), "%s", name ? name : "nt");

    nti_mtx_lock(&p->mtx);
    for (unsigned i = 0; i < nworkers; i++) {
        pthr *w = &p->workers[i];
        w->pool = p;
        w->index = (int)i;
        nti_cv_init(&w->cv);
        if (nti_thr_create(&w->thr, thread_main, w) != NT_OK) {
            nti_cv_fini(&w->cv);
            nti_mtx_unlock(&p->mtx);
            nti_pool_shutdown(p);
            nti_pool_free(p);
            return NT_ENOMEM;
        }
        p->nworkers++;
        p->alive++;
    }
    nti_mtx_unlock(&p->mtx);
    *out = p;
    return NT_OK;
}

int
nti_pool_push_chain(nti_pool *p, uint64_t key, nti_task *head, size_t n)
{
    int rv = NT_OK;
    wake_list later = { .n = 0 };
    nti_mtx_lock(&p->mtx);
    unsigned i = (unsigned)(key % p->nworkers);
    tqueue *q = &p->wq[i];
    if (p->draining) {
        rv = NT_ECLOSED;
    } else if (q->n + n > p->depth) {
        p->rejected++;
        rv = NT_EAGAIN;
    } else {
        while (head != NULL) {
            nti_task *next = head->next;
            tq_push(q, head);
            head = next;
        }
        p->queued += n;
        wake(&p->workers[i], &later);
    }
    nti_mtx_unlock(&p->mtx);
    wake_flush(&later);
    return rv;
}

bool
nti_pool_reserve(nti_pool *p, size_t n)
{
    nti_mtx_lock(&p->mtx);
    bool ok = !p->draining && p->queued + p->reserved + n <= p->depth;
    if (ok) {
        p->reserved += n;
    }
    nti_mtx_unlock(&p->mtx);
    return ok;
}

void
nti_pool_unreserve(nti_pool *p, size_t n)
{
    nti_mtx_lock(&p->mtx);
    p->reserved -= n;
    nti_mtx_unlock(&p->mtx);
}

int
nti_pool_push_groups(nti_pool *p, const nti_pool_group *g, size_t n,
                     bool reserved, size_t *done)
{
    int rv = NT_OK;
    size_t i = 0;
    wake_list later = { .n = 0 };
    nti_mtx_lock(&p->mtx);
    for (; i < n; i++) {
        if (g[i].n == 0) {
            continue;
        }
        unsigned w = (unsigned)(g[i].key % p->nworkers);
        tqueue *q = &p->wq[w];
        if (p->draining) {
            rv = NT_ECLOSED;
            break;
        }
        if (!reserved && q->n + g[i].n > p->depth) {
            p->rejected++;
            rv = NT_EAGAIN;
            break;
        }
        for (nti_task *t = g[i].head; t != NULL;) {
            nti_task *next = t->next;
            tq_push(q, t);
            t = next;
        }
        p->queued += g[i].n;
        wake(&p->workers[w], &later); /* once: it is then busy */
    }
    nti_mtx_unlock(&p->mtx);
    wake_flush(&later);
    *done = i;
    return rv;
}

int
nti_pool_push(nti_pool *p, uint64_t key, nti_task *t)
{
    t->next = NULL;
    return nti_pool_push_chain(p, key, t, 1);
}

static int
push_shared(nti_pool *p, nti_task *head, size_t n, bool force, bool front)
{
    int rv = NT_OK;
    wake_list later = { .n = 0 };
    nti_mtx_lock(&p->mtx);
    if (p->stopping || (p->draining && !force)) {
        rv = NT_ECLOSED;
    } else if (!force && !front && p->shared.n + n > p->depth) {
        p->rejected++;
        rv = NT_EAGAIN;
    } else {
        if (front) {
            nti_task *last = head;
            while (last->next != NULL) {
                last = last->next;
            }
            last->next = p->shared.head;
            p->shared.head = head;
            if (p->shared.tail == NULL) {
                p->shared.tail = last;
            }
            p->shared.n += n;
        } else {
            while (head != NULL) {
                nti_task *next = head->next;
                tq_push(&p->shared, head);
                head = next;
            }
        }
        p->queued += n;
        for (size_t i = 0; i < n; i++) {
            wake_any(p, &later);
        }
        maybe_spawn(p);
    }
    nti_mtx_unlock(&p->mtx);
    wake_flush(&later);
    return rv;
}

int
nti_pool_push_shared(nti_pool *p, nti_task *head, size_t n, bool force)
{
    return push_shared(p, head, n, force, false);
}

int
nti_pool_push_urgent(nti_pool *p, nti_task *head, size_t n)
{
    /* Nested requests ignore the bound: refusing them could only turn a
     * busy node into a deadlocked one. */
    return push_shared(p, head, n, false, true);
}

bool
nti_pool_in_handler(void)
{
    return cur_thread != NULL;
}

void
nti_pool_block_begin(void)
{
    pthr *self = cur_thread;
    if (self == NULL) {
        return;
    }
    nti_pool *p = self->pool;
    nti_mtx_lock(&p->mtx);
    self->blocked = true;
    p->blocked++;
    maybe_spawn(p);
    nti_mtx_unlock(&p->mtx);
}

void
nti_pool_block_end(void)
{
    pthr *self = cur_thread;
    if (self == NULL) {
        return;
    }
    nti_pool *p = self->pool;
    nti_mtx_lock(&p->mtx);
    self->blocked = false;
    p->blocked--;
    nti_mtx_unlock(&p->mtx);
}

bool
nti_pool_is_mine(const nti_pool *p)
{
    return cur_thread != NULL && cur_thread->pool == p;
}

bool
nti_pool_drain(nti_pool *p, uint64_t deadline_ms)
{
    nti_mtx_lock(&p->mtx);
    p->draining = true;
    while ((p->queued > 0 || p->running > 0) &&
           nti_cv_wait_until(&p->drain_cv, &p->mtx, deadline_ms)) {
    }
    bool done = p->queued == 0 && p->running == 0;
    nti_mtx_unlock(&p->mtx);
    return done;
}

void
nti_pool_shutdown(nti_pool *p)
{
    nti_task *left = NULL;
    nti_mtx_lock(&p->mtx);
    p->draining = true;
    p->stopping = true;
    for (unsigned i = 0; i < p->nworkers; i++) {
        nti_task *t;
        while ((t = tq_pop(&p->wq[i])) != NULL) {
            t->next = left;
            left = t;
        }
        p->workers[i].idle = false;
        nti_cv_signal(&p->workers[i].cv);
    }
    nti_task *t;
    while ((t = tq_pop(&p->shared)) != NULL) {
        t->next = left;
        left = t;
    }
    for (pthr *s = p->spares; s != NULL; s = s->next) {
        s->idle = false;
        nti_cv_signal(&s->cv);
    }
    p->nidle = 0;
    p->queued = 0;
    nti_mtx_unlock(&p->mtx);

    while (left != NULL) {
        nti_task *next = left->next;
        nti_mtx_lock(&p->mtx);
        p->dropped++;
        nti_mtx_unlock(&p->mtx);
        left->drop(left);
        left = next;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        nti_thr_join(&p->workers[i].thr);
    }
    /* Spares cannot start any more (stopping); wait for the live ones. */
    nti_mtx_lock(&p->mtx);
    while (p->nspares > 0) {
        nti_cv_wait(&p->drain_cv, &p->mtx);
    }
    reap_spares(p);
    nti_mtx_unlock(&p->mtx);
}

void
nti_pool_free(nti_pool *p)
{
    if (p == NULL) {
        return;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        nti_cv_fini(&p->workers[i].cv);
    }
    free(p->workers);
    free(p->wq);
    nti_cv_fini(&p->drain_cv);
    nti_mtx_fini(&p->mtx);
    free(p);
}

void
nti_pool_stats_get(nti_pool *p, nti_pool_stats *s)
{
    nti_mtx_lock(&p->mtx);
    s->queued = p->queued;
    s->running = p->running;
    s->threads = p->alive;
    s->blocked = p->blocked;
    s->rejected = p->rejected;
    s->dropped = p->dropped;
    s->spares_started = p->spares_started;
    nti_mtx_unlock(&p->mtx);
}

unsigned
nti_pool_workers(const nti_pool *p)
{
    return p->nworkers;
}
