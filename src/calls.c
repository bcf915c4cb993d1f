/* SPDX-License-Identifier: MIT */
/*
 * Calls across nodes (see docs/PROTOCOL.md, "Batched calls"): serving the
 * calls peers send us (a CALL, or a CALLS frame of items) and making ours
 * (one CALLS item per member, answered in the CALLS_ACK or later by a
 * RESULTS_TO item).
 *
 * Design notes
 * ------------
 * Callee.  A call becomes an nti_call whose completion callback encodes
 * the results and answers.  A CALLS frame's reply waits until every item
 * has finished or HOLD_MS passed; the items still running are answered
 * 'later' and their results go to the caller's reply_to address.
 *
 * Caller.  An item is in n->later (by ref) from submission until its
 * results are in.  A 'later' item fails when its connection drops, is
 * forgotten once its call has ended otherwise (a once-a-second sweep), and
 * fails at close.
 *
 * Lock order: cframe.mtx -> the timer's lock (the hold timer); later_mtx
 * is a leaf.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_impl.h"

/* ---- serving calls -------------------------------------------------------- */

/* Starts a call of the local registrations wm names, serving a peer:
 * done(arg, ...) runs once, inline, when it completes.  NT_OK, or an error
 * when nothing was started (then done does not run). */
static int
serve_call(nt_node *n, const nti_wmsg *wm, const char *from,
           nt_response_fn done, void *arg)
{
    size_t k = wm->nregs;
    const char *ids[NTI_MAX_TARGETS];
    nti_reg *regs[NTI_MAX_TARGETS];
    size_t slots[NTI_MAX_TARGETS], nfound = 0;
    for (size_t i = 0; i < k; i++) {
        ids[i] = n->id;
    }
    nti_call *c = NULL;
    nti_msg *m = nti_msg_alloc(wm->object, wm->id, wm->cmd,
                               wm->from[0] ? wm->from : from, wm->data,
                               wm->len);
    if (m == NULL || nti_call_alloc(n->rpc, k, ids, NULL, &c) != NT_OK) {
        if (m != NULL) {
            nti_msg_rele(m);
        }
        return NT_ENOMEM;
    }
    nti_call_unmeasured(c);
    nti_call_inline_cb(c); /* done only encodes and sends */
    int rv = nti_call_start(c, UINT64_MAX, NULL, done, arg);
    if (rv != NT_OK) {
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        nti_reg *reg = nti_index_get(n->index, &n->local, nti_wire_reg(wm, i));
        if (reg != NULL && reg->kind == NTI_RPC) {
            regs[nfound] = reg;
            slots[nfound++] = i;
        } else if (reg != NULL) {
            nti_reg_rele(reg);
        }
    }
    rv = nti_deliver_call_local(n, c, regs, slots, nfound, m,
                                (wm->flags & NTI_CALL_NESTED) != 0);
    if (rv != NT_OK) {
        if (!nti_call_abort(c)) {
            rv = NT_OK; /* a concurrent close completes it: done runs */
        }
    } else {
        /* Registrations gone since the caller routed: no target. */
        size_t j = 0;
        for (size_t i = 0; i < k; i++) {
            if (j < nfound && slots[j] == i) {
                j++;
                continue;
            }
            nti_call_fill(c, i, NT_ENOTARGET, 0, NULL, 0);
        }
    }
    for (size_t i = 0; i < nfound; i++) {
        nti_reg_rele(regs[i]);
    }
out:
    nti_msg_rele(m);
    nti_call_rele(c);
    return rv;
}

void
nti_srv_call(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
             const char *from)
{
    nti_wmsg wm;
    nti_held *hd = nti_held_begin(n, sr, h, r, NTI_T_CALL, &wm);
    if (hd == NULL) {
        return;
    }
    int rv = serve_call(n, &wm, from, nti_held_done, hd);
    if (rv != NT_OK) {
        free(hd);
        nti_reply_results(n, sr, h, rv, NULL);
    }
}

/* ---- batched calls: serving a CALLS frame --------------------------------- */

/* The frame's reply waits until every item has finished or HOLD_MS passed
 * (docs/PROTOCOL.md, "Batched calls"). */
#define HOLD_MS 2
#define CF_RUNNING 0xff

struct cframe;
typedef struct {
    struct cframe *f;
    uint64_t ref;
    uint8_t state;  /* NTI_CA_*, or CF_RUNNING */
    int32_t status; /* NTI_CA_REFUSED */
    uint8_t *res;   /* NTI_CA_DONE: 8 spare bytes + a RESULTS body */
    size_t reslen;  /* of the RESULTS body */
} cf_item;

typedef struct cframe {
    nt_node *n;
    nti_sreq *sr;
    nti_hdr h;
    nti_mtx mtx; /* guards answered, pending and the items until answered */
    _Atomic unsigned refs;
    bool answered;
    size_t pending;
    nti_timer_ent tmr;
    char reply_to[NTI_ADDR_MAX + 1];
    size_t count;
    cf_item it[];
} cframe;

static void
cframe_rele(cframe *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < f->count; i++) {
        free(f->it[i].res);
    }
    nti_mtx_fini(&f->mtx);
    free(f);
}

/* A RESULTS body with `spare` free bytes in front; NULL without memory. */
static uint8_t *
results_body(int status, const nt_results *r, size_t spare, size_t *len)
{
    size_t body = 6, count = r ? r->count : 0;
    for (size_t i = 0; i < count; i++) {
        body += nti_wire_item_size(strlen(r->items[i].node), r->items[i].len);
    }
    uint8_t *buf = malloc(spare + body);
    if (buf == NULL) {
        return NULL;
    }
    gsp_wr w;
    gsp_wr_init(&w, buf + spare, body);
    nti_wire_results_head_put(&w, status, (uint16_t)count);
    for (size_t i = 0; i < count; i++) {
        const nt_result *it = &r->items[i];
        nti_wire_item_put(&w, it->status, it->code, it->node, it->data,
                          it->len);
    }
    *len = body;
    return buf;
}

/* Sends the CALLS_ACK; answered is set, so the items no longer change. */
static void
cframe_answer(cframe *f)
{
    size_t body = 4;
    for (size_t i = 0; i < f->count; i++) {
        const cf_item *it = &f->it[i];
        body += 1 + (it->state == NTI_CA_DONE      ? it->reslen
                     : it->state == NTI_CA_REFUSED ? 4
                                                   : 0);
    }
    gsp_wr w;
    uint8_t *pt = nti_reply_begin(f->n, &f->h, NTI_T_CALLS_ACK, body, &w);
    if (pt != NULL) {
        gsp_wr_u32(&w, (uint32_t)f->count);
        for (size_t i = 0; i < f->count; i++) {
            cf_item *it = &f->it[i];
            gsp_wr_u8(&w, it->state);
            if (it->state == NTI_CA_DONE) {
                gsp_wr_bytes(&w, it->res + 8, it->reslen);
            } else if (it->state == NTI_CA_REFUSED) {
                gsp_wr_u32(&w, (uint32_t)it->status);
            }
            free(it->res);
            it->res = NULL;
        }
    }
    nti_sreq_reply(f->sr, pt, NTI_HDR_LEN + body);
}

/* Results of an item answered 'later': to the caller's reply_to. */
static void
cframe_send_late(cframe *f, uint64_t ref, uint8_t *res, size_t reslen)
{
    nti_peer *p = NULL;
    nti_xitem *x = calloc(1, sizeof(*x));
    if (x == NULL ||
        nti_tp_peer(f->n->tp, f->reply_to, &p) != NT_OK) {
        free(x);
        free(res); /* the caller's deadline ends its wait */
        return;
    }
    for (int i = 0; i < 8; i++) {
        res[i] = (uint8_t)(ref >> (56 - 8 * i));
    }
    memcpy(x->dest, f->h.sender, NTI_ID_LEN);
    x->dest_boot = f->h.sender_boot;
    x->body = res;
    x->len = 8 + reslen;
    nti_peer_results(p, x);
    nti_peer_rele(p);
}

static void
cf_item_done(void *arg, int status, const nt_results *r)
{
    cf_item *it = arg;
    cframe *f = it->f;
    nt_node *n = f->n;
    nti_tp_unhold(n->tp);
    size_t len = 0;
    uint8_t *res = results_body(status, r, 8, &len);
    nti_mtx_lock(&f->mtx);
    bool late = f->answered, all = false;
    if (!late) {
        if (res != NULL) {
            it->state = NTI_CA_DONE;
            it->res = res;
            it->reslen = len;
        } else {
            it->state = NTI_CA_REFUSED;
            it->status = NT_ENOMEM;
        }
        all = --f->pending == 0;
        f->answered = all;
    }
    nti_mtx_unlock(&f->mtx);
    if (late) {
        if (res != NULL) {
            cframe_send_late(f, it->ref, res, len);
        }
    } else if (all) {
        if (nti_timer_cancel(n->timer, &f->tmr)) {
            cframe_rele(f);
        }
        cframe_answer(f);
    }
    cframe_rele(f);
}

static void
cframe_hold_over(void *arg)
{
    cframe *f = arg;
    nti_mtx_lock(&f->mtx);
    bool answer = !f->answered;
    if (answer) {
        f->answered = true;
        for (size_t i = 0; i < f->count; i++) {
            if (f->it[i].state == CF_RUNNING) {
                f->it[i].state = NTI_CA_LATER;
                nti_tp_count_deferred(f->n->tp);
            }
        }
    }
    nti_mtx_unlock(&f->mtx);
    if (answer) {
        cframe_answer(f);
    }
    cframe_rele(f);
}

void
nti_srv_calls(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
              const char *from)
{
    const uint8_t *addr = NULL;
    size_t alen = 0;
    uint32_t count = 0;
    /* nti_wire_check has vetted the whole frame. */
    gsp_rd_blob8(r, NTI_ADDR_MAX, &addr, &alen);
    gsp_rd_u32(r, &count);
    cframe *f = calloc(1, sizeof(*f) + (size_t)count * sizeof(cf_item));
    if (f == NULL) {
        nti_sreq_reply(sr, NULL, 0); /* the caller learns NT_ENOMEM */
        return;
    }
    f->n = n;
    f->sr = sr;
    f->h = *h;
    nti_mtx_init(&f->mtx);
    atomic_init(&f->refs, 1);
    nti_timer_ent_init(&f->tmr, cframe_hold_over, f);
    memcpy(f->reply_to, addr, alen);
    f->count = count;
    f->pending = 1; /* until every item is started */
    for (uint32_t i = 0; i < count; i++) {
        cf_item *it = &f->it[i];
        nti_wmsg wm;
        it->f = f;
        it->state = NTI_CA_REFUSED;
        if (nti_wire_calls_item_get(r, &it->ref, &wm) != GSP_OK) {
            it->status = NT_EPROTO;
            continue;
        }
        if (!nti_tp_hold(n->tp)) { /* max_inflight calls running here */
            it->status = NT_EAGAIN;
            continue;
        }
        nti_mtx_lock(&f->mtx);
        it->state = CF_RUNNING;
        f->pending++;
        nti_mtx_unlock(&f->mtx);
        atomic_fetch_add(&f->refs, 1);
        int rv = serve_call(n, &wm, from, cf_item_done, it);
        if (rv != NT_OK) {
            nti_tp_unhold(n->tp);
            atomic_fetch_sub(&f->refs, 1);
            nti_mtx_lock(&f->mtx);
            it->state = NTI_CA_REFUSED;
            it->status = rv;
            f->pending--;
            nti_mtx_unlock(&f->mtx);
        }
    }
    nti_mtx_lock(&f->mtx);
    bool all = --f->pending == 0;
    f->answered = all;
    if (!all) {
        atomic_fetch_add(&f->refs, 1); /* the hold timer's */
        if (nti_timer_schedule_coarse(n->timer, &f->tmr,
                                      nti_clock_ms() + HOLD_MS) != NT_OK) {
            atomic_fetch_sub(&f->refs, 1);
            f->answered = true; /* no timer: answer now, rest later */
            all = true;
            for (size_t i = 0; i < f->count; i++) {
                if (f->it[i].state == CF_RUNNING) {
                    f->it[i].state = NTI_CA_LATER;
                    nti_tp_count_deferred(n->tp);
                }
            }
        }
    }
    nti_mtx_unlock(&f->mtx);
    if (all) {
        cframe_answer(f);
    }
    cframe_rele(f);
}

/* ---- batched calls: the caller side -------------------------------------- */

/* Fills slots[0..k) of c from a RESULTS body at rd (or all with the
 * error it carries). */
static void
fill_results(nti_call *c, const size_t *slots, size_t k, gsp_rd *rd)
{
    int32_t st;
    uint16_t count;
    int rv = NT_OK;
    if (nti_wire_results_head_get(rd, &st, &count) != GSP_OK) {
        rv = NT_EPROTO;
    } else if (st != NT_OK) {
        rv = st;
    }
    for (size_t i = 0; i < k; i++) {
        nti_witem it;
        if (rv != NT_OK) {
            nti_call_fill(c, slots[i], rv, 0, NULL, 0);
        } else if (i >= count || nti_wire_item_get(rd, &it) != GSP_OK) {
            nti_call_fill(c, slots[i], NT_EPROTO, 0, NULL, 0);
        } else {
            nti_call_fill(c, slots[i], it.status, it.code, it.data, it.len);
        }
    }
}

/* One call to one member: a CALLS item, and the slots it answers.  It is
 * in n->later (by ref) from submission until its results are in, so that
 * a RESULTS_TO item that overtakes its CALLS_ACK still finds it. */
typedef struct {
    nti_xitem x;           /* first: what the transport queues */
    nti_hnode hn;
    _Atomic unsigned refs; /* the transport's done + the table */
    nt_node *n;
    nti_peer *peer;        /* held */
    nti_call *call;        /* held */
    bool in_table, later;  /* under later_mtx */
    uint64_t ref;
    size_t k;
    size_t slots[];
} call_item;

static void
ci_rele(call_item *ci)
{
    if (atomic_fetch_sub(&ci->refs, 1) != 1) {
        return;
    }
    nti_peer_rele(ci->peer);
    nti_call_rele(ci->call);
    free(ci->x.body);
    free(ci);
}

/* Takes ci out of the table; true when it was there (its reference then
 * belongs to the caller). */
static bool
later_remove(nt_node *n, call_item *ci)
{
    nti_mtx_lock(&n->later_mtx);
    bool had = ci->in_table;
    if (had) {
        nti_htab_remove(&n->later, &ci->hn);
        ci->in_table = false;
    }
    nti_mtx_unlock(&n->later_mtx);
    return had;
}

/* The item for ref from member sender, taken out of the table.  A
 * 'later' item gives back its place in the peer's calls in flight. */
static call_item *
later_take(nt_node *n, uint64_t ref, const uint8_t *sender)
{
    uint64_t hash = nti_mix64(ref);
    nti_mtx_lock(&n->later_mtx);
    nti_hnode *hn = nti_htab_find(&n->later, hash);
    call_item *ci = NULL;
    for (; hn != NULL; hn = nti_htab_next(hn, hash)) {
        call_item *c = (call_item *)((char *)hn - offsetof(call_item, hn));
        if (c->ref == ref && memcmp(c->x.dest, sender, NTI_ID_LEN) == 0) {
            ci = c;
            nti_htab_remove(&n->later, hn);
            ci->in_table = false;
            break;
        }
    }
    bool was_later = ci != NULL && ci->later;
    nti_mtx_unlock(&n->later_mtx);
    if (was_later) {
        nti_peer_call_release(ci->peer, true);
    }
    return ci;
}

/* Takes out of the table every 'later' item that pick() selects and
 * fails its open slots with status. */
static void
later_fail(nt_node *n, bool (*pick)(call_item *, const void *),
           const void *arg, int status)
{
    call_item *list = NULL;
    nti_mtx_lock(&n->later_mtx);
    for (size_t s = 0; s < n->later.nslots; s++) {
        nti_hnode *hn = n->later.slots[s];
        while (hn != NULL) {
            nti_hnode *next = hn->next;
            call_item *ci = (call_item *)((char *)hn - offsetof(call_item, hn));
            if (ci->later && pick(ci, arg)) {
                nti_htab_remove(&n->later, hn);
                ci->in_table = false;
                ci->x.next = (nti_xitem *)list; /* the transport is done */
                list = ci;
            }
            hn = next;
        }
    }
    nti_mtx_unlock(&n->later_mtx);
    while (list != NULL) {
        call_item *next = (call_item *)list->x.next;
        nti_peer_call_release(list->peer, false);
        for (size_t i = 0; i < list->k; i++) {
            nti_call_fill(list->call, list->slots[i], status, 0, NULL, 0);
        }
        ci_rele(list);
        list = next;
    }
}

static bool
pick_peer(call_item *ci, const void *p)
{
    return ci->peer == p;
}

static bool
pick_complete(call_item *ci, const void *unused)
{
    (void)unused;
    return nti_call_is_complete(ci->call); /* ended by its deadline */
}

static bool
pick_all(call_item *ci, const void *unused)
{
    (void)ci;
    (void)unused;
    return true;
}

/* The connection to a member dropped: its 'later' calls fail at once, as
 * calls in flight on that connection do. */
void
nti_later_peer_lost(nt_node *n, nti_peer *p)
{
    later_fail(n, pick_peer, p, NT_EPEERLOST);
}

/* Once a second: forget items whose call has ended otherwise. */
void
nti_later_sweep(nt_node *n)
{
    uint64_t now = nti_clock_ms();
    nti_mtx_lock(&n->later_mtx);
    bool due = now - n->later_swept_ms >= 1000 && n->later.count > 0;
    if (due) {
        n->later_swept_ms = now;
    }
    nti_mtx_unlock(&n->later_mtx);
    if (due) {
        later_fail(n, pick_complete, NULL, NT_ETIMEDOUT);
    }
}

/* At close, while the transport still lives: every 'later' item fails
 * with status, and so does every item acknowledged 'later' from now on. */
void
nti_later_fail_all(nt_node *n, int status)
{
    nti_mtx_lock(&n->later_mtx);
    n->later_closed = true;
    nti_mtx_unlock(&n->later_mtx);
    later_fail(n, pick_all, NULL, status);
}

static void
call_item_done(nti_xitem *x, int state, int status, gsp_rd *rd)
{
    call_item *ci = (call_item *)x;
    nt_node *n = ci->n;
    if (state == NTI_CA_LATER) {
        /* It keeps its place in the peer's calls in flight until its
         * results come (or it fails); if they overtook this answer, or
         * the node is closing, that is now. */
        nti_mtx_lock(&n->later_mtx);
        bool closed = n->later_closed && ci->in_table;
        if (closed) {
            nti_htab_remove(&n->later, &ci->hn);
            ci->in_table = false;
        }
        ci->later = ci->in_table;
        bool done = !ci->later;
        nti_mtx_unlock(&n->later_mtx);
        if (done) {
            nti_peer_call_release(ci->peer, true);
        }
        if (closed) {
            for (size_t i = 0; i < ci->k; i++) {
                nti_call_fill(ci->call, ci->slots[i], NT_ECLOSED, 0, NULL, 0);
            }
            ci_rele(ci); /* the table's */
        }
    } else {
        bool mine = later_remove(n, ci);
        if (state == NTI_CA_DONE) {
            fill_results(ci->call, ci->slots, ci->k, rd);
        } else {
            if (state != NTI_CA_REFUSED &&
                (status == NT_EUNREACHABLE || status == NT_ECLOSED)) {
                status = NT_EPEERLOST;
            }
            for (size_t i = 0; i < ci->k; i++) {
                nti_call_fill(ci->call, ci->slots[i], status, 0, NULL, 0);
            }
        }
        if (mine) {
            ci_rele(ci);
        }
    }
    ci_rele(ci);
}

/* RESULTS_TO: results of our 'later' calls. */
void
nti_srv_results(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r)
{
    uint32_t count = 0;
    gsp_rd_u32(r, &count); /* vetted by nti_wire_check */
    for (uint32_t i = 0; i < count; i++) {
        uint64_t ref = 0;
        gsp_rd_u64(r, &ref);
        gsp_rd body = *r;
        nti_wire_results_skip(r);
        call_item *ci = later_take(n, ref, h->sender);
        if (ci != NULL) {
            fill_results(ci->call, ci->slots, ci->k, &body);
            ci_rele(ci);
        }
    }
    nti_reply_ack(n, sr, h, count, NT_OK);
}

typedef struct {
    nti_call *call;
    nti_msg *m;
    bool nested;
} call_arg;

static int
call_one(nt_node *n, nti_member *mb, nti_reg **regs, size_t first, size_t k,
         void *arg)
{
    call_arg *ca = arg;
    uint8_t dest[GSP_ID_LEN];
    uint64_t boot, ids[NTI_MAX_TARGETS];
    nti_peer *p = nti_member_peer(mb, dest, &boot, NULL);
    k = k > NTI_MAX_TARGETS ? NTI_MAX_TARGETS : k;
    call_item *ci = p != NULL ? calloc(1, sizeof(*ci) + k * sizeof(size_t))
                              : NULL;
    int rv = p == NULL ? NT_EPEERLOST : ci == NULL ? NT_ENOMEM : NT_OK;
    const nti_msg *m = ca->m;
    size_t len = 8 + nti_wire_msg_size(NTI_T_CALL, m->from, m->object,
                                       m->cmd, k, m->len);
    if (rv == NT_OK && (ci->x.body = malloc(len)) == NULL) {
        rv = NT_ENOMEM;
    }
    if (rv != NT_OK) {
        for (size_t i = 0; i < k; i++) {
            nti_call_fill(ca->call, first + i, rv, 0, NULL, 0);
        }
        free(ci);
        if (p != NULL) {
            nti_peer_rele(p);
        }
        return NT_OK;
    }
    for (size_t i = 0; i < k; i++) {
        ids[i] = regs[first + i]->id;
        ci->slots[i] = first + i;
    }
    ci->k = k;
    ci->n = n;
    ci->peer = p; /* nti_member_peer's hold */
    ci->call = ca->call;
    nti_call_hold(ca->call);
    ci->ref = atomic_fetch_add(&n->next_ref, 1) + 1;
    atomic_init(&ci->refs, 2);
    memcpy(ci->x.dest, dest, NTI_ID_LEN);
    ci->x.dest_boot = boot;
    ci->x.len = len;
    ci->x.done = call_item_done;
    gsp_wr w;
    gsp_wr_init(&w, ci->x.body, len);
    gsp_wr_u64(&w, ci->ref);
    nti_wire_msg_put(&w, NTI_T_CALL, ca->nested ? NTI_CALL_NESTED : 0, 0,
                     m->from, m->id, m->object, m->cmd, ids, k, m->data,
                     m->len);
    ci->hn.hash = nti_mix64(ci->ref);
    nti_mtx_lock(&n->later_mtx);
    rv = nti_htab_insert(&n->later, &ci->hn);
    ci->in_table = rv == NT_OK;
    nti_mtx_unlock(&n->later_mtx);
    if (rv == NT_OK) {
        rv = nti_peer_call(p, &ci->x);
    }
    if (rv != NT_OK) {
        if (later_remove(n, ci)) {
            ci_rele(ci);
        }
        for (size_t i = 0; i < k; i++) {
            nti_call_fill(ca->call, first + i,
                          rv == NT_EUNREACHABLE ? NT_EPEERLOST : rv, 0, NULL,
                          0);
        }
        ci_rele(ci);
    }
    return NT_OK;
}

void
nti_remote_call(nt_node *n, nti_targets *t, nti_call *c, nti_msg *m,
                bool nested)
{
    call_arg ca = { c, m, nested };
    nti_for_each_remote(n, t, call_one, &ca);
}
