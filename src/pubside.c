/* SPDX-License-Identifier: MIT */
/*
 * Publisher side (see docs/PROTOCOL.md).  A node without a listen address
 * keeps a peer per smap entry and sends everything to the first connected
 * one: publishes, calls and info requests, which that server routes or
 * answers for it.
 *
 * Lock order: pubreq.mtx is a leaf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_impl.h"

#define PUB_GRACE_MS 2000     /* publisher call: beyond the call timeout */

/* ---- publisher side ---------------------------------------------------------------- */

/* A request to the server, shared by the waiting caller and the
 * transport (two references). */
typedef struct {
    nti_creq base;
    _Atomic unsigned refs;
    nt_node *n;
    nti_mtx mtx; /* guards done, status, pt, ptlen, hdr */
    nti_cv cv;
    bool done;
    int status;
    nti_hdr hdr;
    uint8_t *pt;
    size_t ptlen;
    /* asynchronous completion (calls) */
    nti_waiter *w;
    nt_results **out;
    nt_response_fn cb;
    void *arg;
    nti_task cbtask;
    nt_results *res;
    int res_status;
} pubreq;

static void
pubreq_rele(pubreq *q)
{
    if (atomic_fetch_sub(&q->refs, 1) != 1) {
        return;
    }
    free(q->pt);
    free(q->base.frame);
    nti_cv_fini(&q->cv);
    nti_mtx_fini(&q->mtx);
    free(q);
}

/* Decodes a RESULTS reply into nt_results (NULL + status on failure). */
static nt_results *
results_decode(const uint8_t *pt, size_t len, int *status)
{
    gsp_rd rd;
    int32_t st;
    uint16_t count;
    gsp_rd_init(&rd, pt + NTI_HDR_LEN, len - NTI_HDR_LEN);
    if (nti_wire_results_head_get(&rd, &st, &count) != GSP_OK) {
        *status = NT_EPROTO;
        return NULL;
    }
    if (st != NT_OK) {
        *status = st;
        return NULL;
    }
    /* One block: header, items, then node ids and payloads copied in. */
    size_t blk = sizeof(nt_results) + count * sizeof(nt_result);
    nt_results *r = calloc(1, blk + count * (GSP_ID_HEX_LEN + 1));
    if (r == NULL) {
        *status = NT_ENOMEM;
        return NULL;
    }
    r->count = count;
    r->items = (nt_result *)(r + 1);
    char *names = (char *)(r->items + count);
    for (uint16_t i = 0; i < count; i++) {
        nti_witem it;
        nt_result *o = &r->items[i];
        char *nm = names + i * (GSP_ID_HEX_LEN + 1);
        if (nti_wire_item_get(&rd, &it) != GSP_OK) {
            r->count = i;
            nt_results_free(r);
            *status = NT_EPROTO;
            return NULL;
        }
        size_t nl = it.nodelen < GSP_ID_HEX_LEN ? it.nodelen : GSP_ID_HEX_LEN;
        memcpy(nm, it.node, nl);
        nm[nl] = '\0';
        o->node = nm;
        o->status = it.status;
        o->code = it.code;
        o->len = it.len;
        if (it.len > 0 || it.status != NT_OK) {
            char *d = malloc(it.len + 1);
            if (d == NULL) {
                r->count = i;
                nt_results_free(r);
                *status = NT_ENOMEM;
                return NULL;
            }
            memcpy(d, it.data, it.len);
            d[it.len] = '\0';
            o->data = d;
        }
    }
    *status = NT_OK;
    return r;
}

static void
pub_cb_run(nti_task *t)
{
    pubreq *q = (pubreq *)((char *)t - offsetof(pubreq, cbtask));
    q->cb(q->arg, q->res_status, q->res);
    nt_results_free(q->res);
    q->res = NULL;
    pubreq_rele(q);
}

static void
pub_done(nti_creq *r, int rv, const nti_hdr *h, const uint8_t *pt,
         size_t len)
{
    pubreq *q = (pubreq *)r;
    nt_node *n = q->n;
    if (q->cb != NULL || q->w != NULL) {
        /* Asynchronous call: decode and hand over. */
        int st = rv;
        nt_results *res = NULL;
        if (rv == NT_OK && h != NULL && h->type == NTI_T_RESULTS) {
            res = results_decode(pt, len, &st);
        } else if (rv == NT_OK) {
            st = NT_EPROTO;
        }
        if (res == NULL) {
            /* Always a list: one item with the error. */
            res = nti_results_single(st);
        }
        if (q->w != NULL) {
            *q->out = res; /* NULL only without memory */
            nti_waiter_done(n->rpc, q->w);
            pubreq_rele(q);
            return;
        }
        q->res = res;
        q->res_status = st == NT_ECLOSED ? NT_ECLOSED : NT_OK;
        q->cbtask.run = pub_cb_run;
        q->cbtask.drop = pub_cb_run;
        q->cbtask.next = NULL;
        if (nti_pool_push_shared(n->pool, &q->cbtask, 1, true) != NT_OK) {
            pub_cb_run(&q->cbtask);
        }
        return;
    }
    nti_mtx_lock(&q->mtx);
    q->done = true;
    q->status = rv;
    if (rv == NT_OK && h != NULL) {
        q->hdr = *h;
        q->pt = malloc(len);
        if (q->pt != NULL) {
            memcpy(q->pt, pt, len);
            q->ptlen = len;
        } else {
            q->status = NT_ENOMEM;
        }
    }
    nti_cv_broadcast(&q->cv);
    nti_mtx_unlock(&q->mtx);
    pubreq_rele(q);
}

/* The first server that is connected, waiting for one until deadline. */
static nti_peer *
pub_server(nt_node *n, uint64_t deadline, size_t *start)
{
    for (;;) {
        for (size_t i = 0; i < n->nservers; i++) {
            size_t k = (*start + i) % n->nservers;
            if (nti_peer_connected(n->servers[k])) {
                *start = k;
                return n->servers[k];
            }
        }
        uint64_t now = nti_clock_ms();
        if (now >= deadline || atomic_load(&n->closing)) {
            return NULL;
        }
        uint64_t slice = now + 20 < deadline ? now + 20 : deadline;
        nti_peer_wait_connected(n->servers[*start % n->nservers], slice);
    }
}

static pubreq *
pubreq_alloc(nt_node *n, uint8_t type, size_t body, gsp_wr *w)
{
    pubreq *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->base.len = NTI_HDR_LEN + body;
    q->base.frame = malloc(q->base.len);
    if (q->base.frame == NULL) {
        free(q);
        return NULL;
    }
    atomic_init(&q->refs, 1);
    q->n = n;
    nti_mtx_init(&q->mtx);
    nti_cv_init(&q->cv);
    q->base.done = pub_done;
    q->base.channel = NTI_CH_DATA;
    q->base.seq = nti_tp_hdr(n->tp, type, NULL, 0, 0, q->base.frame);
    gsp_wr_init(w, q->base.frame + NTI_HDR_LEN, body);
    return q;
}

/* Sends q to the first reachable server, failing over while the request
 * never left.  On NT_OK the transport holds a reference. */
static int
pub_submit(nt_node *n, pubreq *q, uint64_t deadline)
{
    if (n->nservers == 0) {
        return NT_EUNREACHABLE;
    }
    size_t start = 0;
    nti_peer *p = pub_server(n, deadline, &start);
    if (p == NULL) {
        return atomic_load(&n->closing) ? NT_ECLOSED : NT_EUNREACHABLE;
    }
    /* The frame is consumed by submit; keep a copy for nothing else. */
    atomic_fetch_add(&q->refs, 1);
    int rv = nti_peer_submit(p, &q->base);
    if (rv != NT_OK) {
        atomic_fetch_sub(&q->refs, 1);
    }
    return rv;
}

/* Waits for a synchronous request; returns its status. */
static int
pub_wait(pubreq *q, uint64_t deadline)
{
    nti_pool_block_begin();
    nti_mtx_lock(&q->mtx);
    while (!q->done && nti_cv_wait_until(&q->cv, &q->mtx, deadline)) {
    }
    int rv = q->done ? q->status : NT_ETIMEDOUT;
    nti_mtx_unlock(&q->mtx);
    nti_pool_block_end();
    return rv;
}

int
nti_pub_publish(nt_node *n, const char *object, uint64_t id,
                const char *cmd, const void *data, size_t len)
{
    gsp_wr w;
    size_t body = nti_wire_msg_size(NTI_T_PUBLISH, "", object, cmd, 0,
                                    len);
    pubreq *q = pubreq_alloc(n, NTI_T_PUBLISH, body, &w);
    if (q == NULL) {
        return NT_ENOMEM;
    }
    nti_wire_msg_put(&w, NTI_T_PUBLISH, 0, 0, "", id, object, cmd, NULL, 0,
                     data, len);
    uint64_t deadline = nti_clock_ms() + n->publish_timeout_ms;
    int rv = pub_submit(n, q, deadline);
    if (rv == NT_OK) {
        rv = pub_wait(q, deadline);
    }
    if (rv == NT_OK) {
        gsp_rd rd;
        uint32_t acc = 0, st = 0;
        gsp_rd_init(&rd, q->pt + NTI_HDR_LEN, q->ptlen - NTI_HDR_LEN);
        gsp_rd_u32(&rd, &acc);
        gsp_rd_u32(&rd, &st);
        rv = q->hdr.type != NTI_T_ACK ? NT_EPROTO
             : acc == 1               ? NT_OK
             : (int32_t)st < 0        ? (int32_t)st
                                      : NT_EPROTO;
    }
    pubreq_rele(q);
    return rv;
}

int
nti_pub_call(nt_node *n, const char *object, uint64_t id, const char *cmd,
             const void *data, size_t len, int timeout_ms, nti_waiter *w,
             nt_response_fn cb, void *arg, nt_results **out)
{
    gsp_wr w_;
    size_t body = nti_wire_msg_size(NTI_T_ROUTE_CALL, "", object, cmd, 0,
                                    len);
    pubreq *q = pubreq_alloc(n, NTI_T_ROUTE_CALL, body, &w_);
    if (q == NULL) {
        return NT_ENOMEM;
    }
    nti_wire_msg_put(&w_, NTI_T_ROUTE_CALL, 0,
                     timeout_ms < 0 ? UINT32_MAX : (uint32_t)timeout_ms, "",
                     id, object, cmd, NULL, 0, data, len);
    uint64_t deadline = timeout_ms < 0
                            ? UINT64_MAX
                            : nti_clock_ms() + (uint64_t)timeout_ms +
                                  PUB_GRACE_MS;
    q->cb = cb;
    q->arg = arg;
    q->w = w;
    q->out = out;
    if (w != NULL) {
        nti_waiter_add(n->rpc, w);
    }
    uint64_t connect_by = timeout_ms < 0
                              ? nti_clock_ms() + n->publish_timeout_ms
                                         : deadline - PUB_GRACE_MS;
    int rv = pub_submit(n, q, connect_by);
    if (rv != NT_OK) {
        if (w != NULL) {
            nti_waiter_done(n->rpc, w);
        }
        pubreq_rele(q);
        return rv;
    }
    if (cb != NULL || w != NULL) {
        pubreq_rele(q); /* the transport's reference completes it */
        return NT_OK;
    }
    rv = pub_wait(q, deadline);
    if (rv == NT_OK) {
        if (q->hdr.type != NTI_T_RESULTS) {
            rv = NT_EPROTO;
        } else {
            *out = results_decode(q->pt, q->ptlen, &rv);
        }
    }
    pubreq_rele(q);
    return rv;
}

int
nti_pub_info(nt_node *n, const char *what, int json, int timeout_ms,
             char **out)
{
    if (!nti_name_ok(what)) {
        return NT_EINVAL;
    }
    gsp_wr w;
    pubreq *q = pubreq_alloc(n, NTI_T_INFO, 1 + strlen(what) + 1, &w);
    if (q == NULL) {
        return NT_ENOMEM;
    }
    nti_wire_name_put(&w, what);
    gsp_wr_u8(&w, json ? NT_INFO_JSON : NT_INFO_TEXT);
    uint64_t deadline = nti_deadline(timeout_ms < 0
                                         ? (int)n->publish_timeout_ms
                                                    : timeout_ms);
    int rv = pub_submit(n, q, deadline);
    if (rv == NT_OK) {
        rv = pub_wait(q, deadline);
    }
    if (rv == NT_OK) {
        gsp_rd rd;
        uint32_t st = 0;
        const uint8_t *p = NULL;
        size_t len = 0;
        gsp_rd_init(&rd, q->pt + NTI_HDR_LEN, q->ptlen - NTI_HDR_LEN);
        gsp_rd_u32(&rd, &st);
        gsp_rd_blob32(&rd, UINT32_MAX, &p, &len);
        if (q->hdr.type != NTI_T_TEXT || gsp_rd_done(&rd, 1) != GSP_OK) {
            rv = NT_EPROTO;
        } else if ((int32_t)st != NT_OK) {
            rv = (int32_t)st;
        } else if ((*out = malloc(len + 1)) == NULL) {
            rv = NT_ENOMEM;
        } else {
            memcpy(*out, p, len);
            (*out)[len] = '\0';
        }
    }
    pubreq_rele(q);
    return rv;
}

/* Publisher: poll the server's status until pred holds. */
int
nti_pub_wait_status(nt_node *n, unsigned members, bool converged,
                    int timeout_ms)
{
    uint64_t deadline = nti_deadline(timeout_ms);
    for (;;) {
        char *text = NULL;
        uint64_t now = nti_clock_ms();
        int left = deadline == UINT64_MAX ? (int)n->publish_timeout_ms
                   : deadline > now       ? (int)(deadline - now)
                                          : 0;
        int rv = nti_pub_info(n, "status", 0, left, &text);
        if (rv == NT_OK) {
            unsigned m = 0;
            int c = 0;
            bool ok = sscanf(text, "members=%u converged=%d", &m, &c) == 2 &&
                      m >= members && (!converged || c == 1);
            free(text);
            if (ok) {
                return NT_OK;
            }
        } else if (rv == NT_ECLOSED) {
            return rv;
        }
        if (nti_clock_ms() >= deadline) {
            return NT_ETIMEDOUT;
        }
        /* Ask again shortly; bounded by the deadline. */
        nti_mtx_lock(&n->gossip_mtx);
        nti_cv_wait_until(&n->cluster_cv, &n->gossip_mtx,
                          nti_clock_ms() + 50 < deadline
                              ? nti_clock_ms() + 50
                              : deadline);
        nti_mtx_unlock(&n->gossip_mtx);
    }
}
