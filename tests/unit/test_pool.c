/* SPDX-License-Identifier: MIT */
/*
 * Worker pool behaviour through the public API: per-key ordering, nested
 * synchronous RPCs from every worker at once, the bounded queue, and
 * unsubscribe waiting for running handlers.
 */
#include "notifier/notifier.h"
#include "testutil.h"

static nt_node *
open_node(unsigned workers, unsigned depth)
{
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.workers = workers;
    c.queue_depth = depth;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    return n;
}

/* ---- ordering ---------------------------------------------------------- */

#define KEYS 16
#define PER_KEY 3000

typedef struct {
    pthread_mutex_t mtx;
    long last[KEYS];
    long errors;
    tu_counter done;
} orderstate;

static void
order_sink(void *dest, const nt_msg *m)
{
    orderstate *s = dest;
    long seq;
    memcpy(&seq, m->data, sizeof(seq));
    pthread_mutex_lock(&s->mtx);
    if (m->id >= KEYS || seq != s->last[m->id] + 1) {
        s->errors++;
    } else {
        s->last[m->id] = seq;
    }
    pthread_mutex_unlock(&s->mtx);
    tu_counter_add(&s->done, 1);
}

static void
test_ordering_four_workers(void)
{
    nt_node *n = open_node(4, 1 << 17);
    orderstate s;
    pthread_mutex_init(&s.mtx, NULL);
    for (int k = 0; k < KEYS; k++) {
        s.last[k] = -1;
    }
    s.errors = 0;
    tu_counter_init(&s.done);
    CU_ASSERT_EQUAL(nt_subscribe(n, "seq", NT_MATCH_ALL, "tick", order_sink,
                                 &s), NT_OK);
    /* Interleave keys so consecutive publishes hit different workers. */
    long sent = 0;
    for (long i = 0; i < PER_KEY; i++) {
        for (uint64_t k = 0; k < KEYS; k++) {
            int rv;
            while ((rv = nt_publish(n, "seq", k, "tick", &i, sizeof(i))) ==
                   NT_EAGAIN) {
                tu_counter_wait(&s.done, sent - 1000, 1000);
            }
            CU_ASSERT_EQUAL_FATAL(rv, NT_OK);
            sent++;
        }
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&s.done, sent, 30000), sent);
    CU_ASSERT_EQUAL(s.errors, 0);
    for (int k = 0; k < KEYS; k++) {
        CU_ASSERT_EQUAL(s.last[k], PER_KEY - 1);
    }
    CU_ASSERT_EQUAL(nt_node_close(n, 1000), NT_OK);
    tu_counter_fini(&s.done);
    pthread_mutex_destroy(&s.mtx);
}

/* ---- nested synchronous RPC from every worker ------------------------ */

typedef struct {
    nt_node *n;
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    int inside;   /* outer handlers currently running */
    int want;     /* how many must be inside before any proceeds */
    int ok;
} nested;

static void
inner_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    nt_reply_send(r, m->data, m->len);
}

static void
outer_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    nested *s = dest;
    /* Hold every worker here until all are busy, so that the inner calls
     * below are made while no worker is free. */
    struct timespec ts;
    tu_abstime(&ts, 10000);
    pthread_mutex_lock(&s->mtx);
    s->inside++;
    pthread_cond_broadcast(&s->cv);
    while (s->inside < s->want) {
        if (pthread_cond_timedwait(&s->cv, &s->mtx, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&s->mtx);

    nt_results *res = NULL;
    int rv = nt_rpc(s->n, "inner", m->id, "echo", m->data, m->len, 10000,
                    &res);
    if (rv == NT_OK && res->count == 1 && res->items[0].status == NT_OK &&
        res->items[0].len == m->len) {
        pthread_mutex_lock(&s->mtx);
        s->ok++;
        pthread_mutex_unlock(&s->mtx);
        nt_reply_send(r, res->items[0].data, res->items[0].len);
    } else {
        nt_reply_error(r, rv, "inner call failed");
    }
    nt_results_free(res);
}

typedef struct {
    nested *s;
    uint64_t id;
    int status;
} outer_arg;

static void *
outer_caller(void *arg)
{
    outer_arg *a = arg;
    nt_results *res = NULL;
    int rv = nt_rpc(a->s->n, "outer", a->id, "go", "ping", 4, 20000, &res);
    a->status = rv == NT_OK && res->items[0].status == NT_OK ? NT_OK
                : rv != NT_OK                              ? rv
                                                           : res->items[0].status;
    nt_results_free(res);
    return NULL;
}

static void
run_nested(unsigned workers, int callers)
{
    nested s = { 0 };
    s.n = open_node(workers, 1024);
    pthread_mutex_init(&s.mtx, NULL);
    tu_cond_init(&s.cv);
    s.want = (int)workers; /* every worker inside an outer handler */
    CU_ASSERT_EQUAL(nt_rpc_register(s.n, "inner", NT_MATCH_ALL, "echo",
                                    inner_handler, &s), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_register(s.n, "outer", NT_MATCH_ALL, "go",
                                    outer_handler, &s), NT_OK);
    pthread_t th[64];
    outer_arg args[64];
    for (int i = 0; i < callers; i++) {
        args[i] = (outer_arg){ &s, (uint64_t)i, 1 };
        pthread_create(&th[i], NULL, outer_caller, &args[i]);
    }
    for (int i = 0; i < callers; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(args[i].status, NT_OK);
    }
    CU_ASSERT_EQUAL(s.ok, callers);
    CU_ASSERT_EQUAL(nt_node_close(s.n, 1000), NT_OK);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mtx);
}

static void
test_nested_rpc_every_worker(void)
{
    run_nested(4, 4);
}

static void
test_nested_rpc_more_callers_than_workers(void)
{
    run_nested(2, 16);
}

/* ---- bounded queue --------------------------------------------------- */

typedef struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bool open;
    tu_counter got;
} gate;

static void
gated_sink(void *dest, const nt_msg *m)
{
    (void)m;
    gate *g = dest;
    struct timespec ts;
    tu_abstime(&ts, 20000);
    pthread_mutex_lock(&g->mtx);
    while (!g->open) {
        if (pthread_cond_timedwait(&g->cv, &g->mtx, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&g->mtx);
    tu_counter_add(&g->got, 1);
}

/* dest points at a struct whose first member is the gate pointer. */
static void
sub_sink(void *dest, const nt_msg *m)
{
    gated_sink(*(gate **)dest, m);
}

static void
gate_init(gate *g)
{
    pthread_mutex_init(&g->mtx, NULL);
    tu_cond_init(&g->cv);
    g->open = false;
    tu_counter_init(&g->got);
}

static void
gate_open(gate *g)
{
    pthread_mutex_lock(&g->mtx);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mtx);
}

static void
gate_fini(gate *g)
{
    tu_counter_fini(&g->got);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mtx);
}

static void
test_queue_full_is_all_or_nothing(void)
{
    /* Two subscribers, a queue of 9 per worker: a publish needs two
     * slots; when it cannot have both it gets NT_EAGAIN and neither
     * subscriber gets it. */
    nt_node *n = open_node(2, 9);
    gate g;
    gate_init(&g);
    struct sub {
        gate *g;
    } subs[2] = { { &g }, { &g } };
    CU_ASSERT_EQUAL(nt_subscribe(n, "q", NT_MATCH_ALL, "c", sub_sink,
                                 &subs[0]), NT_OK);
    CU_ASSERT_EQUAL(nt_subscribe(n, "q", NT_MATCH_ALL, "c", sub_sink,
                                 &subs[1]), NT_OK);
    int accepted = 0, rejected = 0;
    for (int i = 0; i < 100; i++) {
        int rv = nt_publish(n, "q", 1, "c", NULL, 0); /* one key: one queue */
        if (rv == NT_OK) {
            accepted++;
        } else {
            CU_ASSERT_EQUAL(rv, NT_EAGAIN);
            rejected++;
        }
    }
    CU_ASSERT(rejected > 0);
    CU_ASSERT(accepted >= 4 && accepted <= 6);
    gate_open(&g);
    long want = 2L * accepted;
    CU_ASSERT_EQUAL(tu_counter_wait(&g.got, want, 20000), want);
    CU_ASSERT_EQUAL(nt_node_close(n, 1000), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_get(&g.got), want);
    gate_fini(&g);
}

/* ---- unsubscribe waits for a running handler ------------------------- */

typedef struct {
    tu_counter entered;
    gate g;
    volatile int returned;
} slowsub;

static void
slow_sink(void *dest, const nt_msg *m)
{
    (void)m;
    slowsub *s = dest;
    tu_counter_add(&s->entered, 1);
    gated_sink(&s->g, m);
    __atomic_store_n(&s->returned, 1, __ATOMIC_SEQ_CST);
}

static void *
opener(void *arg)
{
    slowsub *s = arg;
    /* Let the handler finish only once unsubscribe is waiting for it;
     * there is no event for that, so give it a bounded moment. */
    struct timespec ts = { 0, 100 * 1000000L };
    nanosleep(&ts, NULL); /* deadline-bounded: unsubscribe must wait */
    gate_open(&s->g);
    return NULL;
}

static void
test_unsubscribe_waits_for_handler(void)
{
    nt_node *n = open_node(2, 64);
    slowsub s;
    tu_counter_init(&s.entered);
    gate_init(&s.g);
    s.returned = 0;
    CU_ASSERT_EQUAL(nt_subscribe(n, "u", NT_MATCH_ALL, "c", slow_sink, &s),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_publish(n, "u", 1, "c", NULL, 0), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&s.entered, 1, 10000), 1);
    pthread_t th;
    pthread_create(&th, NULL, opener, &s);
    CU_ASSERT_EQUAL(nt_unsubscribe(n, "u", NT_MATCH_ALL, "c", &s), NT_OK);
    /* When unsubscribe returns, the running call has returned too. */
    CU_ASSERT_EQUAL(__atomic_load_n(&s.returned, __ATOMIC_SEQ_CST), 1);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(nt_publish(n, "u", 1, "c", NULL, 0), NT_ENOTARGET);
    CU_ASSERT_EQUAL(nt_unsubscribe(n, "u", NT_MATCH_ALL, "c", &s),
                    NT_ENOENT);
    CU_ASSERT_EQUAL(nt_node_close(n, 1000), NT_OK);
    gate_fini(&s.g);
    tu_counter_fini(&s.entered);
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_ordering_four_workers),
        NT_TEST(test_nested_rpc_every_worker),
        NT_TEST(test_nested_rpc_more_callers_than_workers),
        NT_TEST(test_queue_full_is_all_or_nothing),
        NT_TEST(test_unsubscribe_waits_for_handler),
        NT_TESTS_END,
    };
    return nt_run_suite("pool", NULL, NULL, tests);
}
