/* SPDX-License-Identifier: MIT */
/*
 * gossip.h - the peer directory as a deterministic, authenticated state
 * machine.
 *
 * A gsp instance holds this node's signed record (header + entries) and a
 * replica of every other member's record, spreads them by eager push and
 * Scuttlebutt push-pull anti-entropy, and detects failures with SWIM
 * (indirect probes, suspicion, refutation). It has no sockets, threads or
 * clock: the caller passes now_ms (monotonic milliseconds) to every call,
 * feeds received frames to gsp_recv, calls gsp_tick by gsp_next_deadline,
 * and sends every frame gsp_out hands back. Given the same seed and inputs
 * it produces the same outputs. See docs/GOSSIP.md.
 *
 * Thread-safety: none. Calls on one instance (and on the keyring it uses)
 * must be serialised by the caller. Different instances are independent.
 * The event callback runs synchronously inside gsp_recv / gsp_tick /
 * gsp_leave / gsp_set_seeds; it must not call back into the same instance.
 *
 * Errors: every fallible call returns 0 or a negative GSP_E* code;
 * gsp_strerror gives a static string. Out of memory never aborts.
 */
#ifndef GOSSIP_H
#define GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative). */
enum {
    GSP_OK = 0,
    GSP_EINVAL = -1,      /* bad argument */
    GSP_ENOMEM = -2,      /* out of memory; state unchanged */
    GSP_ENOSPC = -3,      /* output buffer too small */
    GSP_ETOOBIG = -4,     /* frame or value over the configured limit */
    GSP_EMALFORMED = -5,  /* truncated or garbage */
    GSP_EUNKNOWNKEY = -6, /* frame sealed with a key id not in the keyring */
    GSP_EAUTH = -7,       /* AEAD authentication failed */
    GSP_EREPLAY = -8,     /* frame already seen or too old */
    GSP_ESIG = -9,        /* a record signature did not verify */
    GSP_ESTALE = -10,     /* from an older incarnation of the sender */
    GSP_EVERSION = -11,   /* unsupported frame or format version */
    GSP_ENOKEY = -12,     /* keyring has no primary key */
    GSP_ELEFT = -13,      /* instance has left the cluster */
    GSP_ENOTFOUND = -14,  /* no such key / key id */
    GSP_EBUSY = -15,      /* cannot remove the primary key */
    GSP_ESELF = -16       /* frame from ourselves */
};
const char *gsp_strerror(int code);

/* Limits. */
#define GSP_ID_LEN 16       /* node id = BLAKE2b-128(Ed25519 pk) */
#define GSP_ID_HEX_LEN 32   /* lowercase hex, plus NUL in buffers */
#define GSP_PK_LEN 32
#define GSP_SK_LEN 64
#define GSP_KEY_LEN 32      /* cluster key */
#define GSP_DIGEST_LEN 32
#define GSP_ADDR_MAX 255    /* advertised address, bytes */
#define GSP_KEY_MAX 255     /* entry key, bytes */
#define GSP_VALUE_MAX 16384 /* hard cap on an entry value */
#define GSP_SEAL_OVERHEAD 42 /* ver + key id + nonce(24) + tag(16) */
#define GSP_FRAME_MIN 1024  /* smallest accepted max_frame */

/* ---- Identity ---------------------------------------------------------- */

/* id = BLAKE2b-128(pk). hex (33 bytes) may be NULL; it gets 32 lowercase
 * hex digits and a NUL. */
void gsp_id_from_pk(const uint8_t pk[GSP_PK_LEN], uint8_t id[GSP_ID_LEN],
                    char *hex);
void gsp_id_hex(const uint8_t id[GSP_ID_LEN], char hex[GSP_ID_HEX_LEN + 1]);

/* ---- Keyring and frame sealing ----------------------------------------- */

/* Holds up to 16 cluster keys by key id (0..255). Seal with the primary,
 * open with whichever key the frame names. Rotation without downtime:
 * install the new key everywhere, then use it everywhere, then remove the
 * old one. Keys are wiped with sodium_memzero. Not thread-safe. */
typedef struct gsp_keyring gsp_keyring;

int gsp_keyring_alloc(gsp_keyring **out);
void gsp_keyring_free(gsp_keyring *kr); /* NULL is a no-op */
/* Install (or replace) a key. The first key installed becomes primary. */
int gsp_keyring_install(gsp_keyring *kr, uint8_t key_id,
                        const uint8_t key[GSP_KEY_LEN]);
int gsp_keyring_use(gsp_keyring *kr, uint8_t key_id); /* make primary */
/* GSP_EBUSY for the primary, GSP_ENOTFOUND if absent. */
int gsp_keyring_remove(gsp_keyring *kr, uint8_t key_id);
int gsp_keyring_primary(const gsp_keyring *kr); /* key id or GSP_ENOKEY */
/* Deterministic nonces (seed tag || counter) for simulators and tests.
 * Production keyrings use randombytes_buf; never call this there: two
 * keyrings with the same seed and key would reuse nonces. */
void gsp_keyring_set_nonce_seed(gsp_keyring *kr, uint64_t seed);

/* Seal len plaintext bytes into out (cap bytes; needs len +
 * GSP_SEAL_OVERHEAD). Errors: GSP_ENOKEY, GSP_ENOSPC, GSP_EINVAL. */
int gsp_seal(gsp_keyring *kr, const uint8_t *pt, size_t len, uint8_t *out,
             size_t cap, size_t *outlen);
/* Open a sealed frame into out (cap bytes). Errors: GSP_EMALFORMED
 * (truncated), GSP_EVERSION, GSP_EUNKNOWNKEY, GSP_EAUTH, GSP_ETOOBIG
 * (plaintext would not fit cap). */
int gsp_open(const gsp_keyring *kr, const uint8_t *frame, size_t len,
             uint8_t *out, size_t cap, size_t *outlen);

/* ---- Events ------------------------------------------------------------ */

typedef enum {
    GSP_EV_MEMBER_UP = 1, /* new, revived, or restarted (higher incarnation) */
    GSP_EV_MEMBER_SUSPECT,
    GSP_EV_MEMBER_ALIVE,  /* suspicion refuted */
    GSP_EV_MEMBER_DEAD,   /* its entries were deleted just before */
    GSP_EV_MEMBER_LEFT,   /* its entries were deleted just before */
    GSP_EV_ENTRY_PUT,     /* insert or update */
    GSP_EV_ENTRY_DEL
} gsp_event_type;

/* Pointers are valid only during the callback. Events concern other
 * members only. Invariant: applying the ENTRY_* events to an empty map
 * yields exactly the entries of the live (alive or suspect) remote members
 * in the current view; MEMBER_DEAD/LEFT and a restart (MEMBER_UP with a
 * higher incarnation for a known id) are preceded by ENTRY_DEL for every
 * entry the member had. */
typedef struct {
    gsp_event_type type;
    const uint8_t *id; /* GSP_ID_LEN bytes */
    const char *id_hex;
    const char *addr;     /* member events */
    uint64_t incarnation;
    const uint8_t *key;   /* entry events */
    size_t klen;
    const uint8_t *val;   /* ENTRY_PUT */
    size_t vlen;
} gsp_event;

typedef void (*gsp_event_fn)(void *arg, const gsp_event *ev);

/* Optional signature verifier (returns 0 if valid). Simulators share a
 * memoising one across instances; NULL = crypto_sign_verify_detached. */
typedef int (*gsp_verify_fn)(void *arg, const uint8_t sig[64],
                             const uint8_t *msg, size_t len,
                             const uint8_t pk[GSP_PK_LEN]);

/* ---- Configuration ----------------------------------------------------- */

typedef struct {
    const uint8_t *pk;      /* Ed25519 public key (32), required */
    const uint8_t *sk;      /* Ed25519 secret key (64), required; copied */
    const char *addr;       /* our advertised address, required */
    uint64_t incarnation;   /* boot generation: larger than the last boot */
    gsp_keyring *keyring;   /* required; borrowed, must outlive the gsp */
    uint64_t seed;          /* RNG seed */
    gsp_event_fn on_event;  /* may be NULL */
    void *event_arg;
    gsp_verify_fn verify;   /* may be NULL */
    void *verify_arg;

    /* Knobs; 0 = default (in parentheses). */
    uint32_t gossip_interval_ms; /* push-pull + flush period (200) */
    uint32_t fanout;             /* peers per round / eager push (3) */
    uint32_t retransmit_mult;    /* broadcast limit factor (4) */
    uint32_t eager_gap_ms;       /* min gap between eager flushes (5) */
    uint32_t probe_interval_ms;  /* SWIM probe period (400) */
    uint32_t probe_timeout_ms;   /* direct ack wait (200) */
    uint32_t indirect;           /* indirect probes (3) */
    uint32_t suspicion_mult;     /* suspicion min = mult*log10(n)*probe (2) */
    uint32_t suspicion_max_mult; /* suspicion max = this * min (2) */
    uint32_t tombstone_ms;       /* entry tombstone lifetime (60000) */
    uint32_t dead_gc_ms;         /* dead/left record lifetime (60000) */
    uint32_t seed_min_ms;        /* first seed retry (200) */
    uint32_t seed_max_ms;        /* seed backoff cap / sync period (10000) */
    uint32_t max_frame;          /* sealed frame bytes (65536) */
    uint32_t max_value;          /* entry value bytes (4096) */
    uint32_t max_members;        /* refuse new members past this (65536) */
    uint32_t max_out;            /* queued outgoing frames (8192) */
} gsp_config;

void gsp_config_init(gsp_config *cfg); /* zeroes; all knobs default */

/* ---- Lifecycle ---------------------------------------------------------- */

typedef struct gsp gsp;

/* Errors: GSP_EINVAL (missing key/addr, pk/sk mismatch), GSP_ENOMEM. */
int gsp_alloc(gsp **out, const gsp_config *cfg, uint64_t now_ms);
void gsp_free(gsp *g); /* NULL is a no-op; wipes the secret key */

const uint8_t *gsp_self_id(const gsp *g);
const char *gsp_self_hex(const gsp *g);
uint64_t gsp_incarnation(const gsp *g);

/* Replace the seed list (addresses; our own is ignored). Copies. */
int gsp_set_seeds(gsp *g, const char *const *addrs, size_t n, uint64_t now_ms);

/* ---- Entries (our own record) ------------------------------------------ */

/* Insert or update (one new signed version; spread at once). Errors:
 * GSP_EINVAL (klen 0 or > GSP_KEY_MAX), GSP_ETOOBIG (vlen > max_value),
 * GSP_ELEFT, GSP_ENOMEM. */
int gsp_put(gsp *g, uint64_t now_ms, const void *key, size_t klen,
            const void *val, size_t vlen);
/* Delete: leaves a tombstone, dropped after tombstone_ms.
 * GSP_ENOTFOUND if not present. */
int gsp_del(gsp *g, uint64_t now_ms, const void *key, size_t klen);

/* ---- Driving ------------------------------------------------------------ */

/* Feed one sealed frame. Returns 0, or the negative reason it was dropped
 * (each drop is counted in gsp_stats.drops). Never retains frame. */
int gsp_recv(gsp *g, uint64_t now_ms, const uint8_t *frame, size_t len);
/* Run timers. Returns 0 (or GSP_ENOMEM, having done what it could). */
int gsp_tick(gsp *g, uint64_t now_ms);
/* Absolute time (ms) of the next timer; call gsp_tick then or earlier. */
uint64_t gsp_next_deadline(const gsp *g);

/* An outgoing datagram. buf is malloc'd and owned by the caller after a
 * successful gsp_out: release it with gsp_frame_release. */
typedef struct {
    char addr[GSP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
} gsp_frame;
/* Pop the oldest queued frame: 1 = one was given, 0 = queue empty. */
int gsp_out(gsp *g, gsp_frame *f);
void gsp_frame_release(gsp_frame *f);

/* Graceful leave: publishes a signed "left" header and queues it for
 * every live member at once (up to 64) before returning; the broadcast
 * continues on later ticks. After it, put/del return GSP_ELEFT and the
 * instance stops probing. */
int gsp_leave(gsp *g, uint64_t now_ms);

/* ---- Observability ------------------------------------------------------ */

/* Digest of the whole view (live members' headers and entries, self
 * included). Equal digests <=> equal views. */
void gsp_digest(const gsp *g, uint8_t out[GSP_DIGEST_LEN]);
/* True when every alive member's latest advertised digest equals ours. */
int gsp_converged(const gsp *g);

typedef enum {
    GSP_ALIVE = 1,
    GSP_SUSPECT,
    GSP_DEAD,
    GSP_LEFT
} gsp_state;
const char *gsp_state_name(gsp_state s);

typedef struct {
    uint8_t id[GSP_ID_LEN];
    char id_hex[GSP_ID_HEX_LEN + 1];
    const char *addr; /* valid until the next call on the instance */
    gsp_state state;
    uint64_t incarnation;
    uint64_t version; /* highest contiguous version held */
    size_t entries;   /* live entries */
    int self;
} gsp_member_info;

/* Count members (self included) in the given states (bitmask of
 * 1u << gsp_state; 0 = all). */
size_t gsp_member_count(const gsp *g, unsigned state_mask);
/* Iterate members in a stable order: *cursor starts at 0; returns 1 and
 * fills info while there are more. No calls that modify g in between. */
int gsp_member_next(const gsp *g, size_t *cursor, gsp_member_info *info);
/* Iterate a member's live entries: 1 = filled, 0 = done / no such member.
 * Pointers are valid until the next modifying call. */
int gsp_entry_next(const gsp *g, const uint8_t id[GSP_ID_LEN], size_t *cursor,
                   const uint8_t **key, size_t *klen, const uint8_t **val,
                   size_t *vlen);
/* Look up one entry of a member: 0 and pointers, or GSP_ENOTFOUND. */
int gsp_entry_get(const gsp *g, const uint8_t id[GSP_ID_LEN], const void *key,
                  size_t klen, const uint8_t **val, size_t *vlen);

typedef enum {
    GSP_DROP_TOOBIG,
    GSP_DROP_UNKNOWN_KEY,
    GSP_DROP_AUTH,
    GSP_DROP_MALFORMED,
    GSP_DROP_VERSION,
    GSP_DROP_REPLAY,
    GSP_DROP_SIG,
    GSP_DROP_STALE,
    GSP_DROP_SELF,
    GSP_DROP_NOMEM,
    GSP_DROP_COUNT
} gsp_drop;
const char *gsp_drop_name(gsp_drop d);

typedef struct {
    uint64_t rounds;      /* gossip intervals run */
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
    uint64_t drops[GSP_DROP_COUNT];
    uint64_t out_overflow;  /* frames dropped because the out queue was full */
    uint64_t units_applied; /* signed units accepted */
    uint64_t units_stale;   /* ignored: not newer than held */
    uint64_t units_orphan;  /* ignored: owner unknown or not live */
    uint64_t probes, probe_failures, suspicions, refutations;
    uint64_t eager_flushes, syncs, deltas_sent;
    uint32_t health; /* Lifeguard local health score */
} gsp_stats;
void gsp_get_stats(const gsp *g, gsp_stats *st);

/* Retransmit limit for n members (exposed for the simulator's model). */
uint32_t gsp_retransmit_limit(uint32_t mult, size_t n);

#ifdef __cplusplus
}
#endif
#endif
