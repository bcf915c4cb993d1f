/* SPDX-License-Identifier: MIT */
/*
 * One counter of a node's "stats" (nt_node_info, JSON), for the cluster
 * tests.
 */
#ifndef NT_STATUTIL_H
#define NT_STATUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"

/* The value of the stat name, or -1 when the node cannot say. */
static inline long long
stat_of(nt_node *n, const char *name)
{
    char *js = NULL;
    if (nt_node_info(n, "stats", NT_INFO_JSON, 5000, &js) != NT_OK) {
        return -1;
    }
    char pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *at = strstr(js, pat);
    long long v = at ? strtoll(at + strlen(pat), NULL, 10) : -1;
    nt_free(js);
    return v;
}

#endif
