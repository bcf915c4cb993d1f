/* SPDX-License-Identifier: MIT */
/*
 * One timer thread per node: runs short internal callbacks (RPC deadlines,
 * gossip ticks, reconnect backoff) at monotonic times.  Callbacks run on
 * the timer thread without the timer's lock; they must not block.
 */
#ifndef NTI_TIMER_H
#define NTI_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nti_timer nti_timer;

/* Embedded in its user.  Initialise with nti_timer_ent_init. */
typedef struct nti_timer_ent {
    uint64_t when;
    void (*fn)(void *arg);
    void *arg;
    size_t pos; /* heap position + 1; 0 = not scheduled */
} nti_timer_ent;

void nti_timer_ent_init(nti_timer_ent *e, void (*fn)(void *), void *arg);

int nti_timer_alloc(nti_timer **out, const char *name);
/* Stops the thread (waiting for a running callback) and frees.  Entries
 * still scheduled are forgotten without being called. */
void nti_timer_free(nti_timer *t);

/* Schedules e at when (ms, monotonic), moving it if already scheduled.
 * NT_OK or NT_ENOMEM. */
int nti_timer_schedule(nti_timer *t, nti_timer_ent *e, uint64_t when);
/* Like nti_timer_schedule for entries that may run up to 1 ms late and
 * are scheduled often (the callee's hold timer): they seldom wake the
 * thread (see the design notes in timer.c). */
int nti_timer_schedule_coarse(nti_timer *t, nti_timer_ent *e, uint64_t when);
/* Unschedules e.  True when it was still pending (it will not run); false
 * when it was not scheduled or has already been taken to run. */
bool nti_timer_cancel(nti_timer *t, nti_timer_ent *e);

#endif
