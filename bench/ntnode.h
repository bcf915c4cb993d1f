/* SPDX-License-Identifier: MIT */
/*
 * One notifier node in its own (forked) process, driven by line commands
 * on a pipe: the server, subscriber and gossip-member side of the
 * benchmarks.  It uses only the public API.
 *
 * The child opens a member node on 127.0.0.1:0 seeded by `seed` (none for
 * the first node), registers what its role asks for, prints
 * "READY <address>" and then answers commands (one reply line each, see
 * ntnode.c) until its command pipe closes, when it closes the node.
 */
#ifndef BENCH_NTNODE_H
#define BENCH_NTNODE_H

#include <stdio.h>

enum {
    NTN_IDLE = 0, /* registers nothing */
    NTN_ECHO, /* RPC "bench"/"echo" answering with the request data */
    NTN_SUB, /* full subscription "bench"/"n", counting */
    NTN_SLICE, /* weighted slice "bench"/"n", counting */
};

typedef struct ntn_args {
    int role;
    double weight; /* NTN_SLICE */
    const char *seeds[4]; /* NULL-terminated smap; seeds[0] NULL = none */
    unsigned workers; /* 0 = library default */
    int quiet_logs; /* 1 = log errors only */
} ntn_args;

/* bu_child_fn: the node process. */
int ntn_main(void *arg, FILE *in, FILE *out);

#endif /* BENCH_NTNODE_H */
