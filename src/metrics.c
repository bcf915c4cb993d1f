/* SPDX-License-Identifier: MIT */
/*
 * Metrics in the Prometheus text exposition format (version 0.0.4):
 * nt_node_info(n, "metrics", ...), served by `notifierd --metrics` and
 * printed by `notifier stats --prometheus`.  Every name starts with
 * notifier_; counters end in _total.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "strbuf.h"

static void
head(nti_sb *b, const char *name, const char *type, const char *help)
{
    nti_sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
one(nti_sb *b, const char *name, const char *type, const char *help,
    uint64_t v)
{
    head(b, name, type, help);
    nti_sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
drop(nti_sb *b, const char *reason, uint64_t v)
{
    nti_sb_printf(b, "notifier_drops_total{reason=\"%s\"} %llu\n", reason,
                  (unsigned long long)v);
}

int
nti_info_metrics(nt_node *n, char **out)
{
    nti_sb b;
    nti_sb_init(&b);
    nti_pool_stats ps;
    nti_tp_stats ts;
    nti_lat_hist lat;
    nti_pool_stats_get(n->pool, &ps);
    nti_tp_stats_get(n->tp, &ts);
    nti_rpctab_latency(n->rpc, &lat);

    head(&b, "notifier_info", "gauge", "Node identity.");
    nti_sb_printf(&b, "notifier_info{node=\"%s\",version=\"%d.%d.%d\"} 1\n",
                  n->id, NT_VERSION_MAJOR, NT_VERSION_MINOR,
                  NT_VERSION_PATCH);
    one(&b, "notifier_published_total", "counter",
        "Notifications published through this node.",
        atomic_load(&n->ctr.published));
    one(&b, "notifier_delivered_total", "counter",
        "Notification handler calls run here.",
        atomic_load(&n->ctr.delivered));
    one(&b, "notifier_rpc_calls_total", "counter",
        "RPCs started through this node.", atomic_load(&n->ctr.rpc_calls));
    one(&b, "notifier_rpc_served_total", "counter",
        "RPC handler calls run here.", atomic_load(&n->ctr.rpc_served));

    head(&b, "notifier_frames_total", "counter",
         "Frames on the wire by direction and kind.");
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < NTI_K_COUNT; k++) {
            nti_sb_printf(&b,
                          "notifier_frames_total{direction=\"%s\",kind=\"%s\"}"
                          " %llu\n",
                          d ? "out" : "in", nti_kind_wire_name(k),
                          (unsigned long long)ts.kframes[d][k]);
        }
    }
    head(&b, "notifier_bytes_total", "counter",
         "Bytes on the wire by direction and kind.");
    for (int d = 0; d < 2; d++) {
        for (int k = 0; k < NTI_K_COUNT; k++) {
            nti_sb_printf(&b,
                          "notifier_bytes_total{direction=\"%s\",kind=\"%s\"}"
                          " %llu\n",
                          d ? "out" : "in", nti_kind_wire_name(k),
                          (unsigned long long)ts.kbytes[d][k]);
        }
    }
    head(&b, "notifier_notifications_total", "counter",
         "Notifications exchanged with peers (in: accepted from peers; out: "
         "acknowledged by peers).");
    nti_sb_printf(&b, "notifier_notifications_total{direction=\"in\"} %llu\n",
                  (unsigned long long)ts.notify_in);
    nti_sb_printf(&b, "notifier_notifications_total{direction=\"out\"} %llu\n",
                  (unsigned long long)ts.notify_sent);

    head(&b, "notifier_rpc_latency_seconds", "histogram",
         "Time from starting an RPC to its last reply or timeout.");
    uint64_t cum = 0;
    for (int i = 0; i < NTI_LAT_BUCKETS; i++) {
        cum += lat.count[i];
        nti_sb_printf(&b,
                      "notifier_rpc_latency_seconds_bucket{le=\"%g\"} %llu\n",
                      nti_lat_bounds[i], (unsigned long long)cum);
    }
    nti_sb_printf(&b,
                  "notifier_rpc_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)lat.n);
    nti_sb_printf(&b, "notifier_rpc_latency_seconds_sum %.6f\n", lat.sum);
    nti_sb_printf(&b, "notifier_rpc_latency_seconds_count %llu\n",
                  (unsigned long long)lat.n);

    head(&b, "notifier_queue_depth", "gauge",
         "Work waiting: worker queues, notifications queued for peers.");
    nti_sb_printf(&b, "notifier_queue_depth{queue=\"workers\"} %zu\n",
                  ps.queued);
    nti_sb_printf(&b, "notifier_queue_depth{queue=\"peers\"} %llu\n",
                  (unsigned long long)ts.notify_queued);
    one(&b, "notifier_rpc_pending", "gauge",
        "RPCs started here and not yet complete.",
        nti_rpctab_pending(n->rpc));
    one(&b, "notifier_requests_held", "gauge",
        "Calls from peers waiting for a handler's answer here.",
        ts.requests_held);
    one(&b, "notifier_handlers_running", "gauge", "Handlers running now.",
        ps.running);
    one(&b, "notifier_threads", "gauge", "Worker and spare threads.",
        ps.threads);

    gsp_stats gs;
    size_t states[4] = { 0, 0, 0, 0 };
    int conv = 0;
    bool g = nti_cluster_gossip(n, &gs, states, &conv);
    head(&b, "notifier_drops_total", "counter",
         "Frames and messages dropped, by reason.");
    for (int i = 0; i < NTI_DROP_COUNT; i++) {
        drop(&b, nti_drop_name((nti_drop)i), ts.drops[i]);
    }
    if (g) {
        char r[64];
        for (int i = 0; i < GSP_DROP_COUNT; i++) {
            snprintf(r, sizeof(r), "gossip_%s", gsp_drop_name((gsp_drop)i));
            drop(&b, r, gs.drops[i]);
        }
    }
    drop(&b, "queue_full", atomic_load(&n->ctr.rejected));
    drop(&b, "closed", atomic_load(&n->ctr.dropped_closed));
    drop(&b, "unregistered", atomic_load(&n->ctr.dropped_unreg));
    drop(&b, "nomem", atomic_load(&n->ctr.dropped_nomem));
    drop(&b, "unacked", ts.notify_unacked);
    drop(&b, "rejected_by_peer", ts.rejected_by_peer);
    uint64_t auth = ts.drops[NTI_DROP_AUTH] + ts.drops[NTI_DROP_UNKNOWN_KEY];
    if (g) {
        auth += gs.drops[GSP_DROP_AUTH] + gs.drops[GSP_DROP_UNKNOWN_KEY];
    }
    one(&b, "notifier_auth_failures_total", "counter",
        "Frames that failed authentication (wrong or unknown key).", auth);
    one(&b, "notifier_peers", "gauge", "Open peer connections.", ts.peers);
    one(&b, "notifier_connects_total", "counter", "Connections made.",
        ts.connects);
    one(&b, "notifier_disconnects_total", "counter", "Connections lost.",
        ts.disconnects);
    one(&b, "notifier_registrations", "gauge",
        "Registrations in the routing table (local and remote).",
        nti_index_count(n->index));

    if (g) {
        one(&b, "notifier_gossip_rounds_total", "counter",
            "Gossip intervals run.", gs.rounds);
        head(&b, "notifier_members", "gauge", "Members by state.");
        static const char *names[4] = { "alive", "suspect", "dead", "left" };
        for (int i = 0; i < 4; i++) {
            nti_sb_printf(&b, "notifier_members{state=\"%s\"} %zu\n",
                          names[i], states[i]);
        }
        char digest[2 * GSP_DIGEST_LEN + 1];
        nti_cluster_digest(n, digest);
        head(&b, "notifier_directory_digest_info", "gauge",
             "Digest of the whole directory: equal digests, equal views.");
        nti_sb_printf(&b, "notifier_directory_digest_info{digest=\"%s\"} 1\n",
                      digest);
        one(&b, "notifier_directory_converged", "gauge",
            "1 when every alive member advertised our digest.",
            (uint64_t)conv);
        head(&b, "notifier_directory_seconds_since_change", "gauge",
             "Seconds since the directory last changed here.");
        nti_sb_printf(&b, "notifier_directory_seconds_since_change %.3f\n",
                      nti_cluster_since_change(n));
    }
    *out = nti_sb_take(&b);
    return *out != NULL ? NT_OK : NT_ENOMEM;
}
