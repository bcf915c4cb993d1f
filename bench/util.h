/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the benchmark programs: a monotonic clock shared by
 * every process of the machine, percentiles, child processes driven over
 * pipes, external servers (nats-server, serf) started with a parent-death
 * signal so that nothing outlives a benchmark, free ports, and RSS.
 *
 * A child made with bu_fork() runs a function in a forked copy of the
 * caller: fork before the caller starts any thread (before it opens an
 * nng socket or a node).  The child reads commands on `in` and writes
 * replies on `out`, one line each; the parent talks to it with
 * bu_send() / bu_readline().  Closing the command pipe (bu_stop) is the
 * child's cue to exit; SIGKILL follows after a deadline.
 *
 * Every program prints its results as one line starting with "RESULT "
 * followed by key=value pairs, which bench/run.sh parses.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds: one clock for every process here, so
 * timestamps taken in different processes compare directly. */
uint64_t bu_now_ns(void);
void bu_sleep_us(uint64_t us);

/* Sorts v in place and returns the p-th percentile (0..100), nearest
 * rank.  n must be > 0. */
uint64_t bu_pct(uint64_t *v, size_t n, double p);
double bu_median_d(double *v, size_t n);

/* The 32-byte cluster key every benchmark process shares. */
const unsigned char *bu_key(void);

/* Copies a NUL-terminated string; dies if it does not fit. */
void bu_copy(char *dst, size_t cap, const char *src);

/* Prints a message and exits with status 1 (children too). */
void bu_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

typedef struct bu_child {
    pid_t pid;
    int to; /* write end of the child's command pipe */
    int from; /* read end of the child's reply pipe */
    char buf[4096];
    size_t len;
} bu_child;

typedef int (*bu_child_fn)(void *arg, FILE *in, FILE *out);

/* Forks a child running fn(arg, in, out); its exit status is fn's return
 * value.  The child dies with the parent (PR_SET_PDEATHSIG). */
int bu_fork(bu_child *c, bu_child_fn fn, void *arg);

/* Starts an external program with stdin, stdout and stderr on /dev/null
 * (stderr to errpath when not NULL), dying with the parent.  Only pid is
 * set in c. */
int bu_exec(bu_child *c, char *const argv[], const char *errpath);

/* Sends one formatted command line to a child. -1 on error. */
int bu_send(bu_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads one reply line (without the newline) within timeout_ms.
 * 0 = ok, -1 = EOF or error, -2 = timeout. */
int bu_readline(bu_child *c, char *line, size_t cap, int timeout_ms);

/* Reads lines until one starts with prefix (others are ignored). */
int bu_expect(
    bu_child *c, const char *prefix, char *line, size_t cap, int timeout_ms);

/* Closes the command pipe, waits up to timeout_ms for the child to exit,
 * then SIGKILLs it.  Safe on a child already reaped (pid 0). */
void bu_stop(bu_child *c, int timeout_ms);
/* Closes the command pipe only (the child's cue to exit), so that many
 * children can shut down in parallel before bu_stop() reaps them. */
void bu_close_input(bu_child *c);
/* SIGTERM, then SIGKILL after timeout_ms; reaps.  For external servers. */
void bu_term(bu_child *c, int timeout_ms);
/* SIGKILL and reap. */
void bu_kill(bu_child *c);

/* Resident set size of a process in KiB (VmRSS), -1 on error. */
long bu_rss_kb(pid_t pid);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read,
 * close). Good enough for external servers in a benchmark. */
int bu_free_port(void);

/* Waits until a TCP connect to 127.0.0.1:port succeeds: 0, or -1 at the
 * deadline.  Uses no library, so it is safe before forking. */
int bu_wait_tcp(int port, int timeout_ms);

/* Every child and external process registered here is killed by
 * bu_kill_all(), which the programs call at exit and on SIGINT/SIGTERM. */
void bu_install_cleanup(void);

#endif /* BENCH_UTIL_H */
