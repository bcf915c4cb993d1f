/* SPDX-License-Identifier: MIT */
/*
 * The node's timer thread (src/timer.c): entries run once, never early,
 * in deadline order; an entry due before the sleeping thread's deadline
 * wakes it; cancel stops an entry; coarse entries run too, whether the
 * thread was asleep for long (they wake it) or ticking (they do not need
 * to).  Lateness is only checked against generous bounds: the machine is
 * shared.
 */
#include "notifier/notifier.h"
#include "platform/platform.h"
#include "testutil.h"
#include "timer.h"

typedef struct {
    tu_counter ran;
    pthread_mutex_t mtx;
    uint64_t at;   /* nti_clock_ms() when it ran */
    int order;     /* the value of *seq when it ran */
    int *seq;
} probe;

static void
probe_init(probe *p, int *seq)
{
    tu_counter_init(&p->ran);
    pthread_mutex_init(&p->mtx, NULL);
    p->at = 0;
    p->order = -1;
    p->seq = seq;
}

static void
probe_fini(probe *p)
{
    tu_counter_fini(&p->ran);
    pthread_mutex_destroy(&p->mtx);
}

/* Runs on the timer thread (callbacks run one at a time). */
static void
probe_fire(void *arg)
{
    probe *p = arg;
    pthread_mutex_lock(&p->mtx);
    p->at = nti_clock_ms();
    p->order = p->seq != NULL ? (*p->seq)++ : 0;
    pthread_mutex_unlock(&p->mtx);
    tu_counter_add(&p->ran, 1);
}

static uint64_t
ran_at(probe *p)
{
    pthread_mutex_lock(&p->mtx);
    uint64_t at = p->at;
    pthread_mutex_unlock(&p->mtx);
    return at;
}

static int
ran_order(probe *p)
{
    pthread_mutex_lock(&p->mtx);
    int o = p->order;
    pthread_mutex_unlock(&p->mtx);
    return o;
}

static void
test_order_and_never_early(void)
{
    nti_timer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(nti_timer_alloc(&t, "t-order"), NT_OK);
    int seq = 0;
    probe p[3];
    nti_timer_ent e[3];
    uint64_t now = nti_clock_ms();
    const uint64_t due[3] = { now + 60, now + 20, now + 40 };
    for (int i = 0; i < 3; i++) {
        probe_init(&p[i], &seq);
        nti_timer_ent_init(&e[i], probe_fire, &p[i]);
        CU_ASSERT_EQUAL(nti_timer_schedule(t, &e[i], due[i]), NT_OK);
    }
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tu_counter_wait(&p[i].ran, 1, 10000), 1);
        CU_ASSERT(ran_at(&p[i]) >= due[i]);
    }
    CU_ASSERT_EQUAL(ran_order(&p[1]), 0);
    CU_ASSERT_EQUAL(ran_order(&p[2]), 1);
    CU_ASSERT_EQUAL(ran_order(&p[0]), 2);
    nti_timer_free(t);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tu_counter_get(&p[i].ran), 1); /* once */
        probe_fini(&p[i]);
    }
}

/* The thread sleeps towards an entry 60 s away; one due in 20 ms must
 * wake it (it would otherwise run a minute late). */
static void
test_earlier_entry_wakes_sleeper(void)
{
    nti_timer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(nti_timer_alloc(&t, "t-wake"), NT_OK);
    probe far, soon, coarse;
    probe_init(&far, NULL);
    probe_init(&soon, NULL);
    probe_init(&coarse, NULL);
    nti_timer_ent ef, es, ec;
    nti_timer_ent_init(&ef, probe_fire, &far);
    nti_timer_ent_init(&es, probe_fire, &soon);
    nti_timer_ent_init(&ec, probe_fire, &coarse);
    CU_ASSERT_EQUAL(nti_timer_schedule(t, &ef, nti_clock_ms() + 60000),
                    NT_OK);
    /* Let the thread go to sleep towards the far entry.  Nothing to wait
     * on, and nothing depends on it: an awake thread passes trivially. */
    tu_pause_ms(20);
    uint64_t due = nti_clock_ms() + 20;
    CU_ASSERT_EQUAL(nti_timer_schedule(t, &es, due), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&soon.ran, 1, 10000), 1);
    CU_ASSERT(ran_at(&soon) >= due);
    /* The same for a coarse entry: asleep again (no coarse entry yet, so
     * not ticking), it must wake. */
    tu_pause_ms(20);
    due = nti_clock_ms() + 20;
    CU_ASSERT_EQUAL(nti_timer_schedule_coarse(t, &ec, due), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&coarse.ran, 1, 10000), 1);
    CU_ASSERT(ran_at(&coarse) >= due);
    CU_ASSERT_EQUAL(tu_counter_get(&far.ran), 0);
    CU_ASSERT_TRUE(nti_timer_cancel(t, &ef));
    CU_ASSERT_FALSE(nti_timer_cancel(t, &ef)); /* no longer scheduled */
    nti_timer_free(t);
    CU_ASSERT_EQUAL(tu_counter_get(&far.ran), 0);
    probe_fini(&far);
    probe_fini(&soon);
    probe_fini(&coarse);
}

/* Many coarse entries in a row, as the callee's hold timers come: each
 * runs (or is cancelled) and none runs early. */
static void
test_coarse_stream(void)
{
    nti_timer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(nti_timer_alloc(&t, "t-coarse"), NT_OK);
    enum { N = 200 };
    static probe p[N];
    static nti_timer_ent e[N];
    static uint64_t due[N];
    long want = 0;
    for (int i = 0; i < N; i++) {
        probe_init(&p[i], NULL);
        nti_timer_ent_init(&e[i], probe_fire, &p[i]);
        due[i] = nti_clock_ms() + 2;
        CU_ASSERT_EQUAL(nti_timer_schedule_coarse(t, &e[i], due[i]), NT_OK);
        if (i % 2 == 1) {
            /* Half are cancelled at once, as when the handlers finish in
             * time; a cancel can lose only to an entry already run. */
            if (!nti_timer_cancel(t, &e[i])) {
                want++;
            }
        } else {
            want++;
        }
        if (i % 20 == 0) {
            tu_counter_wait(&p[i].ran, 1, 3); /* spread them out a bit */
        }
    }
    long got = 0;
    for (int i = 0; i < N; i++) {
        long r = tu_counter_wait(&p[i].ran, i % 2 == 0 ? 1 : 0, 10000);
        got += r;
        if (r > 0) {
            CU_ASSERT(ran_at(&p[i]) >= due[i]);
        }
    }
    CU_ASSERT_EQUAL(got, want);
    nti_timer_free(t);
    for (int i = 0; i < N; i++) {
        CU_ASSERT(tu_counter_get(&p[i].ran) <= 1);
        probe_fini(&p[i]);
    }
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_order_and_never_early),
        NT_TEST(test_earlier_entry_wakes_sleeper),
        NT_TEST(test_coarse_stream),
        NT_TESTS_END,
    };
    return nt_run_suite("timer", NULL, NULL, tests);
}
