/* SPDX-License-Identifier: MIT */
/*
 * Transport: the node's nng sockets (see docs/PROTOCOL.md).
 *
 * A server side (one rep0 socket, a pool of contexts) receives requests and
 * hands them to the node through nti_tp_ops; the node answers each exactly
 * once with nti_sreq_reply().  A client side keeps one nti_peer per remote
 * address (a req0 socket with a dialer and a pool of contexts) and sends
 * requests (nti_creq) and batched notifications to it.  Frames are sealed
 * with the node's keyring; replies are bound to their request.
 *
 * Thread safety: every function may be called from any thread.  Callbacks
 * (nti_tp_ops, nti_creq.done) run on nng's threads or the transport's
 * maintenance thread, with no transport lock held; they must not block.
 */
#ifndef NTI_TRANSPORT_H
#define NTI_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip.h"
#include "log.h"
#include "msg.h"
#include "wire.h"

typedef struct nti_tp nti_tp;
typedef struct nti_peer nti_peer;
typedef struct nti_sreq nti_sreq;
typedef struct nti_creq nti_creq;

/* Drop reasons counted by the transport. */
typedef enum {
    NTI_DROP_TOO_BIG,
    NTI_DROP_UNKNOWN_KEY,
    NTI_DROP_AUTH,
    NTI_DROP_MALFORMED,
    NTI_DROP_VERSION,
    NTI_DROP_REPLAY,
    NTI_DROP_WRONG_DEST,
    NTI_DROP_STALE_BOOT,
    NTI_DROP_CONN_LIMIT, /* a connection refused: too many */
    NTI_DROP_COUNT
} nti_drop;
const char *nti_drop_name(nti_drop d);

/* What crosses the wire, for per-kind counters. */
typedef enum {
    NTI_K_GOSSIP,
    NTI_K_NOTIFY,
    NTI_K_RPC,
    NTI_K_PUBLISH,
    NTI_K_INFO,
    NTI_K_REPLY,
    NTI_K_COUNT
} nti_kind_wire;
const char *nti_kind_wire_name(nti_kind_wire k);

typedef struct {
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
    uint64_t kframes[2][NTI_K_COUNT]; /* [0] in, [1] out */
    uint64_t kbytes[2][NTI_K_COUNT];
    uint64_t notify_in;          /* notifications received from peers */
    uint64_t drops[NTI_DROP_COUNT];
    uint64_t rejected_by_peer;   /* 'E' replies: a peer could not open */
    uint64_t notify_sent;        /* notifications acknowledged by peers */
    uint64_t notify_unacked;     /* in flight when a connection failed */
    uint64_t notify_retried;     /* refused by a full peer, queued again */
    uint64_t notify_presealed;   /* batches sent as sealed ahead */
    uint64_t notify_held;        /* partial batches held (peer.c) */
    uint64_t calls_held;         /* call frames held (peer.c) */
    uint64_t connects, disconnects;
    uint64_t peers;              /* open peer connections */
    uint64_t notify_queued;      /* waiting in peer queues */
    uint64_t requests_held;      /* server: calls waiting for a handler */
    uint64_t call_frames_sent;   /* CALLS frames */
    uint64_t calls_sent;         /* call items in them */
    uint64_t results_late_sent;  /* RESULTS_TO items (answers after 2 ms) */
    uint64_t calls_deferred;     /* server: items acked as answered later */
    uint64_t conns;              /* server: connections now */
} nti_tp_stats;

/* What the node does with what arrives. */
typedef struct {
    /* A sealed gossip frame.  Returns 0, or a negative GSP_E* drop reason
     * (the transport then tells the sender when it is an auth failure). */
    int (*gossip_in)(void *arg, const uint8_t *frame, size_t len);
    /* An authenticated data request (header checked: replay, dest).  pt is
     * the whole plaintext, valid only during the call.  The node must
     * answer with nti_sreq_reply() exactly once, now or later. */
    void (*request_in)(void *arg, nti_sreq *sr, const nti_hdr *h,
                       const uint8_t *pt, size_t len);
    /* A peer connection came up or went down (logging, peer loss). */
    void (*peer_event)(void *arg, nti_peer *p, bool up);
    /* Optional: whether completions of our calls are queued that have not
     * run yet (they tend to make the next calls; peer.c, "Holding"). */
    bool (*calls_coming)(void *arg);
} nti_tp_ops;

typedef struct {
    const char *listen;          /* NULL: client only (publisher) */
    gsp_keyring *keyring;        /* borrowed */
    const uint8_t *self_id;      /* NTI_ID_LEN */
    uint64_t boot;               /* our incarnation */
    size_t max_frame;            /* sealed bytes */
    unsigned queue_depth;        /* per-peer notification queue */
    unsigned max_inflight;       /* server: calls held at once */
    unsigned max_conns;          /* server: connections at once */
    unsigned max_peer_inflight;  /* client: requests in flight per peer */
    const nti_logger *log;
    nti_tp_ops ops;
    void *ops_arg;
} nti_tp_config;

/* Binds the listener (when listen is set) and starts.  Errors: NT_EADDR
 * (bad or busy address), NT_ENOMEM, NT_EIO. */
int nti_tp_alloc(nti_tp **out, const nti_tp_config *cfg);
/* Lets requests through to cfg.ops (until then, from the moment the
 * listener binds, they are refused with NT_ECLOSED): call once the node
 * can serve them. */
void nti_tp_start(nti_tp *tp);
/* The bound "host:port" (listen side), or NULL. */
const char *nti_tp_address(const nti_tp *tp);
/* Stops receiving, fails every request in flight with NT_ECLOSED, closes
 * every socket, joins the maintenance thread, frees. */
void nti_tp_free(nti_tp *tp);

/* Key rotation: callers hold off every other use of the keyring. */
void nti_tp_keyring_wrlock(nti_tp *tp);
void nti_tp_keyring_unlock(nti_tp *tp);

/* ---- peers ----------------------------------------------------------- */

/* The peer for addr, created (and dialing) if needed; held. */
int nti_tp_peer(nti_tp *tp, const char *addr, nti_peer **out);
void nti_peer_hold(nti_peer *p);
void nti_peer_rele(nti_peer *p);
const char *nti_peer_addr(const nti_peer *p);
bool nti_peer_connected(nti_peer *p);
/* Waits until the peer is connected or the deadline (monotonic ms). */
bool nti_peer_wait_connected(nti_peer *p, uint64_t deadline_ms);
/* Closes the peer's socket (from the maintenance thread) once no member
 * needs it: requests in flight fail with NT_EPEERLOST. */
void nti_peer_retire(nti_peer *p);

/* ---- client requests -------------------------------------------------- */

struct nti_creq {
    nti_creq *next;
    /* Completion: rv is NT_OK with the opened reply plaintext (data
     * requests) or an error: NT_EPEERLOST (connection lost after the
     * request left), NT_EUNREACHABLE (it never left: peer retired or
     * closing), NT_EAUTH (the peer could not open our frame), NT_EPROTO
     * (bad reply), NT_ECLOSED.  Runs exactly once, on an nng or transport
     * thread, with no lock held.  Owns nothing of r; r stays valid until
     * done returns and belongs to its submitter. */
    void (*done)(nti_creq *r, int rv, const nti_hdr *h, const uint8_t *pt,
                 size_t len);
    /* Set by the submitter. */
    uint8_t channel;   /* NTI_CH_GOSSIP or NTI_CH_DATA */
    uint8_t *frame;    /* data: plaintext incl. header; gossip: sealed */
    size_t len;
    /* Transport use. */
    uint64_t seq;
    bool sent;
};

/* Builds a plaintext header for a data request to dest (NULL = any) into
 * buf (NTI_HDR_LEN bytes); fills seq.  Returns the seq. */
uint64_t nti_tp_hdr(nti_tp *tp, uint8_t type, const uint8_t *dest,
                    uint64_t dest_boot, uint64_t ref, uint8_t *buf);
/* The same with a seq taken before from nti_tp_next_seq. */
uint64_t nti_tp_hdr_seq(nti_tp *tp, uint8_t type, const uint8_t *dest,
                        uint64_t dest_boot, uint64_t ref, uint64_t seq,
                        uint8_t *buf);
uint64_t nti_tp_next_seq(nti_tp *tp);
/* The completions calls_coming reported have run: call frames held for
 * them leave now. */
void nti_tp_calls_idle(nti_tp *tp);
/* Queues r to p.  Takes r->frame (freed by the transport) on NT_OK only.
 * Errors: NT_ECLOSED, NT_EUNREACHABLE (peer retired), NT_EAGAIN (queue
 * full), NT_ENOMEM, NT_EMSGSIZE. */
int nti_peer_submit(nti_peer *p, nti_creq *r);

/* ---- notification batches -------------------------------------------- */

/* Reserves room for n notifications on p's queue (all-or-nothing
 * publishing): NT_OK or NT_EAGAIN / NT_EUNREACHABLE.  Every reservation is
 * either committed by nti_peer_notify or returned by nti_peer_unreserve. */
int nti_peer_reserve(nti_peer *p, unsigned n);
void nti_peer_unreserve(nti_peer *p, unsigned n);
/* Queues one notification for the registrations regs[0..nregs) of the
 * member (dest, dest_boot) at p, using (and ending) a reservation.  m is
 * encoded at once and not kept: it may be a caller's stack view.  NT_OK;
 * NT_ENOMEM or NT_EUNREACHABLE (retired since the reservation), counted
 * as unacked. */
int nti_peer_notify(nti_peer *p, const nti_msg *m, const uint8_t *dest,
                    uint64_t dest_boot, const uint64_t *regs, size_t nregs);
/* The same without a reservation, for a publish whose only targets are
 * at p: admitted against the queue depth here.  NT_OK, NT_EAGAIN (queue
 * full, nothing queued), NT_ENOMEM or NT_EUNREACHABLE (counted as
 * unacked). */
int nti_peer_notify_now(nti_peer *p, const nti_msg *m, const uint8_t *dest,
                        uint64_t dest_boot, const uint64_t *regs,
                        size_t nregs);

/* ---- batched calls and their late results ----------------------------- */

/* One item of a CALLS or RESULTS_TO frame (docs/PROTOCOL.md, "Batched
 * calls"): the item's bytes are encoded by its submitter. */
typedef struct nti_xitem nti_xitem;
struct nti_xitem {
    nti_xitem *next;            /* transport use */
    uint8_t dest[NTI_ID_LEN];   /* the member it is for */
    uint64_t dest_boot;
    uint8_t *body;  /* malloc'd item bytes; the transport frees it */
    size_t len;
    unsigned tries; /* transport use */
    /* CALLS items only: the item's fate, exactly once, on an nng or
     * transport thread with no lock held: state NTI_CA_DONE (r reads its
     * RESULTS body), NTI_CA_LATER, NTI_CA_REFUSED (status), or -1: lost
     * with status (NT_EPEERLOST: the frame left and its answer did not
     * come back; NT_EUNREACHABLE: it never left; NT_EPROTO, NT_EAUTH). The
     * item then belongs to its submitter again.  RESULTS_TO items have no
     * done: the transport frees them once acknowledged or given up. */
    void (*done)(nti_xitem *x, int state, int status, gsp_rd *r);
};

/* The address callees send RESULTS_TO frames to (our advertised one);
 * CALLS frames carry it.  Set once before the first nti_peer_call. */
void nti_tp_set_reply_to(nti_tp *tp, const char *addr);
/* Queues a call item to p.  NT_OK (done will run), or NT_EUNREACHABLE
 * (peer retired), NT_EAGAIN (8192 call items waiting), NT_EMSGSIZE,
 * NT_EINVAL (no reply_to address); on an error nothing was taken. */
int nti_peer_call(nti_peer *p, nti_xitem *x);
/* A call item acknowledged NTI_CA_LATER has finished (its results came,
 * or it failed): it no longer counts against max_peer_inflight.  kick:
 * start queued calls now (false from an nng pipe callback, where no
 * socket call may be made: the maintenance thread starts them). */
void nti_peer_call_release(nti_peer *p, bool kick);
/* Queues a results item to p (taken in every case: freed on error).
 * Sent again after a lost connection, up to 3 times. */
void nti_peer_results(nti_peer *p, nti_xitem *x);

/* ---- server side -------------------------------------------------------- */

/* Answers a request with a plaintext reply (header included, built with
 * nti_tp_hdr(..., ref = the request's seq)).  Takes pt (malloc'd) in every
 * case.  When pt is NULL (out of memory) the requester gets an error. */
void nti_sreq_reply(nti_sreq *sr, uint8_t *pt, size_t len);
/* The request's sender address for logs ("ip:port"), or "?". */
const char *nti_sreq_remote(const nti_sreq *sr);
/* Counts calls held for later answers; false when max_inflight is hit. */
bool nti_sreq_hold(nti_sreq *sr);
/* Stats: one call item was acked as answered later (calls_deferred). */
void nti_tp_count_deferred(nti_tp *tp);
/* The same count for a batched call item (no request of its own). */
bool nti_tp_hold(nti_tp *tp);
void nti_tp_unhold(nti_tp *tp);

void nti_tp_stats_get(nti_tp *tp, nti_tp_stats *st);
/* The node reports notifications it accepted from peers. */
void nti_tp_count_notify_in(nti_tp *tp, uint64_t n);

#endif
