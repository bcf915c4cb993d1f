/* SPDX-License-Identifier: MIT */
/*
 * The little MessagePack that bench_serf needs to speak Serf's agent RPC
 * protocol (maps of strings and integers out; any value skipped in).
 * Writers append to a fixed buffer and set a sticky error when it is
 * full; readers go through a bounds-checked cursor whose sticky error
 * distinguishes "truncated, read more" (MP_SHORT) from garbage.
 */
#ifndef BENCH_MSGPACK_H
#define BENCH_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_w {
    unsigned char buf[1024];
    size_t len;
    int err;
} mp_w;

void mp_map(mp_w *w, uint32_t n);
void mp_array(mp_w *w, uint32_t n);
void mp_str(mp_w *w, const char *s);
void mp_uint(mp_w *w, uint64_t v);

enum { MP_OK = 0, MP_SHORT = 1, MP_BAD = 2 };

typedef struct mp_r {
    const unsigned char *p, *end;
    int err;
} mp_r;

/* Each returns 0 and sets r->err on failure. */
int mp_read_map(mp_r *r, uint32_t *n);
int mp_read_array(mp_r *r, uint32_t *n);
/* A str or bin value; *s points into the input (not NUL-terminated). */
int mp_read_str(mp_r *r, const char **s, uint32_t *len);
/* Skips one value of any type, nested values included. */
int mp_skip(mp_r *r);

#endif /* BENCH_MSGPACK_H */
