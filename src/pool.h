/* SPDX-License-Identifier: MIT */
/*
 * Worker pool: the threads that run user handlers.
 *
 * Each worker owns a bounded FIFO queue for ordered work (notifications are
 * hashed onto it by sender, object and id, so that they run in publish
 * order); all threads also serve one shared bounded queue for unordered
 * work (RPC requests, RPC completion callbacks).  When a pool thread blocks
 * inside a synchronous API call (nt_rpc from a handler), the pool may start
 * a spare thread that serves the shared queue, so nested RPCs never
 * deadlock for want of a free worker.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef NTI_POOL_H
#define NTI_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nti_pool nti_pool;
typedef struct nti_task nti_task;

/* A unit of work.  run() does the work and frees the task; drop() is
 * called instead, on the thread that shuts the pool down, for tasks still
 * queued then (it must settle the task, e.g. fail an RPC, and free it). */
struct nti_task {
    nti_task *next;
    void (*run)(nti_task *t);
    void (*drop)(nti_task *t);
};

typedef struct {
    size_t queued;      /* tasks waiting, all queues */
    size_t running;     /* tasks being run now */
    size_t threads;     /* workers + spares alive */
    size_t blocked;     /* threads inside a blocking API call */
    uint64_t rejected;  /* pushes refused because a queue was full */
    uint64_t dropped;   /* tasks dropped at shutdown */
    uint64_t spares_started;
} nti_pool_stats;

/* Starts nworkers threads named "<name>-w<i>".  depth bounds every queue;
 * max_spares caps the extra threads.  NT_OK, NT_ENOMEM. */
int nti_pool_alloc(nti_pool **out, unsigned nworkers, unsigned depth,
                   unsigned max_spares, const char *name);

/* Queues t on the ordered queue chosen by key.  NT_OK; NT_EAGAIN when that
 * queue is full; NT_ECLOSED once draining started.  On error the caller
 * keeps t. */
int nti_pool_push(nti_pool *p, uint64_t key, nti_task *t);
/* Queues a chain of tasks (linked by next) on one ordered queue, all or
 * nothing. */
int nti_pool_push_chain(nti_pool *p, uint64_t key, nti_task *head,
                        size_t n);
/* A chain of n ordered tasks for one key (n may be 0: nothing to queue). */
typedef struct {
    uint64_t key;
    nti_task *head;
    size_t n;
} nti_pool_group;
/* Queues groups in order under one lock, each all or nothing, and wakes
 * each worker concerned once; stops at the first group whose queue is full
 * (NT_EAGAIN; never with reserved: room was reserved for them) or once
 * draining started (NT_ECLOSED).  *done is the number of groups queued
 * (g[0..*done)); the caller keeps the rest. */
int nti_pool_push_groups(nti_pool *p, const nti_pool_group *g, size_t n,
                         bool reserved, size_t *done);
/* Reserves room for n ordered tasks, wherever they go: true when the
 * tasks queued and reserved, n included, stay within the depth (so no
 * queue can be full for them) and draining has not started.  Undone with
 * nti_pool_unreserve once they are queued.  The pushes that use it are
 * not bounded (a receiver reserves one task per notification, and one
 * naming several local registrations makes several). */
bool nti_pool_reserve(nti_pool *p, size_t n);
void nti_pool_unreserve(nti_pool *p, size_t n);
/* Queues a chain of n tasks (linked by next) on the shared queue, all or
 * nothing.  With force the bound is ignored and the tasks are accepted
 * even while draining (completions that must run exactly once); only
 * shutdown refuses them (NT_ECLOSED).  On error the caller keeps them. */
int nti_pool_push_shared(nti_pool *p, nti_task *head, size_t n, bool force);
/* Like nti_pool_push_shared, but queues the chain ahead of everything
 * waiting: for requests made by a handler that is about to block on them
 * (nested calls), so they never wait behind the work that blocks. */
int nti_pool_push_urgent(nti_pool *p, nti_task *head, size_t n);

/* True when the calling thread is a worker or spare of any pool, i.e. we
 * are inside a handler. */
bool nti_pool_in_handler(void);

/* Brackets a blocking wait made by the calling thread; a no-op unless the
 * thread belongs to some pool.  Lets that pool start a spare thread. */
void nti_pool_block_begin(void);
void nti_pool_block_end(void);

/* True when the calling thread is one of p's threads. */
bool nti_pool_is_mine(const nti_pool *p);

/* Stops accepting non-forced work and waits until every queue is empty
 * and nothing runs, or until deadline_ms (monotonic).  Returns true when
 * drained. */
bool nti_pool_drain(nti_pool *p, uint64_t deadline_ms);
/* Tells the threads to exit once their running task returns, drops what is
 * still queued, joins every thread.  Must not be called from a pool
 * thread. */
void nti_pool_shutdown(nti_pool *p);
void nti_pool_free(nti_pool *p);

void nti_pool_stats_get(nti_pool *p, nti_pool_stats *s);
unsigned nti_pool_workers(const nti_pool *p);

#endif
