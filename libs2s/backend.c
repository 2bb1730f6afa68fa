/* backend.c — the backend handle: spec parsing, the reply queue of synchronous backends, modes. */
#include "s2s/backend.h"
#include "s2s/worker.h"

#include <stdlib.h>
#include <string.h>

struct s2s_backend {
    const s2s_backend_ops *ops;
    void *self;
    char *spec, *sha;
    /* Synchronous backends: replies made in submit wait here (a ring) until poll. */
    s2s_reply *q;
    size_t qcap, qhead, qlen;
    size_t async_in_flight;
};

static const char *const mode_names[S2S_MODE_COUNT] = {"t2t", "s2t", "t2s", "s2s"};

const char *s2s_mode_name(s2s_mode m) {
    return (unsigned)m < S2S_MODE_COUNT ? mode_names[m] : "?";
}

int s2s_mode_parse(const char *name, s2s_mode *m, s2s_err *err) {
    for (int i = 0; i < S2S_MODE_COUNT; i++)
        if (!strcmp(name, mode_names[i])) {
            *m = (s2s_mode)i;
            return 0;
        }
    return s2s_err_set(err, S2S_EINVAL, "unknown mode '%s' (t2t, s2t, t2s, s2s)", name);
}

int s2s_modes_parse(const char *list, unsigned *mask, s2s_err *err) {
    *mask = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char buf[16];
        if (n == 0 || n >= sizeof buf)
            return s2s_err_set(err, S2S_EINVAL, "bad mode list '%s' (e.g. t2t,s2t)", list);
        memcpy(buf, p, n);
        buf[n] = 0;
        s2s_mode m = S2S_MODE_T2T;
        int rc = s2s_mode_parse(buf, &m, err);
        if (rc) return rc;
        *mask |= 1u << m;
        p += n;
        if (*p == ',') p++;
    }
    if (!*mask) return s2s_err_set(err, S2S_EINVAL, "empty mode list");
    return 0;
}

s2s_backend *s2s_backend_new(const s2s_backend_ops *ops, void *self, const char *spec,
                             const char *model_sha256, s2s_err *err) {
    s2s_backend *b = calloc(1, sizeof *b);
    if (b) {
        b->spec = strdup(spec ? spec : "");
        b->sha = strdup(model_sha256 ? model_sha256 : "");
    }
    if (!b || !b->spec || !b->sha) {
        if (b) {
            free(b->spec);
            free(b->sha);
            free(b);
        }
        if (ops->destroy) ops->destroy(self);
        s2s_err_set(err, S2S_ENOMEM, "backend: out of memory");
        return NULL;
    }
    b->ops = ops;
    b->self = self;
    return b;
}

s2s_backend *s2s_backend_open(const char *spec, s2s_err *err) {
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        s2s_err_set(err, S2S_EINVAL,
                    "--lm '%s': expected KIND:FILE (ngram:FILE, arpa:FILE, losses:FILE)", spec);
        return NULL;
    }
    size_t klen = (size_t)(colon - spec);
    char kind[16];
    if (klen >= sizeof kind) klen = sizeof kind - 1;
    memcpy(kind, spec, klen);
    kind[klen] = 0;
    if (klen == 6 && !strncmp(spec, "worker", 6)) /* the command is taken whole, '?' included */
        return s2s_backend_worker_open(spec, colon + 1, NULL, err);
    char *path = strdup(colon + 1);
    if (!path) {
        s2s_err_set(err, S2S_ENOMEM, "backend: out of memory");
        return NULL;
    }
    /* Options after the last '?' (a file name with '?' in it can be given with a trailing '?'). */
    char *q = strrchr(path, '?');
    const char *opts = NULL;
    if (q) {
        *q = 0;
        opts = q + 1;
    }
    s2s_backend *b = NULL;
    if (!strcmp(kind, "ngram") || !strcmp(kind, "arpa"))
        b = s2s_backend_ngram_open(spec, kind, path, opts, err);
    else if (!strcmp(kind, "losses"))
        b = s2s_backend_losses_open(spec, path, opts, err);
    else
        s2s_err_set(err, S2S_EINVAL,
                    "--lm '%s': unknown backend kind '%s' (ngram, arpa, losses, worker)", spec,
                    kind);
    free(path);
    return b;
}

int s2s_backend_needs(s2s_backend *b, s2s_mode mode, unsigned *needs, s2s_err *err) {
    *needs = 0;
    return b->ops->needs(b->self, mode, needs, err);
}

size_t s2s_backend_capacity(const s2s_backend *b) {
    if (b->ops->answer) return b->ops->capacity ? b->ops->capacity : 1024;
    return b->ops->capacity ? b->ops->capacity : 1;
}

size_t s2s_backend_in_flight(const s2s_backend *b) {
    return b->ops->answer ? b->qlen : b->async_in_flight;
}

int s2s_backend_submit(s2s_backend *b, const s2s_request *rq, s2s_err *err) {
    if (!b->ops->answer) {
        int rc = b->ops->submit(b->self, rq, err);
        if (rc == 0) b->async_in_flight++;
        return rc;
    }
    if (b->qlen == b->qcap) {
        size_t nc = b->qcap ? b->qcap * 2 : 64;
        s2s_reply *nq = malloc(sizeof *nq * nc);
        if (!nq) return s2s_err_set(err, S2S_ENOMEM, "backend: out of memory");
        for (size_t i = 0; i < b->qlen; i++)
            nq[i] = b->q[(b->qhead + i) % b->qcap];
        free(b->q);
        b->q = nq;
        b->qcap = nc;
        b->qhead = 0;
    }
    s2s_reply *r = &b->q[(b->qhead + b->qlen) % b->qcap];
    memset(r, 0, sizeof *r);
    int rc = b->ops->answer(b->self, rq, r, err);
    if (rc < 0) return rc;
    r->req_id = rq->req_id;
    b->qlen++;
    return 0;
}

int s2s_backend_poll(s2s_backend *b, s2s_reply *out, size_t max, int wait, s2s_err *err) {
    if (!b->ops->answer) {
        int n = b->ops->poll(b->self, out, max, wait, err);
        if (n > 0) b->async_in_flight -= (size_t)n;
        return n;
    }
    size_t n = 0;
    while (n < max && b->qlen > 0) {
        out[n++] = b->q[b->qhead];
        b->qhead = (b->qhead + 1) % b->qcap;
        b->qlen--;
    }
    return (int)n;
}

const char *s2s_backend_spec(const s2s_backend *b) {
    return b->spec;
}

const char *s2s_backend_model_sha256(const s2s_backend *b) {
    return b->sha;
}

const char *s2s_backend_kind(const s2s_backend *b) {
    return b->ops->kind;
}

uint64_t s2s_backend_restarts(const s2s_backend *b) {
    return b->ops->restarts ? b->ops->restarts(b->self) : 0;
}

void s2s_backend_free(s2s_backend *b) {
    if (!b) return;
    if (b->ops->destroy) b->ops->destroy(b->self);
    free(b->q);
    free(b->spec);
    free(b->sha);
    free(b);
}
