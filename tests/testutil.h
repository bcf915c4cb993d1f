/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the CUnit suites: a runner, and counters and gates
 * that tests wait on with a deadline (never sleep to wait for something).
 */
#ifndef NT_TESTUTIL_H
#define NT_TESTUTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- runner ---------------------------------------------------------- */

typedef struct {
    const char *name;
    CU_TestFunc fn;
} nt_test;

#define NT_TEST(f) { #f, f }
#define NT_TESTS_END { NULL, NULL }

static inline int
nt_run_suite(const char *suite, CU_InitializeFunc init,
             CU_CleanupFunc fini, const nt_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 2;
    }
    CU_pSuite s = CU_add_suite(suite, init, fini);
    /* NT_TEST_ONLY=name[,name...] runs only those tests (debugging, e.g.
     * one test under valgrind or gdb). */
    const char *only = getenv("NT_TEST_ONLY");
    for (const nt_test *t = tests; t->name != NULL; t++) {
        if (only != NULL && *only != '\0') {
            size_t len = strlen(t->name);
            const char *at = only;
            bool hit = false;
            while ((at = strstr(at, t->name)) != NULL) {
                if ((at == only || at[-1] == ',') &&
                    (at[len] == '\0' || at[len] == ',')) {
                    hit = true;
                    break;
                }
                at += len;
            }
            if (!hit) {
                continue;
            }
        }
        CU_add_test(s, t->name, t->fn);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() +
                      CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return (failed == 0 && run > 0) ? 0 : 1;
}

/* ---- time ------------------------------------------------------------ */

static inline uint64_t
tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void
tu_abstime(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static inline void
tu_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* ---- a counter you can wait on --------------------------------------- */

typedef struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    long value;
} tu_counter;

static inline void
tu_counter_init(tu_counter *c)
{
    pthread_mutex_init(&c->mtx, NULL);
    tu_cond_init(&c->cv);
    c->value = 0;
}

static inline void
tu_counter_fini(tu_counter *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mtx);
}

static inline void
tu_counter_add(tu_counter *c, long d)
{
    pthread_mutex_lock(&c->mtx);
    c->value += d;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mtx);
}

static inline long
tu_counter_get(tu_counter *c)
{
    pthread_mutex_lock(&c->mtx);
    long v = c->value;
    pthread_mutex_unlock(&c->mtx);
    return v;
}

/* Waits until value >= target or the deadline; returns the value. */
static inline long
tu_counter_wait(tu_counter *c, long target, int timeout_ms)
{
    struct timespec ts;
    tu_abstime(&ts, timeout_ms);
    pthread_mutex_lock(&c->mtx);
    while (c->value < target) {
        if (pthread_cond_timedwait(&c->cv, &c->mtx, &ts) == ETIMEDOUT) {
            break;
        }
    }
    long v = c->value;
    pthread_mutex_unlock(&c->mtx);
    return v;
}

/* Waits until value >= target, for as long as it keeps growing: gives up
 * only after idle_ms without any increase.  For deliveries whose pace
 * depends on the machine (valgrind), where a stall, not slowness, is the
 * failure.  Returns the value. */
static inline long
tu_counter_wait_progress(tu_counter *c, long target, int idle_ms)
{
    long last = -1, v;
    while ((v = tu_counter_wait(c, target, idle_ms)) < target && v > last) {
        last = v;
    }
    return v;
}

/* A pause: for polling state that has no event to wait on (a node's
 * stats, through TU_POLL with a deadline), or to let a thread settle when
 * the test's verdict does not depend on it.  Never to wait for a result. */
static inline void
tu_pause_ms(int ms)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    struct timespec ts;
    tu_cond_init(&cv);
    tu_abstime(&ts, ms);
    pthread_mutex_lock(&m);
    while (pthread_cond_timedwait(&cv, &m, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&m);
    pthread_cond_destroy(&cv);
}

/* Sets ok to whether cond came to hold within timeout_ms (polled). */
#define TU_POLL(ok, cond, timeout_ms)                                       \
    do {                                                                   \
        uint64_t tu_end_ = tu_now_ms() + (uint64_t)(timeout_ms);          \
        while (!((ok) = (cond)) && tu_now_ms() < tu_end_) {                \
            tu_pause_ms(2);                                                \
        }                                                                  \
    } while (0)

#endif
