/* SPDX-License-Identifier: MIT */
/*
 * The common summary of the two gossip benchmarks (see gstats.h).
 * "stragglers" counts the changes slower than 3x the median change, the
 * criterion of issue 9; "straggler_ratio" is slowest / median.
 */
#include "gstats.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static double
ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

void
gstats_print(
    FILE *f, FILE *raw, const char *impl, unsigned nodes, const gstats *g)
{
    uint64_t v[1024];
    double p50 = -1, p90 = -1, max = -1, first50 = -1, k50 = -1, kmax = -1;
    double s50 = -1;
    unsigned strag = 0;
    if (g->nprop > 0) {
        memcpy(v, g->first_ns, g->nprop * sizeof(v[0]));
        first50 = ms(bu_pct(v, g->nprop, 50));
        memcpy(v, g->prop_ns, g->nprop * sizeof(v[0]));
        max = ms(bu_pct(v, g->nprop, 100));
        p90 = ms(bu_pct(v, g->nprop, 90));
        p50 = ms(bu_pct(v, g->nprop, 50));
        for (size_t i = 0; i < g->nprop; i++) {
            strag += ms(g->prop_ns[i]) > 3 * p50;
        }
    }
    if (g->nkill > 0) {
        memcpy(v, g->kill_ns, g->nkill * sizeof(v[0]));
        kmax = ms(bu_pct(v, g->nkill, 100));
        k50 = ms(bu_pct(v, g->nkill, 50));
        memcpy(v, g->susp_ns, g->nkill * sizeof(v[0]));
        s50 = v[0] > 0 ? ms(bu_pct(v, g->nkill, 50)) : -1;
    }
    fprintf(f,
        "RESULT impl=%s test=gossip nodes=%u changes=%zu "
        "prop_p50_ms=%.1f prop_p90_ms=%.1f prop_max_ms=%.1f "
        "first_p50_ms=%.1f straggler_ratio=%.2f stragglers=%u "
        "prop_timeouts=%u kills=%zu kill_p50_ms=%.0f kill_max_ms=%.0f "
        "susp_p50_ms=%.0f "
        "kill_timeouts=%u false_dead=%ld join_s=%.2f\n",
        impl, nodes, g->nprop, p50, p90, max, first50,
        p50 > 0 ? max / p50 : -1.0, strag, g->prop_timeouts, g->nkill, k50,
        kmax, s50, g->kill_timeouts, g->false_dead, g->join_s);
    if (raw != NULL) {
        for (size_t i = 0; i < g->nprop; i++) {
            fprintf(raw, "%s %u prop %.2f\n", impl, nodes, ms(g->prop_ns[i]));
        }
        for (size_t i = 0; i < g->nkill; i++) {
            fprintf(raw, "%s %u kill %.1f\n", impl, nodes, ms(g->kill_ns[i]));
        }
    }
}
