/* SPDX-License-Identifier: MIT */
/*
 * Registration index and target selection: matching edge cases,
 * duplicates, removal, and the weighted draw.
 */
#include <math.h>

#include "index.h"
#include "testutil.h"

static nti_index *ix;
static nti_owner local;
static nti_owner remote;
static nti_rng rng;
static int dests[16];

static int
setup(void)
{
    memset(&local, 0, sizeof(local));
    memset(&remote, 0, sizeof(remote));
    local.node_id = "aaaa";
    remote.peer = &remote;
    remote.node_id = "bbbb";
    nti_rng_init(&rng, 12345);
    return nti_index_alloc(&ix, 42) == NT_OK ? 0 : 1;
}

static int
teardown(void)
{
    nti_index_free(ix);
    return 0;
}

static uint64_t next_id = 1;

static int
add(nti_owner *o, nti_kind k, const char *obj, uint64_t mask, uint64_t value,
    const char *cmd, int di, bool slice, double w)
{
    nti_reg_spec s = {
        .kind = k,
        .object = obj,
        .cmd = cmd,
        .match = { mask, value },
        .slice = slice,
        .weight = w,
        .dest = &dests[di],
        .id = next_id++,
    };
    return nti_index_add(ix, o, &s);
}

/* Routes and returns how many targets, with their dest indexes in out. */
static size_t
route(nti_kind k, const char *obj, const char *cmd, uint64_t id, int *out)
{
    nti_targets t;
    nti_targets_init(&t);
    int rv = nti_index_route(ix, k, obj, cmd, id, &rng, &t);
    size_t n = t.n;
    for (size_t i = 0; i < t.n && out != NULL; i++) {
        out[i] = (int)((int *)t.v[i]->dest - dests);
    }
    nti_targets_fini(&t);
    CU_ASSERT(rv == NT_OK || (rv == NT_ENOTARGET && n == 0));
    return n;
}

static void
clear(void)
{
    for (size_t i = 0; i < 16; i++) {
        for (int k = 0; k < 2; k++) {
            nti_reg *chain = NULL;
            nti_index_remove_dest(ix, &local, (nti_kind)k, &dests[i], &chain);
            while (chain != NULL) {
                nti_reg *nx = chain->rnext;
                nti_reg_rele(chain);
                chain = nx;
            }
        }
    }
    nti_reg *c = nti_index_remove_owner(ix, &remote);
    while (c != NULL) {
        nti_reg *nx = c->rnext;
        nti_reg_rele(c);
        c = nx;
    }
    CU_ASSERT_EQUAL(nti_index_count(ix), 0);
}

static void
test_mask_zero_matches_all(void)
{
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 0, NULL), 1);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", UINT64_MAX, NULL), 1);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 12345, NULL), 1);
    /* Exact object and cmd, and the kind is a separate namespace. */
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "cc", 1, NULL), 0);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "O", "c", 1, NULL), 0);
    CU_ASSERT_EQUAL(route(NTI_RPC, "o", "c", 1, NULL), 0);
    clear();
}

static void
test_full_mask(void)
{
    uint64_t v = 0xdeadbeefcafef00dULL;
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", UINT64_MAX, v, "c", 0,
                        false, 1), 0);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", v, NULL), 1);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", v ^ 1, NULL), 0);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", v ^ (1ULL << 63), NULL), 0);
    clear();
}

static void
test_partition_masks(void)
{
    /* mask 3 splits ids into quarters; each quarter goes to one dest. */
    for (int q = 0; q < 4; q++) {
        CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, (uint64_t)q, "c", q,
                            false, 1), 0);
    }
    for (uint64_t id = 0; id < 64; id++) {
        int out[4];
        CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", id, out), 1);
        CU_ASSERT_EQUAL(out[0], (int)(id & 3));
    }
    clear();
}

static void
test_overlapping(void)
{
    /* all ids, odd ids, id 5 exactly: id 5 hits all three. */
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 1, 1, "c", 1, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", UINT64_MAX, 5, "c", 2,
                        false, 1), 0);
    int out[4];
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 5, out), 3);
    /* Local targets come in registration order. */
    CU_ASSERT_EQUAL(out[0], 0);
    CU_ASSERT_EQUAL(out[1], 1);
    CU_ASSERT_EQUAL(out[2], 2);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 7, NULL), 2);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 4, NULL), 1);
    clear();
}

static void
test_value_outside_mask_rejected(void)
{
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 1, 2, "c", 0, false, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 1, "c", 0, false, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(nti_index_count(ix), 0);
}

static void
test_bad_names_and_weights(void)
{
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[299] = '\0';
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "", 0, 0, "c", 0, false, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "", 0, false, 1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, longname, 0, 0, "c", 0, false,
                        1), NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, true, 0),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, true, -1),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, true, NAN),
                    NT_EINVAL);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, true,
                        INFINITY), NT_EINVAL);
    CU_ASSERT_EQUAL(nti_index_count(ix), 0);
}

static void
test_duplicates_and_enoent(void)
{
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 1, "c", 0, false, 1), 0);
    /* Same (object, match, cmd, dest), full or slice: duplicate. */
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 1, "c", 0, false, 1),
                    NT_EEXIST);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 1, "c", 0, true, 2),
                    NT_EEXIST);
    /* Another dest, another match or the RPC kind: not a duplicate. */
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 1, "c", 1, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 2, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_RPC, "o", 3, 1, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(nti_index_count(ix), 4);

    nti_reg *r = NULL;
    CU_ASSERT_EQUAL(nti_index_remove(ix, &local, NTI_NOTIFY, "o",
                                     (nt_match){ 3, 1 }, "c", &dests[0], &r),
                    NT_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(atomic_load(&r->removed));
    nti_reg_rele(r);
    CU_ASSERT_EQUAL(nti_index_remove(ix, &local, NTI_NOTIFY, "o",
                                     (nt_match){ 3, 1 }, "c", &dests[0], &r),
                    NT_ENOENT);
    CU_ASSERT_EQUAL(nti_index_remove(ix, &local, NTI_NOTIFY, "nope",
                                     (nt_match){ 3, 1 }, "c", &dests[0], &r),
                    NT_ENOENT);
    CU_ASSERT_EQUAL(nti_index_count(ix), 3);
    clear();
}

static void
test_remove_dest(void)
{
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "a", 0, 0, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "b", 1, 0, "d", 0, true, 2), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "a", 0, 0, "c", 1, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_RPC, "a", 0, 0, "c", 0, false, 1), 0);
    nti_reg *chain = NULL;
    CU_ASSERT_EQUAL(nti_index_remove_dest(ix, &local, NTI_NOTIFY, &dests[0],
                                          &chain), NT_OK);
    int n = 0;
    while (chain != NULL) {
        nti_reg *nx = chain->rnext;
        CU_ASSERT_PTR_EQUAL(chain->dest, &dests[0]);
        nti_reg_rele(chain);
        chain = nx;
        n++;
    }
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "a", "c", 0, NULL), 1);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "b", "d", 0, NULL), 0);
    CU_ASSERT_EQUAL(route(NTI_RPC, "a", "c", 0, NULL), 1);
    CU_ASSERT_EQUAL(nti_index_remove_dest(ix, &local, NTI_NOTIFY, &dests[0],
                                          &chain), NT_ENOENT);
    clear();
}

static void
test_remote_owner(void)
{
    /* Remote registrations share the index, keyed by (owner, id). */
    nti_reg_spec s = { .kind = NTI_NOTIFY, .object = "o", .cmd = "c",
                       .match = { 0, 0 }, .id = 77 };
    CU_ASSERT_EQUAL(nti_index_add(ix, &remote, &s), NT_OK);
    CU_ASSERT_EQUAL(nti_index_add(ix, &remote, &s), NT_EEXIST);
    s.id = 78;
    s.slice = true;
    s.weight = 2.0;
    CU_ASSERT_EQUAL(nti_index_add(ix, &remote, &s), NT_OK);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 3, false, 1), 0);
    nti_targets t;
    nti_targets_init(&t);
    CU_ASSERT_EQUAL(nti_index_route(ix, NTI_NOTIFY, "o", "c", 9, &rng, &t),
                    NT_OK);
    CU_ASSERT_EQUAL(t.n, 3);
    if (t.n == 3) {
        CU_ASSERT_PTR_NULL(t.v[0]->owner->peer); /* local first */
        CU_ASSERT_PTR_EQUAL(t.v[1]->owner, &remote);
        CU_ASSERT_EQUAL(t.v[1]->id, 77);
        CU_ASSERT(t.v[2]->slice);
    }
    nti_targets_fini(&t);
    nti_reg *r = nti_index_get(ix, &remote, 78);
    CU_ASSERT_PTR_NOT_NULL(r);
    if (r != NULL) {
        nti_reg_rele(r);
    }
    nti_reg *chain = nti_index_remove_owner(ix, &remote);
    int n = 0;
    while (chain != NULL) {
        nti_reg *nx = chain->rnext;
        nti_reg_rele(chain);
        chain = nx;
        n++;
    }
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 9, NULL), 1);
    clear();
}

static void
test_full_and_slices_together(void)
{
    /* Two full registrations and three slices: every route gets both
     * full ones plus exactly one slice. */
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 0, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 1, 1, "c", 1, false, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 0, 0, "c", 2, true, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 1, 1, "c", 3, true, 1), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_NOTIFY, "o", 3, 1, "c", 4, true, 1), 0);
    int seen[16] = { 0 };
    for (int i = 0; i < 3000; i++) {
        int out[8];
        size_t n = route(NTI_NOTIFY, "o", "c", 5, out);
        CU_ASSERT_EQUAL_FATAL(n, 3);
        int slices = 0;
        for (size_t j = 0; j < n; j++) {
            seen[out[j]]++;
            slices += out[j] >= 2;
        }
        CU_ASSERT_EQUAL(slices, 1);
    }
    CU_ASSERT_EQUAL(seen[0], 3000);
    CU_ASSERT_EQUAL(seen[1], 3000);
    CU_ASSERT_EQUAL(seen[2] + seen[3] + seen[4], 3000);
    CU_ASSERT(seen[2] > 800 && seen[3] > 800 && seen[4] > 800);
    /* Even ids match only the mask-0 pair. */
    int out[8];
    CU_ASSERT_EQUAL(route(NTI_NOTIFY, "o", "c", 4, out), 2);
    CU_ASSERT_EQUAL(out[0], 0);
    CU_ASSERT_EQUAL(out[1], 2);
    clear();
}

static void
test_weighted_chi_square(void)
{
    /* Weights 1:3; 100k draws with a fixed seed.  Chi-square with one
     * degree of freedom must stay under 10.83 (p = 0.001). */
    nti_rng_init(&rng, 20261128);
    CU_ASSERT_EQUAL(add(&local, NTI_RPC, "w", 0, 0, "c", 0, true, 1.0), 0);
    CU_ASSERT_EQUAL(add(&local, NTI_RPC, "w", 0, 0, "c", 1, true, 3.0), 0);
    long cnt[2] = { 0, 0 };
    const long N = 100000;
    for (long i = 0; i < N; i++) {
        int out[2];
        CU_ASSERT_EQUAL_FATAL(route(NTI_RPC, "w", "c", (uint64_t)i, out), 1);
        cnt[out[0]]++;
    }
    double e0 = N * 0.25, e1 = N * 0.75;
    double chi = (cnt[0] - e0) * (cnt[0] - e0) / e0 +
                 (cnt[1] - e1) * (cnt[1] - e1) / e1;
    printf("\n  1:3 split %ld/%ld chi2=%.3f (seed 20261128)\n", cnt[0],
           cnt[1], chi);
    CU_ASSERT(chi < 10.83);
    clear();
}

static void
test_lookup_cost_by_masks(void)
{
    /* 10k registrations on one mask: one probe finds the one that
     * matches; it does not scan them all. */
    for (int i = 0; i < 10000; i++) {
        nti_reg_spec s = { .kind = NTI_NOTIFY, .object = "big", .cmd = "c",
                           .match = { 0xffff, (uint64_t)i },
                           .id = 1000000 + (uint64_t)i };
        CU_ASSERT_EQUAL_FATAL(nti_index_add(ix, &remote, &s), NT_OK);
    }
    nti_targets t;
    nti_targets_init(&t);
    CU_ASSERT_EQUAL(nti_index_route(ix, NTI_NOTIFY, "big", "c", 0x10000 + 77,
                                    &rng, &t), NT_OK);
    CU_ASSERT_EQUAL(t.n, 1);
    if (t.n == 1) {
        CU_ASSERT_EQUAL(t.v[0]->match.value, 77);
    }
    nti_targets_fini(&t);
    clear();
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_mask_zero_matches_all),
        NT_TEST(test_full_mask),
        NT_TEST(test_partition_masks),
        NT_TEST(test_overlapping),
        NT_TEST(test_value_outside_mask_rejected),
        NT_TEST(test_bad_names_and_weights),
        NT_TEST(test_duplicates_and_enoent),
        NT_TEST(test_remove_dest),
        NT_TEST(test_remote_owner),
        NT_TEST(test_full_and_slices_together),
        NT_TEST(test_weighted_chi_square),
        NT_TEST(test_lookup_cost_by_masks),
        NT_TESTS_END,
    };
    return nt_run_suite("index", setup, teardown, tests);
}
