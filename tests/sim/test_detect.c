/* SPDX-License-Identifier: MIT */
/*
 * test_detect.c - failure detection on the simulator: a crash is detected
 * by every node within the configured time with zero false positives at
 * 10% loss (N = 8 and 32), and a wrongly suspected live node refutes.
 */
#include "simtest.h"

#include <math.h>
#include <string.h>

typedef struct {
    size_t n;
} want_n;

static bool all_joined(sim *s, void *arg)
{
    want_n *w = arg;
    return sim_count_full_views(s, w->n) == w->n && sim_converged(s);
}

typedef struct {
    size_t victim;
} vic;

static bool all_see_dead(sim *s, void *arg)
{
    vic *v = arg;
    for (size_t i = 0; i < sim_size(s); i++) {
        gsp *g = sim_node(s, i);
        if (!g)
            continue;
        size_t c = 0;
        gsp_member_info mi;
        while (gsp_member_next(g, &c, &mi))
            if (!memcmp(mi.id, sim_id(s, v->victim), GSP_ID_LEN) &&
                mi.state != GSP_DEAD)
                return false;
    }
    return true;
}

/* Dead events about nodes that are up are false positives. */
static uint64_t false_deads(st_mirror *m, sim *s, size_t skip)
{
    uint64_t k = 0;
    for (size_t i = 0; i < sim_size(s); i++)
        if (i != skip)
            k += st_mirror_count_about(m, s, i, GSP_EV_MEMBER_DEAD);
    return k;
}

static void detect(size_t N, uint64_t seedoff)
{
    st_mirror *m = st_mirror_alloc(N);
    sim_config c;
    sim_config_init(&c);
    c.nodes = N;
    c.seed = st_seed + seedoff;
    c.delay_min_ms = 1;
    c.delay_max_ms = 3;
    c.step_ms = 2;
    c.nseeds = 2;
    c.on_event = st_mirror_event;
    c.event_arg = m;
    sim *s;
    ST_CHECK(sim_alloc(&s, &c) == 0);
    want_n w = {N};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, 20000));
    sim_set_loss(s, 0.10);
    /* A minute of 10% loss without a single false death. */
    sim_run_until(s, sim_now(s) + 60000);
    uint64_t sus = st_mirror_count(m, GSP_EV_MEMBER_SUSPECT);
    ST_CHECK(false_deads(m, s, SIZE_MAX) == 0);
    size_t victim = N / 2;
    sim_crash(s, victim);
    uint64_t t0 = sim_now(s);
    vic v = {victim};
    /* Configured detection time: one probe period to be probed, one to
     * fail, then the longest suspicion timeout, plus dissemination. */
    double lg = log10((double)N) < 1 ? 1 : log10((double)N);
    uint64_t smax = (uint64_t)(2 * lg * 400 * 2);
    uint64_t bound = 2 * 400 + smax + 500;
    bool ok = sim_run_while_not(s, all_see_dead, &v, t0 + 30000);
    uint64_t took = sim_now(s) - t0;
    fprintf(stderr,
            "\n  N=%zu loss=10%%: crash seen dead by all in %.2f s (bound "
            "%.2f s); %llu suspicions, 0 false deaths expected\n",
            N, (double)took / 1000.0, (double)bound / 1000.0,
            (unsigned long long)sus);
    ST_CHECK(ok);
    ST_CHECK(took <= bound);
    sim_run_until(s, sim_now(s) + 10000);
    ST_CHECK(false_deads(m, s, victim) == 0);
    ST_CHECK(st_mirror_count_about(m, s, victim, GSP_EV_MEMBER_DEAD) ==
             N - 1);
    for (size_t i = 0; i < N; i++)
        if (i != victim)
            ST_CHECK(st_mirror_check(m, s, i));
    sim_free(s);
    st_mirror_free(m);
}

static void test_detect_8(void)
{
    detect(8, 0);
}

static void test_detect_32(void)
{
    detect(32, 1);
}

typedef struct {
    size_t muted;
    bool on;
} mute;

static bool tap_mute(void *arg, size_t from, size_t to, const uint8_t *buf,
                     size_t len)
{
    mute *m = arg;
    (void)to;
    (void)buf;
    (void)len;
    return !(m->on && from == m->muted);
}

static void test_refute(void)
{
    const size_t N = 12;
    st_mirror *m = st_mirror_alloc(N);
    sim_config c;
    sim_config_init(&c);
    c.nodes = N;
    c.seed = st_seed + 5;
    c.delay_min_ms = 1;
    c.delay_max_ms = 2;
    c.step_ms = 2;
    c.on_event = st_mirror_event;
    c.event_arg = m;
    sim *s;
    ST_CHECK(sim_alloc(&s, &c) == 0);
    want_n w = {N};
    ST_CHECK(sim_run_while_not(s, all_joined, &w, 20000));
    /* Node 3 goes mute until someone suspects it, then speaks again: it
     * must refute before any suspicion times out. */
    mute mu = {3, true};
    sim_set_tap(s, tap_mute, &mu);
    uint64_t until = sim_now(s) + 20000;
    while (st_mirror_count_about(m, s, 3, GSP_EV_MEMBER_SUSPECT) == 0 &&
           sim_now(s) < until)
        sim_run_until(s, sim_now(s) + 10);
    mu.on = false;
    ST_CHECK(sim_run_while_not(s, all_joined, &w, sim_now(s) + 10000));
    ST_CHECK(st_mirror_count_about(m, s, 3, GSP_EV_MEMBER_SUSPECT) > 0);
    ST_CHECK(st_mirror_count_about(m, s, 3, GSP_EV_MEMBER_DEAD) == 0);
    gsp_stats st;
    gsp_get_stats(sim_node(s, 3), &st);
    ST_CHECK(st.refutations > 0);
    sim_free(s);
    st_mirror_free(m);
}

static int add(CU_pSuite s)
{
    return !CU_add_test(s, "detect_8_loss10", test_detect_8) ||
           !CU_add_test(s, "detect_32_loss10", test_detect_32) ||
           !CU_add_test(s, "wrongly_suspected_refutes", test_refute);
}

int main(void)
{
    st_seed_init(1);
    return st_run_suite("gossip_detect", add);
}
