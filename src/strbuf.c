/* SPDX-License-Identifier: MIT */
/*
 * Growable string (see strbuf.h).
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
nti_sb_init(nti_sb *b)
{
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void
nti_sb_fini(nti_sb *b)
{
    free(b->s);
    nti_sb_init(b);
}

static bool
reserve(nti_sb *b, size_t more)
{
    if (b->oom) {
        return false;
    }
    if (b->len + more + 1 <= b->cap) {
        return true;
    }
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more + 1) {
        nc *= 2;
    }
    char *s = realloc(b->s, nc);
    if (s == NULL) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = nc;
    return true;
}

void
nti_sb_printf(nti_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
nti_sb_json_str(nti_sb *b, const char *s)
{
    nti_sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
         p++) {
        switch (*p) {
        case '"':
            nti_sb_printf(b, "\\\"");
            break;
        case '\\':
            nti_sb_printf(b, "\\\\");
            break;
        case '\n':
            nti_sb_printf(b, "\\n");
            break;
        case '\t':
            nti_sb_printf(b, "\\t");
            break;
        case '\r':
            nti_sb_printf(b, "\\r");
            break;
        default:
            if (*p < 0x20) {
                nti_sb_printf(b, "\\u%04x", *p);
            } else {
                nti_sb_printf(b, "%c", *p);
            }
        }
    }
    nti_sb_printf(b, "\"");
}

char *
nti_sb_take(nti_sb *b)
{
    if (b->oom) {
        nti_sb_fini(b);
        return NULL;
    }
    if (b->s == NULL && !reserve(b, 0)) {
        return NULL;
    }
    b->s[b->len] = '\0';
    char *s = b->s;
    nti_sb_init(b);
    return s;
}
