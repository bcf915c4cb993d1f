/* SPDX-License-Identifier: MIT */
/*
 * bench_gossip: our gossip directory on real processes, one node per
 * process on 127.0.0.1, default gossip settings.
 *
 *   bench_gossip --nodes N [--changes C] [--kills K] [--poll-us P]
 *                [--raw FILE]
 *
 * Method.  N node processes join through node 0 (the only seed); the
 * clock starts when each has seen N members and a converged directory.
 *
 * Propagation: for change k, node k % N subscribes a new registration
 * ("gprobe"/"g<k>").  Before that, every other node is armed: it polls
 * whether the registration is routable from it (nt_publish fails with
 * NT_ENOTARGET until the gossip entry is in its index) every P
 * microseconds and stamps the first success.  All stamps come from
 * CLOCK_MONOTONIC, which every process of the machine shares, and the
 * changer stamps just before its nt_subscribe call.  A change's time is
 * the last node's stamp minus the changer's: the time until every node
 * sees it (accurate to about P plus scheduling delay).  Changes run one
 * after the other; each waits until the previous one reached everyone.
 *
 * Detection: node N-k is SIGKILLed; every survivor polls members_alive
 * and members_suspect in "stats" (every 2 ms) until their sum drops (the
 * member is declared dead and its registrations are removed, as Serf's
 * "failed"); the time is the last survivor's stamp minus the moment of
 * the kill.  The time until every survivor merely suspects it is
 * reported too (susp_p50_ms).  Kills run one after
 * the other on the shrinking cluster.  Before the kills, every node must
 * still count N members alive: any shortfall is reported as false_dead.
 *
 * BENCH_DEBUG=1 in the environment prints every node's answer.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "gstats.h"
#include "ntnode.h"
#include "util.h"

#define MAXN 64

static bu_child kids[MAXN];
static ntn_args args[MAXN];
static char seed[128];

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_gossip --nodes N [--changes C] "
        "[--kills K] [--poll-us P] [--raw FILE]\n");
    exit(2);
}

static long long
num_after(const char *line, const char *prefix)
{
    return strtoll(line + strlen(prefix), NULL, 10);
}

/* Sends cmd to every live node in [0, n) except skip; expects prefix. */
static void
all(unsigned n, int skip, const char *prefix, int timeout_ms, const char *cmd,
    long long *out)
{
    char line[256];
    for (unsigned i = 0; i < n; i++) {
        if ((int)i != skip && kids[i].pid > 0
            && bu_send(&kids[i], "%s", cmd)) {
            bu_die("node %u: send failed", i);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if ((int)i == skip || kids[i].pid <= 0) {
            continue;
        }
        if (bu_expect(&kids[i], prefix, line, sizeof(line), timeout_ms)) {
            bu_die("node %u: no '%s' answer to '%s'", i, prefix, cmd);
        }
        if (out != NULL) {
            out[i] = num_after(line, prefix);
        }
    }
}

int
main(int argc, char **argv)
{
    unsigned n = 0, changes = 20, kills = 3, poll_us = 1000;
    const char *rawpath = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            usage();
        }
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--nodes")) {
            n = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--changes")) {
            changes = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--kills")) {
            kills = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--poll-us")) {
            poll_us = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--raw")) {
            rawpath = v;
        } else {
            usage();
        }
    }
    if (n < 3 || n > MAXN || changes > 1024 || kills > n - 2 || poll_us == 0) {
        usage();
    }
    bu_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    static gstats g;
    char line[256], cmd[128];
    static long long vals[MAXN];

    uint64_t tstart = bu_now_ns();
    for (unsigned i = 0; i < n; i++) {
        args[i].role = NTN_IDLE;
        args[i].quiet_logs = 1;
        args[i].workers = 2;
        args[i].seeds[0] = i > 0 ? seed : NULL;
        if (bu_fork(&kids[i], ntn_main, &args[i]) != 0) {
            bu_die("fork failed");
        }
        if (i == 0) {
            if (bu_expect(&kids[0], "READY ", line, sizeof(line), 20000)) {
                bu_die("node 0 did not start");
            }
            bu_copy(seed, sizeof(seed), line + 6);
        }
    }
    for (unsigned i = 1; i < n; i++) {
        if (bu_expect(&kids[i], "READY ", line, sizeof(line), 20000)) {
            bu_die("node %u did not start", i);
        }
    }
    snprintf(cmd, sizeof(cmd), "members %u 60000", n);
    all(n, -1, "ok ", 70000, cmd, vals);
    all(n, -1, "ok ", 70000, "converged 60000", vals);
    for (unsigned i = 0; i < n; i++) {
        if (vals[i] != 0) {
            bu_die("node %u did not converge", i);
        }
    }
    g.join_s = (double)(bu_now_ns() - tstart) / 1e9;

    for (unsigned k = 1; k <= changes; k++) {
        int c = (int)(k % n);
        snprintf(cmd, sizeof(cmd), "watch g%u %u 10000", k, poll_us);
        all(n, c, "armed", 10000, cmd, NULL);
        if (bu_send(&kids[c], "sub g%u", k) != 0
            || bu_expect(&kids[c], "t0 ", line, sizeof(line), 10000) != 0) {
            bu_die("changer %d does not answer", c);
        }
        unsigned long long t0;
        int rv;
        if (sscanf(line, "t0 %llu %d", &t0, &rv) != 2 || rv != 0) {
            bu_die("changer %d: subscribe failed: %s", c, line);
        }
        uint64_t last = 0, first = UINT64_MAX;
        int timeout = 0;
        for (unsigned i = 0; i < n; i++) {
            if ((int)i == c) {
                continue;
            }
            if (bu_expect(&kids[i], "seen ", line, sizeof(line), 20000)) {
                bu_die("node %u: no 'seen'", i);
            }
            if (getenv("BENCH_DEBUG")) {
                fprintf(stderr, "node %u: %s (t0 %llu)\n", i, line, t0);
            }
            long long t = num_after(line, "seen ");
            if (t < 0) {
                timeout = 1;
                continue;
            }
            uint64_t d = (uint64_t)t > t0 ? (uint64_t)t - t0 : 0;
            last = d > last ? d : last;
            first = d < first ? d : first;
        }
        if (timeout) {
            g.prop_timeouts++;
            last = 10000000000ull;
        }
        g.prop_ns[g.nprop] = last;
        g.first_ns[g.nprop++] = first;
    }

    all(n, -1, "stat ", 10000, "stat members_alive", vals);
    for (unsigned i = 0; i < n; i++) {
        g.false_dead += vals[i] >= 0 && vals[i] < n ? (long)(n - vals[i]) : 0;
    }

    for (unsigned k = 1; k <= kills; k++) {
        unsigned victim = n - k;
        unsigned alive_before = n - k + 1;
        snprintf(cmd, sizeof(cmd), "watchdead %u 2000 60000", alive_before);
        all(n, (int)victim, "armed", 10000, cmd, NULL);
        uint64_t tk = bu_now_ns();
        kill(kids[victim].pid, SIGKILL);
        uint64_t last = 0, slast = 0;
        int timeout = 0;
        for (unsigned i = 0; i < n; i++) {
            if (i == victim || kids[i].pid <= 0) {
                continue;
            }
            if (bu_expect(&kids[i], "dead ", line, sizeof(line), 70000)) {
                bu_die("node %u: no 'dead'", i);
            }
            if (getenv("BENCH_DEBUG")) {
                fprintf(stderr, "node %u: %s\n", i, line);
            }
            long long t = -1, ts = 0;
            if (sscanf(line, "dead %lld %lld", &t, &ts) < 1 || t < 0) {
                timeout = 1;
                continue;
            }
            uint64_t d = (uint64_t)t > tk ? (uint64_t)t - tk : 0;
            last = d > last ? d : last;
            d = ts > 0 && (uint64_t)ts > tk ? (uint64_t)ts - tk : 0;
            slast = d > slast ? d : slast;
        }
        bu_kill(&kids[victim]);
        if (timeout) {
            g.kill_timeouts++;
            continue;
        }
        g.susp_ns[g.nkill] = slast;
        g.kill_ns[g.nkill++] = last;
    }

    FILE *raw = rawpath != NULL ? fopen(rawpath, "a") : NULL;
    gstats_print(stdout, raw, "nt", n, &g);
    if (raw != NULL) {
        fclose(raw);
    }
    for (unsigned i = 0; i < n; i++) {
        bu_close_input(&kids[i]); /* all close their nodes in parallel */
    }
    for (unsigned i = 0; i < n; i++) {
        bu_stop(&kids[i], 5000);
    }
    return g.prop_timeouts || g.kill_timeouts ? 1 : 0;
}
