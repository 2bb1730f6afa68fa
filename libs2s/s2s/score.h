/* s2s/score.h — the pairwise protocol of the scorer (docs/score.md).
 *
 * For each item, mode and candidate a backend (s2s/backend.h) gives the summed NLL and the token
 * count of the candidate given the context. Scores of a candidate: mean NLL per token (upstream
 * S2SBench's, the default decision score), summed NLL, NLL per UTF-8 byte of the candidate text
 * (lm-evaluation-harness acc_norm style). Lower wins. Pairs come from the labels: a cloze item is
 * one pair, a choice item one pair per wrong candidate. A tie counts 0.5 and is counted; a NaN or
 * infinite score, or a failed request, makes the pair failed (neither a win nor a loss).
 * --compat s2sbench reproduces upstream's eval_story.py (cloze: right < wrong, strict) and
 * eval_cmmlu4.py (choice: right <= wrong) exactly, Python comparison semantics included.
 *
 * Use: s2s_scorer_new, then s2s_scorer_add per sample (submits requests, collects replies as the
 * backend pipeline fills), s2s_scorer_finish (drains), s2s_scorer_report / _write_pairs. */
#ifndef S2S_SCORE_H
#define S2S_SCORE_H

#include "s2s/backend.h"
#include "s2s/err.h"
#include "s2s/sample.h"
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { S2S_SCORE_MEAN = 0, S2S_SCORE_SUM = 1, S2S_SCORE_BYTE = 2 } s2s_score_kind;
enum { S2S_COMPAT_NONE = 0, S2S_COMPAT_S2SBENCH = 1 };

/* "mean", "sum", "byte"; parse returns 0 or S2S_EINVAL. */
const char *s2s_score_kind_name(s2s_score_kind k);
int s2s_score_kind_parse(const char *name, s2s_score_kind *k, s2s_err *err);

typedef struct s2s_score_opts {
    unsigned modes;       /* mask of 1 << s2s_mode */
    s2s_score_kind kind;  /* which score decides (default mean) */
    int compat;           /* S2S_COMPAT_* */
    int dedup;            /* collapse runs of equal units before asking the backend */
    uint64_t seed;        /* bootstrap seed (default 1) */
    unsigned bootstrap;   /* bootstrap replicates (default 1000; 0 = no CIs) */
    double tie_warn;      /* share of tied pairs above which the backend looks broken (0.10) */
    const char *model_id; /* --model-id: recorded as run.model_id when set (borrowed; NULL) */
    /* When set and *stop becomes non-zero (a signal handler's flag), s2s_scorer_add and
     * s2s_scorer_finish stop waiting for replies and return S2S_EINTR (borrowed; NULL). */
    const volatile sig_atomic_t *stop;
} s2s_score_opts;

/* Defaults: t2t only, mean, no compat, seed 1, 1000 replicates, tie_warn 0.10. */
void s2s_score_opts_init(s2s_score_opts *o);

/* Outcome of one pair from the decision scores of its plausible and implausible candidate:
 * 1 (plausible lower), 0 (higher), 0.5 (tie), or NAN (failed: a non-finite score).
 * With compat = S2S_COMPAT_S2SBENCH: choice tasks win with <=, others with strict <, and a
 * non-finite score compares as in Python (false: 0), as upstream does. */
double s2s_pair_outcome(double plausible, double implausible, int is_choice, int compat);

/* The three scores of a candidate from nll and ntok (flags from the reply): *mean = nll/ntok,
 * *sum = nll, *per_byte = nll/bytes; a score that cannot be computed (0 tokens, 0 bytes, mean-
 * only replies for sum and byte) is NAN. */
void s2s_candidate_scores(double nll, uint64_t ntok, unsigned flags, size_t bytes, double *mean,
                          double *sum, double *per_byte);

typedef struct s2s_scorer s2s_scorer;

/* Checks that the backend can score every requested mode (else S2S_EUNSUP with the backend's
 * message naming what is missing) and that the options fit (compat needs the mean score; a
 * mean-only backend such as losses cannot give sum or byte scores). The backend is borrowed. */
s2s_scorer *s2s_scorer_new(const s2s_score_opts *o, s2s_backend *b, s2s_err *err);

/* Submits the requests of one sample (every mode, every candidate) and collects whatever
 * replies are ready. A mode whose inputs are missing from the sample is an error (S2S_EDATA)
 * naming the item and the missing member. The sample is borrowed for the call only. */
int s2s_scorer_add(s2s_scorer *sc, const s2s_sample *s, s2s_err *err);

/* Waits for every reply in flight. */
int s2s_scorer_finish(s2s_scorer *sc, s2s_err *err);

/* Items added; candidate requests answered so far; requests expected so far. */
uint64_t s2s_scorer_items(const s2s_scorer *sc);
uint64_t s2s_scorer_answered(const s2s_scorer *sc);

/* Builds report.json (docs/score.md) after finish. run (stolen, may be NULL) is stored under
 * "run" together with what the scorer knows (backend spec, model hash, options, seed).
 * Returns a new reference or NULL (err filled). Deterministic: items are ordered by id. */
json_t *s2s_scorer_report(s2s_scorer *sc, json_t *run, s2s_err *err);

/* Writes pairs.jsonl: one line per pair and mode, items in id order, with every score. */
int s2s_scorer_write_pairs(s2s_scorer *sc, FILE *fp, s2s_err *err);

/* Human table of a report (accuracy, CI, pairs, ties, failed, mean scores; degradation). */
void s2s_score_print_table(const json_t *report, FILE *fp);

/* ---- hooks for a score cache (resume) ------------------------------------------------------
 * lookup: called before a request is sent; return 1 after filling r->nll, r->ntok, r->flags and
 *         r->status to use a known answer (the backend is not asked), 0 to ask, negative to stop.
 * store:  called with every reply that came from the backend (not for answers from lookup);
 *         negative stops the run (err filled).
 * Either may be NULL. Answers from lookup and from the backend are treated the same, so a rerun
 * that finds every score in its cache gives the same report byte for byte. */
typedef struct s2s_score_hooks {
    void *ctx;
    int (*lookup)(void *ctx, const s2s_request *rq, s2s_reply *r, s2s_err *err);
    int (*store)(void *ctx, const char *item_id, s2s_mode mode, unsigned cand, const s2s_reply *r,
                 s2s_err *err);
} s2s_score_hooks;

/* Installs hooks (copied) before the first s2s_scorer_add. */
void s2s_scorer_set_hooks(s2s_scorer *sc, const s2s_score_hooks *h);
/* Candidate answers that came from lookup so far. */
uint64_t s2s_scorer_cached(const s2s_scorer *sc);

void s2s_scorer_free(s2s_scorer *sc);

#endif
