/* SPDX-License-Identifier: MIT */
/*
 * The node process of the benchmarks (see ntnode.h).  Commands, one line
 * each, and their reply lines:
 *
 *   count                 -> count <received> <t_ns>
 *   members K TMO_MS      -> ok <rv>      (nt_node_wait_members)
 *   converged TMO_MS      -> ok <rv>      (nt_node_wait_converged)
 *   regs N TAG            -> ok <rv> <ms> (N subscriptions "r.TAG.<i>")
 *   sub TAG               -> t0 <t_ns> <rv>  (subscribe "gprobe"/TAG; t_ns
 *                                            is taken just before the call)
 *   watch TAG POLL_US TMO -> armed, then seen <t_ns|-1> <polls>
 *   watchdead BELOW POLL_US TMO -> armed, then dead <t_dead|-1> <t_susp>
 *   stat NAME             -> stat <value|-1>  (a counter of "stats")
 *
 * "watch" measures when a registration made on another node becomes
 * routable here: it polls nt_publish("gprobe", 0, TAG), which fails with
 * NT_ENOTARGET at once until the gossip entry has reached this node's
 * index, every POLL_US microseconds, and stamps the first success with
 * the machine-wide monotonic clock.  The single notification that success
 * sends goes to the changer's no-op handler.  "watchdead" polls the
 * members_alive and members_suspect counters of "stats": t_susp is when
 * alive first drops below BELOW (a member suspected), t_dead when alive +
 * suspect does (the member declared dead, its registrations removed).
 */
#include "ntnode.h"

#include <notifier/notifier.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static atomic_ulong received;
static char dest; /* registration owner; only its address matters */

static void
echo(void *d, const nt_msg *m, nt_reply *r)
{
    (void)d;
    nt_reply_send(r, m->data, m->len);
}

static void
count(void *d, const nt_msg *m)
{
    (void)d;
    (void)m;
    atomic_fetch_add_explicit(&received, 1, memory_order_relaxed);
}

static void
sink(void *d, const nt_msg *m)
{
    (void)d;
    (void)m;
}

static void
log_quiet(void *arg, int level, const char *line)
{
    (void)arg;
    if (level <= NT_LOG_ERROR) {
        fprintf(stderr, "%s\n", line);
    }
}

/* One counter of a "stats" JSON text, or -1. */
static long long
stat_parse(const char *text, const char *name)
{
    char key[160];
    snprintf(key, sizeof(key), "\"%s\":", name);
    const char *p = strstr(text, key);
    return p != NULL ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* One counter from the "stats" JSON, or -1. */
static long long
stat_get(nt_node *n, const char *name)
{
    char *text = NULL;
    if (nt_node_info(n, "stats", NT_INFO_JSON, 1000, &text) != NT_OK) {
        return -1;
    }
    long long v = stat_parse(text, name);
    nt_free(text);
    return v;
}

static int
do_regs(nt_node *n, unsigned count_, const char *tag)
{
    char obj[160];
    for (unsigned i = 0; i < count_; i++) {
        snprintf(obj, sizeof(obj), "r.%s.%u", tag, i);
        int rv;
        while ((rv = nt_subscribe(n, obj, NT_MATCH_ALL, "c", sink, &dest))
            == NT_EAGAIN) {
            bu_sleep_us(1000);
        }
        if (rv != NT_OK) {
            return rv;
        }
    }
    return NT_OK;
}

static void
do_watch(
    nt_node *n, FILE *out, const char *tag, unsigned poll_us, unsigned tmo_ms)
{
    fprintf(out, "armed\n");
    uint64_t deadline = bu_now_ns() + (uint64_t)tmo_ms * 1000000u;
    unsigned long polls = 0;
    for (;;) {
        polls++;
        int rv = nt_publish(n, "gprobe", 0, tag, NULL, 0);
        uint64_t t = bu_now_ns();
        if (rv != NT_ENOTARGET) {
            fprintf(out, "seen %llu %lu\n", (unsigned long long)t, polls);
            return;
        }
        if (t >= deadline) {
            fprintf(out, "seen -1 %lu\n", polls);
            return;
        }
        bu_sleep_us(poll_us);
    }
}

static void
do_watchdead(
    nt_node *n, FILE *out, long long below, unsigned poll_us, unsigned tmo_ms)
{
    fprintf(out, "armed\n");
    uint64_t deadline = bu_now_ns() + (uint64_t)tmo_ms * 1000000u;
    unsigned long long tsusp = 0;
    for (;;) {
        char *text = NULL;
        long long alive = -1, suspect = -1;
        if (nt_node_info(n, "stats", NT_INFO_JSON, 1000, &text) == NT_OK) {
            alive = stat_parse(text, "members_alive");
            suspect = stat_parse(text, "members_suspect");
            nt_free(text);
        }
        uint64_t t = bu_now_ns();
        if (alive >= 0 && alive < below && tsusp == 0) {
            tsusp = t;
        }
        if (alive >= 0 && suspect >= 0 && alive + suspect < below) {
            fprintf(out, "dead %llu %llu\n", (unsigned long long)t, tsusp);
            return;
        }
        if (t >= deadline) {
            fprintf(out, "dead -1 %llu\n", tsusp);
            return;
        }
        bu_sleep_us(poll_us);
    }
}

int
ntn_main(void *arg, FILE *in, FILE *out)
{
    const ntn_args *a = arg;
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = a->seeds[0] != NULL ? a->seeds : NULL;
    c.key = bu_key();
    c.workers = a->workers;
    c.max_registrations = 1u << 20;
    if (a->quiet_logs) {
        c.log_fn = log_quiet;
    }
    nt_node *n;
    int rv = nt_node_open(&n, &c);
    if (rv != NT_OK) {
        fprintf(stderr, "bench node: open: %s\n", nt_strerror(rv));
        return 1;
    }
    switch (a->role) {
    case NTN_ECHO:
        rv = nt_rpc_register(n, "bench", NT_MATCH_ALL, "echo", echo, &dest);
        break;
    case NTN_SUB:
        rv = nt_subscribe(n, "bench", NT_MATCH_ALL, "n", count, &dest);
        break;
    case NTN_SLICE:
        rv = nt_slice(n, "bench", NT_MATCH_ALL, "n", count, &dest, a->weight);
        break;
    default:
        rv = NT_OK;
    }
    if (rv != NT_OK) {
        fprintf(stderr, "bench node: register: %s\n", nt_strerror(rv));
        nt_node_close(n, 1000);
        return 1;
    }
    fprintf(out, "READY %s\n", nt_node_address(n));

    char line[256], tag[128];
    unsigned u1, u2;
    long long ll;
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strncmp(line, "count", 5) == 0) {
            fprintf(out, "count %lu %llu\n", atomic_load(&received),
                (unsigned long long)bu_now_ns());
        } else if (sscanf(line, "members %u %u", &u1, &u2) == 2) {
            fprintf(out, "ok %d\n", nt_node_wait_members(n, u1, (int)u2));
        } else if (sscanf(line, "converged %u", &u1) == 1) {
            fprintf(out, "ok %d\n", nt_node_wait_converged(n, (int)u1));
        } else if (sscanf(line, "regs %u %127s", &u1, tag) == 2) {
            uint64_t t = bu_now_ns();
            rv = do_regs(n, u1, tag);
            fprintf(out, "ok %d %llu\n", rv,
                (unsigned long long)((bu_now_ns() - t) / 1000000u));
        } else if (sscanf(line, "sub %127s", tag) == 1) {
            uint64_t t = bu_now_ns();
            rv = nt_subscribe(n, "gprobe", NT_MATCH_ALL, tag, sink, &dest);
            fprintf(out, "t0 %llu %d\n", (unsigned long long)t, rv);
        } else if (sscanf(line, "watchdead %lld %u %u", &ll, &u1, &u2) == 3) {
            do_watchdead(n, out, ll, u1, u2);
        } else if (sscanf(line, "watch %127s %u %u", tag, &u1, &u2) == 3) {
            do_watch(n, out, tag, u1, u2);
        } else if (sscanf(line, "stat %127s", tag) == 1) {
            fprintf(out, "stat %lld\n", stat_get(n, tag));
        } else {
            fprintf(out, "error unknown command\n");
        }
    }
    nt_node_close(n, 1000);
    return 0;
}
