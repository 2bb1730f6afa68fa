/* s2s/worker.h — the worker backend: a model in another process (a speech LLM in Python on a
 * GPU, or `s2s-lm serve`) that speaks the JSON-lines protocol of docs/worker.md on its stdin and
 * stdout. Requests are pipelined (up to `capacity` in flight); replies may come in any order.
 * A worker that crashes, stops answering for `timeout_s`, or replies garbage is restarted and
 * given its unanswered requests again, up to `max_restarts` times; then the backend fails with a
 * message that says what happened (the scorer keeps what was already scored). */
#ifndef S2S_WORKER_H
#define S2S_WORKER_H

#include "s2s/backend.h"

typedef struct s2s_worker_opts {
    double timeout_s;      /* no reply for this long while requests are pending: restart (60) */
    unsigned max_restarts; /* restarts before giving up (3) */
    unsigned capacity;     /* requests in flight at most (64; the worker may lower it in hello) */
} s2s_worker_opts;

/* Defaults above, overridden by $S2S_WORKER_TIMEOUT, $S2S_WORKER_RESTARTS, $S2S_WORKER_CAPACITY
 * when set (so a scorer run can tune them without new flags). */
void s2s_worker_opts_default(s2s_worker_opts *o);

/* Starts `/bin/sh -c command` and waits for its hello line. spec is recorded as the backend
 * spec; the model identity is the hello's model_id (or "" if it gives none). */
s2s_backend *s2s_backend_worker_open(const char *spec, const char *command,
                                     const s2s_worker_opts *opts, s2s_err *err);

/* Serves requests of the protocol with an in-process backend (used by `s2s-lm serve`): reads
 * request lines from in, answers on out, until EOF on in. Replies are flushed whenever no
 * complete request is left to answer (before the read that would wait), so a pipelined client
 * gets them in batches and never waits on a buffered reply. When in has a file descriptor it is
 * read directly (in must not hold buffered input); otherwise with getline. model_id is
 * announced in the hello line. Returns 0 at EOF, negative on I/O failure. */
int s2s_worker_serve(s2s_backend *b, const char *model_id, FILE *in, FILE *out, s2s_err *err);

#endif
