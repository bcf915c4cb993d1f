/* SPDX-License-Identifier: MIT */
/*
 * notifierd's /metrics endpoint (see metrics_http.h).  The handler runs on
 * nng's threads and only asks the node for its metrics text.
 */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics_http {
    nng_http_server *srv;
};

static void
on_metrics(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    nt_node *n = nng_http_handler_get_data(h);
    nng_http_res *res;
    char *text = NULL;
    int rv;
    if ((rv = nng_http_res_alloc(&res)) != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    if (nt_node_info(n, "metrics", NT_INFO_TEXT, 1000, &text) != NT_OK) {
        nng_http_res_set_status(res, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE);
    } else {
        nng_http_res_set_header(res, "Content-Type",
                                "text/plain; version=0.0.4; charset=utf-8");
        nng_http_res_copy_data(res, text, strlen(text));
        nt_free(text);
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

int
metrics_http_start(metrics_http **out, nt_node *n, const char *addr,
                   char *bound, size_t cap)
{
    char urlstr[300];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return NNG_EADDRINVAL;
    }
    snprintf(urlstr, sizeof(urlstr), "http://%s", addr);
    nng_url *url = NULL;
    metrics_http *m = calloc(1, sizeof(*m));
    nng_http_handler *h = NULL;
    int rv;
    if (m == NULL) {
        return NNG_ENOMEM;
    }
    if ((rv = nng_url_parse(&url, urlstr)) != 0 ||
        (rv = nng_http_server_hold(&m->srv, url)) != 0) {
        goto fail;
    }
    if ((rv = nng_http_handler_alloc(&h, "/metrics", on_metrics)) != 0 ||
        (rv = nng_http_handler_set_data(h, n, NULL)) != 0 ||
        (rv = nng_http_server_add_handler(m->srv, h)) != 0) {
        if (h != NULL) {
            nng_http_handler_free(h);
        }
        goto fail;
    }
    if ((rv = nng_http_server_start(m->srv)) != 0) {
        goto fail;
    }
    nng_sockaddr sa;
    char host[64] = "?";
    unsigned port = 0;
    if (nng_http_server_get_addr(m->srv, &sa) == 0) {
        if (sa.s_family == NNG_AF_INET) {
            inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof(host));
            port = ntohs(sa.s_in.sa_port);
        } else if (sa.s_family == NNG_AF_INET6) {
            inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof(host));
            port = ntohs(sa.s_in6.sa_port);
        }
    }
    snprintf(bound, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             port);
    nng_url_free(url);
    *out = m;
    return 0;

fail:
    if (m->srv != NULL) {
        nng_http_server_release(m->srv);
    }
    if (url != NULL) {
        nng_url_free(url);
    }
    free(m);
    return rv;
}

void
metrics_http_stop(metrics_http *m)
{
    if (m != NULL) {
        nng_http_server_stop(m->srv);
        nng_http_server_release(m->srv);
        free(m);
    }
}
