/* SPDX-License-Identifier: MIT */
/*
 * Minimal MessagePack writer and skipping reader for bench_serf (see
 * msgpack.h).  Only the encodings Serf's Go codec emits are decoded
 * (nil, bool, ints, floats, str/bin, array, map, ext); nesting is
 * bounded so that a hostile stream cannot recurse without limit.
 */
#include "msgpack.h"

#include <string.h>

static void
put(mp_w *w, const void *p, size_t n)
{
    if (w->err || w->len + n > sizeof(w->buf)) {
        w->err = 1;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void
put_be(mp_w *w, unsigned char tag, uint64_t v, int bytes)
{
    unsigned char b[9];
    b[0] = tag;
    for (int i = 0; i < bytes; i++) {
        b[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    }
    put(w, b, (size_t)bytes + 1);
}

void
mp_map(mp_w *w, uint32_t n)
{
    if (n < 16) {
        unsigned char b = (unsigned char)(0x80 | n);
        put(w, &b, 1);
    } else if (n < 65536) {
        put_be(w, 0xde, n, 2);
    } else {
        put_be(w, 0xdf, n, 4);
    }
}

void
mp_array(mp_w *w, uint32_t n)
{
    if (n < 16) {
        unsigned char b = (unsigned char)(0x90 | n);
        put(w, &b, 1);
    } else if (n < 65536) {
        put_be(w, 0xdc, n, 2);
    } else {
        put_be(w, 0xdd, n, 4);
    }
}

void
mp_str(mp_w *w, const char *s)
{
    size_t n = strlen(s);
    if (n < 32) {
        unsigned char b = (unsigned char)(0xa0 | n);
        put(w, &b, 1);
    } else if (n < 256) {
        put_be(w, 0xd9, n, 1);
    } else {
        put_be(w, 0xda, n, 2);
    }
    put(w, s, n);
}

void
mp_uint(mp_w *w, uint64_t v)
{
    if (v < 128) {
        unsigned char b = (unsigned char)v;
        put(w, &b, 1);
    } else if (v < 256) {
        put_be(w, 0xcc, v, 1);
    } else if (v < 65536) {
        put_be(w, 0xcd, v, 2);
    } else if (v <= 0xffffffffu) {
        put_be(w, 0xce, v, 4);
    } else {
        put_be(w, 0xcf, v, 8);
    }
}

static int
need(mp_r *r, size_t n)
{
    if (r->err) {
        return 0;
    }
    if ((size_t)(r->end - r->p) < n) {
        r->err = MP_SHORT;
        return 0;
    }
    return 1;
}

static uint64_t
be(mp_r *r, int bytes)
{
    uint64_t v = 0;
    if (!need(r, (size_t)bytes)) {
        return 0;
    }
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | r->p[i];
    }
    r->p += bytes;
    return v;
}

static int
tag(mp_r *r, unsigned char *t)
{
    if (!need(r, 1)) {
        return 0;
    }
    *t = *r->p++;
    return 1;
}

int
mp_read_map(mp_r *r, uint32_t *n)
{
    unsigned char t;
    if (!tag(r, &t)) {
        return 0;
    }
    if ((t & 0xf0) == 0x80) {
        *n = t & 0x0f;
    } else if (t == 0xde) {
        *n = (uint32_t)be(r, 2);
    } else if (t == 0xdf) {
        *n = (uint32_t)be(r, 4);
    } else {
        r->err = MP_BAD;
    }
    return !r->err;
}

int
mp_read_array(mp_r *r, uint32_t *n)
{
    unsigned char t;
    if (!tag(r, &t)) {
        return 0;
    }
    if ((t & 0xf0) == 0x90) {
        *n = t & 0x0f;
    } else if (t == 0xdc) {
        *n = (uint32_t)be(r, 2);
    } else if (t == 0xdd) {
        *n = (uint32_t)be(r, 4);
    } else if (t == 0xc0) {
        *n = 0; /* nil slice */
    } else {
        r->err = MP_BAD;
    }
    return !r->err;
}

int
mp_read_str(mp_r *r, const char **s, uint32_t *len)
{
    unsigned char t;
    uint32_t n;
    if (!tag(r, &t)) {
        return 0;
    }
    if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else if (t == 0xd9 || t == 0xc4) {
        n = (uint32_t)be(r, 1);
    } else if (t == 0xda || t == 0xc5) {
        n = (uint32_t)be(r, 2);
    } else if (t == 0xdb || t == 0xc6) {
        n = (uint32_t)be(r, 4);
    } else if (t == 0xc0) {
        n = 0;
    } else {
        r->err = MP_BAD;
        return 0;
    }
    if (!need(r, n)) {
        return 0;
    }
    *s = (const char *)r->p;
    *len = n;
    r->p += n;
    return 1;
}

static int
skip_depth(mp_r *r, int depth)
{
    unsigned char t;
    if (depth > 32) {
        r->err = MP_BAD;
        return 0;
    }
    if (!tag(r, &t)) {
        return 0;
    }
    uint64_t n = 0, items = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        return 1;
    } else if ((t & 0xf0) == 0x80) {
        items = 2u * (t & 0x0f);
    } else if ((t & 0xf0) == 0x90) {
        items = t & 0x0f;
    } else if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else {
        switch (t) {
        case 0xcc:
        case 0xd0:
            n = 1;
            break;
        case 0xcd:
        case 0xd1:
            n = 2;
            break;
        case 0xce:
        case 0xd2:
        case 0xca:
            n = 4;
            break;
        case 0xcf:
        case 0xd3:
        case 0xcb:
            n = 8;
            break;
        case 0xc4:
        case 0xd9:
            n = be(r, 1);
            break;
        case 0xc5:
        case 0xda:
            n = be(r, 2);
            break;
        case 0xc6:
        case 0xdb:
            n = be(r, 4);
            break;
        case 0xd4:
            n = 2;
            break;
        case 0xd5:
            n = 3;
            break;
        case 0xd6:
            n = 5;
            break;
        case 0xd7:
            n = 9;
            break;
        case 0xd8:
            n = 17;
            break;
        case 0xc7:
            n = be(r, 1) + 1;
            break;
        case 0xc8:
            n = be(r, 2) + 1;
            break;
        case 0xc9:
            n = be(r, 4) + 1;
            break;
        case 0xdc:
            items = be(r, 2);
            break;
        case 0xdd:
            items = be(r, 4);
            break;
        case 0xde:
            items = 2 * be(r, 2);
            break;
        case 0xdf:
            items = 2 * be(r, 4);
            break;
        default:
            r->err = MP_BAD;
            return 0;
        }
    }
    if (r->err || !need(r, n)) {
        return 0;
    }
    r->p += n;
    for (uint64_t i = 0; i < items; i++) {
        if (!skip_depth(r, depth + 1)) {
            return 0;
        }
    }
    return 1;
}

int
mp_skip(mp_r *r)
{
    return skip_depth(r, 0);
}
