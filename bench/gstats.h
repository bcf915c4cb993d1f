/* SPDX-License-Identifier: MIT */
/*
 * Summary of a gossip run, shared by bench_gossip (our nodes) and
 * bench_serf (Serf agents) so that both print the same RESULT keys:
 * propagation of a change (median, p90, max, and the straggler check of
 * issue 9: the slowest change within 3x the median) and detection of a
 * SIGKILLed member (median, max).
 */
#ifndef BENCH_GSTATS_H
#define BENCH_GSTATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gstats {
    uint64_t prop_ns[1024]; /* per change: last node to see it */
    uint64_t first_ns[1024]; /* per change: first node to see it */
    size_t nprop;
    unsigned prop_timeouts; /* changes some node never saw in time */
    uint64_t kill_ns[64]; /* per kill: last node to see it dead */
    uint64_t susp_ns[64]; /* per kill: last node to suspect it (0 =
                             not measured) */
    size_t nkill;
    unsigned kill_timeouts;
    long false_dead; /* members seen dead that were not killed */
    double join_s; /* time until all saw N members */
} gstats;

/* Prints "RESULT impl=<impl> test=gossip nodes=<n> ..." to f and, when
 * raw is not NULL, every measurement to it, one "prop ms" / "kill ms"
 * line each. */
void gstats_print(
    FILE *f, FILE *raw, const char *impl, unsigned nodes, const gstats *g);

#endif /* BENCH_GSTATS_H */
