/* SPDX-License-Identifier: MIT */
/*
 * One-process demo of the routing model: full and weighted-slice
 * subscriptions, partitioned RPC handlers, nt_rpcs and an asynchronous
 * call, all on a single node.
 */
#include <notifier/notifier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    pthread_mutex_t mtx;
    long count;
} sink;

static void
on_order(void *dest, const nt_msg *m)
{
    sink *s = dest;
    (void)m;
    pthread_mutex_lock(&s->mtx);
    s->count++;
    pthread_mutex_unlock(&s->mtx);
}

static void
on_get(void *dest, const nt_msg *m, nt_reply *r)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "%s has key %llu",
                     (const char *)dest, (unsigned long long)m->id);
    nt_reply_send(r, buf, (size_t)n);
}

static struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    int done;
} async = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void
on_async(void *arg, int status, const nt_results *r)
{
    (void)arg;
    printf("  async callback: status=%s, %zu repl%s\n", nt_strerror(status),
           r->count, r->count == 1 ? "y" : "ies");
    pthread_mutex_lock(&async.mtx);
    async.done = 1;
    pthread_cond_signal(&async.cv);
    pthread_mutex_unlock(&async.mtx);
}

static long
get(sink *s)
{
    pthread_mutex_lock(&s->mtx);
    long v = s->count;
    pthread_mutex_unlock(&s->mtx);
    return v;
}

int
main(void)
{
    nt_config cfg;
    nt_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.workers = 4;
    nt_node *n;
    int rv = nt_node_open(&n, &cfg);
    if (rv != NT_OK) {
        fprintf(stderr, "open: %s\n", nt_strerror(rv));
        return 1;
    }
    printf("node %s open\n\n", nt_node_id(n));

    sink audit = { "audit", PTHREAD_MUTEX_INITIALIZER, 0 };
    sink wa = { "worker-a", PTHREAD_MUTEX_INITIALIZER, 0 };
    sink wb = { "worker-b", PTHREAD_MUTEX_INITIALIZER, 0 };
    nt_subscribe(n, "orders", NT_MATCH_ALL, "created", on_order, &audit);
    nt_slice(n, "orders", NT_MATCH_ALL, "created", on_order, &wa, 1.0);
    nt_slice(n, "orders", NT_MATCH_ALL, "created", on_order, &wb, 3.0);

    const long N = 10000;
    printf("publish %ld x orders/created: audit is a full subscriber,\n"
           "worker-a (weight 1) and worker-b (weight 3) are slices\n", N);
    for (long i = 0; i < N; i++) {
        while ((rv = nt_publish(n, "orders", (uint64_t)i, "created", &i,
                                sizeof(i))) == NT_EAGAIN) {
            sched_yield(); /* queue full: let the workers catch up */
        }
        if (rv != NT_OK) {
            fprintf(stderr, "publish: %s\n", nt_strerror(rv));
            return 1;
        }
    }
    /* Closing drains the queues; count after the RPC part instead. */

    /* Partitioned RPC: even keys on shard-0, odd keys on shard-1. */
    static char s0[] = "shard-0", s1[] = "shard-1";
    nt_rpc_register(n, "kv", (nt_match){ 1, 0 }, "get", on_get, s0);
    nt_rpc_register(n, "kv", (nt_match){ 1, 1 }, "get", on_get, s1);
    printf("\nrpc kv/get, partitioned by mask 1:\n");
    uint64_t ids[] = { nt_id_hash("user:42"), nt_id_hash("user:7"), 10, 11 };
    nt_results *out[4];
    rv = nt_rpcs(n, "kv", ids, 4, "get", NULL, 0, 2000, out);
    for (int i = 0; i < 4 && rv == NT_OK; i++) {
        printf("  id %-20llu -> %.*s\n", (unsigned long long)ids[i],
               (int)out[i]->items[0].len,
               (const char *)out[i]->items[0].data);
        nt_results_free(out[i]);
    }
    nt_results *res;
    rv = nt_rpc(n, "nobody", 1, "get", NULL, 0, -1, &res);
    printf("  rpc to an object nobody serves: %s (at once)\n",
           nt_strerror(rv));
    nt_rpc_call(n, "kv", 3, "get", NULL, 0, 2000, on_async, NULL);
    pthread_mutex_lock(&async.mtx);
    while (!async.done) {
        pthread_cond_wait(&async.cv, &async.mtx);
    }
    pthread_mutex_unlock(&async.mtx);

    nt_node_close(n, 5000);
    printf("\nnotifications delivered: audit=%ld worker-a=%ld worker-b=%ld"
           " (a:b = 1:%.2f)\n", get(&audit), get(&wa), get(&wb),
           get(&wa) ? (double)get(&wb) / (double)get(&wa) : 0.0);
    return get(&audit) == N && get(&wa) + get(&wb) == N ? 0 : 1;
}
