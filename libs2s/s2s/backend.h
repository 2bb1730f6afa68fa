/* s2s/backend.h — model backends of the scorer: what a model is asked and how it answers.
 *
 * A backend returns, for one (item, mode, candidate), the summed negative log-likelihood
 * (natural log) of the candidate given the context and the number of candidate tokens. The
 * interface is asynchronous from the start so that a worker process (a speech LLM on a GPU) can
 * be fed a pipeline of requests and answer them in any order:
 *
 *     s2s_backend_submit(b, &req, err)      -- as long as s2s_backend_in_flight(b) < capacity
 *     n = s2s_backend_poll(b, replies, max, wait, err)   -- replies matched by req_id
 *
 * In-process backends (ngram, arpa, losses) answer inside submit and hand the reply out at the
 * next poll; a worker backend writes the request to its child and polls its pipe.
 *
 * Specs (--lm SPEC):
 *   ngram:FILE[?opts] / arpa:FILE[?opts]  ARPA n-gram file (ours from s2s-lm train, or SRILM,
 *                                         KenLM, IRSTLM); opts joined by '&':
 *                                           cache=L   interpolate a unigram cache of the context
 *                                                     (and the candidate so far) with weight L
 *                                           eos=1     also score </s> after the candidate
 *   ngram:TEXT.arpa,UNITS.arpa            a text model for t2t and a unit model for s2s
 *   losses:FILE                           upstream S2SBench result.jsonl (uttid, key, loss)
 *   losses:t2t=FILE,s2t=FILE              one result.jsonl per mode
 *   worker:COMMAND                        a child process speaking docs/worker.md (s2s/worker.h)
 */
#ifndef S2S_BACKEND_H
#define S2S_BACKEND_H

#include "s2s/err.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- modes ---------------------------------------------------------------------------------- */
typedef enum {
    S2S_MODE_T2T = 0, /* text context, text candidate */
    S2S_MODE_S2T = 1, /* speech context, text candidate (upstream's main mode) */
    S2S_MODE_T2S = 2, /* text context, speech candidate */
    S2S_MODE_S2S = 3, /* speech context, speech candidate */
    S2S_MODE_COUNT = 4
} s2s_mode;

/* "t2t", "s2t", "t2s", "s2s". */
const char *s2s_mode_name(s2s_mode m);
/* Parses one mode name; returns 0 or S2S_EINVAL. */
int s2s_mode_parse(const char *name, s2s_mode *m, s2s_err *err);
/* Parses a comma-separated list ("t2t,s2t") into a bit mask (1 << mode); 0 or S2S_EINVAL. */
int s2s_modes_parse(const char *list, unsigned *mask, s2s_err *err);

/* ---- what a backend needs for a mode (bit mask) ----------------------------------------------
 * The scorer checks every item against it before asking, and a missing input is an error that
 * names the member ("item X: mode s2s needs member c1.units"), never a zero. */
enum {
    S2S_NEED_CTX_TEXT = 1 << 0,
    S2S_NEED_CAND_TEXT = 1 << 1,
    S2S_NEED_CTX_UNITS = 1 << 2,  /* member ctx.units */
    S2S_NEED_CAND_UNITS = 1 << 3, /* members cN.units */
    S2S_NEED_CTX_AUDIO = 1 << 4,  /* member ctx.wav or ctx.flac, handed over as a file path */
    S2S_NEED_CAND_AUDIO = 1 << 5, /* members cN.wav or cN.flac */
    S2S_NEED_UTTID = 1 << 6       /* upstream uttid/key kept by s2s-import s2sbench */
};

/* ---- requests and replies ------------------------------------------------------------------- */
/* Every pointer is borrowed for the duration of s2s_backend_submit only: a backend copies what
 * it keeps. Fields a mode does not need may be NULL. */
typedef struct s2s_request {
    uint64_t req_id; /* chosen by the caller, unique among requests in flight */
    const char *item_id;
    s2s_mode mode;
    unsigned cand;    /* candidate index in the item */
    const char *lang; /* item's language code ("en", "zh") */
    const char *ctx_text, *cand_text;
    const char *ctx_units, *cand_units; /* space-separated unit ids (runs collapsed with --dedup) */
    const char *ctx_audio, *cand_audio; /* paths of audio files (WAV or FLAC) */
    const json_t *item; /* the whole item (borrowed), for backends keyed on its fields */
} s2s_request;

typedef struct s2s_reply {
    uint64_t req_id;
    double nll;    /* summed NLL, natural log; meaningless unless status == 0 */
    uint64_t ntok; /* tokens scored; 0 with S2S_REPLY_MEAN_ONLY */
    int status;    /* 0 ok, or a negative S2S_E* code: this request failed (counted as failed) */
    unsigned flags;
    char msg[200]; /* why it failed (status != 0), "" otherwise */
} s2s_reply;

enum {
    /* nll is already a per-token mean and the token count is unknown (precomputed upstream
     * losses): only the "mean" score exists for this reply. */
    S2S_REPLY_MEAN_ONLY = 1 << 0
};

/* ---- the handle ----------------------------------------------------------------------------- */
typedef struct s2s_backend s2s_backend;

/* Opens a backend from a spec (see top of file). The model is loaded here.
 * Returns NULL and fills err (unknown kind, unreadable file, bad option). Free with
 * s2s_backend_free. */
s2s_backend *s2s_backend_open(const char *spec, s2s_err *err);

/* What the backend needs to score `mode` (S2S_NEED_* mask). Returns 0, or S2S_EUNSUP with a
 * message naming what is missing when this backend cannot score the mode at all (an n-gram text
 * model cannot read speech: s2t/t2s need a worker model). */
int s2s_backend_needs(s2s_backend *b, s2s_mode mode, unsigned *needs, s2s_err *err);

/* Queues one request. Returns 0, or a negative code when the backend itself failed (a failure
 * of this one request is reported in its reply instead). The caller must keep
 * s2s_backend_in_flight(b) < s2s_backend_capacity(b). */
int s2s_backend_submit(s2s_backend *b, const s2s_request *rq, s2s_err *err);

/* Moves up to max finished replies into out, in any order. With wait != 0 blocks until at least
 * one reply is ready if any request is in flight. Returns the number of replies (0 when nothing
 * is in flight), or a negative code when the backend failed. */
int s2s_backend_poll(s2s_backend *b, s2s_reply *out, size_t max, int wait, s2s_err *err);

/* Requests submitted and not yet returned by poll. */
size_t s2s_backend_in_flight(const s2s_backend *b);
/* Most requests that may be in flight at once (>= 1). */
size_t s2s_backend_capacity(const s2s_backend *b);

/* The spec as given; the model identity: SHA-256 (hex) of the model file, or "" if none.
 * Borrowed strings valid until s2s_backend_free. */
const char *s2s_backend_spec(const s2s_backend *b);
const char *s2s_backend_model_sha256(const s2s_backend *b);
/* Backend kind ("ngram", "arpa", "losses", "worker", ...). */
const char *s2s_backend_kind(const s2s_backend *b);

/* How many times the backend restarted its model so far (a worker process that crashed, hung or
 * replied garbage and was started again, docs/worker.md §4); 0 for backends that never restart
 * (the in-process kinds). A run's report can record it: a non-zero count means the replies came
 * from more than one process. */
uint64_t s2s_backend_restarts(const s2s_backend *b);

void s2s_backend_free(s2s_backend *b);

/* ---- implementing a backend ------------------------------------------------------------------
 * A backend is a table of operations over a private state. In-process backends set `answer`
 * (synchronous: fill the reply and return); asynchronous ones set `submit` and `poll`.
 * s2s_backend_new takes ownership of self (freed by ops->destroy). */
typedef struct s2s_backend_ops {
    const char *kind;
    int (*needs)(void *self, s2s_mode mode, unsigned *needs, s2s_err *err);
    /* synchronous backends: */
    int (*answer)(void *self, const s2s_request *rq, s2s_reply *out, s2s_err *err);
    /* asynchronous backends: */
    int (*submit)(void *self, const s2s_request *rq, s2s_err *err);
    int (*poll)(void *self, s2s_reply *out, size_t max, int wait, s2s_err *err);
    size_t capacity; /* 0 = unbounded for synchronous backends (a queue is kept) */
    void (*destroy)(void *self);
    /* optional: model restarts so far (s2s_backend_restarts); NULL = never restarts */
    uint64_t (*restarts)(const void *self);
} s2s_backend_ops;

/* Wraps an implementation. spec and model_sha256 are copied (NULL allowed). Returns NULL on
 * ENOMEM (then ops->destroy(self) has been called). */
s2s_backend *s2s_backend_new(const s2s_backend_ops *ops, void *self, const char *spec,
                             const char *model_sha256, s2s_err *err);

/* Constructors of the built-in kinds (used by s2s_backend_open; path is the FILE part,
 * opts the text after '?', or NULL). */
s2s_backend *s2s_backend_ngram_open(const char *spec, const char *kind, const char *path,
                                    const char *opts, s2s_err *err);
s2s_backend *s2s_backend_losses_open(const char *spec, const char *path, const char *opts,
                                     s2s_err *err);

#endif
