/* SPDX-License-Identifier: MIT */
/*
 * wire.c - frames: building and sealing outgoing frames, the outgoing
 * queue, and gsp_recv (open, validate, verify, apply); plus gsp_tick.
 *
 * Frame plaintext: fmt(1) sender id(16) sender inc(8) seq(8) digest(32),
 * then sections: type(1) len(4) body. The first section is always the
 * sender's signed header (SEC_HDR).
 *
 * Design notes (never half-applied): gsp_recv runs in three steps.
 * (1) Authenticate (AEAD) and parse every section, checking each field
 *     against its cap; any structural error drops the whole frame.
 * (2) Check the replay window, then verify the signature of every unit
 *     that could change our state (units that are stale under the current
 *     state are skipped and never applied); one bad signature drops the
 *     whole frame. Verified units are flagged by ordinal in g->vbits.
 * (3) Apply the sections in order. Only flagged units are applied, so
 *     nothing unverified reaches the state.
 * Replies to a frame go into at most one reply frame addressed to the
 * sender's signed address; what does not fit waits for the next exchange.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- building ---- */

static uint8_t *tx_take(gsp *g)
{
    if (g->ntx)
        return g->txpool[--g->ntx];
    return malloc(g->cfg.max_frame);
}

static void tx_give(gsp *g, uint8_t *p)
{
    if (!p)
        return;
    if (g->ntx < 4)
        g->txpool[g->ntx++] = p;
    else
        free(p);
}

int gspi_fb_begin(gsp *g, fbuild *b, const char *addr)
{
    memset(b, 0, sizeof(*b));
    b->buf = tx_take(g);
    if (!b->buf)
        return GSP_ENOMEM;
    size_t al = strlen(addr);
    if (al > GSP_ADDR_MAX)
        al = GSP_ADDR_MAX;
    memcpy(b->addr, addr, al);
    b->addr[al] = '\0';
    gsp_wr_init(&b->w, b->buf, g->cfg.max_frame - GSP_SEAL_OVERHEAD);
    gsp_wr_u8(&b->w, FRAME_FMT);
    gsp_wr_bytes(&b->w, g->id, GSP_ID_LEN);
    gsp_wr_u64(&b->w, g->inc);
    gsp_wr_reserve(&b->w, 8 + GSP_DIGEST_LEN); /* seq, digest: at finish */
    gspi_fb_sec_begin(b, SEC_HDR);
    gsp_wr_bytes(&b->w, g->self->hunit, g->self->hulen);
    gspi_fb_sec_end(b);
    b->base = b->w.off;
    if (b->w.err) {
        tx_give(g, b->buf);
        b->buf = NULL;
        return GSP_ENOMEM;
    }
    return 0;
}

int gspi_fb_sec_begin(fbuild *b, uint8_t type)
{
    b->mark = b->w.off;
    if (gsp_wr_left(&b->w) < SEC_HDR_LEN + 1)
        return -1;
    gsp_wr_u8(&b->w, type);
    gsp_wr_reserve(&b->w, 4);
    return 0;
}

int gspi_fb_sec_end(fbuild *b)
{
    if (b->w.err) {
        gspi_fb_sec_abort(b);
        return -1;
    }
    gsp_put_u32(b->buf + b->mark + 1,
                (uint32_t)(b->w.off - b->mark - SEC_HDR_LEN));
    return 0;
}

void gspi_fb_sec_abort(fbuild *b)
{
    b->w.off = b->mark;
    b->w.err = 0;
}

bool gspi_fb_empty(const fbuild *b)
{
    return b->w.off == b->base;
}

void gspi_fb_abort(gsp *g, fbuild *b)
{
    tx_give(g, b->buf);
    b->buf = NULL;
}

int gspi_fb_finish(gsp *g, fbuild *b)
{
    gsp_put_u64(b->buf + 1 + GSP_ID_LEN + 8, ++g->seq);
    memcpy(b->buf + 1 + GSP_ID_LEN + 16, g->view, GSP_DIGEST_LEN);
    size_t cap = b->w.off + GSP_SEAL_OVERHEAD, n = 0;
    uint8_t *out = malloc(cap);
    int rc = out ? gsp_seal(g->kr, b->buf, b->w.off, out, cap, &n)
                 : GSP_ENOMEM;
    gspi_fb_abort(g, b);
    if (rc) {
        free(out);
        return rc;
    }
    return gspi_out_push(g, b->addr, out, n);
}

int gspi_send_simple(gsp *g, const char *addr, uint8_t type,
                     const uint8_t *body, size_t len)
{
    fbuild b;
    int rc = gspi_fb_begin(g, &b, addr);
    if (rc)
        return rc;
    gspi_fb_sec_begin(&b, type);
    gsp_wr_bytes(&b.w, body, len);
    if (gspi_fb_sec_end(&b)) {
        gspi_fb_abort(g, &b);
        return GSP_ENOSPC;
    }
    return gspi_fb_finish(g, &b);
}

/* ---- outgoing queue ---- */

int gspi_out_push(gsp *g, const char *addr, uint8_t *buf, size_t len)
{
    if (g->nout >= g->cfg.max_out) {
        g->st.out_overflow++;
        free(buf);
        return 0;
    }
    outf *o = malloc(sizeof(*o));
    if (!o) {
        free(buf);
        return GSP_ENOMEM;
    }
    o->next = NULL;
    memcpy(o->addr, addr, strlen(addr) + 1);
    o->buf = buf;
    o->len = len;
    if (g->otail)
        g->otail->next = o;
    else
        g->ohead = o;
    g->otail = o;
    g->nout++;
    g->st.frames_out++;
    g->st.bytes_out += len;
    return 0;
}

int gsp_out(gsp *g, gsp_frame *f)
{
    outf *o = g ? g->ohead : NULL;
    if (!o || !f)
        return 0;
    g->ohead = o->next;
    if (!g->ohead)
        g->otail = NULL;
    g->nout--;
    memcpy(f->addr, o->addr, sizeof(f->addr));
    f->buf = o->buf;
    f->len = o->len;
    free(o);
    return 1;
}

void gsp_frame_release(gsp_frame *f)
{
    if (!f)
        return;
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
}

void gspi_out_clear(gsp *g)
{
    gsp_frame f;
    while (gsp_out(g, &f))
        gsp_frame_release(&f);
}

/* ---- replay window ---- */

static int rw_check(const member *m, uint64_t inc, uint64_t seq)
{
    if (!m)
        return 0;
    if (m->have_hdr && inc < m->inc)
        return GSP_ESTALE;
    if (!m->rw_init || inc > m->rw_inc)
        return 0;
    if (inc < m->rw_inc)
        return GSP_ESTALE;
    if (seq > m->rw_top)
        return 0;
    uint64_t d = m->rw_top - seq;
    if (d >= RW_BITS)
        return GSP_EREPLAY;
    if (m->rw_bits[d / 64] & (1ULL << (d % 64)))
        return GSP_EREPLAY;
    return 0;
}

static void rw_shift(uint64_t *bits, uint64_t k)
{
    const int nw = RW_BITS / 64;
    if (k >= RW_BITS) {
        memset(bits, 0, RW_BITS / 8);
        return;
    }
    int ws = (int)(k / 64), bs = (int)(k % 64);
    for (int i = nw - 1; i >= 0; i--) {
        uint64_t v = 0;
        if (i - ws >= 0) {
            v = bits[i - ws] << bs;
            if (bs && i - ws - 1 >= 0)
                v |= bits[i - ws - 1] >> (64 - bs);
        }
        bits[i] = v;
    }
}

static void rw_update(member *m, uint64_t inc, uint64_t seq)
{
    if (!m->rw_init || inc > m->rw_inc) {
        m->rw_init = true;
        m->rw_inc = inc;
        m->rw_top = seq;
        memset(m->rw_bits, 0, sizeof(m->rw_bits));
        m->rw_bits[0] = 1;
        return;
    }
    if (seq > m->rw_top) {
        rw_shift(m->rw_bits, seq - m->rw_top);
        m->rw_top = seq;
        m->rw_bits[0] |= 1;
        return;
    }
    uint64_t d = m->rw_top - seq;
    if (d < RW_BITS)
        m->rw_bits[d / 64] |= 1ULL << (d % 64);
}

/* ---- receiving ---- */

typedef struct {
    const uint8_t *id;
    uint64_t inc, seq;
    const uint8_t *digest;
    gsp_rd secs; /* sections */
} fhead;

static int drop(gsp *g, int rc)
{
    gsp_drop d;
    switch (rc) {
    case GSP_ETOOBIG: d = GSP_DROP_TOOBIG; break;
    case GSP_EUNKNOWNKEY: d = GSP_DROP_UNKNOWN_KEY; break;
    case GSP_EAUTH: d = GSP_DROP_AUTH; break;
    case GSP_EVERSION: d = GSP_DROP_VERSION; break;
    case GSP_EREPLAY: d = GSP_DROP_REPLAY; break;
    case GSP_ESIG: d = GSP_DROP_SIG; break;
    case GSP_ESTALE: d = GSP_DROP_STALE; break;
    case GSP_ESELF: d = GSP_DROP_SELF; break;
    case GSP_ENOMEM: d = GSP_DROP_NOMEM; break;
    default: d = GSP_DROP_MALFORMED; rc = GSP_EMALFORMED; break;
    }
    g->st.drops[d]++;
    return rc;
}

/* Validate the structure of one section body (pass 1). */
static int check_section(gsp *g, uint8_t type, gsp_rd *r)
{
    const uint8_t *p;
    size_t n;
    uint16_t cnt;
    uint32_t u32;
    uint64_t u64;
    uint8_t u8;
    switch (type) {
    case SEC_HDR: {
        punit u;
        if (gspi_unit_parse(r->p + r->off, gsp_rd_left(r), g->cfg.max_value,
                            &u) ||
            u.type != UNIT_HDR)
            return -1;
        gsp_rd_skip(r, gsp_rd_left(r));
        break;
    }
    case SEC_PING:
    case SEC_ACK:
        gsp_rd_u32(r, &u32);
        gsp_rd_bytes(r, GSP_ID_LEN, &p);
        break;
    case SEC_PINGREQ:
        gsp_rd_u32(r, &u32);
        gsp_rd_bytes(r, GSP_ID_LEN, &p);
        gsp_rd_blob8(r, GSP_ADDR_MAX, &p, &n);
        if (!r->err && (n == 0 || memchr(p, 0, n)))
            return -1;
        break;
    case SEC_SYNC:
        gsp_rd_u8(r, &u8);
        break;
    case SEC_BUCKETS:
        gsp_rd_skip(r, NBUCKETS * 8);
        break;
    case SEC_DIGEST:
        gsp_rd_u64(r, &u64);
        gsp_rd_u16(r, &cnt);
        gsp_rd_skip(r, (size_t)cnt * DIGEST_ITEM_LEN);
        break;
    case SEC_WANT:
        gsp_rd_u16(r, &cnt);
        gsp_rd_skip(r, (size_t)cnt * WANT_ITEM_LEN);
        break;
    case SEC_ACCUSE:
        gsp_rd_u8(r, &u8);
        gsp_rd_u16(r, &cnt);
        gsp_rd_skip(r, (size_t)cnt * ACCUSE_ITEM_LEN);
        break;
    case SEC_UNITS: {
        const uint8_t *owner;
        uint64_t inc;
        gsp_rd_bytes(r, GSP_ID_LEN, &owner);
        gsp_rd_u64(r, &inc);
        gsp_rd_skip(r, 8 * 3 + 1);
        gsp_rd_u16(r, &cnt);
        for (uint16_t i = 0; i < cnt && !r->err; i++) {
            punit u;
            if (gsp_rd_blob16(r, g->cfg.max_frame, &p, &n) ||
                gspi_unit_parse(p, n, g->cfg.max_value, &u) ||
                memcmp(u.id, owner, GSP_ID_LEN) != 0 || u.inc != inc)
                return -1;
        }
        break;
    }
    default:
        /* Unknown section types are skipped (forward compatibility). */
        gsp_rd_skip(r, gsp_rd_left(r));
        break;
    }
    return gsp_rd_done(r, 1);
}

static void vbit_set(gsp *g, size_t i)
{
    if (i / 8 < g->vbits_len)
        g->vbits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static bool vbit(const gsp *g, size_t i)
{
    return i / 8 < g->vbits_len && (g->vbits[i / 8] >> (i % 8)) & 1;
}

/* Verify one unit if it matters; *ord is the unit ordinal in the frame. */
static int verify_one(gsp *g, const punit *u, const punit *pending,
                      bool pending_fresh, size_t *ord)
{
    size_t i = (*ord)++;
    int rel;
    const uint8_t *pk = NULL;
    if (u->type == UNIT_ENT && pending && pending_fresh) {
        rel = u->inc == pending->inc;
        pk = pending->pk;
    } else {
        rel = gspi_unit_relevant(g, u);
        const member *m = gspi_member_find(g, u->id);
        if (pending)
            pk = pending->pk;
        else if (m && m->have_hdr)
            pk = m->pk;
    }
    if (!rel)
        return 0;
    if (u->type == UNIT_ENT && !pk)
        return 0; /* orphan: owner unknown; skipped, not an error */
    if (gspi_unit_verify(g, u, pk))
        return GSP_ESIG;
    vbit_set(g, i);
    return 0;
}

/* Pass 2: signatures of every unit that could be applied. */
static int verify_frame(gsp *g, gsp_rd secs)
{
    size_t ord = 0;
    /* The sender's own header (first section), once verified, also gives
     * the key for the sender's entries in later sections: the first frame
     * from a new member carries both. */
    punit shdr;
    bool have_shdr = false, shdr_fresh = false;
    memset(g->vbits, 0, g->vbits_len);
    while (gsp_rd_left(&secs)) {
        uint8_t type;
        gsp_rd body;
        const uint8_t *p;
        size_t n;
        uint16_t cnt;
        gsp_rd_u8(&secs, &type);
        gsp_rd_blob32(&secs, g->cfg.max_frame, &p, &n);
        gsp_rd_init(&body, p, n);
        if (type == SEC_HDR) {
            punit u;
            gspi_unit_parse(p, n, g->cfg.max_value, &u);
            size_t before = ord;
            int rc = verify_one(g, &u, NULL, false, &ord);
            if (rc)
                return rc;
            if (!have_shdr && vbit(g, before) && u.type == UNIT_HDR) {
                const member *m = gspi_member_find(g, u.id);
                shdr = u;
                have_shdr = true;
                shdr_fresh = !m || !m->have_hdr || u.inc > m->inc;
            }
        } else if (type == SEC_UNITS) {
            gsp_rd_skip(&body, GSP_ID_LEN + 8 * 4 + 1);
            gsp_rd_u16(&body, &cnt);
            punit pend;
            bool have_pend = false, fresh = false;
            for (uint16_t i = 0; i < cnt; i++) {
                punit u;
                gsp_rd_blob16(&body, g->cfg.max_frame, &p, &n);
                gspi_unit_parse(p, n, g->cfg.max_value, &u);
                size_t before = ord;
                bool by_sender = !have_pend && have_shdr &&
                                 u.type == UNIT_ENT &&
                                 memcmp(u.id, shdr.id, GSP_ID_LEN) == 0;
                int rc = by_sender
                             ? verify_one(g, &u, &shdr, shdr_fresh, &ord)
                             : verify_one(g, &u, have_pend ? &pend : NULL,
                                          fresh, &ord);
                if (rc)
                    return rc;
                if (u.type == UNIT_HDR && !have_pend) {
                    /* A header that checked out gives the key for the
                     * entries after it; if it is newer than what we hold
                     * the entries belong to a fresh record. */
                    pend = u;
                    have_pend = vbit(g, before);
                    const member *m = gspi_member_find(g, u.id);
                    fresh = have_pend &&
                            (!m || !m->have_hdr || u.inc > m->inc);
                    if (!have_pend) {
                        const member *mm = m;
                        if (mm && mm->have_hdr &&
                            memcmp(mm->pk, u.pk, GSP_PK_LEN) == 0) {
                            pend = u;
                            have_pend = true;
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* Pass 3: apply. */
static int apply_frame(gsp *g, uint64_t now, const fhead *h, fbuild *reply,
                       member **sender)
{
    gsp_rd secs = h->secs;
    size_t ord = 0;
    int rc = 0;
    while (gsp_rd_left(&secs) && rc != GSP_ENOMEM) {
        uint8_t type;
        gsp_rd body;
        const uint8_t *p;
        size_t n;
        gsp_rd_u8(&secs, &type);
        gsp_rd_blob32(&secs, g->cfg.max_frame, &p, &n);
        gsp_rd_init(&body, p, n);
        member *from = *sender;
        switch (type) {
        case SEC_HDR: {
            punit u;
            gspi_unit_parse(p, n, g->cfg.max_value, &u);
            if (vbit(g, ord)) {
                const member *o = gspi_member_find(g, h->id);
                gsp_state before = o ? o->state : GSP_ALIVE;
                int a = gspi_unit_apply(g, &u, now, false);
                if (a < 0)
                    rc = a;
                else if (a > 0)
                    g->st.units_applied++;
                o = gspi_member_find(g, h->id);
                /* The sender refuted an accusation we held: spread its
                 * new header like fresh news. */
                if (a > 0 && o && o->state == GSP_ALIVE &&
                    (before == GSP_SUSPECT || before == GSP_DEAD)) {
                    uint8_t ik[GSP_ID_LEN + 1];
                    memcpy(ik, u.id, GSP_ID_LEN);
                    ik[GSP_ID_LEN] = UNIT_HDR;
                    gspi_bcast_unit(g, now, u.id, u.inc, u.ver, u.raw,
                                    u.rawlen, gspi_khash(g, ik, sizeof(ik)));
                }
            }
            ord++;
            *sender = gspi_member_find(g, h->id);
            break;
        }
        case SEC_PING:
            if (from)
                rc = gspi_on_ping(g, from, &body);
            break;
        case SEC_ACK:
            rc = gspi_on_ack(g, now, &body);
            break;
        case SEC_PINGREQ:
            if (from)
                rc = gspi_on_pingreq(g, now, from, &body);
            break;
        case SEC_SYNC:
            if (from)
                rc = gspi_sync_on_sync(g, from, h->digest);
            break;
        case SEC_BUCKETS:
            if (from)
                rc = gspi_sync_on_buckets(g, from, &body);
            break;
        case SEC_DIGEST:
            if (from)
                rc = gspi_sync_on_digest(g, now, from, &body);
            break;
        case SEC_WANT:
            if (from)
                rc = gspi_sync_on_want(g, from, &body);
            break;
        case SEC_UNITS:
            rc = gspi_units_apply(g, now, &body, &ord);
            break;
        case SEC_ACCUSE:
            rc = gspi_on_accuse(g, now, from, &body);
            break;
        default:
            break;
        }
    }
    (void)reply;
    return rc;
}

/* Replies built by section handlers go into g's current reply frame. */
int gsp_recv(gsp *g, uint64_t now, const uint8_t *frame, size_t len)
{
    if (!g || (!frame && len))
        return GSP_EINVAL;
    g->st.frames_in++;
    g->st.bytes_in += len;
    if (len > g->cfg.max_frame)
        return drop(g, GSP_ETOOBIG);
    size_t plen = 0;
    int rc = gsp_open(g->kr, frame, len, g->rx, g->cfg.max_frame, &plen);
    if (rc)
        return drop(g, rc);

    fhead h;
    gsp_rd r;
    uint8_t fmt;
    gsp_rd_init(&r, g->rx, plen);
    gsp_rd_u8(&r, &fmt);
    if (r.err)
        return drop(g, GSP_EMALFORMED);
    if (fmt != FRAME_FMT)
        return drop(g, GSP_EVERSION);
    gsp_rd_bytes(&r, GSP_ID_LEN, &h.id);
    gsp_rd_u64(&r, &h.inc);
    gsp_rd_u64(&r, &h.seq);
    gsp_rd_bytes(&r, GSP_DIGEST_LEN, &h.digest);
    if (r.err)
        return drop(g, GSP_EMALFORMED);
    h.secs = r;

    /* Pass 1: structure. The first section must be the sender's header. */
    bool first = true;
    while (gsp_rd_left(&r)) {
        uint8_t type;
        const uint8_t *p;
        size_t n;
        gsp_rd body;
        gsp_rd_u8(&r, &type);
        gsp_rd_blob32(&r, g->cfg.max_frame, &p, &n);
        if (r.err)
            return drop(g, GSP_EMALFORMED);
        gsp_rd_init(&body, p, n);
        if (first) {
            punit u;
            if (type != SEC_HDR ||
                gspi_unit_parse(p, n, g->cfg.max_value, &u) ||
                memcmp(u.id, h.id, GSP_ID_LEN) != 0 || u.inc != h.inc)
                return drop(g, GSP_EMALFORMED);
            first = false;
        }
        if (check_section(g, type, &body))
            return drop(g, GSP_EMALFORMED);
    }
    if (first)
        return drop(g, GSP_EMALFORMED);
    if (memcmp(h.id, g->id, GSP_ID_LEN) == 0)
        return drop(g, GSP_ESELF);

    member *sender = gspi_member_find(g, h.id);
    rc = rw_check(sender, h.inc, h.seq);
    if (rc)
        return drop(g, rc);
    rc = verify_frame(g, h.secs);
    if (rc)
        return drop(g, rc);

    rc = apply_frame(g, now, &h, NULL, &sender);
    int frc = gspi_reply_finish(g);
    if (rc == 0)
        rc = frc;
    sender = gspi_member_find(g, h.id);
    if (sender && sender->have_hdr && sender->inc == h.inc) {
        rw_update(sender, h.inc, h.seq);
        memcpy(sender->adv, h.digest, GSP_DIGEST_LEN);
        sender->adv_ok = true;
        /* A member we hold suspect or dead is talking to us: tell it, so
         * it refutes at once. */
        if (!g->left &&
            (sender->state == GSP_SUSPECT || sender->state == GSP_DEAD)) {
            fbuild b;
            if (gspi_fb_begin(g, &b, sender->addr) == 0) {
                gspi_write_accuse(&b, sender, sender->state, g->id, 0);
                if (gspi_fb_empty(&b))
                    gspi_fb_abort(g, &b);
                else
                    gspi_fb_finish(g, &b);
            }
        }
    }
    if (g->eager_due <= now)
        gspi_flush(g, now, false);
    return rc == GSP_ENOMEM ? drop(g, rc) : 0;
}

/* ---- timers ---- */

static void seeds_tick(gsp *g, uint64_t now)
{
    if (g->nlive == 0 && !g->isolated) {
        g->isolated = true;
        g->seed_backoff = g->cfg.seed_min_ms;
        if (g->next_seed > now)
            g->next_seed = now;
    } else if (g->nlive > 0) {
        g->isolated = false;
    }
    if (!g->nseeds || now < g->next_seed || g->left)
        return;
    const char *s = g->seeds[gspi_randn(g, g->nseeds)];
    fbuild b;
    if (gspi_fb_begin(g, &b, s) == 0) {
        gspi_fb_sec_begin(&b, SEC_SYNC);
        gsp_wr_u8(&b.w, 0);
        gspi_fb_sec_end(&b);
        gspi_fb_finish(g, &b);
        g->st.syncs++;
    }
    uint64_t wait;
    if (g->isolated) {
        wait = g->seed_backoff;
        g->seed_backoff *= 2;
        if (g->seed_backoff > g->cfg.seed_max_ms)
            g->seed_backoff = g->cfg.seed_max_ms;
    } else {
        wait = g->cfg.seed_max_ms;
    }
    g->next_seed = now + wait + gspi_randn(g, wait / 4 + 1);
}

/* Now and then, sync with a member we hold dead (and tell it so): if it is
 * in fact alive behind a healed partition it refutes and rejoins. */
static void gossip_to_dead(gsp *g)
{
    if (g->nmem <= g->nlive + 1 || gspi_randn(g, 8) != 0)
        return;
    for (int t = 0; t < 4; t++) {
        member *m = g->mem[gspi_randn(g, g->nmem)];
        if (m->state != GSP_DEAD)
            continue;
        fbuild b;
        if (gspi_fb_begin(g, &b, m->addr))
            return;
        gspi_fb_sec_begin(&b, SEC_SYNC);
        gsp_wr_u8(&b.w, 0);
        gspi_fb_sec_end(&b);
        gspi_write_accuse(&b, m, GSP_DEAD, g->id, 0);
        gspi_fb_finish(g, &b);
        return;
    }
}

int gsp_tick(gsp *g, uint64_t now)
{
    if (!g)
        return GSP_EINVAL;
    gspi_gc(g, now);
    gspi_detect_tick(g, now);
    if (now >= g->next_gossip) {
        g->next_gossip += g->cfg.gossip_interval_ms;
        if (g->next_gossip <= now)
            g->next_gossip = now + g->cfg.gossip_interval_ms;
        g->st.rounds++;
        if (!g->left) {
            gspi_flush(g, now, true);
            gossip_to_dead(g);
        } else if (g->nbq) {
            gspi_flush(g, now, false);
        }
    }
    seeds_tick(g, now);
    if (g->eager_due <= now)
        gspi_flush(g, now, false);
    return 0;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t gsp_next_deadline(const gsp *g)
{
    uint64_t d = g->next_gossip;
    d = min64(d, gspi_detect_deadline(g));
    if (g->nseeds && !g->left)
        d = min64(d, g->next_seed);
    d = min64(d, g->eager_due);
    if (g->tombs.head)
        d = min64(d, g->tombs.head->at + g->cfg.tombstone_ms);
    if (g->deads.head)
        d = min64(d, g->deads.head->at + g->cfg.dead_gc_ms);
    return d;
}
