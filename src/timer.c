/* SPDX-License-Identifier: MIT */
/*
 * Timer thread with a binary min-heap of entries (see timer.h).
 *
 * Design notes
 * ------------
 * Waking the thread is a context switch, and the callee's 2 ms hold timer
 * is scheduled (and nearly always cancelled) once per call frame: with a
 * signal each time it cost one switch per RPC.  So the thread records when
 * it will wake next (wake_at; 0 while awake, when it re-reads the heap
 * before sleeping anyway), and a schedule signals only when its entry is
 * due before that.  Coarse entries (nti_timer_schedule_coarse) may run up
 * to their slack late; scheduling one also keeps the thread ticking every
 * TICK_MS for TICK_WINDOW_MS, so that while such entries keep coming they
 * never need a signal.  An idle node's thread still sleeps until its next
 * entry.
 */
#include "timer.h"

#include <stdio.h>
#include <stdlib.h>

#include "notifier/notifier.h"
#include "platform/platform.h"

#define TICK_MS 1
#define TICK_WINDOW_MS 100

struct nti_timer {
    nti_mtx mtx; /* guards everything below */
    nti_cv cv;
    nti_timer_ent **heap;
    size_t n, cap;
    bool stop;
    uint64_t wake_at;    /* the sleeping thread's deadline; 0 while awake */
    uint64_t tick_until; /* tick every TICK_MS until then */
    nti_thr thr;
    char name[16];
};

void
nti_timer_ent_init(nti_timer_ent *e, void (*fn)(void *), void *arg)
{
    e->when = 0;
    e->fn = fn;
    e->arg = arg;
    e->pos = 0;
}

static void
heap_set(nti_timer *t, size_t i, nti_timer_ent *e)
{
    t->heap[i] = e;
    e->pos = i + 1;
}

static void
sift_up(nti_timer *t, size_t i)
{
    nti_timer_ent *e = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->when <= e->when) {
            break;
        }
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, e);
}

static void
sift_down(nti_timer *t, size_t i)
{
    nti_timer_ent *e = t->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t mw = e->when;
        if (l < t->n && t->heap[l]->when < mw) {
            m = l;
            mw = t->heap[l]->when;
        }
        if (r < t->n && t->heap[r]->when < mw) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_set(t, i, t->heap[m]);
        i = m;
    }
    heap_set(t, i, e);
}

static void
heap_remove(nti_timer *t, nti_timer_ent *e)
{
    size_t i = e->pos - 1;
    e->pos = 0;
    t->n--;
    if (i == t->n) {
        return;
    }
    nti_timer_ent *last = t->heap[t->n];
    heap_set(t, i, last);
    sift_down(t, i);
    sift_up(t, last->pos - 1);
}

static void
timer_main(void *arg)
{
    nti_timer *t = arg;
    nti_thr_setname(t->name);
    nti_mtx_lock(&t->mtx);
    while (!t->stop) {
        uint64_t now = nti_clock_ms();
        nti_timer_ent *e = t->n > 0 ? t->heap[0] : NULL;
        if (e == NULL || e->when > now) {
            uint64_t until = e != NULL ? e->when : UINT64_MAX;
            if (t->tick_until > now && now + TICK_MS < until) {
                until = now + TICK_MS;
            }
            t->wake_at = until;
            if (until == UINT64_MAX) {
                nti_cv_wait(&t->cv, &t->mtx);
            } else {
                nti_cv_wait_until(&t->cv, &t->mtx, until);
            }
            t->wake_at = 0;
            continue;
        }
        heap_remove(t, e);
        nti_mtx_unlock(&t->mtx);
        e->fn(e->arg);
        nti_mtx_lock(&t->mtx);
    }
    nti_mtx_unlock(&t->mtx);
}

int
nti_timer_alloc(nti_timer **out, const char *name)
{
    nti_timer *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NT_ENOMEM;
    }
    nti_mtx_init(&t->mtx);
    nti_cv_init(&t->cv);
    snprintf(t->name, sizeof(t->name), "%s", name ? name : "nt-timer");
    int rv = nti_thr_create(&t->thr, timer_main, t);
    if (rv != NT_OK) {
        nti_cv_fini(&t->cv);
        nti_mtx_fini(&t->mtx);
        free(t);
        return rv;
    }
    *out = t;
    return NT_OK;
}

void
nti_timer_free(nti_timer *t)
{
    if (t == NULL) {
        return;
    }
    nti_mtx_lock(&t->mtx);
    t->stop = true;
    nti_cv_signal(&t->cv);
    nti_mtx_unlock(&t->mtx);
    nti_thr_join(&t->thr);
    for (size_t i = 0; i < t->n; i++) {
        t->heap[i]->pos = 0;
    }
    free(t->heap);
    nti_cv_fini(&t->cv);
    nti_mtx_fini(&t->mtx);
    free(t);
}

static int
schedule(nti_timer *t, nti_timer_ent *e, uint64_t when, uint64_t slack)
{
    nti_mtx_lock(&t->mtx);
    if (e->pos != 0) {
        heap_remove(t, e);
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        nti_timer_ent **h = realloc(t->heap, nc * sizeof(*h));
        if (h == NULL) {
            nti_mtx_unlock(&t->mtx);
            return NT_ENOMEM;
        }
        t->heap = h;
        t->cap = nc;
    }
    e->when = when;
    t->heap[t->n] = e;
    e->pos = ++t->n;
    sift_up(t, t->n - 1);
    if (slack > 0) {
        uint64_t keep = nti_clock_ms() + TICK_WINDOW_MS;
        if (t->tick_until < keep) {
            t->tick_until = keep;
        }
    }
    if (when + slack < t->wake_at) {
        nti_cv_signal(&t->cv);
    }
    nti_mtx_unlock(&t->mtx);
    return NT_OK;
}

int
nti_timer_schedule(nti_timer *t, nti_timer_ent *e, uint64_t when)
{
    return schedule(t, e, when, 0);
}

int
nti_timer_schedule_coarse(nti_timer *t, nti_timer_ent *e, uint64_t when)
{
    return schedule(t, e, when, TICK_MS);
}

bool
nti_timer_cancel(nti_timer *t, nti_timer_ent *e)
{
    bool was = false;
    nti_mtx_lock(&t->mtx);
    if (e->pos != 0) {
        heap_remove(t, e);
        was = true;
    }
    nti_mtx_unlock(&t->mtx);
    return was;
}
