/* SPDX-License-Identifier: MIT */
/*
 * main.c - gossip-sim: how fast one entry change spreads.
 *
 * Builds a cluster of N nodes on the virtual network (warm-up: they join
 * from one seed over a 1-2 ms network until every node sees N members and
 * all views agree), then sets the measured delay and loss, has node 0 put
 * one entry at round 0, and prints `round,informed` (fraction of live
 * nodes holding the change) once per gossip round until everyone has it or
 * the round cap. A round is one gossip interval (200 ms). The default
 * delay equals the interval, so each hop costs a whole round (the
 * pessimistic bound). Above --full-max nodes it runs the protocol model
 * (see docs/GOSSIP.md). Exit: 0 converged, 1 not converged, 2 bad usage.
 */
#include "simnet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t nodes;
    uint32_t fanout;
    double loss;
    uint64_t seed;
    const char *svg;
    uint32_t delay;
    uint32_t cap;
    size_t full_max;
    int model;
    int quiet;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gossip-sim [--nodes N] [--fanout F] [--loss P] "
            "[--seed S] [--svg FILE]\n"
            "                  [--delay MS] [--rounds-cap R] "
            "[--full-max N] [--model] [--quiet]\n"
            "Prints CSV 'round,informed' for one entry change made at "
            "round 0.\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 0);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

static int bad(const char *flag, const char *val)
{
    fprintf(stderr, "gossip-sim: bad value for %s: '%s'\n", flag,
            val ? val : "");
    return 2;
}

static int parse(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--model")) {
            o->model = 1;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--nodes")) {
            if (parse_u64(v, &x) || x < 1 || x > 1000000)
                return bad(a, v);
            o->nodes = (size_t)x;
            i++;
        } else if (!strcmp(a, "--fanout")) {
            if (parse_u64(v, &x) || x < 1 || x > 64)
                return bad(a, v);
            o->fanout = (uint32_t)x;
            i++;
        } else if (!strcmp(a, "--loss")) {
            char *end;
            if (!v)
                return bad(a, v);
            errno = 0;
            double d = strtod(v, &end);
            if (errno || *end || !(d >= 0.0 && d <= 1.0))
                return bad(a, v);
            o->loss = d;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &x))
                return bad(a, v);
            o->seed = x;
            i++;
        } else if (!strcmp(a, "--svg")) {
            if (!v || !*v)
                return bad(a, v);
            o->svg = v;
            i++;
        } else if (!strcmp(a, "--delay")) {
            if (parse_u64(v, &x) || x < 1 || x > 10000)
                return bad(a, v);
            o->delay = (uint32_t)x;
            i++;
        } else if (!strcmp(a, "--rounds-cap")) {
            if (parse_u64(v, &x) || x < 1 || x > 100000)
                return bad(a, v);
            o->cap = (uint32_t)x;
            i++;
        } else if (!strcmp(a, "--full-max")) {
            if (parse_u64(v, &x) || x < 1)
                return bad(a, v);
            o->full_max = (size_t)x;
            i++;
        } else {
            fprintf(stderr, "gossip-sim: unknown flag '%s' (try --help)\n",
                    a);
            return 2;
        }
    }
    return 0;
}

/* ---- full simulation ---- */

typedef struct {
    size_t n;
} joinarg;

static bool joined(sim *s, void *arg)
{
    joinarg *j = arg;
    return sim_count_full_views(s, j->n) == j->n && sim_converged(s);
}

static double informed_frac(sim *s, const uint8_t *id0)
{
    size_t up = 0, k = 0;
    for (size_t i = 0; i < sim_size(s); i++) {
        gsp *g = sim_node(s, i);
        if (!g)
            continue;
        up++;
        const uint8_t *v;
        size_t vl;
        if (i == 0 ||
            gsp_entry_get(g, id0, "probe", 5, &v, &vl) == 0)
            k++;
    }
    return up ? (double)k / (double)up : 0.0;
}

static int run_full(const opts *o, double *curve, size_t *rounds)
{
    sim_config c;
    sim_config_init(&c);
    c.nodes = o->nodes;
    c.seed = o->seed;
    c.delay_min_ms = 1;
    c.delay_max_ms = 2;
    c.step_ms = o->nodes > 200 ? 5 : 2;
    c.knobs.fanout = o->fanout;
    uint32_t dm = o->delay;
    c.knobs.probe_timeout_ms = dm * 3 > 200 ? dm * 3 : 200;
    c.knobs.probe_interval_ms = dm * 8 > 400 ? dm * 8 : 400;
    sim *s;
    if (sim_alloc(&s, &c)) {
        fprintf(stderr, "gossip-sim: cannot build the cluster\n");
        return -1;
    }
    joinarg ja = {o->nodes};
    if (!sim_run_while_not(s, joined, &ja, 600000)) {
        fprintf(stderr, "gossip-sim: warm-up join did not converge\n");
        sim_free(s);
        return -1;
    }
    if (!o->quiet)
        fprintf(stderr, "gossip-sim: %zu nodes joined at t=%.1fs\n",
                o->nodes, (double)sim_now(s) / 1000.0);
    sim_set_delay(s, o->delay, o->delay);
    sim_set_loss(s, o->loss);
    uint64_t t0 = sim_now(s);
    gsp_put(sim_node(s, 0), t0, "probe", 5, "v1", 2);
    sim_drain(s, 0);
    const uint8_t *id0 = sim_id(s, 0);
    size_t r = 0;
    curve[0] = informed_frac(s, id0);
    while (curve[r] < 1.0 && r < o->cap) {
        r++;
        sim_run_until(s, t0 + (uint64_t)r * 200);
        curve[r] = informed_frac(s, id0);
    }
    *rounds = r;
    sim_free(s);
    return curve[r] >= 1.0 ? 0 : 1;
}

/* ---- protocol model (large N) ----
 * Hop model with delay = one round. A node informed in round r pushes to
 * `fanout` random peers at once, then once per round until its
 * retransmit budget is spent;
 * each message is lost with probability p. Pull: every node syncs with
 * `fanout` random peers per round; an uninformed initiator gets the change
 * 3 hops later from an informed peer, an informed initiator hands it over
 * 5 hops later (SYNC, BUCKETS, DIGEST, WANT, UNITS), each leg subject to
 * loss. */

static uint64_t mrng(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int run_model(const opts *o, double *curve, size_t *rounds)
{
    size_t n = o->nodes;
    uint32_t *when = malloc(n * sizeof(*when)); /* round informed, or ~0 */
    uint32_t *budget = calloc(n, sizeof(*budget));
    if (!when || !budget) {
        free(when);
        free(budget);
        return -1;
    }
    const uint32_t NEVER = UINT32_MAX;
    for (size_t i = 0; i < n; i++)
        when[i] = NEVER;
    uint64_t x = o->seed * 0x2545f4914f6cdd1dULL + 1;
    uint32_t limit = gsp_retransmit_limit(4, n);
    uint32_t f = o->fanout;
    double p = o->loss;
    when[0] = 0;
    budget[0] = limit;
    size_t informed = 1, r = 0;
    curve[0] = 1.0 / (double)n;
#define LOST() (p > 0 && (double)(mrng(&x) >> 11) / 9007199254740992.0 < p)
#define PEER(i) ((size_t)((mrng(&x) % (n - 1) + 1 + (i)) % n))
    while (r < o->cap) {
        /* messages sent in round r arrive in round r + 1 (or later). */
        for (size_t i = 0; i < n; i++) {
            if (when[i] > r || when[i] == NEVER)
                continue;
            uint32_t pushes = f;
            for (uint32_t k = 0; k < pushes && budget[i]; k++) {
                budget[i]--;
                size_t j = PEER(i);
                if (!LOST() && when[j] == NEVER) {
                    when[j] = (uint32_t)r + 1;
                    budget[j] = limit;
                    informed++;
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            for (uint32_t k = 0; k < f; k++) {
                size_t j = PEER(i);
                bool ai = when[i] <= r, bj = when[j] <= r;
                if (ai == bj)
                    continue;
                size_t dst = ai ? j : i;
                uint32_t hops = ai ? 5 : 3;
                bool ok = true;
                for (uint32_t h = 0; h < hops; h++)
                    ok &= !LOST();
                if (ok && when[dst] == NEVER) {
                    when[dst] = (uint32_t)r + hops;
                    informed++;
                } else if (ok && when[dst] > r + hops) {
                    when[dst] = (uint32_t)r + hops;
                }
            }
        }
        r++;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += when[i] <= r;
        curve[r] = (double)k / (double)n;
        if (k == n)
            break;
    }
#undef LOST
#undef PEER
    *rounds = r;
    int rc = curve[r] >= 1.0 ? 0 : 1;
    free(when);
    free(budget);
    return rc;
}

static int write_svg(const char *path, const double *c, size_t rounds,
                     const opts *o, bool model)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const double W = 640, H = 400, L = 60, B = 50, T = 40, R = 20;
    double pw = W - L - R, ph = H - T - B;
    size_t xr = rounds ? rounds : 1;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
            "height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    fprintf(f,
            "<text x=\"%.0f\" y=\"22\" font-size=\"14\">gossip-sim: N=%zu "
            "fanout=%u loss=%.2f seed=%llu%s</text>\n",
            L, o->nodes, o->fanout, o->loss, (unsigned long long)o->seed,
            model ? " (model)" : "");
    fprintf(f,
            "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
            "stroke=\"black\"/>\n"
            "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
            "stroke=\"black\"/>\n",
            L, T + ph, L + pw, T + ph, L, T, L, T + ph);
    for (int k = 0; k <= 4; k++) {
        double y = T + ph - ph * k / 4.0;
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>"
                "\n<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n",
                L - 6, y + 4, k / 4.0, L, y, L + pw, y);
    }
    size_t step = xr > 20 ? (xr + 9) / 10 : 1;
    for (size_t k = 0; k <= xr; k += step)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%zu"
                "</text>\n",
                L + pw * (double)k / (double)xr, T + ph + 18, k);
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">round "
            "(gossip interval)</text>\n"
            "<text x=\"14\" y=\"%.0f\" transform=\"rotate(-90 14 %.0f)\" "
            "text-anchor=\"middle\">informed fraction</text>\n",
            L + pw / 2, H - 10, T + ph / 2, T + ph / 2);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" "
               "stroke-width=\"2\" points=\"");
    for (size_t k = 0; k <= rounds; k++)
        fprintf(f, "%.1f,%.1f ", L + pw * (double)k / (double)xr,
                T + ph - ph * c[k]);
    fprintf(f, "\"/>\n</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    opts o = {.nodes = 1000,
              .fanout = 3,
              .loss = 0.0,
              .seed = 1,
              .delay = 200,
              .cap = 100,
              .full_max = 2000};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    double *curve = calloc((size_t)o.cap + 1, sizeof(double));
    if (!curve) {
        fprintf(stderr, "gossip-sim: out of memory\n");
        return 1;
    }
    bool model = o.model || o.nodes > o.full_max;
    size_t rounds = 0;
    if (model && !o.quiet)
        fprintf(stderr, "gossip-sim: protocol model (N > --full-max)\n");
    rc = model ? run_model(&o, curve, &rounds) : run_full(&o, curve, &rounds);
    if (rc < 0) {
        free(curve);
        return 1;
    }
    printf("round,informed\n");
    for (size_t r = 0; r <= rounds; r++)
        printf("%zu,%.6f\n", r, curve[r]);
    if (o.svg && write_svg(o.svg, curve, rounds, &o, model)) {
        fprintf(stderr, "gossip-sim: cannot write %s\n", o.svg);
        free(curve);
        return 1;
    }
    if (rc != 0)
        fprintf(stderr, "gossip-sim: not converged after %zu rounds\n",
                rounds);
    free(curve);
    return rc == 0 ? 0 : 1;
}
