/* SPDX-License-Identifier: MIT */
/*
 * Key-value server, one partition of four: serves the RPC object "kv" for
 * the ids with (id & 3) == PART, where a key's id is nt_id_hash(key).
 * Four of them, PART 0..3, cover every id exactly once.
 *
 * Commands (the id addresses the key, so a call reaches its partition):
 *   put  args "key=value": stores it, answers "part P"
 *   get  answers the value; error 404 when the key is unknown
 *   size answers the number of keys in this partition
 *
 * Usage: kv_server PART   (NOTIFIER_KEY set; NOTIFIER_SEEDS to join)
 * Prints "READY host:port" once serving, serves until its stdin closes,
 * then lists its keys, drains and leaves.
 */
#include <notifier/notifier.h>
#include <notifier/service.h>
#include <pthread.h>

#include "example.h"

typedef struct item {
    struct item *next;
    uint64_t id;
    char *key, *value;
} item;

typedef struct {
    int part;
    pthread_mutex_t mtx; /* guards items */
    item *items;
    size_t count;
} store;

static item *
find(store *st, uint64_t id)
{
    for (item *it = st->items; it != NULL; it = it->next) {
        if (it->id == id) {
            return it;
        }
    }
    return NULL;
}

static int
cmd_put(void *arg, const nt_request *rq, nt_answer *a)
{
    store *st = arg;
    const char *args = rq->args;
    const char *eq = rq->len > 0 ? memchr(args, '=', rq->len) : NULL;
    if (eq == NULL || eq == args) {
        return nt_answer_error(a, 400, "put wants key=value");
    }
    size_t klen = (size_t)(eq - args);
    char *key = strndup(args, klen);
    char *value = strndup(eq + 1, rq->len - klen - 1);
    if (key == NULL || value == NULL) {
        free(key);
        free(value);
        return nt_answer_error(a, NT_ENOMEM, "out of memory");
    }
    /* The id must be the key's: otherwise the caller would find it on
     * another partition. */
    if (nt_id_hash(key) != rq->id) {
        free(key);
        free(value);
        return nt_answer_error(a, 400, "id is not nt_id_hash(key)");
    }
    pthread_mutex_lock(&st->mtx);
    item *it = find(st, rq->id);
    if (it == NULL && (it = calloc(1, sizeof(*it))) != NULL) {
        it->id = rq->id;
        it->next = st->items;
        st->items = it;
        st->count++;
    }
    if (it != NULL) {
        free(it->key);
        free(it->value);
        it->key = key;
        it->value = value;
    }
    pthread_mutex_unlock(&st->mtx);
    if (it == NULL) {
        free(key);
        free(value);
        return nt_answer_error(a, NT_ENOMEM, "out of memory");
    }
    return nt_answer_printf(a, "part %d", st->part);
}

static int
cmd_get(void *arg, const nt_request *rq, nt_answer *a)
{
    store *st = arg;
    int rv;
    pthread_mutex_lock(&st->mtx);
    item *it = find(st, rq->id);
    if (it != NULL) {
        rv = nt_answer_printf(a, "%s", it->value);
    } else {
        rv = nt_answer_error(a, 404, "no such key (part %d)", st->part);
    }
    pthread_mutex_unlock(&st->mtx);
    return rv;
}

static int
cmd_size(void *arg, const nt_request *rq, nt_answer *a)
{
    store *st = arg;
    (void)rq;
    pthread_mutex_lock(&st->mtx);
    size_t k = st->count;
    pthread_mutex_unlock(&st->mtx);
    return nt_answer_printf(a, "%zu", k);
}

int
main(int argc, char **argv)
{
    int part = argc > 1 ? atoi(argv[1]) : -1;
    if (part < 0 || part > 3) {
        fprintf(stderr, "usage: kv_server PART (0..3)\n");
        return 2;
    }
    nt_node *n = ex_open("kv_server", true);
    if (n == NULL) {
        return 1;
    }
    store st = { .part = part, .mtx = PTHREAD_MUTEX_INITIALIZER };
    nt_service *s = NULL;
    nt_match bounds = { 3, (uint64_t)part };
    int rv = nt_service_open(&s, n, "kv", bounds, 1.0, 2);
    if (rv == NT_OK) {
        rv = nt_service_command(s, "put", cmd_put, &st);
    }
    if (rv == NT_OK) {
        rv = nt_service_command(s, "get", cmd_get, &st);
    }
    if (rv == NT_OK) {
        rv = nt_service_command(s, "size", cmd_size, &st);
    }
    if (rv == NT_OK) {
        rv = nt_service_start(s);
    }
    if (rv != NT_OK) {
        fprintf(stderr, "kv_server: %s\n", nt_strerror(rv));
        if (s != NULL) {
            nt_service_drain(s, 0);
        }
        nt_node_close(n, 1000);
        return 1;
    }
    char id[9];
    printf("READY %s\n", nt_node_address(n));
    printf("kv_server %d: node %s serves \"kv\" for ids with (id & 3) == "
           "%d\n",
           part, ex_short(nt_node_id(n), id), part);
    fflush(stdout);

    ex_wait_stdin();

    /* Drain first: no call runs while we read the store. */
    rv = nt_service_drain(s, 5000);
    printf("kv_server %d: drained%s%s; %zu key%s:", part,
           rv == NT_OK ? "" : ": ", rv == NT_OK ? "" : nt_strerror(rv),
           st.count, st.count == 1 ? "" : "s");
    for (item *it = st.items; it != NULL; it = it->next) {
        printf(" %s", it->key);
    }
    printf("\n");
    while (st.items != NULL) {
        item *it = st.items;
        st.items = it->next;
        free(it->key);
        free(it->value);
        free(it);
    }
    nt_node_close(n, 2000);
    return rv == NT_OK ? 0 : 1;
}
