/* SPDX-License-Identifier: MIT */
/*
 * Address parsing (see addr.h).  Bounds-checked; fuzzed.
 */
#include "addr.h"

#include <string.h>

#include "notifier/notifier.h"

#define HOST_MAX 253

static int
host_ok(const char *h, size_t n, int v6)
{
    if (n == 0 || n > HOST_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                 c == '_' || (v6 && (c == ':' || c == '%'));
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

int
nti_addr_parse(const char *s, char *host, size_t hostcap, unsigned *port)
{
    if (s == NULL) {
        return NT_EADDR;
    }
    size_t len = strnlen(s, HOST_MAX + 16);
    if (len == 0 || len > HOST_MAX + 8) {
        return NT_EADDR;
    }
    const char *hs, *colon;
    size_t hn;
    int v6 = 0;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL || rb[1] != ':') {
            return NT_EADDR;
        }
        hs = s + 1;
        hn = (size_t)(rb - hs);
        colon = rb + 1;
        v6 = 1;
    } else {
        colon = memchr(s, ':', len);
        if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - s))) {
            return NT_EADDR;
        }
        hs = s;
        hn = (size_t)(colon - s);
    }
    if (!host_ok(hs, hn, v6)) {
        return NT_EADDR;
    }
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) {
        return NT_EADDR;
    }
    unsigned v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return NT_EADDR;
        }
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 65535) {
        return NT_EADDR;
    }
    if (host != NULL) {
        if (hn + 1 > hostcap) {
            return NT_EADDR;
        }
        memcpy(host, hs, hn);
        host[hn] = '\0';
    }
    if (port != NULL) {
        *port = v;
    }
    return NT_OK;
}

int
nti_addr_check(const char *s)
{
    return nti_addr_parse(s, NULL, 0, NULL);
}
