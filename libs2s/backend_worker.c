/* backend_worker.c — a model in a child process speaking docs/worker.md (s2s/worker.h). */
#include "s2s/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "s2s/util.h"

#define PROTOCOL_VERSION 1

typedef struct pending {
    uint64_t req_id;
    char *line; /* the request as sent, for resending after a restart */
    int used;
} pending;

typedef struct worker {
    char *command;
    s2s_worker_opts o;
    pid_t pid;
    int to, from; /* pipe ends: child's stdin, child's stdout */
    s2s_buf in;   /* bytes read from the child; in.data[inpos..] not yet taken as lines */
    size_t inpos;
    s2s_buf out;   /* requests not yet written to the child (written in batches) */
    size_t unsent; /* requests in out */
    pending *p;    /* open-addressed by req_id */
    size_t pcap, npending;
    s2s_reply *ready;
    size_t nready, readycap;
    unsigned restarts;
    char model_id[256];
    char last_fault[300];
    s2s_err held;        /* a failure met while replies were ready: reported by the next poll */
    s2s_backend_ops ops; /* per handle: capacity follows the worker's hello */
} worker;

void s2s_worker_opts_default(s2s_worker_opts *o) {
    o->timeout_s = 60;
    o->max_restarts = 3;
    o->capacity = 64;
    const char *e;
    if ((e = getenv("S2S_WORKER_TIMEOUT")) && atof(e) > 0) o->timeout_s = atof(e);
    if ((e = getenv("S2S_WORKER_RESTARTS"))) o->max_restarts = (unsigned)atoi(e);
    if ((e = getenv("S2S_WORKER_CAPACITY")) && atoi(e) > 0) o->capacity = (unsigned)atoi(e);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- pending table ----------------------------------------------------------------------------
 */
static size_t slot_of(const worker *w, uint64_t id) {
    size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & (w->pcap - 1);
    while (w->p[i].used && w->p[i].req_id != id)
        i = (i + 1) & (w->pcap - 1);
    return i;
}

static int pending_add(worker *w, uint64_t id, char *line, s2s_err *err) {
    if ((w->npending + 1) * 2 > w->pcap) {
        size_t cap = w->pcap ? w->pcap * 2 : 128;
        pending *np = calloc(cap, sizeof *np);
        if (!np) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        pending *old = w->p;
        size_t oldcap = w->pcap;
        w->p = np;
        w->pcap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].used) w->p[slot_of(w, old[i].req_id)] = old[i];
        free(old);
    }
    size_t i = slot_of(w, id);
    if (w->p[i].used)
        return s2s_err_set(err, S2S_EINVAL, "request id %llu already in flight",
                           (unsigned long long)id);
    w->p[i] = (pending){id, line, 1};
    w->npending++;
    return 0;
}

/* Removes id; returns 1 if it was pending. Backward-shift deletion keeps probing valid. */
static int pending_take(worker *w, uint64_t id) {
    if (!w->pcap) return 0;
    size_t i = slot_of(w, id);
    if (!w->p[i].used) return 0;
    free(w->p[i].line);
    w->p[i].used = 0;
    w->npending--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & (w->pcap - 1);
        if (!w->p[j].used) break;
        size_t home = (size_t)(w->p[j].req_id * 0x9E3779B97F4A7C15ULL) & (w->pcap - 1);
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (between) continue;
        w->p[i] = w->p[j];
        w->p[j].used = 0;
        i = j;
    }
    return 1;
}

/* ---- child process -----------------------------------------------------------------------------
 */
static void kill_child(worker *w) {
    if (w->to >= 0) close(w->to);
    if (w->from >= 0) close(w->from);
    w->to = w->from = -1;
    if (w->pid > 0) {
        kill(-w->pid, SIGKILL);
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    w->pid = -1;
    s2s_buf_free(&w->in);
    w->inpos = 0;
    w->out.len = 0;
    w->unsent = 0;
}

static int start_child(worker *w, s2s_err *err) {
    int a[2], b[2];
    if (pipe(a) != 0) return s2s_err_errno(err, "worker: pipe");
    if (pipe(b) != 0) {
        close(a[0]), close(a[1]);
        return s2s_err_errno(err, "worker: pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(a[0]), close(a[1]), close(b[0]), close(b[1]);
        return s2s_err_errno(err, "worker: fork");
    }
    if (pid == 0) {
        setpgid(0, 0); /* its own group: a kill reaches the shell and what it started */
        dup2(a[0], 0);
        dup2(b[1], 1);
        close(a[0]), close(a[1]), close(b[0]), close(b[1]);
        execl("/bin/sh", "sh", "-c", w->command, (char *)NULL);
        _exit(127);
    }
    close(a[0]);
    close(b[1]);
    w->pid = pid;
    w->to = a[1];
    w->from = b[0];
    fcntl(w->to, F_SETFD, FD_CLOEXEC);
    fcntl(w->from, F_SETFD, FD_CLOEXEC);
    fcntl(w->from, F_SETFL, fcntl(w->from, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Reads what is available (waiting up to timeout_ms for something); returns 1 if bytes came,
 * 0 on timeout, -1 on EOF (child closed stdout), negative S2S code on error. */
static int read_some(worker *w, int timeout_ms, s2s_err *err) {
    struct pollfd pf = {w->from, POLLIN, 0};
    int n = poll(&pf, 1, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : s2s_err_errno(err, "worker: poll");
    if (n == 0) return 0;
    if (w->inpos) { /* drop the lines already taken, once per read rather than once per line */
        memmove(w->in.data, w->in.data + w->inpos, w->in.len - w->inpos);
        w->in.len -= w->inpos;
        w->inpos = 0;
    }
    if (s2s_buf_reserve(&w->in, 65536, err)) return S2S_ENOMEM;
    ssize_t k = read(w->from, w->in.data + w->in.len, 65536);
    if (k < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : s2s_err_errno(err, "worker: read");
    if (k == 0) return -1;
    w->in.len += (size_t)k;
    w->in.data[w->in.len] = 0;
    return 1;
}

/* Takes one complete line out of the input buffer, or NULL. The line is NUL-terminated in place
 * and valid until the next read_some or kill_child. */
static char *take_line(worker *w) {
    if (w->inpos >= w->in.len) return NULL;
    unsigned char *start = w->in.data + w->inpos;
    unsigned char *nl = memchr(start, '\n', w->in.len - w->inpos);
    if (!nl) return NULL;
    *nl = 0;
    w->inpos = (size_t)(nl + 1 - w->in.data);
    return (char *)start;
}

static int write_all(worker *w, const char *s, size_t n, s2s_err *err) {
    /* While the pipe to the child is full, keep reading its replies so neither side blocks. */
    while (n > 0) {
        struct pollfd pf[2] = {{w->to, POLLOUT, 0}, {w->from, POLLIN, 0}};
        int k = poll(pf, 2, (int)(w->o.timeout_s * 1000));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return s2s_err_errno(err, "worker: poll");
        if (k == 0) return s2s_err_set(err, S2S_EMODEL, "worker stopped reading requests");
        if (pf[1].revents & POLLIN) {
            int r = read_some(w, 0, err);
            if (r < -1) return r;
        }
        if (pf[0].revents & (POLLERR | POLLHUP))
            return s2s_err_set(err, S2S_EMODEL, "worker closed its stdin");
        if (pf[0].revents & POLLOUT) {
            ssize_t m = write(w->to, s, n);
            if (m < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (m < 0) return s2s_err_set(err, S2S_EMODEL, "worker: write: %s", strerror(errno));
            s += m;
            n -= (size_t)m;
        }
    }
    return 0;
}

static int read_hello(worker *w, s2s_err *err) {
    double deadline = now_s() + w->o.timeout_s;
    for (;;) {
        char *line = take_line(w);
        if (line) {
            json_error_t je;
            json_t *h = json_loads(line, 0, &je);
            const char *hello = json_string_value(json_object_get(h, "hello"));
            if (!h || !hello || strcmp(hello, "s2s-worker") != 0) {
                json_decref(h);
                return s2s_err_set(
                    err, S2S_EMODEL,
                    "worker '%s': first line is not a hello "
                    "({\"hello\": \"s2s-worker\", \"protocol\": 1, ...}, docs/worker.md)",
                    w->command);
            }
            json_int_t proto = json_integer_value(json_object_get(h, "protocol"));
            if (proto != PROTOCOL_VERSION) {
                json_decref(h);
                return s2s_err_set(err, S2S_EMODEL, "worker '%s' speaks protocol %lld, we speak %d",
                                   w->command, (long long)proto, PROTOCOL_VERSION);
            }
            const char *mid = json_string_value(json_object_get(h, "model_id"));
            snprintf(w->model_id, sizeof w->model_id, "%s", mid ? mid : "");
            json_int_t cap = json_integer_value(json_object_get(h, "capacity"));
            if (cap > 0 && (unsigned)cap < w->o.capacity) w->o.capacity = (unsigned)cap;
            json_decref(h);
            return 0;
        }
        double left = deadline - now_s();
        if (left <= 0)
            return s2s_err_set(err, S2S_EMODEL, "worker '%s' sent no hello within %.0f s",
                               w->command, w->o.timeout_s);
        int r = read_some(w, (int)(left * 1000) + 1, err);
        if (r == -1)
            return s2s_err_set(err, S2S_EMODEL, "worker '%s' exited before its hello", w->command);
        if (r < -1) return r;
    }
}

static int flush_out(worker *w, s2s_err *err);

/* A fault: restart and resend every pending request, or give up past the bound. */
static int fault(worker *w, const char *why, s2s_err *err) {
    snprintf(w->last_fault, sizeof w->last_fault, "%s", why);
    kill_child(w);
    if (w->restarts >= w->o.max_restarts)
        return s2s_err_set(err, S2S_EMODEL,
                           "worker '%s' failed %u time%s; last: %s (%zu requests unanswered)",
                           w->command, w->restarts + 1, w->restarts ? "s" : "", why, w->npending);
    w->restarts++;
    int rc = start_child(w, err);
    if (!rc) rc = read_hello(w, err);
    if (rc) return rc;
    for (size_t i = 0; i < w->pcap; i++)
        if (w->p[i].used && (rc = s2s_buf_append(&w->out, w->p[i].line, strlen(w->p[i].line), err)))
            return rc;
    w->unsent = w->npending;
    return flush_out(w, err);
}

/* Writes the queued requests; a failed write is a fault (restart and resend). */
static int flush_out(worker *w, s2s_err *err) {
    if (!w->out.len) return 0;
    int rc = write_all(w, (const char *)w->out.data, w->out.len, err);
    w->out.len = 0;
    w->unsent = 0;
    if (rc == 0) return 0;
    if (rc == S2S_ENOMEM) return rc;
    char why[300];
    snprintf(why, sizeof why, "%s", err->msg);
    return fault(w, why, err); /* resends every pending request */
}

static int push_ready(worker *w, const s2s_reply *r, s2s_err *err) {
    if (w->nready == w->readycap) {
        size_t cap = w->readycap ? 2 * w->readycap : 64;
        s2s_reply *p = realloc(w->ready, cap * sizeof *p);
        if (!p) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        w->ready = p;
        w->readycap = cap;
    }
    w->ready[w->nready++] = *r;
    return 0;
}

/* ---- replies -------------------------------------------------------------------------------- */
static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

/* A JSON number's extent at p (0 if none), following RFC 8259's grammar exactly. */
static size_t json_number_len(const char *p, int *integer) {
    const char *q = p;
    if (*q == '-') q++;
    if (*q == '0')
        q++;
    else if (*q >= '1' && *q <= '9')
        while (*q >= '0' && *q <= '9')
            q++;
    else
        return 0;
    *integer = 1;
    if (*q == '.') {
        *integer = 0;
        if (!(*++q >= '0' && *q <= '9')) return 0;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q == 'e' || *q == 'E') {
        *integer = 0;
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!(*q >= '0' && *q <= '9')) return 0;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    return (size_t)(q - p);
}

/* `"key": value` at p with value a JSON number; returns the position after it or NULL. */
static const char *fast_member(const char *p, const char *key, double *v, int *integer) {
    size_t kl = strlen(key);
    p = skip_ws(p);
    if (*p != '"' || strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '"') return NULL;
    p = skip_ws(p + kl + 2);
    if (*p != ':') return NULL;
    p = skip_ws(p + 1);
    size_t n = json_number_len(p, integer);
    if (!n || n > 40) return NULL;
    char num[48];
    memcpy(num, p, n);
    num[n] = 0;
    errno = 0;
    *v = strtod(num, NULL);
    if (errno || !isfinite(*v)) return NULL; /* out of range: jansson's verdict decides */
    return skip_ws(p + n);
}

/* The common reply {"id": N, "nll": X, "ntok": K} (as s2s-lm serve and Python's json.dumps
 * print it) read without jansson; 0 when the line has any other shape (then jansson reads it,
 * so the protocol's verdicts do not depend on this shortcut). */
static int fast_reply(const char *line, uint64_t *id, double *nll, uint64_t *ntok) {
    double v;
    int integer;
    const char *p = skip_ws(line);
    if (*p++ != '{') return 0;
    if (!(p = fast_member(p, "id", &v, &integer)) || !integer || v < 0 || v > 9e15) return 0;
    *id = (uint64_t)v;
    if (*p++ != ',' || !(p = fast_member(p, "nll", nll, &integer))) return 0;
    if (*p++ != ',' || !(p = fast_member(p, "ntok", &v, &integer)) || !integer || v < 0 || v > 9e15)
        return 0;
    *ntok = (uint64_t)v;
    if (*p++ != '}') return 0;
    return *skip_ws(p) == 0;
}

/* Parses one reply line. Returns 0 (a reply queued), or 1 with why filled on garbage. */
static int parse_reply(worker *w, const char *line, char *why, size_t whyn, s2s_err *err) {
    s2s_reply r;
    uint64_t fid;
    if (fast_reply(line, &fid, &r.nll, &r.ntok)) {
        if (!pending_take(w, fid)) {
            snprintf(why, whyn, "reply for id %llu, which is not pending (unknown or duplicate)",
                     (unsigned long long)fid);
            return 1;
        }
        r.req_id = fid;
        r.status = 0;
        r.flags = 0;
        r.msg[0] = 0;
        return push_ready(w, &r, err);
    }
    json_error_t je;
    json_t *j = json_loads(line, 0, &je);
    if (!j || !json_is_object(j)) {
        snprintf(why, whyn, "reply is not a JSON object: %.80s", line);
        json_decref(j);
        return 1;
    }
    json_t *id = json_object_get(j, "id");
    if (!json_is_integer(id) || json_integer_value(id) < 0) {
        snprintf(why, whyn, "reply without an integer id: %.80s", line);
        json_decref(j);
        return 1;
    }
    uint64_t rid = (uint64_t)json_integer_value(id);
    if (!pending_take(w, rid)) {
        snprintf(why, whyn, "reply for id %llu, which is not pending (unknown or duplicate)",
                 (unsigned long long)rid);
        json_decref(j);
        return 1;
    }
    memset(&r, 0, sizeof r);
    r.req_id = rid;
    const char *e = json_string_value(json_object_get(j, "error"));
    json_t *nll = json_object_get(j, "nll"), *ntok = json_object_get(j, "ntok");
    if (e) {
        r.status = S2S_EMODEL;
        snprintf(r.msg, sizeof r.msg, "worker: %s", e);
    } else if (!json_is_number(nll) || !json_is_integer(ntok) || json_integer_value(ntok) < 0) {
        r.status = S2S_EMODEL;
        snprintf(r.msg, sizeof r.msg, "worker reply without a number nll and an integer ntok");
    } else {
        r.nll = json_number_value(nll);
        r.ntok = (uint64_t)json_integer_value(ntok);
        if (!isfinite(r.nll)) {
            r.status = S2S_EDATA;
            snprintf(r.msg, sizeof r.msg, "worker returned a non-finite nll");
        }
    }
    json_decref(j);
    return push_ready(w, &r, err);
}

/* Reads and parses replies; waits up to wait_ms for the first. Handles faults. */
static int pump(worker *w, int wait_ms, s2s_err *err) {
    double start = now_s();
    for (;;) {
        char *line;
        while ((line = take_line(w)) != NULL) {
            char why[256];
            int rc = parse_reply(w, line, why, sizeof why, err);
            if (rc < 0) return rc;
            if (rc == 1 && (rc = fault(w, why, err)) != 0) return rc;
        }
        if (w->nready || !w->npending) return 0;
        double waited = now_s() - start;
        if (wait_ms >= 0 && waited * 1000 >= wait_ms) return 0;
        int r = read_some(w, 200, err);
        if (r == -1) {
            int rc = fault(w, "the worker exited (crash or early EOF)", err);
            if (rc) return rc;
            start = now_s();
            continue;
        }
        if (r < -1) return r;
        if (r == 1) start = now_s(); /* progress resets the hang timer */
        if (r == 0 && now_s() - start > w->o.timeout_s) {
            char why[128];
            snprintf(why, sizeof why, "no reply for %.0f s (hung)", w->o.timeout_s);
            int rc = fault(w, why, err);
            if (rc) return rc;
            start = now_s();
        }
    }
}

/* ---- backend ops -------------------------------------------------------------------------------
 */
static int w_needs(void *self, s2s_mode mode, unsigned *needs, s2s_err *err) {
    (void)self, (void)err;
    /* A worker gets everything the mode has: text always, audio and units of the speech side. */
    unsigned n = S2S_NEED_CTX_TEXT | S2S_NEED_CAND_TEXT;
    if (mode == S2S_MODE_S2T || mode == S2S_MODE_S2S) n |= S2S_NEED_CTX_AUDIO;
    if (mode == S2S_MODE_T2S || mode == S2S_MODE_S2S) n |= S2S_NEED_CAND_AUDIO;
    *needs = n;
    return 0;
}

/* ---- request lines, written by hand ------------------------------------------------------------
 * The same bytes json_dumps(JSON_COMPACT) gave (keys in this order, '"', '\\' and control
 * characters escaped, UTF-8 kept), without building a jansson object per request: with
 * `s2s-lm serve` that was a third of the scorer's time. Invalid UTF-8 (jansson refused it)
 * becomes U+FFFD. */
static int put(s2s_buf *b, const char *s, size_t n, s2s_err *err) {
    return s2s_buf_append(b, s, n, err);
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

static int put_str(s2s_buf *b, const char *str, s2s_err *err) {
    const unsigned char *p = (const unsigned char *)str, *run = p;
    int rc = put(b, "\"", 1, err);
    while (!rc && *p) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            p++;
            continue;
        }
        size_t u = c >= 0x80 ? utf8_len(p) : 0;
        if (u > 1) { /* NUL ends the string, so reading up to p[3] stays inside it */
            p += u;
            continue;
        }
        rc = put(b, (const char *)run, (size_t)(p - run), err);
        char esc[8];
        const char *e = esc;
        size_t en = 2;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04X", c);
                en = 6;
            } else {
                e = "\xEF\xBF\xBD"; /* U+FFFD for a byte of invalid UTF-8 */
                en = 3;
            }
        }
        if (!rc) rc = put(b, e, en, err);
        p++;
        run = p;
    }
    if (!rc) rc = put(b, (const char *)run, (size_t)(p - run), err);
    if (!rc) rc = put(b, "\"", 1, err);
    return rc;
}

static int put_side(s2s_buf *b, const char *key, const char *text, const char *units,
                    const char *audio, s2s_err *err) {
    int rc = put(b, ",\"", 2, err);
    if (!rc) rc = put(b, key, strlen(key), err);
    if (!rc) rc = put(b, "\":{", 3, err);
    const char *sep = "";
    if (!rc && text) {
        rc = put(b, "\"text\":", 7, err);
        if (!rc) rc = put_str(b, text, err);
        sep = ",";
    }
    if (!rc && units) {
        rc = put(b, sep, strlen(sep), err);
        if (!rc) rc = put(b, "\"units\":", 8, err);
        if (!rc) rc = put_str(b, units, err);
        sep = ",";
    }
    if (!rc && audio) {
        rc = put(b, sep, strlen(sep), err);
        if (!rc) rc = put(b, "\"audio\":", 8, err);
        if (!rc) rc = put_str(b, audio, err);
    }
    if (!rc) rc = put(b, "}", 1, err);
    return rc;
}

/* Appends the request line (with its '\n') to b. */
static int request_line(s2s_buf *b, const s2s_request *rq, s2s_err *err) {
    char num[64];
    int n = snprintf(num, sizeof num, "{\"id\":%llu,\"item\":", (unsigned long long)rq->req_id);
    int rc = put(b, num, (size_t)n, err);
    if (!rc) rc = put_str(b, rq->item_id ? rq->item_id : "", err);
    if (!rc) rc = put(b, ",\"mode\":\"", 9, err);
    if (!rc) rc = put(b, s2s_mode_name(rq->mode), strlen(s2s_mode_name(rq->mode)), err);
    n = snprintf(num, sizeof num, "\",\"cand\":%d,\"lang\":", (int)rq->cand);
    if (!rc) rc = put(b, num, (size_t)n, err);
    if (!rc) rc = put_str(b, rq->lang ? rq->lang : "", err);
    if (!rc) rc = put_side(b, "context", rq->ctx_text, rq->ctx_units, rq->ctx_audio, err);
    if (!rc) rc = put_side(b, "candidate", rq->cand_text, rq->cand_units, rq->cand_audio, err);
    if (!rc) rc = put(b, "}\n", 2, err);
    return rc;
}

static int w_submit(void *self, const s2s_request *rq, s2s_err *err) {
    worker *w = self;
    size_t at = w->out.len;
    int rc = request_line(&w->out, rq, err);
    char *line = rc ? NULL : strndup((char *)w->out.data + at, w->out.len - at);
    if (!rc && !line) rc = s2s_err_set(err, S2S_ENOMEM, "out of memory");
    if (!rc) rc = pending_add(w, rq->req_id, line, err);
    if (rc) {
        free(line);
        w->out.len = at;
        return rc;
    }
    w->unsent++;
    /* Requests go out in batches: one write per capacity/4 requests (or 64 KiB) rather than
     * one per request; poll() sends the rest before it waits. */
    if (w->unsent * 4 >= w->o.capacity || w->out.len >= 65536) return flush_out(w, err);
    return 0;
}

static int w_poll(void *self, s2s_reply *out, size_t max, int wait, s2s_err *err) {
    worker *w = self;
    if (w->held.code && !w->nready) { /* the replies that were ready have gone out */
        *err = w->held;
        w->held.code = 0;
        return err->code;
    }
    if (!w->held.code) {
        int rc = wait ? flush_out(w, err) : 0;
        if (!rc) rc = pump(w, wait ? -1 : 0, err);
        if (rc && !w->nready) return rc;
        if (rc) w->held = *err; /* a bad line after good ones: hand those out first, fail next */
    }
    size_t k = w->nready < max ? w->nready : max;
    if (k) {
        memcpy(out, w->ready, k * sizeof *out);
        memmove(w->ready, w->ready + k, (w->nready - k) * sizeof *out);
    }
    w->nready -= k;
    return (int)k;
}

static uint64_t w_restarts(const void *self) {
    return ((const worker *)self)->restarts;
}

static void w_destroy(void *self) {
    worker *w = self;
    if (!w) return;
    if (w->to >= 0) {
        close(w->to); /* EOF: a well-behaved worker exits */
        w->to = -1;
    }
    if (w->pid > 0) {
        for (int i = 0; i < 50; i++) { /* up to 1 s to exit by itself */
            if (waitpid(w->pid, NULL, WNOHANG) == w->pid) {
                w->pid = -1;
                break;
            }
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    kill_child(w);
    for (size_t i = 0; i < w->pcap; i++)
        if (w->p[i].used) free(w->p[i].line);
    free(w->p);
    free(w->ready);
    s2s_buf_free(&w->out);
    free(w->command);
    free(w);
}

s2s_backend *s2s_backend_worker_open(const char *spec, const char *command,
                                     const s2s_worker_opts *opts, s2s_err *err) {
    worker *w = calloc(1, sizeof *w);
    if (!w || !(w->command = strdup(command))) {
        free(w);
        s2s_err_set(err, S2S_ENOMEM, "out of memory");
        return NULL;
    }
    w->to = w->from = w->pid = -1;
    if (opts)
        w->o = *opts;
    else
        s2s_worker_opts_default(&w->o);
    if (!w->o.capacity) w->o.capacity = 1;
    signal(SIGPIPE, SIG_IGN); /* a dead worker must give EPIPE, not kill the scorer */
    int rc = start_child(w, err);
    if (!rc) rc = read_hello(w, err);
    if (rc) {
        w_destroy(w);
        return NULL;
    }
    w->ops = (s2s_backend_ops){.kind = "worker",
                               .needs = w_needs,
                               .submit = w_submit,
                               .poll = w_poll,
                               .capacity = w->o.capacity,
                               .destroy = w_destroy,
                               .restarts = w_restarts};
    return s2s_backend_new(&w->ops, w, spec, w->model_id, err);
}
