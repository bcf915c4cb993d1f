/* SPDX-License-Identifier: MIT */
/*
 * What every example program shares: a node configured from the
 * environment, the way notifierd reads it -- NOTIFIER_KEY (the cluster key,
 * base64, as printed by `notifier keygen`) and NOTIFIER_SEEDS (a comma list
 * of host:port to join through) -- and a short form of node ids for
 * printing.  Members listen on 127.0.0.1, port 0 (NOTIFIER_LISTEN
 * overrides it).
 */
#ifndef NT_EXAMPLE_H
#define NT_EXAMPLE_H

#include <notifier/notifier.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_MAX_SEEDS 16

/* Opens a node: a member (serves, listens) or a publisher (only calls and
 * publishes, through the first reachable seed).  Prints the reason and
 * returns NULL on failure. */
static inline nt_node *
ex_open(const char *prog, bool member)
{
    static char seeds_buf[1024];
    static const char *seeds[EX_MAX_SEEDS + 1];
    unsigned char key[32];
    const char *k = getenv("NOTIFIER_KEY");
    if (k == NULL || nt_key_parse(k, key) != NT_OK) {
        fprintf(stderr, "%s: set NOTIFIER_KEY to a cluster key "
                        "(`notifier keygen`)\n", prog);
        return NULL;
    }
    const char *s = getenv("NOTIFIER_SEEDS");
    size_t n = 0;
    if (s != NULL && *s != '\0') {
        snprintf(seeds_buf, sizeof(seeds_buf), "%s", s);
        for (char *save = NULL, *t = strtok_r(seeds_buf, ",", &save);
             t != NULL && n < EX_MAX_SEEDS; t = strtok_r(NULL, ",", &save)) {
            seeds[n++] = t;
        }
    }
    seeds[n] = NULL;
    if (!member && n == 0) {
        fprintf(stderr, "%s: set NOTIFIER_SEEDS to the address of a node\n",
                prog);
        return NULL;
    }
    const char *listen = getenv("NOTIFIER_LISTEN");
    nt_config cfg;
    nt_config_init(&cfg);
    cfg.listen = member ? (listen != NULL ? listen : "127.0.0.1:0") : NULL;
    cfg.smap = n > 0 ? seeds : NULL;
    cfg.key = key;
    cfg.workers = 2;
    nt_node *node = NULL;
    int rv = nt_node_open(&node, &cfg);
    if (rv != NT_OK) {
        fprintf(stderr, "%s: cannot open a node: %s\n", prog,
                nt_strerror(rv));
        return NULL;
    }
    return node;
}

/* The first 8 hex digits of a node id, enough to tell nodes apart. */
static inline const char *
ex_short(const char *id, char buf[9])
{
    snprintf(buf, 9, "%.8s", id != NULL ? id : "?");
    return buf;
}

/* Says why the cluster is not ready: the error and the members as this
 * node sees them, on stderr. */
static inline void
ex_not_ready(const char *prog, nt_node *n, int rv)
{
    fprintf(stderr, "%s: cluster not ready: %s\n", prog, nt_strerror(rv));
    char *text = NULL;
    if (nt_node_info(n, "members", NT_INFO_TEXT, 2000, &text) == NT_OK) {
        fprintf(stderr, "%s", text);
        nt_free(text);
    }
}

/* Blocks until stdin is closed: how the example servers are stopped. */
static inline void
ex_wait_stdin(void)
{
    char line[256];
    while (fgets(line, sizeof(line), stdin) != NULL) {
    }
}

#endif
