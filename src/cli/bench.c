/* SPDX-License-Identifier: MIT */
/*
 * `notifier bench rpc|pub|serve`: a load generator on the public API, in
 * the spirit of `nats bench`.  rpc calls a target over and over and reports
 * calls/s and the latency distribution; pub publishes as fast as it can and
 * reports msgs/s and MB/s, plus (with --subs) what in-process subscribers
 * received; serve is the other end: a member node that echoes calls and
 * counts notifications.
 *
 * Design notes
 * ------------
 * Workers.  rpc keeps K calls in flight with K threads, each making
 * synchronous nt_rpc calls back to back; pub runs K publishing threads
 * the same way.  Each message claims its sequence number (also its id) from
 * one atomic counter, so a run sends exactly --msgs; every thread also
 * stops at the --duration deadline, on a fatal error (no target, server
 * unreachable, bad key...) and on SIGINT/SIGTERM, once its call in
 * progress returns (within --timeout).  NT_EAGAIN from a full queue is
 * backpressure: retried, 1 ms apart, until --timeout.
 *
 * Latency.  Each rpc thread records the round trip of its successful calls
 * in its own log-linear histogram (64 sub-buckets per power of two, so a
 * bucket is within 1.6% of the value), merged at the end: memory does not
 * grow with the run and threads share no cache line for it.
 *
 * Subscribers.  pub --subs K opens K member nodes in this process, which
 * subscribe and then join through the same servers; the run starts once
 * the publishing node's routing table (the server's, for a publisher
 * node) lists all K.  After the last publish it waits until every
 * subscriber got every notification, or until none arrived for --timeout;
 * what is missing then is reported as lost (notifications are at most
 * once, so loss is a measurement, not a failure).
 *
 * Signals.  SIGINT, SIGTERM and SIGUSR1 are blocked before any node or
 * thread exists, and the main thread takes them with sigtimedwait between
 * progress lines.  The last worker to finish, or a handler that reaches
 * the awaited count, wakes it with SIGUSR1, which only means "look
 * again": the state itself is in atomics.  Nothing calls the library from
 * a signal handler.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define DEFAULT_MSGS 10000u
#define DEFAULT_SIZE 100u
#define DEFAULT_OBJECT "bench"
#define DEFAULT_CMD "echo"
#define MAX_MSGS 4294967295u
#define MAX_INFLIGHT 1024u
#define MAX_SUBS 64u
#define MAX_DURATION_S 31536000.0 /* a year */
#define TICK_MS 1000              /* progress lines */
#define JOIN_STEP_MS 250
#define RETRY_MS 50
#define CLOSE_TIMEOUT_MS 5000
#define SUB_WORKERS 2
#define NERR 32 /* error counters, indexed by -code; 0 = any other */

/* Latency histogram: values below 128 us have a bucket each; above, each
 * power of two 2^e (7 <= e < HIST_MAX_EXP) has HIST_SUB buckets. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 41 /* 2^41 us: 25 days, above any --timeout */
#define HIST_N (2 * HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS - 1) * HIST_SUB)

static const char *const mode_names[] = { "rpc", "pub", "serve" };

/* ---- Options ------------------------------------------------------------ */

static int
bad_value(const char *name, const char *val, const char *want)
{
    char q[256];
    cli_err("bad %s %s: expected %s", name, cli_quote(val, q, sizeof(q)),
            want);
    return CLI_EXIT_USAGE;
}

int
bench_option(bench_opts *o, const char *lng, const char *name,
             const char *val)
{
    uint64_t v;
    if (strcmp(lng, "msgs") == 0) {
        if (!cli_parse_uint(val, MAX_MSGS, &v)) {
            return bad_value(name, val, "a number, 0 to 4294967295");
        }
        o->msgs = v;
        o->have_msgs = true;
    } else if (strcmp(lng, "size") == 0) {
        if (!cli_parse_uint(val, UINT64_MAX, &v)) {
            return bad_value(name, val, "a number of bytes");
        }
        if (v > CLI_PAYLOAD_MAX) {
            char q[256];
            cli_err("bad %s %s: above the payload limit, %u bytes", name,
                    cli_quote(val, q, sizeof(q)), CLI_PAYLOAD_MAX);
            return CLI_EXIT_USAGE;
        }
        o->size = (size_t)v;
        o->have_size = true;
    } else if (strcmp(lng, "inflight") == 0) {
        if (!cli_parse_uint(val, MAX_INFLIGHT, &v) || v == 0) {
            return bad_value(name, val, "a number, 1 to 1024");
        }
        o->inflight = (unsigned)v;
        o->have_inflight = true;
    } else if (strcmp(lng, "duration") == 0) {
        double d;
        if (!cli_parse_weight(val, &d) || d > MAX_DURATION_S) {
            return bad_value(name, val,
                             "seconds, a decimal number > 0 and at most "
                             "31536000");
        }
        o->duration = d;
        o->have_duration = true;
    } else if (strcmp(lng, "subs") == 0) {
        if (!cli_parse_uint(val, MAX_SUBS, &v)) {
            return bad_value(name, val, "a number, 0 to 64");
        }
        o->subs = (unsigned)v;
        o->have_subs = true;
    } else if (strcmp(lng, "object") == 0 || strcmp(lng, "cmd") == 0) {
        if (!cli_name_ok(val)) {
            return bad_value(name, val, "1 to 255 bytes");
        }
        *(lng[0] == 'o' ? &o->object : &o->cmd) = val;
    }
    return -1;
}

int
bench_check(bench_opts *o, const char *mode)
{
    size_t i = 0;
    while (i < 3 && strcmp(mode, mode_names[i]) != 0) {
        i++;
    }
    if (i == 3) {
        char q[256];
        cli_err("bad mode %s: expected rpc, pub or serve",
                cli_quote(mode, q, sizeof(q)));
        return CLI_EXIT_USAGE;
    }
    o->mode = (bench_mode)i;
    const char *na = o->mode == BENCH_SERVE && o->have_size ? "--size"
                     : o->mode == BENCH_SERVE && o->have_inflight
                         ? "--inflight"
                     : o->mode != BENCH_PUB && o->have_subs ? "--subs"
                                                            : NULL;
    if (na != NULL) {
        cli_err("option %s does not apply to bench %s (see notifier bench "
                "--help)",
                na, mode_names[i]);
        return CLI_EXIT_USAGE;
    }
    if (o->mode != BENCH_SERVE) {
        if (o->have_msgs && o->msgs == 0 && !o->have_duration) {
            cli_err("bad --msgs 0: no limit needs a --duration");
            return CLI_EXIT_USAGE;
        }
        if (!o->have_msgs) {
            o->msgs = o->have_duration ? 0 : DEFAULT_MSGS;
        }
        if (o->msgs == 0) {
            o->msgs = UINT64_MAX;
        }
    }
    if (!o->have_size) {
        o->size = DEFAULT_SIZE;
    }
    if (!o->have_inflight) {
        o->inflight = 1;
    }
    if (o->object == NULL) {
        o->object = DEFAULT_OBJECT;
    }
    if (o->cmd == NULL) {
        o->cmd = DEFAULT_CMD;
    }
    return -1;
}

/* ---- State -------------------------------------------------------------- */

typedef struct bench bench;

typedef struct {
    bench *b;
    pthread_t tid;
    uint64_t *hist; /* rpc: HIST_N counters of successful calls */
    uint64_t sum_us, max_us;
} worker;

typedef struct {
    bench *b;
    nt_node *n;
    _Atomic uint64_t count;
} subscriber;

struct bench {
    const bench_opts *o;
    nt_config cfg; /* the global options; listen and workers per node */
    int timeout_ms;
    bool json;
    bool tty;      /* stderr is a terminal: progress with \r */
    bool shown;    /* a \r progress line is on the terminal */
    bool interrupted;
    pthread_t main;
    sigset_t sigs;
    nt_node *n;
    unsigned char *payload;
    worker *workers;
    unsigned nworkers;
    int64_t t0_us, t1_us; /* run start; when the last worker finished */
    int64_t end_us;       /* --duration deadline, or INT64_MAX */
    _Atomic uint64_t next; /* sequence numbers claimed */
    _Atomic uint64_t ok, failed, retries;
    _Atomic uint64_t errs[NERR];
    _Atomic bool stop;
    _Atomic unsigned running;
    /* Progress: the counts at the last line. */
    int64_t tick_us;
    uint64_t tick_done, tick_recv;
    /* What arrives: pub's subscribers, serve's handlers. */
    subscriber *subs;
    unsigned nsubs;
    _Atomic uint64_t received, expected, calls;
    _Atomic int64_t first_us, last_us;
};

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits up to ms for a signal; SIGINT/SIGTERM stop the run.  Returns
 * whether the run was interrupted. */
static bool
poll_signals(bench *b, int64_t ms)
{
    int sig = cli_signals_poll(&b->sigs, ms > 0 ? (int)ms : 0);
    if (sig == SIGINT || sig == SIGTERM) {
        b->interrupted = true;
        atomic_store(&b->stop, true);
    }
    return b->interrupted;
}

static bool
should_stop(bench *b)
{
    return atomic_load(&b->stop) || now_us() >= b->end_us;
}

/* Errors after which further calls cannot do better. */
static bool
fatal_error(int rv)
{
    switch (rv) {
    case NT_ENOTARGET:
    case NT_EUNREACHABLE:
    case NT_EAUTH:
    case NT_ECLOSED:
    case NT_EINVAL:
    case NT_EMSGSIZE:
    case NT_ENOTSUP:
    case NT_ENOMEM:
    case NT_EPROTO:
        return true;
    default:
        return false;
    }
}

static void
record_error(bench *b, int rv)
{
    unsigned i = rv < 0 && rv > -(int)NERR ? (unsigned)-rv : 0;
    atomic_fetch_add(&b->errs[i], 1);
    atomic_fetch_add(&b->failed, 1);
    if (fatal_error(rv)) {
        atomic_store(&b->stop, true);
    }
}

/* Marks a message received at now (first and last arrival times). */
static void
mark_arrival(bench *b)
{
    int64_t t = now_us(), zero = 0;
    atomic_compare_exchange_strong(&b->first_us, &zero, t);
    atomic_store(&b->last_us, t);
}

static const char *
servers_str(const bench *b, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; b->cfg.smap != NULL && b->cfg.smap[i] != NULL &&
                       off < cap;
         i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
                         b->cfg.smap[i]);
        off += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

/* ---- Progress ----------------------------------------------------------- */

static void
progress_show(bench *b, const char *line)
{
    char buf[512];
    int n = b->tty ? snprintf(buf, sizeof(buf), "\r%s\033[K", line)
                   : snprintf(buf, sizeof(buf), "%s\n", line);
    if (n > 0) {
        cli_write(stderr, buf, (size_t)n < sizeof(buf) ? (size_t)n
                                                       : sizeof(buf) - 1);
        b->shown = b->tty;
    }
}

static void
progress_clear(bench *b)
{
    if (b->shown) {
        cli_write(stderr, "\r\033[K", 4);
        b->shown = false;
    }
}

/* "N" or "N/LIMIT". */
static const char *
count_str(uint64_t n, uint64_t limit, char *buf, size_t cap)
{
    if (limit == UINT64_MAX || limit == 0) {
        snprintf(buf, cap, "%llu", (unsigned long long)n);
    } else {
        snprintf(buf, cap, "%llu/%llu", (unsigned long long)n,
                 (unsigned long long)limit);
    }
    return buf;
}

/* The rate of a counter since the last line. */
static double
tick_rate(const bench *b, uint64_t now_count, uint64_t then, int64_t t)
{
    double secs = (double)(t - b->tick_us) / 1e6;
    return secs > 0 ? (double)(now_count - then) / secs : 0;
}

static void
progress_run(bench *b)
{
    const bench_opts *o = b->o;
    int64_t t = now_us();
    uint64_t ok = atomic_load(&b->ok), failed = atomic_load(&b->failed);
    uint64_t done = ok + failed, recv = atomic_load(&b->received);
    char line[400], cnt[64];
    int n = snprintf(line, sizeof(line), "bench %s: %s %s, %llu errors, "
                     "%.0f %s/s",
                     mode_names[o->mode],
                     count_str(done, o->msgs, cnt, sizeof(cnt)),
                     o->mode == BENCH_RPC ? "calls" : "msgs",
                     (unsigned long long)failed,
                     tick_rate(b, done, b->tick_done, t),
                     o->mode == BENCH_RPC ? "calls" : "msgs");
    if (b->nsubs > 0 && n > 0 && (size_t)n < sizeof(line)) {
        snprintf(line + n, sizeof(line) - (size_t)n,
                 ", received %llu (%.0f msgs/s)", (unsigned long long)recv,
                 tick_rate(b, recv, b->tick_recv, t));
    }
    progress_show(b, line);
    b->tick_us = t;
    b->tick_done = done;
    b->tick_recv = recv;
}

/* ---- Nodes -------------------------------------------------------------- */

static int
open_node(bench *b, const char *listen, unsigned workers, nt_node **out)
{
    nt_config cfg = b->cfg;
    cfg.listen = listen;
    cfg.workers = workers;
    int rv = nt_node_open(out, &cfg);
    if (rv != NT_OK) {
        char q[256];
        if (listen != NULL) {
            cli_err("listen %s: %s", cli_quote(listen, q, sizeof(q)),
                    nt_strerror(rv));
        } else {
            cli_err("opening a client node: %s", nt_strerror(rv));
        }
    }
    return rv;
}

/* Waits, until deadline_ms, until n reaches the cluster: a publisher node
 * until its server answers, a member node until it sees a second member
 * and then (not required) until the directory converged.  Returns NT_OK,
 * the last error, or NT_ECLOSED when a signal interrupted it. */
static int
join(bench *b, nt_node *n, bool member, bool converge, int64_t deadline_ms)
{
    for (int phase = 0; phase < (converge ? 2 : 1); phase++) {
        for (;;) {
            int64_t left = deadline_ms - cli_now_ms();
            int ms = left > JOIN_STEP_MS ? JOIN_STEP_MS
                                         : (left > 0 ? (int)left : 0);
            int rv = phase == 0 ? nt_node_wait_members(n, member ? 2 : 1, ms)
                                : nt_node_wait_converged(n, ms);
            if (rv == NT_OK) {
                break;
            }
            if (rv == NT_EINVAL || rv == NT_ENOMEM || rv == NT_ECLOSED ||
                cli_now_ms() >= deadline_ms) {
                return phase == 0 ? rv : NT_OK;
            }
            if (poll_signals(b, RETRY_MS)) {
                return NT_ECLOSED;
            }
        }
    }
    return NT_OK;
}

static int
join_failed(bench *b, bool member, int rv)
{
    char s[512];
    const char *what = member ? "joining via" : "reaching";
    if (b->interrupted) {
        cli_err("interrupted while %s %s", what,
                servers_str(b, s, sizeof(s)));
    } else {
        cli_err("%s %s: %s", what, servers_str(b, s, sizeof(s)),
                nt_strerror(rv));
    }
    return CLI_EXIT_FAIL;
}

/* ---- Workers ------------------------------------------------------------ */

static void
worker_done(bench *b)
{
    if (atomic_fetch_sub(&b->running, 1) == 1) {
        b->t1_us = now_us(); /* read by main after pthread_join */
        pthread_kill(b->main, SIGUSR1);
    }
}

static unsigned
hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB) {
        return (unsigned)v;
    }
    if (v >= (uint64_t)1 << HIST_MAX_EXP) {
        v = ((uint64_t)1 << HIST_MAX_EXP) - 1;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - HIST_SUB_BITS;
    return 2 * HIST_SUB + (e - HIST_SUB_BITS - 1) * HIST_SUB +
           (unsigned)(v >> shift) - HIST_SUB;
}

/* The middle of bucket i. */
static uint64_t
hist_value(unsigned i)
{
    if (i < 2 * HIST_SUB) {
        return i;
    }
    unsigned k = i - 2 * HIST_SUB;
    unsigned shift = k / HIST_SUB + 1;
    uint64_t m = k % HIST_SUB + HIST_SUB;
    return (m << shift) + (((uint64_t)1 << shift) - 1) / 2;
}

/* The p-quantile of a merged histogram of count values, at most max. */
static uint64_t
hist_quantile(const uint64_t *h, uint64_t count, double p, uint64_t max)
{
    uint64_t rank = (uint64_t)(p * (double)count + 0.999999);
    uint64_t seen = 0;
    rank = rank == 0 ? 1 : rank;
    for (unsigned i = 0; i < HIST_N; i++) {
        seen += h[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            return v < max ? v : max;
        }
    }
    return max;
}

/* The status of one call: its first failed reply, NT_ENOTARGET for no
 * reply at all. */
static int
results_status(const nt_results *res)
{
    if (res->count == 0) {
        return NT_ENOTARGET;
    }
    for (size_t i = 0; i < res->count; i++) {
        if (res->items[i].status != NT_OK) {
            return res->items[i].status;
        }
    }
    return NT_OK;
}

/* Runs one call or publish, retrying NT_EAGAIN (backpressure) 1 ms apart
 * until --timeout. */
static int
send_one(bench *b, uint64_t seq)
{
    const bench_opts *o = b->o;
    int64_t give_up = 0;
    for (;;) {
        int rv;
        if (o->mode == BENCH_RPC) {
            nt_results *res = NULL;
            rv = nt_rpc(b->n, o->object, seq, o->cmd, b->payload, o->size,
                        b->timeout_ms, &res);
            if (rv == NT_OK) {
                rv = results_status(res);
                nt_results_free(res);
            }
        } else {
            rv = nt_publish(b->n, o->object, seq, o->cmd, b->payload,
                            o->size);
        }
        if (rv != NT_EAGAIN) {
            return rv;
        }
        int64_t now = cli_now_ms();
        if (give_up == 0) {
            give_up = now + b->timeout_ms;
        } else if (now >= give_up || atomic_load(&b->stop)) {
            return rv;
        }
        atomic_fetch_add(&b->retries, 1);
        cli_sleep_ms(1);
    }
}

static void *
worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    while (!should_stop(b)) {
        uint64_t seq = atomic_fetch_add(&b->next, 1);
        if (seq >= b->o->msgs) {
            break;
        }
        int64_t t0 = now_us();
        int rv = send_one(b, seq);
        if (rv != NT_OK) {
            record_error(b, rv);
            continue;
        }
        if (w->hist != NULL) {
            uint64_t us = (uint64_t)(now_us() - t0);
            w->hist[hist_index(us)]++;
            w->sum_us += us;
            w->max_us = us > w->max_us ? us : w->max_us;
        }
        atomic_fetch_add(&b->ok, 1);
    }
    worker_done(b);
    return NULL;
}

/* Starts the K workers, prints progress until they are done and joins
 * them.  NT_OK, or NT_ENOMEM / NT_EIO (reported) when they could not all
 * start; those that did have run and stopped. */
static int
run_workers(bench *b)
{
    const bench_opts *o = b->o;
    unsigned k = o->inflight;
    b->workers = calloc(k, sizeof(*b->workers));
    if (b->workers == NULL) {
        cli_err("%s", nt_strerror(NT_ENOMEM));
        return NT_ENOMEM;
    }
    for (unsigned i = 0; i < k; i++) {
        b->workers[i].b = b;
        if (o->mode == BENCH_RPC &&
            (b->workers[i].hist = calloc(HIST_N, sizeof(uint64_t))) ==
                NULL) {
            cli_err("%s", nt_strerror(NT_ENOMEM));
            return NT_ENOMEM;
        }
    }
    b->t0_us = b->tick_us = now_us();
    b->end_us = o->duration > 0 ? b->t0_us + (int64_t)(o->duration * 1e6)
                                : INT64_MAX;
    atomic_store(&b->running, k);
    int err = 0;
    for (; b->nworkers < k; b->nworkers++) {
        worker *w = &b->workers[b->nworkers];
        if ((err = pthread_create(&w->tid, NULL, worker_main, w)) != 0) {
            atomic_store(&b->stop, true);
            atomic_fetch_sub(&b->running, k - b->nworkers);
            break;
        }
    }
    int64_t tick = cli_now_ms() + TICK_MS;
    while (atomic_load(&b->running) > 0) {
        poll_signals(b, tick - cli_now_ms());
        if (cli_now_ms() >= tick) {
            progress_run(b);
            tick += TICK_MS;
        }
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        pthread_join(b->workers[i].tid, NULL);
    }
    if (b->t1_us == 0) {
        b->t1_us = now_us();
    }
    if (err != 0) {
        progress_clear(b);
        cli_err("starting thread %u of %u: %s", b->nworkers + 1, k,
                strerror(err));
        return NT_EIO;
    }
    return NT_OK;
}

/* ---- Reports ------------------------------------------------------------ */

static double
per_s(uint64_t n, int64_t us)
{
    return us > 0 ? (double)n * 1e6 / (double)us : 0;
}

static void
json_head(bench *b, cli_sb *sb)
{
    const bench_opts *o = b->o;
    cli_sb_printf(sb, "{\"mode\":\"%s\",\"object\":", mode_names[o->mode]);
    cli_sb_json_str(sb, o->object, strlen(o->object));
    cli_sb_puts(sb, ",\"cmd\":");
    cli_sb_json_str(sb, o->cmd, strlen(o->cmd));
    if (o->mode != BENCH_SERVE) {
        cli_sb_printf(sb, ",\"size\":%zu,\"inflight\":%u", o->size,
                      o->inflight);
        if (o->msgs == UINT64_MAX) {
            cli_sb_puts(sb, ",\"msgs\":null");
        } else {
            cli_sb_printf(sb, ",\"msgs\":%llu",
                          (unsigned long long)o->msgs);
        }
        cli_sb_printf(sb, ",\"member\":%s",
                      o->listen != NULL ? "true" : "false");
    }
    if (o->duration > 0) {
        cli_sb_printf(sb, ",\"duration_s\":%g", o->duration);
    }
}

/* Error counts: JSON array, or "N reason; ..." text. */
static void
errors_out(bench *b, cli_sb *sb, bool json)
{
    bool first = true;
    if (json) {
        cli_sb_puts(sb, ",\"error_counts\":[");
    }
    for (unsigned i = 1; i <= NERR; i++) {
        unsigned k = i % NERR; /* the "other" bucket last */
        uint64_t n = atomic_load(&b->errs[k]);
        if (n == 0) {
            continue;
        }
        const char *why = k != 0 ? nt_strerror(-(int)k) : "other errors";
        if (json) {
            cli_sb_puts(sb, first ? "{\"error\":" : ",{\"error\":");
            cli_sb_json_str(sb, why, strlen(why));
            cli_sb_printf(sb, ",\"code\":%d,\"count\":%llu}", -(int)k,
                          (unsigned long long)n);
        } else {
            cli_sb_printf(sb, "%s%llu %s", first ? "" : "; ",
                          (unsigned long long)n, why);
        }
        first = false;
    }
    if (json) {
        cli_sb_puts(sb, "]");
    }
}

/* Writes the summary and, when some sends failed, the one error line.
 * Returns the exit status. */
static int
finish(bench *b, cli_sb *sb)
{
    progress_clear(b);
    int status = CLI_EXIT_OK;
    if (cli_sb_str(sb) == NULL || cli_write(stdout, sb->s, sb->len) != 0) {
        cli_err("writing stdout: %s",
                sb->oom ? nt_strerror(NT_ENOMEM) : strerror(errno));
        status = CLI_EXIT_FAIL;
    } else if (atomic_load(&b->failed) > 0) {
        const bench_opts *o = b->o;
        cli_sb e;
        cli_sb_init(&e);
        cli_sb_escape(&e, o->object, strnlen(o->object, 64));
        cli_sb_puts(&e, "/");
        cli_sb_escape(&e, o->cmd, strnlen(o->cmd, 64));
        cli_sb_printf(&e, ": %llu of %llu %s failed: ",
                      (unsigned long long)atomic_load(&b->failed),
                      (unsigned long long)(atomic_load(&b->failed) +
                                           atomic_load(&b->ok)),
                      o->mode == BENCH_RPC ? "calls" : "publishes");
        errors_out(b, &e, false);
        if (atomic_load(&b->errs[-NT_ENOTARGET]) > 0) {
            cli_sb_puts(&e, o->mode == BENCH_RPC
                                ? " (start a responder: notifier bench "
                                  "serve)"
                                : " (nothing subscribes: --subs K, or "
                                  "notifier bench serve)");
        }
        cli_err("%s", cli_sb_str(&e) != NULL ? e.s : "calls failed");
        cli_sb_fini(&e);
        status = CLI_EXIT_FAIL;
    }
    cli_sb_fini(sb);
    return status;
}

static int
report_rpc(bench *b)
{
    const bench_opts *o = b->o;
    uint64_t *h = calloc(HIST_N, sizeof(uint64_t));
    uint64_t ok = atomic_load(&b->ok), failed = atomic_load(&b->failed);
    uint64_t sum = 0, max = 0;
    if (h == NULL) {
        cli_err("%s", nt_strerror(NT_ENOMEM));
        return CLI_EXIT_FAIL;
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        const worker *w = &b->workers[i];
        for (unsigned j = 0; j < HIST_N; j++) {
            h[j] += w->hist[j];
        }
        sum += w->sum_us;
        max = w->max_us > max ? w->max_us : max;
    }
    uint64_t q[3] = { hist_quantile(h, ok, 0.50, max),
                      hist_quantile(h, ok, 0.90, max),
                      hist_quantile(h, ok, 0.99, max) };
    free(h);
    int64_t el = b->t1_us - b->t0_us;
    double rate = per_s(ok, el);
    cli_sb sb;
    cli_sb_init(&sb);
    if (b->json) {
        json_head(b, &sb);
        cli_sb_printf(&sb,
                      ",\"count\":%llu,\"ok\":%llu,\"errors\":%llu,"
                      "\"elapsed_s\":%.6f,\"calls_per_s\":%.1f",
                      (unsigned long long)(ok + failed),
                      (unsigned long long)ok, (unsigned long long)failed,
                      (double)el / 1e6, rate);
        if (ok > 0) {
            cli_sb_printf(&sb,
                          ",\"latency_us\":{\"p50\":%llu,\"p90\":%llu,"
                          "\"p99\":%llu,\"max\":%llu,\"mean\":%.1f}",
                          (unsigned long long)q[0], (unsigned long long)q[1],
                          (unsigned long long)q[2], (unsigned long long)max,
                          (double)sum / (double)ok);
        } else {
            cli_sb_puts(&sb, ",\"latency_us\":null");
        }
        errors_out(b, &sb, true);
        cli_sb_printf(&sb, ",\"interrupted\":%s}\n",
                      b->interrupted ? "true" : "false");
        return finish(b, &sb);
    }
    cli_sb_puts(&sb, "bench rpc ");
    cli_sb_escape(&sb, o->object, strlen(o->object));
    cli_sb_puts(&sb, "/");
    cli_sb_escape(&sb, o->cmd, strlen(o->cmd));
    cli_sb_printf(&sb, ": %zu-byte payloads, %u in flight, %s%s\n",
                  o->size, o->inflight,
                  o->listen != NULL ? "from a member node"
                                    : "through the server",
                  b->interrupted ? " (interrupted)" : "");
    cli_sb_printf(&sb,
                  "  calls    %llu ok, %llu errors in %.3f s: %.0f "
                  "calls/s\n",
                  (unsigned long long)ok, (unsigned long long)failed,
                  (double)el / 1e6, rate);
    if (ok > 0) {
        cli_sb_printf(&sb,
                      "  latency  p50 %llu us, p90 %llu us, p99 %llu us, "
                      "max %llu us, mean %.0f us\n",
                      (unsigned long long)q[0], (unsigned long long)q[1],
                      (unsigned long long)q[2], (unsigned long long)max,
                      (double)sum / (double)ok);
    }
    if (failed > 0) {
        cli_sb_puts(&sb, "  errors   ");
        errors_out(b, &sb, false);
        cli_sb_puts(&sb, "\n");
    }
    return finish(b, &sb);
}

static int
report_pub(bench *b)
{
    const bench_opts *o = b->o;
    uint64_t ok = atomic_load(&b->ok), failed = atomic_load(&b->failed);
    uint64_t recv = atomic_load(&b->received);
    uint64_t exp = ok * b->nsubs;
    uint64_t lost = recv < exp ? exp - recv : 0;
    int64_t el = b->t1_us - b->t0_us;
    int64_t last = atomic_load(&b->last_us);
    int64_t rel = last > b->t0_us ? last - b->t0_us : 0;
    double rate = per_s(ok, el), mb = rate * (double)o->size / 1e6;
    double rrate = per_s(recv, rel), rmb = rrate * (double)o->size / 1e6;
    cli_sb sb;
    cli_sb_init(&sb);
    if (b->json) {
        json_head(b, &sb);
        cli_sb_printf(&sb,
                      ",\"count\":%llu,\"published\":%llu,\"errors\":%llu,"
                      "\"retries\":%llu,\"elapsed_s\":%.6f,"
                      "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"subs\":%u",
                      (unsigned long long)(ok + failed),
                      (unsigned long long)ok, (unsigned long long)failed,
                      (unsigned long long)atomic_load(&b->retries),
                      (double)el / 1e6, rate, mb, b->nsubs);
        if (b->nsubs > 0) {
            cli_sb_printf(&sb,
                          ",\"expected\":%llu,\"received\":%llu,"
                          "\"lost\":%llu,\"recv_elapsed_s\":%.6f,"
                          "\"recv_msgs_per_s\":%.1f,\"recv_mb_per_s\":%.3f,"
                          "\"received_per_sub\":[",
                          (unsigned long long)exp, (unsigned long long)recv,
                          (unsigned long long)lost, (double)rel / 1e6, rrate,
                          rmb);
            for (unsigned i = 0; i < b->nsubs; i++) {
                cli_sb_printf(&sb, "%s%llu", i ? "," : "",
                              (unsigned long long)atomic_load(
                                  &b->subs[i].count));
            }
            cli_sb_puts(&sb, "]");
        }
        errors_out(b, &sb, true);
        cli_sb_printf(&sb, ",\"interrupted\":%s}\n",
                      b->interrupted ? "true" : "false");
        return finish(b, &sb);
    }
    cli_sb_puts(&sb, "bench pub ");
    cli_sb_escape(&sb, o->object, strlen(o->object));
    cli_sb_puts(&sb, "/");
    cli_sb_escape(&sb, o->cmd, strlen(o->cmd));
    cli_sb_printf(&sb,
                  ": %zu-byte payloads, %u publisher%s, %s, %u "
                  "subscriber%s%s\n",
                  o->size, o->inflight, o->inflight == 1 ? "" : "s",
                  o->listen != NULL ? "from a member node"
                                    : "through the server",
                  b->nsubs, b->nsubs == 1 ? "" : "s",
                  b->interrupted ? " (interrupted)" : "");
    cli_sb_printf(&sb,
                  "  published  %llu, %llu errors in %.3f s: %.0f msgs/s, "
                  "%.2f MB/s\n",
                  (unsigned long long)ok, (unsigned long long)failed,
                  (double)el / 1e6, rate, mb);
    if (b->nsubs > 0) {
        cli_sb_printf(&sb,
                      "  received   %llu of %llu, %llu lost, in %.3f s: "
                      "%.0f msgs/s, %.2f MB/s\n",
                      (unsigned long long)recv, (unsigned long long)exp,
                      (unsigned long long)lost, (double)rel / 1e6, rrate,
                      rmb);
    }
    if (failed > 0) {
        cli_sb_puts(&sb, "  errors     ");
        errors_out(b, &sb, false);
        cli_sb_puts(&sb, "\n");
    }
    return finish(b, &sb);
}

/* ---- rpc ---------------------------------------------------------------- */

static int
bench_rpc(bench *b)
{
    const bench_opts *o = b->o;
    if (open_node(b, o->listen, b->cfg.workers, &b->n) != NT_OK) {
        return CLI_EXIT_FAIL;
    }
    int status = CLI_EXIT_FAIL;
    int rv = join(b, b->n, o->listen != NULL, o->listen != NULL,
                  cli_now_ms() + b->timeout_ms);
    if (rv != NT_OK) {
        status = join_failed(b, o->listen != NULL, rv);
    } else if (run_workers(b) == NT_OK) {
        status = report_rpc(b);
    }
    nt_node_close(b->n, CLOSE_TIMEOUT_MS);
    return status;
}

/* ---- pub ---------------------------------------------------------------- */

static void
on_sub_notify(void *dest, const nt_msg *m)
{
    subscriber *s = dest;
    bench *b = s->b;
    atomic_fetch_add(&s->count, 1);
    uint64_t total = atomic_fetch_add(&b->received, 1) + 1;
    mark_arrival(b);
    uint64_t exp = atomic_load(&b->expected);
    if (exp != 0 && total == exp) {
        pthread_kill(b->main, SIGUSR1);
    }
}

/* The subscribers' address: --listen's host with port 0, or loopback. */
static void
subs_listen(const bench *b, char *buf, size_t cap)
{
    const char *l = b->o->listen;
    const char *colon = l != NULL ? strrchr(l, ':') : NULL;
    if (colon == NULL) {
        snprintf(buf, cap, "127.0.0.1:0");
    } else {
        snprintf(buf, cap, "%.*s:0", (int)(colon - l), l);
    }
}

/* Opens the --subs nodes, subscribes them and waits (within --timeout)
 * until the publishing node routes to every one. */
static int
subs_start(bench *b)
{
    const bench_opts *o = b->o;
    char listen[300], s[512];
    subs_listen(b, listen, sizeof(listen));
    b->subs = calloc(o->subs, sizeof(*b->subs));
    if (b->subs == NULL) {
        cli_err("%s", nt_strerror(NT_ENOMEM));
        return CLI_EXIT_FAIL;
    }
    int64_t deadline = cli_now_ms() + b->timeout_ms;
    for (; b->nsubs < o->subs; b->nsubs++) {
        subscriber *sub = &b->subs[b->nsubs];
        sub->b = b;
        if (open_node(b, listen, SUB_WORKERS, &sub->n) != NT_OK) {
            return CLI_EXIT_FAIL;
        }
        int rv = nt_subscribe(sub->n, o->object, NT_MATCH_ALL, o->cmd,
                              on_sub_notify, sub);
        if (rv != NT_OK) {
            nt_node_close(sub->n, CLOSE_TIMEOUT_MS);
            cli_err("subscribing: %s", nt_strerror(rv));
            return CLI_EXIT_FAIL;
        }
    }
    for (unsigned i = 0; i < b->nsubs; i++) {
        int rv = join(b, b->subs[i].n, true, false, deadline);
        if (rv != NT_OK) {
            return join_failed(b, true, rv);
        }
    }
    /* Every subscriber's node id in the publishing node's routing table
     * (each has that one registration). */
    int rv = NT_OK;
    for (unsigned seen = 0; seen < b->nsubs;) {
        int64_t left = deadline - cli_now_ms();
        char *subs = NULL;
        rv = nt_node_info(b->n, "subs", NT_INFO_JSON,
                          left > 0 ? (int)left : 0, &subs);
        for (seen = 0; rv == NT_OK && seen < b->nsubs; seen++) {
            char id[200];
            snprintf(id, sizeof(id), "\"%s\"", nt_node_id(b->subs[seen].n));
            if (strstr(subs, id) == NULL) {
                break;
            }
        }
        nt_free(subs);
        if (seen == b->nsubs) {
            break;
        }
        if (rv == NT_OK) {
            rv = NT_ETIMEDOUT;
        }
        if (rv == NT_EINVAL || rv == NT_ENOMEM || rv == NT_ECLOSED ||
            cli_now_ms() >= deadline || poll_signals(b, RETRY_MS)) {
            progress_clear(b);
            if (b->interrupted) {
                cli_err("interrupted while the subscribers joined");
            } else {
                cli_err("subscribers joining via %s: %s",
                        servers_str(b, s, sizeof(s)), nt_strerror(rv));
            }
            return CLI_EXIT_FAIL;
        }
    }
    return -1;
}

/* After the last publish: waits until the subscribers got everything, or
 * until nothing arrived for --timeout. */
static void
subs_drain(bench *b)
{
    uint64_t exp = atomic_load(&b->ok) * b->nsubs;
    if (exp == 0) {
        return;
    }
    atomic_store(&b->expected, exp);
    uint64_t seen = atomic_load(&b->received);
    int64_t idle_until = cli_now_ms() + b->timeout_ms;
    int64_t tick = cli_now_ms() + TICK_MS;
    while (!b->interrupted) {
        uint64_t cur = atomic_load(&b->received);
        int64_t now = cli_now_ms();
        if (cur >= exp) {
            break;
        }
        if (cur != seen) {
            seen = cur;
            idle_until = now + b->timeout_ms;
        }
        if (now >= idle_until) {
            break;
        }
        if (now >= tick) {
            char line[200];
            snprintf(line, sizeof(line),
                     "bench pub: waiting for the subscribers: %llu of %llu "
                     "received",
                     (unsigned long long)cur, (unsigned long long)exp);
            progress_show(b, line);
            tick += TICK_MS;
        }
        poll_signals(b, (tick < idle_until ? tick : idle_until) - now);
    }
}

static int
bench_pub(bench *b)
{
    const bench_opts *o = b->o;
    int status = CLI_EXIT_FAIL;
    if (open_node(b, o->listen, b->cfg.workers, &b->n) != NT_OK) {
        return CLI_EXIT_FAIL;
    }
    int rv = join(b, b->n, o->listen != NULL, o->listen != NULL,
                  cli_now_ms() + b->timeout_ms);
    if (rv != NT_OK) {
        status = join_failed(b, o->listen != NULL, rv);
        goto done;
    }
    if (o->subs > 0 && (status = subs_start(b)) >= 0) {
        goto done;
    }
    status = CLI_EXIT_FAIL;
    if (run_workers(b) == NT_OK) {
        subs_drain(b);
        status = report_pub(b);
    }
done:
    nt_node_close(b->n, CLOSE_TIMEOUT_MS);
    for (unsigned i = 0; i < b->nsubs; i++) {
        nt_node_close(b->subs[i].n, CLOSE_TIMEOUT_MS);
    }
    free(b->subs);
    return status;
}

/* ---- serve -------------------------------------------------------------- */

/* Counts one message served; wakes main at --msgs. */
static void
serve_count(bench *b, _Atomic uint64_t *counter)
{
    atomic_fetch_add(counter, 1);
    uint64_t total = atomic_fetch_add(&b->next, 1) + 1;
    mark_arrival(b);
    if (b->o->msgs != 0 && total == b->o->msgs) {
        pthread_kill(b->main, SIGUSR1);
    }
}

static void
on_serve_call(void *dest, const nt_msg *m, nt_reply *r)
{
    bench *b = dest;
    int rv = nt_reply_send(r, m->data, m->len);
    if (rv != NT_OK && rv != NT_EREPLIED) {
        nt_reply_error(r, rv, nt_strerror(rv));
    }
    serve_count(b, &b->calls);
}

static void
on_serve_notify(void *dest, const nt_msg *m)
{
    bench *b = dest;
    serve_count(b, &b->received);
}

static void
progress_serve(bench *b)
{
    int64_t t = now_us();
    uint64_t calls = atomic_load(&b->calls);
    uint64_t recv = atomic_load(&b->received);
    if (calls != b->tick_done || recv != b->tick_recv) {
        char line[300];
        snprintf(line, sizeof(line),
                 "bench serve: %llu calls (%.0f/s), %llu notifications "
                 "(%.0f/s)",
                 (unsigned long long)calls,
                 tick_rate(b, calls, b->tick_done, t),
                 (unsigned long long)recv,
                 tick_rate(b, recv, b->tick_recv, t));
        progress_show(b, line);
    }
    b->tick_us = t;
    b->tick_done = calls;
    b->tick_recv = recv;
}

static int
report_serve(bench *b)
{
    const bench_opts *o = b->o;
    uint64_t calls = atomic_load(&b->calls);
    uint64_t recv = atomic_load(&b->received);
    int64_t first = atomic_load(&b->first_us);
    int64_t el = first != 0 ? atomic_load(&b->last_us) - first : 0;
    double rate = per_s(calls + recv, el);
    cli_sb sb;
    cli_sb_init(&sb);
    if (b->json) {
        json_head(b, &sb);
        cli_sb_printf(&sb,
                      ",\"calls\":%llu,\"notifications\":%llu,"
                      "\"elapsed_s\":%.6f,\"msgs_per_s\":%.1f,"
                      "\"interrupted\":%s}\n",
                      (unsigned long long)calls, (unsigned long long)recv,
                      (double)el / 1e6, rate,
                      b->interrupted ? "true" : "false");
    } else {
        cli_sb_puts(&sb, "bench serve ");
        cli_sb_escape(&sb, o->object, strlen(o->object));
        cli_sb_puts(&sb, "/");
        cli_sb_escape(&sb, o->cmd, strlen(o->cmd));
        cli_sb_printf(&sb,
                      ": %llu calls answered, %llu notifications received "
                      "in %.3f s (first to last): %.0f msgs/s\n",
                      (unsigned long long)calls, (unsigned long long)recv,
                      (double)el / 1e6, rate);
    }
    return finish(b, &sb);
}

static int
bench_serve(bench *b)
{
    const bench_opts *o = b->o;
    const char *listen = o->listen != NULL ? o->listen : "127.0.0.1:0";
    int status = CLI_EXIT_FAIL;
    if (open_node(b, listen, 0, &b->n) != NT_OK) {
        return CLI_EXIT_FAIL;
    }
    int rv = nt_rpc_register(b->n, o->object, NT_MATCH_ALL, o->cmd,
                             on_serve_call, b);
    if (rv == NT_OK) {
        rv = nt_subscribe(b->n, o->object, NT_MATCH_ALL, o->cmd,
                          on_serve_notify, b);
    }
    if (rv != NT_OK) {
        cli_err("registering: %s", nt_strerror(rv));
        goto done;
    }
    rv = join(b, b->n, true, true, cli_now_ms() + b->timeout_ms);
    if (rv != NT_OK) {
        status = b->interrupted ? CLI_EXIT_OK : join_failed(b, true, rv);
        goto done;
    }
    char line[600];
    snprintf(line, sizeof(line),
             "bench serve: ready at %s: answering and counting %.255s/%.255s",
             nt_node_address(b->n), o->object, o->cmd);
    progress_show(b, line);
    b->t0_us = b->tick_us = now_us();
    int64_t end = o->duration > 0
                      ? cli_now_ms() + (int64_t)(o->duration * 1e3)
                      : INT64_MAX;
    int64_t tick = cli_now_ms() + TICK_MS;
    while (!b->interrupted &&
           (o->msgs == 0 || atomic_load(&b->next) < o->msgs)) {
        int64_t now = cli_now_ms();
        if (now >= end) {
            break;
        }
        if (now >= tick) {
            progress_serve(b);
            tick += TICK_MS;
        }
        poll_signals(b, (tick < end ? tick : end) - now);
    }
    /* Close first: it waits for running handlers, so the counts are
     * final. */
    nt_node_close(b->n, CLOSE_TIMEOUT_MS);
    return report_serve(b);
done:
    nt_node_close(b->n, CLOSE_TIMEOUT_MS);
    return status;
}

/* ---- Entry -------------------------------------------------------------- */

int
run_bench(const bench_opts *o, const nt_config *base, int timeout_ms,
          bool json)
{
    bench *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        cli_err("%s", nt_strerror(NT_ENOMEM));
        return CLI_EXIT_FAIL;
    }
    b->o = o;
    b->cfg = *base;
    b->timeout_ms = timeout_ms;
    b->json = json;
    b->tty = isatty(STDERR_FILENO) == 1;
    b->main = pthread_self();
    cli_signals_block(&b->sigs);
    int status = CLI_EXIT_FAIL;
    if (o->mode != BENCH_SERVE) {
        b->payload = malloc(o->size > 0 ? o->size : 1);
        if (b->payload == NULL) {
            cli_err("%s", nt_strerror(NT_ENOMEM));
            free(b);
            return CLI_EXIT_FAIL;
        }
        for (size_t i = 0; i < o->size; i++) {
            b->payload[i] = (unsigned char)('a' + i % 26);
        }
    }
    switch (o->mode) {
    case BENCH_RPC:
        status = bench_rpc(b);
        break;
    case BENCH_PUB:
        status = bench_pub(b);
        break;
    case BENCH_SERVE:
        status = bench_serve(b);
        break;
    }
    progress_clear(b);
    if (b->workers != NULL) {
        for (unsigned i = 0; i < o->inflight; i++) {
            free(b->workers[i].hist);
        }
        free(b->workers);
    }
    free(b->payload);
    free(b);
    return status;
}
