/* SPDX-License-Identifier: MIT */
/*
 * Large-buffer cache (see bufcache.h).  A full cache keeps the larger of
 * its smallest buffer and the one returned.
 */
#include "bufcache.h"

#include <stdlib.h>

void
nti_bufcache_init(nti_bufcache *c)
{
    nti_mtx_init(&c->mtx);
    c->n = 0;
}

void
nti_bufcache_fini(nti_bufcache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->buf[i]);
    }
    c->n = 0;
    nti_mtx_fini(&c->mtx);
}

void *
nti_bufcache_get(nti_bufcache *c, size_t need, size_t *cap)
{
    void *b = NULL;
    nti_mtx_lock(&c->mtx);
    for (size_t i = 0; i < c->n; i++) {
        if (c->cap[i] >= need) {
            b = c->buf[i];
            *cap = c->cap[i];
            c->n--;
            c->buf[i] = c->buf[c->n];
            c->cap[i] = c->cap[c->n];
            break;
        }
    }
    nti_mtx_unlock(&c->mtx);
    if (b == NULL && (b = malloc(need)) != NULL) {
        *cap = need;
    }
    return b;
}

void
nti_bufcache_put(nti_bufcache *c, void *buf, size_t cap)
{
    if (buf == NULL) {
        return;
    }
    if (cap > NTI_BUFCACHE_BIG) {
        free(buf);
        return;
    }
    nti_mtx_lock(&c->mtx);
    if (c->n < NTI_BUFCACHE_MAX) {
        c->buf[c->n] = buf;
        c->cap[c->n] = cap;
        c->n++;
        buf = NULL;
    } else {
        size_t small = 0;
        for (size_t i = 1; i < c->n; i++) {
            small = c->cap[i] < c->cap[small] ? i : small;
        }
        if (c->cap[small] < cap) {
            void *old = c->buf[small];
            c->buf[small] = buf;
            c->cap[small] = cap;
            buf = old;
        }
    }
    nti_mtx_unlock(&c->mtx);
    free(buf);
}
