/* SPDX-License-Identifier: MIT */
/*
 * notifier: the command-line client, in the spirit of the nats CLI.
 *
 * One-shot commands (pub, rpc, members, subs, wait, stats) open a
 * publisher node (no listen address) whose smap is the --server list, so
 * the library routes through the first reachable server and fails over to
 * the next.  sub and reply open a full node that joins the cluster through
 * the same list, register, wait until they are part of it, and serve until
 * --count is reached or SIGINT/SIGTERM arrives; then they leave gracefully.
 *
 * Design notes
 * ------------
 * Every argument is checked before any node is opened: a usage error exits
 * 2 with one line on stderr and touches no network.  Every other failure
 * exits 1, also with exactly one line on stderr; the library's own log
 * lines are off unless --log-level asks for them, so they never add lines
 * to that contract.
 *
 * sub and reply block SIGINT, SIGTERM and SIGUSR1 before opening the node
 * (so every library thread inherits the mask) and take them with
 * sigwait() in main.  A handler that prints the N-th line wakes main with
 * pthread_kill(SIGUSR1); nothing calls the library from a signal handler.
 * Handlers print under one mutex, so exactly N lines come out even when
 * several workers deliver at once, and each line is flushed as written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <notifier/notifier.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "common.h"

#define DEFAULT_TIMEOUT_MS 5000
#define CLOSE_TIMEOUT_MS 5000
#define CLIENT_WORKERS 2
#define RETRY_SLEEP_MS 100
#define MAX_COUNT 4294967295u
#define MAX_MEMBERS 1000000u
#define MAX_POS 4

enum {
    CMD_KEYGEN,
    CMD_PUB,
    CMD_RPC,
    CMD_SUB,
    CMD_REPLY,
    CMD_MEMBERS,
    CMD_SUBS,
    CMD_WAIT,
    CMD_STATS,
    CMD_BENCH,
    CMD_HELP,
    CMD_COUNT
};
#define ON(c) (1u << (c))
#define ON_ALL 0xffffu

enum {
    O_SERVER,
    O_KEY_FILE,
    O_TIMEOUT,
    O_JSON,
    O_LOG_LEVEL,
    O_HELP,
    O_VERSION,
    O_SLICE,
    O_COUNT,
    O_LISTEN,
    O_ADVERTISE,
    O_ECHO,
    O_MEMBERS,
    O_CONVERGED,
    O_OUTPUT,
    O_PROMETHEUS,
    O_MSGS,
    O_SIZE,
    O_INFLIGHT,
    O_DURATION,
    O_SUBS,
    O_OBJECT,
    O_CMD,
    O_N
};

static const cli_opt options[] = {
    { "server", 's', true, O_SERVER },
    { "key-file", 'k', true, O_KEY_FILE },
    { "timeout", 0, true, O_TIMEOUT },
    { "json", 0, false, O_JSON },
    { "log-level", 0, true, O_LOG_LEVEL },
    { "help", 'h', false, O_HELP },
    { "version", 0, false, O_VERSION },
    { "slice", 0, true, O_SLICE },
    { "count", 0, true, O_COUNT },
    { "listen", 0, true, O_LISTEN },
    { "advertise", 0, true, O_ADVERTISE },
    { "echo", 0, false, O_ECHO },
    { "members", 0, true, O_MEMBERS },
    { "converged", 0, false, O_CONVERGED },
    { "output", 'o', true, O_OUTPUT },
    { "prometheus", 0, false, O_PROMETHEUS },
    { "msgs", 0, true, O_MSGS },
    { "size", 0, true, O_SIZE },
    { "inflight", 0, true, O_INFLIGHT },
    { "duration", 0, true, O_DURATION },
    { "subs", 0, true, O_SUBS },
    { "object", 0, true, O_OBJECT },
    { "cmd", 0, true, O_CMD },
};

/* The commands each option applies to. */
static const unsigned option_cmds[O_N] = {
    [O_SERVER] = ON_ALL,
    [O_KEY_FILE] = ON_ALL,
    [O_TIMEOUT] = ON_ALL,
    [O_JSON] = ON_ALL,
    [O_LOG_LEVEL] = ON_ALL,
    [O_HELP] = ON_ALL,
    [O_VERSION] = ON_ALL,
    [O_SLICE] = ON(CMD_SUB) | ON(CMD_REPLY),
    [O_COUNT] = ON(CMD_PUB) | ON(CMD_SUB) | ON(CMD_REPLY),
    [O_LISTEN] = ON(CMD_SUB) | ON(CMD_REPLY) | ON(CMD_BENCH),
    [O_ADVERTISE] = ON(CMD_SUB) | ON(CMD_REPLY),
    [O_ECHO] = ON(CMD_REPLY),
    [O_MEMBERS] = ON(CMD_WAIT),
    [O_CONVERGED] = ON(CMD_WAIT),
    [O_OUTPUT] = ON(CMD_KEYGEN),
    [O_PROMETHEUS] = ON(CMD_STATS),
    [O_MSGS] = ON(CMD_BENCH),
    [O_SIZE] = ON(CMD_BENCH),
    [O_INFLIGHT] = ON(CMD_BENCH),
    [O_DURATION] = ON(CMD_BENCH),
    [O_SUBS] = ON(CMD_BENCH),
    [O_OBJECT] = ON(CMD_BENCH),
    [O_CMD] = ON(CMD_BENCH),
};

/* Kinds of positional arguments, checked before anything else runs. */
typedef enum {
    A_OBJECT,
    A_ID,
    A_MATCH,
    A_CMD,
    A_PAYLOAD,
    A_TOPIC,
    A_MODE /* bench's mode, checked by bench_check */
} arg_kind;

typedef struct cli cli;

typedef struct {
    const char *name;
    int (*run)(cli *c);
    size_t minpos, maxpos;
    arg_kind kinds[MAX_POS];
    bool network; /* needs --server and a key */
    const char *synopsis;
    const char *summary;
    const char *help;
} command;

struct cli {
    const command *cmd;
    cli_strv servers;
    const char *key_file;
    unsigned char key[32];
    int timeout_ms;
    bool json;
    int log_level; /* 0: library log lines off */
    bool have_slice;
    double weight;
    bool have_count;
    uint64_t count;
    const char *listen;
    const char *advertise;
    bool echo;
    bool have_members;
    unsigned members;
    bool converged;
    const char *output;
    bool prometheus;
    bench_opts bench;
    const char *pos[MAX_POS];
    size_t npos;
    /* Parsed positionals. */
    const char *object;
    const char *cmdname;
    uint64_t id;
    nt_match match;
};

static int run_keygen(cli *c);
static int run_pub(cli *c);
static int run_rpc(cli *c);
static int run_sub(cli *c);
static int run_members(cli *c);
static int run_wait(cli *c);
static int run_bench_cmd(cli *c);
static int run_help(cli *c);

static const command commands[CMD_COUNT] = {
    [CMD_KEYGEN] = { "keygen", run_keygen, 0, 0, { 0 }, false,
                     "[-o FILE]", "print a new base64 cluster key",
                     "Prints a fresh random 32-byte cluster key as one line "
                     "of base64\n(44 characters).  --json prints "
                     "{\"key\":...}.\n\n"
                     "  -o, --output FILE  write it to FILE instead, created "
                     "with mode 0600;\n"
                     "                     an existing FILE is never "
                     "overwritten\n" },
    [CMD_PUB] = { "pub", run_pub, 3, 4,
                  { A_OBJECT, A_ID, A_CMD, A_PAYLOAD }, true,
                  "OBJECT ID CMD [PAYLOAD] [--count N]",
                  "publish one notification",
                  "Publishes through the server; prints nothing on success.  "
                  "PAYLOAD `-` or\nabsent: read all of stdin (at most 1 "
                  "MiB).  Exit 1 when nothing is\nsubscribed (no target) or "
                  "the server cannot be reached.\n\n"
                  "  --count N  publish it N times (default 1)\n" },
    [CMD_RPC] = { "rpc", run_rpc, 3, 4,
                  { A_OBJECT, A_ID, A_CMD, A_PAYLOAD }, true,
                  "OBJECT ID CMD [PAYLOAD]", "call and print each reply",
                  "Calls every matching registration (plus one slice) and "
                  "prints each reply\npayload on its own line, escaped as "
                  "in sink lines.  --json prints an array\nof {node, status, "
                  "data} (plus code and error for failed replies, and\n"
                  "data_base64 when a payload is not UTF-8).  --timeout "
                  "bounds the call.\nExit 1 when the call fails or any reply "
                  "is not ok.\n" },
    [CMD_SUB] = { "sub", run_sub, 3, 3, { A_OBJECT, A_MATCH, A_CMD }, true,
                  "OBJECT MATCH CMD [--slice W] [--count N] "
                  "[--listen HOST:PORT]",
                  "join as a node and print notifications",
                  "Joins the cluster as a node (waiting up to --timeout "
                  "until it sees the\nserver and the directory converged), "
                  "subscribes, and prints each\nnotification as a sink line "
                  "`OBJECT ID CMD PAYLOAD` (--json: one JSON\nobject per "
                  "line).  Exits 0 after N lines, or on SIGINT/SIGTERM, "
                  "after\nleaving the cluster.\n\n"
                  "  --slice W             a weighted slice instead of a full "
                  "subscription\n"
                  "  --count N             exit after N notifications (0 = "
                  "never; default)\n"
                  "  --listen HOST:PORT    this node's address (default "
                  "127.0.0.1:0)\n"
                  "  --advertise HOST:PORT the address peers dial, when not "
                  "the bound one\n" },
    [CMD_REPLY] = { "reply", run_sub, 3, 4,
                    { A_OBJECT, A_MATCH, A_CMD, A_PAYLOAD }, true,
                    "OBJECT MATCH CMD (--echo | RESPONSE) [--slice W] "
                    "[--count N] [--listen HOST:PORT]",
                    "join as a node and answer RPCs",
                    "Joins the cluster as a node and answers each call with "
                    "the request\npayload (--echo) or with RESPONSE (`-`: "
                    "read from stdin once).  Prints each\nrequest answered "
                    "as a sink line (--json: a JSON object).  Exits 0 after\n"
                    "answering N calls, or on SIGINT/SIGTERM, after leaving "
                    "the cluster.\n\n"
                    "  --echo                answer with the request payload\n"
                    "  --slice W             a weighted slice instead of a "
                    "full registration\n"
                    "  --count N             exit after N calls (0 = never; "
                    "default)\n"
                    "  --listen HOST:PORT    this node's address (default "
                    "127.0.0.1:0)\n"
                    "  --advertise HOST:PORT the address peers dial, when not "
                    "the bound one\n" },
    [CMD_MEMBERS] = { "members", run_members, 0, 0, { 0 }, true, "",
                      "members as the server sees them",
                      "Prints the members the server node sees: id, address, "
                      "state,\nincarnation and registrations (--json: one "
                      "JSON object).\n" },
    [CMD_SUBS] = { "subs", run_members, 0, 0, { 0 }, true, "",
                   "the cluster routing table as the server sees it",
                   "Prints every registration in the server node's routing "
                   "table: node,\nkind, object, cmd, match, full or slice and "
                   "weight (--json: one JSON\nobject).\n" },
    [CMD_WAIT] = { "wait", run_wait, 0, 0, { 0 }, true,
                   "[--members N] [--converged]",
                   "wait until N members are alive / converged",
                   "Exits 0 once the server sees at least N alive members "
                   "and (with\n--converged) every member holds the same "
                   "directory, or 1 at --timeout.\nWith neither option it "
                   "waits until the server answers (--members 1):\na "
                   "container health check.  An unreachable server is "
                   "retried until\nthe timeout.\n\n"
                   "  --members N  at least N alive members, the server "
                   "included\n"
                   "  --converged  every alive member holds the same "
                   "directory digest\n" },
    [CMD_STATS] = { "stats", run_members, 0, 0, { 0 }, true,
                    "[--prometheus]", "the server's counters",
                    "Prints the server node's counters: messages, bytes, "
                    "drops, auth\nfailures, queue depths, gossip rounds, "
                    "digest (--json: one JSON\nobject).\n\n"
                    "  --prometheus  the server's metrics in the Prometheus "
                    "text format,\n                what `notifierd "
                    "--metrics` serves over HTTP\n" },
    [CMD_BENCH] = { "bench", run_bench_cmd, 1, 1, { A_MODE }, true,
                    "(rpc | pub | serve) [--msgs N] [--size B] "
                    "[--inflight K] [--duration S] [--subs K] [--object O] "
                    "[--cmd C] [--listen HOST:PORT]",
                    "load generator: RPC and publish rates, latency",
                    "Generates traffic in the spirit of `nats bench`: a "
                    "progress line on stderr\nonce a second, the summary "
                    "on stdout (--json: one JSON object).\n\n"
                    "  rpc    call OBJECT/CMD (the id is the call's number) "
                    "--msgs times, K at\n"
                    "         once; report calls/s and the latency of the "
                    "calls that\n"
                    "         succeeded (p50, p90, p99, max, in "
                    "microseconds)\n"
                    "  pub    publish --msgs notifications to OBJECT/CMD as "
                    "fast as K threads\n"
                    "         can (through the server each one waits for its "
                    "acknowledgement;\n"
                    "         from a member node, --listen, none does); "
                    "report msgs/s and\n"
                    "         MB/s, and with --subs what arrived\n"
                    "  serve  join as a node that answers OBJECT/CMD calls "
                    "with the request\n"
                    "         payload and counts OBJECT/CMD notifications, "
                    "until --msgs\n"
                    "         messages, --duration or SIGINT/SIGTERM; then "
                    "print the counts\n\n"
                    "  --msgs N           messages to send (default 10000; "
                    "0 or absent with\n"
                    "                     --duration: no limit); serve: "
                    "exit after N (default\n"
                    "                     0 = never)\n"
                    "  --size B           payload bytes, 0 to 1048576 "
                    "(default 100)\n"
                    "  --inflight K       rpc: calls in flight, one thread "
                    "each; pub: publishing\n"
                    "                     threads (1 to 1024, default 1)\n"
                    "  --duration S       stop after S seconds (a decimal "
                    "number), or at --msgs\n"
                    "  --subs K           pub: K subscriber nodes in this "
                    "process (0 to 64,\n"
                    "                     default 0); what they miss is "
                    "reported as lost\n"
                    "  --object O         the object (default bench)\n"
                    "  --cmd C            the cmd (default echo: "
                    "`notifierd --echo bench` answers)\n"
                    "  --listen HOST:PORT rpc, pub: send from a member node "
                    "bound there (straight\n"
                    "                     to the targets) instead of "
                    "through the server; --subs\n"
                    "                     nodes bind its host; serve: the "
                    "node's address\n"
                    "                     (default 127.0.0.1:0)\n\n"
                    "--timeout bounds each call or publish and each wait "
                    "(joining, and\nstragglers after the last publish).  "
                    "Exit 1 when the run cannot start or\nany call or "
                    "publish failed (the summary is printed first).  "
                    "End to end\nagainst one notifierd: `notifier bench "
                    "serve` in one terminal, then\n`notifier bench rpc "
                    "--inflight 64` in another.\n" },
    [CMD_HELP] = { "help", run_help, 0, 1, { A_TOPIC }, false, "[COMMAND]",
                   "help on a command", "Prints help on COMMAND.\n" },
};

static const char global_options_help[] =
    "global options:\n"
    "  -s, --server HOST:PORT[,...]  server nodes, tried in order "
    "(NOTIFIER_SERVER)\n"
    "  -k, --key-file PATH           cluster key file "
    "(NOTIFIER_KEY_FILE, or\n"
    "                                NOTIFIER_KEY = the base64 key)\n"
    "  --timeout MS                  time limit (default 5000)\n"
    "  --json                        JSON output for scripts\n"
    "  --log-level LEVEL             show the library's log lines "
    "(error, warn,\n"
    "                                info, debug) on stderr; default "
    "none\n"
    "  -h, --help                    help (also per command)\n"
    "  --version                     print the version\n";

static void
print_global_help(void)
{
    printf("usage: notifier [options] COMMAND [ARGS] [options]\n\n"
           "commands:\n");
    for (int i = 0; i < CMD_COUNT; i++) {
        printf("  %-9s %s\n", commands[i].name, commands[i].summary);
    }
    printf("\nIDs are decimal, 0x hex or @text (= nt_id_hash(\"text\")).  "
           "MATCH is\nMASK:VALUE (decimal or hex) or all.\n\n%s\n"
           "Exit status: 0 success; 1 the operation failed (no target, "
           "timeout,\nremote error, unreachable); 2 bad usage.  Errors are "
           "one line on stderr.\n",
           global_options_help);
}

static void
print_command_help(const command *cmd)
{
    printf("usage: notifier %s %s\n\n%s\n%s", cmd->name, cmd->synopsis,
           cmd->help, global_options_help);
}

/* ---- Argument checks --------------------------------------------------- */

static int
usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_err(const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cli_err("%s", msg);
    return CLI_EXIT_USAGE;
}

static int
check_positionals(cli *c)
{
    const command *cmd = c->cmd;
    if (c->npos < cmd->minpos || c->npos > cmd->maxpos) {
        return usage_err("%s arguments (usage: notifier %s %s)",
                         c->npos < cmd->minpos ? "missing" : "too many",
                         cmd->name, cmd->synopsis);
    }
    char q[256];
    for (size_t i = 0; i < c->npos; i++) {
        const char *a = c->pos[i];
        switch (cmd->kinds[i]) {
        case A_OBJECT:
        case A_CMD:
            if (!cli_name_ok(a)) {
                return usage_err("bad %s %s: must be 1 to 255 bytes",
                                 cmd->kinds[i] == A_OBJECT ? "OBJECT" : "CMD",
                                 cli_quote(a, q, sizeof(q)));
            }
            if (cmd->kinds[i] == A_OBJECT) {
                c->object = a;
            } else {
                c->cmdname = a;
            }
            break;
        case A_ID:
            if (!cli_parse_id(a, &c->id)) {
                return usage_err("bad id %s: expected a 64-bit decimal or "
                                 "0x hex number, or @text",
                                 cli_quote(a, q, sizeof(q)));
            }
            break;
        case A_MATCH: {
            const char *why = cli_parse_match(a, &c->match);
            if (why != NULL) {
                return usage_err("bad match %s: %s",
                                 cli_quote(a, q, sizeof(q)), why);
            }
            break;
        }
        case A_PAYLOAD:
        case A_TOPIC:
        case A_MODE:
            break;
        }
    }
    return -1;
}

static int
apply_option(cli *c, int id, const char *name, const char *val)
{
    char q[256];
    uint64_t v;
    switch (id) {
    case O_SERVER: {
        char bad[256];
        int rv = cli_strv_add_addrs(&c->servers, val, true, bad,
                                    sizeof(bad));
        if (rv != NT_OK) {
            return usage_err("bad server address %s: %s", bad,
                             nt_strerror(rv));
        }
        break;
    }
    case O_KEY_FILE:
        c->key_file = val;
        break;
    case O_TIMEOUT:
        if (!cli_parse_uint(val, INT_MAX, &v)) {
            return usage_err("bad %s %s: expected milliseconds, 0 to %d",
                             name, cli_quote(val, q, sizeof(q)), INT_MAX);
        }
        c->timeout_ms = (int)v;
        break;
    case O_JSON:
        c->json = true;
        break;
    case O_LOG_LEVEL:
        if (!cli_parse_level(val, &c->log_level)) {
            return usage_err("bad %s %s: expected error, warn, info or "
                             "debug",
                             name, cli_quote(val, q, sizeof(q)));
        }
        break;
    case O_SLICE:
        if (!cli_parse_weight(val, &c->weight)) {
            return usage_err("bad %s weight %s: expected a finite number "
                             "> 0",
                             name, cli_quote(val, q, sizeof(q)));
        }
        c->have_slice = true;
        break;
    case O_COUNT:
        if (!cli_parse_uint(val, MAX_COUNT, &c->count)) {
            return usage_err("bad %s %s: expected a number, 0 to %u", name,
                             cli_quote(val, q, sizeof(q)), MAX_COUNT);
        }
        c->have_count = true;
        break;
    case O_LISTEN:
    case O_ADVERTISE:
        if (nt_addr_check(val) != NT_OK ||
            (id == O_ADVERTISE && cli_addr_port_zero(val))) {
            return usage_err("bad %s address %s: %s", name,
                             cli_quote(val, q, sizeof(q)),
                             nt_strerror(NT_EADDR));
        }
        *(id == O_LISTEN ? &c->listen : &c->advertise) = val;
        break;
    case O_ECHO:
        c->echo = true;
        break;
    case O_MEMBERS:
        if (!cli_parse_uint(val, MAX_MEMBERS, &v)) {
            return usage_err("bad %s %s: expected a number, 0 to %u", name,
                             cli_quote(val, q, sizeof(q)), MAX_MEMBERS);
        }
        c->members = (unsigned)v;
        c->have_members = true;
        break;
    case O_CONVERGED:
        c->converged = true;
        break;
    case O_OUTPUT:
        c->output = val;
        break;
    case O_PROMETHEUS:
        c->prometheus = true;
        break;
    case O_MSGS:
    case O_SIZE:
    case O_INFLIGHT:
    case O_DURATION:
    case O_SUBS:
    case O_OBJECT:
    case O_CMD:
        return bench_option(&c->bench, name + 2, name, val);
    default:
        break;
    }
    return -1;
}

/* An option's long name, for messages. */
static const char *
option_name(int id)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (options[i].id == id) {
            return options[i].lng;
        }
    }
    return "?";
}

static const command *
find_command(const char *name)
{
    for (int i = 0; i < CMD_COUNT; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* Parses the whole command line.  Returns -1 to run c->cmd, else the exit
 * status (0 after help or version). */
static int
parse(cli *c, int argc, char **argv)
{
    /* Options are applied once the command is known, since which ones
     * apply depends on it. */
    struct {
        int id;
        const char *val;
    } *seen = calloc((size_t)argc + 1, sizeof(*seen));
    if (seen == NULL) {
        cli_err("%s", nt_strerror(NT_ENOMEM));
        return CLI_EXIT_FAIL;
    }
    size_t nseen = 0;
    bool help = false, version = false;
    int status = -1;
    char q[256];
    cli_scan sc;
    cli_scan_init(&sc, argc, argv, 1);
    for (;;) {
        int id = cli_scan_next(&sc, options,
                               sizeof(options) / sizeof(options[0]));
        if (id == CLI_SCAN_END) {
            break;
        }
        if (id == CLI_SCAN_ERR) {
            status = CLI_EXIT_USAGE;
            goto out;
        }
        if (id == CLI_SCAN_POS) {
            if (c->cmd == NULL) {
                if ((c->cmd = find_command(sc.val)) == NULL) {
                    status = usage_err("unknown command %s (see notifier "
                                       "--help)",
                                       cli_quote(sc.val, q, sizeof(q)));
                    goto out;
                }
                cli_set_context(c->cmd->name);
            } else if (c->npos >= MAX_POS) {
                c->npos++; /* only counted: "too many arguments" */
            } else {
                c->pos[c->npos++] = sc.val;
            }
            continue;
        }
        if (id == O_HELP) {
            help = true;
        } else if (id == O_VERSION) {
            version = true;
        }
        seen[nseen].id = id;
        seen[nseen].val = sc.val;
        nseen++;
    }
    if (version) {
        printf("notifier %d.%d.%d\n", NT_VERSION_MAJOR, NT_VERSION_MINOR,
               NT_VERSION_PATCH);
        status = CLI_EXIT_OK;
        goto out;
    }
    if (help) {
        if (c->cmd == NULL) {
            print_global_help();
        } else {
            print_command_help(c->cmd);
        }
        status = CLI_EXIT_OK;
        goto out;
    }
    if (c->cmd == NULL) {
        status = usage_err("no command (see notifier --help)");
        goto out;
    }
    for (size_t i = 0; i < nseen; i++) {
        char name[40];
        snprintf(name, sizeof(name), "--%s", option_name(seen[i].id));
        if ((option_cmds[seen[i].id] & ON((int)(c->cmd - commands))) == 0) {
            status = usage_err("option %s does not apply to %s (see "
                               "notifier %s --help)",
                               name, c->cmd->name, c->cmd->name);
            goto out;
        }
        if ((status = apply_option(c, seen[i].id, name, seen[i].val)) >= 0) {
            goto out;
        }
    }
    if ((status = check_positionals(c)) >= 0) {
        goto out;
    }
    if (c->cmd == &commands[CMD_REPLY]) {
        if (c->echo == (c->npos == 4)) {
            status = usage_err(c->echo ? "give --echo or RESPONSE, not both"
                                       : "give --echo or a RESPONSE");
            goto out;
        }
    }
    if (c->cmd == &commands[CMD_BENCH] &&
        (status = bench_check(&c->bench, c->pos[0])) >= 0) {
        goto out;
    }
    if (c->cmd == &commands[CMD_PUB] && c->have_count && c->count == 0) {
        status = usage_err("bad --count 0: publish at least once");
        goto out;
    }
    if (!c->cmd->network) {
        goto out;
    }
    const char *env;
    if (c->servers.n == 0 && (env = cli_env("NOTIFIER_SERVER")) != NULL) {
        char bad[256];
        int rv = cli_strv_add_addrs(&c->servers, env, true, bad,
                                    sizeof(bad));
        if (rv != NT_OK) {
            status = usage_err("bad NOTIFIER_SERVER address %s: %s", bad,
                               nt_strerror(rv));
            goto out;
        }
    }
    if (c->servers.n == 0) {
        status = usage_err("no server: give -s/--server HOST:PORT or set "
                           "NOTIFIER_SERVER");
        goto out;
    }
    char err[512];
    int k = cli_key_find(c->key_file, c->key, err, sizeof(err));
    if (k < 0) {
        status = usage_err("%s", err);
    } else if (k == 0) {
        status = usage_err("no cluster key: give -k/--key-file or set "
                           "NOTIFIER_KEY/NOTIFIER_KEY_FILE");
    }
out:
    free(seen);
    return status;
}

/* ---- Nodes ------------------------------------------------------------ */

/* nt_config.log_fn: lines only when --log-level asked for them. */
static void
lib_log(void *arg, int level, const char *line)
{
    const cli *c = arg;
    if (c->log_level != 0 && level <= c->log_level) {
        cli_write(stderr, line, strlen(line));
    }
}

static void
config_init(cli *c, nt_config *cfg)
{
    nt_config_init(cfg);
    cfg->smap = (const char *const *)c->servers.v;
    /* From a file, every key in it is accepted (rotation); else the one
     * key of NOTIFIER_KEY. */
    const char *path = c->key_file ? c->key_file : cli_env("NOTIFIER_KEY_FILE");
    if (path != NULL) {
        cfg->key_file = path;
    } else {
        cfg->key = c->key;
    }
    cfg->workers = CLIENT_WORKERS;
    cfg->log_fn = lib_log;
    cfg->log_arg = c;
    cfg->log_level = c->log_level != 0 ? c->log_level : NT_LOG_ERROR;
    /* pub waits for the server's acknowledgement within --timeout. */
    cfg->publish_timeout_ms = c->timeout_ms > 0 ? (unsigned)c->timeout_ms
                                                : 0;
}

/* The servers as one string, for messages. */
static const char *
servers_str(const cli *c, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->servers.n && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
                         c->servers.v[i]);
        off += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

static int
open_client(cli *c, nt_node **n)
{
    nt_config cfg;
    config_init(c, &cfg);
    int rv = nt_node_open(n, &cfg);
    if (rv != NT_OK) {
        cli_err("opening a client node: %s", nt_strerror(rv));
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/* pub and rpc: reads the payload (argument 4, or stdin), then opens the
 * client node.  -1 when both worked, else the exit status (nothing left to
 * free). */
static int
open_with_payload(cli *c, cli_payload *p, nt_node **n)
{
    int rv = cli_payload_get(c->npos > 3 ? c->pos[3] : NULL, p);
    if (rv != NT_OK) {
        cli_err("reading the payload: %s", nt_strerror(rv));
        return CLI_EXIT_FAIL;
    }
    int status = open_client(c, n);
    if (status >= 0) {
        cli_payload_free(p);
    }
    return status;
}

/* "OBJECT ID CMD" as given, escaped as sink text, for one-line messages. */
static const char *
target_str(const cli *c, char *buf, size_t cap)
{
    const char *parts[3] = { c->object, c->pos[1], c->cmdname };
    cli_sb b;
    cli_sb_init(&b);
    for (int i = 0; i < 3; i++) {
        size_t n = strnlen(parts[i], 64);
        if (i > 0) {
            cli_sb_puts(&b, " ");
        }
        cli_sb_escape(&b, parts[i], n);
        if (parts[i][n] != '\0') {
            cli_sb_puts(&b, "...");
        }
    }
    snprintf(buf, cap, "%s", cli_sb_str(&b) != NULL ? b.s : "?");
    cli_sb_fini(&b);
    return buf;
}

/* ---- keygen ----------------------------------------------------------- */

static int
run_keygen(cli *c)
{
    char key[64];
    int rv = nt_key_generate(key, sizeof(key));
    if (rv != NT_OK) {
        cli_err("%s", nt_strerror(rv));
        return CLI_EXIT_FAIL;
    }
    int status = CLI_EXIT_OK;
    if (c->output != NULL) {
        int fd = open(c->output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      0600);
        size_t len = strlen(key);
        key[len] = '\n';
        if (fd < 0 || write(fd, key, len + 1) != (ssize_t)(len + 1) ||
            fsync(fd) != 0) {
            char q[256];
            cli_err("%s: %s", cli_quote(c->output, q, sizeof(q)),
                    strerror(errno));
            status = CLI_EXIT_FAIL;
        }
        if (fd >= 0 && close(fd) != 0 && status == CLI_EXIT_OK) {
            cli_err("%s: %s", c->output, strerror(errno));
            status = CLI_EXIT_FAIL;
        }
    } else if (c->json) {
        printf("{\"key\":\"%s\"}\n", key);
    } else {
        printf("%s\n", key);
    }
    explicit_bzero(key, sizeof(key));
    return status;
}

/* ---- pub ---------------------------------------------------------------- */

/* Publishes once, retrying NT_EAGAIN (a full queue) until the deadline. */
static int
publish_retry(cli *c, nt_node *n, const cli_payload *p, int64_t deadline)
{
    for (;;) {
        int rv = nt_publish(n, c->object, c->id, c->cmdname, p->data, p->len);
        if (rv != NT_EAGAIN || cli_now_ms() >= deadline) {
            return rv;
        }
        cli_sleep_ms(10);
    }
}

static int
run_pub(cli *c)
{
    cli_payload p;
    nt_node *n;
    int status = open_with_payload(c, &p, &n);
    if (status >= 0) {
        return status;
    }
    uint64_t count = c->have_count ? c->count : 1, done = 0;
    status = CLI_EXIT_OK;
    for (; done < count; done++) {
        int64_t deadline = cli_now_ms() + c->timeout_ms;
        int rv = publish_retry(c, n, &p, deadline);
        if (rv != NT_OK) {
            char t[800], after[64] = "";
            if (count > 1) {
                snprintf(after, sizeof(after), " (after %llu of %llu)",
                         (unsigned long long)done, (unsigned long long)count);
            }
            cli_err("%s: %s%s", target_str(c, t, sizeof(t)), nt_strerror(rv),
                    after);
            status = CLI_EXIT_FAIL;
            break;
        }
    }
    nt_node_close(n, CLOSE_TIMEOUT_MS);
    cli_payload_free(&p);
    return status;
}

/* ---- rpc ---------------------------------------------------------------- */

static const char *
status_name(int status)
{
    switch (status) {
    case NT_OK:
        return "ok";
    case NT_EREMOTE:
        return "remote_error";
    case NT_ETIMEDOUT:
        return "timeout";
    case NT_EPEERLOST:
        return "peer_lost";
    case NT_ECLOSED:
        return "closed";
    case NT_ENOTARGET:
        return "no_target";
    case NT_EAGAIN:
        return "again";
    case NT_EUNREACHABLE:
        return "unreachable";
    case NT_EMSGSIZE:
        return "too_big";
    case NT_EAUTH:
        return "auth";
    case NT_EPROTO:
        return "protocol";
    case NT_ENOMEM:
        return "no_memory";
    case NT_EINVAL:
        return "invalid";
    default:
        return "error";
    }
}

static void
rpc_json(cli_sb *b, const nt_results *res)
{
    cli_sb_puts(b, "[");
    for (size_t i = 0; i < res->count; i++) {
        const nt_result *r = &res->items[i];
        cli_sb_puts(b, i ? ",{\"node\":" : "{\"node\":");
        if (r->node != NULL) {
            cli_sb_json_str(b, r->node, strlen(r->node));
        } else {
            cli_sb_puts(b, "null");
        }
        cli_sb_printf(b, ",\"status\":\"%s\"", status_name(r->status));
        if (r->status == NT_EREMOTE) {
            cli_sb_printf(b, ",\"code\":%d", r->code);
        }
        if (r->status != NT_OK) {
            const char *e = nt_strerror(r->status);
            cli_sb_puts(b, ",\"error\":");
            cli_sb_json_str(b, e, strlen(e));
        }
        cli_sb_json_data(b, r->data != NULL ? r->data : "",
                         r->data != NULL ? r->len : 0);
        cli_sb_puts(b, "}");
    }
    cli_sb_puts(b, "]\n");
}

/* The one stderr line for failed replies. */
static void
rpc_report(cli *c, const nt_results *res, size_t failed)
{
    const nt_result *r = NULL;
    for (size_t i = 0; i < res->count && r == NULL; i++) {
        if (res->items[i].status != NT_OK) {
            r = &res->items[i];
        }
    }
    cli_sb b;
    cli_sb_init(&b);
    if (res->count > 1) {
        cli_sb_printf(&b, "%zu of %zu replies failed, first: ", failed,
                      res->count);
    }
    cli_sb_printf(&b, "%s", nt_strerror(r->status));
    if (r->status == NT_EREMOTE) {
        cli_sb_printf(&b, " (code %d: ", r->code);
        size_t len = r->data != NULL ? strnlen(r->data, r->len) : 0;
        cli_sb_escape(&b, r->data, len > 200 ? 200 : len);
        cli_sb_puts(&b, ")");
    }
    cli_sb_printf(&b, " from node %s", r->node != NULL ? r->node : "?");
    char t[800];
    cli_err("%s: %s", target_str(c, t, sizeof(t)),
            cli_sb_str(&b) != NULL ? b.s : "?");
    cli_sb_fini(&b);
}

static int
run_rpc(cli *c)
{
    cli_payload p;
    nt_node *n;
    int status = open_with_payload(c, &p, &n);
    if (status >= 0) {
        return status;
    }
    nt_results *res = NULL;
    char t[800];
    int rv = nt_rpc(n, c->object, c->id, c->cmdname, p.data, p.len,
                    c->timeout_ms, &res);
    cli_payload_free(&p);
    if (rv != NT_OK) {
        cli_err("%s: %s", target_str(c, t, sizeof(t)), nt_strerror(rv));
        nt_node_close(n, CLOSE_TIMEOUT_MS);
        return CLI_EXIT_FAIL;
    }
    size_t failed = 0;
    cli_sb b;
    cli_sb_init(&b);
    for (size_t i = 0; i < res->count; i++) {
        const nt_result *r = &res->items[i];
        if (r->status != NT_OK) {
            failed++;
        } else if (!c->json) {
            cli_sb_escape(&b, r->data, r->len);
            cli_sb_puts(&b, "\n");
        }
    }
    if (c->json) {
        rpc_json(&b, res);
    }
    status = CLI_EXIT_OK;
    if (cli_sb_str(&b) == NULL || cli_write(stdout, b.s, b.len) != 0) {
        cli_err("writing stdout: %s",
                b.oom ? nt_strerror(NT_ENOMEM) : strerror(errno));
        status = CLI_EXIT_FAIL;
    } else if (failed > 0 || res->count == 0) {
        if (res->count == 0) {
            cli_err("%s: %s", target_str(c, t, sizeof(t)),
                    nt_strerror(NT_ENOTARGET));
        } else {
            rpc_report(c, res, failed);
        }
        status = CLI_EXIT_FAIL;
    }
    cli_sb_fini(&b);
    nt_results_free(res);
    nt_node_close(n, CLOSE_TIMEOUT_MS);
    return status;
}

/* ---- members, subs, stats --------------------------------------------- */

static int
run_members(cli *c)
{
    nt_node *n;
    int status = open_client(c, &n);
    if (status >= 0) {
        return status;
    }
    char *out = NULL;
    int rv = nt_node_info(n, c->prometheus ? "metrics" : c->cmd->name,
                          c->json ? NT_INFO_JSON : NT_INFO_TEXT,
                          c->timeout_ms, &out);
    if (rv != NT_OK) {
        char s[512];
        cli_err("asking %s: %s", servers_str(c, s, sizeof(s)),
                nt_strerror(rv));
        status = CLI_EXIT_FAIL;
    } else {
        size_t len = strlen(out);
        status = CLI_EXIT_OK;
        if (cli_write(stdout, out, len) != 0 ||
            ((len == 0 || out[len - 1] != '\n') &&
             cli_write(stdout, "\n", 1) != 0)) {
            cli_err("writing stdout: %s", strerror(errno));
            status = CLI_EXIT_FAIL;
        }
        nt_free(out);
    }
    nt_node_close(n, CLOSE_TIMEOUT_MS);
    return status;
}

/* ---- wait --------------------------------------------------------------- */

/* Errors that retrying cannot fix. */
static bool
wait_fatal(int rv)
{
    return rv == NT_EINVAL || rv == NT_ENOMEM || rv == NT_ECLOSED ||
           rv == NT_ENOTSUP;
}

static int
run_wait(cli *c)
{
    unsigned members = c->have_members ? c->members
                                       : (c->converged ? 0 : 1);
    nt_node *n;
    int status = open_client(c, &n);
    if (status >= 0) {
        return status;
    }
    int64_t deadline = cli_now_ms() + c->timeout_ms;
    int rv = NT_OK;
    const char *what = "members";
    for (int phase = 0; phase < 2 && rv == NT_OK; phase++) {
        if ((phase == 0 && members == 0) || (phase == 1 && !c->converged)) {
            continue;
        }
        what = phase == 0 ? "members" : "convergence";
        for (;;) {
            int64_t left = deadline - cli_now_ms();
            int ms = left > 0 ? (int)left : 0;
            rv = phase == 0 ? nt_node_wait_members(n, members, ms)
                            : nt_node_wait_converged(n, ms);
            if (rv == NT_OK || wait_fatal(rv)) {
                break;
            }
            left = deadline - cli_now_ms();
            if (left <= 0) {
                break;
            }
            cli_sleep_ms(left < RETRY_SLEEP_MS ? (int)left : RETRY_SLEEP_MS);
        }
    }
    if (rv != NT_OK) {
        char s[512];
        if (what[0] == 'm') {
            cli_err("%u members via %s: %s", members,
                    servers_str(c, s, sizeof(s)), nt_strerror(rv));
        } else {
            cli_err("convergence via %s: %s", servers_str(c, s, sizeof(s)),
                    nt_strerror(rv));
        }
        status = CLI_EXIT_FAIL;
    } else {
        status = CLI_EXIT_OK;
    }
    nt_node_close(n, CLOSE_TIMEOUT_MS);
    return status;
}

/* ---- sub and reply ----------------------------------------------------- */

typedef struct {
    cli *c;
    pthread_t main;
    pthread_mutex_t mtx; /* guards lines, done, write_err and stdout order */
    uint64_t lines;
    bool done;
    int write_err;
    cli_payload response; /* reply without --echo */
} serving;

/* Prints m as one line unless --count lines are already out; wakes main
 * after the last one or a write error. */
static void
serving_print(serving *s, const nt_msg *m)
{
    cli *c = s->c;
    pthread_mutex_lock(&s->mtx);
    if (s->done || (c->count != 0 && s->lines >= c->count)) {
        pthread_mutex_unlock(&s->mtx);
        return;
    }
    cli_sb b;
    cli_sb_init(&b);
    if (c->json) {
        cli_sb_json_msg(&b, m);
    } else {
        cli_sb_sink_line(&b, m);
    }
    bool wake = false;
    if (cli_sb_str(&b) == NULL) {
        s->write_err = ENOMEM;
    } else if (cli_write(stdout, b.s, b.len) != 0) {
        s->write_err = errno != 0 ? errno : EIO;
    }
    cli_sb_fini(&b);
    s->lines++;
    if (s->write_err != 0 || (c->count != 0 && s->lines == c->count)) {
        s->done = true;
        wake = true;
    }
    pthread_mutex_unlock(&s->mtx);
    if (wake) {
        pthread_kill(s->main, SIGUSR1);
    }
}

static void
on_notify(void *dest, const nt_msg *m)
{
    serving_print(dest, m);
}

static void
on_request(void *dest, const nt_msg *m, nt_reply *r)
{
    serving *s = dest;
    /* Answer first: once the last line wakes main, it closes the node,
     * and an answer after that would not reach the caller. */
    int rv = s->c->echo
                 ? nt_reply_send(r, m->data, m->len)
                 : nt_reply_send(r, s->response.data, s->response.len);
    if (rv != NT_OK && rv != NT_EREPLIED) {
        nt_reply_error(r, rv, nt_strerror(rv));
    }
    serving_print(s, m);
}

static int
register_handler(cli *c, nt_node *n, serving *s)
{
    bool reply = c->cmd == &commands[CMD_REPLY];
    if (reply) {
        return c->have_slice ? nt_rpc_slice(n, c->object, c->match,
                                            c->cmdname, on_request, s,
                                            c->weight)
                             : nt_rpc_register(n, c->object, c->match,
                                               c->cmdname, on_request, s);
    }
    return c->have_slice ? nt_slice(n, c->object, c->match, c->cmdname,
                                    on_notify, s, c->weight)
                         : nt_subscribe(n, c->object, c->match, c->cmdname,
                                        on_notify, s);
}

/* Waits (with phase 0) until this node sees a second member, the server,
 * and then (phase 1) until the directory converged, both bounded by the
 * deadline; only the first is required.  Returns 0 when joined, the
 * signal that interrupted it, or -1 when the server never showed up. */
static int
join(cli *c, nt_node *n, const sigset_t *sigs, int *last)
{
    int64_t deadline = cli_now_ms() + c->timeout_ms;
    for (int phase = 0; phase < 2; phase++) {
        for (;;) {
            int64_t left = deadline - cli_now_ms();
            int ms = left > 250 ? 250 : (left > 0 ? (int)left : 0);
            int rv = phase == 0 ? nt_node_wait_members(n, 2, ms)
                                : nt_node_wait_converged(n, ms);
            *last = rv;
            if (rv == NT_OK) {
                break;
            }
            if (wait_fatal(rv) || deadline - cli_now_ms() <= 0) {
                if (phase == 0) {
                    return -1;
                }
                return 0; /* gossip will get there; serve meanwhile */
            }
            int sig = cli_signals_poll(sigs, 50);
            if (sig != 0) {
                return sig;
            }
        }
    }
    return 0;
}

static int
run_sub(cli *c)
{
    static serving s;
    s.c = c;
    s.main = pthread_self();
    pthread_mutex_init(&s.mtx, NULL);
    bool reply = c->cmd == &commands[CMD_REPLY];
    if (reply && !c->echo) {
        int rv = cli_payload_get(c->pos[3], &s.response);
        if (rv != NT_OK) {
            cli_err("reading the response: %s", nt_strerror(rv));
            return CLI_EXIT_FAIL;
        }
    }

    sigset_t sigs;
    cli_signals_block(&sigs);
    nt_config cfg;
    config_init(c, &cfg);
    cfg.listen = c->listen != NULL ? c->listen : "127.0.0.1:0";
    cfg.advertise = c->advertise;
    nt_node *n;
    char q[256], t[800], srv[512];
    int rv = nt_node_open(&n, &cfg);
    if (rv != NT_OK) {
        cli_err("listen %s: %s", cli_quote(cfg.listen, q, sizeof(q)),
                nt_strerror(rv));
        cli_payload_free(&s.response);
        return CLI_EXIT_FAIL;
    }
    int status = CLI_EXIT_OK;
    if ((rv = register_handler(c, n, &s)) != NT_OK) {
        cli_err("%s: %s", target_str(c, t, sizeof(t)), nt_strerror(rv));
        status = CLI_EXIT_FAIL;
        goto done;
    }
    int last = NT_OK;
    int sig = join(c, n, &sigs, &last);
    if (sig < 0) {
        cli_err("joining via %s: %s", servers_str(c, srv, sizeof(srv)),
                nt_strerror(last));
        status = CLI_EXIT_FAIL;
        goto done;
    }
    while (sig != SIGINT && sig != SIGTERM) {
        pthread_mutex_lock(&s.mtx);
        bool done = s.done;
        pthread_mutex_unlock(&s.mtx);
        if (done) {
            break;
        }
        if (sigwait(&sigs, &sig) != 0) {
            sig = 0;
        }
    }
done:
    nt_node_close(n, CLOSE_TIMEOUT_MS);
    if (s.write_err != 0) {
        cli_err("writing stdout: %s", strerror(s.write_err));
        status = CLI_EXIT_FAIL;
    }
    cli_payload_free(&s.response);
    pthread_mutex_destroy(&s.mtx);
    return status;
}

/* ---- bench (bench.c) ---------------------------------------------------- */

static int
run_bench_cmd(cli *c)
{
    nt_config cfg;
    config_init(c, &cfg);
    c->bench.listen = c->listen;
    return run_bench(&c->bench, &cfg, c->timeout_ms, c->json);
}

/* ---- help --------------------------------------------------------------- */

static int
run_help(cli *c)
{
    if (c->npos == 0) {
        print_global_help();
        return CLI_EXIT_OK;
    }
    const command *cmd = find_command(c->pos[0]);
    if (cmd == NULL) {
        char q[256];
        return usage_err("unknown command %s (see notifier --help)",
                         cli_quote(c->pos[0], q, sizeof(q)));
    }
    print_command_help(cmd);
    return CLI_EXIT_OK;
}

int
main(int argc, char **argv)
{
    cli_init("notifier");
    static cli c;
    c.timeout_ms = DEFAULT_TIMEOUT_MS;
    int status = parse(&c, argc, argv);
    if (status < 0) {
        status = c.cmd->run(&c);
    }
    if (fflush(stdout) != 0 && status == CLI_EXIT_OK) {
        cli_err("writing stdout: %s", strerror(errno));
        status = CLI_EXIT_FAIL;
    }
    cli_strv_free(&c.servers);
    explicit_bzero(c.key, sizeof(c.key));
    return status;
}
