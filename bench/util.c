/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the benchmark programs (see util.h): clock,
 * percentiles, forked children on pipes, external processes, free ports,
 * RSS, and the kill-everything-at-exit registry that keeps a benchmark
 * from leaving processes behind whatever way it ends.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 256

/* Processes to kill at exit; only touched by the main thread. */
static pid_t pids[MAX_PIDS];
static volatile sig_atomic_t npids;

/* Our ends of the children's pipes.  A new child closes them all: if it
 * kept a sibling's command pipe open, that sibling would never see EOF. */
static int pipe_fds[2 * MAX_PIDS];
static int npipe_fds;

static void
fd_track(int fd)
{
    if (npipe_fds < 2 * MAX_PIDS) {
        pipe_fds[npipe_fds++] = fd;
    }
}

static void
fd_close(int *fd)
{
    if (*fd < 0) {
        return;
    }
    for (int i = 0; i < npipe_fds; i++) {
        if (pipe_fds[i] == *fd) {
            pipe_fds[i] = -1;
        }
    }
    close(*fd);
    *fd = -1;
}

uint64_t
bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bu_sleep_us(uint64_t us)
{
    struct timespec ts
        = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t
bu_pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return v[rank - 1];
}

static int
cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double
bu_median_d(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

const unsigned char *
bu_key(void)
{
    static const unsigned char key[32] = "notifier-bench-key-32-bytes-long";
    return key;
}

void
bu_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

void
bu_copy(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    if (len >= cap) {
        bu_die("string too long: '%s'", src);
    }
    memcpy(dst, src, len + 1);
}

static void
track(pid_t pid)
{
    if (npids < MAX_PIDS) {
        pids[npids] = pid;
        npids = npids + 1;
    }
}

static void
untrack(pid_t pid)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] == pid) {
            pids[i] = 0;
        }
    }
}

static void
kill_all(void)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
        }
    }
    for (int i = 0; i < npids; i++) {
        if (pids[i] > 0) {
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    }
}

static void
on_signal(int sig)
{
    for (int i = 0; i < npids; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void
bu_install_cleanup(void)
{
    atexit(kill_all);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

/* In a new child: die with the parent, forget the parent's registry. */
static void
child_setup(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
        _exit(1);
    }
    npids = 0;
    for (int i = 0; i < npipe_fds; i++) {
        if (pipe_fds[i] >= 0) {
            close(pipe_fds[i]);
        }
    }
    npipe_fds = 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
}

int
bu_fork(bu_child *c, bu_child_fn fn, void *arg)
{
    int down[2], up[2];
    memset(c, 0, sizeof(*c));
    if (pipe(down) != 0) {
        return -1;
    }
    if (pipe(up) != 0) {
        close(down[0]);
        close(down[1]);
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        return -1;
    }
    if (pid == 0) {
        child_setup(parent);
        close(down[1]);
        close(up[0]);
        FILE *in = fdopen(down[0], "r");
        FILE *out = fdopen(up[1], "w");
        if (in == NULL || out == NULL) {
            _exit(1);
        }
        setvbuf(out, NULL, _IOLBF, 0);
        int rv = fn(arg, in, out);
        fflush(NULL);
        _exit(rv);
    }
    close(down[0]);
    close(up[1]);
    c->pid = pid;
    c->to = down[1];
    c->from = up[0];
    fcntl(c->to, F_SETFD, FD_CLOEXEC);
    fcntl(c->from, F_SETFD, FD_CLOEXEC);
    fd_track(c->to);
    fd_track(c->from);
    track(pid);
    return 0;
}

int
bu_exec(bu_child *c, char *const argv[], const char *errpath)
{
    memset(c, 0, sizeof(*c));
    c->to = -1;
    c->from = -1;
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        child_setup(parent);
        int nul = open("/dev/null", O_RDWR);
        int err = errpath != NULL
            ? open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0644)
            : nul;
        if (nul < 0 || err < 0) {
            _exit(127);
        }
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(err, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    c->pid = pid;
    track(pid);
    return 0;
}

int
bu_send(bu_child *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1) {
        return -1;
    }
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(c->to, line + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        off += (int)w;
    }
    return 0;
}

int
bu_readline(bu_child *c, char *line, size_t cap, int timeout_ms)
{
    uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, c->buf, k);
            line[k] = '\0';
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return 0;
        }
        if (c->len == sizeof(c->buf)) {
            c->len = 0; /* an absurdly long line: drop it */
        }
        uint64_t now = bu_now_ns();
        if (now >= deadline) {
            return -2;
        }
        struct pollfd p = { c->from, POLLIN, 0 };
        int left = (int)((deadline - now) / 1000000u) + 1;
        int r = poll(&p, 1, left);
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (r <= 0) {
            continue;
        }
        ssize_t got = read(c->from, c->buf + c->len, sizeof(c->buf) - c->len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return -1;
        }
        c->len += (size_t)got;
    }
}

int
bu_expect(
    bu_child *c, const char *prefix, char *line, size_t cap, int timeout_ms)
{
    uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = bu_now_ns();
        if (now >= deadline) {
            return -2;
        }
        int rv = bu_readline(
            c, line, cap, (int)((deadline - now) / 1000000u) + 1);
        if (rv != 0) {
            return rv;
        }
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            return 0;
        }
    }
}

void
bu_stop(bu_child *c, int timeout_ms)
{
    fd_close(&c->to);
    if (c->pid > 0) {
        uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
        for (;;) {
            pid_t r = waitpid(c->pid, NULL, WNOHANG);
            if (r == c->pid || (r < 0 && errno == ECHILD)) {
                break;
            }
            if (bu_now_ns() >= deadline) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
                break;
            }
            bu_sleep_us(2000);
        }
        untrack(c->pid);
        c->pid = 0;
    }
    fd_close(&c->from);
}

void
bu_close_input(bu_child *c)
{
    fd_close(&c->to);
}

void
bu_term(bu_child *c, int timeout_ms)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
    }
    bu_stop(c, timeout_ms);
}

void
bu_kill(bu_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
    }
    bu_stop(c, 5000);
}

long
bu_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Ports handed out already, so that two calls never return the same. */
static int given[1024];
static size_t ngiven;

static int
port_once(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0
        && getsockname(s, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(s);
    return port;
}

int
bu_free_port(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int port = port_once();
        if (port < 0) {
            return -1;
        }
        int seen = 0;
        for (size_t i = 0; i < ngiven; i++) {
            seen |= given[i] == port;
        }
        if (!seen) {
            if (ngiven < sizeof(given) / sizeof(given[0])) {
                given[ngiven++] = port;
            }
            return port;
        }
    }
    return -1;
}

int
bu_wait_tcp(int port, int timeout_ms)
{
    uint64_t deadline = bu_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            return -1;
        }
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        int rv = connect(s, (struct sockaddr *)&a, sizeof(a));
        close(s);
        if (rv == 0) {
            return 0;
        }
        if (bu_now_ns() >= deadline) {
            return -1;
        }
        bu_sleep_us(10000);
    }
}
