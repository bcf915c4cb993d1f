/* SPDX-License-Identifier: MIT */
/*
 * Logging (see log.h).  One line per call, written with a single
 * fputs so concurrent lines do not interleave.
 */
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"

static const char *
level_name(int level)
{
    switch (level) {
    case NT_LOG_ERROR:
        return "error";
    case NT_LOG_WARN:
        return "warn";
    case NT_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* logfmt value: bare when safe, else quoted with escapes. */
static void
logfmt_val(nti_sb *b, const char *v)
{
    bool bare = v[0] != '\0';
    for (const char *p = v; *p && bare; p++) {
        bare = *p > ' ' && *p != '"' && *p != '=' && *p != '\\' &&
               (unsigned char)*p < 0x7f;
    }
    if (bare) {
        nti_sb_printf(b, "%s", v);
        return;
    }
    nti_sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            nti_sb_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            nti_sb_printf(b, "\\n");
        } else if (*p < 0x20 || *p == 0x7f) {
            nti_sb_printf(b, "\\x%02x", *p);
        } else {
            nti_sb_printf(b, "%c", *p);
        }
    }
    nti_sb_printf(b, "\"");
}

void
nti_logv(const nti_logger *lg, int level, const char *msg,
         const char *const *kv)
{
    if (lg == NULL || level > lg->level) {
        return;
    }
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);

    nti_sb b;
    nti_sb_init(&b);
    if (lg->json) {
        nti_sb_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
                      level_name(level));
        nti_sb_json_str(&b, msg);
        for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL;
             i += 2) {
            nti_sb_printf(&b, ",");
            nti_sb_json_str(&b, kv[i]);
            nti_sb_printf(&b, ":");
            nti_sb_json_str(&b, kv[i + 1]);
        }
        nti_sb_printf(&b, "}\n");
    } else {
        nti_sb_printf(&b, "ts=%s level=%s msg=", ts, level_name(level));
        logfmt_val(&b, msg);
        for (size_t i = 0; kv != NULL && kv[i] != NULL && kv[i + 1] != NULL;
             i += 2) {
            nti_sb_printf(&b, " %s=", kv[i]);
            logfmt_val(&b, kv[i + 1]);
        }
        nti_sb_printf(&b, "\n");
    }
    char *line = nti_sb_take(&b);
    if (line == NULL) {
        return;
    }
    if (lg->fn != NULL) {
        lg->fn(lg->arg, level, line);
    } else {
        fputs(line, stderr);
    }
    nti_sb_fini(&b);
    free(line);
}

void
nti_log(const nti_logger *lg, int level, const char *msg, const char *k1,
        const char *v1, const char *k2, const char *v2, const char *k3,
        const char *v3)
{
    const char *kv[7] = { k1, v1, k2, v2, k3, v3, NULL };
    nti_logv(lg, level, msg, kv);
}
