/* SPDX-License-Identifier: MIT */
/*
 * bench_nats: the NATS baselines (nats-server 2.9 and libnats 3.4 from
 * Debian), a brokered system measured the way bench_nt measures us: the
 * same payloads, every client in its own process, a nats-server started
 * for the run on a free port of 127.0.0.1.
 *
 *   bench_nats rpc-lat [--size B] [--count N]
 *       A replier process answering "bench.echo" with the request data,
 *       publishing the reply at once (natsOptions_SetSendAsap), and a
 *       requester here (natsConnection_Request, also send-asap), one
 *       request at a time.
 *   bench_nats pub [--subs K] [--size B] [--seconds S]
 *       K subscriber processes (K = 1: a plain subscription; K > 1: one
 *       queue group, NATS's load-balanced delivery, the nearest thing to
 *       our slices) and a publisher here with default buffering.
 *       Messages the subscribers receive per second.
 *   bench_nats rss-idle
 *       RSS of an idle nats-server.
 *   bench_nats rss-subs [--count N]
 *       RSS growth of nats-server when one client holds N subscriptions
 *       on distinct subjects.
 *
 * One "RESULT key=value ..." line per run.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    const char *mode;
    size_t size;
    unsigned count, subs;
    double seconds;
} opts;

static char url[64];
static bu_child server;

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_nats rpc-lat|pub|rss-idle|rss-subs "
        "[--size B] [--count N] [--subs K] [--seconds S]\n");
    exit(2);
}

static void
parse(int argc, char **argv, opts *o)
{
    if (argc < 2) {
        usage();
    }
    o->mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--size")) {
            o->size = strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--count")) {
            o->count = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--subs")) {
            o->subs = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--seconds")) {
            o->seconds = strtod(v, NULL);
        } else {
            usage();
        }
    }
    if (argc % 2 != 0 || o->count == 0 || o->subs == 0 || o->subs > 16
        || o->seconds <= 0) {
        usage();
    }
}

static void
check(natsStatus s, const char *what)
{
    if (s != NATS_OK) {
        bu_die("%s: %s", what, natsStatus_GetText(s));
    }
}

static natsConnection *
connect_to(int asap)
{
    natsOptions *o;
    natsConnection *nc = NULL;
    check(natsOptions_Create(&o), "options");
    check(natsOptions_SetURL(o, url), "url");
    check(natsOptions_SetSendAsap(o, asap), "send asap");
    check(natsOptions_SetAllowReconnect(o, false), "reconnect");
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    return s == NATS_OK ? nc : NULL;
}

/* Starts nats-server on a free port and waits until it accepts
 * connections (a plain TCP probe: this process must start no libnats
 * thread before it forks its clients). */
static void
start_server(void)
{
    char port[16];
    int p = bu_free_port();
    snprintf(port, sizeof(port), "%d", p);
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", p);
    char *argv[] = { "nats-server", "-a", "127.0.0.1", "-p", port, NULL };
    if (bu_exec(&server, argv, NULL) != 0 || bu_wait_tcp(p, 10000) != 0) {
        bu_die("nats-server did not start");
    }
}

static void
start_child(bu_child *c, bu_child_fn fn, void *arg)
{
    char line[128];
    if (bu_fork(c, fn, arg) != 0) {
        bu_die("fork failed");
    }
    if (bu_expect(c, "READY", line, sizeof(line), 20000) != 0) {
        bu_die("client process did not start");
    }
}

/* ---- Request/reply ---------------------------------------------------- */

static void
on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)sub;
    (void)arg;
    natsConnection_Publish(
        nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

static int
replier(void *arg, FILE *in, FILE *out)
{
    (void)arg;
    char line[64];
    natsConnection *nc = connect_to(1);
    natsSubscription *sub = NULL;
    if (nc == NULL) {
        bu_die("replier: cannot connect");
    }
    check(natsConnection_Subscribe(&sub, nc, "bench.echo", on_request, NULL),
        "subscribe");
    check(natsConnection_Flush(nc), "flush");
    fprintf(out, "READY\n");
    while (fgets(line, sizeof(line), in) != NULL) { }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    return 0;
}

static int
rpc_lat(const opts *o)
{
    bu_child rep;
    start_server();
    start_child(&rep, replier, NULL);
    natsConnection *nc = connect_to(1);
    if (nc == NULL) {
        bu_die("requester: cannot connect");
    }
    char *payload = calloc(1, o->size + 1);
    uint64_t *lat = calloc(o->count, sizeof(*lat));
    if (payload == NULL || lat == NULL) {
        bu_die("out of memory");
    }
    memset(payload, 'p', o->size);
    unsigned warm = o->count / 10 + 100, errors = 0;
    for (unsigned i = 0; i < warm + o->count; i++) {
        natsMsg *r = NULL;
        uint64_t t = bu_now_ns();
        natsStatus s = natsConnection_Request(
            &r, nc, "bench.echo", payload, (int)o->size, 5000);
        uint64_t dt = bu_now_ns() - t;
        if (s != NATS_OK || (size_t)natsMsg_GetDataLength(r) != o->size) {
            errors++;
        }
        natsMsg_Destroy(r);
        if (i >= warm) {
            lat[i - warm] = dt;
        }
    }
    double mean = 0;
    for (unsigned i = 0; i < o->count; i++) {
        mean += (double)lat[i];
    }
    mean /= o->count;
    uint64_t p99 = bu_pct(lat, o->count, 99);
    uint64_t p50 = bu_pct(lat, o->count, 50);
    printf("RESULT impl=nats test=rpc-lat size=%zu n=%u p50_us=%.1f "
           "p99_us=%.1f mean_us=%.1f errors=%u\n",
        o->size, o->count, (double)p50 / 1e3, (double)p99 / 1e3, mean / 1e3,
        errors);
    natsConnection_Destroy(nc);
    bu_stop(&rep, 5000);
    bu_term(&server, 5000);
    free(payload);
    free(lat);
    return errors ? 1 : 0;
}

/* ---- Publish/subscribe ------------------------------------------------ */

static atomic_ulong got;

static void
on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void)nc;
    (void)sub;
    (void)arg;
    atomic_fetch_add_explicit(&got, 1, memory_order_relaxed);
    natsMsg_Destroy(m);
}

static int
subscriber(void *arg, FILE *in, FILE *out)
{
    int queue = *(const int *)arg;
    char line[64];
    natsConnection *nc = connect_to(0);
    natsSubscription *sub = NULL;
    if (nc == NULL) {
        bu_die("subscriber: cannot connect");
    }
    if (queue) {
        check(natsConnection_QueueSubscribe(
                  &sub, nc, "bench.pub", "q", on_msg, NULL),
            "queue subscribe");
    } else {
        check(natsConnection_Subscribe(&sub, nc, "bench.pub", on_msg, NULL),
            "subscribe");
    }
    check(
        natsSubscription_SetPendingLimits(sub, 1000000, 512 << 20), "limits");
    check(natsConnection_Flush(nc), "flush");
    fprintf(out, "READY\n");
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strncmp(line, "count", 5) == 0) {
            int64_t dropped = 0;
            natsSubscription_GetDropped(sub, &dropped);
            fprintf(out, "count %lu %llu %lld\n", atomic_load(&got),
                (unsigned long long)bu_now_ns(), (long long)dropped);
        }
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    return 0;
}

typedef struct {
    natsConnection *nc;
    size_t size;
    atomic_int stop;
    atomic_ulong sent;
    unsigned long errors;
} publisher;

static void *
pub_thread(void *arg)
{
    publisher *p = arg;
    char *payload = calloc(1, p->size + 1);
    if (payload == NULL) {
        return NULL;
    }
    memset(payload, 'n', p->size);
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        if (natsConnection_Publish(p->nc, "bench.pub", payload, (int)p->size)
            == NATS_OK) {
            atomic_fetch_add_explicit(&p->sent, 1, memory_order_relaxed);
        } else {
            p->errors++;
            bu_sleep_us(1000);
        }
    }
    natsConnection_Flush(p->nc);
    free(payload);
    return NULL;
}

static void
snapshot(bu_child *c, unsigned k, unsigned long *cnt, uint64_t *at,
    long long *drops)
{
    char line[128];
    for (unsigned i = 0; i < k; i++) {
        unsigned long long n, t;
        long long d;
        if (bu_send(&c[i], "count") != 0
            || bu_expect(&c[i], "count ", line, sizeof(line), 10000) != 0
            || sscanf(line, "count %llu %llu %lld", &n, &t, &d) != 3) {
            bu_die("subscriber %u does not answer", i);
        }
        cnt[i] = (unsigned long)n;
        at[i] = (uint64_t)t;
        drops[i] = d;
    }
}

static int
pub(const opts *o)
{
    unsigned k = o->subs;
    int queue = k > 1;
    bu_child c[16];
    start_server();
    for (unsigned i = 0; i < k; i++) {
        start_child(&c[i], subscriber, &queue);
    }
    publisher p = { .size = o->size };
    p.nc = connect_to(0);
    if (p.nc == NULL) {
        bu_die("publisher: cannot connect");
    }
    pthread_t th;
    if (pthread_create(&th, NULL, pub_thread, &p) != 0) {
        bu_die("pthread_create");
    }
    unsigned long c0[16], c1[16];
    uint64_t a0[16], a1[16];
    long long d0[16], d1[16];
    bu_sleep_us(500000);
    snapshot(c, k, c0, a0, d0);
    bu_sleep_us((uint64_t)(o->seconds * 1e6));
    snapshot(c, k, c1, a1, d1);
    atomic_store(&p.stop, 1);
    pthread_join(th, NULL);
    double rate = 0;
    long long dropped = 0;
    for (unsigned i = 0; i < k; i++) {
        rate += (double)(c1[i] - c0[i]) / ((double)(a1[i] - a0[i]) / 1e9);
        dropped += d1[i] - d0[i];
    }
    printf("RESULT impl=nats test=pub subs=%u size=%zu rate=%.0f "
           "dropped=%lld errors=%lu\n",
        k, o->size, rate, dropped, p.errors);
    natsConnection_Destroy(p.nc);
    for (unsigned i = 0; i < k; i++) {
        bu_stop(&c[i], 5000);
    }
    bu_term(&server, 5000);
    return 0;
}

/* ---- Memory ----------------------------------------------------------- */

static int
rss_idle(void)
{
    start_server();
    bu_sleep_us(1000000);
    long kb = bu_rss_kb(server.pid);
    printf("RESULT impl=nats test=rss-idle rss_kb=%ld\n", kb);
    bu_term(&server, 5000);
    return kb > 0 ? 0 : 1;
}

static int
rss_subs(const opts *o)
{
    start_server();
    natsConnection *nc = connect_to(0);
    if (nc == NULL) {
        bu_die("cannot connect");
    }
    check(natsConnection_Flush(nc), "flush");
    bu_sleep_us(500000);
    long before = bu_rss_kb(server.pid);
    natsSubscription **subs = calloc(o->count, sizeof(*subs));
    if (subs == NULL) {
        bu_die("out of memory");
    }
    char subj[64];
    for (unsigned i = 0; i < o->count; i++) {
        snprintf(subj, sizeof(subj), "r.n%u.%u", i % 4, i);
        check(natsConnection_SubscribeSync(&subs[i], nc, subj), "subscribe");
    }
    check(natsConnection_FlushTimeout(nc, 60000), "flush");
    bu_sleep_us(500000);
    long after = bu_rss_kb(server.pid);
    printf("RESULT impl=nats test=rss-subs subs=%u rss_before_kb=%ld "
           "rss_after_kb=%ld growth_per_100k_kb=%.0f\n",
        o->count, before, after,
        (double)(after - before) * 100000.0 / o->count);
    for (unsigned i = 0; i < o->count; i++) {
        natsSubscription_Destroy(subs[i]);
    }
    free(subs);
    natsConnection_Destroy(nc);
    bu_term(&server, 5000);
    return 0;
}

int
main(int argc, char **argv)
{
    opts o = { .size = 1, .count = 10000, .subs = 1, .seconds = 2 };
    parse(argc, argv, &o);
    bu_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(o.mode, "rpc-lat")) {
        return rpc_lat(&o);
    } else if (!strcmp(o.mode, "pub")) {
        return pub(&o);
    } else if (!strcmp(o.mode, "rss-idle")) {
        return rss_idle();
    } else if (!strcmp(o.mode, "rss-subs")) {
        return rss_subs(&o);
    }
    usage();
    return 2;
}
