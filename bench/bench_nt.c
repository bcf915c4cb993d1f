/* SPDX-License-Identifier: MIT */
/*
 * bench_nt: the notifier side of the benchmarks, on the public API only,
 * every node in its own process on 127.0.0.1.
 *
 *   bench_nt rpc-lat  [--size B] [--count N]
 *       A server process (RPC "bench"/"echo" answering with the request)
 *       and a client node in this process; N synchronous nt_rpc calls one
 *       at a time; p50/p99/mean of the round trip.
 *   bench_nt rpc-tput [--size B] [--window W] [--seconds S]
 *       The same pair; nt_rpc_call keeps W calls in flight (each callback
 *       starts the next call); completed calls per second.
 *   bench_nt pub [--subs K] [--size B] [--seconds S]
 *       K subscriber processes (K = 1: one full subscription; K > 1:
 *       weighted slices 1, 2, ..., K) and a publisher node in this
 *       process publishing as fast as it can (NT_EAGAIN: back off and
 *       retry); notifications the subscribers receive per second.
 *   bench_nt rss-idle
 *       RSS of one idle node process (no peer, no registration).
 *   bench_nt rss-regs [--nodes K] [--per-node R]
 *       K node processes; each registers R subscriptions; RSS growth once
 *       every node holds all K*R registrations.
 *
 * Each run prints one "RESULT key=value ..." line (see util.h).  Rates
 * are measured after a warm-up, over a window timed by the processes
 * that count.
 */
#include <notifier/notifier.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ntnode.h"
#include "util.h"

typedef struct {
    const char *mode;
    size_t size;
    unsigned count;
    unsigned window;
    double seconds;
    unsigned subs;
    unsigned nodes;
    unsigned per_node;
} opts;

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_nt rpc-lat|rpc-tput|pub|rss-idle|rss-regs "
        "[--size B] [--count N] [--window W]\n"
        "                [--seconds S] [--subs K] [--nodes K] "
        "[--per-node R]\n");
    exit(2);
}

static void
parse(int argc, char **argv, opts *o)
{
    if (argc < 2) {
        usage();
    }
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            usage();
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--size")) {
            o->size = strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--count")) {
            o->count = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--window")) {
            o->window = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--seconds")) {
            o->seconds = strtod(v, NULL);
        } else if (!strcmp(a, "--subs")) {
            o->subs = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--nodes")) {
            o->nodes = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--per-node")) {
            o->per_node = (unsigned)strtoul(v, NULL, 10);
        } else {
            usage();
        }
    }
    if (o->window == 0 || o->count == 0 || o->seconds <= 0 || o->subs == 0
        || o->subs > 16 || o->nodes == 0 || o->nodes > 64) {
        usage();
    }
}

/* Forks a node process and returns its address (static storage per
 * call site is the caller's business: copied into addr). */
static void
start_node(bu_child *c, ntn_args *a, char *addr, size_t cap)
{
    char line[256];
    if (bu_fork(c, ntn_main, a) != 0) {
        bu_die("fork failed");
    }
    if (bu_expect(c, "READY ", line, sizeof(line), 20000) != 0) {
        bu_die("node process did not start");
    }
    bu_copy(addr, cap, line + 6);
}

static nt_node *
open_member(const char *seed)
{
    const char *smap[] = { seed, NULL };
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = smap;
    c.key = bu_key();
    nt_node *n;
    int rv = nt_node_open(&n, &c);
    if (rv != NT_OK) {
        bu_die("open: %s", nt_strerror(rv));
    }
    return n;
}

/* Waits until "bench"/"echo" is routable from n (bounded). */
static void
wait_rpc_route(nt_node *n)
{
    uint64_t deadline = bu_now_ns() + 30000000000ull;
    for (;;) {
        nt_results *res = NULL;
        int rv = nt_rpc(n, "bench", 1, "echo", "x", 1, 2000, &res);
        if (rv == NT_OK && res->count == 1 && res->items[0].status == NT_OK) {
            nt_results_free(res);
            return;
        }
        nt_results_free(res);
        if (bu_now_ns() > deadline) {
            bu_die("the echo service never became reachable (%s)",
                nt_strerror(rv));
        }
        bu_sleep_us(2000);
    }
}

/* ---- RPC latency ------------------------------------------------------ */

static int
rpc_lat(const opts *o)
{
    bu_child srv;
    ntn_args sa = { .role = NTN_ECHO };
    char addr[128];
    start_node(&srv, &sa, addr, sizeof(addr));
    nt_node *n = open_member(addr);
    wait_rpc_route(n);

    unsigned char *payload = calloc(1, o->size + 1);
    uint64_t *lat = calloc(o->count, sizeof(*lat));
    if (payload == NULL || lat == NULL) {
        bu_die("out of memory");
    }
    memset(payload, 'p', o->size);
    unsigned warm = o->count / 10 + 100, errors = 0;
    for (unsigned i = 0; i < warm + o->count; i++) {
        nt_results *res = NULL;
        uint64_t t = bu_now_ns();
        int rv = nt_rpc(n, "bench", i, "echo", payload, o->size, 5000, &res);
        uint64_t dt = bu_now_ns() - t;
        if (rv != NT_OK || res->count != 1 || res->items[0].status != NT_OK
            || res->items[0].len != o->size) {
            errors++;
        }
        nt_results_free(res);
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
    printf("RESULT impl=nt test=rpc-lat size=%zu n=%u p50_us=%.1f "
           "p99_us=%.1f mean_us=%.1f errors=%u\n",
        o->size, o->count, (double)p50 / 1e3, (double)p99 / 1e3, mean / 1e3,
        errors);
    nt_node_close(n, 1000);
    bu_stop(&srv, 5000);
    free(payload);
    free(lat);
    return errors ? 1 : 0;
}

/* ---- RPC throughput --------------------------------------------------- */

/* A stat of n by name from its JSON stats, or -1. */
static double
stat_num(nt_node *n, const char *name)
{
    char *js = NULL;
    if (nt_node_info(n, "stats", NT_INFO_JSON, 5000, &js) != NT_OK) {
        return -1;
    }
    char pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *at = strstr(js, pat);
    double v = at ? strtod(at + strlen(pat), NULL) : -1;
    nt_free(js);
    return v;
}

static double
stat_ratio(nt_node *n, const char *num, const char *den)
{
    double a = stat_num(n, num), b = stat_num(n, den);
    return a >= 0 && b > 0 ? a / b : 0;
}

typedef struct {
    nt_node *n;
    const unsigned char *payload;
    size_t size;
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    unsigned inflight; /* guarded by mtx */
    atomic_ulong done, errors;
    atomic_int stop;
    atomic_ulong seq;
} tput;

static void on_reply(void *arg, int status, const nt_results *r);

static int
tput_issue(tput *t)
{
    unsigned long id = atomic_fetch_add(&t->seq, 1);
    return nt_rpc_call(
        t->n, "bench", id, "echo", t->payload, t->size, 5000, on_reply, t);
}

static void
on_reply(void *arg, int status, const nt_results *r)
{
    tput *t = arg;
    if (status == NT_OK && r->count == 1 && r->items[0].status == NT_OK
        && r->items[0].len == t->size) {
        atomic_fetch_add_explicit(&t->done, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add(&t->errors, 1);
    }
    /* Keep the window full from here; the main thread refills only what
     * failed to start. */
    if (!atomic_load(&t->stop) && tput_issue(t) == NT_OK) {
        return;
    }
    pthread_mutex_lock(&t->mtx);
    t->inflight--;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mtx);
}

static int
rpc_tput(const opts *o)
{
    bu_child srv;
    ntn_args sa = { .role = NTN_ECHO };
    char addr[128];
    start_node(&srv, &sa, addr, sizeof(addr));
    nt_node *n = open_member(addr);
    wait_rpc_route(n);

    unsigned char *payload = calloc(1, o->size + 1);
    if (payload == NULL) {
        bu_die("out of memory");
    }
    memset(payload, 'p', o->size);
    tput t = { .n = n, .payload = payload, .size = o->size };
    pthread_mutex_init(&t.mtx, NULL);
    pthread_cond_init(&t.cv, NULL);

    uint64_t start = bu_now_ns();
    uint64_t t0 = start + 500000000ull;
    uint64_t t1 = t0 + (uint64_t)(o->seconds * 1e9);
    unsigned long c0 = 0, c1 = 0, eagain = 0;
    int have0 = 0;
    pthread_mutex_lock(&t.mtx);
    for (;;) {
        uint64_t now = bu_now_ns();
        if (!have0 && now >= t0) {
            c0 = atomic_load(&t.done);
            t0 = now;
            have0 = 1;
        }
        if (now >= t1) {
            c1 = atomic_load(&t.done);
            t1 = now;
            break;
        }
        if (t.inflight < o->window) {
            t.inflight++;
            pthread_mutex_unlock(&t.mtx);
            int rv = tput_issue(&t);
            pthread_mutex_lock(&t.mtx);
            if (rv != NT_OK) {
                t.inflight--;
                eagain += rv == NT_EAGAIN;
                if (rv != NT_EAGAIN) {
                    atomic_fetch_add(&t.errors, 1);
                }
                pthread_mutex_unlock(&t.mtx);
                bu_sleep_us(100);
                pthread_mutex_lock(&t.mtx);
            }
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&t.cv, &t.mtx, &ts);
    }
    atomic_store(&t.stop, 1);
    uint64_t drain = bu_now_ns() + 10000000000ull;
    while (t.inflight > 0 && bu_now_ns() < drain) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&t.cv, &t.mtx, &ts);
    }
    unsigned left = t.inflight;
    pthread_mutex_unlock(&t.mtx);
    double rate = (double)(c1 - c0) / ((double)(t1 - t0) / 1e9);
    /* How well calls were batched: call items per CALLS frame. */
    double per_frame = stat_ratio(n, "calls_sent", "call_frames_sent");
    printf("RESULT impl=nt test=rpc-tput size=%zu window=%u rate=%.0f "
           "errors=%lu eagain=%lu undrained=%u calls_per_frame=%.1f\n",
        o->size, o->window, rate, atomic_load(&t.errors), eagain, left,
        per_frame);
    nt_node_close(n, 2000);
    bu_stop(&srv, 5000);
    free(payload);
    return atomic_load(&t.errors) ? 1 : 0;
}

/* ---- Notifications ---------------------------------------------------- */

typedef struct {
    nt_node *n;
    size_t size;
    atomic_int stop;
    atomic_ulong sent;
    unsigned long eagain, errors;
} publisher;

static void *
pub_thread(void *arg)
{
    publisher *p = arg;
    unsigned char *payload = calloc(1, p->size + 1);
    if (payload == NULL) {
        return NULL;
    }
    memset(payload, 'n', p->size);
    uint64_t id = 0;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        int rv = nt_publish(p->n, "bench", id, "n", payload, p->size);
        if (rv == NT_OK) {
            atomic_fetch_add_explicit(&p->sent, 1, memory_order_relaxed);
            id++;
        } else if (rv == NT_EAGAIN) {
            p->eagain++;
            bu_sleep_us(50);
        } else {
            p->errors++;
            bu_sleep_us(1000);
        }
    }
    free(payload);
    return NULL;
}

/* Sum of the subscribers' counts and, per child, count and time. */
static void
snapshot(bu_child *subs, unsigned k, unsigned long *cnt, uint64_t *at)
{
    char line[128];
    for (unsigned i = 0; i < k; i++) {
        if (bu_send(&subs[i], "count") != 0
            || bu_expect(&subs[i], "count ", line, sizeof(line), 10000) != 0) {
            bu_die("subscriber %u does not answer", i);
        }
        unsigned long long c, t;
        if (sscanf(line, "count %llu %llu", &c, &t) != 2) {
            bu_die("bad count line '%s'", line);
        }
        cnt[i] = (unsigned long)c;
        at[i] = (uint64_t)t;
    }
}

static int
pub(const opts *o)
{
    unsigned k = o->subs;
    bu_child subs[16];
    ntn_args sa[16];
    char seed[128], addr[128];
    for (unsigned i = 0; i < k; i++) {
        memset(&sa[i], 0, sizeof(sa[i]));
        sa[i].role = k == 1 ? NTN_SUB : NTN_SLICE;
        sa[i].weight = (double)(i + 1);
        sa[i].seeds[0] = i > 0 ? seed : NULL;
        start_node(&subs[i], &sa[i], i == 0 ? seed : addr, sizeof(addr));
    }
    nt_node *n = open_member(seed);
    int rv = nt_node_wait_members(n, k + 1, 30000);
    if (rv == NT_OK) {
        rv = nt_node_wait_converged(n, 30000);
    }
    if (rv != NT_OK) {
        bu_die("cluster did not form: %s", nt_strerror(rv));
    }

    publisher p = { .n = n, .size = o->size };
    pthread_t th;
    if (pthread_create(&th, NULL, pub_thread, &p) != 0) {
        bu_die("pthread_create");
    }
    unsigned long c0[16], c1[16];
    uint64_t a0[16], a1[16];
    bu_sleep_us(500000);
    snapshot(subs, k, c0, a0);
    unsigned long s0 = atomic_load(&p.sent);
    uint64_t ps0 = bu_now_ns();
    bu_sleep_us((uint64_t)(o->seconds * 1e6));
    snapshot(subs, k, c1, a1);
    unsigned long s1 = atomic_load(&p.sent);
    uint64_t ps1 = bu_now_ns();
    atomic_store(&p.stop, 1);
    pthread_join(th, NULL);

    double rate = 0, total = 0;
    char split[256] = "";
    for (unsigned i = 0; i < k; i++) {
        rate += (double)(c1[i] - c0[i]) / ((double)(a1[i] - a0[i]) / 1e9);
        total += (double)(c1[i] - c0[i]);
    }
    for (unsigned i = 0; i < k && k > 1; i++) {
        size_t len = strlen(split);
        snprintf(split + len, sizeof(split) - len, "%s%.3f", i ? "/" : "",
            total > 0 ? (double)(c1[i] - c0[i]) / total : 0.0);
    }
    double prate = (double)(s1 - s0) / ((double)(ps1 - ps0) / 1e9);
    /* Frames out are almost all NOTIFY batches (gossip is a few a
     * second). */
    double per_frame = stat_ratio(n, "notify_sent", "frames_out");
    double ahead = stat_ratio(n, "notify_batches_sealed_ahead", "frames_out");
    printf("RESULT impl=nt test=pub subs=%u size=%zu rate=%.0f "
           "pub_rate=%.0f eagain=%lu errors=%lu split=%s "
           "items_per_frame=%.0f sealed_ahead=%.2f\n",
        k, o->size, rate, prate, p.eagain, p.errors, k > 1 ? split : "-",
        per_frame, ahead);
    nt_node_close(n, 2000);
    for (unsigned i = 0; i < k; i++) {
        bu_close_input(&subs[i]);
    }
    for (unsigned i = 0; i < k; i++) {
        bu_stop(&subs[i], 5000);
    }
    return p.errors ? 1 : 0;
}

/* ---- Memory ----------------------------------------------------------- */

static int
rss_idle(void)
{
    bu_child c;
    ntn_args a = { .role = NTN_IDLE };
    char addr[128];
    start_node(&c, &a, addr, sizeof(addr));
    bu_sleep_us(1000000);
    long kb = bu_rss_kb(c.pid);
    printf("RESULT impl=nt test=rss-idle rss_kb=%ld\n", kb);
    bu_stop(&c, 5000);
    return kb > 0 ? 0 : 1;
}

static long long ask(bu_child *c, const char *prefix, int timeout_ms,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sends a command, waits for the reply line starting with prefix and
 * returns its first number. */
static long long
ask(bu_child *c, const char *prefix, int timeout_ms, const char *fmt, ...)
{
    char cmd[256], line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (bu_send(c, "%s", cmd) != 0
        || bu_expect(c, prefix, line, sizeof(line), timeout_ms) != 0) {
        bu_die("no answer to '%s'", cmd);
    }
    return strtoll(line + strlen(prefix), NULL, 10);
}

static int
rss_regs(const opts *o)
{
    unsigned k = o->nodes;
    bu_child c[64];
    ntn_args a[64];
    char seed[128], addr[128];
    for (unsigned i = 0; i < k; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].role = NTN_IDLE;
        a[i].seeds[0] = i > 0 ? seed : NULL;
        start_node(&c[i], &a[i], i == 0 ? seed : addr, sizeof(addr));
    }
    for (unsigned i = 0; i < k; i++) {
        if (ask(&c[i], "ok ", 60000, "members %u 30000", k) != 0) {
            bu_die("node %u: members", i);
        }
    }
    for (unsigned i = 0; i < k; i++) {
        if (ask(&c[i], "ok ", 60000, "converged 30000") != 0) {
            bu_die("node %u: not converged", i);
        }
    }
    bu_sleep_us(500000);
    long before = 0, after = 0;
    for (unsigned i = 0; i < k; i++) {
        before += bu_rss_kb(c[i].pid);
    }
    uint64_t t = bu_now_ns();
    for (unsigned i = 0; i < k; i++) {
        bu_send(&c[i], "regs %u n%u", o->per_node, i);
    }
    for (unsigned i = 0; i < k; i++) {
        char line[128];
        if (bu_expect(&c[i], "ok ", line, sizeof(line), 300000) != 0
            || strtol(line + 3, NULL, 10) != 0) {
            bu_die("node %u: registrations failed", i);
        }
    }
    uint64_t treg = bu_now_ns();
    long long want = (long long)k * o->per_node, have = 0;
    uint64_t deadline = bu_now_ns() + 300000000000ull;
    for (unsigned i = 0; i < k; i++) {
        for (;;) {
            have = ask(&c[i], "stat ", 10000, "stat registrations");
            if (have >= want || bu_now_ns() > deadline) {
                break;
            }
            bu_sleep_us(50000);
        }
    }
    for (unsigned i = 0; i < k; i++) {
        ask(&c[i], "ok ", 120000, "converged 60000");
    }
    uint64_t tconv = bu_now_ns();
    bu_sleep_us(500000);
    for (unsigned i = 0; i < k; i++) {
        after += bu_rss_kb(c[i].pid);
    }
    double per100k = (double)(after - before) * 100000.0 / (double)want;
    printf("RESULT impl=nt test=rss-regs nodes=%u regs=%lld "
           "rss_before_kb=%ld rss_after_kb=%ld growth_kb=%ld "
           "growth_per_node_per_100k_kb=%.0f "
           "growth_total_per_100k_kb=%.0f register_s=%.2f "
           "spread_s=%.2f complete=%d\n",
        k, want, before, after, after - before, per100k / k, per100k,
        (double)(treg - t) / 1e9, (double)(tconv - treg) / 1e9, have >= want);
    /* SIGKILL, not a graceful close: 4 nodes leaving at once with large
     * tables is not what this measures (and nng 1.5.2 may hang in
     * nng_close then, see docs/PERFORMANCE.md). */
    for (unsigned i = 0; i < k; i++) {
        bu_kill(&c[i]);
    }
    return have >= want ? 0 : 1;
}

int
main(int argc, char **argv)
{
    opts o = { .size = 1,
        .count = 10000,
        .window = 64,
        .seconds = 2,
        .subs = 1,
        .nodes = 4,
        .per_node = 25000 };
    parse(argc, argv, &o);
    bu_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(o.mode, "rpc-lat")) {
        return rpc_lat(&o);
    } else if (!strcmp(o.mode, "rpc-tput")) {
        return rpc_tput(&o);
    } else if (!strcmp(o.mode, "pub")) {
        return pub(&o);
    } else if (!strcmp(o.mode, "rss-idle")) {
        return rss_idle();
    } else if (!strcmp(o.mode, "rss-regs")) {
        return rss_regs(&o);
    }
    usage();
    return 2;
}
