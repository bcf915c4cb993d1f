/* SPDX-License-Identifier: MIT */
/*
 * state.c - the gsp object: lifecycle, the member table, entries, view
 * hashes, events, our own record (put/del/leave), garbage collection, and
 * the observability calls.
 *
 * Design notes:
 * - The view digest is an XOR of per-member hashes, and a member hash an
 *   XOR of per-unit hashes (BLAKE2b-256 of the unit's signature). A change
 *   updates the member, its bucket and the view in O(1), so digests are
 *   always current and comparing views costs one memcmp.
 * - Members live in a hash table by id plus three index arrays: all members
 *   (iteration, stable between modifications), live remote members (O(1)
 *   uniform random peer choice), and suspects (timers). Each member stores
 *   its position in each array for O(1) swap-removal.
 * - Entries of one member are a hash table by key plus a list in ascending
 *   version order, so "all units newer than v" is a suffix walk.
 * - Tombstones and dead members expire through FIFOs ordered by time, so
 *   garbage collection never scans the whole directory.
 */
#include "internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- rng: xoshiro256** seeded by splitmix64 ---- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gspi_rand(gsp *g)
{
    uint64_t *s = g->rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

uint64_t gspi_randn(gsp *g, uint64_t n)
{
    return n ? gspi_rand(g) % n : 0;
}

uint64_t gspi_khash(const gsp *g, const void *p, size_t n)
{
    uint8_t out[8];
    crypto_shorthash(out, p, n, g->hkey);
    return gsp_get_u64(out);
}

/* ---- errors and names ---- */

const char *gsp_strerror(int code)
{
    switch (code) {
    case GSP_OK: return "success";
    case GSP_EINVAL: return "invalid argument";
    case GSP_ENOMEM: return "out of memory";
    case GSP_ENOSPC: return "buffer too small";
    case GSP_ETOOBIG: return "frame or value too big";
    case GSP_EMALFORMED: return "malformed frame";
    case GSP_EUNKNOWNKEY: return "unknown key id";
    case GSP_EAUTH: return "authentication failed";
    case GSP_EREPLAY: return "replayed frame";
    case GSP_ESIG: return "bad record signature";
    case GSP_ESTALE: return "stale frame";
    case GSP_EVERSION: return "unsupported version";
    case GSP_ENOKEY: return "no primary key";
    case GSP_ELEFT: return "left the cluster";
    case GSP_ENOTFOUND: return "not found";
    case GSP_EBUSY: return "key is primary";
    case GSP_ESELF: return "frame from self";
    default: return "unknown error";
    }
}

const char *gsp_state_name(gsp_state s)
{
    switch (s) {
    case GSP_ALIVE: return "alive";
    case GSP_SUSPECT: return "suspect";
    case GSP_DEAD: return "dead";
    case GSP_LEFT: return "left";
    default: return "unknown";
    }
}

const char *gsp_drop_name(gsp_drop d)
{
    static const char *n[GSP_DROP_COUNT] = {
        "too_big", "unknown_key", "auth",  "malformed", "version",
        "replay",  "bad_sig",     "stale", "self",      "nomem"};
    return (unsigned)d < GSP_DROP_COUNT ? n[d] : "unknown";
}

/* ---- config ---- */

void gsp_config_init(gsp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

#define DEF(f, v)                                                             \
    do {                                                                      \
        if (!c->f)                                                            \
            c->f = (v);                                                       \
    } while (0)

static void defaults(gsp_config *c)
{
    DEF(gossip_interval_ms, 200);
    DEF(fanout, 3);
    DEF(retransmit_mult, 4);
    DEF(eager_gap_ms, 5);
    DEF(probe_interval_ms, 400);
    DEF(probe_timeout_ms, 200);
    DEF(indirect, 3);
    DEF(suspicion_mult, 2);
    DEF(suspicion_max_mult, 2);
    DEF(tombstone_ms, 60000);
    DEF(dead_gc_ms, 60000);
    DEF(seed_min_ms, 200);
    DEF(seed_max_ms, 10000);
    DEF(max_frame, 65536);
    DEF(max_value, 4096);
    DEF(max_members, 65536);
    DEF(max_out, 8192);
    if (c->max_frame < GSP_FRAME_MIN)
        c->max_frame = GSP_FRAME_MIN;
    if (c->max_frame > (1u << 24))
        c->max_frame = 1u << 24;
    if (c->max_value > GSP_VALUE_MAX)
        c->max_value = GSP_VALUE_MAX;
    if (c->fanout > 64)
        c->fanout = 64;
    if (c->indirect > 16)
        c->indirect = 16;
}

/* ---- view hashes ---- */

void gspi_unit_hash(const uint8_t *sig, uint8_t out[GSP_DIGEST_LEN])
{
    crypto_generichash(out, GSP_DIGEST_LEN, sig, SIG_LEN, NULL, 0);
}

static void xor32(uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < GSP_DIGEST_LEN; i++)
        a[i] ^= b[i];
}

static void view_toggle(gsp *g, member *m)
{
    xor32(g->bh[m->bucket], m->mh);
    xor32(g->view, m->mh);
}

void gspi_mh_xor(gsp *g, member *m, const uint8_t h[GSP_DIGEST_LEN])
{
    if (m->in_view)
        view_toggle(g, m);
    xor32(m->mh, h);
    if (m->in_view)
        view_toggle(g, m);
}

static void view_set(gsp *g, member *m, bool on)
{
    if (m->in_view == on)
        return;
    view_toggle(g, m);
    m->in_view = on;
}

/* ---- member table ---- */

static size_t mslot(const gsp *g, const uint8_t *id)
{
    return (size_t)gspi_khash(g, id, GSP_ID_LEN) & (g->mnb - 1);
}

member *gspi_member_find(const gsp *g, const uint8_t id[GSP_ID_LEN])
{
    for (member *m = g->mtab[mslot(g, id)]; m; m = m->hnext)
        if (memcmp(m->id, id, GSP_ID_LEN) == 0)
            return m;
    return NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return GSP_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static int mtab_grow(gsp *g)
{
    if (g->nmem < g->mnb)
        return 0;
    size_t nb = g->mnb * 2;
    member **t = calloc(nb, sizeof(*t));
    if (!t)
        return GSP_ENOMEM;
    size_t old = g->mnb;
    member **ot = g->mtab;
    g->mtab = t;
    g->mnb = nb;
    for (size_t i = 0; i < old; i++) {
        member *m = ot[i];
        while (m) {
            member *n = m->hnext;
            size_t s = mslot(g, m->id);
            m->hnext = t[s];
            t[s] = m;
            m = n;
        }
    }
    free(ot);
    return 0;
}

member *gspi_member_new(gsp *g, const uint8_t id[GSP_ID_LEN])
{
    if (g->nmem >= g->cfg.max_members)
        return NULL;
    int b = id[0] & (NBUCKETS - 1);
    if (mtab_grow(g) ||
        grow((void **)&g->mem, &g->mem_cap, g->nmem + 1, sizeof(member *)) ||
        grow((void **)&g->bk[b].v, &g->bk[b].cap, g->bk[b].n + 1,
             sizeof(member *)))
        return NULL;
    member *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    memcpy(m->id, id, GSP_ID_LEN);
    gsp_id_hex(id, m->hex);
    m->bucket = b;
    m->lidx = -1;
    m->sidx = -1;
    size_t s = mslot(g, id);
    m->hnext = g->mtab[s];
    g->mtab[s] = m;
    m->midx = g->nmem;
    g->mem[g->nmem++] = m;
    m->bidx = g->bk[b].n;
    g->bk[b].v[g->bk[b].n++] = m;
    return m;
}

static void entry_free(entry *e)
{
    if (!e)
        return;
    free(e->unit);
    free(e);
}

static void member_free(member *m)
{
    for (entry *e = m->lhead; e;) {
        entry *n = e->lnext;
        entry_free(e);
        e = n;
    }
    free(m->etab);
    free(m->hunit);
    free(m);
}

void gspi_member_remove(gsp *g, member *m)
{
    view_set(g, m, false);
    gspi_live_del(g, m);
    gspi_susp_del(g, m);
    member **pp = &g->mtab[mslot(g, m->id)];
    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    g->mem[m->midx] = g->mem[--g->nmem];
    g->mem[m->midx]->midx = m->midx;
    size_t b = (size_t)m->bucket;
    g->bk[b].v[m->bidx] = g->bk[b].v[--g->bk[b].n];
    g->bk[b].v[m->bidx]->bidx = m->bidx;
    member_free(m);
}

/* ---- entries ---- */

entry *gspi_entry_find(const member *m, uint64_t h, const uint8_t *key,
                       size_t klen)
{
    if (!m->enb)
        return NULL;
    for (entry *e = m->etab[h & (m->enb - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static int etab_grow(member *m)
{
    if (m->ecount < m->enb)
        return 0;
    size_t nb = m->enb ? m->enb * 2 : 8;
    entry **t = calloc(nb, sizeof(*t));
    if (!t)
        return GSP_ENOMEM;
    for (size_t i = 0; i < m->enb; i++) {
        entry *e = m->etab[i];
        while (e) {
            entry *n = e->hnext;
            e->hnext = t[e->hash & (nb - 1)];
            t[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    free(m->etab);
    m->etab = t;
    m->enb = nb;
    return 0;
}

static void list_unlink(member *m, entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        m->lhead = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        m->ltail = e->lprev;
    e->lnext = e->lprev = NULL;
}

/* Insert keeping ascending version order; new versions almost always go
 * at the tail, so walk backwards. */
static void list_insert(member *m, entry *e)
{
    entry *p = m->ltail;
    while (p && p->ver > e->ver)
        p = p->lprev;
    e->lprev = p;
    e->lnext = p ? p->lnext : m->lhead;
    if (e->lnext)
        e->lnext->lprev = e;
    else
        m->ltail = e;
    if (p)
        p->lnext = e;
    else
        m->lhead = e;
}

static void hash_unlink(member *m, entry *e)
{
    entry **pp = &m->etab[e->hash & (m->enb - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    m->ecount--;
}

static void emit_entry(gsp *g, member *m, gsp_event_type t, const entry *e)
{
    if (!g->cfg.on_event || m == g->self)
        return;
    gsp_event ev = {.type = t,
                    .id = m->id,
                    .id_hex = m->hex,
                    .addr = m->addr,
                    .incarnation = m->inc,
                    .key = e->key,
                    .klen = e->klen,
                    .val = t == GSP_EV_ENTRY_PUT ? e->val : NULL,
                    .vlen = t == GSP_EV_ENTRY_PUT ? e->vlen : 0};
    g->cfg.on_event(g->cfg.event_arg, &ev);
}

void gspi_emit_member(gsp *g, member *m, gsp_event_type t)
{
    if (!g->cfg.on_event || m == g->self)
        return;
    gsp_event ev = {.type = t,
                    .id = m->id,
                    .id_hex = m->hex,
                    .addr = m->addr,
                    .incarnation = m->inc};
    g->cfg.on_event(g->cfg.event_arg, &ev);
}

/* Remove one entry (live or tombstone) from m; live removal updates the
 * hashes and, with events, emits ENTRY_DEL. */
static void entry_remove(gsp *g, member *m, entry *e, bool events)
{
    if (!e->tomb) {
        uint8_t h[GSP_DIGEST_LEN];
        gspi_unit_hash(e->unit + e->ulen - SIG_LEN, h);
        gspi_mh_xor(g, m, h);
        m->nlive--;
        if (events)
            emit_entry(g, m, GSP_EV_ENTRY_DEL, e);
    }
    hash_unlink(m, e);
    list_unlink(m, e);
    entry_free(e);
}

void gspi_drop_entries(gsp *g, member *m, bool events)
{
    while (m->lhead)
        entry_remove(g, m, m->lhead, events);
    m->wm = 0;
}

/* Store a verified entry unit (takes `unit` on success). Returns 1 if
 * stored, 0 if not newer than what is held (unit not taken). */
static int entry_store(gsp *g, member *m, const punit *u, uint8_t *unit,
                       uint64_t now)
{
    uint64_t h = gspi_khash(g, u->key, u->klen);
    entry *old = gspi_entry_find(m, h, u->key, u->klen);
    if (old && old->ver >= u->ver)
        return 0;
    if (!old && etab_grow(m))
        return GSP_ENOMEM;
    bool tomb = (u->flags & ENT_F_TOMB) != 0;
    if (tomb && gspi_fifo_push(&g->tombs, now, m->id, m->inc, u->ver, u->key,
                               u->klen))
        return GSP_ENOMEM;
    entry *e = calloc(1, sizeof(*e));
    if (!e)
        return GSP_ENOMEM;
    e->unit = unit;
    e->ulen = u->rawlen;
    e->ver = u->ver;
    e->hash = h;
    e->tomb = tomb;
    e->key = unit + (u->key - u->raw);
    e->klen = u->klen;
    e->val = unit + (u->val - u->raw);
    e->vlen = u->vlen;
    bool was_live = old && !old->tomb;
    if (old)
        entry_remove(g, m, old, false);
    e->hnext = m->etab[h & (m->enb - 1)];
    m->etab[h & (m->enb - 1)] = e;
    m->ecount++;
    list_insert(m, e);
    if (!tomb) {
        uint8_t uh[GSP_DIGEST_LEN];
        gspi_unit_hash(u->sig, uh);
        gspi_mh_xor(g, m, uh);
        m->nlive++;
        emit_entry(g, m, GSP_EV_ENTRY_PUT, e);
    } else if (was_live) {
        emit_entry(g, m, GSP_EV_ENTRY_DEL, e);
    }
    return 1;
}


int gspi_entry_apply(gsp *g, member *m, const punit *u, uint64_t now)
{
    uint8_t *copy = malloc(u->rawlen);
    if (!copy)
        return GSP_ENOMEM;
    memcpy(copy, u->raw, u->rawlen);
    int rc = entry_store(g, m, u, copy, now);
    if (rc != 1)
        free(copy);
    return rc;
}

/* ---- liveness bookkeeping ---- */

size_t gspi_n_alive(const gsp *g)
{
    return g->nlive + 1;
}

void gspi_set_state(gsp *g, member *m, gsp_state s, uint64_t now)
{
    m->state = s;
    bool live = s == GSP_ALIVE || s == GSP_SUSPECT;
    view_set(g, m, live && m->have_hdr);
    if (m == g->self)
        return;
    if (live)
        gspi_live_add(g, m);
    else
        gspi_live_del(g, m);
    if (s != GSP_SUSPECT)
        gspi_susp_del(g, m);
    if (s == GSP_DEAD || s == GSP_LEFT) {
        m->dead_at = now;
        gspi_fifo_push(&g->deads, now, m->id, m->inc, m->hv, NULL, 0);
    }
}

/* ---- FIFOs ---- */

int gspi_fifo_push(fifo *f, uint64_t at, const uint8_t id[GSP_ID_LEN],
                   uint64_t inc, uint64_t ver, const uint8_t *key, size_t klen)
{
    fifo_item *it = malloc(sizeof(*it) + klen);
    if (!it)
        return GSP_ENOMEM;
    it->next = NULL;
    it->at = at;
    memcpy(it->id, id, GSP_ID_LEN);
    it->inc = inc;
    it->ver = ver;
    it->klen = klen;
    if (klen)
        memcpy(it->key, key, klen);
    if (f->tail)
        f->tail->next = it;
    else
        f->head = it;
    f->tail = it;
    return 0;
}

static fifo_item *fifo_pop(fifo *f)
{
    fifo_item *it = f->head;
    if (it) {
        f->head = it->next;
        if (!f->head)
            f->tail = NULL;
    }
    return it;
}

void gspi_fifo_clear(fifo *f)
{
    fifo_item *it;
    while ((it = fifo_pop(f)))
        free(it);
}

void gspi_gc(gsp *g, uint64_t now)
{
    while (g->tombs.head && g->tombs.head->at + g->cfg.tombstone_ms <= now) {
        fifo_item *it = fifo_pop(&g->tombs);
        member *m = gspi_member_find(g, it->id);
        if (m && m->inc == it->inc) {
            entry *e = gspi_entry_find(m, gspi_khash(g, it->key, it->klen),
                                       it->key, it->klen);
            if (e && e->tomb && e->ver == it->ver) {
                entry_remove(g, m, e, false);
                if (m->floor < it->ver)
                    m->floor = it->ver;
            }
        }
        free(it);
    }
    while (g->deads.head && g->deads.head->at + g->cfg.dead_gc_ms <= now) {
        fifo_item *it = fifo_pop(&g->deads);
        member *m = gspi_member_find(g, it->id);
        if (m && m != g->self &&
            (m->state == GSP_DEAD || m->state == GSP_LEFT) &&
            m->dead_at == it->at)
            gspi_member_remove(g, m);
        free(it);
    }
}

/* ---- lifecycle ---- */

int gsp_alloc(gsp **out, const gsp_config *cfg, uint64_t now_ms)
{
    if (!out || !cfg || !cfg->pk || !cfg->sk || !cfg->addr || !cfg->keyring)
        return GSP_EINVAL;
    size_t alen = strlen(cfg->addr);
    if (alen == 0 || alen > GSP_ADDR_MAX)
        return GSP_EINVAL;
    if (sodium_init() < 0)
        return GSP_ENOMEM;
    /* The secret key embeds the public key: they must match. */
    if (memcmp(cfg->sk + 32, cfg->pk, GSP_PK_LEN) != 0)
        return GSP_EINVAL;
    gsp *g = calloc(1, sizeof(*g));
    if (!g)
        return GSP_ENOMEM;
    g->cfg = *cfg;
    defaults(&g->cfg);
    g->kr = cfg->keyring;
    memcpy(g->pk, cfg->pk, GSP_PK_LEN);
    memcpy(g->sk, cfg->sk, GSP_SK_LEN);
    gsp_id_from_pk(g->pk, g->id, g->hex);
    memcpy(g->addr, cfg->addr, alen + 1);
    g->cfg.addr = g->addr;
    g->cfg.pk = g->pk;
    g->cfg.sk = NULL;
    g->inc = cfg->incarnation;
    uint64_t x = cfg->seed ^ gsp_get_u64(g->id);
    for (int i = 0; i < 4; i++)
        g->rng[i] = splitmix(&x);
    gsp_put_u64(g->hkey, splitmix(&x));
    gsp_put_u64(g->hkey + 8, splitmix(&x));
    g->mnb = 64;
    g->mtab = calloc(g->mnb, sizeof(member *));
    g->rx = malloc(g->cfg.max_frame);
    g->vbits_len = g->cfg.max_frame / 8 + 1;
    g->vbits = malloc(g->vbits_len);
    if (!g->mtab || !g->rx || !g->vbits)
        goto fail;
    g->self = gspi_member_new(g, g->id);
    if (!g->self)
        goto fail;
    memcpy(g->self->pk, g->pk, GSP_PK_LEN);
    if (gspi_unit_sign_hdr(g, 0))
        goto fail;
    gspi_set_state(g, g->self, GSP_ALIVE, now_ms);
    g->next_gossip = now_ms + gspi_randn(g, g->cfg.gossip_interval_ms);
    g->next_probe = now_ms + gspi_randn(g, g->cfg.probe_interval_ms);
    g->seed_backoff = g->cfg.seed_min_ms;
    g->next_seed = now_ms;
    g->eager_due = UINT64_MAX;
    *out = g;
    return 0;
fail:
    gsp_free(g);
    return GSP_ENOMEM;
}

void gsp_free(gsp *g)
{
    if (!g)
        return;
    while (g->nmem)
        gspi_member_remove(g, g->mem[g->nmem - 1]);
    free(g->mtab);
    free(g->mem);
    free(g->live);
    free(g->susp);
    for (int b = 0; b < NBUCKETS; b++)
        free(g->bk[b].v);
    gspi_fifo_clear(&g->tombs);
    gspi_fifo_clear(&g->deads);
    gspi_bcast_clear(g);
    free(g->bq);
    gspi_out_clear(g);
    for (size_t i = 0; i < g->nseeds; i++)
        free(g->seeds[i]);
    free(g->seeds);
    free(g->plist);
    free(g->rx);
    for (int i = 0; i < 4; i++)
        free(g->txpool[i]);
    free(g->vbits);
    sodium_memzero(g->sk, sizeof(g->sk));
    free(g);
}

const uint8_t *gsp_self_id(const gsp *g)
{
    return g->id;
}

const char *gsp_self_hex(const gsp *g)
{
    return g->hex;
}

uint64_t gsp_incarnation(const gsp *g)
{
    return g->inc;
}

int gsp_set_seeds(gsp *g, const char *const *addrs, size_t n, uint64_t now_ms)
{
    if (!g || (n && !addrs))
        return GSP_EINVAL;
    char **v = n ? calloc(n, sizeof(char *)) : NULL;
    if (n && !v)
        return GSP_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!addrs[i])
            continue;
        size_t l = strlen(addrs[i]);
        if (l == 0 || l > GSP_ADDR_MAX || strcmp(addrs[i], g->addr) == 0)
            continue;
        v[k] = malloc(l + 1);
        if (!v[k]) {
            while (k)
                free(v[--k]);
            free(v);
            return GSP_ENOMEM;
        }
        memcpy(v[k++], addrs[i], l + 1);
    }
    for (size_t i = 0; i < g->nseeds; i++)
        free(g->seeds[i]);
    free(g->seeds);
    g->seeds = v;
    g->nseeds = k;
    g->seed_backoff = g->cfg.seed_min_ms;
    g->next_seed = now_ms;
    return 0;
}

/* ---- our own record ---- */

int gsp_put(gsp *g, uint64_t now_ms, const void *key, size_t klen,
            const void *val, size_t vlen)
{
    if (!g || !key || klen == 0 || klen > GSP_KEY_MAX || (!val && vlen))
        return GSP_EINVAL;
    if (vlen > g->cfg.max_value)
        return GSP_ETOOBIG;
    if (g->left)
        return GSP_ELEFT;
    uint8_t *unit;
    size_t ulen;
    int rc = gspi_unit_sign_ent(g, key, klen, val, vlen, false, &unit, &ulen);
    if (rc)
        return rc;
    return gspi_self_entry(g, now_ms, unit, ulen);
}

int gsp_del(gsp *g, uint64_t now_ms, const void *key, size_t klen)
{
    if (!g || !key || klen == 0 || klen > GSP_KEY_MAX)
        return GSP_EINVAL;
    if (g->left)
        return GSP_ELEFT;
    entry *e = gspi_entry_find(g->self, gspi_khash(g, key, klen), key, klen);
    if (!e || e->tomb)
        return GSP_ENOTFOUND;
    uint8_t *unit;
    size_t ulen;
    int rc = gspi_unit_sign_ent(g, key, klen, NULL, 0, true, &unit, &ulen);
    if (rc)
        return rc;
    return gspi_self_entry(g, now_ms, unit, ulen);
}

/* Store a freshly signed own entry unit (takes it), broadcast it, flush. */
int gspi_self_entry(gsp *g, uint64_t now, uint8_t *unit, size_t ulen)
{
    punit u;
    if (gspi_unit_parse(unit, ulen, GSP_VALUE_MAX, &u)) {
        free(unit);
        return GSP_EINVAL;
    }
    int rc = entry_store(g, g->self, &u, unit, now);
    if (rc != 1) {
        free(unit);
        g->ver--;
        return rc ? rc : GSP_EINVAL;
    }
    g->self->wm = g->ver;
    uint8_t ik[GSP_ID_LEN + GSP_KEY_MAX + 1];
    memcpy(ik, g->id, GSP_ID_LEN);
    ik[GSP_ID_LEN] = UNIT_ENT;
    memcpy(ik + GSP_ID_LEN + 1, u.key, u.klen);
    entry *e = g->self->ltail;
    /* In a LAN-sized cluster the flush below reaches every live member,
     * so receivers need not relay widely (see sync.c). */
    bool direct = g->nlive <= GSPI_DIRECT_MAX;
    gspi_bcast_unit_f(g, now, g->id, g->inc, e->ver, e->unit, e->ulen,
                      gspi_khash(g, ik, GSP_ID_LEN + 1 + u.klen),
                      UNITS_F_EAGER | (direct ? UNITS_F_DIRECT : 0), 0);
    return gspi_flush_origin(g, now);
}

int gsp_leave(gsp *g, uint64_t now_ms)
{
    if (!g)
        return GSP_EINVAL;
    if (g->left)
        return 0;
    int rc = gspi_unit_sign_hdr(g, HDR_F_LEFT);
    if (rc)
        return rc;
    g->left = true;
    gspi_set_state(g, g->self, GSP_LEFT, now_ms);
    uint8_t ik[GSP_ID_LEN + 1];
    memcpy(ik, g->id, GSP_ID_LEN);
    ik[GSP_ID_LEN] = UNIT_HDR;
    gspi_bcast_unit(g, now_ms, g->id, g->inc, g->self->hv, g->self->hunit,
                    g->self->hulen, gspi_khash(g, ik, sizeof(ik)));
    /* Tell (up to 64) live members directly, at once. */
    size_t n = g->nlive < 64 ? g->nlive : 64;
    for (size_t i = 0; i < n; i++) {
        member *m = g->live[i];
        fbuild b;
        if (gspi_fb_begin(g, &b, m->addr))
            return GSP_ENOMEM;
        gspi_bcast_fill(g, &b);
        rc = gspi_fb_finish(g, &b);
        if (rc)
            return rc;
    }
    gspi_bcast_prune(g);
    return 0;
}

/* ---- observability ---- */

void gsp_digest(const gsp *g, uint8_t out[GSP_DIGEST_LEN])
{
    memcpy(out, g->view, GSP_DIGEST_LEN);
}

int gsp_converged(const gsp *g)
{
    for (size_t i = 0; i < g->nlive; i++) {
        const member *m = g->live[i];
        if (m->state != GSP_ALIVE)
            continue;
        if (!m->adv_ok || memcmp(m->adv, g->view, GSP_DIGEST_LEN) != 0)
            return 0;
    }
    return 1;
}

size_t gsp_member_count(const gsp *g, unsigned mask)
{
    if (!mask)
        return g->nmem;
    size_t n = 0;
    for (size_t i = 0; i < g->nmem; i++)
        if (mask & (1u << g->mem[i]->state))
            n++;
    return n;
}

int gsp_member_next(const gsp *g, size_t *cursor, gsp_member_info *info)
{
    while (*cursor < g->nmem) {
        const member *m = g->mem[(*cursor)++];
        if (!m->have_hdr)
            continue;
        memcpy(info->id, m->id, GSP_ID_LEN);
        memcpy(info->id_hex, m->hex, sizeof(info->id_hex));
        info->addr = m->addr;
        info->state = m->state;
        info->incarnation = m->inc;
        info->version = m->wm;
        info->entries = m->nlive;
        info->self = m == g->self;
        return 1;
    }
    return 0;
}

int gsp_entry_next(const gsp *g, const uint8_t id[GSP_ID_LEN], size_t *cursor,
                   const uint8_t **key, size_t *klen, const uint8_t **val,
                   size_t *vlen)
{
    /* The cursor holds the next entry's address (0 = start, 1 = end); it
     * stays valid because no modifying call may come in between. */
    const member *m = gspi_member_find(g, id);
    if (!m || *cursor == 1 ||
        !(m->state == GSP_ALIVE || m->state == GSP_SUSPECT))
        return 0;
    const entry *e = *cursor ? (const entry *)(uintptr_t)*cursor : m->lhead;
    while (e && e->tomb)
        e = e->lnext;
    if (!e) {
        *cursor = 1;
        return 0;
    }
    *cursor = e->lnext ? (size_t)(uintptr_t)e->lnext : 1;
    *key = e->key;
    *klen = e->klen;
    *val = e->val;
    *vlen = e->vlen;
    return 1;
}

int gsp_entry_get(const gsp *g, const uint8_t id[GSP_ID_LEN], const void *key,
                  size_t klen, const uint8_t **val, size_t *vlen)
{
    const member *m = gspi_member_find(g, id);
    if (!m || !key || !(m->state == GSP_ALIVE || m->state == GSP_SUSPECT))
        return GSP_ENOTFOUND;
    const entry *e = gspi_entry_find(m, gspi_khash(g, key, klen), key, klen);
    if (!e || e->tomb)
        return GSP_ENOTFOUND;
    *val = e->val;
    *vlen = e->vlen;
    return 0;
}

void gsp_get_stats(const gsp *g, gsp_stats *st)
{
    *st = g->st;
    st->health = g->health;
}
