/* SPDX-License-Identifier: MIT */
/*
 * Transport over nng (see transport.h and docs/PROTOCOL.md).
 *
 * Design notes
 * ------------
 * Server.  One rep0 socket.  NRECV contexts always wait in receive.  When
 * one receives a request it first puts another context into receive (from
 * the free list, or a new one), then handles the request; the context is
 * "held" until the node answers (nti_sreq_reply), sends the answer, and
 * returns to the free list.  So slow handlers never reduce the number of
 * receivers, and held contexts are bounded by max_inflight.
 *
 * Client.  One peer per remote address: a req0 socket, one dialer (nng
 * reconnects it with exponential backoff and full jitter), and up to
 * max_peer_inflight contexts.  A context runs one request at a time, strictly send
 * then receive: the receive is posted only from the send's completion, so
 * a receive is never cancelled while its send is pending (nng#1702).  The
 * work waiting for a context is a FIFO of requests (calls, gossip, info)
 * and a queue of notifications that leave in batches (at most NBATCH in
 * flight).
 *
 * Connection loss.  nng 1.5.2 re-sends a context's request after its pipe
 * closes, even with resend disabled.  The pipe-remove callback only bumps
 * the peer's generation and wakes the maintenance thread (no socket calls
 * from pipe callbacks: nng#1665), which cancels every receive that was
 * posted under an older generation: those calls fail with NT_EPEERLOST at
 * once.  If nng's re-send wins the race, the server's replay window drops
 * the duplicate and answers with a reject, which also yields NT_EPEERLOST,
 * so an RPC runs at most once.
 *
 * Teardown.  Sockets are closed only by the maintenance thread or by
 * nti_tp_free, never from an nng callback (nng#1543); whole sockets are
 * closed, never lone dialers or listeners (nng#1657/#1658); every aio that
 * fails hands its message back to us and we free it (nng#1713).
 *
 * Lock order: peers_mtx -> peer.mtx -> kr_lock (leaf); srv_mtx and
 * replay_mtx are leaves.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "htab.h"
#include "platform/platform.h"

#define NRECV 16          /* server contexts waiting in receive */
#define MAX_CTX_CAP 4096  /* client contexts per peer, at most */
#define GOSSIP_CTX 8      /* contexts kept for gossip beyond the data limit */
#define NBATCH 4          /* notification batches in flight per peer */
#define BATCH_ITEMS 1024  /* notifications per batch */
#define BATCH_BYTES (256u * 1024u)
#define MAX_QUEUED_REQS 8192 /* requests waiting for a context, per peer */
#define RETRY_MS 20       /* after a peer refused notifications */
#define MAINT_MS 50       /* maintenance period */
#define IDLE_RETIRE_MS 60000
#define RETIRE_GRACE_MS 2000 /* retired socket closed after this */
#define FLUSH_MS 500         /* shutdown: wait for replies to leave */
#define REPLAY_WINDOW 1024
#define REPLAY_SENDERS 4096

enum { C_IDLE, C_SEND, C_RECV, C_DEAD };
enum { S_RECV, S_HELD, S_SEND, S_IDLE, S_DEAD };

typedef struct nitem {
    struct nitem *next;
    nti_msg *m;
    uint8_t dest[NTI_ID_LEN];
    uint64_t dest_boot;
    uint16_t nregs;
    uint64_t regs[];
} nitem;

/* A queue of nti_xitem that leave in batches (CALLS, RESULTS_TO). */
typedef struct {
    nti_xitem *h, *t;
    size_t n;
    unsigned batches; /* frames in flight */
    size_t inflight;  /* items in them */
    uint64_t retry_at;
} xqueue;

enum { XQ_CALLS = 0, XQ_RESULTS = 1 };
#define XQ_TRIES 3 /* sends of one results item, at most */

typedef struct cctx {
    nti_peer *p;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    nti_creq *req;   /* a single request, or */
    nitem *batch;    /* a notification batch, or */
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
    uint64_t gen;
    bool reset_pending;
    uint64_t last_used;
    cctx *all, *free;
    unsigned nctx;
    nti_creq *qh, *qt;   /* calls, info: FIFO */
    size_t qn;
    nti_creq *gh, *gt;   /* gossip: served first, never starved */
    size_t gn;
    nitem *nh, *nt;
    size_t nn, reserved;
    size_t inflight_items; /* in batches on the wire: count against depth */
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

typedef struct rwin {
    nti_hnode hn;
    uint8_t id[NTI_ID_LEN];
    uint64_t boot, top, last_use;
    uint64_t bits[REPLAY_WINDOW / 64];
} rwin;

struct nti_tp {
    nti_tp_config cfg;
    uint8_t self_id[NTI_ID_LEN];
    char address[GSP_ADDR_MAX + 32];
    nti_logger log;
    nti_rwlock kr_lock;

    /* server */
    nti_mtx srv_mtx; /* guards srv_all, srv_free, srv_closing, ops_* */
    nng_socket srv;
    bool has_srv, srv_closing;
    bool ops_off;      /* nti_tp_free began: the node is going away */
    unsigned ops_busy; /* callbacks inside cfg.ops (request_in, gossip_in) */
    nti_sreq *srv_all, *srv_free;
    unsigned srv_sending; /* replies handed to nng, not yet sent */
    nti_cv srv_cv;        /* srv_sending reached zero */
    _Atomic unsigned held;
    _Atomic unsigned conns;

    /* peers and the maintenance thread */
    nti_mtx peers_mtx; /* guards peers, peer_tab, stop */
    nti_cv maint_cv;
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
        st_notify_retried, st_connects, st_disconnects;
    _Atomic uint64_t st_call_frames, st_calls, st_late;
};

/*
 * Bounded socket close.  nng 1.5.2 can block nng_close forever: its
 * reaper waits in req0_pipe_stop -> nni_aio_stop for a pipe receive task
 * that was begun but never dispatched (seen when a pipe is torn down while
 * its remote end closes too; every nng task thread idle).  A node must not
 * hang on that, so each close runs on a short-lived thread and we wait for
 * it at most CLOSE_WAIT_MS.  If it does not return, the socket's memory
 * (peer, contexts, transport) is deliberately kept allocated so that a late
 * nng callback can never touch freed memory; the stuck thread ends with the
 * process.
 */
#define CLOSE_WAIT_MS 3000

typedef struct {
    nng_socket sock;
    nti_mtx mtx; /* guards done */
    nti_cv cv;
    bool done;
    _Atomic unsigned refs;
} close_job;

static void
close_job_rele(close_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        nti_cv_fini(&j->cv);
        nti_mtx_fini(&j->mtx);
        free(j);
    }
}

static void
close_main(void *arg)
{
    close_job *j = arg;
    nti_thr_setname("nt-close");
    nng_close(j->sock);
    nti_mtx_lock(&j->mtx);
    j->done = true;
    nti_cv_broadcast(&j->cv);
    nti_mtx_unlock(&j->mtx);
    close_job_rele(j);
}

/* Set once a close got stuck: nng's single reaper is then blocked for
 * good, and every later close would wait on it too. */
static _Atomic bool reaper_stuck;

/* Returns true when the socket closed within CLOSE_WAIT_MS. */
static bool
sock_close(nti_tp *tp, nng_socket s)
{
    if (atomic_load(&reaper_stuck)) {
        return false;
    }
    close_job *j = calloc(1, sizeof(*j));
    nti_thr t;
    if (j == NULL) {
        nng_close(s);
        return true;
    }
    j->sock = s;
    nti_mtx_init(&j->mtx);
    nti_cv_init(&j->cv);
    atomic_init(&j->refs, 2);
    if (nti_thr_create(&t, close_main, j) != NT_OK) {
        nti_cv_fini(&j->cv);
        nti_mtx_fini(&j->mtx);
        free(j);
        nng_close(s);
        return true;
    }
    nti_thr_detach(&t);
    uint64_t deadline = nti_clock_ms() + CLOSE_WAIT_MS;
    nti_mtx_lock(&j->mtx);
    while (!j->done && nti_cv_wait_until(&j->cv, &j->mtx, deadline)) {
    }
    bool done = j->done;
    nti_mtx_unlock(&j->mtx);
    close_job_rele(j);
    if (!done) {
        atomic_store(&reaper_stuck, true);
        nti_log(&tp->log, NT_LOG_ERROR,
                "nng did not finish closing a socket; leaving it (nng 1.5.2 "
                "reaper bug)",
                NULL, NULL, NULL, NULL, NULL, NULL);
    }
    return done;
}

static const char *drop_names[NTI_DROP_COUNT] = {
    "too_big", "unknown_key", "auth", "malformed",
    "version", "replay", "wrong_dest", "stale_boot", "conn_limit",
};

static const char *kind_names[NTI_K_COUNT] = {
    "gossip", "notify", "rpc", "publish", "info", "reply",
};

const char *
nti_kind_wire_name(nti_kind_wire k)
{
    return k < NTI_K_COUNT ? kind_names[k] : "?";
}

/* Counts one frame of a kind in a direction (0 in, 1 out). */
static void
count_kind(nti_tp *tp, int dir, nti_kind_wire k, size_t bytes)
{
    atomic_fetch_add_explicit(&tp->st_kframes[dir][k], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&tp->st_kbytes[dir][k], bytes,
                              memory_order_relaxed);
}

static nti_kind_wire
kind_of_type(uint8_t type)
{
    switch (type) {
    case NTI_T_NOTIFY:
        return NTI_K_NOTIFY;
    case NTI_T_CALL:
    case NTI_T_ROUTE_CALL:
    case NTI_T_CALLS:
        return NTI_K_RPC;
    case NTI_T_PUBLISH:
        return NTI_K_PUBLISH;
    case NTI_T_INFO:
        return NTI_K_INFO;
    default:
        return NTI_K_REPLY;
    }
}

const char *
nti_drop_name(nti_drop d)
{
    return d < NTI_DROP_COUNT ? drop_names[d] : "?";
}

static void
count_drop(nti_tp *tp, nti_drop d)
{
    atomic_fetch_add_explicit(&tp->st_drops[d], 1, memory_order_relaxed);
}

static int
nng_to_nt(int rv)
{
    switch (rv) {
    case 0:
        return NT_OK;
    case NNG_ENOMEM:
        return NT_ENOMEM;
    case NNG_ECLOSED:
        return NT_ECLOSED;
    case NNG_EADDRINUSE:
    case NNG_EADDRINVAL:
    case NNG_EINVAL:
        return NT_EADDR;
    case NNG_ETIMEDOUT:
        return NT_ETIMEDOUT;
    case NNG_EMSGSIZE:
        return NT_EMSGSIZE;
    default:
        return NT_EIO;
    }
}

/* "tcp://host:port" with brackets for IPv6 literals. */
static int
make_url(const char *addr, char *url, size_t cap)
{
    char host[GSP_ADDR_MAX + 1];
    unsigned port;
    if (nti_addr_parse(addr, host, sizeof(host), &port) != NT_OK) {
        return NT_EADDR;
    }
    int n = strchr(host, ':') != NULL
                ? snprintf(url, cap, "tcp://[%s]:%u", host, port)
                : snprintf(url, cap, "tcp://%s:%u", host, port);
    return n > 0 && (size_t)n < cap ? NT_OK : NT_EADDR;
}

static void
format_sockaddr(const nng_sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->s_family == NNG_AF_INET) {
        inet_ntop(AF_INET, &sa->s_in.sa_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(sa->s_in.sa_port));
    } else if (sa->s_family == NNG_AF_INET6) {
        inet_ntop(AF_INET6, sa->s_in6.sa_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(sa->s_in6.sa_port));
    } else {
        snprintf(out, cap, "?");
    }
}

/* nng drops (and disconnects) messages over its receive limit without
 * telling us; letting it take up to twice our own limit means a frame a
 * little too big reaches srv_handle, which refuses it with a reason and a
 * counter, while a huge one still costs the sender its connection. */
static size_t
nng_cap(const nti_tp *tp)
{
    return 2 * tp->cfg.max_frame + 64;
}

/* ---- sealing ----------------------------------------------------------- */

/* An nng message holding ch + seal(pt).  NT_OK or an error. */
static int
seal_msg(nti_tp *tp, uint8_t ch, const uint8_t *pt, size_t len,
         nng_msg **out)
{
    nng_msg *m;
    size_t cap = 1 + len + GSP_SEAL_OVERHEAD;
    if (cap > tp->cfg.max_frame + 1) {
        return NT_EMSGSIZE;
    }
    if (nng_msg_alloc(&m, cap) != 0) {
        return NT_ENOMEM;
    }
    uint8_t *body = nng_msg_body(m);
    body[0] = ch;
    size_t outlen = 0;
    nti_rwlock_rdlock(&tp->kr_lock);
    int rv = gsp_seal(tp->cfg.keyring, pt, len, body + 1, cap - 1, &outlen);
    nti_rwlock_unlock(&tp->kr_lock);
    if (rv != GSP_OK) {
        nng_msg_free(m);
        return NT_EAUTH;
    }
    nng_msg_chop(m, cap - 1 - outlen);
    *out = m;
    return NT_OK;
}

/* Opens a sealed frame into a malloc'd plaintext.  Returns 0 or a drop
 * reason + 1. */
static int
open_frame(nti_tp *tp, const uint8_t *frame, size_t len, uint8_t **pt,
           size_t *ptlen)
{
    if (len < GSP_SEAL_OVERHEAD) {
        return NTI_DROP_MALFORMED + 1;
    }
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
        return NTI_DROP_MALFORMED + 1;
    }
    nti_rwlock_rdlock(&tp->kr_lock);
    int rv = gsp_open(tp->cfg.keyring, frame, len, buf, len, ptlen);
    nti_rwlock_unlock(&tp->kr_lock);
    if (rv != GSP_OK) {
        free(buf);
        switch (rv) {
        case GSP_EUNKNOWNKEY:
            return NTI_DROP_UNKNOWN_KEY + 1;
        case GSP_EAUTH:
            return NTI_DROP_AUTH + 1;
        case GSP_EVERSION:
            return NTI_DROP_VERSION + 1;
        default:
            return NTI_DROP_MALFORMED + 1;
        }
    }
    *pt = buf;
    return 0;
}

uint64_t
nti_tp_hdr(nti_tp *tp, uint8_t type, const uint8_t *dest, uint64_t dest_boot,
           uint64_t ref, uint8_t *buf)
{
    nti_hdr h;
    memset(&h, 0, sizeof(h));
    h.type = type;
    memcpy(h.sender, tp->self_id, NTI_ID_LEN);
    h.sender_boot = tp->cfg.boot;
    h.seq = atomic_fetch_add_explicit(&tp->seq, 1, memory_order_relaxed) + 1;
    if (dest != NULL) {
        memcpy(h.dest, dest, NTI_ID_LEN);
    }
    h.dest_boot = dest_boot;
    h.ref = ref;
    gsp_wr w;
    gsp_wr_init(&w, buf, NTI_HDR_LEN);
    nti_wire_hdr_put(&w, &h);
    return h.seq;
}

/* ---- replay windows ------------------------------------------------------- */

static uint64_t
id_key(const uint8_t *id)
{
    uint64_t v;
    memcpy(&v, id, sizeof(v));
    return nti_mix64(v);
}

static void
win_shift(rwin *w, uint64_t s)
{
    const size_t nw = REPLAY_WINDOW / 64;
    if (s >= REPLAY_WINDOW) {
        memset(w->bits, 0, sizeof(w->bits));
        return;
    }
    size_t ws = (size_t)(s / 64), bs = (size_t)(s % 64);
    for (size_t i = nw; i-- > 0;) {
        uint64_t v = 0;
        if (i >= ws) {
            v = w->bits[i - ws] << bs;
            if (bs != 0 && i - ws >= 1) {
                v |= w->bits[i - ws - 1] >> (64 - bs);
            }
        }
        w->bits[i] = v;
    }
}

/* Returns 0 to accept, or a drop reason + 1. */
static int
replay_check(nti_tp *tp, const nti_hdr *h)
{
    int rv = 0;
    uint64_t k = id_key(h->sender);
    uint64_t now = nti_clock_ms();
    nti_mtx_lock(&tp->replay_mtx);
    rwin *w = NULL;
    for (nti_hnode *n = nti_htab_find(&tp->replay, k); n != NULL;
         n = nti_htab_next(n, k)) {
        if (memcmp(((rwin *)n)->id, h->sender, NTI_ID_LEN) == 0) {
            w = (rwin *)n;
            break;
        }
    }
    if (w == NULL) {
        if (tp->nreplay >= REPLAY_SENDERS) {
            /* Forget the sender heard from least recently. */
            rwin *old = NULL;
            for (size_t i = 0; i < tp->replay.nslots; i++) {
                for (nti_hnode *n = tp->replay.slots[i]; n; n = n->next) {
                    if (old == NULL || ((rwin *)n)->last_use < old->last_use) {
                        old = (rwin *)n;
                    }
                }
            }
            nti_htab_remove(&tp->replay, &old->hn);
            free(old);
            tp->nreplay--;
        }
        w = calloc(1, sizeof(*w));
        if (w == NULL) {
            nti_mtx_unlock(&tp->replay_mtx);
            return NTI_DROP_MALFORMED + 1;
        }
        memcpy(w->id, h->sender, NTI_ID_LEN);
        w->hn.hash = k;
        if (nti_htab_insert(&tp->replay, &w->hn) != NT_OK) {
            free(w);
            nti_mtx_unlock(&tp->replay_mtx);
            return NTI_DROP_MALFORMED + 1;
        }
        tp->nreplay++;
        w->boot = h->sender_boot;
        w->top = h->seq;
        w->bits[0] = 1;
        goto out;
    }
    if (h->sender_boot < w->boot) {
        rv = NTI_DROP_STALE_BOOT + 1;
    } else if (h->sender_boot > w->boot) {
        w->boot = h->sender_boot;
        w->top = h->seq;
        memset(w->bits, 0, sizeof(w->bits));
        w->bits[0] = 1;
    } else if (h->seq > w->top) {
        win_shift(w, h->seq - w->top);
        w->top = h->seq;
        w->bits[0] |= 1;
    } else {
        uint64_t d = w->top - h->seq;
        if (d >= REPLAY_WINDOW || (w->bits[d / 64] >> (d % 64)) & 1) {
            rv = NTI_DROP_REPLAY + 1;
        } else {
            w->bits[d / 64] |= 1ULL << (d % 64);
        }
    }
out:
    w->last_use = now;
    nti_mtx_unlock(&tp->replay_mtx);
    return rv;
}

/* ---- server ------------------------------------------------------------- */

static void sreq_cb(void *arg);

/* Puts one more context into receive.  Lock not held. */
static void
srv_add_receiver(nti_tp *tp)
{
    nti_mtx_lock(&tp->srv_mtx);
    if (tp->srv_closing) {
        nti_mtx_unlock(&tp->srv_mtx);
        return;
    }
    nti_sreq *s = tp->srv_free;
    if (s != NULL) {
        tp->srv_free = s->next_free;
    } else {
        s = calloc(1, sizeof(*s));
        if (s == NULL || nng_aio_alloc(&s->aio, sreq_cb, s) != 0) {
            free(s);
            nti_mtx_unlock(&tp->srv_mtx);
            return;
        }
        if (nng_ctx_open(&s->ctx, tp->srv) != 0) {
            nng_aio_free(s->aio);
            free(s);
            nti_mtx_unlock(&tp->srv_mtx);
            return;
        }
        s->tp = tp;
        s->next_all = tp->srv_all;
        tp->srv_all = s;
    }
    s->state = S_RECV;
    s->held = false;
    nti_mtx_unlock(&tp->srv_mtx);
    nng_ctx_recv(s->ctx, s->aio);
}

static void
sreq_send(nti_sreq *s, nng_msg *m)
{
    nti_mtx_lock(&s->tp->srv_mtx);
    s->tp->srv_sending++;
    nti_mtx_unlock(&s->tp->srv_mtx);
    s->state = S_SEND;
    nng_aio_set_msg(s->aio, m);
    nng_ctx_send(s->ctx, s->aio);
}

/* An unauthenticated reject: 'E' and a status byte.  For garbage and
 * authentication failures the link is closed once the reject is out, so
 * a peer that cannot talk to us reconnects only at its dialer's backoff.
 * A frame that is merely too big keeps the link: its sender is likely an
 * honest node with a larger max_payload, and closing would lose the fate
 * of everything else it has in flight (nng itself drops the connection
 * for frames over twice the cap). */
static void
sreq_reject(nti_sreq *s, int status)
{
    s->close_link = status == NT_EAUTH || status == NT_EPROTO;
    nng_msg *m;
    if (nng_msg_alloc(&m, 2) != 0) {
        /* Nothing to answer with; the requester's own timeout applies. */
        nti_mtx_lock(&s->tp->srv_mtx);
        s->state = S_IDLE;
        s->next_free = s->tp->srv_free;
        s->tp->srv_free = s;
        nti_mtx_unlock(&s->tp->srv_mtx);
        return;
    }
    uint8_t *b = nng_msg_body(m);
    b[0] = NTI_CH_REJECT;
    b[1] = (uint8_t)(-status);
    sreq_send(s, m);
}

/* Logs a dropped frame: at most one line a second (the counters have the
 * rest), so a misconfigured or hostile peer cannot flood the log. */
static void
log_drop(nti_tp *tp, nti_sreq *s, const char *what, nti_drop d)
{
    uint64_t now = nti_clock_ms(), last = atomic_load(&tp->last_warn);
    if (now - last < 1000 ||
        !atomic_compare_exchange_strong(&tp->last_warn, &last, now)) {
        return;
    }
    if (nti_log_enabled(&tp->log, NT_LOG_WARN)) {
        nng_sockaddr sa;
        if (nng_pipe_get_addr(s->pipe, NNG_OPT_REMADDR, &sa) == 0) {
            format_sockaddr(&sa, s->remote, sizeof(s->remote));
        } else {
            snprintf(s->remote, sizeof(s->remote), "?");
        }
        nti_log(&tp->log, d == NTI_DROP_AUTH || d == NTI_DROP_UNKNOWN_KEY
                              ? NT_LOG_WARN
                              : NT_LOG_INFO,
                what, "peer", s->remote, "reason", nti_drop_name(d),
                d == NTI_DROP_AUTH || d == NTI_DROP_UNKNOWN_KEY ? "hint"
                                                                 : NULL,
                "wrong cluster key?");
    }
}

static void
srv_handle(nti_tp *tp, nti_sreq *s, nng_msg *m)
{
    size_t len = nng_msg_len(m);
    const uint8_t *body = nng_msg_body(m);
    s->close_link = false;
    s->pipe = nng_msg_get_pipe(m); /* its address is formatted only to log */
    atomic_fetch_add_explicit(&tp->st_frames_in, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tp->st_bytes_in, len, memory_order_relaxed);
    if (len > tp->cfg.max_frame + 1) {
        count_drop(tp, NTI_DROP_TOO_BIG);
        log_drop(tp, s, "dropped frame", NTI_DROP_TOO_BIG);
        sreq_reject(s, NT_EMSGSIZE);
        return;
    }
    if (len >= 1 && body[0] == NTI_CH_GOSSIP) {
        count_kind(tp, 0, NTI_K_GOSSIP, len);
        int rv = tp->cfg.ops.gossip_in(tp->cfg.ops_arg, body + 1, len - 1);
        if (rv == GSP_EAUTH || rv == GSP_EUNKNOWNKEY) {
            log_drop(tp, s, "dropped gossip frame",
                     rv == GSP_EAUTH ? NTI_DROP_AUTH : NTI_DROP_UNKNOWN_KEY);
            sreq_reject(s, NT_EAUTH);
            return;
        }
        nng_msg *r;
        if (nng_msg_alloc(&r, 0) != 0) {
            sreq_reject(s, NT_ENOMEM);
            return;
        }
        sreq_send(s, r);
        return;
    }
    if (len < 1 || body[0] != NTI_CH_DATA) {
        count_drop(tp, NTI_DROP_MALFORMED);
        sreq_reject(s, NT_EPROTO);
        return;
    }
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    int d = open_frame(tp, body + 1, len - 1, &pt, &ptlen);
    if (d != 0) {
        count_drop(tp, (nti_drop)(d - 1));
        log_drop(tp, s, "dropped frame", (nti_drop)(d - 1));
        sreq_reject(s, d - 1 == NTI_DROP_AUTH || d - 1 == NTI_DROP_UNKNOWN_KEY
                           ? NT_EAUTH
                           : NT_EPROTO);
        return;
    }
    nti_hdr h;
    gsp_rd r;
    gsp_rd_init(&r, pt, ptlen);
    static const uint8_t zero[NTI_ID_LEN];
    int st = NT_OK;
    nti_drop why = NTI_DROP_MALFORMED;
    if (nti_wire_hdr_get(&r, &h) != GSP_OK ||
        nti_wire_check(pt, ptlen) != GSP_OK || h.type < NTI_T_NOTIFY ||
        h.type > NTI_T_RESULTS_TO) {
        st = NT_EPROTO;
    } else if ((memcmp(h.dest, zero, NTI_ID_LEN) != 0 &&
                memcmp(h.dest, tp->self_id, NTI_ID_LEN) != 0)) {
        st = NT_EPEERLOST;
        why = NTI_DROP_WRONG_DEST;
    } else if (h.dest_boot != 0 && h.dest_boot != tp->cfg.boot) {
        st = NT_EPEERLOST;
        why = NTI_DROP_STALE_BOOT;
    } else {
        int rp = replay_check(tp, &h);
        if (rp != 0) {
            st = NT_EPEERLOST;
            why = (nti_drop)(rp - 1);
        }
    }
    if (st != NT_OK) {
        free(pt);
        count_drop(tp, why);
        log_drop(tp, s, "dropped frame", why);
        sreq_reject(s, st);
        return;
    }
    count_kind(tp, 0, kind_of_type(h.type), len);
    memcpy(s->sender, h.sender, NTI_ID_LEN);
    s->seq = h.seq;
    tp->cfg.ops.request_in(tp->cfg.ops_arg, s, &h, pt, ptlen);
    free(pt);
}

static void
sreq_cb(void *arg)
{
    nti_sreq *s = arg;
    nti_tp *tp = s->tp;
    int rv = nng_aio_result(s->aio);
    if (s->state == S_RECV) {
        if (rv != 0) {
            if (rv == NNG_ECLOSED) {
                s->state = S_DEAD;
                return;
            }
            nng_ctx_recv(s->ctx, s->aio); /* transient: keep receiving */
            return;
        }
        nng_msg *m = nng_aio_get_msg(s->aio);
        nng_aio_set_msg(s->aio, NULL);
        s->state = S_HELD;
        srv_add_receiver(tp);
        /* The gate: once nti_tp_free began, the node behind cfg.ops may be
         * gone (a socket nng could not close still delivers). */
        nti_mtx_lock(&tp->srv_mtx);
        bool off = tp->ops_off;
        tp->ops_busy += off ? 0 : 1;
        nti_mtx_unlock(&tp->srv_mtx);
        if (off) {
            s->pipe = nng_msg_get_pipe(m);
            sreq_reject(s, NT_ECLOSED);
        } else {
            srv_handle(tp, s, m);
            nti_mtx_lock(&tp->srv_mtx);
            if (--tp->ops_busy == 0 && tp->ops_off) {
                nti_cv_broadcast(&tp->srv_cv);
            }
            nti_mtx_unlock(&tp->srv_mtx);
        }
        nng_msg_free(m);
        return;
    }
    if (s->state == S_SEND) {
        if (rv != 0) {
            nng_msg *m = nng_aio_get_msg(s->aio);
            nng_aio_set_msg(s->aio, NULL);
            if (m != NULL) {
                nng_msg_free(m);
            }
        } else {
            atomic_fetch_add_explicit(&tp->st_frames_out, 1,
                                      memory_order_relaxed);
        }
        if (s->close_link) {
            nng_pipe_close(s->pipe);
            s->close_link = false;
        }
        if (s->held) {
            atomic_fetch_sub(&tp->held, 1);
            s->held = false;
        }
        nti_mtx_lock(&tp->srv_mtx);
        if (--tp->srv_sending == 0) {
            nti_cv_broadcast(&tp->srv_cv);
        }
        if (rv == NNG_ECLOSED || tp->srv_closing) {
            s->state = S_DEAD;
        } else {
            s->state = S_IDLE;
            s->next_free = tp->srv_free;
            tp->srv_free = s;
        }
        nti_mtx_unlock(&tp->srv_mtx);
    }
}

bool
nti_tp_hold(nti_tp *tp)
{
    if (atomic_fetch_add(&tp->held, 1) >= tp->cfg.max_inflight) {
        atomic_fetch_sub(&tp->held, 1);
        return false;
    }
    return true;
}

void
nti_tp_unhold(nti_tp *tp)
{
    atomic_fetch_sub(&tp->held, 1);
}

bool
nti_sreq_hold(nti_sreq *s)
{
    nti_tp *tp = s->tp;
    if (atomic_fetch_add(&tp->held, 1) >= tp->cfg.max_inflight) {
        atomic_fetch_sub(&tp->held, 1);
        return false;
    }
    s->held = true;
    return true;
}

void
nti_sreq_reply(nti_sreq *s, uint8_t *pt, size_t len)
{
    if (pt == NULL) {
        sreq_reject(s, NT_ENOMEM);
        return;
    }
    nng_msg *m;
    int rv = seal_msg(s->tp, NTI_CH_DATA, pt, len, &m);
    free(pt);
    if (rv != NT_OK) {
        sreq_reject(s, rv);
        return;
    }
    atomic_fetch_add_explicit(&s->tp->st_bytes_out, nng_msg_len(m),
                              memory_order_relaxed);
    count_kind(s->tp, 1, NTI_K_REPLY, nng_msg_len(m));
    sreq_send(s, m);
}

const char *
nti_sreq_remote(const nti_sreq *s)
{
    return s->remote;
}

/* ---- client: peers -------------------------------------------------------- */

static void cctx_cb(void *arg);
static void peer_kick(nti_peer *p);
static void peer_sent(nti_peer *p);

static void
pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)pipe;
    nti_peer *p = arg;
    nti_tp *tp = p->tp;
    bool up = ev == NNG_PIPE_EV_ADD_POST;
    nti_mtx_lock(&p->mtx);
    if (up) {
        p->connected = true;
        p->ever_connected = true;
    } else {
        p->connected = false;
        p->gen++;
        p->reset_pending = true;
    }
    nti_cv_broadcast(&p->cv);
    nti_mtx_unlock(&p->mtx);
    atomic_fetch_add_explicit(up ? &tp->st_connects : &tp->st_disconnects, 1,
                              memory_order_relaxed);
    if (tp->cfg.ops.peer_event != NULL) {
        tp->cfg.ops.peer_event(tp->cfg.ops_arg, p, up);
    }
    if (!up) {
        /* The maintenance thread cancels what the lost pipe carried. */
        nti_mtx_lock(&tp->peers_mtx);
        nti_cv_signal(&tp->maint_cv);
        nti_mtx_unlock(&tp->peers_mtx);
    }
}

static uint64_t
addr_key(const char *addr)
{
    return nti_hash_str(0x5eed, addr);
}

int
nti_tp_peer(nti_tp *tp, const char *addr, nti_peer **out)
{
    char url[GSP_ADDR_MAX + 16];
    int rv = make_url(addr, url, sizeof(url));
    if (rv != NT_OK) {
        return rv;
    }
    uint64_t k = addr_key(addr);
    nti_mtx_lock(&tp->peers_mtx);
    if (tp->stop) {
        nti_mtx_unlock(&tp->peers_mtx);
        return NT_ECLOSED;
    }
    for (nti_hnode *n = nti_htab_find(&tp->peer_tab, k); n != NULL;
         n = nti_htab_next(n, k)) {
        nti_peer *p = (nti_peer *)n;
        if (strcmp(p->addr, addr) == 0) {
            nti_mtx_lock(&p->mtx);
            bool usable = !p->retired;
            p->last_used = nti_clock_ms();
            nti_mtx_unlock(&p->mtx);
            if (usable) {
                nti_peer_hold(p);
                nti_mtx_unlock(&tp->peers_mtx);
                *out = p;
                return NT_OK;
            }
        }
    }
    nti_peer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        nti_mtx_unlock(&tp->peers_mtx);
        return NT_ENOMEM;
    }
    p->tp = tp;
    atomic_init(&p->refs, 2); /* the table's and the caller's */
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->last_used = nti_clock_ms();
    p->created_at = p->last_used;
    nti_mtx_init(&p->mtx);
    nti_cv_init(&p->cv);
    nng_dialer d;
    if ((rv = nng_req0_open(&p->sock)) != 0) {
        goto fail;
    }
    nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, nng_cap(tp));
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 5000);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, p);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_cb, p);
    if ((rv = nng_dialer_create(&d, p->sock, url)) != 0) {
        sock_close(tp, p->sock);
        goto fail;
    }
    nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, nng_cap(tp));
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        sock_close(tp, p->sock);
        goto fail;
    }
    p->hn.hash = k;
    if (nti_htab_insert(&tp->peer_tab, &p->hn) != NT_OK) {
        sock_close(tp, p->sock);
        rv = NNG_ENOMEM;
        goto fail;
    }
    p->next = tp->peers;
    tp->peers = p;
    nti_mtx_unlock(&tp->peers_mtx);
    *out = p;
    return NT_OK;

fail:
    nti_mtx_unlock(&tp->peers_mtx);
    nti_cv_fini(&p->cv);
    nti_mtx_fini(&p->mtx);
    free(p);
    return nng_to_nt(rv);
}

void
nti_peer_hold(nti_peer *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void
nti_peer_rele(nti_peer *p)
{
    /* The table holds a reference until the maintenance thread frees the
     * peer, so this never reaches zero here. */
    atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
}

const char *
nti_peer_addr(const nti_peer *p)
{
    return p->addr;
}

bool
nti_peer_connected(nti_peer *p)
{
    nti_mtx_lock(&p->mtx);
    bool c = p->connected;
    nti_mtx_unlock(&p->mtx);
    return c;
}

bool
nti_peer_wait_connected(nti_peer *p, uint64_t deadline_ms)
{
    nti_mtx_lock(&p->mtx);
    while (!p->connected && !p->retired &&
           nti_cv_wait_until(&p->cv, &p->mtx, deadline_ms)) {
    }
    bool c = p->connected;
    nti_mtx_unlock(&p->mtx);
    return c;
}

void
nti_peer_retire(nti_peer *p)
{
    nti_tp *tp = p->tp;
    nti_mtx_lock(&tp->peers_mtx);
    nti_mtx_lock(&p->mtx);
    if (!p->retired) {
        p->retired = true;
        p->retired_at = nti_clock_ms();
    }
    nti_cv_broadcast(&p->cv);
    nti_mtx_unlock(&p->mtx);
    nti_cv_signal(&tp->maint_cv);
    nti_mtx_unlock(&tp->peers_mtx);
}

/* ---- client: requests and batches ----------------------------------------- */

static void
nitem_free(nitem *it)
{
    nti_msg_rele(it->m);
    free(it);
}

static size_t
nitem_size(const nitem *it)
{
    return nti_wire_msg_size(NTI_T_NOTIFY, it->m->from, it->m->object,
                             it->m->cmd, it->nregs, it->m->len);
}

/* Encodes and seals a NOTIFY batch. */
static int
batch_msg(nti_tp *tp, nitem *items, size_t n, uint64_t *seq, nng_msg **out)
{
    size_t len = NTI_HDR_LEN + 4;
    for (nitem *it = items; it != NULL; it = it->next) {
        len += nitem_size(it);
    }
    uint8_t *pt = malloc(len);
    if (pt == NULL) {
        return NT_ENOMEM;
    }
    *seq = nti_tp_hdr(tp, NTI_T_NOTIFY, items->dest, items->dest_boot, 0, pt);
    gsp_wr w;
    gsp_wr_init(&w, pt + NTI_HDR_LEN, len - NTI_HDR_LEN);
    gsp_wr_u32(&w, (uint32_t)n);
    for (nitem *it = items; it != NULL; it = it->next) {
        nti_wire_msg_put(&w, NTI_T_NOTIFY, 0, 0, it->m->from, it->m->id,
                         it->m->object,
                         it->m->cmd, it->regs, it->nregs, it->m->data,
                         it->m->len);
    }
    int rv = seal_msg(tp, NTI_CH_DATA, pt, len, out);
    free(pt);
    return rv;
}

/* A batch stays well inside our frame limit (nodes of one cluster should
 * share max_payload; see docs/PROTOCOL.md). */
static size_t
batch_bytes(const nti_tp *tp)
{
    size_t cap = tp->cfg.max_frame > 8192 ? tp->cfg.max_frame - 8192 : 1024;
    return cap < BATCH_BYTES ? cap : BATCH_BYTES;
}

/* ---- batched calls and results (nti_xitem) ---- */

static void
xitem_free(nti_xitem *x)
{
    free(x->body);
    free(x);
}

/* Encodes and seals a CALLS or RESULTS_TO batch of n items. */
static int
xbatch_msg(nti_tp *tp, int kind, nti_xitem *items, size_t n, uint64_t *seq,
           nng_msg **out)
{
    size_t alen = kind == XQ_CALLS ? strlen(tp->reply_to) : 0;
    size_t len = NTI_HDR_LEN + (kind == XQ_CALLS ? 1 + alen : 0) + 4;
    for (nti_xitem *x = items; x != NULL; x = x->next) {
        len += x->len;
    }
    uint8_t *pt = malloc(len);
    if (pt == NULL) {
        return NT_ENOMEM;
    }
    *seq = nti_tp_hdr(tp, kind == XQ_CALLS ? NTI_T_CALLS : NTI_T_RESULTS_TO,
                      items->dest, items->dest_boot, 0, pt);
    gsp_wr w;
    gsp_wr_init(&w, pt + NTI_HDR_LEN, len - NTI_HDR_LEN);
    if (kind == XQ_CALLS) {
        gsp_wr_blob8(&w, tp->reply_to, alen);
    }
    gsp_wr_u32(&w, (uint32_t)n);
    for (nti_xitem *x = items; x != NULL; x = x->next) {
        gsp_wr_bytes(&w, x->body, x->len);
    }
    int rv = seal_msg(tp, NTI_CH_DATA, pt, len, out);
    free(pt);
    return rv;
}

/* Pops a batch off xq[kind]: the items at the head for the same member,
 * bounded in count and bytes.  Lock held. */
static nti_xitem *
xbatch_take(nti_peer *p, int kind, size_t *nb)
{
    xqueue *q = &p->xq[kind];
    nti_xitem *batch = NULL, **tail = &batch;
    size_t bytes = 0, limit = batch_bytes(p->tp), most = BATCH_ITEMS;
    if (kind == XQ_CALLS) {
        /* Calls in flight to one peer stay within max_peer_inflight, as
         * single requests do: the rest wait here, not in its queues. */
        size_t room = p->tp->cfg.max_peer_inflight - q->inflight;
        most = room < most ? room : most;
    }
    *nb = 0;
    while (q->h != NULL && *nb < most) {
        nti_xitem *x = q->h;
        if (*nb > 0 && (bytes + x->len > limit ||
                        memcmp(x->dest, batch->dest, NTI_ID_LEN) ||
                        x->dest_boot != batch->dest_boot)) {
            break;
        }
        q->h = x->next;
        x->next = NULL;
        *tail = x;
        tail = &x->next;
        bytes += x->len;
        (*nb)++;
    }
    if (q->h == NULL) {
        q->t = NULL;
    }
    q->n -= *nb;
    q->batches++;
    q->inflight += *nb;
    return batch;
}

/* Results to send again: back to the head of their queue (or freed when
 * they have been tried enough or the peer is going).  Lock not held. */
static void
xresults_requeue(nti_peer *p, nti_xitem *rest)
{
    nti_xitem *keep = NULL, **tail = &keep, *last = NULL;
    size_t n = 0;
    nti_mtx_lock(&p->mtx);
    bool going = p->retired || p->closed;
    while (rest != NULL) {
        nti_xitem *next = rest->next;
        rest->next = NULL;
        if (going || ++rest->tries >= XQ_TRIES) {
            xitem_free(rest);
        } else {
            *tail = rest;
            tail = &rest->next;
            last = rest;
            n++;
        }
        rest = next;
    }
    if (keep != NULL) {
        xqueue *q = &p->xq[XQ_RESULTS];
        last->next = q->h;
        q->h = keep;
        if (q->t == NULL) {
            q->t = last;
        }
        q->n += n;
        q->retry_at = nti_clock_ms() + RETRY_MS;
    }
    nti_mtx_unlock(&p->mtx);
}

/* Settles a CALLS or RESULTS_TO batch.  st is NT_OK with the opened reply
 * (h, pt) or the error; sent says whether the frame left.  Lock not
 * held. */
static void
xbatch_settle(nti_peer *p, cctx *c, int st, const nti_hdr *h,
              const uint8_t *pt, size_t ptlen, bool sent)
{
    nti_xitem *x = c->xbatch;
    int kind = c->xkind;
    c->xbatch = NULL;
    nti_mtx_lock(&p->mtx);
    p->xq[kind].batches--;
    p->xq[kind].inflight -= c->nbatch;
    nti_mtx_unlock(&p->mtx);
    gsp_rd rd;
    bool answered = st == NT_OK && h != NULL && pt != NULL;
    if (answered) {
        gsp_rd_init(&rd, pt + NTI_HDR_LEN, ptlen - NTI_HDR_LEN);
    }
    if (kind == XQ_RESULTS) {
        uint32_t acked = 0, why = 0;
        if (answered && h->type == NTI_T_ACK) {
            gsp_rd_u32(&rd, &acked);
            gsp_rd_u32(&rd, &why);
        }
        while (x != NULL && acked > 0) {
            nti_xitem *next = x->next;
            xitem_free(x);
            x = next;
            acked--;
        }
        /* The rest: refused for good (a malformed or unknown ref is not
         * worth a retry), or to send again (a full queue, a lost
         * connection: the caller ignores a result it has already). */
        bool again = answered ? (int32_t)why == NT_EAGAIN
                              : (st != NT_EAUTH && st != NT_EPROTO);
        if (again) {
            xresults_requeue(p, x);
        } else {
            while (x != NULL) {
                nti_xitem *next = x->next;
                xitem_free(x);
                x = next;
            }
        }
        return;
    }
    uint32_t n = 0;
    if (answered && h->type == NTI_T_CALLS_ACK) {
        gsp_rd_u32(&rd, &n);
    } else if (answered) {
        st = NT_EPROTO;
    }
    int lost = !sent ? NT_EUNREACHABLE : st != NT_OK ? st : NT_EPROTO;
    for (uint32_t i = 0; x != NULL; i++) {
        nti_xitem *next = x->next;
        x->next = NULL;
        free(x->body);
        x->body = NULL;
        uint8_t state = 0xff;
        uint32_t status = 0;
        if (i < n && gsp_rd_u8(&rd, &state) == GSP_OK) {
            if (state == NTI_CA_DONE) {
                gsp_rd sub = rd;
                if (nti_wire_results_skip(&rd) == GSP_OK) {
                    x->done(x, NTI_CA_DONE, NT_OK, &sub);
                } else {
                    x->done(x, -1, NT_EPROTO, NULL);
                }
            } else if (state == NTI_CA_REFUSED &&
                       gsp_rd_u32(&rd, &status) == GSP_OK) {
                x->done(x, NTI_CA_REFUSED, (int32_t)status, NULL);
            } else if (state == NTI_CA_LATER) {
                x->done(x, NTI_CA_LATER, NT_OK, NULL);
            } else {
                x->done(x, -1, NT_EPROTO, NULL);
            }
        } else {
            x->done(x, -1, lost, NULL);
        }
        x = next;
    }
}

void
nti_tp_set_reply_to(nti_tp *tp, const char *addr)
{
    snprintf(tp->reply_to, sizeof(tp->reply_to), "%s", addr ? addr : "");
}

/* Takes a context to run work on, creating one if allowed.  Lock held. */
static cctx *
ctx_take(nti_peer *p, bool gossip)
{
    /* Data may use max_peer_inflight contexts; gossip GOSSIP_CTX more, so
     * that probes and acks still leave when calls hold every context
     * (else a busy peer would look dead). */
    unsigned busy = p->nctx;
    for (cctx *f = p->free; f != NULL; f = f->next_free) {
        busy--;
    }
    unsigned limit = p->tp->cfg.max_peer_inflight + (gossip ? GOSSIP_CTX : 0);
    if (busy >= limit) {
        return NULL;
    }
    cctx *c = p->free;
    if (c != NULL) {
        p->free = c->next_free;
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (nng_aio_alloc(&c->aio, cctx_cb, c) != 0) {
        free(c);
        return NULL;
    }
    if (nng_ctx_open(&c->ctx, p->sock) != 0) {
        nng_aio_free(c->aio);
        free(c);
        return NULL;
    }
    c->p = p;
    c->next_all = p->all;
    p->all = c;
    p->nctx++;
    return c;
}

/* Settles a failed or finished batch: the first acked items are done, the
 * rest go back to the head of the queue (requeue) or are lost. */
static void
batch_settle(nti_peer *p, cctx *c, size_t acked, bool requeue)
{
    nti_tp *tp = p->tp;
    nitem *it = c->batch, *rest = NULL;
    size_t i = 0, nrest = 0;
    c->batch = NULL;
    while (it != NULL && i < acked) {
        nitem *next = it->next;
        nitem_free(it);
        it = next;
        i++;
    }
    rest = it;
    for (nitem *x = rest; x != NULL; x = x->next) {
        nrest++;
    }
    atomic_fetch_add_explicit(&tp->st_notify_sent, acked,
                              memory_order_relaxed);
    nti_mtx_lock(&p->mtx);
    p->batches--;
    p->inflight_items -= acked + nrest;
    if (rest != NULL && requeue && !p->retired) {
        nitem *last = rest;
        while (last->next != NULL) {
            last = last->next;
        }
        last->next = p->nh;
        p->nh = rest;
        if (p->nt == NULL) {
            p->nt = last;
        }
        p->nn += nrest;
        p->retry_at = nti_clock_ms() + RETRY_MS;
        rest = NULL;
        atomic_fetch_add_explicit(&tp->st_notify_retried, nrest,
                                  memory_order_relaxed);
    }
    nti_mtx_unlock(&p->mtx);
    if (rest != NULL) {
        atomic_fetch_add_explicit(&tp->st_notify_unacked, nrest,
                                  memory_order_relaxed);
        while (rest != NULL) {
            nitem *next = rest->next;
            nitem_free(rest);
            rest = next;
        }
    }
}

/* Returns c to the free list (or marks it dead).  Lock not held. */
static void
ctx_release(nti_peer *p, cctx *c, int rv)
{
    nti_mtx_lock(&p->mtx);
    c->req = NULL;
    if (rv == NNG_ECLOSED || p->closed) {
        c->state = C_DEAD;
    } else {
        c->state = C_IDLE;
        c->next_free = p->free;
        p->free = c;
    }
    nti_mtx_unlock(&p->mtx);
}

static int
reject_status(const uint8_t *body, size_t len)
{
    if (len < 2) {
        return NT_EPROTO;
    }
    int st = -(int)body[1];
    return st < 0 && st >= NT_EIO ? st : NT_EPROTO;
}

/* A reply arrived for c; returns the status and fills the opened reply. */
static int
reply_open(nti_tp *tp, cctx *c, nng_msg *m, nti_hdr *h, uint8_t **pt,
           size_t *ptlen)
{
    const uint8_t *body = nng_msg_body(m);
    size_t len = nng_msg_len(m);
    atomic_fetch_add_explicit(&tp->st_frames_in, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tp->st_bytes_in, len, memory_order_relaxed);
    count_kind(tp, 0, NTI_K_REPLY, len);
    if (len >= 1 && body[0] == NTI_CH_REJECT) {
        atomic_fetch_add_explicit(&tp->st_rejected, 1, memory_order_relaxed);
        return reject_status(body, len);
    }
    if (c->req != NULL && c->req->channel == NTI_CH_GOSSIP) {
        return NT_OK; /* empty acknowledgement */
    }
    if (len < 1 || body[0] != NTI_CH_DATA) {
        count_drop(tp, NTI_DROP_MALFORMED);
        return NT_EPROTO;
    }
    int d = open_frame(tp, body + 1, len - 1, pt, ptlen);
    if (d != 0) {
        count_drop(tp, (nti_drop)(d - 1));
        return d - 1 == NTI_DROP_AUTH || d - 1 == NTI_DROP_UNKNOWN_KEY
                   ? NT_EAUTH
                   : NT_EPROTO;
    }
    gsp_rd r;
    gsp_rd_init(&r, *pt, *ptlen);
    if (nti_wire_hdr_get(&r, h) != GSP_OK ||
        nti_wire_check(*pt, *ptlen) != GSP_OK || h->ref != c->seq ||
        memcmp(h->dest, tp->self_id, NTI_ID_LEN) != 0 ||
        h->type < NTI_T_ACK) {
        count_drop(tp, NTI_DROP_MALFORMED);
        free(*pt);
        *pt = NULL;
        return NT_EPROTO;
    }
    return NT_OK;
}

static void
cctx_cb(void *arg)
{
    cctx *c = arg;
    nti_peer *p = c->p;
    nti_tp *tp = p->tp;
    int rv = nng_aio_result(c->aio);

    if (c->state == C_SEND) {
        if (rv == 0) {
            nti_mtx_lock(&p->mtx);
            c->state = C_RECV;
            c->gen = p->gen;
            if (c->req != NULL) {
                c->req->sent = true;
            }
            p->sending++;
            nti_mtx_unlock(&p->mtx);
            atomic_fetch_add_explicit(&tp->st_frames_out, 1,
                                      memory_order_relaxed);
            nng_ctx_recv(c->ctx, c->aio);
            peer_sent(p);
            return;
        }
        nng_msg *m = nng_aio_get_msg(c->aio);
        nng_aio_set_msg(c->aio, NULL);
        if (m != NULL) {
            nng_msg_free(m);
        }
        /* Never left: the caller may try elsewhere. */
        nti_creq *r = c->req;
        if (c->batch != NULL) {
            batch_settle(p, c, 0, false);
        }
        if (c->xbatch != NULL) {
            xbatch_settle(p, c, NT_EUNREACHABLE, NULL, NULL, 0, false);
        }
        ctx_release(p, c, rv);
        if (r != NULL) {
            /* Whatever nng says (closed, reset, cancelled), the request
             * never reached a connection. */
            r->done(r, rv == NNG_ENOMEM ? NT_ENOMEM : NT_EUNREACHABLE, NULL,
                    NULL, 0);
        }
        peer_kick(p);
        return;
    }

    /* C_RECV */
    nti_creq *r = c->req;
    int st;
    nti_hdr h;
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(c->aio);
        nng_aio_set_msg(c->aio, NULL);
        st = reply_open(tp, c, m, &h, &pt, &ptlen);
        nng_msg_free(m);
    } else {
        st = NT_EPEERLOST; /* cancelled (connection lost) or closed */
    }
    if (c->batch != NULL) {
        size_t acked = 0;
        uint32_t why = 0;
        if (st == NT_OK && pt != NULL && h.type == NTI_T_ACK) {
            gsp_rd rd;
            uint32_t a = 0;
            gsp_rd_init(&rd, pt + NTI_HDR_LEN, ptlen - NTI_HDR_LEN);
            gsp_rd_u32(&rd, &a);
            gsp_rd_u32(&rd, &why);
            acked = a < c->nbatch ? a : c->nbatch;
        }
        free(pt);
        /* Items refused because the peer's queue was full are retried;
         * items refused for good, or whose fate is unknown (connection
         * lost), are not. */
        batch_settle(p, c, acked,
                     st == NT_OK && (int32_t)why == NT_EAGAIN);
        ctx_release(p, c, rv);
        peer_kick(p);
        return;
    }
    if (c->xbatch != NULL) {
        xbatch_settle(p, c, st, st == NT_OK && pt != NULL ? &h : NULL, pt,
                      ptlen, true);
        free(pt);
        ctx_release(p, c, rv);
        peer_kick(p);
        return;
    }
    ctx_release(p, c, rv);
    if (r != NULL) {
        r->done(r, st, st == NT_OK && pt ? &h : NULL, pt, ptlen);
    }
    free(pt);
    peer_kick(p);
}

/* Ends a window opened under the lock in which a thread calls nng on the
 * peer's socket; peer_close waits for every such window to end. */
static void
peer_sent(nti_peer *p)
{
    nti_mtx_lock(&p->mtx);
    if (--p->sending == 0 && p->closed) {
        nti_cv_broadcast(&p->cv);
    }
    nti_mtx_unlock(&p->mtx);
}

/* Starts as much queued work as there are contexts for. */
static void
peer_kick(nti_peer *p)
{
    nti_tp *tp = p->tp;
    for (;;) {
        nti_creq *r = NULL;
        nitem *batch = NULL;
        nti_xitem *xbatch = NULL;
        int xkind = 0;
        size_t nb = 0;
        nti_mtx_lock(&p->mtx);
        if (p->retired || p->closed) {
            nti_mtx_unlock(&p->mtx);
            return;
        }
        uint64_t now = nti_clock_ms();
        bool want_batch = p->nh != NULL && p->batches < NBATCH &&
                          now >= p->retry_at;
        bool want_x[2];
        for (int k = 0; k < 2; k++) {
            want_x[k] = p->xq[k].h != NULL && p->xq[k].batches < NBATCH &&
                        now >= p->xq[k].retry_at &&
                        (k != XQ_CALLS || p->xq[k].inflight <
                                              tp->cfg.max_peer_inflight);
        }
        if (p->gh == NULL && p->qh == NULL && !want_batch && !want_x[0] &&
            !want_x[1]) {
            nti_mtx_unlock(&p->mtx);
            return;
        }
        cctx *c = ctx_take(p, p->gh != NULL);
        if (c == NULL) {
            nti_mtx_unlock(&p->mtx);
            return;
        }
        if (p->gh != NULL) {
            r = p->gh;
            p->gh = r->next;
            if (p->gh == NULL) {
                p->gt = NULL;
            }
            p->gn--;
            r->next = NULL;
        } else if (p->qh != NULL) {
            r = p->qh;
            p->qh = r->next;
            if (p->qh == NULL) {
                p->qt = NULL;
            }
            p->qn--;
            r->next = NULL;
        } else if (want_x[XQ_RESULTS] || want_x[XQ_CALLS]) {
            /* Results first: they finish calls already running. */
            xkind = want_x[XQ_RESULTS] ? XQ_RESULTS : XQ_CALLS;
            xbatch = xbatch_take(p, xkind, &nb);
        } else {
            /* A batch: same destination, bounded items and bytes. */
            size_t bytes = 0;
            nitem **tail = &batch;
            while (p->nh != NULL && nb < BATCH_ITEMS) {
                nitem *it = p->nh;
                size_t sz = nitem_size(it);
                if (nb > 0 && (bytes + sz > batch_bytes(tp) ||
                               memcmp(it->dest, batch->dest, NTI_ID_LEN) ||
                               it->dest_boot != batch->dest_boot)) {
                    break;
                }
                p->nh = it->next;
                it->next = NULL;
                *tail = it;
                tail = &it->next;
                bytes += sz;
                nb++;
            }
            if (p->nh == NULL) {
                p->nt = NULL;
            }
            p->nn -= nb;
            p->inflight_items += nb;
            p->batches++;
        }
        c->state = C_SEND;
        c->req = r;
        c->batch = batch;
        c->xbatch = xbatch;
        c->xkind = xkind;
        c->nbatch = nb;
        p->last_used = nti_clock_ms();
        p->sending++;
        nti_mtx_unlock(&p->mtx);

        nng_msg *m = NULL;
        int rv;
        nti_kind_wire kind = batch != NULL ? NTI_K_NOTIFY
                             : xbatch != NULL
                                 ? (xkind == XQ_CALLS ? NTI_K_RPC : NTI_K_REPLY)
                             : r->channel == NTI_CH_GOSSIP ? NTI_K_GOSSIP
                             : r->len > 1 ? kind_of_type(r->frame[1])
                                          : NTI_K_INFO;
        if (batch != NULL) {
            rv = batch_msg(tp, batch, nb, &c->seq, &m);
        } else if (xbatch != NULL) {
            rv = xbatch_msg(tp, xkind, xbatch, nb, &c->seq, &m);
            if (xkind == XQ_CALLS) {
                atomic_fetch_add_explicit(&tp->st_call_frames, 1,
                                          memory_order_relaxed);
                atomic_fetch_add_explicit(&tp->st_calls, nb,
                                          memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&tp->st_late, nb,
                                          memory_order_relaxed);
            }
        } else if (r->channel == NTI_CH_GOSSIP) {
            rv = nng_msg_alloc(&m, 1 + r->len) == 0 ? NT_OK : NT_ENOMEM;
            if (rv == NT_OK) {
                uint8_t *b = nng_msg_body(m);
                b[0] = NTI_CH_GOSSIP;
                memcpy(b + 1, r->frame, r->len);
            }
            c->seq = 0;
        } else {
            rv = seal_msg(tp, NTI_CH_DATA, r->frame, r->len, &m);
            c->seq = r->seq;
        }
        if (r != NULL) {
            free(r->frame);
            r->frame = NULL;
        }
        if (rv != NT_OK) {
            peer_sent(p);
            if (batch != NULL) {
                batch_settle(p, c, 0, false);
            }
            if (xbatch != NULL) {
                xbatch_settle(p, c, rv, NULL, NULL, 0, false);
            }
            ctx_release(p, c, 0);
            if (r != NULL) {
                r->done(r, rv, NULL, NULL, 0);
            }
            continue;
        }
        atomic_fetch_add_explicit(&tp->st_bytes_out, nng_msg_len(m),
                                  memory_order_relaxed);
        count_kind(tp, 1, kind, nng_msg_len(m));
        nng_aio_set_msg(c->aio, m);
        nng_ctx_send(c->ctx, c->aio);
        peer_sent(p);
    }
}

int
nti_peer_submit(nti_peer *p, nti_creq *r)
{
    if (r->len + 1 + GSP_SEAL_OVERHEAD > p->tp->cfg.max_frame + 1) {
        return NT_EMSGSIZE;
    }
    nti_mtx_lock(&p->mtx);
    if (p->retired || p->closed) {
        nti_mtx_unlock(&p->mtx);
        return NT_EUNREACHABLE;
    }
    bool gossip = r->channel == NTI_CH_GOSSIP;
    if ((gossip ? p->gn : p->qn) >= MAX_QUEUED_REQS) {
        nti_mtx_unlock(&p->mtx);
        return NT_EAGAIN;
    }
    r->next = NULL;
    r->sent = false;
    nti_creq **head = gossip ? &p->gh : &p->qh;
    nti_creq **tail = gossip ? &p->gt : &p->qt;
    if (*tail != NULL) {
        (*tail)->next = r;
    } else {
        *head = r;
    }
    *tail = r;
    *(gossip ? &p->gn : &p->qn) += 1;
    nti_mtx_unlock(&p->mtx);
    peer_kick(p);
    return NT_OK;
}

int
nti_peer_reserve(nti_peer *p, unsigned n)
{
    int rv = NT_OK;
    nti_mtx_lock(&p->mtx);
    if (p->retired || p->closed) {
        rv = NT_EUNREACHABLE;
    } else if (p->nn + p->reserved + p->inflight_items + n >
               p->tp->cfg.queue_depth) {
        rv = NT_EAGAIN;
    } else {
        p->reserved += n;
    }
    nti_mtx_unlock(&p->mtx);
    return rv;
}

void
nti_peer_unreserve(nti_peer *p, unsigned n)
{
    nti_mtx_lock(&p->mtx);
    p->reserved -= n;
    nti_mtx_unlock(&p->mtx);
}

int
nti_peer_notify(nti_peer *p, nti_msg *m, const uint8_t *dest,
                uint64_t dest_boot, const uint64_t *regs, size_t nregs)
{
    nitem *it = malloc(sizeof(*it) + nregs * sizeof(uint64_t));
    if (it == NULL) {
        nti_peer_unreserve(p, 1);
        return NT_ENOMEM;
    }
    nti_msg_hold(m);
    it->m = m;
    it->next = NULL;
    memcpy(it->dest, dest, NTI_ID_LEN);
    it->dest_boot = dest_boot;
    it->nregs = (uint16_t)nregs;
    memcpy(it->regs, regs, nregs * sizeof(uint64_t));
    nti_mtx_lock(&p->mtx);
    p->reserved--;
    if (p->nt != NULL) {
        p->nt->next = it;
    } else {
        p->nh = it;
    }
    p->nt = it;
    p->nn++;
    nti_mtx_unlock(&p->mtx);
    peer_kick(p);
    return NT_OK;
}

int
nti_peer_call(nti_peer *p, nti_xitem *x)
{
    if (p->tp->reply_to[0] == '\0') {
        return NT_EINVAL;
    }
    if (x->len + 1024 > batch_bytes(p->tp)) {
        return NT_EMSGSIZE;
    }
    x->next = NULL;
    x->tries = 0;
    nti_mtx_lock(&p->mtx);
    if (p->retired || p->closed) {
        nti_mtx_unlock(&p->mtx);
        return NT_EUNREACHABLE;
    }
    xqueue *q = &p->xq[XQ_CALLS];
    if (q->n >= MAX_QUEUED_REQS) {
        nti_mtx_unlock(&p->mtx);
        return NT_EAGAIN;
    }
    if (q->t != NULL) {
        q->t->next = x;
    } else {
        q->h = x;
    }
    q->t = x;
    q->n++;
    nti_mtx_unlock(&p->mtx);
    peer_kick(p);
    return NT_OK;
}

void
nti_peer_results(nti_peer *p, nti_xitem *x)
{
    x->next = NULL;
    x->tries = 0;
    nti_mtx_lock(&p->mtx);
    xqueue *q = &p->xq[XQ_RESULTS];
    if (p->retired || p->closed || q->n >= MAX_QUEUED_REQS ||
        x->len + 1024 > batch_bytes(p->tp)) {
        /* The caller's deadline (or peer loss) ends its wait. */
        nti_mtx_unlock(&p->mtx);
        xitem_free(x);
        return;
    }
    if (q->t != NULL) {
        q->t->next = x;
    } else {
        q->h = x;
    }
    q->t = x;
    q->n++;
    nti_mtx_unlock(&p->mtx);
    peer_kick(p);
}

/* ---- maintenance ----------------------------------------------------------- */

/* Cancels receives posted before the last connection loss (all of them
 * with all: the peer is retired). */
static void
peer_reset(nti_peer *p, bool all)
{
    nng_aio *cancel[MAX_CTX_CAP];
    size_t n = 0;
    nti_mtx_lock(&p->mtx);
    p->reset_pending = false;
    for (cctx *c = p->all; c != NULL; c = c->next_all) {
        if (c->state == C_RECV && (all || c->gen < p->gen) &&
            n < MAX_CTX_CAP) {
            cancel[n++] = c->aio;
        }
    }
    p->sending++;
    nti_mtx_unlock(&p->mtx);
    /* Safe: each of these has completed its send (nng#1702). */
    for (size_t i = 0; i < n; i++) {
        nng_aio_cancel(cancel[i]);
    }
    peer_sent(p);
}

/* Fails everything queued on a retired peer. */
static void
peer_fail_queued(nti_peer *p)
{
    nti_tp *tp = p->tp;
    nti_mtx_lock(&p->mtx);
    nti_creq *r = p->qh;
    if (p->gh != NULL) { /* gossip first, then the rest */
        p->gt->next = r;
        r = p->gh;
    }
    nitem *it = p->nh;
    size_t nn = p->nn;
    nti_xitem *xc = p->xq[XQ_CALLS].h, *xr = p->xq[XQ_RESULTS].h;
    for (int k = 0; k < 2; k++) {
        p->xq[k].h = p->xq[k].t = NULL;
        p->xq[k].n = 0;
    }
    p->qh = p->qt = NULL;
    p->qn = 0;
    p->gh = p->gt = NULL;
    p->gn = 0;
    p->nh = p->nt = NULL;
    p->nn = 0;
    nti_mtx_unlock(&p->mtx);
    while (r != NULL) {
        nti_creq *next = r->next;
        free(r->frame);
        r->frame = NULL;
        r->done(r, NT_EUNREACHABLE, NULL, NULL, 0);
        r = next;
    }
    atomic_fetch_add_explicit(&tp->st_notify_unacked, nn,
                              memory_order_relaxed);
    while (it != NULL) {
        nitem *next = it->next;
        nitem_free(it);
        it = next;
    }
    while (xc != NULL) {
        nti_xitem *next = xc->next;
        xc->next = NULL;
        free(xc->body);
        xc->body = NULL;
        xc->done(xc, -1, NT_EUNREACHABLE, NULL);
        xc = next;
    }
    while (xr != NULL) {
        nti_xitem *next = xr->next;
        xitem_free(xr);
        xr = next;
    }
}

/* Closes the socket and frees the contexts.  Not from a callback. */
static void
peer_close(nti_peer *p)
{
    nti_mtx_lock(&p->mtx);
    p->closed = true;
    p->retired = true;
    nti_cv_broadcast(&p->cv);
    /* No thread may be about to call nng on this socket. */
    while (p->sending > 0) {
        nti_cv_wait(&p->cv, &p->mtx);
    }
    nti_mtx_unlock(&p->mtx);
    peer_fail_queued(p);
    /* Completes every pending aio with NNG_ECLOSED. */
    if (!sock_close(p->tp, p->sock)) {
        p->abandoned = true;
        return;
    }
    cctx *c = p->all;
    while (c != NULL) {
        cctx *next = c->next_all;
        nng_aio_free(c->aio); /* waits for its callback */
        free(c);
        c = next;
    }
    p->all = NULL;
    p->free = NULL;
    peer_fail_queued(p);
}

static void
maint_main(void *arg)
{
    nti_tp *tp = arg;
    nti_thr_setname("nt-transport");
    nti_mtx_lock(&tp->peers_mtx);
    while (!tp->stop) {
        nti_cv_wait_until(&tp->maint_cv, &tp->peers_mtx,
                          nti_clock_ms() + MAINT_MS);
        if (tp->stop) {
            break;
        }
        uint64_t now = nti_clock_ms();
        nti_peer **pp = &tp->peers;
        while (*pp != NULL) {
            nti_peer *p = *pp;
            nti_mtx_lock(&p->mtx);
            bool reset = p->reset_pending;
            bool retry = (p->nh != NULL && now >= p->retry_at) ||
                         (p->xq[XQ_RESULTS].h != NULL &&
                          now >= p->xq[XQ_RESULTS].retry_at);
            bool idle = atomic_load(&p->refs) == 1 && p->qh == NULL &&
                        p->gh == NULL &&
                        p->nh == NULL && p->batches == 0 &&
                        p->xq[0].h == NULL && p->xq[0].batches == 0 &&
                        p->xq[1].h == NULL && p->xq[1].batches == 0 &&
                        now - p->last_used > IDLE_RETIRE_MS;
            if (idle && !p->retired) {
                p->retired = true;
                p->retired_at = now;
            }
            bool retired = p->retired, closed = p->closed;
            bool drain = retired && !p->drained;
            p->drained = p->drained || retired;
            /* A retired socket is closed only after a grace period: closing
             * one while its remote is tearing the connection down can hang
             * nng 1.5.2 (see sock_close). */
            bool close_now = retired && !closed &&
                             now - p->retired_at >= RETIRE_GRACE_MS;
            bool gone = closed && atomic_load(&p->refs) == 1;
            nti_mtx_unlock(&p->mtx);
            nti_mtx_unlock(&tp->peers_mtx);
            if (drain) {
                /* Retired: nothing more will be answered or sent. */
                peer_reset(p, true);
                peer_fail_queued(p);
            } else if (reset) {
                peer_reset(p, false);
            }
            if (retry && !retired) {
                peer_kick(p);
            }
            if (close_now) {
                peer_close(p);
            }
            nti_mtx_lock(&tp->peers_mtx);
            if (gone && !p->abandoned) {
                *pp = p->next;
                nti_htab_remove(&tp->peer_tab, &p->hn);
                nti_cv_fini(&p->cv);
                nti_mtx_fini(&p->mtx);
                free(p);
                continue;
            }
            pp = &p->next;
        }
    }
    nti_mtx_unlock(&tp->peers_mtx);
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* Server connections: refuse past max_conns before the socket sees them
 * (closing a pipe in ADD_PRE is how nng rejects one). */
static void
srv_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    nti_tp *tp = arg;
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        if (atomic_load(&tp->conns) >= tp->cfg.max_conns) {
            count_drop(tp, NTI_DROP_CONN_LIMIT);
            nng_pipe_close(pipe);
        }
    } else if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_fetch_add(&tp->conns, 1);
    } else {
        unsigned c = atomic_load(&tp->conns);
        while (c > 0 && !atomic_compare_exchange_weak(&tp->conns, &c, c - 1)) {
        }
    }
}

static int
tp_listen(nti_tp *tp)
{
    char url[GSP_ADDR_MAX + 16], host[GSP_ADDR_MAX + 1];
    unsigned port;
    int rv = make_url(tp->cfg.listen, url, sizeof(url));
    if (rv != NT_OK ||
        nti_addr_parse(tp->cfg.listen, host, sizeof(host), &port) != NT_OK) {
        return NT_EADDR;
    }
    if ((rv = nng_rep0_open(&tp->srv)) != 0) {
        return nng_to_nt(rv);
    }
    tp->has_srv = true;
    nng_socket_set_size(tp->srv, NNG_OPT_RECVMAXSZ, nng_cap(tp));
    nng_pipe_notify(tp->srv, NNG_PIPE_EV_ADD_PRE, srv_pipe_cb, tp);
    nng_pipe_notify(tp->srv, NNG_PIPE_EV_ADD_POST, srv_pipe_cb, tp);
    nng_pipe_notify(tp->srv, NNG_PIPE_EV_REM_POST, srv_pipe_cb, tp);
    nng_listener l;
    if ((rv = nng_listener_create(&l, tp->srv, url)) != 0) {
        return NT_EADDR;
    }
    nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, nng_cap(tp));
    if ((rv = nng_listener_start(l, 0)) != 0) {
        return rv == NNG_ENOMEM ? NT_ENOMEM : NT_EADDR;
    }
    int bound = 0;
    if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &bound) != 0) {
        bound = (int)port;
    }
    if (strchr(host, ':') != NULL) {
        snprintf(tp->address, sizeof(tp->address), "[%s]:%d", host, bound);
    } else {
        snprintf(tp->address, sizeof(tp->address), "%s:%d", host, bound);
    }
    for (int i = 0; i < NRECV; i++) {
        srv_add_receiver(tp);
    }
    return NT_OK;
}

int
nti_tp_alloc(nti_tp **out, const nti_tp_config *cfg)
{
    nti_tp *tp = calloc(1, sizeof(*tp));
    if (tp == NULL) {
        return NT_ENOMEM;
    }
    tp->cfg = *cfg;
    memcpy(tp->self_id, cfg->self_id, NTI_ID_LEN);
    tp->cfg.self_id = tp->self_id;
    tp->log = *cfg->log;
    nti_rwlock_init(&tp->kr_lock);
    nti_mtx_init(&tp->srv_mtx);
    nti_cv_init(&tp->srv_cv);
    nti_mtx_init(&tp->peers_mtx);
    nti_cv_init(&tp->maint_cv);
    nti_mtx_init(&tp->replay_mtx);
    nti_htab_init(&tp->peer_tab);
    nti_htab_init(&tp->replay);
    int rv = nti_thr_create(&tp->maint, maint_main, tp);
    if (rv != NT_OK) {
        goto fail_thr;
    }
    if (cfg->listen != NULL && (rv = tp_listen(tp)) != NT_OK) {
        nti_tp_free(tp);
        return rv;
    }
    *out = tp;
    return NT_OK;

fail_thr:
    nti_htab_fini(&tp->peer_tab);
    nti_htab_fini(&tp->replay);
    nti_mtx_fini(&tp->replay_mtx);
    nti_cv_fini(&tp->maint_cv);
    nti_mtx_fini(&tp->peers_mtx);
    nti_mtx_fini(&tp->srv_mtx);
    nti_rwlock_fini(&tp->kr_lock);
    free(tp);
    return rv;
}

const char *
nti_tp_address(const nti_tp *tp)
{
    return tp->has_srv ? tp->address : NULL;
}

/* Transports whose sockets never finished closing (see sock_close): kept
 * so that nng's late callbacks find live memory. */
static struct {
    nti_mtx mtx; /* guards head */
    nti_tp *head;
} abandoned = { NTI_MTX_INITIALIZER, NULL };

void
nti_tp_free(nti_tp *tp)
{
    if (tp == NULL) {
        return;
    }
    /* The maintenance thread stops first (finishing any close it is in),
     * so that from here on one thread closes sockets. */
    nti_mtx_lock(&tp->peers_mtx);
    tp->stop = true;
    nti_cv_signal(&tp->maint_cv);
    nti_mtx_unlock(&tp->peers_mtx);
    nti_thr_join(&tp->maint);
    bool keep = false;
    /* Server: the node has answered every held request; give those
     * answers a moment to leave before the socket goes. */
    if (tp->has_srv) {
        uint64_t flush_by = nti_clock_ms() + FLUSH_MS;
        nti_mtx_lock(&tp->srv_mtx);
        tp->srv_closing = true;
        /* No callback enters the node from now on; wait for those inside
         * (they only decode and queue), then for the answers to leave. */
        tp->ops_off = true;
        while (tp->ops_busy > 0) {
            nti_cv_wait(&tp->srv_cv, &tp->srv_mtx);
        }
        while (tp->srv_sending > 0 &&
               nti_cv_wait_until(&tp->srv_cv, &tp->srv_mtx, flush_by)) {
        }
        nti_mtx_unlock(&tp->srv_mtx);
        if (sock_close(tp, tp->srv)) {
            nti_sreq *s = tp->srv_all;
            while (s != NULL) {
                nti_sreq *next = s->next_all;
                nng_aio_free(s->aio);
                free(s);
                s = next;
            }
            tp->srv_all = NULL;
        } else {
            keep = true;
        }
    }
    /* nng 1.5.2 leaks a connection closed in the middle of its handshake:
     * give a young peer's first connection a moment (100 ms in all) to
     * finish before closing.  A peer that cannot connect costs that wait
     * once; nothing is waited for otherwise. */
    uint64_t settle_by = nti_clock_ms() + 100;
    for (nti_peer *p = tp->peers; p != NULL; p = p->next) {
        nti_mtx_lock(&p->mtx);
        bool young = !p->ever_connected && !p->closed &&
                     nti_clock_ms() - p->created_at < 2000;
        nti_mtx_unlock(&p->mtx);
        if (young) {
            nti_peer_wait_connected(p, settle_by);
        }
    }
    for (nti_peer *p = tp->peers; p != NULL; p = p->next) {
        if (!p->closed) {
            peer_close(p);
        }
        keep = keep || p->abandoned;
    }
    if (keep) {
        nti_mtx_lock(&abandoned.mtx);
        tp->next_abandoned = abandoned.head;
        abandoned.head = tp;
        nti_mtx_unlock(&abandoned.mtx);
        return;
    }
    nti_peer *p = tp->peers;
    while (p != NULL) {
        nti_peer *next = p->next;
        nti_cv_fini(&p->cv);
        nti_mtx_fini(&p->mtx);
        free(p);
        p = next;
    }
    rwin *w;
    for (size_t i = 0; i < tp->replay.nslots; i++) {
        nti_hnode *n = tp->replay.slots[i];
        while (n != NULL) {
            nti_hnode *next = n->next;
            w = (rwin *)n;
            free(w);
            n = next;
        }
    }
    nti_htab_fini(&tp->peer_tab);
    nti_htab_fini(&tp->replay);
    nti_mtx_fini(&tp->replay_mtx);
    nti_cv_fini(&tp->maint_cv);
    nti_mtx_fini(&tp->peers_mtx);
    nti_cv_fini(&tp->srv_cv);
    nti_mtx_fini(&tp->srv_mtx);
    nti_rwlock_fini(&tp->kr_lock);
    free(tp);
}

void
nti_tp_keyring_wrlock(nti_tp *tp)
{
    nti_rwlock_wrlock(&tp->kr_lock);
}

void
nti_tp_keyring_unlock(nti_tp *tp)
{
    nti_rwlock_unlock(&tp->kr_lock);
}

void
nti_tp_count_notify_in(nti_tp *tp, uint64_t n)
{
    atomic_fetch_add_explicit(&tp->st_notify_in, n, memory_order_relaxed);
}

void
nti_tp_stats_get(nti_tp *tp, nti_tp_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->frames_in = atomic_load(&tp->st_frames_in);
    st->bytes_in = atomic_load(&tp->st_bytes_in);
    st->frames_out = atomic_load(&tp->st_frames_out);
    st->bytes_out = atomic_load(&tp->st_bytes_out);
    for (int i = 0; i < NTI_DROP_COUNT; i++) {
        st->drops[i] = atomic_load(&tp->st_drops[i]);
    }
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < NTI_K_COUNT; k++) {
            st->kframes[d][k] = atomic_load(&tp->st_kframes[d][k]);
            st->kbytes[d][k] = atomic_load(&tp->st_kbytes[d][k]);
        }
    }
    st->notify_in = atomic_load(&tp->st_notify_in);
    st->rejected_by_peer = atomic_load(&tp->st_rejected);
    st->notify_sent = atomic_load(&tp->st_notify_sent);
    st->notify_unacked = atomic_load(&tp->st_notify_unacked);
    st->notify_retried = atomic_load(&tp->st_notify_retried);
    st->connects = atomic_load(&tp->st_connects);
    st->disconnects = atomic_load(&tp->st_disconnects);
    st->requests_held = atomic_load(&tp->held);
    st->call_frames_sent = atomic_load(&tp->st_call_frames);
    st->calls_sent = atomic_load(&tp->st_calls);
    st->results_late_sent = atomic_load(&tp->st_late);
    st->conns = atomic_load(&tp->conns);
    nti_mtx_lock(&tp->peers_mtx);
    for (nti_peer *p = tp->peers; p != NULL; p = p->next) {
        nti_mtx_lock(&p->mtx);
        if (!p->retired) {
            st->peers++;
        }
        st->notify_queued += p->nn;
        nti_mtx_unlock(&p->mtx);
    }
    nti_mtx_unlock(&tp->peers_mtx);
}
