/* SPDX-License-Identifier: MIT */
/*
 * simnet.h - the gossip simulator core: N real gsp instances on a virtual
 * network with a virtual clock.
 *
 * Messages get a uniform random delay in [delay_min, delay_max] ms and are
 * lost with probability `loss`; a partition drops everything between
 * groups; a crashed node neither ticks nor receives. Every random choice
 * comes from one seeded generator, so a run is a pure function of its
 * config. Node i's address is "s<i>", its Ed25519 keypair is derived from
 * the seed, and its keyring (key id 1 = the cluster key) uses
 * deterministic nonces. A shared memoising verifier caches verified
 * (pk, message, signature) triples by hash, which is sound and keeps N^2
 * verifications affordable. Nodes tick every step_ms (like the node's
 * timer thread) and whenever a deadline falls due within a step.
 * Single-threaded; not thread-safe.
 */
#ifndef GOSSIP_SIMNET_H
#define GOSSIP_SIMNET_H

#include "gossip.h"

#include <stdbool.h>

typedef struct sim sim;

typedef void (*sim_event_fn)(void *arg, size_t node, const gsp_event *ev);

typedef struct {
    size_t nodes;
    uint64_t seed;
    double loss;            /* 0..1 */
    uint32_t delay_min_ms;  /* default 1 */
    uint32_t delay_max_ms;  /* default delay_min_ms */
    uint32_t step_ms;       /* tick granularity (default 5) */
    size_t nseeds;          /* nodes 0..nseeds-1 are every node's seeds (1) */
    gsp_config knobs;       /* protocol knobs; identity fields ignored */
    sim_event_fn on_event;
    void *event_arg;
} sim_config;

void sim_config_init(sim_config *c);
int sim_alloc(sim **out, const sim_config *cfg);
void sim_free(sim *s);

uint64_t sim_now(const sim *s);
size_t sim_size(const sim *s);
gsp *sim_node(sim *s, size_t i);   /* NULL while crashed */
gsp_keyring *sim_keyring(sim *s, size_t i);
const char *sim_addr(const sim *s, size_t i);
bool sim_up(const sim *s, size_t i);
const uint8_t *sim_id(const sim *s, size_t i);

/* Advance virtual time to t (ms). */
void sim_run_until(sim *s, uint64_t t);
/* Run until pred(s, arg) holds (checked every step) or time `until`.
 * Returns true if pred held. */
bool sim_run_while_not(sim *s, bool (*pred)(sim *, void *), void *arg,
                       uint64_t until);

void sim_crash(sim *s, size_t i);
/* Restart a crashed node with the same keys and a new incarnation. */
int sim_restart(sim *s, size_t i, uint64_t incarnation);
/* Graceful leave: gsp_leave, deliver its frames, then crash. */
int sim_leave(sim *s, size_t i);
/* group[i] per node; messages between different groups are dropped.
 * NULL heals. */
void sim_partition(sim *s, const int *group);
void sim_set_loss(sim *s, double loss);
void sim_set_delay(sim *s, uint32_t min_ms, uint32_t max_ms);

/* All up nodes hold the same view digest. */
bool sim_converged(sim *s);
/* Number of up nodes that see `n` members alive (self included). */
size_t sim_count_full_views(sim *s, size_t n);

typedef struct {
    uint64_t sent, delivered, lost, cut, to_down;
    uint64_t verify_calls, verify_real;
} sim_stats;
void sim_get_stats(const sim *s, sim_stats *st);

/* Hand node i's queued frames to the network now (after calling the gsp
 * directly, e.g. gsp_put). */
void sim_drain(sim *s, size_t i);
/* Inject raw bytes to node i (as if from the network), e.g. fuzz. */
int sim_inject(sim *s, size_t i, const uint8_t *buf, size_t len);
/* Capture hook: every frame sent is also passed to fn (for tests that
 * replay, tamper or drop frames). Return false to drop it. */
typedef bool (*sim_tap_fn)(void *arg, size_t from, size_t to,
                           const uint8_t *buf, size_t len);
void sim_set_tap(sim *s, sim_tap_fn fn, void *arg);

#endif
