/* SPDX-License-Identifier: MIT */
/*
 * The service layer on one node and on two-node clusters: the reply
 * envelope (ok, no such command, handler error with code and message,
 * malformed request, result too large) checked byte by byte, stats
 * counts, the bounded queue, the split handle (any, complete, errors,
 * concurrency, closing with calls in flight), drain (queued calls refused
 * at the timeout, and no accepted call lost under load), rebound moving
 * the traffic, and argument checks.
 */
#include <math.h>

#include "svcutil.h"

/* ---- commands ----------------------------------------------------------- */


/* nt_split_execute with the sequence number in *seq: NT_OK, or NT_EINVAL
 * when it started nothing (returned 0). */
static int
split_exec(nt_split *sp, uint64_t id, const char *cmd, const void *args,
           size_t len, uint64_t *seq)
{
    *seq = nt_split_execute(sp, id, cmd, args, len);
    return *seq != 0 ? NT_OK : NT_EINVAL;
}

static int
cmd_echo(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_write(a, rq->args, rq->len);
}

static int
cmd_fail(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_error(a, 42, "boom %.*s", (int)rq->len,
                           (const char *)rq->args);
}

static int
cmd_fail_silent(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    (void)rq;
    nt_answer_printf(a, "discarded");
    return NT_EINVAL;
}

static int
cmd_big(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    (void)rq;
    static char buf[8192];
    return nt_answer_write(a, buf, sizeof(buf));
}

static int
cmd_id(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_printf(a, "%llu", (unsigned long long)rq->id);
}

/* Answers the name it was given (the service's label). */
static int
cmd_who(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)rq;
    return nt_answer_printf(a, "%s", (const char *)arg);
}

static int
cmd_self_drain(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_printf(a, "%d", nt_service_drain(rq->service, 0));
}

static int
cmd_self_rebound(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_printf(
        a, "%d", nt_service_rebound(rq->service, NT_MATCH_ALL, 2.0));
}

typedef struct {
    tu_counter ran;
} counter_arg;

static int
cmd_count(void *arg, const nt_request *rq, nt_answer *a)
{
    counter_arg *c = arg;
    tu_counter_add(&c->ran, 1);
    return nt_answer_write(a, rq->args, rq->len);
}

/* ---- helpers ------------------------------------------------------------ */

static nt_node *
open_alone(size_t max_payload)
{
    nt_config c;
    nt_config_init(&c);
    c.listen = "127.0.0.1:0";
    c.key = su_key;
    c.workers = 2;
    c.max_payload = max_payload;
    nt_node *n = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&n, &c), NT_OK);
    return n;
}

static nt_service *
open_service(nt_node *n, const char *object, nt_match b, unsigned workers)
{
    nt_service *s = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_service_open(&s, n, object, b, 1.0, workers),
                          NT_OK);
    return s;
}

/* One nt_execute on one id; the caller frees the results. */
static nt_exec_results *
exec1(nt_node *n, const char *object, uint64_t id, const char *cmd,
      const char *args, unsigned retry)
{
    nt_exec_results *res = NULL;
    int rv = nt_execute(n, object, cmd, &id, 1, args,
                        args != NULL ? strlen(args) : 0, 10000, retry, &res);
    CU_ASSERT_EQUAL_FATAL(rv, NT_OK);
    CU_ASSERT_EQUAL_FATAL(res->count, 1);
    return res;
}

static size_t
count_str(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = strstr(hay, needle); p != NULL;
         p = strstr(p + 1, needle)) {
        k++;
    }
    return k;
}

/* Sends a raw request payload with nt_rpc and checks the raw reply. */
static void
raw_call(nt_node *n, const void *req, size_t len, const void *want,
         size_t wlen)
{
    nt_results *res = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_rpc(n, "env", 1, NT_SERVICE_RPC, req, len, 10000,
                                 &res), NT_OK);
    CU_ASSERT_EQUAL(res->count, 1);
    CU_ASSERT_EQUAL(res->items[0].status, NT_OK);
    CU_ASSERT_EQUAL(res->items[0].len, wlen);
    if (res->items[0].len == wlen) {
        CU_ASSERT(memcmp(res->items[0].data, want, wlen) == 0);
    }
    nt_results_free(res);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_envelope(void)
{
    nt_node *n = open_alone(4096);
    nt_service *s = open_service(n, "env", NT_MATCH_ALL, 2);
    CU_ASSERT_EQUAL(nt_service_command(s, "echo", cmd_echo, NULL), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "fail", cmd_fail, NULL), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "mute", cmd_fail_silent, NULL),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "big", cmd_big, NULL), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "id", cmd_id, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);

    /* ok, with the answering node. */
    nt_exec_results *r = exec1(n, "env", 1, "echo", "hi", 0);
    CU_ASSERT(su_is(&r->items[0], "hi"));
    CU_ASSERT_STRING_EQUAL(r->items[0].node, nt_node_id(n));
    CU_ASSERT_EQUAL(r->items[0].attempts, 1);
    CU_ASSERT_EQUAL(r->items[0].id, 1);
    nt_exec_results_free(r);
    r = exec1(n, "env", 1, "ping", "p!", 0);
    CU_ASSERT(su_is(&r->items[0], "p!"));
    nt_exec_results_free(r);
    r = exec1(n, "env", 1, "echo", NULL, 0); /* empty result */
    CU_ASSERT(su_is(&r->items[0], ""));
    nt_exec_results_free(r);

    /* No such command. */
    r = exec1(n, "env", 1, "nope", "x", 3);
    CU_ASSERT_EQUAL(r->items[0].status, NT_ENOENT);
    CU_ASSERT_EQUAL(r->items[0].code, NT_ENOENT);
    CU_ASSERT_STRING_EQUAL(r->items[0].data, "no such command: nope");
    CU_ASSERT_EQUAL(r->items[0].attempts, 1);
    nt_exec_results_free(r);

    /* Handler error: code and message, never retried. */
    r = exec1(n, "env", 1, "fail", "x7", 5);
    CU_ASSERT_EQUAL(r->items[0].status, NT_EREMOTE);
    CU_ASSERT_EQUAL(r->items[0].code, 42);
    CU_ASSERT_STRING_EQUAL(r->items[0].data, "boom x7");
    CU_ASSERT_EQUAL(r->items[0].len, 7);
    CU_ASSERT_EQUAL(r->items[0].attempts, 1);
    nt_exec_results_free(r);
    r = exec1(n, "env", 1, "mute", NULL, 0);
    CU_ASSERT_EQUAL(r->items[0].status, NT_EREMOTE);
    CU_ASSERT_EQUAL(r->items[0].code, NT_EINVAL);
    CU_ASSERT_STRING_EQUAL(r->items[0].data, "command failed");
    nt_exec_results_free(r);

    /* A result larger than the node's max_payload: a failure, not a
     * lost reply. */
    r = exec1(n, "env", 1, "big", NULL, 0);
    CU_ASSERT_EQUAL(r->items[0].status, NT_EREMOTE);
    CU_ASSERT_EQUAL(r->items[0].code, NT_EMSGSIZE);
    nt_exec_results_free(r);

    /* Results in the order of the ids. */
    uint64_t ids[] = { 5, 3, 900, 1, 77 };
    CU_ASSERT_EQUAL_FATAL(nt_execute(n, "env", "id", ids, 5, NULL, 0, 10000,
                                     0, &r), NT_OK);
    CU_ASSERT_EQUAL(r->count, 5);
    for (size_t i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof(want), "%llu", (unsigned long long)ids[i]);
        CU_ASSERT(su_is(&r->items[i], want));
        CU_ASSERT_EQUAL(r->items[i].id, ids[i]);
    }
    nt_exec_results_free(r);

    /* The documented bytes on the wire. */
    static const unsigned char req_echo[] = { 1, 4, 'e', 'c', 'h', 'o',
                                              'z', 'z' };
    static const unsigned char env_ok[] = { 1, 0, 'z', 'z' };
    raw_call(n, req_echo, sizeof(req_echo), env_ok, sizeof(env_ok));
    static const unsigned char req_fail[] = { 1, 4, 'f', 'a', 'i', 'l', 'y' };
    static const unsigned char env_fail[] = { 1, 2, 0, 0, 0, 42, 'b', 'o',
                                              'o', 'm', ' ', 'y' };
    raw_call(n, req_fail, sizeof(req_fail), env_fail, sizeof(env_fail));
    static const unsigned char req_no[] = { 1, 2, 'n', 'o' };
    unsigned char env_no[64] = { 1, 1 };
    uint32_t code = (uint32_t)NT_ENOENT;
    env_no[2] = (unsigned char)(code >> 24);
    env_no[3] = (unsigned char)(code >> 16);
    env_no[4] = (unsigned char)(code >> 8);
    env_no[5] = (unsigned char)code;
    memcpy(env_no + 6, "no such command: no", 19);
    raw_call(n, req_no, sizeof(req_no), env_no, 6 + 19);
    static const unsigned char req_bad[] = { 1, 9, 'x' }; /* name cut */
    unsigned char env_bad[64] = { 1, 4 };
    code = (uint32_t)NT_EPROTO;
    env_bad[2] = (unsigned char)(code >> 24);
    env_bad[3] = (unsigned char)(code >> 16);
    env_bad[4] = (unsigned char)(code >> 8);
    env_bad[5] = (unsigned char)code;
    memcpy(env_bad + 6, "malformed service request", 25);
    raw_call(n, req_bad, sizeof(req_bad), env_bad, 6 + 25);
    raw_call(n, NULL, 0, env_bad, 6 + 25);
    CU_ASSERT_EQUAL(su_stat(s, "malformed"), 2);

    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
}

static void
test_stats_counts(void)
{
    nt_node *n = open_alone(0);
    nt_service *s = open_service(n, "st", NT_MATCH_ALL, 2);
    CU_ASSERT_EQUAL(nt_service_command(s, "ok", cmd_echo, NULL), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "fail", cmd_fail, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);

    uint64_t ids[5] = { 1, 2, 3, 4, 5 };
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL(nt_execute(n, "st", "ok", ids, 5, "a", 1, 10000, 0, &r),
                    NT_OK);
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(nt_execute(n, "st", "fail", ids, 3, "b", 1, 10000, 0, &r),
                    NT_OK);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(r->items[i].status, NT_EREMOTE);
    }
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(nt_execute(n, "st", "nope", ids, 2, NULL, 0, 10000, 0,
                               &r), NT_OK);
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(nt_execute(n, "st", "ping", ids, 4, NULL, 0, 10000, 0,
                               &r), NT_OK);
    nt_exec_results_free(r);

    /* The stats command sees everything before it, not itself. */
    r = exec1(n, "st", 9, "stats", NULL, 0);
    CU_ASSERT_EQUAL_FATAL(r->items[0].status, NT_OK);
    const char *js = r->items[0].data;
    CU_ASSERT_EQUAL(js[0], '{');
    CU_ASSERT_EQUAL(js[r->items[0].len - 1], '}');
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"object\":\"st\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"ok\":{\"calls\":5,\"errors\":0,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"fail\":{\"calls\":3,\"errors\":3,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"ping\":{\"calls\":4,\"errors\":0,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"stats\":{\"calls\":0,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"unknown\":2,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"accepted\":13,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"refused\":0,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"state\":\"running\""));
    CU_ASSERT_EQUAL(count_str(js, "\"mean_us\":"), 4);
    CU_ASSERT_EQUAL(count_str(js, "\"max_us\":"), 4);
    nt_exec_results_free(r);

    /* The C view agrees, and counts the stats call now. */
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_service_stats(s, &text), NT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"stats\":{\"calls\":1,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"ok\":{\"calls\":5,"));
    nt_free(text);

    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
}

static void
test_queue_full(void)
{
    nt_node *n = open_alone(0);
    nt_service *s = open_service(n, "q", NT_MATCH_ALL, 1);
    su_gate g;
    su_gate_init(&g);
    CU_ASSERT_EQUAL(nt_service_command(s, "gate", su_cmd_gate, &g), NT_OK);
    CU_ASSERT_EQUAL(nt_service_set_queue_depth(s, 4), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    nt_split *sp = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_open(&sp, n, "q", 30000), NT_OK);

    /* The only worker is held; then 4 calls fit the queue, 5 do not. */
    uint64_t seq[10];
    CU_ASSERT_EQUAL(split_exec(sp, 1, "gate", "0", 1, &seq[0]), NT_OK);
    CU_ASSERT_EQUAL_FATAL(tu_counter_wait(&g.entered, 1, 10000), 1);
    for (int i = 1; i < 10; i++) {
        CU_ASSERT_EQUAL(split_exec(sp, 1, "gate", "x", 1, &seq[i]),
                        NT_OK);
    }
    uint64_t rest[9];
    size_t nrest = 9;
    memcpy(rest, seq + 1, sizeof(rest));
    for (int k = 0; k < 5; k++) {
        uint64_t got = 0;
        nt_exec_results *r = NULL;
        CU_ASSERT_EQUAL_FATAL(nt_split_any(sp, rest, nrest, 10000, &got, &r),
                              NT_OK);
        CU_ASSERT_EQUAL(r->items[0].status, NT_EAGAIN);
        CU_ASSERT_EQUAL(r->items[0].code, NT_EAGAIN);
        CU_ASSERT_STRING_EQUAL(r->items[0].data, "service queue full");
        nt_exec_results_free(r);
        for (size_t i = 0; i < nrest; i++) {
            if (rest[i] == got) {
                rest[i] = rest[--nrest];
                break;
            }
        }
    }
    CU_ASSERT_EQUAL(nrest, 4);
    CU_ASSERT_EQUAL(su_stat(s, "refused"), 5);
    CU_ASSERT_EQUAL(su_stat(s, "queued"), 4);
    CU_ASSERT_EQUAL(su_stat(s, "running"), 1);

    su_gate_open(&g);
    rest[nrest++] = seq[0];
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, rest, nrest, 30000, &r),
                          NT_OK);
    for (size_t i = 0; i < nrest; i++) {
        CU_ASSERT_EQUAL(r->items[i].status, NT_OK);
    }
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(tu_counter_get(&g.ran), 5);
    CU_ASSERT_EQUAL(su_stat(s, "accepted"), 5);
    nt_split_close(sp);
    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
    su_gate_fini(&g);
}

typedef struct {
    nt_node *n;
    int rv;
    nt_exec_results *r;
} exec_job;

static void *
exec_retry_thread(void *arg)
{
    exec_job *j = arg;
    uint64_t id = 3;
    j->rv = nt_execute(j->n, "q", "gate", &id, 1, "late", 4, 30000, 1000,
                       &j->r);
    return NULL;
}

static void
test_retry_on_queue_full(void)
{
    nt_node *n = open_alone(0);
    nt_service *s = open_service(n, "q", NT_MATCH_ALL, 1);
    su_gate g;
    su_gate_init(&g);
    CU_ASSERT_EQUAL(nt_service_command(s, "gate", su_cmd_gate, &g), NT_OK);
    CU_ASSERT_EQUAL(nt_service_set_queue_depth(s, 1), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    nt_split *sp = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_open(&sp, n, "q", 30000), NT_OK);
    uint64_t seq[2];
    CU_ASSERT_EQUAL(split_exec(sp, 1, "gate", "a", 1, &seq[0]), NT_OK);
    CU_ASSERT_EQUAL_FATAL(tu_counter_wait(&g.entered, 1, 10000), 1);
    CU_ASSERT_EQUAL(split_exec(sp, 2, "gate", "b", 1, &seq[1]), NT_OK);
    CU_ASSERT_FATAL(su_wait_stat(s, "queued", 1, 10000));

    /* Worker busy, queue full: the call is refused (not run) and
     * retried until there is room. */
    exec_job j = { n, -100, NULL };
    pthread_t t;
    pthread_create(&t, NULL, exec_retry_thread, &j);
    CU_ASSERT(su_wait_stat(s, "refused", 1, 10000));
    su_gate_open(&g);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL_FATAL(j.rv, NT_OK);
    CU_ASSERT(su_is(&j.r->items[0], "late"));
    CU_ASSERT(j.r->items[0].attempts >= 2);
    nt_exec_results_free(j.r);
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL(nt_split_complete(sp, seq, 2, 30000, &r), NT_OK);
    nt_exec_results_free(r);
    nt_split_close(sp);
    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
    su_gate_fini(&g);
}

/* ---- split -------------------------------------------------------------- */

#define NGATES 8

typedef struct {
    su_gate g[NGATES];
} gates;

/* args: one digit, the gate to wait for. */
static int
cmd_wait(void *arg, const nt_request *rq, nt_answer *a)
{
    gates *gs = arg;
    int k = rq->len == 1 ? ((const char *)rq->args)[0] - '0' : -1;
    if (k < 0 || k >= NGATES) {
        return nt_answer_error(a, NT_EINVAL, "bad gate");
    }
    return su_cmd_gate(&gs->g[k], rq, a);
}

typedef struct {
    nt_split *sp;
    int tag;
    uint64_t seqs[50];
    int rv;
} split_job;

static void *
split_thread(void *arg)
{
    split_job *j = arg;
    j->rv = NT_OK;
    for (int i = 0; i < 50; i++) {
        char buf[16];
        int k = snprintf(buf, sizeof(buf), "%d.%d", j->tag, i);
        int rv = split_exec(j->sp, (uint64_t)i, "echo", buf, (size_t)k,
                                  &j->seqs[i]);
        if (rv != NT_OK) {
            j->rv = rv;
        }
    }
    return NULL;
}

static void
test_split(void)
{
    nt_node *n = open_alone(0);
    nt_service *s = open_service(n, "sp", NT_MATCH_ALL, NGATES + 2);
    gates gs;
    for (int i = 0; i < NGATES; i++) {
        su_gate_init(&gs.g[i]);
    }
    CU_ASSERT_EQUAL(nt_service_command(s, "wait", cmd_wait, &gs), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "echo", cmd_echo, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    nt_split *sp = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_open(&sp, n, "sp", 30000), NT_OK);

    /* any: the one that can finish, then the next to finish. */
    uint64_t a, b, c, got;
    CU_ASSERT_EQUAL(split_exec(sp, 1, "wait", "0", 1, &a), NT_OK);
    CU_ASSERT_EQUAL(split_exec(sp, 2, "wait", "1", 1, &b), NT_OK);
    CU_ASSERT_EQUAL(split_exec(sp, 3, "echo", "c", 1, &c), NT_OK);
    CU_ASSERT(a < b && b < c);
    uint64_t abc[] = { a, b, c };
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_any(sp, abc, 3, 10000, &got, &r), NT_OK);
    CU_ASSERT_EQUAL(got, c);
    CU_ASSERT_EQUAL(r->count, 1);
    CU_ASSERT(su_is(&r->items[0], "c"));
    CU_ASSERT_EQUAL(r->items[0].id, 3);
    nt_exec_results_free(r);
    /* c is taken now. */
    CU_ASSERT_EQUAL(nt_split_any(sp, abc, 3, 10000, &got, &r), NT_ENOENT);
    CU_ASSERT_PTR_NULL(r);
    /* Both others are held: the wait times out and takes nothing. */
    CU_ASSERT_EQUAL(nt_split_any(sp, abc, 2, 50, &got, &r), NT_ETIMEDOUT);
    su_gate_open(&gs.g[1]);
    CU_ASSERT_EQUAL_FATAL(nt_split_any(sp, abc, 2, 10000, &got, &r), NT_OK);
    CU_ASSERT_EQUAL(got, b);
    CU_ASSERT(su_is(&r->items[0], "1"));
    nt_exec_results_free(r);
    /* complete: times out without taking, then succeeds. */
    CU_ASSERT_EQUAL(nt_split_complete(sp, &a, 1, 50, &r), NT_ETIMEDOUT);
    su_gate_open(&gs.g[0]);
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, &a, 1, 10000, &r), NT_OK);
    CU_ASSERT(su_is(&r->items[0], "0"));
    nt_exec_results_free(r);

    /* complete: results in the order of seqs, whatever the finish order
     * (gates opened last to first). */
    uint64_t q[4];
    const char *arg[4] = { "2", "3", "4", "5" };
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(split_exec(sp, (uint64_t)i, "wait", arg[i], 1,
                                         &q[i]), NT_OK);
    }
    CU_ASSERT_EQUAL(tu_counter_wait(&gs.g[5].entered, 1, 10000), 1);
    for (int i = 5; i >= 2; i--) {
        su_gate_open(&gs.g[i]);
        CU_ASSERT_EQUAL(tu_counter_wait(&gs.g[i].ran, 1, 10000), 1);
    }
    uint64_t order[4] = { q[2], q[0], q[3], q[1] };
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, order, 4, 10000, &r), NT_OK);
    CU_ASSERT_EQUAL(r->count, 4);
    CU_ASSERT(su_is(&r->items[0], "4"));
    CU_ASSERT(su_is(&r->items[1], "2"));
    CU_ASSERT(su_is(&r->items[2], "5"));
    CU_ASSERT(su_is(&r->items[3], "3"));
    nt_exec_results_free(r);

    /* Errors. */
    uint64_t dup[2];
    CU_ASSERT_EQUAL(split_exec(sp, 9, "echo", "d", 1, &dup[0]), NT_OK);
    dup[1] = dup[0];
    CU_ASSERT_EQUAL(nt_split_complete(sp, dup, 2, 10000, &r), NT_EINVAL);
    uint64_t unknown = 999999;
    CU_ASSERT_EQUAL(nt_split_complete(sp, &unknown, 1, 10000, &r), NT_ENOENT);
    CU_ASSERT_EQUAL(nt_split_complete(sp, &a, 1, 10000, &r), NT_ENOENT);
    CU_ASSERT_EQUAL(nt_split_complete(sp, NULL, 0, 10000, &r), NT_EINVAL);
    CU_ASSERT_EQUAL(split_exec(sp, 9, "", NULL, 0, &got), NT_EINVAL);
    /* any over the whole handle. */
    CU_ASSERT_EQUAL_FATAL(nt_split_any(sp, NULL, 0, 10000, &got, &r), NT_OK);
    CU_ASSERT_EQUAL(got, dup[0]);
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(nt_split_any(sp, NULL, 0, 10000, &got, &r), NT_ENOENT);

    /* A call with no target resolves like any other. */
    nt_split *none = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_open(&none, n, "nobody", 1000), NT_OK);
    CU_ASSERT_EQUAL(split_exec(none, 1, "x", NULL, 0, &got), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(none, &got, 1, 10000, &r),
                          NT_OK);
    CU_ASSERT_EQUAL(r->items[0].status, NT_ENOTARGET);
    nt_exec_results_free(r);
    nt_split_close(none);

    /* Four threads on one handle: unique numbers, every call answered. */
    split_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].sp = sp;
        jobs[i].tag = i;
        pthread_create(&th[i], NULL, split_thread, &jobs[i]);
    }
    uint64_t all[200];
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(jobs[i].rv, NT_OK);
        memcpy(all + 50 * i, jobs[i].seqs, sizeof(jobs[i].seqs));
    }
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, all, 200, 30000, &r), NT_OK);
    for (int i = 0; i < 200; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d.%d", i / 50, i % 50);
        CU_ASSERT(su_is(&r->items[i], want));
    }
    nt_exec_results_free(r);

    /* Closing with a call in flight: its answer arrives after the close
     * and is freed then (ASan checks both). */
    uint64_t late;
    CU_ASSERT_EQUAL(split_exec(sp, 1, "wait", "6", 1, &late), NT_OK);
    CU_ASSERT_EQUAL(split_exec(sp, 1, "echo", "e", 1, &got), NT_OK);
    CU_ASSERT_EQUAL(tu_counter_wait(&gs.g[6].entered, 1, 10000), 1);
    nt_split_close(sp);
    su_gate_open(&gs.g[6]);
    CU_ASSERT_EQUAL(nt_service_drain(s, 10000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
    for (int i = 0; i < NGATES; i++) {
        su_gate_fini(&gs.g[i]);
    }
}

/* ---- drain -------------------------------------------------------------- */

typedef struct {
    nt_service *s;
    int timeout_ms;
    int rv;
} drain_job;

static void *
drain_thread(void *arg)
{
    drain_job *d = arg;
    d->rv = nt_service_drain(d->s, d->timeout_ms);
    return NULL;
}

static void
test_drain_timeout_refuses_queued(void)
{
    nt_node *v[2];
    su_open_cluster(v, 2);
    nt_service *s = open_service(v[0], "dr", NT_MATCH_ALL, 2);
    su_gate g;
    su_gate_init(&g);
    CU_ASSERT_EQUAL(nt_service_command(s, "gate", su_cmd_gate, &g), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    su_converge(v, 2);
    nt_split *sp = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_open(&sp, v[1], "dr", 60000), NT_OK);

    /* Two calls hold both workers; 38 more wait in the queue. */
    enum { N = 40 };
    uint64_t seq[N];
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(split_exec(sp, (uint64_t)i, "gate", "run", 3,
                                         &seq[i]), NT_OK);
    }
    CU_ASSERT_EQUAL_FATAL(tu_counter_wait(&g.entered, 2, 10000), 2);
    for (int i = 2; i < N; i++) {
        CU_ASSERT_EQUAL(split_exec(sp, (uint64_t)i, "gate", "q", 1,
                                         &seq[i]), NT_OK);
    }
    CU_ASSERT_FATAL(su_wait_stat(s, "queued", N - 2, 10000));

    /* The drain times out with 38 queued: each gets an explicit error. */
    drain_job d = { s, 200, -100 };
    pthread_t t;
    pthread_create(&t, NULL, drain_thread, &d);
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, seq + 2, N - 2, 30000, &r),
                          NT_OK);
    for (int i = 0; i < N - 2; i++) {
        CU_ASSERT_EQUAL(r->items[i].status, NT_ECLOSED);
        CU_ASSERT_EQUAL(r->items[i].code, NT_ECLOSED);
        CU_ASSERT_STRING_EQUAL(r->items[i].data,
                               "service drained before the call ran");
        CU_ASSERT_STRING_EQUAL(r->items[i].node, nt_node_id(v[0]));
    }
    nt_exec_results_free(r);
    /* The two running calls still finish, and only then drain returns. */
    su_gate_open(&g);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(d.rv, NT_ETIMEDOUT);
    CU_ASSERT_EQUAL_FATAL(nt_split_complete(sp, seq, 2, 30000, &r), NT_OK);
    CU_ASSERT(su_is(&r->items[0], "run"));
    CU_ASSERT(su_is(&r->items[1], "run"));
    nt_exec_results_free(r);
    CU_ASSERT_EQUAL(tu_counter_get(&g.ran), 2);
    nt_split_close(sp);
    su_close_all(v, 2);
    su_gate_fini(&g);
}

typedef struct {
    nt_node *n;
    long issued, ok, closed, notarget, other;
} load_job;

/* Issues calls in windows of 25 through a split handle and tallies every
 * answer by status, until 50 calls found no target (the service is gone
 * and this node knows it). */
static void *
load_thread(void *arg)
{
    load_job *j = arg;
    nt_split *sp = NULL;
    if (nt_split_open(&sp, j->n, "ld", 30000) != NT_OK) {
        j->other = 1;
        return NULL;
    }
    uint64_t seq[25];
    while (j->notarget < 50 && j->other == 0) {
        size_t w = 0;
        for (; w < 25; w++) {
            j->issued++;
            if (split_exec(sp, (uint64_t)j->issued, "work", "w", 1,
                                 &seq[w]) != NT_OK) {
                j->other++;
                break;
            }
        }
        nt_exec_results *r = NULL;
        if (nt_split_complete(sp, seq, w, 60000, &r) != NT_OK) {
            j->other += (long)w;
            break;
        }
        for (size_t i = 0; i < w; i++) {
            int st = r->items[i].status;
            j->ok += st == NT_OK;
            j->closed += st == NT_ECLOSED;
            j->notarget += st == NT_ENOTARGET;
            j->other += st != NT_OK && st != NT_ECLOSED &&
                        st != NT_ENOTARGET;
        }
        nt_exec_results_free(r);
    }
    nt_split_close(sp);
    return NULL;
}

static void
test_drain_under_load(void)
{
    nt_node *v[2];
    su_open_cluster(v, 2);
    /* One worker: calls pile up in the queue, so the drain has accepted
     * calls to finish. */
    nt_service *s = open_service(v[0], "ld", NT_MATCH_ALL, 1);
    counter_arg ca;
    tu_counter_init(&ca.ran);
    CU_ASSERT_EQUAL(nt_service_command(s, "work", cmd_count, &ca), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    su_converge(v, 2);

    /* Two remote callers and one local one, calling before, during and
     * after the drain. */
    load_job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (load_job){ .n = v[i == 2 ? 0 : 1] };
        pthread_create(&th[i], NULL, load_thread, &jobs[i]);
    }
    CU_ASSERT(tu_counter_wait(&ca.ran, 200, 30000) >= 200);
    int rv = nt_service_drain(s, 20000);
    CU_ASSERT_EQUAL(rv, NT_OK);
    long ran_at_drain = tu_counter_get(&ca.ran);
    long issued = 0, ok = 0, closed = 0, notarget = 0, other = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        issued += jobs[i].issued;
        ok += jobs[i].ok;
        closed += jobs[i].closed;
        notarget += jobs[i].notarget;
        other += jobs[i].other;
    }
    /* Every call got exactly one answer; every ok is a call that ran and
     * every call that ran answered ok; nothing ran after the drain. */
    CU_ASSERT_EQUAL(ok + closed + notarget + other, issued);
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT_EQUAL(ok, tu_counter_get(&ca.ran));
    CU_ASSERT_EQUAL(ran_at_drain, tu_counter_get(&ca.ran));
    if (rv == NT_OK) {
        CU_ASSERT_EQUAL(closed, 0); /* nothing had to be refused */
    }
    CU_ASSERT(ok >= 200);
    CU_ASSERT(notarget >= 150);
    su_close_all(v, 2);
    tu_counter_fini(&ca.ran);
}

/* ---- rebound ------------------------------------------------------------ */

/* "XYXY..." for ids 0..7: which service answered each. */
static void
who_serves(nt_node *n, char out[9])
{
    uint64_t ids[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    nt_exec_results *r = NULL;
    memset(out, '?', 8);
    out[8] = '\0';
    CU_ASSERT_EQUAL_FATAL(nt_execute(n, "rb", "who", ids, 8, NULL, 0, 10000,
                                     10, &r), NT_OK);
    for (int i = 0; i < 8; i++) {
        if (r->items[i].status == NT_OK && r->items[i].len == 1) {
            out[i] = ((const char *)r->items[i].data)[0];
        }
    }
    nt_exec_results_free(r);
}

typedef struct {
    nt_node *n;
    pthread_mutex_t mtx; /* guards stop and bad */
    int stop;
    long bad;
    tu_counter rounds;
} rebound_load;

static void *
rebound_load_thread(void *arg)
{
    rebound_load *l = arg;
    uint64_t ids[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    for (;;) {
        pthread_mutex_lock(&l->mtx);
        int stop = l->stop;
        pthread_mutex_unlock(&l->mtx);
        if (stop) {
            break;
        }
        nt_exec_results *r = NULL;
        long bad = 0;
        int rv = nt_execute(l->n, "rb", "who", ids, 8, NULL, 0, 20000, 20,
                            &r);
        if (rv != NT_OK) {
            bad = 8;
            printf("\n  nt_execute: %s\n", nt_strerror(rv));
        } else {
            for (int i = 0; i < 8; i++) {
                if (r->items[i].status != NT_OK) {
                    bad++;
                    printf("\n  id %d: %s (%d attempts)\n", i,
                           nt_strerror(r->items[i].status),
                           (int)r->items[i].attempts);
                }
            }
            nt_exec_results_free(r);
        }
        pthread_mutex_lock(&l->mtx);
        l->bad += bad;
        pthread_mutex_unlock(&l->mtx);
        tu_counter_add(&l->rounds, 1);
    }
    return NULL;
}

static void
test_rebound_moves_traffic(void)
{
    nt_node *v[2];
    su_open_cluster(v, 2);
    nt_service *x = open_service(v[0], "rb", (nt_match){ 1, 0 }, 2);
    nt_service *y = open_service(v[1], "rb", (nt_match){ 1, 1 }, 2);
    CU_ASSERT_EQUAL(nt_service_command(x, "who", cmd_who, "X"), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(y, "who", cmd_who, "Y"), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(x), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(y), NT_OK);
    su_converge(v, 2);
    char w[9];
    for (int i = 0; i < 2; i++) {
        who_serves(v[i], w);
        CU_ASSERT_STRING_EQUAL(w, "XYXYXYXY");
    }

    /* Swap the halves while callers on both nodes keep calling with
     * retries, in an order that always leaves every id served somewhere
     * (Y takes everything, X moves to the odd ids, Y shrinks to the even
     * ones): no call may fail.  Each rebound is make-before-break, and
     * the moments when a caller's directory lags behind are retried. */
    rebound_load loads[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        loads[i] = (rebound_load){ .n = v[i] };
        pthread_mutex_init(&loads[i].mtx, NULL);
        tu_counter_init(&loads[i].rounds);
        pthread_create(&th[i], NULL, rebound_load_thread, &loads[i]);
    }
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(tu_counter_wait(&loads[i].rounds, 1, 10000) >= 1);
    }
    CU_ASSERT_EQUAL(nt_service_rebound(y, NT_MATCH_ALL, 1.0), NT_OK);
    CU_ASSERT_EQUAL(nt_service_rebound(x, (nt_match){ 1, 1 }, 1.0), NT_OK);
    CU_ASSERT_EQUAL(nt_service_rebound(y, (nt_match){ 1, 0 }, 1.0), NT_OK);
    su_converge(v, 2);
    for (int i = 0; i < 2; i++) {
        who_serves(v[i], w);
        CU_ASSERT_STRING_EQUAL(w, "YXYXYXYX");
    }
    /* Same bounds, new weight: a clean re-registration too. */
    CU_ASSERT_EQUAL(nt_service_rebound(x, (nt_match){ 1, 1 }, 3.0), NT_OK);
    su_converge(v, 2);
    for (int i = 0; i < 2; i++) {
        who_serves(v[i], w);
        CU_ASSERT_STRING_EQUAL(w, "YXYXYXYX");
    }
    /* Two more rounds each, so that one ran wholly after the moves. */
    for (int i = 0; i < 2; i++) {
        long now = tu_counter_get(&loads[i].rounds);
        CU_ASSERT(tu_counter_wait(&loads[i].rounds, now + 2, 20000) >=
                  now + 2);
    }
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&loads[i].mtx);
        loads[i].stop = 1;
        pthread_mutex_unlock(&loads[i].mtx);
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(loads[i].bad, 0);
        pthread_mutex_destroy(&loads[i].mtx);
        tu_counter_fini(&loads[i].rounds);
    }
    CU_ASSERT_EQUAL(su_stat(x, "mask"), 1);
    CU_ASSERT_EQUAL(su_stat(x, "value"), 1);
    CU_ASSERT_EQUAL(su_stat(x, "weight"), 3);

    /* After a drain the ids it served have no target (and are not
     * retried forever on a converged directory). */
    CU_ASSERT_EQUAL(nt_service_drain(x, 5000), NT_OK);
    su_converge(v, 2);
    uint64_t odd = 1;
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL(nt_execute(v[1], "rb", "who", &odd, 1, NULL, 0, 10000, 5,
                               &r), NT_ENOTARGET);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(nt_service_drain(y, 5000), NT_OK);
    su_close_all(v, 2);
}

/* ---- lifecycle and arguments -------------------------------------------- */

static void
test_lifecycle_and_arguments(void)
{
    nt_node *n = open_alone(0);
    nt_service *s = NULL;
    CU_ASSERT_EQUAL(nt_service_open(NULL, n, "o", NT_MATCH_ALL, 1, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, NULL, "o", NT_MATCH_ALL, 1, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "", NT_MATCH_ALL, 1, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "o", (nt_match){ 1, 2 }, 1, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "o", NT_MATCH_ALL, 0, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "o", NT_MATCH_ALL, NAN, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "o", NT_MATCH_ALL, 1,
                                    NT_SERVICE_MAX_WORKERS + 1), NT_EINVAL);
    CU_ASSERT_PTR_NULL(s);

    /* Never started: drain just frees. */
    CU_ASSERT_EQUAL(nt_service_open(&s, n, "o", NT_MATCH_ALL, 1, 0), NT_OK);
    CU_ASSERT_EQUAL(nt_service_drain(s, 0), NT_OK);

    s = open_service(n, "lc", NT_MATCH_ALL, 2);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CU_ASSERT_EQUAL(nt_service_command(s, "ping", cmd_echo, NULL), NT_EEXIST);
    CU_ASSERT_EQUAL(nt_service_command(s, "stats", cmd_echo, NULL),
                    NT_EEXIST);
    CU_ASSERT_EQUAL(nt_service_command(s, "", cmd_echo, NULL), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_command(s, longname, cmd_echo, NULL),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_command(s, "x", NULL, NULL), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_command(s, "drain", cmd_self_drain, NULL),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "move", cmd_self_rebound, NULL),
                    NT_OK);
    CU_ASSERT_EQUAL(nt_service_set_queue_depth(s, 0), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_rebound(s, (nt_match){ 0, 1 }, 1), NT_EINVAL);
    /* Before start a rebound only records the bounds. */
    CU_ASSERT_EQUAL(nt_service_rebound(s, (nt_match){ 1, 1 }, 2), NT_OK);
    CU_ASSERT_EQUAL(su_stat(s, "value"), 1);
    CU_ASSERT_EQUAL(nt_service_start(s), NT_OK);
    CU_ASSERT_EQUAL(nt_service_start(s), NT_EEXIST);

    /* Commands added after start are callable. */
    CU_ASSERT_EQUAL(nt_service_command(s, "late", cmd_echo, NULL), NT_OK);
    nt_exec_results *r = exec1(n, "lc", 1, "late", "L", 0);
    CU_ASSERT(su_is(&r->items[0], "L"));
    nt_exec_results_free(r);
    /* Bounds (1,1): an even id has no target. */
    uint64_t even = 2;
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "late", &even, 1, NULL, 0, 1000, 3,
                               &r), NT_ENOTARGET);
    /* A command may rebound its own service, but not drain it. */
    r = exec1(n, "lc", 1, "drain", NULL, 0);
    char want[16];
    snprintf(want, sizeof(want), "%d", NT_EINVAL);
    CU_ASSERT(su_is(&r->items[0], want));
    nt_exec_results_free(r);
    r = exec1(n, "lc", 1, "move", NULL, 0);
    CU_ASSERT(su_is(&r->items[0], "0"));
    nt_exec_results_free(r);
    r = exec1(n, "lc", even, "late", "E", 0); /* now every id */
    CU_ASSERT(su_is(&r->items[0], "E"));
    nt_exec_results_free(r);

    /* Access helper arguments. */
    uint64_t id = 1;
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "late", &id, 0, NULL, 0, 1000, 0, &r),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "", &id, 1, NULL, 0, 1000, 0, &r),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "lc", longname, &id, 1, NULL, 0, 1000, 0,
                               &r), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "late", NULL, 1, NULL, 0, 1000, 0,
                               &r), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "late", &id, 1, NULL, 5, 1000, 0, &r),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "lc", "late", &id, 1, NULL, 0, 1000, 0,
                               NULL), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_execute(n, "nobody", "x", &id, 1, NULL, 0, 1000, 3,
                               &r), NT_ENOTARGET);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(nt_execute_random(n, "lc", "late", "R", 1, 1000, 0, &r),
                    NT_OK);
    CU_ASSERT(su_is(&r->items[0], "R"));
    nt_exec_results_free(r);
    nt_split *sp = NULL;
    CU_ASSERT_EQUAL(nt_split_open(&sp, n, "", 1000), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_split_open(&sp, NULL, "x", 1000), NT_EINVAL);
    nt_split_close(NULL);
    nt_exec_results_free(NULL);
    CU_ASSERT_EQUAL(nt_service_drain(NULL, 0), NT_EINVAL);
    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);

    /* A publisher serves nothing. */
    const char *smap[] = { nt_node_address(n), NULL };
    nt_config c;
    nt_config_init(&c);
    c.smap = smap;
    c.key = su_key;
    c.workers = 2;
    nt_node *pub = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_node_open(&pub, &c), NT_OK);
    /* Connected before it closes: closing a publisher whose first
     * connection is still being made leaks nng's dialer objects (a
     * transport bug, reported with the service layer). */
    CU_ASSERT_EQUAL(nt_node_wait_members(pub, 1, 10000), NT_OK);
    s = open_service(pub, "p", NT_MATCH_ALL, 1);
    CU_ASSERT_EQUAL(nt_service_start(s), NT_ENOTSUP);
    CU_ASSERT_EQUAL(nt_service_drain(s, 0), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(pub, 2000), NT_OK);
    CU_ASSERT_EQUAL(nt_node_close(n, 2000), NT_OK);
}

static int
setup(void)
{
    su_key_init();
    return 0;
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_envelope),
        NT_TEST(test_stats_counts),
        NT_TEST(test_queue_full),
        NT_TEST(test_retry_on_queue_full),
        NT_TEST(test_split),
        NT_TEST(test_lifecycle_and_arguments),
        NT_TEST(test_drain_timeout_refuses_queued),
        NT_TEST(test_drain_under_load),
        NT_TEST(test_rebound_moves_traffic),
        NT_TESTS_END,
    };
    return nt_run_suite("service", setup, NULL, tests);
}
