/* SPDX-License-Identifier: MIT */
/*
 * Service access (see include/notifier/service.h and docs/SERVICE.md):
 * nt_execute / nt_execute_random, which call a service with retries, and
 * the split handle (nt_split_*).  Like service.c, a layer on top of the
 * public API of notifier.h and the platform layer.
 *
 * Design notes
 * ------------
 * Retries (nt_execute) are per id: one nt_rpcs round for the ids still
 * pending, then each id's outcome is classified (see classify()).  A "no
 * target" whose item names a node means the call reached a node whose
 * registration had just gone: the directory is in flux, retry after the
 * plain backoff (the digests may agree until the removal arrives here).
 * One that names no node means nothing matched
 * here: retried while this node has not joined anyone yet (waiting for a
 * member) or its directory has not converged (waiting for that), final
 * once it has.  The backoff is a wait
 * with a deadline, bounded by the caller's timeout.
 *
 * Split handles keep one entry per sequence number in a small hash table.
 * The nt_rpc_call callback (on a node worker) unwraps the answer into the
 * entry and stamps it with a finish order, which nt_split_any uses to pick
 * the first to finish.  Closing abandons running calls: their callbacks
 * see the closed flag and free their entries; the last one frees the
 * handle (inflight counts the callbacks still to run).
 *
 * Lock order: split.mtx is a leaf.
 */
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"
#include "notifier/service.h"
#include "platform/platform.h"
#include "service_impl.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 500

static const char empty_str[1] = "";

static uint32_t
get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- results ------------------------------------------------------------ */

static void
result_clear(nt_exec_result *r)
{
    if (r->data != NULL && r->data != empty_str) {
        free((void *)r->data);
    }
    if (r->node != NULL && r->node != empty_str) {
        free((void *)r->node);
    }
    r->data = NULL;
    r->node = NULL;
    r->len = 0;
}

/* Sets r (cleared first) with copies of data (NUL added) and node.  Out
 * of memory: r gets status NT_ENOMEM with static empty strings. */
static int
result_set(nt_exec_result *r, int status, int code, const void *data,
           size_t len, const char *node)
{
    result_clear(r);
    char *d = malloc(len + 1);
    char *nd = strdup(node != NULL ? node : "");
    if (d == NULL || nd == NULL) {
        free(d);
        free(nd);
        r->status = NT_ENOMEM;
        r->code = 0;
        r->data = empty_str;
        r->node = empty_str;
        return NT_ENOMEM;
    }
    if (len > 0) {
        memcpy(d, data, len);
    }
    d[len] = '\0';
    r->status = status;
    r->code = code;
    r->data = d;
    r->len = len;
    r->node = nd;
    return NT_OK;
}

static int
result_fail(nt_exec_result *r, int status)
{
    const char *msg = nt_strerror(status);
    return result_set(r, status, 0, msg, strlen(msg), "");
}

/* Unwraps the first reply of one call into r. */
static int
result_unwrap(nt_exec_result *r, const nt_results *res)
{
    if (res == NULL || res->count == 0) {
        return result_fail(r, NT_EPROTO);
    }
    const nt_result *it = &res->items[0];
    const unsigned char *p = it->data;
    if (it->status != NT_OK) {
        return result_set(r, it->status, it->code, it->data,
                          it->data != NULL ? it->len : 0, it->node);
    }
    if (it->len < ENV_HDR || p[0] != NT_ENV_VERSION) {
        static const char bad[] = "reply is not a service envelope";
        return result_set(r, NT_EPROTO, 0, bad, sizeof(bad) - 1, it->node);
    }
    if (p[1] == NT_ENV_OK) {
        return result_set(r, NT_OK, 0, p + ENV_HDR, it->len - ENV_HDR,
                          it->node);
    }
    if (it->len < ENV_ERR_HDR) {
        static const char bad[] = "truncated service envelope";
        return result_set(r, NT_EPROTO, 0, bad, sizeof(bad) - 1, it->node);
    }
    int code = (int)get_be32(p + 2);
    int status;
    switch (p[1]) {
    case NT_ENV_NOCOMMAND:
        status = NT_ENOENT;
        break;
    case NT_ENV_FAILED:
        status = NT_EREMOTE;
        break;
    case NT_ENV_REFUSED:
        status = code < 0 ? code : NT_EPROTO;
        break;
    default: /* NT_ENV_MALFORMED, or a kind from a newer version */
        status = NT_EPROTO;
        break;
    }
    return result_set(r, status, code, p + ENV_ERR_HDR, it->len - ENV_ERR_HDR,
                      it->node);
}

static nt_exec_results *
results_alloc(size_t n)
{
    nt_exec_results *r = calloc(1, sizeof(*r) + n * sizeof(nt_exec_result));
    if (r != NULL) {
        r->count = n;
        r->items = (nt_exec_result *)(r + 1);
    }
    return r;
}

void
nt_exec_results_free(nt_exec_results *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        result_clear(&r->items[i]);
    }
    free(r);
}

/* Builds a request envelope.  On NT_OK *out is malloc'd. */
static int
request_build(const char *command, const void *args, size_t len,
              unsigned char **out, size_t *outlen)
{
    if (!nti_svc_name_ok(command) || (args == NULL && len > 0)) {
        return NT_EINVAL;
    }
    size_t n = strlen(command);
    if (len > SIZE_MAX - ENV_HDR - n) {
        return NT_EMSGSIZE;
    }
    unsigned char *p = malloc(ENV_HDR + n + len);
    if (p == NULL) {
        return NT_ENOMEM;
    }
    p[0] = NT_ENV_VERSION;
    p[1] = (unsigned char)n;
    memcpy(p + ENV_HDR, command, n);
    if (len > 0) {
        memcpy(p + ENV_HDR + n, args, len);
    }
    *out = p;
    *outlen = ENV_HDR + n + len;
    return NT_OK;
}

/* ---- nt_execute --------------------------------------------------------- */

/* Retry classes, in increasing order of the wait they ask for. */
enum { R_FINAL, R_RETRY, R_CONVERGE, R_JOIN, R_IF_UNSETTLED };

static int
classify(const nt_exec_result *r)
{
    switch (r->status) {
    case NT_EPEERLOST:
    case NT_EUNREACHABLE:
    case NT_ECLOSED:
    case NT_EAGAIN:
        return R_RETRY;
    case NT_ENOTARGET:
        /* Named node: routed there, registration gone since.  Its removal
         * may not have reached this node yet, and until it does the
         * digests still agree: waiting for "converged" would return at
         * once, so this waits the plain backoff. */
        return r->node != NULL && r->node[0] != '\0' ? R_RETRY
                                                     : R_IF_UNSETTLED;
    default:
        return R_FINAL;
    }
}

/* Waits until the monotonic deadline (a bounded backoff, not a poll). */
static void
pause_until(uint64_t until_ms)
{
    nti_mtx m;
    nti_cv c;
    nti_mtx_init(&m);
    nti_cv_init(&c);
    nti_mtx_lock(&m);
    while (nti_cv_wait_until(&c, &m, until_ms)) {
    }
    nti_mtx_unlock(&m);
    nti_cv_fini(&c);
    nti_mtx_fini(&m);
}

/* Where the directory stands, for a "no target" that names no node:
 * R_JOIN when this member has not met any other member yet (a lone node's
 * directory is trivially "converged"), R_CONVERGE when it has not
 * converged, R_FINAL when it has (nothing matches: retrying cannot
 * help). */
static int
directory_state(nt_node *n)
{
    /* A publisher is no member: it asks its server, which may well be
     * alone. */
    if (nt_node_address(n) != NULL && nt_node_wait_members(n, 2, 0) != NT_OK) {
        return R_JOIN;
    }
    return nt_node_wait_converged(n, 0) != NT_OK ? R_CONVERGE : R_FINAL;
}

/* Waits before the next attempt: a jittered exponential delay, cut short
 * when what the retry waits for happens (a member joined, the directory
 * converged), and never past the caller's deadline. */
static void
backoff(nt_node *n, unsigned attempt, int why, uint64_t deadline)
{
    unsigned shift = attempt < 6 ? attempt : 6;
    uint32_t base = BACKOFF_MIN_MS << shift;
    if (base > BACKOFF_MAX_MS) {
        base = BACKOFF_MAX_MS;
    }
    uint32_t ms = base / 2 + randombytes_uniform(base / 2 + 1);
    uint64_t now = nti_clock_ms();
    if (deadline != UINT64_MAX && now + ms > deadline) {
        ms = deadline > now ? (uint32_t)(deadline - now) : 0;
    }
    if (ms == 0) {
        return;
    }
    switch (why) {
    case R_JOIN:
        (void)nt_node_wait_members(n, 2, (int)ms);
        break;
    case R_CONVERGE:
        (void)nt_node_wait_converged(n, (int)ms);
        break;
    default:
        pause_until(now + ms);
        break;
    }
}

static int
time_left(uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        return -1;
    }
    uint64_t now = nti_clock_ms();
    if (now >= deadline) {
        return 0;
    }
    return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

static uint64_t
random_id(void)
{
    uint64_t id;
    randombytes_buf(&id, sizeof(id));
    return id;
}

/* Calls each of pids[0..k) once, all in flight: outs[i] gets the replies
 * of pids[i] when st[i] is NT_OK, else st[i] is why that call failed.
 * Returns NT_OK, or what failed the whole round (NT_EINVAL, NT_EMSGSIZE,
 * NT_ECLOSED, NT_ENOMEM: outs[] all NULL then). */
static int
exec_round(nt_node *n, const char *object, const uint64_t *pids, size_t k,
           const unsigned char *req, size_t reqlen, uint64_t deadline,
           nt_results **outs, int *st)
{
    /* Members route themselves; a publisher's nt_rpcs goes through its
     * server. */
    int rv = nt_rpcs(n, object, pids, k, NT_SERVICE_RPC, req, reqlen,
                     time_left(deadline), outs);
    if (rv != NT_OK && rv != NT_ENOTARGET && rv != NT_EAGAIN) {
        return rv;
    }
    for (size_t i = 0; i < k; i++) {
        st[i] = rv;
    }
    return NT_OK;
}

/* The retry loop of nt_execute / nt_execute_random.  ids is the caller's
 * array, or NULL for one random id per attempt (nids 1). */
static int
exec_run(nt_node *n, const char *object, const char *command,
         const uint64_t *ids, size_t nids, const void *args, size_t len,
         int timeout_ms, unsigned retry, nt_exec_results **out)
{
    if (out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (n == NULL || nids == 0) {
        return NT_EINVAL;
    }
    unsigned char *req = NULL;
    size_t reqlen = 0;
    int rv = request_build(command, args, len, &req, &reqlen);
    if (rv != NT_OK) {
        return rv;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nt_exec_results *res = results_alloc(nids);
    size_t *pend = malloc(nids * sizeof(*pend));
    uint64_t *pids = malloc(nids * sizeof(*pids));
    nt_results **outs = calloc(nids, sizeof(*outs));
    int *st = malloc(nids * sizeof(*st));
    if (res == NULL || pend == NULL || pids == NULL || outs == NULL ||
        st == NULL) {
        rv = NT_ENOMEM;
        goto out;
    }
    size_t npend = nids;
    for (size_t i = 0; i < nids; i++) {
        pend[i] = i;
    }
    for (unsigned attempt = 0;; attempt++) {
        for (size_t k = 0; k < npend; k++) {
            pids[k] = ids != NULL ? ids[pend[k]] : random_id();
        }
        int crv = exec_round(n, object, pids, npend, req, reqlen, deadline,
                             outs, st);
        if (crv != NT_OK && attempt == 0) {
            rv = crv; /* the call could not be made at all */
            goto out;
        }
        for (size_t k = 0; k < npend; k++) {
            nt_exec_result *it = &res->items[pend[k]];
            int srv = crv != NT_OK   ? result_fail(it, crv)
                      : st[k] == NT_OK ? result_unwrap(it, outs[k])
                                       : result_fail(it, st[k]);
            nt_results_free(outs[k]);
            outs[k] = NULL;
            it->id = pids[k];
            it->attempts++;
            if (srv != NT_OK) {
                rv = srv;
                goto out;
            }
        }
        if (crv != NT_OK) {
            break; /* e.g. this node closed between attempts */
        }
        /* Keep the ids worth another attempt. */
        size_t next = 0;
        int why = R_FINAL, dir = -1;
        for (size_t k = 0; k < npend; k++) {
            int c = classify(&res->items[pend[k]]);
            if (c == R_IF_UNSETTLED) {
                if (dir < 0) {
                    dir = directory_state(n);
                }
                c = dir;
            }
            if (c != R_FINAL) {
                pend[next++] = pend[k];
                why = c > why ? c : why;
            }
        }
        npend = next;
        if (npend == 0 || attempt >= retry || time_left(deadline) == 0) {
            break;
        }
        backoff(n, attempt, why, deadline);
    }
    size_t notarget = 0;
    for (size_t i = 0; i < nids; i++) {
        notarget += res->items[i].status == NT_ENOTARGET;
    }
    rv = notarget == nids ? NT_ENOTARGET : NT_OK;

out:
    if (rv == NT_OK) {
        *out = res;
    } else {
        nt_exec_results_free(res);
    }
    free(st);
    free(outs);
    free(pids);
    free(pend);
    free(req);
    return rv;
}

int
nt_execute(nt_node *node, const char *object, const char *command,
           const uint64_t *ids, size_t nids, const void *args, size_t len,
           int timeout_ms, unsigned retry, nt_exec_results **out)
{
    if (ids == NULL) {
        if (out != NULL) {
            *out = NULL;
        }
        return NT_EINVAL;
    }
    return exec_run(node, object, command, ids, nids, args, len, timeout_ms,
                    retry, out);
}

int
nt_execute_random(nt_node *node, const char *object, const char *command,
                  const void *args, size_t len, int timeout_ms,
                  unsigned retry, nt_exec_results **out)
{
    return exec_run(node, object, command, NULL, 1, args, len, timeout_ms,
                    retry, out);
}

/* ---- split handle ------------------------------------------------------- */

typedef struct sp_entry {
    struct sp_entry *next; /* hash chain */
    nt_split *sp;
    uint64_t seq;
    uint64_t order; /* finish order (1, 2, ...), 0 while running */
    bool mark;      /* duplicate check in nt_split_complete */
    nt_exec_result res;
} sp_entry;

struct nt_split {
    nt_node *node;
    char *object;
    int timeout_ms;

    nti_mtx mtx; /* guards everything below */
    nti_cv cv;   /* a call finished */
    sp_entry **tab;
    size_t nbuckets, count;
    uint64_t next_seq, next_order;
    unsigned inflight; /* callbacks still to run */
    bool closed;
};

#define SP_BUCKETS 64

/* mtx held. */
static sp_entry **
sp_slot(nt_split *sp, uint64_t seq)
{
    sp_entry **pp = &sp->tab[seq & (sp->nbuckets - 1)];
    while (*pp != NULL && (*pp)->seq != seq) {
        pp = &(*pp)->next;
    }
    return pp;
}

static sp_entry *
sp_find(nt_split *sp, uint64_t seq)
{
    return *sp_slot(sp, seq);
}

/* Grows the table when it is loaded; keeps the old one if out of
 * memory (chains get longer, nothing fails).  mtx held. */
static void
sp_grow(nt_split *sp)
{
    if (sp->count < sp->nbuckets) {
        return;
    }
    size_t nb = sp->nbuckets * 2;
    sp_entry **t = calloc(nb, sizeof(*t));
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < sp->nbuckets; i++) {
        sp_entry *e = sp->tab[i];
        while (e != NULL) {
            sp_entry *next = e->next;
            e->next = t[e->seq & (nb - 1)];
            t[e->seq & (nb - 1)] = e;
            e = next;
        }
    }
    free(sp->tab);
    sp->tab = t;
    sp->nbuckets = nb;
}

static void
sp_insert(nt_split *sp, sp_entry *e)
{
    sp_grow(sp);
    sp_entry **pp = &sp->tab[e->seq & (sp->nbuckets - 1)];
    e->next = *pp;
    *pp = e;
    sp->count++;
}

static void
sp_remove(nt_split *sp, sp_entry *e)
{
    sp_entry **pp = sp_slot(sp, e->seq);
    *pp = e->next;
    sp->count--;
}

static void
sp_free(nt_split *sp)
{
    nti_cv_fini(&sp->cv);
    nti_mtx_fini(&sp->mtx);
    free(sp->tab);
    free(sp->object);
    free(sp);
}

/* Records a finished call.  mtx held. */
static void
sp_finish(nt_split *sp, sp_entry *e, const nt_exec_result *res)
{
    e->res = *res;
    e->order = ++sp->next_order;
    nti_cv_broadcast(&sp->cv);
}

static void
sp_done(void *arg, int status, const nt_results *r)
{
    sp_entry *e = arg;
    nt_split *sp = e->sp;
    nt_exec_result res = { 0 };
    if (status == NT_OK) {
        result_unwrap(&res, r);
    } else {
        result_fail(&res, status);
    }
    res.id = e->res.id;
    res.attempts = 1;
    nti_mtx_lock(&sp->mtx);
    bool closed = sp->closed;
    if (!closed) {
        sp_finish(sp, e, &res);
    }
    sp->inflight--;
    bool last = closed && sp->inflight == 0;
    nti_mtx_unlock(&sp->mtx);
    if (closed) {
        result_clear(&res);
        free(e);
    }
    if (last) {
        sp_free(sp);
    }
}

int
nt_split_open(nt_split **out, nt_node *node, const char *object,
              int timeout_ms)
{
    if (out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (node == NULL || !nti_svc_name_ok(object)) {
        return NT_EINVAL;
    }
    nt_split *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        return NT_ENOMEM;
    }
    sp->object = strdup(object);
    sp->tab = calloc(SP_BUCKETS, sizeof(*sp->tab));
    if (sp->object == NULL || sp->tab == NULL) {
        free(sp->tab);
        free(sp->object);
        free(sp);
        return NT_ENOMEM;
    }
    sp->nbuckets = SP_BUCKETS;
    sp->node = node;
    sp->timeout_ms = timeout_ms;
    nti_mtx_init(&sp->mtx);
    nti_cv_init(&sp->cv);
    *out = sp;
    return NT_OK;
}

static int
split_execute(nt_split *sp, uint64_t id, const char *command,
              const void *args, size_t len, uint64_t *seq)
{
    if (sp == NULL) {
        return NT_EINVAL;
    }
    unsigned char *req = NULL;
    size_t reqlen = 0;
    int rv = request_build(command, args, len, &req, &reqlen);
    if (rv != NT_OK) {
        return rv;
    }
    sp_entry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        free(req);
        return NT_ENOMEM;
    }
    e->sp = sp;
    e->res.id = id;
    nti_mtx_lock(&sp->mtx);
    uint64_t s = ++sp->next_seq;
    e->seq = s;
    sp_insert(sp, e);
    sp->inflight++;
    nti_mtx_unlock(&sp->mtx);

    /* The callback may run (and e be taken and freed) before nt_rpc_call
     * returns: only s is used afterwards. */
    rv = nt_rpc_call(sp->node, sp->object, id, NT_SERVICE_RPC, req, reqlen,
                     sp->timeout_ms, sp_done, e);
    free(req);
    if (rv == NT_OK) {
        *seq = s;
        return NT_OK;
    }
    nt_exec_result res = { 0 };
    if (rv != NT_EINVAL && rv != NT_ENOMEM) {
        rv = result_fail(&res, rv);
        res.id = id;
        res.attempts = 1;
    }
    nti_mtx_lock(&sp->mtx);
    sp->inflight--;
    if (rv == NT_OK) {
        sp_finish(sp, e, &res);
    } else {
        sp_remove(sp, e);
    }
    nti_mtx_unlock(&sp->mtx);
    if (rv != NT_OK) {
        result_clear(&res);
        free(e);
        return rv;
    }
    *seq = s;
    return NT_OK;
}

uint64_t
nt_split_execute(nt_split *sp, uint64_t id, const char *command,
                 const void *args, size_t len)
{
    uint64_t seq = 0;
    return split_execute(sp, id, command, args, len, &seq) == NT_OK ? seq : 0;
}

/* Checks that every seq is known and listed once.  mtx held. */
static int
sp_check(nt_split *sp, const uint64_t *seqs, size_t n)
{
    int rv = NT_OK;
    size_t i;
    for (i = 0; i < n; i++) {
        sp_entry *e = sp_find(sp, seqs[i]);
        if (e == NULL) {
            rv = NT_ENOENT;
            break;
        }
        if (e->mark) {
            rv = NT_EINVAL;
            break;
        }
        e->mark = true;
    }
    for (size_t k = 0; k < i; k++) {
        sp_find(sp, seqs[k])->mark = false;
    }
    return rv;
}

int
nt_split_complete(nt_split *sp, const uint64_t *seqs, size_t n,
                  int timeout_ms, nt_exec_results **out)
{
    if (out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (sp == NULL || seqs == NULL || n == 0) {
        return NT_EINVAL;
    }
    nt_exec_results *res = results_alloc(n);
    if (res == NULL) {
        return NT_ENOMEM;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    nti_mtx_lock(&sp->mtx);
    int rv = sp_check(sp, seqs, n);
    while (rv == NT_OK) {
        bool all = true;
        for (size_t i = 0; i < n && rv == NT_OK; i++) {
            sp_entry *e = sp_find(sp, seqs[i]);
            if (e == NULL) {
                rv = NT_ENOENT; /* taken by another thread meanwhile */
            } else if (e->order == 0) {
                all = false;
            }
        }
        if (rv != NT_OK || all) {
            break;
        }
        if (!nti_cv_wait_until(&sp->cv, &sp->mtx, deadline)) {
            rv = NT_ETIMEDOUT;
            /* One last look: the calls may have just finished. */
            all = true;
            for (size_t i = 0; i < n; i++) {
                sp_entry *e = sp_find(sp, seqs[i]);
                if (e == NULL) {
                    rv = NT_ENOENT;
                    break;
                }
                all = all && e->order != 0;
            }
            if (rv == NT_ETIMEDOUT && all) {
                rv = NT_OK;
            }
            break;
        }
    }
    if (rv == NT_OK) {
        for (size_t i = 0; i < n; i++) {
            sp_entry *e = sp_find(sp, seqs[i]);
            sp_remove(sp, e);
            res->items[i] = e->res;
            free(e);
        }
    }
    nti_mtx_unlock(&sp->mtx);
    if (rv != NT_OK) {
        nt_exec_results_free(res);
        return rv;
    }
    *out = res;
    return NT_OK;
}

/* The finished entry with the lowest finish order among seqs (or among
 * all entries when seqs is NULL).  NT_ENOENT when a seq is unknown or
 * nothing is outstanding.  mtx held. */
static int
sp_first(nt_split *sp, const uint64_t *seqs, size_t n, sp_entry **best)
{
    *best = NULL;
    if (seqs == NULL) {
        if (sp->count == 0) {
            return NT_ENOENT;
        }
        for (size_t b = 0; b < sp->nbuckets; b++) {
            for (sp_entry *e = sp->tab[b]; e != NULL; e = e->next) {
                if (e->order != 0 &&
                    (*best == NULL || e->order < (*best)->order)) {
                    *best = e;
                }
            }
        }
        return NT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        sp_entry *e = sp_find(sp, seqs[i]);
        if (e == NULL) {
            return NT_ENOENT;
        }
        if (e->order != 0 && (*best == NULL || e->order < (*best)->order)) {
            *best = e;
        }
    }
    return NT_OK;
}

int
nt_split_any(nt_split *sp, const uint64_t *seqs, size_t n, int timeout_ms,
             uint64_t *seq, nt_exec_results **out)
{
    if (out == NULL) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (sp == NULL || seq == NULL || (seqs == NULL) != (n == 0)) {
        return NT_EINVAL;
    }
    nt_exec_results *res = results_alloc(1);
    if (res == NULL) {
        return NT_ENOMEM;
    }
    uint64_t deadline = nti_deadline(timeout_ms);
    sp_entry *e = NULL;
    bool timed_out = false;
    nti_mtx_lock(&sp->mtx);
    int rv = seqs != NULL ? sp_check(sp, seqs, n) : NT_OK;
    while (rv == NT_OK) {
        rv = sp_first(sp, seqs, n, &e);
        if (rv != NT_OK || e != NULL || timed_out) {
            break;
        }
        timed_out = !nti_cv_wait_until(&sp->cv, &sp->mtx, deadline);
    }
    if (rv == NT_OK && e == NULL) {
        rv = NT_ETIMEDOUT;
    }
    if (rv == NT_OK) {
        sp_remove(sp, e);
        *seq = e->seq;
        res->items[0] = e->res;
        free(e);
    }
    nti_mtx_unlock(&sp->mtx);
    if (rv != NT_OK) {
        nt_exec_results_free(res);
        return rv;
    }
    *out = res;
    return NT_OK;
}

void
nt_split_close(nt_split *sp)
{
    if (sp == NULL) {
        return;
    }
    nti_mtx_lock(&sp->mtx);
    sp->closed = true;
    /* Finished entries go now; running ones are freed by their callback. */
    for (size_t b = 0; b < sp->nbuckets; b++) {
        sp_entry *e = sp->tab[b];
        while (e != NULL) {
            sp_entry *next = e->next;
            if (e->order != 0) {
                result_clear(&e->res);
                free(e);
            }
            e = next;
        }
        sp->tab[b] = NULL;
    }
    sp->count = 0;
    bool last = sp->inflight == 0;
    nti_mtx_unlock(&sp->mtx);
    if (last) {
        sp_free(sp);
    }
}
