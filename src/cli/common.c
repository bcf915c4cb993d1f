/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by notifierd and the notifier CLI (see common.h): strict
 * parsers, key lookup, payload input, sink/JSON output and the option
 * scanner.  Parsers accept exactly the documented forms and nothing else
 * (no sign, no surrounding spaces, no overflow) because scripts depend on
 * bad input failing loudly with exit status 2.
 */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ADDR_LIST_MAX 256

/* Set once by main before any thread exists; read-only afterwards. */
static const char *prog = "notifier";
static const char *context = NULL;

void
cli_init(const char *name)
{
    prog = name;
}

void
cli_set_context(const char *ctx)
{
    context = ctx;
}

void
cli_err(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One line, whatever the message holds. */
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    char line[1100];
    if (context != NULL) {
        snprintf(line, sizeof(line), "%s: %s: %s\n", prog, context, msg);
    } else {
        snprintf(line, sizeof(line), "%s: %s\n", prog, msg);
    }
    fputs(line, stderr);
    fflush(stderr);
}

const char *
cli_quote(const char *s, char *buf, size_t cap)
{
    cli_sb b;
    cli_sb_init(&b);
    size_t n = strnlen(s, 49);
    cli_sb_puts(&b, "'");
    cli_sb_escape(&b, s, n > 48 ? 48 : n);
    cli_sb_puts(&b, n > 48 ? "...'" : "'");
    snprintf(buf, cap, "%s", cli_sb_str(&b) != NULL ? b.s : "?");
    cli_sb_fini(&b);
    return buf;
}

const char *
cli_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ---- Strict parsing ------------------------------------------------- */

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool
cli_parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || s[0] == '\0') {
        return false;
    }
    uint64_t v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        const char *p = s + 2;
        size_t n = strlen(p);
        if (n == 0 || n > 16) {
            return false;
        }
        for (; *p != '\0'; p++) {
            int h = hexval(*p);
            if (h < 0) {
                return false;
            }
            v = (v << 4) | (uint64_t)h;
        }
        *out = v;
        return true;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool
cli_parse_id(const char *s, uint64_t *out)
{
    if (s != NULL && s[0] == '@') {
        if (s[1] == '\0') {
            return false;
        }
        *out = nt_id_hash(s + 1);
        return true;
    }
    return cli_parse_u64(s, out);
}

const char *
cli_parse_match(const char *s, nt_match *out)
{
    if (s != NULL && strcmp(s, "all") == 0) {
        *out = NT_MATCH_ALL;
        return NULL;
    }
    const char *colon = s != NULL ? strchr(s, ':') : NULL;
    if (colon == NULL) {
        return "expected MASK:VALUE or all";
    }
    char mask[32];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof(mask)) {
        return "expected MASK:VALUE or all";
    }
    memcpy(mask, s, n);
    mask[n] = '\0';
    nt_match m;
    if (!cli_parse_u64(mask, &m.mask) || !cli_parse_u64(colon + 1, &m.value)) {
        return "MASK and VALUE are decimal or 0x hex 64-bit numbers";
    }
    if ((m.value & ~m.mask) != 0) {
        return "VALUE has bits outside MASK, so it can never match";
    }
    *out = m;
    return NULL;
}

bool
cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (s == NULL || s[0] == '\0' || strspn(s, "0123456789") != strlen(s) ||
        !cli_parse_u64(s, &v) || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool
cli_parse_weight(const char *s, double *out)
{
    if (s == NULL || s[0] == '\0' ||
        strspn(s, "0123456789.eE+-") != strlen(s) || s[0] == '-' ||
        s[0] == '+') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

bool
cli_parse_level(const char *s, int *level)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        { "error", NT_LOG_ERROR },
        { "warn", NT_LOG_WARN },
        { "info", NT_LOG_INFO },
        { "debug", NT_LOG_DEBUG },
    };
    for (size_t i = 0; s != NULL && i < sizeof(levels) / sizeof(levels[0]);
         i++) {
        if (strcmp(s, levels[i].name) == 0) {
            *level = levels[i].level;
            return true;
        }
    }
    return false;
}

bool
cli_name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strnlen(s, 256) <= 255;
}

/* ---- String vectors -------------------------------------------------- */

void
cli_strv_free(cli_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        free(sv->v[i]);
    }
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

static int
strv_push(cli_strv *sv, const char *s, size_t len)
{
    char **v = realloc(sv->v, (sv->n + 2) * sizeof(*v));
    if (v == NULL) {
        return NT_ENOMEM;
    }
    sv->v = v;
    if ((v[sv->n] = strndup(s, len)) == NULL) {
        v[sv->n] = NULL;
        return NT_ENOMEM;
    }
    v[++sv->n] = NULL;
    return NT_OK;
}

bool
cli_addr_port_zero(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    return colon != NULL && colon[1] != '\0' &&
           strspn(colon + 1, "0") == strlen(colon + 1);
}

int
cli_strv_add_addrs(cli_strv *sv, const char *list, bool dial, char *bad,
                   size_t badcap)
{
    size_t first = sv->n;
    const char *p = list;
    int rv = NT_OK;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char item[300];
        snprintf(item, sizeof(item), "%.*s",
                 (int)(len < sizeof(item) - 1 ? len : sizeof(item) - 1), p);
        if (len == 0 || len >= sizeof(item) || sv->n >= ADDR_LIST_MAX ||
            nt_addr_check(item) != NT_OK ||
            (dial && cli_addr_port_zero(item))) {
            cli_quote(item, bad, badcap);
            rv = NT_EADDR;
            break;
        }
        if ((rv = strv_push(sv, item, len)) != NT_OK) {
            break;
        }
        if (comma == NULL) {
            return NT_OK;
        }
        p = comma + 1;
    }
    while (sv->n > first) {
        free(sv->v[--sv->n]);
        sv->v[sv->n] = NULL;
    }
    return rv;
}

/* ---- Cluster key ----------------------------------------------------- */

/* The key to send with: the first of the file (a key file may list more,
 * for rotation; see nt_key_file_load). */
static int
key_from_file(const char *path, unsigned char key[32], char *err,
              size_t errcap)
{
    unsigned char keys[8][32];
    size_t n = 0;
    errno = 0;
    int rv = nt_key_file_load(path, keys, 8, &n);
    if (rv == NT_OK) {
        memcpy(key, keys[0], 32);
    } else if (rv == NT_EIO) {
        snprintf(err, errcap, "key file %s: %s", path,
                 errno != 0 ? strerror(errno) : nt_strerror(rv));
    } else {
        snprintf(err, errcap, "key file %s: %s", path, nt_strerror(rv));
    }
    explicit_bzero(keys, sizeof(keys));
    return rv == NT_OK ? 1 : -1;
}

int
cli_key_find(const char *flag_file, unsigned char key[32], char *err,
             size_t errcap)
{
    const char *path = flag_file != NULL ? flag_file
                                         : cli_env("NOTIFIER_KEY_FILE");
    if (path != NULL) {
        return key_from_file(path, key, err, errcap);
    }
    const char *text = cli_env("NOTIFIER_KEY");
    if (text == NULL) {
        return 0;
    }
    if (nt_key_parse(text, key) != NT_OK) {
        snprintf(err, errcap, "NOTIFIER_KEY: %s", nt_strerror(NT_EAUTH));
        return -1;
    }
    return 1;
}

/* ---- Payloads -------------------------------------------------------- */

int
cli_payload_get(const char *arg, cli_payload *p)
{
    p->owned = NULL;
    if (arg != NULL && strcmp(arg, "-") != 0) {
        p->data = (const unsigned char *)arg;
        p->len = strlen(arg);
        return NT_OK;
    }
    size_t cap = 0, len = 0;
    unsigned char *buf = NULL;
    for (;;) {
        if (len == cap) {
            if (cap > CLI_PAYLOAD_MAX) {
                free(buf);
                return NT_EMSGSIZE;
            }
            size_t ncap = cap == 0 ? 4096 : cap * 2;
            if (ncap > CLI_PAYLOAD_MAX + 1) {
                ncap = CLI_PAYLOAD_MAX + 1;
            }
            unsigned char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return NT_ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(STDIN_FILENO, buf + len, cap - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            free(buf);
            return NT_EIO;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    if (len > CLI_PAYLOAD_MAX) {
        free(buf);
        return NT_EMSGSIZE;
    }
    p->owned = buf;
    p->data = buf != NULL ? buf : (const unsigned char *)"";
    p->len = len;
    return NT_OK;
}

void
cli_payload_free(cli_payload *p)
{
    free(p->owned);
    p->owned = NULL;
}

/* ---- Output ---------------------------------------------------------- */

void
cli_sb_init(cli_sb *b)
{
    memset(b, 0, sizeof(*b));
}

void
cli_sb_fini(cli_sb *b)
{
    free(b->s);
    cli_sb_init(b);
}

static bool
sb_reserve(cli_sb *b, size_t extra)
{
    if (b->oom) {
        return false;
    }
    if (b->len + extra + 1 <= b->cap) {
        return true;
    }
    size_t ncap = b->cap == 0 ? 128 : b->cap;
    while (ncap < b->len + extra + 1) {
        ncap *= 2;
    }
    char *s = realloc(b->s, ncap);
    if (s == NULL) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = ncap;
    return true;
}

void
cli_sb_add(cli_sb *b, const void *p, size_t n)
{
    if (sb_reserve(b, n)) {
        memcpy(b->s + b->len, p, n);
        b->len += n;
        b->s[b->len] = '\0';
    }
}

void
cli_sb_puts(cli_sb *b, const char *s)
{
    cli_sb_add(b, s, strlen(s));
}

void
cli_sb_printf(cli_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_reserve(b, (size_t)n)) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *
cli_sb_str(cli_sb *b)
{
    if (b->oom) {
        return NULL;
    }
    if (b->s == NULL && !sb_reserve(b, 0)) {
        return NULL;
    }
    b->s[b->len] = '\0';
    return b->s;
}

void
cli_sb_escape(cli_sb *b, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    if (!sb_reserve(b, len * 4)) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c <= 0x7e && c != '\\') {
            b->s[b->len++] = (char)c;
        } else {
            b->s[b->len++] = '\\';
            b->s[b->len++] = 'x';
            b->s[b->len++] = hex[c >> 4];
            b->s[b->len++] = hex[c & 15];
        }
    }
    b->s[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence starting at p (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

static bool
utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) {
            return false;
        }
        i += k;
    }
    return true;
}

void
cli_sb_json_str(cli_sb *b, const void *text, size_t len)
{
    const unsigned char *p = text;
    cli_sb_add(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0) {
            cli_sb_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (k > 1) {
            cli_sb_add(b, p + i, k);
        } else if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            cli_sb_add(b, e, 2);
        } else if (c == '\n') {
            cli_sb_puts(b, "\\n");
        } else if (c == '\r') {
            cli_sb_puts(b, "\\r");
        } else if (c == '\t') {
            cli_sb_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            cli_sb_printf(b, "\\u%04x", c);
        } else {
            cli_sb_add(b, &p[i], 1);
        }
        i += k;
    }
    cli_sb_add(b, "\"", 1);
}

static void
sb_base64(cli_sb *b, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char q[4] = { tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                      i + 1 < n ? tab[(v >> 6) & 63] : '=',
                      i + 2 < n ? tab[v & 63] : '=' };
        cli_sb_add(b, q, 4);
    }
}

void
cli_sb_json_data(cli_sb *b, const void *data, size_t len)
{
    cli_sb_puts(b, ",\"data\":");
    cli_sb_json_str(b, data, len);
    if (!utf8_valid(data, len)) {
        cli_sb_puts(b, ",\"data_base64\":\"");
        sb_base64(b, data, len);
        cli_sb_puts(b, "\"");
    }
}

void
cli_sb_sink_line(cli_sb *b, const nt_msg *m)
{
    cli_sb_escape(b, m->object, strlen(m->object));
    cli_sb_printf(b, " %llu ", (unsigned long long)m->id);
    cli_sb_escape(b, m->cmd, strlen(m->cmd));
    cli_sb_add(b, " ", 1);
    cli_sb_escape(b, m->data, m->len);
    cli_sb_add(b, "\n", 1);
}

void
cli_sb_json_msg(cli_sb *b, const nt_msg *m)
{
    cli_sb_puts(b, "{\"object\":");
    cli_sb_json_str(b, m->object, strlen(m->object));
    cli_sb_printf(b, ",\"id\":%llu,\"cmd\":", (unsigned long long)m->id);
    cli_sb_json_str(b, m->cmd, strlen(m->cmd));
    cli_sb_puts(b, ",\"from\":");
    if (m->from != NULL) {
        cli_sb_json_str(b, m->from, strlen(m->from));
    } else {
        cli_sb_puts(b, "null");
    }
    cli_sb_json_data(b, m->data, m->len);
    cli_sb_puts(b, "}\n");
}

int
cli_write(FILE *f, const char *s, size_t len)
{
    flockfile(f);
    size_t w = fwrite(s, 1, len, f);
    int rv = w == len && fflush(f) == 0 ? 0 : -1;
    funlockfile(f);
    return rv;
}

/* ---- Option scanning ------------------------------------------------- */

void
cli_scan_init(cli_scan *sc, int argc, char **argv, int first)
{
    memset(sc, 0, sizeof(*sc));
    sc->argc = argc;
    sc->argv = argv;
    sc->i = first;
}

int
cli_scan_next(cli_scan *sc, const cli_opt *tab, size_t ntab)
{
    for (;;) {
        if (sc->i >= sc->argc) {
            return CLI_SCAN_END;
        }
        const char *a = sc->argv[sc->i++];
        sc->val = NULL;
        /* "-" is stdin; "-5" a (bad) number for the caller to reject. */
        if (sc->dashdash || a[0] != '-' || a[1] == '\0' ||
            (a[1] >= '0' && a[1] <= '9')) {
            sc->val = a;
            return CLI_SCAN_POS;
        }
        if (strcmp(a, "--") == 0) {
            sc->dashdash = true;
            continue;
        }
        const cli_opt *o = NULL;
        const char *inl = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq != NULL ? (size_t)(eq - name) : strlen(name);
            for (size_t i = 0; i < ntab && o == NULL; i++) {
                if (tab[i].lng != NULL && strlen(tab[i].lng) == nl &&
                    memcmp(tab[i].lng, name, nl) == 0) {
                    o = &tab[i];
                }
            }
            if (eq != NULL) {
                inl = eq + 1;
            }
            snprintf(sc->namebuf, sizeof(sc->namebuf), "--%.*s",
                     (int)(nl < 40 ? nl : 40), name);
        } else {
            for (size_t i = 0; i < ntab && o == NULL; i++) {
                if (tab[i].shrt != 0 && tab[i].shrt == a[1]) {
                    o = &tab[i];
                }
            }
            if (a[2] != '\0') {
                inl = a + 2;
            }
            snprintf(sc->namebuf, sizeof(sc->namebuf), "-%c", a[1]);
        }
        sc->name = sc->namebuf;
        if (o == NULL || (inl != NULL && !o->arg && a[1] != '-')) {
            char q[256];
            cli_err("unknown option %s (see --help)",
                    cli_quote(a, q, sizeof(q)));
            return CLI_SCAN_ERR;
        }
        if (o->arg) {
            if (inl != NULL) {
                sc->val = inl;
            } else if (sc->i < sc->argc) {
                sc->val = sc->argv[sc->i++];
            } else {
                cli_err("option %s needs a value", sc->name);
                return CLI_SCAN_ERR;
            }
        } else if (inl != NULL) {
            cli_err("option %s takes no value", sc->name);
            return CLI_SCAN_ERR;
        }
        return o->id;
    }
}

/* ---- Signals and time ------------------------------------------------ */

void
cli_signals_block(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int
cli_signals_poll(const sigset_t *set, int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

int64_t
cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
cli_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
