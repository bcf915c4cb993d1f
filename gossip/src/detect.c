/* SPDX-License-Identifier: MIT */
/*
 * detect.c - failure detection: SWIM probes with indirect probes,
 * suspicion with Lifeguard-style confirmations and local health,
 * refutation, and death.
 *
 * Design notes:
 * - Probe order is a shuffled round-robin over live members, so every
 *   member is probed once per pass (bounded first-detection time).
 * - A probe that gets no ACK by probe_timeout goes indirect through
 *   `indirect` random members; no ACK (direct or relayed) by the end of
 *   the probe interval makes the target SUSPECT.
 * - Suspicion timeout = max - (max - min) * log(c + 1) / log(k + 1) with
 *   c independent confirmations (k = 3), never below min, where
 *   min = suspicion_mult * max(1, log10 n) * probe_interval. Accusations
 *   are about a (incarnation, header version): only the owner's signed
 *   header with a higher version (refutation) or a higher incarnation
 *   clears them.
 * - The suspect hears of it directly (the accuser tells it) and through
 *   the broadcast; it refutes by publishing a new header version.
 * - Local health (0..8) rises when our own probes fail or we must refute,
 *   falls when probes succeed, and stretches our probe timeout and period
 *   by (1 + health), so a slow node accuses less.
 * - Accusations are authenticated at frame level (cluster key) only; they
 *   cannot forge a member's record, and the member can always refute.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- index arrays ---- */

void gspi_live_add(gsp *g, member *m)
{
    if (m->lidx >= 0 || m == g->self)
        return;
    if (g->nlive == g->live_cap) {
        size_t nc = g->live_cap ? g->live_cap * 2 : 16;
        member **p = realloc(g->live, nc * sizeof(*p));
        if (!p)
            return; /* not gossiped to until re-added; state stays right */
        g->live = p;
        g->live_cap = nc;
    }
    m->lidx = (long)g->nlive;
    g->live[g->nlive++] = m;
}

void gspi_live_del(gsp *g, member *m)
{
    if (m->lidx < 0)
        return;
    size_t i = (size_t)m->lidx;
    g->live[i] = g->live[--g->nlive];
    g->live[i]->lidx = (long)i;
    m->lidx = -1;
}

static void susp_add(gsp *g, member *m)
{
    if (m->sidx >= 0)
        return;
    if (g->nsusp == g->susp_cap) {
        size_t nc = g->susp_cap ? g->susp_cap * 2 : 16;
        member **p = realloc(g->susp, nc * sizeof(*p));
        if (!p)
            return;
        g->susp = p;
        g->susp_cap = nc;
    }
    m->sidx = (long)g->nsusp;
    g->susp[g->nsusp++] = m;
}

void gspi_susp_del(gsp *g, member *m)
{
    if (m->sidx < 0)
        return;
    size_t i = (size_t)m->sidx;
    g->susp[i] = g->susp[--g->nsusp];
    g->susp[i]->sidx = (long)i;
    m->sidx = -1;
}

member *gspi_random_live(gsp *g, const uint8_t *exclude)
{
    for (int t = 0; t < 8 && g->nlive; t++) {
        member *m = g->live[gspi_randn(g, g->nlive)];
        if (!exclude || memcmp(m->id, exclude, GSP_ID_LEN) != 0)
            return m;
    }
    return NULL;
}

/* Up to k distinct random live members (partial Fisher-Yates over a
 * window of indices when k is small relative to n). */
int gspi_pick_peers(gsp *g, member **out, size_t k, const uint8_t *exclude)
{
    size_t n = 0;
    if (k > 64)
        k = 64;
    if (g->nlive <= k + (exclude ? 1 : 0)) {
        for (size_t i = 0; i < g->nlive && n < k; i++)
            if (!exclude ||
                memcmp(g->live[i]->id, exclude, GSP_ID_LEN) != 0)
                out[n++] = g->live[i];
        /* shuffle for fairness */
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)gspi_randn(g, i);
            member *t = out[i - 1];
            out[i - 1] = out[j];
            out[j] = t;
        }
        return (int)n;
    }
    for (int tries = 0; n < k && tries < 64; tries++) {
        member *m = g->live[gspi_randn(g, g->nlive)];
        if (exclude && memcmp(m->id, exclude, GSP_ID_LEN) == 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup |= out[j] == m;
        if (!dup)
            out[n++] = m;
    }
    return (int)n;
}

/* ---- accusations ---- */

int gspi_write_accuse(fbuild *b, const member *m, gsp_state s,
                      const uint8_t accuser[GSP_ID_LEN], uint8_t flags)
{
    if (gspi_fb_sec_begin(b, SEC_ACCUSE))
        return -1;
    gsp_wr_u8(&b->w, flags);
    gsp_wr_u16(&b->w, 1);
    gsp_wr_bytes(&b->w, m->id, GSP_ID_LEN);
    gsp_wr_u64(&b->w, m->inc);
    gsp_wr_u64(&b->w, m->acc_hv ? m->acc_hv : m->hv);
    gsp_wr_u8(&b->w, (uint8_t)s);
    gsp_wr_bytes(&b->w, accuser, GSP_ID_LEN);
    return gspi_fb_sec_end(b);
}

static void bcast_accuse(gsp *g, uint64_t now, const member *m, gsp_state s,
                         const uint8_t accuser[GSP_ID_LEN])
{
    uint8_t sec[SEC_HDR_LEN + 3 + ACCUSE_ITEM_LEN];
    gsp_wr w;
    gsp_wr_init(&w, sec, sizeof(sec));
    gsp_wr_u8(&w, SEC_ACCUSE);
    gsp_wr_u32(&w, (uint32_t)(sizeof(sec) - SEC_HDR_LEN));
    gsp_wr_u8(&w, 0);
    gsp_wr_u16(&w, 1);
    gsp_wr_bytes(&w, m->id, GSP_ID_LEN);
    gsp_wr_u64(&w, m->inc);
    gsp_wr_u64(&w, m->acc_hv);
    gsp_wr_u8(&w, (uint8_t)s);
    gsp_wr_bytes(&w, accuser, GSP_ID_LEN);
    uint8_t ik[2 * GSP_ID_LEN + 1];
    memcpy(ik, m->id, GSP_ID_LEN);
    memcpy(ik + GSP_ID_LEN, accuser, GSP_ID_LEN);
    ik[2 * GSP_ID_LEN] = (uint8_t)(0x80 | s);
    /* A death replaces every suspicion of the same member in the queue. */
    gspi_bcast_push(g, now, gspi_khash(g, ik, s == GSP_DEAD ? GSP_ID_LEN
                                                         : sizeof(ik)),
                    sec, sizeof(sec));
}

static uint64_t suspicion_timeout(const gsp *g, int confirmations)
{
    double n = (double)gspi_n_alive(g);
    double lg = log10(n);
    if (lg < 1.0)
        lg = 1.0;
    double mn = g->cfg.suspicion_mult * lg * g->cfg.probe_interval_ms;
    double mx = mn * g->cfg.suspicion_max_mult;
    double to = mx - (mx - mn) * log((double)confirmations + 1.0) /
                         log((double)EXPECTED_CONFIRM + 1.0);
    if (to < mn)
        to = mn;
    return (uint64_t)to;
}

void gspi_suspect(gsp *g, uint64_t now, member *m,
                  const uint8_t accuser[GSP_ID_LEN], bool rebroadcast)
{
    if (m == g->self)
        return;
    if (m->state == GSP_ALIVE) {
        m->acc_hv = m->hv;
        m->suspect_at = now;
        m->naccusers = 1;
        memcpy(m->accusers[0], accuser, GSP_ID_LEN);
        m->suspect_to = suspicion_timeout(g, 0);
        gspi_set_state(g, m, GSP_SUSPECT, now);
        susp_add(g, m);
        g->st.suspicions++;
        gspi_emit_member(g, m, GSP_EV_MEMBER_SUSPECT);
        if (rebroadcast) {
            bcast_accuse(g, now, m, GSP_SUSPECT, accuser);
            /* Tell the suspect itself so it can refute at once. */
            fbuild b;
            if (gspi_fb_begin(g, &b, m->addr) == 0) {
                gspi_write_accuse(&b, m, GSP_SUSPECT, accuser, 0);
                gspi_fb_finish(g, &b);
            }
        }
        return;
    }
    if (m->state != GSP_SUSPECT)
        return;
    for (int i = 0; i < m->naccusers; i++)
        if (memcmp(m->accusers[i], accuser, GSP_ID_LEN) == 0)
            return;
    if (m->naccusers < MAX_ACCUSERS)
        memcpy(m->accusers[m->naccusers++], accuser, GSP_ID_LEN);
    m->suspect_to = suspicion_timeout(g, m->naccusers - 1);
    if (rebroadcast)
        bcast_accuse(g, now, m, GSP_SUSPECT, accuser);
}

void gspi_declare_dead(gsp *g, uint64_t now, member *m, bool broadcast)
{
    if (m == g->self || !(m->state == GSP_ALIVE || m->state == GSP_SUSPECT))
        return;
    m->acc_hv = m->hv;
    gspi_drop_entries(g, m, true);
    gspi_set_state(g, m, GSP_DEAD, now);
    gspi_emit_member(g, m, GSP_EV_MEMBER_DEAD);
    if (broadcast)
        bcast_accuse(g, now, m, GSP_DEAD, g->id);
}

int gspi_refute(gsp *g, uint64_t now)
{
    if (g->left)
        return 0;
    int rc = gspi_unit_sign_hdr(g, 0);
    if (rc)
        return rc;
    g->st.refutations++;
    if (g->health < HEALTH_MAX)
        g->health++;
    uint8_t ik[GSP_ID_LEN + 1];
    memcpy(ik, g->id, GSP_ID_LEN);
    ik[GSP_ID_LEN] = UNIT_HDR;
    member *s = g->self;
    return gspi_bcast_unit(g, now, g->id, g->inc, s->hv, s->hunit, s->hulen,
                           gspi_khash(g, ik, sizeof(ik)));
}

int gspi_on_accuse(gsp *g, uint64_t now, const member *from, gsp_rd *r)
{
    uint8_t flags;
    uint16_t cnt;
    gsp_rd_u8(r, &flags);
    gsp_rd_u16(r, &cnt);
    bool soft = (flags & ACC_F_SOFT) != 0;
    (void)from;
    for (uint16_t i = 0; i < cnt && !r->err; i++) {
        const uint8_t *id, *accuser;
        uint64_t inc, hv;
        uint8_t st;
        gsp_rd_bytes(r, GSP_ID_LEN, &id);
        gsp_rd_u64(r, &inc);
        gsp_rd_u64(r, &hv);
        gsp_rd_u8(r, &st);
        gsp_rd_bytes(r, GSP_ID_LEN, &accuser);
        if (r->err)
            break;
        if (st != GSP_SUSPECT && st != GSP_DEAD)
            continue;
        member *m = gspi_member_find(g, id);
        if (m == g->self) {
            if (inc == g->inc && hv >= m->hv && !g->left) {
                int rc = gspi_refute(g, now);
                if (rc)
                    return rc;
            }
            continue;
        }
        if (!m || m->inc != inc)
            continue;
        if (st == GSP_DEAD && !soft) {
            if ((m->state == GSP_ALIVE || m->state == GSP_SUSPECT) &&
                hv >= m->hv)
                gspi_declare_dead(g, now, m, true);
            continue;
        }
        if (m->state == GSP_ALIVE && hv >= m->hv)
            gspi_suspect(g, now, m, accuser, !soft);
        else if (m->state == GSP_SUSPECT && hv >= m->acc_hv && !soft)
            gspi_suspect(g, now, m, accuser, true);
    }
    return 0;
}

/* ---- probes ---- */

static int send_ping(gsp *g, const char *addr, uint32_t seq,
                     const uint8_t *target)
{
    uint8_t body[4 + GSP_ID_LEN];
    gsp_put_u32(body, seq);
    memcpy(body + 4, target, GSP_ID_LEN);
    return gspi_send_simple(g, addr, SEC_PING, body, sizeof(body));
}

int gspi_on_ping(gsp *g, const member *from, gsp_rd *r)
{
    uint32_t seq;
    const uint8_t *target;
    gsp_rd_u32(r, &seq);
    gsp_rd_bytes(r, GSP_ID_LEN, &target);
    if (r->err || memcmp(target, g->id, GSP_ID_LEN) != 0)
        return 0;
    fbuild *b = gspi_reply(g, from);
    if (!b)
        return GSP_ENOMEM;
    if (gspi_fb_sec_begin(b, SEC_ACK) == 0) {
        gsp_wr_u32(&b->w, seq);
        gsp_wr_bytes(&b->w, g->id, GSP_ID_LEN);
        gspi_fb_sec_end(b);
    }
    return 0;
}

int gspi_on_ack(gsp *g, uint64_t now, gsp_rd *r)
{
    uint32_t seq;
    const uint8_t *target;
    gsp_rd_u32(r, &seq);
    gsp_rd_bytes(r, GSP_ID_LEN, &target);
    if (r->err)
        return 0;
    (void)now;
    if (g->probe.active && seq == g->probe.seq &&
        memcmp(target, g->probe.target, GSP_ID_LEN) == 0) {
        g->probe.acked = true;
        g->probe.active = false;
        if (g->health)
            g->health--;
        return 0;
    }
    for (int i = 0; i < MAX_HELPERS; i++) {
        helper *h = &g->helpers[i];
        if (h->used && h->seq == seq &&
            memcmp(h->target, target, GSP_ID_LEN) == 0) {
            uint8_t body[4 + GSP_ID_LEN];
            gsp_put_u32(body, h->req_seq);
            memcpy(body + 4, target, GSP_ID_LEN);
            h->used = false;
            return gspi_send_simple(g, h->req_addr, SEC_ACK, body,
                                    sizeof(body));
        }
    }
    return 0;
}

int gspi_on_pingreq(gsp *g, uint64_t now, const member *from, gsp_rd *r)
{
    uint32_t seq;
    const uint8_t *target, *addr;
    size_t alen;
    gsp_rd_u32(r, &seq);
    gsp_rd_bytes(r, GSP_ID_LEN, &target);
    gsp_rd_blob8(r, GSP_ADDR_MAX, &addr, &alen);
    if (r->err || g->left)
        return 0;
    if (memcmp(target, g->id, GSP_ID_LEN) == 0) {
        uint8_t body[4 + GSP_ID_LEN];
        gsp_put_u32(body, seq);
        memcpy(body + 4, g->id, GSP_ID_LEN);
        fbuild *b = gspi_reply(g, from);
        if (b && gspi_fb_sec_begin(b, SEC_ACK) == 0) {
            gsp_wr_bytes(&b->w, body, sizeof(body));
            gspi_fb_sec_end(b);
        }
        return b ? 0 : GSP_ENOMEM;
    }
    helper *h = NULL;
    for (int i = 0; i < MAX_HELPERS && !h; i++)
        if (!g->helpers[i].used || g->helpers[i].deadline <= now)
            h = &g->helpers[i];
    if (!h)
        return 0;
    const member *t = gspi_member_find(g, target);
    char taddr[GSP_ADDR_MAX + 1];
    if (t && t->have_hdr) {
        memcpy(taddr, t->addr, sizeof(taddr));
    } else {
        memcpy(taddr, addr, alen);
        taddr[alen] = '\0';
    }
    h->used = true;
    h->seq = ++g->probe_seq;
    h->req_seq = seq;
    memcpy(h->target, target, GSP_ID_LEN);
    memcpy(h->req_addr, from->addr, sizeof(h->req_addr));
    h->deadline = now + g->cfg.probe_interval_ms;
    return send_ping(g, taddr, h->seq, target);
}

static member *next_target(gsp *g)
{
    for (int pass = 0; pass < 2; pass++) {
        while (g->ppos < g->pn) {
            member *m = gspi_member_find(g, g->plist[g->ppos++]);
            if (m && m != g->self &&
                (m->state == GSP_ALIVE || m->state == GSP_SUSPECT))
                return m;
        }
        /* Rebuild and shuffle the round-robin list. */
        if (g->pcap < g->nlive) {
            void *p = realloc(g->plist, g->nlive * sizeof(*g->plist));
            if (!p)
                return NULL;
            g->plist = p;
            g->pcap = g->nlive;
        }
        g->pn = g->nlive;
        g->ppos = 0;
        for (size_t i = 0; i < g->pn; i++)
            memcpy(g->plist[i], g->live[i]->id, GSP_ID_LEN);
        for (size_t i = g->pn; i > 1; i--) {
            size_t j = (size_t)gspi_randn(g, i);
            uint8_t t[GSP_ID_LEN];
            memcpy(t, g->plist[i - 1], GSP_ID_LEN);
            memcpy(g->plist[i - 1], g->plist[j], GSP_ID_LEN);
            memcpy(g->plist[j], t, GSP_ID_LEN);
        }
    }
    return NULL;
}

void gspi_detect_tick(gsp *g, uint64_t now)
{
    /* Suspicion timers (iterate backwards: declaring dead removes). */
    for (size_t i = g->nsusp; i > 0; i--) {
        member *m = g->susp[i - 1];
        if (now >= m->suspect_at + m->suspect_to)
            gspi_declare_dead(g, now, m, true);
    }
    for (int i = 0; i < MAX_HELPERS; i++)
        if (g->helpers[i].used && g->helpers[i].deadline <= now)
            g->helpers[i].used = false;
    if (g->left)
        return;
    uint64_t scale = 1 + g->health;
    if (g->probe.active) {
        member *m = gspi_member_find(g, g->probe.target);
        if (!m || !(m->state == GSP_ALIVE || m->state == GSP_SUSPECT)) {
            g->probe.active = false;
        } else {
            if (!g->probe.indirect && now >= g->probe.timeout_at) {
                g->probe.indirect = true;
                member *h[16];
                int n = gspi_pick_peers(g, h, g->cfg.indirect, m->id);
                uint8_t body[4 + GSP_ID_LEN + 1 + GSP_ADDR_MAX];
                size_t al = strlen(m->addr);
                gsp_put_u32(body, g->probe.seq);
                memcpy(body + 4, m->id, GSP_ID_LEN);
                body[4 + GSP_ID_LEN] = (uint8_t)al;
                memcpy(body + 5 + GSP_ID_LEN, m->addr, al);
                for (int i = 0; i < n; i++)
                    gspi_send_simple(g, h[i]->addr, SEC_PINGREQ, body,
                                     5 + GSP_ID_LEN + al);
                /* Retry the direct path too: cheap, and it halves the
                 * chance that loss alone fails the probe. */
                send_ping(g, m->addr, g->probe.seq, m->id);
            }
            if (now >= g->probe.end_at) {
                g->probe.active = false;
                g->st.probe_failures++;
                if (g->health < HEALTH_MAX)
                    g->health++;
                gspi_suspect(g, now, m, g->id, true);
            }
        }
    }
    if (!g->probe.active && now >= g->next_probe) {
        g->next_probe = now + g->cfg.probe_interval_ms * scale;
        member *m = next_target(g);
        if (m) {
            g->probe.active = true;
            g->probe.acked = false;
            g->probe.indirect = false;
            g->probe.seq = ++g->probe_seq;
            memcpy(g->probe.target, m->id, GSP_ID_LEN);
            g->probe.timeout_at = now + g->cfg.probe_timeout_ms * scale;
            g->probe.end_at = now + g->cfg.probe_interval_ms * scale;
            g->st.probes++;
            send_ping(g, m->addr, g->probe.seq, m->id);
        }
    }
}

uint64_t gspi_detect_deadline(const gsp *g)
{
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < g->nsusp; i++) {
        uint64_t t = g->susp[i]->suspect_at + g->susp[i]->suspect_to;
        if (t < d)
            d = t;
    }
    if (g->left)
        return d;
    if (g->probe.active) {
        if (!g->probe.indirect && g->probe.timeout_at < d)
            d = g->probe.timeout_at;
        if (g->probe.end_at < d)
            d = g->probe.end_at;
    } else if (g->next_probe < d) {
        d = g->next_probe;
    }
    return d;
}
