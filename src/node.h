/* SPDX-License-Identifier: MIT */
/*
 * The node: what nt_node_open() builds and every API call works on.
 * Internal to the library.
 */
#ifndef NTI_NODE_H
#define NTI_NODE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "bufcache.h"
#include "index.h"
#include "gossip.h"
#include "log.h"
#include "msg.h"
#include "notifier/notifier.h"
#include "platform/platform.h"
#include "pool.h"
#include "reply.h"
#include "rng.h"
#include "rpc.h"
#include "timer.h"
#include "transport.h"

#define NTI_ID_HEX 32
#define NTI_NOTIFY_STRIPES 16 /* see nt_node.notify_order */
#define NTI_NOTIFY_SENDERS 16 /* senders remembered per stripe */
#define NTI_NOTIFY_DONE 8     /* NOTIFY frames remembered per sender */
#define NTI_NOTIFY_WAIT_MS 100 /* waiting for a frame's predecessor */

/* Counters; relaxed atomics, read for stats. */
/* What a receiver remembers of a sender's NOTIFY frames (srv_notify):
 * the seqs of the last ones queued, and which of them it refused, even in
 * part. */
typedef struct {
    uint8_t id[NTI_ID_LEN];
    uint64_t boot;
    uint64_t used; /* 0: a free slot; else the stripe's tick at last use */
    uint64_t done[NTI_NOTIFY_DONE];
    uint32_t refused; /* bit i: done[i] */
    unsigned pos;     /* next slot of done */
} nti_nsender;

typedef struct {
    nti_mtx mtx; /* held while a frame of one of its senders is queued */
    nti_cv cv;   /* a frame was done */
    uint64_t tick;
    nti_nsender s[NTI_NOTIFY_SENDERS];
} nti_nstripe;

typedef struct {
    _Atomic uint64_t published;      /* nt_publish calls accepted */
    _Atomic uint64_t delivered;      /* notification handler calls */
    _Atomic uint64_t rpc_calls;      /* RPCs started here */
    _Atomic uint64_t rpc_served;     /* RPC handler calls here */
    _Atomic uint64_t rejected;       /* NT_EAGAIN: queue full */
    _Atomic uint64_t dropped_closed; /* queued work dropped at close */
    _Atomic uint64_t dropped_unreg;  /* target unregistered in flight */
    _Atomic uint64_t dropped_nomem;  /* acked, then out of memory */
    _Atomic uint64_t notify_pred_missing; /* a NOTIFY's predecessor never
                                             came (srv_notify) */
} nti_counters;

/* A remote member as this node knows it.  Its registrations are owned by
 * owner (owner.peer points back here).  Members live until the node
 * closes, so registrations held by in-flight work never outlive theirs. */
typedef struct nti_member {
    nti_owner owner;
    nti_hnode hn;
    struct nti_member *next;
    uint8_t id[GSP_ID_LEN];
    char id_hex[GSP_ID_HEX_LEN + 1];
    nti_mtx mtx;      /* guards the fields below */
    char addr[GSP_ADDR_MAX + 1];
    uint64_t incarnation;
    uint64_t gen;     /* unique per life, for failing its pending calls */
    bool alive;
    nti_peer *peer;   /* held while alive */
} nti_member;

struct nt_node {
    /* Configuration, copied at open. */
    char *listen, *advertise;
    char **smap;
    unsigned char key[32];
    unsigned char extra_keys[8][32]; /* from a key file: accepted too */
    size_t nextra_keys;
    size_t max_payload;
    unsigned workers, queue_depth, max_threads, max_regs, max_inflight;
    unsigned gossip_interval_ms, gossip_fanout, probe_interval_ms;
    unsigned publish_timeout_ms, max_conns, max_peer_inflight;
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
    nti_bufcache slabs; /* for nti_notes */
    /* A sender's NOTIFY frames are handed to the workers one at a time,
     * in order (cluster.c, srv_notify): per stripe of senders. */
    nti_nstripe notify_order[NTI_NOTIFY_STRIPES];
    nti_timer *timer;
    nti_rpctab *rpc;
    nti_replies replies;
    nti_rng rng;
    nti_counters ctr;
    nt_node *next_dead; /* graveyard link, after close */

    /* Cluster (cluster.c). */
    uint8_t id_bin[GSP_ID_LEN];
    uint64_t boot;            /* incarnation: wall-clock ms at open */
    gsp_keyring *keyring;
    nti_tp *tp;
    nti_mtx gossip_mtx;       /* guards gossip, members, member_gen,
                                 gossip_stop; cluster_cv waits on it */
    nti_cv cluster_cv;        /* membership or digest may have changed */
    gsp *gossip;              /* NULL for a publisher */
    nti_htab members;
    nti_member *member_list;
    uint64_t member_gen;
    uint64_t lost[64];        /* gens lost during one gossip call */
    size_t nlost;
    bool gossip_stop;
    unsigned gossip_busy;     /* gossip_timer calls past the stop check */
    nti_timer_ent gossip_tmr;
    _Atomic unsigned gossip_sends; /* gossip frames in flight */
    uint8_t last_digest[GSP_DIGEST_LEN]; /* under gossip_mtx */
    uint64_t digest_changed_ms;
    nti_peer **servers;       /* publisher: one peer per smap entry */
    size_t nservers;

    /* Batched calls (calls.c; docs/PROTOCOL.md, "Batched calls"). */
    nti_mtx later_mtx;        /* guards later, later_swept_ms */
    nti_htab later;           /* our call items sent and unanswered */
    uint64_t later_swept_ms;
    bool later_closed;        /* close began: no item waits 'later' */
    _Atomic uint64_t next_ref;
};

/* Every public entry point brackets its work with these. */
bool nti_node_enter(nt_node *n);
void nti_node_leave(nt_node *n);

/* Introspection (info.c). */
int nti_info_subs(nt_node *n, int json, char **out);
int nti_info_members(nt_node *n, int json, char **out);
int nti_info_stats(nt_node *n, int json, char **out);

/* Cluster (cluster.c). */
int nti_cluster_open(nt_node *n);
/* Leave gracefully and stop gossip (before draining). */
void nti_cluster_leave(nt_node *n, uint64_t deadline_ms);
/* Close the transport and free the cluster state (after the pool). */
void nti_cluster_close(nt_node *n);
void nti_cluster_free_members(nt_node *n);
int nti_cluster_reload(nt_node *n, char **smap);
void nti_cluster_stats(nt_node *n,
                       void (*row)(void *, const char *, uint64_t),
                       void *arg);
void nti_cluster_digest(nt_node *n, char *hex);
double nti_cluster_since_change(nt_node *n);
bool nti_cluster_gossip(nt_node *n, gsp_stats *st, size_t states[4],
                        int *conv);
int nti_info_metrics(nt_node *n, char **out);
void nti_cluster_reg_added(nt_node *n, const nti_reg_spec *s);
void nti_cluster_reg_removed(nt_node *n, uint64_t id);
bool nti_is_publisher(const nt_node *n);
/* Remote delivery: queue a notification to every remote target of t
 * (reserve first, then commit) and start the remote slots of a call
 * (nti_remote_call: calls.c). */
int nti_remote_reserve(nt_node *n, nti_targets *t);
void nti_remote_unreserve(nt_node *n, nti_targets *t);
void nti_remote_notify(nt_node *n, nti_targets *t, nti_msg *m);
/* nti_remote_reserve + nti_remote_notify in one step, when every target
 * of t is owned by one remote member: NT_OK or NT_EAGAIN (queue full). */
int nti_remote_notify_single(nt_node *n, nti_targets *t, const nti_msg *m);
void nti_remote_call(nt_node *n, nti_targets *t, nti_call *c, nti_msg *m,
                     bool nested);
/* One item with status, for a call that could not be made (NULL without
 * memory). */
nt_results *nti_results_single(int status);
/* Publisher side (pubside.c): forward to a server. */
int nti_pub_publish(nt_node *n, const char *object, uint64_t id,
                    const char *cmd, const void *data, size_t len);
int nti_pub_call(nt_node *n, const char *object, uint64_t id,
                 const char *cmd, const void *data, size_t len,
                 int timeout_ms, nti_waiter *w, nt_response_fn cb, void *arg,
                 nt_results **out);
int nti_pub_info(nt_node *n, const char *what, int json, int timeout_ms,
                 char **out);

/* Delivery helpers used by the server side (deliver.c). */
int nti_deliver_call_local(nt_node *n, nti_call *c, nti_reg **regs,
                           const size_t *slots, size_t k, nti_msg *m,
                           bool urgent);
uint64_t nti_order_key(const char *from, const char *object, uint64_t id);
/* Route and deliver as if `from` had published or called (servers acting
 * for publishers). */
int nti_publish_from(nt_node *n, const char *object, uint64_t id,
                     const char *cmd, const void *data, size_t len,
                     const char *from);
int nti_rpc_async_from(nt_node *n, const char *object, uint64_t id,
                       const char *cmd, const void *data, size_t len,
                       int timeout_ms, nt_response_fn fn, void *arg,
                       const char *from);

#define NTI_ORDER_FROM_MAX 64
/* The notifications of one received NOTIFY frame, queued to the workers
 * together (one pool lock and one wake per worker for up to
 * NTI_NOTES_MAX items) and in order: each item all or nothing, and the
 * first refused item refuses the rest of the frame.  Stack-allocated by
 * the receiver: nti_notes_init, nti_notes_add per item (in frame order),
 * nti_notes_end; then accepted is the number of leading items taken. */
#define NTI_NOTES_MAX 1024
/* Memory shared by the notifications of one frame: one allocation instead
 * of one per item, freed by the last task that used it. */
typedef struct {
    _Atomic size_t refs;
    nti_bufcache *cache; /* where it goes back */
    size_t bytes;        /* allocated, this header included */
    size_t cap, used;    /* of mem */
    _Alignas(16) unsigned char mem[];
} nti_slab;
typedef struct {
    nt_node *n;
    nti_slab *slab;   /* current slab (the notes hold a reference) */
    size_t slab_hint; /* bytes a slab for the rest of the frame needs */
    char last_from[NTI_ORDER_FROM_MAX + 1];
    char last_object[256];
    uint64_t last_hash; /* of last_from and last_object */
    size_t ng;       /* groups recorded, not yet queued */
    size_t accepted; /* items queued (or with no local target) */
    uint64_t unreg;  /* targets gone, of accepted items */
    int status;      /* NT_OK, or why the rest is refused */
    bool reserved;   /* room was reserved in the pool (nti_pool_reserve) */
    nti_pool_group g[NTI_NOTES_MAX];
    uint32_t unreg_of[NTI_NOTES_MAX];
} nti_notes;
/* count items in bytes of frame: sizes the slab. */
void nti_notes_init(nti_notes *b, nt_node *n, size_t count, size_t bytes);
/* One item for the k local registrations regs (held references, taken in
 * every case; k may be 0) of which unreg more were gone.  Returns the
 * frame's status so far: after an error nothing more is taken. */
int nti_notes_add(nti_notes *b, nti_reg **regs, size_t k, size_t unreg,
                  const char *object, uint64_t id, const char *cmd,
                  const char *from, const void *data, size_t len);
int nti_notes_end(nti_notes *b);

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
