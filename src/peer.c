/* SPDX-License-Identifier: MIT */
/*
 * Transport, client side (see transport.h and docs/PROTOCOL.md): one peer
 * per remote address, its queues of requests, notification batches and
 * batched calls and results, and the maintenance thread.  The server side
 * and the lifecycle are in transport.c.
 *
 * Design notes
 * ------------
 * Client.  One peer per remote address: a req0 socket, one dialer (nng
 * reconnects it with exponential backoff and full jitter), and up to
 * max_peer_inflight contexts.  A context runs one request at a time, strictly send
 * then receive: the receive is posted only once the send has completed, so
 * a receive is never cancelled while its send is pending (nng#1702).  The
 * send is first tried inline with a zero-timeout aio that has no callback
 * (ctx_send): when a connection is ready it completes at once and the
 * receive is posted by the sender, sparing the hop to nng's task thread
 * that a callback's completion costs; otherwise the callback aio sends and
 * its completion posts the receive.  The
 * work waiting for a context is a FIFO of requests (calls, gossip, info)
 * and a queue of notifications that leave in batches (at most NBATCH in
 * flight).
 *
 * Two batches in flight.  With one, the publisher and the subscriber took
 * turns; with two, the next batch travels and is opened while the last is
 * queued.  Order is kept by the receiver (cluster.c, srv_notify): every
 * NOTIFY carries in its header's ref the seq of the batch sent to this
 * peer just before it if that one's ack was not processed yet (tail_seq,
 * tail_open), else 0; the receiver queues it only after that batch, and
 * refuses it whole if it refused that batch even in part.  Refused chunks
 * go back to the queue in creation order (cno), so a refused rest leaves
 * before the batch after it.  After a refusal (ncap) one batch at a time
 * again.  Seqs are taken under the peer's lock, so a batch's predecessor
 * is known even while two threads seal them at once.
 *
 * Notification chunks.  A notification is encoded once, by the publishing
 * thread, straight into the tail chunk of its peer's queue (under the
 * peer's lock): a queued notification costs no allocation and no
 * reference of its own, and nothing is left for the sender to walk.  A
 * chunk is one batch (one destination, BATCH_ITEMS items, batch_bytes()
 * bytes); the next item that does not fit opens a new chunk.  The sender
 * takes the head chunk whole, writes the frame header and item count into
 * the room before its first unacked item and seals it from there.  An ack
 * for k items advances the chunk's first; a refused rest (the receiver's
 * queue was full) goes back to the head of the queue as it is.  One
 * emptied chunk per peer is kept for reuse.
 *
 * Sealing ahead.  With one batch in flight (NBATCH), sealing the next
 * batch when the last one's ack arrives put ~110 us per 1024-item batch
 * between the two (a quarter of the cycle).  So when a publisher
 * completes the head chunk while a batch is in flight (the chunk is full,
 * or the peer's queue is, so nothing can join it before the ack), it
 * seals that chunk right away, outside the lock (the chunk is marked
 * sealing: no one sends, extends or frees it meanwhile; peer_fail_queued
 * waits for it; later items open a new chunk), and the sender sends the
 * sealed frame as it is when the ack comes.  The frame is
 * sealed again if what would be sent changed (a refusal capped the
 * batch), or it waited longer than PRESEAL_MAX_MS or behind
 * PRESEAL_MAX_SEQS other frames (a retired key, the receiver's replay
 * window).  Its sequence number is older than frames sent meanwhile; the
 * replay window accepts that (it only refuses a number seen twice or one
 * older than the window).
 *
 * Holding.  With the line free, a batch leaves with whatever is queued,
 * and under a fast stream to several peers the acks come back so soon
 * that batches stay small (~200 items at 1.5 M/s to four peers): the
 * fixed cost per frame (wake-ups and system calls in both processes, an
 * ack) then dominates.  So a peer that receives at least HOLD_RATE
 * notifications per ms (smoothed over the last batches) gets a batch that
 * is not full (fewer than HOLD_ITEMS items, and no chunk behind it) only
 * once it has been held HOLD_MS: the maintenance thread, woken for it,
 * sends it then, and the publisher that fills it sends it at once.  Below
 * that rate, or after a pause of HOLD_IDLE_MS, nothing is held: a lone
 * notification, or a moderate stream, leaves at once.  The cost is up to
 * HOLD_MS more latency for items of a fast stream.
 *
 * Calls are held the same way, for a different reason.  With many calls
 * in flight, a CALLS_ACK completes a dozen calls at once; their callbacks
 * run on the workers one by one and typically make the next calls.  The
 * first of those took the frame slot the ack freed and left alone, and
 * the rest waited a whole round trip for the next slot: half the call
 * frames carried one to four calls.  So while another call frame is in
 * flight and the node reports callbacks still queued (ops.calls_coming),
 * a frame of fewer than CALL_HOLD_ITEMS calls waits: until those
 * callbacks have run (nti_tp_calls_idle, from the last of them), or
 * HOLD_MS.  A lone call, or calls made while none is in flight, are never
 * held, so call latency does not change.
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
 * Lock order: peers_mtx -> peer.mtx -> kr_lock (leaf), as in transport.c.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "platform/platform.h"
#include "transport_impl.h"

/* ---- client: peers -------------------------------------------------------- */

static void cctx_cb(void *arg);
static void ctx_sent(nti_peer *p, cctx *c);
static void peer_kick(nti_peer *p);
static void peer_sent(nti_peer *p);
static nchunk *seal_ahead_take(nti_peer *p);
static bool calls_held(nti_peer *p, uint64_t now_us, bool *arm);
static bool seal_ahead(nti_peer *p, nchunk *h);

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
    if (tp->cfg.ops.peer_event != NULL && nti_tp_ops_enter(tp)) {
        tp->cfg.ops.peer_event(tp->cfg.ops_arg, p, up);
        nti_tp_ops_leave(tp);
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
    int rv;
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
    /* Only a new peer's address needs checking: those in the table were. */
    if ((rv = nti_make_url(addr, url, sizeof(url))) != NT_OK) {
        nti_mtx_unlock(&tp->peers_mtx);
        return rv;
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
    nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, nti_nng_cap(tp));
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 100);
    nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 5000);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, p);
    nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_cb, p);
    if ((rv = nng_dialer_create(&d, p->sock, url)) != 0) {
        nti_sock_close(tp, p->sock);
        goto fail;
    }
    nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, nti_nng_cap(tp));
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        nti_sock_close(tp, p->sock);
        goto fail;
    }
    p->hn.hash = k;
    if (nti_htab_insert(&tp->peer_tab, &p->hn) != NT_OK) {
        nti_sock_close(tp, p->sock);
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
    return nti_nng_to_nt(rv);
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
chunk_free(nchunk *ch)
{
    if (ch != NULL) {
        if (ch->sealed != NULL) {
            nng_msg_free(ch->sealed);
        }
        free(ch->buf);
        free(ch);
    }
}

static void
chunks_free(nchunk *ch)
{
    while (ch != NULL) {
        nchunk *next = ch->next;
        chunk_free(ch);
        ch = next;
    }
}

/* Writes the NOTIFY header and item count into the room before the
 * chunk's first unacked item (acked items' bytes are no longer needed)
 * and seals the frame of its next nb items from there. */
static int
batch_msg(nti_tp *tp, nchunk *ch, size_t nb, uint64_t prev, uint64_t seq,
          nng_msg **out)
{
    size_t start = ch->off[ch->first] - CHUNK_HEAD;
    uint8_t *pt = ch->buf + start;
    size_t len = ch->off[ch->first + nb] - start;
    nti_tp_hdr_seq(tp, NTI_T_NOTIFY, ch->dest, ch->dest_boot, prev, seq, pt);
    gsp_wr w;
    gsp_wr_init(&w, pt + NTI_HDR_LEN, 4);
    gsp_wr_u32(&w, (uint32_t)nb);
    return nti_seal_msg(tp, NTI_CH_DATA, pt, len, out);
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
    int rv = nti_seal_msg(tp, NTI_CH_DATA, pt, len, out);
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
    size_t nb = c->nbatch, nlater = 0;
    nti_mtx_lock(&p->mtx);
    p->xq[kind].batches--;
    if (kind == XQ_RESULTS) {
        p->xq[kind].inflight -= nb;
    }
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
                nlater++; /* in flight until nti_peer_call_release */
                x->done(x, NTI_CA_LATER, NT_OK, NULL);
            } else {
                x->done(x, -1, NT_EPROTO, NULL);
            }
        } else {
            x->done(x, -1, lost, NULL);
        }
        x = next;
    }
    nti_mtx_lock(&p->mtx);
    p->xq[XQ_CALLS].inflight -= nb - nlater;
    nti_mtx_unlock(&p->mtx);
}

void
nti_peer_call_release(nti_peer *p, bool kick)
{
    nti_mtx_lock(&p->mtx);
    p->xq[XQ_CALLS].inflight--;
    nti_mtx_unlock(&p->mtx);
    if (kick) {
        peer_kick(p);
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
    if (nng_aio_alloc(&c->saio, NULL, NULL) != 0) {
        nng_aio_free(c->aio);
        free(c);
        return NULL;
    }
    nng_aio_set_timeout(c->saio, NNG_DURATION_ZERO);
    if (nng_ctx_open(&c->ctx, p->sock) != 0) {
        nng_aio_free(c->saio);
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
    nchunk *ch = c->batch;
    size_t sent = c->nbatch, nrest = sent - acked;
    c->batch = NULL;
    ch->first += (uint32_t)acked;
    atomic_fetch_add_explicit(&tp->st_notify_sent, acked,
                              memory_order_relaxed);
    nti_mtx_lock(&p->mtx);
    p->batches--;
    p->inflight_items -= sent;
    if (p->tail_open && p->tail_seq == c->seq) {
        p->tail_open = false;
    }
    if (nrest > 0 && requeue && !p->retired) {
        /* Refused in part: the rest is resent after RETRY_MS, and the
         * next batches hold about twice what the peer took, so that a
         * slow receiver does not decode a thousand items to take ten. */
        p->nn += nrest;
        p->retry_at = nti_clock_ms() + RETRY_MS;
        /* A batch refused whole keeps a cap already set: it may be the
         * batch in flight behind a refused one, refused for its sake. */
        if (acked > 0 || p->ncap == 0) {
            p->ncap = acked * 2 > NCAP_MIN ? acked * 2 : NCAP_MIN;
        }
        atomic_fetch_add_explicit(&tp->st_notify_retried, nrest,
                                  memory_order_relaxed);
        nrest = 0;
    } else if (nrest == 0 && p->ncap > 0) {
        p->ncap = p->ncap * 2 >= BATCH_ITEMS ? 0 : p->ncap * 2;
    } else if (nrest > 0) {
        ch->first += (uint32_t)nrest; /* lost (fate unknown or refused) */
    }
    if (ch->first < ch->n && !p->retired) {
        /* Not sent yet, or refused: back to the queue, before anything
         * newer (the other batch in flight may be back already). */
        nchunk **at = &p->nh;
        while (*at != NULL && (*at)->cno < ch->cno) {
            at = &(*at)->next;
        }
        ch->next = *at;
        *at = ch;
        if (ch->next == NULL) {
            p->nt = ch;
        }
        /* New items would overtake the other batch in flight. */
        ch->back = true;
        ch = NULL;
    } else if (ch->first < ch->n) {
        /* Items never sent, on a retired peer: lost like its queue
         * (still counted in nn unless peer_fail_queued counted them). */
        size_t unsent = ch->n - ch->first;
        unsent = unsent < p->nn ? unsent : p->nn;
        p->nn -= unsent;
        nrest += unsent;
    } else if (p->spare == NULL && !p->closed && ch->cap <= SPARE_CAP) {
        p->spare = ch;
        ch = NULL;
    }
    nti_mtx_unlock(&p->mtx);
    if (nrest > 0) {
        atomic_fetch_add_explicit(&tp->st_notify_unacked, nrest,
                                  memory_order_relaxed);
    }
    chunk_free(ch);
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
    nti_count_kind(tp, 0, NTI_K_REPLY, len);
    if (len >= 1 && body[0] == NTI_CH_REJECT) {
        atomic_fetch_add_explicit(&tp->st_rejected, 1, memory_order_relaxed);
        return reject_status(body, len);
    }
    if (c->req != NULL && c->req->channel == NTI_CH_GOSSIP) {
        return NT_OK; /* empty acknowledgement */
    }
    if (len < 1 || body[0] != NTI_CH_DATA) {
        nti_count_drop(tp, NTI_DROP_MALFORMED);
        return NT_EPROTO;
    }
    int d = nti_open_frame(tp, body + 1, len - 1, pt, ptlen);
    if (d != 0) {
        nti_count_drop(tp, (nti_drop)(d - 1));
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
        nti_count_drop(tp, NTI_DROP_MALFORMED);
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
            p->sending++;
            nti_mtx_unlock(&p->mtx);
            ctx_sent(p, c);
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
 * peer's socket; nti_peer_close waits for every such window to end. */
static void
peer_sent(nti_peer *p)
{
    nti_mtx_lock(&p->mtx);
    if (--p->sending == 0 && p->closed) {
        nti_cv_broadcast(&p->cv);
    }
    nti_mtx_unlock(&p->mtx);
}

/* The send of c's request succeeded: receive its reply.  In the caller's
 * sending window (p->sending counted). */
static void
ctx_sent(nti_peer *p, cctx *c)
{
    nti_mtx_lock(&p->mtx);
    c->state = C_RECV;
    c->gen = p->gen;
    if (c->req != NULL) {
        c->req->sent = true;
    }
    nti_mtx_unlock(&p->mtx);
    atomic_fetch_add_explicit(&p->tp->st_frames_out, 1, memory_order_relaxed);
    nng_ctx_recv(c->ctx, c->aio);
}

/* Sends m on c.  First inline, with the callback-less zero-timeout aio:
 * when a connection is ready, req0 hands the frame to it at once and the
 * receive is posted from here, which spares a hand-off to nng's task
 * thread per request (a callback aio's completion is always dispatched
 * there).  Else (no connection ready, or closed), the usual send with the
 * callback aio, which waits for a connection or reports the error.  Either
 * way the receive follows the send's completion (nng#1702).  In the
 * caller's sending window. */
static void
ctx_send(nti_peer *p, cctx *c, nng_msg *m)
{
    nng_aio_set_msg(c->saio, m);
    nng_ctx_send(c->ctx, c->saio);
    nng_aio_wait(c->saio); /* zero timeout: done already */
    if (nng_aio_result(c->saio) == 0) {
        ctx_sent(p, c);
        return;
    }
    m = nng_aio_get_msg(c->saio); /* not taken: ours again */
    nng_aio_set_msg(c->saio, NULL);
    nng_aio_set_msg(c->aio, m);
    nng_ctx_send(c->ctx, c->aio);
}

/* One step of a hold ending at *until_us (0: none yet): a new hold starts
 * (counted in *started; *arm: the caller wakes the maintenance thread),
 * goes on, or is over (false).  Lock held. */
static bool
hold_step(uint64_t *until_us, uint64_t now_us, bool *arm,
          _Atomic uint64_t *started)
{
    if (*until_us == 0) {
        *until_us = now_us + HOLD_MS * 1000u;
        *arm = true;
        atomic_fetch_add_explicit(started, 1, memory_order_relaxed);
        return true;
    }
    if (now_us >= *until_us) {
        *until_us = 0;
        return false;
    }
    return true;
}

/* Whether the head chunk, which could leave now, is held (design notes,
 * "Holding"); *arm: the caller starts the timer.  Lock held. */
static bool
batch_held(nti_peer *p, uint64_t now_us, bool *arm)
{
    nchunk *ch = p->nh;
    /* A chunk followed by another is full (by bytes, maybe). */
    if (ch->n - ch->first >= HOLD_ITEMS || ch->next != NULL || p->ncap > 0 ||
        p->rate < HOLD_RATE ||
        (p->hold_until_us == 0 &&
         now_us - p->last_batch_us > HOLD_IDLE_MS * 1000u)) {
        p->hold_until_us = 0;
        return false;
    }
    return hold_step(&p->hold_until_us, now_us, arm, &p->tp->st_held);
}

/* Whether the call frame that could leave now is held (design notes,
 * "Holding"); *arm: the caller wakes the maintenance thread.  Lock held. */
static bool
calls_held(nti_peer *p, uint64_t now_us, bool *arm)
{
    nti_tp *tp = p->tp;
    xqueue *q = &p->xq[XQ_CALLS];
    if (q->batches == 0 || q->n >= CALL_HOLD_ITEMS ||
        tp->cfg.ops.calls_coming == NULL) {
        q->hold_until_us = 0;
        return false;
    }
    /* Set before asking, so that nti_tp_calls_idle, run after the count
     * fell to zero, sees it. */
    atomic_store(&tp->calls_held, true);
    if (!tp->cfg.ops.calls_coming(tp->cfg.ops_arg)) {
        q->hold_until_us = 0;
        return false;
    }
    return hold_step(&q->hold_until_us, now_us, arm, &tp->st_calls_held);
}

void
nti_tp_calls_idle(nti_tp *tp)
{
    if (!atomic_exchange(&tp->calls_held, false)) {
        return;
    }
    nti_peer *held[64];
    size_t n = 0;
    nti_mtx_lock(&tp->peers_mtx);
    for (nti_peer *p = tp->peers; p != NULL; p = p->next) {
        nti_mtx_lock(&p->mtx);
        bool h = p->xq[XQ_CALLS].hold_until_us != 0 && !p->closed;
        nti_mtx_unlock(&p->mtx);
        if (h && n < 64) {
            nti_peer_hold(p);
            held[n++] = p;
        } else if (h) {
            atomic_store(&tp->calls_held, true); /* the maintenance thread */
        }
    }
    nti_mtx_unlock(&tp->peers_mtx);
    for (size_t i = 0; i < n; i++) {
        peer_kick(held[i]);
        nti_peer_rele(held[i]);
    }
}

/* A batch is held from now_us: the maintenance thread wakes in time to
 * send it.  No lock held. */
static void
hold_wake(nti_tp *tp, uint64_t now_us)
{
    uint64_t due = (now_us + 999u) / 1000u + HOLD_MS;
    nti_mtx_lock(&tp->peers_mtx);
    if (due < tp->hold_due) {
        tp->hold_due = due;
        nti_cv_signal(&tp->maint_cv);
    }
    nti_mtx_unlock(&tp->peers_mtx);
}

/* Starts as much queued work as there are contexts for. */
static void
peer_kick(nti_peer *p)
{
    nti_tp *tp = p->tp;
    for (;;) {
        nti_creq *r = NULL;
        nchunk *batch = NULL;
        nti_xitem *xbatch = NULL;
        nng_msg *pre = NULL; /* a batch sealed ahead */
        uint64_t bseq = 0, prev = 0; /* a batch's seq, its predecessor's */
        nchunk *ahead = NULL; /* the next one, to seal ahead */
        int xkind = 0;
        size_t nb = 0;
        nti_mtx_lock(&p->mtx);
        if (p->retired || p->closed) {
            nti_mtx_unlock(&p->mtx);
            return;
        }
        uint64_t now_us = nti_clock_us(), now = now_us / 1000u;
        bool want_batch = p->nh != NULL && !p->nh->sealing &&
                          p->batches < (p->ncap > 0 ? 1u : NBATCH) &&
                          now >= p->retry_at;
        bool arm = false;
        if (want_batch && batch_held(p, now_us, &arm)) {
            want_batch = false;
        }
        bool want_x[2];
        for (int k = 0; k < 2; k++) {
            want_x[k] = p->xq[k].h != NULL && p->xq[k].batches < NXBATCH &&
                        now >= p->xq[k].retry_at &&
                        (k != XQ_CALLS || p->xq[k].inflight <
                                              tp->cfg.max_peer_inflight);
        }
        if (want_x[XQ_CALLS] && calls_held(p, now_us, &arm)) {
            want_x[XQ_CALLS] = false;
        }
        if (arm) {
            /* Then look again: what is held stays held. */
            nti_mtx_unlock(&p->mtx);
            hold_wake(tp, now_us);
            continue;
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
            p->xq[xkind].hold_until_us = 0;
        } else {
            /* A batch: the head chunk, out of the queue while in flight;
             * after a refusal only as many of its items as the peer may
             * take (p->ncap), the rest going back with it. */
            batch = p->nh;
            p->nh = batch->next;
            if (p->nh == NULL) {
                p->nt = NULL;
            }
            batch->next = NULL;
            nb = batch->n - batch->first;
            if (p->ncap > 0 && nb > p->ncap) {
                nb = p->ncap;
            }
            p->nn -= nb;
            p->inflight_items += nb;
            p->batches++;
            p->hold_until_us = 0;
            uint64_t dt = now_us - p->last_batch_us, rt = 1000000;
            if (dt > 0) {
                rt = nb * 1000u / dt;
                rt = rt < 1000000 ? rt : 1000000;
            }
            p->rate = (uint32_t)((p->rate * 3u + rt) / 4u);
            p->last_batch_us = now_us;
            prev = p->tail_open ? p->tail_seq : 0;
            pre = batch->sealed;
            batch->sealed = NULL;
            if (pre != NULL &&
                (batch->sealed_first != batch->first ||
                 batch->sealed_nb != nb || batch->sealed_prev != prev ||
                 now - batch->sealed_at > PRESEAL_MAX_MS ||
                 atomic_load_explicit(&tp->seq, memory_order_relaxed) -
                         batch->sealed_seq >
                     PRESEAL_MAX_SEQS)) {
                nng_msg_free(pre);
                pre = NULL;
            }
            bseq = pre != NULL ? batch->sealed_seq : nti_tp_next_seq(tp);
            p->tail_seq = bseq;
            p->tail_open = true;
            ahead = seal_ahead_take(p); /* after the tail moved */
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
                             : r->len > 1 ? nti_kind_of_type(r->frame[1])
                                          : NTI_K_INFO;
        if (pre != NULL) {
            m = pre;
            c->seq = bseq;
            rv = NT_OK;
            atomic_fetch_add_explicit(&tp->st_presealed, 1,
                                      memory_order_relaxed);
        } else if (batch != NULL) {
            c->seq = bseq;
            rv = batch_msg(tp, batch, nb, prev, bseq, &m);
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
            rv = nti_seal_msg(tp, NTI_CH_DATA, r->frame, r->len, &m);
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
            if (ahead != NULL) {
                seal_ahead(p, ahead);
            }
            continue;
        }
        atomic_fetch_add_explicit(&tp->st_bytes_out, nng_msg_len(m),
                                  memory_order_relaxed);
        nti_count_kind(tp, 1, kind, nng_msg_len(m));
        ctx_send(p, c, m);
        peer_sent(p);
        if (ahead != NULL) {
            seal_ahead(p, ahead); /* the loop looks again either way */
        }
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

/* The chunk that takes the next item of sz bytes for (dest, boot): the
 * tail, or a new one appended to the queue; NULL on out-of-memory.  Its
 * buffer has room for the item.  Lock held. */
static nchunk *
chunk_for(nti_peer *p, const uint8_t *dest, uint64_t boot, size_t sz)
{
    nchunk *ch = p->nt;
    if (ch != NULL && ch->n < BATCH_ITEMS && ch->dest_boot == boot &&
        !ch->sealing && ch->sealed == NULL && !ch->back &&
        ch->off[ch->n] - ch->off[ch->first] + sz <= batch_bytes(p->tp) &&
        memcmp(ch->dest, dest, NTI_ID_LEN) == 0) {
        size_t need = ch->off[ch->n] + sz;
        if (need > ch->cap) {
            size_t cap = ch->cap * 2 > need ? ch->cap * 2 : need;
            uint8_t *buf = realloc(ch->buf, cap);
            if (buf == NULL) {
                return NULL;
            }
            ch->buf = buf;
            ch->cap = cap;
        }
        return ch;
    }
    /* A new chunk; a single item larger than a batch gets one alone. */
    size_t need = CHUNK_HEAD + sz;
    ch = p->spare;
    if (ch != NULL && ch->cap >= need) {
        p->spare = NULL;
    } else {
        ch = malloc(sizeof(*ch));
        size_t cap = need > CHUNK_MIN_CAP ? need : CHUNK_MIN_CAP;
        uint8_t *buf = ch != NULL ? malloc(cap) : NULL;
        if (buf == NULL) {
            free(ch);
            return NULL;
        }
        ch->buf = buf;
        ch->cap = cap;
    }
    ch->next = NULL;
    memcpy(ch->dest, dest, NTI_ID_LEN);
    ch->dest_boot = boot;
    ch->n = ch->first = 0;
    ch->cno = p->next_cno++;
    ch->back = false;
    ch->sealing = false;
    ch->sealed = NULL;
    ch->off[0] = CHUNK_HEAD;
    if (p->nt != NULL) {
        p->nt->next = ch;
    } else {
        p->nh = ch;
    }
    p->nt = ch;
    return ch;
}

/* Whether the head chunk is complete (full, or followed by another, or
 * the peer's queue is full: nothing more can join it before the ack)
 * while a batch is in flight: then it is marked sealing and returned, for
 * seal_ahead once the lock is dropped.  Lock held. */
static nchunk *
seal_ahead_take(nti_peer *p)
{
    nchunk *ch = p->nh;
    if (ch == NULL || p->batches < NBATCH || p->ncap > 0 || ch->sealing ||
        ch->sealed != NULL || ch->first >= ch->n ||
        (ch->n < BATCH_ITEMS && ch->next == NULL &&
         p->nn + p->reserved + p->inflight_items < p->tp->cfg.queue_depth)) {
        return NULL;
    }
    ch->sealing = true;
    ch->sealed_seq = nti_tp_next_seq(p->tp);
    ch->sealed_prev = p->tail_open ? p->tail_seq : 0;
    p->sealing++;
    return ch;
}

/* Seals the head chunk h ahead (design notes, "Sealing ahead").  Lock not
 * held; h is ours until sealing is cleared.  True when the batch in flight
 * was settled meanwhile: the caller kicks the peer. */
static bool
seal_ahead(nti_peer *p, nchunk *h)
{
    nti_tp *tp = p->tp;
    uint32_t first = h->first, nb = h->n - h->first;
    nng_msg *m = NULL;
    int rv = batch_msg(tp, h, nb, h->sealed_prev, h->sealed_seq, &m);
    nti_mtx_lock(&p->mtx);
    h->sealing = false;
    if (rv == NT_OK) {
        h->sealed = m;
        h->sealed_first = first;
        h->sealed_nb = nb;
        h->sealed_at = nti_clock_ms();
    }
    if (--p->sealing == 0) {
        nti_cv_broadcast(&p->cv);
    }
    /* The ack may have come while we sealed, and found h busy. */
    bool kick = p->batches < NBATCH;
    nti_mtx_unlock(&p->mtx);
    return kick;
}

/* Queues one notification; with reserved, it uses a reservation taken
 * before, else it is admitted here against the queue depth (NT_EAGAIN). */
static int
peer_notify(nti_peer *p, const nti_msg *m, const uint8_t *dest,
            uint64_t dest_boot, const uint64_t *regs, size_t nregs,
            bool reserved)
{
    size_t sz = nti_wire_msg_size(NTI_T_NOTIFY, m->from, m->object, m->cmd,
                                  nregs, m->len);
    int rv = NT_OK;
    nti_mtx_lock(&p->mtx);
    nchunk *ch = NULL, *ahead = NULL;
    if (reserved) {
        p->reserved--;
    }
    if (p->retired || p->closed) {
        rv = NT_EUNREACHABLE;
    } else if (!reserved && p->nn + p->reserved + p->inflight_items + 1 >
                                p->tp->cfg.queue_depth) {
        rv = NT_EAGAIN;
    } else if ((ch = chunk_for(p, dest, dest_boot, sz)) == NULL) {
        rv = NT_ENOMEM;
    } else {
        gsp_wr w;
        gsp_wr_init(&w, ch->buf + ch->off[ch->n], sz);
        nti_wire_msg_put(&w, NTI_T_NOTIFY, 0, 0, m->from, m->id, m->object,
                         m->cmd, regs, nregs, m->data, m->len);
        ch->off[ch->n + 1] = ch->off[ch->n] + (uint32_t)sz;
        ch->n++;
        p->nn++;
        ahead = seal_ahead_take(p);
    }
    /* With every batch slot taken, the next completion sends this; a
     * refused batch's retry is the maintenance thread's; a held batch
     * leaves on its timer, or once it is large enough. */
    bool kick = rv == NT_OK && p->batches < NBATCH &&
                (p->hold_until_us == 0 || p->nh == NULL ||
                 p->nh->next != NULL ||
                 p->nh->n - p->nh->first >= HOLD_ITEMS);
    nti_mtx_unlock(&p->mtx);
    if (ahead != NULL && seal_ahead(p, ahead)) {
        kick = true;
    }
    if (rv == NT_EUNREACHABLE || rv == NT_ENOMEM) {
        atomic_fetch_add_explicit(&p->tp->st_notify_unacked, 1,
                                  memory_order_relaxed);
    } else if (kick) {
        peer_kick(p);
    }
    return rv;
}

int
nti_peer_notify(nti_peer *p, const nti_msg *m, const uint8_t *dest,
                uint64_t dest_boot, const uint64_t *regs, size_t nregs)
{
    return peer_notify(p, m, dest, dest_boot, regs, nregs, true);
}

int
nti_peer_notify_now(nti_peer *p, const nti_msg *m, const uint8_t *dest,
                    uint64_t dest_boot, const uint64_t *regs, size_t nregs)
{
    return peer_notify(p, m, dest, dest_boot, regs, nregs, false);
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
    while (p->sealing > 0) { /* a publisher seals a queued chunk ahead */
        nti_cv_wait(&p->cv, &p->mtx);
    }
    nti_creq *r = p->qh;
    if (p->gh != NULL) { /* gossip first, then the rest */
        p->gt->next = r;
        r = p->gh;
    }
    nchunk *chunks = p->nh, *spare = p->spare;
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
    p->nh = p->nt = p->spare = NULL;
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
    chunks_free(chunks);
    chunk_free(spare);
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
void
nti_peer_close(nti_peer *p)
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
    if (!nti_sock_close(p->tp, p->sock)) {
        p->abandoned = true;
        return;
    }
    cctx *c = p->all;
    while (c != NULL) {
        cctx *next = c->next_all;
        nng_aio_free(c->aio); /* waits for its callback */
        nng_aio_free(c->saio);
        free(c);
        c = next;
    }
    p->all = NULL;
    p->free = NULL;
    peer_fail_queued(p);
}

void
nti_maint_main(void *arg)
{
    nti_tp *tp = arg;
    nti_thr_setname("nt-transport");
    nti_mtx_lock(&tp->peers_mtx);
    while (!tp->stop) {
        uint64_t wake = nti_clock_ms() + MAINT_MS;
        nti_cv_wait_until(&tp->maint_cv, &tp->peers_mtx,
                          tp->hold_due < wake ? tp->hold_due : wake);
        tp->hold_due = UINT64_MAX;
        if (tp->stop) {
            break;
        }
        uint64_t now = nti_clock_ms();
        nng_pipe due[LINGER_MAX];
        size_t ndue = 0;
        nti_mtx_lock(&tp->srv_mtx);
        for (size_t i = 0; i < tp->nlingering;) {
            if (tp->lingering[i].due <= now) {
                due[ndue++] = tp->lingering[i].pipe;
                tp->lingering[i] = tp->lingering[--tp->nlingering];
            } else {
                i++;
            }
        }
        nti_mtx_unlock(&tp->srv_mtx);
        for (size_t i = 0; i < ndue; i++) {
            nng_pipe_close(due[i]); /* gone already: a harmless error */
        }
        nti_peer **pp = &tp->peers;
        while (*pp != NULL) {
            nti_peer *p = *pp;
            nti_mtx_lock(&p->mtx);
            bool reset = p->reset_pending;
            uint64_t hu[2] = { p->hold_until_us,
                               p->xq[XQ_CALLS].hold_until_us };
            for (int k = 0; k < 2; k++) {
                if (hu[k] != 0 && now * 1000u < hu[k]) {
                    /* Woken early: wake again for it. */
                    uint64_t hd = (hu[k] + 999u) / 1000u;
                    tp->hold_due = hd < tp->hold_due ? hd : tp->hold_due;
                }
            }
            bool retry = (p->nh != NULL && now >= p->retry_at) ||
                         (p->hold_until_us != 0 &&
                          now * 1000u >= p->hold_until_us) ||
                         (p->xq[XQ_RESULTS].h != NULL &&
                          now >= p->xq[XQ_RESULTS].retry_at) ||
                         (p->xq[XQ_CALLS].h != NULL &&
                          p->xq[XQ_CALLS].inflight <
                              tp->cfg.max_peer_inflight);
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
             * nng 1.5.2 (see nti_sock_close). */
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
                nti_peer_close(p);
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
