/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the programs (notifierd and the notifier CLI): strict
 * parsing of ids, matches, numbers and address lists, cluster key lookup
 * (flag, then environment), payloads from arguments or stdin, the sink line
 * and JSON renderings of messages, an option scanner and signal set-up.
 *
 * Everything here sits on the public API only (<notifier/notifier.h>), like
 * any other program linking libnotifier.  Nothing here is thread-safe unless
 * it says so; the output helpers (cli_write) are, because handlers run on
 * the node's worker threads.
 */
#ifndef NT_CLI_COMMON_H
#define NT_CLI_COMMON_H

#include <notifier/notifier.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses shared by both programs (INTERFACES.md). */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* The most a payload read from stdin may hold: the library's default
 * max_payload (1 MiB).  More is refused with NT_EMSGSIZE. */
#define CLI_PAYLOAD_MAX (1u << 20)

/* Sets the program name used as the prefix of cli_err() lines. */
void cli_init(const char *prog);

/* Sets (or, with NULL, clears) a context, such as the CLI command, that
 * cli_err() puts after the program name: "prog: context: message". */
void cli_set_context(const char *context);

/* Writes "prog: message\n" to stderr as one write.  Every failure of the
 * programs goes through here, so each prints exactly one line. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* s made safe to quote in a one-line message: in single quotes, escaped as
 * sink text (cli_sb_escape) and cut to 48 bytes of input.  Returns buf. */
const char *cli_quote(const char *s, char *buf, size_t cap);

/* An environment variable, or NULL when it is unset or empty (an empty
 * variable counts as unset, as compose files often leave them so). */
const char *cli_env(const char *name);

/* ---- Strict parsing ------------------------------------------------- */

/* An unsigned 64-bit number: decimal digits, or 0x/0X followed by 1 to 16
 * hex digits.  No sign, no spaces, no overflow. */
bool cli_parse_u64(const char *s, uint64_t *out);

/* An id: as cli_parse_u64, or "@text" = nt_id_hash("text") (text not
 * empty). */
bool cli_parse_id(const char *s, uint64_t *out);

/* A match: "all", or "MASK:VALUE" with each part as cli_parse_u64.  Returns
 * NULL on success, else a static reason for the error message. */
const char *cli_parse_match(const char *s, nt_match *out);

/* A decimal number in [0, max]. */
bool cli_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* A slice weight: a finite decimal number > 0 (no inf, nan or hex). */
bool cli_parse_weight(const char *s, double *out);

/* A log level name (error, warn, info, debug) to NT_LOG_*. */
bool cli_parse_level(const char *s, int *level);

/* An object or cmd name as the API accepts it: 1 to 255 bytes. */
bool cli_name_ok(const char *s);

/* ---- String vectors (address lists) ---------------------------------- */

/* A growable, NULL-terminated vector of owned strings; v is NULL while
 * empty, which the API reads as an empty smap. */
typedef struct {
    char **v;
    size_t n;
} cli_strv;

void cli_strv_free(cli_strv *sv);

/* Splits a comma-separated list of "host:port" and appends each item after
 * checking it with nt_addr_check (and, with dial, that its port is not 0:
 * nobody can dial port 0).  An empty item is an error.  On NT_EADDR the
 * offending item, quoted as by cli_quote, is copied to bad and nothing is
 * appended.  NT_ENOMEM on allocation failure. */
int cli_strv_add_addrs(cli_strv *sv, const char *list, bool dial, char *bad,
                       size_t badcap);

/* Whether a checked "host:port" names port 0. */
bool cli_addr_port_zero(const char *addr);

/* ---- Cluster key ----------------------------------------------------- */

/* Finds the cluster key: the file given by flag_file when not NULL, else
 * $NOTIFIER_KEY_FILE, else $NOTIFIER_KEY (base64), and decodes it into key
 * with nt_key_parse.  Returns 1 when it found a key, 0 when none was given,
 * and -1 when the one given is unusable (err then says why, one line). */
int cli_key_find(const char *flag_file, unsigned char key[32], char *err,
                 size_t errcap);

/* ---- Payloads -------------------------------------------------------- */

typedef struct {
    const unsigned char *data;
    size_t len;
    unsigned char *owned; /* freed by cli_payload_free */
} cli_payload;

/* The payload argument itself, or all of stdin when arg is NULL or "-".
 * Errors: NT_EMSGSIZE (stdin holds more than CLI_PAYLOAD_MAX), NT_EIO,
 * NT_ENOMEM. */
int cli_payload_get(const char *arg, cli_payload *p);
void cli_payload_free(cli_payload *p);

/* ---- Output ---------------------------------------------------------- */

/* A growable string; an allocation failure is sticky (cli_sb_str then
 * returns NULL) so callers check once at the end. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} cli_sb;

void cli_sb_init(cli_sb *b);
void cli_sb_fini(cli_sb *b);
void cli_sb_add(cli_sb *b, const void *p, size_t n);
void cli_sb_puts(cli_sb *b, const char *s);
void cli_sb_printf(cli_sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The NUL-terminated contents, or NULL after an allocation failure. */
const char *cli_sb_str(cli_sb *b);

/* Bytes as sink text: 0x20..0x7e except '\' as they are, every other
 * byte (and '\' itself, as \x5c) as \xNN with lowercase hex. */
void cli_sb_escape(cli_sb *b, const void *data, size_t len);

/* A JSON string of text that should be UTF-8: valid sequences pass
 * through, control characters are escaped, invalid bytes become U+FFFD. */
void cli_sb_json_str(cli_sb *b, const void *text, size_t len);

/* ",\"data\":..." for a payload: always "data" (as cli_sb_json_str), plus
 * "data_base64" with the exact bytes when the payload is not valid UTF-8. */
void cli_sb_json_data(cli_sb *b, const void *data, size_t len);

/* "OBJECT ID CMD PAYLOAD\n": the sink line of a message (INTERFACES.md);
 * every field escaped as cli_sb_escape, the id in decimal. */
void cli_sb_sink_line(cli_sb *b, const nt_msg *m);

/* A message as one JSON line: {"object","id","cmd","from","data"...}. */
void cli_sb_json_msg(cli_sb *b, const nt_msg *m);

/* Writes s to f and flushes, holding f's lock so lines from several
 * threads never interleave.  Thread-safe.  Returns 0, or -1 with errno set
 * when the write or the flush failed. */
int cli_write(FILE *f, const char *s, size_t len);

/* ---- Option scanning ------------------------------------------------- */

/* One option: "--lng", or "-c" when shrt is not 0; arg says whether it
 * takes a value ("--lng V", "--lng=V", "-c V" or "-cV"). */
typedef struct {
    const char *lng;
    char shrt;
    bool arg;
    int id;
} cli_opt;

typedef struct {
    int argc;
    char **argv;
    int i;
    bool dashdash;     /* "--" seen: the rest is positional */
    const char *val;   /* the option's value, or the positional */
    const char *name;  /* the option as written, for messages */
    char namebuf[64];
} cli_scan;

enum { CLI_SCAN_END = -1, CLI_SCAN_POS = -2, CLI_SCAN_ERR = -3 };

void cli_scan_init(cli_scan *sc, int argc, char **argv, int first);

/* The next argument: an option's id (its value in sc->val), CLI_SCAN_POS
 * (sc->val is a positional argument; "-" alone is one, and so is "-5":
 * no option starts with a digit), CLI_SCAN_END, or
 * CLI_SCAN_ERR after printing a one-line error (unknown option, missing
 * or unexpected value). */
int cli_scan_next(cli_scan *sc, const cli_opt *tab, size_t ntab);

/* ---- Signals --------------------------------------------------------- */

/* Blocks SIGINT, SIGTERM and SIGUSR1 in the calling thread (call it before
 * any node exists, so every library thread inherits the mask) and ignores
 * SIGPIPE (a closed stdout becomes a write error).  set receives the three
 * signals, for sigwait/sigtimedwait. */
void cli_signals_block(sigset_t *set);

/* Waits up to ms milliseconds for one of set; returns the signal or 0. */
int cli_signals_poll(const sigset_t *set, int ms);

/* Milliseconds on the monotonic clock. */
int64_t cli_now_ms(void);

/* Sleeps ms milliseconds (inside deadline-bounded retry loops only). */
void cli_sleep_ms(int ms);

#endif /* NT_CLI_COMMON_H */
