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

static const char *side(const json_t *req, const char *which, const char *field) {
    return json_string_value(json_object_get(json_object_get(req, which), field));
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
    while ((got = next_line(&lr, &line, err)) == 1) {
        lineno++;
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
        s2s_request rq;
        memset(&rq, 0, sizeof rq);
        rq.req_id = (uint64_t)json_integer_value(id);
        rq.item_id = json_string_value(json_object_get(req, "item"));
        s2s_mode mode = S2S_MODE_T2T;
        const char *ms = json_string_value(json_object_get(req, "mode"));
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
        int n;
        while ((n = s2s_backend_poll(b, rep, 16, 0, err)) > 0)
            for (int i = 0; i < n && rc == 0; i++)
                rc = reply_line(out, &rep[i], err);
        if (n < 0) rc = n;
        if (rc) break;
    }
    if (got < 0 && rc == 0) rc = got;
    free(lr.line);
    free(lr.buf);
    if (fflush(out) != 0 && rc == 0) rc = s2s_err_errno(err, "serve: write");
    return rc;
}
