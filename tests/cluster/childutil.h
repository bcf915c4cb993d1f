/* SPDX-License-Identifier: MIT */
/*
 * A cluster node in its own process (child_node.c), for tests that kill
 * one: started with the seed address and the key in hex, it prints
 * "READY address id" once open.  The including test defines CHILD_NODE
 * (the program) and provides `keyhex`.
 */
#ifndef NT_CHILDUTIL_H
#define NT_CHILDUTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../spawnutil.h"

typedef struct {
    pid_t pid;
    FILE *out;
    int in_fd;
    char addr[128], id[65];
} child;

/* Starts a child node that joins through seed; true once it is READY
 * (fgets blocks until then; the test's own timeout bounds a child that
 * never starts). */
static inline bool
child_start(child *c, const char *seed, const char *key_hex)
{
    char *argv[] = { (char *)CHILD_NODE, (char *)seed, (char *)key_hex,
                     NULL };
    int out_fd;
    if (!tu_spawn_piped(CHILD_NODE, argv, &c->pid, &out_fd, &c->in_fd)) {
        return false;
    }
    c->out = fdopen(out_fd, "r");
    if (c->out == NULL) {
        close(out_fd);
        return false;
    }
    char line[256];
    return fgets(line, sizeof(line), c->out) != NULL &&
           sscanf(line, "READY %127s %64s", c->addr, c->id) == 2;
}

/* SIGKILL, reap, close the pipes. */
static inline void
child_kill(child *c)
{
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    fclose(c->out);
    close(c->in_fd);
}

#endif
