/* SPDX-License-Identifier: MIT */
/*
 * Node logging: level-filtered lines in logfmt (ts=... level=... msg="..."
 * key=value ...) or JSON, to the configured callback or stderr.
 */
#ifndef NTI_LOG_H
#define NTI_LOG_H

#include "notifier/notifier.h"

typedef struct {
    void (*fn)(void *arg, int level, const char *line);
    void *arg;
    int level;
    int json;
} nti_logger;

/* kv is a NULL-terminated list of key, value string pairs. */
void nti_logv(const nti_logger *lg, int level, const char *msg,
              const char *const *kv);
/* Convenience: up to three key/value pairs (NULL to stop). */
void nti_log(const nti_logger *lg, int level, const char *msg,
             const char *k1, const char *v1, const char *k2, const char *v2,
             const char *k3, const char *v3);

static inline int
nti_log_enabled(const nti_logger *lg, int level)
{
    return level <= lg->level;
}

#endif
