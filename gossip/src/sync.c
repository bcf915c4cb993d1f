/* SPDX-License-Identifier: MIT */
/*
 * sync.c - Scuttlebutt push-pull anti-entropy: SYNC, BUCKETS, DIGEST,
 * WANT and UNITS sections, and the per-frame reply.
 *
 * Design notes:
 * - An exchange only goes as deep as needed: equal view digests stop at
 *   SYNC, equal bucket hashes stop at BUCKETS, and DIGEST lists only the
 *   members of differing buckets. Steady state therefore costs one small
 *   frame per peer per round whatever the number of entries.
 * - A UNITS section for owner X states "these are all my units of X with a
 *   version in (from, to]", oldest first, X's header first when the peer
 *   lacks it. The receiver advances its watermark for X to `to` only if it
 *   already held everything up to `from`. Units above our own watermark
 *   (received out of order) are never offered, so the claim stays true.
 * - A peer whose watermark is below X's tombstone floor may still hold an
 *   entry whose deletion we have forgotten: it gets X from scratch with the
 *   RESET flag and drops its old copy first.
 * - Every reply fits in one frame; the next round continues the transfer.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

fbuild *gspi_reply(gsp *g, const member *to)
{
    if (g->reply_on)
        return &g->reply;
    if (gspi_fb_begin(g, &g->reply, to->addr))
        return NULL;
    g->reply_on = true;
    return &g->reply;
}

int gspi_reply_finish(gsp *g)
{
    if (!g->reply_on)
        return 0;
    g->reply_on = false;
    if (gspi_fb_empty(&g->reply)) {
        gspi_fb_abort(g, &g->reply);
        return 0;
    }
    return gspi_fb_finish(g, &g->reply);
}

static bool is_live(gsp_state s)
{
    return s == GSP_ALIVE || s == GSP_SUSPECT;
}

int gspi_sync_on_sync(gsp *g, const member *from, const uint8_t *digest)
{
    if (memcmp(digest, g->view, GSP_DIGEST_LEN) == 0)
        return 0;
    fbuild *b = gspi_reply(g, from);
    if (!b)
        return GSP_ENOMEM;
    if (gspi_fb_sec_begin(b, SEC_BUCKETS))
        return 0;
    for (int i = 0; i < NBUCKETS; i++)
        gsp_wr_bytes(&b->w, g->bh[i], 8);
    gspi_fb_sec_end(b);
    return 0;
}

static void write_item(gsp_wr *w, const member *m)
{
    gsp_wr_bytes(w, m->id, GSP_ID_LEN);
    gsp_wr_u64(w, m->inc);
    gsp_wr_u64(w, m->hv);
    gsp_wr_u64(w, m->wm);
    gsp_wr_u8(w, (uint8_t)m->state);
}

int gspi_sync_on_buckets(gsp *g, const member *from, gsp_rd *r)
{
    const uint8_t *theirs;
    gsp_rd_bytes(r, NBUCKETS * 8, &theirs);
    if (r->err)
        return 0;
    fbuild *b = gspi_reply(g, from);
    if (!b)
        return GSP_ENOMEM;
    if (gspi_fb_sec_begin(b, SEC_DIGEST))
        return 0;
    uint8_t *bm = gsp_wr_reserve(&b->w, 8);
    uint8_t *cnt = gsp_wr_reserve(&b->w, 2);
    if (!bm || !cnt) {
        gspi_fb_sec_abort(b);
        return 0;
    }
    uint64_t bitmap = 0;
    size_t n = 0;
    unsigned start = (unsigned)gspi_randn(g, NBUCKETS);
    for (unsigned k = 0; k < NBUCKETS; k++) {
        unsigned i = (start + k) % NBUCKETS;
        if (memcmp(theirs + 8 * i, g->bh[i], 8) == 0)
            continue;
        size_t j = 0;
        for (; j < g->bk[i].n && n < UINT16_MAX; j++) {
            if (gsp_wr_left(&b->w) < DIGEST_ITEM_LEN)
                break;
            write_item(&b->w, g->bk[i].v[j]);
            n++;
        }
        if (j < g->bk[i].n)
            break;
        bitmap |= 1ULL << i;
    }
    if (n == 0 && bitmap == 0) {
        gspi_fb_sec_abort(b);
        return 0;
    }
    gsp_put_u64(bm, bitmap);
    gsp_put_u16(cnt, (uint16_t)n);
    gspi_fb_sec_end(b);
    return 0;
}

/* Header-only section (dead/left members: spread the header, no entries). */
static int units_hdr_only(fbuild *b, const member *m)
{
    if (!m->have_hdr || gspi_fb_sec_begin(b, SEC_UNITS))
        return 0;
    gsp_wr_bytes(&b->w, m->id, GSP_ID_LEN);
    gsp_wr_u64(&b->w, m->inc);
    gsp_wr_u64(&b->w, 0);
    gsp_wr_u64(&b->w, 0);
    gsp_wr_u64(&b->w, m->floor);
    gsp_wr_u8(&b->w, 0);
    gsp_wr_u16(&b->w, 1);
    gsp_wr_blob16(&b->w, m->hunit, m->hulen);
    return gspi_fb_sec_end(b) == 0;
}

int gspi_sync_units(gsp *g, fbuild *b, const member *m, uint64_t inc,
                    uint64_t from)
{
    if (!m->have_hdr)
        return 0;
    if (!is_live(m->state))
        return units_hdr_only(b, m);
    uint8_t flags = 0;
    if (inc != m->inc)
        from = 0;
    if (from > 0 && from < m->floor) {
        from = 0;
        flags |= UNITS_F_RESET;
    } else if (from == 0 && m->floor > 0) {
        flags |= UNITS_F_RESET;
    }
    if (from >= m->wm)
        return 0;
    if (gspi_fb_sec_begin(b, SEC_UNITS))
        return 0;
    gsp_wr_bytes(&b->w, m->id, GSP_ID_LEN);
    gsp_wr_u64(&b->w, m->inc);
    gsp_wr_u64(&b->w, from);
    uint8_t *to_p = gsp_wr_reserve(&b->w, 8);
    gsp_wr_u64(&b->w, m->floor);
    gsp_wr_u8(&b->w, flags);
    uint8_t *cnt_p = gsp_wr_reserve(&b->w, 2);
    if (b->w.err) {
        gspi_fb_sec_abort(b);
        return 0;
    }
    size_t cnt = 0;
    if (from < m->hv) {
        if (gsp_wr_left(&b->w) < 2 + m->hulen) {
            gspi_fb_sec_abort(b);
            return 0;
        }
        gsp_wr_blob16(&b->w, m->hunit, m->hulen);
        cnt++;
    }
    /* Find the first entry newer than `from` by walking back from the
     * newest: O(number of units sent). */
    const entry *e = m->ltail;
    while (e && e->lprev && e->lprev->ver > from)
        e = e->lprev;
    if (e && e->ver <= from)
        e = NULL;
    uint64_t to = from;
    bool complete = true;
    for (; e && e->ver <= m->wm; e = e->lnext) {
        if (cnt >= UINT16_MAX || gsp_wr_left(&b->w) < 2 + e->ulen) {
            complete = false;
            break;
        }
        gsp_wr_blob16(&b->w, e->unit, e->ulen);
        to = e->ver;
        cnt++;
    }
    if (complete)
        to = m->wm;
    if (cnt == 0) {
        gspi_fb_sec_abort(b);
        return 0;
    }
    gsp_put_u64(to_p, to);
    gsp_put_u16(cnt_p, (uint16_t)cnt);
    gspi_fb_sec_end(b);
    g->st.deltas_sent++;
    return 1;
}

typedef struct {
    member *m;
    uint64_t inc, from;
} push_t;

typedef struct {
    uint8_t id[GSP_ID_LEN];
    uint64_t inc, from;
} want_t;

typedef struct {
    push_t *push;
    size_t np, cp;
    want_t *want;
    size_t nw, cw;
    member **acc;
    size_t na, ca;
    bool oom;
} plan;

static void add_push(plan *pl, member *m, uint64_t inc, uint64_t from)
{
    if (pl->np == pl->cp) {
        size_t nc = pl->cp ? pl->cp * 2 : 32;
        push_t *p = realloc(pl->push, nc * sizeof(*p));
        if (!p) {
            pl->oom = true;
            return;
        }
        pl->push = p;
        pl->cp = nc;
    }
    pl->push[pl->np++] = (push_t){m, inc, from};
}

static void add_want(plan *pl, const uint8_t *id, uint64_t inc, uint64_t from)
{
    if (pl->nw == pl->cw) {
        size_t nc = pl->cw ? pl->cw * 2 : 32;
        want_t *p = realloc(pl->want, nc * sizeof(*p));
        if (!p) {
            pl->oom = true;
            return;
        }
        pl->want = p;
        pl->cw = nc;
    }
    memcpy(pl->want[pl->nw].id, id, GSP_ID_LEN);
    pl->want[pl->nw].inc = inc;
    pl->want[pl->nw++].from = from;
}

static void add_acc(plan *pl, member *m)
{
    if (pl->na == pl->ca) {
        size_t nc = pl->ca ? pl->ca * 2 : 16;
        member **p = realloc(pl->acc, nc * sizeof(*p));
        if (!p) {
            pl->oom = true;
            return;
        }
        pl->acc = p;
        pl->ca = nc;
    }
    pl->acc[pl->na++] = m;
}

/* Compare one of the peer's digest items with our view. */
static void compare_item(gsp *g, uint64_t now, member *from, plan *pl,
                         const uint8_t *id, uint64_t inc, uint64_t hv,
                         uint64_t wm, uint8_t st)
{
    bool live_t = st == GSP_ALIVE || st == GSP_SUSPECT;
    member *m = gspi_member_find(g, id);
    if (m)
        m->mark = g->mark_epoch;
    if (m == g->self) {
        if ((st == GSP_SUSPECT || st == GSP_DEAD) && inc == g->inc &&
            hv >= m->hv && !g->left)
            gspi_refute(g, now);
        if (inc < g->inc || (inc == g->inc && wm < g->ver))
            add_push(pl, m, inc, wm);
        else if (inc > g->inc || (inc == g->inc && wm > g->ver))
            add_want(pl, id, inc, 0);
        return;
    }
    if (!m) {
        if (live_t)
            add_want(pl, id, inc, 0);
        return;
    }
    if (inc > m->inc) {
        add_want(pl, id, inc, 0);
        return;
    }
    if (inc < m->inc) {
        add_push(pl, m, inc, 0);
        return;
    }
    if (is_live(m->state)) {
        if (st == GSP_DEAD && hv >= m->hv && m->state == GSP_ALIVE)
            gspi_suspect(g, now, m, from->id, true);
        if (st == GSP_LEFT && hv > m->hv) {
            add_want(pl, id, inc, m->wm);
        } else if (live_t) {
            if (wm < m->wm)
                add_push(pl, m, inc, wm);
            else if (wm > m->wm)
                add_want(pl, id, inc, m->wm);
        }
    } else {
        if (hv > m->hv)
            add_want(pl, id, inc, 0);
        else if (hv < m->hv)
            add_push(pl, m, inc, 0); /* header only */
        else if (live_t && m->state == GSP_DEAD)
            add_acc(pl, m);
    }
}

int gspi_sync_on_digest(gsp *g, uint64_t now, member *from, gsp_rd *r)
{
    uint64_t bitmap;
    uint16_t cnt;
    gsp_rd_u64(r, &bitmap);
    gsp_rd_u16(r, &cnt);
    if (r->err)
        return 0;
    plan pl = {0};
    g->mark_epoch++;
    for (uint16_t i = 0; i < cnt; i++) {
        const uint8_t *id;
        uint64_t inc, hv, wm;
        uint8_t st;
        gsp_rd_bytes(r, GSP_ID_LEN, &id);
        gsp_rd_u64(r, &inc);
        gsp_rd_u64(r, &hv);
        gsp_rd_u64(r, &wm);
        gsp_rd_u8(r, &st);
        if (r->err)
            break;
        compare_item(g, now, from, &pl, id, inc, hv, wm, st);
    }
    /* Members of fully covered buckets the peer did not list: it lacks
     * them entirely. */
    for (unsigned b = 0; b < NBUCKETS; b++) {
        if (!(bitmap & (1ULL << b)))
            continue;
        for (size_t j = 0; j < g->bk[b].n; j++) {
            member *m = g->bk[b].v[j];
            if (m->mark != g->mark_epoch && is_live(m->state) &&
                m != from)
                add_push(&pl, m, m->inc, 0);
        }
    }
    int rc = pl.oom ? GSP_ENOMEM : 0;
    fbuild *b = gspi_reply(g, from);
    if (!b) {
        rc = GSP_ENOMEM;
        goto out;
    }
    if (pl.nw && gspi_fb_sec_begin(b, SEC_WANT) == 0) {
        uint8_t *cp = gsp_wr_reserve(&b->w, 2);
        size_t k = 0;
        for (; k < pl.nw && k < UINT16_MAX &&
               gsp_wr_left(&b->w) >= WANT_ITEM_LEN;
             k++) {
            gsp_wr_bytes(&b->w, pl.want[k].id, GSP_ID_LEN);
            gsp_wr_u64(&b->w, pl.want[k].inc);
            gsp_wr_u64(&b->w, pl.want[k].from);
        }
        if (cp)
            gsp_put_u16(cp, (uint16_t)k);
        gspi_fb_sec_end(b);
    }
    if (pl.na && gspi_fb_sec_begin(b, SEC_ACCUSE) == 0) {
        gsp_wr_u8(&b->w, ACC_F_SOFT);
        uint8_t *cp = gsp_wr_reserve(&b->w, 2);
        size_t k = 0;
        for (; k < pl.na && k < UINT16_MAX &&
               gsp_wr_left(&b->w) >= ACCUSE_ITEM_LEN;
             k++) {
            member *m = pl.acc[k];
            gsp_wr_bytes(&b->w, m->id, GSP_ID_LEN);
            gsp_wr_u64(&b->w, m->inc);
            gsp_wr_u64(&b->w, m->acc_hv);
            gsp_wr_u8(&b->w, (uint8_t)m->state);
            gsp_wr_bytes(&b->w, g->id, GSP_ID_LEN);
        }
        if (cp)
            gsp_put_u16(cp, (uint16_t)k);
        gspi_fb_sec_end(b);
    }
    for (size_t k = 0; k < pl.np; k++) {
        push_t *p = &pl.push[k];
        if (gsp_wr_left(&b->w) < 128)
            break;
        gspi_sync_units(g, b, p->m, p->inc, p->from);
    }
out:
    free(pl.push);
    free(pl.want);
    free(pl.acc);
    return rc;
}

int gspi_sync_on_want(gsp *g, const member *from, gsp_rd *r)
{
    uint16_t cnt;
    gsp_rd_u16(r, &cnt);
    fbuild *b = NULL;
    for (uint16_t i = 0; i < cnt && !r->err; i++) {
        const uint8_t *id;
        uint64_t inc, f;
        gsp_rd_bytes(r, GSP_ID_LEN, &id);
        gsp_rd_u64(r, &inc);
        gsp_rd_u64(r, &f);
        if (r->err)
            break;
        member *m = gspi_member_find(g, id);
        if (!m || !m->have_hdr)
            continue;
        if (!b && !(b = gspi_reply(g, from)))
            return GSP_ENOMEM;
        if (gsp_wr_left(&b->w) < 128)
            break;
        gspi_sync_units(g, b, m, inc, f);
    }
    return 0;
}

int gspi_units_apply(gsp *g, uint64_t now, gsp_rd *r, size_t *ord)
{
    const uint8_t *owner;
    uint64_t inc, from, to, floor;
    uint8_t flags;
    uint16_t cnt;
    gsp_rd_bytes(r, GSP_ID_LEN, &owner);
    gsp_rd_u64(r, &inc);
    gsp_rd_u64(r, &from);
    gsp_rd_u64(r, &to);
    gsp_rd_u64(r, &floor);
    gsp_rd_u8(r, &flags);
    gsp_rd_u16(r, &cnt);
    if (r->err)
        return 0;
    member *m = gspi_member_find(g, owner);
    if (m && m != g->self && (flags & UNITS_F_RESET) && from == 0 &&
        m->inc == inc && is_live(m->state) && m->wm < floor) {
        gspi_drop_entries(g, m, true);
        m->wm = 0;
    }
    bool complete = true;
    int rc = 0;
    for (uint16_t i = 0; i < cnt; i++) {
        const uint8_t *p;
        size_t n;
        punit u;
        gsp_rd_blob16(r, g->cfg.max_frame, &p, &n);
        if (r->err || gspi_unit_parse(p, n, g->cfg.max_value, &u)) {
            complete = false;
            break;
        }
        size_t k = (*ord)++;
        if (!(g->vbits[k / 8] >> (k % 8) & 1)) {
            /* Not verified: stale when checked, or its owner's key was not
             * known yet.  If it is news now (its owner's header came in
             * this very frame), the watermark must not move past it, or
             * anti-entropy would never send it again. */
            if (gspi_unit_relevant(g, &u)) {
                complete = false;
                g->st.units_orphan++;
            } else {
                g->st.units_stale++;
            }
            continue;
        }
        int a = gspi_unit_apply(g, &u, now, (flags & UNITS_F_EAGER) != 0);
        if (a < 0) {
            rc = a;
            complete = false;
            continue;
        }
        if (a == 0) {
            complete = false;
            g->st.units_orphan++;
            continue;
        }
        g->st.units_applied++;
        if ((flags & UNITS_F_EAGER) && u.id && memcmp(u.id, g->id, GSP_ID_LEN)) {
            /* Infection-style: re-broadcast what a broadcast taught us. */
            uint8_t ik[GSP_ID_LEN + 1 + GSP_KEY_MAX];
            size_t il = GSP_ID_LEN + 1;
            memcpy(ik, u.id, GSP_ID_LEN);
            ik[GSP_ID_LEN] = u.type;
            if (u.type == UNIT_ENT) {
                memcpy(ik + il, u.key, u.klen);
                il += u.klen;
            }
            /* Learned straight from an owner that told everyone: one
             * extra copy covers a lost packet; otherwise relay fully. */
            gspi_bcast_unit_f(g, now, u.id, u.inc, u.ver, u.raw, u.rawlen,
                              gspi_khash(g, ik, il), UNITS_F_EAGER,
                              (flags & UNITS_F_DIRECT) ? 1 : 0);
        }
    }
    m = gspi_member_find(g, owner);
    if (complete && m && m != g->self && m->have_hdr && m->inc == inc &&
        is_live(m->state) && m->wm >= from && to > m->wm)
        m->wm = to;
    if (m && m != g->self && m->inc == inc && floor > m->floor)
        m->floor = floor;
    return rc;
}
