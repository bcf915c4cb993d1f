/* SPDX-License-Identifier: MIT */
/*
 * Echo client: calls the "echo" service through a publisher node (a node
 * without a listen address: it serves nothing and sends its calls through
 * the first reachable node of NOTIFIER_SEEDS).  It shows an ok answer, a
 * handler error with its code and message, an unknown command, the
 * built-in ping and stats, and several ids in one nt_execute.
 *
 * Exits 0 when every answer is the expected one.
 */
#include <notifier/notifier.h>
#include <notifier/service.h>

#include "example.h"

static int failures;

/* Prints one call and its unwrapped answer; counts an unexpected one. */
static void
show(const char *cmd, const char *args, const nt_exec_result *r,
     int want_status)
{
    char node[9];
    char call[64];
    snprintf(call, sizeof(call), "%s \"%s\"", cmd, args);
    switch (r->status) {
    case NT_OK:
        printf("  %-24s -> ok \"%.*s\" (node %s)\n", call, (int)r->len,
               (const char *)r->data, ex_short(r->node, node));
        break;
    case NT_EREMOTE:
        printf("  %-24s -> error %d: %s\n", call, r->code,
               (const char *)r->data);
        break;
    default: /* no such command, or the call failed on its way */
        printf("  %-24s -> %s\n", call,
               r->len > 0 ? (const char *)r->data : nt_strerror(r->status));
        break;
    }
    if (r->status != want_status) {
        printf("    unexpected: wanted %s\n", nt_strerror(want_status));
        failures++;
    }
}

static void
call(nt_node *n, const char *cmd, const char *args, int want_status)
{
    nt_exec_results *res = NULL;
    /* Any id will do: the service serves them all. */
    int rv = nt_execute_random(n, "echo", cmd, args, strlen(args), 5000, 3,
                               &res);
    if (rv != NT_OK) {
        printf("  %-24s -> call failed: %s\n", cmd, nt_strerror(rv));
        failures++;
        return;
    }
    show(cmd, args, &res->items[0], want_status);
    nt_exec_results_free(res);
}

int
main(void)
{
    nt_node *n = ex_open("echo_client", false);
    if (n == NULL) {
        return 1;
    }
    /* A publisher asks its server; this waits until the server's
     * directory has converged. */
    int rv = nt_node_wait_converged(n, 10000);
    if (rv != NT_OK) {
        ex_not_ready("echo_client", n, rv);
        nt_node_close(n, 1000);
        return 1;
    }
    printf("echo_client: publisher node, calling through %s\n",
           getenv("NOTIFIER_SEEDS"));
    call(n, "echo", "hello, notifier", NT_OK);
    call(n, "upper", "quiet please", NT_OK);
    call(n, "upper", "", NT_EREMOTE);
    call(n, "reverse", "abc", NT_ENOENT);
    call(n, "ping", "are you there?", NT_OK);

    /* One call per id, all in flight at once, answers in id order. */
    uint64_t ids[] = { nt_id_hash("a"), nt_id_hash("b"), nt_id_hash("c") };
    nt_exec_results *res = NULL;
    rv = nt_execute(n, "echo", "echo", ids, 3, "same args", 9, 5000, 3, &res);
    if (rv == NT_OK) {
        printf("  3 ids in one nt_execute:\n");
        for (size_t i = 0; i < res->count; i++) {
            printf("    id %016llx -> %s \"%.*s\"\n",
                   (unsigned long long)res->items[i].id,
                   res->items[i].status == NT_OK
                       ? "ok"
                       : nt_strerror(res->items[i].status),
                   (int)res->items[i].len,
                   (const char *)res->items[i].data);
            failures += res->items[i].status != NT_OK;
        }
        nt_exec_results_free(res);
    } else {
        failures++;
    }

    rv = nt_execute_random(n, "echo", "stats", NULL, 0, 5000, 3, &res);
    if (rv == NT_OK && res->items[0].status == NT_OK) {
        printf("  stats -> %.*s\n", (int)res->items[0].len,
               (const char *)res->items[0].data);
    } else {
        failures++;
    }
    nt_exec_results_free(res);
    nt_node_close(n, 2000);
    printf("echo_client: %s\n", failures == 0 ? "all answers as expected"
                                              : "UNEXPECTED ANSWERS");
    return failures == 0 ? 0 : 1;
}
