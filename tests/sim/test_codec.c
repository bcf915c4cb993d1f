/* SPDX-License-Identifier: MIT */
/*
 * test_codec.c - unit tests for the bounds-checked cursor reader/writer
 * (gossip_codec.h): round trips, sticky errors, caps, and no reads past
 * the end.
 */
#include "simtest.h"

#include "gossip_codec.h"

#include <string.h>

static void test_roundtrip(void)
{
    uint8_t buf[64];
    gsp_wr w;
    gsp_wr_init(&w, buf, sizeof(buf));
    gsp_wr_u8(&w, 0xab);
    gsp_wr_u16(&w, 0x1234);
    gsp_wr_u32(&w, 0xdeadbeef);
    gsp_wr_u64(&w, 0x0102030405060708ULL);
    gsp_wr_blob8(&w, "hey", 3);
    gsp_wr_blob16(&w, "abcd", 4);
    CU_ASSERT_EQUAL(w.err, 0);
    CU_ASSERT_EQUAL(w.off, 1 + 2 + 4 + 8 + 4 + 6);
    CU_ASSERT_EQUAL(buf[1], 0x12); /* big-endian */

    gsp_rd r;
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;
    const uint8_t *p;
    size_t n;
    gsp_rd_init(&r, buf, w.off);
    gsp_rd_u8(&r, &a);
    gsp_rd_u16(&r, &b);
    gsp_rd_u32(&r, &c);
    gsp_rd_u64(&r, &d);
    CU_ASSERT_EQUAL(a, 0xab);
    CU_ASSERT_EQUAL(b, 0x1234);
    CU_ASSERT_EQUAL(c, 0xdeadbeef);
    CU_ASSERT_EQUAL(d, 0x0102030405060708ULL);
    CU_ASSERT_EQUAL(gsp_rd_blob8(&r, 10, &p, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT(memcmp(p, "hey", 3) == 0);
    CU_ASSERT_EQUAL(gsp_rd_blob16(&r, 10, &p, &n), 0);
    CU_ASSERT_EQUAL(gsp_rd_done(&r, 1), 0);
}

static void test_sticky_underflow(void)
{
    uint8_t buf[3] = {1, 2, 3};
    gsp_rd r;
    uint32_t v = 99;
    uint8_t u = 7;
    gsp_rd_init(&r, buf, sizeof(buf));
    CU_ASSERT_EQUAL(gsp_rd_u32(&r, &v), -1);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT(r.err);
    /* Sticky: even a read that would fit fails now. */
    CU_ASSERT_EQUAL(gsp_rd_u8(&r, &u), -1);
    CU_ASSERT_EQUAL(u, 0);
    CU_ASSERT_EQUAL(gsp_rd_left(&r), 0);
    CU_ASSERT_EQUAL(gsp_rd_done(&r, 0), -1);
}

static void test_caps(void)
{
    uint8_t buf[8] = {5, 'a', 'b', 'c', 'd', 'e', 0, 0};
    gsp_rd r;
    const uint8_t *p;
    size_t n;
    gsp_rd_init(&r, buf, sizeof(buf));
    CU_ASSERT_EQUAL(gsp_rd_blob8(&r, 4, &p, &n), -1); /* over the cap */
    CU_ASSERT(r.err);
    /* Declared length beyond the buffer. */
    uint8_t big[4] = {0xff, 0xff, 'x', 'y'};
    gsp_rd_init(&r, big, sizeof(big));
    CU_ASSERT_EQUAL(gsp_rd_blob16(&r, 100000, &p, &n), -1);
    CU_ASSERT_PTR_NULL(p);
    /* blob32 with a huge declared length. */
    uint8_t huge[6] = {0xff, 0xff, 0xff, 0xff, 1, 2};
    gsp_rd_init(&r, huge, sizeof(huge));
    CU_ASSERT_EQUAL(gsp_rd_blob32(&r, SIZE_MAX, &p, &n), -1);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_exact_and_sub(void)
{
    uint8_t buf[6] = {0, 0, 0, 2, 9, 8};
    gsp_rd r, sub;
    uint32_t l;
    uint8_t x;
    gsp_rd_init(&r, buf, sizeof(buf));
    gsp_rd_u32(&r, &l);
    CU_ASSERT_EQUAL(gsp_rd_sub(&r, l, &sub), 0);
    gsp_rd_u8(&sub, &x);
    CU_ASSERT_EQUAL(x, 9);
    CU_ASSERT_EQUAL(gsp_rd_done(&sub, 1), -1); /* one byte left */
    gsp_rd_u8(&sub, &x);
    CU_ASSERT_EQUAL(gsp_rd_done(&sub, 1), 0);
    CU_ASSERT_EQUAL(gsp_rd_sub(&r, 1, &sub), -1);
    CU_ASSERT(sub.err);
    gsp_rd_init(&r, NULL, 10);
    CU_ASSERT_EQUAL(gsp_rd_u8(&r, &x), -1);
}

static void test_writer_overflow(void)
{
    uint8_t buf[5];
    gsp_wr w;
    gsp_wr_init(&w, buf, sizeof(buf));
    CU_ASSERT_EQUAL(gsp_wr_u32(&w, 1), 0);
    CU_ASSERT_EQUAL(gsp_wr_u16(&w, 1), -1);
    CU_ASSERT(w.err);
    CU_ASSERT_EQUAL(gsp_wr_u8(&w, 1), -1); /* sticky */
    CU_ASSERT_EQUAL(w.off, 4);
    gsp_wr_init(&w, buf, sizeof(buf));
    CU_ASSERT_EQUAL(gsp_wr_blob8(&w, "abcdef", 6), -1); /* 7 > 5 */
    CU_ASSERT_EQUAL(w.off, 0);
    uint8_t big[300] = {0};
    uint8_t out[400];
    gsp_wr_init(&w, out, sizeof(out));
    CU_ASSERT_EQUAL(gsp_wr_blob8(&w, big, 256), -1); /* > 255 */
    CU_ASSERT_PTR_NULL(gsp_wr_reserve(&w, 1));
}

static int add(CU_pSuite s)
{
    return !CU_add_test(s, "roundtrip", test_roundtrip) ||
           !CU_add_test(s, "sticky_underflow", test_sticky_underflow) ||
           !CU_add_test(s, "caps", test_caps) ||
           !CU_add_test(s, "exact_and_sub", test_exact_and_sub) ||
           !CU_add_test(s, "writer_overflow", test_writer_overflow);
}

int main(void)
{
    return st_run_suite("gossip_codec", add);
}
