/* SPDX-License-Identifier: MIT */
/*
 * A growable NUL-terminated string with a sticky out-of-memory flag, for
 * building introspection text and JSON.
 */
#ifndef NTI_STRBUF_H
#define NTI_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} nti_sb;

void nti_sb_init(nti_sb *b);
void nti_sb_fini(nti_sb *b);
void nti_sb_printf(nti_sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void nti_sb_json_str(nti_sb *b, const char *s);
/* Hands the string over (NULL after an out-of-memory). */
char *nti_sb_take(nti_sb *b);

#endif
