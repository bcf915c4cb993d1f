/* SPDX-License-Identifier: MIT */
/*
 * A message in flight: object, id, cmd, sender and payload copied once
 * into one reference-counted block, shared by every local task and every
 * outbound queue that carries it.
 */
#ifndef NTI_MSG_H
#define NTI_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "notifier/notifier.h"

typedef struct nti_msg {
    _Atomic unsigned refs;
    uint64_t id;
    size_t len;
    const char *object, *cmd, *from;
    const void *data;
    char buf[];
} nti_msg;

/* NULL on out-of-memory.  Strings are copied; from may be "". */
nti_msg *nti_msg_alloc(const char *object, uint64_t id, const char *cmd,
                       const char *from, const void *data, size_t len);
/* The bytes a message needs, and its construction in caller memory of
 * that size (aligned for nti_msg); such a message is never released. */
size_t nti_msg_bytes(const char *object, const char *cmd, const char *from,
                     size_t len);
nti_msg *nti_msg_init(void *mem, const char *object, uint64_t id,
                      const char *cmd, const char *from, const void *data,
                      size_t len);
void nti_msg_hold(nti_msg *m);
void nti_msg_rele(nti_msg *m);
/* A view for handlers (valid while m is held). */
void nti_msg_view(const nti_msg *m, nt_msg *v);

#endif
