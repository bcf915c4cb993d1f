/* SPDX-License-Identifier: MIT */
/*
 * gossip_codec.h - bounds-checked cursor reader and writer for wire
 * formats.
 *
 * Decoding reads only through gsp_rd: every read checks the remaining
 * length, and the first failure sets a sticky error flag after which all
 * reads return zeroes, so a decoder does its reads and checks r.err once
 * at the end. Nothing is ever laid over a wire buffer. Integers are
 * big-endian. Writers mirror this: a write past the capacity sets the
 * sticky flag and writes nothing. Shared by the gossip frames and the
 * node's data-frame codec. Plain functions on caller-owned structs: no
 * allocation, thread-safe per cursor.
 */
#ifndef GOSSIP_CODEC_H
#define GOSSIP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const uint8_t *p;
    size_t len, off;
    int err;
} gsp_rd;

void gsp_rd_init(gsp_rd *r, const void *buf, size_t len);
int gsp_rd_u8(gsp_rd *r, uint8_t *v);
int gsp_rd_u16(gsp_rd *r, uint16_t *v);
int gsp_rd_u32(gsp_rd *r, uint32_t *v);
int gsp_rd_u64(gsp_rd *r, uint64_t *v);
/* Copy n bytes out. */
int gsp_rd_copy(gsp_rd *r, void *dst, size_t n);
/* Borrow a pointer to the next n bytes (valid while the buffer is). */
int gsp_rd_bytes(gsp_rd *r, size_t n, const uint8_t **p);
/* A length-prefixed (u8/u16/u32) byte string, rejected if over max. */
int gsp_rd_blob8(gsp_rd *r, size_t max, const uint8_t **p, size_t *n);
int gsp_rd_blob16(gsp_rd *r, size_t max, const uint8_t **p, size_t *n);
int gsp_rd_blob32(gsp_rd *r, size_t max, const uint8_t **p, size_t *n);
/* Sub-reader over the next n bytes. */
int gsp_rd_sub(gsp_rd *r, size_t n, gsp_rd *sub);
int gsp_rd_skip(gsp_rd *r, size_t n);
size_t gsp_rd_left(const gsp_rd *r);
/* 0 iff no error and (if exact) everything consumed. */
int gsp_rd_done(const gsp_rd *r, int exact);

typedef struct {
    uint8_t *p;
    size_t cap, off;
    int err;
} gsp_wr;

void gsp_wr_init(gsp_wr *w, void *buf, size_t cap);
int gsp_wr_u8(gsp_wr *w, uint8_t v);
int gsp_wr_u16(gsp_wr *w, uint16_t v);
int gsp_wr_u32(gsp_wr *w, uint32_t v);
int gsp_wr_u64(gsp_wr *w, uint64_t v);
int gsp_wr_bytes(gsp_wr *w, const void *src, size_t n);
int gsp_wr_blob8(gsp_wr *w, const void *src, size_t n);
int gsp_wr_blob16(gsp_wr *w, const void *src, size_t n);
int gsp_wr_blob32(gsp_wr *w, const void *src, size_t n);
/* Reserve n bytes to fill later (e.g. a length); NULL on overflow. */
uint8_t *gsp_wr_reserve(gsp_wr *w, size_t n);
size_t gsp_wr_left(const gsp_wr *w);

void gsp_put_u16(uint8_t *p, uint16_t v);
void gsp_put_u32(uint8_t *p, uint32_t v);
void gsp_put_u64(uint8_t *p, uint64_t v);
uint16_t gsp_get_u16(const uint8_t *p);
uint32_t gsp_get_u32(const uint8_t *p);
uint64_t gsp_get_u64(const uint8_t *p);

#ifdef __cplusplus
}
#endif
#endif
