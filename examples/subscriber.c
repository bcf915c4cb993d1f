/* SPDX-License-Identifier: MIT */
/*
 * Notification subscriber: a member node that subscribes to
 * "news"/"headline" for every id and prints each notification as it
 * arrives.  It also takes a weighted *slice* of "news"/"tip" for the ids
 * with the lowest bit set, to show that a slice gets a notification only
 * when its id matches.
 *
 * Usage: subscriber [COUNT]   (NOTIFIER_KEY set; NOTIFIER_SEEDS optional)
 * Prints "READY host:port" once subscribed.  After its stdin closes it
 * waits (up to 10 s) until COUNT notifications (default 5) have arrived,
 * then leaves; exits 0 when they all did.
 */
#include <notifier/notifier.h>
#include <pthread.h>
#include <time.h>

#include "example.h"

static struct {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    long received;
} inbox = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void
on_news(void *dest, const nt_msg *m)
{
    (void)dest;
    char from[9];
    pthread_mutex_lock(&inbox.mtx);
    long k = ++inbox.received;
    /* Printed under the lock so that lines never interleave. */
    printf("subscriber: #%ld %s/%s id %016llx from %s: %.*s\n", k, m->object,
           m->cmd, (unsigned long long)m->id, ex_short(m->from, from),
           (int)m->len, (const char *)m->data);
    fflush(stdout);
    pthread_cond_broadcast(&inbox.cv);
    pthread_mutex_unlock(&inbox.mtx);
}

/* Waits until count notifications arrived or timeout_ms passed. */
static long
wait_received(long count, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&inbox.mtx);
    while (inbox.received < count) {
        if (pthread_cond_timedwait(&inbox.cv, &inbox.mtx, &ts) != 0) {
            break;
        }
    }
    long got = inbox.received;
    pthread_mutex_unlock(&inbox.mtx);
    return got;
}

int
main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 5;
    nt_node *n = ex_open("subscriber", true);
    if (n == NULL) {
        return 1;
    }
    static char self;
    int rv = nt_subscribe(n, "news", NT_MATCH_ALL, "headline", on_news,
                          &self);
    if (rv == NT_OK) {
        rv = nt_slice(n, "news", (nt_match){ 1, 1 }, "tip", on_news, &self,
                      1.0);
    }
    if (rv != NT_OK) {
        fprintf(stderr, "subscriber: %s\n", nt_strerror(rv));
        nt_node_close(n, 1000);
        return 1;
    }
    char id[9];
    printf("READY %s\n", nt_node_address(n));
    printf("subscriber: node %s subscribed to news/headline (every id) and "
           "news/tip (odd ids, slice)\n",
           ex_short(nt_node_id(n), id));
    fflush(stdout);

    ex_wait_stdin();
    long got = wait_received(count, 10000);
    printf("subscriber: %ld of %ld notifications received, leaving\n", got,
           count);
    nt_unsubscribe_all(n, &self);
    nt_node_close(n, 2000);
    return got == count ? 0 : 1;
}
