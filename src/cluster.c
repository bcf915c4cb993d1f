/* SPDX-License-Identifier: MIT */
/*
 * Cluster: the node's gossip directory, its members, and everything that
 * crosses the network (see docs/PROTOCOL.md).  Calls across nodes are in
 * calls.c and the publisher side in pubside.c; cluster_impl.h holds what
 * these files share.
 *
 * Design notes
 * ------------
 * Gossip.  One gsp instance per member node, driven under gossip_mtx: by
 * the node's timer (gsp_next_deadline), by frames from the transport, and
 * by local (un)registrations (one entry per registration).  Frames the
 * instance emits are collected under the lock and sent after it is
 * dropped.  Gossip events arrive inside those calls, still under the lock,
 * and are applied to the routing index one entry at a time.
 *
 * Members.  A member's registrations are owned by its nti_member (embedded
 * nti_owner).  When gossip declares a member dead or left, its entries are
 * deleted first (gossip's guarantee), then its pending calls fail with
 * NT_EPEERLOST and its connection is retired, which fails whatever is in
 * flight on it.  Members are freed only at close.
 *
 * Server side.  Requests arrive on nng threads (request_in).  Notification
 * batches are queued on the workers and acknowledged at once with the
 * number accepted; calls become an nti_call whose completion callback
 * encodes the results and answers (calls.c); publishers' publishes and
 * calls are routed here as if made locally.
 *
 * Lock order: reg_mtx -> gossip_mtx -> member.mtx -> (index lock, rpctab,
 * pool, timer, transport locks).
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "addr.h"
#include "cluster_impl.h"
#include "strbuf.h"

#define LEAVE_WAIT_MS 500

bool
nti_is_publisher(const nt_node *n)
{
    return n->listen == NULL;
}

static uint64_t
wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- registration entries ----------------------------------------------- */

static void
be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* value: u8 kind, u8 slice, u64 weight bits, u64 mask, u64 value,
 * str object, str cmd */
static size_t
entry_encode(const nti_reg_spec *s, uint8_t *buf, size_t cap)
{
    gsp_wr w;
    gsp_wr_init(&w, buf, cap);
    uint64_t wb;
    double weight = s->slice ? s->weight : 1.0;
    memcpy(&wb, &weight, sizeof(wb));
    gsp_wr_u8(&w, (uint8_t)s->kind);
    gsp_wr_u8(&w, s->slice ? 1 : 0);
    gsp_wr_u64(&w, wb);
    gsp_wr_u64(&w, s->match.mask);
    gsp_wr_u64(&w, s->match.value);
    nti_wire_name_put(&w, s->object);
    nti_wire_name_put(&w, s->cmd);
    return cap - gsp_wr_left(&w);
}

static int
entry_decode(const uint8_t *val, size_t vlen, nti_reg_spec *s, char *object,
             char *cmd)
{
    gsp_rd r;
    uint8_t kind = 0, slice = 0;
    uint64_t wb = 0;
    gsp_rd_init(&r, val, vlen);
    gsp_rd_u8(&r, &kind);
    gsp_rd_u8(&r, &slice);
    gsp_rd_u64(&r, &wb);
    gsp_rd_u64(&r, &s->match.mask);
    gsp_rd_u64(&r, &s->match.value);
    if (nti_wire_name_get(&r, object) != GSP_OK ||
        nti_wire_name_get(&r, cmd) != GSP_OK || gsp_rd_done(&r, 1) != GSP_OK ||
        kind > NTI_RPC || slice > 1) {
        return NT_EPROTO;
    }
    memcpy(&s->weight, &wb, sizeof(wb));
    s->kind = (nti_kind)kind;
    s->slice = slice != 0;
    s->object = object;
    s->cmd = cmd;
    return nti_reg_spec_check(s) == NT_OK ? NT_OK : NT_EPROTO;
}

/* ---- gossip driving ------------------------------------------------------- */

typedef struct gossip_send {
    nti_creq base;
    nt_node *n;
} gossip_send;

static void
gossip_sent(nti_creq *r, int rv, const nti_hdr *h, const uint8_t *pt,
            size_t len)
{
    (void)h;
    (void)pt;
    (void)len;
    gossip_send *gs = (gossip_send *)r;
    nt_node *n = gs->n;
    if (rv == NT_EAUTH) {
        nti_log(&n->log, NT_LOG_WARN,
                "peer refused our gossip: authentication failed", "peer",
                "?", "hint", "wrong cluster key?", NULL, NULL);
    }
    free(gs);
    atomic_fetch_sub(&n->gossip_sends, 1);
}

/* A batch of frames taken out under gossip_mtx, sent after. */
typedef struct {
    gsp_frame *v;
    size_t n, cap;
} framelist;

static void
frames_collect(nt_node *n, framelist *fl)
{
    gsp_frame f;
    while (gsp_out(n->gossip, &f) == 1) {
        if (fl->n == fl->cap) {
            size_t nc = fl->cap ? fl->cap * 2 : 16;
            gsp_frame *v = realloc(fl->v, nc * sizeof(*v));
            if (v == NULL) {
                gsp_frame_release(&f); /* gossip tolerates loss */
                continue;
            }
            fl->v = v;
            fl->cap = nc;
        }
        fl->v[fl->n++] = f;
    }
}

static void
frames_send(nt_node *n, framelist *fl)
{
    for (size_t i = 0; i < fl->n; i++) {
        gsp_frame *f = &fl->v[i];
        nti_peer *p = NULL;
        gossip_send *gs = calloc(1, sizeof(*gs));
        if (gs == NULL || nti_tp_peer(n->tp, f->addr, &p) != NT_OK) {
            free(gs);
            gsp_frame_release(f);
            continue;
        }
        gs->n = n;
        gs->base.done = gossip_sent;
        gs->base.channel = NTI_CH_GOSSIP;
        gs->base.frame = f->buf;
        gs->base.len = f->len;
        atomic_fetch_add(&n->gossip_sends, 1);
        if (nti_peer_submit(p, &gs->base) != NT_OK) {
            atomic_fetch_sub(&n->gossip_sends, 1);
            gsp_frame_release(f);
            free(gs);
        }
        nti_peer_rele(p);
    }
    free(fl->v);
    fl->v = NULL;
    fl->n = fl->cap = 0;
}

/* After any gossip call: collect frames, re-arm the timer, wake waiters.
 * gossip_mtx held. */
static void
gossip_after(nt_node *n, framelist *fl)
{
    uint8_t d[GSP_DIGEST_LEN];
    gsp_digest(n->gossip, d);
    if (memcmp(d, n->last_digest, sizeof(d)) != 0) {
        memcpy(n->last_digest, d, sizeof(d));
        n->digest_changed_ms = nti_clock_ms();
    }
    frames_collect(n, fl);
    if (!n->gossip_stop) {
        uint64_t when = gsp_next_deadline(n->gossip);
        uint64_t now = nti_clock_ms();
        nti_timer_schedule(n->timer, &n->gossip_tmr, when > now ? when : now);
    }
    nti_cv_broadcast(&n->cluster_cv);
}

static void
gossip_timer(void *arg)
{
    nt_node *n = arg;
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    if (n->gossip == NULL || n->gossip_stop) {
        nti_mtx_unlock(&n->gossip_mtx);
        return;
    }
    gsp_tick(n->gossip, nti_clock_ms());
    gossip_after(n, &fl);
    n->gossip_busy++; /* close waits for this call to end */
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
    nti_later_sweep(n);
    nti_mtx_lock(&n->gossip_mtx);
    if (--n->gossip_busy == 0) {
        nti_cv_broadcast(&n->cluster_cv);
    }
    nti_mtx_unlock(&n->gossip_mtx);
}

static int
gossip_in(void *arg, const uint8_t *frame, size_t len)
{
    nt_node *n = arg;
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    if (n->gossip == NULL || n->gossip_stop) {
        nti_mtx_unlock(&n->gossip_mtx);
        return GSP_OK;
    }
    int rv = gsp_recv(n->gossip, nti_clock_ms(), frame, len);
    gossip_after(n, &fl);
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
    return rv;
}

/* ---- members ---------------------------------------------------------------- */

static nti_member *
member_find(nt_node *n, const uint8_t *id)
{
    uint64_t k;
    memcpy(&k, id, sizeof(k));
    for (nti_hnode *h = nti_htab_find(&n->members, k); h != NULL;
         h = nti_htab_next(h, k)) {
        nti_member *m = (nti_member *)((char *)h - offsetof(nti_member, hn));
        if (memcmp(m->id, id, GSP_ID_LEN) == 0) {
            return m;
        }
    }
    return NULL;
}

static nti_member *
member_get(nt_node *n, const uint8_t *id, const char *hex)
{
    nti_member *m = member_find(n, id);
    if (m != NULL) {
        return m;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        return NULL;
    }
    memcpy(m->id, id, GSP_ID_LEN);
    snprintf(m->id_hex, sizeof(m->id_hex), "%s", hex);
    memcpy(&m->hn.hash, id, sizeof(m->hn.hash));
    if (nti_htab_insert(&n->members, &m->hn) != NT_OK) {
        free(m);
        return NULL;
    }
    nti_mtx_init(&m->mtx);
    m->owner.peer = m;
    m->owner.node_id = m->id_hex;
    m->next = n->member_list;
    n->member_list = m;
    return m;
}

static void
regs_release(nti_reg *chain)
{
    while (chain != NULL) {
        nti_reg *next = chain->rnext;
        nti_reg_rele(chain);
        chain = next;
    }
}

static void
member_up(nt_node *n, const gsp_event *ev)
{
    nti_member *m = member_get(n, ev->id, ev->id_hex);
    if (m == NULL) {
        return;
    }
    nti_peer *old = NULL, *p = NULL;
    nti_mtx_lock(&m->mtx);
    bool moved = m->peer != NULL && strcmp(m->addr, ev->addr) != 0;
    if (moved || (m->alive && m->incarnation != ev->incarnation)) {
        old = m->peer;
        m->peer = NULL;
    }
    bool had_gen = m->gen != 0 && m->alive;
    uint64_t old_gen = m->gen;
    snprintf(m->addr, sizeof(m->addr), "%s", ev->addr ? ev->addr : "");
    m->incarnation = ev->incarnation;
    m->alive = true;
    m->gen = ++n->member_gen;
    bool need_peer = m->peer == NULL;
    nti_mtx_unlock(&m->mtx);
    if (had_gen) {
        /* A restart: calls to the previous life cannot be answered. */
        nti_rpctab_peer_lost(n->rpc, old_gen);
    }
    if (old != NULL) {
        nti_peer_retire(old);
        nti_peer_rele(old);
    }
    if (need_peer && nti_tp_peer(n->tp, ev->addr, &p) == NT_OK) {
        nti_mtx_lock(&m->mtx);
        if (m->peer == NULL) {
            m->peer = p;
            p = NULL;
        }
        nti_mtx_unlock(&m->mtx);
        if (p != NULL) {
            nti_peer_rele(p);
        }
    }
    char inc[24];
    snprintf(inc, sizeof(inc), "%llu", (unsigned long long)ev->incarnation);
    nti_log(&n->log, NT_LOG_INFO, "member up", "peer", m->id_hex, "address",
            ev->addr, "incarnation", inc);
}

/* A member that died or left.  Its entries were deleted just before
 * (gossip's guarantee).  A dead member's pending calls fail at once and
 * its connection is retired; a member that left answers (or fails) its
 * pending calls itself before it closes, so those wait for their replies
 * and fail only if its connection drops first. */
static void
member_gone(nt_node *n, const gsp_event *ev, bool dead)
{
    nti_member *m = member_find(n, ev->id);
    if (m == NULL) {
        return;
    }
    nti_mtx_lock(&m->mtx);
    bool was = m->alive;
    m->alive = false;
    uint64_t gen = m->gen;
    nti_peer *p = m->peer;
    m->peer = NULL;
    nti_mtx_unlock(&m->mtx);
    regs_release(nti_index_remove_owner(n->index, &m->owner));
    if (was && dead) {
        nti_rpctab_peer_lost(n->rpc, gen);
    }
    if (p != NULL) {
        if (dead) {
            nti_peer_retire(p);
        }
        nti_peer_rele(p);
    }
    nti_log(&n->log, NT_LOG_INFO, dead ? "member dead" : "member left",
            "peer", m->id_hex, "address", m->addr, NULL, NULL);
}

static void
entry_put(nt_node *n, const gsp_event *ev)
{
    if (ev->klen != 8) {
        return;
    }
    nti_member *m = member_get(n, ev->id, ev->id_hex);
    if (m == NULL) {
        return;
    }
    nti_reg_spec s;
    char object[NTI_NAME_MAX + 1], cmd[NTI_NAME_MAX + 1];
    memset(&s, 0, sizeof(s));
    if (entry_decode(ev->val, ev->vlen, &s, object, cmd) != NT_OK) {
        nti_log(&n->log, NT_LOG_WARN, "ignored a malformed registration",
                "peer", m->id_hex, NULL, NULL, NULL, NULL);
        return;
    }
    s.id = get_be64(ev->key);
    nti_log(&n->log, NT_LOG_DEBUG, "registration added", "peer", m->id_hex,
            "object", object, "cmd", cmd);
    /* One step: routing never sees the registration missing. */
    if (nti_index_upsert(n->index, &m->owner, &s) != NT_OK) {
        nti_log(&n->log, NT_LOG_WARN, "could not index a registration",
                "peer", m->id_hex, "object", object, NULL, NULL);
    }
}

static void
entry_del(nt_node *n, const gsp_event *ev)
{
    nti_member *m = member_find(n, ev->id);
    nti_reg *old = NULL;
    nti_log(&n->log, NT_LOG_DEBUG, "registration removed", "peer",
            ev->id_hex, NULL, NULL, NULL, NULL);
    if (m != NULL && ev->klen == 8 &&
        nti_index_remove_id(n->index, &m->owner, get_be64(ev->key), &old) ==
            NT_OK) {
        nti_reg_rele(old);
    }
}

/* Gossip events, under gossip_mtx. */
static void
on_event(void *arg, const gsp_event *ev)
{
    nt_node *n = arg;
    switch (ev->type) {
    case GSP_EV_MEMBER_UP:
        member_up(n, ev);
        break;
    case GSP_EV_MEMBER_SUSPECT:
        nti_log(&n->log, NT_LOG_INFO, "member suspect", "peer", ev->id_hex,
                NULL, NULL, NULL, NULL);
        break;
    case GSP_EV_MEMBER_ALIVE:
        nti_log(&n->log, NT_LOG_INFO, "member alive again", "peer",
                ev->id_hex, NULL, NULL, NULL, NULL);
        break;
    case GSP_EV_MEMBER_DEAD:
        member_gone(n, ev, true);
        break;
    case GSP_EV_MEMBER_LEFT:
        member_gone(n, ev, false);
        break;
    case GSP_EV_ENTRY_PUT:
        entry_put(n, ev);
        break;
    case GSP_EV_ENTRY_DEL:
        entry_del(n, ev);
        break;
    }
}

/* Transport hook (peer.c, "Holding"): completions of our calls are
 * queued, and their callbacks tend to make the next calls. */
static bool
calls_coming(void *arg)
{
    nt_node *n = arg;
    return nti_rpctab_cbs_queued(n->rpc);
}

/* After the last queued callback ran: call frames held for it leave.  Not
 * once close began (the transport goes before the node). */
static void
calls_idle(void *arg)
{
    nt_node *n = arg;
    if (!atomic_load(&n->closing) && n->tp != NULL) {
        nti_tp_calls_idle(n->tp);
    }
}

static void
peer_event(void *arg, nti_peer *p, bool up)
{
    nt_node *n = arg;
    nti_log(&n->log, NT_LOG_DEBUG, up ? "connected" : "disconnected",
            "address", nti_peer_addr(p), NULL, NULL, NULL, NULL);
    if (!up) {
        nti_later_peer_lost(n, p);
    }
}

void
nti_cluster_reg_added(nt_node *n, const nti_reg_spec *s)
{
    if (n->gossip == NULL) {
        return;
    }
    uint8_t key[8], val[2 + 24 + 2 * (NTI_NAME_MAX + 1)];
    be64(key, s->id);
    size_t vlen = entry_encode(s, val, sizeof(val));
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    if (!n->gossip_stop) {
        int rv = gsp_put(n->gossip, nti_clock_ms(), key, sizeof(key), val,
                         vlen);
        if (rv != GSP_OK) {
            nti_log(&n->log, NT_LOG_ERROR,
                    "could not publish a registration", "error",
                    gsp_strerror(rv), NULL, NULL, NULL, NULL);
        }
        gossip_after(n, &fl);
    }
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
}

void
nti_cluster_reg_removed(nt_node *n, uint64_t id)
{
    if (n->gossip == NULL) {
        return;
    }
    uint8_t key[8];
    be64(key, id);
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    if (!n->gossip_stop) {
        gsp_del(n->gossip, nti_clock_ms(), key, sizeof(key));
        gossip_after(n, &fl);
    }
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
}

/* ---- server side -------------------------------------------------------------- */

/* A reply plaintext: header (to the requester, ref = its seq) + body. */
uint8_t *
nti_reply_begin(nt_node *n, const nti_hdr *req, uint8_t type, size_t body,
                gsp_wr *w)
{
    uint8_t *pt = malloc(NTI_HDR_LEN + body);
    if (pt == NULL) {
        return NULL;
    }
    nti_tp_hdr(n->tp, type, req->sender, req->sender_boot, req->seq, pt);
    gsp_wr_init(w, pt + NTI_HDR_LEN, body);
    return pt;
}

void
nti_reply_ack(nt_node *n, nti_sreq *sr, const nti_hdr *h, uint32_t accepted,
              int status)
{
    gsp_wr w;
    uint8_t *pt = nti_reply_begin(n, h, NTI_T_ACK, 8, &w);
    if (pt != NULL) {
        gsp_wr_u32(&w, accepted);
        gsp_wr_u32(&w, (uint32_t)status);
    }
    nti_sreq_reply(sr, pt, NTI_HDR_LEN + 8);
}

static void
reply_text(nt_node *n, nti_sreq *sr, const nti_hdr *h, int status,
           const char *text)
{
    size_t len = text ? strlen(text) : 0;
    gsp_wr w;
    uint8_t *pt = nti_reply_begin(n, h, NTI_T_TEXT, 8 + len, &w);
    if (pt != NULL) {
        gsp_wr_u32(&w, (uint32_t)status);
        gsp_wr_blob32(&w, text, len);
    }
    nti_sreq_reply(sr, pt, NTI_HDR_LEN + 8 + len);
}

/* Encodes results (or just a status) as a RESULTS reply. */
void
nti_reply_results(nt_node *n, nti_sreq *sr, const nti_hdr *h, int status,
                  const nt_results *r)
{
    size_t body = 6, count = r ? r->count : 0;
    for (size_t i = 0; i < count; i++) {
        body += nti_wire_item_size(strlen(r->items[i].node), r->items[i].len);
    }
    gsp_wr w;
    uint8_t *pt = nti_reply_begin(n, h, NTI_T_RESULTS, body, &w);
    if (pt != NULL) {
        nti_wire_results_head_put(&w, status, (uint16_t)count);
        for (size_t i = 0; i < count; i++) {
            const nt_result *it = &r->items[i];
            nti_wire_item_put(&w, it->status, it->code, it->node, it->data,
                              it->len);
        }
    }
    nti_sreq_reply(sr, pt, NTI_HDR_LEN + body);
}

void
nti_held_done(void *arg, int status, const nt_results *r)
{
    nti_held *hd = arg;
    nti_reply_results(hd->n, hd->sr, &hd->h, status, r);
    free(hd);
}

nti_held *
nti_held_begin(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
               uint8_t type, nti_wmsg *wm)
{
    if (nti_wire_msg_get(r, type, wm) != GSP_OK) {
        nti_reply_results(n, sr, h, NT_EPROTO, NULL);
        return NULL;
    }
    if (!nti_sreq_hold(sr)) {
        nti_reply_results(n, sr, h, NT_EAGAIN, NULL);
        return NULL;
    }
    nti_held *hd = malloc(sizeof(*hd));
    if (hd == NULL) {
        nti_reply_results(n, sr, h, NT_ENOMEM, NULL);
        return NULL;
    }
    hd->n = n;
    hd->sr = sr;
    hd->h = *h;
    return hd;
}

/* The sender's entry in its stripe (the least recently used one is
 * reused for a new sender).  Stripe lock held. */
static nti_nsender *
nsender_get(nti_nstripe *st, const uint8_t *id, uint64_t boot)
{
    nti_nsender *lru = &st->s[0];
    for (size_t i = 0; i < NTI_NOTIFY_SENDERS; i++) {
        nti_nsender *s = &st->s[i];
        if (s->used != 0 && memcmp(s->id, id, NTI_ID_LEN) == 0) {
            if (s->boot != boot) { /* a new life: forget the old one */
                memset(s->done, 0, sizeof(s->done));
                s->refused = 0;
                s->boot = boot;
            }
            s->used = ++st->tick;
            return s;
        }
        if (s->used < lru->used) {
            lru = s;
        }
    }
    memset(lru, 0, sizeof(*lru));
    memcpy(lru->id, id, NTI_ID_LEN);
    lru->boot = boot;
    lru->used = ++st->tick;
    return lru;
}

/* 1: frame seq was refused (even in part); 0: queued; -1: not seen. */
static int
nsender_find(const nti_nsender *s, uint64_t seq)
{
    for (unsigned i = 0; i < NTI_NOTIFY_DONE; i++) {
        if (s->done[i] == seq) {
            return (s->refused >> i) & 1u ? 1 : 0;
        }
    }
    return -1;
}

static void
nsender_done(nti_nsender *s, uint64_t seq, bool refused)
{
    s->done[s->pos] = seq;
    s->refused = refused ? s->refused | 1u << s->pos
                         : s->refused & ~(1u << s->pos);
    s->pos = (s->pos + 1) % NTI_NOTIFY_DONE;
}

/* A NOTIFY frame (validated whole by nti_wire_check).  Design notes:
 *
 * Order.  A sender's frames must reach the workers one at a time and in
 * the order it sent them, though two may be in flight and handled by two
 * of our threads (peer.c, "Two batches in flight").  Each frame names in
 * its header's ref the frame sent before it if that was still
 * unacknowledged (else 0).  Under the sender's stripe lock we wait (at
 * most NTI_NOTIFY_WAIT_MS, for a predecessor lost with its connection)
 * until that frame is done; if we refused it, even in part, this one is
 * refused whole, so that the sender resends the refused rest first.
 *
 * Acked first.  The ack tells the sender how many leading items were
 * taken.  When the pool has room for every item of the frame
 * (nti_pool_reserve), the ack leaves first and the items are decoded and
 * queued after it, while the sender's next frame travels and is opened on
 * another thread.  Otherwise (the pool nearly full) the items are queued
 * first and the ack says how many were. */
static void
srv_notify(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
           const char *from)
{
    uint32_t count = 0;
    int status = NT_OK;
    gsp_rd_u32(r, &count);
    uint64_t stripe;
    memcpy(&stripe, h->sender, sizeof(stripe));
    nti_nstripe *st =
        &n->notify_order[nti_mix64(stripe) % NTI_NOTIFY_STRIPES];
    nti_mtx_lock(&st->mtx);
    nti_nsender *snd = nsender_get(st, h->sender, h->sender_boot);
    int pred = h->ref != 0 ? nsender_find(snd, h->ref) : 0;
    if (pred < 0) {
        uint64_t deadline = nti_clock_ms() + NTI_NOTIFY_WAIT_MS;
        while (pred < 0 && nti_cv_wait_until(&st->cv, &st->mtx, deadline)) {
            snd = nsender_get(st, h->sender, h->sender_boot);
            pred = nsender_find(snd, h->ref);
        }
        if (pred < 0) {
            /* Lost with its connection, most likely. */
            snd = nsender_get(st, h->sender, h->sender_boot);
            pred = 0;
            atomic_fetch_add_explicit(&n->ctr.notify_pred_missing, 1,
                                      memory_order_relaxed);
        }
    }
    if (pred > 0) {
        nsender_done(snd, h->seq, true);
        nti_cv_broadcast(&st->cv);
        nti_mtx_unlock(&st->mtx);
        nti_tp_count_notify_in(n->tp, 0);
        nti_reply_ack(n, sr, h, 0, NT_EAGAIN);
        return;
    }
    nti_wmsg wm;
    nti_notes b;
    nti_notes_init(&b, n, count, gsp_rd_left(r));
    if (count > 0 && nti_pool_reserve(n->pool, count)) {
        b.reserved = true;
        nti_reply_ack(n, sr, h, count, NT_OK);
    }
    /* Items of one frame mostly target one registration: the last one
     * looked up is kept (held) for the next. */
    nti_reg *last = NULL;
    for (uint32_t i = 0; i < count && status == NT_OK; i++) {
        if (nti_wire_msg_get(r, NTI_T_NOTIFY, &wm) != GSP_OK) {
            status = NT_EPROTO;
            break;
        }
        nti_reg *regs[NTI_MAX_TARGETS];
        size_t k = 0;
        for (size_t j = 0; j < wm.nregs; j++) {
            uint64_t id = nti_wire_reg(&wm, j);
            nti_reg *reg;
            if (last != NULL && last->id == id) {
                nti_reg_hold(last);
                reg = last;
            } else if ((reg = nti_index_get(n->index, &n->local, id)) !=
                           NULL &&
                       reg->kind == NTI_NOTIFY) {
                if (last != NULL) {
                    nti_reg_rele(last);
                }
                nti_reg_hold(reg);
                last = reg;
            }
            if (reg != NULL && reg->kind == NTI_NOTIFY) {
                regs[k++] = reg;
            } else if (reg != NULL) {
                nti_reg_rele(reg);
            }
        }
        status = nti_notes_add(&b, regs, k, wm.nregs - k, wm.object, wm.id,
                               wm.cmd, wm.from[0] ? wm.from : from, wm.data,
                               wm.len);
    }
    if (last != NULL) {
        nti_reg_rele(last);
    }
    int rv = nti_notes_end(&b);
    if (status == NT_OK) {
        status = rv;
    }
    if (b.reserved) {
        nti_pool_unreserve(n->pool, count);
    }
    nsender_done(snd, h->seq, !b.reserved && b.accepted < count);
    nti_cv_broadcast(&st->cv);
    nti_mtx_unlock(&st->mtx);
    if (!b.reserved) {
        nti_tp_count_notify_in(n->tp, (uint32_t)b.accepted);
        nti_reply_ack(n, sr, h, (uint32_t)b.accepted, status);
        return;
    }
    /* Acked already: what was not queued is lost (out of memory, or the
     * node is closing). */
    nti_tp_count_notify_in(n->tp, count);
    if (b.accepted < count) {
        atomic_fetch_add_explicit(status == NT_ECLOSED
                                      ? &n->ctr.dropped_closed
                                      : &n->ctr.dropped_nomem,
                                  count - b.accepted, memory_order_relaxed);
        char lost[16];
        snprintf(lost, sizeof(lost), "%u", (unsigned)(count - b.accepted));
        nti_log(&n->log, NT_LOG_WARN, "acked notifications lost", "count",
                lost, "error", nt_strerror(status), NULL, NULL);
    }
}

static void
srv_route_call(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
               const char *from)
{
    nti_wmsg wm;
    nti_held *hd = nti_held_begin(n, sr, h, r, NTI_T_ROUTE_CALL, &wm);
    if (hd == NULL) {
        return;
    }
    int timeout = wm.timeout_ms == UINT32_MAX ? -1
                  : wm.timeout_ms > INT32_MAX ? INT32_MAX
                                              : (int)wm.timeout_ms;
    int rv = atomic_load(&n->closing)
                 ? NT_ECLOSED
                 : nti_rpc_async_from(n, wm.object, wm.id, wm.cmd, wm.data,
                                      wm.len, timeout, nti_held_done, hd,
                                      from);
    if (rv != NT_OK) {
        free(hd);
        nti_reply_results(n, sr, h, rv, NULL);
    }
}

static void
srv_publish(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
            const char *from)
{
    nti_wmsg wm;
    int rv = nti_wire_msg_get(r, NTI_T_PUBLISH, &wm) == GSP_OK ? NT_OK
                                                              : NT_EPROTO;
    if (rv == NT_OK) {
        rv = atomic_load(&n->closing)
                 ? NT_ECLOSED
                 : nti_publish_from(n, wm.object, wm.id, wm.cmd, wm.data,
                                    wm.len, from);
    }
    if (rv == NT_OK) {
        atomic_fetch_add_explicit(&n->ctr.published, 1, memory_order_relaxed);
    }
    nti_reply_ack(n, sr, h, rv == NT_OK ? 1 : 0, rv);
}

static int cluster_status(nt_node *n, char **out);

static void
srv_info(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r)
{
    char what[NTI_NAME_MAX + 1];
    uint8_t fmt = 0;
    char *text = NULL;
    int rv;
    if (nti_wire_name_get(r, what) != GSP_OK || gsp_rd_u8(r, &fmt) != GSP_OK) {
        rv = NT_EPROTO;
    } else if (strcmp(what, "status") == 0) {
        rv = cluster_status(n, &text);
    } else if (strcmp(what, "members") == 0) {
        rv = nti_info_members(n, fmt == NT_INFO_JSON, &text);
    } else if (strcmp(what, "subs") == 0) {
        rv = nti_info_subs(n, fmt == NT_INFO_JSON, &text);
    } else if (strcmp(what, "stats") == 0) {
        rv = nti_info_stats(n, fmt == NT_INFO_JSON, &text);
    } else if (strcmp(what, "metrics") == 0) {
        rv = nti_info_metrics(n, &text);
    } else {
        rv = NT_EINVAL;
    }
    reply_text(n, sr, h, rv, text);
    free(text);
}

static void
request_in(void *arg, nti_sreq *sr, const nti_hdr *h, const uint8_t *pt,
           size_t len)
{
    nt_node *n = arg;
    char from[GSP_ID_HEX_LEN + 1];
    gsp_id_hex(h->sender, from);
    gsp_rd r;
    gsp_rd_init(&r, pt + NTI_HDR_LEN, len - NTI_HDR_LEN);
    switch (h->type) {
    case NTI_T_NOTIFY:
        srv_notify(n, sr, h, &r, from);
        break;
    case NTI_T_CALL:
        nti_srv_call(n, sr, h, &r, from);
        break;
    case NTI_T_CALLS:
        nti_srv_calls(n, sr, h, &r, from);
        break;
    case NTI_T_RESULTS_TO:
        nti_srv_results(n, sr, h, &r);
        break;
    case NTI_T_PUBLISH:
        srv_publish(n, sr, h, &r, from);
        break;
    case NTI_T_ROUTE_CALL:
        srv_route_call(n, sr, h, &r, from);
        break;
    default:
        srv_info(n, sr, h, &r);
        break;
    }
}

/* ---- remote delivery ------------------------------------------------------------ */

/* Calls fn for each distinct remote member among t's targets (targets are
 * grouped by owner: see nti_index_route), with its registration ids. */
int
nti_for_each_remote(nt_node *n, nti_targets *t, nti_group_fn fn, void *arg)
{
    size_t i = 0;
    while (i < t->n && t->v[i]->owner->peer == NULL) {
        i++;
    }
    while (i < t->n) {
        size_t j = i + 1;
        while (j < t->n && t->v[j]->owner == t->v[i]->owner) {
            j++;
        }
        int rv = fn(n, t->v[i]->owner->peer, t->v, i, j - i, arg);
        if (rv != NT_OK) {
            return rv;
        }
        i = j;
    }
    return NT_OK;
}

/* A member's peer, held, with its identity; NULL when gone. */
nti_peer *
nti_member_peer(nti_member *m, uint8_t *dest, uint64_t *boot, uint64_t *gen)
{
    nti_mtx_lock(&m->mtx);
    nti_peer *p = m->alive ? m->peer : NULL;
    if (p != NULL) {
        nti_peer_hold(p);
    }
    memcpy(dest, m->id, GSP_ID_LEN);
    *boot = m->incarnation;
    if (gen != NULL) {
        *gen = m->gen;
    }
    nti_mtx_unlock(&m->mtx);
    return p;
}

typedef struct {
    size_t done; /* groups reserved so far */
} reserve_st;

static int
reserve_one(nt_node *n, nti_member *m, nti_reg **regs, size_t first,
            size_t k, void *arg)
{
    (void)n;
    (void)regs;
    (void)first;
    (void)k;
    reserve_st *st = arg;
    uint8_t dest[GSP_ID_LEN];
    uint64_t boot;
    nti_peer *p = nti_member_peer(m, dest, &boot, NULL);
    int rv = p != NULL ? nti_peer_reserve(p, 1) : NT_EUNREACHABLE;
    if (p != NULL) {
        nti_peer_rele(p);
    }
    if (rv == NT_EUNREACHABLE) {
        rv = NT_OK; /* a member going away: gossip will drop it */
        m = NULL;
    }
    if (rv == NT_OK) {
        st->done++;
    }
    return rv;
}

typedef struct {
    size_t left; /* groups still to undo */
} unreserve_st;

static int
unreserve_one(nt_node *n, nti_member *m, nti_reg **regs, size_t first,
              size_t k, void *arg)
{
    (void)n;
    (void)regs;
    (void)first;
    (void)k;
    unreserve_st *st = arg;
    if (st->left == 0) {
        return NT_EAGAIN; /* stop */
    }
    st->left--;
    uint8_t dest[GSP_ID_LEN];
    uint64_t boot;
    nti_peer *p = nti_member_peer(m, dest, &boot, NULL);
    if (p != NULL) {
        nti_peer_unreserve(p, 1);
        nti_peer_rele(p);
    }
    return NT_OK;
}

int
nti_remote_reserve(nt_node *n, nti_targets *t)
{
    reserve_st st = { 0 };
    int rv = nti_for_each_remote(n, t, reserve_one, &st);
    if (rv != NT_OK) {
        unreserve_st us = { st.done };
        nti_for_each_remote(n, t, unreserve_one, &us);
        atomic_fetch_add_explicit(&n->ctr.rejected, 1, memory_order_relaxed);
    }
    return rv;
}

void
nti_remote_unreserve(nt_node *n, nti_targets *t)
{
    unreserve_st us = { SIZE_MAX };
    nti_for_each_remote(n, t, unreserve_one, &us);
}

static int
notify_one(nt_node *n, nti_member *m, nti_reg **regs, size_t first,
           size_t k, void *arg)
{
    (void)n;
    nti_msg *msg = arg;
    uint8_t dest[GSP_ID_LEN];
    uint64_t boot, ids[NTI_MAX_TARGETS];
    nti_peer *p = nti_member_peer(m, dest, &boot, NULL);
    if (p == NULL) {
        return NT_OK;
    }
    k = k > NTI_MAX_TARGETS ? NTI_MAX_TARGETS : k;
    for (size_t i = 0; i < k; i++) {
        ids[i] = regs[first + i]->id;
    }
    nti_peer_notify(p, msg, dest, boot, ids, k);
    nti_peer_rele(p);
    return NT_OK;
}

void
nti_remote_notify(nt_node *n, nti_targets *t, nti_msg *m)
{
    nti_for_each_remote(n, t, notify_one, m);
}

int
nti_remote_notify_single(nt_node *n, nti_targets *t, const nti_msg *m)
{
    uint8_t dest[GSP_ID_LEN];
    uint64_t boot, ids[NTI_MAX_TARGETS];
    nti_peer *p = nti_member_peer(t->v[0]->owner->peer, dest, &boot, NULL);
    if (p == NULL) {
        return NT_OK; /* a member going away: gossip will drop it */
    }
    size_t k = t->n > NTI_MAX_TARGETS ? NTI_MAX_TARGETS : t->n;
    for (size_t i = 0; i < k; i++) {
        ids[i] = t->v[i]->id;
    }
    int rv = nti_peer_notify_now(p, m, dest, boot, ids, k);
    nti_peer_rele(p);
    if (rv == NT_EAGAIN) {
        atomic_fetch_add_explicit(&n->ctr.rejected, 1, memory_order_relaxed);
        return rv;
    }
    return NT_OK; /* else as nti_remote_reserve + nti_remote_notify */
}

/* ---- introspection and waiting ---------------------------------------------------- */

static size_t
alive_members(nt_node *n)
{
    return gsp_member_count(n->gossip, (1u << GSP_ALIVE) |
                                           (1u << GSP_SUSPECT));
}

static int
cluster_status(nt_node *n, char **out)
{
    nti_sb b;
    nti_sb_init(&b);
    /* Served from transport threads, possibly while nti_cluster_open is
     * still creating the gossip state: read the pointer under the lock. */
    nti_mtx_lock(&n->gossip_mtx);
    if (n->gossip == NULL) {
        nti_sb_printf(&b, "members=0 converged=0");
    } else {
        nti_sb_printf(&b, "members=%zu converged=%d", alive_members(n),
                      gsp_converged(n->gossip) ? 1 : 0);
    }
    nti_mtx_unlock(&n->gossip_mtx);
    *out = nti_sb_take(&b);
    return *out != NULL ? NT_OK : NT_ENOMEM;
}

int
nti_info_members(nt_node *n, int json, char **out)
{
    nti_mtx_lock(&n->gossip_mtx);
    bool member = n->gossip != NULL;
    nti_mtx_unlock(&n->gossip_mtx);
    if (!member) {
        return NT_ENOTSUP;
    }
    nti_sb b;
    nti_sb_init(&b);
    if (json) {
        nti_sb_printf(&b, "{\"node\":");
        nti_sb_json_str(&b, n->id);
        nti_sb_printf(&b, ",\"members\":[");
    } else {
        nti_sb_printf(&b, "%-32s %-21s %-7s %14s %5s\n", "ID", "ADDRESS",
                      "STATE", "INCARNATION", "REGS");
    }
    nti_mtx_lock(&n->gossip_mtx);
    size_t cur = 0, i = 0;
    gsp_member_info mi;
    while (gsp_member_next(n->gossip, &cur, &mi) == 1) {
        const char *st = gsp_state_name(mi.state);
        if (json) {
            nti_sb_printf(&b, "%s{\"id\":", i ? "," : "");
            nti_sb_json_str(&b, mi.id_hex);
            nti_sb_printf(&b, ",\"address\":");
            nti_sb_json_str(&b, mi.addr ? mi.addr : "");
            nti_sb_printf(&b,
                          ",\"state\":\"%s\",\"incarnation\":%llu,"
                          "\"registrations\":%zu,\"self\":%s}",
                          st, (unsigned long long)mi.incarnation, mi.entries,
                          mi.self ? "true" : "false");
        } else {
            nti_sb_printf(&b, "%-32s %-21s %-7s %14llu %5zu%s\n", mi.id_hex,
                          mi.addr ? mi.addr : "", st,
                          (unsigned long long)mi.incarnation, mi.entries,
                          mi.self ? " *" : "");
        }
        i++;
    }
    nti_mtx_unlock(&n->gossip_mtx);
    if (json) {
        nti_sb_printf(&b, "]}");
    }
    *out = nti_sb_take(&b);
    return *out != NULL ? NT_OK : NT_ENOMEM;
}

/* Appends the cluster rows of "stats" (name, value pairs). */
void
nti_cluster_stats(nt_node *n, void (*row)(void *, const char *, uint64_t),
                  void *arg)
{
    nti_tp_stats ts;
    nti_tp_stats_get(n->tp, &ts);
    row(arg, "frames_in", ts.frames_in);
    row(arg, "bytes_in", ts.bytes_in);
    row(arg, "frames_out", ts.frames_out);
    row(arg, "bytes_out", ts.bytes_out);
    char name[64];
    for (int i = 0; i < NTI_DROP_COUNT; i++) {
        snprintf(name, sizeof(name), "drop_%s", nti_drop_name((nti_drop)i));
        row(arg, name, ts.drops[i]);
    }
    row(arg, "rejected_by_peer", ts.rejected_by_peer);
    row(arg, "notify_sent", ts.notify_sent);
    row(arg, "notify_unacked", ts.notify_unacked);
    row(arg, "notify_retried", ts.notify_retried);
    row(arg, "notify_batches_sealed_ahead", ts.notify_presealed);
    row(arg, "notify_batches_held", ts.notify_held);
    row(arg, "call_frames_held", ts.calls_held);
    row(arg, "notify_queued_remote", ts.notify_queued);
    row(arg, "connects", ts.connects);
    row(arg, "disconnects", ts.disconnects);
    row(arg, "peers", ts.peers);
    row(arg, "requests_held", ts.requests_held);
    row(arg, "call_frames_sent", ts.call_frames_sent);
    row(arg, "calls_sent", ts.calls_sent);
    row(arg, "results_late_sent", ts.results_late_sent);
    row(arg, "calls_deferred", ts.calls_deferred);
    row(arg, "connections", ts.conns);
    gsp_stats gs;
    nti_mtx_lock(&n->gossip_mtx);
    if (n->gossip == NULL) {
        nti_mtx_unlock(&n->gossip_mtx);
        return;
    }
    gsp_get_stats(n->gossip, &gs);
    size_t alive = gsp_member_count(n->gossip, 1u << GSP_ALIVE);
    size_t suspect = gsp_member_count(n->gossip, 1u << GSP_SUSPECT);
    size_t dead = gsp_member_count(n->gossip, 1u << GSP_DEAD);
    size_t left = gsp_member_count(n->gossip, 1u << GSP_LEFT);
    int conv = gsp_converged(n->gossip);
    nti_mtx_unlock(&n->gossip_mtx);
    row(arg, "members_alive", alive);
    row(arg, "members_suspect", suspect);
    row(arg, "members_dead", dead);
    row(arg, "members_left", left);
    row(arg, "converged", (uint64_t)conv);
    row(arg, "gossip_rounds", gs.rounds);
    row(arg, "gossip_frames_in", gs.frames_in);
    row(arg, "gossip_frames_out", gs.frames_out);
    row(arg, "gossip_bytes_in", gs.bytes_in);
    row(arg, "gossip_bytes_out", gs.bytes_out);
    for (int i = 0; i < GSP_DROP_COUNT; i++) {
        snprintf(name, sizeof(name), "gossip_drop_%s",
                 gsp_drop_name((gsp_drop)i));
        row(arg, name, gs.drops[i]);
    }
    row(arg, "gossip_probes", gs.probes);
    row(arg, "gossip_suspicions", gs.suspicions);
    row(arg, "gossip_refutations", gs.refutations);
}

/* Gossip counters and members by state (alive, suspect, dead, left);
 * false for a publisher. */
bool
nti_cluster_gossip(nt_node *n, gsp_stats *st, size_t states[4], int *conv)
{
    nti_mtx_lock(&n->gossip_mtx);
    if (n->gossip == NULL) {
        nti_mtx_unlock(&n->gossip_mtx);
        return false;
    }
    gsp_get_stats(n->gossip, st);
    for (int i = 0; i < 4; i++) {
        states[i] = gsp_member_count(n->gossip, 1u << (GSP_ALIVE + i));
    }
    *conv = gsp_converged(n->gossip);
    nti_mtx_unlock(&n->gossip_mtx);
    return true;
}

/* Seconds since the directory digest last changed (0 without gossip). */
double
nti_cluster_since_change(nt_node *n)
{
    if (n->gossip == NULL) {
        return 0.0;
    }
    nti_mtx_lock(&n->gossip_mtx);
    uint64_t at = n->digest_changed_ms;
    nti_mtx_unlock(&n->gossip_mtx);
    return (double)(nti_clock_ms() - at) / 1000.0;
}

/* The directory digest as hex (65 bytes). */
void
nti_cluster_digest(nt_node *n, char *hex)
{
    uint8_t d[GSP_DIGEST_LEN];
    hex[0] = '\0';
    if (n->gossip == NULL) {
        return;
    }
    nti_mtx_lock(&n->gossip_mtx);
    gsp_digest(n->gossip, d);
    nti_mtx_unlock(&n->gossip_mtx);
    for (int i = 0; i < GSP_DIGEST_LEN; i++) {
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
}

static int
wait_cluster(nt_node *n, unsigned members, bool converged, int timeout_ms)
{
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    int rv;
    if (nti_is_publisher(n)) {
        rv = nti_pub_wait_status(n, members, converged, timeout_ms);
        nti_node_leave(n);
        return rv;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nti_pool_block_begin();
    nti_mtx_lock(&n->gossip_mtx);
    for (;;) {
        bool ok = alive_members(n) >= members &&
                  (!converged || gsp_converged(n->gossip));
        if (ok) {
            rv = NT_OK;
            break;
        }
        if (atomic_load(&n->closing)) {
            rv = NT_ECLOSED;
            break;
        }
        if (!nti_cv_wait_until(&n->cluster_cv, &n->gossip_mtx, deadline)) {
            rv = NT_ETIMEDOUT;
            /* One last look. */
            if (alive_members(n) >= members &&
                (!converged || gsp_converged(n->gossip))) {
                rv = NT_OK;
            }
            break;
        }
    }
    nti_mtx_unlock(&n->gossip_mtx);
    nti_pool_block_end();
    nti_node_leave(n);
    return rv;
}

int
nt_node_wait_members(nt_node *n, unsigned count, int timeout_ms)
{
    return wait_cluster(n, count, false, timeout_ms);
}

int
nt_node_wait_converged(nt_node *n, int timeout_ms)
{
    return wait_cluster(n, 0, true, timeout_ms);
}

/* ---- keys ----------------------------------------------------------------------------- */

static uint8_t
key_id(const unsigned char key[32])
{
    unsigned char h[32];
    crypto_generichash(h, sizeof(h), key, 32, NULL, 0);
    return h[0];
}

static int
key_op(nt_node *n, const unsigned char key[32], int op)
{
    if (n == NULL || key == NULL) {
        return NT_EINVAL;
    }
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    uint8_t id = key_id(key);
    nti_mtx_lock(&n->gossip_mtx);
    nti_tp_keyring_wrlock(n->tp);
    int rv;
    if (op == 0) {
        rv = gsp_keyring_install(n->keyring, id, key);
    } else if (op == 1) {
        rv = gsp_keyring_use(n->keyring, id);
    } else {
        rv = gsp_keyring_remove(n->keyring, id);
    }
    nti_tp_keyring_unlock(n->tp);
    nti_mtx_unlock(&n->gossip_mtx);
    nti_node_leave(n);
    switch (rv) {
    case GSP_OK:
        return NT_OK;
    case GSP_ENOTFOUND:
        return NT_ENOENT;
    case GSP_EBUSY:
        return NT_EINVAL;
    case GSP_ENOMEM:
        return NT_ENOMEM;
    default:
        return NT_ELIMIT;
    }
}

int
nt_node_key_install(nt_node *n, const unsigned char key[32])
{
    return key_op(n, key, 0);
}

int
nt_node_key_use(nt_node *n, const unsigned char key[32])
{
    return key_op(n, key, 1);
}

int
nt_node_key_remove(nt_node *n, const unsigned char key[32])
{
    return key_op(n, key, 2);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* The address to advertise: the configured one, else the bound one with a
 * wildcard host replaced by the host name. */
static int
advertise_addr(nt_node *n, char *out, size_t cap)
{
    if (n->advertise != NULL) {
        snprintf(out, cap, "%s", n->advertise);
        return NT_OK;
    }
    const char *bound = nti_tp_address(n->tp);
    char host[GSP_ADDR_MAX + 1];
    unsigned port;
    if (nti_addr_parse(bound, host, sizeof(host), &port) != NT_OK) {
        return NT_EADDR;
    }
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        char hn[256];
        if (gethostname(hn, sizeof(hn)) != 0) {
            return NT_EADDR;
        }
        hn[sizeof(hn) - 1] = '\0';
        snprintf(out, cap, "%s:%u", hn, port);
        return nti_addr_check(out);
    }
    snprintf(out, cap, "%s", bound);
    return NT_OK;
}

int
nti_cluster_open(nt_node *n)
{
    nti_mtx_init(&n->gossip_mtx);
    nti_cv_init(&n->cluster_cv);
    nti_htab_init(&n->members);
    nti_mtx_init(&n->later_mtx);
    nti_htab_init(&n->later);
    nti_timer_ent_init(&n->gossip_tmr, gossip_timer, n);
    n->boot = wall_ms();
    gsp_id_from_pk(n->pk, n->id_bin, n->id);

    int rv = NT_ENOMEM;
    if (gsp_keyring_alloc(&n->keyring) != GSP_OK ||
        gsp_keyring_install(n->keyring, key_id(n->key), n->key) != GSP_OK) {
        return NT_ENOMEM;
    }
    /* More keys from the key file: accepted, not used for sending. */
    for (size_t i = 0; i < n->nextra_keys; i++) {
        if (gsp_keyring_install(n->keyring, key_id(n->extra_keys[i]),
                                n->extra_keys[i]) != GSP_OK) {
            return NT_ELIMIT;
        }
    }
    gsp_keyring_use(n->keyring, key_id(n->key));
    nti_tp_config tc = {
        .listen = n->listen,
        .keyring = n->keyring,
        .self_id = n->id_bin,
        .boot = n->boot,
        .max_frame = n->max_payload + 65536,
        .queue_depth = n->queue_depth,
        .max_inflight = n->max_inflight,
        .max_conns = n->max_conns,
        .max_peer_inflight = n->max_peer_inflight,
        .log = &n->log,
        .ops = { gossip_in, request_in, peer_event, calls_coming },
        .ops_arg = n,
    };
    if ((rv = nti_tp_alloc(&n->tp, &tc)) != NT_OK) {
        return rv;
    }
    nti_rpctab_set_idle(n->rpc, calls_idle, n);
    if (nti_is_publisher(n)) {
        size_t k = 0;
        while (n->smap[k] != NULL) {
            k++;
        }
        n->servers = calloc(k ? k : 1, sizeof(*n->servers));
        if (n->servers == NULL) {
            return NT_ENOMEM;
        }
        for (size_t i = 0; i < k; i++) {
            if ((rv = nti_tp_peer(n->tp, n->smap[i],
                                  &n->servers[n->nservers])) != NT_OK) {
                return rv;
            }
            n->nservers++;
        }
        return NT_OK;
    }
    char addr[GSP_ADDR_MAX + 32];
    if ((rv = advertise_addr(n, addr, sizeof(addr))) != NT_OK) {
        return rv;
    }
    free(n->address);
    if ((n->address = strdup(addr)) == NULL) {
        return NT_ENOMEM;
    }
    nti_tp_set_reply_to(n->tp, n->address);
    gsp_config gc;
    gsp_config_init(&gc);
    gc.pk = n->pk;
    gc.sk = n->sk;
    gc.addr = n->address;
    gc.incarnation = n->boot;
    gc.keyring = n->keyring;
    randombytes_buf(&gc.seed, sizeof(gc.seed));
    gc.on_event = on_event;
    gc.event_arg = n;
    gc.gossip_interval_ms = n->gossip_interval_ms;
    gc.fanout = n->gossip_fanout;
    gc.probe_interval_ms = n->probe_interval_ms;
    gc.max_frame = 65536;
    uint64_t now = nti_clock_ms();
    gsp *g = NULL;
    if (gsp_alloc(&g, &gc, now) != GSP_OK) {
        return NT_ENOMEM;
    }
    size_t k = 0;
    while (n->smap[k] != NULL) {
        k++;
    }
    framelist fl = { 0 };
    /* The listener already runs (refusing requests until nti_tp_start):
     * publish the state under the lock that every reader takes. */
    nti_mtx_lock(&n->gossip_mtx);
    n->gossip = g;
    gsp_set_seeds(n->gossip, (const char *const *)n->smap, k, now);
    gossip_after(n, &fl);
    nti_mtx_unlock(&n->gossip_mtx);
    nti_tp_start(n->tp);
    frames_send(n, &fl);
    nti_log(&n->log, NT_LOG_INFO, "node started", "id", n->id, "address",
            n->address, NULL, NULL);
    return NT_OK;
}

int
nti_cluster_reload(nt_node *n, char **smap)
{
    size_t k = 0;
    while (smap[k] != NULL) {
        k++;
    }
    if (n->gossip == NULL) {
        /* Publisher: new server list. */
        nti_peer **sv = calloc(k ? k : 1, sizeof(*sv));
        size_t ns = 0;
        if (sv == NULL) {
            return NT_ENOMEM;
        }
        for (size_t i = 0; i < k; i++) {
            if (nti_tp_peer(n->tp, smap[i], &sv[ns]) == NT_OK) {
                ns++;
            }
        }
        nti_mtx_lock(&n->gossip_mtx);
        nti_peer **old = n->servers;
        size_t nold = n->nservers;
        n->servers = sv;
        n->nservers = ns;
        nti_mtx_unlock(&n->gossip_mtx);
        for (size_t i = 0; i < nold; i++) {
            nti_peer_rele(old[i]);
        }
        free(old);
        return NT_OK;
    }
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    int rv = gsp_set_seeds(n->gossip, (const char *const *)smap, k,
                           nti_clock_ms());
    gossip_after(n, &fl);
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
    return rv == GSP_OK ? NT_OK : NT_ENOMEM;
}

void
nti_cluster_leave(nt_node *n, uint64_t deadline_ms)
{
    if (n->gossip == NULL) {
        return;
    }
    framelist fl = { 0 };
    nti_mtx_lock(&n->gossip_mtx);
    gsp_leave(n->gossip, nti_clock_ms());
    frames_collect(n, &fl);
    nti_mtx_unlock(&n->gossip_mtx);
    frames_send(n, &fl);
    /* Give the leave a moment to reach the members (bounded). */
    uint64_t until = nti_clock_ms() + LEAVE_WAIT_MS;
    if (until > deadline_ms) {
        until = deadline_ms;
    }
    nti_mtx_lock(&n->gossip_mtx);
    while (atomic_load(&n->gossip_sends) > 0 &&
           nti_cv_wait_until(&n->cluster_cv, &n->gossip_mtx,
                             nti_clock_ms() + 5 < until ? nti_clock_ms() + 5
                                                        : until)) {
    }
    n->gossip_stop = true;
    nti_mtx_unlock(&n->gossip_mtx);
    nti_timer_cancel(n->timer, &n->gossip_tmr);
    nti_log(&n->log, NT_LOG_INFO, "node left", "id", n->id, NULL, NULL, NULL,
            NULL);
}

void
nti_cluster_close(nt_node *n)
{
    if (n->timer != NULL) {
        nti_mtx_lock(&n->gossip_mtx);
        n->gossip_stop = true;
        /* A gossip tick already running still sends through the
         * transport: let it finish before the transport goes. */
        while (n->gossip_busy > 0) {
            nti_cv_wait(&n->cluster_cv, &n->gossip_mtx);
        }
        nti_mtx_unlock(&n->gossip_mtx);
        nti_timer_cancel(n->timer, &n->gossip_tmr);
    }
    /* Drop our references to peers before the transport frees them. */
    for (nti_member *m = n->member_list; m != NULL; m = m->next) {
        nti_mtx_lock(&m->mtx);
        nti_peer *p = m->peer;
        m->peer = NULL;
        nti_mtx_unlock(&m->mtx);
        if (p != NULL) {
            nti_peer_rele(p);
        }
    }
    for (size_t i = 0; i < n->nservers; i++) {
        nti_peer_rele(n->servers[i]);
    }
    n->nservers = 0;
    /* Calls waiting for late results end here, while their peers live;
     * the transport fails the rest as it closes. */
    nti_later_fail_all(n, NT_ECLOSED);
    nti_tp_free(n->tp);
    n->tp = NULL;
    free(n->servers);
    n->servers = NULL;
    gsp_free(n->gossip);
    n->gossip = NULL;
    gsp_keyring_free(n->keyring);
    n->keyring = NULL;
}

/* After the index is freed (it references the members' owners). */
void
nti_cluster_free_members(nt_node *n)
{
    nti_member *m = n->member_list;
    while (m != NULL) {
        nti_member *next = m->next;
        nti_mtx_fini(&m->mtx);
        free(m);
        m = next;
    }
    n->member_list = NULL;
    nti_htab_fini(&n->members);
    nti_cv_fini(&n->cluster_cv);
    nti_mtx_fini(&n->gossip_mtx);
    nti_htab_fini(&n->later);
    nti_mtx_fini(&n->later_mtx);
}
