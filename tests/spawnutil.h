/* SPDX-License-Identifier: MIT */
/*
 * Starting a helper program with its stdin and stdout on pipes, for tests
 * that run nodes in processes of their own (to SIGKILL them).
 */
#ifndef NT_SPAWNUTIL_H
#define NT_SPAWNUTIL_H

#include <spawn.h>
#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

/* Spawns path with argv; *out_fd reads its stdout, *in_fd writes its
 * stdin.  False (and nothing left open) when it could not start. */
static inline bool
tu_spawn_piped(const char *path, char *const argv[], pid_t *pid,
               int *out_fd, int *in_fd)
{
    int outp[2], inp[2];
    if (pipe(outp) != 0) {
        return false;
    }
    if (pipe(inp) != 0) {
        close(outp[0]);
        close(outp[1]);
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    posix_spawn_file_actions_addclose(&fa, inp[1]);
    int rv = posix_spawn(pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(outp[1]);
    close(inp[0]);
    if (rv != 0) {
        close(outp[0]);
        close(inp[1]);
        return false;
    }
    *out_fd = outp[0];
    *in_fd = inp[1];
    return true;
}

#endif
