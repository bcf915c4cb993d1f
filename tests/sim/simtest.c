/* SPDX-License-Identifier: MIT */
/*
 * simtest.c - shared helpers for the gossip simulator suites (see
 * simtest.h).
 */
#include "simtest.h"

#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

uint64_t st_seed;

void st_seed_init(uint64_t dflt)
{
    const char *e = getenv("GSP_TEST_SEED");
    st_seed = e ? strtoull(e, NULL, 0) : dflt;
}

typedef struct {
    uint8_t owner[GSP_ID_LEN];
    uint8_t key[GSP_KEY_MAX];
    size_t klen;
    uint8_t *val;
    size_t vlen;
} ment;

typedef struct {
    ment *v;
    size_t n, cap;
    int broken; /* an event broke the invariant (e.g. DEAD with entries) */
} mnode;

typedef struct {
    uint8_t id[GSP_ID_LEN];
    size_t node;
    gsp_event_type t;
} mev;

struct st_mirror {
    mnode *nodes;
    size_t nn;
    mev *evs;
    size_t nev, cev;
};

st_mirror *st_mirror_alloc(size_t nodes)
{
    st_mirror *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nodes = calloc(nodes, sizeof(mnode));
    m->nn = nodes;
    return m;
}

void st_mirror_reset(st_mirror *m, size_t node)
{
    mnode *n = &m->nodes[node];
    for (size_t i = 0; i < n->n; i++)
        free(n->v[i].val);
    n->n = 0;
    n->broken = 0;
}

void st_mirror_free(st_mirror *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nn; i++) {
        st_mirror_reset(m, i);
        free(m->nodes[i].v);
    }
    free(m->nodes);
    free(m->evs);
    free(m);
}

static ment *find(mnode *n, const uint8_t *owner, const uint8_t *key,
                  size_t klen)
{
    for (size_t i = 0; i < n->n; i++)
        if (n->v[i].klen == klen && !memcmp(n->v[i].owner, owner, GSP_ID_LEN) &&
            !memcmp(n->v[i].key, key, klen))
            return &n->v[i];
    return NULL;
}

void st_mirror_event(void *arg, size_t node, const gsp_event *ev)
{
    st_mirror *m = arg;
    mnode *n = &m->nodes[node];
    if (m->nev == m->cev) {
        size_t nc = m->cev ? m->cev * 2 : 1024;
        mev *p = realloc(m->evs, nc * sizeof(*p));
        if (p) {
            m->evs = p;
            m->cev = nc;
        }
    }
    if (m->nev < m->cev) {
        memcpy(m->evs[m->nev].id, ev->id, GSP_ID_LEN);
        m->evs[m->nev].node = node;
        m->evs[m->nev++].t = ev->type;
    }
    if (ev->type == GSP_EV_ENTRY_PUT) {
        ment *e = find(n, ev->id, ev->key, ev->klen);
        if (!e) {
            if (n->n == n->cap) {
                size_t nc = n->cap ? n->cap * 2 : 64;
                ment *p = realloc(n->v, nc * sizeof(*p));
                if (!p) {
                    n->broken = 1;
                    return;
                }
                n->v = p;
                n->cap = nc;
            }
            e = &n->v[n->n++];
            memcpy(e->owner, ev->id, GSP_ID_LEN);
            memcpy(e->key, ev->key, ev->klen);
            e->klen = ev->klen;
            e->val = NULL;
        }
        free(e->val);
        e->val = malloc(ev->vlen ? ev->vlen : 1);
        memcpy(e->val, ev->val, ev->vlen);
        e->vlen = ev->vlen;
    } else if (ev->type == GSP_EV_ENTRY_DEL) {
        ment *e = find(n, ev->id, ev->key, ev->klen);
        if (!e) {
            n->broken = 1;
            return;
        }
        free(e->val);
        *e = n->v[--n->n];
    } else if (ev->type == GSP_EV_MEMBER_DEAD ||
               ev->type == GSP_EV_MEMBER_LEFT) {
        for (size_t i = 0; i < n->n; i++)
            if (!memcmp(n->v[i].owner, ev->id, GSP_ID_LEN))
                n->broken = 1;
    }
}

int st_mirror_check(st_mirror *m, sim *s, size_t node)
{
    mnode *n = &m->nodes[node];
    gsp *g = sim_node(s, node);
    if (!g || n->broken)
        return !n->broken;
    size_t cur = 0, total = 0;
    gsp_member_info mi;
    while (gsp_member_next(g, &cur, &mi)) {
        if (mi.self || !(mi.state == GSP_ALIVE || mi.state == GSP_SUSPECT))
            continue;
        size_t ec = 0;
        const uint8_t *k, *v;
        size_t kl, vl;
        while (gsp_entry_next(g, mi.id, &ec, &k, &kl, &v, &vl)) {
            ment *e = find(n, mi.id, k, kl);
            if (!e || e->vlen != vl || memcmp(e->val, v, vl) != 0)
                return 0;
            total++;
        }
    }
    return total == n->n;
}

uint64_t st_mirror_count(const st_mirror *m, gsp_event_type t)
{
    uint64_t k = 0;
    for (size_t i = 0; i < m->nev; i++)
        k += m->evs[i].t == t;
    return k;
}

uint64_t st_mirror_count_about(const st_mirror *m, sim *s, size_t about,
                               gsp_event_type t)
{
    uint64_t k = 0;
    const uint8_t *id = sim_id(s, about);
    for (size_t i = 0; i < m->nev; i++)
        k += m->evs[i].t == t && !memcmp(m->evs[i].id, id, GSP_ID_LEN);
    return k;
}

int st_run_suite(const char *name, int (*add)(CU_pSuite))
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s || add(s)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() +
                     CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}
