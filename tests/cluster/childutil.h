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
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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
    int outp[2], inp[2];
    if (pipe(outp) != 0 || pipe(inp) != 0) {
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    posix_spawn_file_actions_addclose(&fa, inp[1]);
    char *argv[] = { (char *)CHILD_NODE, (char *)seed, (char *)key_hex,
                     NULL };
    int rv = posix_spawn(&c->pid, CHILD_NODE, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(outp[1]);
    close(inp[0]);
    if (rv != 0) {
        return false;
    }
    c->in_fd = inp[1];
    c->out = fdopen(outp[0], "r");
    char line[256];
    return c->out != NULL && fgets(line, sizeof(line), c->out) != NULL &&
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
