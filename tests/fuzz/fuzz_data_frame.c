/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the data-frame decoder (src/wire.c): the plaintext
 * a node parses after a frame authenticates.  Every field is checked by
 * nti_wire_check; the item decoders are then walked the way the server
 * and the publisher client walk them.
 */
#include <stdlib.h>
#include <string.h>

#include "gossip.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (nti_wire_check(data, size) != GSP_OK) {
        return 0;
    }
    /* Accepted: decoding again must agree and stay in bounds. */
    gsp_rd r;
    nti_hdr h;
    gsp_rd_init(&r, data, size);
    if (nti_wire_hdr_get(&r, &h) != GSP_OK) {
        abort();
    }
    nti_wmsg m;
    switch (h.type) {
    case NTI_T_NOTIFY: {
        uint32_t n = 0;
        gsp_rd_u32(&r, &n);
        for (uint32_t i = 0; i < n; i++) {
            if (nti_wire_msg_get(&r, NTI_T_NOTIFY, &m) != GSP_OK) {
                abort();
            }
            uint64_t sum = 0;
            for (size_t j = 0; j < m.nregs; j++) {
                sum += nti_wire_reg(&m, j);
            }
            (void)sum;
        }
        break;
    }
    case NTI_T_CALL:
    case NTI_T_PUBLISH:
    case NTI_T_ROUTE_CALL:
        if (nti_wire_msg_get(&r, h.type, &m) != GSP_OK ||
            strlen(m.object) == 0 || strlen(m.cmd) == 0) {
            abort();
        }
        break;
    case NTI_T_RESULTS: {
        int32_t st;
        uint16_t count;
        if (nti_wire_results_head_get(&r, &st, &count) != GSP_OK) {
            abort();
        }
        for (uint16_t i = 0; i < count; i++) {
            nti_witem it;
            if (nti_wire_item_get(&r, &it) != GSP_OK || it.status > 0) {
                abort();
            }
        }
        break;
    }
    default:
        break;
    }
    return 0;
}
