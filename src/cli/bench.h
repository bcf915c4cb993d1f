/* SPDX-License-Identifier: MIT */
/*
 * `notifier bench`: a load generator in the spirit of `nats bench` (see
 * bench.c).  notifier.c owns the command line: it scans the options,
 * hands the bench ones to bench_option() as it meets them, checks the
 * mode with bench_check() before anything touches the network, and calls
 * run_bench() with the node configuration built from the global options.
 * Nothing here is thread-safe; run_bench() starts and joins its own
 * threads.
 */
#ifndef NT_CLI_BENCH_H
#define NT_CLI_BENCH_H

#include <notifier/notifier.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { BENCH_RPC, BENCH_PUB, BENCH_SERVE } bench_mode;

/* The bench options; zero-initialise, then fill with bench_option() and
 * bench_check(), which also sets the defaults of those not given. */
typedef struct {
    bench_mode mode;
    bool have_msgs, have_size, have_inflight, have_duration, have_subs;
    uint64_t msgs;   /* rpc, pub: messages to send, UINT64_MAX = no limit;
                        serve: exit after that many, 0 = never */
    size_t size;     /* payload bytes */
    unsigned inflight; /* rpc: calls in flight; pub: publishing threads */
    double duration; /* seconds; 0 = no limit */
    unsigned subs;   /* pub: in-process subscriber nodes */
    const char *object;
    const char *cmd;
    const char *listen; /* member node address, or NULL (set by caller) */
} bench_opts;

/* Applies the option whose long name is lng ("msgs", "size", "inflight",
 * "duration", "subs", "object" or "cmd"; name is how it was written, for
 * messages) with value val.  Returns -1 when it is fine, else prints one
 * line on stderr and returns the exit status 2 (CLI_EXIT_USAGE). */
int bench_option(bench_opts *o, const char *lng, const char *name,
                 const char *val);

/* Checks the mode argument ("rpc", "pub" or "serve") and that every
 * option given applies to it, and fills in the defaults.  Returns -1 or,
 * after one line on stderr, CLI_EXIT_USAGE. */
int bench_check(bench_opts *o, const char *mode);

/* Runs the benchmark.  base holds the global options (smap, key,
 * logging, publish timeout); it is copied, never changed.  timeout_ms
 * bounds each call, each publish and each wait; json asks for the
 * summary as one JSON object.  Returns the exit status: 0, or 1 after one
 * line on stderr when the run could not start or some call or publish
 * failed. */
int run_bench(const bench_opts *o, const nt_config *base, int timeout_ms,
              bool json);

#endif /* NT_CLI_BENCH_H */
