/* SPDX-License-Identifier: MIT */
/* Placeholder translation unit until the gossip state machine lands. */
int gsp_stub_(void);
int gsp_stub_(void) { return 0; }
