/* SPDX-License-Identifier: MIT */
/*
 * Small public helpers with no state: error messages, the stable id hash,
 * config defaults and freeing results.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "notifier/notifier.h"

const char *
nt_strerror(int code)
{
    switch (code) {
    case NT_OK:
        return "success";
    case NT_EINVAL:
        return "invalid argument";
    case NT_ENOMEM:
        return "out of memory";
    case NT_ENOTARGET:
        return "no registration matches (no target)";
    case NT_ETIMEDOUT:
        return "timed out";
    case NT_EPEERLOST:
        return "the serving node died or left";
    case NT_EREMOTE:
        return "the handler answered with an error";
    case NT_ECLOSED:
        return "node closed";
    case NT_EAUTH:
        return "authentication failed or unusable key";
    case NT_EPROTO:
        return "protocol error (malformed or unexpected data)";
    case NT_EADDR:
        return "bad or unusable address";
    case NT_ENOTSUP:
        return "not supported";
    case NT_EEXIST:
        return "already registered";
    case NT_ENOENT:
        return "no such registration";
    case NT_EAGAIN:
        return "queue full, try again";
    case NT_EREPLIED:
        return "reply already sent or handle no longer valid";
    case NT_EMSGSIZE:
        return "message too large";
    case NT_EUNREACHABLE:
        return "no server or peer reachable";
    case NT_ELIMIT:
        return "configured limit reached";
    case NT_EIO:
        return "I/O error";
    default:
        return "unknown error";
    }
}

uint64_t
nt_id_hash(const char *s)
{
    static const unsigned char key[crypto_shorthash_KEYBYTES] = {
        'n', 'o', 't', 'i', 'f', 'i', 'e', 'r',
        '-', 'i', 'd', '-', 'h', 'a', 's', 'h',
    };
    unsigned char out[crypto_shorthash_BYTES];
    if (s == NULL) {
        s = "";
    }
    /* crypto_shorthash needs no sodium_init(): SipHash has no CPU
     * dispatch or randomness. */
    crypto_shorthash(out, (const unsigned char *)s, strlen(s), key);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | out[i];
    }
    return v;
}

void
nt_config_init(nt_config *cfg)
{
    if (cfg != NULL) {
        memset(cfg, 0, sizeof(*cfg));
    }
}

void
nt_results_free(nt_results *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        free((void *)r->items[i].data);
    }
    free(r);
}
