/* SPDX-License-Identifier: MIT */
/*
 * notifierd: one notifier node as a daemon, configured by flags or the
 * matching environment variables (for containers), with two demo services
 * that can be switched on by flag: an echo RPC service and a notification
 * sink that prints what it receives on stdout as sink lines.
 *
 * Everything is validated before the node is opened, so a bad flag,
 * address or key exits with status 2 and one line on stderr before
 * anything binds.  SIGINT and SIGTERM are blocked in every thread and
 * taken with sigwait() in main, which then leaves the cluster gracefully
 * (nt_node_close) and exits 0; the library is never called from a signal
 * handler.  The library's log lines go to stderr through nt_config.log_fn;
 * the daemon's own lines use the same format (logfmt or JSON), and one of
 * them, "daemon ready", names the node id and the bound address once the
 * demo services are registered.
 */
#include <errno.h>
#include <notifier/notifier.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "metrics_http.h"
#include <nng/nng.h>

#define CLOSE_TIMEOUT_MS 5000
#define MAX_SERVICES 64
#define MAX_WORKERS 1024

typedef struct {
    int level;
    bool json;
} dlog;

typedef struct sink {
    char *object;
    char *cmd;
    const dlog *log;
    atomic_bool failed; /* stdout failed once: logged, then quiet */
} sink;

typedef struct {
    const char *listen;
    const char *advertise;
    cli_strv seeds;
    unsigned char key[32];
    unsigned workers;
    const char *echo[MAX_SERVICES];
    size_t necho;
    sink sinks[MAX_SERVICES];
    size_t nsinks;
    dlog log;
    bool print_address;
    const char *metrics;
    const char *key_path;       /* the key file, re-read on SIGHUP */
    unsigned char keys[8][32];  /* the keys it held at the last (re)load */
    size_t nkeys;
} daemon_conf;

enum {
    OPT_LISTEN,
    OPT_ADVERTISE,
    OPT_SEED,
    OPT_KEY_FILE,
    OPT_WORKERS,
    OPT_ECHO,
    OPT_SINK,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_PRINT_ADDRESS,
    OPT_METRICS,
    OPT_HELP,
    OPT_VERSION,
};

static const cli_opt options[] = {
    { "listen", 0, true, OPT_LISTEN },
    { "advertise", 0, true, OPT_ADVERTISE },
    { "seed", 0, true, OPT_SEED },
    { "key-file", 0, true, OPT_KEY_FILE },
    { "workers", 0, true, OPT_WORKERS },
    { "echo", 0, true, OPT_ECHO },
    { "sink", 0, true, OPT_SINK },
    { "log-level", 0, true, OPT_LOG_LEVEL },
    { "log-format", 0, true, OPT_LOG_FORMAT },
    { "print-address", 0, false, OPT_PRINT_ADDRESS },
    { "metrics", 0, true, OPT_METRICS },
    { "help", 'h', false, OPT_HELP },
    { "version", 0, false, OPT_VERSION },
};

static const char usage_text[] =
    "usage: notifierd --listen HOST:PORT [options]\n"
    "\n"
    "Runs one notifier node until SIGINT or SIGTERM, then leaves the\n"
    "cluster gracefully and exits 0.  SIGHUP re-reads the key file: every\n"
    "key in it (one per line) is accepted, the first is used for sending.\n"
    "\n"
    "options (flags win over the environment variables):\n"
    "  --listen HOST:PORT     bind address, port 0 = ephemeral "
    "(NOTIFIER_LISTEN; required)\n"
    "  --advertise HOST:PORT  address given to peers (NOTIFIER_ADVERTISE)\n"
    "  --seed HOST:PORT       a seed of the smap, repeatable\n"
    "                         (NOTIFIER_SEEDS, a comma list)\n"
    "  --key-file PATH        cluster key file from `notifier keygen` (more\n"
    "                         lines = more accepted keys, for rotation)\n"
    "                         (NOTIFIER_KEY_FILE, or NOTIFIER_KEY = the "
    "base64 key)\n"
    "  --workers N            worker threads, 0 = one per CPU "
    "(NOTIFIER_WORKERS)\n"
    "  --echo OBJECT          serve RPC OBJECT, any id, cmd echo: reply = "
    "request\n"
    "                         payload (repeatable)\n"
    "  --sink OBJECT/CMD      subscribe, any id, and print each "
    "notification on\n"
    "                         stdout as `OBJECT ID CMD PAYLOAD` "
    "(repeatable)\n"
    "  --log-level LEVEL      error, warn, info (default) or debug\n"
    "                         (NOTIFIER_LOG_LEVEL)\n"
    "  --log-format FORMAT    logfmt (default) or json "
    "(NOTIFIER_LOG_FORMAT)\n"
    "  --print-address        print the bound HOST:PORT alone as the first "
    "line\n"
    "                         of stdout\n"
    "  --metrics HOST:PORT    serve Prometheus metrics at "
    "http://HOST:PORT/metrics\n"
    "                         (NOTIFIER_METRICS; port 0 = ephemeral, logged)"
    "\n"
    "  -h, --help             this help\n"
    "  --version              print the version\n"
    "\n"
    "Exit status: 0 after a clean shutdown, 1 when the node fails, 2 on bad\n"
    "usage (flag, address or key).\n";

/* ---- Logging --------------------------------------------------------- */

static const char *
level_name(int level)
{
    switch (level) {
    case NT_LOG_ERROR:
        return "error";
    case NT_LOG_WARN:
        return "warn";
    case NT_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* logfmt value: bare when safe, else quoted with escapes (as the
 * library's own lines). */
static void
logfmt_val(cli_sb *b, const char *v)
{
    bool bare = v[0] != '\0';
    for (const char *p = v; *p != '\0' && bare; p++) {
        bare = *p > ' ' && *p != '"' && *p != '=' && *p != '\\' &&
               (unsigned char)*p < 0x7f;
    }
    if (bare) {
        cli_sb_puts(b, v);
        return;
    }
    cli_sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0';
         p++) {
        if (*p == '"' || *p == '\\') {
            cli_sb_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            cli_sb_puts(b, "\\n");
        } else if (*p < 0x20 || *p == 0x7f) {
            cli_sb_printf(b, "\\x%02x", *p);
        } else {
            cli_sb_add(b, p, 1);
        }
    }
    cli_sb_puts(b, "\"");
}

/* One log line: msg and NULL-terminated key/value pairs. */
static void
dlog_line(const dlog *lg, int level, const char *msg, const char *const *kv)
{
    if (level > lg->level) {
        return;
    }
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);

    cli_sb b;
    cli_sb_init(&b);
    if (lg->json) {
        cli_sb_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
                      level_name(level));
        cli_sb_json_str(&b, msg, strlen(msg));
        for (size_t i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
            cli_sb_puts(&b, ",");
            cli_sb_json_str(&b, kv[i], strlen(kv[i]));
            cli_sb_puts(&b, ":");
            cli_sb_json_str(&b, kv[i + 1], strlen(kv[i + 1]));
        }
        cli_sb_puts(&b, "}\n");
    } else {
        cli_sb_printf(&b, "ts=%s level=%s msg=", ts, level_name(level));
        logfmt_val(&b, msg);
        for (size_t i = 0; kv[i] != NULL && kv[i + 1] != NULL; i += 2) {
            cli_sb_printf(&b, " %s=", kv[i]);
            logfmt_val(&b, kv[i + 1]);
        }
        cli_sb_puts(&b, "\n");
    }
    const char *line = cli_sb_str(&b);
    if (line != NULL) {
        cli_write(stderr, line, b.len);
    }
    cli_sb_fini(&b);
}

/* nt_config.log_fn: the library already filtered by level and formatted
 * the line (newline included). */
static void
lib_log(void *arg, int level, const char *line)
{
    (void)arg;
    (void)level;
    cli_write(stderr, line, strlen(line));
}

/* ---- Demo services ---------------------------------------------------- */

static void
on_echo(void *dest, const nt_msg *m, nt_reply *r)
{
    (void)dest;
    int rv = nt_reply_send(r, m->data, m->len);
    if (rv != NT_OK && rv != NT_EREPLIED) {
        nt_reply_error(r, rv, nt_strerror(rv));
    }
}

static void
on_sink(void *dest, const nt_msg *m)
{
    sink *s = dest;
    cli_sb b;
    cli_sb_init(&b);
    cli_sb_sink_line(&b, m);
    const char *line = cli_sb_str(&b);
    int err = line == NULL ? ENOMEM : 0;
    if (line != NULL && cli_write(stdout, line, b.len) != 0) {
        err = errno;
    }
    cli_sb_fini(&b);
    if (err != 0 && !atomic_exchange(&s->failed, true)) {
        const char *kv[] = { "object", s->object, "cmd", s->cmd,
                             "error", strerror(err), NULL };
        dlog_line(s->log, NT_LOG_WARN, "sink output failed", kv);
    }
}

/* ---- Configuration ---------------------------------------------------- */

static void
conf_free(daemon_conf *c)
{
    cli_strv_free(&c->seeds);
    for (size_t i = 0; i < c->nsinks; i++) {
        free(c->sinks[i].object);
        free(c->sinks[i].cmd);
    }
    explicit_bzero(c->key, sizeof(c->key));
}

/* A --listen or --advertise value (from a flag or the environment). */
static bool
check_addr(const char *what, const char *addr, bool dial)
{
    char q[256];
    if (nt_addr_check(addr) != NT_OK) {
        cli_err("%s %s: %s", what, cli_quote(addr, q, sizeof(q)),
                nt_strerror(NT_EADDR));
        return false;
    }
    if (dial && cli_addr_port_zero(addr)) {
        cli_err("%s %s: peers cannot dial port 0", what,
                cli_quote(addr, q, sizeof(q)));
        return false;
    }
    return true;
}

static bool
add_seeds(daemon_conf *c, const char *what, const char *list)
{
    char bad[256];
    int rv = cli_strv_add_addrs(&c->seeds, list, true, bad, sizeof(bad));
    if (rv == NT_EADDR) {
        cli_err("%s %s: %s", what, bad, nt_strerror(rv));
        return false;
    }
    if (rv != NT_OK) {
        cli_err("%s: %s", what, nt_strerror(rv));
        return false;
    }
    return true;
}

static bool
add_echo(daemon_conf *c, const char *object)
{
    char q[256];
    if (!cli_name_ok(object)) {
        cli_err("--echo %s: OBJECT must be 1 to 255 bytes",
                cli_quote(object, q, sizeof(q)));
        return false;
    }
    for (size_t i = 0; i < c->necho; i++) {
        if (strcmp(c->echo[i], object) == 0) {
            cli_err("--echo %s given twice", cli_quote(object, q, sizeof(q)));
            return false;
        }
    }
    if (c->necho == MAX_SERVICES) {
        cli_err("too many --echo (at most %d)", MAX_SERVICES);
        return false;
    }
    c->echo[c->necho++] = object;
    return true;
}

/* OBJECT/CMD, split at the last '/' (a cmd rarely holds one; an object
 * may, e.g. "orders/eu"). */
static bool
add_sink(daemon_conf *c, const char *spec)
{
    char q[256];
    const char *slash = strrchr(spec, '/');
    if (slash == NULL || slash == spec || slash[1] == '\0' ||
        (size_t)(slash - spec) > 255 || !cli_name_ok(slash + 1)) {
        cli_err("--sink %s: expected OBJECT/CMD (each 1 to 255 bytes)",
                cli_quote(spec, q, sizeof(q)));
        return false;
    }
    size_t olen = (size_t)(slash - spec);
    for (size_t i = 0; i < c->nsinks; i++) {
        if (strlen(c->sinks[i].object) == olen &&
            memcmp(c->sinks[i].object, spec, olen) == 0 &&
            strcmp(c->sinks[i].cmd, slash + 1) == 0) {
            cli_err("--sink %s given twice", cli_quote(spec, q, sizeof(q)));
            return false;
        }
    }
    if (c->nsinks == MAX_SERVICES) {
        cli_err("too many --sink (at most %d)", MAX_SERVICES);
        return false;
    }
    sink *s = &c->sinks[c->nsinks];
    s->object = strndup(spec, olen);
    s->cmd = strdup(slash + 1);
    s->log = &c->log;
    atomic_init(&s->failed, false);
    c->nsinks++;
    if (s->object == NULL || s->cmd == NULL) {
        cli_err("--sink: %s", nt_strerror(NT_ENOMEM));
        return false;
    }
    return true;
}

static bool
set_workers(daemon_conf *c, const char *what, const char *v)
{
    uint64_t w;
    if (!cli_parse_uint(v, MAX_WORKERS, &w)) {
        char q[256];
        cli_err("%s %s: expected a number from 0 to %d", what,
                cli_quote(v, q, sizeof(q)), MAX_WORKERS);
        return false;
    }
    c->workers = (unsigned)w;
    return true;
}

static bool
set_level(daemon_conf *c, const char *what, const char *v)
{
    if (!cli_parse_level(v, &c->log.level)) {
        char q[256];
        cli_err("%s %s: expected error, warn, info or debug", what,
                cli_quote(v, q, sizeof(q)));
        return false;
    }
    return true;
}

static bool
set_format(daemon_conf *c, const char *what, const char *v)
{
    if (strcmp(v, "logfmt") == 0 || strcmp(v, "json") == 0) {
        c->log.json = strcmp(v, "json") == 0;
        return true;
    }
    char q[256];
    cli_err("%s %s: expected logfmt or json", what,
            cli_quote(v, q, sizeof(q)));
    return false;
}

/* Parses flags, then fills what they left from the environment.  Returns
 * -1 to go on, or the exit status (0 after --help/--version, 2 on error). */
static int
conf_parse(daemon_conf *c, int argc, char **argv)
{
    const char *key_file = NULL, *workers = NULL, *level = NULL;
    const char *format = NULL;
    bool seeds_given = false;
    cli_scan sc;
    cli_scan_init(&sc, argc, argv, 1);
    c->log.level = NT_LOG_INFO;
    for (;;) {
        int id = cli_scan_next(&sc, options,
                               sizeof(options) / sizeof(options[0]));
        if (id == CLI_SCAN_END) {
            break;
        }
        char q[256];
        switch (id) {
        case CLI_SCAN_ERR:
            return CLI_EXIT_USAGE;
        case CLI_SCAN_POS:
            cli_err("unexpected argument %s (see --help)",
                    cli_quote(sc.val, q, sizeof(q)));
            return CLI_EXIT_USAGE;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return CLI_EXIT_OK;
        case OPT_VERSION:
            printf("notifierd %d.%d.%d\n", NT_VERSION_MAJOR,
                   NT_VERSION_MINOR, NT_VERSION_PATCH);
            return CLI_EXIT_OK;
        case OPT_LISTEN:
            c->listen = sc.val;
            break;
        case OPT_ADVERTISE:
            c->advertise = sc.val;
            break;
        case OPT_SEED:
            if (!add_seeds(c, "--seed", sc.val)) {
                return CLI_EXIT_USAGE;
            }
            seeds_given = true;
            break;
        case OPT_KEY_FILE:
            key_file = sc.val;
            break;
        case OPT_WORKERS:
            workers = sc.val;
            break;
        case OPT_ECHO:
            if (!add_echo(c, sc.val)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_SINK:
            if (!add_sink(c, sc.val)) {
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_LOG_LEVEL:
            level = sc.val;
            break;
        case OPT_LOG_FORMAT:
            format = sc.val;
            break;
        case OPT_PRINT_ADDRESS:
            c->print_address = true;
            break;
        case OPT_METRICS:
            c->metrics = sc.val;
            break;
        default:
            return CLI_EXIT_USAGE;
        }
    }

    /* Flags win over the environment, variable by variable. */
    const char *lwhat = "--listen", *awhat = "--advertise";
    if (c->listen == NULL && (c->listen = cli_env("NOTIFIER_LISTEN"))) {
        lwhat = "NOTIFIER_LISTEN";
    }
    if (c->advertise == NULL &&
        (c->advertise = cli_env("NOTIFIER_ADVERTISE"))) {
        awhat = "NOTIFIER_ADVERTISE";
    }
    if (c->listen == NULL) {
        cli_err("no listen address: give --listen or set NOTIFIER_LISTEN");
        return CLI_EXIT_USAGE;
    }
    if (!check_addr(lwhat, c->listen, false) ||
        (c->advertise != NULL && !check_addr(awhat, c->advertise, true))) {
        return CLI_EXIT_USAGE;
    }
    const char *mwhat = "--metrics";
    if (c->metrics == NULL && (c->metrics = cli_env("NOTIFIER_METRICS"))) {
        mwhat = "NOTIFIER_METRICS";
    }
    if (c->metrics != NULL && !check_addr(mwhat, c->metrics, false)) {
        return CLI_EXIT_USAGE;
    }
    const char *env;
    if (!seeds_given && (env = cli_env("NOTIFIER_SEEDS")) != NULL &&
        !add_seeds(c, "NOTIFIER_SEEDS", env)) {
        return CLI_EXIT_USAGE;
    }
    if ((workers != NULL && !set_workers(c, "--workers", workers)) ||
        (workers == NULL && (env = cli_env("NOTIFIER_WORKERS")) != NULL &&
         !set_workers(c, "NOTIFIER_WORKERS", env))) {
        return CLI_EXIT_USAGE;
    }
    if ((level != NULL && !set_level(c, "--log-level", level)) ||
        (level == NULL && (env = cli_env("NOTIFIER_LOG_LEVEL")) != NULL &&
         !set_level(c, "NOTIFIER_LOG_LEVEL", env))) {
        return CLI_EXIT_USAGE;
    }
    if ((format != NULL && !set_format(c, "--log-format", format)) ||
        (format == NULL && (env = cli_env("NOTIFIER_LOG_FORMAT")) != NULL &&
         !set_format(c, "NOTIFIER_LOG_FORMAT", env))) {
        return CLI_EXIT_USAGE;
    }
    char err[512];
    c->key_path = key_file != NULL ? key_file : cli_env("NOTIFIER_KEY_FILE");
    int k = cli_key_find(key_file, c->key, err, sizeof(err));
    if (k < 0) {
        cli_err("%s", err);
        return CLI_EXIT_USAGE;
    }
    if (k == 0) {
        cli_err("no cluster key: give --key-file or set "
                "NOTIFIER_KEY/NOTIFIER_KEY_FILE");
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* ---- Main ------------------------------------------------------------- */

static int
serve(daemon_conf *c, nt_node *n)
{
    char q[256];
    for (size_t i = 0; i < c->necho; i++) {
        int rv = nt_rpc_register(n, c->echo[i], NT_MATCH_ALL, "echo",
                                 on_echo, &c->echo[i]);
        if (rv != NT_OK) {
            cli_err("--echo %s: %s", cli_quote(c->echo[i], q, sizeof(q)),
                    nt_strerror(rv));
            return rv;
        }
    }
    for (size_t i = 0; i < c->nsinks; i++) {
        sink *s = &c->sinks[i];
        int rv = nt_subscribe(n, s->object, NT_MATCH_ALL, s->cmd, on_sink, s);
        if (rv != NT_OK) {
            cli_err("--sink %s/%s: %s", cli_quote(s->object, q, sizeof(q)),
                    s->cmd, nt_strerror(rv));
            return rv;
        }
    }
    return NT_OK;
}

static bool
has_key(unsigned char (*keys)[32], size_t n, const unsigned char *k)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(keys[i], k, 32) == 0) {
            return true;
        }
    }
    return false;
}

/* SIGHUP: re-reads the key file.  Every key in it is installed (accepted),
 * the first becomes the one used for sending, and keys no longer in it
 * are removed: rotation without a restart (see SECURITY.md). */
static void
reload_keys(daemon_conf *c, nt_node *n)
{
    if (c->key_path == NULL) {
        const char *kv[] = { "reason", "the key did not come from a file",
                             NULL };
        dlog_line(&c->log, NT_LOG_WARN, "SIGHUP: no key file to reload", kv);
        return;
    }
    unsigned char keys[8][32];
    size_t nk = 0;
    int rv = nt_key_file_load(c->key_path, keys, 8, &nk);
    for (size_t i = 0; rv == NT_OK && i < nk; i++) {
        rv = nt_node_key_install(n, keys[i]);
    }
    if (rv == NT_OK) {
        rv = nt_node_key_use(n, keys[0]);
    }
    if (rv != NT_OK) {
        const char *kv[] = { "file", c->key_path, "error", nt_strerror(rv),
                             NULL };
        dlog_line(&c->log, NT_LOG_ERROR,
                  "SIGHUP: key reload failed; keys unchanged", kv);
        explicit_bzero(keys, sizeof(keys));
        return;
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        if (!has_key(keys, nk, c->keys[i])) {
            nt_node_key_remove(n, c->keys[i]);
        }
    }
    memcpy(c->keys, keys, sizeof(keys));
    c->nkeys = nk;
    explicit_bzero(keys, sizeof(keys));
    char count[16];
    snprintf(count, sizeof(count), "%zu", nk);
    const char *kv[] = { "file", c->key_path, "keys", count, NULL };
    dlog_line(&c->log, NT_LOG_INFO, "keys reloaded", kv);
}

static char *
join_seeds(const cli_strv *seeds)
{
    cli_sb b;
    cli_sb_init(&b);
    for (size_t i = 0; i < seeds->n; i++) {
        cli_sb_printf(&b, "%s%s", i ? "," : "", seeds->v[i]);
    }
    char *s = strdup(cli_sb_str(&b) != NULL ? b.s : "");
    cli_sb_fini(&b);
    return s;
}

int
main(int argc, char **argv)
{
    cli_init("notifierd");
    static daemon_conf c;
    int status = conf_parse(&c, argc, argv);
    if (status >= 0) {
        conf_free(&c);
        return status;
    }

    /* Before the node starts any thread, so that they all inherit it. */
    sigset_t sigs;
    cli_signals_block(&sigs);

    nt_config cfg;
    nt_config_init(&cfg);
    cfg.listen = c.listen;
    cfg.advertise = c.advertise;
    cfg.smap = (const char *const *)c.seeds.v;
    if (c.key_path != NULL) {
        /* Every key of the file is accepted; the first is used. */
        cfg.key_file = c.key_path;
        if (nt_key_file_load(c.key_path, c.keys, 8, &c.nkeys) != NT_OK) {
            c.nkeys = 0;
        }
    } else {
        cfg.key = c.key;
    }
    cfg.workers = c.workers;
    cfg.log_fn = lib_log;
    cfg.log_level = c.log.level;
    cfg.log_json = c.log.json;

    nt_node *n = NULL;
    char q[256];
    int rv = nt_node_open(&n, &cfg);
    explicit_bzero(c.key, sizeof(c.key));
    if (rv != NT_OK) {
        explicit_bzero(c.keys, sizeof(c.keys));
        cli_err("listen %s: %s", cli_quote(c.listen, q, sizeof(q)),
                nt_strerror(rv));
        conf_free(&c);
        return CLI_EXIT_FAIL;
    }
    const char *addr = nt_node_address(n);
    if (c.print_address) {
        /* First, so that no sink line can come before it. */
        printf("%s\n", addr);
        fflush(stdout);
    }
    if (serve(&c, n) != NT_OK) {
        nt_node_close(n, CLOSE_TIMEOUT_MS);
        conf_free(&c);
        return CLI_EXIT_FAIL;
    }
    metrics_http *mh = NULL;
    if (c.metrics != NULL) {
        char bound[300];
        int mrv = metrics_http_start(&mh, n, c.metrics, bound, sizeof(bound));
        if (mrv != 0) {
            cli_err("--metrics %s: %s", cli_quote(c.metrics, q, sizeof(q)),
                    nng_strerror(mrv));
            nt_node_close(n, CLOSE_TIMEOUT_MS);
            conf_free(&c);
            return CLI_EXIT_FAIL;
        }
        const char *kvm[] = { "address", bound, "path", "/metrics", NULL };
        dlog_line(&c.log, NT_LOG_INFO, "metrics listening", kvm);
    }
    char *seeds = join_seeds(&c.seeds);
    const char *kv[] = { "id", nt_node_id(n), "address", addr, "seeds",
                         seeds != NULL ? seeds : "", NULL };
    dlog_line(&c.log, NT_LOG_INFO, "daemon ready", kv);
    free(seeds);

    int sig = 0;
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    for (;;) {
        if (sigwait(&sigs, &sig) != 0) {
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
        if (sig == SIGHUP) {
            reload_keys(&c, n);
        }
    }
    const char *kv2[] = { "id", nt_node_id(n), "signal",
                          sig == SIGINT ? "SIGINT" : "SIGTERM", NULL };
    dlog_line(&c.log, NT_LOG_INFO, "leaving the cluster", kv2);
    metrics_http_stop(mh);
    rv = nt_node_close(n, CLOSE_TIMEOUT_MS);
    explicit_bzero(c.keys, sizeof(c.keys));
    const char *kv3[] = { "result", nt_strerror(rv), NULL };
    dlog_line(&c.log, rv == NT_OK ? NT_LOG_INFO : NT_LOG_ERROR,
              "node stopped", kv3);
    conf_free(&c);
    return rv == NT_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
