/* SPDX-License-Identifier: MIT */
/*
 * The transport's internals, shared by its two files: transport.c (server
 * side, sealing, replay windows, lifecycle, counters) and peer.c (client
 * side: peers, their queues and batches, the maintenance thread).  Private
 * to them; the node uses transport.h.
 */
#ifndef NTI_TRANSPORT_IMPL_H
#define NTI_TRANSPORT_IMPL_H

#include <nng/nng.h>

#include "bufcache.h"
#include "htab.h"
#include "platform/platform.h"
#include "transport.h"

#define NRECV 16          /* server contexts waiting in receive */
#define MAX_CTX_CAP 4096  /* client contexts per peer, at most */
#define GOSSIP_CTX 8      /* contexts kept for gossip beyond the data limit */
/* Notification batches in flight per peer (one after a refusal, until
 * batches are taken whole again).  Order across nodes (notifications of
 * one (sender, object, id) in publish order, tests/cluster/test_cluster.c
 * test_batched_order_*) rests on the receiver queueing a sender's
 * batches one after another: each NOTIFY names the batch sent before it
 * and still unacknowledged (its header's ref), the receiver waits for
 * that one, and refuses whole a batch whose predecessor it refused even
 * in part, so that the refused rest, put back in chunk order, leaves
 * first (peer.c "Two batches in flight", cluster.c srv_notify). */
#define NBATCH 2
/* Call frames (and result frames) in flight per peer, each.  Two, not
 * four: calls that wait for a free frame leave together, and on the
 * bench machine 2 beat 4 at every concurrency measured (64 in flight:
 * 18 calls per frame instead of 10, ~15 % less CPU per call; 2-8 in
 * flight: the same or better) while one slow frame still leaves one free
 * (docs/PERFORMANCE.md, "RPC throughput"). */
#define NXBATCH 2
#define BATCH_ITEMS 1024  /* notifications (calls, results) per batch */
#define BATCH_BYTES (256u * 1024u)
#define CHUNK_MIN_CAP (16u * 1024u) /* a new chunk's buffer, at least */
#define SPARE_CAP (BATCH_BYTES + 64u * 1024u) /* larger ones are freed */
#define MAX_QUEUED_REQS 8192 /* requests waiting for a context, per peer */
#define RETRY_MS 20       /* after a peer refused notifications */
#define NCAP_MIN 32       /* batch items after a refusal, at least */
#define MAINT_MS 50       /* maintenance period */
#define LINGER_MS 200     /* rejected link: closed this long after */
#define LINGER_MAX 64     /* links lingering at once; more close at once */
#define IDLE_RETIRE_MS 60000
#define RETIRE_GRACE_MS 2000 /* retired socket closed after this */
#define FLUSH_MS 500         /* shutdown: wait for replies to leave */
#define REPLAY_WINDOW 1024
/* A pre-sealed batch (peer.c, "Notification chunks") is sealed again
 * when it waited this long, or behind this many other frames: a key may
 * have been retired, or the receiver's replay window moved past it. */
#define PRESEAL_MAX_MS 500
/* Holding partial batches (peer.c, "Holding"): a peer receiving at least
 * HOLD_RATE notifications per ms gets a batch of fewer than HOLD_ITEMS
 * only after it waited HOLD_MS. */
#define HOLD_ITEMS BATCH_ITEMS
#define HOLD_RATE 100
#define HOLD_MS 1
#define HOLD_IDLE_MS 5 /* no batch for this long: the stream paused */
#define CALL_HOLD_ITEMS 32 /* a call frame with fewer may be held */
#define PRESEAL_MAX_SEQS (REPLAY_WINDOW / 2)
#define REPLAY_SENDERS 4096

enum { C_IDLE, C_SEND, C_RECV, C_DEAD };
enum { S_RECV, S_HELD, S_SEND, S_IDLE, S_DEAD };

/* Queued notifications, encoded (design notes in peer.c, "Notification
 * chunks").  One chunk is one NOTIFY batch: one destination (id and boot),
 * at most BATCH_ITEMS items and batch_bytes() bytes.  buf starts with
 * CHUNK_HEAD bytes of room for the frame header and item count; off[i] is
 * where item i starts, off[n] == len. */
#define CHUNK_HEAD (NTI_HDR_LEN + 4)
typedef struct nchunk {
    struct nchunk *next;
    uint8_t dest[NTI_ID_LEN];
    uint64_t dest_boot;
    uint32_t n;     /* items encoded */
    uint32_t first; /* items already acked (a partial ack) */
    size_t cap;     /* bytes allocated for buf */
    uint8_t *buf;
    uint64_t cno;   /* order of creation in its peer's queue */
    bool back;      /* came back from the wire: nothing more joins it */
    bool sealing;   /* a publisher seals it ahead (no one else touches it) */
    nng_msg *sealed; /* sealed ahead: items [sealed_first, +sealed_nb) */
    uint32_t sealed_first, sealed_nb;
    uint64_t sealed_seq, sealed_prev, sealed_at;
    uint32_t off[BATCH_ITEMS + 1];
} nchunk;

/* A queue of nti_xitem that leave in batches (CALLS, RESULTS_TO). */
typedef struct {
    nti_xitem *h, *t;
    size_t n;
    unsigned batches; /* frames in flight */
    size_t inflight;  /* items in them */
    uint64_t retry_at;
    uint64_t hold_until_us; /* calls: held until then (or 0) */
} xqueue;

enum { XQ_CALLS = 0, XQ_RESULTS = 1 };
#define XQ_TRIES 3 /* sends of one results item, at most */

typedef struct cctx {
    nti_peer *p;
    nng_ctx ctx;
    nng_aio *aio;
    nng_aio *saio;   /* no callback, zero timeout: the inline send */
    int state;
    nti_creq *req;   /* a single request, or */
    nchunk *batch;   /* a notification batch, or */
    nti_xitem *xbatch; /* a CALLS (xkind 0) or RESULTS_TO (1) batch */
    int xkind;
    size_t nbatch;
    uint64_t seq;    /* of what is in flight, for reply binding */
    uint64_t gen;    /* peer generation when the receive was posted */
    struct cctx *next_free, *next_all;
} cctx;

struct nti_peer {
    nti_hnode hn;
    nti_tp *tp;
    _Atomic unsigned refs;
    char addr[GSP_ADDR_MAX + 1];
    nti_mtx mtx; /* guards everything below */
    nti_cv cv;   /* connected changed */
    nng_socket sock;
    bool connected, retired, closed;
    bool ever_connected;
    uint64_t created_at;
    bool abandoned; /* its socket never finished closing: keep memory */
    bool drained;   /* retired and its in-flight work failed */
    uint64_t retired_at;
    unsigned sending; /* threads between a check and an nng call */
    unsigned sealing; /* chunks being sealed ahead, outside the lock */
    uint64_t gen;
    bool reset_pending;
    uint64_t last_used;
    cctx *all, *free;
    unsigned nctx;
    nti_creq *qh, *qt;   /* calls, info: FIFO */
    size_t qn;
    nti_creq *gh, *gt;   /* gossip: served first, never starved */
    size_t gn;
    nchunk *nh, *nt;     /* notification chunks: FIFO */
    nchunk *spare;       /* one emptied chunk kept for reuse */
    size_t nn, reserved; /* items queued, items reserved */
    size_t inflight_items; /* in batches on the wire: count against depth */
    size_t ncap;           /* items per batch after a refusal (0: no cap) */
    uint64_t next_cno;      /* for nchunk.cno */
    uint64_t tail_seq;      /* the last batch sent, */
    bool tail_open;         /* while its ack is not processed */
    uint64_t last_batch_us; /* when the last batch left */
    uint32_t rate;          /* notifications per ms, smoothed */
    uint64_t hold_until_us; /* holding a partial batch until then (or 0) */
    unsigned batches;
    uint64_t retry_at;
    xqueue xq[2]; /* [XQ_CALLS] call items, [XQ_RESULTS] late results */
    nti_peer *next; /* tp->peers list */
};

struct nti_sreq {
    nti_tp *tp;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    bool held;
    bool close_link;  /* garbage or auth failure: close after replying */
    nng_pipe pipe;
    uint8_t sender[NTI_ID_LEN];
    uint64_t seq;
    char remote[64];
    nti_sreq *next_free, *next_all;
};

struct nti_tp {
    nti_tp_config cfg;
    uint8_t self_id[NTI_ID_LEN];
    char address[GSP_ADDR_MAX + 32];
    nti_logger log;
    nti_rwlock kr_lock;

    nti_bufcache ptcache; /* plaintexts of received frames */

    /* server */
    nti_mtx srv_mtx; /* guards srv_all, srv_free, srv_closing, ops_* */
    nng_socket srv;
    bool has_srv, srv_closing;
    bool ops_off;      /* not yet started (nti_tp_start), or nti_tp_free
                          began: requests are refused, not handed on */
    unsigned ops_busy; /* callbacks inside cfg.ops (requests, pipe events) */
    nti_sreq *srv_all, *srv_free;
    unsigned srv_sending; /* replies handed to nng, not yet sent */
    /* Links to close once their reject has had LINGER_MS to reach the
     * sender (a close right behind the reject could overtake it). */
    struct {
        nng_pipe pipe;
        uint64_t due;
    } lingering[LINGER_MAX];
    size_t nlingering; /* under srv_mtx */
    nti_cv srv_cv;        /* srv_sending reached zero */
    _Atomic unsigned held;
    _Atomic unsigned conns;

    /* peers and the maintenance thread */
    nti_mtx peers_mtx; /* guards peers, peer_tab, stop, hold_due */
    nti_cv maint_cv;
    uint64_t hold_due; /* ms: the maintenance thread wakes a held batch */
    _Atomic bool calls_held; /* some peer may hold a call frame */
    nti_peer *peers;
    nti_htab peer_tab;
    bool stop;
    nti_thr maint;

    /* replay windows */
    nti_mtx replay_mtx; /* guards replay, nreplay */
    nti_htab replay;
    size_t nreplay;

    nti_tp *next_abandoned;
    char reply_to[NTI_ADDR_MAX + 1]; /* CALLS: where results come back */
    _Atomic uint64_t seq;
    _Atomic uint64_t last_warn; /* rate limit for drop warnings */
    _Atomic uint64_t st_frames_in, st_bytes_in, st_frames_out, st_bytes_out;
    _Atomic uint64_t st_drops[NTI_DROP_COUNT];
    _Atomic uint64_t st_kframes[2][NTI_K_COUNT];
    _Atomic uint64_t st_kbytes[2][NTI_K_COUNT];
    _Atomic uint64_t st_notify_in;
    _Atomic uint64_t st_rejected, st_notify_sent, st_notify_unacked,
        st_notify_retried, st_connects, st_disconnects, st_presealed,
        st_held, st_calls_held;
    _Atomic uint64_t st_call_frames, st_calls, st_late, st_deferred;
};

/* ---- transport.c ------------------------------------------------------- */

/* Closes a socket on a short-lived thread, waiting for it at most
 * CLOSE_WAIT_MS; false when it did not finish (see transport.c). */
bool nti_sock_close(nti_tp *tp, nng_socket s);
/* Counts one frame of a kind in a direction (0 in, 1 out). */
void nti_count_kind(nti_tp *tp, int dir, nti_kind_wire k, size_t bytes);
/* The kind of a data frame type, for those counters. */
nti_kind_wire nti_kind_of_type(uint8_t type);
/* Counts one dropped frame. */
void nti_count_drop(nti_tp *tp, nti_drop d);
/* An nng error as an NT_* code. */
int nti_nng_to_nt(int rv);
/* "tcp://host:port" for addr (brackets for IPv6 literals). */
int nti_make_url(const char *addr, char *url, size_t cap);
/* nng's receive limit for our sockets (twice our own frame limit). */
size_t nti_nng_cap(const nti_tp *tp);
/* An nng message holding ch + seal(pt).  NT_OK or an error. */
int nti_seal_msg(nti_tp *tp, uint8_t ch, const uint8_t *pt, size_t len,
                 nng_msg **out);
/* Brackets a call into cfg.ops (request_in, peer_event): false once
 * nti_tp_free began (or before nti_tp_start), and then nothing is called. */
bool nti_tp_ops_enter(nti_tp *tp);
void nti_tp_ops_leave(nti_tp *tp);
/* Opens a sealed frame into a malloc'd plaintext: 0 or a drop reason + 1. */
int nti_open_frame(nti_tp *tp, const uint8_t *frame, size_t len,
                   uint8_t **pt, size_t *ptlen);

/* ---- peer.c ------------------------------------------------------------ */

/* The maintenance thread (arg: the nti_tp). */
void nti_maint_main(void *arg);
/* Closes a peer's socket and frees its contexts.  Not from a callback. */
void nti_peer_close(nti_peer *p);

#endif
