/* SPDX-License-Identifier: MIT */
/*
 * What the service layer's two files share: service.c (services, their
 * workers and the envelope they answer with) and access.c (nt_execute and
 * the split handle, which call services).  Private to them.
 */
#ifndef NTI_SERVICE_IMPL_H
#define NTI_SERVICE_IMPL_H

#include <stdbool.h>

/* The envelope (see include/notifier/service.h). */
#define ENV_HDR 2                /* version, kind */
#define ENV_ERR_HDR 6            /* version, kind, i32 code */

/* A name (object, command): non-empty, at most 255 bytes. */
bool nti_svc_name_ok(const char *s);

#endif
