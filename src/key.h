/* SPDX-License-Identifier: MIT */
/*
 * Cluster keys: 32 random bytes, written as one line of standard base64
 * (what `notifier keygen` prints and key files hold).
 */
#ifndef NTI_KEY_H
#define NTI_KEY_H

#include <stddef.h>

#include "addr.h"

#define NTI_KEY_BYTES 32

/* Parses base64 text (surrounding whitespace ignored) into 32 bytes.
 * NT_OK or NT_EAUTH (not base64, or not 32 bytes). */
int nti_key_parse(const char *text, size_t len, unsigned char *key);
/* Reads and parses a key file.  NT_EIO when it cannot be read (missing,
 * unreadable, larger than 4 KiB), NT_EAUTH when its content is no key. */
int nti_key_load(const char *path, unsigned char *key);
/* A key file may hold several keys, one per line (blank lines and lines
 * starting with # are skipped): the first is used for sending, every one
 * is accepted.  Reads up to max keys into keys; *n gets how many.  Errors
 * as nti_key_load; NT_EAUTH also for a file with no key. */
#define NTI_KEYS_MAX 8
int nti_key_load_all(const char *path, unsigned char (*keys)[32], size_t max,
                     size_t *n);
/* The same for a key file's content already in memory (n bytes). */
int nti_key_text_parse_all(const char *buf, size_t n,
                           unsigned char (*keys)[32], size_t max,
                           size_t *count);

/* Writes base64 of 32 fresh random bytes, NUL-terminated, into out (at
 * least 64 bytes). */
void nti_key_generate(char *out, size_t cap);

#endif
