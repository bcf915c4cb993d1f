/* SPDX-License-Identifier: MIT */
/*
 * RPC reply handles.
 *
 * An nt_reply* given to a handler is not a pointer but a generation-checked
 * handle into one process-wide table (like nng's socket ids), so that a
 * second reply, or a reply after the node closed, is detected and returns
 * NT_EREPLIED instead of touching freed memory.  The table is the one piece
 * of process-wide state: a handle must stay checkable after its node is
 * gone.
 */
#ifndef NTI_REPLY_H
#define NTI_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "notifier/notifier.h"

typedef struct nti_reply_s nti_reply_s;

/* Per-node list of open handles, so close can settle them. */
typedef struct nti_replies {
    nti_reply_s *head;
    size_t count;
} nti_replies;

struct nti_reply_s {
    uint64_t handle;
    nti_reply_s *prev, *next;
    nti_replies *list;
    size_t max_payload;
    /* Delivers the answer and frees r.  status is NT_OK (data = payload),
     * NT_EREMOTE (code, data = message) or NT_ECLOSED (node closed). */
    void (*deliver)(nti_reply_s *r, int status, int code, const void *data,
                    size_t len);
};

/* Registers r in the table and in list; *out is the handle to give the
 * handler.  NT_OK or NT_ENOMEM. */
int nti_reply_open(nti_replies *list, nti_reply_s *r, nt_reply **out);
/* Settles every open handle of list with NT_ECLOSED. */
void nti_replies_close(nti_replies *list);
size_t nti_replies_count(nti_replies *list);

#endif
