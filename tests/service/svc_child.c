/* SPDX-License-Identifier: MIT */
/*
 * A service node in its own process, for the test that kills one: opens a
 * node seeded by argv[1] with the hex key argv[2] and serves object "rt"
 * (every id, weight 1) with two commands: "hold" prints "HELD" on stdout
 * and never returns (the caller must learn that the node died), "who"
 * answers "child".  Prints "READY <address> <id>" once serving and runs
 * until stdin closes or it is killed.
 */
#include <notifier/notifier.h>
#include <notifier/service.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t hold_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;

static int
cmd_hold(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    (void)rq;
    (void)a;
    printf("HELD\n");
    fflush(stdout);
    /* Held until the process is killed: nobody signals hold_cv. */
    pthread_mutex_lock(&hold_mtx);
    for (;;) {
        pthread_cond_wait(&hold_cv, &hold_mtx);
    }
    return NT_OK;
}

static int
cmd_who(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    (void)rq;
    return nt_answer_printf(a, "child");
}

int
main(int argc, char **argv)
{
    if (argc < 3 || strlen(argv[2]) != 64) {
        fprintf(stderr, "usage: svc_child SEED KEYHEX\n");
        return 2;
    }
    unsigned char key[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(argv[2] + 2 * i, "%2x", &v) != 1) {
            return 2;
        }
        key[i] = (unsigned char)v;
    }
    const char *smap[] = { argv[1], NULL };
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.smap = smap;
    c.key = key;
    c.workers = 2;
    nt_node *n;
    int rv = nt_node_open(&n, &c);
    if (rv != NT_OK) {
        fprintf(stderr, "open: %s\n", nt_strerror(rv));
        return 1;
    }
    nt_service *s;
    if ((rv = nt_service_open(&s, n, "rt", NT_MATCH_ALL, 1.0, 2)) != NT_OK ||
        (rv = nt_service_command(s, "hold", cmd_hold, NULL)) != NT_OK ||
        (rv = nt_service_command(s, "who", cmd_who, NULL)) != NT_OK ||
        (rv = nt_service_start(s)) != NT_OK) {
        fprintf(stderr, "service: %s\n", nt_strerror(rv));
        return 1;
    }
    printf("READY %s %s\n", nt_node_address(n), nt_node_id(n));
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof(buf), stdin) != NULL) {
    }
    nt_service_drain(s, 1000);
    nt_node_close(n, 1000);
    return 0;
}
