/* SPDX-License-Identifier: MIT */
/*
 * test_security.c - authentication on the simulator: replayed, tampered,
 * wrong-key, unknown-key, truncated, oversized and garbage frames are
 * rejected and counted; a relay that alters or forges a record is caught
 * by the owner's signature; an old version replayed inside a fresh frame
 * is ignored; key rotation across a cluster loses no frame and cuts off no
 * node.
 */
#include "simtest.h"

#include <stdlib.h>
#include <string.h>

#define PT_SEQ_OFF (1 + GSP_ID_LEN + 8)
#define PT_HDR_UNIT (1 + GSP_ID_LEN + 8 + 8 + GSP_DIGEST_LEN + 5)

typedef struct {
    size_t from, to;
    const char *needle; /* capture only frames whose plaintext has this */
    gsp_keyring *kr;
    uint8_t buf[65536];
    size_t len;
    int block_to; /* drop everything to this node (-1: none) */
} cap;

static bool find_in(const uint8_t *p, size_t n, const char *needle,
                    size_t *off)
{
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (!memcmp(p + i, needle, l)) {
            if (off)
                *off = i;
            return true;
        }
    return false;
}

static bool tap(void *arg, size_t from, size_t to, const uint8_t *buf,
                size_t len)
{
    cap *c = arg;
    if (from == c->from && to == c->to && len <= sizeof(c->buf)) {
        bool take = true;
        if (c->needle) {
            uint8_t pt[65536];
            size_t pn;
            take = gsp_open(c->kr, buf, len, pt, sizeof(pt), &pn) == 0 &&
                   find_in(pt, pn, c->needle, NULL);
        }
        if (take) {
            memcpy(c->buf, buf, len);
            c->len = len;
        }
    }
    return c->block_to < 0 || (size_t)c->block_to != to;
}

typedef struct {
    size_t n;
} want_n;

static bool all_joined(sim *s, void *arg)
{
    want_n *w = arg;
    return sim_count_full_views(s, w->n) == w->n && sim_converged(s);
}

static sim *make(size_t n, cap *c, uint64_t off)
{
    sim_config sc;
    sim_config_init(&sc);
    sc.nodes = n;
    sc.seed = st_seed + off;
    sc.delay_min_ms = 1;
    sc.delay_max_ms = 2;
    sc.step_ms = 2;
    sim *s = NULL;
    if (sim_alloc(&s, &sc))
        return NULL;
    if (c) {
        c->kr = sim_keyring(s, 0);
        sim_set_tap(s, tap, c);
    }
    want_n w = {n};
    sim_run_while_not(s, all_joined, &w, 20000);
    return s;
}

/* Open a sealed frame with the cluster key, let fn edit the plaintext,
 * give it a fresh sequence number and seal it again. */
static size_t reseal(sim *s, const uint8_t *in, size_t len, uint8_t *out,
                     size_t cap_, uint64_t seq,
                     void (*fn)(uint8_t *, size_t *, void *), void *arg)
{
    uint8_t pt[65536];
    size_t pn, on;
    if (gsp_open(sim_keyring(s, 0), in, len, pt, sizeof(pt), &pn))
        return 0;
    if (fn)
        fn(pt, &pn, arg);
    for (int i = 0; i < 8; i++)
        pt[PT_SEQ_OFF + i] = (uint8_t)(seq >> (56 - 8 * i));
    if (gsp_seal(sim_keyring(s, 0), pt, pn, out, cap_, &on))
        return 0;
    return on;
}

static uint64_t drops(sim *s, size_t i, gsp_drop d)
{
    gsp_stats st;
    gsp_get_stats(sim_node(s, i), &st);
    return st.drops[d];
}

static void test_bad_frames(void)
{
    static cap c;
    memset(&c, 0, sizeof(c));
    c.from = 0;
    c.to = 1;
    c.block_to = -1;
    sim *s = make(3, &c, 0);
    ST_CHECK(s != NULL && c.len > 0);
    if (!s || !c.len)
        return;
    static uint8_t f[65536], g2[70000];
    size_t n = c.len;
    memcpy(f, c.buf, n);

    /* Replay of a frame already delivered. */
    ST_CHECK(sim_inject(s, 1, f, n) == GSP_EREPLAY);
    ST_CHECK(drops(s, 1, GSP_DROP_REPLAY) == 1);

    /* Tampered ciphertext. */
    f[n / 2] ^= 0x40;
    ST_CHECK(sim_inject(s, 1, f, n) == GSP_EAUTH);
    f[n / 2] ^= 0x40;
    ST_CHECK(drops(s, 1, GSP_DROP_AUTH) == 1);

    /* Wrong key under the right id, and an unknown key id. */
    gsp_keyring *bad;
    uint8_t k[32];
    memset(k, 0x55, sizeof(k));
    gsp_keyring_alloc(&bad);
    gsp_keyring_install(bad, 1, k);
    size_t bn;
    gsp_seal(bad, (const uint8_t *)"whatever", 8, g2, sizeof(g2), &bn);
    ST_CHECK(sim_inject(s, 1, g2, bn) == GSP_EAUTH);
    gsp_keyring_install(bad, 9, k);
    gsp_keyring_use(bad, 9);
    gsp_seal(bad, (const uint8_t *)"whatever", 8, g2, sizeof(g2), &bn);
    ST_CHECK(sim_inject(s, 1, g2, bn) == GSP_EUNKNOWNKEY);
    ST_CHECK(drops(s, 1, GSP_DROP_UNKNOWN_KEY) == 1);
    gsp_keyring_free(bad);

    /* Truncated: below the seal overhead, and by one byte. */
    ST_CHECK(sim_inject(s, 1, f, 20) == GSP_EMALFORMED);
    ST_CHECK(sim_inject(s, 1, f, n - 1) == GSP_EAUTH);

    /* Truncated plaintext inside a valid seal. */
    uint8_t pt[65536];
    size_t pn;
    gsp_open(sim_keyring(s, 0), f, n, pt, sizeof(pt), &pn);
    gsp_seal(sim_keyring(s, 0), pt, pn - 3, g2, sizeof(g2), &bn);
    ST_CHECK(sim_inject(s, 1, g2, bn) == GSP_EMALFORMED);

    /* Garbage: sealed random plaintext, unsealed random bytes, text. */
    for (size_t i = 0; i < 300; i++)
        pt[i] = (uint8_t)(i * 131 + 7);
    pt[0] = 1;
    gsp_seal(sim_keyring(s, 0), pt, 300, g2, sizeof(g2), &bn);
    ST_CHECK(sim_inject(s, 1, g2, bn) == GSP_EMALFORMED);
    pt[0] = 77;
    gsp_seal(sim_keyring(s, 0), pt, 300, g2, sizeof(g2), &bn);
    ST_CHECK(sim_inject(s, 1, g2, bn) == GSP_EVERSION);
    g2[0] = 1;
    g2[1] = 1;
    for (size_t i = 2; i < 200; i++)
        g2[i] = (uint8_t)(i * 29);
    ST_CHECK(sim_inject(s, 1, g2, 200) == GSP_EAUTH);
    ST_CHECK(sim_inject(s, 1, (const uint8_t *)"garbage", 7) ==
             GSP_EMALFORMED);

    /* Too big for the configured maximum. */
    memset(g2, 0, sizeof(g2));
    ST_CHECK(sim_inject(s, 1, g2, 65537) == GSP_ETOOBIG);
    ST_CHECK(drops(s, 1, GSP_DROP_TOOBIG) == 1);

    gsp_stats st;
    gsp_get_stats(sim_node(s, 1), &st);
    ST_CHECK(st.drops[GSP_DROP_MALFORMED] == 4);
    ST_CHECK(st.drops[GSP_DROP_AUTH] == 4);
    ST_CHECK(st.drops[GSP_DROP_VERSION] == 1);
    /* Nothing of that disturbed the cluster. */
    want_n w = {3};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, sim_now(s) + 5000));
    sim_free(s);
}

typedef struct {
    const char *from, *to;
} subst;

static void edit_subst(uint8_t *pt, size_t *pn, void *arg)
{
    subst *sb = arg;
    size_t off;
    if (find_in(pt, *pn, sb->from, &off))
        memcpy(pt + off, sb->to, strlen(sb->to));
}

static void edit_hdr_version(uint8_t *pt, size_t *pn, void *arg)
{
    (void)pn;
    (void)arg;
    /* Sender header unit: magic(4) id(16) pk(32) inc(8) ver(8). */
    pt[PT_HDR_UNIT + 4 + 16 + 32 + 8 + 7] += 5;
}

static void edit_hdr_pk(uint8_t *pt, size_t *pn, void *arg)
{
    edit_hdr_version(pt, pn, arg);
    pt[PT_HDR_UNIT + 4 + 16 + 3] ^= 1;
}

static void test_relay_alters_record(void)
{
    static cap c;
    memset(&c, 0, sizeof(c));
    c.from = 0;
    c.to = 1;
    c.block_to = 2; /* node 2 must not learn the record any other way */
    c.needle = "ORIGINAL-VALUE-XYZ";
    sim *s = make(3, NULL, 3);
    ST_CHECK(s != NULL);
    if (!s)
        return;
    c.kr = sim_keyring(s, 0);
    sim_set_tap(s, tap, &c);
    gsp_put(sim_node(s, 0), sim_now(s), "fk", 2, "ORIGINAL-VALUE-XYZ", 18);
    sim_drain(s, 0);
    sim_run_until(s, sim_now(s) + 100);
    ST_CHECK(c.len > 0);
    static uint8_t g2[70000];
    /* A relay changes the value and re-seals with the cluster key. */
    subst sb = {"ORIGINAL-VALUE-XYZ", "FORGED!!-VALUE-XYZ"};
    size_t n = reseal(s, c.buf, c.len, g2, sizeof(g2), 1u << 30, edit_subst,
                      &sb);
    ST_CHECK(n > 0);
    ST_CHECK(sim_inject(s, 2, g2, n) == GSP_ESIG);
    const uint8_t *v;
    size_t vl;
    ST_CHECK(gsp_entry_get(sim_node(s, 2), sim_id(s, 0), "fk", 2, &v, &vl) ==
             GSP_ENOTFOUND);
    /* A relay claims a newer header for node 0 (new version). */
    n = reseal(s, c.buf, c.len, g2, sizeof(g2), (1u << 30) + 1,
               edit_hdr_version, NULL);
    ST_CHECK(sim_inject(s, 2, g2, n) == GSP_ESIG);
    /* ... or swaps in another public key for node 0's id. */
    n = reseal(s, c.buf, c.len, g2, sizeof(g2), (1u << 30) + 2, edit_hdr_pk,
               NULL);
    ST_CHECK(sim_inject(s, 2, g2, n) == GSP_ESIG);
    ST_CHECK(drops(s, 2, GSP_DROP_SIG) == 3);
    /* Unblocked, the genuine record arrives. */
    c.block_to = -1;
    want_n w = {3};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, sim_now(s) + 10000));
    ST_CHECK(gsp_entry_get(sim_node(s, 2), sim_id(s, 0), "fk", 2, &v, &vl) ==
                 0 &&
             vl == 18 && !memcmp(v, "ORIGINAL-VALUE-XYZ", 18));
    sim_free(s);
}

static void test_old_version_ignored(void)
{
    static cap c;
    memset(&c, 0, sizeof(c));
    c.from = 0;
    c.to = 1;
    c.block_to = -1;
    c.needle = "VERSION-ONE";
    sim *s = make(3, NULL, 4);
    ST_CHECK(s != NULL);
    if (!s)
        return;
    c.kr = sim_keyring(s, 0);
    sim_set_tap(s, tap, &c);
    gsp_put(sim_node(s, 0), sim_now(s), "ok", 2, "VERSION-ONE", 11);
    sim_drain(s, 0);
    sim_run_until(s, sim_now(s) + 100);
    ST_CHECK(c.len > 0);
    static uint8_t old[65536];
    size_t on = c.len;
    memcpy(old, c.buf, on);
    gsp_put(sim_node(s, 0), sim_now(s), "ok", 2, "VERSION-TWO", 11);
    sim_drain(s, 0);
    want_n w = {3};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, sim_now(s) + 5000));
    gsp_stats a, b;
    gsp_get_stats(sim_node(s, 1), &a);
    static uint8_t g2[70000];
    size_t n = reseal(s, old, on, g2, sizeof(g2), 1u << 30, NULL, NULL);
    ST_CHECK(sim_inject(s, 1, g2, n) == 0); /* fresh frame, old record */
    gsp_get_stats(sim_node(s, 1), &b);
    ST_CHECK(b.units_stale > a.units_stale);
    const uint8_t *v;
    size_t vl;
    ST_CHECK(gsp_entry_get(sim_node(s, 1), sim_id(s, 0), "ok", 2, &v, &vl) ==
                 0 &&
             vl == 11 && !memcmp(v, "VERSION-TWO", 11));
    sim_free(s);
}

static bool no_dead(sim *s, size_t n)
{
    return sim_count_full_views(s, n) == n;
}

static void test_key_rotation(void)
{
    const size_t N = 16;
    sim *s = make(N, NULL, 9);
    ST_CHECK(s != NULL);
    if (!s)
        return;
    uint8_t k2[32];
    memset(k2, 0x22, sizeof(k2));
    /* Each node performs each step at its own random moment within a 1 s
     * window; windows are 2 s apart, so steps never overlap. */
    uint64_t t0 = sim_now(s), when[3][16];
    uint64_t x = st_seed * 77 + 5;
    for (int st = 0; st < 3; st++)
        for (size_t i = 0; i < N; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            when[st][i] = t0 + 500 + (uint64_t)st * 2000 + (x >> 33) % 1000;
        }
    bool done[3][16] = {{0}};
    bool alive_all = true;
    int puts = 0, iter = 0;
    while (sim_now(s) < t0 + 8000) {
        iter++;
        sim_run_until(s, sim_now(s) + 20);
        for (int st = 0; st < 3; st++)
            for (size_t i = 0; i < N; i++) {
                if (done[st][i] || sim_now(s) < when[st][i])
                    continue;
                gsp_keyring *kr = sim_keyring(s, i);
                int rc = st == 0   ? gsp_keyring_install(kr, 2, k2)
                         : st == 1 ? gsp_keyring_use(kr, 2)
                                   : gsp_keyring_remove(kr, 1);
                ST_CHECK(rc == 0);
                done[st][i] = true;
            }
        if (iter % 25 == 0 && puts < 16) {
            char key[32];
            snprintf(key, sizeof(key), "r%d", puts);
            gsp_put(sim_node(s, (size_t)puts % N), sim_now(s), key,
                    strlen(key), "x", 1);
            sim_drain(s, (size_t)puts % N);
            puts++;
        }
        alive_all &= no_dead(s, N);
    }
    want_n w = {N};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, sim_now(s) + 5000));
    uint64_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        bad += drops(s, i, GSP_DROP_UNKNOWN_KEY) + drops(s, i, GSP_DROP_AUTH);
        ST_CHECK(gsp_keyring_primary(sim_keyring(s, i)) == 2);
    }
    fprintf(stderr, "\n  rotation: %d puts, %llu frames lost to keys\n",
            puts, (unsigned long long)bad);
    ST_CHECK(bad == 0);
    ST_CHECK(puts == 16);
    ST_CHECK(alive_all);
    const uint8_t *v;
    size_t vl;
    for (size_t i = 0; i < N; i++)
        for (int p = 0; p < puts; p++) {
            char key[32];
            snprintf(key, sizeof(key), "r%d", p);
            size_t owner = (size_t)p % N;
            if (owner != i)
                ST_CHECK(gsp_entry_get(sim_node(s, i), sim_id(s, owner), key,
                                       strlen(key), &v, &vl) == 0);
        }
    sim_free(s);
}

static int add(CU_pSuite s)
{
    return !CU_add_test(s, "bad_frames", test_bad_frames) ||
           !CU_add_test(s, "relay_alters_record", test_relay_alters_record) ||
           !CU_add_test(s, "old_version_ignored", test_old_version_ignored) ||
           !CU_add_test(s, "key_rotation", test_key_rotation);
}

int main(void)
{
    st_seed_init(1);
    return st_run_suite("gossip_security", add);
}
