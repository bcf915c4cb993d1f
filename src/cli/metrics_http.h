/* SPDX-License-Identifier: MIT */
/*
 * notifierd's Prometheus endpoint: GET /metrics on an HTTP listener
 * (nng's HTTP server) answers with nt_node_info(n, "metrics").
 */
#ifndef NOTIFIER_METRICS_HTTP_H
#define NOTIFIER_METRICS_HTTP_H

#include <notifier/notifier.h>
#include <stddef.h>

typedef struct metrics_http metrics_http;

/* Starts serving on addr ("host:port", port 0 = ephemeral).  On success
 * *out is the server and bound ("host:port") the address it listens on.
 * Returns 0, or an nng error code (see nng_strerror). */
int metrics_http_start(metrics_http **out, nt_node *n, const char *addr,
                       char *bound, size_t cap);
void metrics_http_stop(metrics_http *m);

#endif
