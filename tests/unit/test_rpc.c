/* SPDX-License-Identifier: MIT */
/*
 * RPC semantics on one node: fan-out, ordering, deferred replies, errors,
 * timeouts, nt_rpcs, nt_rpc_call and close.
 */
#include "notifier/notifier.h"
#include "testutil.h"

static nt_node *node;

static int
setup(void)
{
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.workers = 4;
    c.seed = 7;
    return nt_node_open(&node, &c) == NT_OK ? 0 : 1;
}

static int
teardown(void)
{
    return nt_node_close(node, 1000) == NT_OK ? 0 : 1;
}

/* Replies "<tag>:<payload>". */
static void
tag_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s:%.*s", (const char *)dest,
                     (int)m->len, (const char *)m->data);
    CU_ASSERT_EQUAL(nt_reply_send(r, buf, (size_t)n), NT_OK);
}

static bool
item_is(const nt_result *it, const char *s)
{
    return it->status == NT_OK && it->len == strlen(s) &&
           memcmp(it->data, s, it->len) == 0;
}

static void
test_fanout_ordered(void)
{
    static char a[] = "a", b[] = "b", c[] = "c";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "svc", NT_MATCH_ALL, "get",
                                    tag_handler, a), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_register(node, "svc", (nt_match){ 1, 1 }, "get",
                                    tag_handler, b), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_register(node, "svc", NT_MATCH_ALL, "get",
                                    tag_handler, c), NT_OK);
    for (int round = 0; round < 50; round++) {
        nt_results *res = NULL;
        CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "svc", 3, "get", "x", 1, 5000,
                                     &res), NT_OK);
        CU_ASSERT_EQUAL_FATAL(res->count, 3);
        /* Results follow registration order, whoever answers first. */
        CU_ASSERT(item_is(&res->items[0], "a:x"));
        CU_ASSERT(item_is(&res->items[1], "b:x"));
        CU_ASSERT(item_is(&res->items[2], "c:x"));
        CU_ASSERT_STRING_EQUAL(res->items[0].node, nt_node_id(node));
        nt_results_free(res);
    }
    nt_results *res = NULL;
    CU_ASSERT_EQUAL(nt_rpc(node, "svc", 2, "get", NULL, 0, 5000, &res),
                    NT_OK);
    CU_ASSERT_EQUAL(res->count, 2);
    nt_results_free(res);
    CU_ASSERT_EQUAL(nt_rpc_unregister_all(node, a), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_unregister_all(node, b), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_unregister_all(node, c), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_unregister_all(node, c), NT_ENOENT);
}

static void
test_full_plus_one_slice(void)
{
    static char f[] = "f", s1[] = "s1", s2[] = "s2";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "mix", NT_MATCH_ALL, "go",
                                    tag_handler, f), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_slice(node, "mix", NT_MATCH_ALL, "go",
                                 tag_handler, s1, 1.0), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_slice(node, "mix", NT_MATCH_ALL, "go",
                                 tag_handler, s2, 1.0), NT_OK);
    int n1 = 0, n2 = 0;
    for (int i = 0; i < 400; i++) {
        nt_results *res = NULL;
        CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "mix", (uint64_t)i, "go", "", 0,
                                     5000, &res), NT_OK);
        CU_ASSERT_EQUAL_FATAL(res->count, 2);
        CU_ASSERT(item_is(&res->items[0], "f:"));
        n1 += item_is(&res->items[1], "s1:");
        n2 += item_is(&res->items[1], "s2:");
        nt_results_free(res);
    }
    CU_ASSERT_EQUAL(n1 + n2, 400);
    CU_ASSERT(n1 > 100 && n2 > 100);
    CU_ASSERT_EQUAL(nt_rpc_slice(node, "mix", NT_MATCH_ALL, "go",
                                 tag_handler, s1, 1.0), NT_EEXIST);
    CU_ASSERT_EQUAL(nt_rpc_slice(node, "mix", NT_MATCH_ALL, "x",
                                 tag_handler, s1, 0.0), NT_EINVAL);
    nt_rpc_unregister_all(node, f);
    nt_rpc_unregister_all(node, s1);
    nt_rpc_unregister_all(node, s2);
}

/* ---- deferred replies ------------------------------------------------ */

#define MAXDEF 64
static struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    nt_reply *h[MAXDEF];
    uint64_t id[MAXDEF];
    int n;
} defq = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { 0 }, { 0 },
           0 };

static void
defer_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    pthread_mutex_lock(&defq.mtx);
    defq.h[defq.n] = r;
    defq.id[defq.n] = m->id;
    defq.n++;
    pthread_cond_broadcast(&defq.cv);
    pthread_mutex_unlock(&defq.mtx);
}

/* Takes one deferred handle, waiting up to 10 s. */
static nt_reply *
defq_take(uint64_t *id)
{
    nt_reply *h = NULL;
    pthread_mutex_lock(&defq.mtx);
    uint64_t end = tu_now_ms() + 10000;
    while (defq.n == 0 && tu_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&defq.cv, &defq.mtx, &ts);
    }
    if (defq.n > 0) {
        h = defq.h[0];
        if (id != NULL) {
            *id = defq.id[0];
        }
        memmove(&defq.h[0], &defq.h[1], (size_t)(defq.n - 1) * sizeof(h));
        memmove(&defq.id[0], &defq.id[1],
                (size_t)(defq.n - 1) * sizeof(defq.id[0]));
        defq.n--;
    }
    pthread_mutex_unlock(&defq.mtx);
    return h;
}

static void *
replier_thread(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        uint64_t id = 0;
        nt_reply *h = defq_take(&id);
        if (h == NULL) {
            break;
        }
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "late-%llu",
                           (unsigned long long)id);
        CU_ASSERT_EQUAL(nt_reply_send(h, buf, (size_t)len), NT_OK);
        /* The handle is single-use. */
        CU_ASSERT_EQUAL(nt_reply_send(h, buf, (size_t)len), NT_EREPLIED);
    }
    return NULL;
}

static void
test_deferred_from_other_thread(void)
{
    static char d[] = "d";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "def", NT_MATCH_ALL, "q",
                                    defer_handler, d), NT_OK);
    pthread_t th;
    pthread_create(&th, NULL, replier_thread, (void *)(intptr_t)20);
    for (uint64_t i = 0; i < 20; i++) {
        nt_results *res = NULL;
        CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "def", i, "q", NULL, 0, 10000,
                                     &res), NT_OK);
        char want[32];
        snprintf(want, sizeof(want), "late-%llu", (unsigned long long)i);
        CU_ASSERT_EQUAL_FATAL(res->count, 1);
        CU_ASSERT(item_is(&res->items[0], want));
        nt_results_free(res);
    }
    pthread_join(th, NULL);
    nt_rpc_unregister_all(node, d);
}

static void
test_no_target_fails_at_once(void)
{
    nt_results *res = (nt_results *)&res;
    /* An infinite timeout: it must still return at once. */
    CU_ASSERT_EQUAL(nt_rpc(node, "nobody", 1, "home", "x", 1, -1, &res),
                    NT_ENOTARGET);
    CU_ASSERT_PTR_NULL(res);
    CU_ASSERT_EQUAL(nt_rpc_call(node, "nobody", 1, "home", NULL, 0, -1,
                                (nt_response_fn)abort, NULL), NT_ENOTARGET);
    CU_ASSERT_EQUAL(nt_publish(node, "nobody", 1, "home", NULL, 0),
                    NT_ENOTARGET);
}

static void
test_timeout_then_late_reply(void)
{
    static char d[] = "d";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "slow", NT_MATCH_ALL, "q",
                                    defer_handler, d), NT_OK);
    nt_results *res = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "slow", 1, "q", NULL, 0, 50, &res),
                          NT_OK);
    CU_ASSERT_EQUAL(res->count, 1);
    CU_ASSERT_EQUAL(res->items[0].status, NT_ETIMEDOUT);
    CU_ASSERT_STRING_EQUAL(res->items[0].node, nt_node_id(node));
    nt_results_free(res);
    /* The handler answers after the caller gave up: accepted, ignored. */
    nt_reply *h = defq_take(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(nt_reply_send(h, "late", 4), NT_OK);
    CU_ASSERT_EQUAL(nt_reply_error(h, 1, "again"), NT_EREPLIED);
    nt_rpc_unregister_all(node, d);
}

static void
err_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    (void)m;
    CU_ASSERT_EQUAL(nt_reply_error(r, 42, "no such thing"), NT_OK);
    /* A second answer on the same handle is refused. */
    CU_ASSERT_EQUAL(nt_reply_send(r, "x", 1), NT_EREPLIED);
    CU_ASSERT_EQUAL(nt_reply_error(r, 1, "x"), NT_EREPLIED);
}

static void
test_remote_error_and_double_reply(void)
{
    static char d[] = "d";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "err", NT_MATCH_ALL, "q",
                                    err_handler, d), NT_OK);
    nt_results *res = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "err", 1, "q", NULL, 0, 5000, &res),
                          NT_OK);
    CU_ASSERT_EQUAL(res->items[0].status, NT_EREMOTE);
    CU_ASSERT_EQUAL(res->items[0].code, 42);
    CU_ASSERT_STRING_EQUAL(res->items[0].data, "no such thing");
    CU_ASSERT_EQUAL(res->items[0].len, strlen("no such thing"));
    nt_results_free(res);
    nt_rpc_unregister_all(node, d);
}

static void
id_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)m->id);
    nt_reply_send(r, buf, (size_t)n);
}

static void
test_rpcs_in_order(void)
{
    static char d[3];
    for (int q = 0; q < 3; q++) {
        CU_ASSERT_EQUAL(nt_rpc_register(node, "part", (nt_match){ 3, (uint64_t)q },
                                        "id", id_handler, &d[q]), NT_OK);
    }
    uint64_t ids[] = { 9, 2, 3, 100, 0, 6, 7, 1 }; /* 3 and 7 have no target */
    size_t n = sizeof(ids) / sizeof(ids[0]);
    nt_results *out[8];
    CU_ASSERT_EQUAL_FATAL(nt_rpcs(node, "part", ids, n, "id", NULL, 0, 5000,
                                  out), NT_OK);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(out[i]);
        CU_ASSERT_EQUAL(out[i]->count, 1);
        if ((ids[i] & 3) == 3) {
            CU_ASSERT_EQUAL(out[i]->items[0].status, NT_ENOTARGET);
        } else {
            char want[32];
            snprintf(want, sizeof(want), "%llu", (unsigned long long)ids[i]);
            CU_ASSERT(item_is(&out[i]->items[0], want));
        }
        nt_results_free(out[i]);
    }
    uint64_t none[] = { 3, 7 };
    out[0] = out[1] = (nt_results *)out;
    CU_ASSERT_EQUAL(nt_rpcs(node, "part", none, 2, "id", NULL, 0, 5000, out),
                    NT_ENOTARGET);
    CU_ASSERT_PTR_NULL(out[0]);
    CU_ASSERT_PTR_NULL(out[1]);
    for (int q = 0; q < 3; q++) {
        nt_rpc_unregister_all(node, &d[q]);
    }
}

/* ---- asynchronous calls ---------------------------------------------- */

typedef struct {
    tu_counter calls;
    tu_counter ok;
    int bad;
} cbstate;

static void
on_response(void *arg, int status, const nt_results *r)
{
    cbstate *s = arg;
    if (status != NT_OK || r == NULL || r->count != 1 ||
        r->items[0].status != NT_OK) {
        s->bad++;
    } else {
        tu_counter_add(&s->ok, 1);
    }
    tu_counter_add(&s->calls, 1);
}

static void
test_rpc_call_callback_once(void)
{
    static char d[] = "d";
    cbstate s;
    tu_counter_init(&s.calls);
    tu_counter_init(&s.ok);
    s.bad = 0;
    CU_ASSERT_EQUAL(nt_rpc_register(node, "async", NT_MATCH_ALL, "id",
                                    id_handler, d), NT_OK);
    const int N = 500;
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        if (nt_rpc_call(node, "async", (uint64_t)i, "id", NULL, 0, 10000,
                        on_response, &s) == NT_OK) {
            accepted++;
        }
    }
    CU_ASSERT_EQUAL(accepted, N);
    CU_ASSERT_EQUAL(tu_counter_wait(&s.calls, accepted, 10000), accepted);
    CU_ASSERT_EQUAL(tu_counter_get(&s.ok), accepted);
    CU_ASSERT_EQUAL(s.bad, 0);
    /* A timed-out async call also calls back exactly once. */
    CU_ASSERT_EQUAL(nt_rpc_register(node, "async", NT_MATCH_ALL, "never",
                                    defer_handler, d), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_call(node, "async", 1, "never", NULL, 0, 30,
                                on_response, &s), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&s.calls, accepted + 1, 10000),
                    accepted + 1);
    CU_ASSERT_EQUAL(s.bad, 1);
    nt_reply *h = defq_take(NULL);
    CU_ASSERT_EQUAL(nt_reply_send(h, NULL, 0), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_get(&s.calls), accepted + 1);
    nt_rpc_unregister_all(node, d);
    tu_counter_fini(&s.calls);
    tu_counter_fini(&s.ok);
}

static void
test_bad_arguments(void)
{
    nt_results *res;
    CU_ASSERT_EQUAL(nt_rpc(node, NULL, 1, "c", NULL, 0, 10, &res), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_rpc(node, "o", 1, "", NULL, 0, 10, &res), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_rpc(node, "o", 1, "c", NULL, 5, 10, &res), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_rpc(node, "o", 1, "c", NULL, 0, 10, NULL), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_publish(node, "o", 1, NULL, NULL, 0), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_rpc_call(node, "o", 1, "c", NULL, 0, 10, NULL, NULL),
                    NT_EINVAL);
    size_t big = (1u << 20) + 1;
    char *p = calloc(1, big);
    CU_ASSERT_EQUAL(nt_publish(node, "o", 1, "c", p, big), NT_EMSGSIZE);
    CU_ASSERT_EQUAL(nt_rpc(node, "o", 1, "c", p, big, 10, &res),
                    NT_EMSGSIZE);
    free(p);
    nt_results_free(NULL);
}

static void
big_reply_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    (void)m;
    size_t big = (1u << 20) + 1;
    char *p = calloc(1, big);
    CU_ASSERT_EQUAL(nt_reply_send(r, p, big), NT_EMSGSIZE);
    free(p);
    /* Still valid after an oversized attempt. */
    CU_ASSERT_EQUAL(nt_reply_send(r, "ok", 2), NT_OK);
}

static void
test_oversized_reply(void)
{
    static char d[] = "d";
    CU_ASSERT_EQUAL(nt_rpc_register(node, "big", NT_MATCH_ALL, "q",
                                    big_reply_handler, d), NT_OK);
    nt_results *res = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_rpc(node, "big", 1, "q", NULL, 0, 5000, &res),
                          NT_OK);
    CU_ASSERT(item_is(&res->items[0], "ok"));
    nt_results_free(res);
    nt_rpc_unregister_all(node, d);
}

/* ---- close while a handler never answers ------------------------------ */

typedef struct {
    nt_node *n;
    int rv;
    tu_counter started;
} closecall;

static void
hold_handler(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)m;
    (void)r; /* never answered */
    tu_counter_add(dest, 1);
}

static void *
caller_thread(void *arg)
{
    closecall *c = arg;
    nt_results *res = NULL;
    c->rv = nt_rpc(c->n, "hold", 1, "q", NULL, 0, -1, &res);
    nt_results_free(res);
    return NULL;
}

static void
test_unanswered_call_gets_closed(void)
{
    nt_config cfg;
    nt_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.workers = 2;
    closecall c;
    tu_counter_init(&c.started);
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&c.n, &cfg), NT_OK);
    CU_ASSERT_EQUAL(nt_rpc_register(c.n, "hold", NT_MATCH_ALL, "q",
                                    hold_handler, &c.started), NT_OK);
    pthread_t th;
    pthread_create(&th, NULL, caller_thread, &c);
    CU_ASSERT_EQUAL(tu_counter_wait(&c.started, 1, 10000), 1);
    CU_ASSERT_EQUAL(nt_node_close(c.n, 100), NT_OK);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(c.rv, NT_ECLOSED);
    /* The handle stays safe: using it (or the node) now is refused. */
    CU_ASSERT_EQUAL(nt_publish(c.n, "hold", 1, "q", NULL, 0), NT_ECLOSED);
    CU_ASSERT_EQUAL(nt_node_close(c.n, 0), NT_ECLOSED);
    tu_counter_fini(&c.started);
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_fanout_ordered),
        NT_TEST(test_full_plus_one_slice),
        NT_TEST(test_deferred_from_other_thread),
        NT_TEST(test_no_target_fails_at_once),
        NT_TEST(test_timeout_then_late_reply),
        NT_TEST(test_remote_error_and_double_reply),
        NT_TEST(test_rpcs_in_order),
        NT_TEST(test_rpc_call_callback_once),
        NT_TEST(test_bad_arguments),
        NT_TEST(test_oversized_reply),
        NT_TEST(test_unanswered_call_gets_closed),
        NT_TESTS_END,
    };
    return nt_run_suite("rpc", setup, teardown, tests);
}
