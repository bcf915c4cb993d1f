/* SPDX-License-Identifier: MIT */
/*
 * test_seal.c - identity and keyring: self-certifying ids, seal/open round
 * trips, distinct failure reasons, rotation (install/use/remove),
 * deterministic nonces, and production nonces unique across threads and
 * fork.
 */
#include "simtest.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_id(void)
{
    uint8_t pk[32], sk[64], id[GSP_ID_LEN], id2[GSP_ID_LEN];
    char hex[GSP_ID_HEX_LEN + 1];
    crypto_sign_keypair(pk, sk);
    gsp_id_from_pk(pk, id, hex);
    CU_ASSERT_EQUAL(strlen(hex), 32);
    for (int i = 0; i < 32; i++)
        CU_ASSERT(strchr("0123456789abcdef", hex[i]) != NULL);
    crypto_generichash(id2, sizeof(id2), pk, 32, NULL, 0);
    CU_ASSERT(memcmp(id, id2, GSP_ID_LEN) == 0);
}

static void test_roundtrip_and_reasons(void)
{
    gsp_keyring *kr, *other;
    uint8_t k1[32], k2[32];
    memset(k1, 1, 32);
    memset(k2, 2, 32);
    CU_ASSERT_EQUAL(gsp_keyring_alloc(&kr), 0);
    CU_ASSERT_EQUAL(gsp_keyring_alloc(&other), 0);
    uint8_t out[256], pt[200];
    size_t n, pn;
    CU_ASSERT_EQUAL(gsp_seal(kr, (const uint8_t *)"x", 1, out, sizeof(out), &n),
                    GSP_ENOKEY);
    gsp_keyring_install(kr, 1, k1);
    CU_ASSERT_EQUAL(gsp_keyring_primary(kr), 1);
    const char *msg = "hello gossip";
    CU_ASSERT_EQUAL(gsp_seal(kr, (const uint8_t *)msg, strlen(msg), out,
                             sizeof(out), &n),
                    0);
    CU_ASSERT_EQUAL(n, strlen(msg) + GSP_SEAL_OVERHEAD);
    CU_ASSERT_EQUAL(gsp_open(kr, out, n, pt, sizeof(pt), &pn), 0);
    CU_ASSERT_EQUAL(pn, strlen(msg));
    CU_ASSERT(memcmp(pt, msg, pn) == 0);
    /* Too small an output buffer. */
    CU_ASSERT_EQUAL(gsp_seal(kr, (const uint8_t *)msg, strlen(msg), out, 20,
                             &n),
                    GSP_ENOSPC);
    gsp_seal(kr, (const uint8_t *)msg, strlen(msg), out, sizeof(out), &n);
    CU_ASSERT_EQUAL(gsp_open(kr, out, n, pt, 3, &pn), GSP_ETOOBIG);
    /* Unknown key id. */
    CU_ASSERT_EQUAL(gsp_open(other, out, n, pt, sizeof(pt), &pn),
                    GSP_EUNKNOWNKEY);
    /* Same id, other key. */
    gsp_keyring_install(other, 1, k2);
    CU_ASSERT_EQUAL(gsp_open(other, out, n, pt, sizeof(pt), &pn), GSP_EAUTH);
    /* Tampered ciphertext, tampered header (AD), truncation, version. */
    out[30] ^= 1;
    CU_ASSERT_EQUAL(gsp_open(kr, out, n, pt, sizeof(pt), &pn), GSP_EAUTH);
    out[30] ^= 1;
    CU_ASSERT_EQUAL(gsp_open(kr, out, n - 1, pt, sizeof(pt), &pn), GSP_EAUTH);
    CU_ASSERT_EQUAL(gsp_open(kr, out, 10, pt, sizeof(pt), &pn),
                    GSP_EMALFORMED);
    out[0] = 9;
    CU_ASSERT_EQUAL(gsp_open(kr, out, n, pt, sizeof(pt), &pn), GSP_EVERSION);
    gsp_keyring_free(kr);
    gsp_keyring_free(other);
}

static void test_rotation(void)
{
    gsp_keyring *a, *b;
    uint8_t k1[32], k2[32];
    memset(k1, 7, 32);
    memset(k2, 8, 32);
    gsp_keyring_alloc(&a);
    gsp_keyring_alloc(&b);
    gsp_keyring_install(a, 1, k1);
    gsp_keyring_install(b, 1, k1);
    /* Step 1: both install key 2; a starts using it at once. */
    gsp_keyring_install(a, 2, k2);
    gsp_keyring_install(b, 2, k2);
    CU_ASSERT_EQUAL(gsp_keyring_use(a, 2), 0);
    uint8_t out[128], pt[128];
    size_t n, pn;
    gsp_seal(a, (const uint8_t *)"m", 1, out, sizeof(out), &n);
    CU_ASSERT_EQUAL(out[1], 2);
    CU_ASSERT_EQUAL(gsp_open(b, out, n, pt, sizeof(pt), &pn), 0);
    gsp_seal(b, (const uint8_t *)"m", 1, out, sizeof(out), &n);
    CU_ASSERT_EQUAL(out[1], 1);
    CU_ASSERT_EQUAL(gsp_open(a, out, n, pt, sizeof(pt), &pn), 0);
    /* The primary cannot be removed; others can. */
    CU_ASSERT_EQUAL(gsp_keyring_remove(a, 2), GSP_EBUSY);
    CU_ASSERT_EQUAL(gsp_keyring_remove(a, 1), 0);
    CU_ASSERT_EQUAL(gsp_keyring_remove(a, 1), GSP_ENOTFOUND);
    CU_ASSERT_EQUAL(gsp_open(a, out, n, pt, sizeof(pt), &pn),
                    GSP_EUNKNOWNKEY);
    CU_ASSERT_EQUAL(gsp_keyring_use(a, 5), GSP_ENOTFOUND);
    gsp_keyring_free(a);
    gsp_keyring_free(b);
}

static void test_det_nonces(void)
{
    gsp_keyring *a, *b;
    uint8_t k[32] = {3};
    gsp_keyring_alloc(&a);
    gsp_keyring_alloc(&b);
    gsp_keyring_install(a, 1, k);
    gsp_keyring_install(b, 1, k);
    gsp_keyring_set_nonce_seed(a, 42);
    gsp_keyring_set_nonce_seed(b, 42);
    uint8_t o1[64], o2[64], o3[64];
    size_t n1, n2, n3;
    gsp_seal(a, (const uint8_t *)"abc", 3, o1, sizeof(o1), &n1);
    gsp_seal(b, (const uint8_t *)"abc", 3, o2, sizeof(o2), &n2);
    gsp_seal(a, (const uint8_t *)"abc", 3, o3, sizeof(o3), &n3);
    CU_ASSERT(n1 == n2 && memcmp(o1, o2, n1) == 0); /* reproducible */
    CU_ASSERT(memcmp(o1 + 2, o3 + 2, 24) != 0);     /* never reused */
    gsp_keyring_free(a);
    gsp_keyring_free(b);
}

/* Production nonces: never repeated within a thread, across threads, or
 * between a parent and its forked child. */
static void seal_nonce(gsp_keyring *kr, uint8_t nonce[24])
{
    uint8_t o[64];
    size_t n;
    CU_ASSERT_EQUAL(gsp_seal(kr, (const uint8_t *)"n", 1, o, sizeof(o), &n),
                    0);
    memcpy(nonce, o + 2, 24);
}

typedef struct {
    gsp_keyring *kr;
    uint8_t nonce[24];
} nonce_job;

static void *nonce_thread(void *arg)
{
    nonce_job *j = arg;
    seal_nonce(j->kr, j->nonce);
    return NULL;
}

static void test_nonces_unique(void)
{
    gsp_keyring *kr;
    uint8_t k[32] = {9};
    gsp_keyring_alloc(&kr);
    gsp_keyring_install(kr, 1, k);
    uint8_t a[24], b[24];
    seal_nonce(kr, a);
    seal_nonce(kr, b);
    CU_ASSERT(memcmp(a, b, 24) != 0);
    nonce_job j = {kr, {0}};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, nonce_thread, &j), 0);
    pthread_join(t, NULL);
    CU_ASSERT(memcmp(j.nonce, a, 24) != 0 && memcmp(j.nonce, b, 24) != 0);
    /* The child's next nonce is not the parent's next nonce. */
    int fd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(fd), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        uint8_t c[24];
        seal_nonce(kr, c);
        ssize_t w = write(fd[1], c, 24);
        _exit(w == 24 ? 0 : 1);
    }
    uint8_t p[24], c[24] = {0};
    seal_nonce(kr, p);
    ssize_t r = read(fd[0], c, 24);
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT_EQUAL(r, 24);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(memcmp(p, c, 24) != 0);
    close(fd[0]);
    close(fd[1]);
    gsp_keyring_free(kr);
}

static int add(CU_pSuite s)
{
    return !CU_add_test(s, "id", test_id) ||
           !CU_add_test(s, "roundtrip_and_reasons",
                        test_roundtrip_and_reasons) ||
           !CU_add_test(s, "rotation", test_rotation) ||
           !CU_add_test(s, "det_nonces", test_det_nonces) ||
           !CU_add_test(s, "nonces_unique", test_nonces_unique);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    return st_run_suite("gossip_seal", add);
}
