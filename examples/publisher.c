/* SPDX-License-Identifier: MIT */
/*
 * Notification publisher: a publisher node (no listen address; it sends
 * through the first reachable node of NOTIFIER_SEEDS) that publishes four
 * headlines on one id, so they arrive in order, and two tips: one on an
 * odd id, which the subscriber's slice takes, and one on an even id,
 * which nobody takes (nt_publish says so at once with NT_ENOTARGET).
 *
 * Exits 0 when every publish had the expected outcome.
 */
#include <notifier/notifier.h>

#include "example.h"

static int failures;

static void
publish(nt_node *n, const char *cmd, uint64_t id, const char *text,
        int want)
{
    int rv = nt_publish(n, "news", id, cmd, text, strlen(text));
    printf("publisher: news/%s id %016llx \"%s\" -> %s\n", cmd,
           (unsigned long long)id, text, rv == NT_OK ? "ok" : nt_strerror(rv));
    if (rv != want) {
        printf("publisher:   unexpected: wanted %s\n", nt_strerror(want));
        failures++;
    }
}

int
main(void)
{
    nt_node *n = ex_open("publisher", false);
    if (n == NULL) {
        return 1;
    }
    int rv = nt_node_wait_converged(n, 10000);
    if (rv != NT_OK) {
        ex_not_ready("publisher", n, rv);
        nt_node_close(n, 1000);
        return 1;
    }
    /* One id for the headlines: notifications from one sender with the
     * same (object, id) are delivered in publish order. */
    uint64_t world = nt_id_hash("channel:world");
    publish(n, "headline", world, "Notifier 0.1 released", NT_OK);
    publish(n, "headline", world, "Gossip converges in O(log N) rounds",
            NT_OK);
    publish(n, "headline", world, "Services get their own worker pools",
            NT_OK);
    publish(n, "headline", world, "Rebound moves traffic without a gap",
            NT_OK);
    publish(n, "tip", 7, "odd ids go to the slice", NT_OK);
    publish(n, "tip", 8, "even ids have no subscriber", NT_ENOTARGET);
    /* A publisher's publish returns once its server acknowledged it, so
     * everything sent is on its way when we leave. */
    nt_node_close(n, 2000);
    printf("publisher: %s\n",
           failures == 0 ? "done" : "UNEXPECTED OUTCOMES");
    return failures == 0 ? 0 : 1;
}
