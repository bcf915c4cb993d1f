/* SPDX-License-Identifier: MIT */
/*
 * Data-frame codec (see wire.h and docs/PROTOCOL.md).
 */
#include "wire.h"

#include <string.h>

#include "gossip.h"

void
nti_wire_hdr_put(gsp_wr *w, const nti_hdr *h)
{
    gsp_wr_u8(w, NTI_WIRE_VERSION);
    gsp_wr_u8(w, h->type);
    gsp_wr_bytes(w, h->sender, NTI_ID_LEN);
    gsp_wr_u64(w, h->sender_boot);
    gsp_wr_u64(w, h->seq);
    gsp_wr_bytes(w, h->dest, NTI_ID_LEN);
    gsp_wr_u64(w, h->dest_boot);
    gsp_wr_u64(w, h->ref);
}

int
nti_wire_hdr_get(gsp_rd *r, nti_hdr *h)
{
    uint8_t ver = 0;
    gsp_rd_u8(r, &ver);
    gsp_rd_u8(r, &h->type);
    gsp_rd_copy(r, h->sender, NTI_ID_LEN);
    gsp_rd_u64(r, &h->sender_boot);
    gsp_rd_u64(r, &h->seq);
    gsp_rd_copy(r, h->dest, NTI_ID_LEN);
    gsp_rd_u64(r, &h->dest_boot);
    gsp_rd_u64(r, &h->ref);
    if (gsp_rd_done(r, 0) != GSP_OK) {
        return GSP_EMALFORMED;
    }
    return ver == NTI_WIRE_VERSION ? GSP_OK : GSP_EVERSION;
}

void
nti_wire_name_put(gsp_wr *w, const char *s)
{
    gsp_wr_blob8(w, s, strlen(s));
}

int
nti_wire_name_get(gsp_rd *r, char *buf)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    if (gsp_rd_blob8(r, NTI_NAME_MAX, &p, &n) != GSP_OK || n == 0 ||
        memchr(p, '\0', n) != NULL) {
        return GSP_EMALFORMED;
    }
    if (buf != NULL) {
        memcpy(buf, p, n);
        buf[n] = '\0';
    }
    return GSP_OK;
}

static bool
has_flags(uint8_t type)
{
    return type == NTI_T_CALL || type == NTI_T_ROUTE_CALL;
}

static bool
has_regs(uint8_t type)
{
    return type == NTI_T_NOTIFY || type == NTI_T_CALL;
}

size_t
nti_wire_msg_size(uint8_t type, const char *from, const char *object,
                  const char *cmd, size_t nregs, size_t len)
{
    /* [flags] [timeout] [from] id, object, cmd, [nregs, regs], len, data */
    return (has_flags(type) ? 1 : 0) + (type == NTI_T_ROUTE_CALL ? 4 : 0) +
           (has_regs(type) ? 1 + strlen(from) : 0) + 8 + 1 +
           strlen(object) + 1 + strlen(cmd) +
           (has_regs(type) ? 2 + 8 * nregs : 0) + 4 + len;
}

void
nti_wire_msg_put(gsp_wr *w, uint8_t type, uint8_t flags, uint32_t timeout_ms,
                 const char *from, uint64_t id, const char *object,
                 const char *cmd,
                 const uint64_t *regs, size_t nregs, const void *data,
                 size_t len)
{
    if (has_flags(type)) {
        gsp_wr_u8(w, flags);
    }
    if (type == NTI_T_ROUTE_CALL) {
        gsp_wr_u32(w, timeout_ms);
    }
    if (has_regs(type)) {
        gsp_wr_blob8(w, from, strlen(from));
    }
    gsp_wr_u64(w, id);
    nti_wire_name_put(w, object);
    nti_wire_name_put(w, cmd);
    if (has_regs(type)) {
        gsp_wr_u16(w, (uint16_t)nregs);
        for (size_t i = 0; i < nregs; i++) {
            gsp_wr_u64(w, regs[i]);
        }
    }
    gsp_wr_blob32(w, data, len);
}

/* Decodes (m != NULL) or only validates (m == NULL: nti_wire_check's
 * pass, which copies nothing) one message. */
static int
msg_take(gsp_rd *r, uint8_t type, nti_wmsg *m)
{
    nti_wmsg skip;
    bool copy = m != NULL;
    if (!copy) {
        m = &skip;
    }
    m->flags = 0;
    m->timeout_ms = UINT32_MAX;
    m->nregs = 0;
    m->regs = NULL;
    if (has_flags(type)) {
        gsp_rd_u8(r, &m->flags);
    }
    if (type == NTI_T_ROUTE_CALL) {
        gsp_rd_u32(r, &m->timeout_ms);
    }
    m->from[0] = '\0';
    if (has_regs(type)) {
        const uint8_t *p = NULL;
        size_t n = 0;
        if (gsp_rd_blob8(r, NTI_FROM_MAX, &p, &n) != GSP_OK ||
            memchr(p, '\0', n) != NULL) {
            return GSP_EMALFORMED;
        }
        if (copy) {
            memcpy(m->from, p, n);
            m->from[n] = '\0';
        }
    }
    gsp_rd_u64(r, &m->id);
    if (nti_wire_name_get(r, copy ? m->object : NULL) != GSP_OK ||
        nti_wire_name_get(r, copy ? m->cmd : NULL) != GSP_OK) {
        return GSP_EMALFORMED;
    }
    if (has_regs(type)) {
        gsp_rd_u16(r, &m->nregs);
        if (m->nregs == 0 || m->nregs > NTI_MAX_TARGETS ||
            gsp_rd_bytes(r, 8u * m->nregs, &m->regs) != GSP_OK) {
            return GSP_EMALFORMED;
        }
    }
    size_t n = 0;
    if (gsp_rd_blob32(r, UINT32_MAX, &m->data, &n) != GSP_OK) {
        return GSP_EMALFORMED;
    }
    m->len = (uint32_t)n;
    return gsp_rd_done(r, 0) == GSP_OK ? GSP_OK : GSP_EMALFORMED;
}

int
nti_wire_msg_get(gsp_rd *r, uint8_t type, nti_wmsg *m)
{
    return msg_take(r, type, m);
}

uint64_t
nti_wire_reg(const nti_wmsg *m, size_t i)
{
    const uint8_t *p = m->regs + 8 * i;
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) {
        v = (v << 8) | p[k];
    }
    return v;
}

void
nti_wire_results_head_put(gsp_wr *w, int32_t status, uint16_t count)
{
    gsp_wr_u32(w, (uint32_t)status);
    gsp_wr_u16(w, count);
}

size_t
nti_wire_item_size(size_t nodelen, size_t len)
{
    return 4 + 4 + 1 + nodelen + 4 + len;
}

void
nti_wire_item_put(gsp_wr *w, int32_t status, int32_t code, const char *node,
                  const void *data, size_t len)
{
    gsp_wr_u32(w, (uint32_t)status);
    gsp_wr_u32(w, (uint32_t)code);
    gsp_wr_blob8(w, node, strlen(node));
    gsp_wr_blob32(w, data, len);
}

int
nti_wire_results_head_get(gsp_rd *r, int32_t *status, uint16_t *count)
{
    uint32_t st = 0;
    gsp_rd_u32(r, &st);
    gsp_rd_u16(r, count);
    *status = (int32_t)st;
    /* An item takes at least 13 bytes: refuse counts the frame cannot
     * hold before anyone allocates for them. */
    if (gsp_rd_done(r, 0) != GSP_OK || (size_t)*count * 13 > gsp_rd_left(r)) {
        return GSP_EMALFORMED;
    }
    return GSP_OK;
}

int
nti_wire_item_get(gsp_rd *r, nti_witem *it)
{
    uint32_t st = 0, code = 0;
    size_t n = 0;
    gsp_rd_u32(r, &st);
    gsp_rd_u32(r, &code);
    gsp_rd_blob8(r, 64, &it->node, &it->nodelen);
    gsp_rd_blob32(r, UINT32_MAX, &it->data, &n);
    it->status = (int32_t)st;
    it->code = (int32_t)code;
    it->len = (uint32_t)n;
    if (gsp_rd_done(r, 0) != GSP_OK || it->status > 0) {
        return GSP_EMALFORMED;
    }
    return GSP_OK;
}

int
nti_wire_results_skip(gsp_rd *r)
{
    int32_t st;
    uint16_t count;
    if (nti_wire_results_head_get(r, &st, &count) != GSP_OK) {
        return GSP_EMALFORMED;
    }
    for (uint16_t i = 0; i < count; i++) {
        nti_witem it;
        if (nti_wire_item_get(r, &it) != GSP_OK) {
            return GSP_EMALFORMED;
        }
    }
    return GSP_OK;
}

int
nti_wire_calls_item_get(gsp_rd *r, uint64_t *ref, nti_wmsg *m)
{
    if (gsp_rd_u64(r, ref) != GSP_OK) {
        return GSP_EMALFORMED;
    }
    return nti_wire_msg_get(r, NTI_T_CALL, m);
}

/* A u32 item count that is at least 1 and that the rest of the frame can
 * hold at min bytes an item. */
static int
count_get(gsp_rd *r, size_t min, uint32_t *n)
{
    if (gsp_rd_u32(r, n) != GSP_OK || *n == 0 ||
        (size_t)*n * min > gsp_rd_left(r)) {
        return GSP_EMALFORMED;
    }
    return GSP_OK;
}

int
nti_wire_check(const uint8_t *pt, size_t len)
{
    gsp_rd r;
    nti_hdr h;
    gsp_rd_init(&r, pt, len);
    int rv = nti_wire_hdr_get(&r, &h);
    if (rv != GSP_OK) {
        return rv;
    }
    nti_wmsg m;
    switch (h.type) {
    case NTI_T_NOTIFY: {
        uint32_t n = 0;
        if (gsp_rd_u32(&r, &n) != GSP_OK || n == 0) {
            return GSP_EMALFORMED;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (msg_take(&r, NTI_T_NOTIFY, NULL) != GSP_OK) {
                return GSP_EMALFORMED;
            }
        }
        break;
    }
    case NTI_T_CALLS: {
        const uint8_t *a;
        size_t alen = 0;
        uint32_t n = 0;
        uint64_t ref;
        if (gsp_rd_blob8(&r, NTI_ADDR_MAX, &a, &alen) != GSP_OK ||
            alen == 0 || count_get(&r, 8, &n) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (nti_wire_calls_item_get(&r, &ref, &m) != GSP_OK) {
                return GSP_EMALFORMED;
            }
        }
        break;
    }
    case NTI_T_RESULTS_TO: {
        uint32_t n = 0;
        uint64_t ref;
        if (count_get(&r, 8 + 6, &n) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (gsp_rd_u64(&r, &ref) != GSP_OK ||
                nti_wire_results_skip(&r) != GSP_OK) {
                return GSP_EMALFORMED;
            }
        }
        break;
    }
    case NTI_T_CALLS_ACK: {
        uint32_t n = 0;
        if (count_get(&r, 1, &n) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint8_t st = 0xff;
            uint32_t status = 0;
            gsp_rd_u8(&r, &st);
            if (st == NTI_CA_DONE) {
                if (nti_wire_results_skip(&r) != GSP_OK) {
                    return GSP_EMALFORMED;
                }
            } else if (st == NTI_CA_REFUSED) {
                if (gsp_rd_u32(&r, &status) != GSP_OK ||
                    (int32_t)status >= 0) {
                    return GSP_EMALFORMED;
                }
            } else if (st != NTI_CA_LATER) {
                return GSP_EMALFORMED;
            }
        }
        break;
    }
    case NTI_T_CALL:
    case NTI_T_PUBLISH:
    case NTI_T_ROUTE_CALL:
        if (nti_wire_msg_get(&r, h.type, &m) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        break;
    case NTI_T_INFO: {
        char what[NTI_NAME_MAX + 1];
        uint8_t fmt = 0;
        if (nti_wire_name_get(&r, what) != GSP_OK ||
            gsp_rd_u8(&r, &fmt) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        break;
    }
    case NTI_T_ACK: {
        uint32_t acc = 0, st = 0;
        gsp_rd_u32(&r, &acc);
        gsp_rd_u32(&r, &st);
        break;
    }
    case NTI_T_RESULTS: {
        int32_t st;
        uint16_t count;
        if (nti_wire_results_head_get(&r, &st, &count) != GSP_OK) {
            return GSP_EMALFORMED;
        }
        for (uint16_t i = 0; i < count; i++) {
            nti_witem it;
            if (nti_wire_item_get(&r, &it) != GSP_OK) {
                return GSP_EMALFORMED;
            }
        }
        break;
    }
    case NTI_T_TEXT: {
        uint32_t st = 0;
        const uint8_t *p;
        size_t n;
        gsp_rd_u32(&r, &st);
        gsp_rd_blob32(&r, UINT32_MAX, &p, &n);
        break;
    }
    default:
        return GSP_EMALFORMED;
    }
    return gsp_rd_done(&r, 1) == GSP_OK ? GSP_OK : GSP_EMALFORMED;
}
