/* SPDX-License-Identifier: MIT */
/*
 * Reply handle table (see reply.h).
 *
 * A handle is (generation << 32 | slot + 1).  A slot's generation changes
 * every time it is freed, so a stale handle never finds a live reply.  One
 * mutex guards the table and every node's list of open handles; taking a
 * handle out of the table is what decides who settles it (the replier or
 * close), so a reply races safely with close.
 */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"

_Static_assert(sizeof(uintptr_t) >= 8, "reply handles need 64-bit pointers");

typedef struct {
    uint32_t gen;
    uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
    nti_reply_s *r;
} slot;

static struct {
    nti_mtx mtx; /* guards everything here and all nti_replies lists */
    slot *slots;
    uint32_t nslots;
    uint32_t free_head;
} tab = { NTI_MTX_INITIALIZER, NULL, 0, 0 };

static void
list_remove(nti_reply_s *r)
{
    nti_replies *l = r->list;
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        l->head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
    l->count--;
}

/* Frees r's slot.  Lock held. */
static void
slot_release(nti_reply_s *r)
{
    uint32_t idx = (uint32_t)(r->handle & 0xffffffffu) - 1;
    slot *s = &tab.slots[idx];
    s->r = NULL;
    s->gen++;
    if (s->gen == 0) {
        s->gen = 1;
    }
    s->next_free = tab.free_head;
    tab.free_head = idx + 1;
    list_remove(r);
}

int
nti_reply_open(nti_replies *list, nti_reply_s *r, nt_reply **out)
{
    nti_mtx_lock(&tab.mtx);
    if (tab.free_head == 0) {
        uint32_t nn = tab.nslots ? tab.nslots * 2 : 256;
        if (nn <= tab.nslots) {
            nti_mtx_unlock(&tab.mtx);
            return NT_ENOMEM;
        }
        slot *ns = realloc(tab.slots, (size_t)nn * sizeof(*ns));
        if (ns == NULL) {
            nti_mtx_unlock(&tab.mtx);
            return NT_ENOMEM;
        }
        for (uint32_t i = tab.nslots; i < nn; i++) {
            ns[i].gen = 1;
            ns[i].r = NULL;
            ns[i].next_free = i + 1 < nn ? i + 2 : 0;
        }
        tab.free_head = tab.nslots + 1;
        tab.slots = ns;
        tab.nslots = nn;
    }
    uint32_t idx = tab.free_head - 1;
    slot *s = &tab.slots[idx];
    tab.free_head = s->next_free;
    s->r = r;
    r->handle = ((uint64_t)s->gen << 32) | (idx + 1);
    r->list = list;
    r->prev = NULL;
    r->next = list->head;
    if (list->head != NULL) {
        list->head->prev = r;
    }
    list->head = r;
    list->count++;
    nti_mtx_unlock(&tab.mtx);
    *out = (nt_reply *)(uintptr_t)r->handle;
    return NT_OK;
}

/* Looks the handle up; with take, removes it.  Lock held. */
static nti_reply_s *
lookup(nt_reply *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t idx = (uint32_t)(v & 0xffffffffu);
    uint32_t gen = (uint32_t)(v >> 32);
    if (idx == 0 || idx > tab.nslots) {
        return NULL;
    }
    slot *s = &tab.slots[idx - 1];
    if (s->r == NULL || s->gen != gen) {
        return NULL;
    }
    return s->r;
}

static int
reply(nt_reply *h, int status, int code, const void *data, size_t len)
{
    nti_mtx_lock(&tab.mtx);
    nti_reply_s *r = lookup(h);
    if (r == NULL) {
        nti_mtx_unlock(&tab.mtx);
        return NT_EREPLIED;
    }
    if (len > r->max_payload) {
        nti_mtx_unlock(&tab.mtx);
        return NT_EMSGSIZE;
    }
    slot_release(r);
    nti_mtx_unlock(&tab.mtx);
    r->deliver(r, status, code, data, len);
    return NT_OK;
}

int
nt_reply_send(nt_reply *r, const void *data, size_t len)
{
    if (data == NULL && len > 0) {
        return NT_EINVAL;
    }
    return reply(r, NT_OK, 0, data, len);
}

int
nt_reply_error(nt_reply *r, int code, const char *message)
{
    if (message == NULL) {
        message = nt_strerror(code);
    }
    size_t len = strlen(message);
    if (len > 4096) {
        len = 4096; /* error texts are for humans; keep them short */
    }
    return reply(r, NT_EREMOTE, code, message, len);
}

void
nti_replies_close(nti_replies *list)
{
    nti_reply_s *taken = NULL;
    nti_mtx_lock(&tab.mtx);
    while (list->head != NULL) {
        nti_reply_s *r = list->head;
        slot_release(r);
        r->next = taken;
        taken = r;
    }
    nti_mtx_unlock(&tab.mtx);
    while (taken != NULL) {
        nti_reply_s *next = taken->next;
        taken->deliver(taken, NT_ECLOSED, 0, NULL, 0);
        taken = next;
    }
}

size_t
nti_replies_count(nti_replies *list)
{
    nti_mtx_lock(&tab.mtx);
    size_t n = list->count;
    nti_mtx_unlock(&tab.mtx);
    return n;
}
