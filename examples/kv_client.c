/* SPDX-License-Identifier: MIT */
/*
 * Key-value client for four kv_server partitions.  A key's id is
 * nt_id_hash(key), and (id & 3) picks the partition, so every call on a
 * key reaches the one server that holds it.  It stores eight keys through
 * a split handle (all calls in flight, then resolved in order), reads them
 * back with one nt_execute over their ids, asks for a key nobody stored,
 * and collects the partition sizes with nt_split_any as they finish.  For
 * every key it shows the partition and the node that served it.
 *
 * A member node (it listens, though it serves nothing): NOTIFIER_KEY and
 * NOTIFIER_SEEDS set.  Exits 0 when every answer is the expected one.
 */
#include <notifier/notifier.h>
#include <notifier/service.h>

#include "example.h"

#define NKEYS 8

static const char *const keys[NKEYS] = { "alice", "bob",   "carol",
                                         "dave",  "erin",  "frank",
                                         "grace", "heidi" };

static int failures;

static void
expect(bool ok, const char *what)
{
    if (!ok) {
        printf("  UNEXPECTED: %s\n", what);
        failures++;
    }
}

int
main(void)
{
    nt_node *n = ex_open("kv_client", true);
    if (n == NULL) {
        return 1;
    }
    /* Ready when every partition answers ping: the ids 0..3 cover the
     * four of them, and nt_execute retries while our directory is still
     * filling. */
    uint64_t parts[4] = { 0, 1, 2, 3 };
    nt_exec_results *res = NULL;
    int rv = nt_node_wait_members(n, 5, 20000);
    if (rv == NT_OK) {
        rv = nt_execute(n, "kv", "ping", parts, 4, NULL, 0, 20000, 50, &res);
    }
    for (int i = 0; rv == NT_OK && i < 4; i++) {
        rv = res->items[i].status;
    }
    nt_exec_results_free(res);
    if (rv != NT_OK) {
        ex_not_ready("kv_client", n, rv);
        nt_node_close(n, 1000);
        return 1;
    }
    printf("kv_client: 5 members (4 kv servers and this client), "
           "all 4 partitions answer ping\n\n");

    uint64_t ids[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        ids[i] = nt_id_hash(keys[i]);
    }

    /* put: eight calls in flight at once, resolved in order. */
    nt_split *sp = NULL;
    rv = nt_split_open(&sp, n, "kv", 5000);
    if (rv != NT_OK) {
        fprintf(stderr, "kv_client: %s\n", nt_strerror(rv));
        nt_node_close(n, 1000);
        return 1;
    }
    uint64_t seq[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        char args[64];
        int k = snprintf(args, sizeof(args), "%s=%s@example.com", keys[i],
                         keys[i]);
        seq[i] = nt_split_execute(sp, ids[i], "put", args, (size_t)k);
        expect(seq[i] != 0, "split execute");
    }
    rv = nt_split_complete(sp, seq, NKEYS, 10000, &res);
    expect(rv == NT_OK, "split complete");
    char part_node[4][9] = { "", "", "", "" };
    if (rv == NT_OK) {
        printf("put (split handle: 8 calls in flight, completed in order)\n");
        printf("  %-6s %-20s %-4s %-13s %s\n", "key", "id = nt_id_hash(key)",
               "part", "served by", "answer");
        for (int i = 0; i < NKEYS; i++) {
            const nt_exec_result *r = &res->items[i];
            int part = (int)(ids[i] & 3);
            char node[9], want[16];
            ex_short(r->node, node);
            snprintf(want, sizeof(want), "part %d", part);
            printf("  %-6s %016llx     %-4d node %s \"%.*s\"\n", keys[i],
                   (unsigned long long)ids[i], part, node, (int)r->len,
                   (const char *)r->data);
            expect(r->status == NT_OK && r->len == strlen(want) &&
                       memcmp(r->data, want, r->len) == 0,
                   "put answered by another partition");
            if (part_node[part][0] == '\0') {
                memcpy(part_node[part], node, sizeof(node));
            }
            expect(strcmp(part_node[part], node) == 0,
                   "one partition, two nodes");
        }
        nt_exec_results_free(res);
    }

    /* get: one nt_execute, one call per id, answers in the order of the
     * ids. */
    rv = nt_execute(n, "kv", "get", ids, NKEYS, NULL, 0, 5000, 3, &res);
    expect(rv == NT_OK, "execute get");
    if (rv == NT_OK) {
        printf("\nget (nt_execute over the 8 ids)\n");
        for (int i = 0; i < NKEYS; i++) {
            const nt_exec_result *r = &res->items[i];
            char node[9], want[64];
            snprintf(want, sizeof(want), "%s@example.com", keys[i]);
            printf("  %-6s = %-20.*s (part %d, node %s)\n", keys[i],
                   (int)r->len, (const char *)r->data, (int)(ids[i] & 3),
                   ex_short(r->node, node));
            expect(r->status == NT_OK && r->len == strlen(want) &&
                       memcmp(r->data, want, r->len) == 0,
                   "wrong value");
        }
        nt_exec_results_free(res);
    }
    uint64_t nobody = nt_id_hash("mallory");
    rv = nt_execute(n, "kv", "get", &nobody, 1, NULL, 0, 5000, 3, &res);
    expect(rv == NT_OK, "execute get mallory");
    if (rv == NT_OK) {
        printf("  %-6s -> error %d: %s\n", "mallory", res->items[0].code,
               (const char *)res->items[0].data);
        expect(res->items[0].status == NT_EREMOTE &&
                   res->items[0].code == 404,
               "mallory found");
        nt_exec_results_free(res);
    }

    /* size: one call per partition (ids 0..3), taken as they finish. */
    printf("\nsize (nt_split_any: partitions in the order they answered)\n");
    uint64_t left[4];
    size_t nleft = 0;
    for (uint64_t p = 0; p < 4; p++) {
        left[nleft] = nt_split_execute(sp, p, "size", NULL, 0);
        expect(left[nleft] != 0, "split execute size");
        nleft += left[nleft] != 0;
    }
    long total = 0;
    while (nleft > 0) {
        uint64_t got = 0;
        rv = nt_split_any(sp, left, nleft, 10000, &got, &res);
        expect(rv == NT_OK, "split any");
        if (rv != NT_OK) {
            break;
        }
        const nt_exec_result *r = &res->items[0];
        char node[9];
        long k = r->status == NT_OK ? strtol(r->data, NULL, 10) : 0;
        printf("  part %llu (node %s): %ld key%s\n",
               (unsigned long long)r->id, ex_short(r->node, node), k,
               k == 1 ? "" : "s");
        total += k;
        nt_exec_results_free(res);
        for (size_t i = 0; i < nleft; i++) {
            if (left[i] == got) {
                left[i] = left[--nleft];
                break;
            }
        }
    }
    expect(total == NKEYS, "sizes do not add up to 8");
    nt_split_close(sp);
    nt_node_close(n, 2000);
    printf("\nkv_client: %s\n", failures == 0 ? "all answers as expected"
                                              : "UNEXPECTED ANSWERS");
    return failures == 0 ? 0 : 1;
}
