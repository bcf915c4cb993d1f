/* SPDX-License-Identifier: MIT */
/*
 * Retries of nt_execute across the cluster: a call held by a service node
 * in another process that is then killed is retried and served by a
 * second node serving the same bounds; a call made by a node that has not
 * joined the cluster yet is retried until the service is routable; a call
 * with no target on a converged directory is not retried.
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../spawnutil.h"
#include "svcutil.h"

typedef struct {
    pid_t pid;
    int out_fd, in_fd;
    char addr[128], id[65];
} child;

/* Reads one line from fd, waiting at most timeout_ms for each byte. */
static bool
read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) != 1) {
            return false;
        }
        char ch;
        if (read(fd, &ch, 1) != 1) {
            return false;
        }
        if (ch == '\n') {
            break;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return true;
}

/* The child still running, killed by the suite's cleanup when a test
 * stopped early. */
static child *live_child;

static void
child_kill(child *c)
{
    live_child = NULL;
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    close(c->out_fd);
    close(c->in_fd);
}

static bool
child_start(child *c, const char *seed)
{
    char *argv[] = { (char *)SVC_CHILD, (char *)seed, su_keyhex, NULL };
    if (!tu_spawn_piped(SVC_CHILD, argv, &c->pid, &c->out_fd, &c->in_fd)) {
        return false;
    }
    char line[256];
    if (!read_line(c->out_fd, line, sizeof(line), 30000) ||
        sscanf(line, "READY %127s %64s", c->addr, c->id) != 2) {
        child_kill(c);
        return false;
    }
    live_child = c;
    return true;
}

/* The child's next line starts with word (within 30 s). */
static bool
child_expect(child *c, const char *word)
{
    char line[256];
    return read_line(c->out_fd, line, sizeof(line), 30000) &&
           strncmp(line, word, strlen(word)) == 0;
}

static int
cmd_b(void *arg, const nt_request *rq, nt_answer *a)
{
    (void)arg;
    (void)rq;
    return nt_answer_printf(a, "B");
}

/* Polls (with a deadline) until command on "rt" answers want from n. */
static bool
wait_answer(nt_node *n, const char *cmd, const char *want)
{
    uint64_t end = tu_now_ms() + 20000;
    tu_counter tick;
    tu_counter_init(&tick);
    bool ok = false;
    uint64_t id = 1;
    while (!ok && tu_now_ms() < end) {
        nt_exec_results *r = NULL;
        if (nt_execute(n, "rt", cmd, &id, 1, NULL, 0, 5000, 0, &r) == NT_OK) {
            ok = su_is(&r->items[0], want);
        }
        nt_exec_results_free(r);
        if (!ok) {
            tu_counter_wait(&tick, 1, 20); /* poll interval */
        }
    }
    tu_counter_fini(&tick);
    return ok;
}

typedef struct {
    nt_node *n;
    const char *cmd;
    int rv;
    nt_exec_results *r;
} exec_job;

static void *
exec_thread(void *arg)
{
    exec_job *j = arg;
    uint64_t id = 7;
    j->rv = nt_execute(j->n, "rt", j->cmd, &id, 1, NULL, 0, 60000, 30, &j->r);
    return NULL;
}

static void
test_retry_after_node_death(void)
{
    nt_node *v[2]; /* v[0] calls, v[1] takes over */
    su_open_cluster(v, 2);
    static child c; /* static: the suite cleanup may kill it */
    CU_ASSERT_FATAL(child_start(&c, nt_node_address(v[0])));
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(nt_node_wait_members(v[i], 3, 20000), NT_OK);
    }
    /* "Converged" may be judged before the child's registration was
     * heard of, so wait until it answers. */
    CU_ASSERT_FATAL(wait_answer(v[0], "who", "child"));

    /* Only the child serves "rt": the first attempt goes there and is
     * held by its "hold" command. */
    exec_job j = { v[0], "hold", -100, NULL };
    pthread_t t;
    pthread_create(&t, NULL, exec_thread, &j);
    CU_ASSERT_FATAL(child_expect(&c, "HELD"));

    /* A second node serves the same bounds, far heavier, so that the
     * retry lands there even while the dead child is still listed. */
    nt_service *s = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_service_open(&s, v[1], "rt", NT_MATCH_ALL, 1e6,
                                          2), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "hold", cmd_b, NULL), NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "who", cmd_b, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    su_converge(v, 2);
    CU_ASSERT_FATAL(wait_answer(v[0], "who", "B"));

    child_kill(&c);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL_FATAL(j.rv, NT_OK);
    nt_exec_result *it = &j.r->items[0];
    CU_ASSERT_EQUAL(it->status, NT_OK);
    CU_ASSERT(su_is(it, "B"));
    CU_ASSERT_STRING_EQUAL(it->node, nt_node_id(v[1]));
    CU_ASSERT(it->attempts >= 2);
    CU_ASSERT_EQUAL(it->id, 7);
    nt_exec_results_free(j.r);

    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    su_close_all(v, 2);
}

static void
test_retry_until_joined(void)
{
    nt_node *v[3] = { NULL, NULL, NULL };
    su_open_cluster(v, 2);
    nt_service *s = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_service_open(&s, v[1], "rt", NT_MATCH_ALL, 1, 2),
                          NT_OK);
    CU_ASSERT_EQUAL(nt_service_command(s, "hold", cmd_b, NULL), NT_OK);
    CU_ASSERT_EQUAL_FATAL(nt_service_start(s), NT_OK);
    su_converge(v, 2);

    /* A client node calls the moment it is open: it has met nobody yet
     * and its directory is empty.  "No target" is retried while it joins
     * and while its directory converges. */
    v[2] = su_open_member(nt_node_address(v[0]));
    exec_job j = { v[2], "hold", -100, NULL };
    exec_thread(&j);
    CU_ASSERT_EQUAL_FATAL(j.rv, NT_OK);
    CU_ASSERT(su_is(&j.r->items[0], "B"));
    CU_ASSERT_STRING_EQUAL(j.r->items[0].node, nt_node_id(v[1]));
    nt_exec_results_free(j.r);

    /* nt_execute_random reaches it too. */
    nt_exec_results *r = NULL;
    CU_ASSERT_EQUAL_FATAL(nt_execute_random(v[0], "rt", "ping", "r", 1, 10000,
                                            3, &r), NT_OK);
    CU_ASSERT(su_is(&r->items[0], "r"));
    CU_ASSERT_EQUAL(r->items[0].attempts, 1);
    nt_exec_results_free(r);

    /* Converged and nothing registered: final at once, whatever retry
     * (a million backoffs would not end within the test's timeout). */
    su_converge(v, 3);
    uint64_t id = 1;
    CU_ASSERT_EQUAL(nt_execute(v[0], "none", "x", &id, 1, NULL, 0, -1,
                               1000000, &r), NT_ENOTARGET);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(nt_service_drain(s, 5000), NT_OK);
    su_close_all(v, 3);
}

static int
setup(void)
{
    su_key_init();
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int
cleanup(void)
{
    if (live_child != NULL) {
        child_kill(live_child);
    }
    return 0;
}

int
main(void)
{
    static const nt_test tests[] = {
        NT_TEST(test_retry_after_node_death),
        NT_TEST(test_retry_until_joined),
        NT_TESTS_END,
    };
    return nt_run_suite("service_retry", setup, cleanup, tests);
}
