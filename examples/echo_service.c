/* SPDX-License-Identifier: MIT */
/*
 * Echo service: serves the RPC object "echo" on every id with its own pool
 * of two workers and two commands, "echo" (the arguments back) and
 * "upper" (upper-cased; an error with code 22 when there is nothing to
 * shout), plus the built-in "ping" and "stats".
 *
 * Run it with NOTIFIER_KEY set (and NOTIFIER_SEEDS to join a cluster).  It
 * prints "READY host:port" once serving, serves until its stdin closes,
 * then drains (in-flight calls finish) and leaves.
 */
#include <ctype.h>
#include <notifier/notifier.h>
#include <notifier/service.h>

#include "example.h"

static int
cmd_echo(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_write(a, rq->args, rq->len);
}

static int
cmd_upper(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    if (rq->len == 0) {
        return nt_answer_error(a, 22, "nothing to shout");
    }
    const char *in = rq->args;
    for (size_t i = 0; i < rq->len; i++) {
        char c = (char)toupper((unsigned char)in[i]);
        int rv = nt_answer_write(a, &c, 1);
        if (rv != NT_OK) {
            return rv;
        }
    }
    return NT_OK;
}

int
main(void)
{
    nt_node *n = ex_open("echo_service", true);
    if (n == NULL) {
        return 1;
    }
    nt_service *s = NULL;
    int rv = nt_service_open(&s, n, "echo", NT_MATCH_ALL, 1.0, 2);
    if (rv == NT_OK) {
        rv = nt_service_command(s, "echo", cmd_echo, NULL);
    }
    if (rv == NT_OK) {
        rv = nt_service_command(s, "upper", cmd_upper, NULL);
    }
    if (rv == NT_OK) {
        rv = nt_service_start(s);
    }
    if (rv != NT_OK) {
        fprintf(stderr, "echo_service: %s\n", nt_strerror(rv));
        if (s != NULL) {
            nt_service_drain(s, 0);
        }
        nt_node_close(n, 1000);
        return 1;
    }
    char id[9];
    printf("READY %s\n", nt_node_address(n));
    printf("echo_service: node %s serves \"echo\" (echo, upper, ping, "
           "stats) for every id\n",
           ex_short(nt_node_id(n), id));
    fflush(stdout);

    ex_wait_stdin();

    char *stats = NULL;
    if (nt_service_stats(s, &stats) == NT_OK) {
        printf("echo_service: final stats %s\n", stats);
        nt_free(stats);
    }
    rv = nt_service_drain(s, 5000);
    printf("echo_service: drained%s%s, leaving\n", rv == NT_OK ? "" : ": ",
           rv == NT_OK ? "" : nt_strerror(rv));
    nt_node_close(n, 2000);
    return rv == NT_OK ? 0 : 1;
}
