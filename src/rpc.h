/* SPDX-License-Identifier: MIT */
/*
 * Pending-call table: every RPC in flight, one result slot per target.
 * Slots are filled by replies (local or remote), by the deadline
 * (NT_ETIMEDOUT), by peer loss (NT_EPEERLOST) and by close (NT_ECLOSED).
 * Filling never needs a worker thread, so a handler blocked in a nested
 * call can always be answered.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef NTI_RPC_H
#define NTI_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notifier/notifier.h"
#include "platform/platform.h"

typedef struct nti_rpctab nti_rpctab;
typedef struct nti_call nti_call;
struct nti_timer;
struct nti_pool;

/* A synchronous caller waiting for one or more calls. */
typedef struct nti_waiter {
    nti_cv cv;
    size_t remaining;
} nti_waiter;

int nti_rpctab_alloc(nti_rpctab **out, struct nti_timer *timer,
                     struct nti_pool *pool);
void nti_rpctab_free(nti_rpctab *tab);
/* Whether asynchronous callbacks are queued that have not started (they
 * tend to make the next calls: peer.c holds a small call frame for them),
 * and what runs after the last of them returned (set before any call). */
bool nti_rpctab_cbs_queued(nti_rpctab *tab);
void nti_rpctab_set_idle(nti_rpctab *tab, void (*fn)(void *), void *arg);

/* A call with n slots, not yet started; node_ids[i] names the target of
 * slot i and peers[i] its peer generation (0 = local). */
int nti_call_alloc(nti_rpctab *tab, size_t n, const char *const *node_ids,
                   const uint64_t *peers, nti_call **out);
void nti_call_hold(nti_call *c);
void nti_call_rele(nti_call *c);

/* Makes the call pending: slots can be filled from now on.  Exactly one
 * of w (synchronous) and cb (asynchronous) is set.  The deadline is
 * monotonic ms (UINT64_MAX = none). */
int nti_call_start(nti_call *c, uint64_t deadline, nti_waiter *w,
                   nt_response_fn cb, void *arg);
/* Undoes nti_call_start for a call none of whose slots was handed out.
 * Returns false when a concurrent close completed the call first: then it
 * completes normally (the waiter is woken or the callback runs). */
bool nti_call_abort(nti_call *c);

/* Fills slot i unless it is filled already (first writer wins).  data is
 * copied.  Completing the last slot wakes the waiter or dispatches the
 * callback. */
void nti_call_fill(nti_call *c, size_t i, int status, int code,
                   const void *data, size_t len);

/* Synchronous side: every call started with w counts in w->remaining
 * until it completes; nti_rpctab_wait() returns when none is left. */
void nti_waiter_init(nti_waiter *w);
void nti_waiter_fini(nti_waiter *w);
void nti_rpctab_wait(nti_rpctab *tab, nti_waiter *w);
/* For waits on work outside the call table (publisher calls). */
void nti_waiter_add(nti_rpctab *tab, nti_waiter *w);
void nti_waiter_done(nti_rpctab *tab, nti_waiter *w);
/* After completion: the results (ownership passes to the caller) and the
 * call's status (NT_OK, or NT_ECLOSED when cut short by close). */
nt_results *nti_call_take(nti_call *c, int *status);

/* Fill every open slot targeting peer with NT_EPEERLOST. */
void nti_rpctab_peer_lost(nti_rpctab *tab, uint64_t peer);
/* Fill every open slot with NT_ECLOSED and mark the calls closed. */
void nti_rpctab_close(nti_rpctab *tab);
size_t nti_rpctab_pending(nti_rpctab *tab);

/* Latency of calls made through the API (start to last slot), as a
 * cumulative histogram in seconds: bounds[i] for i < NTI_LAT_BUCKETS, then
 * +Inf. */
#define NTI_LAT_BUCKETS 16
extern const double nti_lat_bounds[NTI_LAT_BUCKETS];
typedef struct {
    uint64_t count[NTI_LAT_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t n;
    double sum;
} nti_lat_hist;
void nti_rpctab_latency(nti_rpctab *tab, nti_lat_hist *out);
/* Server-side helper calls are not counted. */
void nti_call_unmeasured(nti_call *c);
/* The callback is the node's own short, non-blocking code (it answers a
 * peer): run it on the thread that completes the call instead of handing
 * it to a worker.  Before nti_call_start. */
void nti_call_inline_cb(nti_call *c);
bool nti_call_is_complete(nti_call *c);

#endif
