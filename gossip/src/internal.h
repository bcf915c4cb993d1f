/* SPDX-License-Identifier: MIT */
/*
 * internal.h - private structures shared by the gossip translation units.
 *
 * One gsp holds: our identity and keys, the member table (self included)
 * with each member's signed header and entries, the 64 bucket hashes and
 * the view digest, the broadcast queue, the outgoing frame queue, the SWIM
 * probe state and the timers. Everything hangs off the gsp; there is no
 * global state. Functions here are prefixed gspi_ by module.
 */
#ifndef GOSSIP_INTERNAL_H
#define GOSSIP_INTERNAL_H

#include "gossip.h"
#include "gossip_codec.h"

#include <stdbool.h>

#define NBUCKETS 64
#define SIG_LEN 64
#define UNIT_MAGIC0 'G'
#define UNIT_MAGIC1 'S'
#define UNIT_FMT 1
#define UNIT_HDR 1
#define UNIT_ENT 2
#define HDR_F_LEFT 0x01
#define ENT_F_TOMB 0x01
#define FRAME_FMT 1
#define MAX_ACCUSERS 8
#define EXPECTED_CONFIRM 3
#define MAX_HELPERS 64
#define MAX_BCAST 4096
#define RW_BITS 256
#define HEALTH_MAX 8

/* Section types inside a frame. */
enum {
    SEC_HDR = 1,
    SEC_PING,
    SEC_ACK,
    SEC_PINGREQ,
    SEC_SYNC,
    SEC_BUCKETS,
    SEC_DIGEST,
    SEC_WANT,
    SEC_UNITS,
    SEC_ACCUSE
};
#define SEC_HDR_LEN 5 /* type u8 + len u32 */
#define UNITS_F_EAGER 0x01
#define UNITS_F_DIRECT 0x04 /* the owner pushed it to every live member */
#define UNITS_F_RESET 0x02
_Static_assert((UNITS_F_EAGER & UNITS_F_DIRECT) == 0 &&
                   (UNITS_F_EAGER & UNITS_F_RESET) == 0 &&
                   (UNITS_F_DIRECT & UNITS_F_RESET) == 0,
               "UNITS section flags must be distinct bits");
#define ACC_F_SOFT 0x01 /* from push-pull: dead counts as suspect */
#define DIGEST_ITEM_LEN (GSP_ID_LEN + 8 + 8 + 8 + 1)
#define ACCUSE_ITEM_LEN (GSP_ID_LEN + 8 + 8 + 1 + GSP_ID_LEN)
#define WANT_ITEM_LEN (GSP_ID_LEN + 8 + 8)
#define FRAME_HDR_LEN (1 + GSP_ID_LEN + 8 + 8 + GSP_DIGEST_LEN)

typedef struct entry entry;
struct entry {
    entry *lnext, *lprev; /* member's list, ascending version */
    entry *hnext;         /* hash chain */
    uint64_t ver;
    uint64_t hash;
    const uint8_t *key, *val; /* into unit */
    size_t klen, vlen;
    uint8_t *unit; /* signed bytes followed by the signature */
    size_t ulen;
    bool tomb;
};

typedef struct member member;
struct member {
    uint8_t id[GSP_ID_LEN];
    char hex[GSP_ID_HEX_LEN + 1];
    uint8_t pk[GSP_PK_LEN];
    bool have_hdr;
    uint64_t inc, hv; /* from the signed header */
    uint8_t hflags;
    char addr[GSP_ADDR_MAX + 1];
    uint8_t *hunit;
    size_t hulen;

    gsp_state state;
    uint64_t acc_hv; /* header version the suspicion/death is about */
    uint64_t wm;     /* highest contiguous version held */
    uint64_t floor;  /* highest GC'd tombstone version known */

    entry **etab;
    size_t enb, ecount, nlive;
    entry *lhead, *ltail;

    uint8_t mh[GSP_DIGEST_LEN];
    bool in_view;
    int bucket;
    size_t bidx;  /* index in bucket list */
    size_t midx;  /* index in g->mem */
    long lidx;    /* index in g->live, -1 if not there */
    long sidx;    /* index in g->susp, -1 if not there */
    member *hnext;

    uint64_t suspect_at, suspect_to;
    uint8_t accusers[MAX_ACCUSERS][GSP_ID_LEN];
    int naccusers;
    uint64_t dead_at;

    bool rw_init;
    uint64_t rw_inc, rw_top;
    uint64_t rw_bits[RW_BITS / 64];

    bool adv_ok;
    uint8_t adv[GSP_DIGEST_LEN];
    uint32_t mark;
};

typedef struct bcast bcast;
struct bcast {
    uint64_t ikey;   /* invalidation key */
    uint32_t sent, limit;
    size_t len;      /* whole section, header included */
    uint8_t body[];  /* section bytes */
};

typedef struct outf outf;
struct outf {
    outf *next;
    char addr[GSP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
};

typedef struct fifo_item fifo_item;
struct fifo_item {
    fifo_item *next;
    uint64_t at;
    uint8_t id[GSP_ID_LEN];
    uint64_t inc, ver;
    size_t klen;
    uint8_t key[];
};

typedef struct {
    fifo_item *head, *tail;
} fifo;

typedef struct {
    bool used;
    uint32_t seq;      /* our ping seq to the target */
    uint32_t req_seq;  /* requester's seq */
    uint8_t target[GSP_ID_LEN];
    char req_addr[GSP_ADDR_MAX + 1];
    uint64_t deadline;
} helper;

/* A frame under construction. */
typedef struct {
    gsp_wr w;
    uint8_t *buf;
    char addr[GSP_ADDR_MAX + 1];
    size_t base; /* offset after the mandatory header + HDR section */
    size_t mark;
} fbuild;

struct gsp {
    gsp_config cfg;
    gsp_keyring *kr;
    uint8_t pk[GSP_PK_LEN], sk[GSP_SK_LEN], id[GSP_ID_LEN];
    char hex[GSP_ID_HEX_LEN + 1];
    char addr[GSP_ADDR_MAX + 1];
    uint64_t inc, ver; /* our incarnation and version counter */
    bool left;
    member *self;

    uint64_t rng[4];
    uint8_t hkey[16];
    uint64_t seq; /* frame sequence */
    uint32_t probe_seq;
    uint32_t mark_epoch;

    member **mtab;
    size_t mnb;
    member **mem;
    size_t nmem, mem_cap;
    member **live;
    size_t nlive, live_cap;
    member **susp;
    size_t nsusp, susp_cap;
    struct {
        member **v;
        size_t n, cap;
    } bk[NBUCKETS];
    uint8_t bh[NBUCKETS][GSP_DIGEST_LEN];
    uint8_t view[GSP_DIGEST_LEN];

    fifo tombs, deads;

    bcast **bq;
    size_t nbq;
    uint64_t eager_due, last_eager;

    outf *ohead, *otail;
    size_t nout;

    char **seeds;
    size_t nseeds;
    uint64_t next_seed, seed_backoff;

    uint64_t next_gossip;
    struct {
        bool active, indirect, acked;
        uint8_t target[GSP_ID_LEN];
        uint32_t seq;
        uint64_t timeout_at, end_at;
    } probe;
    uint64_t next_probe;
    uint8_t (*plist)[GSP_ID_LEN];
    size_t pn, ppos, pcap;
    helper helpers[MAX_HELPERS];
    uint32_t health;

    uint8_t *rx;     /* plaintext scratch, max_frame */
    uint8_t *txpool[4];
    size_t ntx;
    bool isolated;
    fbuild reply; /* reply to the frame being received */
    bool reply_on;
    uint8_t *vbits;  /* per-unit verified flags for one frame */
    size_t vbits_len;

    gsp_stats st;
};

/* ---- rng.c-like helpers (state.c) ---- */
uint64_t gspi_rand(gsp *g);
uint64_t gspi_randn(gsp *g, uint64_t n);
uint64_t gspi_khash(const gsp *g, const void *p, size_t n);

/* ---- state.c ---- */
member *gspi_member_find(const gsp *g, const uint8_t id[GSP_ID_LEN]);
member *gspi_member_new(gsp *g, const uint8_t id[GSP_ID_LEN]);
void gspi_member_remove(gsp *g, member *m);
entry *gspi_entry_find(const member *m, uint64_t h, const uint8_t *key,
                       size_t klen);
void gspi_emit_member(gsp *g, member *m, gsp_event_type t);
void gspi_set_state(gsp *g, member *m, gsp_state s, uint64_t now);
void gspi_drop_entries(gsp *g, member *m, bool events);
void gspi_unit_hash(const uint8_t *sig, uint8_t out[GSP_DIGEST_LEN]);
void gspi_mh_xor(gsp *g, member *m, const uint8_t h[GSP_DIGEST_LEN]);
int gspi_fifo_push(fifo *f, uint64_t at, const uint8_t id[GSP_ID_LEN],
                   uint64_t inc, uint64_t ver, const uint8_t *key,
                   size_t klen);
void gspi_fifo_clear(fifo *f);
void gspi_gc(gsp *g, uint64_t now);
size_t gspi_n_alive(const gsp *g);

/* ---- unit.c ---- */
typedef struct {
    uint8_t type;
    const uint8_t *id, *pk;
    uint64_t inc, ver;
    uint8_t flags;
    const uint8_t *addr, *key, *val;
    size_t addrlen, klen, vlen;
    const uint8_t *msg; /* signed bytes */
    size_t msglen;
    const uint8_t *sig;
    const uint8_t *raw; /* msg || sig */
    size_t rawlen;
} punit;

int gspi_unit_parse(const uint8_t *p, size_t n, size_t max_value, punit *u);
int gspi_entry_apply(gsp *g, member *m, const punit *u, uint64_t now);
int gspi_unit_sign_hdr(gsp *g, uint8_t flags);
int gspi_unit_sign_ent(gsp *g, const uint8_t *key, size_t klen,
                       const uint8_t *val, size_t vlen, bool tomb,
                       uint8_t **out, size_t *outlen);
/* 1 = would be applied (needs verifying), 0 = stale or orphan. */
int gspi_unit_relevant(const gsp *g, const punit *u);
int gspi_unit_verify(gsp *g, const punit *u, const uint8_t pk[GSP_PK_LEN]);
/* Apply a verified unit. Returns 1 if applied, 0 if stale/orphan, or
 * GSP_ENOMEM. */
int gspi_unit_apply(gsp *g, const punit *u, uint64_t now, bool eager);
int gspi_self_entry(gsp *g, uint64_t now, uint8_t *unit, size_t ulen);

/* ---- bcast.c ---- */
int gspi_bcast_push(gsp *g, uint64_t now, uint64_t ikey, const uint8_t *sec,
                    size_t len);
int gspi_bcast_unit(gsp *g, uint64_t now, const uint8_t owner[GSP_ID_LEN],
                    uint64_t inc, uint64_t ver, const uint8_t *unit,
                    size_t ulen, uint64_t ikey);
void gspi_bcast_fill(gsp *g, fbuild *b);
void gspi_bcast_clear(gsp *g);
void gspi_bcast_prune(gsp *g);
int gspi_bcast_unit_f(gsp *g, uint64_t now, const uint8_t owner[GSP_ID_LEN],
                      uint64_t inc, uint64_t ver, const uint8_t *unit,
                      size_t ulen, uint64_t ikey, uint8_t flags,
                      uint32_t limit);
int gspi_flush(gsp *g, uint64_t now, bool with_sync);
int gspi_flush_k(gsp *g, uint64_t now, bool with_sync, size_t k);
int gspi_flush_origin(gsp *g, uint64_t now);
#define GSPI_DIRECT_MAX 64 /* origin pushes to all when this many or fewer */
uint32_t gspi_limit(const gsp *g);

/* ---- wire.c ---- */
int gspi_fb_begin(gsp *g, fbuild *b, const char *addr);
int gspi_fb_sec_begin(fbuild *b, uint8_t type);
int gspi_fb_sec_end(fbuild *b);
void gspi_fb_sec_abort(fbuild *b);
bool gspi_fb_empty(const fbuild *b);
int gspi_fb_finish(gsp *g, fbuild *b);
void gspi_fb_abort(gsp *g, fbuild *b);
int gspi_out_push(gsp *g, const char *addr, uint8_t *buf, size_t len);
void gspi_out_clear(gsp *g);
int gspi_send_simple(gsp *g, const char *addr, uint8_t type,
                     const uint8_t *body, size_t len);

/* ---- sync.c ---- */
fbuild *gspi_reply(gsp *g, const member *to);
int gspi_reply_finish(gsp *g);
int gspi_units_apply(gsp *g, uint64_t now, gsp_rd *r, size_t *ord);
int gspi_sync_on_sync(gsp *g, const member *from, const uint8_t *digest);
int gspi_sync_on_buckets(gsp *g, const member *from, gsp_rd *r);
int gspi_sync_on_digest(gsp *g, uint64_t now, member *from, gsp_rd *r);
int gspi_sync_on_want(gsp *g, const member *from, gsp_rd *r);
/* Write a UNITS section for m from version `from` into b (as much as
 * fits). Returns 1 if written, 0 if nothing to send / no room. */
int gspi_sync_units(gsp *g, fbuild *b, const member *m, uint64_t inc,
                    uint64_t from);

/* ---- detect.c ---- */
void gspi_detect_tick(gsp *g, uint64_t now);
uint64_t gspi_detect_deadline(const gsp *g);
int gspi_on_ping(gsp *g, const member *from, gsp_rd *r);
int gspi_on_ack(gsp *g, uint64_t now, gsp_rd *r);
int gspi_on_pingreq(gsp *g, uint64_t now, const member *from, gsp_rd *r);
int gspi_on_accuse(gsp *g, uint64_t now, const member *from, gsp_rd *r);
void gspi_suspect(gsp *g, uint64_t now, member *m,
                  const uint8_t accuser[GSP_ID_LEN], bool rebroadcast);
void gspi_declare_dead(gsp *g, uint64_t now, member *m, bool broadcast);
int gspi_refute(gsp *g, uint64_t now);
int gspi_write_accuse(fbuild *b, const member *m, gsp_state s,
                      const uint8_t accuser[GSP_ID_LEN], uint8_t flags);
void gspi_live_add(gsp *g, member *m);
void gspi_live_del(gsp *g, member *m);
void gspi_susp_del(gsp *g, member *m);
member *gspi_random_live(gsp *g, const uint8_t *exclude);
int gspi_pick_peers(gsp *g, member **out, size_t k, const uint8_t *exclude);

#endif
