/* SPDX-License-Identifier: MIT */
/*
 * Service layer (see include/notifier/service.h and docs/SERVICE.md):
 * services with their own worker pool serving named commands on a part of
 * the id space.  The access helpers that call them with retries and the
 * split handle are in access.c; service_impl.h holds what both share.  It
 * is a layer on top of the public API of notifier.h and uses nothing of
 * the node's internals; only the platform layer for its threads, locks
 * and clock.
 *
 * Design notes
 * ------------
 * Hand-off.  The service registers one RPC slice (object, bounds,
 * NT_SERVICE_RPC).  Its node handler runs on the node's workers and does
 * the minimum: check the request envelope, look the command up, copy the
 * call (arguments, caller id, reply handle) into a job and queue it, then
 * return.  The reply is deferred: a service worker runs the command and
 * answers through the handle.  So a slow command occupies a service
 * worker, never a node worker, and the node keeps routing for everyone
 * else.  Every refusal (no such command, malformed, queue full, draining)
 * is answered at once by the node handler, without queueing.
 *
 * Exactly one answer per accepted call.  A job leaves the queue in one of
 * two ways, both under mtx: a worker pops it (and then always answers,
 * whatever the command returns), or the drain timeout steals the whole
 * queue (and answers each with NT_ENV_REFUSED / NT_ECLOSED).  Nothing else
 * removes jobs, so none is lost and none is answered twice.  A reply that
 * fails because the node closed first is dropped: the caller already got
 * NT_ECLOSED from the node.
 *
 * Registration changes are serialised by reg_mtx, held while calling
 * nt_rpc_slice / nt_rpc_unregister.  The node handler takes only mtx, and
 * nothing holds mtx while calling into the node, so an unregister waiting
 * for a handler in progress can never wait on us.  Rebound is
 * make-before-break: the service has two destination slots (slots[0] and
 * slots[1], both pointing back at it), and a rebound registers the new
 * bounds under the free slot before removing the old registration, so the
 * two may even be identical without NT_EEXIST.
 *
 * Drain: unregister (after nt_rpc_unregister returns, called outside the
 * node's handlers, our node handler is not running and will not run
 * again), refuse anything new (state DRAINING), wait for queue + running
 * to reach zero until the deadline, steal and refuse what is still
 * queued, wait for the running commands, stop and join the workers, free.
 *
 * Lock order: service.reg_mtx -> service.mtx.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"
#include "notifier/service.h"
#include "platform/platform.h"
#include "service_impl.h"

#define MAX_NAME 255
#define MAX_MSG 1024

static void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

bool
nti_svc_name_ok(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t n = strlen(s);
    return n > 0 && n <= MAX_NAME;
}

static bool
bounds_ok(nt_match b, double weight)
{
    return (b.value & ~b.mask) == 0 && isfinite(weight) && weight > 0;
}

/* ---- answers ------------------------------------------------------------ */

/* The result a command builds.  buf holds ENV_HDR bytes of envelope
 * header followed by the result, so an ok envelope is sent without a
 * copy.  err is sticky. */
struct nt_answer {
    unsigned char *buf;
    size_t len, cap;
    int err;
    bool has_msg;
    char msg[MAX_MSG + 1];
};

static void
answer_init(nt_answer *a)
{
    a->buf = NULL;
    a->len = a->cap = 0;
    a->err = NT_OK;
    a->has_msg = false;
    a->msg[0] = '\0';
}

static void
answer_fini(nt_answer *a)
{
    free(a->buf);
    a->buf = NULL;
}

/* Makes room for n more bytes; false (and err set) on failure. */
static bool
answer_room(nt_answer *a, size_t n)
{
    if (a->err != NT_OK) {
        return false;
    }
    if (a->buf == NULL) {
        a->len = ENV_HDR;
    }
    if (n > SIZE_MAX / 2 - a->len) {
        a->err = NT_ENOMEM;
        return false;
    }
    if (a->len + n <= a->cap) {
        return true;
    }
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + n) {
        cap *= 2;
    }
    unsigned char *p = realloc(a->buf, cap);
    if (p == NULL) {
        a->err = NT_ENOMEM;
        return false;
    }
    a->buf = p;
    a->cap = cap;
    return true;
}

int
nt_answer_write(nt_answer *a, const void *data, size_t len)
{
    if (a == NULL || (data == NULL && len > 0)) {
        return NT_EINVAL;
    }
    if (!answer_room(a, len)) {
        return a->err;
    }
    if (len > 0) {
        memcpy(a->buf + a->len, data, len);
    }
    a->len += len;
    return NT_OK;
}

static int
answer_vprintf(nt_answer *a, const char *fmt, va_list ap)
{
    char small[256];
    va_list cp;
    va_copy(cp, ap);
    int k = vsnprintf(small, sizeof(small), fmt, cp);
    va_end(cp);
    if (k < 0) {
        return NT_EINVAL;
    }
    if ((size_t)k < sizeof(small)) {
        return nt_answer_write(a, small, (size_t)k);
    }
    /* Long output: format straight into the buffer (+1 for the NUL). */
    if (!answer_room(a, (size_t)k + 1)) {
        return a->err;
    }
    vsnprintf((char *)a->buf + a->len, (size_t)k + 1, fmt, ap);
    a->len += (size_t)k;
    return NT_OK;
}

int
nt_answer_printf(nt_answer *a, const char *fmt, ...)
{
    if (a == NULL || fmt == NULL) {
        return NT_EINVAL;
    }
    va_list ap;
    va_start(ap, fmt);
    int rv = answer_vprintf(a, fmt, ap);
    va_end(ap);
    return rv;
}

int
nt_answer_error(nt_answer *a, int code, const char *fmt, ...)
{
    if (code == 0) {
        code = NT_EINVAL;
    }
    if (a == NULL) {
        return code;
    }
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->msg, sizeof(a->msg), fmt, ap);
        va_end(ap);
        a->has_msg = true;
    }
    return code;
}

/* Appends s[0..n) as a JSON string literal. */
static void
answer_json_str(nt_answer *a, const char *s, size_t n)
{
    nt_answer_write(a, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            nt_answer_write(a, e, 2);
        } else if (c < 0x20) {
            nt_answer_printf(a, "\\u%04x", c);
        } else {
            nt_answer_write(a, &s[i], 1);
        }
    }
    nt_answer_write(a, "\"", 1);
}

/* Answers with a non-ok envelope.  The handle is used up either way; a
 * failure to send (the node closed first) leaves nothing to do. */
static void
reply_env(nt_reply *r, int kind, int code, const char *msg)
{
    unsigned char buf[ENV_ERR_HDR + MAX_MSG];
    size_t n = strlen(msg);
    if (n > MAX_MSG) {
        n = MAX_MSG;
    }
    buf[0] = NT_ENV_VERSION;
    buf[1] = (unsigned char)kind;
    put_be32(buf + 2, (uint32_t)code);
    memcpy(buf + ENV_ERR_HDR, msg, n);
    if (nt_reply_send(r, buf, ENV_ERR_HDR + n) == NT_ENOMEM) {
        nt_reply_error(r, code, msg);
    }
}

/* ---- services ----------------------------------------------------------- */

enum { ST_NEW, ST_RUNNING, ST_DRAINING, ST_STOPPING };

static const char *const state_names[] = { "new", "running", "draining",
                                           "stopping" };

typedef struct svc_cmd {
    struct svc_cmd *next;
    nt_command_fn fn;
    void *arg;
    uint64_t calls, errors, total_us, max_us;
    size_t nlen;
    char name[];
} svc_cmd;

typedef struct job {
    struct job *next;
    nt_reply *reply;
    svc_cmd *cmd;
    uint64_t id;
    size_t len;
    const char *from;
    unsigned char args[];
} job;

/* A registration destination; the handler finds the service through it. */
typedef struct {
    nt_service *svc;
} svc_slot;

struct nt_service {
    nt_node *node;
    char *object;
    unsigned nworkers;
    svc_slot slots[2];

    nti_mtx reg_mtx; /* guards the registration fields below */
    bool started, registered, draining;
    int cur;         /* slot of the current registration */
    nti_thr *threads;
    unsigned nthreads;

    nti_mtx mtx; /* guards everything below (bounds/weight: written with
                    both locks held) */
    nti_cv work_cv; /* workers: a job was queued, or stop */
    nti_cv idle_cv; /* drain: a job finished */
    int state;
    nt_match bounds;
    double weight;
    job *qhead, *qtail;
    unsigned qlen, depth, running;
    svc_cmd *cmds, *cmds_tail;
    uint64_t accepted, refused, dropped, unknown, malformed;
};

/* The service whose worker this thread is, for the drain-from-itself
 * check. */
static _Thread_local nt_service *cur_service;

/* mtx held. */
static svc_cmd *
cmd_find(nt_service *s, const char *name, size_t n)
{
    for (svc_cmd *c = s->cmds; c != NULL; c = c->next) {
        if (c->nlen == n && memcmp(c->name, name, n) == 0) {
            return c;
        }
    }
    return NULL;
}

static int
cmd_add(nt_service *s, const char *name, nt_command_fn fn, void *arg)
{
    size_t n = strlen(name);
    svc_cmd *c = calloc(1, sizeof(*c) + n + 1);
    if (c == NULL) {
        return NT_ENOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    c->nlen = n;
    memcpy(c->name, name, n + 1);
    int rv = NT_OK;
    nti_mtx_lock(&s->mtx);
    if (s->state >= ST_DRAINING) {
        rv = NT_ECLOSED;
    } else if (cmd_find(s, name, n) != NULL) {
        rv = NT_EEXIST;
    } else {
        if (s->cmds_tail != NULL) {
            s->cmds_tail->next = c;
        } else {
            s->cmds = c;
        }
        s->cmds_tail = c;
    }
    nti_mtx_unlock(&s->mtx);
    if (rv != NT_OK) {
        free(c);
    }
    return rv;
}

/* Writes the statistics JSON into a.  mtx held. */
static void
stats_json(nt_service *s, nt_answer *a)
{
    nt_answer_printf(a, "{\"object\":");
    answer_json_str(a, s->object, strlen(s->object));
    nt_answer_printf(a,
                     ",\"mask\":%llu,\"value\":%llu,\"weight\":%.17g,"
                     "\"workers\":%u,\"queue_depth\":%u,\"state\":\"%s\","
                     "\"queued\":%u,\"running\":%u,\"accepted\":%llu,"
                     "\"refused\":%llu,\"dropped\":%llu,\"unknown\":%llu,"
                     "\"malformed\":%llu,\"commands\":{",
                     (unsigned long long)s->bounds.mask,
                     (unsigned long long)s->bounds.value, s->weight,
                     s->nworkers, s->depth, state_names[s->state], s->qlen,
                     s->running, (unsigned long long)s->accepted,
                     (unsigned long long)s->refused,
                     (unsigned long long)s->dropped,
                     (unsigned long long)s->unknown,
                     (unsigned long long)s->malformed);
    for (svc_cmd *c = s->cmds; c != NULL; c = c->next) {
        answer_json_str(a, c->name, c->nlen);
        nt_answer_printf(a,
                         ":{\"calls\":%llu,\"errors\":%llu,\"mean_us\":%llu,"
                         "\"max_us\":%llu}%s",
                         (unsigned long long)c->calls,
                         (unsigned long long)c->errors,
                         (unsigned long long)(c->calls ? c->total_us / c->calls
                                                       : 0),
                         (unsigned long long)c->max_us,
                         c->next != NULL ? "," : "");
    }
    nt_answer_printf(a, "}}");
}

static int
builtin_ping(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    return nt_answer_write(a, rq->args, rq->len);
}

static int
builtin_stats(void *arg, const nt_request *rq, nt_answer *a)
{
    nt_service *s = arg;
    (void)rq;
    nti_mtx_lock(&s->mtx);
    stats_json(s, a);
    nti_mtx_unlock(&s->mtx);
    return a->err;
}

/* The node handler: on a node worker.  Queue or refuse, never block. */
static void
svc_on_call(void *dest, const nt_msg *m, nt_reply *r)
{
    nt_service *s = ((svc_slot *)dest)->svc;
    const unsigned char *p = m->data;
    if (m->len < ENV_HDR || p[0] != NT_ENV_VERSION || p[1] == 0 ||
        m->len < ENV_HDR + (size_t)p[1]) {
        nti_mtx_lock(&s->mtx);
        s->malformed++;
        nti_mtx_unlock(&s->mtx);
        reply_env(r, NT_ENV_MALFORMED, NT_EPROTO,
                  "malformed service request");
        return;
    }
    const char *name = (const char *)p + ENV_HDR;
    size_t nlen = p[1];
    size_t alen = m->len - ENV_HDR - nlen;
    const char *from = m->from != NULL ? m->from : "";
    size_t flen = strlen(from);
    job *j = malloc(sizeof(*j) + alen + flen + 1);
    if (j == NULL) {
        reply_env(r, NT_ENV_REFUSED, NT_ENOMEM, "service out of memory");
        return;
    }
    j->next = NULL;
    j->reply = r;
    j->id = m->id;
    j->len = alen;
    if (alen > 0) {
        memcpy(j->args, p + ENV_HDR + nlen, alen);
    }
    memcpy(j->args + alen, from, flen + 1);
    j->from = (const char *)j->args + alen;

    int kind = NT_ENV_OK, code = NT_OK;
    nti_mtx_lock(&s->mtx);
    if (s->state != ST_RUNNING) {
        kind = NT_ENV_REFUSED;
        code = NT_ECLOSED;
    } else if ((j->cmd = cmd_find(s, name, nlen)) == NULL) {
        s->unknown++;
        kind = NT_ENV_NOCOMMAND;
        code = NT_ENOENT;
    } else if (s->qlen >= s->depth) {
        s->refused++;
        kind = NT_ENV_REFUSED;
        code = NT_EAGAIN;
    } else {
        if (s->qtail != NULL) {
            s->qtail->next = j;
        } else {
            s->qhead = j;
        }
        s->qtail = j;
        s->qlen++;
        s->accepted++;
        nti_cv_signal(&s->work_cv);
    }
    nti_mtx_unlock(&s->mtx);
    if (kind == NT_ENV_OK) {
        return;
    }
    free(j);
    char msg[64 + MAX_NAME];
    if (kind == NT_ENV_NOCOMMAND) {
        snprintf(msg, sizeof(msg), "no such command: %.*s", (int)nlen, name);
    } else {
        snprintf(msg, sizeof(msg), "%s",
                 code == NT_EAGAIN ? "service queue full"
                                   : "service is draining");
    }
    reply_env(r, kind, code, msg);
}

/* Counts a finished call.  Done before the answer is sent, so a caller
 * that has its answer sees it counted. */
static void
job_count(nt_service *s, svc_cmd *c, bool failed, uint64_t dt)
{
    nti_mtx_lock(&s->mtx);
    c->calls++;
    c->errors += failed;
    c->total_us += dt;
    if (dt > c->max_us) {
        c->max_us = dt;
    }
    nti_mtx_unlock(&s->mtx);
}

/* Runs one job and answers it. */
static void
job_run(nt_service *s, job *j)
{
    nt_answer a;
    answer_init(&a);
    nt_request rq = {
        .service = s,
        .object = s->object,
        .command = j->cmd->name,
        .id = j->id,
        .args = j->len > 0 ? j->args : NULL,
        .len = j->len,
        .from = j->from,
    };
    uint64_t t0 = nti_clock_us();
    int rc = j->cmd->fn(j->cmd->arg, &rq, &a);
    uint64_t dt = nti_clock_us() - t0;
    if (rc == NT_OK && a.err != NT_OK) {
        rc = a.err;
        snprintf(a.msg, sizeof(a.msg), "building the result: %s",
                 nt_strerror(a.err));
        a.has_msg = true;
    }
    job_count(s, j->cmd, rc != NT_OK, dt);
    if (rc == NT_OK) {
        unsigned char hdr[ENV_HDR];
        unsigned char *env = a.buf != NULL ? a.buf : hdr;
        size_t len = a.buf != NULL ? a.len : ENV_HDR;
        env[0] = NT_ENV_VERSION;
        env[1] = NT_ENV_OK;
        int sent = nt_reply_send(j->reply, env, len);
        if (sent == NT_EMSGSIZE || sent == NT_ENOMEM) {
            /* The handle is still ours: answer with the failure. */
            nti_mtx_lock(&s->mtx);
            j->cmd->errors++;
            nti_mtx_unlock(&s->mtx);
            snprintf(a.msg, sizeof(a.msg), "result of %zu bytes: %s",
                     len - ENV_HDR, nt_strerror(sent));
            reply_env(j->reply, NT_ENV_FAILED, sent, a.msg);
        }
    } else {
        reply_env(j->reply, NT_ENV_FAILED, rc,
                  a.has_msg ? a.msg : "command failed");
    }
    answer_fini(&a);
    free(j);
}

static void
svc_worker(void *arg)
{
    nt_service *s = arg;
    cur_service = s;
    nti_thr_setname("nt-service");
    nti_mtx_lock(&s->mtx);
    for (;;) {
        while (s->qhead == NULL && s->state != ST_STOPPING) {
            nti_cv_wait(&s->work_cv, &s->mtx);
        }
        job *j = s->qhead;
        if (j == NULL) {
            break;
        }
        s->qhead = j->next;
        if (s->qhead == NULL) {
            s->qtail = NULL;
        }
        s->qlen--;
        s->running++;
        nti_mtx_unlock(&s->mtx);
        job_run(s, j);
        nti_mtx_lock(&s->mtx);
        s->running--;
        if (s->state == ST_DRAINING && s->running == 0 && s->qhead == NULL) {
            nti_cv_broadcast(&s->idle_cv);
        }
    }
    nti_mtx_unlock(&s->mtx);
    cur_service = NULL;
}

/* Stops and joins the workers.  reg_mtx held (or draining set, which
 * keeps everyone else away from the threads); queue empty. */
static void
workers_stop(nt_service *s)
{
    nti_mtx_lock(&s->mtx);
    s->state = ST_STOPPING;
    nti_cv_broadcast(&s->work_cv);
    nti_mtx_unlock(&s->mtx);
    for (unsigned i = 0; i < s->nthreads; i++) {
        nti_thr_join(&s->threads[i]);
    }
    s->nthreads = 0;
}

int
nt_service_open(nt_service **out, nt_node *node, const char *object,
                nt_match bounds, double weight, unsigned workers)
{
    if (out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (node == NULL || !nti_svc_name_ok(object) ||
        !bounds_ok(bounds, weight) || workers > NT_SERVICE_MAX_WORKERS) {
        return NT_EINVAL;
    }
    if (workers == 0) {
        workers = nti_ncpu();
        workers = workers < 2 ? 2
                  : workers > NT_SERVICE_MAX_WORKERS ? NT_SERVICE_MAX_WORKERS
                                                     : workers;
    }
    nt_service *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NT_ENOMEM;
    }
    s->object = strdup(object);
    s->threads = calloc(workers, sizeof(*s->threads));
    if (s->object == NULL || s->threads == NULL) {
        goto fail;
    }
    s->node = node;
    s->nworkers = workers;
    s->slots[0].svc = s;
    s->slots[1].svc = s;
    s->bounds = bounds;
    s->weight = weight;
    s->depth = NT_SERVICE_DEFAULT_QUEUE;
    s->state = ST_NEW;
    nti_mtx_init(&s->reg_mtx);
    nti_mtx_init(&s->mtx);
    nti_cv_init(&s->work_cv);
    nti_cv_init(&s->idle_cv);
    if (cmd_add(s, "ping", builtin_ping, NULL) != NT_OK ||
        cmd_add(s, "stats", builtin_stats, s) != NT_OK) {
        nt_service_drain(s, 0);
        return NT_ENOMEM;
    }
    *out = s;
    return NT_OK;

fail:
    free(s->threads);
    free(s->object);
    free(s);
    return NT_ENOMEM;
}

int
nt_service_command(nt_service *s, const char *name, nt_command_fn fn,
                   void *arg)
{
    if (s == NULL || !nti_svc_name_ok(name) || fn == NULL) {
        return NT_EINVAL;
    }
    return cmd_add(s, name, fn, arg);
}

int
nt_service_set_queue_depth(nt_service *s, unsigned depth)
{
    if (s == NULL || depth == 0 || depth > NT_SERVICE_MAX_QUEUE) {
        return NT_EINVAL;
    }
    nti_mtx_lock(&s->mtx);
    s->depth = depth;
    nti_mtx_unlock(&s->mtx);
    return NT_OK;
}

int
nt_service_start(nt_service *s)
{
    if (s == NULL) {
        return NT_EINVAL;
    }
    int rv = NT_OK;
    nti_mtx_lock(&s->reg_mtx);
    if (s->draining) {
        rv = NT_ECLOSED;
        goto out;
    }
    if (s->started) {
        rv = NT_EEXIST;
        goto out;
    }
    nti_mtx_lock(&s->mtx);
    s->state = ST_RUNNING;
    nt_match bounds = s->bounds;
    double weight = s->weight;
    nti_mtx_unlock(&s->mtx);
    for (unsigned i = 0; i < s->nworkers; i++) {
        if ((rv = nti_thr_create(&s->threads[i], svc_worker, s)) != NT_OK) {
            goto fail;
        }
        s->nthreads++;
    }
    rv = nt_rpc_slice(s->node, s->object, bounds, NT_SERVICE_RPC,
                      svc_on_call, &s->slots[s->cur], weight);
    if (rv != NT_OK) {
        goto fail;
    }
    s->started = true;
    s->registered = true;
    goto out;

fail:
    workers_stop(s);
    nti_mtx_lock(&s->mtx);
    s->state = ST_NEW;
    nti_mtx_unlock(&s->mtx);
out:
    nti_mtx_unlock(&s->reg_mtx);
    return rv;
}

int
nt_service_rebound(nt_service *s, nt_match bounds, double weight)
{
    if (s == NULL || !bounds_ok(bounds, weight)) {
        return NT_EINVAL;
    }
    int rv = NT_OK;
    nti_mtx_lock(&s->reg_mtx);
    if (s->draining) {
        rv = NT_ECLOSED;
    } else if (s->registered) {
        int next = 1 - s->cur;
        rv = nt_rpc_slice(s->node, s->object, bounds, NT_SERVICE_RPC,
                          svc_on_call, &s->slots[next], weight);
        if (rv == NT_OK) {
            /* Only fails when the node is closing: the registration goes
             * with the node then. */
            (void)nt_rpc_unregister(s->node, s->object, s->bounds,
                                    NT_SERVICE_RPC, &s->slots[s->cur]);
            s->cur = next;
        }
    }
    if (rv == NT_OK) {
        nti_mtx_lock(&s->mtx);
        s->bounds = bounds;
        s->weight = weight;
        nti_mtx_unlock(&s->mtx);
    }
    nti_mtx_unlock(&s->reg_mtx);
    return rv;
}

int
nt_service_drain(nt_service *s, int timeout_ms)
{
    if (s == NULL || cur_service == s) {
        return NT_EINVAL;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nti_mtx_lock(&s->reg_mtx);
    s->draining = true;
    if (s->registered) {
        (void)nt_rpc_unregister(s->node, s->object, s->bounds,
                                NT_SERVICE_RPC, &s->slots[s->cur]);
        s->registered = false;
    }
    /* From here on start and rebound see draining and do nothing, so the
     * registration fields and threads are ours; reg_mtx is released so a
     * running command may still call them (and get NT_ECLOSED). */
    nti_mtx_unlock(&s->reg_mtx);

    /* Let the queue run down until the deadline. */
    nti_mtx_lock(&s->mtx);
    s->state = ST_DRAINING;
    while (s->qhead != NULL || s->running > 0) {
        if (!nti_cv_wait_until(&s->idle_cv, &s->mtx, deadline)) {
            break;
        }
    }
    job *left = s->qhead;
    s->qhead = s->qtail = NULL;
    s->dropped += s->qlen;
    s->qlen = 0;
    nti_mtx_unlock(&s->mtx);

    /* Every accepted call gets an answer: refuse what never ran. */
    int rv = left != NULL ? NT_ETIMEDOUT : NT_OK;
    while (left != NULL) {
        job *j = left;
        left = j->next;
        reply_env(j->reply, NT_ENV_REFUSED, NT_ECLOSED,
                  "service drained before the call ran");
        free(j);
    }

    /* Running commands must return before anything is freed. */
    nti_mtx_lock(&s->mtx);
    while (s->running > 0) {
        nti_cv_wait(&s->idle_cv, &s->mtx);
    }
    nti_mtx_unlock(&s->mtx);
    workers_stop(s);

    svc_cmd *c = s->cmds;
    while (c != NULL) {
        svc_cmd *next = c->next;
        free(c);
        c = next;
    }
    nti_cv_fini(&s->idle_cv);
    nti_cv_fini(&s->work_cv);
    nti_mtx_fini(&s->mtx);
    nti_mtx_fini(&s->reg_mtx);
    free(s->threads);
    free(s->object);
    free(s);
    return rv;
}

int
nt_service_stats(nt_service *s, char **out)
{
    if (s == NULL || out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    nt_answer a;
    answer_init(&a);
    nti_mtx_lock(&s->mtx);
    stats_json(s, &a);
    nti_mtx_unlock(&s->mtx);
    nt_answer_write(&a, "", 1);
    if (a.err != NT_OK) {
        answer_fini(&a);
        return NT_ENOMEM;
    }
    /* Hand out the text without the envelope header. */
    memmove(a.buf, a.buf + ENV_HDR, a.len - ENV_HDR);
    *out = (char *)a.buf;
    return NT_OK;
}
