/* SPDX-License-Identifier: MIT */
/*
 * Cluster key files (see key.h).  Decoded with libsodium's constant-time
 * base64; the buffers that held key text are wiped.
 */
#include "key.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "notifier/notifier.h"

#define KEY_FILE_MAX 4096

int
nti_key_parse(const char *text, size_t len, unsigned char *key)
{
    while (len > 0 && (text[0] == ' ' || text[0] == '\t' ||
                       text[0] == '\n' || text[0] == '\r')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' ||
                       text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    unsigned char buf[NTI_KEY_BYTES + 3];
    size_t outlen = 0;
    const char *end = NULL;
    if (len == 0 ||
        sodium_base642bin(buf, sizeof(buf), text, len, NULL, &outlen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + len || outlen != NTI_KEY_BYTES) {
        sodium_memzero(buf, sizeof(buf));
        return NT_EAUTH;
    }
    memcpy(key, buf, NTI_KEY_BYTES);
    sodium_memzero(buf, sizeof(buf));
    return NT_OK;
}

int
nti_key_text_parse_all(const char *buf, size_t n, unsigned char (*keys)[32],
                       size_t max, size_t *count)
{
    int rv = NT_OK;
    *count = 0;
    for (size_t i = 0; i < n && rv == NT_OK;) {
        size_t j = i;
        while (j < n && buf[j] != '\n') {
            j++;
        }
        size_t k = i;
        while (k < j && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r')) {
            k++;
        }
        if (k < j && buf[k] != '#') {
            if (*count == max) {
                rv = NT_ELIMIT;
            } else {
                rv = nti_key_parse(buf + k, j - k, keys[*count]);
                *count += rv == NT_OK;
            }
        }
        i = j + 1;
    }
    if (rv == NT_OK && *count == 0) {
        rv = NT_EAUTH;
    }
    return rv;
}

int
nti_key_load_all(const char *path, unsigned char (*keys)[32], size_t max,
                 size_t *count)
{
    FILE *f = fopen(path, "rb");
    *count = 0;
    if (f == NULL) {
        return NT_EIO;
    }
    char buf[KEY_FILE_MAX + 1];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int err = ferror(f);
    fclose(f);
    int rv = (err || n > KEY_FILE_MAX)
                 ? NT_EIO
                 : nti_key_text_parse_all(buf, n, keys, max, count);
    sodium_memzero(buf, sizeof(buf));
    return rv;
}

int
nti_key_load(const char *path, unsigned char *key)
{
    unsigned char keys[NTI_KEYS_MAX][32];
    size_t n = 0;
    int rv = nti_key_load_all(path, keys, NTI_KEYS_MAX, &n);
    if (rv == NT_OK) {
        memcpy(key, keys[0], 32);
    }
    sodium_memzero(keys, sizeof(keys));
    return rv;
}

void
nti_key_generate(char *out, size_t cap)
{
    unsigned char k[NTI_KEY_BYTES];
    randombytes_buf(k, sizeof(k));
    sodium_bin2base64(out, cap, k, sizeof(k),
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(k, sizeof(k));
}
