/* SPDX-License-Identifier: MIT */
/*
 * simtest.h - helpers shared by the gossip simulator suites: seed handling
 * (GSP_TEST_SEED overrides; a failed check prints the seed so the run can
 * be replayed exactly), and an event mirror that checks the event-stream
 * invariant (events applied to an empty map == the library's view).
 */
#ifndef GOSSIP_SIMTEST_H
#define GOSSIP_SIMTEST_H

#include "simnet.h"

#include <CUnit/CUnit.h>
#include <stdio.h>

extern uint64_t st_seed;
void st_seed_init(uint64_t dflt);

#define ST_CHECK(cond)                                                        \
    do {                                                                      \
        int ok_ = !!(cond);                                                   \
        if (!ok_)                                                             \
            fprintf(stderr, "\n  FAILED %s:%d: %s (seed %llu)\n", __FILE__,   \
                    __LINE__, #cond, (unsigned long long)st_seed);            \
        CU_ASSERT(ok_);                                                       \
    } while (0)

/* Per-node mirror of the entry events. */
typedef struct st_mirror st_mirror;
st_mirror *st_mirror_alloc(size_t nodes);
void st_mirror_free(st_mirror *m);
void st_mirror_reset(st_mirror *m, size_t node);
/* sim_event_fn: pass the mirror as event_arg. Counts member events too. */
void st_mirror_event(void *arg, size_t node, const gsp_event *ev);
/* 1 if node's mirror equals its view of live remote members' entries. */
int st_mirror_check(st_mirror *m, sim *s, size_t node);
uint64_t st_mirror_count(const st_mirror *m, gsp_event_type t);
/* Events of type t at any node about member `about` (node index). */
uint64_t st_mirror_count_about(const st_mirror *m, sim *s, size_t about,
                               gsp_event_type t);

int st_run_suite(const char *name, int (*add)(CU_pSuite));

#endif
