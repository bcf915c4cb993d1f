/* SPDX-License-Identifier: MIT */
/*
 * Batched calls between members (docs/PROTOCOL.md, "Batched calls"): many
 * concurrent calls share frames; a slow handler never holds back the fast
 * calls batched with it (their answers come at once, the slow one's later
 * in a RESULTS_TO frame); the callee's max_inflight refuses what is over
 * the limit; a late answer after the caller's deadline is harmless.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "notifier/notifier.h"
#include "statutil.h"
#include "testutil.h"

static unsigned char key[32];

static unsigned peer_limit; /* max_peer_inflight for the next open_node */

static nt_node *
open_node(const char *seed, unsigned workers, unsigned max_inflight)
{
    const char *smap[] = { seed, NULL };
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = seed ? smap : NULL;
    c.key = key;
    c.workers = workers;
    if (max_inflight > 0) {
        c.max_inflight = max_inflight;
    }
    c.max_peer_inflight = peer_limit;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    return n;
}

/* Two members: a caller and a callee with "fast" (echo) and "slow" (waits
 * for the gate, then answers "slow") handlers, converged. */
typedef struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bool open;
    tu_counter entered;
} gate;

static void
gate_init(gate *g)
{
    pthread_mutex_init(&g->mtx, NULL);
    tu_cond_init(&g->cv);
    g->open = false;
    tu_counter_init(&g->entered);
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
    tu_counter_fini(&g->entered);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mtx);
}

static void
on_slow(void *arg, const nt_msg *m, nt_reply *r)
{
    (void)m;
    gate *g = arg;
    tu_counter_add(&g->entered, 1);
    struct timespec ts;
    tu_abstime(&ts, 60000); /* a bound, never the expected path */
    pthread_mutex_lock(&g->mtx);
    while (!g->open) {
        if (pthread_cond_timedwait(&g->cv, &g->mtx, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&g->mtx);
    nt_reply_send(r, "slow", 4);
}

static void
on_fast(void *arg, const nt_msg *m, nt_reply *r)
{
    (void)arg;
    nt_reply_send(r, m->data, m->len);
}

/* Results of many asynchronous calls. */
typedef struct {
    tu_counter done;
    pthread_mutex_t mtx;
    unsigned ok, bad, eagain, timedout;
    const char *want; /* expected payload of an ok answer */
} tally;

static void
tally_init(tally *t, const char *want)
{
    tu_counter_init(&t->done);
    pthread_mutex_init(&t->mtx, NULL);
    t->ok = t->bad = t->eagain = t->timedout = 0;
    t->want = want;
}

static void
tally_fini(tally *t)
{
    tu_counter_fini(&t->done);
    pthread_mutex_destroy(&t->mtx);
}

static void
on_tally(void *arg, int status, const nt_results *r)
{
    tally *t = arg;
    pthread_mutex_lock(&t->mtx);
    if (status != NT_OK || r == NULL || r->count != 1) {
        t->bad++;
    } else if (r->items[0].status == NT_EAGAIN) {
        t->eagain++;
    } else if (r->items[0].status == NT_ETIMEDOUT) {
        t->timedout++;
    } else if (r->items[0].status == NT_OK &&
               r->items[0].len == strlen(t->want) &&
               memcmp(r->items[0].data, t->want, r->items[0].len) == 0) {
        t->ok++;
    } else {
        t->bad++;
    }
    pthread_mutex_unlock(&t->mtx);
    tu_counter_add(&t->done, 1);
}

static void
pair_open(nt_node **caller, nt_node **callee, unsigned workers,
          unsigned max_inflight, gate *g)
{
    *callee = open_node(NULL, workers, max_inflight);
    *caller = open_node(nt_node_address(*callee), 2, 0);
    CU_ASSERT_EQUAL_FATAL(nt_rpc_register(*callee, "svc", NT_MATCH_ALL,
                                          "fast", on_fast, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_rpc_register(*callee, "svc", NT_MATCH_ALL,
                                          "slow", on_slow, g), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_members(*caller, 2, 20000), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_members(*callee, 2, 20000), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_converged(*caller, 20000), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_converged(*callee, 20000), NT_OK);
}

/* A window of asynchronous calls kept full from the callbacks (each
 * answer starts the next call), the pattern call frames are held for
 * (peer.c, "Holding"); then a burst started from one thread whose
 * callbacks start nothing, so that a held frame must leave when the last
 * callback returns.  Every call is answered, intact. */
typedef struct {
    nt_node *n;
    tally t;
    atomic_uint started;
    unsigned total;
} refill;

static void
on_refill(void *arg, int status, const nt_results *r)
{
    refill *w = arg;
    on_tally(&w->t, status, r);
    unsigned i = atomic_fetch_add(&w->started, 1);
    if (i < w->total &&
        nt_rpc_call(w->n, "svc", i, "fast", "ping", 4, 20000, on_refill,
                    w) != NT_OK) {
        tu_counter_add(&w->t.done, 1); /* counted as missing below */
    }
}

static void
test_call_window_refilled(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    pair_open(&caller, &callee, 2, 0, &g);
    refill w = { .n = caller, .total = 3000 };
    tally_init(&w.t, "ping");
    atomic_init(&w.started, 64);
    for (unsigned i = 0; i < 64; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", i, "fast", "ping", 4,
                                          20000, on_refill, &w), NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&w.t.done, w.total, 60000), w.total);
    CU_ASSERT_EQUAL(w.t.ok, w.total);
    long long held = stat_of(caller, "call_frames_held");
    long long frames = stat_of(caller, "call_frames_sent");
    printf("\n  %u calls in %lld frames, %lld held for callbacks\n", w.total,
           frames, held);

    /* A burst from this thread; the callbacks only count. */
    tally t;
    tally_init(&t, "ping");
    for (unsigned i = 0; i < 500; i++) {
        int rv;
        while ((rv = nt_rpc_call(caller, "svc", i, "fast", "ping", 4, 20000,
                                 on_tally, &t)) == NT_EAGAIN) {
            tu_counter_wait(&t.done, tu_counter_get(&t.done) + 1, 10);
        }
        CU_ASSERT_EQUAL_FATAL(rv, NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 500, 60000), 500);
    CU_ASSERT_EQUAL(t.ok, 500);
    gate_open(&g);
    nt_node_close(caller, 5000);
    nt_node_close(callee, 5000);
    tally_fini(&t);
    tally_fini(&w.t);
    gate_fini(&g);
}

/* Slow calls mixed into a stream of fast ones: every fast call is answered
 * while the slow ones are still blocked (a batch never waits for its
 * slowest call), then the slow ones are answered too. */
static void
test_no_head_of_line_blocking(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    pair_open(&caller, &callee, 4, 0, &g);
    enum { TOTAL = 400, SLOW_EVERY = 150 };
    tally fast, slow;
    tally_init(&fast, "x");
    tally_init(&slow, "slow");
    unsigned nslow = 0;
    for (unsigned i = 0; i < TOTAL; i++) {
        bool is_slow = i % SLOW_EVERY == 1;
        nslow += is_slow;
        CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", i,
                                          is_slow ? "slow" : "fast", "x", 1,
                                          60000, on_tally,
                                          is_slow ? &slow : &fast),
                              NT_OK);
    }
    unsigned nfast = TOTAL - nslow;
    CU_ASSERT_EQUAL(tu_counter_wait(&fast.done, nfast, 30000), nfast);
    CU_ASSERT_EQUAL(fast.ok, nfast);
    CU_ASSERT_EQUAL(tu_counter_wait(&g.entered, nslow, 30000), nslow);
    CU_ASSERT_EQUAL(tu_counter_wait(&slow.done, 1, 0), 0); /* still held */
    /* Each slow call's frame is acked without it once the hold time is
     * over; only then are its results certain to go out late. */
    bool deferred;
    TU_POLL(deferred,
            stat_of(callee, "calls_deferred") >= (long long)nslow, 30000);
    CU_ASSERT(deferred);
    gate_open(&g);
    CU_ASSERT_EQUAL(tu_counter_wait(&slow.done, nslow, 30000), nslow);
    CU_ASSERT_EQUAL(slow.ok, nslow);
    /* They were batched, and the slow ones were answered late. */
    long long frames = stat_of(caller, "call_frames_sent");
    long long items = stat_of(caller, "calls_sent");
    CU_ASSERT(items >= TOTAL);
    CU_ASSERT(frames > 0 && frames < items);
    CU_ASSERT(stat_of(callee, "results_late_sent") >= (long long)nslow);
    nt_node_close(caller, 2000);
    nt_node_close(callee, 2000);
    tally_fini(&fast);
    tally_fini(&slow);
    gate_fini(&g);
}

/* A callee with max_inflight 2: two blocked calls run, the rest are
 * refused with NT_EAGAIN at once; nothing is lost. */
static void
test_inflight_limit_refuses(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    pair_open(&caller, &callee, 4, 2, &g);
    tally t;
    tally_init(&t, "slow");
    for (unsigned i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", i, "slow", NULL, 0,
                                          60000, on_tally, &t), NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&g.entered, 2, 30000), 2);
    for (unsigned i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", 10 + i, "slow", NULL,
                                          0, 60000, on_tally, &t), NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 3, 30000), 3);
    CU_ASSERT_EQUAL(t.eagain, 3);
    gate_open(&g);
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 5, 30000), 5);
    CU_ASSERT_EQUAL(t.ok, 2);
    CU_ASSERT_EQUAL(t.bad, 0);
    nt_node_close(caller, 2000);
    nt_node_close(callee, 2000);
    tally_fini(&t);
    gate_fini(&g);
}

/* max_peer_inflight counts calls answered 'later' until their results
 * come: with two slow calls in flight to a peer and a limit of 2, a third
 * call waits in the caller's queue (here until its deadline), and calls
 * flow again once the slow ones are answered. */
static void
test_peer_limit_counts_late_calls(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    peer_limit = 2;
    callee = open_node(NULL, 4, 0);
    caller = open_node(nt_node_address(callee), 2, 0);
    peer_limit = 0;
    CU_ASSERT_EQUAL_FATAL(nt_rpc_register(callee, "svc", NT_MATCH_ALL,
                                          "fast", on_fast, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_rpc_register(callee, "svc", NT_MATCH_ALL,
                                          "slow", on_slow, &g), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_members(caller, 2, 20000), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_converged(caller, 20000), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_node_wait_converged(callee, 20000), NT_OK);
    tally slow;
    tally_init(&slow, "slow");
    for (unsigned i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", i, "slow", NULL, 0,
                                          60000, on_tally, &slow), NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&g.entered, 2, 30000), 2);
    nt_results *res = NULL;
    CU_ASSERT_EQUAL(nt_rpc(caller, "svc", 3, "fast", "z", 1, 1500, &res),
                    NT_OK);
    CU_ASSERT(res != NULL && res->count == 1 &&
              res->items[0].status == NT_ETIMEDOUT);
    nt_results_free(res);
    gate_open(&g);
    CU_ASSERT_EQUAL(tu_counter_wait(&slow.done, 2, 30000), 2);
    CU_ASSERT_EQUAL(slow.ok, 2);
    res = NULL;
    CU_ASSERT_EQUAL(nt_rpc(caller, "svc", 4, "fast", "w", 1, 10000, &res),
                    NT_OK);
    CU_ASSERT(res != NULL && res->count == 1 &&
              res->items[0].status == NT_OK);
    nt_results_free(res);
    nt_node_close(caller, 2000);
    nt_node_close(callee, 2000);
    tally_fini(&slow);
    gate_fini(&g);
}

/* Closing a caller with a call still waiting for its answer ends that
 * call (NT_ECLOSED or NT_EPEERLOST), cleanly. */
static void
test_close_with_call_waiting(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    pair_open(&caller, &callee, 2, 0, &g);
    tally t;
    tally_init(&t, "slow");
    CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", 1, "slow", NULL, 0,
                                      60000, on_tally, &t), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&g.entered, 1, 30000), 1);
    /* The call is either still in its frame or already answered 'later'
     * (after the callee's 2 ms hold); either way close ends it. */
    CU_ASSERT_EQUAL(nt_node_close(caller, 2000), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 1, 10000), 1);
    CU_ASSERT_EQUAL(t.ok, 0);
    gate_open(&g);
    nt_node_close(callee, 2000);
    tally_fini(&t);
    gate_fini(&g);
}

/* A call ends at its deadline while its handler still runs; the answer
 * that comes later is ignored, and calls keep working. */
static void
test_late_answer_after_deadline(void)
{
    gate g;
    gate_init(&g);
    nt_node *caller, *callee;
    pair_open(&caller, &callee, 2, 0, &g);
    tally t;
    tally_init(&t, "slow");
    CU_ASSERT_EQUAL_FATAL(nt_rpc_call(caller, "svc", 1, "slow", NULL, 0, 200,
                                      on_tally, &t), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 1, 30000), 1);
    CU_ASSERT_EQUAL(t.timedout, 1);
    long long late = stat_of(callee, "results_late_sent");
    gate_open(&g);
    /* The late answer leaves the callee... */
    uint64_t end = tu_now_ms() + 30000;
    while (stat_of(callee, "results_late_sent") <= late &&
           tu_now_ms() < end) {
        tu_counter_wait(&t.done, 2, 10);
    }
    CU_ASSERT(stat_of(callee, "results_late_sent") > late);
    /* ...and changes nothing here. */
    nt_results *res = NULL;
    CU_ASSERT_EQUAL(nt_rpc(caller, "svc", 2, "fast", "y", 1, 10000, &res),
                    NT_OK);
    CU_ASSERT(res != NULL && res->count == 1 &&
              res->items[0].status == NT_OK && res->items[0].len == 1);
    nt_results_free(res);
    CU_ASSERT_EQUAL(tu_counter_wait(&t.done, 2, 0), 1);
    nt_node_close(caller, 2000);
    nt_node_close(callee, 2000);
    tally_fini(&t);
    gate_fini(&g);
}

static int
setup(void)
{
    for (int i = 0; i < 32; i++) {
        key[i] = (unsigned char)(i * 13 + 5);
    }
    return 0;
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_no_head_of_line_blocking),
        NT_TEST(test_call_window_refilled),
        NT_TEST(test_inflight_limit_refuses),
        NT_TEST(test_peer_limit_counts_late_calls),
        NT_TEST(test_close_with_call_waiting),
        NT_TEST(test_late_answer_after_deadline),
        NT_TESTS_END,
    };
    return nt_run_suite("calls", setup, NULL, tests);
}
