/* SPDX-License-Identifier: MIT */
/*
 * A few large buffers kept for reuse.  Frames of notifications need a
 * plaintext buffer and a slab of ~100-300 KiB each; glibc serves such
 * sizes with fresh pages that it hands back when they are freed, so every
 * frame paid tens of page faults (docs/PERFORMANCE.md, "Notifications").
 * A cache keeps up to NTI_BUFCACHE_MAX buffers of at most
 * NTI_BUFCACHE_BIG bytes (so at most 2 MiB stay with a node that saw
 * traffic, per cache).  Buffers are plain malloc memory: one taken from
 * a cache may also be released with free().
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef NTI_BUFCACHE_H
#define NTI_BUFCACHE_H

#include <stddef.h>

#include "platform/platform.h"

#define NTI_BUFCACHE_MAX 4
#define NTI_BUFCACHE_BIG (512u * 1024u) /* a full batch and its slab fit */

typedef struct {
    nti_mtx mtx; /* guards everything below */
    void *buf[NTI_BUFCACHE_MAX];
    size_t cap[NTI_BUFCACHE_MAX];
    size_t n;
} nti_bufcache;

void nti_bufcache_init(nti_bufcache *c);
/* Frees the buffers kept. */
void nti_bufcache_fini(nti_bufcache *c);
/* A buffer of at least need bytes (its size in *cap): a kept one, else
 * malloc'd.  NULL on out-of-memory. */
void *nti_bufcache_get(nti_bufcache *c, size_t need, size_t *cap);
/* Keeps buf (cap bytes) for reuse, or frees it.  buf may be NULL. */
void nti_bufcache_put(nti_bufcache *c, void *buf, size_t cap);

#endif
