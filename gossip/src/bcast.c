/* SPDX-License-Identifier: MIT */
/*
 * bcast.c - the broadcast queue (eager, infection-style push) and flushes.
 *
 * Design notes: an item is a ready-made section (a one-unit UNITS section
 * with range (v-1, v], or an ACCUSE). Each frame that carries it counts as
 * one transmission; after `limit` = retransmit_mult * ceil(log10(n+1))
 * transmissions it is dropped (memberlist's TransmitLimitedQueue). Items
 * sent fewest times go first. A newer item with the same invalidation key
 * (same owner and key, or same accusation) replaces the older one. Queuing
 * schedules an immediate flush to `fanout` random peers, rate-limited to
 * one per eager_gap_ms, so fresh news moves at network speed instead of
 * waiting for the next gossip interval.  The origin of a change flushes
 * to every live peer (up to GSPI_DIRECT_MAX), so in LAN-sized clusters a
 * change reaches everyone in one hop and relays only back it up.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint32_t gsp_retransmit_limit(uint32_t mult, size_t n)
{
    uint32_t l = (uint32_t)ceil(log10((double)n + 1.0));
    if (l < 1)
        l = 1;
    return mult * l;
}

uint32_t gspi_limit(const gsp *g)
{
    return gsp_retransmit_limit(g->cfg.retransmit_mult, gspi_n_alive(g));
}

static void bq_remove(gsp *g, size_t i)
{
    free(g->bq[i]);
    memmove(&g->bq[i], &g->bq[i + 1], (g->nbq - i - 1) * sizeof(bcast *));
    g->nbq--;
}

int gspi_bcast_push(gsp *g, uint64_t now, uint64_t ikey, const uint8_t *sec,
                    size_t len)
{
    for (size_t i = 0; i < g->nbq; i++)
        if (g->bq[i]->ikey == ikey) {
            bq_remove(g, i);
            break;
        }
    if (!g->bq) {
        g->bq = calloc(MAX_BCAST, sizeof(bcast *));
        if (!g->bq)
            return GSP_ENOMEM;
    }
    if (g->nbq == MAX_BCAST) {
        /* Full: drop the most transmitted item. */
        size_t worst = 0;
        for (size_t i = 1; i < g->nbq; i++)
            if (g->bq[i]->sent > g->bq[worst]->sent)
                worst = i;
        bq_remove(g, worst);
    }
    bcast *b = malloc(sizeof(*b) + len);
    if (!b)
        return GSP_ENOMEM;
    b->ikey = ikey;
    b->sent = 0;
    b->limit = gspi_limit(g);
    b->len = len;
    memcpy(b->body, sec, len);
    g->bq[g->nbq++] = b;
    if (g->eager_due == UINT64_MAX) {
        uint64_t at = g->st.eager_flushes
                          ? g->last_eager + g->cfg.eager_gap_ms
                          : now;
        g->eager_due = at > now ? at : now;
    }
    return 0;
}

int gspi_bcast_unit(gsp *g, uint64_t now, const uint8_t owner[GSP_ID_LEN],
                    uint64_t inc, uint64_t ver, const uint8_t *unit,
                    size_t ulen, uint64_t ikey)
{
    return gspi_bcast_unit_f(g, now, owner, inc, ver, unit, ulen, ikey,
                             UNITS_F_EAGER, 0);
}

/* flags go into the UNITS section; limit 0 = the usual retransmit limit. */
int gspi_bcast_unit_f(gsp *g, uint64_t now, const uint8_t owner[GSP_ID_LEN],
                      uint64_t inc, uint64_t ver, const uint8_t *unit,
                      size_t ulen, uint64_t ikey, uint8_t flags,
                      uint32_t limit)
{
    size_t len = SEC_HDR_LEN + GSP_ID_LEN + 8 * 4 + 1 + 2 + 2 + ulen;
    uint8_t *buf = malloc(len);
    if (!buf)
        return GSP_ENOMEM;
    gsp_wr w;
    gsp_wr_init(&w, buf, len);
    gsp_wr_u8(&w, SEC_UNITS);
    gsp_wr_u32(&w, (uint32_t)(len - SEC_HDR_LEN));
    gsp_wr_bytes(&w, owner, GSP_ID_LEN);
    gsp_wr_u64(&w, inc);
    gsp_wr_u64(&w, ver - 1);
    gsp_wr_u64(&w, ver);
    gsp_wr_u64(&w, 0);
    gsp_wr_u8(&w, flags);
    gsp_wr_u16(&w, 1);
    gsp_wr_blob16(&w, unit, ulen);
    int rc = w.err ? GSP_EINVAL : gspi_bcast_push(g, now, ikey, buf, len);
    if (rc == 0 && limit != 0)
        g->bq[g->nbq - 1]->limit = limit; /* push appends */
    free(buf);
    return rc;
}

void gspi_bcast_fill(gsp *g, fbuild *b)
{
    if (!g->nbq)
        return;
    uint32_t maxs = 0;
    for (size_t i = 0; i < g->nbq; i++)
        if (g->bq[i]->sent > maxs)
            maxs = g->bq[i]->sent;
    for (uint32_t s = 0; s <= maxs; s++) {
        for (size_t i = 0; i < g->nbq; i++) {
            bcast *it = g->bq[i];
            if (it->sent != s || gsp_wr_left(&b->w) < it->len)
                continue;
            gsp_wr_bytes(&b->w, it->body, it->len);
            it->sent++;
        }
        if (gsp_wr_left(&b->w) < 64)
            break;
    }
}

void gspi_bcast_prune(gsp *g)
{
    size_t k = 0;
    for (size_t i = 0; i < g->nbq; i++) {
        if (g->bq[i]->sent >= g->bq[i]->limit)
            free(g->bq[i]);
        else
            g->bq[k++] = g->bq[i];
    }
    g->nbq = k;
}

void gspi_bcast_clear(gsp *g)
{
    for (size_t i = 0; i < g->nbq; i++)
        free(g->bq[i]);
    g->nbq = 0;
}

int gspi_flush(gsp *g, uint64_t now, bool with_sync)
{
    return gspi_flush_k(g, now, with_sync, g->cfg.fanout);
}

/* The origin of a change tells every live peer at once (up to
 * GSPI_DIRECT_MAX; beyond that twice the fanout): one hop to everyone, so
 * no node depends on the random relay wave, whose misses would otherwise
 * wait for the next anti-entropy round (stragglers). */
int gspi_flush_origin(gsp *g, uint64_t now)
{
    size_t k = g->nlive <= GSPI_DIRECT_MAX ? g->nlive : 2 * g->cfg.fanout;
    return gspi_flush_k(g, now, false, k);
}

int gspi_flush_k(gsp *g, uint64_t now, bool with_sync, size_t k)
{
    g->eager_due = UINT64_MAX;
    if (!with_sync && !g->nbq)
        return 0;
    member *peers[64];
    size_t n = (size_t)gspi_pick_peers(g, peers, k, NULL);
    if (!with_sync && n) {
        g->last_eager = now;
        g->st.eager_flushes++;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        fbuild b;
        rc = gspi_fb_begin(g, &b, peers[i]->addr);
        if (rc)
            break;
        if (with_sync) {
            gspi_fb_sec_begin(&b, SEC_SYNC);
            gsp_wr_u8(&b.w, 0);
            gspi_fb_sec_end(&b);
            g->st.syncs++;
        }
        gspi_bcast_fill(g, &b);
        if (gspi_fb_empty(&b)) {
            gspi_fb_abort(g, &b);
            continue;
        }
        rc = gspi_fb_finish(g, &b);
        if (rc)
            break;
    }
    gspi_bcast_prune(g);
    return rc;
}
