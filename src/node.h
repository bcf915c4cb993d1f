/* SPDX-License-Identifier: MIT */
/*
 * The node: what nt_node_open() builds and every API call works on.
 * Internal to the library.
 */
#ifndef NTI_NODE_H
#define NTI_NODE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "index.h"
#include "log.h"
#include "notifier/notifier.h"
#include "platform/platform.h"
#include "pool.h"
#include "reply.h"
#include "rng.h"
#include "rpc.h"
#include "timer.h"

#define NTI_ID_HEX 32

/* Counters; relaxed atomics, read for stats. */
typedef struct {
    _Atomic uint64_t published;      /* nt_publish calls accepted */
    _Atomic uint64_t delivered;      /* notification handler calls */
    _Atomic uint64_t rpc_calls;      /* RPCs started here */
    _Atomic uint64_t rpc_served;     /* RPC handler calls here */
    _Atomic uint64_t rejected;       /* NT_EAGAIN: queue full */
    _Atomic uint64_t dropped_closed; /* queued work dropped at close */
    _Atomic uint64_t dropped_unreg;  /* target unregistered in flight */
} nti_counters;

struct nt_node {
    /* Configuration, copied at open. */
    char *listen, *advertise;
    char **smap;
    unsigned char key[32];
    size_t max_payload;
    unsigned workers, queue_depth, max_threads, max_regs, max_inflight;
    nti_logger log;

    /* Identity. */
    unsigned char pk[32], sk[64];
    char id[NTI_ID_HEX + 1];
    char *address;

    /* Close protocol: API calls count themselves in callers; close sets
     * closing, then waits for callers to reach zero before freeing. */
    _Atomic bool closing;
    _Atomic unsigned callers;
    nti_mtx close_mtx; /* guards nothing but the close_cv handshake */
    nti_cv close_cv;

    nti_index *index;
    nti_owner local;
    _Atomic uint64_t next_reg_id;
    nti_mtx reg_mtx; /* serialises local (un)registration; guards regs_cv */
    nti_cv regs_cv;  /* a removed registration's last handler returned */

    nti_pool *pool;
    nti_timer *timer;
    nti_rpctab *rpc;
    nti_replies replies;
    nti_rng rng;
    nti_counters ctr;
    nt_node *next_dead; /* graveyard link, after close */
};

/* Every public entry point brackets its work with these. */
bool nti_node_enter(nt_node *n);
void nti_node_leave(nt_node *n);

/* Introspection (info.c). */
int nti_info_subs(nt_node *n, int json, char **out);
int nti_info_members(nt_node *n, int json, char **out);
int nti_info_stats(nt_node *n, int json, char **out);

/* Checks a name (object, cmd): non-empty, at most 255 bytes. */
bool nti_name_ok(const char *s);

/* Delivery (deliver.c): after routing, hand targets to workers. */
int nti_deliver_notify(nt_node *n, const char *object, uint64_t id,
                       const char *cmd, const void *data, size_t len,
                       const char *from, nti_targets *t);
/* Called by workers when a removed registration's last handler call
 * returns. */
void nti_node_reg_idle(nt_node *n);

#endif
