/* SPDX-License-Identifier: MIT */
/*
 * Stateless helpers: the stable id hash, error strings, address and key
 * parsing.
 */
#include "addr.h"
#include "bufcache.h"
#include "key.h"
#include "notifier/notifier.h"
#include "testutil.h"

#include <unistd.h>

static void
test_id_hash_vectors(void)
{
    /* SipHash-2-4, key "notifier-id-hash", little-endian; checked against
     * an independent implementation.  These must never change. */
    CU_ASSERT_EQUAL(nt_id_hash(""), 0xa897e376bcdc0cf8ULL);
    CU_ASSERT_EQUAL(nt_id_hash("user:42"), 0x77e4a5be974a0c9dULL);
    CU_ASSERT_EQUAL(nt_id_hash("a"), 0x4c26039897060400ULL);
    CU_ASSERT_EQUAL(nt_id_hash("notifier"), 0xbeb6fa043aacecd7ULL);
    CU_ASSERT_NOT_EQUAL(nt_id_hash("user:42"), nt_id_hash("user:43"));
}

static void
test_strerror_all(void)
{
    for (int c = 0; c >= NT_EIO; c--) {
        const char *s = nt_strerror(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(strlen(s) > 0);
        CU_ASSERT(strcmp(s, "unknown error") != 0);
        for (int d = c + 1; d <= 0; d++) {
            CU_ASSERT(strcmp(s, nt_strerror(d)) != 0);
        }
    }
    CU_ASSERT_STRING_EQUAL(nt_strerror(-1000), "unknown error");
    CU_ASSERT_STRING_EQUAL(nt_strerror(5), "unknown error");
}

static void
test_addr_parse(void)
{
    char host[256];
    unsigned port = 1;
    CU_ASSERT_EQUAL(nti_addr_parse("127.0.0.1:0", host, sizeof(host), &port),
                    NT_OK);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 0);
    CU_ASSERT_EQUAL(nti_addr_parse("node-1.local:65535", host, sizeof(host),
                                   &port), NT_OK);
    CU_ASSERT_STRING_EQUAL(host, "node-1.local");
    CU_ASSERT_EQUAL(port, 65535);
    CU_ASSERT_EQUAL(nti_addr_parse("[::1]:7000", host, sizeof(host), &port),
                    NT_OK);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    const char *bad[] = { "", ":", "host", "host:", ":80", "host:65536",
                          "host:-1", "host:80x", "a b:1", "::1:80",
                          "[::1]80", "[::1", "host:123456", "h\n:1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(nti_addr_check(bad[i]), NT_EADDR);
    }
    CU_ASSERT_EQUAL(nti_addr_check(NULL), NT_EADDR);
    char longhost[400];
    memset(longhost, 'a', sizeof(longhost));
    strcpy(longhost + 300, ":1");
    CU_ASSERT_EQUAL(nti_addr_check(longhost), NT_EADDR);
}

static void
test_key_parse(void)
{
    char text[64];
    unsigned char k[32], k2[32];
    nti_key_generate(text, sizeof(text));
    CU_ASSERT_EQUAL(strlen(text), 44);
    CU_ASSERT_EQUAL(nti_key_parse(text, strlen(text), k), NT_OK);
    char padded[80];
    snprintf(padded, sizeof(padded), "  %s\n", text);
    CU_ASSERT_EQUAL(nti_key_parse(padded, strlen(padded), k2), NT_OK);
    CU_ASSERT_EQUAL(memcmp(k, k2, 32), 0);
    CU_ASSERT_EQUAL(nti_key_parse("", 0, k), NT_EAUTH);
    CU_ASSERT_EQUAL(nti_key_parse("aGVsbG8=", 8, k), NT_EAUTH); /* 5 bytes */
    CU_ASSERT_EQUAL(nti_key_parse("!!!!", 4, k), NT_EAUTH);
    text[10] = '*';
    CU_ASSERT_EQUAL(nti_key_parse(text, strlen(text), k), NT_EAUTH);
}

static void
test_key_file_several(void)
{
    char k1[64], k2[64], path[] = "/tmp/nt-keys-XXXXXX";
    nti_key_generate(k1, sizeof(k1));
    nti_key_generate(k2, sizeof(k2));
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# rotation in progress\n%s\n\n  %s  \r\n", k2, k1);
    fclose(f);
    unsigned char keys[8][32], a[32], b[32];
    size_t n = 0;
    CU_ASSERT_EQUAL(nt_key_file_load(path, keys, 8, &n), NT_OK);
    CU_ASSERT_EQUAL(n, 2);
    nti_key_parse(k2, strlen(k2), a);
    nti_key_parse(k1, strlen(k1), b);
    CU_ASSERT_EQUAL(memcmp(keys[0], a, 32), 0); /* the first sends */
    CU_ASSERT_EQUAL(memcmp(keys[1], b, 32), 0);
    CU_ASSERT_EQUAL(nt_key_file_load(path, keys, 1, &n), NT_ELIMIT);
    f = fopen(path, "w");
    fprintf(f, "%s\nnot a key\n", k1);
    fclose(f);
    CU_ASSERT_EQUAL(nt_key_file_load(path, keys, 8, &n), NT_EAUTH);
    f = fopen(path, "w");
    fprintf(f, "# only a comment\n");
    fclose(f);
    CU_ASSERT_EQUAL(nt_key_file_load(path, keys, 8, &n), NT_EAUTH);
    unlink(path);
    CU_ASSERT_EQUAL(nt_key_file_load(path, keys, 8, &n), NT_EIO);
}

/* Large buffers come back for reuse: the same buffer for a fitting size,
 * a fresh one when none fits, the larger kept when the cache is full,
 * oversized ones never kept. */
static void
test_bufcache(void)
{
    nti_bufcache c;
    nti_bufcache_init(&c);
    size_t cap = 0;
    void *a = nti_bufcache_get(&c, 1000, &cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(cap, 1000);
    memset(a, 1, cap);
    nti_bufcache_put(&c, a, cap);
    size_t cap2 = 0;
    void *b = nti_bufcache_get(&c, 800, &cap2);
    CU_ASSERT_PTR_EQUAL(b, a); /* reused, with its whole size */
    CU_ASSERT_EQUAL(cap2, 1000);
    void *big = nti_bufcache_get(&c, 4000, &cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_EQUAL(cap, 4000); /* nothing kept fits: a new one */
    nti_bufcache_put(&c, b, cap2);
    nti_bufcache_put(&c, big, cap);
    void *more[NTI_BUFCACHE_MAX];
    for (int i = 0; i < NTI_BUFCACHE_MAX; i++) {
        more[i] = nti_bufcache_get(&c, 8000, &cap);
        CU_ASSERT_EQUAL(cap, 8000);
    }
    for (int i = 0; i < NTI_BUFCACHE_MAX; i++) {
        nti_bufcache_put(&c, more[i], 8000); /* the small ones make room */
    }
    CU_ASSERT_EQUAL(c.n, NTI_BUFCACHE_MAX);
    for (size_t i = 0; i < c.n; i++) {
        CU_ASSERT_EQUAL(c.cap[i], 8000);
    }
    void *huge = nti_bufcache_get(&c, NTI_BUFCACHE_BIG + 1, &cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    nti_bufcache_put(&c, huge, cap); /* freed, not kept */
    for (size_t i = 0; i < c.n; i++) {
        CU_ASSERT(c.cap[i] <= NTI_BUFCACHE_BIG);
    }
    nti_bufcache_put(&c, NULL, 0);
    nti_bufcache_fini(&c); /* frees what is kept (the leak checkers see) */
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_id_hash_vectors),
        NT_TEST(test_strerror_all),
        NT_TEST(test_addr_parse),
        NT_TEST(test_key_parse),
        NT_TEST(test_key_file_several),
        NT_TEST(test_bufcache),
        NT_TESTS_END,
    };
    return nt_run_suite("misc", NULL, NULL, tests);
}
