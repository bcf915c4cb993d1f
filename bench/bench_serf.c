/* SPDX-License-Identifier: MIT */
/*
 * bench_serf: the Serf baseline of the gossip rows (Debian's `serf`
 * package, HashiCorp memberlist LAN defaults), measured like
 * bench_gossip measures us.
 *
 *   bench_serf --nodes N [--changes C] [--kills K] [--poll-ms P]
 *              [--cap-ms M] [--raw FILE]
 *
 * N `serf agent` processes on 127.0.0.1 (distinct gossip and RPC ports),
 * agents 1..N-1 joining agent 0.  This program talks to every agent over
 * Serf's own RPC protocol (MessagePack on TCP, see msgpack.h) rather than
 * by running the `serf` CLI, so that polling costs a round trip, not a
 * process start.  Event handlers are no use here: the agent coalesces
 * member events for at least a second before it runs them.
 *
 * Propagation: for change k, agent k % N sets tag bench=v<k> (the "tags"
 * RPC; the clock starts just before it is sent).  Every other agent is
 * then polled every P ms with "members-filtered" (name = the changer, tag
 * bench = v<k>) until the member appears; a change's time is the last
 * agent's first positive answer (receipt time).  A change not seen by
 * some agent within M ms counts as a timeout (a straggler) with time M.
 *
 * Detection: agent N-k is SIGKILLed; the others are polled every 10 ms
 * until they list it with status "failed"; the time is the last one's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gstats.h"
#include "msgpack.h"
#include "util.h"

#define MAXN 64

typedef struct {
    int fd;
    unsigned char buf[1 << 16];
    size_t len;
    uint64_t seq;
} rpc;

static bu_child agents[MAXN];
static rpc conns[MAXN];
static int gport[MAXN], rport[MAXN];

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_serf --nodes N [--changes C] [--kills K] "
        "[--poll-ms P] [--cap-ms M] [--raw FILE]\n");
    exit(2);
}

static int
rpc_connect(rpc *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->len = 0;
    return 0;
}

static void
rpc_close(rpc *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Sends a request header and, when body is not NULL, its body. */
static int
rpc_send(rpc *c, const char *command, const mp_w *body)
{
    mp_w w = { .len = 0 };
    mp_map(&w, 2);
    mp_str(&w, "Command");
    mp_str(&w, command);
    mp_str(&w, "Seq");
    mp_uint(&w, c->seq++);
    if (body != NULL) {
        if (body->err || w.len + body->len > sizeof(w.buf)) {
            return -1;
        }
        memcpy(w.buf + w.len, body->buf, body->len);
        w.len += body->len;
    }
    if (w.err) {
        return -1;
    }
    for (size_t off = 0; off < w.len;) {
        ssize_t n = write(c->fd, w.buf + off, w.len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

static int
key_is(const char *k, uint32_t len, const char *want)
{
    return len == strlen(want) && memcmp(k, want, len) == 0;
}

/* Parses one response (header, then a members body if members != NULL)
 * from the buffer: MP_OK (consumed), MP_SHORT or MP_BAD. */
static int
parse_response(rpc *c, uint32_t *members, char *err, size_t errcap)
{
    mp_r r = { c->buf, c->buf + c->len, 0 };
    uint32_t n, len;
    const char *k, *s;
    err[0] = '\0';
    if (!mp_read_map(&r, &n)) {
        return r.err;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!mp_read_str(&r, &k, &len)) {
            return r.err;
        }
        if (key_is(k, len, "Error")) {
            if (!mp_read_str(&r, &s, &len)) {
                return r.err;
            }
            size_t m = len < errcap - 1 ? len : errcap - 1;
            memcpy(err, s, m);
            err[m] = '\0';
        } else if (!mp_skip(&r)) {
            return r.err;
        }
    }
    if (members != NULL && err[0] == '\0') {
        *members = 0;
        if (!mp_read_map(&r, &n)) {
            return r.err;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (!mp_read_str(&r, &k, &len)) {
                return r.err;
            }
            if (key_is(k, len, "Members")) {
                uint32_t m;
                if (!mp_read_array(&r, &m)) {
                    return r.err;
                }
                *members = m;
                for (uint32_t j = 0; j < m; j++) {
                    if (!mp_skip(&r)) {
                        return r.err;
                    }
                }
            } else if (!mp_skip(&r)) {
                return r.err;
            }
        }
    }
    size_t used = (size_t)(r.p - c->buf);
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    return MP_OK;
}

/* Reads one response within timeout_ms; 0 ok (err set if the agent
 * answered with an error), -1 on failure. */
static int
rpc_recv(rpc *c, uint32_t *members, char *err, size_t errcap, int timeout_ms)
{
    uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (c->len > 0) {
            int rv = parse_response(c, members, err, errcap);
            if (rv == MP_OK) {
                return 0;
            }
            if (rv == MP_BAD || c->len == sizeof(c->buf)) {
                return -1;
            }
        }
        uint64_t now = bu_now_ns();
        if (now >= deadline) {
            return -1;
        }
        struct pollfd p = { c->fd, POLLIN, 0 };
        int r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (r <= 0) {
            continue;
        }
        ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return -1;
        }
        c->len += (size_t)got;
    }
}

static int
handshake(rpc *c)
{
    mp_w b = { .len = 0 };
    char err[128];
    mp_map(&b, 1);
    mp_str(&b, "Version");
    mp_uint(&b, 1);
    if (rpc_send(c, "handshake", &b) != 0
        || rpc_recv(c, NULL, err, sizeof(err), 5000) != 0 || err[0]) {
        return -1;
    }
    return 0;
}

/* Body of a members-filtered request; empty strings filter nothing. */
static void
filter_body(mp_w *b, const char *tagval, const char *status, const char *name)
{
    b->len = 0;
    b->err = 0;
    mp_map(b, 3);
    mp_str(b, "Tags");
    if (tagval != NULL) {
        mp_map(b, 1);
        mp_str(b, "bench");
        mp_str(b, tagval);
    } else {
        mp_map(b, 0);
    }
    mp_str(b, "Status");
    mp_str(b, status);
    mp_str(b, "Name");
    mp_str(b, name);
}

/* One polling round: asks every agent i with want[i] set, and stamps
 * seen[i] with the receipt time of its first non-empty answer. */
static void
poll_round(unsigned n, const int *want, uint64_t *seen, const mp_w *body)
{
    char err[256];
    for (unsigned i = 0; i < n; i++) {
        if (want[i] && !seen[i]
            && rpc_send(&conns[i], "members-filtered", body) != 0) {
            bu_die("agent %u: send failed", i);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!want[i] || seen[i]) {
            continue;
        }
        uint32_t m = 0;
        if (rpc_recv(&conns[i], &m, err, sizeof(err), 10000) != 0 || err[0]) {
            bu_die("agent %u: members-filtered failed: %s", i, err);
        }
        if (m > 0) {
            seen[i] = bu_now_ns();
        }
    }
}

static void
start_agent(unsigned i, const char *serf)
{
    char node[32], bind[64], rpcaddr[64], join[80];
    snprintf(node, sizeof(node), "-node=s%u", i);
    snprintf(bind, sizeof(bind), "-bind=127.0.0.1:%d", gport[i]);
    snprintf(rpcaddr, sizeof(rpcaddr), "-rpc-addr=127.0.0.1:%d", rport[i]);
    snprintf(join, sizeof(join), "-join=127.0.0.1:%d", gport[0]);
    char *argv[] = { (char *)serf, "agent", node, bind, rpcaddr,
        "-log-level=err", "-tag", "bench=v0", i > 0 ? join : NULL, NULL };
    if (bu_exec(&agents[i], argv, getenv("BENCH_SERF_LOG")) != 0) {
        bu_die("cannot start serf");
    }
}

int
main(int argc, char **argv)
{
    unsigned n = 0, changes = 20, kills = 3, poll_ms = 10, cap_ms = 10000;
    const char *rawpath = NULL, *serf = "serf";
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
        } else if (!strcmp(a, "--poll-ms")) {
            poll_ms = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--cap-ms")) {
            cap_ms = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--raw")) {
            rawpath = v;
        } else if (!strcmp(a, "--serf")) {
            serf = v;
        } else {
            usage();
        }
    }
    if (n < 3 || n > MAXN || changes > 1024 || kills > n - 2) {
        usage();
    }
    bu_install_cleanup();
    setvbuf(stdout, NULL, _IOLBF, 0);
    static gstats g;
    static int want[MAXN];
    static uint64_t seen[MAXN];
    char name[32], val[32], err[256];
    mp_w body;

    uint64_t tstart = bu_now_ns();
    for (unsigned i = 0; i < n; i++) {
        gport[i] = bu_free_port();
        rport[i] = bu_free_port();
        conns[i].fd = -1;
    }
    start_agent(0, serf);
    if (bu_wait_tcp(rport[0], 20000) != 0) {
        bu_die("serf agent 0 did not start");
    }
    for (unsigned i = 1; i < n; i++) {
        start_agent(i, serf);
    }
    for (unsigned i = 0; i < n; i++) {
        if (bu_wait_tcp(rport[i], 30000) != 0
            || rpc_connect(&conns[i], rport[i]) != 0
            || handshake(&conns[i]) != 0) {
            bu_die("serf agent %u: no RPC", i);
        }
    }
    /* Joined: every agent lists N alive members. */
    filter_body(&body, NULL, "alive", "");
    for (unsigned i = 0; i < n; i++) {
        uint64_t deadline = bu_now_ns() + 60000000000ull;
        for (;;) {
            uint32_t m = 0;
            if (rpc_send(&conns[i], "members-filtered", &body) != 0
                || rpc_recv(&conns[i], &m, err, sizeof(err), 10000) != 0
                || err[0]) {
                bu_die("agent %u: members failed: %s", i, err);
            }
            if (m >= n) {
                break;
            }
            if (bu_now_ns() > deadline) {
                bu_die("agent %u sees %u of %u members", i, m, n);
            }
            bu_sleep_us(50000);
        }
    }
    g.join_s = (double)(bu_now_ns() - tstart) / 1e9;

    for (unsigned k = 1; k <= changes; k++) {
        unsigned c = k % n;
        snprintf(val, sizeof(val), "v%u", k);
        snprintf(name, sizeof(name), "s%u", c);
        mp_w tb = { .len = 0 };
        mp_map(&tb, 2);
        mp_str(&tb, "Tags");
        mp_map(&tb, 1);
        mp_str(&tb, "bench");
        mp_str(&tb, val);
        mp_str(&tb, "DeleteTags");
        mp_array(&tb, 0);
        for (unsigned i = 0; i < n; i++) {
            want[i] = i != c;
            seen[i] = 0;
        }
        filter_body(&body, val, "", name);
        uint64_t t0 = bu_now_ns();
        if (rpc_send(&conns[c], "tags", &tb) != 0
            || rpc_recv(&conns[c], NULL, err, sizeof(err), 10000) != 0
            || err[0]) {
            bu_die("agent %u: tags failed: %s", c, err);
        }
        uint64_t deadline = t0 + (uint64_t)cap_ms * 1000000u;
        for (;;) {
            poll_round(n, want, seen, &body);
            unsigned left = 0;
            for (unsigned i = 0; i < n; i++) {
                left += want[i] && !seen[i];
            }
            if (left == 0 || bu_now_ns() >= deadline) {
                break;
            }
            bu_sleep_us((uint64_t)poll_ms * 1000u);
        }
        uint64_t last = 0, first = UINT64_MAX;
        int timeout = 0;
        for (unsigned i = 0; i < n; i++) {
            if (!want[i]) {
                continue;
            }
            if (!seen[i]) {
                timeout = 1;
                continue;
            }
            uint64_t d = seen[i] - t0;
            last = d > last ? d : last;
            first = d < first ? d : first;
        }
        if (timeout) {
            g.prop_timeouts++;
            last = (uint64_t)cap_ms * 1000000u;
        }
        g.prop_ns[g.nprop] = last;
        g.first_ns[g.nprop++] = first;
    }

    /* False positives: every agent still lists N alive members. */
    filter_body(&body, NULL, "alive", "");
    for (unsigned i = 0; i < n; i++) {
        uint32_t m = 0;
        if (rpc_send(&conns[i], "members-filtered", &body) != 0
            || rpc_recv(&conns[i], &m, err, sizeof(err), 10000) != 0) {
            bu_die("agent %u: members failed", i);
        }
        g.false_dead += m < n ? (long)(n - m) : 0;
    }

    for (unsigned k = 1; k <= kills; k++) {
        unsigned victim = n - k;
        snprintf(name, sizeof(name), "s%u", victim);
        filter_body(&body, NULL, "failed", name);
        for (unsigned i = 0; i < n; i++) {
            want[i] = i < victim;
            seen[i] = 0;
        }
        rpc_close(&conns[victim]);
        uint64_t tk = bu_now_ns();
        kill(agents[victim].pid, SIGKILL);
        uint64_t deadline = tk + 60000000000ull;
        for (;;) {
            poll_round(n, want, seen, &body);
            unsigned left = 0;
            for (unsigned i = 0; i < n; i++) {
                left += want[i] && !seen[i];
            }
            if (left == 0 || bu_now_ns() >= deadline) {
                break;
            }
            bu_sleep_us(10000);
        }
        bu_kill(&agents[victim]);
        uint64_t last = 0;
        int timeout = 0;
        for (unsigned i = 0; i < victim; i++) {
            if (!seen[i]) {
                timeout = 1;
                continue;
            }
            last = seen[i] - tk > last ? seen[i] - tk : last;
        }
        if (timeout) {
            g.kill_timeouts++;
            continue;
        }
        g.kill_ns[g.nkill++] = last;
    }

    FILE *raw = rawpath != NULL ? fopen(rawpath, "a") : NULL;
    gstats_print(stdout, raw, "serf", n, &g);
    if (raw != NULL) {
        fclose(raw);
    }
    for (unsigned i = 0; i < n; i++) {
        rpc_close(&conns[i]);
        if (agents[i].pid > 0) {
            kill(agents[i].pid, SIGKILL);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        bu_stop(&agents[i], 5000);
    }
    return g.kill_timeouts ? 1 : 0;
}
