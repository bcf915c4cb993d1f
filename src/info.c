/* SPDX-License-Identifier: MIT */
/*
 * Introspection text and JSON (nt_node_info), and the small public helpers
 * for keys and addresses.
 */
#include <stdlib.h>
#include <string.h>

#include "key.h"
#include "node.h"
#include "strbuf.h"

void
nt_free(void *p)
{
    free(p);
}

int
nt_key_generate(char *out, size_t cap)
{
    if (out == NULL || cap < 45) {
        return NT_EINVAL;
    }
    nti_key_generate(out, cap);
    return NT_OK;
}

int
nt_key_parse(const char *text, unsigned char key[32])
{
    if (text == NULL || key == NULL) {
        return NT_EINVAL;
    }
    return nti_key_parse(text, strlen(text), key);
}

int
nt_key_file_load(const char *path, unsigned char (*keys)[32], size_t max,
                 size_t *count)
{
    if (path == NULL || keys == NULL || count == NULL || max == 0) {
        return NT_EINVAL;
    }
    return nti_key_load_all(path, keys, max > NTI_KEYS_MAX ? NTI_KEYS_MAX
                                                            : max,
                            count);
}

int
nt_addr_check(const char *addr)
{
    return nti_addr_check(addr);
}

typedef struct {
    nti_sb *b;
    int json;
    size_t n;
} subs_ctx;

static int
sub_row(void *arg, const nti_reg *r)
{
    subs_ctx *c = arg;
    const char *kind = r->kind == NTI_RPC ? "rpc" : "notify";
    const char *node = r->owner->node_id ? r->owner->node_id : "";
    if (c->json) {
        nti_sb_printf(c->b, "%s{\"node\":", c->n ? "," : "");
        nti_sb_json_str(c->b, node);
        nti_sb_printf(c->b, ",\"kind\":\"%s\",\"object\":", kind);
        nti_sb_json_str(c->b, r->object);
        nti_sb_printf(c->b, ",\"cmd\":");
        nti_sb_json_str(c->b, r->cmd);
        nti_sb_printf(c->b,
                      ",\"mask\":%llu,\"value\":%llu,\"slice\":%s,"
                      "\"weight\":%g}",
                      (unsigned long long)r->match.mask,
                      (unsigned long long)r->match.value,
                      r->slice ? "true" : "false", r->weight);
    } else {
        nti_sb_printf(c->b, "%-32s %-6s %-20s %-16s 0x%llx:0x%llx %s",
                      node, kind, r->object, r->cmd,
                      (unsigned long long)r->match.mask,
                      (unsigned long long)r->match.value,
                      r->slice ? "slice" : "full");
        if (r->slice) {
            nti_sb_printf(c->b, " %g", r->weight);
        }
        nti_sb_printf(c->b, "\n");
    }
    c->n++;
    return 0;
}

int
nti_info_subs(nt_node *n, int json, char **out)
{
    nti_sb b;
    nti_sb_init(&b);
    subs_ctx c = { &b, json, 0 };
    if (json) {
        nti_sb_printf(&b, "{\"node\":");
        nti_sb_json_str(&b, n->id);
        nti_sb_printf(&b, ",\"subs\":[");
    } else {
        nti_sb_printf(&b, "%-32s %-6s %-20s %-16s %s\n", "NODE", "KIND",
                      "OBJECT", "CMD", "MATCH (MASK:VALUE) TYPE [WEIGHT]");
    }
    nti_index_foreach(n->index, sub_row, &c);
    if (json) {
        nti_sb_printf(&b, "]}");
    }
    *out = nti_sb_take(&b);
    return *out != NULL ? NT_OK : NT_ENOMEM;
}

typedef struct {
    nti_sb *b;
    int json;
} stat_out;

static void
stat_row(void *arg, const char *name, uint64_t v)
{
    stat_out *so = arg;
    if (so->json) {
        nti_sb_printf(so->b, ",\"%s\":%llu", name, (unsigned long long)v);
    } else {
        nti_sb_printf(so->b, "%-28s %llu\n", name, (unsigned long long)v);
    }
}

int
nti_info_stats(nt_node *n, int json, char **out)
{
    nti_pool_stats ps;
    nti_pool_stats_get(n->pool, &ps);
    struct {
        const char *name;
        uint64_t v;
    } rows[] = {
        { "published", atomic_load(&n->ctr.published) },
        { "delivered", atomic_load(&n->ctr.delivered) },
        { "rpc_calls", atomic_load(&n->ctr.rpc_calls) },
        { "rpc_served", atomic_load(&n->ctr.rpc_served) },
        { "rejected_queue_full", atomic_load(&n->ctr.rejected) },
        { "dropped_closed", atomic_load(&n->ctr.dropped_closed) },
        { "dropped_unregistered", atomic_load(&n->ctr.dropped_unreg) },
        { "dropped_nomem", atomic_load(&n->ctr.dropped_nomem) },
        { "notify_predecessor_missing",
          atomic_load(&n->ctr.notify_pred_missing) },
        { "queue_depth", ps.queued },
        { "handlers_running", ps.running },
        { "threads", ps.threads },
        { "rpc_pending", nti_rpctab_pending(n->rpc) },
        { "registrations", nti_index_count(n->index) },
    };
    nti_sb b;
    nti_sb_init(&b);
    char digest[2 * GSP_DIGEST_LEN + 1];
    nti_cluster_digest(n, digest);
    if (json) {
        nti_sb_printf(&b, "{\"node\":");
        nti_sb_json_str(&b, n->id);
        nti_sb_printf(&b, ",\"digest\":");
        nti_sb_json_str(&b, digest);
    } else {
        nti_sb_printf(&b, "%-28s %s\n", "node", n->id);
        nti_sb_printf(&b, "%-28s %s\n", "digest", digest[0] ? digest : "-");
    }
    stat_out so = { &b, json };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        stat_row(&so, rows[i].name, rows[i].v);
    }
    nti_cluster_stats(n, stat_row, &so);
    if (json) {
        nti_sb_printf(&b, "}");
    }
    *out = nti_sb_take(&b);
    return *out != NULL ? NT_OK : NT_ENOMEM;
}

int
nt_node_info(nt_node *n, const char *what, int format, int timeout_ms,
             char **out)
{
    if (out == NULL || what == NULL ||
        (format != NT_INFO_TEXT && format != NT_INFO_JSON)) {
        return NT_EINVAL;
    }
    *out = NULL;
    if (!nti_node_enter(n)) {
        return NT_ECLOSED;
    }
    int json = format == NT_INFO_JSON, rv;
    if (nti_is_publisher(n)) {
        rv = nti_pub_info(n, what, json, timeout_ms, out);
    } else if (strcmp(what, "subs") == 0) {
        rv = nti_info_subs(n, json, out);
    } else if (strcmp(what, "members") == 0) {
        rv = nti_info_members(n, json, out);
    } else if (strcmp(what, "stats") == 0) {
        rv = nti_info_stats(n, json, out);
    } else if (strcmp(what, "metrics") == 0) {
        rv = nti_info_metrics(n, out);
    } else {
        rv = NT_EINVAL;
    }
    nti_node_leave(n);
    return rv;
}
