/* SPDX-License-Identifier: MIT */
/*
 * An external program built against the installed notifier package (by
 * CMake's find_package and by pkg-config): opens a node, serves an RPC,
 * calls it, publishes, and exits 0 when all of it worked.
 */
#include <notifier/notifier.h>
#include <stdio.h>
#include <string.h>

static void
echo(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    nt_reply_send(r, m->data, m->len);
}

int
main(void)
{
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    nt_node *n;
    int rv = nt_node_open(&n, &c);
    if (rv != NT_OK) {
        fprintf(stderr, "open: %s\n", nt_strerror(rv));
        return 1;
    }
    static char d;
    nt_rpc_register(n, "svc", NT_MATCH_ALL, "echo", echo, &d);
    nt_results *res = NULL;
    rv = nt_rpc(n, "svc", nt_id_hash("k"), "echo", "installed", 9, 5000,
                &res);
    int ok = rv == NT_OK && res->count == 1 && res->items[0].len == 9 &&
             memcmp(res->items[0].data, "installed", 9) == 0;
    nt_results_free(res);
    nt_node_close(n, 1000);
    printf("consumer: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
