/* SPDX-License-Identifier: MIT */
/*
 * Data-frame codec: the plaintext of the frames nodes exchange (see
 * docs/PROTOCOL.md).  Pure functions over caller buffers; decoding goes
 * through the bounds-checked cursor of gossip_codec.h and never trusts a
 * declared count before checking it against what is left.
 */
#ifndef NTI_WIRE_H
#define NTI_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip_codec.h"

#define NTI_WIRE_VERSION 1
#define NTI_ID_LEN 16
#define NTI_NAME_MAX 255
#define NTI_MAX_TARGETS 1024 /* registration ids per item */
#define NTI_FROM_MAX 64      /* original sender id (hex) */

enum {
    NTI_T_NOTIFY = 1,
    NTI_T_CALL = 2,
    NTI_T_PUBLISH = 3,
    NTI_T_ROUTE_CALL = 4,
    NTI_T_INFO = 5,
    NTI_T_CALLS = 6,      /* batched calls; reply CALLS_ACK */
    NTI_T_RESULTS_TO = 7, /* results of 'later' calls, callee -> caller */
    NTI_T_ACK = 16,
    NTI_T_RESULTS = 17,
    NTI_T_TEXT = 18,
    NTI_T_CALLS_ACK = 19,
};

/* CALLS_ACK entry states. */
enum { NTI_CA_DONE = 0, NTI_CA_LATER = 1, NTI_CA_REFUSED = 2 };

#define NTI_ADDR_MAX 255 /* reply_to: a str */

/* Channel bytes in front of a sealed frame. */
#define NTI_CH_GOSSIP 'G'
#define NTI_CH_DATA 'D'
#define NTI_CH_REJECT 'E' /* unauthenticated "could not open your frame" */

typedef struct {
    uint8_t type;
    uint8_t sender[NTI_ID_LEN];
    uint64_t sender_boot;
    uint64_t seq;
    uint8_t dest[NTI_ID_LEN]; /* all zero: any */
    uint64_t dest_boot;       /* 0: any */
    uint64_t ref;             /* replies: the request's seq; else 0 */
} nti_hdr;

#define NTI_HDR_LEN (2 + NTI_ID_LEN + 8 + 8 + NTI_ID_LEN + 8 + 8)

/* A decoded message body (NOTIFY item, CALL, PUBLISH, ROUTE_CALL).
 * Strings are NUL-terminated copies; regs and data point into the frame. */
typedef struct {
    uint64_t id;
    char object[NTI_NAME_MAX + 1];
    char cmd[NTI_NAME_MAX + 1];
    uint16_t nregs;
    const uint8_t *regs; /* nregs big-endian u64 */
    const uint8_t *data;
    uint32_t len;
    uint8_t flags;       /* CALL, ROUTE_CALL */
    uint32_t timeout_ms; /* ROUTE_CALL; UINT32_MAX = none */
    char from[NTI_FROM_MAX + 1]; /* NOTIFY, CALL: the original sender */
} nti_wmsg;

/* One reply item of RESULTS. node and data point into the frame. */
typedef struct {
    int32_t status;
    int32_t code;
    const uint8_t *node;
    size_t nodelen;
    const uint8_t *data;
    uint32_t len;
} nti_witem;

#define NTI_CALL_NESTED 1

void nti_wire_hdr_put(gsp_wr *w, const nti_hdr *h);
/* GSP_OK, or GSP_EVERSION / GSP_EMALFORMED. */
int nti_wire_hdr_get(gsp_rd *r, nti_hdr *h);

/* Sizes, for allocating exactly. */
size_t nti_wire_msg_size(uint8_t type, const char *from, const char *object,
                         const char *cmd, size_t nregs, size_t len);
/* NOTIFY item / CALL / PUBLISH / ROUTE_CALL bodies.  regs may be NULL when
 * nregs is 0. */
void nti_wire_msg_put(gsp_wr *w, uint8_t type, uint8_t flags,
                      uint32_t timeout_ms, const char *from, uint64_t id,
                      const char *object,
                      const char *cmd, const uint64_t *regs, size_t nregs,
                      const void *data, size_t len);
int nti_wire_msg_get(gsp_rd *r, uint8_t type, nti_wmsg *m);
uint64_t nti_wire_reg(const nti_wmsg *m, size_t i);

/* RESULTS: status, count, then count items. */
void nti_wire_results_head_put(gsp_wr *w, int32_t status, uint16_t count);
size_t nti_wire_item_size(size_t nodelen, size_t len);
void nti_wire_item_put(gsp_wr *w, int32_t status, int32_t code,
                       const char *node, const void *data, size_t len);
int nti_wire_results_head_get(gsp_rd *r, int32_t *status, uint16_t *count);
int nti_wire_item_get(gsp_rd *r, nti_witem *it);
/* Checks a whole RESULTS body at r and moves past it.  GSP_OK or
 * GSP_EMALFORMED. */
int nti_wire_results_skip(gsp_rd *r);

/* CALLS: str reply_to, u32 n, then n items (u64 ref + CALL body).
 * RESULTS_TO: u32 n, then n items (u64 ref + RESULTS body).
 * CALLS_ACK: u32 n, then n entries (u8 state [+ RESULTS body | i32]). */
int nti_wire_calls_item_get(gsp_rd *r, uint64_t *ref, nti_wmsg *m);

/* Reads a name (1..255 bytes, no NUL) into buf (256 bytes; NULL: only
 * checks it). */
int nti_wire_name_get(gsp_rd *r, char *buf);
void nti_wire_name_put(gsp_wr *w, const char *s);

/* Decodes a whole plaintext frame, checking every field: the fuzz entry
 * point, and what the receiver calls before acting on anything.  GSP_OK or
 * a negative GSP_E* code. */
int nti_wire_check(const uint8_t *pt, size_t len);

#endif
