/* SPDX-License-Identifier: MIT */
/*
 * unit.c - signed record units: encoding, parsing, verification and
 * application to the member table.
 *
 * Unit layout (signed bytes, then a 64-byte Ed25519 signature):
 *   'G' 'S' fmt(1) type(1) id(16)
 *   HDR: pk(32) inc(8) ver(8) flags(1) addr(blob8)
 *   ENT: inc(8) ver(8) flags(1) key(blob8) value(blob16)
 *
 * Design notes: a unit is applied only after its signature verified
 * against the owner's key, and the owner's id must equal BLAKE2b-128 of
 * that key (checked when the key is first learned from a header). Apply
 * decisions compare (incarnation, version) only, so applying the same
 * verified unit twice is a no-op, and an older unit can never overwrite a
 * newer one. A unit of our own id that looks newer than our current state
 * comes from a previous life: we move to a higher incarnation and
 * republish everything (rebirth).
 */
#include "internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>



int gspi_unit_parse(const uint8_t *p, size_t n, size_t max_value, punit *u)
{
    gsp_rd r;
    uint8_t m0, m1, fmt;
    memset(u, 0, sizeof(*u));
    if (n < SIG_LEN + 4)
        return -1;
    gsp_rd_init(&r, p, n - SIG_LEN);
    gsp_rd_u8(&r, &m0);
    gsp_rd_u8(&r, &m1);
    gsp_rd_u8(&r, &fmt);
    gsp_rd_u8(&r, &u->type);
    if (r.err || m0 != UNIT_MAGIC0 || m1 != UNIT_MAGIC1 || fmt != UNIT_FMT)
        return -1;
    gsp_rd_bytes(&r, GSP_ID_LEN, &u->id);
    if (u->type == UNIT_HDR) {
        gsp_rd_bytes(&r, GSP_PK_LEN, &u->pk);
        gsp_rd_u64(&r, &u->inc);
        gsp_rd_u64(&r, &u->ver);
        gsp_rd_u8(&r, &u->flags);
        gsp_rd_blob8(&r, GSP_ADDR_MAX, &u->addr, &u->addrlen);
        if (!r.err && u->addrlen == 0)
            r.err = 1;
        if (!r.err && memchr(u->addr, 0, u->addrlen))
            r.err = 1;
    } else if (u->type == UNIT_ENT) {
        gsp_rd_u64(&r, &u->inc);
        gsp_rd_u64(&r, &u->ver);
        gsp_rd_u8(&r, &u->flags);
        gsp_rd_blob8(&r, GSP_KEY_MAX, &u->key, &u->klen);
        gsp_rd_blob16(&r, max_value, &u->val, &u->vlen);
        if (!r.err && u->klen == 0)
            r.err = 1;
        if (!r.err && (u->flags & ENT_F_TOMB) && u->vlen)
            r.err = 1;
    } else {
        return -1;
    }
    if (gsp_rd_done(&r, 1) || u->ver == 0)
        return -1;
    u->msg = p;
    u->msglen = n - SIG_LEN;
    u->sig = p + n - SIG_LEN;
    u->raw = p;
    u->rawlen = n;
    return 0;
}

static int sign_into(gsp *g, gsp_wr *w, uint8_t **out, size_t *outlen)
{
    if (w->err) {
        free(w->p);
        return GSP_EINVAL;
    }
    crypto_sign_detached(w->p + w->off, NULL, w->p, w->off, g->sk);
    *out = w->p;
    *outlen = w->off + SIG_LEN;
    return 0;
}

static void unit_head(gsp_wr *w, uint8_t type, const uint8_t *id)
{
    gsp_wr_u8(w, UNIT_MAGIC0);
    gsp_wr_u8(w, UNIT_MAGIC1);
    gsp_wr_u8(w, UNIT_FMT);
    gsp_wr_u8(w, type);
    gsp_wr_bytes(w, id, GSP_ID_LEN);
}

/* Install a verified header unit on m (copying it), updating hashes. */
static int set_header(gsp *g, member *m, const punit *u)
{
    uint8_t *copy = malloc(u->rawlen);
    if (!copy)
        return GSP_ENOMEM;
    memcpy(copy, u->raw, u->rawlen);
    uint8_t h[GSP_DIGEST_LEN];
    if (m->have_hdr) {
        gspi_unit_hash(m->hunit + m->hulen - SIG_LEN, h);
        gspi_mh_xor(g, m, h);
    }
    free(m->hunit);
    m->hunit = copy;
    m->hulen = u->rawlen;
    gspi_unit_hash(u->sig, h);
    gspi_mh_xor(g, m, h);
    memcpy(m->pk, u->pk, GSP_PK_LEN);
    m->inc = u->inc;
    m->hv = u->ver;
    m->hflags = u->flags;
    memcpy(m->addr, u->addr, u->addrlen);
    m->addr[u->addrlen] = '\0';
    m->have_hdr = true;
    return 0;
}

/* Sign and install a new own header (bumping our version). */
int gspi_unit_sign_hdr(gsp *g, uint8_t flags)
{
    size_t alen = strlen(g->addr);
    size_t n = 4 + GSP_ID_LEN + GSP_PK_LEN + 17 + 1 + alen + SIG_LEN;
    uint8_t *buf = malloc(n);
    if (!buf)
        return GSP_ENOMEM;
    gsp_wr w;
    gsp_wr_init(&w, buf, n);
    unit_head(&w, UNIT_HDR, g->id);
    gsp_wr_bytes(&w, g->pk, GSP_PK_LEN);
    gsp_wr_u64(&w, g->inc);
    gsp_wr_u64(&w, g->ver + 1);
    gsp_wr_u8(&w, flags);
    gsp_wr_blob8(&w, g->addr, alen);
    uint8_t *unit;
    size_t ulen;
    int rc = sign_into(g, &w, &unit, &ulen);
    if (rc)
        return rc;
    punit u;
    if (gspi_unit_parse(unit, ulen, GSP_VALUE_MAX, &u)) {
        free(unit);
        return GSP_EINVAL;
    }
    rc = set_header(g, g->self, &u);
    free(unit);
    if (rc)
        return rc;
    g->ver++;
    g->self->wm = g->ver;
    return 0;
}

int gspi_unit_sign_ent(gsp *g, const uint8_t *key, size_t klen,
                       const uint8_t *val, size_t vlen, bool tomb,
                       uint8_t **out, size_t *outlen)
{
    size_t n = 4 + GSP_ID_LEN + 17 + 1 + klen + 2 + vlen + SIG_LEN;
    uint8_t *buf = malloc(n);
    if (!buf)
        return GSP_ENOMEM;
    gsp_wr w;
    gsp_wr_init(&w, buf, n);
    unit_head(&w, UNIT_ENT, g->id);
    gsp_wr_u64(&w, g->inc);
    gsp_wr_u64(&w, g->ver + 1);
    gsp_wr_u8(&w, tomb ? ENT_F_TOMB : 0);
    gsp_wr_blob8(&w, key, klen);
    gsp_wr_blob16(&w, val, vlen);
    int rc = sign_into(g, &w, out, outlen);
    if (rc == 0)
        g->ver++;
    return rc;
}

int gspi_unit_verify(gsp *g, const punit *u, const uint8_t pk[GSP_PK_LEN])
{
    if (u->type == UNIT_HDR) {
        uint8_t id[GSP_ID_LEN];
        gsp_id_from_pk(u->pk, id, NULL);
        if (memcmp(id, u->id, GSP_ID_LEN) != 0)
            return GSP_ESIG;
        pk = u->pk;
    }
    if (!pk)
        return GSP_ESIG;
    int ok = g->cfg.verify
                 ? g->cfg.verify(g->cfg.verify_arg, u->sig, u->msg, u->msglen,
                                 pk)
                 : crypto_sign_verify_detached(u->sig, u->msg, u->msglen, pk);
    return ok == 0 ? 0 : GSP_ESIG;
}

static bool self_newer(const gsp *g, const punit *u)
{
    return u->inc > g->inc || (u->inc == g->inc && u->ver > g->ver);
}

int gspi_unit_relevant(const gsp *g, const punit *u)
{
    if (memcmp(u->id, g->id, GSP_ID_LEN) == 0)
        return self_newer(g, u);
    const member *m = gspi_member_find(g, u->id);
    if (!m || !m->have_hdr)
        return u->type == UNIT_HDR && g->nmem < g->cfg.max_members;
    if (u->inc != m->inc)
        return u->inc > m->inc;
    if (u->type == UNIT_HDR)
        return u->ver > m->hv;
    const entry *e = gspi_entry_find(m, gspi_khash(g, u->key, u->klen),
                                     u->key, u->klen);
    return !e || e->ver < u->ver;
}

/* We heard a signed unit of ours from a later-looking life: move past it
 * and republish our live entries under the new incarnation. */
static int rebirth(gsp *g, uint64_t now, uint64_t seen_inc)
{
    member *s = g->self;
    size_t n = s->nlive, k = 0;
    struct kv {
        uint8_t *key, *val;
        size_t klen, vlen;
    } *v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v)
        return GSP_ENOMEM;
    int rc = 0;
    for (entry *e = s->lhead; e; e = e->lnext) {
        if (e->tomb)
            continue;
        v[k].key = malloc(e->klen);
        v[k].val = malloc(e->vlen ? e->vlen : 1);
        if (!v[k].key || !v[k].val) {
            free(v[k].key);
            free(v[k].val);
            rc = GSP_ENOMEM;
            goto out;
        }
        memcpy(v[k].key, e->key, e->klen);
        memcpy(v[k].val, e->val, e->vlen);
        v[k].klen = e->klen;
        v[k].vlen = e->vlen;
        k++;
    }
    gspi_drop_entries(g, s, false);
    g->inc = (seen_inc > g->inc ? seen_inc : g->inc) + 1;
    g->ver = 0;
    s->inc = g->inc;
    s->floor = 0;
    rc = gspi_unit_sign_hdr(g, g->left ? HDR_F_LEFT : 0);
    for (size_t i = 0; i < k && rc == 0; i++) {
        uint8_t *unit;
        size_t ulen;
        rc = gspi_unit_sign_ent(g, v[i].key, v[i].klen, v[i].val, v[i].vlen,
                                false, &unit, &ulen);
        if (rc == 0)
            rc = gspi_self_entry(g, now, unit, ulen);
    }
    if (rc == 0) {
        uint8_t ik[GSP_ID_LEN + 1];
        memcpy(ik, g->id, GSP_ID_LEN);
        ik[GSP_ID_LEN] = UNIT_HDR;
        gspi_bcast_unit(g, now, g->id, g->inc, s->hv, s->hunit, s->hulen,
                        gspi_khash(g, ik, sizeof(ik)));
    }
out:
    for (size_t i = 0; i < k; i++) {
        free(v[i].key);
        free(v[i].val);
    }
    free(v);
    return rc;
}

static int apply_hdr(gsp *g, member *m, const punit *u, uint64_t now)
{
    bool left = (u->flags & HDR_F_LEFT) != 0;
    if (!m) {
        m = gspi_member_new(g, u->id);
        if (!m)
            return 0;
        if (set_header(g, m, u)) {
            gspi_member_remove(g, m);
            return GSP_ENOMEM;
        }
        if (left) {
            m->acc_hv = u->ver;
            gspi_set_state(g, m, GSP_LEFT, now);
        } else {
            gspi_set_state(g, m, GSP_ALIVE, now);
            gspi_emit_member(g, m, GSP_EV_MEMBER_UP);
        }
        return 1;
    }
    if (!m->have_hdr || u->inc > m->inc) {
        bool was_live = m->state == GSP_ALIVE || m->state == GSP_SUSPECT;
        gspi_drop_entries(g, m, true);
        m->floor = 0;
        m->naccusers = 0;
        if (set_header(g, m, u))
            return GSP_ENOMEM;
        if (left) {
            m->acc_hv = u->ver;
            gspi_set_state(g, m, GSP_LEFT, now);
            if (was_live)
                gspi_emit_member(g, m, GSP_EV_MEMBER_LEFT);
        } else {
            gspi_set_state(g, m, GSP_ALIVE, now);
            gspi_emit_member(g, m, GSP_EV_MEMBER_UP);
        }
        return 1;
    }
    if (u->inc < m->inc || u->ver <= m->hv)
        return 0;
    if (set_header(g, m, u))
        return GSP_ENOMEM;
    if (left) {
        if (m->state == GSP_LEFT)
            return 1;
        bool was_live = m->state == GSP_ALIVE || m->state == GSP_SUSPECT;
        gspi_drop_entries(g, m, true);
        m->acc_hv = u->ver;
        gspi_set_state(g, m, GSP_LEFT, now);
        if (was_live)
            gspi_emit_member(g, m, GSP_EV_MEMBER_LEFT);
        return 1;
    }
    if (m->state == GSP_SUSPECT && u->ver > m->acc_hv) {
        gspi_set_state(g, m, GSP_ALIVE, now);
        m->naccusers = 0;
        gspi_emit_member(g, m, GSP_EV_MEMBER_ALIVE);
    } else if ((m->state == GSP_DEAD || m->state == GSP_LEFT) &&
               u->ver > m->acc_hv) {
        m->wm = 0;
        m->naccusers = 0;
        gspi_set_state(g, m, GSP_ALIVE, now);
        gspi_emit_member(g, m, GSP_EV_MEMBER_UP);
    }
    return 1;
}

int gspi_unit_apply(gsp *g, const punit *u, uint64_t now, bool eager)
{
    (void)eager;
    if (memcmp(u->id, g->id, GSP_ID_LEN) == 0) {
        if (!self_newer(g, u))
            return 0;
        int rc = rebirth(g, now, u->inc);
        return rc ? rc : 0;
    }
    member *m = gspi_member_find(g, u->id);
    int rc;
    if (u->type == UNIT_HDR) {
        rc = apply_hdr(g, m, u, now);
    } else {
        if (!m || !m->have_hdr || u->inc != m->inc ||
            !(m->state == GSP_ALIVE || m->state == GSP_SUSPECT))
            return 0;
        rc = gspi_entry_apply(g, m, u, now);
    }
    if (rc == 1) {
        /* A unit right after our watermark keeps the record contiguous. */
        m = gspi_member_find(g, u->id);
        if (m && m->inc == u->inc && m->wm + 1 == u->ver)
            m->wm = u->ver;
    }
    return rc;
}
