/* SPDX-License-Identifier: MIT */
/*
 * notifier service layer: partitioned RPC services with their own worker
 * pool, and the helpers that call them.
 *
 * A *service* serves one RPC object on one node.  It owns a pool of worker
 * threads (separate from the node's), a bounded queue and a table of named
 * commands, and it registers itself as a weighted RPC slice for a part of
 * the id space, its *bounds*.  Callers name a command and pass opaque
 * arguments; every answer is an *envelope*: ok with a result, no such
 * command, the command failed with a code and a message, or the service
 * refused the call without running it.  `ping` and `stats` are built in.
 *
 * The access helpers (nt_execute, nt_execute_random) make one call per id,
 * unwrap the envelopes and retry what failed in transit; the *split* handle
 * starts calls at once and resolves them later, all of them in order
 * (nt_split_complete) or the first to finish (nt_split_any).
 *
 * Everything here is built on the public API of <notifier/notifier.h>; the
 * same conventions hold: functions that can fail return NT_OK or a
 * negative NT_E* code, strings passed in are copied, and every function is
 * safe to call from any thread unless its comment says otherwise.
 *
 * Wire format (all integers big-endian; see docs/SERVICE.md).  A service
 * registers the RPC command NT_SERVICE_RPC on its object.  The request
 * payload is
 *
 *     u8  version (1)
 *     u8  n            length of the command name, 1..255
 *     n   bytes        command name
 *     ... bytes        the command's arguments (the rest of the payload)
 *
 * and the reply payload is an envelope:
 *
 *     u8  version (1)
 *     u8  kind         NT_ENV_OK, NT_ENV_NOCOMMAND, NT_ENV_FAILED,
 *                      NT_ENV_REFUSED or NT_ENV_MALFORMED
 *     OK:     ... bytes   the result (the rest of the payload)
 *     others: i32 code, ... bytes   an error message (UTF-8, no NUL)
 */
#ifndef NOTIFIER_SERVICE_H
#define NOTIFIER_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include <notifier/notifier.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The RPC command a service registers on its object.  Calls made with
 * plain nt_rpc() to (object, id, NT_SERVICE_RPC) reach the service when
 * their payload is a request as described above. */
#define NT_SERVICE_RPC "nt.service"

/* Envelope format version and kinds. */
#define NT_ENV_VERSION 1
enum {
    NT_ENV_OK = 0,        /* the command ran and succeeded */
    NT_ENV_NOCOMMAND = 1, /* no such command (code NT_ENOENT) */
    NT_ENV_FAILED = 2,    /* the command ran and failed: its code, message */
    NT_ENV_REFUSED = 3,   /* not run: queue full (NT_EAGAIN) or the service
                             is draining (NT_ECLOSED) */
    NT_ENV_MALFORMED = 4, /* the request was not a valid request
                             (NT_EPROTO) */
};

#if defined(__GNUC__) || defined(__clang__)
#define NT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NT_PRINTF(f, a)
#endif

/* Limits. */
#define NT_SERVICE_MAX_WORKERS 256
#define NT_SERVICE_DEFAULT_QUEUE 1024
#define NT_SERVICE_MAX_QUEUE (1u << 20)

typedef struct nt_service nt_service;

/* ---- commands ----------------------------------------------------------- */

/* A call as a command sees it.  Every pointer is valid only while the
 * command runs; copy what you keep. */
typedef struct nt_request {
    nt_service *service;
    const char *object;
    const char *command;
    uint64_t id;      /* the id the caller addressed */
    const void *args; /* the arguments (may be NULL when len is 0) */
    size_t len;
    const char *from; /* the caller's node id */
} nt_request;

/* Where a command writes its answer.  Valid only while the command runs. */
typedef struct nt_answer nt_answer;

/*
 * A command.  It runs on one of its service's worker threads, never with a
 * library lock held, and may call any API function (including nt_execute,
 * and nt_service_rebound on its own service).
 *
 * Return NT_OK (0) for success: the caller gets NT_OK and whatever was
 * written with nt_answer_write/nt_answer_printf (possibly nothing).  Return
 * any other value for failure: the caller gets NT_EREMOTE with that value
 * as the code and the message set with nt_answer_error() (or "command
 * failed" when none was set); anything written is discarded.  Codes may be
 * NT_E* values or the application's own non-zero numbers.
 */
typedef int (*nt_command_fn)(void *arg, const nt_request *rq, nt_answer *a);

/* Append len bytes to the result (copied).  A result larger than the
 * node's max_payload cannot be sent: the caller then gets a failure with
 * code NT_EMSGSIZE instead.  Errors: NT_EINVAL, NT_ENOMEM (the answer
 * becomes a failure with code NT_ENOMEM whatever the command returns). */
NT_API int nt_answer_write(nt_answer *a, const void *data, size_t len);
/* Append formatted text (no NUL) to the result.  Errors as above. */
NT_API int nt_answer_printf(nt_answer *a, const char *fmt, ...)
    NT_PRINTF(2, 3);
/* Set the failure message (formatted, truncated to 1024 bytes) and return
 * code, so a command can end with `return nt_answer_error(a, 42, ...)`.
 * A code of 0 is not a failure: it is replaced by NT_EINVAL. */
NT_API int nt_answer_error(nt_answer *a, int code, const char *fmt, ...)
    NT_PRINTF(3, 4);

/* ---- services ----------------------------------------------------------- */

/*
 * Create a service for object on node, for the ids in bounds, drawn with
 * the given slice weight among every slice of the object cluster-wide.
 * workers is the size of its own pool (0 = the CPU count, at least 2).
 * Nothing is registered and no thread runs until nt_service_start().
 * The node must stay open until the service is drained.
 *
 * On NT_OK *out owns the service; it is freed by nt_service_drain().
 * Errors: NT_EINVAL (NULL argument, object empty or longer than 255 bytes,
 * bounds whose value has bits outside the mask, a weight that is not a
 * finite number > 0, workers > NT_SERVICE_MAX_WORKERS), NT_ENOMEM.
 */
NT_API int nt_service_open(nt_service **out, nt_node *node,
                           const char *object, nt_match bounds, double weight,
                           unsigned workers);

/*
 * Add a named command (at any time before the drain; calls naming it may
 * arrive from the moment it returns).  arg is passed to fn and must stay
 * valid until the service is drained.  Errors: NT_EINVAL (NULL, name empty
 * or longer than 255 bytes), NT_EEXIST (a command of that name exists;
 * "ping" and "stats" are built in), NT_ENOMEM, NT_ECLOSED (draining).
 *
 * Built-in commands:
 *   ping   the result is the arguments, unchanged;
 *   stats  the result is one JSON object (text, no NUL), as returned by
 *          nt_service_stats().
 */
NT_API int nt_service_command(nt_service *s, const char *name,
                              nt_command_fn fn, void *arg);

/* Bound the queue of calls waiting for a worker (default
 * NT_SERVICE_DEFAULT_QUEUE).  A call that arrives when the queue is full is
 * answered at once with NT_ENV_REFUSED, code NT_EAGAIN, and never runs.
 * May be changed at any time; calls already queued stay.  Errors:
 * NT_EINVAL (0 or more than NT_SERVICE_MAX_QUEUE). */
NT_API int nt_service_set_queue_depth(nt_service *s, unsigned depth);

/*
 * Start the workers and register the service: nt_rpc_slice(node, object,
 * bounds, NT_SERVICE_RPC, ..., weight).  Other nodes route to it once
 * gossip has carried the registration (nt_node_wait_converged).  On error
 * nothing is left running and the service may be started again or
 * drained.  Errors: NT_EEXIST (already started), NT_ECLOSED (draining, or
 * the node is closed), NT_ENOTSUP (a publisher node serves nothing),
 * NT_ENOMEM, and the other errors of nt_rpc_slice().
 */
NT_API int nt_service_start(nt_service *s);

/*
 * Move the service to new bounds and/or weight, make-before-break: the new
 * slice is registered first (under a second destination, so it may even
 * equal the old one), then the old one is removed.  While both exist this
 * node holds two slices, so for a moment it may be drawn for ids of both
 * bounds (and twice as often where they overlap); it serves them all.
 * In this node's directory the ids of the new bounds always have this
 * service's slice.  Other nodes learn the two changes through gossip,
 * usually in the same round; if the removal overtakes the registration, a
 * node briefly sees neither, and its directory is then not converged.
 *
 * When it returns, calls routed on this node go by the new bounds; other
 * nodes follow once gossip has spread the change.  A call they routed with
 * the old view that reaches this node after the removal fails with
 * NT_ENOTARGET naming this node.  nt_execute retries both cases (see
 * below), so callers that use it with retry > 0 see no failure from a
 * rebound.  Calls already queued run normally.
 *
 * Before nt_service_start() it only records the new values.  Errors:
 * NT_EINVAL (bad bounds or weight), NT_ECLOSED (draining), and the errors
 * of nt_rpc_slice() (the old registration is then kept).
 */
NT_API int nt_service_rebound(nt_service *s, nt_match bounds, double weight);

/*
 * Drain and free the service:
 *   1. unregister: the node routes nothing more here (other nodes stop
 *      once gossip spreads it; their late calls get NT_ENOTARGET);
 *   2. let the queued and running calls finish, until timeout_ms
 *      (< 0 = no limit);
 *   3. at the timeout, every call still queued is answered with
 *      NT_ENV_REFUSED, code NT_ECLOSED ("service drained before the call
 *      ran") -- no accepted call is ever dropped without an answer;
 *   4. wait for running commands to return (a command that never returns
 *      keeps drain waiting, as with nt_node_close), stop the workers and
 *      free everything.
 * Returns NT_OK when every accepted call ran, NT_ETIMEDOUT when queued
 * calls were refused at the timeout; the service is freed in both cases
 * and s must not be used again.  NT_EINVAL (nothing done) when s is NULL
 * or when called from one of this service's own commands (it would wait
 * for itself).
 *
 * Do not call it from a node handler (a notification or RPC handler) of
 * the service's node: there nt_rpc_unregister() cannot wait for a
 * delivery in progress on another worker (see notifier.h), so the service
 * could be freed under it.  Drain every service before closing its node;
 * after the node closed, its pending calls have already failed with
 * NT_ECLOSED and drain just stops and frees.
 */
NT_API int nt_service_drain(nt_service *s, int timeout_ms);

/*
 * The service's statistics as one JSON object, the same text the `stats`
 * command returns: bounds, weight, workers, queue_depth, state, queued,
 * running, accepted, refused (queue full), dropped (refused at the drain
 * timeout), unknown (no such command), malformed, and per command
 * (built-ins included) calls, errors (calls that returned non-zero) and the
 * mean and maximum run time in microseconds.  A call is counted when its
 * command returns, before its answer is sent: a caller holding an answer
 * sees it counted, and a `stats` answer does not include itself.  On NT_OK
 * *out is a NUL-terminated string to free with nt_free().  Errors:
 * NT_EINVAL, NT_ENOMEM.
 */
NT_API int nt_service_stats(nt_service *s, char **out);

/* ---- calling services --------------------------------------------------- */

/*
 * The unwrapped answer of one call.  status is
 *   NT_OK          the command succeeded; data/len is its result;
 *   NT_EREMOTE     the command failed: code is its code, data its message;
 *   NT_ENOENT      no such command (code NT_ENOENT, data the message);
 *   NT_EAGAIN      the service's queue was full, or a node queue was full;
 *   NT_ECLOSED     the service was draining, or the serving node closed;
 *   NT_EPROTO      the answer was not an envelope, or the service found
 *                  the request malformed;
 *   NT_ENOTARGET, NT_ETIMEDOUT, NT_EPEERLOST, NT_EUNREACHABLE, NT_EMSGSIZE
 *                  the call failed in transit (see nt_rpc()).
 * For every status but NT_OK, data is a NUL-terminated message (possibly
 * empty).  node is the answering node's id ("" when no node answered).
 * attempts counts the calls made for this id (1 + retries).
 */
typedef struct nt_exec_result {
    int status;
    int code;
    const void *data;
    size_t len;
    const char *node;
    uint64_t id;
    unsigned attempts;
} nt_exec_result;

typedef struct nt_exec_results {
    size_t count;
    nt_exec_result *items;
} nt_exec_results;

/* Free results; NULL is a no-op. */
NT_API void nt_exec_results_free(nt_exec_results *r);

/*
 * Call command on object for each of ids[0..nids) (one RPC per id, all in
 * flight at once through nt_rpcs), wait, and unwrap the envelopes.  On
 * NT_OK *out holds nids results, items[i] for ids[i]; free with
 * nt_exec_results_free().  Only the first reply of each id is used (a
 * service object is served by slices, one target per id).
 *
 * Retries.  An id whose call failed in transit is called again, up to
 * retry times, after a short backoff (10 ms doubling to 500 ms, with
 * jitter); only those ids are called again.  Retried:
 *   NT_EPEERLOST, NT_EUNREACHABLE, NT_ECLOSED (the serving node or the
 *     service went away), NT_EAGAIN (a queue was full: not run);
 *   NT_ENOTARGET when the call reached a node whose registration had
 *     just gone (rebound, drain), after the backoff; and while this node's
 *     directory has not converged, when the backoff waits for convergence.
 *     On a converged directory a "no target" that reached no node is
 *     final.
 * Never retried: NT_OK, any answer from a command (NT_EREMOTE, NT_ENOENT),
 * NT_EPROTO, NT_EMSGSIZE and NT_ETIMEDOUT (the command may still be
 * running; calling again would double the load on a slow service).  Note
 * that NT_EPEERLOST and NT_ECLOSED from a node that died or closed do not
 * prove the command did not run, so with retry > 0 commands should be
 * idempotent.
 *
 * timeout_ms bounds the whole call, retries and backoff included
 * (< 0 = no limit): each attempt gets what is left.  Returns NT_OK (look
 * at each item's status); NT_ENOTARGET (*out = NULL) when every id ended
 * with no target; NT_EINVAL (NULL argument, nids 0, command empty or
 * longer than 255 bytes), NT_ENOMEM, NT_EMSGSIZE, NT_ECLOSED (this node is
 * closed).  Safe from any thread; from a node handler it blocks that
 * worker for the backoff as well.  On a publisher node the calls are made
 * one after the other (see docs/SERVICE.md).
 */
NT_API int nt_execute(nt_node *node, const char *object, const char *command,
                      const uint64_t *ids, size_t nids, const void *args,
                      size_t len, int timeout_ms, unsigned retry,
                      nt_exec_results **out);

/* Like nt_execute() for one random id (a new one for each attempt): for
 * services where any partition will do.  (*out)->items[0].id tells which
 * id was used last. */
NT_API int nt_execute_random(nt_node *node, const char *object,
                             const char *command, const void *args,
                             size_t len, int timeout_ms, unsigned retry,
                             nt_exec_results **out);

/* ---- split handle ------------------------------------------------------- */

/*
 * A split handle starts calls at once (nt_rpc_call underneath) and
 * resolves them later by sequence number.  All functions but
 * nt_split_close are safe to call concurrently on one handle.  Results
 * are kept until a complete/any call takes them.  Calls are not retried.
 */
typedef struct nt_split nt_split;

/* Open a handle for object on node; every call it makes has timeout_ms
 * (< 0 = no limit).  On NT_OK *out owns the handle; free it with
 * nt_split_close().  Errors: NT_EINVAL, NT_ENOMEM. */
NT_API int nt_split_open(nt_split **out, nt_node *node, const char *object,
                         int timeout_ms);

/*
 * Start command on id and return at once with its sequence number (1, 2,
 * 3, ... per handle).  Failures of this one call (NT_ENOTARGET, NT_EAGAIN,
 * NT_EMSGSIZE, NT_ECLOSED, ...) do not fail nt_split_execute: they become
 * the result of that sequence number, so that every call can be resolved
 * the same way.  Returns 0 (no call started) only for a NULL handle, a
 * bad command name (empty, over 255 bytes) or when out of memory.
 */
NT_API uint64_t nt_split_execute(nt_split *sp, uint64_t id,
                                 const char *command, const void *args,
                                 size_t len);

/*
 * Wait until every call in seqs[0..n) has finished and take their results,
 * items[i] for seqs[i].  On NT_OK *out holds n results and those sequence
 * numbers are forgotten.  Errors (nothing taken): NT_ETIMEDOUT (some call
 * is still running at timeout_ms; < 0 = no limit, the calls' own timeout
 * bounds the wait), NT_ENOENT (a number unknown or already taken, also
 * when another thread takes it during the wait), NT_EINVAL (NULL, n 0, or
 * a number listed twice), NT_ENOMEM.
 */
NT_API int nt_split_complete(nt_split *sp, const uint64_t *seqs, size_t n,
                             int timeout_ms, nt_exec_results **out);

/*
 * Wait until one of seqs[0..n) has finished and take it: the one that
 * finished first when several have.  seqs NULL with n 0 means any call of
 * the handle.  On NT_OK *seq is its number and *out holds its one result.
 * Errors: NT_ETIMEDOUT, NT_ENOENT (a number unknown or taken, or nothing
 * outstanding), NT_EINVAL, NT_ENOMEM.
 */
NT_API int nt_split_any(nt_split *sp, const uint64_t *seqs, size_t n,
                        int timeout_ms, uint64_t *seq,
                        nt_exec_results **out);

/* Free the handle and every result not taken.  Calls still running are
 * abandoned: their results are freed when they finish.  No other call on
 * sp may run concurrently or afterwards.  NULL is a no-op. */
NT_API void nt_split_close(nt_split *sp);

#ifdef __cplusplus
}
#endif
#endif /* NOTIFIER_SERVICE_H */
