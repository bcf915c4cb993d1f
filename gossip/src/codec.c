/* SPDX-License-Identifier: MIT */
/*
 * codec.c - the bounds-checked cursor reader/writer of gossip_codec.h.
 *
 * Every operation checks the remaining length before touching memory; on
 * failure it sets the sticky err flag, zeroes the output, and returns -1.
 * Once err is set every later call fails the same way, so callers check
 * once at the end.
 */
#include "gossip_codec.h"

#include <string.h>

void gsp_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void gsp_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

void gsp_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint16_t gsp_get_u16(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

uint32_t gsp_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

uint64_t gsp_get_u64(const uint8_t *p)
{
    return ((uint64_t)gsp_get_u32(p) << 32) | gsp_get_u32(p + 4);
}

void gsp_rd_init(gsp_rd *r, const void *buf, size_t len)
{
    r->p = buf;
    r->len = buf ? len : 0;
    r->off = 0;
    r->err = 0;
}

static const uint8_t *take(gsp_rd *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

int gsp_rd_u8(gsp_rd *r, uint8_t *v)
{
    const uint8_t *p = take(r, 1);
    *v = p ? p[0] : 0;
    return p ? 0 : -1;
}

int gsp_rd_u16(gsp_rd *r, uint16_t *v)
{
    const uint8_t *p = take(r, 2);
    *v = p ? gsp_get_u16(p) : 0;
    return p ? 0 : -1;
}

int gsp_rd_u32(gsp_rd *r, uint32_t *v)
{
    const uint8_t *p = take(r, 4);
    *v = p ? gsp_get_u32(p) : 0;
    return p ? 0 : -1;
}

int gsp_rd_u64(gsp_rd *r, uint64_t *v)
{
    const uint8_t *p = take(r, 8);
    *v = p ? gsp_get_u64(p) : 0;
    return p ? 0 : -1;
}

int gsp_rd_copy(gsp_rd *r, void *dst, size_t n)
{
    const uint8_t *p = take(r, n);
    if (!p) {
        if (n)
            memset(dst, 0, n);
        return -1;
    }
    if (n)
        memcpy(dst, p, n);
    return 0;
}

int gsp_rd_bytes(gsp_rd *r, size_t n, const uint8_t **out)
{
    const uint8_t *p = take(r, n);
    *out = p;
    return p ? 0 : -1;
}

static int blob(gsp_rd *r, size_t n, size_t max, const uint8_t **p,
                size_t *outn)
{
    if (!r->err && n > max)
        r->err = 1;
    if (gsp_rd_bytes(r, n, p) != 0) {
        *outn = 0;
        return -1;
    }
    *outn = n;
    return 0;
}

int gsp_rd_blob8(gsp_rd *r, size_t max, const uint8_t **p, size_t *n)
{
    uint8_t l;
    gsp_rd_u8(r, &l);
    return blob(r, l, max, p, n);
}

int gsp_rd_blob16(gsp_rd *r, size_t max, const uint8_t **p, size_t *n)
{
    uint16_t l;
    gsp_rd_u16(r, &l);
    return blob(r, l, max, p, n);
}

int gsp_rd_blob32(gsp_rd *r, size_t max, const uint8_t **p, size_t *n)
{
    uint32_t l;
    gsp_rd_u32(r, &l);
    return blob(r, l, max, p, n);
}

int gsp_rd_sub(gsp_rd *r, size_t n, gsp_rd *sub)
{
    const uint8_t *p = take(r, n);
    gsp_rd_init(sub, p, p ? n : 0);
    if (!p)
        sub->err = 1;
    return p ? 0 : -1;
}

int gsp_rd_skip(gsp_rd *r, size_t n)
{
    return take(r, n) ? 0 : -1;
}

size_t gsp_rd_left(const gsp_rd *r)
{
    return r->err ? 0 : r->len - r->off;
}

int gsp_rd_done(const gsp_rd *r, int exact)
{
    if (r->err)
        return -1;
    if (exact && r->off != r->len)
        return -1;
    return 0;
}

void gsp_wr_init(gsp_wr *w, void *buf, size_t cap)
{
    w->p = buf;
    w->cap = buf ? cap : 0;
    w->off = 0;
    w->err = 0;
}

uint8_t *gsp_wr_reserve(gsp_wr *w, size_t n)
{
    if (w->err || n > w->cap - w->off) {
        w->err = 1;
        return NULL;
    }
    uint8_t *p = w->p + w->off;
    w->off += n;
    return p;
}

int gsp_wr_u8(gsp_wr *w, uint8_t v)
{
    uint8_t *p = gsp_wr_reserve(w, 1);
    if (!p)
        return -1;
    p[0] = v;
    return 0;
}

int gsp_wr_u16(gsp_wr *w, uint16_t v)
{
    uint8_t *p = gsp_wr_reserve(w, 2);
    if (!p)
        return -1;
    gsp_put_u16(p, v);
    return 0;
}

int gsp_wr_u32(gsp_wr *w, uint32_t v)
{
    uint8_t *p = gsp_wr_reserve(w, 4);
    if (!p)
        return -1;
    gsp_put_u32(p, v);
    return 0;
}

int gsp_wr_u64(gsp_wr *w, uint64_t v)
{
    uint8_t *p = gsp_wr_reserve(w, 8);
    if (!p)
        return -1;
    gsp_put_u64(p, v);
    return 0;
}

int gsp_wr_bytes(gsp_wr *w, const void *src, size_t n)
{
    uint8_t *p = gsp_wr_reserve(w, n);
    if (!p)
        return -1;
    if (n)
        memcpy(p, src, n);
    return 0;
}

int gsp_wr_blob8(gsp_wr *w, const void *src, size_t n)
{
    if (n > UINT8_MAX) {
        w->err = 1;
        return -1;
    }
    if (gsp_wr_left(w) < 1 + n) {
        w->err = 1;
        return -1;
    }
    gsp_wr_u8(w, (uint8_t)n);
    return gsp_wr_bytes(w, src, n);
}

int gsp_wr_blob16(gsp_wr *w, const void *src, size_t n)
{
    if (n > UINT16_MAX || gsp_wr_left(w) < 2 + n) {
        w->err = 1;
        return -1;
    }
    gsp_wr_u16(w, (uint16_t)n);
    return gsp_wr_bytes(w, src, n);
}

int gsp_wr_blob32(gsp_wr *w, const void *src, size_t n)
{
    if (n > UINT32_MAX || gsp_wr_left(w) < 4 + n) {
        w->err = 1;
        return -1;
    }
    gsp_wr_u32(w, (uint32_t)n);
    return gsp_wr_bytes(w, src, n);
}

size_t gsp_wr_left(const gsp_wr *w)
{
    return w->err ? 0 : w->cap - w->off;
}
