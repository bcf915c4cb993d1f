/* SPDX-License-Identifier: MIT */
/*
 * A node in its own process, for tests that kill one: opens a node seeded
 * by argv[1] with the hex key argv[2], serves RPC "hold"/"q" (never
 * answers) and "echo"/"echo", subscribes "sink"/"c", prints
 * "READY <address> <id>" and runs until stdin closes or it is killed.
 */
#include <notifier/notifier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
hold(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    (void)m;
    (void)r; /* never answered: the caller must learn the peer died */
}

static void
echo(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    nt_reply_send(r, m->data, m->len);
}

static void
sink(void *dest, const nt_msg *m)
{
    (void)dest;
    (void)m;
}

int
main(int argc, char **argv)
{
    if (argc < 3 || strlen(argv[2]) != 64) {
        fprintf(stderr, "usage: child_node SEED KEYHEX\n");
        return 2;
    }
    unsigned char key[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(argv[2] + 2 * i, "%2x", &v);
        key[i] = (unsigned char)v;
    }
    const char *smap[] = { argv[1], NULL };
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = smap;
    c.key = key;
    c.workers = 2;
    /* Under valgrind (scripts/valgrind.sh sets NT_TEST_SLOW) the nodes in
     * the test process run many times slower than this one: probing them
     * at the normal pace would declare them dead. */
    if (getenv("NT_TEST_SLOW") != NULL) {
        c.probe_interval_ms = 2000;
    }
    nt_node *n;
    int rv = nt_node_open(&n, &c);
    if (rv != NT_OK) {
        fprintf(stderr, "open: %s\n", nt_strerror(rv));
        return 1;
    }
    static char d;
    nt_rpc_register(n, "hold", NT_MATCH_ALL, "q", hold, &d);
    nt_rpc_register(n, "echo", NT_MATCH_ALL, "echo", echo, &d);
    nt_subscribe(n, "sink", NT_MATCH_ALL, "c", sink, &d);
    printf("READY %s %s\n", nt_node_address(n), nt_node_id(n));
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof(buf), stdin) != NULL) {
    }
    nt_node_close(n, 1000);
    return 0;
}
