/* SPDX-License-Identifier: MIT */
/*
 * What the cluster's files share: cluster.c (gossip, members, the server
 * side, remote delivery, lifecycle), calls.c (calls across nodes) and
 * pubside.c (the publisher side).  Internal to the library; the rest of it
 * uses node.h.
 */
#ifndef NTI_CLUSTER_IMPL_H
#define NTI_CLUSTER_IMPL_H

#include "node.h"

/* ---- cluster.c ---------------------------------------------------------- */

/* A reply plaintext: header (to the requester, ref = its seq) + body. */
uint8_t *nti_reply_begin(nt_node *n, const nti_hdr *req, uint8_t type,
                         size_t body, gsp_wr *w);
/* Answers with an ACK: items accepted and a status. */
void nti_reply_ack(nt_node *n, nti_sreq *sr, const nti_hdr *h,
                   uint32_t accepted, int status);
/* Encodes results (or just a status) as a RESULTS reply. */
void nti_reply_results(nt_node *n, nti_sreq *sr, const nti_hdr *h,
                       int status, const nt_results *r);

/* What a held request needs to answer later. */
typedef struct {
    nt_node *n;
    nti_sreq *sr;
    nti_hdr h;
} nti_held;

/* Completion of a held request (an nti_held, malloc'd): answers, frees. */
void nti_held_done(void *arg, int status, const nt_results *r);
/* Decodes a request of the given type into wm and holds its server
 * request: the record to complete with nti_held_done, or NULL when the
 * request was answered already (malformed, too many running, no memory). */
nti_held *nti_held_begin(nt_node *n, nti_sreq *sr, const nti_hdr *h,
                         gsp_rd *r, uint8_t type, nti_wmsg *wm);

/* Calls fn for each distinct remote member among t's targets. */
typedef int (*nti_group_fn)(nt_node *n, nti_member *m, nti_reg **regs,
                            size_t first, size_t k, void *arg);
int nti_for_each_remote(nt_node *n, nti_targets *t, nti_group_fn fn,
                        void *arg);
/* A member's peer, held, with its identity; NULL when gone. */
nti_peer *nti_member_peer(nti_member *m, uint8_t *dest, uint64_t *boot,
                          uint64_t *gen);

/* ---- calls.c ------------------------------------------------------------ */

/* Serves a CALL request (one call of local registrations). */
void nti_srv_call(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
                  const char *from);
/* Serves a CALLS request (a batch of call items). */
void nti_srv_calls(nt_node *n, nti_sreq *sr, const nti_hdr *h, gsp_rd *r,
                   const char *from);
/* Serves RESULTS_TO: results of our 'later' calls. */
void nti_srv_results(nt_node *n, nti_sreq *sr, const nti_hdr *h,
                     gsp_rd *r);
/* The connection to a member dropped: its 'later' calls fail. */
void nti_later_peer_lost(nt_node *n, nti_peer *p);
/* Once a second (gossip timer): forget items whose call has ended. */
void nti_later_sweep(nt_node *n);
/* At close: every 'later' item still in the table fails with status. */
void nti_later_fail_all(nt_node *n, int status);

/* ---- pubside.c ---------------------------------------------------------- */

/* Publisher: poll the server's status until members/converged hold. */
int nti_pub_wait_status(nt_node *n, unsigned members, bool converged,
                        int timeout_ms);

#endif
