/* SPDX-License-Identifier: MIT */
/*
 * bench_nng: the raw nng 1.5.2 baselines, the transport our library is
 * built on, measured the way bench_nt measures us (two or more processes
 * on 127.0.0.1 over TCP, same payloads, same windows).
 *
 *   bench_nng rpc-lat  [--size B] [--count N]
 *       rep0 server process echoing the request (64 contexts, aio), req0
 *       client in this process: nng_sendmsg + nng_recvmsg, one at a time.
 *   bench_nng rpc-tput [--size B] [--window W] [--seconds S]
 *       Same server; W req0 contexts each driven by an aio callback that
 *       sends the next request as soon as its reply is in.
 *   bench_nng push [--pulls K] [--size B] [--seconds S]
 *       K pull0 processes receiving with an aio callback and 1024-message
 *       receive buffers; one push0 socket here (1024-message send buffer)
 *       dialling all of them and sending as fast as it can.  Messages
 *       received per second, summed over the pullers.
 *
 * One "RESULT key=value ..." line per run.
 */
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SERVER_CTXS 64

typedef struct {
    const char *mode;
    size_t size;
    unsigned count, window, pulls;
    double seconds;
} opts;

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_nng rpc-lat|rpc-tput|push [--size B] "
        "[--count N] [--window W] [--seconds S] [--pulls K]\n");
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
        } else if (!strcmp(a, "--window")) {
            o->window = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--seconds")) {
            o->seconds = strtod(v, NULL);
        } else if (!strcmp(a, "--pulls")) {
            o->pulls = (unsigned)strtoul(v, NULL, 10);
        } else {
            usage();
        }
    }
    if (argc % 2 != 0 || o->count == 0 || o->window == 0 || o->seconds <= 0
        || o->pulls == 0 || o->pulls > 16) {
        usage();
    }
}

static void
check(int rv, const char *what)
{
    if (rv != 0) {
        bu_die("%s: %s", what, nng_strerror(rv));
    }
}

/* Listens on an ephemeral port; writes "tcp://127.0.0.1:PORT" to url. */
static void
listen_any(nng_socket s, char *url, size_t cap)
{
    nng_listener l;
    check(nng_listener_create(&l, s, "tcp://127.0.0.1:0"), "listener");
    check(nng_listener_start(l, 0), "listen");
    int port;
    check(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port), "port");
    snprintf(url, cap, "tcp://127.0.0.1:%d", port);
}

/* ---- Echo server (child process) -------------------------------------- */

typedef struct {
    nng_ctx ctx;
    nng_aio *aio;
    int sending;
} echo_ctx;

static void
echo_cb(void *arg)
{
    echo_ctx *e = arg;
    int rv = nng_aio_result(e->aio);
    if (e->sending) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(e->aio));
        }
        e->sending = 0;
        if (rv == NNG_ECLOSED) {
            return;
        }
        nng_ctx_recv(e->ctx, e->aio);
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED) {
            nng_ctx_recv(e->ctx, e->aio);
        }
        return;
    }
    e->sending = 1;
    nng_ctx_send(e->ctx, e->aio); /* the request message, unchanged */
}

static int
echo_server(void *arg, FILE *in, FILE *out)
{
    (void)arg;
    nng_socket s;
    char url[64], line[64];
    check(nng_rep0_open(&s), "rep0");
    static echo_ctx ctxs[SERVER_CTXS];
    for (int i = 0; i < SERVER_CTXS; i++) {
        check(nng_ctx_open(&ctxs[i].ctx, s), "ctx");
        check(nng_aio_alloc(&ctxs[i].aio, echo_cb, &ctxs[i]), "aio");
    }
    listen_any(s, url, sizeof(url));
    for (int i = 0; i < SERVER_CTXS; i++) {
        nng_ctx_recv(ctxs[i].ctx, ctxs[i].aio);
    }
    fprintf(out, "READY %s\n", url);
    while (fgets(line, sizeof(line), in) != NULL) { }
    nng_close(s);
    for (int i = 0; i < SERVER_CTXS; i++) {
        nng_aio_free(ctxs[i].aio);
    }
    return 0;
}

static void
start_child(bu_child *c, bu_child_fn fn, void *arg, char *url, size_t cap)
{
    char line[128];
    if (bu_fork(c, fn, arg) != 0) {
        bu_die("fork failed");
    }
    if (bu_expect(c, "READY ", line, sizeof(line), 20000) != 0) {
        bu_die("server process did not start");
    }
    bu_copy(url, cap, line + 6);
}

static nng_msg *
new_msg(size_t size)
{
    nng_msg *m;
    check(nng_msg_alloc(&m, size), "msg");
    memset(nng_msg_body(m), 'p', size);
    return m;
}

/* ---- RPC latency ------------------------------------------------------ */

static int
rpc_lat(const opts *o)
{
    bu_child srv;
    char url[64];
    start_child(&srv, echo_server, NULL, url, sizeof(url));
    nng_socket s;
    check(nng_req0_open(&s), "req0");
    check(nng_dial(s, url, NULL, 0), "dial");
    uint64_t *lat = calloc(o->count, sizeof(*lat));
    if (lat == NULL) {
        bu_die("out of memory");
    }
    unsigned warm = o->count / 10 + 100, errors = 0;
    for (unsigned i = 0; i < warm + o->count; i++) {
        nng_msg *m = new_msg(o->size), *r = NULL;
        uint64_t t = bu_now_ns();
        int rv = nng_sendmsg(s, m, 0);
        if (rv != 0) {
            nng_msg_free(m);
        } else {
            rv = nng_recvmsg(s, &r, 0);
        }
        uint64_t dt = bu_now_ns() - t;
        if (rv != 0 || nng_msg_len(r) != o->size) {
            errors++;
        }
        if (r != NULL) {
            nng_msg_free(r);
        }
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
    printf("RESULT impl=nng test=rpc-lat size=%zu n=%u p50_us=%.1f "
           "p99_us=%.1f mean_us=%.1f errors=%u\n",
        o->size, o->count, (double)p50 / 1e3, (double)p99 / 1e3, mean / 1e3,
        errors);
    nng_close(s);
    bu_stop(&srv, 2000);
    free(lat);
    return errors ? 1 : 0;
}

/* ---- RPC throughput --------------------------------------------------- */

typedef struct {
    nng_ctx ctx;
    nng_aio *aio;
    int receiving;
    size_t size;
} req_ctx;

static atomic_ulong req_done, req_errors;
static atomic_int req_stop;
static atomic_uint req_inflight;

static void
req_cb(void *arg)
{
    req_ctx *r = arg;
    int rv = nng_aio_result(r->aio);
    if (!r->receiving) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(r->aio));
            atomic_fetch_add(&req_errors, 1);
            atomic_fetch_sub(&req_inflight, 1);
            return;
        }
        r->receiving = 1;
        nng_ctx_recv(r->ctx, r->aio);
        return;
    }
    r->receiving = 0;
    if (rv != 0) {
        atomic_fetch_add(&req_errors, 1);
        atomic_fetch_sub(&req_inflight, 1);
        return;
    }
    nng_msg *m = nng_aio_get_msg(r->aio);
    if (nng_msg_len(m) == r->size) {
        atomic_fetch_add_explicit(&req_done, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add(&req_errors, 1);
    }
    nng_msg_free(m);
    if (atomic_load(&req_stop)) {
        atomic_fetch_sub(&req_inflight, 1);
        return;
    }
    nng_aio_set_msg(r->aio, new_msg(r->size));
    nng_ctx_send(r->ctx, r->aio);
}

static int
rpc_tput(const opts *o)
{
    bu_child srv;
    char url[64];
    start_child(&srv, echo_server, NULL, url, sizeof(url));
    nng_socket s;
    check(nng_req0_open(&s), "req0");
    check(nng_dial(s, url, NULL, 0), "dial");
    req_ctx *rc = calloc(o->window, sizeof(*rc));
    if (rc == NULL) {
        bu_die("out of memory");
    }
    for (unsigned i = 0; i < o->window; i++) {
        rc[i].size = o->size;
        check(nng_ctx_open(&rc[i].ctx, s), "ctx");
        check(nng_aio_alloc(&rc[i].aio, req_cb, &rc[i]), "aio");
    }
    atomic_store(&req_inflight, o->window);
    for (unsigned i = 0; i < o->window; i++) {
        nng_aio_set_msg(rc[i].aio, new_msg(o->size));
        nng_ctx_send(rc[i].ctx, rc[i].aio);
    }
    bu_sleep_us(500000);
    unsigned long c0 = atomic_load(&req_done);
    uint64_t t0 = bu_now_ns();
    bu_sleep_us((uint64_t)(o->seconds * 1e6));
    unsigned long c1 = atomic_load(&req_done);
    uint64_t t1 = bu_now_ns();
    atomic_store(&req_stop, 1);
    uint64_t deadline = bu_now_ns() + 10000000000ull;
    while (atomic_load(&req_inflight) > 0 && bu_now_ns() < deadline) {
        bu_sleep_us(1000);
    }
    double rate = (double)(c1 - c0) / ((double)(t1 - t0) / 1e9);
    printf("RESULT impl=nng test=rpc-tput size=%zu window=%u rate=%.0f "
           "errors=%lu\n",
        o->size, o->window, rate, atomic_load(&req_errors));
    nng_close(s);
    for (unsigned i = 0; i < o->window; i++) {
        nng_aio_free(rc[i].aio);
    }
    free(rc);
    bu_stop(&srv, 2000);
    return atomic_load(&req_errors) ? 1 : 0;
}

/* ---- Push/pull -------------------------------------------------------- */

static nng_aio *pull_aio;
static nng_socket pull_sock;
static atomic_ulong pulled;

static void
pull_cb(void *arg)
{
    (void)arg;
    int rv = nng_aio_result(pull_aio);
    if (rv == 0) {
        nng_msg_free(nng_aio_get_msg(pull_aio));
        atomic_fetch_add_explicit(&pulled, 1, memory_order_relaxed);
    } else if (rv == NNG_ECLOSED) {
        return;
    }
    nng_recv_aio(pull_sock, pull_aio);
}

static int
puller(void *arg, FILE *in, FILE *out)
{
    (void)arg;
    char url[64], line[64];
    check(nng_pull0_open(&pull_sock), "pull0");
    check(nng_socket_set_int(pull_sock, NNG_OPT_RECVBUF, 1024), "recvbuf");
    check(nng_aio_alloc(&pull_aio, pull_cb, NULL), "aio");
    listen_any(pull_sock, url, sizeof(url));
    nng_recv_aio(pull_sock, pull_aio);
    fprintf(out, "READY %s\n", url);
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strncmp(line, "count", 5) == 0) {
            fprintf(out, "count %lu %llu\n", atomic_load(&pulled),
                (unsigned long long)bu_now_ns());
        }
    }
    nng_close(pull_sock);
    nng_aio_free(pull_aio);
    return 0;
}

typedef struct {
    nng_socket s;
    size_t size;
    atomic_int stop;
    atomic_ulong sent;
} pusher;

static void *
push_thread(void *arg)
{
    pusher *p = arg;
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        nng_msg *m = new_msg(p->size);
        int rv = nng_sendmsg(p->s, m, 0);
        if (rv != 0) {
            nng_msg_free(m);
            if (rv == NNG_ECLOSED) {
                break;
            }
            continue;
        }
        atomic_fetch_add_explicit(&p->sent, 1, memory_order_relaxed);
    }
    return NULL;
}

static void
snapshot(bu_child *c, unsigned k, unsigned long *cnt, uint64_t *at)
{
    char line[128];
    for (unsigned i = 0; i < k; i++) {
        unsigned long long n, t;
        if (bu_send(&c[i], "count") != 0
            || bu_expect(&c[i], "count ", line, sizeof(line), 10000) != 0
            || sscanf(line, "count %llu %llu", &n, &t) != 2) {
            bu_die("puller %u does not answer", i);
        }
        cnt[i] = (unsigned long)n;
        at[i] = (uint64_t)t;
    }
}

static int
push(const opts *o)
{
    unsigned k = o->pulls;
    bu_child c[16];
    char url[16][64];
    for (unsigned i = 0; i < k; i++) {
        start_child(&c[i], puller, NULL, url[i], sizeof(url[i]));
    }
    pusher p = { .size = o->size };
    check(nng_push0_open(&p.s), "push0");
    check(nng_socket_set_int(p.s, NNG_OPT_SENDBUF, 1024), "sendbuf");
    for (unsigned i = 0; i < k; i++) {
        check(nng_dial(p.s, url[i], NULL, 0), "dial");
    }
    pthread_t th;
    if (pthread_create(&th, NULL, push_thread, &p) != 0) {
        bu_die("pthread_create");
    }
    unsigned long c0[16], c1[16];
    uint64_t a0[16], a1[16];
    bu_sleep_us(500000);
    snapshot(c, k, c0, a0);
    bu_sleep_us((uint64_t)(o->seconds * 1e6));
    snapshot(c, k, c1, a1);
    atomic_store(&p.stop, 1);
    pthread_join(th, NULL);
    double rate = 0;
    for (unsigned i = 0; i < k; i++) {
        rate += (double)(c1[i] - c0[i]) / ((double)(a1[i] - a0[i]) / 1e9);
    }
    printf("RESULT impl=nng test=push pulls=%u size=%zu rate=%.0f\n", k,
        o->size, rate);
    nng_close(p.s);
    for (unsigned i = 0; i < k; i++) {
        bu_stop(&c[i], 2000);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    opts o = {
        .size = 1, .count = 10000, .window = 64, .seconds = 2, .pulls = 1
    };
    parse(argc, argv, &o);
    bu_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(o.mode, "rpc-lat")) {
        return rpc_lat(&o);
    } else if (!strcmp(o.mode, "rpc-tput")) {
        return rpc_tput(&o);
    } else if (!strcmp(o.mode, "push")) {
        return push(&o);
    }
    usage();
    return 2;
}
