/* SPDX-License-Identifier: MIT */
/*
 * notifier: clustered one-way notifications and RPC between peer processes.
 *
 * This is the whole public C API.  A process opens a node, registers
 * handlers for (object, id-match, cmd) and, from any thread, publishes
 * one-way notifications or makes RPC calls that are routed to every node in
 * the cluster that registered for them (see SPEC §1 in the docs).
 *
 * Conventions
 *   - Every function that can fail returns an int: NT_OK (0) or a negative
 *     NT_E* code; nt_strerror() turns it into a one-line message.
 *   - Every function is safe to call from any thread, including from inside
 *     a handler.  Handlers run on the node's worker threads and are never
 *     called with a library lock held.
 *   - Strings passed in are copied; the caller keeps ownership.
 */
#ifndef NOTIFIER_NOTIFIER_H
#define NOTIFIER_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define NT_API
#else
#define NT_API __attribute__((visibility("default")))
#endif

#define NT_VERSION_MAJOR 0
#define NT_VERSION_MINOR 1
#define NT_VERSION_PATCH 0

/* Error codes.  Every code has a one-line message in nt_strerror(). */
enum {
    NT_OK = 0,
    NT_EINVAL = -1,      /* invalid argument */
    NT_ENOMEM = -2,      /* out of memory */
    NT_ENOTARGET = -3,   /* nothing is registered for it */
    NT_ETIMEDOUT = -4,   /* timed out */
    NT_EPEERLOST = -5,   /* the serving node died or left */
    NT_EREMOTE = -6,     /* the handler answered with an error */
    NT_ECLOSED = -7,     /* the node is closed or closing */
    NT_EAUTH = -8,       /* authentication failed (wrong key, forged) */
    NT_EPROTO = -9,      /* malformed or unexpected protocol data */
    NT_EADDR = -10,      /* bad or unusable address */
    NT_ENOTSUP = -11,    /* not supported (e.g. serving on a publisher) */
    NT_EEXIST = -12,     /* already registered */
    NT_ENOENT = -13,     /* no such registration */
    NT_EAGAIN = -14,     /* a bounded queue is full; try again */
    NT_EREPLIED = -15,   /* reply already sent, or the handle is stale */
    NT_EMSGSIZE = -16,   /* payload or frame larger than the limit */
    NT_EUNREACHABLE = -17, /* no server or peer could be reached */
    NT_ELIMIT = -18,     /* a configured limit was reached */
    NT_EIO = -19,        /* I/O error (files, sockets) */
};

typedef struct nt_node nt_node;

/* An id matches when (id & mask) == value.  NT_MATCH_ALL matches every id.
 * A value with bits outside its mask can never match and is rejected with
 * NT_EINVAL. */
typedef struct {
    uint64_t mask, value;
} nt_match;
#define NT_MATCH_ALL ((nt_match){ 0, 0 })

/* Node configuration.  Always start from nt_config_init(); every numeric
 * knob left at 0 takes its documented default. */
typedef struct nt_config {
    const char *listen;      /* "host:port" (port 0 = ephemeral);
                                NULL = publisher (serves nothing) */
    const char *advertise;   /* address peers dial; NULL = the bound one */
    const char *const *smap; /* NULL-terminated seed list of "host:port" */
    const unsigned char *key; /* 32-byte cluster key, or ... */
    const char *key_file;     /* ... a file written by `notifier keygen`:
                                 one key per line; the first is used for
                                 sending, every one is accepted (for key
                                 rotation) */
    unsigned workers;         /* delivery worker threads; 0 = #cpus, >= 2 */

    /* Limits and knobs; 0 = default. */
    unsigned queue_depth;    /* tasks per worker queue (and for the shared
                                RPC queue); 0 = 16384.  When a queue is
                                full, publish/rpc return NT_EAGAIN and
                                nothing of that call is enqueued. */
    unsigned max_threads;    /* cap on extra threads started while workers
                                block in synchronous calls; 0 = 4*workers */
    size_t max_payload;      /* bytes per payload; 0 = 1 MiB */
    uint64_t seed;           /* routing RNG seed; 0 = random.  A fixed seed
                                makes slice draws reproducible. */
    unsigned gossip_interval_ms; /* 0 = 200 */
    unsigned gossip_fanout;      /* 0 = 3 */
    unsigned probe_interval_ms;  /* failure-detector probes; 0 = 400 */
    unsigned max_registrations;  /* local registrations; 0 = 65536 */
    unsigned max_inflight;       /* RPC requests served at once from the
                                    network; 0 = 4096 */
    unsigned max_connections;    /* incoming connections at once; more are
                                    refused (drop reason conn_limit);
                                    0 = 1024 */
    unsigned max_peer_inflight;  /* requests in flight to one peer (calls,
                                    batches, gossip); more wait in its
                                    queue; 0 = 256 */
    unsigned publish_timeout_ms; /* publisher nodes: how long nt_publish
                                    waits for the server's acknowledgement
                                    (and for a server to connect);
                                    0 = 5000 */

    /* Logging.  Lines go to log_fn, or to stderr when it is NULL.
     * log_level is the most verbose level written; 0 = NT_LOG_WARN. */
    void (*log_fn)(void *arg, int level, const char *line);
    void *log_arg;
    int log_level;
    int log_json;            /* 1 = JSON lines instead of logfmt */
} nt_config;

/* Log levels (nt_config.log_level). */
enum { NT_LOG_ERROR = 1, NT_LOG_WARN = 2, NT_LOG_INFO = 3, NT_LOG_DEBUG = 4 };

/* Fill cfg with defaults: everything NULL/0. */
NT_API void nt_config_init(nt_config *cfg);

/* Open a node: start its worker pool (and, with a listen address, bind it
 * and join the cluster through the smap).  On success *out owns the node;
 * free it with nt_node_close().  Errors: NT_EINVAL, NT_ENOMEM, NT_EADDR,
 * NT_EAUTH (unusable key), NT_EIO. */
NT_API int nt_node_open(nt_node **out, const nt_config *cfg);

/* Close a node: stop accepting work (calls from other threads return
 * NT_ECLOSED from now on), deliver what is queued within timeout_ms
 * (< 0 = no limit) and drop the rest, fail RPCs still waiting for one of
 * this node's handlers with NT_ECLOSED, wait for running handlers to
 * return, and free everything.  Handlers that never return keep close
 * waiting.  Returns NT_OK; NT_EINVAL when called from one of the node's
 * own handlers (it would wait for itself); NT_ECLOSED when already closed.
 * Afterwards every call on the handle returns NT_ECLOSED (a small shell of
 * the node is kept until the process exits for this), so threads racing
 * with close are safe. */
NT_API int nt_node_close(nt_node *n, int timeout_ms);

/* Replace the seed list at run time (copied). */
NT_API int nt_node_reload(nt_node *n, const char *const *smap);

/* The node's self-certifying id: hex of a hash of its Ed25519 public key.
 * Valid until the node is closed. */
NT_API const char *nt_node_id(const nt_node *n);

/* The bound "host:port" (the real port when 0 was asked), or NULL for a
 * publisher.  Valid until the node is closed. */
NT_API const char *nt_node_address(const nt_node *n);

/* Block until at least count members (this node included) are alive, or
 * until every alive member holds the same directory digest.  A publisher
 * node asks its server about the server's view.  NT_ETIMEDOUT at the
 * deadline; timeout_ms < 0 waits without limit. */
NT_API int nt_node_wait_members(nt_node *n, unsigned count, int timeout_ms);
NT_API int nt_node_wait_converged(nt_node *n, int timeout_ms);

/* A message as a handler sees it.  Every pointer is valid only during the
 * handler call; copy what you keep. */
typedef struct nt_msg {
    const char *object;
    uint64_t id;
    const char *cmd;
    const void *data;
    size_t len;
    const char *from; /* sender node id */
} nt_msg;

typedef void (*nt_notify_fn)(void *dest, const nt_msg *m);

/* An RPC handler answers exactly once through r, with nt_reply_send() or
 * nt_reply_error(), either before it returns or later from any thread.
 * The handle becomes invalid once used; using it again returns
 * NT_EREPLIED and does nothing else.  If the node closes first, the waiting
 * caller gets NT_ECLOSED and a later reply returns NT_EREPLIED. */
typedef struct nt_reply nt_reply;
typedef void (*nt_rpc_fn)(void *dest, const nt_msg *m, nt_reply *r);

/* data is copied. Errors: NT_EREPLIED, NT_EMSGSIZE (the handle is still
 * valid then), NT_ENOMEM. */
NT_API int nt_reply_send(nt_reply *r, const void *data, size_t len);
/* Answer with an error: the caller gets status NT_EREMOTE, the code in
 * nt_result.code and the message as the payload. */
NT_API int nt_reply_error(nt_reply *r, int code, const char *message);

/*
 * Registration.  "dest" is the destination: its pointer identifies the
 * registration owner and is passed to the handler.  A registration is
 * identified by (object, match, cmd, dest); registering the same one twice
 * (full or slice) returns NT_EEXIST, removing an unknown one NT_ENOENT.
 * object and cmd are non-empty strings of at most 255 bytes.  A slice
 * weight must be finite and > 0.  Registration on a publisher node returns
 * NT_ENOTSUP.
 *
 * When an unsubscribe/unregister call returns, the handler will not be
 * started again for that registration; when it is called from outside the
 * node's handlers, any call of it in progress has also returned, so dest
 * may be freed.
 */
NT_API int nt_subscribe(nt_node *n, const char *object, nt_match id,
                        const char *cmd, nt_notify_fn fn, void *dest);
NT_API int nt_slice(nt_node *n, const char *object, nt_match id,
                    const char *cmd, nt_notify_fn fn, void *dest,
                    double weight);
NT_API int nt_unsubscribe(nt_node *n, const char *object, nt_match id,
                          const char *cmd, void *dest);
/* Removes every notification registration of dest; NT_ENOENT if none. */
NT_API int nt_unsubscribe_all(nt_node *n, void *dest);
NT_API int nt_rpc_register(nt_node *n, const char *object, nt_match id,
                           const char *cmd, nt_rpc_fn fn, void *dest);
NT_API int nt_rpc_slice(nt_node *n, const char *object, nt_match id,
                        const char *cmd, nt_rpc_fn fn, void *dest,
                        double weight);
NT_API int nt_rpc_unregister(nt_node *n, const char *object, nt_match id,
                             const char *cmd, void *dest);
/* Removes every RPC registration of dest; NT_ENOENT if none. */
NT_API int nt_rpc_unregister_all(nt_node *n, void *dest);

/* Publish a one-way notification to every full registration that matches
 * and to one weighted-random slice.  On a member node it never waits on the
 * network; a publisher node hands it to its server and waits for the
 * server's acknowledgement (publish_timeout_ms, default 5 s).  data is copied.  Errors: NT_ENOTARGET (nothing matches), NT_EAGAIN (a queue is
 * full: nothing was enqueued), NT_EMSGSIZE, NT_EINVAL, NT_ECLOSED. */
NT_API int nt_publish(nt_node *n, const char *object, uint64_t id,
                      const char *cmd, const void *data, size_t len);

typedef struct nt_result {
    int status;       /* NT_OK, NT_EREMOTE, NT_ETIMEDOUT, NT_EPEERLOST,
                         NT_ECLOSED, NT_ENOTARGET, NT_EAGAIN, ... */
    const void *data; /* reply payload, or the error message (NUL-ended) */
    size_t len;
    const char *node; /* responder id */
    int code;         /* with NT_EREMOTE: the handler's error code */
} nt_result;
typedef struct nt_results {
    size_t count;
    nt_result *items;
} nt_results;

/*
 * Synchronous RPC: one reply per target (every full registration plus one
 * slice).  Returns NT_OK when every target answered or timed out (look at
 * each item's status) and *out then owns the results.  Returns a negative
 * code, with *out = NULL, when the call could not be made at all:
 * NT_ENOTARGET at once when nothing is registered, NT_EAGAIN, NT_EINVAL,
 * NT_EMSGSIZE, NT_ECLOSED (also when the node closes during the call).
 * timeout_ms < 0 waits without limit.
 */
NT_API int nt_rpc(nt_node *n, const char *object, uint64_t id,
                  const char *cmd, const void *data, size_t len,
                  int timeout_ms, nt_results **out);

/* One RPC per id, all in flight at once.  out is the caller's array of
 * nids pointers; on NT_OK out[i] gets the replies for ids[i] (free each with
 * nt_results_free).  An id with no target gets one item with status
 * NT_ENOTARGET.  Returns NT_ENOTARGET (out[] all NULL, nothing sent) when
 * no id has a target. */
NT_API int nt_rpcs(nt_node *n, const char *object, const uint64_t *ids,
                   size_t nids, const char *cmd, const void *data,
                   size_t len, int timeout_ms, nt_results *out[]);

/* Asynchronous RPC.  On NT_OK the callback runs exactly once, on a worker
 * thread, with status NT_OK (or NT_ECLOSED when the node closed first) and
 * the results, which the library frees after the callback returns.  On
 * error the callback never runs. */
typedef void (*nt_response_fn)(void *arg, int status, const nt_results *r);
NT_API int nt_rpc_call(nt_node *n, const char *object, uint64_t id,
                       const char *cmd, const void *data, size_t len,
                       int timeout_ms, nt_response_fn fn, void *arg);

/* Free results; NULL is a no-op. */
NT_API void nt_results_free(nt_results *r);

/*
 * Introspection.  what is "members" (the members this node sees: id,
 * address, state, incarnation, registrations), "subs" (the cluster routing
 * table as this node sees it), "stats" (counters) or "metrics" (the same
 * and more in the Prometheus text format, whatever format says).  format
 * is NT_INFO_TEXT (aligned human-readable lines) or NT_INFO_JSON (one JSON
 * object).  A publisher node asks its server node.  On NT_OK *out is a
 * NUL-terminated string to free with nt_free().  Errors: NT_EINVAL,
 * NT_ENOMEM, NT_EUNREACHABLE / NT_ETIMEDOUT (publisher: no server
 * answered), NT_ECLOSED.
 */
enum { NT_INFO_TEXT = 0, NT_INFO_JSON = 1 };
NT_API int nt_node_info(nt_node *n, const char *what, int format,
                        int timeout_ms, char **out);
NT_API void nt_free(void *p);

/* Cluster keys.  nt_key_generate writes a fresh random key as base64 text
 * (44 characters + NUL; cap >= 45).  nt_key_parse decodes such text
 * (surrounding whitespace ignored) into 32 bytes: NT_OK or NT_EAUTH. */
NT_API int nt_key_generate(char *out, size_t cap);
NT_API int nt_key_parse(const char *text, unsigned char key[32]);
/* Reads a key file: one base64 key per line (blank lines and # comments
 * skipped), at most max (up to 8).  keys[0] is the one to send with.
 * NT_OK, NT_EIO (unreadable), NT_EAUTH (a line is no key, or no key at
 * all), NT_ELIMIT (more than max). */
NT_API int nt_key_file_load(const char *path, unsigned char (*keys)[32],
                            size_t max, size_t *count);
/* Key rotation without downtime: install the new key on every node, then
 * make it the one used for sending on every node, then remove the old one
 * everywhere.  Frames are accepted under any installed key.  Errors:
 * NT_ENOENT (not installed), NT_EINVAL (removing the key in use),
 * NT_ELIMIT (keyring full or key id clash: generate another key). */
NT_API int nt_node_key_install(nt_node *n, const unsigned char key[32]);
NT_API int nt_node_key_use(nt_node *n, const unsigned char key[32]);
NT_API int nt_node_key_remove(nt_node *n, const unsigned char key[32]);

/* Checks a "host:port" address as the API and programs accept it: NT_OK or
 * NT_EADDR. */
NT_API int nt_addr_check(const char *addr);

/* Stable 64-bit id of a string, the same on every node and build:
 * SipHash-2-4 (libsodium crypto_shorthash) of the string's bytes with the
 * fixed 16-byte key "notifier-id-hash", read as little-endian. */
NT_API uint64_t nt_id_hash(const char *s);

/* Static one-line message for an error code. */
NT_API const char *nt_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif /* NOTIFIER_NOTIFIER_H */
