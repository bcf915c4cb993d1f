/* SPDX-License-Identifier: MIT */
/*
 * Node lifecycle and concurrency: configuration errors, publisher mode,
 * many threads publishing and (un)registering at once with exact delivery
 * counts, close with work in flight, and calls racing with close.
 */
#include <unistd.h>

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

static void
test_open_errors(void)
{
    nt_config c;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL(nt_node_open(NULL, NULL), NT_EINVAL);
    nt_config_init(&c);
    c.listen = "127.0.0.1";
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EADDR);
    c.listen = "127.0.0.1:99999";
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EADDR);
    c.listen = "bad host:1";
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EADDR);
    c.listen = "127.0.0.1:0";
    const char *smap[] = { "ok:1", "nope", NULL };
    c.smap = smap;
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EADDR);
    c.smap = NULL;
    c.key_file = "/nonexistent/key";
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EIO);
    char path[] = "/tmp/nt-key-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, "not a key\n", 10) == 10);
    close(fd);
    c.key_file = path;
    CU_ASSERT_EQUAL(nt_node_open(&n, &c), NT_EAUTH);
    unlink(path);
    CU_ASSERT_PTR_NULL(n);
}

static void
test_single_node_cluster(void)
{
    nt_node *n = open_node(2, 0);
    CU_ASSERT_EQUAL(strlen(nt_node_id(n)), 32);
    CU_ASSERT_PTR_NOT_NULL(nt_node_address(n));
    CU_ASSERT_EQUAL(nt_node_wait_members(n, 1, 1000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_wait_converged(n, 1000), NT_OK);
    const char *smap[] = { "127.0.0.1:1", NULL };
    CU_ASSERT_EQUAL(nt_node_reload(n, smap), NT_OK);
    const char *bad[] = { "x", NULL };
    CU_ASSERT_EQUAL(nt_node_reload(n, bad), NT_EADDR);
    CU_ASSERT_EQUAL(nt_node_close(n, 1000), NT_OK);
}

static void
nop_sink(void *dest, const nt_msg *m)
{
    (void)dest;
    (void)m;
}

/* max_registrations: NT_ELIMIT past it, room again after a removal. */
static void
test_registration_limit(void)
{
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.workers = 1;
    c.max_registrations = 3;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    int d[4];
    const char *cmds[] = { "a", "b", "c", "d" };
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(nt_subscribe(n, "o", NT_MATCH_ALL, cmds[i], nop_sink,
                                     &d[i]), NT_OK);
    }
    CU_ASSERT_EQUAL(nt_subscribe(n, "o", NT_MATCH_ALL, "d", nop_sink, &d[3]),
                    NT_ELIMIT);
    CU_ASSERT_EQUAL(nt_publish(n, "o", 1, "d", NULL, 0), NT_ENOTARGET);
    CU_ASSERT_EQUAL(nt_unsubscribe(n, "o", NT_MATCH_ALL, "a", &d[0]), NT_OK);
    CU_ASSERT_EQUAL(nt_subscribe(n, "o", NT_MATCH_ALL, "d", nop_sink, &d[3]),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 1000), NT_OK);
}

static void
test_publisher_serves_nothing(void)
{
    nt_config c;
    nt_config_init(&c);
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    CU_ASSERT_PTR_NULL(nt_node_address(n));
    CU_ASSERT_EQUAL(nt_subscribe(n, "o", NT_MATCH_ALL, "c", nop_sink, n),
                    NT_ENOTSUP);
    /* No server in its smap: nothing to route through. */
    CU_ASSERT_EQUAL(nt_publish(n, "o", 1, "c", NULL, 0), NT_EUNREACHABLE);
    CU_ASSERT_EQUAL(nt_node_close(n, 0), NT_OK);
}

/* ---- 8 threads publishing and (un)registering at once ---------------- */

#define THREADS 8
#define STRESS_MS 2000

typedef struct {
    nt_node *n;
    tu_counter delivered;  /* to the stable subscriber */
    long sent[THREADS];
    long churn_ops[THREADS];
    int errors;
    int idx;
} stress;

static stress S;

static void
count_sink(void *dest, const nt_msg *m)
{
    (void)m;
    tu_counter_add(dest, 1);
}

static void
churn_sink(void *dest, const nt_msg *m)
{
    (void)dest;
    (void)m;
}

static void *
stress_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t end = tu_now_ms() + STRESS_MS;
    char obj[32];
    snprintf(obj, sizeof(obj), "churn%d", me);
    char dest[4];
    long i = 0;
    while (tu_now_ms() < end) {
        /* Publish to the stable topic; retry on a full queue. */
        int rv = nt_publish(S.n, "stable", (uint64_t)i, "tick", &i, sizeof(i));
        if (rv == NT_OK) {
            S.sent[me]++;
        } else if (rv != NT_EAGAIN) {
            __atomic_add_fetch(&S.errors, 1, __ATOMIC_RELAXED);
        }
        /* Churn registrations on our own and a shared topic. */
        int k = (int)(i % 4);
        if (nt_subscribe(S.n, obj, (nt_match){ 3, (uint64_t)k }, "c",
                         churn_sink, &dest[k]) != NT_OK ||
            nt_slice(S.n, "shared", NT_MATCH_ALL, "c", churn_sink, &dest[k],
                     1.0 + k) != NT_OK) {
            __atomic_add_fetch(&S.errors, 1, __ATOMIC_RELAXED);
        }
        rv = nt_publish(S.n, "shared", (uint64_t)i, "c", NULL, 0);
        if (rv != NT_OK && rv != NT_EAGAIN) {
            __atomic_add_fetch(&S.errors, 1, __ATOMIC_RELAXED);
        }
        if (nt_unsubscribe(S.n, obj, (nt_match){ 3, (uint64_t)k }, "c",
                           &dest[k]) != NT_OK ||
            nt_unsubscribe_all(S.n, &dest[k]) != NT_OK) {
            __atomic_add_fetch(&S.errors, 1, __ATOMIC_RELAXED);
        }
        S.churn_ops[me]++;
        i++;
    }
    return NULL;
}

static void
test_concurrent_publish_and_register(void)
{
    memset(&S, 0, sizeof(S));
    S.n = open_node(4, 1 << 16);
    tu_counter_init(&S.delivered);
    CU_ASSERT_EQUAL(nt_subscribe(S.n, "stable", NT_MATCH_ALL, "tick",
                                 count_sink, &S.delivered), NT_OK);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&th[i], NULL, stress_thread, (void *)(intptr_t)i);
    }
    long total = 0, churn = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += S.sent[i];
        churn += S.churn_ops[i];
    }
    printf("\n  %ld publishes accepted, %ld churn rounds\n", total, churn);
    CU_ASSERT_EQUAL(S.errors, 0);
    CU_ASSERT(total > 0 && churn > 0);
    /* Every accepted publish is delivered exactly once. */
    CU_ASSERT_EQUAL(tu_counter_wait(&S.delivered, total, 30000), total);
    CU_ASSERT_EQUAL(nt_node_close(S.n, 5000), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_get(&S.delivered), total);
    tu_counter_fini(&S.delivered);
}

/* ---- close with work in flight --------------------------------------- */

typedef struct {
    tu_counter got;
    tu_counter started;
} slow;

static void
slow_sink(void *dest, const nt_msg *m)
{
    (void)m;
    slow *s = dest;
    tu_counter_add(&s->started, 1);
    /* A handler that takes a while: 20 ms, bounded. */
    tu_counter never;
    tu_counter_init(&never);
    tu_counter_wait(&never, 1, 20);
    tu_counter_fini(&never);
    tu_counter_add(&s->got, 1);
}

static void
defer_forever(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)m;
    *(nt_reply **)dest = r; /* answered after close: refused */
}

static void
test_close_with_work_in_flight(void)
{
    nt_node *n = open_node(2, 4096);
    slow s;
    tu_counter_init(&s.got);
    tu_counter_init(&s.started);
    nt_reply *kept = NULL;
    CU_ASSERT_EQUAL(nt_subscribe(n, "slow", NT_MATCH_ALL, "c", slow_sink, &s),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_register(n, "hold", NT_MATCH_ALL, "c",
                                    defer_forever, &kept), NT_OK);
    long sent = 0;
    for (int i = 0; i < 200; i++) {
        sent += nt_publish(n, "slow", (uint64_t)i, "c", NULL, 0) == NT_OK;
    }
    CU_ASSERT_EQUAL(sent, 200);
    CU_ASSERT(tu_counter_wait(&s.started, 1, 10000) >= 1);
    /* Close with a short timeout: what does not fit is dropped, what runs
     * finishes, and nothing leaks (ASan checks). */
    CU_ASSERT_EQUAL(nt_node_close(n, 50), NT_OK);
    long got = tu_counter_get(&s.got);
    CU_ASSERT(got >= 1 && got < sent);
    CU_ASSERT_EQUAL(got, tu_counter_get(&s.started));
    CU_ASSERT_EQUAL(nt_publish(n, "slow", 1, "c", NULL, 0), NT_ECLOSED);
    tu_counter_fini(&s.got);
    tu_counter_fini(&s.started);
}

static void
test_close_drains_within_timeout(void)
{
    nt_node *n = open_node(2, 4096);
    slow s;
    tu_counter_init(&s.got);
    tu_counter_init(&s.started);
    CU_ASSERT_EQUAL(nt_subscribe(n, "slow", NT_MATCH_ALL, "c", slow_sink, &s),
                    NT_OK);
    for (int i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(nt_publish(n, "slow", (uint64_t)i, "c", NULL, 0),
                        NT_OK);
    }
    /* A generous timeout: everything queued is delivered before close
     * returns. */
    CU_ASSERT_EQUAL(nt_node_close(n, 30000), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_get(&s.got), 10);
    tu_counter_fini(&s.got);
    tu_counter_fini(&s.started);
}

/* ---- calls racing with close ------------------------------------------ */

typedef struct {
    nt_node *n;
    int idx;
    long closed_seen;
    long other;
    tu_counter *running;
} racer;

static void
echo_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    nt_reply_send(r, m->data, m->len);
}

static void
nop_response(void *arg, int status, const nt_results *r)
{
    (void)arg;
    (void)status;
    (void)r;
}

static void *
race_thread(void *arg)
{
    racer *r = arg;
    char d;
    tu_counter_add(r->running, 1);
    for (long i = 0;; i++) {
        int rv;
        switch ((r->idx + i) % 4) {
        case 0:
            rv = nt_publish(r->n, "race", (uint64_t)i, "c", "x", 1);
            break;
        case 1: {
            nt_results *res = NULL;
            rv = nt_rpc(r->n, "race", (uint64_t)i, "echo", "x", 1, 5000,
                        &res);
            nt_results_free(res);
            break;
        }
        case 2:
            rv = nt_subscribe(r->n, "race", NT_MATCH_ALL, "c", nop_sink, &d);
            if (rv == NT_OK || rv == NT_EEXIST) {
                rv = nt_unsubscribe_all(r->n, &d);
                rv = rv == NT_ENOENT ? NT_OK : rv;
            }
            break;
        default:
            rv = nt_rpc_call(r->n, "race", (uint64_t)i, "echo", NULL, 0,
                             1000, nop_response, NULL);
            break;
        }
        if (rv == NT_ECLOSED) {
            r->closed_seen++;
            /* Keep calling a little after close: must stay safe. */
            if (r->closed_seen > 100) {
                break;
            }
        } else if (rv != NT_OK && rv != NT_EAGAIN && rv != NT_ENOTARGET) {
            r->other++;
        }
    }
    return NULL;
}

static void
test_calls_racing_with_close(void)
{
    for (int round = 0; round < 5; round++) {
        nt_node *n = open_node(2, 1024);
        tu_counter running;
        tu_counter_init(&running);
        char sub;
        CU_ASSERT_EQUAL(nt_subscribe(n, "race", NT_MATCH_ALL, "c", nop_sink,
                                     &sub), NT_OK);
        CU_ASSERT_EQUAL(nt_rpc_register(n, "race", NT_MATCH_ALL, "echo",
                                        echo_handler, &sub), NT_OK);
        racer rs[6];
        pthread_t th[6];
        for (int i = 0; i < 6; i++) {
            rs[i] = (racer){ n, i, 0, 0, &running };
            pthread_create(&th[i], NULL, race_thread, &rs[i]);
        }
        tu_counter_wait(&running, 6, 10000);
        CU_ASSERT_EQUAL(nt_node_close(n, 100), NT_OK);
        for (int i = 0; i < 6; i++) {
            pthread_join(th[i], NULL);
            CU_ASSERT(rs[i].closed_seen > 0);
            CU_ASSERT_EQUAL(rs[i].other, 0);
        }
        tu_counter_fini(&running);
    }
}

static void
close_from_handler(void *dest, const nt_msg *m)
{
    (void)m;
    nt_node *n = *(nt_node **)dest;
    int rv = nt_node_close(n, 0);
    tu_counter_add((tu_counter *)((nt_node **)dest + 1), rv == NT_EINVAL);
}

static void
test_close_from_handler_refused(void)
{
    struct {
        nt_node *n;
        tu_counter c;
    } st;
    st.n = open_node(2, 64);
    tu_counter_init(&st.c);
    CU_ASSERT_EQUAL(nt_subscribe(st.n, "x", NT_MATCH_ALL, "c",
                                 close_from_handler, &st), NT_OK);
    CU_ASSERT_EQUAL(nt_publish(st.n, "x", 1, "c", NULL, 0), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&st.c, 1, 10000), 1);
    CU_ASSERT_EQUAL(nt_node_close(st.n, 1000), NT_OK);
    tu_counter_fini(&st.c);
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_open_errors),
        NT_TEST(test_registration_limit),
        NT_TEST(test_single_node_cluster),
        NT_TEST(test_publisher_serves_nothing),
        NT_TEST(test_concurrent_publish_and_register),
        NT_TEST(test_close_with_work_in_flight),
        NT_TEST(test_close_drains_within_timeout),
        NT_TEST(test_calls_racing_with_close),
        NT_TEST(test_close_from_handler_refused),
        NT_TESTS_END,
    };
    return nt_run_suite("node", NULL, NULL, tests);
}
