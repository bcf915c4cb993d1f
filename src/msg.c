/* SPDX-License-Identifier: MIT */
/*
 * Reference-counted messages (see msg.h).
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

size_t
nti_msg_bytes(const char *object, const char *cmd, const char *from,
              size_t len)
{
    return sizeof(nti_msg) + strlen(object) + 1 + strlen(cmd) + 1 +
           strlen(from) + 1 + len;
}

nti_msg *
nti_msg_init(void *mem, const char *object, uint64_t id, const char *cmd,
             const char *from, const void *data, size_t len)
{
    size_t lo = strlen(object) + 1, lc = strlen(cmd) + 1,
           lf = strlen(from) + 1;
    nti_msg *m = mem;
    atomic_init(&m->refs, 1);
    char *p = m->buf;
    m->object = memcpy(p, object, lo);
    p += lo;
    m->cmd = memcpy(p, cmd, lc);
    p += lc;
    m->from = memcpy(p, from, lf);
    p += lf;
    if (len > 0) {
        memcpy(p, data, len);
    }
    m->data = len > 0 ? p : NULL;
    m->len = len;
    m->id = id;
    return m;
}

nti_msg *
nti_msg_alloc(const char *object, uint64_t id, const char *cmd,
              const char *from, const void *data, size_t len)
{
    void *mem = malloc(nti_msg_bytes(object, cmd, from, len));
    if (mem == NULL) {
        return NULL;
    }
    return nti_msg_init(mem, object, id, cmd, from, data, len);
}

void
nti_msg_hold(nti_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void
nti_msg_rele(nti_msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        free(m);
    }
}

void
nti_msg_view(const nti_msg *m, nt_msg *v)
{
    v->object = m->object;
    v->id = m->id;
    v->cmd = m->cmd;
    v->data = m->data;
    v->len = m->len;
    v->from = m->from;
}

