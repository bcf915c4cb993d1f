/* SPDX-License-Identifier: MIT */
/*
 * seal.c - node identity, the cluster keyring, and frame sealing.
 *
 * A sealed frame is ver(1) | key_id(1) | nonce(24) | ciphertext | tag(16),
 * XChaCha20-Poly1305-IETF with ver|key_id as associated data. Opening never
 * touches the plaintext buffer beyond cap and reports why a frame failed,
 * so callers can count drops by reason. Keys live only in the keyring and
 * are wiped with sodium_memzero on replace, remove and free.
 *
 * Design notes: in production a nonce is a 16-byte random prefix drawn
 * once per thread (and again in a forked child) followed by that thread's
 * 64-bit counter: unique without a system call per frame, and two
 * threads or processes collide only if their random prefixes do (2^-128).
 * A keyring given a nonce seed instead derives nonce = BLAKE2b-128(seed) ||
 * counter(64), which makes simulator runs reproducible; uniqueness then
 * relies on every keyring using a distinct seed, which is why it is a
 * test-only switch.
 */
#include "gossip.h"
#include "gossip_codec.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_VERSION 1
#define NKEYS 16

struct gsp_keyring {
    struct {
        int used;
        uint8_t id;
        uint8_t key[GSP_KEY_LEN];
    } k[NKEYS];
    int primary; /* slot index or -1 */
    int det;     /* deterministic nonces */
    uint8_t tag[16];
    uint64_t ctr;
};

static const char hexd[] = "0123456789abcdef";

/* Per-thread nonce state; a fork bumps the generation so that a child
 * never continues its parent's sequence. */
static _Atomic unsigned nonce_gen = 1;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;
static _Thread_local struct {
    unsigned gen;
    uint64_t ctr;
    uint8_t prefix[16];
} tl_nonce;

static void nonce_forked(void)
{
    atomic_fetch_add(&nonce_gen, 1);
}

static void nonce_setup(void)
{
    pthread_atfork(NULL, NULL, nonce_forked);
}

static void nonce_next(uint8_t nonce[24])
{
    unsigned gen = atomic_load_explicit(&nonce_gen, memory_order_relaxed);
    if (tl_nonce.gen != gen) {
        pthread_once(&nonce_once, nonce_setup);
        randombytes_buf(tl_nonce.prefix, sizeof(tl_nonce.prefix));
        tl_nonce.ctr = 0;
        tl_nonce.gen = atomic_load(&nonce_gen);
    }
    memcpy(nonce, tl_nonce.prefix, 16);
    gsp_put_u64(nonce + 16, ++tl_nonce.ctr);
}

void gsp_id_hex(const uint8_t id[GSP_ID_LEN], char hex[GSP_ID_HEX_LEN + 1])
{
    for (int i = 0; i < GSP_ID_LEN; i++) {
        hex[2 * i] = hexd[id[i] >> 4];
        hex[2 * i + 1] = hexd[id[i] & 15];
    }
    hex[GSP_ID_HEX_LEN] = '\0';
}

void gsp_id_from_pk(const uint8_t pk[GSP_PK_LEN], uint8_t id[GSP_ID_LEN],
                    char *hex)
{
    crypto_generichash(id, GSP_ID_LEN, pk, GSP_PK_LEN, NULL, 0);
    if (hex)
        gsp_id_hex(id, hex);
}

int gsp_keyring_alloc(gsp_keyring **out)
{
    if (!out)
        return GSP_EINVAL;
    if (sodium_init() < 0)
        return GSP_ENOMEM;
    gsp_keyring *kr = calloc(1, sizeof(*kr));
    if (!kr)
        return GSP_ENOMEM;
    kr->primary = -1;
    *out = kr;
    return 0;
}

void gsp_keyring_free(gsp_keyring *kr)
{
    if (!kr)
        return;
    sodium_memzero(kr, sizeof(*kr));
    free(kr);
}

static int find(const gsp_keyring *kr, uint8_t id)
{
    for (int i = 0; i < NKEYS; i++)
        if (kr->k[i].used && kr->k[i].id == id)
            return i;
    return -1;
}

int gsp_keyring_install(gsp_keyring *kr, uint8_t key_id,
                        const uint8_t key[GSP_KEY_LEN])
{
    if (!kr || !key)
        return GSP_EINVAL;
    int s = find(kr, key_id);
    if (s < 0) {
        for (int i = 0; i < NKEYS && s < 0; i++)
            if (!kr->k[i].used)
                s = i;
        if (s < 0)
            return GSP_ENOSPC;
    }
    sodium_memzero(kr->k[s].key, GSP_KEY_LEN);
    memcpy(kr->k[s].key, key, GSP_KEY_LEN);
    kr->k[s].id = key_id;
    kr->k[s].used = 1;
    if (kr->primary < 0)
        kr->primary = s;
    return 0;
}

int gsp_keyring_use(gsp_keyring *kr, uint8_t key_id)
{
    if (!kr)
        return GSP_EINVAL;
    int s = find(kr, key_id);
    if (s < 0)
        return GSP_ENOTFOUND;
    kr->primary = s;
    return 0;
}

int gsp_keyring_remove(gsp_keyring *kr, uint8_t key_id)
{
    if (!kr)
        return GSP_EINVAL;
    int s = find(kr, key_id);
    if (s < 0)
        return GSP_ENOTFOUND;
    if (s == kr->primary)
        return GSP_EBUSY;
    sodium_memzero(&kr->k[s], sizeof(kr->k[s]));
    return 0;
}

int gsp_keyring_primary(const gsp_keyring *kr)
{
    if (!kr || kr->primary < 0)
        return GSP_ENOKEY;
    return kr->k[kr->primary].id;
}

void gsp_keyring_set_nonce_seed(gsp_keyring *kr, uint64_t seed)
{
    uint8_t b[8];
    gsp_put_u64(b, seed);
    crypto_generichash(kr->tag, sizeof(kr->tag), b, sizeof(b), NULL, 0);
    kr->det = 1;
    kr->ctr = 0;
}

int gsp_seal(gsp_keyring *kr, const uint8_t *pt, size_t len, uint8_t *out,
             size_t cap, size_t *outlen)
{
    if (!kr || (!pt && len) || !out || !outlen)
        return GSP_EINVAL;
    if (kr->primary < 0)
        return GSP_ENOKEY;
    if (len > SIZE_MAX - GSP_SEAL_OVERHEAD || cap < len + GSP_SEAL_OVERHEAD)
        return GSP_ENOSPC;
    uint8_t *nonce = out + 2;
    out[0] = SEAL_VERSION;
    out[1] = kr->k[kr->primary].id;
    if (kr->det) {
        memcpy(nonce, kr->tag, 16);
        gsp_put_u64(nonce + 16, ++kr->ctr);
    } else {
        nonce_next(nonce);
    }
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 26, &clen, pt, len, out,
                                               2, NULL, nonce,
                                               kr->k[kr->primary].key);
    *outlen = 26 + (size_t)clen;
    return 0;
}

int gsp_open(const gsp_keyring *kr, const uint8_t *frame, size_t len,
             uint8_t *out, size_t cap, size_t *outlen)
{
    if (!kr || !out || !outlen || (!frame && len))
        return GSP_EINVAL;
    if (len < GSP_SEAL_OVERHEAD)
        return GSP_EMALFORMED;
    if (frame[0] != SEAL_VERSION)
        return GSP_EVERSION;
    int s = find(kr, frame[1]);
    if (s < 0)
        return GSP_EUNKNOWNKEY;
    if (len - GSP_SEAL_OVERHEAD > cap)
        return GSP_ETOOBIG;
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, &plen, NULL, frame + 26, len - 26, frame, 2, frame + 2,
            kr->k[s].key) != 0)
        return GSP_EAUTH;
    *outlen = (size_t)plen;
    return 0;
}
