/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus for fuzz_data_frame and fuzz_text into the
 * directory given as argv[1]: one valid frame of every data-frame type,
 * and sample keys and addresses.  Built by the fuzz CMake; run by
 * scripts/fuzz.sh only when the corpus is regenerated on purpose.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void
put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

static size_t
hdr(uint8_t *buf, uint8_t type)
{
    nti_hdr h;
    memset(&h, 0, sizeof(h));
    h.type = type;
    memset(h.sender, 0xab, sizeof(h.sender));
    h.sender_boot = 1700000000000ULL;
    h.seq = 42;
    h.ref = type >= NTI_T_ACK ? 41 : 0;
    gsp_wr w;
    gsp_wr_init(&w, buf, NTI_HDR_LEN);
    nti_wire_hdr_put(&w, &h);
    return NTI_HDR_LEN;
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_corpus DATA_DIR TEXT_DIR\n");
        return 2;
    }
    uint8_t buf[1024];
    uint64_t regs[] = { 1, 2, 3 };
    gsp_wr w;
    size_t n;

    n = hdr(buf, NTI_T_NOTIFY);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    gsp_wr_u32(&w, 2);
    nti_wire_msg_put(&w, NTI_T_NOTIFY, 0, 0, "abcd", 7, "orders", "new",
                     regs, 2, "hello", 5);
    nti_wire_msg_put(&w, NTI_T_NOTIFY, 0, 0, "abcd", 8, "orders", "del",
                     regs, 3, "", 0);
    put(argv[1], "notify", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_CALL);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    nti_wire_msg_put(&w, NTI_T_CALL, NTI_CALL_NESTED, 0, "abcd", 9, "kv",
                     "get", regs, 1, "k", 1);
    put(argv[1], "call", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_PUBLISH);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    nti_wire_msg_put(&w, NTI_T_PUBLISH, 0, 0, "", 1, "feed", "c", NULL, 0,
                     "x", 1);
    put(argv[1], "publish", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_ROUTE_CALL);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    nti_wire_msg_put(&w, NTI_T_ROUTE_CALL, 0, 5000, "", 1, "svc", "echo",
                     NULL, 0, "ping", 4);
    put(argv[1], "route_call", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_INFO);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    nti_wire_name_put(&w, "members");
    gsp_wr_u8(&w, 1);
    put(argv[1], "info", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_ACK);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    gsp_wr_u32(&w, 2);
    gsp_wr_u32(&w, 0);
    put(argv[1], "ack", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_RESULTS);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    nti_wire_results_head_put(&w, 0, 2);
    nti_wire_item_put(&w, 0, 0, "abcdef", "ok", 2);
    nti_wire_item_put(&w, -6, 42, "abcdef", "no such thing", 13);
    put(argv[1], "results", buf, sizeof(buf) - gsp_wr_left(&w));

    n = hdr(buf, NTI_T_TEXT);
    gsp_wr_init(&w, buf + n, sizeof(buf) - n);
    gsp_wr_u32(&w, 0);
    gsp_wr_blob32(&w, "members=3 converged=1", 21);
    put(argv[1], "text", buf, sizeof(buf) - gsp_wr_left(&w));

    const char *texts[][2] = {
        { "key", "\x01Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmE=\n" },
        { "key_bad", "\x01not base64!" },
        { "addr_v4", "\x00" "127.0.0.1:7070" },
        { "addr_name", "\x00" "node-1.example:0" },
        { "addr_v6", "\x00" "[::1]:65535" },
        { "addr_bad", "\x00" "host:99999" },
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        /* The addresses start with a NUL selector byte. */
        size_t len = texts[i][1][0] == '\0'
                         ? 1 + strlen(texts[i][1] + 1)
                         : strlen(texts[i][1]);
        put(argv[2], texts[i][0], texts[i][1], len);
    }
    return 0;
}
