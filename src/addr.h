/* SPDX-License-Identifier: MIT */
/*
 * "host:port" addresses as users write them: a hostname or IPv4 address,
 * or an IPv6 address in brackets, then a decimal port 0..65535.
 */
#ifndef NTI_ADDR_H
#define NTI_ADDR_H

#include <stddef.h>

/* NT_OK or NT_EADDR.  With host/port non-NULL, also splits the address
 * (host without brackets, at most hostcap-1 bytes). */
int nti_addr_parse(const char *s, char *host, size_t hostcap,
                   unsigned *port);
int nti_addr_check(const char *s);

#endif
