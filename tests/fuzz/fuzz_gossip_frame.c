/* SPDX-License-Identifier: MIT */
/*
 * fuzz_gossip_frame.c - libFuzzer target for the gossip frame decoder.
 *
 * Input: one mode byte, then the payload. Mode bit 0 clear: the payload is
 * a frame plaintext, sealed here with the cluster key so the fuzzer reaches
 * the parser behind the AEAD; set: the payload is fed raw (exercises the
 * seal checks). Mode bit 1: accept every record signature, so mutated
 * records reach the apply paths too. Each input runs on a fresh instance
 * (deterministic): recv, tick, drain the output, free.
 */
#include "gossip.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int accept_all(void *arg, const uint8_t sig[64], const uint8_t *msg,
                      size_t len, const uint8_t pk[32])
{
    (void)arg;
    (void)sig;
    (void)msg;
    (void)len;
    (void)pk;
    return 0;
}

static void on_event(void *arg, const gsp_event *ev)
{
    size_t *n = arg;
    *n += ev->klen + ev->vlen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pk[32], sk[64], key[32];
    static int init;
    if (!init) {
        if (sodium_init() < 0)
            abort();
        uint8_t seed[32] = {42};
        crypto_sign_seed_keypair(pk, sk, seed);
        memset(key, 7, sizeof(key));
        init = 1;
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    gsp_keyring *kr;
    if (gsp_keyring_alloc(&kr))
        return 0;
    gsp_keyring_install(kr, 1, key);
    gsp_keyring_set_nonce_seed(kr, 1);
    size_t evbytes = 0;
    gsp_config c;
    gsp_config_init(&c);
    c.pk = pk;
    c.sk = sk;
    c.addr = "fuzz:1";
    c.incarnation = 1;
    c.keyring = kr;
    c.seed = 1;
    c.on_event = on_event;
    c.event_arg = &evbytes;
    if (mode & 2)
        c.verify = accept_all;
    gsp *g;
    if (gsp_alloc(&g, &c, 1000)) {
        gsp_keyring_free(kr);
        return 0;
    }
    if (mode & 1) {
        gsp_recv(g, 1001, data, size);
    } else {
        uint8_t *buf = malloc(size + GSP_SEAL_OVERHEAD);
        size_t n;
        if (buf && gsp_seal(kr, data, size, buf, size + GSP_SEAL_OVERHEAD,
                            &n) == 0) {
            gsp_recv(g, 1001, buf, n);
            /* The same frame again must be a replay or a no-op. */
            gsp_recv(g, 1002, buf, n);
        }
        free(buf);
    }
    gsp_tick(g, 1500);
    gsp_tick(g, 5000);
    gsp_frame f;
    while (gsp_out(g, &f))
        gsp_frame_release(&f);
    gsp_free(g);
    gsp_keyring_free(kr);
    return 0;
}
