/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the service-layer suites: in-process clusters on
 * 127.0.0.1 port 0 with a shared key, gates that hold a command until the
 * test opens them, and a deadline-bound wait on a service statistic.
 */
#ifndef NT_SVCUTIL_H
#define NT_SVCUTIL_H

#include "notifier/notifier.h"
#include "notifier/service.h"
#include "testutil.h"

static unsigned char su_key[32];
static char su_keyhex[65];

static inline void
su_key_init(void)
{
    for (int i = 0; i < 32; i++) {
        su_key[i] = (unsigned char)(i * 11 + 5);
        snprintf(su_keyhex + 2 * i, 3, "%02x", su_key[i]);
    }
}

static inline nt_node *
su_open_member(const char *seed)
{
    const char *smap[] = { seed, NULL };
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = seed != NULL ? smap : NULL;
    c.key = su_key;
    c.workers = 2;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    return n;
}

/* count members seeded by the first; waits until every one sees all and
 * the directory has converged. */
static inline void
su_open_cluster(nt_node **v, int count)
{
    v[0] = su_open_member(NULL);
    for (int i = 1; i < count; i++) {
        v[i] = su_open_member(nt_node_address(v[0]));
    }
    for (int i = 0; i < count; i++) {
        CU_ASSERT_EQUAL_FATAL(
            nt_node_wait_members(v[i], (unsigned)count, 20000), NT_OK);
    }
}

static inline void
su_converge(nt_node **v, int count)
{
    for (int i = 0; i < count; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_node_wait_converged(v[i], 20000), NT_OK);
    }
}

static inline void
su_close_all(nt_node **v, int count)
{
    for (int i = 0; i < count; i++) {
        if (v[i] != NULL) {
            CU_ASSERT_EQUAL(nt_node_close(v[i], 2000), NT_OK);
            v[i] = NULL;
        }
    }
}

/* ---- gates -------------------------------------------------------------- */

/* A command bound to a gate counts itself in entered, waits until the
 * gate opens (at most 60 s, a safety net well beyond any test), counts
 * itself in ran and answers its arguments. */
typedef struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bool open;
    tu_counter entered, ran;
} su_gate;

static inline void
su_gate_init(su_gate *g)
{
    pthread_mutex_init(&g->mtx, NULL);
    tu_cond_init(&g->cv);
    g->open = false;
    tu_counter_init(&g->entered);
    tu_counter_init(&g->ran);
}

static inline void
su_gate_fini(su_gate *g)
{
    tu_counter_fini(&g->ran);
    tu_counter_fini(&g->entered);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mtx);
}

static inline void
su_gate_open(su_gate *g)
{
    pthread_mutex_lock(&g->mtx);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mtx);
}

static inline int
su_cmd_gate(void *arg, const nt_request *rq, nt_answer *a)
{
    su_gate *g = arg;
    tu_counter_add(&g->entered, 1);
    struct timespec ts;
    tu_abstime(&ts, 60000);
    pthread_mutex_lock(&g->mtx);
    while (!g->open) {
        if (pthread_cond_timedwait(&g->cv, &g->mtx, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&g->mtx);
    tu_counter_add(&g->ran, 1);
    return nt_answer_write(a, rq->args, rq->len);
}

/* ---- statistics --------------------------------------------------------- */

/* A numeric field of the service's JSON statistics (-1 when missing). */
static inline long long
su_stat(nt_service *s, const char *field)
{
    char *js = NULL;
    if (nt_service_stats(s, &js) != NT_OK) {
        return -1;
    }
    char pat[80];
    snprintf(pat, sizeof(pat), "\"%s\":", field);
    char *p = strstr(js, pat);
    long long v = p != NULL ? strtoll(p + strlen(pat), NULL, 10) : -1;
    nt_free(js);
    return v;
}

/* Waits until the statistic reaches at least want, polling with a
 * deadline (the service has no event to wait on for this). */
static inline bool
su_wait_stat(nt_service *s, const char *field, long long want,
             int timeout_ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)timeout_ms;
    tu_counter tick;
    tu_counter_init(&tick);
    bool ok = false;
    for (;;) {
        ok = su_stat(s, field) >= want;
        if (ok || tu_now_ms() >= end) {
            break;
        }
        tu_counter_wait(&tick, 1, 5); /* poll interval, deadline-bound */
    }
    tu_counter_fini(&tick);
    return ok;
}

/* True when r is ok with exactly the text s. */
static inline bool
su_is(const nt_exec_result *r, const char *s)
{
    return r->status == NT_OK && r->len == strlen(s) &&
           memcmp(r->data, s, r->len) == 0;
}

#endif
