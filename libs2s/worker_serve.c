/* worker_serve.c — the server side of docs/worker.md over any in-process backend, so that
 * `s2s-lm serve MODEL` is a real second process the protocol tests and benchmarks can drive. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s/worker.h"

static int reply_line(FILE *out, const s2s_reply *r, s2s_err *err) {
    int n;
    if (r->status == 0)
        n = fprintf(out, "{\"id\":%llu,\"nll\":%.17g,\"ntok\":%llu}\n",
                    (unsigned long long)r->req_id, r->nll, (unsigned long long)r->ntok);
    else {
        json_t *j = json_pack("{s:I, s:s}", "id", (json_int_t)r->req_id, "error",
                              r->msg[0] ? r->msg : "failed");
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!s) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
        n = fprintf(out, "%s\n", s);
        free(s);
    }
    if (n < 0) return s2s_err_errno(err, "serve: write");
    return 0;
}

/* Request lines: straight from the file descriptor in large reads when `in` has one (a pipe from
 * the scorer), so that every line already received is answered before the replies are flushed
 * and the next read blocks: one write per batch of requests, no poll() per request. Streams
 * without a descriptor (fmemopen) are read with getline. */
typedef struct line_reader {
    FILE *in, *out;
    int fd;
    char *buf; /* fd mode: buf[pos..len) not yet returned */
    size_t len, pos, cap;
    char *line; /* getline mode */
    size_t linecap;
} line_reader;

/* Returns 1 with *line (NUL-terminated, without '\n'), 0 at EOF, negative on error. */
static int next_line(line_reader *r, char **line, s2s_err *err) {
    if (r->fd < 0) {
        if (fflush(r->out) != 0) return s2s_err_errno(err, "serve: write");
        ssize_t n = getline(&r->line, &r->linecap, r->in);
        if (n < 0) return ferror(r->in) ? s2s_err_errno(err, "serve: read") : 0;
        *line = r->line;
        return 1;
    }
    for (;;) {
        char *nl = r->pos < r->len ? memchr(r->buf + r->pos, '\n', r->len - r->pos) : NULL;
        if (nl) {
            *nl = 0;
            *line = r->buf + r->pos;
            r->pos = (size_t)(nl + 1 - r->buf);
            return 1;
        }
        if (r->pos) { /* keep the partial line at the front */
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        if (r->cap - r->len < 65536 + 1) {
            size_t cap = r->cap ? r->cap * 2 : 131072;
            char *nb = realloc(r->buf, cap);
            if (!nb) return s2s_err_set(err, S2S_ENOMEM, "serve: out of memory");
            r->buf = nb;
            r->cap = cap;
        }
        if (fflush(r->out) != 0) return s2s_err_errno(err, "serve: write"); /* before blocking */
        ssize_t k = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return s2s_err_errno(err, "serve: read");
        if (k == 0) { /* EOF: a last line without '\n' still counts */
            if (r->len == r->pos) return 0;
            r->buf[r->len] = 0;
            *line = r->buf + r->pos;
            r->pos = r->len;
            return 1;
        }
        r->len += (size_t)k;
    }
}

/* ---- request lines without jansson -------------------------------------------------------------
 * The lines s2s-score writes ({"id":N,"item":S,"mode":S,"cand":N,"lang":S,"context":{"text":S,
 * "units":S,"audio":S},"candidate":{...}}, keys in any order) are decoded here into a scratch
 * buffer: jansson's object tree was a third of `s2s-lm serve`'s time. Anything else (another
 * key such as item_json, another type, a duplicate key, an escape or byte jansson would refuse)
 * makes this return 0 and the line goes to jansson, so what is accepted and how it is answered
 * does not depend on this shortcut. */
typedef struct fast_req {
    char *scratch; /* decoded strings, NUL-terminated */
    size_t cap, used;
} fast_req;

static const char *fr_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static int fr_hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* Length of the valid UTF-8 sequence at p (2-4), or 0. */
static size_t fr_utf8(const unsigned char *p) {
    unsigned c = p[0];
    if (c >= 0xC2 && c <= 0xDF) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) return 0;
        return 4;
    }
    return 0;
}

/* A JSON string at *pp (at its opening quote) decoded into the scratch buffer; NULL if it is not
 * one jansson would accept (or one with \u0000, which jansson refuses too). */
static const char *fr_string(fast_req *f, const char **pp) {
    const char *p = *pp;
    if (*p != '"') return NULL;
    p++;
    char *out = f->scratch + f->used, *start = out;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c < 0x20) return NULL; /* control character or end of line */
        if (c == '\\') {
            char e = p[1];
            p += 2;
            switch (e) {
            case '"':
                *out++ = '"';
                break;
            case '\\':
                *out++ = '\\';
                break;
            case '/':
                *out++ = '/';
                break;
            case 'b':
                *out++ = '\b';
                break;
            case 'f':
                *out++ = '\f';
                break;
            case 'n':
                *out++ = '\n';
                break;
            case 'r':
                *out++ = '\r';
                break;
            case 't':
                *out++ = '\t';
                break;
            case 'u': {
                unsigned u, lo;
                if (!fr_hex4(p, &u)) return NULL;
                p += 4;
                if (u >= 0xDC00 && u <= 0xDFFF) return NULL;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    if (p[0] != '\\' || p[1] != 'u' || !fr_hex4(p + 2, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return NULL;
                    p += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (u == 0) return NULL;
                if (u < 0x80)
                    *out++ = (char)u;
                else if (u < 0x800) {
                    *out++ = (char)(0xC0 | (u >> 6));
                    *out++ = (char)(0x80 | (u & 0x3F));
                } else if (u < 0x10000) {
                    *out++ = (char)(0xE0 | (u >> 12));
                    *out++ = (char)(0x80 | ((u >> 6) & 0x3F));
                    *out++ = (char)(0x80 | (u & 0x3F));
                } else {
                    *out++ = (char)(0xF0 | (u >> 18));
                    *out++ = (char)(0x80 | ((u >> 12) & 0x3F));
                    *out++ = (char)(0x80 | ((u >> 6) & 0x3F));
                    *out++ = (char)(0x80 | (u & 0x3F));
                }
                break;
            }
            default:
                return NULL;
            }
            continue;
        }
        size_t n = c < 0x80 ? 1 : fr_utf8((const unsigned char *)p);
        if (!n) return NULL;
        memcpy(out, p, n);
        out += n;
        p += n;
    }
    *out++ = 0;
    f->used = (size_t)(out - f->scratch);
    *pp = p + 1;
    return start;
}

/* A non-negative integer of at most 18 digits (JSON: no leading zero, no fraction). */
static int fr_uint(const char **pp, uint64_t *v) {
    const char *p = *pp;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return 0;
    uint64_t x = 0;
    int n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++n > 18) return 0;
        x = x * 10 + (uint64_t)(*p++ - '0');
    }
    if (*p == '.' || *p == 'e' || *p == 'E') return 0;
    *v = x;
    *pp = p;
    return 1;
}

/* Decodes {"text":S,"units":S,"audio":S} (each optional, no other key). */
static int fr_side(fast_req *f, const char **pp, const char **text, const char **units,
                   const char **audio) {
    const char *p = fr_ws(*pp);
    if (*p++ != '{') return 0;
    p = fr_ws(p);
    if (*p == '}') {
        *pp = p + 1;
        return 1;
    }
    for (;;) {
        const char **slot;
        if (!strncmp(p, "\"text\"", 6))
            slot = text, p += 6;
        else if (!strncmp(p, "\"units\"", 7))
            slot = units, p += 7;
        else if (!strncmp(p, "\"audio\"", 7))
            slot = audio, p += 7;
        else
            return 0;
        p = fr_ws(p);
        if (*slot || *p++ != ':') return 0;
        p = fr_ws(p);
        if (!(*slot = fr_string(f, &p))) return 0;
        p = fr_ws(p);
        if (*p == '}') {
            *pp = p + 1;
            return 1;
        }
        if (*p++ != ',') return 0;
        p = fr_ws(p);
    }
}

/* Fills rq (strings in f's scratch buffer) from a request line of the usual shape; 0 if the
 * line is anything else. */
static int fast_request(fast_req *f, const char *line, s2s_request *rq, const char **mode) {
    size_t need = strlen(line) + 16;
    if (need > f->cap) {
        char *ns = realloc(f->scratch, need);
        if (!ns) return 0;
        f->scratch = ns;
        f->cap = need;
    }
    f->used = 0;
    memset(rq, 0, sizeof *rq);
    *mode = NULL;
    int have_id = 0, have_cand = 0, have_ctx = 0, have_cd = 0;
    const char *p = fr_ws(line);
    if (*p++ != '{') return 0;
    p = fr_ws(p);
    for (;;) {
        const char *key = p;
        if (*p++ != '"') return 0;
        const char *ke = strchr(p, '"');
        if (!ke) return 0;
        size_t kl = (size_t)(ke - p);
        p = fr_ws(ke + 1);
        if (*p++ != ':') return 0;
        p = fr_ws(p);
#define KEY(k) (kl == sizeof(k) - 1 && !memcmp(key + 1, (k), kl))
        if (KEY("id")) {
            if (have_id++ || !fr_uint(&p, &rq->req_id)) return 0;
        } else if (KEY("cand")) {
            uint64_t c;
            if (have_cand++ || !fr_uint(&p, &c) || c > 1000000) return 0;
            rq->cand = (unsigned)c;
        } else if (KEY("item")) {
            if (rq->item_id || !(rq->item_id = fr_string(f, &p))) return 0;
        } else if (KEY("mode")) {
            if (*mode || !(*mode = fr_string(f, &p))) return 0;
        } else if (KEY("lang")) {
            if (rq->lang || !(rq->lang = fr_string(f, &p))) return 0;
        } else if (KEY("context")) {
            if (have_ctx++ || !fr_side(f, &p, &rq->ctx_text, &rq->ctx_units, &rq->ctx_audio))
                return 0;
        } else if (KEY("candidate")) {
            if (have_cd++ || !fr_side(f, &p, &rq->cand_text, &rq->cand_units, &rq->cand_audio))
                return 0;
        } else
            return 0;
#undef KEY
        p = fr_ws(p);
        if (*p == '}') break;
        if (*p++ != ',') return 0;
        p = fr_ws(p);
    }
    return have_id && *fr_ws(p + 1) == 0;
}

static const char *side(const json_t *req, const char *which, const char *field) {
    return json_string_value(json_object_get(json_object_get(req, which), field));
}

/* Writes every reply the backend has ready. */
static int drain(s2s_backend *b, FILE *out, s2s_reply *rep, s2s_err *err) {
    int n, rc = 0;
    while ((n = s2s_backend_poll(b, rep, 16, 0, err)) > 0)
        for (int i = 0; i < n && rc == 0; i++)
            rc = reply_line(out, &rep[i], err);
    return n < 0 ? n : rc;
}

int s2s_worker_serve(s2s_backend *b, const char *model_id, FILE *in, FILE *out, s2s_err *err) {
    json_t *hello = json_pack("{s:s, s:i, s:s, s:i}", "hello", "s2s-worker", "protocol", 1,
                              "model_id", model_id ? model_id : "", "capacity", 256);
    char *hs = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    if (!hs) return s2s_err_set(err, S2S_ENOMEM, "out of memory");
    fprintf(out, "%s\n", hs);
    free(hs);
    fflush(out);
    line_reader lr = {.in = in, .out = out, .fd = fileno(in)};
    char *line = NULL;
    long lineno = 0;
    int rc = 0, got;
    s2s_reply rep[16];
    fast_req fr = {0};
    while ((got = next_line(&lr, &line, err)) == 1) {
        lineno++;
        s2s_request rq;
        const char *ms;
        if (fast_request(&fr, line, &rq, &ms)) {
            s2s_mode mode = S2S_MODE_T2T;
            if (!ms || s2s_mode_parse(ms, &mode, NULL) != 0) {
                s2s_reply bad;
                memset(&bad, 0, sizeof bad);
                bad.req_id = rq.req_id;
                bad.status = S2S_EINVAL;
                snprintf(bad.msg, sizeof bad.msg, "unknown mode");
                if ((rc = reply_line(out, &bad, err)) != 0) break;
                continue;
            }
            rq.mode = mode;
            if ((rc = s2s_backend_submit(b, &rq, err)) != 0) break;
            if ((rc = drain(b, out, rep, err)) != 0) break;
            continue;
        }
        json_error_t je;
        json_t *req = json_loads(line, 0, &je);
        json_t *id = json_object_get(req, "id");
        if (!req || !json_is_integer(id)) {
            /* No id to answer to: say so on stderr and go on (the client times the id out). */
            fprintf(stderr, "serve: request line %ld: %s\n", lineno,
                    req ? "no integer \"id\"" : je.text);
            json_decref(req);
            continue;
        }
        memset(&rq, 0, sizeof rq);
        rq.req_id = (uint64_t)json_integer_value(id);
        rq.item_id = json_string_value(json_object_get(req, "item"));
        s2s_mode mode = S2S_MODE_T2T;
        ms = json_string_value(json_object_get(req, "mode"));
        s2s_reply bad;
        memset(&bad, 0, sizeof bad);
        bad.req_id = rq.req_id;
        if (!ms || s2s_mode_parse(ms, &mode, NULL) != 0) {
            bad.status = S2S_EINVAL;
            snprintf(bad.msg, sizeof bad.msg, "unknown mode");
            rc = reply_line(out, &bad, err);
            json_decref(req);
            if (rc) break;
            continue;
        }
        rq.mode = mode;
        rq.cand = (unsigned)json_integer_value(json_object_get(req, "cand"));
        rq.lang = json_string_value(json_object_get(req, "lang"));
        rq.ctx_text = side(req, "context", "text");
        rq.cand_text = side(req, "candidate", "text");
        rq.ctx_units = side(req, "context", "units");
        rq.cand_units = side(req, "candidate", "units");
        rq.ctx_audio = side(req, "context", "audio");
        rq.cand_audio = side(req, "candidate", "audio");
        rq.item = json_object_get(req, "item_json");
        if ((rc = s2s_backend_submit(b, &rq, err)) != 0) {
            json_decref(req);
            break;
        }
        json_decref(req);
        if ((rc = drain(b, out, rep, err)) != 0) break;
    }
    if (got < 0 && rc == 0) rc = got;
    free(fr.scratch);
    free(lr.line);
    free(lr.buf);
    if (fflush(out) != 0 && rc == 0) rc = s2s_err_errno(err, "serve: write");
    return rc;
}
