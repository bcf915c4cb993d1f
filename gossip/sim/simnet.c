/* SPDX-License-Identifier: MIT */
/*
 * simnet.c - virtual network and clock driving N gsp instances.
 *
 * Design notes: in-flight messages sit in a binary min-heap ordered by
 * (delivery time, sequence number), so ties resolve in send order and runs
 * are reproducible. Each step delivers everything due within the step at
 * its own timestamp, then ticks every node whose deadline has come. A node
 * only sees monotonic time: deliveries happen in time order and ticks at
 * the step boundary after them.
 */
#include "simnet.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t at, seq;
    size_t from, to;
    uint8_t *buf;
    size_t len;
} msg;

typedef struct {
    sim *s;
    size_t idx;
} evctx;

typedef struct {
    gsp *g;
    gsp_keyring *kr;
    uint8_t pk[32], sk[64], id[GSP_ID_LEN];
    char addr[24];
    uint64_t restarts;
    evctx ev;
} node;

struct sim {
    sim_config cfg;
    node *n;
    size_t nn;
    uint64_t now, seq;
    uint64_t rng[2];
    msg *heap;
    size_t nh, ch;
    int *group;
    uint8_t cluster_key[32];
    /* memo verifier: open addressing over 16-byte hashes */
    uint8_t (*vt)[16];
    size_t vcap, vcount;
    sim_stats st;
    sim_tap_fn tap;
    void *tap_arg;
    const char **seeds;
};

static uint64_t rnd(sim *s)
{
    /* xorshift128+ */
    uint64_t a = s->rng[0], b = s->rng[1];
    s->rng[0] = b;
    a ^= a << 23;
    s->rng[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s->rng[1] + b;
}

static double rnd01(sim *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

void sim_config_init(sim_config *c)
{
    memset(c, 0, sizeof(*c));
    gsp_config_init(&c->knobs);
}

static int memo_verify(void *arg, const uint8_t sig[64], const uint8_t *msg_,
                       size_t len, const uint8_t pk[32])
{
    sim *s = arg;
    s->st.verify_calls++;
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, pk, 32);
    crypto_generichash_update(&st, sig, 64);
    crypto_generichash_update(&st, msg_, len);
    crypto_generichash_final(&st, h, sizeof(h));
    static const uint8_t zero[16];
    if (memcmp(h, zero, 16) == 0)
        h[0] = 1;
    size_t mask = s->vcap - 1, i;
    memcpy(&i, h, sizeof(i));
    for (i &= mask; memcmp(s->vt[i], zero, 16) != 0; i = (i + 1) & mask)
        if (memcmp(s->vt[i], h, 16) == 0)
            return 0;
    s->st.verify_real++;
    if (crypto_sign_verify_detached(sig, msg_, len, pk) != 0)
        return -1;
    if (s->vcount * 2 >= s->vcap) {
        size_t nc = s->vcap * 2;
        uint8_t(*nt)[16] = calloc(nc, 16);
        if (!nt)
            return 0; /* valid; just not cached */
        for (size_t k = 0; k < s->vcap; k++) {
            if (memcmp(s->vt[k], zero, 16) == 0)
                continue;
            size_t j;
            memcpy(&j, s->vt[k], sizeof(j));
            for (j &= nc - 1; memcmp(nt[j], zero, 16) != 0;
                 j = (j + 1) & (nc - 1))
                ;
            memcpy(nt[j], s->vt[k], 16);
        }
        free(s->vt);
        s->vt = nt;
        s->vcap = nc;
        mask = nc - 1;
        memcpy(&i, h, sizeof(i));
        for (i &= mask; memcmp(s->vt[i], zero, 16) != 0; i = (i + 1) & mask)
            ;
    }
    memcpy(s->vt[i], h, 16);
    s->vcount++;
    return 0;
}

static void on_ev(void *arg, const gsp_event *ev)
{
    evctx *c = arg;
    if (c->s->cfg.on_event)
        c->s->cfg.on_event(c->s->cfg.event_arg, c->idx, ev);
}

static int node_start(sim *s, size_t i, uint64_t inc)
{
    node *n = &s->n[i];
    gsp_config c = s->cfg.knobs;
    c.pk = n->pk;
    c.sk = n->sk;
    c.addr = n->addr;
    c.incarnation = inc;
    c.keyring = n->kr;
    c.seed = s->cfg.seed * 1000003u + i * 7919u + n->restarts * 104729u;
    c.on_event = on_ev;
    c.event_arg = &n->ev;
    c.verify = memo_verify;
    c.verify_arg = s;
    gsp_keyring_set_nonce_seed(n->kr, c.seed ^ 0x5eedULL);
    int rc = gsp_alloc(&n->g, &c, s->now);
    if (rc)
        return rc;
    size_t ns = s->cfg.nseeds < s->nn ? s->cfg.nseeds : s->nn;
    return gsp_set_seeds(n->g, s->seeds, ns, s->now);
}

int sim_alloc(sim **out, const sim_config *cfg)
{
    if (!out || !cfg || cfg->nodes == 0)
        return GSP_EINVAL;
    if (sodium_init() < 0)
        return GSP_ENOMEM;
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        return GSP_ENOMEM;
    s->cfg = *cfg;
    if (!s->cfg.delay_min_ms)
        s->cfg.delay_min_ms = 1;
    if (s->cfg.delay_max_ms < s->cfg.delay_min_ms)
        s->cfg.delay_max_ms = s->cfg.delay_min_ms;
    if (!s->cfg.step_ms)
        s->cfg.step_ms = 5;
    if (!s->cfg.nseeds)
        s->cfg.nseeds = 1;
    s->nn = cfg->nodes;
    uint64_t x = cfg->seed ^ 0x9e3779b97f4a7c15ULL;
    s->rng[0] = x * 0xbf58476d1ce4e5b9ULL + 1;
    s->rng[1] = (x ^ (x >> 31)) * 0x94d049bb133111ebULL + 3;
    for (int i = 0; i < 20; i++)
        rnd(s);
    uint8_t sb[8];
    for (int i = 0; i < 8; i++)
        sb[i] = (uint8_t)(cfg->seed >> (8 * i));
    crypto_generichash(s->cluster_key, 32, sb, 8, NULL, 0);
    s->vcap = 1024;
    s->vt = calloc(s->vcap, 16);
    s->n = calloc(s->nn, sizeof(node));
    s->group = calloc(s->nn, sizeof(int));
    s->seeds = calloc(s->nn, sizeof(char *));
    if (!s->vt || !s->n || !s->group || !s->seeds)
        goto fail;
    for (size_t i = 0; i < s->nn; i++) {
        node *n = &s->n[i];
        uint8_t kseed[32], in[16];
        memcpy(in, sb, 8);
        for (int k = 0; k < 8; k++)
            in[8 + k] = (uint8_t)(i >> (8 * k));
        crypto_generichash(kseed, 32, in, 16, NULL, 0);
        crypto_sign_seed_keypair(n->pk, n->sk, kseed);
        gsp_id_from_pk(n->pk, n->id, NULL);
        snprintf(n->addr, sizeof(n->addr), "s%zu", i);
        s->seeds[i] = n->addr;
        n->ev.s = s;
        n->ev.idx = i;
        if (gsp_keyring_alloc(&n->kr) ||
            gsp_keyring_install(n->kr, 1, s->cluster_key))
            goto fail;
    }
    for (size_t i = 0; i < s->nn; i++)
        if (node_start(s, i, 1))
            goto fail;
    *out = s;
    return 0;
fail:
    sim_free(s);
    return GSP_ENOMEM;
}

void sim_free(sim *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->n && i < s->nn; i++) {
        gsp_free(s->n[i].g);
        gsp_keyring_free(s->n[i].kr);
    }
    for (size_t i = 0; i < s->nh; i++)
        free(s->heap[i].buf);
    free(s->heap);
    free(s->n);
    free(s->group);
    free(s->seeds);
    free(s->vt);
    free(s);
}

uint64_t sim_now(const sim *s) { return s->now; }
size_t sim_size(const sim *s) { return s->nn; }
gsp *sim_node(sim *s, size_t i) { return i < s->nn ? s->n[i].g : NULL; }
gsp_keyring *sim_keyring(sim *s, size_t i) { return s->n[i].kr; }
const char *sim_addr(const sim *s, size_t i) { return s->n[i].addr; }
bool sim_up(const sim *s, size_t i) { return s->n[i].g != NULL; }
const uint8_t *sim_id(const sim *s, size_t i) { return s->n[i].id; }

void sim_set_tap(sim *s, sim_tap_fn fn, void *arg)
{
    s->tap = fn;
    s->tap_arg = arg;
}

void sim_set_loss(sim *s, double loss) { s->cfg.loss = loss; }

void sim_set_delay(sim *s, uint32_t min_ms, uint32_t max_ms)
{
    s->cfg.delay_min_ms = min_ms ? min_ms : 1;
    s->cfg.delay_max_ms = max_ms < s->cfg.delay_min_ms ? s->cfg.delay_min_ms
                                                       : max_ms;
}

void sim_get_stats(const sim *s, sim_stats *st) { *st = s->st; }

/* ---- heap ---- */

static bool before(const msg *a, const msg *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static int heap_push(sim *s, msg m)
{
    if (s->nh == s->ch) {
        size_t nc = s->ch ? s->ch * 2 : 1024;
        msg *p = realloc(s->heap, nc * sizeof(*p));
        if (!p)
            return -1;
        s->heap = p;
        s->ch = nc;
    }
    size_t i = s->nh++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&m, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = m;
    return 0;
}

static msg heap_pop(sim *s)
{
    msg top = s->heap[0];
    msg last = s->heap[--s->nh];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const msg *best = &last;
        if (l < s->nh && before(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < s->nh && before(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->nh)
        s->heap[i] = last;
    return top;
}

static long parse_addr(const sim *s, const char *a)
{
    if (a[0] != 's')
        return -1;
    char *end;
    long v = strtol(a + 1, &end, 10);
    if (*end || v < 0 || (size_t)v >= s->nn)
        return -1;
    return v;
}

static void drain(sim *s, size_t i, uint64_t t)
{
    gsp *g = s->n[i].g;
    gsp_frame f;
    while (g && gsp_out(g, &f)) {
        s->st.sent++;
        long to = parse_addr(s, f.addr);
        if (to < 0) {
            gsp_frame_release(&f);
            continue;
        }
        if (s->tap && !s->tap(s->tap_arg, i, (size_t)to, f.buf, f.len)) {
            gsp_frame_release(&f);
            continue;
        }
        if (s->group[i] != s->group[to]) {
            s->st.cut++;
            gsp_frame_release(&f);
            continue;
        }
        if (s->cfg.loss > 0 && rnd01(s) < s->cfg.loss) {
            s->st.lost++;
            gsp_frame_release(&f);
            continue;
        }
        uint32_t span = s->cfg.delay_max_ms - s->cfg.delay_min_ms;
        uint64_t d = s->cfg.delay_min_ms + (span ? rnd(s) % (span + 1) : 0);
        msg m = {t + d, s->seq++, i, (size_t)to, f.buf, f.len};
        if (heap_push(s, m))
            gsp_frame_release(&f);
    }
}

void sim_drain(sim *s, size_t i)
{
    drain(s, i, s->now);
}

int sim_inject(sim *s, size_t i, const uint8_t *buf, size_t len)
{
    if (!s->n[i].g)
        return GSP_EINVAL;
    int rc = gsp_recv(s->n[i].g, s->now, buf, len);
    drain(s, i, s->now);
    return rc;
}

static void step(sim *s)
{
    uint64_t next = s->now + s->cfg.step_ms;
    while (s->nh && s->heap[0].at <= next) {
        msg m = heap_pop(s);
        node *n = &s->n[m.to];
        if (n->g && s->group[m.from] == s->group[m.to]) {
            s->st.delivered++;
            gsp_recv(n->g, m.at, m.buf, m.len);
            drain(s, m.to, m.at);
        } else {
            s->st.to_down++;
        }
        free(m.buf);
    }
    s->now = next;
    for (size_t i = 0; i < s->nn; i++) {
        gsp *g = s->n[i].g;
        if (g && gsp_next_deadline(g) <= s->now) {
            gsp_tick(g, s->now);
            drain(s, i, s->now);
        }
    }
}

void sim_run_until(sim *s, uint64_t t)
{
    while (s->now < t)
        step(s);
}

bool sim_run_while_not(sim *s, bool (*pred)(sim *, void *), void *arg,
                       uint64_t until)
{
    while (!pred(s, arg)) {
        if (s->now >= until)
            return false;
        step(s);
    }
    return true;
}

void sim_crash(sim *s, size_t i)
{
    gsp_free(s->n[i].g);
    s->n[i].g = NULL;
}

int sim_restart(sim *s, size_t i, uint64_t incarnation)
{
    if (s->n[i].g)
        sim_crash(s, i);
    s->n[i].restarts++;
    return node_start(s, i, incarnation);
}

int sim_leave(sim *s, size_t i)
{
    if (!s->n[i].g)
        return GSP_EINVAL;
    int rc = gsp_leave(s->n[i].g, s->now);
    drain(s, i, s->now);
    sim_crash(s, i);
    return rc;
}

void sim_partition(sim *s, const int *group)
{
    for (size_t i = 0; i < s->nn; i++)
        s->group[i] = group ? group[i] : 0;
}

bool sim_converged(sim *s)
{
    uint8_t d0[GSP_DIGEST_LEN], d[GSP_DIGEST_LEN];
    bool first = true;
    for (size_t i = 0; i < s->nn; i++) {
        if (!s->n[i].g)
            continue;
        if (first) {
            gsp_digest(s->n[i].g, d0);
            first = false;
            continue;
        }
        gsp_digest(s->n[i].g, d);
        if (memcmp(d, d0, sizeof(d)) != 0)
            return false;
    }
    return true;
}

size_t sim_count_full_views(sim *s, size_t n)
{
    size_t k = 0;
    unsigned alive = 1u << GSP_ALIVE;
    for (size_t i = 0; i < s->nn; i++)
        if (s->n[i].g && gsp_member_count(s->n[i].g, alive) == n)
            k++;
    return k;
}
