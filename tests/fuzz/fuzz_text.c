/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the text parsers users and operators feed us:
 * cluster keys (base64) and whole key files (several keys, comments),
 * "host:port" addresses (flags, smap, environment).  The first byte picks
 * the parser.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "key.h"
#include "notifier/notifier.h"

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
    if ((data[0] & 3) == 3) {
        unsigned char keys[NTI_KEYS_MAX][32];
        size_t n = 99;
        int rv = nti_key_text_parse_all(s, size - 1, keys, NTI_KEYS_MAX, &n);
        if (rv == NT_OK && (n == 0 || n > NTI_KEYS_MAX)) {
            abort(); /* success means 1..max keys */
        }
    } else if (data[0] & 1) {
        unsigned char key[32];
        if (nti_key_parse(s, size - 1, key) == NT_OK &&
            nt_key_parse(s, key) != NT_OK && strlen(s) == size - 1) {
            abort(); /* the two entry points must agree */
        }
    } else {
        char host[256];
        unsigned port = 0;
        int rv = nti_addr_parse(s, host, sizeof(host), &port);
        if (rv == NT_OK && (port > 65535 || host[0] == '\0' ||
                            nti_addr_check(s) != NT_OK)) {
            abort();
        }
    }
    free(s);
    return 0;
}
