/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the CLI parses from its command line: IDs
 * (decimal, 0x hex, @text), MATCH (MASK:VALUE or all), weights, counts,
 * address lists, and the sink-line escaping of payloads.  First byte
 * picks the parser.  Invariants: an accepted MATCH has no value bit
 * outside its mask; an accepted weight is finite and > 0; escaped text is
 * printable ASCII.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096) {
        return 0;
    }
    char *s = malloc(size);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    uint64_t v;
    switch (data[0] % 6) {
    case 0:
        (void)cli_parse_id(s, &v);
        break;
    case 1: {
        nt_match m;
        if (cli_parse_match(s, &m) == NULL && (m.value & ~m.mask) != 0) {
            abort(); /* an accepted match must be one the API accepts */
        }
        break;
    }
    case 2: {
        double w;
        if (cli_parse_weight(s, &w) && (!isfinite(w) || !(w > 0))) {
            abort();
        }
        break;
    }
    case 3:
        if (cli_parse_uint(s, 1000, &v) && v > 1000) {
            abort();
        }
        break;
    case 4: {
        cli_strv sv = { NULL, 0 };
        char bad[128];
        (void)cli_strv_add_addrs(&sv, s, (data[0] & 8) != 0, bad,
                                 sizeof(bad));
        for (size_t i = 0; i < sv.n; i++) {
            if (nt_addr_check(sv.v[i]) != NT_OK) {
                abort();
            }
        }
        cli_strv_free(&sv);
        break;
    }
    default: {
        cli_sb b;
        cli_sb_init(&b);
        cli_sb_escape(&b, data + 1, size - 1);
        const char *out = cli_sb_str(&b);
        for (const char *p = out; p != NULL && *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
                abort(); /* sink lines stay one printable line */
            }
        }
        cli_sb_fini(&b);
        break;
    }
    }
    free(s);
    return 0;
}
